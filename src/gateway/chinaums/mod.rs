//! ChinaUMS 银联商务 天满 open platform (PROTOCOLS.md §D): OPEN-BODY-SIG and access-token
//! authentication, POS-link code payment as a [`Gateway`] (pay, query, voidpayment, refund,
//! query-refund), and the netpay bills pre-authorisation family as library calls (seed 004).
//!
//! [`ChinaUms`] builds each request as JSON, signs it (or attaches the cached access token),
//! sends it through its own small transport (which keeps the reply's `Authorization` header),
//! verifies a signed reply before believing it, and reduces the reply with [`codes`]. A reply
//! that fails any check is an unknown outcome, never a success. This module does not journal,
//! retry or wait: the engine does. The AppKey and tokens never appear in logs, errors or `Debug`.

pub mod bills;
pub mod codes;
pub mod token;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::core::authcode::Wallet;
use crate::core::machine::{Reply, ReverseAction};
use crate::core::policy::{AfterWindow, Policy, ReverseWindow};
use crate::gateway::transport::{
    HttpRequest, HttpResponse, Timeouts, Transport, TransportError, UreqTransport,
};
use crate::gateway::{AttemptRef, Credential, Gateway, GatewayReply, RefundOutcome, RefundRef};
use crate::sign::hmac::{open_body_header, parse_open_body_header, verify_open_body};
use crate::sign::sha256::chinaums_token_signature;
use crate::util;

pub use bills::{BillResult, PreAuthRef};
pub use token::{Clock, TokenCache, system_clock};

/// How requests are authenticated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `Authorization: OPEN-BODY-SIG …` computed over each body.
    #[default]
    BodySig,
    /// `Authorization: OPEN-ACCESS-TOKEN AccessToken="…"`, the token from `/v1/token/access`,
    /// cached and renewed before it expires.
    AccessToken,
}

/// The netpay (bills) merchant settings, for the pre-authorisation family.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillsConfig {
    pub mid: String,
    pub tid: String,
    #[serde(default = "default_inst_mid")]
    pub inst_mid: String,
}

fn default_inst_mid() -> String {
    "QRPAYDEFAULT".into()
}

/// `[gateways.chinaums]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChinaUmsConfig {
    /// `https://api-mop.chinaums.com` (production) or `https://test-api-open.chinaums.com`.
    pub base_url: String,
    pub app_id: String,
    /// A file holding the AppKey (or `credential:NAME`).
    pub app_key_file: String,
    #[serde(default)]
    pub auth: AuthMode,
    /// An access token is renewed this long before it expires.
    #[serde(default = "default_margin")]
    pub token_renew_before_s: u64,
    /// POS-link `merchantCode` (15) and `terminalCode` (8).
    pub merchant_code: String,
    pub terminal_code: String,
    /// POS-link API version in the path (`v6`; older integrations use `v2`).
    #[serde(default = "default_poslink_version")]
    pub poslink_version: String,
    /// `deviceType`: 11 for an unattended/non-physical terminal (then `ip` or lat/long is
    /// required), other codes for physical terminals.
    #[serde(default = "default_device_type")]
    pub device_type: String,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub longitude: Option<String>,
    #[serde(default)]
    pub latitude: Option<String>,
    /// Refuse replies without an OPEN-BODY-SIG `Authorization` header. A header that is present
    /// is always verified, whatever this says.
    #[serde(default)]
    pub require_signed_replies: bool,
    #[serde(default)]
    pub bills: Option<BillsConfig>,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_total_ms")]
    pub timeout_ms: u64,
    /// The channel's rules; the defaults are [`default_policy`].
    #[serde(default = "default_policy")]
    pub policy: Policy,
}

fn default_margin() -> u64 {
    300
}
fn default_poslink_version() -> String {
    "v6".into()
}
fn default_device_type() -> String {
    "11".into()
}
fn default_connect_ms() -> u64 {
    5_000
}
fn default_total_ms() -> u64 {
    20_000
}

/// POS-link's rules. ChinaUMS documents no query schedule for POS-link; these follow the
/// "query, then void, then refund" practice: queries at 2, 3, 5, 5, 10 s up to 60 s, voids
/// (撤销) only on the day of the payment (before 23:00 Beijing, like the card schemes' batch
/// cut-off), full refunds after that.
pub fn default_policy() -> Policy {
    Policy {
        query_delays_ms: vec![2_000, 3_000, 5_000, 5_000, 10_000],
        pay_deadline_ms: 60_000,
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
        not_found_final_after_ms: crate::core::policy::NOT_FOUND_FINAL_AFTER_MS,
        qr_wait_ms: 120_000,
    }
}

impl ChinaUmsConfig {
    /// Each problem as (field, sentence) for `config check`.
    pub fn problems(&self, sandbox: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut err = |f: &str, m: String| p.push((format!("gateways.chinaums.{f}"), m));
        match url::Url::parse(&self.base_url) {
            Err(_) => err("base_url", format!("{:?} is not a URL", self.base_url)),
            Ok(u) if u.scheme() != "https" && !sandbox => {
                err("base_url", "must use https outside the sandbox".to_string())
            }
            Ok(_) => {}
        }
        if self.app_id.trim().is_empty() {
            err("app_id", "must not be empty".into());
        }
        if self.merchant_code.len() != 15
            || !self
                .merchant_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            err(
                "merchant_code",
                format!(
                    "{:?} must be the 15-character merchantCode",
                    self.merchant_code
                ),
            );
        }
        if self.terminal_code.len() != 8
            || !self
                .terminal_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            err(
                "terminal_code",
                format!(
                    "{:?} must be the 8-character terminalCode",
                    self.terminal_code
                ),
            );
        }
        if !matches!(self.poslink_version.as_str(), "v2" | "v4" | "v6") {
            err("poslink_version", "must be v2, v4 or v6".into());
        }
        let non_physical = matches!(self.device_type.as_str(), "01" | "11" | "12" | "13");
        let has_geo = self.longitude.is_some() && self.latitude.is_some();
        if non_physical && self.ip.is_none() && !has_geo {
            err(
                "ip",
                format!(
                    "deviceType {} needs ip, or longitude and latitude",
                    self.device_type
                ),
            );
        }
        for q in self.policy.problems() {
            err("policy", q);
        }
        p
    }
}

#[derive(Debug, Error)]
pub enum UmsError {
    #[error("could not reach ChinaUMS: {0}")]
    Transport(#[from] TransportError),
    #[error("ChinaUMS replied HTTP {0}")]
    Status(u16),
    #[error("the ChinaUMS reply cannot be believed: {0}")]
    BadReply(String),
    #[error("ChinaUMS refused: {code} {msg}")]
    Refused { code: String, msg: String },
    #[error("no access token: {0}")]
    Token(String),
    #[error("the request is not valid: {0}")]
    Build(String),
}

impl UmsError {
    /// True when the request certainly did not reach ChinaUMS.
    pub fn certainly_not_sent(&self) -> bool {
        match self {
            UmsError::Transport(t) => t.certainly_not_sent(),
            UmsError::Token(_) | UmsError::Build(_) => true,
            _ => false,
        }
    }
}

/// The ChinaUMS client.
pub struct ChinaUms {
    cfg: ChinaUmsConfig,
    app_key: Zeroizing<String>,
    transport: Arc<dyn Transport>,
    clock: Clock,
    token: TokenCache,
}

impl fmt::Debug for ChinaUms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChinaUms {{ app_id: {}, base_url: {}, auth: {:?}, app_key: redacted }}",
            self.cfg.app_id, self.cfg.base_url, self.cfg.auth
        )
    }
}

/// 32 random hex characters, as the SDKs make nonces.
pub fn new_nonce() -> String {
    let n: u128 = rand::thread_rng().r#gen();
    format!("{n:032x}")
}

impl ChinaUms {
    pub fn new(cfg: ChinaUmsConfig, app_key: String) -> ChinaUms {
        let t = UreqTransport::new(Timeouts {
            connect: Duration::from_millis(cfg.connect_timeout_ms),
            total: Duration::from_millis(cfg.timeout_ms),
        });
        ChinaUms::with_parts(cfg, app_key, Arc::new(t), system_clock())
    }

    pub fn with_parts(
        cfg: ChinaUmsConfig,
        app_key: String,
        transport: Arc<dyn Transport>,
        clock: Clock,
    ) -> ChinaUms {
        let margin = (cfg.token_renew_before_s as i64).saturating_mul(1000);
        ChinaUms {
            cfg,
            app_key: Zeroizing::new(app_key),
            transport,
            clock,
            token: TokenCache::new(margin),
        }
    }

    /// Builds the client from configuration, reading the AppKey.
    pub fn from_config(
        cfg: &crate::config::Config,
        c: &ChinaUmsConfig,
    ) -> Result<ChinaUms, crate::config::ConfigError> {
        let key = cfg.read_secret("ChinaUMS AppKey", &c.app_key_file)?;
        Ok(ChinaUms::new(c.clone(), key))
    }

    pub fn config(&self) -> &ChinaUmsConfig {
        &self.cfg
    }

    pub fn token_cache(&self) -> &TokenCache {
        &self.token
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url.trim_end_matches('/'))
    }

    fn poslink(&self, op: &str) -> String {
        format!("/{}/poslink/transaction/{op}", self.cfg.poslink_version)
    }

    /// Fetches a fresh access token: `(token, expiresIn seconds)`.
    fn fetch_token(&self) -> Result<(String, u64), UmsError> {
        let ts = util::beijing_stamp(self.now());
        let nonce = new_nonce();
        let body = json!({
            "appId": self.cfg.app_id,
            "timestamp": ts,
            "nonce": nonce,
            "signMethod": "SHA256",
            "signature": chinaums_token_signature(&self.cfg.app_id, &ts, &nonce, &self.app_key),
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| UmsError::Build(e.to_string()))?;
        let r = self.post_json("/v1/token/access", None, bytes)?;
        if r.status != 200 {
            return Err(UmsError::Status(r.status));
        }
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| UmsError::BadReply(format!("token reply is not JSON: {e}")))?;
        if codes::text(&v, "errCode").as_deref() != Some("0000") {
            return Err(UmsError::Refused {
                code: codes::text(&v, "errCode").unwrap_or_default(),
                msg: codes::text(&v, "errInfo").unwrap_or_default(),
            });
        }
        let token = codes::text(&v, "accessToken")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UmsError::BadReply("token reply without accessToken".into()))?;
        let life = codes::text(&v, "expiresIn")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(3600);
        Ok((token, life))
    }

    /// The current access token, fetched or renewed when needed.
    pub fn access_token(&self) -> Result<String, UmsError> {
        let now = self.now();
        self.token.get(now, || self.fetch_token())
    }

    fn authorization(&self, body: &[u8]) -> Result<String, UmsError> {
        match self.cfg.auth {
            AuthMode::BodySig => Ok(open_body_header(
                &self.cfg.app_id,
                &self.app_key,
                &util::beijing_stamp(self.now()),
                &new_nonce(),
                body,
            )),
            AuthMode::AccessToken => {
                let t = self
                    .access_token()
                    .map_err(|e| UmsError::Token(e.to_string()))?;
                Ok(format!("OPEN-ACCESS-TOKEN AccessToken=\"{t}\""))
            }
        }
    }

    /// POSTs JSON to `path`; the reply keeps its `Authorization` header for
    /// [`Self::check_reply_signature`].
    fn post_json(
        &self,
        path: &str,
        authorization: Option<String>,
        body: Vec<u8>,
    ) -> Result<HttpResponse, TransportError> {
        self.transport.post(&HttpRequest {
            url: self.url(path),
            content_type: "application/json; charset=UTF-8",
            headers: authorization
                .map(|a| vec![("Authorization".to_string(), a)])
                .unwrap_or_default(),
            body,
        })
    }

    /// Checks the reply's OPEN-BODY-SIG header, when there is one (or when one is required).
    fn check_reply_signature(&self, r: &HttpResponse) -> Result<(), UmsError> {
        match &r.authorization {
            None if self.cfg.require_signed_replies => {
                Err(UmsError::BadReply("the reply is not signed".into()))
            }
            None => Ok(()),
            Some(h) => {
                let auth =
                    parse_open_body_header(h).map_err(|e| UmsError::BadReply(e.to_string()))?;
                if auth.app_id != self.cfg.app_id {
                    return Err(UmsError::BadReply(format!(
                        "the reply is signed for AppId {}, not ours",
                        auth.app_id
                    )));
                }
                verify_open_body(&auth, &self.app_key, &r.body)
                    .map_err(|e| UmsError::BadReply(format!("reply signature: {e}")))
            }
        }
    }

    /// Sends `body` to `path` and returns the reply once it is JSON and its signature checks.
    pub fn call(&self, path: &str, body: &Value) -> Result<Value, UmsError> {
        let bytes = serde_json::to_vec(body).map_err(|e| UmsError::Build(e.to_string()))?;
        let mut tries = 0;
        loop {
            tries += 1;
            let auth = self.authorization(&bytes)?;
            let r = self.post_json(path, Some(auth), bytes.clone())?;
            if r.status == 401 && self.cfg.auth == AuthMode::AccessToken && tries == 1 {
                // A rejected token: the request was refused before it was processed, so it is
                // safe to send once more with a fresh token.
                self.token.invalidate();
                continue;
            }
            if r.status != 200 {
                return Err(UmsError::Status(r.status));
            }
            self.check_reply_signature(&r)?;
            let v: Value = serde_json::from_slice(&r.body)
                .map_err(|e| UmsError::BadReply(format!("not JSON: {e}")))?;
            if !v.is_object() {
                return Err(UmsError::BadReply("not a JSON object".into()));
            }
            return Ok(v);
        }
    }

    fn base_fields(&self, a: &AttemptRef) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("merchantCode".into(), json!(self.cfg.merchant_code));
        m.insert("terminalCode".into(), json!(self.cfg.terminal_code));
        m.insert("merchantOrderId".into(), json!(a.out_trade_no));
        if let Some(o) = &a.chan_trade_no {
            m.insert("originalOrderId".into(), json!(o));
        }
        m
    }

    fn ori_trans_date(a: &AttemptRef) -> String {
        a.chan_txn_time.chars().take(8).collect()
    }

    fn gw_call(&self, path: &str, body: Map<String, Value>) -> Result<Value, GatewayReply> {
        self.call(path, &Value::Object(body)).map_err(|e| {
            let why = e.to_string();
            GatewayReply::new(Reply::unknown(why.clone()), why)
        })
    }

    fn query_value(&self, a: &AttemptRef) -> Result<Value, GatewayReply> {
        let mut m = self.base_fields(a);
        m.insert("oriTransDate".into(), json!(Self::ori_trans_date(a)));
        self.gw_call(&self.poslink("query"), m)
    }
}

impl Gateway for ChinaUms {
    fn name(&self) -> &'static str {
        "chinaums"
    }

    fn policy(&self, _wallet: Option<Wallet>) -> Policy {
        self.cfg.policy.clone()
    }

    fn txn_time(&self, created_ms: i64) -> String {
        util::beijing_stamp(created_ms)
    }

    fn endpoint(&self) -> Option<String> {
        Some(self.cfg.base_url.clone())
    }

    fn pay(&self, a: &AttemptRef, credential: &Credential) -> GatewayReply {
        let Credential::Code(code) = credential else {
            return GatewayReply::new(
                Reply::Failed {
                    code: "unsupported".into(),
                    reason: "ChinaUMS POS-link takes scanned payment codes only; nothing was sent"
                        .into(),
                },
                "not sent",
            );
        };
        let mut m = self.base_fields(a);
        m.insert("transactionAmount".into(), json!(a.amount.fen()));
        m.insert("transactionCurrencyCode".into(), json!("156"));
        m.insert(
            "merchantRemark".into(),
            json!(if a.details.body.is_empty() {
                "payterm"
            } else {
                a.details.body.as_str()
            }),
        );
        m.insert("payMode".into(), json!("CODE_SCAN"));
        m.insert("payCode".into(), json!(code.expose()));
        m.insert("deviceType".into(), json!(self.cfg.device_type));
        if let Some(ip) = &self.cfg.ip {
            m.insert("ip".into(), json!(ip));
        }
        if let (Some(lo), Some(la)) = (&self.cfg.longitude, &self.cfg.latitude) {
            m.insert("longitude".into(), json!(lo));
            m.insert("latitude".into(), json!(la));
        }
        if let Some(s) = &a.details.store_id {
            m.insert("storeId".into(), json!(s));
        }
        if let Some(o) = &a.details.operator {
            m.insert("operatorId".into(), json!(o));
        }
        match self.gw_call(&self.poslink("pay"), m) {
            Ok(v) => {
                let mut g = GatewayReply::new(codes::pay(&v, a), codes::detail(&v));
                g.chan_trade_no = codes::text(&v, "orderId");
                g
            }
            Err(g) => g,
        }
    }

    fn query(&self, a: &AttemptRef) -> GatewayReply {
        match self.query_value(a) {
            Ok(v) => {
                let mut g = GatewayReply::new(codes::query(&v, a), codes::detail(&v));
                g.chan_trade_no = codes::text(&v, "orderId");
                g
            }
            Err(g) => g,
        }
    }

    fn reverse(&self, a: &AttemptRef) -> GatewayReply {
        let mut m = self.base_fields(a);
        m.insert("merchantRemark".into(), json!("payterm void"));
        match self.gw_call(&self.poslink("voidpayment"), m) {
            Ok(v) if codes::void_done(&v) => {
                // The void reply says neither whether it took effect nor whether money went
                // back; only the order's queryResCode proves it: 2 已撤销 / 3 已退货 in full (the
                // money went back), 4 已冲正 / 5 失败 (none was taken). Anything else — still
                // paid, 1/FF, a failed or unbelievable query — is not known yet: void again.
                let detail = codes::detail(&v);
                match self
                    .query_value(a)
                    .map(|q| (codes::query(&q, a), codes::detail(&q)))
                {
                    Ok((Reply::Refunded, d)) => GatewayReply::new(
                        Reply::Reversed(ReverseAction::Refund),
                        format!("{detail}; query: {d}"),
                    ),
                    Ok((Reply::Failed { .. }, d)) => GatewayReply::new(
                        Reply::Reversed(ReverseAction::Close),
                        format!("{detail}; query: {d}"),
                    ),
                    Ok((r, d)) => GatewayReply::new(
                        Reply::RetryLater {
                            why: format!("void accepted, but the order reads {}", r.describe()),
                        },
                        format!("{detail}; query: {d}"),
                    ),
                    Err(g) => GatewayReply::new(
                        Reply::RetryLater {
                            why: format!("void accepted, not confirmed: {}", g.detail),
                        },
                        format!("{detail}; query: {}", g.detail),
                    ),
                }
            }
            Ok(v) => GatewayReply::new(
                Reply::RetryLater {
                    why: codes::detail(&v),
                },
                codes::detail(&v),
            ),
            Err(g) => g,
        }
    }

    fn refund(&self, a: &AttemptRef, r: &RefundRef) -> RefundOutcome {
        let mut m = self.base_fields(a);
        m.insert("refundRequestId".into(), json!(r.out_refund_no));
        m.insert("transactionAmount".into(), json!(r.amount.fen()));
        m.insert("refundDesc".into(), json!("payterm refund"));
        match self.call(&self.poslink("refund"), &Value::Object(m)) {
            Ok(v) => codes::refund(&v),
            Err(e) => RefundOutcome::Unknown { why: e.to_string() },
        }
    }

    fn refund_query(&self, a: &AttemptRef, out_refund_no: &str) -> RefundOutcome {
        let mut m = self.base_fields(a);
        m.insert("refundRequestId".into(), json!(out_refund_no));
        m.insert("oriTransDate".into(), json!(Self::ori_trans_date(a)));
        match self.call(&self.poslink("query-refund"), &Value::Object(m)) {
            Ok(v) => codes::refund_query(&v),
            Err(e) => RefundOutcome::Unknown { why: e.to_string() },
        }
    }
}

#[cfg(test)]
mod tests;
