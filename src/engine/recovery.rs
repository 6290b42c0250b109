//! Recovery and the store-and-forward drain: every unsettled attempt, oldest first.
//!
//! Run at start-up before any new sale, on reconnect, on a timer, and by `payterm recover`.
//! Each open attempt is driven from its journaled state (an intent is queried before it is ever
//! fenced; a reverse is re-sent), at a bounded request rate per gateway with jitter, and nothing
//! is ever dropped: an attempt that cannot finish now goes back to the queue with backoff, and
//! one that stays unsettled past its review deadline is handed to a person.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use super::{Engine, EngineError, Observer, Patience};
use crate::core::machine::AttemptState;
use crate::journal::RefundState;

/// What one recovery pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecoveryReport {
    /// (order id, out_trade_no, state before, state after)
    pub attempts: Vec<(String, String, AttemptState, AttemptState)>,
    /// (out_refund_no, state after)
    pub refunds: Vec<(String, RefundState)>,
    pub errors: Vec<String>,
}

impl RecoveryReport {
    pub fn still_open(&self) -> usize {
        self.attempts.iter().filter(|a| a.3.needs_work()).count()
            + self.refunds.iter().filter(|r| !r.1.is_final()).count()
    }

    pub fn in_review(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.3 == AttemptState::ManualReview)
            .count()
    }
}

impl Engine {
    /// One pass over every unsettled attempt and refund. `max_wait_ms` bounds how long it sleeps
    /// for a single attempt's timer (a cancel that may only be sent 15 s after the order, say).
    pub fn recover(
        &mut self,
        max_wait_ms: i64,
        observe: Observer<'_>,
    ) -> Result<RecoveryReport, EngineError> {
        self.journal().check()?;
        let mut report = RecoveryReport::default();
        let open = self.journal().open_attempts()?;
        let interval = Duration::from_secs_f64(1.0 / self.settings().rate_per_s.max(0.01));
        let mut last_sent: BTreeMap<String, Instant> = BTreeMap::new();
        for row in open {
            if let Some(t) = last_sent.get(&row.gateway) {
                // Rate limit per gateway, with up to 20% jitter so a fleet does not move in step.
                let jitter = rand::thread_rng().gen_range(0.0..0.2);
                let wait = interval.mul_f64(1.0 + jitter);
                let spent = t.elapsed();
                if spent < wait {
                    std::thread::sleep(wait - spent);
                }
            }
            last_sent.insert(row.gateway.clone(), Instant::now());
            let before = row.machine.state;
            let patience = Patience {
                max_wait_ms,
                stop_at_saf: true,
                ignore_first_wait: true,
            };
            match self.drive(row.attempt_id, None, patience, observe) {
                Ok(after) => report.attempts.push((
                    row.order_id.clone(),
                    row.out_trade_no.clone(),
                    before,
                    after.machine.state,
                )),
                Err(e) => {
                    report.errors.push(format!("{}: {e}", row.out_trade_no));
                    report.attempts.push((
                        row.order_id.clone(),
                        row.out_trade_no.clone(),
                        before,
                        before,
                    ));
                }
            }
        }
        for refund in self.journal().open_refunds()? {
            match self.settle_refund(&refund) {
                Ok(r) => report.refunds.push((r.out_refund_no, r.state)),
                Err(e) => {
                    report.errors.push(format!("{}: {e}", refund.out_refund_no));
                    report.refunds.push((refund.out_refund_no, refund.state));
                }
            }
        }
        // Contract debits accepted offline: submitted through the engine, each to SETTLED or
        // MANUAL_REVIEW (engine::offline).
        match self.submit_offline(super::offline::DEFAULT_MAX_TRIES, observe) {
            Ok(ds) => {
                for d in ds.iter().filter(|d| !d.state.is_final()) {
                    report.errors.push(format!(
                        "offline deduction {} is still {}: {}",
                        d.deduction_id,
                        d.state.as_str(),
                        d.note
                    ));
                }
            }
            Err(e) => report.errors.push(format!("offline deductions: {e}")),
        }
        Ok(report)
    }
}
