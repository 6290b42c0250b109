//! Issue 3, RELIABILITY.md §8 test 19: SIGTERM to `payterm run` (systemd's stop). The daemon
//! must exit by itself, promptly and with status 0 — well inside the unit's `TimeoutStopSec` —
//! leaving the journal consistent: a sale caught in its query phase is either final or still
//! open with its state committed, and `payterm recover` then settles it. An idle daemon stops at
//! once, and so does one whose recovery is waiting on a gateway that does not answer.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Env, ecr_agent, ecr_call, free_port};
use serde_json::{Value, json};

/// The daemon's ECR state of an order (`null` when it has none yet).
fn state_of(d: &Daemon, order: &str) -> Value {
    let agent = ecr_agent(Duration::from_secs(5));
    match ecr_call(&agent, &format!("{}/v1/payments/{order}", d.ecr), None) {
        Ok((200, v)) => v["state"].clone(),
        _ => Value::Null,
    }
}

/// The daemon's ECR view of an order (`null` when it has none yet).
fn payment_of(d: &Daemon, order: &str) -> Value {
    let agent = ecr_agent(Duration::from_secs(5));
    match ecr_call(&agent, &format!("{}/v1/payments/{order}", d.ecr), None) {
        Ok((200, v)) => v,
        _ => Value::Null,
    }
}

/// SIGTERM, then the time the daemon took to exit and its status.
fn terminate(d: &mut Daemon, limit: Duration) -> (Duration, std::process::ExitStatus) {
    let t = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(limit)
        .unwrap_or_else(|| panic!("the daemon did not exit within {limit:?} of SIGTERM"));
    (t.elapsed(), status)
}

fn start_ready(env: &Env) -> Daemon {
    let mut d = env.spawn_daemon(free_port());
    assert!(
        d.wait_ready(Duration::from_secs(30)),
        "the daemon did not become ready"
    );
    d
}

#[test]
fn sigterm_during_the_query_phase_exits_cleanly_and_recover_settles_the_sale() {
    let env = Env::start();
    // A long query phase: first query after 1 s, the customer has 6 s to confirm.
    env.edit_config("query_delays_ms = [200]", "query_delays_ms = [1000]");
    env.edit_config("pay_deadline_ms = 1200", "pay_deadline_ms = 6000");
    let mut d = start_ready(&env);
    // Slow replies, and an amount ending in 53: the customer never confirms.
    env.faults(r#"{"latency_ms": 300}"#);
    let agent = ecr_agent(Duration::from_secs(10));
    let (s, v) = ecr_call(
        &agent,
        &format!("{}/v1/payments", d.ecr),
        Some(&json!({"order_id": "SIG-Q", "amount": "5.53", "code": common::code(1)})),
    )
    .expect("the daemon answers");
    assert_eq!(s, 202, "{v}");
    env.wait_for("the sale to be querying", Duration::from_secs(10), || {
        state_of(&d, "SIG-Q") == "QUERYING"
    });

    let (took, status) = terminate(&mut d, Duration::from_secs(30));
    eprintln!("SIGTERM in QUERYING: exited in {took:?} with {status:?}");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");

    // What the journal holds now is consistent with the ledger, and the attempt did not vanish.
    env.assert_integrity();
    env.assert_consistent(false);
    let entry = env
        .journal_entry(|a| a["order_id"] == "SIG-Q")
        .expect("the attempt is journaled");
    let at_exit = entry["attempt"]["state"].as_str().unwrap().to_string();
    assert!(
        [
            "QUERYING",
            "REVERSE_INTENT",
            "SAF_PENDING",
            "REVERSED",
            "FAILED",
            "PAID"
        ]
        .contains(&at_exit.as_str()),
        "{at_exit}"
    );

    // Recovery settles it: the customer never confirmed, so the order is cancelled.
    env.faults("{}");
    assert!(env.recover_until_settled(20), "recover did not settle it");
    let entry = env.journal_entry(|a| a["order_id"] == "SIG-Q").unwrap();
    assert_eq!(entry["attempt"]["state"], "REVERSED", "{entry}");
    env.assert_consistent(true);
    // I6: a second recovery changes nothing.
    let before = env.snapshot();
    assert_eq!(env.recover(), 0);
    assert_eq!(before, env.snapshot(), "I6: recovery is not idempotent");
    env.assert_no_secret(&common::code(1));
    eprintln!("the sale was {at_exit} at exit and REVERSED after recover");
}

#[test]
fn sigterm_while_idle_exits_at_once() {
    let env = Env::start();
    let mut d = start_ready(&env);
    // A paid sale first, so the daemon has done some work.
    let agent = ecr_agent(Duration::from_secs(10));
    let (s, v) = ecr_call(
        &agent,
        &format!("{}/v1/payments", d.ecr),
        Some(&json!({"order_id": "SIG-IDLE", "amount": "2.00", "code": common::code(2)})),
    )
    .expect("the daemon answers");
    assert_eq!(s, 202, "{v}");
    env.wait_for("the sale to be paid", Duration::from_secs(10), || {
        state_of(&d, "SIG-IDLE") == "PAID"
    });
    std::thread::sleep(Duration::from_millis(300));
    let (took, status) = terminate(&mut d, Duration::from_secs(15));
    eprintln!("SIGTERM while idle: exited in {took:?} with {status:?}");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    env.assert_consistent(true);
    env.assert_integrity();
}

#[test]
fn sigterm_while_recovery_waits_on_a_dead_gateway_exits_promptly() {
    let env = Env::start();
    let mut d = start_ready(&env);
    // Three sales during an outage: each ends in the store-and-forward queue.
    env.faults(r#"{"down": true}"#);
    let agent = ecr_agent(Duration::from_secs(10));
    for k in 0..3u32 {
        let order = format!("SIG-DOWN-{k}");
        let t = Instant::now();
        loop {
            let (s, v) = ecr_call(
                &agent,
                &format!("{}/v1/payments", d.ecr),
                Some(&json!({"order_id": order, "amount": "3.00", "code": common::code(10 + k)})),
            )
            .expect("the daemon answers");
            if s == 202 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{s} {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Parked: past its deadline without an answer it stays QUERYING with the
        // store-and-forward backoff (nothing is cancelled blind), or it reached SAF_PENDING.
        env.wait_for("the sale to be parked", Duration::from_secs(30), || {
            let p = payment_of(&d, &order);
            p["state"] == "SAF_PENDING"
                || p["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("no answer past the deadline"))
        });
    }
    // The recovery thread keeps retrying them against the dead gateway; stop in the middle.
    std::thread::sleep(Duration::from_millis(700));
    let (took, status) = terminate(&mut d, Duration::from_secs(30));
    eprintln!("SIGTERM with recovery on a dead gateway: exited in {took:?} with {status:?}");
    assert!(status.success(), "exit status {status:?}");
    // At most the one gateway call in flight (2 s timeout) is waited for.
    assert!(took < Duration::from_secs(4), "took {took:?} to stop");
    // Again while the next start's recovery (before the daemon is ready) waits on the dead
    // gateway: still a clean stop, not the signal's default action.
    let mut d = env.spawn_daemon(free_port());
    std::thread::sleep(Duration::from_millis(500));
    let (took, status) = terminate(&mut d, Duration::from_secs(30));
    eprintln!("SIGTERM during start-up recovery: exited in {took:?} with {status:?}");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(4), "took {took:?} to stop");
    env.assert_integrity();
    env.assert_consistent(false);
    env.faults("{}");
    assert!(env.recover_until_settled(20), "recover did not settle them");
    env.assert_consistent(true);
}
