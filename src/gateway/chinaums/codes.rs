//! ChinaUMS POS-link reply codes reduced to what the engine understands (PROTOCOLS.md §D.4).
//!
//! The rules, as data where they are data:
//! - pay: `errCode` `00` is paid (once the order number and amount check); `0000`/`SUCCESS` mean
//!   "accepted, still processing" (the only other codes a working integration treats specially);
//!   every other code is *unknown*, never a decline: the research found no documented decline
//!   table, so the order is queried and its `queryResCode` decides.
//! - query: `errCode` `00` means the query itself worked; then [`QUERY_RES_CODES`] maps
//!   `queryResCode` (0 成功, 1 超时, 2 已撤销, 3 已退货, 4 已冲正, 5 失败, FF 未知). A code not in the
//!   table stays unknown.
//! - voidpayment: `00` is only accepted — it counts once the order's query says voided,
//!   refunded, reversed or failed; anything else is "try again" (the engine's own window decides
//!   when a void stops being possible and a refund takes over).
//! - refund: `00` is done; anything else is unknown until query-refund answers.
//! - query-refund: `queryResCode` `0`/`00` is done, `5` (失败) a failed refund (no money moved);
//!   `1` (超时), `FF` (未知), any other code and a failed query are unknown.

use serde_json::Value;

use crate::core::machine::Reply;
use crate::core::money::Amount;
use crate::gateway::{AttemptRef, RefundOutcome};

/// A string or number field as text.
pub fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An amount in fen from a string or number field.
pub fn fen(v: &Value, key: &str) -> Option<Amount> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64().map(Amount::from_fen),
        Value::String(s) => Amount::parse_fen(s),
        _ => None,
    }
}

/// What a `queryResCode` says about a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryRes {
    Paid,
    /// 超时 / 未知: the state is not known yet.
    Unknown,
    /// 已撤销: voided — the money went back.
    Voided,
    /// 已退货: refunded (maybe in part).
    Refunded,
    /// 已冲正: reversed — no money taken.
    ReversedNoCharge,
    Failed,
}

/// The queryResCode table (PROTOCOLS.md §D.4 [QRC]).
pub const QUERY_RES_CODES: &[(&str, QueryRes, &str)] = &[
    ("0", QueryRes::Paid, "成功"),
    ("1", QueryRes::Unknown, "超时"),
    ("2", QueryRes::Voided, "已撤销"),
    ("3", QueryRes::Refunded, "已退货"),
    ("4", QueryRes::ReversedNoCharge, "已冲正"),
    ("5", QueryRes::Failed, "失败"),
    ("FF", QueryRes::Unknown, "交易状态未知"),
];

pub fn query_res(code: &str) -> Option<(QueryRes, &'static str)> {
    QUERY_RES_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, r, d)| (*r, *d))
}

/// `errCode errInfo` for the history.
pub fn detail(v: &Value) -> String {
    let mut s = format!(
        "{} {}",
        text(v, "errCode").unwrap_or_else(|| "-".into()),
        text(v, "errInfo")
            .or_else(|| text(v, "errMsg"))
            .unwrap_or_default()
    );
    if let Some(q) = text(v, "queryResCode") {
        s.push_str(&format!(
            " queryResCode={q} {}",
            text(v, "queryResDesc")
                .or_else(|| text(v, "queryResInfo"))
                .unwrap_or_default()
        ));
    }
    s.trim().to_string()
}

/// A reply claiming payment must be about this order and this amount.
fn check_paid(v: &Value, a: &AttemptRef) -> Reply {
    if let Some(no) = text(v, "merchantOrderId")
        && no != a.out_trade_no
    {
        return Reply::unknown(format!("reply is for order {no}, not {}", a.out_trade_no));
    }
    let amount = fen(v, "amount")
        .or_else(|| fen(v, "originalTransactionAmount"))
        .or_else(|| fen(v, "transactionAmount"));
    match amount {
        Some(x) if x == a.amount => Reply::Paid,
        Some(x) => Reply::unknown(format!("reply says {x} yuan, the order is {}", a.amount)),
        None => Reply::unknown("a paid reply without an amount"),
    }
}

/// The pay reply.
pub fn pay(v: &Value, a: &AttemptRef) -> Reply {
    match text(v, "errCode").as_deref() {
        Some("00") => check_paid(v, a),
        Some("0000") | Some("SUCCESS") => Reply::Pending,
        Some(c) => Reply::unknown(format!("pay errCode {c}; asking for the order's state")),
        None => Reply::unknown("a pay reply without errCode"),
    }
}

/// The query reply.
pub fn query(v: &Value, a: &AttemptRef) -> Reply {
    let err = text(v, "errCode").unwrap_or_default();
    if err.contains("NO_ORDER") || text(v, "errMsg").is_some_and(|m| m.contains("订单不存在"))
    {
        // "No such order": the machine believes it only once the pay request can no longer
        // create the order (not_found_final_after_ms). ChinaUMS publishes no code table; the
        // code and message are the sandbox's and the error texts seen in its SDK.
        return Reply::NotFound;
    }
    if text(v, "errCode").as_deref() != Some("00") {
        return Reply::unknown(format!("query did not work: {}", detail(v)));
    }
    let Some(code) = text(v, "queryResCode") else {
        return Reply::unknown("a query reply without queryResCode");
    };
    let Some((res, desc)) = query_res(&code) else {
        return Reply::unknown(format!("queryResCode {code} is not in the table"));
    };
    match res {
        QueryRes::Paid => check_paid(v, a),
        // ChinaUMS answered (signed, errCode 00) but does not know the order's state yet (1
        // 超时, FF 未知): not paid so far, and contact all the same — the schedule goes on and
        // the deadline fences, as for a customer still confirming. Never final.
        QueryRes::Unknown => {
            let _ = desc;
            Reply::Pending
        }
        QueryRes::Voided => Reply::Refunded,
        QueryRes::Refunded => {
            // Refunded in part means it was paid; in full, the money is back. Without the
            // refunded amount it cannot be told which: not known.
            match fen(v, "refundedAmount") {
                Some(r) if r < a.amount => check_paid(v, a),
                Some(_) => Reply::Refunded,
                None => Reply::unknown("queryResCode 3 (已退货) without refundedAmount"),
            }
        }
        QueryRes::ReversedNoCharge | QueryRes::Failed => Reply::Failed {
            code: code.clone(),
            reason: text(v, "queryResDesc").unwrap_or_else(|| desc.to_string()),
        },
    }
}

/// Whether a void worked.
pub fn void_done(v: &Value) -> bool {
    text(v, "errCode").as_deref() == Some("00")
}

/// The refund reply.
pub fn refund(v: &Value) -> RefundOutcome {
    match text(v, "errCode").as_deref() {
        Some("00") => RefundOutcome::Done {
            chan_refund_no: text(v, "refundOrderId"),
        },
        _ => RefundOutcome::Unknown {
            why: format!("refund not confirmed: {}", detail(v)),
        },
    }
}

/// The query-refund reply.
pub fn refund_query(v: &Value) -> RefundOutcome {
    if text(v, "errCode").as_deref() != Some("00") {
        return RefundOutcome::Unknown {
            why: format!("query-refund did not work: {}", detail(v)),
        };
    }
    let code = text(v, "queryResCode");
    let info = || {
        text(v, "queryResInfo")
            .or_else(|| text(v, "queryResDesc"))
            .unwrap_or_default()
    };
    match code.as_deref() {
        Some("0") | Some("00") => RefundOutcome::Done {
            chan_refund_no: text(v, "refundOrderId"),
        },
        // 5 失败 is the family's only definite failure (PROTOCOLS.md §D.4 [QRC]); 1 超时 and
        // FF 未知 say the state is not known, and a code outside the table proves nothing.
        Some("5") => RefundOutcome::Failed {
            code: "5".into(),
            reason: Some(info())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "失败".into()),
        },
        Some(c) => RefundOutcome::Unknown {
            why: format!("query-refund queryResCode {c:?} {}: not known yet", info()),
        },
        None => RefundOutcome::Unknown {
            why: "a query-refund reply without queryResCode".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{Method, OrderDetails};
    use serde_json::json;

    fn a() -> AttemptRef {
        AttemptRef {
            out_trade_no: "T0126112210000001".into(),
            amount: Amount::from_fen(1200),
            wallet: None,
            method: Method::Code,
            chan_txn_time: "20261122100000".into(),
            created_ms: 0,
            chan_trade_no: None,
            details: OrderDetails::default(),
        }
    }

    #[test]
    fn pay_codes() {
        let ok = json!({"errCode":"00","merchantOrderId":"T0126112210000001","amount":1200});
        assert_eq!(pay(&ok, &a()), Reply::Paid);
        let wrong = json!({"errCode":"00","merchantOrderId":"T0126112210000001","amount":1});
        assert!(matches!(pay(&wrong, &a()), Reply::Unknown { .. }));
        let other = json!({"errCode":"00","merchantOrderId":"X","amount":1200});
        assert!(matches!(pay(&other, &a()), Reply::Unknown { .. }));
        assert!(matches!(
            pay(&json!({"errCode":"00"}), &a()),
            Reply::Unknown { .. }
        ));
        assert_eq!(pay(&json!({"errCode":"0000"}), &a()), Reply::Pending);
        // No documented decline table: an unfamiliar code is asked about, never believed.
        assert!(matches!(
            pay(&json!({"errCode":"NOTENOUGH"}), &a()),
            Reply::Unknown { .. }
        ));
    }

    #[test]
    fn query_res_code_table() {
        let q = |c: &str| {
            query(
                &json!({"errCode":"00","queryResCode":c,"merchantOrderId":"T0126112210000001","amount":"1200","refundedAmount":0}),
                &a(),
            )
        };
        assert_eq!(q("0"), Reply::Paid);
        assert!(matches!(q("1"), Reply::Pending));
        assert_eq!(q("2"), Reply::Refunded);
        assert_eq!(q("3"), Reply::Paid, "refunded in part: it was paid");
        assert!(matches!(q("4"), Reply::Failed { .. }));
        assert!(matches!(q("5"), Reply::Failed { .. }));
        assert!(matches!(q("FF"), Reply::Pending));
        assert!(
            matches!(q("7"), Reply::Unknown { .. }),
            "unknown stays unknown"
        );
        let full = json!({"errCode":"00","queryResCode":"3","amount":1200,"refundedAmount":1200});
        assert_eq!(query(&full, &a()), Reply::Refunded);
        // Refunded, but how much is not said: neither paid nor refunded is proven.
        let vague = json!({"errCode":"00","queryResCode":"3","amount":1200});
        assert!(matches!(query(&vague, &a()), Reply::Unknown { .. }));
        assert!(matches!(
            query(&json!({"errCode":"ERR","queryResCode":"0"}), &a()),
            Reply::Unknown { .. }
        ));
    }

    #[test]
    fn refund_codes() {
        assert_eq!(
            refund(&json!({"errCode":"00","refundOrderId":"R1"})),
            RefundOutcome::Done {
                chan_refund_no: Some("R1".into())
            }
        );
        assert!(matches!(
            refund(&json!({"errCode":"X"})),
            RefundOutcome::Unknown { .. }
        ));
        assert!(matches!(
            refund_query(&json!({"errCode":"00","queryResCode":"00"})),
            RefundOutcome::Done { .. }
        ));
        assert!(matches!(
            refund_query(&json!({"errCode":"00","queryResCode":"5"})),
            RefundOutcome::Failed { .. }
        ));
        assert!(matches!(
            refund_query(&json!({"errCode":"9"})),
            RefundOutcome::Unknown { .. }
        ));
        // The family's own words for "not known": 1 超时, FF 未知; and a code not in the table.
        for c in ["1", "FF", "7", ""] {
            let q = refund_query(&json!({"errCode":"00","queryResCode":c}));
            assert!(matches!(q, RefundOutcome::Unknown { .. }), "{c}: {q:?}");
        }
    }
}
