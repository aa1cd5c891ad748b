//! The run's side of the fork: `init`, pid 1 of the run's own pid namespace,
//! and the target it starts.
//!
//! Invariant 7 rests here: every process of the run lives in that pid
//! namespace, and when init ends, for whatever reason, the kernel kills every
//! process left in it. Init ends the run when the target ends, when its
//! wall-clock deadline passes, or when the supervisor closes the lifeline (a
//! limit, or the supervisor died): it kill(-1)s and reaps what is left, so
//! that their CPU time is counted, then exits. If init itself dies (the
//! supervisor's SIGKILL, or its parent-death signal), the kernel kills the
//! rest. Init keeps uid 0 so that neither the caller nor the target can
//! signal or ptrace it, and of root's capabilities only CAP_KILL.
//!
//! Invariant 5 is kept by `enter`: the target gets a new session, the
//! policy's ids and no supplementary groups, no capabilities (an empty
//! bounding set and no_new_privs, so no setuid or file-capability program
//! gives any back) and no descriptor but 0, 1 and 2.

use std::convert::Infallible;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use caps::CapSet;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags, CpuSet};
use nix::sys::resource::{getrusage, setrlimit, Resource, UsageWho, RLIM_INFINITY};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SignalFd;
use nix::unistd::{
    chdir, chroot, execve, fchdir, setgroups, setresgid, setresuid, setsid, ForkResult, Pid,
};
use shared::CgroupCounters;

use crate::cgroup::RunCgroup;
use crate::error::{Context, Error, Result};
use crate::policy::{Jail, Plan};
use crate::seccomp;
use crate::sys;

/// Descriptors the run's side keeps after the fork.
pub struct RunEnds {
    /// Init's report to the supervisor.
    pub status_tx: OwnedFd,
    /// Closed by the kernel when the supervisor dies.
    pub lifeline_rx: OwnedFd,
    /// The target's setup error or execve errno, to the supervisor.
    pub error_tx: OwnedFd,
    /// Write ends that become the target's stdout and stderr when the
    /// supervisor counts output.
    pub relay: Option<(OwnedFd, OwnedFd)>,
    /// One byte from the supervisor once the sandbox uid is known to be
    /// unused; the target execs only after it.
    pub go_rx: OwnedFd,
    /// One message from the supervisor once it has set init's CPUs: the
    /// run's cgroups, if any.
    pub setup_rx: OwnedFd,
    /// The CPUs the caller allowed, which the target gets back.
    pub cpus: Option<CpuSet>,
}

/// What init tells the supervisor once the run is over: how the target
/// ended, and what every process of the run used (init's own set-up
/// excluded). A fixed layout of little-endian u64 words; `u64::MAX` stands
/// for a figure that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// wait status of the target, as waitpid gives it.
    pub status: i32,
    pub timed_out: bool,
    /// From the start of the target to its end (or to the deadline).
    pub wall_us: u64,
    /// getrusage(RUSAGE_CHILDREN) of init after the last process of the
    /// run was reaped: the whole run, exactly.
    pub user_us: u64,
    pub sys_us: u64,
    /// Largest resident set of any process of the run.
    pub maxrss_kib: u64,
    /// The run's cgroup counters, read after the same reaping.
    pub cgroup: Option<CgroupCounters>,
}

impl InitReport {
    pub const LEN: usize = 12 * 8;

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let none = u64::MAX;
        let cg = self.cgroup.as_ref();
        let words = [
            self.status as u32 as u64,
            u64::from(self.timed_out),
            self.wall_us,
            self.user_us,
            self.sys_us,
            self.maxrss_kib,
            cg.map_or(0, |c| u64::from(c.version)),
            cg.and_then(|c| c.memory_peak_kib).unwrap_or(none),
            cg.and_then(|c| c.cpu_us).unwrap_or(none),
            cg.and_then(|c| c.pids_peak).unwrap_or(none),
            cg.map_or(0, |c| c.oom_kills),
            cg.map_or(0, |c| {
                u64::from(c.memory_limited) | u64::from(c.memory_limit_hit) << 1
            }),
        ];
        let mut out = [0u8; Self::LEN];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN {
            return None;
        }
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let some = |v: u64| (v != u64::MAX).then_some(v);
        let cgroup = match w(6) {
            0 => None,
            v => Some(CgroupCounters {
                version: v.min(2) as u8,
                memory_peak_kib: some(w(7)),
                cpu_us: some(w(8)),
                pids_peak: some(w(9)),
                oom_kills: w(10),
                memory_limited: w(11) & 1 != 0,
                memory_limit_hit: w(11) & 2 != 0,
            }),
        };
        Some(InitReport {
            status: w(0) as u32 as i32,
            timed_out: w(1) != 0,
            wall_us: w(2),
            user_us: w(3),
            sys_us: w(4),
            maxrss_kib: w(5),
            cgroup,
        })
    }
}

/// Tag of a setup failure on the error pipe (followed by one line).
pub const SETUP_FAILED: u8 = b'S';
/// Tag of an execve failure (followed by errno, 4 bytes LE).
pub const EXEC_FAILED: u8 = b'E';

/// Pid 1 of the run. Never returns: its end is the end of the run.
pub fn init(plan: Plan, ends: RunEnds) -> ! {
    let mut cgroup = None;
    if let Err(e) = init_run(&plan, &ends, &mut cgroup) {
        send_error(&ends.error_tx, &e);
    }
    // Empty by now: init ends the run (kill(-1), reaping) before it returns,
    // and nothing of the run was started if it failed earlier.
    if let Some(cgroup) = &cgroup {
        cgroup.remove();
    }
    sys::exit_now(0)
}

/// Tells the supervisor why the run could not start (one small message,
/// written at once: pipes keep writes under 4096 bytes whole).
fn send_error(tx: &OwnedFd, err: &Error) {
    let mut msg = match err {
        Error::Sys("execve", e) => {
            let mut m = vec![EXEC_FAILED];
            m.extend_from_slice(&e.raw_os_error().unwrap_or(0).to_le_bytes());
            m
        }
        _ => {
            let mut m = vec![SETUP_FAILED];
            m.extend_from_slice(err.to_string().as_bytes());
            m
        }
    };
    msg.truncate(4000);
    let _ = nix::unistd::write(tx, &msg);
}

fn init_run(plan: &Plan, ends: &RunEnds, cgroup: &mut Option<RunCgroup>) -> Result<()> {
    // The helper's real ids are still the caller's, and a process may signal
    // another whose real uid is its own: init becomes root in all its ids,
    // so that the caller cannot stop it and outlive the wall-clock limit.
    let root = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    setgroups(&[]).context("setgroups")?;
    setresgid(root.1, root.1, root.1).context("setresgid")?;
    setresuid(root.0, root.0, root.0).context("setresuid")?;
    // Changing ids resets these two.
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE)")?;
    // If the supervisor dies, so does init, and with it the whole run.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    if lifeline_cut(&ends.lifeline_rx) {
        return Ok(()); // the supervisor died before the line above
    }
    // The chroot directory as a detached mount of its own, taken while
    // init is still in the helper's mount namespace: the run's private
    // /proc and scratch mounts then stay out of it, and so does any host
    // mount below it (with --chroot_dir /, the host's /proc).
    let jail = match &plan.chroot {
        Some(jail) => Some(jail_mount(jail)?),
        None => None,
    };
    let mut flags = CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS;
    if !plan.share_net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).context("cannot create the run's namespaces")?;
    private_mounts(plan)?;
    if jail.is_none() {
        working_directory_is_visible()?;
    }

    // SIGCHLD is read from a signalfd; the target unblocks it before exec.
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None).context("sigprocmask")?;
    let sigfd = SignalFd::new(&chld).context("signalfd")?;

    // The supervisor moved init off its own CPU for the set-up (see
    // `main::place_elsewhere`) and made the run's cgroups meanwhile. The
    // target runs on the caller's CPUs: set them only once that move is
    // done, or it would undo this.
    *cgroup = RunCgroup::receive(&ends.setup_rx, plan.uid.as_raw())?;
    let cgroup = cgroup.as_ref();
    if let Some(cpus) = &ends.cpus {
        nix::sched::sched_setaffinity(Pid::from_raw(0), cpus).context("sched_setaffinity")?;
    }

    let (start_rx, start_tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).context("pipe")?;
    let forked_us = sys::monotonic_us();
    let target = match sys::fork().context("cannot fork the target")? {
        ForkResult::Child => {
            drop((sigfd, start_rx));
            let target_ends = TargetEnds {
                relay: ends.relay.as_ref(),
                go: &ends.go_rx,
                start: &start_tx,
            };
            let Err(e) = enter(plan, jail.as_ref(), target_ends, cgroup);
            send_error(&ends.error_tx, &e);
            sys::exit_now(127);
        }
        ForkResult::Parent { child } => child,
    };
    drop(start_tx);
    keep_only_kill()?;

    let mut clock = WallClock {
        start_rx,
        start_us: forked_us,
        confirmed: false,
        limit_us: plan
            .limits
            .wall_ms
            .map(|ms| ms.saturating_add(plan.limits.grace_ms).saturating_mul(1000)),
    };
    let mut report = wait_for_target(target, &sigfd, &ends.lifeline_rx, &mut clock)?;
    report.cgroup = cgroup.map(|c| c.counters(&plan.limits));
    // Fails harmlessly (the helper ignores SIGPIPE) if the supervisor is gone.
    let _ = nix::unistd::write(&ends.status_tx, &report.to_bytes());
    Ok(())
}

/// Directories of the host a run never sees: world-writable ones (what the
/// target would leave there, a disk fill or a note for the next run, would
/// outlive it; /dev/shm is memory) and /run, where host daemons listen on
/// unix sockets. They all show one small private tmpfs instead, gone with
/// the run. The first two stay the host's with `--host-tmp`.
const SCRATCH_DIRS: &[(&CStr, bool)] = &[
    (c"/tmp", true),
    (c"/var/tmp", true),
    (c"/dev/shm", false),
    (c"/run", false),
];

/// Gives the run its own view of the host's file system: a /proc of its
/// own pid namespace (it sees no other process of the machine) and the
/// private scratch tmpfs. Only fixed paths of the host are touched, before
/// any chroot: they matter inside a chroot only if the chroot directory
/// holds them (`--chroot_dir /`); the caller's own tree is never mounted on.
fn private_mounts(plan: &Plan) -> Result<()> {
    // Mounts made here must not propagate back to the host.
    sys::mount(c"none", c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .context("cannot make the run's mounts private")?;
    let hardened = libc::MS_NOSUID | libc::MS_NODEV;
    sys::mount(
        c"proc",
        c"/proc",
        Some(c"proc"),
        hardened | libc::MS_NOEXEC,
        None,
    )
    .context("cannot mount the run's /proc")?;
    // As large as one file may be, and no more than the memory limit (tmpfs
    // pages are memory the run's limits do not see): at least a page, at
    // most 1 GiB.
    let cap_kib = plan.limits.mem_kib.unwrap_or(1 << 20).min(1 << 20);
    let size_kib = plan.limits.fsize_kib.unwrap_or(1 << 20).min(cap_kib).max(4);
    let options = CString::new(format!("size={size_kib}k,nr_inodes=1024,mode=1777"))
        .map_err(|_| Error::Refused("tmpfs options".into()))?;
    let mut scratch: Option<&CStr> = None;
    for &(dir, host_may_keep) in SCRATCH_DIRS {
        if host_may_keep && plan.host_tmp {
            continue;
        }
        // Only real directories: a symlink here would move the mount.
        let is_dir = std::fs::symlink_metadata(OsStr::from_bytes(dir.to_bytes()))
            .is_ok_and(|m| m.file_type().is_dir());
        if !is_dir {
            continue;
        }
        match scratch {
            None => {
                sys::mount(c"tmpfs", dir, Some(c"tmpfs"), hardened, Some(&options))
                    .context("cannot mount the run's scratch tmpfs")?;
                scratch = Some(dir);
            }
            Some(first) => sys::mount(first, dir, None, libc::MS_BIND, None)
                .context("cannot bind the run's scratch tmpfs")?,
        }
    }
    // The cgroup file systems: the run's own cgroups are root's, but a
    // cgroup elsewhere whose tasks file someone made writable would let the
    // target leave them (and their limits). An empty read-only tmpfs.
    let is_dir = std::fs::symlink_metadata("/sys/fs/cgroup").is_ok_and(|m| m.file_type().is_dir());
    if is_dir {
        sys::mount(
            c"tmpfs",
            c"/sys/fs/cgroup",
            Some(c"tmpfs"),
            hardened | libc::MS_NOEXEC | libc::MS_RDONLY,
            Some(c"size=4k,nr_inodes=1,mode=555"),
        )
        .context("cannot hide /sys/fs/cgroup")?;
    }
    Ok(())
}

/// The chroot directory as a detached copy of its own mount: no mount below
/// it comes along, nothing set-id or device works in it, and a jail that is
/// not the caller's is read-only. The kernel refuses a directory of another
/// mount namespace.
fn jail_mount(jail: &Jail) -> Result<OwnedFd> {
    let copy = sys::clone_mount_of(&jail.dir).map_err(|e| {
        Error::Setup(format!(
            "cannot use the chroot directory (is it in another mount namespace?): {}",
            sys::strerror(e.raw_os_error().unwrap_or(0))
        ))
    })?;
    let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    if jail.read_only {
        attrs |= sys::MOUNT_ATTR_RDONLY;
    }
    sys::mount_setattr(&copy, attrs).context("cannot restrict the chroot directory's mount")?;
    Ok(copy)
}

/// The target starts in the caller's working directory (or resolves
/// exec_dir from it). A directory under one of the run's private mounts
/// would still be the host's one, below the mount: the run would read and
/// write the host's /tmp through it. It must be the directory its path now
/// names, or the run is refused.
fn working_directory_is_visible() -> Result<()> {
    let here = std::fs::metadata(".").context("cannot stat the working directory")?;
    let path = std::env::current_dir().context("cannot name the working directory")?;
    let same = path.is_absolute()
        && std::fs::metadata(&path)
            .is_ok_and(|there| (there.dev(), there.ino()) == (here.dev(), here.ino()));
    if same {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "the working directory {} lies under the run's private /tmp, /var/tmp, /dev/shm or /run: \
         run safeexec from another directory, or use --host-tmp",
        path.display()
    )))
}

fn lifeline_cut(lifeline: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(lifeline.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Init holds uid 0 so that neither the caller nor the target may signal
/// or ptrace it. Of root's capabilities it keeps CAP_KILL only, to end the
/// run with kill(-1), which reaches no process outside its pid namespace.
fn keep_only_kill() -> Result<()> {
    let cap_err =
        |e: caps::errors::CapsError| Error::Refused(format!("cannot drop capabilities: {e}"));
    let kill: caps::CapsHashSet = [caps::Capability::CAP_KILL].into_iter().collect();
    crate::harden::clear_bounding_set()?;
    caps::clear(None, CapSet::Ambient).map_err(cap_err)?;
    caps::clear(None, CapSet::Inheritable).map_err(cap_err)?;
    caps::set(None, CapSet::Effective, &kill).map_err(cap_err)?;
    caps::set(None, CapSet::Permitted, &kill).map_err(cap_err)?;
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")
}

/// Why init is ending the run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    TargetEnded,
    Deadline,
    /// The supervisor closed the lifeline (a limit, or it is gone).
    Stopped,
}

/// The run's wall clock. It starts when the target is about to exec: the
/// target writes that moment on a pipe that init reads without waiting for
/// it, so that the target's set-up (joining a cgroup may wait for an RCU
/// grace period, milliseconds) is neither counted nor taken from its
/// wall-clock limit. Until the moment is known, the target's fork stands
/// for it.
struct WallClock {
    start_rx: OwnedFd,
    start_us: u64,
    confirmed: bool,
    /// Wall-clock limit plus grace.
    limit_us: Option<u64>,
}

impl WallClock {
    fn start_us(&mut self) -> u64 {
        if !self.confirmed {
            let mut stamp = [0u8; 8];
            if nix::unistd::read(&self.start_rx, &mut stamp) == Ok(8) {
                // Never before the fork: the value is the target's word.
                self.start_us = u64::from_le_bytes(stamp).max(self.start_us);
                self.confirmed = true;
            }
        }
        self.start_us
    }

    fn elapsed_us(&mut self) -> u64 {
        sys::monotonic_us().saturating_sub(self.start_us())
    }

    /// Time left before the deadline; `None`: no limit. A target that has
    /// not reached its exec has all of it (init looks again by then).
    fn left_us(&mut self) -> Option<u64> {
        let limit = self.limit_us?;
        let elapsed = self.elapsed_us();
        if !self.confirmed {
            return Some(limit.max(1));
        }
        Some(limit.saturating_sub(elapsed))
    }
}

/// Reaps every process that ends in the namespace (orphans come to init)
/// until the target ends, the deadline passes or the supervisor closes the
/// lifeline; then kills and reaps whatever is left, so that the CPU time
/// of every process of the run is in init's rusage when init is reaped.
fn wait_for_target(
    target: Pid,
    sigfd: &SignalFd,
    lifeline: &OwnedFd,
    clock: &mut WallClock,
) -> Result<InitReport> {
    let mut report = InitReport {
        status: libc::SIGKILL,
        timed_out: false,
        wall_us: 0,
        user_us: 0,
        sys_us: 0,
        maxrss_kib: 0,
        cgroup: None,
    };
    let record = |reaped: sys::Reaped, report: &mut InitReport, clock: &mut WallClock| {
        if reaped.pid == target {
            report.status = reaped.status;
            report.wall_us = clock.elapsed_us();
            true
        } else {
            false
        }
    };
    let why = 'wait: loop {
        while let Some(reaped) = sys::wait4(Pid::from_raw(-1), true).unwrap_or(None) {
            if record(reaped, &mut report, clock) {
                break 'wait Why::TargetEnded;
            }
        }
        let timeout = match clock.left_us() {
            None => PollTimeout::NONE,
            Some(0) => break Why::Deadline,
            Some(left) => {
                // Round up: waking early only costs another turn.
                let ms = left.div_ceil(1000).min(i32::MAX as u64) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(lifeline.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::Sys("poll", e.into())),
        }
        if fds[1].any().unwrap_or(false) {
            break Why::Stopped;
        }
        if fds[0].any().unwrap_or(false) {
            let _ = sigfd.read_signal();
        }
    };
    if why != Why::TargetEnded {
        report.wall_us = clock.elapsed_us();
    }
    report.timed_out = why == Why::Deadline;
    // kill(-1) from pid 1 reaches every other process of the namespace and
    // nothing else; forks racing with it are killed too (the kernel refuses
    // to finish a fork with a fatal signal pending).
    let _ = nix::sys::signal::kill(Pid::from_raw(-1), Signal::SIGKILL);
    while let Some(reaped) = sys::wait4(Pid::from_raw(-1), false).unwrap_or(None) {
        record(reaped, &mut report, clock);
    }
    let children = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    report.user_us = us(children.user_time());
    report.sys_us = us(children.system_time());
    report.maxrss_kib = children.max_rss() as u64;
    Ok(report)
}

fn limit(resource: Resource, value: Option<u64>, scale: u64) -> Result<()> {
    let v = value.map_or(RLIM_INFINITY, |v| v.saturating_mul(scale));
    set_limit(resource, v, v)
}

/// Sets a limit of the target. It fails when the caller's own hard limit,
/// which the helper could not raise, is lower than the request.
fn set_limit(resource: Resource, soft: u64, hard: u64) -> Result<()> {
    setrlimit(resource, soft, hard).map_err(|e| {
        Error::Setup(format!(
            "cannot set {resource:?} to {hard}: {} (the caller's own hard limit is lower?)",
            sys::strerror(e as i32)
        ))
    })
}

/// Turns this process into the target and execs it. Every step is done in
/// the order the invariants need: limits and chroot while still root, then
/// groups, gid, uid (all three ids of each), then no_new_privs, and only
/// then anything the request names (exec_dir, program), as the sandbox uid.
/// The target's ends of the pipes it shares with init and the supervisor.
struct TargetEnds<'a> {
    relay: Option<&'a (OwnedFd, OwnedFd)>,
    /// The supervisor's go-ahead.
    go: &'a OwnedFd,
    /// Where the target writes the moment its wall clock starts.
    start: &'a OwnedFd,
}

fn enter(
    plan: &Plan,
    jail: Option<&OwnedFd>,
    ends: TargetEnds<'_>,
    cgroup: Option<&RunCgroup>,
) -> Result<Infallible> {
    // First, so that what the target uses from here on is counted, and
    // while it still has root's rights to move itself.
    if let Some(cgroup) = cgroup {
        cgroup.join()?;
    }
    setsid().context("setsid")?;
    if let Some((out, err)) = ends.relay {
        nix::unistd::dup2_stdout(out).context("dup2")?;
        nix::unistd::dup2_stderr(err).context("dup2")?;
    }
    let l = &plan.limits;
    // CPU: the supervisor enforces the exact limit; the rlimit (whole
    // seconds, SIGXCPU then SIGKILL a second later) backs it per process.
    // The kernel counts this limit in nanoseconds: a number of seconds
    // whose nanoseconds overflow 64 bits would wrap to a tiny limit, so
    // anything past a century is no limit at all.
    const CENTURY_S: u64 = 100 * 365 * 86_400;
    let cpu_s = l
        .cpu_ms
        .map(|ms| ms.saturating_add(l.grace_ms).div_ceil(1000))
        .filter(|&s| s < CENTURY_S);
    match cpu_s {
        Some(s) => set_limit(Resource::RLIMIT_CPU, s, s.saturating_add(1))?,
        None => limit(Resource::RLIMIT_CPU, None, 1)?,
    }
    limit(Resource::RLIMIT_AS, l.mem_kib, 1024)?;
    limit(Resource::RLIMIT_DATA, l.mem_kib, 1024)?;
    limit(Resource::RLIMIT_STACK, l.stack_kib, 1024)?;
    limit(Resource::RLIMIT_CORE, Some(l.core_kib), 1024)?;
    limit(Resource::RLIMIT_FSIZE, l.fsize_kib, 1024)?;
    limit(Resource::RLIMIT_NPROC, Some(l.nproc.saturating_add(1)), 1)?;
    limit(Resource::RLIMIT_NOFILE, Some(l.nfile), 1)?;
    limit(Resource::RLIMIT_MEMLOCK, Some(0), 1)?;
    limit(Resource::RLIMIT_MSGQUEUE, Some(0), 1)?;
    // The caller's scheduling class (a real-time one, say) is not the run's.
    sys::reset_scheduling().context("cannot reset the scheduling policy")?;
    sys::set_niceness(plan.niceness).context("cannot set the niceness")?;

    if let Some(dir) = jail {
        fchdir(dir).context("cannot enter the chroot directory")?;
        chroot(".").context("chroot")?;
    }
    // No capability may come back: not from the bounding set, nor from
    // the inheritable or ambient sets the caller may have left set.
    crate::harden::clear_bounding_set()?;
    for set in [CapSet::Inheritable, CapSet::Ambient] {
        caps::clear(None, set)
            .map_err(|e| Error::Refused(format!("cannot clear a capability set: {e}")))?;
    }
    setgroups(&[]).context("setgroups")?;
    setresgid(plan.gid, plan.gid, plan.gid).context("setresgid")?;
    setresuid(plan.uid, plan.uid, plan.uid).context("setresuid")?;
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    // The caller's session keyring is the caller's.
    sys::leave_inherited_keyring().context("cannot leave the caller's keyring")?;

    if let Some(dir) = &plan.exec_dir {
        chdir(dir.as_c_str()).map_err(|e| {
            Error::Setup(format!(
                "cannot enter exec_dir {}: {}",
                dir.to_string_lossy(),
                sys::strerror(e as i32)
            ))
        })?;
    } else if jail.is_some() {
        chdir("/").context("chdir")?;
    }
    // Everything but 0, 1 and 2 closes at exec, the error pipe included.
    sys::close_from(3, true).context("close_range")?;
    let mut byte = [0u8; 1];
    if !matches!(nix::unistd::read(ends.go, &mut byte), Ok(1)) || byte != *b"g" {
        // The supervisor refused the run (its reason goes to the caller).
        sys::exit_now(127);
    }
    let _ = nix::unistd::write(ends.start, &sys::monotonic_us().to_le_bytes());
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("sigprocmask")?;
    sys::default_write_signals().context("cannot reset SIGPIPE and SIGXFSZ")?;
    sys::install_seccomp(&seccomp::filter()).context("cannot install the seccomp filter")?;
    let err = execve(&plan.program, &plan.argv, &plan.env).unwrap_err();
    Err(Error::Sys("execve", err.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_report_round_trips() {
        let mut r = InitReport {
            status: -3,
            timed_out: true,
            wall_us: 1,
            user_us: 2,
            sys_us: 3,
            maxrss_kib: 7,
            cgroup: None,
        };
        assert_eq!(InitReport::from_bytes(&r.to_bytes()), Some(r.clone()));
        r.cgroup = Some(CgroupCounters {
            version: 2,
            memory_peak_kib: Some(5),
            cpu_us: None,
            pids_peak: Some(1),
            oom_kills: 3,
            memory_limited: true,
            memory_limit_hit: true,
        });
        assert_eq!(InitReport::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(InitReport::from_bytes(&[0; 3]), None);
    }
}
