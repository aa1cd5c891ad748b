//! safeexec, the unprivileged frontend: parses the command line, opens every
//! caller-named path as the caller, asks the setuid helper for one run and
//! prints the report. Nothing here is privileged.
#![forbid(unsafe_code)]

pub mod cli;
pub mod report;
pub mod run;
