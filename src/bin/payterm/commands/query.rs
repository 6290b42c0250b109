//! `payterm query ORDER`: asks the gateway about an order and prints both views, the journal's and
//! the gateway's. It must not change the journal: a person uses it to look, `recover` to settle.

use serde_json::json;

use crate::cli::Cli;
use crate::context::{engine, engine_err, load};
use crate::output::{Fail, Out};

pub(crate) fn run(cli: &Cli, out: &Out, order: &str) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let e = engine(cli, &cfg)?;
    let (row, reply) = e.query(order).map_err(engine_err)?;
    out.line(
                format!("{} ({} yuan): journal says {}; the gateway says {} [{}]", row.out_trade_no, row.amount, row.machine.state, reply.reply.describe(), reply.detail),
                json!({"result": "ok", "order": row.order_id, "out_trade_no": row.out_trade_no, "journal_state": row.machine.state, "gateway": reply.reply.describe(), "detail": reply.detail, "exit": 0}),
            );
    Ok(0)
}
