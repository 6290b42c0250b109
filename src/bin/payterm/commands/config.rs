//! `payterm config check [--online]`: every problem of the configuration file and its board
//! profile, each on its own line, exit 1 when any is an error. It reads the file itself instead
//! of Config::load so that a broken file is explained rather than refused; it must not start
//! anything. `--online` adds one signed GetMchInfo per aggregator, which moves no money.

use std::path::PathBuf;

use anyhow::anyhow;
use serde_json::json;

use payterm::config::{Config, Problem, Severity};

use crate::cli::Cli;
use crate::output::{Fail, Out};

pub(crate) fn check(cli: &Cli, out: &Out, online: bool) -> Result<u8, Fail> {
    let text = std::fs::read_to_string(&cli.config).map_err(|e| {
        Fail(
            1,
            anyhow!(
                "cannot read {} ({e}) — pass --config FILE or set PAYTERM_CONFIG",
                cli.config.display()
            ),
        )
    })?;
    // Every unknown key at once; the rest of the file is still checked when it loads without them.
    let (mut problems, file) = payterm::config::parse_lenient(&text);
    let file = match file {
        Ok(f) => f,
        Err(e) => {
            for p in &problems {
                print_problem(out, p);
            }
            out.line(
                format!("error: {}: {e}", cli.config.display()),
                json!({"severity": "error", "message": e}),
            );
            out.line(
                format!("{}: the file cannot be loaded", cli.config.display()),
                json!({"result": "invalid", "errors": problems.len() + 1, "exit": 1}),
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
    problems.extend(cfg.problems());
    if let Some(b) = &cfg.file.board {
        match payterm::device::load_board(&cfg.resolve(b)) {
            Ok(board) => {
                for p in payterm::device::check_board(&board) {
                    let field = format!("board {}", board.name);
                    problems.push(match p.severity {
                        payterm::device::board::Severity::Error => {
                            Problem::error(field, p.to_string())
                        }
                        _ => Problem::warning(field, p.to_string()),
                    });
                }
            }
            Err(e) => problems.push(Problem::error("board", e.to_string())),
        }
    }
    if online {
        problems.extend(check_online(&cfg));
    }
    for p in &problems {
        print_problem(out, p);
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let exit = if errors == 0 { 0 } else { 1 };
    out.line(
        format!("{}: {errors} errors, {} warnings", cli.config.display(), problems.len() - errors),
        json!({"result": if errors == 0 { "ok" } else { "invalid" }, "errors": errors, "warnings": problems.len() - errors, "online": online, "exit": exit}),
    );
    Ok(exit)
}

fn print_problem(out: &Out, p: &Problem) {
    out.line(p.to_string(), json!({"severity": if p.severity == Severity::Error { "error" } else { "warning" }, "field": p.field, "message": p.message}));
}

/// One signed GetMchInfo per aggregator; its failure, explained, is an error.
fn check_online(cfg: &Config) -> Vec<Problem> {
    let field = "gateways.aggregator (online)";
    let Some(a) = cfg.file.gateways.aggregator.clone() else {
        return vec![];
    };
    // An unreadable key is already an offline error of its own.
    let Ok(key) = cfg.read_secret("aggregator key", &a.key_file) else {
        return vec![Problem::error(field, "not checked: the key cannot be read")];
    };
    let url = a.base_url.clone();
    let agg = payterm::gateway::aggregator::Aggregator::new(a, key);
    match agg.check_online() {
        Ok(m) => {
            // On stderr: stdout stays one line per problem, then the result.
            eprintln!(
                "ok: {url} answered a signed GetMchInfo: merchant {} {}",
                m.mch_id, m.full_name
            );
            vec![]
        }
        Err(e) => vec![Problem::error(field, e.to_string())],
    }
}
