//! Shared harness for the end-to-end tests: a real `payterm sandbox` on a random loopback port,
//! a configuration with short timers pointing at it, and helpers that run the real binary and
//! compare the terminal's journal with the sandbox's ledger.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod upapi;

pub const BIN: &str = env!("CARGO_BIN_EXE_payterm");

/// The sandbox clock runs this much faster than real time, so its 15 s / 5 min cancel window
/// is 375 ms / 7.5 s here; the terminal's own timers below are scaled to match.
pub const RATE: f64 = 40.0;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub url: String,
    sandbox: Child,
}

pub fn config_text(url: &str, journal: &str) -> String {
    format!(
        r#"
board = "{board}"

[terminal]
id = "T01"
merchant_name = "测试商户"
sandbox = true
device_key_file = "device.key"

[journal]
path = "{journal}"

[limits]
max_amount = "5000.00"
max_open = 1000
max_uncertain = "1000000.00"
max_open_age_s = 86400

[gateways.aggregator]
base_url = "{url}"
agent_id = "130000000000000000"
mch_id = "00000001"
key_file = "agg.key"
op_user_id = "cashier01"
connect_timeout_ms = 300
timeout_ms = 2000

[gateways.aggregator.policy]
query_delays_ms = [200]
pay_deadline_ms = 1200
reverse_not_before_ms = 400
reverse_window = {{ kind = "after", ms = 7000 }}
reverse_retry_ms = [100, 200]
reverse_tries_before_saf = 3
saf_base_ms = 500
saf_cap_ms = 4000
after_window = "refund"
review_after_ms = 86400000
not_found_final_after_ms = 3000
qr_wait_ms = 6000

[recovery]
interval_ms = 500
rate_per_s = 50.0

[ecr]
listen = "127.0.0.1:0"
"#,
        board = concat!(env!("CARGO_MANIFEST_DIR"), "/board/sim.toml"),
    )
}

impl Env {
    pub fn start() -> Env {
        Env::start_with_hang(2_500)
    }

    /// [`Env::start`] with a sandbox that holds an unanswered request `hang_ms` before dropping
    /// it (2.5 s by default; longer than the production 15 s timeout makes a silent gateway).
    pub fn start_with_hang(hang_ms: u64) -> Env {
        let hang = hang_ms.to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("agg.key"),
            "e2e-test-md5-key-00000000000000\n",
        )
        .unwrap();
        // The sandbox reads the credentials from a configuration too.
        let boot = dir.path().join("boot.toml");
        std::fs::write(&boot, config_text("http://127.0.0.1:1", "boot.db")).unwrap();
        let mut sandbox = Command::new(BIN)
            .args(["--json", "--config"])
            .arg(&boot)
            .args(["sandbox", "--listen", "127.0.0.1:0", "--hang-ms", &hang])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the sandbox");
        let mut line = String::new();
        BufReader::new(sandbox.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("sandbox prints its URL");
        let v: Value = serde_json::from_str(&line).expect("json line");
        let url = v["url"].as_str().expect("url").to_string();
        let config = dir.path().join("payterm.toml");
        std::fs::write(&config, config_text(&url, "journal.db")).unwrap();
        let env = Env {
            dir,
            config,
            url,
            sandbox,
        };
        env.post("/_sandbox/clock", &format!(r#"{{"rate": {RATE}}}"#));
        env
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("PAYTERM_CONFIG", &self.config)
            .env_remove("PAYTERM_JOURNAL");
        c
    }

    /// Runs `payterm ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run payterm")
    }

    /// Runs `payterm --json ARGS` and returns (exit code, the final JSON line).
    pub fn run_json(&self, args: &[&str]) -> (i32, Value, Output) {
        let out = self
            .cmd()
            .arg("--json")
            .args(args)
            .output()
            .expect("run payterm");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.contains("\"result\""))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), last, out)
    }

    pub fn pay(&self, amount: &str, code: &str) -> (i32, Value) {
        let (c, v, out) = self.run_json(&["pay", "--amount", amount, "--code", code]);
        assert!(
            c != 101,
            "payterm panicked: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (c, v)
    }

    pub fn get(&self, path: &str) -> Value {
        let mut r = ureq::get(&format!("{}{path}", self.url))
            .call()
            .expect("sandbox GET");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    pub fn post(&self, path: &str, body: &str) -> Value {
        let mut r = ureq::post(&format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("sandbox POST");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null)
    }

    pub fn ledger(&self) -> Value {
        self.get("/_sandbox/ledger")
    }

    pub fn ledger_order(&self, out_trade_no: &str) -> Option<Value> {
        self.ledger()["orders"]
            .as_array()?
            .iter()
            .find(|o| o["out_trade_no"] == out_trade_no)
            .cloned()
    }

    /// Every attempt in the journal, with history and refunds (the export's `preauth` lines
    /// are left out).
    pub fn journal(&self) -> Vec<Value> {
        let out = self.run(&["journal", "export"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("attempt").is_some())
            .collect()
    }

    /// The journal's and the ledger's view of the money must agree on every order, and the
    /// invariants of RELIABILITY.md §8 that can be checked from outside must hold.
    pub fn assert_consistent(&self, settled: bool) {
        let journal = self.journal();
        let ledger = self.ledger();
        let mut paid_per_order = std::collections::HashMap::<String, usize>::new();
        for e in &journal {
            let a = &e["attempt"];
            let no = a["out_trade_no"].as_str().unwrap();
            let state = a["state"].as_str().unwrap();
            let amount = a["amount"].as_u64().unwrap();
            let refunded: u64 = e["refunds"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["state"] == "DONE")
                .map(|r| r["amount"].as_u64().unwrap())
                .sum();
            if state == "PAID" {
                *paid_per_order
                    .entry(a["order_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            let order = ledger["orders"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["out_trade_no"] == no);
            let ledger_net = order.map(|o| o["net_fen"].as_u64().unwrap()).unwrap_or(0);
            match state {
                "PAID" => assert_eq!(
                    ledger_net,
                    amount - refunded,
                    "{no}: journal PAID, ledger {order:?}"
                ),
                "FAILED" | "REVERSED" => {
                    let fence_refund = e["refunds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r["kind"] == "fence");
                    if !fence_refund {
                        assert_eq!(ledger_net, 0, "{no}: journal {state}, ledger {order:?}")
                    } else {
                        assert_eq!(
                            ledger_net, 0,
                            "{no}: refunded after the window, ledger {order:?}"
                        )
                    }
                }
                other => assert!(!settled, "{no} is still {other} after settling"),
            }
        }
        // I1: at most one PAID per order.
        assert!(
            paid_per_order.values().all(|&n| n == 1),
            "{paid_per_order:?}"
        );
        // I3: the gateway never saw an order number the journal does not know.
        let known: std::collections::HashSet<&str> = journal
            .iter()
            .map(|e| e["attempt"]["out_trade_no"].as_str().unwrap())
            .collect();
        for o in ledger["orders"].as_array().unwrap() {
            let no = o["out_trade_no"].as_str().unwrap();
            assert!(
                known.contains(no),
                "the sandbox saw {no}, which the journal does not know"
            );
        }
    }

    /// I5: no full payment code in the journal's files.
    pub fn assert_no_secret(&self, secret: &str) {
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains(secret),
                "{} contains a full payment code",
                entry.path().display()
            );
        }
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.sandbox.kill();
        let _ = self.sandbox.wait();
    }
}

/// A WeChat-shaped payment code, unique per call within a test.
pub fn code(n: u32) -> String {
    format!("1345678901{n:08}")
}

// ---- helpers for the crash, partition and soak tests (issue 3) ----

impl Env {
    /// The journal file of this environment.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal.db")
    }

    /// Runs `payterm --json ARGS` with extra environment (a fail point, say), in the temporary
    /// directory so anything the process leaves behind (a core file) is inside what I5 checks.
    /// No fail point is inherited from the test's own environment.
    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> (i32, Value, Output) {
        let mut c = self.cmd();
        c.env_remove("PAYTERM_FAILPOINT")
            .current_dir(self.dir.path());
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.arg("--json").args(args).output().expect("run payterm");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.contains("\"result\""))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), last, out)
    }

    /// `payterm recover`; returns its exit code (0 settled, 3 something still open).
    pub fn recover(&self) -> i32 {
        let (c, v, out) = self.run_env(&["recover", "--max-wait-ms", "3000"], &[]);
        assert!(
            c == 0 || c == 3,
            "recover exited {c}: {v} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    }

    /// Recovers until nothing is open (at most `rounds` passes, 400 ms apart as the daemon's
    /// store-and-forward timer would space them); returns whether it settled.
    pub fn recover_until_settled(&self, rounds: usize) -> bool {
        (0..rounds).any(|k| {
            if k > 0 {
                std::thread::sleep(Duration::from_millis(400));
            }
            self.recover() == 0
        })
    }

    /// Sets the sandbox's injected faults (a JSON object of `sandbox::Faults`).
    pub fn faults(&self, json: &str) {
        self.post("/_sandbox/faults", json);
    }

    /// Moves the sandbox's clock forward.
    pub fn advance_sandbox_clock(&self, ms: i64) {
        self.post("/_sandbox/clock", &format!(r#"{{"advance_ms": {ms}}}"#));
    }

    /// Everything recovery could change: the journal (rows, histories, refunds) and the ledger.
    pub fn snapshot(&self) -> (Vec<Value>, Value) {
        (self.journal(), self.ledger())
    }

    /// I7: the journal passes `PRAGMA integrity_check`.
    pub fn assert_integrity(&self) {
        let conn = rusqlite::Connection::open(self.journal_path()).expect("open the journal");
        let r: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(r, "ok", "I7: the journal is damaged");
    }

    /// The journal entry (attempt, history, refunds) with this out_trade_no or amount in fen.
    pub fn journal_entry(&self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.journal().into_iter().find(|e| pred(&e["attempt"]))
    }
}

impl Env {
    /// Rewrites part of the terminal's configuration (the next `payterm` run reads it).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "the configuration has no {from:?}");
        std::fs::write(&self.config, text.replace(from, to)).unwrap();
    }

    /// Sets how much faster than real time the sandbox's clock runs.
    pub fn sandbox_rate(&self, rate: f64) {
        self.post("/_sandbox/clock", &format!(r#"{{"rate": {rate}}}"#));
    }
}

// ---- the daemon under test, for the kill soak and the signal tests ----

/// A loopback port that was free a moment ago (the daemon's ECR API keeps it across restarts,
/// so clients find it again).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `payterm run` of an environment.
pub struct Daemon {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, the ECR API.
    pub ecr: String,
}

impl Env {
    /// Starts `payterm run` with its ECR API on `port` (stderr to `daemon-N.log` in the test's
    /// directory, so a failing test can show it). Does not wait for it to be ready.
    pub fn spawn_daemon(&self, port: u16) -> Daemon {
        self.spawn_daemon_with(port, &[])
    }

    /// [`Env::spawn_daemon`] with extra environment (systemd's `NOTIFY_SOCKET`, say).
    pub fn spawn_daemon_with(&self, port: u16, envs: &[(&str, &str)]) -> Daemon {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::fs::File::create(self.dir.path().join(format!("daemon-{n}.log")))
            .expect("daemon log");
        let mut cmd = self.cmd();
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .env_remove("PAYTERM_FAILPOINT")
            .env("PAYTERM_LOG", "warn")
            .current_dir(self.dir.path())
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
            .expect("start payterm run");
        Daemon {
            child,
            ecr: format!("http://127.0.0.1:{port}"),
        }
    }
}

/// An HTTP client for the ECR API that returns 4xx/5xx as values and gives up after `timeout`.
pub fn ecr_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build(),
    )
}

/// One ECR call: `Ok((status, body))`, or `Err` when the daemon could not be reached or did not
/// answer (which a cash register must treat as "unknown").
pub fn ecr_call(
    agent: &ureq::Agent,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let r = match body {
        Some(b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
        None => agent.get(url).call(),
    };
    let mut r = r.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

impl Daemon {
    /// Waits until the daemon takes payments (start-up recovery done); false on timeout or exit.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let agent = ecr_agent(Duration::from_secs(2));
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Ok((200, _)) = ecr_call(&agent, &format!("{}/v1/health", self.ecr), None) {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends a signal (`libc::SIGTERM`, `libc::SIGKILL` …) to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the daemon to exit; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if t.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

impl Env {
    /// I5 for many codes at once: none of `secrets` appears in any file of the test's directory
    /// (journal, WAL, logs).
    pub fn assert_no_secrets(&self, secrets: &[String]) {
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            let hay = String::from_utf8_lossy(&bytes);
            for s in secrets {
                assert!(
                    !hay.contains(s.as_str()),
                    "{} contains a full payment code",
                    entry.path().display()
                );
            }
        }
    }
}
