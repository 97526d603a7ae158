//! The epoch ticker: advances the engine's epoch every [`TICK`] while calls
//! run, which is what makes deadlines fire.
//!
//! It keeps ticking for [`LINGER`] after the last call ends, so a stream of
//! calls never has to wake it (a cross-CPU wake-up on every call costs more
//! than the call); after that it parks and costs nothing while the agent is
//! idle.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use wasmtime::Engine;

/// The ticker's period: the resolution of deadlines.
pub const TICK: Duration = Duration::from_millis(10);

/// How long the ticker goes on after the last call before it parks.
const LINGER: Duration = Duration::from_secs(1);

pub struct Ticker {
    active: AtomicUsize,
    parked: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

/// Owns the ticker thread: stops and joins it when dropped.
pub struct TickerThread {
    ticker: Arc<Ticker>,
    handle: Option<JoinHandle<()>>,
}

/// A call in flight: keeps the ticker running.
pub struct Active<'a>(&'a Ticker);

impl Ticker {
    pub fn start(engine: Engine) -> std::io::Result<(Arc<Ticker>, TickerThread)> {
        let ticker = Arc::new(Ticker {
            active: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        let t = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("qga-epoch".into())
            .spawn(move || t.run(&engine))?;
        Ok((
            ticker.clone(),
            TickerThread {
                ticker,
                handle: Some(handle),
            },
        ))
    }

    fn run(&self, engine: &Engine) {
        let _ = self.thread.set(std::thread::current());
        let linger_ticks = LINGER.as_millis() / TICK.as_millis();
        let mut idle_ticks = 0;
        while !self.stop.load(Ordering::SeqCst) {
            if self.active.load(Ordering::SeqCst) > 0 {
                idle_ticks = 0;
            } else if idle_ticks >= linger_ticks {
                // `enter` increments `active` then reads `parked`; this stores
                // `parked` then reads `active` (all SeqCst): one of the two
                // sees the other, so a call never runs without ticks.
                self.parked.store(true, Ordering::SeqCst);
                if self.active.load(Ordering::SeqCst) == 0 && !self.stop.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                self.parked.store(false, Ordering::SeqCst);
                idle_ticks = 0;
                continue;
            } else {
                idle_ticks += 1;
            }
            std::thread::sleep(TICK);
            engine.increment_epoch();
        }
    }

    pub fn enter(&self) -> Active<'_> {
        self.active.fetch_add(1, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
        Active(self)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for TickerThread {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.ticker.thread.get() {
            t.unpark();
        }
        if let Some(handle) = self.handle.take() {
            // The thread may not have registered itself before `stop` was
            // set; it then sees `stop` at its first check.
            if let Some(t) = self.ticker.thread.get() {
                t.unpark();
            }
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_while_a_call_runs_and_parks_after_linger() {
        let engine = Engine::default();
        let (ticker, thread) = Ticker::start(engine).unwrap();
        {
            let _active = ticker.enter();
            std::thread::sleep(TICK * 5);
        }
        // Parks once LINGER has passed without calls.
        let mut waited = Duration::ZERO;
        while !ticker.parked.load(Ordering::SeqCst) && waited < LINGER * 10 {
            std::thread::sleep(TICK);
            waited += TICK;
        }
        assert!(ticker.parked.load(Ordering::SeqCst), "ticker never parked");
        // A new call wakes it.
        let _active = ticker.enter();
        let mut waited = Duration::ZERO;
        while ticker.parked.load(Ordering::SeqCst) && waited < LINGER * 10 {
            std::thread::sleep(TICK);
            waited += TICK;
        }
        assert!(!ticker.parked.load(Ordering::SeqCst), "ticker not woken by a call");
        drop(_active);
        drop(thread);
    }
}
