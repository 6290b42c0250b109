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
