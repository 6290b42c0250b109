//! Board profiles: which display, scanners, face module, keypad and GPIO lines a terminal has,
//! read from `board/*.toml`.
//!
//! This file owns the profile's schema, its loading and its checks (`payterm config check`). It
//! opens no device: drivers take the typed sections they need. Every problem found names what is
//! wrong and what to do about it.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A whole board profile.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// Short name, e.g. `scanner-box`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub display: DisplayConfig,
    #[serde(default, rename = "scanner")]
    pub scanners: Vec<ScannerConfig>,
    #[serde(default)]
    pub face: Option<FaceConfig>,
    #[serde(default)]
    pub keypad: Option<KeypadConfig>,
    #[serde(default)]
    pub gpio: Option<GpioConfig>,
    #[serde(default)]
    pub printer: Option<PrinterConfig>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DisplayKind {
    /// A Linux framebuffer (`/dev/fbN`), e.g. an SPI LCD through fbtft or a DRM fbdev emulation.
    Fbdev,
    /// Frames written as PNG files (tests, headless boards).
    Png,
    /// The screen mirrored as a web page (demo).
    Web,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DisplayConfig {
    pub kind: DisplayKind,
    pub width: u32,
    pub height: u32,
    /// Degrees clockwise: 0, 90, 180 or 270.
    #[serde(default)]
    pub rotation: u16,
    /// `/dev/fb0` for fbdev; the output file or directory for png.
    #[serde(default)]
    pub device: Option<PathBuf>,
}

/// One barcode scanner.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ScannerConfig {
    /// UART or USB-CDC (`/dev/ttyS*`, `/dev/ttyACM*`, better a udev symlink).
    Serial(SerialScannerConfig),
    /// USB keyboard-wedge scanner read through evdev.
    Evdev(EvdevMatch),
}

impl ScannerConfig {
    pub fn name(&self) -> &str {
        match self {
            ScannerConfig::Serial(c) => &c.name,
            ScannerConfig::Evdev(c) => &c.name,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    #[default]
    None,
    /// RTS/CTS.
    Hardware,
    /// XON/XOFF.
    Software,
}

/// What ends a code on a serial scanner.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Suffix {
    Cr,
    Lf,
    #[default]
    Crlf,
    /// No terminator: a code ends when the line has been idle for `idle_ms`.
    None,
}

fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_idle_ms() -> u64 {
    80
}
fn default_max_len() -> usize {
    512
}
fn default_reopen_ms() -> u64 {
    1000
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SerialScannerConfig {
    pub name: String,
    /// Device path, or `sim` for a simulated scanner on a pseudo-terminal (demo).
    pub path: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    #[serde(default)]
    pub flow: FlowControl,
    /// Bytes the scanner sends before every code (e.g. "\u0002"); stripped, and required.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffix: Suffix,
    /// With `suffix = "none"`: silence that ends a code. Otherwise: silence after which a code
    /// still missing its terminator is discarded as partial.
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
    /// Longest accepted code, in bytes.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Strip an AIM symbology identifier (`]C1`, `]Q1`…) the scanner puts before the data.
    #[serde(default)]
    pub strip_aim: bool,
    /// How often to try reopening an unplugged port.
    #[serde(default = "default_reopen_ms")]
    pub reopen_ms: u64,
}

fn default_inter_key_ms() -> u64 {
    100
}

/// How to recognise an evdev device (scanner or keypad): by name, by USB ids, or both.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvdevMatch {
    pub name: String,
    /// Substring of the kernel's device name (`cat /sys/class/input/eventN/device/name`).
    #[serde(default)]
    pub match_name: Option<String>,
    /// `vvvv:pppp`, hexadecimal USB vendor and product ids.
    #[serde(default)]
    pub usb_id: Option<String>,
    /// A half-typed code older than this is discarded (scanners type a key every 1–10 ms).
    #[serde(default = "default_inter_key_ms")]
    pub inter_key_ms: u64,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Take the device exclusively (EVIOCGRAB) so scanned digits never reach a console.
    #[serde(default = "yes")]
    pub grab: bool,
}

fn yes() -> bool {
    true
}

impl EvdevMatch {
    /// Parsed `usb_id`, if present and well formed.
    pub fn usb_ids(&self) -> Option<(u16, u16)> {
        parse_usb_id(self.usb_id.as_deref()?)
    }
}

pub fn parse_usb_id(s: &str) -> Option<(u16, u16)> {
    let (v, p) = s.split_once(':')?;
    if v.len() != 4 || p.len() != 4 {
        return None;
    }
    Some((
        u16::from_str_radix(v, 16).ok()?,
        u16::from_str_radix(p, 16).ok()?,
    ))
}

fn default_face_baud() -> u32 {
    115200
}
fn default_ack_ms() -> u64 {
    200
}
fn default_retries() -> u32 {
    3
}
fn default_heartbeat_ms() -> u64 {
    2000
}
fn default_face_timeout_ms() -> u64 {
    30_000
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaceConfig {
    /// Serial device path, or `sim` for the built-in simulated module on a pty.
    pub path: String,
    #[serde(default = "default_face_baud")]
    pub baud: u32,
    /// Wait for an ACK before resending a frame.
    #[serde(default = "default_ack_ms")]
    pub ack_ms: u64,
    /// Resends before the link is declared down.
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// How long a customer has to look at the camera.
    #[serde(default = "default_face_timeout_ms")]
    pub face_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeypadConfig {
    #[serde(flatten)]
    pub device: EvdevMatch,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// Line offset on the chip.
    pub line: u32,
    #[serde(default)]
    pub active_low: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// `/dev/gpiochipN`, or `sim` for the recording sink.
    pub chip: String,
    #[serde(default)]
    pub beeper: Option<GpioLine>,
    #[serde(default)]
    pub led_green: Option<GpioLine>,
    #[serde(default)]
    pub led_red: Option<GpioLine>,
    #[serde(default)]
    pub led_amber: Option<GpioLine>,
}

/// Which copy of a receipt is printed: the customer's, or the one the merchant keeps.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptCopy {
    Customer,
    Merchant,
}

fn default_width_mm() -> u16 {
    58
}
fn default_copies() -> Vec<ReceiptCopy> {
    vec![ReceiptCopy::Customer, ReceiptCopy::Merchant]
}
fn default_status_timeout_ms() -> u64 {
    1000
}

/// The receipt printer (ESC/POS): a USB printer class node (`/dev/usb/lp0`) or, with `baud`, a
/// serial port.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// `/dev/usb/lp0`, a serial port, or `sim` (no printer: receipts are only laid out).
    pub device: String,
    /// Set for a serial printer (8N1, no flow control).
    #[serde(default)]
    pub baud: Option<u32>,
    /// Paper width: 58 (32 columns) or 80 (48 columns).
    #[serde(default = "default_width_mm")]
    pub width_mm: u16,
    /// The copies printed per sale, in order.
    #[serde(default = "default_copies")]
    pub copies: Vec<ReceiptCopy>,
    /// How long to wait for the printer's answer to a status request.
    #[serde(default = "default_status_timeout_ms")]
    pub status_timeout_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("cannot read board profile {path}: {source}; check the `board` path in payterm.toml")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("board profile {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The daemon would not work as configured.
    Error,
    /// It would work, but probably not as intended.
    Warning,
}

/// One finding of [`check_board`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// Which part of the profile, e.g. `scanner "counter"`.
    pub place: String,
    pub what: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: {}. {}", self.place, self.what, self.fix)
    }
}

/// Reads and parses a board profile. Parsing rejects unknown keys, so typos are found here.
pub fn load_board(path: &Path) -> Result<BoardProfile, BoardError> {
    let text = std::fs::read_to_string(path).map_err(|source| BoardError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_board(&text).map_err(|message| BoardError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses a board profile from TOML text.
pub fn parse_board(text: &str) -> Result<BoardProfile, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

const STANDARD_BAUDS: &[u32] = &[
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600,
];

/// Checks a profile for mistakes that parsing cannot see. Pure: touches no device.
pub fn check_board(board: &BoardProfile) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut err = |severity, place: &str, what: String, fix: &str| {
        out.push(Problem {
            severity,
            place: place.to_owned(),
            what,
            fix: fix.to_owned(),
        })
    };
    use Severity::{Error, Warning};

    if board.name.trim().is_empty() {
        err(
            Error,
            "board",
            "the profile has no name".into(),
            "Set `name = \"...\"` at the top.",
        );
    }

    let d = &board.display;
    if d.width == 0 || d.height == 0 || d.width > 4096 || d.height > 4096 {
        err(
            Error,
            "display",
            format!("size {}x{} is not a real screen", d.width, d.height),
            "Set width and height to the panel's pixels, e.g. 320 and 240.",
        );
    }
    if ![0, 90, 180, 270].contains(&d.rotation) {
        err(
            Error,
            "display",
            format!("rotation {} is not a right angle", d.rotation),
            "Use 0, 90, 180 or 270.",
        );
    }
    if d.kind == DisplayKind::Fbdev {
        match &d.device {
            None => err(
                Error,
                "display",
                "an fbdev display needs its device".into(),
                "Add `device = \"/dev/fb0\"` (see `ls /dev/fb*` on the board).",
            ),
            Some(p) if !p.starts_with("/dev/") => err(
                Warning,
                "display",
                format!("fbdev device {} is not under /dev", p.display()),
                "Framebuffers are /dev/fbN; check the path.",
            ),
            _ => {}
        }
    }

    if board.scanners.is_empty() && board.face.is_none() {
        err(
            Error,
            "board",
            "no scanner and no face module: nothing can read a payment code".into(),
            "Add a [[scanner]] section (or a [face] section).",
        );
    }

    let mut names = HashSet::new();
    let mut serial_paths = HashSet::new();
    for sc in &board.scanners {
        let place = format!("scanner \"{}\"", sc.name());
        if sc.name().trim().is_empty() {
            err(
                Error,
                "scanner",
                "a scanner has no name".into(),
                "Give every [[scanner]] a `name`; it appears in logs and scan-test.",
            );
        } else if !names.insert(sc.name().to_owned()) {
            err(
                Error,
                &place,
                "two scanners have this name".into(),
                "Give each scanner its own name.",
            );
        }
        match sc {
            ScannerConfig::Serial(c) => {
                check_serial_path(&c.path, &place, &mut err);
                if c.path != "sim" && !serial_paths.insert(c.path.clone()) {
                    err(
                        Error,
                        &place,
                        format!("{} is used by two scanners", c.path),
                        "A serial port can be opened by one reader only.",
                    );
                }
                if !STANDARD_BAUDS.contains(&c.baud) {
                    err(
                        Warning,
                        &place,
                        format!("baud {} is not a standard rate", c.baud),
                        "Most scanners use 9600 or 115200; check the scanner's setup sheet.",
                    );
                }
                if !(5..=8).contains(&c.data_bits) {
                    err(
                        Error,
                        &place,
                        format!("data_bits {} is impossible", c.data_bits),
                        "Use 7 or 8.",
                    );
                }
                if !(1..=2).contains(&c.stop_bits) {
                    err(
                        Error,
                        &place,
                        format!("stop_bits {} is impossible", c.stop_bits),
                        "Use 1 or 2.",
                    );
                }
                if c.suffix == Suffix::None && c.idle_ms == 0 {
                    err(
                        Error,
                        &place,
                        "suffix \"none\" with idle_ms = 0 would never end a code".into(),
                        "Set idle_ms to about 50-100, or configure the scanner to send CR.",
                    );
                }
                if c.idle_ms > 2000 {
                    err(
                        Warning,
                        &place,
                        format!(
                            "idle_ms {} is long: a half code lingers that long",
                            c.idle_ms
                        ),
                        "Scanners send a code within a few ms; 50-200 ms is plenty.",
                    );
                }
                if c.max_len < 8 || c.max_len > 8192 {
                    err(
                        Error,
                        &place,
                        format!("max_len {} is out of range", c.max_len),
                        "Payment codes are 16-24 characters; QR payloads up to a few hundred. Use 512.",
                    );
                }
                if c.prefix.bytes().any(|b| b == b'\r' || b == b'\n') {
                    err(
                        Error,
                        &place,
                        "the prefix contains CR or LF, which end codes".into(),
                        "Use another prefix character, e.g. \"\\u0002\" (STX).",
                    );
                }
            }
            ScannerConfig::Evdev(m) => check_evdev(m, &place, &mut err),
        }
    }

    if let Some(f) = &board.face {
        check_serial_path(&f.path, "face", &mut err);
        if !STANDARD_BAUDS.contains(&f.baud) {
            err(
                Warning,
                "face",
                format!("baud {} is not a standard rate", f.baud),
                "The face module link is usually 115200 8N1.",
            );
        }
        if f.ack_ms < 20 || f.ack_ms > 5000 {
            err(
                Error,
                "face",
                format!("ack_ms {} is out of range", f.ack_ms),
                "Use 100-1000 ms (200 is the protocol default).",
            );
        }
        if f.retries > 10 {
            err(
                Warning,
                "face",
                format!("{} retries would hide a dead link for long", f.retries),
                "Use 2-5.",
            );
        }
        if f.heartbeat_ms < 200 {
            err(
                Error,
                "face",
                format!("heartbeat_ms {} would flood the link", f.heartbeat_ms),
                "Use about 2000.",
            );
        }
        if f.face_timeout_ms < 3000 || f.face_timeout_ms > 120_000 {
            err(
                Warning,
                "face",
                format!("face_timeout_ms {} is unusual", f.face_timeout_ms),
                "Customers need 10-60 s to face the camera; 30000 is typical.",
            );
        }
    }

    if let Some(k) = &board.keypad {
        check_evdev(&k.device, "keypad", &mut err);
    }

    if let Some(g) = &board.gpio {
        if g.chip != "sim" && !g.chip.starts_with("/dev/gpiochip") {
            err(
                Error,
                "gpio",
                format!("chip {} is not a GPIO character device", g.chip),
                "Use /dev/gpiochipN (see `gpiodetect`), or \"sim\".",
            );
        }
        let lines = [
            ("beeper", &g.beeper),
            ("led_green", &g.led_green),
            ("led_red", &g.led_red),
            ("led_amber", &g.led_amber),
        ];
        let mut seen = HashSet::new();
        for (what, l) in lines {
            if let Some(l) = l
                && !seen.insert(l.line)
            {
                err(
                    Error,
                    "gpio",
                    format!("line {} is used twice (again by {what})", l.line),
                    "Each output needs its own line offset.",
                );
            }
        }
        if lines.iter().all(|(_, l)| l.is_none()) {
            err(
                Warning,
                "gpio",
                "a [gpio] section with no lines".into(),
                "Add beeper/led_* lines or remove the section.",
            );
        }
    }
    if let Some(p) = &board.printer {
        if p.device.trim().is_empty() {
            err(
                Error,
                "printer",
                "no device".into(),
                "Set `device = \"/dev/usb/lp0\"`, a serial port with `baud`, or \"sim\".",
            );
        }
        if !matches!(p.width_mm, 58 | 80) {
            err(
                Error,
                "printer",
                format!("width_mm = {} is not a receipt paper width", p.width_mm),
                "Use 58 (32 columns) or 80 (48 columns).",
            );
        }
        if let Some(b) = p.baud
            && !STANDARD_BAUDS.contains(&b)
        {
            err(
                Error,
                "printer",
                format!("baud {b} is not a standard rate"),
                "Use the printer's rate, usually 9600 or 115200.",
            );
        }
        if p.copies.is_empty() {
            err(
                Warning,
                "printer",
                "copies is empty: nothing would be printed".into(),
                "List `copies = [\"customer\", \"merchant\"]` or remove the section.",
            );
        }
        if p.status_timeout_ms == 0 {
            err(
                Error,
                "printer",
                "status_timeout_ms = 0 gives the printer no time to answer".into(),
                "Use a few hundred milliseconds.",
            );
        }
    }
    out
}

fn check_serial_path(path: &str, place: &str, err: &mut impl FnMut(Severity, &str, String, &str)) {
    if path == "sim" {
        return;
    }
    if path.is_empty() || !path.starts_with("/dev/") {
        err(
            Severity::Error,
            place,
            format!("serial path {path:?} is not a device"),
            "Use a /dev path (preferably a udev symlink such as /dev/scanner0) or \"sim\".",
        );
    } else if path.starts_with("/dev/ttyACM") || path.starts_with("/dev/ttyUSB") {
        err(
            Severity::Warning,
            place,
            format!("{path} is numbered in plug order and can change on replug"),
            "Install udev/60-payterm.rules and use its stable symlink (e.g. /dev/scanner0).",
        );
    }
}

fn check_evdev(m: &EvdevMatch, place: &str, err: &mut impl FnMut(Severity, &str, String, &str)) {
    if m.match_name.as_deref().is_none_or(|s| s.trim().is_empty()) && m.usb_id.is_none() {
        err(
            Severity::Error,
            place,
            "no way to recognise the device".into(),
            "Set match_name (from /sys/class/input/eventN/device/name) or usb_id = \"vvvv:pppp\".",
        );
    }
    if let Some(id) = &m.usb_id
        && parse_usb_id(id).is_none()
    {
        err(
            Severity::Error,
            place,
            format!("usb_id {id:?} is not vvvv:pppp"),
            "Write four hex digits, a colon, four hex digits, as `lsusb` shows them.",
        );
    }
    if m.inter_key_ms < 10 || m.inter_key_ms > 1000 {
        err(
            Severity::Warning,
            place,
            format!("inter_key_ms {} is unusual", m.inter_key_ms),
            "Scanners type a key every 1-10 ms; 50-200 ms separates them from people.",
        );
    }
    if !m.grab {
        err(
            Severity::Warning,
            place,
            "grab = false: scanned codes also reach the console or a login prompt".into(),
            "Leave grab on unless another program must see the keys.",
        );
    }
}

/// Host-dependent checks (do the configured device nodes exist *now*?). Separate from
/// [`check_board`] so the pure checks stay the same on a developer machine.
pub fn check_board_devices(board: &BoardProfile) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut missing = |place: &str, path: &str, fix: &str| {
        if path != "sim" && !Path::new(path).exists() {
            out.push(Problem {
                severity: Severity::Warning,
                place: place.to_owned(),
                what: format!("{path} does not exist right now"),
                fix: fix.to_owned(),
            });
        }
    };
    for sc in &board.scanners {
        if let ScannerConfig::Serial(c) = sc {
            missing(
                &format!("scanner \"{}\"", c.name),
                &c.path,
                "Plug the scanner in, or check the udev rules; the daemon waits for it.",
            );
        }
    }
    if let Some(f) = &board.face {
        missing(
            "face",
            &f.path,
            "Check the face module's cable and udev rule.",
        );
    }
    if let Some(g) = &board.gpio {
        missing(
            "gpio",
            &g.chip,
            "See `ls /dev/gpiochip*`; the kernel needs GPIO_CDEV.",
        );
    }
    if board.display.kind == DisplayKind::Fbdev
        && let Some(p) = &board.display.device
    {
        missing(
            "display",
            &p.to_string_lossy(),
            "Check the panel's device tree overlay.",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boards_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("board")
    }

    #[test]
    fn every_shipped_profile_loads_and_checks_clean() {
        let mut n = 0;
        for entry in std::fs::read_dir(boards_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let b = load_board(&path).unwrap_or_else(|e| panic!("{e}"));
                let problems = check_board(&b);
                assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
                n += 1;
            }
        }
        assert!(n >= 3, "expected sim + two real profiles, found {n}");
    }

    #[test]
    fn shipped_profiles_have_the_promised_shapes() {
        let sim = load_board(&boards_dir().join("sim.toml")).unwrap();
        assert!(sim.scanners.iter().all(|s| match s {
            ScannerConfig::Serial(c) => c.path == "sim",
            ScannerConfig::Evdev(_) => false,
        }));
        assert_eq!(sim.face.as_ref().unwrap().path, "sim");
        let boxed = load_board(&boards_dir().join("scanner-box.toml")).unwrap();
        assert_eq!((boxed.display.width, boxed.display.height), (320, 240));
        assert!(matches!(boxed.scanners[0], ScannerConfig::Serial(_)));
        let kiosk = load_board(&boards_dir().join("kiosk.toml")).unwrap();
        assert_eq!((kiosk.display.width, kiosk.display.height), (800, 480));
        assert!(matches!(kiosk.scanners[0], ScannerConfig::Evdev(_)));
        assert!(kiosk.face.is_some());
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_key_named() {
        let e = parse_board("name='x'\n[display]\nkind='png'\nwidth=1\nheight=1\nrotaton=90\n")
            .unwrap_err();
        assert!(e.contains("rotaton"), "{e}");
        let e = parse_board(
            "name='x'\n[display]\nkind='png'\nwidth=1\nheight=1\n[[scanner]]\nkind='serial'\nname='a'\npath='/dev/ttyS1'\nbaud_rate=9600\n",
        )
        .unwrap_err();
        assert!(e.contains("baud_rate"), "{e}");
    }

    #[test]
    fn printer_section_parses_and_its_mistakes_are_found() {
        let base = "name = \"p\"\n[display]\nkind = \"png\"\nwidth = 320\nheight = 240\n";
        let b = parse_board(&format!("{base}[printer]\ndevice = \"/dev/usb/lp0\"\n")).unwrap();
        let p = b.printer.as_ref().unwrap();
        assert_eq!((p.width_mm, p.baud), (58, None));
        assert_eq!(p.copies, [ReceiptCopy::Customer, ReceiptCopy::Merchant]);
        let p = check_board(&b);
        assert!(!p.iter().any(|x| x.place == "printer"), "{p:?}");
        let b = parse_board(&format!(
            "{base}[printer]\ndevice = \"\"\nbaud = 9601\nwidth_mm = 76\ncopies = []\n"
        ))
        .unwrap();
        let p = check_board(&b);
        for needle in ["no device", "width_mm = 76", "baud 9601", "copies is empty"] {
            assert!(
                p.iter().any(|x| x.to_string().contains(needle)),
                "{needle}: {p:#?}"
            );
        }
        assert!(parse_board(&format!("{base}[printer]\ndevice = \"x\"\ncopy = []\n")).is_err());
    }

    #[test]
    fn check_finds_each_mistake_and_says_what_to_do() {
        let text = r#"
name = ""
[display]
kind = "fbdev"
width = 0
height = 240
rotation = 45
[[scanner]]
kind = "serial"
name = "a"
path = "ttyS1"
baud = 9601
suffix = "none"
idle_ms = 0
[[scanner]]
kind = "evdev"
name = "a"
usb_id = "zz:1"
[gpio]
chip = "/dev/gpiochip0"
beeper = { line = 3 }
led_red = { line = 3 }
"#;
        let b = parse_board(text).unwrap();
        let p = check_board(&b);
        let has = |needle: &str| p.iter().any(|x| x.to_string().contains(needle));
        for needle in [
            "no name",
            "size 0x240",
            "rotation 45",
            "needs its device",
            "two scanners have this name",
            "is not a device",
            "baud 9601",
            "never end a code",
            "not vvvv:pppp",
            "line 3 is used twice",
        ] {
            assert!(has(needle), "missing {needle:?} in {p:#?}");
        }
        assert!(p.iter().all(|x| !x.fix.is_empty()));
    }

    #[test]
    fn usb_ids_parse() {
        assert_eq!(parse_usb_id("0c2e:0b61"), Some((0x0c2e, 0x0b61)));
        assert_eq!(parse_usb_id("0c2e0b61"), None);
        assert_eq!(parse_usb_id("0c2e:b61"), None);
    }
}
