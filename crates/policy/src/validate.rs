//! The rules a policy must satisfy beyond its shape. Each rule reports through
//! the [`Reporter`] and carries on, so one run lists every problem.

use std::collections::HashSet;

use crate::load::{Path, Reporter};
use crate::model::{Bases, CollectionPoint, Deletion, ExpiryAction, FieldType, LawfulBasis, PointKind, Policy};
use crate::units::{check_date, check_email, check_url, PolicyDuration, Retention};

/// Countries in the EEA, plus those with an EU adequacy decision in force:
/// a transfer to one of them needs no Art. 46 safeguard.
const NO_SAFEGUARD_NEEDED: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT",
    "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", // EEA
    "AD", "AR", "CA", "FO", "GG", "IL", "IM", "JP", "JE", "NZ", "KR", "CH", "GB", "UY", // adequacy
];

pub(crate) fn check(p: &Policy, rep: &mut Reporter<'_>) {
    let root = Path::root();
    if p.version.trim().is_empty() {
        rep.at(&root.key("version"), "`version` is empty", "give this policy a version label, e.g. \"2024.03.29\"");
    }
    if let Err(e) = check_date(&p.last_updated) {
        rep.at(&root.key("last_updated"), e, "");
    }
    controller(p, rep);
    categories(p, rep);
    purposes(p, rep);
    collection_points(p, rep);
    pages(p, rep);
    recipients(p, rep);
    cookies(p, rep);
    rights(p, rep);
    requests(p, rep);
    breach(p, rep);
    extras(p, rep);
}

fn email(rep: &mut Reporter<'_>, path: Path, value: &str) {
    if let Err(e) = check_email(value) {
        rep.at(&path, e, "");
    }
}

fn url(rep: &mut Reporter<'_>, path: Path, value: &str) {
    if let Err(e) = check_url(value) {
        rep.at(&path, e, "");
    }
}

fn duration(rep: &mut Reporter<'_>, path: Path, value: &str) -> Option<PolicyDuration> {
    match PolicyDuration::parse(value) {
        Ok(d) => Some(d),
        Err(e) => {
            rep.at(&path, e.0, "");
            None
        }
    }
}

/// Refuses a duration longer than the law allows.
fn at_most(rep: &mut Reporter<'_>, path: Path, value: &str, limit: &str, law: &str) {
    let Some(d) = duration(rep, path.clone(), value) else { return };
    let max = PolicyDuration::parse(limit).expect("limits in the code parse");
    if d.approx_hours() > max.approx_hours() {
        rep.at(&path, format!("`{value}` is longer than {law} allows ({max})"), format!("use \"{limit}\" or less"));
    }
}

fn controller(p: &Policy, rep: &mut Reporter<'_>) {
    let c = Path::root().key("controller");
    email(rep, c.key("privacy_email"), &p.controller.privacy_email);
    email(rep, c.key("security_email"), &p.controller.security_email);
    url(rep, c.key("website"), &p.controller.website);
    if p.controller.minimum_age == 0 {
        rep.at(
            &c.key("minimum_age"),
            "`minimum_age` is 0",
            "state the youngest age allowed to use the services, e.g. 18",
        );
    }
    for (name, contact) in [("dpo", &p.controller.dpo), ("eu_representative", &p.controller.eu_representative)] {
        if let Some(contact) = contact {
            email(rep, c.key(name).key("email"), &contact.email);
        }
    }
}

fn is_category_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|seg| {
            !seg.is_empty() && seg.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        })
}

fn categories(p: &Policy, rep: &mut Reporter<'_>) {
    for (key, cat) in &p.categories {
        let path = Path::root().key("categories").key(key);
        if !is_category_key(key) {
            rep.at(
                &path,
                format!("category key `{key}` is not a dotted lowercase key"),
                "use fideslang-style keys such as \"user.contact.email\"",
            );
        }
        match &cat.retention {
            None => rep.at(
                &path,
                format!("category `{key}` has no retention"),
                "add `retention = \"2y\"` (or \"account+30d\") and `on_expiry = \"delete\"` or \"anonymise\"",
            ),
            Some(r) => {
                if let Err(e) = Retention::parse(r) {
                    rep.at(&path.key("retention"), e.0, "");
                }
                if cat.on_expiry.is_none() {
                    rep.at(
                        &path,
                        format!("category `{key}` does not say what happens when its retention ends"),
                        "add `on_expiry = \"delete\"` or `on_expiry = \"anonymise\"`",
                    );
                }
            }
        }
        anonymisable(key, cat, rep, &path);
    }
}

/// An anonymised category must not identify anyone on its own and must say how it is
/// generalised; a category that is deleted needs no generalisation.
fn anonymisable(key: &str, cat: &crate::model::Category, rep: &mut Reporter<'_>, path: &Path) {
    let anonymised = cat.on_expiry == Some(ExpiryAction::Anonymise);
    if anonymised && cat.identifies {
        rep.at(
            &path.key("on_expiry"),
            format!("category `{key}` identifies a person, so it cannot be anonymised: direct identifiers are dropped"),
            "write `on_expiry = \"delete\"`",
        );
    }
    if anonymised && cat.generalise.is_none() {
        rep.at(
            path,
            format!("category `{key}` is anonymised but does not say how"),
            "add `generalise = \"network\"`, \"country\", \"family\", \"day\", \"url\" or \"keep\"",
        );
    }
    if !anonymised && cat.generalise.is_some() {
        rep.at(
            &path.key("generalise"),
            format!("category `{key}` is not anonymised, so nothing is generalised"),
            "remove `generalise` or write `on_expiry = \"anonymise\"`",
        );
    }
}

/// The quasi-identifiers are anonymised categories, k is at least 5, and the backup
/// retention is a duration.
fn retention_rules(p: &Policy, rep: &mut Reporter<'_>) {
    let root = Path::root().key("retention");
    if let Some(d) = &p.retention.sweep_every {
        duration(rep, root.key("sweep_every"), d);
    }
    if let Some(d) = &p.retention.backup_retention {
        duration(rep, root.key("backup_retention"), d);
    }
    for (i, q) in p.retention.quasi_identifiers.iter().enumerate() {
        let anonymised = p.categories.get(q).is_some_and(|c| c.on_expiry == Some(ExpiryAction::Anonymise));
        if !anonymised {
            rep.at(
                &root.key("quasi_identifiers").index(i),
                format!("`{q}` is not a declared category that is anonymised"),
                "name categories with `on_expiry = \"anonymise\"`",
            );
        }
    }
    if p.retention.k() < 5 {
        rep.at(
            &root.key("k_anonymity"),
            format!("k = {} is too small: an anonymised group must hold at least 5 records", p.retention.k()),
            "write `k_anonymity = 5` or more",
        );
    }
}

fn known_category(p: &Policy, rep: &mut Reporter<'_>, path: Path, key: &str, owner: &str) {
    if !p.categories.contains_key(key) {
        rep.at(
            &path,
            format!("{owner} uses category `{key}`, which is not declared"),
            format!("declare it under [categories.\"{key}\"] or use one of the declared categories"),
        );
    }
}

fn known_purpose(p: &Policy, rep: &mut Reporter<'_>, path: Path, key: &str, owner: &str) -> bool {
    let known = p.purposes.contains_key(key);
    if !known {
        rep.at(
            &path,
            format!("{owner} names purpose `{key}`, which is not declared"),
            format!("declare it under [purposes.{key}] or use one of the declared purposes"),
        );
    }
    known
}

/// Checks that each purpose in `purposes` (at `path.purposes`) is declared, and
/// returns the categories those purposes use between them.
fn purposes_and_their_categories<'p>(
    p: &'p Policy,
    rep: &mut Reporter<'_>,
    path: &Path,
    purposes: &'p [String],
    owner: &str,
) -> HashSet<&'p str> {
    for (i, purpose) in purposes.iter().enumerate() {
        known_purpose(p, rep, path.key("purposes").index(i), purpose, owner);
    }
    purposes.iter().filter_map(|k| p.purposes.get(k)).flat_map(|pu| pu.categories.iter().map(String::as_str)).collect()
}

fn withdrawable(p: &Policy) -> HashSet<&str> {
    let points = p.collection_points.values().flat_map(|c| &c.withdraws);
    let pages = p.pages.values().flat_map(|pg| &pg.withdraws);
    points.chain(pages).map(String::as_str).collect()
}

fn purposes(p: &Policy, rep: &mut Reporter<'_>) {
    let withdrawable = withdrawable(p);
    for (key, purpose) in &p.purposes {
        let path = Path::root().key("purposes").key(key);
        let owner = format!("purpose `{key}`");
        for (i, cat) in purpose.categories.iter().enumerate() {
            known_category(p, rep, path.key("categories").index(i), cat, &owner);
        }
        if let Bases::Many(v) = &purpose.basis {
            if v.is_empty() {
                rep.at(
                    &path.key("basis"),
                    format!("purpose `{key}` has no lawful basis"),
                    "name at least one basis, e.g. \"contract\"",
                );
            }
        }
        let li = purpose.basis.contains(LawfulBasis::LegitimateInterests);
        if li && purpose.legitimate_interest.as_deref().is_none_or(|s| s.trim().is_empty()) {
            rep.at(
                &path.key("basis"),
                format!("purpose `{key}` relies on legitimate interests without stating the interest"),
                "add `legitimate_interest = \"...\"` saying what the interest is (GDPR Art. 13(1)(d))",
            );
        }
        if purpose.direct_marketing {
            if let Some(other) = purpose
                .basis
                .as_slice()
                .iter()
                .find(|b| !matches!(b, LawfulBasis::Consent | LawfulBasis::LegitimateInterests))
            {
                rep.at(
                    &path.key("basis"),
                    format!("direct-marketing purpose `{key}` relies on `{}`", serde_basis(*other)),
                    "direct marketing may rest only on \"consent\" or \"legitimate_interests\" (GDPR Art. 6, Art. 21(2))",
                );
            }
        }
        if purpose.basis.contains(LawfulBasis::Consent) && !withdrawable.contains(key.as_str()) {
            rep.at(
                &path,
                format!("consent-based purpose `{key}` cannot be withdrawn anywhere"),
                format!("list \"{key}\" in `withdraws` of a collection point or a page (GDPR Art. 7(3))"),
            );
        }
    }
}

fn serde_basis(b: LawfulBasis) -> String {
    serde_json::to_value(b).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn consent_purpose_list(p: &Policy, rep: &mut Reporter<'_>, path: Path, list: &[String], owner: &str) {
    for (i, key) in list.iter().enumerate() {
        let at = path.index(i);
        if known_purpose(p, rep, at.clone(), key, owner) && !p.purposes[key].basis.contains(LawfulBasis::Consent) {
            rep.at(
                &at,
                format!("{owner} asks about consent for `{key}`, which does not rely on consent"),
                format!("remove it, or add \"consent\" to the basis of purpose `{key}`"),
            );
        }
    }
}

fn collection_points(p: &Policy, rep: &mut Reporter<'_>) {
    for (key, point) in &p.collection_points {
        let path = Path::root().key("collection_points").key(key);
        let owner = format!("collection point `{key}`");
        let used = purposes_and_their_categories(p, rep, &path, &point.purposes, &owner);
        for (name, field) in &point.fields {
            let fpath = path.key("fields").key(name);
            let fowner = format!("field `{name}` of {owner}");
            known_category(p, rep, fpath.key("category"), &field.category, &fowner);
            if p.categories.contains_key(&field.category) && !used.contains(field.category.as_str()) {
                rep.at(
                    &fpath.key("category"),
                    format!("{fowner} collects `{}`, which none of the point's purposes uses", field.category),
                    "collect only what a purpose needs: add the category to one of the point's purposes, or drop the field",
                );
            }
            if field.kind == FieldType::File && field.max_bytes.is_none() {
                rep.at(
                    &fpath,
                    format!("file {fowner} has no `max_bytes`"),
                    "state the largest upload accepted, e.g. `max_bytes = 10485760`",
                );
            }
            if field.kind != FieldType::File && field.scan.is_some() {
                rep.at(
                    &fpath.key("scan"),
                    format!("{fowner} is not a file but asks for an upload scan"),
                    "remove `scan`, or make the field `type = \"file\"`",
                );
            }
            if field.verify && field.kind != FieldType::Password {
                rep.at(
                    &fpath.key("verify"),
                    format!("{fowner} is not a password but asks to be verified"),
                    "remove `verify`, or make the field `type = \"password\"`",
                );
            }
            if field.kind == FieldType::Password && !field.verify && point.kind == Some(PointKind::Record) {
                rep.at(
                    &fpath.key("type"),
                    format!("{fowner} sets a password at a record point, where each collection adds a record"),
                    "collect passwords at a profile point (a sign-up, the account settings), or verify them here with `verify = true`",
                );
            }
            if field.verify && field.kind == FieldType::Password && !field.required {
                rep.at(
                    &fpath.key("verify"),
                    format!("{fowner} is verified but not required, so leaving it out would skip the check"),
                    "add `required = true`",
                );
            }
            let elsewhere = p
                .collection_points
                .iter()
                .flat_map(|(other, pt)| pt.fields.get(name).filter(|f| f.kind != field.kind).map(|f| (other, f.kind)));
            if field.kind == FieldType::Password {
                for (other, kind) in elsewhere {
                    let kind =
                        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                    rep.at(
                        &fpath.key("type"),
                        format!("{fowner} is a password, but collection point `{other}` collects `{name}` as `{kind}`"),
                        "a subject keeps one value per field name: declare it `type = \"password\"` at every point, or rename one",
                    );
                }
            }
            if field.kind != FieldType::File && !field.content_types.is_empty() {
                rep.at(
                    &fpath.key("content_types"),
                    format!("{fowner} is not a file but lists content types"),
                    "remove `content_types`, or make the field `type = \"file\"`",
                );
            }
        }
        point_kind(point, rep, &path, &owner);
        consent_purpose_list(p, rep, path.key("consents"), &point.consents, &owner);
        consent_purpose_list(p, rep, path.key("withdraws"), &point.withdraws, &owner);
        if let Some(r) = &point.stored_with {
            if !p.recipients.contains_key(r) {
                rep.at(
                    &path.key("stored_with"),
                    format!("{owner} is stored with `{r}`, which is not a declared recipient"),
                    "declare it under [recipients]",
                );
            }
        }
    }
}

/// A point that stores fields says what it stores (`kind`), and only a profile point lists
/// the fields it `updates`, each one it collects.
fn point_kind(point: &CollectionPoint, rep: &mut Reporter<'_>, path: &Path, owner: &str) {
    let stores = !point.fields.is_empty() && !point.is_sign_in();
    match (point.kind, stores) {
        (None, true) => rep.at(
            path,
            format!("{owner} stores fields but does not say what it collects"),
            "add `kind = \"profile\"` (the person's current details) or `kind = \"record\"` (each collection adds a record)",
        ),
        (Some(_), false) => rep.at(
            &path.key("kind"),
            format!("{owner} stores no fields (it has none, or it is a sign-in that verifies a password), so it has no kind"),
            "remove `kind`",
        ),
        _ => {}
    }
    if point.updates.is_empty() {
        return;
    }
    if point.kind != Some(PointKind::Profile) {
        rep.at(
            &path.key("updates"),
            format!("{owner} is not a profile point, so it has nothing to update"),
            "remove `updates`, or make the point `kind = \"profile\"`",
        );
    }
    for name in point.updates.iter().filter(|n| !point.fields.contains_key(*n)) {
        rep.at(
            &path.key("updates"),
            format!("{owner} updates `{name}`, which it does not collect"),
            "list only fields declared under the point's `fields`",
        );
    }
}

fn pages(p: &Policy, rep: &mut Reporter<'_>) {
    for (key, page) in &p.pages {
        let path = Path::root().key("pages").key(key);
        if !page.path.starts_with('/') {
            rep.at(
                &path.key("path"),
                format!("page path `{}` does not start with /", page.path),
                "write the path on the privacy center, e.g. \"/preferences\"",
            );
        }
        consent_purpose_list(p, rep, path.key("withdraws"), &page.withdraws, &format!("page `{key}`"));
    }
}

fn recipients(p: &Policy, rep: &mut Reporter<'_>) {
    for (key, r) in &p.recipients {
        let path = Path::root().key("recipients").key(key);
        let owner = format!("recipient `{key}`");
        let used = purposes_and_their_categories(p, rep, &path, &r.purposes, &owner);
        for (i, cat) in r.categories.iter().enumerate() {
            let at = path.key("categories").index(i);
            known_category(p, rep, at.clone(), cat, &owner);
            if p.categories.contains_key(cat) && !used.contains(cat.as_str()) {
                rep.at(
                    &at,
                    format!("{owner} receives `{cat}`, but none of its purposes uses it"),
                    "share only what a purpose needs: add a purpose that uses it to the recipient, or stop sharing it",
                );
            }
        }
        if let Some(country) = &r.country {
            if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
                rep.at(
                    &path.key("country"),
                    format!("`{country}` is not a country code"),
                    "use an ISO 3166 alpha-2 code such as \"US\" or \"DE\"",
                );
            } else if r.safeguard == crate::model::Safeguard::None
                && !NO_SAFEGUARD_NEEDED.contains(&country.as_str())
                && !r.categories.is_empty()
            {
                rep.at(
                    &path.key("country"),
                    format!("{owner} receives personal data in {country} without a transfer safeguard"),
                    "set `safeguard = \"art46_sccs\"` (or \"adequacy\" where a decision covers it) (GDPR Chapter V)",
                );
            }
        }
        for (name, value) in [("privacy_policy_url", &r.privacy_policy_url), ("opt_out_url", &r.opt_out_url)] {
            if let Some(v) = value {
                url(rep, path.key(name), v);
            }
        }
        match &r.deletion {
            Some(Deletion::Webhook(u)) => url(rep, path.key("deletion").key("webhook"), u),
            Some(Deletion::Manual(via)) if check_email(via).is_err() && check_url(via).is_err() => {
                rep.at(
                    &path.key("deletion").key("manual"),
                    format!("`{via}` is neither an email address nor a URL"),
                    "say where deletion requests go: an email address or a form's URL",
                );
            }
            Some(Deletion::Manual(_)) | None => {}
        }
    }
}

fn cookies(p: &Policy, rep: &mut Reporter<'_>) {
    for (name, c) in &p.cookies {
        let path = Path::root().key("cookies").key(name);
        if c.provider != "first_party" && !p.recipients.contains_key(&c.provider) {
            rep.at(
                &path.key("provider"),
                format!("cookie `{name}` is set by `{}`, which is not a declared recipient", c.provider),
                "use \"first_party\" or the key of a recipient",
            );
        }
        if c.lifetime != "session" {
            duration(rep, path.key("lifetime"), &c.lifetime);
        }
    }
}

fn rights(p: &Policy, rep: &mut Reporter<'_>) {
    let r = Path::root().key("rights");
    if let Some(g) = &p.rights.gdpr {
        let g_path = r.key("gdpr");
        at_most(rep, g_path.key("deadline"), &g.deadline, "1mo", "GDPR Art. 12(3)");
        at_most(rep, g_path.key("extension"), &g.extension, "2mo", "GDPR Art. 12(3)");
        if let Some(u) = &g.supervisory_authorities_url {
            url(rep, g_path.key("supervisory_authorities_url"), u);
        }
    }
    if let Some(c) = &p.rights.ccpa {
        let c_path = r.key("ccpa");
        at_most(rep, c_path.key("deadline"), &c.deadline, "45d", "CCPA §1798.130(a)(2)");
        at_most(rep, c_path.key("extension"), &c.extension, "45d", "CCPA §1798.130(a)(2)");
        if let Some(d) = duration(rep, c_path.key("lookback"), &c.lookback) {
            if d.approx_hours() < PolicyDuration::parse("12mo").expect("constant").approx_hours() {
                rep.at(
                    &c_path.key("lookback"),
                    format!("`{}` is shorter than the 12 months CCPA §1798.130(a)(2) requires", c.lookback),
                    "use \"12mo\" or more",
                );
            }
        }
        let sells = p.purposes.values().any(|pu| pu.sale_or_sharing);
        if sells && !c.rights.contains(&crate::model::CcpaRight::OptOutSaleSharing) {
            rep.at(
                &c_path.key("rights"),
                "a purpose counts as sale or sharing, but the CCPA rights omit `opt_out_sale_sharing`",
                "add \"opt_out_sale_sharing\" (CCPA §1798.120)",
            );
        }
    }
}

fn requests(p: &Policy, rep: &mut Reporter<'_>) {
    let r = Path::root().key("requests");
    let s = &p.requests;
    for (key, value) in [
        ("verify_within", &s.verify_within),
        ("duplicate_window", &s.duplicate_window),
        ("remind_before", &s.remind_before),
        ("processor_confirm_within", &s.processor_confirm_within),
    ] {
        duration(rep, r.key(key), value);
    }
    for (i, kind) in s.approval.iter().enumerate() {
        if !crate::model::REQUEST_TYPES.contains(&kind.as_str()) {
            rep.at(
                &r.key("approval").index(i),
                format!("`{kind}` is not a request type"),
                format!("use one of {}", crate::model::REQUEST_TYPES.join(", ")),
            );
        }
    }
}

fn breach(p: &Policy, rep: &mut Reporter<'_>) {
    let b = Path::root().key("breach");
    duration(rep, b.key("notify_subjects_within"), &p.breach.notify_subjects_within);
    at_most(rep, b.key("notify_authority_within"), &p.breach.notify_authority_within, "72h", "GDPR Art. 33(1)");
    if p.breach.channels.is_empty() {
        rep.at(
            &b.key("channels"),
            "no channel to notify affected people",
            "list at least one, e.g. [\"email\", \"phone\"]",
        );
    }
}

fn extras(p: &Policy, rep: &mut Reporter<'_>) {
    if let Some(fl) = &p.federated_learning {
        if let Some(point) = &fl.raw_upload_point {
            if !p.collection_points.contains_key(point) {
                rep.at(
                    &Path::root().key("federated_learning").key("raw_upload_point"),
                    format!("`{point}` is not a declared collection point"),
                    "name a point under [collection_points]",
                );
            }
        }
    }
    retention_rules(p, rep);
    if let Some(d) = &p.compliance.review_every {
        duration(rep, Path::root().key("compliance").key("review_every"), d);
    }
    if let Some(region) = &p.identifiers.phone_region {
        if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()) {
            rep.at(
                &Path::root().key("identifiers").key("phone_region"),
                format!("`{region}` is not a region code"),
                "use an ISO 3166-1 alpha-2 code, e.g. \"US\" or \"GB\"",
            );
        }
    }
    let security = Path::root().key("security");
    if p.security.sign_in_failures == 0 {
        rep.at(
            &security.key("sign_in_failures"),
            "no failed password check would be allowed",
            "use 1 or more (5 is usual)",
        );
    }
    if !(1..=24 * 60).contains(&p.security.sign_in_window_minutes) {
        rep.at(&security.key("sign_in_window_minutes"), "the window is not between 1 minute and a day", "use 15");
    }
    for (i, origin) in p.consent.origins.iter().enumerate() {
        if !is_origin(origin) {
            rep.at(
                &Path::root().key("consent").key("origins").index(i),
                format!("`{origin}` is not an origin"),
                "write a scheme and host only, e.g. \"https://example.com\" (no path, no trailing slash)",
            );
        }
    }
}

/// Whether `s` is a web origin: `http(s)://host[:port]`, nothing after.
fn is_origin(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) else { return false };
    let (host, port) = rest.split_once(':').unwrap_or((rest, "1"));
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    host_ok && !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}
