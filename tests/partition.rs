//! Partitions: the gateway stops answering while a sale is being queried
//! (`/_sandbox/faults {"down": true}`). The sale must end "outcome unknown" (exit 3) with the
//! attempt journaled and parked — still QUERYING, nothing cancelled blind; once the gateway
//! answers again, `payterm recover` asks the order first: a payment that arrived during the
//! outage is the store's sale (PAID, inside or past the cancel window), an unpaid order is
//! cancelled. Journal and ledger must agree afterwards and a second recovery must change nothing.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, code};
use serde_json::Value;

/// Starts `payterm pay`, waits until its pay request has reached the sandbox, then cuts the
/// gateway off. Returns the exit code and the final JSON line of the sale.
fn pay_then_partition(env: &Env, amount_fen: u64, secret: &str) -> (i32, Value) {
    let amount = format!("{}.{:02}", amount_fen / 100, amount_fen % 100);
    let mut child = env
        .cmd()
        .env_remove("PAYTERM_FAILPOINT")
        .current_dir(env.dir.path())
        .args(["--json", "pay", "--amount", &amount, "--code", secret])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start payterm pay");
    let t = Instant::now();
    loop {
        let arrived = env.ledger()["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["amount_fen"].as_u64() == Some(amount_fen));
        if arrived {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the pay request never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    env.faults(r#"{"down": true}"#);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"result\""))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (status.code().unwrap_or(-1), last)
}

/// A sandbox whose 5-minute cancel window lasts 30 s of real time (rate 10), and a terminal
/// policy to match: a sale cut off mid-query spends several HTTP timeouts before it is parked,
/// and the window must still be open when recovery runs in the "inside the window" cases.
fn env() -> Env {
    let env = Env::start();
    env.sandbox_rate(10.0);
    env.edit_config(
        "reverse_not_before_ms = 400",
        "reverse_not_before_ms = 1600",
    );
    env.edit_config(
        r#"reverse_window = { kind = "after", ms = 7000 }"#,
        r#"reverse_window = { kind = "after", ms = 28000 }"#,
    );
    env
}

fn entry(env: &Env, no: &str) -> Value {
    env.journal_entry(|a| a["out_trade_no"] == no)
        .expect("the attempt is journaled")
}

/// The sale ended unknown, journaled and queued, and nothing was decided behind our back.
fn assert_parked(env: &Env, code: i32, v: &Value) -> String {
    assert_eq!(
        code, 3,
        "the outcome is unknown while the gateway is down: {v}"
    );
    let no = v["out_trade_no"]
        .as_str()
        .expect("out_trade_no")
        .to_string();
    let e = entry(env, &no);
    let t0 = e["history"][0]["at_ms"].as_i64().unwrap();
    for h in e["history"].as_array().unwrap() {
        eprintln!(
            "  +{:>5} ms {:<15} {}",
            h["at_ms"].as_i64().unwrap() - t0,
            h["to_state"].as_str().unwrap(),
            h["note"].as_str().unwrap()
        );
    }
    assert_eq!(e["attempt"]["state"], "QUERYING", "{e}");
    let states: Vec<&str> = e["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to_state"].as_str().unwrap())
        .collect();
    assert!(
        !states.contains(&"REVERSE_INTENT"),
        "nothing is fenced without an answer: {states:?}"
    );
    env.assert_consistent(false);
    no
}

fn recover_and_check(env: &Env, no: &str) -> Value {
    assert!(env.recover_until_settled(3), "recovery did not settle {no}");
    let before = env.snapshot();
    assert_eq!(env.recover(), 0);
    assert_eq!(
        before,
        env.snapshot(),
        "a second recovery changed something"
    );
    env.assert_consistent(true);
    env.assert_integrity();
    entry(env, no)
}

#[test]
fn unpaid_sale_cut_off_while_querying_is_cancelled_once_the_gateway_is_back() {
    let env = env();
    let (c, v) = pay_then_partition(&env, 3153, &code(1));
    let no = assert_parked(&env, c, &v);
    env.faults("{}");
    let e = recover_and_check(&env, &no);
    assert_eq!(e["attempt"]["state"], "REVERSED", "{e}");
    assert_eq!(e["attempt"]["reverse_action"], "close", "{e}");
    assert_eq!(env.ledger_order(&no).unwrap()["status"], "CLOSED");
    env.assert_no_secret(&code(1));
}

#[test]
fn paid_sale_cut_off_while_querying_is_the_stores_sale() {
    let env = env();
    // Scenario 54: the order is paid, its reply never comes, then the link drops.
    let (c, v) = pay_then_partition(&env, 3154, &code(2));
    let no = assert_parked(&env, c, &v);
    assert_eq!(env.ledger_order(&no).unwrap()["status"], "PAID");
    env.faults("{}");
    let e = recover_and_check(&env, &no);
    assert_eq!(
        e["attempt"]["state"], "PAID",
        "asked before any cancel: {e}"
    );
    let l = env.ledger_order(&no).unwrap();
    assert_eq!(l["status"], "PAID", "not cancelled: {l}");
    assert!(
        e["refunds"].as_array().unwrap().is_empty(),
        "nothing refunded"
    );
}

#[test]
fn paid_sale_cut_off_past_the_cancel_window_is_still_the_stores_sale() {
    let env = env();
    let (c, v) = pay_then_partition(&env, 3154, &code(3));
    let no = assert_parked(&env, c, &v);
    env.faults("{}");
    // The link stays down past the gateway's 5-minute cancel window: the order is asked
    // first, and a paid one is kept, not refunded.
    env.advance_sandbox_clock(6 * 60_000);
    let e = recover_and_check(&env, &no);
    assert_eq!(e["attempt"]["state"], "PAID", "{e}");
    assert!(e["refunds"].as_array().unwrap().is_empty());
    let l = env.ledger_order(&no).unwrap();
    assert_eq!(l["status"], "PAID");
    assert_eq!(l["net_fen"], 3154);
}
