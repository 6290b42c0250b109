//! `payterm shift open|close` and `payterm totals`: the counter's 签退 and 日结. The journal
//! computes and keeps the totals (journal::totals); this file picks the range and prints. It
//! sends nothing to a gateway and changes no payment.

use anyhow::anyhow;
use serde_json::json;

use payterm::journal::totals::beijing_day;
use payterm::journal::{Journal, ShiftError, ShiftRow, Totals};
use payterm::util;

use crate::cli::{Cli, ShiftCmd};
use crate::context::load;
use crate::output::{Fail, Out};

fn journal(cli: &Cli) -> Result<Journal, Fail> {
    let cfg = load(cli)?;
    let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
    Ok(Journal::open(&path)?)
}

fn shift_err(e: ShiftError) -> Fail {
    // Every refusal here is about what was asked (no shift, one already open), not money.
    Fail(1, e.into())
}

pub(crate) fn run(cli: &Cli, out: &Out, cmd: &ShiftCmd) -> Result<u8, Fail> {
    let mut j = journal(cli)?;
    match cmd {
        ShiftCmd::Open { operator } => {
            let s = j.shift_open(operator, util::now_ms()).map_err(shift_err)?;
            out.line(
                format!(
                    "shift {} opened for operator {} at {}",
                    s.shift_id,
                    s.operator,
                    util::beijing_human(s.opened_ms)
                ),
                json!({"result": "open", "shift": s}),
            );
            Ok(0)
        }
        ShiftCmd::Close => {
            let s = j.shift_close(util::now_ms()).map_err(shift_err)?;
            print_shift(out, &s, "closed");
            Ok(0)
        }
    }
}

pub(crate) fn totals(
    cli: &Cli,
    out: &Out,
    shift: Option<i64>,
    day: Option<&str>,
) -> Result<u8, Fail> {
    let j = journal(cli)?;
    let now = util::now_ms();
    if let Some(d) = day {
        let (from, until) =
            beijing_day(d).ok_or_else(|| Fail(1, anyhow!("--day {d:?} is not yyyy-mm-dd")))?;
        let t = j.totals(from, until)?;
        print_totals(out, &format!("day {d}"), &t, json!({"day": d}));
        return Ok(0);
    }
    let s = match shift {
        Some(id) => Some(j.shift(id).map_err(shift_err)?),
        None => j.open_shift().map_err(shift_err)?,
    };
    match s {
        Some(s) if s.totals.is_some() => print_shift(out, &s, "closed"),
        Some(s) => {
            // An open shift: so far, up to now.
            let t = j.totals(s.opened_ms, now + 1)?;
            let label = format!("shift {} of {} (open)", s.shift_id, s.operator);
            print_totals(out, &label, &t, json!({"shift": s}));
        }
        None => {
            let d = util::beijing_date(now);
            let (from, until) =
                beijing_day(&d).ok_or_else(|| Fail(1, anyhow!("today {d:?} has no range")))?;
            let t = j.totals(from, until)?;
            print_totals(out, &format!("day {d}"), &t, json!({"day": d}));
        }
    }
    Ok(0)
}

fn print_shift(out: &Out, s: &ShiftRow, result: &str) {
    let t = s.totals.clone().unwrap_or_default();
    let label = format!(
        "shift {} of {} ({result} {})",
        s.shift_id,
        s.operator,
        s.closed_ms.map(util::beijing_human).unwrap_or_default()
    );
    let mut head = json!({"shift": {"shift_id": s.shift_id, "operator": s.operator,
        "opened_ms": s.opened_ms, "closed_ms": s.closed_ms}});
    head["result"] = json!(result);
    print_totals(out, &label, &t, head);
}

/// Signed fen as yuan: a shift's refunds of earlier shifts' payments can make a net negative.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

fn print_totals(out: &Out, label: &str, t: &Totals, mut head: serde_json::Value) {
    if out.json {
        if head.get("result").is_none() {
            head["result"] = json!("totals");
        }
        head["totals"] = serde_json::to_value(t).unwrap_or_default();
        out.line("", head);
        return;
    }
    let mut text = format!(
        "totals of {label}: {} .. {}\n{:<12} {:<10} {:>5} {:>12} {:>5} {:>12} {:>12}\n",
        util::beijing_human(t.from_ms),
        util::beijing_human(t.until_ms),
        "gateway",
        "wallet",
        "paid",
        "yuan",
        "refd",
        "yuan",
        "net"
    );
    for l in t.lines.iter().chain(std::iter::once(&t.all)) {
        text.push_str(&format!(
            "{:<12} {:<10} {:>5} {:>12} {:>5} {:>12} {:>12}\n",
            l.gateway,
            l.wallet,
            l.paid_count,
            yuan(l.paid_fen),
            l.refund_count,
            yuan(l.refund_fen),
            yuan(l.net_fen)
        ));
    }
    for (what, items) in [
        ("unsettled (recovery is settling them)", &t.unsettled),
        ("in review (settle them with the gateway)", &t.review),
    ] {
        if items.is_empty() {
            continue;
        }
        text.push_str(&format!("{} {what}:\n", items.len()));
        for i in items {
            text.push_str(&format!(
                "  {} {} {} {} yuan {}\n",
                i.order_id,
                i.out_trade_no,
                i.state,
                yuan(i.amount_fen),
                i.wallet
            ));
        }
    }
    out.line(text.trim_end(), serde_json::Value::Null);
}
