//! The web mirror in a real browser: headless Chromium loads the page, a person's clicks on the
//! keypad and a typed payment code reach the terminal, and the screen the page shows changes to
//! exactly the frame the terminal drew.
//!
//! Chromium is driven through the DevTools protocol over `--remote-debugging-pipe` (JSON
//! messages separated by NUL on fds 3 and 4), so no WebSocket client is needed. The server binds
//! 127.0.0.1:0 and everything stops by itself within the time limits below.
//!
//! Runs when a Chromium is found (`PAYTERM_CHROMIUM`, else `chromium`, `chromium-browser` or
//! `google-chrome` on PATH). With `PAYTERM_BROWSER_TEST=1` a missing browser is a failure instead
//! of a skip, which is how CI runs it.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use payterm::ui::{
    Display, Frame, Key, Locale, MirrorPublisher, Renderer, Screen, StatusBar, UiInput, Wallet,
    mirror_channel, web_router,
};
use serde_json::{Value, json};

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn find_chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PAYTERM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The fake terminal loop: keypad digits build an amount, a code pays it.
struct FakeTerminal {
    renderer: Renderer,
    display: MirrorPublisher,
    status: StatusBar,
    input: String,
    screen: Screen,
}

impl FakeTerminal {
    fn show(&mut self, screen: Screen) {
        self.screen = screen;
        let damage = self.renderer.render(&self.screen, &self.status);
        self.display
            .flush(self.renderer.frame(), &damage)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn handle(&mut self, input: UiInput) {
        match input {
            UiInput::Key(Key::Digit(d)) => {
                self.input.push(char::from(b'0' + d));
                self.show(Screen::AmountEntry {
                    input: self.input.clone(),
                });
            }
            UiInput::Key(_) => {}
            UiInput::Code(code) => {
                let yuan: u64 = self.input.parse().unwrap_or(0);
                let wallet = if code.starts_with('1') {
                    Wallet::WeChat
                } else {
                    Wallet::Alipay
                };
                self.show(Screen::Paid {
                    amount_fen: yuan * 100,
                    wallet,
                });
            }
        }
    }
}

/// What the page computes over the pixels it shows; the same function in Rust over a frame.
const HASH_JS: &str = r#"(() => {
  const img = document.getElementById('screen');
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let h = 2166136261 >>> 0;
  for (let i = 0; i < d.length; i += 4) {
    for (let k = 0; k < 3; k++) { h = Math.imul(h ^ d[i + k], 16777619) >>> 0; }
  }
  return { shown: Number(img.dataset.shown), hash: h, w: c.width, h: c.height };
})()"#;

fn frame_hash(f: &Frame) -> u64 {
    let mut h: u32 = 2166136261;
    for b in f.to_rgb888() {
        h = (h ^ b as u32).wrapping_mul(16777619);
    }
    h as u64
}

/// A DevTools session over the pipe pair.
struct Cdp {
    to_browser: std::fs::File,
    from_browser: std_mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap_or_default();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("writing to chromium: {e}"));
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer from chromium to {method}: {e}"));
            if v["id"] == json!(id) {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("page script failed: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// A real mouse click in the middle of the element `selector`.
    fn click(&mut self, selector: &str) {
        let r = self.eval(&format!(
            "(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = (r[0].as_f64().unwrap_or(0.0), r[1].as_f64().unwrap_or(0.0));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Waits until the page shows the frame `want_seq` and its pixels hash to `want_hash`.
    fn wait_for_frame(&mut self, want_seq: u64, want_hash: u64) -> Value {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.eval(HASH_JS);
            if last["shown"].as_u64() == Some(want_seq) && last["hash"].as_u64() == Some(want_hash)
            {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the page never showed frame {want_seq} (hash {want_hash}); last seen {last}");
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        if let Some(b64) = r["data"].as_str() {
            let _ = std::fs::write(path, base64_decode(b64));
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn start_chromium(bin: &Path, profile: &Path) -> (KillOnDrop, Cdp) {
    use std::os::fd::AsRawFd;
    let (cmd_r, cmd_w) = pipe();
    let (resp_r, resp_w) = pipe();
    let (a, b) = (cmd_r.as_raw_fd(), resp_w.as_raw_fd());
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-debugging-pipe",
        "--window-size=1200,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The fds are
    // first copied above 10 so dup2 onto 3 and 4 never clobbers one of them.
    unsafe {
        cmd.pre_exec(move || {
            let hi_a = libc::fcntl(a, libc::F_DUPFD, 10);
            let hi_b = libc::fcntl(b, libc::F_DUPFD, 10);
            if hi_a < 0 || hi_b < 0 || libc::dup2(hi_a, 3) < 0 || libc::dup2(hi_b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    drop(cmd_r);
    drop(resp_w);
    let (tx, rx) = std_mpsc::channel();
    let mut reader = std::fs::File::from(resp_r);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(pos) = buf.iter().position(|&c| c == 0) {
                let msg: Vec<u8> = buf.drain(..=pos).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1])
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        }
    });
    let cdp = Cdp {
        to_browser: std::fs::File::from(cmd_w),
        from_browser: rx,
        next_id: 0,
        session: None,
    };
    (KillOnDrop(child), cdp)
}

#[test]
fn web_mirror_in_headless_chromium() {
    let Some(bin) = find_chromium() else {
        if std::env::var("PAYTERM_BROWSER_TEST").is_ok_and(|v| v == "1") {
            panic!(
                "PAYTERM_BROWSER_TEST=1 but no chromium found (install Debian's `chromium` or set PAYTERM_CHROMIUM)"
            );
        }
        eprintln!("skipped: no chromium on PATH (set PAYTERM_BROWSER_TEST=1 to require it)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    // The terminal side: a mirror, a renderer and the fake loop.
    let size = (480, 320);
    let (publisher, frames) = mirror_channel(size);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<UiInput>(16);
    let status = StatusBar {
        merchant: "浏览器测试店".into(),
        time: "09:30".into(),
        online: true,
        unsettled: 0,
    };
    let term = Arc::new(Mutex::new(FakeTerminal {
        renderer: Renderer::new(size, Locale::Zh).unwrap_or_else(|e| panic!("{e}")),
        display: publisher.clone(),
        status,
        input: String::new(),
        screen: Screen::Idle,
    }));
    term.lock()
        .unwrap_or_else(|e| e.into_inner())
        .show(Screen::Idle);
    let received = Arc::new(Mutex::new(Vec::<UiInput>::new()));
    {
        let term = term.clone();
        let received = received.clone();
        rt.spawn(async move {
            while let Some(input) = rx.recv().await {
                received
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(input.clone());
                term.lock().unwrap_or_else(|e| e.into_inner()).handle(input);
            }
        });
    }
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = rt.spawn(async move { axum::serve(listener, web_router(frames, tx)).await });

    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_chromium, mut cdp) = start_chromium(&bin, profile.path());
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-browser");
    let _ = std::fs::create_dir_all(&shots);

    let target = cdp.call(
        "Target.createTarget",
        json!({ "url": format!("http://{addr}/") }),
    );
    let target_id = target["targetId"].as_str().unwrap_or_default().to_string();
    let attached = cdp.call(
        "Target.attachToTarget",
        json!({ "targetId": target_id, "flatten": true }),
    );
    cdp.session = attached["sessionId"].as_str().map(str::to_string);
    assert!(cdp.session.is_some(), "no DevTools session");

    let expect = |term: &Arc<Mutex<FakeTerminal>>| {
        let t = term.lock().unwrap_or_else(|e| e.into_inner());
        (t.display.seq(), frame_hash(t.renderer.frame()))
    };

    // 1. The page shows the idle screen the terminal drew.
    let (seq, hash) = expect(&term);
    let seen = cdp.wait_for_frame(seq, hash);
    assert_eq!(
        (seen["w"].as_u64(), seen["h"].as_u64()),
        (Some(480), Some(320))
    );
    cdp.screenshot(&shots.join("1-idle.png"));

    // 2. Keypad clicks reach the terminal and the amount entry screen appears.
    cdp.click("button[data-key=\"1\"]");
    cdp.click("button[data-key=\"2\"]");
    let deadline = Instant::now() + STEP_TIMEOUT;
    while term.lock().unwrap_or_else(|e| e.into_inner()).input != "12" {
        assert!(Instant::now() < deadline, "keypad clicks never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (seq2, hash2) = expect(&term);
    assert_ne!(hash2, hash);
    cdp.wait_for_frame(seq2, hash2);
    cdp.screenshot(&shots.join("2-amount.png"));

    // 3. A code typed into the field and sent with Enter pays; the page shows "paid".
    let code = "134567890123456789";
    cdp.eval("document.getElementById('code').focus()");
    cdp.call("Input.insertText", json!({ "text": code }));
    for kind in ["keyDown", "keyUp"] {
        cdp.call(
            "Input.dispatchKeyEvent",
            json!({ "type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r" }),
        );
    }
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !matches!(
        term.lock().unwrap_or_else(|e| e.into_inner()).screen,
        Screen::Paid { .. }
    ) {
        assert!(Instant::now() < deadline, "the typed code never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (seq3, hash3) = expect(&term);
    cdp.wait_for_frame(seq3, hash3);
    cdp.screenshot(&shots.join("3-paid.png"));
    assert_eq!(
        term.lock().unwrap_or_else(|e| e.into_inner()).screen,
        Screen::Paid {
            amount_fen: 1200,
            wallet: Wallet::WeChat
        }
    );
    assert_eq!(
        *received.lock().unwrap_or_else(|e| e.into_inner()),
        vec![
            UiInput::Key(Key::Digit(1)),
            UiInput::Key(Key::Digit(2)),
            UiInput::Code(code.into())
        ]
    );
    // The field is cleared after sending, so the code does not linger on the page.
    assert_eq!(cdp.eval("document.getElementById('code').value"), json!(""));

    let _ = cdp.call("Browser.close", json!({}));
    server.abort();
    eprintln!("screenshots in {}", shots.display());
}
