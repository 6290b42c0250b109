//! Issue 8, 云闪付 无感支付: through `payterm contract …` against `payterm sandbox` — a contract
//! signed from the app's authorization code, checked, charged (amount scenarios), refunded in
//! part, refused for arrears, cancelled by the merchant, cancelled by the customer (the verified,
//! idempotent notification), and the encryption-key update. Every request the sandbox received
//! must have verified, and the journal must equal the ledger.

mod common;

use common::Env;
use serde_json::Value;

/// Adds `[gateways.upapi]` with the sandbox's built-in credentials to the environment's config.
pub fn with_upapi(env: &Env, offline: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    // The 95 update rewrites the encryption certificate: give it a copy.
    std::fs::copy(
        format!("{root}/config/sandbox-acp/sandbox_enc.cer"),
        env.dir.path().join("enc.cer"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        r#"
[gateways.upapi]
base_url = "{url}"
app_id = "up0a1b2c3d4e5f60718293a4b5c6d7e8f9"
secret_file = "{root}/config/sandbox-upapi/secret"
symmetric_key_file = "{root}/config/sandbox-upapi/symmetric.key"
plan_id = "PLANSBX0001"
notify_cert = "{root}/config/sandbox-upapi/unionpay_notify.cer"
consume_url = "{url}/upapi-acp/gateway/api/backTransReq.do"
connect_timeout_ms = 300
timeout_ms = 800

[gateways.upapi.offline]
{offline}

[gateways.upapi.acp]
base_url = "{url}"
file_url = "{url}/"
mer_id = "777290058110048"
term_id = "T01UPAPI"
sign_pfx = "{root}/config/sandbox-acp/acp_test_sign.pfx"
sign_password_file = "{root}/config/sandbox-acp/sign.pass"
encrypt_cert = "enc.cer"
middle_cert = "{root}/config/sandbox-acp/sandbox_middle.cer"
root_cert = "{root}/config/sandbox-acp/sandbox_root.cer"
owner = "production"
back_url = "http://127.0.0.1:9/notify"
connect_timeout_ms = 300
timeout_ms = 2000
confirm_delays_ms = [100, 200, 400]

[gateways.upapi.acp.policy]
query_delays_ms = [200]
pay_deadline_ms = 1500
reverse_not_before_ms = 0
reverse_window = {{ kind = "after", ms = 600000 }}
reverse_retry_ms = [100, 200]
reverse_tries_before_saf = 5
saf_base_ms = 500
saf_cap_ms = 4000
after_window = "refund"
review_after_ms = 86400000
"#,
        url = env.url
    ));
    std::fs::write(&env.config, text).unwrap();
    env.post("/_sandbox/clock", r#"{"rate": 1.0}"#);
}

/// Signs a contract for a new sandbox user; returns (contract id, open id).
pub fn sign(env: &Env, contract_code: &str) -> (String, String) {
    let a = env.post("/_sandbox/upapi/authorize", "{}");
    let (c, v, out) = env.run_json(&[
        "contract",
        "sign",
        "--auth-code",
        a["code"].as_str().unwrap(),
        "--contract-code",
        contract_code,
    ]);
    assert_eq!(c, 0, "{v} {}", String::from_utf8_lossy(&out.stderr));
    (
        v["contract"]["contract_id"].as_str().unwrap().to_string(),
        a["open_id"].as_str().unwrap().to_string(),
    )
}

pub fn assert_all_verified(env: &Env) {
    let s = env.get("/_sandbox/upapi/stats");
    assert_eq!(s["rejected"], serde_json::json!([]), "{s}");
    assert!(s["verified"].as_u64().unwrap() > 0);
}

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
