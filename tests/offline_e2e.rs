//! Issue 8, offline deductions: the uplink is cut, known contract customers are accepted within
//! the limits (per customer, in total) and refused above them with a message they understand;
//! the uplink returns, `payterm recover` submits every stored deduction, all settle, and the
//! journal equals the sandbox ledger.

mod common;

use common::Env;
use common::upapi::{assert_all_verified, sign, with_upapi};
use serde_json::Value;

fn charge(env: &Env, id: &str, amount: &str) -> (i32, Value, String) {
    let (c, v, out) = env.run_json(&["contract", "charge", id, "--amount", amount]);
    assert!(
        c != 101,
        "panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (c, v, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn deductions(env: &Env) -> Vec<Value> {
    let (_, _, out) = env.run_json(&["contract", "deductions"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("deduction").cloned())
        .collect()
}

// The same helpers as tests/upapi_e2e.rs (each test file is its own crate).

const LIMITS: &str = r#"enabled = true
per_customer = "40.00"
total = "70.00"
max_age_s = 3600
fresh_within_s = 600
max_tries = 3"#;

#[test]
fn offline_deductions_within_limits_settle_when_the_uplink_returns() {
    let env = Env::start();
    with_upapi(&env, LIMITS);
    let (c1, _) = sign(&env, "OFFC1");
    let (c2, _) = sign(&env, "OFFC2");
    let (c3, _) = sign(&env, "OFFC3");

    // The uplink goes down: nothing reaches the platform.
    env.post("/_sandbox/faults", r#"{"down": true}"#);
    let mut accepted = 0u64;
    for (id, amount, ok, why) in [
        (&c1, "10.00", true, ""),
        (&c1, "15.00", true, ""),
        (&c2, "20.00", true, ""),
        // 25 + 20 > 40 for this customer.
        (&c1, "20.00", false, "limit of 40.00 yuan"),
        // 45 + 30 > 70 on this terminal.
        (&c3, "30.00", false, "offline limit (70.00 yuan)"),
        (&c3, "10.00", true, ""),
    ] {
        let (c, v, err) = charge(&env, id, amount);
        if ok {
            assert_eq!(c, 0, "{amount}: {v} {err}");
            assert_eq!(v["result"], "OFFLINE_ACCEPTED", "{v}");
            accepted += (amount.parse::<f64>().unwrap() * 100.0).round() as u64;
        } else {
            assert_eq!(c, 2, "{amount}: {v}");
            assert!(err.contains(why), "{err}");
            assert!(err.contains("please pay with a payment code"), "{err}");
        }
    }
    let stored = deductions(&env);
    assert_eq!(stored.len(), 4);
    assert!(stored.iter().all(|d| d["state"] == "STORED"));
    // Nothing reached the sandbox's ledger while it was down.
    assert_eq!(env.ledger()["orders"].as_array().unwrap().len(), 0);

    // The uplink returns: recovery submits every deduction through the engine.
    env.post("/_sandbox/faults", r#"{"down": false}"#);
    let (c, v, out) = env.run_json(&["recover"]);
    assert_eq!(c, 0, "{v} {}", String::from_utf8_lossy(&out.stderr));
    let settled = deductions(&env);
    assert_eq!(settled.len(), 4);
    for d in &settled {
        assert_eq!(d["state"], "SETTLED", "{d}");
        assert!(d["out_trade_no"].is_string());
    }
    env.assert_consistent(true);
    let ledger = env.ledger();
    assert_eq!(ledger["total_net_fen"], accepted);
    assert_eq!(accepted, 5_500);
    assert_all_verified(&env);
    // A second pass changes nothing (nothing is charged twice).
    let (c, _, _) = env.run_json(&["recover"]);
    assert_eq!(c, 0);
    assert_eq!(env.ledger()["total_net_fen"], accepted);
}

#[test]
fn offline_refuses_stale_unknown_and_arrears_customers() {
    let env = Env::start();
    with_upapi(
        &env,
        &LIMITS.replace("fresh_within_s = 600", "fresh_within_s = 0"),
    );
    let (c1, open1) = sign(&env, "OFFS1");
    env.post("/_sandbox/faults", r#"{"down": true}"#);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (c, _, err) = charge(&env, &c1, "5.00");
    assert_eq!(c, 2);
    assert!(err.contains("last confirmed"), "stale: {err}");
    let (c, _, err) = charge(&env, "CT-NOT-KNOWN", "5.00");
    assert_eq!(c, 2);
    assert!(err.contains("do not know your"), "{err}");
    assert!(deductions(&env).is_empty());

    // Known arrears are never overridden offline.
    env.post("/_sandbox/faults", r#"{"down": false}"#);
    env.post(
        "/_sandbox/upapi/arrears",
        &format!(r#"{{"open_id": "{open1}", "count": 2}}"#),
    );
    let (c, _, err) = charge(&env, &c1, "5.00");
    assert_eq!(c, 2);
    assert!(err.contains("2 unpaid"), "{err}");
}
