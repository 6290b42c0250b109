//! HMAC-SHA256 and ChinaUMS's OPEN-BODY-SIG (PROTOCOLS.md §D.2).
//!
//! Owns the formula only: `Signature = Base64(HMAC-SHA256(AppKey, AppId + Timestamp + Nonce +
//! hex(SHA-256(body))))`, the `Authorization` header that carries it, and parsing that header back
//! (the sandbox verifies requests with it; the client verifies reply headers with it). HMAC runs on
//! `ring` (DESIGN.md §3). It never logs, formats or returns the AppKey, and every comparison of a
//! received signature takes constant time. Building bodies and choosing timestamps is the caller's.

use base64::Engine as _;
use ring::hmac;
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::sha256::sha256_hex;

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&k, msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The exact string that is HMAC'd: `AppId + Timestamp + Nonce + lowercase_hex(SHA-256(body))`.
pub fn open_body_string(app_id: &str, timestamp: &str, nonce: &str, body: &[u8]) -> String {
    format!("{app_id}{timestamp}{nonce}{}", sha256_hex(body))
}

/// The OPEN-BODY-SIG signature (Base64) of `body`.
pub fn open_body_sig(
    app_id: &str,
    app_key: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    let s = open_body_string(app_id, timestamp, nonce, body);
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(app_key.as_bytes(), s.as_bytes()))
}

/// The `Authorization` header value: `OPEN-BODY-SIG AppId="…",Timestamp="…",Nonce="…",Signature="…"`.
pub fn open_body_header(
    app_id: &str,
    app_key: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    let sig = open_body_sig(app_id, app_key, timestamp, nonce, body);
    format!(
        "OPEN-BODY-SIG AppId=\"{app_id}\",Timestamp=\"{timestamp}\",Nonce=\"{nonce}\",Signature=\"{sig}\""
    )
}

/// The parts of a parsed OPEN-BODY-SIG header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenBodyAuth {
    pub app_id: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthHeaderError {
    #[error("the Authorization header is not OPEN-BODY-SIG")]
    NotOpenBodySig,
    #[error("the Authorization header lacks {0}")]
    Missing(&'static str),
    #[error("the Authorization header is malformed near {0:?}")]
    Malformed(String),
    #[error("the signature does not match the body")]
    BadSignature,
}

/// Parses `OPEN-BODY-SIG k="v", k="v"…`; both `","` and `", "` separators are accepted (both
/// occur in working clients).
pub fn parse_open_body_header(h: &str) -> Result<OpenBodyAuth, AuthHeaderError> {
    let rest = h
        .trim()
        .strip_prefix("OPEN-BODY-SIG")
        .ok_or(AuthHeaderError::NotOpenBodySig)?;
    let (mut app_id, mut ts, mut nonce, mut sig) = (None, None, None, None);
    let mut s = rest.trim_start();
    while !s.is_empty() {
        let eq = s
            .find('=')
            .ok_or_else(|| AuthHeaderError::Malformed(s.chars().take(16).collect()))?;
        let key = s[..eq].trim();
        let after = s[eq + 1..].trim_start();
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| AuthHeaderError::Malformed(key.to_string()))?;
        let end = body
            .find('"')
            .ok_or_else(|| AuthHeaderError::Malformed(key.to_string()))?;
        let value = body[..end].to_string();
        match key {
            "AppId" => app_id = Some(value),
            "Timestamp" => ts = Some(value),
            "Nonce" => nonce = Some(value),
            "Signature" => sig = Some(value),
            _ => {}
        }
        s = body[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s).trim_start();
    }
    Ok(OpenBodyAuth {
        app_id: app_id.ok_or(AuthHeaderError::Missing("AppId"))?,
        timestamp: ts.ok_or(AuthHeaderError::Missing("Timestamp"))?,
        nonce: nonce.ok_or(AuthHeaderError::Missing("Nonce"))?,
        signature: sig.ok_or(AuthHeaderError::Missing("Signature"))?,
    })
}

/// Checks a parsed header against `body` under `app_key`, in constant time.
pub fn verify_open_body(
    auth: &OpenBodyAuth,
    app_key: &str,
    body: &[u8],
) -> Result<(), AuthHeaderError> {
    let want = open_body_sig(&auth.app_id, app_key, &auth.timestamp, &auth.nonce, body);
    if want.len() == auth.signature.len()
        && bool::from(want.as_bytes().ct_eq(auth.signature.as_bytes()))
    {
        Ok(())
    } else {
        Err(AuthHeaderError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kat() -> serde_json::Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/chinaums_open_body_sig_kat.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn chinaums_known_answer_vector() {
        let v = kat();
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        let body = s("body");
        assert_eq!(sha256_hex(body.as_bytes()), s("sha256_hex_body"));
        assert_eq!(
            open_body_string(&s("appId"), &s("timestamp"), &s("nonce"), body.as_bytes()),
            s("string_to_hmac")
        );
        assert_eq!(
            open_body_sig(
                &s("appId"),
                &s("appKey"),
                &s("timestamp"),
                &s("nonce"),
                body.as_bytes()
            ),
            s("signature")
        );
        assert_eq!(
            open_body_header(
                &s("appId"),
                &s("appKey"),
                &s("timestamp"),
                &s("nonce"),
                body.as_bytes()
            ),
            s("authorization_header_example")
        );
    }

    #[test]
    fn header_round_trip_both_separators_and_tampering() {
        let v = kat();
        let h = v["authorization_header_example"].as_str().unwrap();
        let key = v["appKey"].as_str().unwrap();
        let a = parse_open_body_header(h).unwrap();
        assert_eq!(a.timestamp, "20170101120000");
        assert!(verify_open_body(&a, key, b"A").is_ok());
        assert_eq!(
            verify_open_body(&a, key, b"B"),
            Err(AuthHeaderError::BadSignature)
        );
        assert_eq!(
            verify_open_body(&a, "wrong", b"A"),
            Err(AuthHeaderError::BadSignature)
        );
        let spaced = h.replace("\",", "\", ");
        assert_eq!(parse_open_body_header(&spaced).unwrap(), a);
        assert_eq!(
            parse_open_body_header("OPEN-ACCESS-TOKEN AccessToken=x"),
            Err(AuthHeaderError::NotOpenBodySig)
        );
        assert_eq!(
            parse_open_body_header("OPEN-BODY-SIG AppId=\"a\",Nonce=\"n\",Signature=\"s\""),
            Err(AuthHeaderError::Missing("Timestamp"))
        );
        assert!(matches!(
            parse_open_body_header("OPEN-BODY-SIG AppId=unquoted"),
            Err(AuthHeaderError::Malformed(_))
        ));
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
