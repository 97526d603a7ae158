//! The `network` family: guest-network-get-interfaces, as qemu-ga 7.2
//! builds it (qga/commands-posix.c). Read-only: it imports net-info and
//! read-file (/proc/net/dev) and nothing that writes.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "network-family",
        path: "../../wit",
    });

    use super::logic;
    use exports::qga::agent::network::{
        Guest, GuestIpAddress, GuestIpAddressType, GuestNetworkInterface, GuestNetworkInterfaceStat,
    };
    use qga::agent::net_info::{self, AddressFamily};
    use qga::agent::read_file;
    use qga::agent::types::QgaError;

    struct Network;

    impl Guest for Network {
        fn guest_network_get_interfaces() -> Result<Vec<GuestNetworkInterface>, QgaError> {
            let entries = net_info::interfaces().map_err(|e| QgaError {
                desc: format!("getifaddrs failed: {}", e.message),
            })?;
            let entries: Vec<logic::Entry> = entries
                .into_iter()
                .map(|e| logic::Entry {
                    name: e.name,
                    family: match e.family {
                        AddressFamily::Ipv4 => logic::Family::V4,
                        AddressFamily::Ipv6 => logic::Family::V6,
                        AddressFamily::Other => logic::Family::Other,
                    },
                    address: e.address,
                    netmask: e.netmask,
                })
                .collect();
            // qemu-ga re-reads /proc/net/dev per interface; one read per call
            // gives the same numbers without the races between reads.
            let mut dev: Option<Option<Vec<u8>>> = None;
            let ifaces = logic::build(
                &entries,
                |name| net_info::hardware_address(name).ok(),
                |name| {
                    let text = dev.get_or_insert_with(|| read_file::read("/proc/net/dev").ok());
                    text.as_deref().and_then(|t| logic::stats_for(t, name))
                },
            );
            Ok(ifaces
                .into_iter()
                .map(|i| GuestNetworkInterface {
                    name: i.name,
                    hardware_address: i.hardware_address,
                    ip_addresses: i.ip_addresses.map(|list| {
                        list.into_iter()
                            .map(|a| GuestIpAddress {
                                ip_address: a.ip_address,
                                ip_address_type: if a.v6 {
                                    GuestIpAddressType::Ipv6
                                } else {
                                    GuestIpAddressType::Ipv4
                                },
                                prefix: a.prefix,
                            })
                            .collect()
                    }),
                    statistics: i.statistics.map(|s| GuestNetworkInterfaceStat {
                        rx_bytes: s[0],
                        rx_packets: s[1],
                        rx_errs: s[2],
                        rx_dropped: s[3],
                        tx_bytes: s[4],
                        tx_packets: s[5],
                        tx_errs: s[6],
                        tx_dropped: s[7],
                    }),
                })
                .collect())
        }
    }

    export!(Network);
}
