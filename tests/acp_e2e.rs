//! Issue 4, UnionPay ACP end to end: the real `payterm` binary against a real `payterm sandbox`
//! whose ACP side signs with its TEST-ONLY chain and checks the merchant's signatures. Each
//! amount scenario, undo (and its refusals), partial refunds, reversal of an unknown consume,
//! reconciliation finding an injected difference, and `payterm acp verify` on UnionPay's own
//! messages. (The pre-authorisation family is tested at library level against an in-process
//! sandbox: `gateway::unionpay::gateway::tests::the_pre_authorisation_family`.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_payterm");

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config_text(url: &str, journal: &str, enc: &Path) -> String {
    let d = manifest().join("config/sandbox-acp");
    format!(
        r#"
board = "{board}"

[terminal]
id = "ACP01"
sandbox = true
device_key_file = "device.key"

[journal]
path = "{journal}"

[limits]
max_open = 1000
max_uncertain = "1000000.00"
max_open_age_s = 86400

[routes]
UNIONPAY = "acp"

[gateways.aggregator]
base_url = "{url}"
agent_id = "130000000000000000"
mch_id = "00000001"
key_file = "agg.key"

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

[gateways.acp.policy]
query_delays_ms = [200, 300]
pay_deadline_ms = 2500
reverse_not_before_ms = 0
reverse_window = {{ kind = "same_day_until", hour = 23, utc_offset_minutes = 480 }}
reverse_retry_ms = [100, 200]
reverse_tries_before_saf = 6
saf_base_ms = 500
saf_cap_ms = 4000
after_window = "refund"
review_after_ms = 86400000
not_found_final_after_ms = 3000

[recovery]
interval_ms = 500
rate_per_s = 50.0

[ecr]
listen = "127.0.0.1:0"
"#,
        board = manifest().join("board/sim.toml").display(),
        d = d.display(),
        enc = enc.display(),
    )
}

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    url: String,
    sandbox: Child,
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("agg.key"),
            "e2e-test-md5-key-00000000000000\n",
        )
        .unwrap();
        let enc = dir.path().join("enc.cer");
        std::fs::copy(manifest().join("config/sandbox-acp/sandbox_enc.cer"), &enc).unwrap();
        let boot = dir.path().join("boot.toml");
        std::fs::write(&boot, config_text("http://127.0.0.1:1", "boot.db", &enc)).unwrap();
        let mut sandbox = Command::new(BIN)
            .args(["--json", "--config"])
            .arg(&boot)
            .args(["sandbox", "--listen", "127.0.0.1:0", "--hang-ms", "1500"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(sandbox.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        let url = v["url"].as_str().unwrap().to_string();
        let config = dir.path().join("payterm.toml");
        std::fs::write(&config, config_text(&url, "journal.db", &enc)).unwrap();
        Env {
            dir,
            config,
            url,
            sandbox,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .env("PAYTERM_CONFIG", &self.config)
            .env_remove("PAYTERM_JOURNAL")
            .args(args)
            .output()
            .unwrap()
    }

    fn run_json(&self, args: &[&str]) -> (i32, Value, Output) {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run(&a);
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .find(|l| l.contains("\"result\""))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        let code = out.status.code().unwrap_or(-1);
        assert_ne!(
            code,
            101,
            "panicked: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (code, last, out)
    }

    fn pay(&self, amount: &str, n: u32) -> (i32, Value) {
        let code = format!("6225{n:015}");
        let (c, v, _) = self.run_json(&["pay", "--amount", amount, "--code", &code]);
        (c, v)
    }

    fn get(&self, path: &str) -> Value {
        let mut r = ureq::get(&format!("{}{path}", self.url)).call().unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    fn post(&self, path: &str, body: &str) -> Value {
        let mut r = ureq::post(&format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null)
    }

    fn ledger_order(&self, no: &str) -> Value {
        self.get("/_sandbox/ledger")["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["out_trade_no"] == no)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn journal(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.run(&["journal", "export"]).stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn show(&self, order: &str) -> String {
        String::from_utf8_lossy(&self.run(&["journal", "show", order]).stdout).into_owned()
    }

    /// The journal and the sandbox ledger agree on every order's net charge.
    fn assert_consistent(&self) {
        for e in self.journal() {
            let a = &e["attempt"];
            let no = a["out_trade_no"].as_str().unwrap();
            let refunded: u64 = e["refunds"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["state"] == "DONE")
                .map(|r| r["amount"].as_u64().unwrap())
                .sum();
            let net = self.ledger_order(no)["net_fen"].as_u64().unwrap_or(0);
            match a["state"].as_str().unwrap() {
                "PAID" => assert_eq!(net, a["amount"].as_u64().unwrap() - refunded, "{no}"),
                "FAILED" | "REVERSED" => assert_eq!(net, 0, "{no}"),
                s => panic!("{no} is still {s}"),
            }
        }
    }

    fn advance_sandbox_clock(&self, ms: i64) {
        self.post("/_sandbox/clock", &format!(r#"{{"advance_ms": {ms}}}"#));
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.sandbox.kill();
        let _ = self.sandbox.wait();
    }
}

/// Beijing time now and the end of the current clearing day (the next 23:00), in Unix ms.
fn now_and_clearing_end() -> (i64, i64) {
    let now = chrono::Utc::now().timestamp_millis();
    let bj = now + 8 * 3_600_000;
    let day = bj.div_euclid(86_400_000) * 86_400_000;
    let mut end = day + 23 * 3_600_000;
    if bj >= end {
        end += 86_400_000;
    }
    (now, end - 8 * 3_600_000)
}

/// Undo tests need the terminal's own window (the engine's same-calendar-day 23:00) to be open
/// for a minute; between 22:59 and midnight Beijing they check the refusal instead.
fn undo_window_open() -> bool {
    let now = chrono::Utc::now().timestamp_millis() + 8 * 3_600_000;
    let h = now.rem_euclid(86_400_000) / 60_000;
    h < 22 * 60 + 59
}

#[test]
fn every_amount_scenario_ends_as_designed() {
    let env = Env::start();
    let cases = [
        ("12.00", 0, "PAID", "PAID"),
        ("12.51", 2, "FAILED", "DECLINED"),
        ("12.52", 0, "PAID", "PAID"),
        ("12.53", 2, "REVERSED", "CLOSED"),
        ("12.54", 0, "PAID", "PAID"),
        ("12.55", 2, "REVERSED", "CLOSED"),
        ("12.56", 0, "PAID", "PAID"),
        ("3.57", 0, "PAID", "PAID"),
        ("4.57", 0, "PAID", "PAID"),
        ("5.57", 0, "PAID", "PAID"),
        ("12.58", 0, "PAID", "PAID"),
    ];
    for (i, (amount, exit, state, ledger)) in cases.iter().enumerate() {
        let (c, v) = env.pay(amount, i as u32);
        assert_eq!(
            (c, v["result"].as_str()),
            (*exit, Some(*state)),
            "{amount}: {v}"
        );
        let no = v["out_trade_no"].as_str().unwrap();
        assert_eq!(env.ledger_order(no)["status"], *ledger, "{amount}");
        let h = env.show(v["order"].as_str().unwrap());
        match *amount {
            "12.56" => assert!(h.contains("step signature"), "{h}"),
            "12.55" => {
                assert!(h.contains("34"), "queried as not found: {h}");
                assert!(h.contains("reversal"), "reversed, not undone: {h}");
                assert_eq!(env.ledger_order(no)["never_created"], true);
            }
            "12.53" => assert!(h.contains("reversal") && h.contains("05"), "{h}"),
            "12.51" => assert!(h.contains("64"), "{h}"),
            _ => {}
        }
    }
    env.assert_consistent();
    // The payment code is not stored anywhere.
    for e in std::fs::read_dir(env.dir.path()).unwrap().flatten() {
        let b = std::fs::read(e.path()).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&b).contains("6225000000000000000"));
    }
}

#[test]
fn undo_retried_then_done_refused_after_23_and_refused_after_a_refund() {
    let env = Env::start();
    // 58: the undo asks to be retried twice, then the money goes back.
    let (c, v) = env.pay("7.58", 1);
    assert_eq!(c, 0, "{v}");
    let order = v["order"].as_str().unwrap().to_string();
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    let (c, r, out) = env.run_json(&["cancel", &order]);
    if undo_window_open() {
        assert_eq!(c, 2, "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            (r["result"].as_str(), r["reverse_action"].as_str()),
            (Some("REVERSED"), Some("refund"))
        );
        let l = env.ledger_order(&no);
        assert_eq!(l["status"], "REVOKED");
        assert_eq!(l["cancel_tries"], 3);
        assert!(env.show(&order).contains("undo"), "{}", env.show(&order));
    } else {
        assert_ne!(c, 0);
    }

    // After a refund: the terminal refuses the undo before sending anything.
    let (_, v) = env.pay("10.00", 2);
    let order = v["order"].as_str().unwrap().to_string();
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    let (c, r, _) = env.run_json(&["refund", &order, "--amount", "1.00"]);
    assert_eq!((c, r["result"].as_str()), (0, Some("DONE")), "{r}");
    let out = env.run(&["cancel", &order]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refunds"),
        "{out:?}"
    );
    let l = env.ledger_order(&no);
    assert_eq!(
        (l["status"].as_str(), l["net_fen"].as_u64()),
        (Some("PAID"), Some(900))
    );

    // After 23:00 on UnionPay's (the sandbox's) clock, though not yet on ours: UnionPay refuses
    // the undo (39); the engine then refunds in full instead.
    let (_, v) = env.pay("8.00", 3);
    let order = v["order"].as_str().unwrap().to_string();
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    let (now, end) = now_and_clearing_end();
    env.advance_sandbox_clock(end - now + 60_000);
    let (c, r, _) = env.run_json(&["cancel", &order]);
    if undo_window_open() {
        assert_eq!(c, 2, "{r}");
        assert_eq!(r["reverse_action"], "refund");
        let h = env.show(&order);
        assert!(h.contains("respCode 39"), "{h}");
        let l = env.ledger_order(&no);
        assert_eq!(l["status"], "PAID", "not undone: {l}");
        assert_eq!(l["refunded_fen"], 800, "refunded in full instead: {l}");
    }
    env.assert_consistent();
}

#[test]
fn partial_refunds_never_above_what_was_paid() {
    let env = Env::start();
    let (c, v) = env.pay("10.00", 4);
    assert_eq!(c, 0);
    let order = v["order"].as_str().unwrap().to_string();
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let (c, r, _) = env.run_json(&["refund", &order, "--amount", "3.00"]);
        assert_eq!((c, r["result"].as_str()), (0, Some("DONE")), "{r}");
    }
    let before = env.ledger_order(&no)["refunds"].as_array().unwrap().len();
    let out = env.run(&["refund", &order, "--amount", "4.01"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        env.ledger_order(&no)["refunds"].as_array().unwrap().len(),
        before,
        "refused locally: nothing sent"
    );
    // A refund id ACP cannot take as an orderId (8 to 40 letters or digits) is refused before
    // anything is journaled or sent: exit 1, and no such refund exists afterwards.
    for bad in ["ACPR123", "ACP_REFUND_9"] {
        let out = env.run(&["refund", &order, "--amount", "1.00", "--refund-id", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("8 to 40"), "{bad}: {err}");
        let q = env.run(&["refund-query", bad]);
        assert_eq!(q.status.code(), Some(1), "{bad}: journaled anyway: {q:?}");
    }
    assert_eq!(
        env.ledger_order(&no)["refunds"].as_array().unwrap().len(),
        before
    );
    let (c, r, _) = env.run_json(&[
        "refund",
        &order,
        "--amount",
        "4.00",
        "--refund-id",
        "MYACPREFUND3",
    ]);
    assert_eq!(c, 0, "{r}");
    let (c, r, _) = env.run_json(&["refund-query", "MYACPREFUND3"]);
    assert_eq!((c, r["result"].as_str()), (0, Some("DONE")), "{r}");
    assert_eq!(env.ledger_order(&no)["net_fen"], 0);
    env.assert_consistent();
}

#[test]
fn reconciliation_finds_an_injected_difference() {
    let env = Env::start();
    let (_, a) = env.pay("20.00", 5);
    let (_, b) = env.pay("30.00", 6);
    let (_, _f) = env.pay("1.51", 7);
    let order_b = b["order"].as_str().unwrap();
    let (c, _, _) = env.run_json(&["refund", order_b, "--amount", "5.00"]);
    assert_eq!(c, 0);
    let journal = env.journal();
    let tt = journal[0]["attempt"]["chan_txn_time"]
        .as_str()
        .unwrap()
        .to_string();
    let (h, m) = (&tt[8..10], &tt[10..12]);
    let mut date = chrono::NaiveDate::parse_from_str(&tt[..8], "%Y%m%d").unwrap();
    if h >= "23" {
        date = date.succ_opt().unwrap();
    }
    let _ = m;
    let date = date.format("%Y-%m-%d").to_string();
    let out = env.run(&["reconcile", &date]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no differences"), "{text}");

    let a_no = a["out_trade_no"].as_str().unwrap();
    env.post(
        "/_sandbox/acp/recon-diff",
        &format!(r#"{{"order_id": "{a_no}", "amount_fen": 1999}}"#),
    );
    env.post(
        "/_sandbox/acp/recon-diff",
        r#"{"order_id": "NOTOURS000000001", "extra": true, "amount_fen": 700}"#,
    );
    let out = env.run(&["reconcile", &date]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "amount differs: consume {a_no}: journal 20.00 yuan, file 19.99 yuan"
        )),
        "{text}"
    );
    assert!(
        text.contains("missing in the journal: consume NOTOURS000000001"),
        "{text}"
    );
    assert!(text.contains("2 difference(s)"), "{text}");
    // A bad date is bad input.
    assert_eq!(env.run(&["reconcile", "yesterday"]).status.code(), Some(1));
}

#[test]
fn acp_verify_real_unionpay_messages_and_a_one_byte_change() {
    let vectors = manifest().join("tests/vectors");
    let chain = vectors.join("unionpay-certs/test-2021");
    for m in [
        "acp_response_query_00_00.raw.txt",
        "acp_response_cancel_31_00.raw.txt",
        "acp_response_refund_04_00.raw.txt",
        "acp_notify_consume_01_01.raw.txt",
    ] {
        let file = vectors.join("unionpay-messages").join(m);
        let out = Command::new(BIN)
            .args(["acp", "verify"])
            .arg(&file)
            .arg("--test-chain")
            .arg(&chain)
            .args(["--at", "message"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{m}: {text}");
        assert!(
            text.contains("PASSED") && text.contains("[  ok  ] chain"),
            "{text}"
        );
        // One byte more in respMsg: the report names the failing step.
        let changed = std::fs::read_to_string(&file)
            .unwrap()
            .replacen("respMsg=", "respMsg=X", 1);
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), changed).unwrap();
        let out = Command::new(BIN)
            .args(["acp", "verify"])
            .arg(tmp.path())
            .arg("--test-chain")
            .arg(&chain)
            .args(["--at", "message"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{m}: {text}");
        assert!(
            text.contains("FAILED at signature: digest mismatch"),
            "{text}"
        );
    }
}

#[test]
fn a_lagging_order_store_is_not_proof_of_no_consume() {
    // Issue "Money is never mislabelled": UnionPay's query answers 34 while its order store
    // lags behind the consume; the attempt keeps asking and ends PAID, never closed.
    let env = Env::start();
    env.post("/_sandbox/faults", r#"{"lag_ms": 1200}"#);
    let (c, v) = env.pay("3.57", 7);
    env.post("/_sandbox/faults", "{}");
    assert_eq!((c, v["result"].as_str()), (0, Some("PAID")), "{v}");
    let h = env.show(v["order"].as_str().unwrap());
    assert!(h.contains("34"), "the query saw the lag first: {h}");
    env.assert_consistent();
}
