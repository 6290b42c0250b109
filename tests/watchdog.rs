//! The systemd watchdog, played by the test: `NOTIFY_SOCKET` is a unix datagram socket bound
//! here and `WATCHDOG_USEC` 4 s. Against a gateway that accepts connections and answers
//! nothing (each request holds for the production 15 s timeout), with unsettled attempts for
//! recovery to chew on, a healthy daemon must keep pinging: no gap between WATCHDOG=1
//! datagrams longer than the interval. SIGTERM then stops it within systemd's 45 s.

mod common;

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{Env, code, free_port};

#[test]
fn the_watchdog_is_fed_while_every_loop_waits_on_a_silent_gateway() {
    let env = Env::start_with_hang(20_000);
    for k in 0..3 {
        let (_, _, out) = env.run_env(
            &["pay", "--amount", "3.00", "--code", &code(800 + k)],
            &[("PAYTERM_FAILPOINT", "C1")],
        );
        assert_eq!(out.status.signal(), Some(libc::SIGABRT));
    }
    env.edit_config("connect_timeout_ms = 300", "connect_timeout_ms = 5000");
    env.edit_config("timeout_ms = 2000", "timeout_ms = 15000");
    env.faults(r#"{"down": true}"#);

    let sock_path = env.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let interval = Duration::from_secs(4);
    let mut d = env.spawn_daemon_with(
        free_port(),
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "4000000"),
        ],
    );

    let started = Instant::now();
    let mut ready_at = None;
    let mut pings: Vec<Instant> = Vec::new();
    let mut buf = [0u8; 512];
    // Until READY=1 (bounded), then 15 s of pings.
    loop {
        let now = Instant::now();
        match ready_at {
            None if now - started > Duration::from_secs(10) => panic!("no READY=1 in 10 s"),
            Some(r) if now - r > Duration::from_secs(15) => break,
            _ => {}
        }
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if msg.contains("READY=1") && ready_at.is_none() {
            ready_at = Some(Instant::now());
        }
        if msg.lines().any(|l| l == "WATCHDOG=1") {
            pings.push(Instant::now());
        }
    }
    let ready_at = ready_at.unwrap();
    let end = Instant::now();
    // Gaps between consecutive pings, and from READY to the first and from the last to the end.
    let mut marks = vec![ready_at];
    marks.extend(pings.iter().copied().filter(|&p| p >= ready_at));
    marks.push(end);
    let largest = marks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "READY after {:?}; {} pings in 15 s; largest gap {largest:?}",
        ready_at - started,
        pings.len()
    );
    assert!(
        largest <= interval,
        "a watchdog gap of {largest:?} (interval {interval:?})"
    );

    let t = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(45))
        .expect("the daemon exits within 45 s of SIGTERM");
    let took = t.elapsed();
    eprintln!("SIGTERM with recovery waiting on a silent gateway: exited in {took:?}");
    assert!(status.success(), "{status:?}");
    env.assert_integrity();
}
