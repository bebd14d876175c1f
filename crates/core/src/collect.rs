//! What a collection point accepts: only declared fields, of their declared
//! type and size, required ones present, consents the point asks, and nobody
//! under the policy's minimum age (data minimisation, P01–P06, P29).

use charter_policy::model::{FieldType, Policy};
use charter_policy::units::{check_date, check_url};
use charter_vault::{IdentifierKind, Normaliser};
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a collection was refused. Messages name fields and points, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Refusal {
    /// The point is not in the policy.
    UnknownPoint {
        /// The point asked for.
        point: String,
    },
    /// The field is not declared for the point.
    UndeclaredField {
        /// The field.
        field: String,
        /// The point.
        point: String,
    },
    /// The value is not of the declared type or format.
    WrongType {
        /// The field.
        field: String,
        /// What was expected.
        expected: String,
    },
    /// The value is larger than declared.
    TooLarge {
        /// The field.
        field: String,
        /// The limit in bytes.
        max_bytes: u64,
    },
    /// A required field is missing.
    MissingRequired {
        /// The field.
        field: String,
    },
    /// Files go through the upload endpoint.
    FileField {
        /// The field.
        field: String,
    },
    /// The point does not ask for consent to this purpose.
    ConsentNotAsked {
        /// The purpose.
        purpose: String,
        /// The point.
        point: String,
    },
    /// A consent answer is not true or false.
    ConsentNotBoolean {
        /// The purpose.
        purpose: String,
    },
    /// The person is younger than the policy allows.
    UnderMinimumAge {
        /// The policy's minimum age.
        minimum_age: u32,
    },
}

impl Refusal {
    /// The refusal for the audit chain: its code, and only the names the policy declares.
    /// A name the caller chose (an undeclared field, a purpose or point not in the policy)
    /// could be anything, personal data included, so the append-only chain never holds it.
    pub fn audit_detail(&self, policy: &Policy) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let drop_key = match self {
            Self::UnknownPoint { .. } => Some("point"),
            Self::UndeclaredField { .. } => Some("field"),
            Self::ConsentNotAsked { purpose, .. } | Self::ConsentNotBoolean { purpose }
                if !policy.purposes.contains_key(purpose) =>
            {
                Some("purpose")
            }
            _ => None,
        };
        if let (Some(k), Some(map)) = (drop_key, v.as_object_mut()) {
            map.remove(k);
        }
        v
    }

    /// The audit details of a collection's refusals ([`Refusal::audit_detail`]), alike ones
    /// once each, with a `count` when there were several: a body of many undeclared fields
    /// makes one short item, not one per field in the permanent chain.
    pub fn audit_details(refusals: &[Self], policy: &Policy) -> Vec<Value> {
        let mut alike: Vec<(Value, usize)> = Vec::new();
        for r in refusals {
            let detail = r.audit_detail(policy);
            match alike.iter_mut().find(|(d, _)| *d == detail) {
                Some((_, n)) => *n += 1,
                None => alike.push((detail, 1)),
            }
        }
        alike
            .into_iter()
            .map(|(mut d, n)| {
                if let (Some(map), true) = (d.as_object_mut(), n > 1) {
                    map.insert("count".into(), n.into());
                }
                d
            })
            .collect()
    }

    /// The refusal's code, as responses and the audit chain name it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownPoint { .. } => "unknown_point",
            Self::UndeclaredField { .. } => "undeclared_field",
            Self::WrongType { .. } => "wrong_type",
            Self::TooLarge { .. } => "too_large",
            Self::MissingRequired { .. } => "missing_required",
            Self::FileField { .. } => "file_field",
            Self::ConsentNotAsked { .. } => "consent_not_asked",
            Self::ConsentNotBoolean { .. } => "consent_not_boolean",
            Self::UnderMinimumAge { .. } => "under_minimum_age",
        }
    }

    /// A sentence for the response. It names fields, points and purposes only when the
    /// policy declares them; a name the caller chose is said to be unknown, never echoed.
    pub fn message(&self, policy: &Policy) -> String {
        match self {
            Self::UnknownPoint { .. } => "no collection point of that name is in the policy".to_owned(),
            Self::UndeclaredField { point, .. } => {
                format!("a field that is not declared for collection point `{point}` was sent; nothing was stored")
            }
            Self::WrongType { field, expected } => format!("field `{field}` must be {expected}"),
            Self::TooLarge { field, max_bytes } => {
                format!("field `{field}` is larger than its limit of {max_bytes} bytes")
            }
            Self::MissingRequired { field } => format!("required field `{field}` is missing"),
            Self::FileField { field } => format!("field `{field}` is a file: send it as a part of a multipart/form-data collection, or to the upload endpoint"),
            Self::ConsentNotAsked { purpose, point } if policy.purposes.contains_key(purpose) => {
                format!("collection point `{point}` does not ask for consent to `{purpose}`")
            }
            Self::ConsentNotAsked { point, .. } => {
                format!("a consent was given for a purpose that is not in the policy; `{point}` asks only for its own")
            }
            Self::ConsentNotBoolean { purpose } => format!("the consent answer for `{purpose}` must be true or false"),
            Self::UnderMinimumAge { minimum_age } => {
                format!("this service is not available to anyone under {minimum_age}; nothing was stored")
            }
        }
    }
}

/// A field value that passed every check, in its canonical text form.
#[derive(Clone, PartialEq, Eq)]
pub struct Accepted<'p> {
    /// The field's name.
    pub field: &'p str,
    /// Its category.
    pub category: &'p str,
    /// Its type.
    pub kind: FieldType,
    /// Checked against what is stored instead of stored (a sign-in's password).
    pub verify: bool,
    /// The value as text (numbers and booleans in their JSON spelling).
    pub value: String,
}

impl std::fmt::Debug for Accepted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted").field("field", &self.field).field("category", &self.category).finish_non_exhaustive()
    }
}

/// A collection that may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection<'p> {
    /// Accepted fields.
    pub fields: Vec<Accepted<'p>>,
    /// Consent answers: (purpose, given).
    pub consents: Vec<(&'p str, bool)>,
}

/// Whole years between a `YYYY-MM-DD` birth date and `today` (y, m, d).
pub fn age_on(birth: &str, today: (i32, u32, u32)) -> Option<i32> {
    check_date(birth).ok()?;
    let y: i32 = birth[..4].parse().ok()?;
    let m: u32 = birth[5..7].parse().ok()?;
    let d: u32 = birth[8..].parse().ok()?;
    let mut age = today.0 - y;
    if (today.1, today.2) < (m, d) {
        age -= 1;
    }
    Some(age)
}

/// The value of field `name` of type `kind` in its canonical text form; an email address or
/// phone number in the normal form `identifiers` gives it.
fn check_value(identifiers: &Normaliser, name: &str, kind: FieldType, v: &Value) -> Result<String, Refusal> {
    let wrong = |expected: &str| Refusal::WrongType { field: name.to_owned(), expected: expected.to_owned() };
    let text = |expected: &str| v.as_str().map(str::to_owned).ok_or_else(|| wrong(expected));
    match kind {
        FieldType::String => {
            let s = text("a string")?;
            if s.contains(['\n', '\r']) {
                return Err(wrong("a string on one line"));
            }
            Ok(s)
        }
        FieldType::Text | FieldType::Password => text("a string"),
        FieldType::Email => {
            let s = text("an email address")?;
            let normal = identifiers.normalise(IdentifierKind::Email, &s).map_err(|_| wrong("an email address"))?;
            Ok(normal.expose().to_owned())
        }
        FieldType::Phone => {
            let s = text("a phone number")?;
            let normal = identifiers.normalise(IdentifierKind::Phone, &s).map_err(|_| {
                wrong("a phone number, in international form (+ and the country code) or of the policy's region")
            })?;
            Ok(normal.expose().to_owned())
        }
        FieldType::Url => text("a URL").and_then(|s| check_url(&s).map(|()| s).map_err(|_| wrong("an http(s) URL"))),
        FieldType::Date | FieldType::BirthDate => text("a date (YYYY-MM-DD)")
            .and_then(|s| check_date(&s).map(|()| s).map_err(|_| wrong("a date (YYYY-MM-DD)"))),
        FieldType::AgeAttestation | FieldType::Boolean => {
            v.as_bool().map(|b| b.to_string()).ok_or_else(|| wrong("true or false"))
        }
        FieldType::Integer => v.as_i64().map(|n| n.to_string()).ok_or_else(|| wrong("a whole number")),
        FieldType::File => Err(Refusal::FileField { field: name.to_owned() }),
    }
}

/// Checks a collection against point `point` of `policy`, on `today` (y, m, d), with
/// identifier fields put in normal form by `identifiers`.
/// Returns every refusal, in a stable order, or what may be stored.
pub fn check<'p>(
    policy: &'p Policy,
    identifiers: &Normaliser,
    point: &str,
    fields: &Map<String, Value>,
    consents: &Map<String, Value>,
    today: (i32, u32, u32),
) -> Result<Collection<'p>, Vec<Refusal>> {
    let Some((_, p)) = policy.collection_points.get_key_value(point) else {
        return Err(vec![Refusal::UnknownPoint { point: point.to_owned() }]);
    };
    let mut refusals = Vec::new();
    let mut accepted = Vec::new();
    let mut under_age = false;
    for (name, value) in fields {
        let Some((decl_name, decl)) = p.fields.get_key_value(name) else {
            refusals.push(Refusal::UndeclaredField { field: name.clone(), point: point.to_owned() });
            continue;
        };
        match check_value(identifiers, name, decl.kind, value) {
            Ok(text) => {
                if let Some(max) = decl.max_bytes.filter(|m| text.len() as u64 > *m) {
                    refusals.push(Refusal::TooLarge { field: name.clone(), max_bytes: max });
                    continue;
                }
                match decl.kind {
                    FieldType::BirthDate => {
                        under_age |= age_on(&text, today)
                            .is_none_or(|a| a < i32::try_from(policy.controller.minimum_age).unwrap_or(i32::MAX))
                    }
                    FieldType::AgeAttestation => under_age |= text != "true",
                    _ => {}
                }
                accepted.push(Accepted {
                    field: decl_name,
                    category: &decl.category,
                    kind: decl.kind,
                    verify: decl.verify,
                    value: text,
                });
            }
            Err(r) => refusals.push(r),
        }
    }
    for (name, decl) in &p.fields {
        if decl.required && decl.kind != FieldType::File && !fields.contains_key(name) {
            refusals.push(Refusal::MissingRequired { field: name.clone() });
        }
    }
    let mut answers = Vec::new();
    for (purpose, value) in consents {
        let Some(asked) = p.consents.iter().find(|c| *c == purpose) else {
            refusals.push(Refusal::ConsentNotAsked { purpose: purpose.clone(), point: point.to_owned() });
            continue;
        };
        match value.as_bool() {
            Some(given) => answers.push((asked.as_str(), given)),
            None => refusals.push(Refusal::ConsentNotBoolean { purpose: purpose.clone() }),
        }
    }
    if under_age {
        // Nothing else about an under-age person is worth reporting back: refuse outright.
        return Err(vec![Refusal::UnderMinimumAge { minimum_age: policy.controller.minimum_age }]);
    }
    if refusals.is_empty() {
        Ok(Collection { fields: accepted, consents: answers })
    } else {
        Err(refusals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).unwrap().policy
    }

    fn ids() -> Normaliser {
        Normaliser::new(Some("US"), true).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ages_are_whole_years() {
        assert_eq!(age_on("2008-11-29", (2026, 11, 29)), Some(18));
        assert_eq!(age_on("2008-11-30", (2026, 11, 29)), Some(17));
        assert_eq!(age_on("2008-13-01", (2026, 11, 29)), None);
    }

    #[test]
    fn refusals_name_fields_never_values() {
        let p = policy();
        let signup = &p.collection_points["signup"];
        let required: Vec<&String> = signup.fields.iter().filter(|(_, f)| f.required).map(|(k, _)| k).collect();
        assert!(!required.is_empty());
        let err = check(
            &p,
            &ids(),
            "signup",
            &obj(json!({"favourite_colour": "teal@secret.example"})),
            &Map::new(),
            (2026, 11, 29),
        )
        .unwrap_err();
        assert!(err.contains(&Refusal::UndeclaredField { field: "favourite_colour".into(), point: "signup".into() }));
        for r in &err {
            assert!(!r.message(&p).contains("teal@secret"), "{}", r.message(&p));
            assert!(!r.message(&p).contains("favourite_colour"), "{}", r.message(&p));
        }
        assert!(err.iter().any(|r| matches!(r, Refusal::MissingRequired { .. })));
        assert_eq!(
            check(&p, &ids(), "nowhere", &Map::new(), &Map::new(), (2026, 1, 1)).unwrap_err(),
            vec![Refusal::UnknownPoint { point: "nowhere".into() }]
        );
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).unwrap().policy
    }

    /// One refusal of each kind, with the code each must carry.
    fn every_kind() -> Vec<(Refusal, &'static str)> {
        let s = |v: &str| v.to_owned();
        vec![
            (Refusal::UnknownPoint { point: s("nowhere") }, "unknown_point"),
            (Refusal::UndeclaredField { field: s("shoe"), point: s("signup") }, "undeclared_field"),
            (Refusal::WrongType { field: s("email"), expected: s("an email address") }, "wrong_type"),
            (Refusal::TooLarge { field: s("name"), max_bytes: 256 }, "too_large"),
            (Refusal::MissingRequired { field: s("name") }, "missing_required"),
            (Refusal::FileField { field: s("cv") }, "file_field"),
            (Refusal::ConsentNotAsked { purpose: s("surveys"), point: s("signup") }, "consent_not_asked"),
            (Refusal::ConsentNotBoolean { purpose: s("newsletter") }, "consent_not_boolean"),
            (Refusal::UnderMinimumAge { minimum_age: 18 }, "under_minimum_age"),
        ]
    }

    #[test]
    fn each_refusal_has_its_code_as_serialised() {
        for (r, code) in every_kind() {
            assert_eq!(r.code(), code);
            assert_eq!(serde_json::to_value(&r).unwrap()["code"], code);
        }
    }

    #[test]
    fn messages_say_what_was_wrong() {
        let p = policy();
        let said: Vec<String> = every_kind().iter().map(|(r, _)| r.message(&p)).collect();
        assert_eq!(
            said,
            [
                "no collection point of that name is in the policy",
                "a field that is not declared for collection point `signup` was sent; nothing was stored",
                "field `email` must be an email address",
                "field `name` is larger than its limit of 256 bytes",
                "required field `name` is missing",
                "field `cv` is a file: send it as a part of a multipart/form-data collection, or to the upload endpoint",
                "collection point `signup` does not ask for consent to `surveys`",
                "the consent answer for `newsletter` must be true or false",
                "this service is not available to anyone under 18; nothing was stored",
            ]
        );
        let unknown = Refusal::ConsentNotAsked { purpose: "zq7@example.org".into(), point: "signup".into() };
        assert_eq!(
            unknown.message(&p),
            "a consent was given for a purpose that is not in the policy; `signup` asks only for its own"
        );
    }

    #[test]
    fn the_chain_keeps_only_declared_names() {
        let p = policy();
        let detail = |r: Refusal| r.audit_detail(&p);
        assert_eq!(detail(Refusal::UnknownPoint { point: "x@y.example".into() }), json!({ "code": "unknown_point" }));
        assert_eq!(
            detail(Refusal::UndeclaredField { field: "x@y.example".into(), point: "signup".into() }),
            json!({ "code": "undeclared_field", "point": "signup" })
        );
        assert_eq!(
            detail(Refusal::ConsentNotAsked { purpose: "x@y.example".into(), point: "signup".into() }),
            json!({ "code": "consent_not_asked", "point": "signup" })
        );
        assert_eq!(
            detail(Refusal::ConsentNotAsked { purpose: "surveys".into(), point: "signup".into() }),
            json!({ "code": "consent_not_asked", "purpose": "surveys", "point": "signup" })
        );
        assert_eq!(
            detail(Refusal::ConsentNotBoolean { purpose: "x@y.example".into() }),
            json!({ "code": "consent_not_boolean" })
        );
        assert_eq!(
            detail(Refusal::ConsentNotBoolean { purpose: "newsletter".into() }),
            json!({ "code": "consent_not_boolean", "purpose": "newsletter" })
        );
        assert_eq!(
            detail(Refusal::WrongType { field: "email".into(), expected: "an email address".into() }),
            json!({ "code": "wrong_type", "field": "email", "expected": "an email address" })
        );
    }

    #[test]
    fn alike_refusals_are_recorded_once_with_a_count() {
        let p = policy();
        let undeclared = |f: &str| Refusal::UndeclaredField { field: f.into(), point: "signup".into() };
        let refusals =
            [undeclared("a"), Refusal::MissingRequired { field: "name".into() }, undeclared("b"), undeclared("c")];
        assert_eq!(
            Refusal::audit_details(&refusals, &p),
            vec![
                json!({ "code": "undeclared_field", "point": "signup", "count": 3 }),
                json!({ "code": "missing_required", "field": "name" }),
            ]
        );
        assert_eq!(
            Refusal::audit_details(&refusals[1..2], &p),
            vec![json!({ "code": "missing_required", "field": "name" })],
            "one alone has no count"
        );
        assert!(Refusal::audit_details(&[], &p).is_empty());
    }
}

#[cfg(test)]
mod value_tests {
    use super::*;
    use serde_json::json;

    fn ids() -> Normaliser {
        Normaliser::new(Some("US"), true).unwrap()
    }

    fn value(kind: FieldType, v: Value) -> Result<String, Refusal> {
        check_value(&ids(), "f", kind, &v)
    }

    fn wrong(expected: &str) -> Result<String, Refusal> {
        Err(Refusal::WrongType { field: "f".into(), expected: expected.into() })
    }

    #[test]
    fn each_type_takes_its_values_in_canonical_form() {
        let ok = |s: &str| Ok(s.to_owned());
        let cases = [
            (FieldType::String, json!("Ada"), ok("Ada")),
            (FieldType::String, json!("a\nb"), wrong("a string on one line")),
            (FieldType::String, json!("a\rb"), wrong("a string on one line")),
            (FieldType::String, json!(5), wrong("a string")),
            (FieldType::Text, json!("a\nb"), ok("a\nb")),
            (FieldType::Password, json!("pw"), ok("pw")),
            (FieldType::Text, json!(true), wrong("a string")),
            (FieldType::Email, json!(" Ada@Example.COM "), ok("ada@example.com")),
            (FieldType::Email, json!("not an address"), wrong("an email address")),
            (FieldType::Email, json!(5), wrong("an email address")),
            (FieldType::Phone, json!("(415) 555-0100"), ok("+14155550100")),
            (FieldType::Url, json!("https://example.com/x"), ok("https://example.com/x")),
            (FieldType::Url, json!("ftp://example.com/x"), wrong("an http(s) URL")),
            (FieldType::Date, json!("2024-02-29"), ok("2024-02-29")),
            (FieldType::Date, json!("2023-02-29"), wrong("a date (YYYY-MM-DD)")),
            (FieldType::BirthDate, json!("1815-12-10"), ok("1815-12-10")),
            (FieldType::AgeAttestation, json!(true), ok("true")),
            (FieldType::Boolean, json!(false), ok("false")),
            (FieldType::Boolean, json!("yes"), wrong("true or false")),
            (FieldType::Integer, json!(42), ok("42")),
            (FieldType::Integer, json!(4.5), wrong("a whole number")),
            (FieldType::File, json!("x"), Err(Refusal::FileField { field: "f".into() })),
        ];
        for (kind, v, expected) in cases {
            assert_eq!(value(kind, v.clone()), expected, "{kind:?} {v}");
        }
        let phone = value(FieldType::Phone, json!("12")).unwrap_err();
        assert!(
            matches!(phone, Refusal::WrongType { ref expected, .. } if expected.starts_with("a phone number")),
            "{phone:?}"
        );
    }

    #[test]
    fn a_value_at_its_limit_is_accepted_and_one_byte_over_is_not() {
        let p = charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).unwrap().policy;
        let body = |name: String| {
            json!({ "name": name, "email": "ada@example.com", "password": "pw", "age_attestation": true })
                .as_object()
                .unwrap()
                .clone()
        };
        let at_limit = check(&p, &ids(), "signup", &body("a".repeat(256)), &Map::new(), (2026, 1, 1)).unwrap();
        assert_eq!(at_limit.fields.iter().find(|f| f.field == "name").unwrap().value.len(), 256);
        assert_eq!(
            check(&p, &ids(), "signup", &body("a".repeat(257)), &Map::new(), (2026, 1, 1)).unwrap_err(),
            vec![Refusal::TooLarge { field: "name".into(), max_bytes: 256 }]
        );
        let debug = format!("{:?}", at_limit.fields[0]);
        assert!(
            debug.starts_with("Accepted { field: ") && debug.contains("category: ") && !debug.contains("aaaa"),
            "{debug}"
        );
    }
}

#[cfg(test)]
mod check_tests {
    use super::*;
    use serde_json::json;

    fn ids() -> Normaliser {
        Normaliser::new(Some("US"), true).unwrap()
    }

    fn tensoropera() -> Policy {
        charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).unwrap().policy
    }

    /// TensorOpera's policy with sign-up asking for a birth date instead of an attestation.
    fn with_birth_date() -> Policy {
        let text = charter_policy::TENSOROPERA.replace(
            "[collection_points.signup.fields.age_attestation]\ncategory = \"user.age_attestation\"\ntype = \"age_attestation\"",
            "[collection_points.signup.fields.birth_date]\ncategory = \"user.age_attestation\"\ntype = \"birth_date\"",
        );
        charter_policy::load("birth-date.toml", &text).unwrap().policy
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const TODAY: (i32, u32, u32) = (2026, 6, 15);

    fn signup(extra: Value) -> Map<String, Value> {
        let mut fields = obj(json!({ "name": "Ada", "email": "ada@example.com", "password": "pw" }));
        fields.extend(obj(extra));
        fields
    }

    #[test]
    fn the_minimum_age_is_enforced_from_a_birth_date_or_an_attestation() {
        let p = tensoropera();
        let none = Map::new();
        assert!(check(&p, &ids(), "signup", &signup(json!({ "age_attestation": true })), &none, TODAY).is_ok());
        let under = vec![Refusal::UnderMinimumAge { minimum_age: 18 }];
        let no = signup(json!({ "age_attestation": false, "shoe": 1 }));
        assert_eq!(check(&p, &ids(), "signup", &no, &none, TODAY).unwrap_err(), under, "under age: that alone");
        let born = with_birth_date();
        let at = |date: &str| check(&born, &ids(), "signup", &signup(json!({ "birth_date": date })), &none, TODAY);
        assert!(at("2008-06-15").is_ok(), "18 today");
        assert_eq!(at("2008-06-16").unwrap_err(), under, "18 tomorrow");
        assert!(at("1950-01-01").is_ok());
    }

    #[test]
    fn required_fields_must_be_sent_except_files() {
        let p = tensoropera();
        let none = Map::new();
        let missing =
            check(&p, &ids(), "signup", &obj(json!({ "name": "Ada", "age_attestation": true })), &none, TODAY);
        assert_eq!(
            missing.unwrap_err(),
            vec![
                Refusal::MissingRequired { field: "email".into() },
                Refusal::MissingRequired { field: "password".into() }
            ]
        );
        let application = obj(json!({ "name": "Ada", "email": "ada@example.com", "position": "Engineer" }));
        let accepted = check(&p, &ids(), "job_application", &application, &none, TODAY).unwrap();
        assert_eq!(accepted.fields.len(), 3, "the CV (a required file) goes to the upload endpoint");
        let optional = check(&p, &ids(), "signup", &signup(json!({ "age_attestation": true })), &none, TODAY).unwrap();
        assert!(optional.fields.iter().all(|f| f.field != "phone"), "an optional field may be left out");
    }

    #[test]
    fn consents_are_the_point_s_own_and_true_or_false() {
        let p = tensoropera();
        let fields = signup(json!({ "age_attestation": true }));
        let asked = obj(json!({ "newsletter": true, "direct_marketing": false }));
        let c = check(&p, &ids(), "signup", &fields, &asked, TODAY).unwrap();
        assert_eq!(c.consents, vec![("direct_marketing", false), ("newsletter", true)], "in the body's key order");
        let wrong = obj(json!({ "surveys": true, "newsletter": "yes" }));
        assert_eq!(
            check(&p, &ids(), "signup", &fields, &wrong, TODAY).unwrap_err(),
            vec![
                Refusal::ConsentNotBoolean { purpose: "newsletter".into() },
                Refusal::ConsentNotAsked { purpose: "surveys".into(), point: "signup".into() },
            ]
        );
    }

    #[test]
    fn accepted_fields_carry_their_declaration() {
        let p = tensoropera();
        let login = obj(json!({ "email": "ada@example.com", "password": "pw" }));
        let c = check(&p, &ids(), "login", &login, &Map::new(), TODAY).unwrap();
        let password = c.fields.iter().find(|f| f.field == "password").unwrap();
        assert_eq!((password.kind, password.verify), (FieldType::Password, true));
        let email = c.fields.iter().find(|f| f.field == "email").unwrap();
        assert_eq!((email.category, email.verify), ("user.contact.email", false));
    }
}
