//! A simulated face-pay module that speaks FPL/1 on any byte stream (a pty master in the demo and
//! the tests). It plays the module's app: HELLO, rawdata, authinfo, recognition with progress,
//! cancel, pay result, with configurable misbehaviour (never answering, failing, corrupting a
//! frame) so the daemon's side can be tested against each. It produces fake credentials only.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{self, Decoded, FrameDecoder, MsgType, Reliable};
use super::msg;

/// How the simulated module answers START_FACE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimBehaviour {
    /// Recognises the customer after `face_delay`.
    Succeed,
    /// Acknowledges, then never answers (the daemon's timeout must fire).
    NeverAnswer,
    /// Answers FACE_ERROR with this code (e.g. LIVENESS_FAIL).
    Fail(String),
    /// Sends the first FACE_RESULT with a flipped payload byte; resends it intact when no ACK
    /// comes.
    CorruptFirstResult,
    /// Stops acknowledging anything (a hung module).
    Mute,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub behaviour: SimBehaviour,
    pub face_delay: Duration,
    pub ack_timeout: Duration,
    pub retries: u32,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            behaviour: SimBehaviour::Succeed,
            face_delay: Duration::from_millis(800),
            ack_timeout: Duration::from_millis(100),
            retries: 3,
        }
    }
}

struct Session {
    req: msg::StartFace,
    due: Instant,
}

/// Serves the module side until the stream ends. Returns the number of frames it received.
pub async fn serve<IO: AsyncRead + AsyncWrite + Unpin>(io: IO, cfg: SimConfig) -> usize {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut dec = FrameDecoder::default();
    let mut rel = Reliable::new(cfg.ack_timeout, cfg.retries);
    let mut out: Vec<u8> = Vec::new();
    let mut authorised = false;
    let mut session: Option<Session> = None;
    let mut corrupt_next = cfg.behaviour == SimBehaviour::CorruptFirstResult;
    let mut received = 0usize;
    let mut buf = [0u8; 512];

    fn push<T: Serialize>(rel: &mut Reliable, out: &mut Vec<u8>, ty: MsgType, body: &T) {
        if let Ok(p) = serde_json::to_vec(body)
            && let Some((_, b)) = rel.send(ty, &p, Instant::now())
        {
            out.extend(b);
        }
    }

    let hello = msg::Hello {
        proto: 1,
        vendor: "payterm".into(),
        model: "sim-face".into(),
        fw: "1.0".into(),
        sn: "SIM0001".into(),
        caps: vec!["wechat".into()],
    };
    push(&mut rel, &mut out, MsgType::Hello, &hello);

    loop {
        if !out.is_empty() {
            let bytes = std::mem::take(&mut out);
            if wr.write_all(&bytes).await.is_err() {
                return received;
            }
        }
        let now = Instant::now();
        let wake = [rel.deadline(), session.as_ref().map(|s| s.due)]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match wake {
                Some(w) => tokio::time::sleep(w.saturating_duration_since(now)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => return received,
                    Ok(n) => n,
                };
                dec.push(&buf[..n]);
                while let Some(d) = dec.next_decoded() {
                    let Decoded::Frame(f) = d else { continue };
                    received += 1;
                    if cfg.behaviour == SimBehaviour::Mute {
                        continue;
                    }
                    if f.ty == MsgType::Ack {
                        rel.on_ack(f.seq);
                        continue;
                    }
                    if !f.ty.is_reliable() {
                        continue;
                    }
                    if let MsgType::Unknown(_) = f.ty {
                        if let Some(b) = frame::encode(MsgType::Nak, f.seq, br#"{"reason":"unknown type"}"#) {
                            out.extend(b);
                        }
                        continue;
                    }
                    if let Some(b) = frame::encode(MsgType::Ack, f.seq, b"") {
                        out.extend(b);
                    }
                    if !rel.on_incoming(f.ty, f.seq) {
                        continue;
                    }
                    match f.ty {
                        MsgType::GetRawdata => {
                            let provider = serde_json::from_slice::<msg::GetRawdata>(&f.payload)
                                .map(|g| g.provider)
                                .unwrap_or_else(|_| "wechat".into());
                            let rawdata = format!("SIMRAW{}", random_hex(96));
                            push(&mut rel, &mut out, MsgType::Rawdata, &msg::Rawdata { provider, rawdata });
                        }
                        MsgType::Authinfo => {
                            authorised = serde_json::from_slice::<msg::Authinfo>(&f.payload)
                                .is_ok_and(|a| !a.authinfo.is_empty());
                        }
                        MsgType::StartFace => {
                            let Ok(req) = serde_json::from_slice::<msg::StartFace>(&f.payload) else {
                                continue;
                            };
                            if !authorised {
                                push(&mut rel, &mut out, MsgType::FaceError, &msg::FaceError {
                                    txn_id: req.txn_id,
                                    code: "NOT_READY".into(),
                                    detail: "no authinfo".into(),
                                });
                                continue;
                            }
                            push(&mut rel, &mut out, MsgType::Progress, &msg::Progress {
                                txn_id: req.txn_id.clone(),
                                stage: "detecting".into(),
                            });
                            session = Some(Session { req, due: Instant::now() + cfg.face_delay });
                        }
                        MsgType::Cancel => {
                            let txn = serde_json::from_slice::<msg::Cancel>(&f.payload).map(|c| c.txn_id);
                            if let Ok(txn) = txn
                                && session.as_ref().is_some_and(|s| s.req.txn_id == txn)
                            {
                                session = None;
                                push(&mut rel, &mut out, MsgType::FaceError, &msg::FaceError {
                                    txn_id: txn,
                                    code: "USER_CANCEL".into(),
                                    detail: "cancelled by the terminal".into(),
                                });
                            }
                        }
                        // HELLO, HEARTBEAT, PAY_RESULT: acknowledged, nothing else to do.
                        _ => {}
                    }
                }
            }
            _ = sleep => {
                let now = Instant::now();
                let (resend, _failed) = rel.poll(now);
                for b in resend {
                    out.extend(b);
                }
                if session.as_ref().is_some_and(|s| now >= s.due)
                    && let Some(s) = session.take()
                {
                    match &cfg.behaviour {
                        SimBehaviour::NeverAnswer | SimBehaviour::Mute => {}
                        SimBehaviour::Fail(code) => push(&mut rel, &mut out, MsgType::FaceError, &msg::FaceError {
                            txn_id: s.req.txn_id,
                            code: code.clone(),
                            detail: "simulated failure".into(),
                        }),
                        SimBehaviour::Succeed | SimBehaviour::CorruptFirstResult => {
                            let result = msg::FaceResult {
                                txn_id: s.req.txn_id,
                                provider: s.req.provider,
                                face_code: Some(format!("SIMFACE{}", random_hex(24))),
                                openid: Some(format!("oSIM{}", random_hex(24))),
                                sub_openid: None,
                                ftoken: None,
                                amount_fen: s.req.amount_fen,
                            };
                            let start = out.len();
                            push(&mut rel, &mut out, MsgType::FaceResult, &result);
                            if corrupt_next && out.len() > start + 12 {
                                // Flip a payload bit on the wire only; the copy kept for
                                // resending stays intact.
                                out[start + 12] ^= 0x20;
                                corrupt_next = false;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b"0123456789ABCDEF"[rng.gen_range(0..16)]))
        .collect()
}
