//! Issue "the terminal daemon": `payterm run` on the sim board and `payterm demo`, driven through
//! the ECR API, the simulated scanner (typed through the web mirror), the simulated face module,
//! and watched through the server-sent event stream.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn post(url: &str, body: Value) -> (u16, Value) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut r = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .expect(url);
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn get(url: &str) -> Value {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut r = agent.get(url).call().expect(url);
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    unsafe { libc_kill(child.id() as i32, 15) };
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Collects the SSE stream's payment events in the background.
fn watch_events(ecr: &str) -> Arc<Mutex<Vec<Value>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let url = format!("{ecr}/v1/events");
    std::thread::spawn(move || {
        let mut r = ureq::get(&url).call().expect("event stream");
        let reader = BufReader::new(r.body_mut().as_reader());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(d) = line.strip_prefix("data:")
                && let Ok(v) = serde_json::from_str::<Value>(d.trim())
            {
                s.lock().unwrap().push(v);
            }
        }
    });
    seen
}

fn states_of(seen: &Arc<Mutex<Vec<Value>>>, order: &str) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|e| e["order_id"] == order)
        .map(|e| e["state"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn daemon_takes_paid_declined_uncertain_and_face_payments() {
    let env = Env::start();
    let ecr_port = free_port();
    let mirror_port = free_port();
    let ecr = format!("http://127.0.0.1:{ecr_port}");
    let mirror = format!("http://127.0.0.1:{mirror_port}");
    let child = env
        .cmd()
        .args([
            "run",
            "--ecr-listen",
            &format!("127.0.0.1:{ecr_port}"),
            "--mirror-listen",
            &format!("127.0.0.1:{mirror_port}"),
        ])
        .env("PAYTERM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the daemon to be ready", 20, || {
        ureq::get(&format!("{ecr}/v1/health")).call().is_ok()
    });
    let seen = watch_events(&ecr);
    std::thread::sleep(Duration::from_millis(300));

    // Paid: the cash register asks, the customer's code is read by the (simulated) scanner.
    let (s, v) = post(
        &format!("{ecr}/v1/payments"),
        json!({"order_id": "E2E-PAID", "amount": "12.00"}),
    );
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["state"], "WAITING_FOR_CODE");
    let (s, _) = post(
        &format!("{mirror}/api/code"),
        json!({"code": "134567890123450001"}),
    );
    assert_eq!(s, 202, "the mirror accepts the typed code");
    wait_until("E2E-PAID paid", 15, || {
        get(&format!("{ecr}/v1/payments/E2E-PAID"))["state"] == "PAID"
    });
    // The same order id again returns the same payment, not a second charge.
    let (s, again) = post(
        &format!("{ecr}/v1/payments"),
        json!({"order_id": "E2E-PAID", "amount": "12.00", "code": "134567890123450009"}),
    );
    assert_eq!((s, again["state"].as_str()), (200, Some("PAID")), "{again}");
    wait_until("the screen to be idle again", 15, || {
        post(
            &format!("{ecr}/v1/payments"),
            json!({"order_id": "E2E-DECL", "amount": "3.51", "code": "134567890123450002"}),
        )
        .0 == 202
    });
    wait_until("E2E-DECL declined", 15, || {
        get(&format!("{ecr}/v1/payments/E2E-DECL"))["state"] == "FAILED"
    });

    // Bad input: a JSON error with a code, and nothing changes.
    let (s, e) = post(
        &format!("{ecr}/v1/payments"),
        json!({"order_id": "E2E-BAD", "amount": "1.234"}),
    );
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("bad_amount")),
        "{e}"
    );
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    assert_eq!(
        agent
            .get(&format!("{ecr}/v1/payments/E2E-BAD"))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    // Uncertain: the gateway goes silent during the payment; the daemon parks it and settles it
    // by itself once the gateway answers again.
    env.post("/_sandbox/faults", r#"{"down": true}"#);
    wait_until("the screen to be idle again", 15, || {
        post(
            &format!("{ecr}/v1/payments"),
            json!({"order_id": "E2E-UNK", "amount": "4.00", "code": "134567890123450003"}),
        )
        .0 == 202
    });
    // Past its deadline with no answer, nothing is cancelled blind: it stays QUERYING with
    // the store-and-forward backoff, and the sale ends "uncertain".
    wait_until("E2E-UNK parked", 30, || {
        let st = get(&format!("{ecr}/v1/payments/E2E-UNK"));
        st["final"] == false
            && (st["note"]
                .as_str()
                .is_some_and(|n| n.contains("no answer past the deadline"))
                || st["state"] == "SAF_PENDING")
    });
    env.post("/_sandbox/faults", r#"{"down": false}"#);
    wait_until("E2E-UNK settled by recovery", 40, || {
        let st = get(&format!("{ecr}/v1/payments/E2E-UNK"));
        st["final"] == true
    });

    // Face: the simulated face module recognises the customer.
    wait_until("the screen to be idle again", 15, || {
        post(
            &format!("{ecr}/v1/payments"),
            json!({"order_id": "E2E-FACE", "amount": "6.00", "method": "face"}),
        )
        .0 == 202
    });
    wait_until("E2E-FACE paid", 30, || {
        get(&format!("{ecr}/v1/payments/E2E-FACE"))["state"] == "PAID"
    });

    let paid = states_of(&seen, "E2E-PAID");
    assert!(
        paid.starts_with(&["WAITING_FOR_CODE".to_string()]) && paid.contains(&"PAID".to_string()),
        "{paid:?}"
    );
    assert!(states_of(&seen, "E2E-DECL").contains(&"FAILED".to_string()));
    let unk = states_of(&seen, "E2E-UNK");
    assert!(
        unk.contains(&"QUERYING".to_string())
            && unk
                .iter()
                .any(|s| s == "REVERSED" || s == "FAILED" || s == "PAID"),
        "{unk:?}"
    );
    assert!(states_of(&seen, "E2E-FACE").contains(&"FACE".to_string()));

    let m = ureq::get(&format!("{ecr}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(m.contains("payterm_attempts{state=\"PAID\"}"), "{m}");

    let status = terminate(child);
    assert!(status.success(), "{status:?}");
    env.assert_consistent(true);
    env.assert_no_secret("134567890123450001");
}

#[test]
fn demo_takes_a_payment_through_the_web_mirror_and_stops_cleanly() {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--state"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut mirror, mut ledger) = (None, None);
    let mut line = String::new();
    while mirror.is_none() || ledger.is_none() {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the demo ended early"
        );
        if let Some(u) = line.split("Screen (web mirror):").nth(1) {
            mirror = Some(u.trim().trim_end_matches('/').to_string());
        }
        if let Some(u) = line.split("Sandbox ledger:").nth(1) {
            ledger = Some(u.trim().to_string());
        }
    }
    let (mirror, ledger) = (mirror.unwrap(), ledger.unwrap());
    for k in ["8", "dot", "8", "8", "enter"] {
        assert_eq!(post(&format!("{mirror}/api/key"), json!({"key": k})).0, 202);
    }
    assert_eq!(
        post(
            &format!("{mirror}/api/code"),
            json!({"code": "284567890123456789"})
        )
        .0,
        202
    );
    wait_until("the sandbox to record the payment", 20, || {
        get(&ledger)["orders"].as_array().is_some_and(|o| {
            o.iter()
                .any(|o| o["amount_fen"] == 888 && o["status"] == "PAID")
        })
    });
    let frame = get(&format!("{mirror}/api/frame"));
    assert!(frame["seq"].as_u64().unwrap() > 1);
    unsafe { libc_kill(child.id() as i32, 2) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the demo did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    assert!(state.path().join("journal.db").exists());
}

fn start_daemon(env: &Env, config: &std::path::Path, ecr_listen: &str) -> Child {
    Command::new(common::BIN)
        .arg("--config")
        .arg(config)
        .args([
            "run",
            "--ecr-listen",
            ecr_listen,
            "--mirror-listen",
            "127.0.0.1:0",
        ])
        .env_remove("PAYTERM_CONFIG")
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn ecr_api_needs_its_token_and_listens_on_a_unix_socket() {
    let env = Env::start();
    // TCP with a bearer token.
    std::fs::write(env.dir.path().join("ecr.token"), "s3cret-token\n").unwrap();
    let cfg = std::fs::read_to_string(&env.config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\ntoken_file = \"ecr.token\"",
    );
    let with_token = env.dir.path().join("token.toml");
    std::fs::write(&with_token, cfg).unwrap();
    let port = free_port();
    let ecr = format!("http://127.0.0.1:{port}");
    let child = start_daemon(&env, &with_token, &format!("127.0.0.1:{port}"));
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    wait_until("the daemon", 20, || {
        agent.get(&format!("{ecr}/v1/health")).call().is_ok()
    });
    let r = agent.get(&format!("{ecr}/v1/health")).call().unwrap();
    assert_eq!(r.status().as_u16(), 401, "no token, no answer");
    let r = agent
        .get(&format!("{ecr}/v1/health"))
        .header("Authorization", "Bearer wrong-token!")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let mut r = agent
        .get(&format!("{ecr}/v1/health"))
        .header("Authorization", "Bearer s3cret-token")
        .call()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
    assert!(terminate(child).success());

    // The default kind of listener: a unix socket, removed again at shutdown.
    let sock = env.dir.path().join("ecr.sock");
    let child = start_daemon(&env, &env.config, &format!("unix:{}", sock.display()));
    wait_until("the socket", 20, || sock.exists());
    use std::io::{Read, Write};
    let ask = |req: &str| {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let mut health = String::new();
    wait_until("ready", 20, || {
        health = ask("GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        health.contains("\"taking_payments\":true")
    });
    let body = r#"{"order_id":"SOCK-1","amount":"2.00","code":"134567890123459999"}"#;
    let resp = ask(&format!(
        "POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    wait_until("SOCK-1 paid", 20, || {
        ask("GET /v1/payments/SOCK-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .contains("\"state\":\"PAID\"")
    });
    assert!(terminate(child).success());
    assert!(!sock.exists(), "the socket is removed at shutdown");
}

#[test]
fn cashier_refunds_the_last_sale_on_the_keypad() {
    let env = Env::start();
    let (ecr_port, mirror_port) = (free_port(), free_port());
    let ecr = format!("http://127.0.0.1:{ecr_port}");
    let mirror = format!("http://127.0.0.1:{mirror_port}");
    let child = env
        .cmd()
        .args([
            "run",
            "--ecr-listen",
            &format!("127.0.0.1:{ecr_port}"),
            "--mirror-listen",
            &format!("127.0.0.1:{mirror_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the daemon", 20, || {
        ureq::get(&format!("{ecr}/v1/health")).call().is_ok()
    });
    let (s, _) = post(
        &format!("{ecr}/v1/payments"),
        json!({"order_id": "KP-1", "amount": "9.00", "code": "134567890123458888"}),
    );
    assert_eq!(s, 202);
    wait_until("KP-1 paid", 15, || {
        get(&format!("{ecr}/v1/payments/KP-1"))["state"] == "PAID"
    });
    // Refund → Enter (the last paid sale) → 2.50 → Enter → Enter to confirm.
    for k in ["refund", "enter", "2", "dot", "5", "0", "enter", "enter"] {
        assert_eq!(post(&format!("{mirror}/api/key"), json!({"key": k})).0, 202);
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_until("the refund", 15, || {
        get(&format!("{ecr}/v1/payments/KP-1"))["refunds"]
            .as_array()
            .is_some_and(|r| {
                r.iter()
                    .any(|r| r["amount_fen"] == 250 && r["state"] == "DONE")
            })
    });
    assert!(terminate(child).success());
    env.assert_consistent(true);
}
