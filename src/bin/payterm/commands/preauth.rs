//! How a pre-authorisation operation's result is said on the command line, for `payterm acp …`
//! and `payterm chinaums …` alike: one exit code, one JSON line, one sentence per state. It was
//! engine::preauth's; it is output, so it lives with the commands and the engine returns data.
//! It must not change the operation: the journal row is already where run() left it.

use serde_json::{Value, json};

use payterm::engine::preauth::{PreAuthError, Ran};
use payterm::journal::PreAuthState;

/// The command line's answer for [`run`](payterm::engine::preauth::run)'s result: (exit code, JSON line, sentence). Exit 0
/// DONE, 1 bad input or configuration, 2 FAILED or refused before sending (no money moved),
/// 3 UNKNOWN / INTENT / REVIEW (journaled; `payterm recover` or a person settles it).
pub(crate) fn command_result(name: &str, r: Result<Ran, PreAuthError>) -> (u8, Value, String) {
    let ran = match r {
        Ok(ran) => ran,
        Err(e) => {
            let code = e.exit_code();
            return (
                code,
                json!({"result": "error", "op": name, "error": e.to_string(), "exit": code}),
                format!("{name}: {e}"),
            );
        }
    };
    let row = &ran.row;
    let code = match row.state {
        PreAuthState::Done => 0,
        PreAuthState::Failed => 2,
        _ => 3,
    };
    let what = format!(
        "{} {}{} via {} (request {})",
        row.operation.describe(),
        if row.amount.is_zero() {
            String::new()
        } else {
            format!("of {} yuan ", row.amount)
        },
        row.target_key,
        row.gateway,
        row.request_no
    );
    let human = match (row.state, ran.sent) {
        (PreAuthState::Done, true) => format!("DONE: {what}: {}", row.last_note),
        (PreAuthState::Done, false) => format!(
            "ALREADY DONE: {what} was done before; nothing was sent again ({})",
            row.last_note
        ),
        (PreAuthState::Failed, true) => format!("FAILED: {what}: {}", row.last_note),
        (PreAuthState::Failed, false) => format!(
            "FAILED: {what} did not take effect ({}); to try again, use a new request number",
            row.last_note
        ),
        (PreAuthState::Review, _) => format!(
            "NEEDS REVIEW: {what}: {}; see `payterm journal list --review`",
            row.last_note
        ),
        (_, _) => format!(
            "OUTCOME UNKNOWN ({}): {what} is journaled and will be resolved by `payterm recover` with the operation's query; do NOT send it again under a new request number ({})",
            row.state.as_str(),
            row.last_note
        ),
    };
    let mut v = json!({
        "result": row.state,
        "op": name,
        "request_no": row.request_no,
        "gateway": row.gateway,
        "operation": row.operation,
        "target": row.target,
        "amount_fen": row.amount.fen(),
        "chan_ref": row.chan_ref,
        "note": row.last_note,
        "sent": ran.sent,
        "exit": code,
    });
    if let (Value::Object(m), Value::Object(info)) = (&mut v, &ran.info) {
        for (k, x) in info {
            m.entry(k.clone()).or_insert_with(|| x.clone());
        }
    }
    (code, v, human)
}
