//! Every validation error, with the place it points at.

use charter_policy::{load, Diagnostic};

const MINIMAL: &str = include_str!("fixtures/minimal.toml");

/// Line and column (1-based) of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap_or_else(|| panic!("needle `{needle}` not in the case's text"));
    let before = &text[..at];
    (before.matches('\n').count() + 1, before.rsplit('\n').next().unwrap().chars().count() + 1)
}

struct Case {
    what: &'static str,
    /// Replace `from` with `to` in the minimal policy.
    from: &'static str,
    to: &'static str,
    /// The error must point at the first occurrence of this text in the changed policy…
    at: &'static str,
    /// …and its message must contain this.
    says: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "a point that stores fields without a kind",
        from: "kind = \"profile\"\n",
        to: "",
        at: "signup]",
        says: "stores fields but does not say what it collects",
    },
    Case {
        what: "a kind that is neither profile nor record",
        from: "kind = \"profile\"",
        to: "kind = \"ledger\"",
        at: "\"ledger\"",
        says: "ledger",
    },
    Case {
        what: "a kind on a sign-in point",
        from: "max_bytes = 254",
        to: "max_bytes = 254\n\n[collection_points.login]\ndescription = \"Signing in\"\npurposes = [\"registration\"]\nkind = \"record\" # here\n\n[collection_points.login.fields.secret]\ncategory = \"user.contact.email\"\ntype = \"password\"\nverify = true\nrequired = true",
        at: "\"record\" # here",
        says: "stores no fields",
    },
    Case {
        what: "a password set at a record point",
        from: "kind = \"profile\"\npurposes = [\"registration\", \"newsletter\"]\nconsents = [\"newsletter\"]\n",
        to: "kind = \"record\"\npurposes = [\"registration\", \"newsletter\"]\nconsents = [\"newsletter\"]\n\n[collection_points.signup.fields.secret]\ncategory = \"user.contact.email\"\ntype = \"password\" # here\n",
        at: "\"password\" # here",
        says: "sets a password at a record point",
    },
    Case {
        what: "updates at a record point",
        from: "kind = \"profile\"",
        to: "kind = \"record\"\nupdates = [\"email\"] # here",
        at: "[\"email\"] # here",
        says: "is not a profile point",
    },
    Case {
        what: "an update of a field the point does not collect",
        from: "kind = \"profile\"",
        to: "kind = \"profile\"\nupdates = [\"phone\"]",
        at: "[\"phone\"]",
        says: "updates `phone`, which it does not collect",
    },
    Case {
        what: "a phone region that is not a region code",
        from: "notify_authority_within = \"72h\"",
        to: "notify_authority_within = \"72h\"\n\n[identifiers]\nphone_region = \"usa\"",
        at: "\"usa\"",
        says: "`usa` is not a region code",
    },
    Case {
        what: "no failed password check allowed",
        from: "last_updated = \"2026-01-15\"",
        to: "last_updated = \"2026-01-15\"\nsecurity = { sign_in_failures = 0, sign_in_window_minutes = 15 }",
        at: "0, sign_in_window",
        says: "no failed password check would be allowed",
    },
    Case {
        what: "a sign-in window over a day",
        from: "version = \"1.0\"",
        to: "version = \"1.0\"\nsecurity = { sign_in_window_minutes = 2000 }",
        at: "2000",
        says: "not between 1 minute and a day",
    },
    Case {
        what: "a consent origin with a path",
        from: "version = \"1.0\"",
        to: "version = \"1.0\"\nconsent = { origins = [\"https://example.com\", \"https://example.com/shop\"] }",
        at: "\"https://example.com/shop\"",
        says: "`https://example.com/shop` is not an origin",
    },
    Case {
        what: "a consent origin without a scheme",
        from: "version = \"1.0\"",
        to: "version = \"1.0\"\nconsent = { origins = [\"example.com:8080\"] }",
        at: "\"example.com:8080\"",
        says: "is not an origin",
    },
    Case {
        what: "unknown top-level key",
        from: "version = \"1.0\"",
        to: "version = \"1.0\"\ncolour = \"blue\"",
        at: "colour",
        says: "unknown key `colour`",
    },
    Case {
        what: "unknown nested key",
        from: "identifies = true\nretention = \"account+30d\"",
        to: "identifies = true\nretension = \"2y\"\nretention = \"account+30d\"",
        at: "retension",
        says: "unknown key `retension`",
    },
    Case {
        what: "duplicate key",
        from: "minimum_age = 16",
        to: "minimum_age = 16\nminimum_age = 18",
        at: "minimum_age = 18",
        says: "duplicate key",
    },
    Case {
        what: "duplicate table",
        from: "notify_authority_within = \"72h\"",
        to: "notify_authority_within = \"72h\"\n\n[cookies.session]\nprovider = \"first_party\"\ncategory = \"functional\"\npurpose = \"x\"\nlifetime = \"1d\"",
        at: "[cookies.session]\nprovider = \"first_party\"\ncategory = \"functional\"",
        says: "duplicate key",
    },
    Case {
        what: "purpose with an undeclared category",
        from: "categories = [\"user.device.ip_address\"]\n",
        to: "categories = [\"user.device.ip_address\", \"user.biometric\"]\n",
        at: "\"user.biometric\"",
        says: "uses category `user.biometric`, which is not declared",
    },
    Case {
        what: "field with an undeclared category",
        from: "category = \"user.contact.email\"\ntype = \"email\"",
        to: "category = \"user.contact.mail\"\ntype = \"email\"",
        at: "\"user.contact.mail\"",
        says: "uses category `user.contact.mail`, which is not declared",
    },
    Case {
        what: "consent purpose nobody can withdraw",
        from: "withdraws = [\"newsletter\", \"ads\"]",
        to: "withdraws = [\"ads\"]",
        at: "newsletter]",
        says: "consent-based purpose `newsletter` cannot be withdrawn anywhere",
    },
    Case {
        what: "processor receiving a category none of its purposes uses",
        from: "purposes = [\"registration\", \"security\"]\ncountry",
        to: "purposes = [\"registration\"]\ncountry",
        at: "\"user.device.ip_address\"]\npurposes = [\"registration\"]",
        says: "receives `user.device.ip_address`, but none of its purposes uses it",
    },
    Case {
        what: "category without retention",
        from: "identifies = false\nretention = \"90d\"\non_expiry = \"anonymise\"\ngeneralise = \"network\"\n",
        to: "identifies = false\n",
        at: "\"user.device.ip_address\"]\ndescription",
        says: "category `user.device.ip_address` has no retention",
    },
    Case {
        what: "an identifying category anonymised",
        from: "identifies = false\nretention = \"90d\"\non_expiry = \"anonymise\"",
        to: "identifies = true\nretention = \"90d\"\non_expiry = \"anonymise\"",
        at: "\"anonymise\"",
        says: "identifies a person, so it cannot be anonymised",
    },
    Case {
        what: "an anonymised category that does not say how",
        from: "generalise = \"network\"\n",
        to: "",
        at: "\"user.device.ip_address\"]\ndescription",
        says: "is anonymised but does not say how",
    },
    Case {
        what: "a deleted category generalised",
        from: "on_expiry = \"delete\"\nccpa",
        to: "on_expiry = \"delete\"\ngeneralise = \"day\" # here\nccpa",
        at: "\"day\" # here",
        says: "is not anonymised, so nothing is generalised",
    },
    Case {
        what: "a quasi-identifier that is not anonymised",
        from: "[purposes.registration]",
        to: "[retention]\nquasi_identifiers = [\"user.contact.email\"]\n\n[purposes.registration]",
        at: "\"user.contact.email\"]\n\n",
        says: "`user.contact.email` is not a declared category that is anonymised",
    },
    Case {
        what: "k below five",
        from: "[purposes.registration]",
        to: "[retention]\nk_anonymity = 3\n\n[purposes.registration]",
        at: "3\n\n[purposes",
        says: "k = 3 is too small",
    },
    Case {
        what: "a backup retention that is not a duration",
        from: "[purposes.registration]",
        to: "[retention]\nbackup_retention = \"a month\"\n\n[purposes.registration]",
        at: "\"a month\"",
        says: "is not a duration",
    },
    Case {
        what: "legitimate interests without the interest",
        from: "legitimate_interest = \"Keeping the service safe from abuse\"\n",
        to: "",
        at: "\"legitimate_interests\"",
        says: "relies on legitimate interests without stating the interest",
    },
    Case {
        what: "direct marketing on contract",
        from: "basis = \"consent\"\ncategories = [\"user.contact.email\"]\ndirect_marketing = true",
        to: "basis = \"contract\"\ncategories = [\"user.contact.email\"]\ndirect_marketing = true",
        at: "\"contract\"\ncategories = [\"user.contact.email\"]\ndirect",
        says: "direct-marketing purpose `newsletter` relies on `contract`",
    },
    Case {
        what: "malformed duration",
        from: "notify_subjects_within = \"48h\"",
        to: "notify_subjects_within = \"two days\"",
        at: "\"two days\"",
        says: "is not a duration",
    },
    Case {
        what: "malformed retention",
        from: "retention = \"90d\"",
        to: "retention = \"90 days\"",
        at: "\"90 days\"",
        says: "is not a duration unit",
    },
    Case {
        what: "malformed date",
        from: "last_updated = \"2026-01-15\"",
        to: "last_updated = \"15/01/2026\"",
        at: "\"15/01/2026\"",
        says: "is not a date",
    },
    Case {
        what: "impossible date",
        from: "last_updated = \"2026-01-15\"",
        to: "last_updated = \"2026-02-30\"",
        at: "\"2026-02-30\"",
        says: "has no day 30",
    },
    Case {
        what: "malformed email",
        from: "privacy_email = \"privacy@example.com\"",
        to: "privacy_email = \"privacy at example.com\"",
        at: "\"privacy at example.com\"",
        says: "is not an email address",
    },
    Case {
        what: "malformed URL",
        from: "website = \"https://example.com/\"",
        to: "website = \"example.com\"",
        at: "\"example.com\"",
        says: "is not a web address",
    },
    Case {
        what: "malformed webhook URL",
        from: "deletion = { webhook = \"https://hosting.example/delete\" }",
        to: "deletion = { webhook = \"hosting.example/delete\" }",
        at: "\"hosting.example/delete\"",
        says: "is not a web address",
    },
    Case {
        what: "GDPR deadline beyond the law",
        from: "deadline = \"1mo\"",
        to: "deadline = \"6w\"",
        at: "\"6w\"",
        says: "longer than GDPR Art. 12(3) allows",
    },
    Case {
        what: "authority notification beyond 72 hours",
        from: "notify_authority_within = \"72h\"",
        to: "notify_authority_within = \"4d\"",
        at: "\"4d\"",
        says: "longer than GDPR Art. 33(1) allows",
    },
    Case {
        what: "transfer without safeguard",
        from: "country = \"DE\"",
        to: "country = \"US\"",
        at: "\"US\"",
        says: "without a transfer safeguard",
    },
    Case {
        what: "wrong value type",
        from: "minimum_age = 16",
        to: "minimum_age = \"sixteen\"",
        at: "\"sixteen\"",
        says: "invalid type",
    },
    Case {
        what: "unknown enum value",
        from: "source = \"automatic\"",
        to: "source = \"scraped\"",
        at: "\"scraped\"",
        says: "unknown variant `scraped`",
    },
    Case {
        what: "consent asked for a contract purpose",
        from: "consents = [\"newsletter\"]",
        to: "consents = [\"newsletter\", \"registration\"]",
        at: "\"registration\"]",
        says: "asks about consent for `registration`, which does not rely on consent",
    },
    Case {
        what: "field collected for no purpose of its point",
        from: "purposes = [\"registration\", \"newsletter\"]\nconsents",
        to: "purposes = [\"security\"]\nconsents",
        at: "\"user.contact.email\"\ntype",
        says: "which none of the point's purposes uses",
    },
    Case {
        what: "cookie set by an undeclared recipient",
        from: "provider = \"first_party\"",
        to: "provider = \"adnetwork\"",
        at: "\"adnetwork\"",
        says: "cookie `session` is set by `adnetwork`, which is not a declared recipient",
    },
    Case {
        what: "CCPA look-back shorter than 12 months",
        from: "lookback = \"12mo\"",
        to: "lookback = \"6mo\"",
        at: "\"6mo\"",
        says: "shorter than the 12 months",
    },
    Case {
        what: "CCPA deadline beyond 45 days",
        from: "deadline = \"45d\"",
        to: "deadline = \"60d\"",
        at: "\"60d\"",
        says: "longer than CCPA §1798.130(a)(2) allows",
    },
    Case {
        what: "sale or sharing without the opt-out right",
        from: "rights = [\"know\", \"delete\", \"opt_out_sale_sharing\"]",
        to: "rights = [\"know\", \"delete\"]",
        at: "[\"know\", \"delete\"]",
        says: "omit `opt_out_sale_sharing`",
    },
    Case {
        what: "minimum age of zero",
        from: "minimum_age = 16",
        to: "minimum_age = 0",
        at: "0\n",
        says: "`minimum_age` is 0",
    },
    Case {
        what: "file field without a size limit",
        from: "max_bytes = 254",
        to: "max_bytes = 254\n\n[collection_points.signup.fields.avatar]\ncategory = \"user.contact.email\"\ntype = \"file\"",
        at: "avatar]",
        says: "has no `max_bytes`",
    },
    Case {
        what: "upload scan on a field that is not a file",
        from: "max_bytes = 254",
        to: "max_bytes = 254\nscan = \"reject\"",
        at: "\"reject\"",
        says: "is not a file but asks for an upload scan",
    },
    Case {
        what: "verification asked of a field that is not a password",
        from: "max_bytes = 254",
        to: "max_bytes = 254\nverify = true # a sign-in",
        at: "true # a sign-in",
        says: "is not a password but asks to be verified",
    },
    Case {
        what: "a field name that is a password at one point and text at another",
        from: "max_bytes = 254",
        to: "max_bytes = 254\n\n[collection_points.login]\ndescription = \"Signing in\"\npurposes = [\"registration\"]\n\n[collection_points.login.fields.email]\ncategory = \"user.contact.email\"\ntype = \"password\" # here",
        at: "\"password\" # here",
        says: "is a password, but collection point",
    },
];

fn errors_for(text: &str) -> Vec<Diagnostic> {
    match load("case.toml", text) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}

#[test]
fn the_minimal_policy_is_valid() {
    assert_eq!(errors_for(MINIMAL), Vec::new());
}

#[test]
fn each_error_is_reported_at_its_location_with_help() {
    let mut failures = Vec::new();
    for case in CASES {
        assert!(MINIMAL.contains(case.from), "{}: the fixture lacks `{}`", case.what, case.from);
        let text = MINIMAL.replacen(case.from, case.to, 1);
        let (line, column) = position(&text, case.at);
        let errors = errors_for(&text);
        let hit = errors.iter().find(|d| d.message.contains(case.says));
        match hit {
            None => failures.push(format!("{}: no error saying `{}`; got {errors:#?}", case.what, case.says)),
            Some(d) if (d.line, d.column) != (line, column) => failures.push(format!(
                "{}: points at {}:{} but `{}` is at {line}:{column}: {d}",
                case.what, d.line, d.column, case.at
            )),
            Some(d) => {
                assert_eq!(d.file, "case.toml");
                assert!(
                    d.help.as_deref().is_some_and(|h| !h.is_empty()) || d.message.contains(':'),
                    "{}: {d}",
                    case.what
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_errors_are_reported_in_one_run() {
    let mut text = MINIMAL.to_owned();
    for case in CASES.iter().filter(|c| {
        !matches!(
            c.what,
            "duplicate key"
                | "duplicate table"
                | "wrong value type"
                | "unknown enum value"
                | "a kind that is neither profile nor record"
                // Declares a second `login` point, as another case does.
                | "a kind on a sign-in point"
                | "impossible date"
                // Each sets [security] whole; together they would declare it twice.
                | "no failed password check allowed"
                // Sets [consent] whole, as the other origin case does.
                | "a consent origin without a scheme"
                // Each sets [retention] whole.
                | "a quasi-identifier that is not anonymised"
                | "k below five"
                | "a backup retention that is not a duration"
        )
    }) {
        if text.contains(case.from) {
            text = text.replacen(case.from, case.to, 1);
        }
    }
    let errors = errors_for(&text);
    assert!(errors.len() >= 15, "expected every error at once, got {}: {errors:#?}", errors.len());
    let rendered = charter_policy::PolicyErrors(errors.clone()).to_string();
    assert!(rendered.contains("case.toml:"), "{rendered}");
    let mut sorted = errors.clone();
    sorted.sort_by_key(|d| (d.line, d.column));
    assert_eq!(errors, sorted, "errors come in file order");
}

#[test]
fn syntax_error_points_at_its_line() {
    let text = MINIMAL.replacen("minimum_age = 16", "minimum_age = = 16", 1);
    let errors = errors_for(&text);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, position(&text, "minimum_age = =").0);
}

#[test]
fn request_settings_name_real_types_and_durations() {
    let base = include_str!("fixtures/minimal.toml");
    let bad = format!("{base}\n[requests]\nverify_within = \"soon\"\napproval = [\"access\", \"everything\"]\n");
    let errors = charter_policy::load("p.toml", &bad).unwrap_err().to_string();
    assert!(errors.contains("`soon` is not a duration"), "{errors}");
    assert!(errors.contains("`everything` is not a request type"), "{errors}");
    let good = format!("{base}\n[requests]\napproval = [\"erasure\"]\n");
    let p = charter_policy::load("p.toml", &good).unwrap().policy;
    assert_eq!(
        (p.requests.verify_within.as_str(), p.requests.approval.as_slice()),
        ("7d", &["erasure".to_owned()][..])
    );
}
