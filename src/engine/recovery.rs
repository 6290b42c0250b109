//! Recovery and the store-and-forward drain: every unsettled attempt, oldest first.
//!
//! Run at start-up before any new sale, on reconnect, on a timer, and by `payterm recover`.
//! Each open attempt is driven from its journaled state (an intent is queried before it is ever
//! fenced; a reverse is re-sent), at a bounded request rate per gateway with jitter, and nothing
//! is ever dropped: an attempt that cannot finish now goes back to the queue with backoff, and
//! one that stays unsettled past its review deadline is handed to a person.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use super::{Engine, EngineError, Observer, Patience};
use crate::core::machine::AttemptState;
use crate::journal::{PreAuthState, RefundState};

/// What one recovery pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecoveryReport {
    /// (order id, out_trade_no, state before, state after)
    pub attempts: Vec<(String, String, AttemptState, AttemptState)>,
    /// (out_refund_no, state after)
    pub refunds: Vec<(String, RefundState)>,
    /// Pre-authorisation family operations (engine::preauth): (request_no, before, after).
    pub preauths: Vec<(String, PreAuthState, PreAuthState)>,
    pub errors: Vec<String>,
}

impl RecoveryReport {
    pub fn still_open(&self) -> usize {
        self.attempts.iter().filter(|a| a.3.needs_work()).count()
            + self.refunds.iter().filter(|r| !r.1.is_final()).count()
            + self.preauths.iter().filter(|p| p.2.is_open()).count()
    }

    pub fn in_review(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.3 == AttemptState::ManualReview)
            .count()
            + self
                .preauths
                .iter()
                .filter(|p| p.2 == PreAuthState::Review)
                .count()
    }
}

/// What a recovery pass does with the offline contract deductions (engine::offline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfflineDrain {
    /// Attempts per deduction before it is handed to a person.
    pub max_tries: u32,
    /// False while the caller knows the 云闪付 platform cannot be reached: stored deductions
    /// then wait for the next pass instead of becoming uncertain attempts.
    pub submit: bool,
}

impl Default for OfflineDrain {
    fn default() -> Self {
        OfflineDrain {
            max_tries: super::offline::DEFAULT_MAX_TRIES,
            submit: true,
        }
    }
}

impl OfflineDrain {
    /// `gateways.upapi.offline.max_tries` when 云闪付 is configured, else the default.
    pub fn from_config(cfg: &crate::config::Config) -> OfflineDrain {
        OfflineDrain {
            max_tries: cfg
                .file
                .gateways
                .upapi
                .as_ref()
                .map_or(super::offline::DEFAULT_MAX_TRIES, |u| u.offline.max_tries),
            submit: true,
        }
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
        self.recover_with(max_wait_ms, OfflineDrain::default(), observe)
    }

    /// [`Engine::recover_with`], then the pre-authorisation family's operations whose outcome is
    /// unknown, resolved by their channels' queries (engine::preauth) — what `payterm recover`
    /// runs.
    pub fn recover_all(
        &mut self,
        max_wait_ms: i64,
        offline: OfflineDrain,
        preauth: &super::preauth::PreAuthChannels,
        observe: Observer<'_>,
    ) -> Result<RecoveryReport, EngineError> {
        let mut report = self.recover_with(max_wait_ms, offline, observe)?;
        self.settle_preauths(preauth, &mut report);
        Ok(report)
    }

    /// [`Engine::recover`] with the offline deductions drained as `offline` says.
    pub fn recover_with(
        &mut self,
        max_wait_ms: i64,
        offline: OfflineDrain,
        observe: Observer<'_>,
    ) -> Result<RecoveryReport, EngineError> {
        // No integrity scan here: `Journal::open` runs it when a process opens the journal,
        // and the daemon repeats it daily. A full scan every pass cost idle CPU in proportion
        // to the journal's size (4.3 % of a core with 51,000 attempts).
        let mut report = RecoveryReport::default();
        let open = self.journal().open_attempts()?;
        let interval = Duration::from_secs_f64(1.0 / self.settings().rate_per_s.max(0.01));
        let mut last_sent: BTreeMap<String, i64> = BTreeMap::new();
        for row in open {
            if self.stopping() {
                break;
            }
            if let Some(&t) = last_sent.get(&row.gateway) {
                // Rate limit per gateway, with up to 20% jitter so a fleet does not move in step.
                let jitter = rand::thread_rng().gen_range(0.0..0.2);
                let wait = interval.mul_f64(1.0 + jitter).as_millis() as i64;
                let spent = self.clock().now_ms() - t;
                if spent < wait {
                    self.clock()
                        .sleep(Duration::from_millis((wait - spent) as u64));
                }
            }
            last_sent.insert(row.gateway.clone(), self.clock().now_ms());
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
        // Stopping: stored deductions stay stored (a debit would be a new payment going out).
        let drained = if offline.submit && !self.stopping() {
            self.submit_offline(offline.max_tries, observe)
        } else {
            Ok(Vec::new())
        };
        match drained {
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

#[cfg(test)]
mod tests {
    use super::OfflineDrain;
    use crate::config::{Config, File};

    fn config(extra: &str) -> Config {
        let text = format!(
            r#"
[terminal]
id = "T01"
[journal]
path = "j.db"
{extra}"#
        );
        let file: File = toml::from_str(&text).expect("parses");
        Config {
            file,
            path: "payterm.toml".into(),
            dir: ".".into(),
        }
    }

    const UPAPI: &str = r#"
[gateways.upapi]
base_url = "http://127.0.0.1:1"
app_id = "a"
secret_file = "s"
symmetric_key_file = "k"
plan_id = "p"
notify_cert = "c"
[gateways.upapi.offline]
enabled = true
max_tries = 7
[gateways.upapi.acp]
base_url = "http://127.0.0.1:1"
file_url = "http://127.0.0.1:1/"
mer_id = "777290058110048"
sign_pfx = "x.pfx"
sign_password_file = "x.pass"
encrypt_cert = "enc.cer"
middle_cert = "m.cer"
root_cert = "r.cer"
back_url = "http://127.0.0.1:9/notify"
"#;

    #[test]
    fn offline_tries_come_from_the_configuration_when_upapi_is_configured() {
        assert_eq!(
            OfflineDrain::from_config(&config(UPAPI)),
            OfflineDrain {
                max_tries: 7,
                submit: true
            }
        );
        assert_eq!(
            OfflineDrain::from_config(&config("[gateways]")),
            OfflineDrain::default()
        );
        assert_eq!(
            OfflineDrain::default().max_tries,
            crate::engine::offline::DEFAULT_MAX_TRIES
        );
    }
}
