//! 云闪付 open platform (UPAPI, PROTOCOLS.md §E) and 无感支付 contract customers: backendToken
//! (cached, renewed before expiry), a user's accessToken from an authorization code, contract
//! sign / cancel / query, the user's arrears status, the verified cancel notification, 3DES field
//! encryption — and, in [`gateway`], the contract debit with its undo / refund / query as the
//! engine's `upapi` gateway (ACP-style messages, seed 001).
//!
//! [`Upapi`] speaks the open platform: JSON calls `{…}` → `{"resp","msg","params"}`, each signed
//! with the SHA-256 formula of [`crate::sign::sha256`]. It returns typed values or a typed
//! [`UpapiError`]; it never journals, never decides anything about money, and never prints the
//! secret, tokens or decrypted fields. Storing contracts and answering notifications durably is
//! the journal's and the caller's job.

pub mod crypto;
pub mod gateway;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::gateway::chinaums::token::{Clock, TokenCache, system_clock};
use crate::gateway::transport::{HttpRequest, Timeouts, Transport, TransportError, UreqTransport};
use crate::sign::rsa::{RsaHash, verify_pkcs1};
use crate::sign::sha256::upapi_sign;

pub use crypto::{CryptoError, SymmetricKey};
pub use gateway::ContractGateway;

/// Limits for accepting contract debits while the uplink is down (`[gateways.upapi.offline]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineConfig {
    /// Off unless set: a terminal must be allowed to take this risk explicitly.
    #[serde(default)]
    pub enabled: bool,
    /// At most this much (yuan) stored for one customer.
    #[serde(default = "default_per_customer")]
    pub per_customer: String,
    /// At most this much (yuan) stored in total.
    #[serde(default = "default_total")]
    pub total: String,
    /// No offline acceptance once the oldest stored deduction is older than this.
    #[serde(default = "default_max_age")]
    pub max_age_s: u64,
    /// The contract and arrears status must have been confirmed online within this.
    #[serde(default = "default_fresh")]
    pub fresh_within_s: u64,
    /// Attempts per deduction before it is handed to a person.
    #[serde(default = "default_tries")]
    pub max_tries: u32,
}

fn default_per_customer() -> String {
    "50.00".into()
}
fn default_total() -> String {
    "200.00".into()
}
fn default_max_age() -> u64 {
    4 * 3600
}
fn default_fresh() -> u64 {
    30 * 60
}
fn default_tries() -> u32 {
    3
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            enabled: false,
            per_customer: default_per_customer(),
            total: default_total(),
            max_age_s: default_max_age(),
            fresh_within_s: default_fresh(),
            max_tries: default_tries(),
        }
    }
}

/// `[gateways.upapi]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpapiConfig {
    /// `https://open.95516.com`; `/open/access/1.0/<method>` is appended.
    pub base_url: String,
    pub app_id: String,
    /// A file holding the app secret.
    pub secret_file: String,
    /// A file holding the 3DES `symmetricKey` (48 hex characters).
    pub symmetric_key_file: String,
    /// The 无感支付 template id assigned by 云闪付.
    pub plan_id: String,
    /// UnionPay's certificate whose key signs the cancel notifications.
    pub notify_cert: String,
    /// The backendToken is renewed this long before it expires.
    #[serde(default = "default_renew")]
    pub token_renew_before_s: u64,
    /// Add the SHA-256 `signature` to every call (not only backendToken).
    #[serde(default = "default_true")]
    pub sign_calls: bool,
    /// Where contract debits are posted; default `<acp.base_url>/gateway/api/backTransReq.do`.
    #[serde(default)]
    pub consume_url: Option<String>,
    /// `bizType` of the contract debit (not documented publicly; see [`gateway`]).
    #[serde(default = "default_biz")]
    pub consume_biz_type: String,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_total_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub offline: OfflineConfig,
    /// The ACP side (keys, certificates, merId, policy) the debits and follow-ups go through.
    pub acp: crate::gateway::unionpay::AcpConfig,
}

fn default_renew() -> u64 {
    600
}
fn default_true() -> bool {
    true
}
fn default_biz() -> String {
    "000301".into()
}
fn default_connect_ms() -> u64 {
    5_000
}
fn default_total_ms() -> u64 {
    15_000
}

impl UpapiConfig {
    /// Each problem as (field, sentence).
    pub fn problems(&self, sandbox: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut err = |f: &str, m: String| p.push((format!("gateways.upapi.{f}"), m));
        match url::Url::parse(&self.base_url) {
            Err(_) => err("base_url", format!("{:?} is not a URL", self.base_url)),
            Ok(u) if u.scheme() != "https" && !sandbox => {
                err("base_url", "must use https outside the sandbox".into())
            }
            Ok(_) => {}
        }
        if self.app_id.trim().is_empty() {
            err("app_id", "must not be empty".into());
        }
        if self.plan_id.trim().is_empty() {
            err("plan_id", "must not be empty".into());
        }
        if let Some(u) = &self.consume_url
            && url::Url::parse(u).is_err()
        {
            err("consume_url", format!("{u:?} is not a URL"));
        }
        let o = &self.offline;
        for (f, v) in [
            ("offline.per_customer", &o.per_customer),
            ("offline.total", &o.total),
        ] {
            if let Err(e) = crate::core::money::Amount::parse_yuan(v) {
                err(f, e.to_string());
            }
        }
        if o.max_tries == 0 {
            err("offline.max_tries", "must be at least 1".into());
        }
        for (f, why) in self.acp.problems(sandbox) {
            p.push((f.replacen("gateways.acp", "gateways.upapi.acp", 1), why));
        }
        p
    }
}

#[derive(Debug, Error)]
pub enum UpapiError {
    #[error("could not reach the 云闪付 open platform: {0}")]
    Transport(#[from] TransportError),
    #[error("the 云闪付 open platform replied HTTP {0}")]
    Status(u16),
    #[error("the 云闪付 reply cannot be used: {0}")]
    BadReply(String),
    #[error("云闪付 refused: {resp} {msg}")]
    Refused { resp: String, msg: String },
    #[error("the request is not valid: {0}")]
    Build(String),
    #[error("the notification is not genuine: {0}")]
    BadNotice(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl UpapiError {
    /// The uplink is down (or the platform unreachable): nothing is known from it now.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, UpapiError::Transport(_) | UpapiError::Status(500..))
    }
}

/// A user's authorisation: what `token` returns for an authorization code.
#[derive(Clone, Serialize)]
pub struct UserAuth {
    #[serde(skip)]
    pub access_token: Zeroizing<String>,
    pub open_id: String,
    pub expires_in_s: u64,
    pub scope: String,
}

impl fmt::Debug for UserAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UserAuth {{ open_id: {}, scope: {}, access_token: redacted }}",
            self.open_id, self.scope
        )
    }
}

/// A signed contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contract {
    pub contract_id: String,
    pub contract_code: String,
    pub plan_id: String,
    pub open_id: String,
    pub operation_time: String,
    /// The user's mobile number (decrypted from 3DES), masked.
    pub masked_mobile: Option<String>,
}

/// `contract.info`'s `contractStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ContractStatus {
    NotSigned,
    Signed { contract_id: String },
    Terminated { contract_id: String },
    Other { code: String },
}

/// A verified cancel (解约) notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RelieveNotice {
    pub open_id: String,
    pub contract_id: String,
    pub trid: String,
    pub operate_time: String,
    /// SHA-256 of the notification's signed content: the idempotency key.
    pub digest: String,
}

/// The open-platform client.
pub struct Upapi {
    cfg: UpapiConfig,
    secret: Zeroizing<String>,
    key: SymmetricKey,
    notify_key_der: Vec<u8>,
    transport: Arc<dyn Transport>,
    clock: Clock,
    backend: TokenCache,
}

impl fmt::Debug for Upapi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Upapi {{ app_id: {}, base_url: {}, secret: redacted }}",
            self.cfg.app_id, self.cfg.base_url
        )
    }
}

/// `nonceStr`: 16 random letters and digits.
fn nonce16() -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::thread_rng();
    (0..16)
        .map(|_| A[r.gen_range(0..A.len())] as char)
        .collect()
}

fn s(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(x) => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The string UnionPay signs in a notification: non-empty fields except `signature` and
/// `symmetricKey`, sorted, `k=v` joined with `&`.
pub fn notice_string_to_sign(fields: &[(String, String)]) -> String {
    let mut v: Vec<&(String, String)> = fields
        .iter()
        .filter(|(k, val)| k != "signature" && k != "symmetricKey" && !val.is_empty())
        .collect();
    v.sort();
    v.iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join("&")
}

impl Upapi {
    /// `notify_cert`: UnionPay's notification-signing certificate (PEM or DER bytes).
    pub fn new(
        cfg: UpapiConfig,
        secret: String,
        symmetric_key_hex: &str,
        notify_cert: &[u8],
        transport: Arc<dyn Transport>,
        clock: Clock,
    ) -> Result<Upapi, UpapiError> {
        let key = SymmetricKey::from_hex(symmetric_key_hex)?;
        let cert = crate::gateway::unionpay::Certificate::from_pem_or_der(notify_cert)
            .map_err(|e| UpapiError::Build(format!("notify_cert: {e}")))?;
        let margin = (cfg.token_renew_before_s as i64).saturating_mul(1000);
        Ok(Upapi {
            notify_key_der: cert.public_key_der().to_vec(),
            cfg,
            secret: Zeroizing::new(secret),
            key,
            transport,
            clock,
            backend: TokenCache::new(margin),
        })
    }

    /// From configuration: reads the secret, the symmetric key and the notification certificate.
    pub fn from_config(cfg: &crate::config::Config, u: &UpapiConfig) -> Result<Upapi, UpapiError> {
        let secret = cfg
            .read_secret("云闪付 secret", &u.secret_file)
            .map_err(|e| UpapiError::Build(e.to_string()))?;
        let key = Zeroizing::new(
            cfg.read_secret("云闪付 symmetricKey", &u.symmetric_key_file)
                .map_err(|e| UpapiError::Build(e.to_string()))?,
        );
        let cert_path = cfg.resolve(&u.notify_cert);
        let cert = std::fs::read(&cert_path)
            .map_err(|e| UpapiError::Build(format!("notify_cert {}: {e}", cert_path.display())))?;
        let t = Timeouts {
            connect: Duration::from_millis(u.connect_timeout_ms),
            total: Duration::from_millis(u.timeout_ms),
        };
        Upapi::new(
            u.clone(),
            secret,
            &key,
            &cert,
            Arc::new(UreqTransport::new(t)),
            system_clock(),
        )
    }

    pub fn config(&self) -> &UpapiConfig {
        &self.cfg
    }

    pub fn backend_token_cache(&self) -> &TokenCache {
        &self.backend
    }

    pub fn symmetric_key(&self) -> &SymmetricKey {
        &self.key
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// POSTs one call; returns `params` when `resp` is `00`.
    fn post(&self, method: &str, mut fields: Map<String, Value>) -> Result<Value, UpapiError> {
        fields.insert("appId".into(), json!(self.cfg.app_id));
        if self.cfg.sign_calls || method == "backendToken" {
            fields.insert("nonceStr".into(), json!(nonce16()));
            fields.insert("timestamp".into(), json!((self.now() / 1000).to_string()));
            let flat: Vec<(String, String)> = fields
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|x| (k.clone(), x.to_string())))
                .collect();
            let sig = upapi_sign(
                flat.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &self.secret,
            );
            fields.insert("signature".into(), json!(sig));
        }
        let body = serde_json::to_vec(&Value::Object(fields))
            .map_err(|e| UpapiError::Build(e.to_string()))?;
        let req = HttpRequest {
            url: format!(
                "{}/open/access/1.0/{method}",
                self.cfg.base_url.trim_end_matches('/')
            ),
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
            body,
        };
        let r = self.transport.post(&req)?;
        if r.status != 200 {
            return Err(UpapiError::Status(r.status));
        }
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| UpapiError::BadReply(format!("not JSON: {e}")))?;
        match s(&v, "resp").as_deref() {
            Some("00") => Ok(v
                .get("params")
                .cloned()
                .unwrap_or(Value::Object(Map::new()))),
            Some(code) => Err(UpapiError::Refused {
                resp: code.to_string(),
                msg: s(&v, "msg").unwrap_or_default(),
            }),
            None => Err(UpapiError::BadReply("no resp".into())),
        }
    }

    fn fetch_backend_token(&self) -> Result<(String, u64), UpapiError> {
        let p = self.post("backendToken", Map::new())?;
        let t = s(&p, "backendToken")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpapiError::BadReply("no backendToken".into()))?;
        let life = s(&p, "expiresIn")
            .and_then(|x| x.parse().ok())
            .unwrap_or(7200);
        Ok((t, life))
    }

    /// The backendToken, fetched once and renewed before it expires.
    pub fn backend_token(&self) -> Result<String, UpapiError> {
        let now = self.now();
        self.backend.get(now, || self.fetch_backend_token())
    }

    /// A business call with the backendToken; an `a10` (invalid/expired token) renews the token
    /// and sends once more — the platform refused the first request without processing it.
    fn call(&self, method: &str, fields: Map<String, Value>) -> Result<Value, UpapiError> {
        for first in [true, false] {
            let mut f = fields.clone();
            f.insert("backendToken".into(), json!(self.backend_token()?));
            match self.post(method, f) {
                Err(UpapiError::Refused { resp, .. }) if resp == "a10" && first => {
                    self.backend.invalidate()
                }
                other => return other,
            }
        }
        Err(UpapiError::BadReply("backendToken refused twice".into()))
    }

    /// `token`: a user's accessToken and openId from the authorization `code` of the app.
    pub fn user_auth(&self, code: &str) -> Result<UserAuth, UpapiError> {
        if code.trim().is_empty() {
            return Err(UpapiError::Build("the authorization code is empty".into()));
        }
        let mut m = Map::new();
        m.insert("code".into(), json!(code.trim()));
        m.insert("grantType".into(), json!("authorization_code"));
        let p = self.call("token", m)?;
        Ok(UserAuth {
            access_token: Zeroizing::new(
                s(&p, "accessToken")
                    .ok_or_else(|| UpapiError::BadReply("no accessToken".into()))?,
            ),
            open_id: s(&p, "openId").ok_or_else(|| UpapiError::BadReply("no openId".into()))?,
            expires_in_s: s(&p, "expiresIn")
                .and_then(|x| x.parse().ok())
                .unwrap_or(3600),
            scope: s(&p, "scope").unwrap_or_default(),
        })
    }

    fn check_contract_code(code: &str) -> Result<(), UpapiError> {
        if code.is_empty() || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(UpapiError::Build(
                "contractCode must be 1 to 32 letters or digits".into(),
            ));
        }
        Ok(())
    }

    /// `contract.apply`: signs a contract for the user.
    pub fn contract_apply(
        &self,
        user: &UserAuth,
        contract_code: &str,
    ) -> Result<Contract, UpapiError> {
        Self::check_contract_code(contract_code)?;
        let mut m = Map::new();
        m.insert("accessToken".into(), json!(user.access_token.as_str()));
        m.insert("openId".into(), json!(user.open_id));
        m.insert("planId".into(), json!(self.cfg.plan_id));
        m.insert("contractCode".into(), json!(contract_code));
        let p = self.call("contract.apply", m)?;
        let contract_id = s(&p, "contractId")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| UpapiError::BadReply("no contractId".into()))?;
        let masked_mobile = match s(&p, "mobile") {
            Some(enc) if !enc.is_empty() => {
                Some(crate::core::authcode::mask(&self.key.decrypt(&enc)?))
            }
            _ => None,
        };
        Ok(Contract {
            contract_id,
            contract_code: s(&p, "contractCode").unwrap_or_else(|| contract_code.into()),
            plan_id: s(&p, "planId").unwrap_or_else(|| self.cfg.plan_id.clone()),
            open_id: s(&p, "openId").unwrap_or_else(|| user.open_id.clone()),
            operation_time: s(&p, "operationTime").unwrap_or_default(),
            masked_mobile,
        })
    }

    /// `contract.relieve`: the merchant cancels the contract.
    pub fn contract_relieve(
        &self,
        open_id: &str,
        contract_id: &str,
        contract_code: &str,
    ) -> Result<(), UpapiError> {
        let mut m = Map::new();
        m.insert("openId".into(), json!(open_id));
        m.insert("contractId".into(), json!(contract_id));
        m.insert("planId".into(), json!(self.cfg.plan_id));
        m.insert("contractCode".into(), json!(contract_code));
        self.call("contract.relieve", m).map(|_| ())
    }

    /// `contract.info`: the user's contract under our plan.
    pub fn contract_info(&self, open_id: &str) -> Result<ContractStatus, UpapiError> {
        let mut m = Map::new();
        m.insert("openId".into(), json!(open_id));
        m.insert("planId".into(), json!(self.cfg.plan_id));
        let p = self.call("contract.info", m)?;
        let id = s(&p, "contractId").unwrap_or_default();
        // The documented "not signed" is an empty contractStatus; a reply without the field
        // says nothing about the contract, and must not relieve it.
        let status = s(&p, "contractStatus")
            .ok_or_else(|| UpapiError::BadReply("contract.info without contractStatus".into()))?;
        Ok(match status.as_str() {
            "" => ContractStatus::NotSigned,
            "1" => ContractStatus::Signed { contract_id: id },
            "3" => ContractStatus::Terminated { contract_id: id },
            other => ContractStatus::Other { code: other.into() },
        })
    }

    /// `contract.status` (用户状态查询): how many unpaid orders the user has. Per the
    /// documentation 0 means none, another number means arrears, and a value that is not a
    /// number must not be taken as arrears.
    pub fn arrears(&self, open_id: &str) -> Result<u32, UpapiError> {
        let mut m = Map::new();
        m.insert("openId".into(), json!(open_id));
        m.insert("planId".into(), json!(self.cfg.plan_id));
        let p = self.call("contract.status", m)?;
        Ok(s(&p, "enable")
            .and_then(|e| e.trim().parse::<u32>().ok())
            .unwrap_or(0))
    }

    /// Verifies a cancel notification (the query string of UnionPay's GET). Returns the notice;
    /// answering `{"resp":"00"}` once it is recorded is the caller's job ([`notice_reply`]).
    pub fn verify_relieve_notice(&self, query: &str) -> Result<RelieveNotice, UpapiError> {
        let fields: Vec<(String, String)> =
            url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let get = |k: &str| fields.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        let sig = get("signature").ok_or_else(|| UpapiError::BadNotice("no signature".into()))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig.as_bytes())
            .map_err(|_| UpapiError::BadNotice("the signature is not Base64".into()))?;
        let text = notice_string_to_sign(&fields);
        if !verify_pkcs1(RsaHash::Sha256, &self.notify_key_der, text.as_bytes(), &sig) {
            return Err(UpapiError::BadNotice(
                "the signature does not verify".into(),
            ));
        }
        if get("appId").as_deref() != Some(self.cfg.app_id.as_str()) {
            return Err(UpapiError::BadNotice(
                "the notification is for another appId".into(),
            ));
        }
        let need = |k: &'static str| {
            get(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| UpapiError::BadNotice(format!("no {k}")))
        };
        Ok(RelieveNotice {
            open_id: need("openId")?,
            contract_id: need("contractId")?,
            trid: get("trid").unwrap_or_default(),
            operate_time: get("operateTime").unwrap_or_default(),
            digest: crate::sign::sha256::sha256_hex(text.as_bytes()),
        })
    }
}

/// The documented answer to a cancel notification that was recorded (`{"resp":"00"}`), or one
/// that makes the platform send it again.
pub fn notice_reply(recorded: bool) -> String {
    if recorded {
        json!({"resp": "00"}).to_string()
    } else {
        json!({"resp": "01", "msg": "not recorded; send again"}).to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests;
