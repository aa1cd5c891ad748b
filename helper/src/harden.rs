//! Invariant 1: before the helper reads a byte of the request, nothing the
//! caller arranged around the process (rlimits, signal dispositions and
//! mask, descriptors, environment, argv, dumpability) has any effect.

use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::socket::{
    getsockname, getsockopt, recvmsg, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockType, SockaddrLike, SockaddrStorage,
};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::{getppid, getresgid, getresuid, Gid, Pid, Uid};

use crate::error::{Context, Error, Result};
use crate::{identity, sys};
use shared::{FIRST_UNUSED_FD, REPLY_FD, REQUEST_FD};

/// The user who ran the helper (its real ids), captured before anything.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: Uid,
    pub gid: Gid,
    /// The process that started the helper (the frontend).
    pub parent: Pid,
    /// The niceness the caller gave the helper: the run's is never better
    /// (`policy::Policy::check`). Without privilege the caller could not
    /// have lowered its own; a caller at 19 had its run at the request's
    /// 16, and at 0 through the helper called directly (a review of the
    /// eleventh round).
    pub niceness: i32,
    /// The caller's file mode creation mask: the target's again at its exec
    /// (`target::enter`); the helper's own is 022, so that what it makes as
    /// root (cgroups, the uid state) has the modes it asks (init builds the
    /// minimal root with 0, naming every mode).
    pub umask: Mode,
}

/// Limits the helper itself runs under, whatever the caller preset: root
/// may raise hard limits, so none of the caller's choices survive.
const RESET: &[(Resource, u64, u64)] = &[
    // Soft 0 only: a hard 0 could never be raised again for a target that
    // may dump core (the helper itself is not dumpable anyway).
    (Resource::RLIMIT_CORE, 0, RLIM_INFINITY),
    (Resource::RLIMIT_CPU, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_DATA, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_AS, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_STACK, 8 << 20, RLIM_INFINITY),
    (Resource::RLIMIT_RSS, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_NPROC, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_NOFILE, 1024, 4096),
    (Resource::RLIMIT_MEMLOCK, 8 << 20, 8 << 20),
    (Resource::RLIMIT_LOCKS, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_MSGQUEUE, 819_200, 819_200),
    (Resource::RLIMIT_NICE, 0, 0),
    (Resource::RLIMIT_RTPRIO, 0, 0),
    (Resource::RLIMIT_RTTIME, RLIM_INFINITY, RLIM_INFINITY),
    (Resource::RLIMIT_SIGPENDING, 65_536, 65_536),
];

/// Hardens the process. Runs first in `main`; fails closed.
pub fn before_reading() -> Result<Caller> {
    // First: a frontend that dies later hands us to another parent, which
    // `supervise::drop_privileges` then sees.
    let parent = getppid();
    // Armed again for the wait for the request (`RequestSocket::new`): a
    // close below, of a descriptor the caller left open, can block (a
    // socket set to linger), and the alarm ends the helper then, once
    // its disposition and the mask are reset.
    arm_request_alarm();
    // The caller's CPU-time timers, which the alarm does not replace: their
    // SIGPROF or SIGVTALRM would end us at a moment of the caller's choice,
    // root and half way through a step (a review killed the helper so in
    // set-up, 21 times in 150).
    sys::cancel_cpu_timers().context("cannot cancel the caller's interval timers")?;
    // Never dumpable: no core file and no ptrace by the caller, from now on.
    nix::sys::prctl::set_dumpable(false).context("cannot make the helper undumpable")?;
    // Before the resets, which only root may do: a helper that is not
    // setuid root says so, rather than which reset it could not do.
    let uids = getresuid().context("getresuid")?;
    let gids = getresgid().context("getresgid")?;
    if !uids.effective.is_root() {
        return Err(Error::Refused(why_not_root()));
    }
    // Before anything that needs one of them: a container that withholds
    // one is named, not a later step that fails for it.
    identity::check_capabilities(false)?;
    for &(resource, soft, hard) in RESET {
        reset_limit(resource, soft, hard)?;
    }
    check_floors()?;
    sys::reset_signal_dispositions().context("cannot reset signal dispositions")?;
    sys::ignore_write_signals().context("cannot ignore SIGPIPE and SIGXFSZ")?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("cannot reset the signal mask")?;
    sys::clear_environment().context("cannot clear the environment")?;
    ensure_stdio_open()?;
    // Nothing but the two channel descriptors may stay open; the rest of
    // what the caller left open is closed (what the run is given comes
    // with the request).
    sys::close_from(FIRST_UNUSED_FD as u32, false).context("cannot close inherited descriptors")?;
    let umask = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    let niceness = sys::niceness().context("cannot read the niceness")?;
    Ok(Caller { uid: uids.real, gid: gids.real, parent, niceness, umask })
}

/// Why the setuid bit gave us no root. The two causes a container (or an
/// admin) sets without touching the file are named first: the kernel
/// ignores set-id bits under no_new_privs and on a nosuid mount.
fn why_not_root() -> String {
    let on_nosuid = nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID));
    if nix::sys::prctl::get_no_new_privs().unwrap_or(false) {
        "no_new_privs is set (a container's no-new-privileges option, or setpriv \
         --no-new-privs): the kernel ignores the helper's setuid bit"
            .into()
    } else if on_nosuid {
        "the helper's file system is mounted nosuid: the kernel ignores its setuid bit".into()
    } else {
        "safeexec-helper must be installed setuid root (mode 4754, owner root)".into()
    }
}

/// The kernel's default timer slack: the caller's would stretch every
/// timeout of the helper, init's deadline and CPU looks included.
const TIMER_SLACK_NS: libc::c_ulong = 50_000;

/// How the helper is scheduled, whatever the caller set: the default
/// timer slack, the normal class at niceness 0, the default I/O priority,
/// a session of its own, and every CPU the machine lets it use (a caller
/// that pins it to one CPU would make init count too few CPUs and look at
/// the CPU limit too late). Called by `main` once the helper is root in
/// all its ids (`identity::Identity::setup`): until then the caller, whose
/// real uid it had, could lower its niceness or I/O priority again between
/// the reset and the change of ids.
///
/// The session: with the kernel's autogroups, every process of a session
/// shares one weight, which any of them may lower (`/proc/self/autogroup`,
/// nice 19: a weight of 15 against 1024), so a caller could starve the
/// helper while it holds the uid counter's lock and fail every caller's
/// runs as busy (the review of the round held it 2.9 s). A session of its
/// own also puts it out of reach of the caller's terminal (Ctrl-Z, SIGTTOU:
/// signals the kernel sends without asking whose process it is).
pub fn reset_timing() -> Result<()> {
    nix::sys::prctl::set_timerslack(TIMER_SLACK_NS).context("cannot reset the timer slack")?;
    sys::reset_scheduling().context("cannot reset the scheduling policy")?;
    sys::set_niceness(0).context("cannot reset the niceness")?;
    // An idle I/O class (`ionice -c3`) would leave the helper's read of the
    // uid counter's page, under its lock, behind every other read.
    sys::reset_io_priority().context("cannot reset the I/O priority")?;
    nix::unistd::setsid().map_err(|e| {
        Error::Refused(format!(
            "the helper must not lead a process group (it starts a session of its own): {e}"
        ))
    })?;
    let mut all = nix::sched::CpuSet::new();
    for cpu in 0..nix::sched::CpuSet::count() {
        let _ = all.set(cpu);
    }
    // The kernel keeps only the CPUs the helper's cpuset allows.
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &all)
        .context("cannot reset the CPU affinity")
}

/// Sets one limit of the helper. Raising a hard limit needs
/// CAP_SYS_RESOURCE, which some machines' bounding sets lack: then the
/// caller's hard limit stays as the ceiling, and any later request above it
/// fails when the target's limits are set (closed, with a message).
fn reset_limit(resource: Resource, soft: u64, hard: u64) -> Result<()> {
    if setrlimit(resource, soft, hard).is_ok() {
        return Ok(());
    }
    let (_, ceiling) = getrlimit(resource).context("getrlimit")?;
    let hard = hard.min(ceiling);
    setrlimit(resource, soft.min(hard), hard).context("cannot reset the caller's resource limits")
}

/// The least of the caller's limits the helper runs under, where
/// `reset_limit` could not raise a hard one (no CAP_SYS_RESOURCE): each
/// with its name, its unit's size, the unit, and the shell's option.
/// - The stack: its deepest step (the seccomp filter's build) takes some
///   tens of KiB; under 16 to 33 KiB it ended by SIGSEGV, root and half way
///   through its set-up, with no line (a review of the twelfth round).
/// - Descriptors: under some 16 its set-up failed (EMFILE) after it had
///   taken the run's uid, so that requests that ran nothing moved the uid
///   counter (a second review of the twelfth round, at 350 a second).
const FLOORS: [(Resource, u64, &str, u64, &str, &str); 2] = [
    (Resource::RLIMIT_STACK, 256 << 10, "stack", 1024, " KiB", "-s"),
    (Resource::RLIMIT_NOFILE, 64, "descriptor", 1, " descriptors", "-n"),
];

/// Fails unless the helper has each limit of `FLOORS`.
fn check_floors() -> Result<()> {
    for (resource, floor, name, unit, units, option) in FLOORS {
        let (soft, _) = getrlimit(resource).context("getrlimit")?;
        if soft < floor {
            return Err(Error::Refused(format!(
                "the caller's {name} limit ({resource:?}) is under the {}{units} the helper \
                 needs (raise it: ulimit {option})",
                floor / unit
            )));
        }
    }
    Ok(())
}

/// If the caller closed 0, 1 or 2, the next descriptors opened would take
/// their place and the target would write into them: put /dev/null there.
fn ensure_stdio_open() -> Result<()> {
    for fd in 0..=2 {
        if !sys::fd_is_open(fd) {
            let null = open_null().context("cannot open /dev/null")?;
            // Lowest free number: since 0..fd are open, this lands on fd.
            if null.as_raw_fd() != fd {
                return Err(Error::Internal(format!("cannot reopen descriptor {fd}")));
            }
            let _ = null.into_raw_fd();
        }
    }
    Ok(())
}

/// The host's /dev/null, for reading and writing: what stands in for a
/// standard descriptor the helper must not leave closed, or must not keep.
pub fn open_null() -> std::io::Result<File> {
    File::options().read(true).write(true).open("/dev/null")
}

/// How long the caller has to send its whole request and end the stream.
/// The frontend does so as soon as it has parsed its command line; a
/// caller that holds the socket open and sends nothing, or part of a frame,
/// would otherwise keep the helper alive for ever, and with it the run's
/// network namespace, which a thread makes meanwhile (`network::start`).
pub const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// The request socket, read under a deadline (`REQUEST_WAIT`, from when it
/// is taken): a read that would wait past it fails as timed out. The
/// request, and the descriptors that came with it, are taken once, with
/// `request`.
pub struct RequestSocket {
    socket: OwnedFd,
    until: Instant,
    /// What came beside the bytes so far (SCM_RIGHTS), close-on-exec.
    passed: Vec<OwnedFd>,
}

/// The backstop of `REQUEST_WAIT`, in whole seconds past it: SIGALRM, whose
/// default action (`before_reading` reset it, and the mask) ends the helper.
const REQUEST_ALARM_S: u32 = 2;

impl RequestSocket {
    /// Takes the socket and starts the wait. `poll` bounds each wait for
    /// bytes, and each receive asks not to block (MSG_DONTWAIT, a flag of
    /// the call, which the caller cannot clear as it could a flag of the
    /// socket it shares with us): a second reader of the caller's that
    /// takes the bytes our `poll` saw only makes us poll again. The alarm
    /// stays as a backstop: the helper, its thread and the namespace end
    /// a little after the deadline, unless `request_taken` has cancelled
    /// it.
    pub fn new(socket: OwnedFd) -> RequestSocket {
        arm_request_alarm();
        RequestSocket { socket, until: Instant::now() + REQUEST_WAIT, passed: Vec::new() }
    }

    /// Reads the one request frame (`shared::wire::read_request`) and takes
    /// the descriptors that came with it. How many came is for the caller
    /// of this to check against what the request names. The alarm stays
    /// armed (`request_taken` cancels it): dropping or replacing what came
    /// closes descriptors the caller chose, and a close can block (a TCP
    /// socket set to linger with data its peer never reads), which the
    /// alarm ends.
    pub fn request(&mut self) -> Result<(shared::Request, Vec<OwnedFd>)> {
        let request = shared::wire::read_request(self).map_err(Error::Wire)?;
        Ok((request, std::mem::take(&mut self.passed)))
    }

    /// One receive that does not block: its bytes, its descriptors kept.
    /// Any control message but the descriptors refuses the request: a
    /// caller that keeps a copy of our end can ask for others on it
    /// (SO_PASSCRED, SO_PASSPIDFD); a pidfd that came so is closed.
    fn receive(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut space = nix::cmsg_space!([RawFd; shared::MAX_PASSED_FDS]);
        let mut iov = [IoSliceMut::new(buf)];
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
        let msg = recvmsg::<()>(self.socket.as_raw_fd(), &mut iov, Some(&mut space), flags)?;
        let (mut raw, mut pidfds, mut other) = (Vec::new(), Vec::new(), false);
        // An error here is a control message cut short (MSG_CTRUNC): more
        // descriptors than any request names, or than our RLIMIT_NOFILE
        // lets in. Those that came are closed at the helper's exit, which
        // follows the refusal (the alarm still armed).
        for c in msg.cmsgs().map_err(|_| refused(CUT_SHORT))? {
            match c {
                ControlMessageOwned::ScmRights(fds) => raw.extend(fds),
                ControlMessageOwned::Unknown(m) => {
                    let pidfd = (m.cmsg_header.cmsg_level, m.cmsg_header.cmsg_type)
                        == (libc::SOL_SOCKET, SCM_PIDFD);
                    if let (true, Ok(fd)) = (pidfd, <[u8; 4]>::try_from(m.data_bytes.as_slice())) {
                        pidfds.push(RawFd::from_ne_bytes(fd));
                    }
                    other = true;
                }
                _ => other = true,
            }
        }
        let bytes = msg.bytes;
        // Owned at once, so that they close on every path below.
        self.passed.extend(sys::own_received_fds(raw));
        drop(sys::own_received_fds(pidfds));
        if other {
            return Err(refused("a control message other than descriptors came with the request"));
        }
        if self.passed.len() > shared::MAX_PASSED_FDS {
            let max = shared::MAX_PASSED_FDS;
            return Err(refused(&format!("more than {max} descriptors came with the request")));
        }
        Ok(bytes)
    }
}

/// `SCM_PIDFD` (linux/socket.h; not in the libc crate): a control message
/// whose data is a pidfd the kernel installed in the receiver.
const SCM_PIDFD: i32 = 0x04;

const CUT_SHORT: &str = "the descriptors that came with the request were cut short \
                         (more than a request may bring, or than the helper may open)";

/// A refusal of what came on the request socket.
fn refused(why: &str) -> std::io::Error {
    std::io::Error::other(why.to_string())
}

/// Arms (again) the backstop of the wait for the request.
fn arm_request_alarm() {
    nix::unistd::alarm::set(REQUEST_WAIT.as_secs() as u32 + REQUEST_ALARM_S);
}

/// The request and what came with it have been taken and checked: the wait
/// for the request is over, and its alarm is cancelled.
pub fn request_taken() {
    nix::unistd::alarm::cancel();
}

impl Read for RequestSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let left = self.until.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            // EINTR comes back as Interrupted, which the reader retries.
            if poll(&mut fds, timeout)? == 0 {
                let secs = REQUEST_WAIT.as_secs();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no whole request (and end of the stream) within {secs} s"),
                ));
            }
            match self.receive(buf) {
                // Taken by another reader since the poll: wait again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                got => return got,
            }
        }
    }
}

/// Takes the two channel descriptors: the request socket (a Unix stream
/// socket, as the frontend passes it) and the reply pipe. Anything else
/// there (a terminal, a file) means a confused or hostile caller.
pub fn channel_fds() -> Result<(OwnedFd, File)> {
    let take = |fd: i32, name: &'static str| -> Result<OwnedFd> {
        sys::take_inherited_fd(fd).map_err(|_| {
            Error::Refused(format!(
                "descriptor {fd} ({name}) is not open; run safeexec, not safeexec-helper"
            ))
        })
    };
    let kind = |fd: &OwnedFd| -> Result<SFlag> {
        let st = fstat(fd).context("fstat of a channel descriptor")?;
        Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
    };
    let request = take(REQUEST_FD, "request")?;
    let stream = kind(&request)? == SFlag::S_IFSOCK
        && getsockopt(&request, sockopt::SockType).is_ok_and(|t| t == SockType::Stream)
        && getsockname::<SockaddrStorage>(request.as_raw_fd())
            .is_ok_and(|a| a.family() == Some(AddressFamily::Unix));
    if !stream {
        return Err(Error::Refused(format!(
            "descriptor {REQUEST_FD} (request) is not a Unix stream socket"
        )));
    }
    let reply = take(REPLY_FD, "reply")?;
    if kind(&reply)? != SFlag::S_IFIFO {
        return Err(Error::Refused(format!("descriptor {REPLY_FD} (reply) is not a pipe")));
    }
    for fd in [&request, &reply] {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
            .context("fcntl")?;
    }
    Ok((request, File::from(reply)))
}
