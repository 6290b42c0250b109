//! Entry points for the fuzz targets in `fuzz/`, for checks that are otherwise private to an
//! HTTP handler or only reachable after a signature verified. Not an API: nothing else calls
//! these, and they may change with the targets.

use crate::core::authcode::CodeRule;
use crate::core::money::Amount;
#[cfg(fuzzing)]
use crate::gateway::unionpay::txn::{self, TxnKind, Verdict};
#[cfg(fuzzing)]
use crate::gateway::unionpay::{AcpMessage, VerifiedMessage};

/// The ECR API's request bodies, checked as their handlers check them before any journal look-up.
/// Returns how many of the three body kinds were accepted.
pub fn ecr_bodies(body: &[u8], max: Amount, rules: &[CodeRule]) -> usize {
    usize::from(crate::ecr::sale_request(body, max, rules).is_ok())
        + usize::from(crate::ecr::refund_request(body).is_ok())
        + usize::from(crate::ecr::contract_charge_request(body, max).is_ok())
}

/// Classifies `m` as though its signature had verified: the fuzzer cannot forge one, and the
/// classification is what reads a believed reply's fields. Only in fuzz builds, so that
/// production code has no way to call a message verified.
#[cfg(fuzzing)]
pub fn acp_classify(m: AcpMessage, kind: TxnKind) -> (Verdict, Verdict) {
    let v = VerifiedMessage::assume_verified(m);
    (
        txn::classify_reply(kind, &v),
        txn::classify_notification(&v),
    )
}
