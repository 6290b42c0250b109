//! The aggregator's wire format: signed form bodies out, JSON (or form) replies in.
//!
//! Requests are `x-www-form-urlencoded` with the MD5 `sign` computed over the raw values. Replies
//! are JSON objects whose values are read back as the exact strings that were signed; a reply is
//! believed only when its signature checks. Nothing here knows what a field means.

use serde_json::Value;
use thiserror::Error;

use crate::sign::md5;

/// Ordered name/value pairs of a request or reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    /// Adds a field; empty values are kept out (they are neither signed nor sent).
    pub fn set(&mut self, k: &str, v: impl Into<String>) -> &mut Fields {
        let v = v.into();
        self.0.retain(|(name, _)| name != k);
        if !v.is_empty() {
            self.0.push((k.to_string(), v));
        }
        self
    }

    pub fn set_opt(&mut self, k: &str, v: Option<&str>) -> &mut Fields {
        if let Some(v) = v {
            self.set(k, v);
        }
        self
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds `sign` over the other fields.
    pub fn signed(mut self, key: &str) -> Fields {
        self.0.retain(|(k, _)| k != "sign");
        let s = md5::sign(self.pairs(), key);
        self.0.push(("sign".to_string(), s));
        self
    }

    /// Whether the `sign` field matches the others under `key`.
    pub fn verify(&self, key: &str) -> Result<(), WireError> {
        let given = self.get("sign").ok_or(WireError::Unsigned)?;
        if md5::verify(self.pairs(), key, given) {
            Ok(())
        } else {
            Err(WireError::BadSignature)
        }
    }

    pub fn to_form(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }

    pub fn from_form(body: &[u8]) -> Fields {
        Fields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Reads a JSON object reply. Strings are taken as they are; numbers and nested values as
    /// their compact JSON text, which is what a signer on the other side would have seen.
    pub fn from_json(body: &[u8]) -> Result<Fields, WireError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| WireError::NotJson(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or(WireError::NotJson("not an object".into()))?;
        let mut f = Fields::new();
        for (k, v) in obj {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            f.0.push((k.clone(), s));
        }
        Ok(f)
    }

    pub fn to_json(&self) -> String {
        let map: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Value::Object(map).to_string()
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("the reply is not a JSON object: {0}")]
    NotJson(String),
    #[error("the reply carries no signature")]
    Unsigned,
    #[error("the reply's signature does not match its fields (tampered, or the key is wrong)")]
    BadSignature,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_form_round_trips_and_verifies() {
        let mut f = Fields::new();
        f.set("method", "pay")
            .set("body", "超赢 支付&x=1")
            .set("attach", "");
        let f = f.signed("k");
        assert_eq!(f.get("attach"), None);
        let form = f.to_form();
        assert!(form.contains("body=%E8%B6%85"));
        let back = Fields::from_form(form.as_bytes());
        assert_eq!(back.get("body"), Some("超赢 支付&x=1"));
        assert!(back.verify("k").is_ok());
        assert_eq!(back.verify("other"), Err(WireError::BadSignature));
    }

    #[test]
    fn json_replies_keep_signed_strings() {
        let mut f = Fields::new();
        f.set("state", "SUCCESS").set("total_fee", "12");
        let json = f.clone().signed("k").to_json();
        let back = Fields::from_json(json.as_bytes()).unwrap();
        assert!(back.verify("k").is_ok());
        let tampered = json.replace("\"12\"", "\"13\"");
        assert_eq!(
            Fields::from_json(tampered.as_bytes()).unwrap().verify("k"),
            Err(WireError::BadSignature)
        );
        let unsigned = f.to_json();
        assert_eq!(
            Fields::from_json(unsigned.as_bytes()).unwrap().verify("k"),
            Err(WireError::Unsigned)
        );
        assert!(Fields::from_json(b"<html>").is_err());
        assert!(Fields::from_json(b"[1]").is_err());
    }
}
