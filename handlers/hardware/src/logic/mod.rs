//! qemu-ga 7.2's vCPU, memory-block and cpustats logic over an abstract
//! sysfs ([`Sys`]), so it is tested natively with a fake tree. One module
//! per command group: [`vcpus`], [`memory`], [`cpustats`].

mod cpustats;
#[cfg(test)]
mod fake;
mod memory;
mod vcpus;

pub use cpustats::{CpuStat, cpustats};
pub use memory::{MemBlock, MemResponse, Response, get_memory_blocks, memory_block_size, set_memory_blocks};
pub use vcpus::{Vcpu, get_vcpus, set_vcpus};

pub const CPU_DIR: &str = "/sys/devices/system/cpu";
pub const MEMORY_DIR: &str = "/sys/devices/system/memory/";
pub const PROC_STAT: &str = "/proc/stat";
/// sysconf(_SC_CLK_TCK): USER_HZ, 100 on every Linux ABI qemu-ga runs on.
pub const CLK_TCK: u64 = 100;

pub(crate) const ENOENT: i32 = 2;

/// An errno and its strerror text.
#[derive(Debug, Clone, PartialEq)]
pub struct SysError {
    pub errno: i32,
    pub message: String,
}

/// What the handler may do with sysfs.
pub trait Sys {
    fn open_dir(&mut self, path: &str) -> Result<(), SysError>;
    fn list_dir(&mut self, path: &str) -> Result<Vec<(String, bool)>, SysError>;
    fn read(&mut self, path: &str, max: u32) -> Result<Vec<u8>, SysError>;
    fn write(&mut self, path: &str, data: &[u8]) -> Result<(), SysError>;
}

pub(crate) fn enoent() -> SysError {
    SysError {
        errno: ENOENT,
        message: "No such file or directory".into(),
    }
}
