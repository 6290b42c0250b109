//! Issue "every API of the seeds, reachable": the aggregator's 运维管理 group through the real
//! binary against the sandbox — `payterm merchant register|sms|id|partner|info` and `payterm
//! miniprogram session` — each with a human line and, with --json, one object with `result`.

mod common;

use common::Env;

#[test]
fn merchant_operations_end_to_end() {
    let env = Env::start();
    let (c, v, out) = env.run_json(&[
        "merchant",
        "register",
        "mch_name=小店",
        "mobile=13800000000",
    ]);
    assert_eq!(c, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["result"], "ok");
    let id = v["mch_id"].as_str().unwrap().to_string();
    assert!(id.starts_with('V'), "{v}");
    // The same registration again names the same merchant.
    let (_, again, _) = env.run_json(&[
        "merchant",
        "register",
        "mobile=13800000000",
        "mch_name=小店",
    ]);
    assert_eq!(again["mch_id"], id.as_str());
    // The common parameters are ours, from the configuration; refused before sending.
    let (c, v, _) = env.run_json(&["merchant", "register", "agent_id=1"]);
    assert_eq!((c, v["result"].as_str()), (1, Some("error")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("agent_id"), "{v}");

    let (c, v, _) = env.run_json(&["merchant", "sms", "--mobile", "13800000000"]);
    assert_eq!((c, v["result"].as_str()), (0, Some("ok")), "{v}");
    assert_eq!(v["valid_minutes"], 20);

    let (c, v, _) = env.run_json(&[
        "merchant",
        "id",
        "--mobile",
        "13800000000",
        "--valid",
        "1234",
    ]);
    assert_eq!((c, v["result"].as_str()), (0, Some("ok")), "{v}");
    assert_eq!(v["mch_id"], "00000001");
    assert_eq!(v["mch_state"], "20");
    assert_eq!(v["mch_trade_code"], "f6********", "masked unless asked");
    let out = env
        .cmd()
        .env("PAYTERM_MCH_PASSWORD", "sandbox")
        .args([
            "merchant",
            "id",
            "--username",
            "shop01",
            "--show-trade-code",
        ])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains("f6742168cc") && human.contains("启用"),
        "{human}"
    );
    // A wrong SMS code: the aggregator refuses (exit 2) and says why.
    let (c, v, _) = env.run_json(&[
        "merchant",
        "id",
        "--mobile",
        "13800000000",
        "--valid",
        "9999",
    ]);
    assert_eq!((c, v["result"].as_str()), (2, Some("error")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("20005"), "{v}");

    let (c, v, _) = env.run_json(&["merchant", "partner"]);
    assert_eq!((c, v["result"].as_str()), (0, Some("ok")), "{v}");
    assert_eq!(v["partners"][0]["partner_id"], "257012345");
    let out = env.run(&["merchant", "partner"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("not yet approved by WeChat"));

    let (c, v, _) = env.run_json(&["merchant", "info"]);
    assert_eq!((c, v["result"].as_str()), (0, Some("ok")), "{v}");
    assert_eq!(v["full_name"], "payterm 沙箱测试商户");
    let out = env.run(&["merchant-info"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("沙箱商户"));
}

#[test]
fn miniprogram_session_never_shows_the_session_key() {
    let env = Env::start();
    let args = [
        "miniprogram",
        "session",
        "--appid",
        "wx4da448cd29920000",
        "--code",
        "023jh17A0Tlixd1ql75A0aLc7A0jabcd",
    ];
    let (c, v, out) = env.run_json(&args);
    assert_eq!(c, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["result"], "ok");
    assert!(v["openid"].as_str().unwrap().starts_with("oSBX_"), "{v}");
    assert!(v["unionid"].is_string(), "{v}");
    assert_eq!(v["session_key_returned"], true);
    assert!(v.get("session_key").is_none(), "{v}");
    // The sandbox derives the key from appid and code as base64 of sha256[16..]: recompute it
    // and make sure neither output nor any file of the test holds it.
    use base64::Engine;
    use sha2::Digest;
    let h = sha2::Sha256::digest(b"wx4da448cd29920000:023jh17A0Tlixd1ql75A0aLc7A0jabcd");
    let key = base64::engine::general_purpose::STANDARD.encode(&h[16..]);
    let human = env.run(&args);
    for o in [&out, &human] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!all.contains(&key), "the session_key was printed: {all}");
    }
    assert!(String::from_utf8_lossy(&human.stdout).contains("not shown"));
    env.assert_no_secret(&key);
    // A code without unionid conditions.
    let (c, v, _) = env.run_json(&[
        "miniprogram",
        "session",
        "--appid",
        "wx4da448cd29920000",
        "--code",
        "nounion1",
    ]);
    assert_eq!(c, 0);
    assert!(v["unionid"].is_null(), "{v}");
}
