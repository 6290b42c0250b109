#![no_main]
//! Aggregator replies (JSON) and pre-order notifications (forms). The first byte chooses what
//! the rest is: a notification, a reply as sent, or a reply re-signed with our key so that it
//! gets past the MD5 check into the classification the engine acts on.

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use payterm::core::authcode::Wallet;
use payterm::core::money::Amount;
use payterm::gateway::aggregator::{Aggregator, AggregatorConfig, Fields, codes};
use payterm::gateway::{Gateway, RefundRef};

#[path = "common.rs"]
mod common;

const KEY: &str = "fuzz-aggregator-key";

fn cfg() -> AggregatorConfig {
    toml::from_str(
        "base_url = \"http://127.0.0.1:1\"\nagent_id = \"130000000000000000\"\n\
         mch_id = \"00000001\"\nkey_file = \"/dev/null\"\nallow_unsigned_preorder = true\n",
    )
    .expect("the fixed aggregator configuration")
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let form = Fields::from_form(rest);
    let _ = form.verify(KEY);
    if sel % 3 == 0 {
        let g = Aggregator::with_transport(
            cfg(),
            KEY.into(),
            Arc::new(common::Replies {
                status: 200,
                body: vec![],
                authorization: None,
            }),
        );
        let _ = g.parse_notification(rest);
        let _ = g.verify_notification(&form.clone().signed(KEY).to_form().into_bytes());
        return;
    }
    let Ok(reply) = Fields::from_json(rest) else {
        return;
    };
    let _ = reply.verify(KEY);
    let _ = (
        codes::pay(&reply),
        codes::query(&reply),
        codes::cancel(&reply),
    );
    let _ = (
        codes::refund(&reply),
        codes::refund_query(&reply, "PTR0001"),
    );
    let body = if sel % 3 == 1 {
        rest.to_vec()
    } else {
        reply.signed(KEY).to_json().into_bytes()
    };
    let g = Aggregator::with_transport(
        cfg(),
        KEY.into(),
        Arc::new(common::Replies {
            status: 200,
            body,
            authorization: None,
        }),
    );
    let a = common::attempt(Wallet::Wechat);
    let r = RefundRef {
        out_refund_no: "PTR0001".into(),
        amount: Amount::from_fen(250),
        order_total: Amount::from_fen(1250),
    };
    match (sel >> 2) % 6 {
        0 => drop(g.pay(&a, &common::code_credential("134567890123456789"))),
        1 => drop(g.query(&a)),
        2 => drop(g.reverse(&a)),
        3 => drop(g.refund(&a, &r)),
        4 => drop(g.refund_query(&a, "PTR0001")),
        _ => {
            let _ = g.merchant_info();
            let _ = g.face_auth(Wallet::Wechat, "rawdata");
        }
    }
});
