#![no_main]
//! The 76 reply's `fileContent` and the ZM records inside: the archive layers first, then the
//! fixed-width lines directly (most inputs would never get past the CRC otherwise).

use libfuzzer_sys::fuzz_target;
use payterm::gateway::unionpay::recon;

fuzz_target!(|data: &[u8]| {
    let _ = recon::parse_zm(data);
    let _ = recon::unzip(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = recon::zm_records_from_file_content(text);
    }
});
