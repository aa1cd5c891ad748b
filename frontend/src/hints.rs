//! What a newcomer needs to act on a failure that the original's words
//! (kept as they were) do not explain: one line each, after the error or
//! the report, on stderr only (never in a report file or descriptor).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::stat::{fstat, SFlag};
use nix::unistd::{getgroups, getuid, Gid, Group, User};
use shared::Limit;

use crate::verdict::{LimitKind, Outcome, Verdict};

/// Why the helper could not be started: said when the error is a refused
/// permission, which its file mode (4754 root:GROUP) gives anybody
/// outside its group.
pub fn helper_permission(helper: &Path, err: &io::Error) -> Option<String> {
    if err.kind() != io::ErrorKind::PermissionDenied {
        return None;
    }
    let gid = Gid::from_raw(std::fs::metadata(helper).ok()?.gid());
    let group = Group::from_gid(gid).ok().flatten();
    let name = group.as_ref().map_or_else(|| gid.to_string(), |g| g.name.clone());
    let user = User::from_uid(getuid()).ok().flatten().map(|u| u.name);
    let listed = match (&group, &user) {
        (Some(g), Some(u)) => g.mem.contains(u),
        _ => false,
    };
    let ours = getgroups().is_ok_and(|groups| groups.contains(&gid));
    let user = user.unwrap_or_else(|| "USER".into());
    Some(if listed && !ours {
        format!(
            "you were added to group {name} after this session began: log in again \
             (or run `newgrp {name}`) to run safeexec"
        )
    } else {
        format!(
            "only root and members of group {name} may run safeexec: an administrator adds \
             you with `usermod -aG {name} {user}`, and the group counts after you log in again"
        )
    })
}

/// Why execve failed with "Permission denied": the program runs as a
/// throw-away uid, not as the caller.
pub fn exec_error(error: &str) -> Option<&'static str> {
    (error == "Permission denied").then_some(
        "the program runs as a throw-away user, not as you: it must be executable by \
             others (a script readable too), and so must every directory above it (chmod o+rx)",
    )
}

/// Whether descriptor 1 or 2 of ours is a regular file (the program then
/// writes to it directly, and `--fsize` applies).
pub fn stdout_or_stderr_is_a_file() -> bool {
    let is_file = |fd: std::os::fd::BorrowedFd<'_>| {
        fstat(fd)
            .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
    };
    is_file(io::stdout().as_fd()) || is_file(io::stderr().as_fd())
}

/// Why hello world ends in Output Limit Exceeded with a redirected stdout:
/// the default `--fsize 0` (the original's) forbids writing any regular
/// file, the one stdout was redirected to included.
///
/// `output_to_a_file` is asked last, only for such a verdict: a plain run
/// does not pay for it (what our descriptors are does not change meanwhile).
pub fn after_report(o: &Outcome, output_to_a_file: impl FnOnce() -> bool) -> Option<&'static str> {
    let fsize_0 = o.limits.get(Limit::Fsize) == Some(0);
    let relayed = o.limits.get(Limit::Output).is_some();
    (Verdict::of(o) == Verdict::OutputLimit
        && o.limit == Some(LimitKind::FileSize)
        && fsize_0
        && !relayed
        && output_to_a_file())
    .then_some(
        "stdout or stderr is a file, and with --fsize 0 (the default, as in the original) \
             the program may write no file at all: give --fsize KIB, or pipe its output",
    )
}
