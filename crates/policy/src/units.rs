//! Durations, retention periods, dates, emails and URLs as the policy writes them.

use std::fmt;

/// A span of time as a policy states it: a count and a unit.
///
/// Months and years are kept as calendar units rather than converted to hours,
/// because "one month" in law is a calendar month; [`PolicyDuration::approx_hours`]
/// gives a comparable size for ordering (30-day months, 365-day years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyDuration {
    /// How many units.
    pub count: u32,
    /// Which unit.
    pub unit: Unit,
}

/// The unit of a [`PolicyDuration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Hours (`h`).
    Hours,
    /// Days (`d`).
    Days,
    /// Weeks (`w`).
    Weeks,
    /// Calendar months (`mo`).
    Months,
    /// Calendar years (`y`).
    Years,
}

/// Why a duration did not parse; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(pub String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const DURATION_HELP: &str =
    "write a whole number followed by a unit: h (hours), d (days), w (weeks), mo (months) or y (years), e.g. \"48h\", \"30d\", \"12mo\"";

impl PolicyDuration {
    /// Parses `"48h"`, `"30d"`, `"2w"`, `"1mo"`, `"2y"`.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let text = text.trim();
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError(format!("`{text}` is not a duration: {DURATION_HELP}")));
        }
        let count: u32 =
            text[..digits].parse().map_err(|_| DurationError(format!("`{text}` is too large a duration")))?;
        let unit = match text[digits..].trim() {
            "h" => Unit::Hours,
            "d" => Unit::Days,
            "w" => Unit::Weeks,
            "mo" => Unit::Months,
            "y" => Unit::Years,
            other => {
                return Err(DurationError(format!("`{other}` is not a duration unit in `{text}`: {DURATION_HELP}")))
            }
        };
        if count == 0 {
            return Err(DurationError(format!("`{text}` is zero: a duration must be at least 1 unit")));
        }
        Ok(Self { count, unit })
    }

    /// Size in hours, with 30-day months and 365-day years, for comparisons.
    pub fn approx_hours(self) -> u64 {
        let per = match self.unit {
            Unit::Hours => 1,
            Unit::Days => 24,
            Unit::Weeks => 24 * 7,
            Unit::Months => 24 * 30,
            Unit::Years => 24 * 365,
        };
        u64::from(self.count) * per
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (one, many) = match self.unit {
            Unit::Hours => ("hour", "hours"),
            Unit::Days => ("day", "days"),
            Unit::Weeks => ("week", "weeks"),
            Unit::Months => ("month", "months"),
            Unit::Years => ("year", "years"),
        };
        let word = if self.count == 1 { one } else { many };
        write!(f, "{} {word}", self.count)
    }
}

/// How long a category is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retention {
    /// A fixed period from collection.
    Fixed(PolicyDuration),
    /// While the account is open, then this much longer.
    AccountPlus(PolicyDuration),
    /// While the account is open.
    Account,
}

impl Retention {
    /// Parses `"2y"`, `"account"` or `"account+30d"`.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let trimmed = text.trim();
        match trimmed.strip_prefix("account") {
            Some("") => Ok(Self::Account),
            Some(rest) => match rest.trim_start().strip_prefix('+') {
                Some(d) => PolicyDuration::parse(d).map(Self::AccountPlus),
                None => Err(DurationError(format!(
                    "`{trimmed}` is not a retention period: write a duration (\"2y\"), \"account\", or \"account+30d\""
                ))),
            },
            None => PolicyDuration::parse(trimmed).map(Self::Fixed).map_err(|e| {
                DurationError(format!("{e}; or \"account\" / \"account+30d\" to keep data while the account is open"))
            }),
        }
    }

    /// A comparable size: account-bound retention sorts after any fixed period
    /// shorter than a century, and by its extra period among itself.
    pub fn rank(self) -> (u8, u64) {
        match self {
            Self::Fixed(d) => (0, d.approx_hours()),
            Self::Account => (1, 0),
            Self::AccountPlus(d) => (1, d.approx_hours()),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(d) => write!(f, "{d}"),
            Self::Account => write!(f, "while the account is open"),
            Self::AccountPlus(d) => write!(f, "while the account is open, then {d}"),
        }
    }
}

/// Checks a `YYYY-MM-DD` calendar date.
pub fn check_date(text: &str) -> Result<(), String> {
    let bad = || format!("`{text}` is not a date: write it as YYYY-MM-DD, e.g. \"2024-03-29\"");
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return Err(bad());
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("`{text}` has no month {m}: months run from 01 to 12")),
    };
    if d == 0 || d > days {
        return Err(format!("`{text}` has no day {d}: that month has {days} days"));
    }
    Ok(())
}

/// Checks an email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn check_email(text: &str) -> Result<(), String> {
    let bad = || format!("`{text}` is not an email address: write it as name@example.com");
    let (local, domain) = text.split_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if local.is_empty()
        || local.len() > 64
        || !domain_ok
        || text.chars().any(char::is_whitespace)
        || domain.contains('@')
    {
        return Err(bad());
    }
    Ok(())
}

/// Checks an absolute `http` or `https` URL with a host.
pub fn check_url(text: &str) -> Result<(), String> {
    let bad = || format!("`{text}` is not a web address: write an absolute URL starting with https:// (or http://)");
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")).ok_or_else(bad)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    let host_name = host.split(':').next().unwrap_or("");
    if host_name.is_empty()
        || text.chars().any(char::is_whitespace)
        || !host_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_order() {
        let h48 = PolicyDuration::parse("48h").unwrap();
        let d3 = PolicyDuration::parse("3d").unwrap();
        assert!(h48.approx_hours() < d3.approx_hours());
        assert_eq!(PolicyDuration::parse("1mo").unwrap().to_string(), "1 month");
        for bad in ["", "h", "48", "48 hours", "0d", "-1d", "1.5d", "99999999999d"] {
            assert!(PolicyDuration::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn retention_forms() {
        assert_eq!(Retention::parse("account").unwrap(), Retention::Account);
        assert!(matches!(Retention::parse("account + 30d").unwrap(), Retention::AccountPlus(_)));
        assert!(matches!(Retention::parse("2y").unwrap(), Retention::Fixed(_)));
        assert!(Retention::parse("accounts").is_err());
        assert!(Retention::parse("forever").is_err());
    }

    #[test]
    fn dates_emails_urls() {
        assert!(check_date("2024-02-29").is_ok());
        for bad in ["2023-02-29", "2024-13-01", "2024-3-29", "29/03/2024", "2024-04-31"] {
            assert!(check_date(bad).is_err(), "{bad}");
        }
        assert!(check_email("privacy@tensoropera.com").is_ok());
        for bad in ["privacy", "@x.com", "a@b", "a b@c.com", "a@@b.com", "a@.com"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_url("https://tensoropera.ai/").is_ok());
        for bad in ["tensoropera.ai", "ftp://x.com", "https://", "https://exa mple.com"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
