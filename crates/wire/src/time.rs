//! Dates as mail headers write them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// English month abbreviations, as mail and IMAP dates write them.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC moment taken apart: (weekday, year, month name, day, h, m, s).
fn parts(unix: u64) -> (&'static str, i64, &'static str, i64, u64, u64, u64) {
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    let (y, m, d) = civil_from_days(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    let month = MONTHS[(m - 1) as usize];
    (
        weekday,
        y,
        month,
        d,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
    )
}

/// RFC 5322 §3.3 date in UTC, e.g. `Thu, 26 Nov 2026 15:29:38 +0000`.
pub fn rfc5322_date(unix: u64) -> String {
    let (weekday, y, month, d, h, mi, s) = parts(unix);
    format!("{weekday}, {d:02} {month} {y} {h:02}:{mi:02}:{s:02} +0000")
}

/// The C `asctime` form in UTC that mbox `From ` lines carry, e.g.
/// `Thu Nov 26 15:29:38 2026` (what mutt and procmail expect there).
pub fn asctime_date(unix: u64) -> String {
    let (weekday, y, month, d, h, mi, s) = parts(unix);
    format!("{weekday} {month} {d:>2} {h:02}:{mi:02}:{s:02} {y}")
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; the
/// inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_days_round_trip() {
        for days in [-719_468i64, -1, 0, 1, 11_016, 20_513, 2_932_896] {
            let (y, m, d) = super::civil_from_days(days);
            assert_eq!(super::days_from_civil(y, m as u32, d as u32), days);
        }
        assert_eq!(super::days_from_civil(1994, 2, 1), 8797);
    }

    #[test]
    fn dates() {
        assert_eq!(super::rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            super::rfc5322_date(1_795_707_778),
            "Thu, 26 Nov 2026 15:42:58 +0000"
        );
        assert_eq!(
            super::rfc5322_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
    }

    #[test]
    fn asctime_for_mbox_from_lines() {
        assert_eq!(
            super::asctime_date(1_795_707_903),
            "Thu Nov 26 15:45:03 2026"
        );
        assert_eq!(super::asctime_date(0), "Thu Jan  1 00:00:00 1970");
    }
}
