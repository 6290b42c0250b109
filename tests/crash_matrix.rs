//! Issue 3, the crash matrix: `payterm pay` is killed at every crash point C0–C7 of
//! RELIABILITY.md §7.4 (an abort, as abrupt as `kill -9`) for every sandbox scenario, then
//! `payterm recover` runs, and the invariants of §8 are checked: I1–I3 and journal == ledger
//! (`assert_consistent`), I5 (no full code in any file), I6 (a second recovery changes nothing)
//! and I7 (`integrity_check`). A last test crashes recovery itself, three times in a row.
//!
//! The fail points exist only in a binary built with the `failpoints` feature:
//! `cargo test --features failpoints --test crash_matrix`. Without it these tests say so and pass
//! without checking anything.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::{Env, code};
use serde_json::Value;

/// The amount scenarios of DESIGN.md §5 that the matrix covers, with what the customer does.
const SCENARIOS: [(&str, Customer); 7] = [
    ("12.00", Customer::Pays),
    ("12.52", Customer::Confirms),
    ("12.53", Customer::NeverPays),
    ("12.54", Customer::Pays),
    ("12.55", Customer::NeverPays),
    ("12.56", Customer::Pays),
    ("12.57", Customer::Pays),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Customer {
    /// Paid at once (the reply may be lost, garbled or an error): recovery must find PAID.
    Pays,
    /// Confirms on the second query: PAID, or closed/refunded if the deadline came first.
    Confirms,
    NeverPays,
}

fn enabled() -> bool {
    if !cfg!(feature = "failpoints") {
        eprintln!(
            "SKIPPED: the crash matrix needs the fail points; run `cargo test --features failpoints --test crash_matrix`"
        );
    }
    cfg!(feature = "failpoints")
}

/// Whether a sale of this scenario passes the point at all (C4 needs QUERYING, C5/C6 a cancel).
fn reaches(point: &str, amount: &str) -> bool {
    match point {
        "C4" => amount != "12.00",
        "C5" | "C6" => matches!(amount, "12.53" | "12.55"),
        _ => true,
    }
}

fn fen(amount: &str) -> u64 {
    let (y, f) = amount.split_once('.').unwrap();
    y.parse::<u64>().unwrap() * 100 + f.parse::<u64>().unwrap()
}

fn attempt_with_amount(env: &Env, amount: &str) -> Option<Value> {
    let f = fen(amount);
    env.journal_entry(|a| a["amount"].as_u64() == Some(f))
}

fn ledger_has(env: &Env, no: &str) -> Option<Value> {
    env.ledger_order(no)
}

/// Every scenario with the process killed at `point`, in one sandbox and one journal.
fn matrix(point: &str, salt: u32) {
    if !enabled() {
        return;
    }
    let env = Env::start();
    for (k, (amount, customer)) in SCENARIOS.iter().enumerate() {
        let secret = code(salt * 100 + k as u32);
        let (c, v, out) = env.run_env(
            &["pay", "--amount", amount, "--code", &secret],
            &[("PAYTERM_FAILPOINT", point)],
        );
        let aborted = out.status.signal() == Some(libc::SIGABRT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            aborted,
            reaches(point, amount),
            "{point} {amount}: exit {c} {v} {stderr}"
        );
        if !aborted {
            assert!(
                matches!(c, 0 | 2 | 3),
                "{point} {amount}: exit {c} {stderr}"
            );
        }

        // What survived the crash, before any recovery.
        let entry = attempt_with_amount(&env, amount);
        match point {
            "C0" => {
                assert!(entry.is_none(), "C0: nothing is journaled: {entry:?}");
                // Nothing durable, so nothing was sent.
                let f = fen(amount);
                let sent = env.ledger()["orders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o["amount_fen"].as_u64() == Some(f));
                assert!(!sent, "C0: the sandbox saw a request");
            }
            "C1" => {
                let e = entry.as_ref().expect("C1: the intent is durable");
                assert_eq!(e["attempt"]["state"], "PAY_INTENT");
                let no = e["attempt"]["out_trade_no"].as_str().unwrap();
                assert!(ledger_has(&env, no).is_none(), "C1: nothing was sent");
            }
            "C7" => {
                // Killed inside the first state change after the intent: it rolled back, the
                // intent itself is there.
                let e = entry.as_ref().expect("C7: the intent is durable");
                assert_eq!(e["attempt"]["state"], "PAY_INTENT", "C7: {e}");
            }
            _ => {}
        }

        // Recovery (with no fail point), until nothing is open.
        assert!(
            env.recover_until_settled(4),
            "{point} {amount}: recovery did not settle: {:?}",
            attempt_with_amount(&env, amount)
        );
        // I6: recovering again changes nothing, in the journal or at the gateway.
        let before = env.snapshot();
        assert_eq!(env.recover(), 0);
        let after = env.snapshot();
        assert_eq!(
            before, after,
            "{point} {amount}: a second recovery changed something"
        );

        // Where the money ended, by what the customer did and what was sent.
        if point != "C0" {
            let e = attempt_with_amount(&env, amount).expect("the attempt is journaled");
            let state = e["attempt"]["state"].as_str().unwrap().to_string();
            let action = e["attempt"]["reverse_action"].as_str().unwrap_or("");
            let pay_sent = point != "C1";
            let ok = match (customer, pay_sent) {
                (_, false) => state == "REVERSED" && action == "close",
                // Never reversed without a query first: the paid order is found (§7.4 C3).
                (Customer::Pays, true) => state == "PAID",
                (Customer::Confirms, true) => state == "PAID" || state == "REVERSED",
                (Customer::NeverPays, true) => {
                    (state == "REVERSED" && action == "close") || state == "FAILED"
                }
            };
            assert!(ok, "{point} {amount}: ended {state} {action}: {e}");
            if !pay_sent {
                let no = e["attempt"]["out_trade_no"].as_str().unwrap();
                let l = ledger_has(&env, no).expect("the cancel closed the number");
                assert_eq!(l["never_created"], true, "{l}");
            }
        }
        env.assert_consistent(true);
        env.assert_no_secret(&secret);
        env.assert_integrity();
    }
}

#[test]
fn crash_at_c0_before_the_intent_commits() {
    matrix("C0", 10);
}

#[test]
fn crash_at_c1_after_the_intent_before_sending() {
    matrix("C1", 11);
}

#[test]
fn crash_at_c2_after_sending_before_the_reply_is_read() {
    matrix("C2", 12);
}

#[test]
fn crash_at_c3_reply_read_not_committed() {
    matrix("C3", 13);
}

#[test]
fn crash_at_c4_while_querying() {
    matrix("C4", 14);
}

#[test]
fn crash_at_c5_after_the_cancel_intent() {
    matrix("C5", 15);
}

#[test]
fn crash_at_c6_cancel_reply_not_committed() {
    matrix("C6", 16);
}

#[test]
fn crash_at_c7_inside_a_commit() {
    matrix("C7", 17);
}

/// RELIABILITY §8 test 18: recovery itself is killed, three times in a row, at different points.
#[test]
fn crash_during_recovery_three_times() {
    if !enabled() {
        return;
    }
    let env = Env::start();
    let amounts = ["21.53", "21.54", "21.55", "21.57"];
    for (k, amount) in amounts.iter().enumerate() {
        let (_, _, out) = env.run_env(
            &["pay", "--amount", amount, "--code", &code(1_900 + k as u32)],
            &[("PAYTERM_FAILPOINT", "C4")],
        );
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{amount}");
    }
    for point in ["C5", "C6", "C7"] {
        let (c, _, out) = env.run_env(
            &["recover", "--max-wait-ms", "3000"],
            &[("PAYTERM_FAILPOINT", point)],
        );
        assert!(
            out.status.signal() == Some(libc::SIGABRT) || c == 0 || c == 3,
            "recover at {point}: {c}"
        );
        env.assert_consistent(false);
        env.assert_integrity();
    }
    assert!(env.recover_until_settled(4));
    let before = env.snapshot();
    assert_eq!(env.recover(), 0);
    assert_eq!(before, env.snapshot());
    env.assert_consistent(true);
    for k in 0..amounts.len() {
        env.assert_no_secret(&code(1_900 + k as u32));
    }
}
