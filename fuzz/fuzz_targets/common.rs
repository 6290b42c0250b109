//! What several targets share: a transport that answers every request with the fuzz input,
//! and a fixed attempt to ask about.

#![allow(dead_code)]

use payterm::core::authcode::{AuthCode, Wallet, default_rules};
use payterm::core::money::Amount;
use payterm::gateway::{
    AttemptRef, Credential, HttpRequest, HttpResponse, Method, OrderDetails, Transport,
    TransportError,
};

/// Answers every request with the same reply: the gateway reads it as it would a real one.
pub struct Replies {
    pub status: u16,
    pub body: Vec<u8>,
    pub authorization: Option<String>,
}

impl Transport for Replies {
    fn post(&self, _req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status: self.status,
            body: self.body.clone(),
            authorization: self.authorization.clone(),
        })
    }
}

pub fn attempt(wallet: Wallet) -> AttemptRef {
    AttemptRef {
        out_trade_no: "PT000120261122100000001".into(),
        amount: Amount::from_fen(1250),
        wallet: Some(wallet),
        method: Method::Code,
        chan_txn_time: "20261122100000".into(),
        created_ms: 1_795_000_000_000,
        chan_trade_no: Some("UMS0001".into()),
        details: OrderDetails::default(),
    }
}

pub fn code_credential(code: &str) -> Credential {
    Credential::Code(AuthCode::classify(code, &default_rules()).expect("a valid test code"))
}

/// Splits `data` at its first newline: (first line, the rest).
pub fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[], data),
    }
}
