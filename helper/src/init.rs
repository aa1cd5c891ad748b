//! Init: pid 1 of the run's own pid namespace, the parent of the target.
//!
//! Invariant 7 rests here: every process of the run lives in that pid
//! namespace, and when init ends, for whatever reason, the kernel kills
//! every process left in it. Init ends the run when the target ends, when
//! its wall-clock deadline passes, or when the supervisor shuts the channel
//! (a limit, or the supervisor died): it kill(-1)s and reaps what is left,
//! so that their CPU time is counted, then reports (the caller may have
//! its reply from then on: nothing of the run is alive), removes the run's
//! cgroups and exits. If init
//! itself dies (the supervisor's SIGKILL, or its parent-death signal), the
//! kernel kills the rest. Init is root in all its ids with CAP_KILL only
//! (`identity::Identity::init`), so neither the caller nor the target can
//! stop it.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_setaffinity, setns, unshare, CloneFlags, CpuSet};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{ForkResult, Pid};
use shared::{InitReport, Root, Stop};

use crate::cgroup::RunCgroup;
use crate::channel::{Channel, FromRun, ToRun};
use crate::enforce::Enforcer;
use crate::error::{Context, Error, Result};
use crate::harden::open_null;
use crate::identity::Identity;
use crate::policy::Plan;
use crate::supervise::stdio_to_null;
use crate::{mounts, sys, target};

/// Pid 1 of the run. Never returns: its end is the end of the run.
///
/// `set_up_from_us` is the moment just before init's fork, from which the
/// run's set-up allowance counts (`latest_end_us`), by init's clock and by
/// the supervisor's backstop alike.
pub fn run(
    mut plan: Plan,
    channel: Channel,
    cpus: CpuSet,
    netns: Option<OwnedFd>,
    set_up_from_us: u64,
) -> ! {
    let mut cgroup = None;
    if let Err(e) = init_run(&mut plan, &channel, &mut cgroup, &cpus, netns, set_up_from_us) {
        let _ = channel.send(&FromRun::setup_failed(&e), &[]);
    }
    // Empty by now: init ends the run (kill(-1), reaping) before it returns,
    // and nothing of the run was started if it failed earlier.
    if let Some(cgroup) = &cgroup {
        cgroup.remove();
    }
    sys::exit_now(0)
}

fn init_run(
    plan: &mut Plan,
    channel: &Channel,
    cgroup: &mut Option<RunCgroup>,
    cpus: &CpuSet,
    netns: Option<OwnedFd>,
    set_up_from_us: u64,
) -> Result<()> {
    // The supervisor took this identity before the fork and init inherits
    // it: checked, not set again (each change of ids is four system calls
    // under musl, on the way to the target's exec).
    Identity::init_setup().verify()?;
    // If the supervisor dies, so does init, and with it the whole run.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    if channel_shut(channel, PollTimeout::ZERO) {
        return Ok(()); // the supervisor died before the line above
    }
    // For `stdio_to_null` below; the host's, before the run's view, which
    // may have none.
    let null = open_null().ok();
    let (jail, pool) = enter_namespaces(plan, netns)?;
    // SIGCHLD is read from a signalfd (closed in the target at its exec);
    // the target unblocks it before exec.
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None).context("sigprocmask")?;
    let sigfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    *cgroup = receive_cgroups(channel, plan, set_up_from_us)?;
    // All of the helper's CPUs again (`main::steer` moved init off the
    // supervisor's until now): the target, and init's count of the CPUs
    // its limit is shared by, have them all.
    sched_setaffinity(Pid::from_raw(0), cpus).context("cannot restore init's CPUs")?;
    let (target, mut clock) =
        fork_target(plan, (jail.as_ref(), &pool), channel, cgroup.as_ref(), set_up_from_us)?;
    clock.wait_for_exec(channel);
    // The target has the caller's descriptors; init needs none of them, and
    // must not keep the caller waiting for them past its report, nor hold
    // the caller's directories.
    stdio_to_null(null.as_ref());
    drop((null, jail, pool, plan.chroot.take(), std::mem::take(&mut plan.binds)));
    let _ = nix::unistd::chdir("/");
    Identity::init().assume()?;
    let mut enforcer = Enforcer::new(&plan.limits, cgroup.as_ref());
    let (why, ended) = wait_for_target(target, &sigfd, channel, &mut clock, &mut enforcer)?;
    let mut report = end_run(target, why, ended, &mut clock)?;
    report.peak_sampled_kib = enforcer.peak_sampled_kib;
    report.cgroup = cgroup.as_ref().map(|c| c.counters(plan.memory_kib));
    // Fails harmlessly if the supervisor is gone.
    let _ = channel.send(&FromRun::Finished(report), &[]);
    // Nothing of the run is left to contain: the clean-up (`run`) goes on
    // if the supervisor, which the caller may kill once it has its reply,
    // goes first.
    let _ = nix::sys::prctl::set_pdeathsig(None::<Signal>);
    // The clean-up waits until the caller has read the reply: the
    // supervisor then shuts the channel (`supervise::wait_for_caller`), or
    // is gone. A supervisor the caller stopped holds it `CLEANUP_HOLD_MS`
    // at most.
    let _ = channel_shut(channel, PollTimeout::from(CLEANUP_HOLD_MS));
    Ok(())
}

/// How long init's clean-up waits at most for the supervisor's word that
/// the caller has the reply (well past `supervise::wait_for_caller`'s own
/// bound).
const CLEANUP_HOLD_MS: u16 = 100;

/// The run's namespaces (its network namespace made for it beside the
/// supervisor's checks, `network`, unless the host's is shared) and its
/// view of the file system (`mounts`). The jail and the directories to
/// show are copied first, while init is still in the helper's mount
/// namespace (the kernel copies no mount of another); the pool's place is
/// taken in the run's, before a minimal root becomes init's root.
fn enter_namespaces(
    plan: &Plan,
    netns: Option<OwnedFd>,
) -> Result<(Option<OwnedFd>, crate::netpool::PoolPlace)> {
    match (plan.share_net, netns) {
        (false, Some(netns)) => setns(netns, CloneFlags::CLONE_NEWNET)
            .context("cannot enter the run's network namespace")?,
        (true, None) => {}
        _ => return Err(Error::Internal("a network namespace not asked for".into())),
    }
    let jail = plan.chroot.as_ref().map(mounts::jail_mount).transpose()?;
    let places = mounts::scratch_places(plan.host_tmp);
    let copies = mounts::copy_binds(plan, &places)?;
    let flags = CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS;
    unshare(flags).context("cannot create the run's namespaces")?;
    let pool = crate::netpool::place();
    // What init makes in its own mounts gets the mode it names in full (a
    // device node the host's bits) without a chmod; the target takes the
    // caller's umask back (`target::enter`).
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    if plan.root == Root::Minimal && jail.is_none() {
        mounts::minimal_root(plan, &copies)?;
        return Ok((None, pool));
    }
    mounts::read_only_host()?;
    let scratch = mounts::private_mounts(plan, &places)?;
    match &jail {
        Some(jail) => mounts::jail_dev(jail, scratch)?,
        None => {
            mounts::show_on_host(plan, &copies, &places)?;
            // Where the target starts when no copy was attached there.
            mounts::working_directory_is_visible()?;
        }
    }
    Ok((jail, pool))
}

/// Forks the target (`target::enter`), which tells the supervisor itself
/// why it could not exec. Returns it with the run's wall clock. Init then
/// leaves the pool of kept network namespaces out of the run's mount
/// namespace, which the target shares (`netpool::leave_out`; the
/// propagation of its mounts was cut in `enter_namespaces`), beside the
/// target's set-up rather than before it: the call waits for an expedited
/// grace period, a tenth of a millisecond here. The target waits for
/// init's word that it is done before it execs.
fn fork_target(
    plan: &Plan,
    (jail, pool): (Option<&OwnedFd>, &crate::netpool::PoolPlace),
    channel: &Channel,
    cgroup: Option<&RunCgroup>,
    set_up_from_us: u64,
) -> Result<(Pid, WallClock)> {
    let (start_rx, start_tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).context("pipe")?;
    let (pool_left_rx, pool_left_tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")?;
    let forked_us = sys::monotonic_us();
    // Born in the run's cgroup v2 directory when the kernel can (else
    // forked, and it moves itself there first).
    let into = cgroup.and_then(RunCgroup::v2_dir).and_then(|dir| sys::fork_into_cgroup(dir).ok());
    let born_in_v2 = into.is_some();
    let forked = match into {
        Some(forked) => forked,
        None => sys::fork().context("cannot fork the target")?,
    };
    match forked {
        ForkResult::Child => {
            drop((start_rx, pool_left_tx));
            let pipes = (&start_tx, &pool_left_rx);
            let why = target::enter(plan, jail, channel, pipes, (cgroup, born_in_v2));
            let _ = channel.send(&why, &[]);
            sys::exit_now(127);
        }
        ForkResult::Parent { child } => {
            crate::netpool::leave_out(pool);
            // A failed write leaves the target waiting in vain: it gets no
            // byte, and fails its set-up.
            let _ = nix::unistd::write(&pool_left_tx, &[1]);
            drop((pool_left_rx, pool_left_tx));
            let limit_us = plan.limits.deadline_us(shared::Limit::Wall);
            let clock = WallClock {
                start_rx,
                set_up_from_us,
                forked_us,
                start_us: set_up_from_us,
                confirmed: false,
                limit_us,
            };
            Ok((child, clock))
        }
    }
}

/// The supervisor's first message: the run's cgroups (made by it while
/// init builds the namespaces), or word that there are none. Waited for
/// until the run's latest end at most: a supervisor the caller froze (its
/// cgroup's freezer holds root's processes too) before it sent them would
/// otherwise hold init, and the run's namespaces, for as long.
fn receive_cgroups(
    channel: &Channel,
    plan: &Plan,
    set_up_from_us: u64,
) -> Result<Option<RunCgroup>> {
    while let Some(limit) = plan.limits.deadline_us(shared::Limit::Wall) {
        let since = sys::monotonic_us().saturating_sub(set_up_from_us);
        let left = Duration::from_micros(latest_end_us(limit).saturating_sub(since));
        let mut fds = [PollFd::new(channel.fd(), PollFlags::POLLIN)];
        match poll(&mut fds, poll_timeout(Some(left))) {
            Ok(0) => return Err(Error::Setup("the supervisor sent no cgroups in time".into())),
            Err(nix::errno::Errno::EINTR) => continue,
            _ => break,
        }
    }
    match channel.recv::<ToRun>()? {
        Some((ToRun::Cgroups(layout), fds)) => match layout {
            Some(layout) => RunCgroup::from_layout(layout, fds, plan.uid.as_raw()).map(Some),
            None => Ok(None),
        },
        Some((ToRun::Go, _)) => Err(Error::Internal("go before the cgroups".into())),
        None => Err(Error::Setup("the supervisor went away".into())),
    }
}

/// A poll's timeout for `wait` (`None`: none), in whole milliseconds
/// rounded up (waking early only costs another turn), at most
/// `i32::MAX`.
fn poll_timeout(wait: Option<Duration>) -> PollTimeout {
    wait.map_or(PollTimeout::NONE, |d| {
        let ms = d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
    })
}

/// Whether the supervisor shut its end (its order to stop) or died, within
/// `timeout`.
fn channel_shut(channel: &Channel, timeout: PollTimeout) -> bool {
    let mut fds = [PollFd::new(channel.fd(), shut_flags())];
    matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
}

/// Why init is ending the run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    TargetEnded,
    Deadline,
    /// A limit init enforces, or the supervisor shut the channel (the
    /// caller's order, or it is gone).
    Stopped(Stop),
}

/// The run's wall clock. It starts when the target is about to exec: the
/// target writes that moment on a pipe that init reads without waiting for
/// it, so that the target's set-up is neither counted nor taken from its
/// wall-clock limit. Until the moment is known, init's fork stands for
/// it: a set-up that never ends (a caller that stops the supervisor,
/// which has its uid, before the target's go) still ends the run.
struct WallClock {
    start_rx: OwnedFd,
    /// Just before init's fork (`run`).
    set_up_from_us: u64,
    /// The target's fork: no exec comes before it.
    forked_us: u64,
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
                self.start_us = u64::from_le_bytes(stamp).max(self.forked_us);
                self.confirmed = true;
            }
        }
        self.start_us
    }

    /// Waits off the CPU until the target confirms its exec or is gone,
    /// the supervisor shuts the channel, or the time left (`left_us`) is
    /// up. A fork's child waits for a CPU while its parent runs, and the
    /// other CPU of a small machine is the supervisor's at that moment:
    /// the target's set-up, on the run's way to exec, would wait behind
    /// ours, which can wait for it instead.
    fn wait_for_exec(&mut self, channel: &Channel) {
        let left = self.left_us().map(Duration::from_micros);
        let mut fds = [
            PollFd::new(self.start_rx.as_fd(), PollFlags::POLLIN),
            PollFd::new(channel.fd(), shut_flags()),
        ];
        let _ = poll(&mut fds, poll_timeout(left));
    }

    fn elapsed_us(&mut self) -> u64 {
        sys::monotonic_us().saturating_sub(self.start_us())
    }

    /// Time left before the deadline, or before init looks again; `None`:
    /// no limit.
    fn left_us(&mut self) -> Option<u64> {
        let limit = self.limit_us?;
        let start = self.start_us();
        let exec = self.confirmed.then_some(start);
        Some(left_us(limit, self.set_up_from_us, exec, sys::monotonic_us()))
    }
}

/// Time left at `now` of a run whose set-up started at `set_up_from` (just
/// before init's fork) and whose target confirmed its exec at `exec`, under
/// a wall limit (with grace) of `limit`. The target has its whole limit
/// from its exec if the set-up took no longer than `SETUP_ALLOWANCE_US`;
/// whatever it took, the run ends by `latest_end_us` after `set_up_from`,
/// which the supervisor's backstop counts from too (`supervise::watch`).
/// Until the exec is confirmed, init looks again within the limit.
fn left_us(limit: u64, set_up_from: u64, exec: Option<u64>, now: u64) -> u64 {
    let latest = latest_end_us(limit).saturating_sub(now.saturating_sub(set_up_from));
    match exec {
        Some(exec) => limit.saturating_sub(now.saturating_sub(exec)).min(latest),
        None => latest.min(limit.max(1)),
    }
}

/// How long after init's fork a run with a wall limit (with grace) of
/// `limit_us` ends at the latest, by init's clock: the limit and the
/// set-up's allowance.
pub fn latest_end_us(limit_us: u64) -> u64 {
    limit_us.saturating_add(SETUP_ALLOWANCE_US)
}

/// How long the run's set-up, from init's fork to the target's exec, may
/// take without taking from the wall-clock limit. It takes about a
/// millisecond; what may lengthen it (init's look at the caller's
/// directories and the target's chdir, on a slow mount; the supervisor's
/// sweep of stale cgroups) is given seconds.
const SETUP_ALLOWANCE_US: u64 = 5_000_000;

/// Reaps every process that ends in the namespace (orphans come to init)
/// until the target ends, the deadline passes, a limit of the whole run is
/// reached or the supervisor shuts the channel.
fn wait_for_target(
    target: Pid,
    sigfd: &SignalFd,
    channel: &Channel,
    clock: &mut WallClock,
    enforcer: &mut Enforcer,
) -> Result<(Why, Option<(i32, u64)>)> {
    loop {
        // A stopped target ends the run too, as in the original, rather than
        // wait for the wall clock (WUNTRACED: its stop is seen once).
        while let Some(reaped) =
            sys::wait4(Pid::from_raw(-1), sys::Wait::NoHangUntraced).unwrap_or(None)
        {
            if reaped.pid == target {
                let ended = (reaped.status, clock.elapsed_us());
                return Ok((Why::TargetEnded, Some(ended)));
            }
        }
        if let Some(stop) = enforcer.look() {
            return Ok((Why::Stopped(stop), None));
        }
        let deadline = match clock.left_us() {
            Some(0) => return Ok((Why::Deadline, None)),
            left => left.map(Duration::from_micros),
        };
        let wait = [deadline, enforcer.wait()].into_iter().flatten().min();
        let timeout = poll_timeout(wait);
        let mut fds = [
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(channel.fd(), shut_flags()),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::Failed("poll", e.into())),
        }
        // nix does not know POLLRDHUP: revents holding it read as `None`.
        if fds[1].any() != Some(false) {
            return Ok((Why::Stopped(Stop::ByCaller), None));
        }
        if fds[0].any().unwrap_or(false) {
            let _ = sigfd.read_signal();
        }
    }
}

/// Ends the run: kill(-1) from pid 1 reaches every other process of the
/// namespace and nothing else (forks racing with it are killed too: the
/// kernel refuses to finish a fork with a fatal signal pending); reaps them
/// all, so that the CPU time of every process of the run is in init's
/// rusage; reports.
fn end_run(
    target: Pid,
    why: Why,
    ended: Option<(i32, u64)>,
    clock: &mut WallClock,
) -> Result<InitReport> {
    let wall_us = ended.map_or_else(|| clock.elapsed_us(), |(_, us)| us);
    let mut status = ended.map_or(libc::SIGKILL, |(status, _)| status);
    // kill(-1) walks every process of the machine (its cost grows with the
    // host's). A target that ended and was reaped leaves init alone when it
    // has no child: every process of the namespace whose parent ended is
    // init's child, and no process is left to fork another.
    if ended.is_none() || has_children() {
        let _ = nix::sys::signal::kill(Pid::from_raw(-1), Signal::SIGKILL);
    }
    while let Some(reaped) = sys::wait4(Pid::from_raw(-1), sys::Wait::Block).unwrap_or(None) {
        // A target that stopped is reaped only now: its stop is its end.
        if reaped.pid == target && ended.is_none() {
            status = reaped.status;
        }
    }
    let children = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Ok(InitReport {
        status,
        deadline_passed: why == Why::Deadline,
        stopped: match why {
            Why::Stopped(stop) => Some(stop),
            _ => None,
        },
        wall_us,
        user_us: us(children.user_time()),
        sys_us: us(children.system_time()),
        csw_voluntary: children.voluntary_context_switches() as u64,
        csw_forced: children.involuntary_context_switches() as u64,
        maxrss_kib: children.max_rss() as u64,
        peak_sampled_kib: 0,
        cgroup: None,
    })
}

/// Whether init has a child, dead or alive (waitid without reaping).
fn has_children() -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let any = WaitPidFlag::WEXITED
        | WaitPidFlag::WSTOPPED
        | WaitPidFlag::WCONTINUED
        | WaitPidFlag::WNOHANG
        | WaitPidFlag::WNOWAIT
        | WaitPidFlag::__WALL;
    waitid(Id::All, any) != Err(nix::errno::Errno::ECHILD)
}

/// The peer shut its end or closed it: POLLRDHUP, which nix does not name
/// (POLLIN would also wake for the target's pending go).
fn shut_flags() -> PollFlags {
    PollFlags::from_bits_retain(libc::POLLRDHUP)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_target_confirmed_within_the_allowance_has_its_whole_limit() {
        let exec = SETUP_ALLOWANCE_US - 1;
        assert_eq!(left_us(2 * S, 0, Some(exec), exec), 2 * S);
        assert_eq!(left_us(2 * S, 0, Some(exec), exec + 2 * S), 0);
    }

    #[test]
    fn a_slower_set_up_is_taken_from_the_limit() {
        let exec = SETUP_ALLOWANCE_US + S;
        assert_eq!(left_us(2 * S, 0, Some(exec), exec), S);
        // The allowance counts from init's fork, not the target's.
        assert_eq!(left_us(2 * S, 3 * S, Some(exec + 3 * S), exec + 3 * S), S);
    }

    #[test]
    fn an_unconfirmed_target_is_looked_at_within_the_limit_and_cut_at_the_latest_end() {
        assert_eq!(left_us(2 * S, 0, None, 0), 2 * S);
        assert_eq!(left_us(2 * S, 0, None, latest_end_us(2 * S) - 1), 1);
        assert_eq!(left_us(2 * S, 0, None, latest_end_us(2 * S)), 0);
    }

    /// The supervisor's backstop (`supervise::watch`) counts
    /// `latest_end_us` from the same moment, just before init's fork:
    /// however long init's and the target's set-up take, and whenever the
    /// target confirms, init's deadline comes no later.
    #[test]
    fn no_deadline_is_later_than_the_latest_end() {
        let limit = 2 * S;
        let from = 7 * S;
        let latest = from + latest_end_us(limit);
        let quarters = || (from..=latest + S).step_by(250_000);
        for exec in quarters() {
            for now in quarters() {
                let confirmed = (exec <= now).then_some(exec);
                let left = left_us(limit, from, confirmed, now);
                let due = if now >= latest { left == 0 } else { now + left <= latest };
                assert!(due, "exec {exec}, now {now}, left {left}");
            }
        }
    }
}
