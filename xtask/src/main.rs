//! Build-time chores for safeexec, run as `cargo run -p xtask -- gen DIR`.
//!
//! `gen DIR` writes, from the frontend's clap definition
//! (`safeexec::cli::command()`):
//!
//! - `DIR/safeexec.1`, the man page (clap_mangen);
//! - `DIR/safeexec.bash`, `DIR/_safeexec` and `DIR/safeexec.fish`, the
//!   bash, zsh and fish completions (clap_complete).
//!
//! Nothing generated is committed: the packaging scripts call this. The
//! output depends only on the source and, for the man page's date, on
//! `SOURCE_DATE_EPOCH` (no date at all when it is unset), so that packages
//! built from the same commit are identical.

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;
use roff::{bold, italic, roman, Roff};

const USAGE: &str = "usage: cargo run -p xtask -- gen DIR\n\
                     \n\
                     Writes safeexec.1 and the bash, zsh and fish completions into DIR.";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen", dir] => generate(Path::new(dir)),
        ["help"] | ["-h"] | ["--help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the man page and the completions into `dir`, which is created if
/// needed, and returns the paths written.
fn generate(dir: &Path) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();

    let man_path = dir.join("safeexec.1");
    let man = man_page(source_date()?).map_err(|e| format!("cannot render the man page: {e}"))?;
    write(&man_path, &man)?;
    written.push(man_path);

    for (shell, name) in
        [(Shell::Bash, "safeexec.bash"), (Shell::Zsh, "_safeexec"), (Shell::Fish, "safeexec.fish")]
    {
        let path = dir.join(name);
        write(&path, &completion(shell))?;
        written.push(path);
    }
    Ok(written)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The roff text of safeexec(1): clap_mangen's sections for everything the
/// clap definition knows, then EXIT STATUS (the definition's after-help),
/// FILES and SEE ALSO, which it does not.
fn man_page(date: Option<String>) -> io::Result<Vec<u8>> {
    let cmd = safeexec::cli::command();
    let exit_status = cmd.get_after_help().map(|help| help.to_string());
    let mut man = clap_mangen::Man::new(cmd).manual("User Commands");
    if let Some(date) = date {
        man = man.date(date);
    }
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;

    let mut extra = Roff::new();
    if let Some(text) = exit_status {
        let text = text.strip_prefix("Exit status: ").unwrap_or(&text);
        extra.control("SH", ["EXIT STATUS"]).text([roman(text)]);
    }
    extra
        .control("SH", ["FILES"])
        .control("TP", [])
        .text([italic("/usr/libexec/safeexec/safeexec-helper")])
        .text([roman(
            "The setuid root helper that performs the run. safeexec runs it at \
             the path fixed when it was built (the packages fix this one), or \
             else at ../libexec/safeexec/safeexec-helper relative to its own \
             executable. Only members of the group safeexec may execute it.",
        )])
        .control("TP", [])
        .text([italic("/etc/safeexec/policy")])
        .text([roman("The root-owned policy that bounds every limit a caller may ask for.")])
        .control("SH", ["SEE ALSO"])
        .text([bold("safeexec-helper"), roman("(8)")]);
    extra.to_writer(&mut out)?;

    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The completion script of `shell` for the `safeexec` binary.
fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = safeexec::cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "safeexec", &mut out);
    out
}

/// `SOURCE_DATE_EPOCH` as a YYYY-MM-DD date (UTC), if it is set.
fn source_date() -> Result<Option<String>, String> {
    match env::var("SOURCE_DATE_EPOCH") {
        Err(env::VarError::NotPresent) => Ok(None),
        Err(env::VarError::NotUnicode(_)) => Err("SOURCE_DATE_EPOCH is not a number".into()),
        Ok(s) if s.is_empty() => Ok(None),
        Ok(s) => {
            let secs: i64 =
                s.trim().parse().map_err(|_| format!("SOURCE_DATE_EPOCH '{s}' is not a number"))?;
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            Ok(Some(format!("{y:04}-{m:02}-{d:02}")))
        }
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by
/// counting 400-year eras of 146097 days, with years starting in March so
/// that the leap day falls at the end.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_epoch_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2000-02-29, a leap day of a year divisible by 400.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // 2024-12-31
        assert_eq!(civil_from_days(20_088), (2024, 12, 31));
    }

    #[test]
    fn man_page_names_the_options() {
        let man = String::from_utf8(man_page(Some("2024-01-02".into())).unwrap()).unwrap();
        assert!(man.contains(".TH safeexec 1"), "{man}");
        assert!(man.contains("2024\\-01\\-02") || man.contains("2024-01-02"));
        assert!(man.contains("chroot_dir"));
        assert!(man.contains(".SH \"EXIT STATUS\""), "{man}");
        assert!(man.contains("safeexec\\-helper"), "{man}");
    }

    #[test]
    fn completions_mention_the_binary() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(completion(shell)).unwrap();
            assert!(text.contains("safeexec"), "{shell}");
            assert!(text.contains("report_file"), "{shell}");
        }
    }
}
