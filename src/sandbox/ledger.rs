//! The sandbox's ledger: what the fake gateway really did with each order's money.
//!
//! Tests compare it with the terminal's journal; the two must agree on every order's net charge.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The customer is confirming (password entry).
    Paying,
    /// Waiting for the customer to scan the pre-order's QR code.
    AwaitingScan,
    Paid,
    Declined,
    /// Cancelled before any money moved; the number can never be paid.
    Closed,
    /// Cancelled after payment: the money went back.
    Revoked,
}

#[derive(Clone, Debug, Serialize)]
pub struct Refund {
    pub out_refund_no: String,
    pub refund_id: String,
    pub amount_fen: u64,
    pub at_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Order {
    pub out_trade_no: String,
    pub paytype: String,
    pub kind: String,
    pub amount_fen: u64,
    pub status: Status,
    pub created_ms: i64,
    pub transaction_id: String,
    pub queries: u32,
    pub cancel_tries: u32,
    pub refunds: Vec<Refund>,
    #[serde(skip)]
    pub notify_url: Option<String>,
    /// A number the sandbox never saw a pay request for, closed by a cancel.
    pub never_created: bool,
}

impl Order {
    pub fn refunded_fen(&self) -> u64 {
        self.refunds.iter().map(|r| r.amount_fen).sum()
    }

    /// What the customer is out of pocket for this order now.
    pub fn net_fen(&self) -> u64 {
        match self.status {
            Status::Paid => self.amount_fen.saturating_sub(self.refunded_fen()),
            _ => 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub orders: Vec<Order>,
}

#[derive(Serialize)]
pub struct Snapshot<'a> {
    pub orders: Vec<OrderView<'a>>,
    pub total_net_fen: u64,
}

#[derive(Serialize)]
pub struct OrderView<'a> {
    #[serde(flatten)]
    pub order: &'a Order,
    pub refunded_fen: u64,
    pub net_fen: u64,
}

impl Ledger {
    pub fn get(&self, no: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.out_trade_no == no)
    }

    pub fn get_mut(&mut self, no: &str) -> Option<&mut Order> {
        self.orders.iter_mut().find(|o| o.out_trade_no == no)
    }

    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            orders: self
                .orders
                .iter()
                .map(|o| OrderView {
                    order: o,
                    refunded_fen: o.refunded_fen(),
                    net_fen: o.net_fen(),
                })
                .collect(),
            total_net_fen: self.orders.iter().map(Order::net_fen).sum(),
        }
    }
}
