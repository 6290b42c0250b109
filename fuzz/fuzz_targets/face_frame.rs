#![no_main]
//! Bytes from the face module's serial link: the resynchronising frame decoder, fed in the
//! chunks the first byte describes, with what the link does with each frame (ACK bookkeeping,
//! JSON payloads).

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use payterm::device::face::frame::{Decoded, FrameDecoder, MsgType, Reliable, encode};
use payterm::device::face::msg;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut d = FrameDecoder::default();
    let mut rel = Reliable::new(Duration::from_millis(200), 3);
    let now = Instant::now();
    for part in rest.chunks(chunk) {
        d.push(part);
        while let Some(x) = d.next_decoded() {
            let Decoded::Frame(f) = x else { continue };
            let _ = rel.on_incoming(f.ty, f.seq);
            let _ = rel.on_ack(f.seq);
            // The payloads the link reads, as it reads them (typed JSON).
            let p = &f.payload;
            let _ = serde_json::from_slice::<msg::Hello>(p).is_ok()
                || serde_json::from_slice::<msg::Rawdata>(p).is_ok()
                || serde_json::from_slice::<msg::Progress>(p).is_ok()
                || serde_json::from_slice::<msg::FaceResult>(p).is_ok()
                || serde_json::from_slice::<msg::FaceError>(p).is_ok()
                || serde_json::from_slice::<msg::Nak>(p).is_ok();
            // Whatever was decoded encodes back to a frame the decoder accepts.
            let ty = MsgType::from_byte(f.ty.to_byte());
            if let Some(bytes) = encode(ty, f.seq, &f.payload) {
                let mut again = FrameDecoder::default();
                again.push(&bytes);
                assert!(matches!(again.next_decoded(), Some(Decoded::Frame(_))));
            }
        }
    }
    let _ = rel.poll(now + Duration::from_secs(1));
});
