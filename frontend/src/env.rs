//! The target's environment, from `--env_vars`, `--env-file`, `--env` and
//! `--pass-env`. Values given with `--env` (or `--env_vars`) are on our
//! command line, which every user can read in /proc while the run lasts:
//! secrets come from a file (`--env-file`, read as the caller) or from our
//! own environment (`--pass-env`). No value is ever part of an error
//! message; a bad entry is named by its place (option, file and line).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use shared::wire::MAX_REQUEST_BYTES;

use crate::cli::{parse_env_vars, Cli, DEFAULT_ENV};
use crate::run::RunError;

/// The target's whole environment. In order, a later entry replacing an
/// earlier one of the same name: `--env_vars` (or, when no option asks
/// for any variable, only PATH), then each `--env-file`, then `--env`,
/// then `--pass-env`.
pub fn environment(cli: &Cli) -> Result<Vec<String>, RunError> {
    let asked = cli.env_vars.is_some()
        || !cli.env.is_empty()
        || !cli.env_file.is_empty()
        || !cli.pass_env.is_empty();
    let mut env = Env::default();
    match &cli.env_vars {
        // Each entry as it is, in order, as the original passed them: one
        // without `=` too (programs' getenv skips it; env(1) prints it).
        Some(vars) => env.0.extend(parse_env_vars(vars)),
        None if !asked => DEFAULT_ENV.iter().for_each(|entry| env.set(entry.to_string())),
        None => {}
    }
    for path in &cli.env_file {
        for entry in read_env_file(path)? {
            env.set(entry);
        }
    }
    for (i, entry) in cli.env.iter().enumerate() {
        env.set(checked(entry.clone(), || format!("--env entry {}", i + 1))?);
    }
    for name in &cli.pass_env {
        env.set(passed(name, std::env::var_os(name))?);
    }
    Ok(env.0)
}

/// Entries in order, one per name.
#[derive(Default)]
struct Env(Vec<String>);

impl Env {
    fn set(&mut self, entry: String) {
        fn name(entry: &str) -> &str {
            entry.split_once('=').map_or(entry, |(name, _)| name)
        }
        match self.0.iter_mut().find(|e| name(e) == name(&entry)) {
            Some(old) => *old = entry,
            None => self.0.push(entry),
        }
    }
}

/// An entry of `--env`: NAME=VALUE with a name, as the
/// helper requires. `place` names it in the error, the entry never does.
fn checked(entry: String, place: impl FnOnce() -> String) -> Result<String, RunError> {
    if entry.contains('=') && !entry.starts_with('=') {
        Ok(entry)
    } else {
        Err(RunError::Usage(format!("{} is not NAME=VALUE", place())))
    }
}

/// A variable of our own environment, passed on as NAME=VALUE.
fn passed(name: &str, value: Option<std::ffi::OsString>) -> Result<String, RunError> {
    if name.contains('=') {
        return Err(RunError::Usage("--pass-env takes a NAME, not NAME=VALUE".into()));
    }
    if !is_name(name) {
        return Err(RunError::Usage(format!("--pass-env {name}: not a variable name")));
    }
    let Some(value) = value else {
        return Err(RunError::Usage(format!(
            "--pass-env {name}: no such variable in safeexec's environment"
        )));
    };
    let Ok(value) = value.into_string() else {
        return Err(RunError::Usage(format!("--pass-env {name}: the value is not valid UTF-8")));
    };
    Ok(format!("{name}={value}"))
}

/// A portable variable name: letters, digits and _, not starting with a
/// digit.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Reads an env file as the caller (a pipe, as from `<(...)`, will do).
fn read_env_file(path: &Path) -> Result<Vec<String>, RunError> {
    let open_error = |err| RunError::Open { what: "env file", path: path.to_path_buf(), err };
    let mut text = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_REQUEST_BYTES as u64 + 1).read_to_end(&mut text))
        .map_err(open_error)?;
    let fail = |why: String| RunError::Usage(format!("env file {}: {why}", path.display()));
    if text.len() > MAX_REQUEST_BYTES {
        return Err(fail(format!("larger than {} KiB", MAX_REQUEST_BYTES / 1024)));
    }
    parse_env_file(&text).map_err(|e| fail(e.to_string()))
}

/// Why a line of an env file was refused: its number, never its text.
#[derive(Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub why: &'static str,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// The entries of an env file: one `NAME=VALUE` a line, the value being
/// the rest of the line as it is (no quotes, no escapes); blank lines and
/// lines whose first non-blank character is `#` are skipped; blanks before
/// the name are allowed.
pub fn parse_env_file(text: &[u8]) -> Result<Vec<String>, BadLine> {
    let mut entries = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let bad = |why| BadLine { line: i + 1, why };
        let line = std::str::from_utf8(line).map_err(|_| bad("not valid UTF-8"))?;
        let line = line.trim_start_matches([' ', '\t']);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let Some((name, _)) = line.split_once('=') else {
            return Err(bad("not NAME=VALUE"));
        };
        if !is_name(name) {
            return Err(bad(
                "not NAME=VALUE (a NAME is letters, digits and _, not starting with a digit)",
            ));
        }
        entries.push(line.to_string());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::fs;
    use std::path::PathBuf;

    fn env_of(args: &[&str]) -> Result<Vec<String>, String> {
        let mut argv = vec!["safeexec"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "/bin/true"]);
        environment(&Cli::try_parse_from(argv).unwrap()).map_err(|e| e.to_string())
    }

    fn scratch(name: &str, text: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("safeexec-env-{}-{name}", std::process::id()));
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn env_file_lines_comments_and_blanks() {
        let text = b"# a comment\n\nA=1\n  B=two words = and more \n\t# indented comment\nC=\n";
        assert_eq!(parse_env_file(text).unwrap(), ["A=1", "B=two words = and more ", "C="]);
        assert_eq!(parse_env_file(b"").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_malformed_env_file_line_is_named_by_its_number_not_its_text() {
        for (text, line) in [
            (&b"A=1\ns3cr3t\n"[..], 2),
            (b"=s3cr3t", 1),
            (b"A=1\n\nexport B=s3cr3t", 3),
            (b"1A=s3cr3t", 1),
            (b"A=s3\xffcr3t", 1),
            (b"A=s3\0cr3t", 1),
        ] {
            let err = parse_env_file(text).unwrap_err();
            assert_eq!(err.line, line);
            assert!(!err.to_string().contains("s3"), "{err}");
        }
    }

    #[test]
    fn the_default_is_path_only_when_no_variable_is_asked_for() {
        assert_eq!(env_of(&[]).unwrap(), DEFAULT_ENV);
        assert_eq!(env_of(&["--env", "A=1"]).unwrap(), ["A=1"]);
        assert_eq!(env_of(&["--env_vars", "PY"]).unwrap().len(), 3);
    }

    #[test]
    fn later_sources_replace_earlier_variables_of_the_same_name() {
        let file = scratch("order", b"A=file\nB=file\n");
        let file_arg = file.to_str().unwrap();
        let env = env_of(&[
            "--env_vars",
            "A=vars\\nC=vars",
            "--env-file",
            file_arg,
            "--env",
            "B=env",
            "--pass-env",
            "PATH",
        ])
        .unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(env, ["A=file", "C=vars", "B=env", &format!("PATH={path}")]);
        fs::remove_file(file).unwrap();
    }

    #[test]
    fn env_file_errors_name_the_file_and_line() {
        let file = scratch("bad", b"OK=1\nno equals sign s3cr3t\n");
        let err = env_of(&["--env-file", file.to_str().unwrap()]).unwrap_err();
        assert_eq!(err, format!("env file {}: line 2: not NAME=VALUE", file.display()));
        fs::remove_file(&file).unwrap();
        let err = env_of(&["--env-file", file.to_str().unwrap()]).unwrap_err();
        assert!(err.starts_with(&format!("cannot open env file {}: ", file.display())), "{err}");
    }

    #[test]
    fn pass_env_takes_the_value_from_our_environment_and_refuses_an_unset_one() {
        assert_eq!(passed("TOKEN", Some("s3cr3t".into())).unwrap(), "TOKEN=s3cr3t");
        let err = passed("TOKEN", None).unwrap_err().to_string();
        assert_eq!(err, "--pass-env TOKEN: no such variable in safeexec's environment");
        let err = passed("TOKEN=s3cr3t", None).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(passed("1X", Some("v".into())).is_err());
    }

    #[test]
    fn a_bad_env_entry_is_named_by_its_place_not_its_text() {
        let err = env_of(&["--env", "A=1", "--env", "s3cr3t"]).unwrap_err();
        assert_eq!(err, "--env entry 2 is not NAME=VALUE");
    }

    #[test]
    fn env_vars_entries_pass_as_they_are_as_in_the_original() {
        assert_eq!(env_of(&["--env_vars", "FOO"]).unwrap(), ["FOO"]);
        assert_eq!(env_of(&["--env_vars", "A=1\\nFOO\\nA=2"]).unwrap(), ["A=1", "FOO", "A=2"]);
        assert_eq!(env_of(&["--env_vars", ""]).unwrap(), Vec::<String>::new());
        assert_eq!(env_of(&["--env_vars", "FOO", "--env", "FOO=1"]).unwrap(), ["FOO=1"]);
    }
}
