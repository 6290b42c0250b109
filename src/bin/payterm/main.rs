//! The `payterm` command line (DESIGN.md §4). Parsing, wiring and printing only: every command
//! calls the library and maps its result to an exit code — 0 done, 1 bad input or configuration,
//! 2 declined or failed (no money moved), 3 outcome unknown (journaled, settled by recovery).
//!
//! This file parses, sets up logging, dispatches to commands/ and turns the result into the
//! process's exit code. It must not do a command's work: the grammar is cli.rs's, printing
//! output.rs's, configuration and engine wiring context.rs's.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod context;
mod output;

use cli::{AcpCmd, Cli, Cmd, ConfigCmd};
use output::{Fail, Out};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version are not errors; any other usage mistake is bad input (exit 1).
            let code = if e.use_stderr() { 1 } else { 0 };
            // A tool that asked for JSON reads stdout only: it gets the refusal there too.
            if code == 1 && std::env::args().any(|a| a == "--json") {
                let text = e.to_string();
                let words: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.starts_with("Usage:"))
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                output::print_error(words.join(" ").trim_start_matches("error: "), code);
            }
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The daemon logs its addresses and every payment's state changes by default (journald
    // under systemd); a one-shot command only warnings, its result is on stdout.
    let level = match cli.cmd {
        Cmd::Sandbox { .. } => "info",
        Cmd::Run { .. } => "warn,payterm=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAYTERM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // journald stores escape codes verbatim: colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let json = cli.json;
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, e)) => {
            eprintln!("payterm: {e:#}");
            // With --json every command ends with a `result` object, refusals included.
            if json {
                output::print_error(&format!("{e:#}"), code);
            }
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Fail> {
    use commands::*;
    let out = Out { json: cli.json };
    let cli = &cli;
    let out = &out;
    match &cli.cmd {
        Cmd::Sandbox { listen, hang_ms } => sandbox::run(cli, out, *listen, *hang_ms),
        Cmd::Demo { listen, state } => daemon::demo(listen, state),
        Cmd::Run {
            ecr_listen,
            mirror_listen,
        } => daemon::run(cli, ecr_listen, mirror_listen),
        Cmd::Render {
            screen,
            size,
            locale,
            out: path,
        } => misc::render(out, screen, size, locale, path),
        Cmd::ScanTest => misc::scan_test(cli),
        Cmd::Pay {
            amount,
            code,
            order,
            gateway,
            details,
        } => pay::pay(cli, out, amount, code, order, gateway, details),
        Cmd::FacePay {
            amount,
            face_code,
            openid,
            wallet,
            order,
            details,
        } => pay::face_pay(cli, out, amount, face_code, openid, wallet, order, details),
        Cmd::QrPay {
            amount,
            wallet,
            order,
            notify_url,
            details,
        } => pay::qr_pay(cli, out, amount, wallet, order, notify_url, details),
        Cmd::Query { order } => query::run(cli, out, order),
        Cmd::Cancel { order } => cancel::run(cli, out, order),
        Cmd::Refund {
            order,
            amount,
            refund_id,
        } => refund::refund(cli, out, order, amount, refund_id),
        Cmd::RefundQuery { refund_id } => refund::refund_query(cli, out, refund_id),
        Cmd::Recover { max_wait_ms } => recover::run(cli, out, *max_wait_ms),
        Cmd::Journal { cmd } => journal::run(cli, out, cmd),
        Cmd::Config {
            cmd: ConfigCmd::Check { online },
        } => config::check(cli, out, *online),
        Cmd::Acp {
            cmd:
                AcpCmd::Verify {
                    file,
                    test_chain,
                    at,
                },
        } => acp::verify(cli, file, test_chain.as_deref(), at.as_deref()),
        Cmd::Acp { cmd } => acp::preauth(cli, out, cmd),
        Cmd::Reconcile { date } => reconcile::run(cli, date),
        Cmd::Contract { cmd } => contract::run(cli, out, cmd),
        Cmd::Chinaums { cmd } => chinaums::run(cli, out, cmd),
        Cmd::MerchantInfo => merchant::run(cli, out, &cli::MerchantCmd::Info),
        Cmd::Merchant { cmd } => merchant::run(cli, out, cmd),
        Cmd::Miniprogram { cmd } => merchant::miniprogram(cli, out, cmd),
        Cmd::Shift { cmd } => shift::run(cli, out, cmd),
        Cmd::Totals { shift, day } => shift::totals(cli, out, *shift, day.as_deref()),
        Cmd::Receipt {
            order,
            width,
            out: file,
        } => receipt::run(cli, out, order, *width, file.as_deref()),
    }
}
