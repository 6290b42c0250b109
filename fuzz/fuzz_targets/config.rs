#![no_main]
//! The configuration file: TOML into `Config` and every check of `Config::parse`. The path is
//! in a folder that does not exist, so the checks that look at key files find none and report
//! it; nothing is read or written.

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use payterm::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::parse(text, Path::new("/nonexistent-payterm-fuzz/payterm.toml")) {
        let _ = (
            c.max_amount(),
            c.max_uncertain(),
            c.code_rules(),
            c.journal_path(),
        );
    }
});
