//! A one-line progress bar on stderr (bytes, percentage, rate, ETA), drawn
//! only when stderr is a terminal, at most ten times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::show::human;

pub struct Progress {
    total: Option<u64>,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    enabled: bool,
}

const REDRAW: Duration = Duration::from_millis(100);

impl Progress {
    pub fn new(total: Option<u64>) -> Progress {
        Progress {
            total,
            done: 0,
            started: Instant::now(),
            drawn: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.enabled && self.drawn.is_none_or(|at| at.elapsed() >= REDRAW) {
            self.drawn = Some(Instant::now());
            let _ = write!(std::io::stderr(), "\r{}\x1b[K", self.line());
        }
    }

    /// Erase the bar.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let rate_text = format!("{}/s", human(rate as u64));
        match self.total {
            Some(total) if total > 0 => {
                let width = 30;
                let filled = ((self.done.min(total) as f64 / total as f64) * width as f64) as usize;
                let eta = if rate > 0.0 {
                    format!("{:.0}s", total.saturating_sub(self.done) as f64 / rate)
                } else {
                    "?".to_owned()
                };
                format!(
                    "[{}{}] {:>3}% {} / {}  {rate_text}  ETA {eta}",
                    "#".repeat(filled),
                    " ".repeat(width - filled),
                    self.done.min(total) * 100 / total,
                    human(self.done),
                    human(total)
                )
            }
            _ => format!("{}  {rate_text}", human(self.done)),
        }
    }
}
