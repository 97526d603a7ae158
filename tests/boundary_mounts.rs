//! guest-fsfreeze-freeze and -thaw against a local user who shadows a mount
//! point: the mount point is walked through the resolver, and only the
//! root of the mount listed in mountinfo (its mnt_id and st_dev, the
//! directory above on another mount) is frozen. A symlink flipped into the
//! path between the agent's read of mountinfo and its open never makes it
//! freeze a filesystem outside the policy's `mounts`. Loop devices, root.
//!
//! `QGA_UNDER_TEST=/path/to/qga` runs them against another build (to show
//! the exploit on it).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::loopfs::LoopFs;
use support::{Agent, Scratch, run};

const RACE_TRIES: usize = 300;
const RACE_TIME: Duration = Duration::from_secs(20);
const FREEZE: &str = r#"{"execute":"guest-fsfreeze-freeze"}"#;
const THAW: &str = r#"{"execute":"guest-fsfreeze-thaw"}"#;

fn binary() -> PathBuf {
    std::env::var_os("QGA_UNDER_TEST").map_or_else(support::qga_binary, PathBuf::from)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A loop filesystem moved to `place` for the test, moved back (so that
/// its own drop unmounts it) when dropped, even after a panic.
struct Moved {
    fs: LoopFs,
    place: PathBuf,
}

impl Moved {
    fn new(fs: LoopFs, place: PathBuf) -> Moved {
        std::fs::create_dir_all(&place).unwrap();
        run("mount", &["--move", fs.mnt(), s(&place)]);
        Moved { fs, place }
    }
}

impl Drop for Moved {
    fn drop(&mut self) {
        for _ in 0..8 {
            let thawed = Command::new("fsfreeze")
                .args(["-u", s(&self.place)])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !thawed {
                break;
            }
        }
        let _ = Command::new("mount")
            .args(["--move", s(&self.place), self.fs.mnt()])
            .status();
    }
}

/// Whether some other freezer holds `mnt` frozen: our own FIFREEZE fails
/// with EBUSY then (and is undone at once when it succeeds).
fn frozen_by_someone(mnt: &Path) -> bool {
    let ours = Command::new("fsfreeze")
        .args(["-f", s(mnt)])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if ours {
        run("fsfreeze", &["-u", s(mnt)]);
    }
    !ours
}

#[test]
fn a_symlink_flipped_into_a_mount_point_path_never_freezes_another_filesystem() {
    let base = Scratch::new("mount-flip");
    let granted = base.path("D");
    let outside = base.path("out");
    let inside = Moved::new(LoopFs::new("flip-in", 32 << 20), granted.join("m"));
    let victim = Moved::new(LoopFs::new("flip-out", 32 << 20), outside.join("m"));
    let policy = base.path("policy.toml");
    let mounts = format!("mounts = [\"{}/**\"]\n", granted.display());
    std::fs::write(
        &policy,
        format!("[command.\"guest-fsfreeze-freeze\"]\n{mounts}[command.\"guest-fsfreeze-thaw\"]\n{mounts}"),
    )
    .unwrap();
    let agent = Agent::start(&binary(), &["--policy", s(&policy)]);
    let mut c = agent.connect();

    // Positive control: unshadowed, the granted filesystem is frozen and
    // the other one is not.
    assert_eq!(c.call(FREEZE), r#"{"return": 1}"#);
    assert!(frozen_by_someone(&inside.place));
    assert!(!frozen_by_someone(&victim.place));
    assert_eq!(c.call(THAW), r#"{"return": 1}"#);

    // The local user: moves D away and puts a symlink D -> out in its
    // place, then back, again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let (granted, parked) = (granted.clone(), base.path("E"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&granted, &parked).unwrap();
                std::os::unix::fs::symlink("out", &granted).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                std::fs::remove_file(&granted).unwrap();
                std::fs::rename(&parked, &granted).unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let start = Instant::now();
    let mut tries = 0;
    let mut froze_inside = 0;
    let mut breaches = Vec::new();
    while tries < RACE_TRIES && start.elapsed() < RACE_TIME {
        tries += 1;
        let reply = c.call(FREEZE);
        if reply == r#"{"return": 1}"# {
            froze_inside += 1;
        }
        if frozen_by_someone(&victim.place) {
            breaches.push(reply);
            run("fsfreeze", &["-u", s(&victim.place)]);
        }
        c.call(THAW);
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    c.call(THAW);
    eprintln!("{tries} freezes, {froze_inside} froze the granted filesystem");
    assert!(
        breaches.is_empty(),
        "the filesystem outside the grant was frozen {} times in {tries} tries: {breaches:?}",
        breaches.len()
    );
    assert!(tries > 0);
    // Unshadowed again: everything works as before the race.
    assert!(!frozen_by_someone(&inside.place));
    assert_eq!(c.call(FREEZE), r#"{"return": 1}"#);
    assert_eq!(c.call(THAW), r#"{"return": 1}"#);
}
