//! CCPA/CPRA disclosures (Cal. Civ. Code §1798.110, .115, .130): categories
//! collected, their sources, business purposes, recipients, and sale/sharing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{CcpaCategory, Policy, Source};

/// Everything a business must disclose about one CCPA category.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryDisclosure {
    /// The CCPA category.
    pub category: CcpaCategory,
    /// The policy's categories inside it, by key.
    pub includes: Vec<String>,
    /// Where it comes from.
    pub sources: Vec<String>,
    /// Business or commercial purposes it is used for.
    pub business_purposes: Vec<String>,
    /// Recipients it is disclosed to, with their role.
    pub disclosed_to: Vec<String>,
    /// Whether it is sold or shared (CPRA sense).
    pub sold_or_shared: bool,
}

/// The CCPA disclosures of a policy.
#[derive(Debug, Clone, Serialize)]
pub struct Disclosures {
    /// The period a request to know covers.
    pub lookback: Option<String>,
    /// Per CCPA category.
    pub categories: Vec<CategoryDisclosure>,
    /// Purposes that count as sale or sharing.
    pub sale_or_sharing_purposes: Vec<String>,
    /// Policy categories that have no CCPA category set.
    pub unclassified: Vec<String>,
}

fn source_label(s: Source) -> &'static str {
    match s {
        Source::Provided => "Directly from you",
        Source::Automatic => "Automatically, from your device and use of our services",
        Source::ThirdParty => "From third parties",
    }
}

fn push_unique(v: &mut Vec<String>, item: String) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// Computes the disclosures.
pub fn disclosures(p: &Policy) -> Disclosures {
    let mut by: BTreeMap<CcpaCategory, CategoryDisclosure> = BTreeMap::new();
    let mut unclassified = Vec::new();
    for (key, cat) in &p.categories {
        let Some(cc) = cat.ccpa else {
            unclassified.push(key.clone());
            continue;
        };
        let entry = by.entry(cc).or_insert_with(|| CategoryDisclosure {
            category: cc,
            includes: Vec::new(),
            sources: Vec::new(),
            business_purposes: Vec::new(),
            disclosed_to: Vec::new(),
            sold_or_shared: false,
        });
        entry.includes.push(key.clone());
        let source = if cat.sources.is_empty() {
            source_label(cat.source).to_owned()
        } else {
            format!("{} ({})", source_label(cat.source), cat.sources.join(", "))
        };
        push_unique(&mut entry.sources, source);
        for pu in p.purposes.values().filter(|pu| pu.categories.contains(key)) {
            push_unique(
                &mut entry.business_purposes,
                pu.business_purpose.clone().unwrap_or_else(|| pu.description.clone()),
            );
            entry.sold_or_shared |= pu.sale_or_sharing;
        }
        for r in p.recipients.values().filter(|r| r.categories.contains(key)) {
            push_unique(&mut entry.disclosed_to, format!("{} ({})", r.name, r.role.label()));
        }
    }
    Disclosures {
        lookback: p.rights.ccpa.as_ref().map(|c| c.lookback.clone()),
        categories: by.into_values().collect(),
        sale_or_sharing_purposes: p
            .purposes
            .iter()
            .filter(|(_, pu)| pu.sale_or_sharing)
            .map(|(k, _)| k.clone())
            .collect(),
        unclassified,
    }
}

/// The disclosures as pretty JSON.
pub fn json(p: &Policy) -> String {
    serde_json::to_string_pretty(&disclosures(p)).expect("disclosures always serialise")
}

fn label(c: CcpaCategory) -> String {
    let raw = serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let mut s = raw.replace('_', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

/// The disclosures as Markdown.
pub fn markdown(p: &Policy) -> String {
    let d = disclosures(p);
    let mut out = format!("# CCPA/CPRA disclosures of {}\n\n", p.controller.name);
    if let Some(l) = &d.lookback {
        let words = crate::units::PolicyDuration::parse(l).map_or_else(|_| l.clone(), |d| d.to_string());
        let _ = writeln!(out, "Covering the past {words}.\n");
    }
    out.push_str("| Category | Includes | Sources | Business purposes | Disclosed to | Sold or shared |\n| --- | --- | --- | --- | --- | --- |\n");
    for c in &d.categories {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            label(c.category),
            c.includes.join(", "),
            c.sources.join("; "),
            c.business_purposes.join("; ").replace('|', "\\|"),
            if c.disclosed_to.is_empty() { "Nobody".to_owned() } else { c.disclosed_to.join("; ") },
            if c.sold_or_shared { "Yes" } else { "No" }
        );
    }
    out.push_str("\n## Sale or sharing\n\n");
    if d.sale_or_sharing_purposes.is_empty() {
        out.push_str("We do not sell or share personal information.\n");
    } else {
        let _ = writeln!(
            out,
            "We do not knowingly sell personal information. These purposes may count as \"sale\" or \"sharing\" under California law, and you may opt out of them: {}.",
            d.sale_or_sharing_purposes.join(", ")
        );
    }
    out
}
