//! The sandbox boundary of paths and open files, attacked: a hostile
//! `file` component (handlers/fixture-file-grants) that tries to do more
//! than each command's grant, a local user flipping symlinks while
//! guest-file-open and guest-exec run, `..` under `**`, and a mount
//! pattern with `..`. Each test is an exploit that worked against an
//! earlier build (docs/threat-model.md lists them) and must keep failing.
//!
//! `QGA_UNDER_TEST=/path/to/qga` runs the tests that use the built-in
//! handlers against another build (to show an exploit on it).

mod support;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Agent, Client, Scratch, s};

/// Bounds of each race: this many tries or this long, whichever first.
const RACE_TRIES: usize = 500;
const RACE_TIME: Duration = Duration::from_secs(20);

fn binary() -> PathBuf {
    std::env::var_os("QGA_UNDER_TEST").map_or_else(support::qga_binary, PathBuf::from)
}

/// An agent with `policy` (TOML) and, when `hostile`, the grabby file
/// family installed as `file.cwasm` (pinned).
fn agent(dir: &Scratch, policy: &str, hostile: bool) -> Agent {
    let policy_path = dir.path("policy.toml");
    let mut policy = policy.to_owned();
    let mut args = vec!["--policy".to_owned(), s(&policy_path).to_owned()];
    if hostile {
        // Precompiled and pinned: the operator trusts this build's code; the
        // sandbox still contains what it does.
        let handlers = dir.path("handlers");
        std::fs::create_dir_all(&handlers).unwrap();
        let wasm = std::fs::read(env!("QGA_TEST_FIXTURE_FILE_GRANTS")).unwrap();
        let digest = support::artifacts::install(&handlers, "file", &wasm);
        policy.push_str(&support::artifacts::pin("file", &digest));
        args.extend(["--handlers".to_owned(), s(&handlers).to_owned()]);
    }
    std::fs::write(&policy_path, policy).unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bin = if hostile { support::qga_binary() } else { binary() };
    Agent::start(&bin, &args)
}

fn call(c: &mut Client, execute: &str, arguments: serde_json::Value) -> serde_json::Value {
    let line = serde_json::json!({"execute": execute, "arguments": arguments}).to_string();
    serde_json::from_str(&c.call(&line)).unwrap()
}

fn error_desc(reply: &serde_json::Value) -> String {
    reply["error"]["desc"].as_str().unwrap_or_default().to_owned()
}

/// A symlink at `link` now pointing at `target`, replaced atomically.
fn point(link: &Path, target: &Path, tmp: &Path) {
    let _ = std::fs::remove_file(tmp);
    symlink(target, tmp).unwrap();
    std::fs::rename(tmp, link).unwrap();
}

/// Flip `link` between `a` and `b` on a thread until the guard drops.
struct Flipper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flipper {
    fn start(link: PathBuf, a: PathBuf, b: PathBuf) -> Flipper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tmp = link.with_extension("flip");
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) && started.elapsed() < RACE_TIME * 2 {
                point(&link, &a, &tmp);
                point(&link, &b, &tmp);
            }
        });
        Flipper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Flipper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Item 1: the open mode is a WIT enum and the host derives the flags. A
/// hostile guest-file-open that opens "r" cannot write from the open call,
/// and a write on the read-only handle fails as qemu-ga's does (EBADF):
/// the file is neither truncated nor written.
#[test]
fn a_read_only_open_can_neither_truncate_nor_write() {
    let dir = Scratch::new("bf-mode");
    let data = dir.path("data");
    std::fs::write(&data, "original").unwrap();
    let policy = format!(
        "[command.\"guest-file-open\"]\nfiles.paths = [\"{}/**\"]\nfiles.modes = [\"r\"]\n",
        s(&dir.0)
    );
    let agent = agent(&dir, &policy, true);
    let mut c = agent.connect();
    let reply = call(
        &mut c,
        "guest-file-open",
        serde_json::json!({"path": s(&data), "mode": "w"}),
    );
    assert!(
        error_desc(&reply).contains("permission denied: guest-file-open is not granted files.write"),
        "{reply}"
    );
    let reply = call(
        &mut c,
        "guest-file-open",
        serde_json::json!({"path": s(&data), "mode": "r"}),
    );
    let handle = reply["return"].as_i64().unwrap_or_else(|| panic!("{reply}"));
    let reply = call(
        &mut c,
        "guest-file-write",
        serde_json::json!({"handle": handle, "buf-b64": "cHduZWQ="}),
    );
    assert_eq!(error_desc(&reply), "Bad file descriptor", "{reply}");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "original");
    let reply = call(&mut c, "guest-file-close", serde_json::json!({"handle": handle}));
    assert_eq!(reply, serde_json::json!({"return": {}}));
}

/// Item 2: grants are per command. guest-file-flush holds no path rule and
/// no open: a hostile flush that opens (and would truncate) a file outside
/// guest-file-open's directory is refused before any syscall.
#[test]
fn a_hostile_flush_cannot_open_anything() {
    let dir = Scratch::new("bf-flush");
    let handle = 900_000 + i64::from(std::process::id() % 99_999);
    let victim = PathBuf::from(format!("/tmp/qga-exploit-flush-{handle}"));
    std::fs::write(&victim, "original").unwrap();
    let policy = format!("[command.\"guest-file-open\"]\nfiles.paths = [\"{}/**\"]\n", s(&dir.0));
    let agent = agent(&dir, &policy, true);
    let mut c = agent.connect();
    let reply = call(&mut c, "guest-file-flush", serde_json::json!({"handle": handle}));
    let desc = error_desc(&reply);
    let _ = std::fs::read_to_string(&victim).map(|text| {
        let _ = std::fs::remove_file(&victim);
        assert_eq!(text, "original", "the flush opened {}", victim.display());
    });
    assert!(
        desc.contains("permission denied: guest-file-flush is not granted files.open"),
        "{reply}"
    );
}

/// Item 3, files: a local user flips `DIR/x` between a granted file and a
/// file outside DIR while guest-file-open "w" runs again and again: the
/// outside file is never truncated, and each open either opened the
/// granted file or was refused.
#[test]
fn symlink_flip_never_redirects_an_open_for_write() {
    let root = Scratch::new("bf-flip-open");
    let granted = root.path("granted");
    let outside = root.path("outside");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let inside_file = granted.join("file");
    let victim = outside.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::write(&inside_file, "scratch").unwrap();
    let link = granted.join("x");
    point(&link, &inside_file, &granted.join("x.flip"));
    let policy = format!(
        "[command.\"guest-file-open\"]\nfiles.paths = [\"{}/**\"]\n",
        s(&granted)
    );
    let agent = agent(&root, &policy, false);
    let mut c = agent.connect();
    // Each way once without a race: the granted file opens, the outside
    // one is refused.
    let open_link = |c: &mut Client| call(c, "guest-file-open", serde_json::json!({"path": s(&link), "mode": "w"}));
    let reply = open_link(&mut c);
    let handle = reply["return"].as_i64().unwrap_or_else(|| panic!("{reply}"));
    call(&mut c, "guest-file-close", serde_json::json!({"handle": handle}));
    point(&link, &victim, &granted.join("x.flip"));
    assert!(error_desc(&open_link(&mut c)).contains("permission denied"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let flipper = Flipper::start(link.clone(), inside_file.clone(), victim.clone());
    let started = Instant::now();
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..RACE_TRIES {
        if started.elapsed() > RACE_TIME {
            break;
        }
        let reply = open_link(&mut c);
        if let Some(handle) = reply["return"].as_i64() {
            opened += 1;
            call(&mut c, "guest-file-close", serde_json::json!({"handle": handle}));
        } else {
            assert!(error_desc(&reply).contains("permission denied"), "{reply}");
            refused += 1;
        }
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious",
            "the outside file was truncated after {opened} opens"
        );
    }
    drop(flipper);
    eprintln!("{opened} opens of the granted file, {refused} refused during the race");
}

/// Item 3, exec: `DIR/prog` flips between an allowed script and a script
/// outside `process.programs`; the outside one never runs (its marker file
/// never appears), the allowed one does (`#!` scripts run from the checked
/// descriptor).
#[test]
fn symlink_flip_never_runs_an_outside_program() {
    let root = Scratch::new("bf-flip-exec");
    let granted = root.path("granted");
    let outside = root.path("outside");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let ran_ok = root.path("ran-ok");
    let marker = root.path("outside-ran");
    let script = |path: &Path, touch: &Path| {
        std::fs::write(path, format!("#!/bin/sh\ntouch '{}'\n", s(touch))).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let allowed = granted.join("allowed.sh");
    let evil = outside.join("evil.sh");
    script(&allowed, &ran_ok);
    script(&evil, &marker);
    let link = granted.join("prog");
    point(&link, &allowed, &granted.join("prog.flip"));
    let policy = format!(
        "[command.\"guest-exec\"]\nprocess.programs = [\"{}/**\"]\n",
        s(&granted)
    );
    let agent = agent(&root, &policy, false);
    let mut c = agent.connect();
    // Each way once without a race: the allowed script runs (a `#!` script
    // from the checked descriptor), the outside one is refused.
    let reply = call(&mut c, "guest-exec", serde_json::json!({"path": s(&link)}));
    let mut pids = vec![reply["return"]["pid"].as_i64().unwrap_or_else(|| panic!("{reply}"))];
    reap(&mut c, &mut pids);
    assert!(ran_ok.exists(), "the allowed script did not run");
    point(&link, &evil, &granted.join("prog.flip"));
    let reply = call(&mut c, "guest-exec", serde_json::json!({"path": s(&link)}));
    assert!(error_desc(&reply).contains("permission denied"), "{reply}");
    let flipper = Flipper::start(link.clone(), allowed.clone(), evil.clone());
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..RACE_TRIES {
        if started.elapsed() > RACE_TIME {
            break;
        }
        let reply = call(&mut c, "guest-exec", serde_json::json!({"path": s(&link)}));
        match reply["return"]["pid"].as_i64() {
            Some(pid) => pids.push(pid),
            None => {
                let desc = error_desc(&reply);
                assert!(
                    desc.contains("permission denied") || desc.contains("cannot start another child"),
                    "{reply}"
                );
                refused += 1;
            }
        }
        if pids.len() % 32 == 31 {
            reap(&mut c, &mut pids);
        }
    }
    drop(flipper);
    reap(&mut c, &mut pids);
    eprintln!("{refused} refused during the race");
    assert!(!marker.exists(), "a program outside process.programs ran");
}

/// Ask guest-exec-status for each child until it has exited.
fn reap(c: &mut Client, pids: &mut Vec<i64>) {
    let deadline = Instant::now() + RACE_TIME;
    while let Some(&pid) = pids.last() {
        let reply = call(c, "guest-exec-status", serde_json::json!({"pid": pid}));
        if reply["return"]["exited"].as_bool() == Some(true) {
            pids.pop();
        } else {
            assert!(Instant::now() < deadline, "child {pid} never exited: {reply}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Item 3: `..` under `**` fails closed. A path that leaves DIR through
/// `..` is matched where it really leads (refused), one through a
/// directory that does not exist fails with the kernel's error and runs
/// or opens nothing.
#[test]
fn dotdot_under_doublestar_fails_closed() {
    let root = Scratch::new("bf-dotdot");
    let granted = root.path("granted");
    let outside = root.path("outside");
    std::fs::create_dir_all(granted.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let marker = root.path("outside-ran");
    let evil = outside.join("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch '{}'\n", s(&marker))).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let policy = format!(
        "[command.\"guest-exec\"]\nprocess.programs = [\"{g}/**\"]\n[command.\"guest-file-open\"]\nfiles.paths = [\"{g}/**\"]\n",
        g = s(&granted)
    );
    let agent = agent(&root, &policy, false);
    let mut c = agent.connect();
    let via_sub = format!("{}/sub/../../outside/evil.sh", s(&granted));
    let reply = call(&mut c, "guest-exec", serde_json::json!({"path": via_sub}));
    assert!(error_desc(&reply).contains("permission denied"), "{reply}");
    let via_missing = format!("{}/nope/../../outside/evil.sh", s(&granted));
    let reply = call(&mut c, "guest-exec", serde_json::json!({"path": via_missing}));
    assert_eq!(
        error_desc(&reply),
        format!(
            "Guest agent command failed, error was 'Failed to execute child process \u{201c}{via_missing}\u{201d} (No such file or directory)'"
        ),
        "{reply}"
    );
    // A local user makes `nope` come and go: whether or not it exists
    // when the path is resolved, the program outside never runs.
    let nope = granted.join("nope");
    let stop = Arc::new(AtomicBool::new(false));
    let toggler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < RACE_TIME * 2 {
                let _ = std::fs::create_dir(&nope);
                let _ = std::fs::remove_dir(&nope);
            }
        })
    };
    let started = Instant::now();
    let mut pids = Vec::new();
    for _ in 0..RACE_TRIES {
        if started.elapsed() > RACE_TIME {
            break;
        }
        let reply = call(&mut c, "guest-exec", serde_json::json!({"path": via_missing}));
        if let Some(pid) = reply["return"]["pid"].as_i64() {
            pids.push(pid);
        }
    }
    stop.store(true, Ordering::Relaxed);
    toggler.join().unwrap();
    reap(&mut c, &mut pids);
    let victim_via = format!("{}/sub/../../outside/victim", s(&granted));
    let reply = call(
        &mut c,
        "guest-file-open",
        serde_json::json!({"path": victim_via, "mode": "w"}),
    );
    assert!(error_desc(&reply).contains("permission denied"), "{reply}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "a program outside process.programs ran");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // And no policy may say `..`.
    let bad = root.path("bad.toml");
    std::fs::write(
        &bad,
        "[command.\"guest-exec\"]\nprocess.programs = [\"/srv/../usr/bin/*\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::qga_binary())
        .args(["policy", "check", s(&bad)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must not contain '..'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Item 4: mount patterns are globs of the one language: `DIR/..` is not
/// below DIR, so guest-fsfreeze-freeze-list refuses it.
#[test]
fn mount_pattern_does_not_match_dotdot() {
    let root = Scratch::new("bf-mount");
    let policy = format!(
        "[command.\"guest-fsfreeze-freeze-list\"]\nmounts = [\"{}/**\"]\n",
        s(&root.0)
    );
    let agent = agent(&root, &policy, false);
    let mut c = agent.connect();
    let up = format!("{}/..", s(&root.0));
    let reply = call(
        &mut c,
        "guest-fsfreeze-freeze-list",
        serde_json::json!({"mountpoints": [up]}),
    );
    assert!(error_desc(&reply).contains("may not use mount point"), "{reply}");
    let reply = call(&mut c, "guest-fsfreeze-status", serde_json::json!({}));
    assert_eq!(reply, serde_json::json!({"return": "thawed"}));
}

/// The checked descriptor is what runs, for every kind of program g_spawn
/// runs: an ELF binary, a `#!` script, and a file without a known format
/// (ENOEXEC: run by /bin/sh, as g_spawn does), each with its arguments.
#[test]
fn programs_of_every_kind_run_from_the_checked_descriptor() {
    let root = Scratch::new("bf-kinds");
    let agent = agent(&root, "", false);
    let mut c = agent.connect();
    let run = |c: &mut Client, path: &str, args: &[&str]| {
        let reply = call(c, "guest-exec", serde_json::json!({"path": path, "arg": args}));
        let mut pids = vec![reply["return"]["pid"].as_i64().unwrap_or_else(|| panic!("{reply}"))];
        reap(c, &mut pids);
    };
    let made = root.path("made-by-touch");
    run(&mut c, "touch", &[s(&made)]);
    assert!(made.exists(), "an ELF binary found in PATH did not run");
    for (name, head) in [("shebang.sh", "#!/bin/sh\n"), ("plain.sh", "")] {
        let script = root.path(name);
        let marker = root.path(&format!("{name}.ran"));
        std::fs::write(&script, format!("{head}touch \"$1\"\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        run(&mut c, s(&script), &[s(&marker)]);
        assert!(marker.exists(), "{name} did not run");
    }
}

/// A name that is not UTF-8 is matched against grants as its bytes, never
/// as its lossy text: with only `d/\u{FFFD}` granted, a symlink to its
/// neighbour `d/\xFF` (whose lossy text is the same) opens nothing.
#[test]
fn a_name_that_is_not_utf8_is_not_taken_for_its_lossy_text() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let root = Scratch::new("bf-bytes");
    let dir = root.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    let granted = dir.join("\u{FFFD}");
    let invalid = dir.join(OsStr::from_bytes(b"\xFF"));
    std::fs::write(&granted, "granted\n").unwrap();
    std::fs::write(&invalid, "not granted\n").unwrap();
    let link = dir.join("link");
    symlink(OsStr::from_bytes(b"\xFF"), &link).unwrap();
    let policy = format!(
        "[command.\"guest-file-open\"]\nfiles.paths = [\"{}\"]\nfiles.modes = [\"r\"]\n",
        s(&granted)
    );
    let agent = agent(&root, &policy, false);
    let mut c = agent.connect();
    // Positive control: the granted name opens and reads.
    let reply = call(
        &mut c,
        "guest-file-open",
        serde_json::json!({"path": s(&granted), "mode": "r"}),
    );
    let handle = reply["return"].as_i64().unwrap_or_else(|| panic!("{reply}"));
    let read = call(&mut c, "guest-file-read", serde_json::json!({"handle": handle}));
    assert_eq!(read["return"]["count"], 8, "{read}");
    // The link resolves to the name that is not UTF-8: refused.
    let reply = call(
        &mut c,
        "guest-file-open",
        serde_json::json!({"path": s(&link), "mode": "r"}),
    );
    assert!(
        error_desc(&reply).contains("permission denied: guest-file-open may not open"),
        "{reply}"
    );
    assert_eq!(std::fs::read_to_string(&invalid).unwrap(), "not granted\n");
}
