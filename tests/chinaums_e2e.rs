//! Issue 8, ChinaUMS: `payterm pay --gateway chinaums` against `payterm sandbox` for every amount
//! scenario, a void, partial refunds and the bills pre-auth cancel, in both authentication modes.
//! Afterwards the journal must equal the sandbox ledger and every request the sandbox received
//! must have verified.

mod common;

use common::{Env, code};
use serde_json::Value;

/// Adds `[gateways.chinaums]` (the sandbox's built-in credentials) to the environment's config.
fn with_chinaums(env: &Env, auth: &str) {
    let key = env.dir.path().join("ums.key");
    std::fs::write(&key, "sandbox-chinaums-appkey-8f2d61c0b9a4\n").unwrap();
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        r#"
[gateways.chinaums]
base_url = "{url}"
app_id = "pt5b0c1e7a2d944f6f8e3b9c0d1a2e3f4a"
app_key_file = "ums.key"
auth = "{auth}"
merchant_code = "898310000000001"
terminal_code = "00810001"
ip = "127.0.0.1"
require_signed_replies = true
connect_timeout_ms = 300
timeout_ms = 800

[gateways.chinaums.bills]
mid = "89844035541APR4"
tid = "APR40001"

[gateways.chinaums.policy]
query_delays_ms = [200]
pay_deadline_ms = 1200
reverse_not_before_ms = 0
reverse_window = {{ kind = "after", ms = 600000 }}
reverse_retry_ms = [100, 200]
reverse_tries_before_saf = 5
saf_base_ms = 500
saf_cap_ms = 4000
after_window = "refund"
review_after_ms = 86400000
not_found_final_after_ms = 3000
"#,
        url = env.url
    ));
    std::fs::write(&env.config, text).unwrap();
    // Real time on the sandbox: its void rule is "the same Beijing day".
    env.post("/_sandbox/clock", r#"{"rate": 1.0}"#);
}

fn ums_pay(env: &Env, amount: &str, code: &str) -> (i32, Value) {
    let (c, v, out) = env.run_json(&[
        "pay",
        "--amount",
        amount,
        "--code",
        code,
        "--gateway",
        "chinaums",
    ]);
    assert!(
        c != 101,
        "panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (c, v)
}

/// Every request reached the sandbox authenticated.
fn assert_all_verified(env: &Env) -> u64 {
    let s = env.get("/_sandbox/chinaums/stats");
    assert_eq!(s["rejected"], serde_json::json!([]), "{s}");
    let n = s["verified"].as_u64().unwrap();
    assert!(n > 0);
    n
}

#[test]
fn every_amount_scenario_through_chinaums() {
    let env = Env::start();
    with_chinaums(&env, "access_token");
    // (amount, exit, final state, ledger status)
    let cases = [
        ("10.00", 0, "PAID", Some("PAID")),
        // No documented decline code: the query's queryResCode 5 decides, the number is voided.
        ("10.51", 2, "REVERSED", Some("DECLINED")),
        ("10.52", 0, "PAID", Some("PAID")),
        ("10.53", 2, "REVERSED", Some("CLOSED")),
        ("10.54", 0, "PAID", Some("PAID")),
        ("10.55", 2, "REVERSED", Some("CLOSED")),
        ("10.56", 0, "PAID", Some("PAID")),
        ("10.57", 0, "PAID", Some("PAID")),
        ("10.58", 0, "PAID", Some("PAID")),
    ];
    let mut orders = vec![];
    for (i, (amount, exit, state, ledger)) in cases.iter().enumerate() {
        let (c, v) = ums_pay(&env, amount, &code(100 + i as u32));
        assert_eq!(c, *exit, "{amount}: {v}");
        assert_eq!(v["result"], *state, "{amount}: {v}");
        let no = v["out_trade_no"].as_str().unwrap().to_string();
        let l = env.ledger_order(&no);
        assert_eq!(
            l.as_ref().map(|o| o["status"].as_str().unwrap()),
            *ledger,
            "{amount}: ledger {l:?}"
        );
        orders.push(no);
    }
    // 58: the void asks to be retried twice, then the money goes back.
    let (c, v, _) = env.run_json(&["cancel", &orders[8]]);
    assert_eq!(c, 2, "{v}");
    assert_eq!(v["result"], "REVERSED");
    assert_eq!(v["reverse_action"], "refund");
    let o = env.ledger_order(&orders[8]).unwrap();
    assert_eq!(o["status"], "REVOKED");
    assert_eq!(o["cancel_tries"], 3);
    env.assert_consistent(true);
    env.assert_no_secret(&code(100));
    assert_all_verified(&env);
    // One token served every request of these nine processes? No: each process has its own
    // cache, so at most one fetch per process, never one per request.
    let s = env.get("/_sandbox/chinaums/stats");
    assert!(s["token_fetches"].as_u64().unwrap() <= 10, "{s}");
}

#[test]
fn void_and_partial_refunds_with_body_signatures() {
    let env = Env::start();
    with_chinaums(&env, "body_sig");
    let (c, v) = ums_pay(&env, "20.00", &code(200));
    assert_eq!(c, 0, "{v}");
    let order = v["order"].as_str().unwrap().to_string();
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    for (amount, id) in [("5.00", "RF1a2b3c"), ("3.00", "RF4d5e6f")] {
        let (c, v, _) = env.run_json(&["refund", &order, "--amount", amount, "--refund-id", id]);
        assert_eq!(c, 0, "{v}");
        assert_eq!(v["result"], "DONE");
    }
    // Above what remains: refused before anything is sent.
    let (c, v, _) = env.run_json(&["refund", &order, "--amount", "12.01"]);
    assert_eq!(c, 1, "{v}");
    let (c, v, _) = env.run_json(&["refund-query", "RF4d5e6f"]);
    assert_eq!(c, 0, "{v}");
    let o = env.ledger_order(&no).unwrap();
    assert_eq!(o["refunded_fen"], 800);
    assert_eq!(o["net_fen"], 1200);
    // A refunded order cannot be voided.
    let (c, _, _) = env.run_json(&["cancel", &order]);
    assert_eq!(c, 2);
    // A fresh one is voided: the money goes back the same day.
    let (c, v) = ums_pay(&env, "7.00", &code(201));
    assert_eq!(c, 0, "{v}");
    let (c, v, _) = env.run_json(&["cancel", v["order"].as_str().unwrap()]);
    assert_eq!(c, 2, "{v}");
    assert_eq!(v["result"], "REVERSED");
    assert_eq!(v["reverse_action"], "refund");
    env.assert_consistent(true);
    assert_all_verified(&env);
    assert_eq!(env.get("/_sandbox/chinaums/stats")["token_fetches"], 0);
}

#[test]
fn preauth_cancel_and_the_completion_family_from_the_cli() {
    let env = Env::start();
    with_chinaums(&env, "access_token");
    let bill = env.post("/_sandbox/chinaums/preauth", r#"{"amount_fen": 2100}"#);
    let args = |b: &Value| -> Vec<String> {
        vec![
            "--bill-no".into(),
            b["bill_no"].as_str().unwrap().into(),
            "--bill-date".into(),
            b["bill_date"].as_str().unwrap().into(),
            "--mer-order-id".into(),
            b["mer_order_id"].as_str().unwrap().into(),
            "--auth-code".into(),
            b["auth_id_resp_cd"].as_str().unwrap().into(),
        ]
    };
    let run = |cmd: &str, b: &Value, extra: &[&str]| {
        let mut a: Vec<String> = vec!["chinaums".into(), cmd.into()];
        a.extend(args(b));
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        env.run_json(&refs)
    };
    let (c, v, _) = run("preauth-cancel", &bill, &[]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["bill_status"], "CLOSED");
    assert_eq!(v["status"], "TRADE_CLOSED");
    let stats = env.get("/_sandbox/chinaums/stats");
    assert_eq!(stats["bills"][0]["state"], "CANCELLED");

    // Complete another, undo the completion, then release it.
    let b2 = env.post("/_sandbox/chinaums/preauth", r#"{"amount_fen": 5000}"#);
    let (c, v, _) = run("preauth-complete", &b2, &["--amount", "60.00"]);
    assert_eq!(c, 2, "more than authorised: {v}");
    let (c, v, _) = run("preauth-complete", &b2, &["--amount", "42.00"]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["bill_status"], "PAID");
    assert_eq!(v["total_fen"], 4200);
    let (c, v, _) = run("preauth-cancel", &b2, &[]);
    assert_eq!(c, 2, "a completed pre-auth is not released: {v}");
    let (c, v, _) = run("preauth-complete-cancel", &b2, &[]);
    assert_eq!(c, 0, "{v}");
    let (c, v, _) = run("preauth-cancel", &b2, &[]);
    assert_eq!(c, 0, "{v}");
    let (c, v, _) = run("bill-query", &b2, &[]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["bill_status"], "CLOSED");
    // Bad input changes nothing and sends nothing.
    let mut bad = b2.clone();
    bad["bill_date"] = "19/07/2023".into();
    let before = env.get("/_sandbox/chinaums/stats")["verified"].clone();
    let (c, _, _) = run("preauth-cancel", &bad, &[]);
    assert_eq!(c, 1);
    assert_eq!(env.get("/_sandbox/chinaums/stats")["verified"], before);
    assert_all_verified(&env);
}

#[test]
fn after_http_500s_a_chinaums_payment_ends_as_the_ledger_says() {
    // Issue "Money is never mislabelled": every ChinaUMS request is processed and answered with
    // an empty HTTP 500. Nothing is fenced without an answer; once ChinaUMS answers again the
    // attempt ends as the ledger says.
    let env = Env::start();
    with_chinaums(&env, "access_token");
    env.faults(r#"{"http_500": true}"#);
    let (c, v) = ums_pay(&env, "11.00", &code(170));
    assert_eq!(c, 3, "no answer, no outcome: {v}");
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    let e = env.journal_entry(|a| a["out_trade_no"] == no).unwrap();
    assert_eq!(
        e["attempt"]["state"], "QUERYING",
        "nothing fenced blind: {e}"
    );
    env.faults("{}");
    assert!(env.recover_until_settled(10));
    // Here the token request got the 500 first, so the pay never left: the order's query
    // proves it never existed and the fence closes it. Whatever the journal says, the
    // ledger says too.
    let e = env.journal_entry(|a| a["out_trade_no"] == no).unwrap();
    let st = e["attempt"]["state"].as_str().unwrap_or("");
    assert!(st == "PAID" || st == "REVERSED", "{e}");
    env.assert_consistent(true);
}
