//! An ext4 image on a loop device, mounted in a scratch directory, for the
//! tests that freeze and trim real filesystems (root, as in CI). Dropping it
//! thaws, unmounts and detaches, even after a panic mid-freeze.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Scratch, run};

pub struct LoopFs {
    _scratch: Scratch,
    dev: String,
    mnt: PathBuf,
}

impl LoopFs {
    /// A fresh filesystem of `size` bytes.
    pub fn new(tag: &str, size: u64) -> LoopFs {
        let scratch = Scratch::new(tag);
        let img = scratch.path("fs.img");
        let mnt = scratch.path("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::File::create(&img).unwrap().set_len(size).unwrap();
        run("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()]);
        let dev = run("losetup", &["-f", "--show", img.to_str().unwrap()]);
        let fs = LoopFs {
            _scratch: scratch,
            dev,
            mnt,
        };
        run("mount", &[&fs.dev, fs.mnt()]);
        fs
    }

    /// The mount point.
    pub fn mnt(&self) -> &str {
        self.mnt.to_str().unwrap()
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Thaw until the kernel refuses (it is not frozen any more).
        for _ in 0..8 {
            let thawed = Command::new("fsfreeze")
                .args(["-u", self.mnt()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !thawed {
                break;
            }
        }
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}
