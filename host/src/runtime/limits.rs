//! Per-call limits: a memory cap enforced through wasmtime's
//! `ResourceLimiter`, remembering whether it was hit so the error can say so.

use thiserror::Error;

/// The memory cap refused a growth.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("memory limit of {limit} bytes exceeded (wanted {desired})")]
pub struct MemoryLimitHit {
    pub limit: usize,
    pub desired: usize,
}

pub struct CallLimiter {
    memory_bytes: usize,
    table_elements: usize,
    hit: Option<MemoryLimitHit>,
}

impl CallLimiter {
    pub fn new(memory_bytes: usize) -> CallLimiter {
        CallLimiter {
            memory_bytes,
            table_elements: 100_000,
            hit: None,
        }
    }

    /// Whether (and how) the cap was hit during this call.
    pub fn hit(&self) -> Option<MemoryLimitHit> {
        self.hit
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let hit = MemoryLimitHit {
                limit: self.memory_bytes,
                desired,
            };
            self.hit = Some(hit);
            // Trap at once rather than let the guest's allocator see -1 and
            // abort with an anonymous `unreachable`.
            return Err(hit.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
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
}
