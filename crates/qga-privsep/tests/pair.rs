//! The pieces together: a broker narrowed to the capabilities it needs, and
//! a main process with no capability, Landlock and the seccomp allowlist,
//! which still gets a file it may not open itself, as an fd from the broker.

mod support;

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use qga_privsep::channel::{BrokerEnd, ChannelError};
use qga_privsep::landlock::{self, Access, LandlockStatus, Rule};
use qga_privsep::lifecycle;
use qga_privsep::privilege::{self, CapSet};
use qga_privsep::seccomp;
use qga_privsep::status::ProcessStatus;
use qga_privsep::wire::{OpenMode, Path, Reply, Request};
use support::{ensure, errno_of, in_child};

const CAP_DAC_OVERRIDE: u64 = 1 << 1;

/// A toy broker: one granted path, opened with the checked mode's flags.
fn serve(end: BrokerEnd, granted: PathBuf) -> i32 {
    if privilege::keep_only(CapSet::from_bits(CAP_DAC_OVERRIDE)).is_err() {
        return 3;
    }
    loop {
        let request = match end.recv() {
            Ok(received) => received.message,
            Err(ChannelError::Closed) => return 0,
            Err(_) => return 2,
        };
        let refused = |errno, message: &str| Reply::Failed {
            errno,
            message: message.into(),
        };
        let reply = match request {
            Request::OpenFile { path, mode } if path.as_bytes() == granted.as_os_str().as_bytes() => {
                match fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(mode.flags() | libc::O_NOFOLLOW)
                    .open(&granted)
                {
                    Ok(file) => {
                        end.send(&Reply::Opened, &[file.as_fd()]).unwrap();
                        continue;
                    }
                    Err(e) => refused(e.raw_os_error().unwrap_or(libc::EIO), "open failed"),
                }
            }
            Request::OpenFile { .. } => refused(libc::EACCES, "path not granted"),
            _ => refused(libc::EPERM, "operation not granted"),
        };
        end.send(&reply, &[]).unwrap();
    }
}

#[test]
fn the_sandboxed_main_process_reads_what_the_broker_opens_and_nothing_else() {
    let dir = support::temp_dir("pair");
    let granted = dir.join("granted");
    fs::write(&granted, b"only through the broker").unwrap();
    fs::set_permissions(&granted, fs::Permissions::from_mode(0o000)).unwrap();
    let state = support::temp_dir("pair-state");
    in_child(|| {
        let user = privilege::resolve_agent_user().map_err(|e| e.to_string())?;
        let broker_granted = granted.clone();
        let (main, broker) =
            lifecycle::spawn_broker(move |end| serve(end, broker_granted)).map_err(|e| e.to_string())?;
        privilege::drop_all(&user).map_err(|e| e.to_string())?;
        let rules = [
            Rule {
                path: state.to_path_buf(),
                access: Access::ReadWrite,
            },
            Rule {
                path: "/proc".into(),
                access: Access::ReadOnly,
            },
        ];
        let landlock = landlock::restrict(&rules).map_err(|e| e.to_string())?;
        seccomp::install().map_err(|e| e.to_string())?;

        let me = ProcessStatus::of_self().map_err(|e| e.to_string())?;
        ensure(me.cap_effective == 0 && me.cap_bounding == 0, || format!("{me:?}"))?;
        ensure(me.no_new_privs && me.seccomp == 2, || format!("{me:?}"))?;
        // Itself it can open neither the granted file nor anything outside its rules.
        let e = errno_of(fs::read(&granted))?;
        ensure(e == libc::EACCES, || format!("granted file, directly: errno {e}"))?;
        if let LandlockStatus::Enforced { .. } = landlock {
            let e = errno_of(fs::read("/etc/passwd"))?;
            ensure(e == libc::EACCES, || format!("/etc/passwd: errno {e}"))?;
        }
        fs::write(state.join("qga.state"), b"1000").map_err(|e| format!("state dir: {e}"))?;

        // Through the broker: the fd arrives and reads work under the filter.
        let path = Path::new(granted.as_os_str().as_bytes()).unwrap();
        main.send(
            &Request::OpenFile {
                path,
                mode: OpenMode::Read,
            },
            &[],
        )
        .map_err(|e| e.to_string())?;
        let received = main.recv().map_err(|e| e.to_string())?;
        ensure(received.message == Reply::Opened, || format!("{received:?}"))?;
        let mut text = String::new();
        fs::File::from(received.fds.into_iter().next().unwrap())
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        ensure(text == "only through the broker", || text.clone())?;
        // The broker has answered, so it has narrowed itself first.
        let theirs = ProcessStatus::of_pid(broker.pid()).map_err(|e| e.to_string())?;
        ensure(theirs.cap_bounding == CAP_DAC_OVERRIDE, || format!("broker {theirs:?}"))?;
        ensure(theirs.cap_effective == CAP_DAC_OVERRIDE && theirs.seccomp == 0, || {
            format!("broker {theirs:?}")
        })?;

        // Outside the grants: refused by the broker.
        let shadow = Path::new(CString::new("/etc/shadow").unwrap().into_bytes()).unwrap();
        main.send(
            &Request::OpenFile {
                path: shadow,
                mode: OpenMode::Read,
            },
            &[],
        )
        .map_err(|e| e.to_string())?;
        let refused = main.recv().map_err(|e| e.to_string())?.message;
        ensure(
            matches!(
                refused,
                Reply::Failed {
                    errno: libc::EACCES,
                    ..
                }
            ),
            || format!("{refused:?}"),
        )?;
        drop(main);
        let exit = broker.wait().map_err(|e| e.to_string())?;
        ensure(exit == lifecycle::Exit::Code(0), || format!("broker {exit:?}"))
    })
    .unwrap();
}
