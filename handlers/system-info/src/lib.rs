//! The `system-info` family: guest-get-time, guest-get-host-name,
//! guest-get-timezone, guest-get-osinfo, guest-get-users, guest-get-load.
//!
//! The answers reproduce qemu-ga 7.2 (qga/commands-posix.c, commands.c);
//! guest-get-load, qemu-ga 10.0's.
//! Everything that decides an answer lives in [`logic`], plain functions
//! tested natively; the component glue below only moves values.

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "system-info-family",
        path: "../../wit",
    });

    use super::logic;
    use exports::qga::agent::system_info::{
        Guest, GuestHostName, GuestLoadAverage, GuestOsInfo, GuestTimezone, GuestUser,
    };
    use qga::agent::read_file;
    use qga::agent::types::QgaError;
    use qga::agent::{clock, host_info, load_average};

    struct SystemInfo;

    fn err(desc: String) -> QgaError {
        QgaError { desc }
    }

    /// `None` for a file that cannot be read, whatever the reason (qemu-ga
    /// treats every failure to open or parse these files as "absent").
    fn read(path: &str) -> Option<Vec<u8>> {
        read_file::read(path).ok()
    }

    impl Guest for SystemInfo {
        fn guest_get_time() -> Result<i64, QgaError> {
            Ok(logic::qemu_time_ns(clock::now_ns()))
        }

        fn guest_get_host_name() -> Result<GuestHostName, QgaError> {
            let host_name = host_info::host_name().map_err(|e| err(e.desc))?;
            Ok(GuestHostName { host_name })
        }

        fn guest_get_timezone() -> Result<GuestTimezone, QgaError> {
            let tz = clock::local_timezone().map_err(|e| err(e.desc))?;
            let (zone, offset) = logic::timezone(tz.abbreviation, tz.offset_seconds);
            Ok(GuestTimezone { zone, offset })
        }

        fn guest_get_osinfo() -> Result<GuestOsInfo, QgaError> {
            let uname = host_info::uname().map_err(|e| err(e.desc))?;
            let os_release = match std::env::var("QGA_OS_RELEASE") {
                Ok(path) => read(&path).and_then(|b| logic::parse_os_release(&b)),
                Err(_) => read("/etc/os-release")
                    .and_then(|b| logic::parse_os_release(&b))
                    .or_else(|| read("/usr/lib/os-release").and_then(|b| logic::parse_os_release(&b))),
            };
            let f = logic::os_info_fields(os_release.as_ref());
            Ok(GuestOsInfo {
                kernel_release: Some(uname.release),
                kernel_version: Some(uname.version),
                machine: Some(uname.machine),
                id: f.id,
                name: f.name,
                pretty_name: f.pretty_name,
                version: f.version,
                version_id: f.version_id,
                variant: f.variant,
                variant_id: f.variant_id,
            })
        }

        fn guest_get_load() -> Result<GuestLoadAverage, QgaError> {
            let load = load_average::get().map_err(|e| err(e.desc))?;
            Ok(GuestLoadAverage {
                load1m: load.one,
                load5m: load.five,
                load15m: load.fifteen,
            })
        }

        fn guest_get_users() -> Result<Vec<GuestUser>, QgaError> {
            let utmp = read(logic::UTMP_PATH).unwrap_or_default();
            Ok(logic::users_from_utmp(&utmp)
                .into_iter()
                .map(|u| GuestUser {
                    user: u.user,
                    login_time: u.login_time,
                    domain: None,
                })
                .collect())
        }
    }

    export!(SystemInfo);
}
