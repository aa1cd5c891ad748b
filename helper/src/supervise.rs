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

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, ppoll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;
use shared::{Facts, InitReport, Limit, Limits, Network};

use crate::channel::{Channel, FromRun};
use crate::error::{Context, Error, Result};
use crate::harden::Caller;
use crate::identity::Identity;
use crate::init;
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
    /// The run's niceness: its CPU cgroup's weight (`cgroup::RunCgroup`).
    pub niceness: i32,
    pub network: Network,
    /// Just before init's fork: the run's set-up allowance, and so the
    /// backstop, count from here (`init::latest_end_us`).
    pub set_up_started: Instant,
}

/// How long past its wall-clock deadline init has to end the run before
/// it is killed outright.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The moment the run's set-up starts, just before init's fork: for init's
/// clock (which inherits it) and, never earlier, for the backstop. The
/// set-up's allowance counts from here by both (`init::latest_end_us`).
pub fn set_up_clock() -> (u64, Instant) {
    let for_init = sys::monotonic_us();
    (for_init, Instant::now())
}

/// How long after init's fork the supervisor kills init, if it is still
/// alive: `STOP_GRACE` after init's latest deadline, which counts from the
/// same moment (`init::run`), so that init always reports first.
fn backstop(limits: &Limits) -> Option<Duration> {
    let wall_us = limits.deadline_us(Limit::Wall)?;
    Some(Duration::from_micros(init::latest_end_us(wall_us)) + STOP_GRACE)
}

/// Becomes the caller, keeping CAP_KILL only (invariant 6). Called after
/// the root-only steps of the set-up and before the target may exec; on
/// failure the caller of this function kills the run.
///
/// `reply`: the reply pipe, whose only reader is the frontend. A frontend
/// that died before the helper first asked for its parent left it the
/// parent it was handed to (pid 1, or a subreaper), which the check of the
/// parent cannot tell from the frontend; the pipe's end can.
pub fn drop_privileges(caller: &Caller, reply: BorrowedFd) -> Result<()> {
    Identity::supervisor(caller).assume()?;
    // The uid change reset it.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    // A caller that died before the line above would not be noticed.
    let mut fds = [PollFd::new(reply, PollFlags::POLLOUT)];
    let no_reader = poll(&mut fds, PollTimeout::ZERO).is_ok()
        && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLERR));
    if nix::unistd::getppid() != caller.parent || no_reader {
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

/// Waits until init reports the run's end (or ends without a report),
/// passing on the caller's stop order, then returns what init and the
/// target said. Init reports only once every other process of the run is
/// reaped (`init::end_run`): nothing of the run is alive when the caller
/// reads the reply, even though init may still be removing the run's
/// cgroups and its namespaces (`outlast` waits for that).
pub fn watch(run: &Run, channel: &Channel, stop_order: &SignalFd) -> Result<Facts> {
    let started = Instant::now();
    let mut kill_at = backstop(&run.limits).and_then(|after| run.set_up_started.checked_add(after));
    let mut said = Said::default();
    let mut channel_open = true;
    loop {
        if kill_at.is_some_and(|t| Instant::now() >= t) {
            kill_run(run);
            kill_at = None; // once: init's end shows on its pidfd
        }
        let timeout =
            kill_at.map(|t| TimeSpec::from_duration(t.saturating_duration_since(Instant::now())));
        let mut fds = vec![
            PollFd::new(run.init_pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop_order.as_fd(), PollFlags::POLLIN),
        ];
        // Left out once at its end, which would wake us for ever (POLLHUP
        // is reported whatever is asked) until init's pidfd says it is gone.
        if channel_open {
            fds.push(PollFd::new(channel.fd(), PollFlags::POLLIN));
        }
        match ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::Failed("ppoll", e.into())),
        }
        if fds[1].any().unwrap_or(false) {
            let _ = stop_order.read_signal();
            channel.stop_run();
        }
        if fds.get(2).is_some_and(|fd| fd.any().unwrap_or(false)) {
            match channel.recv::<FromRun>()? {
                Some((message, _)) => said.hear(message),
                None => channel_open = false,
            }
            if said.init.is_some() {
                let facts = said.facts(run, started, 0);
                if facts.is_err() {
                    // The target's set-up failed, and the run is over: init
                    // may clean up now, and a kill would cut that short.
                    channel.stop_run();
                    outlast(run);
                }
                return facts;
            }
        }
        if fds[0].any().unwrap_or(false) {
            return collect(run, channel, started, said);
        }
    }
}

/// What the run said on the channel so far.
#[derive(Default)]
struct Said {
    init: Option<InitReport>,
    exec_errno: Option<i32>,
    setup_failed: Option<String>,
}

impl Said {
    fn hear(&mut self, message: FromRun) {
        match message {
            FromRun::SetupFailed(msg) => self.setup_failed = Some(msg),
            FromRun::ExecFailed(errno) => self.exec_errno = Some(errno),
            FromRun::Finished(report) => self.init = Some(report),
        }
    }

    /// `reaped_maxrss_kib`: init's own figure, which stands in for the
    /// run's only when init did not report.
    fn facts(self, run: &Run, started: Instant, reaped_maxrss_kib: u64) -> Result<Facts> {
        if let Some(msg) = self.setup_failed {
            return Err(Error::Setup(msg));
        }
        Ok(Facts {
            init: self.init,
            exec_errno: self.exec_errno,
            supervisor_wall_us: started.elapsed().as_micros() as u64,
            reaped_maxrss_kib,
            uid: run.uid,
            gid: run.gid,
            limits: run.limits.clone(),
            network: run.network,
            cgroup_missing: None,
        })
    }
}

/// Reaps init, which ended without a report of the whole run (it was
/// killed, or its set-up failed), and reads the rest of what the run said.
fn collect(run: &Run, channel: &Channel, started: Instant, mut said: Said) -> Result<Facts> {
    let reaped = sys::wait4(run.init, sys::Wait::Block)
        .context("wait4")?
        .ok_or(Error::Internal("init vanished".into()))?;
    // Every copy of the run's end is closed now: this ends.
    while let Some((message, _)) = channel.recv::<FromRun>()? {
        said.hear(message);
    }
    said.facts(run, started, reaped.maxrss_kib)
}

/// How long after the reply the caller has to close its end of the reply
/// pipe before the run's clean-up starts anyway (`wait_for_caller`).
const CALLER_WAIT: Duration = Duration::from_millis(20);

/// After the reply: waits until the caller has closed its end of the reply
/// pipe (the frontend does once it has judged the reply), at most
/// `CALLER_WAIT`. The run's clean-up, which the supervisor starts by
/// shutting the channel after this, then does not compete with the
/// caller's last steps for the CPUs. No process of the run is alive by now,
/// and the supervisor holds none of the caller's other descriptors.
pub fn wait_for_caller(reply: &File) {
    // A pipe's write end reports POLLERR once no reader is left, whatever
    // is asked.
    let mut fds = [PollFd::new(reply.as_fd(), PollFlags::empty())];
    let timeout = TimeSpec::from_duration(CALLER_WAIT);
    let _ = ppoll(&mut fds, Some(timeout), None);
}

/// After the reply and the channel's shutdown: waits for init to finish its
/// work (removing the run's cgroups) and end, killing it if it takes
/// longer than `STOP_GRACE`, and reaps it. Invariant 7: the caller already
/// has its reply, and nothing of the run is alive (init reported after it
/// reaped the last process); what is left is init's own clean-up, which the
/// supervisor outlasts so that a failure still ends in a kill. The caller's
/// descriptors are no longer held here (`let_go`, `wait_for_caller`).
pub fn outlast(run: &Run) {
    let until = Instant::now() + STOP_GRACE;
    loop {
        let left = TimeSpec::from_duration(until.saturating_duration_since(Instant::now()));
        let mut fds = [PollFd::new(run.init_pidfd.as_fd(), PollFlags::POLLIN)];
        match ppoll(&mut fds, Some(left), None) {
            Ok(1) => break,
            Err(nix::errno::Errno::EINTR) if Instant::now() < until => {}
            _ => {
                kill_run(run);
                break;
            }
        }
    }
    let _ = sys::wait4(run.init, sys::Wait::Block);
}

/// Lets the caller go, before the reply: neither the caller's end nor its
/// usual signals to its process group end the supervisor any more (its
/// parent-death signal is cleared; SIGTERM, SIGINT, SIGHUP and SIGQUIT are
/// blocked), and it leaves the caller's working directory. Init no longer
/// depends on it by then (`init::init_run` clears init's parent-death
/// signal once it has reported). The caller's standard descriptors go
/// right after the reply (`stdio_to_null`), so that a failed reply can
/// still be told on stderr.
pub fn let_go() {
    let _ = nix::sys::prctl::set_pdeathsig(None::<Signal>);
    let mut polite = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT] {
        polite.add(signal);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&polite), None);
    let _ = nix::unistd::chdir("/");
}

/// Points descriptors 0, 1 and 2 at `null`, so that the caller's pipes,
/// the relay's and the pty reach their end with the run's last process
/// rather than with the helper's: a caller that reads its output to the
/// end does not wait for the helper's clean-up. Best effort: without
/// /dev/null they are held until the process exits, as before.
pub fn stdio_to_null(null: Option<&File>) {
    if let Some(null) = null {
        let _ = nix::unistd::dup2_stdin(null);
        let _ = nix::unistd::dup2_stdout(null);
        let _ = nix::unistd::dup2_stderr(null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backstop_comes_a_second_after_inits_latest_deadline() {
        assert_eq!(backstop(&Limits::default()), None);
        let limits = Limits::default().with(Limit::Wall, Some(2000)).with(Limit::Grace, Some(500));
        let latest = init::latest_end_us(2_500_000);
        assert!(latest >= 2_500_000 + 5_000_000, "the set-up's allowance");
        assert_eq!(backstop(&limits), Some(Duration::from_micros(latest) + STOP_GRACE));
    }
}
