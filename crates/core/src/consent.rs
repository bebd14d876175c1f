//! The consent ledger's rules: what an answer is, where it came from, the evidence kept
//! with it, and how a person's current consent follows from their answers.
//!
//! The ledger only grows. A person's consent to a purpose is the last answer they gave
//! for it ([`fold`]); withdrawing is one more answer, as easy to give as consent was.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use charter_policy::model::{CookieCategory, LawfulBasis, Policy};
use serde_json::{Map, Value};

/// The ledger's name for the opt-out of sale and sharing (`false`: opted out). A policy
/// purpose cannot be named so: purpose keys are lowercase words.
pub const SALE_OR_SHARING: &str = "*sale_or_sharing";

/// The use an unsubscribe link's token is signed for.
pub const UNSUBSCRIBE_LINK: &str = "unsubscribe";

/// What an unsubscribe link carries: the subject's opaque id and the purpose.
pub fn unsubscribe_payload(subject: &str, purpose: &str) -> String {
    format!("{subject} {purpose}")
}

/// The subject and purpose of an unsubscribe link's payload.
pub fn parse_unsubscribe_payload(payload: &str) -> Option<(&str, &str)> {
    payload.split_once(' ').filter(|(s, p)| !s.is_empty() && !p.is_empty() && !p.contains(' '))
}

/// Where an answer was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Banner,
    PreferenceCenter,
    Collection,
    Api,
    Gpc,
    Unsubscribe,
    Admin,
    /// Not a person's answer: their consent lapsed because the purpose grew in a
    /// material change of the policy, and must be given again.
    PolicyChange,
    /// A rights request the person made (a withdrawal, an opt-out), once fulfilled.
    Request,
}

impl Source {
    pub const ALL: [Self; 9] = [
        Self::Banner,
        Self::PreferenceCenter,
        Self::Collection,
        Self::Api,
        Self::Gpc,
        Self::Unsubscribe,
        Self::Admin,
        Self::PolicyChange,
        Self::Request,
    ];

    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Banner => "banner",
            Self::PreferenceCenter => "preference_center",
            Self::Collection => "collection",
            Self::Api => "api",
            Self::Gpc => "gpc",
            Self::Unsubscribe => "unsubscribe",
            Self::Admin => "admin",
            Self::PolicyChange => "policy_change",
            Self::Request => "request",
        }
    }

    /// The source a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A person's consent now: the last answer per purpose, from answers in ledger order.
pub fn fold<'a>(answers: impl IntoIterator<Item = (&'a str, bool)>) -> BTreeMap<String, bool> {
    let mut state = BTreeMap::new();
    for (purpose, given) in answers {
        state.insert(purpose.to_owned(), given);
    }
    state
}

/// The client's address as the ledger keeps it: the network, not the host (/24 for
/// IPv4, /48 for IPv6; an IPv4 address mapped into IPv6 counts as IPv4).
pub fn ip_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ip_prefix(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        },
    }
}

/// The browser and system family of a `User-Agent`, e.g. "Firefox on Linux": enough to
/// tell a person's answers apart, too little to single them out.
pub fn agent_family(user_agent: &str) -> String {
    // Order matters: Edge and Opera say "Chrome", Chrome says "Safari", Android says "Linux".
    const BROWSERS: [(&str, &str); 6] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chrome"),
        ("Safari/", "Safari"),
    ];
    const SYSTEMS: [(&str, &str); 7] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ];
    let find = |table: &[(&str, &'static str)]| {
        table.iter().find(|(needle, _)| user_agent.contains(needle)).map_or("other", |(_, name)| *name)
    };
    format!("{} on {}", find(&BROWSERS), find(&SYSTEMS))
}

/// An anonymous visitor's id, as the cookie banner makes it: 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitorId(String);

impl VisitorId {
    /// The id `s` if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a set of answers was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("no answer given: send at least one purpose with true or false")]
    Empty,
    #[error("`{0}` is not a purpose in the policy")]
    UnknownPurpose(String),
    #[error("purpose `{0}` does not rest on consent; object to it instead")]
    NotConsentBased(String),
    #[error("the answer for `{0}` must be true or false")]
    NotBoolean(String),
    #[error("`{0}` is not a cookie category the policy uses")]
    UnknownCategory(String),
}

/// Whether a purpose of `policy` rests on consent.
pub fn rests_on_consent(policy: &Policy, purpose: &str) -> bool {
    policy.purposes.get(purpose).is_some_and(|p| p.basis.as_slice().contains(&LawfulBasis::Consent))
}

/// Answers `{"<purpose>": true|false, ...}` for purposes that rest on consent, in the
/// order given; every fault at once is not needed, the first is named.
pub fn parse_answers(policy: &Policy, answers: &Map<String, Value>) -> Result<Vec<(String, bool)>, ChoiceError> {
    if answers.is_empty() {
        return Err(ChoiceError::Empty);
    }
    answers
        .iter()
        .map(|(purpose, value)| {
            if !policy.purposes.contains_key(purpose) {
                return Err(ChoiceError::UnknownPurpose(purpose.clone()));
            }
            if !rests_on_consent(policy, purpose) {
                return Err(ChoiceError::NotConsentBased(purpose.clone()));
            }
            let given = value.as_bool().ok_or_else(|| ChoiceError::NotBoolean(purpose.clone()))?;
            Ok((purpose.clone(), given))
        })
        .collect()
}

/// A cookie category's name as the banner and the API use it.
pub fn category_name(c: CookieCategory) -> &'static str {
    match c {
        CookieCategory::StrictlyNecessary => "strictly_necessary",
        CookieCategory::Functional => "functional",
        CookieCategory::Analytics => "analytics",
        CookieCategory::Marketing => "marketing",
    }
}

/// The categories the banner asks about (every category of the policy's cookies but the
/// strictly necessary), each with the consent-based purposes its cookies serve: those of
/// the recipients that set them.
pub fn banner_categories(policy: &Policy) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for cookie in policy.cookies.values() {
        if cookie.category == CookieCategory::StrictlyNecessary {
            continue;
        }
        let purposes = out.entry(category_name(cookie.category)).or_default();
        let served = policy.recipients.get(&cookie.provider).map(|r| r.purposes.as_slice()).unwrap_or_default();
        purposes.extend(served.iter().filter(|p| rests_on_consent(policy, p)).cloned());
    }
    out
}

/// A banner's choices `{"<category>": true|false}` as answers per purpose.
pub fn parse_choices(policy: &Policy, choices: &Map<String, Value>) -> Result<Vec<(String, bool)>, ChoiceError> {
    if choices.is_empty() {
        return Err(ChoiceError::Empty);
    }
    let categories = banner_categories(policy);
    let mut answers = Vec::new();
    for (category, value) in choices {
        let purposes =
            categories.get(category.as_str()).ok_or_else(|| ChoiceError::UnknownCategory(category.clone()))?;
        let given = value.as_bool().ok_or_else(|| ChoiceError::NotBoolean(category.clone()))?;
        answers.extend(purposes.iter().map(|p| (p.clone(), given)));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn policy() -> Policy {
        charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).unwrap().policy
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_unsubscribe_payload_names_a_subject_and_a_purpose() {
        let payload = unsubscribe_payload("7f0c", "newsletter");
        assert_eq!(parse_unsubscribe_payload(&payload), Some(("7f0c", "newsletter")));
        for bad in ["", "7f0c", " newsletter", "7f0c ", "7f0c news letter"] {
            assert_eq!(parse_unsubscribe_payload(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sources_round_trip_by_name() {
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
        assert_eq!(Source::parse("preference_center"), Some(Source::PreferenceCenter));
        assert_eq!(Source::parse("Banner"), None);
        let names: BTreeSet<_> = Source::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), Source::ALL.len(), "each source has a name of its own");
    }

    #[test]
    fn addresses_keep_only_their_network() {
        let p = |s: &str| ip_prefix(s.parse().unwrap());
        assert_eq!(p("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(p("2001:db8:abcd:12:1:2:3:4"), "2001:db8:abcd::/48");
        assert_eq!(p("::ffff:198.51.100.9"), "198.51.100.0/24");
        assert_eq!(p("::1"), "::/48");
    }

    #[test]
    fn agents_are_named_by_family() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let chrome_android =
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36";
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36 Edg/131.0";
        let safari =
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Version/18.1 Safari/604.1";
        let opera =
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/537.36 Chrome/130.0 Safari/537.36 OPR/115.0";
        assert_eq!(agent_family(firefox), "Firefox on Linux");
        assert_eq!(agent_family(chrome_android), "Chrome on Android");
        assert_eq!(agent_family(edge), "Edge on Windows");
        assert_eq!(agent_family(safari), "Safari on iOS");
        assert_eq!(agent_family(opera), "Opera on macOS");
        assert_eq!(agent_family("Mozilla/5.0 (X11; CrOS x86_64) Chromium/120.0"), "Chrome on ChromeOS");
        assert_eq!(agent_family("Mozilla/5.0 (iPad; CPU OS 17_0) Safari/605"), "Safari on iOS");
        assert_eq!(agent_family("curl/8.5.0"), "other on other");
    }

    #[test]
    fn visitor_ids_are_32_lowercase_hex_digits() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(VisitorId::parse(id).unwrap().as_str(), id);
        for bad in ["", &id[1..], &format!("{id}0"), &id.to_uppercase(), "0123456789abcdef0123456789abcdeg"] {
            assert!(VisitorId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn answers_name_consent_purposes_with_booleans() {
        let p = policy();
        assert_eq!(
            parse_answers(&p, &map(json!({"newsletter": false, "surveys": true}))).unwrap(),
            vec![("newsletter".to_owned(), false), ("surveys".to_owned(), true)]
        );
        assert_eq!(parse_answers(&p, &Map::new()), Err(ChoiceError::Empty));
        assert_eq!(parse_answers(&p, &map(json!({"nope": true}))), Err(ChoiceError::UnknownPurpose("nope".into())));
        assert_eq!(
            parse_answers(&p, &map(json!({"analytics": true}))),
            Err(ChoiceError::NotConsentBased("analytics".into()))
        );
        assert_eq!(
            parse_answers(&p, &map(json!({"newsletter": "yes"}))),
            Err(ChoiceError::NotBoolean("newsletter".into()))
        );
        assert!(rests_on_consent(&p, "newsletter") && !rests_on_consent(&p, "registration"));
        assert!(!rests_on_consent(&p, "nope"));
    }

    #[test]
    fn banner_categories_stand_for_their_cookies_purposes() {
        let p = policy();
        let cats = banner_categories(&p);
        assert_eq!(cats.keys().copied().collect::<Vec<_>>(), vec!["analytics", "functional", "marketing"]);
        assert_eq!(cats["analytics"], BTreeSet::from(["audience_measurement".to_owned()]));
        assert_eq!(cats["marketing"], BTreeSet::from(["youtube_videos".to_owned()]));
        assert!(cats["functional"].is_empty(), "first-party cookies serve no consent purpose here");
        assert_eq!(
            parse_choices(&p, &map(json!({"analytics": true, "marketing": false}))).unwrap(),
            vec![("audience_measurement".to_owned(), true), ("youtube_videos".to_owned(), false)]
        );
        assert_eq!(
            parse_choices(&p, &map(json!({"strictly_necessary": false}))),
            Err(ChoiceError::UnknownCategory("strictly_necessary".into()))
        );
        assert_eq!(parse_choices(&p, &map(json!({"analytics": 1}))), Err(ChoiceError::NotBoolean("analytics".into())));
        assert_eq!(parse_choices(&p, &Map::new()), Err(ChoiceError::Empty));
        assert_eq!(category_name(CookieCategory::StrictlyNecessary), "strictly_necessary");
    }

    fn answers() -> impl Strategy<Value = Vec<(String, bool)>> {
        proptest::collection::vec((prop::sample::select(vec!["a", "b", "c", "d"]), any::<bool>()), 0..40)
            .prop_map(|v| v.into_iter().map(|(p, g)| (p.to_owned(), g)).collect())
    }

    proptest! {
        #[test]
        fn the_state_is_the_last_answer_per_purpose(events in answers()) {
            let state = fold(events.iter().map(|(p, g)| (p.as_str(), *g)));
            for (purpose, given) in &state {
                let last = events.iter().rev().find(|(p, _)| p == purpose).map(|(_, g)| *g);
                prop_assert_eq!(last, Some(*given));
            }
            let named: BTreeSet<&String> = events.iter().map(|(p, _)| p).collect();
            prop_assert_eq!(named.len(), state.len(), "every purpose answered, and only those");
        }

        #[test]
        fn a_withdrawal_after_a_grant_wins(events in answers(), purpose in prop::sample::select(vec!["a", "b"])) {
            let mut events = events;
            events.push((purpose.to_owned(), true));
            events.push((purpose.to_owned(), false));
            let state = fold(events.iter().map(|(p, g)| (p.as_str(), *g)));
            prop_assert_eq!(state.get(purpose), Some(&false));
        }

        #[test]
        fn folding_more_answers_extends_the_fold(a in answers(), b in answers()) {
            // The state after a+b is the state after a, updated by b's own fold.
            let mut stepwise = fold(a.iter().map(|(p, g)| (p.as_str(), *g)));
            stepwise.extend(fold(b.iter().map(|(p, g)| (p.as_str(), *g))));
            let whole = fold(a.iter().chain(&b).map(|(p, g)| (p.as_str(), *g)));
            prop_assert_eq!(stepwise, whole);
        }
    }
}
