//! Business days (会计日). A business day runs from 00:00 to 24:00 at a fixed offset from UTC
//! (Asia/Shanghai, +08:00, has no daylight saving, so it is exactly that). A day is named by
//! its calendar date, `YYYY-MM-DD`, and counted as days since 1970-01-01 — the same number in
//! every zone, so a channel's bill of `2026-12-05` and our records of `2026-12-05` meet.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

pub const MS_PER_DAY: i64 = 86_400_000;
const MS_PER_MINUTE: i64 = 60_000;

/// Asia/Shanghai: the default cut-over zone.
pub const SHANGHAI_UTC_OFFSET_MINUTES: i32 = 480;

/// One business day: days since 1970-01-01 (the calendar date's number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusinessDay(i64);

impl BusinessDay {
    pub const fn from_days(days: i64) -> BusinessDay {
        BusinessDay(days)
    }

    pub const fn days(self) -> i64 {
        self.0
    }

    /// The business day `unix_ms` falls on where days turn at 00:00, `utc_offset_minutes`
    /// east of UTC: 23:59:59.999 local is still that day, 00:00 local is the next.
    pub fn of(unix_ms: u64, utc_offset_minutes: i32) -> BusinessDay {
        // i128: a u64 of milliseconds plus any offset cannot overflow it.
        let local_ms =
            i128::from(unix_ms) + i128::from(utc_offset_minutes) * i128::from(MS_PER_MINUTE);
        let day = local_ms.div_euclid(i128::from(MS_PER_DAY));
        BusinessDay(i64::try_from(day).unwrap_or(i64::MAX))
    }

    /// The instant the day starts (its cut-over from the day before), Unix milliseconds;
    /// 0 for a day that starts before the epoch.
    pub fn start_ms(self, utc_offset_minutes: i32) -> u64 {
        let start = i128::from(self.0) * i128::from(MS_PER_DAY)
            - i128::from(utc_offset_minutes) * i128::from(MS_PER_MINUTE);
        u64::try_from(start.max(0)).unwrap_or(u64::MAX)
    }

    /// The instant the day ends (the next day's start).
    pub fn end_ms(self, utc_offset_minutes: i32) -> u64 {
        self.next().start_ms(utc_offset_minutes)
    }

    pub fn next(self) -> BusinessDay {
        BusinessDay(self.0.saturating_add(1))
    }

    pub fn previous(self) -> BusinessDay {
        BusinessDay(self.0.saturating_sub(1))
    }

    /// Parses `YYYY-MM-DD` (1970 or later); `None` for anything else.
    pub fn parse(date: &str) -> Option<BusinessDay> {
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
        // humantime checks the calendar (no 2026-02-30).
        let midnight = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
        let since_epoch = midnight.duration_since(UNIX_EPOCH).ok()?;
        i64::try_from(since_epoch.as_secs() / 86_400).ok().map(BusinessDay)
    }
}

impl fmt::Display for BusinessDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = u64::try_from(self.0.max(0)).unwrap_or(0).saturating_mul(86_400);
        let stamp = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
        let text = stamp.to_string();
        f.write_str(text.get(..10).unwrap_or(&text))
    }
}

impl serde::Serialize for BusinessDay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_turn_at_local_midnight_and_round_trip() {
        let day = BusinessDay::parse("2026-12-05").unwrap();
        assert_eq!(day.to_string(), "2026-12-05");
        assert_eq!(BusinessDay::parse("1970-01-01"), Some(BusinessDay::from_days(0)));
        assert_eq!(BusinessDay::parse("2024-03-01").map(BusinessDay::days), Some(19_783));
        // 00:00 in Shanghai is 16:00 UTC the day before.
        let start = day.start_ms(SHANGHAI_UTC_OFFSET_MINUTES);
        assert_eq!(start, (day.days() as u64) * 86_400_000 - 8 * 3_600_000);
        assert_eq!(BusinessDay::of(start, SHANGHAI_UTC_OFFSET_MINUTES), day);
        assert_eq!(BusinessDay::of(start - 1, SHANGHAI_UTC_OFFSET_MINUTES), day.previous());
        assert_eq!(BusinessDay::of(day.end_ms(SHANGHAI_UTC_OFFSET_MINUTES), 480), day.next());
        for bad in ["2026-02-30", "2026-2-01", "../etc/pw", "2026-12-05T00", ""] {
            assert_eq!(BusinessDay::parse(bad), None, "{bad}");
        }
    }
}
