//! Issue "the terminal in operation: it tells the cashier the truth, and it never wedges":
//! `payterm run` against the sandbox. Online means the gateway answers signed requests (a
//! sandbox that accepts connections and never answers is offline); the daemon is ready within
//! 2 s whatever the journal holds and the network does; a sale settled by another process
//! frees the counter without waiting for the daemon's own engine.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, Env, code, ecr_agent, ecr_call, free_port};
use serde_json::{Value, json};

fn health(d: &Daemon) -> Value {
    let agent = ecr_agent(Duration::from_secs(5));
    ecr_call(&agent, &format!("{}/v1/health", d.ecr), None)
        .map(|(_, v)| v)
        .unwrap_or(Value::Null)
}

fn payment(d: &Daemon, order: &str) -> Value {
    let agent = ecr_agent(Duration::from_secs(5));
    match ecr_call(&agent, &format!("{}/v1/payments/{order}", d.ecr), None) {
        Ok((200, v)) => v,
        _ => Value::Null,
    }
}

fn start_sale(d: &Daemon, body: Value) -> (u16, Value) {
    let agent = ecr_agent(Duration::from_secs(10));
    ecr_call(&agent, &format!("{}/v1/payments", d.ecr), Some(&body)).expect("the daemon answers")
}

/// Collects the daemon's server-sent payment events in the background.
fn watch_events(d: &Daemon) -> Arc<Mutex<Vec<Value>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let url = format!("{}/v1/events", d.ecr);
    std::thread::spawn(move || {
        let Ok(mut r) = ureq::get(&url).call() else {
            return;
        };
        let reader = BufReader::new(r.body_mut().as_reader());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(v) = serde_json::from_str::<Value>(data.trim())
            {
                s.lock().unwrap().push(v);
            }
        }
    });
    seen
}

/// Leaves `n` attempts in PAY_INTENT, as a crash right after the intent's commit does.
fn unsettled_attempts(env: &Env, n: u32, salt: u32) {
    for k in 0..n {
        let (_, _, out) = env.run_env(
            &["pay", "--amount", "3.00", "--code", &code(salt + k)],
            &[("PAYTERM_FAILPOINT", "C1")],
        );
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn terminate(d: &mut Daemon) -> Duration {
    let t = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(45))
        .expect("the daemon exits within 45 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    t.elapsed()
}

#[test]
fn online_means_the_gateway_answers_not_that_it_accepts_connections() {
    let env = Env::start();
    let mut d = env.spawn_daemon(free_port());
    assert!(d.wait_ready(Duration::from_secs(20)), "not ready");
    env.wait_for("a first answered probe", Duration::from_secs(15), || {
        let h = health(&d);
        h["online"] == true
            && h["gateways"]["aggregator"]["online"] == true
            && h["gateways"]["aggregator"]["last_latency_ms"].is_i64()
    });

    // The sandbox now accepts every connection and answers nothing.
    env.faults(r#"{"down": true}"#);
    let t = Instant::now();
    env.wait_for("/v1/health to say offline", Duration::from_secs(20), || {
        let h = health(&d);
        h["online"] == false && h["gateways"]["aggregator"]["online"] == false
    });
    let to_offline = t.elapsed();

    env.faults("{}");
    let t = Instant::now();
    env.wait_for("/v1/health to say online", Duration::from_secs(20), || {
        health(&d)["online"] == true
    });
    let to_online = t.elapsed();
    eprintln!("offline after {to_offline:?}, online again after {to_online:?}");

    let agent = ecr_agent(Duration::from_secs(5));
    let mut r = agent.get(&format!("{}/metrics", d.ecr)).call().unwrap();
    let m = r.body_mut().read_to_string().unwrap();
    assert!(m.contains("payterm_online 1"), "{m}");
    assert!(
        m.contains("payterm_gateway_latency_ms{gateway=\"aggregator\"}"),
        "{m}"
    );
    terminate(&mut d);
}

#[test]
fn ready_within_two_seconds_with_twenty_unsettled_and_a_silent_gateway() {
    // A gateway that holds requests longer than the production timeouts (connect 5 s, 15 s).
    let env = Env::start_with_hang(20_000);
    unsettled_attempts(&env, 20, 500);
    env.edit_config("connect_timeout_ms = 300", "connect_timeout_ms = 5000");
    env.edit_config("timeout_ms = 2000", "timeout_ms = 15000");
    env.faults(r#"{"down": true}"#);

    let t = Instant::now();
    let mut d = env.spawn_daemon(free_port());
    assert!(d.wait_ready(Duration::from_secs(30)), "not ready");
    let ready = t.elapsed();
    eprintln!("READY with 20 unsettled attempts and a silent gateway after {ready:?}");
    assert!(ready <= Duration::from_secs(2), "ready after {ready:?}");

    let (s, v) = start_sale(
        &d,
        json!({"order_id": "READY-1", "amount": "4.00", "code": code(600)}),
    );
    assert_eq!(s, 202, "{v}");
    // The gateway comes back: the sale ends (paid, or fenced since it never reached the
    // gateway), and recovery settles the twenty.
    env.faults("{}");
    env.wait_for("the sale to end", Duration::from_secs(120), || {
        payment(&d, "READY-1")["final"] == true
    });
    eprintln!(
        "READY-1 ended {} after {:?}",
        payment(&d, "READY-1")["state"],
        t.elapsed()
    );
    let took = terminate(&mut d);
    eprintln!("SIGTERM: exited in {took:?}");
    env.assert_integrity();
    env.assert_consistent(false);
}

#[test]
fn a_sale_settled_by_another_process_frees_the_counter() {
    let env = Env::start();
    // The daemon's engine sleeps 30 s before its next query: only the journal can tell it.
    env.edit_config("query_delays_ms = [200]", "query_delays_ms = [30000]");
    env.edit_config("pay_deadline_ms = 1200", "pay_deadline_ms = 60000");
    // (This sale is paid, never cancelled: the sandbox's own cancel window does not matter.)
    env.edit_config("ms = 7000 }", "ms = 120000 }");
    let mut d = env.spawn_daemon(free_port());
    assert!(
        d.wait_ready(Duration::from_secs(20)),
        "not ready: {}",
        std::fs::read_to_string(env.dir.path().join("daemon-0.log")).unwrap_or_default()
    );
    let seen = watch_events(&d);
    std::thread::sleep(Duration::from_millis(300));
    // Amount ending in 52: the customer enters a password; paid on the second query.
    let (s, v) = start_sale(
        &d,
        json!({"order_id": "WEDGE-1", "amount": "7.52", "code": code(700)}),
    );
    assert_eq!(s, 202, "{v}");
    env.wait_for("the sale to be querying", Duration::from_secs(15), || {
        payment(&d, "WEDGE-1")["state"] == "QUERYING"
    });
    let busy = start_sale(
        &d,
        json!({"order_id": "WEDGE-2", "amount": "1.00", "code": code(701)}),
    );
    assert_eq!(
        busy.0, 409,
        "the counter is busy while the sale runs: {}",
        busy.1
    );

    // Another process settles it: each `payterm recover` asks once (the next query is further
    // away than it waits), and the second query finds it paid.
    let t = Instant::now();
    for _ in 0..5 {
        let (c, v, out) = env.run_env(&["recover", "--max-wait-ms", "20000"], &[]);
        assert!(
            c == 0 || c == 3,
            "{c} {v} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if env.journal_entry(|a| a["order_id"] == "WEDGE-1").unwrap()["attempt"]["state"] == "PAID"
        {
            break;
        }
    }
    let settled = t.elapsed();
    assert_eq!(payment(&d, "WEDGE-1")["state"], "PAID");

    let t = Instant::now();
    env.wait_for(
        "the event stream to report PAID",
        Duration::from_secs(10),
        || {
            seen.lock()
                .unwrap()
                .iter()
                .any(|e| e["order_id"] == "WEDGE-1" && e["state"] == "PAID")
        },
    );
    env.wait_for(
        "the counter to take a new sale",
        Duration::from_secs(15),
        || {
            start_sale(
                &d,
                json!({"order_id": "WEDGE-3", "amount": "1.00", "code": code(702)}),
            )
            .0 == 202
        },
    );
    let freed = t.elapsed();
    eprintln!("recover settled it in {settled:?}; the counter was free {freed:?} later");
    // The outcome screen is shown for 6 s, then the new sale; well before the engine's 30 s.
    assert!(freed < Duration::from_secs(10), "{freed:?}");
    env.wait_for("WEDGE-3 paid", Duration::from_secs(15), || {
        payment(&d, "WEDGE-3")["state"] == "PAID"
    });
    terminate(&mut d);
    env.assert_consistent(true);
}

#[test]
fn a_sale_that_ended_before_any_attempt_is_answered_after_a_restart() {
    let env = Env::start();
    let port = free_port();
    let mut d = env.spawn_daemon(port);
    assert!(d.wait_ready(Duration::from_secs(20)), "not ready");
    let (s, v) = start_sale(&d, json!({"order_id": "GONE-1", "amount": "5.00"}));
    assert_eq!(
        (s, v["state"].as_str()),
        (202, Some("WAITING_FOR_CODE")),
        "{v}"
    );
    let (s, v) = start_sale_at(&d, "/v1/payments/GONE-1/cancel");
    assert_eq!((s, v["state"].as_str()), (200, Some("ABANDONED")), "{v}");
    env.wait_for("GONE-1 to be answered", Duration::from_secs(10), || {
        let p = payment(&d, "GONE-1");
        p["state"] == "ABANDONED" && p["final"] == true
    });
    terminate(&mut d);

    let mut d = env.spawn_daemon(port);
    assert!(d.wait_ready(Duration::from_secs(20)), "not ready again");
    let p = payment(&d, "GONE-1");
    assert_eq!(
        (p["state"].as_str(), p["amount_fen"].as_u64()),
        (Some("ABANDONED"), Some(500)),
        "{p}"
    );
    // Nothing was ever sent for it: the register may start the same order again.
    let (s, v) = start_sale(
        &d,
        json!({"order_id": "GONE-1", "amount": "5.00", "code": code(900)}),
    );
    assert_eq!(s, 202, "{v}");
    env.wait_for("GONE-1 paid", Duration::from_secs(15), || {
        payment(&d, "GONE-1")["state"] == "PAID"
    });
    terminate(&mut d);
    env.assert_consistent(true);
}

fn start_sale_at(d: &Daemon, path: &str) -> (u16, Value) {
    let agent = ecr_agent(Duration::from_secs(10));
    ecr_call(&agent, &format!("{}{path}", d.ecr), Some(&json!({}))).expect("the daemon answers")
}

#[test]
fn totals_through_the_api_are_the_journal_s() {
    let env = Env::start();
    let mut d = env.spawn_daemon(free_port());
    assert!(d.wait_ready(Duration::from_secs(20)), "not ready");
    // Two paid sales and a declined one, through the register's API.
    for (order, amount, n) in [
        ("TOT-1", "3.00", 901),
        ("TOT-2", "4.00", 902),
        ("TOT-3", "5.51", 903),
    ] {
        let (s, v) = start_sale(
            &d,
            json!({"order_id": order, "amount": amount, "code": code(n)}),
        );
        assert!(s == 202 || s == 200, "{s} {v}");
        env.wait_for("the sale to end", Duration::from_secs(20), || {
            payment(&d, order)["final"] == true
        });
    }
    let agent = ecr_agent(Duration::from_secs(5));
    let (s, t) =
        ecr_call(&agent, &format!("{}/v1/totals", d.ecr), None).expect("the daemon answers");
    assert_eq!(s, 200, "{t}");
    let all = &t["totals"]["all"];
    assert_eq!(all["paid_count"], 2, "{t}");
    assert_eq!(all["paid_fen"], 700, "{t}");
    assert_eq!(all["net_fen"], 700, "{t}");
    let (s, e) = ecr_call(&agent, &format!("{}/v1/totals?day=12/03", d.ecr), None)
        .expect("the daemon answers");
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["code"], "bad_day");
    d.kill9();
}
