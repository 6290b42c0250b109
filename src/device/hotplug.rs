//! Finding evdev scanners and the keypad, and following them as they come and go: a start-up
//! scan of `/dev/input` plus inotify on it (no libudev), identity from sysfs
//! (`/sys/class/input/eventN/device/{name,id/vendor,id/product}`), matching against the board
//! profile, one reader task and one decoder per device.
//!
//! The directories are parameters, so the tests run the whole watcher on a temporary directory
//! with FIFOs standing in for event nodes. This file decides only which node is which device.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inotify::{Inotify, WatchMask};
use tokio::sync::mpsc;
use tokio_stream_shim::next_name;

use super::board::{BoardProfile, EvdevMatch, ScannerConfig};
use super::input::{
    Grab, InputEnd, InputRole, WedgeConfig, WedgeDecoder, grab, open_input, read_input,
};
use super::{DeviceError, DeviceEvent, DeviceKind, SourceId};

/// What a matched device is used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Scanner,
    Keypad,
}

#[derive(Clone, Debug)]
pub struct InputWatchConfig {
    /// `/dev/input` on a board.
    pub dev_dir: PathBuf,
    /// `/sys/class/input` on a board.
    pub sys_dir: PathBuf,
    pub matchers: Vec<(EvdevMatch, Role)>,
}

impl InputWatchConfig {
    pub fn from_board(board: &BoardProfile) -> InputWatchConfig {
        let mut matchers: Vec<(EvdevMatch, Role)> = board
            .scanners
            .iter()
            .filter_map(|s| match s {
                ScannerConfig::Evdev(m) => Some((m.clone(), Role::Scanner)),
                ScannerConfig::Serial(_) => None,
            })
            .collect();
        if let Some(k) = &board.keypad {
            matchers.push((k.device.clone(), Role::Keypad));
        }
        InputWatchConfig {
            dev_dir: PathBuf::from("/dev/input"),
            sys_dir: PathBuf::from("/sys/class/input"),
            matchers,
        }
    }
}

/// What sysfs says about an input node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub usb_id: Option<(u16, u16)>,
}

/// Reads the identity of `eventN` from sysfs. `None` if sysfs has no entry (yet).
pub fn identity(sys_dir: &Path, node: &str) -> Option<Identity> {
    let dev = sys_dir.join(node).join("device");
    let name = std::fs::read_to_string(dev.join("name")).ok()?;
    let hex = |f: &str| {
        std::fs::read_to_string(dev.join("id").join(f))
            .ok()
            .and_then(|s| u16::from_str_radix(s.trim(), 16).ok())
    };
    let usb_id = match (hex("vendor"), hex("product")) {
        (Some(v), Some(p)) => Some((v, p)),
        _ => None,
    };
    Some(Identity {
        name: name.trim().to_owned(),
        usb_id,
    })
}

/// Whether a device is the one a profile entry describes: every criterion given must hold.
pub fn matches(m: &EvdevMatch, id: &Identity) -> bool {
    let name_ok = match m.match_name.as_deref() {
        Some(want) if !want.is_empty() => id.name.to_lowercase().contains(&want.to_lowercase()),
        _ => true,
    };
    let id_ok = match m.usb_ids() {
        Some(want) => id.usb_id == Some(want),
        None => m.usb_id.is_none(),
    };
    let something = m.match_name.as_deref().is_some_and(|s| !s.is_empty()) || m.usb_id.is_some();
    something && name_ok && id_ok
}

fn is_event_node(name: &str) -> bool {
    name.strip_prefix("event")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Runs until the event receiver is dropped: picks up matching devices present now and any that
/// appear later; each gets its own task and decoder and is dropped when it goes away.
pub async fn run_input_devices(
    cfg: InputWatchConfig,
    events: mpsc::Sender<DeviceEvent>,
) -> Result<(), DeviceError> {
    let io_err = |source| DeviceError::Io {
        path: cfg.dev_dir.display().to_string(),
        source,
    };
    let inotify = Inotify::init().map_err(io_err)?;
    // IN_ATTRIB: udev creates the node first and fixes its permissions afterwards, so an open
    // that failed at IN_CREATE may succeed at IN_ATTRIB. IN_MOVED_TO: nodes renamed into place.
    inotify
        .watches()
        .add(
            &cfg.dev_dir,
            WatchMask::CREATE | WatchMask::ATTRIB | WatchMask::MOVED_TO,
        )
        .map_err(io_err)?;
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();

    let mut initial: Vec<String> = std::fs::read_dir(&cfg.dev_dir)
        .map_err(io_err)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_event_node(n))
        .collect();
    initial.sort();
    for node in initial {
        consider(&cfg, &node, &active, &events).await;
    }

    let mut stream = inotify.into_event_stream(vec![0u8; 4096]).map_err(io_err)?;
    loop {
        tokio::select! {
            name = next_name(&mut stream) => match name {
                Some(Ok(Some(node))) if is_event_node(&node) => {
                    consider(&cfg, &node, &active, &events).await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(io_err(e)),
                None => return Ok(()),
            },
            _ = events.closed() => return Ok(()),
        }
    }
}

/// Opens, grabs and starts reading one node if it matches the profile and is not already read.
async fn consider(
    cfg: &InputWatchConfig,
    node: &str,
    active: &Arc<Mutex<HashSet<String>>>,
    events: &mpsc::Sender<DeviceEvent>,
) {
    if active.lock().map(|a| a.contains(node)).unwrap_or(true) {
        return; // a repeat IN_ATTRIB for a device we already hold
    }
    let Some(id) = identity(&cfg.sys_dir, node) else {
        tracing::debug!(node, "no sysfs identity (yet)");
        return;
    };
    let Some((m, role)) = cfg.matchers.iter().find(|(m, _)| matches(m, &id)) else {
        tracing::debug!(node, name = %id.name, "input device not in the board profile");
        return;
    };
    let path = cfg.dev_dir.join(node);
    let stream = match open_input(&path) {
        Ok(s) => s,
        Err(e) => {
            // ENOENT: gone already; EACCES: udev has not set permissions yet (IN_ATTRIB retries).
            tracing::debug!(node, error = %e, "cannot open input device yet");
            return;
        }
    };
    if m.grab {
        match grab(stream.raw_fd()).await {
            Ok(Grab::Grabbed) => {}
            Ok(Grab::NotEvdev) => tracing::debug!(node, "not an evdev node; reading without grab"),
            Ok(Grab::Busy) => tracing::warn!(
                node,
                "another process has grabbed this device; its codes will not reach payterm"
            ),
            Err(e) => {
                tracing::debug!(node, error = %e, "grab failed; device probably gone");
                return;
            }
        }
    }
    match active.lock() {
        Ok(mut a) => {
            if !a.insert(node.to_owned()) {
                return;
            }
        }
        Err(_) => return,
    }
    let source = SourceId::new(format!("{}:{node}", m.name));
    let kind = match role {
        Role::Scanner => DeviceKind::WedgeScanner,
        Role::Keypad => DeviceKind::Keypad,
    };
    let decoder = match role {
        Role::Scanner => InputRole::Scanner(WedgeDecoder::new(WedgeConfig {
            inter_key: Duration::from_millis(m.inter_key_ms),
            max_len: m.max_len,
        })),
        Role::Keypad => InputRole::Keypad,
    };
    tracing::info!(%source, name = %id.name, "input device added");
    let added = DeviceEvent::DeviceAdded {
        source: source.clone(),
        kind,
        detail: match id.usb_id {
            Some((v, p)) => format!("{} ({v:04x}:{p:04x}) at {}", id.name, path.display()),
            None => format!("{} at {}", id.name, path.display()),
        },
    };
    if events.send(added).await.is_err() {
        return;
    }
    let active = Arc::clone(active);
    let events = events.clone();
    let node = node.to_owned();
    tokio::spawn(async move {
        let end = read_input(stream, &source, decoder, &events).await;
        if let Ok(mut a) = active.lock() {
            a.remove(&node);
        }
        if let InputEnd::Gone(reason) = end {
            tracing::warn!(%source, %reason, "input device removed");
            let _ = events
                .send(DeviceEvent::DeviceRemoved {
                    source,
                    kind,
                    reason,
                })
                .await;
        }
    });
}

/// The inotify event stream yields owned events; this pulls out the file name.
mod tokio_stream_shim {
    use std::ffi::OsString;
    use std::future::poll_fn;
    use std::pin::Pin;

    use futures_core::Stream;
    use inotify::{EventOwned, EventStream};

    pub(super) async fn next_name(
        stream: &mut EventStream<Vec<u8>>,
    ) -> Option<std::io::Result<Option<String>>> {
        let ev: Option<std::io::Result<EventOwned>> =
            poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await;
        ev.map(|r| r.map(|e| e.name.and_then(|n: OsString| n.into_string().ok())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::input::{EVENT_SIZE, InputEvent, keys::*};
    use std::ffi::CString;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;

    fn m(name: Option<&str>, id: Option<&str>) -> EvdevMatch {
        EvdevMatch {
            name: "s".into(),
            match_name: name.map(Into::into),
            usb_id: id.map(Into::into),
            inter_key_ms: 100,
            max_len: 64,
            grab: true,
        }
    }

    #[test]
    fn matching_by_name_and_by_usb_id() {
        let id = Identity {
            name: "Newland Barcode Scanner".into(),
            usb_id: Some((0x1eab, 0x1a03)),
        };
        assert!(matches(&m(Some("barcode scanner"), None), &id));
        assert!(matches(&m(None, Some("1eab:1a03")), &id));
        assert!(matches(&m(Some("Newland"), Some("1eab:1a03")), &id));
        assert!(!matches(&m(Some("Newland"), Some("1eab:0001")), &id));
        assert!(!matches(&m(Some("Keypad"), None), &id));
        assert!(!matches(&m(None, None), &id));
        assert!(!matches(&m(None, Some("garbage")), &id));
    }

    struct FakeInput {
        root: tempfile::TempDir,
    }

    impl FakeInput {
        fn new() -> FakeInput {
            let root = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(root.path().join("dev/input")).unwrap();
            std::fs::create_dir_all(root.path().join("sys")).unwrap();
            std::fs::create_dir_all(root.path().join("staging")).unwrap();
            FakeInput { root }
        }

        fn cfg(&self, matchers: Vec<(EvdevMatch, Role)>) -> InputWatchConfig {
            InputWatchConfig {
                dev_dir: self.root.path().join("dev/input"),
                sys_dir: self.root.path().join("sys"),
                matchers,
            }
        }

        /// Plugs a device: sysfs identity first, then a FIFO renamed into /dev/input (held
        /// open for writing by the returned file, which plays the kernel).
        fn plug(&self, node: &str, name: &str, usb: (u16, u16)) -> std::fs::File {
            let dev = self.root.path().join("sys").join(node).join("device");
            std::fs::create_dir_all(dev.join("id")).unwrap();
            std::fs::write(dev.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(dev.join("id/vendor"), format!("{:04x}\n", usb.0)).unwrap();
            std::fs::write(dev.join("id/product"), format!("{:04x}\n", usb.1)).unwrap();
            let staged = self.root.path().join("staging").join(node);
            let c = CString::new(staged.as_os_str().as_bytes()).unwrap();
            // SAFETY: valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            // O_RDWR so opening does not block and the FIFO has a writer before the daemon
            // side opens it.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&staged)
                .unwrap();
            std::fs::rename(&staged, self.root.path().join("dev/input").join(node)).unwrap();
            f
        }
    }

    fn typed(text: &str, enter: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t = 1_000_000u64;
        for c in text.chars() {
            let code = (1..=255u16)
                .find(|&k| crate::device::input::us_char(k, false) == Some(c))
                .unwrap();
            out.extend(InputEvent::key(t, code, 1).to_bytes());
            out.extend(InputEvent::key(t + 500, code, 0).to_bytes());
            t += 1000;
        }
        out.extend(InputEvent::key(t, enter, 1).to_bytes());
        out
    }

    async fn next(rx: &mut mpsc::Receiver<DeviceEvent>) -> DeviceEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .expect("channel open")
    }

    #[tokio::test]
    async fn hotplug_two_scanners_interleaved_and_one_unplugged() {
        let fake = FakeInput::new();
        // A device present before start-up and one plugged later, both matching by id; a
        // keyboard that matches nothing.
        let mut a = fake.plug("event3", "Newland Scanner", (0x1eab, 0x1a03));
        let _kbd = fake.plug("event1", "AT Keyboard", (0x0001, 0x0001));
        let cfg = fake.cfg(vec![
            (m(None, Some("1eab:1a03")), Role::Scanner),
            (m(Some("Numeric Keypad"), None), Role::Keypad),
        ]);
        let (tx, mut rx) = mpsc::channel(64);
        let watcher = tokio::spawn(run_input_devices(cfg, tx));

        let ev = next(&mut rx).await;
        assert!(
            matches!(&ev, DeviceEvent::DeviceAdded { source, kind: DeviceKind::WedgeScanner, detail }
                if &*source.0 == "s:event3" && detail.contains("1eab:1a03")),
            "{ev:?}"
        );
        let mut b = fake.plug("event7", "Newland Scanner", (0x1eab, 0x1a03));
        let ev = next(&mut rx).await;
        assert!(matches!(&ev, DeviceEvent::DeviceAdded { source, .. } if &*source.0 == "s:event7"));
        let mut k = fake.plug("event9", "USB Numeric Keypad", (0x04d9, 0x1203));
        let ev = next(&mut rx).await;
        assert!(matches!(
            &ev,
            DeviceEvent::DeviceAdded {
                kind: DeviceKind::Keypad,
                ..
            }
        ));

        // Interleave the two scanners' bytes at record boundaries and at odd offsets.
        let ca = typed("111122223333", KEY_ENTER);
        let cb = typed("999988887777", KEY_KPENTER);
        let (mut ia, mut ib) = (ca.chunks(EVENT_SIZE * 3), cb.chunks(EVENT_SIZE * 2 + 5));
        loop {
            let (x, y) = (ia.next(), ib.next());
            if x.is_none() && y.is_none() {
                break;
            }
            if let Some(x) = x {
                a.write_all(x).unwrap();
            }
            if let Some(y) = y {
                b.write_all(y).unwrap();
            }
        }
        k.write_all(&InputEvent::key(0, KEY_KP5, 1).to_bytes())
            .unwrap();

        let mut codes = Vec::new();
        let mut keys = Vec::new();
        while codes.len() < 2 || keys.is_empty() {
            match next(&mut rx).await {
                DeviceEvent::Scanned { source, code, .. } => {
                    codes.push((source.0.to_string(), code.expose().to_owned()))
                }
                DeviceEvent::Key { key, .. } => keys.push(key),
                other => panic!("unexpected {other:?}"),
            }
        }
        codes.sort();
        assert_eq!(
            codes,
            [
                ("s:event3".to_string(), "111122223333".to_string()),
                ("s:event7".to_string(), "999988887777".to_string())
            ]
        );
        assert_eq!(keys, [crate::device::KeypadKey::Digit(5)]);

        // Unplug event7 half-way through a code: the half code is discarded, the device
        // removed; event3 keeps working.
        b.write_all(&typed("5555", KEY_ENTER)[..EVENT_SIZE * 3])
            .unwrap();
        drop(b);
        std::fs::remove_file(fake.root.path().join("dev/input/event7")).unwrap();
        let ev = next(&mut rx).await;
        assert!(
            matches!(&ev, DeviceEvent::ScanDiscarded { source, .. } if &*source.0 == "s:event7"),
            "{ev:?}"
        );
        let ev = next(&mut rx).await;
        assert!(
            matches!(&ev, DeviceEvent::DeviceRemoved { source, .. } if &*source.0 == "s:event7"),
            "{ev:?}"
        );
        a.write_all(&typed("424242424242", KEY_ENTER)).unwrap();
        let ev = next(&mut rx).await;
        assert!(
            matches!(&ev, DeviceEvent::Scanned { code, .. } if code.expose() == "424242424242")
        );

        // Replug under the same node name: picked up again.
        let mut b2 = fake.plug("event7", "Newland Scanner", (0x1eab, 0x1a03));
        let ev = next(&mut rx).await;
        assert!(matches!(&ev, DeviceEvent::DeviceAdded { source, .. } if &*source.0 == "s:event7"));
        b2.write_all(&typed("123412341234", KEY_ENTER)).unwrap();
        let ev = next(&mut rx).await;
        assert!(
            matches!(&ev, DeviceEvent::Scanned { code, .. } if code.expose() == "123412341234")
        );

        drop(rx);
        let _ = tokio::time::timeout(Duration::from_secs(2), watcher).await;
    }
}
