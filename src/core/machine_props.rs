//! Property tests of the state machine (see docs/reliability.md): the invariants of
//! RELIABILITY.md §8 checked against a simulated gateway that keeps its own truth.
//!
//! A random script of events drives several attempts on one order: each step either changes the
//! world (the clock jumps, the network goes down or comes back, the customer confirms or walks
//! away, a delayed request arrives, the process crashes, the cashier cancels, a new attempt is
//! started once the journal would allow it) or sends the next request of one attempt through a
//! network that may lose the request, lose or garble the reply, be busy, refuse, delay or
//! duplicate it, or crash the process around it. Replies are always consistent with what the
//! simulated gateway really did, so "PAID" is only ever believed when the gateway took the money.
//! When the script runs out the network stays up, and every attempt must then reach a final state
//! or manual review. This module only reads the machine; it owns no production code.

use std::collections::BTreeSet;
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::machine::{
    Attempt, AttemptState, Next, Op, Reply, ReverseAction, Step, apply, cancel_requested, next,
};
use super::policy::{AfterWindow, Policy};

/// 2026-11-22 10:00 Beijing.
const T0: i64 = 1_795_312_800_000;
/// A delayed request reaches the gateway at most this long after it was sent: shorter than every
/// policy's pay deadline (the transport gave up long before), which is what lets a "no such
/// order" after the deadline be believed when no cancel can fence the number any more.
const MAX_DELAY_MS: i64 = 25_000;
/// The longest a real gateway's order store lags behind its own pay processing (an order
/// invisible to query and cancel for this long after it was created).
const MAX_LAG_MS: i64 = 60_000;
/// A bound on simulation steps; reaching it is a liveness failure.
const MAX_STEPS: usize = 50_000;

/// What the network does to the one request sent in this step.
#[derive(Clone, Copy, Debug)]
enum Net {
    /// Delivered; the true reply comes back.
    Ok,
    /// Never arrives; the transport times out.
    LoseRequest,
    /// Processed; the reply is lost (timeout).
    LoseReply,
    /// Processed; the reply's signature does not verify.
    Garble,
    /// The gateway is busy: a cancel is asked to be retried, a pay or query gets a system error,
    /// a refund is accepted but still processing.
    Busy,
    /// The gateway refuses a cancel or a refund for a reason of its own.
    Refuse,
    /// A pay request is held in the network and arrives later (within `MAX_DELAY_MS`).
    Delay,
    /// A pay request arrives twice; the reply we read is the second one's.
    Duplicate,
    /// The process dies just before sending (C1, C5).
    CrashBeforeSend,
    /// The request is processed and the process dies before committing the reply (C2, C3, C6).
    CrashAfterSend,
    /// The process dies inside the commit of a timer-driven change (C7).
    CrashInCommit,
}

/// Something that happens in the world between requests.
#[derive(Clone, Copy, Debug)]
enum Happening {
    Tick(i64),
    Jump(i64),

    NetDown,
    NetUp,
    CustomerConfirms,
    CustomerWalksAway,
    DelayedArrives,
    Crash,
    NewAttempt,
    CashierCancels,
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Send(Net),
    World(Happening),
}

fn net() -> impl Strategy<Value = Net> {
    prop_oneof![
        12 => Just(Net::Ok),
        3 => Just(Net::LoseRequest),
        3 => Just(Net::LoseReply),
        1 => Just(Net::Garble),
        2 => Just(Net::Busy),
        1 => Just(Net::Refuse),
        1 => Just(Net::Delay),
        1 => Just(Net::Duplicate),
        1 => Just(Net::CrashBeforeSend),
        2 => Just(Net::CrashAfterSend),
        1 => Just(Net::CrashInCommit),
    ]
}

fn happening() -> impl Strategy<Value = Happening> {
    prop_oneof![
        4 => (1i64..20_000).prop_map(Happening::Tick),
        2 => (60_000i64..3_600_000).prop_map(Happening::Jump),
        1 => Just(Happening::NetDown),
        2 => Just(Happening::NetUp),
        2 => Just(Happening::CustomerConfirms),
        1 => Just(Happening::CustomerWalksAway),
        1 => Just(Happening::DelayedArrives),
        1 => Just(Happening::Crash),
        2 => Just(Happening::NewAttempt),
        1 => Just(Happening::CashierCancels),
    ]
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![3 => net().prop_map(Ev::Send), 1 => happening().prop_map(Ev::World)]
}

/// How a pay request is answered when it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Customer {
    PaysAtOnce,
    EntersPassword,
    Declined,
}

fn customer() -> impl Strategy<Value = Customer> {
    prop_oneof![
        Just(Customer::PaysAtOnce),
        Just(Customer::EntersPassword),
        Just(Customer::Declined)
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (0u8..4, 0i64..3).prop_map(|(which, tries)| {
        let mut p = if which % 2 == 0 {
            Policy::aggregator()
        } else {
            Policy::acp()
        };
        if which >= 2 {
            p.after_window = AfterWindow::Review;
        }
        p.reverse_tries_before_saf = 1 + tries as u32 * 4;
        p
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GStatus {
    /// The customer is confirming.
    Paying,
    Paid,
    Declined,
    /// Cancelled before money moved (or created closed by a cancel of an unknown number).
    Closed,
    /// Cancelled after payment: the money went back.
    Revoked,
}

/// The gateway's own record of one order number.
#[derive(Clone, Debug)]
struct GOrder {
    status: GStatus,
    created: i64,
    /// A full refund went through (by the fence refund's fixed number, so at most once).
    refunded: bool,
    /// Money was taken at some point.
    ever_paid: bool,
}

impl GOrder {
    fn holds_money(&self) -> bool {
        self.status == GStatus::Paid && !self.refunded
    }
}

/// One attempt as the simulated terminal holds it.
#[derive(Clone, Debug)]
struct Sim {
    /// The last committed value: what a restart reloads.
    persisted: Attempt,
    /// The value the running process works with.
    mem: Attempt,
    /// The payment code is still in memory.
    credential: bool,
    customer: Customer,
    /// Pay requests this terminal sent for the attempt (network duplicates not counted).
    pays_sent: u32,
}

/// The whole simulated world of one order.
struct Model {
    policy: Policy,
    now: i64,
    /// The gateway closes its cancel window this much earlier than the policy says (a policy
    /// configured a little too generously, or the gateway counting from its own receipt time).
    shrink: i64,
    net_up: bool,
    attempts: Vec<Sim>,
    /// The gateway, by attempt index (each attempt has its own order number).
    gateway: Vec<Option<GOrder>>,
    /// Pay requests still in the network: (attempt, sent at).
    in_flight: Vec<(usize, i64)>,
    /// Round-robin cursor over attempts.
    cursor: usize,
    /// An order is invisible to query and cancel for this long after it was created.
    lag: i64,
    /// The aggregator's cancel: "accepted" without saying what it did, and "no such order" for
    /// a number it does not know (which it leaves unfenced). Otherwise the cancel says what it
    /// did and closes an unknown number (Alipay's cancel, UnionPay's undo).
    accepting_cancel: bool,
    seen: BTreeSet<&'static str>,
    log: Vec<String>,
}

fn kind(r: &Reply) -> &'static str {
    match r {
        Reply::Paid => "Paid",
        Reply::Pending => "Pending",
        Reply::Failed { .. } => "Failed",
        Reply::NotFound => "NotFound",
        Reply::Refunded => "Refunded",
        Reply::Closed => "Closed",
        Reply::CancelAccepted => "CancelAccepted",
        Reply::Unknown { .. } => "Unknown",
        Reply::OrderNumberUsed => "OrderNumberUsed",
        Reply::Reversed(ReverseAction::Close) => "Reversed(close)",
        Reply::Reversed(ReverseAction::Refund) => "Reversed(refund)",
        Reply::RetryLater { .. } => "RetryLater",
        Reply::WindowClosed => "WindowClosed",
        Reply::Refused { .. } => "Refused",
    }
}

const ALL_KINDS: [&str; 14] = [
    "Closed",
    "CancelAccepted",
    "Paid",
    "Pending",
    "Failed",
    "NotFound",
    "Refunded",
    "Unknown",
    "OrderNumberUsed",
    "Reversed(close)",
    "Reversed(refund)",
    "RetryLater",
    "WindowClosed",
    "Refused",
];

/// What the property found wrong, with the trail that led there.
type Verdict = Result<(), String>;

impl Model {
    fn new(policy: Policy, start: i64, first: Customer) -> Model {
        let mut w = Model {
            policy,
            now: start,
            shrink: 0,
            net_up: true,
            attempts: Vec::new(),
            gateway: Vec::new(),
            in_flight: Vec::new(),
            cursor: 0,
            lag: 0,
            accepting_cancel: false,
            seen: BTreeSet::new(),
            log: Vec::new(),
        };
        w.start_attempt(first);
        w
    }

    /// The failure message with the trail of events that led to it.
    fn fail(&self, what: String) -> String {
        let from = self.log.len().saturating_sub(40);
        format!("{what}\n--- last events ---\n{:#?}", &self.log[from..])
    }

    /// The journal's guard: a new attempt only when none is paid or still unfenced.
    fn may_start(&self) -> bool {
        self.attempts.iter().all(|s| {
            !s.persisted.state.blocks_new_attempt() && s.persisted.state != AttemptState::Paid
        })
    }

    fn start_attempt(&mut self, c: Customer) {
        let a = Attempt::new(&self.policy, self.now);
        self.attempts.push(Sim {
            persisted: a.clone(),
            mem: a,
            credential: true,
            customer: c,
            pays_sent: 0,
        });
        self.gateway.push(None);
        self.log.push(format!(
            "t={} new attempt {}",
            self.now,
            self.attempts.len() - 1
        ));
    }

    /// A restart: every attempt is reloaded from the journal; codes held in memory are gone.
    fn crash(&mut self) {
        for s in &mut self.attempts {
            let mut a = s.persisted.clone();
            // The journal does not store `pay_sent`; a reloaded PAY_INTENT is "maybe sent".
            a.pay_sent = false;
            s.mem = a;
            s.credential = false;
        }
        self.log.push(format!("t={} crash and restart", self.now));
    }

    /// Delivers a pay request to the gateway; returns the true reply to it.
    fn gw_pay(&mut self, i: usize) -> Reply {
        self.gw_pay_at(i, self.now)
    }

    /// A pay request reaching the gateway at `at` (a delayed one arrives within `MAX_DELAY_MS`
    /// of its sending, even when the model's clock has jumped past that).
    fn gw_pay_at(&mut self, i: usize, at: i64) -> Reply {
        if self.gateway[i].is_some() {
            return Reply::OrderNumberUsed;
        }
        let status = match self.attempts[i].customer {
            Customer::PaysAtOnce => GStatus::Paid,
            Customer::EntersPassword => GStatus::Paying,
            Customer::Declined => GStatus::Declined,
        };
        self.gateway[i] = Some(GOrder {
            status,
            created: at,
            refunded: false,
            ever_paid: status == GStatus::Paid,
        });
        match status {
            GStatus::Paid => Reply::Paid,
            GStatus::Paying => Reply::Pending,
            _ => Reply::Failed {
                code: "NOTENOUGH".into(),
                reason: "balance".into(),
            },
        }
    }

    /// Whether the gateway's query and cancel can see the order yet.
    fn visible(&self, i: usize) -> bool {
        self.gateway[i]
            .as_ref()
            .is_some_and(|o| self.now - o.created >= self.lag)
    }

    fn gw_query(&self, i: usize) -> Reply {
        if !self.visible(i) {
            return Reply::NotFound;
        }
        match &self.gateway[i] {
            None => Reply::NotFound,
            Some(o) => match o.status {
                GStatus::Paying => Reply::Pending,
                GStatus::Paid if o.refunded => Reply::Refunded,
                GStatus::Paid => Reply::Paid,
                GStatus::Revoked => Reply::Refunded,
                GStatus::Declined => Reply::Failed {
                    code: "PAYERROR".into(),
                    reason: "declined".into(),
                },
                GStatus::Closed => Reply::Closed,
            },
        }
    }

    fn gw_reverse(&mut self, i: usize, refuse: bool) -> Reply {
        let now = self.now;
        if self.accepting_cancel && !self.visible(i) {
            // 20007: nothing is fenced, and a late pay request can still create the order.
            return Reply::NotFound;
        }
        let accepting = self.accepting_cancel;
        let p = &self.policy;
        let Some(o) = self.gateway[i].as_mut() else {
            // An unknown number is closed so a late request cannot pay it.
            self.gateway[i] = Some(GOrder {
                status: GStatus::Closed,
                created: now,
                refunded: false,
                ever_paid: false,
            });
            return Reply::Reversed(ReverseAction::Close);
        };
        if now - o.created < p.reverse_not_before_ms as i64 {
            return Reply::RetryLater {
                why: "too early".into(),
            };
        }
        if p.reverse_until(o.created)
            .is_some_and(|u| now > u - self.shrink)
        {
            return Reply::WindowClosed;
        }
        if refuse {
            return if o.holds_money() {
                Reply::Paid
            } else {
                Reply::Refused {
                    why: "no permission to cancel".into(),
                }
            };
        }
        match o.status {
            GStatus::Paid if o.refunded => Reply::Refused {
                why: "already refunded".into(),
            },
            GStatus::Paid | GStatus::Revoked => {
                o.status = GStatus::Revoked;
                if accepting {
                    Reply::CancelAccepted
                } else {
                    Reply::Reversed(ReverseAction::Refund)
                }
            }
            _ => {
                o.status = GStatus::Closed;
                if accepting {
                    Reply::CancelAccepted
                } else {
                    Reply::Reversed(ReverseAction::Close)
                }
            }
        }
    }

    fn gw_refund(&mut self, i: usize, refuse: bool, busy: bool) -> Reply {
        let Some(o) = self.gateway[i].as_mut() else {
            return Reply::Refused {
                why: "no such order".into(),
            };
        };
        match o.status {
            GStatus::Paid if o.refunded => Reply::Paid,
            GStatus::Paid if refuse => Reply::Refused {
                why: "merchant balance too low".into(),
            },
            GStatus::Paid => {
                o.refunded = true;
                if busy { Reply::Pending } else { Reply::Paid }
            }
            GStatus::Revoked => Reply::Refunded,
            _ => Reply::Failed {
                code: "NOTPAID".into(),
                reason: "the order was not paid".into(),
            },
        }
    }

    /// Processes `op` for attempt `i` at the gateway under `n`; returns what the terminal reads,
    /// or `None` if the process crashed around it.
    fn exchange(&mut self, i: usize, op: Op, n: Net) -> Option<Reply> {
        let n = if self.net_up { n } else { Net::LoseRequest };
        if matches!(n, Net::CrashBeforeSend) {
            return None;
        }
        let lost = || Reply::unknown("timeout");
        let truth = match (op, n) {
            (_, Net::LoseRequest) => return Some(lost()),
            (Op::Pay, Net::Delay) => {
                self.in_flight.push((i, self.now));
                return Some(lost());
            }
            (Op::Pay, Net::Duplicate) => {
                self.gw_pay(i);
                self.gw_pay(i)
            }
            (Op::Pay, _) => self.gw_pay(i),
            (Op::Query, Net::Busy) => return Some(Reply::unknown("SYSTEMERROR")),
            (Op::Query, _) => self.gw_query(i),
            (Op::Reverse, Net::Busy) => {
                return Some(Reply::RetryLater {
                    why: "recall=Y".into(),
                });
            }
            (Op::Reverse, n) => self.gw_reverse(i, matches!(n, Net::Refuse)),
            (Op::Refund, n) => self.gw_refund(i, matches!(n, Net::Refuse), matches!(n, Net::Busy)),
        };
        match n {
            Net::CrashAfterSend => None,
            Net::LoseReply => Some(lost()),
            Net::Garble => Some(Reply::unknown("signature does not verify")),
            Net::Busy if op == Op::Pay => Some(Reply::unknown("SYSTEMERROR")),
            _ => Some(truth),
        }
    }

    /// Delivers every delayed request whose time is up (or all of them with `all`).
    fn deliver_delayed(&mut self, all: bool) {
        let now = self.now;
        let due: Vec<(usize, i64)> = self
            .in_flight
            .iter()
            .copied()
            .filter(|&(_, at)| all || now - at >= MAX_DELAY_MS)
            .collect();
        self.in_flight
            .retain(|&(_, at)| !(all || now - at >= MAX_DELAY_MS));
        for (i, sent) in due {
            let r = self.gw_pay_at(i, now.min(sent + MAX_DELAY_MS));
            self.log.push(format!(
                "t={now} delayed pay of {i} arrives: {}",
                r.describe()
            ));
        }
    }

    /// Persists `step` for attempt `i`, checking the invariants that hold at every commit.
    fn commit(&mut self, i: usize, step: Step) -> Verdict {
        let before = self.attempts[i].persisted.state;
        let after = step.attempt.state;
        self.log.push(format!(
            "t={} attempt {i}: {before} -> {after} ({})",
            self.now, step.note
        ));
        // Nothing leaves a final state by itself (a cashier's cancel of a PAID one is separate).
        if matches!(before, AttemptState::Failed | AttemptState::Reversed) && after != before {
            return Err(self.fail(format!("attempt {i} left final state {before} for {after}")));
        }
        if before == AttemptState::ManualReview && after != before {
            return Err(self.fail(format!("attempt {i} left manual review for {after}")));
        }
        // Never reverse without querying first (§7.4 C3): the deadline fences only after at
        // least one query was answered (or timed out).
        if before == AttemptState::Querying
            && after == AttemptState::ReverseIntent
            && step.note.contains("deadline")
            && self.attempts[i].persisted.queries == 0
        {
            return Err(self.fail(format!(
                "attempt {i} fenced at the deadline without a query"
            )));
        }
        if after == AttemptState::Paid && before != AttemptState::Paid {
            // PAID only before the fence, and only when the gateway really took the money (I4).
            if !matches!(before, AttemptState::PayIntent | AttemptState::Querying) {
                return Err(self.fail(format!("attempt {i} became PAID from {before}")));
            }
            if !self.gateway[i].as_ref().is_some_and(GOrder::holds_money) {
                return Err(self.fail(format!(
                    "I4: attempt {i} PAID but the gateway holds {:?}",
                    self.gateway[i]
                )));
            }
        }
        if after == AttemptState::Reversed {
            let o = self.gateway[i].as_ref();
            match step.attempt.reverse_action {
                Some(ReverseAction::Refund) if !o.is_some_and(|o| o.ever_paid) => {
                    return Err(self.fail(format!("attempt {i} says refunded, gateway {o:?}")));
                }
                Some(ReverseAction::Close) if o.is_some_and(|o| o.ever_paid) => {
                    return Err(self.fail(format!("attempt {i} says closed, gateway {o:?}")));
                }
                None => return Err(self.fail(format!("attempt {i} REVERSED without an action"))),
                _ => {}
            }
        }
        let s = &mut self.attempts[i];
        s.persisted = step.attempt.clone();
        s.mem = step.attempt;
        // I1: at most one PAID per order, in storage.
        let paid = self
            .attempts
            .iter()
            .filter(|s| s.persisted.state == AttemptState::Paid)
            .count();
        if paid > 1 {
            return Err(self.fail(format!("I1: {paid} attempts PAID on one order")));
        }
        Ok(())
    }

    /// One step of attempt `i` with the network behaving as `n`. Returns whether it did anything
    /// other than wait.
    fn step(&mut self, i: usize, n: Net, live: bool) -> Result<bool, String> {
        let s = &self.attempts[i];
        match next(&s.mem, &self.policy, self.now, s.credential) {
            Next::Settled => Ok(false),
            Next::WaitUntil(t) => {
                if t <= self.now {
                    return Err(self.fail(format!(
                        "attempt {i} waits for the past ({t} <= {})",
                        self.now
                    )));
                }
                if live {
                    self.now = t;
                }
                Ok(false)
            }
            Next::Commit(step) => {
                if matches!(n, Net::CrashInCommit) {
                    self.crash();
                    return Ok(true);
                }
                self.commit(i, step)?;
                Ok(true)
            }
            Next::Send(op) => {
                // Write-ahead: nothing is sent from a state that is not in the journal.
                let s = &self.attempts[i];
                let mut m = s.mem.clone();
                m.pay_sent = s.persisted.pay_sent;
                if m != s.persisted {
                    return Err(self.fail(format!(
                        "attempt {i} sends {op:?} from an unpersisted state"
                    )));
                }
                match op {
                    Op::Pay => {
                        if !s.credential || s.mem.state != AttemptState::PayIntent {
                            return Err(self.fail(format!("attempt {i} pays without a code")));
                        }
                        self.attempts[i].pays_sent += 1;
                        if self.attempts[i].pays_sent > 1 {
                            return Err(
                                self.fail(format!("attempt {i} sent its pay request twice"))
                            );
                        }
                    }
                    Op::Reverse | Op::Refund
                        if !matches!(
                            s.persisted.state,
                            AttemptState::ReverseIntent | AttemptState::SafPending
                        ) =>
                    {
                        return Err(
                            self.fail(format!("attempt {i} sends {op:?} in {}", s.persisted.state))
                        );
                    }
                    _ => {}
                }
                let reply = self.exchange(i, op, n);
                if op == Op::Pay {
                    // The engine drops the code once the pay request has been handed over.
                    self.attempts[i].credential = false;
                }
                let Some(reply) = reply else {
                    self.log
                        .push(format!("t={} attempt {i}: {op:?} then crash", self.now));
                    self.crash();
                    return Ok(true);
                };
                self.seen.insert(kind(&reply));
                self.log.push(format!(
                    "t={} attempt {i}: {op:?} -> {}",
                    self.now,
                    reply.describe()
                ));
                let step = apply(&self.attempts[i].mem, &self.policy, op, &reply, self.now);
                self.commit(i, step)?;
                Ok(true)
            }
        }
    }

    fn world(&mut self, w: Happening, next_customer: Customer) -> Verdict {
        match w {
            Happening::Tick(ms) | Happening::Jump(ms) => self.now += ms,
            Happening::NetDown => self.net_up = false,
            Happening::NetUp => self.net_up = true,
            Happening::CustomerConfirms => {
                for o in self.gateway.iter_mut().flatten() {
                    if o.status == GStatus::Paying {
                        o.status = GStatus::Paid;
                        o.ever_paid = true;
                        break;
                    }
                }
            }
            Happening::CustomerWalksAway => {
                for o in self.gateway.iter_mut().flatten() {
                    if o.status == GStatus::Paying {
                        o.status = GStatus::Declined;
                        break;
                    }
                }
            }
            Happening::DelayedArrives => {
                if let Some((i, sent)) = self.in_flight.first().copied() {
                    self.in_flight.remove(0);
                    let r = self.gw_pay_at(i, self.now.min(sent + MAX_DELAY_MS));
                    self.log.push(format!(
                        "t={} delayed pay of {i} arrives: {}",
                        self.now,
                        r.describe()
                    ));
                }
            }
            Happening::Crash => self.crash(),
            Happening::NewAttempt => {
                if self.may_start() && self.attempts.len() < 6 {
                    self.start_attempt(next_customer);
                }
            }
            Happening::CashierCancels => {
                let i = self.attempts.len() - 1;
                if let Some(step) = cancel_requested(&self.attempts[i].mem, self.now) {
                    self.commit(i, step)?;
                }
            }
        }
        self.log.push(format!("t={} world: {w:?}", self.now));
        Ok(())
    }

    /// An attempt still holds its code and has not sent its pay request yet.
    fn unsent_pay(&self) -> bool {
        self.attempts
            .iter()
            .any(|s| s.credential && s.mem.state == AttemptState::PayIntent)
    }

    fn settled(&self) -> bool {
        self.attempts
            .iter()
            .all(|s| next(&s.mem, &self.policy, self.now, s.credential) == Next::Settled)
    }

    /// The end state: every attempt final or in review (I2), journal and gateway agree (I4),
    /// and at most one charge survives on the order (I1, in money).
    fn check_end(&self) -> Verdict {
        let mut review = false;
        for (i, s) in self.attempts.iter().enumerate() {
            let st = s.persisted.state;
            let held = self.gateway[i].as_ref().is_some_and(GOrder::holds_money);
            match st {
                AttemptState::Paid if !held => {
                    return Err(self.fail(format!(
                        "I4: attempt {i} PAID, gateway {:?}",
                        self.gateway[i]
                    )));
                }
                AttemptState::Failed | AttemptState::Reversed if held => {
                    return Err(self.fail(format!(
                        "attempt {i} {st} but the gateway kept the money: {:?}",
                        self.gateway[i]
                    )));
                }
                AttemptState::ManualReview => review = true,
                s if !s.is_final() => {
                    return Err(self.fail(format!("I2: attempt {i} ended in {s}")));
                }
                _ => {}
            }
        }
        let charges = self
            .gateway
            .iter()
            .flatten()
            .filter(|o| o.holds_money())
            .count();
        if !review && charges > 1 {
            return Err(self.fail(format!("I1: the customer was charged {charges} times")));
        }
        Ok(())
    }

    /// I6: recovery on a settled attempt changes nothing, whatever time it runs and whatever
    /// late reply arrives.
    fn check_recovery_idempotent(&self) -> Verdict {
        let replies = [
            Reply::Paid,
            Reply::Pending,
            Reply::Failed {
                code: "X".into(),
                reason: "x".into(),
            },
            Reply::NotFound,
            Reply::Refunded,
            Reply::Closed,
            Reply::CancelAccepted,
            Reply::unknown("x"),
            Reply::OrderNumberUsed,
            Reply::Reversed(ReverseAction::Close),
            Reply::Reversed(ReverseAction::Refund),
            Reply::RetryLater { why: "x".into() },
            Reply::WindowClosed,
            Reply::Refused { why: "x".into() },
        ];
        for (i, s) in self.attempts.iter().enumerate() {
            let mut a = s.persisted.clone();
            a.pay_sent = false;
            for later in [0, 1, 3_600_000, 30 * 86_400_000] {
                let t = self.now + later;
                if next(&a, &self.policy, t, false) != Next::Settled {
                    return Err(self.fail(format!(
                        "I6: settled attempt {i} ({}) wants {:?} at +{later} ms",
                        a.state,
                        next(&a, &self.policy, t, false)
                    )));
                }
            }
            for op in [Op::Pay, Op::Query, Op::Reverse, Op::Refund] {
                for r in &replies {
                    let st = apply(&a, &self.policy, op, r, self.now);
                    if st.attempt != a {
                        return Err(self.fail(format!(
                            "I6: settled attempt {i} ({}) changed by a late {op:?} {r:?}",
                            a.state
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The gateway's character in one history: how far its order store lags, and whether its cancel
/// only says "accepted" (the aggregator) or says what it did.
#[derive(Clone, Copy, Debug)]
struct Character {
    lag: i64,
    accepting_cancel: bool,
}

fn character() -> impl Strategy<Value = Character> {
    (
        prop_oneof![2 => Just(0i64), 1 => 0i64..MAX_LAG_MS],
        any::<bool>(),
    )
        .prop_map(|(lag, accepting_cancel)| Character {
            lag,
            accepting_cancel,
        })
}

fn run(
    policy: Policy,
    start: i64,
    shrink: i64,
    character: Character,
    customers: Vec<Customer>,
    script: Vec<Ev>,
) -> Verdict {
    let mut customers = customers.into_iter().cycle();
    let first = customers.next().unwrap_or(Customer::PaysAtOnce);
    let mut w = Model::new(policy, start, first);
    w.shrink = shrink;
    w.lag = character.lag;
    w.accepting_cancel = character.accepting_cancel;
    let mut steps = 0usize;
    for e in script {
        steps += 1;
        w.deliver_delayed(false);
        match e {
            // The engine sends the pay request right after committing the intent: no time
            // passes in between (a crash may still come between them).
            Ev::World(Happening::Tick(_) | Happening::Jump(_)) if w.unsent_pay() => {}
            Ev::World(x) => {
                let c = customers.next().unwrap_or(Customer::PaysAtOnce);
                w.world(x, c)?;
            }
            Ev::Send(n) => {
                let i = w.cursor % w.attempts.len();
                w.cursor += 1;
                w.step(i, n, false)?;
            }
        }
    }
    // The network is up from here on, and stays up long enough.
    w.net_up = true;
    w.log
        .push(format!("t={} --- network up for good ---", w.now));
    while !w.settled() {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(w.fail("I2: the attempts did not settle with the network up".into()));
        }
        w.deliver_delayed(false);
        let mut busy = false;
        let mut earliest = i64::MAX;
        for i in 0..w.attempts.len() {
            let s = &w.attempts[i];
            match next(&s.mem, &w.policy, w.now, s.credential) {
                Next::WaitUntil(t) => earliest = earliest.min(t),
                Next::Settled => {}
                _ => busy |= w.step(i, Net::Ok, true)?,
            }
        }
        if !busy && earliest != i64::MAX {
            w.now = earliest.max(w.now + 1);
        }
        if w.now - start > 40 * 86_400_000 {
            return Err(w.fail("I2: still unsettled 40 days later".into()));
        }
    }
    w.deliver_delayed(true);
    w.check_end()?;
    w.check_recovery_idempotent()?;
    // A crash after settling and a second recovery find nothing to do.
    w.crash();
    if !w.settled() {
        return Err(w.fail("I6: a restart after settling found work".into()));
    }
    SEEN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(w.seen.iter().copied());
    Ok(())
}

static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

#[test]
fn invariants_hold_for_random_histories() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        policy(),
        // Any time of day, and often just around ACP's 23:00 cut-off (13 h after T0).
        prop_oneof![3 => 0i64..86_400_000, 1 => 46_680_000i64..46_920_000],
        prop_oneof![Just(0i64), 0i64..120_000],
        character(),
        prop::collection::vec(customer(), 1..6),
        prop::collection::vec(ev(), 0..160),
    );
    let result = runner.run(&strategy, |(p, offset, shrink, ch, customers, script)| {
        run(p, T0 + offset, shrink, ch, customers, script).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The random histories exercised every kind of reply the machine can get.
    let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let missing: Vec<&str> = ALL_KINDS
        .iter()
        .copied()
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(missing.is_empty(), "replies never exercised: {missing:?}");
}

#[test]
fn a_quiet_network_pays_at_once() {
    // A control for the simulator itself: no faults, the customer pays, one request.
    let mut w = Model::new(Policy::aggregator(), T0, Customer::PaysAtOnce);
    assert_eq!(w.step(0, Net::Ok, true), Ok(true));
    assert_eq!(w.attempts[0].persisted.state, AttemptState::Paid);
    assert!(w.check_end().is_ok());
    // And the simulator does catch a lie: a PAID the gateway never recorded.
    let mut w = Model::new(Policy::aggregator(), T0, Customer::Declined);
    let mut a = w.attempts[0].persisted.clone();
    a.state = AttemptState::Paid;
    let lie = Step {
        attempt: a,
        note: "lie".into(),
        alarm: false,
    };
    assert!(w.commit(0, lie).unwrap_err().contains("I4"));
}

#[test]
fn a_late_payment_after_the_deadline_is_refunded_not_kept() {
    // RELIABILITY §8 test 8: the customer confirms between the last query and the cancel.
    let p = Policy::aggregator();
    let mut w = Model::new(p.clone(), T0, Customer::EntersPassword);
    assert_eq!(w.step(0, Net::Ok, true), Ok(true)); // pay -> pending
    w.now = T0 + p.pay_deadline_ms as i64;
    assert_eq!(w.step(0, Net::Ok, true), Ok(true)); // deadline -> REVERSE_INTENT
    w.world(Happening::CustomerConfirms, Customer::PaysAtOnce)
        .unwrap();
    while !w.settled() {
        let _ = w.step(0, Net::Ok, true).unwrap();
    }
    assert_eq!(w.attempts[0].persisted.state, AttemptState::Reversed);
    assert_eq!(
        w.attempts[0].persisted.reverse_action,
        Some(ReverseAction::Refund)
    );
    assert!(w.check_end().is_ok());
}

#[test]
fn acp_near_the_cutoff_waits_for_a_late_pay_request_before_failing() {
    // Found by the property above: an ACP attempt made just before 23:00 loses its cancel window
    // within a second, so a "no such order" right after a lost pay reply must not close it while
    // the request may still arrive; the machine asks again at the pay deadline and then sees the
    // payment (and refunds it, the window being closed).
    let p = Policy::acp();
    let cutoff = T0 + 13 * 3_600_000;
    let created = cutoff - 500;
    let mut w = Model::new(p.clone(), created, Customer::PaysAtOnce);
    assert_eq!(w.step(0, Net::Delay, true), Ok(true)); // pay held in the network
    while w.attempts[0].persisted.state != AttemptState::ReverseIntent {
        w.step(0, Net::Ok, true).unwrap();
    }
    assert!(w.now > cutoff, "the window has closed");
    // The window is closed, the order is not there yet: no FAILED.
    w.step(0, Net::Ok, true).unwrap();
    assert_eq!(w.attempts[0].persisted.state, AttemptState::ReverseIntent);
    let sent = w.attempts[0]
        .persisted
        .sent_ms
        .expect("the pay reply time is kept");
    assert_eq!(
        w.attempts[0].persisted.next_at_ms,
        Some(sent + p.not_found_final_after_ms as i64)
    );
    w.deliver_delayed(true);
    while !w.settled() {
        w.step(0, Net::Ok, true).unwrap();
    }
    assert_eq!(w.attempts[0].persisted.state, AttemptState::Reversed);
    assert_eq!(
        w.attempts[0].persisted.reverse_action,
        Some(ReverseAction::Refund)
    );
    assert!(w.check_end().is_ok());
}
