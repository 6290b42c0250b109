//! The sandbox's 云闪付 open platform on its real paths (`/open/access/1.0/<method>`:
//! backendToken, token, contract.apply / relieve / info / status) and the 无感支付 contract debit
//! (an ACP back-end consume, posted to `/upapi-acp/gateway/api/backTransReq.do`).
//!
//! Every open-platform call must carry a valid SHA-256 `signature` (secret added as a field) and,
//! except backendToken itself, a live backendToken (else `a10`); every debit must carry the
//! merchant's ACP signature and a signed, arrears-free contract. Debits follow the amount
//! scenarios of DESIGN.md §5 and are recorded as ACP transactions of the sandbox's ACP side, so
//! its query, undo, reversal and refund handle them afterwards; replies are signed with the
//! sandbox's TEST-ONLY UnionPay key (scenario 56 deliberately wrong). Control endpoints stand in
//! for the customer: `/_sandbox/upapi/authorize` (the app's authorization code),
//! `/_sandbox/upapi/arrears`, `/_sandbox/upapi/user-relieve` (the user cancels in the app: returns
//! the signed notification), `/_sandbox/upapi/stats`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::acp::{
    AcpSandboxConfig, ReplySign, SANDBOX_SIGN_KEY, Txn, check_cert_signature, kv, signed_raw_as,
    text_reply, with_code,
};
use super::ledger::{Order, Status};
use super::{Sandbox, after_request, begin, hang_up};
use crate::gateway::unionpay::message::AcpMessage;
use crate::gateway::upapi::{SymmetricKey, notice_string_to_sign};
use crate::sign::rsa::{RsaHash, RsaPrivateKey};
use crate::sign::sha256::upapi_verify;

pub const SANDBOX_APP_ID: &str = "up0a1b2c3d4e5f60718293a4b5c6d7e8f9";
pub const SANDBOX_SECRET: &str = "sandbox-upapi-secret-5d1e0c7a";
pub const SANDBOX_SYMMETRIC_KEY: &str = "8a7b6c5d4e3f20118a7b6c5d4e3f20118a7b6c5d4e3f2011";
pub const SANDBOX_PLAN_ID: &str = "PLANSBX0001";

#[derive(Clone)]
pub struct UpapiSandboxConfig {
    pub app_id: String,
    pub secret: String,
    pub symmetric_key_hex: String,
    pub plan_id: String,
    pub backend_token_life_s: u64,
}

impl std::fmt::Debug for UpapiSandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UpapiSandboxConfig {{ app_id: {}, secret: redacted }}",
            self.app_id
        )
    }
}

impl UpapiSandboxConfig {
    pub fn builtin() -> UpapiSandboxConfig {
        UpapiSandboxConfig {
            app_id: SANDBOX_APP_ID.into(),
            secret: SANDBOX_SECRET.into(),
            symmetric_key_hex: SANDBOX_SYMMETRIC_KEY.into(),
            plan_id: SANDBOX_PLAN_ID.into(),
            backend_token_life_s: 7200,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SbContract {
    pub contract_id: String,
    pub contract_code: String,
    pub open_id: String,
    pub plan_id: String,
    /// "1" signed, "3" terminated.
    pub status: String,
}

#[derive(Debug, Default)]
pub struct UpapiState {
    backend_tokens: Vec<(String, i64)>,
    codes: Vec<(String, String)>,
    access_tokens: Vec<(String, String, i64)>,
    pub contracts: Vec<SbContract>,
    pub arrears: BTreeMap<String, u32>,
    pub backend_token_fetches: u64,
    pub verified: u64,
    pub rejected: Vec<String>,
    next: u64,
}

fn cfg_of(sb: &Sandbox) -> Option<UpapiSandboxConfig> {
    sb.lock().cfg.upapi.clone()
}

fn resp(code: &str, msg: &str) -> Value {
    json!({"resp": code, "msg": msg})
}

fn ok(params: Value) -> Value {
    json!({"resp": "00", "msg": "成功", "params": params})
}

fn token() -> String {
    format!("{:032x}", rand::thread_rng().r#gen::<u128>())
}

/// `POST /open/access/1.0/{method}`.
pub async fn open_api(
    State(sb): State<Sandbox>,
    Path(method): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (faults, cfg) = match begin(&sb, "云闪付", |c| c.upapi.clone()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let v = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => process(&sb, &cfg, &method, &m),
        _ => resp("01", "报文格式错误"),
    };
    let reply = (StatusCode::OK, axum::Json(v)).into_response();
    after_request(&sb, &faults, reply).await
}

fn process(sb: &Sandbox, cfg: &UpapiSandboxConfig, method: &str, m: &Map<String, Value>) -> Value {
    let get = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let flat: Vec<(String, String)> = m
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|x| (k.clone(), x.to_string())))
        .collect();
    let signed = upapi_verify(
        flat.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.secret,
        &get("signature"),
    );
    let mut g = sb.lock();
    let why = if get("appId") != cfg.app_id {
        Some("unknown appId")
    } else if get("nonceStr").len() != 16 || get("timestamp").parse::<i64>().is_err() {
        Some("nonceStr (16) / timestamp (Unix seconds) missing")
    } else if !signed {
        Some("bad signature")
    } else {
        None
    };
    if let Some(w) = why {
        g.upapi.rejected.push(format!("{method}: {w}"));
        return resp("11", &format!("签名校验失败 {w}"));
    }
    g.upapi.verified += 1;
    let now = g.clock.now_ms();
    if method == "backendToken" {
        let t = token();
        g.upapi.backend_tokens.retain(|(_, e)| *e > now);
        g.upapi
            .backend_tokens
            .push((t.clone(), now + cfg.backend_token_life_s as i64 * 1000));
        g.upapi.backend_token_fetches += 1;
        return ok(json!({"backendToken": t, "expiresIn": cfg.backend_token_life_s}));
    }
    let bt = get("backendToken");
    if !g
        .upapi
        .backend_tokens
        .iter()
        .any(|(t, e)| *t == bt && *e > now)
    {
        return resp("a10", "backendToken 无效或已过期");
    }
    let open_id = get("openId");
    match method {
        "token" => {
            if get("grantType") != "authorization_code" {
                return resp("01", "grantType 须为 authorization_code");
            }
            let code = get("code");
            let Some(i) = g.upapi.codes.iter().position(|(c, _)| *c == code) else {
                return resp("a31", "code 无效");
            };
            let (_, open) = g.upapi.codes.remove(i);
            let at = token();
            g.upapi
                .access_tokens
                .push((at.clone(), open.clone(), now + 3_600_000));
            ok(
                json!({"accessToken": at, "openId": open, "expiresIn": 3600, "scope": "upapi_contract", "unionId": format!("U{open}")}),
            )
        }
        "contract.apply" => {
            let at = get("accessToken");
            if !g
                .upapi
                .access_tokens
                .iter()
                .any(|(t, o, e)| *t == at && *o == open_id && *e > now)
            {
                return resp("a20", "accessToken 无效");
            }
            if get("planId") != cfg.plan_id {
                return resp("BC2133", "获取商户信息异常，请检查planId");
            }
            let code = get("contractCode");
            if code.is_empty() {
                return resp("N62113", "contractCode 不能为空");
            }
            let key = match SymmetricKey::from_hex(&cfg.symmetric_key_hex) {
                Ok(k) => k,
                Err(_) => return resp("99", "沙箱密钥配置错误"),
            };
            let existing = g
                .upapi
                .contracts
                .iter()
                .position(|c| c.contract_code == code);
            let c = match existing {
                Some(i) if g.upapi.contracts[i].open_id == open_id => {
                    g.upapi.contracts[i].status = "1".into();
                    g.upapi.contracts[i].clone()
                }
                Some(_) => return resp("N62137", "contractCode 已被其他用户使用"),
                None => {
                    g.upapi.next += 1;
                    let c = SbContract {
                        contract_id: format!(
                            "CT{}{:06}",
                            crate::util::beijing_stamp(now),
                            g.upapi.next
                        ),
                        contract_code: code,
                        open_id: open_id.clone(),
                        plan_id: cfg.plan_id.clone(),
                        status: "1".into(),
                    };
                    g.upapi.contracts.push(c.clone());
                    c
                }
            };
            let mobile = format!("1380013{:04}", g.upapi.next % 10_000);
            ok(
                json!({"contractId": c.contract_id, "contractCode": c.contract_code, "planId": c.plan_id,
                      "openId": c.open_id, "operationTime": crate::util::beijing_stamp(now),
                      "mobile": key.encrypt(&mobile)}),
            )
        }
        "contract.relieve" => {
            let id = get("contractId");
            let Some(c) = g.upapi.contracts.iter_mut().find(|c| c.contract_id == id) else {
                return resp("N62115", "contractId 不存在");
            };
            if c.open_id != open_id
                || c.plan_id != get("planId")
                || c.contract_code != get("contractCode")
            {
                return resp("N62137", "签约信息不符");
            }
            c.status = "3".into();
            ok(json!({}))
        }
        "contract.info" => {
            let c = g
                .upapi
                .contracts
                .iter()
                .rev()
                .find(|c| c.open_id == open_id && c.plan_id == get("planId"));
            match c {
                Some(c) => ok(json!({"contractId": c.contract_id, "contractStatus": c.status})),
                None => ok(json!({"contractId": "", "contractStatus": ""})),
            }
        }
        "contract.status" => {
            let n = g.upapi.arrears.get(&open_id).copied().unwrap_or(0);
            ok(json!({"enable": n.to_string()}))
        }
        other => resp("01", &format!("未知接口 {other}")),
    }
}

fn sign_key() -> Option<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_der(SANDBOX_SIGN_KEY).ok()
}

/// A debit's reply: an ACP reply (the request's echo, `code`, `msg`, `extra`), signed (01) the
/// way the sandbox's ACP side signs its own; `corrupt`: with a wrong signature.
fn acp_reply(
    req: &AcpMessage,
    code: &str,
    msg: &str,
    extra: &[(&str, String)],
    corrupt: bool,
) -> Response {
    let mut f = with_code(req, code, msg);
    for (k, v) in extra {
        f.push(kv(k, v.clone()));
    }
    // The built-in TEST-ONLY chain signs whether or not the ACP side is switched on.
    let raw = AcpSandboxConfig::builtin()
        .map(|acp| signed_raw_as(&acp, f, corrupt, ReplySign::Cert))
        .unwrap_or_default();
    text_reply(raw)
}

/// Checks a debit's ACP signature (signMethod 01) against the merchant certificate of the
/// sandbox's ACP side, as that side checks its own requests. `Err`: the `respMsg` refusing it.
fn check_debit(sb: &Sandbox, m: &AcpMessage) -> Result<(), String> {
    let Some(acp) = sb.lock().cfg.acp.clone() else {
        return Err("验证签名失败 the sandbox's ACP side is off".into());
    };
    if m.get("signMethod") != Some("01") {
        return Err("验证签名失败 debits are signed with the certificate (signMethod 01)".into());
    }
    check_cert_signature(&acp, m).map_err(|(_, why)| why)?;
    if m.get("merId") != Some(acp.mer_id.as_str()) {
        return Err("验证签名失败 unknown merId".into());
    }
    Ok(())
}

/// `POST /upapi-acp/gateway/api/backTransReq.do`: the contract debit.
pub async fn debit(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let (faults, cfg) = match begin(&sb, "云闪付", |c| c.upapi.clone()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(req) = std::str::from_utf8(&body)
        .map_err(|_| ())
        .and_then(|s| AcpMessage::parse_form(s).map_err(|_| ()))
    else {
        return (StatusCode::BAD_REQUEST, "not an ACP form").into_response();
    };
    if let Err(w) = check_debit(&sb, &req) {
        sb.lock().upapi.rejected.push(format!("debit: {w}"));
        return acp_reply(&req, "11", &w, &[], false);
    }
    sb.lock().upapi.verified += 1;
    let reply = {
        let mut g = sb.lock();
        let now = g.clock.now_ms();
        let no = req.get("orderId").unwrap_or("").to_string();
        let amount = req
            .get("txnAmt")
            .and_then(|a| a.parse::<u64>().ok())
            .filter(|a| *a > 0);
        let contract = req.get("contractId").unwrap_or("");
        let c = g
            .upapi
            .contracts
            .iter()
            .find(|c| c.contract_id == contract)
            .cloned();
        match (amount, c) {
            _ if req.get("txnType") != Some("01")
                || req.get("txnTime").is_none()
                || no.len() < 8 =>
            {
                Err(("10", "报文格式错误 txnType/txnTime/orderId".to_string()))
            }
            (None, _) => Err(("10", "报文格式错误 txnAmt".to_string())),
            (_, None) => Err(("60", "交易失败：无此签约协议".to_string())),
            (_, Some(c)) if c.status != "1" || req.get("planId") != Some(cfg.plan_id.as_str()) => {
                Err(("60", "交易失败：签约协议已解约或planId不符".to_string()))
            }
            (_, Some(c)) if g.upapi.arrears.get(&c.open_id).copied().unwrap_or(0) > 0 => {
                Err(("60", "交易失败：用户存在欠款".to_string()))
            }
            (Some(fee), Some(_)) => {
                g.seen_out_trade_nos.push(no.clone());
                if g.ledger.get(&no).is_some() || g.acp.txns.iter().any(|t| t.order_id == no) {
                    Err(("12", "重复交易".to_string()))
                } else {
                    Ok((fee, no, now))
                }
            }
        }
    };
    let (fee, no, now) = match reply {
        Err((code, msg)) => {
            return after_request(&sb, &faults, acp_reply(&req, code, &msg, &[], false)).await;
        }
        Ok(x) => x,
    };
    let scenario = fee % 100;
    if scenario == 55 {
        return hang_up(&sb).await;
    }
    let status = Status::of_scenario(scenario);
    let (result, msg) = match status {
        Status::Declined => ("64", "余额不足"),
        Status::Paying => ("05", "交易已受理，等待扣款结果"),
        _ => ("00", "成功[0000000]"),
    };
    let query_id = {
        let mut g = sb.lock();
        g.upapi.next += 1;
        let n = g.upapi.next;
        let query_id = format!("{}U{:06}", crate::util::beijing_stamp(now), n % 1_000_000);
        g.acp.txns.push(Txn {
            order_id: no.clone(),
            txn_time: req.get("txnTime").unwrap_or("").to_string(),
            txn_type: "01".into(),
            txn_sub_type: req.get("txnSubType").unwrap_or("01").to_string(),
            biz_type: req.get("bizType").unwrap_or("").to_string(),
            amount_fen: fee,
            query_id: query_id.clone(),
            result: result.into(),
            result_msg: msg.into(),
            orig_order_id: None,
            orig_query_id: None,
            at_ms: now,
            trace_no: format!("{:06}", n % 1_000_000),
            undone: false,
            completed_fen: 0,
        });
        g.ledger.orders.push(Order::new(
            &no,
            "UNIONPAY",
            "upapi_contract",
            fee,
            status,
            now,
            query_id.clone(),
        ));
        query_id
    };
    let extra = [("queryId", query_id)];
    let out = match scenario {
        51 => acp_reply(&req, "64", "余额不足", &[], false),
        54 => return hang_up(&sb).await,
        56 => acp_reply(&req, "00", "成功[0000000]", &extra, true),
        57 => acp_reply(&req, "03", "交易状态未明，请查询", &[], false),
        _ => acp_reply(&req, "00", "成功[0000000]", &extra, false),
    };
    after_request(&sb, &faults, out).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Authorize {
    #[serde(default)]
    open_id: Option<String>,
}

/// `POST /_sandbox/upapi/authorize`: the user authorises in the app; returns the code.
pub async fn authorize(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let a: Authorize = serde_json::from_slice(&body).unwrap_or(Authorize { open_id: None });
    let mut g = sb.lock();
    g.upapi.next += 1;
    let open = a
        .open_id
        .unwrap_or_else(|| format!("openid{:08}", g.upapi.next));
    let code = format!("code{}", token());
    g.upapi.codes.push((code.clone(), open.clone()));
    axum::Json(json!({"code": code, "open_id": open})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arrears {
    open_id: String,
    count: u32,
}

/// `POST /_sandbox/upapi/arrears {"open_id", "count"}`.
pub async fn set_arrears(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let Ok(a) = serde_json::from_slice::<Arrears>(&body) else {
        return (StatusCode::BAD_REQUEST, "body: {\"open_id\", \"count\"}").into_response();
    };
    sb.lock().upapi.arrears.insert(a.open_id.clone(), a.count);
    axum::Json(json!({"open_id": a.open_id, "count": a.count})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Relieve {
    contract_id: String,
}

/// `POST /_sandbox/upapi/user-relieve {"contract_id"}`: the user cancels in the app; returns
/// the signed notification's query string (as 云闪付 would GET it).
pub async fn user_relieve(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let Ok(r) = serde_json::from_slice::<Relieve>(&body) else {
        return (StatusCode::BAD_REQUEST, "body: {\"contract_id\"}").into_response();
    };
    let Some(cfg) = cfg_of(&sb) else {
        return (StatusCode::NOT_FOUND, "云闪付 is not enabled").into_response();
    };
    let mut g = sb.lock();
    let now = g.clock.now_ms();
    let Some(c) = g
        .upapi
        .contracts
        .iter_mut()
        .find(|c| c.contract_id == r.contract_id)
    else {
        return (StatusCode::NOT_FOUND, "no such contract").into_response();
    };
    c.status = "3".into();
    let fields: Vec<(String, String)> = [
        ("appId", cfg.app_id.clone()),
        ("timestamp", (now / 1000).to_string()),
        ("nonceStr", token()[..16].to_string()),
        ("operateTime", crate::util::beijing_stamp(now)),
        ("openId", c.open_id.clone()),
        ("trid", format!("TR{now}")),
        ("contractId", c.contract_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let text = notice_string_to_sign(&fields);
    let sig = sign_key()
        .and_then(|k| {
            k.sign_pkcs1(RsaHash::Sha256, text.as_bytes(), &mut rand::thread_rng())
                .ok()
        })
        .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
        .unwrap_or_default();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &fields {
        q.append_pair(k, v);
    }
    q.append_pair("signature", &sig);
    axum::Json(json!({"query": q.finish()})).into_response()
}

/// `GET /_sandbox/upapi/stats`.
pub async fn stats(State(sb): State<Sandbox>) -> Response {
    let g = sb.lock();
    axum::Json(json!({
        "verified": g.upapi.verified,
        "rejected": g.upapi.rejected,
        "backend_token_fetches": g.upapi.backend_token_fetches,
        "contracts": g.upapi.contracts,
        "arrears": g.upapi.arrears,
    }))
    .into_response()
}
