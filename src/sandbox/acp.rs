//! The sandbox's UnionPay ACP on its real paths: `/gateway/api/backTransReq.do`,
//! `/gateway/api/queryTrans.do` and the file-download root `/` (76), with the amount scenarios
//! of DESIGN.md §5.
//!
//! Every request's signature is checked against the merchant's signing certificate (UnionPay's
//! public test PFX, `config/sandbox-acp/acp_test_sign.pfx`); every reply is signed with the
//! sandbox's own TEST-ONLY chain (`acp_certs/`, generated once with OpenSSL and committed: a root,
//! a middle, and a leaf whose CN follows UnionPay's owner-name rule) — except scenario 56, whose
//! reply signature is deliberately wrong. A request signed with signMethod 11 or 12 (the
//! merchant's secure key, [`SANDBOX_SECURE_KEY`]) is checked with that key and answered, and
//! notified, signed the same way (scenario 56: with another key), as UnionPay does for a
//! merchant that set a secure key. The documented rules are enforced on the sandbox clock:
//! undo only in the clearing day before 23:00, never after a refund, full amount only; refunds
//! never above what was paid; one orderId once. Paid consumes and undos are notified to the
//! request's `backUrl`. The 76 file is built from what the sandbox really did, with differences
//! injected through `POST /_sandbox/acp/recon-diff`. The signature check (01) and the reply
//! signing also serve the 云闪付 contract debits (`upapi.rs`), which are ACP messages.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::ledger::{Order, Status};
use super::{Sandbox, after_request, begin, hang_up, post_notification};
use crate::core::money::Amount;
use crate::gateway::unionpay::cert::Certificate;
use crate::gateway::unionpay::message::{AcpMessage, cert_hash_for_version, hex_digest};
use crate::gateway::unionpay::recon::{
    DebitCredit, ZipEntry, ZmRecord, encode_file_content, format_zm_line, zip_stored,
};
use crate::gateway::unionpay::txn::{
    Original, Refused, TxnTime, clearing_day_end, refund_allowed, reversal_allowed, undo_allowed,
};
use crate::sign::rsa::{RsaHash, RsaPrivateKey, verify_pkcs1};
use crate::sign::sm3::{SecureKeyHash, secure_key_sign, secure_key_verify};

/// The sandbox's reply-signing leaf (TEST ONLY), its chain, and its encryption certificates.
pub const SANDBOX_SIGN_CERT: &str = include_str!("acp_certs/sign.cer");
pub const SANDBOX_SIGN_KEY: &[u8] = include_bytes!("acp_certs/sign.key.pk8");
pub const SANDBOX_MIDDLE_CERT: &str = include_str!("acp_certs/middle.cer");
pub const SANDBOX_ROOT_CERT: &str = include_str!("acp_certs/root.cer");
/// The encryption certificate a fresh terminal holds, and the one the 95 update hands out.
pub const SANDBOX_ENC_CERT_OLD: &str = include_str!("acp_certs/enc1.cer");
pub const SANDBOX_ENC_CERT_NEW: &str = include_str!("acp_certs/enc2.cer");
/// The certificate of UnionPay's public test merchant key (`acp_test_sign.pfx`, password 000000).
pub const MERCHANT_SIGN_CERT: &str = include_str!("acp_certs/merchant_sign.cer");
/// The merchant id the sandbox configurations use (UnionPay's SDK demo merchant).
pub const SANDBOX_MER_ID: &str = "777290058110048";
/// The secure key (signMethod 11/12) the sandbox's merchant has set — TEST ONLY, it protects
/// nothing: a terminal configured with `sign_method = "11"` or `"12"` puts it in its
/// `secure_key_file`.
pub const SANDBOX_SECURE_KEY: &str = "payterm-sandbox-acp-secure-key-TEST-ONLY";

/// The ACP side's fixed material.
#[derive(Clone)]
pub struct AcpSandboxConfig {
    pub mer_id: String,
    pub merchant_cert: Certificate,
    key: Arc<RsaPrivateKey>,
    /// The leaf as carried in `signPubKeyCert` (PEM with CRLF, as UnionPay sends it).
    leaf_pem: String,
    enc_new_pem: String,
    /// [`SANDBOX_SECURE_KEY`], for signMethod 11/12.
    secure_key: Vec<u8>,
}

impl std::fmt::Debug for AcpSandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AcpSandboxConfig {{ merId: {}, key: redacted }}",
            self.mer_id
        )
    }
}

impl AcpSandboxConfig {
    /// The built-in test chain and UnionPay's public test merchant certificate.
    pub fn builtin() -> Result<AcpSandboxConfig, String> {
        let merchant_cert =
            Certificate::from_pem(MERCHANT_SIGN_CERT).map_err(|e| format!("merchant cert: {e}"))?;
        let key = RsaPrivateKey::from_pkcs8_der(SANDBOX_SIGN_KEY)
            .map_err(|e| format!("sandbox key: {e}"))?;
        Ok(AcpSandboxConfig {
            mer_id: SANDBOX_MER_ID.to_string(),
            merchant_cert,
            key: Arc::new(key),
            leaf_pem: crlf(SANDBOX_SIGN_CERT),
            enc_new_pem: crlf(SANDBOX_ENC_CERT_NEW),
            secure_key: SANDBOX_SECURE_KEY.as_bytes().to_vec(),
        })
    }
}

fn crlf(pem: &str) -> String {
    pem.trim_end().replace("\r\n", "\n").replace('\n', "\r\n")
}

/// One ACP transaction the sandbox processed.
#[derive(Clone, Debug, Serialize)]
pub struct Txn {
    pub order_id: String,
    pub txn_time: String,
    pub txn_type: String,
    pub txn_sub_type: String,
    pub biz_type: String,
    pub amount_fen: u64,
    pub query_id: String,
    /// `00` done, `05` in progress, anything else a failure code.
    pub result: String,
    pub result_msg: String,
    pub orig_order_id: Option<String>,
    pub orig_query_id: Option<String>,
    pub at_ms: i64,
    pub trace_no: String,
    /// Pre-authorisations and completions: undone since; pre-auths: completed since.
    pub undone: bool,
    pub completed_fen: u64,
}

/// A difference injected into the 76 file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReconDiff {
    pub order_id: String,
    /// Report this amount instead of the real one.
    #[serde(default)]
    pub amount_fen: Option<u64>,
    /// Leave the record out.
    #[serde(default)]
    pub drop: bool,
    /// Add a consume the sandbox never processed (with `amount_fen`).
    #[serde(default)]
    pub extra: bool,
}

/// The ACP side's mutable state (inside the sandbox's lock).
#[derive(Debug, Default)]
pub struct AcpState {
    pub txns: Vec<Txn>,
    pub diffs: Vec<ReconDiff>,
    pub notified: Vec<String>,
    /// Every request whose signature verified, with the signMethod it was signed with.
    pub verified: Vec<VerifiedRequest>,
    /// Every back notification posted: its form body and the HTTP status of each try.
    pub notifications: Vec<SentNotification>,
    next: u64,
}

/// A request whose signature the sandbox checked and accepted.
#[derive(Clone, Debug, Serialize)]
pub struct VerifiedRequest {
    pub txn_type: String,
    pub order_id: String,
    pub sign_method: String,
}

/// A back notification the sandbox posted (for the tests: repeats and forgeries of it).
#[derive(Clone, Debug, Serialize)]
pub struct SentNotification {
    pub order_id: String,
    pub url: String,
    pub body: String,
    /// One per try: the HTTP status, 0 when nothing answered.
    pub statuses: Vec<u16>,
}

/// How a reply or notification is signed: as UnionPay answers the merchant, the same way the
/// request was signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplySign {
    /// signMethod 01 with the sandbox's certificate chain.
    Cert,
    /// signMethod 11 (SHA-256) or 12 (SM3) with the merchant's secure key.
    SecureKey(SecureKeyHash),
}

impl ReplySign {
    /// The way a reply to `req` is signed.
    fn of(req: &AcpMessage) -> ReplySign {
        match req.get("signMethod") {
            Some("11") => ReplySign::SecureKey(SecureKeyHash::Sha256),
            Some("12") => ReplySign::SecureKey(SecureKeyHash::Sm3),
            _ => ReplySign::Cert,
        }
    }
}

/// What processing decided.
enum Out {
    Reply(Vec<(String, String)>),
    BadSignature(Vec<(String, String)>),
    Hang,
    /// Not even an ACP message (as the real gateway answers an unknown path or type).
    Plain(&'static str),
}

pub(crate) fn kv(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// The reply fields echoed from the request.
const ECHO: [&str; 12] = [
    "version",
    "encoding",
    "bizType",
    "txnType",
    "txnSubType",
    "accessType",
    "merId",
    "orderId",
    "txnTime",
    "txnAmt",
    "currencyCode",
    "reqReserved",
];

fn echo(req: &AcpMessage) -> Vec<(String, String)> {
    ECHO.iter()
        .filter_map(|k| req.get(k).map(|v| kv(k, v)))
        .collect()
}

/// The reply fields echoed from `req`, with `respCode` and `respMsg` (the contract debits'
/// replies are made the same way).
pub(crate) fn with_code(req: &AcpMessage, code: &str, msg: &str) -> Vec<(String, String)> {
    let mut f = echo(req);
    f.push(kv("respCode", code));
    f.push(kv("respMsg", msg));
    f
}

/// `k=v&…`, in the order given.
fn join(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// What is signed: every field, sorted by name.
fn string_to_sign(fields: &[(String, String)]) -> String {
    let mut sorted = fields.to_vec();
    sorted.sort();
    join(&sorted)
}

/// Signs fields as UnionPay does and joins them raw, `k=v&…`: signMethod 01 (5.1.0, SHA-256 hex
/// digest signed with SHA256withRSA, the leaf in `signPubKeyCert`) or 11/12 (secure key).
/// `corrupt`: a wrong signature (01: one character changed; 11/12: made with another key).
/// The 云闪付 contract debits' replies are signed here too (01): they are ACP replies.
pub(crate) fn signed_raw_as(
    cfg: &AcpSandboxConfig,
    mut fields: Vec<(String, String)>,
    corrupt: bool,
    how: ReplySign,
) -> String {
    fields.retain(|(k, _)| k != "signature" && k != "signMethod" && k != "signPubKeyCert");
    let sig = match how {
        ReplySign::SecureKey(hash) => {
            let method = if hash == SecureKeyHash::Sha256 {
                "11"
            } else {
                "12"
            };
            fields.push(kv("signMethod", method));
            let mut key = cfg.secure_key.clone();
            if corrupt {
                key.extend_from_slice(b"-not-the-merchant's");
            }
            secure_key_sign(hash, &string_to_sign(&fields), &key)
        }
        ReplySign::Cert => {
            fields.push(kv("signMethod", "01"));
            fields.push(kv("signPubKeyCert", cfg.leaf_pem.clone()));
            let digest = hex_digest(RsaHash::Sha256, string_to_sign(&fields).as_bytes());
            let sig = cfg
                .key
                .sign_pkcs1(RsaHash::Sha256, digest.as_bytes(), &mut rand::thread_rng())
                .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
                .unwrap_or_default();
            if corrupt { corrupt_b64(&sig) } else { sig }
        }
    };
    fields.push(kv("signature", sig));
    join(&fields)
}

/// Changes one base64 character (still valid base64, wrong signature).
fn corrupt_b64(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if let Some(x) = c.get_mut(10) {
        *x = if *x == 'A' { 'B' } else { 'A' };
    }
    c.into_iter().collect()
}

/// Why a request is refused before processing: its respCode and respMsg.
type Refusal = (&'static str, String);

/// Checks a request's signature: signMethod 01 against the merchant certificate, 11/12 with the
/// merchant's secure key; then that it is our merchant's.
fn check_request(cfg: &AcpSandboxConfig, m: &AcpMessage) -> Result<(), Refusal> {
    match ReplySign::of(m) {
        ReplySign::SecureKey(hash) => {
            version_hash(m)?;
            let sig = m.get("signature").unwrap_or("");
            if !secure_key_verify(hash, &m.string_to_sign(), &cfg.secure_key, sig) {
                return Err(("11", "验证签名失败 (secure key)".into()));
            }
        }
        ReplySign::Cert => {
            if m.get("signMethod") != Some("01") {
                return Err((
                    "11",
                    "验证签名失败 (the sandbox takes signMethod 01, 11 or 12)".into(),
                ));
            }
            check_cert_signature(cfg, m)?;
        }
    }
    if m.get("merId") != Some(cfg.mer_id.as_str()) {
        return Err(("31", "商户状态不正确 unknown merId".into()));
    }
    Ok(())
}

/// The hash a request's `version` signs with (the format error when it names none).
fn version_hash(m: &AcpMessage) -> Result<RsaHash, Refusal> {
    m.get("version")
        .and_then(cert_hash_for_version)
        .ok_or_else(|| ("10", "报文格式错误 version".into()))
}

/// A signMethod 01 signature: made with the key of the merchant certificate it names (`certId`).
/// The 云闪付 contract debits are checked with it too.
pub(crate) fn check_cert_signature(cfg: &AcpSandboxConfig, m: &AcpMessage) -> Result<(), Refusal> {
    let cert_id = cfg.merchant_cert.serial_decimal();
    if m.get("certId") != Some(cert_id.as_str()) {
        return Err(("11", format!("验证签名失败 certId is not {cert_id}")));
    }
    let hash = version_hash(m)?;
    let Ok(sig) = base64::engine::general_purpose::STANDARD
        .decode(m.get("signature").unwrap_or("").as_bytes())
    else {
        return Err(("11", "验证签名失败 signature is not base64".into()));
    };
    let digest = hex_digest(hash, m.string_to_sign().as_bytes());
    if !verify_pkcs1(
        hash,
        cfg.merchant_cert.public_key_der(),
        digest.as_bytes(),
        &sig,
    ) {
        return Err(("11", "验证签名失败".into()));
    }
    Ok(())
}

pub(crate) fn text_reply(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain;charset=UTF-8")], body).into_response()
}

/// What processing a request came to; `Err`: it is refused, answered at once and no
/// transaction is recorded for it.
type Processed = Result<Out, Out>;

/// The success message of every reply that carries `respCode` 00.
const OK_MSG: &str = "成功[0000000]";

/// The reply echoing `req` with `code` and `msg`.
fn coded(req: &AcpMessage, code: &str, msg: &str) -> Out {
    Out::Reply(with_code(req, code, msg))
}

/// Common handling: faults, parse, signature, then `process`.
async fn handle(
    sb: Sandbox,
    body: &[u8],
    process: impl FnOnce(&Sandbox, &AcpSandboxConfig, &AcpMessage) -> Processed,
) -> Response {
    let (faults, cfg) = match begin(&sb, "ACP", |c| c.acp.clone()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let req = match std::str::from_utf8(body)
        .ok()
        .and_then(|b| AcpMessage::parse_form(b).ok())
    {
        Some(m) => m,
        None => return text_reply("Invalid request.".into()),
    };
    if req.get("version").is_none()
        || req.get("txnType").is_none()
        || req.get("signature").is_none()
    {
        return text_reply("Invalid request.".into());
    }
    let out = match check_request(&cfg, &req) {
        Err((code, msg)) => coded(&req, code, &msg),
        Ok(()) => {
            sb.lock().acp.verified.push(VerifiedRequest {
                txn_type: req.get("txnType").unwrap_or("").to_string(),
                order_id: req.get("orderId").unwrap_or("").to_string(),
                sign_method: req.get("signMethod").unwrap_or("").to_string(),
            });
            process(&sb, &cfg, &req).unwrap_or_else(|refusal| refusal)
        }
    };
    let how = ReplySign::of(&req);
    let reply = match out {
        Out::Reply(f) => text_reply(signed_raw_as(&cfg, f, false, how)),
        Out::BadSignature(f) => text_reply(signed_raw_as(&cfg, f, true, how)),
        Out::Plain(s) => text_reply(s.into()),
        Out::Hang => return hang_up(&sb).await,
    };
    after_request(&sb, &faults, reply).await
}

/// Handling for an endpoint that takes one txnType only (as UnionPay answers any other).
async fn handle_only(
    sb: Sandbox,
    body: &[u8],
    txn_type: &'static str,
    process: fn(&Sandbox, &AcpSandboxConfig, &AcpMessage) -> Processed,
) -> Response {
    handle(sb, body, move |sb, cfg, req| {
        if req.get("txnType") != Some(txn_type) {
            return Ok(Out::Plain("Invalid request URI."));
        }
        process(sb, cfg, req)
    })
    .await
}

pub async fn back_trans(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |sb, cfg, req| {
        match (
            req.get("txnType").unwrap_or(""),
            req.get("txnSubType").unwrap_or(""),
        ) {
            ("01", "06") => consume(sb, cfg, req),
            ("31", _) => undo(sb, cfg, req),
            ("04", _) => refund(sb, req),
            ("99", _) => reversal(sb, req),
            ("02", "04") => preauth(sb, req),
            ("32", _) | ("33", _) => preauth_undo(sb, req),
            ("03", _) => preauth_complete(sb, req),
            ("95", _) => {
                let mut f = with_code(req, "00", OK_MSG);
                f.push(kv("certType", "01"));
                f.push(kv("encryptPubKeyCert", cfg.enc_new_pem.clone()));
                Ok(Out::Reply(f))
            }
            _ => Ok(Out::Plain("Invalid request URI.")),
        }
    })
    .await
}

pub async fn query_trans(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle_only(sb, &body, "00", query).await
}

pub async fn file_trans(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle_only(sb, &body, "76", file).await
}

/// `POST /_sandbox/acp/recon-diff`: a [`ReconDiff`] (JSON) applied to every later 76 file.
pub async fn add_recon_diff(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<ReconDiff>(&body) {
        Ok(d) => {
            let mut g = sb.lock();
            g.acp.diffs.push(d);
            axum::Json(g.acp.diffs.clone()).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("recon-diff: {e}")).into_response(),
    }
}

/// `GET /_sandbox/acp/txns`: every ACP transaction the sandbox processed.
pub async fn txns(State(sb): State<Sandbox>) -> Response {
    let g = sb.lock();
    axum::Json(serde_json::json!({
        "txns": g.acp.txns,
        "notified": g.acp.notified,
        "verified": g.acp.verified,
        "notifications": g.acp.notifications,
    }))
    .into_response()
}

fn next_ids(g: &mut super::Inner, now: i64) -> (String, String) {
    g.acp.next += 1;
    let n = g.acp.next;
    let stamp = crate::util::beijing_stamp(now);
    // queryId: 21 characters; traceNo: 6 digits.
    (
        format!("{}{:07}", stamp, n % 10_000_000),
        format!("{:06}", n % 1_000_000),
    )
}

fn amount_of(req: &AcpMessage) -> Option<u64> {
    req.get("txnAmt")
        .filter(|a| !a.is_empty() && a.len() <= 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|a| a.parse().ok())
        .filter(|a| *a > 0)
}

/// `txnAmt` in fen, or the format error.
fn fee_of(req: &AcpMessage) -> Result<u64, Out> {
    amount_of(req).ok_or_else(|| coded(req, "10", "报文格式错误 txnAmt"))
}

fn find_orig<'a>(txns: &'a [Txn], req: &AcpMessage, types: &[&str]) -> Option<&'a Txn> {
    txns.iter().find(|t| {
        types.contains(&t.txn_type.as_str())
            && match (
                req.get("origQryId"),
                req.get("origOrderId"),
                req.get("origTxnTime"),
            ) {
                (Some(q), _, _) => t.query_id == q,
                (None, Some(o), Some(tt)) => t.order_id == o && t.txn_time == tt,
                _ => false,
            }
    })
}

/// The refusal of a follow-up whose original is unknown, or not in a state it applies to.
fn no_orig(req: &AcpMessage) -> Out {
    coded(req, "35", "原交易不存在或状态不正确")
}

/// The original (of one of `types`) a follow-up names.
fn orig_of(g: &super::Inner, req: &AcpMessage, types: &[&str]) -> Result<Txn, Out> {
    find_orig(&g.acp.txns, req, types)
        .cloned()
        .ok_or_else(|| no_orig(req))
}

/// The consume an undo or refund names, with its order in the ledger.
fn orig_consume(g: &super::Inner, req: &AcpMessage) -> Result<(Txn, Order), Out> {
    let orig = orig_of(g, req, &["01"])?;
    let order = g
        .ledger
        .get(&orig.order_id)
        .cloned()
        .ok_or_else(|| no_orig(req))?;
    Ok((orig, order))
}

/// The consume as the documented rules see it (its time, amount, refunds, undo).
fn original(req: &AcpMessage, orig: &Txn, order: &Order) -> Result<Original, Out> {
    let txn_time = TxnTime::parse(&orig.txn_time).ok_or_else(|| no_orig(req))?;
    Ok(Original {
        txn_time,
        amount: Amount::from_fen(order.amount_fen),
        refunded: Amount::from_fen(order.refunded_fen()),
        undone: order.status == Status::Revoked,
    })
}

#[allow(clippy::too_many_arguments)]
fn record(
    g: &mut super::Inner,
    req: &AcpMessage,
    amount_fen: u64,
    result: &str,
    msg: &str,
    orig: Option<(&str, &str)>,
    now: i64,
) -> Txn {
    let (query_id, trace_no) = next_ids(g, now);
    let t = Txn {
        order_id: req.get("orderId").unwrap_or("").to_string(),
        txn_time: req.get("txnTime").unwrap_or("").to_string(),
        txn_type: req.get("txnType").unwrap_or("").to_string(),
        txn_sub_type: req.get("txnSubType").unwrap_or("").to_string(),
        biz_type: req.get("bizType").unwrap_or("").to_string(),
        amount_fen,
        query_id,
        result: result.to_string(),
        result_msg: msg.to_string(),
        orig_order_id: orig.map(|o| o.0.to_string()),
        orig_query_id: orig.map(|o| o.1.to_string()),
        at_ms: now,
        trace_no,
        undone: false,
        completed_fen: 0,
    };
    g.acp.txns.push(t.clone());
    t
}

/// Records a follow-up of `orig` that succeeded.
fn record_done(g: &mut super::Inner, req: &AcpMessage, fee: u64, orig: &Txn, now: i64) -> Txn {
    record(
        g,
        req,
        fee,
        "00",
        OK_MSG,
        Some((&orig.order_id, &orig.query_id)),
        now,
    )
}

/// The success reply's fields for the recorded `t`: its queryId and, for a follow-up, the
/// original's.
fn success_fields(req: &AcpMessage, t: &Txn) -> Vec<(String, String)> {
    let mut f = with_code(req, "00", OK_MSG);
    f.push(kv("queryId", t.query_id.clone()));
    if let Some(q) = &t.orig_query_id {
        f.push(kv("origQryId", q.clone()));
    }
    f
}

fn success(req: &AcpMessage, t: &Txn) -> Processed {
    Ok(Out::Reply(success_fields(req, t)))
}

fn duplicate(g: &super::Inner, req: &AcpMessage) -> bool {
    let (o, t) = (
        req.get("orderId").unwrap_or(""),
        req.get("txnTime").unwrap_or(""),
    );
    g.acp.txns.iter().any(|x| {
        x.order_id == o
            && (x.txn_time == t || x.txn_time[..8.min(x.txn_time.len())] == t[..8.min(t.len())])
    })
}

/// The refusal of an orderId sent before (the same txnTime, or the same day).
fn not_seen(g: &super::Inner, req: &AcpMessage) -> Result<(), Out> {
    if duplicate(g, req) {
        return Err(coded(req, "12", "重复交易"));
    }
    Ok(())
}

fn valid_order_id(s: &str) -> bool {
    (8..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn consume(sb: &Sandbox, cfg: &AcpSandboxConfig, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let no = req.get("orderId").unwrap_or("").to_string();
    let qr = req.get("qrNo").unwrap_or("");
    let fee = fee_of(req)?;
    if !valid_order_id(&no)
        || qr.is_empty()
        || qr.len() > 20
        || !qr.bytes().all(|b| b.is_ascii_digit())
        || req.get("txnTime").and_then(TxnTime::parse).is_none()
        || req.get("backUrl").is_none()
    {
        return Err(coded(
            req,
            "10",
            "报文格式错误 orderId/qrNo/txnTime/backUrl",
        ));
    }
    g.seen_out_trade_nos.push(no.clone());
    if duplicate(&g, req) || g.ledger.get(&no).is_some() {
        return Err(coded(req, "12", "重复交易"));
    }
    let scenario = fee % 100;
    if scenario == 55 {
        return Ok(Out::Hang);
    }
    let status = Status::of_scenario(scenario);
    let (result, msg) = match status {
        Status::Declined => ("64", "余额不足"),
        Status::Paying => ("05", "交易已受理，等待用户输入密码"),
        _ => ("00", OK_MSG),
    };
    let t = record(&mut g, req, fee, result, msg, None, now);
    let order = Order::new(
        &no,
        "UNIONPAY",
        "acp_consume",
        fee,
        status,
        now,
        t.query_id.clone(),
    );
    g.ledger.orders.push(Order {
        notify_url: req.get("backUrl").map(str::to_string),
        ..order
    });
    let f = success_fields(req, &t);
    let out = match scenario {
        51 => coded(req, "64", "余额不足"),
        54 => Out::Hang,
        56 => Out::BadSignature(f),
        57 => {
            let code = ["03", "04", "05"][((fee / 100) % 3) as usize];
            coded(req, code, "交易状态未明，请查询")
        }
        _ => Out::Reply(f),
    };
    drop(g);
    if status == Status::Paid {
        notify(sb, cfg, &t, ReplySign::of(req));
    }
    Ok(out)
}

fn query(sb: &Sandbox, cfg: &AcpSandboxConfig, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let (o, tt) = (
        req.get("orderId").unwrap_or("").to_string(),
        req.get("txnTime").unwrap_or("").to_string(),
    );
    let Some(i) = g
        .acp
        .txns
        .iter()
        .position(|t| t.order_id == o && t.txn_time == tt)
    else {
        return Err(coded(req, "34", "查无此交易"));
    };
    // A lagging order store (faults.lag_ms): the consume exists, the query cannot see it yet.
    let now = g.clock.now_ms();
    let lag = g.faults.lag_ms as i64;
    if g.ledger.get(&o).is_some_and(|x| now - x.created_ms < lag) {
        return Err(coded(req, "34", "查无此交易"));
    }
    let mut became_paid = None;
    if g.acp.txns[i].txn_type == "01"
        && let Some(order) = g.ledger.get_mut(&o)
        && order.queried()
    {
        g.acp.txns[i].result = "00".into();
        g.acp.txns[i].result_msg = OK_MSG.into();
        became_paid = Some(g.acp.txns[i].clone());
    }
    let t = g.acp.txns[i].clone();
    drop(g);
    if let Some(t) = became_paid {
        notify(sb, cfg, &t, ReplySign::of(req));
    }
    let mut f: Vec<(String, String)> = ["version", "encoding", "bizType", "accessType", "merId"]
        .iter()
        .filter_map(|k| req.get(k).map(|v| kv(k, v)))
        .collect();
    f.push(kv("txnType", "00"));
    f.push(kv("txnSubType", "00"));
    f.push(kv("orderId", t.order_id.clone()));
    f.push(kv("txnTime", t.txn_time.clone()));
    f.push(kv("txnAmt", t.amount_fen.to_string()));
    f.push(kv("currencyCode", "156"));
    f.push(kv("queryId", t.query_id.clone()));
    f.push(kv("traceNo", t.trace_no.clone()));
    f.push(kv(
        "settleDate",
        settle_date_of(&t).format("%m%d").to_string(),
    ));
    f.push(kv("respCode", "00"));
    f.push(kv("respMsg", OK_MSG));
    f.push(kv("origRespCode", t.result.clone()));
    f.push(kv("origRespMsg", t.result_msg.clone()));
    if let Some(q) = &t.orig_query_id {
        f.push(kv("origQryId", q.clone()));
    }
    Ok(Out::Reply(f))
}

fn refused_code(r: &Refused) -> (&'static str, String) {
    match r {
        Refused::WindowClosed(_) | Refused::BeforeOriginal | Refused::RefundTooOld { .. } => {
            ("39", format!("交易不在受理时间范围内 ({r})"))
        }
        Refused::AfterRefund | Refused::AlreadyUndone => ("35", format!("原交易状态不正确 ({r})")),
        Refused::NotFullAmount { .. } | Refused::RefundTooLarge { .. } | Refused::ZeroAmount => {
            ("36", format!("与原交易信息不符 ({r})"))
        }
    }
}

/// The reply to a request the documented rules refuse.
fn refused(req: &AcpMessage, r: Refused) -> Out {
    let (c, m) = refused_code(&r);
    coded(req, c, &m)
}

fn undo(sb: &Sandbox, cfg: &AcpSandboxConfig, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let fee = fee_of(req)?;
    if !valid_order_id(req.get("orderId").unwrap_or("")) || req.get("backUrl").is_none() {
        return Err(coded(req, "10", "报文格式错误"));
    }
    not_seen(&g, req)?;
    let (orig, order) = orig_consume(&g, req)?;
    if order.status != Status::Paid && order.status != Status::Revoked {
        return Err(coded(req, "35", "原交易不存在或状态不正确 (not paid)"));
    }
    let o = original(req, &orig, &order)?;
    undo_allowed(&o, Amount::from_fen(fee), now).map_err(|r| refused(req, r))?;
    if let Some(x) = g.ledger.get_mut(&orig.order_id) {
        if !x.cancel_try() {
            return Err(coded(req, "06", "系统繁忙，请稍后再试"));
        }
        x.status = Status::Revoked;
    }
    let t = record_done(&mut g, req, fee, &orig, now);
    drop(g);
    notify(sb, cfg, &t, ReplySign::of(req));
    success(req, &t)
}

fn refund(sb: &Sandbox, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let fee = fee_of(req)?;
    if !valid_order_id(req.get("orderId").unwrap_or("")) {
        return Err(coded(req, "10", "报文格式错误 orderId"));
    }
    not_seen(&g, req)?;
    let (orig, order) = orig_consume(&g, req)?;
    if order.status != Status::Paid {
        return Err(coded(req, "35", "原交易状态不正确 (not paid, or undone)"));
    }
    let o = original(req, &orig, &order)?;
    refund_allowed(&o, Amount::from_fen(fee), now).map_err(|r| refused(req, r))?;
    let t = record_done(&mut g, req, fee, &orig, now);
    if let Some(x) = g.ledger.get_mut(&orig.order_id) {
        x.add_refund(&t.order_id, t.query_id.clone(), fee, now);
    }
    success(req, &t)
}

fn reversal(sb: &Sandbox, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let no = req.get("orderId").unwrap_or("").to_string();
    let Some(tt) = req.get("txnTime").and_then(TxnTime::parse) else {
        return Err(coded(req, "10", "报文格式错误 txnTime"));
    };
    reversal_allowed(tt, now).map_err(|r| refused(req, r))?;
    match g.ledger.get_mut(&no) {
        Some(order) => {
            if !order.cancel_try() {
                return Err(coded(req, "06", "系统繁忙，请稍后再试"));
            }
            order.status = match order.status {
                Status::Paid | Status::Revoked => Status::Revoked,
                Status::Declined => Status::Declined,
                _ => Status::Closed,
            };
            for t in g.acp.txns.iter_mut() {
                if t.order_id == no && t.txn_type == "01" && t.result != "64" {
                    t.result = "01".into();
                    t.result_msg = "交易失败（已冲正）".into();
                    t.undone = true;
                }
            }
        }
        None => {
            // Never created: the number is closed so a late consume cannot pay it; the reversal
            // is its one cancel try.
            g.ledger.orders.push(Order {
                cancel_tries: 1,
                ..Order::never_created(&no, "UNIONPAY", "acp_consume", now)
            });
            // Answer later queries of the number: a consume that failed (reversed).
            let t = record(&mut g, req, 0, "01", "交易失败（已冲正）", None, now);
            if let Some(x) = g.acp.txns.iter_mut().find(|x| x.query_id == t.query_id) {
                x.txn_type = "01".into();
                x.txn_sub_type = "06".into();
                x.undone = true;
            }
        }
    }
    Ok(coded(req, "00", OK_MSG))
}

fn preauth(sb: &Sandbox, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let fee = fee_of(req)?;
    if !valid_order_id(req.get("orderId").unwrap_or("")) || req.get("qrNo").is_none() {
        return Err(coded(req, "10", "报文格式错误"));
    }
    not_seen(&g, req)?;
    if fee % 100 == 51 {
        record(&mut g, req, fee, "64", "余额不足", None, now);
        return Ok(coded(req, "64", "余额不足"));
    }
    let t = record(&mut g, req, fee, "00", OK_MSG, None, now);
    success(req, &t)
}

/// 32 (pre-auth undo) and 33 (completion undo): full amount, in the clearing day.
fn preauth_undo(sb: &Sandbox, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let fee = fee_of(req)?;
    not_seen(&g, req)?;
    let of = if req.get("txnType") == Some("32") {
        "02"
    } else {
        "03"
    };
    let orig = orig_of(&g, req, &[of])?;
    if orig.result != "00" || orig.undone || (of == "02" && orig.completed_fen > 0) {
        return Err(coded(req, "35", "原交易状态不正确 (undone or completed)"));
    }
    if orig.amount_fen != fee {
        return Err(coded(req, "36", "与原交易信息不符 (full amount only)"));
    }
    let tt = TxnTime::parse(&orig.txn_time).ok_or_else(|| no_orig(req))?;
    if now >= clearing_day_end(tt).unix_ms() {
        return Err(coded(req, "39", "交易不在受理时间范围内"));
    }
    for t in g.acp.txns.iter_mut() {
        if t.query_id == orig.query_id {
            t.undone = true;
        }
    }
    if of == "03" {
        // The completion's money goes back; the pre-authorisation stands again.
        if let Some(x) = g.ledger.get_mut(&orig.order_id) {
            x.status = Status::Revoked;
        }
        let pre = orig.orig_query_id.clone().unwrap_or_default();
        for t in g.acp.txns.iter_mut() {
            if t.query_id == pre {
                t.completed_fen = 0;
            }
        }
    }
    let t = record_done(&mut g, req, fee, &orig, now);
    success(req, &t)
}

fn preauth_complete(sb: &Sandbox, req: &AcpMessage) -> Processed {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let fee = fee_of(req)?;
    not_seen(&g, req)?;
    let orig = orig_of(&g, req, &["02"])?;
    if orig.result != "00" || orig.undone || orig.completed_fen > 0 {
        return Err(coded(req, "35", "原交易状态不正确 (undone or completed)"));
    }
    if fee > orig.amount_fen {
        return Err(coded(
            req,
            "36",
            "与原交易信息不符 (above the authorised amount)",
        ));
    }
    for t in g.acp.txns.iter_mut() {
        if t.query_id == orig.query_id {
            t.completed_fen = fee;
        }
    }
    let t = record_done(&mut g, req, fee, &orig, now);
    g.ledger.orders.push(Order::new(
        &t.order_id,
        "UNIONPAY",
        "acp_preauth_complete",
        fee,
        Status::Paid,
        now,
        t.query_id.clone(),
    ));
    success(req, &t)
}

/// The clearing date a transaction settles on: its txnTime's day, or the next from 23:00.
fn settle_date_of(t: &Txn) -> chrono::NaiveDate {
    TxnTime::parse(&t.txn_time)
        .map(crate::gateway::unionpay::recon::clearing_date)
        .unwrap_or_default()
}

fn zm(t: &Txn, mer_id: &str) -> ZmRecord {
    let fee = t.amount_fen * 6 / 1000;
    let credit = matches!(t.txn_type.as_str(), "01" | "03");
    ZmRecord {
        txn_code: match t.txn_type.as_str() {
            "01" => "S22",
            "31" => "S31",
            "04" => "S30",
            "03" => "S24",
            _ => "S33",
        }
        .into(),
        acq_ins_code: "00010000".into(),
        send_ins_code: "00010000".into(),
        trace_no: t.trace_no.clone(),
        trace_time: t.txn_time.get(4..14).unwrap_or("").to_string(),
        acc_no: "6216***********0018".into(),
        amount: Amount::from_fen(t.amount_fen),
        mcc: "5311".into(),
        term_type: "08".into(),
        query_id: t.query_id.clone(),
        pay_type_old: String::new(),
        order_id: t.order_id.clone(),
        pay_card_type: "01".into(),
        orig_trace_no: String::new(),
        orig_trans_time: String::new(),
        mer_fee: Some(DebitCredit::Debit(Amount::from_fen(fee))),
        settle_amount: Some(if credit {
            DebitCredit::Credit(Amount::from_fen(t.amount_fen - fee))
        } else {
            DebitCredit::Debit(Amount::from_fen(t.amount_fen - fee))
        }),
        pay_type: "0001".into(),
        group_mer_id: String::new(),
        txn_type: t.txn_type.clone(),
        txn_sub_type: t.txn_sub_type.clone(),
        biz_type: t.biz_type.clone(),
        acc_type: "01".into(),
        bill_type: String::new(),
        bill_no: String::new(),
        interact_mode: String::new(),
        orig_qry_id: t.orig_query_id.clone().unwrap_or_default(),
        mer_id: mer_id.to_string(),
        split_type: String::new(),
        sub_mer_id: String::new(),
        sub_mer_abbr: String::new(),
        split_amount: None,
        net_amount: None,
        term_id: String::new(),
        mer_reserved: String::new(),
        discount: None,
        invoice: None,
        instalment_fee: None,
        instalments: String::new(),
        medium: String::new(),
        orig_order_id: t.orig_order_id.clone().unwrap_or_default(),
        reserved: String::new(),
    }
}

fn file(sb: &Sandbox, cfg: &AcpSandboxConfig, req: &AcpMessage) -> Processed {
    let g = sb.lock();
    let now = g.clock.now_ms();
    let Some(mmdd) = req.get("settleDate").filter(|d| d.len() == 4) else {
        return Err(coded(req, "10", "报文格式错误 settleDate"));
    };
    // The most recent such date on the sandbox clock.
    let today = TxnTime::from_unix_ms(now)
        .map(|t| t.naive().date())
        .unwrap_or_default();
    let date = [0, 1]
        .iter()
        .filter_map(|back| {
            chrono::NaiveDate::parse_from_str(
                &format!("{}{mmdd}", chrono::Datelike::year(&today) - back),
                "%Y%m%d",
            )
            .ok()
        })
        .find(|d| *d <= today.succ_opt().unwrap_or(today));
    let Some(date) = date else {
        return Err(coded(req, "10", "报文格式错误 settleDate"));
    };
    let mut recs: Vec<ZmRecord> = g
        .acp
        .txns
        .iter()
        // Settled money only: consumes (an undone one stays, with its undo), undos, refunds,
        // pre-auth completions and their undos; reversed consumes never settle.
        .filter(|t| t.result == "00" && settle_date_of(t) == date)
        .filter(|t| matches!(t.txn_type.as_str(), "01" | "31" | "04" | "03" | "33"))
        .map(|t| zm(t, &cfg.mer_id))
        .collect();
    for d in &g.acp.diffs {
        if d.extra {
            let mut r = recs.first().cloned().unwrap_or_else(|| {
                zm(
                    &g.acp.txns.first().cloned().unwrap_or_else(blank_txn),
                    &cfg.mer_id,
                )
            });
            r.order_id = d.order_id.clone();
            r.txn_type = "01".into();
            r.amount = Amount::from_fen(d.amount_fen.unwrap_or(100));
            recs.push(r);
        } else if d.drop {
            recs.retain(|r| r.order_id != d.order_id);
        } else if let Some(a) = d.amount_fen {
            for r in recs.iter_mut().filter(|r| r.order_id == d.order_id) {
                r.amount = Amount::from_fen(a);
            }
        }
    }
    let body: String = recs.iter().map(|r| format_zm_line(r) + "\r\n").collect();
    let name = format!("INN{}88ZM_{}", date.format("%y%m%d"), cfg.mer_id);
    let archive = zip_stored(&[ZipEntry {
        name: name.clone(),
        data: body.into_bytes(),
    }]);
    let mut f = with_code(req, "00", OK_MSG);
    f.push(kv("settleDate", mmdd));
    f.push(kv("fileType", "00"));
    f.push(kv("fileName", format!("{name}.zip")));
    f.push(kv("fileContent", encode_file_content(&archive)));
    Ok(Out::Reply(f))
}

fn blank_txn() -> Txn {
    Txn {
        order_id: String::new(),
        txn_time: "20000101000000".into(),
        txn_type: "01".into(),
        txn_sub_type: "06".into(),
        biz_type: "000000".into(),
        amount_fen: 0,
        query_id: String::new(),
        result: "00".into(),
        result_msg: String::new(),
        orig_order_id: None,
        orig_query_id: None,
        at_ms: 0,
        trace_no: "000000".into(),
        undone: false,
        completed_fen: 0,
    }
}

/// Posts a signed back notification of `t` to the order's `backUrl`, retried on the sandbox's
/// notification schedule until the merchant answers HTTP 200 (PROTOCOLS.md §A.5: anything else
/// is sent again).
fn notify(sb: &Sandbox, cfg: &AcpSandboxConfig, t: &Txn, how: ReplySign) {
    let (url, schedule) = {
        let g = sb.lock();
        let url = g
            .ledger
            .get(t.orig_order_id.as_deref().unwrap_or(&t.order_id))
            .and_then(|o| o.notify_url.clone());
        (url, g.cfg.notify_schedule_ms.clone())
    };
    let Some(url) =
        url.filter(|u| u.starts_with("http://127.") || u.starts_with("http://localhost"))
    else {
        // Only loopback: the sandbox never posts anywhere else.
        return;
    };
    let mut f = vec![
        kv("version", "5.1.0"),
        kv("encoding", "UTF-8"),
        kv("bizType", t.biz_type.clone()),
        kv("txnType", t.txn_type.clone()),
        kv("txnSubType", t.txn_sub_type.clone()),
        kv("accessType", "0"),
        kv("merId", cfg.mer_id.clone()),
        kv("orderId", t.order_id.clone()),
        kv("txnTime", t.txn_time.clone()),
        kv("txnAmt", t.amount_fen.to_string()),
        kv("currencyCode", "156"),
        kv("queryId", t.query_id.clone()),
        kv("traceNo", t.trace_no.clone()),
        kv("traceTime", t.txn_time.get(4..14).unwrap_or("").to_string()),
        kv("settleDate", settle_date_of(t).format("%m%d").to_string()),
        kv("settleAmt", t.amount_fen.to_string()),
        kv("settleCurrencyCode", "156"),
        kv("respCode", "00"),
        kv("respMsg", OK_MSG),
    ];
    if let Some(q) = &t.orig_query_id {
        f.push(kv("origQryId", q.clone()));
    }
    let Some(body) = notification_form(cfg, f, how) else {
        return;
    };
    let order_id = t.order_id.clone();
    let sb = sb.clone();
    let index = {
        let mut g = sb.lock();
        g.acp.notifications.push(SentNotification {
            order_id: order_id.clone(),
            url: url.clone(),
            body: body.clone(),
            statuses: vec![],
        });
        g.acp.notifications.len() - 1
    };
    tokio::spawn(async move {
        for delay in schedule {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            let (url, body) = (url.clone(), body.clone());
            let status = tokio::task::spawn_blocking(move || {
                post_notification(
                    &url,
                    "application/x-www-form-urlencoded;charset=UTF-8",
                    body.as_bytes(),
                )
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
            })
            .await
            .unwrap_or(0);
            let mut g = sb.lock();
            if let Some(n) = g.acp.notifications.get_mut(index) {
                n.statuses.push(status);
            }
            if status == 200 {
                g.acp.notified.push(order_id);
                break;
            }
        }
    });
}

/// The form body (`application/x-www-form-urlencoded`) of a back notification carrying `fields`,
/// signed by the sandbox `how`. Public so that tests can make notifications UnionPay could have
/// sent (for an order the terminal does not know, say) with the sandbox's TEST-ONLY keys.
pub fn notification_form(
    cfg: &AcpSandboxConfig,
    fields: Vec<(String, String)>,
    how: ReplySign,
) -> Option<String> {
    let raw = signed_raw_as(cfg, fields, false, how);
    // Raw k=v pairs → a form body (the notification is a form POST).
    let msg = AcpMessage::parse_raw(&raw).ok()?;
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in msg.fields() {
        ser.append_pair(k, v);
    }
    Some(ser.finish())
}

/// A signed consume notification form body, for the gateway's tests.
#[cfg(test)]
pub(crate) fn tests_notification_body(cfg: &AcpSandboxConfig, order_id: &str, fen: u64) -> String {
    let f = vec![
        kv("version", "5.1.0"),
        kv("encoding", "UTF-8"),
        kv("txnType", "01"),
        kv("txnSubType", "06"),
        kv("merId", cfg.mer_id.clone()),
        kv("orderId", order_id),
        kv("txnTime", "20260101000000"),
        kv("txnAmt", fen.to_string()),
        kv("queryId", "123456789012345678901"),
        kv("respCode", "00"),
        kv("respMsg", OK_MSG),
    ];
    notification_form(cfg, f, ReplySign::Cert).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::unionpay::verify::{TrustConfig, verify_report};

    fn trust() -> TrustConfig {
        TrustConfig::production(
            Certificate::from_pem(SANDBOX_MIDDLE_CERT).unwrap(),
            Certificate::from_pem(SANDBOX_ROOT_CERT).unwrap(),
        )
    }

    #[test]
    fn replies_verify_under_the_production_owner_rule_and_a_corrupt_one_does_not() {
        let cfg = AcpSandboxConfig::builtin().unwrap();
        let f = vec![
            kv("version", "5.1.0"),
            kv("respCode", "00"),
            kv("respMsg", "成功[0000000]"),
            kv("orderId", "ABCDEFGH1"),
        ];
        let raw = signed_raw_as(&cfg, f.clone(), false, ReplySign::Cert);
        let r = verify_report(&raw, &trust(), std::time::SystemTime::now());
        assert!(r.passed(), "{r}");
        let bad = signed_raw_as(&cfg, f, true, ReplySign::Cert);
        let r = verify_report(&bad, &trust(), std::time::SystemTime::now());
        assert_eq!(r.failure().map(|f| f.0.name()), Some("signature"), "{r}");
    }

    #[test]
    fn secure_key_requests_and_replies_11_and_12() {
        use crate::gateway::unionpay::message::{Signer, form_body, sign_fields};
        let cfg = AcpSandboxConfig::builtin().unwrap();
        let mut t = trust();
        t.secure_key = Some(zeroize::Zeroizing::new(
            SANDBOX_SECURE_KEY.as_bytes().to_vec(),
        ));
        let now = std::time::SystemTime::now();
        for (hash, method) in [(SecureKeyHash::Sha256, "11"), (SecureKeyHash::Sm3, "12")] {
            // A request signed by the terminal's code with the merchant's key is accepted; one
            // signed with another key is refused (11).
            let mut req = std::collections::BTreeMap::new();
            for (k, v) in [
                ("version", "5.1.0"),
                ("encoding", "UTF-8"),
                ("txnType", "00"),
                ("merId", SANDBOX_MER_ID),
                ("orderId", "ABCDEFGH1"),
            ] {
                req.insert(k.to_string(), v.to_string());
            }
            let signed = |key: &[u8]| {
                let mut f = req.clone();
                let signer = Signer::SecureKey { hash, key };
                sign_fields(&mut f, signer, &mut rand::thread_rng()).unwrap();
                AcpMessage::parse_form(&form_body(&f)).unwrap()
            };
            let good = signed(SANDBOX_SECURE_KEY.as_bytes());
            assert_eq!(good.get("signMethod"), Some(method));
            assert_eq!(check_request(&cfg, &good), Ok(()));
            assert_eq!(
                check_request(&cfg, &signed(b"another key")).unwrap_err().0,
                "11"
            );
            assert_eq!(ReplySign::of(&good), ReplySign::SecureKey(hash));

            // Replies: signed the same way, no certificate; verified with the key only.
            let f = vec![kv("version", "5.1.0"), kv("respCode", "00")];
            let raw = signed_raw_as(&cfg, f.clone(), false, ReplySign::SecureKey(hash));
            assert!(raw.contains(&format!("signMethod={method}")), "{raw}");
            assert!(!raw.contains("signPubKeyCert"), "{raw}");
            let r = verify_report(&raw, &t, now);
            assert!(r.passed(), "{r}");
            assert!(
                !verify_report(&raw, &trust(), now).passed(),
                "no key, no belief"
            );
            let bad = signed_raw_as(&cfg, f, true, ReplySign::SecureKey(hash));
            let r = verify_report(&bad, &t, now);
            assert_eq!(r.failure().map(|f| f.0.name()), Some("signature"), "{r}");
        }
    }

    #[test]
    fn merchant_cert_is_the_public_test_key() {
        let cfg = AcpSandboxConfig::builtin().unwrap();
        assert_eq!(cfg.merchant_cert.serial_decimal(), "68759663125");
    }
}
