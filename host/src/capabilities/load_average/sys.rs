//! sysinfo(2), read the way glibc's getloadavg(3) reads it (no `unsafe`).

/// The 1, 5 and 15 minute load averages: sysinfo's fixed-point loads
/// divided by 2^16, exactly as glibc 2.41's getloadavg computes them.
pub fn load_averages() -> std::io::Result<(f64, f64, f64)> {
    let info = nix::sys::sysinfo::sysinfo().map_err(std::io::Error::from)?;
    Ok(info.load_average())
}
