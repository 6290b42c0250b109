//! Whether each gateway answers: the truth behind "online" on the screen, `/v1/health`, the
//! metrics and the diagnostics.
//!
//! A TCP connect proves nothing (a dead uplink behind a NAT, a captive portal, a gateway that
//! accepts and never answers); a gateway is online when its last request — a payment's, a
//! recovery query, or the daemon's signed idle probe — got a reply that could be read and
//! verified. Every engine records each request's outcome here; this module only keeps the
//! record and decides nothing about money.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// What is known of one gateway's answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayHealth {
    /// When it last gave an answer (any verified reply, even a refusal).
    pub last_answer_ms: Option<i64>,
    /// When a request last got no answer (timeout, transport error, unverifiable reply).
    pub last_silence_ms: Option<i64>,
    /// Requests without an answer since the last one that got one.
    pub silent_in_a_row: u32,
    /// How long the last answered request took.
    pub last_latency_ms: Option<i64>,
}

impl GatewayHealth {
    /// Online: the most recent request got an answer. `None`: nothing was asked yet.
    pub fn online(&self) -> Option<bool> {
        match (self.last_answer_ms, self.last_silence_ms) {
            (None, None) => None,
            _ => Some(self.silent_in_a_row == 0),
        }
    }
}

/// The record, shared by a process's engines and read by the daemon.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, GatewayHealth>>>);

impl Health {
    /// Records the outcome of one request to `gateway`.
    pub fn record(&self, gateway: &str, answered: bool, at_ms: i64, latency_ms: i64) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let h = m.entry(gateway.to_string()).or_default();
        if answered {
            h.last_answer_ms = Some(at_ms);
            h.silent_in_a_row = 0;
            h.last_latency_ms = Some(latency_ms);
        } else {
            h.last_silence_ms = Some(at_ms);
            h.silent_in_a_row = h.silent_in_a_row.saturating_add(1);
        }
    }

    pub fn get(&self, gateway: &str) -> GatewayHealth {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(gateway)
            .cloned()
            .unwrap_or_default()
    }

    pub fn snapshot(&self) -> BTreeMap<String, GatewayHealth> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Online when every gateway asked so far answered its last request (none asked: `None`).
    pub fn all_online(&self) -> Option<bool> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let known: Vec<bool> = m.values().filter_map(GatewayHealth::online).collect();
        (!known.is_empty()).then(|| known.iter().all(|&b| b))
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn online_follows_the_last_request_not_a_connect() {
        let h = Health::default();
        assert_eq!(h.all_online(), None);
        h.record("aggregator", true, 1_000, 40);
        assert_eq!(h.all_online(), Some(true));
        h.record("aggregator", false, 2_000, 15_000);
        h.record("aggregator", false, 3_000, 15_000);
        let g = h.get("aggregator");
        assert_eq!(g.online(), Some(false));
        assert_eq!(g.silent_in_a_row, 2);
        assert_eq!(h.all_online(), Some(false));
        h.record("aggregator", true, 4_000, 35);
        assert_eq!(h.get("aggregator").online(), Some(true));
        h.record("acp", false, 4_100, 10_000);
        assert_eq!(h.all_online(), Some(false), "one silent gateway is offline");
    }
}
