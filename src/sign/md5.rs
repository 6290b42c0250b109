//! The aggregator's MD5 signature (seed 003, 签名验证): sorted non-empty `k=v` pairs joined with
//! `&`, then `&key=KEY`, MD5, uppercase hex.
//!
//! Values are signed as raw UTF-8, before any URL-encoding, and the `sign` field itself never takes
//! part. Verification recomputes over every non-empty field received, known or not (the seed says
//! fields may be added), and compares in constant time. This module knows nothing of HTTP.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// The string the signature covers, without the key: `a=1&b=2`.
pub fn string_to_sign<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign")
        .collect();
    // Byte order of the names is the ASCII order the seed asks for.
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

/// The uppercase hex MD5 signature of `params` under `key`.
pub fn sign<'a, I>(params: I, key: &str) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut s = string_to_sign(params);
    s.push_str("&key=");
    s.push_str(key);
    hex::encode_upper(Md5::digest(s.as_bytes()))
}

/// Whether `given` is the signature of `params` under `key` (case-insensitive hex, constant time).
pub fn verify<'a, I>(params: I, key: &str, given: &str) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let expected = sign(params, key);
    let given = given.to_ascii_uppercase();
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn kat() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/aggregator_md5_kat.json"
        );
        let text = std::fs::read_to_string(path).expect("tests/vectors in the repository");
        serde_json::from_str(&text).expect("valid vector file")
    }

    fn params(case: &Value) -> Vec<(String, String)> {
        case["params"]
            .as_object()
            .expect("params object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
            .collect()
    }

    #[test]
    fn every_known_answer_signs_and_verifies() {
        let v = kat();
        let key = v["key"].as_str().unwrap();
        let cases = v["cases"].as_array().unwrap();
        assert!(cases.len() >= 7);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let p = params(case);
            let it = || p.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let expected_string = case["string_to_sign"].as_str().unwrap();
            assert_eq!(
                format!("{}&key={key}", string_to_sign(it())),
                expected_string,
                "{name}"
            );
            let expected = case["sign"].as_str().unwrap();
            assert_eq!(sign(it(), key), expected, "{name}");
            assert!(verify(it(), key, expected), "{name}");
            assert!(verify(it(), key, &expected.to_lowercase()), "{name}");
        }
    }

    #[test]
    fn any_changed_field_or_key_fails_verification() {
        let v = kat();
        let key = v["key"].as_str().unwrap();
        for case in v["cases"].as_array().unwrap() {
            let p = params(case);
            let good = case["sign"].as_str().unwrap();
            for i in 0..p.len() {
                if p[i].0 == "sign" || p[i].1.is_empty() {
                    continue;
                }
                let mut q = p.clone();
                q[i].1.push('x');
                assert!(!verify(
                    q.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    key,
                    good
                ));
            }
            let it = p.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            assert!(!verify(it, "other-key", good));
        }
    }

    #[test]
    fn an_added_field_is_covered() {
        let base = [("a", "1"), ("b", "2")];
        let s = sign(base, "k");
        assert!(!verify([("a", "1"), ("b", "2"), ("c", "3")], "k", &s));
        assert!(verify([("a", "1"), ("b", "2"), ("c", "")], "k", &s));
        assert!(!verify(base, "k", "short"));
    }
}
