//! Rights requests: what a person may ask (each type is a GDPR or CCPA right the policy
//! must offer), the states a request moves through and which moves are allowed, and its
//! legal deadlines, computed exactly.
//!
//! Deadlines run from receipt and end at the last microsecond (UTC) of their last day.
//! GDPR Art. 12(3): one month (the same day of the next month, or that month's last day
//! when it has no such day), extendable by two further months. CCPA: 45 days, extendable
//! once by 45; receipt confirmed within 10 business days; an opt-out acted on within 15
//! business days (Monday to Friday; public holidays are not counted out).

use charter_policy::model::{CcpaRight, GdprRight, Policy};
use charter_policy::units::{PolicyDuration, Unit};

use crate::time::{add_business_days, add_months, end_of_day_us, DAY_US};

/// The law a request is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Jurisdiction {
    Gdpr,
    Ccpa,
}

impl Jurisdiction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gdpr => "gdpr",
            Self::Ccpa => "ccpa",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Gdpr, Self::Ccpa].into_iter().find(|j| j.as_str() == name)
    }
}

/// What a person asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    Access,
    Portability,
    Rectification,
    Erasure,
    Restriction,
    RestrictionLift,
    Objection,
    MarketingObjection,
    AutomatedDecisionObjection,
    ConsentWithdrawal,
    CcpaKnowCategories,
    CcpaKnowSpecific,
    CcpaDelete,
    CcpaCorrect,
    CcpaOptOut,
    ShineTheLight,
}

/// The right a request type exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Gdpr(GdprRight),
    Ccpa(CcpaRight),
}

impl RequestType {
    pub const ALL: [Self; 16] = [
        Self::Access,
        Self::Portability,
        Self::Rectification,
        Self::Erasure,
        Self::Restriction,
        Self::RestrictionLift,
        Self::Objection,
        Self::MarketingObjection,
        Self::AutomatedDecisionObjection,
        Self::ConsentWithdrawal,
        Self::CcpaKnowCategories,
        Self::CcpaKnowSpecific,
        Self::CcpaDelete,
        Self::CcpaCorrect,
        Self::CcpaOptOut,
        Self::ShineTheLight,
    ];

    /// The name requests use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Portability => "portability",
            Self::Rectification => "rectification",
            Self::Erasure => "erasure",
            Self::Restriction => "restriction",
            Self::RestrictionLift => "restriction_lift",
            Self::Objection => "objection",
            Self::MarketingObjection => "marketing_objection",
            Self::AutomatedDecisionObjection => "automated_decision_objection",
            Self::ConsentWithdrawal => "consent_withdrawal",
            Self::CcpaKnowCategories => "ccpa_know_categories",
            Self::CcpaKnowSpecific => "ccpa_know_specific",
            Self::CcpaDelete => "ccpa_delete",
            Self::CcpaCorrect => "ccpa_correct",
            Self::CcpaOptOut => "ccpa_opt_out",
            Self::ShineTheLight => "shine_the_light",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The right it exercises.
    pub fn right(self) -> Right {
        match self {
            Self::Access => Right::Gdpr(GdprRight::Access),
            Self::Portability => Right::Gdpr(GdprRight::Portability),
            Self::Rectification => Right::Gdpr(GdprRight::Rectification),
            Self::Erasure => Right::Gdpr(GdprRight::Erasure),
            Self::Restriction | Self::RestrictionLift => Right::Gdpr(GdprRight::Restriction),
            Self::Objection => Right::Gdpr(GdprRight::Objection),
            Self::MarketingObjection => Right::Gdpr(GdprRight::ObjectDirectMarketing),
            Self::AutomatedDecisionObjection => Right::Gdpr(GdprRight::ObjectAutomatedDecision),
            Self::ConsentWithdrawal => Right::Gdpr(GdprRight::WithdrawConsent),
            Self::CcpaKnowCategories | Self::CcpaKnowSpecific => Right::Ccpa(CcpaRight::Know),
            Self::CcpaDelete => Right::Ccpa(CcpaRight::Delete),
            Self::CcpaCorrect => Right::Ccpa(CcpaRight::Correct),
            Self::CcpaOptOut => Right::Ccpa(CcpaRight::OptOutSaleSharing),
            Self::ShineTheLight => Right::Ccpa(CcpaRight::ShineTheLight),
        }
    }

    /// The law the right comes from.
    pub fn jurisdiction(self) -> Jurisdiction {
        match self.right() {
            Right::Gdpr(_) => Jurisdiction::Gdpr,
            Right::Ccpa(_) => Jurisdiction::Ccpa,
        }
    }

    /// Whether `policy` offers the right.
    pub fn offered(self, policy: &Policy) -> bool {
        match self.right() {
            Right::Gdpr(r) => policy.rights.gdpr.as_ref().is_some_and(|g| g.rights.contains(&r)),
            Right::Ccpa(r) => policy.rights.ccpa.as_ref().is_some_and(|c| c.rights.contains(&r)),
        }
    }

    /// Whether fulfilling it changes what may be done with the person's data. Requests that
    /// do not (access, portability, know, Shine the Light) never change an access decision
    /// (P26, non-discrimination).
    pub fn changes_state(self) -> bool {
        !matches!(
            self,
            Self::Access | Self::Portability | Self::CcpaKnowCategories | Self::CcpaKnowSpecific | Self::ShineTheLight
        )
    }

    /// Whether it must be verified before it is acted on. An opt-out of sale or sharing
    /// needs no proof of identity (CCPA regulations §7026(d)).
    pub fn needs_verification(self) -> bool {
        self != Self::CcpaOptOut
    }

    /// Whether the answer is a download of the person's data.
    pub fn exports(self) -> bool {
        matches!(self, Self::Access | Self::Portability | Self::CcpaKnowSpecific | Self::CcpaKnowCategories)
    }

    /// What it asks for, in plain words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Access => "Get a copy of your data and how we use it",
            Self::Portability => "Get your data in a form you can take to another service",
            Self::Rectification => "Correct data that is wrong",
            Self::Erasure => "Delete your data",
            Self::Restriction => "Pause the use of your data",
            Self::RestrictionLift => "Lift a pause you asked for",
            Self::Objection => "Object to a use of your data",
            Self::MarketingObjection => "Stop all direct marketing",
            Self::AutomatedDecisionObjection => "Object to decisions made about you by automated means",
            Self::ConsentWithdrawal => "Withdraw consent you gave",
            Self::CcpaKnowCategories => "Know the categories of data we collected and shared (California)",
            Self::CcpaKnowSpecific => "Know the specific data we hold about you (California)",
            Self::CcpaDelete => "Delete your data (California)",
            Self::CcpaCorrect => "Correct your data (California)",
            Self::CcpaOptOut => "Do not sell or share my personal information (California)",
            Self::ShineTheLight => "Know who received your data for their own marketing (California)",
        }
    }
}

/// What fulfilling a request does to what access decisions see of a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing changes (Shine the Light answers from the policy and the disclosure log).
    None,
    /// The person gets a copy; nothing changes.
    Export,
    /// Values are replaced; what may be done with them does not change.
    Rectify,
    /// The person's data is erased (legal exceptions kept, restricted).
    Erase,
    Restrict,
    Unrestrict,
    /// Objections to these purposes.
    Object(Vec<String>),
    /// Consent to this purpose withdrawn.
    Withdraw(String),
    /// The opt-out of sale and sharing.
    OptOut,
}

/// The effect of a request of `kind`, naming `purpose` where it needs one (an objection,
/// a withdrawal), under `policy`.
pub fn effect(kind: RequestType, purpose: Option<&str>, policy: &Policy) -> Effect {
    let purposes_where = |f: fn(&charter_policy::model::Purpose) -> bool| -> Vec<String> {
        policy.purposes.iter().filter(|(_, p)| f(p)).map(|(k, _)| k.clone()).collect()
    };
    match kind {
        RequestType::Access
        | RequestType::Portability
        | RequestType::CcpaKnowCategories
        | RequestType::CcpaKnowSpecific => Effect::Export,
        RequestType::ShineTheLight => Effect::None,
        RequestType::Rectification | RequestType::CcpaCorrect => Effect::Rectify,
        RequestType::Erasure | RequestType::CcpaDelete => Effect::Erase,
        RequestType::Restriction => Effect::Restrict,
        RequestType::RestrictionLift => Effect::Unrestrict,
        RequestType::Objection => Effect::Object(purpose.map(str::to_owned).into_iter().collect()),
        RequestType::MarketingObjection => Effect::Object(purposes_where(|p| p.direct_marketing)),
        RequestType::AutomatedDecisionObjection => Effect::Object(purposes_where(|p| p.automated_decision)),
        RequestType::ConsentWithdrawal => purpose.map_or(Effect::None, |p| Effect::Withdraw(p.to_owned())),
        RequestType::CcpaOptOut => Effect::OptOut,
    }
}

/// `state` as access decisions see it after `effect`.
pub fn apply(effect: &Effect, state: &mut crate::access::SubjectState) {
    match effect {
        Effect::None | Effect::Export | Effect::Rectify => {}
        Effect::Erase => state.erased = true,
        Effect::Restrict => state.restricted = true,
        Effect::Unrestrict => state.restricted = false,
        Effect::Object(purposes) => state.objections.extend(purposes.iter().cloned()),
        Effect::Withdraw(purpose) => {
            state.consents.insert(purpose.clone(), false);
        }
        Effect::OptOut => state.opted_out = true,
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Filed by an authorised agent; the team has not yet approved the authorisation.
    AgentPending,
    AwaitingVerification,
    Verified,
    AwaitingApproval,
    InProgress,
    Completed,
    Denied,
    /// Never verified within the policy's window.
    Expired,
    /// The same person asked the same thing within the window: the earlier request stands.
    Duplicate,
}

impl Status {
    pub const ALL: [Self; 9] = [
        Self::AgentPending,
        Self::AwaitingVerification,
        Self::Verified,
        Self::AwaitingApproval,
        Self::InProgress,
        Self::Completed,
        Self::Denied,
        Self::Expired,
        Self::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentPending => "agent_pending",
            Self::AwaitingVerification => "awaiting_verification",
            Self::Verified => "verified",
            Self::AwaitingApproval => "awaiting_approval",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Duplicate => "duplicate",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Denied | Self::Expired | Self::Duplicate)
    }

    /// Whether its deadline still binds (the team must answer it).
    pub fn is_open(self) -> bool {
        !self.is_final()
    }
}

/// Something that happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The team approved an agent's authorisation: the person may now verify.
    AgentApproved,
    /// The person proved who they are.
    Verify,
    /// A verified request goes to the team (`true`) or straight to work.
    Route { needs_approval: bool },
    /// The team approved it.
    Approve,
    /// The work is done.
    Complete,
    /// The team refused it, with a reason.
    Deny,
    /// Not verified in time.
    Expire,
    /// The same as an earlier request.
    MarkDuplicate,
}

/// A move a request in its state cannot make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {} cannot be {}", .from.as_str(), .by.describe())]
pub struct BadMove {
    pub from: Status,
    pub by: Move,
}

impl Move {
    fn describe(self) -> &'static str {
        match self {
            Self::AgentApproved => "approved as an agent's",
            Self::Verify => "verified",
            Self::Route { .. } => "routed",
            Self::Approve => "approved",
            Self::Complete => "completed",
            Self::Deny => "denied",
            Self::Expire => "expired",
            Self::MarkDuplicate => "marked a duplicate",
        }
    }
}

/// The state `by` leads to from `from`.
pub fn next(from: Status, by: Move) -> Result<Status, BadMove> {
    use Status::*;
    let to = match (from, by) {
        (AgentPending, Move::AgentApproved) => AwaitingVerification,
        (AgentPending | AwaitingVerification | AwaitingApproval | InProgress, Move::Deny) => Denied,
        (AwaitingVerification, Move::Verify) => Verified,
        (AwaitingVerification | AgentPending, Move::Expire) => Expired,
        (AwaitingVerification | Verified, Move::MarkDuplicate) => Duplicate,
        (Verified, Move::Route { needs_approval: true }) => AwaitingApproval,
        (Verified, Move::Route { needs_approval: false }) | (AwaitingApproval, Move::Approve) => InProgress,
        (InProgress, Move::Complete) => Completed,
        _ => return Err(BadMove { from, by }),
    };
    Ok(to)
}

/// The rules of one jurisdiction's requests, from the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub deadline: PolicyDuration,
    pub extension: PolicyDuration,
}

impl Clock {
    /// The clock `policy` sets for `jurisdiction`, if it offers that jurisdiction's rights.
    pub fn of(policy: &Policy, jurisdiction: Jurisdiction) -> Option<Self> {
        let (deadline, extension) = match jurisdiction {
            Jurisdiction::Gdpr => policy.rights.gdpr.as_ref().map(|g| (&g.deadline, &g.extension))?,
            Jurisdiction::Ccpa => policy.rights.ccpa.as_ref().map(|c| (&c.deadline, &c.extension))?,
        };
        Some(Self {
            deadline: PolicyDuration::parse(deadline).ok()?,
            extension: PolicyDuration::parse(extension).ok()?,
        })
    }

    /// When a request received at `received_us` must be answered.
    pub fn due(self, received_us: i64) -> i64 {
        after(received_us, self.deadline)
    }

    /// The deadline once extended: the extension runs on from the first deadline.
    pub fn extended_due(self, received_us: i64) -> i64 {
        after(self.due(received_us), self.extension)
    }
}

/// The end of the day `d` after the day of `at_us`: calendar months and years keep the
/// day of the month (or the month's last day); hours count exactly.
pub fn after(at_us: i64, d: PolicyDuration) -> i64 {
    let day = at_us.div_euclid(DAY_US);
    let end = match d.unit {
        Unit::Hours => return at_us + i64::from(d.count) * 3_600_000_000,
        Unit::Days => day + i64::from(d.count),
        Unit::Weeks => day + 7 * i64::from(d.count),
        Unit::Months => add_months(day, d.count),
        Unit::Years => add_months(day, d.count * 12),
    };
    end_of_day_us(end)
}

/// CCPA: receipt is confirmed within 10 business days of it.
pub fn confirm_receipt_by(received_us: i64) -> i64 {
    end_of_day_us(add_business_days(received_us.div_euclid(DAY_US), 10))
}

/// CCPA: an opt-out of sale or sharing is acted on within 15 business days of receipt.
pub fn opt_out_by(received_us: i64) -> i64 {
    end_of_day_us(add_business_days(received_us.div_euclid(DAY_US), 15))
}

/// Whether a request due at `due_us` may still be extended at `now_us`: only before its
/// first deadline passes.
pub fn may_extend(due_us: i64, now_us: i64, already: bool) -> bool {
    !already && now_us <= due_us
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    fn at(y: i32, m: u32, d: u32, hour: i64) -> i64 {
        days_from_civil(y, m, d) * DAY_US + hour * 3_600_000_000
    }

    static POLICY: std::sync::LazyLock<Policy> =
        std::sync::LazyLock::new(|| charter_policy::load("t", charter_policy::TENSOROPERA).unwrap().policy);

    fn policy() -> Policy {
        POLICY.clone()
    }

    #[test]
    fn types_round_trip_and_map_to_their_rights() {
        for t in RequestType::ALL {
            assert_eq!(RequestType::parse(t.as_str()), Some(t));
        }
        let described: std::collections::BTreeSet<&str> = RequestType::ALL.iter().map(|t| t.describe()).collect();
        assert_eq!(described.len(), 16, "each type says what it asks in words of its own");
        assert_eq!(RequestType::Erasure.describe(), "Delete your data");
        assert_eq!(RequestType::parse("Access"), None);
        let names: Vec<&str> = RequestType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, charter_policy::model::REQUEST_TYPES, "the policy validates against the same names");
        let p = policy();
        let offered: Vec<&str> = RequestType::ALL.iter().filter(|t| t.offered(&p)).map(|t| t.as_str()).collect();
        assert_eq!(offered.len(), 16, "TensorOpera offers every right: {offered:?}");
        let mut narrow = p.clone();
        narrow.rights.ccpa = None;
        narrow.rights.gdpr.as_mut().unwrap().rights.retain(|r| *r != GdprRight::Portability);
        assert!(!RequestType::Portability.offered(&narrow));
        assert!(!RequestType::CcpaDelete.offered(&narrow) && RequestType::Access.offered(&narrow));
        assert_eq!(RequestType::RestrictionLift.right(), Right::Gdpr(GdprRight::Restriction));
        assert_eq!(RequestType::MarketingObjection.right(), Right::Gdpr(GdprRight::ObjectDirectMarketing));
        assert_eq!(RequestType::ShineTheLight.jurisdiction(), Jurisdiction::Ccpa);
        assert_eq!(RequestType::ConsentWithdrawal.jurisdiction(), Jurisdiction::Gdpr);
        assert_eq!(Jurisdiction::parse("ccpa"), Some(Jurisdiction::Ccpa));
        assert_eq!(Jurisdiction::parse("gdpr"), Some(Jurisdiction::Gdpr));
        assert_eq!(Jurisdiction::parse("GDPR"), None);
    }

    #[test]
    fn only_some_types_change_state_export_or_skip_verification() {
        let pick = |f: fn(RequestType) -> bool| -> Vec<&str> {
            RequestType::ALL.iter().filter(|t| f(**t)).map(|t| t.as_str()).collect()
        };
        assert_eq!(
            pick(|t| !t.changes_state()),
            ["access", "portability", "ccpa_know_categories", "ccpa_know_specific", "shine_the_light"]
        );
        assert_eq!(pick(|t| !t.needs_verification()), ["ccpa_opt_out"]);
        assert_eq!(pick(RequestType::exports), ["access", "portability", "ccpa_know_categories", "ccpa_know_specific"]);
    }

    #[test]
    fn effects_follow_the_type() {
        let p = policy();
        assert_eq!(effect(RequestType::Objection, Some("analytics"), &p), Effect::Object(vec!["analytics".into()]));
        assert_eq!(effect(RequestType::Objection, None, &p), Effect::Object(vec![]));
        assert_eq!(
            effect(RequestType::MarketingObjection, None, &p),
            Effect::Object(vec!["direct_marketing".into(), "newsletter".into()])
        );
        let automated: Vec<String> =
            p.purposes.iter().filter(|(_, q)| q.automated_decision).map(|(k, _)| k.clone()).collect();
        assert_eq!(effect(RequestType::AutomatedDecisionObjection, None, &p), Effect::Object(automated));
        assert_eq!(
            effect(RequestType::ConsentWithdrawal, Some("newsletter"), &p),
            Effect::Withdraw("newsletter".into())
        );
        assert_eq!(effect(RequestType::ConsentWithdrawal, None, &p), Effect::None);
        assert_eq!(effect(RequestType::CcpaDelete, None, &p), Effect::Erase);
        assert_eq!(effect(RequestType::CcpaCorrect, None, &p), Effect::Rectify);
        assert_eq!(effect(RequestType::RestrictionLift, None, &p), Effect::Unrestrict);
        assert_eq!(effect(RequestType::Restriction, None, &p), Effect::Restrict);
        assert_eq!(effect(RequestType::ShineTheLight, None, &p), Effect::None);
        assert_eq!(effect(RequestType::CcpaOptOut, None, &p), Effect::OptOut);
        let mut s = crate::access::SubjectState::default();
        for e in [
            Effect::Restrict,
            Effect::OptOut,
            Effect::Withdraw("newsletter".into()),
            Effect::Object(vec!["analytics".into()]),
        ] {
            apply(&e, &mut s);
        }
        assert!(s.restricted && s.opted_out && !s.consents["newsletter"] && s.objections.contains("analytics"));
        apply(&Effect::Unrestrict, &mut s);
        apply(&Effect::Erase, &mut s);
        assert!(!s.restricted && s.erased);
    }

    proptest::proptest! {
        /// P26: a request that does not change a person's state never changes an access
        /// decision, and no request but lifting a restriction ever widens one.
        #[test]
        fn requests_never_widen_access_and_reading_ones_change_nothing(
            ti in 0usize..16, pi in 0usize..64, ci in 0usize..64,
            restricted in proptest::bool::ANY, opted_out in proptest::bool::ANY,
            given in proptest::collection::vec(proptest::option::of(proptest::bool::ANY), 30),
            objected in proptest::collection::vec(proptest::bool::ANY, 30),
        ) {
            use crate::access::{decide, FieldRef, SubjectState};
            let p = &*POLICY;
            let keys: Vec<String> = p.purposes.keys().cloned().collect();
            let kind = RequestType::ALL[ti];
            let purpose = &keys[pi % keys.len()];
            let cats: Vec<&String> = p.categories.keys().collect();
            let field = FieldRef { name: "f", category: cats[ci % cats.len()], collected_at_us: 1_000 };
            let state = SubjectState {
                restricted,
                opted_out,
                consents: keys.iter().zip(&given).filter_map(|(k, g)| g.map(|g| (k.clone(), g))).collect(),
                objections: keys.iter().zip(&objected).filter(|(_, o)| **o).map(|(k, _)| k.clone()).collect(),
                ..SubjectState::default()
            };
            let mut after = state.clone();
            apply(&effect(kind, Some(purpose), p), &mut after);
            let before_d = decide(p, purpose, &keys, &state, &field, 2_000);
            let after_d = decide(p, purpose, &keys, &after, &field, 2_000);
            if !kind.changes_state() {
                proptest::prop_assert_eq!(&after, &state);
                proptest::prop_assert_eq!(after_d, before_d);
            }
            if kind != RequestType::RestrictionLift && after_d.is_ok() {
                proptest::prop_assert!(before_d.is_ok(), "{:?} widened access to {}", kind, purpose);
            }
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(s.is_open(), !s.is_final());
        }
        let finals: Vec<&str> = Status::ALL.iter().filter(|s| s.is_final()).map(|s| s.as_str()).collect();
        assert_eq!(finals, ["completed", "denied", "expired", "duplicate"]);
    }

    #[test]
    fn the_state_machine_allows_exactly_its_moves() {
        use Status::*;
        let moves = [
            Move::AgentApproved,
            Move::Verify,
            Move::Route { needs_approval: true },
            Move::Route { needs_approval: false },
            Move::Approve,
            Move::Complete,
            Move::Deny,
            Move::Expire,
            Move::MarkDuplicate,
        ];
        let allowed = [
            (AgentPending, Move::AgentApproved, AwaitingVerification),
            (AgentPending, Move::Deny, Denied),
            (AgentPending, Move::Expire, Expired),
            (AwaitingVerification, Move::Verify, Verified),
            (AwaitingVerification, Move::Deny, Denied),
            (AwaitingVerification, Move::Expire, Expired),
            (AwaitingVerification, Move::MarkDuplicate, Duplicate),
            (Verified, Move::MarkDuplicate, Duplicate),
            (Verified, Move::Route { needs_approval: true }, AwaitingApproval),
            (Verified, Move::Route { needs_approval: false }, InProgress),
            (AwaitingApproval, Move::Approve, InProgress),
            (AwaitingApproval, Move::Deny, Denied),
            (InProgress, Move::Complete, Completed),
            (InProgress, Move::Deny, Denied),
        ];
        for from in Status::ALL {
            for by in moves {
                let expected = allowed.iter().find(|(f, m, _)| *f == from && *m == by).map(|(_, _, to)| *to);
                assert_eq!(next(from, by).ok(), expected, "{from:?} by {by:?}");
            }
        }
        let e = next(Completed, Move::Approve).unwrap_err();
        assert_eq!(e.to_string(), "a request that is completed cannot be approved");
    }

    #[test]
    fn gdpr_deadlines_are_a_calendar_month_and_two_more() {
        let clock = Clock::of(&policy(), Jurisdiction::Gdpr).unwrap();
        let end = |y, m, d| end_of_day_us(days_from_civil(y, m, d));
        assert_eq!(clock.due(at(2026, 1, 31, 15)), end(2026, 2, 28), "no 31 February: its last day");
        assert_eq!(clock.due(at(2028, 1, 31, 0)), end(2028, 2, 29));
        assert_eq!(clock.due(at(2026, 3, 15, 23)), end(2026, 4, 15));
        assert_eq!(clock.due(at(2026, 12, 31, 1)), end(2027, 1, 31), "across a year");
        assert_eq!(clock.extended_due(at(2026, 1, 31, 15)), end(2026, 4, 28), "two months on from 28 February");
        assert_eq!(clock.extended_due(at(2026, 3, 15, 0)), end(2026, 6, 15));
    }

    #[test]
    fn ccpa_deadlines_count_days_and_business_days() {
        let clock = Clock::of(&policy(), Jurisdiction::Ccpa).unwrap();
        let end = |y, m, d| end_of_day_us(days_from_civil(y, m, d));
        let received = at(2026, 12, 4, 18);
        assert_eq!(clock.due(received), end(2027, 1, 18), "45 days");
        assert_eq!(clock.extended_due(received), end(2027, 3, 4), "45 more");
        assert_eq!(confirm_receipt_by(received), end(2026, 12, 18), "10 business days from a Friday");
        assert_eq!(opt_out_by(received), end(2026, 12, 25), "15 business days");
        let mut none = policy();
        none.rights.ccpa = None;
        assert_eq!(Clock::of(&none, Jurisdiction::Ccpa), None);
    }

    #[test]
    fn durations_in_hours_weeks_and_years() {
        let d = |s: &str| PolicyDuration::parse(s).unwrap();
        let start = at(2026, 2, 28, 10);
        assert_eq!(after(start, d("48h")), start + 48 * 3_600_000_000);
        assert_eq!(after(start, d("2w")), end_of_day_us(days_from_civil(2026, 3, 14)));
        assert_eq!(after(at(2028, 2, 29, 0), d("1y")), end_of_day_us(days_from_civil(2029, 2, 28)));
        assert_eq!(after(start, d("3d")), end_of_day_us(days_from_civil(2026, 3, 3)));
    }

    #[test]
    fn an_extension_is_allowed_once_and_before_the_deadline() {
        assert!(may_extend(100, 100, false));
        assert!(may_extend(100, 99, false));
        assert!(!may_extend(100, 101, false), "after the deadline");
        assert!(!may_extend(100, 50, true), "only once");
    }
}
