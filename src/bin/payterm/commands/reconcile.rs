//! `payterm reconcile DATE`: downloads the ACP reconciliation file (76) of a clearing date and
//! lists every difference against the journal: exit 0 none, 2 differences.
//!
//! It reads the journal and reports; it must not change it: settling a difference is a person's
//! decision, made with `payterm journal show` and the acquirer. The clearing date itself is the
//! library's (gateway::unionpay::recon::clearing_date), which the sandbox files by too.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;

use payterm::config::Config;
use payterm::core::machine::{AttemptState, ReverseAction};
use payterm::core::money::Amount;
use payterm::gateway::unionpay::gateway::{AcpGateway, ReconFile};
use payterm::gateway::unionpay::recon::{ZmRecord, clearing_date};
use payterm::gateway::unionpay::txn::TxnTime;
use payterm::journal::{AttemptRow, Journal, ListFilter, RefundRow, RefundState};

use crate::cli::Cli;
use crate::output::Fail;

pub(crate) fn run(cli: &Cli, date: &str) -> Result<u8, Fail> {
    let (code, text) = reconcile_command(&cli.config, cli.journal.as_deref(), date);
    print!("{text}");
    Ok(code)
}

/// One disagreement between the journal and the reconciliation file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Difference {
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
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
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
pub(crate) fn compare(
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
pub(crate) fn reconcile_command(
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
pub(crate) fn report(journal: &Journal, file: &ReconFile, date: NaiveDate) -> (u8, String) {
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

    #[test]
    fn dates_are_iso_with_or_without_dashes() {
        assert_eq!(
            parse_date("2026-11-22"),
            NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        assert_eq!(
            parse_date("20261122"),
            NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        assert_eq!(parse_date("22/11/2026"), None);
    }
}
