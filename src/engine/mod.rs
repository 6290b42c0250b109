//! The engine: runs the pure state machine against the journal and the gateways.
//!
//! For each attempt it asks `core::machine::next` what is needed, persists every change in the
//! journal *before* the request that follows it, sends requests through the attempt's gateway,
//! and feeds replies to `core::machine::apply`. It owns the guards that need storage (capacity,
//! clock, duplicate scans, fencing), refunds, notifications and recovery. It never decides an
//! outcome itself and never holds a payment code beyond the pay request that needs it.

pub mod claims;
pub mod health;
pub mod offline;
pub mod preauth;
pub mod recovery;

#[cfg(test)]
mod model_tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use thiserror::Error;

use crate::clock::Clock;
use crate::config::Config;
use crate::core::authcode::{CodeError, CodeRule, Wallet, fingerprint};
use crate::core::machine::{self, AttemptState, Next, Op, Reply, Step};
use crate::core::money::{Amount, AmountError};
use crate::core::policy::Policy;
use crate::failpoint;
use crate::gateway::aggregator::Aggregator;
use crate::gateway::{
    AttemptRef, Credential, Gateway, GatewayReply, Method, OrderDetails, RefundOutcome, RefundRef,
};
use crate::journal::{
    AttemptRow, Journal, JournalError, NewAttempt, RefundRow, RefundState, StepExtra,
};
use crate::util;

pub use recovery::RecoveryReport;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Amount(#[from] AmountError),
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "no gateway takes {0} payments on this terminal; add a route for it in the configuration"
    )]
    NoRoute(String),
    #[error("gateway {0:?} is not configured")]
    UnknownGateway(String),
    #[error("new sales are paused: {0}")]
    Paused(String),
    #[error("{0}")]
    Refused(String),
    #[error("order id {0:?} is not valid: use 1 to 32 letters, digits, '_' or '-'")]
    BadOrderId(String),
    /// Something failed after the attempt was journaled (its request may have gone out): the
    /// money question is open, never "declined". Recovery settles it from the journal.
    #[error(
        "{source}; order {} ({}) is journaled as {} and its outcome is not known: do NOT charge again, recovery settles it",
        attempt.order_id, attempt.out_trade_no, attempt.machine.state
    )]
    Unsettled {
        attempt: Box<AttemptRow>,
        source: Box<EngineError>,
    },
    /// The gateway gave no answer that proves anything; the journal's last known state is
    /// attached, but it is not news.
    #[error("{what}: the gateway gave no answer ({why}); the journal last recorded {known}")]
    NoAnswer {
        what: String,
        why: String,
        known: String,
    },
}

impl EngineError {
    /// Whether this is the caller's mistake (exit 1) rather than a refusal about money.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            EngineError::Amount(_)
                | EngineError::Code(_)
                | EngineError::BadOrderId(_)
                | EngineError::UnknownGateway(_)
        )
    }

    /// Whether money may have moved without the outcome being known (exit 3, "uncertain").
    pub fn is_uncertain(&self) -> bool {
        matches!(
            self,
            EngineError::Unsettled { .. } | EngineError::NoAnswer { .. }
        )
    }

    /// The attempt an error leaves open, if the error came after it was journaled.
    pub fn attempt(&self) -> Option<&AttemptRow> {
        match self {
            EngineError::Unsettled { attempt, .. } => Some(attempt),
            _ => None,
        }
    }
}

/// The gateways this terminal can use, by name.
#[derive(Clone, Default)]
pub struct Gateways(BTreeMap<String, Arc<dyn Gateway>>);

impl Gateways {
    pub fn insert(&mut self, name: &str, g: Arc<dyn Gateway>) {
        self.0.insert(name.to_string(), g);
    }

    pub fn get(&self, name: &str) -> Result<Arc<dyn Gateway>, EngineError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownGateway(name.to_string()))
    }

    /// Every gateway's probe target, for the connectivity monitor.
    pub fn endpoints(&self) -> Vec<String> {
        self.0.values().filter_map(|g| g.endpoint()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Builds every configured gateway, reading its secrets.
    pub fn from_config(cfg: &Config) -> Result<Gateways, crate::config::ConfigError> {
        let mut g = Gateways::default();
        if let Some(a) = &cfg.file.gateways.aggregator {
            let key = cfg.read_secret("aggregator key", &a.key_file)?;
            g.insert("aggregator", Arc::new(Aggregator::new(a.clone(), key)));
        }
        if let Some(a) = &cfg.file.gateways.acp {
            let acp = crate::gateway::unionpay::AcpGateway::from_config(cfg, a)
                .map_err(|e| crate::config::ConfigError::Invalid(format!("gateways.acp: {e}")))?;
            g.insert("acp", Arc::new(acp));
        }
        if let Some(c) = &cfg.file.gateways.chinaums {
            let ums = crate::gateway::chinaums::ChinaUms::from_config(cfg, c)?;
            g.insert("chinaums", Arc::new(ums));
        }
        if let Some(u) = &cfg.file.gateways.upapi {
            let contracts = crate::gateway::upapi::ContractGateway::from_config(cfg, u)
                .map_err(|e| crate::config::ConfigError::Invalid(format!("gateways.upapi: {e}")))?;
            g.insert("upapi", Arc::new(contracts));
        }
        Ok(g)
    }
}

/// What the engine needs from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub terminal_id: String,
    pub device_key: Vec<u8>,
    pub code_rules: Vec<CodeRule>,
    pub routes: BTreeMap<Wallet, String>,
    pub max_amount: Amount,
    pub max_open: usize,
    pub max_uncertain: Amount,
    pub max_open_age_ms: i64,
    pub duplicate_window_ms: i64,
    pub clock_jump_ms: i64,
    pub rate_per_s: f64,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, crate::config::ConfigError> {
        let l = &cfg.file.limits;
        Ok(Settings {
            terminal_id: cfg.file.terminal.id.clone(),
            device_key: cfg.device_key()?,
            code_rules: cfg.code_rules(),
            routes: Wallet::ALL
                .into_iter()
                .filter_map(|w| cfg.route(w).map(|g| (w, g)))
                .collect(),
            max_amount: cfg.max_amount(),
            max_open: l.max_open,
            max_uncertain: cfg.max_uncertain(),
            max_open_age_ms: (l.max_open_age_s * 1000) as i64,
            duplicate_window_ms: (l.duplicate_window_s * 1000) as i64,
            clock_jump_ms: (l.clock_jump_s * 1000) as i64,
            rate_per_s: cfg.file.recovery.rate_per_s,
        })
    }
}

/// A request for a payment.
#[derive(Clone, Debug)]
pub struct PayRequest {
    /// The caller's order (sale) id; a new one is made when absent.
    pub order_id: Option<String>,
    pub amount: Amount,
    pub credential: Credential,
    /// Face and QR payments say the wallet; codes are classified.
    pub wallet: Option<Wallet>,
    /// Overrides the route.
    pub gateway: Option<String>,
    pub details: OrderDetails,
}

/// When `drive` stops waiting and returns.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// The longest single wait it will sleep through.
    pub max_wait_ms: i64,
    /// Return as soon as the attempt reaches the store-and-forward queue.
    pub stop_at_saf: bool,
    /// Treat a stored `next_at` as due now on the first step (`payterm recover`).
    pub ignore_first_wait: bool,
}

impl Patience {
    /// A sale at the counter: wait through the query schedule and the cancel, not through SAF.
    pub const SALE: Patience = Patience {
        max_wait_ms: 10 * 60_000,
        stop_at_saf: true,
        ignore_first_wait: false,
    };
}

/// Progress callback: the attempt after each durable change, with what happened.
pub type Observer<'a> = &'a mut dyn FnMut(&AttemptRow, &str);

pub struct Engine {
    journal: Journal,
    gateways: Gateways,
    settings: Settings,
    /// Set when the process is stopping (the daemon's SIGTERM): attempts stop at their next wait
    /// or housekeeping request, their state already durable, and recovery resumes them later.
    stop: Option<Arc<AtomicBool>>,
    /// The attempts this process's threads are driving (see [`claims`]).
    claims: claims::Claims,
    /// Time as an input: the system clock in the daemon and the CLI, a virtual one in the
    /// simulator and the tests.
    clock: Arc<dyn Clock>,
    /// Whether each gateway answers (`health`): fed by every request's outcome.
    health: health::Health,
}

/// Makes order numbers of the form TERMINAL + yyMMddHHmmss + 4 random digits (≤ 28 chars).
pub fn new_out_trade_no(terminal_id: &str, now_ms: i64) -> String {
    let stamp = util::beijing_stamp(now_ms);
    let n: u32 = rand::thread_rng().gen_range(0..10_000);
    format!("{terminal_id}{}{n:04}", &stamp[2..])
}

fn valid_order_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Engine {
    pub fn new(journal: Journal, gateways: Gateways, settings: Settings) -> Engine {
        Engine {
            journal,
            gateways,
            settings,
            stop: None,
            claims: claims::Claims::default(),
            clock: crate::clock::system(),
            health: health::Health::default(),
        }
    }

    /// The same engine on `clock` (a virtual one in the simulator and the tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.clock = clock;
        self
    }

    /// The same engine, recording each gateway's answers in `health` (shared with the daemon).
    pub fn with_health(mut self, health: health::Health) -> Engine {
        self.health = health;
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The same engine, sharing `claims` with the process's other engines (the daemon's sale,
    /// recovery and API threads), so none of them drives an attempt another is driving.
    pub fn with_claims(mut self, claims: claims::Claims) -> Engine {
        self.claims = claims;
        self
    }

    /// The same engine, stopping its attempts at a safe point once `flag` is set.
    pub fn stop_when(mut self, flag: Arc<AtomicBool>) -> Engine {
        self.stop = Some(flag);
        self
    }

    /// Whether the process is stopping: no new waits and no housekeeping requests.
    pub fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Waits `d` on the engine's clock, in slices when a stop may be requested, so it is seen
    /// within 100 ms.
    fn pause(&self, d: Duration) {
        let Some(flag) = &self.stop else {
            self.clock.sleep(d);
            return;
        };
        let until = self.now().saturating_add(d.as_millis() as i64);
        while !flag.load(Ordering::SeqCst) {
            let left = until - self.now();
            if left <= 0 {
                break;
            }
            self.clock
                .sleep(Duration::from_millis(left.min(100) as u64));
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn journal_mut(&mut self) -> &mut Journal {
        &mut self.journal
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn gateways(&self) -> &Gateways {
        &self.gateways
    }

    fn policy_of(&self, row: &AttemptRow) -> Result<Policy, EngineError> {
        Ok(self.gateways.get(&row.gateway)?.policy(row.wallet))
    }

    /// Refuses new sales when the open queue or the clock says so (RELIABILITY.md §7.6–7.7).
    pub fn sales_allowed(&self, now: i64) -> Result<(), EngineError> {
        if now < 1_704_067_200_000 {
            return Err(EngineError::Paused(
                "the clock is not set (it reads before 2024); sync the time (NTP) first".into(),
            ));
        }
        let (n, sum, oldest) = self.journal.uncertain()?;
        if n >= self.settings.max_open {
            return Err(EngineError::Paused(format!(
                "{n} transactions are still unsettled (limit {}); restore the network or run `payterm recover`",
                self.settings.max_open
            )));
        }
        if sum >= self.settings.max_uncertain {
            return Err(EngineError::Paused(format!(
                "{sum} yuan is still unsettled (limit {})",
                self.settings.max_uncertain
            )));
        }
        if let Some(o) = oldest
            && now - o > self.settings.max_open_age_ms
        {
            return Err(EngineError::Paused(format!(
                "a transaction has been unsettled for {} minutes; see `payterm journal list --open`",
                (now - o) / 60_000
            )));
        }
        let newest: Option<i64> = self
            .journal
            .list(&crate::journal::ListFilter {
                limit: Some(1),
                ..Default::default()
            })?
            .first()
            .map(|a| a.updated_ms);
        if let Some(t) = newest
            && t - now > self.settings.clock_jump_ms
        {
            return Err(EngineError::Paused(format!(
                "the clock went back {} s since the journal's last write; check the time (NTP)",
                (t - now) / 1000
            )));
        }
        Ok(())
    }

    /// Takes a payment: checks, journals the attempt, sends it, and drives it until its outcome is
    /// known or it is safely queued. The returned row says where it ended.
    pub fn pay(
        &mut self,
        req: PayRequest,
        observe: Observer<'_>,
    ) -> Result<AttemptRow, EngineError> {
        let now = self.now();
        if req.amount.is_zero() {
            return Err(AmountError::NotPositive("0".into()).into());
        }
        if req.amount > self.settings.max_amount {
            return Err(AmountError::AboveLimit(req.amount, self.settings.max_amount).into());
        }
        if let Some(o) = &req.order_id
            && !valid_order_id(o)
        {
            return Err(EngineError::BadOrderId(o.clone()));
        }
        let (wallet, fp, mask) = match &req.credential {
            Credential::Code(c) => (
                Some(c.wallet()),
                Some(c.fingerprint(&self.settings.device_key)),
                Some(c.masked()),
            ),
            Credential::Face { face_code, .. } => (
                req.wallet.or(Some(Wallet::Wechat)),
                Some(fingerprint(&self.settings.device_key, face_code.expose())),
                Some(face_code.masked()),
            ),
            Credential::Qr { .. } => (req.wallet.or(Some(Wallet::Wechat)), None, None),
            // A contract may rightly be debited twice in a row: no duplicate-scan fingerprint.
            Credential::Contract { contract_id } => (
                req.wallet.or(Some(Wallet::Unionpay)),
                None,
                Some(crate::core::authcode::mask(contract_id)),
            ),
        };
        let gw_name = match (&req.gateway, wallet) {
            (Some(g), _) => g.clone(),
            (None, Some(w)) => self
                .settings
                .routes
                .get(&w)
                .cloned()
                .ok_or_else(|| EngineError::NoRoute(w.display_name().to_string()))?,
            (None, None) => return Err(EngineError::NoRoute("these".into())),
        };
        let gw = self.gateways.get(&gw_name)?;
        self.sales_allowed(now)?;
        let policy = gw.policy(wallet);
        let mut row = None;
        let mut claim = None;
        for _ in 0..5 {
            let out_trade_no = new_out_trade_no(&self.settings.terminal_id, now);
            if self.journal.by_out_trade_no(&out_trade_no)?.is_some() {
                continue;
            }
            // Claimed before the row is visible: a recovery pass must never take a sale's
            // attempt while its pay request is on the way.
            let Some(c) = self.claims.take(&out_trade_no) else {
                continue;
            };
            claim = Some(c);
            let method = match req.credential {
                Credential::Code(_) => Method::Code,
                Credential::Face { .. } => Method::Face,
                Credential::Qr { .. } => Method::Qr,
                Credential::Contract { .. } => Method::Code,
            };
            let mut m = machine::Attempt::new(&policy, now);
            if method == Method::Qr {
                // A customer scanning a QR code needs longer than one confirming a password.
                m.deadline_ms = now + policy.qr_deadline_ms() as i64;
            }
            let new = NewAttempt {
                order_id: req.order_id.clone().unwrap_or_else(|| out_trade_no.clone()),
                gateway: gw_name.clone(),
                method,
                wallet,
                out_trade_no,
                amount: req.amount,
                code_fp: fp.clone(),
                code_mask: mask.clone(),
                chan_txn_time: gw.txn_time(now),
                machine: m,
                details: req.details.clone(),
            };
            row = Some(self.journal.insert_attempt(
                &new,
                now,
                self.settings.duplicate_window_ms,
            )?);
            break;
        }
        let row =
            row.ok_or_else(|| EngineError::Refused("could not make a unique order number".into()))?;
        observe(&row, "attempt journaled");
        let mut last = row.clone();
        let r = {
            let mut watch = |r: &AttemptRow, note: &str| {
                last = r.clone();
                observe(r, note);
            };
            self.drive_held(
                row.attempt_id,
                Some(&req.credential),
                Patience::SALE,
                &mut watch,
            )
        };
        drop(claim);
        r.map_err(|e| EngineError::Unsettled {
            attempt: Box::new(last),
            source: Box::new(e),
        })
    }

    /// Runs one attempt until it is settled, queued, or needs a longer wait than `patience`.
    /// If another thread of this process is driving it, returns it as it is: that driver
    /// sees every committed change (a cancel request, say) on its next step.
    pub fn drive(
        &mut self,
        attempt_id: i64,
        credential: Option<&Credential>,
        patience: Patience,
        observe: Observer<'_>,
    ) -> Result<AttemptRow, EngineError> {
        let row = self.journal.attempt(attempt_id)?;
        let Some(_claim) = self.claims.take(&row.out_trade_no) else {
            return Ok(row);
        };
        self.drive_held(attempt_id, credential, patience, observe)
    }

    /// [`Engine::drive`] for a caller that holds the attempt's claim.
    fn drive_held(
        &mut self,
        attempt_id: i64,
        credential: Option<&Credential>,
        patience: Patience,
        observe: Observer<'_>,
    ) -> Result<AttemptRow, EngineError> {
        let mut credential = credential;
        let mut first = patience.ignore_first_wait;
        let mut conflicts = 0;
        loop {
            let mut row = self.journal.attempt(attempt_id)?;
            let policy = self.policy_of(&row)?;
            let gw = self.gateways.get(&row.gateway)?;
            if first {
                row.machine.next_at_ms = None;
                first = false;
            }
            let now = self.now();
            let result = match machine::next(&row.machine, &policy, now, credential.is_some()) {
                Next::Settled => return Ok(row),
                Next::WaitUntil(t) => {
                    if patience.stop_at_saf && row.machine.parked(&policy, now) {
                        return Ok(row);
                    }
                    let wait = t - now;
                    if wait > patience.max_wait_ms || self.stopping() {
                        return Ok(row);
                    }
                    self.pause(Duration::from_millis(wait.max(1) as u64));
                    continue;
                }
                Next::Commit(step) => self.commit(&row, &step, &StepExtra::default(), now, observe),
                // Stopping: a query, cancel or refund is redone by recovery after the restart;
                // only a sale's own pay request (its code exists nowhere else) still goes out.
                Next::Send(op) if self.stopping() && (op != Op::Pay || credential.is_none()) => {
                    return Ok(row);
                }
                Next::Send(op) => {
                    let reply = self.send(&gw, &row, op, credential)?;
                    if op == Op::Pay {
                        // The code has done its one job; it is not kept.
                        credential = None;
                    }
                    let now = self.now();
                    let step = machine::apply(&row.machine, &policy, op, &reply.reply, now);
                    failpoint::hit(if op == Op::Reverse { "C6" } else { "C3" });
                    let extra = StepExtra {
                        op: Some(op),
                        detail: &reply.detail,
                        chan_trade_no: reply.chan_trade_no.as_deref(),
                        code_url: reply.code_url.as_deref(),
                    };
                    self.commit(&row, &step, &extra, now, observe)
                }
            };
            match result {
                Ok(r) => {
                    if r.machine.state == AttemptState::Querying {
                        failpoint::hit("C4");
                    }
                    if r.machine.state == AttemptState::ReverseIntent {
                        failpoint::hit("C5");
                    }
                    if patience.stop_at_saf && r.machine.parked(&policy, self.now()) {
                        return Ok(r);
                    }
                }
                Err(EngineError::Journal(JournalError::Conflict)) if conflicts < 20 => {
                    // Another process moved this attempt; re-read and continue from its state.
                    conflicts += 1;
                    self.clock.sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn commit(
        &mut self,
        row: &AttemptRow,
        step: &Step,
        extra: &StepExtra<'_>,
        now: i64,
        observe: Observer<'_>,
    ) -> Result<AttemptRow, EngineError> {
        if extra.op.is_some() && failpoint::error("E3") {
            // The commit that records a reply fails (a full disk, an I/O error).
            return Err(JournalError::Simulated("E3: the commit after a reply failed").into());
        }
        let r = self
            .journal
            .commit_step(row.attempt_id, row.version, step, extra, now)?;
        // The code only as its mask: never the code itself.
        let code = r.code_mask.as_deref().unwrap_or("-");
        if step.alarm {
            tracing::warn!(order = %r.order_id, out_trade_no = %r.out_trade_no, code, state = %r.machine.state, "{}", step.note);
        } else {
            tracing::info!(order = %r.order_id, out_trade_no = %r.out_trade_no, code, state = %r.machine.state, "{}", step.note);
        }
        observe(&r, &step.note);
        Ok(r)
    }

    fn attempt_ref(row: &AttemptRow) -> AttemptRef {
        AttemptRef {
            out_trade_no: row.out_trade_no.clone(),
            amount: row.amount,
            wallet: row.wallet,
            method: row.method,
            chan_txn_time: row.chan_txn_time.clone(),
            created_ms: row.machine.created_ms,
            chan_trade_no: row.chan_trade_no.clone(),
            details: row.details.clone(),
        }
    }

    fn send(
        &mut self,
        gw: &Arc<dyn Gateway>,
        row: &AttemptRow,
        op: Op,
        credential: Option<&Credential>,
    ) -> Result<GatewayReply, EngineError> {
        let started = self.now();
        let reply = self.send_inner(gw, row, op, credential)?;
        let now = self.now();
        self.health
            .record(&row.gateway, reply.reply.is_answer(), now, now - started);
        Ok(reply)
    }

    fn send_inner(
        &mut self,
        gw: &Arc<dyn Gateway>,
        row: &AttemptRow,
        op: Op,
        credential: Option<&Credential>,
    ) -> Result<GatewayReply, EngineError> {
        let a = Self::attempt_ref(row);
        Ok(match op {
            Op::Pay => {
                failpoint::hit("C1");
                let Some(c) = credential else {
                    return Ok(GatewayReply::new(
                        Reply::unknown("no credential"),
                        "restart",
                    ));
                };
                let r = gw.pay(&a, c);
                failpoint::hit("C2");
                r
            }
            Op::Query => gw.query(&a),
            Op::Reverse => gw.reverse(&a),
            Op::Refund => {
                let refund = self.fence_refund(row)?;
                let r = RefundRef {
                    out_refund_no: refund.out_refund_no.clone(),
                    amount: refund.amount,
                    order_total: row.amount,
                };
                let reply = gw.refund_fence(&a, &r);
                let now = self.now();
                let (state, note) = match &reply.reply {
                    Reply::Paid => (RefundState::Done, "refunded".to_string()),
                    Reply::Refused { why } => (RefundState::Failed, why.clone()),
                    other => (RefundState::Unknown, other.describe()),
                };
                if state != refund.state || state != RefundState::Unknown {
                    self.journal.update_refund(
                        refund.refund_id,
                        refund.state,
                        state,
                        None,
                        &note,
                        now,
                    )?;
                }
                reply
            }
        })
    }

    /// The full refund that fences an attempt after its cancel window, journaled once.
    fn fence_refund(&mut self, row: &AttemptRow) -> Result<RefundRow, EngineError> {
        let existing = self.journal.refunds_for(row.attempt_id)?;
        if let Some(r) = existing.iter().find(|r| r.kind == "fence") {
            return Ok(r.clone());
        }
        let taken: u64 = existing
            .iter()
            .filter(|r| r.state != RefundState::Failed)
            .map(|r| r.amount.fen())
            .sum();
        let left = row.amount.fen().saturating_sub(taken);
        let no = refund_number(&row.out_trade_no, 'F', 0);
        Ok(self.journal.refund_intent(
            row.attempt_id,
            &no,
            Amount::from_fen(left.max(1)),
            "fence",
            self.now(),
        )?)
    }

    /// The newest attempt of an order (or the attempt with this out_trade_no).
    pub fn latest(&self, name: &str) -> Result<AttemptRow, EngineError> {
        let mut v = self.journal.find(name)?;
        let paid = v.iter().position(|a| a.machine.state == AttemptState::Paid);
        Ok(match paid {
            Some(i) => v.swap_remove(i),
            None => v.pop().ok_or_else(|| JournalError::NotFound(name.into()))?,
        })
    }

    /// One harmless signed request to each gateway that has a probe (an order query for a
    /// number that cannot exist, say), recorded in the health record: how the daemon learns,
    /// while idle, whether the gateways answer. Returns (gateway, answered, why).
    pub fn probe_gateways(&self) -> Vec<(String, bool, String)> {
        let mut out = Vec::new();
        for name in self.gateways.names() {
            let Ok(gw) = self.gateways.get(&name) else {
                continue;
            };
            let started = self.now();
            let Some(r) = gw.probe() else { continue };
            let now = self.now();
            let answered = r.reply.is_answer();
            self.health.record(&name, answered, now, now - started);
            out.push((name, answered, r.detail));
        }
        out
    }

    /// A person settles an attempt in manual review (`payterm journal resolve`): the note says
    /// what was found and where, and stays in the history. The journal's unique index still
    /// refuses a second PAID attempt on one order.
    pub fn resolve_review(
        &mut self,
        name: &str,
        to: machine::Resolution,
        note: &str,
        observe: Observer<'_>,
    ) -> Result<AttemptRow, EngineError> {
        let rows = self.journal.find(name)?;
        let row = rows
            .into_iter()
            .rev()
            .find(|r| r.machine.state == AttemptState::ManualReview)
            .ok_or_else(|| {
                EngineError::Refused(format!(
                    "{name} has no attempt in manual review; the machine settles the others by itself"
                ))
            })?;
        let step = machine::resolve(&row.machine, to, note)
            .ok_or_else(|| EngineError::Refused(format!("{name} is not in manual review")))?;
        let now = self.now();
        let extra = StepExtra {
            op: None,
            detail: "resolved by a person",
            chan_trade_no: None,
            code_url: None,
        };
        self.commit(&row, &step, &extra, now, observe)
    }

    /// Asks the gateway about an order now, without changing the journal.
    pub fn query(&self, name: &str) -> Result<(AttemptRow, GatewayReply), EngineError> {
        let row = self.latest(name)?;
        let gw = self.gateways.get(&row.gateway)?;
        let r = gw.query(&Self::attempt_ref(&row));
        Ok((row, r))
    }

    /// Cancels an order: an unsettled attempt is fenced, a paid one reversed while its window
    /// is open (after that, use a refund).
    pub fn cancel(&mut self, name: &str, observe: Observer<'_>) -> Result<AttemptRow, EngineError> {
        // A refund journaled between our read and the fence's commit bumps the attempt's
        // version: the commit fails and the checks run again on what is now true.
        let mut tries = 0;
        loop {
            match self.cancel_once(name, observe) {
                Err(EngineError::Journal(JournalError::Conflict)) if tries < 5 => tries += 1,
                other => return other,
            }
        }
    }

    fn cancel_once(
        &mut self,
        name: &str,
        observe: Observer<'_>,
    ) -> Result<AttemptRow, EngineError> {
        let row = self.latest(name)?;
        let now = self.now();
        match row.machine.state {
            AttemptState::PayIntent => {
                return Err(EngineError::Refused(format!(
                    "{} is waiting for its pay reply; it will be queried and fenced by itself (or run `payterm recover`)",
                    row.out_trade_no
                )));
            }
            AttemptState::Paid => {
                if !self.journal.refunds_for(row.attempt_id)?.is_empty() {
                    return Err(EngineError::Refused(format!(
                        "order {} already has refunds; cancel is for whole, unrefunded orders — refund the rest instead",
                        row.order_id
                    )));
                }
                if row.machine.reverse_until_ms.is_some_and(|u| now > u) {
                    return Err(EngineError::Refused(format!(
                        "the cancel window of order {} closed at {}; refund it instead: payterm refund {} --amount {}",
                        row.order_id,
                        util::beijing_human(row.machine.reverse_until_ms.unwrap_or(0)),
                        row.order_id,
                        row.amount
                    )));
                }
            }
            AttemptState::Querying => {}
            s if s.is_final() => {
                return Err(EngineError::Refused(format!(
                    "order {} is already {}; nothing to cancel",
                    row.order_id, s
                )));
            }
            _ => {}
        }
        let mut row = row;
        if let Some(step) = machine::cancel_requested(&row.machine, now) {
            row = self.commit(&row, &step, &StepExtra::default(), now, observe)?;
        }
        self.drive(
            row.attempt_id,
            None,
            Patience {
                ignore_first_wait: true,
                ..Patience::SALE
            },
            observe,
        )
    }

    /// Refunds part or all of a paid order. Refused locally, before any request, when it would
    /// exceed what remains.
    pub fn refund(
        &mut self,
        name: &str,
        amount: Amount,
        out_refund_no: Option<String>,
    ) -> Result<RefundRow, EngineError> {
        let row = self.latest(name)?;
        if row.machine.state != AttemptState::Paid {
            return Err(EngineError::Refused(format!(
                "order {} is {}, not paid; only paid orders are refunded",
                row.order_id, row.machine.state
            )));
        }
        let no = match out_refund_no {
            Some(n) => {
                if !crate::gateway::aggregator::valid_out_trade_no(&n) {
                    return Err(EngineError::Refused(format!(
                        "refund id {n:?} must be 5 to 32 letters, digits or '_'"
                    )));
                }
                n
            }
            None => {
                let count = self.journal.refunds_for(row.attempt_id)?.len();
                refund_number(&row.out_trade_no, 'R', count + 1)
            }
        };
        // Claimed before the intent is visible, as a sale's attempt is: a recovery pass must
        // not query a refund whose request is on the way and record a "no such refund" as final.
        let Some(_claim) = self.claims.take(&no) else {
            return Err(EngineError::Refused(format!(
                "refund {no} is being sent right now; ask for it again in a moment"
            )));
        };
        let now = self.now();
        // The journal checks, in the intent's own transaction, that the order is still paid:
        // a cancel racing this refund either fenced it first (refused here) or fails its own
        // version check.
        let refund = self
            .journal
            .refund_intent(row.attempt_id, &no, amount, "manual", now)?;
        if refund.state.is_final() {
            return Ok(refund);
        }
        self.send_refund(&row, &refund)
    }

    fn send_refund(
        &mut self,
        row: &AttemptRow,
        refund: &RefundRow,
    ) -> Result<RefundRow, EngineError> {
        let gw = self.gateways.get(&row.gateway)?;
        let r = RefundRef {
            out_refund_no: refund.out_refund_no.clone(),
            amount: refund.amount,
            order_total: row.amount,
        };
        let started = self.now();
        let outcome = gw.refund(&Self::attempt_ref(row), &r);
        let now = self.now();
        let answered = !matches!(outcome, RefundOutcome::Unknown { .. });
        self.health
            .record(&row.gateway, answered, now, now - started);
        self.record_refund(refund, outcome)
    }

    /// Records what a refund request or query said. A refund recorded DONE stays DONE: a later
    /// "failed" contradicts money already returned, and is kept in the history with an alarm
    /// instead. Only a proven failure frees the refund's amount for another refund.
    fn record_refund(
        &mut self,
        refund: &RefundRow,
        outcome: RefundOutcome,
    ) -> Result<RefundRow, EngineError> {
        let now = self.now();
        let (state, chan, note) = match outcome {
            RefundOutcome::Done { chan_refund_no } => {
                (RefundState::Done, chan_refund_no, "refunded".to_string())
            }
            RefundOutcome::Processing => (RefundState::Processing, None, "processing".to_string()),
            RefundOutcome::Failed { code, reason } => {
                (RefundState::Failed, None, format!("{code} {reason}"))
            }
            RefundOutcome::Unknown { why } => (RefundState::Unknown, None, why),
        };
        use crate::core::refund::{self, Evidence};
        let evidence = match state {
            RefundState::Done => Evidence::Done,
            RefundState::Processing => Evidence::Processing,
            RefundState::Failed => Evidence::Failed,
            RefundState::Intent | RefundState::Unknown => Evidence::Unknown,
        };
        let step = refund::apply(refund.state, evidence);
        if step.alarm {
            tracing::warn!(
                refund = %refund.out_refund_no,
                "refund recorded {}, the gateway now says {}: {note}; recorded {}, a person should check",
                refund.state.as_str(),
                state.as_str(),
                step.state.as_str()
            );
        }
        if step.state == refund.state && refund.state.is_final() {
            return Ok(refund.clone());
        }
        let state = step.state;
        Ok(self.journal.update_refund(
            refund.refund_id,
            refund.state,
            state,
            chan.as_deref(),
            &note,
            now,
        )?)
    }

    /// Asks the gateway about a refund and records the answer. With no answer that proves
    /// anything it says so ([`EngineError::NoAnswer`]) rather than repeating the journal.
    pub fn refund_query(&mut self, out_refund_no: &str) -> Result<RefundRow, EngineError> {
        let (row, answered) = self.refund_query_inner(out_refund_no)?;
        match answered {
            None => Ok(row),
            Some(why) => Err(EngineError::NoAnswer {
                what: format!("refund {out_refund_no}"),
                why,
                known: format!("{} ({})", row.state.as_str(), row.note),
            }),
        }
    }

    /// The refund after asking the gateway, and why the answer proved nothing (if it did not).
    fn refund_query_inner(
        &mut self,
        out_refund_no: &str,
    ) -> Result<(RefundRow, Option<String>), EngineError> {
        let refund = self
            .journal
            .refund_by_no(out_refund_no)?
            .ok_or_else(|| JournalError::NotFound(out_refund_no.to_string()))?;
        let row = self.journal.attempt(refund.attempt_id)?;
        let gw = self.gateways.get(&row.gateway)?;
        let started = self.now();
        let outcome = gw.refund_query(&Self::attempt_ref(&row), out_refund_no);
        let now = self.now();
        let answered = !matches!(outcome, RefundOutcome::Unknown { .. });
        self.health
            .record(&row.gateway, answered, now, now - started);
        if let RefundOutcome::Unknown { why } = &outcome {
            let why = why.clone();
            if refund.state.is_final() {
                return Ok((refund, Some(why)));
            }
            let r = self.record_refund(&refund, outcome)?;
            return Ok((r, Some(why)));
        }
        Ok((self.record_refund(&refund, outcome)?, None))
    }

    /// Re-sends a refund whose outcome is unknown (same number: the gateway refunds once).
    pub fn settle_refund(&mut self, refund: &RefundRow) -> Result<RefundRow, EngineError> {
        if self.stopping() {
            return Ok(refund.clone());
        }
        // Another thread of this process is sending it: its reply decides.
        let Some(_claim) = self.claims.take(&refund.out_refund_no) else {
            return Ok(refund.clone());
        };
        let (q, _) = self.refund_query_inner(&refund.out_refund_no)?;
        if q.state == RefundState::Unknown || q.state == RefundState::Intent {
            let row = self.journal.attempt(refund.attempt_id)?;
            return self.send_refund(&row, &q);
        }
        Ok(q)
    }

    /// Handles a pre-order result notification: verifies it, checks it against the journal,
    /// records it, and returns the body to answer — `success` only once the result is durable.
    pub fn notification(
        &mut self,
        gateway: &str,
        body: &[u8],
        observe: Observer<'_>,
    ) -> &'static str {
        let result = self.gateways.get(gateway).and_then(|gw| {
            gw.verify_notification(body)
                .map_err(|e| EngineError::Refused(format!("notification refused: {e}")))
        });
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(body))
        };
        match result.and_then(|n| self.apply_notification(&n, &digest, observe)) {
            Ok(()) => "success",
            Err(e) => {
                tracing::warn!(gateway, "{e}");
                "fail"
            }
        }
    }

    /// A notification already verified by the aggregator client.
    pub fn apply_notification(
        &mut self,
        n: &crate::gateway::Notice,
        digest: &str,
        observe: Observer<'_>,
    ) -> Result<(), EngineError> {
        if let Some(what) = &n.no_result {
            tracing::info!("acknowledged {what}");
            return Ok(());
        }
        let now = self.now();
        let row = self
            .journal
            .by_out_trade_no(&n.out_trade_no)?
            .ok_or_else(|| {
                EngineError::Refused(format!("notification for unknown order {}", n.out_trade_no))
            })?;
        if row.machine.state == AttemptState::PayIntent {
            // The pay request is still on its way (UnionPay notifies a lost reply's payment at
            // once): not recorded and not acknowledged, so the channel sends it again once the
            // attempt is being queried, where it settles it.
            return Err(EngineError::Refused(format!(
                "notification for {} while its pay request is in flight; send it again",
                n.out_trade_no
            )));
        }
        let fresh = self.journal.record_notification(
            &row.gateway,
            &n.out_trade_no,
            digest,
            if n.paid { "paid" } else { "not paid" },
            now,
        )?;
        if !fresh {
            return Ok(());
        }
        if n.amount != row.amount {
            let step = machine::notice_mismatch(
                &row.machine,
                &n.amount.to_string(),
                &row.amount.to_string(),
            );
            self.commit(&row, &step, &StepExtra::default(), now, observe)?;
            return Ok(());
        }
        if !n.paid {
            // "Not paid" is a hint at most; the query schedule establishes it.
            return Ok(());
        }
        let policy = self.policy_of(&row)?;
        if let Some(step) = machine::paid_evidence(&row.machine, &policy, now) {
            let extra = StepExtra {
                op: None,
                detail: "signed notification",
                chan_trade_no: n.chan_trade_no.as_deref(),
                code_url: None,
            };
            // A reopened attempt is fenced by the recovery loop (the daemon wakes it after a
            // notification): the gateway waits only seconds for our answer.
            self.commit(&row, &step, &extra, now, observe)?;
        }
        Ok(())
    }
}

/// A refund number derived from the order number: at most 32 characters, unique per index.
pub fn refund_number(out_trade_no: &str, kind: char, n: usize) -> String {
    let suffix = format!("{kind}{n}");
    let keep = 32usize.saturating_sub(suffix.len()).min(out_trade_no.len());
    format!("{}{suffix}", &out_trade_no[..keep])
}
