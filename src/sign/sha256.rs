//! SHA-256 digests and the 云闪付 open-platform signature (PROTOCOLS.md §D.3, §E).
//!
//! Owns two formulas: ChinaUMS's access-token signature `hex(SHA-256(appId + timestamp + nonce +
//! appKey))`, and UPAPI's `hex(SHA-256(sorted "k=v&…" with secret added as a field))` used for
//! backendToken. It does not choose the fields (the gateway does), never logs a secret, and
//! compares received signatures in constant time.

use sha2::Digest as _;
use subtle::ConstantTimeEq;

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// ChinaUMS `/v1/token/access` signature: `hex(SHA-256(appId + timestamp + nonce + appKey))`.
pub fn chinaums_token_signature(
    app_id: &str,
    timestamp: &str,
    nonce: &str,
    app_key: &str,
) -> String {
    sha256_hex(format!("{app_id}{timestamp}{nonce}{app_key}").as_bytes())
}

/// The UPAPI string to sign: every non-empty field plus `secret`, sorted by key, `k=v` joined
/// with `&`. `signature` itself is never part of it.
pub fn upapi_string_to_sign<'a, I>(fields: I, secret: &str) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut v: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, val)| *k != "signature" && !val.is_empty())
        .collect();
    v.push(("secret", secret));
    v.sort();
    v.iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// UPAPI signature: lowercase hex SHA-256 of [`upapi_string_to_sign`].
pub fn upapi_sign<'a, I>(fields: I, secret: &str) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    sha256_hex(upapi_string_to_sign(fields, secret).as_bytes())
}

/// Constant-time check of a received UPAPI signature (hex, case-insensitive).
pub fn upapi_verify<'a, I>(fields: I, secret: &str, given: &str) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let want = upapi_sign(fields, secret);
    let given = given.to_ascii_lowercase();
    want.len() == given.len() && bool::from(want.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn upapi_string_sorts_adds_secret_and_skips_signature_and_empty() {
        let f = [
            ("timestamp", "1600000000"),
            ("appId", "a5949221470c4059b9b0b45a90c81527"),
            ("nonceStr", "abcdefgh12345678"),
            ("signature", "zzz"),
            ("empty", ""),
        ];
        let s = upapi_string_to_sign(f, "s3cr3t");
        assert_eq!(
            s,
            "appId=a5949221470c4059b9b0b45a90c81527&nonceStr=abcdefgh12345678&secret=s3cr3t&timestamp=1600000000"
        );
        let sig = upapi_sign(f, "s3cr3t");
        assert_eq!(sig, sha256_hex(s.as_bytes()));
        assert!(upapi_verify(f, "s3cr3t", &sig.to_ascii_uppercase()));
        assert!(!upapi_verify(f, "other", &sig));
        assert!(!upapi_verify(f, "s3cr3t", &sig[1..]));
    }

    #[test]
    fn chinaums_token_signature_is_plain_concatenation() {
        assert_eq!(
            chinaums_token_signature("id", "20240101000000", "n", "key"),
            sha256_hex(b"id20240101000000nkey")
        );
    }
}
