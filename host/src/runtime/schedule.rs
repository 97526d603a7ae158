//! Where a component call runs: a prompt command on the event-loop thread
//! that read it ([`super::prompt`]), everything else on a blocking thread
//! holding one of [`MAX_CONCURRENT_CALLS`] call slots ([`crate::call_slot`]),
//! and once the calls stop, the memory they freed goes back to the kernel
//! ([`super::trimmer`]). Dispatch only routes; this is the runtime's side
//! of the [`crate::dispatch::Backend`] boundary.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::trimmer::Trimmer;
use crate::dispatch::Generation;
use crate::protocol::QmpError;
use crate::qobject::{Dict, Value};

/// Component calls running at once. Handlers are CPU-bound and the
/// machine has few cores: more in parallel only costs threads and
/// instance memory. Clients beyond it wait their turn.
pub const MAX_CONCURRENT_CALLS: usize = 8;

/// The call slots and the trimmer of one agent (shared by its generations).
pub struct Scheduler {
    calls: Arc<Semaphore>,
    /// Hands memory back to the kernel once the calls stop.
    trimmer: Arc<Trimmer>,
}

impl Default for Scheduler {
    fn default() -> Scheduler {
        Scheduler {
            calls: Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS)),
            trimmer: Arc::default(),
        }
    }
}

impl Scheduler {
    /// Run `name` on `generation`, on this thread if it is prompt, else on
    /// a blocking thread once a call slot is free.
    pub async fn run(
        &self,
        generation: Arc<dyn Generation>,
        name: &str,
        args: Option<&Dict>,
    ) -> Result<Option<Value>, QmpError> {
        if generation.is_prompt(name)
            && let Some(result) = super::prompt::run(|| generation.call(name, args))
        {
            return result;
        }
        let slot = self
            .calls
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let owned = name.to_owned();
        let args = args.cloned();
        let calls = self.calls.clone();
        // The call holds its slot on its thread; a blocking host call steps
        // out of it meanwhile (crate::call_slot).
        let result = tokio::task::spawn_blocking(move || {
            let _slot = crate::call_slot::hold(calls, slot);
            generation.call(&owned, args.as_ref())
        })
        .await
        .unwrap_or_else(|e| Err(QmpError::generic(format!("{name}: handler thread failed: {e}"))));
        self.after_call();
        result
    }

    /// Trim once the agent has been quiet for a while (at start-up: what
    /// start-up alone used). Needs a tokio runtime.
    pub fn trim_when_quiet(&self) {
        self.trimmer.request();
    }

    /// Once no call is running, hand the memory the calls freed (large
    /// transfers, bursts of concurrent calls) back to the kernel.
    fn after_call(&self) {
        if self.calls.available_permits() == MAX_CONCURRENT_CALLS {
            self.trimmer.request();
        }
    }
}
