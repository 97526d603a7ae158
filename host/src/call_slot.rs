//! The call slot a component call holds while it runs (the dispatcher's
//! budget of calls at once), and stepping out of it around a host call
//! that may block for as long as the kernel or a script takes: the fsfreeze
//! hook, FIFREEZE, FITHAW and FITRIM (and waiting for a freeze in progress).
//! These run to completion, as in qemu-ga, but while they block their slot
//! serves other calls. They have a budget of their own
//! ([`MAX_STEPPED_OUT`]): past it, a call blocks in its slot as before, so
//! blocked calls can never take every blocking thread or pooled instance.
//! Once the host call returns, the call waits for a slot again before its
//! component runs on.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Calls stepped out of their slot at once (each still holds a blocking
/// thread and a pooled instance: 8 running + 32 stepped out stay below the
/// agent's 64 blocking threads and 64 pooled instances).
pub const MAX_STEPPED_OUT: usize = 32;

static STEPPED_OUT: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_STEPPED_OUT));

/// The slot this thread's call holds, and the semaphore it came from.
struct Held {
    calls: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// While alive, the current thread runs a call that holds `permit`; the
/// slot is given back when it drops.
pub struct Holding(());

/// Record that the current thread's call holds `permit` of `calls`.
pub fn hold(calls: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Holding {
    HELD.with(|h| {
        *h.borrow_mut() = Some(Held {
            calls,
            permit: Some(permit),
        })
    });
    Holding(())
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.with(|h| h.borrow_mut().take());
    }
}

/// While alive, the current call is out of its slot (if it had one and
/// the stepped-out budget had room); dropping it takes a slot again.
#[must_use = "the call is out of its slot only while this lives"]
pub struct SteppedOut {
    budget: Option<SemaphorePermit<'static>>,
}

/// Give this thread's slot back for the duration of a blocking host call.
/// Without a slot (a prompt call on the event loop, a direct runtime call)
/// or with the budget spent, nothing changes.
pub fn step_out() -> SteppedOut {
    let budget = HELD.with(|h| {
        let mut held = h.borrow_mut();
        let held = held.as_mut()?;
        held.permit.as_ref()?;
        let budget = STEPPED_OUT.try_acquire().ok()?;
        held.permit = None;
        Some(budget)
    });
    SteppedOut { budget }
}

impl Drop for SteppedOut {
    fn drop(&mut self) {
        if self.budget.take().is_none() {
            return;
        }
        let Some(calls) = HELD.with(|h| h.borrow().as_ref().map(|held| held.calls.clone())) else {
            return;
        };
        // A blocking thread of the agent's runtime: waiting here is what
        // any call does for its slot, on the event loop.
        let permit = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(calls.acquire_owned()).ok(),
            Err(_) => calls.try_acquire_owned().ok(),
        };
        HELD.with(|h| {
            if let Some(held) = h.borrow_mut().as_mut() {
                held.permit = permit;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepped_out_call_gives_its_slot_back_and_takes_one_again() {
        let calls = Arc::new(Semaphore::new(1));
        let permit = calls.clone().try_acquire_owned().unwrap();
        let _holding = hold(calls.clone(), permit);
        assert_eq!(calls.available_permits(), 0);
        {
            let _out = step_out();
            assert_eq!(calls.available_permits(), 1, "the slot serves others meanwhile");
        }
        assert_eq!(calls.available_permits(), 0, "the slot is held again");
        drop(_holding);
        assert_eq!(calls.available_permits(), 1);
    }

    #[test]
    fn without_a_slot_stepping_out_changes_nothing() {
        let _out = step_out();
        assert!(_out.budget.is_none());
    }
}
