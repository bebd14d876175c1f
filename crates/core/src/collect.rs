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
            Self::FileField { field } => format!("field `{field}` is a file: send it to the upload endpoint"),
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
