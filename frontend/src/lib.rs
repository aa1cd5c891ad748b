//! safeexec, the unprivileged frontend: parses the command line, opens every
//! caller-named path as the caller, asks the setuid helper for one run,
//! relays and counts the run's output when it is limited, judges the
//! helper's raw facts and prints the report. Nothing here is privileged.
#![forbid(unsafe_code)]

pub mod cli;
pub mod env;
pub mod relay;
pub mod report;
pub mod run;
pub mod verdict;
