//! Money: amounts held as integer fen, parsed from the yuan strings people type.
//!
//! Floating point never touches an amount. Parsing is strict on purpose: a cashier's typo must be
//! refused with a message that says what was wrong, never rounded into a different charge.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An amount of renminbi in fen (分). Always positive when it describes a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(u64);

/// Why a typed amount was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount is empty: type it in yuan, for example 12.34")]
    Empty,
    #[error("amount {0:?} is not a number in yuan (digits with at most two decimals, like 12.34)")]
    NotANumber(String),
    #[error("amount {0:?} has more than two decimals; the smallest unit is 0.01 yuan (one fen)")]
    TooPrecise(String),
    #[error("amount must be positive; {0:?} is not")]
    NotPositive(String),
    #[error("amount {0} is above the configured limit of {1} per payment")]
    AboveLimit(Amount, Amount),
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

impl Amount {
    /// The largest amount any path accepts before configuration limits apply: 10 million yuan.
    pub const CEILING: Amount = Amount(1_000_000_000);

    pub const fn from_fen(fen: u64) -> Amount {
        Amount(fen)
    }

    pub const fn fen(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The last two digits in fen, which select the sandbox's behaviour.
    pub const fn scenario(self) -> u64 {
        self.0 % 100
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// Parses a yuan amount as a person types it: `12`, `12.3`, `12.34`, `0.01`.
    /// Signs, exponents, spaces, thousands separators and a third decimal are refused.
    pub fn parse_yuan(text: &str) -> Result<Amount, AmountError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(AmountError::Empty);
        }
        if t.starts_with('-') {
            return Err(AmountError::NotPositive(text.to_string()));
        }
        let t = t.strip_prefix('¥').unwrap_or(t);
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && frac.is_empty() {
            return Err(AmountError::NotANumber(text.to_string()));
        }
        if !digits(whole) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
            return Err(AmountError::NotANumber(text.to_string()));
        }
        if frac.len() > 2 {
            return Err(AmountError::TooPrecise(text.to_string()));
        }
        let whole_fen: u64 = if whole.is_empty() {
            0
        } else {
            whole
                .parse::<u64>()
                .ok()
                .and_then(|w| w.checked_mul(100))
                .ok_or_else(|| AmountError::Overflow(text.to_string()))?
        };
        let frac_fen: u64 = match frac.len() {
            0 => 0,
            1 => u64::from(frac.as_bytes()[0] - b'0') * 10,
            _ => u64::from(frac.as_bytes()[0] - b'0') * 10 + u64::from(frac.as_bytes()[1] - b'0'),
        };
        let fen = whole_fen
            .checked_add(frac_fen)
            .ok_or_else(|| AmountError::Overflow(text.to_string()))?;
        if fen == 0 {
            return Err(AmountError::NotPositive(text.to_string()));
        }
        if fen > Self::CEILING.0 {
            return Err(AmountError::Overflow(text.to_string()));
        }
        Ok(Amount(fen))
    }

    /// Parses and applies the per-payment limit from configuration.
    pub fn parse_with_limit(text: &str, limit: Amount) -> Result<Amount, AmountError> {
        let a = Self::parse_yuan(text)?;
        if a > limit {
            return Err(AmountError::AboveLimit(a, limit));
        }
        Ok(a)
    }

    /// Parses a fen count as gateways send it (`"1250"`).
    pub fn parse_fen(text: &str) -> Option<Amount> {
        if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(Amount)
    }
}

/// Yuan with two decimals, as printed on receipts and screens: `12.34`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_cashiers_type() {
        assert_eq!(Amount::parse_yuan("12.34").unwrap().fen(), 1234);
        assert_eq!(Amount::parse_yuan("12.3").unwrap().fen(), 1230);
        assert_eq!(Amount::parse_yuan("12").unwrap().fen(), 1200);
        assert_eq!(Amount::parse_yuan("0.01").unwrap().fen(), 1);
        assert_eq!(Amount::parse_yuan(".5").unwrap().fen(), 50);
        assert_eq!(Amount::parse_yuan(" 7.05 ").unwrap().fen(), 705);
        assert_eq!(Amount::parse_yuan("¥1.00").unwrap().fen(), 100);
    }

    #[test]
    fn refuses_what_would_be_a_different_charge() {
        assert_eq!(Amount::parse_yuan(""), Err(AmountError::Empty));
        assert!(matches!(
            Amount::parse_yuan("0"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("0.00"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("-1"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("1.234"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("1e3"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("1,000"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("1."),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("."),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("+1"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("１２"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_yuan("99999999999999999999"),
            Err(AmountError::Overflow(_))
        ));
        assert!(matches!(
            Amount::parse_with_limit("5000.01", Amount::from_fen(500_000)),
            Err(AmountError::AboveLimit(_, _))
        ));
    }

    #[test]
    fn prints_two_decimals() {
        assert_eq!(Amount::from_fen(1234).to_string(), "12.34");
        assert_eq!(Amount::from_fen(5).to_string(), "0.05");
        assert_eq!(Amount::from_fen(100).to_string(), "1.00");
    }

    #[test]
    fn round_trips_every_small_amount() {
        for fen in 1..5000u64 {
            let a = Amount::from_fen(fen);
            assert_eq!(Amount::parse_yuan(&a.to_string()).unwrap(), a);
        }
    }

    #[test]
    fn gateway_fen_strings() {
        assert_eq!(Amount::parse_fen("1250"), Some(Amount::from_fen(1250)));
        assert_eq!(Amount::parse_fen("-1"), None);
        assert_eq!(Amount::parse_fen("1.0"), None);
        assert_eq!(Amount::parse_fen(""), None);
    }
}
