//! evdev input: `input_event` records from any reader, keyboard-wedge scanner decoding (US
//! layout, Shift, keypad digits, both Enter keys, Alt+keypad codes, autorepeat ignored) and the
//! amount keypad.
//!
//! The record parser and the decoders are pure; [`read_input`] is the one loop that runs them
//! over a reader, so a recorded event stream (a file, a pipe, bytes in memory) goes through the
//! same code as `/dev/input/eventN`. Opening and grabbing real nodes is here too (plain ioctls,
//! no libudev). Device discovery is `hotplug`'s job; deciding what a code means is the core's.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::tty::{FdStream, is_gone};
use super::{DeviceEvent, ScanTrace, Secret, SourceId};

/// Size of the kernel's `struct input_event`: a `timeval` of two `__kernel_ulong_t` (8 bytes each
/// on 64-bit, 4 on armv7) plus type u16, code u16, value i32. So 24 bytes on aarch64/x86_64 and
/// 16 on armv7; a recording must come from the same word size as the reader.
pub const EVENT_SIZE: usize = 2 * std::mem::size_of::<libc::c_ulong>() + 8;

pub const EV_SYN: u16 = 0;
pub const EV_KEY: u16 = 1;
pub const SYN_DROPPED: u16 = 3;

/// One `input_event` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputEvent {
    /// Kernel timestamp in microseconds.
    pub time_us: u64,
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

impl InputEvent {
    pub fn key(time_us: u64, code: u16, value: i32) -> InputEvent {
        InputEvent {
            time_us,
            kind: EV_KEY,
            code,
            value,
        }
    }

    /// Native-layout bytes, as the kernel writes them (used to make recordings in tests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(EVENT_SIZE);
        push_word(&mut v, self.time_us / 1_000_000);
        push_word(&mut v, self.time_us % 1_000_000);
        v.extend_from_slice(&self.kind.to_ne_bytes());
        v.extend_from_slice(&self.code.to_ne_bytes());
        v.extend_from_slice(&self.value.to_ne_bytes());
        v
    }

    /// Parses one native-layout record; `None` if `b` is not exactly [`EVENT_SIZE`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<InputEvent> {
        if b.len() != EVENT_SIZE {
            return None;
        }
        let w = std::mem::size_of::<libc::c_ulong>();
        let word = |s: &[u8]| -> u64 {
            if w == 8 {
                u64::from_ne_bytes(s.try_into().unwrap_or([0; 8]))
            } else {
                u64::from(u32::from_ne_bytes(s.try_into().unwrap_or([0; 4])))
            }
        };
        let sec = word(&b[..w]);
        let usec = word(&b[w..2 * w]);
        let t = 2 * w;
        Some(InputEvent {
            time_us: sec.saturating_mul(1_000_000).saturating_add(usec),
            kind: u16::from_ne_bytes([b[t], b[t + 1]]),
            code: u16::from_ne_bytes([b[t + 2], b[t + 3]]),
            value: i32::from_ne_bytes([b[t + 4], b[t + 5], b[t + 6], b[t + 7]]),
        })
    }
}

/// Appends a `__kernel_ulong_t` in native layout.
fn push_word(v: &mut Vec<u8>, n: u64) {
    if std::mem::size_of::<libc::c_ulong>() == 8 {
        v.extend_from_slice(&n.to_ne_bytes());
    } else {
        v.extend_from_slice(&(n as u32).to_ne_bytes());
    }
}

/// Splits a byte stream into records, however the reads happened to cut it.
#[derive(Default, Debug)]
pub struct RecordSplitter {
    partial: Vec<u8>,
}

impl RecordSplitter {
    pub fn push(&mut self, data: &[u8], out: &mut Vec<InputEvent>) {
        self.partial.extend_from_slice(data);
        let whole = self.partial.len() / EVENT_SIZE * EVENT_SIZE;
        for rec in self.partial[..whole].chunks_exact(EVENT_SIZE) {
            if let Some(ev) = InputEvent::from_bytes(rec) {
                out.push(ev);
            }
        }
        self.partial.drain(..whole);
    }
}

// Linux key codes (include/uapi/linux/input-event-codes.h) used by the decoders.
pub mod keys {
    pub const KEY_ESC: u16 = 1;
    pub const KEY_1: u16 = 2;
    pub const KEY_0: u16 = 11;
    pub const KEY_MINUS: u16 = 12;
    pub const KEY_EQUAL: u16 = 13;
    pub const KEY_BACKSPACE: u16 = 14;
    pub const KEY_TAB: u16 = 15;
    pub const KEY_Q: u16 = 16;
    pub const KEY_LEFTBRACE: u16 = 26;
    pub const KEY_RIGHTBRACE: u16 = 27;
    pub const KEY_ENTER: u16 = 28;
    pub const KEY_A: u16 = 30;
    pub const KEY_SEMICOLON: u16 = 39;
    pub const KEY_APOSTROPHE: u16 = 40;
    pub const KEY_GRAVE: u16 = 41;
    pub const KEY_LEFTSHIFT: u16 = 42;
    pub const KEY_BACKSLASH: u16 = 43;
    pub const KEY_Z: u16 = 44;
    pub const KEY_COMMA: u16 = 51;
    pub const KEY_DOT: u16 = 52;
    pub const KEY_SLASH: u16 = 53;
    pub const KEY_RIGHTSHIFT: u16 = 54;
    pub const KEY_KPASTERISK: u16 = 55;
    pub const KEY_LEFTALT: u16 = 56;
    pub const KEY_SPACE: u16 = 57;
    pub const KEY_KP7: u16 = 71;
    pub const KEY_KP8: u16 = 72;
    pub const KEY_KP9: u16 = 73;
    pub const KEY_KPMINUS: u16 = 74;
    pub const KEY_KP4: u16 = 75;
    pub const KEY_KP5: u16 = 76;
    pub const KEY_KP6: u16 = 77;
    pub const KEY_KPPLUS: u16 = 78;
    pub const KEY_KP1: u16 = 79;
    pub const KEY_KP2: u16 = 80;
    pub const KEY_KP3: u16 = 81;
    pub const KEY_KP0: u16 = 82;
    pub const KEY_KPDOT: u16 = 83;
    pub const KEY_KPENTER: u16 = 96;
    pub const KEY_KPSLASH: u16 = 98;
    pub const KEY_RIGHTALT: u16 = 100;
    pub const KEY_DELETE: u16 = 111;
    pub const KEY_F1: u16 = 59;
    pub const KEY_F4: u16 = 62;
}
use keys::*;

const ROW_QWERTY: &[u8] = b"qwertyuiop";
const ROW_ASDF: &[u8] = b"asdfghjkl";
const ROW_ZXCV: &[u8] = b"zxcvbnm";

/// The digit of a keypad key, whatever NumLock says (a scanner's keypad digits are digits).
fn kp_digit(code: u16) -> Option<u8> {
    Some(match code {
        KEY_KP0 => 0,
        KEY_KP1 => 1,
        KEY_KP2 => 2,
        KEY_KP3 => 3,
        KEY_KP4 => 4,
        KEY_KP5 => 5,
        KEY_KP6 => 6,
        KEY_KP7 => 7,
        KEY_KP8 => 8,
        KEY_KP9 => 9,
        _ => return None,
    })
}

/// US-layout character for a key, with or without Shift.
pub fn us_char(code: u16, shift: bool) -> Option<char> {
    let pick = |plain: char, shifted: char| Some(if shift { shifted } else { plain });
    if (KEY_1..=KEY_0).contains(&code) {
        let i = usize::from(code - KEY_1);
        return pick(b"1234567890"[i] as char, b"!@#$%^&*()"[i] as char);
    }
    let letter = |row: &[u8], start: u16| {
        let c = row[usize::from(code - start)] as char;
        Some(if shift { c.to_ascii_uppercase() } else { c })
    };
    match code {
        16..=25 => letter(ROW_QWERTY, 16),
        30..=38 => letter(ROW_ASDF, 30),
        44..=50 => letter(ROW_ZXCV, 44),
        KEY_MINUS => pick('-', '_'),
        KEY_EQUAL => pick('=', '+'),
        KEY_LEFTBRACE => pick('[', '{'),
        KEY_RIGHTBRACE => pick(']', '}'),
        KEY_SEMICOLON => pick(';', ':'),
        KEY_APOSTROPHE => pick('\'', '"'),
        KEY_GRAVE => pick('`', '~'),
        KEY_BACKSLASH => pick('\\', '|'),
        KEY_COMMA => pick(',', '<'),
        KEY_DOT => pick('.', '>'),
        KEY_SLASH => pick('/', '?'),
        KEY_SPACE => Some(' '),
        KEY_KPASTERISK => Some('*'),
        KEY_KPMINUS => Some('-'),
        KEY_KPPLUS => Some('+'),
        KEY_KPDOT => Some('.'),
        KEY_KPSLASH => Some('/'),
        c => kp_digit(c).map(|d| char::from(b'0' + d)),
    }
}

/// A short name for a key code, for traces.
pub fn key_name(code: u16) -> String {
    match code {
        KEY_ENTER => "KEY_ENTER".into(),
        KEY_KPENTER => "KEY_KPENTER".into(),
        KEY_LEFTSHIFT => "KEY_LEFTSHIFT".into(),
        KEY_RIGHTSHIFT => "KEY_RIGHTSHIFT".into(),
        KEY_LEFTALT => "KEY_LEFTALT".into(),
        KEY_RIGHTALT => "KEY_RIGHTALT".into(),
        KEY_TAB => "KEY_TAB".into(),
        c => match (kp_digit(c), us_char(c, false)) {
            (Some(d), _) => format!("KEY_KP{d}"),
            (None, Some(ch)) if ch.is_ascii_alphanumeric() => {
                format!("KEY_{}", ch.to_ascii_uppercase())
            }
            _ => format!("key {c}"),
        },
    }
}

/// Settings of one wedge decoder.
#[derive(Clone, Debug)]
pub struct WedgeConfig {
    /// A gap longer than this between keys discards the half code (scanners type every 1–10 ms).
    pub inter_key: Duration,
    pub max_len: usize,
}

/// What the wedge decoder makes of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WedgeOutput {
    Code { code: Secret, trace: ScanTrace },
    Discarded { reason: String },
}

#[derive(Clone, Debug)]
enum Step {
    Char { code: u16, shift: bool },
    Note(String),
}

/// Keyboard-wedge decoder for one device. Pure: events in (with their kernel timestamps), codes
/// out. Keep one per device, never shared: Shift and the half-typed code are per device.
#[derive(Debug)]
pub struct WedgeDecoder {
    cfg: WedgeConfig,
    left_shift: bool,
    right_shift: bool,
    alt: bool,
    alt_code: Option<u32>,
    buf: String,
    overflow: bool,
    first_us: Option<u64>,
    last_us: Option<u64>,
    steps: Vec<Step>,
    repeats: u32,
}

impl WedgeDecoder {
    pub fn new(cfg: WedgeConfig) -> WedgeDecoder {
        WedgeDecoder {
            cfg,
            left_shift: false,
            right_shift: false,
            alt: false,
            alt_code: None,
            buf: String::new(),
            overflow: false,
            first_us: None,
            last_us: None,
            steps: Vec::new(),
            repeats: 0,
        }
    }

    fn shift(&self) -> bool {
        self.left_shift || self.right_shift
    }

    fn in_code(&self) -> bool {
        !self.buf.is_empty() || self.overflow || self.alt_code.is_some()
    }

    /// Drops a half-typed code (inter-key timeout, device gone), saying why.
    pub fn discard(&mut self, why: &str) -> Option<WedgeOutput> {
        if !self.in_code() {
            return None;
        }
        let n = self.buf.chars().count();
        self.clear();
        Some(WedgeOutput::Discarded {
            reason: format!("{why} after {n} characters"),
        })
    }

    fn clear(&mut self) {
        // Overwrite before clearing so the half code does not stay in the String's buffer.
        let len = self.buf.len();
        self.buf.clear();
        self.buf.extend(std::iter::repeat_n('\0', len));
        self.buf.clear();
        self.overflow = false;
        self.alt_code = None;
        self.first_us = None;
        self.steps.clear();
        self.repeats = 0;
    }

    fn push_char(&mut self, c: char, code: u16, shift: bool) {
        if self.buf.len() >= self.cfg.max_len {
            self.overflow = true;
            return;
        }
        self.buf.push(c);
        self.steps.push(Step::Char { code, shift });
    }

    /// Feeds one event; returns what it completed or discarded, if anything.
    pub fn feed(&mut self, ev: InputEvent) -> Option<WedgeOutput> {
        if ev.kind == EV_SYN && ev.code == SYN_DROPPED {
            // The kernel's buffer overflowed: keys were lost, so the code is corrupt and the
            // modifier state unknown.
            self.left_shift = false;
            self.right_shift = false;
            self.alt = false;
            return self.discard("evdev buffer overflow (SYN_DROPPED)");
        }
        if ev.kind != EV_KEY {
            return None;
        }
        let mut stale = None;
        if ev.value == 1
            && self.in_code()
            && let Some(last) = self.last_us
            && ev.time_us.saturating_sub(last) > self.cfg.inter_key.as_micros() as u64
        {
            stale = self.discard("inter-key timeout");
        }
        let out = self.key(ev);
        if ev.value != 0 {
            self.last_us = Some(ev.time_us);
        }
        // Either may be set, not both: a stale discard happens before a key that starts a code.
        out.or(stale)
    }

    fn key(&mut self, ev: InputEvent) -> Option<WedgeOutput> {
        match (ev.code, ev.value) {
            (KEY_LEFTSHIFT, v) => {
                self.left_shift = v != 0;
                if v == 1 && self.in_code() {
                    self.steps.push(Step::Note("KEY_LEFTSHIFT down".into()));
                }
                None
            }
            (KEY_RIGHTSHIFT, v) => {
                self.right_shift = v != 0;
                if v == 1 && self.in_code() {
                    self.steps.push(Step::Note("KEY_RIGHTSHIFT down".into()));
                }
                None
            }
            (KEY_LEFTALT | KEY_RIGHTALT, 1) => {
                self.alt = true;
                None
            }
            (KEY_LEFTALT | KEY_RIGHTALT, 0) => {
                self.alt = false;
                // Alt released: an Alt+keypad sequence yields the character with that code.
                match self.alt_code.take() {
                    Some(n) if (0x20..0x7f).contains(&n) => {
                        self.push_char(char::from(n as u8), KEY_LEFTALT, false);
                        None
                    }
                    Some(n) => {
                        let n_chars = self.buf.chars().count();
                        self.clear();
                        Some(WedgeOutput::Discarded {
                            reason: format!(
                                "Alt+keypad code {n} is not printable ASCII (after {n_chars} characters)"
                            ),
                        })
                    }
                    None => None,
                }
            }
            (_, 2) => {
                if self.in_code() {
                    self.repeats += 1;
                }
                None
            }
            (_, 0) => None,
            (KEY_ENTER | KEY_KPENTER, 1) => {
                if self.alt {
                    return None;
                }
                self.finish(ev)
            }
            (code, 1) => {
                if self.alt
                    && let Some(d) = kp_digit(code)
                {
                    if self.first_us.is_none() {
                        self.first_us = Some(ev.time_us);
                    }
                    let n = self.alt_code.unwrap_or(0);
                    self.alt_code = Some((n * 10 + u32::from(d)).min(100_000));
                    return None;
                }
                match us_char(code, self.shift()) {
                    Some(c) => {
                        if self.first_us.is_none() {
                            self.first_us = Some(ev.time_us);
                        }
                        let shift = self.shift();
                        self.push_char(c, code, shift);
                        None
                    }
                    None => {
                        if self.in_code() {
                            self.steps
                                .push(Step::Note(format!("{} ignored", key_name(code))));
                        }
                        None
                    }
                }
            }
            _ => None,
        }
    }

    fn finish(&mut self, ev: InputEvent) -> Option<WedgeOutput> {
        if !self.in_code() {
            return None;
        }
        if self.overflow {
            let n = self.buf.chars().count();
            self.clear();
            return Some(WedgeOutput::Discarded {
                reason: format!("longer than max_len {} ({n} kept)", self.cfg.max_len),
            });
        }
        let len = self.buf.chars().count();
        let mut trace = ScanTrace {
            steps: Vec::new(),
            took_ms: self
                .first_us
                .map_or(0, |f| ev.time_us.saturating_sub(f) / 1000),
        };
        let mut pos = 0usize;
        for step in &self.steps {
            match step {
                Step::Char { code, shift } => {
                    // Show keys only where the masked code shows characters.
                    let visible = len > 8 && (pos < 4 || pos >= len - 4);
                    let sh = if *shift { "Shift+" } else { "" };
                    if visible {
                        trace.push(format!("{sh}{} down", key_name(*code)));
                    } else {
                        trace.push(format!("{sh}KEY_* down"));
                    }
                    pos += 1;
                }
                Step::Note(n) => trace.push(n.clone()),
            }
        }
        if self.repeats > 0 {
            trace.push(format!("{} autorepeat events ignored", self.repeats));
        }
        trace.push(format!("{} down ends the code", key_name(ev.code)));
        let code = Secret::new(std::mem::take(&mut self.buf));
        self.clear();
        trace.push(format!("code {}", code.masked()));
        Some(WedgeOutput::Code { code, trace })
    }
}

/// Keys of the amount keypad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeypadKey {
    Digit(u8),
    Dot,
    Backspace,
    Enter,
    /// Esc: abandon the entry.
    Cancel,
    /// Delete: clear the entry.
    Clear,
    /// F1..F4, for menu functions.
    Function(u8),
}

/// Maps keypad presses to [`KeypadKey`]s. Autorepeat is ignored: a held key is one press.
pub fn keypad_key(ev: InputEvent) -> Option<KeypadKey> {
    if ev.kind != EV_KEY || ev.value != 1 {
        return None;
    }
    if let Some(d) = kp_digit(ev.code) {
        return Some(KeypadKey::Digit(d));
    }
    Some(match ev.code {
        c if (KEY_1..=KEY_0).contains(&c) => KeypadKey::Digit(((c - KEY_1 + 1) % 10) as u8),
        KEY_DOT | KEY_KPDOT => KeypadKey::Dot,
        KEY_BACKSPACE => KeypadKey::Backspace,
        KEY_ENTER | KEY_KPENTER => KeypadKey::Enter,
        KEY_ESC => KeypadKey::Cancel,
        KEY_DELETE => KeypadKey::Clear,
        c if (KEY_F1..=KEY_F4).contains(&c) => KeypadKey::Function((c - KEY_F1 + 1) as u8),
        _ => return None,
    })
}

/// What a reader's events are decoded as.
#[derive(Debug)]
pub enum InputRole {
    Scanner(WedgeDecoder),
    Keypad,
}

/// How a reader ended.
#[derive(Debug, PartialEq, Eq)]
pub enum InputEnd {
    /// End of stream or device gone (ENODEV on unplug); the text says which.
    Gone(String),
    /// The event receiver was dropped.
    Closed,
}

/// The one loop for every evdev source: reads records from `reader`, decodes them by `role`,
/// sends events. A half code older than the inter-key timeout (by the wall clock, when no key
/// follows it) is discarded. Returns when the stream ends or the device goes away.
pub async fn read_input<R: AsyncRead + Unpin>(
    mut reader: R,
    source: &SourceId,
    mut role: InputRole,
    events: &mpsc::Sender<DeviceEvent>,
) -> InputEnd {
    let mut splitter = RecordSplitter::default();
    let mut buf = vec![0u8; EVENT_SIZE * 64];
    let mut decoded = Vec::new();
    loop {
        let idle = match &role {
            InputRole::Scanner(d) if d.in_code() => Some(d.cfg.inter_key),
            _ => None,
        };
        let read = async {
            match idle {
                Some(t) => tokio::time::timeout(t, reader.read(&mut buf)).await.ok(),
                None => Some(reader.read(&mut buf).await),
            }
        };
        let n = match read.await {
            None => {
                if let InputRole::Scanner(d) = &mut role
                    && let Some(out) = d.discard("inter-key timeout")
                    && send_wedge(out, source, events).await.is_err()
                {
                    return InputEnd::Closed;
                }
                continue;
            }
            Some(Ok(0)) => 0,
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Some(Err(e)) => {
                let why = if is_gone(&e) {
                    format!("device gone: {e}")
                } else {
                    format!("read error: {e}")
                };
                return end_input(&mut role, source, events, why).await;
            }
        };
        if n == 0 {
            return end_input(&mut role, source, events, "end of stream".into()).await;
        }
        decoded.clear();
        splitter.push(&buf[..n], &mut decoded);
        buf[..n].iter_mut().for_each(|b| *b = 0);
        for ev in decoded.drain(..) {
            let sent = match &mut role {
                InputRole::Scanner(d) => match d.feed(ev) {
                    Some(out) => send_wedge(out, source, events).await,
                    None => Ok(()),
                },
                InputRole::Keypad => match keypad_key(ev) {
                    Some(key) => events
                        .send(DeviceEvent::Key {
                            source: source.clone(),
                            key,
                        })
                        .await
                        .map_err(|_| ()),
                    None => Ok(()),
                },
            };
            if sent.is_err() {
                return InputEnd::Closed;
            }
        }
    }
}

async fn end_input(
    role: &mut InputRole,
    source: &SourceId,
    events: &mpsc::Sender<DeviceEvent>,
    why: String,
) -> InputEnd {
    if let InputRole::Scanner(d) = role
        && let Some(out) = d.discard("device went away")
        && send_wedge(out, source, events).await.is_err()
    {
        return InputEnd::Closed;
    }
    InputEnd::Gone(why)
}

async fn send_wedge(
    out: WedgeOutput,
    source: &SourceId,
    events: &mpsc::Sender<DeviceEvent>,
) -> Result<(), ()> {
    let ev = match out {
        WedgeOutput::Code { code, trace } => {
            tracing::info!(scanner = %source, code = %code, took_ms = trace.took_ms, "scanned");
            DeviceEvent::Scanned {
                source: source.clone(),
                code,
                trace,
            }
        }
        WedgeOutput::Discarded { reason } => {
            tracing::warn!(scanner = %source, %reason, "wedge input discarded");
            DeviceEvent::ScanDiscarded {
                source: source.clone(),
                reason,
            }
        }
    };
    events.send(ev).await.map_err(|_| ())
}

// ioctl numbers from include/uapi/linux/input.h, built as the generic _IOC macro does (ARM,
// aarch64 and x86 share the generic encoding).
const fn ioc(dir: u32, nr: u32, size: u32) -> u32 {
    (dir << 30) | (size << 16) | ((b'E' as u32) << 8) | nr
}
const EVIOCGRAB: u32 = ioc(1, 0x90, 4);
const KEY_BITS_LEN: u32 = 96; // KEY_MAX (0x2ff) / 8 + 1
const EVIOCGKEY: u32 = ioc(2, 0x18, KEY_BITS_LEN);

/// Opens an evdev node (or any readable node, e.g. a FIFO carrying a recording) read-only and
/// non-blocking.
pub fn open_input(path: &Path) -> io::Result<FdStream> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    FdStream::new(OwnedFd::from(file))
}

/// Outcome of trying to grab.
#[derive(Debug, PartialEq, Eq)]
pub enum Grab {
    Grabbed,
    /// Not an evdev node (a FIFO replaying a recording): nothing to grab.
    NotEvdev,
    /// Another process holds the grab (EBUSY): we would see no events.
    Busy,
}

/// Grabs the device exclusively (EVIOCGRAB) once no key is held, so the codes never reach a
/// console or login prompt, and a key held during the grab does not stick down for others.
pub async fn grab(fd: RawFd) -> io::Result<Grab> {
    for _ in 0..40 {
        let mut bits = [0u8; KEY_BITS_LEN as usize];
        // SAFETY: EVIOCGKEY writes at most KEY_BITS_LEN bytes into `bits`.
        let rc = unsafe { libc::ioctl(fd, EVIOCGKEY as _, bits.as_mut_ptr()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOTTY) | Some(libc::EINVAL) => Ok(Grab::NotEvdev),
                _ => Err(e),
            };
        }
        if bits.iter().all(|&b| b == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: EVIOCGRAB takes an int argument by value.
    let rc = unsafe { libc::ioctl(fd, EVIOCGRAB as _, 1 as libc::c_int) };
    if rc == 0 {
        return Ok(Grab::Grabbed);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EBUSY) => Ok(Grab::Busy),
        Some(libc::ENOTTY) | Some(libc::EINVAL) => Ok(Grab::NotEvdev),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cfg() -> WedgeConfig {
        WedgeConfig {
            inter_key: Duration::from_millis(100),
            max_len: 64,
        }
    }

    /// Keystrokes for `text` as a scanner types them: press/release pairs 2 ms apart, Shift
    /// around capitals and shifted symbols, then Enter.
    pub(crate) fn typed(text: &str, t0: u64, enter: u16) -> Vec<InputEvent> {
        let mut v = Vec::new();
        let mut t = t0;
        let mut key = |code: u16, value: i32, t: &mut u64| {
            v.push(InputEvent::key(*t, code, value));
            v.push(InputEvent {
                time_us: *t,
                kind: EV_SYN,
                code: 0,
                value: 0,
            });
            *t += 1000;
        };
        for c in text.chars() {
            let (code, shift) = (1..=255u16)
                .find_map(|k| {
                    if us_char(k, false) == Some(c) {
                        Some((k, false))
                    } else if us_char(k, true) == Some(c) {
                        Some((k, true))
                    } else {
                        None
                    }
                })
                .unwrap();
            if shift {
                key(KEY_LEFTSHIFT, 1, &mut t);
            }
            key(code, 1, &mut t);
            key(code, 0, &mut t);
            if shift {
                key(KEY_LEFTSHIFT, 0, &mut t);
            }
        }
        key(enter, 1, &mut t);
        key(enter, 0, &mut t);
        v
    }

    fn run(dec: &mut WedgeDecoder, evs: &[InputEvent]) -> Vec<WedgeOutput> {
        evs.iter().filter_map(|e| dec.feed(*e)).collect()
    }

    fn code_of(o: &WedgeOutput) -> &str {
        match o {
            WedgeOutput::Code { code, .. } => code.expose(),
            WedgeOutput::Discarded { reason } => panic!("discarded: {reason}"),
        }
    }

    #[test]
    fn record_size_matches_kernel_struct() {
        assert_eq!(EVENT_SIZE, std::mem::size_of::<libc::input_event>());
    }

    #[test]
    fn records_round_trip_and_split_anywhere() {
        let evs = typed("134567890123456789", 1_700_000_000_000_000, KEY_ENTER);
        let bytes: Vec<u8> = evs.iter().flat_map(|e| e.to_bytes()).collect();
        for cut in [1usize, 7, EVENT_SIZE - 1, EVENT_SIZE + 5, 1000] {
            let mut sp = RecordSplitter::default();
            let mut out = Vec::new();
            for chunk in bytes.chunks(cut) {
                sp.push(chunk, &mut out);
            }
            assert_eq!(out, evs, "cut {cut}");
        }
    }

    #[test]
    fn digits_then_enter() {
        let mut d = WedgeDecoder::new(cfg());
        let out = run(&mut d, &typed("134567890123456789", 0, KEY_ENTER));
        assert_eq!(out.len(), 1);
        assert_eq!(code_of(&out[0]), "134567890123456789");
    }

    #[test]
    fn shift_makes_capitals_and_symbols_and_is_released() {
        let mut d = WedgeDecoder::new(cfg());
        let out = run(&mut d, &typed("Ab-_C:/?x", 0, KEY_ENTER));
        assert_eq!(code_of(&out[0]), "Ab-_C:/?x");
        // Right shift works too, and its release is honoured.
        let evs = vec![
            InputEvent::key(0, KEY_RIGHTSHIFT, 1),
            InputEvent::key(1000, KEY_A, 1),
            InputEvent::key(2000, KEY_RIGHTSHIFT, 0),
            InputEvent::key(3000, KEY_A, 1),
            InputEvent::key(4000, KEY_ENTER, 1),
        ];
        assert_eq!(code_of(&run(&mut d, &evs)[0]), "Aa");
    }

    #[test]
    fn keypad_digits_and_keypad_enter() {
        let mut d = WedgeDecoder::new(cfg());
        let evs: Vec<_> = [KEY_KP2, KEY_KP8, KEY_KP0, KEY_KPDOT, KEY_KP9]
            .iter()
            .enumerate()
            .map(|(i, &k)| InputEvent::key(i as u64 * 1000, k, 1))
            .chain([InputEvent::key(9000, KEY_KPENTER, 1)])
            .collect();
        assert_eq!(code_of(&run(&mut d, &evs)[0]), "280.9");
    }

    #[test]
    fn autorepeat_is_ignored_and_counted() {
        let mut d = WedgeDecoder::new(cfg());
        let evs = vec![
            InputEvent::key(0, KEY_1, 1),
            InputEvent::key(1000, KEY_1, 2),
            InputEvent::key(2000, KEY_1, 2),
            InputEvent::key(3000, KEY_1, 0),
            InputEvent::key(4000, KEY_1 + 1, 1),
            InputEvent::key(5000, KEY_ENTER, 1),
            InputEvent::key(6000, KEY_ENTER, 2),
        ];
        let out = run(&mut d, &evs);
        assert_eq!(out.len(), 1, "a repeated Enter must not end a second code");
        assert_eq!(code_of(&out[0]), "12");
        match &out[0] {
            WedgeOutput::Code { trace, .. } => {
                assert!(trace.steps.iter().any(|s| s.contains("2 autorepeat")));
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn alt_keypad_codes_decode() {
        let mut d = WedgeDecoder::new(cfg());
        // Alt+0,6,5 = 'A'; Alt+4,9 = '1'
        let evs = vec![
            InputEvent::key(0, KEY_LEFTALT, 1),
            InputEvent::key(1000, KEY_KP0, 1),
            InputEvent::key(2000, KEY_KP6, 1),
            InputEvent::key(3000, KEY_KP5, 1),
            InputEvent::key(4000, KEY_LEFTALT, 0),
            InputEvent::key(5000, KEY_LEFTALT, 1),
            InputEvent::key(6000, KEY_KP4, 1),
            InputEvent::key(7000, KEY_KP9, 1),
            InputEvent::key(8000, KEY_LEFTALT, 0),
            InputEvent::key(9000, KEY_ENTER, 1),
        ];
        assert_eq!(code_of(&run(&mut d, &evs)[0]), "A1");
    }

    #[test]
    fn slow_keys_discard_the_half_code() {
        let mut d = WedgeDecoder::new(cfg());
        let evs = vec![
            InputEvent::key(0, KEY_1, 1),
            InputEvent::key(1000, KEY_1, 1),
            // 500 ms later: a person, or a new scan after a lost Enter.
            InputEvent::key(501_000, KEY_1 + 2, 1),
            InputEvent::key(502_000, KEY_ENTER, 1),
        ];
        let out = run(&mut d, &evs);
        assert!(
            matches!(&out[0], WedgeOutput::Discarded { reason } if reason.contains("inter-key"))
        );
        assert_eq!(code_of(&out[1]), "3");
    }

    #[test]
    fn syn_dropped_discards_and_resets_shift() {
        let mut d = WedgeDecoder::new(cfg());
        let evs = vec![
            InputEvent::key(0, KEY_LEFTSHIFT, 1),
            InputEvent::key(1000, KEY_A, 1),
            InputEvent {
                time_us: 2000,
                kind: EV_SYN,
                code: SYN_DROPPED,
                value: 0,
            },
            InputEvent::key(3000, KEY_A, 1),
            InputEvent::key(4000, KEY_ENTER, 1),
        ];
        let out = run(&mut d, &evs);
        assert!(matches!(&out[0], WedgeOutput::Discarded { .. }));
        assert_eq!(code_of(&out[1]), "a");
    }

    #[test]
    fn too_long_is_discarded_not_truncated() {
        let mut d = WedgeDecoder::new(WedgeConfig {
            inter_key: Duration::from_millis(100),
            max_len: 4,
        });
        let out = run(&mut d, &typed("123456", 0, KEY_ENTER));
        assert!(matches!(&out[0], WedgeOutput::Discarded { reason } if reason.contains("max_len")));
    }

    #[test]
    fn two_scanners_interleaved_keep_separate_codes() {
        let a = typed("ABC123456789", 0, KEY_ENTER);
        let b = typed("987654321xyz", 500, KEY_KPENTER);
        let mut da = WedgeDecoder::new(cfg());
        let mut db = WedgeDecoder::new(cfg());
        let mut out_a = Vec::new();
        let mut out_b = Vec::new();
        for i in 0..a.len().max(b.len()) {
            if let Some(e) = a.get(i) {
                out_a.extend(da.feed(*e));
            }
            if let Some(e) = b.get(i) {
                out_b.extend(db.feed(*e));
            }
        }
        assert_eq!(code_of(&out_a[0]), "ABC123456789");
        assert_eq!(code_of(&out_b[0]), "987654321xyz");
    }

    #[test]
    fn trace_masks_middle_keys() {
        let mut d = WedgeDecoder::new(cfg());
        let out = run(&mut d, &typed("134567890123456789", 0, KEY_ENTER));
        let WedgeOutput::Code { trace, .. } = &out[0] else {
            unreachable!()
        };
        let all = trace.steps.join("\n");
        assert!(all.contains("KEY_1 down"));
        assert!(all.contains("KEY_9 down"));
        assert!(all.contains("KEY_* down"));
        assert!(all.contains("KEY_ENTER down ends the code"));
        assert!(all.contains("1345**********6789"));
        assert!(!all.contains("134567890123456789"));
        assert_eq!(trace.took_ms, 36);
    }

    #[test]
    fn keypad_keys_map_and_repeat_is_ignored() {
        let keys: Vec<_> = [
            (KEY_KP1, 1),
            (KEY_1 + 1, 1),
            (KEY_0, 1),
            (KEY_KPDOT, 1),
            (KEY_BACKSPACE, 1),
            (KEY_BACKSPACE, 2),
            (KEY_KPENTER, 1),
            (KEY_ESC, 1),
            (KEY_DELETE, 1),
            (KEY_F1 + 1, 1),
            (KEY_A, 1),
        ]
        .iter()
        .filter_map(|&(c, v)| keypad_key(InputEvent::key(0, c, v)))
        .collect();
        assert_eq!(
            keys,
            vec![
                KeypadKey::Digit(1),
                KeypadKey::Digit(2),
                KeypadKey::Digit(0),
                KeypadKey::Dot,
                KeypadKey::Backspace,
                KeypadKey::Enter,
                KeypadKey::Cancel,
                KeypadKey::Clear,
                KeypadKey::Function(2),
            ]
        );
    }

    async fn collect(rx: &mut mpsc::Receiver<DeviceEvent>) -> Vec<DeviceEvent> {
        let mut v = Vec::new();
        while let Ok(e) = rx.try_recv() {
            v.push(e);
        }
        v
    }

    #[tokio::test]
    async fn recorded_stream_runs_the_reader_loop() {
        let mut evs = typed("134567890123456789", 1_000_000, KEY_ENTER);
        evs.extend(typed("281234567890123456", 2_000_000, KEY_KPENTER));
        let bytes: Vec<u8> = evs.iter().flat_map(|e| e.to_bytes()).collect();
        let (tx, mut rx) = mpsc::channel(16);
        let end = read_input(
            bytes.as_slice(),
            &SourceId::new("rec"),
            InputRole::Scanner(WedgeDecoder::new(cfg())),
            &tx,
        )
        .await;
        assert_eq!(end, InputEnd::Gone("end of stream".into()));
        let got: Vec<String> = collect(&mut rx)
            .await
            .into_iter()
            .filter_map(|e| match e {
                DeviceEvent::Scanned { code, .. } => Some(code.expose().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(got, ["134567890123456789", "281234567890123456"]);
    }

    /// A reader that yields some bytes and then fails as an unplugged evdev node does.
    struct Vanishing {
        data: Vec<u8>,
    }

    impl AsyncRead for Vanishing {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            if self.data.is_empty() {
                return std::task::Poll::Ready(Err(io::Error::from_raw_os_error(libc::ENODEV)));
            }
            let n = self.data.len().min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data.drain(..n);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn device_that_disappears_mid_code_ends_cleanly() {
        let mut evs = typed("1234567890", 0, KEY_ENTER);
        evs.extend(typed("55555", 100_000, KEY_ENTER)[..6].iter().copied());
        let bytes: Vec<u8> = evs.iter().flat_map(|e| e.to_bytes()).collect();
        let (tx, mut rx) = mpsc::channel(16);
        let end = read_input(
            Vanishing { data: bytes },
            &SourceId::new("usb"),
            InputRole::Scanner(WedgeDecoder::new(cfg())),
            &tx,
        )
        .await;
        assert!(
            matches!(&end, InputEnd::Gone(w) if w.contains("device gone")),
            "{end:?}"
        );
        let evs = collect(&mut rx).await;
        assert!(
            matches!(&evs[0], DeviceEvent::Scanned { code, .. } if code.expose() == "1234567890")
        );
        assert!(
            matches!(&evs[1], DeviceEvent::ScanDiscarded { reason, .. } if reason.contains("went away"))
        );
        assert_eq!(evs.len(), 2);
    }

    #[tokio::test]
    async fn keypad_role_sends_keys() {
        let evs = [
            InputEvent::key(0, KEY_KP1, 1),
            InputEvent::key(0, KEY_KP1, 0),
            InputEvent::key(0, KEY_KPENTER, 1),
        ];
        let bytes: Vec<u8> = evs.iter().flat_map(|e| e.to_bytes()).collect();
        let (tx, mut rx) = mpsc::channel(16);
        read_input(
            bytes.as_slice(),
            &SourceId::new("kp"),
            InputRole::Keypad,
            &tx,
        )
        .await;
        let keys: Vec<_> = collect(&mut rx)
            .await
            .into_iter()
            .filter_map(|e| match e {
                DeviceEvent::Key { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        assert_eq!(keys, [KeypadKey::Digit(1), KeypadKey::Enter]);
    }
}
