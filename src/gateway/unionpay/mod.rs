//! UnionPay 全渠道 (ACP) protocol layer: certificates, signing, reply verification, sensitive-field
//! encryption, typed transaction builders, reply classification and reconciliation files.
//!
//! Pure code: it turns typed requests into signed form fields and raw replies into verified,
//! classified values. It performs no I/O except reading key/certificate files on request, never
//! reads the clock (time is always a parameter) and never draws randomness it was not given
//! (RSA padding takes the caller's RNG). The transport, journal and state machine live elsewhere.

pub mod cert;
pub(crate) mod der;
pub mod pkcs12;

pub use cert::{CertError, Certificate, MerchantKey, Name};
