//! safeexec-helper: the setuid-root half of safeexec. It does the privileged
//! steps of one run and nothing else; the frontend builds the verdict and
//! the reports from the raw facts it returns. The design, for a reviewer:
//! `docs/design.md`.
//!
//! ```text
//!  safeexec (caller's uid)
//!    │ fd 3: one Request frame, its descriptors beside it   fd 4: one Reply frame
//!    │ SIGUSR1: the caller's order to stop the run (its output limit)
//!    ▼
//!  safeexec-helper (euid 0)   harden → set-up ids → network thread →
//!    │     request → policy → check → fork (the thread, joined before the
//!    │     fork, makes the run's network namespace: `network`)
//!    ├── supervisor   while root: the run's cgroups (sent to init), the uid
//!    │     check, the run's loopback up, the sweep; then the caller with
//!    │     CAP_KILL only; sends go;
//!    │     waits on init's pidfd and the stop order (passed on by shutting
//!    │     the channel); kills init if it outlives its deadline; replies
//!    │     on init's report; once the caller has read it, shuts the channel
//!    │     (init's clean-up waits for that), outlasts init and reaps it
//!    │         ▲▼ one SOCK_SEQPACKET channel, typed messages (`channel`)
//!    └── init  (pid 1 of a new pid namespace; root, CAP_KILL only)
//!          enters the run's network namespace; new IPC/UTS/mount
//!          namespaces, its own /proc, private scratch
//!          mounts (`mounts`); enforces the CPU limit of the whole run and
//!          sampled memory (`enforce`), the wall clock, the stop order; at
//!          the end kill(-1)s, reaps, reads the cgroup counters, reports,
//!          then (the channel shut) removes the cgroups; if it dies the
//!          kernel kills the rest
//!          └── target  (pid 2; `target::enter`: cgroups, rlimits, chroot,
//!                sandbox ids, no caps, no_new_privs, seccomp, fds 0-2 only;
//!                waits for go) execve(program)
//! ```
//!
//! Invariants (`docs/design.md`) and where each is kept:
//! 1. hardening before the request is read ............ `harden`
//! 2. one bounded frame, strictly decoded .............. `shared::wire`
//! 3. ids from the policy, unique per live run ......... `policy::Policy::check`, `uids::allocate`
//! 4. no caller-named path opened with root's rights ... `policy` (chroot fd), `target`
//! 5. target: no privileges, namespaces, fds 0-2 ....... `target`, `init`, `mounts`, `seccomp`
//! 6. supervisor and init keep CAP_KILL only ........... `identity`
//! 7. nothing of the run survives ...................... `init` (pid namespace), `supervise`,
//!    `seccomp` (no setuid or setgid file left behind), `cgroup` (removed by init, or swept)
//! 8. one-line errors, non-zero exit ................... `main`, `error`
//!
//! Every change of ids or capabilities is in `identity`; all `unsafe` code
//! is in `sys`.

#![deny(unsafe_code)]

mod cgroup;
mod channel;
mod enforce;
mod error;
mod harden;
mod identity;
mod init;
mod mounts;
mod netpool;
mod network;
mod policy;
mod seccomp;
mod supervise;
#[allow(unsafe_code)]
mod sys;
mod target;
mod uids;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{ForkResult, Pid};
use shared::{wire, Facts, Limit, Reply, Request, MAX_BIND, MAX_BIND_RW, REPLY_FD};

use cgroup::{CgroupRule, RunCgroup};
use channel::{Channel, ToRun};
use error::{Context, Error, Result};
use harden::Caller;
use identity::Identity;
use policy::{DirFds, Policy};
use supervise::Run;
use uids::Lease;

/// Exit status when the run was refused or could not be set up.
const EXIT_FAILED: i32 = 2;

/// How long `fail` may take to say why, in seconds.
const FAIL_ALARM_S: u32 = 2;

fn main() {
    // A panic aborts (the release profile) without a word: Rust's default
    // hook would write it on descriptor 2, the caller's choice (the
    // program's stderr after the request), as root, where the last line
    // of `fail` goes only as the caller (a suspicion of a review of the
    // twelfth round; no way to make the helper panic was found).
    std::panic::set_hook(Box::new(|_| {}));
    // Invariant 1 comes before anything else, even before we know where
    // to report an error.
    let caller = match harden::before_reading() {
        Ok(caller) => caller,
        Err(e) => fail_early(None, &e),
    };
    // At once: from here the caller can neither signal nor reschedule us.
    if let Err(e) = Identity::setup().assume() {
        fail(&caller, None, &e);
    }
    // Only now: until the change of ids the caller could set them again.
    if let Err(e) = harden::reset_timing() {
        fail_early(Some(&caller), &e);
    }
    let (request_rx, mut reply_tx) = match harden::channel_fds() {
        Ok(fds) => fds,
        Err(e) => fail(&caller, None, &e),
    };
    let request_rx = harden::RequestSocket::new(request_rx);
    let ended = match run(&caller, request_rx, reply_tx.as_fd()) {
        Ok(ended) => ended,
        Err(e) => fail(&caller, Some(&mut reply_tx), &e),
    };
    // Nothing of the run is alive any more: the caller may go, and the
    // supervisor outlasts init's clean-up on its own.
    supervise::let_go();
    if let Err(e) = wire::write_reply(&mut reply_tx, &Reply::Finished(ended.facts)) {
        ended.channel.stop_run();
        supervise::outlast(&ended.run);
        fail(&caller, None, &Error::Wire(e));
    }
    supervise::stdio_to_null(harden::open_null().ok().as_ref());
    // Init's clean-up (the run's cgroups, then the kernel's teardown of its
    // namespaces) waits for the caller to have read the reply: beside the
    // caller's last steps, on a machine of two CPUs, it slowed them.
    supervise::wait_for_caller(&reply_tx);
    drop(reply_tx);
    ended.channel.stop_run();
    supervise::outlast(&ended.run);
    std::process::exit(0);
}

/// A run that init reported the end of, as `run` leaves it to `main`.
struct Ended {
    facts: Facts,
    run: Run,
    /// Shut once the caller has the reply: init holds its clean-up until then.
    channel: Channel,
    /// The pool's slot of the run's network namespace: freed only when the
    /// supervisor ends, once init (which shares it) has been reaped and
    /// with it every process of the run (`netpool`).
    _network_slot: Option<netpool::Slot>,
    /// What the set-up read, freed only after the reply: musl's allocator
    /// gives such memory back to the kernel as soon as it is free, an unmap
    /// each, which on the reply's way cost tens of microseconds.
    _setup: (Policy, cgroup::Hierarchies),
}

/// Reports one line (on the reply channel if there is one, else on stderr,
/// as the caller: `Identity::speak_as_caller`) and exits non-zero. Only
/// called where no run is alive: after the fork the supervisor kills the
/// run before it gets here.
fn fail(caller: &Caller, reply_tx: Option<&mut File>, err: &Error) -> ! {
    last_words(reply_tx, err, || Identity::speak_as_caller(caller))
}

/// `fail` before the helper is hardened (it may not even be root): the
/// line still goes on the reply channel if there is one, so that the
/// frontend shows it rather than a helper that ended without a reply.
/// Without `caller` (harden failed), no id has changed yet: the real ones,
/// which a message is stamped with, are still the caller's.
fn fail_early(caller: Option<&Caller>, err: &Error) -> ! {
    // A reply pipe closed by a direct caller: an error, not a SIGPIPE death.
    let _ = sys::ignore_write_signals();
    let mut reply_tx = harden::channel_fds().ok().map(|(_, reply_tx)| reply_tx);
    last_words(reply_tx.as_mut(), err, || caller.is_none_or(Identity::speak_as_caller))
}

/// The line of `fail`: on stderr only if the reply channel did not take it
/// and `may_speak` says so.
fn last_words(reply_tx: Option<&mut File>, err: &Error, may_speak: impl FnOnce() -> bool) -> ! {
    // A caller that filled its reply pipe, or stopped reading a terminal
    // it gave as stderr, would hold the helper in this write for ever:
    // SIGALRM's default action ends it (`harden::before_reading` reset it).
    nix::unistd::alarm::set(FAIL_ALARM_S);
    let msg = err.to_string();
    let sent =
        reply_tx.is_some_and(|tx| wire::write_reply(tx, &Reply::Failed(msg.clone())).is_ok());
    if !sent && may_speak() {
        // Not eprintln!: it panics when stderr cannot be written (a full
        // disk, or a caller's file-size limit), and a panic aborts.
        let _ = writeln!(std::io::stderr(), "safeexec-helper: {msg}");
    }
    std::process::exit(EXIT_FAILED);
}

/// Puts the descriptors that came with the request where the request
/// says (`Request::passed_fds` gives their order): the program's standard
/// ones over our 0, 1 and 2 (which init and the target inherit); the
/// chroot, working, writable and readable directories for the policy to
/// check. They must be exactly as many as the request names: one more or
/// one less would shift every one after it into another's place.
fn passed_fds(request: &Request, fds: Vec<OwnedFd>) -> Result<DirFds> {
    if request.bind_rw > MAX_BIND_RW || request.bind > MAX_BIND {
        return Err(Error::Refused(format!(
            "at most {MAX_BIND_RW} writable and {MAX_BIND} readable directories"
        )));
    }
    let (named, came) = (request.passed_fds(), fds.len());
    if came != named {
        return Err(Error::Refused(format!(
            "the request names {named} descriptors, and {came} came with it"
        )));
    }
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or_else(|| Error::Internal("a passed descriptor".into()));
    let replace = [
        (nix::unistd::dup2_stdin as fn(OwnedFd) -> nix::Result<()>, "stdin"),
        (nix::unistd::dup2_stdout, "stdout"),
        (nix::unistd::dup2_stderr, "stderr"),
    ];
    for (dup2, name) in replace {
        let fd = next()?;
        refuse_a_way_out(&fd, name)?;
        dup2(fd).context("cannot take the program's standard descriptors")?;
    }
    let mut dirs = DirFds::default();
    if request.chroot {
        dirs.chroot = Some(next()?);
    }
    if request.cwd {
        dirs.cwd = Some(next()?);
    }
    dirs.bind_rw = (0..request.bind_rw).map(|_| next()).collect::<Result<_>>()?;
    dirs.bind = (0..request.bind).map(|_| next()).collect::<Result<_>>()?;
    Ok(dirs)
}

/// Invariant 5: a standard descriptor of the program may not be a
/// directory: through it (`openat`) the target would open the host's files
/// by its permissions alone, from the caller's read-write view, past a
/// minimal root, a jail and the read-only host (a review wrote a file in
/// the host's /tmp from `--root minimal` with `< /`). Nor one opened
/// O_PATH, a directory's or a file's: the target could reopen it through
/// /proc, by its own permissions, as a file its view does not show.
fn refuse_a_way_out(fd: &OwnedFd, name: &str) -> Result<()> {
    let stat = nix::sys::stat::fstat(fd).context("fstat")?;
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).context("fcntl")?;
    let directory = stat.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if directory || flags & libc::O_PATH != 0 {
        let what = if directory { "a directory" } else { "a descriptor opened O_PATH" };
        return Err(Error::Refused(format!(
            "the program's {name} is {what}: the run would reach the host's files through it"
        )));
    }
    Ok(())
}

/// The caller's order to stop the run (the frontend's, when the output it
/// relays passes the limit): SIGUSR1, read from a signalfd. Blocked before
/// the fork, so that init and the target inherit it blocked (the target
/// unblocks everything before exec; the caller cannot signal init).
fn stop_order() -> Result<SignalFd> {
    let mut usr1 = SigSet::empty();
    usr1.add(Signal::SIGUSR1);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&usr1), None).context("sigprocmask")?;
    SignalFd::with_flags(&usr1, SfdFlags::SFD_CLOEXEC).context("signalfd")
}

/// The run, up to init's report: what the reply says, and the run whose
/// init is yet to clean up (`supervise::outlast`).
fn run(caller: &Caller, mut request_rx: harden::RequestSocket, reply: BorrowedFd) -> Result<Ended> {
    // Init takes these back before it forks the target (`steer`).
    let cpus = nix::sched::sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    // The slowest step of the run's set-up, beside all of the rest, from
    // the start: the thread makes the namespace while we wait for the
    // request, which the frontend sends once it has parsed its command
    // line. The policy (which says whether to keep the namespace) needs
    // nothing of the request.
    let mut network_maker = network::start(&cpus)?;
    let policy = policy::load()?;
    // Held here and by init (the same open file description) to the run's
    // end; before the thread may make a namespace.
    let _caller_slot = uids::take_caller_slot(caller.uid.as_raw(), policy.max_runs_per_caller)?;
    network_maker.may_open(policy.keep_networks);
    let (request, fds) = request_rx.request()?;
    // What the caller might send after it is never taken.
    drop(request_rx);
    let dirs = passed_fds(&request, fds)?;
    let fixed_gid = match policy.gid {
        policy::GidRule::PerRun => None,
        policy::GidRule::Fixed(gid) => Some(gid),
    };
    identity::check_mapped(policy.uid_base, policy.uid_count, fixed_gid)?;
    // Read once: the hierarchies are the same for init, which inherits
    // our cgroups.
    let found = cgroup::Hierarchies::find()?;
    // Before the uid counter's lock, which a helper the caller froze would
    // hold from every caller's runs; init and the target are born where
    // we are. Also off the steps after init's fork, whose end init waits
    // for.
    cgroup::shelter(&found, std::process::id())?;
    // The lease is held until this function returns, and through the fork
    // by init too: the uid is the run's while either may have a process
    // of it.
    let (mut plan, lease) =
        policy.check(request, caller, dirs, || uids::allocate(policy.uid_count))?;
    // Every descriptor the caller sent that the run does not keep is
    // closed by now, under the request's alarm (`harden::RequestSocket`).
    harden::request_taken();
    // A jail and the minimal root are both entered with chroot(2).
    identity::check_capabilities(plan.chroot.is_some() || plan.root == shared::Root::Minimal)?;
    // Once, before the fork: init and the target inherit the empty set.
    identity::clear_bounding_set()?;
    let stop_order = stop_order()?;
    let (supervisor_end, run_end) = channel::pair()?;
    let (uid, gid, limits, memory_kib, niceness) =
        (plan.uid.as_raw(), plan.gid.as_raw(), plan.limits.clone(), plan.memory_kib, plan.niceness);
    plan.system = mounts::system_entries(plan.root)?;
    // Here, where the heap is warm: built in the target, a fresh fork
    // writing pages it shares, it cost a tenth of a millisecond on its way
    // to exec. The target inherits it, as it does the rest of the plan,
    // and builds its own only if the run did not get the CPU cgroup
    // expected here.
    plan.sessions = seccomp::Sessions::for_run(found.may_weigh(policy.cgroup));
    plan.filter = seccomp::filter(plan.sessions);
    // Init's copy of the slot (`netpool`) stays in this frame, which it
    // never returns to: init holds it to its end; ours goes into `Ended`.
    let network::RunNetwork { network, netns, loopback, slot } =
        network_maker.network(plan.share_net)?;
    // Our next child is pid 1 of a new pid namespace.
    unshare(CloneFlags::CLONE_NEWPID).context("cannot create the run's pid namespace")?;
    let (set_up_from_us, set_up_started) = supervise::set_up_clock();
    let init = match sys::fork().context("cannot fork")? {
        ForkResult::Child => {
            drop((supervisor_end, stop_order, loopback));
            // The caller's reply pipe: init never returns here, where
            // `main`'s file owns this number. (The request socket was
            // closed before the fork; its number may be another's now.)
            let _ = sys::close_range(REPLY_FD as u32, REPLY_FD as u32, false);
            init::run(plan, run_end, cpus, netns, set_up_from_us)
        }
        ForkResult::Parent { child } => child,
    };
    steer(init, &cpus);
    // No process outside the run keeps its network namespace.
    drop((run_end, plan, netns));
    let init_pidfd = pidfd_of_init(init)?;
    let run =
        Run { init, init_pidfd, uid, gid, limits, memory_kib, niceness, network, set_up_started };
    let prepared =
        prepare(&policy, (caller, reply), &run, &supervisor_end, &lease, &found, loopback);
    let missing = match prepared {
        Ok(missing) => missing,
        Err(e) => {
            supervise::abort_run(&run);
            return Err(e);
        }
    };
    // An error here means the target failed its set-up and is gone; its
    // reason comes on the channel, which `watch` reads.
    let _ = supervisor_end.send(&ToRun::Go, &[]);
    let facts = supervise::watch(&run, &supervisor_end, &stop_order)
        .inspect_err(|_| supervise::abort_run(&run))?;
    let facts = Facts { cgroup_missing: missing, ..facts };
    Ok(Ended { facts, run, channel: supervisor_end, _network_slot: slot, _setup: (policy, found) })
}

/// A pidfd of init, which the supervisor watches; if there can be none,
/// init is killed and reaped first: the run must not outlive a supervisor
/// that cannot watch it.
fn pidfd_of_init(init: Pid) -> Result<std::os::fd::OwnedFd> {
    sys::pidfd_open(init).map_err(|e| {
        let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
        let _ = sys::wait4(init, sys::Wait::Block);
        Error::Failed("pidfd_open", e)
    })
}

/// A new child waits for its parent's CPU while the parent runs, even with
/// another CPU idle (seen on virtual machines): init's set-up (its
/// namespaces and mounts, a millisecond or more) would start only once the
/// supervisor's (the run's cgroups) blocks, instead of beside it. So init,
/// not yet running, is moved to the helper's other CPUs, which costs the
/// kernel no migration of a running task. Init takes back all of them
/// before it forks the target (`init::run`), once the supervisor has sent
/// the cgroups, so after this. The thread that makes the run's network
/// namespace is moved likewise (`network::start`).
fn steer(init: Pid, cpus: &nix::sched::CpuSet) {
    if let Some(others) = other_cpus(cpus) {
        let _ = nix::sched::sched_setaffinity(init, &others);
    }
}

/// `cpus` but the one we run on, if that leaves any.
fn other_cpus(cpus: &nix::sched::CpuSet) -> Option<nix::sched::CpuSet> {
    let here = nix::sched::sched_getcpu().ok()?;
    let mut others = *cpus;
    let _ = others.unset(here);
    (0..nix::sched::CpuSet::count()).any(|c| others.is_set(c).unwrap_or(false)).then_some(others)
}

/// The root-only steps of the supervisor, beside init's set-up: the run's
/// cgroups (handed to init, which the target inherits them from and which
/// removes them at the end), the run's loopback up and the sweep of
/// earlier runs' cgroups; then it becomes the caller (invariant 6). The
/// target execs only after this.
fn prepare(
    policy: &Policy,
    (caller, reply): (&Caller, BorrowedFd),
    run: &Run,
    channel: &Channel,
    lease: &Lease,
    found: &cgroup::Hierarchies,
    loopback: Option<network::Loopback>,
) -> Result<Option<String>> {
    let nproc = run.limits.get(Limit::Nproc);
    let (cgroup, missing) = RunCgroup::create(
        found,
        policy.cgroup,
        policy.max_memory_cgroups,
        run.uid,
        run.memory_kib,
        nproc,
        run.niceness,
    )?;
    let sent = match &cgroup {
        Some(cg) => {
            let (layout, fds) = cg.layout();
            channel.send(&ToRun::Cgroups(Some(layout)), &fds)
        }
        None => channel.send(&ToRun::Cgroups(None), &[]),
    };
    if let (Some(cg), Err(_)) = (&cgroup, sent) {
        // Init failed its set-up and is gone (its reason comes on the
        // channel); nobody else will remove them.
        cg.remove();
    }
    // Only the target's program needs it, after the go; init does not.
    let up = loopback.map_or(Ok(()), network::Loopback::up);
    if policy.cgroup != CgroupRule::Off {
        cgroup::sweep_stale(found, policy.uid_base, policy.uid_count, lease);
    }
    let checked = up.and_then(|()| supervise::drop_privileges(caller, reply));
    if let (Err(_), Some(cg)) = (&checked, &cgroup) {
        // Init will be killed before it removes them.
        cg.remove();
    }
    checked.map(|()| missing)
}
