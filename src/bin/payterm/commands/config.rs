//! `payterm config check`: every problem of the configuration file and its board profile, each on
//! its own line, exit 1 when any is an error. It reads the file itself instead of Config::load so
//! that a broken file is explained rather than refused; it must not start anything.

use std::path::PathBuf;

use anyhow::anyhow;
use serde_json::json;

use payterm::config::{Config, Severity};

use crate::cli::Cli;
use crate::output::{Fail, Out};

pub(crate) fn check(cli: &Cli, out: &Out) -> Result<u8, Fail> {
    let text = std::fs::read_to_string(&cli.config).map_err(|e| {
        Fail(
            1,
            anyhow!(
                "cannot read {} ({e}) — pass --config FILE or set PAYTERM_CONFIG",
                cli.config.display()
            ),
        )
    })?;
    let file: payterm::config::File = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            out.line(
                format!("error: {}: {e}", cli.config.display()),
                json!({"severity": "error", "message": e.to_string()}),
            );
            return Ok(1);
        }
    };
    let dir = cli
        .config
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let cfg = Config {
        file,
        path: cli.config.clone(),
        dir,
    };
    let mut problems = cfg.problems();
    if let Some(b) = &cfg.file.board {
        match payterm::device::load_board(&cfg.resolve(b)) {
            Ok(board) => {
                for p in payterm::device::check_board(&board) {
                    let field = format!("board {}", board.name);
                    problems.push(match p.severity {
                        payterm::device::board::Severity::Error => {
                            payterm::config::Problem::error(field, p.to_string())
                        }
                        _ => payterm::config::Problem::warning(field, p.to_string()),
                    });
                }
            }
            Err(e) => problems.push(payterm::config::Problem::error("board", e.to_string())),
        }
    }
    for p in &problems {
        out.line(p.to_string(), json!({"severity": if p.severity == Severity::Error { "error" } else { "warning" }, "field": p.field, "message": p.message}));
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    out.line(
        format!("{}: {errors} errors, {} warnings", cli.config.display(), problems.len() - errors),
        json!({"result": if errors == 0 { "ok" } else { "invalid" }, "errors": errors, "warnings": problems.len() - errors}),
    );
    Ok(if errors == 0 { 0 } else { 1 })
}
