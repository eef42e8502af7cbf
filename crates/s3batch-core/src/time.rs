//! Timestamps: milliseconds since the epoch, formatted the way AWS writes them.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use crate::Millis;

/// Now, in milliseconds since the epoch.
pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

/// `2024-01-02T03:04:05.678Z`: the ISO-8601 form that botocore and the Rust SDK both parse.
pub fn format_iso(ms: Millis) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A millisecond timestamp as a chrono `DateTime<Utc>` (out-of-range values clamp to the epoch).
pub fn to_datetime(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Parse an ISO-8601 / RFC 3339 timestamp (what clients send) into milliseconds.
pub fn parse_iso(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|d| d.with_timezone(&Utc).timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ms = 1_704_164_645_678;
        assert_eq!(format_iso(ms), "2024-01-02T03:04:05.678Z");
        assert_eq!(parse_iso("2024-01-02T03:04:05.678Z"), Some(ms));
        assert_eq!(parse_iso("2024-01-02T03:04:05Z"), Some(1_704_164_645_000));
        assert_eq!(parse_iso("yesterday"), None);
    }
}
