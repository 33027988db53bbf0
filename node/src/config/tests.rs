use clap::{CommandFactory, FromArgMatches};

use super::*;
use crate::{Cli, Command as Sub};

/// Parses `args` (after the program name) with `file` as the config file.
fn parse_with(file: &str, args: &[&str]) -> anyhow::Result<Cli> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arbor.toml");
    std::fs::write(&path, file).expect("write");
    let mut all: Vec<OsString> = vec!["arbor".into()];
    all.extend(args.iter().map(OsString::from));
    all.push("--config".into());
    all.push(path.clone().into());
    let file = take_config_flag(&mut all)?.expect("config flag");
    let command = with_file_defaults(Cli::command(), Path::new(&file))?;
    let matches = command.try_get_matches_from(all)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

const FILE: &str = r#"
    [sync]
    db = "/data"
    peer = ["http://a:1", "http://b:2"]
    follow = true
    json = false
    workers = 4
    [serve]
    listen = "127.0.0.1:7000"
"#;

#[test]
fn a_section_supplies_flags_that_the_command_line_overrides() {
    let Sub::Sync {
        db,
        peers,
        follow,
        json,
        workers,
        ..
    } = parse_with(FILE, &["sync", "--workers", "9"])
        .expect("parse")
        .command
    else {
        panic!("not a sync");
    };
    assert_eq!(db, Path::new("/data"));
    assert_eq!(peers, ["http://a:1", "http://b:2"]);
    assert!(follow && !json);
    assert_eq!(workers, 9, "the command line wins");
    let Sub::Sync { peers, .. } = parse_with(FILE, &["sync", "--peer=http://c:3"])
        .expect("parse")
        .command
    else {
        panic!("not a sync");
    };
    assert_eq!(peers, ["http://c:3"], "command-line peers replace the list");
    let Sub::Serve { listen, db, .. } = parse_with(FILE, &["serve", "--db", "/srv"])
        .expect("parse")
        .command
    else {
        panic!("not a serve");
    };
    assert_eq!(listen.to_string(), "127.0.0.1:7000");
    assert_eq!(db, Path::new("/srv"));
}

#[test]
fn file_values_are_checked_like_flags() {
    let error = parse_with(
        "[sync]\nworkers = 0\ndb = \"/d\"\npeer = [\"http://a:1\"]\nfollow = true",
        &["sync"],
    );
    assert!(error.is_err(), "out-of-range value accepted");
    // Without the file's db, the flag is required as usual.
    assert!(parse_with("[root]\n", &["root"]).is_err());
}

#[test]
fn bad_files_are_reported() {
    let message = |file: &str| match parse_with(file, &["sync"]) {
        Ok(_) => panic!("{file:?} accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(message("[nope]\nx = 1").contains("unknown section [nope]"));
    assert!(message("[sync]\ncolour = 1").contains("no flag --colour"));
    assert!(message("[sync\n").contains("parsing config file"));
    assert!(message("[sync]\ndb = {a = 1}").contains("[sync] db"));
    assert!(message("sync = 3").contains("parsing config file"));
    let mut args = vec![OsString::from("arbor"), "--config".into()];
    assert!(
        take_config_flag(&mut args).is_err(),
        "--config without a file"
    );
    let missing = with_file_defaults(Cli::command(), Path::new("/nonexistent/arbor.toml"));
    assert!(missing.is_err());
}
