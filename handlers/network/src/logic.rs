//! qemu-ga 7.2's qmp_guest_network_get_interfaces over getifaddrs entries.

use std::net::{Ipv4Addr, Ipv6Addr};

pub enum Family {
    V4,
    V6,
    Other,
}

pub struct Entry {
    pub name: String,
    pub family: Family,
    pub address: Vec<u8>,
    pub netmask: Option<Vec<u8>>,
}

#[derive(Debug, PartialEq)]
pub struct Address {
    pub ip_address: String,
    pub v6: bool,
    pub prefix: i64,
}

#[derive(Debug, PartialEq)]
pub struct Interface {
    pub name: String,
    pub hardware_address: Option<String>,
    pub ip_addresses: Option<Vec<Address>>,
    /// rx bytes, packets, errs, dropped, tx bytes, packets, errs, dropped.
    pub statistics: Option<[u64; 8]>,
}

/// One interface per distinct name, in first-seen order. The hardware
/// address is asked for until one is obtained; statistics are looked up when
/// an interface gets its first address (as qemu-ga does, so an interface
/// without an address has none).
pub fn build(
    entries: &[Entry],
    mut hwaddr: impl FnMut(&str) -> Option<Vec<u8>>,
    mut stats: impl FnMut(&str) -> Option<[u64; 8]>,
) -> Vec<Interface> {
    let mut out: Vec<Interface> = Vec::new();
    for e in entries {
        let idx = match out.iter().position(|i| i.name == e.name) {
            Some(i) => i,
            None => {
                out.push(Interface {
                    name: e.name.clone(),
                    hardware_address: None,
                    ip_addresses: None,
                    statistics: None,
                });
                out.len() - 1
            }
        };
        let info = &mut out[idx];
        if info.hardware_address.is_none()
            && let Some(mac) = hwaddr(&e.name)
            && mac.len() >= 6
        {
            info.hardware_address = Some(format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
            ));
        }
        let item = match (&e.family, e.address.len()) {
            (Family::V4, 4) => {
                let a: [u8; 4] = e.address[..].try_into().unwrap_or_default();
                Address {
                    ip_address: Ipv4Addr::from(a).to_string(),
                    v6: false,
                    prefix: prefix(e.netmask.as_deref(), 4),
                }
            }
            (Family::V6, 16) => {
                let a: [u8; 16] = e.address[..].try_into().unwrap_or_default();
                Address {
                    ip_address: Ipv6Addr::from(a).to_string(),
                    v6: true,
                    prefix: prefix(e.netmask.as_deref(), 16),
                }
            }
            _ => continue,
        };
        info.ip_addresses.get_or_insert_with(Vec::new).push(item);
        if info.statistics.is_none() {
            info.statistics = stats(&info.name);
        }
    }
    out
}

/// The number of set bits in the netmask's first `len` bytes (0 without one).
fn prefix(netmask: Option<&[u8]>, len: usize) -> i64 {
    netmask.map_or(0, |m| m.iter().take(len).map(|b| i64::from(b.count_ones())).sum())
}

/// The counters of `name` in /proc/net/dev, as qemu-ga's
/// guest_get_network_stats parses them (a line whose sixteen numbers do not
/// all parse is skipped).
pub fn stats_for(dev: &[u8], name: &str) -> Option<[u64; 8]> {
    let text = String::from_utf8_lossy(dev);
    for line in text.split('\n') {
        let line = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface != name {
            continue;
        }
        let nums: Vec<i64> = rest
            .split_ascii_whitespace()
            .map_while(|w| w.parse::<i64>().ok())
            .take(16)
            .collect();
        if nums.len() != 16 {
            continue;
        }
        let pick = [0, 1, 2, 3, 8, 9, 10, 11];
        return Some(pick.map(|i| nums[i] as u64));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, family: Family, address: Vec<u8>, netmask: Option<Vec<u8>>) -> Entry {
        Entry {
            name: name.into(),
            family,
            address,
            netmask,
        }
    }

    #[test]
    fn groups_by_name_in_first_seen_order_and_counts_prefix_bits() {
        let entries = vec![
            entry("lo", Family::Other, vec![], None),
            entry("eth0", Family::Other, vec![], None),
            entry("lo", Family::V4, vec![127, 0, 0, 1], Some(vec![255, 0, 0, 0])),
            entry("eth0", Family::V4, vec![10, 0, 2, 15], Some(vec![255, 255, 255, 0])),
            entry(
                "lo",
                Family::V6,
                [0; 15].into_iter().chain([1]).collect(),
                Some(vec![255; 16]),
            ),
            entry("dummy", Family::Other, vec![], None),
        ];
        let mut asked = Vec::new();
        let out = build(
            &entries,
            |n| {
                asked.push(n.to_owned());
                (n != "dummy").then(|| vec![0, 1, 2, 3, 4, 0xab, 9])
            },
            |n| (n == "lo").then_some([1, 2, 3, 4, 5, 6, 7, 8]),
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].name, "lo");
        assert_eq!(out[0].hardware_address.as_deref(), Some("00:01:02:03:04:ab"));
        let lo = out[0].ip_addresses.as_ref().unwrap();
        assert_eq!(
            lo[0],
            Address {
                ip_address: "127.0.0.1".into(),
                v6: false,
                prefix: 8
            }
        );
        assert_eq!(
            lo[1],
            Address {
                ip_address: "::1".into(),
                v6: true,
                prefix: 128
            }
        );
        assert_eq!(out[0].statistics, Some([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(out[1].ip_addresses.as_ref().unwrap()[0].prefix, 24);
        assert_eq!(out[1].statistics, None);
        assert_eq!(out[2].hardware_address, None);
        assert_eq!(out[2].ip_addresses, None);
        // hardware address asked once per interface while it has none
        assert_eq!(asked, ["lo", "eth0", "dummy"]);
    }

    #[test]
    fn proc_net_dev_lines_parse_as_qemu_ga() {
        let dev = b"Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nbad0: 1 2 3\n";
        assert_eq!(stats_for(dev, "lo"), Some([3193, 29, 0, 0, 3193, 29, 0, 0]));
        assert_eq!(stats_for(dev, "eth0"), Some([1, 2, 3, 4, 9, 10, 11, 12]));
        assert_eq!(stats_for(dev, "bad0"), None);
        assert_eq!(stats_for(dev, "eth"), None);
    }
}
