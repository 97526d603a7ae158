//! Prompt calls run on the event-loop thread itself.
//!
//! A prompt command ([`crate::capabilities::Grant::is_prompt`]) is
//! cheapest on the thread that read its request: no cross-thread wake-up
//! each way, which costs more than the call. One thing cannot run there:
//! wasmtime-wasi's synchronous bindings block on the tokio runtime for WASI
//! stream I/O (a handler printing to stderr, as a Rust panic does), and
//! tokio refuses that on a thread driving the runtime, with a panic before
//! anything is done. [`run`] catches exactly that case and says so; the
//! caller then runs the call again on a blocking thread, which is safe for
//! commands that only read. The refusal is not printed: the panic hook
//! stays quiet while a prompt call runs on this thread.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static IN_PROMPT_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Run `call` here; `None` if it needed to block on the runtime.
pub fn run<R>(call: impl FnOnce() -> R) -> Option<R> {
    IN_PROMPT_CALL.with(|f| f.set(true));
    let result = catch_unwind(AssertUnwindSafe(call));
    IN_PROMPT_CALL.with(|f| f.set(false));
    result.ok()
}

/// Keep the default panic report, except for a prompt call's refusal
/// (see the module documentation). Call once at start-up.
pub fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_PROMPT_CALL.with(Cell::get) {
            report(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_blocks_on_the_runtime_is_caught_and_reported_as_none() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            assert_eq!(run(|| 7), Some(7));
            // What wasmtime-wasi's synchronous bindings do for stream I/O.
            let blocked = run(|| tokio::runtime::Handle::current().block_on(async { 1 }));
            assert_eq!(blocked, None);
            assert!(!IN_PROMPT_CALL.with(Cell::get));
        });
    }
}
