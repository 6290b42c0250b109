//! Issue "foundation and the aggregator gateway": `payterm pay` against `payterm sandbox`, each
//! amount scenario of DESIGN.md §5, with the journal and the sandbox ledger compared afterwards.

mod common;

use common::{Env, code};

fn history_states(env: &Env, order: &str) -> Vec<String> {
    let (_, _, out) = env.run_json(&["journal", "show", order]);
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}{}",
                e["to_state"].as_str().unwrap(),
                e["op"]
                    .as_str()
                    .map(|o| format!("/{o}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn every_amount_scenario_ends_as_designed() {
    let env = Env::start();
    // (amount, expected exit code, expected final state, ledger status)
    let cases = [
        ("12.00", 0, "PAID", Some("PAID")),
        ("12.51", 2, "FAILED", Some("DECLINED")),
        ("12.52", 0, "PAID", Some("PAID")),
        ("12.53", 2, "REVERSED", Some("CLOSED")),
        ("12.54", 0, "PAID", Some("PAID")),
        ("12.55", 2, "REVERSED", Some("CLOSED")),
        ("12.56", 0, "PAID", Some("PAID")),
        ("12.57", 0, "PAID", Some("PAID")),
    ];
    for (i, (amount, exit, state, ledger)) in cases.iter().enumerate() {
        let (c, v) = env.pay(amount, &code(i as u32));
        assert_eq!(c, *exit, "{amount}: {v}");
        assert_eq!(v["result"], *state, "{amount}: {v}");
        let no = v["out_trade_no"].as_str().unwrap();
        let l = env.ledger_order(no);
        assert_eq!(
            l.as_ref().map(|o| o["status"].as_str().unwrap()),
            *ledger,
            "{amount}: ledger {l:?}"
        );
    }
    env.assert_consistent(true);
    env.assert_no_secret(&code(0));
}

#[test]
fn password_entry_is_paid_on_the_second_query() {
    let env = Env::start();
    let (c, v) = env.pay("3.52", &code(1));
    assert_eq!(c, 0);
    let h = history_states(&env, v["order"].as_str().unwrap());
    assert_eq!(
        h,
        ["PAY_INTENT", "QUERYING/pay", "QUERYING/query", "PAID/query"],
        "{h:?}"
    );
}

#[test]
fn a_tampered_reply_is_never_paid_before_a_query_confirms() {
    let env = Env::start();
    let (c, v) = env.pay("3.56", &code(2));
    assert_eq!(c, 0);
    let h = history_states(&env, v["order"].as_str().unwrap());
    assert_eq!(
        h[1], "QUERYING/pay",
        "the bad signature must not be believed: {h:?}"
    );
    assert_eq!(h.last().unwrap(), "PAID/query");
    let (_, _, out) = env.run_json(&["journal", "show", v["order"].as_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature"));
}

#[test]
fn partial_refunds_and_a_third_above_what_remains() {
    let env = Env::start();
    let (c, v) = env.pay("10.00", &code(3));
    assert_eq!(c, 0);
    let order = v["order"].as_str().unwrap().to_string();
    let (c, r, _) = env.run_json(&["refund", &order, "--amount", "3.00"]);
    assert_eq!((c, r["result"].as_str()), (0, Some("DONE")), "{r}");
    let (c, r, _) = env.run_json(&["refund", &order, "--amount", "3.00"]);
    assert_eq!((c, r["result"].as_str()), (0, Some("DONE")), "{r}");
    let requests_before = env
        .ledger_order(v["out_trade_no"].as_str().unwrap())
        .unwrap()["refunds"]
        .as_array()
        .unwrap()
        .len();
    let out = env.run(&["refund", &order, "--amount", "4.01"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 4.00 remains"), "{err}");
    let l = env
        .ledger_order(v["out_trade_no"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        l["refunds"].as_array().unwrap().len(),
        requests_before,
        "no request was sent"
    );
    assert_eq!(l["net_fen"], 400);
    // The rest can still be refunded, and refund-query confirms it.
    let (c, r, _) = env.run_json(&[
        "refund",
        &order,
        "--amount",
        "4.00",
        "--refund-id",
        "MYREFUND_3",
    ]);
    assert_eq!(c, 0, "{r}");
    let (c, r, _) = env.run_json(&["refund-query", "MYREFUND_3"]);
    assert_eq!((c, r["result"].as_str()), (0, Some("DONE")), "{r}");
    env.assert_consistent(true);
}

#[test]
fn cancel_of_a_paid_order_is_retried_until_it_reverses() {
    let env = Env::start();
    let (c, v) = env.pay("7.58", &code(4));
    assert_eq!(c, 0);
    let order = v["order"].as_str().unwrap().to_string();
    let (c, r, out) = env.run_json(&["cancel", &order]);
    assert_eq!(c, 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r["result"], "REVERSED");
    assert_eq!(r["reverse_action"], "refund");
    let l = env
        .ledger_order(v["out_trade_no"].as_str().unwrap())
        .unwrap();
    assert_eq!(l["status"], "REVOKED");
    assert_eq!(l["cancel_tries"], 3, "two retries, then success");
    env.assert_consistent(true);
}

#[test]
fn bad_input_is_refused_before_any_request() {
    let env = Env::start();
    for (amount, code, why) in [
        ("0", "134567890123456789", "positive"),
        ("-1", "134567890123456789", "positive"),
        ("1.234", "134567890123456789", "two decimals"),
        ("5000.01", "134567890123456789", "limit"),
        ("1.00", "999999", "matches no wallet"),
        ("1.00", "https://example.com/x", "payment code"),
    ] {
        let out = env.run(&["pay", "--amount", amount, "--code", code]);
        assert_eq!(out.status.code(), Some(1), "{amount} {code}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{amount} {code}: {err}");
        assert!(
            !err.contains("134567890123456789"),
            "the code is never printed"
        );
    }
    assert_eq!(env.ledger()["orders"].as_array().unwrap().len(), 0);
    // The same code twice within two minutes is refused.
    assert_eq!(env.pay("1.00", &code(5)).0, 0);
    let out = env.run(&["pay", "--amount", "1.00", "--code", &code(5)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already scanned"));
    assert_eq!(env.ledger()["orders"].as_array().unwrap().len(), 1);
}

#[test]
fn face_pay_and_qr_preorder_with_notification() {
    let env = Env::start();
    let (c, v, out) = env.run_json(&[
        "face-pay",
        "--amount",
        "8.00",
        "--face-code",
        "120061098828009406",
        "--openid",
        "oUser",
    ]);
    assert_eq!(c, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["result"], "PAID");
    let l = env
        .ledger_order(v["out_trade_no"].as_str().unwrap())
        .unwrap();
    assert_eq!(l["kind"], "facepay");
    env.assert_no_secret("120061098828009406");

    // A QR pre-order: the customer scans (the sandbox's QR URL) while payterm queries.
    let mut child = env
        .cmd()
        .args(["--json", "qr-pay", "--amount", "9.00", "--wallet", "ALIPAY"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some(u) = v["code_url"].as_str() {
            url = Some(u.to_string());
            break;
        }
        line.clear();
    }
    let url = url.expect("payterm prints the code_url");
    ureq::get(&url).call().expect("the customer pays");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    env.assert_consistent(true);
}

#[test]
fn config_check_explains_problems() {
    let env = Env::start();
    let out = env.run(&["config", "check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let bad = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("id = \"T01\"", "id = \"T-01!\"")
        .replace("key_file = \"agg.key\"", "key_file = \"missing.key\"");
    let p = env.dir.path().join("bad.toml");
    std::fs::write(&p, bad).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["--config"])
        .arg(&p)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("terminal.id") && text.contains("missing.key"),
        "{text}"
    );
}

/// `config check --online`: one signed GetMchInfo; a wrong key, a wrong path, a stopped gateway
/// and a silent one each exit 1 with their own explanation.
#[test]
fn config_check_online_explains_each_failure() {
    let env = Env::start();
    let check = |env: &Env| {
        let (c, v, out) = env.run_json(&["config", "check", "--online"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (c, v, text)
    };
    let (c, v, text) = check(&env);
    assert_eq!(c, 0, "{text}");
    assert_eq!(v["online"], true);

    // Wrong key: the sandbox answers 20002 signed with its own key.
    let key = env.dir.path().join("agg.key");
    std::fs::write(&key, "not-the-key\n").unwrap();
    let (c, v, text) = check(&env);
    assert_eq!((c, v["result"].as_str()), (1, Some("invalid")), "{text}");
    assert!(
        text.contains("wrong key") && text.contains("20002"),
        "{text}"
    );
    std::fs::write(&key, "e2e-test-md5-key-00000000000000\n").unwrap();

    // Wrong path: base_url copied with the gateway path; offline a warning, online a 404.
    let url = env.url.clone();
    env.edit_config(
        &format!("base_url = \"{url}\""),
        &format!("base_url = \"{url}/UnifiedPay/Gateway\""),
    );
    let (c, _, text) = check(&env);
    assert_eq!(c, 1, "{text}");
    assert!(
        text.contains("wrong path") && text.contains("HTTP 404"),
        "{text}"
    );
    assert!(
        text.contains("warning") && text.contains("ends in the gateway path"),
        "{text}"
    );
    let out = env.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "offline it is only a warning");

    // A stopped gateway: nothing listens on the port.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    env.edit_config(
        &format!("base_url = \"{url}/UnifiedPay/Gateway\""),
        &format!("base_url = \"{dead}\""),
    );
    let (c, _, text) = check(&env);
    assert_eq!(c, 1, "{text}");
    assert!(text.contains("connection refused"), "{text}");

    // A gateway that accepts and never answers.
    env.edit_config(
        &format!("base_url = \"{dead}\""),
        &format!("base_url = \"{url}\""),
    );
    env.faults(r#"{"lose_reply": 1.0}"#);
    let (c, _, text) = check(&env);
    assert_eq!(c, 1, "{text}");
    assert!(
        text.contains("timeout") || text.contains("no answer"),
        "{text}"
    );
}

#[test]
fn config_check_names_every_unknown_key_and_a_missing_file() {
    let env = Env::start();
    env.edit_config("op_user_id = \"cashier01\"", "op_user = \"cashier01\"");
    env.edit_config("max_open = 1000", "max_opne = 1000");
    let (c, v, out) = env.run_json(&["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!((c, v["result"].as_str()), (1, Some("invalid")), "{text}");
    assert!(
        text.contains("\\\"op_user\\\"") && text.contains("\\\"max_opne\\\""),
        "{text}"
    );
    let out = std::process::Command::new(common::BIN)
        .env_remove("PAYTERM_CONFIG")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read /etc/payterm/payterm.toml")
            && err.contains("pass --config FILE or set PAYTERM_CONFIG"),
        "{err}"
    );
}
