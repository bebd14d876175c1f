//! What changed between two versions of a policy, and which changes are
//! material: those a person would want to be told about before they take
//! effect (P36) — more data, new uses, new recipients, longer retention, a
//! different lawful basis, fewer rights.
//!
//! Every difference is found by comparing the two policies value by value, so
//! no change can go unreported; the rules below only decide which are material.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::model::Policy;
use crate::units::{PolicyDuration, Retention};

/// What happened at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Present only in the new version.
    Added,
    /// Present only in the old version.
    Removed,
    /// Present in both with different values.
    Changed,
}

/// One difference between the versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Where, e.g. `purposes.analytics.categories`.
    pub path: Vec<String>,
    /// What happened.
    pub kind: ChangeKind,
    /// The old value (for removed and changed).
    pub old: Option<Value>,
    /// The new value (for added and changed).
    pub new: Option<Value>,
    /// Why the change is material, or `None` when it is not.
    pub material: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or_else(String::new, Value::to_string);
        let tag = if self.material.is_some() { "material" } else { "minor" };
        let path = self.path.join(".");
        match self.kind {
            ChangeKind::Added => write!(f, "[{tag}] + {path}: {}", show(&self.new))?,
            ChangeKind::Removed => write!(f, "[{tag}] - {path}: {}", show(&self.old))?,
            ChangeKind::Changed => write!(f, "[{tag}] ~ {path}: {} -> {}", show(&self.old), show(&self.new))?,
        }
        if let Some(why) = &self.material {
            write!(f, "\n    {why}")?;
        }
        Ok(())
    }
}

/// How two versions compare overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No difference.
    Unchanged,
    /// Differences, none material.
    Immaterial,
    /// At least one material difference.
    Material,
}

/// All differences between two versions.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyDiff {
    /// Each difference, in document order.
    pub changes: Vec<Change>,
}

impl PolicyDiff {
    /// The overall outcome.
    pub fn outcome(&self) -> Outcome {
        if self.changes.is_empty() {
            Outcome::Unchanged
        } else if self.changes.iter().any(|c| c.material.is_some()) {
            Outcome::Material
        } else {
            Outcome::Immaterial
        }
    }
}

impl PolicyDiff {
    /// The purposes whose scope grew: more data, a new use (direct marketing, automated
    /// decisions, sale or sharing), new recipients, or new points collecting for them.
    /// Consent given for one of them before the change does not cover what it now means.
    /// `new` is the version compared to, for the purposes of recipients that changed.
    pub fn widened_purposes(&self, new: &Policy) -> BTreeSet<String> {
        self.changes.iter().filter(|c| c.material.is_some()).flat_map(|c| widened_by(c, new)).collect()
    }
}

/// The purposes one material change widens.
fn widened_by(c: &Change, new: &Policy) -> Vec<String> {
    let p: Vec<&str> = c.path.iter().map(String::as_str).collect();
    let named = || text(&c.new).map(str::to_owned).into_iter().collect();
    let of_recipient = |r: &str| new.recipients.get(r).map(|r| r.purposes.clone()).unwrap_or_default();
    match p.as_slice() {
        ["purposes", k, "categories" | "direct_marketing" | "automated_decision" | "sale_or_sharing"] => {
            vec![(*k).to_owned()]
        }
        ["recipients", _, "purposes"] | ["collection_points", _, "purposes"] => named(),
        ["recipients", r]
        | ["recipients", r, "categories" | "own_direct_marketing" | "country" | "safeguard" | "role"] => {
            of_recipient(r)
        }
        _ => Vec::new(),
    }
}

/// Compares two policies.
pub fn diff(old: &Policy, new: &Policy) -> PolicyDiff {
    let old = normalise(serde_json::to_value(old).expect("policies serialise"));
    let new = normalise(serde_json::to_value(new).expect("policies serialise"));
    let mut changes = Vec::new();
    walk(&mut Vec::new(), Some(&old), Some(&new), &mut changes);
    for c in &mut changes {
        c.material = materiality(c);
    }
    PolicyDiff { changes }
}

/// Writes a single lawful basis as a one-element list so that `"contract"` and
/// `["contract"]` compare equal.
fn normalise(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("basis", Value::String(s)) => Value::Array(vec![Value::String(s)]),
                        (_, v) => normalise(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

fn walk(path: &mut Vec<String>, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    let (old, new) = (old.filter(|v| !v.is_null()), new.filter(|v| !v.is_null()));
    let change = |path: &Vec<String>, kind, old: Option<&Value>, new: Option<&Value>| Change {
        path: path.clone(),
        kind,
        old: old.cloned(),
        new: new.cloned(),
        material: None,
    };
    match (old, new) {
        (None, Some(n)) => out.push(change(path, ChangeKind::Added, None, Some(n))),
        (Some(o), None) => out.push(change(path, ChangeKind::Removed, Some(o), None)),
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            for (k, ov) in o {
                path.push(k.clone());
                walk(path, Some(ov), n.get(k), out);
                path.pop();
            }
            for (k, nv) in n.iter().filter(|(k, _)| !o.contains_key(*k)) {
                path.push(k.clone());
                walk(path, None, Some(nv), out);
                path.pop();
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) => {
            // Lists (of names, in every list the policy has) are sets: report each element
            // that came or went.
            for v in o.iter().filter(|v| !n.contains(v)) {
                out.push(change(path, ChangeKind::Removed, Some(v), None));
            }
            for v in n.iter().filter(|v| !o.contains(v)) {
                out.push(change(path, ChangeKind::Added, None, Some(v)));
            }
        }
        (Some(o), Some(n)) if o != n => out.push(change(path, ChangeKind::Changed, Some(o), Some(n))),
        _ => {}
    }
}

fn text(v: &Option<Value>) -> Option<&str> {
    v.as_ref().and_then(Value::as_str)
}

/// Whether a duration got longer; unparsable values count as a change that matters.
fn lengthened(c: &Change) -> bool {
    match (text(&c.old).map(PolicyDuration::parse), text(&c.new).map(PolicyDuration::parse)) {
        (Some(Ok(o)), Some(Ok(n))) => n.approx_hours() > o.approx_hours(),
        _ => true,
    }
}

fn turned_on(c: &Change) -> bool {
    c.new == Some(Value::Bool(true))
}

fn materiality(c: &Change) -> Option<String> {
    use ChangeKind::{Added, Changed, Removed};
    let p: Vec<&str> = c.path.iter().map(String::as_str).collect();
    let why = match (p.as_slice(), c.kind) {
        (["categories", k], Added) => format!("a new category of personal data is collected: `{k}`"),
        (["categories", k, "retention"], Changed) => {
            let longer = match (text(&c.old).map(Retention::parse), text(&c.new).map(Retention::parse)) {
                (Some(Ok(o)), Some(Ok(n))) => n.rank() > o.rank(),
                _ => true,
            };
            if !longer {
                return None;
            }
            format!("`{k}` is kept longer")
        }
        (["categories", k, "sensitive"], Changed) if turned_on(c) => format!("`{k}` is now treated as sensitive data"),
        (["purposes", k], Added) => format!("personal data is used for a new purpose: `{k}`"),
        (["purposes", k, "basis"], _) => format!("the lawful basis of `{k}` changed"),
        (["purposes", k, "categories"], Added) => format!("purpose `{k}` uses more personal data"),
        (["purposes", k, "legitimate_interest"], _) => format!("the legitimate interest behind `{k}` changed"),
        (["purposes", k, flag @ ("direct_marketing" | "automated_decision" | "sale_or_sharing")], Changed | Added)
            if turned_on(c) =>
        {
            format!("purpose `{k}` is now {}", flag.replace('_', " "))
        }
        (["recipients", k], Added) => format!("personal data is disclosed to a new recipient: `{k}`"),
        (["recipients", k, "categories" | "purposes"], Added) => format!("recipient `{k}` receives more"),
        (["recipients", k, field @ ("country" | "safeguard" | "role")], _) => {
            format!("the {field} of recipient `{k}` changed")
        }
        (["recipients", k, "own_direct_marketing"], Changed) if turned_on(c) => {
            format!("recipient `{k}` now uses data for its own marketing")
        }
        (["collection_points", k], Added) => format!("personal data is collected at a new point: `{k}`"),
        (["collection_points", k, "fields", f], Added) => format!("point `{k}` collects a new field `{f}`"),
        (["collection_points", k, "fields", f, "type"], Changed) if text(&c.old) == Some("password") => {
            format!("field `{f}` of point `{k}` is no longer kept only as a salted hash")
        }
        (["collection_points", k, "purposes"], Added) => format!("point `{k}` collects for more purposes"),
        (["collection_points", k, "kind"], Changed | Added | Removed) => {
            format!("what point `{k}` keeps changed (a profile keeps current details, a record point keeps each collection)")
        }
        (["collection_points", k, "updates"], Added) => format!("point `{k}` may change more of a person's details"),
        (["cookies", name], Added) => {
            let necessary =
                c.new.as_ref().and_then(|v| v.get("category")).and_then(Value::as_str) == Some("strictly_necessary");
            if necessary {
                return None;
            }
            format!("a new cookie is set: `{name}`")
        }
        (["rights", j, "rights"], Removed) => format!("a {} right is no longer offered", j.to_uppercase()),
        (["rights", j], Removed) => format!("{} rights are no longer stated", j.to_uppercase()),
        (["rights", j, "deadline" | "extension"], Changed) if lengthened(c) => {
            format!("{} requests take longer to answer", j.to_uppercase())
        }
        (["rights", _, "verification"], Changed) => "identity verification of requests changed".to_owned(),
        (["breach", "notify_subjects_within" | "notify_authority_within"], Changed) if lengthened(c) => {
            "breach notification takes longer".to_owned()
        }
        (["breach", "channels"], Removed) => "a breach notification channel was dropped".to_owned(),
        (["controller", "name"], Changed) => "the controller changed".to_owned(),
        (["controller", "minimum_age"], Changed) => {
            let lower = matches!((c.old.as_ref().and_then(Value::as_u64), c.new.as_ref().and_then(Value::as_u64)), (Some(o), Some(n)) if n < o);
            if !lower {
                return None;
            }
            "younger people may now use the services".to_owned()
        }
        (["legal_disclosures"], Added) => "personal data may be disclosed on new legal grounds".to_owned(),
        (["federated_learning", ..], _) => "what federated learning collects or sends changed".to_owned(),
        (["retention", "isolate_backups"], Changed) if !turned_on(c) => {
            "backups are no longer isolated from processing".to_owned()
        }
        (["changes", "notify"], Removed) => "material changes are announced through fewer channels".to_owned(),
        _ => return None,
    };
    Some(why)
}
