//! UnionPay 全渠道 (ACP) protocol layer: certificates, signing, reply verification, sensitive-field
//! encryption, typed transaction builders, reply classification and reconciliation files.
//!
//! Pure code: it turns typed requests into signed form fields and raw replies into verified,
//! classified values. `gateway` puts it on the wire as the engine's [`crate::gateway::Gateway`]
//! (the only part that sends, through the transport) and `cli` holds `payterm acp verify` and
//! `payterm reconcile`. The rest performs no network I/O, reads files only when asked to load a key or
//! certificate, never reads the clock (time is always a parameter) and never draws randomness it
//! was not given (RSA padding and blinding take the caller's RNG). The transport, journal and
//! state machine live elsewhere.

pub mod cert;
pub mod cli;
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
    /// `shared/vectors`, beside the project root (as in CI).
    pub(crate) fn vectors_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors")
    }
}
