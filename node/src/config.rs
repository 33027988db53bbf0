//! `--config FILE`: a TOML file that can carry every flag, one table per subcommand.
//!
//! ```toml
//! [sync]
//! db = "/var/lib/arbor/replica"
//! peer = ["http://10.0.0.1:7000", "http://10.0.0.2:7000"]
//! follow = true
//! workers = 8
//! ```
//!
//! The subcommand's table is turned into flags (`key` → `--key`, underscores as dashes; `true`
//! → the bare flag, `false` → nothing; arrays → the flag repeated) and placed before the command
//! line's own flags. A flag given on the command line replaces the file's value entirely (for a
//! repeated flag such as `--peer`, the file's whole list). Unknown keys are rejected by the
//! same parser as unknown flags.

use std::{ffi::OsString, path::Path};

use anyhow::{Context, bail};

/// The subcommands a file may have a table for.
const SUBCOMMANDS: [&str; 6] = ["load", "root", "import", "export", "serve", "sync"];

/// Expands `--config FILE` (anywhere on the command line) into flags; returns the arguments
/// unchanged when there is none.
pub(crate) fn expand(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let mut file = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--config") => {
                file = Some(iter.next().context("--config needs a file")?);
            }
            Some(s) if s.starts_with("--config=") => {
                file = Some(OsString::from(&s["--config=".len()..]));
            }
            _ => rest.push(arg),
        }
    }
    let Some(file) = file else {
        return Ok(rest);
    };
    let path = Path::new(&file);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    for (name, value) in &table {
        if !SUBCOMMANDS.contains(&name.as_str()) || !value.is_table() {
            bail!(
                "config file {}: unknown section [{name}] (expected tables named {})",
                path.display(),
                SUBCOMMANDS.join(", ")
            );
        }
    }
    // The subcommand is the first argument after the program that is not a flag.
    let Some(position) = rest
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
    else {
        return Ok(rest);
    };
    let position = position + 1;
    let subcommand = rest[position].to_string_lossy().into_owned();
    let Some(section) = table.get(&subcommand).and_then(toml::Value::as_table) else {
        return Ok(rest);
    };
    let given = |flag: &str| {
        rest.iter().any(|a| {
            let a = a.to_string_lossy();
            a == flag || a.starts_with(&format!("{flag}="))
        })
    };
    let mut flags = Vec::new();
    for (key, value) in section {
        let flag = format!("--{}", key.replace('_', "-"));
        if given(&flag) {
            continue;
        }
        let scalar = |v: &toml::Value| -> anyhow::Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => bail!("config [{subcommand}] {key}: expected a string or a number"),
            })
        };
        match value {
            toml::Value::Boolean(true) => flags.push(OsString::from(&flag)),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    flags.push(OsString::from(&flag));
                    flags.push(OsString::from(scalar(item)?));
                }
            }
            other => {
                flags.push(OsString::from(&flag));
                flags.push(OsString::from(scalar(other)?));
            }
        }
    }
    rest.splice(position + 1..position + 1, flags);
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_with(file: &str, args: &[&str]) -> anyhow::Result<Vec<String>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("arbor.toml");
        std::fs::write(&path, file).expect("write");
        let mut all: Vec<OsString> = vec!["arbor".into()];
        all.extend(args.iter().map(OsString::from));
        all.push("--config".into());
        all.push(path.clone().into());
        Ok(expand(all)?
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn a_section_becomes_flags_that_the_command_line_overrides() {
        let file = r#"
            [sync]
            db = "/data"
            peer = ["http://a:1", "http://b:2"]
            follow = true
            json = false
            workers = 4
            [serve]
            listen = "127.0.0.1:7000"
        "#;
        let args = expand_with(file, &["sync", "--workers", "9"]).expect("expand");
        assert_eq!(
            args,
            [
                "arbor",
                "sync",
                "--db",
                "/data",
                "--follow",
                "--peer",
                "http://a:1",
                "--peer",
                "http://b:2",
                "--workers",
                "9"
            ]
        );
        let args = expand_with(file, &["sync", "--peer=http://c:3"]).expect("expand");
        assert!(
            !args.iter().any(|a| a == "http://a:1"),
            "command-line peers replace the list"
        );
    }

    #[test]
    fn bad_files_are_reported() {
        assert!(
            expand_with("[nope]\nx = 1", &["sync"]).is_err(),
            "unknown section"
        );
        assert!(expand_with("[sync\n", &["sync"]).is_err(), "syntax");
        assert!(
            expand_with("[sync]\ndb = {a = 1}", &["sync"]).is_err(),
            "table value"
        );
        let missing = expand(vec![
            "arbor".into(),
            "--config".into(),
            "/nonexistent".into(),
        ]);
        assert!(missing.is_err());
    }
}
