use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::*;
use crate::core::money::Amount;
use crate::gateway::{Method, OrderDetails};
use crate::sign::hmac::{open_body_header, parse_open_body_header, verify_open_body};

const KEY: &str = "0123456789abcdef0123456789abcdef";

struct Sent {
    url: String,
    auth: Option<String>,
    body: Value,
}

/// Answers each request with the next canned reply and records what was sent.
struct Canned {
    replies: Mutex<Vec<Result<HttpResponse, TransportError>>>,
    sent: Mutex<Vec<Sent>>,
}

impl Transport for Canned {
    fn post(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        assert_eq!(req.content_type, "application/json; charset=UTF-8");
        self.sent.lock().unwrap().push(Sent {
            url: req.url.clone(),
            auth: req
                .headers
                .iter()
                .find(|(k, _)| k == "Authorization")
                .map(|(_, v)| v.clone()),
            body: serde_json::from_slice(&req.body).unwrap(),
        });
        let mut r = self.replies.lock().unwrap();
        if r.is_empty() {
            return Err(TransportError::NoReply {
                host: "x".into(),
                why: "timeout".into(),
            });
        }
        r.remove(0)
    }
}

fn cfg(auth: &str) -> ChinaUmsConfig {
    toml::from_str(&format!(
        r#"base_url = "http://127.0.0.1:1"
app_id = "app0001"
app_key_file = "k"
auth = "{auth}"
merchant_code = "898310000000001"
terminal_code = "00810001"
ip = "127.0.0.1"
"#
    ))
    .unwrap()
}

fn signed(v: Value) -> Result<HttpResponse, TransportError> {
    let body = serde_json::to_vec(&v).unwrap();
    let h = open_body_header("app0001", KEY, "20261122100000", "n0nce", &body);
    Ok(HttpResponse {
        status: 200,
        body,
        authorization: Some(h),
    })
}

fn unsigned(v: Value) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status: 200,
        body: serde_json::to_vec(&v).unwrap(),
        authorization: None,
    })
}

fn client(
    auth: &str,
    replies: Vec<Result<HttpResponse, TransportError>>,
    clock: Arc<AtomicI64>,
) -> (ChinaUms, Arc<Canned>) {
    let t = Arc::new(Canned {
        replies: Mutex::new(replies),
        sent: Mutex::new(vec![]),
    });
    let c = clock.clone();
    (
        ChinaUms::with_parts(
            cfg(auth),
            KEY.into(),
            t.clone(),
            Arc::new(move || c.load(Ordering::SeqCst)),
        ),
        t,
    )
}

fn attempt() -> AttemptRef {
    AttemptRef {
        out_trade_no: "T0126112210000001".into(),
        amount: Amount::from_fen(1250),
        wallet: None,
        method: Method::Code,
        chan_txn_time: "20261122100000".into(),
        created_ms: 0,
        chan_trade_no: None,
        details: OrderDetails::default(),
    }
}

fn code() -> Credential {
    Credential::Code(
        crate::core::AuthCode::classify(
            "134567890123456789",
            &crate::core::authcode::default_rules(),
        )
        .unwrap(),
    )
}

const T0: i64 = 1_795_312_800_000;

#[test]
fn body_sig_requests_verify_and_signed_replies_are_believed() {
    let paid = json!({"errCode":"00","merchantOrderId":"T0126112210000001","amount":1250,"orderId":"UMS1"});
    let (g, t) = client("body_sig", vec![signed(paid)], Arc::new(AtomicI64::new(T0)));
    let r = g.pay(&attempt(), &code());
    assert_eq!(r.reply, Reply::Paid);
    assert_eq!(r.chan_trade_no.as_deref(), Some("UMS1"));
    let sent = &t.sent.lock().unwrap()[0];
    assert!(sent.url.ends_with("/v6/poslink/transaction/pay"));
    assert_eq!(sent.body["payCode"], "134567890123456789");
    assert_eq!(sent.body["transactionAmount"], 1250);
    assert_eq!(sent.body["payMode"], "CODE_SCAN");
    let a = parse_open_body_header(sent.auth.as_deref().unwrap()).unwrap();
    assert_eq!(a.app_id, "app0001");
    assert_eq!(a.timestamp, "20261122100000");
    let raw = serde_json::to_vec(&sent.body).unwrap();
    assert!(
        verify_open_body(&a, KEY, &raw).is_ok(),
        "the request verifies"
    );
}

#[test]
fn a_reply_with_a_wrong_signature_or_unsigned_when_required_is_unknown() {
    let paid = json!({"errCode":"00","merchantOrderId":"T0126112210000001","amount":1250});
    let mut bad = signed(paid.clone()).unwrap();
    bad.authorization = Some(open_body_header("app0001", "wrong", "1", "2", &bad.body));
    let (g, _) = client("body_sig", vec![Ok(bad)], Arc::new(AtomicI64::new(T0)));
    assert!(matches!(
        g.pay(&attempt(), &code()).reply,
        Reply::Unknown { .. }
    ));

    let (g, _) = client(
        "body_sig",
        vec![unsigned(paid.clone())],
        Arc::new(AtomicI64::new(T0)),
    );
    assert_eq!(
        g.pay(&attempt(), &code()).reply,
        Reply::Paid,
        "unsigned allowed by default"
    );
    let mut c = cfg("body_sig");
    c.require_signed_replies = true;
    let t = Arc::new(Canned {
        replies: Mutex::new(vec![unsigned(paid)]),
        sent: Mutex::new(vec![]),
    });
    let g = ChinaUms::with_parts(c, KEY.into(), t, Arc::new(|| T0));
    assert!(matches!(
        g.pay(&attempt(), &code()).reply,
        Reply::Unknown { .. }
    ));
}

#[test]
fn access_token_is_cached_renewed_before_expiry_and_replaced_after_401() {
    let clock = Arc::new(AtomicI64::new(T0));
    let tok = |t: &str| unsigned(json!({"errCode":"0000","accessToken":t,"expiresIn":3600}));
    let q = || signed(json!({"errCode":"00","queryResCode":"FF"}));
    let unauthorized = Ok(HttpResponse {
        status: 401,
        body: b"{}".to_vec(),
        authorization: None,
    });
    let (g, t) = client(
        "access_token",
        vec![
            tok("A"),
            q(),
            q(),
            tok("B"),
            q(),
            unauthorized,
            tok("C"),
            q(),
        ],
        clock.clone(),
    );
    g.query(&attempt());
    clock.fetch_add(3_000_000, Ordering::SeqCst); // 50 minutes: still good
    g.query(&attempt());
    clock.fetch_add(300_001, Ordering::SeqCst); // inside the 5-minute margin: renewed
    g.query(&attempt());
    g.query(&attempt()); // 401: renewed and sent once more
    let sent = t.sent.lock().unwrap();
    let urls: Vec<&str> = sent
        .iter()
        .map(|s| s.url.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "access", "query", "query", "access", "query", "query", "access", "query"
        ]
    );
    let auths: Vec<String> = sent
        .iter()
        .filter(|s| s.url.ends_with("query"))
        .map(|s| s.auth.clone().unwrap())
        .collect();
    assert_eq!(auths[0], "OPEN-ACCESS-TOKEN AccessToken=\"A\"");
    assert_eq!(auths[1], auths[0]);
    assert_eq!(auths[2], "OPEN-ACCESS-TOKEN AccessToken=\"B\"");
    assert_eq!(auths[4], "OPEN-ACCESS-TOKEN AccessToken=\"C\"");
    let tr = &sent[0].body;
    let sig = crate::sign::sha256::chinaums_token_signature(
        "app0001",
        tr["timestamp"].as_str().unwrap(),
        tr["nonce"].as_str().unwrap(),
        KEY,
    );
    assert_eq!(tr["signature"], sig.as_str());
    assert_eq!(tr["signMethod"], "SHA256");
    assert!(!format!("{g:?}").contains(KEY));
}

#[test]
fn void_reads_the_order_to_say_what_it_did_and_retries_otherwise() {
    let (g, _) = client(
        "body_sig",
        vec![
            signed(json!({"errCode":"00"})),
            signed(json!({"errCode":"00","queryResCode":"2","amount":1250})),
            signed(json!({"errCode":"BUSY","errInfo":"系统繁忙"})),
        ],
        Arc::new(AtomicI64::new(T0)),
    );
    assert_eq!(
        g.reverse(&attempt()).reply,
        Reply::Reversed(ReverseAction::Refund)
    );
    assert!(matches!(
        g.reverse(&attempt()).reply,
        Reply::RetryLater { .. }
    ));
    assert!(
        matches!(g.reverse(&attempt()).reply, Reply::Unknown { .. }),
        "no reply"
    );
}

#[test]
fn other_credentials_are_refused_without_sending() {
    let (g, t) = client("body_sig", vec![], Arc::new(AtomicI64::new(T0)));
    let r = g.pay(&attempt(), &Credential::Qr { notify_url: None });
    assert!(matches!(r.reply, Reply::Failed { .. }));
    assert!(t.sent.lock().unwrap().is_empty());
}

#[test]
fn default_policy_is_consistent_and_config_problems_are_explained() {
    assert!(default_policy().problems().is_empty());
    assert!(cfg("body_sig").problems(true).is_empty());
    let mut c = cfg("body_sig");
    c.merchant_code = "123".into();
    c.ip = None;
    c.base_url = "http://example.com".into();
    let p = c.problems(false);
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert!(fields.contains(&"gateways.chinaums.merchant_code"), "{p:?}");
    assert!(fields.contains(&"gateways.chinaums.ip"), "{p:?}");
    assert!(fields.contains(&"gateways.chinaums.base_url"), "{p:?}");
}

#[test]
fn preauth_cancel_sends_the_seed_fields_and_reads_the_bill() {
    let mut c = cfg("body_sig");
    c.bills = Some(BillsConfig {
        mid: "89844035541APR4".into(),
        tid: "APR40001".into(),
        inst_mid: "QRPAYDEFAULT".into(),
    });
    let t = Arc::new(Canned {
        replies: Mutex::new(vec![signed(json!({
            "errCode":"SUCCESS","billStatus":"CLOSED",
            "billPayment":{"status":"TRADE_CLOSED","totalAmount":"2100","targetOrderId":"1623"}
        }))]),
        sent: Mutex::new(vec![]),
    });
    let g = ChinaUms::with_parts(c, KEY.into(), t.clone(), Arc::new(|| T0));
    let r = PreAuthRef {
        bill_no: "124F2023071912021792962162".into(),
        bill_date: "2023-07-19".into(),
        mer_order_id: "124F20230719120217929621620".into(),
        auth_id_resp_cd: "000665".into(),
    };
    let out = g.preauth_cancel(&r).unwrap();
    assert_eq!(out.bill_status.as_deref(), Some("CLOSED"));
    assert_eq!(out.total_fen, Some(2100));
    let s = &t.sent.lock().unwrap()[0];
    assert!(s.url.ends_with("/v1/netpay/bills/preauth-cancel"));
    for k in [
        "requestTimestamp",
        "mid",
        "tid",
        "instMid",
        "billNo",
        "billDate",
        "merOrderId",
        "authIdRespCd",
        "msgId",
        "srcReserve",
    ] {
        assert!(s.body.get(k).is_some(), "{k}");
    }
    assert_eq!(s.body["requestTimestamp"], "2026-11-22 10:00:00");
    let bad = PreAuthRef {
        bill_date: "19-07-2023".into(),
        ..r
    };
    assert!(matches!(g.preauth_cancel(&bad), Err(UmsError::Build(_))));
}

#[test]
fn a_void_counts_only_when_the_query_says_voided_closed_or_refunded() {
    let voided = || signed(json!({"errCode":"00"}));
    let (g, _) = client(
        "body_sig",
        vec![
            // The follow-up query gets no reply.
            voided(),
            Err(TransportError::NoReply {
                host: "x".into(),
                why: "timeout".into(),
            }),
            // The query still says paid.
            voided(),
            signed(
                json!({"errCode":"00","queryResCode":"0","merchantOrderId":"T0126112210000001","amount":1250}),
            ),
            // The query itself did not work.
            voided(),
            signed(json!({"errCode":"XX"})),
            // Not JSON.
            voided(),
            Ok(HttpResponse {
                status: 200,
                body: b"<html>".to_vec(),
                authorization: None,
            }),
            // 已冲正 and 失败: no money was taken.
            voided(),
            signed(json!({"errCode":"00","queryResCode":"4"})),
            voided(),
            signed(json!({"errCode":"00","queryResCode":"5"})),
            // 已撤销: the money went back.
            voided(),
            signed(json!({"errCode":"00","queryResCode":"2","amount":1250})),
        ],
        Arc::new(AtomicI64::new(T0)),
    );
    for what in ["no reply", "still paid", "query failed", "not JSON"] {
        let r = g.reverse(&attempt()).reply;
        assert!(
            matches!(r, Reply::RetryLater { .. } | Reply::Unknown { .. }),
            "{what}: {r:?}"
        );
    }
    for _ in 0..2 {
        assert_eq!(
            g.reverse(&attempt()).reply,
            Reply::Reversed(ReverseAction::Close)
        );
    }
    assert_eq!(
        g.reverse(&attempt()).reply,
        Reply::Reversed(ReverseAction::Refund)
    );
}

#[test]
fn a_bills_reply_without_err_code_proves_nothing() {
    let mut c = cfg("body_sig");
    c.bills = Some(BillsConfig {
        mid: "89844035541APR4".into(),
        tid: "APR40001".into(),
        inst_mid: "QRPAYDEFAULT".into(),
    });
    let t = Arc::new(Canned {
        replies: Mutex::new(vec![
            signed(json!({"billStatus":"CLOSED"})),
            signed(json!({"errCode":"","billStatus":"CLOSED"})),
        ]),
        sent: Mutex::new(vec![]),
    });
    let g = ChinaUms::with_parts(c, KEY.into(), t, Arc::new(|| T0));
    let r = PreAuthRef {
        bill_no: "124F2023071912021792962162".into(),
        bill_date: "2023-07-19".into(),
        mer_order_id: "124F20230719120217929621620".into(),
        auth_id_resp_cd: "000665".into(),
    };
    for _ in 0..2 {
        let e = g.preauth_cancel(&r);
        assert!(matches!(e, Err(UmsError::BadReply(_))), "{e:?}");
    }
}
