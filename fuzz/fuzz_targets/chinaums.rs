#![no_main]
//! ChinaUMS replies: the `Authorization: OPEN-BODY-SIG …` header and the JSON body, through
//! the client as the engine calls it. Input: selector byte, then the header line (empty for
//! none) and the body. Replies need not be signed here, so unsigned ones reach the classification.

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use payterm::core::authcode::Wallet;
use payterm::core::money::Amount;
use payterm::gateway::chinaums::{ChinaUms, ChinaUmsConfig, PreAuthRef, codes};
use payterm::gateway::{Gateway, RefundRef};
use payterm::sign::hmac::{parse_open_body_header, verify_open_body};

#[path = "common.rs"]
mod common;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn cfg(token: bool) -> ChinaUmsConfig {
    let auth = if token { "access_token" } else { "body_sig" };
    toml::from_str(&format!(
        "base_url = \"http://127.0.0.1:1\"\napp_id = \"app0001\"\napp_key_file = \"k\"\n\
         auth = \"{auth}\"\nmerchant_code = \"898310000000001\"\nterminal_code = \"00810001\"\n\
         ip = \"127.0.0.1\"\n[bills]\nmid = \"898310000000001\"\ntid = \"00810001\"\n"
    ))
    .expect("the fixed ChinaUMS configuration")
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (header, body) = common::first_line(rest);
    let header = std::str::from_utf8(header).ok().filter(|h| !h.is_empty());
    if let Some(h) = header
        && let Ok(auth) = parse_open_body_header(h)
    {
        let _ = verify_open_body(&auth, KEY, body);
    }
    let a = common::attempt(Wallet::Unionpay);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = (
            codes::pay(&v, &a),
            codes::query(&v, &a),
            codes::void_done(&v),
        );
        let _ = (
            codes::refund(&v),
            codes::refund_query(&v),
            codes::detail(&v),
        );
    }
    let g = ChinaUms::with_parts(
        cfg(sel & 0x80 != 0),
        KEY.into(),
        Arc::new(common::Replies {
            status: if sel & 0x40 != 0 { 401 } else { 200 },
            body: body.to_vec(),
            authorization: header.map(str::to_string),
        }),
        Arc::new(|| 1_795_000_000_000),
    );
    let r = RefundRef {
        out_refund_no: "PTR0001".into(),
        amount: Amount::from_fen(250),
        order_total: Amount::from_fen(1250),
    };
    let pre = PreAuthRef {
        bill_no: "31940000001".into(),
        bill_date: "2026-11-22".into(),
        mer_order_id: "PT000120261122100000001".into(),
        auth_id_resp_cd: "123456".into(),
    };
    match sel % 8 {
        0 => drop(g.pay(&a, &common::code_credential("6225123456789012345"))),
        1 => drop(g.query(&a)),
        2 => drop(g.reverse(&a)),
        3 => drop(g.refund(&a, &r)),
        4 => drop(g.refund_query(&a, "PTR0001")),
        5 => drop(g.bill_query(&pre)),
        6 => drop(g.preauth_complete(&pre, Amount::from_fen(1250))),
        _ => drop(g.access_token()),
    }
});
