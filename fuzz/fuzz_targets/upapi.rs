#![no_main]
//! 云闪付 (upapi) replies, cancel notifications and 3DES-encrypted fields. The first byte
//! chooses: a reply to each call (the same body answers the backendToken fetch too), a cancel
//! notification query string, or an encrypted field.

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use payterm::gateway::upapi::{SymmetricKey, Upapi, UpapiConfig, UserAuth};
use payterm::sandbox::acp::SANDBOX_SIGN_CERT;

#[path = "common.rs"]
mod common;

const KEY_HEX: &str = "0123456789abcdef0123456789abcdeffedcba9876543210";

fn cfg() -> UpapiConfig {
    toml::from_str(
        r#"base_url = "http://127.0.0.1:1"
app_id = "a5949221470c4059b9b0b45a90c81527"
secret_file = "s"
symmetric_key_file = "k"
plan_id = "PLAN0001"
notify_cert = "c"
[acp]
base_url = "http://127.0.0.1:1"
mer_id = "777290058110048"
sign_pfx = "p"
sign_password_file = "p"
encrypt_cert = "e"
middle_cert = "m"
root_cert = "r"
back_url = "http://127.0.0.1:1/n"
"#,
    )
    .expect("the fixed upapi configuration")
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let u = Upapi::new(
        cfg(),
        "upapi-test-secret".into(),
        KEY_HEX,
        SANDBOX_SIGN_CERT.as_bytes(),
        Arc::new(common::Replies {
            status: 200,
            body: rest.to_vec(),
            authorization: None,
        }),
        Arc::new(|| 1_795_000_000_000),
    )
    .expect("the fixed upapi client");
    match sel % 8 {
        0 => drop(u.user_auth("code0001")),
        1 => drop(u.contract_info("openid0001")),
        2 => drop(u.arrears("openid0001")),
        3 => drop(u.contract_relieve("openid0001", "CID9", "CC0001")),
        4 => drop(u.backend_token()),
        5 => {
            let user = UserAuth {
                access_token: String::from("token").into(),
                open_id: "openid0001".into(),
                expires_in_s: 7200,
                scope: "upapi_contract".into(),
            };
            let _ = u.contract_apply(&user, "CC0001");
        }
        6 => {
            if let Ok(q) = std::str::from_utf8(rest) {
                let _ = u.verify_relieve_notice(q);
            }
        }
        _ => {
            if let (Ok(k), Ok(b64)) = (SymmetricKey::from_hex(KEY_HEX), std::str::from_utf8(rest)) {
                let _ = k.decrypt(b64);
            }
        }
    }
});
