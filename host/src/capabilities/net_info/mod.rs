//! `qga:agent/net-info`: getifaddrs(3) and SIOCGIFHWADDR. Read-only: this
//! capability has no function that changes anything.

mod sys;

use super::Capability;
use super::qga::agent::net_info::{AddressFamily, Host, IfAddress};
use super::qga::agent::sysfs::OsError;
use super::view::GrantView;

fn os_error(errno: i32) -> OsError {
    OsError {
        errno,
        message: super::strerror(errno),
    }
}

impl Host for GrantView<'_> {
    fn interfaces(&mut self) -> wasmtime::Result<Result<Vec<IfAddress>, OsError>> {
        self.grant.require(self.command, Capability::NetInfo)?;
        Ok(sys::interfaces()
            .map(|list| {
                list.into_iter()
                    .map(|e| IfAddress {
                        name: e.name,
                        family: match e.family {
                            sys::Family::V4 => AddressFamily::Ipv4,
                            sys::Family::V6 => AddressFamily::Ipv6,
                            sys::Family::Other => AddressFamily::Other,
                        },
                        address: e.address,
                        netmask: e.netmask,
                    })
                    .collect()
            })
            .map_err(os_error))
    }

    fn hardware_address(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, OsError>> {
        self.grant.require(self.command, Capability::NetInfo)?;
        Ok(sys::hardware_address(&name).map_err(os_error))
    }
}
