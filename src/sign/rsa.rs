//! RSA primitives for UnionPay ACP: PKCS#1 v1.5 signatures, verification and field encryption.
//!
//! Owns the raw RSA operations and nothing about ACP strings or certificates (those live in
//! `gateway::unionpay`). Rules:
//! - SHA-256 signing (ACP 5.1.0) uses `ring`, as DESIGN.md §3 requires for private-key work.
//! - Verification (SHA-1 and SHA-256) uses `ring`'s verification algorithms, the SHA-1 one being
//!   its `..._FOR_LEGACY_USE_ONLY` variant because UnionPay's whole chain is SHA-1 signed.
//! - Public-key encryption of sensitive fields uses the `rsa` crate (public-key work only).
//! - Two private-key operations `ring` cannot do use the `rsa` crate, with blinding and a caller's
//!   RNG: PKCS#1 v1.5 *decryption* of encrypted reply fields, and SHA-1 signing for the legacy
//!   5.0.0 protocol version (ring 0.17 exposes no SHA-1 signing encoding). RUSTSEC-2023-0071
//!   ("Marvin": a timing side channel in the `rsa` crate's private-key operations, unfixed) applies
//!   to both. Exposure is limited on purpose: the gateway layer decrypts only fields of replies
//!   whose UnionPay signature has already verified, so an attacker cannot feed chosen ciphertexts
//!   to the terminal, and 5.0.0 signing covers only requests the terminal itself builds. New
//!   deployments use 5.1.0, which never touches the `rsa` crate's private-key code.
//!
//! Key material never appears in `Debug` output or errors.

use ring::signature::{self, RsaKeyPair};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::rand_core::CryptoRngCore;
use rsa::traits::PublicKeyParts;
use thiserror::Error;
use zeroize::Zeroizing;

/// Why an RSA operation failed. Messages name the operation, never key bytes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RsaError {
    #[error("the private key is not a usable RSA PKCS#8 key: {0}")]
    BadPrivateKey(String),
    #[error("the public key is not a usable RSA key: {0}")]
    BadPublicKey(String),
    #[error("RSA signing failed")]
    SignFailed,
    #[error("RSA encryption failed: {0}")]
    EncryptFailed(String),
    #[error("RSA decryption failed (wrong key, or the ciphertext was altered)")]
    DecryptFailed,
}

/// Hash used inside a PKCS#1 v1.5 signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaHash {
    /// SHA-1: ACP 5.0.0 messages and every certificate in UnionPay's chains.
    Sha1,
    /// SHA-256: ACP 5.1.0 messages.
    Sha256,
    Sha384,
    Sha512,
}

/// DER DigestInfo prefix for SHA-1 (RFC 8017 §9.2 note 1).
const SHA1_DIGEST_INFO_PREFIX: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

/// An RSA private key, loaded once, usable for ACP signing and reply-field decryption.
pub struct RsaPrivateKey {
    ring: RsaKeyPair,
    legacy: rsa::RsaPrivateKey,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPrivateKey({} bits, redacted)", self.modulus_bits())
    }
}

impl RsaPrivateKey {
    /// Loads a PKCS#8 `PrivateKeyInfo` (what a PKCS#12 key bag holds).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<RsaPrivateKey, RsaError> {
        let ring =
            RsaKeyPair::from_pkcs8(der).map_err(|e| RsaError::BadPrivateKey(e.to_string()))?;
        let legacy = rsa::RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|e| RsaError::BadPrivateKey(e.to_string()))?;
        let public_der = ring.public().as_ref().to_vec();
        Ok(RsaPrivateKey {
            ring,
            legacy,
            public_der,
        })
    }

    /// The public half as a DER `RSAPublicKey` (PKCS#1), comparable with a certificate's key.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// Modulus size in bits.
    pub fn modulus_bits(&self) -> usize {
        self.legacy.n().bits()
    }

    /// PKCS#1 v1.5 signature of `msg` (the whole message; it is hashed here).
    ///
    /// SHA-256/384/512 go through `ring`; SHA-1 (ACP 5.0.0 only) through the `rsa` crate with
    /// blinding from `rng` (see the module notes). The result is deterministic either way.
    pub fn sign_pkcs1(
        &self,
        hash: RsaHash,
        msg: &[u8],
        mut rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, RsaError> {
        let encoding: &'static dyn signature::RsaEncoding = match hash {
            RsaHash::Sha256 => &signature::RSA_PKCS1_SHA256,
            RsaHash::Sha384 => &signature::RSA_PKCS1_SHA384,
            RsaHash::Sha512 => &signature::RSA_PKCS1_SHA512,
            RsaHash::Sha1 => {
                let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, msg);
                let scheme = rsa::Pkcs1v15Sign {
                    hash_len: Some(20),
                    prefix: SHA1_DIGEST_INFO_PREFIX.to_vec().into_boxed_slice(),
                };
                return self
                    .legacy
                    .sign_with_rng(&mut rng, scheme, digest.as_ref())
                    .map_err(|_| RsaError::SignFailed);
            }
        };
        let mut sig = vec![0u8; self.ring.public().modulus_len()];
        // ring uses its own system RNG for blinding only; the signature does not depend on it.
        let sys = ring::rand::SystemRandom::new();
        self.ring
            .sign(encoding, &sys, msg, &mut sig)
            .map_err(|_| RsaError::SignFailed)?;
        Ok(sig)
    }

    /// PKCS#1 v1.5 decryption (the `rsa` crate, blinded with `rng`; see the module notes for the
    /// advisory and why callers must only decrypt fields of already-verified replies).
    pub fn decrypt_pkcs1v15(
        &self,
        ciphertext: &[u8],
        mut rng: &mut dyn CryptoRngCore,
    ) -> Result<Zeroizing<Vec<u8>>, RsaError> {
        self.legacy
            .decrypt_blinded(&mut rng, rsa::Pkcs1v15Encrypt, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| RsaError::DecryptFailed)
    }
}

/// Verifies a PKCS#1 v1.5 signature with a DER `RSAPublicKey` (2048–8192 bits).
pub fn verify_pkcs1(hash: RsaHash, public_key_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let alg: &'static signature::RsaParameters = match hash {
        RsaHash::Sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        RsaHash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        RsaHash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        RsaHash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
    };
    signature::UnparsedPublicKey::new(alg, public_key_der)
        .verify(msg, sig)
        .is_ok()
}

/// PKCS#1 v1.5 encryption (`RSA/ECB/PKCS1Padding`) with a DER `RSAPublicKey`.
/// The padding is random: `rng` supplies it, so tests can fix it.
pub fn encrypt_pkcs1v15(
    public_key_der: &[u8],
    plaintext: &[u8],
    mut rng: &mut dyn CryptoRngCore,
) -> Result<Vec<u8>, RsaError> {
    let key = rsa::RsaPublicKey::from_pkcs1_der(public_key_der)
        .map_err(|e| RsaError::BadPublicKey(e.to_string()))?;
    key.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, plaintext)
        .map_err(|e| RsaError::EncryptFailed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A throwaway 2048-bit key generated once for these tests (PKCS#8 DER, base64).
    fn test_key() -> RsaPrivateKey {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(TEST_KEY_PKCS8_B64)
            .unwrap();
        RsaPrivateKey::from_pkcs8_der(&der).unwrap()
    }

    const TEST_KEY_PKCS8_B64: &str = concat!(
        "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDG6HWSBlj7UJN7gE6C4rcEtAhP/2/emmcYwdItrQ0qLQnn",
        "mdKD3oxjyEe4I8DHAt1DLtaX3aWr9bC7diaY81B7PE1egiXJn9YmNthI14je+ppv+1g9N9Eox4Bjjc8ixfsJe906QaJBy/LC",
        "tOT41WcobNfLDBvw9dNk8HdlOfYkSq0uJiCUBMkoBz9oKfzBsS1StaYczVtlcnPlDYqSyG5aK+QSNkerdbA+1enChyKwmWDv",
        "GYutIO2Sxw6tjr5xaOq0idwv3KwY5rQjUcNMCpyKTXy3esT7E55imld/tUO2eKxRnaCwKCK5knglFWFbyrOygcsiggXnxknQ",
        "InNcIoHDAgMBAAECggEAJERvZ3wzzkL/WSXoatIGt9tRprB3B9oUUT3J4l0qyNVkeG+iJDw4UdtLRGZ0eHTrvhu0sgUOd5+5",
        "JT0iRYIb2xSAMOq/FBfKNraKUiHGiY2dCi0Ehkj+oJZbsQtCyN7banvEtyIPgTq8HUdZdouGnybVY+bl01YnQMDdrD3YxP3s",
        "cort89WsvyjwhTWIHZqsUGu2OsXgJ6MbHa3f8Fo/vEjWSmK5Gju80A+u6ITkoAUjx254vK74P1A7ffgnvwOEPODfuV85szTD",
        "olMctbu8+jgMgbZvVVvPdJML/l5j2ESXCn/sFI3Fw9Uxg7ikMVxeEJvcD41Y3sEPr4SJ7t4I4QKBgQDh4DhUE0vNjGlD1wPH",
        "ndj+LuXtnEVzsUT4/UyPnkzGyK8oRaIWYQLyxqAATEJRlbXPwSvWpAt5/dg/W+3uYt5gLlszwUc/+ppqO/RqCU5eS9Up4w0n",
        "GpGeZs+X0M0JYryfxmSZjzBhiM8e3f1eIpMyWvtfyVknowGThWSU6AWF4wKBgQDhb4NKxGhKHig8PcdToilx9+zBzNmNMzPh",
        "W2XlUriPRfqFHyJONqVG8su/nhluYHIBZ6NXtiCrDUTfRmjqCjU/sbOhn+8LxIYMwlxqf8sbRWZjI2AAR409lBzqx0Sk6pFr",
        "m9DocK1SluaEx6ndlRcVFunXlOapHWH+cdA1YaLaoQKBgE4gS9towTNbeZ1pZXlJ86AXgJfrEWquyfiFRFH4ov2utEbtrt6m",
        "t2pZoUX5Goc1jSlK22rmWsHbN0zS8z0dHWWPIySHmalbeMV971At39llyVkvm4EHA48SaINOSV0RtcRdzrX+fPF/bIR0rAo/",
        "U0J7ja7X6ep3yzfHT77hceeZAoGAC4J3/487i90yTLESxjBXUVxJGDPvP4hHs8/IygaJKbd27OkEBV5A3fhzcpsNzVbbOzsh",
        "Wc8Qp+sLgyLDJH/U7CWUeEIEIGOuPGSH92AC7KeEbLdXpWwByA0R1OLLnGfleMsBxXxLPRY7Org+8fM0tHzw/3K4vBWl9Sm2",
        "aaNMf0ECgYB5weUkxkEJly5nkXCDJHdcT1AEwuDWpDnPbigRkzKiGCBUdHHG7OnA33A8klTuNiAh6wXDNM2Jc/YMArIhsmWL",
        "kFWKvomujs0+eP0XnI4PQCpoeSL7R5/GG2ICz2NG2edJjE/EIIqm+kctk8IuksBLeXMZ1xMKZmv1QxVdAplT1g==",
    );

    #[test]
    fn sha256_sign_verify_round_trip_and_tamper() {
        let key = test_key();
        let mut rng = StdRng::seed_from_u64(1);
        let sig = key.sign_pkcs1(RsaHash::Sha256, b"hello", &mut rng).unwrap();
        assert_eq!(sig.len(), 256);
        assert!(verify_pkcs1(
            RsaHash::Sha256,
            key.public_key_der(),
            b"hello",
            &sig
        ));
        assert!(!verify_pkcs1(
            RsaHash::Sha256,
            key.public_key_der(),
            b"hellp",
            &sig
        ));
        assert!(!verify_pkcs1(
            RsaHash::Sha1,
            key.public_key_der(),
            b"hello",
            &sig
        ));
    }

    #[test]
    fn sha1_legacy_sign_is_deterministic_and_verifies() {
        let key = test_key();
        let a = key
            .sign_pkcs1(RsaHash::Sha1, b"abc", &mut StdRng::seed_from_u64(1))
            .unwrap();
        let b = key
            .sign_pkcs1(RsaHash::Sha1, b"abc", &mut StdRng::seed_from_u64(2))
            .unwrap();
        assert_eq!(a, b, "PKCS#1 v1.5 is deterministic; blinding must not show");
        assert!(verify_pkcs1(
            RsaHash::Sha1,
            key.public_key_der(),
            b"abc",
            &a
        ));
    }

    #[test]
    fn encrypt_decrypt_round_trip() {
        let key = test_key();
        let mut rng = StdRng::seed_from_u64(7);
        let ct = encrypt_pkcs1v15(key.public_key_der(), b"6216000000000018", &mut rng).unwrap();
        let ct2 = encrypt_pkcs1v15(key.public_key_der(), b"6216000000000018", &mut rng).unwrap();
        assert_ne!(ct, ct2, "random padding");
        let pt = key.decrypt_pkcs1v15(&ct, &mut rng).unwrap();
        assert_eq!(&pt[..], b"6216000000000018");
        let mut bad = ct.clone();
        bad[10] ^= 1;
        assert_eq!(
            key.decrypt_pkcs1v15(&bad, &mut rng),
            Err(RsaError::DecryptFailed)
        );
    }

    #[test]
    fn debug_hides_key() {
        let s = format!("{:?}", test_key());
        assert_eq!(s, "RsaPrivateKey(2048 bits, redacted)");
    }

    #[test]
    fn garbage_keys_are_errors() {
        assert!(RsaPrivateKey::from_pkcs8_der(b"\x30\x03\x02\x01\x00").is_err());
        assert!(encrypt_pkcs1v15(b"nope", b"x", &mut StdRng::seed_from_u64(1)).is_err());
        assert!(!verify_pkcs1(RsaHash::Sha256, b"nope", b"x", b"y"));
    }
}
