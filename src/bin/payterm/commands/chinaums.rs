//! `payterm chinaums …`.

use crate::cli::{ChinaumsCmd, Cli};
use crate::output::{Fail, Out};

pub(crate) fn run(cli: &Cli, out: &Out, cmd: &ChinaumsCmd) -> Result<u8, Fail> {
    use payterm::gateway::chinaums::cli::{BillOp, bill_command};
    let (op, bill) = match cmd {
        ChinaumsCmd::PreauthCancel(b) => (BillOp::PreAuthCancel, b),
        ChinaumsCmd::PreauthComplete { bill, amount } => (
            BillOp::PreAuthComplete {
                amount: amount.clone(),
            },
            bill,
        ),
        ChinaumsCmd::PreauthCompleteCancel(b) => (BillOp::PreAuthCompleteCancel, b),
        ChinaumsCmd::BillQuery(b) => (BillOp::Query, b),
    };
    let (code, value, human) = bill_command(
        &cli.config,
        cli.journal.as_deref(),
        op,
        bill.to_ref(),
        bill.request_no.clone(),
    );
    out.line(human, value);
    Ok(code)
}
