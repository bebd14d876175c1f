//! `charter backup create`, `charter verify DIR/manifest` and `charter backup restore`
//! through the binary: a backup verifies, a changed one is refused (exit 2) without
//! touching the data, and a restore of an unchanged one succeeds and is in the chain.

mod common;

use common::{run, Server};

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn backup_verify_and_restore_through_the_binary() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[]);
    assert!(server.stop().0.success());

    let created = run(cwd.path(), &["backup", "create", "b1"]);
    assert!(created.status.success(), "{}", text(&created));
    assert!(text(&created).contains("after audit entry"), "{}", text(&created));
    let again = run(cwd.path(), &["backup", "create", "b1"]);
    assert_eq!(again.status.code(), Some(2), "a backup never writes over another: {}", text(&again));
    let verified = run(cwd.path(), &["verify", "b1/manifest"]);
    assert!(verified.status.success(), "{}", text(&verified));

    let manifest = std::fs::read_to_string(cwd.path().join("b1/manifest")).unwrap();
    std::fs::write(
        cwd.path().join("b1/manifest"),
        manifest.replace("\"backend\": \"sqlite\"", "\"backend\": \"postgres\""),
    )
    .unwrap();
    assert_eq!(run(cwd.path(), &["verify", "b1/manifest"]).status.code(), Some(2));
    let refused = run(cwd.path(), &["backup", "restore", "b1"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("signature does not verify"), "{}", text(&refused));
    std::fs::write(cwd.path().join("b1/manifest"), manifest).unwrap();

    let restored = run(cwd.path(), &["backup", "restore", "b1"]);
    assert!(restored.status.success(), "{}", text(&restored));
    let verify = run(cwd.path(), &["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    let server = Server::start(cwd.path(), &[]);
    assert!(server.stop().0.success(), "the restored data serves");
}
