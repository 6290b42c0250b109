#![no_main]
//! The merchant's signing key file (PKCS#12, `sign_pfx`): the SDK test password, as the
//! real files use, so that the MAC and the decryption are reached on the seeds.

use libfuzzer_sys::fuzz_target;
use payterm::gateway::unionpay::{MerchantKey, pkcs12};

fuzz_target!(|data: &[u8]| {
    let _ = pkcs12::parse(data, "000000");
    let _ = MerchantKey::from_pkcs12(data, "000000");
    let _ = pkcs12::parse(data, "");
});
