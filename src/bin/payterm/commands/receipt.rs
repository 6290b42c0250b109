//! `payterm receipt ORDER [--width 58|80] [--out FILE]`: an order's receipt, every copy the
//! board's printer lists, as ESC/POS bytes in a file or as the text those bytes print. It reads
//! the journal only (the receipt shows its masked code) and prints nothing on a device.

use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use payterm::core::machine::AttemptState;
use payterm::device::board::ReceiptCopy;
use payterm::journal::Journal;
use payterm::receipt::{self, Paper, ReceiptData, Symbol};

use crate::cli::Cli;
use crate::context::load;
use crate::output::{Fail, Out};

pub(crate) fn run(
    cli: &Cli,
    out: &Out,
    order: &str,
    width: Option<u16>,
    file: Option<&Path>,
) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let printer = match &cfg.file.board {
        Some(b) => payterm::device::load_board(&cfg.resolve(b))?.printer,
        None => None,
    };
    let mm = width.or(printer.as_ref().map(|p| p.width_mm)).unwrap_or(58);
    let paper = Paper::from_mm(mm)
        .ok_or_else(|| Fail(1, anyhow!("--width {mm}: receipts are 58 or 80 mm wide")))?;
    let copies = printer
        .map(|p| p.copies)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec![ReceiptCopy::Customer]);
    let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
    let j = Journal::open(&path)?;
    let attempts = j.find(order).map_err(|e| Fail(1, e.into()))?;
    // The paid attempt if there is one; else the latest, whose receipt says it is not paid.
    let Some(a) = attempts
        .iter()
        .find(|a| a.machine.state == AttemptState::Paid)
        .or(attempts.last())
    else {
        return Err(Fail(1, anyhow!("no attempt for {order}")));
    };
    let refunds = j.refunds_for(a.attempt_id)?;
    let data = ReceiptData::from_rows(
        &cfg.file.terminal.merchant_name,
        &cfg.file.terminal.id,
        a,
        &refunds,
    );
    let mut bytes = Vec::new();
    for c in &copies {
        bytes.extend(receipt::layout(&data, paper, *c, Symbol::Qr));
    }
    if let Some(f) = file {
        std::fs::write(f, &bytes).map_err(|e| Fail(1, anyhow!("writing {}: {e}", f.display())))?;
        out.line(
            format!("wrote {} bytes ({} copies, {mm} mm) to {}", bytes.len(), copies.len(), f.display()),
            json!({"result": "written", "file": f, "bytes": bytes.len(), "width_mm": mm, "copies": copies, "order": a.order_id}),
        );
        return Ok(0);
    }
    let lines = receipt::decode(&bytes).map_err(|e| Fail(1, e.into()))?;
    out.line(
        lines.join("\n"),
        json!({"result": "receipt", "order": a.order_id, "width_mm": mm, "copies": copies, "lines": lines, "receipt": data}),
    );
    Ok(0)
}
