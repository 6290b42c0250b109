//! `payterm refund` and `refund-query`, and the refund-id check `contract refund` shares: a typed
//! id the order's gateway could not send is refused with exit 1 before anything is journaled,
//! rather than journaled FAILED. The refund itself, its limits and its journal row are the
//! engine's; a too-large refund is bad input (1), never a decline.

use payterm::core::money::Amount;
use payterm::engine::{Engine, EngineError};

use crate::cli::Cli;
use crate::context::{engine, engine_err, load};
use crate::output::{Fail, Out, print_refund};

pub(crate) fn refund(
    cli: &Cli,
    out: &Out,
    order: &str,
    amount: &str,
    refund_id: &Option<String>,
) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let amount = Amount::parse_yuan(amount).map_err(|e| Fail(1, e.into()))?;
    let mut e = engine(cli, &cfg)?;
    check_refund_id(&e, order, refund_id.as_deref())?;
    let r = e
        .refund(order, amount, refund_id.clone())
        .map_err(|err| match err {
            EngineError::Journal(payterm::journal::JournalError::RefundTooLarge { .. }) => {
                Fail(1, err.into())
            }
            other => engine_err(other),
        })?;
    Ok(print_refund(out, &r))
}

pub(crate) fn refund_query(cli: &Cli, out: &Out, refund_id: &str) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let mut e = engine(cli, &cfg)?;
    let r = e.refund_query(refund_id).map_err(engine_err)?;
    Ok(print_refund(out, &r))
}

/// A typed refund id the order's gateway could not send, refused before it is journaled.
pub(crate) fn check_refund_id(
    e: &Engine,
    order: &str,
    refund_id: Option<&str>,
) -> Result<(), Fail> {
    let Some(id) = refund_id else { return Ok(()) };
    let row = e.latest(order).map_err(engine_err)?;
    crate::commands::acp::check_refund_id(&row.gateway, id)
        .map_err(|why| Fail(1, anyhow::anyhow!(why)))
}
