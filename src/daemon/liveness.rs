//! Which of the daemon's loops are alive: what the systemd watchdog vouches for.
//!
//! Three loops beat here: the recovery loop (between attempts, after every journaled step and
//! while it waits), the gateway probe loop, and the sale controller's tick. Each has its own
//! bound, because a loop may legitimately block for as long as one gateway request can take
//! (connect + total timeout, 20 s with the production defaults): a single fixed limit either
//! kills a healthy terminal waiting on a dead uplink or never notices a wedged one. The
//! watchdog task pings systemd while every loop beat within its bound and stops pinging when
//! one did not, so systemd restarts payterm `WatchdogSec` after the wedge is certain.
//! Time here is monotonic: a wall-clock jump must not look like a wedge.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use crate::config::Config;

/// The loops that beat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    Recovery,
    Probe,
    Controller,
}

impl Loop {
    pub fn name(self) -> &'static str {
        match self {
            Loop::Recovery => "recovery loop",
            Loop::Probe => "gateway probe loop",
            Loop::Controller => "sale controller",
        }
    }
}

/// The last sign of life of each loop, in monotonic milliseconds since the daemon started.
pub struct Beats {
    epoch: Instant,
    recovery: AtomicI64,
    probe: AtomicI64,
    controller: AtomicI64,
}

impl Default for Beats {
    fn default() -> Beats {
        Beats {
            epoch: Instant::now(),
            recovery: AtomicI64::new(0),
            probe: AtomicI64::new(0),
            controller: AtomicI64::new(0),
        }
    }
}

/// How long each loop may stay silent before it counts as wedged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub recovery_ms: i64,
    pub probe_ms: i64,
    pub controller_ms: i64,
}

/// Margin over a loop's longest legitimate silence: scheduling on a loaded 2-core board, a
/// journal commit waiting for another writer.
const MARGIN_MS: i64 = 10_000;

impl Bounds {
    /// From the longest request any configured gateway may take.
    pub fn from_config(cfg: &Config) -> Bounds {
        let g = &cfg.file.gateways;
        let per_gateway: Vec<i64> = [
            g.aggregator
                .as_ref()
                .map(|a| a.connect_timeout_ms + a.timeout_ms),
            g.acp.as_ref().map(|a| a.connect_timeout_ms + a.timeout_ms),
            g.chinaums
                .as_ref()
                .map(|a| a.connect_timeout_ms + a.timeout_ms),
            g.upapi
                .as_ref()
                .map(|a| a.connect_timeout_ms + a.timeout_ms),
        ]
        .into_iter()
        .flatten()
        .map(|ms| ms.min(i64::MAX as u64) as i64)
        .collect();
        let http = per_gateway.iter().copied().max().unwrap_or(20_000);
        Bounds {
            // Between two beats: one request, or a fence refund's request and its follow-up,
            // plus the engine's short waits inside a pass.
            recovery_ms: 2 * http + MARGIN_MS,
            // One probe per gateway, one after the other.
            probe_ms: per_gateway.iter().sum::<i64>().max(http) + MARGIN_MS,
            // The tick is every 500 ms; its journal reads wait at most the busy timeout (10 s).
            controller_ms: 15_000,
        }
    }
}

impl Beats {
    fn now(&self) -> i64 {
        self.epoch.elapsed().as_millis().min(i64::MAX as u128) as i64
    }

    fn slot(&self, l: Loop) -> &AtomicI64 {
        match l {
            Loop::Recovery => &self.recovery,
            Loop::Probe => &self.probe,
            Loop::Controller => &self.controller,
        }
    }

    /// `l` is alive now.
    pub fn beat(&self, l: Loop) {
        self.slot(l).store(self.now(), Ordering::SeqCst);
    }

    /// The first loop silent past its bound, and for how long.
    pub fn stuck(&self, bounds: &Bounds) -> Option<(Loop, i64)> {
        stuck_at(
            self.now(),
            [
                (Loop::Recovery, self.recovery.load(Ordering::SeqCst)),
                (Loop::Probe, self.probe.load(Ordering::SeqCst)),
                (Loop::Controller, self.controller.load(Ordering::SeqCst)),
            ],
            bounds,
        )
    }
}

fn stuck_at(now: i64, last: [(Loop, i64); 3], b: &Bounds) -> Option<(Loop, i64)> {
    last.into_iter().find_map(|(l, at)| {
        let bound = match l {
            Loop::Recovery => b.recovery_ms,
            Loop::Probe => b.probe_ms,
            Loop::Controller => b.controller_ms,
        };
        let silent = now - at;
        (silent > bound).then_some((l, silent))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_blocked_in_one_request_is_alive_and_one_past_its_bound_is_not() {
        let b = Bounds {
            recovery_ms: 50_000,
            probe_ms: 30_000,
            controller_ms: 15_000,
        };
        // The recovery loop has waited 20 s on a dead gateway: that is one request, not a wedge.
        let alive = [
            (Loop::Recovery, 80_000),
            (Loop::Probe, 99_000),
            (Loop::Controller, 99_500),
        ];
        assert_eq!(stuck_at(100_000, alive, &b), None);
        let wedged = [
            (Loop::Recovery, 40_000),
            (Loop::Probe, 99_000),
            (Loop::Controller, 99_500),
        ];
        assert_eq!(
            stuck_at(100_000, wedged, &b),
            Some((Loop::Recovery, 60_000))
        );
        let frozen_ui = [
            (Loop::Recovery, 99_000),
            (Loop::Probe, 99_000),
            (Loop::Controller, 80_000),
        ];
        assert_eq!(
            stuck_at(100_000, frozen_ui, &b).map(|x| x.0),
            Some(Loop::Controller)
        );
    }

    #[test]
    fn bounds_follow_the_gateway_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agg.key"), "k").unwrap();
        let text = r#"
[terminal]
id = "T01"
sandbox = true
[journal]
path = "j.db"
[gateways.aggregator]
base_url = "http://127.0.0.1:8917"
agent_id = "1"
mch_id = "2"
key_file = "agg.key"
connect_timeout_ms = 5000
timeout_ms = 15000
"#;
        let cfg = Config::parse(text, &dir.path().join("c.toml")).unwrap();
        let b = Bounds::from_config(&cfg);
        assert!(b.recovery_ms >= 40_000, "{b:?}");
        assert!(b.probe_ms >= 20_000, "{b:?}");
    }
}
