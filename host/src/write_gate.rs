//! The gate the agent's own log writes pass through (the audit log, `-l`).
//!
//! A write(2) to a frozen filesystem blocks until it is thawed, and thaw
//! is a request the agent must still be able to serve: so while a freeze
//! runs (from before its hook to after the last FITHAW) the gate is closed
//! and log lines are buffered instead of written. [`WriteGate::close`]
//! waits for the writes already past the gate (the filesystems are not
//! frozen yet, so they finish); after it returns no log write can reach a
//! filesystem the freeze is about to freeze. [`WriteGate::open`] lets
//! writes through again and has every registered sink write what it
//! buffered.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

/// Something that buffers while the gate is closed.
pub trait AfterThaw: Send + Sync {
    /// Write what was buffered (the gate is open again).
    fn after_thaw(&self);
}

#[derive(Default)]
struct State {
    closed: bool,
    /// Writes past the gate, not finished yet.
    writers: usize,
}

#[derive(Default)]
pub struct WriteGate {
    state: Mutex<State>,
    drained: Condvar,
    sinks: Mutex<Vec<Weak<dyn AfterThaw>>>,
}

impl std::fmt::Debug for WriteGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGate").field("closed", &self.is_closed()).finish()
    }
}

/// A write allowed through the gate; the gate cannot close until it drops.
pub struct Pass<'a>(&'a WriteGate);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.writers -= 1;
        if state.writers == 0 {
            self.0.drained.notify_all();
        }
    }
}

impl WriteGate {
    pub fn new() -> Arc<WriteGate> {
        Arc::new(WriteGate::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pass to write now, or None while a freeze holds the gate closed.
    /// Never waits.
    pub fn enter(&self) -> Option<Pass<'_>> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        state.writers += 1;
        Some(Pass(self))
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Close the gate and wait for the writes already past it.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        while state.writers > 0 {
            state = self.drained.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Open the gate and have every sink write what it buffered.
    pub fn open(&self) {
        let was_closed = std::mem::replace(&mut self.lock().closed, false);
        if !was_closed {
            return;
        }
        let sinks: Vec<Arc<dyn AfterThaw>> = {
            let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
            sinks.retain(|s| s.strong_count() > 0);
            sinks.iter().filter_map(Weak::upgrade).collect()
        };
        for sink in sinks {
            sink.after_thaw();
        }
    }

    /// Tell `sink` when the gate opens.
    pub fn register(&self, sink: Weak<dyn AfterThaw>) {
        self.sinks.lock().unwrap_or_else(|p| p.into_inner()).push(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_waits_for_writes_in_progress_and_refuses_new_ones() {
        let gate = WriteGate::new();
        let pass = gate.enter().expect("open gate lets a write through");
        let closing = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.close())
        };
        // The closer waits for `pass`; meanwhile new writes are refused.
        while !gate.is_closed() {
            std::thread::yield_now();
        }
        assert!(gate.enter().is_none());
        assert!(!closing.is_finished(), "close returned while a write was past the gate");
        drop(pass);
        closing.join().unwrap();
        assert!(gate.enter().is_none());
        gate.open();
        assert!(gate.enter().is_some());
    }

    #[test]
    fn open_tells_each_live_sink() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl AfterThaw for Count {
            fn after_thaw(&self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let gate = WriteGate::new();
        let sink = Arc::new(Count(Default::default()));
        let weak: Weak<dyn AfterThaw> = Arc::downgrade(&(sink.clone() as Arc<dyn AfterThaw>));
        gate.register(weak);
        gate.open();
        assert_eq!(sink.0.load(std::sync::atomic::Ordering::SeqCst), 0, "was not closed");
        gate.close();
        gate.open();
        assert_eq!(sink.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
