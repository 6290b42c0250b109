//! `payterm cancel ORDER`: fences an unsettled order or reverses a paid one within its window,
//! through the engine, which decides which. This file only shows progress and the end state.

use payterm::journal::AttemptRow;

use crate::cli::Cli;
use crate::context::{engine, engine_err, load};
use crate::output::{Fail, Out, finish};

pub(crate) fn run(cli: &Cli, out: &Out, order: &str) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let mut e = engine(cli, &cfg)?;
    let mut obs = |r: &AttemptRow, n: &str| out.progress(r, n);
    let row = e.cancel(order, &mut obs).map_err(engine_err)?;
    Ok(finish(out, &row))
}
