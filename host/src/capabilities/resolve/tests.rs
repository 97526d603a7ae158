use super::*;
use std::os::unix::fs::symlink;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qga-resolve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(&dir).unwrap()
}

fn resolved(path: &Path) -> PathBuf {
    existing(path).unwrap().path
}

#[test]
fn system_symlinks_resolve_as_the_kernel_does() {
    for p in [
        "/bin/sh",
        "/etc/os-release",
        "/proc/net/dev",
        "/proc/self/mountinfo",
        "/usr/bin/env",
    ] {
        let p = Path::new(p);
        if p.exists() {
            assert_eq!(resolved(p), std::fs::canonicalize(p).unwrap(), "{}", p.display());
        }
    }
    assert_eq!(resolved(Path::new("/")), Path::new("/"));
    assert_eq!(resolved(Path::new("/..")), Path::new("/"));
    assert_eq!(
        resolved(Path::new("/etc/../etc/./hostname")),
        Path::new("/etc/hostname")
    );
}

#[test]
fn links_dotdot_loops_and_missing_files() {
    let dir = scratch("links");
    std::fs::create_dir(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/f"), "x").unwrap();
    symlink("d/f", dir.join("rel")).unwrap();
    symlink(dir.join("d"), dir.join("abs")).unwrap();
    symlink("loop", dir.join("loop")).unwrap();
    symlink("nowhere", dir.join("dangling")).unwrap();
    symlink("/proc/self/fd/0", dir.join("magic")).unwrap();
    assert_eq!(resolved(&dir.join("rel")), dir.join("d/f"));
    assert_eq!(resolved(&dir.join("abs/f")), dir.join("d/f"));
    // `..` after a symlink is the parent of its target, as in the kernel.
    assert_eq!(resolved(&dir.join("abs/../rel")), dir.join("d/f"));
    let e = existing(&dir.join("loop")).unwrap_err();
    assert_eq!(e.errno, nix::errno::Errno::ELOOP);
    assert_eq!(
        existing(&dir.join("d/f/x")).unwrap_err().errno,
        nix::errno::Errno::ENOTDIR
    );
    assert_eq!(
        existing(&dir.join("d/f/")).unwrap_err().errno,
        nix::errno::Errno::ENOTDIR
    );
    assert_eq!(
        existing(Path::new("/dev/null/.")).unwrap_err().errno,
        nix::errno::Errno::ENOTDIR
    );
    assert_eq!(
        existing(Path::new("/dev/null/..")).unwrap_err().errno,
        nix::errno::Errno::ENOTDIR
    );
    assert_eq!(resolved(&dir.join("./d/./f")), dir.join("d/f"));
    let long = format!("/{}", "./".repeat(2100));
    assert_eq!(
        existing(Path::new(&long)).unwrap_err().errno,
        nix::errno::Errno::ENAMETOOLONG
    );
    // A missing file may be created only when asked, never through a
    // dangling symlink (qemu-ga's O_EXCL open refuses it too).
    assert_eq!(existing(&dir.join("new")).unwrap_err().errno, nix::errno::Errno::ENOENT);
    match resolve(&dir.join("abs/new"), true).unwrap() {
        Target::Missing(m) => assert_eq!(m.path, dir.join("d/new")),
        Target::Existing(r) => panic!("{r:?}"),
    }
    assert_eq!(
        resolve(&dir.join("dangling"), true).unwrap_err().errno,
        nix::errno::Errno::ENOENT
    );
    // The error says which resolved component failed.
    let e = existing(&dir.join("nope/../../x")).unwrap_err();
    assert_eq!(e.at, dir.join("nope"));
    // A magic link is text: /proc/self/fd/0 resolves to what fd 0's link
    // says, walked as a path, never to the descriptor's object itself.
    if let Ok(r) = existing(&dir.join("magic")) {
        assert!(!r.path.starts_with("/proc/self/fd"), "{}", r.path.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reopen_acts_on_the_resolved_inode() {
    let dir = scratch("reopen");
    std::fs::write(dir.join("a"), "A").unwrap();
    std::fs::write(dir.join("b"), "B").unwrap();
    symlink("a", dir.join("link")).unwrap();
    let r = existing(&dir.join("link")).unwrap();
    // The link is swapped after resolution: the open still gets `a`.
    std::fs::remove_file(dir.join("link")).unwrap();
    symlink("b", dir.join("link")).unwrap();
    let f = r.open(OFlag::O_RDONLY).unwrap();
    assert_eq!(std::io::read_to_string(f).unwrap(), "A");
    std::fs::remove_dir_all(&dir).unwrap();
}
