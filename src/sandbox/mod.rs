//! The sandbox: fake gateways on loopback that speak the real protocols with real signatures.
//!
//! One axum server carries every gateway on its real paths, checks every request's signature,
//! signs its replies, enforces the documented rules, and behaves by the last two digits of the
//! amount in fen (DESIGN.md §5). It keeps a ledger of what it really did with the money
//! (`GET /_sandbox/ledger`), takes faults (`POST /_sandbox/faults`) and has its own clock
//! (`POST /_sandbox/clock`) so tests advance time instead of sleeping. It shares no state with
//! the terminal: it only knows what arrives over HTTP.

pub mod acp;
pub mod aggregator;
pub mod chinaums;
pub mod clock;
pub mod ledger;
pub mod upapi;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use clock::SandboxClock;
pub use ledger::Ledger;

/// The credentials the sandbox expects (the same the terminal's configuration holds).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub agent_id: String,
    pub mch_id: String,
    pub key: String,
    /// How long a reply that "never comes" is held before the connection is dropped.
    pub hang_ms: u64,
    /// Retry schedule for notifications, milliseconds (the seed's 0/15/15/30/180… s, shortened).
    pub notify_schedule_ms: Vec<u64>,
    /// The UnionPay ACP side (built-in TEST-ONLY chain); `None` switches it off.
    pub acp: Option<acp::AcpSandboxConfig>,
    /// The ChinaUMS side (built-in test credentials); `None` switches it off.
    pub chinaums: Option<chinaums::UmsSandboxConfig>,
    /// The 云闪付 open platform and contract debits (built-in test credentials).
    pub upapi: Option<upapi::UpapiSandboxConfig>,
}

impl SandboxConfig {
    pub fn new(agent_id: &str, mch_id: &str, key: &str) -> SandboxConfig {
        SandboxConfig {
            agent_id: agent_id.into(),
            mch_id: mch_id.into(),
            key: key.into(),
            hang_ms: 30_000,
            notify_schedule_ms: vec![0, 1_000, 2_000, 5_000, 10_000],
            acp: acp::AcpSandboxConfig::builtin().ok(),
            chinaums: Some(chinaums::UmsSandboxConfig::builtin()),
            upapi: Some(upapi::UpapiSandboxConfig::builtin()),
        }
    }
}

/// Injected faults. Control endpoints (`/_sandbox/*`) are never affected.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every reply.
    pub latency_ms: u64,
    /// The gateway is unreachable: requests are not processed and get no reply.
    pub down: bool,
    /// Probability that a request is lost before it is processed (no reply).
    pub lose_request: f64,
    /// Probability that a request is processed but its reply is lost.
    pub lose_reply: f64,
    /// The gateway's order store lags: an order is invisible to query and cancel ("no such
    /// order") for this long after it was created (sandbox clock), then shows its true state.
    pub lag_ms: u64,
    /// Methods whose replies are always lost after processing, e.g. `["orderquery"]` (the
    /// query that confirms a cancel). Aggregator method names, or `preorder`.
    pub lose_reply_of: Vec<String>,
    /// A cancel answers "no such order" (and does nothing) while the order exists.
    pub cancel_not_found: bool,
    /// Every request is processed, then answered HTTP 500 with an empty body.
    pub http_500: bool,
    /// For this long after an order was created, its query says it is still being paid
    /// (支付中), whatever its true state.
    pub in_progress_ms: u64,
}

pub struct Inner {
    pub cfg: SandboxConfig,
    pub ledger: Ledger,
    pub faults: Faults,
    pub clock: SandboxClock,
    /// Requests that arrived, by gateway path, for the tests' "the mock never saw …" checks.
    pub seen_out_trade_nos: Vec<String>,
    pub base_url: String,
    pub acp: acp::AcpState,
    pub chinaums: chinaums::UmsState,
    pub upapi: upapi::UpapiState,
}

#[derive(Clone)]
pub struct Sandbox(Arc<Mutex<Inner>>);

impl Sandbox {
    pub fn new(cfg: SandboxConfig) -> Sandbox {
        Sandbox(Arc::new(Mutex::new(Inner {
            cfg,
            ledger: Ledger::default(),
            faults: Faults::default(),
            clock: SandboxClock::new(),
            seen_out_trade_nos: Vec::new(),
            base_url: String::new(),
            acp: acp::AcpState::default(),
            chinaums: chinaums::UmsState::default(),
            upapi: upapi::UpapiState::default(),
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/UnifiedPay/Gateway", post(aggregator::gateway))
            .route("/Open/WECHAT_PreOrder", post(aggregator::preorder_wechat))
            .route("/Open/ALIPAY_PreOrder", post(aggregator::preorder_alipay))
            .route("/Open/GetMchInfo", post(aggregator::mch_info))
            .route("/UnifiedPay/Mch_Reg", post(aggregator::mch_reg))
            .route("/Mch/GetMchSMSValid", post(aggregator::mch_sms))
            .route("/Mch/GetMchId", post(aggregator::mch_id))
            .route("/Open/GetPartnerId", post(aggregator::partner_id))
            .route("/Open/WXA_Code2Session", post(aggregator::code2session))
            .route(
                "/_sandbox/qr/{out_trade_no}",
                get(aggregator::customer_scans).post(aggregator::customer_scans),
            )
            .route("/_sandbox/ledger", get(ledger_json))
            .route("/_sandbox/faults", get(get_faults).post(set_faults))
            .route("/_sandbox/clock", get(get_clock).post(set_clock))
            .route("/gateway/api/backTransReq.do", post(acp::back_trans))
            .route("/gateway/api/queryTrans.do", post(acp::query_trans))
            .route("/", post(acp::file_trans))
            .route("/_sandbox/acp/recon-diff", post(acp::add_recon_diff))
            .route("/_sandbox/acp/txns", get(acp::txns))
            .route("/v1/token/access", post(chinaums::token))
            .route("/v2/poslink/transaction/{op}", post(chinaums::poslink))
            .route("/v4/poslink/transaction/{op}", post(chinaums::poslink))
            .route("/v6/poslink/transaction/{op}", post(chinaums::poslink))
            .route("/v1/netpay/bills/{op}", post(chinaums::bills))
            .route("/_sandbox/chinaums/preauth", post(chinaums::new_preauth))
            .route("/_sandbox/chinaums/stats", get(chinaums::stats))
            .route("/open/access/1.0/{method}", post(upapi::open_api))
            .route("/upapi-acp/gateway/api/backTransReq.do", post(upapi::debit))
            .route("/_sandbox/upapi/authorize", post(upapi::authorize))
            .route("/_sandbox/upapi/arrears", post(upapi::set_arrears))
            .route("/_sandbox/upapi/user-relieve", post(upapi::user_relieve))
            .route("/_sandbox/upapi/stats", get(upapi::stats))
            .route("/_sandbox/health", get(|| async { "ok" }))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        self.lock().base_url = format!("http://{addr}");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds `addr` (loopback only) and serves in the background of the current runtime.
    pub async fn spawn(
        self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the sandbox listens on loopback only (127.0.0.1 or ::1)",
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let h = tokio::spawn(async move {
            let _ = self.serve(listener, std::future::pending()).await;
        });
        Ok((local, h))
    }
}

/// Applies faults before a request is processed. `None`: the request is lost (no reply).
pub(crate) async fn before_request(sb: &Sandbox) -> Option<Faults> {
    let f = sb.lock().faults.clone();
    if f.down || (f.lose_request > 0.0 && rand::thread_rng().gen_bool(f.lose_request.min(1.0))) {
        hang(sb).await;
        return None;
    }
    Some(f)
}

/// Applies faults after processing: latency, or a lost reply.
pub(crate) async fn after_request(sb: &Sandbox, f: &Faults, reply: Response) -> Response {
    after_request_of(sb, f, "", reply).await
}

/// [`after_request`] for a named method, which `lose_reply_of` may single out.
pub(crate) async fn after_request_of(
    sb: &Sandbox,
    f: &Faults,
    method: &str,
    reply: Response,
) -> Response {
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    let singled_out = !method.is_empty() && f.lose_reply_of.iter().any(|m| m == method);
    if singled_out || (f.lose_reply > 0.0 && rand::thread_rng().gen_bool(f.lose_reply.min(1.0))) {
        return hang_up(sb).await;
    }
    if f.http_500 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
    }
    reply
}

/// Holds a connection without answering, as a dead link would.
pub(crate) async fn hang(sb: &Sandbox) {
    let ms = sb.lock().cfg.hang_ms;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A reply that never comes: the connection is held like a dead link's, then dropped (504).
pub(crate) async fn hang_up(sb: &Sandbox) -> Response {
    hang(sb).await;
    (StatusCode::GATEWAY_TIMEOUT, "").into_response()
}

/// How every gateway's handler starts: the faults (`Err`: the request was lost, after a hang),
/// then that gateway's part of the configuration (`Err`: 404, the gateway is switched off).
pub(crate) async fn begin<C>(
    sb: &Sandbox,
    gateway: &str,
    part: impl FnOnce(&SandboxConfig) -> Option<C>,
) -> Result<(Faults, C), Response> {
    let Some(faults) = before_request(sb).await else {
        return Err((StatusCode::GATEWAY_TIMEOUT, "").into_response());
    };
    let Some(c) = part(&sb.lock().cfg) else {
        let why = format!("{gateway} is not enabled in this sandbox");
        return Err((StatusCode::NOT_FOUND, why).into_response());
    };
    Ok((faults, c))
}

/// Posts one try of a notification (blocking: run it off the async threads), as the gateways'
/// notifiers do: at most 3 s, and an HTTP error status is the merchant's answer, not a failure.
pub(crate) fn post_notification(
    url: &str,
    content_type: &str,
    body: &[u8],
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(3)))
            .http_status_as_error(false)
            .build(),
    );
    agent
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
}

async fn ledger_json(State(sb): State<Sandbox>) -> Response {
    let g = sb.lock();
    axum::Json(g.ledger.snapshot()).into_response()
}

async fn get_faults(State(sb): State<Sandbox>) -> Response {
    axum::Json(sb.lock().faults.clone()).into_response()
}

async fn set_faults(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            sb.lock().faults = f.clone();
            axum::Json(f).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("faults: {e}")).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    #[serde(default)]
    advance_ms: Option<i64>,
    #[serde(default)]
    rate: Option<f64>,
}

async fn get_clock(State(sb): State<Sandbox>) -> Response {
    let g = sb.lock();
    axum::Json(serde_json::json!({"now_ms": g.clock.now_ms(), "rate": g.clock.rate()}))
        .into_response()
}

async fn set_clock(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let change: ClockChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("clock: {e}")).into_response(),
    };
    let mut g = sb.lock();
    if let Some(a) = change.advance_ms {
        g.clock.advance(a);
    }
    if let Some(r) = change.rate {
        if !(r > 0.0 && r <= 10_000.0) {
            return (StatusCode::BAD_REQUEST, "rate must be in (0, 10000]").into_response();
        }
        g.clock.set_rate(r);
    }
    axum::Json(serde_json::json!({"now_ms": g.clock.now_ms(), "rate": g.clock.rate()}))
        .into_response()
}
