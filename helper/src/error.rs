//! The helper's one error type: every failure becomes one line for the user
//! and a non-zero exit, before any privilege is half-dropped.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// A step of the helper itself failed (what, and the system's reason).
    Sys(&'static str, io::Error),
    /// The channel to the frontend.
    Wire(shared::wire::WireError),
    /// The policy file is unusable.
    Policy(String),
    /// The request asks for something the policy does not allow, or is malformed.
    Refused(String),
    /// The run could not be set up (reported by the run's side, already worded).
    Setup(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys(what, e) => write!(f, "{what}: {e}"),
            Error::Wire(e) => write!(f, "request: {e}"),
            Error::Policy(msg) => write!(f, "policy: {msg}"),
            Error::Refused(msg) => write!(f, "refused: {msg}"),
            Error::Setup(msg) => write!(f, "{msg}"),
        }
    }
}

impl From<shared::wire::WireError> for Error {
    fn from(e: shared::wire::WireError) -> Self {
        Error::Wire(e)
    }
}

/// Attaches what the helper was doing to a system error.
pub trait Context<T> {
    fn context(self, what: &'static str) -> Result<T>;
}

impl<T, E: Into<io::Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &'static str) -> Result<T> {
        self.map_err(|e| Error::Sys(what, e.into()))
    }
}
