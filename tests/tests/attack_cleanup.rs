//! Cleanup that cannot be dodged (DESIGN.md invariant 7): the caller kills
//! or stops the frontend or the supervisor in the middle of a run whose
//! target forks, double-forks into a new session and ignores SIGTERM.
//! Afterwards no process with a uid in the sandbox range may remain.
//!
//! The tests of this file run one at a time (a mutex), so that "no process
//! in the whole sandbox range" is a sound check: cargo runs test binaries
//! one after another, and within this one nothing else runs meanwhile.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{json_uid, probe, sandbox_survivors, signal, wait_for_child, CLEANUP_WAIT};
use safeexec_tests::{
    dump, frame, in_policy_range, json_report, live_sandbox_processes, request, require_root,
    stderr, Env, Spawned,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Leftovers of an earlier failed test must not be blamed on this one.
    let before = sandbox_survivors(CLEANUP_WAIT);
    assert!(
        before.is_empty(),
        "sandbox processes before the test: {before:?}"
    );
    guard
}

/// Starts `safeexec OPTS --exec attack_probe ATTACK` and waits until the
/// run has at least `procs` live processes in the sandbox range; returns
/// the frontend and the supervisor's pid.
fn start(t: &Env, opts: &[&str], attack: &[&str], procs: usize) -> (Spawned, u32) {
    let p = probe(t);
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--json", "--exec", p.as_str()]);
    args.extend_from_slice(attack);
    let spawned = t.run(&args).spawn();
    let sup = wait_for_child(spawned.id(), |_| true, Duration::from_secs(10))
        .expect("the helper started");
    let until = Instant::now() + Duration::from_secs(10);
    while live_sandbox_processes().len() < procs {
        assert!(
            Instant::now() < until,
            "the run never had {procs} processes: {:?}",
            live_sandbox_processes()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (spawned, sup)
}

fn assert_nothing_in_the_sandbox_range(what: &str) {
    let left = sandbox_survivors(CLEANUP_WAIT);
    assert!(
        left.is_empty(),
        "{what}: processes in the sandbox range after {CLEANUP_WAIT:?}: {left:?}"
    );
}

fn fork_bomb_args() -> (Vec<&'static str>, Vec<&'static str>) {
    (
        vec!["--nproc", "20", "--clock", "30"],
        vec!["forkbomb", "30"],
    )
}

#[test]
fn sigkill_to_the_frontend_during_a_fork_bomb_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let (mut frontend, _sup) = start(&t, &opts, &attack, 10);
    signal(frontend.id(), libc::SIGKILL);
    let _ = frontend.child.wait();
    assert_nothing_in_the_sandbox_range("frontend killed during a fork bomb");
}

#[test]
fn sigkill_to_the_supervisor_during_a_fork_bomb_leaves_nothing_and_fails_in_one_line() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let (frontend, sup) = start(&t, &opts, &attack, 10);
    signal(sup, libc::SIGKILL);
    let out = frontend.wait(Duration::from_secs(20));
    assert_nothing_in_the_sandbox_range("supervisor killed during a fork bomb");
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    let err = stderr(&out);
    assert_eq!(
        err.trim().lines().count(),
        1,
        "not one line\n{}",
        dump(&out)
    );
}

#[test]
fn sigkill_to_the_supervisor_with_a_setsid_daemon_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let (frontend, sup) = start(&t, &["--nproc", "3"], &["daemon", "stay"], 2);
    signal(sup, libc::SIGKILL);
    let out = frontend.wait(Duration::from_secs(20));
    assert_nothing_in_the_sandbox_range("supervisor killed with a daemon alive");
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
}

#[test]
fn sigkill_to_the_frontend_with_a_setsid_daemon_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let (mut frontend, _sup) = start(&t, &["--nproc", "3"], &["daemon", "stay"], 2);
    signal(frontend.id(), libc::SIGKILL);
    let _ = frontend.child.wait();
    assert_nothing_in_the_sandbox_range("frontend killed with a daemon alive");
}

#[test]
fn sigstop_to_the_supervisor_does_not_stop_the_wall_limit() {
    let t = require_root!();
    let _g = alone();
    let started = Instant::now();
    let (frontend, sup) = start(
        &t,
        &["--clock", "1", "--nproc", "3"],
        &["daemon", "stay"],
        2,
    );
    signal(sup, libc::SIGSTOP);
    // Init ends the run at its deadline on its own.
    let left = sandbox_survivors(Duration::from_secs(6));
    signal(sup, libc::SIGCONT);
    let out = frontend.wait(Duration::from_secs(20));
    assert!(
        left.is_empty(),
        "with the supervisor stopped, the run outlived its wall limit: {left:?} ({:?})",
        started.elapsed()
    );
    let j = json_report(&out);
    assert_eq!(j["verdict"], "time_limit", "{}", dump(&out));
    assert_eq!(out.status.code(), Some(1));
    assert_nothing_in_the_sandbox_range("supervisor stopped then continued");
}

#[test]
fn sigstop_then_sigkill_to_the_supervisor_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let (frontend, sup) = start(&t, &opts, &attack, 10);
    signal(sup, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(200));
    signal(sup, libc::SIGKILL);
    let out = frontend.wait(Duration::from_secs(20));
    assert_nothing_in_the_sandbox_range("supervisor stopped, then killed");
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
}

#[test]
fn sigstop_to_the_frontend_does_not_stop_the_wall_limit() {
    let t = require_root!();
    let _g = alone();
    let (frontend, _sup) = start(
        &t,
        &["--clock", "1", "--nproc", "3"],
        &["daemon", "stay"],
        2,
    );
    signal(frontend.id(), libc::SIGSTOP);
    let left = sandbox_survivors(Duration::from_secs(6));
    signal(frontend.id(), libc::SIGCONT);
    let out = frontend.wait(Duration::from_secs(20));
    assert!(left.is_empty(), "the run outlived its wall limit: {left:?}");
    let j = json_report(&out);
    assert_eq!(j["verdict"], "time_limit", "{}", dump(&out));
}

#[test]
fn sigkill_to_the_supervisor_before_the_target_starts_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    // Kill the helper as early as it can be seen, many times over: each
    // kill lands somewhere in the set-up (before or after the fork, before
    // or after the privilege drop).
    for delay_us in [0u64, 200, 500, 1000, 2000, 5000] {
        let p = probe(&t);
        let spawned = t
            .run(&["--nproc", "3", "--exec", &p, "daemon", "stay"])
            .spawn();
        let until = Instant::now() + Duration::from_secs(10);
        let sup = loop {
            if let Some(c) = common::children_of(spawned.id()).first() {
                break *c;
            }
            assert!(Instant::now() < until, "the helper never started");
            std::hint::spin_loop();
        };
        std::thread::sleep(Duration::from_micros(delay_us));
        signal(sup, libc::SIGKILL);
        let out = spawned.wait(Duration::from_secs(20));
        assert_nothing_in_the_sandbox_range(&format!("supervisor killed after {delay_us} µs"));
        assert_ne!(out.status.code(), Some(0), "{}", dump(&out));
    }
}

#[test]
fn uid_of_a_killed_run_is_free_again_and_a_new_run_works() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let (frontend, sup) = start(&t, &opts, &attack, 10);
    let uid = safeexec_tests::POLICY_UID_BASE + sup;
    signal(sup, libc::SIGKILL);
    let _ = frontend.wait(Duration::from_secs(20));
    assert_nothing_in_the_sandbox_range("supervisor killed");
    assert!(safeexec_tests::live_processes_of(uid).is_empty());
    let out = t.safeexec(&["--json", "--exec", "/bin/true"]);
    let j = json_report(&out);
    assert_eq!(j["verdict"], "ok", "{}", dump(&out));
    assert!(in_policy_range(json_uid(&j)));
}

#[test]
fn helper_run_directly_and_killed_mid_run_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let p = probe(&t);
    let mut r = request(&[p.as_str(), "forkbomb", "30"]);
    r.limits.nproc = 20;
    let run = common::direct(&t).start_exchange(&frame(&r));
    let until = Instant::now() + Duration::from_secs(10);
    while live_sandbox_processes().len() < 10 {
        assert!(Instant::now() < until, "the bomb never went off");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(run.pid(), libc::SIGKILL);
    let got = run.finish();
    assert_eq!(got.output.status.signal_number(), Some(libc::SIGKILL));
    assert_nothing_in_the_sandbox_range("direct helper killed during a fork bomb");
}

trait SignalNumber {
    fn signal_number(&self) -> Option<i32>;
}

impl SignalNumber for std::process::ExitStatus {
    fn signal_number(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(self)
    }
}
