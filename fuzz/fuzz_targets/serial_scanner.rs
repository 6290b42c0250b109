#![no_main]
//! Bytes from a serial barcode scanner through the framer, with the framer's settings and the
//! arrival times drawn from the input: prefix, suffix mode, AIM stripping, read sizes and gaps.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use payterm::device::board::{FlowControl, Parity, SerialScannerConfig, Suffix};
use payterm::device::serial::SerialFramer;

fuzz_target!(|data: &[u8]| {
    let [mode, chunk, gap, rest @ ..] = data else {
        return;
    };
    let suffix = [Suffix::Cr, Suffix::Lf, Suffix::Crlf, Suffix::None][usize::from(mode & 3)];
    let cfg = SerialScannerConfig {
        name: "fuzz".into(),
        path: String::new(),
        baud: 9600,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 1,
        flow: FlowControl::None,
        prefix: if mode & 4 != 0 {
            "\u{2}".into()
        } else {
            String::new()
        },
        suffix,
        idle_ms: 80,
        max_len: if mode & 8 != 0 { 8 } else { 64 },
        strip_aim: mode & 16 != 0,
        reopen_ms: 50,
    };
    let mut f = SerialFramer::new(&cfg);
    let mut now = Instant::now();
    let step = Duration::from_millis(u64::from(*gap));
    for part in rest.chunks(usize::from(*chunk).max(1)) {
        let _ = f.feed(part, now);
        now += step;
        if let Some(d) = f.deadline()
            && d <= now
        {
            let _ = f.on_idle(now);
        }
    }
    let _ = f.on_idle(now + Duration::from_secs(1));
    let _ = f.discard_partial("end of input");
});
