//! Per-channel rules as data: query schedules, deadlines, cancel/reverse windows, backoff.
//!
//! The state machine reads these numbers and never branches on which gateway or wallet it is
//! talking to; a new channel is a new `Policy` value, not a new code path. Every duration is in
//! milliseconds and comes from configuration, so the sandbox can run a 30-second rule in a second.
//! Absolute instants derived from a policy are computed once when an attempt is created and stored
//! with it ("store the timestamps, never recompute").

use serde::{Deserialize, Serialize};

/// What to do with money that may have been taken once the cancel/reverse window has closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterWindow {
    /// Query; if paid, refund it in full through the refund API (its own journaled request).
    Refund,
    /// Query; if paid, stop and put the attempt in manual review.
    Review,
}

/// How long a cancel/reverse stays possible after the order was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ReverseWindow {
    /// A fixed time after creation (aggregator cancel: 5 minutes).
    After { ms: u64 },
    /// Until a wall-clock hour of the same day in a fixed UTC offset (ACP undo: 23:00 Beijing).
    SameDayUntil { hour: u32, utc_offset_minutes: i32 },
    /// No window is known; the reverse is always attempted.
    Unlimited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Delay before each query, counted from the previous request; the last entry repeats.
    pub query_delays_ms: Vec<u64>,
    /// Querying stops this long after creation; the attempt is then fenced (cancelled/reversed).
    pub pay_deadline_ms: u64,
    /// No cancel/reverse before this long after creation (aggregator: 15 s).
    pub reverse_not_before_ms: u64,
    pub reverse_window: ReverseWindow,
    /// Delays between reverse tries while online; the last entry repeats.
    pub reverse_retry_ms: Vec<u64>,
    /// After this many failed reverse tries the attempt moves to the store-and-forward queue.
    pub reverse_tries_before_saf: u32,
    /// Store-and-forward backoff: first delay, doubled each try, capped.
    pub saf_base_ms: u64,
    pub saf_cap_ms: u64,
    pub after_window: AfterWindow,
    /// An attempt still unsettled this long after creation goes to manual review with an alarm.
    pub review_after_ms: u64,
    /// "No such order" (from a query or a cancel) proves nothing until this long after the pay
    /// request left: a lagging order store, or a request still on its way, can still create the
    /// order. Before then it is an unknown outcome, asked again on the schedule.
    #[serde(default = "default_not_found_final_after_ms")]
    pub not_found_final_after_ms: u64,
    /// How long a QR pre-order waits for the customer to scan and pay (at least
    /// `pay_deadline_ms`): opening a wallet and scanning takes longer than a password.
    #[serde(default = "default_qr_wait_ms")]
    pub qr_wait_ms: u64,
}

fn default_qr_wait_ms() -> u64 {
    120_000
}

/// Three minutes: Alipay's own processing timeout for a trade (Antom's implementing guide, cited
/// in RELIABILITY.md §1.2), the longest any channel behind our gateways documents, and nearly
/// three times UnionPay's 63-second query schedule (RELIABILITY.md §1.3).
pub const NOT_FOUND_FINAL_AFTER_MS: u64 = 180_000;

fn default_not_found_final_after_ms() -> u64 {
    NOT_FOUND_FINAL_AFTER_MS
}

impl Policy {
    /// The aggregator's rules (seed 003 and RELIABILITY.md §1, §7.3): query every 5 s until 30 s,
    /// cancel no earlier than 15 s and no later than 5 minutes after the order, refund after that.
    pub fn aggregator() -> Policy {
        Policy {
            query_delays_ms: vec![5_000],
            pay_deadline_ms: 30_000,
            reverse_not_before_ms: 15_000,
            reverse_window: ReverseWindow::After { ms: 5 * 60_000 },
            reverse_retry_ms: vec![2_000, 4_000, 8_000, 16_000],
            reverse_tries_before_saf: 10,
            saf_base_ms: 30_000,
            saf_cap_ms: 15 * 60_000,
            after_window: AfterWindow::Refund,
            review_after_ms: 24 * 3_600_000,
            not_found_final_after_ms: NOT_FOUND_FINAL_AFTER_MS,
            qr_wait_ms: default_qr_wait_ms(),
        }
    }

    /// UnionPay ACP: queries at 1, 2, 4, 8, 16, 32 s; undo only the same clearing day before 23:00.
    pub fn acp() -> Policy {
        Policy {
            query_delays_ms: vec![1_000, 2_000, 4_000, 8_000, 16_000, 32_000],
            pay_deadline_ms: 63_000,
            reverse_not_before_ms: 0,
            reverse_window: ReverseWindow::SameDayUntil {
                hour: 23,
                utc_offset_minutes: 8 * 60,
            },
            reverse_retry_ms: vec![2_000, 4_000, 8_000, 16_000],
            reverse_tries_before_saf: 10,
            saf_base_ms: 30_000,
            saf_cap_ms: 15 * 60_000,
            after_window: AfterWindow::Refund,
            review_after_ms: 24 * 3_600_000,
            not_found_final_after_ms: NOT_FOUND_FINAL_AFTER_MS,
            qr_wait_ms: default_qr_wait_ms(),
        }
    }

    /// A QR pre-order waits longer than a code: the customer must open a wallet and scan.
    pub fn qr_deadline_ms(&self) -> u64 {
        self.pay_deadline_ms.max(self.qr_wait_ms)
    }

    /// The longest gap between two queries of the schedule: contact older than twice this is
    /// stale, and the order is asked again before anything is decided from it.
    pub fn stale_after_ms(&self) -> i64 {
        let longest = self.query_delays_ms.iter().copied().max().unwrap_or(5_000);
        (longest.saturating_mul(2)) as i64
    }

    /// The delay before query number `n` (0-based).
    pub fn query_delay(&self, n: u32) -> u64 {
        pick(&self.query_delays_ms, n, 5_000)
    }

    pub fn reverse_delay(&self, tries: u32) -> u64 {
        pick(&self.reverse_retry_ms, tries.saturating_sub(1), 2_000)
    }

    /// Store-and-forward delay after `tries` failures: base·2^tries, capped.
    pub fn saf_delay(&self, tries: u32) -> u64 {
        let shift = tries.min(30);
        self.saf_base_ms
            .saturating_mul(1u64 << shift)
            .min(self.saf_cap_ms.max(self.saf_base_ms))
    }

    /// The instant after which cancel/reverse is no longer possible, for an attempt created at
    /// `created_ms` (Unix milliseconds). `None`: no limit.
    pub fn reverse_until(&self, created_ms: i64) -> Option<i64> {
        match self.reverse_window {
            ReverseWindow::After { ms } => Some(created_ms.saturating_add(ms as i64)),
            ReverseWindow::Unlimited => None,
            ReverseWindow::SameDayUntil {
                hour,
                utc_offset_minutes,
            } => {
                let offset_ms = i64::from(utc_offset_minutes) * 60_000;
                let local = created_ms + offset_ms;
                let day_start = local.div_euclid(86_400_000) * 86_400_000;
                let mut cutoff = day_start + i64::from(hour.min(24)) * 3_600_000;
                // An order made after the cut-off belongs to the next clearing day, which
                // ends at the next day's cut-off.
                if cutoff <= local {
                    cutoff += 86_400_000;
                }
                Some(cutoff - offset_ms)
            }
        }
    }

    /// Checks the numbers make sense together; each problem is a sentence for `config check`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.query_delays_ms.is_empty() || self.query_delays_ms.contains(&0) {
            p.push("query_delays_ms must list at least one positive delay".to_string());
        }
        if self.pay_deadline_ms == 0 {
            p.push("pay_deadline_ms must be positive".to_string());
        }
        if let ReverseWindow::After { ms } = self.reverse_window
            && ms <= self.reverse_not_before_ms
        {
            p.push(format!(
                "the reverse window ({ms} ms) closes before reverse_not_before_ms ({}) opens it",
                self.reverse_not_before_ms
            ));
        }
        if self.reverse_tries_before_saf == 0 {
            p.push("reverse_tries_before_saf must be at least 1".to_string());
        }
        if self.saf_base_ms == 0 {
            p.push("saf_base_ms must be positive".to_string());
        }
        if self.review_after_ms <= self.pay_deadline_ms {
            p.push("review_after_ms must be longer than pay_deadline_ms".to_string());
        }
        if let ReverseWindow::After { ms } = self.reverse_window
            && ms <= self.pay_deadline_ms
        {
            p.push(format!(
                "the cancel window ({ms} ms) closes before pay_deadline_ms ({}): an unpaid order could only be refunded or reviewed",
                self.pay_deadline_ms
            ));
        }
        if let ReverseWindow::After { ms } = self.reverse_window
            && ms <= self.qr_deadline_ms()
        {
            p.push(format!(
                "the cancel window ({ms} ms) closes before a QR pre-order stops waiting ({} ms, qr_wait_ms): an unpaid QR order could only be reviewed by a person",
                self.qr_deadline_ms()
            ));
        }
        if self.review_after_ms <= self.not_found_final_after_ms {
            p.push("review_after_ms must be longer than not_found_final_after_ms".to_string());
        }
        p
    }
}

fn pick(list: &[u64], n: u32, default: u64) -> u64 {
    match list.get(n as usize).or(list.last()) {
        Some(&d) => d,
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_schedule_repeats_the_last_delay() {
        let p = Policy::acp();
        let d: Vec<u64> = (0..8).map(|n| p.query_delay(n)).collect();
        assert_eq!(
            d,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 32_000, 32_000]
        );
        assert_eq!(Policy::aggregator().query_delay(7), 5_000);
    }

    #[test]
    fn saf_backoff_doubles_and_caps() {
        let p = Policy::aggregator();
        assert_eq!(p.saf_delay(0), 30_000);
        assert_eq!(p.saf_delay(1), 60_000);
        assert_eq!(p.saf_delay(10), 15 * 60_000);
        assert_eq!(p.saf_delay(u32::MAX), 15 * 60_000);
    }

    #[test]
    fn acp_window_ends_at_23_beijing_of_the_creation_day() {
        let p = Policy::acp();
        // 2026-11-22 10:00:00 +08:00 = 02:00 UTC
        let created = 1_795_312_800_000; // 2026-11-22T02:00:00Z
        let until = p.reverse_until(created).unwrap();
        // 2026-11-22 23:00 +08:00 = 15:00 UTC
        assert_eq!(until, created + 13 * 3_600_000);
        // Created at 23:30 Beijing: it belongs to the next clearing day, which ends 23:00 tomorrow.
        let late = created + 13 * 3_600_000 + 30 * 60_000;
        assert_eq!(p.reverse_until(late).unwrap(), until + 86_400_000);
    }

    #[test]
    fn defaults_are_consistent() {
        assert!(Policy::aggregator().problems().is_empty());
        assert!(Policy::acp().problems().is_empty());
        let mut bad = Policy::aggregator();
        bad.reverse_window = ReverseWindow::After { ms: 10_000 };
        // It closes before the cancel may be sent, before the pay deadline and before a QR
        // pre-order stops waiting.
        assert_eq!(bad.problems().len(), 3);
    }
}
