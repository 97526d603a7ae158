//! One call: a fresh store with the call's limits and host state, the
//! instance run under its deadline, and a failure put in words.

use std::time::Duration;

use wasmtime::component::{ResourceTable, Val};
use wasmtime::{Store, Trap};

use super::limits::{self, CallLimiter, MemoryLimitHit};
use super::ticker::TICK;
use super::{Inner, Prepared};
use crate::capabilities::{Blob, BlobData, CallCtx, Denied};
use crate::protocol::QmpError;
use crate::qobject::Value;

impl Inner {
    pub(super) fn store(&self, prepared: &Prepared) -> Store<CallCtx> {
        let grant = &prepared.grant;
        let ctx = CallCtx {
            command: prepared.command.clone(),
            grant: grant.clone(),
            wasi: None,
            table: resource_table(),
            limiter: CallLimiter::new(grant.memory_bytes),
            state: self.state.clone(),
            freeze: self.freeze.clone(),
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|c| &mut c.limiter);
        let ticks = grant.deadline.as_millis().div_ceil(TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    pub(super) fn run(&self, prepared: &Prepared, params: &[Val]) -> Result<Option<Value>, QmpError> {
        let command = &*prepared.command;
        let mut store = self.store(prepared);
        let mut results = [Val::Bool(false)];
        let outcome = prepared.pre.instantiate(&mut store).and_then(|instance| {
            let func = instance
                .get_func(&mut store, prepared.export)
                .ok_or_else(|| wasmtime::format_err!("export vanished"))?;
            func.call(&mut store, params, &mut results)
        });
        if let Err(e) = outcome {
            return Err(QmpError::generic(self.describe_failure(prepared, store.data(), &e)));
        }
        let result = std::mem::replace(&mut results[0], Val::Bool(false));
        let reply = match &result {
            Val::Result(Ok(_)) => match result {
                Val::Result(Ok(ok)) => prepared.signature.ok_into_json(ok.map(|b| *b), &mut |blob| {
                    let blob = blob.try_into_resource::<Blob>(&mut store).ok()?;
                    BlobData::take(&mut store.data_mut().table, blob)
                }),
                _ => None,
            },
            Val::Result(Err(err)) => {
                return Err(QmpError::generic(crate::convert::error_desc(err.as_deref())));
            }
            _ => {
                return Err(QmpError::generic(format!("{command}: handler returned no result")));
            }
        };
        if let Some(v) = &reply {
            let len = v.json_len();
            if len > prepared.grant.reply_limit {
                return Err(QmpError::generic(format!(
                    "{command}: handler reply of {len} bytes exceeds its {} limit",
                    human_bytes(prepared.grant.reply_limit)
                )));
            }
        }
        Ok(reply)
    }

    pub(super) fn describe_failure(&self, prepared: &Prepared, ctx: &CallCtx, e: &wasmtime::Error) -> String {
        let command = &*prepared.command;
        if let Some(hit) = ctx
            .limiter
            .hit()
            .or_else(|| e.downcast_ref::<MemoryLimitHit>().copied())
        {
            return format!(
                "{command}: handler exceeded its {} memory limit",
                human_bytes(hit.limit)
            );
        }
        if let Some(denied) = e.downcast_ref::<Denied>() {
            return format!("{command}: {denied}");
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "{command}: handler exceeded its {} deadline",
                human_duration(prepared.grant.deadline)
            ),
            Some(Trap::UnreachableCodeReached) => {
                format!("{command}: handler crashed (panic or wasm unreachable)")
            }
            // A Rust handler's stack lives in its linear memory, below its
            // data: running off its end is an access below address 0.
            Some(Trap::MemoryOutOfBounds) => {
                format!("{command}: handler crashed: out of bounds memory access (stack overflow or bad pointer)")
            }
            Some(Trap::StackOverflow) => format!("{command}: handler crashed: call stack exhausted"),
            Some(trap) => format!(
                "{command}: handler crashed: {}",
                trap.to_string().trim_start_matches("wasm trap: ")
            ),
            None => format!("{command}: handler failed: {e:#}"),
        }
    }
}

/// A call's resource table, capped at [`limits::MAX_RESOURCES`] entries.
fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits::MAX_RESOURCES);
    table
}

fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn human_bytes(n: usize) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
