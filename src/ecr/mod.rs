//! The ECR API: the local HTTP API cash registers and kiosks use to ask for payments.
//!
//! On a unix socket by default, or TCP with a bearer token (required beyond loopback). It
//! validates input and answers with JSON — errors as `{"error": {"code", "message"}}` — and
//! changes nothing on bad input. The same caller order id twice returns the same payment. It
//! decides nothing about money: sales go to the sale controller, settled payments to the engine.
//! `/notify/{gateway}` receives gateways' signed result notifications (no token: the signature
//! is the authentication). The contract is written down in `docs/ecr-openapi.yaml`.
//! 云闪付 无感支付 (contract charges, the cancel notice) lives in [`contract`].

mod contract;
mod listener;

pub(crate) use contract::contract_charge_request;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::core::authcode::Wallet;
use crate::core::money::Amount;
use crate::daemon::sale::{SaleCmd, SaleMethod, SaleRequest};
use crate::daemon::{PaymentEvent, Shared, read};
use crate::gateway::OrderDetails;
use crate::journal::{AttemptRow, JournalError, ListFilter};

#[derive(Clone)]
struct Api {
    shared: Arc<Shared>,
    sales: mpsc::Sender<SaleCmd>,
    token: Option<Arc<crate::util::Secret>>,
    /// Contract charges are taken one at a time (see [`contract`]).
    charges: Arc<tokio::sync::Mutex<()>>,
    /// Payment creates are taken one at a time from the look-up of the order id until the sale
    /// controller has the sale: two creates of one order id with different amounts could
    /// otherwise both find nothing and both be answered 202, one for an amount never charged.
    creates: Arc<tokio::sync::Mutex<()>>,
}

/// An API error: an HTTP status, a stable code for programs and a message for people.
#[derive(Debug)]
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(json!({"error": {"code": self.1, "message": self.2}})),
        )
            .into_response()
    }
}

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, code, msg.into())
}

/// The API's routes with the limits they are served within (see [`listener`]).
pub struct EcrApi {
    router: Router,
    limits: listener::Limits,
}

pub fn router(shared: Arc<Shared>, sales: mpsc::Sender<SaleCmd>, token: Option<String>) -> EcrApi {
    let limits = listener::Limits::from_config(&read(&shared.config).file.ecr);
    let api = Api {
        shared,
        sales,
        token: token.map(|t| Arc::new(crate::util::Secret::new(t))),
        charges: Arc::new(tokio::sync::Mutex::new(())),
        creates: Arc::new(tokio::sync::Mutex::new(())),
    };
    let v1 = Router::new()
        .route("/v1/payments", post(create).get(list))
        .route("/v1/totals", get(totals))
        .route("/v1/payments/{order_id}", get(get_payment))
        .route("/v1/payments/{order_id}/cancel", post(cancel))
        .route("/v1/payments/{order_id}/refunds", post(refund))
        .route("/v1/contract-charges", post(contract::create))
        .route("/v1/contract-charges/{order_id}", get(contract::get))
        .route("/v1/events", get(events))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(api.clone(), auth));
    let router = Router::new()
        .merge(v1)
        .route("/notify/{gateway}", post(notify).get(contract::notify_get))
        .with_state(api)
        .layer(middleware::from_fn_with_state(limits, listener::read_body));
    EcrApi { router, limits }
}

async fn auth(State(api): State<Api>, req: Request, next: Next) -> Response {
    api.shared
        .metrics
        .ecr_requests
        .fetch_add(1, Ordering::Relaxed);
    if let Some(t) = &api.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        use subtle::ConstantTimeEq;
        let t = t.expose();
        let ok = given.len() == t.len() && bool::from(given.as_bytes().ct_eq(t.as_bytes()));
        if !ok {
            api.shared
                .metrics
                .ecr_errors
                .fetch_add(1, Ordering::Relaxed);
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePayment {
    /// The caller's order id: 1–32 letters, digits, '_' or '-'.
    order_id: String,
    /// Yuan as a string, e.g. "12.34".
    amount: String,
    /// "code" (default), "face" or "qr".
    #[serde(default)]
    method: Option<String>,
    /// A payment code the caller already read; without it the terminal's scanner is used.
    /// Taken as any JSON value so that a number is refused by us, not by serde, whose message
    /// would carry the whole code.
    #[serde(default)]
    code: Option<Value>,
    /// For face and qr: WECHAT (default) or ALIPAY.
    #[serde(default)]
    wallet: Option<String>,
    #[serde(default)]
    notify_url: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    attach: Option<String>,
    #[serde(default)]
    goods_detail: Option<Value>,
    #[serde(default)]
    operator: Option<String>,
}

/// Longest free-text fields. The aggregator's documentation names no widths; these are the
/// WeChat Pay widths it passes the fields on to (body String(128), attach String(127),
/// op_user_id String(32), notify_url String(256), goods_detail String(6000)), so a request a
/// wallet would refuse or truncate is refused here, before anything is journaled or sent.
const MAX_BODY_CHARS: usize = 128;
const MAX_ATTACH_CHARS: usize = 127;
const MAX_OPERATOR_CHARS: usize = 32;
const MAX_NOTIFY_URL_BYTES: usize = 256;
const MAX_GOODS_DETAIL_BYTES: usize = 6000;

/// Masks every run of ten or more digits: error messages (serde's among them) may quote what
/// they were given, and a payment code is 16 to 24 digits.
fn scrub(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut run = String::new();
    for ch in msg.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_digit() {
            run.push(ch);
            continue;
        }
        if run.len() >= 10 {
            out.push_str(&crate::core::authcode::mask(&run));
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(ch);
    }
    out.pop();
    out
}

/// Refuses a free-text field longer than `max` characters.
fn check_len(field: &str, v: Option<&str>, max: usize) -> Result<(), ApiError> {
    match v {
        Some(v) if v.chars().count() > max => Err(bad(
            "too_long",
            format!("{field} is longer than {max} characters"),
        )),
        _ => Ok(()),
    }
}

fn valid_order_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn payment_json(rows: &[AttemptRow], refunds: Vec<Value>) -> Value {
    let Some(last) = rows
        .iter()
        .find(|a| a.machine.state == crate::core::AttemptState::Paid)
        .or(rows.last())
    else {
        return Value::Null;
    };
    json!({
        "order_id": last.order_id,
        "amount_fen": last.amount.fen(),
        "amount": last.amount.to_string(),
        "state": last.machine.state,
        "final": last.machine.state.is_final(),
        "reverse_action": last.machine.reverse_action,
        "message": last.machine.state.cashier_words(last.machine.reverse_action),
        "wallet": last.wallet,
        "out_trade_no": last.out_trade_no,
        "code_url": last.code_url,
        "note": last.last_note,
        "attempts": rows.iter().map(|a| json!({"out_trade_no": a.out_trade_no, "state": a.machine.state, "code": a.code_mask, "created_ms": a.machine.created_ms})).collect::<Vec<_>>(),
        "refunds": refunds,
    })
}

fn event_json(ev: &PaymentEvent) -> Value {
    json!({
        "order_id": ev.order_id, "amount_fen": ev.amount_fen, "amount": Amount::from_fen(ev.amount_fen).to_string(),
        "state": ev.state, "final": false, "note": ev.note, "out_trade_no": ev.out_trade_no, "code_url": ev.code_url,
        "deadline_ms": ev.deadline_ms,
    })
}

/// A sale that ended before any attempt: final, nothing was charged.
fn sale_end_json(s: &crate::journal::sales::SaleRow) -> Value {
    json!({
        "order_id": s.order_id,
        "amount_fen": s.amount.fen(),
        "amount": s.amount.to_string(),
        "state": s.state,
        "final": true,
        "message": "no payment was requested; nothing was charged",
        "note": s.note,
        "created_ms": s.created_ms,
        "updated_ms": s.updated_ms,
        "attempts": [],
        "refunds": [],
    })
}

/// Whether `v` (from [`lookup`]) is a sale that ended before any attempt: the same order may
/// be started again, since nothing was ever sent for it.
fn ended_without_attempt(v: &Value) -> bool {
    v["final"] == true && v["attempts"].as_array().is_some_and(|a| a.is_empty())
}

/// The payment as the journal (or the waiting sale) knows it: its attempts; else the sale
/// waiting at the counter; else how it ended before any attempt.
async fn lookup(api: &Api, order_id: &str) -> Result<Option<Value>, ApiError> {
    let shared = api.shared.clone();
    let id = order_id.to_string();
    let mut sale_end = None;
    let from_journal = tokio::task::spawn_blocking(move || -> Result<(Option<Value>, Option<Value>), String> {
        let e = shared.engine().map_err(|e| e.to_string())?;
        match e.journal().by_order(&id) {
            Ok(rows) if rows.is_empty() => Ok((
                None,
                e.journal()
                    .sale_end(&id)
                    .map_err(|e| e.to_string())?
                    .map(|s| sale_end_json(&s)),
            )),
            Ok(rows) => {
                let mut refunds = Vec::new();
                for a in &rows {
                    for r in e.journal().refunds_for(a.attempt_id).map_err(|e| e.to_string())? {
                        refunds.push(json!({"refund_id": r.out_refund_no, "amount_fen": r.amount.fen(), "state": r.state, "note": r.note}));
                    }
                }
                Ok((Some(payment_json(&rows, refunds)), None))
            }
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", e))
    .map(|(attempts, ended)| {
        sale_end = ended;
        attempts
    })?;
    if from_journal.is_some() {
        return Ok(from_journal);
    }
    let (tx, rx) = oneshot::channel();
    let _ = api
        .sales
        .send(SaleCmd::Waiting {
            order_id: order_id.to_string(),
            reply: tx,
        })
        .await;
    Ok(rx
        .await
        .ok()
        .flatten()
        .map(|ev| event_json(&ev))
        .or(sale_end))
}

/// Reads and checks a `POST /v1/payments` body: everything about it that needs no journal.
pub(crate) fn sale_request(
    body: &[u8],
    max: Amount,
    rules: &[crate::core::authcode::CodeRule],
) -> Result<SaleRequest, ApiError> {
    let req: CreatePayment = serde_json::from_slice(body).map_err(|e| {
        bad(
            "bad_request",
            scrub(&format!("the body is not a valid payment request: {e}")),
        )
    })?;
    if !valid_order_id(&req.order_id) {
        return Err(bad(
            "bad_order_id",
            "order_id must be 1 to 32 letters, digits, '_' or '-'",
        ));
    }
    let amount =
        Amount::parse_with_limit(&req.amount, max).map_err(|e| bad("bad_amount", e.to_string()))?;
    check_len("body", req.body.as_deref(), MAX_BODY_CHARS)?;
    check_len("attach", req.attach.as_deref(), MAX_ATTACH_CHARS)?;
    check_len("operator", req.operator.as_deref(), MAX_OPERATOR_CHARS)?;
    if req
        .notify_url
        .as_ref()
        .is_some_and(|u| u.len() > MAX_NOTIFY_URL_BYTES)
    {
        return Err(bad(
            "too_long",
            format!("notify_url is longer than {MAX_NOTIFY_URL_BYTES} bytes"),
        ));
    }
    let code = match req.code {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c),
        Some(_) => {
            return Err(bad(
                "bad_code",
                "code must be a JSON string of the payment code's digits",
            ));
        }
    };
    let wallet = match &req.wallet {
        None => Wallet::Wechat,
        Some(w) => Wallet::from_paytype(&w.to_ascii_uppercase())
            .ok_or_else(|| bad("bad_wallet", format!("unknown wallet {w:?}")))?,
    };
    let method = match req.method.as_deref().unwrap_or("code") {
        "code" => {
            if let Some(c) = &code {
                // CodeError's own words quote the whole code.
                crate::core::AuthCode::classify(c, rules).map_err(|e| {
                    let m = crate::core::authcode::mask(c);
                    bad("bad_code", match e {
                        crate::core::authcode::CodeError::Empty => "the code is empty".to_string(),
                        crate::core::authcode::CodeError::NotDigits(_) => format!("the code {m} is not a payment code (payment codes are digits only)"),
                        crate::core::authcode::CodeError::Unknown(_) => format!("the code {m} matches no wallet's payment code (wrong length or prefix)"),
                    })
                })?;
            }
            SaleMethod::Code(code)
        }
        "face" => SaleMethod::Face { wallet },
        "qr" => {
            if !matches!(wallet, Wallet::Wechat | Wallet::Alipay) {
                return Err(bad(
                    "bad_wallet",
                    "QR pre-orders exist for WECHAT and ALIPAY only",
                ));
            }
            SaleMethod::Qr {
                wallet,
                notify_url: req.notify_url.clone(),
            }
        }
        other => {
            return Err(bad(
                "bad_method",
                format!("method {other:?} is not one of code, face, qr"),
            ));
        }
    };
    let goods = match &req.goods_detail {
        None => None,
        Some(v) if v.is_array() => {
            let text = v.to_string();
            if text.len() > MAX_GOODS_DETAIL_BYTES {
                return Err(bad(
                    "too_long",
                    format!("goods_detail is longer than {MAX_GOODS_DETAIL_BYTES} bytes"),
                ));
            }
            Some(text)
        }
        Some(_) => return Err(bad("bad_goods", "goods_detail must be a JSON array")),
    };
    Ok(SaleRequest {
        order_id: req.order_id,
        amount,
        method,
        details: OrderDetails {
            body: req.body.unwrap_or_else(|| "payterm".into()),
            attach: req.attach,
            goods_detail: goods,
            operator: req.operator,
            ..Default::default()
        },
    })
}

async fn create(State(api): State<Api>, body: Bytes) -> Result<Response, ApiError> {
    let (max, rules) = {
        let s = read(&api.shared.settings);
        (s.max_amount, s.code_rules.clone())
    };
    let sale = sale_request(&body, max, &rules)?;
    let (order_id, amount) = (sale.order_id.clone(), sale.amount);
    let _one_at_a_time = api.creates.lock().await;
    // The same order id again: the same payment, never a second charge.
    if let Some(existing) = lookup(&api, &order_id).await?
        && !ended_without_attempt(&existing)
    {
        if existing["amount_fen"].as_u64() != Some(amount.fen()) {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "order_conflict",
                format!("order {order_id} exists with another amount"),
            ));
        }
        return Ok((StatusCode::OK, axum::Json(existing)).into_response());
    }
    if contract::is_offline_charge(&api, &order_id).await? {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "order_conflict",
            format!("order {order_id} is an offline contract charge (see /v1/contract-charges)"),
        ));
    }
    let (tx, rx) = oneshot::channel();
    api.sales
        .send(SaleCmd::Start {
            req: sale,
            reply: tx,
        })
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the terminal is stopping".into(),
            )
        })?;
    match rx.await {
        Ok(Ok(ev)) => Ok((StatusCode::ACCEPTED, axum::Json(event_json(&ev))).into_response()),
        Ok(Err(why)) => Err(ApiError(StatusCode::CONFLICT, "not_started", why)),
        Err(_) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the terminal is stopping".into(),
        )),
    }
}

async fn get_payment(
    State(api): State<Api>,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    match lookup(&api, &order_id).await? {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no payment for order {order_id}"),
        )),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    open: bool,
    #[serde(default)]
    review: bool,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(State(api): State<Api>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let shared = api.shared.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let e = shared.engine().map_err(|e| e.to_string())?;
        e.journal()
            .list(&ListFilter {
                open: q.open,
                review: q.review,
                date: q.date,
                limit: Some(q.limit.unwrap_or(100).min(1000)),
            })
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", e))?;
    let items: Vec<Value> = rows
        .iter()
        .map(|a| json!({"order_id": a.order_id, "out_trade_no": a.out_trade_no, "amount_fen": a.amount.fen(), "state": a.machine.state, "created_ms": a.machine.created_ms, "wallet": a.wallet}))
        .collect();
    Ok(axum::Json(json!({"payments": items})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TotalsQuery {
    #[serde(default)]
    shift: Option<i64>,
    #[serde(default)]
    day: Option<String>,
}

/// `GET /v1/totals[?shift=ID|?day=YYYY-MM-DD]`: a closed shift's stored totals, an open
/// shift's so far, a Beijing day's, or (neither given) the open shift's, else today's.
async fn totals(
    State(api): State<Api>,
    Query(q): Query<TotalsQuery>,
) -> Result<Response, ApiError> {
    use crate::journal::totals::beijing_day;
    if let Some(d) = &q.day
        && beijing_day(d).is_none()
    {
        return Err(bad("bad_day", format!("day {d:?} is not YYYY-MM-DD")));
    }
    let shared = api.shared.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let e = shared
            .engine()
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", e.to_string()))?;
        let j = e.journal();
        let now = crate::util::now_ms();
        let journal_err = |e: crate::journal::JournalError| {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", e.to_string())
        };
        if let Some(d) = &q.day {
            let (from, until) = beijing_day(d).ok_or_else(|| bad("bad_day", "not YYYY-MM-DD"))?;
            let t = j.totals(from, until).map_err(journal_err)?;
            return Ok(json!({"day": d, "shift": null, "totals": t}));
        }
        let shift = match q.shift {
            Some(id) => Some(
                j.shift(id)
                    .map_err(|e| ApiError(StatusCode::NOT_FOUND, "no_such_shift", e.to_string()))?,
            ),
            None => j
                .open_shift()
                .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", e.to_string()))?,
        };
        match shift {
            Some(s) => {
                let t = match &s.totals {
                    Some(t) => t.clone(),
                    None => j.totals(s.opened_ms, now + 1).map_err(journal_err)?,
                };
                Ok(json!({"shift": s, "totals": t}))
            }
            None => {
                let d = crate::util::beijing_date(now);
                let (from, until) =
                    beijing_day(&d).ok_or_else(|| bad("bad_day", "today has no range"))?;
                let t = j.totals(from, until).map_err(journal_err)?;
                Ok(json!({"day": d, "shift": null, "totals": t}))
            }
        }
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(axum::Json(r).into_response())
}

async fn cancel(
    State(api): State<Api>,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    let (tx, rx) = oneshot::channel();
    let _ = api
        .sales
        .send(SaleCmd::Abandon {
            order_id: order_id.clone(),
            reply: tx,
        })
        .await;
    if rx.await.unwrap_or(false) {
        return Ok(axum::Json(json!({"order_id": order_id, "state": "ABANDONED", "final": true, "message": "cancelled before any payment request; nothing was charged"})).into_response());
    }
    let shared = api.shared.clone();
    let id = order_id.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut e = shared.engine()?;
        let tx = shared.events.clone();
        let mut obs = |r: &AttemptRow, n: &str| {
            let _ = tx.send(PaymentEvent::from_row(r, n));
        };
        e.cancel(&id, &mut obs)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match r {
        Ok(_) => get_payment(State(api), Path(order_id)).await,
        Err(crate::engine::EngineError::Journal(JournalError::NotFound(_))) => Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no payment for order {order_id}"),
        )),
        Err(e) => Err(ApiError(
            StatusCode::CONFLICT,
            "not_cancelled",
            e.to_string(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    amount: String,
    #[serde(default)]
    refund_id: Option<String>,
}

/// Reads a `POST /v1/payments/{id}/refund` body: the amount and the caller's refund id.
pub(crate) fn refund_request(body: &[u8]) -> Result<(Amount, Option<String>), ApiError> {
    let b: RefundBody = serde_json::from_slice(body).map_err(|e| {
        bad(
            "bad_request",
            format!("the body is not a refund request: {e}"),
        )
    })?;
    let amount = Amount::parse_yuan(&b.amount).map_err(|e| bad("bad_amount", e.to_string()))?;
    Ok((amount, b.refund_id))
}

async fn refund(
    State(api): State<Api>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (amount, refund_id) = refund_request(&body)?;
    let shared = api.shared.clone();
    let r =
        tokio::task::spawn_blocking(move || shared.engine()?.refund(&order_id, amount, refund_id))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match r {
        Ok(r) => Ok(axum::Json(json!({"refund_id": r.out_refund_no, "amount_fen": r.amount.fen(), "state": r.state, "note": r.note})).into_response()),
        Err(crate::engine::EngineError::Journal(e @ JournalError::RefundTooLarge { .. })) => Err(bad("refund_too_large", e.to_string())),
        Err(crate::engine::EngineError::Journal(JournalError::NotFound(o))) => Err(ApiError(StatusCode::NOT_FOUND, "not_found", format!("no payment for order {o}"))),
        Err(e) => Err(ApiError(StatusCode::CONFLICT, "not_refunded", e.to_string())),
    }
}

async fn events(
    State(api): State<Api>,
) -> Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>> {
    let rx = api.shared.events.subscribe();
    let stream = futures_util_stream(rx);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn futures_util_stream(
    mut rx: tokio::sync::broadcast::Receiver<PaymentEvent>,
) -> impl futures_core::Stream<Item = Result<Event, Infallible>> {
    async_stream(move |tx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if tx
                        .send(Ok(Event::default().event("payment").data(ev.wire_json())))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = tx
                        .send(Ok(Event::default().event("lagged").data(n.to_string())))
                        .await;
                }
                Err(_) => return,
            }
        }
    })
}

/// A tiny channel-backed stream, to avoid a dependency for one SSE endpoint.
fn async_stream<F, Fut>(f: F) -> impl futures_core::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(f(tx));
    ReceiverStream(rx)
}

struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

async fn health(State(api): State<Api>) -> Response {
    let s = &api.shared;
    let blocker = s.sale_blocker();
    let code = if blocker.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({
            "ready": s.ready.load(Ordering::SeqCst),
            "taking_payments": blocker.is_none(),
            "why_not": blocker,
            "safe_mode": s.safe_mode.load(Ordering::SeqCst),
            "online": s.online(),
            "gateways": gateways_json(s),
            "unsettled": s.unsettled.load(Ordering::SeqCst),
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
        .into_response()
}

/// Each configured gateway as its answers describe it: `online` is `null` until it was asked.
fn gateways_json(s: &Shared) -> Value {
    let snap = s.health.snapshot();
    let mut out = serde_json::Map::new();
    for name in read(&s.gateways).names() {
        let h = snap.get(&name).cloned().unwrap_or_default();
        out.insert(
            name,
            json!({
                "online": h.online(),
                "last_latency_ms": h.last_latency_ms,
                "last_answer_ms": h.last_answer_ms,
                "last_silence_ms": h.last_silence_ms,
                "unanswered_in_a_row": h.silent_in_a_row,
            }),
        );
    }
    Value::Object(out)
}

async fn metrics(State(api): State<Api>) -> Response {
    let s = api.shared.clone();
    let counts = tokio::task::spawn_blocking(move || {
        s.engine()
            .ok()
            .and_then(|e| e.journal().counts().ok())
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    let s = &api.shared;
    let mut out = String::new();
    out.push_str("# HELP payterm_attempts Attempts in the journal by state.\n# TYPE payterm_attempts gauge\n");
    for (st, n) in counts {
        out.push_str(&format!(
            "payterm_attempts{{state=\"{}\"}} {n}\n",
            st.as_str()
        ));
    }
    let g = |name: &str, help: &str, kind: &str, v: u64| {
        format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n")
    };
    out.push_str(&g(
        "payterm_unsettled",
        "Attempts whose outcome is not settled.",
        "gauge",
        s.unsettled.load(Ordering::SeqCst),
    ));
    out.push_str(&g(
        "payterm_online",
        "1 when every gateway asked answered its last request.",
        "gauge",
        s.online() as u64,
    ));
    let snap = s.health.snapshot();
    out.push_str("# HELP payterm_gateway_online 1 when the gateway answered its last request.\n# TYPE payterm_gateway_online gauge\n");
    for (name, h) in &snap {
        if let Some(on) = h.online() {
            out.push_str(&format!(
                "payterm_gateway_online{{gateway=\"{name}\"}} {}\n",
                on as u8
            ));
        }
    }
    out.push_str("# HELP payterm_gateway_latency_ms How long the gateway's last answered request took.\n# TYPE payterm_gateway_latency_ms gauge\n");
    for (name, h) in &snap {
        if let Some(ms) = h.last_latency_ms {
            out.push_str(&format!(
                "payterm_gateway_latency_ms{{gateway=\"{name}\"}} {ms}\n"
            ));
        }
    }
    out.push_str(&g(
        "payterm_safe_mode",
        "1 when the journal is damaged and sales are refused.",
        "gauge",
        s.safe_mode.load(Ordering::SeqCst) as u64,
    ));
    out.push_str(&g(
        "payterm_payments_started_total",
        "Payments handed to the engine.",
        "counter",
        s.metrics.payments_started.load(Ordering::Relaxed),
    ));
    out.push_str(&g(
        "payterm_ecr_requests_total",
        "ECR API requests.",
        "counter",
        s.metrics.ecr_requests.load(Ordering::Relaxed),
    ));
    out.push_str(&g(
        "payterm_recovery_passes_total",
        "Recovery passes.",
        "counter",
        s.metrics.recovery_passes.load(Ordering::Relaxed),
    ));
    out.push_str(&g(
        "payterm_notifications_total",
        "Gateway notifications received.",
        "counter",
        s.metrics.notifications.load(Ordering::Relaxed),
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// `POST /notify/{gateway}`: `success` with HTTP 200 once the engine has handled the notification
/// (again for every repeat). Anything else is `fail` with an error status, because UnionPay ACP
/// looks at the status only and stops resending on a 200 (PROTOCOLS.md §A.5): 400 when the
/// engine did not take it (not verified, not ours, not now), 503 when it could not be looked at
/// (safe mode, journal unavailable).
async fn notify(
    State(api): State<Api>,
    Path(gateway): Path<String>,
    _h: HeaderMap,
    body: Bytes,
) -> Response {
    api.shared
        .metrics
        .notifications
        .fetch_add(1, Ordering::Relaxed);
    let text = |status: StatusCode, answer: &'static str| {
        (status, [(header::CONTENT_TYPE, "text/plain")], answer).into_response()
    };
    if api.shared.safe_mode.load(Ordering::SeqCst) {
        // The damaged journal is preserved as it is; the gateway sends the notification again.
        return text(StatusCode::SERVICE_UNAVAILABLE, "fail");
    }
    let shared = api.shared.clone();
    let answer = tokio::task::spawn_blocking(move || match shared.engine() {
        Ok(mut e) => {
            let tx = shared.events.clone();
            let mut obs = |r: &AttemptRow, n: &str| {
                let _ = tx.send(PaymentEvent::from_row(r, n));
            };
            Some(e.notification(&gateway, &body, &mut obs))
        }
        Err(_) => None,
    })
    .await
    .ok()
    .flatten();
    match answer {
        Some("success") => {
            // A notice may have reopened an attempt recorded "not charged": fence it now.
            api.shared.kick_recovery();
            text(StatusCode::OK, "success")
        }
        Some(_) => text(StatusCode::BAD_REQUEST, "fail"),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "fail"),
    }
}

/// Serves `router` on `listen` (`unix:/path` or `IP:PORT`); returns the address it bound.
pub async fn serve(listen: &str, api: EcrApi) -> anyhow::Result<String> {
    let EcrApi { router, limits } = api;
    if let Some(path) = listen.strip_prefix("unix:") {
        let p = std::path::Path::new(path);
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::remove_file(p);
        let listener = tokio::net::UnixListener::bind(p)
            .map_err(|e| anyhow::anyhow!("the ECR API cannot listen on {listen}: {e}"))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o660));
        tokio::spawn(listener::accept_loop(listener, router, limits));
        Ok(listen.to_string())
    } else {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("the ECR API cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        tokio::spawn(listener::accept_loop(listener, router, limits));
        Ok(format!("http://{addr}"))
    }
}

/// Removes the unix socket on shutdown.
pub fn cleanup(listen: &str) {
    if let Some(path) = listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "134567890123456789";

    fn req(body: &str) -> Result<SaleRequest, ApiError> {
        let rules = crate::core::authcode::default_rules();
        sale_request(body.as_bytes(), Amount::from_fen(500_000), &rules)
    }

    fn refused(body: &str) -> (&'static str, String) {
        match req(body) {
            Err(ApiError(status, code, msg)) => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                (code, msg)
            }
            Ok(r) => panic!("accepted {r:?}"),
        }
    }

    #[test]
    fn a_code_that_is_not_a_string_is_refused_without_being_echoed() {
        for code in [
            CODE.to_string(),
            format!("[{CODE}]"),
            format!("{{\"c\":{CODE}}}"),
        ] {
            let (c, msg) = refused(&format!(
                r#"{{"order_id":"A1","amount":"1.00","code":{code}}}"#
            ));
            assert_eq!(c, "bad_code");
            assert!(!msg.contains(CODE), "{msg}");
        }
        // A code in a field of another type is masked in serde's own words too.
        let (c, msg) = refused(&format!(
            r#"{{"order_id":"A1","amount":"1.00","operator":{CODE}}}"#
        ));
        assert_eq!(c, "bad_request");
        assert!(!msg.contains(CODE) && msg.contains("1345"), "{msg}");
        // A refused string code is named by its mask only.
        let (c, msg) = refused(r#"{"order_id":"A1","amount":"1.00","code":"99999999999999999x"}"#);
        assert_eq!(c, "bad_code");
        assert!(!msg.contains("99999999999999999x"), "{msg}");
    }

    #[test]
    fn overlong_fields_are_refused() {
        let long = |n: usize| "字".repeat(n);
        let base = |field: &str, v: &str| {
            format!(r#"{{"order_id":"A1","amount":"1.00","{field}":"{v}"}}"#)
        };
        for (field, max) in [("body", 128), ("attach", 127), ("operator", 32)] {
            assert!(
                req(&base(field, &long(max))).is_ok(),
                "{field} at its limit"
            );
            let (c, msg) = refused(&base(field, &long(max + 1)));
            assert_eq!(c, "too_long");
            assert!(msg.contains(field), "{msg}");
        }
        let url = format!("https://example.com/{}", "a".repeat(250));
        let qr =
            format!(r#"{{"order_id":"A1","amount":"1.00","method":"qr","notify_url":"{url}"}}"#);
        assert_eq!(refused(&qr).0, "too_long");
        let goods = format!(
            r#"[{{"goods_id":"G1","goods_name":"{}"}}]"#,
            "a".repeat(6000)
        );
        let g = format!(r#"{{"order_id":"A1","amount":"1.00","goods_detail":{goods}}}"#);
        assert_eq!(refused(&g).0, "too_long");
    }

    #[test]
    fn a_sale_request_does_not_print_its_code() {
        let r = req(&format!(
            r#"{{"order_id":"A1","amount":"1.00","code":"{CODE}"}}"#
        ))
        .unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains(CODE) && dbg.contains("1345"), "{dbg}");
    }

    #[test]
    fn scrub_masks_long_digit_runs_only() {
        assert_eq!(scrub("at line 1 column 42"), "at line 1 column 42");
        assert_eq!(
            scrub(&format!("integer `{CODE}`")),
            "integer `1345**********6789`"
        );
    }
}
