//! Landlock on the running kernel. Where the kernel has it, the view is
//! really confined; where it has not, `restrict` reports "not supported"
//! and confines nothing. Both outcomes are asserted, nothing is skipped.

mod support;

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};

use qga_privsep::landlock::{self, Access, LandlockError, LandlockStatus, Rule};
use support::{ensure, errno_of, in_child};

fn err(errno: i32) -> io::Result<u32> {
    Err(io::Error::from_raw_os_error(errno))
}

#[test]
fn a_kernel_without_landlock_is_reported_not_failed() {
    for errno in [libc::ENOSYS, libc::EOPNOTSUPP] {
        match landlock::classify_probe(err(errno)).unwrap() {
            status @ LandlockStatus::NotSupported { .. } => {
                assert!(status.to_string().starts_with("Landlock not supported: "), "{status}")
            }
            other => panic!("errno {errno}: {other:?}"),
        }
    }
    assert_eq!(
        landlock::classify_probe(Ok(3)).unwrap(),
        LandlockStatus::Enforced { abi: 3 }
    );
    assert!(matches!(
        landlock::classify_probe(err(libc::EINVAL)),
        Err(LandlockError::Syscall { .. })
    ));
}

#[test]
fn the_view_is_confined_to_the_listed_paths() {
    let writable = support::temp_dir("landlock-rw");
    let readable = support::temp_dir("landlock-ro");
    fs::write(readable.join("given"), b"read me").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = landlock::probe().unwrap();
    in_child(|| {
        let rules = [
            Rule {
                path: writable.to_path_buf(),
                access: Access::ReadWrite,
            },
            Rule {
                path: readable.to_path_buf(),
                access: Access::ReadOnly,
            },
        ];
        let status = landlock::restrict(&rules).map_err(|e| e.to_string())?;
        ensure(status == probe, || format!("restrict said {status:?}, probe {probe:?}"))?;
        let passwd = fs::read("/etc/passwd");
        match status {
            LandlockStatus::NotSupported { .. } => {
                // Nothing is confined: the caller logs and audits that.
                ensure(passwd.is_ok(), || format!("{passwd:?}"))?;
                return Ok(());
            }
            LandlockStatus::Enforced { .. } => {}
        }
        let e = errno_of(passwd)?;
        ensure(e == libc::EACCES, || format!("/etc/passwd: errno {e}"))?;
        let e = errno_of(fs::read_dir("/etc"))?;
        ensure(e == libc::EACCES, || format!("listing /etc: errno {e}"))?;
        // Read-write: create, write, read back, rename, remove.
        let file = writable.join("state");
        fs::write(&file, b"1000").map_err(|e| format!("writing {file:?}: {e}"))?;
        ensure(fs::read(&file).map_err(|e| e.to_string())? == b"1000", || {
            "read back".into()
        })?;
        fs::rename(&file, writable.join("state2")).map_err(|e| e.to_string())?;
        fs::remove_file(writable.join("state2")).map_err(|e| e.to_string())?;
        // Read-only: read yes, write or create no.
        ensure(
            fs::read(readable.join("given")).map_err(|e| e.to_string())? == b"read me",
            || "ro read".into(),
        )?;
        let e = errno_of(fs::write(readable.join("new"), b"x"))?;
        ensure(e == libc::EACCES, || format!("creating in a read-only path: errno {e}"))?;
        let e = errno_of(fs::OpenOptions::new().append(true).open(readable.join("given")))?;
        ensure(e == libc::EACCES, || format!("writing a read-only file: errno {e}"))?;
        // Neither /proc nor any other /etc file is in the list.
        let e = errno_of(fs::read("/proc/self/status").and_then(|_| fs::read("/etc/hostname")))?;
        ensure(e == libc::EACCES, || format!("/proc or /etc/hostname: errno {e}"))?;
        if let LandlockStatus::Enforced { abi: 4.. } = status {
            // TCP connect is denied before any packet: EACCES, not ECONNREFUSED.
            let e = errno_of(TcpStream::connect(("127.0.0.1", port)))?;
            ensure(e == libc::EACCES, || format!("TCP connect: errno {e}"))?;
        }
        Ok(())
    })
    .unwrap();
    drop(listener);
}

#[test]
fn a_missing_rule_path_fails_closed() {
    if let LandlockStatus::NotSupported { .. } = landlock::probe().unwrap() {
        // Without Landlock no rule is opened: restrict succeeds unconfined.
        assert!(matches!(
            landlock::restrict(&[]).unwrap(),
            LandlockStatus::NotSupported { .. }
        ));
        return;
    }
    in_child(|| {
        let rules = [Rule {
            path: "/nonexistent/qga-privsep".into(),
            access: Access::ReadOnly,
        }];
        match landlock::restrict(&rules) {
            Err(LandlockError::Path { .. }) => {}
            other => return Err(format!("{other:?}")),
        }
        // Nothing was enforced: the process is as open as before.
        fs::read("/etc/passwd").map(drop).map_err(|e| e.to_string())
    })
    .unwrap();
}
