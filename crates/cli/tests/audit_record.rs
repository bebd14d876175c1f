//! `charter audit record` from many processes at once keeps one chain, on both backends.

mod common;

use common::{charter, run, Server};

fn concurrent_records(cwd: &std::path::Path, extra: &[&str], processes: usize) {
    let mut children = Vec::new();
    for i in 0..processes {
        let detail = format!("{{\"round\":{i}}}");
        children.push(
            charter()
                .current_dir(cwd)
                .args([
                    "audit",
                    "record",
                    "--action",
                    "compliance.review",
                    "--actor",
                    "dpo-office",
                    "--detail",
                    &detail,
                ])
                .args(extra)
                .output_async(),
        );
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("recorded as entry "));
    }
}

trait Spawn {
    fn output_async(&mut self) -> std::process::Child;
}

impl Spawn for std::process::Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }
}

fn verify_count(cwd: &std::path::Path, extra: &[&str]) -> String {
    let out = charter().current_dir(cwd).args(["audit", "verify"]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn many_processes_on_sqlite_keep_one_chain() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(Server::start(cwd.path(), &[]).stop().0.success());
    concurrent_records(cwd.path(), &[], 12);
    assert!(verify_count(cwd.path(), &[]).contains("ok: 14 entries"));
}

#[test]
fn many_processes_on_postgres_keep_one_chain() {
    let Ok(server) = std::env::var(charter_testkit::POSTGRES_ENV) else {
        eprintln!("notice: many_processes_on_postgres skipped; set {} to run it", charter_testkit::POSTGRES_ENV);
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(charter_testkit::TestDb::postgres_at(&server));
    let cwd = tempfile::tempdir().unwrap();
    let extra = ["--database-url", db.url.as_str()];
    // Two servers on one database, then a crowd of recording processes.
    let a = Server::start(cwd.path(), &extra);
    let b = Server::start(cwd.path(), &extra);
    concurrent_records(cwd.path(), &extra, 12);
    assert!(a.stop().0.success());
    assert!(b.stop().0.success());
    assert!(verify_count(cwd.path(), &extra).contains("ok: 16 entries"));
    drop(rt);
}

#[test]
fn record_refuses_bad_input_and_writes_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(Server::start(cwd.path(), &[]).stop().0.success());
    let cases: &[(&str, &[&str], &str)] = &[
        ("action not dotted lowercase", &["--action", "Review Done", "--actor", "dpo"], "--action must be"),
        (
            "actor is an email address",
            &["--action", "compliance.review", "--actor", "jane@example.com"],
            "--actor must be",
        ),
        (
            "detail not JSON",
            &["--action", "compliance.review", "--actor", "dpo", "--detail", "{oops"],
            "--detail is not JSON",
        ),
        (
            "detail not an object",
            &["--action", "compliance.review", "--actor", "dpo", "--detail", "[1]"],
            "--detail must be a JSON object",
        ),
        ("missing action", &["--actor", "dpo"], "--action <ACTION>"),
    ];
    for (what, args, says) in cases {
        let mut full = vec!["audit", "record"];
        full.extend_from_slice(args);
        let out = run(cwd.path(), &full);
        assert_eq!(out.status.code(), Some(2), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{what}: {err}");
        assert!(!err.contains("jane@example.com"), "{what}: the refused value is not echoed");
    }
    assert!(verify_count(cwd.path(), &[]).contains("ok: 2 entries"), "nothing was appended");
}
