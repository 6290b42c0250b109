//! `payterm recover`: settles every unsettled attempt, refund and pre-authorisation operation now,
//! and prints what moved. A damaged journal puts it in safe mode: it never writes to that file,
//! it saves a copy and what could be read for a person. Exit 3 while anything stays unsettled.

use serde_json::json;

use payterm::journal::{AttemptRow, Journal};
use payterm::util;

use crate::cli::Cli;
use crate::context::{engine, engine_err, load};
use crate::output::{Fail, Out};

pub(crate) fn run(cli: &Cli, out: &Out, max_wait_ms: i64) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
    if let Err(err @ payterm::journal::JournalError::Damaged { .. }) = Journal::open(&path) {
        // Safe mode: never write to a damaged journal; save what can be saved for a person.
        let s = payterm::journal::salvage(&path, util::now_ms())?;
        out.line(
                    format!(
                        "{err}\nsafe mode: the journal is kept as it is; a copy is at {} and the {} unsettled attempts that could be read are in {}{}.\nSettle them with the gateway (payterm query works once a journal opens), then move the damaged file away to start a new journal.",
                        s.copy.display(),
                        s.open_attempts,
                        s.export.display(),
                        s.unreadable.as_ref().map(|u| format!(" (reading stopped early: {u})")).unwrap_or_default()
                    ),
                    json!({"result": "safe_mode", "copy": s.copy, "export": s.export, "open_attempts": s.open_attempts, "unreadable": s.unreadable}),
                );
        return Ok(1);
    }
    let mut e = engine(cli, &cfg)?;
    let mut obs = |r: &AttemptRow, n: &str| out.progress(r, n);
    let drain = payterm::engine::recovery::OfflineDrain::from_config(&cfg);
    let preauth = payterm::engine::preauth::PreAuthChannels::from_config(&cfg);
    let report = e
        .recover_all(max_wait_ms, drain, &preauth, &mut obs)
        .map_err(engine_err)?;
    for (order, no, before, after) in &report.attempts {
        out.line(
                    format!("{no} (order {order}): {before} -> {after}"),
                    json!({"event": "recovered", "order": order, "out_trade_no": no, "from": before, "to": after}),
                );
    }
    for (no, st) in &report.refunds {
        out.line(
            format!("refund {no}: {}", st.as_str()),
            json!({"event": "refund", "out_refund_no": no, "state": st}),
        );
    }
    for (no, before, after) in &report.preauths {
        out.line(
            format!(
                "pre-auth operation {no}: {} -> {}",
                before.as_str(),
                after.as_str()
            ),
            json!({"event": "preauth", "request_no": no, "from": before, "to": after}),
        );
    }
    for err in &report.errors {
        eprintln!("payterm: {err}");
    }
    let open = report.still_open();
    out.line(
                format!(
                    "recovery done: {} attempts and {} refunds looked at; {open} still unsettled, {} in manual review",
                    report.attempts.len(),
                    report.refunds.len(),
                    report.in_review()
                ),
                json!({"result": "recovered", "attempts": report.attempts.len(), "refunds": report.refunds.len(), "still_open": open, "review": report.in_review()}),
            );
    Ok(if open > 0 { 3 } else { 0 })
}
