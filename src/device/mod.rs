//! Device drivers: barcode scanners (serial and evdev keyboard wedge), the face-pay module, the
//! amount keypad, the beeper and status LEDs, and the board profiles that say which of them a
//! terminal has.
//!
//! Every driver here only turns bytes, key codes or frames into [`DeviceEvent`]s sent to the core
//! over a `tokio::sync::mpsc` channel (DESIGN.md §1). No driver decides anything about a payment:
//! it does not classify codes, pick gateways, or talk to the journal. Decoders are pure (bytes or
//! key codes in, codes out) and the async I/O around them is thin, so recorded input and
//! pseudo-terminals run the same code path a real device does. A payment code or face code is
//! held as a [`Secret`] whose `Debug`/`Display` show only its first and last four characters.

pub mod board;
pub mod face;
pub mod hotplug;
pub mod indicator;
pub mod input;
pub mod printer;
pub mod pty;
pub mod scantest;
pub mod serial;
pub mod tty;

use std::fmt;
use std::sync::Arc;

pub use board::{BoardError, BoardProfile, Problem, check_board, load_board};
pub use face::{FaceError, FaceEvent, FaceHandle};
pub use indicator::{Indication, IndicatorHandle};
pub use input::KeypadKey;
pub use scantest::scan_test;

/// A bearer credential read from a device (payment code, face code, openid, rawdata).
///
/// The full value is reachable only through [`Secret::expose`]; formatting shows the first four
/// and last four characters, so the value can sit in events, logs and errors without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The full value, for the one place that must send it to a gateway.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First 4 and last 4 characters with the middle starred; short values are fully starred so
    /// that a masked form never reveals more than half of the value.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks a credential-like string: `1234**********5678`.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..4].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Drop for Secret {
    /// Overwrite the bytes before the allocation goes back to the allocator, so a code does not
    /// linger in freed heap memory (best effort: earlier copies made by callers are theirs).
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into a live Vec. The volatile
            // write only keeps the compiler from eliding a store to memory about to be freed.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// A code read by a scanner. Masked when formatted.
pub type ScannedCode = Secret;

/// Which device produced an event: the scanner's name from the board profile plus, for evdev
/// devices, the node it was read from (two identical scanners are two sources).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(pub Arc<str>);

impl SourceId {
    pub fn new(name: impl AsRef<str>) -> SourceId {
        SourceId(Arc::from(name.as_ref()))
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of device an added/removed event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    SerialScanner,
    WedgeScanner,
    Keypad,
    FaceModule,
}

/// How a scanned code was assembled, for installers (`payterm scan-test`) and debug logs.
/// Every step is already masked: character keys in the middle of the code appear as `*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanTrace {
    pub steps: Vec<String>,
    /// Milliseconds from the first byte/key of the code to its terminator.
    pub took_ms: u64,
}

impl ScanTrace {
    /// Enough for a 2 KiB QR payload's summary; beyond that steps are counted, not kept.
    pub const MAX_STEPS: usize = 96;

    pub(crate) fn push(&mut self, step: impl Into<String>) {
        if self.steps.len() < Self::MAX_STEPS {
            self.steps.push(step.into());
        } else if self.steps.len() == Self::MAX_STEPS {
            self.steps.push("… (further steps not kept)".into());
        }
    }
}

/// Everything a device tells the core. The daemon owns the receiving end of the channel.
#[derive(Clone, Debug)]
pub enum DeviceEvent {
    /// A complete code from a scanner.
    Scanned {
        source: SourceId,
        code: ScannedCode,
        trace: ScanTrace,
    },
    /// Input that did not make a code (no terminator before the idle timeout, bytes outside
    /// printable ASCII, a missing prefix, too long, a dropped evdev buffer). Already logged.
    ScanDiscarded { source: SourceId, reason: String },
    /// A key on the amount keypad.
    Key { source: SourceId, key: KeypadKey },
    /// Something from the face-pay module.
    Face(FaceEvent),
    /// A device appeared (start-up, replug).
    DeviceAdded {
        source: SourceId,
        kind: DeviceKind,
        detail: String,
    },
    /// A device went away (unplugged, read error). Its driver keeps looking for it.
    DeviceRemoved {
        source: SourceId,
        kind: DeviceKind,
        reason: String,
    },
}

/// Errors at the edge of the device layer.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serial port {path}: {message}")]
    Serial { path: String, message: String },
    #[error("GPIO {what}: {message}")]
    Gpio { what: String, message: String },
    #[error("board profile: {0}")]
    Board(#[from] BoardError),
    #[error("the event receiver is gone (daemon shutting down)")]
    Closed,
}

/// What [`start_input_devices`] started.
pub struct StartedDevices {
    /// Reader tasks; abort them to stop.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Handles of `path = "sim"` scanners: the demo types codes through them.
    pub sim_scanners: Vec<serial::SimScanner>,
}

/// Starts every input driver the board profile names, each sending into `events`: serial
/// scanners (reopened after unplug), simulated scanners for `path = "sim"`, and evdev scanners
/// and the keypad (with hotplug on `/dev/input`). The face module and indicators are started
/// separately ([`face::open_face_module`], [`indicator::start_indicators`]) because the daemon
/// talks to them.
pub fn start_input_devices(
    board: &BoardProfile,
    events: tokio::sync::mpsc::Sender<DeviceEvent>,
) -> StartedDevices {
    let mut started = StartedDevices {
        tasks: Vec::new(),
        sim_scanners: Vec::new(),
    };
    for sc in &board.scanners {
        if let board::ScannerConfig::Serial(cfg) = sc {
            if cfg.path == "sim" {
                match serial::start_sim_scanner(cfg, events.clone()) {
                    Ok((sim, task)) => {
                        started.sim_scanners.push(sim);
                        started.tasks.push(task);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start the simulated scanner"),
                }
            } else {
                started.tasks.push(tokio::spawn(serial::run_serial_scanner(
                    cfg.clone(),
                    events.clone(),
                )));
            }
        }
    }
    let watch = hotplug::InputWatchConfig::from_board(board);
    if !watch.matchers.is_empty() {
        started.tasks.push(tokio::spawn(async move {
            if let Err(e) = hotplug::run_input_devices(watch, events).await {
                tracing::error!(error = %e, "input device watcher stopped");
            }
        }));
    }
    started
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_masks_in_debug_and_display() {
        let s = Secret::new("134567890123456789");
        assert_eq!(format!("{s}"), "1345**********6789");
        assert_eq!(format!("{s:?}"), "Secret(1345**********6789)");
        assert_eq!(s.expose(), "134567890123456789");
        let ev = DeviceEvent::Scanned {
            source: SourceId::new("s"),
            code: s.clone(),
            trace: ScanTrace::default(),
        };
        assert!(!format!("{ev:?}").contains("134567890123456789"));
    }

    #[test]
    fn short_values_fully_masked() {
        assert_eq!(mask("12345678"), "********");
        assert_eq!(mask(""), "");
        assert_eq!(mask("123456789"), "1234*6789");
    }
}
