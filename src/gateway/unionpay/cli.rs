//! The two ACP commands of the command line, as functions returning (exit code, text):
//! `payterm acp verify FILE` (the step-by-step verification report of a saved reply or
//! notification) and `payterm reconcile DATE` (download the day's 76 file and list every
//! difference against the journal).
//!
//! `main.rs` only parses arguments and prints what these return. Nothing here changes the
//! journal: reconciliation reads it and reports; settling a difference is a person's decision.
//! The pre-authorisation family (`payterm acp preauth…`, [`preauth_command`]) is the exception:
//! it goes through engine::preauth, which journals each operation before sending it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::NaiveDate;

use super::cert::Certificate;
use super::gateway::{AcpGateway, OwnerMode, ReconFile, owner_name};
use super::message::AcpMessage;
use super::recon::{ZmRecord, clearing_date};
use super::txn::TxnTime;
use super::verify::{TrustConfig, VerifyReport, verify_notification_report, verify_report};
use crate::config::Config;
use crate::core::machine::{AttemptState, ReverseAction};
use crate::core::money::Amount;
use crate::journal::{AttemptRow, Journal, ListFilter, RefundRow, RefundState};

/// Exit codes: verified / not verified / usage or configuration problem.
pub const VERIFIED: u8 = 0;
pub const NOT_VERIFIED: u8 = 1;

/// At what time certificate validity is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyAt {
    Now,
    /// The message's own `txnTime` (Beijing): for saved messages whose certificate has since
    /// expired.
    Message,
    At(SystemTime),
}

impl VerifyAt {
    /// `now`, `message`, or `YYYYMMDDhhmmss` (Beijing).
    pub fn parse(s: &str) -> Option<VerifyAt> {
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
pub fn test_chain(dir: &Path) -> Result<TrustConfig, String> {
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
pub fn configured_trust(cfg: &Config) -> Result<TrustConfig, String> {
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
pub fn verify_text(text: &str, trust: &TrustConfig, at: VerifyAt) -> (u8, String) {
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
pub fn verify_command(
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

/// One disagreement between the journal and the reconciliation file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// The journal has money movement the file does not show.
    MissingInFile {
        what: &'static str,
        order_id: String,
        amount: Amount,
        journal: String,
    },
    /// The file shows money movement the journal does not know.
    MissingInJournal {
        what: &'static str,
        order_id: String,
        amount: Amount,
    },
    AmountMismatch {
        what: &'static str,
        order_id: String,
        journal: Amount,
        file: Amount,
    },
    /// Both know the order but disagree on what happened.
    StateMismatch {
        order_id: String,
        journal: String,
        file: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::MissingInFile {
                what,
                order_id,
                amount,
                journal,
            } => write!(
                f,
                "missing in the file: {what} {order_id} of {amount} yuan (journal: {journal})"
            ),
            Difference::MissingInJournal {
                what,
                order_id,
                amount,
            } => write!(
                f,
                "missing in the journal: {what} {order_id} of {amount} yuan is in the file"
            ),
            Difference::AmountMismatch {
                what,
                order_id,
                journal,
                file,
            } => write!(
                f,
                "amount differs: {what} {order_id}: journal {journal} yuan, file {file} yuan"
            ),
            Difference::StateMismatch {
                order_id,
                journal,
                file,
            } => write!(
                f,
                "state differs: {order_id}: journal {journal}, file {file}"
            ),
        }
    }
}

fn clearing_date_ms(ms: i64) -> Option<NaiveDate> {
    TxnTime::from_unix_ms(ms).map(clearing_date)
}

/// Parses `YYYY-MM-DD` or `YYYYMMDD`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y%m%d"))
        .ok()
}

/// What the file says about money on a clearing date, by kind.
#[derive(Default)]
struct FileView {
    consumes: BTreeMap<String, Amount>,
    undos: BTreeMap<String, Amount>,
    refunds: BTreeMap<String, Amount>,
    others: Vec<String>,
}

fn file_view<'a>(records: impl Iterator<Item = &'a ZmRecord>) -> FileView {
    let mut v = FileView::default();
    for r in records {
        match r.txn_type.as_str() {
            "01" => {
                v.consumes.insert(r.order_id.clone(), r.amount);
            }
            "31" => {
                let key = if r.orig_order_id.is_empty() {
                    r.orig_qry_id.clone()
                } else {
                    r.orig_order_id.clone()
                };
                v.undos.insert(key, r.amount);
            }
            "04" => {
                v.refunds.insert(r.order_id.clone(), r.amount);
            }
            other => v.others.push(format!(
                "txnType {other} {} {} yuan (not compared: pre-authorisation family or other; `payterm journal show {}` shows a pre-authorisation operation's record)",
                r.order_id, r.amount, r.order_id
            )),
        }
    }
    v
}

/// Compares the journal's ACP attempts and refunds of `date` with the file.
pub fn compare(
    journal: &Journal,
    file: &ReconFile,
    date: NaiveDate,
    gateway_name: &str,
) -> Result<(Vec<Difference>, Vec<String>), String> {
    let all = journal
        .list(&ListFilter::default())
        .map_err(|e| e.to_string())?;
    let acp: Vec<&AttemptRow> = all.iter().filter(|a| a.gateway == gateway_name).collect();
    let view = file_view(file.records());
    let mut diffs = Vec::new();
    let mut notes = view.others.clone();
    let mut refunds_of_day: Vec<(RefundRow, &AttemptRow)> = Vec::new();
    for a in &acp {
        for r in journal
            .refunds_for(a.attempt_id)
            .map_err(|e| e.to_string())?
        {
            if clearing_date_ms(r.created_ms) == Some(date) {
                refunds_of_day.push((r, a));
            }
        }
    }
    let by_no: BTreeMap<&str, &AttemptRow> =
        acp.iter().map(|a| (a.out_trade_no.as_str(), *a)).collect();
    for a in &acp {
        let Some(tt) = TxnTime::parse(&a.chan_txn_time) else {
            notes.push(format!("{}: unreadable txn time", a.out_trade_no));
            continue;
        };
        if clearing_date(tt) != date {
            continue;
        }
        let st = a.machine.state;
        let fenced_by_refund = journal
            .refunds_for(a.attempt_id)
            .map_err(|e| e.to_string())?
            .iter()
            .any(|r| r.kind == "fence");
        let undone = st == AttemptState::Reversed
            && a.machine.reverse_action == Some(ReverseAction::Refund)
            && !fenced_by_refund;
        let expect_consume = st == AttemptState::Paid
            || (st == AttemptState::Reversed
                && a.machine.reverse_action == Some(ReverseAction::Refund));
        let journal_says = format!(
            "{}{}",
            st,
            a.machine
                .reverse_action
                .map(|r| format!(" ({})", r.as_str()))
                .unwrap_or_default()
        );
        match (expect_consume, view.consumes.get(&a.out_trade_no)) {
            (true, None) => diffs.push(Difference::MissingInFile {
                what: "consume",
                order_id: a.out_trade_no.clone(),
                amount: a.amount,
                journal: journal_says.clone(),
            }),
            (true, Some(x)) if *x != a.amount => diffs.push(Difference::AmountMismatch {
                what: "consume",
                order_id: a.out_trade_no.clone(),
                journal: a.amount,
                file: *x,
            }),
            (false, Some(_)) if st.is_final() => diffs.push(Difference::StateMismatch {
                order_id: a.out_trade_no.clone(),
                journal: journal_says.clone(),
                file: "paid (consume settled)".into(),
            }),
            (false, Some(_)) => diffs.push(Difference::StateMismatch {
                order_id: a.out_trade_no.clone(),
                journal: format!("{journal_says}, still being settled"),
                file: "paid (consume settled)".into(),
            }),
            _ => {}
        }
        if undone && !view.undos.contains_key(&a.out_trade_no) {
            diffs.push(Difference::MissingInFile {
                what: "undo of",
                order_id: a.out_trade_no.clone(),
                amount: a.amount,
                journal: journal_says.clone(),
            });
        }
    }
    // The file's consumes and undos the journal does not explain.
    for (no, amount) in &view.consumes {
        let a = match by_no.get(no.as_str()) {
            Some(a) => *a,
            None => match journal.by_out_trade_no(no).map_err(|e| e.to_string())? {
                Some(_) => continue,
                None => {
                    diffs.push(Difference::MissingInJournal {
                        what: "consume",
                        order_id: no.clone(),
                        amount: *amount,
                    });
                    continue;
                }
            },
        };
        // Attempts of this day were compared above; one of another day is a date mismatch.
        if let Some(tt) = TxnTime::parse(&a.chan_txn_time)
            && clearing_date(tt) != date
        {
            diffs.push(Difference::StateMismatch {
                order_id: no.clone(),
                journal: format!("clearing date {}", clearing_date(tt)),
                file: format!("settled on {date}"),
            });
        }
    }
    for (orig, amount) in &view.undos {
        match by_no.get(orig.as_str()) {
            Some(a)
                if a.machine.state == AttemptState::Reversed
                    && a.machine.reverse_action == Some(ReverseAction::Refund) => {}
            Some(a) => diffs.push(Difference::StateMismatch {
                order_id: orig.clone(),
                journal: a.machine.state.to_string(),
                file: format!("undone ({amount} yuan)"),
            }),
            None => diffs.push(Difference::MissingInJournal {
                what: "undo of",
                order_id: orig.clone(),
                amount: *amount,
            }),
        }
    }
    // Refunds both ways.
    for (r, _) in &refunds_of_day {
        let in_file = view.refunds.get(&r.out_refund_no);
        match (r.state, in_file) {
            (RefundState::Done, None) => diffs.push(Difference::MissingInFile {
                what: "refund",
                order_id: r.out_refund_no.clone(),
                amount: r.amount,
                journal: "DONE".into(),
            }),
            (RefundState::Done, Some(x)) if *x != r.amount => {
                diffs.push(Difference::AmountMismatch {
                    what: "refund",
                    order_id: r.out_refund_no.clone(),
                    journal: r.amount,
                    file: *x,
                })
            }
            (RefundState::Done, Some(_)) => {}
            (s, Some(_)) => diffs.push(Difference::StateMismatch {
                order_id: r.out_refund_no.clone(),
                journal: format!("refund {}", s.as_str()),
                file: "refunded".into(),
            }),
            (_, None) => {}
        }
    }
    for (no, amount) in &view.refunds {
        let known = refunds_of_day.iter().any(|(r, _)| &r.out_refund_no == no);
        if !known
            && journal
                .refund_by_no(no)
                .map_err(|e| e.to_string())?
                .is_none()
        {
            diffs.push(Difference::MissingInJournal {
                what: "refund",
                order_id: no.clone(),
                amount: *amount,
            });
        }
    }
    Ok((diffs, notes))
}

/// `payterm reconcile DATE`: downloads the file, compares, prints every difference. Exit 0 when
/// none, 2 when there are differences, 1 for bad input or configuration, 3 when the file could
/// not be obtained.
pub fn reconcile_command(
    config: &Path,
    journal_override: Option<&Path>,
    date: &str,
) -> (u8, String) {
    let Some(date) = parse_date(date) else {
        return (1, format!("{date:?} is not a date: use YYYY-MM-DD\n"));
    };
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return (1, format!("{e}\n")),
    };
    let Some(acp) = cfg.file.gateways.acp.clone() else {
        return (
            1,
            "the configuration has no [gateways.acp]: nothing to reconcile\n".into(),
        );
    };
    let gw = match AcpGateway::from_config(&cfg, &acp) {
        Ok(g) => g,
        Err(e) => return (1, format!("gateways.acp: {e}\n")),
    };
    let path = journal_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cfg.journal_path());
    let journal = match Journal::open(&path) {
        Ok(j) => j,
        Err(e) => return (1, format!("{e}\n")),
    };
    let file = match gw.download_recon(date) {
        Ok(f) => f,
        Err(e) => {
            return (
                3,
                format!("cannot get the reconciliation file of {date}: {e}\n"),
            );
        }
    };
    report(&journal, &file, date)
}

/// Compares and formats (the testable half of [`reconcile_command`]).
pub fn report(journal: &Journal, file: &ReconFile, date: NaiveDate) -> (u8, String) {
    let (diffs, notes) = match compare(journal, file, date, "acp") {
        Ok(x) => x,
        Err(e) => return (1, format!("cannot read the journal: {e}\n")),
    };
    let n: usize = file.entries.iter().map(|(_, r)| r.len()).sum();
    let mut out = format!(
        "reconciliation of clearing date {date}: file {} ({n} records)\n",
        file.file_name.as_deref().unwrap_or("(unnamed)")
    );
    for d in &diffs {
        out.push_str(&format!("  DIFFERENCE {d}\n"));
    }
    for note in &notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    if diffs.is_empty() {
        out.push_str("no differences\n");
        (0, out)
    } else {
        out.push_str(&format!(
            "{} difference(s): check each with `payterm journal show ORDER` and the acquirer\n",
            diffs.len()
        ));
        (2, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> PathBuf {
        crate::gateway::unionpay::tests::vectors_dir()
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
    fn dates_and_clearing_days() {
        assert_eq!(
            parse_date("2026-11-22"),
            NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        assert_eq!(
            parse_date("20261122"),
            NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        assert_eq!(parse_date("22/11/2026"), None);
        let t = |s| TxnTime::parse(s).unwrap();
        assert_eq!(
            clearing_date(t("20261122225959")),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        assert_eq!(
            clearing_date(t("20261122230000")),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
        assert_eq!(VerifyAt::parse("x"), None);
        assert_eq!(VerifyAt::parse("now"), Some(VerifyAt::Now));
    }
}

/// Which operation of the ACP pre-authorisation family `payterm acp …` runs.
#[derive(Clone, Debug)]
pub enum AcpPreAuthCmd {
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
pub fn check_refund_id(gateway: &str, refund_id: &str) -> Result<(), String> {
    if !matches!(gateway, "acp" | "upapi") {
        return Ok(());
    }
    super::txn::check_order_id(refund_id).map_err(|e| {
        format!("--refund-id {refund_id:?}: an ACP refund's {e}; nothing was journaled or sent")
    })
}

/// The original a follow-up refers to, as typed: its queryId, or its orderId and txnTime.
#[derive(Clone, Debug, Default)]
pub struct OrigArgs {
    pub query_id: Option<String>,
    pub order_id: Option<String>,
    pub txn_time: Option<String>,
}

impl OrigArgs {
    fn to_ref(&self) -> Result<Option<super::txn::OrigRef>, String> {
        use super::txn::OrigRef;
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
/// engine::preauth::command_result says.
pub fn preauth_command(
    config: &Path,
    journal_override: Option<&Path>,
    cmd: AcpPreAuthCmd,
    orig: &OrigArgs,
    amount: &str,
    request_no: Option<String>,
) -> (u8, serde_json::Value, String) {
    use crate::engine::preauth::{AcpChannel, PreAuthError, acp_plan, command_result, run};
    use crate::journal::PreAuthOp;
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
