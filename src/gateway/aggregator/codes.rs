//! What the aggregator's `state`, `code` and `trade_state` mean for the money (seed 003, 参数规定).
//!
//! Each function maps a verified reply to the state machine's vocabulary for one operation.
//! The rule everywhere: only an explicit success is success, only a code that says the request was
//! refused before it could move money is a failure, and everything else is unknown.

use crate::core::machine::Reply;
use crate::gateway::RefundOutcome;

use super::wire::Fields;

/// Communication / business codes of the seed.
pub mod code {
    pub const OK: &str = "10000";
    pub const PAYING: &str = "10001";
    pub const REFUNDING: &str = "10002";
    pub const NOT_PAID: &str = "10003";
    pub const CLOSED: &str = "10004";
    pub const REVOKED: &str = "10005";
    pub const PAY_ERROR: &str = "10006";
    pub const SIGN_ERROR: &str = "20002";
    pub const REPLY_SIGN_ERROR: &str = "20003";
    pub const PARAM_ERROR: &str = "20004";
    pub const MERCHANT_ERROR: &str = "20005";
    pub const SYSTEM_ERROR: &str = "20006";
    pub const NO_ORDER: &str = "20007";
    pub const REFUND_ERROR: &str = "20008";
    pub const QUERY_ERROR: &str = "20009";
    pub const REFUND_QUERY_ERROR: &str = "20010";
    pub const CANCEL_ERROR: &str = "20011";
    pub const AGENT_ERROR: &str = "20012";
    pub const MERCHANT_CONFIG_ERROR: &str = "20013";
    pub const NETWORK_ERROR: &str = "30001";
}

/// The seed's code table in words, for people.
pub fn describe(c: &str) -> &'static str {
    match c {
        code::OK => "成功 success",
        code::PAYING => "支付中 customer paying",
        code::REFUNDING => "转入退款 refunded",
        code::NOT_PAID => "未支付 not paid",
        code::CLOSED => "已关闭 closed",
        code::REVOKED => "已撤销 revoked",
        code::PAY_ERROR => "支付错误 payment error",
        code::SIGN_ERROR => "签名错误 request signature rejected",
        code::REPLY_SIGN_ERROR => "响应结果签名错误 reply signature error",
        code::PARAM_ERROR => "参数错误 parameter error",
        code::MERCHANT_ERROR => "商户错误 merchant error",
        code::SYSTEM_ERROR => "系统错误 system error",
        code::NO_ORDER => "订单不存在 no such order",
        code::REFUND_ERROR => "退款错误 refund error",
        code::QUERY_ERROR => "交易查询错误 query error",
        code::REFUND_QUERY_ERROR => "退款查询错误 refund query error",
        code::CANCEL_ERROR => "交易撤销错误 cancel error",
        code::AGENT_ERROR => "代理商错误 agent error",
        code::MERCHANT_CONFIG_ERROR => "商户交易配置错误 merchant configuration error",
        code::NETWORK_ERROR => "网络异常 network error",
        _ => "unlisted code",
    }
}

/// Codes that say the gateway refused the request itself: nothing was charged.
fn refused_before_processing(c: &str) -> bool {
    matches!(
        c,
        code::SIGN_ERROR
            | code::PARAM_ERROR
            | code::MERCHANT_ERROR
            | code::AGENT_ERROR
            | code::MERCHANT_CONFIG_ERROR
    )
}

fn says_number_used(msg: &str) -> bool {
    msg.contains("订单号重复") || msg.contains("ORDERPAID") || msg.contains("OUT_TRADE_NO_USED")
}

fn detail(f: &Fields) -> (String, String) {
    (
        f.get("code").unwrap_or("").to_string(),
        f.get("msg").unwrap_or("").to_string(),
    )
}

fn failed(f: &Fields) -> Reply {
    let (code, msg) = detail(f);
    let reason = if msg.is_empty() {
        describe(&code).to_string()
    } else {
        msg
    };
    Reply::Failed { code, reason }
}

fn unknown(f: &Fields) -> Reply {
    let (code, msg) = detail(f);
    Reply::Unknown {
        why: format!(
            "{code} {}",
            if msg.is_empty() {
                describe(&code)
            } else {
                &msg
            }
        ),
    }
}

/// A pay (or facepay) reply.
pub fn pay(f: &Fields) -> Reply {
    let state = f.get("state").unwrap_or("");
    let c = f.get("code").unwrap_or("");
    let ts = f.get("trade_state").unwrap_or("");
    let msg = f.get("msg").unwrap_or("");
    if says_number_used(msg) {
        return Reply::OrderNumberUsed;
    }
    if state != "SUCCESS" {
        return if state == "VER" || refused_before_processing(c) {
            failed(f)
        } else {
            unknown(f)
        };
    }
    match (c, ts) {
        (code::OK, "SUCCESS") => Reply::Paid,
        (code::PAYING | code::NOT_PAID, _) | (_, "PROCESSING") => Reply::Pending,
        (_, "NEED_QUERY") => unknown(f),
        (code::PAY_ERROR | code::CLOSED, _) | (_, "FAIL") => failed(f),
        _ if refused_before_processing(c) => failed(f),
        _ => unknown(f),
    }
}

/// An orderquery reply.
pub fn query(f: &Fields) -> Reply {
    let state = f.get("state").unwrap_or("");
    let c = f.get("code").unwrap_or("");
    let ts = f.get("trade_state").unwrap_or("");
    if c == code::NO_ORDER {
        return Reply::NotFound;
    }
    if state != "SUCCESS" {
        return unknown(f);
    }
    match (c, ts) {
        (code::OK, "SUCCESS") => Reply::Paid,
        // 已撤销: the seed's cancel "revokes a paid order" (支付成功的撤销支付) — money returned.
        (code::REFUNDING | code::REVOKED, _) | (_, "REFUND") => Reply::Refunded,
        (code::PAYING | code::NOT_PAID, _) | (_, "PROCESSING" | "NEED_QUERY") => Reply::Pending,
        // 已关闭: the seed's cancel "closes a failed one" (支付失败的关单) — never paid.
        (code::CLOSED, _) => Reply::Closed,
        (code::PAY_ERROR, _) | (_, "FAIL") => failed(f),
        _ => unknown(f),
    }
}

/// A cancel reply. Even a success does not say what became of the money, and "no such order"
/// does not fence anything (a lagging order store, or a pay request still on its way, can still
/// create the order): the machine asks the order, and believes "no such order" only late.
pub fn cancel(f: &Fields) -> Reply {
    let state = f.get("state").unwrap_or("");
    let c = f.get("code").unwrap_or("");
    let msg = f.get("msg").unwrap_or("");
    if state == "SUCCESS" && c == code::OK {
        return Reply::CancelAccepted;
    }
    match c {
        code::NO_ORDER => Reply::NotFound,
        // Already revoked or closed: what that did to the money, the order's query says.
        code::REVOKED | code::CLOSED => Reply::CancelAccepted,
        code::CANCEL_ERROR if msg.contains("5分钟") || msg.contains("超过") => {
            Reply::WindowClosed
        }
        code::CANCEL_ERROR if msg.contains("退款") && msg.contains("已") => Reply::Refused {
            why: msg.to_string(),
        },
        code::CANCEL_ERROR => Reply::RetryLater {
            why: format!("{c} {msg}"),
        },
        _ if refused_before_processing(c) => Reply::Refused {
            why: format!("{c} {msg}"),
        },
        _ => unknown(f),
    }
}

/// A refund reply.
pub fn refund(f: &Fields) -> RefundOutcome {
    let state = f.get("state").unwrap_or("");
    let c = f.get("code").unwrap_or("");
    let ts = f.get("trade_state").unwrap_or("");
    let (code, msg) = detail(f);
    if state == "SUCCESS" && c == code::OK && (ts == "SUCCESS" || ts.is_empty()) {
        return RefundOutcome::Done {
            chan_refund_no: f.get("refund_id").map(str::to_string),
        };
    }
    if ts == "PROCESSING" || c == code::PAYING {
        return RefundOutcome::Processing;
    }
    // 退款错误 and a FAIL are not proof: the seed says a failed refund is sent again with its
    // original out_refund_no (which refunds at most once), and another refund may be started
    // only once the failure is certain — which the refund query's FAIL status says.
    if refused_before_processing(c) {
        return RefundOutcome::Failed {
            reason: if msg.is_empty() {
                describe(&code).to_string()
            } else {
                msg
            },
            code,
        };
    }
    RefundOutcome::Unknown {
        why: format!("{code} {msg}"),
    }
}

/// A refundquery reply, for one out_refund_no.
pub fn refund_query(f: &Fields, out_refund_no: &str) -> RefundOutcome {
    let state = f.get("state").unwrap_or("");
    let c = f.get("code").unwrap_or("");
    if state != "SUCCESS" || c != code::OK {
        // "No such refund" proves nothing either: the refund request may still be on its way;
        // re-sending it with the same number is what settles it.
        let (code, msg) = detail(f);
        return RefundOutcome::Unknown {
            why: format!("{code} {msg}"),
        };
    }
    let list: Vec<serde_json::Value> = f
        .get("refund_list")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let entry = list
        .iter()
        .find(|e| e.get("out_refund_no").and_then(|v| v.as_str()) == Some(out_refund_no));
    let Some(e) = entry else {
        return RefundOutcome::Unknown {
            why: "the refund is not in the list".into(),
        };
    };
    let status = e
        .get("refund_status")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    match status {
        "SUCCESS" => RefundOutcome::Done {
            chan_refund_no: e
                .get("refund_id")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        },
        "PROCESSING" => RefundOutcome::Processing,
        "FAIL" => RefundOutcome::Failed {
            code: "FAIL".into(),
            reason: "退款失败 refund failed".into(),
        },
        "CHANGE" => RefundOutcome::Failed {
            code: "CHANGE".into(),
            reason: "转入代发: the card was void; the money is with the merchant, refund by hand"
                .into(),
        },
        // NOTSURE: the seed says to re-submit with the same out_refund_no.
        other => RefundOutcome::Unknown {
            why: format!("refund status {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Fields {
        let mut x = Fields::new();
        for (k, v) in pairs {
            x.set(k, *v);
        }
        x
    }

    #[test]
    fn pay_replies() {
        assert_eq!(
            pay(&f(&[
                ("state", "SUCCESS"),
                ("code", "10000"),
                ("trade_state", "SUCCESS")
            ])),
            Reply::Paid
        );
        assert_eq!(
            pay(&f(&[
                ("state", "SUCCESS"),
                ("code", "10001"),
                ("trade_state", "PROCESSING")
            ])),
            Reply::Pending
        );
        assert!(matches!(
            pay(&f(&[
                ("state", "SUCCESS"),
                ("code", "10006"),
                ("trade_state", "FAIL"),
                ("msg", "余额不足")
            ])),
            Reply::Failed { .. }
        ));
        assert!(matches!(
            pay(&f(&[("state", "FAIL"), ("code", "20002")])),
            Reply::Failed { .. }
        ));
        assert!(matches!(
            pay(&f(&[("state", "FAIL"), ("code", "20006")])),
            Reply::Unknown { .. }
        ));
        assert!(matches!(
            pay(&f(&[("state", "FAIL"), ("code", "30001")])),
            Reply::Unknown { .. }
        ));
        assert!(matches!(
            pay(&f(&[
                ("state", "SUCCESS"),
                ("code", "10000"),
                ("trade_state", "NEED_QUERY")
            ])),
            Reply::Unknown { .. }
        ));
        assert_eq!(
            pay(&f(&[
                ("state", "FAIL"),
                ("code", "20004"),
                ("msg", "订单号重复")
            ])),
            Reply::OrderNumberUsed
        );
        // A success without trade_state is not a success.
        assert!(matches!(
            pay(&f(&[("state", "SUCCESS"), ("code", "10000")])),
            Reply::Unknown { .. }
        ));
    }

    #[test]
    fn query_replies() {
        assert_eq!(
            query(&f(&[
                ("state", "SUCCESS"),
                ("code", "10000"),
                ("trade_state", "SUCCESS")
            ])),
            Reply::Paid
        );
        assert_eq!(
            query(&f(&[("state", "FAIL"), ("code", "20007")])),
            Reply::NotFound
        );
        assert_eq!(
            query(&f(&[
                ("state", "SUCCESS"),
                ("code", "10003"),
                ("trade_state", "PROCESSING")
            ])),
            Reply::Pending
        );
        assert_eq!(
            query(&f(&[
                ("state", "SUCCESS"),
                ("code", "10002"),
                ("trade_state", "REFUND")
            ])),
            Reply::Refunded
        );
        assert_eq!(
            query(&f(&[
                ("state", "SUCCESS"),
                ("code", "10004"),
                ("trade_state", "FAIL")
            ])),
            Reply::Closed
        );
        assert!(matches!(
            query(&f(&[("state", "FAIL"), ("code", "20009")])),
            Reply::Unknown { .. }
        ));
    }

    #[test]
    fn cancel_replies() {
        // A success says the cancel was taken, not what it did to the money.
        assert_eq!(
            cancel(&f(&[("state", "SUCCESS"), ("code", "10000")])),
            Reply::CancelAccepted
        );
        // 20007 fences nothing: the order may still appear (found against a lagging gateway).
        assert_eq!(
            cancel(&f(&[("state", "FAIL"), ("code", "20007")])),
            Reply::NotFound
        );
        assert!(matches!(
            cancel(&f(&[
                ("state", "FAIL"),
                ("code", "20011"),
                ("msg", "订单创建15秒后才能撤销")
            ])),
            Reply::RetryLater { .. }
        ));
        assert!(matches!(
            cancel(&f(&[
                ("state", "FAIL"),
                ("code", "20011"),
                ("msg", "订单超过5分钟不能撤销，请使用退款")
            ])),
            Reply::WindowClosed
        ));
        assert!(matches!(
            cancel(&f(&[("state", "FAIL"), ("code", "20006")])),
            Reply::Unknown { .. }
        ));
        // What the cancel did is read from the order: revoked = returned, closed = never paid.
        assert_eq!(
            query(&f(&[("state", "SUCCESS"), ("code", "10005")])),
            Reply::Refunded
        );
        assert_eq!(
            query(&f(&[("state", "SUCCESS"), ("code", "10004")])),
            Reply::Closed
        );
    }

    #[test]
    fn refund_replies() {
        assert!(matches!(
            refund(&f(&[
                ("state", "SUCCESS"),
                ("code", "10000"),
                ("trade_state", "SUCCESS")
            ])),
            RefundOutcome::Done { .. }
        ));
        // 退款错误 is re-sent with the same number, never taken as a failure that frees the
        // amount for a second, real refund.
        assert!(matches!(
            refund(&f(&[
                ("state", "FAIL"),
                ("code", "20008"),
                ("msg", "退款失败")
            ])),
            RefundOutcome::Unknown { .. }
        ));
        assert!(matches!(
            refund(&f(&[
                ("state", "FAIL"),
                ("code", "20004"),
                ("msg", "参数错误")
            ])),
            RefundOutcome::Failed { .. }
        ));
        assert!(matches!(
            refund_query(&f(&[("state", "FAIL"), ("code", "20007")]), "R1"),
            RefundOutcome::Unknown { .. }
        ));
        assert!(matches!(
            refund(&f(&[("state", "FAIL"), ("code", "20006")])),
            RefundOutcome::Unknown { .. }
        ));
        let list = r#"[{"out_refund_no":"R1","refund_status":"SUCCESS","refund_id":"9"},{"out_refund_no":"R2","refund_status":"NOTSURE"}]"#;
        let q = f(&[
            ("state", "SUCCESS"),
            ("code", "10000"),
            ("refund_list", list),
        ]);
        assert!(matches!(refund_query(&q, "R1"), RefundOutcome::Done { .. }));
        assert!(matches!(
            refund_query(&q, "R2"),
            RefundOutcome::Unknown { .. }
        ));
        assert!(matches!(
            refund_query(&q, "R3"),
            RefundOutcome::Unknown { .. }
        ));
    }
}
