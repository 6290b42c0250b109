//! Serial barcode scanners (UART and USB-CDC): the pure byte framer and the thin task that opens
//! the port, feeds the framer, and reopens the port after an unplug.
//!
//! The framer turns bytes into codes by the board profile's prefix, suffix (CR, LF, CRLF, or none
//! with an idle timeout), AIM-id stripping and length limit; anything else is discarded with a log
//! line that never shows the bytes. It does not judge whether a code is a payment code: that is
//! the core's business.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::board::{FlowControl, Parity, SerialScannerConfig, Suffix};
use super::tty::{FdStream, is_gone};
use super::{DeviceError, DeviceEvent, DeviceKind, ScanTrace, Secret, SourceId, mask};

/// What the framer makes of the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framed {
    Code { code: Secret, trace: ScanTrace },
    Discarded { reason: String },
}

/// Pure serial framer: bytes and the time they arrived in, codes out.
#[derive(Debug)]
pub struct SerialFramer {
    prefix: Vec<u8>,
    suffix: Suffix,
    idle: Duration,
    max_len: usize,
    strip_aim: bool,
    buf: Vec<u8>,
    overflow: bool,
    pending_cr: bool,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    steps: Vec<String>,
}

impl SerialFramer {
    pub fn new(cfg: &SerialScannerConfig) -> SerialFramer {
        SerialFramer {
            prefix: cfg.prefix.as_bytes().to_vec(),
            suffix: cfg.suffix,
            idle: Duration::from_millis(cfg.idle_ms.max(1)),
            max_len: cfg.max_len,
            strip_aim: cfg.strip_aim,
            buf: Vec::new(),
            overflow: false,
            pending_cr: false,
            first_at: None,
            last_at: None,
            steps: Vec::new(),
        }
    }

    fn in_frame(&self) -> bool {
        !self.buf.is_empty() || self.overflow || self.pending_cr
    }

    /// When [`SerialFramer::on_idle`] must be called if no byte arrives first.
    pub fn deadline(&self) -> Option<Instant> {
        if self.in_frame() {
            self.last_at.map(|t| t + self.idle)
        } else {
            None
        }
    }

    /// The line has been quiet since the deadline: with `suffix = none` that ends a code,
    /// otherwise the bytes so far are a partial code and are discarded.
    pub fn on_idle(&mut self, now: Instant) -> Option<Framed> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        if self.suffix == Suffix::None {
            self.steps
                .push(format!("idle {} ms ends the code", self.idle.as_millis()));
            self.finish()
        } else {
            let n = self.buf.len();
            self.reset();
            Some(Framed::Discarded {
                reason: format!(
                    "partial input: {n} bytes with no terminator within {} ms",
                    self.idle.as_millis()
                ),
            })
        }
    }

    /// Drops whatever partial frame is buffered, reporting it if there was one.
    pub fn discard_partial(&mut self, why: &str) -> Option<Framed> {
        if !self.in_frame() {
            return None;
        }
        let n = self.buf.len();
        self.reset();
        Some(Framed::Discarded {
            reason: format!("{why} ({n} bytes)"),
        })
    }

    /// Feeds one read's worth of bytes received at `now`.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Vec<Framed> {
        let mut out = Vec::new();
        if data.is_empty() {
            return out;
        }
        // A frame left over from before a silence is settled first, whether or not the
        // timer fired: the outcome must not depend on task scheduling.
        if let Some(f) = self.on_idle(now) {
            out.push(f);
        }
        let mut counted = false;
        for &b in data {
            if !counted && b != b'\r' && b != b'\n' {
                if self.first_at.is_none() {
                    self.first_at = Some(now);
                }
                let at = self
                    .first_at
                    .map_or(0, |t| now.saturating_duration_since(t).as_millis());
                self.steps
                    .push(format!("read {} bytes at +{at} ms", data.len()));
                counted = true;
            }
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.steps.push("suffix CRLF".into());
                    out.extend(self.finish());
                    continue;
                }
                let n = self.buf.len();
                self.reset();
                out.push(Framed::Discarded {
                    reason: format!("CR not followed by LF after {n} bytes (suffix is CRLF)"),
                });
            }
            match (b, self.suffix) {
                (b'\r', Suffix::Crlf) => self.pending_cr = true,
                (b'\r', Suffix::Cr | Suffix::None) | (b'\n', Suffix::Lf | Suffix::None) => {
                    if self.in_frame() {
                        self.steps
                            .push(if b == b'\r' { "suffix CR" } else { "suffix LF" }.to_string());
                        out.extend(self.finish());
                    }
                }
                // The other half of a CRLF sent to a CR- or LF-configured reader, or a blank
                // line: nothing to do.
                (b'\n', Suffix::Cr) | (b'\r', Suffix::Lf) | (b'\n', Suffix::Crlf)
                    if self.buf.is_empty() => {}
                (b'\r', Suffix::Lf) if self.buf.len() < self.max_len => {
                    // Tolerate CRLF on an LF-configured scanner: keep the CR only to strip it.
                    self.buf.push(b);
                }
                _ => {
                    if self.buf.len() < self.max_len + self.prefix.len() + 3 {
                        self.buf.push(b);
                    } else {
                        self.overflow = true;
                    }
                }
            }
            self.last_at = Some(now);
        }
        if !data.is_empty() {
            self.last_at = Some(now);
        }
        out
    }

    fn reset(&mut self) {
        self.buf.iter_mut().for_each(|b| *b = 0);
        self.buf.clear();
        self.overflow = false;
        self.pending_cr = false;
        self.first_at = None;
        self.steps.clear();
    }

    /// A terminator arrived: validate and emit (or discard) the frame.
    fn finish(&mut self) -> Option<Framed> {
        let mut data = std::mem::take(&mut self.buf);
        let overflow = self.overflow;
        let took_ms = match (self.first_at, self.last_at) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_millis() as u64,
            _ => 0,
        };
        let mut steps = std::mem::take(&mut self.steps);
        self.reset();
        if self.suffix == Suffix::Lf && data.last() == Some(&b'\r') {
            data.pop();
        }
        let result = self.validate(&data, overflow, &mut steps);
        data.iter_mut().for_each(|b| *b = 0);
        match result {
            Ok(Some(code)) => Some(Framed::Code {
                trace: ScanTrace {
                    steps: {
                        let mut s = steps;
                        s.push(format!("code {}", mask(code.expose())));
                        s
                    },
                    took_ms,
                },
                code,
            }),
            Ok(None) => None,
            Err(reason) => Some(Framed::Discarded { reason }),
        }
    }

    fn validate(
        &self,
        data: &[u8],
        overflow: bool,
        steps: &mut Vec<String>,
    ) -> Result<Option<Secret>, String> {
        if data.is_empty() && !overflow {
            return Ok(None);
        }
        if overflow {
            return Err(format!("longer than max_len {} bytes", self.max_len));
        }
        let mut body = data;
        if !self.prefix.is_empty() {
            match body.strip_prefix(self.prefix.as_slice()) {
                Some(rest) => {
                    body = rest;
                    steps.push(format!("prefix ({} bytes) stripped", self.prefix.len()));
                }
                None => {
                    return Err(format!(
                        "{} bytes without the configured prefix",
                        data.len()
                    ));
                }
            }
        }
        if self.strip_aim && body.len() >= 3 && body[0] == b']' {
            steps.push(format!(
                "AIM id ]{}{} stripped",
                char::from(body[1]),
                char::from(body[2])
            ));
            body = &body[3..];
        }
        if body.is_empty() {
            return Ok(None);
        }
        if let Some(pos) = body.iter().position(|b| !(0x20..=0x7e).contains(b)) {
            return Err(format!(
                "garbage: byte 0x{:02x} at offset {pos} of {} is not printable ASCII",
                body[pos],
                body.len()
            ));
        }
        if body.len() > self.max_len {
            return Err(format!(
                "{} bytes is longer than max_len {}",
                body.len(),
                self.max_len
            ));
        }
        // Checked printable ASCII above, so this is valid UTF-8.
        Ok(Some(Secret::new(
            String::from_utf8_lossy(body).into_owned(),
        )))
    }
}

/// Opens and configures a real serial port (exclusive, raw, the profile's line settings) and
/// hands its descriptor to tokio.
pub fn open_port(
    path: &str,
    baud: u32,
    data_bits: u8,
    parity: Parity,
    stop_bits: u8,
    flow: FlowControl,
) -> Result<FdStream, DeviceError> {
    let serr = |message: String| DeviceError::Serial {
        path: path.to_owned(),
        message,
    };
    let data_bits = match data_bits {
        5 => serialport::DataBits::Five,
        6 => serialport::DataBits::Six,
        7 => serialport::DataBits::Seven,
        8 => serialport::DataBits::Eight,
        n => return Err(serr(format!("{n} data bits is impossible"))),
    };
    let stop_bits = match stop_bits {
        1 => serialport::StopBits::One,
        2 => serialport::StopBits::Two,
        n => return Err(serr(format!("{n} stop bits is impossible"))),
    };
    let parity = match parity {
        Parity::None => serialport::Parity::None,
        Parity::Odd => serialport::Parity::Odd,
        Parity::Even => serialport::Parity::Even,
    };
    let flow = match flow {
        FlowControl::None => serialport::FlowControl::None,
        FlowControl::Hardware => serialport::FlowControl::Hardware,
        FlowControl::Software => serialport::FlowControl::Software,
    };
    let port = serialport::new(path, baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow)
        .open_native()
        .map_err(|e| serr(e.to_string()))?;
    // SAFETY: into_raw_fd gives up ownership of a valid descriptor, which we take over.
    let fd = unsafe { OwnedFd::from_raw_fd(port.into_raw_fd()) };
    FdStream::new(fd).map_err(|source| DeviceError::Io {
        path: path.to_owned(),
        source,
    })
}

/// How one connection to a scanner ended.
#[derive(Debug)]
pub enum ReadEnd {
    /// The device went away (unplug, hangup) or read failed.
    Gone(String),
    /// The event receiver was dropped: stop for good.
    Closed,
}

/// Reads one connection: feeds the framer, arms the idle timer, sends events. Generic over the
/// reader so a pty, a real port and an in-memory stream run the same loop.
pub async fn read_scanner<R: AsyncRead + Unpin>(
    mut reader: R,
    framer: &mut SerialFramer,
    source: &SourceId,
    events: &mpsc::Sender<DeviceEvent>,
) -> ReadEnd {
    let mut buf = [0u8; 256];
    loop {
        let deadline = framer.deadline();
        let read = async {
            match deadline {
                Some(d) => {
                    tokio::select! {
                        r = reader.read(&mut buf) => Some(r),
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(d)) => None,
                    }
                }
                None => Some(reader.read(&mut buf).await),
            }
        };
        let (outcomes, end) = match read.await {
            None => (framer.on_idle(Instant::now()).into_iter().collect(), None),
            Some(Ok(0)) => (Vec::new(), Some("end of file".to_string())),
            Some(Ok(n)) => (framer.feed(&buf[..n], Instant::now()), None),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Some(Err(e)) if is_gone(&e) => (Vec::new(), Some(format!("device gone: {e}"))),
            Some(Err(e)) => (Vec::new(), Some(format!("read error: {e}"))),
        };
        buf.iter_mut().for_each(|b| *b = 0);
        for f in outcomes {
            if send_framed(f, source, events).await.is_err() {
                return ReadEnd::Closed;
            }
        }
        if let Some(reason) = end {
            // Bytes cut off by the unplug are never half a code, whatever the suffix mode.
            if let Some(f) = framer.discard_partial("partial input cut off by unplug")
                && send_framed(f, source, events).await.is_err()
            {
                return ReadEnd::Closed;
            }
            return ReadEnd::Gone(reason);
        }
    }
}

async fn send_framed(
    f: Framed,
    source: &SourceId,
    events: &mpsc::Sender<DeviceEvent>,
) -> Result<(), DeviceError> {
    let ev = match f {
        Framed::Code { code, trace } => {
            tracing::info!(scanner = %source, code = %code, took_ms = trace.took_ms, "scanned");
            DeviceEvent::Scanned {
                source: source.clone(),
                code,
                trace,
            }
        }
        Framed::Discarded { reason } => {
            tracing::warn!(scanner = %source, %reason, "serial input discarded");
            DeviceEvent::ScanDiscarded {
                source: source.clone(),
                reason,
            }
        }
    };
    events.send(ev).await.map_err(|_| DeviceError::Closed)
}

/// Runs a serial scanner for the daemon's lifetime: open, read, and after an unplug (USB-CDC) or
/// hangup keep trying to reopen the same path every `reopen_ms`, without restarting anything.
/// Returns only when the event receiver is dropped.
pub async fn run_serial_scanner(cfg: SerialScannerConfig, events: mpsc::Sender<DeviceEvent>) {
    let source = SourceId::new(&cfg.name);
    let mut framer = SerialFramer::new(&cfg);
    let mut last_error: Option<String> = None;
    loop {
        match open_port(
            &cfg.path,
            cfg.baud,
            cfg.data_bits,
            cfg.parity,
            cfg.stop_bits,
            cfg.flow,
        ) {
            Ok(port) => {
                last_error = None;
                tracing::info!(scanner = %source, path = %cfg.path, "serial scanner opened");
                let added = DeviceEvent::DeviceAdded {
                    source: source.clone(),
                    kind: DeviceKind::SerialScanner,
                    detail: format!("{} at {} baud", cfg.path, cfg.baud),
                };
                if events.send(added).await.is_err() {
                    return;
                }
                match read_scanner(port, &mut framer, &source, &events).await {
                    ReadEnd::Closed => return,
                    ReadEnd::Gone(reason) => {
                        tracing::warn!(scanner = %source, %reason, "serial scanner lost; will reopen");
                        let removed = DeviceEvent::DeviceRemoved {
                            source: source.clone(),
                            kind: DeviceKind::SerialScanner,
                            reason,
                        };
                        if events.send(removed).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                // Log the first failure and changes only: a scanner left unplugged overnight
                // must not fill the journal with one line a second.
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(scanner = %source, error = %msg, "cannot open serial scanner; retrying");
                    last_error = Some(msg);
                }
            }
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(cfg.reopen_ms.max(10))).await;
    }
}

/// A simulated serial scanner (`path = "sim"`): a pty whose device end this handle writes codes
/// into, and whose host end is read by the ordinary [`run_serial_scanner`].
pub struct SimScanner {
    master: tokio::sync::Mutex<FdStream>,
    prefix: Vec<u8>,
    suffix: Suffix,
    pub slave_path: PathBuf,
    _slave_keepalive: OwnedFd,
}

impl SimScanner {
    /// Types a code as the configured scanner would send it.
    pub async fn scan(&self, code: &str) -> std::io::Result<()> {
        let mut frame = self.prefix.clone();
        frame.extend_from_slice(code.as_bytes());
        frame.extend_from_slice(match self.suffix {
            Suffix::Cr => b"\r",
            Suffix::Lf => b"\n",
            Suffix::Crlf => b"\r\n",
            Suffix::None => b"",
        });
        self.master.lock().await.write_all(&frame).await
    }
}

/// Starts a simulated scanner and the real serial reader on its pty. The returned handle types
/// codes; the task runs until `events` is closed.
pub fn start_sim_scanner(
    cfg: &SerialScannerConfig,
    events: mpsc::Sender<DeviceEvent>,
) -> std::io::Result<(SimScanner, tokio::task::JoinHandle<()>)> {
    let (master, slave_path, keepalive) = super::pty::open_pty()?.into_parts();
    let mut run_cfg = cfg.clone();
    run_cfg.path = slave_path.to_string_lossy().into_owned();
    let task = tokio::spawn(run_serial_scanner(run_cfg, events));
    Ok((
        SimScanner {
            master: tokio::sync::Mutex::new(master),
            prefix: cfg.prefix.as_bytes().to_vec(),
            suffix: cfg.suffix,
            slave_path,
            _slave_keepalive: keepalive,
        },
        task,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::pty::open_pty;

    fn cfg(suffix: Suffix) -> SerialScannerConfig {
        SerialScannerConfig {
            name: "counter".into(),
            path: String::new(),
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow: FlowControl::None,
            prefix: String::new(),
            suffix,
            idle_ms: 80,
            max_len: 64,
            strip_aim: false,
            reopen_ms: 50,
        }
    }

    fn codes(out: &[Framed]) -> Vec<String> {
        out.iter()
            .map(|f| match f {
                Framed::Code { code, .. } => code.expose().to_owned(),
                Framed::Discarded { reason } => format!("DISCARDED: {reason}"),
            })
            .collect()
    }

    fn feed_all(f: &mut SerialFramer, chunks: &[&[u8]]) -> Vec<String> {
        let t = Instant::now();
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            out.extend(f.feed(c, t + Duration::from_millis(i as u64)));
        }
        codes(&out)
    }

    #[test]
    fn each_suffix_mode_frames_codes() {
        let mut f = SerialFramer::new(&cfg(Suffix::Cr));
        assert_eq!(
            feed_all(&mut f, &[b"123456\r654321\r"]),
            ["123456", "654321"]
        );
        // CRLF sent to a CR reader: the LF is a blank, not garbage.
        assert_eq!(feed_all(&mut f, &[b"111\r\n222\r\n"]), ["111", "222"]);

        let mut f = SerialFramer::new(&cfg(Suffix::Lf));
        assert_eq!(
            feed_all(&mut f, &[b"123456\n\n654321\r\n"]),
            ["123456", "654321"]
        );

        let mut f = SerialFramer::new(&cfg(Suffix::Crlf));
        assert_eq!(
            feed_all(&mut f, &[b"123456\r\n654321\r\n"]),
            ["123456", "654321"]
        );
        let out = feed_all(&mut f, &[b"12\r34\r\n"]);
        assert!(out[0].contains("CR not followed by LF"), "{out:?}");
        assert_eq!(out[1], "34");
    }

    #[test]
    fn no_suffix_ends_on_idle() {
        let mut f = SerialFramer::new(&cfg(Suffix::None));
        let t = Instant::now();
        assert!(f.feed(b"1234", t).is_empty());
        assert!(f.feed(b"5678", t + Duration::from_millis(5)).is_empty());
        assert_eq!(f.deadline(), Some(t + Duration::from_millis(85)));
        assert!(f.on_idle(t + Duration::from_millis(50)).is_none());
        let out = f
            .on_idle(t + Duration::from_millis(85))
            .into_iter()
            .collect::<Vec<_>>();
        assert_eq!(codes(&out), ["12345678"]);
        // A new code after a silence that no timer noticed still ends the old one first.
        f.feed(b"99", t + Duration::from_secs(1));
        let out = f.feed(b"77", t + Duration::from_secs(2));
        assert_eq!(codes(&out), ["99"]);
    }

    #[test]
    fn split_read_joins_and_partial_is_discarded_on_idle() {
        let mut f = SerialFramer::new(&cfg(Suffix::Crlf));
        assert_eq!(
            feed_all(&mut f, &[b"1345", b"678901234", b"56789\r", b"\n"]),
            ["134567890123456789"]
        );
        let t = Instant::now();
        assert!(f.feed(b"12345", t).is_empty());
        let out: Vec<_> = f
            .on_idle(t + Duration::from_millis(80))
            .into_iter()
            .collect();
        assert!(codes(&out)[0].contains("partial input: 5 bytes"), "{out:?}");
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn garbage_and_overlong_are_discarded_without_showing_bytes() {
        let mut f = SerialFramer::new(&cfg(Suffix::Cr));
        let out = feed_all(&mut f, &[b"12\x0034\r", b"\xff\xfe\r", b"OK\r"]);
        assert!(out[0].contains("garbage: byte 0x00 at offset 2"), "{out:?}");
        assert!(out[1].contains("garbage"), "{out:?}");
        assert_eq!(out[2], "OK");
        assert!(!out[0].contains("1234"));
        let long = vec![b'7'; 200];
        let out = feed_all(&mut f, &[&long, b"\r", b"8\r"]);
        assert!(out[0].contains("max_len"), "{out:?}");
        assert_eq!(out[1], "8");
    }

    #[test]
    fn prefix_and_aim_id_are_stripped_and_required() {
        let mut c = cfg(Suffix::Crlf);
        c.prefix = "\u{2}".into();
        c.strip_aim = true;
        let mut f = SerialFramer::new(&c);
        let out = feed_all(&mut f, &[b"\x02]C1134567890123456789\r\n", b"NOPREFIX\r\n"]);
        assert_eq!(out[0], "134567890123456789");
        assert!(out[1].contains("without the configured prefix"), "{out:?}");
    }

    async fn next(rx: &mut mpsc::Receiver<DeviceEvent>) -> DeviceEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .expect("channel open")
    }

    async fn next_code(rx: &mut mpsc::Receiver<DeviceEvent>) -> String {
        match next(rx).await {
            DeviceEvent::Scanned { code, .. } => code.expose().to_owned(),
            other => panic!("expected a code, got {other:?}"),
        }
    }

    /// A stable name for a changing pty, as udev's SYMLINK+="scanner0" gives a USB-CDC scanner.
    fn link_to(dir: &std::path::Path, target: &std::path::Path) -> std::path::PathBuf {
        let link = dir.join("scanner0");
        let tmp = dir.join("scanner0.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        link
    }

    async fn pty_run(suffix: Suffix, writes: &[&[u8]]) -> Vec<DeviceEvent> {
        let (mut master, slave, _keep) = open_pty().unwrap().into_parts();
        let mut c = cfg(suffix);
        // Generous: writes 15 ms apart must never look idle on a loaded CI machine.
        c.idle_ms = 300;
        c.path = slave.to_string_lossy().into_owned();
        let (tx, mut rx) = mpsc::channel(32);
        let task = tokio::spawn(run_serial_scanner(c, tx));
        assert!(matches!(
            next(&mut rx).await,
            DeviceEvent::DeviceAdded { .. }
        ));
        for w in writes {
            master.write_all(w).await.unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        task.abort();
        let mut v = Vec::new();
        while let Ok(e) = rx.try_recv() {
            v.push(e);
        }
        v
    }

    fn summary(evs: &[DeviceEvent]) -> Vec<String> {
        evs.iter()
            .map(|e| match e {
                DeviceEvent::Scanned { code, .. } => code.expose().to_owned(),
                DeviceEvent::ScanDiscarded { reason, .. } => format!("DISCARDED: {reason}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn pty_each_suffix_mode() {
        let cases: [(Suffix, &[&[u8]]); 4] = [
            (Suffix::Cr, &[b"134567890123456789\r"]),
            (Suffix::Lf, &[b"134567890123456789\n"]),
            (Suffix::Crlf, &[b"134567890123456789\r\n"]),
            (Suffix::None, &[b"134567890123456789"]),
        ];
        for (suffix, writes) in cases {
            let evs = pty_run(suffix, writes).await;
            assert_eq!(summary(&evs), ["134567890123456789"], "{suffix:?}");
        }
    }

    #[tokio::test]
    async fn pty_split_read_garbage_and_partial() {
        let evs = pty_run(
            Suffix::Crlf,
            &[
                b"2812345",
                b"67890123456",
                b"\r",
                b"\n",
                b"\x1b[A\r\n",
                b"99",
            ],
        )
        .await;
        let s = summary(&evs);
        assert_eq!(s[0], "281234567890123456");
        assert!(s[1].contains("garbage: byte 0x1b"), "{s:?}");
        assert!(s[2].contains("partial input: 2 bytes"), "{s:?}");
        assert_eq!(s.len(), 3);
    }

    #[tokio::test]
    async fn pty_unplug_and_replug_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut master, slave, keep) = open_pty().unwrap().into_parts();
        let link = link_to(dir.path(), &slave);
        let mut c = cfg(Suffix::Cr);
        c.path = link.to_string_lossy().into_owned();
        let (tx, mut rx) = mpsc::channel(32);
        let task = tokio::spawn(run_serial_scanner(c, tx));
        assert!(matches!(
            next(&mut rx).await,
            DeviceEvent::DeviceAdded { .. }
        ));
        master.write_all(b"1111222233334444\r").await.unwrap();
        assert_eq!(next_code(&mut rx).await, "1111222233334444");

        // Unplug in the middle of a code: the half code is dropped, the device removed.
        master.write_all(b"5555").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(master);
        drop(keep);
        let ev = next(&mut rx).await;
        assert!(
            matches!(&ev, DeviceEvent::ScanDiscarded { reason, .. } if reason.contains("unplug")),
            "{ev:?}"
        );
        let ev = next(&mut rx).await;
        assert!(matches!(&ev, DeviceEvent::DeviceRemoved { .. }), "{ev:?}");

        // Nothing there for a while (reopen fails quietly), then the scanner comes back as a
        // new tty behind the same stable name.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (mut master2, slave2, _keep2) = open_pty().unwrap().into_parts();
        link_to(dir.path(), &slave2);
        let ev = next(&mut rx).await;
        assert!(matches!(&ev, DeviceEvent::DeviceAdded { .. }), "{ev:?}");
        master2.write_all(b"9999888877776666\r").await.unwrap();
        assert_eq!(next_code(&mut rx).await, "9999888877776666");
        task.abort();
    }

    #[tokio::test]
    async fn sim_scanner_types_through_the_real_reader() {
        let mut c = cfg(Suffix::Crlf);
        c.path = "sim".into();
        let (tx, mut rx) = mpsc::channel(8);
        let (sim, task) = start_sim_scanner(&c, tx).unwrap();
        assert!(matches!(
            next(&mut rx).await,
            DeviceEvent::DeviceAdded { .. }
        ));
        sim.scan("134567890123456789").await.unwrap();
        assert_eq!(next_code(&mut rx).await, "134567890123456789");
        task.abort();
    }
}
