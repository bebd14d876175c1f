//! Policy diffs: what counts as material.

use charter_policy::diff::{diff, Outcome};
use charter_policy::load;

const MINIMAL: &str = include_str!("fixtures/minimal.toml");

fn changed(from: &str, to: &str) -> charter_policy::diff::PolicyDiff {
    assert!(MINIMAL.contains(from), "fixture lacks {from}");
    let old = load("old.toml", MINIMAL).unwrap().policy;
    let new = load("new.toml", &MINIMAL.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}")).policy;
    diff(&old, &new)
}

#[test]
fn identical_policies_are_unchanged() {
    let p = load("p.toml", MINIMAL).unwrap().policy;
    assert_eq!(diff(&p, &p).outcome(), Outcome::Unchanged);
    // A single basis written as a list is the same basis.
    let d = changed("basis = \"contract\"", "basis = [\"contract\"]");
    assert_eq!(d.outcome(), Outcome::Unchanged, "{:?}", d.changes);
}

#[test]
fn materiality_table() {
    let cases: &[(&str, &str, &str, Outcome)] = &[
        ("version bump", "version = \"1.0\"", "version = \"1.1\"", Outcome::Immaterial),
        ("reworded description", "description = \"Your email address\"", "description = \"Email address\"", Outcome::Immaterial),
        ("shorter retention", "retention = \"90d\"", "retention = \"30d\"", Outcome::Immaterial),
        ("longer retention", "retention = \"90d\"", "retention = \"1y\"", Outcome::Material),
        ("fixed to account-bound retention", "retention = \"90d\"", "retention = \"account\"", Outcome::Material),
        (
            "new category",
            "[purposes.registration]",
            "[categories.\"user.name\"]\ndescription = \"Name\"\nsource = \"provided\"\nidentifies = true\nretention = \"1y\"\non_expiry = \"delete\"\n\n[purposes.registration]",
            Outcome::Material,
        ),
        (
            "new purpose",
            "[collection_points.signup]",
            "[purposes.profiling]\ndescription = \"Profiles\"\nbasis = \"legitimate_interests\"\nlegitimate_interest = \"x\"\ncategories = [\"user.device.ip_address\"]\n\n[collection_points.signup]",
            Outcome::Material,
        ),
        ("changed lawful basis", "basis = \"contract\"", "basis = \"legitimate_interests\"\nlegitimate_interest = \"Running the service\"", Outcome::Material),
        ("purpose uses more data", "categories = [\"user.device.ip_address\"]\n", "categories = [\"user.device.ip_address\", \"user.contact.email\"]\n", Outcome::Material),
        (
            "new processor",
            "[cookies.session]",
            "[recipients.mailer]\nname = \"Mailer\"\nrole = \"processor\"\nservice = \"Sends email\"\ncategories = [\"user.contact.email\"]\npurposes = [\"newsletter\"]\n\n[cookies.session]",
            Outcome::Material,
        ),
        ("recipient moves abroad", "country = \"DE\"", "country = \"US\"\nsafeguard = \"art46_sccs\"", Outcome::Material),
        ("fewer rights", "rights = [\"access\", \"erasure\", \"withdraw_consent\"]", "rights = [\"access\", \"withdraw_consent\"]", Outcome::Material),
        ("more rights", "rights = [\"know\", \"delete\", \"opt_out_sale_sharing\"]", "rights = [\"know\", \"delete\", \"opt_out_sale_sharing\", \"correct\"]", Outcome::Immaterial),
        ("slower breach notice", "notify_subjects_within = \"48h\"", "notify_subjects_within = \"3d\"", Outcome::Material),
        ("faster breach notice", "notify_subjects_within = \"48h\"", "notify_subjects_within = \"24h\"", Outcome::Immaterial),
        ("a profile point turned into a record point", "kind = \"profile\"", "kind = \"record\"", Outcome::Material),
        ("a profile point that may update a field", "kind = \"profile\"", "kind = \"profile\"\nupdates = [\"email\"]", Outcome::Material),
        ("lower minimum age", "minimum_age = 16", "minimum_age = 13", Outcome::Material),
        ("higher minimum age", "minimum_age = 16", "minimum_age = 18", Outcome::Immaterial),
        ("turned into sale", "direct_marketing = true", "direct_marketing = true\nsale_or_sharing = true", Outcome::Material),
        ("no longer sale", "sale_or_sharing = true", "sale_or_sharing = false", Outcome::Immaterial),
        ("new contact address", "privacy_email = \"privacy@example.com\"", "privacy_email = \"dpo@example.com\"", Outcome::Immaterial),
    ];
    let mut wrong = Vec::new();
    for (what, from, to, expected) in cases {
        let d = changed(from, to);
        if d.outcome() != *expected {
            wrong.push(format!("{what}: expected {expected:?}, got {:?}: {:#?}", d.outcome(), d.changes));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn material_changes_say_why() {
    let d = changed("retention = \"90d\"", "retention = \"2y\"");
    let c = d.changes.iter().find(|c| c.material.is_some()).unwrap();
    assert_eq!(c.path, vec!["categories", "user.device.ip_address", "retention"]);
    assert!(c.to_string().contains("kept longer"), "{c}");
}

#[test]
fn a_password_no_longer_hashed_is_material() {
    let hashed = MINIMAL.replacen("type = \"email\"", "type = \"password\"", 1);
    let (with_hash, plain) = (load("a.toml", &hashed).unwrap().policy, load("b.toml", MINIMAL).unwrap().policy);
    let d = diff(&with_hash, &plain);
    assert_eq!(d.outcome(), Outcome::Material, "{:?}", d.changes);
    let c = d.changes.iter().find(|c| c.material.is_some()).unwrap();
    assert!(c.to_string().contains("no longer kept only as a salted hash"), "{c}");
    // Starting to hash is not.
    assert_eq!(diff(&plain, &with_hash).outcome(), Outcome::Immaterial);
}

#[test]
fn widened_purposes_are_those_whose_scope_grew() {
    let widened = |from: &str, to: &str| {
        let new = load("new.toml", &MINIMAL.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}")).policy;
        changed(from, to).widened_purposes(&new).into_iter().collect::<Vec<_>>()
    };
    let newsletter_categories = "categories = [\"user.contact.email\"]\ndirect_marketing = true";
    assert_eq!(
        widened(
            newsletter_categories,
            "categories = [\"user.contact.email\", \"user.device.ip_address\"]\ndirect_marketing = true"
        ),
        ["newsletter"],
        "more data"
    );
    assert_eq!(widened("direct_marketing = true", "direct_marketing = true\nsale_or_sharing = true"), ["newsletter"]);
    assert_eq!(
        widened("purposes = [\"registration\", \"security\"]", "purposes = [\"registration\", \"security\", \"ads\"]"),
        ["ads"],
        "a recipient now receives for a purpose"
    );
    assert_eq!(
        widened("country = \"DE\"", "country = \"US\"\nsafeguard = \"art46_sccs\""),
        ["registration", "security"]
    );
    assert_eq!(
        widened(
            "purposes = [\"registration\", \"newsletter\"]",
            "purposes = [\"registration\", \"newsletter\", \"ads\"]"
        ),
        ["ads"]
    );
    // Narrowing, rewording and immaterial changes widen nothing.
    assert!(widened("direct_marketing = true", "direct_marketing = false").is_empty());
    assert!(widened("version = \"1.0\"", "version = \"1.1\"").is_empty());
    assert!(
        widened("retention = \"90d\"", "retention = \"1y\"").is_empty(),
        "longer retention is material but no purpose grew"
    );
}
