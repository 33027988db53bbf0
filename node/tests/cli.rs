//! The `arbor` command line: load, root, import, export.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

fn arbor(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbor");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "arbor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn db_arg(dir: &Path) -> String {
    dir.join("db").display().to_string()
}

#[test]
fn import_export_round_trip_with_empty_key_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    let printed = ok(arbor(
        &["import", "--db", &db],
        Some("- 01\nab -\n\nAB cd\n0102 ff\n"),
    ));
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "root then key count");
    assert_eq!(lines[0].len(), 64);
    assert!(
        lines[0]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(lines[1], "3", "ab was overwritten within the batch");
    assert_eq!(ok(arbor(&["root", "--db", &db], None)), printed);
    let export = ok(arbor(&["export", "--db", &db], None));
    assert_eq!(export, "- 01\n0102 ff\nab cd\n");
    // Bounds are inclusive.
    let part = ok(arbor(
        &["export", "--db", &db, "--start", "0102", "--end", "ab"],
        None,
    ));
    assert_eq!(part, "0102 ff\nab cd\n");
    // Deleting with a lone key, including the empty key.
    ok(arbor(&["import", "--db", &db], Some("-\nab\n")));
    assert_eq!(ok(arbor(&["export", "--db", &db], None)), "0102 ff\n");
}

#[test]
fn malformed_import_aborts_with_line_number_and_commits_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    let before = ok(arbor(&["import", "--db", &db], Some("01 02\n")));
    let out = arbor(&["import", "--db", &db], Some("03 04\n\nzz 01\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "error names the line: {err}");
    assert_eq!(
        ok(arbor(&["root", "--db", &db], None)),
        before,
        "nothing committed"
    );
}

#[test]
fn load_is_deterministic_and_matches_export_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a").display().to_string();
    let b = dir.path().join("b").display().to_string();
    let root_a = ok(arbor(
        &[
            "load", "--db", &a, "--keys", "3000", "--seed", "7", "--batch", "700",
        ],
        None,
    ));
    let root_b = ok(arbor(
        &[
            "load", "--db", &b, "--keys", "3000", "--seed", "7", "--batch", "3000",
        ],
        None,
    ));
    assert_eq!(root_a, root_b, "batching does not change the root");
    assert!(root_a.ends_with("\n3000\n"));
    // Rebuild the same database from its export: same root.
    let export = ok(arbor(&["export", "--db", &a], None));
    let c = dir.path().join("c").display().to_string();
    assert_eq!(ok(arbor(&["import", "--db", &c], Some(&export))), root_a);
}

#[test]
fn root_of_missing_database_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = arbor(&["root", "--db", &db_arg(dir.path())], None);
    assert!(!out.status.success());
}

#[test]
fn bad_input_to_local_commands_is_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    ok(arbor(&["load", "--db", &db, "--keys", "10"], None));
    let root_before = ok(arbor(&["root", "--db", &db], None));
    let missing_file = dir.path().join("missing.txt").display().to_string();
    let cases: [(&[&str], &str); 8] = [
        (&["load", "--db", &db], "--keys"),
        (&["load", "--db", &db, "--keys", "ten"], "invalid value"),
        (
            &["load", "--db", &db, "--keys", "5", "--batch", "0"],
            "--batch",
        ),
        (&["export", "--db", &db, "--start", "zz"], "hex"),
        (
            &["export", "--db", &db, "--start", "02", "--end", "01"],
            "after --end",
        ),
        (&["import", "--db", &db, &missing_file], "missing.txt"),
        (&["frobnicate"], "unrecognized subcommand"),
        (
            &["root", "--db", &db, "--config", &missing_file],
            "config file",
        ),
    ];
    for (args, expected) in cases {
        let out = arbor(args, None);
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(
        ok(arbor(&["root", "--db", &db], None)),
        root_before,
        "nothing changed"
    );
}

#[test]
fn output_cut_short_by_the_reader_is_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_arg(dir.path());
    ok(arbor(&["load", "--db", &db, "--keys", "20000"], None));
    for cmd in ["export", "root"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args([cmd, "--db", &db])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Read nothing: close the pipe at once, like `| head -0`.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_memory_budget_changes_nothing_but_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fast = dir.path().join("fast").display().to_string();
    let small = dir.path().join("small").display().to_string();
    let a = ok(arbor(&["load", "--db", &fast, "--keys", "30000"], None));
    let b = ok(arbor(
        &[
            "load",
            "--db",
            &small,
            "--keys",
            "30000",
            "--memory-mb",
            "16",
        ],
        None,
    ));
    assert_eq!(a.lines().next(), b.lines().next(), "same root");
    let out = arbor(
        &["load", "--db", &small, "--keys", "1", "--memory-mb", "1"],
        None,
    );
    assert!(!out.status.success(), "a budget below 16 MiB is refused");
}
