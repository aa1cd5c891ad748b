//! Building the request, opening caller-named paths as the caller, and
//! talking to the helper: the request on a socket, with the program's
//! standard descriptors (the run's own pty in place of the caller's
//! terminal, `terminal`, and, with an output limit, the two pipes of the
//! output relay, `relay`) and the run's directories beside it; the reply
//! on a pipe.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{send, sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;
use shared::{
    wire, Limit, Limits, Reply, Request, Root, MAX_BIND, MAX_BIND_RW, REPLY_FD, REQUEST_FD,
};

use crate::cli::{Cli, RootChoice};
use crate::env;
use crate::relay::{Relay, ToHelper};
use crate::spawn::{dev_null, read_in, Child, Spawn, Stdio};
use crate::terminal::{Caller, Cooked, Keys, Pty, RawMode, Signals};
use crate::verdict::{self, Outcome};

/// Why safeexec could not run the program at all.
#[derive(Debug)]
pub enum RunError {
    Usage(String),
    Open {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// A file the caller named for writing is not a regular file.
    NotRegular {
        what: &'static str,
        path: PathBuf,
        kind: FileKind,
    },
    /// A report file below a directory that others may write, not sticky.
    Shared {
        what: &'static str,
        path: PathBuf,
        dir: PathBuf,
    },
    /// A report file below a directory, or through a symbolic link, that
    /// another user owns.
    Foreign {
        what: &'static str,
        path: PathBuf,
        dir: PathBuf,
        owner: u32,
        link: bool,
    },
    /// An existing report file of another user's in a sticky directory.
    Others {
        what: &'static str,
        path: PathBuf,
        owner: u32,
    },
    /// An existing report file that others may write (the runs' uids are
    /// others).
    OpenToOthers {
        what: &'static str,
        path: PathBuf,
    },
    /// A report file's path named another file after the run.
    Replaced {
        what: &'static str,
        path: PathBuf,
    },
    Helper {
        path: PathBuf,
        err: io::Error,
    },
    Channel(wire::WireError),
    /// The output relay could not be set up.
    Relay(io::Error),
    /// The run's pty, or the caller's terminal, could not be set up.
    Terminal(io::Error),
    /// The helper refused the run or failed to set it up.
    Refused(String),
    /// The helper ended without a reply.
    /// The helper's status, unless the caller ignores SIGCHLD (then the
    /// kernel reaps it and nobody learns it).
    NoReply(Option<ExitStatus>),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Usage(msg) => write!(f, "{msg}"),
            RunError::Open { what, path, err } => {
                write!(f, "cannot open {what} {}: {err}", path.display())
            }
            RunError::NotRegular { what, path, kind: FileKind::Link } => write!(
                f,
                "{what} {} is a symbolic link; safeexec does not follow links for report files",
                path.display()
            ),
            RunError::NotRegular { what, path, kind } => write!(
                f,
                "{what} {} is {kind}; safeexec writes reports to regular files only",
                path.display()
            ),
            RunError::Shared { what, path, dir } => write!(
                f,
                "{what} {} is below {}, which others may write (not sticky): a run could \
                 put a report of its own in its place; name a file in a directory runs cannot \
                 write",
                path.display(),
                dir.display()
            ),
            RunError::Foreign { what, path, dir, owner, link: false } => write!(
                f,
                "{what} {} is below {}, a directory another user owns (uid {owner}), who could \
                 put a report of its own in its place; name a file in a directory of yours or \
                 root's",
                path.display(),
                dir.display()
            ),
            RunError::Foreign { what, path, dir, owner, link: true } => write!(
                f,
                "{what} {} goes through {}, a symbolic link another user owns (uid {owner}), \
                 who could point it at another file; name a path without it",
                path.display(),
                dir.display()
            ),
            RunError::Others { what, path, owner } => write!(
                f,
                "{what} {} belongs to another user (uid {owner}) in a sticky directory, who \
                 could read or change the report: name a file of your own",
                path.display()
            ),
            RunError::OpenToOthers { what, path } => write!(
                f,
                "{what} {} may be written by others, the run included, which could add a \
                 forged report to it: make it writable by you only, or name a new file",
                path.display()
            ),
            RunError::Replaced { what, path } => write!(
                f,
                "{what} {} was replaced during the run, which could write its directory: \
                 no report was written there; name a file in a directory the run cannot write",
                path.display()
            ),
            RunError::Helper { path, err } => {
                write!(f, "cannot start the helper {}: {err}", path.display())?;
                match crate::hints::helper_permission(path, err) {
                    Some(hint) => write!(f, "; {hint}"),
                    None => Ok(()),
                }
            }
            RunError::Channel(e) => write!(f, "talking to the helper: {e}"),
            RunError::Relay(e) => write!(f, "cannot relay the output: {e}"),
            RunError::Terminal(e) => write!(f, "cannot give the run a terminal of its own: {e}"),
            RunError::Refused(msg) => write!(f, "{msg}"),
            RunError::NoReply(Some(status)) => {
                write!(f, "the helper ended ({status}) without a reply")
            }
            RunError::NoReply(None) => write!(f, "the helper ended without a reply"),
        }
    }
}

/// Where the installed helper is: the path fixed at build time
/// (`packaging/install.sh` and the packages fix it: finding this
/// executable costs a lookup in /proc, some 40 µs of every run), or else
/// `../libexec/safeexec/safeexec-helper` beside this executable.
pub fn helper_path() -> PathBuf {
    if let Some(fixed) = option_env!("SAFEEXEC_HELPER_PATH") {
        return PathBuf::from(fixed);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/safeexec"));
    let bindir = exe.parent().unwrap_or(Path::new("/usr/bin"));
    bindir.join("../libexec/safeexec/safeexec-helper")
}

/// The helper, started as the first thing we do (`Helper::start`), so
/// that its exec, its hardening and the run's network namespace go on
/// beside our parse of the command line. It has /dev/null as 0, 1 and 2,
/// a socket for the request (which brings the program's standard
/// descriptors and the run's directories with it: `shared::REQUEST_FD`)
/// and a pipe for the reply, and nothing else of ours. Dropped without a
/// request (a bad command line, a file that cannot be opened), it sees the
/// end of the socket, refuses, and is waited for: nothing is left behind.
pub struct Helper {
    path: PathBuf,
    started: Option<io::Result<Started>>,
}

struct Started {
    child: Child,
    request_tx: UnixStream,
    reply_rx: io::PipeReader,
}

impl Helper {
    /// Starts the helper. A failure is kept, to be told if a run is asked.
    pub fn start() -> Helper {
        let path = helper_path();
        // Before its exec, which would read a file not cached as single pages.
        read_in(&path);
        let started = Some(Helper::spawn(&path));
        Helper { path, started }
    }

    fn spawn(path: &Path) -> io::Result<Started> {
        let (request_tx, request_rx) = UnixStream::pair()?;
        let (reply_rx, reply_tx) = io::pipe()?;
        let mut spawn = Spawn::new(Stdio::Null, Stdio::Null, Stdio::Null);
        let collision = |_| io::Error::other("descriptor mapping collision");
        spawn.fd(request_rx.into(), REQUEST_FD).map_err(collision)?;
        spawn.fd(reply_tx.into(), REPLY_FD).map_err(collision)?;
        // Drops our copies of the helper's ends, started or not: a dead
        // helper then ends our send and our wait for a reply.
        let child = spawn.spawn(path)?;
        Ok(Started { child, request_tx, reply_rx })
    }

    /// The descriptors we hold of its channel.
    pub fn descriptors(&self) -> Vec<RawFd> {
        match &self.started {
            Some(Ok(started)) => vec![started.request_tx.as_raw_fd(), started.reply_rx.as_raw_fd()],
            _ => Vec::new(),
        }
    }

    /// The helper's pid, or the error of its spawn.
    fn pid(&mut self) -> Result<u32, RunError> {
        match &self.started {
            Some(Ok(started)) => Ok(started.child.id()),
            // Not started: `take` has only the error to give.
            _ => self.take().map(|started| started.child.id()),
        }
    }

    /// Its channel ends, to send the request on: no longer withdrawn when
    /// dropped.
    fn take(&mut self) -> Result<Started, RunError> {
        let err = match self.started.take() {
            Some(Ok(started)) => return Ok(started),
            Some(Err(err)) => err,
            None => io::Error::other("the helper is not there"),
        };
        Err(RunError::Helper { path: self.path.clone(), err })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(Ok(started)) = self.started.take() {
            drop(started.request_tx);
            // Its refusal goes into the pipe, unread: it must not find the
            // pipe closed and say it on its stderr instead (/dev/null
            // anyway). ECHILD: the caller ignores SIGCHLD.
            let _ = started.child.wait();
            drop(started.reply_rx);
        }
    }
}

/// The request the command line asks for. Ids are not part of it: `--gid`
/// and `--uidplus` are accepted and ignored.
pub fn request_from(cli: &Cli) -> Result<Request, RunError> {
    let command = if !cli.exec.is_empty() {
        if !cli.command.is_empty() {
            return Err(RunError::Usage(
                "give the program after --exec or after --, not both".into(),
            ));
        }
        &cli.exec
    } else {
        &cli.command
    };
    let Some(program) = command.first() else {
        return Err(RunError::Usage("no program given (--exec PROGRAM or -- PROGRAM)".into()));
    };
    let env = env::environment(cli)?;
    if cli.bind_rw.len() > MAX_BIND_RW as usize || cli.bind.len() > MAX_CALLER_BIND {
        return Err(RunError::Usage(format!(
            "at most {MAX_BIND_RW} --bind-rw and {MAX_CALLER_BIND} --bind directories"
        )));
    }
    Ok(Request {
        program: program.clone(),
        argv: command.clone(),
        env,
        limits: limits_from(cli),
        chroot: cli.chroot_dir.is_some(),
        exec_dir: cli.exec_dir.clone(),
        niceness: cli.niceness,
        share_net: cli.share_newnet,
        host_tmp: cli.host_tmp,
        // Set by `open_dirs`, from the directories it could open.
        bind_rw: 0,
        bind: 0,
        cwd: false,
        root: cli.root.map(|r| match r {
            RootChoice::Minimal => Root::Minimal,
            RootChoice::Host => Root::Host,
        }),
    })
}

/// Most `--bind` directories: the rest of `MAX_BIND` is for the program's
/// directory and exec_dir.
const MAX_CALLER_BIND: usize = MAX_BIND as usize - 2;

/// The places where a run has a private scratch tmpfs of its own instead
/// of the host's: a program straight in one of them is shown alone (its
/// directory would cover the run's own).
const SCRATCH_PLACES: &[&str] = &["/tmp", "/var/tmp", "/dev/shm", "/run"];

/// The directories of a run, opened as the caller (`open_dirs`).
#[derive(Default)]
pub struct Dirs {
    chroot: Option<OwnedFd>,
    bind_rw: Vec<OwnedFd>,
    bind: Vec<OwnedFd>,
    cwd: Option<OwnedFd>,
}

/// Opens, as the caller, every directory the run is given: the chroot
/// directory, the `--bind-rw` and `--bind` ones (an error if one cannot
/// be opened), and, outside a chroot, those the run is shown at their own
/// path where the caller can read them: the working directory, exec_dir
/// and the program's directory (the program alone when its directory is a
/// scratch place such as /tmp). Counts them in the request.
pub fn open_dirs(cli: &Cli, request: &mut Request) -> Result<Dirs, RunError> {
    let open_all = |what, dirs: &[PathBuf]| -> Result<Vec<OwnedFd>, RunError> {
        dirs.iter().map(|d| open_dir(what, d)).collect()
    };
    let mut dirs = Dirs {
        chroot: cli.chroot_dir.as_deref().map(open_jail).transpose()?,
        bind_rw: open_all("writable directory", &cli.bind_rw)?,
        bind: open_all("directory to show", &cli.bind)?,
        cwd: None,
    };
    if dirs.chroot.is_none() {
        dirs.cwd = open_dir("working directory", Path::new(".")).ok();
        for path in implied_paths(&request.program, request.exec_dir.as_deref()) {
            if let Ok(file) = File::open(&path) {
                dirs.bind.push(OwnedFd::from(file));
            }
        }
    }
    request.bind_rw = dirs.bind_rw.len() as u32;
    request.bind = dirs.bind.len() as u32;
    request.cwd = dirs.cwd.is_some();
    Ok(dirs)
}

/// The paths the run needs to see besides the working directory: exec_dir
/// and the program's directory (or, straight in a scratch place, the
/// program), as the caller's working directory resolves them. Not /, /proc
/// or /dev, which the run has of its own.
fn implied_paths(program: &str, exec_dir: Option<&str>) -> Vec<PathBuf> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    let start = exec_dir.map_or(cwd.clone(), |d| cwd.join(d));
    let mut paths = Vec::new();
    if exec_dir.is_some() {
        paths.extend(fs::canonicalize(&start).ok());
    }
    if program.contains('/') {
        let program = start.join(program);
        let dir = program.parent().and_then(|d| fs::canonicalize(d).ok());
        if let (Some(dir), Some(name)) = (dir, program.file_name()) {
            let alone = SCRATCH_PLACES.iter().any(|p| dir == Path::new(p));
            paths.push(if alone { dir.join(name) } else { dir });
        }
    }
    let own = |p: &Path| p == Path::new("/") || p.starts_with("/proc") || p.starts_with("/dev");
    // getcwd's answer is already the canonical path (the kernel builds it
    // from the directory itself): no realpath, and no lookup of each of its
    // components, on every run.
    paths.retain(|p| !own(p) && *p != cwd);
    paths.dedup();
    paths
}

/// The limits the command line asks for, every one of them set (only
/// `--rss` and `--output` may be absent).
pub fn limits_from(cli: &Cli) -> Limits {
    Limits::default()
        .with(Limit::Cpu, Some(cli.cpu))
        .with(Limit::Wall, Some(cli.clock))
        .with(Limit::Grace, Some(cli.grace))
        .with(Limit::Mem, Some(cli.mem))
        .with(Limit::Rss, cli.rss)
        .with(Limit::Stack, Some(cli.stack))
        .with(Limit::Core, Some(cli.core))
        .with(Limit::Fsize, Some(cli.fsize))
        .with(Limit::Nproc, Some(cli.nproc))
        .with(Limit::Nfile, Some(cli.nfile))
        .with(Limit::Output, cli.output.map(|kib| kib.saturating_mul(1024)))
}

/// Opens a file the caller names for writing (`--report_file`, `--meta`),
/// as the caller, creating it (mode 0644, less the umask) if absent. It
/// must be a regular file, reached without following a link at its last
/// component: in a sticky directory such as /tmp, another user's link
/// there would have us overwrite a file of the caller's, and a FIFO there
/// would hang us. So: O_NOFOLLOW, O_NONBLOCK (a FIFO does not block the
/// open) and no O_TRUNC; then fstat, and only for a regular file the
/// truncation and blocking writes.
pub fn create_file(what: &'static str, path: &Path) -> Result<File, RunError> {
    let not_regular =
        |kind: FileKind| RunError::NotRegular { what, path: path.to_path_buf(), kind };
    let in_sticky_dir = check_the_way(what, path)?;
    // Told before opening, so that a device is not even opened (and after,
    // from the descriptor, for a path changed meanwhile).
    if let Ok(meta) = fs::symlink_metadata(path) {
        if let Some(kind) = not_a_regular_file(meta.file_type()) {
            return Err(not_regular(kind));
        }
    }
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|err| {
            // ELOOP for a link (dangling or not), ENXIO for a FIFO without
            // a reader or a socket, EISDIR: the path changed since it was
            // looked at; say what it is now if it is one of those.
            match fs::symlink_metadata(path).ok().and_then(|m| not_a_regular_file(m.file_type())) {
                Some(kind) => not_regular(kind),
                None => RunError::Open { what, path: path.to_path_buf(), err },
            }
        })?;
    let open_error = |err: io::Error| RunError::Open { what, path: path.to_path_buf(), err };
    let meta = file.metadata().map_err(open_error)?;
    if let Some(kind) = not_a_regular_file(meta.file_type()) {
        return Err(not_regular(kind));
    }
    // Another user's file in a shared drop directory such as /tmp was put
    // there for us to write into: its owner reads the report, or changes
    // it after us (the kernel refuses the open itself where the sysctl
    // fs.protected_regular is set). Before the truncation: left untouched.
    if meta.uid() != nix::unistd::geteuid().as_raw() && in_sticky_dir {
        return Err(RunError::Others { what, path: path.to_path_buf(), owner: meta.uid() });
    }
    // The runs' uids are others to it: one shown where it lies could write
    // a forged report after ours, a tail a reader that keeps the last of
    // each key takes (a review of the eleventh round). Before the
    // truncation: left untouched.
    if meta.mode() & 0o002 != 0 {
        return Err(RunError::OpenToOthers { what, path: path.to_path_buf() });
    }
    file.set_len(0).map_err(open_error)?;
    let own = fcntl(&file, FcntlArg::F_GETFL).map_err(|e| open_error(e.into()))?;
    let blocking = OFlag::from_bits_truncate(own) - OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(blocking)).map_err(|e| open_error(e.into()))?;
    Ok(file)
}

/// Refuses a report path below a directory that others may write and
/// that is not sticky: the sandbox uids are others to every file of the
/// host, so a run given it (the caller's own working directory, a
/// `--bind-rw` one, the policy's `writable_dirs`) could rename the report
/// file, or a directory above it, and put its own in its place, also after
/// our look once the run is over, for another run may still be alive (an
/// independent review forged a report so). A directory on the way that
/// another user owns, sticky or not, where that user or anyone but root,
/// the caller and the owner of the directory above could have made it (in
/// /tmp, say, before the caller), is refused: its owner may rename
/// anything in it (a review of the tenth round squatted a judge's report
/// directory, read the report and put an "OK" of its own in its place).
/// So is another user's symbolic link in such a place: another user's
/// link in a sticky directory sent the report into another file of the
/// caller's (where fs.protected_symlinks is 0). One that root or the
/// caller put where only they may write (a jail of a service account's,
/// as CS Circles keeps its reports in), and what that account made within
/// it, is what they arranged, and stands. The way is walked as the kernel
/// takes it, each link met followed by hand, so that every link and every
/// directory the open will pass is looked at; a relative path whose
/// directory cannot be told (the working directory removed) is refused,
/// not passed unlooked at (a fourth review's way around the look).
/// Returns whether the directory the file is in is sticky (such as /tmp),
/// where anyone may leave a file under any name.
fn check_the_way(what: &'static str, path: &Path) -> Result<bool, RunError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| RunError::Open {
            what,
            path: path.to_path_buf(),
            err: io::Error::new(
                e.kind(),
                format!("the working directory cannot be named ({e}): give an absolute path"),
            ),
        })?;
        cwd.join(path)
    };
    let Some(dir) = absolute.parent() else { return Ok(false) };
    let me = nix::unistd::geteuid().as_raw();
    let foreign = |owner| owner != 0 && owner != me;
    // Whether `owner`'s entry in directory `d` may have been put there by
    // someone else than root, the caller, or the directory's own owner
    // (who may replace anything in it anyway): squatted, as a directory
    // made first in /tmp, not arranged by those who hold the way.
    let placed_by_others = |d: &Path, owner: u32| {
        fs::metadata(d).is_ok_and(|meta| {
            meta.mode() & 0o002 != 0 || (foreign(meta.uid()) && meta.uid() != owner)
        })
    };
    // The way as the kernel will take it: one component at a time from /,
    // each symbolic link met read and followed by hand, so that a link
    // reached through another (the caller's own link to another user's: a
    // second review) is looked at too. Something missing on the way is
    // left to the open, which fails there.
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = parts(dir).collect();
    let mut here = PathBuf::from("/");
    // The mode of `here`, where the walk saw it.
    let mut here_mode = None;
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            here.pop();
            here_mode = None;
            continue;
        }
        let next = here.join(&part);
        let Ok(meta) = fs::symlink_metadata(&next) else { return Ok(false) };
        let (mode, owner) = (meta.mode(), meta.uid());
        let squatted = foreign(owner) && placed_by_others(&here, owner);
        let refuse = |link| {
            let (dir, path) = (next.clone(), path.to_path_buf());
            Err(RunError::Foreign { what, path, dir, owner, link })
        };
        if meta.file_type().is_symlink() {
            if squatted {
                return refuse(true);
            }
            links += 1;
            let Ok(target) = fs::read_link(&next) else { return Ok(false) };
            if links > MAX_LINKS {
                return Ok(false); // the open fails with ELOOP
            }
            if target.is_absolute() {
                here = PathBuf::from("/");
                here_mode = None;
            }
            for part in parts(&target).collect::<Vec<_>>().into_iter().rev() {
                todo.push_front(part);
            }
            continue;
        }
        if meta.is_dir() && mode & 0o1000 == 0 && mode & 0o002 != 0 {
            return Err(RunError::Shared { what, path: path.to_path_buf(), dir: next });
        }
        if squatted {
            return refuse(false);
        }
        here = next;
        here_mode = Some(mode);
    }
    let mode = here_mode.or_else(|| fs::metadata(&here).ok().map(|meta| meta.mode()));
    Ok(mode.is_some_and(|mode| mode & 0o1000 != 0))
}

/// As many symbolic links as the kernel follows in one path lookup.
const MAX_LINKS: u32 = 40;

/// The names and `..` of a path, without its root and `.`.
fn parts(path: &Path) -> impl Iterator<Item = std::ffi::OsString> + '_ {
    use std::path::Component;
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    })
}

/// A report file as `create_file` opened it before the run: its path and
/// the file the path named then.
pub struct Named {
    what: &'static str,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Named {
    pub fn of(what: &'static str, path: &Path, file: &File) -> Result<Named, RunError> {
        let open_error = |err| RunError::Open { what, path: path.to_path_buf(), err };
        let meta = file.metadata().map_err(open_error)?;
        Ok(Named { what, path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() })
    }

    /// After the run, before the report is written: the path still names
    /// the file opened. A run that came to be able to write the file's
    /// directory (made writable by others during it) could have put a file
    /// of its own in its place, which the caller would read as the report
    /// (an independent review's); nothing of this run is alive by now to
    /// do it after this look, and a directory others may write from the
    /// start, where another run could, is refused before (`check_the_way`).
    pub fn still_there(&self) -> Result<(), RunError> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == (self.dev, self.ino) => Ok(()),
            _ => Err(RunError::Replaced { what: self.what, path: self.path.clone() }),
        }
    }
}

/// What a file that is not a regular file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Link,
    Directory,
    Fifo,
    Socket,
    Device,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Link => "a symbolic link",
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::Device => "a device",
        })
    }
}

/// What a file is, unless it is a regular file.
fn not_a_regular_file(kind: fs::FileType) -> Option<FileKind> {
    if kind.is_file() {
        None
    } else if kind.is_symlink() {
        Some(FileKind::Link)
    } else if kind.is_dir() {
        Some(FileKind::Directory)
    } else if kind.is_fifo() {
        Some(FileKind::Fifo)
    } else if kind.is_socket() {
        Some(FileKind::Socket)
    } else {
        Some(FileKind::Device)
    }
}

/// The report's inherited descriptor (`--report_fd N`). This crate has no
/// unsafe code, so it cannot write to a descriptor it only knows by number:
///
/// - 1 and 2 are duplicated from std's own handles (same open file, same
///   offset);
/// - a socket is written with send(2), which takes the number;
/// - anything else (a regular file, a pipe, a FIFO, a terminal) is reopened
///   through `/proc/self/fd/N`: a regular file at the descriptor's offset,
///   or appending if it was opened to append.
///
/// What cannot work that way: reopening checks the permissions of the file
/// or pipe anew, so one that the caller cannot open itself (say, a pipe a
/// parent running as another user made and passed down) is refused, with a
/// one-line error before the run; and writing through a reopened regular
/// file does not move the original descriptor's offset. `/proc` must be
/// mounted for descriptors other than 1 and 2.
pub enum ReportFd {
    File(File),
    Socket(RawFd),
}

/// `ours`: the descriptors we opened ourselves (the helper's channel). A
/// number the caller did not have open may be one of them by now, which
/// the kernel gave us as the lowest free: it is no descriptor of the
/// caller's (a review of the tenth round had the report go to our own
/// request socket, lost, and to our directories, refused as read-only).
pub fn open_report_fd(fd: i32, ours: &[RawFd]) -> Result<ReportFd, RunError> {
    let not_open = || RunError::Usage(format!("--report_fd {fd} is not an open descriptor"));
    let std_handle = match fd {
        1 => Some(io::stdout().as_fd().try_clone_to_owned()),
        2 => Some(io::stderr().as_fd().try_clone_to_owned()),
        _ if fd < 0 || ours.contains(&fd) => return Err(not_open()),
        _ => None,
    };
    if let Some(dup) = std_handle {
        // EBADF: it is closed.
        return dup.map(|fd| ReportFd::File(fd.into())).map_err(|_| not_open());
    }

    let link = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let cannot = |err: io::Error| RunError::Usage(format!("cannot reopen --report_fd {fd}: {err}"));
    let meta = match fs::metadata(&link) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if Path::new("/proc/self/fd").is_dir() {
                return Err(not_open());
            }
            return Err(RunError::Usage(format!(
                "cannot use --report_fd {fd}: /proc is not mounted"
            )));
        }
        Err(e) => return Err(cannot(e)),
    };
    let (pos, flags) =
        fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).map_err(cannot).and_then(|text| {
            parse_fdinfo(&text).ok_or_else(|| {
                RunError::Usage(format!("cannot read the flags of --report_fd {fd}"))
            })
        })?;
    let flags = OFlag::from_bits_truncate(flags);
    if flags & OFlag::O_ACCMODE == OFlag::O_RDONLY {
        return Err(RunError::Usage(format!("--report_fd {fd} is open for reading only")));
    }
    if meta.file_type().is_socket() {
        return Ok(ReportFd::Socket(fd));
    }
    // O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of blocking;
    // it is cleared right after. O_NOCTTY: a terminal does not become ours.
    let mut file = OpenOptions::new()
        .write(true)
        .append(flags.contains(OFlag::O_APPEND))
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(&link)
        .map_err(|err| {
            let hint = if err.kind() == io::ErrorKind::PermissionDenied {
                "; a descriptor other than 1 or 2 is reopened, which needs permission \
                 to open its file or pipe (use --report_file)"
            } else {
                ""
            };
            RunError::Usage(format!("cannot reopen --report_fd {fd} for writing: {err}{hint}"))
        })?;
    let own = fcntl(&file, FcntlArg::F_GETFL).map_err(|e| cannot(e.into()))?;
    let blocking = OFlag::from_bits_truncate(own) - OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(blocking)).map_err(|e| cannot(e.into()))?;
    if meta.is_file() && !flags.contains(OFlag::O_APPEND) {
        file.seek(SeekFrom::Start(pos)).map_err(cannot)?;
    }
    Ok(ReportFd::File(file))
}

/// `pos:` and `flags:` (octal) of a `/proc/self/fdinfo/N`.
fn parse_fdinfo(text: &str) -> Option<(u64, i32)> {
    let field = |name: &str| text.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
    let pos = field("pos:")?.parse().ok()?;
    let flags = i32::from_str_radix(field("flags:")?, 8).ok()?;
    Some((pos, flags))
}

impl Write for ReportFd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ReportFd::File(file) => file.write(buf),
            ReportFd::Socket(fd) => Ok(send(*fd, buf, MsgFlags::MSG_NOSIGNAL)?),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ReportFd::File(file) => file.flush(),
            ReportFd::Socket(_) => Ok(()),
        }
    }
}

/// Opens a directory as the caller, for reading: the helper only ever
/// receives the descriptor, so a directory the caller cannot read cannot
/// be used.
fn open_dir(what: &'static str, dir: &Path) -> Result<OwnedFd, RunError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_DIRECTORY.bits())
        .open(dir)
        .map(OwnedFd::from)
        .map_err(|err| RunError::Open { what, path: dir.to_path_buf(), err })
}

/// Opens the chroot directory as the caller, who must be able to enter it
/// (search permission), as with the original tool's chdir, not read it:
/// the caller of a jail built by a service account may only enter its top
/// directory (mode 0751 in CS Circles' python3jail). The helper receives
/// the descriptor, so a directory the caller cannot enter cannot be used.
fn open_jail(dir: &Path) -> Result<OwnedFd, RunError> {
    let what = "chroot directory";
    let open_error = |err: Errno| RunError::Open { what, path: dir.to_path_buf(), err: err.into() };
    let fd =
        nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(open_error)?;
    // Looking "." up in it needs search permission, as entering it does.
    nix::fcntl::openat(
        &fd,
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_error)
}

/// Runs the request through the helper and judges what it reports.
///
/// The program's descriptors 0, 1 and 2 are ours, except that a terminal of
/// ours is replaced by the run's own pty and, with an output limit, stdout
/// and stderr by the relay's pipes (`relay`, `terminal`); they go to the
/// helper with the request, as the directories do. With a pty whose keys
/// are ours, the caller's terminal is raw from before the request is sent
/// until the relay has written the run's last byte; every return from
/// here restores it.
///
/// The order at the end: the reply, then the relay (it ends with the run),
/// then the caller's terminal settings, then the wait for the helper
/// (unless it reported the run's end), so
/// that neither the relay's stop order nor a forwarded signal can ever
/// reach a pid that was reaped and reused.
///
/// Until the request is sent, an error drops `helper`, which is withdrawn
/// and waited for.
pub fn run(mut helper: Helper, request: &Request, dirs: Dirs) -> Result<Outcome, RunError> {
    let path = helper.path.clone();
    let helper_error = |err| RunError::Helper { path: path.clone(), err };

    let caller = Caller::now();
    let to_helper = Arc::new(ToHelper::default());
    to_helper.helper_started(helper.pid()?);
    let (pty, cooked) = match caller.needs_pty() {
        true => own_terminal(&caller, &to_helper).map(|(pty, cooked)| (Some(pty), cooked))?,
        false => (None, Cooked(None)),
    };
    let limit = request.limits.get(Limit::Output);
    let (relay, stdio) =
        Relay::start(&caller, limit, pty, Arc::clone(&to_helper)).map_err(RunError::Relay)?;

    // In `Request::passed_fds`' order. Opened as the caller: the helper
    // checks the directories again.
    let mut passed: Vec<OwnedFd> = Vec::with_capacity(request.passed_fds());
    for (i, stdio) in [stdio.stdin, stdio.stdout, stdio.stderr].into_iter().enumerate() {
        passed.push(match stdio {
            Stdio::Inherit => standard(i).map_err(helper_error)?,
            Stdio::Null => dev_null(i == 0).map_err(helper_error)?.into(),
            Stdio::Fd(fd) => fd,
        });
    }
    passed.extend(dirs.chroot);
    passed.extend(dirs.cwd);
    passed.extend(dirs.bind_rw);
    passed.extend(dirs.bind);

    // Sent whole, then our copies are closed (the relay's write ends, the
    // pty's slave): else the relay would wait for the end of its pipes and
    // pty for ever. A helper that refused before reading it has replied.
    let Started { child, request_tx, mut reply_rx } = helper.take()?;
    let sent =
        wire::encode_request(request).and_then(|frame| send_request(request_tx, &frame, &passed));
    drop(passed);

    let reply = wire::read_reply(&mut reply_rx);
    let relayed = relay.map(Relay::finish);
    drop(cooked);
    // A report of the run's end is final: nothing of the run is alive, and
    // the helper, which outlasts init's clean-up of the run's cgroups and
    // namespaces (about a millisecond), is waited for only where no one
    // else would reap it (`leave_or_reap`). Left unreaped, its pid is not
    // reused while we live. Any other end is waited for.
    // ECHILD: the caller ignores SIGCHLD, so the kernel reaped the helper;
    // its reply, already read, still stands.
    let status = match &reply {
        Ok(Reply::Finished(_)) => None,
        _ => match child.wait() {
            Ok(status) => Some(status),
            Err(err) if err.raw_os_error() == Some(Errno::ECHILD as i32) => None,
            Err(err) => return Err(helper_error(err)),
        },
    };
    // Counted bytes matter only against a limit.
    let relayed = relayed.filter(|_| request.limits.get(Limit::Output).is_some());
    match reply {
        Ok(Reply::Finished(facts)) => {
            let mut outcome = verdict::judge(facts.into(), relayed);
            if outcome.cgroup.is_none() {
                outcome.cgroup_absent = Some(why_no_cgroup(&read_mountinfo()));
            }
            // The helper's clean-up waits for this.
            drop(reply_rx);
            leave_or_reap(&child);
            Ok(outcome)
        }
        Ok(Reply::Failed(msg)) => Err(RunError::Refused(msg)),
        Err(wire::WireError::Truncated) => Err(RunError::NoReply(status)),
        Err(e) => {
            // A failed send usually explains a missing reply.
            sent.map_err(RunError::Channel)?;
            Err(RunError::Channel(e))
        }
    }
}

/// Leaves the helper, which has reported the run's end, to finish its
/// clean-up on its own where whoever takes our orphans reaps it: in the
/// host's pid namespace, the machine's init. Elsewhere (a container) the
/// first process may be any program, and one that reaps nothing (`sleep
/// infinity`, a judge's server) kept a zombie helper per run, each counted
/// against the caller's processes until the caller could start none (a
/// review of the fourteenth round): there it is waited for. An error (the
/// caller ignores SIGCHLD: the kernel reaped it) changes nothing of the
/// run's report.
fn leave_or_reap(helper: &Child) {
    // The inode number of the kernel's first pid namespace is fixed.
    const HOSTS_PID_NAMESPACE: &str = "pid:[4026531836]";
    let ours = fs::read_link("/proc/self/ns/pid");
    if !ours.is_ok_and(|link| link.as_os_str() == HOSTS_PID_NAMESPACE) {
        let _ = helper.wait();
    }
}

/// A copy of our descriptor 0, 1 or 2.
fn standard(i: usize) -> io::Result<OwnedFd> {
    match i {
        0 => io::stdin().as_fd().try_clone_to_owned(),
        1 => io::stdout().as_fd().try_clone_to_owned(),
        _ => io::stderr().as_fd().try_clone_to_owned(),
    }
}

/// Sends the request's frame with `fds` beside its first bytes, then ends
/// the stream (the helper reads to its end) by closing the socket. Also
/// the tests' way to talk to the helper directly.
pub fn send_request(
    socket: UnixStream,
    frame: &[u8],
    fds: &[OwnedFd],
) -> Result<(), wire::WireError> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let sent = loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(frame)],
            &rights,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => {}
            other => break other.map_err(|e| wire::WireError::Io(e.into()))?,
        }
    };
    // A frame larger than the socket takes at once goes on without
    // descriptors (they came with its first bytes).
    (&socket).write_all(&frame[sent..]).map_err(wire::WireError::Io)
}

/// This process's mounts; empty if /proc is not there.
fn read_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// Why the helper gave a run no cgroup, as far as the caller can see it:
/// the helper runs in our mount namespace, so it saw these same mounts. A
/// container's cgroup file systems are read-only unless it is privileged.
pub fn why_no_cgroup(mountinfo: &str) -> &'static str {
    // `ID PARENT DEV ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`
    let cgroup_mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let fstype = fs.split(' ').next()?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| mount.split(' ').nth(5))?
        })
        .collect();
    if cgroup_mounts.is_empty() {
        "no cgroup file system is mounted"
    } else if cgroup_mounts.iter().all(|opts| opts.split(',').any(|o| o == "ro")) {
        "the cgroup file systems are mounted read-only (as in a container that is not privileged)"
    } else {
        "the helper made none: the policy's cgroup or max_memory_cgroups, or no controller in safeexec's cgroup subtree (safeexec-helper(8))"
    }
}

/// The run's own pty, with the caller's terminal raw if its keys go raw,
/// and the thread that handles our signals meanwhile (`terminal`).
fn own_terminal(caller: &Caller, to_helper: &Arc<ToHelper>) -> Result<(Pty, Cooked), RunError> {
    let model = caller.model().map_err(RunError::Terminal)?;
    let pty = Pty::open(model.as_ref().map(File::as_fd)).map_err(RunError::Terminal)?;
    let raw_keys = caller.keyboard == Some(Keys::Raw);
    if caller.keyboard == Some(Keys::Cooked) {
        pty.echo_off().map_err(RunError::Terminal)?;
    }
    // Before any thread starts: they all inherit the blocked signals.
    let signals = Signals::block(raw_keys).map_err(RunError::Terminal)?;
    let window = match model {
        Some(tty) => Some((tty, pty.master.try_clone().map_err(RunError::Terminal)?)),
        None => None,
    };
    let raw = match raw_keys {
        true => Some(RawMode::enter(dup(io::stdin().as_fd())?).map_err(RunError::Terminal)?),
        false => None,
    };
    let cooked = Cooked(raw.clone());
    signals.watch(raw, window, Arc::clone(to_helper)).map_err(RunError::Terminal)?;
    Ok((pty, cooked))
}

/// A descriptor of ours, as a File of its own.
fn dup(fd: BorrowedFd<'_>) -> Result<File, RunError> {
    fd.try_clone_to_owned().map(File::from).map_err(RunError::Terminal)
}

/// Writes a report, ignoring a reader that went away.
pub fn write_report(out: &mut dyn Write, text: &str) {
    // As the relay writes: a sink left non-blocking is waited on, not
    // given up (the report would be lost behind what the run wrote there).
    let _ = crate::relay::write_out(out, text.as_bytes());
    let _ = out.flush();
}

/// One line of ours on stderr, "safeexec: LINE". Never a panic (as
/// `eprintln!` makes when stderr fails, and the release build aborts on
/// one, with a core file: a run that left our shared stderr non-blocking
/// and full did that, a review of the tenth round).
/// Its control characters are shown escaped (`\x1b`): a name the caller
/// passed on from a submission (the program's, a directory's) must not
/// send an escape sequence to the caller's terminal, nor start a line of
/// its own (a suspicion of a review of the fourteenth round).
pub fn say(line: std::fmt::Arguments<'_>) {
    write_report(&mut io::stderr(), &format!("safeexec: {}\n", escape_controls(&line.to_string())));
}

fn escape_controls(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        match c.is_control() {
            true => shown.push_str(&format!("\\x{:02x}", u32::from(c))),
            false => shown.push(c),
        }
    }
    shown
}

/// The file status flags of our stdin, stdout and stderr as the caller gave
/// them. A run that has them shares their open file descriptions, and may
/// change those flags: O_NONBLOCK, so that our report fails with EAGAIN
/// behind what it wrote, or that the caller's next read of its stdin finds
/// nothing and takes that for its end (a judge skipped its later tests so:
/// a review of the eleventh round); O_DIRECT, so that the report fails
/// with EINVAL; O_APPEND cleared, so that the report lands before a forged
/// one it wrote further on. `restore` puts them back after the run.
pub struct StdFlags([Option<OFlag>; 3]);

impl StdFlags {
    pub fn save() -> StdFlags {
        let flags =
            |fd: BorrowedFd<'_>| fcntl(fd, FcntlArg::F_GETFL).ok().map(OFlag::from_bits_truncate);
        StdFlags([
            flags(io::stdin().as_fd()),
            flags(io::stdout().as_fd()),
            flags(io::stderr().as_fd()),
        ])
    }

    pub fn restore(&self) {
        // Every flag F_SETFL changes: O_DIRECT too, under which the report's
        // unaligned write failed (EINVAL) and was lost behind a forged one
        // (a review), and O_ASYNC and O_NOATIME.
        let settable = OFlag::O_APPEND
            | OFlag::O_NONBLOCK
            | OFlag::O_DIRECT
            | OFlag::O_ASYNC
            | OFlag::O_NOATIME;
        let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
        let ours = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        for (fd, saved) in ours.into_iter().zip(self.0) {
            let (Some(saved), Ok(now)) = (saved, fcntl(fd, FcntlArg::F_GETFL)) else { continue };
            let now = OFlag::from_bits_truncate(now);
            if now & settable != saved & settable {
                let _ = fcntl(fd, FcntlArg::F_SETFL((now - settable) | (saved & settable)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn control_characters_are_shown_escaped_and_the_rest_as_it_is() {
        let text = "a\x1b]0;t\x07b\n\u{9b}c\té";
        assert_eq!(escape_controls(text), "a\\x1b]0;t\\x07b\\x0a\\x9bc\\x09é");
    }

    fn report_to(fd: i32, text: &str) {
        let mut out = open_report_fd(fd, &[]).unwrap_or_else(|e| panic!("{e}"));
        write_report(&mut out, text);
    }

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("safeexec-run-{}-{name}", std::process::id()))
    }

    /// An existing report file that others may write is refused, and left
    /// as it was: a run (its uid is another's) shown where it lies could
    /// add a forged report after ours.
    #[test]
    fn an_existing_report_file_others_may_write_is_refused_and_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let path = scratch("open-to-others");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = create_file("report file", &path).expect_err("refused").to_string();
        assert!(err.contains("may be written by others"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(create_file("report file", &path).is_ok());
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn the_program_is_shown_by_its_directory_or_alone_straight_in_tmp() {
        assert_eq!(implied_paths("/usr/bin/true", None), vec![PathBuf::from("/usr/bin")]);
        assert_eq!(implied_paths("/tmp/a.out", None), vec![PathBuf::from("/tmp/a.out")]);
        assert_eq!(implied_paths("/proc/self/exe", None), Vec::<PathBuf>::new());
        assert_eq!(implied_paths("true", None), Vec::<PathBuf>::new());
        assert_eq!(
            implied_paths("./true", Some("/usr/bin")),
            vec![PathBuf::from("/usr/bin")],
            "exec_dir and the program's directory, once"
        );
    }

    #[test]
    fn every_limit_is_set_from_the_command_line() {
        let cli = Cli::try_parse_from([
            "safeexec",
            "--cpu",
            "1.5",
            "--clock",
            "3",
            "--grace",
            "0.25",
            "--mem",
            "1000",
            "--stack",
            "200",
            "--core",
            "1",
            "--fsize",
            "16",
            "--nproc",
            "2",
            "--nfile",
            "30",
            "--output",
            "4",
            "--exec",
            "/bin/true",
        ])
        .unwrap();
        let l = limits_from(&cli);
        let got: Vec<_> = l.iter().map(|(spec, v)| (spec.json_key, v)).collect();
        assert_eq!(
            got,
            [
                ("cpu_ms", Some(1500)),
                ("wall_ms", Some(3000)),
                ("grace_ms", Some(250)),
                ("mem_kib", Some(1000)),
                ("rss_kib", None),
                ("stack_kib", Some(200)),
                ("core_kib", Some(1)),
                ("fsize_kib", Some(16)),
                ("nproc", Some(2)),
                ("nfile", Some(30)),
                ("output_bytes", Some(4096)),
            ]
        );
        let defaults = Cli::try_parse_from(["safeexec", "--rss", "5", "--", "/bin/true"]).unwrap();
        let l = limits_from(&defaults);
        assert_eq!(l.get(Limit::Rss), Some(5));
        assert_eq!(l.get(Limit::Grace), Some(0));
        assert_eq!(l.get(Limit::Output), None);
        assert_eq!(request_from(&defaults).unwrap().limits, l);
    }

    #[test]
    fn a_missing_cgroup_is_explained_from_the_mounts() {
        let container = "\
            30 29 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
            31 30 0:27 / /sys/fs/cgroup/memory ro,nosuid,nodev,noexec master:9 - cgroup cgroup rw,memory\n\
            32 30 0:28 / /sys/fs/cgroup/unified ro,relatime - cgroup2 cgroup2 rw\n";
        assert!(why_no_cgroup(container).contains("read-only"), "{}", why_no_cgroup(container));
        let host = container.replace("memory ro,", "memory rw,");
        assert!(why_no_cgroup(&host).contains("the helper made none"));
        assert_eq!(why_no_cgroup(""), "no cgroup file system is mounted");
    }

    fn refused(path: &Path) -> String {
        create_file("report file", path).expect_err("refused").to_string()
    }

    #[test]
    fn report_file_is_created_or_truncated() {
        let path = scratch("report-new");
        let _ = fs::remove_file(&path);
        create_file("report file", &path).unwrap().write_all(b"long old report\n").unwrap();
        assert!(fs::metadata(&path).unwrap().is_file());
        let mut file = create_file("report file", &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"", "not truncated");
        // Writes block again: O_NONBLOCK was for the open only.
        let flags = OFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_NONBLOCK));
        file.write_all(b"new\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn report_file_that_is_a_link_is_refused_and_its_target_left_alone() {
        let victim = scratch("victim");
        fs::write(&victim, "the caller's own file\n").unwrap();
        let link = scratch("link");
        let dangling = scratch("dangling");
        let nowhere = scratch("nowhere");
        let _ = (fs::remove_file(&link), fs::remove_file(&dangling), fs::remove_file(&nowhere));
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
        for path in [&link, &dangling] {
            assert_eq!(
                refused(path),
                format!(
                    "report file {} is a symbolic link; safeexec does not follow links for report files",
                    path.display()
                )
            );
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "the caller's own file\n");
        assert!(fs::symlink_metadata(&nowhere).is_err(), "the link's target was created");
        for path in [link, dangling, victim] {
            fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn report_file_that_is_a_fifo_is_refused_without_hanging() {
        let fifo = scratch("fifo");
        let _ = fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let expected = format!(
            "report file {} is a FIFO; safeexec writes reports to regular files only",
            fifo.display()
        );
        // Without a reader, and with one.
        assert_eq!(refused(&fifo), expected);
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&fifo)
            .unwrap();
        assert_eq!(refused(&fifo), expected);
        fs::remove_file(fifo).unwrap();
    }

    #[test]
    fn report_file_that_is_a_directory_device_or_socket_is_refused() {
        let dir = std::env::temp_dir();
        assert!(refused(&dir)
            .ends_with(" is a directory; safeexec writes reports to regular files only"));
        assert_eq!(
            refused(Path::new("/dev/null")),
            "report file /dev/null is a device; safeexec writes reports to regular files only"
        );
        let socket = scratch("socket");
        let _ = fs::remove_file(&socket);
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(refused(&socket)
            .ends_with(" is a socket; safeexec writes reports to regular files only"));
        fs::remove_file(socket).unwrap();
    }

    #[test]
    fn report_fd_that_is_not_open_is_refused() {
        for fd in [-1, 999_999] {
            let err = open_report_fd(fd, &[]).err().expect("refused").to_string();
            assert_eq!(err, format!("--report_fd {fd} is not an open descriptor"));
        }
    }

    #[test]
    fn report_fd_of_a_file_writes_at_its_offset() {
        let path = scratch("offset");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"before\n").unwrap();
        report_to(file.as_raw_fd(), "report\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "before\nreport\n");
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn report_fd_opened_to_append_appends() {
        let path = scratch("append");
        fs::write(&path, "one\n").unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        fs::write(&path, "one\ntwo\n").unwrap();
        report_to(file.as_raw_fd(), "report\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "one\ntwo\nreport\n");
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn report_fd_open_for_reading_only_is_refused() {
        let path = scratch("read-only");
        fs::write(&path, "x").unwrap();
        let file = File::open(&path).unwrap();
        let fd = file.as_raw_fd();
        let err = open_report_fd(fd, &[]).err().expect("refused").to_string();
        assert_eq!(err, format!("--report_fd {fd} is open for reading only"));
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn report_fd_of_a_pipe_or_a_socket_reaches_its_reader() {
        let (mut rx, tx) = io::pipe().unwrap();
        report_to(tx.as_raw_fd(), "through a pipe\n");
        drop(tx);
        let mut got = String::new();
        rx.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through a pipe\n");

        let (mut ours, theirs) = UnixStream::pair().unwrap();
        report_to(theirs.as_raw_fd(), "through a socket\n");
        drop(theirs);
        let mut got = String::new();
        ours.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through a socket\n");
    }

    #[test]
    fn fdinfo_gives_the_offset_and_the_octal_flags() {
        let text = "pos:\t42\nflags:\t02102001\nmnt_id:\t30\nino:\t7\n";
        assert_eq!(parse_fdinfo(text), Some((42, 0o2102001)));
        assert_eq!(parse_fdinfo("pos:\t1\n"), None);
    }
}
