//! `payterm chinaums …`: the ChinaUMS netpay bills pre-authorisation family, moved out of the
//! library's gateway so that the gateway does not reach up into the engine and the journal.
//!
//! Each command loads the configuration, builds the client and runs one call, answering with an
//! exit code (0 done, 1 bad input or configuration, 2 refused by ChinaUMS, 3 outcome unknown), a
//! JSON value and a sentence. The three operations that move money must go through
//! engine::preauth: journaled before sending, resolved by `payterm recover` when the reply is
//! lost, never sent twice under one request number; `bill-query` only reads.

use std::path::Path;

use serde_json::{Value, json};

use payterm::core::money::Amount;
use payterm::gateway::chinaums::{BillResult, ChinaUms, PreAuthRef, UmsError};

use crate::cli::{ChinaumsCmd, Cli};
use crate::commands::preauth::command_result;
use crate::output::{Fail, Out};

pub(crate) fn run(cli: &Cli, out: &Out, cmd: &ChinaumsCmd) -> Result<u8, Fail> {
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

/// Which bills call to make.
#[derive(Clone, Debug)]
pub(crate) enum BillOp {
    PreAuthCancel,
    PreAuthComplete { amount: String },
    PreAuthCompleteCancel,
    Query,
}

impl BillOp {
    fn name(&self) -> &'static str {
        match self {
            BillOp::PreAuthCancel => "preauth-cancel",
            BillOp::PreAuthComplete { .. } => "preauth-complete",
            BillOp::PreAuthCompleteCancel => "preauth-complete-cancel",
            BillOp::Query => "bill-query",
        }
    }
}

fn client(config: &Path) -> Result<ChinaUms, String> {
    let cfg = payterm::config::Config::load(config).map_err(|e| e.to_string())?;
    let c = cfg
        .file
        .gateways
        .chinaums
        .clone()
        .ok_or("no [gateways.chinaums] is configured")?;
    ChinaUms::from_config(&cfg, &c).map_err(|e| e.to_string())
}

/// Runs one bills call; `journal` overrides the configured journal, `request_no` is our number
/// for the operation (a new one when absent).
pub(crate) fn bill_command(
    config: &Path,
    journal: Option<&Path>,
    op: BillOp,
    r: PreAuthRef,
    request_no: Option<String>,
) -> (u8, Value, String) {
    let name = op.name();
    let fail = |code: u8, why: String| {
        (
            code,
            json!({"result": "error", "op": name, "error": why, "exit": code}),
            format!("{name}: {why}"),
        )
    };
    if let Err(e) = r.check() {
        return fail(1, e.to_string());
    }
    if !matches!(op, BillOp::Query) {
        return journaled(config, journal, name, &op, &r, request_no);
    }
    let ums = match client(config) {
        Ok(c) => c,
        Err(e) => return fail(1, e),
    };
    let res: Result<BillResult, UmsError> = match &op {
        BillOp::PreAuthCancel => ums.preauth_cancel(&r),
        BillOp::PreAuthComplete { amount } => match Amount::parse_yuan(amount) {
            Ok(a) => ums.preauth_complete(&r, a),
            Err(e) => return fail(1, e.to_string()),
        },
        BillOp::PreAuthCompleteCancel => ums.preauth_complete_cancel(&r),
        BillOp::Query => ums.bill_query(&r),
    };
    match res {
        Ok(b) => (
            0,
            json!({"result": "ok", "op": name, "bill": r, "bill_status": b.bill_status, "status": b.status, "total_fen": b.total_fen, "target_order_id": b.target_order_id, "exit": 0}),
            format!(
                "{name} {}: billStatus {} ({}), {} fen",
                r.bill_no,
                b.bill_status.as_deref().unwrap_or("-"),
                b.status.as_deref().unwrap_or("-"),
                b.total_fen
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "-".into())
            ),
        ),
        Err(UmsError::Refused { code, msg }) => fail(2, format!("ChinaUMS refused: {code} {msg}")),
        Err(e @ UmsError::Build(_)) => fail(1, e.to_string()),
        Err(e) if e.certainly_not_sent() => fail(3, format!("{e}; nothing was sent, try again")),
        Err(e) => fail(
            3,
            format!(
                "{e}; the outcome is unknown: run `payterm chinaums bill-query` with the same bill before sending it again"
            ),
        ),
    }
}

/// A money-moving bills operation through the journal (engine::preauth).
fn journaled(
    config: &Path,
    journal: Option<&Path>,
    name: &str,
    op: &BillOp,
    r: &PreAuthRef,
    request_no: Option<String>,
) -> (u8, Value, String) {
    use payterm::engine::preauth::{PreAuthError, bill_plan, run};
    use payterm::journal::{Journal, PreAuthOp};
    let bad = |e: String| command_result(name, Err(PreAuthError::BadInput(e)));
    let (kind, amount) = match op {
        BillOp::PreAuthCancel => (PreAuthOp::Cancel, Amount::from_fen(0)),
        BillOp::PreAuthCompleteCancel => (PreAuthOp::CompleteCancel, Amount::from_fen(0)),
        BillOp::PreAuthComplete { amount } => match Amount::parse_yuan(amount) {
            Ok(a) => (PreAuthOp::Complete, a),
            Err(e) => return bad(e.to_string()),
        },
        BillOp::Query => return bad("bill-query is not journaled".into()),
    };
    let plan = match bill_plan(kind, r, amount) {
        Ok(p) => p,
        Err(e) => return command_result(name, Err(e)),
    };
    let cfg = match payterm::config::Config::load(config) {
        Ok(c) => c,
        Err(e) => return bad(e.to_string()),
    };
    let ums = match client(config) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    if ums.config().bills.is_none() {
        return bad("[gateways.chinaums.bills] (mid, tid, inst_mid) is not configured".into());
    }
    let path = journal.map_or_else(|| cfg.journal_path(), Path::to_path_buf);
    let mut j = match Journal::open(&path) {
        Ok(j) => j,
        Err(e) => return bad(e.to_string()),
    };
    let r = run(&mut j, &ums, plan, request_no, &cfg.file.terminal.id, None);
    command_result(name, r)
}
