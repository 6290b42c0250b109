//! The sandbox's aggregator (seed 003) on its real paths, with the amount scenarios of DESIGN.md §5.
//!
//! Every request's MD5 signature is checked (a bad one gets 20002) and every reply is signed —
//! except scenario 56, whose reply signature is deliberately wrong. The seed's rules are enforced:
//! one order number pays once, refunds never exceed what was paid and one out_refund_no refunds
//! once, cancel only from 15 s to 5 minutes after the order on the sandbox clock.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ledger::{Order, Refund, Status};
use super::{Sandbox, after_request_of, begin, hang_up, post_notification};
use crate::gateway::aggregator::Fields;
use crate::gateway::aggregator::codes::code;

/// What processing a request decided.
enum Out {
    Reply(Fields),
    /// Scenario 56: a reply whose signature does not match.
    BadSignature(Fields),
    /// Scenarios 54/55: the reply never comes.
    Hang,
}

fn fail(c: &str, msg: &str) -> Fields {
    let mut f = Fields::new();
    f.set("state", "FAIL").set("code", c).set("msg", msg);
    f
}

fn success(c: &str, trade_state: &str, msg: &str) -> Fields {
    let mut f = Fields::new();
    f.set("state", "SUCCESS")
        .set("code", c)
        .set("trade_state", trade_state)
        .set("msg", msg);
    f
}

fn nonce() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().r#gen();
    format!("{n:016x}")
}

fn json(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn finish(sb: &Sandbox, out: Fields) -> String {
    let key = sb.lock().cfg.key.clone();
    let mut out = out;
    out.set("nonce_str", nonce());
    out.signed(&key).to_json()
}

/// Common handling: faults, signature, then `process`.
async fn handle(
    sb: Sandbox,
    body: &[u8],
    process: impl FnOnce(&Sandbox, &Fields) -> Out,
) -> Response {
    let (faults, (key, mch)) = match begin(&sb, "the aggregator", |c| {
        Some((c.key.clone(), c.mch_id.clone()))
    })
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let req = Fields::from_form(body);
    let method = req.get("method").unwrap_or("preorder").to_string();
    let out = if req.verify(&key).is_err() {
        Out::Reply(fail(code::SIGN_ERROR, "签名错误"))
    } else if req.get("mch_id").is_some_and(|m| m != mch) {
        Out::Reply(fail(code::MERCHANT_ERROR, "商户错误 unknown mch_id"))
    } else {
        process(&sb, &req)
    };
    let reply = match out {
        Out::Reply(f) => json(finish(&sb, f)),
        Out::BadSignature(f) => {
            let s = finish(&sb, f);
            // Flip the signature's first hex digit.
            let broken = s.replacen("\"sign\":\"", "\"sign\":\"0", 1).replacen(
                "\"sign\":\"00",
                "\"sign\":\"F0",
                1,
            );
            json(broken)
        }
        Out::Hang => return hang_up(&sb).await,
    };
    after_request_of(&sb, &faults, &method, reply).await
}

pub async fn gateway(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |sb, req| {
        let method = req.get("method").unwrap_or("");
        for need in ["agent_id", "version", "pid", "mch_id"] {
            if req.get(need).is_none() {
                return Out::Reply(fail(code::PARAM_ERROR, &format!("缺少参数 {need}")));
            }
        }
        match method {
            "pay" | "facepay" => pay(sb, req, method),
            "orderquery" => Out::Reply(query(sb, req)),
            "cancel" => Out::Reply(cancel(sb, req)),
            "refund" => Out::Reply(refund(sb, req)),
            "refundquery" => Out::Reply(refund_query(sb, req)),
            "getfaceauth" => Out::Reply(face_auth(req)),
            _ => Out::Reply(fail(
                code::PARAM_ERROR,
                &format!("未知接口 method={method}"),
            )),
        }
    })
    .await
}

fn valid_no(s: &str) -> bool {
    crate::gateway::aggregator::valid_out_trade_no(s)
}

/// `total_fee`: a positive whole number of fen.
fn total_fee(req: &Fields) -> Option<u64> {
    req.get("total_fee")
        .and_then(|f| f.parse::<u64>().ok())
        .filter(|f| *f > 0)
}

fn paid_fields(o: &Order, mch: &str) -> Fields {
    let mut f = success(code::OK, "SUCCESS", "SUCCESS");
    f.set("mch_id", mch)
        .set("out_trade_no", o.out_trade_no.as_str())
        .set("transaction_id", o.transaction_id.as_str())
        .set("out_transaction_id", o.transaction_id.as_str())
        .set("base_fee", o.amount_fen.to_string())
        .set("total_fee", o.amount_fen.to_string())
        .set("fee_type", "CNY")
        .set("time_end", crate::util::beijing_stamp(o.created_ms))
        .set(
            "trade_type",
            if o.kind == "preorder" {
                "NATIVE"
            } else {
                "MICROPAY"
            },
        );
    f
}

fn pay(sb: &Sandbox, req: &Fields, method: &str) -> Out {
    let mut g = sb.lock();
    let mch = g.cfg.mch_id.clone();
    let no = req.get("out_trade_no").unwrap_or("").to_string();
    if !valid_no(&no) {
        return Out::Reply(fail(
            code::PARAM_ERROR,
            "out_trade_no 须为5到32位字母数字下划线",
        ));
    }
    let Some(fee) = total_fee(req) else {
        return Out::Reply(fail(code::PARAM_ERROR, "total_fee 须为正整数(分)"));
    };
    let credential_ok = if method == "pay" {
        req.get("auth_code")
            .is_some_and(|c| c.len() >= 16 && c.bytes().all(|b| b.is_ascii_digit()))
    } else {
        req.get("face_code").is_some()
            && req.get("openid").is_some()
            && req.get("paytype").is_some()
    };
    if !credential_ok {
        return Out::Reply(fail(
            code::PARAM_ERROR,
            "付款凭证无效 auth_code/face_code invalid",
        ));
    }
    if req.get("body").is_none() {
        return Out::Reply(fail(code::PARAM_ERROR, "缺少参数 body"));
    }
    g.seen_out_trade_nos.push(no.clone());
    if g.ledger.get(&no).is_some() {
        return Out::Reply(fail(
            code::PARAM_ERROR,
            "订单号重复 (ORDERPAID / OUT_TRADE_NO_USED)",
        ));
    }
    let scenario = fee % 100;
    if scenario == 55 {
        // The order is never created and the reply never comes.
        return Out::Hang;
    }
    let now = g.clock.now_ms();
    let paytype = req
        .get("paytype")
        .map(str::to_string)
        .unwrap_or_else(|| paytype_of(req.get("auth_code").unwrap_or("")));
    let order = Order::new(
        &no,
        &paytype,
        method,
        fee,
        Status::of_scenario(scenario),
        now,
        format!("42{now}{}", &no[no.len().saturating_sub(4)..]),
    );
    let unpaid = |c: &str, trade_state: &str, msg: &str| {
        let mut f = success(c, trade_state, msg);
        f.set("mch_id", mch.as_str())
            .set("out_trade_no", no.as_str());
        Out::Reply(f)
    };
    let reply = match scenario {
        51 => unpaid(
            code::PAY_ERROR,
            "FAIL",
            "余额不足 (NOTENOUGH: insufficient balance)",
        ),
        52 | 53 => unpaid(
            code::PAYING,
            "PROCESSING",
            "需要用户输入支付密码 (USERPAYING)",
        ),
        54 => Out::Hang,
        56 => Out::BadSignature(paid_fields(&order, &mch)),
        57 => Out::Reply(fail(code::SYSTEM_ERROR, "系统错误 (SYSTEMERROR)")),
        _ => Out::Reply(paid_fields(&order, &mch)),
    };
    g.ledger.orders.push(order);
    reply
}

fn paytype_of(code: &str) -> String {
    crate::core::AuthCode::classify(code, &crate::core::authcode::default_rules())
        .map(|c| c.wallet().paytype().to_string())
        .unwrap_or_else(|_| "WECHAT".into())
}

fn query(sb: &Sandbox, req: &Fields) -> Fields {
    let mut g = sb.lock();
    let mch = g.cfg.mch_id.clone();
    if req.get("paytype").is_none() {
        return fail(code::PARAM_ERROR, "缺少参数 paytype");
    }
    let no = req.get("out_trade_no").unwrap_or("").to_string();
    let now = g.clock.now_ms();
    let (lag, in_progress) = (g.faults.lag_ms as i64, g.faults.in_progress_ms as i64);
    let Some(o) = g.ledger.get_mut(&no) else {
        return fail(code::NO_ORDER, "订单不存在");
    };
    if now - o.created_ms < lag {
        // A lagging order store: the order exists, the query cannot see it yet.
        return fail(code::NO_ORDER, "订单不存在");
    }
    if now - o.created_ms < in_progress {
        let mut f = success(code::PAYING, "PROCESSING", "支付中");
        f.set("mch_id", mch.as_str())
            .set("out_trade_no", no.as_str());
        return f;
    }
    o.queried();
    let mut f = match o.status {
        Status::Paid if o.refunded_fen() >= o.amount_fen => {
            success(code::REFUNDING, "REFUND", "转入退款")
        }
        Status::Paid => paid_fields(o, &mch),
        Status::Paying | Status::AwaitingScan => {
            success(code::NOT_PAID, "PROCESSING", "未支付 / 支付中")
        }
        Status::Declined => success(code::PAY_ERROR, "FAIL", "支付失败"),
        Status::Closed => success(code::CLOSED, "FAIL", "已关闭"),
        Status::Revoked => success(code::REVOKED, "REFUND", "已撤销"),
    };
    f.set("mch_id", mch.as_str())
        .set("out_trade_no", no.as_str());
    f
}

fn cancel(sb: &Sandbox, req: &Fields) -> Fields {
    let mut g = sb.lock();
    let mch = g.cfg.mch_id.clone();
    let now = g.clock.now_ms();
    if req.get("paytype").is_none() || req.get("op_user_id").is_none() {
        return fail(code::PARAM_ERROR, "缺少参数 paytype / op_user_id");
    }
    let no = req.get("out_trade_no").unwrap_or("").to_string();
    let mut ok = success(code::OK, "SUCCESS", "SUCCESS");
    ok.set("mch_id", mch.as_str());
    let (lag, not_found) = (g.faults.lag_ms as i64, g.faults.cancel_not_found);
    let hidden = g
        .ledger
        .get(&no)
        .is_some_and(|o| not_found || now - o.created_ms < lag);
    if hidden {
        // What real gateways do with a lagging store: 20007, and nothing is fenced.
        return fail(code::NO_ORDER, "订单不存在");
    }
    let Some(o) = g.ledger.get_mut(&no) else {
        let paytype = req.get("paytype").unwrap_or("");
        g.ledger
            .orders
            .push(Order::never_created(&no, paytype, "none", now));
        return ok;
    };
    let age = now - o.created_ms;
    if age < 15_000 {
        return fail(code::CANCEL_ERROR, "订单创建15秒后才能撤销，请稍后重试");
    }
    if age > 5 * 60_000 {
        return fail(code::CANCEL_ERROR, "订单超过5分钟不能撤销，请使用退款接口");
    }
    if !o.refunds.is_empty() {
        return fail(code::CANCEL_ERROR, "订单已退款，不能撤销");
    }
    if !o.cancel_try() {
        return fail(code::CANCEL_ERROR, "系统繁忙，请稍后重试 (recall=Y)");
    }
    o.status = match o.status {
        Status::Paid | Status::Revoked => Status::Revoked,
        _ => Status::Closed,
    };
    ok
}

fn refund(sb: &Sandbox, req: &Fields) -> Fields {
    let mut g = sb.lock();
    let mch = g.cfg.mch_id.clone();
    let now = g.clock.now_ms();
    let no = req.get("out_trade_no").unwrap_or("").to_string();
    let (Some(refund_no), Some(total), Some(fee)) = (
        req.get("out_refund_no").map(str::to_string),
        req.get("total_fee").and_then(|v| v.parse::<u64>().ok()),
        req.get("refund_fee")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|f| *f > 0),
    ) else {
        return fail(
            code::PARAM_ERROR,
            "缺少参数 out_refund_no / total_fee / refund_fee",
        );
    };
    if req.get("op_user_id").is_none() || req.get("paytype").is_none() {
        return fail(code::PARAM_ERROR, "缺少参数 op_user_id / paytype");
    }
    let Some(o) = g.ledger.get_mut(&no) else {
        return fail(code::NO_ORDER, "订单不存在");
    };
    let done = |o: &Order, r: &Refund| {
        let mut f = success(code::OK, "SUCCESS", "SUCCESS");
        f.set("mch_id", mch.as_str())
            .set("out_trade_no", o.out_trade_no.as_str())
            .set("transaction_id", o.transaction_id.as_str())
            .set("out_refund_no", r.out_refund_no.as_str())
            .set("refund_id", r.refund_id.as_str())
            .set("base_fee", o.amount_fen.to_string())
            .set("total_fee", o.amount_fen.to_string())
            .set("base_refund_fee", r.amount_fen.to_string())
            .set("refund_fee", r.amount_fen.to_string())
            .set("coupon_refund_fee", "0");
        f
    };
    if let Some(r) = o.refunds.iter().find(|r| r.out_refund_no == refund_no) {
        // The seed: one out_refund_no refunds once, however often it is sent.
        if r.amount_fen != fee {
            return fail(code::REFUND_ERROR, "退款单号已用于不同金额");
        }
        let r = r.clone();
        return done(o, &r);
    }
    if o.status != Status::Paid {
        return fail(code::REFUND_ERROR, "订单未支付或已撤销，不能退款");
    }
    if total != o.amount_fen {
        return fail(code::PARAM_ERROR, "total_fee 与订单金额不符");
    }
    if fee > o.amount_fen - o.refunded_fen() {
        return fail(code::REFUND_ERROR, "退款金额超过可退金额");
    }
    let refund_id = format!("50{now}{}", o.refunds.len());
    let r = o.add_refund(&refund_no, refund_id, fee, now);
    done(o, &r)
}

fn refund_query(sb: &Sandbox, req: &Fields) -> Fields {
    let g = sb.lock();
    let mch = g.cfg.mch_id.clone();
    let Some(no) = req.get("out_refund_no").or(req.get("refund_id")) else {
        return fail(code::PARAM_ERROR, "out_refund_no 和 refund_id 必填一个");
    };
    let found = g.ledger.orders.iter().find_map(|o| {
        o.refunds
            .iter()
            .find(|r| r.out_refund_no == no || r.refund_id == no)
            .map(|r| (o, r))
    });
    let Some((o, r)) = found else {
        return fail(code::NO_ORDER, "退款单不存在");
    };
    let list = serde_json::json!([{
        "serial_no": "0",
        "refund_id": r.refund_id,
        "out_refund_id": r.refund_id,
        "out_refund_no": r.out_refund_no,
        "base_refund_fee": r.amount_fen.to_string(),
        "refund_fee": r.amount_fen.to_string(),
        "coupon_refund_fee": "0",
        "refund_status": "SUCCESS",
        "refund_channel": "ORIGINAL",
        "refund_time": crate::util::beijing_human(r.at_ms),
    }]);
    let mut f = success(code::OK, "SUCCESS", "SUCCESS");
    f.set("mch_id", mch.as_str())
        .set("out_trade_no", o.out_trade_no.as_str())
        .set("transaction_id", o.transaction_id.as_str())
        .set("refund_count", "1")
        .set("base_refund_fee_summary", o.refunded_fen().to_string())
        .set("refund_fee_summary", o.refunded_fen().to_string())
        .set("refund_list", list.to_string());
    f
}

fn face_auth(req: &Fields) -> Fields {
    let (Some(raw), Some(_), Some(_)) = (
        req.get("rawdata"),
        req.get("store_id"),
        req.get("device_id"),
    ) else {
        return fail(code::PARAM_ERROR, "缺少参数 rawdata / store_id / device_id");
    };
    use sha2::Digest;
    let auth = hex::encode(&sha2::Sha256::digest(raw.as_bytes())[..16]);
    let mut f = success(code::OK, "SUCCESS", "SUCCESS");
    f.set("authinfo", format!("SANDBOXAUTH{auth}"))
        .set("expires_in", "3600");
    f
}

async fn preorder(sb: Sandbox, body: axum::body::Bytes, wallet: &'static str) -> Response {
    handle(sb, &body, move |sb, req| {
        let mut g = sb.lock();
        let mch = g.cfg.mch_id.clone();
        let base = g.base_url.clone();
        let no = req.get("out_trade_no").unwrap_or("").to_string();
        if !valid_no(&no) {
            return Out::Reply(fail(code::PARAM_ERROR, "out_trade_no 无效"));
        }
        let Some(fee) = total_fee(req) else {
            return Out::Reply(fail(code::PARAM_ERROR, "total_fee 须为正整数(分)"));
        };
        if req.get("trade_type") != Some("NATIVE") {
            return Out::Reply(fail(code::PARAM_ERROR, "沙箱只支持 trade_type=NATIVE"));
        }
        g.seen_out_trade_nos.push(no.clone());
        if g.ledger.get(&no).is_some() {
            return Out::Reply(fail(code::PARAM_ERROR, "订单号重复"));
        }
        let now = g.clock.now_ms();
        g.ledger.orders.push(Order {
            notify_url: req.get("notify_url").map(str::to_string),
            ..Order::new(
                &no,
                wallet,
                "preorder",
                fee,
                Status::AwaitingScan,
                now,
                format!("43{now}"),
            )
        });
        let mut f = success(code::OK, "SUCCESS", "SUCCESS");
        f.set("mch_id", mch.as_str())
            .set("out_trade_no", no.as_str())
            .set("code_url", format!("{base}/_sandbox/qr/{no}"));
        Out::Reply(f)
    })
    .await
}

pub async fn preorder_wechat(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    preorder(sb, body, "WECHAT").await
}

pub async fn preorder_alipay(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    preorder(sb, body, "ALIPAY").await
}

pub async fn mch_info(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |sb, _req| {
        let mut f = success(code::OK, "", "SUCCESS");
        f.set("mch_id", sb.lock().cfg.mch_id.as_str())
            .set("FullName", "payterm 沙箱测试商户")
            .set("ShortName", "沙箱商户");
        Out::Reply(f)
    })
    .await
}

/// The customer scans a pre-order's QR code and pays: the order becomes paid and a signed
/// notification goes to its notify_url, retried on the seed's schedule until it says `success`.
pub async fn customer_scans(State(sb): State<Sandbox>, Path(no): Path<String>) -> Response {
    let (notify, fields, schedule) = {
        let mut g = sb.lock();
        let mch = g.cfg.mch_id.clone();
        let key = g.cfg.key.clone();
        let schedule = g.cfg.notify_schedule_ms.clone();
        let Some(o) = g.ledger.get_mut(&no) else {
            return (StatusCode::NOT_FOUND, "no such pre-order").into_response();
        };
        if o.status != Status::AwaitingScan {
            return (StatusCode::CONFLICT, format!("the order is {:?}", o.status)).into_response();
        }
        o.status = if o.amount_fen % 100 == 51 {
            Status::Declined
        } else {
            Status::Paid
        };
        let paid = o.status == Status::Paid;
        let mut f = Fields::new();
        f.set("state", "SUCCESS")
            .set("result_code", if paid { "SUCCESS" } else { "FAIL" })
            .set("pay_result", if paid { "0" } else { "1" })
            .set("mch_id", mch.as_str())
            .set("out_trade_no", o.out_trade_no.as_str())
            .set("out_transaction_id", o.transaction_id.as_str())
            .set("transaction_id", o.transaction_id.as_str())
            .set("total_fee", o.amount_fen.to_string())
            .set("fee_type", "CNY")
            .set("time_end", crate::util::beijing_stamp(o.created_ms))
            .set(
                "trade_type",
                if o.paytype == "ALIPAY" {
                    "pay.alipay.native"
                } else {
                    "pay.weixin.native"
                },
            )
            .set("nonce_str", nonce());
        (o.notify_url.clone(), f.signed(&key), schedule)
    };
    if let Some(url) = notify {
        let body = fields.to_form();
        tokio::spawn(async move {
            for delay in schedule {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                let url = url.clone();
                let body = body.clone();
                let answer = tokio::task::spawn_blocking(move || {
                    post_notification(&url, "application/x-www-form-urlencoded", body.as_bytes())
                        .ok()
                        .and_then(|mut r| r.body_mut().read_to_string().ok())
                })
                .await
                .ok()
                .flatten();
                if answer.as_deref().map(str::trim) == Some("success") {
                    break;
                }
            }
        });
    }
    (
        StatusCode::OK,
        "paid in the sandbox; the terminal is being notified",
    )
        .into_response()
}

/// The 运维管理 group's common parameters (no `mch_id`: these come before one is known).
fn ops_common(req: &Fields) -> Option<Fields> {
    for need in ["agent_id", "version", "pid"] {
        if req.get(need).is_none() {
            return Some(fail(code::PARAM_ERROR, &format!("缺少参数 {need}")));
        }
    }
    None
}

/// Mch_Reg: any agreed parameters register a virtual merchant; its id is derived from them, so
/// the same registration gets the same id.
pub async fn mch_reg(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |_sb, req| {
        if let Some(f) = ops_common(req) {
            return Out::Reply(f);
        }
        let mut own: Vec<String> = req
            .pairs()
            .filter(|(k, _)| !["agent_id", "version", "pid", "sign"].contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if own.is_empty() {
            return Out::Reply(fail(code::PARAM_ERROR, "缺少注册参数"));
        }
        own.sort();
        use sha2::Digest;
        let h = sha2::Sha256::digest(own.join("&").as_bytes());
        let mut f = success(code::OK, "", "SUCCESS");
        f.set("mch_id", format!("V{}", &hex::encode(h)[..10]));
        Out::Reply(f)
    })
    .await
}

/// The SMS code the sandbox "sends" to every mobile number.
pub const SANDBOX_SMS_CODE: &str = "1234";
/// The password GetMchId accepts for any username in the sandbox.
pub const SANDBOX_MCH_PASSWORD: &str = "sandbox";

fn mobile_ok(m: Option<&str>) -> bool {
    m.is_some_and(|m| m.len() == 11 && m.bytes().all(|b| b.is_ascii_digit()))
}

pub async fn mch_sms(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |_sb, req| {
        if let Some(f) = ops_common(req) {
            return Out::Reply(f);
        }
        if !mobile_ok(req.get("mobile")) {
            return Out::Reply(fail(code::PARAM_ERROR, "手机号无效"));
        }
        // The seed's quirk: `code` carries the code's validity in minutes.
        let mut f = Fields::new();
        f.set("state", "SUCCESS")
            .set("code", "20")
            .set("msg", "短信验证码已发送");
        Out::Reply(f)
    })
    .await
}

pub async fn mch_id(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |sb, req| {
        if let Some(f) = ops_common(req) {
            return Out::Reply(f);
        }
        let by_sms = mobile_ok(req.get("mobile")) && req.get("valid").is_some();
        let by_password = req.get("username").is_some() && req.get("password").is_some();
        if !by_sms && !by_password {
            return Out::Reply(fail(
                code::PARAM_ERROR,
                "（手机号+验证码）或（用户名+用户密码）不能同时为空",
            ));
        }
        let good = if by_sms {
            req.get("valid") == Some(SANDBOX_SMS_CODE)
        } else {
            req.get("password") == Some(SANDBOX_MCH_PASSWORD)
        };
        if !good {
            return Out::Reply(fail(code::MERCHANT_ERROR, "验证码或密码错误"));
        }
        let mut f = success(code::OK, "", "SUCCESS");
        f.set("mch_id", sb.lock().cfg.mch_id.as_str())
            .set("mch_trade_code", "f6742168cc")
            .set("mch_full_name", "payterm 沙箱测试商户")
            .set("mch_short_name", "沙箱商户")
            .set("mch_state", "20");
        Out::Reply(f)
    })
    .await
}

pub async fn partner_id(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |sb, req| {
        if let Some(f) = ops_common(req) {
            return Out::Reply(f);
        }
        if req.get("mch_id").is_none() {
            return Out::Reply(fail(code::PARAM_ERROR, "缺少参数 mch_id"));
        }
        let list = serde_json::json!([
            {"pay_channel": "CEB", "partner_id": "257012345", "appid": "wx2a8d87e234100000"},
            {"pay_channel": "CCB", "partner_id": "", "appid": "wx2a8d87e234100000"},
        ]);
        let mut f = success(code::OK, "", "SUCCESS");
        f.set("mch_id", sb.lock().cfg.mch_id.as_str())
            .set("partner_list", list.to_string());
        Out::Reply(f)
    })
    .await
}

/// WXA_Code2Session: any `wx…` appid and login code give an openid derived from the code (the
/// same code, the same user); a code starting `nounion` gets no unionid.
pub async fn code2session(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    handle(sb, &body, |_sb, req| {
        if let Some(f) = ops_common(req) {
            return Out::Reply(f);
        }
        let (Some(appid), Some(js_code)) = (req.get("appid"), req.get("js_code")) else {
            return Out::Reply(fail(code::PARAM_ERROR, "缺少参数 appid / js_code"));
        };
        if !appid.starts_with("wx") {
            return Out::Reply(fail(code::PARAM_ERROR, "appid 无效"));
        }
        use base64::Engine;
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("{appid}:{js_code}").as_bytes());
        let mut f = success(code::OK, "", "SUCCESS");
        f.set("openid", format!("oSBX_{}", &hex::encode(h)[..22]))
            .set(
                "session_key",
                base64::engine::general_purpose::STANDARD.encode(&h[16..]),
            )
            .set("expires_in", "7200");
        if !js_code.starts_with("nounion") {
            f.set("unionid", format!("uSBX_{}", &hex::encode(h)[22..44]));
        }
        Out::Reply(f)
    })
    .await
}
