//! Issue "reachable by the people who need it": with --json every command ends with a `result`
//! object on stdout, refusals and usage mistakes included; `journal list --date` takes only
//! YYYY-MM-DD and says so.

mod common;

use common::{Env, code};
use serde_json::Value;

fn last_json(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
}

#[test]
fn every_command_ends_with_a_result_object() {
    let env = Env::start();
    assert_eq!(env.pay("2.00", &code(1)).0, 0);

    let out = env.run(&["--json", "journal", "list"]);
    let v = last_json(&out);
    assert_eq!(
        (v["result"].as_str(), v["attempts"].as_u64()),
        (Some("ok"), Some(1)),
        "{v}"
    );

    // A refusal of the library: exit 1, and the reason as the final object.
    let out = env.run(&["--json", "refund", "NOSUCHORDER", "--amount", "1.00"]);
    let v = last_json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        (v["result"].as_str(), v["exit"].as_u64()),
        (Some("error"), Some(1)),
        "{v}"
    );
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");

    // A usage mistake clap refuses: the same shape.
    let out = env.run(&["--json", "pay", "--amount", "1.00"]);
    let v = last_json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["result"], "error", "{v}");
    assert!(v["error"].as_str().unwrap().contains("--code"), "{v}");

    // An unknown order in `journal show` is said, not an empty success.
    let out = env.run(&["--json", "journal", "show", "NOSUCHORDER"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(last_json(&out)["result"], "error");
}

#[test]
fn journal_list_date_takes_only_iso_dates() {
    let env = Env::start();
    let out = env.run(&["journal", "list", "--date", "12/03"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    let out = env.run(&["journal", "list", "--date", "2026-03-12"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
