//! Small shared helpers: wall-clock reading and the time formats gateways expect.
//!
//! This is the one place that reads the wall clock for the I/O layers; the core never calls it.

use chrono::{FixedOffset, TimeZone, Utc};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn beijing() -> FixedOffset {
    // UTC+8 is a valid offset; the fallback is never taken.
    FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()))
}

/// `yyyyMMddHHmmss` in Beijing time, as the aggregator and ACP want.
pub fn beijing_stamp(ms: i64) -> String {
    match beijing().timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y%m%d%H%M%S").to_string(),
        None => "19700101080000".to_string(),
    }
}

/// `yyyy-MM-dd HH:mm:ss` Beijing time, for people.
pub fn beijing_human(ms: i64) -> String {
    match beijing().timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "?".to_string(),
    }
}

/// The Beijing calendar date `yyyy-MM-dd` of an instant.
pub fn beijing_date(ms: i64) -> String {
    match beijing().timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d").to_string(),
        None => "1970-01-01".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_beijing_time() {
        // 2026-11-22T02:00:00Z is 10:00 in Beijing.
        assert_eq!(beijing_stamp(1_795_312_800_000), "20261122100000");
        assert_eq!(beijing_human(1_795_312_800_000), "2026-11-22 10:00:00");
        assert_eq!(
            beijing_date(1_795_312_800_000 + 14 * 3_600_000),
            "2026-11-23"
        );
    }
}

/// A secret held in memory (a key, a token): its Debug and Display print `[redacted]`, so a
/// struct holding one may derive Debug, and its bytes are zeroed when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(zeroize::Zeroizing::new(s.into()))
    }

    /// The secret itself, for the one place that signs or sends with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret::new(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn a_secret_prints_redacted() {
        let s = Secret::new("e2e-test-md5-key");
        assert_eq!(format!("{s} {s:?}"), "[redacted] Secret([redacted])");
        assert_eq!(s.expose(), "e2e-test-md5-key");
    }
}
