#![no_main]
//! ACP synchronous replies (`k=v&…` raw bodies) and back notifications (form bodies): parse,
//! verify against the sandbox's chain (test owner rules), and classify as if verified.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use payterm::gateway::unionpay::txn::TxnKind;
use payterm::gateway::unionpay::{
    AcpMessage, Certificate, TrustConfig, verify_notification_report, verify_report,
};
use payterm::sandbox::acp::{SANDBOX_MIDDLE_CERT, SANDBOX_ROOT_CERT};

fn trust() -> &'static TrustConfig {
    static T: OnceLock<TrustConfig> = OnceLock::new();
    T.get_or_init(|| {
        TrustConfig::test(
            Certificate::from_pem(SANDBOX_MIDDLE_CERT).expect("sandbox middle"),
            Certificate::from_pem(SANDBOX_ROOT_CERT).expect("sandbox root"),
        )
    })
}

const KINDS: [TxnKind; 4] = [
    TxnKind::QrConsume,
    TxnKind::Query,
    TxnKind::Refund,
    TxnKind::FileTransfer,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let report = if sel & 1 == 0 {
        verify_report(text, trust(), now)
    } else {
        verify_notification_report(text, trust(), now)
    };
    let _ = (report.passed(), report.failure(), report.to_string());
    let parsed = if sel & 1 == 0 {
        AcpMessage::parse_raw(text)
    } else {
        AcpMessage::parse_form(text)
    };
    if let Ok(m) = parsed {
        let _ = (m.to_raw(), m.string_to_sign());
        let _ = payterm::fuzzing::acp_classify(m, KINDS[usize::from(sel >> 1) % KINDS.len()]);
    }
});
