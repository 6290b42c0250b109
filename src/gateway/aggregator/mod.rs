//! The aggregator gateway (超赢聚合支付 API v2.5.3, seed 003): code pay, face pay, pre-orders,
//! queries, cancel, refunds, notifications and merchant information.
//!
//! [`Aggregator`] builds each request as signed form fields, sends them through the transport,
//! and turns the reply into a [`GatewayReply`] only after its MD5 signature, order number and
//! amount check. A reply that fails any check is an unknown outcome, never a success. This module
//! does not journal, retry or wait: the engine does.

pub mod codes;
pub mod merchant;
pub mod online;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::core::authcode::Wallet;
use crate::core::machine::Reply;
use crate::core::money::Amount;
use crate::core::policy::Policy;
use crate::gateway::transport::{HttpRequest, Timeouts, Transport, TransportError, UreqTransport};
use crate::gateway::{
    AttemptRef, Credential, Gateway, GatewayReply, Method, RefundOutcome, RefundRef,
};
use crate::util;

pub use wire::{Fields, WireError};

const FORM: &str = "application/x-www-form-urlencoded";

/// The aggregator's settings from configuration (the key itself comes from a file or credential).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// e.g. `https://pay.example.com` — the paths of the seed are appended.
    pub base_url: String,
    pub agent_id: String,
    pub mch_id: String,
    #[serde(default = "default_pid")]
    pub pid: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// Path of a file holding the MD5 key (or `credential:NAME` for a systemd credential).
    pub key_file: String,
    #[serde(default)]
    pub op_user_id: Option<String>,
    #[serde(default)]
    pub store_id: Option<String>,
    #[serde(default)]
    pub store_name: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    /// Where the gateway posts pre-order results (the daemon's notify listener).
    #[serde(default)]
    pub notify_url: Option<String>,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_total_ms")]
    pub timeout_ms: u64,
    /// Pre-order replies are documented without a signature. A code_url decides where the
    /// customer's money goes, so an unsigned one is refused unless this is set.
    #[serde(default)]
    pub allow_unsigned_preorder: bool,
    /// The channel's rules; the defaults are the seed's.
    #[serde(default = "Policy::aggregator")]
    pub policy: Policy,
}

fn default_pid() -> String {
    "payterm".into()
}
fn default_version() -> String {
    "1.0".into()
}
fn default_connect_ms() -> u64 {
    5_000
}
fn default_total_ms() -> u64 {
    15_000
}

#[derive(Debug, Error)]
pub enum AggregatorError {
    #[error("could not reach the aggregator: {0}")]
    Transport(#[from] TransportError),
    #[error("the aggregator replied HTTP {0}")]
    Status(u16),
    #[error("the aggregator's reply cannot be believed: {0}")]
    Wire(#[from] WireError),
    #[error("the aggregator refused: {code} {msg}")]
    Refused { code: String, msg: String },
    #[error("the reply is missing {0}")]
    Missing(&'static str),
    /// Refused before anything was sent.
    #[error("{0}")]
    BadInput(String),
}

/// A verified pre-order result notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub out_trade_no: String,
    pub total_fee: Amount,
    pub paid: bool,
    pub transaction_id: Option<String>,
    pub mch_id: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NotifyError {
    #[error("the notification's signature does not check: {0}")]
    Signature(WireError),
    #[error("the notification is missing {0}")]
    Missing(&'static str),
    #[error("the notification is for merchant {0}, not ours")]
    WrongMerchant(String),
}

/// Merchant information from GetMchInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantInfo {
    pub mch_id: String,
    pub full_name: String,
    pub short_name: String,
}

pub struct Aggregator {
    cfg: AggregatorConfig,
    key: crate::util::Secret,
    transport: Arc<dyn Transport>,
}

impl Aggregator {
    pub fn new(cfg: AggregatorConfig, key: String) -> Aggregator {
        let t = Timeouts {
            connect: Duration::from_millis(cfg.connect_timeout_ms),
            total: Duration::from_millis(cfg.timeout_ms),
        };
        Aggregator {
            cfg,
            key: key.into(),
            transport: Arc::new(UreqTransport::new(t)),
        }
    }

    pub fn with_transport(
        cfg: AggregatorConfig,
        key: String,
        transport: Arc<dyn Transport>,
    ) -> Aggregator {
        Aggregator {
            cfg,
            key: key.into(),
            transport,
        }
    }

    pub fn config(&self) -> &AggregatorConfig {
        &self.cfg
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.cfg.base_url.trim_end_matches('/'), path)
    }

    fn common(&self, method: Option<&str>) -> Fields {
        let mut f = Fields::new();
        if let Some(m) = method {
            f.set("method", m);
        }
        f.set("agent_id", self.cfg.agent_id.as_str())
            .set("version", self.cfg.version.as_str())
            .set("pid", self.cfg.pid.as_str())
            .set("mch_id", self.cfg.mch_id.as_str());
        f
    }

    fn op_user(&self) -> &str {
        self.cfg.op_user_id.as_deref().unwrap_or(&self.cfg.mch_id)
    }

    /// Sends signed `fields` to `path`; returns the reply's fields once its signature checks.
    fn call(&self, path: &str, fields: Fields) -> Result<Fields, AggregatorError> {
        let body = fields.signed(self.key.expose()).to_form();
        let req = HttpRequest {
            url: self.url(path),
            content_type: FORM,
            headers: vec![("X-Requested-With".into(), "XMLHttpRequest".into())],
            body: body.into_bytes(),
        };
        let resp = self.transport.post(&req)?;
        if resp.status != 200 {
            return Err(AggregatorError::Status(resp.status));
        }
        let reply = Fields::from_json(&resp.body)?;
        reply.verify(self.key.expose())?;
        Ok(reply)
    }

    fn gateway_call(&self, fields: Fields) -> Result<Fields, GatewayReply> {
        self.call("/UnifiedPay/Gateway", fields)
            .map_err(|e| GatewayReply::new(Reply::unknown(e.to_string()), e.to_string()))
    }

    fn detail(f: &Fields) -> String {
        let c = f.get("code").unwrap_or("");
        format!(
            "{} {} {}{}",
            f.get("state").unwrap_or(""),
            c,
            f.get("msg").unwrap_or(codes::describe(c)),
            f.get("trade_state")
                .map(|t| format!(" trade_state={t}"))
                .unwrap_or_default()
        )
    }

    /// Checks that a reply claiming payment is about this order and this amount.
    fn check_paid(a: &AttemptRef, f: &Fields, reply: Reply) -> Reply {
        if reply != Reply::Paid {
            return reply;
        }
        if let Some(no) = f.get("out_trade_no")
            && no != a.out_trade_no
        {
            return Reply::unknown(format!("reply is for order {no}, not {}", a.out_trade_no));
        }
        let fee = f.get("base_fee").or(f.get("total_fee"));
        match fee.and_then(Amount::parse_fen) {
            Some(x) if x == a.amount => Reply::Paid,
            Some(x) => Reply::unknown(format!("reply says {x} yuan, the order is {}", a.amount)),
            None => Reply::unknown("a paid reply without an amount"),
        }
    }

    fn paytype(a: &AttemptRef) -> &'static str {
        a.wallet.map(Wallet::paytype).unwrap_or("WECHAT")
    }

    fn add_details(&self, f: &mut Fields, a: &AttemptRef) {
        let d = &a.details;
        f.set(
            "body",
            if d.body.is_empty() {
                "payterm"
            } else {
                d.body.as_str()
            },
        )
        .set_opt("attach", d.attach.as_deref())
        .set_opt("goods_detail", d.goods_detail.as_deref())
        .set_opt("goods_tag", d.goods_tag.as_deref())
        .set_opt(
            "op_user_id",
            d.operator.as_deref().or(self.cfg.op_user_id.as_deref()),
        )
        .set_opt(
            "op_shop_id",
            d.store_id.as_deref().or(self.cfg.store_id.as_deref()),
        )
        .set_opt(
            "op_device_id",
            d.device_id.as_deref().or(self.cfg.device_id.as_deref()),
        )
        .set_opt(
            "device_info",
            d.device_id.as_deref().or(self.cfg.device_id.as_deref()),
        );
    }

    fn preorder(&self, a: &AttemptRef, notify_url: Option<&str>) -> GatewayReply {
        let wallet = a.wallet.unwrap_or(Wallet::Wechat);
        let path = match wallet {
            Wallet::Alipay => "/Open/ALIPAY_PreOrder",
            _ => "/Open/WECHAT_PreOrder",
        };
        let mut f = self.common(None);
        f.set("nonce_str", a.out_trade_no.as_str())
            .set("out_trade_no", a.out_trade_no.as_str())
            .set("total_fee", a.amount.fen().to_string())
            .set("trade_type", "NATIVE")
            .set("product_id", a.out_trade_no.as_str())
            .set("time_start", a.chan_txn_time.as_str())
            // A QR code must stop being payable when the attempt stops waiting for it: after
            // its cancel, a code without an expiry could still take the customer's money.
            .set(
                "time_expire",
                util::beijing_stamp(a.created_ms + self.cfg.policy.qr_deadline_ms() as i64),
            )
            .set_opt("notify_url", notify_url.or(self.cfg.notify_url.as_deref()));
        self.add_details(&mut f, a);
        let body = f.signed(self.key.expose()).to_form();
        let req = HttpRequest {
            url: self.url(path),
            content_type: FORM,
            headers: vec![],
            body: body.into_bytes(),
        };
        let resp = match self.transport.post(&req) {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                return GatewayReply::new(Reply::unknown(format!("HTTP {}", r.status)), "http");
            }
            Err(e) => return GatewayReply::new(Reply::unknown(e.to_string()), e.to_string()),
        };
        let reply = match Fields::from_json(&resp.body) {
            Ok(r) => r,
            Err(e) => return GatewayReply::new(Reply::unknown(e.to_string()), e.to_string()),
        };
        match reply.verify(self.key.expose()) {
            Ok(()) => {}
            Err(WireError::Unsigned) if self.cfg.allow_unsigned_preorder => {}
            Err(e) => return GatewayReply::new(Reply::unknown(e.to_string()), e.to_string()),
        }
        let detail = Self::detail(&reply);
        let ok =
            reply.get("state") == Some("SUCCESS") && reply.get("code") == Some(codes::code::OK);
        match reply.get("code_url") {
            Some(url) if ok => {
                let mut g = GatewayReply::new(Reply::Pending, detail);
                g.code_url = Some(url.to_string());
                g
            }
            _ if reply.get("state") == Some("FAIL") => {
                GatewayReply::new(codes::pay(&reply), detail)
            }
            _ => GatewayReply::new(Reply::unknown("pre-order reply without code_url"), detail),
        }
    }

    /// getfaceauth: exchanges the face module's rawdata for the authinfo its SDK needs.
    pub fn face_auth(&self, wallet: Wallet, rawdata: &str) -> Result<String, AggregatorError> {
        let mut f = self.common(Some("getfaceauth"));
        f.set("paytype", wallet.paytype())
            .set("store_id", self.cfg.store_id.as_deref().unwrap_or("store"))
            .set(
                "store_name",
                self.cfg.store_name.as_deref().unwrap_or("store"),
            )
            .set(
                "device_id",
                self.cfg.device_id.as_deref().unwrap_or("device"),
            )
            .set("rawdata", rawdata);
        let r = self.call("/UnifiedPay/Gateway", f)?;
        if r.get("state") != Some("SUCCESS") || r.get("code") != Some(codes::code::OK) {
            return Err(AggregatorError::Refused {
                code: r.get("code").unwrap_or("").into(),
                msg: r.get("msg").unwrap_or("").into(),
            });
        }
        r.get("authinfo")
            .map(str::to_string)
            .ok_or(AggregatorError::Missing("authinfo"))
    }

    /// GetMchInfo: the merchant's registered names, for the idle screen and `config check`.
    pub fn merchant_info(&self) -> Result<MerchantInfo, AggregatorError> {
        let r = self.call("/Open/GetMchInfo", self.common(None))?;
        if r.get("state") != Some("SUCCESS") || r.get("code") != Some(codes::code::OK) {
            return Err(AggregatorError::Refused {
                code: r.get("code").unwrap_or("").into(),
                msg: r.get("msg").unwrap_or("").into(),
            });
        }
        Ok(MerchantInfo {
            mch_id: r.get("mch_id").unwrap_or(&self.cfg.mch_id).to_string(),
            full_name: r
                .get("FullName")
                .ok_or(AggregatorError::Missing("FullName"))?
                .to_string(),
            short_name: r.get("ShortName").unwrap_or("").to_string(),
        })
    }

    /// Verifies a pre-order result notification (WeChat or Alipay) posted as a form.
    /// Checking it against the journal and answering `success` is the engine's job.
    pub fn parse_notification(&self, body: &[u8]) -> Result<Notification, NotifyError> {
        let f = Fields::from_form(body);
        f.verify(self.key.expose())
            .map_err(NotifyError::Signature)?;
        let mch_id = f.get("mch_id").ok_or(NotifyError::Missing("mch_id"))?;
        if mch_id != self.cfg.mch_id {
            return Err(NotifyError::WrongMerchant(mch_id.to_string()));
        }
        let out_trade_no = f
            .get("out_trade_no")
            .ok_or(NotifyError::Missing("out_trade_no"))?;
        let total_fee = f
            .get("total_fee")
            .and_then(Amount::parse_fen)
            .ok_or(NotifyError::Missing("total_fee"))?;
        let paid = f.get("state") == Some("SUCCESS")
            && f.get("result_code") == Some("SUCCESS")
            && f.get("pay_result") == Some("0");
        Ok(Notification {
            out_trade_no: out_trade_no.to_string(),
            total_fee,
            paid,
            transaction_id: f.get("transaction_id").map(str::to_string),
            mch_id: mch_id.to_string(),
        })
    }

    fn orderquery_fields(&self, a: &AttemptRef) -> Fields {
        let mut f = self.common(Some("orderquery"));
        f.set("paytype", Self::paytype(a))
            .set("out_trade_no", a.out_trade_no.as_str());
        f
    }
}

/// The rules an out_trade_no must follow: 5 to 32 letters, digits or underscores.
pub fn valid_out_trade_no(s: &str) -> bool {
    (5..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Gateway for Aggregator {
    fn name(&self) -> &'static str {
        "aggregator"
    }

    fn policy(&self, _wallet: Option<Wallet>) -> Policy {
        self.cfg.policy.clone()
    }

    fn txn_time(&self, created_ms: i64) -> String {
        util::beijing_stamp(created_ms)
    }

    fn pay(&self, a: &AttemptRef, credential: &Credential) -> GatewayReply {
        let mut f = match credential {
            Credential::Code(code) => {
                let mut f = self.common(Some("pay"));
                f.set("auth_code", code.expose());
                f
            }
            Credential::Face { face_code, openid } => {
                let mut f = self.common(Some("facepay"));
                f.set("paytype", Self::paytype(a))
                    .set("face_code", face_code.expose())
                    .set("openid", openid.as_str());
                f
            }
            Credential::Qr { notify_url } => return self.preorder(a, notify_url.as_deref()),
            Credential::Contract { .. } => {
                return GatewayReply::new(
                    Reply::Failed {
                        code: "unsupported".into(),
                        reason: "the aggregator takes no contract debits; nothing was sent".into(),
                    },
                    "not sent",
                );
            }
        };
        f.set("out_trade_no", a.out_trade_no.as_str())
            .set("total_fee", a.amount.fen().to_string());
        self.add_details(&mut f, a);
        match self.gateway_call(f) {
            Ok(r) => {
                let reply = Self::check_paid(a, &r, codes::pay(&r));
                let mut g = GatewayReply::new(reply, Self::detail(&r));
                g.chan_trade_no = r.get("transaction_id").map(str::to_string);
                g
            }
            Err(g) => g,
        }
    }

    fn query(&self, a: &AttemptRef) -> GatewayReply {
        match self.gateway_call(self.orderquery_fields(a)) {
            Ok(r) => {
                let reply = Self::check_paid(a, &r, codes::query(&r));
                let mut g = GatewayReply::new(reply, Self::detail(&r));
                g.chan_trade_no = r.get("transaction_id").map(str::to_string);
                g
            }
            Err(g) => g,
        }
    }

    fn reverse(&self, a: &AttemptRef) -> GatewayReply {
        let mut f = self.common(Some("cancel"));
        f.set("paytype", Self::paytype(a))
            .set("out_trade_no", a.out_trade_no.as_str())
            .set("op_user_id", self.op_user());
        // The machine follows an accepted cancel with a query of its own: what the order says
        // then is the only proof of what the cancel did.
        match self.gateway_call(f) {
            Ok(r) => GatewayReply::new(codes::cancel(&r), Self::detail(&r)),
            Err(g) => g,
        }
    }

    fn refund(&self, a: &AttemptRef, r: &RefundRef) -> RefundOutcome {
        let mut f = self.common(Some("refund"));
        f.set("paytype", Self::paytype(a))
            .set("out_trade_no", a.out_trade_no.as_str())
            .set("out_refund_no", r.out_refund_no.as_str())
            .set("total_fee", r.order_total.fen().to_string())
            .set("refund_fee", r.amount.fen().to_string())
            .set("op_user_id", self.op_user());
        match self.call("/UnifiedPay/Gateway", f) {
            Ok(reply) => codes::refund(&reply),
            Err(e) => RefundOutcome::Unknown { why: e.to_string() },
        }
    }

    fn endpoint(&self) -> Option<String> {
        Some(self.cfg.base_url.clone())
    }

    fn probe(&self) -> Option<GatewayReply> {
        // An order number no terminal makes (ours start with the terminal id and a date): a
        // signed 20007 is an answer, and it moves no money.
        let mut f = self.common(Some("orderquery"));
        f.set("paytype", "WECHAT")
            .set("out_trade_no", "PAYTERMPROBE0000000000");
        Some(match self.gateway_call(f) {
            Ok(r) => GatewayReply::new(codes::query(&r), Self::detail(&r)),
            Err(g) => g,
        })
    }

    fn face_auth(&self, wallet: Wallet, rawdata: &str) -> Result<String, String> {
        Aggregator::face_auth(self, wallet, rawdata).map_err(|e| e.to_string())
    }

    fn verify_notification(&self, body: &[u8]) -> Result<crate::gateway::Notice, String> {
        let n = self.parse_notification(body).map_err(|e| e.to_string())?;
        Ok(crate::gateway::Notice {
            out_trade_no: n.out_trade_no,
            amount: n.total_fee,
            paid: n.paid,
            chan_trade_no: n.transaction_id,
            no_result: None,
        })
    }

    fn refund_query(&self, a: &AttemptRef, out_refund_no: &str) -> RefundOutcome {
        let mut f = self.common(Some("refundquery"));
        f.set("paytype", Self::paytype(a))
            .set("out_refund_no", out_refund_no);
        match self.call("/UnifiedPay/Gateway", f) {
            Ok(reply) => codes::refund_query(&reply, out_refund_no),
            Err(e) => RefundOutcome::Unknown { why: e.to_string() },
        }
    }
}

impl Method {
    /// Whether this method needs a wallet known before the request (pre-orders pick the page).
    pub fn needs_wallet(self) -> bool {
        !matches!(self, Method::Code)
    }
}

/// A canned transport for this module's unit tests and its submodules'.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::gateway::HttpResponse;
    use std::sync::Mutex;

    /// A transport that answers with a canned body and records what was sent.
    pub(crate) struct Canned {
        pub(crate) reply: Mutex<Vec<Vec<u8>>>,
        pub(crate) sent: Mutex<Vec<String>>,
    }

    impl Canned {
        pub(crate) fn sent(&self) -> Vec<String> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Transport for Canned {
        fn post(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
            self.sent
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&req.body).into_owned());
            let mut r = self.reply.lock().unwrap();
            if r.is_empty() {
                return Err(TransportError::NoReply {
                    host: "x".into(),
                    why: "timeout".into(),
                });
            }
            Ok(HttpResponse {
                status: 200,
                body: r.remove(0),
                authorization: None,
            })
        }
    }

    pub(crate) fn cfg() -> AggregatorConfig {
        toml::from_str(
            r#"base_url = "http://127.0.0.1:1"
agent_id = "130000000000000000"
mch_id = "00000001"
key_file = "/dev/null""#,
        )
        .unwrap()
    }

    pub(crate) fn agg(replies: Vec<Vec<u8>>) -> (Aggregator, Arc<Canned>) {
        let t = Arc::new(Canned {
            reply: Mutex::new(replies),
            sent: Mutex::new(vec![]),
        });
        (Aggregator::with_transport(cfg(), "k".into(), t.clone()), t)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::agg;
    use super::*;
    use crate::gateway::OrderDetails;

    fn attempt() -> AttemptRef {
        AttemptRef {
            out_trade_no: "PT000120261122100000001".into(),
            amount: Amount::from_fen(1250),
            wallet: Some(Wallet::Wechat),
            method: Method::Code,
            chan_txn_time: "20261122100000".into(),
            created_ms: 0,
            chan_trade_no: None,
            details: OrderDetails {
                body: "coffee".into(),
                ..Default::default()
            },
        }
    }

    fn signed(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut f = Fields::new();
        for (k, v) in pairs {
            f.set(k, *v);
        }
        f.signed("k").to_json().into_bytes()
    }

    fn code() -> Credential {
        Credential::Code(
            crate::core::AuthCode::classify(
                "134567890123456789",
                &crate::core::authcode::default_rules(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn paid_reply_is_believed_only_with_signature_order_and_amount() {
        let ok = [
            ("state", "SUCCESS"),
            ("code", "10000"),
            ("trade_state", "SUCCESS"),
            ("out_trade_no", "PT000120261122100000001"),
            ("base_fee", "1250"),
            ("total_fee", "1250"),
        ];
        let (g, t) = agg(vec![signed(&ok)]);
        assert_eq!(g.pay(&attempt(), &code()).reply, Reply::Paid);
        let sent = t.sent.lock().unwrap()[0].clone();
        assert!(sent.contains("method=pay") && sent.contains("auth_code=134567890123456789"));
        let form = Fields::from_form(sent.as_bytes());
        assert!(form.verify("k").is_ok(), "the request is signed");

        let mut tampered = String::from_utf8(signed(&ok)).unwrap();
        tampered = tampered.replace("\"1250\"", "\"1\"");
        let (g, _) = agg(vec![tampered.into_bytes()]);
        assert!(matches!(
            g.pay(&attempt(), &code()).reply,
            Reply::Unknown { .. }
        ));

        let mut wrong_amount = ok;
        wrong_amount[4] = ("base_fee", "1");
        wrong_amount[5] = ("total_fee", "1");
        let (g, _) = agg(vec![signed(&wrong_amount)]);
        assert!(matches!(
            g.pay(&attempt(), &code()).reply,
            Reply::Unknown { .. }
        ));

        let mut other_order = ok;
        other_order[3] = ("out_trade_no", "SOMEONEELSE");
        let (g, _) = agg(vec![signed(&other_order)]);
        assert!(matches!(
            g.pay(&attempt(), &code()).reply,
            Reply::Unknown { .. }
        ));
    }

    #[test]
    fn timeouts_are_unknown() {
        let (g, _) = agg(vec![]);
        assert!(matches!(
            g.pay(&attempt(), &code()).reply,
            Reply::Unknown { .. }
        ));
        assert!(matches!(g.query(&attempt()).reply, Reply::Unknown { .. }));
    }

    #[test]
    fn notification_is_verified_and_checked() {
        let (g, _) = agg(vec![]);
        let mut f = Fields::new();
        f.set("state", "SUCCESS")
            .set("result_code", "SUCCESS")
            .set("pay_result", "0")
            .set("mch_id", "00000001")
            .set("out_trade_no", "X12345")
            .set("total_fee", "100")
            .set("nonce_str", "n");
        let body = f.clone().signed("k").to_form();
        let n = g.parse_notification(body.as_bytes()).unwrap();
        assert!(n.paid);
        assert_eq!(n.total_fee, Amount::from_fen(100));
        let forged = body.replace("total_fee=100", "total_fee=1");
        assert!(matches!(
            g.parse_notification(forged.as_bytes()),
            Err(NotifyError::Signature(_))
        ));
        f.set("mch_id", "other");
        let other = f.signed("k").to_form();
        assert!(matches!(
            g.parse_notification(other.as_bytes()),
            Err(NotifyError::WrongMerchant(_))
        ));
    }

    #[test]
    fn out_trade_no_rules() {
        assert!(valid_out_trade_no("T2026_0001"));
        assert!(!valid_out_trade_no("T1"));
        assert!(!valid_out_trade_no("T-2026-0001"));
        assert!(!valid_out_trade_no(&"x".repeat(33)));
    }
}
