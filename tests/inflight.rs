//! A recovery pass running beside a sale in the same process (the daemon's recovery loop) must
//! leave the sale's attempt alone while its pay request is on the way: the row says PAY_INTENT,
//! which alone would read as "sent before a crash", and a query sent then could come back "no
//! such order" and fence a sale that is about to succeed. Engines sharing `Claims` (as the
//! daemon's do) see the attempt as being driven; an engine of another process does not, and is
//! kept consistent by the journal's version check instead.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use payterm::config::Config;
use payterm::core::authcode::{AuthCode, default_rules};
use payterm::core::machine::AttemptState;
use payterm::core::money::Amount;
use payterm::engine::claims::Claims;
use payterm::engine::{Engine, Gateways, PayRequest, Settings};
use payterm::gateway::{Credential, OrderDetails};
use payterm::journal::{Journal, RefundState};
use payterm::sandbox::{Faults, Sandbox, SandboxConfig};

fn engine(cfg: &Config, claims: &Claims) -> Engine {
    Engine::new(
        Journal::open(&cfg.journal_path()).expect("journal"),
        Gateways::from_config(cfg).expect("gateways"),
        Settings::from_config(cfg).expect("settings"),
    )
    .with_claims(claims.clone())
}

#[test]
fn recovery_leaves_an_in_flight_sale_to_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let key = "e2e-test-md5-key-00000000000000";
    std::fs::write(dir.path().join("agg.key"), format!("{key}\n")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sb = Sandbox::new(SandboxConfig::new("130000000000000000", "00000001", key));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (addr, _server) = rt.block_on(sb.clone().spawn(addr)).unwrap();
    // The pay reply takes 1.5 s (within the 2 s request timeout): long enough for a recovery
    // pass to run while the attempt is PAY_INTENT.
    sb.lock().faults = Faults {
        latency_ms: 1_500,
        ..Faults::default()
    };
    let path = dir.path().join("payterm.toml");
    std::fs::write(
        &path,
        common::config_text(&format!("http://{addr}"), "journal.db"),
    )
    .unwrap();
    let cfg = Config::load(&path).expect("config");
    let claims = Claims::default();

    let (tx, rx) = mpsc::channel();
    let sale = {
        let mut e = engine(&cfg, &claims);
        std::thread::spawn(move || {
            let code = AuthCode::classify("134567890123456789", &default_rules()).unwrap();
            let req = PayRequest {
                order_id: Some("INFLIGHT1".into()),
                amount: Amount::from_fen(1200),
                credential: Credential::Code(code),
                wallet: None,
                gateway: None,
                details: OrderDetails::default(),
            };
            e.pay(req, &mut |row, _| {
                let _ = tx.send(row.machine.state);
            })
        })
    };
    // The attempt is journaled (PAY_INTENT) and its request is on the way.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        AttemptState::PayIntent
    );
    std::thread::sleep(Duration::from_millis(200));
    let mut recovery = engine(&cfg, &claims);
    let report = recovery.recover(1_000, &mut |_, _| {}).expect("recover");
    assert_eq!(report.attempts.len(), 1, "{report:?}");
    let (order, _, before, after) = &report.attempts[0];
    assert_eq!(order, "INFLIGHT1");
    assert_eq!(
        (*before, *after),
        (AttemptState::PayIntent, AttemptState::PayIntent),
        "the pass must not move a sale that is being driven: {report:?}"
    );
    let row = sale.join().unwrap().expect("pay");
    assert_eq!(row.machine.state, AttemptState::Paid);
    let g = sb.lock();
    let o = g
        .ledger
        .orders
        .iter()
        .find(|o| o.out_trade_no == row.out_trade_no)
        .expect("in the ledger");
    assert_eq!(o.queries, 0, "nobody queried the in-flight sale");
    drop(g);

    // Once the sale's thread has returned, the claim is gone: recovery may drive it again
    // (here nothing is left to do).
    assert!(!claims.held(&row.out_trade_no));
    let after = recovery.recover(1_000, &mut |_, _| {}).expect("recover");
    assert!(after.attempts.is_empty(), "{after:?}");

    // The same for a refund whose request is on the way: the pass leaves it to its thread.
    let refunder = {
        let mut e = engine(&cfg, &claims);
        std::thread::spawn(move || e.refund("INFLIGHT1", Amount::from_fen(200), None))
    };
    std::thread::sleep(Duration::from_millis(500));
    let during = recovery.recover(1_000, &mut |_, _| {}).expect("recover");
    assert_eq!(during.refunds.len(), 1, "{during:?}");
    assert_eq!(
        during.refunds[0].1,
        RefundState::Intent,
        "the pass must not settle a refund being sent: {during:?}"
    );
    let refund = refunder.join().unwrap().expect("refund");
    assert_eq!(refund.state, RefundState::Done);
}
