//! Nothing of a run survives it (DESIGN.md invariant 7): not a double-forked
//! daemon in a session of its own, not a fork bomb, not when the caller
//! SIGKILLs or SIGSTOPs the frontend or the supervisor in the middle of the
//! run, at any moment of its set-up; and the run's uid is free again after.
//!
//! Each test looks for what is left of its own run only: processes of the
//! run's uid in the run's pid namespace (see `Ctx::left_of_run`), never of
//! the whole sandbox range, which other users' runs on the machine share.

use std::os::unix::process::ExitStatusExt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use safeexec_tests::{
    children_of, dump, frame, in_policy_range, json_report, json_uid, process, request,
    require_root, run_uid, set_limit, signal, stderr, stdout, verdict, wait_for_child, word, Ctx,
    Limit, Spawned, CLEANUP_WAIT, POLICY_UID_BASE, POLICY_UID_COUNT,
};

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn double_forked_setsid_sleeper_does_not_survive_the_run() {
    let t = require_root!();
    let out = t.safeexec(&["--nproc", "5", "--json", "--exec", &t.fixture("daemon")]);
    // Look first, before anything else can give the run time to die.
    let j = json_report(&out);
    let uid = json_uid(&j);
    let survivors = t.left_of_run(uid);
    let daemon_pid: Option<u32> =
        stdout(&out).trim().strip_prefix("daemon ").and_then(|p| p.parse().ok());
    let daemon_pid =
        daemon_pid.unwrap_or_else(|| panic!("the fixture printed no daemon pid\n{}", dump(&out)));
    let daemon_now = process(daemon_pid).filter(|p| p.uid == uid && p.alive());
    // Whatever happens, do not leave the daemon behind for other tests.
    let leftovers_later = t.survivors(uid, Duration::from_secs(1));
    assert!(
        survivors.is_empty() && daemon_now.is_none(),
        "processes of uid {uid} alive after safeexec returned: {survivors:?} (daemon {daemon_pid}: {daemon_now:?}); \
         one second later: {leftovers_later:?}\n{}",
        dump(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn setsid_double_fork_sleeper_does_not_survive() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nproc", "3"], &["daemon"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "daemon"), "started", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn nothing_of_a_time_limited_run_survives() {
    let t = require_root!();
    let out = t.safeexec(&["--clock", "0.5", "--json", "--exec", &t.fixture("sleep_forever")]);
    let j = json_report(&out);
    let uid = json_uid(&j);
    let survivors = t.left_of_run(uid);
    assert!(
        survivors.is_empty(),
        "processes of uid {uid} alive after the run: {survivors:?}\n{}",
        dump(&out)
    );
    assert_eq!(j["verdict"], "time_limit", "{j}");
}

/// The reply comes before init's own end (its clean-up of the run's
/// cgroups and namespaces), but never before the run's last process is
/// gone. The target leaves behind a process holding 200 MiB, whose end
/// after init's kill(-1) takes the kernel a while (its memory is freed
/// first): a report sent before init has reaped it would find it still
/// there when safeexec returns.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_report_comes_only_once_a_slow_dying_process_of_the_run_is_gone() {
    let t = require_root!();
    let hold = format!("({} 200 60 2>/dev/null &) | read line", t.fixture("touch_mem"));
    let args = ["--mem", "1000000", "--nproc", "5", "--json", "--exec", "/bin/sh", "-c", &hold];
    for _ in 0..3 {
        let out = t.safeexec(&args);
        let j = json_report(&out);
        let uid = json_uid(&j);
        // Look first, before anything else can give the run time to die.
        let survivors = t.left_of_run(uid);
        let leftovers_later = t.survivors(uid, CLEANUP_WAIT);
        assert!(
            survivors.is_empty(),
            "processes of uid {uid} alive when safeexec returned: {survivors:?}; \
             after {CLEANUP_WAIT:?}: {leftovers_later:?}\n{}",
            dump(&out)
        );
        assert_eq!(j["verdict"], "ok", "{j}");
        assert!(j["peak_memory_kib"].as_u64().is_some_and(|k| k > 200 << 10), "{j}");
    }
}

// ---------------------------------------------------------------------------
// The caller kills or stops the frontend or the supervisor

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The tests below run one at a time: each starts a fork bomb or a daemon
/// and some time the wall limit, which a second one beside it would blur.
fn alone() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run of `safeexec OPTS --json --exec probe ATTACK` that the test started.
struct Started {
    frontend: Spawned,
    /// The helper's pid, the supervisor's after its fork.
    sup: u32,
    /// The run's uid.
    uid: u32,
}

/// Starts `safeexec OPTS --json --exec probe ATTACK` and waits until the
/// run has at least `procs` live processes of its uid.
fn start(t: &Ctx, opts: &[&str], attack: &[&str], procs: usize) -> Started {
    let p = t.probe();
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--json", "--exec", p.as_str()]);
    args.extend_from_slice(attack);
    let frontend = t.run(&args).spawn();
    let sup = wait_for_child(frontend.id(), |_| true, Duration::from_secs(10))
        .expect("the helper started");
    let uid = run_uid(sup, Duration::from_secs(10)).expect("the run's target started");
    let until = Instant::now() + Duration::from_secs(10);
    while t.left_of_run(uid).len() < procs {
        assert!(
            Instant::now() < until,
            "the run never had {procs} processes: {:?}",
            t.left_of_run(uid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Started { frontend, sup, uid }
}

/// Asserts that nothing of the run of `uid` is left after [`CLEANUP_WAIT`].
fn assert_nothing_of_the_run(t: &Ctx, uid: u32, what: &str) {
    let left = t.survivors(uid, CLEANUP_WAIT);
    assert!(
        left.is_empty(),
        "{what}: processes of the run (uid {uid}) after {CLEANUP_WAIT:?}: {left:?}"
    );
}

fn fork_bomb_args() -> (Vec<&'static str>, Vec<&'static str>) {
    (vec!["--nproc", "20", "--clock", "30"], vec!["forkbomb", "30"])
}

/// The checks above are only as good as the harness's look for what a run
/// left: it must see a live run's processes as this test's own, and kill
/// them (and nothing else) when asked to.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_harness_finds_and_kills_the_processes_of_its_own_run() {
    let t = require_root!();
    let _g = alone();
    let run = start(&t, &["--clock", "30", "--nproc", "3"], &["daemon", "stay"], 2);
    // The daemon forks twice: its first child may still be exiting (a
    // zombie for a moment) when the run first shows two processes.
    let settled = |seen: &[safeexec_tests::Proc]| {
        seen.len() >= 2 && seen.iter().all(|p| p.uid == run.uid && p.alive())
    };
    let until = Instant::now() + Duration::from_secs(5);
    let mut seen = t.left_of_run(run.uid);
    while !settled(&seen) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
        seen = t.left_of_run(run.uid);
    }
    assert!(settled(&seen), "{seen:?}");
    // A process of a sandbox uid outside any run's pid namespace (this
    // test's own sleeper) is seen, but not killed: the harness kills only
    // what a run of its test left.
    let planted_uid = POLICY_UID_BASE + POLICY_UID_COUNT - 1;
    let mut planted = std::process::Command::new("setpriv")
        .arg(format!("--reuid={planted_uid}"))
        .arg(format!("--regid={planted_uid}"))
        .args(["--clear-groups", "--", "/bin/sleep", "30"])
        .spawn()
        .expect("start a sleeper");
    let until = Instant::now() + Duration::from_secs(5);
    while t.left_of_run(planted_uid).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen_planted = t.survivors(planted_uid, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(100));
    let planted_alive = planted.try_wait().expect("try_wait").is_none();
    let _ = planted.kill();
    let _ = planted.wait();
    assert_eq!(seen_planted.len(), 1, "{seen_planted:?}");
    assert!(planted_alive, "the harness killed a process of no run");
    let killed = t.survivors(run.uid, Duration::ZERO);
    assert!(killed.len() >= 2, "{killed:?}");
    let out = run.frontend.wait();
    let j = json_report(&out);
    assert_eq!(j["verdict"], "signal", "{}", dump(&out));
    assert_nothing_of_the_run(&t, run.uid, "the harness killed the run's processes");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigkill_to_the_frontend_during_a_fork_bomb_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let mut run = start(&t, &opts, &attack, 10);
    signal(run.frontend.id(), libc::SIGKILL);
    let _ = run.frontend.child.wait();
    assert_nothing_of_the_run(&t, run.uid, "frontend killed during a fork bomb");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigkill_to_the_supervisor_during_a_fork_bomb_leaves_nothing_and_fails_in_one_line() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let run = start(&t, &opts, &attack, 10);
    signal(run.sup, libc::SIGKILL);
    let out = run.frontend.wait();
    assert_nothing_of_the_run(&t, run.uid, "supervisor killed during a fork bomb");
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "not one line\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigkill_to_the_supervisor_with_a_setsid_daemon_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let run = start(&t, &["--nproc", "3"], &["daemon", "stay"], 2);
    signal(run.sup, libc::SIGKILL);
    let out = run.frontend.wait();
    assert_nothing_of_the_run(&t, run.uid, "supervisor killed with a daemon alive");
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigkill_to_the_frontend_with_a_setsid_daemon_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let mut run = start(&t, &["--nproc", "3"], &["daemon", "stay"], 2);
    signal(run.frontend.id(), libc::SIGKILL);
    let _ = run.frontend.child.wait();
    assert_nothing_of_the_run(&t, run.uid, "frontend killed with a daemon alive");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigstop_to_the_supervisor_does_not_stop_the_wall_limit() {
    let t = require_root!();
    let _g = alone();
    let started = Instant::now();
    let run = start(&t, &["--clock", "1", "--nproc", "3"], &["daemon", "stay"], 2);
    signal(run.sup, libc::SIGSTOP);
    // Init ends the run at its deadline on its own.
    let left = t.survivors(run.uid, Duration::from_secs(6));
    signal(run.sup, libc::SIGCONT);
    let out = run.frontend.wait();
    assert!(
        left.is_empty(),
        "with the supervisor stopped, the run outlived its wall limit: {left:?} ({:?})",
        started.elapsed()
    );
    let j = json_report(&out);
    assert_eq!(j["verdict"], "time_limit", "{}", dump(&out));
    assert_eq!(out.status.code(), Some(1));
    assert_nothing_of_the_run(&t, run.uid, "supervisor stopped then continued");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigstop_then_sigkill_to_the_supervisor_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let run = start(&t, &opts, &attack, 10);
    signal(run.sup, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(200));
    signal(run.sup, libc::SIGKILL);
    let out = run.frontend.wait();
    assert_nothing_of_the_run(&t, run.uid, "supervisor stopped, then killed");
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigstop_to_the_frontend_does_not_stop_the_wall_limit() {
    let t = require_root!();
    let _g = alone();
    let run = start(&t, &["--clock", "1", "--nproc", "3"], &["daemon", "stay"], 2);
    signal(run.frontend.id(), libc::SIGSTOP);
    let left = t.survivors(run.uid, Duration::from_secs(6));
    signal(run.frontend.id(), libc::SIGCONT);
    let out = run.frontend.wait();
    assert!(left.is_empty(), "the run outlived its wall limit: {left:?}");
    let j = json_report(&out);
    assert_eq!(j["verdict"], "time_limit", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigkill_to_the_supervisor_before_the_target_starts_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    // Kill the helper as early as it can be seen, many times over: each
    // kill lands somewhere in the set-up (before or after the fork, before
    // or after the privilege drop).
    for delay_us in [0u64, 200, 500, 1000, 2000, 5000] {
        let p = t.probe();
        // This test runs alone in its binary: the next uid is this run's.
        let uid = t.next_run_uid();
        let spawned = t.run(&["--nproc", "3", "--exec", &p, "daemon", "stay"]).spawn();
        let until = Instant::now() + Duration::from_secs(10);
        let sup = loop {
            if let Some(c) = children_of(spawned.id()).first() {
                break *c;
            }
            assert!(Instant::now() < until, "the helper never started");
            std::hint::spin_loop();
        };
        std::thread::sleep(Duration::from_micros(delay_us));
        signal(sup, libc::SIGKILL);
        let out = spawned.wait();
        let what = format!("supervisor killed after {delay_us} µs");
        assert_nothing_of_the_run(&t, uid, &what);
        assert_ne!(out.status.code(), Some(0), "{}", dump(&out));
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn uid_of_a_killed_run_is_free_again_and_a_new_run_works() {
    let t = require_root!();
    let _g = alone();
    let (opts, attack) = fork_bomb_args();
    let run = start(&t, &opts, &attack, 10);
    signal(run.sup, libc::SIGKILL);
    let _ = run.frontend.wait();
    assert_nothing_of_the_run(&t, run.uid, "supervisor killed");
    assert!(t.left_of_run(run.uid).is_empty());
    let out = t.safeexec(&["--json", "--exec", "/bin/true"]);
    let j = json_report(&out);
    assert_eq!(j["verdict"], "ok", "{}", dump(&out));
    assert!(in_policy_range(json_uid(&j)));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn helper_run_directly_and_killed_mid_run_leaves_nothing() {
    let t = require_root!();
    let _g = alone();
    let p = t.probe();
    let mut r = request(&[p.as_str(), "forkbomb", "30"]);
    set_limit(&mut r, Limit::Nproc, Some(20));
    let run = t.direct().start_exchange(&frame(&r));
    let uid = run_uid(run.pid(), Duration::from_secs(10)).expect("the run's target started");
    let until = Instant::now() + Duration::from_secs(10);
    while t.left_of_run(uid).len() < 10 {
        assert!(Instant::now() < until, "the bomb never went off");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(run.pid(), libc::SIGKILL);
    let got = run.finish();
    assert_eq!(got.output.status.signal(), Some(libc::SIGKILL));
    assert_nothing_of_the_run(&t, uid, "direct helper killed during a fork bomb");
}

/// A frontend that dies before the helper first asks for its parent hands
/// the helper to another parent (pid 1, or a subreaper), which the
/// supervisor's check of its parent cannot tell from the frontend: the
/// run then went on without a caller until its wall limit (a review of
/// edd12a9: 2 tries in 30 of a SIGKILL 2 to 3 ms after the start). The
/// supervisor also checks that the reply pipe, whose only reader is the
/// frontend, still has one. Here a direct caller closes its end at once,
/// standing for the dead frontend: the helper refuses before the target's
/// go, and nothing of the run is left.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_caller_gone_before_the_go_leaves_no_run_even_if_its_parent_check_passes() {
    use std::time::{Duration, Instant};
    let t = require_root!();
    let (mut helper, request_tx, reply_rx) = t.direct().spawn_for_request();
    drop(reply_rx);
    request_tx.send(&frame(&request(&["/bin/sleep", "30"]))).expect("send the request");
    let started = Instant::now();
    while helper.ended().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the helper ran on for a caller whose reply pipe has no reader"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = helper.wait();
    let said = stderr(&out);
    assert!(said.contains("the caller went away"), "{}", dump(&out));
}

/// Where the first process of the caller's pid namespace reaps nothing (a
/// container whose first process is `sleep infinity`, or a judge's own
/// server), safeexec leaves no helper behind it: it waits for the helper's
/// end there. A review of the fourteenth round found a zombie helper per
/// run there, each counted against the caller's RLIMIT_NPROC, until the
/// caller could start nothing.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn in_a_pid_namespace_whose_first_process_reaps_nothing_no_helper_is_left() {
    let t = require_root!();
    let mut namespace = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "/bin/sleep", "120"])
        .spawn()
        .expect("unshare");
    let first = wait_for_child(namespace.id(), |_| true, Duration::from_secs(10));
    let mut outs = Vec::new();
    if let Some(first) = first {
        for _ in 0..3 {
            let user = format!("--reuid={}", safeexec_tests::TEST_USER);
            let group = format!("--regid={}", safeexec_tests::TEST_USER);
            let out = std::process::Command::new("nsenter")
                .args(["-t", &first.to_string(), "-p", "--", "setpriv", &user, &group])
                .args(["--init-groups", "--", "/usr/bin/env", "-i"])
                .arg(&t.safeexec)
                .args(["--exec", "/bin/true"])
                .current_dir("/")
                .output()
                .expect("nsenter");
            outs.push(out);
        }
    }
    // Time for a helper left behind to end, as a zombie of the sleep's.
    std::thread::sleep(Duration::from_millis(300));
    let left = first.map(children_of);
    let _ = namespace.kill();
    let _ = namespace.wait();
    let first = first.expect("the namespace's first process");
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{}", dump(out));
    }
    let left = left.unwrap_or_default();
    assert!(left.is_empty(), "left to {first}, which reaps nothing: {left:?}");
}
