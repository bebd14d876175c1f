//! Calendar arithmetic, without reading any clock.

/// The civil date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (i32::try_from(y).unwrap_or(i32::MAX), u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// The day count since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `y` is a leap year.
pub fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` of year `y`.
pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The day `months` calendar months after day `days`: the same day of the month, or the
/// month's last day when it has no such day (31 January + 1 month = 28 or 29 February).
pub fn add_months(days: i64, months: u32) -> i64 {
    let (y, m, d) = civil_from_days(days);
    let index = i64::from(y) * 12 + i64::from(m - 1) + i64::from(months);
    let (ny, nm) =
        (i32::try_from(index.div_euclid(12)).unwrap_or(i32::MAX), u32::try_from(index.rem_euclid(12)).unwrap_or(0) + 1);
    days_from_civil(ny, nm, d.min(days_in_month(ny, nm)))
}

/// Whether day `days` is a Saturday or a Sunday (1970-01-01 was a Thursday).
pub fn is_weekend(days: i64) -> bool {
    days.rem_euclid(7) >= 2 && days.rem_euclid(7) <= 3
}

/// The day `n` business days (Monday to Friday) after day `days`. From a weekend day,
/// counting starts as from the Friday before it.
pub fn add_business_days(days: i64, n: u32) -> i64 {
    let friday = days
        - match days.rem_euclid(7) {
            2 => 1,
            3 => 2,
            _ => 0,
        };
    let mut day = friday + 7 * i64::from(n / 5);
    let mut left = n % 5;
    // At most four business days remain: all within the next six calendar days.
    for _ in 0..6 {
        if left == 0 {
            break;
        }
        day += 1;
        if !is_weekend(day) {
            left -= 1;
        }
    }
    day
}

/// µs in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// The last µs of day `days`.
pub fn end_of_day_us(days: i64) -> i64 {
    (days + 1) * DAY_US - 1
}

/// A time in µs since the epoch as RFC 3339 in UTC, to the microsecond:
/// `2026-12-03T22:55:00.000000Z`.
pub fn rfc3339_from_us(us: i64) -> String {
    let (days, in_day) = (us.div_euclid(DAY_US), us.rem_euclid(DAY_US));
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{:06}Z", in_day % 1_000_000)
}

/// Reads a time as an operator writes it: a date (`2026-12-03`, its first µs in UTC) or
/// RFC 3339 (`2026-12-03T22:55:00Z`, `2026-12-03T23:55:00.5+01:00`). `None` when it is
/// neither, or names no real day or time.
pub fn us_from_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = t.get(r)?;
        part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    let sep = |i: usize, c: u8| t.as_bytes().get(i) == Some(&c);
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !sep(4, b'-') || !sep(7, b'-') || !(1..=12).contains(&m) {
        return None;
    }
    let (y, m) = (i32::try_from(y).ok()?, u32::try_from(m).ok()?);
    if d < 1 || d > i64::from(days_in_month(y, m)) {
        return None;
    }
    let day_us = days_from_civil(y, m, u32::try_from(d).ok()?) * DAY_US;
    if t.len() == 10 {
        return Some(day_us);
    }
    if !(sep(10, b'T') || sep(10, b't') || sep(10, b' ')) || !sep(13, b':') || !sep(16, b':') {
        return None;
    }
    let (h, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac_us = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &f[..digits.min(6)];
        frac_us = kept.parse::<i64>().ok()? * 10_i64.pow(6 - u32::try_from(kept.len()).ok()?);
        rest = &f[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let b = rest.as_bytes();
            let two = |i: usize| -> Option<i64> {
                let p = rest.get(i..i + 2)?;
                p.bytes().all(|c| c.is_ascii_digit()).then(|| p.parse().ok()).flatten()
            };
            if rest.len() != 6 || b[3] != b':' {
                return None;
            }
            let (oh, om) = (two(1)?, two(4)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(day_us + ((h * 3600 + min * 60 + sec) - offset_s) * 1_000_000 + frac_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_times_are_read_as_rfc3339_or_dates() {
        let day = days_from_civil(2026, 12, 3) * DAY_US;
        assert_eq!(us_from_rfc3339("2026-12-03"), Some(day));
        assert_eq!(us_from_rfc3339(" 2026-12-03T22:55:00Z "), Some(day + (22 * 3600 + 55 * 60) * 1_000_000));
        assert_eq!(us_from_rfc3339("2026-12-03t00:00:01z"), Some(day + 1_000_000));
        assert_eq!(us_from_rfc3339("2026-12-03 00:00:00Z"), Some(day));
        assert_eq!(
            us_from_rfc3339("2026-12-03T23:55:00.5+01:00"),
            Some(day + (22 * 3600 + 55 * 60) * 1_000_000 + 500_000)
        );
        assert_eq!(us_from_rfc3339("2026-12-03T00:00:00.1234567-00:30"), Some(day + 1800 * 1_000_000 + 123_456));
        assert_eq!(us_from_rfc3339(&rfc3339_from_us(day + 42)), Some(day + 42), "round trip");
        for bad in [
            "",
            "2026-13-01",
            "2026-02-29",
            "2026-00-10",
            "2026-12-00",
            "2026/12/03",
            "2026/12-03",
            "2026-12/03",
            "26-12-03",
            "2026-12-03T24:00:00Z",
            "2026-12-03T23:60:00Z",
            "2026-12-03T23:00:61Z",
            "2026-12-03T23:00:00",
            "2026-12-03T23:00:00.Z",
            "2026-12-03T23:00:00+0100",
            "2026-12-03T23:00:00+24:00",
            "2026-12-03T23:00:00+01:60",
            "2026-12-03X23:00:00Z",
            "2026-12-03T23-00:00Z",
            "2026-12-03T23:00-00Z",
            "2026-12-03T2x:00:00Z",
            "2026-12-03T23:00:00*01:00",
            "2026-12-03T23:00:00+01-00",
            "2026-12-03Z",
            "+026-12-03",
        ] {
            assert_eq!(us_from_rfc3339(bad), None, "{bad}");
        }
        assert!(us_from_rfc3339("2028-02-29").is_some());
        assert_eq!(us_from_rfc3339("2026-12-01"), Some(day - 2 * DAY_US), "a month's first day");
        assert_eq!(us_from_rfc3339("2026-12-03T23:59:00+23:59"), Some(day), "the widest offset");
        assert!(us_from_rfc3339("2026-12-31T23:59:60Z").is_some(), "a leap second");
    }

    #[test]
    fn days_and_dates_round_trip() {
        for days in [-800_000, -719_469, -1, 0, 58, 59, 11_016, 19_811, 47_540, 47_541, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2024, 3, 29), 19_811);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn months_end_on_the_same_day_or_the_months_last() {
        let day = |y, m, d| days_from_civil(y, m, d);
        assert_eq!(add_months(day(2026, 1, 31), 1), day(2026, 2, 28), "no 31 February");
        assert_eq!(add_months(day(2028, 1, 31), 1), day(2028, 2, 29), "a leap year");
        assert_eq!(add_months(day(2026, 1, 15), 1), day(2026, 2, 15));
        assert_eq!(add_months(day(2026, 11, 30), 3), day(2027, 2, 28), "across a year");
        assert_eq!(add_months(day(2026, 12, 31), 2), day(2027, 2, 28));
        assert_eq!(add_months(day(2026, 3, 31), 1), day(2026, 4, 30));
        assert_eq!(add_months(day(2026, 5, 31), 0), day(2026, 5, 31));
        assert_eq!(add_months(day(2026, 8, 31), 12), day(2027, 8, 31));
        assert_eq!((days_in_month(2100, 2), days_in_month(2000, 2), days_in_month(2026, 12)), (28, 29, 31));
        assert_eq!(
            (days_in_month(2026, 4), days_in_month(2026, 6), days_in_month(2026, 9), days_in_month(2026, 11)),
            (30, 30, 30, 30)
        );
        assert_eq!((days_in_month(2026, 1), days_in_month(2026, 7)), (31, 31));
    }

    #[test]
    fn business_days_skip_weekends() {
        let day = |y, m, d| days_from_civil(y, m, d);
        assert!(!is_weekend(0), "1970-01-01 was a Thursday");
        assert!(is_weekend(day(2026, 12, 5)) && is_weekend(day(2026, 12, 6)), "a Saturday and a Sunday");
        assert!(!is_weekend(day(2026, 12, 4)) && !is_weekend(day(2026, 12, 7)));
        // From Friday 4 December 2026: ten business days end on Friday 18 December.
        assert_eq!(add_business_days(day(2026, 12, 4), 10), day(2026, 12, 18));
        assert_eq!(add_business_days(day(2026, 12, 5), 1), day(2026, 12, 7), "from a Saturday");
        assert_eq!(add_business_days(day(2026, 12, 4), 0), day(2026, 12, 4));
        assert_eq!(add_business_days(day(2026, 12, 7), 15), day(2026, 12, 28));
        assert_eq!(add_business_days(day(2026, 12, 6), 5), day(2026, 12, 11), "from a Sunday");
        assert_eq!(add_business_days(day(2026, 12, 5), 5), day(2026, 12, 11), "from a Saturday");
        assert_eq!(add_business_days(day(2026, 12, 9), 4), day(2026, 12, 15), "Wednesday + 4 crosses a weekend");
        assert_eq!(add_business_days(day(2026, 12, 10), 3), day(2026, 12, 15));
        for n in 0..30 {
            let end = add_business_days(day(2026, 12, 4), n);
            assert!(!is_weekend(end) || n == 0, "{n} business days never end on a weekend");
            let counted = (day(2026, 12, 4) + 1..=end).filter(|d| !is_weekend(*d)).count();
            assert_eq!(counted, n as usize, "{n}");
        }
    }

    #[test]
    fn a_day_ends_on_its_last_microsecond() {
        assert_eq!(end_of_day_us(0), DAY_US - 1);
        assert_eq!(rfc3339_from_us(end_of_day_us(19_811)), "2024-03-29T23:59:59.999999Z");
    }

    #[test]
    fn times_in_rfc_3339() {
        assert_eq!(rfc3339_from_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_from_us(1_796_338_500_123_456), "2026-12-03T22:55:00.123456Z");
        assert_eq!(rfc3339_from_us(86_399_999_999), "1970-01-01T23:59:59.999999Z");
        assert_eq!(rfc3339_from_us(3_723_000_007), "1970-01-01T01:02:03.000007Z");
        assert_eq!(rfc3339_from_us(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_811), (2024, 3, 29));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1), "the year's start moves from March to January");
        assert_eq!(civil_from_days(58), (1970, 2, 28));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1), "the first day of the era");
        assert_eq!(civil_from_days(-719_469), (0, 2, 29), "a leap day four centuries back");
        assert_eq!(civil_from_days(47_541), (2100, 3, 1), "2100 is not a leap year");
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }
}
