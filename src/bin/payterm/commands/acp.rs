//! `payterm acp verify` (the step-by-step verification report of a saved ACP reply or
//! notification) and the ACP pre-authorisation family (`payterm acp preauth…`), moved out of the
//! library's gateway so that the gateway does not reach up into the engine and the journal.
//!
//! Verification only reads files and never changes the journal. The pre-authorisation family
//! must not send anything itself: engine::preauth journals each operation before sending it and
//! never sends one twice under a request number; this file checks the typed arguments and wires.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;

use payterm::config::Config;
use payterm::core::money::Amount;
use payterm::gateway::unionpay::cert::Certificate;
use payterm::gateway::unionpay::gateway::{AcpGateway, OwnerMode, owner_name};
use payterm::gateway::unionpay::message::AcpMessage;
use payterm::gateway::unionpay::txn::TxnTime;
use payterm::gateway::unionpay::verify::{
    TrustConfig, VerifyReport, verify_notification_report, verify_report,
};
use payterm::journal::Journal;

use crate::cli::{AcpCmd, Cli};
use crate::commands::preauth::command_result;
use crate::output::{Fail, Out};

pub(crate) fn verify(
    cli: &Cli,
    file: &Path,
    test_chain: Option<&Path>,
    at: Option<&str>,
) -> Result<u8, Fail> {
    let (code, text) = verify_command(&cli.config, file, test_chain, at);
    print!("{text}");
    Ok(code)
}

pub(crate) fn preauth(cli: &Cli, out: &Out, cmd: &AcpCmd) -> Result<u8, Fail> {
    let Some((op, orig, amount, request_no)) = cmd.preauth() else {
        return Err(Fail(1, anyhow!("not a pre-authorisation command")));
    };
    let (code, value, human) = preauth_command(
        &cli.config,
        cli.journal.as_deref(),
        op,
        &orig,
        amount,
        request_no.clone(),
    );
    out.line(human, value);
    Ok(code)
}

/// Exit codes: verified / not verified / usage or configuration problem.
pub(crate) const VERIFIED: u8 = 0;
pub(crate) const NOT_VERIFIED: u8 = 1;

/// At what time certificate validity is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VerifyAt {
    Now,
    /// The message's own `txnTime` (Beijing): for saved messages whose certificate has since
    /// expired.
    Message,
    At(SystemTime),
}

impl VerifyAt {
    /// `now`, `message`, or `YYYYMMDDhhmmss` (Beijing).
    pub(crate) fn parse(s: &str) -> Option<VerifyAt> {
        match s {
            "now" => Some(VerifyAt::Now),
            "message" => Some(VerifyAt::Message),
            t => TxnTime::parse(t).map(|t| {
                VerifyAt::At(UNIX_EPOCH + Duration::from_millis(t.unix_ms().max(0) as u64))
            }),
        }
    }
}

/// The trust of `--test-chain DIR`: UnionPay's public test middle and root
/// (`acp_test_middle.cer`, `acp_test_root.cer`) in DIR or its parent, with the test owner rule.
pub(crate) fn test_chain(dir: &Path) -> Result<TrustConfig, String> {
    let find = |name: &str| -> Result<PathBuf, String> {
        let here = dir.join(name);
        if here.exists() {
            return Ok(here);
        }
        if let Some(p) = dir.parent() {
            let up = p.join(name);
            if up.exists() {
                return Ok(up);
            }
        }
        Err(format!(
            "{name} is not in {} (nor its parent folder)",
            dir.display()
        ))
    };
    let load = |p: PathBuf| Certificate::load(&p).map_err(|e| format!("{}: {e}", p.display()));
    Ok(TrustConfig::test(
        load(find("acp_test_middle.cer")?)?,
        load(find("acp_test_root.cer")?)?,
    ))
}

/// The trust configured under `[gateways.acp]` (no private key is read).
pub(crate) fn configured_trust(cfg: &Config) -> Result<TrustConfig, String> {
    let acp = cfg
        .file
        .gateways
        .acp
        .as_ref()
        .ok_or("the configuration has no [gateways.acp]; give --test-chain DIR instead")?;
    let load = |p: &str| {
        let path = cfg.resolve(p);
        Certificate::load(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (middle, root) = (load(&acp.middle_cert)?, load(&acp.root_cert)?);
    let mut t = match acp.owner {
        OwnerMode::Production => TrustConfig::production(middle, root),
        OwnerMode::Test => TrustConfig::test(middle, root),
    };
    if let Some(k) = &acp.secure_key_file {
        let key = cfg
            .read_secret("ACP secure key", k)
            .map_err(|e| e.to_string())?;
        t.secure_key = Some(zeroize::Zeroizing::new(key.into_bytes()));
    }
    Ok(t)
}

/// Whether a saved message is a URL-encoded form (a notification as POSTed) rather than a raw
/// synchronous reply: raw replies carry their PEM certificate unencoded.
fn looks_like_form(text: &str) -> bool {
    !text.contains("-----BEGIN") && text.contains("signature=") && text.contains('%')
}

/// Verifies a saved message and reports every step. Exit 0 when it verifies, 1 otherwise.
pub(crate) fn verify_text(text: &str, trust: &TrustConfig, at: VerifyAt) -> (u8, String) {
    let form = looks_like_form(text);
    let when = match at {
        VerifyAt::Now => SystemTime::now(),
        VerifyAt::At(t) => t,
        VerifyAt::Message => {
            let parsed = if form {
                AcpMessage::parse_form(text.trim_end())
            } else {
                AcpMessage::parse_raw(text.trim_end_matches(['\r', '\n']))
            };
            match parsed
                .ok()
                .and_then(|m| m.get("txnTime").and_then(TxnTime::parse))
            {
                Some(t) => UNIX_EPOCH + Duration::from_millis(t.unix_ms().max(0) as u64),
                None => {
                    return (
                        NOT_VERIFIED,
                        "--at message: the message has no readable txnTime\n".into(),
                    );
                }
            }
        }
    };
    let report: VerifyReport = if form {
        verify_notification_report(text.trim_end(), trust, when)
    } else {
        verify_report(text, trust, when)
    };
    let mut out = format!(
        "format: {}; trust: middle \"{}\", root \"{}\", {} owner rule\n",
        if form {
            "form-encoded notification"
        } else {
            "raw reply"
        },
        trust.middle.subject().common_name().unwrap_or("?"),
        trust.root.subject().common_name().unwrap_or("?"),
        owner_name(&trust.owner)
    );
    out.push_str(&report.to_string());
    if let Some(m) = report.message() {
        let pick = |k: &str| m.get(k).unwrap_or("-").to_string();
        out.push_str(&format!(
            "message: txnType {} txnSubType {} orderId {} txnTime {} respCode {} {}\n",
            pick("txnType"),
            pick("txnSubType"),
            pick("orderId"),
            pick("txnTime"),
            pick("respCode"),
            pick("respMsg"),
        ));
    }
    (
        if report.passed() {
            VERIFIED
        } else {
            NOT_VERIFIED
        },
        out,
    )
}

/// `payterm acp verify FILE [--test-chain DIR] [--at now|message|YYYYMMDDhhmmss]`.
pub(crate) fn verify_command(
    config: &Path,
    file: &Path,
    test_chain_dir: Option<&Path>,
    at: Option<&str>,
) -> (u8, String) {
    let at = match at.map(VerifyAt::parse) {
        None => VerifyAt::Now,
        Some(Some(a)) => a,
        Some(None) => {
            return (
                NOT_VERIFIED,
                "--at takes now, message or YYYYMMDDhhmmss (Beijing time)\n".into(),
            );
        }
    };
    let trust = match test_chain_dir {
        Some(d) => test_chain(d),
        None => Config::load(config)
            .map_err(|e| e.to_string())
            .and_then(|c| configured_trust(&c)),
    };
    let trust = match trust {
        Ok(t) => t,
        Err(e) => return (NOT_VERIFIED, format!("cannot set up verification: {e}\n")),
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            return (
                NOT_VERIFIED,
                format!("cannot read {}: {e}\n", file.display()),
            );
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return (
            NOT_VERIFIED,
            format!("{} is not UTF-8 text: not an ACP message\n", file.display()),
        );
    };
    verify_text(&text, &trust, at)
}

/// Which operation of the ACP pre-authorisation family `payterm acp …` runs.
#[derive(Clone, Debug)]
pub(crate) enum AcpPreAuthCmd {
    /// 02/04: `code` is the customer's code (qrNo), never stored.
    PreAuth { code: String },
    /// 32, full amount of the pre-authorisation.
    Undo,
    /// 03.
    Complete,
    /// 33, full amount of the completion.
    CompleteUndo,
}

/// A refund id typed for an order of `gateway`: the ACP-family gateways (`acp`, and `upapi`,
/// whose refunds are ACP refunds) send it as the refund's `orderId`, 8 to 40 letters or digits.
/// Checked before the refund is journaled, so that a bad id is refused with exit 1 instead of
/// being journaled FAILED. Other gateways' rules are the engine's.
pub(crate) fn check_refund_id(gateway: &str, refund_id: &str) -> Result<(), String> {
    if !matches!(gateway, "acp" | "upapi") {
        return Ok(());
    }
    payterm::gateway::unionpay::txn::check_order_id(refund_id).map_err(|e| {
        format!("--refund-id {refund_id:?}: an ACP refund's {e}; nothing was journaled or sent")
    })
}

/// The original a follow-up refers to, as typed: its queryId, or its orderId and txnTime.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrigArgs {
    pub(crate) query_id: Option<String>,
    pub(crate) order_id: Option<String>,
    pub(crate) txn_time: Option<String>,
}

impl OrigArgs {
    fn to_ref(&self) -> Result<Option<payterm::gateway::unionpay::txn::OrigRef>, String> {
        use payterm::gateway::unionpay::txn::OrigRef;
        match (&self.query_id, &self.order_id, &self.txn_time) {
            (None, None, None) => Ok(None),
            (Some(q), None, None) => Ok(Some(OrigRef::QueryId(q.clone()))),
            (None, Some(o), Some(t)) => {
                let tt = TxnTime::parse(t).ok_or_else(|| {
                    format!("--orig-txn-time {t:?} is not YYYYMMDDhhmmss (Beijing time)")
                })?;
                Ok(Some(OrigRef::Order {
                    order_id: o.clone(),
                    txn_time: tt,
                }))
            }
            _ => Err(
                "name the original by --orig-query-id, or by --orig-order-id with --orig-txn-time"
                    .into(),
            ),
        }
    }
}

/// `payterm acp preauth|preauth-undo|preauth-complete|preauth-complete-undo`: one operation,
/// journaled before it is sent. Returns (exit code, JSON line, sentence) as
/// [`command_result`] says.
pub(crate) fn preauth_command(
    config: &Path,
    journal_override: Option<&Path>,
    cmd: AcpPreAuthCmd,
    orig: &OrigArgs,
    amount: &str,
    request_no: Option<String>,
) -> (u8, serde_json::Value, String) {
    use payterm::engine::preauth::{AcpChannel, PreAuthError, acp_plan, run};
    use payterm::journal::PreAuthOp;
    let (name, op) = match &cmd {
        AcpPreAuthCmd::PreAuth { .. } => ("preauth", PreAuthOp::PreAuth),
        AcpPreAuthCmd::Undo => ("preauth-undo", PreAuthOp::Cancel),
        AcpPreAuthCmd::Complete => ("preauth-complete", PreAuthOp::Complete),
        AcpPreAuthCmd::CompleteUndo => ("preauth-complete-undo", PreAuthOp::CompleteCancel),
    };
    let bad = |e: String| command_result(name, Err(PreAuthError::BadInput(e)));
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return bad(e.to_string()),
    };
    let amount = match Amount::parse_with_limit(amount, cfg.max_amount()) {
        Ok(a) => a,
        Err(e) => return bad(e.to_string()),
    };
    let orig = match orig.to_ref() {
        Ok(o) => o,
        Err(e) => return bad(e),
    };
    let code = match &cmd {
        AcpPreAuthCmd::PreAuth { code } => Some(code.trim()),
        _ => None,
    };
    let plan = match acp_plan(op, orig.as_ref(), amount, code) {
        Ok(p) => p,
        Err(e) => return command_result(name, Err(e)),
    };
    let Some(acp) = cfg.file.gateways.acp.clone() else {
        return bad("the configuration has no [gateways.acp]".into());
    };
    let gw = match AcpGateway::from_config(&cfg, &acp) {
        Ok(g) => g,
        Err(e) => return bad(format!("gateways.acp: {e}")),
    };
    let path = journal_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cfg.journal_path());
    let mut journal = match Journal::open(&path) {
        Ok(j) => j,
        Err(e) => return bad(e.to_string()),
    };
    let channel = AcpChannel::new(gw);
    let r = run(
        &mut journal,
        &channel,
        plan,
        request_no,
        &cfg.file.terminal.id,
        code,
    );
    command_result(name, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
    }

    const MESSAGES: [&str; 4] = [
        "acp_response_query_00_00.raw.txt",
        "acp_response_cancel_31_00.raw.txt",
        "acp_response_refund_04_00.raw.txt",
        "acp_notify_consume_01_01.raw.txt",
    ];

    #[test]
    fn the_four_real_messages_verify_at_their_own_time() {
        let trust = test_chain(&vectors().join("unionpay-certs/test-2021")).unwrap();
        for m in MESSAGES {
            let text =
                std::fs::read_to_string(vectors().join("unionpay-messages").join(m)).unwrap();
            let (code, out) = verify_text(&text, &trust, VerifyAt::Message);
            assert_eq!(code, VERIFIED, "{m}: {out}");
            assert!(out.contains("PASSED"), "{out}");
            // Today the leaf has expired, and the report says so.
            let (code, out) = verify_text(
                &text,
                &trust,
                VerifyAt::At(UNIX_EPOCH + Duration::from_secs(1_790_000_000)),
            );
            assert_eq!(code, NOT_VERIFIED, "{m}");
            assert!(out.contains("validity"), "{out}");
        }
    }

    #[test]
    fn a_one_byte_change_fails_and_names_the_step() {
        let trust = test_chain(&vectors().join("unionpay-certs")).unwrap();
        let text = std::fs::read_to_string(
            vectors().join("unionpay-messages/acp_response_refund_04_00.raw.txt"),
        )
        .unwrap();
        let changed = text.replacen("txnAmt=", "txnAmt=9", 1);
        assert_eq!(changed.len(), text.len() + 1);
        let (code, out) = verify_text(&changed, &trust, VerifyAt::Message);
        assert_eq!(code, NOT_VERIFIED);
        assert!(out.contains("FAILED at signature"), "{out}");
    }

    #[test]
    fn verify_at_parses_now_message_or_a_time() {
        assert_eq!(VerifyAt::parse("x"), None);
        assert_eq!(VerifyAt::parse("now"), Some(VerifyAt::Now));
        assert_eq!(VerifyAt::parse("message"), Some(VerifyAt::Message));
    }
}
