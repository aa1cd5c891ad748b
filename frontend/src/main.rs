#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use safeexec::cli::{command, Cli, ReportFormat};
use safeexec::report;
use safeexec::run::{self, RunError};
use safeexec::verdict::Verdict;

const EXIT_FAILED: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    if std::env::args_os().len() <= 1 {
        // The original prints its usage and fails when given nothing.
        let _ = command().write_help(&mut io::stderr());
        return ExitCode::from(EXIT_FAILED);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { 0 });
        }
    };
    match run_cli(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("safeexec: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run_cli(cli: &Cli) -> Result<u8, RunError> {
    let mut request = run::request_from(cli)?;
    let dirs = run::open_dirs(cli, &mut request)?;
    // Report destinations are opened before the run, as the caller, so a bad
    // path fails early and nothing of the caller's reaches the helper.
    let mut report_out: Option<Box<dyn Write>> = if cli.silent {
        None
    } else if let Some(path) = &cli.report_file {
        Some(Box::new(run::create_file("report file", path)?))
    } else if let Some(fd) = cli.report_fd {
        Some(Box::new(run::open_report_fd(fd)?))
    } else {
        Some(Box::new(io::stderr()))
    };
    let mut meta_out: Option<File> = match &cli.meta {
        Some(path) => Some(run::create_file("meta file", path)?),
        None => None,
    };

    let outcome = match run::run(&request, dirs) {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(meta) = meta_out.as_mut() {
                run::write_report(meta, &report::meta_failure(&e.to_string()));
            }
            return Err(e);
        }
    };

    if let Some(err) = &outcome.exec_error {
        eprintln!("safeexec: cannot execute {}: {err}", request.program);
    }
    if let Some(out) = report_out.as_mut() {
        let text = match (cli.json, cli.report_format) {
            (true, _) | (_, ReportFormat::Json) => report::json(&outcome),
            (false, ReportFormat::Text) => report::text(&outcome),
        };
        run::write_report(out.as_mut(), &text);
    }
    if let Some(meta) = meta_out.as_mut() {
        run::write_report(meta, &report::meta(&outcome));
    }
    Ok(if Verdict::of(&outcome) == Verdict::Ok { 0 } else { EXIT_FAILED })
}
