//! The supervisor: the helper's side of the fork once the run has started.
//!
//! Invariant 6: before the target may exec (the go byte), and before the
//! supervisor reads anything of the run's, it becomes the caller (all
//! three uids and gids, no supplementary groups) and keeps one capability,
//! CAP_KILL, to kill the run's init (uid 0); bounding, inheritable and
//! ambient sets are empty, it is not dumpable (so neither the caller nor the
//! target may ptrace it) and has no_new_privs.
//!
//! It waits without sleeping: poll on a pidfd of init (and on the output
//! relay, if any), with a timeout only when a CPU or memory limit needs a
//! look at /proc. The figures come from the kernel: wait4's rusage for the
//! whole run when init is reaped, /proc samples in between.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use caps::{CapSet, Capability, CapsHashSet};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::sys::time::TimeSpec;
use nix::unistd::{setgroups, setresgid, setresuid, Pid};
use shared::{End, LimitKind, Limits, Outcome, Source};

use crate::cgroup::CpuCounter;
use crate::error::{Context, Error, Result};
use crate::harden::Caller;
use crate::sandbox::{InitReport, EXEC_FAILED, SETUP_FAILED};
use crate::sys;

/// Descriptors the supervisor keeps after the fork.
pub struct SupervisorEnds {
    pub status_rx: OwnedFd,
    /// Held open for as long as the supervisor lives; init watches it.
    pub lifeline_tx: OwnedFd,
    pub error_rx: OwnedFd,
    /// Read ends of the target's stdout and stderr, when output is counted.
    pub relay: Option<(OwnedFd, OwnedFd)>,
}

/// Everything the supervisor knows about the run it watches.
pub struct Run {
    pub init: Pid,
    pub init_pidfd: OwnedFd,
    pub uid: u32,
    pub gid: u32,
    pub limits: Limits,
    /// How many CPUs the run may use at once (at least 1).
    pub cpus: u64,
    /// The run's CPU time from its cgroup: one read instead of a walk of
    /// /proc, and exact for processes already reaped.
    pub cpu_counter: Option<CpuCounter>,
    /// Whether the kernel enforces `rss_kib` (a memory cgroup): then the
    /// supervisor need not sample memory.
    pub memory_limited: bool,
}

/// Shortest pause between two looks at a CPU limit: a look costs tens of
/// microseconds, and the limit is then hit within about this much.
const MIN_LOOK_US: u64 = 250;

/// CPU time left under the limit below which the supervisor looks again
/// at once instead of sleeping: at most this much of its own CPU is spent
/// so that the limit is hit within a look's cost (tens of microseconds).
const SPIN_US: u64 = 3000;

/// How long init has to end the run when asked before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Becomes the caller, keeping CAP_KILL only. Called after the root-only
/// steps of the set-up (the run's cgroups, the uid check, the sweep) and
/// before the target may exec; on failure the caller of this function
/// kills the run.
pub fn drop_privileges(caller: Caller) -> Result<()> {
    let cap_err = |e: caps::errors::CapsError| Error::Refused(format!("capabilities: {e}"));
    // The bounding set needs CAP_SETPCAP to shrink: do it while root.
    crate::harden::clear_bounding_set()?;
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
    setgroups(&[]).context("setgroups")?;
    setresgid(caller.gid, caller.gid, caller.gid).context("setresgid")?;
    setresuid(caller.uid, caller.uid, caller.uid).context("setresuid")?;
    let kill: CapsHashSet = [Capability::CAP_KILL].into_iter().collect();
    // Effective first: it must stay a subset of permitted (for a root
    // caller it is still full here).
    caps::set(None, CapSet::Effective, &kill).map_err(cap_err)?;
    caps::set(None, CapSet::Permitted, &kill).map_err(cap_err)?;
    caps::clear(None, CapSet::Inheritable).map_err(cap_err)?;
    caps::clear(None, CapSet::Ambient).map_err(cap_err)?;
    nix::sys::prctl::set_keepcaps(false).context("prctl(PR_SET_KEEPCAPS)")?;
    // The uid change reset these two; set them again.
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE)")?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    // A caller that died before the line above would not be noticed.
    if nix::unistd::getppid() != caller.parent {
        return Err(Error::Setup("the caller went away".into()));
    }
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    Ok(())
}

/// SIGKILLs every process of the run but init, from here: a limit then
/// costs no wake-up of init. Each pid is held by a pidfd and checked to
/// have the run's uid (which no other process has, invariant 3) before the
/// signal, so a pid reused meanwhile is never hit.
fn kill_processes_of(run: &Run) {
    let uid = run.uid.to_string();
    for pid in run_processes(run.init) {
        if pid == run.init {
            continue;
        }
        let Ok(pidfd) = sys::pidfd_open(pid) else {
            continue; // ended meanwhile
        };
        let ours = std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|ids| ids.split_whitespace().next() == Some(uid.as_str()))
        });
        if ours {
            let _ = sys::pidfd_kill(&pidfd);
        }
    }
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
    let _ = sys::wait4(run.init, false);
}

/// Live processes of the run, found from init through /proc's children
/// lists (pids as the supervisor's namespace sees them).
fn run_processes(init: Pid) -> Vec<Pid> {
    let mut seen: HashSet<i32> = HashSet::new();
    let mut queue = vec![init.as_raw()];
    while let Some(pid) = queue.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path().join("children");
            if let Ok(text) = std::fs::read_to_string(path) {
                queue.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    seen.into_iter().map(Pid::from_raw).collect()
}

/// Reads one field of /proc/PID/stat (1-based, counted after the command
/// name, which may contain spaces).
fn stat_field(text: &str, n: usize) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 2..];
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

/// A sample of the run: CPU time so far (live processes exactly, reaped
/// ones in clock ticks) and resident memory of all its processes.
fn sample(init: Pid) -> (u64, u64) {
    let tick_us = 1_000_000 / 100; // USER_HZ is 100 on Linux
    let page_kib = 4;
    let mut cpu_us = 0;
    let mut rss_kib = 0;
    for pid in run_processes(init) {
        // Init's own time (building the namespaces) is not the run's.
        if pid != init {
            cpu_us += sys::process_cpu_ns(pid).unwrap_or(0) / 1000;
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let reaped = stat_field(&stat, 16).unwrap_or(0) + stat_field(&stat, 17).unwrap_or(0);
            cpu_us += reaped * tick_us;
            rss_kib += stat_field(&stat, 24).unwrap_or(0) * page_kib;
        }
    }
    (cpu_us, rss_kib)
}

/// Copies what the target wrote on one relay pipe to the caller's own
/// descriptor (unbuffered: nothing may wait in a buffer when the helper
/// exits), counting it. Returns false at end of file.
fn relay_once(from: &OwnedFd, to: BorrowedFd<'_>, counted: &mut u64, limit: u64) -> bool {
    let mut buf = [0u8; 65536];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) => false,
        Ok(n) => {
            let allowed = limit.saturating_sub(*counted).min(n as u64) as usize;
            *counted += n as u64;
            let mut rest = &buf[..allowed];
            while !rest.is_empty() {
                match nix::unistd::write(to, rest) {
                    Ok(w) => rest = &rest[w..],
                    Err(nix::errno::Errno::EINTR) => {}
                    // A reader that went away only stops the copy.
                    Err(_) => break,
                }
            }
            true
        }
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => true,
        Err(_) => false,
    }
}

/// Watches the run until init ends, enforcing the limits that the kernel
/// cannot (CPU of the whole run to the millisecond, resident memory,
/// output), then collects the figures.
pub fn watch(run: &Run, ends: SupervisorEnds) -> Result<Outcome> {
    let l = &run.limits;
    let started = Instant::now();
    let cpu_kill_us = l
        .cpu_ms
        .map(|ms| ms.saturating_add(l.grace_ms).saturating_mul(1000));
    // Init ends the run at the wall deadline; should it fail to, the
    // supervisor kills it a little later.
    let mut wall_backstop = l.wall_ms.and_then(|ms| {
        started.checked_add(Duration::from_millis(ms.saturating_add(l.grace_ms)) + STOP_GRACE)
    });
    let output_limit = l.output_bytes.unwrap_or(u64::MAX);
    let cpus = run.cpus;
    let sample_memory = l.rss_kib.is_some() && !run.memory_limited;
    let mut fired: Option<LimitKind> = None;
    let mut peak_sampled_kib = 0;
    let mut cpu_sampled_us = 0;
    let mut output = 0u64;
    let mut relay_open = [ends.relay.is_some(); 2];
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    // When to look at /proc next: a CPU limit cannot be reached sooner than
    // (what is left) / (number of CPUs); memory is looked at every 10 ms.
    let next_look = |cpu_used: u64| -> Option<Duration> {
        let cpu = cpu_kill_us.map(|kill| {
            let left = kill.saturating_sub(cpu_used);
            // Waking up from a sleep can take a millisecond or more (a
            // virtual CPU): over the last stretch, look without sleeping.
            if left < SPIN_US {
                return Duration::ZERO;
            }
            Duration::from_micros((left / cpus).max(MIN_LOOK_US))
        });
        let mem = sample_memory.then(|| Duration::from_millis(10));
        match (cpu, mem) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    let mut look_at = next_look(0).and_then(|d| started.checked_add(d));
    let mut lifeline = Some(ends.lifeline_tx);
    // Set once the run was asked to end: init gets this long to do it
    // before it is killed outright.
    let mut stop_by: Option<Instant> = None;
    let mut stop =
        |kind: LimitKind, fired: &mut Option<LimitKind>, stop_by: &mut Option<Instant>| {
            if fired.is_none() {
                *fired = Some(kind);
                // Stop the run's processes at once, rather than after init
                // has woken up; init then kills what is left and reaps.
                kill_processes_of(run);
                // Closing the lifeline tells init to kill and reap the run.
                lifeline = None;
                *stop_by = Some(Instant::now() + STOP_GRACE);
            }
        };

    loop {
        let now = Instant::now();
        if stop_by.is_some_and(|t| now >= t) || wall_backstop.is_some_and(|t| now >= t) {
            kill_run(run);
            // Once is enough: init's end shows on its pidfd.
            (stop_by, wall_backstop) = (None, None);
        }
        let wake = [look_at, stop_by, wall_backstop]
            .into_iter()
            .flatten()
            .min();
        // ppoll: a CPU limit is looked at closer than a millisecond.
        let timeout =
            wake.map(|t| TimeSpec::from_duration(t.saturating_duration_since(Instant::now())));
        let mut fds = vec![PollFd::new(run.init_pidfd.as_fd(), PollFlags::POLLIN)];
        if let Some((out, err)) = &ends.relay {
            if relay_open[0] {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
            if relay_open[1] {
                fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
            }
        }
        match ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::Sys("ppoll", e.into())),
        }
        let init_ended = fds[0].any().unwrap_or(false);
        let ready: Vec<bool> = fds[1..].iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if let Some((out, err)) = &ends.relay {
            let mut i = 0;
            for (k, (pipe, to)) in [(out, stdout.as_fd()), (err, stderr.as_fd())]
                .into_iter()
                .enumerate()
            {
                if relay_open[k] {
                    if ready[i] {
                        relay_open[k] = relay_once(pipe, to, &mut output, output_limit);
                    }
                    i += 1;
                }
            }
            if output > output_limit {
                stop(LimitKind::Output, &mut fired, &mut stop_by);
            }
        }
        if init_ended {
            break;
        }
        if look_at.is_some_and(|t| Instant::now() >= t) {
            let (cpu_us, rss_kib) = match &run.cpu_counter {
                Some(counter) if !sample_memory => (counter.cpu_us().unwrap_or(0), 0),
                _ => sample(run.init),
            };
            cpu_sampled_us = cpu_sampled_us.max(cpu_us);
            peak_sampled_kib = peak_sampled_kib.max(rss_kib);
            if cpu_kill_us.is_some_and(|kill| cpu_us >= kill) {
                stop(LimitKind::Cpu, &mut fired, &mut stop_by);
            } else if sample_memory && l.rss_kib.is_some_and(|max| rss_kib > max) {
                stop(LimitKind::Memory, &mut fired, &mut stop_by);
            }
            look_at = if fired.is_some() {
                None
            } else {
                next_look(cpu_us).and_then(|d| Instant::now().checked_add(d))
            };
        }
    }

    let reaped = sys::wait4(run.init, false)
        .context("wait4")?
        .ok_or(Error::Refused("init vanished".into()))?;
    let supervisor_wall_us = started.elapsed().as_micros() as u64;
    // Every process of the run is gone now, so the relays end.
    if let Some((out, err)) = &ends.relay {
        while relay_once(out, stdout.as_fd(), &mut output, output_limit) {}
        while relay_once(err, stderr.as_fd(), &mut output, output_limit) {}
        if output > output_limit && fired.is_none() {
            fired = Some(LimitKind::Output);
        }
    }

    let mut error = Vec::new();
    let _ = File::from(ends.error_rx).read_to_end(&mut error);
    let mut exec_error = None;
    match error.first() {
        Some(&SETUP_FAILED) => {
            return Err(Error::Setup(
                String::from_utf8_lossy(&error[1..]).into_owned(),
            ))
        }
        Some(&EXEC_FAILED) if error.len() == 5 => {
            let errno = i32::from_le_bytes([error[1], error[2], error[3], error[4]]);
            exec_error = Some(sys::strerror(errno));
        }
        _ => {}
    }

    let mut status = Vec::new();
    let _ = File::from(ends.status_rx).read_to_end(&mut status);
    let report = InitReport::from_bytes(&status);
    let cgroup = report.as_ref().and_then(|r| r.cgroup.clone());
    if cgroup
        .as_ref()
        .is_some_and(|c| c.oom_kills > 0 && c.memory_limit_hit)
        && fired.is_none()
    {
        // The kernel killed a process of the run at the run's own memory
        // limit (not for a parent cgroup's or the machine's memory).
        fired = Some(LimitKind::Memory);
    }
    let report = report.as_ref();
    let end = match report {
        Some(r) => decode_status(r.status),
        None => End::Signaled(libc::SIGKILL),
    };
    let wall_us = match report {
        Some(r) => r.wall_us,
        None => supervisor_wall_us,
    };
    // Init reports the run's exact rusage; if it was killed outright,
    // only the samples are left.
    let (user_us, sys_us, cpu_source) = match report {
        Some(r) => (r.user_us, r.sys_us, Source::Rusage),
        None => (cpu_sampled_us, 0, Source::Proc),
    };
    let cpu_us = user_us + sys_us;
    let limit = fired.or_else(|| match (report, end) {
        (Some(r), _) if r.timed_out => Some(LimitKind::Wall),
        (_, End::Signaled(libc::SIGXCPU)) => Some(LimitKind::Cpu),
        (_, End::Signaled(libc::SIGXFSZ)) => Some(LimitKind::FileSize),
        _ if l.cpu_ms.is_some_and(|ms| cpu_us > ms.saturating_mul(1000)) => Some(LimitKind::Cpu),
        _ if l
            .wall_ms
            .is_some_and(|ms| wall_us > ms.saturating_mul(1000)) =>
        {
            Some(LimitKind::Wall)
        }
        _ => None,
    });
    let maxrss_kib = report.map_or(reaped.maxrss_kib, |r| r.maxrss_kib);
    // Resident memory, as the original reported it. The cgroup's peak (all
    // processes at once, but also the page cache the run read in, such as
    // its input files) is a figure of its own, in `cgroup`.
    let (peak_kib, memory_source) = if maxrss_kib >= peak_sampled_kib {
        (maxrss_kib, Source::Rusage)
    } else {
        (peak_sampled_kib, Source::Proc)
    };
    Ok(Outcome {
        end,
        limit,
        exec_error,
        wall_us,
        user_us,
        sys_us,
        peak_kib,
        memory_source,
        maxrss_kib,
        cpu_source,
        output_bytes: l.output_bytes.map(|_| output),
        uid: run.uid,
        gid: run.gid,
        limits: l.clone(),
        cgroup,
    })
}

fn decode_status(status: i32) -> End {
    if libc::WIFSIGNALED(status) {
        End::Signaled(libc::WTERMSIG(status))
    } else {
        End::Exited(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_command_names_with_spaces() {
        let stat = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23";
        assert_eq!(stat_field(stat, 4), Some(1));
        assert_eq!(stat_field(stat, 14), Some(11));
    }

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(decode_status(0), End::Exited(0));
        assert_eq!(decode_status(3 << 8), End::Exited(3));
        assert_eq!(decode_status(9), End::Signaled(9));
    }
}
