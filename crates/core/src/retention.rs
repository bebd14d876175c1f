//! Forgetting on schedule: when a category's values come due, how an anonymised value
//! keeps only its coarse part, and which anonymised records are kept (k-anonymity).

use std::collections::BTreeMap;
use std::net::IpAddr;

use charter_policy::model::{ExpiryAction, Generalise, Policy};
use charter_policy::units::{PolicyDuration, Retention, Unit};

use crate::time::{civil_from_days, days_from_civil, days_in_month};

const US_PER_HOUR: i64 = 3_600_000_000;
const US_PER_DAY: i64 = 24 * US_PER_HOUR;

/// Which values of a category are due at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutoff {
    /// Those collected before this time (µs): a fixed period from collection.
    CollectedBefore(i64),
    /// Those of people whose account closed at or before this time (µs).
    ClosedBy(i64),
}

impl Cutoff {
    /// Whether a value collected at `collected_at_us`, of a person whose account closed
    /// at `closed_at_us` (if it did), is due.
    pub fn is_due(self, collected_at_us: i64, closed_at_us: Option<i64>) -> bool {
        match self {
            Self::CollectedBefore(t) => collected_at_us < t,
            Self::ClosedBy(t) => closed_at_us.is_some_and(|c| c <= t),
        }
    }
}

/// `us` moved back by `d`: hours, days and weeks exactly; months and years by the
/// calendar (the same day of the month, or the month's last day when it has no such
/// day), at the same time of day.
pub fn before(us: i64, d: PolicyDuration) -> i64 {
    let count = i64::from(d.count);
    let months = match d.unit {
        Unit::Hours => return us - count * US_PER_HOUR,
        Unit::Days => return us - count * US_PER_DAY,
        Unit::Weeks => return us - count * 7 * US_PER_DAY,
        Unit::Months => count,
        Unit::Years => count * 12,
    };
    let (days, time) = (us.div_euclid(US_PER_DAY), us.rem_euclid(US_PER_DAY));
    let (y, m, d) = civil_from_days(days);
    let index = i64::from(y) * 12 + i64::from(m - 1) - months;
    let ny = i32::try_from(index.div_euclid(12)).unwrap_or(i32::MIN);
    let nm = u32::try_from(index.rem_euclid(12)).unwrap_or(0) + 1;
    days_from_civil(ny, nm, d.min(days_in_month(ny, nm))) * US_PER_DAY + time
}

/// What of a category kept `retention` is due at `now_us`.
pub fn cutoff(retention: Retention, now_us: i64) -> Cutoff {
    match retention {
        Retention::Fixed(d) => Cutoff::CollectedBefore(before(now_us, d)),
        Retention::Account => Cutoff::ClosedBy(now_us),
        Retention::AccountPlus(d) => Cutoff::ClosedBy(before(now_us, d)),
    }
}

/// One category's rule as a sweep applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The category.
    pub category: String,
    /// Delete or anonymise.
    pub action: ExpiryAction,
    /// How an anonymised value is generalised.
    pub generalise: Option<Generalise>,
    /// Which values are due.
    pub cutoff: Cutoff,
}

/// Every category's rule at `now_us`, in the policy's order of category keys. A category
/// without a valid retention has no rule (a validated policy has none such).
pub fn rules(policy: &Policy, now_us: i64) -> Vec<Rule> {
    policy
        .categories
        .iter()
        .filter_map(|(key, c)| {
            let retention = Retention::parse(c.retention.as_deref()?).ok()?;
            Some(Rule {
                category: key.clone(),
                action: c.on_expiry?,
                generalise: c.generalise,
                cutoff: cutoff(retention, now_us),
            })
        })
        .collect()
}

/// The coarse part of `value`, or `None` when nothing of it can be kept (an address
/// that does not parse, an empty location).
pub fn generalise(how: Generalise, value: &str) -> Option<String> {
    let value = value.trim();
    match how {
        Generalise::Network => value.parse::<IpAddr>().ok().map(crate::consent::ip_prefix),
        Generalise::Country => country(value),
        Generalise::Family => Some(family(value).to_owned()),
        Generalise::Day => day_of(value),
        Generalise::Url => Some(url_without_query(value).to_owned()),
        Generalise::Keep => Some(value.to_owned()),
    }
}

/// The country of "City, Region, CC": its last part (two letters are upper-cased).
fn country(location: &str) -> Option<String> {
    let last = location.rsplit(',').next().unwrap_or("").trim();
    match last.len() {
        0 => None,
        2 => Some(last.to_ascii_uppercase()),
        _ => Some(last.to_owned()),
    }
}

/// The family of a user agent, a browser or a system: "Firefox", "Windows", or "other".
pub fn family(value: &str) -> &'static str {
    // Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari",
    // Android also says "Linux", iOS browsers say "like Mac OS X".
    const FAMILIES: [(&str, &str); 16] = [
        ("edg", "Edge"),
        ("opr/", "Opera"),
        ("opera", "Opera"),
        ("firefox", "Firefox"),
        ("chrom", "Chrome"),
        ("safari", "Safari"),
        ("android", "Android"),
        ("iphone", "iOS"),
        ("ipad", "iOS"),
        ("ios", "iOS"),
        ("windows", "Windows"),
        ("cros", "ChromeOS"),
        ("mac", "macOS"),
        ("linux", "Linux"),
        ("ubuntu", "Linux"),
        ("fedora", "Linux"),
    ];
    let lower = value.to_ascii_lowercase();
    FAMILIES.iter().find(|(needle, _)| lower.contains(needle)).map_or("other", |(_, name)| name)
}

/// The day (`YYYY-MM-DD`) of an RFC 3339 timestamp or a date.
fn day_of(value: &str) -> Option<String> {
    let day = value.get(..10)?;
    let b = day.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10)).then(|| day.to_owned())
}

/// A URL or path without its query and fragment.
fn url_without_query(value: &str) -> &str {
    let end = value.find(['?', '#']).unwrap_or(value.len());
    &value[..end]
}

/// The day (`YYYY-MM-DD`) of a time in µs.
pub fn day_of_us(us: i64) -> String {
    let (y, m, d) = civil_from_days(us.div_euclid(US_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A record once anonymised: the day it was collected, its quasi-identifiers and the
/// rest of what is kept, each a generalised value by field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousRecord {
    /// The point it was collected at.
    pub point: String,
    /// The day it was collected.
    pub day: String,
    /// The values of the policy's quasi-identifying categories, by field.
    pub quasi: BTreeMap<String, String>,
    /// The other values kept, by field.
    pub values: BTreeMap<String, String>,
}

impl AnonymousRecord {
    /// The group it belongs to: its point and quasi-identifiers, as one canonical string.
    pub fn group(&self) -> String {
        let parts: Vec<String> = self.quasi.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}|{}", self.point, parts.join("|"))
    }
}

/// A record of `point` collected at `collected_at_us`, whose remaining fields
/// (field, category, value already generalised) are all anonymised: what of it is kept.
/// Fields of categories the policy deletes never reach here.
pub fn anonymous_record(
    policy: &Policy,
    point: &str,
    collected_at_us: i64,
    fields: &[(String, String, String)],
) -> AnonymousRecord {
    let quasi_categories = &policy.retention.quasi_identifiers;
    let mut record = AnonymousRecord {
        point: point.to_owned(),
        day: day_of_us(collected_at_us),
        quasi: BTreeMap::new(),
        values: BTreeMap::new(),
    };
    for (field, category, value) in fields {
        let into = if quasi_categories.contains(category) { &mut record.quasi } else { &mut record.values };
        into.insert(field.clone(), value.clone());
    }
    record
}

/// The groups too small to keep: those of fewer than `k` records. `counts` holds each
/// group's size.
pub fn small_groups<'a>(counts: impl IntoIterator<Item = (&'a str, u64)>, k: u32) -> Vec<&'a str> {
    counts.into_iter().filter(|(_, n)| *n < u64::from(k)).map(|(g, _)| g).collect()
}

/// Which of `records` are kept: those in a group of at least `k`.
pub fn k_anonymous(records: &[AnonymousRecord], k: u32) -> Vec<bool> {
    let groups: Vec<String> = records.iter().map(AnonymousRecord::group).collect();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for g in &groups {
        *counts.entry(g).or_default() += 1;
    }
    let small = small_groups(counts.iter().map(|(g, n)| (*g, *n)), k);
    groups.iter().map(|g| !small.contains(&g.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = US_PER_DAY;

    fn us(y: i32, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * DAY
    }

    fn dur(text: &str) -> PolicyDuration {
        PolicyDuration::parse(text).unwrap()
    }

    #[test]
    fn periods_go_back_exactly_or_by_the_calendar() {
        let now = us(2026, 3, 31) + 5 * US_PER_HOUR;
        assert_eq!(before(now, dur("5h")), us(2026, 3, 31));
        assert_eq!(before(now, dur("2d")), us(2026, 3, 29) + 5 * US_PER_HOUR);
        assert_eq!(before(now, dur("1w")), us(2026, 3, 24) + 5 * US_PER_HOUR);
        assert_eq!(before(now, dur("1mo")), us(2026, 2, 28) + 5 * US_PER_HOUR, "no 31 February");
        assert_eq!(before(now, dur("13mo")), us(2025, 2, 28) + 5 * US_PER_HOUR);
        assert_eq!(before(now, dur("3mo")), us(2025, 12, 31) + 5 * US_PER_HOUR, "across a year");
        assert_eq!(before(us(2028, 2, 29), dur("1y")), us(2027, 2, 28));
        assert_eq!(before(us(2026, 1, 15), dur("12mo")), us(2025, 1, 15));
        assert_eq!(before(us(2026, 12, 15), dur("11mo")), us(2026, 1, 15));
    }

    #[test]
    fn a_fixed_period_runs_from_collection() {
        let now = us(2026, 6, 1);
        let c = cutoff(Retention::parse("90d").unwrap(), now);
        assert_eq!(c, Cutoff::CollectedBefore(now - 90 * DAY));
        assert!(c.is_due(now - 90 * DAY - 1, None));
        assert!(!c.is_due(now - 90 * DAY, None), "due only once the whole period has passed");
        assert!(!c.is_due(now - 90 * DAY + 1, Some(0)), "a closed account does not shorten it");
    }

    #[test]
    fn account_periods_run_from_closing() {
        let now = us(2026, 6, 1);
        let open = cutoff(Retention::Account, now);
        assert_eq!(open, Cutoff::ClosedBy(now));
        assert!(!open.is_due(0, None), "an open account keeps its data");
        assert!(open.is_due(now, Some(now)));
        assert!(!open.is_due(0, Some(now + 1)));
        let plus = cutoff(Retention::parse("account+30d").unwrap(), now);
        assert!(plus.is_due(0, Some(now - 30 * DAY)));
        assert!(!plus.is_due(0, Some(now - 30 * DAY + 1)));
    }

    #[test]
    fn the_policy_gives_a_rule_per_category() {
        let policy = charter_policy::load("t", charter_policy::TENSOROPERA).unwrap().policy;
        let now = us(2026, 6, 1);
        let rules = rules(&policy, now);
        assert_eq!(rules.len(), policy.categories.len());
        let ip = rules.iter().find(|r| r.category == "user.device.ip_address").unwrap();
        assert_eq!(ip.action, ExpiryAction::Anonymise);
        assert_eq!(ip.generalise, Some(Generalise::Network));
        assert_eq!(ip.cutoff, Cutoff::CollectedBefore(now - 90 * DAY));
        let email = rules.iter().find(|r| r.category == "user.contact.email").unwrap();
        assert_eq!((email.action, email.generalise), (ExpiryAction::Delete, None));
        assert_eq!(email.cutoff, Cutoff::ClosedBy(now - 30 * DAY));
    }

    #[test]
    fn values_keep_only_their_coarse_part() {
        let g = generalise;
        assert_eq!(g(Generalise::Network, " 203.0.113.77 ").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(g(Generalise::Network, "2001:db8:1234:5678::1").as_deref(), Some("2001:db8:1234::/48"));
        assert_eq!(g(Generalise::Network, "not an address"), None);
        assert_eq!(g(Generalise::Country, "Lyon, Auvergne-Rhône-Alpes, fr").as_deref(), Some("FR"));
        assert_eq!(g(Generalise::Country, "Germany").as_deref(), Some("Germany"));
        assert_eq!(g(Generalise::Country, "Berlin, "), None);
        assert_eq!(g(Generalise::Day, "2026-03-04T10:11:12Z").as_deref(), Some("2026-03-04"));
        assert_eq!(g(Generalise::Day, "2026-03-04").as_deref(), Some("2026-03-04"));
        assert_eq!(g(Generalise::Day, "2026/03/04"), None);
        assert_eq!(g(Generalise::Day, "20260304xx"), None);
        assert_eq!(g(Generalise::Day, "2026-3-4"), None);
        assert_eq!(g(Generalise::Day, "x026-03-04"), None);
        assert_eq!(g(Generalise::Day, "2026-03x04"), None);
        assert_eq!(g(Generalise::Day, "2026-0x-04"), None);
        assert_eq!(g(Generalise::Day, "2026-03-0x"), None);
        assert_eq!(
            g(Generalise::Url, "https://x.example/a/b?email=a@b.example#top").as_deref(),
            Some("https://x.example/a/b")
        );
        assert_eq!(g(Generalise::Url, "/pricing#plans").as_deref(), Some("/pricing"));
        assert_eq!(g(Generalise::Url, "/pricing").as_deref(), Some("/pricing"));
        assert_eq!(g(Generalise::Keep, "anything").as_deref(), Some("anything"));
        assert_eq!(g(Generalise::Family, "Firefox 121.0").as_deref(), Some("Firefox"));
    }

    #[test]
    fn agents_fall_into_families() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(family(chrome), "Chrome");
        assert_eq!(family("Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 Safari/537.36 Edg/120.0"), "Edge");
        assert_eq!(family("Mozilla/5.0 Chrome/120.0 Safari/537.36 OPR/106.0"), "Opera");
        assert_eq!(family("Opera 12"), "Opera");
        assert_eq!(family("Safari 17.1"), "Safari");
        assert_eq!(family("Android 14"), "Android");
        assert_eq!(family("iPhone OS 17_1"), "iOS");
        assert_eq!(family("iPadOS 17"), "iOS");
        assert_eq!(family("iOS 17.1"), "iOS");
        assert_eq!(family("Windows 11"), "Windows");
        assert_eq!(family("CrOS 15633"), "ChromeOS");
        assert_eq!(family("macOS 14.1"), "macOS");
        assert_eq!(family("Linux"), "Linux");
        assert_eq!(family("Ubuntu 22.04"), "Linux");
        assert_eq!(family("Fedora 39"), "Linux");
        assert_eq!(family("Chromium 119"), "Chrome");
        assert_eq!(family("Netscape 4"), "other");
    }

    #[test]
    fn days_are_civil_dates() {
        assert_eq!(day_of_us(us(2026, 2, 28) + DAY - 1), "2026-02-28");
        assert_eq!(day_of_us(us(1969, 12, 31)), "1969-12-31");
    }

    fn policy_with_quasi() -> Policy {
        let mut p = charter_policy::load("t", charter_policy::TENSOROPERA).unwrap().policy;
        p.retention.quasi_identifiers = vec!["user.location.approximate".into(), "user.device.browser".into()];
        p
    }

    fn row(p: &Policy, location: &str, browser: &str, page: &str) -> AnonymousRecord {
        let fields = [
            ("location".to_owned(), "user.location.approximate".to_owned(), location.to_owned()),
            ("browser".to_owned(), "user.device.browser".to_owned(), browser.to_owned()),
            ("page".to_owned(), "user.behavior.usage".to_owned(), page.to_owned()),
        ];
        anonymous_record(p, "analytics", us(2026, 1, 2) + 3 * US_PER_HOUR, &fields)
    }

    #[test]
    fn an_anonymous_record_splits_quasi_identifiers_from_the_rest() {
        let p = policy_with_quasi();
        let r = row(&p, "FR", "Firefox", "/pricing");
        assert_eq!(r.day, "2026-01-02");
        assert_eq!(r.point, "analytics");
        assert_eq!(r.quasi.len(), 2);
        assert_eq!(r.values.get("page").map(String::as_str), Some("/pricing"));
        assert_eq!(r.group(), "analytics|browser=Firefox|location=FR");
        assert_ne!(r.group(), row(&p, "DE", "Firefox", "/pricing").group());
        assert_eq!(r.group(), row(&p, "FR", "Firefox", "/about").group(), "other values do not split groups");
    }

    #[test]
    fn groups_smaller_than_k_are_suppressed() {
        assert_eq!(small_groups([("a", 4), ("b", 5), ("c", 6)], 5), vec!["a"]);
        assert!(small_groups([("a", 5)], 5).is_empty());
    }

    #[test]
    fn a_generated_usage_table_keeps_only_groups_of_k() {
        let p = policy_with_quasi();
        let countries = ["FR", "DE", "US", "GB", "PL", "TR", "ES"];
        let browsers = ["Firefox", "Chrome", "Safari", "Edge"];
        // A deterministic spread: common combinations and rare ones.
        let mut rows = Vec::new();
        let mut x: u64 = 7;
        for i in 0..2_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let c = countries[((x >> 33) % if i % 10 == 0 { 7 } else { 2 }) as usize];
            let b = browsers[((x >> 40) % if i % 13 == 0 { 4 } else { 2 }) as usize];
            rows.push(row(&p, c, b, &format!("/page/{}", i % 17)));
        }
        let keep = k_anonymous(&rows, 5);
        let mut sizes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (r, kept) in rows.iter().zip(&keep) {
            let e = sizes.entry(r.group()).or_default();
            e.0 += 1;
            e.1 += u64::from(*kept);
        }
        assert!(sizes.values().any(|(n, _)| *n < 5), "the table has small groups to suppress");
        assert!(sizes.values().any(|(n, _)| *n >= 5));
        for (group, (n, kept)) in &sizes {
            assert_eq!(*kept, if *n >= 5 { *n } else { 0 }, "{group}: {n} records");
        }
    }
}
