//! The sandbox's own clock: real time, shifted by what tests advanced and optionally sped up.
//!
//! The rules that depend on time (cancel from 15 s to 5 minutes after the order, same-day undo)
//! read this clock, so a test moves it forward instead of sleeping. Only the sandbox uses it.

use std::time::Instant;

#[derive(Clone, Debug)]
pub struct SandboxClock {
    origin_wall_ms: i64,
    origin: Instant,
    offset_ms: i64,
    rate: f64,
}

impl Default for SandboxClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxClock {
    pub fn new() -> SandboxClock {
        SandboxClock {
            origin_wall_ms: crate::util::now_ms(),
            origin: Instant::now(),
            offset_ms: 0,
            rate: 1.0,
        }
    }

    pub fn now_ms(&self) -> i64 {
        let elapsed = self.origin.elapsed().as_secs_f64() * 1000.0 * self.rate;
        self.origin_wall_ms + self.offset_ms + elapsed as i64
    }

    pub fn advance(&mut self, ms: i64) {
        self.offset_ms += ms.max(0);
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the speed from now on without a jump.
    pub fn set_rate(&mut self, rate: f64) {
        let now = self.now_ms();
        self.origin_wall_ms = now;
        self.origin = Instant::now();
        self.offset_ms = 0;
        self.rate = rate;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_and_never_goes_back() {
        let mut c = SandboxClock::new();
        let a = c.now_ms();
        c.advance(16_000);
        let b = c.now_ms();
        assert!(b - a >= 16_000);
        c.advance(-5);
        c.set_rate(100.0);
        assert!(c.now_ms() >= b);
    }
}
