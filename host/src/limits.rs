//! Per-call limits: one memory budget per call that counts everything the
//! call makes the agent hold — every linear memory of the instance (a
//! component may declare many: wasmtime's `ResourceLimiter` sees each, and
//! they are summed), its tables, and host memory held for the call (blobs
//! returned by `files.read`) — plus caps on how many memories, tables and
//! core instances one call may create, so that a component declaring many
//! memories cannot take the pool's slots from other calls. Whether the
//! budget was hit is remembered so the error can say so.

use thiserror::Error;

/// Linear memories one call may create (a Rust component has one).
pub const MAX_MEMORIES: usize = 4;
/// Tables one call may create (a component's shims have a few).
pub const MAX_TABLES: usize = 32;
/// Core instances one call may create.
pub const MAX_INSTANCES: usize = 64;
/// Entries one call's resource table may hold at once.
pub const MAX_RESOURCES: usize = 4096;
/// Elements one table may hold.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// What one table element costs the host (a pointer-sized slot, rounded up).
const TABLE_ELEMENT_BYTES: usize = 16;

/// The memory budget refused a growth or a host allocation.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("memory limit of {limit} bytes exceeded (wanted {desired})")]
pub struct MemoryLimitHit {
    pub limit: usize,
    pub desired: usize,
}

pub struct CallLimiter {
    budget: usize,
    /// Bytes of all linear memories, tables and host-held data now.
    used: usize,
    hit: Option<MemoryLimitHit>,
}

impl CallLimiter {
    pub fn new(memory_bytes: usize) -> CallLimiter {
        CallLimiter {
            budget: memory_bytes,
            used: 0,
            hit: None,
        }
    }

    /// Whether (and how) the budget was hit during this call.
    pub fn hit(&self) -> Option<MemoryLimitHit> {
        self.hit
    }

    /// Bytes counted against the budget now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Count `old` bytes becoming `new` bytes; refused (and remembered)
    /// when the total would pass the budget.
    fn resize(&mut self, old: usize, new: usize) -> Result<(), MemoryLimitHit> {
        let total = self.used.saturating_sub(old).saturating_add(new);
        if total > self.budget {
            let hit = MemoryLimitHit {
                limit: self.budget,
                desired: total,
            };
            self.hit = Some(hit);
            return Err(hit);
        }
        self.used = total;
        Ok(())
    }

    /// Count `bytes` the host holds for this call (a blob).
    pub fn charge_host(&mut self, bytes: usize) -> Result<(), MemoryLimitHit> {
        self.resize(0, bytes)
    }

    /// `bytes` charged earlier are no longer held.
    pub fn release_host(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Trap at once rather than let the guest's allocator see -1 and
        // abort with an anonymous `unreachable`.
        self.resize(current, desired)?;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        let bytes = |n: usize| n.saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(self.resize(bytes(current), bytes(desired)).is_ok())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn growth_past_the_cap_traps_and_is_remembered() {
        let mut l = CallLimiter::new(64 << 20);
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert!(l.hit().is_none());
        assert!(l.memory_growing(1 << 20, 65 << 20, None).is_err());
        assert_eq!(l.hit().unwrap().limit, 64 << 20);
    }

    #[test]
    fn memories_tables_and_host_bytes_share_one_budget() {
        let mut l = CallLimiter::new(64 << 20);
        // Two memories of 30 MiB each: the second fits, a third does not.
        assert!(l.memory_growing(0, 30 << 20, None).unwrap());
        assert!(l.memory_growing(0, 30 << 20, None).unwrap());
        assert!(l.memory_growing(0, 30 << 20, None).is_err());
        assert!(l.hit().is_some());
        // A blob of 3 MiB fits in what is left; one of 5 MiB more does not.
        let mut l = CallLimiter::new(64 << 20);
        assert!(l.memory_growing(0, 60 << 20, None).unwrap());
        l.charge_host(3 << 20).unwrap();
        assert!(l.charge_host(5 << 20).is_err());
        l.release_host(3 << 20);
        l.charge_host(4 << 20).unwrap();
        // Tables count too.
        assert!(!l.table_growing(0, 1 << 20, None).unwrap());
        assert_eq!(l.used(), 64 << 20);
    }
}
