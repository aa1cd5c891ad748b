//! The target: init's child, which becomes the program to run.
//!
//! Invariant 5 is kept by `enter`: the target is in the run's cgroups
//! (born in the v2 one, `init::fork_target`; it joins the others),
//! gets a new session, its limits, the chroot, the policy's ids with no
//! groups and no capabilities (`identity::Identity::target`, an empty
//! bounding set and no_new_privs, so no setuid or file-capability program
//! gives any back), no descriptor but 0, 1 and 2, and the seccomp filter;
//! only then does it resolve anything the request names (exec_dir, the
//! program), as the sandbox uid.

use std::convert::Infallible;
use std::os::fd::OwnedFd;

use nix::sys::resource::{setrlimit, Resource as Res, RLIM_INFINITY};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::unistd::{chdir, chroot, fchdir, setsid};
use shared::limits::{Resource, Rlimit, TABLE};
use shared::{Limit, Limits};

use crate::cgroup::RunCgroup;
use crate::channel::{Channel, FromRun, ToRun};
use crate::error::{Context, Error, Result};
use crate::identity::Identity;
use crate::policy::Plan;
use crate::sys;

/// Turns this process into the target and execs it. Returns only if it
/// cannot: why, as the message for the supervisor (an exec failure by its
/// errno, any other by its line).
/// `born_in_v2`: init forked it into the run's cgroup v2 directory.
pub fn enter(
    plan: &Plan,
    jail: Option<&OwnedFd>,
    channel: &Channel,
    pipes: (&OwnedFd, &OwnedFd),
    (cgroup, born_in_v2): (Option<&RunCgroup>, bool),
) -> FromRun {
    let Err(e) = prepare(plan, jail, channel, pipes, (cgroup, born_in_v2));
    FromRun::setup_failed(&e)
}

/// Limits and chroot while still root, then the identity, then what the
/// request names, then exec; an exec failure comes back as its message.
/// `start`: where the target writes the moment it is about to exec (init's
/// wall clock); `pool_left`: where init's word comes that the run's view
/// no longer shows the pool of kept network namespaces
/// (`netpool::leave_out`).
fn prepare(
    plan: &Plan,
    jail: Option<&OwnedFd>,
    channel: &Channel,
    (start, pool_left): (&OwnedFd, &OwnedFd),
    (cgroup, born_in_v2): (Option<&RunCgroup>, bool),
) -> Result<Infallible> {
    // First, so that what the target uses from here on is counted, and
    // while it still has root's rights to move itself.
    if let Some(cgroup) = cgroup {
        cgroup.join(born_in_v2)?;
    }
    setsid().context("setsid")?;
    // Before the limits: under the run's own descriptor limit (0 too) the
    // files would not open. A run with a CPU weight of its own is in no
    // autogroup.
    let weighed = cgroup.is_some_and(RunCgroup::weighs);
    stand_back(plan.niceness, weighed)?;
    set_limits(&plan.limits, false)?;
    // The scheduling class was reset by `harden`.
    sys::set_niceness(plan.niceness).context("cannot set the niceness")?;
    if let Some(dir) = jail {
        fchdir(dir).context("cannot enter the chroot directory")?;
        chroot(".").context("chroot")?;
    }
    Identity::target(plan.uid, plan.gid).assume()?;
    // The caller's session keyring is the caller's.
    sys::leave_inherited_keyring().context("cannot leave the caller's keyring")?;
    if let Some(dir) = &plan.exec_dir {
        chdir(dir.as_c_str()).map_err(|e| {
            Error::setup(format_args!("cannot enter exec_dir {}", dir.to_string_lossy()), e)
        })?;
    } else if jail.is_some() {
        chdir("/").context("chdir")?;
    }
    // Everything but 0, 1 and 2 closes at exec, the channel included.
    sys::close_from(3, true).context("close_range")?;
    if !matches!(channel.recv::<ToRun>(), Ok(Some((ToRun::Go, _)))) {
        // The supervisor refused the run (its reason goes to the caller).
        sys::exit_now(127);
    }
    let mut word = [0u8; 1];
    if !matches!(nix::unistd::read(pool_left, &mut word), Ok(1)) {
        return Err(Error::Setup("init did not leave the network pool out of the run".into()));
    }
    let _ = nix::unistd::write(start, &sys::monotonic_us().to_le_bytes());
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("sigprocmask")?;
    sys::default_write_signals().context("cannot reset SIGPIPE and SIGXFSZ")?;
    nix::sys::stat::umask(plan.umask);
    let exec = sys::Exec::new(&plan.program, &plan.argv, &plan.env);
    // Sessions only where the run's CPU weight holds them (`seccomp::Sessions`).
    let sessions = crate::seccomp::Sessions::for_run(weighed);
    let built_here;
    let filter = match sessions == plan.sessions {
        true => &plan.filter,
        false => {
            built_here = crate::seccomp::filter(sessions);
            &built_here
        }
    };
    // The address-space and data limits last, once nothing is left to
    // allocate: under them a new mapping may fail, and the target must
    // reach its program's exec (whose own start-up then meets them).
    set_limits(&plan.limits, true)?;
    sys::install_seccomp(filter).context("cannot install the seccomp filter")?;
    let errno = exec.exec();
    let _ = channel.send(&FromRun::ExecFailed(errno), &[]);
    sys::exit_now(127)
}

/// The run's standing against the host's processes, which only /proc
/// sets (the run's own, mounted by init; still root, before any chroot):
/// - the OOM killer's first choice (oom_score_adj 1000), whatever the
///   caller's: a service's -1000 would make the run's processes ones it
///   never picks (a suspicion of a review of the twelfth round). The run's
///   own processes only: set in the helper, it made the supervisor and
///   init, which stay in the caller's memory cgroup, the first choice
///   there, and a caller sharing that cgroup filled it and had every
///   other caller's runs killed (a last review of the round);
/// - where the run has no CPU weight of its own (`weighed`), the niceness
///   of the autogroup `setsid` just made. With the kernel's autogroups a
///   task's niceness ranks it only within its session, and a new session
///   competes at niceness 0 with each of the host's (a review of the
///   twelfth round: a run at niceness 19 took a nice-0 session's share of
///   the CPUs, and each child that started a session of its own one more;
///   the seccomp filter now refuses setsid). A kernel without autogroups
///   has no such file.
fn stand_back(niceness: i32, weighed: bool) -> Result<()> {
    let autogroup = (!weighed).then_some(("/proc/self/autogroup", niceness));
    for (file, value) in [("/proc/self/oom_score_adj", 1000)].into_iter().chain(autogroup) {
        match sys::write_proc(file, value) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            written => written.map_err(|e| Error::setup(format_args!("cannot write {file}"), e))?,
        }
    }
    Ok(())
}

/// Resource limits no run may have more than, whatever it asks.
const FIXED: &[(Res, u64)] = &[(Res::RLIMIT_MEMLOCK, 0), (Res::RLIMIT_MSGQUEUE, 0)];

/// Sets the target's resource limits from the table of limits: the
/// address-space and data limits (`memory`, set last by `prepare`), or all
/// the others and `FIXED`. The CPU limit of the whole run is the
/// supervisor's and init's to enforce to the millisecond; RLIMIT_CPU backs
/// it per process in whole seconds.
fn set_limits(limits: &Limits, memory: bool) -> Result<()> {
    for spec in &TABLE {
        let value = limits.get(spec.limit);
        let (resources, v): (&[Resource], Option<u64>) = match spec.rlimit {
            Rlimit::None => continue,
            Rlimit::Scaled(resources, scale) => (resources, value.map(|v| v.saturating_mul(scale))),
            Rlimit::ProcessesBesidesItself => {
                (&[Resource::Nproc], value.map(|v| v.saturating_add(1)))
            }
            Rlimit::CpuSecondsWithGrace => (&[Resource::Cpu], cpu_seconds(limits)),
        };
        for &r in resources.iter().filter(|&&r| is_memory(r) == memory) {
            let v = v.unwrap_or(RLIM_INFINITY);
            // SIGXCPU at the soft limit, SIGKILL a second later.
            let hard = if r == Resource::Cpu { v.saturating_add(1) } else { v };
            set_limit(resource(r), v, hard)?;
        }
    }
    if !memory {
        FIXED.iter().try_for_each(|&(r, v)| set_limit(r, v, v))?;
    }
    Ok(())
}

/// The limits that bound new mappings.
fn is_memory(r: Resource) -> bool {
    matches!(r, Resource::As | Resource::Data)
}

/// RLIMIT_CPU: `BACKSTOP_FACTOR` times limit + grace and a second more,
/// rounded up. It only backs init's look at the whole run's CPU time,
/// which ends the run at the limit to the millisecond. The kernel checks
/// it against the CPU time its tick samples, which charges a whole tick to
/// whoever runs at that moment: a process that blocks and wakes at each
/// byte it writes to a terminal was charged 1.9 times what it used, and
/// a backstop a second past the limit ended honest runs at two thirds of
/// it with SIGXCPU (a review of the thirteenth round).
/// The kernel counts it in nanoseconds: a number of seconds whose
/// nanoseconds overflow 64 bits would wrap to a tiny limit, so anything
/// past a century is no limit.
fn cpu_seconds(limits: &Limits) -> Option<u64> {
    const CENTURY_S: u64 = 100 * 365 * 86_400;
    let backstop =
        |us: u64| us.saturating_mul(BACKSTOP_FACTOR).div_ceil(1_000_000).saturating_add(1);
    let seconds = limits.deadline_us(Limit::Cpu).map(backstop);
    seconds.filter(|&s| s < CENTURY_S)
}

/// How much looser than the run's CPU limit each process's RLIMIT_CPU is
/// (`cpu_seconds`).
const BACKSTOP_FACTOR: u64 = 3;

fn resource(r: Resource) -> Res {
    match r {
        Resource::Cpu => Res::RLIMIT_CPU,
        Resource::As => Res::RLIMIT_AS,
        Resource::Data => Res::RLIMIT_DATA,
        Resource::Stack => Res::RLIMIT_STACK,
        Resource::Core => Res::RLIMIT_CORE,
        Resource::Fsize => Res::RLIMIT_FSIZE,
        Resource::Nproc => Res::RLIMIT_NPROC,
        Resource::Nofile => Res::RLIMIT_NOFILE,
    }
}

/// Sets a limit of the target. It fails when the caller's own hard limit,
/// which the helper could not raise, is lower than the request.
fn set_limit(resource: Res, soft: u64, hard: u64) -> Result<()> {
    setrlimit(resource, soft, hard).map_err(|e| {
        Error::Setup(format!(
            "cannot set {resource:?} to {hard}: {} (the caller's own hard limit is lower?)",
            sys::strerror(e as i32)
        ))
    })
}
