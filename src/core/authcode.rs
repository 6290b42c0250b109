//! Payment codes: which wallet a scanned code belongs to, and how it may be remembered.
//!
//! A customer's payment code (付款码) or face code is a one-time bearer credential. This module
//! owns the only type that holds one in full, [`AuthCode`], whose `Debug` and `Display` print the
//! masked form. Whatever is stored or logged is the mask or the keyed fingerprint, never the code.
//! Classification is a table (prefix and length per wallet) so a deployment can extend it.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

/// The wallet a code belongs to. The string form is the aggregator's `paytype` where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Wallet {
    Wechat,
    Alipay,
    Unionpay,
    Jdpay,
    Qq,
    Bestpay,
    Ecny,
}

impl Wallet {
    pub const ALL: [Wallet; 7] = [
        Wallet::Wechat,
        Wallet::Alipay,
        Wallet::Unionpay,
        Wallet::Jdpay,
        Wallet::Qq,
        Wallet::Bestpay,
        Wallet::Ecny,
    ];

    /// The aggregator's paytype code (seed 003, 参数规定 paytype).
    pub fn paytype(self) -> &'static str {
        match self {
            Wallet::Wechat => "WECHAT",
            Wallet::Alipay => "ALIPAY",
            Wallet::Unionpay => "UNIONPAY",
            Wallet::Jdpay => "JDPAY",
            Wallet::Qq => "QQ",
            Wallet::Bestpay => "BESTPAY",
            Wallet::Ecny => "ECNY",
        }
    }

    pub fn from_paytype(s: &str) -> Option<Wallet> {
        Wallet::ALL.into_iter().find(|w| w.paytype() == s)
    }

    /// A name a cashier recognises.
    pub fn display_name(self) -> &'static str {
        match self {
            Wallet::Wechat => "WeChat Pay",
            Wallet::Alipay => "Alipay",
            Wallet::Unionpay => "UnionPay",
            Wallet::Jdpay => "JD Pay",
            Wallet::Qq => "QQ Wallet",
            Wallet::Bestpay => "BestPay",
            Wallet::Ecny => "e-CNY",
        }
    }
}

impl fmt::Display for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.paytype())
    }
}

/// One classification rule: digits only, one of the prefixes, a length in the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRule {
    pub wallet: Wallet,
    pub prefixes: Vec<String>,
    pub min_len: usize,
    pub max_len: usize,
}

/// The published shapes of Chinese payment codes. WeChat: 18 digits starting 10–15; Alipay:
/// 16–24 digits starting 25–30; UnionPay 云闪付: 19 digits starting 62; JD: 18 digits starting
/// 18; QQ Wallet: 18 digits starting 91; BestPay: 18 digits starting 51; e-CNY: 19 digits
/// starting 01. The prefixes do not overlap, so the first match is the only match.
pub fn default_rules() -> Vec<CodeRule> {
    let r = |wallet, prefixes: &[&str], min_len, max_len| CodeRule {
        wallet,
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        min_len,
        max_len,
    };
    vec![
        r(
            Wallet::Wechat,
            &["10", "11", "12", "13", "14", "15"],
            18,
            18,
        ),
        r(
            Wallet::Alipay,
            &["25", "26", "27", "28", "29", "30"],
            16,
            24,
        ),
        r(Wallet::Unionpay, &["62"], 19, 19),
        r(Wallet::Jdpay, &["18"], 18, 18),
        r(Wallet::Qq, &["91"], 18, 18),
        r(Wallet::Bestpay, &["51"], 18, 18),
        r(Wallet::Ecny, &["01"], 19, 19),
    ]
}

/// Why a scanned code was refused before any request.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodeError {
    #[error("the scanned code is empty")]
    Empty,
    #[error(
        "the scanned code {0} is not a payment code (payment codes are digits only); ask the customer to show the payment code, not a QR link"
    )]
    NotDigits(String),
    #[error(
        "the scanned code {0} matches no wallet's payment code (wrong length or prefix); ask the customer to refresh the code and scan again"
    )]
    Unknown(String),
}

/// A customer's payment code, held in memory only until the pay request has been sent.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode {
    code: String,
    wallet: Wallet,
}

impl AuthCode {
    /// Classifies `raw` with `rules`. Whitespace around the code (a scanner's CR/LF) is ignored.
    pub fn classify(raw: &str, rules: &[CodeRule]) -> Result<AuthCode, CodeError> {
        let code = raw.trim();
        if code.is_empty() {
            return Err(CodeError::Empty);
        }
        if code.len() > 64 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::NotDigits(mask(code)));
        }
        rules
            .iter()
            .find(|r| {
                (r.min_len..=r.max_len).contains(&code.len())
                    && r.prefixes.iter().any(|p| code.starts_with(p.as_str()))
            })
            .map(|r| AuthCode {
                code: code.to_string(),
                wallet: r.wallet,
            })
            .ok_or_else(|| CodeError::Unknown(mask(code)))
    }

    pub fn wallet(&self) -> Wallet {
        self.wallet
    }

    /// The full code, for the one request that needs it. Do not store or log the result.
    pub fn expose(&self) -> &str {
        &self.code
    }

    pub fn masked(&self) -> String {
        mask(&self.code)
    }

    /// A keyed fingerprint for duplicate-scan detection: HMAC-SHA256(device key, code), hex.
    /// Without the device key it reveals nothing about the code.
    pub fn fingerprint(&self, key: &[u8]) -> String {
        fingerprint(key, &self.code)
    }
}

impl fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthCode({} {})", self.wallet, self.masked())
    }
}

impl fmt::Display for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// First four and last four characters, the rest starred; short values are starred whole.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// HMAC-SHA256 of any secret under the device key, as lowercase hex.
pub fn fingerprint(key: &[u8], secret: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(secret.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(s: &str) -> Result<Wallet, CodeError> {
        AuthCode::classify(s, &default_rules()).map(|c| c.wallet())
    }

    #[test]
    fn classifies_every_wallet() {
        assert_eq!(classify("134567890123456789"), Ok(Wallet::Wechat));
        assert_eq!(classify("104567890123456789"), Ok(Wallet::Wechat));
        assert_eq!(classify("284567890123456789"), Ok(Wallet::Alipay));
        assert_eq!(classify("2545678901234567"), Ok(Wallet::Alipay));
        assert_eq!(classify("304567890123456789012345"), Ok(Wallet::Alipay));
        assert_eq!(classify("6234567890123456789"), Ok(Wallet::Unionpay));
        assert_eq!(classify("184567890123456789"), Ok(Wallet::Jdpay));
        assert_eq!(classify("914567890123456789"), Ok(Wallet::Qq));
        assert_eq!(classify("514567890123456789"), Ok(Wallet::Bestpay));
        assert_eq!(classify("0134567890123456789"), Ok(Wallet::Ecny));
        assert_eq!(classify(" 134567890123456789\r\n"), Ok(Wallet::Wechat));
    }

    #[test]
    fn refuses_codes_that_match_nothing() {
        assert_eq!(classify(""), Err(CodeError::Empty));
        assert!(matches!(
            classify("13456789012345678"),
            Err(CodeError::Unknown(_))
        )); // 17 digits
        assert!(matches!(
            classify("164567890123456789"),
            Err(CodeError::Unknown(_))
        )); // prefix 16
        assert!(matches!(
            classify("254567890123456"),
            Err(CodeError::Unknown(_))
        )); // 15 digits
        assert!(matches!(
            classify("https://qr.alipay.com/x"),
            Err(CodeError::NotDigits(_))
        ));
        assert!(matches!(
            classify("13456789012345678a"),
            Err(CodeError::NotDigits(_))
        ));
    }

    #[test]
    fn errors_and_debug_never_show_the_code() {
        let code = "134567890123456789";
        let c = AuthCode::classify(code, &default_rules()).unwrap();
        assert!(!format!("{c:?}").contains(code));
        assert!(!format!("{c}").contains(code));
        assert_eq!(c.masked(), "1345**********6789");
        let err = AuthCode::classify("99456789012345678901", &default_rules()).unwrap_err();
        assert!(!err.to_string().contains("99456789012345678901"));
    }

    #[test]
    fn fingerprint_is_keyed_and_stable() {
        let c = AuthCode::classify("134567890123456789", &default_rules()).unwrap();
        assert_eq!(c.fingerprint(b"k1"), c.fingerprint(b"k1"));
        assert_ne!(c.fingerprint(b"k1"), c.fingerprint(b"k2"));
        assert!(!c.fingerprint(b"k1").contains("134567890123456789"));
        assert_eq!(c.fingerprint(b"k1").len(), 64);
    }

    #[test]
    fn paytype_round_trip() {
        for w in Wallet::ALL {
            assert_eq!(Wallet::from_paytype(w.paytype()), Some(w));
        }
    }
}
