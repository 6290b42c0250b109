//! The small commands that call one library function each: `render` (a sample screen to PNG),
//! `scan-test` (what the scanners decode). They share no state; each stays a few lines of
//! wiring and must not grow logic of its own.

use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use crate::cli::Cli;
use crate::context::load;
use crate::output::{Fail, Out};

pub(crate) fn render(
    out: &Out,
    screen: &str,
    size: &str,
    locale: &str,
    path: &Path,
) -> Result<u8, Fail> {
    if screen == "list" {
        for n in payterm::ui::SAMPLE_NAMES {
            println!("{n}");
        }
        return Ok(0);
    }
    let size = payterm::ui::parse_size(size)?;
    let locale: payterm::ui::model::Locale = locale.parse()?;
    payterm::ui::render_sample_to_file(screen, size, locale, path)?;
    out.line(
        format!("wrote {}", path.display()),
        json!({"result": "ok", "file": path}),
    );
    Ok(0)
}

pub(crate) fn scan_test(cli: &Cli) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let b = cfg
        .file
        .board
        .as_ref()
        .ok_or_else(|| anyhow!("the configuration names no board profile"))?;
    let board = payterm::device::load_board(&cfg.resolve(b))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = rt.block_on(payterm::device::scan_test(
        &board,
        std::io::stdout(),
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    ))?;
    eprintln!("{summary:?}");
    Ok(0)
}
