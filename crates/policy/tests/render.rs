//! The notice, the record of processing and the CCPA disclosures, rendered from the TensorOpera policy.

use charter_policy::render::{disclosures, notice, ropa};
use charter_policy::{load, Policy, TENSOROPERA, TENSOROPERA_NAME};

fn tensoropera() -> Policy {
    load(TENSOROPERA_NAME, TENSOROPERA).expect("embedded policy is valid").policy
}

/// The seed policy's sections, as the notice must cover them.
const SEED_SECTIONS: &[&str] = &[
    "## What we collect and how",
    "### Federated learning and your training data",
    "## Information collected automatically",
    "## Cookies and similar technologies",
    "## Third-party cookies",
    "## Information we receive from third parties",
    "## How we use your information",
    "## Marketing and unsubscribing",
    "## How we share information",
    "## Legal disclosures",
    "## For EU/EEA users",
    "### Controller and processor",
    "### Purposes and lawful bases",
    "### Your rights",
    "## For California consumers",
    "## International transfers",
    "## Children's privacy",
    "## Data quality",
    "## Data retention",
    "## Compliance monitoring",
    "## Security",
    "## Breach notification",
    "## Reporting a security incident",
    "## Changes to this policy",
    "## Contact us",
];

#[test]
fn notice_has_every_section_in_order() {
    let md = notice::markdown(&tensoropera());
    let mut from = 0;
    for section in SEED_SECTIONS {
        let found =
            md[from..].find(&format!("{section}\n")).unwrap_or_else(|| panic!("missing or out of order: {section}"));
        from += found + section.len();
    }
}

#[test]
fn notice_states_the_seed_facts() {
    let p = tensoropera();
    let md = notice::markdown(&p);
    for fact in [
        "**Last Updated: 2024-03-29**",                    // P36
        "440 N Wolfe Rd",                                  // P37
        "privacy@tensoropera.com",                         // P37
        "security@tensoropera.com",                        // P35
        "no later than 48 hours",                          // P34
        "by email and phone",                              // P34
        "not intended for anyone under 18",                // P29
        "without verified parental consent, we delete it", // P29
        "unsubscribe link",                                // P16
        "Microsoft Clarity",                               // P17
        "YouTube",                                         // P17
        "Google Cloud Platform",                           // P17
        "Cloudflare",                                      // P17
        "past 12 months",                                  // P23
        "direct our service providers to delete",          // P24
        "\"sale\" or \"sharing\"",                         // P25
        "We will not deny you goods or services",          // P26
        "Shine the Light",                                 // P27
        "Article 46",                                      // P28
        "isolated from any further processing",            // P31
        "your training data stays with you",               // P07
        "does not identify you on its own",                // P10
        "structured, commonly used, machine-readable",     // P22
        "Performance of a contract",                       // P21
        "we are the **controller**",                       // P20
        "we are a **processor**",                          // P20
    ] {
        assert!(md.contains(fact), "notice lacks: {fact}");
    }
    // Every purpose and recipient of the policy appears.
    for pu in p.purposes.values() {
        assert!(md.contains(&pu.description.replace('_', "\\_")), "purpose missing: {}", pu.description);
    }
    for r in p.recipients.values() {
        assert!(md.contains(&r.name), "recipient missing: {}", r.name);
    }
}

#[test]
fn html_is_a_standalone_page_that_escapes_policy_text() {
    let mut p = tensoropera();
    p.controller.name = "Evil <script>alert(1)</script> Inc".into();
    let html = notice::html(&p);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<h2>For EU/EEA users</h2>"));
    assert!(html.contains("<table>"));
    assert!(!html.contains("<script>"), "policy text must not become markup");
    assert!(html.contains("&lt;script&gt;"));
}

#[test]
fn ropa_has_one_row_per_purpose_with_article_30_columns() {
    let p = tensoropera();
    let rows = ropa::rows(&p);
    assert_eq!(rows.len(), p.purposes.len());
    let analytics = rows.iter().find(|r| r.purpose == "analytics").expect("analytics row");
    assert_eq!(analytics.lawful_basis, vec!["Legitimate interests"]);
    assert!(analytics.legitimate_interest.is_some());
    let reg = rows.iter().find(|r| r.purpose == "registration").unwrap();
    assert!(reg.data_categories.contains(&"user.contact.email".to_owned()));
    assert!(reg.recipients.iter().any(|r| r.starts_with("Google Cloud Platform")));
    assert!(reg.transfers.iter().any(|t| t.contains("US") && t.contains("Art. 46")));
    assert!(!reg.retention.is_empty() && !reg.security_measures.is_empty());

    let csv = ropa::csv(&p);
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), p.purposes.len() + 1, "header plus one line per purpose");
    assert!(lines[0].starts_with("controller,controller_contact,purpose,description,lawful_basis"));
    let json: serde_json::Value = serde_json::from_str(&ropa::json(&p)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), p.purposes.len());
}

#[test]
fn ccpa_disclosures_cover_sources_purposes_recipients_and_sale() {
    let p = tensoropera();
    let d = disclosures::disclosures(&p);
    assert!(d.unclassified.is_empty() || d.unclassified.iter().all(|k| p.categories.contains_key(k)));
    let ids = d
        .categories
        .iter()
        .find(|c| c.category == charter_policy::model::CcpaCategory::Identifiers)
        .expect("identifiers are collected");
    assert!(ids.includes.contains(&"user.contact.email".to_owned()));
    assert!(!ids.sources.is_empty() && !ids.business_purposes.is_empty() && !ids.disclosed_to.is_empty());
    assert!(d.sale_or_sharing_purposes.iter().any(|k| p.purposes[k].sale_or_sharing));
    assert_eq!(d.lookback.as_deref(), Some("12mo"));
    let md = disclosures::markdown(&p);
    assert!(md.contains("| Identifiers |") && md.contains("## Sale or sharing"));
}

#[test]
fn json_schema_describes_the_format() {
    let schema = charter_policy::json_schema();
    let props = &schema["properties"];
    for key in
        ["controller", "categories", "purposes", "collection_points", "recipients", "cookies", "rights", "breach"]
    {
        assert!(props.get(key).is_some(), "schema lacks {key}");
    }
    let text = schema.to_string();
    assert!(text.contains("legitimate_interests") && text.contains("art46_sccs"));
}
