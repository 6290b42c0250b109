//! FPL/1 framing and the link's reliability layer, shared by the daemon side and the simulated
//! module: frame encoding, a resynchronising decoder, and a sans-IO record of unacknowledged
//! frames (ACK within `ack_timeout`, resend up to `retries` times, de-duplication by type and
//! sequence number).
//!
//! Frame: `A5 5A | ver=1 | type | seq u16 LE | len u16 LE | payload | crc16 u16 LE`, CRC-16/
//! CCITT-FALSE over `ver..payload`. See docs/face-module-protocol.md. No I/O, no clock reads.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub const MAGIC: [u8; 2] = [0xA5, 0x5A];
pub const VERSION: u8 = 1;
pub const MAX_PAYLOAD: usize = 4096;
const HEADER: usize = 8;

/// Message types (one byte on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgType {
    Hello,
    Ack,
    Nak,
    Heartbeat,
    GetRawdata,
    Rawdata,
    Authinfo,
    StartFace,
    Progress,
    FaceResult,
    FaceError,
    Cancel,
    PayResult,
    /// A type this side does not know; answered with NAK.
    Unknown(u8),
}

impl MsgType {
    pub fn to_byte(self) -> u8 {
        match self {
            MsgType::Hello => 0x01,
            MsgType::Ack => 0x02,
            MsgType::Nak => 0x03,
            MsgType::Heartbeat => 0x04,
            MsgType::GetRawdata => 0x10,
            MsgType::Rawdata => 0x11,
            MsgType::Authinfo => 0x12,
            MsgType::StartFace => 0x13,
            MsgType::Progress => 0x14,
            MsgType::FaceResult => 0x15,
            MsgType::FaceError => 0x16,
            MsgType::Cancel => 0x17,
            MsgType::PayResult => 0x18,
            MsgType::Unknown(b) => b,
        }
    }

    pub fn from_byte(b: u8) -> MsgType {
        match b {
            0x01 => MsgType::Hello,
            0x02 => MsgType::Ack,
            0x03 => MsgType::Nak,
            0x04 => MsgType::Heartbeat,
            0x10 => MsgType::GetRawdata,
            0x11 => MsgType::Rawdata,
            0x12 => MsgType::Authinfo,
            0x13 => MsgType::StartFace,
            0x14 => MsgType::Progress,
            0x15 => MsgType::FaceResult,
            0x16 => MsgType::FaceError,
            0x17 => MsgType::Cancel,
            0x18 => MsgType::PayResult,
            b => MsgType::Unknown(b),
        }
    }

    /// ACK and NAK are not themselves acknowledged.
    pub fn is_reliable(self) -> bool {
        !matches!(self, MsgType::Ack | MsgType::Nak)
    }
}

/// One decoded frame. The payload may hold a face code: its Debug shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub ty: MsgType,
    pub seq: u16,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame {{ ty: {:?}, seq: {}, payload: {} bytes }}",
            self.ty,
            self.seq,
            self.payload.len()
        )
    }
}

/// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Encodes a frame. Payloads over [`MAX_PAYLOAD`] are a programming error on this side and are
/// refused rather than truncated.
pub fn encode(ty: MsgType, seq: u16, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let mut v = Vec::with_capacity(HEADER + payload.len() + 2);
    v.extend_from_slice(&MAGIC);
    v.push(VERSION);
    v.push(ty.to_byte());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    v.extend_from_slice(payload);
    let crc = crc16(&v[2..]);
    v.extend_from_slice(&crc.to_le_bytes());
    Some(v)
}

/// Something the decoder threw away, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Bytes before a frame start (line noise, a module booting).
    Noise(usize),
    /// A frame whose CRC did not match.
    BadCrc { ty: u8, seq: u16 },
    /// A header with an unknown version or a length over the limit.
    BadHeader,
}

/// Resynchronising frame decoder: hunts for `A5 5A`, checks version, length and CRC, and on any
/// failure skips one byte and hunts again, so a corrupted frame costs only itself.
#[derive(Default, Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

pub enum Decoded {
    Frame(Frame),
    Dropped(Dropped),
}

impl FrameDecoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next frame or drop, or `None` when more bytes are needed.
    pub fn next_decoded(&mut self) -> Option<Decoded> {
        // Find the magic.
        let start = self.buf.windows(2).position(|w| w == MAGIC);
        match start {
            None => {
                // Keep a trailing A5: it may be the first half of the magic.
                let keep = usize::from(self.buf.last() == Some(&MAGIC[0]));
                let n = self.buf.len() - keep;
                if n > 0 {
                    self.buf.drain(..n);
                    return Some(Decoded::Dropped(Dropped::Noise(n)));
                }
                return None;
            }
            Some(0) => {}
            Some(n) => {
                self.buf.drain(..n);
                return Some(Decoded::Dropped(Dropped::Noise(n)));
            }
        }
        if self.buf.len() < HEADER {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([self.buf[6], self.buf[7]]));
        if self.buf[2] != VERSION || len > MAX_PAYLOAD {
            self.buf.drain(..1);
            return Some(Decoded::Dropped(Dropped::BadHeader));
        }
        let total = HEADER + len + 2;
        if self.buf.len() < total {
            return None;
        }
        let crc = u16::from_le_bytes([self.buf[total - 2], self.buf[total - 1]]);
        let ty = self.buf[3];
        let seq = u16::from_le_bytes([self.buf[4], self.buf[5]]);
        if crc16(&self.buf[2..total - 2]) != crc {
            // Skip only the first byte: a real frame may start inside the bad one.
            self.buf.drain(..1);
            return Some(Decoded::Dropped(Dropped::BadCrc { ty, seq }));
        }
        let payload = self.buf[HEADER..total - 2].to_vec();
        // Wipe the consumed bytes: they may hold a face code.
        self.buf[..total].iter_mut().for_each(|b| *b = 0);
        self.buf.drain(..total);
        Some(Decoded::Frame(Frame {
            ty: MsgType::from_byte(ty),
            seq,
            payload,
        }))
    }
}

struct Pending {
    ty: MsgType,
    bytes: Vec<u8>,
    sends: u32,
    due: Instant,
}

/// Sans-IO reliability: which frames await an ACK, when to resend, and which incoming frames
/// are repeats.
pub struct Reliable {
    next_seq: u16,
    pending: BTreeMap<u16, Pending>,
    seen: VecDeque<(MsgType, u16)>,
    ack_timeout: Duration,
    retries: u32,
}

/// A frame that got no ACK after every retry.
#[derive(Debug, PartialEq, Eq)]
pub struct Unacked {
    pub ty: MsgType,
    pub seq: u16,
}

impl Reliable {
    const SEEN_WINDOW: usize = 64;

    pub fn new(ack_timeout: Duration, retries: u32) -> Reliable {
        Reliable {
            next_seq: 1,
            pending: BTreeMap::new(),
            seen: VecDeque::new(),
            ack_timeout,
            retries,
        }
    }

    /// Frames a message; reliable types are remembered for resending. Returns (seq, bytes).
    pub fn send(&mut self, ty: MsgType, payload: &[u8], now: Instant) -> Option<(u16, Vec<u8>)> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        let bytes = encode(ty, seq, payload)?;
        if ty.is_reliable() {
            self.pending.insert(
                seq,
                Pending {
                    ty,
                    bytes: bytes.clone(),
                    sends: 1,
                    due: now + self.ack_timeout,
                },
            );
        }
        Some((seq, bytes))
    }

    /// An ACK arrived; returns the acknowledged type if it was pending.
    pub fn on_ack(&mut self, seq: u16) -> Option<MsgType> {
        self.pending.remove(&seq).map(|p| p.ty)
    }

    /// Records an incoming reliable frame; `false` if it is a repeat (ACK again, do not act).
    /// A HELLO means the peer (re)started and its sequence numbers start over.
    pub fn on_incoming(&mut self, ty: MsgType, seq: u16) -> bool {
        if ty == MsgType::Hello {
            self.seen.clear();
        }
        if self.seen.contains(&(ty, seq)) {
            return false;
        }
        if self.seen.len() == Self::SEEN_WINDOW {
            self.seen.pop_front();
        }
        self.seen.push_back((ty, seq));
        true
    }

    /// Frames to resend now, and frames given up on.
    pub fn poll(&mut self, now: Instant) -> (Vec<Vec<u8>>, Vec<Unacked>) {
        let mut resend = Vec::new();
        let mut failed = Vec::new();
        let mut gone = Vec::new();
        for (&seq, p) in self.pending.iter_mut() {
            if now < p.due {
                continue;
            }
            if p.sends > self.retries {
                gone.push(seq);
                failed.push(Unacked { ty: p.ty, seq });
            } else {
                p.sends += 1;
                p.due = now + self.ack_timeout;
                resend.push(p.bytes.clone());
            }
        }
        for seq in gone {
            self.pending.remove(&seq);
        }
        (resend, failed)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }

    /// Forget everything pending (link restarted).
    pub fn clear_pending(&mut self) -> Vec<Unacked> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(seq, p)| Unacked { ty: p.ty, seq })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut FrameDecoder) -> (Vec<Frame>, Vec<Dropped>) {
        let mut f = Vec::new();
        let mut x = Vec::new();
        while let Some(r) = d.next_decoded() {
            match r {
                Decoded::Frame(fr) => f.push(fr),
                Decoded::Dropped(dr) => x.push(dr),
            }
        }
        (f, x)
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn known_frame_bytes() {
        let b = encode(MsgType::Heartbeat, 0x0102, b"").unwrap();
        assert_eq!(&b[..8], &[0xA5, 0x5A, 0x01, 0x04, 0x02, 0x01, 0x00, 0x00]);
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), crc16(&b[2..8]));
    }

    #[test]
    fn decodes_across_any_split_with_noise_around() {
        let mut stream = b"\x00\xffjunk\xa5".to_vec();
        stream.extend(encode(MsgType::Rawdata, 7, br#"{"rawdata":"x"}"#).unwrap());
        stream.extend(b"\xa5\xa5");
        stream.extend(encode(MsgType::Ack, 7, b"").unwrap());
        for cut in 1..stream.len() {
            let mut d = FrameDecoder::default();
            let mut all = Vec::new();
            for chunk in stream.chunks(cut) {
                d.push(chunk);
                all.extend(frames(&mut d).0);
            }
            assert_eq!(all.len(), 2, "cut {cut}");
            assert_eq!(all[0].ty, MsgType::Rawdata);
            assert_eq!(all[0].payload, br#"{"rawdata":"x"}"#);
            assert_eq!((all[1].ty, all[1].seq), (MsgType::Ack, 7));
        }
    }

    #[test]
    fn corrupted_frame_is_dropped_and_the_next_one_survives() {
        let mut bad = encode(MsgType::FaceResult, 3, br#"{"face_code":"abc"}"#).unwrap();
        bad[12] ^= 0x40;
        let good = encode(MsgType::FaceResult, 3, br#"{"face_code":"abc"}"#).unwrap();
        let mut d = FrameDecoder::default();
        d.push(&bad);
        d.push(&good);
        let (f, x) = frames(&mut d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].payload, br#"{"face_code":"abc"}"#);
        assert!(x.contains(&Dropped::BadCrc { ty: 0x15, seq: 3 }));
    }

    #[test]
    fn oversize_length_is_rejected_without_waiting_for_4k_of_bytes() {
        let mut d = FrameDecoder::default();
        d.push(&[0xA5, 0x5A, 0x01, 0x11, 0x00, 0x00, 0xff, 0xff]);
        d.push(&encode(MsgType::Hello, 1, b"{}").unwrap());
        let (f, x) = frames(&mut d);
        assert!(x.contains(&Dropped::BadHeader));
        assert_eq!(f.len(), 1);
        assert!(encode(MsgType::Hello, 1, &[0u8; MAX_PAYLOAD + 1]).is_none());
    }

    #[test]
    fn reliable_resends_then_gives_up_and_dedups() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Reliable::new(ms(200), 2);
        let (seq, bytes) = r.send(MsgType::StartFace, b"{}", t0).unwrap();
        assert_eq!(r.deadline(), Some(t0 + ms(200)));
        assert_eq!(r.poll(t0 + ms(100)), (vec![], vec![]));
        assert_eq!(r.poll(t0 + ms(200)), (vec![bytes.clone()], vec![]));
        assert_eq!(r.poll(t0 + ms(400)), (vec![bytes], vec![]));
        let (re, failed) = r.poll(t0 + ms(600));
        assert!(re.is_empty());
        assert_eq!(
            failed,
            [Unacked {
                ty: MsgType::StartFace,
                seq
            }]
        );
        assert_eq!(r.deadline(), None);

        let (seq2, _) = r.send(MsgType::Cancel, b"{}", t0).unwrap();
        assert_eq!(r.on_ack(seq2), Some(MsgType::Cancel));
        assert_eq!(r.on_ack(seq2), None);
        assert!(r.send(MsgType::Ack, b"", t0).is_some());
        assert_eq!(r.deadline(), None, "ACKs are not themselves acknowledged");

        assert!(r.on_incoming(MsgType::FaceResult, 9));
        assert!(!r.on_incoming(MsgType::FaceResult, 9));
        assert!(r.on_incoming(MsgType::Progress, 9));
        assert!(r.on_incoming(MsgType::Hello, 1));
        assert!(
            r.on_incoming(MsgType::FaceResult, 9),
            "HELLO resets the window"
        );
    }
}
