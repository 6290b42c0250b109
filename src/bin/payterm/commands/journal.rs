//! `payterm journal list|show|export|resolve`: reading the journal for people and tools. Only
//! `resolve` writes, and only a person's verdict on a pre-authorisation operation in REVIEW, with
//! a note saying what was found; nothing here sends anything to a gateway.

use anyhow::anyhow;
use serde_json::json;

use payterm::journal::{Journal, ListFilter, PreAuthState};
use payterm::util;

use crate::cli::{Cli, JournalCmd};
use crate::context::load;
use crate::output::{Fail, Out};

pub(crate) fn run(cli: &Cli, out: &Out, cmd: &JournalCmd) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
    let j = Journal::open(&path)?;
    match cmd {
        JournalCmd::List { open, review, date } => {
            let filter = ListFilter {
                open: *open,
                review: *review,
                date: date.clone(),
                limit: None,
            };
            let rows = j.list(&filter)?;
            if !out.json {
                println!(
                    "{:<20} {:<28} {:>10} {:<15} {:<10} order",
                    "created", "out_trade_no", "yuan", "state", "wallet"
                );
            }
            for a in &rows {
                out.line(
                    format!(
                        "{:<20} {:<28} {:>10} {:<15} {:<10} {}",
                        util::beijing_human(a.machine.created_ms),
                        a.out_trade_no,
                        a.amount.to_string(),
                        a.machine.state.as_str(),
                        a.wallet.map(|w| w.paytype()).unwrap_or("-"),
                        a.order_id
                    ),
                    serde_json::to_value(a).unwrap_or_default(),
                );
            }
            // The pre-authorisation family's operations (engine::preauth), under the same
            // filters: --open the unresolved ones, --review those and the ones for a person.
            let ops = j.preauth_list(&filter)?;
            if !ops.is_empty() && !out.json {
                println!("pre-authorisation operations:");
            }
            for p in &ops {
                out.line(
                    format!(
                        "{:<20} {:<28} {:>10} {:<15} {}/{} {} {}",
                        util::beijing_human(p.created_ms),
                        p.request_no,
                        p.amount.to_string(),
                        p.state.as_str(),
                        p.gateway,
                        p.operation.as_str(),
                        p.target_key,
                        p.last_note
                    ),
                    json!({"preauth": p}),
                );
            }
            if out.json {
                out.line(
                    "",
                    json!({"result": "ok", "attempts": rows.len(), "preauth_operations": ops.len(), "exit": 0}),
                );
            }
            Ok(0)
        }
        JournalCmd::Show { order } => {
            // A pre-authorisation operation's request number: the operation and its history.
            if let Some(p) = j.preauth_by_request_no(order)? {
                let history = j.preauth_history(p.op_id)?;
                if out.json {
                    out.line(
                        "",
                        json!({"result": "ok", "preauth": p, "history": history, "exit": 0}),
                    );
                    return Ok(0);
                }
                println!(
                    "{} {} via {} on {}: {} yuan, state {}{}",
                    p.request_no,
                    p.operation.describe(),
                    p.gateway,
                    p.target_key,
                    p.amount,
                    p.state.as_str(),
                    p.chan_ref
                        .as_ref()
                        .map(|c| format!(", channel ref {c}"))
                        .unwrap_or_default()
                );
                for ev in &history {
                    println!(
                        "  {} {:>8} -> {:<8} {}{}",
                        util::beijing_human(ev.at_ms),
                        ev.from_state.as_deref().unwrap_or("-"),
                        ev.to_state,
                        ev.note,
                        if ev.detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", ev.detail)
                        }
                    );
                }
                return Ok(0);
            }
            let rows = j.find(order)?;
            for a in &rows {
                let refunds = j.refunds_for(a.attempt_id)?;
                let history = j.history(a.attempt_id)?;
                if out.json {
                    out.line(
                        "",
                        json!({"attempt": a, "history": history, "refunds": refunds}),
                    );
                    continue;
                }
                println!(
                    "attempt {} of order {}: {} yuan via {} ({}), code {}, state {}{}",
                    a.out_trade_no,
                    a.order_id,
                    a.amount,
                    a.gateway,
                    a.wallet.map(|w| w.display_name()).unwrap_or("-"),
                    a.code_mask.as_deref().unwrap_or("-"),
                    a.machine.state,
                    a.machine
                        .reverse_action
                        .map(|r| format!(" ({})", r.as_str()))
                        .unwrap_or_default()
                );
                if let Some(t) = &a.chan_trade_no {
                    println!("  channel trade no {t}; txn time {}", a.chan_txn_time);
                }
                for ev in &history {
                    println!(
                        "  {} {:>14} -> {:<15} {}{}{}",
                        util::beijing_human(ev.at_ms),
                        ev.from_state.as_deref().unwrap_or("-"),
                        ev.to_state,
                        ev.op
                            .as_deref()
                            .map(|o| format!("[{o}] "))
                            .unwrap_or_default(),
                        ev.note,
                        if ev.detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", ev.detail)
                        }
                    );
                }
                for r in &refunds {
                    println!(
                        "  refund {} {} yuan: {} ({})",
                        r.out_refund_no,
                        r.amount,
                        r.state.as_str(),
                        r.note
                    );
                }
            }
            if rows.is_empty() {
                return Err(Fail(
                    1,
                    anyhow!("no order or request number {order} in the journal"),
                ));
            }
            if out.json {
                out.line(
                    "",
                    json!({"result": "ok", "attempts": rows.len(), "exit": 0}),
                );
            }
            Ok(0)
        }
        JournalCmd::Export => {
            let mut o = std::io::stdout().lock();
            j.export_jsonl(&mut o)?;
            drop(o);
            if out.json {
                out.line("", json!({"result": "ok", "exit": 0}));
            }
            Ok(0)
        }
        JournalCmd::Resolve {
            request_no,
            done,
            failed,
            refunded,
            note,
        } => {
            if note.trim().is_empty() {
                return Err(Fail(
                    1,
                    anyhow!("--note must say what was found, and where"),
                ));
            }
            // An order (or out_trade_no) with an attempt in manual review.
            if j.preauth_by_request_no(request_no).ok().flatten().is_none()
                && !j.find(request_no).unwrap_or_default().is_empty()
            {
                use payterm::core::machine::Resolution;
                let to = if *done {
                    Resolution::Paid
                } else if *refunded {
                    Resolution::Refunded
                } else {
                    Resolution::NotCharged
                };
                let _ = failed;
                let cfg = crate::context::load(cli)?;
                let mut e = crate::context::engine(cli, &cfg)?;
                let r = e
                    .resolve_review(request_no, to, note.trim(), &mut |_, _| {})
                    .map_err(|err| Fail(2, err.into()))?;
                out.line(
                    format!(
                        "order {} ({}) is now {}: {}",
                        r.order_id, r.out_trade_no, r.machine.state, r.last_note
                    ),
                    json!({"result": r.machine.state, "order": r.order_id, "out_trade_no": r.out_trade_no, "exit": 0}),
                );
                return Ok(0);
            }
            if *refunded {
                return Err(Fail(
                    1,
                    anyhow!(
                        "--refunded is for orders; a pre-authorisation operation is --done or --failed"
                    ),
                ));
            }
            let to = if *done {
                PreAuthState::Done
            } else {
                PreAuthState::Failed
            };
            let mut j = j;
            let r = j
                .preauth_resolve(request_no, to, note.trim(), util::now_ms())
                .map_err(|e| Fail(2, e.into()))?;
            out.line(
                format!("{} is now {}", r.request_no, r.state.as_str()),
                json!({"result": r.state.as_str(), "preauth": r, "exit": 0}),
            );
            Ok(0)
        }
    }
}
