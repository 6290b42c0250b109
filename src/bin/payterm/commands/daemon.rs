//! `payterm demo` and `payterm run`: the long-running terminal, simulated or for real. Each builds
//! the runtime and hands over to payterm::daemon; nothing of the daemon's behaviour is decided
//! here, so that systemd's `payterm run` and the library's tests start the same daemon.

use std::path::PathBuf;

use crate::cli::Cli;
use crate::output::Fail;

pub(crate) fn demo(listen: &str, state: &Option<PathBuf>) -> Result<u8, Fail> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(payterm::daemon::demo::demo(
        listen.to_string(),
        state.clone(),
    ))?;
    Ok(0)
}

pub(crate) fn run(
    cli: &Cli,
    ecr_listen: &Option<String>,
    mirror_listen: &Option<String>,
) -> Result<u8, Fail> {
    let opts = payterm::daemon::RunOptions {
        ecr_listen: ecr_listen.clone(),
        mirror_listen: mirror_listen.clone(),
        journal: cli.journal.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(payterm::daemon::run(
        cli.config.clone(),
        opts,
        None,
        std::future::pending(),
    ))?;
    Ok(0)
}
