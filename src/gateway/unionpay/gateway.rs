//! The UnionPay ACP channel as a [`Gateway`]: QR consume (merchant scans the customer), status
//! query, consume undo / reversal, refunds, back notifications — plus the pre-authorisation
//! family, the encryption-certificate update (95) and the reconciliation download (76) as library
//! calls.
//!
//! Every reply is believed only after [`verify_report`] passes and it echoes our merchant and
//! order; anything else is an unknown outcome carrying the failing step. Follow-up transactions
//! (undo, refund) need their own `orderId` *and* the exact `txnTime` sent to be queried later, and
//! the [`Gateway`] trait passes only the refund number: this module therefore writes each
//! follow-up's identity to a small append-only file (fsynced) *before* sending it, the way the
//! journal records attempts. It never writes the journal and never decides what the engine does
//! next.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::cert::{Certificate, MerchantKey};
use super::message::Signer;
use super::recon::{ReconError, ZmRecord, zm_records_from_file_content};
use super::sensitive::{CertUpdate, EncryptionCert, encrypt_cert_update};
use super::txn::{
    AcpRequest, AcpTxn, CONTENT_TYPE, Endpoint, Merchant, OrigRef, Refused, TxnKind, TxnTime,
    Verdict, classify_codes, classify_notification, classify_reply, refund_allowed,
    reversal_allowed, undo_allowed,
};
use super::verify::{
    OwnerRule, TrustConfig, VerifiedMessage, VerifyReport, verify_notification_report,
    verify_report,
};
use crate::core::authcode::Wallet;
use crate::core::machine::{Reply, ReverseAction};
use crate::core::money::Amount;
use crate::core::policy::Policy;
use crate::gateway::transport::{HttpRequest, Timeouts, Transport, UreqTransport};
use crate::gateway::{
    AttemptRef, Credential, Gateway, GatewayReply, Notice, RefundOutcome, RefundRef,
};
use crate::sign::sm3::SecureKeyHash;

/// Which owner (CN) rule replies must satisfy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerMode {
    /// `中国银联股份有限公司` in the CN and the CFCA enterprise OU (`ifValidateCNName=true`).
    #[default]
    Production,
    /// Also accept the test environment's `00040000:SIGN` (test configurations only).
    Test,
}

/// `[gateways.acp]`: everything the ACP channel needs. Key material is named by path (resolved
/// against the configuration's folder) or `credential:NAME`, never written inline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcpConfig {
    /// Gateway host, e.g. `https://gateway.95516.com`; `/gateway/api/*.do` is appended.
    pub base_url: String,
    /// File-download host root, e.g. `https://filedownload.95516.com/`.
    #[serde(default = "default_file_url")]
    pub file_url: String,
    /// `merId`, 15 characters.
    pub mer_id: String,
    /// `termId` (8 characters) of this till.
    #[serde(default)]
    pub term_id: Option<String>,
    /// `accessType`: 0 merchant direct, 1 acquirer, 2 platform merchant.
    #[serde(default = "default_access_type")]
    pub access_type: String,
    /// `acqInsCode`, for acquirer access only.
    #[serde(default)]
    pub acq_ins_code: Option<String>,
    /// The merchant's signing key: a PKCS#12 file as UnionPay issues it. Required with
    /// `sign_method` 01; with 11/12 the secure key signs and nothing else needs it (sensitive
    /// fields are encrypted with UnionPay's `encrypt_cert`, replies verified with its chain).
    #[serde(default)]
    pub sign_pfx: Option<String>,
    /// A file holding the PKCS#12 password; required with `sign_pfx`.
    #[serde(default)]
    pub sign_password_file: Option<String>,
    /// UnionPay's sensitive-information encryption certificate (updated in place by 95).
    pub encrypt_cert: String,
    /// The UnionPay intermediate (`acp_*_middle.cer`) and root (`acp_*_root.cer`).
    pub middle_cert: String,
    pub root_cert: String,
    #[serde(default)]
    pub owner: OwnerMode,
    /// `version`; only 5.1.0 (SHA-256, certificate carried in each reply) is supported.
    #[serde(default = "default_version")]
    pub version: String,
    /// `signMethod`: 01 (certificate, needs `sign_pfx`), or 11/12 (secure key, needs
    /// `secure_key_file`).
    #[serde(default = "default_sign_method")]
    pub sign_method: String,
    #[serde(default)]
    pub secure_key_file: Option<String>,
    /// `backUrl`: where UnionPay posts back notifications.
    pub back_url: String,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_total_ms")]
    pub timeout_ms: u64,
    /// Status queries that confirm an accepted undo/refund/pre-auth within the same call.
    #[serde(default = "default_confirm")]
    pub confirm_delays_ms: Vec<u64>,
    /// No longer used, and kept only so that existing configurations still load. It once made a
    /// follow-up that status queries could not find (34) this long after it was sent count as
    /// "never arrived" and be sent again under a new txnTime — a second refund on a later
    /// clearing day if the first had arrived after all. 34 proves nothing (PROTOCOLS.md §B.3):
    /// such a follow-up now stays unknown and is asked about until a person settles it.
    #[serde(default = "default_lost_after")]
    pub lost_after_ms: u64,
    /// Where follow-up identities are recorded; default: `acp-followups.jsonl` beside the
    /// journal.
    #[serde(default)]
    pub state_file: Option<String>,
    /// The channel's rules; the defaults are ACP's.
    #[serde(default = "Policy::acp")]
    pub policy: Policy,
}

fn default_file_url() -> String {
    "https://filedownload.95516.com/".into()
}
fn default_access_type() -> String {
    "0".into()
}
fn default_version() -> String {
    "5.1.0".into()
}
fn default_sign_method() -> String {
    "01".into()
}
fn default_connect_ms() -> u64 {
    5_000
}
fn default_total_ms() -> u64 {
    30_000
}
fn default_confirm() -> Vec<u64> {
    vec![1_000, 2_000, 4_000]
}
fn default_lost_after() -> u64 {
    120_000
}

impl AcpConfig {
    /// Every mistake in these settings, as (field, explanation); `sandbox` relaxes https.
    pub fn problems(&self, sandbox: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut err = |f: &str, m: String| p.push((format!("gateways.acp.{f}"), m));
        for (f, u) in [("base_url", &self.base_url), ("file_url", &self.file_url)] {
            match url::Url::parse(u) {
                Err(_) => err(f, format!("{u:?} is not a URL")),
                Ok(x) if x.scheme() != "https" && !sandbox => err(
                    f,
                    "must use https outside a sandbox configuration".to_string(),
                ),
                Ok(_) => {}
            }
        }
        if url::Url::parse(&self.back_url).is_err() {
            err("back_url", format!("{:?} is not a URL", self.back_url));
        }
        if self.mer_id.len() != 15 || !self.mer_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            err("mer_id", "must be the 15-character merId".to_string());
        }
        if let Some(t) = &self.term_id
            && (t.len() != 8 || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            err("term_id", "must be 8 printable characters".to_string());
        }
        if !matches!(self.access_type.as_str(), "0" | "1" | "2") {
            err("access_type", "must be 0, 1 or 2".to_string());
        }
        if self.access_type == "1" && self.acq_ins_code.is_none() {
            err(
                "acq_ins_code",
                "is required with access_type 1 (acquirer)".to_string(),
            );
        }
        if self.version != "5.1.0" {
            err("version", "only 5.1.0 is supported".to_string());
        }
        match self.sign_method.as_str() {
            "01" => {}
            "11" | "12" if self.secure_key_file.is_some() => {}
            "11" | "12" => err(
                "secure_key_file",
                "sign_method 11/12 needs the secure key".to_string(),
            ),
            m => err("sign_method", format!("{m:?} is not 01, 11 or 12")),
        }
        if self.sign_method == "01" && self.sign_pfx.is_none() {
            err(
                "sign_pfx",
                "is required with sign_method 01 (the default): every request is signed with the merchant's certificate; set sign_pfx to the PKCS#12 file UnionPay issued and sign_password_file to its password, or use sign_method 11/12 with secure_key_file".to_string(),
            );
        }
        if self.sign_pfx.is_some() && self.sign_password_file.is_none() {
            err(
                "sign_password_file",
                "is required with sign_pfx (the file holding the PKCS#12 password)".to_string(),
            );
        }
        if self.owner == OwnerMode::Test && !sandbox {
            err(
                "owner",
                "\"test\" accepts UnionPay's test certificates; use it only in test configurations (terminal.sandbox = true)".to_string(),
            );
        }
        if self.confirm_delays_ms.len() > 10 {
            err(
                "confirm_delays_ms",
                "at most 10 confirmation queries".into(),
            );
        }
        for q in self.policy.problems() {
            err("policy", q);
        }
        p
    }
}

/// Why the ACP gateway could not be built or a library call failed.
#[derive(Debug, thiserror::Error)]
pub enum AcpError {
    #[error("{what}: {why}")]
    Load { what: String, why: String },
    #[error("the request could not be built: {0}")]
    Build(String),
    #[error("no trustworthy reply: {0}")]
    Unknown(String),
    #[error("UnionPay refused: {code} {message}")]
    Refused { code: String, message: String },
    #[error("the reply is missing {0}")]
    Missing(&'static str),
    #[error("reconciliation file: {0}")]
    Recon(#[from] ReconError),
    #[error("{0}")]
    Io(String),
}

/// The loaded keys and certificates.
pub struct AcpKeys {
    /// The merchant's certificate key (signMethod 01); `None` when the secure key signs.
    pub key: Option<MerchantKey>,
    pub secure_key: Option<Zeroizing<Vec<u8>>>,
    pub trust: TrustConfig,
    pub encrypt_cert: EncryptionCert,
    /// Where the encryption certificate lives, for the 95 update; `None`: memory only.
    pub encrypt_cert_path: Option<PathBuf>,
}

impl fmt::Debug for AcpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AcpKeys {{ certId: {}, encryptCertId: {}, key: redacted }}",
            self.key.as_ref().map_or("none", |k| k.cert_id()),
            self.encrypt_cert.cert_id()
        )
    }
}

fn secret_path(cfg: &crate::config::Config, spec: &str) -> PathBuf {
    match spec.strip_prefix("credential:") {
        Some(name) => PathBuf::from(
            std::env::var("CREDENTIALS_DIRECTORY")
                .unwrap_or_else(|_| "/run/credentials/payterm.service".into()),
        )
        .join(name),
        None => cfg.resolve(spec),
    }
}

fn load_cert(path: &Path, what: &str) -> Result<Certificate, AcpError> {
    Certificate::load(path).map_err(|e| AcpError::Load {
        what: format!("{what} {}", path.display()),
        why: e.to_string(),
    })
}

impl AcpKeys {
    /// Reads the key, password and certificates named by `acp` (paths resolved by `cfg`).
    pub fn load(cfg: &crate::config::Config, acp: &AcpConfig) -> Result<AcpKeys, AcpError> {
        let key = match &acp.sign_pfx {
            Some(pfx) => Some(load_merchant_key(
                cfg,
                pfx,
                acp.sign_password_file.as_deref(),
            )?),
            None => None,
        };
        let secure_key = match &acp.secure_key_file {
            Some(f) => Some(Zeroizing::new(
                cfg.read_secret("ACP secure key", f)
                    .map_err(|e| AcpError::Load {
                        what: "gateways.acp.secure_key_file".into(),
                        why: e.to_string(),
                    })?
                    .into_bytes(),
            )),
            None => None,
        };
        let secure_signs = matches!(acp.sign_method.as_str(), "11" | "12") && secure_key.is_some();
        if key.is_none() && !secure_signs {
            return Err(AcpError::Load {
                what: "gateways.acp.sign_pfx".into(),
                why: format!(
                    "is required with sign_method {}: nothing else can sign the requests",
                    acp.sign_method
                ),
            });
        }
        let middle = load_cert(&cfg.resolve(&acp.middle_cert), "the middle certificate")?;
        let root = load_cert(&cfg.resolve(&acp.root_cert), "the root certificate")?;
        let mut trust = match acp.owner {
            OwnerMode::Production => TrustConfig::production(middle, root),
            OwnerMode::Test => TrustConfig::test(middle, root),
        };
        trust.secure_key = secure_key.clone();
        let enc_path = cfg.resolve(&acp.encrypt_cert);
        let encrypt_cert = EncryptionCert::new(load_cert(&enc_path, "the encryption certificate")?);
        Ok(AcpKeys {
            key,
            secure_key,
            trust,
            encrypt_cert,
            encrypt_cert_path: Some(enc_path),
        })
    }
}

impl AcpKeys {
    /// The merchant's certificate key, for what must be signed with signMethod 01 whatever
    /// `sign_method` says (the 云闪付 contract debits).
    pub fn cert_key(&self) -> Result<&MerchantKey, AcpError> {
        self.key.as_ref().ok_or_else(|| AcpError::Load {
            what: "sign_pfx".into(),
            why: "the merchant's certificate key is not configured, and signMethod 01 needs it"
                .into(),
        })
    }
}

/// The merchant's PKCS#12 key and its password (`password_file`, required with it).
fn load_merchant_key(
    cfg: &crate::config::Config,
    pfx: &str,
    password_file: Option<&str>,
) -> Result<MerchantKey, AcpError> {
    let password_file = password_file.ok_or_else(|| AcpError::Load {
        what: "gateways.acp.sign_password_file".into(),
        why: "is required with sign_pfx".into(),
    })?;
    let password = cfg
        .read_secret("ACP signing key password", password_file)
        .map(Zeroizing::new)
        .map_err(|e| AcpError::Load {
            what: "gateways.acp.sign_password_file".into(),
            why: e.to_string(),
        })?;
    let pfx = secret_path(cfg, pfx);
    MerchantKey::load_pkcs12(&pfx, &password).map_err(|e| AcpError::Load {
        what: format!("the signing key {}", pfx.display()),
        why: e.to_string(),
    })
}

/// The state of a recorded follow-up transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpState {
    /// Written before sending: it may or may not have arrived.
    Sent,
    /// Confirmed by a verified reply or status query.
    Done,
    /// A signed reply or status query said it failed: it did not and will not take effect.
    /// Never set for a follow-up UnionPay merely cannot find (34) or answered "busy".
    Failed,
}

/// One follow-up transaction's identity, as recorded before it was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// `undo:<out_trade_no>` or `refund:<out_refund_no>`.
    pub key: String,
    pub order_id: String,
    pub txn_time: String,
    pub state: FollowUpState,
    /// When it was recorded (Unix ms).
    pub at_ms: i64,
    #[serde(default)]
    pub query_id: Option<String>,
    #[serde(default)]
    pub note: String,
}

impl FollowUp {
    /// The record written before a follow-up is sent.
    fn sent(key: String, order_id: &str, txn_time: TxnTime, now_ms: i64) -> FollowUp {
        FollowUp {
            key,
            order_id: order_id.to_string(),
            txn_time: txn_time.to_string(),
            state: FollowUpState::Sent,
            at_ms: now_ms,
            query_id: None,
            note: String::new(),
        }
    }

    /// What a status query of it said: done (with UnionPay's `queryId`) or failed (with the
    /// code); an unknown verdict changes nothing (the callers differ on what it means).
    fn learn(&mut self, v: &Verdict, m: Option<&VerifiedMessage>) {
        match v {
            Verdict::Done => {
                self.state = FollowUpState::Done;
                self.query_id = m.and_then(|m| m.get("queryId")).map(str::to_string);
            }
            Verdict::Failed { code, message } => {
                self.state = FollowUpState::Failed;
                self.note = format!("{code} {message}");
            }
            Verdict::Unknown { .. } => {}
        }
    }
}

/// Append-only record of follow-ups: the latest line for a `(key, order_id)` wins.
struct FollowUps {
    path: Option<PathBuf>,
    mem: Mutex<Vec<FollowUp>>,
}

impl FollowUps {
    fn open(path: Option<PathBuf>) -> Result<FollowUps, AcpError> {
        let mut v = Vec::new();
        if let Some(p) = &path {
            match std::fs::read_to_string(p) {
                Ok(text) => {
                    for (i, line) in text.lines().enumerate() {
                        if line.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<FollowUp>(line) {
                            Ok(f) => v.push(f),
                            // A torn last line (power loss mid-write) is the only expected damage.
                            Err(e) => tracing::warn!(
                                "{}:{}: unreadable follow-up record ignored: {e}",
                                p.display(),
                                i + 1
                            ),
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(AcpError::Io(format!("cannot read {}: {e}", p.display())));
                }
            }
        }
        Ok(FollowUps {
            path,
            mem: Mutex::new(v),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FollowUp>> {
        match self.mem.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Durably records `f` (fsync) before anything is sent on its behalf.
    fn put(&self, f: FollowUp) -> Result<(), AcpError> {
        let mut mem = self.lock();
        if let Some(p) = &self.path {
            let line = serde_json::to_string(&f).map_err(|e| AcpError::Io(e.to_string()))?;
            let write = || -> std::io::Result<()> {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)?;
                file.write_all(format!("{line}\n").as_bytes())?;
                file.sync_all()
            };
            write().map_err(|e| AcpError::Io(format!("cannot record in {}: {e}", p.display())))?;
        }
        mem.retain(|x| !(x.key == f.key && x.order_id == f.order_id));
        mem.push(f);
        Ok(())
    }

    /// Every follow-up under `key`, oldest first.
    fn all(&self, key: &str) -> Vec<FollowUp> {
        self.lock()
            .iter()
            .filter(|f| f.key == key)
            .cloned()
            .collect()
    }

    fn latest(&self, key: &str) -> Option<FollowUp> {
        self.all(key).pop()
    }
}

/// The result of a pre-authorisation-family call: the identity to keep and what is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResult {
    pub order_id: String,
    pub txn_time: TxnTime,
    /// UnionPay's `queryId` of this transaction, once known.
    pub query_id: Option<String>,
    pub verdict: Verdict,
    pub detail: String,
}

/// What the 95 update did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertUpdateOutcome {
    Unchanged {
        cert_id: String,
    },
    Replaced {
        old_cert_id: String,
        new_cert_id: String,
        /// Where the new certificate was written (the configured path), if anywhere.
        path: Option<PathBuf>,
        /// The previous certificate, kept while it is still valid.
        previous: Option<PathBuf>,
    },
}

/// A downloaded reconciliation file.
#[derive(Clone, Debug)]
pub struct ReconFile {
    pub file_name: Option<String>,
    pub settle_date: String,
    /// Every ZM entry of the archive, with its records.
    pub entries: Vec<(String, Vec<ZmRecord>)>,
}

impl ReconFile {
    pub fn records(&self) -> impl Iterator<Item = &ZmRecord> {
        self.entries.iter().flat_map(|(_, r)| r.iter())
    }
}

/// The clock the gateway reads (Unix ms); tests pass a fixed one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub struct AcpGateway {
    cfg: AcpConfig,
    merchant: Merchant,
    keys: AcpKeys,
    encrypt_cert: RwLock<EncryptionCert>,
    transport: Arc<dyn Transport>,
    store: FollowUps,
    clock: Clock,
}

impl fmt::Debug for AcpGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AcpGateway {{ merId: {}, base_url: {}, keys: {:?} }}",
            self.cfg.mer_id, self.cfg.base_url, self.keys
        )
    }
}

fn beijing_stamp(ms: i64) -> String {
    crate::util::beijing_stamp(ms)
}

fn unknown(why: impl Into<String>) -> GatewayReply {
    let why = why.into();
    GatewayReply::new(Reply::unknown(why.clone()), why)
}

fn resp_detail(m: &VerifiedMessage) -> String {
    let mut s = format!(
        "respCode {} {}",
        m.get("respCode").unwrap_or("-"),
        m.get("respMsg").unwrap_or("")
    );
    if let Some(o) = m.get("origRespCode") {
        s.push_str(&format!(
            "; origRespCode {o} {}",
            m.get("origRespMsg").unwrap_or("")
        ));
    }
    s
}

/// The engine's reply to a verified consume reply or status query of it: `done` says what a
/// done verdict means there; UnionPay's `queryId` is kept as the channel's trade number.
fn consume_reply(v: Verdict, m: &VerifiedMessage, done: impl FnOnce() -> Reply) -> GatewayReply {
    let reply = match v {
        Verdict::Done => done(),
        Verdict::Failed { code, message } => Reply::Failed {
            code,
            reason: message,
        },
        Verdict::Unknown { reason } => Reply::unknown(reason),
    };
    let mut g = GatewayReply::new(reply, resp_detail(m));
    g.chan_trade_no = m.get("queryId").map(str::to_string);
    g
}

/// A library call's verdict as its result: only done goes on.
fn require_done(v: Verdict) -> Result<(), AcpError> {
    match v {
        Verdict::Done => Ok(()),
        Verdict::Failed { code, message } => Err(AcpError::Refused { code, message }),
        Verdict::Unknown { reason } => Err(AcpError::Unknown(reason)),
    }
}

/// Why a reply or notification is not believed: the failing step.
fn unverified(r: &VerifyReport, what: &str) -> String {
    match r.failure() {
        Some((step, why)) => format!("{what} at step {}: {why}", step.name()),
        None => what.to_string(),
    }
}

impl AcpGateway {
    /// Builds the gateway from configuration: keys, trust, HTTP transport and follow-up file.
    pub fn from_config(
        cfg: &crate::config::Config,
        acp: &AcpConfig,
    ) -> Result<AcpGateway, AcpError> {
        let keys = AcpKeys::load(cfg, acp)?;
        let t = Timeouts {
            connect: Duration::from_millis(acp.connect_timeout_ms),
            total: Duration::from_millis(acp.timeout_ms),
        };
        let state = match &acp.state_file {
            Some(s) => cfg.resolve(s),
            None => cfg.journal_path().with_file_name("acp-followups.jsonl"),
        };
        AcpGateway::new(
            acp.clone(),
            keys,
            Arc::new(UreqTransport::new(t)),
            Some(state),
        )
    }

    /// Builds the gateway from loaded parts; `state_file: None` keeps follow-ups in memory.
    pub fn new(
        cfg: AcpConfig,
        keys: AcpKeys,
        transport: Arc<dyn Transport>,
        state_file: Option<PathBuf>,
    ) -> Result<AcpGateway, AcpError> {
        let merchant = Merchant {
            mer_id: cfg.mer_id.clone(),
            back_url: cfg.back_url.clone(),
            access_type: cfg.access_type.clone(),
            acq_ins_code: cfg.acq_ins_code.clone(),
            term_id: cfg.term_id.clone(),
        };
        let store = FollowUps::open(state_file)?;
        Ok(AcpGateway {
            encrypt_cert: RwLock::new(keys.encrypt_cert.clone()),
            cfg,
            merchant,
            keys,
            transport,
            store,
            clock: Arc::new(crate::util::now_ms),
        })
    }

    /// Replaces the clock (tests of the time windows).
    pub fn with_clock(mut self, clock: Clock) -> AcpGateway {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &AcpConfig {
        &self.cfg
    }

    pub fn trust(&self) -> &TrustConfig {
        &self.keys.trust
    }

    /// The encryption certificate in use (after any 95 update).
    pub fn encrypt_cert(&self) -> EncryptionCert {
        match self.encrypt_cert.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The clock as certificate validity checks want it.
    fn now_system(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms().max(0) as u64)
    }

    /// Records a follow-up's new state; a failure to write is logged, not fatal (the state is
    /// asked of UnionPay again).
    fn keep(&self, f: FollowUp) {
        if let Err(e) = self.store.put(f) {
            tracing::warn!("{e}");
        }
    }

    fn now_txn_time(&self) -> TxnTime {
        let now = self.now_ms();
        TxnTime::from_unix_ms(now)
            .or_else(|| TxnTime::parse(&beijing_stamp(now)))
            .unwrap_or_else(|| {
                // Only reachable with a clock outside chrono's range.
                TxnTime::parse("20000101000000").unwrap_or_else(|| unreachable!())
            })
    }

    /// How requests are signed: the secure key with signMethod 11/12, else the certificate.
    fn signer(&self) -> Result<Signer<'_>, String> {
        match (self.cfg.sign_method.as_str(), &self.keys.secure_key) {
            ("11", Some(k)) => Ok(Signer::SecureKey {
                hash: SecureKeyHash::Sha256,
                key: k,
            }),
            ("12", Some(k)) => Ok(Signer::SecureKey {
                hash: SecureKeyHash::Sm3,
                key: k,
            }),
            _ => self
                .keys
                .cert_key()
                .map(Signer::Cert)
                .map_err(|e| e.to_string()),
        }
    }

    fn url(&self, e: Endpoint) -> String {
        if e.on_file_host() {
            self.cfg.file_url.clone()
        } else {
            format!("{}{}", self.cfg.base_url.trim_end_matches('/'), e.path())
        }
    }

    /// Signs and sends `req`, returning the reply only once it verifies and echoes our merchant
    /// (and order, when `order_id` is given). `Err` says why nothing can be believed.
    fn exchange(&self, req: AcpRequest, order_id: Option<&str>) -> Result<VerifiedMessage, String> {
        let signer = self.signer().map_err(|e| format!("cannot sign: {e}"))?;
        let signed = req
            .sign(signer, &mut rand::thread_rng())
            .map_err(|e| format!("cannot sign: {e}"))?;
        let http = HttpRequest {
            url: self.url(signed.endpoint),
            content_type: CONTENT_TYPE,
            headers: vec![],
            body: signed.body.into_bytes(),
        };
        let resp = self.transport.post(&http).map_err(|e| e.to_string())?;
        if resp.status != 200 {
            return Err(format!("UnionPay replied HTTP {}", resp.status));
        }
        let text =
            String::from_utf8(resp.body).map_err(|_| "the reply is not UTF-8 text".to_string())?;
        let report = verify_report(&text, &self.keys.trust, self.now_system());
        let m = report
            .into_verified()
            .map_err(|r| unverified(&r, "reply not verified"))?;
        if let Some(mer) = m.get("merId")
            && mer != self.cfg.mer_id
        {
            return Err(format!("the reply is for merchant {mer}, not ours"));
        }
        if let (Some(want), Some(got)) = (order_id, m.get("orderId"))
            && want != got
        {
            return Err(format!("the reply is for order {got}, not {want}"));
        }
        Ok(m)
    }

    /// Status query (00) of any transaction of ours: the verdict and the verified reply.
    pub fn status(&self, order_id: &str, txn_time: TxnTime) -> (Verdict, Option<VerifiedMessage>) {
        let req = match AcpTxn::Query.build(&self.merchant, order_id, txn_time) {
            Ok(r) => r,
            Err(e) => {
                return (
                    Verdict::Unknown {
                        reason: format!("cannot build the query: {e}"),
                    },
                    None,
                );
            }
        };
        match self.exchange(req, Some(order_id)) {
            Ok(m) => (classify_reply(TxnKind::Query, &m), Some(m)),
            Err(why) => (Verdict::Unknown { reason: why }, None),
        }
    }

    /// Queries an accepted follow-up on the confirmation schedule until its result is known.
    fn confirm(&self, order_id: &str, txn_time: TxnTime) -> (Verdict, Option<VerifiedMessage>) {
        let mut last = (
            Verdict::Unknown {
                reason: "accepted; not yet confirmed".into(),
            },
            None,
        );
        for d in &self.cfg.confirm_delays_ms {
            std::thread::sleep(Duration::from_millis(*d));
            last = self.status(order_id, txn_time);
            if !matches!(last.0, Verdict::Unknown { .. }) {
                break;
            }
        }
        last
    }

    /// Sends a money-moving transaction now and confirms it by status queries.
    fn money_txn(&self, txn: AcpTxn, order_id: &str) -> TxnResult {
        let tt = self.now_txn_time();
        let kind = txn.kind();
        let mut result = TxnResult {
            order_id: order_id.to_string(),
            txn_time: tt,
            query_id: None,
            verdict: Verdict::Unknown {
                reason: String::new(),
            },
            detail: String::new(),
        };
        let req = match txn.build(&self.merchant, order_id, tt) {
            Ok(r) => r,
            Err(e) => {
                result.verdict = Verdict::Failed {
                    code: "build".into(),
                    message: e.to_string(),
                };
                result.detail = format!("not sent: {e}");
                return result;
            }
        };
        match self.exchange(req, Some(order_id)) {
            Err(why) => {
                result.detail = why.clone();
                result.verdict = Verdict::Unknown { reason: why };
            }
            Ok(m) => {
                result.detail = resp_detail(&m);
                result.query_id = m.get("queryId").map(str::to_string);
                let code = m.get("respCode").unwrap_or("");
                result.verdict = if matches!(code, "00" | "A6") {
                    let (v, q) = self.confirm(order_id, tt);
                    if let Some(q) = &q {
                        result.detail = format!("{}; confirmed: {}", result.detail, resp_detail(q));
                        if let Some(id) = q.get("queryId") {
                            result.query_id = Some(id.to_string());
                        }
                    }
                    v
                } else {
                    classify_reply(kind, &m)
                };
            }
        }
        result
    }

    /// QR pre-authorisation where the merchant scans the customer's code (02/04).
    pub fn preauth(&self, order_id: &str, amount: Amount, qr_no: &str) -> TxnResult {
        self.money_txn(
            AcpTxn::QrPreAuth {
                amount,
                qr_no: qr_no.to_string(),
            },
            order_id,
        )
    }

    /// Pre-authorisation undo (32), full amount.
    pub fn preauth_undo(&self, order_id: &str, orig: OrigRef, amount: Amount) -> TxnResult {
        self.money_txn(AcpTxn::PreAuthUndo { orig, amount }, order_id)
    }

    /// Pre-authorisation completion (03).
    pub fn preauth_complete(&self, order_id: &str, orig: OrigRef, amount: Amount) -> TxnResult {
        self.money_txn(AcpTxn::PreAuthComplete { orig, amount }, order_id)
    }

    /// Pre-authorisation completion undo (33), full amount of the completion.
    pub fn preauth_complete_undo(
        &self,
        order_id: &str,
        orig: OrigRef,
        amount: Amount,
    ) -> TxnResult {
        self.money_txn(AcpTxn::PreAuthCompleteUndo { orig, amount }, order_id)
    }

    /// Encryption-certificate update query (95): asks, verifies the reply and the new
    /// certificate's chain, and when it changed writes it atomically over the configured file,
    /// keeping the previous one beside it (`.previous`) while it is still valid.
    pub fn update_encryption_cert(&self) -> Result<CertUpdateOutcome, AcpError> {
        let tt = self.now_txn_time();
        let order_id = format!("CERT{tt}");
        let req = AcpTxn::EncryptCertUpdate
            .build(&self.merchant, &order_id, tt)
            .map_err(|e| AcpError::Build(e.to_string()))?;
        let m = self
            .exchange(req, Some(&order_id))
            .map_err(AcpError::Unknown)?;
        require_done(classify_reply(TxnKind::EncryptCertUpdate, &m))?;
        let current = self.encrypt_cert();
        let old_id = current.cert_id();
        let update = encrypt_cert_update(&m, &old_id, &self.keys.trust.middle)
            .map_err(|e| AcpError::Unknown(e.to_string()))?;
        let new = match update {
            CertUpdate::Unchanged => return Ok(CertUpdateOutcome::Unchanged { cert_id: old_id }),
            CertUpdate::Replace(c) => *c,
        };
        let now = self.now_system();
        new.certificate()
            .check_validity(now)
            .map_err(|e| AcpError::Unknown(format!("the new encryption certificate {e}")))?;
        let mut previous = None;
        if let Some(path) = &self.keys.encrypt_cert_path {
            let prev_path = sibling(path, "previous");
            if current.certificate().check_validity(now).is_ok() {
                write_atomic(&prev_path, &pem(current.certificate().der()))?;
                previous = Some(prev_path);
            } else if prev_path.exists() {
                // Expired: no longer needed for anything in flight.
                let _ = std::fs::remove_file(&prev_path);
            }
            write_atomic(path, &pem(new.certificate().der()))?;
        }
        let new_id = new.cert_id();
        match self.encrypt_cert.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
        Ok(CertUpdateOutcome::Replaced {
            old_cert_id: old_id,
            new_cert_id: new_id,
            path: self.keys.encrypt_cert_path.clone(),
            previous,
        })
    }

    /// Downloads the reconciliation file (76) of a clearing date and parses its ZM records.
    pub fn download_recon(&self, settle_date: chrono::NaiveDate) -> Result<ReconFile, AcpError> {
        let tt = self.now_txn_time();
        let mmdd = settle_date.format("%m%d").to_string();
        let order_id = format!("FILE{tt}");
        let mut req = AcpTxn::FileTransfer {
            settle_date: mmdd.clone(),
        }
        .build(&self.merchant, &order_id, tt)
        .map_err(|e| AcpError::Build(e.to_string()))?;
        // 76 defines no orderId field; UnionPay refuses undefined fields.
        req.fields.remove("orderId");
        let m = self.exchange(req, None).map_err(AcpError::Unknown)?;
        require_done(classify_reply(TxnKind::FileTransfer, &m))?;
        let content = m
            .get("fileContent")
            .ok_or(AcpError::Missing("fileContent"))?;
        Ok(ReconFile {
            file_name: m.get("fileName").map(str::to_string),
            settle_date: mmdd,
            entries: zm_records_from_file_content(content)?,
        })
    }

    fn undo_key(a: &AttemptRef) -> String {
        format!("undo:{}", a.out_trade_no)
    }

    fn refund_key(no: &str) -> String {
        format!("refund:{no}")
    }

    /// What a stored follow-up came to, asking UnionPay (by its own orderId and txnTime) when it
    /// is not known yet. Only a verified query decides: "not found" (34), however long after it
    /// was sent, leaves it unknown, since a request that arrived late, or a query that cannot see
    /// it yet, looks the same as one that never arrived.
    fn settle_follow_up(&self, f: &FollowUp) -> (FollowUp, Option<VerifiedMessage>) {
        let mut f = f.clone();
        if f.state != FollowUpState::Sent {
            return (f, None);
        }
        let Some(tt) = TxnTime::parse(&f.txn_time) else {
            // Our own record is damaged: UnionPay cannot be asked, so a person decides.
            f.note = format!(
                "unreadable txnTime {:?} in the record; check {} with UnionPay",
                f.txn_time, f.order_id
            );
            return (f, None);
        };
        let (v, m) = self.status(&f.order_id, tt);
        f.learn(&v, m.as_ref());
        match v {
            Verdict::Done => f.note = m.as_ref().map(resp_detail).unwrap_or_default(),
            Verdict::Failed { .. } => {}
            Verdict::Unknown { reason } => f.note = reason,
        }
        if f.state != FollowUpState::Sent {
            self.keep(f.clone());
        }
        (f, m)
    }

    fn undo(
        &self,
        a: &AttemptRef,
        orig_tt: TxnTime,
        orig_query_id: Option<String>,
    ) -> GatewayReply {
        let now = self.now_ms();
        if let Err(r) = undo_allowed(&original(orig_tt, a.amount), a.amount, now) {
            return refused_locally(r);
        }
        let key = Self::undo_key(a);
        let seq = self.store.all(&key).len() + 1;
        let order_id = follow_up_order_id(&a.out_trade_no, 'U', seq);
        let tt = self.now_txn_time();
        let rec = FollowUp::sent(key, &order_id, tt, now);
        let req = match (AcpTxn::ConsumeUndo {
            orig: orig_ref(a, orig_tt, orig_query_id),
            amount: a.amount,
        })
        .build(&self.merchant, &order_id, tt)
        {
            Ok(r) => r,
            Err(e) => {
                return GatewayReply::new(
                    Reply::Refused {
                        why: format!("cannot build the undo: {e}"),
                    },
                    "undo not sent",
                );
            }
        };
        if let Err(e) = self.store.put(rec.clone()) {
            return GatewayReply::new(Reply::RetryLater { why: e.to_string() }, "undo not sent");
        }
        let m = match self.exchange(req, Some(&order_id)) {
            Ok(m) => m,
            Err(why) => return unknown(format!("undo {order_id}: {why}")),
        };
        let detail = format!("undo {order_id}: {}", resp_detail(&m));
        let code = m.get("respCode").unwrap_or("").to_string();
        let mark = |state: FollowUpState, note: &str| {
            let mut r = rec.clone();
            r.state = state;
            r.note = note.to_string();
            r.query_id = m.get("queryId").map(str::to_string);
            self.keep(r);
        };
        match code.as_str() {
            "00" | "A6" => {
                let (f, q) = self.settle_after_accept(&rec, tt);
                let detail = match &q {
                    Some(q) => format!("{detail}; confirmed: {}", resp_detail(q)),
                    None => detail,
                };
                match f.state {
                    FollowUpState::Done => {
                        GatewayReply::new(Reply::Reversed(ReverseAction::Refund), detail)
                    }
                    FollowUpState::Failed => GatewayReply::new(
                        Reply::Refused {
                            why: format!("the undo failed: {}", f.note),
                        },
                        detail,
                    ),
                    FollowUpState::Sent => GatewayReply::new(
                        Reply::RetryLater {
                            why: "undo accepted, result not known yet".into(),
                        },
                        detail,
                    ),
                }
            }
            // A signed "busy": not processed; a new undo may be sent.
            "06" => {
                mark(FollowUpState::Failed, "busy");
                GatewayReply::new(
                    Reply::RetryLater {
                        why: "UnionPay is busy (06)".into(),
                    },
                    detail,
                )
            }
            "39" => {
                mark(FollowUpState::Failed, "outside the undo window");
                GatewayReply::new(Reply::WindowClosed, detail)
            }
            // No code is no answer: the undo may have been processed; its query decides.
            "" | "03" | "04" | "05" | "12" => GatewayReply::new(
                Reply::RetryLater {
                    why: format!("undo result not known ({})", or_none(&code)),
                },
                detail,
            ),
            _ => {
                mark(FollowUpState::Failed, &detail);
                GatewayReply::new(
                    Reply::Refused {
                        why: format!("undo refused: {code} {}", m.get("respMsg").unwrap_or("")),
                    },
                    detail,
                )
            }
        }
    }

    /// After a synchronous "accepted": the confirmation queries decide, and the record follows.
    fn settle_after_accept(
        &self,
        rec: &FollowUp,
        tt: TxnTime,
    ) -> (FollowUp, Option<VerifiedMessage>) {
        let (v, q) = self.confirm(&rec.order_id, tt);
        let mut f = rec.clone();
        f.learn(&v, q.as_ref());
        if let Verdict::Unknown { reason } = v {
            f.note = reason;
        }
        if f.state != FollowUpState::Sent {
            self.keep(f.clone());
        }
        (f, q)
    }

    fn reversal(&self, a: &AttemptRef, orig_tt: TxnTime, why: &str) -> GatewayReply {
        if let Err(r) = reversal_allowed(orig_tt, self.now_ms()) {
            return refused_locally(r);
        }
        // A reversal carries the original's orderId and txnTime, so resending it is safe.
        let req = match AcpTxn::Reversal.build(&self.merchant, &a.out_trade_no, orig_tt) {
            Ok(r) => r,
            Err(e) => {
                return GatewayReply::new(
                    Reply::Refused {
                        why: format!("cannot build the reversal: {e}"),
                    },
                    "reversal not sent",
                );
            }
        };
        let m = match self.exchange(req, Some(&a.out_trade_no)) {
            Ok(m) => m,
            Err(e) => return unknown(format!("reversal: {e}")),
        };
        let detail = format!("reversal (outcome was unknown: {why}): {}", resp_detail(&m));
        let code = m.get("respCode").unwrap_or("");
        match code {
            // A back-end 00 means accepted, not done (PROTOCOLS.md §B.2): as with the undo, only
            // a status query of the original consume (the reversal carries its orderId and
            // txnTime) proves it void.
            "00" | "A6" => self.confirm_reversal(a, orig_tt, detail),
            "39" => GatewayReply::new(Reply::WindowClosed, detail),
            "" | "03" | "04" | "05" | "06" | "12" => GatewayReply::new(
                Reply::RetryLater {
                    why: format!("reversal not confirmed ({})", or_none(code)),
                },
                detail,
            ),
            _ => GatewayReply::new(
                Reply::Refused {
                    why: format!(
                        "reversal refused: {code} {}",
                        m.get("respMsg").unwrap_or("")
                    ),
                },
                detail,
            ),
        }
    }

    /// After an accepted reversal: the confirmation queries of the original consume decide. A
    /// consume that now reads failed (origRespCode other than 00/A6/03/04/05) is void; one that
    /// reads paid was not reversed (the next reverse finds it paid and undoes it); anything
    /// else (34, in progress, no trustworthy reply) is not known yet.
    fn confirm_reversal(&self, a: &AttemptRef, orig_tt: TxnTime, detail: String) -> GatewayReply {
        let (v, q) = self.confirm(&a.out_trade_no, orig_tt);
        let detail = match &q {
            Some(q) => format!("{detail}; confirmed: {}", resp_detail(q)),
            None => detail,
        };
        match v {
            // The consume is void; whatever the issuer had debited goes back the same day.
            Verdict::Failed { .. } => {
                GatewayReply::new(Reply::Reversed(ReverseAction::Close), detail)
            }
            Verdict::Done => GatewayReply::new(
                Reply::RetryLater {
                    why: "reversal accepted, but the consume still reads paid".into(),
                },
                detail,
            ),
            Verdict::Unknown { reason } => GatewayReply::new(
                Reply::RetryLater {
                    why: format!("reversal accepted, not yet confirmed: {reason}"),
                },
                detail,
            ),
        }
    }

    fn refund_outcome(f: &FollowUp) -> RefundOutcome {
        match f.state {
            FollowUpState::Done => RefundOutcome::Done {
                chan_refund_no: f.query_id.clone(),
            },
            // A verified failure: this refund number is spent; a new refund needs a new one.
            FollowUpState::Failed => RefundOutcome::Failed {
                code: "refund".into(),
                reason: format!("refund {} failed: {}", f.order_id, f.note),
            },
            FollowUpState::Sent => RefundOutcome::Processing,
        }
    }
}

/// The original consume as the local window and amount rules see it before an undo or refund:
/// what it was refunded or whether it was undone is UnionPay's to check.
fn original(txn_time: TxnTime, amount: Amount) -> super::txn::Original {
    super::txn::Original {
        txn_time,
        amount,
        refunded: Amount::from_fen(0),
        undone: false,
    }
}

/// How a follow-up names the consume it applies to: by UnionPay's `queryId` when known, else
/// by our orderId and the txnTime it was sent with.
fn orig_ref(a: &AttemptRef, orig_tt: TxnTime, query_id: Option<String>) -> OrigRef {
    // origQryId is AN21: any other queryId would make the follow-up unbuildable, while our own
    // orderId and txnTime always name the consume.
    match query_id.filter(|q| super::txn::check_orig_query_id(q).is_ok()) {
        Some(q) => OrigRef::QueryId(q),
        None => OrigRef::Order {
            order_id: a.out_trade_no.clone(),
            txn_time: orig_tt,
        },
    }
}

/// A respCode for a sentence, "no respCode" when the reply had none.
fn or_none(code: &str) -> &str {
    if code.is_empty() { "no respCode" } else { code }
}

fn refused_locally(r: Refused) -> GatewayReply {
    let why = format!("refused locally, nothing sent: {r}");
    match r {
        Refused::WindowClosed(_) | Refused::BeforeOriginal => {
            GatewayReply::new(Reply::WindowClosed, why)
        }
        _ => GatewayReply::new(Reply::Refused { why: why.clone() }, why),
    }
}

/// `orderId` of a follow-up: the original's number, a kind letter and a sequence number, cut to
/// ACP's 40 characters.
pub fn follow_up_order_id(out_trade_no: &str, kind: char, seq: usize) -> String {
    let suffix = format!("{kind}{seq}");
    let keep = 40usize.saturating_sub(suffix.len()).min(out_trade_no.len());
    format!("{}{suffix}", &out_trade_no[..keep])
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename, fsync dir.
fn write_atomic(path: &Path, text: &str) -> Result<(), AcpError> {
    let tmp = sibling(path, "tmp");
    let io = |e: std::io::Error| AcpError::Io(format!("cannot write {}: {e}", path.display()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Gateway for AcpGateway {
    fn name(&self) -> &'static str {
        "acp"
    }

    fn policy(&self, _wallet: Option<Wallet>) -> Policy {
        self.cfg.policy.clone()
    }

    fn txn_time(&self, created_ms: i64) -> String {
        beijing_stamp(created_ms)
    }

    fn endpoint(&self) -> Option<String> {
        Some(self.cfg.base_url.clone())
    }

    fn pay(&self, a: &AttemptRef, credential: &Credential) -> GatewayReply {
        let qr_no = match credential {
            Credential::Code(c) => c.expose().to_string(),
            _ => {
                return GatewayReply::new(
                    Reply::Failed {
                        code: "unsupported".into(),
                        reason: "ACP takes scanned payment codes only; nothing was sent".into(),
                    },
                    "not sent",
                );
            }
        };
        let Some(tt) = TxnTime::parse(&a.chan_txn_time) else {
            return GatewayReply::new(
                Reply::Failed {
                    code: "txnTime".into(),
                    reason: format!("{:?} is not a txnTime; nothing was sent", a.chan_txn_time),
                },
                "not sent",
            );
        };
        let req = match (AcpTxn::QrConsume {
            amount: a.amount,
            qr_no,
        })
        .build(&self.merchant, &a.out_trade_no, tt)
        {
            Ok(r) => r,
            Err(e) => {
                return GatewayReply::new(
                    Reply::Failed {
                        code: "invalid".into(),
                        reason: format!("{e}; nothing was sent"),
                    },
                    "not sent",
                );
            }
        };
        match self.exchange(req, Some(&a.out_trade_no)) {
            Err(why) => unknown(why),
            Ok(m) => consume_reply(classify_reply(TxnKind::QrConsume, &m), &m, || {
                Reply::unknown("accepted; query for the result")
            }),
        }
    }

    fn query(&self, a: &AttemptRef) -> GatewayReply {
        let Some(tt) = TxnTime::parse(&a.chan_txn_time) else {
            return unknown(format!("{:?} is not a txnTime", a.chan_txn_time));
        };
        let (v, m) = self.status(&a.out_trade_no, tt);
        let Some(m) = m else {
            let why = match v {
                Verdict::Unknown { reason } => reason,
                _ => "no reply".into(),
            };
            return unknown(why);
        };
        if m.get("respCode") == Some("34") {
            // 34: UnionPay has no such consume (yet). The machine believes that only once the
            // pay request can no longer create it (`not_found_final_after_ms`).
            let mut g = GatewayReply::new(Reply::NotFound, resp_detail(&m));
            g.chan_trade_no = m.get("queryId").map(str::to_string);
            return g;
        }
        if m.get("respCode") == Some("00")
            && m.get("origRespCode")
                .is_some_and(super::txn::is_pending_code)
        {
            // A verified answer that the consume is still in progress (the customer entering a
            // password): the order exists and is not paid yet — contact, not silence.
            let mut g = GatewayReply::new(Reply::Pending, resp_detail(&m));
            g.chan_trade_no = m.get("queryId").map(str::to_string);
            return g;
        }
        consume_reply(v, &m, || {
            match m.get("txnAmt").and_then(Amount::parse_fen) {
                Some(x) if x == a.amount => Reply::Paid,
                Some(x) => Reply::unknown(format!(
                    "the query says {x} yuan was paid; the order is {}",
                    a.amount
                )),
                None => Reply::unknown("a paid query reply without txnAmt"),
            }
        })
    }

    /// Undo (31) of a consume the query shows paid, within its clearing day before 23:00;
    /// reversal (99) of one whose outcome is unknown; nothing for one that failed.
    fn reverse(&self, a: &AttemptRef) -> GatewayReply {
        let Some(orig_tt) = TxnTime::parse(&a.chan_txn_time) else {
            return GatewayReply::new(
                Reply::Refused {
                    why: format!("{:?} is not a txnTime", a.chan_txn_time),
                },
                "nothing sent",
            );
        };
        // An undo already sent decides first: the consume itself still reads "paid" after it.
        if let Some(prev) = self.store.latest(&Self::undo_key(a)) {
            let (f, q) = self.settle_follow_up(&prev);
            let detail = format!(
                "earlier undo {}: {}",
                f.order_id,
                q.as_ref()
                    .map(resp_detail)
                    .unwrap_or_else(|| f.note.clone())
            );
            match f.state {
                FollowUpState::Done => {
                    return GatewayReply::new(Reply::Reversed(ReverseAction::Refund), detail);
                }
                FollowUpState::Sent => {
                    return GatewayReply::new(
                        Reply::RetryLater {
                            why: "an earlier undo's result is not known yet".into(),
                        },
                        detail,
                    );
                }
                FollowUpState::Failed => {}
            }
        }
        let (v, m) = self.status(&a.out_trade_no, orig_tt);
        match v {
            Verdict::Done => {
                let amount_ok = m
                    .as_ref()
                    .and_then(|m| m.get("txnAmt"))
                    .and_then(Amount::parse_fen)
                    == Some(a.amount);
                if !amount_ok {
                    return GatewayReply::new(
                        Reply::Refused {
                            why: "the paid amount differs from the order's; a person must check"
                                .into(),
                        },
                        m.as_ref().map(resp_detail).unwrap_or_default(),
                    );
                }
                let qid = m
                    .as_ref()
                    .and_then(|m| m.get("queryId"))
                    .map(str::to_string);
                self.undo(a, orig_tt, qid)
            }
            Verdict::Failed { code, message } => GatewayReply::new(
                Reply::Reversed(ReverseAction::Close),
                format!("the consume failed ({code} {message}); nothing to undo"),
            ),
            Verdict::Unknown { reason } => self.reversal(a, orig_tt, &reason),
        }
    }

    fn refund(&self, a: &AttemptRef, r: &RefundRef) -> RefundOutcome {
        let key = Self::refund_key(&r.out_refund_no);
        // A refund number once sent is resolved by querying that request (its orderId and
        // txnTime), never sent again: a second send carries a new txnTime, which UnionPay takes
        // as a second refund — on a later clearing day, a second payout.
        if let Some(prev) = self.store.latest(&key) {
            let (f, _) = self.settle_follow_up(&prev);
            return Self::refund_outcome(&f);
        }
        let Some(orig_tt) = TxnTime::parse(&a.chan_txn_time) else {
            return RefundOutcome::Failed {
                code: "txnTime".into(),
                reason: format!("{:?} is not a txnTime; nothing sent", a.chan_txn_time),
            };
        };
        let now = self.now_ms();
        if let Err(e) = refund_allowed(&original(orig_tt, r.order_total), r.amount, now) {
            return RefundOutcome::Failed {
                code: "local".into(),
                reason: format!("refused locally, nothing sent: {e}"),
            };
        }
        let tt = self.now_txn_time();
        let query_id = a.chan_trade_no.clone().filter(|q| !q.is_empty());
        let req = match (AcpTxn::Refund {
            orig: orig_ref(a, orig_tt, query_id),
            amount: r.amount,
        })
        .build(&self.merchant, &r.out_refund_no, tt)
        {
            Ok(q) => q,
            Err(e) => {
                return RefundOutcome::Failed {
                    code: "invalid".into(),
                    reason: format!("{e}; nothing sent"),
                };
            }
        };
        let rec = FollowUp::sent(key, &r.out_refund_no, tt, now);
        if let Err(e) = self.store.put(rec.clone()) {
            return RefundOutcome::Failed {
                code: "store".into(),
                reason: format!("{e}; nothing sent"),
            };
        }
        let m = match self.exchange(req, Some(&r.out_refund_no)) {
            Ok(m) => m,
            Err(why) => return RefundOutcome::Unknown { why },
        };
        let code = m.get("respCode").unwrap_or("").to_string();
        let msg = m.get("respMsg").unwrap_or("").to_string();
        let mark = |state: FollowUpState, note: String| {
            let mut x = rec.clone();
            x.state = state;
            x.note = note;
            self.keep(x);
        };
        match code.as_str() {
            "00" | "A6" => {
                let (f, _) = self.settle_after_accept(&rec, tt);
                match f.state {
                    FollowUpState::Failed => RefundOutcome::Failed {
                        code: "refund".into(),
                        reason: f.note,
                    },
                    _ => Self::refund_outcome(&f),
                }
            }
            // "Busy" and no code at all prove nothing about whether it was processed: it stays
            // recorded as sent and its own status query decides.
            "" | "06" => RefundOutcome::Unknown {
                why: format!(
                    "refund {} answered {}: outcome unknown; its status query (orderId and txnTime {tt}) will tell",
                    r.out_refund_no,
                    or_none(&code)
                ),
            },
            "03" | "04" | "05" | "12" => RefundOutcome::Processing,
            _ => {
                mark(FollowUpState::Failed, format!("{code} {msg}"));
                RefundOutcome::Failed { code, reason: msg }
            }
        }
    }

    fn refund_query(&self, _a: &AttemptRef, out_refund_no: &str) -> RefundOutcome {
        match self.store.latest(&Self::refund_key(out_refund_no)) {
            None => RefundOutcome::Unknown {
                why: format!(
                    "no ACP refund {out_refund_no} was recorded as sent from this terminal"
                ),
            },
            Some(prev) => {
                let Some(tt) = TxnTime::parse(&prev.txn_time) else {
                    return RefundOutcome::Unknown {
                        why: "unreadable txnTime in the record".into(),
                    };
                };
                if prev.state == FollowUpState::Failed {
                    return Self::refund_outcome(&prev);
                }
                // Ask even when it is recorded done: the reply is the evidence.
                let (v, m) = self.status(&prev.order_id, tt);
                let mut f = prev.clone();
                f.learn(&v, m.as_ref());
                let out = match v {
                    Verdict::Done => RefundOutcome::Done {
                        chan_refund_no: f.query_id.clone(),
                    },
                    Verdict::Failed { code, message } => RefundOutcome::Failed {
                        code,
                        reason: message,
                    },
                    Verdict::Unknown { reason } => return RefundOutcome::Unknown { why: reason },
                };
                if f != prev {
                    self.keep(f);
                }
                out
            }
        }
    }

    /// A back notification (form POST to `backUrl`): believed only after verification, and only
    /// a consume's (txnType 01) result is a payment notice.
    fn verify_notification(&self, body: &[u8]) -> Result<Notice, String> {
        let text = std::str::from_utf8(body).map_err(|_| "not UTF-8".to_string())?;
        let report = verify_notification_report(text, &self.keys.trust, self.now_system());
        let m = report
            .into_verified()
            .map_err(|r| unverified(&r, "not verified"))?;
        if m.get("merId") != Some(self.cfg.mer_id.as_str()) {
            return Err(format!(
                "the notification is for merchant {:?}, not ours",
                m.get("merId")
            ));
        }
        let out_trade_no = m.get("orderId").ok_or("no orderId")?.to_string();
        let amount = m
            .get("txnAmt")
            .and_then(Amount::parse_fen)
            .ok_or("no txnAmt")?;
        // Undo, refund and pre-auth notices verify like any other; what they report was
        // journaled by the request that caused it, so they are only acknowledged.
        let no_result = (m.get("txnType") != Some("01")).then(|| {
            format!(
                "a txnType {} notification (order {out_trade_no}), not a payment result",
                m.get("txnType").unwrap_or("?")
            )
        });
        Ok(Notice {
            out_trade_no,
            amount,
            paid: no_result.is_none() && classify_notification(&m) == Verdict::Done,
            chan_trade_no: m.get("queryId").map(str::to_string),
            no_result,
        })
    }
}

/// The verdict of bare codes stored elsewhere (re-exported for the CLI's reports).
pub fn verdict_of(kind: TxnKind, code: &str, msg: &str) -> Verdict {
    classify_codes(kind, code, msg, None, None)
}

/// Owner mode of a trust configuration, for printing.
pub fn owner_name(o: &OwnerRule) -> &'static str {
    match o {
        OwnerRule::Production { .. } => "production",
        OwnerRule::Test => "test",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::authcode::{AuthCode, default_rules};
    use crate::gateway::{Method, OrderDetails};
    use crate::sandbox::{Sandbox, SandboxConfig};

    /// A sandbox served in-process on loopback, and a gateway pointed at it.
    pub(crate) struct Rig {
        /// Kept alive for the server it runs.
        _rt: tokio::runtime::Runtime,
        pub sb: Sandbox,
        pub url: String,
        pub dir: tempfile::TempDir,
    }

    pub(crate) fn sandbox_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sandbox-acp")
    }

    impl Rig {
        pub(crate) fn start() -> Rig {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let mut sc = SandboxConfig::new("1", "1", "k");
            sc.hang_ms = 400;
            sc.notify_schedule_ms = vec![0, 100];
            let sb = Sandbox::new(sc);
            let (addr, _h) = rt
                .block_on(sb.clone().spawn("127.0.0.1:0".parse().unwrap()))
                .unwrap();
            Rig {
                _rt: rt,
                sb,
                url: format!("http://{addr}"),
                dir: tempfile::tempdir().unwrap(),
            }
        }

        pub(crate) fn config(&self) -> AcpConfig {
            let d = sandbox_dir();
            let text = format!(
                r#"base_url = "{u}"
file_url = "{u}/"
mer_id = "777290058110048"
term_id = "T0000001"
sign_pfx = "{d}/acp_test_sign.pfx"
sign_password_file = "{d}/sign.pass"
encrypt_cert = "{t}/enc.cer"
middle_cert = "{d}/sandbox_middle.cer"
root_cert = "{d}/sandbox_root.cer"
back_url = "http://127.0.0.1:9/acp/notify"
connect_timeout_ms = 300
timeout_ms = 300
confirm_delays_ms = [50, 100]
lost_after_ms = 500
"#,
                u = self.url,
                d = d.display(),
                t = self.dir.path().display()
            );
            toml::from_str(&text).unwrap()
        }

        pub(crate) fn gateway_with(&self, clock: Option<Clock>) -> AcpGateway {
            let cfg = self.config();
            let t = Timeouts {
                connect: Duration::from_millis(cfg.connect_timeout_ms),
                total: Duration::from_millis(cfg.timeout_ms),
            };
            self.gateway_on(Arc::new(UreqTransport::new(t)), clock)
        }

        /// The gateway sending through `transport` (an [`Intercept`] in the tests of replies
        /// the sandbox does not make).
        pub(crate) fn gateway_on(
            &self,
            transport: Arc<dyn Transport>,
            clock: Option<Clock>,
        ) -> AcpGateway {
            let d = sandbox_dir();
            let enc = self.dir.path().join("enc.cer");
            if !enc.exists() {
                std::fs::copy(d.join("sandbox_enc.cer"), &enc).unwrap();
            }
            let keys = AcpKeys {
                key: Some(
                    MerchantKey::load_pkcs12(&d.join("acp_test_sign.pfx"), "000000").unwrap(),
                ),
                secure_key: None,
                trust: TrustConfig::production(
                    Certificate::load(&d.join("sandbox_middle.cer")).unwrap(),
                    Certificate::load(&d.join("sandbox_root.cer")).unwrap(),
                ),
                encrypt_cert: EncryptionCert::new(Certificate::load(&enc).unwrap()),
                encrypt_cert_path: Some(enc),
            };
            let g = AcpGateway::new(
                self.config(),
                keys,
                transport,
                Some(self.dir.path().join("followups.jsonl")),
            )
            .unwrap();
            match clock {
                Some(c) => g.with_clock(c),
                None => g,
            }
        }

        pub(crate) fn gateway(&self) -> AcpGateway {
            self.gateway_with(None)
        }

        /// A gateway whose requests pass through `rule` first (see [`Intercept`]).
        pub(crate) fn intercepted(
            &self,
            rule: impl FnMut(&super::super::AcpMessage) -> Act + Send + 'static,
        ) -> (AcpGateway, Arc<Intercept>) {
            let cfg = self.config();
            let t = Arc::new(Intercept {
                inner: UreqTransport::new(Timeouts {
                    connect: Duration::from_millis(cfg.connect_timeout_ms),
                    total: Duration::from_millis(cfg.timeout_ms),
                }),
                sb: self.sb.lock().cfg.acp.clone().unwrap(),
                rule: Mutex::new(Box::new(rule)),
                seen: Mutex::new(vec![]),
            });
            (self.gateway_on(t.clone(), None), t)
        }

        pub(crate) fn ledger_status(&self, no: &str) -> Option<String> {
            let g = self.sb.lock();
            g.ledger
                .get(no)
                .map(|o| format!("{:?}", o.status).to_uppercase())
        }

        pub(crate) fn advance(&self, ms: i64) {
            self.sb.lock().clock.advance(ms);
        }
    }

    /// What [`Intercept`] does with one request.
    pub(crate) enum Act {
        /// Send it on to the sandbox.
        Forward,
        /// Answer these fields, signed as the sandbox signs, without sending it on.
        Reply(Vec<(String, String)>),
        /// Lose it: it never arrives and nothing answers.
        Lose,
    }

    /// A transport in front of the sandbox that answers some requests itself, with replies the
    /// sandbox's scenarios do not make (a signed "busy" to a refund, a reply without respCode,
    /// an accepted reversal that did nothing), and records every request.
    pub(crate) struct Intercept {
        inner: UreqTransport,
        sb: crate::sandbox::acp::AcpSandboxConfig,
        #[allow(clippy::type_complexity)]
        rule: Mutex<Box<dyn FnMut(&super::super::AcpMessage) -> Act + Send>>,
        /// (txnType, orderId, txnTime) of every request, in order.
        pub seen: Mutex<Vec<(String, String, String)>>,
    }

    impl Intercept {
        /// The requests of `txn_type` for `order_id`, as (orderId, txnTime).
        pub(crate) fn sent(&self, txn_type: &str, order_id: &str) -> Vec<String> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(t, o, _)| t == txn_type && o == order_id)
                .map(|(_, _, tt)| tt.clone())
                .collect()
        }
    }

    impl Transport for Intercept {
        fn post(
            &self,
            req: &HttpRequest,
        ) -> Result<
            crate::gateway::transport::HttpResponse,
            crate::gateway::transport::TransportError,
        > {
            let body = String::from_utf8_lossy(&req.body).to_string();
            let Ok(m) = super::super::AcpMessage::parse_form(&body) else {
                return self.inner.post(req);
            };
            let get = |k: &str| m.get(k).unwrap_or("").to_string();
            self.seen
                .lock()
                .unwrap()
                .push((get("txnType"), get("orderId"), get("txnTime")));
            let act = (self.rule.lock().unwrap())(&m);
            match act {
                Act::Forward => self.inner.post(req),
                Act::Lose => Err(crate::gateway::transport::TransportError::NoReply {
                    host: "sandbox".into(),
                    why: "lost by the test".into(),
                }),
                Act::Reply(f) => Ok(crate::gateway::transport::HttpResponse {
                    status: 200,
                    body: crate::sandbox::acp::signed_raw_as(
                        &self.sb,
                        f,
                        false,
                        crate::sandbox::acp::ReplySign::Cert,
                    )
                    .into_bytes(),
                    authorization: None,
                }),
            }
        }
    }

    /// The sandbox's reply fields to `m` with `code`, or with no respCode at all (`None`).
    pub(crate) fn reply_to(
        m: &super::super::AcpMessage,
        code: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut f = crate::sandbox::acp::with_code(m, code.unwrap_or("00"), "test");
        if code.is_none() {
            f.retain(|(k, _)| k != "respCode" && k != "respMsg");
        }
        f
    }

    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    pub(crate) fn attempt(fen: u64, now: i64) -> AttemptRef {
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        AttemptRef {
            out_trade_no: format!("PT{}{n:04}", beijing_stamp(now)),
            amount: Amount::from_fen(fen),
            wallet: Some(Wallet::Unionpay),
            method: Method::Code,
            chan_txn_time: beijing_stamp(now),
            created_ms: now,
            chan_trade_no: None,
            details: OrderDetails::default(),
        }
    }

    fn code() -> Credential {
        Credential::Code(AuthCode::classify("6225123456789012345", &default_rules()).unwrap())
    }

    /// Today at `hh:mm` Beijing, as Unix ms.
    fn beijing_today(hh: u32, mm: u32) -> i64 {
        let today = TxnTime::from_unix_ms(crate::util::now_ms())
            .unwrap()
            .naive()
            .date();
        let t = TxnTime::parse(&format!("{}{hh:02}{mm:02}00", today.format("%Y%m%d"))).unwrap();
        t.unix_ms()
    }

    /// The settings of `sign_method`, `sign_pfx`, `sign_password_file` and `secure_key_file`
    /// given, every other one valid.
    fn acp_config(keys: &str) -> AcpConfig {
        let text = format!(
            r#"base_url = "https://gateway.95516.com"
mer_id = "777290058110048"
encrypt_cert = "enc.cer"
middle_cert = "middle.cer"
root_cert = "root.cer"
back_url = "https://example.com/acp/notify"
{keys}"#
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_merchant_pfx_is_required_with_sign_method_01_only() {
        let fields = |keys: &str| -> Vec<String> {
            acp_config(keys)
                .problems(false)
                .into_iter()
                .map(|(f, why)| format!("{f}: {why}"))
                .collect()
        };
        let pfx = "sign_pfx = \"s.pfx\"\nsign_password_file = \"s.pass\"\n";
        assert_eq!(fields(pfx), Vec::<String>::new());
        // 01 (the default) without the PFX: said, and how to fix it.
        let p = fields("");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("gateways.acp.sign_pfx: is required with sign_method 01"),
            "{p:?}"
        );
        let p = fields("sign_method = \"01\"\nsecure_key_file = \"k\"\n");
        assert!(p[0].starts_with("gateways.acp.sign_pfx:"), "{p:?}");
        // 11/12 sign with the secure key: no PFX, no password.
        for m in ["11", "12"] {
            let keys = format!("sign_method = \"{m}\"\nsecure_key_file = \"k\"\n");
            assert_eq!(fields(&keys), Vec::<String>::new(), "{m}");
            // A PFX beside it (the contract debits need one) still needs its password.
            let p = fields(&format!("{keys}sign_pfx = \"s.pfx\"\n"));
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(
                p[0].starts_with("gateways.acp.sign_password_file:"),
                "{p:?}"
            );
        }
    }

    #[test]
    fn the_secure_key_signs_without_any_merchant_certificate() {
        use crate::sandbox::acp::SANDBOX_SECURE_KEY;
        let rig = Rig::start();
        for method in ["11", "12"] {
            let mut cfg = rig.config();
            cfg.sign_method = method.into();
            cfg.sign_pfx = None;
            cfg.sign_password_file = None;
            cfg.secure_key_file = Some("k".into());
            assert_eq!(cfg.problems(true), vec![], "{method}");
            let d = sandbox_dir();
            let secure_key = Zeroizing::new(SANDBOX_SECURE_KEY.as_bytes().to_vec());
            let mut trust = TrustConfig::production(
                Certificate::load(&d.join("sandbox_middle.cer")).unwrap(),
                Certificate::load(&d.join("sandbox_root.cer")).unwrap(),
            );
            trust.secure_key = Some(secure_key.clone());
            let keys = AcpKeys {
                key: None,
                secure_key: Some(secure_key),
                trust,
                encrypt_cert: EncryptionCert::new(
                    Certificate::load(&d.join("sandbox_enc.cer")).unwrap(),
                ),
                encrypt_cert_path: None,
            };
            assert!(keys.cert_key().is_err());
            assert!(format!("{keys:?}").contains("certId: none"));
            let transport = Arc::new(UreqTransport::new(Timeouts {
                connect: Duration::from_millis(300),
                total: Duration::from_millis(300),
            }));
            let g = AcpGateway::new(cfg, keys, transport, None).unwrap();
            let a = attempt(1200, crate::util::now_ms());
            let r = g.pay(&a, &code());
            assert!(r.detail.contains("respCode 00"), "{method}: {r:?}");
            assert_eq!(g.query(&a).reply, Reply::Paid, "{method}");
            let seen = rig.sb.lock().acp.verified.clone();
            let mine: Vec<_> = seen
                .iter()
                .filter(|v| v.order_id == a.out_trade_no)
                .collect();
            assert_eq!(mine.len(), 2, "{seen:?}");
            assert!(mine.iter().all(|v| v.sign_method == method), "{mine:?}");
        }
    }

    #[test]
    fn consume_scenarios_through_the_sandbox() {
        let rig = Rig::start();
        let g = rig.gateway();
        let now = crate::util::now_ms();
        // Paid at once: accepted on pay, paid on query.
        let a = attempt(1200, now);
        let r = g.pay(&a, &code());
        assert!(matches!(r.reply, Reply::Unknown { .. }), "{r:?}");
        assert!(r.detail.contains("respCode 00"), "{}", r.detail);
        assert_eq!(g.query(&a).reply, Reply::Paid);
        // 51: declined on pay, definitively.
        let a = attempt(1251, now);
        assert!(matches!(g.pay(&a, &code()).reply, Reply::Failed { ref code, .. } if code == "64"));
        // 52: in progress on the first query, paid on the second.
        let a = attempt(1252, now);
        g.pay(&a, &code());
        assert!(matches!(g.query(&a).reply, Reply::Pending));
        assert_eq!(g.query(&a).reply, Reply::Paid);
        // 55: hangs and was never created: the query says 34, "no such order" — which the
        // machine believes only late, never as failed at once.
        let a = attempt(1255, now);
        assert!(matches!(g.pay(&a, &code()).reply, Reply::Unknown { .. }));
        let q = g.query(&a);
        assert!(
            matches!(q.reply, Reply::NotFound) && q.detail.contains("34"),
            "{q:?}"
        );
        // 56: the reply's signature is wrong: unknown, naming the step; the query says paid.
        let a = attempt(1256, now);
        let r = g.pay(&a, &code());
        assert!(
            matches!(&r.reply, Reply::Unknown { why } if why.contains("step signature")),
            "{r:?}"
        );
        assert_eq!(g.query(&a).reply, Reply::Paid);
        // 57: 03/04/05 on pay; paid when queried.
        for fen in [357, 457, 557] {
            let a = attempt(fen, now);
            let r = g.pay(&a, &code());
            assert!(matches!(r.reply, Reply::Unknown { .. }), "{r:?}");
            assert_eq!(g.query(&a).reply, Reply::Paid, "{fen}");
        }
        // The same orderId twice is a duplicate, never a second charge.
        let a = attempt(100, now);
        g.pay(&a, &code());
        let r = g.pay(&a, &code());
        assert!(r.detail.contains("respCode 12"), "{}", r.detail);
    }

    #[test]
    fn undo_reversal_and_refund_rules() {
        let rig = Rig::start();
        let g = rig.gateway();
        let now = crate::util::now_ms();
        // A paid consume is undone (58: after two "busy" replies).
        let a = attempt(758, now);
        g.pay(&a, &code());
        let mut replies = vec![];
        for _ in 0..4 {
            let r = g.reverse(&a);
            let done = matches!(r.reply, Reply::Reversed(_));
            replies.push(r.reply);
            if done {
                break;
            }
        }
        assert_eq!(
            replies.last(),
            Some(&Reply::Reversed(ReverseAction::Refund)),
            "{replies:?}"
        );
        assert_eq!(replies.len(), 3, "{replies:?}");
        assert_eq!(
            rig.ledger_status(&a.out_trade_no).as_deref(),
            Some("REVOKED")
        );
        // Asked again, the recorded undo answers without a second one.
        assert_eq!(g.reverse(&a).reply, Reply::Reversed(ReverseAction::Refund));

        // Unknown outcome (55, never created): reversal closes the number.
        let a = attempt(255, now);
        g.pay(&a, &code());
        assert_eq!(g.reverse(&a).reply, Reply::Reversed(ReverseAction::Close));
        assert_eq!(
            rig.ledger_status(&a.out_trade_no).as_deref(),
            Some("CLOSED")
        );
        assert!(
            g.pay(&a, &code()).detail.contains("12"),
            "a late consume cannot pay it"
        );

        // Partial refunds, then the sandbox refuses an undo after a refund.
        let a = attempt(1000, now);
        g.pay(&a, &code());
        assert_eq!(g.query(&a).reply, Reply::Paid);
        let r1 = RefundRef {
            out_refund_no: format!("{}R1", a.out_trade_no),
            amount: Amount::from_fen(300),
            order_total: a.amount,
        };
        assert!(matches!(g.refund(&a, &r1), RefundOutcome::Done { .. }));
        // The same refund number again refunds once.
        assert!(matches!(g.refund(&a, &r1), RefundOutcome::Done { .. }));
        assert!(matches!(
            g.refund_query(&a, &r1.out_refund_no),
            RefundOutcome::Done { .. }
        ));
        let too_much = RefundRef {
            out_refund_no: format!("{}R2", a.out_trade_no),
            amount: Amount::from_fen(701),
            order_total: a.amount,
        };
        assert!(
            matches!(g.refund(&a, &too_much), RefundOutcome::Failed { ref code, .. } if code == "36")
        );
        let rest = RefundRef {
            out_refund_no: format!("{}R3", a.out_trade_no),
            amount: Amount::from_fen(700),
            order_total: a.amount,
        };
        assert!(matches!(g.refund(&a, &rest), RefundOutcome::Done { .. }));
        {
            let s = rig.sb.lock();
            assert_eq!(s.ledger.get(&a.out_trade_no).unwrap().refunded_fen(), 1000);
        }
        let r = g.reverse(&a);
        assert!(
            matches!(&r.reply, Reply::Refused { why } if why.contains("35")),
            "the sandbox refuses an undo after a refund: {r:?}"
        );
        assert_eq!(rig.ledger_status(&a.out_trade_no).as_deref(), Some("PAID"));
    }

    #[test]
    fn undo_after_23_is_refused_locally_and_by_the_sandbox() {
        let rig = Rig::start();
        // Locally: the terminal's clock says 23:00:01 of the consume's day; nothing is sent.
        let t0 = beijing_today(10, 0);
        let late = Arc::new(std::sync::atomic::AtomicI64::new(t0));
        let l2 = late.clone();
        let g = rig.gateway_with(Some(Arc::new(move || {
            l2.load(std::sync::atomic::Ordering::Relaxed)
        })));
        let a = attempt(2000, t0);
        g.pay(&a, &code());
        assert_eq!(g.query(&a).reply, Reply::Paid);
        late.store(
            beijing_today(23, 0) + 1_000,
            std::sync::atomic::Ordering::Relaxed,
        );
        let before = rig.sb.lock().acp.txns.len();
        let r = g.reverse(&a);
        assert_eq!(r.reply, Reply::WindowClosed, "{r:?}");
        assert!(
            r.detail.contains("refused locally") && r.detail.contains("23:00"),
            "{}",
            r.detail
        );
        // Only the status query went out, no undo.
        let after: Vec<String> = rig.sb.lock().acp.txns[before..]
            .iter()
            .map(|t| t.txn_type.clone())
            .collect();
        assert!(after.is_empty(), "{after:?}");

        // By the sandbox: its clock is past 23:00 although ours is not.
        let g = rig.gateway();
        let now = crate::util::now_ms();
        let a = attempt(2100, now);
        g.pay(&a, &code());
        let end = clearing_day_end_ms(&a.chan_txn_time);
        rig.advance(end - now + 60_000);
        let r = g.reverse(&a);
        if now < end - 30_000 {
            assert_eq!(r.reply, Reply::WindowClosed, "{r:?}");
            assert!(r.detail.contains("respCode 39"), "{}", r.detail);
            assert_eq!(rig.ledger_status(&a.out_trade_no).as_deref(), Some("PAID"));
        }
    }

    fn clearing_day_end_ms(tt: &str) -> i64 {
        super::super::txn::clearing_day_end(TxnTime::parse(tt).unwrap()).unix_ms()
    }

    #[test]
    fn the_pre_authorisation_family() {
        let rig = Rig::start();
        let g = rig.gateway();
        let now = crate::util::now_ms();
        let base = format!("PA{}", beijing_stamp(now));
        let qr = "6225123456789012345";
        let pa = g.preauth(&format!("{base}A"), Amount::from_fen(10_000), qr);
        assert_eq!(pa.verdict, Verdict::Done, "{pa:?}");
        let pa_ref = OrigRef::QueryId(pa.query_id.clone().unwrap());
        // Completion above the authorised amount is refused; within it, done.
        let over = g.preauth_complete(
            &format!("{base}B"),
            pa_ref.clone(),
            Amount::from_fen(10_001),
        );
        assert!(
            matches!(over.verdict, Verdict::Failed { ref code, .. } if code == "36"),
            "{over:?}"
        );
        let c = g.preauth_complete(&format!("{base}C"), pa_ref.clone(), Amount::from_fen(8_000));
        assert_eq!(c.verdict, Verdict::Done, "{c:?}");
        // A completed pre-auth cannot be undone; the completion can (full amount only).
        let u = g.preauth_undo(
            &format!("{base}D"),
            pa_ref.clone(),
            Amount::from_fen(10_000),
        );
        assert!(
            matches!(u.verdict, Verdict::Failed { ref code, .. } if code == "35"),
            "{u:?}"
        );
        let c_ref = OrigRef::Order {
            order_id: c.order_id.clone(),
            txn_time: c.txn_time,
        };
        let part = g.preauth_complete_undo(&format!("{base}E"), c_ref.clone(), Amount::from_fen(1));
        assert!(matches!(part.verdict, Verdict::Failed { ref code, .. } if code == "36"));
        let cu = g.preauth_complete_undo(&format!("{base}F"), c_ref, Amount::from_fen(8_000));
        assert_eq!(cu.verdict, Verdict::Done, "{cu:?}");
        assert_eq!(rig.ledger_status(&c.order_id).as_deref(), Some("REVOKED"));
        // The pre-authorisation stands again and can now be undone.
        let u = g.preauth_undo(&format!("{base}G"), pa_ref, Amount::from_fen(10_000));
        assert_eq!(u.verdict, Verdict::Done, "{u:?}");
        // A declined pre-auth.
        let d = g.preauth(&format!("{base}H"), Amount::from_fen(551), qr);
        assert!(matches!(d.verdict, Verdict::Failed { .. }), "{d:?}");
    }

    #[test]
    fn encryption_cert_update_writes_atomically_and_keeps_the_previous() {
        let rig = Rig::start();
        let g = rig.gateway();
        let old = g.encrypt_cert().cert_id();
        let out = g.update_encryption_cert().unwrap();
        let CertUpdateOutcome::Replaced {
            old_cert_id,
            new_cert_id,
            path: Some(path),
            previous: Some(prev),
        } = out
        else {
            panic!("{out:?}")
        };
        assert_eq!(old_cert_id, old);
        assert_ne!(new_cert_id, old);
        assert_eq!(
            Certificate::load(&path).unwrap().serial_decimal(),
            new_cert_id
        );
        assert_eq!(Certificate::load(&prev).unwrap().serial_decimal(), old);
        assert!(!sibling(&path, "tmp").exists());
        assert_eq!(g.encrypt_cert().cert_id(), new_cert_id);
        // Asked again: unchanged.
        assert!(matches!(
            g.update_encryption_cert().unwrap(),
            CertUpdateOutcome::Unchanged { .. }
        ));
    }

    #[test]
    fn notifications_are_verified() {
        let rig = Rig::start();
        let g = rig.gateway();
        let cfg = rig.sb.lock().cfg.acp.clone().unwrap();
        let now = crate::util::now_ms();
        let t = crate::sandbox::acp::tests_notification_body(&cfg, "PT20260101000000001", 1234);
        let n = g.verify_notification(t.as_bytes()).unwrap();
        assert!(n.paid);
        assert_eq!(n.amount, Amount::from_fen(1234));
        let forged = t.replace("txnAmt=1234", "txnAmt=1");
        let e = g.verify_notification(forged.as_bytes()).unwrap_err();
        assert!(e.contains("signature"), "{e}");
        let _ = now;
    }

    #[test]
    fn reconciliation_file_round_trip() {
        let rig = Rig::start();
        let g = rig.gateway();
        let now = crate::util::now_ms();
        let a = attempt(1500, now);
        g.pay(&a, &code());
        let date = crate::gateway::unionpay::recon::clearing_date(
            TxnTime::parse(&a.chan_txn_time).unwrap(),
        );
        let f = g.download_recon(date).unwrap();
        let recs: Vec<&ZmRecord> = f.records().collect();
        assert!(
            recs.iter()
                .any(|r| r.order_id == a.out_trade_no && r.amount == a.amount),
            "{recs:?}"
        );
    }

    fn paid(g: &AcpGateway, fen: u64) -> AttemptRef {
        let a = attempt(fen, crate::util::now_ms());
        g.pay(&a, &code());
        assert_eq!(g.query(&a).reply, Reply::Paid);
        a
    }

    fn refund_of(a: &AttemptRef, n: u32, fen: u64) -> RefundRef {
        RefundRef {
            out_refund_no: format!("{}R{n}", a.out_trade_no),
            amount: Amount::from_fen(fen),
            order_total: a.amount,
        }
    }

    #[test]
    fn a_refund_unionpay_cannot_find_stays_unknown_and_is_never_sent_again() {
        let rig = Rig::start();
        // The first refund request is lost on the way: it never arrives, so queries say 34.
        let mut lost = false;
        let (g, t) = rig.intercepted(move |m| {
            if m.get("txnType") == Some("04") && !lost {
                lost = true;
                return Act::Lose;
            }
            Act::Forward
        });
        let a = paid(&g, 1000);
        let r = refund_of(&a, 1, 300);
        assert!(matches!(g.refund(&a, &r), RefundOutcome::Unknown { .. }));
        // Long past lost_after_ms (500 ms here), UnionPay still cannot find it.
        std::thread::sleep(Duration::from_millis(700));
        for _ in 0..2 {
            let again = g.refund(&a, &r);
            assert!(
                matches!(
                    again,
                    RefundOutcome::Processing | RefundOutcome::Unknown { .. }
                ),
                "{again:?}"
            );
            let q = g.refund_query(&a, &r.out_refund_no);
            assert!(
                matches!(q, RefundOutcome::Processing | RefundOutcome::Unknown { .. }),
                "{q:?}"
            );
        }
        assert_eq!(
            t.sent("04", &r.out_refund_no).len(),
            1,
            "a refund is never sent again with a new txnTime"
        );
        assert_eq!(
            rig.sb
                .lock()
                .ledger
                .get(&a.out_trade_no)
                .unwrap()
                .refunded_fen(),
            0
        );
    }

    #[test]
    fn an_undo_unionpay_cannot_find_stays_unknown_and_no_new_undo_is_sent() {
        let rig = Rig::start();
        let mut lost = false;
        let (g, t) = rig.intercepted(move |m| {
            if m.get("txnType") == Some("31") && !lost {
                lost = true;
                return Act::Lose;
            }
            Act::Forward
        });
        let a = paid(&g, 1200);
        assert!(matches!(g.reverse(&a).reply, Reply::Unknown { .. }));
        std::thread::sleep(Duration::from_millis(700));
        let r = g.reverse(&a);
        assert!(matches!(r.reply, Reply::RetryLater { .. }), "{r:?}");
        let undos = t
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(ty, _, _)| ty == "31")
            .count();
        assert_eq!(undos, 1, "no second undo while the first is not found");
        assert_eq!(rig.ledger_status(&a.out_trade_no).as_deref(), Some("PAID"));
    }

    #[test]
    fn an_accepted_reversal_counts_only_once_a_query_confirms_it() {
        let rig = Rig::start();
        // UnionPay answers 00 to the reversal but nothing it does shows yet: the status query
        // still cannot find the consume (55: its request never arrived).
        let (g, t) = rig.intercepted(|m| match m.get("txnType") {
            Some("99") => Act::Reply(reply_to(m, Some("00"))),
            _ => Act::Forward,
        });
        let a = attempt(1455, crate::util::now_ms());
        g.pay(&a, &code());
        let r = g.reverse(&a);
        assert!(
            matches!(r.reply, Reply::RetryLater { .. } | Reply::Unknown { .. }),
            "a 00 to a reversal proves nothing until a query shows the consume void: {r:?}"
        );
        assert!(!t.sent("00", &a.out_trade_no).is_empty(), "it asked");
        // The same without the interception: the sandbox's query shows the consume failed
        // (reversed), which is the proof.
        let g = rig.gateway();
        let a = attempt(1555, crate::util::now_ms());
        g.pay(&a, &code());
        let r = g.reverse(&a);
        assert_eq!(r.reply, Reply::Reversed(ReverseAction::Close), "{r:?}");
        assert!(r.detail.contains("origRespCode"), "{}", r.detail);
    }

    #[test]
    fn a_refund_answered_busy_or_without_a_code_is_unknown_and_resolved_by_its_own_query() {
        for code in [Some("06"), None] {
            let rig = Rig::start();
            let mut first = true;
            let (g, t) = rig.intercepted(move |m| {
                if m.get("txnType") == Some("04") && first {
                    first = false;
                    return Act::Reply(reply_to(m, code));
                }
                Act::Forward
            });
            let a = paid(&g, 1000);
            let r = refund_of(&a, 1, 400);
            let out = g.refund(&a, &r);
            assert!(
                matches!(
                    out,
                    RefundOutcome::Unknown { .. } | RefundOutcome::Processing
                ),
                "{code:?}: {out:?}"
            );
            // Settling it (as recovery does) asks about the same orderId and txnTime.
            let again = g.refund(&a, &r);
            assert!(
                matches!(
                    again,
                    RefundOutcome::Unknown { .. } | RefundOutcome::Processing
                ),
                "{code:?}: {again:?}"
            );
            let sent = t.sent("04", &r.out_refund_no);
            assert_eq!(sent.len(), 1, "{code:?}: never a second refund: {sent:?}");
            let queried = t.sent("00", &r.out_refund_no);
            assert!(
                !queried.is_empty() && queried.iter().all(|tt| *tt == sent[0]),
                "{code:?}: queried by the refund's own txnTime: {queried:?} vs {sent:?}"
            );
        }
    }

    #[test]
    fn an_undo_or_reversal_reply_without_a_code_is_not_a_refusal() {
        let rig = Rig::start();
        let (g, _) = rig.intercepted(|m| match m.get("txnType") {
            Some("31") | Some("99") => Act::Reply(reply_to(m, None)),
            _ => Act::Forward,
        });
        let a = paid(&g, 1300);
        let r = g.reverse(&a);
        assert!(
            matches!(r.reply, Reply::RetryLater { .. } | Reply::Unknown { .. }),
            "undo: {r:?}"
        );
        let b = attempt(1655, crate::util::now_ms());
        g.pay(&b, &code());
        let r = g.reverse(&b);
        assert!(
            matches!(r.reply, Reply::RetryLater { .. } | Reply::Unknown { .. }),
            "reversal: {r:?}"
        );
    }
}
