#![no_main]
//! Bytes from an evdev node (`struct input_event` records) through the record splitter, the
//! keyboard-wedge decoder of a USB scanner and the keypad mapping.

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use payterm::device::input::{RecordSplitter, WedgeConfig, WedgeDecoder, key_name, keypad_key};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut split = RecordSplitter::default();
    let mut dec = WedgeDecoder::new(WedgeConfig {
        inter_key: Duration::from_millis(100),
        max_len: if chunk & 0x80 != 0 { 8 } else { 64 },
    });
    let mut events = Vec::new();
    for part in rest.chunks(usize::from(chunk & 0x7f).max(1)) {
        split.push(part, &mut events);
        for ev in events.drain(..) {
            let _ = keypad_key(ev);
            let _ = key_name(ev.code);
            let _ = dec.feed(ev);
        }
    }
    let _ = dec.discard("end of input");
});
