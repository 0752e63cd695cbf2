//! Wall-clock helpers. Times are Unix milliseconds inside the simulator and RFC 3339 UTC on
//! the wire and in statements; a statement day is a UTC calendar day.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MS_PER_DAY: u64 = 86_400_000;

pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// `2024-05-01T08:30:00.123Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// The UTC day `unix_ms` falls on, as days since the epoch.
pub fn day_of(unix_ms: u64) -> u64 {
    unix_ms / MS_PER_DAY
}

/// Parses `YYYY-MM-DD` into days since the epoch; `None` for anything else.
pub fn parse_day(date: &str) -> Option<u64> {
    let shaped = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    let midnight = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    let since_epoch = midnight.duration_since(UNIX_EPOCH).ok()?;
    Some(since_epoch.as_secs() / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2024-03-01"), Some(19_783));
        assert_eq!(day_of(19_783 * MS_PER_DAY + 5), 19_783);
        assert_eq!(rfc3339_ms(19_783 * MS_PER_DAY + 5), "2024-03-01T00:00:00.005Z");
        assert_eq!(parse_day("2024-02-30"), None);
        assert_eq!(parse_day("2024-3-01"), None);
        assert_eq!(parse_day("../etc/pw"), None);
    }
}
