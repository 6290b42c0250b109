//! What one whole payment costs payterm's own thread (issue 3, "well under a millisecond of CPU
//! of our own work per payment").
//!
//! `scripts/bench-payments.sh` measures whole `payterm pay` processes, where start-up, config
//! and journal opening dominate and cannot be separated cleanly. Here one thread drives the real
//! engine through N payments against the real sandbox on loopback — classify the code, check the
//! guards, journal the intent (durable), build and MD5-sign the request, send it over HTTP, parse
//! and verify the signed reply, commit the outcome (durable). The sandbox runs on a runtime of its
//! own threads, so the paying thread's CPU clock (`getrusage(RUSAGE_THREAD)`) holds only
//! payterm's work: user time is our code plus SQLite and the HTTP client; system time is the
//! kernel's share of the loopback sockets, the journal's writes and its fsyncs.
//!
//! Run: `cargo bench --bench payment` (`PAYTERM_BENCH_N`, default 1000). Prints figures; asserts
//! nothing about speed (shared machines are noisy), only that every payment was paid.

use std::net::SocketAddr;
use std::time::Instant;

use payterm::config::Config;
use payterm::core::authcode::{AuthCode, default_rules};
use payterm::core::machine::AttemptState;
use payterm::core::money::Amount;
use payterm::engine::{Engine, Gateways, PayRequest, Settings};
use payterm::gateway::{Credential, OrderDetails};
use payterm::journal::Journal;
use payterm::sandbox::{Sandbox, SandboxConfig};

const KEY: &str = "bench-md5-key-0000000000000000";

fn config_text(url: &str) -> String {
    format!(
        r#"
[terminal]
id = "T01"
sandbox = true
device_key_file = "device.key"

[journal]
path = "journal.db"

[limits]
max_amount = "5000.00"
max_open = 100000
max_uncertain = "10000000.00"

[gateways.aggregator]
base_url = "{url}"
agent_id = "130000000000000000"
mch_id = "00000001"
key_file = "agg.key"
op_user_id = "cashier01"
connect_timeout_ms = 1000
timeout_ms = 5000
"#
    )
}

/// This thread's (user, system) CPU seconds.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}

fn pay(engine: &mut Engine, i: u64) -> AttemptState {
    let code = AuthCode::classify(&format!("1345678901{i:08}"), &default_rules()).expect("code");
    let req = PayRequest {
        order_id: None,
        amount: Amount::from_fen(1200),
        credential: Credential::Code(code),
        wallet: None,
        gateway: None,
        details: OrderDetails::default(),
    };
    engine.pay(req, &mut |_, _| {}).expect("pay").machine.state
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing. Either way run.
    let n: u64 = std::env::var("PAYTERM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("agg.key"), format!("{KEY}\n")).expect("key");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sb = Sandbox::new(SandboxConfig::new("130000000000000000", "00000001", KEY));
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let (addr, _server) = rt.block_on(sb.spawn(addr)).expect("sandbox");

    let path = dir.path().join("payterm.toml");
    std::fs::write(&path, config_text(&format!("http://{addr}"))).expect("config");
    let cfg = Config::load(&path).expect("config");
    let mut engine = Engine::new(
        Journal::open(&cfg.journal_path()).expect("journal"),
        Gateways::from_config(&cfg).expect("gateways"),
        Settings::from_config(&cfg).expect("settings"),
    );

    // Warm-up: the first write of a process also syncs the journal's directory, and the
    // allocator and the connection settle.
    for i in 0..20 {
        assert_eq!(pay(&mut engine, i), AttemptState::Paid);
    }
    let (u0, s0) = thread_cpu();
    let t0 = Instant::now();
    for i in 0..n {
        let state = pay(&mut engine, 100 + i);
        assert_eq!(state, AttemptState::Paid, "payment {i}");
    }
    let wall = t0.elapsed().as_secs_f64();
    let (u1, s1) = thread_cpu();
    let per = |s: f64| s * 1e6 / n as f64;
    println!("payment/whole (engine thread, {n} paid payments on loopback):");
    println!(
        "  user CPU   {:>8.1} µs per payment  (payterm code, SQLite, HTTP client)",
        per(u1 - u0)
    );
    println!(
        "  system CPU {:>8.1} µs per payment  (loopback sockets, journal writes, 2 fsyncs)",
        per(s1 - s0)
    );
    println!(
        "  total CPU  {:>8.1} µs per payment",
        per((u1 - u0) + (s1 - s0))
    );
    println!(
        "  wall       {:>8.1} µs per payment  (includes the sandbox and waiting for fsync)",
        per(wall)
    );
}
