//! The pre-authorisation family under the write-ahead rule, end to end: the real `payterm` against
//! a real `payterm sandbox`. A ChinaUMS completion (and an ACP completion) whose reply is lost is
//! UNKNOWN in the journal and `payterm recover` resolves it against the sandbox's ledger by the
//! operation's query; a repeat under the same request number never sends again; a second
//! operation on the same pre-authorisation waits; bad input changes nothing; the operation is
//! journaled (INTENT) before its request leaves, seen while the sandbox holds the request and,
//! with the `failpoints` feature, after a crash between the commit and the send.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Env;
use serde_json::Value;

/// Adds `[gateways.chinaums]` (the sandbox's built-in credentials, bodies signed) to the config.
fn with_chinaums(env: &Env) {
    let key = env.dir.path().join("ums.key");
    std::fs::write(&key, "sandbox-chinaums-appkey-8f2d61c0b9a4\n").unwrap();
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        r#"
[gateways.chinaums]
base_url = "{url}"
app_id = "pt5b0c1e7a2d944f6f8e3b9c0d1a2e3f4a"
app_key_file = "ums.key"
auth = "body_sig"
merchant_code = "898310000000001"
terminal_code = "00810001"
ip = "127.0.0.1"
require_signed_replies = true
connect_timeout_ms = 300
timeout_ms = 800

[gateways.chinaums.bills]
mid = "89844035541APR4"
tid = "APR40001"
"#,
        url = env.url
    ));
    std::fs::write(&env.config, text).unwrap();
    env.sandbox_rate(1.0);
}

/// Adds `[gateways.acp]` (the sandbox's TEST-ONLY chain) to the config.
fn with_acp(env: &Env) {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sandbox-acp");
    let enc = env.dir.path().join("enc.cer");
    std::fs::copy(d.join("sandbox_enc.cer"), &enc).unwrap();
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        r#"
[gateways.acp]
base_url = "{url}"
file_url = "{url}/"
mer_id = "777290058110048"
term_id = "ACPTEST1"
sign_pfx = "{d}/acp_test_sign.pfx"
sign_password_file = "{d}/sign.pass"
encrypt_cert = "{enc}"
middle_cert = "{d}/sandbox_middle.cer"
root_cert = "{d}/sandbox_root.cer"
owner = "production"
back_url = "http://127.0.0.1:9/acp"
connect_timeout_ms = 300
timeout_ms = 800
confirm_delays_ms = [50, 100, 200]
lost_after_ms = 1000
"#,
        url = env.url,
        d = d.display(),
        enc = enc.display(),
    ));
    std::fs::write(&env.config, text).unwrap();
    env.sandbox_rate(1.0);
}

fn bill_args(b: &Value) -> Vec<String> {
    let f = |k: &str| b[k].as_str().unwrap().to_string();
    vec![
        "--bill-no".into(),
        f("bill_no"),
        "--bill-date".into(),
        f("bill_date"),
        "--mer-order-id".into(),
        f("mer_order_id"),
        "--auth-code".into(),
        f("auth_id_resp_cd"),
    ]
}

/// `payterm --json chinaums CMD <bill> EXTRA…`.
fn ums(env: &Env, cmd: &str, b: &Value, extra: &[&str]) -> (i32, Value) {
    let mut a: Vec<String> = vec!["chinaums".into(), cmd.into()];
    a.extend(bill_args(b));
    a.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let (c, v, out) = env.run_json(&refs);
    assert_ne!(c, 101, "panicked: {}", String::from_utf8_lossy(&out.stderr));
    (c, v)
}

fn bills(env: &Env) -> Vec<Value> {
    env.get("/_sandbox/chinaums/stats")["bills"]
        .as_array()
        .unwrap()
        .clone()
}

fn bill_state(env: &Env, bill_no: &Value) -> Value {
    bills(env)
        .into_iter()
        .find(|b| b["bill_no"] == *bill_no)
        .unwrap()
}

/// Requests the sandbox's ChinaUMS authenticated (each one it processed or refused).
fn ums_requests(env: &Env) -> u64 {
    env.get("/_sandbox/chinaums/stats")["verified"]
        .as_u64()
        .unwrap()
}

/// The pre-auth operations `payterm journal list [FLAGS]` prints.
fn listed(env: &Env, flags: &[&str]) -> Vec<Value> {
    let mut a = vec!["--json", "journal", "list"];
    a.extend_from_slice(flags);
    let out = env.run(&a);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("preauth").cloned())
        .collect()
}

/// `payterm journal show REQUEST_NO --json`: the operation and its history.
fn show(env: &Env, no: &str) -> Value {
    let out = env.run(&["--json", "journal", "show", no]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

/// `payterm recover` until it exits 0 (operations younger than their channel's request time
/// are left for the next pass); returns every pre-auth event line it printed.
fn recover_until_settled(env: &Env, within: Duration) -> Vec<Value> {
    let t = Instant::now();
    let mut events = vec![];
    loop {
        let (c, _, out) = env.run_env(&["recover", "--max-wait-ms", "1000"], &[]);
        assert!(
            c == 0 || c == 3,
            "recover exited {c}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        events.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["event"] == "preauth"),
        );
        if c == 0 {
            return events;
        }
        assert!(
            t.elapsed() < within,
            "still unsettled: {:?}",
            listed(env, &["--open"])
        );
        std::thread::sleep(Duration::from_millis(400));
    }
}

fn states(history: &Value) -> Vec<String> {
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_completion_whose_reply_is_lost_is_unknown_until_recover_asks_the_bill() {
    let env = Env::start();
    with_chinaums(&env);
    let bill = env.post("/_sandbox/chinaums/preauth", r#"{"amount_fen": 5000}"#);

    // The completion reaches ChinaUMS and is applied; its reply is lost.
    env.faults(r#"{"lose_reply": 1.0}"#);
    let (c, v) = ums(
        &env,
        "preauth-complete",
        &bill,
        &["--amount", "42.00", "--request-no", "PAE2E00001"],
    );
    env.faults("{}");
    assert_eq!(c, 3, "{v}");
    assert_eq!(v["result"], "UNKNOWN", "{v}");
    assert_eq!(v["request_no"], "PAE2E00001");
    let b = bill_state(&env, &bill["bill_no"]);
    assert_eq!(b["state"], "COMPLETED", "the sandbox applied it: {b}");
    assert_eq!(b["completed_fen"], 4200);

    // The journal says so, in both listings people use.
    let open = listed(&env, &["--open"]);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["state"], "UNKNOWN");
    assert_eq!(open[0]["amount"], 4200);
    assert_eq!(listed(&env, &["--review"]).len(), 1);
    // And the export carries it, with its history, after the attempts.
    let out = env.run(&["journal", "export"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("preauth").is_some())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["preauth"]["request_no"], "PAE2E00001");
    assert_eq!(lines[0]["preauth"]["state"], "UNKNOWN");
    assert!(lines[0]["history"].as_array().is_some_and(|h| h.len() >= 2));

    // Nothing else may be sent on that bill while the completion is unresolved.
    let before = ums_requests(&env);
    let (c, v) = ums(&env, "preauth-complete-cancel", &bill, &[]);
    assert_eq!(c, 2, "{v}");
    assert!(v["error"].as_str().unwrap().contains("PAE2E00001"), "{v}");
    assert_eq!(ums_requests(&env), before, "nothing was sent");

    // Recovery asks the bill query and settles it against the sandbox's ledger.
    let events = recover_until_settled(&env, Duration::from_secs(30));
    assert!(
        events.iter().any(|e| e["request_no"] == "PAE2E00001"
            && e["from"] == "UNKNOWN"
            && e["to"] == "DONE"),
        "{events:?}"
    );
    let s = show(&env, "PAE2E00001");
    assert_eq!(s["preauth"]["state"], "DONE", "{s}");
    assert_eq!(s["preauth"]["queries"], 1, "{s}");
    let h = states(&s["history"]);
    assert_eq!(h.first().map(String::as_str), Some("INTENT"));
    assert_eq!(h.get(1).map(String::as_str), Some("UNKNOWN"));
    assert_eq!(h.last().map(String::as_str), Some("DONE"));
    assert!(listed(&env, &["--review"]).is_empty());

    // The cashier repeats the command: the journal answers, nothing is sent again.
    let before = ums_requests(&env);
    let (c, v) = ums(
        &env,
        "preauth-complete",
        &bill,
        &["--amount", "42.00", "--request-no", "PAE2E00001"],
    );
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["result"], "DONE");
    assert_eq!(v["sent"], false);
    assert_eq!(ums_requests(&env), before);

    // The bill can be worked on again: undo the completion.
    let (c, v) = ums(&env, "preauth-complete-cancel", &bill, &[]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(bill_state(&env, &bill["bill_no"])["state"], "AUTHORIZED");
}

#[test]
fn bad_input_changes_nothing_and_sends_nothing() {
    let env = Env::start();
    with_chinaums(&env);
    let bill = env.post("/_sandbox/chinaums/preauth", r#"{"amount_fen": 3000}"#);
    let (c, v) = ums(
        &env,
        "preauth-complete",
        &bill,
        &["--amount", "10.00", "--request-no", "PABAD00001"],
    );
    assert_eq!(c, 0, "{v}");
    let before = ums_requests(&env);
    let journaled = listed(&env, &[]);
    assert_eq!(journaled.len(), 1);

    let mut bad_date = bill.clone();
    bad_date["bill_date"] = "19/07/2023".into();
    for (cmd, b, extra) in [
        ("preauth-cancel", &bad_date, vec![]),
        ("preauth-complete", &bill, vec!["--amount", "12.345"]),
        ("preauth-complete", &bill, vec!["--amount", "0"]),
        ("preauth-cancel", &bill, vec!["--request-no", "no spaces!"]),
        // The number names another operation already.
        ("preauth-cancel", &bill, vec!["--request-no", "PABAD00001"]),
        (
            "preauth-complete",
            &bill,
            vec!["--amount", "11.00", "--request-no", "PABAD00001"],
        ),
    ] {
        let (c, v) = ums(&env, cmd, b, &extra);
        assert_eq!(c, 1, "{cmd} {extra:?}: {v}");
        assert_eq!(v["result"], "error", "{v}");
    }
    assert_eq!(ums_requests(&env), before, "nothing was sent");
    let after = listed(&env, &[]);
    assert_eq!(after.len(), 1, "nothing was journaled: {after:?}");
    assert_eq!(after[0]["state"], "DONE");
    assert_eq!(bill_state(&env, &bill["bill_no"])["completed_fen"], 1000);
}

#[test]
fn the_operation_is_journaled_before_its_request_leaves() {
    let env = Env::start();
    with_chinaums(&env);
    let bill = env.post("/_sandbox/chinaums/preauth", r#"{"amount_fen": 2100}"#);
    // ChinaUMS is unreachable: the request hangs; the journal already has the operation.
    env.faults(r#"{"down": true}"#);
    let mut child = env
        .cmd()
        .args(["--json", "chinaums", "preauth-cancel"])
        .args(bill_args(&bill))
        .args(["--request-no", "PADOWN0001"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut seen = None;
    while seen.is_none() && t.elapsed() < Duration::from_secs(10) {
        if let Ok(conn) = rusqlite::Connection::open_with_flags(
            env.journal_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) {
            seen = conn
                .query_row(
                    "SELECT state FROM preauth_ops WHERE request_no = 'PADOWN0001'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .ok();
        }
        if seen.is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_eq!(
        seen.as_deref(),
        Some("INTENT"),
        "journaled while the request was out"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    env.faults("{}");
    assert_eq!(bill_state(&env, &bill["bill_no"])["state"], "AUTHORIZED");
    // It never arrived: the bill query shows it did not take effect.
    recover_until_settled(&env, Duration::from_secs(30));
    let s = show(&env, "PADOWN0001");
    assert_eq!(s["preauth"]["state"], "FAILED", "{s}");
    // A new request number may now release the bill.
    let (c, v) = ums(&env, "preauth-cancel", &bill, &[]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(bill_state(&env, &bill["bill_no"])["state"], "CANCELLED");
}

#[cfg(feature = "failpoints")]
#[test]
fn a_crash_between_the_intent_and_the_send_sends_nothing_and_recovery_closes_it() {
    let env = Env::start();
    with_chinaums(&env);
    let bill = env.post("/_sandbox/chinaums/preauth", r#"{"amount_fen": 2100}"#);
    let before = ums_requests(&env);
    let mut a: Vec<String> = vec!["chinaums".into(), "preauth-complete".into()];
    a.extend(bill_args(&bill));
    a.extend(["--amount", "21.00", "--request-no", "PACRASH001"].map(String::from));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let (c, _, _) = env.run_env(&refs, &[("PAYTERM_FAILPOINT", "PA1")]);
    assert_ne!(c, 0, "the process aborted at PA1");
    assert_eq!(ums_requests(&env), before, "nothing was sent");
    let open = listed(&env, &["--open"]);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["state"], "INTENT");
    recover_until_settled(&env, Duration::from_secs(30));
    assert_eq!(show(&env, "PACRASH001")["preauth"]["state"], "FAILED");
    assert_eq!(bill_state(&env, &bill["bill_no"])["state"], "AUTHORIZED");
}

fn acp(env: &Env, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["acp"];
    a.extend_from_slice(args);
    let (c, v, out) = env.run_json(&a);
    assert_ne!(c, 101, "panicked: {}", String::from_utf8_lossy(&out.stderr));
    (c, v)
}

fn acp_txn(env: &Env, order_id: &str) -> Option<Value> {
    env.get("/_sandbox/acp/txns")["txns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["order_id"] == order_id)
        .cloned()
}

fn acp_txn_count(env: &Env) -> usize {
    env.get("/_sandbox/acp/txns")["txns"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn the_acp_family_is_journaled_and_a_lost_completion_is_resolved_by_its_status_query() {
    let env = Env::start();
    with_acp(&env);
    let code = "6212345678901234567";
    let (c, v) = acp(
        &env,
        &[
            "preauth",
            "--amount",
            "100.00",
            "--code",
            code,
            "--request-no",
            "PAACP00001",
        ],
    );
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["result"], "DONE");
    let pre_qid = v["chan_ref"].as_str().unwrap().to_string();
    assert_eq!(acp_txn(&env, "PAACP00001").unwrap()["txn_type"], "02");

    // The completion is processed; its reply is lost.
    env.faults(r#"{"lose_reply": 1.0}"#);
    let (c, v) = acp(
        &env,
        &[
            "preauth-complete",
            "--orig-query-id",
            &pre_qid,
            "--amount",
            "80.00",
            "--request-no",
            "PAACP00002",
        ],
    );
    env.faults("{}");
    assert_eq!(c, 3, "{v}");
    assert_eq!(v["result"], "UNKNOWN");
    let t = acp_txn(&env, "PAACP00002").unwrap();
    assert_eq!(
        (t["txn_type"].as_str(), t["result"].as_str()),
        (Some("03"), Some("00"))
    );
    // The journaled txnTime is the one UnionPay received (it is queried by it).
    let s = show(&env, "PAACP00002");
    assert_eq!(s["preauth"]["chan_txn_time"], t["txn_time"], "{s}");

    let events = recover_until_settled(&env, Duration::from_secs(40));
    assert!(
        events
            .iter()
            .any(|e| e["request_no"] == "PAACP00002" && e["to"] == "DONE"),
        "{events:?}"
    );
    let s = show(&env, "PAACP00002");
    assert_eq!(s["preauth"]["state"], "DONE");
    let done_qid = s["preauth"]["chan_ref"].as_str().unwrap().to_string();
    assert_eq!(done_qid, t["query_id"].as_str().unwrap());

    // Repeating the completion under its number sends nothing.
    let n = acp_txn_count(&env);
    let (c, v) = acp(
        &env,
        &[
            "preauth-complete",
            "--orig-query-id",
            &pre_qid,
            "--amount",
            "80.00",
            "--request-no",
            "PAACP00002",
        ],
    );
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["sent"], false);
    assert_eq!(acp_txn_count(&env), n);

    // Undo the completion (33), then release the pre-authorisation (32).
    let (c, v) = acp(
        &env,
        &[
            "preauth-complete-undo",
            "--orig-query-id",
            &done_qid,
            "--amount",
            "80.00",
        ],
    );
    assert_eq!(c, 0, "{v}");
    let (c, v) = acp(
        &env,
        &[
            "preauth-undo",
            "--orig-query-id",
            &pre_qid,
            "--amount",
            "100.00",
        ],
    );
    assert_eq!(c, 0, "{v}");
    // A second undo is refused by UnionPay: FAILED, exit 2.
    let (c, v) = acp(
        &env,
        &[
            "preauth-undo",
            "--orig-query-id",
            &pre_qid,
            "--amount",
            "100.00",
        ],
    );
    assert_eq!(c, 2, "{v}");
    assert_eq!(v["result"], "FAILED");
    // Bad input: nothing journaled, nothing sent.
    let long_qid = format!("{pre_qid}0");
    let n = acp_txn_count(&env);
    let rows = listed(&env, &[]).len();
    for args in [
        vec!["preauth", "--amount", "1.00", "--code", "12ab"],
        vec!["preauth-complete", "--amount", "1.00"],
        vec![
            "preauth-complete",
            "--orig-order-id",
            "PAACP00001",
            "--amount",
            "1.00",
        ],
        vec![
            "preauth-undo",
            "--orig-query-id",
            &pre_qid,
            "--amount",
            "-3",
        ],
        // origQryId is AN21: one character short or long is refused before anything is
        // journaled or signed.
        vec![
            "preauth-undo",
            "--orig-query-id",
            &pre_qid[..20],
            "--amount",
            "100.00",
        ],
        vec![
            "preauth-undo",
            "--orig-query-id",
            &long_qid,
            "--amount",
            "100.00",
        ],
    ] {
        let (c, v) = acp(&env, &args);
        assert_eq!(c, 1, "{args:?}: {v}");
    }
    assert_eq!(acp_txn_count(&env), n);
    assert_eq!(listed(&env, &[]).len(), rows);
    // The customer's code is nowhere on disk.
    env.assert_no_secret(code);
}
