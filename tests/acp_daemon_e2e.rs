//! UnionPay ACP through the daemon and the command line, against a real `payterm sandbox`:
//!
//! * back notifications: the daemon's `back_url` is its own `POST /notify/acp` (a loopback port
//!   picked before the configuration is written; the ECR API wants a token, the notify route
//!   none). The sandbox's signed notification settles a payment whose synchronous outcome is
//!   unknown (reply lost, or 03) before any status query; repeats are answered the same; forged,
//!   unknown-order and wrong-amount notifications never make anything PAID. HTTP 200 means
//!   "taken" (UnionPay stops resending), anything else is sent again.
//! * signMethod 11 (SHA-256) and 12 (SM3) with the merchant's secure key: requests the sandbox
//!   verifies with the key, replies and notifications it signs with the key, and a reply made with
//!   another key that the terminal does not believe.
//!
//! The first status query comes 5 s after the pay reply (the sandbox resends a notification after
//! 1 s and 3 s) and the recovery loop's timer is longer than the test, so that "settled before
//! any query" shows in the sandbox's query count.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use payterm::sandbox::acp::{AcpSandboxConfig, ReplySign, SANDBOX_SECURE_KEY, notification_form};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_payterm");
const TOKEN: &str = "acp-daemon-e2e-token-0123456789";

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// How the terminal signs its ACP requests.
#[derive(Clone, Copy)]
enum Sign {
    Cert,
    /// signMethod 11 or 12, with the secure key in `secure.key`.
    SecureKey(&'static str),
}

struct Opts {
    sign: Sign,
    /// The first status query's delay (long: a notification must settle the payment first).
    first_query_ms: u64,
}

fn config_text(url: &str, journal: &str, enc: &Path, ecr_port: u16, o: &Opts) -> String {
    let d = manifest().join("config/sandbox-acp");
    let sign = match o.sign {
        Sign::Cert => format!(
            "sign_pfx = \"{d}/acp_test_sign.pfx\"\nsign_password_file = \"{d}/sign.pass\"\n",
            d = d.display()
        ),
        // No merchant certificate at all: the secure key signs everything.
        Sign::SecureKey(m) => format!("sign_method = \"{m}\"\nsecure_key_file = \"secure.key\"\n"),
    };
    format!(
        r#"
board = "{board}"

[terminal]
id = "ACPD1"
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
term_id = "ACPTEST2"
encrypt_cert = "{enc}"
middle_cert = "{d}/sandbox_middle.cer"
root_cert = "{d}/sandbox_root.cer"
owner = "production"
back_url = "http://127.0.0.1:{ecr_port}/notify/acp"
{sign}connect_timeout_ms = 300
timeout_ms = 800
confirm_delays_ms = [50, 100, 200]
lost_after_ms = 1000

[gateways.acp.policy]
query_delays_ms = [{first_query}, 300]
pay_deadline_ms = 60000
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
interval_ms = 60000
rate_per_s = 50.0

[ecr]
listen = "127.0.0.1:{ecr_port}"
token_file = "ecr.token"
"#,
        board = manifest().join("board/sim.toml").display(),
        d = d.display(),
        enc = enc.display(),
        first_query = o.first_query_ms,
    )
}

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    url: String,
    ecr: String,
    sandbox: Child,
    daemon: Option<Child>,
}

impl Env {
    fn start(o: Opts) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("agg.key"), "e2e-test-md5-key-00000000000000\n").unwrap();
        std::fs::write(p.join("ecr.token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(p.join("secure.key"), format!("{SANDBOX_SECURE_KEY}\n")).unwrap();
        let enc = p.join("enc.cer");
        std::fs::copy(manifest().join("config/sandbox-acp/sandbox_enc.cer"), &enc).unwrap();
        let port = free_port();
        let boot = p.join("boot.toml");
        std::fs::write(
            &boot,
            config_text("http://127.0.0.1:1", "boot.db", &enc, port, &o),
        )
        .unwrap();
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
        let config = p.join("payterm.toml");
        std::fs::write(&config, config_text(&url, "journal.db", &enc, port, &o)).unwrap();
        Env {
            dir,
            config,
            url,
            ecr: format!("http://127.0.0.1:{port}"),
            sandbox,
            daemon: None,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("PAYTERM_CONFIG", &self.config)
            .env_remove("PAYTERM_JOURNAL")
            .env_remove("PAYTERM_FAILPOINT")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn start_daemon(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let port = self.ecr.rsplit(':').next().unwrap().to_string();
        let child = self
            .cmd()
            .env("PAYTERM_LOG", "info")
            .args([
                "run",
                "--ecr-listen",
                &format!("127.0.0.1:{port}"),
                "--mirror-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let t = Instant::now();
        loop {
            if let Ok((200, _)) = self.ecr_get("/v1/health") {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the daemon did not become ready: {}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes the first status query's delay in the configuration.
    fn edit_first_query(&self, from: u64, to: u64) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let (a, b) = (
            format!("query_delays_ms = [{from},"),
            format!("query_delays_ms = [{to},"),
        );
        assert!(text.contains(&a));
        std::fs::write(&self.config, text.replace(&a, &b)).unwrap();
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        )
    }

    fn ecr_get(&self, path: &str) -> Result<(u16, Value), String> {
        let mut r = Self::agent()
            .get(&format!("{}{path}", self.ecr))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .map_err(|e| e.to_string())?;
        let s = r.status().as_u16();
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    fn ecr_post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut r = Self::agent()
            .post(&format!("{}{path}", self.ecr))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        let s = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Posts a notification body to the daemon as UnionPay does: (HTTP status, body).
    fn notify(&self, form: &str) -> (u16, String) {
        let mut r = Self::agent()
            .post(&format!("{}/notify/acp", self.ecr))
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .send(form)
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn sandbox_get(&self, path: &str) -> Value {
        let mut r = ureq::get(&format!("{}{path}", self.url)).call().unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    fn ledger_order(&self, no: &str) -> Value {
        self.sandbox_get("/_sandbox/ledger")["orders"]
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
        let out = self.run(&["journal", "show", order]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}\n{}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn payment(&self, order: &str) -> Value {
        self.ecr_get(&format!("/v1/payments/{order}"))
            .map(|(_, v)| v)
            .unwrap_or(Value::Null)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = self.sandbox.kill();
        let _ = self.sandbox.wait();
    }
}

/// A form body's fields, in order.
fn form_fields(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn form_body(fields: &[(String, String)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// `fields` with `key` set to `value` (the signature kept as it was).
fn with_field(fields: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    assert!(fields.iter().any(|(k, _)| k == key), "no {key}");
    fields
        .iter()
        .map(|(k, v)| {
            if k == key {
                (k.clone(), value.to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

impl Env {
    /// Starts a sale through the ECR API with a UnionPay code (routed to ACP).
    fn sale(&self, order: &str, amount: &str, n: u32) -> String {
        let t = Instant::now();
        loop {
            let (s, v) = self.ecr_post(
                "/v1/payments",
                json!({"order_id": order, "amount": amount, "code": format!("6225{n:015}")}),
            );
            if s == 202 {
                break;
            }
            // The previous sale is still on the screen.
            assert!(
                s == 409 && t.elapsed() < Duration::from_secs(15),
                "{order}: {s} {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut no = String::new();
        self.wait_for("the attempt to be journaled", 10, || {
            no = self.payment(order)["out_trade_no"]
                .as_str()
                .unwrap_or("")
                .to_string();
            !no.is_empty()
        });
        no
    }

    fn entry(&self, no: &str) -> Value {
        self.journal()
            .into_iter()
            .find(|e| e["attempt"]["out_trade_no"] == no)
            .unwrap_or(Value::Null)
    }

    /// What the sandbox posted for `no`: (form body, the HTTP status of each try).
    fn sent_notification(&self, no: &str) -> Option<(String, Vec<u64>)> {
        let v = self.sandbox_get("/_sandbox/acp/txns");
        v["notifications"].as_array()?.iter().find_map(|n| {
            (n["order_id"] == no).then(|| {
                (
                    n["body"].as_str().unwrap_or("").to_string(),
                    n["statuses"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default(),
                )
            })
        })
    }
}

/// The sandbox's signed back notifications reach the daemon's own `/notify/acp` and settle
/// payments whose synchronous outcome is unknown before any query. Repeats and forgeries change
/// nothing, nor does a genuine one for an order the terminal never made; one for another amount
/// is not believed (never PAID; MANUAL_REVIEW with an alarm, as RELIABILITY.md §5 asks).
#[test]
fn back_notifications_settle_unknown_payments_before_any_query() {
    let mut env = Env::start(Opts {
        sign: Sign::Cert,
        first_query_ms: 5_000,
    });
    env.start_daemon();

    // .54: the reply is lost, the money moved. .57: the reply says 03 (status unknown).
    let mut paid = Vec::new();
    for (order, amount, n) in [("N54", "12.54", 1), ("N57", "12.57", 2)] {
        let started = Instant::now();
        let no = env.sale(order, amount, n);
        env.wait_for("PAID by the notification", 10, || {
            env.payment(order)["state"] == "PAID"
        });
        let took = started.elapsed();
        assert!(took < Duration::from_millis(5_000), "{order}: {took:?}");
        // Nobody asked UnionPay: the notification alone settled it.
        assert_eq!(env.ledger_order(&no)["queries"], 0, "{order}");
        let show = env.show(order);
        assert!(show.contains("signed notification"), "{show}");
        assert!(show.contains("state PAID"), "{show}");
        // HTTP 200 only once it was taken: the first .54 notice came while the pay request
        // was still waiting for its (lost) reply, was refused unrecorded, and sent again.
        let (_, statuses) = env.sent_notification(&no).expect("notified");
        assert_eq!(statuses.last(), Some(&200), "{order}: {statuses:?}");
        if order == "N54" {
            assert_eq!(statuses[0], 400, "{statuses:?}");
        }
        paid.push(no);
    }
    // The ECR API itself still wants its token (the notify route is the exception).
    let r = Env::agent()
        .get(&format!("{}/v1/payments/N54", env.ecr))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let before = env.journal();
    let (no54, no57) = (&paid[0], &paid[1]);
    let (body, _) = env.sent_notification(no54).unwrap();
    let fields = form_fields(&body);

    // A repeat is answered as the first was, and changes nothing.
    for _ in 0..2 {
        assert_eq!(env.notify(&body), (200, "success".to_string()));
    }
    // Tampered (one field changed, the signature kept): refused, so UnionPay would send it again.
    for (key, value) in [
        ("txnAmt", "1"),
        ("orderId", no57.as_str()),
        ("respCode", "01"),
    ] {
        let forged = form_body(&with_field(&fields, key, value));
        assert_eq!(
            env.notify(&forged),
            (400, "fail".to_string()),
            "{key} changed"
        );
    }
    // Garbage, and a notification signed with nothing.
    assert_eq!(env.notify("hello").0, 400);
    let unsigned: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "signature")
        .cloned()
        .collect();
    assert_eq!(env.notify(&form_body(&unsigned)).0, 400);
    // Properly signed by UnionPay (the sandbox's TEST-ONLY key), for an order the terminal
    // never made: refused.
    let sandbox = AcpSandboxConfig::builtin().unwrap();
    let strip = |f: Vec<(String, String)>| -> Vec<(String, String)> {
        f.into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "signature" | "signMethod" | "signPubKeyCert"))
            .collect()
    };
    let unknown = notification_form(
        &sandbox,
        strip(with_field(&fields, "orderId", "ACPD1NOTOURS0001")),
        ReplySign::Cert,
    )
    .unwrap();
    assert_eq!(env.notify(&unknown), (400, "fail".to_string()));
    assert_eq!(env.journal(), before, "nothing changed in the journal");
    assert_eq!(env.payment("N54")["state"], "PAID");

    // Signed, ours, but for another amount, while the order is still being queried (.53: the
    // customer never confirms): not believed — never PAID; a person must look (RELIABILITY.md
    // §5 rule 3, MANUAL_REVIEW with an alarm). UnionPay's side is untouched.
    let no53 = env.sale("N53", "12.53", 3);
    env.wait_for("N53 querying", 5, || {
        env.payment("N53")["state"] == "QUERYING"
    });
    let f = strip(with_field(&fields, "orderId", &no53));
    let wrong_amount = notification_form(&sandbox, f, ReplySign::Cert).unwrap();
    assert_eq!(env.notify(&wrong_amount).0, 200);
    let e = env.entry(&no53);
    assert_eq!(e["attempt"]["state"], "MANUAL_REVIEW", "{e}");
    let history = e["history"].as_array().unwrap();
    assert!(history.iter().all(|h| h["to_state"] != "PAID"), "{e}");
    assert_eq!(history.last().unwrap()["alarm"], true, "{e}");
    assert_eq!(env.ledger_order(&no53)["status"], "PAYING");
    assert_eq!(env.ledger_order(&no53)["net_fen"], 0);
    // The daemon answers the same repeat the same way, and nothing moves again.
    let after = env.entry(&no53);
    assert_eq!(env.notify(&wrong_amount).0, 200);
    assert_eq!(env.entry(&no53), after);
    assert_eq!(
        env.journal().len(),
        before.len() + 1,
        "no attempt was made up by a notification"
    );
    // Cancelling N57 sends an undo (31) under its own order number; UnionPay notifies that too.
    // It is no payment result: acknowledged with 200 so UnionPay stops resending, and it
    // changes nothing beyond what the undo's own reply recorded.
    let (s, v) = env.ecr_post("/v1/payments/N57/cancel", serde_json::json!({}));
    assert!(s < 300, "{s} {v}");
    env.wait_for("N57 reversed", 10, || {
        env.payment("N57")["state"] == "REVERSED"
    });
    let undo_notice = || -> Option<Vec<u64>> {
        let v = env.sandbox_get("/_sandbox/acp/txns");
        v["notifications"].as_array()?.iter().find_map(|n| {
            let body = n["body"].as_str().unwrap_or("");
            (body.contains("txnType=31") && n["order_id"] != no57.as_str()).then(|| {
                n["statuses"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default()
            })
        })
    };
    env.wait_for("the undo's notification answered", 10, || {
        undo_notice().is_some_and(|st| !st.is_empty())
    });
    assert_eq!(undo_notice().unwrap(), vec![200], "answered once, with 200");
    assert_eq!(env.payment("N57")["state"], "REVERSED");
    // No full payment code in the journal or the daemon's log.
    for e in std::fs::read_dir(env.dir.path()).unwrap().flatten() {
        let b = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned();
        for n in 1..=3u32 {
            assert!(!b.contains(&format!("6225{n:015}")), "{:?}", e.path());
        }
    }
}

/// signMethod 11 (SHA-256) and 12 (SM3) with the secure key and no merchant certificate
/// configured (no `sign_pfx`: `config check` passes), end to end through the `payterm` command
/// line: requests verified by the sandbox with the key, its replies (signed the
/// same way) believed by the terminal; a reply made with another key is not believed (the
/// attempt stays unknown and a query settles it). Then the daemon takes a secure-key-signed back
/// notification.
fn secure_key_end_to_end(method: &'static str) {
    let mut env = Env::start(Opts {
        sign: Sign::SecureKey(method),
        first_query_ms: 200,
    });
    let out = env.run(&["config", "check"]);
    assert!(out.status.success(), "{out:?}");

    let pay = |amount: &str, n: u32| -> Value {
        let out = env.run(&[
            "--json",
            "pay",
            "--amount",
            amount,
            "--code",
            &format!("6225{n:015}"),
        ]);
        let v = String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .find(|l| l.contains("\"result\""))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        assert_eq!(
            (out.status.code(), v["result"].as_str()),
            (Some(0), Some("PAID")),
            "{amount}: {v} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        v
    };
    // Paid, then refunded in part.
    let v = pay("10.00", 1);
    let order = v["order"].as_str().unwrap().to_string();
    let no = v["out_trade_no"].as_str().unwrap().to_string();
    let out = env.run(&["--json", "refund", &order, "--amount", "1.00"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("\"DONE\""), "{text}");
    let l = env.ledger_order(&no);
    assert_eq!(
        (l["status"].as_str(), l["net_fen"].as_u64()),
        (Some("PAID"), Some(900))
    );

    // .56: the reply is signed with another secure key. Not believed: unknown, then a query.
    let v = pay("12.56", 2);
    let bad = v["order"].as_str().unwrap().to_string();
    let show = env.show(&bad);
    assert!(
        show.contains("step signature") && show.contains("secure-key hash does not match"),
        "{show}"
    );
    assert!(show.contains("[query] paid"), "{show}");

    // Every request the sandbox took (consumes, queries, the refund and its confirmation) was
    // signed with this method, and so were its answers (the terminal believed them).
    let seen = env.sandbox_get("/_sandbox/acp/txns")["verified"].clone();
    let seen = seen.as_array().unwrap();
    let types: std::collections::BTreeSet<&str> =
        seen.iter().filter_map(|r| r["txn_type"].as_str()).collect();
    assert_eq!(types, ["00", "01", "04"].into_iter().collect(), "{seen:?}");
    assert!(seen.iter().all(|r| r["sign_method"] == method), "{seen:?}");

    // Through the daemon: the back notification of a lost reply, signed with the key, settles
    // the payment before any query.
    env.edit_first_query(200, 5_000);
    env.start_daemon();
    let no = env.sale("K54", "12.54", 3);
    env.wait_for("K54 paid", 10, || env.payment("K54")["state"] == "PAID");
    assert_eq!(env.ledger_order(&no)["queries"], 0);
    let (body, _) = env.sent_notification(&no).unwrap();
    assert!(body.contains(&format!("signMethod={method}")), "{body}");
    assert!(env.show("K54").contains("signed notification"));
}

#[test]
fn sign_method_11_sha256_with_the_secure_key() {
    secure_key_end_to_end("11");
}

#[test]
fn sign_method_12_sm3_with_the_secure_key() {
    secure_key_end_to_end("12");
}
