//! SM3 and the ACP "secure key" signatures (signMethod 11 with SHA-256, 12 with SM3).
//!
//! Owns the hash-based signature formula only:
//! `signature = hex(H(string_to_sign + "&" + hex(H(secure_key))))`, lowercase hex
//! (PROTOCOLS.md §A.4). It does not build the string to sign (the gateway does) and never logs or
//! formats the secure key. Verification compares in constant time.

use sha2::Digest as _;
use subtle::ConstantTimeEq;

/// The hash of a secure-key signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecureKeyHash {
    /// signMethod 11.
    Sha256,
    /// signMethod 12.
    Sm3,
}

/// Lowercase hex SM3 digest of `data`.
pub fn sm3_hex(data: &[u8]) -> String {
    hex::encode(sm3::Sm3::digest(data))
}

/// Lowercase hex SHA-256 digest of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn hash_hex(hash: SecureKeyHash, data: &[u8]) -> String {
    match hash {
        SecureKeyHash::Sha256 => sha256_hex(data),
        SecureKeyHash::Sm3 => sm3_hex(data),
    }
}

/// The ACP secure-key signature of an already-built string to sign.
pub fn secure_key_sign(hash: SecureKeyHash, string_to_sign: &str, secure_key: &[u8]) -> String {
    let key_hex = hash_hex(hash, secure_key);
    let mut buf = Vec::with_capacity(string_to_sign.len() + 1 + key_hex.len());
    buf.extend_from_slice(string_to_sign.as_bytes());
    buf.push(b'&');
    buf.extend_from_slice(key_hex.as_bytes());
    hash_hex(hash, &buf)
}

/// Checks a received secure-key signature. Like the SDK, the comparison is exact (lowercase hex);
/// unlike the SDK's `String.equals`, it takes constant time.
pub fn secure_key_verify(
    hash: SecureKeyHash,
    string_to_sign: &str,
    secure_key: &[u8],
    signature: &str,
) -> bool {
    let expected = secure_key_sign(hash, string_to_sign, secure_key);
    expected.len() == signature.len() && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_abc_matches_standard_vector() {
        // GB/T 32905-2016 example 1, also `sm3_abc` in vectors/acp_sign_kat.json.
        assert_eq!(
            sm3_hex(b"abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn acp_kat_method_11_and_12() {
        // vectors/acp_sign_kat.json cases 3 and 4 (secureKey is the empty string).
        let s11 = "merId=888888888888888&signMethod=11&sysReserved={aaa=a&bbb=b}&transType=01&version=5.1.0";
        assert_eq!(
            secure_key_sign(SecureKeyHash::Sha256, s11, b""),
            "bda8e705fe9d67022f71e8ca14752abc402368ed142b3bc71837ac9dec99c18e"
        );
        let s12 = "merId=888888888888888&signMethod=12&sysReserved={aaa=a&bbb=b}&transType=01&version=5.1.0";
        assert_eq!(
            sm3_hex(b""),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
        );
        assert_eq!(
            secure_key_sign(SecureKeyHash::Sm3, s12, b""),
            "e3d147d4d1b835a3453c7f900acf8ad4370ebea0e750452a4a02db43c398af81"
        );
    }

    #[test]
    fn verify_is_exact() {
        let sig = secure_key_sign(SecureKeyHash::Sm3, "a=1", b"k");
        assert!(secure_key_verify(SecureKeyHash::Sm3, "a=1", b"k", &sig));
        assert!(!secure_key_verify(SecureKeyHash::Sm3, "a=2", b"k", &sig));
        assert!(!secure_key_verify(SecureKeyHash::Sm3, "a=1", b"K", &sig));
        assert!(!secure_key_verify(
            SecureKeyHash::Sm3,
            "a=1",
            b"k",
            &sig.to_uppercase()
        ));
        assert!(!secure_key_verify(SecureKeyHash::Sha256, "a=1", b"k", &sig));
    }
}
