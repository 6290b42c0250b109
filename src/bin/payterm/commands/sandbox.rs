//! `payterm sandbox`: the sandbox gateways alone on loopback, with the credentials of the
//! configuration so a real configuration can talk to them. It only wires payterm::sandbox to a
//! runtime and to Ctrl-C/SIGTERM; the gateways' behaviour is the library's.

use anyhow::anyhow;
use serde_json::json;

use crate::cli::Cli;
use crate::context::load;
use crate::output::{Fail, Out};

pub(crate) fn run(
    cli: &Cli,
    out: &Out,
    listen: std::net::SocketAddr,
    hang_ms: u64,
) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let a = cfg.file.gateways.aggregator.clone().ok_or_else(|| {
        anyhow!("the sandbox needs [gateways.aggregator] in the configuration for its credentials")
    })?;
    let key = cfg.read_secret("aggregator key", &a.key_file)?;
    let mut sc = payterm::sandbox::SandboxConfig::new(&a.agent_id, &a.mch_id, &key);
    sc.hang_ms = hang_ms;
    if let Some(c) = &cfg.file.gateways.chinaums {
        let mut u = payterm::sandbox::chinaums::UmsSandboxConfig::builtin();
        u.app_id = c.app_id.clone();
        u.app_key = cfg.read_secret("ChinaUMS AppKey", &c.app_key_file)?;
        u.merchant_code = c.merchant_code.clone();
        u.terminal_code = c.terminal_code.clone();
        if let Some(b) = &c.bills {
            u.bills_mid = b.mid.clone();
            u.bills_tid = b.tid.clone();
        }
        sc.chinaums = Some(u);
    }
    if let Some(c) = &cfg.file.gateways.upapi {
        let mut u = payterm::sandbox::upapi::UpapiSandboxConfig::builtin();
        u.app_id = c.app_id.clone();
        u.secret = cfg.read_secret("云闪付 secret", &c.secret_file)?;
        u.symmetric_key_hex = cfg.read_secret("云闪付 symmetricKey", &c.symmetric_key_file)?;
        u.plan_id = c.plan_id.clone();
        sc.upapi = Some(u);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sb = payterm::sandbox::Sandbox::new(sc);
        let (addr, handle) = sb
            .spawn(listen)
            .await
            .map_err(|e| Fail(1, anyhow!("cannot listen on {listen}: {e}")))?;
        out.line(
            format!("sandbox gateways on http://{addr} (ledger: /_sandbox/ledger); Ctrl-C stops"),
            json!({"event": "listening", "url": format!("http://{addr}")}),
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
            _ = handle => {}
        }
        Ok::<u8, Fail>(0)
    })
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}
