//! Wall-clock helpers. Times are Unix milliseconds inside the simulator and in statements,
//! RFC 3339 UTC on the wire. A statement's business day runs from 00:00 to 24:00 at a fixed
//! offset from UTC (a zone without daylight saving, such as Asia/Shanghai, is exactly that).

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

pub const MS_PER_MINUTE: i64 = 60_000;

/// The business day `unix_ms` falls on, as days since the epoch, where days turn at 00:00 at
/// `utc_offset_minutes` east of UTC: 23:59:59.999 local is still that day, 00:00 local the
/// next. Days before the epoch are negative (floor division, not truncation).
pub fn business_day_of(unix_ms: u64, utc_offset_minutes: i32) -> i64 {
    // i128: a u64 of milliseconds plus any offset cannot overflow it.
    let local_ms = i128::from(unix_ms) + i128::from(utc_offset_minutes) * i128::from(MS_PER_MINUTE);
    let day = local_ms.div_euclid(i128::from(MS_PER_DAY));
    i64::try_from(day).unwrap_or(i64::MAX)
}

/// Parses `YYYY-MM-DD` into days since the epoch (a calendar date names the same day number
/// in every zone); `None` for anything else, including dates before 1970.
pub fn parse_day(date: &str) -> Option<i64> {
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
    i64::try_from(since_epoch.as_secs() / 86_400).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2024-03-01"), Some(19_783));
        assert_eq!(business_day_of(19_783 * MS_PER_DAY + 5, 0), 19_783);
        assert_eq!(rfc3339_ms(19_783 * MS_PER_DAY + 5), "2024-03-01T00:00:00.005Z");
        assert_eq!(parse_day("2024-02-30"), None);
        assert_eq!(parse_day("2024-3-01"), None);
        assert_eq!(parse_day("../etc/pw"), None);
    }

    #[test]
    fn business_days_turn_at_local_midnight() {
        const SHANGHAI_MINUTES: i32 = 480;
        let day = parse_day("2024-03-01").unwrap();
        // 2024-03-01T00:00 at UTC+08:00 is 2024-02-29T16:00Z.
        let midnight_ms = 19_783 * MS_PER_DAY - 8 * 3_600_000;
        assert_eq!(business_day_of(midnight_ms - 1, SHANGHAI_MINUTES), day - 1, "23:59:59.999");
        assert_eq!(business_day_of(midnight_ms, SHANGHAI_MINUTES), day, "00:00 local");
        assert_eq!(business_day_of(midnight_ms + MS_PER_DAY - 1, SHANGHAI_MINUTES), day);
        assert_eq!(business_day_of(midnight_ms + MS_PER_DAY, SHANGHAI_MINUTES), day + 1);
        // The same instant is a day earlier in UTC.
        assert_eq!(business_day_of(midnight_ms, 0), day - 1);
        // West of UTC, and before the epoch.
        assert_eq!(business_day_of(19_783 * MS_PER_DAY + 4 * 3_600_000, -300), day - 1);
        assert_eq!(business_day_of(19_783 * MS_PER_DAY + 5 * 3_600_000, -300), day);
        assert_eq!(business_day_of(0, -1), -1);
    }
}
