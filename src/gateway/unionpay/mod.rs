//! UnionPay 全渠道 (ACP) protocol layer: certificates, signing, reply verification, sensitive-field
//! encryption, typed transaction builders, reply classification and reconciliation files.
//!
//! The protocol files are pure code: they turn typed requests into signed form fields and raw
//! replies into verified, classified values, perform no network I/O, read files only when asked
//! to load a key or certificate, never read the clock (time is always a parameter) and never draw
//! randomness they were not given. `gateway` puts them on the wire as the engine's
//! [`crate::gateway::Gateway`] (sending only through the transport, recording follow-up
//! identities before sending them). `payterm acp verify` and `payterm reconcile` are the command
//! line's (src/bin/payterm/commands/); the journal and the state machine live elsewhere.

pub mod cert;
pub(crate) mod der;
pub mod gateway;
pub mod message;
pub mod pkcs12;
pub mod recon;
pub mod sensitive;
pub mod txn;
pub mod verify;

pub use cert::{CertError, Certificate, MerchantKey, Name};
pub use gateway::{
    AcpConfig, AcpError, AcpGateway, AcpKeys, CertUpdateOutcome, FollowUp, FollowUpState,
    OwnerMode, ReconFile, TxnResult,
};
pub use message::{AcpMessage, FormError, SignError, Signer};
pub use txn::{
    AcpRequest, AcpTxn, BuildError, Endpoint, Merchant, OrigRef, SignedRequest, TxnKind, TxnTime,
    Verdict,
};
pub use verify::{
    OwnerRule, Step, TrustConfig, VerifiedMessage, VerifyReport, verify_message,
    verify_notification_report, verify_report,
};

#[cfg(test)]
pub(crate) mod tests {
    /// `tests/vectors` in the repository (a copy of the research's vectors, with provenance).
    pub(crate) fn vectors_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
    }
}
