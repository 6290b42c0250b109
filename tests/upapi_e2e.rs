//! Issue 8, 云闪付 无感支付: through `payterm contract …` against `payterm sandbox` — a contract
//! signed from the app's authorization code, checked, charged (amount scenarios), refunded in
//! part, refused for arrears, cancelled by the merchant, cancelled by the customer (the verified,
//! idempotent notification), and the encryption-key update. Every request the sandbox received
//! must have verified, and the journal must equal the ledger.

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

#[test]
fn contract_signed_charged_refunded_and_cancelled() {
    let env = Env::start();
    with_upapi(&env, "enabled = false");
    let (id, open) = sign(&env, "CC0001");
    let (c, v, _) = env.run_json(&["contract", "query", &id]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["contract"]["status"], "SIGNED");
    let m = v["contract"]["masked_mobile"].as_str().unwrap();
    assert!(
        m.starts_with("1380") && m.contains("***") && m.len() == 11,
        "{m}"
    );

    // Charges: paid at once, declined, system error then paid on query, entering password.
    for (amount, exit, state) in [
        ("12.00", 0, "PAID"),
        ("12.51", 2, "FAILED"),
        ("12.57", 0, "PAID"),
        ("12.52", 0, "PAID"),
    ] {
        let (c, v, err) = charge(&env, &id, amount);
        assert_eq!(c, exit, "{amount}: {v} {err}");
        assert_eq!(v["result"], state, "{amount}: {v}");
    }
    let (c, v, _) = charge(&env, &id, "30.00");
    assert_eq!(c, 0, "{v}");
    let order = v["order"].as_str().unwrap().to_string();
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    for amount in ["10.00", "5.50"] {
        let (c, v, _) = env.run_json(&["contract", "refund", &order, "--amount", amount]);
        assert_eq!(c, 0, "{v}");
        assert_eq!(v["result"], "DONE");
    }
    let (c, _, _) = env.run_json(&["contract", "refund", &order, "--amount", "15.00"]);
    assert_eq!(c, 1, "above what remains: refused before sending");
    let o = env.ledger_order(&no).unwrap();
    assert_eq!(o["refunded_fen"], 1550, "{o}");
    assert_eq!(o["net_fen"], 1450, "{o}");

    // Arrears: refused, with a message the customer understands.
    env.post(
        "/_sandbox/upapi/arrears",
        &format!(r#"{{"open_id": "{open}", "count": 1}}"#),
    );
    let (c, v, err) = charge(&env, &id, "8.00");
    assert_eq!(c, 2, "{v}");
    assert!(err.contains("unpaid"), "{err}");
    env.post(
        "/_sandbox/upapi/arrears",
        &format!(r#"{{"open_id": "{open}", "count": 0}}"#),
    );

    // The merchant cancels; no more charges.
    let (c, v, _) = env.run_json(&["contract", "cancel", &id]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["contract"]["status"], "RELIEVED");
    let (c, _, err) = charge(&env, &id, "8.00");
    assert_eq!(c, 2);
    assert!(err.contains("cancelled"), "{err}");

    env.assert_consistent(true);
    assert_all_verified(&env);
    let s = env.get("/_sandbox/upapi/stats");
    assert_eq!(s["contracts"][0]["status"], "3");
}

#[test]
fn the_customer_cancels_in_the_app_and_the_notice_is_idempotent() {
    let env = Env::start();
    with_upapi(&env, "enabled = false");
    let (id, _) = sign(&env, "CC0002");
    let n = env.post(
        "/_sandbox/upapi/user-relieve",
        &format!(r#"{{"contract_id": "{id}"}}"#),
    );
    let q = n["query"].as_str().unwrap();
    let (c, v, _) = env.run_json(&["contract", "notify", "--query", q]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["answer"], r#"{"resp":"00"}"#);
    assert_eq!(v["fresh"], true);
    let (c, v, _) = env.run_json(&["contract", "notify", "--query", q]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["fresh"], false, "recorded once");
    assert_eq!(v["answer"], r#"{"resp":"00"}"#, "answered the same way");
    let forged = q.replace(&id, "CT00000000000000000001");
    let (c, v, _) = env.run_json(&["contract", "notify", "--query", &forged]);
    assert_eq!(c, 1, "{v}");
    assert_ne!(v["answer"], r#"{"resp":"00"}"#);
    let (_, _, err) = charge(&env, &id, "1.00");
    assert!(err.contains("cancelled"), "{err}");
}

#[test]
fn the_encryption_key_update_installs_the_new_certificate() {
    let env = Env::start();
    with_upapi(&env, "enabled = false");
    let before = std::fs::read(env.dir.path().join("enc.cer")).unwrap();
    let (c, v, out) = env.run_json(&["contract", "update-key"]);
    assert_eq!(c, 0, "{v} {}", String::from_utf8_lossy(&out.stderr));
    assert!(v["update"].as_str().unwrap().contains("Replaced"), "{v}");
    assert_ne!(
        std::fs::read(env.dir.path().join("enc.cer")).unwrap(),
        before
    );
    let (c, v, _) = env.run_json(&["contract", "update-key"]);
    assert_eq!(c, 0);
    assert!(v["update"].as_str().unwrap().contains("Unchanged"), "{v}");
}
