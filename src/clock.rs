//! Time as an input: the wall clock and the waits of everything above the pure core.
//!
//! The engine, the recovery loop and the sale controller take a [`Clock`] instead of reading
//! the system's time or sleeping themselves, so the same code runs on real time in the daemon
//! and on virtual time in the simulator and the tests (seeded, replayable, thousands of runs in
//! seconds). Only the binary's wiring picks [`SystemClock`]. This module owns no policy: it
//! tells the time and waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall-clock milliseconds since the Unix epoch, and a way to let time pass.
pub trait Clock: Send + Sync {
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;
    /// Lets `d` pass. A virtual clock moves itself forward instead of waiting.
    fn sleep(&self, d: Duration);
}

/// The system's clock and `std::thread::sleep`: what the daemon and the CLI run on.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::util::now_ms()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A virtual clock: it stands still until it is advanced, and a sleep advances it. Cheap to
/// clone; the clones share one time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration) {
        self.advance(d.as_millis().min(i64::MAX as u128) as i64);
    }
}

/// The clock everything uses unless told otherwise.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_or_slept() {
        let c = ManualClock::new(1_000);
        let shared = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        c.sleep(Duration::from_millis(250));
        assert_eq!(shared.now_ms(), 1_250, "clones share the time");
        shared.advance(-5);
        assert_eq!(c.now_ms(), 1_250, "time never runs backwards by advance");
        c.set(10);
        assert_eq!(c.now_ms(), 10);
    }
}
