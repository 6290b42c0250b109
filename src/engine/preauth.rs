//! The pre-authorisation family under the write-ahead rule: ChinaUMS bills 预授权撤销 / 预授权完成 /
//! 预授权完成撤销 and UnionPay ACP pre-auth (02/04), undo (32), completion (03), completion undo (33).
//!
//! [`run`] journals each operation in INTENT (committed) before its request is sent, sends it
//! through its channel, and commits what came back: DONE, FAILED, or UNKNOWN when no trustworthy
//! reply arrived. [`settle`] (`payterm recover`, [`Engine::recover_all`]) resolves INTENT and
//! UNKNOWN operations by the operation's query — ChinaUMS `bills/query` (the bill's state says
//! whether the operation took effect), ACP status query (00) of the operation's own
//! orderId/txnTime — and hands to a person (REVIEW, with a note saying what to check) what the
//! query contradicts or what stays unknown past the channel's review deadline. Nothing is ever
//! sent twice: a repeated request number returns what the journal knows, or resolves it by a
//! query, and never re-sends; a new operation on a pre-authorisation waits until the previous one
//! is resolved. An operation younger than its channel's longest request time is left alone by
//! recovery, since the process that sent it may still be waiting for the reply.
//!
//! This module never stores a scanned code (only its mask) and does not decide what the customer
//! is owed: it records what the channel did. Crash points for tests (`failpoints` feature): `PA1`
//! after the INTENT commit, before sending; `PA2` after the reply, before committing it.
//!
//! [`Engine::recover_all`]: super::Engine::recover_all

use std::cell::OnceCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use thiserror::Error;

use super::Engine;
use super::recovery::RecoveryReport;
use crate::config::Config;
use crate::core::money::Amount;
use crate::failpoint;
use crate::gateway::chinaums::{BillResult, ChinaUms, PreAuthRef, UmsError};
use crate::gateway::unionpay::AcpGateway;
use crate::gateway::unionpay::txn::{OrigRef, TxnTime, Verdict};
use crate::journal::{
    Intent, Journal, JournalError, NewPreAuth, PreAuthChange, PreAuthOp, PreAuthRow, PreAuthState,
};
use crate::util;

/// Why an operation was not run. Nothing was sent in any of these cases.
#[derive(Debug, Error)]
pub enum PreAuthError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    BadInput(String),
    #[error(
        "request number {no} was already used for another operation ({what}); use a new request number"
    )]
    NumberReused { no: String, what: String },
    #[error(
        "{target} has an operation whose outcome is not settled (request {no}, {state}); `payterm recover` resolves INTENT and UNKNOWN, and a person settles REVIEW with `payterm journal resolve {no} --done|--failed --note …`; then send another"
    )]
    Blocked {
        target: String,
        no: String,
        state: String,
    },
    #[error("{gateway} cannot be used: {why}")]
    NoChannel { gateway: String, why: String },
}

impl PreAuthError {
    /// The command line's exit code: 1 bad input or configuration, 2 refused (nothing moved).
    pub fn exit_code(&self) -> u8 {
        match self {
            PreAuthError::Blocked { .. } => 2,
            _ => 1,
        }
    }
}

/// What a channel reports about an operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// DONE, FAILED, UNKNOWN or REVIEW.
    pub state: PreAuthState,
    /// Our sentence for the history and for people.
    pub note: String,
    /// The channel's words (codes, states).
    pub detail: String,
    pub chan_ref: Option<String>,
    /// What the channel said, as JSON for the command line (bill state, amounts, queryId).
    pub info: Value,
}

impl Outcome {
    fn new(state: PreAuthState, note: impl Into<String>, detail: impl Into<String>) -> Outcome {
        Outcome {
            state,
            note: note.into(),
            detail: detail.into(),
            chan_ref: None,
            info: Value::Null,
        }
    }

    fn done(note: impl Into<String>, detail: impl Into<String>) -> Outcome {
        Outcome::new(PreAuthState::Done, note, detail)
    }

    fn failed(note: impl Into<String>, detail: impl Into<String>) -> Outcome {
        Outcome::new(PreAuthState::Failed, note, detail)
    }

    fn unknown(note: impl Into<String>, detail: impl Into<String>) -> Outcome {
        Outcome::new(PreAuthState::Unknown, note, detail)
    }

    fn review(note: impl Into<String>, detail: impl Into<String>) -> Outcome {
        Outcome::new(PreAuthState::Review, note, detail)
    }
}

/// One channel of the family, as the engine uses it.
pub trait PreAuthChannel {
    /// The gateway name stored in the journal (`chinaums`, `acp`).
    fn name(&self) -> &'static str;
    /// The timestamp to journal and send for an operation created at `now_ms`.
    fn txn_time(&self, now_ms: i64) -> String;
    /// Sends a journaled operation. `code`: the scanned code of an ACP pre-authorisation, which
    /// exists nowhere else.
    fn send(&self, op: &PreAuthRow, code: Option<&str>) -> Outcome;
    /// Finds out by a query what became of `op`; UNKNOWN when the query cannot tell yet.
    fn resolve(&self, op: &PreAuthRow, now_ms: i64) -> Outcome;
    /// The longest a send may still be waiting for its reply: recovery leaves younger
    /// operations to the process sending them.
    fn in_flight_ms(&self) -> i64;
    /// How long an operation may stay unknown before a person is asked.
    fn review_after_ms(&self) -> i64;
}

/// An operation to run, before it has a request number.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub gateway: &'static str,
    pub operation: PreAuthOp,
    pub target: Value,
    pub target_key: String,
    pub amount: Amount,
    pub code_mask: Option<String>,
}

/// A ChinaUMS bills operation on `r` (cancel, complete with `amount`, completion cancel).
pub fn bill_plan(op: PreAuthOp, r: &PreAuthRef, amount: Amount) -> Result<Plan, PreAuthError> {
    r.check()
        .map_err(|e| PreAuthError::BadInput(e.to_string()))?;
    let amount = match op {
        PreAuthOp::Complete if amount.is_zero() => {
            return Err(PreAuthError::BadInput(
                "the completion amount must be positive".into(),
            ));
        }
        PreAuthOp::Complete => amount,
        PreAuthOp::Cancel | PreAuthOp::CompleteCancel => Amount::from_fen(0),
        PreAuthOp::PreAuth => {
            return Err(PreAuthError::BadInput(
                "a ChinaUMS pre-authorisation is made by the customer scanning its QR code, not by payterm"
                    .into(),
            ));
        }
    };
    Ok(Plan {
        gateway: "chinaums",
        operation: op,
        target: json!({
            "bill_no": r.bill_no,
            "bill_date": r.bill_date,
            "mer_order_id": r.mer_order_id,
            "auth_id_resp_cd": r.auth_id_resp_cd,
        }),
        target_key: format!("bill:{}/{}/{}", r.bill_date, r.bill_no, r.mer_order_id),
        amount,
        code_mask: None,
    })
}

/// An ACP operation: the pre-authorisation itself (`code`, no `orig`) or a follow-up on `orig`.
pub fn acp_plan(
    op: PreAuthOp,
    orig: Option<&OrigRef>,
    amount: Amount,
    code: Option<&str>,
) -> Result<Plan, PreAuthError> {
    let bad = |s: &str| Err(PreAuthError::BadInput(s.to_string()));
    if amount.is_zero() || amount.fen() > 999_999_999_999 {
        return bad("the amount must be at least 0.01 yuan");
    }
    let (target, target_key, code_mask) = match (op, orig, code) {
        (PreAuthOp::PreAuth, None, Some(c)) => {
            if c.is_empty() || c.len() > 20 || !c.bytes().all(|b| b.is_ascii_digit()) {
                return bad("the customer's code (qrNo) must be 1 to 20 digits");
            }
            // The target is the pre-authorisation itself, keyed by the request number in `run`.
            (
                json!({}),
                String::new(),
                Some(crate::core::authcode::mask(c)),
            )
        }
        (PreAuthOp::PreAuth, _, _) => {
            return bad("a pre-authorisation needs the customer's code and no original");
        }
        (_, Some(o), None) => {
            let (t, k) = match o {
                OrigRef::QueryId(q) => {
                    if let Err(e) = crate::gateway::unionpay::txn::check_orig_query_id(q) {
                        return Err(PreAuthError::BadInput(format!("--orig-query-id: {e}")));
                    }
                    (json!({"orig_query_id": q}), format!("qid:{q}"))
                }
                OrigRef::Order { order_id, txn_time } => {
                    if crate::gateway::unionpay::txn::check_order_id(order_id).is_err() {
                        return bad("the original's orderId must be 8 to 40 letters or digits");
                    }
                    (
                        json!({"orig_order_id": order_id, "orig_txn_time": txn_time.to_string()}),
                        format!("order:{order_id}@{txn_time}"),
                    )
                }
            };
            (t, k, None)
        }
        _ => return bad("a follow-up needs the original transaction and no code"),
    };
    Ok(Plan {
        gateway: "acp",
        operation: op,
        target,
        target_key,
        amount,
        code_mask,
    })
}

/// A request number: `PA` + the terminal (letters and digits) + yyMMddHHmmss + 4 random digits,
/// valid as an ACP orderId (8 to 40 letters and digits).
pub fn new_request_no(terminal_id: &str, now_ms: i64) -> String {
    let t: String = terminal_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(20)
        .collect();
    let stamp = util::beijing_stamp(now_ms);
    let n: u32 = rand::thread_rng().gen_range(0..10_000);
    format!("PA{t}{}{n:04}", &stamp[2..])
}

fn check_request_no(no: &str) -> Result<(), PreAuthError> {
    if !(8..=40).contains(&no.len()) || !no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(PreAuthError::BadInput(format!(
            "request number {no:?} must be 8 to 40 letters or digits"
        )));
    }
    Ok(())
}

/// What [`run`] did.
#[derive(Clone, Debug)]
pub struct Ran {
    pub row: PreAuthRow,
    /// The request was sent by this call (false: a repeat answered from the journal).
    pub sent: bool,
    /// What the channel said this time (Null when nothing was asked).
    pub info: Value,
}

/// Runs one operation under the write-ahead rule (see the module documentation).
pub fn run(
    journal: &mut Journal,
    ch: &dyn PreAuthChannel,
    plan: Plan,
    request_no: Option<String>,
    terminal_id: &str,
    code: Option<&str>,
) -> Result<Ran, PreAuthError> {
    if plan.gateway != ch.name() {
        return Err(PreAuthError::NoChannel {
            gateway: plan.gateway.into(),
            why: format!("the channel given is {}", ch.name()),
        });
    }
    let now = util::now_ms();
    let no = match request_no {
        Some(n) => {
            check_request_no(&n)?;
            n
        }
        None => new_request_no(terminal_id, now),
    };
    let txn_time = ch.txn_time(now);
    // A pre-authorisation is its own target: its request number is its orderId.
    let target_key = if plan.operation == PreAuthOp::PreAuth {
        format!("preauth:{no}")
    } else {
        plan.target_key.clone()
    };
    let new = NewPreAuth {
        request_no: no.clone(),
        gateway: plan.gateway.into(),
        operation: plan.operation,
        target: plan.target.clone(),
        target_key: target_key.clone(),
        amount: plan.amount,
        chan_txn_time: txn_time,
        code_mask: plan.code_mask.clone(),
    };
    let row = match journal.preauth_intent(&new, now)? {
        Intent::Created(row) => row,
        Intent::Repeated(row) => return repeat(journal, ch, row),
        Intent::NumberReused(row) => {
            return Err(PreAuthError::NumberReused {
                no,
                what: format!(
                    "{} via {} on {}, {} yuan",
                    row.operation.describe(),
                    row.gateway,
                    row.target_key,
                    row.amount
                ),
            });
        }
        Intent::Blocked(row) => {
            return Err(PreAuthError::Blocked {
                target: target_key,
                no: row.request_no,
                state: row.state.as_str().into(),
            });
        }
    };
    failpoint::hit("PA1");
    let out = ch.send(&row, code);
    failpoint::hit("PA2");
    // The send's own outcome; INTENT → UNKNOWN when nothing trustworthy came back.
    let row = commit(journal, &row, &out, false)?;
    Ok(Ran {
        row,
        sent: true,
        info: out.info,
    })
}

/// A request number that is already journaled for this operation: never sent again.
fn repeat(
    journal: &mut Journal,
    ch: &dyn PreAuthChannel,
    row: PreAuthRow,
) -> Result<Ran, PreAuthError> {
    let now = util::now_ms();
    if row.state.is_open() && now - row.created_ms >= ch.in_flight_ms() {
        let out = ch.resolve(&row, now);
        let row = commit(journal, &row, &out, true)?;
        return Ok(Ran {
            row,
            sent: false,
            info: out.info,
        });
    }
    Ok(Ran {
        row,
        sent: false,
        info: Value::Null,
    })
}

/// Commits `out` for `row`; another process having moved it first wins (its row is returned).
fn commit(
    journal: &mut Journal,
    row: &PreAuthRow,
    out: &Outcome,
    queried: bool,
) -> Result<PreAuthRow, JournalError> {
    let change = PreAuthChange {
        to: out.state,
        note: &out.note,
        detail: &out.detail,
        chan_ref: out.chan_ref.as_deref(),
        queried,
    };
    match journal.preauth_commit(row.op_id, row.version, &change, util::now_ms()) {
        Err(JournalError::Conflict) => journal.preauth(row.op_id),
        other => other,
    }
}

/// What a [`settle`] pass did.
#[derive(Clone, Debug, Default)]
pub struct Settled {
    /// Each operation looked at: its state before, its row after.
    pub rows: Vec<(PreAuthState, PreAuthRow)>,
    /// What went wrong (a channel that cannot be built, say).
    pub errors: Vec<String>,
}

/// One resolution pass over every INTENT and UNKNOWN operation, oldest first.
pub fn settle(
    journal: &mut Journal,
    channels: &PreAuthChannels,
    rate_per_s: f64,
    stopping: &dyn Fn() -> bool,
    clock: &dyn crate::clock::Clock,
) -> Result<Settled, JournalError> {
    let gap = Duration::from_secs_f64(1.0 / rate_per_s.max(0.01));
    let mut done = Vec::new();
    let mut errors = Vec::new();
    let mut asked = false;
    for row in journal.preauth_open()? {
        if stopping() {
            break;
        }
        let before = row.state;
        let now = clock.now_ms();
        let ch = match channels.get(&row.gateway) {
            Ok(ch) => ch,
            Err(why) => {
                // No client to ask: it waits, and goes to a person once it is old.
                let after = if now - row.created_ms >= DEFAULT_REVIEW_AFTER_MS {
                    let note = format!(
                        "outcome unknown and {} cannot be asked ({why}); check the {} with the acquirer",
                        row.gateway,
                        row.operation.describe()
                    );
                    commit(journal, &row, &Outcome::review(note, String::new()), false)?
                } else {
                    row.clone()
                };
                errors.push(format!("pre-auth {}: {why}", row.request_no));
                done.push((before, after));
                continue;
            }
        };
        if now - row.created_ms < ch.in_flight_ms() {
            // The process that sent it may still be waiting for the reply.
            done.push((before, row));
            continue;
        }
        if asked {
            clock.sleep(gap);
        }
        asked = true;
        let mut out = ch.resolve(&row, now);
        if out.state == PreAuthState::Unknown && now - row.created_ms >= ch.review_after_ms() {
            out = Outcome::review(
                format!(
                    "still unknown {} h after it was sent ({}); ask {} about request {} or check the reconciliation file",
                    (now - row.created_ms) / 3_600_000,
                    out.note,
                    row.gateway,
                    row.request_no
                ),
                out.detail,
            );
        }
        let after = commit(journal, &row, &out, true)?;
        done.push((before, after));
    }
    Ok(Settled { rows: done, errors })
}

/// For operations whose channel is not configured: the same 24 h as the gateways' defaults.
const DEFAULT_REVIEW_AFTER_MS: i64 = 24 * 3_600_000;

impl Engine {
    /// Resolves the pre-authorisation family's INTENT and UNKNOWN operations ([`settle`]) and
    /// adds them to `report`.
    pub fn settle_preauths(&mut self, channels: &PreAuthChannels, report: &mut RecoveryReport) {
        let rate = self.settings().rate_per_s;
        let stop = self.stop.clone();
        let stopping = move || {
            stop.as_ref()
                .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
        };
        let clock = self.clock().clone();
        match settle(
            self.journal_mut(),
            channels,
            rate,
            &stopping,
            clock.as_ref(),
        ) {
            Ok(Settled { rows, errors }) => {
                for (before, after) in rows {
                    report
                        .preauths
                        .push((after.request_no.clone(), before, after.state));
                }
                report.errors.extend(errors);
            }
            Err(e) => report
                .errors
                .push(format!("pre-authorisation operations: {e}")),
        }
    }
}

// ---- channels ----

/// The family's clients, built from the configuration the first time one is needed (a
/// recovery pass with nothing to resolve reads no key).
pub struct PreAuthChannels {
    cfg: Option<Config>,
    chinaums: OnceCell<Result<Box<dyn PreAuthChannel>, String>>,
    acp: OnceCell<Result<Box<dyn PreAuthChannel>, String>>,
}

impl PreAuthChannels {
    pub fn from_config(cfg: &Config) -> PreAuthChannels {
        PreAuthChannels {
            cfg: Some(cfg.clone()),
            chinaums: OnceCell::new(),
            acp: OnceCell::new(),
        }
    }

    /// Ready-made channels (tests).
    pub fn with(
        chinaums: Option<Box<dyn PreAuthChannel>>,
        acp: Option<Box<dyn PreAuthChannel>>,
    ) -> PreAuthChannels {
        let set = |c: Option<Box<dyn PreAuthChannel>>| {
            let cell = OnceCell::new();
            let _ = cell.set(c.ok_or_else(|| "not configured".to_string()));
            cell
        };
        PreAuthChannels {
            cfg: None,
            chinaums: set(chinaums),
            acp: set(acp),
        }
    }

    /// The channel named `gateway`, or why there is none.
    pub fn get(&self, gateway: &str) -> Result<&dyn PreAuthChannel, String> {
        let cell = match gateway {
            "chinaums" => &self.chinaums,
            "acp" => &self.acp,
            other => return Err(format!("no pre-authorisation channel is called {other}")),
        };
        let built = cell.get_or_init(|| match &self.cfg {
            Some(cfg) if gateway == "chinaums" => build_chinaums(cfg),
            Some(cfg) => build_acp(cfg),
            None => Err("not configured".into()),
        });
        match built {
            Ok(c) => Ok(c.as_ref()),
            Err(e) => Err(e.clone()),
        }
    }
}

fn build_chinaums(cfg: &Config) -> Result<Box<dyn PreAuthChannel>, String> {
    let c = cfg
        .file
        .gateways
        .chinaums
        .as_ref()
        .ok_or("no [gateways.chinaums] is configured")?;
    if c.bills.is_none() {
        return Err("[gateways.chinaums.bills] (mid, tid, inst_mid) is not configured".into());
    }
    let ums = ChinaUms::from_config(cfg, c).map_err(|e| e.to_string())?;
    Ok(Box::new(ums))
}

fn build_acp(cfg: &Config) -> Result<Box<dyn PreAuthChannel>, String> {
    let a = cfg
        .file
        .gateways
        .acp
        .as_ref()
        .ok_or("no [gateways.acp] is configured")?;
    let gw = AcpGateway::from_config(cfg, a).map_err(|e| e.to_string())?;
    Ok(Box::new(AcpChannel::new(gw)))
}

// ---- ChinaUMS bills ----

/// Where a bill stands, from `billPayment.status` (or `billStatus`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Pre-authorised, not completed.
    Authorised,
    /// Completed, for this many fen when the reply says.
    Completed(Option<u64>),
    /// Released (cancelled).
    Closed,
    /// A state this module does not know.
    Other(String),
}

fn phase(b: &BillResult) -> Phase {
    match (b.status.as_deref(), b.bill_status.as_deref()) {
        (Some("TRADE_SUCCESS"), _) | (None, Some("PAID")) => Phase::Completed(b.total_fen),
        (Some("TRADE_CLOSED"), _) | (None, Some("CLOSED")) => Phase::Closed,
        (Some("TRADE_AUTHORIZED"), _) | (None, Some("UNPAID")) => Phase::Authorised,
        (s, bs) => Phase::Other(format!(
            "status {} billStatus {}",
            s.unwrap_or("-"),
            bs.unwrap_or("-")
        )),
    }
}

fn bill_ref(op: &PreAuthRow) -> PreAuthRef {
    let f = |k: &str| op.target[k].as_str().unwrap_or_default().to_string();
    PreAuthRef {
        bill_no: f("bill_no"),
        bill_date: f("bill_date"),
        mer_order_id: f("mer_order_id"),
        auth_id_resp_cd: f("auth_id_resp_cd"),
    }
}

fn bill_info(b: &BillResult) -> Value {
    json!({
        "bill_status": b.bill_status,
        "status": b.status,
        "total_fen": b.total_fen,
        "target_order_id": b.target_order_id,
    })
}

/// errCodes that say the platform failed rather than refused: the operation may have been
/// applied, so the query decides. (ChinaUMS publishes no netpay code table; these are the
/// generic words its platform codes use.)
fn uncertain_code(code: &str) -> bool {
    let c = code.to_ascii_uppercase();
    [
        "SYSTEM",
        "TIMEOUT",
        "BUSY",
        "INTERNAL",
        "UNKNOWN",
        "PROCESSING",
    ]
    .iter()
    .any(|w| c.contains(w))
}

/// An error of a bills call, as an outcome.
fn ums_error(e: UmsError, what: &str) -> Outcome {
    match e {
        UmsError::Refused { code, msg } if uncertain_code(&code) => Outcome::unknown(
            format!("{what}: ChinaUMS answered {code}; the query decides"),
            format!("{code} {msg}"),
        ),
        UmsError::Refused { code, msg } => Outcome::failed(
            format!("{what} refused by ChinaUMS: {code} {msg}"),
            format!("{code} {msg}"),
        ),
        e if e.certainly_not_sent() => {
            Outcome::failed(format!("{what} not sent: {e}"), e.to_string())
        }
        e => Outcome::unknown(
            format!("{what}: outcome unknown ({e}); the bill query will tell"),
            e.to_string(),
        ),
    }
}

/// Whether a bill in `p` shows `op` (of `amount`) as applied: `Some(true)` applied,
/// `Some(false)` not applied, `None` a state that contradicts both (a person looks).
fn applied(op: PreAuthOp, amount: Amount, p: &Phase) -> Option<bool> {
    match (op, p) {
        (PreAuthOp::Cancel, Phase::Closed) => Some(true),
        (PreAuthOp::Cancel, Phase::Authorised | Phase::Completed(_)) => Some(false),
        (PreAuthOp::Complete, Phase::Completed(None)) => Some(true),
        (PreAuthOp::Complete, Phase::Completed(Some(f))) if *f == amount.fen() => Some(true),
        (PreAuthOp::Complete, Phase::Authorised | Phase::Closed) => Some(false),
        // A completion-cancel puts the bill back to authorised; a closed bill was necessarily
        // un-completed first.
        (PreAuthOp::CompleteCancel, Phase::Authorised | Phase::Closed) => Some(true),
        (PreAuthOp::CompleteCancel, Phase::Completed(_)) => Some(false),
        _ => None,
    }
}

impl PreAuthChannel for ChinaUms {
    fn name(&self) -> &'static str {
        "chinaums"
    }

    fn txn_time(&self, now_ms: i64) -> String {
        util::beijing_human(now_ms)
    }

    fn send(&self, op: &PreAuthRow, _code: Option<&str>) -> Outcome {
        let r = bill_ref(op);
        let what = op.operation.describe();
        let res = match op.operation {
            PreAuthOp::Cancel => self.preauth_cancel(&r),
            PreAuthOp::Complete => self.preauth_complete(&r, op.amount),
            PreAuthOp::CompleteCancel => self.preauth_complete_cancel(&r),
            PreAuthOp::PreAuth => {
                return Outcome::failed(
                    "not sent: ChinaUMS pre-authorisations are made by the customer",
                    "",
                );
            }
        };
        let b = match res {
            Ok(b) => b,
            Err(e) => return ums_error(e, what),
        };
        let p = phase(&b);
        let mut out = match applied(op.operation, op.amount, &p) {
            Some(true) => Outcome::done(format!("{what} done"), b.detail.clone()),
            // SUCCESS with a state this module does not know: believe the SUCCESS.
            None if matches!(p, Phase::Other(_)) => {
                Outcome::done(format!("{what} done ({p:?})"), b.detail.clone())
            }
            _ => Outcome::review(
                format!(
                    "ChinaUMS answered SUCCESS but the bill is {p:?}; check bill {} with ChinaUMS",
                    r.bill_no
                ),
                b.detail.clone(),
            ),
        };
        out.chan_ref = b.target_order_id.clone();
        out.info = bill_info(&b);
        out
    }

    fn resolve(&self, op: &PreAuthRow, _now_ms: i64) -> Outcome {
        let r = bill_ref(op);
        let what = op.operation.describe();
        let b = match self.bill_query(&r) {
            Ok(b) => b,
            Err(UmsError::Refused { code, msg }) if !uncertain_code(&code) => {
                return Outcome::review(
                    format!(
                        "the bill query is refused ({code} {msg}); check bill {} with ChinaUMS",
                        r.bill_no
                    ),
                    format!("{code} {msg}"),
                );
            }
            Err(e) => {
                return Outcome::unknown(
                    format!("the bill query did not answer: {e}"),
                    e.to_string(),
                );
            }
        };
        let p = phase(&b);
        let mut out = match applied(op.operation, op.amount, &p) {
            Some(true) => Outcome::done(
                format!("the bill query shows the {what} took effect"),
                b.detail.clone(),
            ),
            Some(false) => Outcome::failed(
                format!("the bill query shows the {what} did not take effect (bill {p:?})"),
                b.detail.clone(),
            ),
            None => Outcome::review(
                format!(
                    "the bill query shows {p:?}, which does not fit a {what} of {} yuan; check bill {} with ChinaUMS",
                    op.amount, r.bill_no
                ),
                b.detail.clone(),
            ),
        };
        out.chan_ref = b.target_order_id.clone();
        out.info = bill_info(&b);
        out
    }

    fn in_flight_ms(&self) -> i64 {
        // A token fetch and the call, then after a refused token (401) another fetch and the
        // call again: four requests, each bounded.
        let c = self.config();
        4 * (c.connect_timeout_ms + c.timeout_ms) as i64 + 1_000
    }

    fn review_after_ms(&self) -> i64 {
        self.config().policy.review_after_ms as i64
    }
}

// ---- UnionPay ACP ----

/// The ACP gateway with its clock pinned to the journaled `txnTime` while an operation is sent:
/// the gateway stamps requests from its clock, and the operation must go out with exactly the
/// time that was journaled, since it is queried by orderId and txnTime.
pub struct AcpChannel {
    gw: AcpGateway,
    /// Unix ms to report as "now" (0: the real clock).
    pinned: Arc<AtomicI64>,
}

impl AcpChannel {
    pub fn new(gw: AcpGateway) -> AcpChannel {
        let pinned = Arc::new(AtomicI64::new(0));
        let p = pinned.clone();
        let gw = gw.with_clock(Arc::new(move || match p.load(Ordering::SeqCst) {
            0 => util::now_ms(),
            t => t,
        }));
        AcpChannel { gw, pinned }
    }

    fn orig(op: &PreAuthRow) -> Option<OrigRef> {
        if let Some(q) = op.target["orig_query_id"].as_str() {
            return Some(OrigRef::QueryId(q.to_string()));
        }
        Some(OrigRef::Order {
            order_id: op.target["orig_order_id"].as_str()?.to_string(),
            txn_time: TxnTime::parse(op.target["orig_txn_time"].as_str()?)?,
        })
    }
}

fn verdict_outcome(v: Verdict, what: &str, detail: String) -> Outcome {
    match v {
        Verdict::Done => Outcome::done(format!("{what} done"), detail),
        Verdict::Failed { code, message } if code == "build" => {
            Outcome::failed(format!("{what} not sent: {message}"), detail)
        }
        Verdict::Failed { code, message } => Outcome::failed(
            format!("{what} refused by UnionPay: {code} {message}"),
            detail,
        ),
        Verdict::Unknown { reason } => Outcome::unknown(
            format!("{what}: outcome unknown ({reason}); the status query will tell"),
            detail,
        ),
    }
}

impl PreAuthChannel for AcpChannel {
    fn name(&self) -> &'static str {
        "acp"
    }

    fn txn_time(&self, now_ms: i64) -> String {
        TxnTime::from_unix_ms(now_ms)
            .map(|t| t.to_string())
            .unwrap_or_else(|| util::beijing_stamp(now_ms))
    }

    fn send(&self, op: &PreAuthRow, code: Option<&str>) -> Outcome {
        let what = op.operation.describe();
        let Some(tt) = TxnTime::parse(&op.chan_txn_time) else {
            return Outcome::failed(
                format!("{what} not sent: {:?} is not a txnTime", op.chan_txn_time),
                "",
            );
        };
        let orig = Self::orig(op);
        self.pinned.store(tt.unix_ms().max(1), Ordering::SeqCst);
        let no = op.request_no.as_str();
        let r = match (op.operation, orig, code) {
            (PreAuthOp::PreAuth, _, Some(c)) => Some(self.gw.preauth(no, op.amount, c)),
            (PreAuthOp::Cancel, Some(o), _) => Some(self.gw.preauth_undo(no, o, op.amount)),
            (PreAuthOp::Complete, Some(o), _) => Some(self.gw.preauth_complete(no, o, op.amount)),
            (PreAuthOp::CompleteCancel, Some(o), _) => {
                Some(self.gw.preauth_complete_undo(no, o, op.amount))
            }
            _ => None,
        };
        self.pinned.store(0, Ordering::SeqCst);
        let Some(r) = r else {
            return Outcome::failed(
                format!("{what} not sent: the journal lacks the code or the original"),
                "",
            );
        };
        let mut out = verdict_outcome(r.verdict, what, r.detail);
        out.info = json!({"order_id": r.order_id, "txn_time": r.txn_time.to_string(), "query_id": r.query_id});
        out.chan_ref = r.query_id;
        out
    }

    fn resolve(&self, op: &PreAuthRow, now_ms: i64) -> Outcome {
        let what = op.operation.describe();
        let Some(tt) = TxnTime::parse(&op.chan_txn_time) else {
            return Outcome::review(
                format!(
                    "{:?} is not a txnTime: the status query cannot be asked",
                    op.chan_txn_time
                ),
                "",
            );
        };
        let (v, m) = self.gw.status(&op.request_no, tt);
        let detail = m
            .as_ref()
            .map(|m| {
                format!(
                    "respCode {} origRespCode {}",
                    m.get("respCode").unwrap_or("-"),
                    m.get("origRespCode").unwrap_or("-")
                )
            })
            .unwrap_or_default();
        let query_id = m
            .as_ref()
            .and_then(|m| m.get("queryId"))
            .map(str::to_string);
        let mut out = match v {
            Verdict::Done => match m
                .as_ref()
                .and_then(|m| m.get("txnAmt"))
                .and_then(Amount::parse_fen)
            {
                Some(a) if a == op.amount => Outcome::done(
                    format!("the status query shows the {what} succeeded"),
                    detail,
                ),
                other => Outcome::review(
                    format!(
                        "the status query shows the {what} succeeded for {} yuan, but {} yuan was sent; check request {} with UnionPay",
                        other
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "an unstated amount".into()),
                        op.amount,
                        op.request_no
                    ),
                    detail,
                ),
            },
            Verdict::Failed { code, message } => Outcome::failed(
                format!("the status query shows the {what} failed: {code} {message}"),
                detail,
            ),
            // 34 (not found) included, however long after the send: a request that arrived late
            // or a query that cannot see it yet look the same as one that never arrived
            // (PROTOCOLS.md §B.3), so it stays unknown and [`settle`] hands it to a person at the
            // review deadline. Never FAILED by itself, never sent again.
            Verdict::Unknown { reason } => Outcome::unknown(
                format!(
                    "the status query cannot tell yet ({} s after it was sent): {reason}",
                    (now_ms - tt.unix_ms()) / 1000
                ),
                detail,
            ),
        };
        out.info = json!({"query_id": query_id});
        out.chan_ref = query_id;
        out
    }

    fn in_flight_ms(&self) -> i64 {
        // The request, then the confirmation queries, each bounded by the timeouts.
        let c = self.gw.config();
        let one = (c.connect_timeout_ms + c.timeout_ms) as i64;
        let waits: u64 = c.confirm_delays_ms.iter().sum();
        one * (1 + c.confirm_delays_ms.len() as i64) + waits as i64 + 1_000
    }

    fn review_after_ms(&self) -> i64 {
        self.gw.config().policy.review_after_ms as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::path::PathBuf;
    use std::rc::Rc;

    /// A channel that answers from a script and checks, when asked to send, that the operation
    /// is already durable in the journal (seen from another connection, as another process).
    struct Fake {
        journal: PathBuf,
        sends: RefCell<Vec<String>>,
        queries: RefCell<u32>,
        send_reply: Outcome,
        query_reply: Outcome,
        in_flight: i64,
        review_after: i64,
    }

    impl Fake {
        fn new(journal: PathBuf, send: Outcome, query: Outcome) -> Fake {
            Fake {
                journal,
                sends: RefCell::new(vec![]),
                queries: RefCell::new(0),
                send_reply: send,
                query_reply: query,
                in_flight: 0,
                review_after: 86_400_000,
            }
        }
    }

    impl PreAuthChannel for Rc<Fake> {
        fn name(&self) -> &'static str {
            "chinaums"
        }
        fn txn_time(&self, now_ms: i64) -> String {
            util::beijing_human(now_ms)
        }
        fn send(&self, op: &PreAuthRow, _code: Option<&str>) -> Outcome {
            let other = Journal::connect(&self.journal).unwrap();
            let seen = other.preauth_by_request_no(&op.request_no).unwrap();
            assert_eq!(
                seen.map(|r| r.state),
                Some(PreAuthState::Intent),
                "sent before it was journaled"
            );
            self.sends.borrow_mut().push(op.request_no.clone());
            self.send_reply.clone()
        }
        fn resolve(&self, _op: &PreAuthRow, _now_ms: i64) -> Outcome {
            *self.queries.borrow_mut() += 1;
            self.query_reply.clone()
        }
        fn in_flight_ms(&self) -> i64 {
            self.in_flight
        }
        fn review_after_ms(&self) -> i64 {
            self.review_after
        }
    }

    fn bill() -> PreAuthRef {
        PreAuthRef {
            bill_no: "124F2023071912021792962162".into(),
            bill_date: "2023-07-19".into(),
            mer_order_id: "124F20230719120217929621620".into(),
            auth_id_resp_cd: "000665".into(),
        }
    }

    fn journal() -> (tempfile::TempDir, PathBuf, Journal) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j.db");
        let j = Journal::open(&p).unwrap();
        (d, p, j)
    }

    fn complete(fen: u64) -> Plan {
        bill_plan(PreAuthOp::Complete, &bill(), Amount::from_fen(fen)).unwrap()
    }

    fn no_stop() -> bool {
        false
    }

    #[test]
    fn journaled_before_sending_and_a_done_repeat_is_not_sent_again() {
        let (_d, p, mut j) = journal();
        let f = Rc::new(Fake::new(
            p,
            Outcome::done("completion done", "SUCCESS billStatus=PAID"),
            Outcome::unknown("-", ""),
        ));
        let ran = run(
            &mut j,
            &f,
            complete(4200),
            Some("PAREQ00001".into()),
            "T01",
            None,
        )
        .unwrap();
        assert!(ran.sent);
        assert_eq!(ran.row.state, PreAuthState::Done);
        assert!(ran.row.final_ms.is_some());
        let again = run(
            &mut j,
            &f,
            complete(4200),
            Some("PAREQ00001".into()),
            "T01",
            None,
        )
        .unwrap();
        assert!(!again.sent);
        assert_eq!(again.row.state, PreAuthState::Done);
        assert_eq!(f.sends.borrow().len(), 1, "sent once");
        assert_eq!(*f.queries.borrow(), 0);
        let h = j.preauth_history(ran.row.op_id).unwrap();
        assert_eq!(h.len(), 2);
        // The same number for a different amount: refused, nothing sent, nothing written.
        let e = run(
            &mut j,
            &f,
            complete(4300),
            Some("PAREQ00001".into()),
            "T01",
            None,
        );
        assert!(matches!(e, Err(PreAuthError::NumberReused { .. })), "{e:?}");
        assert_eq!(f.sends.borrow().len(), 1);
        assert_eq!(j.preauth_history(ran.row.op_id).unwrap().len(), 2);
    }

    #[test]
    fn a_lost_reply_is_unknown_then_resolved_by_the_query_never_resent() {
        let (_d, p, mut j) = journal();
        let f = Rc::new(Fake::new(
            p,
            Outcome::unknown("completion: outcome unknown (timeout)", "timeout"),
            Outcome::done("the bill query shows the completion took effect", "PAID"),
        ));
        let ran = run(&mut j, &f, complete(4200), None, "T01", None).unwrap();
        assert_eq!(ran.row.state, PreAuthState::Unknown);
        assert!(
            ran.row.request_no.starts_with("PAT01"),
            "{}",
            ran.row.request_no
        );
        // Another operation on the same bill waits: nothing is sent.
        let cancel = bill_plan(PreAuthOp::CompleteCancel, &bill(), Amount::from_fen(0)).unwrap();
        let blocked = run(&mut j, &f, cancel, None, "T01", None);
        assert!(
            matches!(blocked, Err(PreAuthError::Blocked { .. })),
            "{blocked:?}"
        );
        // The cashier repeats the command with the same number: a query, not a second send.
        let again = run(
            &mut j,
            &f,
            complete(4200),
            Some(ran.row.request_no.clone()),
            "T01",
            None,
        )
        .unwrap();
        assert!(!again.sent);
        assert_eq!(again.row.state, PreAuthState::Done);
        assert_eq!(again.row.queries, 1);
        assert_eq!(f.sends.borrow().len(), 1);
        assert_eq!(*f.queries.borrow(), 1);
    }

    #[test]
    fn recovery_resolves_unknown_and_intent_and_hands_the_stubborn_to_a_person() {
        let (_d, p, mut j) = journal();
        let lost = Rc::new(Fake::new(
            p.clone(),
            Outcome::unknown("no reply", "timeout"),
            Outcome::failed("the bill query shows it did not take effect", "UNPAID"),
        ));
        let a = run(&mut j, &lost, complete(100), None, "T01", None).unwrap();
        // An INTENT left by a crash between the commit and the send.
        let other = bill_plan(
            PreAuthOp::Cancel,
            &PreAuthRef {
                bill_no: "B2".into(),
                ..bill()
            },
            Amount::from_fen(0),
        )
        .unwrap();
        let b = match j
            .preauth_intent(
                &NewPreAuth {
                    request_no: "PACRASH0001".into(),
                    gateway: other.gateway.into(),
                    operation: other.operation,
                    target: other.target,
                    target_key: other.target_key,
                    amount: other.amount,
                    chan_txn_time: "2023-07-19 12:00:00".into(),
                    code_mask: None,
                },
                util::now_ms(),
            )
            .unwrap()
        {
            Intent::Created(r) => r,
            x => panic!("{x:?}"),
        };
        let chans = PreAuthChannels::with(Some(Box::new(lost.clone())), None);
        let Settled { rows, errors } =
            settle(&mut j, &chans, 1000.0, &no_stop, &crate::clock::SystemClock).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let states: Vec<_> = rows.iter().map(|(b, a)| (*b, a.state)).collect();
        assert_eq!(
            states,
            vec![
                (PreAuthState::Unknown, PreAuthState::Failed),
                (PreAuthState::Intent, PreAuthState::Failed)
            ]
        );
        assert_eq!(j.preauth(a.row.op_id).unwrap().queries, 1);
        assert_eq!(j.preauth(b.op_id).unwrap().state, PreAuthState::Failed);
        assert_eq!(lost.sends.borrow().len(), 1, "recovery never sends");
        // Nothing left: a second pass asks nobody.
        let Settled { rows, .. } =
            settle(&mut j, &chans, 1000.0, &no_stop, &crate::clock::SystemClock).unwrap();
        assert!(rows.is_empty());

        // Still unknown past the review deadline: a person, with a note.
        let mut silent = Fake::new(
            p,
            Outcome::unknown("no reply", "timeout"),
            Outcome::unknown("the bill query did not answer", "timeout"),
        );
        silent.review_after = 0;
        let silent = Rc::new(silent);
        let c = run(&mut j, &silent, complete(300), None, "T01", None).unwrap();
        let chans = PreAuthChannels::with(Some(Box::new(silent.clone())), None);
        let Settled { rows, .. } =
            settle(&mut j, &chans, 1000.0, &no_stop, &crate::clock::SystemClock).unwrap();
        assert_eq!(rows.len(), 1);
        let r = j.preauth(c.row.op_id).unwrap();
        assert_eq!(r.state, PreAuthState::Review);
        assert!(r.last_note.contains("still unknown"), "{}", r.last_note);
        // REVIEW is for people: recovery leaves it alone.
        let Settled { rows, .. } =
            settle(&mut j, &chans, 1000.0, &no_stop, &crate::clock::SystemClock).unwrap();
        assert!(rows.is_empty());
    }

    #[test]
    fn young_operations_are_left_to_the_process_sending_them() {
        let (_d, p, mut j) = journal();
        let mut f = Fake::new(
            p,
            Outcome::unknown("no reply", "timeout"),
            Outcome::failed("not applied", ""),
        );
        f.in_flight = 60_000;
        let f = Rc::new(f);
        let ran = run(&mut j, &f, complete(100), None, "T01", None).unwrap();
        let chans = PreAuthChannels::with(Some(Box::new(f.clone())), None);
        let Settled { rows, .. } =
            settle(&mut j, &chans, 1000.0, &no_stop, &crate::clock::SystemClock).unwrap();
        assert_eq!(rows[0].1.state, PreAuthState::Unknown);
        assert_eq!(*f.queries.borrow(), 0);
        // A missing channel: an error line, the row waits.
        let none = PreAuthChannels::with(None, None);
        let Settled { rows, errors } =
            settle(&mut j, &none, 1000.0, &no_stop, &crate::clock::SystemClock).unwrap();
        assert_eq!(rows[0].1.state, PreAuthState::Unknown);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            j.preauth(ran.row.op_id).unwrap().state,
            PreAuthState::Unknown
        );
    }

    #[test]
    fn bad_input_writes_nothing() {
        let (_d, p, mut j) = journal();
        let f = Rc::new(Fake::new(p, Outcome::done("x", ""), Outcome::done("x", "")));
        let mut b = bill();
        b.bill_date = "19/07/2023".into();
        assert!(bill_plan(PreAuthOp::Cancel, &b, Amount::from_fen(0)).is_err());
        assert!(bill_plan(PreAuthOp::Complete, &bill(), Amount::from_fen(0)).is_err());
        assert!(bill_plan(PreAuthOp::PreAuth, &bill(), Amount::from_fen(1)).is_err());
        let e = run(&mut j, &f, complete(1), Some("bad no!".into()), "T01", None);
        assert!(matches!(e, Err(PreAuthError::BadInput(_))), "{e:?}");
        assert!(
            acp_plan(
                PreAuthOp::PreAuth,
                None,
                Amount::from_fen(100),
                Some("12ab")
            )
            .is_err()
        );
        assert!(acp_plan(PreAuthOp::Complete, None, Amount::from_fen(100), None).is_err());
        assert!(
            acp_plan(
                PreAuthOp::Complete,
                Some(&OrigRef::QueryId("q-1".into())),
                Amount::from_fen(100),
                None
            )
            .is_err()
        );
        assert!(j.preauth_list(&Default::default()).unwrap().is_empty());
        assert!(f.sends.borrow().is_empty());
    }

    #[test]
    fn acp_plans_key_on_the_original_and_keep_only_the_masked_code() {
        let tt = TxnTime::parse("20261122100000").unwrap();
        let o = OrigRef::Order {
            order_id: "PAT012611221000001234".into(),
            txn_time: tt,
        };
        let p = acp_plan(PreAuthOp::Complete, Some(&o), Amount::from_fen(8_000), None).unwrap();
        assert_eq!(p.target_key, "order:PAT012611221000001234@20261122100000");
        assert_eq!(p.target["orig_txn_time"], "20261122100000");
        let q = acp_plan(
            PreAuthOp::Cancel,
            Some(&OrigRef::QueryId("Q12345678901234567890".into())),
            Amount::from_fen(1),
            None,
        )
        .unwrap();
        assert_eq!(q.target_key, "qid:Q12345678901234567890");
        let code = "6212345678901234567";
        let pa = acp_plan(
            PreAuthOp::PreAuth,
            None,
            Amount::from_fen(10_000),
            Some(code),
        )
        .unwrap();
        assert!(!pa.target.to_string().contains(code));
        assert_eq!(pa.code_mask.as_deref(), Some("6212***********4567"));
    }

    #[test]
    fn bill_states_say_whether_an_operation_took_effect() {
        let a = Amount::from_fen(4200);
        use PreAuthOp::*;
        assert_eq!(
            applied(Complete, a, &Phase::Completed(Some(4200))),
            Some(true)
        );
        assert_eq!(applied(Complete, a, &Phase::Completed(Some(4100))), None);
        assert_eq!(applied(Complete, a, &Phase::Authorised), Some(false));
        assert_eq!(applied(Cancel, a, &Phase::Closed), Some(true));
        assert_eq!(applied(Cancel, a, &Phase::Authorised), Some(false));
        assert_eq!(applied(CompleteCancel, a, &Phase::Authorised), Some(true));
        assert_eq!(
            applied(CompleteCancel, a, &Phase::Completed(Some(4200))),
            Some(false)
        );
        assert_eq!(applied(Cancel, a, &Phase::Other("x".into())), None);
        let b = |s: &str, bs: &str| BillResult {
            bill_status: Some(bs.into()),
            status: Some(s.into()),
            total_fen: Some(4200),
            target_order_id: None,
            detail: String::new(),
        };
        assert_eq!(
            phase(&b("TRADE_SUCCESS", "PAID")),
            Phase::Completed(Some(4200))
        );
        assert_eq!(phase(&b("TRADE_CLOSED", "CLOSED")), Phase::Closed);
        assert_eq!(phase(&b("TRADE_AUTHORIZED", "UNPAID")), Phase::Authorised);
        assert!(matches!(phase(&b("WAIT", "NEW")), Phase::Other(_)));
        assert!(uncertain_code("SYSTEM_ERROR"));
        assert!(!uncertain_code("BAD_BILL_STATE"));
    }

    #[test]
    fn an_orig_query_id_that_is_not_21_characters_is_refused_before_the_journal() {
        for q in ["65240105164725257400", "6524010516472525740081", "Q123"] {
            let e = acp_plan(
                PreAuthOp::Cancel,
                Some(&OrigRef::QueryId(q.into())),
                Amount::from_fen(100),
                None,
            );
            assert!(
                matches!(&e, Err(PreAuthError::BadInput(m)) if m.contains("21")),
                "{q}: {e:?}"
            );
        }
        assert!(
            acp_plan(
                PreAuthOp::Cancel,
                Some(&OrigRef::QueryId("652401051647252574008".into())),
                Amount::from_fen(100),
                None,
            )
            .is_ok()
        );
    }

    #[test]
    fn an_acp_operation_unionpay_cannot_find_stays_unknown_however_old() {
        use crate::gateway::unionpay::gateway::tests::Rig;
        let rig = Rig::start();
        let ch = AcpChannel::new(rig.gateway());
        let (_d, _p, mut j) = journal();
        // Sent (maybe) ten minutes ago, far past lost_after_ms; UnionPay answers 34.
        let now = util::now_ms();
        let sent_at = now - 600_000;
        let plan = acp_plan(
            PreAuthOp::Complete,
            Some(&OrigRef::QueryId("652401051647252574008".into())),
            Amount::from_fen(8_000),
            None,
        )
        .unwrap();
        let row = match j
            .preauth_intent(
                &NewPreAuth {
                    request_no: format!("PALOST{}", util::beijing_stamp(now)),
                    gateway: "acp".into(),
                    operation: plan.operation,
                    target: plan.target,
                    target_key: plan.target_key,
                    amount: plan.amount,
                    chan_txn_time: ch.txn_time(sent_at),
                    code_mask: None,
                },
                sent_at,
            )
            .unwrap()
        {
            Intent::Created(r) => r,
            x => panic!("{x:?}"),
        };
        let out = ch.resolve(&row, now);
        assert_eq!(out.state, PreAuthState::Unknown, "{out:?}");
        assert!(out.detail.contains("34"), "{out:?}");
    }

    #[test]
    fn request_numbers_fit_acp_order_ids() {
        let n = new_request_no("T-01_long-terminal-name-xyz", 1_795_312_800_000);
        assert!(check_request_no(&n).is_ok(), "{n}");
        assert!(n.starts_with("PAT01"));
    }
}
