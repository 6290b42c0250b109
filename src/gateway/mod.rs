//! Gateway clients: the shared request context, reply types and the one HTTP transport.
//!
//! Each gateway module turns a typed request into the exact bytes to send and the bytes received
//! into a signature-checked [`GatewayReply`] whose `reply` is what the state machine understands.
//! A gateway never decides what happens next and never touches the journal; it only speaks its
//! protocol. The transport sends bytes and nothing else.

pub mod aggregator;
pub mod chinaums;
pub mod transport;
pub mod unionpay;
pub mod upapi;

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::core::authcode::{AuthCode, Wallet, mask};
use crate::core::machine::Reply;
use crate::core::money::Amount;
use crate::core::policy::Policy;

pub use transport::{HttpRequest, HttpResponse, Transport, TransportError, UreqTransport};

/// How the customer pays on this attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The cashier scans the customer's payment code.
    Code,
    /// The face-pay module produced a face code.
    Face,
    /// The customer scans a QR code the terminal shows (pre-order).
    Qr,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Code => "code",
            Method::Face => "face",
            Method::Qr => "qr",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "code" => Some(Method::Code),
            "face" => Some(Method::Face),
            "qr" => Some(Method::Qr),
            _ => None,
        }
    }
}

/// A face code is as secret as a payment code: masked in every printed form.
#[derive(Clone, PartialEq, Eq)]
pub struct FaceCode(String);

impl FaceCode {
    pub fn new(code: impl Into<String>) -> FaceCode {
        FaceCode(code.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for FaceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaceCode({})", self.masked())
    }
}

/// The one-time credential of a pay request, held in memory until it is sent.
#[derive(Clone, Debug)]
pub enum Credential {
    Code(AuthCode),
    Face {
        face_code: FaceCode,
        openid: String,
    },
    /// Pre-order: the customer scans; `notify_url` is where the gateway reports the result.
    Qr {
        notify_url: Option<String>,
    },
    /// A 云闪付 无感支付 contract customer: the merchant debits the signed contract (no code).
    Contract {
        contract_id: String,
    },
}

/// Optional order details the gateways carry through (goods, attach, operator, store, device).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OrderDetails {
    pub body: String,
    pub attach: Option<String>,
    /// JSON array of goods, as the aggregator's goods_detail expects.
    pub goods_detail: Option<String>,
    pub goods_tag: Option<String>,
    pub operator: Option<String>,
    pub store_id: Option<String>,
    pub device_id: Option<String>,
}

/// Everything a gateway needs to talk about one attempt.
#[derive(Clone, Debug)]
pub struct AttemptRef {
    pub out_trade_no: String,
    pub amount: Amount,
    pub wallet: Option<Wallet>,
    pub method: Method,
    /// The exact channel timestamp string sent with the pay request (ACP's query key).
    pub chan_txn_time: String,
    pub created_ms: i64,
    /// The channel's own number for the trade, once known.
    pub chan_trade_no: Option<String>,
    pub details: OrderDetails,
}

/// A refund request: its own journaled number, never reused for a different amount.
#[derive(Clone, Debug)]
pub struct RefundRef {
    pub out_refund_no: String,
    pub amount: Amount,
    /// What the order was paid, which the aggregator wants as total_fee.
    pub order_total: Amount,
}

/// A reply reduced for the engine, with what the journal should remember of it.
#[derive(Clone, Debug)]
pub struct GatewayReply {
    pub reply: Reply,
    pub chan_trade_no: Option<String>,
    /// For a pre-order: the code_url to show as a QR code.
    pub code_url: Option<String>,
    /// The gateway's own code and message, for the history (never a secret).
    pub detail: String,
}

impl GatewayReply {
    pub fn new(reply: Reply, detail: impl Into<String>) -> GatewayReply {
        GatewayReply {
            reply,
            chan_trade_no: None,
            code_url: None,
            detail: detail.into(),
        }
    }
}

/// A refund's outcome, kept apart from the attempt's own state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    Done { chan_refund_no: Option<String> },
    Processing,
    Failed { code: String, reason: String },
    Unknown { why: String },
}

/// A verified result notification: a hint, which the journal checks before believing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub out_trade_no: String,
    pub amount: Amount,
    pub paid: bool,
    pub chan_trade_no: Option<String>,
    /// Set when the notification verified but reports no payment result (ACP posts one for
    /// every undo and refund too): it is acknowledged, so the channel stops resending it, and
    /// changes nothing. The text says what it was, for the log.
    pub no_result: Option<String>,
}

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unsupported(String),
    #[error("gateway configuration: {0}")]
    Config(String),
}

/// One payment gateway, as the engine sees it. Implementations are synchronous: the engine runs
/// them on its own threads, and every call is bounded by the transport's timeouts.
pub trait Gateway: Send + Sync {
    fn name(&self) -> &'static str;
    /// The channel's rules for an attempt paid with `wallet`.
    fn policy(&self, wallet: Option<Wallet>) -> Policy;
    /// The channel timestamp string to store and send for an attempt created at `created_ms`.
    fn txn_time(&self, created_ms: i64) -> String;
    fn pay(&self, a: &AttemptRef, credential: &Credential) -> GatewayReply;
    fn query(&self, a: &AttemptRef) -> GatewayReply;
    fn reverse(&self, a: &AttemptRef) -> GatewayReply;
    /// A full refund used as the fence once the cancel window has closed.
    fn refund_fence(&self, a: &AttemptRef, r: &RefundRef) -> GatewayReply {
        match self.refund(a, r) {
            RefundOutcome::Done { .. } => GatewayReply::new(Reply::Paid, "refunded"),
            RefundOutcome::Processing => GatewayReply::new(
                Reply::RetryLater {
                    why: "refund processing".into(),
                },
                "refund processing",
            ),
            RefundOutcome::Failed { code, reason } => GatewayReply::new(
                Reply::Refused {
                    why: format!("{code} {reason}"),
                },
                format!("{code} {reason}"),
            ),
            RefundOutcome::Unknown { why } => {
                GatewayReply::new(Reply::Unknown { why: why.clone() }, why)
            }
        }
    }
    fn refund(&self, a: &AttemptRef, r: &RefundRef) -> RefundOutcome;
    /// The base URL the connectivity monitor probes (host and port are what matter).
    fn endpoint(&self) -> Option<String> {
        None
    }
    /// One harmless signed request whose verified answer proves the gateway answers (an order
    /// query for a number that cannot exist). `None`: this gateway has no probe.
    fn probe(&self) -> Option<GatewayReply> {
        None
    }
    /// Exchanges a face module's rawdata for the authinfo its SDK needs (aggregator getfaceauth).
    fn face_auth(&self, _wallet: Wallet, _rawdata: &str) -> Result<String, String> {
        Err(format!("{} does not take face payments", self.name()))
    }
    /// Verifies a result notification posted by the gateway.
    fn verify_notification(&self, _body: &[u8]) -> Result<Notice, String> {
        Err(format!(
            "{} sends no notifications payterm accepts",
            self.name()
        ))
    }
    fn refund_query(&self, a: &AttemptRef, out_refund_no: &str) -> RefundOutcome;
}
