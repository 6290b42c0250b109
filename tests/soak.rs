//! Issue 3, the soak: many payments with random amounts (every sandbox scenario) while the
//! network randomly loses requests, loses replies, adds latency or is down for seconds (longer
//! than the query schedule), with `recover` passes running now and then alongside the sales; at
//! the end the faults stop, recovery runs until nothing is open, and every attempt in the
//! journal must agree with the sandbox's ledger.
//!
//! It runs in-process so thousands of payments stay cheap: the sandbox serves on a tokio runtime
//! of its own, and each worker thread drives its own `Engine` (its own SQLite connection to the
//! one journal, as several processes would). `PAYTERM_SOAK_N` sets the number of payments
//! (default 200), `PAYTERM_SOAK_WORKERS` the concurrent sales (default 8).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use payterm::config::Config;
use payterm::core::authcode::{AuthCode, default_rules};
use payterm::core::machine::AttemptState;
use payterm::core::money::Amount;
use payterm::engine::{Engine, Gateways, PayRequest, Settings};
use payterm::gateway::{Credential, OrderDetails};
use payterm::journal::{Journal, ListFilter, RefundState};
use payterm::sandbox::{Faults, Sandbox, SandboxConfig};
use rand::Rng;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn engine(cfg: &Config) -> Engine {
    let journal = Journal::open(&cfg.journal_path()).expect("journal");
    let gateways = Gateways::from_config(cfg).expect("gateways");
    let settings = Settings::from_config(cfg).expect("settings");
    Engine::new(journal, gateways, settings)
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

#[test]
fn soak_random_payments_faults_and_recovery() {
    let n = env_num("PAYTERM_SOAK_N", 200);
    let workers = env_num("PAYTERM_SOAK_WORKERS", 8).max(1);
    let dir = tempfile::tempdir().unwrap();
    let key = "e2e-test-md5-key-00000000000000";
    std::fs::write(dir.path().join("agg.key"), format!("{key}\n")).unwrap();

    // The sandbox, on a runtime of its own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut sc = SandboxConfig::new("130000000000000000", "00000001", key);
    sc.hang_ms = 1_500;
    let sb = Sandbox::new(sc);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (addr, _server) = rt.block_on(sb.clone().spawn(addr)).unwrap();
    sb.lock().clock.set_rate(common::RATE);

    let config = dir.path().join("payterm.toml");
    std::fs::write(
        &config,
        common::config_text(&format!("http://{addr}"), "journal.db"),
    )
    .unwrap();
    let cfg = Config::load(&config).expect("config");

    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let done = Arc::new(AtomicBool::new(false));
    let next_payment = Arc::new(AtomicU32::new(0));
    let outcomes: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let recover_passes = Arc::new(AtomicU32::new(0));

    // Faults change every few hundred milliseconds; now and then (and always once, early) the
    // gateway is down for 2–5 s, longer than the query schedule, so sales end in the
    // store-and-forward queue and the drain settles them afterwards.
    let fault_thread = {
        let sb = sb.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut rng = rand::thread_rng();
            let (mut changes, mut outages) = (0u32, 0u32);
            while !done.load(Ordering::Relaxed) {
                let mut hold = Duration::from_millis(rng.gen_range(100..500));
                let pick = if changes == 2 {
                    6
                } else {
                    rng.gen_range(0..20)
                };
                let f = match pick {
                    0 | 1 => Faults {
                        lose_request: 0.2,
                        ..Faults::default()
                    },
                    2 | 3 => Faults {
                        lose_reply: 0.2,
                        ..Faults::default()
                    },
                    4 | 5 => Faults {
                        latency_ms: rng.gen_range(50..400),
                        ..Faults::default()
                    },
                    6 => {
                        outages += 1;
                        hold = Duration::from_millis(rng.gen_range(2_000..5_000));
                        Faults {
                            down: true,
                            ..Faults::default()
                        }
                    }
                    // What real gateways do that a scripted sandbox does not: a lagging order
                    // store, lost confirmations, a silent cancel, empty HTTP 500s.
                    7 => Faults {
                        lag_ms: rng.gen_range(5_000..40_000),
                        ..Faults::default()
                    },
                    8 => Faults {
                        lose_reply_of: vec!["orderquery".into()],
                        ..Faults::default()
                    },
                    9 => Faults {
                        cancel_not_found: true,
                        ..Faults::default()
                    },
                    10 => Faults {
                        http_500: true,
                        ..Faults::default()
                    },
                    11 => Faults {
                        in_progress_ms: rng.gen_range(5_000..60_000),
                        ..Faults::default()
                    },
                    _ => Faults::default(),
                };
                sb.lock().faults = f;
                changes += 1;
                let t = Instant::now();
                while t.elapsed() < hold && !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            sb.lock().faults = Faults::default();
            (changes, outages)
        })
    };

    // Recovery now and then, alongside the sales (as the daemon's store-and-forward drain).
    let recover_thread = {
        let cfg = cfg.clone();
        let done = done.clone();
        let passes = recover_passes.clone();
        std::thread::spawn(move || {
            let mut e = engine(&cfg);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1_500));
                let _ = e.recover(300, &mut |_, _| {});
                passes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let sales: Vec<_> = (0..workers)
        .map(|_| {
            let cfg = cfg.clone();
            let next_payment = next_payment.clone();
            let outcomes = outcomes.clone();
            std::thread::spawn(move || {
                let mut e = engine(&cfg);
                let mut rng = rand::thread_rng();
                let rules = default_rules();
                loop {
                    let k = next_payment.fetch_add(1, Ordering::Relaxed) as usize;
                    if k >= n {
                        break;
                    }
                    let scenario =
                        [0u64, 0, 0, 51, 52, 53, 54, 55, 56, 57, 58, 12, 99][rng.gen_range(0..13)];
                    let fen = rng.gen_range(1..200u64) * 100 + scenario;
                    let code = AuthCode::classify(&common::code(k as u32), &rules).unwrap();
                    let req = PayRequest {
                        order_id: None,
                        amount: Amount::from_fen(fen),
                        credential: Credential::Code(code),
                        wallet: None,
                        gateway: None,
                        details: OrderDetails::default(),
                    };
                    let what = match e.pay(req, &mut |_, _| {}) {
                        Ok(row) => row.machine.state.as_str().to_string(),
                        Err(err) => format!("error: {err}"),
                    };
                    *outcomes.lock().unwrap().entry(what).or_default() += 1;
                }
            })
        })
        .collect();
    for s in sales {
        s.join().expect("a sale thread panicked");
    }
    let sales_done = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (fault_changes, outages) = fault_thread.join().unwrap();
    recover_thread.join().unwrap();

    // The network is quiet now: recover until nothing is open.
    let mut e = engine(&cfg);
    let mut final_passes = 0;
    loop {
        final_passes += 1;
        let r = e.recover(3_000, &mut |_, _| {}).expect("recover");
        if r.still_open() == 0 {
            break;
        }
        assert!(final_passes < 30, "still open after 30 passes: {r:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu0;

    // Journal == ledger, attempt by attempt.
    let rows = e.journal().list(&ListFilter::default()).unwrap();
    let ledger = sb.lock().ledger.orders.clone();
    let by_no: HashMap<&str, &payterm::sandbox::ledger::Order> = ledger
        .iter()
        .map(|o| (o.out_trade_no.as_str(), o))
        .collect();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fence_refunds = 0;
    for a in &rows {
        let st = a.machine.state;
        *states.entry(st.as_str()).or_default() += 1;
        let refunded: u64 = e
            .journal()
            .refunds_for(a.attempt_id)
            .unwrap()
            .iter()
            .filter(|r| r.state == RefundState::Done)
            .inspect(|r| fence_refunds += usize::from(r.kind == "fence"))
            .map(|r| r.amount.fen())
            .sum();
        let net = by_no
            .get(a.out_trade_no.as_str())
            .map(|o| o.net_fen())
            .unwrap_or(0);
        match st {
            AttemptState::Paid => assert_eq!(
                net,
                a.amount.fen() - refunded,
                "{}: PAID in the journal, ledger {:?}",
                a.out_trade_no,
                by_no.get(a.out_trade_no.as_str())
            ),
            AttemptState::Failed | AttemptState::Reversed => assert_eq!(
                net,
                0,
                "{}: {st} in the journal, ledger {:?}",
                a.out_trade_no,
                by_no.get(a.out_trade_no.as_str())
            ),
            AttemptState::ManualReview => {
                // A person decides (an outage outlasted the cancel window of an order the
                // customer never confirmed, say); the money is all or nothing, never a part.
                assert!(net == 0 || net == a.amount.fen(), "{}", a.out_trade_no);
            }
            other => panic!("{} is still {other} after recovery", a.out_trade_no),
        }
    }
    // Every payment is journaled (none vanished: I2), and the gateway saw nothing else (I3).
    let sold: usize = outcomes
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with("error"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(rows.len(), sold, "outcomes {:?}", outcomes.lock().unwrap());
    let known: HashSet<&str> = rows.iter().map(|a| a.out_trade_no.as_str()).collect();
    for o in &ledger {
        assert!(
            known.contains(o.out_trade_no.as_str()),
            "I3: the sandbox saw {}, unknown to the journal",
            o.out_trade_no
        );
    }
    assert_eq!(e.journal().integrity_check().unwrap(), "ok", "I7");

    eprintln!(
        "soak: {n} payments by {workers} workers in {:.1} s (sales {:.1} s, {:.1}/s); \
         {} fault changes ({outages} outages of 2-5 s), {} recovery passes during the sales \
         and {final_passes} after; \
         outcomes at the counter {:?}; final states {states:?}; {fence_refunds} fence refunds; \
         process CPU {:.2} s ({:.2} ms per payment, sandbox included)",
        elapsed.as_secs_f64(),
        sales_done.as_secs_f64(),
        n as f64 / sales_done.as_secs_f64(),
        fault_changes,
        recover_passes.load(Ordering::Relaxed),
        outcomes.lock().unwrap(),
        cpu,
        cpu * 1000.0 / n as f64,
    );
    let errors: usize = outcomes
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("error"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(errors, 0, "sales refused: {:?}", outcomes.lock().unwrap());
    // The long outage is in every run of a useful size (it is the third fault change).
    assert!(n < 100 || outages >= 1, "no outage happened");
}
