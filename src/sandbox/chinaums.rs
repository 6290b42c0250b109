//! The sandbox's ChinaUMS on its real paths: `/v1/token/access`, POS-link
//! `/{v2,v4,v6}/poslink/transaction/{pay,query,voidpayment,refund,query-refund}` and the netpay
//! bills pre-auth family `/v1/netpay/bills/{preauth-cancel,preauthed,preauthed-cancel,query}`.
//!
//! Every request must carry a valid OPEN-BODY-SIG (HMAC over the exact body, our AppId) or an
//! unexpired access token issued here; anything else gets HTTP 401 and is counted as rejected
//! (`GET /_sandbox/chinaums/stats`). Every reply is signed with an OPEN-BODY-SIG `Authorization`
//! header — except scenario 56, whose header signature is deliberately wrong. The amount
//! scenarios of DESIGN.md §5 apply to code payments; the rules: one merchantOrderId once, void
//! only on the Beijing day of the payment and never after a refund, refunds never above what was
//! paid, one refundRequestId once. Pre-authorised bills are created by `POST
//! /_sandbox/chinaums/preauth` (standing in for the customer scanning a pre-auth QR code).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ledger::{Order, Refund, Status};
use super::{Sandbox, after_request, begin, hang_up};
use crate::gateway::chinaums::codes::{fen, text};
use crate::sign::hmac::{open_body_header, parse_open_body_header, verify_open_body};
use crate::sign::sha256::chinaums_token_signature;

/// The credentials the sandbox's ChinaUMS expects.
#[derive(Clone)]
pub struct UmsSandboxConfig {
    pub app_id: String,
    pub app_key: String,
    pub merchant_code: String,
    pub terminal_code: String,
    /// `expiresIn` of issued access tokens, seconds.
    pub token_life_s: u64,
    pub bills_mid: String,
    pub bills_tid: String,
}

impl std::fmt::Debug for UmsSandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UmsSandboxConfig {{ app_id: {}, app_key: redacted }}",
            self.app_id
        )
    }
}

/// The sandbox's own test credentials (also in `config/sandbox-chinaums/`).
pub const SANDBOX_APP_ID: &str = "pt5b0c1e7a2d944f6f8e3b9c0d1a2e3f4a";
pub const SANDBOX_APP_KEY: &str = "sandbox-chinaums-appkey-8f2d61c0b9a4";
pub const SANDBOX_MERCHANT_CODE: &str = "898310000000001";
pub const SANDBOX_TERMINAL_CODE: &str = "00810001";

impl UmsSandboxConfig {
    pub fn builtin() -> UmsSandboxConfig {
        UmsSandboxConfig {
            app_id: SANDBOX_APP_ID.into(),
            app_key: SANDBOX_APP_KEY.into(),
            merchant_code: SANDBOX_MERCHANT_CODE.into(),
            terminal_code: SANDBOX_TERMINAL_CODE.into(),
            token_life_s: 3600,
            bills_mid: "89844035541APR4".into(),
            bills_tid: "APR40001".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillState {
    Authorized,
    Cancelled,
    Completed,
}

/// A pre-authorised bill.
#[derive(Clone, Debug, Serialize)]
pub struct Bill {
    pub bill_no: String,
    pub bill_date: String,
    pub mer_order_id: String,
    pub auth_id_resp_cd: String,
    pub authorized_fen: u64,
    pub completed_fen: u64,
    pub state: BillState,
    pub target_order_id: String,
}

/// The ChinaUMS side's mutable state (inside the sandbox's lock).
#[derive(Debug, Default)]
pub struct UmsState {
    /// Issued tokens with their expiry on the sandbox clock.
    tokens: Vec<(String, i64)>,
    pub token_fetches: u64,
    /// Requests whose authentication checked.
    pub verified: u64,
    /// Requests refused for authentication, with the reason.
    pub rejected: Vec<String>,
    pub bills: Vec<Bill>,
}

enum Out {
    Reply(Value),
    BadSignature(Value),
    Hang,
}

fn err(code: &str, info: &str) -> Value {
    json!({"errCode": code, "errInfo": info})
}

fn signed_reply(cfg: &UmsSandboxConfig, v: &Value, corrupt: bool) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let ts = crate::util::beijing_stamp(crate::util::now_ms());
    let nonce = format!("{:032x}", rand::thread_rng().r#gen::<u128>());
    let key = if corrupt {
        "not-the-app-key"
    } else {
        cfg.app_key.as_str()
    };
    let h = open_body_header(&cfg.app_id, key, &ts, &nonce, &body);
    (
        [
            (
                header::CONTENT_TYPE,
                "application/json;charset=UTF-8".to_string(),
            ),
            (header::AUTHORIZATION, h),
        ],
        body,
    )
        .into_response()
}

/// Checks a request's authentication. `Err`: the reason it is refused.
fn authenticate(
    sb: &Sandbox,
    cfg: &UmsSandboxConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    if h.starts_with("OPEN-BODY-SIG") {
        let a = parse_open_body_header(h).map_err(|e| e.to_string())?;
        if a.app_id != cfg.app_id {
            return Err(format!("unknown AppId {}", a.app_id));
        }
        if a.timestamp.len() != 14 || !a.timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Timestamp must be yyyyMMddHHmmss".into());
        }
        if a.nonce.is_empty() || a.nonce.len() > 128 {
            return Err("Nonce must be 1 to 128 characters".into());
        }
        return verify_open_body(&a, &cfg.app_key, body).map_err(|e| e.to_string());
    }
    if let Some(rest) = h.strip_prefix("OPEN-ACCESS-TOKEN") {
        let t = rest
            .trim()
            .split(',')
            .find_map(|p| p.trim().strip_prefix("AccessToken="))
            .map(|v| v.trim_matches('"').to_string())
            .ok_or("OPEN-ACCESS-TOKEN without AccessToken")?;
        let g = sb.lock();
        let now = g.clock.now_ms();
        return match g.chinaums.tokens.iter().find(|(tok, _)| *tok == t) {
            Some((_, exp)) if *exp > now => Ok(()),
            Some(_) => Err("the access token has expired".into()),
            None => Err("unknown access token".into()),
        };
    }
    Err("the Authorization scheme is neither OPEN-BODY-SIG nor OPEN-ACCESS-TOKEN".into())
}

async fn handle(
    sb: Sandbox,
    headers: HeaderMap,
    body: axum::body::Bytes,
    process: impl FnOnce(&Sandbox, &UmsSandboxConfig, &Value) -> Out,
) -> Response {
    let (faults, cfg) = match begin(&sb, "ChinaUMS", |c| c.chinaums.clone()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(why) = authenticate(&sb, &cfg, &headers, &body) {
        sb.lock().chinaums.rejected.push(why.clone());
        let v = err("1000", &format!("认证失败 {why}"));
        return (StatusCode::UNAUTHORIZED, axum::Json(v)).into_response();
    }
    sb.lock().chinaums.verified += 1;
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return signed_reply(&cfg, &err("1001", "报文格式错误 not a JSON object"), false),
    };
    let reply = match process(&sb, &cfg, &req) {
        Out::Reply(v) => signed_reply(&cfg, &v, false),
        Out::BadSignature(v) => signed_reply(&cfg, &v, true),
        Out::Hang => return hang_up(&sb).await,
    };
    after_request(&sb, &faults, reply).await
}

/// `POST /v1/token/access`.
pub async fn token(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let (faults, cfg) = match begin(&sb, "ChinaUMS", |c| c.chinaums.clone()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (app_id, ts, nonce, sig) = (
        text(&req, "appId").unwrap_or_default(),
        text(&req, "timestamp").unwrap_or_default(),
        text(&req, "nonce").unwrap_or_default(),
        text(&req, "signature").unwrap_or_default(),
    );
    let want = chinaums_token_signature(&app_id, &ts, &nonce, &cfg.app_key);
    let v = if app_id != cfg.app_id || text(&req, "signMethod").as_deref() != Some("SHA256") {
        sb.lock()
            .chinaums
            .rejected
            .push("token request: unknown appId or signMethod".into());
        err("1000", "appId 或 signMethod 错误")
    } else if !bool::from(subtle::ConstantTimeEq::ct_eq(
        want.as_bytes(),
        sig.to_ascii_lowercase().as_bytes(),
    )) {
        sb.lock()
            .chinaums
            .rejected
            .push("token request: bad signature".into());
        err("1000", "签名错误")
    } else {
        let mut g = sb.lock();
        let now = g.clock.now_ms();
        let tok = format!("{:032x}", rand::thread_rng().r#gen::<u128>());
        let life = cfg.token_life_s;
        g.chinaums.tokens.retain(|(_, e)| *e > now);
        g.chinaums
            .tokens
            .push((tok.clone(), now + life as i64 * 1000));
        g.chinaums.token_fetches += 1;
        g.chinaums.verified += 1;
        json!({"errCode": "0000", "errInfo": "正常", "accessToken": tok, "expiresIn": life})
    };
    let reply = (StatusCode::OK, axum::Json(v)).into_response();
    after_request(&sb, &faults, reply).await
}

/// `POST /{version}/poslink/transaction/{op}`.
pub async fn poslink(
    State(sb): State<Sandbox>,
    Path(op): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(sb, headers, body, move |sb, cfg, req| {
        if text(req, "merchantCode").as_deref() != Some(cfg.merchant_code.as_str())
            || text(req, "terminalCode").as_deref() != Some(cfg.terminal_code.as_str())
        {
            return Out::Reply(err("ERR_MERCHANT", "商户号或终端号错误"));
        }
        match op.as_str() {
            "pay" => pay(sb, req),
            "query" => Out::Reply(query(sb, req)),
            "voidpayment" => Out::Reply(void(sb, req)),
            "refund" => Out::Reply(refund(sb, req)),
            "query-refund" | "refund-query" => Out::Reply(refund_query(sb, req)),
            other => Out::Reply(err("ERR_API", &format!("未知接口 {other}"))),
        }
    })
    .await
}

fn paid_view(o: &Order) -> Value {
    json!({
        "errCode": "00",
        "errInfo": "成功",
        "merchantOrderId": o.out_trade_no,
        "orderId": o.transaction_id,
        "amount": o.amount_fen,
        "actualTransactionAmount": o.amount_fen,
        "transactionDate": crate::util::beijing_stamp(o.created_ms)[..8],
        "thirdPartyName": o.paytype,
    })
}

fn pay(sb: &Sandbox, req: &Value) -> Out {
    let no = text(req, "merchantOrderId").unwrap_or_default();
    if no.is_empty() || no.len() > 50 {
        return Out::Reply(err("ERR_PARAM", "merchantOrderId 必填"));
    }
    let Some(amount) = fen(req, "transactionAmount")
        .map(|a| a.fen())
        .filter(|f| *f > 0)
    else {
        return Out::Reply(err("ERR_PARAM", "transactionAmount 须为正整数(分)"));
    };
    let code = text(req, "payCode").unwrap_or_default();
    if code.len() < 16 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Out::Reply(err("ERR_PARAM", "payCode 无效"));
    }
    if text(req, "payMode").as_deref() != Some("CODE_SCAN")
        || text(req, "transactionCurrencyCode").as_deref() != Some("156")
    {
        return Out::Reply(err("ERR_PARAM", "payMode / transactionCurrencyCode 错误"));
    }
    let device = text(req, "deviceType").unwrap_or_default();
    let geo = req.get("longitude").is_some() && req.get("latitude").is_some();
    if matches!(device.as_str(), "01" | "11" | "12" | "13") && req.get("ip").is_none() && !geo {
        return Out::Reply(err("ERR_PARAM", "非实体终端须上送 ip 或经纬度"));
    }
    let mut g = sb.lock();
    g.seen_out_trade_nos.push(no.clone());
    if g.ledger.get(&no).is_some() {
        return Out::Reply(err("ERR_DUP_ORDER", "商户订单号重复"));
    }
    let scenario = amount % 100;
    if scenario == 55 {
        return Out::Hang;
    }
    let now = g.clock.now_ms();
    let paytype = crate::core::AuthCode::classify(&code, &crate::core::authcode::default_rules())
        .map(|c| c.wallet().paytype().to_string())
        .unwrap_or_else(|_| "UNKNOWN".into());
    let order = Order::new(
        &no,
        &paytype,
        "chinaums",
        amount,
        Status::of_scenario(scenario),
        now,
        format!("UMS{now}{}", &no[no.len().saturating_sub(4)..]),
    );
    let out = match scenario {
        51 => Out::Reply(err("ERR_PAY_FAIL", "交易失败 余额不足")),
        52 | 53 => Out::Reply(
            json!({"errCode":"0000","errInfo":"用户支付中，请查询","merchantOrderId": no}),
        ),
        54 => Out::Hang,
        56 => Out::BadSignature(paid_view(&order)),
        57 => Out::Reply(err("ERR_SYSTEM", "系统错误，请查询")),
        _ => Out::Reply(paid_view(&order)),
    };
    g.ledger.orders.push(order);
    out
}

fn order_no(req: &Value) -> String {
    text(req, "merchantOrderId").unwrap_or_default()
}

fn query(sb: &Sandbox, req: &Value) -> Value {
    let mut g = sb.lock();
    let no = order_no(req);
    let Some(o) = g.ledger.get_mut(&no) else {
        return err("ERR_NO_ORDER", "订单不存在");
    };
    if o.never_created {
        // The number was closed by a void before any payment arrived: the query says so
        // positively (已冲正, nothing taken), which is what lets the void count.
        return json!({"errCode":"00","errInfo":"查询成功","merchantOrderId": no,
                      "queryResCode":"4","queryResDesc":"已冲正 订单未支付已关闭"});
    }
    o.queried();
    let (code, desc) = match o.status {
        Status::Paid if o.refunds.is_empty() => ("0", "成功"),
        Status::Paid => ("3", "已退货"),
        Status::Paying | Status::AwaitingScan => ("FF", "交易状态未知 用户支付中"),
        Status::Declined => ("5", "失败 余额不足"),
        Status::Closed => ("5", "失败 已撤销未扣款"),
        Status::Revoked => ("2", "已撤销"),
    };
    let mut v = paid_view(o);
    v["queryResCode"] = json!(code);
    v["queryResDesc"] = json!(desc);
    v["originalTransactionAmount"] = json!(o.amount_fen);
    v["refundedAmount"] = json!(o.refunded_fen());
    v
}

fn same_beijing_day(a_ms: i64, b_ms: i64) -> bool {
    crate::util::beijing_date(a_ms) == crate::util::beijing_date(b_ms)
}

fn void(sb: &Sandbox, req: &Value) -> Value {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let no = order_no(req);
    let ok = json!({"errCode":"00","errInfo":"撤销成功","merchantOrderId": no});
    let Some(o) = g.ledger.get_mut(&no) else {
        g.ledger
            .orders
            .push(Order::never_created(&no, "", "none", now));
        return ok;
    };
    if !same_beijing_day(o.created_ms, now) {
        return err("ERR_VOID_DATE", "隔日交易不能撤销，请使用退货");
    }
    if !o.refunds.is_empty() {
        return err("ERR_VOID_REFUNDED", "已退货交易不能撤销");
    }
    if !o.cancel_try() {
        return err("ERR_BUSY", "系统繁忙，请稍后重试");
    }
    o.status = match o.status {
        Status::Paid | Status::Revoked => Status::Revoked,
        // A declined payment moved no money; the void changes nothing.
        Status::Declined => Status::Declined,
        _ => Status::Closed,
    };
    ok
}

fn refund(sb: &Sandbox, req: &Value) -> Value {
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let no = order_no(req);
    let (Some(rid), Some(amount)) = (
        text(req, "refundRequestId").filter(|r| !r.is_empty() && r.len() < 50),
        fen(req, "transactionAmount")
            .map(|a| a.fen())
            .filter(|a| *a > 0),
    ) else {
        return err("ERR_PARAM", "refundRequestId / transactionAmount 必填");
    };
    let Some(o) = g.ledger.get_mut(&no).filter(|o| !o.never_created) else {
        return err("ERR_NO_ORDER", "原订单不存在");
    };
    let done = |o: &Order, r: &Refund| {
        json!({"errCode":"00","errInfo":"退货成功","merchantOrderId": o.out_trade_no,
               "refundOrderId": r.refund_id, "refundTargetOrderId": format!("T{}", r.refund_id),
               "transactionAmount": r.amount_fen})
    };
    if let Some(r) = o.refunds.iter().find(|r| r.out_refund_no == rid) {
        if r.amount_fen != amount {
            return err("ERR_REFUND_ID", "refundRequestId 已用于不同金额");
        }
        let r = r.clone();
        return done(o, &r);
    }
    if o.status != Status::Paid {
        return err("ERR_REFUND_STATE", "原交易未成功或已撤销，不能退货");
    }
    if amount > o.amount_fen - o.refunded_fen() {
        return err("ERR_REFUND_AMOUNT", "退货金额超过可退金额");
    }
    let refund_id = format!("UR{now}{}", o.refunds.len());
    let r = o.add_refund(&rid, refund_id, amount, now);
    done(o, &r)
}

fn refund_query(sb: &Sandbox, req: &Value) -> Value {
    let g = sb.lock();
    let rid = text(req, "refundRequestId").unwrap_or_default();
    let found = g
        .ledger
        .orders
        .iter()
        .flat_map(|o| o.refunds.iter())
        .find(|r| r.out_refund_no == rid);
    match found {
        Some(r) => {
            json!({"errCode":"00","errInfo":"查询成功","queryResCode":"0","queryResInfo":"退货成功",
                          "refundOrderId": r.refund_id, "refundAmount": r.amount_fen})
        }
        // Not found is not "failed": the refund request may still be on its way.
        None => err("ERR_NO_REFUND", "退货不存在"),
    }
}

/// `POST /v1/netpay/bills/{op}`.
pub async fn bills(
    State(sb): State<Sandbox>,
    Path(op): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(sb, headers, body, move |sb, cfg, req| {
        Out::Reply(bill_op(sb, cfg, &op, req))
    })
    .await
}

fn bill_err(code: &str, msg: &str) -> Value {
    json!({"errCode": code, "errMsg": msg})
}

fn bill_view(b: &Bill, status: &str, bill_status: &str) -> Value {
    json!({
        "errCode": "SUCCESS", "errMsg": "",
        "billNo": b.bill_no, "billDate": b.bill_date, "billStatus": bill_status,
        "billPayment": {
            "merOrderId": b.mer_order_id, "billBizType": "bills",
            "totalAmount": if b.completed_fen > 0 { b.completed_fen } else { b.authorized_fen },
            "status": status, "targetOrderId": b.target_order_id, "targetSys": "ACP"
        }
    })
}

fn bill_op(sb: &Sandbox, cfg: &UmsSandboxConfig, op: &str, req: &Value) -> Value {
    for need in [
        "requestTimestamp",
        "mid",
        "tid",
        "instMid",
        "billNo",
        "billDate",
        "merOrderId",
    ] {
        if text(req, need).is_none_or(|v| v.is_empty()) {
            return bill_err("INVALID_PARAM", &format!("缺少参数 {need}"));
        }
    }
    if text(req, "mid").as_deref() != Some(cfg.bills_mid.as_str())
        || text(req, "tid").as_deref() != Some(cfg.bills_tid.as_str())
    {
        return bill_err("INVALID_MERCHANT", "商户号或终端号错误");
    }
    let ts = text(req, "requestTimestamp").unwrap_or_default();
    if chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%d %H:%M:%S").is_err() {
        return bill_err("INVALID_PARAM", "requestTimestamp 格式 yyyy-MM-dd HH:mm:ss");
    }
    let mut g = sb.lock();
    let (no, date, mer) = (
        text(req, "billNo").unwrap_or_default(),
        text(req, "billDate").unwrap_or_default(),
        text(req, "merOrderId").unwrap_or_default(),
    );
    let Some(b) = g
        .chinaums
        .bills
        .iter_mut()
        .find(|b| b.bill_no == no && b.bill_date == date && b.mer_order_id == mer)
    else {
        return bill_err("BILL_NOT_FOUND", "账单不存在");
    };
    let auth_ok = text(req, "authIdRespCd").as_deref() == Some(b.auth_id_resp_cd.as_str());
    match op {
        "query" => match b.state {
            BillState::Authorized => bill_view(b, "TRADE_AUTHORIZED", "UNPAID"),
            BillState::Cancelled => bill_view(b, "TRADE_CLOSED", "CLOSED"),
            BillState::Completed => bill_view(b, "TRADE_SUCCESS", "PAID"),
        },
        "preauth-cancel" => {
            if !auth_ok {
                return bill_err("INVALID_AUTH", "授权标识应答码不符");
            }
            match b.state {
                BillState::Authorized | BillState::Cancelled => {
                    b.state = BillState::Cancelled;
                    bill_view(b, "TRADE_CLOSED", "CLOSED")
                }
                BillState::Completed => {
                    bill_err("BAD_BILL_STATE", "预授权已完成，请先撤销预授权完成")
                }
            }
        }
        "preauthed" => {
            if !auth_ok {
                return bill_err("INVALID_AUTH", "授权标识应答码不符");
            }
            let Some(amount) = fen(req, "totalAmount").map(|a| a.fen()).filter(|a| *a > 0) else {
                return bill_err("INVALID_PARAM", "totalAmount 须为正整数(分)");
            };
            match b.state {
                BillState::Authorized if amount <= b.authorized_fen => {
                    b.state = BillState::Completed;
                    b.completed_fen = amount;
                    bill_view(b, "TRADE_SUCCESS", "PAID")
                }
                BillState::Authorized => bill_err("AMOUNT_EXCEEDED", "完成金额超过预授权金额"),
                BillState::Completed if b.completed_fen == amount => {
                    bill_view(b, "TRADE_SUCCESS", "PAID")
                }
                _ => bill_err("BAD_BILL_STATE", "预授权已撤销或已完成"),
            }
        }
        "preauthed-cancel" => match b.state {
            BillState::Completed => {
                b.state = BillState::Authorized;
                b.completed_fen = 0;
                bill_view(b, "TRADE_AUTHORIZED", "UNPAID")
            }
            _ => bill_err("BAD_BILL_STATE", "没有可撤销的预授权完成"),
        },
        other => bill_err("INVALID_API", &format!("未知接口 {other}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPreAuth {
    amount_fen: u64,
}

/// `POST /_sandbox/chinaums/preauth {"amount_fen": N}`: a customer authorises N fen.
pub async fn new_preauth(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let Ok(p) = serde_json::from_slice::<NewPreAuth>(&body) else {
        return (StatusCode::BAD_REQUEST, "body: {\"amount_fen\": N}").into_response();
    };
    if p.amount_fen == 0 {
        return (StatusCode::BAD_REQUEST, "amount_fen must be positive").into_response();
    }
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let n = g.chinaums.bills.len();
    let stamp = crate::util::beijing_stamp(now);
    let b = Bill {
        bill_no: format!("124F{stamp}{n:04}"),
        bill_date: crate::util::beijing_date(now),
        mer_order_id: format!("124F{stamp}{n:05}"),
        auth_id_resp_cd: format!("{:06}", rand::thread_rng().gen_range(0..1_000_000)),
        authorized_fen: p.amount_fen,
        completed_fen: 0,
        state: BillState::Authorized,
        target_order_id: format!("1623{now}"),
    };
    g.chinaums.bills.push(b.clone());
    axum::Json(b).into_response()
}

/// `GET /_sandbox/chinaums/stats`: authentication counts, tokens issued, bills.
pub async fn stats(State(sb): State<Sandbox>) -> Response {
    let g = sb.lock();
    axum::Json(json!({
        "verified": g.chinaums.verified,
        "rejected": g.chinaums.rejected,
        "token_fetches": g.chinaums.token_fetches,
        "bills": g.chinaums.bills,
    }))
    .into_response()
}
