//! A fake sysfs for the unit tests: files with contents, directories
//! with entries, and a log of writes.

use std::collections::BTreeMap;

use super::{Sys, SysError, enoent};

/// A fake sysfs: files with contents, directories with entries.
#[derive(Default)]
pub(crate) struct Fake {
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeMap<String, Vec<(String, bool)>>,
    pub writes: Vec<(String, Vec<u8>)>,
}

impl Sys for Fake {
    fn open_dir(&mut self, path: &str) -> Result<(), SysError> {
        let p = path.trim_end_matches('/');
        if self.dirs.contains_key(p) {
            Ok(())
        } else {
            Err(enoent())
        }
    }
    fn list_dir(&mut self, path: &str) -> Result<Vec<(String, bool)>, SysError> {
        self.dirs.get(path.trim_end_matches('/')).cloned().ok_or_else(enoent)
    }
    fn read(&mut self, path: &str, max: u32) -> Result<Vec<u8>, SysError> {
        let mut b = self.files.get(path).cloned().ok_or_else(enoent)?;
        b.truncate(max as usize);
        Ok(b)
    }
    fn write(&mut self, path: &str, data: &[u8]) -> Result<(), SysError> {
        self.writes.push((path.to_owned(), data.to_vec()));
        self.files.insert(path.to_owned(), data.to_vec());
        Ok(())
    }
}
