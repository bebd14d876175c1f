//! `charter scan` as a user runs it.

mod common;

use common::run;

#[test]
fn scan_reports_anonymises_and_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in/sub")).unwrap();
    std::fs::write(d.join("in/a.csv"), "name,email,card\nAda,ada@example.com,4111 1111 1111 1111\n").unwrap();
    std::fs::write(d.join("in/sub/b.json"), "{\"ip\": \"192.168.1.20\", \"order\": \"1234567890123456\"}").unwrap();
    std::fs::write(d.join("clean.txt"), "version v1.2.3.4 built at 2024-03-29 12:00:00\n").unwrap();

    let clean = run(d, &["scan", "clean.txt"]);
    assert_eq!(clean.status.code(), Some(0), "no personal data: exit 0");
    let out = run(d, &["scan", "--format", "json", "in"]);
    assert_eq!(out.status.code(), Some(1), "personal data found: exit 1");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "one JSON object per file");
    let a = lines.iter().find(|l| l["path"].as_str().unwrap().ends_with("a.csv")).unwrap();
    let text = std::fs::read_to_string(d.join("in/a.csv")).unwrap();
    let kinds: Vec<(&str, &str)> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap(),
                &text[f["start"].as_u64().unwrap() as usize..f["end"].as_u64().unwrap() as usize],
            )
        })
        .collect();
    assert_eq!(kinds, vec![("EMAIL_ADDRESS", "ada@example.com"), ("CREDIT_CARD", "4111 1111 1111 1111")]);

    let sarif = run(d, &["scan", "--format", "sarif", "in"]);
    let doc: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    assert_eq!(doc["runs"][0]["results"].as_array().unwrap().len(), 3);

    std::fs::write(
        d.join("anon.toml"),
        "[types.EMAIL_ADDRESS]\nmode = \"pseudonym\"\n[types.IP_ADDRESS]\nmode = \"generalise\"\n",
    )
    .unwrap();
    let anon = run(d, &["scan", "in", "--anonymise", "anon.toml", "--out", "out"]);
    assert_eq!(anon.status.code(), Some(1));
    let a_out = std::fs::read_to_string(d.join("out/a.csv")).unwrap();
    let b_out = std::fs::read_to_string(d.join("out/sub/b.json")).unwrap();
    assert!(
        !a_out.contains("ada@example.com") && a_out.contains("EMAIL_ADDRESS_") && a_out.contains("<CREDIT_CARD>"),
        "{a_out}"
    );
    assert!(b_out.contains("192.168.1.0/24") && b_out.contains("1234567890123456"), "{b_out}");
    assert_eq!(run(d, &["scan", "out"]).status.code(), Some(0), "the anonymised copies hold nothing detectable");

    std::fs::write(d.join("bad.toml"), "[types.SHOE_SIZE]\nmode = \"tag\"\n").unwrap();
    let bad = run(d, &["scan", "in", "--anonymise", "bad.toml", "--out", "o2"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown entity type `SHOE_SIZE`"));
    assert_eq!(run(d, &["scan", "missing.txt"]).status.code(), Some(2));
}

/// The files under `dir` with their contents, for checking what a command left.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn anonymised_copies_never_touch_their_inputs_or_land_outside_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::create_dir_all(d.join("work")).unwrap();
    std::fs::write(d.join("data/f.txt"), "write to ada@example.com\n").unwrap();
    std::fs::write(d.join("data/g.txt"), "or to bob@example.org\n").unwrap();
    std::fs::write(d.join("a.toml"), "[types.EMAIL_ADDRESS]\nmode = \"tag\"\n").unwrap();
    let before = snapshot(d);
    let data = d.join("data");

    let over_one = run(&data, &["scan", "f.txt", "--anonymise", "../a.toml", "--out", "."]);
    assert_eq!(over_one.status.code(), Some(2), "{}", String::from_utf8_lossy(&over_one.stderr));
    assert!(String::from_utf8_lossy(&over_one.stderr).contains("would be written over the input"));
    let over_all = run(&data, &["scan", ".", "--anonymise", "../a.toml", "--out", "."]);
    assert_eq!(over_all.status.code(), Some(2));
    assert_eq!(snapshot(d), before, "a refused run changes nothing");

    let work = d.join("work");
    let up = run(&work, &["scan", "../data/f.txt", "--anonymise", "../a.toml", "--out", "."]);
    assert_eq!(up.status.code(), Some(1), "{}", String::from_utf8_lossy(&up.stderr));
    assert_eq!(std::fs::read_to_string(work.join("f.txt")).unwrap(), "write to <EMAIL_ADDRESS>\n");
    let absolute = format!("/../..{}", data.join("g.txt").display());
    let abs = run(&work, &["scan", &absolute, "--anonymise", "../a.toml", "--out", "out"]);
    assert_eq!(abs.status.code(), Some(1), "{}", String::from_utf8_lossy(&abs.stderr));
    assert_eq!(std::fs::read_to_string(work.join("out/g.txt")).unwrap(), "or to <EMAIL_ADDRESS>\n");
    let both = run(&work, &["scan", "../data", "--anonymise", "../a.toml", "--out", "both"]);
    assert_eq!(both.status.code(), Some(1));
    assert!(work.join("both/f.txt").is_file() && work.join("both/g.txt").is_file());
    let outside: Vec<_> = snapshot(d).into_iter().filter(|(p, _)| !p.starts_with(&work)).collect();
    assert_eq!(outside, before, "inputs untouched, nothing written outside --out");
    let leftovers: Vec<_> =
        snapshot(&work).into_iter().filter(|(p, _)| !p.to_string_lossy().ends_with(".txt")).collect();
    assert!(leftovers.is_empty(), "no temporary file left: {leftovers:?}");
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_walked_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("loop")).unwrap();
    std::fs::write(d.join("loop/f.txt"), "ada@example.com\n").unwrap();
    std::os::unix::fs::symlink(d.join("loop"), d.join("loop/again")).unwrap();
    let out = run(d, &["scan", "--format", "json", "loop"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1, "one file, reported once");
}
