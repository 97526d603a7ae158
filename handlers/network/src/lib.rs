//! The `network` family: guest-network-get-interfaces, as qemu-ga 7.2
//! builds it (qga/commands-posix.c), and guest-network-get-route, as
//! qemu-ga 10.0 builds it (qga/commands-linux.c). Read-only: it imports
//! net-info and read-file (/proc/net/dev, /proc/net/route,
//! /proc/net/ipv6_route) and nothing that writes.

pub mod logic;
pub mod route;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "network-family",
        path: "../../wit",
    });

    use super::logic;
    use exports::qga::agent::network::{
        Guest, GuestIpAddress, GuestIpAddressType, GuestNetworkInterface, GuestNetworkInterfaceStat, GuestNetworkRoute,
    };
    use qga::agent::net_info::{self, AddressFamily};
    use qga::agent::read_file;
    use qga::agent::types::QgaError;

    const ROUTE_V4: &str = "/proc/net/route";
    const ROUTE_V6: &str = "/proc/net/ipv6_route";

    struct Network;

    /// A route table's text, or qemu-ga's error for a table it cannot open.
    fn route_table(path: &str) -> Result<Vec<u8>, QgaError> {
        read_file::read(path).map_err(|e| QgaError {
            desc: match e {
                read_file::ReadError::NotFound => format!("open(\"{path}\"): No such file or directory"),
                read_file::ReadError::Other(text) => format!("open(\"{path}\"): {text}"),
            },
        })
    }

    fn wire_route(r: super::route::Route) -> GuestNetworkRoute {
        GuestNetworkRoute {
            iface: r.iface,
            destination: r.destination,
            metric: r.metric,
            gateway: r.gateway,
            mask: r.mask,
            irtt: r.irtt,
            flags: r.flags,
            refcnt: r.refcnt,
            use_: r.use_count,
            window: r.window,
            mtu: r.mtu,
            desprefixlen: r.desprefixlen,
            source: r.source,
            srcprefixlen: r.srcprefixlen,
            nexthop: r.nexthop,
            version: r.version,
        }
    }

    impl Guest for Network {
        fn guest_network_get_route() -> Result<Vec<GuestNetworkRoute>, QgaError> {
            // qemu-ga reads both tables and fails if either cannot be opened.
            let v4 = route_table(ROUTE_V4)?;
            let v6 = route_table(ROUTE_V6)?;
            Ok(super::route::ipv4_routes(&v4)
                .into_iter()
                .chain(super::route::ipv6_routes(&v6))
                .map(wire_route)
                .collect())
        }

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
