//! `payterm reconcile DATE`.

use crate::cli::Cli;
use crate::output::Fail;

pub(crate) fn run(cli: &Cli, date: &str) -> Result<u8, Fail> {
    let (code, text) = payterm::gateway::unionpay::cli::reconcile_command(
        &cli.config,
        cli.journal.as_deref(),
        date,
    );
    print!("{text}");
    Ok(code)
}
