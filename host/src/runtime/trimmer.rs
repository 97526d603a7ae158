//! Hands the memory that calls freed back to the kernel once they stop.
//!
//! Large transfers reuse the allocator's heap while they run (no page
//! faults on every buffer); once no call has ended for [`QUIET`],
//! `malloc_trim` returns the free pages, and the pages of the program file
//! that start-up or the calls mapped are unmapped (they stay in the page
//! cache). A steady stream of calls keeps its working set; the end of every
//! burst is followed by a trim.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long the calls must have stopped before the trim.
pub const QUIET: Duration = Duration::from_millis(200);

pub struct Trimmer {
    quiet: Duration,
    state: Mutex<State>,
}

impl Default for Trimmer {
    fn default() -> Trimmer {
        Trimmer::with_quiet(QUIET)
    }
}

#[derive(Default)]
struct State {
    /// When the pending trim is due; None when none is pending.
    due: Option<Instant>,
    trims: u64,
}

impl Trimmer {
    pub fn with_quiet(quiet: Duration) -> Trimmer {
        Trimmer {
            quiet,
            state: Mutex::default(),
        }
    }

    /// A call ended: trim once no other call has ended for the quiet time.
    /// Returns at once. Needs a tokio runtime.
    pub fn request(self: &Arc<Self>) {
        let due = Instant::now() + self.quiet;
        {
            let mut state = self.lock();
            let already = state.due.is_some();
            state.due = Some(due);
            if already {
                return;
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut due = due;
            loop {
                tokio::time::sleep_until(due).await;
                let mut state = this.lock();
                match state.due {
                    Some(later) if later > due => due = later,
                    _ => {
                        state.due = None;
                        break;
                    }
                }
            }
            let _ = tokio::task::spawn_blocking(|| {
                super::sys::release_free_memory();
                super::sys::release_binary_pages();
            })
            .await;
            this.lock().trims += 1;
        });
    }

    /// How many trims have run.
    pub fn trims(&self) -> u64 {
        self.lock().trims
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trims_once_after_the_calls_stop() {
        let quiet = Duration::from_millis(500);
        let trimmer = Arc::new(Trimmer::with_quiet(quiet));
        // A stream of calls far closer together than the quiet time.
        for _ in 0..20 {
            trimmer.request();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(trimmer.trims(), 0, "trimmed during a stream of calls");
        let ended = Instant::now();
        while trimmer.trims() == 0 && ended.elapsed() < quiet * 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(trimmer.trims(), 1, "not exactly one trim after the stream ended");
        assert!(ended.elapsed() >= quiet / 2, "trimmed before the calls were quiet");
        // A later call is followed by its own trim.
        trimmer.request();
        let again = Instant::now();
        while trimmer.trims() == 1 && again.elapsed() < quiet * 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(trimmer.trims(), 2);
    }
}
