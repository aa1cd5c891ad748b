//! The supervisor: the helper's side of the fork once the run has started.
//!
//! Invariant 6: before the target may exec, and before it reads anything
//! of the run's, the supervisor becomes the caller keeping CAP_KILL only
//! (`identity::Identity::supervisor`), to kill the run's init (uid 0).
//!
//! It enforces nothing the caller could stop: init does (`enforce`). It
//! waits on a pidfd of init and on the caller's stop order (SIGUSR1, read
//! from a signalfd), which it passes on by shutting the channel; it kills
//! init outright only if init outlives its own wall-clock deadline. It
//! judges nothing: it returns what it saw (`shared::Facts`), and the
//! frontend builds the verdict.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;
use shared::{Facts, Limit, Limits, Network};

use crate::channel::{Channel, FromRun};
use crate::error::{Context, Error, Result};
use crate::harden::Caller;
use crate::identity::Identity;
use crate::sys;

/// Everything the supervisor knows about the run it watches.
pub struct Run {
    pub init: Pid,
    pub init_pidfd: OwnedFd,
    pub uid: u32,
    pub gid: u32,
    pub limits: Limits,
    /// The limit of the run's memory cgroup (`policy::Plan::memory_kib`).
    pub memory_kib: Option<u64>,
    pub network: Network,
}

/// How long past its wall-clock deadline init has to end the run before
/// it is killed outright.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Becomes the caller, keeping CAP_KILL only (invariant 6). Called after
/// the root-only steps of the set-up and before the target may exec; on
/// failure the caller of this function kills the run.
pub fn drop_privileges(caller: &Caller) -> Result<()> {
    Identity::supervisor(caller).assume()?;
    // The uid change reset it.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    // A caller that died before the line above would not be noticed.
    if nix::unistd::getppid() != caller.parent {
        return Err(Error::Setup("the caller went away".into()));
    }
    Ok(())
}

/// Kills the whole run at once: init's death takes every process of its
/// pid namespace with it (the run's CPU time is then known only from
/// samples). Used when init does not answer, or on the supervisor's errors.
pub fn kill_run(run: &Run) {
    let _ = sys::pidfd_kill(&run.init_pidfd);
}

/// Kills the run and waits until init is gone: init's exit completes only
/// once every process of its namespace is dead, so nothing of the run is
/// left when the helper reports its failure (invariant 7).
pub fn abort_run(run: &Run) {
    kill_run(run);
    let _ = sys::wait4(run.init, sys::Wait::Block);
}

/// Waits until init ends, passing on the caller's stop order, then
/// collects what init and the target said.
pub fn watch(run: &Run, channel: &Channel, stop_order: &SignalFd) -> Result<Facts> {
    let started = Instant::now();
    let mut kill_at = run
        .limits
        .deadline_us(Limit::Wall)
        .and_then(|us| started.checked_add(Duration::from_micros(us) + STOP_GRACE));
    loop {
        if kill_at.is_some_and(|t| Instant::now() >= t) {
            kill_run(run);
            kill_at = None; // once: init's end shows on its pidfd
        }
        let timeout =
            kill_at.map(|t| TimeSpec::from_duration(t.saturating_duration_since(Instant::now())));
        let mut fds = [
            PollFd::new(run.init_pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop_order.as_fd(), PollFlags::POLLIN),
        ];
        match ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::Failed("ppoll", e.into())),
        }
        if fds[1].any().unwrap_or(false) {
            let _ = stop_order.read_signal();
            channel.stop_run();
        }
        if fds[0].any().unwrap_or(false) {
            return collect(run, channel, started);
        }
    }
}

/// Reaps init and reads what the run said: init's report of the whole run
/// (absent if init was killed), the target's exec error.
fn collect(run: &Run, channel: &Channel, started: Instant) -> Result<Facts> {
    let reaped = sys::wait4(run.init, sys::Wait::Block)
        .context("wait4")?
        .ok_or(Error::Internal("init vanished".into()))?;
    let mut init = None;
    let mut exec_errno = None;
    // Every copy of the run's end is closed now: this ends.
    while let Some((message, _)) = channel.recv::<FromRun>()? {
        match message {
            FromRun::SetupFailed(msg) => return Err(Error::Setup(msg)),
            FromRun::ExecFailed(errno) => exec_errno = Some(errno),
            FromRun::Finished(report) => init = Some(report),
        }
    }
    Ok(Facts {
        init,
        exec_errno,
        supervisor_wall_us: started.elapsed().as_micros() as u64,
        reaped_maxrss_kib: reaped.maxrss_kib,
        uid: run.uid,
        gid: run.gid,
        limits: run.limits.clone(),
        network: run.network,
        cgroup_missing: None,
    })
}
