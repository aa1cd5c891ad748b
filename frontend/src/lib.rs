//! safeexec, the unprivileged frontend: parses the command line, opens every
//! caller-named path as the caller, asks the setuid helper for one run,
//! gives the run a pty of its own in place of the caller's terminal,
//! relays (and, when it is limited, counts) the run's output, judges the
//! helper's raw facts and prints the report. Nothing here is privileged.
#![forbid(unsafe_code)]

pub mod cli;
pub mod env;
pub mod hints;
pub mod relay;
pub mod report;
pub mod run;
pub mod spawn;
pub mod terminal;
pub mod verdict;
