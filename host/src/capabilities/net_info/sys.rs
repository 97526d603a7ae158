//! Syscalls of the net-info capability: getifaddrs(3) (through nix) and the
//! SIOCGIFHWADDR ioctl.

#![allow(unsafe_code)] // the syscalls this module wraps

use std::os::fd::AsRawFd;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

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

/// Every getifaddrs entry, in order.
pub fn interfaces() -> Result<Vec<Entry>, i32> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| e as i32)?;
    let mut out = Vec::new();
    for ifa in addrs {
        let (family, address) = match &ifa.address {
            Some(a) => match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) => (Family::V4, v4.ip().octets().to_vec()),
                (_, Some(v6)) => (Family::V6, v6.ip().octets().to_vec()),
                _ => (Family::Other, Vec::new()),
            },
            None => (Family::Other, Vec::new()),
        };
        let netmask = ifa.netmask.as_ref().and_then(|m| match family {
            Family::V4 => m.as_sockaddr_in().map(|v4| v4.ip().octets().to_vec()),
            Family::V6 => m.as_sockaddr_in6().map(|v6| v6.ip().octets().to_vec()),
            Family::Other => None,
        });
        out.push(Entry {
            name: ifa.interface_name,
            family,
            address,
            netmask,
        });
    }
    Ok(out)
}

nix::ioctl_read_bad!(siocgifhwaddr, libc::SIOCGIFHWADDR, libc::ifreq);

/// The first 6 bytes of SIOCGIFHWADDR, as qemu-ga copies them.
pub fn hardware_address(name: &str) -> Result<Vec<u8>, i32> {
    let sock = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| e as i32)?;
    // SAFETY: ifreq is plain data; all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // qemu-ga's pstrcpy(ifr_name, IF_NAMESIZE, name): at most 15 bytes + NUL.
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `sock` is an open socket and `ifr` a valid, writable ifreq
    // that SIOCGIFHWADDR fills in.
    unsafe { siocgifhwaddr(sock.as_raw_fd(), &mut ifr) }.map_err(|e| e as i32)?;
    // SAFETY: after a successful SIOCGIFHWADDR the union holds ifru_hwaddr.
    let data = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
    Ok(data[..6].iter().map(|&b| b as u8).collect())
}
