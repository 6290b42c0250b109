//! `payterm acp verify` and the ACP pre-authorisation family (`acp preauth…`).

use std::path::Path;

use anyhow::anyhow;

use crate::cli::{AcpCmd, Cli};
use crate::output::{Fail, Out};

pub(crate) fn verify(
    cli: &Cli,
    file: &Path,
    test_chain: Option<&Path>,
    at: Option<&str>,
) -> Result<u8, Fail> {
    let (code, text) =
        payterm::gateway::unionpay::cli::verify_command(&cli.config, file, test_chain, at);
    print!("{text}");
    Ok(code)
}

pub(crate) fn preauth(cli: &Cli, out: &Out, cmd: &AcpCmd) -> Result<u8, Fail> {
    let Some((op, orig, amount, request_no)) = cmd.preauth() else {
        return Err(Fail(1, anyhow!("not a pre-authorisation command")));
    };
    let (code, value, human) = payterm::gateway::unionpay::cli::preauth_command(
        &cli.config,
        cli.journal.as_deref(),
        op,
        &orig,
        amount,
        request_no.clone(),
    );
    out.line(human, value);
    Ok(code)
}
