//! The helper's one error type. Every failure becomes one line for the user
//! and a non-zero exit, before any privilege is half-dropped (invariant 8).
//! The kinds tell the reader who can act: the caller (refused), the admin
//! (policy), the machine (failed), or us (internal).

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// The request, or what the caller arranged around the helper, is not
    /// allowed.
    Refused(String),
    /// The policy file is unusable.
    Policy(String),
    /// A step of the helper failed (what, and the system's reason).
    Failed(&'static str, io::Error),
    /// The run could not be set up (worded by the run's side).
    Setup(String),
    /// What should never happen: a bug, or the kernel not doing what it said.
    Internal(String),
    /// The channel to the frontend.
    Wire(shared::wire::WireError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(msg) => write!(f, "refused: {msg}"),
            Error::Policy(msg) => write!(f, "policy: {msg}"),
            Error::Failed(what, e) => write!(f, "{what}: {e}"),
            Error::Setup(msg) => write!(f, "{msg}"),
            Error::Internal(msg) => write!(f, "internal error: {msg}"),
            Error::Wire(e) => write!(f, "request: {e}"),
        }
    }
}

impl Error {
    /// A step of the run's set-up that failed: what, and the system's
    /// words for why (without io::Error's "(os error N)").
    pub fn setup(what: impl fmt::Display, e: impl Into<io::Error>) -> Error {
        let errno = e.into().raw_os_error().unwrap_or(0);
        Error::Setup(format!("{what}: {}", crate::sys::strerror(errno)))
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
        self.map_err(|e| Error::Failed(what, e.into()))
    }
}
