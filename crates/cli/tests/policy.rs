//! `charter policy ...` as a user runs it.

mod common;

use common::run;

const MINIMAL: &str = include_str!("../../policy/tests/fixtures/minimal.toml");

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_the_embedded_and_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["policy", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid: version 2024.03.29"));
    std::fs::write(dir.path().join("p.toml"), MINIMAL).unwrap();
    assert!(run(dir.path(), &["policy", "check", "p.toml"]).status.success());
}

#[test]
fn check_reports_every_error_with_its_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = MINIMAL.replacen("website = \"https://example.com/\"", "website = \"example.com\"", 1).replacen(
        "retention = \"90d\"",
        "retention = \"90 days\"",
        1,
    );
    std::fs::write(dir.path().join("bad.toml"), &bad).unwrap();
    let out = run(dir.path(), &["policy", "check", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.toml:10:11: error: `example.com` is not a web address"), "{err}");
    assert!(err.contains("bad.toml:25:13: error:"), "{err}");
    assert!(err.contains("2 errors in the policy"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn check_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["policy", "check", "absent.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read policy file absent.toml"));
}

#[test]
fn render_ropa_disclosures_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let md = run(dir.path(), &["policy", "render", "--format", "md"]);
    assert!(md.status.success());
    assert!(stdout(&md).starts_with("# Privacy Policy of TensorOpera, Inc."));
    let html = run(dir.path(), &["policy", "render", "--format", "html"]);
    assert!(stdout(&html).starts_with("<!doctype html>"));
    let csv = run(dir.path(), &["policy", "ropa", "--format", "csv"]);
    assert!(stdout(&csv).starts_with("controller,"));
    let json = run(dir.path(), &["policy", "ropa", "--format", "json"]);
    assert!(serde_json::from_slice::<serde_json::Value>(&json.stdout).unwrap().is_array());
    let disc = run(dir.path(), &["policy", "disclosures", "--format", "json"]);
    let d: serde_json::Value = serde_json::from_slice(&disc.stdout).unwrap();
    assert!(d["categories"].as_array().is_some_and(|c| !c.is_empty()));
    let schema = run(dir.path(), &["policy", "schema"]);
    let s: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(s["title"], "Policy");
    let bad_format = run(dir.path(), &["policy", "render", "--format", "pdf"]);
    assert_eq!(bad_format.status.code(), Some(2));
    assert!(stderr(&bad_format).contains("invalid value 'pdf'"));
}

#[test]
fn diff_exit_codes_say_unchanged_immaterial_or_material() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("old.toml", MINIMAL);
    write("same.toml", MINIMAL);
    write("minor.toml", &MINIMAL.replacen("version = \"1.0\"", "version = \"1.0.1\"", 1));
    write("major.toml", &MINIMAL.replacen("retention = \"90d\"", "retention = \"5y\"", 1));
    let code = |new: &str| run(dir.path(), &["policy", "diff", "old.toml", new]).status.code();
    assert_eq!(code("same.toml"), Some(0));
    assert_eq!(code("minor.toml"), Some(1));
    assert_eq!(code("major.toml"), Some(3));
    let out = run(dir.path(), &["policy", "diff", "old.toml", "major.toml"]);
    assert!(
        stdout(&out).contains("[material] ~ categories.user.device.ip_address.retention: \"90d\" -> \"5y\""),
        "{}",
        stdout(&out)
    );
    let json = run(dir.path(), &["policy", "diff", "old.toml", "major.toml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v["changes"][0]["material"].is_string());
    write("broken.toml", "version = ");
    assert_eq!(code("broken.toml"), Some(2));
}

#[test]
fn admin_accounts_get_a_setup_link_and_signed_files_verify() {
    let cwd = tempfile::tempdir().unwrap();
    let added = run(cwd.path(), &["admin", "add", "dpo@tensoropera.example", "--role", "privacy"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let link = String::from_utf8(added.stdout).unwrap();
    assert!(link.trim().starts_with("/admin/setup?t=") && link.trim().len() > 70, "{link}");
    assert!(!String::from_utf8_lossy(&added.stderr).contains("dpo@"), "the address is not echoed");
    let bad_role = run(cwd.path(), &["admin", "add", "x@tensoropera.example", "--role", "root"]);
    assert_eq!(bad_role.status.code(), Some(2));

    // A certificate signed with the data directory's key verifies; altered, it does not.
    let keys = charter_vault::KeyFile::load(&cwd.path().join("charter-data/keys.json")).unwrap();
    let body = r#"{"certificate":"charter.erasure.v1","request":"r-1"}"#;
    let signature = hex::encode(keys.checkpoint_signer().sign(body.as_bytes()));
    let file = cwd.path().join("certificate.json");
    let write = |signed: &str| {
        let v = serde_json::json!({ "signed": signed, "signature": signature, "public_key": keys.checkpoint_signer().public_key_hex() });
        std::fs::write(&file, v.to_string()).unwrap();
    };
    write(body);
    let ok = run(cwd.path(), &["verify", file.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid: charter.erasure.v1"));
    write(&body.replace("r-1", "r-2"));
    let altered = run(cwd.path(), &["verify", file.to_str().unwrap()]);
    assert_eq!(altered.status.code(), Some(2), "an altered certificate is refused");
    std::fs::write(&file, "not json").unwrap();
    assert_eq!(run(cwd.path(), &["verify", file.to_str().unwrap()]).status.code(), Some(2));
}
