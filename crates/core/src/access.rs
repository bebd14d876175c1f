//! Purpose-bound access: may purpose P see field F of subject S, and if not, why.
//!
//! A pure function of the policy, the caller's grants, the subject's state and
//! the time. Checks run in a fixed order and the first that fails is the
//! reason, so the same inputs always give the same answer.

use std::collections::{HashMap, HashSet};

use charter_policy::model::{LawfulBasis, Policy};
use charter_policy::units::{PolicyDuration, Retention};
use serde::Serialize;

/// Why a read was refused. The names are the API's machine-readable reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    /// The purpose is not in the policy.
    UnknownPurpose,
    /// The caller's key does not hold this purpose.
    PurposeNotGrantedToKey,
    /// The field's category is not one the purpose uses.
    CategoryNotInPurpose,
    /// The purpose rests on consent, and consent is not given (or was withdrawn).
    ConsentMissing,
    /// The subject objected to this purpose.
    Objected,
    /// The subject's processing is restricted and the purpose may not run while it is.
    Restricted,
    /// The purpose sells or shares personal data and the subject opted out of that
    /// (Global Privacy Control, the do-not-sell page).
    OptedOut,
    /// The field's retention has run out.
    RetentionExpired,
    /// The subject was erased.
    Erased,
}

impl Denial {
    /// The reason code.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownPurpose => "unknown_purpose",
            Self::PurposeNotGrantedToKey => "purpose_not_granted_to_key",
            Self::CategoryNotInPurpose => "category_not_in_purpose",
            Self::ConsentMissing => "consent_missing",
            Self::Objected => "objected",
            Self::Restricted => "restricted",
            Self::OptedOut => "opted_out",
            Self::RetentionExpired => "retention_expired",
            Self::Erased => "erased",
        }
    }
}

/// What charter knows about a subject that bears on access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectState {
    /// Erased (shredded): nothing may be read.
    pub erased: bool,
    /// Processing restricted (GDPR Art. 18).
    pub restricted: bool,
    /// Consent per purpose, latest answer: `true` given, `false` refused or withdrawn.
    pub consents: HashMap<String, bool>,
    /// Purposes the subject objected to (GDPR Art. 21).
    pub objections: HashSet<String>,
    /// The subject opted out of the sale and sharing of their data (CCPA).
    pub opted_out: bool,
    /// When the account was closed, in µs since the epoch; `None` while open.
    pub account_closed_at_us: Option<i64>,
}

/// One stored field, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef<'a> {
    /// The field's name.
    pub name: &'a str,
    /// Its data category.
    pub category: &'a str,
    /// When it was collected, µs since the epoch.
    pub collected_at_us: i64,
}

const HOUR_US: i64 = 3_600_000_000;

/// A policy duration in microseconds (30-day months, 365-day years).
pub fn duration_us(d: PolicyDuration) -> i64 {
    i64::try_from(d.approx_hours()).unwrap_or(i64::MAX).saturating_mul(HOUR_US)
}

/// Whether the retention of a field collected at `collected_at_us` has run out at `now_us`.
pub fn retention_expired(retention: Retention, collected_at_us: i64, closed_at_us: Option<i64>, now_us: i64) -> bool {
    match retention {
        Retention::Fixed(d) => collected_at_us.saturating_add(duration_us(d)) <= now_us,
        Retention::Account => closed_at_us.is_some_and(|c| c <= now_us),
        Retention::AccountPlus(d) => closed_at_us.is_some_and(|c| c.saturating_add(duration_us(d)) <= now_us),
    }
}

/// Whether at least one of the purpose's lawful bases holds for this subject.
fn basis_holds(bases: &[LawfulBasis], purpose: &str, state: &SubjectState) -> Result<(), Denial> {
    let mut reason = Denial::ConsentMissing;
    for b in bases {
        match b {
            LawfulBasis::Consent if state.consents.get(purpose) == Some(&true) => return Ok(()),
            LawfulBasis::Consent => reason = Denial::ConsentMissing,
            LawfulBasis::LegitimateInterests if !state.objections.contains(purpose) => return Ok(()),
            LawfulBasis::LegitimateInterests => reason = Denial::Objected,
            LawfulBasis::Contract
            | LawfulBasis::LegalObligation
            | LawfulBasis::VitalInterests
            | LawfulBasis::PublicTask => return Ok(()),
        }
    }
    Err(reason)
}

/// Whether `purpose` sells or shares personal data: the policy marks it so, or it
/// discloses to a recipient marked as a sale or sharing recipient.
pub fn sells_or_shares(policy: &Policy, purpose: &str) -> bool {
    policy.purposes.get(purpose).is_some_and(|p| p.sale_or_sharing)
        || policy.recipients.values().any(|r| r.sale_or_sharing && r.purposes.iter().any(|p| p == purpose))
}

/// Decides whether `purpose`, asked by a caller holding `granted`, may run for this subject
/// at all, whatever it reads: it is in the policy and held, the subject is not erased, not
/// restricted against it, has not objected to it, and one of its lawful bases holds.
pub fn decide_purpose(policy: &Policy, purpose: &str, granted: &[String], state: &SubjectState) -> Result<(), Denial> {
    let p = policy.purposes.get(purpose).ok_or(Denial::UnknownPurpose)?;
    if !granted.iter().any(|g| g == purpose) {
        return Err(Denial::PurposeNotGrantedToKey);
    }
    if state.erased {
        return Err(Denial::Erased);
    }
    if state.restricted && !p.allowed_while_restricted {
        return Err(Denial::Restricted);
    }
    // An objection to direct marketing is absolute (GDPR Art. 21(3)), whatever the basis.
    if p.direct_marketing && state.objections.contains(purpose) {
        return Err(Denial::Objected);
    }
    // An opt-out of sale and sharing outranks any consent given before or after it, until
    // the person revokes the opt-out itself.
    if state.opted_out && sells_or_shares(policy, purpose) {
        return Err(Denial::OptedOut);
    }
    basis_holds(p.basis.as_slice(), purpose, state)
}

/// Decides whether `purpose`, asked by a caller holding `granted`, may read `field`: the
/// purpose may run for this subject ([`decide_purpose`]), the field's category is one it
/// uses, and the field's retention has not run out.
pub fn decide(
    policy: &Policy,
    purpose: &str,
    granted: &[String],
    state: &SubjectState,
    field: &FieldRef<'_>,
    now_us: i64,
) -> Result<(), Denial> {
    decide_purpose(policy, purpose, granted, state)?;
    let p = &policy.purposes[purpose];
    if !p.categories.iter().any(|c| c == field.category) {
        return Err(Denial::CategoryNotInPurpose);
    }
    let retention = policy.categories.get(field.category).and_then(|c| c.retention.as_deref()).map(Retention::parse);
    match retention {
        Some(Ok(r)) if retention_expired(r, field.collected_at_us, state.account_closed_at_us, now_us) => {
            Err(Denial::RetentionExpired)
        }
        // A validated policy always has a parsable retention; anything else is treated as expired.
        Some(Err(_)) | None => Err(Denial::RetentionExpired),
        Some(Ok(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(|| {
        charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).unwrap().policy
    });

    fn policy() -> Policy {
        POLICY.clone()
    }

    fn all_purposes(p: &Policy) -> Vec<String> {
        p.purposes.keys().cloned().collect()
    }

    const NOW: i64 = 1_800_000_000_000_000;

    fn email(collected: i64) -> FieldRef<'static> {
        FieldRef { name: "email", category: "user.contact.email", collected_at_us: collected }
    }

    #[test]
    fn reasons_for_each_denial() {
        let p = policy();
        let all = all_purposes(&p);
        let open = SubjectState::default();
        let f = email(NOW - HOUR_US);
        assert_eq!(decide(&p, "registration", &all, &open, &f, NOW), Ok(()));
        assert_eq!(decide(&p, "no_such_purpose", &all, &open, &f, NOW), Err(Denial::UnknownPurpose));
        assert_eq!(
            decide(&p, "registration", &["analytics".into()], &open, &f, NOW),
            Err(Denial::PurposeNotGrantedToKey)
        );
        let ip = FieldRef { name: "ip", category: "user.device.ip_address", collected_at_us: NOW };
        assert_eq!(decide(&p, "registration", &all, &open, &ip, NOW), Err(Denial::CategoryNotInPurpose));
        assert_eq!(decide(&p, "newsletter", &all, &open, &f, NOW), Err(Denial::ConsentMissing));
        let consented = SubjectState { consents: [("newsletter".to_owned(), true)].into(), ..Default::default() };
        assert_eq!(decide(&p, "newsletter", &all, &consented, &f, NOW), Ok(()));
        let withdrawn = SubjectState { consents: [("newsletter".to_owned(), false)].into(), ..Default::default() };
        assert_eq!(decide(&p, "newsletter", &all, &withdrawn, &f, NOW), Err(Denial::ConsentMissing));
        let objected = SubjectState { objections: ["analytics".to_owned()].into(), ..Default::default() };
        let usage = FieldRef { name: "pages", category: "user.behavior.usage", collected_at_us: NOW };
        assert_eq!(decide(&p, "analytics", &all, &open, &usage, NOW), Ok(()));
        assert_eq!(decide(&p, "analytics", &all, &objected, &usage, NOW), Err(Denial::Objected));
        let restricted = SubjectState { restricted: true, ..Default::default() };
        assert_eq!(decide(&p, "registration", &all, &restricted, &f, NOW), Err(Denial::Restricted));
        let erased = SubjectState { erased: true, ..Default::default() };
        assert_eq!(decide(&p, "registration", &all, &erased, &f, NOW), Err(Denial::Erased));
        let closed = SubjectState { account_closed_at_us: Some(NOW - 31 * 24 * HOUR_US), ..Default::default() };
        assert_eq!(decide(&p, "registration", &all, &closed, &f, NOW), Err(Denial::RetentionExpired));
        let closed_recently =
            SubjectState { account_closed_at_us: Some(NOW - 29 * 24 * HOUR_US), ..Default::default() };
        assert_eq!(decide(&p, "registration", &all, &closed_recently, &f, NOW), Ok(()));
    }

    #[test]
    fn a_purpose_that_may_not_run_is_refused_whatever_it_reads() {
        let p = policy();
        let all = all_purposes(&p);
        let open = SubjectState::default();
        assert_eq!(decide_purpose(&p, "analytics", &all, &open), Ok(()));
        assert_eq!(decide_purpose(&p, "nope", &all, &open), Err(Denial::UnknownPurpose));
        assert_eq!(decide_purpose(&p, "analytics", &[], &open), Err(Denial::PurposeNotGrantedToKey));
        let objected = SubjectState { objections: ["analytics".to_owned()].into(), ..Default::default() };
        assert_eq!(decide_purpose(&p, "analytics", &all, &objected), Err(Denial::Objected));
        // The subject's standing comes before the field: a field of another category is
        // refused for the objection, not for its category.
        let mail = email(NOW);
        assert_eq!(decide(&p, "analytics", &all, &objected, &mail, NOW), Err(Denial::Objected));
        assert_eq!(decide(&p, "analytics", &all, &open, &mail, NOW), Err(Denial::CategoryNotInPurpose));
        assert_eq!(decide_purpose(&p, "newsletter", &all, &open), Err(Denial::ConsentMissing));
        let erased = SubjectState { erased: true, ..Default::default() };
        assert_eq!(decide_purpose(&p, "registration", &all, &erased), Err(Denial::Erased));
    }

    #[test]
    fn an_opt_out_refuses_sale_and_sharing_even_with_consent() {
        let p = policy();
        let all = all_purposes(&p);
        assert!(p.purposes["audience_measurement"].sale_or_sharing && !p.purposes["newsletter"].sale_or_sharing);
        let consents = [("audience_measurement".to_owned(), true), ("newsletter".to_owned(), true)].into();
        let consented = SubjectState { consents, ..Default::default() };
        assert_eq!(decide_purpose(&p, "audience_measurement", &all, &consented), Ok(()));
        let opted_out = SubjectState { opted_out: true, ..consented };
        assert_eq!(decide_purpose(&p, "audience_measurement", &all, &opted_out), Err(Denial::OptedOut));
        assert_eq!(decide_purpose(&p, "newsletter", &all, &opted_out), Ok(()), "only sale and sharing");
        let restricted = SubjectState { restricted: true, ..opted_out.clone() };
        assert_eq!(decide_purpose(&p, "audience_measurement", &all, &restricted), Err(Denial::Restricted));
        // A purpose not marked itself, disclosing to a recipient marked as sale or sharing.
        let mut q = p.clone();
        q.purposes.get_mut("newsletter").unwrap().sale_or_sharing = false;
        let first = q.recipients.keys().next().unwrap().clone();
        q.recipients.get_mut(&first).unwrap().purposes = vec!["newsletter".into()];
        assert!(!sells_or_shares(&q, "newsletter"));
        q.recipients.get_mut(&first).unwrap().sale_or_sharing = true;
        assert!(sells_or_shares(&q, "newsletter") && !sells_or_shares(&q, "registration"));
        assert_eq!(decide_purpose(&q, "newsletter", &all, &opted_out), Err(Denial::OptedOut));
        assert!(!sells_or_shares(&q, "no_such_purpose"));
    }

    #[test]
    fn each_denial_has_its_own_code_as_serialised() {
        let all = [
            Denial::UnknownPurpose,
            Denial::PurposeNotGrantedToKey,
            Denial::CategoryNotInPurpose,
            Denial::ConsentMissing,
            Denial::Objected,
            Denial::Restricted,
            Denial::OptedOut,
            Denial::RetentionExpired,
            Denial::Erased,
        ];
        for d in all {
            assert_eq!(serde_json::to_value(d).unwrap(), d.code(), "{d:?}");
        }
        assert_eq!(Denial::RetentionExpired.code(), "retention_expired");
        assert_eq!(Denial::OptedOut.code(), "opted_out");
    }

    #[test]
    fn retention_runs_out_at_its_exact_end() {
        let day = PolicyDuration::parse("1d").unwrap();
        let end = NOW + 24 * HOUR_US;
        assert!(!retention_expired(Retention::Fixed(day), NOW, None, end - 1));
        assert!(retention_expired(Retention::Fixed(day), NOW, None, end));
        assert!(!retention_expired(Retention::Account, NOW, None, end), "an open account keeps it");
        assert!(!retention_expired(Retention::Account, NOW, Some(NOW + 1), NOW));
        assert!(retention_expired(Retention::Account, NOW, Some(NOW), NOW));
        assert!(!retention_expired(Retention::AccountPlus(day), NOW, None, end * 2));
        assert!(!retention_expired(Retention::AccountPlus(day), NOW, Some(NOW), end - 1));
        assert!(retention_expired(Retention::AccountPlus(day), NOW, Some(NOW), end));
        assert_eq!(duration_us(day), 24 * HOUR_US);
    }

    #[test]
    fn restriction_lets_through_what_the_law_allows() {
        let p = policy();
        let allowed: Vec<&String> =
            p.purposes.iter().filter(|(_, pu)| pu.allowed_while_restricted).map(|(k, _)| k).collect();
        assert!(!allowed.is_empty(), "the policy names purposes allowed while restricted");
        let restricted = SubjectState { restricted: true, ..Default::default() };
        let key = allowed[0];
        let cat = &p.purposes[key].categories[0];
        let f = FieldRef { name: "x", category: cat, collected_at_us: NOW };
        assert_ne!(decide(&p, key, &all_purposes(&p), &restricted, &f, NOW), Err(Denial::Restricted));
    }

    fn state_strategy(purposes: Vec<String>) -> impl Strategy<Value = SubjectState> {
        let n = purposes.len();
        (
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(proptest::option::of(any::<bool>()), n),
            proptest::collection::vec(any::<bool>(), n),
            proptest::option::of(0i64..NOW),
            any::<bool>(),
        )
            .prop_map(move |(erased, restricted, consents, objections, closed, opted_out)| SubjectState {
                erased,
                restricted,
                opted_out,
                consents: purposes.iter().zip(&consents).filter_map(|(p, c)| c.map(|c| (p.clone(), c))).collect(),
                objections: purposes.iter().zip(&objections).filter(|(_, o)| **o).map(|(p, _)| p.clone()).collect(),
                account_closed_at_us: closed,
            })
    }

    proptest! {
        #[test]
        fn an_allowed_read_satisfies_every_rule(
            state in state_strategy(all_purposes(&policy())),
            pi in 0usize..64, ci in 0usize..64, grant_all in any::<bool>(), age_h in 0i64..200_000,
        ) {
            let p = &*POLICY;
            let keys = all_purposes(p);
            let purpose = &keys[pi % keys.len()];
            let cats: Vec<&String> = p.categories.keys().collect();
            let category = cats[ci % cats.len()];
            let granted = if grant_all { keys.clone() } else { vec![] };
            let f = FieldRef { name: "f", category, collected_at_us: NOW - age_h * HOUR_US };
            let d = decide(p, purpose, &granted, &state, &f, NOW);
            let pu = &p.purposes[purpose];
            if d.is_ok() {
                prop_assert!(grant_all);
                prop_assert!(!state.erased);
                prop_assert!(!state.restricted || pu.allowed_while_restricted);
                prop_assert!(pu.categories.contains(category));
                let only_consent = pu.basis.as_slice().iter().all(|b| *b == LawfulBasis::Consent);
                prop_assert!(!only_consent || state.consents.get(purpose) == Some(&true));
                prop_assert!(!(pu.direct_marketing && state.objections.contains(purpose)));
                prop_assert!(!(sells_or_shares(p, purpose) && state.opted_out));
                let only_interests = pu.basis.as_slice().iter().all(|b| *b == LawfulBasis::LegitimateInterests);
                prop_assert!(!only_interests || !state.objections.contains(purpose));
                // Retention has not run out, by the category's own rule.
                let r = Retention::parse(p.categories[category].retention.as_deref().unwrap()).unwrap();
                prop_assert!(!retention_expired(r, f.collected_at_us, state.account_closed_at_us, NOW));
            }
            if state.erased && grant_all {
                prop_assert_eq!(d, Err(Denial::Erased));
            }
            // Deterministic: the same inputs give the same answer.
            prop_assert_eq!(d, decide(p, purpose, &granted, &state, &f, NOW));
        }

        #[test]
        fn withdrawing_consent_never_widens_access(
            state in state_strategy(all_purposes(&policy())), pi in 0usize..64, ci in 0usize..64,
        ) {
            let p = &*POLICY;
            let keys = all_purposes(p);
            let purpose = &keys[pi % keys.len()];
            let cats: Vec<&String> = p.categories.keys().collect();
            let f = FieldRef { name: "f", category: cats[ci % cats.len()], collected_at_us: NOW };
            let mut withdrawn = state.clone();
            withdrawn.consents.insert(purpose.clone(), false);
            if decide(p, purpose, &keys, &withdrawn, &f, NOW).is_ok() {
                prop_assert!(decide(p, purpose, &keys, &state, &f, NOW).is_ok());
            }
        }
    }
}
