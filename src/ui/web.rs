//! The web mirror: a small self-contained page that shows the live screen and lets a person
//! type a payment code or press keypad keys (used by `payterm demo`).
//!
//! The router only reads frames from a `watch` channel and forwards inputs into an `mpsc`
//! channel; the daemon owns the screen state and decides what an input means. The page loads
//! nothing from outside (no CDN). Typed codes are never logged. Bind it to loopback: anyone who
//! reaches it can type codes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use embedded_graphics::primitives::Rectangle;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::UiError;
use super::display::Display;
use super::frame::Frame;
use super::model::{Key, UiInput};

/// How long a `/api/frame?after=N` request waits for a new frame before answering anyway.
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// The longest code the page accepts (payment codes are 16–24 digits; face codes longer).
pub const MAX_CODE_LEN: usize = 256;

/// The latest frame as the mirror serves it.
#[derive(Clone, Debug, Default)]
pub struct MirrorFrame {
    /// Increases by one for every published frame; 0 means "nothing drawn yet".
    pub seq: u64,
    pub width: u32,
    pub height: u32,
    pixels: Option<Arc<Frame>>,
    /// The PNG, encoded by the first request for this frame. Encoding costs 2–6 ms, and a
    /// terminal's mirror is mostly watched by nobody: encoding every frame as it was drawn
    /// was half the daemon's CPU per payment.
    png: Arc<std::sync::OnceLock<Result<Bytes, String>>>,
}

impl MirrorFrame {
    /// The frame as PNG (encoded once, on the first call); `None` before anything is drawn.
    pub fn png(&self) -> Option<Result<Bytes, String>> {
        let frame = self.pixels.as_ref()?;
        Some(
            self.png
                .get_or_init(|| {
                    super::png::encode_png(frame)
                        .map(Bytes::from)
                        .map_err(|e| e.to_string())
                })
                .clone(),
        )
    }
}

/// The sending half: the daemon publishes frames here, the router reads them.
#[derive(Clone, Debug)]
pub struct MirrorPublisher {
    tx: Arc<watch::Sender<MirrorFrame>>,
    size: (u32, u32),
}

/// A publisher for frames of `size` and the receiver to give to [`web_router`].
pub fn mirror_channel(size: (u32, u32)) -> (MirrorPublisher, watch::Receiver<MirrorFrame>) {
    let (tx, rx) = watch::channel(MirrorFrame::default());
    (
        MirrorPublisher {
            tx: Arc::new(tx),
            size,
        },
        rx,
    )
}

impl MirrorPublisher {
    /// Publishes `frame` (a copy; the PNG is encoded only if someone asks for it); returns
    /// its sequence number.
    pub fn publish(&self, frame: &Frame) -> Result<u64, UiError> {
        let pixels = Arc::new(frame.clone());
        let mut seq = 0;
        self.tx.send_modify(|f| {
            f.seq += 1;
            f.width = frame.width();
            f.height = frame.height();
            f.pixels = Some(pixels);
            f.png = Arc::default();
            seq = f.seq;
        });
        Ok(seq)
    }

    /// The sequence number of the last published frame.
    pub fn seq(&self) -> u64 {
        self.tx.borrow().seq
    }
}

impl Display for MirrorPublisher {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn flush(&mut self, frame: &Frame, damage: &[Rectangle]) -> Result<(), UiError> {
        if damage.is_empty() && self.seq() > 0 {
            return Ok(());
        }
        self.publish(frame).map(|_| ())
    }
}

#[derive(Clone)]
struct MirrorState {
    frames: watch::Receiver<MirrorFrame>,
    inputs: mpsc::Sender<UiInput>,
}

/// The mirror's routes: `GET /` (the page), `GET /frame.png`, `GET /api/frame?after=N`
/// (long poll, JSON `{seq,width,height}`), `POST /api/code` (`{"code": "..."}`) and
/// `POST /api/key` (`{"key": "5" | "dot" | "back" | "enter" | "cancel" | "refund" | "diag" |
/// "face"}`). Inputs go to `inputs`; when it is full or closed the POST answers 503.
pub fn web_router(frames: watch::Receiver<MirrorFrame>, inputs: mpsc::Sender<UiInput>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/frame.png", get(frame_png))
        .route("/api/frame", get(frame_info))
        .route("/api/code", post(post_code))
        .route("/api/key", post(post_key))
        .with_state(MirrorState { frames, inputs })
}

/// Binds `addr` and serves [`web_router`] on a spawned task until the task is aborted or the
/// runtime stops. Returns the bound address (useful with port 0) and the task.
pub async fn spawn_mirror(
    addr: std::net::SocketAddr,
    frames: watch::Receiver<MirrorFrame>,
    inputs: mpsc::Sender<UiInput>,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), UiError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| UiError::Io(format!("web mirror cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| UiError::Io(format!("web mirror address: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, web_router(frames, inputs)).await {
            tracing::warn!(error = %e, "web mirror stopped");
        }
    });
    Ok((bound, task))
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

async fn frame_png(State(s): State<MirrorState>) -> Response {
    let f = s.frames.borrow().clone();
    let seq = f.seq;
    // Off the runtime's threads: encoding takes milliseconds.
    let png = match tokio::task::spawn_blocking(move || f.png()).await {
        Ok(Some(Ok(png))) => png,
        Ok(None) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "no frame drawn yet").into_response();
        }
        Ok(Some(Err(e))) => {
            tracing::warn!("web mirror: encoding the frame: {e}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the frame could not be encoded",
            )
                .into_response();
        }
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, "image/png".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::HeaderName::from_static("x-frame-seq"),
                seq.to_string(),
            ),
        ],
        png,
    )
        .into_response()
}

#[derive(Deserialize)]
struct After {
    after: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub seq: u64,
    pub width: u32,
    pub height: u32,
}

async fn frame_info(State(s): State<MirrorState>, Query(q): Query<After>) -> impl IntoResponse {
    let mut rx = s.frames.clone();
    let after = q.after.unwrap_or(0);
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    loop {
        let info = {
            let f = rx.borrow_and_update();
            FrameInfo {
                seq: f.seq,
                width: f.width,
                height: f.height,
            }
        };
        if info.seq != after {
            return ([(header::CACHE_CONTROL, "no-store")], axum::Json(info));
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out, or the publisher is gone: answer with what there is.
            _ => return ([(header::CACHE_CONTROL, "no-store")], axum::Json(info)),
        }
    }
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

#[derive(Deserialize)]
struct KeyBody {
    key: String,
}

/// Accepts what a scanner could send: printable ASCII without spaces, at most MAX_CODE_LEN.
pub fn validate_code(code: &str) -> Result<String, &'static str> {
    let c = code.trim();
    if c.is_empty() {
        return Err("the code is empty");
    }
    if c.len() > MAX_CODE_LEN {
        return Err("the code is too long");
    }
    if !c.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the code may only contain letters, digits and punctuation, no spaces");
    }
    Ok(c.to_string())
}

async fn forward(s: &MirrorState, input: UiInput) -> Response {
    match s.inputs.try_send(input) {
        Ok(()) => (StatusCode::ACCEPTED, "ok").into_response(),
        Err(mpsc::error::TrySendError::Full(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "busy, try again").into_response()
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "the terminal is stopping").into_response()
        }
    }
}

async fn post_code(
    State(s): State<MirrorState>,
    axum::Json(body): axum::Json<CodeBody>,
) -> Response {
    match validate_code(&body.code) {
        Ok(code) => forward(&s, UiInput::Code(code)).await,
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

async fn post_key(State(s): State<MirrorState>, axum::Json(body): axum::Json<KeyBody>) -> Response {
    match Key::parse(&body.key) {
        Some(k) => forward(&s, UiInput::Key(k)).await,
        None => (StatusCode::BAD_REQUEST, "unknown key").into_response(),
    }
}

/// The page: the live screen, a code field and a keypad. Everything inline.
const PAGE: &str = r##"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>payterm screen</title>
<style>
  body { margin: 0; font-family: system-ui, sans-serif; background: #111827; color: #e5e7eb; }
  main { display: flex; flex-wrap: wrap; gap: 24px; padding: 20px; align-items: flex-start; justify-content: center; }
  #screen { image-rendering: pixelated; border: 10px solid #000; border-radius: 12px; background: #000; max-width: 100%; }
  .panel { display: flex; flex-direction: column; gap: 12px; min-width: 240px; }
  form { display: flex; gap: 8px; }
  input { flex: 1; font-size: 18px; padding: 8px; border-radius: 6px; border: 1px solid #4b5563; background: #1f2937; color: #f9fafb; }
  button { font-size: 18px; padding: 10px; border-radius: 6px; border: 1px solid #4b5563; background: #374151; color: #f9fafb; cursor: pointer; }
  button:active { background: #2563eb; }
  .keys { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; }
  .keys .ok { background: #15803d; } .keys .cancel { background: #b91c1c; }
  .fn { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; }
  #status { font-size: 14px; color: #9ca3af; min-height: 1.2em; }
  label { font-size: 14px; color: #9ca3af; }
</style>
</head>
<body>
<main>
  <img id="screen" alt="terminal screen" data-shown="0">
  <div class="panel">
    <label for="code">付款码 / payment code (as the scanner would send it)</label>
    <form id="codeform" autocomplete="off">
      <input id="code" name="code" inputmode="numeric" maxlength="256" placeholder="134567890123456789">
      <button id="send" type="submit">扫码 Scan</button>
    </form>
    <div class="keys">
      <button data-key="1">1</button><button data-key="2">2</button><button data-key="3">3</button>
      <button data-key="4">4</button><button data-key="5">5</button><button data-key="6">6</button>
      <button data-key="7">7</button><button data-key="8">8</button><button data-key="9">9</button>
      <button data-key="dot">.</button><button data-key="0">0</button><button data-key="back">⌫</button>
      <button data-key="cancel" class="cancel">取消 Cancel</button><button data-key="face">刷脸 Face</button><button data-key="enter" class="ok">确认 OK</button>
    </div>
    <div class="fn">
      <button data-key="refund">退款 Refund</button><button data-key="diag">诊断 Diag</button>
    </div>
    <div id="status" role="status"></div>
  </div>
</main>
<script>
"use strict";
const img = document.getElementById("screen");
const statusEl = document.getElementById("status");
let seq = 0;
function say(t) { statusEl.textContent = t; }
img.addEventListener("load", () => { img.dataset.shown = img.dataset.loading || "0"; });
async function post(path, body) {
  try {
    const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    say(r.ok ? "" : (await r.text()));
    return r.ok;
  } catch (e) { say("not connected"); return false; }
}
async function poll() {
  for (;;) {
    try {
      const r = await fetch("/api/frame?after=" + seq, { cache: "no-store" });
      const j = await r.json();
      if (j.seq !== seq && j.seq > 0) {
        seq = j.seq;
        img.dataset.loading = String(seq);
        img.src = "/frame.png?seq=" + seq;
      }
    } catch (e) {
      say("reconnecting…");
      await new Promise(res => setTimeout(res, 1000));
    }
  }
}
document.getElementById("codeform").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("code");
  const code = input.value.trim();
  if (!code) return;
  if (await post("/api/code", { code })) input.value = "";
});
for (const b of document.querySelectorAll("button[data-key]")) {
  b.addEventListener("click", () => post("/api/key", { key: b.dataset.key }));
}
document.addEventListener("keydown", (ev) => {
  if (ev.target && ev.target.id === "code") return;
  const map = { Enter: "enter", Escape: "cancel", Backspace: "back", ".": "dot" };
  const k = /^[0-9]$/.test(ev.key) ? ev.key : map[ev.key];
  if (k) { ev.preventDefault(); post("/api/key", { key: k }); }
});
poll();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::model::{Locale, Screen, StatusBar};
    use crate::ui::render::Renderer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn http(addr: std::net::SocketAddr, req: String) -> (u16, Vec<u8>) {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.write_all(req.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let head_end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(buf.len());
        let status = std::str::from_utf8(&buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, buf[head_end..].to_vec())
    }

    fn post(path: &str, json: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        )
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    }

    #[test]
    fn codes_are_validated() {
        assert_eq!(
            validate_code(" 134567890123456789 "),
            Ok("134567890123456789".into())
        );
        assert!(validate_code("").is_err());
        assert!(validate_code("12 34").is_err());
        assert!(validate_code("码").is_err());
        assert!(validate_code(&"1".repeat(MAX_CODE_LEN + 1)).is_err());
    }

    #[tokio::test]
    async fn routes_serve_frames_and_forward_inputs() {
        let (mut publisher, frames) = mirror_channel((320, 240));
        let (tx, mut rx) = mpsc::channel(4);
        let (addr, server) = spawn_mirror(([127, 0, 0, 1], 0).into(), frames, tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let (st, body) = http(addr, get("/")).await;
        assert_eq!(st, 200);
        let page = String::from_utf8_lossy(&body);
        assert!(
            page.contains("id=\"screen\"")
                && !page.contains("http://")
                && !page.contains("https://")
        );
        assert_eq!(
            http(addr, get("/frame.png")).await.0,
            503,
            "nothing drawn yet"
        );

        let mut r = Renderer::new((320, 240), Locale::Zh).unwrap_or_else(|e| panic!("{e}"));
        let status = StatusBar {
            merchant: "店".into(),
            time: "10:00".into(),
            online: true,
            unsettled: 0,
        };
        let d = r.render(&Screen::Idle, &status);
        publisher
            .flush(r.frame(), &d)
            .unwrap_or_else(|e| panic!("{e}"));
        let (st, png) = http(addr, get("/frame.png")).await;
        assert_eq!(st, 200);
        let img = crate::ui::png::decode_png(&png).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(img.rgb, r.frame().to_rgb888());

        // The long poll answers at once when the caller is behind, and waits otherwise.
        let (_, j) = http(addr, get("/api/frame?after=0")).await;
        let info: FrameInfo = serde_json::from_slice(&j).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            info,
            FrameInfo {
                seq: 1,
                width: 320,
                height: 240
            }
        );
        let waiter = tokio::spawn(async move { http(addr, get("/api/frame?after=1")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        publisher
            .publish(r.frame())
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, j) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let info: FrameInfo = serde_json::from_slice(&j).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.seq, 2);

        assert_eq!(
            http(addr, post("/api/code", r#"{"code":"134567890123456789"}"#))
                .await
                .0,
            202
        );
        assert_eq!(
            rx.recv().await,
            Some(UiInput::Code("134567890123456789".into()))
        );
        assert_eq!(http(addr, post("/api/key", r#"{"key":"7"}"#)).await.0, 202);
        assert_eq!(rx.recv().await, Some(UiInput::Key(Key::Digit(7))));
        assert_eq!(
            http(addr, post("/api/key", r#"{"key":"nope"}"#)).await.0,
            400
        );
        assert_eq!(
            http(addr, post("/api/code", r#"{"code":"has space"}"#))
                .await
                .0,
            400
        );
        assert!(http(addr, post("/api/code", "not json")).await.0 >= 400);
        assert!(rx.try_recv().is_err(), "rejected inputs are not forwarded");

        // A full channel answers 503 instead of blocking the page.
        for _ in 0..4 {
            http(addr, post("/api/key", r#"{"key":"1"}"#)).await;
        }
        assert_eq!(http(addr, post("/api/key", r#"{"key":"1"}"#)).await.0, 503);
        server.abort();
    }
}
