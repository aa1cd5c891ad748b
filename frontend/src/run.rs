//! Building the request, opening caller-named paths as the caller, and
//! talking to the helper over two inherited pipes.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use command_fds::{CommandFdExt, FdMapping};
use shared::{wire, Limits, Reply, Request, CHROOT_FD, REPLY_FD, REQUEST_FD};

use crate::cli::{parse_env_vars, Cli, DEFAULT_ENV};

/// Why safeexec could not run the program at all.
#[derive(Debug)]
pub enum RunError {
    Usage(String),
    Open {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    Helper {
        path: PathBuf,
        err: io::Error,
    },
    Channel(wire::WireError),
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
            RunError::Helper { path, err } => {
                write!(f, "cannot start the helper {}: {err}", path.display())
            }
            RunError::Channel(e) => write!(f, "talking to the helper: {e}"),
            RunError::Refused(msg) => write!(f, "{msg}"),
            RunError::NoReply(Some(status)) => {
                write!(f, "the helper ended ({status}) without a reply")
            }
            RunError::NoReply(None) => write!(f, "the helper ended without a reply"),
        }
    }
}

/// Where the installed helper is: a path fixed at build time, or else
/// `../libexec/safeexec/safeexec-helper` beside this executable.
pub fn helper_path() -> PathBuf {
    if let Some(fixed) = option_env!("SAFEEXEC_HELPER_PATH") {
        return PathBuf::from(fixed);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/safeexec"));
    let bindir = exe.parent().unwrap_or(Path::new("/usr/bin"));
    bindir.join("../libexec/safeexec/safeexec-helper")
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
        return Err(RunError::Usage(
            "no program given (--exec PROGRAM or -- PROGRAM)".into(),
        ));
    };
    let mut env: Vec<String> = match &cli.env_vars {
        Some(vars) => parse_env_vars(vars),
        None if cli.env.is_empty() => DEFAULT_ENV.iter().map(|s| s.to_string()).collect(),
        None => Vec::new(),
    };
    env.extend(cli.env.iter().cloned());
    if let Some(bad) = env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
        return Err(RunError::Usage(format!(
            "environment entry '{bad}' is not NAME=VALUE"
        )));
    }
    Ok(Request {
        program: program.clone(),
        argv: command.clone(),
        env,
        limits: Limits {
            cpu_ms: Some(cli.cpu),
            wall_ms: Some(cli.clock),
            grace_ms: cli.grace,
            mem_kib: Some(cli.mem),
            rss_kib: cli.rss,
            stack_kib: Some(cli.stack),
            core_kib: cli.core,
            fsize_kib: Some(cli.fsize),
            nproc: cli.nproc,
            nfile: cli.nfile,
            output_bytes: cli.output.map(|kib| kib.saturating_mul(1024)),
        },
        chroot: cli.chroot_dir.is_some(),
        exec_dir: cli.exec_dir.clone(),
        niceness: cli.niceness,
        share_net: cli.share_newnet,
        host_tmp: cli.host_tmp,
    })
}

/// Opens a file the caller names for writing, as the caller.
pub fn create_file(what: &'static str, path: &Path) -> Result<File, RunError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .map_err(|err| RunError::Open {
            what,
            path: path.to_path_buf(),
            err,
        })
}

/// The report's inherited descriptor (`--report_fd`), written as it is:
/// reopening it (through /proc) would need permission on the file or pipe
/// behind it, which the caller's parent may hold alone.
pub struct ReportFd(i32);

pub fn open_report_fd(fd: i32) -> Result<ReportFd, RunError> {
    use nix_rawfd::fcntl::{fcntl, FcntlArg};
    if fd < 0 || fcntl(fd, FcntlArg::F_GETFD).is_err() {
        return Err(RunError::Usage(format!(
            "--report_fd {fd} is not an open descriptor"
        )));
    }
    Ok(ReportFd(fd))
}

impl Write for ReportFd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        nix_rawfd::unistd::write(self.0, buf).map_err(|e| io::Error::from_raw_os_error(e as i32))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens the chroot directory as the caller: the helper only ever receives
/// the descriptor, so a directory the caller cannot open cannot be used.
fn open_chroot(dir: &Path) -> Result<OwnedFd, RunError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_directory())
        .open(dir)
        .map(OwnedFd::from)
        .map_err(|err| RunError::Open {
            what: "chroot directory",
            path: dir.to_path_buf(),
            err,
        })
}

const fn libc_o_directory() -> i32 {
    0o200000 // O_DIRECTORY on Linux
}

/// Runs the request through the helper and returns its reply.
pub fn run(request: &Request, chroot_dir: Option<&Path>) -> Result<shared::Outcome, RunError> {
    let helper = helper_path();
    let (request_rx, request_tx) = io::pipe().map_err(|err| RunError::Helper {
        path: helper.clone(),
        err,
    })?;
    let (mut reply_rx, reply_tx) = io::pipe().map_err(|err| RunError::Helper {
        path: helper.clone(),
        err,
    })?;

    let mut mappings = vec![
        FdMapping {
            parent_fd: OwnedFd::from(request_rx),
            child_fd: REQUEST_FD,
        },
        FdMapping {
            parent_fd: OwnedFd::from(reply_tx),
            child_fd: REPLY_FD,
        },
    ];
    if let Some(dir) = chroot_dir {
        mappings.push(FdMapping {
            parent_fd: open_chroot(dir)?,
            child_fd: CHROOT_FD,
        });
    }

    let mut cmd = Command::new(&helper);
    cmd.env_clear()
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    cmd.fd_mappings(mappings)
        .map_err(|_| RunError::Usage("descriptor mapping collision".into()))?;
    let mut child = cmd.spawn().map_err(|err| RunError::Helper {
        path: helper.clone(),
        err,
    })?;
    // Our copies of the child's ends must close, or a dead helper would
    // leave us waiting for a reply forever.
    drop(cmd);

    let mut request_tx = request_tx;
    let sent = wire::write_request(&mut request_tx, request);
    drop(request_tx);

    let reply = wire::read_reply(&mut reply_rx);
    // ECHILD: the caller ignores SIGCHLD, so the kernel reaped the helper;
    // its reply, already read, still stands.
    const ECHILD: i32 = 10;
    let status = match child.wait() {
        Ok(status) => Some(status),
        Err(err) if err.raw_os_error() == Some(ECHILD) => None,
        Err(err) => return Err(RunError::Helper { path: helper, err }),
    };
    match reply {
        Ok(Reply::Finished(outcome)) => Ok(outcome),
        Ok(Reply::Failed(msg)) => Err(RunError::Refused(msg)),
        Err(wire::WireError::Truncated) => Err(RunError::NoReply(status)),
        Err(e) => {
            // A failed send usually explains a missing reply.
            sent.map_err(RunError::Channel)?;
            Err(RunError::Channel(e))
        }
    }
}

/// Writes a report, ignoring a reader that went away.
pub fn write_report(out: &mut dyn Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
