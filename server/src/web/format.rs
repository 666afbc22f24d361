//! Times and durations as people at the desk read them: Beijing time (UTC+8, no daylight
//! saving), Chinese units.

use sync_core::Timestamp;

const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;

/// Civil date and time in Beijing: (year, month, day, hour, minute).
fn civil(t: Timestamp) -> (i64, u32, u32, u32, u32) {
    let ms = t.millis() + BEIJING_OFFSET_MS;
    let days = ms.div_euclid(86_400_000);
    let secs = ms.rem_euclid(86_400_000) / 1000;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, (secs / 3600) as u32, (secs % 3600 / 60) as u32)
}

/// `12月5日 09:30`.
pub fn datetime(t: Timestamp) -> String {
    let (_, mo, d, h, mi) = civil(t);
    format!("{mo}月{d}日 {h:02}:{mi:02}")
}

/// `2026-12-05 09:30`, for printed lists and exports.
pub fn full_datetime(t: Timestamp) -> String {
    let (y, mo, d, h, mi) = civil(t);
    format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// `2026-12-05`.
pub fn date(t: Timestamp) -> String {
    let (y, mo, d, _, _) = civil(t);
    format!("{y}-{mo:02}-{d:02}")
}

/// The start (Beijing midnight) of a `YYYY-MM-DD` date, as a form's date field sends it.
pub fn parse_date(s: &str) -> Option<Timestamp> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    // A civil date to days since 1970-01-01 (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Timestamp::from_millis(days * 86_400_000 - BEIJING_OFFSET_MS))
}

/// A length of time in the largest unit that fits: `45秒`, `8分钟`, `3小时20分`, `2天5小时`.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}秒"),
        (0, 0, m) => format!("{m}分钟"),
        (0, h, 0) => format!("{h}小时"),
        (0, h, m) => format!("{h}小时{m}分"),
        (d, 0, _) => format!("{d}天"),
        (d, h, _) => format!("{d}天{h}小时"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time() {
        // 2026-12-05T15:30:00Z is 23:30 in Beijing; 16:30Z is past midnight there.
        let t = Timestamp::from_millis(1_796_484_600_000);
        assert_eq!(full_datetime(t), "2026-12-05 23:30");
        assert_eq!(datetime(Timestamp::from_millis(1_796_488_200_000)), "12月6日 00:30");
        assert_eq!(date(Timestamp::from_millis(0)), "1970-01-01");
        let midnight = parse_date("2026-12-06").expect("a date");
        assert_eq!(full_datetime(midnight), "2026-12-06 00:00");
        assert_eq!(date(parse_date("2024-02-29").expect("leap day")), "2024-02-29");
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("昨天"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration(45_000), "45秒");
        assert_eq!(duration(8 * 60_000), "8分钟");
        assert_eq!(duration(3 * 3_600_000 + 20 * 60_000), "3小时20分");
        assert_eq!(duration(2 * 86_400_000 + 5 * 3_600_000), "2天5小时");
        assert_eq!(duration(-5), "0秒");
    }
}
