//! The `hardware` family: vCPUs, memory blocks and CPU statistics, as
//! qemu-ga 7.2 handles them (qga/commands-posix.c). Everything it touches
//! goes through the sysfs capability (paths checked against the command's
//! grant) or read-file (/proc/stat); the decisions are in [`logic`].

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "hardware-family",
        path: "../../wit",
    });

    use super::logic::{self, Sys, SysError};
    use exports::qga::agent::hardware::{
        Guest, GuestCpuStats, GuestLinuxCpuStats, GuestLogicalProcessor, GuestMemoryBlock, GuestMemoryBlockInfo,
        GuestMemoryBlockResponse, GuestMemoryBlockResponseType,
    };
    use qga::agent::types::QgaError;
    use qga::agent::{read_file, sysfs};

    struct Hardware;

    /// The sysfs capability as [`logic::Sys`].
    struct Host;

    fn sys_err(e: sysfs::OsError) -> SysError {
        SysError {
            errno: e.errno,
            message: e.message,
        }
    }

    impl Sys for Host {
        fn open_dir(&mut self, path: &str) -> Result<(), SysError> {
            sysfs::open_dir(path).map_err(sys_err)
        }
        fn list_dir(&mut self, path: &str) -> Result<Vec<(String, bool)>, SysError> {
            sysfs::list_dir(path)
                .map(|l| l.into_iter().map(|e| (e.name, e.is_dir)).collect())
                .map_err(sys_err)
        }
        fn read(&mut self, path: &str, max: u32) -> Result<Vec<u8>, SysError> {
            sysfs::read(path, max).map_err(sys_err)
        }
        fn write(&mut self, path: &str, data: &[u8]) -> Result<(), SysError> {
            sysfs::write(path, data).map_err(sys_err)
        }
    }

    fn err(desc: String) -> QgaError {
        QgaError { desc }
    }

    impl Guest for Hardware {
        fn guest_get_vcpus() -> Result<Vec<GuestLogicalProcessor>, QgaError> {
            let list = logic::get_vcpus(&mut Host).map_err(err)?;
            Ok(list
                .into_iter()
                .map(|v| GuestLogicalProcessor {
                    logical_id: v.logical_id,
                    online: v.online,
                    can_offline: v.can_offline,
                })
                .collect())
        }

        fn guest_set_vcpus(vcpus: Vec<GuestLogicalProcessor>) -> Result<i64, QgaError> {
            let vcpus: Vec<logic::Vcpu> = vcpus
                .into_iter()
                .map(|v| logic::Vcpu {
                    logical_id: v.logical_id,
                    online: v.online,
                    can_offline: v.can_offline,
                })
                .collect();
            logic::set_vcpus(&mut Host, &vcpus).map_err(err)
        }

        fn guest_get_memory_blocks() -> Result<Vec<GuestMemoryBlock>, QgaError> {
            let list = logic::get_memory_blocks(&mut Host).map_err(err)?;
            Ok(list
                .into_iter()
                .map(|b| GuestMemoryBlock {
                    phys_index: b.phys_index,
                    online: b.online,
                    can_offline: b.can_offline,
                })
                .collect())
        }

        fn guest_set_memory_blocks(mem_blks: Vec<GuestMemoryBlock>) -> Result<Vec<GuestMemoryBlockResponse>, QgaError> {
            let blocks: Vec<logic::MemBlock> = mem_blks
                .into_iter()
                .map(|b| logic::MemBlock {
                    phys_index: b.phys_index,
                    online: b.online,
                    can_offline: b.can_offline,
                })
                .collect();
            Ok(logic::set_memory_blocks(&mut Host, &blocks)
                .into_iter()
                .map(|r| GuestMemoryBlockResponse {
                    phys_index: r.phys_index,
                    response: match r.response {
                        logic::Response::Success => GuestMemoryBlockResponseType::Success,
                        logic::Response::NotFound => GuestMemoryBlockResponseType::NotFound,
                        logic::Response::NotSupported => GuestMemoryBlockResponseType::OperationNotSupported,
                        logic::Response::Failed => GuestMemoryBlockResponseType::OperationFailed,
                    },
                    error_code: r.error_code,
                })
                .collect())
        }

        fn guest_get_memory_block_info() -> Result<GuestMemoryBlockInfo, QgaError> {
            let size = logic::memory_block_size(&mut Host).map_err(err)?;
            Ok(GuestMemoryBlockInfo { size })
        }

        fn guest_get_cpustats() -> Result<Vec<GuestCpuStats>, QgaError> {
            let stat = match read_file::read(logic::PROC_STAT) {
                Ok(b) => b,
                Err(read_file::ReadError::NotFound) => {
                    return Err(err(format!(
                        "open(\"{}\"): No such file or directory",
                        logic::PROC_STAT
                    )));
                }
                Err(read_file::ReadError::Other(e)) => {
                    return Err(err(format!("open(\"{}\"): {e}", logic::PROC_STAT)));
                }
            };
            Ok(logic::cpustats(&stat, logic::CLK_TCK)
                .into_iter()
                .map(|s| {
                    GuestCpuStats::Linux(GuestLinuxCpuStats {
                        cpu: s.cpu,
                        user: s.user,
                        nice: s.nice,
                        system: s.system,
                        idle: s.idle,
                        iowait: s.iowait,
                        irq: s.irq,
                        softirq: s.softirq,
                        steal: s.steal,
                        guest: s.guest,
                        guestnice: s.guestnice,
                    })
                })
                .collect())
        }
    }

    export!(Hardware);
}
