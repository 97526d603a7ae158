//! Syscalls of the clock capability.

#![allow(unsafe_code)] // the syscalls this module wraps

use std::time::{SystemTime, UNIX_EPOCH};

// SAFETY: tzset(3) is declared by POSIX with exactly this signature; the
// libc crate does not bind it.
unsafe extern "C" {
    fn tzset();
}

/// CLOCK_REALTIME in nanoseconds since the epoch (negative before it).
pub fn realtime_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The zone abbreviation and UTC offset (seconds east) in force now, as
/// localtime(3) computes them from TZ or /etc/localtime.
pub fn local_timezone() -> Result<(String, i32), std::io::Error> {
    let now: libc::time_t = realtime_ns().div_euclid(1_000_000_000) as libc::time_t;
    // SAFETY: `tm` is plain data for which all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: tzset has no preconditions; it (re)reads TZ, as GLib does
    // before computing the local zone.
    unsafe { tzset() };
    // SAFETY: both pointers are valid for the duration of the call;
    // localtime_r writes only into `tm`.
    let res = unsafe { libc::localtime_r(&now, &mut tm) };
    if res.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    let abbreviation = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: glibc sets tm_zone to a NUL-terminated string that lives
        // as long as the process's time zone data (until the next tzset),
        // and it is copied out at once.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Ok((abbreviation, tm.tm_gmtoff as i32))
}
