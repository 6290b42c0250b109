//! ACP transactions: typed requests that produce the exact form fields, the endpoint each goes
//! to, the three-way verdict of a reply, the query schedule and the undo/reversal/refund rules.
//!
//! Owns the transaction-code table (PROTOCOLS.md §B.1), respCode/origRespCode semantics (§B.2,
//! §B.3) and time windows (§B.4, seed 002). Everything here is a pure function: times come in as
//! arguments (Unix milliseconds or [`TxnTime`]), nothing is sent, nothing is stored.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use rsa::rand_core::CryptoRngCore;

use super::message::{SignError, Signer, form_body, sign_fields};
use super::verify::VerifiedMessage;
use crate::core::money::Amount;

/// Beijing time, in which every ACP timestamp is written.
fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// An ACP `txnTime`: `YYYYMMDDhhmmss` in Beijing time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnTime(NaiveDateTime);

impl TxnTime {
    /// The Beijing wall-clock time of a Unix instant in milliseconds.
    pub fn from_unix_ms(ms: i64) -> Option<TxnTime> {
        let utc = chrono::DateTime::from_timestamp(ms.div_euclid(1000), 0)?;
        Some(TxnTime(utc.with_timezone(&beijing()).naive_local()))
    }

    /// Parses `YYYYMMDDhhmmss` (exactly 14 digits).
    pub fn parse(s: &str) -> Option<TxnTime> {
        if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
            .ok()
            .map(TxnTime)
    }

    /// Unix milliseconds of this Beijing wall-clock time.
    pub fn unix_ms(self) -> i64 {
        match beijing().from_local_datetime(&self.0).single() {
            Some(dt) => dt.timestamp_millis(),
            None => self.0.and_utc().timestamp_millis() - 8 * 3_600_000,
        }
    }

    /// The wall-clock value.
    pub fn naive(self) -> NaiveDateTime {
        self.0
    }
}

impl fmt::Display for TxnTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y%m%d%H%M%S"))
    }
}

/// Where a request is posted (paths on the gateway host, or the file-download host root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/gateway/api/backTransReq.do`
    BackTrans,
    /// `/gateway/api/queryTrans.do`
    QueryTrans,
    /// The root of the file-download host (`https://filedownload.95516.com/`).
    FileTransfer,
}

impl Endpoint {
    /// The path on its host.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::BackTrans => "/gateway/api/backTransReq.do",
            Endpoint::QueryTrans => "/gateway/api/queryTrans.do",
            Endpoint::FileTransfer => "/",
        }
    }

    /// True for the file-download host rather than the gateway host.
    pub fn on_file_host(self) -> bool {
        matches!(self, Endpoint::FileTransfer)
    }
}

/// The merchant settings every request carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    /// `merId`, 15 characters.
    pub mer_id: String,
    /// `backUrl` for notifications of money-moving transactions.
    pub back_url: String,
    /// `accessType`: "0" merchant direct, "1" acquirer, "2" platform merchant.
    pub access_type: String,
    /// `acqInsCode`, for acquirer access only.
    pub acq_ins_code: Option<String>,
    /// `termId` (8 characters) identifying this till; sent on QR and follow-up transactions.
    pub term_id: Option<String>,
}

impl Merchant {
    /// A directly connected merchant (accessType 0).
    pub fn direct(mer_id: impl Into<String>, back_url: impl Into<String>) -> Merchant {
        Merchant {
            mer_id: mer_id.into(),
            back_url: back_url.into(),
            access_type: "0".into(),
            acq_ins_code: None,
            term_id: None,
        }
    }
}

/// Which original transaction a follow-up refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrigRef {
    /// `origQryId`: the original's `queryId`.
    QueryId(String),
    /// `origOrderId` + `origTxnTime`.
    Order { order_id: String, txn_time: TxnTime },
}

/// The transactions this terminal sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcpTxn {
    /// QR consume where the merchant scans the customer's code (01/06, bizType 000000).
    QrConsume { amount: Amount, qr_no: String },
    /// Status query of a transaction by its own orderId/txnTime (00/00).
    Query,
    /// Consume undo (31/00): same clearing day, full amount.
    ConsumeUndo { orig: OrigRef, amount: Amount },
    /// Refund (04/00): partial allowed.
    Refund { orig: OrigRef, amount: Amount },
    /// Reversal (99/01) of a consume whose outcome is unknown; orderId/txnTime are the original's.
    Reversal,
    /// QR pre-authorisation, merchant scans the customer (02/04, bizType 000201).
    QrPreAuth { amount: Amount, qr_no: String },
    /// Pre-authorisation undo (32/00), full amount.
    PreAuthUndo { orig: OrigRef, amount: Amount },
    /// Pre-authorisation completion (03/00).
    PreAuthComplete { orig: OrigRef, amount: Amount },
    /// Pre-authorisation completion undo (33/00), full amount.
    PreAuthCompleteUndo { orig: OrigRef, amount: Amount },
    /// Encryption-certificate update query (95/00, certType 01).
    EncryptCertUpdate,
    /// Reconciliation file download (76/01, fileType 00) for a clearing date `MMDD`.
    FileTransfer { settle_date: String },
}

/// Kinds of transaction, for reply classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnKind {
    QrConsume,
    Query,
    ConsumeUndo,
    Refund,
    Reversal,
    QrPreAuth,
    PreAuthUndo,
    PreAuthComplete,
    PreAuthCompleteUndo,
    EncryptCertUpdate,
    FileTransfer,
}

impl TxnKind {
    /// Back-end transactions that move money: a synchronous `00` only means "accepted".
    pub fn moves_money(self) -> bool {
        !matches!(
            self,
            TxnKind::Query | TxnKind::EncryptCertUpdate | TxnKind::FileTransfer
        )
    }
}

/// Why a request could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("orderId must be 8 to 40 letters or digits (no '-' or '_'), got {0} characters")]
    BadOrderId(usize),
    #[error("the amount must be at least 0.01 yuan and at most 12 digits of fen")]
    BadAmount,
    #[error("qrNo must be 1 to 20 digits")]
    BadQrNo,
    #[error("settleDate must be MMDD")]
    BadSettleDate,
    #[error(
        "origQryId must be the original's 21-character queryId (letters and digits), got {0} characters"
    )]
    BadOrigQueryId(usize),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// A request ready to sign: endpoint plus fields (no signature yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpRequest {
    pub endpoint: Endpoint,
    pub kind: TxnKind,
    pub fields: BTreeMap<String, String>,
}

/// A signed request: the fields as signed and the exact body to POST.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub endpoint: Endpoint,
    pub kind: TxnKind,
    pub fields: BTreeMap<String, String>,
    /// `application/x-www-form-urlencoded;charset=UTF-8` body.
    pub body: String,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may carry a payment code (qrNo) or encrypted card data: show names only.
        write!(
            f,
            "SignedRequest {{ endpoint: {:?}, kind: {:?}, fields: {:?} }}",
            self.endpoint,
            self.kind,
            self.fields.keys().collect::<Vec<_>>()
        )
    }
}

/// `Content-Type` of every ACP request.
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=UTF-8";

/// An `orderId` as ACP takes it (8 to 40 letters or digits): checked where an id is typed, so
/// that a bad one is refused before anything is journaled, and again when a request is built.
pub fn check_order_id(id: &str) -> Result<(), BuildError> {
    let n = id.chars().count();
    if !(8..=40).contains(&n) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BuildError::BadOrderId(n));
    }
    Ok(())
}

/// `origQryId` is AN21 (seed 002, 消费撤销 request fields): any other length is a typing mistake
/// that UnionPay would refuse after it was signed, sent and journaled.
pub fn check_orig_query_id(q: &str) -> Result<(), BuildError> {
    let n = q.chars().count();
    if n != 21 || !q.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BuildError::BadOrigQueryId(n));
    }
    Ok(())
}

fn check_amount(a: Amount) -> Result<String, BuildError> {
    if a.fen() == 0 || a.fen() > 999_999_999_999 {
        return Err(BuildError::BadAmount);
    }
    Ok(a.fen().to_string())
}

impl AcpTxn {
    /// The kind of this transaction.
    pub fn kind(&self) -> TxnKind {
        match self {
            AcpTxn::QrConsume { .. } => TxnKind::QrConsume,
            AcpTxn::Query => TxnKind::Query,
            AcpTxn::ConsumeUndo { .. } => TxnKind::ConsumeUndo,
            AcpTxn::Refund { .. } => TxnKind::Refund,
            AcpTxn::Reversal => TxnKind::Reversal,
            AcpTxn::QrPreAuth { .. } => TxnKind::QrPreAuth,
            AcpTxn::PreAuthUndo { .. } => TxnKind::PreAuthUndo,
            AcpTxn::PreAuthComplete { .. } => TxnKind::PreAuthComplete,
            AcpTxn::PreAuthCompleteUndo { .. } => TxnKind::PreAuthCompleteUndo,
            AcpTxn::EncryptCertUpdate => TxnKind::EncryptCertUpdate,
            AcpTxn::FileTransfer { .. } => TxnKind::FileTransfer,
        }
    }

    /// (txnType, txnSubType, bizType, endpoint)
    fn codes(&self) -> (&'static str, &'static str, &'static str, Endpoint) {
        match self {
            AcpTxn::QrConsume { .. } => ("01", "06", "000000", Endpoint::BackTrans),
            AcpTxn::Query => ("00", "00", "000000", Endpoint::QueryTrans),
            AcpTxn::ConsumeUndo { .. } => ("31", "00", "000000", Endpoint::BackTrans),
            AcpTxn::Refund { .. } => ("04", "00", "000000", Endpoint::BackTrans),
            AcpTxn::Reversal => ("99", "01", "000000", Endpoint::BackTrans),
            AcpTxn::QrPreAuth { .. } => ("02", "04", "000201", Endpoint::BackTrans),
            AcpTxn::PreAuthUndo { .. } => ("32", "00", "000201", Endpoint::BackTrans),
            AcpTxn::PreAuthComplete { .. } => ("03", "00", "000201", Endpoint::BackTrans),
            AcpTxn::PreAuthCompleteUndo { .. } => ("33", "00", "000201", Endpoint::BackTrans),
            AcpTxn::EncryptCertUpdate => ("95", "00", "000000", Endpoint::BackTrans),
            AcpTxn::FileTransfer { .. } => ("76", "01", "000000", Endpoint::FileTransfer),
        }
    }

    /// The unsigned request. `order_id`/`txn_time` identify this transaction (for `Query` and
    /// `Reversal`: the original's); `txn_time` must be "now" when sending anything else.
    pub fn build(
        &self,
        merchant: &Merchant,
        order_id: &str,
        txn_time: TxnTime,
    ) -> Result<AcpRequest, BuildError> {
        check_order_id(order_id)?;
        let (txn_type, sub, biz, endpoint) = self.codes();
        let mut f = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            f.insert(k.to_string(), v.to_string());
        };
        put("version", "5.1.0");
        put("encoding", "UTF-8");
        put("signMethod", "01");
        put("txnType", txn_type);
        put("txnSubType", sub);
        put("bizType", biz);
        put("accessType", &merchant.access_type);
        put("merId", &merchant.mer_id);
        put("orderId", order_id);
        put("txnTime", &txn_time.to_string());
        if let Some(code) = &merchant.acq_ins_code {
            put("acqInsCode", code);
        }
        let money = |amount: &Amount, f: &mut dyn FnMut(&str, &str)| -> Result<(), BuildError> {
            f("txnAmt", &check_amount(*amount)?);
            f("currencyCode", "156");
            f("backUrl", &merchant.back_url);
            f("channelType", "08");
            if let Some(t) = &merchant.term_id {
                f("termId", t);
            }
            Ok(())
        };
        let orig_fields = |orig: &OrigRef, f: &mut dyn FnMut(&str, &str)| match orig {
            OrigRef::QueryId(q) => f("origQryId", q),
            OrigRef::Order { order_id, txn_time } => {
                f("origOrderId", order_id);
                f("origTxnTime", &txn_time.to_string());
            }
        };
        match self {
            AcpTxn::QrConsume { amount, qr_no } | AcpTxn::QrPreAuth { amount, qr_no } => {
                if qr_no.is_empty()
                    || qr_no.len() > 20
                    || !qr_no.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(BuildError::BadQrNo);
                }
                money(amount, &mut put)?;
                put("qrNo", qr_no);
            }
            AcpTxn::Query => {}
            AcpTxn::ConsumeUndo { orig, amount }
            | AcpTxn::Refund { orig, amount }
            | AcpTxn::PreAuthUndo { orig, amount }
            | AcpTxn::PreAuthComplete { orig, amount }
            | AcpTxn::PreAuthCompleteUndo { orig, amount } => {
                if let OrigRef::QueryId(q) = orig {
                    check_orig_query_id(q)?;
                }
                money(amount, &mut put)?;
                orig_fields(orig, &mut put);
            }
            AcpTxn::Reversal => put("channelType", "08"),
            AcpTxn::EncryptCertUpdate => {
                put("channelType", "07");
                put("certType", "01");
            }
            AcpTxn::FileTransfer { settle_date } => {
                let ok = settle_date.len() == 4
                    && settle_date.bytes().all(|b| b.is_ascii_digit())
                    && chrono::NaiveDate::parse_from_str(&format!("2000{settle_date}"), "%Y%m%d")
                        .is_ok();
                if !ok {
                    return Err(BuildError::BadSettleDate);
                }
                put("settleDate", settle_date);
                put("fileType", "00");
            }
        }
        Ok(AcpRequest {
            endpoint,
            kind: self.kind(),
            fields: f,
        })
    }
}

impl AcpRequest {
    /// Adds an optional field (e.g. `reqReserved`) before signing.
    pub fn with(mut self, key: &str, value: &str) -> AcpRequest {
        self.fields.insert(key.to_string(), value.to_string());
        self
    }

    /// Signs and encodes. `rng` only blinds legacy SHA-1 signing (the output is deterministic).
    pub fn sign(
        mut self,
        signer: Signer<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<SignedRequest, BuildError> {
        sign_fields(&mut self.fields, signer, rng)?;
        let body = form_body(&self.fields);
        Ok(SignedRequest {
            endpoint: self.endpoint,
            kind: self.kind,
            fields: self.fields,
            body,
        })
    }
}

/// The three-way outcome the state machine acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Definitely succeeded (paid, undone, refunded, …).
    Done,
    /// Definitely failed: no money moved.
    Failed { code: String, message: String },
    /// Not known: query again (see [`query_delay`]), then fence; final truth is reconciliation.
    Unknown { reason: String },
}

/// respCodes that mean "not known yet" on a synchronous reply.
pub(crate) fn is_pending_code(code: &str) -> bool {
    matches!(code, "03" | "04" | "05")
}

/// Classifies a verified synchronous reply to a request of `kind`.
///
/// - Query: respCode 00 → origRespCode 00/A6 Done, 03/04/05 Unknown, other Failed; respCode 34
///   (not found) Unknown; any other respCode means the query itself failed, so Unknown.
/// - Money-moving transactions: 00/A6 mean *accepted* — the result comes by notification or
///   query — so Unknown; 03/04/05 Unknown; 12 (duplicate: an earlier send may have gone through)
///   and 06 (busy) Unknown to be safe; anything else Failed with the code and message.
/// - 95/76: 00 Done, 03/04/05 Unknown, other Failed.
pub fn classify_reply(kind: TxnKind, reply: &VerifiedMessage) -> Verdict {
    let code = reply.get("respCode").unwrap_or("");
    let msg = reply.get("respMsg").unwrap_or("");
    classify_codes(
        kind,
        code,
        msg,
        reply.get("origRespCode"),
        reply.get("origRespMsg"),
    )
}

/// [`classify_reply`] on bare codes (for journals that stored them).
pub fn classify_codes(
    kind: TxnKind,
    resp_code: &str,
    resp_msg: &str,
    orig_resp_code: Option<&str>,
    orig_resp_msg: Option<&str>,
) -> Verdict {
    let unknown = |why: String| Verdict::Unknown { reason: why };
    if resp_code.is_empty() {
        return unknown("reply without respCode".into());
    }
    if kind == TxnKind::Query {
        return match resp_code {
            "00" => match orig_resp_code.unwrap_or("") {
                "00" | "A6" => Verdict::Done,
                "" => unknown("query reply 00 without origRespCode".into()),
                c if is_pending_code(c) => unknown(format!(
                    "original still in progress ({c} {})",
                    orig_resp_msg.unwrap_or("")
                )),
                c => Verdict::Failed {
                    code: c.to_string(),
                    message: orig_resp_msg.unwrap_or("").to_string(),
                },
            },
            "34" => unknown(format!("no such transaction yet (34 {resp_msg})")),
            c => unknown(format!("the query itself failed ({c} {resp_msg})")),
        };
    }
    match resp_code {
        "00" | "A6" if kind.moves_money() => unknown(format!(
            "accepted ({resp_code} {resp_msg}); the result comes by notification or query"
        )),
        "00" | "A6" => Verdict::Done,
        c if is_pending_code(c) => unknown(format!("{c} {resp_msg}")),
        "06" | "12" if kind.moves_money() => unknown(format!("{resp_code} {resp_msg}")),
        c => Verdict::Failed {
            code: c.to_string(),
            message: resp_msg.to_string(),
        },
    }
}

/// Classifies a verified back notification: it reports the final result.
pub fn classify_notification(n: &VerifiedMessage) -> Verdict {
    match n.get("respCode").unwrap_or("") {
        "00" | "A6" => Verdict::Done,
        "" => Verdict::Unknown {
            reason: "notification without respCode".into(),
        },
        c => Verdict::Failed {
            code: c.to_string(),
            message: n.get("respMsg").unwrap_or("").to_string(),
        },
    }
}

/// A reply whose signature did not verify, or that never came: always Unknown.
pub fn unknown_because(why: impl fmt::Display) -> Verdict {
    Verdict::Unknown {
        reason: why.to_string(),
    }
}

/// Delays before the 1st…6th query, each counted from the previous request (QRSPEC §5.5.1).
pub const QUERY_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(32),
];

/// The delay before query number `n` (0-based), or `None` once the six quick queries are spent
/// (then: longer intervals or the reconciliation file decide).
pub fn query_delay(n: usize) -> Option<Duration> {
    QUERY_SCHEDULE.get(n).copied()
}

/// Why an undo, reversal or refund may not be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the clearing day of the original ended at {0} Beijing time (23:00); use a refund")]
    WindowClosed(String),
    #[error("the time given is before the original transaction")]
    BeforeOriginal,
    #[error("an undo must be for the full amount ({original} fen), not {requested} fen")]
    NotFullAmount { original: u64, requested: u64 },
    #[error(
        "the transaction has already been refunded in part or in full; an undo is no longer allowed"
    )]
    AfterRefund,
    #[error("the transaction was already undone")]
    AlreadyUndone,
    #[error("refund of {requested} fen exceeds the {remaining} fen not yet refunded")]
    RefundTooLarge { requested: u64, remaining: u64 },
    #[error("refunds are accepted for {days} days after the original; it is older")]
    RefundTooOld { days: u32 },
    #[error("the amount must be positive")]
    ZeroAmount,
}

/// What the terminal knows about an original consume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Original {
    pub txn_time: TxnTime,
    pub amount: Amount,
    /// Sum of refunds already accepted (or in flight).
    pub refunded: Amount,
    pub undone: bool,
}

/// End of the clearing day that contains `t`: the first 23:00 Beijing strictly after it
/// (the clearing day runs from 23:00 of the previous day to 23:00).
pub fn clearing_day_end(t: TxnTime) -> TxnTime {
    let n = t.naive();
    let date = n.date();
    let today_23 = date.and_hms_opt(23, 0, 0).unwrap_or(n);
    if n < today_23 {
        TxnTime(today_23)
    } else {
        let next = date.succ_opt().unwrap_or(date);
        TxnTime(next.and_hms_opt(23, 0, 0).unwrap_or(n))
    }
}

fn check_same_clearing_day(orig: TxnTime, now_ms: i64) -> Result<(), Refused> {
    if now_ms < orig.unix_ms() {
        return Err(Refused::BeforeOriginal);
    }
    let end = clearing_day_end(orig);
    if now_ms >= end.unix_ms() {
        return Err(Refused::WindowClosed(
            end.naive().format("%Y-%m-%d %H:%M").to_string(),
        ));
    }
    Ok(())
}

/// May a consume undo (31) be sent at `now_ms` for `amount`? Same clearing day before 23:00,
/// full amount only, never after a refund, never twice (seed 002).
pub fn undo_allowed(orig: &Original, amount: Amount, now_ms: i64) -> Result<(), Refused> {
    if orig.undone {
        return Err(Refused::AlreadyUndone);
    }
    if !orig.refunded.is_zero() {
        return Err(Refused::AfterRefund);
    }
    if amount != orig.amount {
        return Err(Refused::NotFullAmount {
            original: orig.amount.fen(),
            requested: amount.fen(),
        });
    }
    check_same_clearing_day(orig.txn_time, now_ms)
}

/// May a reversal (99) of a consume with unknown outcome be sent at `now_ms`? Same clearing-day
/// window as an undo [LH]; the maximum delay after the original is not documented.
pub fn reversal_allowed(orig_txn_time: TxnTime, now_ms: i64) -> Result<(), Refused> {
    check_same_clearing_day(orig_txn_time, now_ms)
}

/// Refunds are accepted this many days after the original (QRSPEC §5.4.2).
pub const REFUND_DAYS: u32 = 30;

/// May a refund (04) of `amount` be sent at `now_ms`? Partial and repeated refunds are allowed
/// while the total stays within the original and within [`REFUND_DAYS`].
pub fn refund_allowed(orig: &Original, amount: Amount, now_ms: i64) -> Result<(), Refused> {
    if amount.is_zero() {
        return Err(Refused::ZeroAmount);
    }
    if orig.undone {
        return Err(Refused::AlreadyUndone);
    }
    let remaining = orig
        .amount
        .checked_sub(orig.refunded)
        .unwrap_or(Amount::from_fen(0));
    if amount > remaining {
        return Err(Refused::RefundTooLarge {
            requested: amount.fen(),
            remaining: remaining.fen(),
        });
    }
    if now_ms < orig.txn_time.unix_ms() {
        return Err(Refused::BeforeOriginal);
    }
    if now_ms - orig.txn_time.unix_ms() > i64::from(REFUND_DAYS) * 86_400_000 {
        return Err(Refused::RefundTooOld { days: REFUND_DAYS });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::unionpay::cert::tests::test_2021_key;
    use crate::gateway::unionpay::message::AcpMessage;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn t(s: &str) -> TxnTime {
        TxnTime::parse(s).unwrap()
    }

    fn merchant() -> Merchant {
        Merchant {
            term_id: Some("T0000001".into()),
            ..Merchant::direct("777290058167151", "https://example.invalid/acp/notify")
        }
    }

    fn fields(r: &AcpRequest) -> Vec<(String, String)> {
        r.fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    }

    const COMMON: [(&str, &str); 8] = [
        ("accessType", "0"),
        ("encoding", "UTF-8"),
        ("merId", "777290058167151"),
        ("orderId", "pay20240105145046"),
        ("signMethod", "01"),
        ("txnTime", "20240105145046"),
        ("version", "5.1.0"),
        ("bizType", "000000"),
    ];

    fn with_common(extra: &[(&str, &str)], biz: &str) -> Vec<(String, String)> {
        let mut all: Vec<(&str, &str)> = COMMON
            .iter()
            .copied()
            .filter(|(k, _)| *k != "bizType")
            .collect();
        all.push(("bizType", biz));
        all.extend_from_slice(extra);
        kv(&all)
    }

    #[test]
    fn txn_time_round_trips_through_beijing_time() {
        let tt = t("20240105145046");
        assert_eq!(tt.to_string(), "20240105145046");
        assert_eq!(tt.unix_ms(), 1_704_437_446_000);
        assert_eq!(TxnTime::from_unix_ms(1_704_437_446_999).unwrap(), tt);
        assert!(TxnTime::parse("2024010514504").is_none());
        assert!(TxnTime::parse("20241305145046").is_none());
        assert!(TxnTime::parse("2024010514504a").is_none());
    }

    #[test]
    fn qr_consume_fields_are_exact() {
        let m = merchant();
        let tt = t("20240105145046");
        let r = AcpTxn::QrConsume {
            amount: Amount::from_fen(1234),
            qr_no: "6220000000000000001".into(),
        }
        .build(&m, "pay20240105145046", tt)
        .unwrap();
        assert_eq!(r.endpoint, Endpoint::BackTrans);
        assert_eq!(
            fields(&r),
            with_common(
                &[
                    ("txnType", "01"),
                    ("txnSubType", "06"),
                    ("txnAmt", "1234"),
                    ("currencyCode", "156"),
                    ("backUrl", "https://example.invalid/acp/notify"),
                    ("channelType", "08"),
                    ("termId", "T0000001"),
                    ("qrNo", "6220000000000000001"),
                ],
                "000000"
            )
        );
    }

    #[test]
    fn every_transaction_has_its_codes() {
        let m = merchant();
        let tt = t("20240105145046");
        let orig = OrigRef::QueryId("652401051647252574008".into());
        let a = Amount::from_fen(100);
        let cases: Vec<(AcpTxn, &str, &str, &str, Endpoint)> = vec![
            (AcpTxn::Query, "00", "00", "000000", Endpoint::QueryTrans),
            (
                AcpTxn::ConsumeUndo {
                    orig: orig.clone(),
                    amount: a,
                },
                "31",
                "00",
                "000000",
                Endpoint::BackTrans,
            ),
            (
                AcpTxn::Refund {
                    orig: orig.clone(),
                    amount: a,
                },
                "04",
                "00",
                "000000",
                Endpoint::BackTrans,
            ),
            (AcpTxn::Reversal, "99", "01", "000000", Endpoint::BackTrans),
            (
                AcpTxn::QrPreAuth {
                    amount: a,
                    qr_no: "1234".into(),
                },
                "02",
                "04",
                "000201",
                Endpoint::BackTrans,
            ),
            (
                AcpTxn::PreAuthUndo {
                    orig: orig.clone(),
                    amount: a,
                },
                "32",
                "00",
                "000201",
                Endpoint::BackTrans,
            ),
            (
                AcpTxn::PreAuthComplete {
                    orig: orig.clone(),
                    amount: a,
                },
                "03",
                "00",
                "000201",
                Endpoint::BackTrans,
            ),
            (
                AcpTxn::PreAuthCompleteUndo {
                    orig: orig.clone(),
                    amount: a,
                },
                "33",
                "00",
                "000201",
                Endpoint::BackTrans,
            ),
            (
                AcpTxn::EncryptCertUpdate,
                "95",
                "00",
                "000000",
                Endpoint::BackTrans,
            ),
            (
                AcpTxn::FileTransfer {
                    settle_date: "0105".into(),
                },
                "76",
                "01",
                "000000",
                Endpoint::FileTransfer,
            ),
        ];
        for (txn, ty, sub, biz, ep) in cases {
            let r = txn.build(&m, "pay20240105145046", tt).unwrap();
            assert_eq!(r.fields["txnType"], ty, "{txn:?}");
            assert_eq!(r.fields["txnSubType"], sub, "{txn:?}");
            assert_eq!(r.fields["bizType"], biz, "{txn:?}");
            assert_eq!(r.endpoint, ep, "{txn:?}");
        }
    }

    #[test]
    fn follow_ups_carry_the_original_reference() {
        let m = merchant();
        let r = AcpTxn::Refund {
            orig: OrigRef::Order {
                order_id: "pay20240105145046".into(),
                txn_time: t("20240105145046"),
            },
            amount: Amount::from_fen(50),
        }
        .build(&m, "refund20240106101010", t("20240106101010"))
        .unwrap();
        assert_eq!(r.fields["origOrderId"], "pay20240105145046");
        assert_eq!(r.fields["origTxnTime"], "20240105145046");
        assert_eq!(r.fields["txnAmt"], "50");
        assert!(!r.fields.contains_key("origQryId"));
        let q = AcpTxn::Query
            .build(&m, "pay20240105145046", t("20240105145046"))
            .unwrap();
        assert!(!q.fields.contains_key("txnAmt") && !q.fields.contains_key("backUrl"));
        let f = AcpTxn::FileTransfer {
            settle_date: "0105".into(),
        }
        .build(&m, "file20240106000000", t("20240106000000"))
        .unwrap();
        assert_eq!(f.fields["fileType"], "00");
        assert_eq!(f.fields["settleDate"], "0105");
        let e = AcpTxn::EncryptCertUpdate
            .build(&m, "cert20240106000000", t("20240106000000"))
            .unwrap();
        assert_eq!(e.fields["certType"], "01");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let m = merchant();
        let tt = t("20240105145046");
        assert_eq!(
            AcpTxn::Query.build(&m, "short", tt),
            Err(BuildError::BadOrderId(5))
        );
        assert_eq!(
            AcpTxn::Query.build(&m, "pay_2024010514", tt),
            Err(BuildError::BadOrderId(14))
        );
        let qr = |q: &str, fen| AcpTxn::QrConsume {
            amount: Amount::from_fen(fen),
            qr_no: q.into(),
        };
        assert_eq!(
            qr("12a4", 1).build(&m, "pay20240105145046", tt),
            Err(BuildError::BadQrNo)
        );
        assert_eq!(
            qr("1234", 0).build(&m, "pay20240105145046", tt),
            Err(BuildError::BadAmount)
        );
        let f = AcpTxn::FileTransfer {
            settle_date: "1332".into(),
        };
        assert_eq!(
            f.build(&m, "pay20240105145046", tt),
            Err(BuildError::BadSettleDate)
        );
        // origQryId is AN21: a shorter or longer one is never signed.
        for q in [
            "65240105164725257400",
            "6524010516472525740081",
            "65240105164725257400-",
        ] {
            let undo = AcpTxn::ConsumeUndo {
                orig: OrigRef::QueryId(q.into()),
                amount: Amount::from_fen(100),
            };
            assert!(
                matches!(
                    undo.build(&m, "undo20240105145046", tt),
                    Err(BuildError::BadOrigQueryId(_))
                ),
                "{q}"
            );
        }
    }

    #[test]
    fn query_matches_the_real_signed_request() {
        // yansongda's query request, rebuilt from our typed builder (with its UTF-8 spelling).
        let m = Merchant::direct("777290058167151", "unused");
        let r = AcpTxn::Query
            .build(&m, "pay20240105145046", t("20240105145046"))
            .unwrap()
            .with("encoding", "utf-8");
        let signed = r
            .sign(
                Signer::Cert(&test_2021_key()),
                &mut StdRng::seed_from_u64(0),
            )
            .unwrap();
        assert_eq!(
            signed.fields["signature"],
            "lH8zZVGlsodhJ9U90v61gacQbS0NRPPDa+pt5WUUIjLzQhOob0ZKRUR+k67wK5w0n9wDUkg/iS0w5/OzAaj7jsRQzbBemSddciS7Pz6Npze/7bUdYA/HsWbw898gII16FJgohCPSOhs+TDk77kwriKuxrtUuDmnGFKW36Jjmglxp4e97zypV/08lFxvJBVIxFq8vwKG/zQVYTnqLGcCh8SKWae35SDXU2GMEjQ6QQGseN3kbs1Fs2uOdnzkfXJxQrEISVHr9oPoWJC+Bjr/GZrbSVy3Vp9ymKzg8y+7bfSg749iCLJCoEhz9KI5YYsmOXG7RZYkx99tYk1XhCTyRsw=="
        );
        let back = AcpMessage::parse_form(&signed.body).unwrap();
        assert_eq!(
            back.get("signature"),
            Some(signed.fields["signature"].as_str())
        );
        assert!(!format!("{signed:?}").contains("lH8z"));
    }

    fn verified(pairs: &[(&str, &str)]) -> VerifiedMessage {
        VerifiedMessage::assume_verified(
            AcpMessage::from_fields(
                pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn query_replies_classify() {
        let q = |rc: &str, orc: Option<&str>| {
            let mut p = vec![("respCode", rc), ("respMsg", "m")];
            if let Some(o) = orc {
                p.push(("origRespCode", o));
                p.push(("origRespMsg", "om"));
            }
            classify_reply(TxnKind::Query, &verified(&p))
        };
        assert_eq!(q("00", Some("00")), Verdict::Done);
        assert_eq!(q("00", Some("A6")), Verdict::Done);
        for c in ["03", "04", "05"] {
            assert!(matches!(q("00", Some(c)), Verdict::Unknown { .. }), "{c}");
        }
        assert_eq!(
            q("00", Some("64")),
            Verdict::Failed {
                code: "64".into(),
                message: "om".into()
            }
        );
        assert!(matches!(q("34", None), Verdict::Unknown { .. }));
        assert!(matches!(q("11", None), Verdict::Unknown { .. }));
        assert!(matches!(q("00", None), Verdict::Unknown { .. }));
    }

    #[test]
    fn money_replies_classify() {
        let c = |kind, rc: &str| classify_codes(kind, rc, "msg", None, None);
        assert!(
            matches!(c(TxnKind::QrConsume, "00"), Verdict::Unknown { .. }),
            "accepted is not paid"
        );
        for code in ["03", "04", "05", "06", "12"] {
            assert!(
                matches!(c(TxnKind::ConsumeUndo, code), Verdict::Unknown { .. }),
                "{code}"
            );
        }
        assert_eq!(
            c(TxnKind::QrConsume, "64"),
            Verdict::Failed {
                code: "64".into(),
                message: "msg".into()
            }
        );
        assert_eq!(c(TxnKind::EncryptCertUpdate, "00"), Verdict::Done);
        assert!(matches!(
            c(TxnKind::FileTransfer, "98"),
            Verdict::Failed { .. }
        ));
        assert!(matches!(c(TxnKind::Refund, ""), Verdict::Unknown { .. }));
        assert_eq!(
            classify_notification(&verified(&[("respCode", "00")])),
            Verdict::Done
        );
        assert!(matches!(
            unknown_because("timeout"),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn real_query_reply_is_done() {
        let raw = std::fs::read_to_string(
            crate::gateway::unionpay::tests::vectors_dir()
                .join("unionpay-messages/acp_response_query_00_00.raw.txt"),
        )
        .unwrap();
        let m = AcpMessage::parse_raw(&raw).unwrap();
        assert_eq!(
            classify_reply(TxnKind::Query, &VerifiedMessage::assume_verified(m)),
            Verdict::Done
        );
    }

    #[test]
    fn query_schedule() {
        let secs: Vec<u64> = (0..7)
            .filter_map(query_delay)
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32]);
        assert_eq!(query_delay(6), None);
    }

    fn ms(s: &str) -> i64 {
        t(s).unix_ms()
    }

    #[test]
    fn undo_window_is_the_clearing_day_until_23_beijing() {
        let orig = Original {
            txn_time: t("20240105145046"),
            amount: Amount::from_fen(100),
            refunded: Amount::from_fen(0),
            undone: false,
        };
        let a = Amount::from_fen(100);
        assert_eq!(undo_allowed(&orig, a, ms("20240105225959")), Ok(()));
        assert!(matches!(
            undo_allowed(&orig, a, ms("20240105230000")),
            Err(Refused::WindowClosed(_))
        ));
        assert_eq!(
            undo_allowed(&orig, a, ms("20240105140000")),
            Err(Refused::BeforeOriginal)
        );
        assert_eq!(
            undo_allowed(&orig, Amount::from_fen(99), ms("20240105150000")),
            Err(Refused::NotFullAmount {
                original: 100,
                requested: 99
            })
        );
        let refunded = Original {
            refunded: Amount::from_fen(1),
            ..orig
        };
        assert_eq!(
            undo_allowed(&refunded, a, ms("20240105150000")),
            Err(Refused::AfterRefund)
        );
        let undone = Original {
            undone: true,
            ..orig
        };
        assert_eq!(
            undo_allowed(&undone, a, ms("20240105150000")),
            Err(Refused::AlreadyUndone)
        );
        // A consume at 23:30 belongs to the next clearing day.
        let late = Original {
            txn_time: t("20240105233000"),
            ..orig
        };
        assert_eq!(undo_allowed(&late, a, ms("20240106120000")), Ok(()));
        assert!(undo_allowed(&late, a, ms("20240106230000")).is_err());
        assert_eq!(clearing_day_end(t("20240105230000")), t("20240106230000"));
        assert_eq!(
            reversal_allowed(t("20240105145046"), ms("20240105150000")),
            Ok(())
        );
        assert!(reversal_allowed(t("20240105145046"), ms("20240106000000")).is_err());
    }

    #[test]
    fn refund_rules() {
        let orig = Original {
            txn_time: t("20240105145046"),
            amount: Amount::from_fen(100),
            refunded: Amount::from_fen(40),
            undone: false,
        };
        assert_eq!(
            refund_allowed(&orig, Amount::from_fen(60), ms("20240110000000")),
            Ok(())
        );
        assert_eq!(
            refund_allowed(&orig, Amount::from_fen(61), ms("20240110000000")),
            Err(Refused::RefundTooLarge {
                requested: 61,
                remaining: 60
            })
        );
        assert_eq!(
            refund_allowed(&orig, Amount::from_fen(1), ms("20240210000000")),
            Err(Refused::RefundTooOld { days: 30 })
        );
        assert_eq!(
            refund_allowed(&orig, Amount::from_fen(0), ms("20240110000000")),
            Err(Refused::ZeroAmount)
        );
    }
}
