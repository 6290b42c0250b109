//! The receipt printer: opens the board's `[printer]` (a USB printer node or a serial port),
//! asks its status with DLE EOT 1 (offline) and DLE EOT 4 (paper roll), and writes receipt
//! bytes that `receipt::layout` made.
//!
//! Every failure is a [`PrinterError`] value with a time limit on each wait: a printer out of
//! paper, offline or silent must never panic, nor hold up the sale whose receipt it is (the
//! payment is already journaled; a receipt can be printed again with `payterm receipt`). It does
//! not lay out receipts and knows nothing of payments.

use std::path::Path;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::DeviceError;
use super::board::{FlowControl, Parity, PrinterConfig};
use super::tty::FdStream;

#[derive(Debug, Error)]
pub enum PrinterError {
    #[error("the printer is out of paper{}", if *.printed { " (the receipt was sent; check it printed whole)" } else { "; nothing was printed" })]
    PaperOut { printed: bool },
    #[error("the printer is offline (cover open, or a fault){}", if *.printed { " after the receipt was sent" } else { "; nothing was printed" })]
    Offline { printed: bool },
    #[error("the printer did not answer the {what} status request within {ms} ms")]
    NoAnswer { what: &'static str, ms: u64 },
    #[error("the printer answered {0:#04x} to a status request, which is not a status byte")]
    BadStatus(u8),
    #[error("printer I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot open the printer: {0}")]
    Open(#[from] DeviceError),
    #[error("the board's printer is \"sim\": there is no device to print on")]
    Simulated,
}

/// What the printer said about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrinterStatus {
    pub offline: bool,
    pub paper_out: bool,
    pub paper_near_end: bool,
}

const DLE_EOT_PRINTER: [u8; 3] = [0x10, 0x04, 1];
const DLE_EOT_PAPER: [u8; 3] = [0x10, 0x04, 4];

/// A status byte has bits 1 and 4 set and bits 0 and 7 clear, whichever status was asked.
fn check_fixed(b: u8) -> Result<u8, PrinterError> {
    if b & 0x93 == 0x12 {
        Ok(b)
    } else {
        Err(PrinterError::BadStatus(b))
    }
}

/// Parses the answers to DLE EOT 1 and DLE EOT 4.
pub fn parse_status(printer: u8, paper: u8) -> Result<PrinterStatus, PrinterError> {
    let printer = check_fixed(printer)?;
    let paper = check_fixed(paper)?;
    Ok(PrinterStatus {
        offline: printer & 0x08 != 0,
        paper_out: paper & 0x60 != 0,
        paper_near_end: paper & 0x0c != 0,
    })
}

async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    port: &mut S,
    request: [u8; 3],
    what: &'static str,
    timeout: Duration,
) -> Result<u8, PrinterError> {
    port.write_all(&request).await?;
    port.flush().await?;
    let mut b = [0u8; 1];
    match tokio::time::timeout(timeout, port.read_exact(&mut b)).await {
        Ok(Ok(_)) => Ok(b[0]),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(PrinterError::NoAnswer {
            what,
            ms: timeout.as_millis() as u64,
        }),
    }
}

/// Asks both statuses, each within `timeout`.
pub async fn status<S: AsyncRead + AsyncWrite + Unpin>(
    port: &mut S,
    timeout: Duration,
) -> Result<PrinterStatus, PrinterError> {
    let printer = ask(port, DLE_EOT_PRINTER, "printer", timeout).await?;
    let paper = ask(port, DLE_EOT_PAPER, "paper", timeout).await?;
    parse_status(printer, paper)
}

fn refuse(s: PrinterStatus, printed: bool) -> Result<PrinterStatus, PrinterError> {
    if s.offline {
        Err(PrinterError::Offline { printed })
    } else if s.paper_out {
        Err(PrinterError::PaperOut { printed })
    } else {
        Ok(s)
    }
}

/// Prints one receipt: the status first (nothing is sent to a printer out of paper or offline,
/// since half a receipt is worse than none), then the bytes, then the status again, which
/// says whether the paper ran out on the way.
pub async fn print<S: AsyncRead + AsyncWrite + Unpin>(
    port: &mut S,
    receipt: &[u8],
    timeout: Duration,
) -> Result<PrinterStatus, PrinterError> {
    refuse(status(port, timeout).await?, false)?;
    // The write has a limit too: a printer holding flow control off must not block the caller.
    let write_limit = timeout + Duration::from_millis(receipt.len() as u64);
    match tokio::time::timeout(write_limit, async {
        port.write_all(receipt).await?;
        port.flush().await
    })
    .await
    {
        Ok(r) => r?,
        Err(_) => {
            return Err(PrinterError::NoAnswer {
                what: "receipt write",
                ms: write_limit.as_millis() as u64,
            });
        }
    }
    refuse(status(port, timeout).await?, true)
}

/// Opens the board's printer: a serial port when `baud` is set, else the device node as is.
/// Must be called inside a tokio runtime.
pub fn open(cfg: &PrinterConfig) -> Result<FdStream, PrinterError> {
    if cfg.device == "sim" {
        return Err(PrinterError::Simulated);
    }
    if let Some(baud) = cfg.baud {
        return Ok(super::serial::open_port(
            &cfg.device,
            baud,
            8,
            Parity::None,
            1,
            FlowControl::None,
        )?);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(Path::new(&cfg.device))
        .map_err(|source| DeviceError::Io {
            path: cfg.device.clone(),
            source,
        })?;
    Ok(FdStream::new(std::os::fd::OwnedFd::from(file))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::board::ReceiptCopy;
    use crate::device::pty::{open_pty, open_tty_raw};
    use crate::receipt::{self, Paper, ReceiptData, ReceiptRefund, Symbol};

    fn sample() -> ReceiptData {
        ReceiptData {
            merchant: "测试商户".into(),
            terminal: "T01".into(),
            time: "2026-11-22 10:00:00".into(),
            order_id: "T0120261122100000001".into(),
            out_trade_no: "T0120261122100000001A1".into(),
            wallet: Some(crate::core::authcode::Wallet::Alipay),
            amount_fen: 1200,
            code_mask: Some("2845**********6789".into()),
            chan_trade_no: Some("2026112222001234567890".into()),
            state: "PAID".into(),
            refunds: vec![ReceiptRefund {
                out_refund_no: "R1".into(),
                amount_fen: 300,
                done: true,
            }],
        }
    }

    /// The test's printer on the pty's master end: answers each status request with the next
    /// scripted (printer, paper) pair and keeps every other byte as the print job.
    async fn play_printer(
        mut dev: FdStream,
        answers: Vec<(u8, u8)>,
        job_len: usize,
    ) -> (Vec<u8>, FdStream) {
        let mut job = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut answers = answers.into_iter();
        let mut paper_answer = None;
        let mut buf = [0u8; 512];
        let mut asked = 0;
        let total_asks = 2 * answers.len();
        while asked < total_asks || job.len() < job_len {
            let n = dev.read(&mut buf).await.expect("printer read");
            pending.extend_from_slice(&buf[..n]);
            loop {
                let Some(at) = pending.windows(2).position(|w| w == [0x10, 0x04]) else {
                    // Keep a trailing DLE: the rest of its request may be in the next read.
                    let keep = usize::from(pending.last() == Some(&0x10));
                    job.extend(pending.drain(..pending.len() - keep));
                    break;
                };
                if pending.len() < at + 3 {
                    job.extend(pending.drain(..at));
                    break;
                }
                job.extend(pending.drain(..at));
                let n = pending[2];
                pending.drain(..3);
                let reply = if n == 1 {
                    let (p, q) = answers.next().unwrap_or((0x12, 0x12));
                    paper_answer = Some(q);
                    p
                } else {
                    paper_answer.take().unwrap_or(0x12)
                };
                dev.write_all(&[reply]).await.expect("printer answers");
                asked += 1;
            }
        }
        (job, dev)
    }

    #[tokio::test]
    async fn the_printer_gets_the_receipt_and_paper_out_is_an_error_value() {
        let pty = open_pty().unwrap();
        let (master, slave_path, _keep) = pty.into_parts();
        let mut port = open_tty_raw(&slave_path).unwrap();
        let bytes = receipt::layout(&sample(), Paper::Mm58, ReceiptCopy::Customer, Symbol::Qr);
        // Ready before; out of paper after the receipt went out.
        let printer = tokio::spawn(play_printer(
            master,
            vec![(0x12, 0x12), (0x12, 0x12 | 0x60)],
            bytes.len(),
        ));
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            print(&mut port, &bytes, Duration::from_millis(500)),
        )
        .await
        .expect("the driver never blocks");
        assert!(
            matches!(r, Err(PrinterError::PaperOut { printed: true })),
            "{r:?}"
        );
        let (job, master) = printer.await.unwrap();
        assert_eq!(job, bytes, "the printer got exactly the receipt");
        let lines = receipt::decode(&job).unwrap();
        for want in [
            "测试商户",
            "客户联",
            "支付宝",
            "2845**********6789",
            "[CUT]",
        ] {
            assert!(
                lines.iter().any(|l| l.contains(want)),
                "{want} in {lines:?}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("实收") && l.ends_with("￥9.00"))
        );

        // Out of paper before printing: refused, and nothing of the receipt is sent.
        let printer = tokio::spawn(play_printer(master, vec![(0x12, 0x72)], 0));
        let r = print(&mut port, &bytes, Duration::from_millis(500)).await;
        assert!(
            matches!(r, Err(PrinterError::PaperOut { printed: false })),
            "{r:?}"
        );
        let (job, master) = printer.await.unwrap();
        assert!(job.is_empty(), "{} bytes printed on no paper", job.len());

        // Offline (cover open) is told apart, and a silent printer is a timeout, not a hang.
        let printer = tokio::spawn(play_printer(master, vec![(0x1a, 0x12)], 0));
        let r = print(&mut port, &bytes, Duration::from_millis(500)).await;
        assert!(
            matches!(r, Err(PrinterError::Offline { printed: false })),
            "{r:?}"
        );
        let (_job, _master) = printer.await.unwrap();
        let t = std::time::Instant::now();
        let r = print(&mut port, &bytes, Duration::from_millis(200)).await;
        assert!(matches!(r, Err(PrinterError::NoAnswer { .. })), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn status_bytes_are_checked() {
        assert_eq!(parse_status(0x12, 0x12).unwrap(), PrinterStatus::default());
        let s = parse_status(0x12, 0x1e).unwrap();
        assert!(s.paper_near_end && !s.paper_out);
        assert!(matches!(
            parse_status(0xff, 0x12),
            Err(PrinterError::BadStatus(0xff))
        ));
    }
}
