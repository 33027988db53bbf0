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
//! Each key names a flag of its subcommand (`key` → `--key`, underscores as dashes) and its value
//! becomes that flag's default in clap's parser, so the file's values pass through the same
//! parsing and checks as the flags, and clap's value sources settle precedence: a flag on the
//! command line replaces the file's value entirely (for a repeated flag such as `--peer`, the
//! file's whole list). An unknown section or key is an error naming it.

use std::{collections::BTreeMap, ffi::OsString, path::Path};

use anyhow::{Context, bail};
use clap::Command;

/// Removes `--config FILE` (or `--config=FILE`) from `args`, returning the file if given.
pub(crate) fn take_config_flag(args: &mut Vec<OsString>) -> anyhow::Result<Option<OsString>> {
    let Some(at) = args
        .iter()
        .position(|a| a == "--config" || a.to_string_lossy().starts_with("--config="))
    else {
        return Ok(None);
    };
    let flag = args.remove(at).to_string_lossy().into_owned();
    match flag.strip_prefix("--config=") {
        Some(file) => Ok(Some(file.into())),
        None if at < args.len() => Ok(Some(args.remove(at))),
        None => bail!("--config needs a file"),
    }
}

/// `command` with the values of the config file at `path` as the defaults of its subcommands'
/// flags.
pub(crate) fn with_file_defaults(mut command: Command, path: &Path) -> anyhow::Result<Command> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let file: BTreeMap<String, toml::Table> = toml::from_str(&text).with_context(|| {
        format!(
            "parsing config file {} (one table per subcommand)",
            path.display()
        )
    })?;
    for (section, table) in file {
        let Some(subcommand) = command.find_subcommand(&section) else {
            let known: Vec<_> = command.get_subcommands().map(Command::get_name).collect();
            bail!(
                "config file {}: unknown section [{section}] (expected one of {})",
                path.display(),
                known.join(", ")
            );
        };
        let mut defaults = Vec::new();
        for (key, value) in table {
            let long = key.replace('_', "-");
            let Some(arg) = subcommand
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
            else {
                bail!(
                    "config file {}: [{section}] has no flag --{long}",
                    path.display()
                );
            };
            let values = match value {
                toml::Value::Array(items) => items.into_iter().map(scalar).collect(),
                other => scalar(other).map(|v| vec![v]),
            }
            .with_context(|| format!("config file {}: [{section}] {key}", path.display()))?;
            defaults.push((arg.get_id().clone(), values));
        }
        command = command.mut_subcommand(section, |mut subcommand| {
            for (id, values) in defaults {
                subcommand =
                    subcommand.mut_arg(id, |arg| arg.required(false).default_values(values));
            }
            subcommand
        });
    }
    Ok(command)
}

/// A TOML scalar as the text a flag would carry.
fn scalar(value: toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!("expected a string, a number, a boolean or a list of them"),
    })
}

#[cfg(test)]
mod tests;
