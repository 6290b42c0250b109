//! The face-pay module link (FPL/1, docs/face-module-protocol.md): the daemon side.
//!
//! One task owns the serial line to the module: it frames and acknowledges messages, resends
//! unacknowledged ones, sends heartbeats, and answers the daemon's requests (rawdata, authinfo,
//! start face, cancel, pay result) through a [`FaceHandle`]. It produces a face_code and openid
//! for the core; it never calls a gateway (the daemon fetches authinfo with `getfaceauth` and
//! hands it over) and never decides whether a payment happens.

pub mod frame;
pub mod sim;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use self::frame::{Decoded, Dropped, FrameDecoder, MsgType, Reliable};
use super::board::FaceConfig;
use super::{DeviceEvent, DeviceKind, Secret, SourceId};

/// Wire messages (compact JSON payloads).
pub mod msg {
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
    pub struct Hello {
        pub proto: u32,
        #[serde(default)]
        pub vendor: String,
        #[serde(default)]
        pub model: String,
        #[serde(default)]
        pub fw: String,
        #[serde(default)]
        pub sn: String,
        #[serde(default)]
        pub caps: Vec<String>,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct GetRawdata {
        pub provider: String,
    }

    #[derive(Clone, Serialize, Deserialize)]
    pub struct Rawdata {
        pub provider: String,
        pub rawdata: String,
    }

    #[derive(Clone, Serialize, Deserialize)]
    pub struct Authinfo {
        pub provider: String,
        pub authinfo: String,
        /// Unix seconds.
        pub expires_at: i64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
    pub struct StartFace {
        pub txn_id: String,
        pub provider: String,
        pub amount_fen: u64,
        pub currency: String,
        pub out_trade_no: String,
        #[serde(default)]
        pub store_id: String,
        pub timeout_ms: u64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Progress {
        pub txn_id: String,
        pub stage: String,
    }

    #[derive(Clone, Serialize, Deserialize)]
    pub struct FaceResult {
        pub txn_id: String,
        pub provider: String,
        #[serde(default)]
        pub face_code: Option<String>,
        #[serde(default)]
        pub openid: Option<String>,
        #[serde(default)]
        pub sub_openid: Option<String>,
        #[serde(default)]
        pub ftoken: Option<String>,
        /// Echo of the START_FACE amount, checked against it.
        pub amount_fen: u64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct FaceError {
        pub txn_id: String,
        pub code: String,
        #[serde(default)]
        pub detail: String,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Cancel {
        pub txn_id: String,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct PayResult {
        pub txn_id: String,
        /// success | fail | unknown
        pub status: String,
        #[serde(default)]
        pub msg: String,
    }

    #[derive(Clone, Debug, Serialize, Deserialize, Default)]
    pub struct Nak {
        pub reason: String,
    }
}

/// What the module recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaceOutcome {
    pub txn_id: String,
    pub provider: String,
    /// WeChat: the face_code to pay with. Alipay: the ftoken.
    pub face_code: Secret,
    /// WeChat openid (empty for Alipay). Masked like a code: it identifies a person.
    pub openid: Secret,
    pub sub_openid: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaceError {
    #[error("the customer did not finish face recognition in time")]
    Timeout,
    #[error("face recognition was cancelled")]
    Cancelled,
    #[error("the face module reported {code}: {detail}")]
    Module { code: String, detail: String },
    #[error("the face module does not answer (no ACK after retries); check its cable and power")]
    LinkDown,
    #[error("the face module answered for another transaction or amount; result ignored")]
    Mismatch,
    #[error("a face recognition is already running (txn {0})")]
    Busy(String),
    #[error("the face module's reply could not be read: {0}")]
    BadReply(String),
    #[error("the face module driver has stopped")]
    Closed,
}

/// Unsolicited news from the face module, sent as [`DeviceEvent::Face`].
#[derive(Clone, Debug)]
pub enum FaceEvent {
    LinkUp {
        model: String,
        fw: String,
    },
    LinkDown {
        reason: String,
    },
    Progress {
        txn_id: String,
        stage: String,
    },
    /// Outcome of a recognition started with [`FaceHandle::spawn_face_pay`].
    Outcome {
        txn_id: String,
        result: Result<FaceOutcome, FaceError>,
    },
}

/// Timing of the link, from the board profile.
#[derive(Clone, Debug)]
pub struct LinkTiming {
    pub ack: Duration,
    pub retries: u32,
    pub heartbeat: Duration,
    /// Extra wait for the RAWDATA reply after its request is acknowledged.
    pub reply: Duration,
}

impl LinkTiming {
    pub fn from_config(cfg: &FaceConfig) -> LinkTiming {
        LinkTiming {
            ack: Duration::from_millis(cfg.ack_ms),
            retries: cfg.retries,
            heartbeat: Duration::from_millis(cfg.heartbeat_ms),
            reply: Duration::from_secs(5),
        }
    }
}

enum Cmd {
    GetRawdata {
        provider: String,
        reply: oneshot::Sender<Result<Secret, FaceError>>,
    },
    Authinfo {
        provider: String,
        authinfo: Secret,
        expires_at: i64,
        reply: oneshot::Sender<Result<(), FaceError>>,
    },
    StartFace {
        req: msg::StartFace,
        reply: oneshot::Sender<Result<FaceOutcome, FaceError>>,
    },
    Cancel {
        txn_id: String,
        reply: oneshot::Sender<Result<(), FaceError>>,
    },
    PayResult {
        txn_id: String,
        status: String,
        msg: String,
        reply: oneshot::Sender<Result<(), FaceError>>,
    },
}

/// The daemon's handle on the face module. Cheap to clone.
#[derive(Clone)]
pub struct FaceHandle {
    tx: mpsc::Sender<Cmd>,
}

impl FaceHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, FaceError>>) -> Cmd,
    ) -> Result<T, FaceError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| FaceError::Closed)?;
        rx.await.map_err(|_| FaceError::Closed)?
    }

    /// Step 1: the module's rawdata, for the aggregator's getfaceauth call.
    pub async fn get_rawdata(&self, provider: &str) -> Result<Secret, FaceError> {
        let provider = provider.to_owned();
        self.ask(|reply| Cmd::GetRawdata { provider, reply }).await
    }

    /// Step 2: hand the module the authinfo getfaceauth returned.
    pub async fn send_authinfo(
        &self,
        provider: &str,
        authinfo: Secret,
        expires_at: i64,
    ) -> Result<(), FaceError> {
        let provider = provider.to_owned();
        self.ask(|reply| Cmd::Authinfo {
            provider,
            authinfo,
            expires_at,
            reply,
        })
        .await
    }

    /// Step 3: recognise the customer; resolves with face_code and openid, or why not.
    pub async fn start_face(&self, req: msg::StartFace) -> Result<FaceOutcome, FaceError> {
        self.ask(|reply| Cmd::StartFace { req, reply }).await
    }

    /// Stops a running recognition; its `start_face` resolves with `Cancelled`.
    pub async fn cancel(&self, txn_id: &str) -> Result<(), FaceError> {
        let txn_id = txn_id.to_owned();
        self.ask(|reply| Cmd::Cancel { txn_id, reply }).await
    }

    /// Step 5: tell the module how the payment ended, so it can show it.
    pub async fn pay_result(&self, txn_id: &str, status: &str, msg: &str) -> Result<(), FaceError> {
        let (txn_id, status, msg) = (txn_id.to_owned(), status.to_owned(), msg.to_owned());
        self.ask(|reply| Cmd::PayResult {
            txn_id,
            status,
            msg,
            reply,
        })
        .await
    }

    /// Runs [`FaceHandle::start_face`] in the background and delivers its outcome as a
    /// `DeviceEvent::Face(FaceEvent::Outcome)`, for an event-driven core.
    pub fn spawn_face_pay(
        &self,
        req: msg::StartFace,
        events: mpsc::Sender<DeviceEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let txn_id = req.txn_id.clone();
            let result = me.start_face(req).await;
            let _ = events
                .send(DeviceEvent::Face(FaceEvent::Outcome { txn_id, result }))
                .await;
        })
    }
}

/// Starts the link over an already open stream (a pty in tests and the demo, a serial port on a
/// board). The task ends when the stream fails or every handle is dropped.
pub fn spawn_link<IO>(
    io: IO,
    timing: LinkTiming,
    events: Option<mpsc::Sender<DeviceEvent>>,
) -> (FaceHandle, tokio::task::JoinHandle<LinkEnd>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(8);
    let task = tokio::spawn(async move {
        let mut link = Link::new(timing, events);
        link.run(io, &mut rx).await
    });
    (FaceHandle { tx }, task)
}

/// Opens the module named in the board profile and keeps the link up for the daemon's life:
/// after a read error (unplug) the port is reopened every second with a fresh link state, while
/// the same [`FaceHandle`] stays valid. `path = "sim"` starts the simulated module on a pty.
pub fn open_face_module(
    cfg: &FaceConfig,
    events: mpsc::Sender<DeviceEvent>,
) -> std::io::Result<(FaceHandle, tokio::task::JoinHandle<()>)> {
    let timing = LinkTiming::from_config(cfg);
    let (tx, mut rx) = mpsc::channel(8);
    let mut path = cfg.path.clone();
    let mut sim_keepalive = None;
    if cfg.path == "sim" {
        let (master, slave, keep) = super::pty::open_pty()?.into_parts();
        tokio::spawn(sim::serve(master, sim::SimConfig::default()));
        path = slave.to_string_lossy().into_owned();
        sim_keepalive = Some(keep);
    }
    let baud = cfg.baud;
    let task = tokio::spawn(async move {
        let _keep = sim_keepalive;
        let mut logged = false;
        loop {
            match super::serial::open_port(
                &path,
                baud,
                8,
                super::board::Parity::None,
                1,
                super::board::FlowControl::None,
            ) {
                Ok(port) => {
                    logged = false;
                    let _ = events
                        .send(DeviceEvent::DeviceAdded {
                            source: SourceId::new("face"),
                            kind: DeviceKind::FaceModule,
                            detail: path.clone(),
                        })
                        .await;
                    let mut link = Link::new(timing.clone(), Some(events.clone()));
                    match link.run(port, &mut rx).await {
                        LinkEnd::HandlesDropped => return,
                        LinkEnd::Io(reason) => {
                            let _ = events
                                .send(DeviceEvent::DeviceRemoved {
                                    source: SourceId::new("face"),
                                    kind: DeviceKind::FaceModule,
                                    reason,
                                })
                                .await;
                        }
                    }
                }
                Err(e) => {
                    if !logged {
                        tracing::warn!(error = %e, "cannot open the face module; retrying");
                        logged = true;
                    }
                }
            }
            if events.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok((FaceHandle { tx }, task))
}

/// Why a link task ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// Every [`FaceHandle`] was dropped.
    HandlesDropped,
    /// The stream failed (module unplugged or closed).
    Io(String),
}

/// What a reliable frame we sent is waiting for.
enum AckWaiter {
    Done(oneshot::Sender<Result<(), FaceError>>),
    Rawdata,
    Face(String),
    Heartbeat,
    Nothing,
}

struct FaceWait {
    req: msg::StartFace,
    reply: oneshot::Sender<Result<FaceOutcome, FaceError>>,
    deadline: Instant,
}

struct Link {
    timing: LinkTiming,
    events: Option<mpsc::Sender<DeviceEvent>>,
    rel: Reliable,
    acks: HashMap<u16, AckWaiter>,
    rawdata: Option<(oneshot::Sender<Result<Secret, FaceError>>, Instant)>,
    face: Option<FaceWait>,
    next_heartbeat: Instant,
    up: bool,
    hello: msg::Hello,
    out: Vec<u8>,
}

impl Link {
    fn new(timing: LinkTiming, events: Option<mpsc::Sender<DeviceEvent>>) -> Link {
        Link {
            rel: Reliable::new(timing.ack, timing.retries),
            next_heartbeat: Instant::now() + timing.heartbeat,
            timing,
            events,
            acks: HashMap::new(),
            rawdata: None,
            face: None,
            up: false,
            hello: msg::Hello::default(),
            out: Vec::new(),
        }
    }

    fn emit(&self, ev: FaceEvent) {
        if let Some(tx) = &self.events
            && tx.try_send(DeviceEvent::Face(ev)).is_err()
        {
            tracing::debug!("face event dropped: receiver full or gone");
        }
    }

    fn send<T: Serialize>(&mut self, ty: MsgType, body: &T, waiter: AckWaiter) -> bool {
        let payload = match serde_json::to_vec(body) {
            Ok(p) => p,
            Err(_) => return false,
        };
        match self.rel.send(ty, &payload, Instant::now()) {
            Some((seq, bytes)) => {
                self.out.extend(bytes);
                self.acks.insert(seq, waiter);
                true
            }
            None => false,
        }
    }

    fn send_ack(&mut self, ty: MsgType, seq: u16, body: &[u8]) {
        if let Some(b) = frame::encode(ty, seq, body) {
            self.out.extend(b);
        }
    }

    async fn run<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: IO,
        cmds: &mut mpsc::Receiver<Cmd>,
    ) -> LinkEnd {
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut dec = FrameDecoder::default();
        let mut buf = [0u8; 512];
        let hello = msg::Hello {
            proto: 1,
            vendor: "payterm".into(),
            model: "daemon".into(),
            fw: env!("CARGO_PKG_VERSION").into(),
            sn: String::new(),
            caps: vec!["wechat".into(), "alipay".into()],
        };
        self.send(MsgType::Hello, &hello, AckWaiter::Nothing);
        loop {
            if !self.out.is_empty() {
                let out = std::mem::take(&mut self.out);
                if let Err(e) = wr.write_all(&out).await {
                    return self.fail_all(format!("write failed: {e}"));
                }
            }
            let now = Instant::now();
            let mut wake = self.next_heartbeat;
            for d in [
                self.rel.deadline(),
                self.rawdata.as_ref().map(|r| r.1),
                self.face.as_ref().map(|f| f.deadline),
            ]
            .into_iter()
            .flatten()
            {
                wake = wake.min(d);
            }
            let sleep = tokio::time::sleep(wake.saturating_duration_since(now));
            tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) => return self.fail_all("end of stream".into()),
                    Ok(n) => {
                        dec.push(&buf[..n]);
                        buf[..n].iter_mut().for_each(|b| *b = 0);
                        while let Some(d) = dec.next_decoded() {
                            match d {
                                Decoded::Frame(f) => self.on_frame(f),
                                Decoded::Dropped(Dropped::Noise(n)) => {
                                    tracing::debug!(bytes = n, "face link: noise skipped")
                                }
                                Decoded::Dropped(d) => {
                                    tracing::warn!(?d, "face link: corrupted frame dropped")
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return self.fail_all(format!("read failed: {e}")),
                },
                c = cmds.recv() => match c {
                    Some(c) => self.on_cmd(c),
                    None => return LinkEnd::HandlesDropped,
                },
                _ = sleep => self.on_timers(Instant::now()),
            }
        }
    }

    fn fail_all(&mut self, reason: String) -> LinkEnd {
        tracing::warn!(%reason, "face link ended");
        for (_, w) in self.acks.drain() {
            if let AckWaiter::Done(tx) = w {
                let _ = tx.send(Err(FaceError::LinkDown));
            }
        }
        if let Some((tx, _)) = self.rawdata.take() {
            let _ = tx.send(Err(FaceError::LinkDown));
        }
        if let Some(f) = self.face.take() {
            let _ = f.reply.send(Err(FaceError::LinkDown));
        }
        self.emit(FaceEvent::LinkDown {
            reason: reason.clone(),
        });
        LinkEnd::Io(reason)
    }

    fn on_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::GetRawdata { provider, reply } => {
                if self.rawdata.is_some() {
                    let _ = reply.send(Err(FaceError::Busy("rawdata".into())));
                    return;
                }
                let deadline = Instant::now()
                    + self.timing.ack * (self.timing.retries + 1)
                    + self.timing.reply;
                if self.send(
                    MsgType::GetRawdata,
                    &msg::GetRawdata { provider },
                    AckWaiter::Rawdata,
                ) {
                    self.rawdata = Some((reply, deadline));
                } else {
                    let _ = reply.send(Err(FaceError::BadReply("cannot encode".into())));
                }
            }
            Cmd::Authinfo {
                provider,
                authinfo,
                expires_at,
                reply,
            } => {
                let body = msg::Authinfo {
                    provider,
                    authinfo: authinfo.expose().to_owned(),
                    expires_at,
                };
                if !self.send(MsgType::Authinfo, &body, AckWaiter::Done(reply)) {
                    tracing::warn!("authinfo too large for one frame");
                }
            }
            Cmd::StartFace { req, reply } => {
                if let Some(f) = &self.face {
                    let _ = reply.send(Err(FaceError::Busy(f.req.txn_id.clone())));
                    return;
                }
                // The module has the customer's whole timeout plus the link's retry budget.
                let deadline = Instant::now()
                    + Duration::from_millis(req.timeout_ms)
                    + self.timing.ack * (self.timing.retries + 1) * 2;
                let txn = req.txn_id.clone();
                if self.send(MsgType::StartFace, &req, AckWaiter::Face(txn)) {
                    self.face = Some(FaceWait {
                        req,
                        reply,
                        deadline,
                    });
                } else {
                    let _ = reply.send(Err(FaceError::BadReply("cannot encode".into())));
                }
            }
            Cmd::Cancel { txn_id, reply } => {
                if let Some(f) = self.face.take_if(|f| f.req.txn_id == txn_id) {
                    let _ = f.reply.send(Err(FaceError::Cancelled));
                }
                self.send(
                    MsgType::Cancel,
                    &msg::Cancel { txn_id },
                    AckWaiter::Done(reply),
                );
            }
            Cmd::PayResult {
                txn_id,
                status,
                msg,
                reply,
            } => {
                let body = msg::PayResult {
                    txn_id,
                    status,
                    msg,
                };
                self.send(MsgType::PayResult, &body, AckWaiter::Done(reply));
            }
        }
    }

    fn on_timers(&mut self, now: Instant) {
        let (resend, failed) = self.rel.poll(now);
        for b in resend {
            tracing::debug!("face link: resending an unacknowledged frame");
            self.out.extend(b);
        }
        for u in failed {
            match self.acks.remove(&u.seq) {
                Some(AckWaiter::Done(tx)) => {
                    let _ = tx.send(Err(FaceError::LinkDown));
                }
                Some(AckWaiter::Rawdata) => {
                    if let Some((tx, _)) = self.rawdata.take() {
                        let _ = tx.send(Err(FaceError::LinkDown));
                    }
                }
                Some(AckWaiter::Face(txn)) => {
                    if let Some(f) = self.face.take_if(|f| f.req.txn_id == txn) {
                        let _ = f.reply.send(Err(FaceError::LinkDown));
                    }
                }
                Some(AckWaiter::Heartbeat) | Some(AckWaiter::Nothing) | None => {}
            }
            if self.up {
                self.up = false;
                tracing::warn!(?u.ty, "face module stopped acknowledging; link down");
                self.emit(FaceEvent::LinkDown {
                    reason: format!(
                        "no ACK for {:?} after {} retries",
                        u.ty, self.timing.retries
                    ),
                });
            }
        }
        if let Some((_, d)) = &self.rawdata
            && now >= *d
            && let Some((tx, _)) = self.rawdata.take()
        {
            let _ = tx.send(Err(FaceError::Timeout));
        }
        if let Some(f) = &self.face
            && now >= f.deadline
            && let Some(f) = self.face.take()
        {
            // Stop the camera on the module too; its late answer, if any, is ignored.
            let txn_id = f.req.txn_id.clone();
            let _ = f.reply.send(Err(FaceError::Timeout));
            self.send(MsgType::Cancel, &msg::Cancel { txn_id }, AckWaiter::Nothing);
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.timing.heartbeat;
            self.send(
                MsgType::Heartbeat,
                &serde_json::json!({}),
                AckWaiter::Heartbeat,
            );
        }
    }

    fn on_frame(&mut self, f: frame::Frame) {
        if f.ty == MsgType::Ack {
            if self.rel.on_ack(f.seq).is_some() {
                if !self.up && self.hello.proto != 0 {
                    self.up = true;
                    self.emit(FaceEvent::LinkUp {
                        model: self.hello.model.clone(),
                        fw: self.hello.fw.clone(),
                    });
                }
                if let Some(AckWaiter::Done(tx)) = self.acks.remove(&f.seq) {
                    let _ = tx.send(Ok(()));
                }
            }
            return;
        }
        if f.ty == MsgType::Nak {
            let reason = serde_json::from_slice::<msg::Nak>(&f.payload)
                .map(|n| n.reason)
                .unwrap_or_default();
            tracing::warn!(%reason, seq = f.seq, "face module refused a frame");
            self.rel.on_ack(f.seq);
            match self.acks.remove(&f.seq) {
                Some(AckWaiter::Done(tx)) => {
                    let _ = tx.send(Err(FaceError::Module {
                        code: "NAK".into(),
                        detail: reason,
                    }));
                }
                Some(AckWaiter::Rawdata) => {
                    if let Some((tx, _)) = self.rawdata.take() {
                        let _ = tx.send(Err(FaceError::Module {
                            code: "NAK".into(),
                            detail: reason,
                        }));
                    }
                }
                Some(AckWaiter::Face(txn)) => {
                    if let Some(w) = self.face.take_if(|w| w.req.txn_id == txn) {
                        let _ = w.reply.send(Err(FaceError::Module {
                            code: "NAK".into(),
                            detail: reason,
                        }));
                    }
                }
                _ => {}
            }
            return;
        }
        if let MsgType::Unknown(t) = f.ty {
            let nak = serde_json::to_vec(&msg::Nak {
                reason: format!("unknown type 0x{t:02x}"),
            })
            .unwrap_or_default();
            self.send_ack(MsgType::Nak, f.seq, &nak);
            return;
        }
        // Every reliable frame is acknowledged, repeats included (our first ACK may be lost).
        self.send_ack(MsgType::Ack, f.seq, b"");
        if !self.rel.on_incoming(f.ty, f.seq) {
            return;
        }
        self.handle(f);
    }

    fn handle(&mut self, f: frame::Frame) {
        match f.ty {
            MsgType::Hello => match serde_json::from_slice::<msg::Hello>(&f.payload) {
                Ok(h) => {
                    tracing::info!(model = %h.model, fw = %h.fw, "face module says hello");
                    self.hello = h;
                    self.up = true;
                    self.emit(FaceEvent::LinkUp {
                        model: self.hello.model.clone(),
                        fw: self.hello.fw.clone(),
                    });
                }
                Err(e) => tracing::warn!(error = %e, "face module HELLO unreadable"),
            },
            MsgType::Heartbeat => {}
            MsgType::Rawdata => {
                let Some((tx, _)) = self.rawdata.take() else {
                    tracing::debug!("unrequested RAWDATA ignored");
                    return;
                };
                let r = serde_json::from_slice::<msg::Rawdata>(&f.payload)
                    .map(|r| Secret::new(r.rawdata))
                    .map_err(|e| FaceError::BadReply(e.to_string()));
                let _ = tx.send(r);
            }
            MsgType::Progress => {
                if let Ok(p) = serde_json::from_slice::<msg::Progress>(&f.payload) {
                    self.emit(FaceEvent::Progress {
                        txn_id: p.txn_id,
                        stage: p.stage,
                    });
                }
            }
            MsgType::FaceResult => {
                let r = match serde_json::from_slice::<msg::FaceResult>(&f.payload) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "face module result unreadable");
                        if let Some(w) = self.face.take() {
                            let _ = w.reply.send(Err(FaceError::BadReply(e.to_string())));
                        }
                        return;
                    }
                };
                let Some(w) = self.face.take_if(|w| w.req.txn_id == r.txn_id) else {
                    tracing::info!(txn = %r.txn_id, "face result for no running recognition ignored");
                    return;
                };
                let result = if r.amount_fen != w.req.amount_fen || r.provider != w.req.provider {
                    Err(FaceError::Mismatch)
                } else {
                    match r.face_code.or(r.ftoken) {
                        Some(code) if !code.is_empty() => Ok(FaceOutcome {
                            txn_id: r.txn_id,
                            provider: r.provider,
                            face_code: Secret::new(code),
                            openid: Secret::new(r.openid.unwrap_or_default()),
                            sub_openid: r.sub_openid.map(Secret::new),
                        }),
                        _ => Err(FaceError::BadReply("result without face_code".into())),
                    }
                };
                if let Ok(o) = &result {
                    tracing::info!(txn = %o.txn_id, face_code = %o.face_code, "face recognised");
                }
                let _ = w.reply.send(result);
            }
            MsgType::FaceError => {
                let Ok(e) = serde_json::from_slice::<msg::FaceError>(&f.payload) else {
                    return;
                };
                if let Some(w) = self.face.take_if(|w| w.req.txn_id == e.txn_id) {
                    let err = match e.code.as_str() {
                        "TIMEOUT" => FaceError::Timeout,
                        "USER_CANCEL" | "CANCELLED" => FaceError::Cancelled,
                        _ => FaceError::Module {
                            code: e.code,
                            detail: e.detail,
                        },
                    };
                    let _ = w.reply.send(Err(err));
                }
            }
            // Requests only a module receives.
            other => tracing::debug!(?other, "unexpected frame from the face module ignored"),
        }
    }
}

#[cfg(test)]
mod tests;
