//! The GDPR Art. 30(1) record of processing activities: one row per purpose.

use serde::Serialize;

use crate::model::{LawfulBasis, Policy};
use crate::units::Retention;

/// One processing activity as Art. 30(1) describes it.
#[derive(Debug, Clone, Serialize)]
pub struct RopaRow {
    /// Art. 30(1)(a): the controller's name.
    pub controller: String,
    /// Art. 30(1)(a): the controller's contact.
    pub controller_contact: String,
    /// The purpose's key in the policy.
    pub purpose: String,
    /// Art. 30(1)(b): what the processing is for.
    pub description: String,
    /// The lawful bases (Art. 6).
    pub lawful_basis: Vec<String>,
    /// The legitimate interest, where that is a basis.
    pub legitimate_interest: Option<String>,
    /// Art. 30(1)(c): categories of data subjects, from the points that collect for this purpose.
    pub data_subjects: Vec<String>,
    /// Art. 30(1)(c): categories of personal data.
    pub data_categories: Vec<String>,
    /// Art. 30(1)(d): recipients.
    pub recipients: Vec<String>,
    /// Art. 30(1)(e): transfers to third countries and their safeguards.
    pub transfers: Vec<String>,
    /// Art. 30(1)(f): time limits for erasure, per category.
    pub retention: Vec<String>,
    /// Art. 30(1)(g): technical and organisational security measures.
    pub security_measures: Vec<String>,
}

/// The record, one row per purpose, in policy order.
pub fn rows(p: &Policy) -> Vec<RopaRow> {
    p.purposes
        .iter()
        .map(|(key, pu)| {
            let recipients: Vec<_> = p.recipients.values().filter(|r| r.purposes.contains(key)).collect();
            RopaRow {
                controller: p.controller.name.clone(),
                controller_contact: format!("{}; {}", p.controller.address, p.controller.privacy_email),
                purpose: key.clone(),
                description: pu.description.clone(),
                lawful_basis: pu.basis.as_slice().iter().map(|b| b.label().to_owned()).collect(),
                legitimate_interest: pu
                    .basis
                    .contains(LawfulBasis::LegitimateInterests)
                    .then(|| pu.legitimate_interest.clone())
                    .flatten(),
                data_subjects: p
                    .collection_points
                    .values()
                    .filter(|c| c.purposes.contains(key))
                    .map(|c| c.description.clone())
                    .collect(),
                data_categories: pu.categories.clone(),
                recipients: recipients.iter().map(|r| format!("{} ({})", r.name, r.role.label())).collect(),
                transfers: recipients
                    .iter()
                    .filter_map(|r| r.country.as_ref().map(|c| format!("{}: {c}, {}", r.name, r.safeguard.label())))
                    .collect(),
                retention: pu
                    .categories
                    .iter()
                    .filter_map(|c| {
                        let r = p.categories.get(c)?.retention.as_deref()?;
                        Some(format!("{c}: {}", Retention::parse(r).map_or_else(|_| r.to_owned(), |r| r.to_string())))
                    })
                    .collect(),
                security_measures: p.security.measures.clone(),
            }
        })
        .collect()
}

const HEADER: &[&str] = &[
    "controller",
    "controller_contact",
    "purpose",
    "description",
    "lawful_basis",
    "legitimate_interest",
    "data_subjects",
    "data_categories",
    "recipients",
    "transfers",
    "retention",
    "security_measures",
];

/// Quotes one CSV field (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The record as CSV: a header, then one row per purpose; lists are joined with "; ".
pub fn csv(p: &Policy) -> String {
    let mut out = HEADER.join(",");
    out.push_str("\r\n");
    for r in rows(p) {
        let cells = [
            r.controller,
            r.controller_contact,
            r.purpose,
            r.description,
            r.lawful_basis.join("; "),
            r.legitimate_interest.unwrap_or_default(),
            r.data_subjects.join("; "),
            r.data_categories.join("; "),
            r.recipients.join("; "),
            r.transfers.join("; "),
            r.retention.join("; "),
            r.security_measures.join("; "),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The record as pretty JSON: an array of rows.
pub fn json(p: &Policy) -> String {
    serde_json::to_string_pretty(&rows(p)).expect("rows always serialise")
}
