//! `payterm demo`: a whole simulated terminal in one process — the sandbox gateways, the daemon
//! on the `sim` board (simulated scanner and face module), and the screen mirrored as a web page.
//!
//! Everything lives in a fresh state folder (journal, keys) and listens on loopback only. The
//! demo is the real daemon with a generated configuration; nothing in it is special-cased.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::sandbox::{Sandbox, SandboxConfig};

const BOARD: &str = include_str!("../../board/sim.toml");

/// The sandbox clock runs this much faster, so its 15 s cancel rule takes 5 s of waiting.
const CLOCK_RATE: f64 = 3.0;

fn config(dir: &Path, url: &str, ecr: &str) -> String {
    format!(
        r#"board = "board.toml"

[terminal]
id = "DEMO1"
merchant_name = "payterm 演示商户"
sandbox = true
locale = "zh"

[journal]
path = "{journal}"

[gateways.aggregator]
base_url = "{url}"
agent_id = "130000000000000000"
mch_id = "00000001"
key_file = "aggregator.key"
op_user_id = "cashier01"
store_id = "demo-store"
store_name = "演示门店"
device_id = "DEMO1"
notify_url = "{ecr}/notify/aggregator"
connect_timeout_ms = 1000
timeout_ms = 4000

[gateways.aggregator.policy]
query_delays_ms = [1000]
pay_deadline_ms = 8000
reverse_not_before_ms = 5000
reverse_window = {{ kind = "after", ms = 100000 }}
reverse_retry_ms = [1000, 2000]
reverse_tries_before_saf = 4
saf_base_ms = 5000
saf_cap_ms = 30000
after_window = "refund"
review_after_ms = 86400000
# The sandbox's clock runs fast, so its 5-minute cancel window is 100 s here: a QR code is
# shown for 60 s, and an unpaid one is still cancelled inside the window.
qr_wait_ms = 60000
# The demo's sandbox has no lagging order store: "no such order" is believed after 20 s.
not_found_final_after_ms = 20000

[recovery]
interval_ms = 5000
rate_per_s = 5.0

[ecr]
listen = "{ecr_addr}"
"#,
        journal = dir.join("journal.db").display(),
        ecr_addr = ecr.trim_start_matches("http://"),
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the demo until Ctrl-C. `mirror` is where the screen is served.
pub async fn demo(mirror: String, state: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = match state {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("payterm-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = {
        use rand::RngCore;
        let mut k = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut k);
        hex::encode(k)
    };
    std::fs::write(dir.join("aggregator.key"), &key)?;
    std::fs::write(dir.join("board.toml"), BOARD)?;

    let sandbox = Sandbox::new(SandboxConfig::new("130000000000000000", "00000001", &key));
    sandbox.lock().clock.set_rate(CLOCK_RATE);
    let (sb_addr, _sb) = sandbox.clone().spawn("127.0.0.1:0".parse()?).await?;
    let sandbox_url = format!("http://{sb_addr}");
    let ecr = format!("http://127.0.0.1:{}", free_port()?);
    let cfg_path = dir.join("payterm.toml");
    std::fs::write(&cfg_path, config(&dir, &sandbox_url, &ecr))?;

    let mirror_listen = match std::net::TcpListener::bind(&mirror) {
        Ok(l) => {
            drop(l);
            mirror
        }
        Err(_) => "127.0.0.1:0".to_string(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let opts = super::RunOptions {
        mirror_listen: Some(mirror_listen),
        ..Default::default()
    };
    let printer = tokio::spawn(async move {
        if let Ok(s) = rx.await {
            print_welcome(&s, &sandbox_url, &dir);
        }
    });
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let r = super::run(cfg_path, opts, Some(tx), stop).await;
    printer.abort();
    println!("payterm demo stopped.");
    r
}

fn print_welcome(s: &super::Serving, sandbox: &str, dir: &Path) {
    let mirror = s.mirror.clone().unwrap_or_default();
    println!(
        r#"
payterm demo — a whole terminal on the built-in sandbox (loopback only; Ctrl-C stops)

  Screen (web mirror):  {mirror}
      Type an amount on the keypad and press Enter, then type a payment code in the box and
      press Scan — it goes through the simulated scanner, just as a real scan would.
  Cash-register API:    {ecr}
      curl -s -X POST {ecr}/v1/payments -d '{{"order_id":"A1001","amount":"12.00","code":"134567890123456789"}}'
      curl -s {ecr}/v1/payments/A1001        curl -N {ecr}/v1/events
  Sandbox ledger:       {sandbox}/_sandbox/ledger
  State folder:         {dir}

  Payment codes: WeChat 134567890123456789 · Alipay 284567890123456789 · UnionPay 6234567890123456789
  (each code pays once within two minutes: change a digit for the next sale)

  The amount's last two digits choose what the sandbox does:
    .51 declined        .52 password, then paid     .53 never confirmed → cancelled
    .54 reply lost, but paid → settled by a query   .55 reply lost, never created → closed
    .56 tampered reply → confirmed by a query        .57 system error → paid when queried
    .58 paid; a cancel needs retries                 anything else: paid at once
"#,
        ecr = s.ecr,
        dir = dir.display(),
    );
}
