//! The payment state machine of RELIABILITY.md §7: one attempt, from intent to a final state.
//!
//! Two pure functions carry it. [`next`] says what an attempt needs at a given instant: a request
//! to send, a timer-driven change to persist first, a time to wait until, or nothing. [`apply`]
//! takes the reply to a request and returns the attempt's next value with a note for its history.
//! The engine persists every value `apply` returns (and every `Next::Commit`) before it sends
//! anything else, which is what makes a crash at any point recoverable from the journal alone.
//!
//! Money is never assumed: only a signature-checked success makes an attempt PAID, and only a
//! definite failure makes it FAILED. Everything else is an unknown outcome that is queried, then
//! fenced with a cancel/reverse, then parked in the store-and-forward queue, and finally handed to
//! a person; it is never dropped. This module must not do I/O or read a clock.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::policy::{AfterWindow, Policy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptState {
    /// The attempt row is durable; the pay request may have been sent.
    PayIntent,
    /// The outcome is unknown; the order is being queried.
    Querying,
    /// The channel confirmed the payment (final).
    Paid,
    /// The channel gave a definite failure; no money moved (final).
    Failed,
    /// A cancel/reverse (or, after its window, a refund) is committed and may have been sent.
    ReverseIntent,
    /// The cancel/reverse/refund is confirmed; see [`ReverseAction`] (final).
    Reversed,
    /// The fence could not finish now; it waits in the store-and-forward queue.
    SafPending,
    /// Contradictory or expired: needs a person. Never left automatically.
    ManualReview,
}

impl AttemptState {
    pub const ALL: [AttemptState; 8] = [
        AttemptState::PayIntent,
        AttemptState::Querying,
        AttemptState::Paid,
        AttemptState::Failed,
        AttemptState::ReverseIntent,
        AttemptState::Reversed,
        AttemptState::SafPending,
        AttemptState::ManualReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::PayIntent => "PAY_INTENT",
            AttemptState::Querying => "QUERYING",
            AttemptState::Paid => "PAID",
            AttemptState::Failed => "FAILED",
            AttemptState::ReverseIntent => "REVERSE_INTENT",
            AttemptState::Reversed => "REVERSED",
            AttemptState::SafPending => "SAF_PENDING",
            AttemptState::ManualReview => "MANUAL_REVIEW",
        }
    }

    pub fn parse(s: &str) -> Option<AttemptState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// PAID, FAILED and REVERSED: the money question is answered.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AttemptState::Paid | AttemptState::Failed | AttemptState::Reversed
        )
    }

    /// Before the fence: a second attempt on the same order must wait for this one.
    pub fn blocks_new_attempt(self) -> bool {
        matches!(self, AttemptState::PayIntent | AttemptState::Querying)
    }

    /// Work remains that the engine does by itself.
    pub fn needs_work(self) -> bool {
        !self.is_final() && self != AttemptState::ManualReview
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a confirmed reverse did to the money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReverseAction {
    /// The order was not paid and is now closed: the customer was not charged.
    Close,
    /// The order was paid and the money went back to the customer.
    Refund,
}

impl ReverseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ReverseAction::Close => "close",
            ReverseAction::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<ReverseAction> {
        match s {
            "close" => Some(ReverseAction::Close),
            "refund" => Some(ReverseAction::Refund),
            _ => None,
        }
    }
}

/// How a fenced attempt is to be undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fence {
    /// The channel's cancel/reverse/undo, inside its window.
    Cancel,
    /// The window has closed and the order was paid: a full refund with its own request number.
    Refund,
}

impl Fence {
    pub fn as_str(self) -> &'static str {
        match self {
            Fence::Cancel => "cancel",
            Fence::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Fence> {
        match s {
            "cancel" => Some(Fence::Cancel),
            "refund" => Some(Fence::Refund),
            _ => None,
        }
    }
}

/// A request the engine sends on an attempt's behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Pay,
    Query,
    Reverse,
    Refund,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Pay => "pay",
            Op::Query => "query",
            Op::Reverse => "reverse",
            Op::Refund => "refund",
        }
    }

    /// Pay, reverse and refund can move money and are journaled before they are sent.
    pub fn moves_money(self) -> bool {
        !matches!(self, Op::Query)
    }
}

/// A gateway's reply, already signature-checked and reduced to what the machine needs.
/// A reply whose signature does not check arrives here as `Unknown`, never as `Paid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Paid (pay or query), or a refund that completed (refund).
    Paid,
    /// The customer is still confirming (USERPAYING, 10003, ACP 05…).
    Pending,
    /// A definite failure: no money moved (a declined pay, a closed order on query).
    Failed { code: String, reason: String },
    /// Query: the channel has no such order.
    NotFound,
    /// Query: the order was refunded in full (转入退款, or revoked after it was paid).
    Refunded,
    /// Query: the order is closed and was never paid: it holds no money.
    Closed,
    /// Timeout, transport error, system error, bad signature: nothing is known.
    Unknown { why: String },
    /// Pay: the order number was already used (maybe by our own earlier success): query.
    OrderNumberUsed,
    /// Reverse: confirmed, with what it did.
    Reversed(ReverseAction),
    /// Reverse: the channel accepted the cancel, but its reply does not say what became of the
    /// money; only the order's state, asked by a query, proves the fence.
    CancelAccepted,
    /// Reverse: the channel asks to be called again (recall=Y, too early, customer paying).
    RetryLater { why: String },
    /// Reverse: the channel says the window has closed.
    WindowClosed,
    /// Reverse or refund: permanently refused for a reason that is not "already reversed".
    Refused { why: String },
}

impl Reply {
    pub fn unknown(why: impl Into<String>) -> Reply {
        Reply::Unknown { why: why.into() }
    }

    /// Whether the channel answered at all: anything but an unknown outcome is contact.
    pub fn is_answer(&self) -> bool {
        !matches!(self, Reply::Unknown { .. })
    }

    /// A short description for the history.
    pub fn describe(&self) -> String {
        match self {
            Reply::Paid => "paid".into(),
            Reply::Pending => "customer still confirming".into(),
            Reply::Failed { code, reason } => format!("failed {code}: {reason}"),
            Reply::NotFound => "no such order".into(),
            Reply::Refunded => "order refunded".into(),
            Reply::Closed => "order closed, never paid".into(),
            Reply::Unknown { why } => format!("unknown: {why}"),
            Reply::OrderNumberUsed => "order number already used".into(),
            Reply::Reversed(a) => format!("reversed ({})", a.as_str()),
            Reply::CancelAccepted => "cancel accepted".into(),
            Reply::RetryLater { why } => format!("retry later: {why}"),
            Reply::WindowClosed => "cancel window closed".into(),
            Reply::Refused { why } => format!("refused: {why}"),
        }
    }
}

/// The machine's view of one attempt: exactly the fields persisted in the journal's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub state: AttemptState,
    /// Unix milliseconds when the attempt was created (wall clock, stored once).
    pub created_ms: i64,
    /// Querying stops at this instant.
    pub deadline_ms: i64,
    /// No cancel/reverse before this instant.
    pub reverse_from_ms: i64,
    /// No cancel/reverse after this instant; `None`: no limit.
    pub reverse_until_ms: Option<i64>,
    /// Unsettled after this instant: manual review.
    pub review_at_ms: i64,
    /// The pay request was handed to the transport (it may or may not have arrived).
    pub pay_sent: bool,
    pub queries: u32,
    pub reverse_tries: u32,
    pub saf_tries: u32,
    /// When the next request is due; `None`: now.
    pub next_at_ms: Option<i64>,
    pub fence: Fence,
    /// The channel said the cancel window has closed, whatever our clock says.
    pub window_closed: bool,
    pub reverse_action: Option<ReverseAction>,
    /// The latest instant the pay request may have left: its reply's arrival, or the restart
    /// that found it maybe in flight. "No such order" is measured from here.
    pub sent_ms: Option<i64>,
    /// When the channel last answered a request about this order (any reply but unknown).
    pub contact_ms: Option<i64>,
    /// A cancel was accepted; the order's state, asked by a query, says what it did.
    pub confirming: bool,
}

impl Attempt {
    /// A fresh attempt in PAY_INTENT, its instants derived from `policy` once.
    pub fn new(policy: &Policy, created_ms: i64) -> Attempt {
        Attempt {
            state: AttemptState::PayIntent,
            created_ms,
            deadline_ms: created_ms.saturating_add(policy.pay_deadline_ms as i64),
            reverse_from_ms: created_ms.saturating_add(policy.reverse_not_before_ms as i64),
            reverse_until_ms: policy.reverse_until(created_ms),
            review_at_ms: created_ms.saturating_add(policy.review_after_ms as i64),
            pay_sent: false,
            queries: 0,
            reverse_tries: 0,
            saf_tries: 0,
            next_at_ms: None,
            fence: Fence::Cancel,
            window_closed: false,
            reverse_action: None,
            sent_ms: None,
            contact_ms: None,
            confirming: false,
        }
    }

    /// Whether "no such order" can be believed at `now`: the pay request can no longer create
    /// the order (RELIABILITY.md §7.4 C1; `Policy::not_found_final_after_ms`).
    pub fn not_found_believed(&self, policy: &Policy, now: i64) -> bool {
        now >= self.not_found_final_at(policy)
    }

    fn not_found_final_at(&self, policy: &Policy) -> i64 {
        self.sent_ms
            .unwrap_or(self.created_ms)
            .max(self.created_ms)
            .saturating_add(policy.not_found_final_after_ms as i64)
    }

    /// Whether the last answer about the order is older than the query schedule allows: then
    /// the order is asked again before anything is decided (a payment that arrived during an
    /// outage or a restart is PAID, not cancelled and refunded).
    pub fn contact_stale(&self, policy: &Policy, now: i64) -> bool {
        self.contact_ms
            .is_none_or(|c| now.saturating_sub(c) > policy.stale_after_ms())
    }

    /// Parked: nothing will settle it until the channel answers again. A sale stops waiting
    /// here and tells the cashier "uncertain"; recovery carries on with its backoff.
    pub fn parked(&self, policy: &Policy, now: i64) -> bool {
        match self.state {
            AttemptState::SafPending => true,
            AttemptState::Querying => {
                now >= self.deadline_ms && self.queries > 0 && self.contact_stale(policy, now)
            }
            _ => false,
        }
    }

    fn window_open(&self, now: i64) -> bool {
        !self.window_closed && self.reverse_until_ms.is_none_or(|u| now <= u)
    }

    fn due(&self, now: i64) -> Option<i64> {
        self.next_at_ms.filter(|&t| t > now)
    }
}

/// What an attempt needs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this request; feed its reply to [`apply`].
    Send(Op),
    /// Persist this value (a timer-driven change) before doing anything else.
    Commit(Step),
    /// Nothing to do before this instant.
    WaitUntil(i64),
    /// Final or in manual review: nothing more happens by itself.
    Settled,
}

/// A new value for the attempt and why it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub attempt: Attempt,
    pub note: String,
    /// Something a person must look at (contradiction, expiry, manual review).
    pub alarm: bool,
}

impl Step {
    fn new(attempt: Attempt, note: impl Into<String>) -> Step {
        Step {
            attempt,
            note: note.into(),
            alarm: false,
        }
    }

    fn alarm(attempt: Attempt, note: impl Into<String>) -> Step {
        Step {
            attempt,
            note: note.into(),
            alarm: true,
        }
    }
}

/// What `a` needs at `now`. `credential_in_memory` says whether the payment code (or face code)
/// is still held by this process: after a restart it is gone, and a PAY_INTENT can only be
/// resolved by querying, because the request may already have reached the channel.
pub fn next(a: &Attempt, policy: &Policy, now: i64, credential_in_memory: bool) -> Next {
    match a.state {
        AttemptState::Paid | AttemptState::Failed | AttemptState::Reversed => Next::Settled,
        AttemptState::ManualReview => Next::Settled,
        AttemptState::PayIntent => {
            if credential_in_memory && !a.pay_sent {
                Next::Send(Op::Pay)
            } else {
                let mut b = a.clone();
                b.state = AttemptState::Querying;
                b.next_at_ms = None;
                // The request may have left at any moment up to now.
                b.sent_ms = Some(a.sent_ms.unwrap_or(now).max(now));
                Next::Commit(Step::new(
                    b,
                    "the pay request may have been sent before a restart; querying",
                ))
            }
        }
        AttemptState::Querying => {
            if now >= a.review_at_ms {
                let mut b = a.clone();
                b.state = AttemptState::ManualReview;
                b.next_at_ms = None;
                return Next::Commit(Step::alarm(
                    b,
                    "the channel has not answered by the review deadline; a person must settle it",
                ));
            }
            if let Some(t) = a.due(now) {
                return Next::WaitUntil(t);
            }
            if now < a.deadline_ms || a.queries == 0 || a.contact_stale(policy, now) {
                // Never fence without a fresh answer (RELIABILITY.md §7.4 C3): a pay reply lost
                // to a timeout, an outage or a restart may have been a success.
                return Next::Send(Op::Query);
            }
            Next::Commit(fence(a, now, "no payment by the deadline; cancelling"))
        }
        AttemptState::ReverseIntent | AttemptState::SafPending => {
            if a.state == AttemptState::SafPending && now >= a.review_at_ms {
                let mut b = a.clone();
                b.state = AttemptState::ManualReview;
                b.next_at_ms = None;
                return Next::Commit(Step::alarm(
                    b,
                    "still unsettled at the review deadline; a person must settle it",
                ));
            }
            if let Some(t) = a.due(now) {
                return Next::WaitUntil(t);
            }
            if a.confirming {
                return Next::Send(Op::Query);
            }
            match a.fence {
                Fence::Refund => Next::Send(Op::Refund),
                Fence::Cancel if !a.window_open(now) => Next::Send(Op::Query),
                Fence::Cancel if now < a.reverse_from_ms => Next::WaitUntil(a.reverse_from_ms),
                Fence::Cancel => Next::Send(Op::Reverse),
            }
        }
    }
}

/// Moves `a` to REVERSE_INTENT: from here on the money is returned, never kept.
fn fence(a: &Attempt, now: i64, note: &str) -> Step {
    let mut b = a.clone();
    b.state = AttemptState::ReverseIntent;
    b.fence = Fence::Cancel;
    b.confirming = false;
    b.next_at_ms = (a.reverse_from_ms > now).then_some(a.reverse_from_ms);
    Step::new(b, note)
}

/// The attempt after `op` got `reply` at `now`.
pub fn apply(a: &Attempt, policy: &Policy, op: Op, reply: &Reply, now: i64) -> Step {
    let mut b = a.clone();
    let what = reply.describe();
    if reply.is_answer() {
        b.contact_ms = Some(now);
    }
    match (a.state, op) {
        (AttemptState::PayIntent, Op::Pay) => {
            b.pay_sent = true;
            // The channel received the request no later than its reply (or our timeout): its
            // clocks ("cancel only 15 s after the order", "no such order") start by then.
            b.sent_ms = Some(now);
            b.reverse_from_ms = a
                .reverse_from_ms
                .max(now.saturating_add(policy.reverse_not_before_ms as i64));
            match reply {
                Reply::Paid => settle(b, AttemptState::Paid, None, "paid"),
                Reply::Failed { .. } => {
                    settle(b, AttemptState::Failed, None, &format!("declined: {what}"))
                }
                _ => {
                    b.state = AttemptState::Querying;
                    b.next_at_ms = Some(now + policy.query_delay(0) as i64);
                    Step::new(b, format!("pay outcome not known ({what}); querying"))
                }
            }
        }
        (AttemptState::Querying, Op::Query) => {
            b.queries = a.queries.saturating_add(1);
            match reply {
                Reply::Paid => settle(b, AttemptState::Paid, None, "paid (confirmed by query)"),
                Reply::Refunded => settle(
                    b,
                    AttemptState::Reversed,
                    Some(ReverseAction::Refund),
                    "the order shows as refunded",
                ),
                Reply::Closed | Reply::Failed { .. } => {
                    fence(&b, now, &format!("query: {what}; fencing the order number"))
                }
                Reply::NotFound if a.not_found_believed(policy, now) => fence(
                    &b,
                    now,
                    "query: still no such order; fencing the order number",
                ),
                Reply::Unknown { .. } if now >= a.deadline_ms => {
                    // Past the deadline without an answer: nothing is cancelled blind. The
                    // order is asked again with the store-and-forward backoff; a sale stops
                    // waiting here and shows "uncertain".
                    b.saf_tries = a.saf_tries.saturating_add(1);
                    let d = policy.saf_delay(a.saf_tries);
                    b.next_at_ms = Some(now + d as i64);
                    Step::new(
                        b,
                        format!(
                            "query: {what}; no answer past the deadline, asking again in {} s before anything is cancelled",
                            d / 1000
                        ),
                    )
                }
                _ => {
                    let at = now + policy.query_delay(b.queries) as i64;
                    b.next_at_ms = Some(at.min(a.deadline_ms.max(now)));
                    let why = if *reply == Reply::NotFound {
                        "no such order yet; the pay request may still create it".to_string()
                    } else {
                        what
                    };
                    Step::new(b, format!("query: {why}"))
                }
            }
        }
        (AttemptState::ReverseIntent | AttemptState::SafPending, Op::Reverse) => match reply {
            Reply::Reversed(action) => settle(
                b,
                AttemptState::Reversed,
                Some(*action),
                &format!("reversed: {}", action.as_str()),
            ),
            Reply::CancelAccepted => {
                b.confirming = true;
                b.next_at_ms = None;
                Step::new(
                    b,
                    "cancel accepted; asking the order what became of the money",
                )
            }
            Reply::NotFound if a.not_found_believed(policy, now) => {
                // Only the order's own query may say it never existed: a cancel that answers
                // "no such order" for an order that exists (found by the engine's model test)
                // would otherwise close a paid one.
                b.confirming = true;
                b.next_at_ms = None;
                Step::new(
                    b,
                    "cancel: no such order, long after the pay request; asking the order itself",
                )
            }
            Reply::NotFound => retry_fence(
                b,
                policy,
                now,
                "cancel: no such order yet (the order may still appear)",
            ),
            Reply::WindowClosed => {
                b.window_closed = true;
                b.next_at_ms = None;
                Step::new(b, "the channel says the cancel window has closed; querying")
            }
            Reply::Refused { .. } | Reply::Failed { .. } | Reply::Paid => {
                refund_or_review(b, policy, &format!("cancel {what}"))
            }
            _ => retry_fence(b, policy, now, &what),
        },
        (AttemptState::ReverseIntent | AttemptState::SafPending, Op::Query) if a.confirming => {
            // The cancel was accepted; only the order's state proves what it did.
            match reply {
                Reply::Refunded => settle(
                    b,
                    AttemptState::Reversed,
                    Some(ReverseAction::Refund),
                    "cancelled; the order shows the payment returned",
                ),
                Reply::Closed | Reply::Failed { .. } => settle(
                    b,
                    AttemptState::Reversed,
                    Some(ReverseAction::Close),
                    &format!("cancelled; {what}"),
                ),
                Reply::NotFound if a.not_found_believed(policy, now) => settle(
                    b,
                    AttemptState::Reversed,
                    Some(ReverseAction::Close),
                    "no such order, long after the pay request: it was never created and nothing was charged",
                ),
                Reply::Paid | Reply::Pending => {
                    // The fence did not take (or not yet): it is sent again while the window
                    // is open; after it the money goes back by refund. Never "closed".
                    b.confirming = false;
                    if a.window_open(now) {
                        retry_fence(
                            b,
                            policy,
                            now,
                            &format!(
                                "after the cancel the order is still {what}; cancelling again"
                            ),
                        )
                    } else {
                        refund_or_review(
                            b,
                            policy,
                            &format!("after the cancel the order is still {what}"),
                        )
                    }
                }
                _ => retry_fence(
                    b,
                    policy,
                    now,
                    &format!("cancel not yet confirmed ({what})"),
                ),
            }
        }
        (AttemptState::ReverseIntent | AttemptState::SafPending, Op::Query) => {
            // Only asked once the cancel window has closed: what happened to the money decides.
            match reply {
                Reply::Paid => {
                    refund_or_review(b, policy, "paid, and the cancel window has closed")
                }
                Reply::Refunded => settle(
                    b,
                    AttemptState::Reversed,
                    Some(ReverseAction::Refund),
                    "the order shows as refunded",
                ),
                Reply::NotFound if !a.not_found_believed(policy, now) => {
                    // The window can close before the pay request can no longer arrive (ACP
                    // after 23:00), and no cancel can fence the number now: "no such order" is
                    // believed only once that request can no longer create it.
                    b.next_at_ms = Some(a.not_found_final_at(policy).max(a.deadline_ms));
                    Step::new(
                        b,
                        "no such order yet, but the pay request may still create it; asking again later",
                    )
                }
                Reply::NotFound | Reply::Failed { .. } | Reply::Closed => settle(
                    b,
                    AttemptState::Failed,
                    None,
                    &format!("never paid ({what}); the channel has closed it"),
                ),
                Reply::Pending => {
                    b.state = AttemptState::ManualReview;
                    b.next_at_ms = None;
                    Step::alarm(
                        b,
                        "still awaiting the customer after the cancel window closed",
                    )
                }
                _ => retry_fence(b, policy, now, &what),
            }
        }
        (AttemptState::ReverseIntent | AttemptState::SafPending, Op::Refund) => match reply {
            Reply::Paid | Reply::Reversed(_) | Reply::Refunded => settle(
                b,
                AttemptState::Reversed,
                Some(ReverseAction::Refund),
                "refunded in full after the cancel window",
            ),
            Reply::Refused { .. } | Reply::Failed { .. } => {
                b.state = AttemptState::ManualReview;
                b.next_at_ms = None;
                Step::alarm(b, format!("refund {what}; a person must settle it"))
            }
            _ => {
                // The refund's outcome is not known: the order says whether the money is back
                // (an earlier cancel may have landed after all) before it is sent again.
                b.confirming = true;
                retry_fence(b, policy, now, &format!("refund {what}; asking the order"))
            }
        },
        (state, op) => {
            // A reply that does not belong to the state (a late reply after a restart, say) is
            // recorded but changes nothing: the query path will establish the truth.
            Step::new(
                a.clone(),
                format!("ignored a {} reply in {state}: {what}", op.as_str()),
            )
        }
    }
}

/// A signed notification (or any other proof) says the order was paid. A payment the journal
/// already counts, or whose money a fence in progress returns, changes nothing; one recorded
/// "not charged" is reopened and fenced again — a cancel inside its window, a refund after it
/// — with an alarm; one in review stays with its person, with the evidence in its history.
/// `None`: nothing to record.
pub fn paid_evidence(a: &Attempt, policy: &Policy, now: i64) -> Option<Step> {
    match (a.state, a.reverse_action) {
        (AttemptState::PayIntent | AttemptState::Paid, _) => None,
        (AttemptState::Reversed, Some(ReverseAction::Refund)) => None,
        (AttemptState::Querying, _) => {
            let mut s = apply(a, policy, Op::Query, &Reply::Paid, now);
            s.note = "paid (confirmed by a signed notification)".into();
            Some(s)
        }
        (AttemptState::ReverseIntent | AttemptState::SafPending, _) => Some(Step::new(
            a.clone(),
            "a signed notification says paid; the fence in progress returns the money",
        )),
        (AttemptState::Failed | AttemptState::Reversed, _) => {
            let mut b = a.clone();
            b.state = AttemptState::ReverseIntent;
            b.fence = Fence::Cancel;
            b.confirming = false;
            b.reverse_action = None;
            b.reverse_tries = 0;
            b.saf_tries = 0;
            b.next_at_ms = None;
            Some(Step::alarm(
                b,
                "a signed notification says this order was paid after it was recorded not charged: fencing it again (cancel in the window, refund after)",
            ))
        }
        (AttemptState::ManualReview, _) => Some(Step::alarm(
            a.clone(),
            "a signed notification says this order was paid",
        )),
    }
}

/// What a person found when settling an attempt in manual review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The gateway holds the customer's money for this order: the store's sale.
    Paid,
    /// The customer was never charged.
    NotCharged,
    /// The customer was charged and the money went back.
    Refunded,
}

/// A person settles an attempt in manual review — the only way out of it. `None`: the attempt
/// is not in review (the machine settles everything else by itself).
pub fn resolve(a: &Attempt, to: Resolution, note: &str) -> Option<Step> {
    if a.state != AttemptState::ManualReview {
        return None;
    }
    let mut b = a.clone();
    b.next_at_ms = None;
    let (state, action, what) = match to {
        Resolution::Paid => (AttemptState::Paid, None, "paid"),
        Resolution::NotCharged => (AttemptState::Failed, None, "not charged"),
        Resolution::Refunded => (
            AttemptState::Reversed,
            Some(ReverseAction::Refund),
            "refunded",
        ),
    };
    b.state = state;
    b.reverse_action = action;
    Some(Step::new(
        b,
        format!("resolved by a person as {what}: {note}"),
    ))
}

/// A signed notification whose amount is not the order's: not believed, and a person looks
/// at the order (RELIABILITY.md §5: a mismatch is manual review, never paid).
pub fn notice_mismatch(a: &Attempt, notice_amount: &str, order_amount: &str) -> Step {
    let mut b = a.clone();
    if b.state.needs_work() || b.state == AttemptState::Paid {
        b.state = AttemptState::ManualReview;
        b.next_at_ms = None;
    }
    Step::alarm(
        b,
        format!(
            "notification says {notice_amount} yuan for an order of {order_amount}: not believed; a person must check"
        ),
    )
}

fn settle(mut b: Attempt, to: AttemptState, action: Option<ReverseAction>, note: &str) -> Step {
    b.state = to;
    b.next_at_ms = None;
    b.reverse_action = action;
    Step::new(b, note)
}

fn refund_or_review(mut b: Attempt, policy: &Policy, why: &str) -> Step {
    match policy.after_window {
        AfterWindow::Refund => {
            b.fence = Fence::Refund;
            b.window_closed = true;
            b.next_at_ms = None;
            Step::new(b, format!("{why}: refunding in full"))
        }
        AfterWindow::Review => {
            b.state = AttemptState::ManualReview;
            b.next_at_ms = None;
            Step::alarm(b, format!("{why}: policy says a person decides"))
        }
    }
}

/// A fence request that did not finish: retry soon, then park it in store-and-forward.
fn retry_fence(mut b: Attempt, policy: &Policy, now: i64, what: &str) -> Step {
    if b.state == AttemptState::SafPending {
        b.saf_tries = b.saf_tries.saturating_add(1);
        b.next_at_ms = Some(now + policy.saf_delay(b.saf_tries) as i64);
        return Step::new(b, format!("still unsettled ({what}); queued again"));
    }
    b.reverse_tries = b.reverse_tries.saturating_add(1);
    if b.reverse_tries >= policy.reverse_tries_before_saf {
        b.state = AttemptState::SafPending;
        b.saf_tries = 0;
        b.next_at_ms = Some(now + policy.saf_delay(0) as i64);
        Step::new(b, format!("{what}; moved to the store-and-forward queue"))
    } else {
        b.next_at_ms = Some(now + policy.reverse_delay(b.reverse_tries) as i64);
        Step::new(b, format!("{what}; will retry"))
    }
}

/// A person or the cashier asked to cancel. Open attempts are fenced; a paid one is reversed
/// while its window is open. Returns `None` when there is nothing to cancel.
pub fn cancel_requested(a: &Attempt, now: i64) -> Option<Step> {
    match a.state {
        AttemptState::Querying | AttemptState::Paid => Some(fence(a, now, "cancel requested")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_312_800_000;

    fn fast() -> Policy {
        Policy {
            query_delays_ms: vec![100],
            pay_deadline_ms: 1_000,
            reverse_not_before_ms: 300,
            reverse_window: super::super::policy::ReverseWindow::After { ms: 5_000 },
            reverse_retry_ms: vec![50],
            reverse_tries_before_saf: 3,
            saf_base_ms: 1_000,
            saf_cap_ms: 8_000,
            after_window: AfterWindow::Refund,
            review_after_ms: 60_000,
            not_found_final_after_ms: 2_000,
            qr_wait_ms: 120_000,
        }
    }

    /// Runs an attempt to quiescence against a scripted channel; returns the final attempt.
    fn drive(p: &Policy, script: impl FnMut(Op, i64) -> Reply) -> (Attempt, Vec<Op>) {
        drive_until(p, script, true)
    }

    /// [`drive`], carrying on through store-and-forward when `stop_at_saf` is false.
    fn drive_until(
        p: &Policy,
        mut script: impl FnMut(Op, i64) -> Reply,
        stop_at_saf: bool,
    ) -> (Attempt, Vec<Op>) {
        let mut a = Attempt::new(p, T0);
        let mut now = T0;
        let mut ops = Vec::new();
        for _ in 0..10_000 {
            match next(&a, p, now, true) {
                Next::Settled => return (a, ops),
                Next::Commit(s) => a = s.attempt,
                Next::WaitUntil(t) => {
                    assert!(t > now, "waits must move forward");
                    now = t;
                }
                Next::Send(op) => {
                    ops.push(op);
                    let r = script(op, now);
                    a = apply(&a, p, op, &r, now).attempt;
                    if stop_at_saf && a.state == AttemptState::SafPending {
                        return (a, ops);
                    }
                }
            }
        }
        panic!("did not settle");
    }

    #[test]
    fn paid_at_once() {
        let (a, ops) = drive(&fast(), |_, _| Reply::Paid);
        assert_eq!(a.state, AttemptState::Paid);
        assert_eq!(ops, [Op::Pay]);
    }

    #[test]
    fn declined_is_final_without_queries() {
        let (a, ops) = drive(&fast(), |_, _| Reply::Failed {
            code: "NOTENOUGH".into(),
            reason: "balance".into(),
        });
        assert_eq!(a.state, AttemptState::Failed);
        assert_eq!(ops, [Op::Pay]);
    }

    #[test]
    fn customer_confirms_on_second_query() {
        let mut q = 0;
        let (a, ops) = drive(&fast(), |op, _| match op {
            Op::Pay => Reply::Pending,
            _ => {
                q += 1;
                if q >= 2 { Reply::Paid } else { Reply::Pending }
            }
        });
        assert_eq!(a.state, AttemptState::Paid);
        assert_eq!(ops, [Op::Pay, Op::Query, Op::Query]);
    }

    #[test]
    fn never_confirmed_is_cancelled_after_the_deadline_not_before_the_window() {
        let mut reverse_at = 0;
        let (a, ops) = drive(&fast(), |op, now| match op {
            Op::Reverse => {
                reverse_at = now;
                Reply::Reversed(ReverseAction::Close)
            }
            _ => Reply::Pending,
        });
        assert_eq!(a.state, AttemptState::Reversed);
        assert_eq!(a.reverse_action, Some(ReverseAction::Close));
        assert!(reverse_at >= T0 + 1_000);
        assert_eq!(ops.last(), Some(&Op::Reverse));
        assert!(ops.iter().filter(|o| **o == Op::Query).count() >= 9);
    }

    #[test]
    fn a_bad_signature_is_never_paid_until_a_query_confirms() {
        let (a, ops) = drive(&fast(), |op, _| match op {
            Op::Pay => Reply::unknown("signature does not verify"),
            _ => Reply::Paid,
        });
        assert_eq!(a.state, AttemptState::Paid);
        assert_eq!(ops, [Op::Pay, Op::Query]);
    }

    #[test]
    fn never_created_is_fenced_and_closed() {
        let (a, ops) = drive(&fast(), |op, _| match op {
            Op::Pay => Reply::unknown("timeout"),
            Op::Query => Reply::NotFound,
            Op::Reverse => Reply::Reversed(ReverseAction::Close),
            Op::Refund => unreachable!(),
        });
        assert_eq!(a.state, AttemptState::Reversed);
        assert_eq!(ops.first(), Some(&Op::Pay));
        assert_eq!(ops.last(), Some(&Op::Reverse));
        assert!(ops[1..ops.len() - 1].iter().all(|o| *o == Op::Query));
    }

    /// Found against a gateway whose order store lags: "no such order" from the query and the
    /// cancel, then the order shows up paid. It was recorded REVERSED (close) while the
    /// customer's money was taken.
    #[test]
    fn a_lagging_not_found_is_not_a_fence_and_a_later_payment_is_not_closed() {
        let p = fast();
        let visible_at = T0 + 1_500; // after the deadline and the first cancels, before not_found_final_after_ms
        let mut paid_at_gateway = true;
        let (a, ops) = drive_until(
            &p,
            |op, now| {
                let visible = now >= visible_at;
                match op {
                    Op::Pay => Reply::unknown("NEED_QUERY"),
                    Op::Query if !visible => Reply::NotFound,
                    Op::Query if paid_at_gateway => Reply::Paid,
                    Op::Query => Reply::Refunded,
                    Op::Reverse if !visible => Reply::NotFound,
                    Op::Reverse => {
                        paid_at_gateway = false;
                        Reply::CancelAccepted
                    }
                    Op::Refund => unreachable!(),
                }
            },
            false,
        );
        assert_ne!(
            (a.state, a.reverse_action),
            (AttemptState::Reversed, Some(ReverseAction::Close)),
            "{ops:?}"
        );
        // The cancel that finally reached the order revoked the payment: the record says so.
        assert_eq!(a.state, AttemptState::Reversed);
        assert_eq!(a.reverse_action, Some(ReverseAction::Refund));
    }

    /// The query that confirms an accepted cancel lost its reply: nothing is concluded from
    /// the silence; the next answer decides.
    #[test]
    fn an_unconfirmed_cancel_is_not_closed() {
        let p = fast();
        let mut queries_after_cancel = 0;
        let mut cancelled = false;
        let (a, _) = drive(&p, |op, _| match op {
            Op::Pay => Reply::Paid,
            _ => unreachable!(),
        });
        assert_eq!(a.state, AttemptState::Paid);
        let mut a = cancel_requested(&a, T0 + 400).unwrap().attempt;
        let mut now = T0 + 400;
        for _ in 0..100 {
            match next(&a, &p, now, false) {
                Next::Settled => break,
                Next::WaitUntil(t) => now = t,
                Next::Commit(s) => a = s.attempt,
                Next::Send(op) => {
                    let r = match op {
                        Op::Reverse => {
                            cancelled = true;
                            Reply::CancelAccepted
                        }
                        Op::Query if cancelled && queries_after_cancel < 2 => {
                            queries_after_cancel += 1;
                            Reply::unknown("reply lost")
                        }
                        Op::Query => Reply::Refunded,
                        other => panic!("{other:?}"),
                    };
                    a = apply(&a, &p, op, &r, now).attempt;
                    assert_ne!(a.reverse_action, Some(ReverseAction::Close));
                }
            }
        }
        assert_eq!(a.state, AttemptState::Reversed);
        assert_eq!(a.reverse_action, Some(ReverseAction::Refund));
    }

    /// After a gap in contact (an outage through the deadline), the order is asked before any
    /// fence: a payment that arrived meanwhile is the store's sale.
    #[test]
    fn after_an_outage_the_order_is_queried_before_it_is_cancelled() {
        let p = fast();
        let up_at = T0 + 5_000;
        let (a, ops) = drive(&p, |op, now| match op {
            Op::Pay => Reply::Pending,
            Op::Query if now < up_at => Reply::unknown("timeout"),
            Op::Query => Reply::Paid,
            other => panic!("no {other:?} before the order was asked"),
        });
        assert_eq!(a.state, AttemptState::Paid, "{ops:?}");
    }

    #[test]
    fn only_a_person_leaves_review_and_only_from_review() {
        let p = fast();
        let mut a = Attempt::new(&p, T0);
        assert_eq!(resolve(&a, Resolution::Paid, "x"), None);
        a.state = AttemptState::ManualReview;
        let s = resolve(&a, Resolution::Refunded, "checked the bill").unwrap();
        assert_eq!(s.attempt.state, AttemptState::Reversed);
        assert_eq!(s.attempt.reverse_action, Some(ReverseAction::Refund));
        assert!(s.note.contains("checked the bill"));
        assert_eq!(
            resolve(&a, Resolution::NotCharged, "x")
                .unwrap()
                .attempt
                .state,
            AttemptState::Failed
        );
        assert_eq!(next(&s.attempt, &p, T0, false), Next::Settled);
    }

    #[test]
    fn a_signed_paid_notice_reopens_an_attempt_recorded_not_charged() {
        let p = fast();
        let mut a = Attempt::new(&p, T0);
        a.state = AttemptState::Reversed;
        a.reverse_action = Some(ReverseAction::Close);
        let s = paid_evidence(&a, &p, T0 + 500).expect("reopened");
        assert_eq!(s.attempt.state, AttemptState::ReverseIntent);
        assert!(s.alarm);
        assert_eq!(
            next(&s.attempt, &p, T0 + 500, false),
            Next::Send(Op::Reverse)
        );
        // A refunded one already returned the money; a paid one already counts it.
        a.reverse_action = Some(ReverseAction::Refund);
        assert_eq!(paid_evidence(&a, &p, T0), None);
        a.state = AttemptState::Paid;
        assert_eq!(paid_evidence(&a, &p, T0), None);
    }

    #[test]
    fn cancel_retried_then_store_and_forward() {
        let (a, _) = drive(&fast(), |op, _| match op {
            Op::Pay => Reply::Pending,
            Op::Query => Reply::Pending,
            _ => Reply::unknown("connection refused"),
        });
        assert_eq!(a.state, AttemptState::SafPending);
        assert_eq!(a.reverse_tries, 3);
        assert!(a.next_at_ms.is_some());
    }

    #[test]
    fn restart_in_pay_intent_queries_instead_of_paying_again() {
        let p = fast();
        let a = Attempt::new(&p, T0);
        match next(&a, &p, T0 + 10, false) {
            Next::Commit(s) => assert_eq!(s.attempt.state, AttemptState::Querying),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn window_closed_then_paid_is_refunded() {
        let p = fast();
        let mut a = Attempt::new(&p, T0);
        a.state = AttemptState::SafPending;
        let now = T0 + 6_000; // past the 5 s window
        assert_eq!(next(&a, &p, now, false), Next::Send(Op::Query));
        let s = apply(&a, &p, Op::Query, &Reply::Paid, now);
        assert_eq!(s.attempt.fence, Fence::Refund);
        assert_eq!(next(&s.attempt, &p, now, false), Next::Send(Op::Refund));
        let s = apply(&s.attempt, &p, Op::Refund, &Reply::Paid, now);
        assert_eq!(s.attempt.state, AttemptState::Reversed);
        assert_eq!(s.attempt.reverse_action, Some(ReverseAction::Refund));
    }

    #[test]
    fn window_closed_and_never_paid_fails() {
        let p = fast();
        let mut a = Attempt::new(&p, T0);
        a.state = AttemptState::ReverseIntent;
        let s = apply(&a, &p, Op::Query, &Reply::NotFound, T0 + 6_000);
        assert_eq!(s.attempt.state, AttemptState::Failed);
    }

    #[test]
    fn review_policy_stops_for_a_person() {
        let mut p = fast();
        p.after_window = AfterWindow::Review;
        let mut a = Attempt::new(&p, T0);
        a.state = AttemptState::ReverseIntent;
        let s = apply(&a, &p, Op::Query, &Reply::Paid, T0 + 6_000);
        assert_eq!(s.attempt.state, AttemptState::ManualReview);
        assert!(s.alarm);
    }

    #[test]
    fn saf_escalates_to_review_at_the_deadline() {
        let p = fast();
        let mut a = Attempt::new(&p, T0);
        a.state = AttemptState::SafPending;
        match next(&a, &p, T0 + 60_000, false) {
            Next::Commit(s) => {
                assert_eq!(s.attempt.state, AttemptState::ManualReview);
                assert!(s.alarm);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reverse_fence_never_leads_to_paid() {
        let p = fast();
        let mut a = Attempt::new(&p, T0);
        a.state = AttemptState::ReverseIntent;
        for r in [
            Reply::Paid,
            Reply::Pending,
            Reply::unknown("x"),
            Reply::Refused { why: "x".into() },
        ] {
            for op in [Op::Reverse, Op::Query, Op::Refund] {
                let s = apply(&a, &p, op, &r, T0 + 400);
                assert_ne!(s.attempt.state, AttemptState::Paid, "{op:?} {r:?}");
            }
        }
    }
}
