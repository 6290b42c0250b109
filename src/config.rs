//! Configuration: the TOML file of DESIGN.md §6, its secrets, and `payterm config check`.
//!
//! Loading resolves relative paths against the file's own folder, reads secrets from files or
//! systemd credentials (never from the command line, never into logs), and turns everything into
//! typed settings. `problems()` explains every mistake it finds in words an installer can act on.
//! This module reads files; it sends nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::core::authcode::{CodeRule, Wallet, default_rules};
use crate::core::money::Amount;
use crate::gateway::aggregator::AggregatorConfig;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path} ({why}) — pass --config FILE or set PAYTERM_CONFIG")]
    Read { path: String, why: String },
    #[error("the configuration {path} is not valid: {why}")]
    Parse { path: String, why: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the secret {what} from {path}: {why}")]
    Secret {
        what: String,
        path: String,
        why: String,
    },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terminal {
    /// Letters and digits, at most 12: the head of every order number this terminal makes.
    pub id: String,
    #[serde(default = "default_merchant")]
    pub merchant_name: String,
    /// The HMAC key for payment-code fingerprints; created (mode 0600) if missing.
    #[serde(default)]
    pub device_key_file: Option<String>,
    /// A sandbox configuration: test keys may be world-readable and come with the repository.
    #[serde(default)]
    pub sandbox: bool,
    /// Screen and message language: `zh` or `en`.
    #[serde(default = "default_locale")]
    pub locale: String,
}

fn default_merchant() -> String {
    "payterm".into()
}
fn default_locale() -> String {
    "zh".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalCfg {
    pub path: String,
    /// Settled attempts older than this many days are archived (JSONL beside the journal) and
    /// removed by the daemon's daily prune; 0 keeps them for ever.
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
}

fn default_keep_days() -> u32 {
    400
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest single payment, in yuan.
    #[serde(default = "default_max_amount")]
    pub max_amount: String,
    /// New sales are refused while this many attempts are unsettled.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// … or while the unsettled amounts add up to this, in yuan.
    #[serde(default = "default_max_uncertain")]
    pub max_uncertain: String,
    /// … or while the oldest unsettled attempt is older than this.
    #[serde(default = "default_max_open_age")]
    pub max_open_age_s: u64,
    /// The same payment code scanned again within this window is refused.
    #[serde(default = "default_dup")]
    pub duplicate_window_s: u64,
    /// A wall-clock jump larger than this (against the journal's newest write) stops new sales.
    #[serde(default = "default_jump")]
    pub clock_jump_s: u64,
}

fn default_max_amount() -> String {
    "5000.00".into()
}
fn default_max_open() -> usize {
    20
}
fn default_max_uncertain() -> String {
    "2000.00".into()
}
fn default_max_open_age() -> u64 {
    7200
}
fn default_dup() -> u64 {
    120
}
fn default_jump() -> u64 {
    120
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_amount: default_max_amount(),
            max_open: default_max_open(),
            max_uncertain: default_max_uncertain(),
            max_open_age_s: default_max_open_age(),
            duplicate_window_s: default_dup(),
            clock_jump_s: default_jump(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateways {
    #[serde(default)]
    pub aggregator: Option<AggregatorConfig>,
    /// UnionPay 全渠道 (ACP): route `UNIONPAY = "acp"` to use it.
    #[serde(default)]
    pub acp: Option<crate::gateway::unionpay::AcpConfig>,
    /// ChinaUMS POS-link: select it with `--gateway chinaums` or a route.
    #[serde(default)]
    pub chinaums: Option<crate::gateway::chinaums::ChinaUmsConfig>,
    /// 云闪付 无感支付: contract customers (`payterm contract …`), debited as gateway `upapi`.
    #[serde(default)]
    pub upapi: Option<crate::gateway::upapi::UpapiConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// How often the daemon looks for due store-and-forward work.
    #[serde(default = "default_tick")]
    pub interval_ms: u64,
    /// At most this many gateway requests per second while draining the queue.
    #[serde(default = "default_rate")]
    pub rate_per_s: f64,
}

fn default_tick() -> u64 {
    30_000
}
fn default_rate() -> f64 {
    2.0
}

impl Default for Recovery {
    fn default() -> Recovery {
        Recovery {
            interval_ms: default_tick(),
            rate_per_s: default_rate(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ecr {
    /// `unix:/run/payterm/ecr.sock` or `127.0.0.1:8700`.
    #[serde(default = "default_ecr")]
    pub listen: String,
    /// Bearer token file, required for a TCP address other than loopback.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Connections held open at once; past it the least recently active connection without a
    /// request being handled is closed, so idle sockets cannot starve a cash register.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a request's header, and then its body, may take to arrive; also how long an
    /// idle connection is kept.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
}

fn default_max_connections() -> usize {
    256
}

fn default_read_timeout_ms() -> u64 {
    10_000
}

fn default_ecr() -> String {
    "unix:/run/payterm/ecr.sock".into()
}

impl Default for Ecr {
    fn default() -> Ecr {
        Ecr {
            listen: default_ecr(),
            token_file: None,
            max_connections: default_max_connections(),
            read_timeout_ms: default_read_timeout_ms(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub terminal: Terminal,
    pub journal: JournalCfg,
    #[serde(default)]
    pub limits: Limits,
    /// Wallet (paytype) → gateway name. Unlisted wallets go to the aggregator when it is set.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    pub gateways: Gateways,
    #[serde(default)]
    pub recovery: Recovery,
    #[serde(default)]
    pub ecr: Ecr,
    /// The board profile (devices and display), relative to this file.
    #[serde(default)]
    pub board: Option<String>,
    /// Extra or replacement payment-code rules.
    #[serde(default)]
    pub code_rules: Vec<CodeRule>,
}

/// The loaded configuration with paths resolved.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: File,
    pub path: PathBuf,
    pub dir: PathBuf,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| {
            // serde stops at the first unknown key; an installer wants every typo at once.
            let (unknown, _) = parse_lenient(text);
            let why = if unknown.is_empty() {
                e.to_string()
            } else {
                unknown
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            };
            ConfigError::Parse {
                path: path.display().to_string(),
                why,
            }
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let c = Config {
            file,
            path: path.to_path_buf(),
            dir,
        };
        let errors: Vec<String> = c
            .problems()
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.to_string())
            .collect();
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "the configuration {} has problems:\n  {}",
                path.display(),
                errors.join("\n  ")
            )));
        }
        Ok(c)
    }

    /// A path from the file, resolved against the file's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let pb = PathBuf::from(p);
        if pb.is_absolute() {
            pb
        } else {
            self.dir.join(pb)
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.resolve(&self.file.journal.path)
    }

    pub fn max_amount(&self) -> Amount {
        Amount::parse_yuan(&self.file.limits.max_amount).unwrap_or(Amount::from_fen(500_000))
    }

    pub fn max_uncertain(&self) -> Amount {
        Amount::parse_yuan(&self.file.limits.max_uncertain).unwrap_or(Amount::from_fen(200_000))
    }

    pub fn code_rules(&self) -> Vec<CodeRule> {
        let mut rules = self.file.code_rules.clone();
        rules.extend(default_rules());
        rules
    }

    /// The gateway that takes payments of `wallet`.
    pub fn route(&self, wallet: Wallet) -> Option<String> {
        match self.file.routes.get(wallet.paytype()) {
            Some(g) if g == "none" => None,
            Some(g) => Some(g.clone()),
            None if wallet == Wallet::Ecny => None,
            None => self
                .file
                .gateways
                .aggregator
                .as_ref()
                .map(|_| "aggregator".to_string()),
        }
    }

    /// Reads a secret named by `spec`: a file path, or `credential:NAME` for a systemd credential.
    pub fn read_secret(&self, what: &str, spec: &str) -> Result<String, ConfigError> {
        let path = self.secret_path(spec);
        let err = |why: String| ConfigError::Secret {
            what: what.to_string(),
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let s = text.trim().to_string();
        if s.is_empty() {
            return Err(err("the file is empty".into()));
        }
        Ok(s)
    }

    fn secret_path(&self, spec: &str) -> PathBuf {
        match spec.strip_prefix("credential:") {
            Some(name) => PathBuf::from(
                std::env::var("CREDENTIALS_DIRECTORY")
                    .unwrap_or_else(|_| "/run/credentials/payterm.service".into()),
            )
            .join(name),
            None => self.resolve(spec),
        }
    }

    /// The device key for fingerprints, created with mode 0600 on first use.
    pub fn device_key(&self) -> Result<Vec<u8>, ConfigError> {
        let spec = self
            .file
            .terminal
            .device_key_file
            .clone()
            .unwrap_or_else(|| {
                self.journal_path()
                    .with_file_name("device.key")
                    .display()
                    .to_string()
            });
        let path = self.secret_path(&spec);
        if let Ok(k) = std::fs::read(&path)
            && k.len() >= 16
        {
            return Ok(k);
        }
        use rand::RngCore;
        let mut k = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        write_private(&path, &k).map_err(|e| ConfigError::Secret {
            what: "device key".into(),
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Ok(k)
    }

    /// Every problem found, errors first. Nothing is sent anywhere.
    pub fn problems(&self) -> Vec<Problem> {
        let mut v = Vec::new();
        let f = &self.file;
        let t = &f.terminal;
        if t.id.is_empty() || t.id.len() > 12 || !t.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            v.push(Problem::error(
                "terminal.id",
                format!(
                    "{:?} must be 1 to 12 letters or digits (it starts every order number)",
                    t.id
                ),
            ));
        }
        if t.locale != "zh" && t.locale != "en" {
            v.push(Problem::error(
                "terminal.locale",
                "must be \"zh\" or \"en\"",
            ));
        }
        for (name, val) in [
            ("limits.max_amount", &f.limits.max_amount),
            ("limits.max_uncertain", &f.limits.max_uncertain),
        ] {
            if let Err(e) = Amount::parse_yuan(val) {
                v.push(Problem::error(name, e.to_string()));
            }
        }
        if f.limits.max_open == 0 {
            v.push(Problem::error("limits.max_open", "must be at least 1"));
        }
        if f.recovery.rate_per_s <= 0.0 {
            v.push(Problem::error("recovery.rate_per_s", "must be positive"));
        }
        for (wallet, gw) in &f.routes {
            if Wallet::from_paytype(wallet).is_none() {
                v.push(Problem::error(
                    format!("routes.{wallet}"),
                    "is not a wallet; use WECHAT, ALIPAY, UNIONPAY, JDPAY, QQ, BESTPAY or ECNY",
                ));
            }
            let known = gw == "none"
                || (gw == "aggregator" && f.gateways.aggregator.is_some())
                || (gw == "acp" && f.gateways.acp.is_some())
                || (gw == "chinaums" && f.gateways.chinaums.is_some())
                || (gw == "upapi" && f.gateways.upapi.is_some());
            if !known {
                v.push(Problem::error(
                    format!("routes.{wallet}"),
                    format!("names gateway {gw:?}, which is not configured under [gateways]"),
                ));
            }
        }
        match &f.gateways.aggregator {
            None => v.push(Problem::warning(
                "gateways.aggregator",
                "no aggregator is configured: WeChat, Alipay and other wallet codes have no route",
            )),
            Some(a) => {
                if url::Url::parse(&a.base_url).is_err() {
                    v.push(Problem::error(
                        "gateways.aggregator.base_url",
                        format!("{:?} is not a URL", a.base_url),
                    ));
                } else if let Some(tail) = gateway_path_tail(&a.base_url) {
                    v.push(Problem::warning(
                        "gateways.aggregator.base_url",
                        format!(
                            "ends in the gateway path {tail:?}: payterm adds /UnifiedPay/Gateway, /Open/… itself, so base_url is only the address, e.g. \"{}\"",
                            a.base_url.trim_end_matches('/').trim_end_matches(tail)
                        ),
                    ));
                }
                if a.base_url.starts_with("http://") && !t.sandbox {
                    v.push(Problem::warning(
                        "gateways.aggregator.base_url",
                        "uses plain http: payment traffic must use https outside the sandbox",
                    ));
                }
                for p in a.policy.problems() {
                    v.push(Problem::error("gateways.aggregator.policy", p));
                }
                self.check_secret(&mut v, "gateways.aggregator.key_file", &a.key_file);
                if let Some(u) = &a.notify_url
                    && url::Url::parse(u).is_err()
                {
                    v.push(Problem::error(
                        "gateways.aggregator.notify_url",
                        "is not a URL",
                    ));
                }
            }
        }
        if let Some(a) = &f.gateways.acp {
            for (field, why) in a.problems(t.sandbox) {
                v.push(Problem::error(field, why));
            }
            // Whether they are required is the ACP configuration's own rule (problems above).
            if let Some(k) = &a.sign_pfx {
                self.check_secret(&mut v, "gateways.acp.sign_pfx", k);
            }
            if let Some(k) = &a.sign_password_file {
                self.check_secret(&mut v, "gateways.acp.sign_password_file", k);
            }
            if let Some(k) = &a.secure_key_file {
                self.check_secret(&mut v, "gateways.acp.secure_key_file", k);
            }
        }
        if let Some(c) = &f.gateways.chinaums {
            for (field, why) in c.problems(t.sandbox) {
                v.push(Problem::error(field, why));
            }
            self.check_secret(&mut v, "gateways.chinaums.app_key_file", &c.app_key_file);
        }
        if let Some(u) = &f.gateways.upapi {
            for (field, why) in u.problems(t.sandbox) {
                v.push(Problem::error(field, why));
            }
            self.check_secret(&mut v, "gateways.upapi.secret_file", &u.secret_file);
            self.check_secret(
                &mut v,
                "gateways.upapi.symmetric_key_file",
                &u.symmetric_key_file,
            );
            match &u.acp.sign_pfx {
                Some(k) => self.check_secret(&mut v, "gateways.upapi.acp.sign_pfx", k),
                // With sign_method 01 the ACP rule above already says so.
                None if u.acp.sign_method != "01" => v.push(Problem::error(
                    "gateways.upapi.acp.sign_pfx",
                    "is required: contract debits are signed with the merchant's certificate (signMethod 01), whatever sign_method the other transactions use",
                )),
                None => {}
            }
            if let Some(k) = &u.acp.sign_password_file {
                self.check_secret(&mut v, "gateways.upapi.acp.sign_password_file", k);
            }
        }
        let ecr = &f.ecr.listen;
        if !ecr.starts_with("unix:") {
            match ecr.parse::<std::net::SocketAddr>() {
                Err(_) => v.push(Problem::error("ecr.listen", format!("{ecr:?} is neither unix:PATH nor IP:PORT"))),
                Ok(addr) if !addr.ip().is_loopback() && f.ecr.token_file.is_none() => v.push(Problem::error(
                    "ecr.listen",
                    "listens beyond loopback without ecr.token_file: cash registers must present a token",
                )),
                Ok(_) => {}
            }
        }
        if let Some(t) = &f.ecr.token_file {
            self.check_secret(&mut v, "ecr.token_file", t);
        }
        if f.ecr.max_connections == 0 {
            v.push(Problem::error("ecr.max_connections", "must be at least 1"));
        }
        if !(100..=600_000).contains(&f.ecr.read_timeout_ms) {
            v.push(Problem::error(
                "ecr.read_timeout_ms",
                "must be from 100 to 600000 (milliseconds)",
            ));
        }
        if let Some(b) = &f.board
            && !self.resolve(b).exists()
        {
            v.push(Problem::error(
                "board",
                format!(
                    "the board profile {} does not exist",
                    self.resolve(b).display()
                ),
            ));
        }
        v.sort_by_key(|p| p.severity != Severity::Error);
        v
    }

    fn check_secret(&self, v: &mut Vec<Problem>, field: &str, spec: &str) {
        let path = self.secret_path(spec);
        match std::fs::metadata(&path) {
            Err(e) => v.push(Problem::error(
                field,
                format!("cannot read {}: {e}", path.display()),
            )),
            Ok(m) => {
                use std::os::unix::fs::PermissionsExt;
                if m.permissions().mode() & 0o004 != 0 {
                    let p = format!(
                        "{} is readable by every user; run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    );
                    v.push(if self.file.terminal.sandbox {
                        Problem::warning(
                            field,
                            format!("{p} (accepted: this is a sandbox configuration)"),
                        )
                    } else {
                        Problem::error(field, p)
                    });
                }
            }
        }
    }
}

/// The aggregator path a base_url wrongly ends in, if any (the seed's examples write the
/// whole `http://{BaseURL}/UnifiedPay/Gateway`, which installers copy).
fn gateway_path_tail(base_url: &str) -> Option<&'static str> {
    let u = base_url.trim_end_matches('/');
    [
        "/UnifiedPay/Gateway",
        "/UnifiedPay/Mch_Reg",
        "/UnifiedPay",
        "/Open/GetMchInfo",
        "/Open/WECHAT_PreOrder",
        "/Open/ALIPAY_PreOrder",
        "/Open",
        "/Mch",
    ]
    .into_iter()
    .find(|p| u.ends_with(p))
}

/// The field names of a struct, as serde's derive lists them: asked of a deserializer that
/// records them and then refuses, so the list can never drift from the types.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The tables of the file whose keys are fixed, by path.
fn schema(path: &str) -> Option<&'static [&'static str]> {
    use crate::gateway::{chinaums, unionpay, upapi};
    Some(match path {
        "" => fields_of::<File>(),
        "terminal" => fields_of::<Terminal>(),
        "journal" => fields_of::<JournalCfg>(),
        "limits" => fields_of::<Limits>(),
        "gateways" => fields_of::<Gateways>(),
        "recovery" => fields_of::<Recovery>(),
        "ecr" => fields_of::<Ecr>(),
        "gateways.aggregator" => fields_of::<AggregatorConfig>(),
        "gateways.acp" | "gateways.upapi.acp" => fields_of::<unionpay::AcpConfig>(),
        "gateways.chinaums" => fields_of::<chinaums::ChinaUmsConfig>(),
        "gateways.chinaums.bills" => fields_of::<chinaums::BillsConfig>(),
        "gateways.upapi" => fields_of::<upapi::UpapiConfig>(),
        "gateways.upapi.offline" => fields_of::<upapi::OfflineConfig>(),
        p if p.ends_with(".policy") => fields_of::<crate::core::policy::Policy>(),
        _ => return None,
    })
}

fn strip_unknown(path: &str, t: &mut toml::Table, found: &mut Vec<Problem>) {
    let Some(known) = schema(path) else { return };
    let mut unknown = Vec::new();
    for (k, v) in t.iter_mut() {
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        if !known.contains(&k.as_str()) {
            unknown.push(k.clone());
            let field = if path.is_empty() { "(top)" } else { path };
            found.push(Problem::error(
                field,
                format!(
                    "unknown key {k:?} (a typo?); the keys here are: {}",
                    known.join(", ")
                ),
            ));
        } else if let toml::Value::Table(sub) = v {
            strip_unknown(&here, sub, found);
        }
    }
    for k in unknown {
        t.remove(&k);
    }
}

/// Reads a configuration as far as it can: every unknown key as a problem (serde's
/// deny_unknown_fields names only the first), and the file without them, if the rest is valid.
/// A file that is not TOML, or wrong beyond unknown keys, gives its parser's error.
pub fn parse_lenient(text: &str) -> (Vec<Problem>, Result<File, String>) {
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return (vec![], Err(e.to_string())),
    };
    let mut found = Vec::new();
    strip_unknown("", &mut table, &mut found);
    let file = toml::Value::Table(table)
        .try_into::<File>()
        .map_err(|e| e.to_string());
    (found, file)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{s}: {}: {}", self.field, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[terminal]
id = "T01"
[journal]
path = "j.db"
[gateways.aggregator]
base_url = "http://127.0.0.1:8917"
agent_id = "1"
mch_id = "2"
key_file = "agg.key"
"#;

    #[test]
    fn explains_each_mistake() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let bad = MIN.replace("\"T01\"", "\"T-01\"").replace(
            "[journal]",
            "[routes]\nWECHAT = \"acp\"\nFOO = \"aggregator\"\n[journal]",
        );
        let e = Config::parse(&bad, &p).unwrap_err().to_string();
        assert!(e.contains("terminal.id"), "{e}");
        assert!(e.contains("routes.WECHAT"), "{e}");
        assert!(e.contains("routes.FOO"), "{e}");
        assert!(e.contains("agg.key"), "{e}");
        let typo = MIN.replace("mch_id", "merchant_id");
        assert!(
            Config::parse(&typo, &p)
                .unwrap_err()
                .to_string()
                .contains("merchant_id")
        );
    }

    #[test]
    fn every_unknown_key_is_named_at_once_and_a_gateway_path_in_base_url_warned() {
        let text = MIN
            .replace("mch_id", "merchant_id")
            .replace("id = \"T01\"", "id = \"T01\"\nlocal = \"zh\"")
            .replace("[journal]", "colour = 1\n[journal]");
        let (unknown, file) = parse_lenient(&text);
        let all: Vec<String> = unknown.iter().map(|p| p.to_string()).collect();
        assert_eq!(all.len(), 3, "{all:?}");
        for k in ["\"local\"", "\"colour\"", "\"merchant_id\""] {
            assert!(all.iter().any(|p| p.contains(k)), "{k}: {all:?}");
        }
        let text2 = text.replace("colour = 1\n", "") + "\n[recovery]\nintervall_ms = 5\n";
        let (unknown, _) = parse_lenient(&text2);
        assert_eq!(unknown.len(), 3, "{unknown:?}");
        // merchant_id replaced the required mch_id: the rest cannot load, and says so.
        assert!(file.is_err());
        let e = Config::parse(&text2, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("local") && e.contains("intervall_ms"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(dir.path().join("agg.key"), "k").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.path().join("agg.key"), mode).unwrap();
        let with_path = MIN.replace(
            "base_url = \"http://127.0.0.1:8917\"",
            "base_url = \"http://127.0.0.1:8917/UnifiedPay/Gateway\"",
        );
        let c = Config::parse(&with_path, &p).unwrap();
        let w = c.problems();
        assert!(
            w.iter().any(|p| p.severity == Severity::Warning
                && p.message.contains("/UnifiedPay/Gateway")
                && p.message.contains("\"http://127.0.0.1:8917\"")),
            "{w:?}"
        );
    }

    #[test]
    fn acp_needs_the_merchant_pfx_for_sign_method_01_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (f, text) in [
            ("agg.key", "k"),
            ("secure.key", crate::sandbox::acp::SANDBOX_SECURE_KEY),
        ] {
            std::fs::write(dir.path().join(f), text).unwrap();
            let mode = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(dir.path().join(f), mode).unwrap();
        }
        let p = dir.path().join("c.toml");
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sandbox-acp");
        let acp = |keys: &str| {
            format!(
                r#"{MIN}
[gateways.acp]
base_url = "https://gateway.95516.com"
mer_id = "777290058110048"
encrypt_cert = "{d}/sandbox_enc.cer"
middle_cert = "{d}/sandbox_middle.cer"
root_cert = "{d}/sandbox_root.cer"
back_url = "https://example.com/acp/notify"
{keys}"#,
                d = d.display()
            )
        };
        // signMethod 11: the secure key signs; no PFX, no password, and the keys load.
        let c = Config::parse(
            &acp("sign_method = \"11\"\nsecure_key_file = \"secure.key\"\n"),
            &p,
        )
        .unwrap();
        let a = c.file.gateways.acp.as_ref().unwrap();
        let keys = crate::gateway::unionpay::AcpKeys::load(&c, a).unwrap();
        assert!(keys.key.is_none() && keys.secure_key.is_some());
        // signMethod 01 (the default) without it: `config check` says what is missing and why.
        let e = Config::parse(&acp(""), &p).unwrap_err().to_string();
        assert!(
            e.contains("error: gateways.acp.sign_pfx: is required with sign_method 01"),
            "{e}"
        );
    }

    #[test]
    fn world_readable_keys_are_refused_outside_the_sandbox() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("agg.key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = dir.path().join("c.toml");
        let e = Config::parse(MIN, &p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let sandbox = MIN.replace("id = \"T01\"", "id = \"T01\"\nsandbox = true");
        let c = Config::parse(&sandbox, &p).unwrap();
        assert!(c.problems().iter().any(|p| p.severity == Severity::Warning));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Config::parse(MIN, &p).unwrap();
        assert_eq!(c.read_secret("key", "agg.key").unwrap(), "k");
        assert_eq!(c.route(Wallet::Wechat).as_deref(), Some("aggregator"));
        assert_eq!(c.route(Wallet::Ecny), None);
        let k1 = c.device_key().unwrap();
        assert_eq!(c.device_key().unwrap(), k1, "created once, then read back");
    }

    #[test]
    fn a_world_readable_ecr_token_is_refused_outside_the_sandbox() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::write(dir.path().join("agg.key"), "k").unwrap();
        std::fs::set_permissions(dir.path().join("agg.key"), private.clone()).unwrap();
        let token = dir.path().join("ecr.token");
        std::fs::write(&token, "t0ken").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = dir.path().join("c.toml");
        let text = format!("{MIN}\n[ecr]\nlisten = \"0.0.0.0:8700\"\ntoken_file = \"ecr.token\"\n");
        let e = Config::parse(&text, &p).unwrap_err().to_string();
        assert!(
            e.contains("ecr.token_file") && e.contains("chmod 600"),
            "{e}"
        );
        let sandbox = text.replace("id = \"T01\"", "id = \"T01\"\nsandbox = true");
        assert!(Config::parse(&sandbox, &p).is_ok());
        std::fs::set_permissions(&token, private).unwrap();
        let c = Config::parse(&text, &p).unwrap();
        assert_eq!(c.file.ecr.max_connections, 256);
        assert_eq!(c.file.ecr.read_timeout_ms, 10_000);
    }
}
