//! The run's processes and everything else on the machine (DESIGN.md
//! invariants 5 and 6, the trust table's rows for the target and for the
//! caller against other runs): the target cannot signal, trace or read the
//! supervisor, init, the frontend, the caller or another run, nor see them
//! in its /proc; `kill(-1)` reaches nothing outside its run; and the caller
//! cannot stop or kill init (root in all its ids) to outlive the wall
//! limit.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::Output;
use std::time::{Duration, Instant};

use safeexec_tests::{
    assert_verdict, dump, frame, json_report, json_uid, kv, process, request, require_root,
    run_pids, run_uid, set_limit, signal, status_field, stdout, verdict, word, ContinueOnDrop, Env,
    Ids, Input, Limit, TEST_USER,
};

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn kill_minus_1_from_the_target_reaches_nothing_outside_its_run() {
    let t = require_root!();
    let env = t.env();
    // A process of the caller and a concurrent run, both of which must
    // live through the attack.
    let mut callers_own = std::process::Command::new("setpriv")
        .args(["--reuid=safeexec-test", "--regid=safeexec-test", "--init-groups"])
        .args(["--", "/bin/sleep", "20"])
        .spawn()
        .expect("start the caller's sleeper");
    let other = std::thread::spawn(move || {
        let p = env.probe();
        env.safeexec(&["--clock", "2", "--json", "--exec", &p, "sleep"])
    });
    std::thread::sleep(Duration::from_millis(300));
    let (out, j) = t.attack(&[], &["killall"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "kill_init"), "EPERM", "{}", dump(&out));
    assert_eq!(word(&out, "alive"), "yes");
    let other = other.join().expect("the other run");
    let oj = json_report(&other);
    assert_eq!(oj["verdict"], "time_limit", "the other run was hit\n{}", dump(&other));
    assert_eq!(oj["limit"], "wall", "{}", dump(&other));
    assert!(
        callers_own.try_wait().expect("try_wait").is_none(),
        "the caller's own process was killed"
    );
    let _ = callers_own.kill();
    let _ = callers_own.wait();
}

/// Starts the probe's `pids` attack with a pipe as its stdin; returns the
/// running frontend and the pipe's write end.
fn start_pid_attack(t: &Env, clock: &str) -> (safeexec_tests::Spawned, File) {
    let (rx, tx) = std::io::pipe().expect("pipe");
    let p = t.probe();
    let spawned = t
        .run(&["--clock", clock, "--json", "--exec", &p, "pids"])
        .stdin(Input::File(File::from(OwnedFd::from(rx))))
        .spawn();
    (spawned, File::from(OwnedFd::from(tx)))
}

fn assert_attacks_failed(out: &Output) {
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("pid=")).collect();
    assert!(!lines.is_empty(), "the probe attacked nothing\n{}", dump(out));
    for line in lines {
        for key in ["kill", "stop", "attach", "seize", "vm_readv", "mem"] {
            let v = kv(line, key).unwrap_or_default();
            assert!(v != "ok" && !v.is_empty(), "{key} succeeded: {line}\n{}", dump(out));
        }
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_cannot_signal_trace_or_read_the_supervisor_init_or_frontend() {
    let t = require_root!();
    let (spawned, mut tx) = start_pid_attack(&t, "20");
    let frontend = spawned.id();
    let (sup, init, _target) = run_pids(frontend);
    // Host pids (not visible in its namespace), and pid 1 (its own init).
    writeln!(tx, "{sup}\n{init}\n{frontend}\n{}\n1", std::process::id()).expect("send pids");
    drop(tx);
    let out = spawned.wait();
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    assert_attacks_failed(&out);
    let init_line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("pid=1 "))
        .map(str::to_string)
        .expect("the probe attacked pid 1");
    assert_eq!(kv(&init_line, "kill").as_deref(), Some("EPERM"), "{init_line}");
    t.assert_nothing_left(json_uid(&j), &dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_cannot_signal_trace_or_read_another_concurrent_run() {
    let t = require_root!();
    let env = t.env();
    let p = t.probe();
    // Run A: sleeps until its wall limit; it must end by that limit, not
    // by anything run B does.
    let a = t.run(&["--clock", "3", "--json", "--exec", &p, "sleep"]).spawn();
    let (a_sup, a_init, a_target) = run_pids(a.id());
    let (b, mut tx) = start_pid_attack(env, "20");
    run_pids(b.id());
    writeln!(tx, "{a_target}\n{a_init}\n{a_sup}\n{}", a.id()).expect("send pids");
    drop(tx);
    let out_b = b.wait();
    let jb = json_report(&out_b);
    verdict(&out_b, &jb, "ok", 0);
    assert_attacks_failed(&out_b);
    let out_a = a.wait();
    let ja = json_report(&out_a);
    assert_eq!(ja["verdict"], "time_limit", "run A was hit\n{}", dump(&out_a));
    assert_eq!(ja["limit"], "wall", "{}", dump(&out_a));
    assert_ne!(ja["uid"], jb["uid"]);
    t.assert_nothing_left(json_uid(&ja), "run A");
    t.assert_nothing_left(json_uid(&jb), "run B");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_proc_shows_no_host_process() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--exec", "/bin/ls", "/proc"]);
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    let pids: Vec<u32> = stdout(&out).split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(pids, vec![1, 2], "{}", dump(&out));
}

// ---------------------------------------------------------------------------
// Init's ids: the caller cannot stop the run's pid 1

/// The exit status of `act`, run in a forked child that has become `user`
/// (real, effective and saved ids, its own groups dropped). `act` may only
/// make async-signal-safe system calls (the test process has threads).
fn in_child_as(user: Ids, act: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child makes only async-signal-safe system calls
    // (setgroups, setresgid, setresuid, those of `act`, _exit) and exits.
    unsafe {
        match libc::fork() {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                let gid = user.gid;
                if libc::setgroups(1, &gid) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(user.uid, user.uid, user.uid) != 0
                {
                    libc::_exit(200);
                }
                libc::_exit(act());
            }
            child => {
                let mut status = 0;
                assert_eq!(libc::waitpid(child, &mut status, 0), child, "waitpid");
                assert!(libc::WIFEXITED(status), "the child as {TEST_USER} died: {status:#x}");
                let code = libc::WEXITSTATUS(status);
                assert_ne!(code, 200, "the child could not become {TEST_USER}");
                code
            }
        }
    }
}

/// `kill(pid, sig)` from a child that has become `user`; Err(errno) when
/// refused.
fn kill_as(user: Ids, pid: u32, sig: i32) -> Result<(), i32> {
    let code = in_child_as(user, || {
        // SAFETY: kill has no memory-safety preconditions; errno is this
        // thread's.
        let (r, e) = unsafe { (libc::kill(pid as i32, sig), *libc::__errno_location()) };
        if r == 0 {
            0
        } else {
            e.clamp(1, 199)
        }
    });
    if code == 0 {
        Ok(())
    } else {
        Err(code)
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn caller_cannot_sigstop_or_sigkill_init_to_outlive_the_wall_limit() {
    let t = require_root!();
    let started = Instant::now();
    let spawned = t.run(&["--clock", "2", "--", "/bin/sleep", "30"]).spawn();
    // Once the target has exec'd, init has set its ids and the supervisor
    // has dropped to the caller (the target execs only on its go, which
    // follows that drop; the target's own uid comes sooner).
    let (sup, init, _target) = run_pids(spawned.id());
    assert_eq!(
        process(sup).map(|p| p.uid),
        Some(t.test_user.uid),
        "the supervisor does not run as the caller"
    );
    let status = fs::read_to_string(format!("/proc/{init}/status")).expect("init's status");
    let ids = |key: &str| {
        status_field(&status, key)
            .unwrap_or("")
            .split_whitespace()
            .take(3)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let stop = kill_as(t.test_user, init, libc::SIGSTOP);
    let kill = kill_as(t.test_user, init, libc::SIGKILL);
    if stop.is_ok() {
        // Let the run go on to its end, whichever way.
        signal(init, libc::SIGCONT);
    }
    let out = spawned.wait();
    let elapsed = started.elapsed();
    assert_eq!(ids("Uid"), ["0", "0", "0"], "init's uids\n{status}");
    assert_eq!(ids("Gid"), ["0", "0", "0"], "init's gids\n{status}");
    assert_eq!(status_field(&status, "Groups"), Some(""), "init's groups\n{status}");
    assert_eq!(stop, Err(libc::EPERM), "the caller stopped init\n{}", dump(&out));
    assert_eq!(kill, Err(libc::EPERM), "the caller killed init\n{}", dump(&out));
    assert_verdict(&out, "Time Limit Exceeded", 1);
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "a 2 s wall limit ended after {elapsed:?}\n{}",
        dump(&out)
    );
}

/// As `user`: waits until `pid` (a helper just started, still waiting for
/// its request) has become root in all its ids (kill(pid, 0) is refused),
/// says so with a byte on `seen`, then stops it at the first moment the
/// caller may: once the supervisor has dropped to the caller's uid, just
/// before it sends the target its go. Whether it could, within 5 s.
fn stop_once_allowed(user: Ids, pid: u32, seen: OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let code = in_child_as(user, || {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let fd = seen.as_raw_fd() as libc::c_uint;
        // SAFETY: close_range closes numbers only, clock_gettime writes the
        // live timespec, write reads one byte of a live array; kill has no
        // memory-safety preconditions.
        unsafe {
            // The test's copy of the request pipe among them: the helper
            // reads its request to the pipe's end.
            libc::syscall(libc::SYS_close_range, 3, fd - 1, 0);
            libc::syscall(libc::SYS_close_range, fd + 1, libc::c_uint::MAX, 0);
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
            let until = now.tv_sec + 5;
            let mut root = false;
            loop {
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
                if now.tv_sec > until {
                    return 1;
                }
                if !root {
                    root = libc::kill(pid as i32, 0) != 0;
                    if root && libc::write(seen.as_raw_fd(), [1u8].as_ptr().cast(), 1) != 1 {
                        return 2;
                    }
                } else if libc::kill(pid as i32, libc::SIGSTOP) == 0 {
                    return 0;
                }
            }
        }
    });
    code == 0
}

/// The caller may stop the supervisor once it has the caller's uid, and
/// that comes just before the target's go: a caller that spins on
/// SIGSTOP often stops it there, and the target, which waits for its go,
/// never execs. Init counts the run's wall clock from its own fork
/// until the target's exec, with 5 s for the set-up, so the run still ends: no
/// process of it is left, though the stopped supervisor, a process of the
/// caller's own, holds the run's uid until it goes on.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn caller_cannot_stop_the_supervisor_before_the_go_to_outlive_the_wall_limit() {
    let t = require_root!();
    let mut r = request(&["/bin/sleep", "30"]);
    set_limit(&mut r, Limit::Wall, Some(1000));
    // The wall limit and init's allowance for the set-up (`init.rs`).
    let deadline = Duration::from_secs(1 + 5);
    // Until a stop lands before the go (four tries in ten do here, fewer on
    // a loaded machine); a try that misses costs about a second.
    for _ in 0..40 {
        let (mut seen_rx, seen_tx) = std::io::pipe().expect("a pipe");
        let (helper, request_tx, mut reply_rx) = t.direct().spawn_for_request();
        let sup = helper.id();
        let user = t.test_user;
        let stopper = std::thread::spawn(move || stop_once_allowed(user, sup, seen_tx.into()));
        // The request only once the stopper has seen the helper as root:
        // its stops then come after that, and no sooner than the drop.
        let mut byte = [0u8];
        std::io::Read::read_exact(&mut seen_rx, &mut byte).expect("the stopper saw root");
        request_tx.send(&frame(&r)).expect("send the request");
        assert!(stopper.join().expect("the stopper"), "the caller never could stop the supervisor");
        let stopped_at = Instant::now();
        let cont = ContinueOnDrop(sup);
        // None: the stop came after the go, and the run already ended.
        let Some(uid) = run_uid(sup, Duration::from_secs(5)) else {
            drop(cont);
            let _ = helper.wait();
            continue;
        };
        let margin = Duration::from_secs(2);
        while !t.left_of_run(uid).is_empty() && stopped_at.elapsed() < deadline + margin {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = t.left_of_run(uid);
        drop(cont);
        let out = helper.wait();
        assert!(left.is_empty(), "the run outlived its wall limit: {left:?}\n{}", dump(&out));
        let reply = shared::wire::read_reply(&mut reply_rx);
        let Ok(shared::Reply::Finished(facts)) = reply else { panic!("{reply:?}") };
        let init = facts.init.expect("init's report");
        assert!(init.deadline_passed, "{init:?}");
        // Stopped after the go, the supervisor watched the whole run; before
        // it, it watched a run that had already ended.
        if facts.supervisor_wall_us > 500_000 {
            continue;
        }
        assert!(init.wall_us >= deadline.as_micros() as u64, "{init:?}");
        assert_eq!(facts.exec_errno, None);
        return;
    }
    panic!("no stop landed before the go in forty runs");
}
