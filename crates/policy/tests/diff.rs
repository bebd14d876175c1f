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

/// The material reasons of the diff between two edits of the fixture.
fn reasons(old: &str, new: &str) -> Vec<String> {
    let old = load("old.toml", old).unwrap_or_else(|e| panic!("{e}")).policy;
    let new = load("new.toml", new).unwrap_or_else(|e| panic!("{e}")).policy;
    diff(&old, &new).changes.into_iter().filter_map(|c| c.material).collect()
}

/// The fixture with `from` replaced by `to` (once; `from` must be there).
fn edit(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "fixture lacks {from}");
    MINIMAL.replacen(from, to, 1)
}

#[test]
fn each_material_rule_names_its_change() {
    let ccpa = "[rights.ccpa]\nrights = [\"know\", \"delete\", \"opt_out_sale_sharing\"]\ndeadline = \"45d\"\nextension = \"45d\"\nverification = true\nlookback = \"12mo\"\n";
    let fl = |sent: bool| {
        format!("[federated_learning]\ndata_stays_with_owner = true\nupdates_encrypted = true\nupdates_anonymised = {sent}\npersonal_data_gathered = false\n\n[breach]")
    };
    let new_point = "[collection_points.contact]\ndescription = \"Contact form\"\nkind = \"record\"\npurposes = [\"registration\"]\n\n[collection_points.contact.fields.email]\ncategory = \"user.contact.email\"\ntype = \"email\"\nrequired = true\nmax_bytes = 254\n\n[pages.preferences]";
    let new_field = "max_bytes = 254\n\n[collection_points.signup.fields.nickname]\ncategory = \"user.contact.email\"\ntype = \"text\"\nmax_bytes = 45\n\n[pages.preferences]";
    let cookie = |category: &str| {
        format!("[cookies.tracker]\nprovider = \"first_party\"\ncategory = \"{category}\"\npurpose = \"Counts visits\"\nlifetime = \"1y\"\n\n[cookies.session]")
    };
    let cases: Vec<(&str, String, String, Option<&str>)> = vec![
        (
            "a lawful basis",
            MINIMAL.into(),
            edit("basis = \"legitimate_interests\"", "basis = [\"legitimate_interests\", \"legal_obligation\"]"),
            Some("the lawful basis of `security` changed"),
        ),
        (
            "a legitimate interest",
            MINIMAL.into(),
            edit("Keeping the service safe from abuse", "Keeping the service safe"),
            Some("the legitimate interest behind `security` changed"),
        ),
        (
            "a new point",
            MINIMAL.into(),
            edit("[pages.preferences]", new_point),
            Some("personal data is collected at a new point: `contact`"),
        ),
        (
            "a new field",
            MINIMAL.into(),
            edit("max_bytes = 254\n\n[pages.preferences]", new_field),
            Some("point `signup` collects a new field `nickname`"),
        ),
        (
            "a new analytics cookie",
            MINIMAL.into(),
            edit("[cookies.session]", &cookie("analytics")),
            Some("a new cookie is set: `tracker`"),
        ),
        ("a new necessary cookie", MINIMAL.into(), edit("[cookies.session]", &cookie("strictly_necessary")), None),
        ("CCPA rights dropped", MINIMAL.into(), edit(ccpa, ""), Some("CCPA rights are no longer stated")),
        (
            "verification dropped",
            MINIMAL.into(),
            edit("extension = \"2mo\"\nverification = true", "extension = \"2mo\"\nverification = false"),
            Some("identity verification of requests changed"),
        ),
        ("a faster answer", MINIMAL.into(), edit("deadline = \"45d\"", "deadline = \"30d\""), None),
        (
            "a slower answer",
            edit("deadline = \"45d\"", "deadline = \"30d\""),
            MINIMAL.into(),
            Some("CCPA requests take longer to answer"),
        ),
        (
            "the same breach time spelt otherwise",
            MINIMAL.into(),
            edit("notify_subjects_within = \"48h\"", "notify_subjects_within = \"2d\""),
            None,
        ),
        (
            "a breach channel dropped",
            edit("channels = [\"email\"]", "channels = [\"email\", \"phone\"]"),
            MINIMAL.into(),
            Some("a breach notification channel was dropped"),
        ),
        (
            "a new controller",
            MINIMAL.into(),
            edit("name = \"Example Ltd\"", "name = \"Other Ltd\""),
            Some("the controller changed"),
        ),
        (
            "new legal grounds",
            edit("version = \"1.0\"", "version = \"1.0\"\nlegal_disclosures = [\"legal_process\"]"),
            edit("version = \"1.0\"", "version = \"1.0\"\nlegal_disclosures = [\"legal_process\", \"protect_rights\"]"),
            Some("personal data may be disclosed on new legal grounds"),
        ),
        (
            "federated learning",
            edit("[breach]", &fl(true)),
            edit("[breach]", &fl(false)),
            Some("what federated learning collects or sends changed"),
        ),
        (
            "backups no longer isolated",
            edit("[breach]", "[retention]\nisolate_backups = true\n\n[breach]"),
            edit("[breach]", "[retention]\nisolate_backups = false\n\n[breach]"),
            Some("backups are no longer isolated from processing"),
        ),
        (
            "backups isolated",
            edit("[breach]", "[retention]\nisolate_backups = false\n\n[breach]"),
            edit("[breach]", "[retention]\nisolate_backups = true\n\n[breach]"),
            None,
        ),
        (
            "fewer announcement channels",
            edit("[breach]", "[changes]\nnotify = [\"email\", \"home_page\"]\n\n[breach]"),
            edit("[breach]", "[changes]\nnotify = [\"email\"]\n\n[breach]"),
            Some("material changes are announced through fewer channels"),
        ),
        (
            "turned sensitive",
            edit("on_expiry = \"delete\"\nccpa", "on_expiry = \"delete\"\nsensitive = false\nccpa"),
            edit("on_expiry = \"delete\"\nccpa", "on_expiry = \"delete\"\nsensitive = true\nccpa"),
            Some("`user.contact.email` is now treated as sensitive data"),
        ),
        (
            "no longer sensitive",
            edit("on_expiry = \"delete\"\nccpa", "on_expiry = \"delete\"\nsensitive = true\nccpa"),
            edit("on_expiry = \"delete\"\nccpa", "on_expiry = \"delete\"\nsensitive = false\nccpa"),
            None,
        ),
        (
            "own marketing",
            edit("country = \"DE\"", "country = \"DE\"\nown_direct_marketing = false"),
            edit("country = \"DE\"", "country = \"DE\"\nown_direct_marketing = true"),
            Some("recipient `hosting` now uses data for its own marketing"),
        ),
        (
            "no more own marketing",
            edit("country = \"DE\"", "country = \"DE\"\nown_direct_marketing = true"),
            edit("country = \"DE\"", "country = \"DE\"\nown_direct_marketing = false"),
            None,
        ),
        (
            "the same retention spelt otherwise",
            MINIMAL.into(),
            edit("retention = \"90d\"", "retention = \"2160h\""),
            None,
        ),
        ("a removed purpose", MINIMAL.into(), MINIMAL.into(), None),
    ];
    let mut wrong = Vec::new();
    for (what, old, new, expected) in &cases {
        let got = reasons(old, new);
        let ok = match expected {
            Some(r) => got.iter().any(|g| g == r),
            None => got.is_empty(),
        };
        if !ok {
            wrong.push(format!("{what}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn removals_are_reported_as_removed() {
    let ccpa = "[rights.ccpa]\nrights = [\"know\", \"delete\", \"opt_out_sale_sharing\"]\ndeadline = \"45d\"\nextension = \"45d\"\nverification = true\nlookback = \"12mo\"\n";
    let d = changed(ccpa, "");
    assert_eq!(d.changes.len(), 1, "{:?}", d.changes);
    let c = &d.changes[0];
    assert_eq!(
        (c.path.join("."), c.kind, c.new.is_none()),
        ("rights.ccpa".to_owned(), charter_policy::diff::ChangeKind::Removed, true)
    );
    assert!(c.old.as_ref().is_some_and(|o| o["deadline"] == "45d"));
}
