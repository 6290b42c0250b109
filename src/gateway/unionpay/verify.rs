//! Verification of ACP replies and back notifications, reported step by step.
//!
//! Owns the trust decision of PROTOCOLS.md §A.5: parse, the signature fields, the
//! `signPubKeyCert` certificate, its chain to the configured middle and root (SHA-1 certificate
//! signatures accepted), validity at a time the caller passes in, the owner (CN) rule, then the
//! message signature. A reply is believed only through [`VerifiedMessage`], which nothing but a
//! fully passed report can produce. It reads no clock and no files.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::cert::{Certificate, fmt_unix, unix_seconds};
use super::message::{AcpMessage, cert_hash_for_version, hex_digest};
use crate::sign::rsa::verify_pkcs1;
use crate::sign::sm3::{SecureKeyHash, secure_key_verify};

/// The organisation name every UnionPay signing certificate carries in its CN.
pub const UNIONPAY_CN_NAME: &str = "中国银联股份有限公司";
/// The CN element UnionPay's older test-environment certificates carry instead.
pub const TEST_CN_NAME: &str = "00040000:SIGN";
/// The OU CFCA puts on the enterprise certificates UnionPay signs with (every UnionPay
/// certificate seen, test and production-issued, carries it).
pub const UNIONPAY_OU: &str = "Enterprises";

/// Who may sign replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerRule {
    /// Production (`ifValidateCNName=true`): the CN, split on `@`, has `中国银联股份有限公司` as its
    /// third element, and when `required_ou` is set one OU equals it.
    Production { required_ou: Option<String> },
    /// Test environment (`ifValidateCNName=false`): the third CN element may also be
    /// `00040000:SIGN`. Only for test configurations.
    Test,
}

impl OwnerRule {
    /// The production rule with the CFCA enterprise OU required.
    pub fn production() -> OwnerRule {
        OwnerRule::Production {
            required_ou: Some(UNIONPAY_OU.to_string()),
        }
    }

    fn check(&self, cert: &Certificate) -> Result<String, String> {
        let cn = cert
            .subject()
            .common_name()
            .ok_or_else(|| "owner name: the certificate has no CN".to_string())?;
        let element = cn.split('@').nth(2).unwrap_or("");
        let accepted = match self {
            OwnerRule::Production { .. } => element == UNIONPAY_CN_NAME,
            OwnerRule::Test => element == UNIONPAY_CN_NAME || element == TEST_CN_NAME,
        };
        if !accepted {
            return Err(format!(
                "owner name: CN \"{cn}\" does not name {UNIONPAY_CN_NAME}{}",
                if matches!(self, OwnerRule::Test) {
                    " (nor the test value 00040000:SIGN)"
                } else {
                    ""
                }
            ));
        }
        if let OwnerRule::Production {
            required_ou: Some(ou),
        } = self
        {
            let ous = cert.subject().org_units();
            if !ous.iter().any(|o| o == ou) {
                return Err(format!("owner name: OU {ous:?} does not include \"{ou}\""));
            }
        }
        Ok(format!(
            "CN \"{cn}\" accepted ({} rule)",
            match self {
                OwnerRule::Production { .. } => "production",
                OwnerRule::Test => "test",
            }
        ))
    }
}

/// What a verifier trusts.
#[derive(Clone)]
pub struct TrustConfig {
    /// The configured intermediate (`acp_*_middle.cer`).
    pub middle: Certificate,
    /// The configured root (`acp_*_root.cer`), the trust anchor.
    pub root: Certificate,
    pub owner: OwnerRule,
    /// Local verify certificates for version 5.0.0 replies, looked up by their `certId`.
    pub verify_certs_v500: Vec<Certificate>,
    /// The secure key, for signMethod 11/12 replies.
    pub secure_key: Option<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for TrustConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustConfig")
            .field("middle", &self.middle.subject().to_string())
            .field("root", &self.root.subject().to_string())
            .field("owner", &self.owner)
            .field("verify_certs_v500", &self.verify_certs_v500.len())
            .field("secure_key", &self.secure_key.as_ref().map(|_| "redacted"))
            .finish()
    }
}

impl TrustConfig {
    /// A trust configuration with the production owner rule.
    pub fn production(middle: Certificate, root: Certificate) -> TrustConfig {
        TrustConfig {
            middle,
            root,
            owner: OwnerRule::production(),
            verify_certs_v500: Vec::new(),
            secure_key: None,
        }
    }

    /// A trust configuration with the test owner rule (test environment only).
    pub fn test(middle: Certificate, root: Certificate) -> TrustConfig {
        TrustConfig {
            owner: OwnerRule::Test,
            ..TrustConfig::production(middle, root)
        }
    }
}

/// The steps of a verification, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Parse,
    SignatureFields,
    Certificate,
    Chain,
    Validity,
    Owner,
    Signature,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Parse => "parse",
            Step::SignatureFields => "signature fields",
            Step::Certificate => "certificate",
            Step::Chain => "chain",
            Step::Validity => "validity",
            Step::Owner => "owner",
            Step::Signature => "signature",
        }
    }
}

/// How one step went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Failed(String),
    /// Not run: an earlier step it depends on failed, or it does not apply.
    NotRun(String),
}

/// One line of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    pub step: Step,
    pub outcome: Outcome,
}

/// The full story of one verification. Passed only if no step failed and the signature step
/// passed.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub steps: Vec<StepResult>,
    message: Option<AcpMessage>,
}

/// A message whose signature verified under a [`TrustConfig`]. Only [`VerifyReport`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedMessage(AcpMessage);

impl VerifiedMessage {
    pub fn message(&self) -> &AcpMessage {
        &self.0
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    /// For tests of code that consumes verified replies (sandbox, classification): wraps a
    /// message without verifying it. Never call it on data from outside. Fuzz builds
    /// (`--cfg fuzzing`, set by cargo-fuzz) have it too, to reach the classification.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn assume_verified(m: AcpMessage) -> VerifiedMessage {
        VerifiedMessage(m)
    }
}

impl VerifyReport {
    /// True when every step passed or did not apply, and the signature step passed.
    pub fn passed(&self) -> bool {
        self.failure().is_none()
            && self
                .steps
                .iter()
                .any(|s| s.step == Step::Signature && matches!(s.outcome, Outcome::Passed(_)))
    }

    /// The first failed step and its reason.
    pub fn failure(&self) -> Option<(Step, &str)> {
        self.steps.iter().find_map(|s| match &s.outcome {
            Outcome::Failed(why) => Some((s.step, why.as_str())),
            _ => None,
        })
    }

    /// The outcome of a step, if it was reported.
    pub fn outcome(&self, step: Step) -> Option<&Outcome> {
        self.steps
            .iter()
            .find(|s| s.step == step)
            .map(|s| &s.outcome)
    }

    /// The parsed message, verified or not (for display; do not act on it unless passed).
    pub fn message(&self) -> Option<&AcpMessage> {
        self.message.as_ref()
    }

    /// The verified message, or this report when verification failed.
    pub fn into_verified(self) -> Result<VerifiedMessage, VerifyReport> {
        if self.passed() {
            match self.message {
                Some(m) => Ok(VerifiedMessage(m)),
                None => Err(self),
            }
        } else {
            Err(self)
        }
    }

    fn push(&mut self, step: Step, outcome: Outcome) {
        self.steps.push(StepResult { step, outcome });
    }

    fn not_run_rest(&mut self, from: &[Step], why: &str) {
        for &s in from {
            self.push(s, Outcome::NotRun(why.to_string()));
        }
    }

    /// The signature fields cannot be used (`why`): that step fails and every later one is not
    /// run, for `rest`.
    fn fields_failed(&mut self, why: String, rest: &str) {
        self.push(Step::SignatureFields, Outcome::Failed(why));
        self.not_run_rest(&[CERT_STEPS.as_slice(), &[Step::Signature]].concat(), rest);
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failure() {
            None if self.passed() => writeln!(f, "ACP signature verification: PASSED")?,
            None => writeln!(f, "ACP signature verification: NOT VERIFIED")?,
            Some((step, why)) => writeln!(
                f,
                "ACP signature verification: FAILED at {}: {why}",
                step.name()
            )?,
        }
        for s in &self.steps {
            let (tag, text) = match &s.outcome {
                Outcome::Passed(t) => ("  ok  ", t),
                Outcome::Failed(t) => ("FAILED", t),
                Outcome::NotRun(t) => ("  --  ", t),
            };
            writeln!(f, "  [{tag}] {:<16} {text}", s.step.name())?;
        }
        Ok(())
    }
}

/// Verifies a raw synchronous reply (the HTTP body as received). Trailing CR/LF after the last
/// field (as an editor leaves in a saved file) are ignored; nothing else is changed.
pub fn verify_report(raw: &str, trust: &TrustConfig, now: SystemTime) -> VerifyReport {
    let trimmed = raw.trim_end_matches(['\r', '\n']);
    let note = if trimmed.len() != raw.len() {
        " (trailing line break ignored)"
    } else {
        ""
    };
    match AcpMessage::parse_raw(trimmed) {
        Ok(m) => verify_parsed(m, note, trust, now),
        Err(e) => failed_parse(e.to_string()),
    }
}

/// Verifies a back notification as POSTed (`application/x-www-form-urlencoded` body).
pub fn verify_notification_report(
    form_body: &str,
    trust: &TrustConfig,
    now: SystemTime,
) -> VerifyReport {
    match AcpMessage::parse_form(form_body) {
        Ok(m) => verify_parsed(m, " (form-decoded)", trust, now),
        Err(e) => failed_parse(e.to_string()),
    }
}

/// Verifies an already parsed message.
pub fn verify_message(msg: &AcpMessage, trust: &TrustConfig, now: SystemTime) -> VerifyReport {
    verify_parsed(msg.clone(), "", trust, now)
}

fn failed_parse(why: String) -> VerifyReport {
    let mut r = VerifyReport {
        steps: Vec::new(),
        message: None,
    };
    r.push(
        Step::Parse,
        Outcome::Failed(format!("cannot parse the message: {why}")),
    );
    r.not_run_rest(
        &[
            Step::SignatureFields,
            Step::Certificate,
            Step::Chain,
            Step::Validity,
            Step::Owner,
            Step::Signature,
        ],
        "message not parsed",
    );
    r
}

const CERT_STEPS: [Step; 4] = [Step::Certificate, Step::Chain, Step::Validity, Step::Owner];

fn verify_parsed(m: AcpMessage, note: &str, trust: &TrustConfig, now: SystemTime) -> VerifyReport {
    let mut r = VerifyReport {
        steps: Vec::new(),
        message: None,
    };
    r.push(
        Step::Parse,
        Outcome::Passed(format!("{} fields{note}", m.fields().len())),
    );
    let sign_method = m.get("signMethod").unwrap_or("");
    let signature = m.get("signature").unwrap_or("");
    let version = m.get("version").unwrap_or("");
    if signature.is_empty() {
        r.fields_failed(
            "a field was removed or is empty: no `signature`".into(),
            "no signature",
        );
        r.message = Some(m);
        return r;
    }
    match sign_method {
        "01" => verify_cert_method(&mut r, &m, version, signature, trust, now),
        "11" | "12" => {
            let hash = if sign_method == "11" {
                SecureKeyHash::Sha256
            } else {
                SecureKeyHash::Sm3
            };
            r.push(
                Step::SignatureFields,
                Outcome::Passed(format!("signMethod {sign_method} (secure key, {hash:?})")),
            );
            r.not_run_rest(&CERT_STEPS, "signMethod 11/12 carries no certificate");
            match &trust.secure_key {
                None => r.push(
                    Step::Signature,
                    Outcome::Failed(format!(
                        "signMethod {sign_method} needs the secure key, and none is configured"
                    )),
                ),
                Some(key) => {
                    if secure_key_verify(hash, &m.string_to_sign(), key, signature) {
                        r.push(
                            Step::Signature,
                            Outcome::Passed("secure-key hash matches".into()),
                        );
                    } else {
                        r.push(
                            Step::Signature,
                            Outcome::Failed(
                                "digest mismatch: the secure-key hash does not match; a field was changed, or another key was used".into(),
                            ),
                        );
                    }
                }
            }
        }
        other => {
            r.fields_failed(
                format!("signMethod {other:?} is not one of 01, 11, 12 (a field was changed?)"),
                "unknown signMethod",
            );
        }
    }
    r.message = Some(m);
    r
}

fn verify_cert_method(
    r: &mut VerifyReport,
    m: &AcpMessage,
    version: &str,
    signature: &str,
    trust: &TrustConfig,
    now: SystemTime,
) {
    let Some(hash) = cert_hash_for_version(version) else {
        r.fields_failed(
            format!("version {version:?} is not a known ACP version (a field was changed?)"),
            "unknown version",
        );
        return;
    };
    let leaf: Result<Certificate, String> = if version == "5.1.0" {
        match m.get("signPubKeyCert") {
            None | Some("") => {
                r.fields_failed(
                    "version 5.1.0 reply without `signPubKeyCert`".into(),
                    "no certificate",
                );
                return;
            }
            Some(pem) => {
                r.push(
                    Step::SignatureFields,
                    Outcome::Passed(format!("signMethod 01, version {version}, {hash:?}")),
                );
                Certificate::from_pem(pem)
                    .map_err(|e| format!("signPubKeyCert is not a valid certificate: {e}"))
            }
        }
    } else {
        let cert_id = m.get("certId").unwrap_or("");
        r.push(
            Step::SignatureFields,
            Outcome::Passed(format!(
                "signMethod 01, version {version}, {hash:?}, certId {cert_id}"
            )),
        );
        trust
            .verify_certs_v500
            .iter()
            .find(|c| c.serial_decimal() == cert_id)
            .cloned()
            .ok_or_else(|| format!("no configured 5.0.0 verify certificate has certId {cert_id:?}"))
    };
    let leaf = match leaf {
        Ok(c) => {
            r.push(
                Step::Certificate,
                Outcome::Passed(format!(
                    "serial {}, subject \"{}\"",
                    c.serial_decimal(),
                    c.subject()
                )),
            );
            c
        }
        Err(why) => {
            r.push(Step::Certificate, Outcome::Failed(why));
            r.not_run_rest(
                &[Step::Chain, Step::Validity, Step::Owner, Step::Signature],
                "no usable certificate",
            );
            return;
        }
    };

    // Chain: leaf -> configured middle -> configured root.
    let chain = leaf
        .check_issued_by(&trust.middle)
        .map_err(|e| format!("wrong chain: leaf to middle: {e}"))
        .and_then(|()| {
            trust
                .middle
                .check_issued_by(&trust.root)
                .map_err(|e| format!("wrong chain: middle to root: {e}"))
        });
    r.push(
        Step::Chain,
        match chain {
            Ok(()) => Outcome::Passed(format!(
                "\"{}\" -> \"{}\" -> \"{}\"",
                leaf.subject().common_name().unwrap_or("?"),
                trust.middle.subject().common_name().unwrap_or("?"),
                trust.root.subject().common_name().unwrap_or("?")
            )),
            Err(why) => Outcome::Failed(why),
        },
    );

    // Validity of every certificate on the path, at the caller's time.
    let mut validity = Ok(());
    for (label, c) in [
        ("leaf", &leaf),
        ("middle", &trust.middle),
        ("root", &trust.root),
    ] {
        if let Err(e) = c.check_validity(now) {
            validity = Err(format!("{label} certificate {e}"));
            break;
        }
    }
    r.push(
        Step::Validity,
        match validity {
            Ok(()) => Outcome::Passed(format!(
                "valid at {} (leaf until {})",
                fmt_unix(unix_seconds(now)),
                fmt_unix(leaf.not_after_unix())
            )),
            Err(why) => Outcome::Failed(why),
        },
    );

    r.push(
        Step::Owner,
        match trust.owner.check(&leaf) {
            Ok(t) => Outcome::Passed(t),
            Err(why) => Outcome::Failed(why),
        },
    );

    // The message signature itself (checked even when a certificate step failed, so the report
    // shows everything that is wrong; the verdict still fails).
    let sig = match base64::engine::general_purpose::STANDARD.decode(signature.as_bytes()) {
        Ok(s) => s,
        Err(e) => {
            r.push(
                Step::Signature,
                Outcome::Failed(format!(
                    "`signature` is not canonical base64 ({e}): a field was changed"
                )),
            );
            return;
        }
    };
    let digest = hex_digest(hash, m.string_to_sign().as_bytes());
    if verify_pkcs1(hash, leaf.public_key_der(), digest.as_bytes(), &sig) {
        r.push(
            Step::Signature,
            Outcome::Passed(format!(
                "{hash:?} digest {digest} signed by serial {}",
                leaf.serial_decimal()
            )),
        );
    } else {
        r.push(
            Step::Signature,
            Outcome::Failed(format!(
                "digest mismatch: the signature does not match {hash:?} digest {digest}; a field was changed, or another key signed it"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::unionpay::cert::tests::cert;
    use std::time::{Duration, UNIX_EPOCH};

    const MESSAGES: [&str; 4] = [
        "acp_response_query_00_00.raw.txt",
        "acp_response_cancel_31_00.raw.txt",
        "acp_response_refund_04_00.raw.txt",
        "acp_notify_consume_01_01.raw.txt",
    ];

    fn raw(name: &str) -> String {
        std::fs::read_to_string(
            crate::gateway::unionpay::tests::vectors_dir()
                .join("unionpay-messages")
                .join(name),
        )
        .unwrap()
    }

    fn test_trust() -> TrustConfig {
        TrustConfig::test(cert("acp_test_middle.cer"), cert("acp_test_root.cer"))
    }

    /// The message's own txnTime (Beijing) as the verification time: inside the 2020–2025
    /// validity of the test-2021 UnionPay certificate.
    fn message_time(m: &AcpMessage) -> SystemTime {
        let t = crate::gateway::unionpay::txn::TxnTime::parse(m.get("txnTime").unwrap()).unwrap();
        UNIX_EPOCH + Duration::from_millis(t.unix_ms() as u64)
    }

    fn at(y: i32, mo: u32, d: u32) -> SystemTime {
        let s = chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        UNIX_EPOCH + Duration::from_secs(s as u64)
    }

    #[test]
    fn the_four_real_messages_verify() {
        let readme: serde_json::Value =
            serde_json::from_str(&raw("acp_responses_README.json")).unwrap();
        for name in MESSAGES {
            let text = raw(name);
            let m = AcpMessage::parse_raw(&text).unwrap();
            assert_eq!(
                m.fields().len() as u64,
                readme["files"][name]["fields"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(
                crate::sign::sm3::sha256_hex(m.string_to_sign().as_bytes()),
                readme["files"][name]["sha256_hex_of_sorted_string"]
                    .as_str()
                    .unwrap(),
                "{name}"
            );
            let report = verify_report(&text, &test_trust(), message_time(&m));
            assert!(report.passed(), "{name}:\n{report}");
            assert!(report.into_verified().is_ok());
        }
    }

    #[test]
    fn production_rule_accepts_the_real_unionpay_cn_but_not_wrong_chain() {
        let text = raw("acp_response_refund_04_00.raw.txt");
        let m = AcpMessage::parse_raw(&text).unwrap();
        // Test chain with the production owner rule: the CN and OU are UnionPay's, so it passes.
        let trust = TrustConfig::production(cert("acp_test_middle.cer"), cert("acp_test_root.cer"));
        assert!(verify_report(&text, &trust, message_time(&m)).passed());
        // The production chain does not contain the test certificate.
        let prod = TrustConfig::production(
            cert("prod/acp_prod_middle.cer"),
            cert("prod/acp_prod_root.cer"),
        );
        let report = verify_report(&text, &prod, message_time(&m));
        let (step, why) = report.failure().unwrap();
        assert_eq!(step, Step::Chain, "{report}");
        assert!(why.starts_with("wrong chain"), "{why}");
        assert!(report.into_verified().is_err());
    }

    #[test]
    fn expired_certificate_fails_at_validity() {
        let text = raw("acp_response_query_00_00.raw.txt");
        let report = verify_report(&text, &test_trust(), at(2026, 1, 1));
        let (step, why) = report.failure().unwrap();
        assert_eq!(step, Step::Validity);
        assert!(why.contains("expired on 2025-07-31"), "{why}");
        // The signature itself still checks out, and the report says so.
        assert!(matches!(
            report.outcome(Step::Signature),
            Some(Outcome::Passed(_))
        ));
        assert!(!report.passed());
        let shown = report.to_string();
        assert!(
            shown.starts_with("ACP signature verification: FAILED at validity"),
            "{shown}"
        );
        let early = verify_report(&text, &test_trust(), at(2019, 1, 1));
        assert_eq!(early.failure().unwrap().0, Step::Validity);
    }

    #[test]
    fn owner_rule_rejects_a_merchant_certificate() {
        // A reply "signed" by a merchant's test certificate: chain and dates fine, owner wrong.
        use crate::gateway::unionpay::cert::tests::old_test_key;
        use crate::gateway::unionpay::message::{Signer, sign_fields};
        use rand::SeedableRng;
        let key = old_test_key();
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("version".to_string(), "5.1.0".to_string());
        fields.insert("respCode".to_string(), "00".to_string());
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----",
            base64::engine::general_purpose::STANDARD.encode(key.certificate().der())
        );
        fields.insert("signPubKeyCert".to_string(), pem);
        sign_fields(
            &mut fields,
            Signer::Cert(&key),
            &mut rand::rngs::StdRng::seed_from_u64(0),
        )
        .unwrap();
        let m = AcpMessage::from_fields(fields.into_iter().collect()).unwrap();
        let report = verify_message(&m, &test_trust(), at(2016, 6, 1));
        let (step, why) = report.failure().unwrap();
        assert_eq!(step, Step::Owner, "{report}");
        assert!(why.starts_with("owner name"), "{why}");
        assert!(matches!(
            report.outcome(Step::Signature),
            Some(Outcome::Passed(_))
        ));
    }

    /// One replacement character that differs from `c` and cannot change the message structure.
    fn other_char(c: char) -> char {
        if c == 'A' { 'B' } else { 'A' }
    }

    #[test]
    fn changing_any_character_of_any_field_fails_with_a_named_step() {
        let trust = test_trust();
        let mut checked = 0usize;
        for name in MESSAGES {
            let text = raw(name);
            let m = AcpMessage::parse_raw(&text).unwrap();
            let now = message_time(&m);
            let fields = m.fields().to_vec();
            for (i, (k, v)) in fields.iter().enumerate() {
                // Every character of the value.
                let chars: Vec<char> = v.chars().collect();
                for pos in 0..chars.len() {
                    let mut changed = chars.clone();
                    changed[pos] = other_char(changed[pos]);
                    let mut f = fields.clone();
                    f[i].1 = changed.into_iter().collect();
                    let mutated = AcpMessage::from_fields(f).unwrap().to_raw();
                    let report = verify_report(&mutated, &trust, now);
                    assert!(!report.passed(), "{name}: {k}[{pos}] change accepted");
                    assert!(report.failure().is_some(), "{name}: {k}[{pos}] no reason");
                    checked += 1;
                }
                // The key's first character, and an emptied value.
                let mut f = fields.clone();
                let mut key: Vec<char> = k.chars().collect();
                key[0] = other_char(key[0]);
                f[i].0 = key.into_iter().collect();
                let report =
                    verify_report(&AcpMessage::from_fields(f).unwrap().to_raw(), &trust, now);
                assert!(!report.passed(), "{name}: key {k} renamed, accepted");
                let mut f = fields.clone();
                f[i].1.clear();
                let report =
                    verify_report(&AcpMessage::from_fields(f).unwrap().to_raw(), &trust, now);
                assert!(!report.passed(), "{name}: {k} emptied, accepted");
                // The field removed entirely.
                let mut f = fields.clone();
                f.remove(i);
                let report =
                    verify_report(&AcpMessage::from_fields(f).unwrap().to_raw(), &trust, now);
                assert!(!report.passed(), "{name}: {k} removed, accepted");
            }
            // A field added.
            let report = verify_report(&format!("{text}&extra=1"), &trust, now);
            assert_eq!(report.failure().unwrap().0, Step::Signature);
        }
        assert!(checked > 8000, "only {checked} mutations");
    }

    #[test]
    fn failures_name_their_step() {
        let trust = test_trust();
        let text = raw("acp_response_cancel_31_00.raw.txt");
        let m = AcpMessage::parse_raw(&text).unwrap();
        let now = message_time(&m);
        let with = |k: &str, v: &str| {
            let f: Vec<(String, String)> = m
                .fields()
                .iter()
                .map(|(a, b)| (a.clone(), if a == k { v.to_string() } else { b.clone() }))
                .collect();
            verify_report(&AcpMessage::from_fields(f).unwrap().to_raw(), &trust, now)
        };
        let r = with("txnAmt", "2");
        assert_eq!(r.failure().unwrap().0, Step::Signature);
        assert!(r.failure().unwrap().1.starts_with("digest mismatch"));
        assert_eq!(
            with("signMethod", "02").failure().unwrap().0,
            Step::SignatureFields
        );
        assert_eq!(
            with("version", "5.1.1").failure().unwrap().0,
            Step::SignatureFields
        );
        assert_eq!(
            with("signPubKeyCert", "x").failure().unwrap().0,
            Step::Certificate
        );
        assert_eq!(
            with("signature", "").failure().unwrap().0,
            Step::SignatureFields
        );
        assert_eq!(
            verify_report("", &trust, now).failure().unwrap().0,
            Step::Parse
        );
        // Replacing the certificate by another valid one of the same chain: owner and signature.
        let other =
            base64::engine::general_purpose::STANDARD.encode(cert("acp_test_enc.cer").der());
        let r = with(
            "signPubKeyCert",
            &format!("-----BEGIN CERTIFICATE-----\r\n{other}\r\n-----END CERTIFICATE-----"),
        );
        assert!(!r.passed());
        assert!(matches!(
            r.outcome(Step::Signature),
            Some(Outcome::Failed(_))
        ));
    }

    #[test]
    fn notification_as_form_post_verifies_and_trailing_newline_is_tolerated() {
        let text = raw("acp_notify_consume_01_01.raw.txt");
        let m = AcpMessage::parse_raw(&text).unwrap();
        let now = message_time(&m);
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in m.fields() {
            ser.append_pair(k, v);
        }
        let body = ser.finish();
        let report = verify_notification_report(&body, &test_trust(), now);
        assert!(report.passed(), "{report}");
        assert!(verify_report(&format!("{text}\r\n"), &test_trust(), now).passed());
    }

    #[test]
    fn secure_key_replies() {
        use crate::sign::sm3::secure_key_sign;
        let mut trust = test_trust();
        let sts = "a=1&signMethod=12";
        let sig = secure_key_sign(SecureKeyHash::Sm3, sts, b"k");
        let raw = format!("a=1&signMethod=12&signature={sig}");
        let now = at(2024, 1, 1);
        assert_eq!(
            verify_report(&raw, &trust, now).failure().unwrap().0,
            Step::Signature
        );
        trust.secure_key = Some(Zeroizing::new(b"k".to_vec()));
        assert!(verify_report(&raw, &trust, now).passed());
        assert!(!verify_report(&raw.replace("a=1", "a=2"), &trust, now).passed());
    }

    #[test]
    fn version_500_uses_local_verify_cert_by_cert_id() {
        let trust = TrustConfig {
            verify_certs_v500: vec![cert("verify_test.cer")],
            ..test_trust()
        };
        // No real 5.0.0 reply is saved; a certId that is not configured must fail at certificate.
        let raw = "certId=1&signMethod=01&version=5.0.0&signature=AAAA";
        let r = verify_report(raw, &trust, at(2019, 1, 1));
        assert_eq!(r.failure().unwrap().0, Step::Certificate);
        let raw = "certId=69026276696&signMethod=01&version=5.0.0&signature=AAAA";
        let r = verify_report(raw, &trust, at(2019, 1, 1));
        assert!(
            matches!(r.outcome(Step::Chain), Some(Outcome::Passed(_))),
            "{r}"
        );
        assert_eq!(r.failure().unwrap().0, Step::Signature);
    }
}
