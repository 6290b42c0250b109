//! 云闪付 (upapi) helpers shared by the contract and offline-deduction tests.

use super::Env;

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
not_found_final_after_ms = 3000
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
