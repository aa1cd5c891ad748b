//! safeexec-helper: the setuid-root half of safeexec. It does the privileged
//! steps of one run and nothing else.
//!
//! ```text
//!  safeexec (caller's uid)
//!    │ fd 3: one Request frame      fd 4: one Reply frame      fd 5: chroot dir
//!    ▼
//!  safeexec-helper (euid 0)   harden → policy → read request → check → fork
//!    ├── supervisor  (root, then the caller's uid with CAP_KILL only, not
//!    │     dumpable) while root: makes the run's cgroups (`cgroup`) and
//!    │     hands them to init, checks that the run's uid owns no process;
//!    │     then drops to the caller and lets the target exec (go pipe);
//!    │     polls init's pidfd; reads the cgroup's CPU counter (or samples
//!    │     /proc) for the CPU limit, and samples memory when no cgroup
//!    │     limits it; relays output when it is limited; on a limit closes
//!    │     the lifeline (init then ends the run), or kills init if it does
//!    │     not; reaps init (wait4: the whole run's rusage); replies
//!    └── init  (pid 1 of a new pid namespace; uid 0, CAP_KILL only)
//!          new net/IPC/UTS/mount namespaces, its own /proc and tmpfs on the
//!          world-writable directories; waits for the target and reaps
//!          orphans; at the target's end, the wall deadline or a cut
//!          lifeline it kill(-1)s and reaps the rest, reads the cgroup
//!          counters, removes the cgroups, reports, exits; if it dies
//!          instead, the kernel kills every process of the namespace
//!          └── target  (pid 2; joins the run's cgroups; sandbox uid and
//!                gid, no groups, no caps, no_new_privs, fds 0-2 only)
//!                execve(program)
//! ```
//!
//! Invariants (DESIGN.md) and where each is kept:
//! 1. hardening before the request is read ............ `harden`
//! 2. one bounded frame, strictly decoded .............. `shared::wire`
//! 3. ids from the policy, unique per live run ......... `policy` (`check`, `ensure_uid_unused`)
//! 4. no caller-named path opened with root's rights ... `policy` (chroot fd), `sandbox::enter`
//! 5. target: no privileges, namespaces, fds 0-2 ....... `sandbox::enter`
//! 6. supervisor keeps CAP_KILL only ................... `supervise::drop_privileges`
//! 7. nothing of the run survives ...................... `sandbox` (pid namespace), `supervise`,
//!    `seccomp` (no setuid or setgid file left behind), `cgroup` (removed by init, or swept)
//! 8. one-line errors, non-zero exit ................... `main`, `error`
//!
//! All `unsafe` code is in `sys`.

mod cgroup;
mod error;
mod harden;
mod policy;
mod sandbox;
mod seccomp;
mod supervise;
mod sys;

use std::fs::File;
use std::io::Write;

use nix::fcntl::OFlag;
use nix::sched::{unshare, CloneFlags, CpuSet};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{getpid, pipe2, ForkResult, Pid, Uid};
use shared::{wire, Reply, CHROOT_FD};

use cgroup::{CgroupRule, RunCgroup};
use error::{Context, Error, Result};
use sandbox::RunEnds;
use supervise::{Run, SupervisorEnds};

/// Exit status when the run was refused or could not be set up.
const EXIT_FAILED: i32 = 2;

fn main() {
    // Invariant 1 comes before anything else, even before we know where
    // to report an error.
    let caller = match harden::before_reading() {
        Ok(caller) => caller,
        Err(e) => fail(None, &e),
    };
    let (mut request_rx, mut reply_tx) = match harden::channel_fds() {
        Ok(fds) => fds,
        Err(e) => fail(None, &e),
    };
    let reply = match run(caller, &mut request_rx) {
        Ok(reply) => reply,
        Err(e) => fail(Some(&mut reply_tx), &e),
    };
    if let Err(e) = wire::write_reply(&mut reply_tx, &reply) {
        fail(None, &Error::Wire(e));
    }
    std::process::exit(0);
}

/// Reports one line (on the reply channel if there is one, else on stderr)
/// and exits non-zero. Only called where no run is alive: after the fork
/// the supervisor kills the run before it gets here.
fn fail(reply_tx: Option<&mut File>, err: &Error) -> ! {
    let msg = err.to_string();
    let sent =
        reply_tx.is_some_and(|tx| wire::write_reply(tx, &Reply::Failed(msg.clone())).is_ok());
    if !sent {
        // Not eprintln!: it panics when stderr cannot be written (a full
        // disk, or a caller's file-size limit), and a panic aborts.
        let _ = writeln!(std::io::stderr(), "safeexec-helper: {msg}");
    }
    std::process::exit(EXIT_FAILED);
}

fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).context("pipe")
}

/// A new child waits on its parent's CPU until the parent sleeps, even with
/// another CPU idle: the uid check that the supervisor runs next would come
/// before init's set-up instead of beside it. So init leaves this CPU before
/// it first runs (if the caller allows it another); it takes back the
/// caller's CPUs before it forks the target (`sandbox::init_run`).
/// How many CPUs a set holds.
fn cpu_count(cpus: &CpuSet) -> usize {
    (0..CpuSet::count())
        .filter(|&c| cpus.is_set(c).unwrap_or(false))
        .count()
}

fn place_elsewhere(init: Pid, mut cpus: CpuSet) {
    let Ok(here) = nix::sched::sched_getcpu() else {
        return;
    };
    if cpu_count(&cpus) > 1 && cpus.unset(here).is_ok() {
        let _ = nix::sched::sched_setaffinity(init, &cpus);
    }
}

fn run(caller: harden::Caller, request_rx: &mut File) -> Result<Reply> {
    let policy = policy::load()?;
    let request = wire::read_request(request_rx)?;
    let chroot = if request.chroot {
        Some(sys::take_inherited_fd(CHROOT_FD).map_err(|_| {
            Error::Refused(format!(
                "chroot asked but descriptor {CHROOT_FD} is not open"
            ))
        })?)
    } else {
        if sys::fd_is_open(CHROOT_FD) {
            sys::close_from(CHROOT_FD as u32, false).context("close")?;
        }
        None
    };
    let plan = policy.check(request, getpid(), caller.uid, chroot)?;
    let (status_rx, status_tx) = pipe()?;
    let (go_rx, go_tx) = pipe()?;
    let (lifeline_rx, lifeline_tx) = pipe()?;
    let (error_rx, error_tx) = pipe()?;
    // The supervisor's word to init once init is placed on another CPU,
    // with the run's cgroups (descriptors) when there are some.
    let (setup_rx, setup_tx) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    let cpus = nix::sched::sched_getaffinity(Pid::from_raw(0)).ok();
    let (relay_run, relay_sup) = if plan.limits.output_bytes.is_some() {
        let (out_rx, out_tx) = pipe()?;
        let (err_rx, err_tx) = pipe()?;
        (Some((out_tx, err_tx)), Some((out_rx, err_rx)))
    } else {
        (None, None)
    };

    let uid = plan.uid.as_raw();
    let gid = plan.gid.as_raw();
    let limits = plan.limits.clone();

    // Our next child is pid 1 of a new pid namespace.
    unshare(CloneFlags::CLONE_NEWPID).context("cannot create the run's pid namespace")?;
    let init = match sys::fork().context("cannot fork")? {
        ForkResult::Child => {
            drop((status_rx, lifeline_tx, error_rx, relay_sup, go_tx, setup_tx));
            sandbox::init(
                plan,
                RunEnds {
                    status_tx,
                    lifeline_rx,
                    error_tx,
                    go_rx,
                    relay: relay_run,
                    setup_rx,
                    cpus,
                },
            )
        }
        ForkResult::Parent { child } => child,
    };
    if let Some(cpus) = cpus {
        place_elsewhere(init, cpus);
    }
    drop((
        status_tx,
        lifeline_rx,
        error_tx,
        relay_run,
        go_rx,
        plan,
        setup_rx,
    ));

    let init_pidfd = sys::pidfd_open(init).context("pidfd_open");
    let run = init_pidfd.map(|init_pidfd| Run {
        init,
        init_pidfd,
        uid,
        gid,
        limits,
        // The caller's CPUs, which the run gets (not std's
        // available_parallelism, which also reads cgroup files).
        cpus: cpus.as_ref().map_or(1, cpu_count).max(1) as u64,
        cpu_counter: None,
        memory_limited: false,
    });
    let mut run = match run {
        Ok(run) => run,
        Err(e) => {
            // The run must not outlive a supervisor that cannot watch it.
            let _ = nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGKILL);
            let _ = sys::wait4(init, false);
            return Err(e);
        }
    };
    // The run's cgroups are made here, beside init's set-up (a quarter of
    // a millisecond), and handed to init, which the target inherits them
    // from; init removes them at the end.
    let cgroup = match RunCgroup::create(policy.cgroup, policy.max_memory_cgroups, uid, &run.limits)
    {
        Ok(cgroup) => cgroup,
        Err(e) => {
            supervise::abort_run(&run);
            return Err(e);
        }
    };
    // A failure here means init failed its set-up and is gone (its reason
    // is on the error pipe, which `watch` reads); the cgroups are removed.
    if RunCgroup::send(cgroup.as_ref(), &setup_tx).is_ok() {
        run.cpu_counter = cgroup.as_ref().and_then(RunCgroup::cpu_counter);
        run.memory_limited = cgroup.as_ref().is_some_and(RunCgroup::limits_memory);
    }
    drop(setup_tx);
    // The uid check reads /proc (a fraction of a millisecond or more): it
    // runs while init builds the namespaces, and the target execs only once
    // it has passed (invariant 3).
    // The supervisor is the caller again before any code of the target runs.
    let checked = policy::ensure_uid_unused(Uid::from_raw(uid), init).and_then(|()| {
        if policy.cgroup != CgroupRule::Off {
            cgroup::sweep_stale(policy.uid_base);
        }
        supervise::drop_privileges(caller)
    });
    if let Err(e) = checked {
        supervise::abort_run(&run);
        // Init is gone without removing them; the supervisor may still be
        // root (or the next run's sweep will).
        if let Some(cgroup) = &cgroup {
            cgroup.remove();
        }
        return Err(e);
    }
    // Init holds them now; the supervisor keeps only its CPU counter.
    drop(cgroup);
    // EPIPE here means the target failed its set-up and is gone; its reason
    // is on the error pipe, which `watch` reads.
    let _ = nix::unistd::write(&go_tx, b"g");
    drop(go_tx);
    let ends = SupervisorEnds {
        status_rx,
        lifeline_tx,
        error_rx,
        relay: relay_sup,
    };
    match supervise::watch(&run, ends) {
        Ok(outcome) => Ok(Reply::Finished(outcome)),
        Err(e) => {
            supervise::abort_run(&run);
            Err(e)
        }
    }
}
