//! `payterm scan-test`: for installers. Starts the board's scanners and keypad exactly as the
//! daemon does and prints every code (masked), every discard and every plug/unplug, with the key
//! or byte events that made each code. It reads devices only; nothing is paid.

use std::future::Future;
use std::io::Write;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{BoardProfile, DeviceError, DeviceEvent, start_input_devices};

/// What a scan-test session saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanTestSummary {
    pub codes: usize,
    pub discarded: usize,
    pub keys: usize,
}

/// Runs until `stop` completes (Ctrl-C in the CLI), printing as events arrive.
pub async fn scan_test<W, F>(
    board: &BoardProfile,
    mut out: W,
    stop: F,
) -> Result<ScanTestSummary, DeviceError>
where
    W: Write + Send,
    F: Future<Output = ()> + Send,
{
    let io = |source| DeviceError::Io {
        path: "output".into(),
        source,
    };
    let (tx, mut rx) = mpsc::channel(64);
    let started = start_input_devices(board, tx);
    writeln!(
        out,
        "scan-test on board \"{}\": {} scanner(s){}. Scan a code; stop with Ctrl-C.",
        board.name,
        board.scanners.len(),
        if board.keypad.is_some() {
            " and a keypad"
        } else {
            ""
        }
    )
    .map_err(io)?;
    for s in &started.sim_scanners {
        writeln!(
            out,
            "  simulated scanner: write codes into the pty behind {}",
            s.slave_path.display()
        )
        .map_err(io)?;
    }
    let t0 = Instant::now();
    let mut summary = ScanTestSummary::default();
    tokio::pin!(stop);
    loop {
        let ev = tokio::select! {
            _ = &mut stop => break,
            ev = rx.recv() => match ev { Some(ev) => ev, None => break },
        };
        let t = t0.elapsed().as_secs_f64();
        print_event(&mut out, t, &ev, &mut summary).map_err(io)?;
        out.flush().map_err(io)?;
    }
    for task in started.tasks {
        task.abort();
    }
    writeln!(
        out,
        "{} code(s), {} discarded, {} keypad key(s).",
        summary.codes, summary.discarded, summary.keys
    )
    .map_err(io)?;
    Ok(summary)
}

/// One event as scan-test lines. Codes appear only masked.
pub fn print_event(
    out: &mut impl Write,
    t: f64,
    ev: &DeviceEvent,
    summary: &mut ScanTestSummary,
) -> std::io::Result<()> {
    match ev {
        DeviceEvent::Scanned {
            source,
            code,
            trace,
        } => {
            summary.codes += 1;
            writeln!(
                out,
                "[{t:8.3}s] code     {source}  {code}  ({} chars, {} ms)",
                code.len(),
                trace.took_ms
            )?;
            for step in &trace.steps {
                writeln!(out, "                       {step}")?;
            }
        }
        DeviceEvent::ScanDiscarded { source, reason } => {
            summary.discarded += 1;
            writeln!(out, "[{t:8.3}s] discard  {source}  {reason}")?;
        }
        DeviceEvent::Key { source, key } => {
            summary.keys += 1;
            writeln!(out, "[{t:8.3}s] key      {source}  {key:?}")?;
        }
        DeviceEvent::DeviceAdded {
            source,
            kind,
            detail,
        } => writeln!(out, "[{t:8.3}s] added    {source}  {kind:?}: {detail}")?,
        DeviceEvent::DeviceRemoved {
            source,
            kind,
            reason,
        } => writeln!(out, "[{t:8.3}s] removed  {source}  {kind:?}: {reason}")?,
        DeviceEvent::Face(f) => writeln!(out, "[{t:8.3}s] face     {f:?}")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::board::parse_board;
    use std::sync::{Arc, Mutex};

    /// A Write that the test can read while scan_test still owns it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn prints_masked_codes_and_their_events_from_a_serial_scanner() {
        let pty = crate::device::pty::open_pty().unwrap();
        let (mut master, slave, _keep) = pty.into_parts();
        let board = parse_board(&format!(
            "name='t'\n[display]\nkind='png'\nwidth=320\nheight=240\n[[scanner]]\nkind='serial'\nname='counter'\npath='{}'\nsuffix='crlf'\nidle_ms=400\n",
            slave.display()
        ))
        .unwrap();
        let out = Shared::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn({
            let out = out.clone();
            async move {
                scan_test(&board, out, async {
                    let _ = stop_rx.await;
                })
                .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        use tokio::io::AsyncWriteExt;
        master.write_all(b"1345678901").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        master.write_all(b"23456789\r\n\x01\x02\r\n").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        stop_tx.send(()).unwrap();
        let summary = run.await.unwrap().unwrap();
        assert_eq!(summary.codes, 1);
        assert_eq!(summary.discarded, 1);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("added    counter"), "{text}");
        assert!(
            text.contains("code     counter  1345**********6789  (18 chars"),
            "{text}"
        );
        assert!(text.contains("read 10 bytes"), "{text}");
        assert!(text.contains("suffix CRLF"), "{text}");
        assert!(text.contains("garbage"), "{text}");
        assert!(!text.contains("134567890123456789"), "{text}");
    }
}
