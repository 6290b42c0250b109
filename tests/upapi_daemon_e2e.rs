//! Issue 8 through the running daemon (`payterm run` against `payterm sandbox`): 云闪付's
//! contract cancel notice delivered to `GET /notify/upapi` (recorded once, answered the same way
//! on every repeat, refused without any change when it does not verify), and kiosks charging
//! contract customers through `POST /v1/contract-charges` — online while the uplink is up,
//! offline within the limits while it is down (refused above them, with a stable code and the
//! customer's message) — after which the daemon's own recovery loop settles every stored
//! deduction and the journal equals the sandbox ledger. The kiosk's screen (the sim board's web
//! mirror) shows each charge's outcome, and a charge is refused as `busy` while a sale waits at
//! the counter.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use common::upapi::{assert_all_verified, sign, with_upapi};
use payterm::core::money::Amount;
use payterm::ui::{
    ContractRefusal, DeclineReason, Frame, Locale, Screen, StatusBar, Wallet, draw_screen, png,
};
use serde_json::{Value, json};

const LIMITS: &str = r#"enabled = true
per_customer = "40.00"
total = "70.00"
max_age_s = 3600
fresh_within_s = 600
max_tries = 3"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// (status, body text)
fn get_text(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().expect(url);
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn get_json(url: &str) -> (u16, Value) {
    let (s, t) = get_text(url);
    (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

fn post(url: &str, body: Value) -> (u16, Value) {
    let mut r = agent()
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

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// `payterm run` on the sim board; stopped with SIGTERM (killed if it does not stop) on drop.
struct Daemon {
    child: Option<Child>,
    ecr: String,
    /// The sim board's screen, mirrored as a web page.
    mirror: String,
}

impl Daemon {
    fn start(env: &Env) -> Daemon {
        let ecr_port = free_port();
        let mirror_port = free_port();
        let log = std::fs::File::create(env.dir.path().join("daemon.log")).unwrap();
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
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        let d = Daemon {
            child: Some(child),
            ecr: format!("http://127.0.0.1:{ecr_port}"),
            mirror: format!("http://127.0.0.1:{mirror_port}"),
        };
        let health = format!("{}/v1/health", d.ecr);
        wait_until("the daemon to be ready", 30, || {
            agent()
                .get(&health)
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200)
        });
        d
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ecr)
    }

    fn charge(&self, contract: &str, amount: &str, order: &str) -> (u16, Value) {
        post(
            &self.url("/v1/contract-charges"),
            json!({"contract_id": contract, "amount": amount, "order_id": order}),
        )
    }
}

impl Daemon {
    /// Whether the screen shows `screen` now: the mirrored frame, below the status bar (whose
    /// clock moves), equals `screen` drawn here, with or without the offline banner.
    fn screen_is(&self, screen: &Screen) -> bool {
        let Ok(mut r) = agent().get(format!("{}/frame.png", self.mirror)).call() else {
            return false;
        };
        let Some(shown) = r
            .body_mut()
            .read_to_vec()
            .ok()
            .and_then(|b| png::decode_png(&b).ok())
        else {
            return false;
        };
        // Below the tallest status bar; the sim board's screen is 480x320.
        let below = 40 * shown.width as usize * 3;
        [true, false].into_iter().any(|online| {
            let status = StatusBar {
                merchant: "测试商户".into(),
                time: String::new(),
                online,
                unsettled: 0,
            };
            let mut f = Frame::new(shown.width, shown.height);
            let Ok(()) = draw_screen(&mut f, screen, &status, Locale::Zh);
            f.to_rgb888().get(below..) == shown.rgb.get(below..)
        })
    }

    fn wait_for_screen(&self, screen: &Screen) {
        wait_until(&format!("the screen to show {screen:?}"), 10, || {
            self.screen_is(screen)
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        unsafe { libc_kill(child.id() as i32, 15) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The journal's record of a contract: (status, relieved_ms), and how many cancel notices it
/// has recorded in all. Read-only, beside the running daemon.
fn contract_in_journal(env: &Env, contract_id: &str) -> (String, Option<i64>, i64) {
    let conn = rusqlite::Connection::open_with_flags(
        env.journal_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the journal");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let (status, relieved) = conn
        .query_row(
            "SELECT status, relieved_ms FROM contracts WHERE contract_id = ?1",
            [contract_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)),
        )
        .expect("the contract is in the journal");
    let notices: i64 = conn
        .query_row("SELECT COUNT(*) FROM contract_notices", [], |r| r.get(0))
        .unwrap();
    (status, relieved, notices)
}

fn deductions(env: &Env) -> Vec<Value> {
    let (_, _, out) = env.run_json(&["contract", "deductions"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("deduction").cloned())
        .collect()
}

/// The signed cancel notice the sandbox's 云闪付 produces when the customer cancels in the app.
fn user_relieve(env: &Env, contract_id: &str) -> String {
    let n = env.post(
        "/_sandbox/upapi/user-relieve",
        &format!(r#"{{"contract_id": "{contract_id}"}}"#),
    );
    n["query"].as_str().expect("a query string").to_string()
}

const OK: &str = r#"{"resp":"00"}"#;

#[test]
fn the_cancel_notice_reaches_the_daemon_once_and_forgeries_change_nothing() {
    let env = Env::start();
    with_upapi(&env, LIMITS);
    let (c1, _) = sign(&env, "RLV1");
    let (c2, _) = sign(&env, "RLV2");
    let d = Daemon::start(&env);
    assert_eq!(contract_in_journal(&env, &c1), ("SIGNED".into(), None, 0));

    // The customer cancels c1 in the app; 云闪付 GETs the daemon's notify URL.
    let q1 = user_relieve(&env, &c1);
    let (s, body) = get_text(&d.url(&format!("/notify/upapi?{q1}")));
    assert_eq!((s, body.as_str()), (200, OK));
    let (status, relieved, notices) = contract_in_journal(&env, &c1);
    assert_eq!((status.as_str(), notices), ("RELIEVED", 1));
    let relieved = relieved.expect("relieved_ms is set");

    // 云闪付 repeats it (it did not see our answer): the same answer, recorded once.
    for _ in 0..2 {
        let (s, body) = get_text(&d.url(&format!("/notify/upapi?{q1}")));
        assert_eq!(
            (s, body.as_str()),
            (200, OK),
            "a repeat is answered the same"
        );
    }
    assert_eq!(
        contract_in_journal(&env, &c1),
        ("RELIEVED".into(), Some(relieved), 1)
    );

    // Notices that do not verify are refused and change nothing: a field altered after
    // signing, the contract swapped for another, a damaged signature, no signature, nothing.
    let q2 = user_relieve(&env, &c2);
    let sig_at = q2.find("signature=").expect("signed");
    let forged = [
        q2.replacen("trid=TR", "trid=TX", 1),
        q2.replace(&c2, &c1),
        format!("{}AAAA{}", &q2[..sig_at + 10], &q2[sig_at + 14..]),
        q2[..sig_at].trim_end_matches('&').to_string(),
        String::new(),
    ];
    for f in &forged {
        assert_ne!(f, &q2);
        let (s, body) = get_text(&d.url(&format!("/notify/upapi?{f}")));
        assert_eq!(s, 400, "{f}: {body}");
        let v: Value = serde_json::from_str(&body).expect("a JSON answer");
        assert_ne!(v["resp"], "00", "{body}");
    }
    assert_eq!(contract_in_journal(&env, &c2), ("SIGNED".into(), None, 1));
    assert_eq!(
        contract_in_journal(&env, &c1),
        ("RELIEVED".into(), Some(relieved), 1)
    );

    // Only 云闪付 notifies by GET; the POST route is still the payment notifications'.
    assert_eq!(get_text(&d.url("/notify/aggregator?x=1")).0, 404);
    assert_ne!(post(&d.url("/notify/upapi"), json!({})).0, 405);

    // What the journal knows is what the kiosk gets while the uplink is down: c1 is refused
    // as cancelled, c2 (whose forged notices were refused) is still accepted offline.
    env.faults(r#"{"down": true}"#);
    let (s, v) = d.charge(&c1, "5.00", "RLV-K1");
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("contract_cancelled")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("please pay with a payment code"),
        "{v}"
    );
    let (s, v) = d.charge(&c2, "5.00", "RLV-K2");
    assert_eq!((s, v["mode"].as_str()), (202, Some("offline")), "{v}");
    env.faults(r#"{"down": false}"#);
}

#[test]
fn kiosk_charges_online_then_offline_within_limits_and_the_daemon_settles_them() {
    let env = Env::start();
    with_upapi(&env, LIMITS);
    let (c1, _) = sign(&env, "KIOSK1");
    let (c2, _) = sign(&env, "KIOSK2");
    let (c3, _) = sign(&env, "KIOSK3");
    let d = Daemon::start(&env);

    // Online: debited at once through the engine.
    let (s, v) = d.charge(&c1, "12.00", "K-ON-1");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["mode"], "online", "{v}");
    assert_eq!(v["state"], "PAID", "{v}");
    assert_eq!(v["accepted"], true);
    assert_eq!(v["amount_fen"], 1200);
    let online_no = v["out_trade_no"].as_str().unwrap().to_string();
    assert_eq!(env.ledger_order(&online_no).unwrap()["net_fen"], 1200);
    d.wait_for_screen(&Screen::Paid {
        amount_fen: 1200,
        wallet: Wallet::UnionPay,
    });
    // A sale waiting at the counter for the customer's code keeps it: the kiosk's charge is
    // refused as busy and nothing is recorded under its order; once the sale is gone it runs.
    let (s, v) = post(
        &d.url("/v1/payments"),
        json!({"order_id": "K-SALE-1", "amount": "3.00"}),
    );
    assert_eq!(
        (s, v["state"].as_str()),
        (202, Some("WAITING_FOR_CODE")),
        "{v}"
    );
    let (s, e) = d.charge(&c1, "1.00", "K-BUSY-1");
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("busy")), "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("K-SALE-1"),
        "{e}"
    );
    assert_eq!(get_json(&d.url("/v1/contract-charges/K-BUSY-1")).0, 404);
    let (s, v) = post(&d.url("/v1/payments/K-SALE-1/cancel"), json!({}));
    assert_eq!((s, v["state"].as_str()), (200, Some("ABANDONED")), "{v}");
    // The same order again is the same charge; another amount under it is refused.
    let (s, again) = d.charge(&c1, "12.00", "K-ON-1");
    assert_eq!(
        (s, again["out_trade_no"].as_str()),
        (200, Some(online_no.as_str()))
    );
    let (s, e) = d.charge(&c1, "13.00", "K-ON-1");
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("order_conflict")),
        "{e}"
    );
    // Bad input: a 400 with a code, and nothing is charged.
    for (body, code) in [
        (json!({"contract_id": c1, "amount": "1.234"}), "bad_amount"),
        (json!({"contract_id": c1, "amount": "0.00"}), "bad_amount"),
        (
            json!({"contract_id": "", "amount": "1.00"}),
            "bad_contract_id",
        ),
        (
            json!({"contract_id": c1, "amount": "1.00", "order_id": "no spaces"}),
            "bad_order_id",
        ),
        (
            json!({"contract_id": c1, "amount": "1.00", "tip": "1"}),
            "bad_request",
        ),
    ] {
        let (s, e) = post(&d.url("/v1/contract-charges"), body.clone());
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {e}"
        );
    }
    assert_eq!(env.ledger()["orders"].as_array().unwrap().len(), 1);

    // The uplink is cut: known customers are accepted offline within the limits (40.00 per
    // customer, 70.00 in all) and refused above them with a message they understand.
    env.faults(r#"{"down": true}"#);
    let mut accepted = Vec::new();
    for (order, id, amount, expect) in [
        ("K-OFF-1", &c1, "10.00", None),
        ("K-OFF-2", &c1, "15.00", None),
        ("K-OFF-3", &c2, "20.00", None),
        // 25 + 20 > 40 for this customer.
        (
            "K-OFF-4",
            &c1,
            "20.00",
            Some(("over_customer_limit", "limit of 40.00 yuan")),
        ),
        // 45 + 30 > 70 on this terminal.
        (
            "K-OFF-5",
            &c3,
            "30.00",
            Some(("over_terminal_limit", "offline limit (70.00 yuan)")),
        ),
        ("K-OFF-6", &c3, "10.00", None),
    ] {
        let (s, v) = d.charge(id, amount, order);
        match expect {
            None => {
                assert_eq!(s, 202, "{order}: {v}");
                // The customer is told it is accepted and charged later, calmly.
                let amount_fen = v["amount_fen"].as_u64().unwrap();
                d.wait_for_screen(&Screen::AcceptedOffline { amount_fen });
                assert_eq!(v["mode"], "offline", "{v}");
                assert_eq!(v["state"], "STORED", "{v}");
                assert_eq!(v["accepted"], true, "{v}");
                assert_eq!(v["order_id"], order, "{v}");
                accepted.push(order);
            }
            Some((code, why)) => {
                assert_eq!(
                    (s, v["error"]["code"].as_str()),
                    (409, Some(code)),
                    "{order}: {v}"
                );
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains(why), "{msg}");
                assert!(msg.contains("please pay with a payment code"), "{msg}");
                // The screen names the refusal's kind in short.
                let kind = match code {
                    "over_customer_limit" => ContractRefusal::CustomerLimit,
                    _ => ContractRefusal::TerminalLimit,
                };
                d.wait_for_screen(&Screen::Declined {
                    amount_fen: Amount::parse_yuan(amount).unwrap().fen(),
                    reason: DeclineReason::ContractRefused(kind),
                });
            }
        }
    }
    // A kiosk that retries an accepted order gets the same deduction, not a second one.
    let (s, v) = d.charge(&c1, "10.00", "K-OFF-1");
    assert_eq!((s, v["state"].as_str()), (200, Some("STORED")), "{v}");
    // And the order id cannot be reused for a code payment meanwhile.
    let (s, e) = post(
        &d.url("/v1/payments"),
        json!({"order_id": "K-OFF-1", "amount": "10.00", "code": "134567890123450001"}),
    );
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("order_conflict")),
        "{e}"
    );
    let stored = deductions(&env);
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert!(stored.iter().all(|d| d["state"] == "STORED"), "{stored:?}");
    assert_eq!(
        env.ledger()["orders"].as_array().unwrap().len(),
        1,
        "nothing reached the platform while it was down"
    );

    // The uplink returns: the daemon's own recovery loop submits and settles every deduction.
    env.faults(r#"{"down": false}"#);
    wait_until("every offline deduction to settle", 90, || {
        accepted
            .iter()
            .all(|o| get_json(&d.url(&format!("/v1/contract-charges/{o}"))).1["state"] == "SETTLED")
    });
    for o in &accepted {
        let (_, v) = get_json(&d.url(&format!("/v1/contract-charges/{o}")));
        assert_eq!(v["attempt_state"], "PAID", "{v}");
        assert_eq!(v["final"], true, "{v}");
        // The debit carries the kiosk's order id.
        let (s, p) = get_json(&d.url(&format!("/v1/payments/{o}")));
        assert_eq!((s, p["state"].as_str()), (200, Some("PAID")), "{p}");
    }
    assert!(deductions(&env).iter().all(|d| d["state"] == "SETTLED"));
    env.assert_consistent(true);
    assert_eq!(env.ledger()["total_net_fen"], 1200 + 5500);
    assert_all_verified(&env);

    // Nothing is charged twice by later passes.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(env.ledger()["total_net_fen"], 1200 + 5500);
    assert_eq!(env.ledger()["orders"].as_array().unwrap().len(), 5);
}
