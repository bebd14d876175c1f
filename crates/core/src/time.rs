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

/// A time in µs since the epoch as RFC 3339 in UTC, to the microsecond:
/// `2026-12-03T22:55:00.000000Z`.
pub fn rfc3339_from_us(us: i64) -> String {
    const DAY_US: i64 = 86_400_000_000;
    let (days, in_day) = (us.div_euclid(DAY_US), us.rem_euclid(DAY_US));
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{:06}Z", in_day % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::{civil_from_days, rfc3339_from_us};

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
