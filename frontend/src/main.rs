#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use safeexec::cli::{command, Cli, ReportFormat};
use safeexec::run::{self, RunError};
use safeexec::verdict::Verdict;
use safeexec::{hints, report};

/// Not the C library's malloc: musl's (the packaged build) maps and unmaps
/// pages for small allocations as they come and go, so that parsing the
/// command line took some forty system calls and their page faults, about
/// 0.2 ms on the way to the helper (`bench/compare.py`); dlmalloc keeps
/// what it mapped for the next allocation.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

const EXIT_FAILED: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    if std::env::args_os().len() <= 1 {
        // The original prints its usage and fails when given nothing.
        let _ = command().write_help(&mut io::stderr());
        return ExitCode::from(EXIT_FAILED);
    }
    // First: the helper's start goes on beside our parse (`run::Helper`).
    // Dropped unused on every error below, it is withdrawn and waited for.
    let helper = (!asks_for_words(std::env::args_os())).then(run::Helper::start);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            drop(helper);
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::from(0);
            }
            // clap's words stay (they hold the usage): the object is last.
            if asks_for_json(std::env::args()) {
                let first = e.to_string();
                let line = first.lines().next().unwrap_or("bad command line");
                let line = line.strip_prefix("error: ").unwrap_or(line);
                run::write_report(&mut io::stderr(), &report::json_failure(line));
            }
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let json = cli.json || cli.report_format == ReportFormat::Json;
    let mut report_out = None;
    let mut meta_out = None;
    let helper = helper.unwrap_or_else(run::Helper::start);
    match run_cli(&cli, helper, &mut report_out, &mut meta_out) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(meta) = meta_out.as_mut() {
                run::write_report(meta, &report::meta_failure(&e.to_string()));
            }
            // One line on stderr: with --json there, the object (which
            // holds the error) instead of the words.
            let object = report::json_failure(&e.to_string());
            match report_out.as_mut() {
                _ if !json || cli.silent => run::say(format_args!("{e}")),
                Some(out) if !report_on_stderr(&cli) => {
                    run::say(format_args!("{e}"));
                    run::write_report(out, &object);
                }
                // Stderr, or the report file could not be opened.
                _ => run::write_report(&mut io::stderr(), &object),
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Whether the report goes to stderr (no report file, no other descriptor).
fn report_on_stderr(cli: &Cli) -> bool {
    cli.report_file.is_none() && cli.report_fd.is_none_or(|fd| fd == -1 || fd == 2)
}

/// Whether the command line asks for words only (help, the version): then
/// no helper is started. Only a saving: a helper started for nothing is
/// withdrawn.
fn asks_for_words(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let mut ours = args.skip(1).take_while(|a| a != "--exec" && a != "--");
    ours.any(|a| a == "-h" || a == "--help" || a == "-V" || a == "--version")
}

/// Whether a command line clap refused asked for a JSON report (looked for
/// before the program's own arguments).
fn asks_for_json(args: impl Iterator<Item = String>) -> bool {
    let ours: Vec<String> = args.skip(1).take_while(|a| a != "--exec" && a != "--").collect();
    ours.iter().enumerate().any(|(i, a)| {
        a == "--json"
            || a == "--report-format=json"
            || (a == "--report-format" && ours.get(i + 1).is_some_and(|v| v == "json"))
    })
}

fn run_cli(
    cli: &Cli,
    helper: run::Helper,
    report_out: &mut Option<Box<dyn Write>>,
    meta_out: &mut Option<File>,
) -> Result<u8, RunError> {
    // First, before we open anything of ours that could take its number.
    let report_fd = match (cli.silent, &cli.report_file, cli.report_fd) {
        (false, None, Some(fd)) if fd != -1 => {
            Some(run::open_report_fd(fd, &helper.descriptors())?)
        }
        _ => None,
    };
    let mut request = run::request_from(cli)?;
    let dirs = run::open_dirs(cli, &mut request)?;
    // Report destinations are opened before the run, as the caller, so a bad
    // path fails early and nothing of the caller's reaches the helper. As
    // the original, --silent still creates (or empties) the report file.
    let mut named = Vec::new();
    let report_file = match &cli.report_file {
        Some(path) => {
            let file = run::create_file("report file", path)?;
            named.push(run::Named::of("report file", path, &file)?);
            Some(file)
        }
        None => None,
    };
    *report_out = if cli.silent {
        None
    } else if let Some(file) = report_file {
        Some(Box::new(file))
    } else if let Some(fd) = report_fd {
        // -1: the original's default, stderr.
        Some(Box::new(fd))
    } else {
        Some(Box::new(io::stderr()))
    };
    if let Some(path) = &cli.meta {
        let file = run::create_file("meta file", path)?;
        named.push(run::Named::of("meta file", path, &file)?);
        *meta_out = Some(file);
    }

    let flags = run::StdFlags::save();
    let outcome = run::run(helper, &request, dirs);
    flags.restore();
    let outcome = outcome?;
    for file in &named {
        file.still_there()?;
    }

    if let Some(err) = &outcome.exec_error {
        match hints::exec_error(err) {
            Some(hint) => {
                run::say(format_args!("cannot execute {}: {err} ({hint})", request.program))
            }
            None => run::say(format_args!("cannot execute {}: {err}", request.program)),
        }
    }
    let json = cli.json || cli.report_format == ReportFormat::Json;
    if let Some(out) = report_out.as_mut() {
        let text = if json { report::json(&outcome) } else { report::text(&outcome) };
        run::write_report(out.as_mut(), &text);
        if let Some(hint) =
            hints::after_report(&outcome, hints::stdout_or_stderr_is_a_file).filter(|_| !json)
        {
            run::say(format_args!("hint: {hint}"));
        }
    }
    if let Some(meta) = meta_out.as_mut() {
        run::write_report(meta, &report::meta(&outcome));
    }
    Ok(if Verdict::of(&outcome) == Verdict::Ok { 0 } else { EXIT_FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        let mut all = vec!["safeexec".to_string()];
        all.extend(list.iter().map(|a| a.to_string()));
        all.into_iter()
    }

    #[test]
    fn json_is_asked_for_before_the_program_only() {
        assert!(asks_for_json(args(&["--json", "--cpu", "x"])));
        assert!(asks_for_json(args(&["--report-format", "json", "--bogus"])));
        assert!(asks_for_json(args(&["--report-format=json"])));
        assert!(!asks_for_json(args(&["--bogus", "--exec", "/bin/x", "--json"])));
        assert!(!asks_for_json(args(&["--report-format", "text"])));
    }

    #[test]
    fn words_are_asked_for_before_the_program_only() {
        let os = |list: &[&str]| args(list).map(std::ffi::OsString::from);
        assert!(asks_for_words(os(&["--cpu", "1", "--help"])));
        assert!(asks_for_words(os(&["-V"])));
        assert!(!asks_for_words(os(&["--exec", "/bin/ls", "--help"])));
        assert!(!asks_for_words(os(&["--", "prog", "-h"])));
        assert!(!asks_for_words(os(&["--cpu", "1", "--exec", "/bin/true"])));
    }
}
