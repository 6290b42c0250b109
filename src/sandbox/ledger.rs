//! The sandbox's ledger: what the fake gateway really did with each order's money.
//!
//! Tests compare it with the terminal's journal; the two must agree on every order's net charge.
//! The amount-scenario rules every fake gateway applies to its orders alike (DESIGN.md §5: the
//! outcome of a new payment, scenario 52 paying on its second query, 58 answering its first two
//! cancels "busy") live here, so that the gateways cannot drift apart on them; what each
//! protocol replies stays in its own file.

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

impl Status {
    /// What the amount scenario (DESIGN.md §5) makes of a new code payment: 51 declined, 52/53
    /// waiting for the customer's password, anything else paid.
    pub fn of_scenario(scenario: u64) -> Status {
        match scenario {
            51 => Status::Declined,
            52 | 53 => Status::Paying,
            _ => Status::Paid,
        }
    }
}

impl Order {
    /// An order as a pay or pre-order request creates it: not yet queried, cancelled or refunded.
    pub fn new(
        out_trade_no: &str,
        paytype: &str,
        kind: &str,
        amount_fen: u64,
        status: Status,
        created_ms: i64,
        transaction_id: String,
    ) -> Order {
        Order {
            out_trade_no: out_trade_no.to_string(),
            paytype: paytype.to_string(),
            kind: kind.to_string(),
            amount_fen,
            status,
            created_ms,
            transaction_id,
            queries: 0,
            cancel_tries: 0,
            refunds: vec![],
            notify_url: None,
            never_created: false,
        }
    }

    /// A number cancelled before any pay request for it arrived: closed, so that a late request
    /// cannot pay it.
    pub fn never_created(out_trade_no: &str, paytype: &str, kind: &str, now_ms: i64) -> Order {
        Order {
            never_created: true,
            ..Order::new(
                out_trade_no,
                paytype,
                kind,
                0,
                Status::Closed,
                now_ms,
                String::new(),
            )
        }
    }

    /// Counts a status query. Scenario 52 (the customer types a password) is paid from the
    /// second query on; `true` when this query is the one that made it paid.
    pub fn queried(&mut self) -> bool {
        self.queries += 1;
        let pays =
            self.status == Status::Paying && self.amount_fen % 100 == 52 && self.queries >= 2;
        if pays {
            self.status = Status::Paid;
        }
        pays
    }

    /// Counts a cancel try (void, undo, reversal); `false` while scenario 58 still answers it
    /// "busy" (its first two tries).
    pub fn cancel_try(&mut self) -> bool {
        let busy = self.amount_fen % 100 == 58 && self.cancel_tries < 2;
        self.cancel_tries += 1;
        !busy
    }

    /// Records a refund of `amount_fen` under the merchant's `out_refund_no`.
    pub fn add_refund(
        &mut self,
        out_refund_no: &str,
        refund_id: String,
        amount_fen: u64,
        at_ms: i64,
    ) -> Refund {
        let r = Refund {
            out_refund_no: out_refund_no.to_string(),
            refund_id,
            amount_fen,
            at_ms,
        };
        self.refunds.push(r.clone());
        r
    }

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
