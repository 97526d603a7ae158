//! Syscalls of the host-info capability (nix, no `unsafe`).

pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

pub fn uname() -> Result<Uname, nix::Error> {
    let u = nix::sys::utsname::uname()?;
    let s = |o: &std::ffi::OsStr| o.to_string_lossy().into_owned();
    Ok(Uname {
        sysname: s(u.sysname()),
        nodename: s(u.nodename()),
        release: s(u.release()),
        version: s(u.version()),
        machine: s(u.machine()),
    })
}

pub fn host_name() -> Result<String, nix::Error> {
    Ok(nix::unistd::gethostname()?.to_string_lossy().into_owned())
}
