//! ACP message text: parsing raw replies and notification forms, the string to sign, request
//! signing (signMethod 01 for 5.0.0/5.1.0, 11 and 12) and the form body sent.
//!
//! Owns the exact byte rules of PROTOCOLS.md §A.1–A.4. It must not URL-decode a raw reply, turn
//! `+` into a space, reorder or trim received values, or read a clock; the only randomness
//! (blinding for legacy SHA-1 signing) comes from the caller.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use rsa::rand_core::CryptoRngCore;

use super::cert::MerchantKey;
use crate::sign::rsa::{RsaError, RsaHash};
use crate::sign::sm3::{SecureKeyHash, secure_key_sign, sha256_hex};

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the message is empty")]
    Empty,
    #[error("field {index} has an empty name")]
    EmptyKey { index: usize },
    #[error("field {0:?} appears twice")]
    Duplicate(String),
    #[error("a {{ or [ opened in field {0:?} is never closed")]
    Unclosed(String),
    #[error("the form body is not valid UTF-8 after percent-decoding")]
    BadEncoding,
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("field `version` is missing; it selects the signature hash")]
    NoVersion,
    #[error("version {0:?} is not one ACP signs with a certificate (5.0.0, 5.0.1, 1.0.0, 5.1.0)")]
    UnknownVersion(String),
    #[error(transparent)]
    Rsa(#[from] RsaError),
}

/// A received ACP message: fields in the order they arrived.
#[derive(Clone, PartialEq, Eq)]
pub struct AcpMessage {
    fields: Vec<(String, String)>,
}

impl fmt::Debug for AcpMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Field names only: values may carry encrypted card data or certificates.
        let names: Vec<&str> = self.fields.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "AcpMessage {{ fields: {names:?} }}")
    }
}

impl AcpMessage {
    /// Builds a message from fields in a given order (duplicates refused).
    pub fn from_fields(fields: Vec<(String, String)>) -> Result<AcpMessage, FormError> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, (k, _)) in fields.iter().enumerate() {
            if k.is_empty() {
                return Err(FormError::EmptyKey { index: i });
            }
            if !seen.insert(k.as_str()) {
                return Err(FormError::Duplicate(k.clone()));
            }
        }
        Ok(AcpMessage { fields })
    }

    /// Parses a raw synchronous reply the way UnionPay's SDK does (`parseQString`): a key ends at
    /// the first `=`; `&` separates fields except inside `{…}` or `[…]` opened in a value, which
    /// nest; nothing is URL-decoded and `+` stays `+`. A segment without `=` is a key with an
    /// empty value.
    pub fn parse_raw(raw: &str) -> Result<AcpMessage, FormError> {
        if raw.is_empty() {
            return Err(FormError::Empty);
        }
        let mut fields = Vec::new();
        let mut key = String::new();
        let mut value = String::new();
        let mut in_key = true;
        let mut stack: Vec<char> = Vec::new();
        for c in raw.chars() {
            if in_key {
                match c {
                    '=' => in_key = false,
                    '&' => {
                        // A key with no '=' at all: the SDK records it with an empty value.
                        if key.is_empty() {
                            return Err(FormError::EmptyKey {
                                index: fields.len(),
                            });
                        }
                        fields.push((std::mem::take(&mut key), String::new()));
                    }
                    _ => key.push(c),
                }
                continue;
            }
            match c {
                '{' => stack.push('}'),
                '[' => stack.push(']'),
                '}' | ']' if stack.last() == Some(&c) => {
                    stack.pop();
                }
                _ => {}
            }
            if c == '&' && stack.is_empty() {
                if key.is_empty() {
                    return Err(FormError::EmptyKey {
                        index: fields.len(),
                    });
                }
                fields.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                in_key = true;
            } else {
                value.push(c);
            }
        }
        if !stack.is_empty() {
            return Err(FormError::Unclosed(key));
        }
        if key.is_empty() {
            return Err(FormError::EmptyKey {
                index: fields.len(),
            });
        }
        fields.push((key, value));
        AcpMessage::from_fields(fields)
    }

    /// Parses an `application/x-www-form-urlencoded` body (a back notification POST): percent
    /// escapes decoded, `+` is a space as the form encoding says. Values are then raw text.
    pub fn parse_form(body: &str) -> Result<AcpMessage, FormError> {
        if body.is_empty() {
            return Err(FormError::Empty);
        }
        let mut fields = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
            if k.contains('\u{fffd}') || v.contains('\u{fffd}') {
                return Err(FormError::BadEncoding);
            }
            fields.push((k.into_owned(), v.into_owned()));
        }
        AcpMessage::from_fields(fields)
    }

    /// The value of a field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every field, in arrival order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The fields joined back as `k=v&…` in arrival order, raw.
    pub fn to_raw(&self) -> String {
        join(self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The reply/notification string to sign: every field except `signature` (empty values
    /// kept), sorted by key, `k=v` joined by `&`, raw.
    pub fn string_to_sign(&self) -> String {
        let mut sorted: Vec<(&str, &str)> = self
            .fields
            .iter()
            .filter(|(k, _)| k != "signature")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        join(sorted.into_iter())
    }
}

fn join<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::new();
    for (i, (k, v)) in it.enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

/// Prepares request fields the way the SDK does before signing: drops blank values and trims
/// the rest, so that what is signed is exactly what is sent.
pub fn normalize_request(fields: &mut BTreeMap<String, String>) {
    fields.retain(|_, v| !v.trim().is_empty());
    for v in fields.values_mut() {
        let t = v.trim();
        if t.len() != v.len() {
            *v = t.to_string();
        }
    }
}

/// The request string to sign: fields except `signature`, sorted, `k=v` joined by `&`, raw.
/// Call [`normalize_request`] first (the signers below do).
pub fn request_string_to_sign(fields: &BTreeMap<String, String>) -> String {
    join(
        fields
            .iter()
            .filter(|(k, _)| k.as_str() != "signature")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// How a request is signed.
#[derive(Clone, Copy)]
pub enum Signer<'a> {
    /// signMethod 01 with the merchant certificate; the hash follows the `version` field
    /// (5.1.0: SHA-256, 5.0.0/5.0.1/1.0.0: SHA-1). `certId` is added and signed.
    Cert(&'a MerchantKey),
    /// signMethod 11 (SHA-256) or 12 (SM3) with the merchant's secure key; no certId.
    SecureKey { hash: SecureKeyHash, key: &'a [u8] },
}

impl fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Cert(k) => write!(f, "Signer::Cert({})", k.cert_id()),
            Signer::SecureKey { hash, .. } => write!(f, "Signer::SecureKey({hash:?}, redacted)"),
        }
    }
}

/// The hash a signMethod-01 message of `version` uses.
pub fn cert_hash_for_version(version: &str) -> Option<RsaHash> {
    match version {
        "5.1.0" => Some(RsaHash::Sha256),
        "5.0.0" | "5.0.1" | "1.0.0" => Some(RsaHash::Sha1),
        _ => None,
    }
}

/// Lowercase hex digest used inside signMethod 01 (the hex string is what gets RSA-signed).
pub(crate) fn hex_digest(hash: RsaHash, data: &[u8]) -> String {
    match hash {
        RsaHash::Sha256 => sha256_hex(data),
        RsaHash::Sha1 => hex::encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            data,
        )),
        RsaHash::Sha384 => hex::encode(ring::digest::digest(&ring::digest::SHA384, data)),
        RsaHash::Sha512 => hex::encode(ring::digest::digest(&ring::digest::SHA512, data)),
    }
}

/// Signs request fields in place: normalizes them, sets `signMethod` (and `certId` for 01),
/// and sets `signature`. `rng` only blinds legacy SHA-1 signing; signatures are deterministic.
pub fn sign_fields(
    fields: &mut BTreeMap<String, String>,
    signer: Signer<'_>,
    rng: &mut dyn CryptoRngCore,
) -> Result<(), SignError> {
    fields.remove("signature");
    normalize_request(fields);
    match signer {
        Signer::Cert(key) => {
            let version = fields.get("version").ok_or(SignError::NoVersion)?;
            let hash = cert_hash_for_version(version)
                .ok_or_else(|| SignError::UnknownVersion(version.clone()))?;
            fields.insert("signMethod".into(), "01".into());
            fields.insert("certId".into(), key.cert_id().to_string());
            let digest = hex_digest(hash, request_string_to_sign(fields).as_bytes());
            let sig = key.private_key().sign_pkcs1(hash, digest.as_bytes(), rng)?;
            fields.insert(
                "signature".into(),
                base64::engine::general_purpose::STANDARD.encode(sig),
            );
        }
        Signer::SecureKey { hash, key } => {
            let method = match hash {
                SecureKeyHash::Sha256 => "11",
                SecureKeyHash::Sm3 => "12",
            };
            fields.insert("signMethod".into(), method.into());
            fields.remove("certId");
            let sig = secure_key_sign(hash, &request_string_to_sign(fields), key);
            fields.insert("signature".into(), sig);
        }
    }
    Ok(())
}

/// The `application/x-www-form-urlencoded;charset=UTF-8` body for signed fields.
pub fn form_body(fields: &BTreeMap<String, String>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        ser.append_pair(k, v);
    }
    ser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::unionpay::cert::tests::{old_test_key, test_2021_key};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn kat() -> serde_json::Value {
        let p = crate::gateway::unionpay::tests::vectors_dir().join("acp_sign_kat.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn base_fields(version: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("transType".into(), "01".into());
        m.insert("sysReserved".into(), "{aaa=a&bbb=b}".into());
        m.insert("merId".into(), "888888888888888".into());
        m.insert("version".into(), version.into());
        m
    }

    #[test]
    fn every_sign_kat_case_passes() {
        let kat = kat();
        let key = old_test_key();
        let mut rng = StdRng::seed_from_u64(0);
        let cases = kat["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        for case in cases {
            let method = case["signMethod"].as_str().unwrap();
            let version = case["version"].as_str().unwrap();
            let mut fields = base_fields(version);
            let secure_key = case["secureKey"].as_str().unwrap_or("").as_bytes().to_vec();
            let signer = match method {
                "01" => Signer::Cert(&key),
                "11" => Signer::SecureKey {
                    hash: SecureKeyHash::Sha256,
                    key: &secure_key,
                },
                "12" => Signer::SecureKey {
                    hash: SecureKeyHash::Sm3,
                    key: &secure_key,
                },
                other => panic!("unexpected method {other}"),
            };
            sign_fields(&mut fields, signer, &mut rng).unwrap();
            let sts = request_string_to_sign(&fields);
            assert_eq!(
                sts,
                case["string_to_sign"].as_str().unwrap(),
                "{method}/{version}"
            );
            if let Some(d) = case["digest_hex_lowercase_sha256"].as_str() {
                assert_eq!(sha256_hex(sts.as_bytes()), d);
            }
            if let Some(d) = case["digest_hex_lowercase_sha1"].as_str() {
                assert_eq!(hex_digest(RsaHash::Sha1, sts.as_bytes()), d);
            }
            assert_eq!(
                fields["signature"],
                case["signature"].as_str().unwrap(),
                "signature for {method}/{version}"
            );
        }
    }

    #[test]
    fn yansongda_requests_resign_byte_for_byte() {
        let p = crate::gateway::unionpay::tests::vectors_dir()
            .join("unionpay-messages/acp_requests_signed_yansongda_cert.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let key = test_2021_key();
        let mut rng = StdRng::seed_from_u64(0);
        for req in v["requests"].as_array().unwrap() {
            let body = req["form_body_as_sent"].as_str().unwrap();
            let sent = AcpMessage::parse_form(body).unwrap();
            let mut fields: BTreeMap<String, String> = sent
                .fields()
                .iter()
                .filter(|(k, _)| k != "signature" && k != "certId" && k != "signMethod")
                .cloned()
                .collect();
            sign_fields(&mut fields, Signer::Cert(&key), &mut rng).unwrap();
            assert_eq!(
                request_string_to_sign(&fields),
                req["sign_string"].as_str().unwrap()
            );
            assert_eq!(fields["signature"], req["signature"].as_str().unwrap());
            // Our body carries the same fields and values as the one sent.
            let ours = AcpMessage::parse_form(&form_body(&fields)).unwrap();
            let mut a: Vec<_> = ours.fields().to_vec();
            let mut b: Vec<_> = sent.fields().to_vec();
            a.sort();
            b.sort();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn blank_values_are_dropped_and_values_trimmed_before_signing() {
        let key = old_test_key();
        let mut f = base_fields("5.1.0");
        f.insert("reqReserved".into(), "   ".into());
        f.insert("merId".into(), " 888888888888888 ".into());
        sign_fields(&mut f, Signer::Cert(&key), &mut StdRng::seed_from_u64(0)).unwrap();
        assert!(!f.contains_key("reqReserved"));
        assert_eq!(f["merId"], "888888888888888");
        assert_eq!(
            f["signature"],
            kat()["cases"][1]["signature"].as_str().unwrap()
        );
    }

    #[test]
    fn unknown_version_is_refused() {
        let key = old_test_key();
        let mut f = base_fields("6.0.0");
        assert_eq!(
            sign_fields(&mut f, Signer::Cert(&key), &mut StdRng::seed_from_u64(0)),
            Err(SignError::UnknownVersion("6.0.0".into()))
        );
        f.remove("version");
        assert_eq!(
            sign_fields(&mut f, Signer::Cert(&key), &mut StdRng::seed_from_u64(0)),
            Err(SignError::NoVersion)
        );
    }

    #[test]
    fn raw_parse_keeps_braces_brackets_plus_and_crlf() {
        let m = AcpMessage::parse_raw(
            "a=1&reserved={x=1&y={z=2&w=3}}&respMsg=成功[0000000]&b=+/=\r\nq&c=&d",
        )
        .unwrap();
        assert_eq!(m.get("a"), Some("1"));
        assert_eq!(m.get("reserved"), Some("{x=1&y={z=2&w=3}}"));
        assert_eq!(m.get("respMsg"), Some("成功[0000000]"));
        assert_eq!(m.get("b"), Some("+/=\r\nq"));
        assert_eq!(m.get("c"), Some(""));
        assert_eq!(m.get("d"), Some(""));
        assert_eq!(m.fields().len(), 6);
        assert_eq!(
            m.to_raw(),
            "a=1&reserved={x=1&y={z=2&w=3}}&respMsg=成功[0000000]&b=+/=\r\nq&c=&d="
        );
    }

    #[test]
    fn raw_parse_errors() {
        assert_eq!(AcpMessage::parse_raw(""), Err(FormError::Empty));
        assert_eq!(
            AcpMessage::parse_raw("a=1&a=2"),
            Err(FormError::Duplicate("a".into()))
        );
        assert!(matches!(
            AcpMessage::parse_raw("a=1&"),
            Err(FormError::EmptyKey { .. })
        ));
        assert!(matches!(
            AcpMessage::parse_raw("=1"),
            Err(FormError::EmptyKey { .. })
        ));
        assert_eq!(
            AcpMessage::parse_raw("a={1&b=2"),
            Err(FormError::Unclosed("a".into()))
        );
    }

    #[test]
    fn reply_string_keeps_empty_values_and_drops_only_signature() {
        let m = AcpMessage::parse_raw("z=1&signature=abc&a=&m=x").unwrap();
        assert_eq!(m.string_to_sign(), "a=&m=x&z=1");
    }

    #[test]
    fn debug_shows_field_names_only() {
        let m = AcpMessage::parse_raw("accNo=SECRET&a=1").unwrap();
        assert_eq!(format!("{m:?}"), r#"AcpMessage { fields: ["accNo", "a"] }"#);
    }
}
