//! How the command line speaks: one line per fact, human text or (with `--json`) one JSON object,
//! progress on stderr, and the sentence plus exit code for where an attempt or a refund ended.
//! The exit codes of DESIGN.md §4 live here and in context.rs, so every command answers alike.
//! It must not decide anything about money: it prints states the library already reached.

use std::io::Write;

use serde_json::json;

use payterm::core::machine::{AttemptState, ReverseAction};
use payterm::journal::{AttemptRow, RefundState};
use payterm::util;

/// An error with the exit code it deserves.
pub(crate) struct Fail(pub(crate) u8, pub(crate) anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(1, e.into())
    }
}

/// The final object of a command that failed, for `--json` readers (stdout).
pub(crate) fn print_error(error: &str, exit: u8) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "{}",
        json!({"result": "error", "error": error, "exit": exit})
    );
}

pub(crate) struct Out {
    pub(crate) json: bool,
}

impl Out {
    pub(crate) fn line(&self, human: impl AsRef<str>, value: serde_json::Value) {
        let mut o = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(o, "{value}");
        } else {
            let _ = writeln!(o, "{}", human.as_ref());
        }
    }

    pub(crate) fn progress(&self, row: &AttemptRow, note: &str) {
        if self.json {
            self.line("", json!({"event": "progress", "order": row.order_id, "out_trade_no": row.out_trade_no, "state": row.machine.state, "note": note}));
        } else {
            eprintln!(
                "  [{}] {:<14} {note}",
                util::beijing_human(util::now_ms()),
                row.machine.state.as_str()
            );
        }
    }
}

/// Prints where an attempt ended and returns the exit code for it.
pub(crate) fn finish(out: &Out, row: &AttemptRow) -> u8 {
    let who = row.wallet.map(|w| w.display_name()).unwrap_or("the wallet");
    let (code, human) = match (row.machine.state, row.machine.reverse_action) {
        (AttemptState::Paid, _) => (
            0,
            format!(
                "PAID {} yuan by {who}: order {} ({})",
                row.amount, row.order_id, row.out_trade_no
            ),
        ),
        (AttemptState::Failed, _) => (
            2,
            format!(
                "DECLINED: {} — the customer was not charged (order {})",
                row.last_note.trim_start_matches("declined: "),
                row.order_id
            ),
        ),
        (AttemptState::Reversed, Some(ReverseAction::Refund)) => (
            2,
            format!(
                "CANCELLED: the payment was reversed and the customer refunded (order {})",
                row.order_id
            ),
        ),
        (AttemptState::Reversed, _) => (
            2,
            format!(
                "NOT PAID: the order was closed; the customer was not charged (order {})",
                row.order_id
            ),
        ),
        (s, _) => (
            3,
            format!(
                "OUTCOME UNKNOWN ({s}): do NOT charge again with the same code. It is journaled as order {} ({}) and will be settled by recovery: {}",
                row.order_id, row.out_trade_no, row.last_note
            ),
        ),
    };
    out.line(
        human,
        json!({"result": row.machine.state, "reverse_action": row.machine.reverse_action, "order": row.order_id, "out_trade_no": row.out_trade_no, "amount_fen": row.amount.fen(), "note": row.last_note, "exit": code}),
    );
    code
}

pub(crate) fn print_refund(out: &Out, r: &payterm::journal::RefundRow) -> u8 {
    let code = match r.state {
        RefundState::Done => 0,
        RefundState::Failed => 2,
        _ => 3,
    };
    out.line(
        format!("refund {} of {} yuan: {} ({})", r.out_refund_no, r.amount, r.state.as_str(), r.note),
        json!({"result": r.state, "out_refund_no": r.out_refund_no, "amount_fen": r.amount.fen(), "note": r.note, "exit": code}),
    );
    code
}
