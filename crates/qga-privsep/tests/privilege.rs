//! Dropping privilege, run in forked children as root (CI runs as root).

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::Command;

use qga_privsep::privilege::{self, CapSet, CapsError, PrivilegeError};
use qga_privsep::status::ProcessStatus;
use support::{ensure, errno_of, in_child};

const CAP_DAC_OVERRIDE: u64 = 1 << 1;
const CAP_SYS_ADMIN: u64 = 1 << 21;
const CAP_SYS_TIME: u64 = 1 << 25;

fn status_of_a_child_process() -> Result<ProcessStatus, String> {
    let out = Command::new("/bin/cat")
        .arg("/proc/self/status")
        .output()
        .map_err(|e| e.to_string())?;
    ProcessStatus::parse("cat's status", &String::from_utf8_lossy(&out.stdout)).map_err(|e| e.to_string())
}

#[test]
fn the_agent_user_is_qga_or_else_nobody() {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let expected = if passwd.lines().any(|l| l.starts_with("qga:")) {
        "qga"
    } else {
        "nobody"
    };
    let user = privilege::resolve_agent_user().unwrap();
    assert_eq!(user.user, expected);
    assert_ne!(user.uid, 0);
}

#[test]
fn the_main_process_drop_leaves_no_capability_anywhere() {
    in_child(|| {
        let user = privilege::resolve_agent_user().map_err(|e| e.to_string())?;
        let status = privilege::drop_all(&user).map_err(|e| e.to_string())?;
        let text = fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
        for line in [
            "CapInh:\t0000000000000000",
            "CapPrm:\t0000000000000000",
            "CapEff:\t0000000000000000",
        ] {
            ensure(text.contains(line), || format!("{line:?} missing from\n{text}"))?;
        }
        for line in [
            "CapBnd:\t0000000000000000",
            "CapAmb:\t0000000000000000",
            "NoNewPrivs:\t1",
        ] {
            ensure(text.contains(line), || format!("{line:?} missing from\n{text}"))?;
        }
        ensure(status.uids == [user.uid; 4] && status.gids == [user.gid; 4], || {
            format!("{status:?}")
        })?;
        ensure(status.groups.is_empty(), || format!("groups {:?}", status.groups))?;
        // Root's files are out of reach, and nothing it starts gets anything back.
        let shadow = errno_of(fs::File::open("/etc/shadow"))?;
        ensure(shadow == libc::EACCES, || format!("/etc/shadow: errno {shadow}"))?;
        let etc = errno_of(fs::write("/etc/qga-privsep-probe", b"x"))?;
        ensure(etc == libc::EACCES, || format!("writing /etc: errno {etc}"))?;
        let child = status_of_a_child_process()?;
        ensure(
            child.cap_bounding == 0 && child.cap_effective == 0 && child.no_new_privs,
            || format!("{child:?}"),
        )
    })
    .unwrap();
}

#[test]
fn the_drop_refuses_to_run_with_other_threads() {
    in_child(|| {
        let _sleeper = std::thread::spawn(std::thread::park);
        let user = privilege::resolve_agent_user().map_err(|e| e.to_string())?;
        match privilege::drop_all(&user) {
            Err(PrivilegeError::Threaded { threads: 2 }) => {}
            other => return Err(format!("{other:?}")),
        }
        match privilege::keep_only(CapSet::EMPTY) {
            Err(PrivilegeError::Threaded { .. }) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap();
}

/// A root-owned file nobody may read: only CAP_DAC_OVERRIDE opens it.
fn unreadable_file(name: &str) -> (support::TempDir, std::path::PathBuf) {
    let dir = support::temp_dir(name);
    let path = dir.join("mode-000");
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o000)
        .open(&path)
        .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    (dir, path)
}

#[test]
fn the_broker_keeps_exactly_the_computed_capabilities() {
    let (_dir, path) = unreadable_file("keep-dac");
    let mount_target = support::temp_dir("keep-mnt");
    in_child(|| {
        let keep = CapSet::from_names(&["CAP_SYS_TIME", "CAP_DAC_OVERRIDE"]).map_err(|e| e.to_string())?;
        let status = privilege::keep_only(keep).map_err(|e| e.to_string())?;
        let kept = CAP_SYS_TIME | CAP_DAC_OVERRIDE;
        ensure(status.cap_bounding == kept, || {
            format!("CapBnd {:x}", status.cap_bounding)
        })?;
        ensure(status.cap_effective == kept && status.cap_permitted == kept, || {
            format!("{status:?}")
        })?;
        ensure(status.cap_ambient == 0 && status.cap_inheritable == 0, || {
            format!("{status:?}")
        })?;
        fs::File::open(&path).map_err(|e| format!("CAP_DAC_OVERRIDE kept, yet: {e}"))?;
        let target = CString::new(mount_target.as_os_str().as_encoded_bytes()).unwrap();
        let mount = errno_of(support::sys::mount_tmpfs(&target))?;
        ensure(mount == libc::EPERM, || {
            format!("mount without CAP_SYS_ADMIN: errno {mount}")
        })?;
        // A root child (guest-exec) gets the bounding set and no more.
        let child = status_of_a_child_process()?;
        ensure(child.cap_bounding == kept && child.cap_effective == kept, || {
            format!("{child:?}")
        })
    })
    .unwrap();
}

#[test]
fn a_capability_left_out_is_gone_and_cannot_come_back() {
    let (_dir, path) = unreadable_file("drop-dac");
    in_child(|| {
        privilege::keep_only(CapSet::from_bits(CAP_SYS_TIME)).map_err(|e| e.to_string())?;
        let open = errno_of(fs::File::open(&path))?;
        ensure(open == libc::EACCES, || {
            format!("CAP_DAC_OVERRIDE dropped, open gave errno {open}")
        })?;
        match privilege::keep_only(CapSet::from_bits(CAP_SYS_TIME | CAP_SYS_ADMIN)) {
            Err(e @ PrivilegeError::Unavailable { missing }) => {
                ensure(missing == CapSet::from_bits(CAP_SYS_ADMIN), || {
                    format!("missing {missing:?}")
                })?;
                ensure(e.to_string().contains("a restart is required"), || e.to_string())?;
            }
            other => return Err(format!("regaining CAP_SYS_ADMIN: {other:?}")),
        }
        // The refused call changed nothing.
        let status = ProcessStatus::of_self().map_err(|e| e.to_string())?;
        ensure(
            status.cap_bounding == CAP_SYS_TIME && status.cap_effective == CAP_SYS_TIME,
            || format!("{status:?}"),
        )
    })
    .unwrap();
}

#[test]
fn capability_names_are_checked() {
    assert_eq!(CapSet::from_names(&["CAP_SYS_ADMIN"]).unwrap().bits(), CAP_SYS_ADMIN);
    assert_eq!(
        CapSet::from_names(&["CAP_SYS_ADMN"]),
        Err(CapsError::Unknown("CAP_SYS_ADMN".into()))
    );
    assert!(CapSet::from_names(&["sys_admin"]).is_err());
    let names: Vec<String> = CapSet::from_bits(CAP_DAC_OVERRIDE | CAP_SYS_TIME).names().collect();
    assert_eq!(names, ["CAP_DAC_OVERRIDE", "CAP_SYS_TIME"]);
    // The table covers every capability this kernel knows.
    assert!((privilege::last_cap().unwrap() as usize) < privilege::CAPABILITY_NAMES.len());
}
