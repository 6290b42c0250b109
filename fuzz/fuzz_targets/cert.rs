#![no_main]
//! X.509 certificates as UnionPay serves them (PEM or DER: `signPubKeyCert`, `encryptPubKeyCert`,
//! the chain files), then the checks the verifier makes of a parsed one.

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use payterm::gateway::unionpay::Certificate;
use payterm::sandbox::acp::{SANDBOX_MIDDLE_CERT, SANDBOX_ROOT_CERT};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Certificate::from_pem_or_der(data) else {
        return;
    };
    let _ = (
        c.serial_decimal(),
        c.subject().to_string(),
        c.issuer().to_string(),
    );
    let _ = (c.subject().common_name(), c.subject().org_units());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let _ = c.check_validity(now);
    for issuer in [SANDBOX_MIDDLE_CERT, SANDBOX_ROOT_CERT] {
        if let Ok(i) = Certificate::from_pem(issuer) {
            let _ = c.check_issued_by(&i);
            let _ = i.check_issued_by(&c);
        }
    }
});
