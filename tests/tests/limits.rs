//! The limits (DESIGN.md trust table, the target's row on CPU, memory,
//! processes, file size and output): a target that forks, spawns threads,
//! allocates, fills a disk, floods its output, spins, sleeps or opens
//! descriptors without end is contained at its limit, with the right
//! verdict; extreme limit values (0, u64::MAX, CPU limits whose
//! microseconds or nanoseconds overflow) neither end a run early nor crash
//! the helper. The reports of each kind of end are in reports.rs, the
//! cgroups' kernel limits in cgroups.rs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use safeexec_tests::{
    assert_verdict, dump, frame, json_report, num, path_str, process_cap, request, require_root,
    require_root_exclusive, set_limit, stdout, verdict, word, End, Limit, Reply,
};

// ---------------------------------------------------------------------------
// Exhaustion

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn fork_bomb_is_contained() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nproc", "5", "--clock", "10"], &["forkbomb", "1"]);
    verdict(&out, &j, "ok", 0);
    let forks = num(&out, "forks");
    assert!((1..=5).contains(&forks), "{forks} forks under --nproc 5\n{}", dump(&out));
    assert!(num(&out, "failed") > 0, "the bomb never hit the limit\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn fork_bomb_with_no_process_allowed_cannot_fork_once() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["forkbomb", "0.3"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(num(&out, "forks"), 0, "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn thread_bomb_is_contained() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nproc", "3", "--mem", "262144"], &["threadbomb"]);
    verdict(&out, &j, "ok", 0);
    let threads = num(&out, "threads");
    assert!(threads <= 3, "{threads} threads under --nproc 3\n{}", dump(&out));
    assert_eq!(word(&out, "error"), "EAGAIN", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn memory_bomb_is_contained_by_the_address_space_limit() {
    let t = require_root!();
    let (out, j) = t.attack(&["--mem", "65536"], &["memorybomb"]);
    verdict(&out, &j, "ok", 0);
    let mib = num(&out, "allocated_mib");
    assert!((1..64).contains(&mib), "allocated {mib} MiB under 64 MiB\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn memory_bomb_is_killed_at_the_resident_memory_limit() {
    let t = require_root!();
    let (out, j) =
        t.attack(&["--mem", "2000000", "--rss", "50000", "--clock", "20"], &["memorybomb"]);
    verdict(&out, &j, "memory_limit", 1);
    assert!(!stdout(&out).contains("allocated_mib"), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn disk_fill_is_contained_to_the_file_size_limit() {
    let t = require_root!();
    let scratch = t.scratch("fill");
    // Writable by the run's uid, and granted to the run (the host's file
    // system is read-only otherwise); not sticky, which --bind-rw refuses.
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = scratch.path().join("fill");
    let dir = path_str(scratch.path());
    let (out, j) = t.attack(&["--fsize", "1024", "--bind-rw", dir], &["fill", path_str(&path)]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "error"), "EFBIG", "{}", dump(&out));
    assert_eq!(num(&out, "wrote"), 1024 * 1024, "{}", dump(&out));
    let len = fs::metadata(&path).expect("the filled file").len();
    assert_eq!(len, 1024 * 1024, "the file outgrew the limit");
}

/// RLIMIT_FSIZE is checked only when a file's size grows: fallocate's
/// modes that keep the size would reserve the disk past the limit (an
/// independent review's 3 GB under `--fsize 0`), and so would the ioctls
/// that reserve the same way. Only the plain mode, checked, and a punched
/// hole are let through (`seccomp::FALLOCATE_MODES`,
/// `seccomp::PREALLOCATE_REQUESTS`).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn fallocate_reserves_no_disk_past_the_file_size_limit() {
    let t = require_root!();
    let scratch = t.scratch("fallocate");
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = scratch.path().join("blob");
    let dir = path_str(scratch.path());
    let (out, j) =
        t.attack(&["--fsize", "1024", "--bind-rw", dir], &["fallocate", path_str(&path)]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "keep_size"), "EOPNOTSUPP", "{}", dump(&out));
    assert_eq!(word(&out, "zero_range"), "EOPNOTSUPP", "{}", dump(&out));
    // The ioctls that reserve the same way, on any file system.
    assert_eq!(word(&out, "resvsp"), "EPERM", "{}", dump(&out));
    assert_eq!(word(&out, "resvsp64"), "EPERM", "{}", dump(&out));
    assert_eq!(word(&out, "zero_range_ioctl"), "EPERM", "{}", dump(&out));
    // The plain mode grows the size, where the kernel checks the limit.
    assert_eq!(word(&out, "plain"), "EFBIG", "{}", dump(&out));
    assert_eq!(word(&out, "punch"), "ok", "{}", dump(&out));
    let on_disk = fs::metadata(&path).expect("the file").blocks() * 512;
    assert!(on_disk <= 1024 * 1024, "{on_disk} bytes on disk past a 1 MiB limit: {}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn opening_descriptors_until_emfile_is_contained() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nfile", "16"], &["fds"]);
    verdict(&out, &j, "ok", 0);
    assert!(num(&out, "opened") <= 13, "{}", dump(&out));
    assert_eq!(word(&out, "error"), "EMFILE", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn busy_loop_in_several_processes_is_cut_at_the_cpu_limit() {
    let t = require_root!();
    let started = Instant::now();
    let (out, j) = t.attack(&["--cpu", "0.5", "--nproc", "3"], &["spin", "3"]);
    verdict(&out, &j, "time_limit", 1);
    assert_eq!(j["limit"], "cpu", "{}", dump(&out));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// A run stopped for its CPU limit has used at least that limit, also for
/// a whole number of seconds: the per-process RLIMIT_CPU, which the kernel
/// checks on its tick, backs the limit a second later, so its SIGXCPU does
/// not end a run at 0.85 to 0.97 s of `--cpu 1` as it did.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_stopped_at_a_whole_second_cpu_limit_used_all_of_it() {
    let t = require_root!();
    let spin = t.fixture("loop");
    for _ in 0..3 {
        let out = t.safeexec(&["--json", "--cpu", "1", "--exec", &spin]);
        let j = json_report(&out);
        verdict(&out, &j, "time_limit", 1);
        assert_eq!(j["limit"], "cpu", "{}", dump(&out));
        let cpu_ms = j["cpu_ms"].as_f64().unwrap_or(0.0);
        assert!(cpu_ms >= 1000.0, "stopped after {cpu_ms} ms of a 1000 ms limit\n{}", dump(&out));
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn endless_sleep_is_cut_at_the_wall_limit() {
    let t = require_root!();
    let started = Instant::now();
    let (out, j) = t.attack(&["--clock", "0.5"], &["sleep"]);
    verdict(&out, &j, "time_limit", 1);
    assert_eq!(j["limit"], "wall", "{}", dump(&out));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// A run that stops using the CPU within the last milliseconds of its CPU
/// limit never reaches it. Init looked at the run's counter at once there,
/// with no pause, and spun a whole CPU of the host, root at niceness 0
/// outside the run's cgroups and report, until the wall limit (a review of
/// the thirteenth round: 16.9 CPU-seconds in 18 s); then, past a first
/// fix, every millisecond (2.4 % of a CPU). It now looks at once for
/// 10 ms and 4 times the run's CPU time meanwhile at most
/// (`enforce::SPIN_BUDGET`), then with pauses that double while the run's
/// CPU time stands still (`enforce::IDLE_LOOK_MAX`).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_idle_just_under_its_cpu_limit_does_not_make_init_spin() {
    let t = require_root!();
    let sleeper = t.fixture("sleep_forever");
    let run = t.run(&["--cpu", "0.003", "--clock", "3", "--exec", &sleeper]).spawn();
    let (_, init, _) = safeexec_tests::run_pids(run.id());
    let woken = || {
        let status = fs::read_to_string(format!("/proc/{init}/status")).unwrap_or_default();
        safeexec_tests::status_field(&status, "voluntary_ctxt_switches")?.parse::<u64>().ok()
    };
    let (before, started) = (safeexec_tests::process_cpu_s(init), Instant::now());
    let woken_before = woken().expect("init's context switches");
    std::thread::sleep(Duration::from_millis(1500));
    let used = safeexec_tests::process_cpu_s(init) - before;
    // Each look ends a sleep: looks every millisecond woke init about 1,500 times.
    let wakes = woken().expect("init's context switches") - woken_before;
    let wall = started.elapsed().as_secs_f64();
    let out = run.wait();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Time Limit Exceeded"), "{}", dump(&out));
    assert!(used < 0.1 * wall, "init used {used:.3} CPU-seconds in {wall:.2} s\n{}", dump(&out));
    let most = (200.0 * wall) as u64;
    assert!(
        wakes < most,
        "init woke {wakes} times in {wall:.2} s (at most {most})\n{}",
        dump(&out)
    );
}

/// Without a cgroup's CPU counter or memory limit (the policy's
/// `cgroup = off`, a container without cgroups), each of init's looks
/// reads every process of the run: with 2,000 idle processes, looks every
/// 10 ms for `--rss` kept init busy for the whole wall limit, root at
/// niceness 0 outside the run's cgroups and report (a review of the
/// thirteenth round: 6 CPU-seconds in 10 s). The next look now waits 20
/// times as long as the last took (`enforce::LOOK_COST_RATIO`).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn looking_at_many_idle_processes_takes_init_a_small_share_of_a_cpu() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("cgroup", "off")]));
    let probe = t.probe();
    let args = ["--nproc", "1200", "--rss", "4000000", "--mem", "100000", "--clock", "4"];
    let run = t.run(&[&args[..], &["--exec", &probe, "sleepers", "1000"]].concat()).spawn();
    // Once the children are there.
    let ready = |target: u32| safeexec_tests::children_of(target).len() >= 1000;
    let (used, wall, out) = init_cpu_once(run, ready);
    assert!(stdout(&out).contains("sleepers=1000"), "{}", dump(&out));
    assert!(used < 0.15 * wall, "init used {used:.2} CPU-seconds in {wall:.2} s\n{}", dump(&out));
}

/// The CPU time init uses in 1.5 s, once `ready` holds of the run's
/// target (20 s at most), the time it took, and the run's output.
fn init_cpu_once(
    run: safeexec_tests::Spawned,
    ready: impl Fn(u32) -> bool,
) -> (f64, f64, std::process::Output) {
    let (_, init, target) = safeexec_tests::run_pids(run.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready(target) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (before, started) = (safeexec_tests::process_cpu_s(init), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let used = safeexec_tests::process_cpu_s(init) - before;
    let wall = started.elapsed().as_secs_f64();
    (used, wall, run.wait())
}

/// A run near its CPU limit that wakes for a few microseconds before each
/// of init's looks moved its CPU time, so counted as busy, and init read
/// every one of its processes at each look (no cgroup counter): half a
/// CPU of init's on 10 ms of the run's (a review of the thirteenth round).
/// A run counts as busy only when it used a quarter of a CPU since the
/// last look (`enforce::BUSY_SHARE`).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_that_wakes_briefly_near_its_cpu_limit_takes_init_a_small_share_of_a_cpu() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("cgroup", "off")]));
    let probe = t.probe();
    let args = ["--nproc", "1200", "--cpu", "1", "--clock", "8"];
    let tease = ["--exec", &probe, "tease", "1000", "985", "1000"];
    let run = t.run(&[&args[..], &tease[..]].concat()).spawn();
    // Once it has used its CPU (the whole run 985 ms).
    let ready = |target: u32| safeexec_tests::process_cpu_s(target) >= 0.9;
    let (used, wall, out) = init_cpu_once(run, ready);
    assert!(stdout(&out).contains("teasing=1000"), "{}", dump(&out));
    assert!(used < 0.15 * wall, "init used {used:.2} CPU-seconds in {wall:.2} s\n{}", dump(&out));
}

/// Looks made rare by their cost (`enforce::LOOK_COST_RATIO`) must not
/// let a busy run pass its CPU limit: without a cgroup's counter, a run of
/// 6,000 idle processes and two busy threads overshot `--cpu 3` by 3.4
/// CPU-seconds (a review of the thirteenth round). While the run uses the
/// CPU, init's looks follow what is left of its limit.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_of_many_processes_is_stopped_at_its_cpu_limit_without_a_cgroup() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("cgroup", "off")]));
    let probe = t.probe();
    let args = ["--json", "--nproc", "3000", "--cpu", "1", "--clock", "30"];
    let out = t.safeexec(&[&args[..], &["--exec", &probe, "crowd", "2500", "2"]].concat());
    let j = json_report(&out);
    verdict(&out, &j, "time_limit", 1);
    assert_eq!(j["limit"], "cpu", "{}", dump(&out));
    let cpu_ms = j["cpu_ms"].as_f64().unwrap_or(0.0);
    assert!(cpu_ms < 1300.0, "a 1000 ms limit stopped the run at {cpu_ms} ms\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn grace_lets_the_run_go_on_but_the_verdict_is_still_time_limit() {
    let t = require_root!();
    let spin = t.fixture("loop");
    let out = t.safeexec(&["--json", "--cpu", "0.2", "--grace", "0.3", "--exec", &spin]);
    let j = json_report(&out);
    assert_eq!(j["verdict"], "time_limit", "{j}");
    assert_eq!(j["limit"], "cpu", "{j}");
    // Killed at limit + grace, not at the limit.
    let cpu = j["cpu_ms"].as_f64().expect("cpu_ms");
    assert!(cpu >= 450.0, "killed before the grace period ended: {j}");
    assert_eq!(j["limits"]["grace_ms"], 300, "{j}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn endless_stdout_is_cut_at_the_output_limit() {
    let t = require_root!();
    let started = Instant::now();
    let (out, j) = t.attack(&["--output", "100"], &["flood"]);
    verdict(&out, &j, "output_limit", 1);
    assert!(out.stdout.len() <= 100 * 1024, "{} bytes passed", out.stdout.len());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn output_limit_cuts_endless_output_and_reports_it() {
    let t = require_root!();
    let out =
        t.safeexec(&["--json", "--output", "64", "--nproc", "2", "--exec", "/bin/sh", "-c", "yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    // Exactly the limit reaches the caller, not a byte more.
    assert_eq!(out.stdout.len(), 64 * 1024, "{}", dump(&out));
    let j = json_report(&out);
    assert_eq!(j["verdict"], "output_limit", "{j}");
    assert_eq!(j["limit"], "output", "{j}");
    assert!(j["output_bytes"].as_u64().is_some_and(|b| b > 64 * 1024), "{j}");
    let text = t.safeexec(&["--output", "1", "--nproc", "2", "--exec", "/bin/sh", "-c", "yes"]);
    assert_verdict(&text, "Output Limit Exceeded", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn output_under_the_limit_passes_whole() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--output", "64", "--exec", "/bin/echo", "small"]);
    assert_eq!(stdout(&out), "small\n", "{}", dump(&out));
    let j = json_report(&out);
    assert_eq!(j["verdict"], "ok", "{j}");
    assert_eq!(j["output_bytes"], 6, "{j}");
}

/// A run that sends its output away, in flight on a socket the caller
/// gave it as stdin (SCM_RIGHTS; the caller holds the other end and never
/// reads it: a judge whose library makes its children's standard streams
/// socketpairs), leaves a writer of the relay's pipe, or of its pty, alive
/// after its end: the relay waited for their end of file for ever, past
/// the wall limit (an independent review held the frontend so). Once the
/// run is over, the relay now drains what is there and ends. (Under
/// `--output` such a stdin now reaches the run as a pipe, below; the pty
/// of a caller whose stdout is a terminal is still relayed with the
/// socket as stdin.)
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_relay_ends_with_the_run_even_if_the_run_sent_its_pipes_away() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};
    let t = require_root!();
    let (stdin, held) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let (master, slave) = safeexec_tests::pty();
    let p = t.probe();
    let args = ["--json", "--clock", "2", "--exec", &p, "sendfds", "0", "1"];
    let started = Instant::now();
    let out = t
        .run(&args)
        .stdin(safeexec_tests::Input::File(fs::File::from(OwnedFd::from(stdin))))
        .fd(slave, 1)
        .timeout(Duration::from_secs(30))
        .output();
    let took = started.elapsed();
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut screen = Vec::new();
    let _ = fs::File::from(master).read_to_end(&mut screen);
    let screen = String::from_utf8_lossy(&screen);
    assert!(screen.contains("sendfds=ok"), "{screen:?}\n{}", dump(&out));
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    assert!(took < Duration::from_secs(10), "the frontend ended after {took:?}\n{}", dump(&out));
    drop(held);
}

/// Under an output limit a run may not write past it through a stdin it
/// could write to: a socket, as inetd, systemd's `Accept=yes` and socat
/// give their children as 0, 1 and 2 at once. The run wrote 4 MiB to fd 0
/// under `--output 1`, to the caller's peer, and was reported OK with 3
/// bytes of output (a review of the eleventh round). Now it reads its stdin
/// from a pipe the frontend fills from the socket: what the caller sent
/// still reaches it, and nothing it writes there reaches the caller.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn under_an_output_limit_a_run_cannot_write_through_a_socket_given_as_stdin() {
    use std::io::{Read, Write};
    let t = require_root!();
    let (stdin, mut peer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    peer.write_all(b"from the caller\n").expect("send the input");
    peer.shutdown(std::net::Shutdown::Write).expect("shutdown");
    // Reads its line, then writes 100 KB to its fd 0 (fails on a pipe's
    // reading end), then prints what it read.
    let script = "read line; head -c 100000 /dev/zero >&0; echo \"read: $line\"";
    let args = ["--output", "1000", "--nproc", "4", "--exec", "/bin/sh", "-c", script];
    let out = t
        .run(&args)
        .stdin(safeexec_tests::Input::File(fs::File::from(std::os::fd::OwnedFd::from(stdin))))
        .timeout(Duration::from_secs(30))
        .output();
    assert!(stdout(&out).contains("read: from the caller"), "{}", dump(&out));
    peer.set_nonblocking(true).expect("non-blocking");
    let mut came = Vec::new();
    let _ = peer.read_to_end(&mut came);
    assert_eq!(
        came.len(),
        0,
        "the run wrote {} bytes to the caller's socket\n{}",
        came.len(),
        dump(&out)
    );
}

/// A stdin opened for writing only has nothing for the run to read: under
/// an output limit it reaches the run as an empty input, not as a pipe the
/// frontend would wait to fill for ever (a review of the round: the run of
/// `cat` waited for its wall limit).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn under_an_output_limit_a_write_only_stdin_reaches_the_run_empty() {
    let t = require_root!();
    let (_rx, tx) = std::io::pipe().expect("pipe");
    let out = t
        .run(&["--json", "--output", "10", "--clock", "3", "--exec", "/bin/cat"])
        .stdin(safeexec_tests::Input::File(fs::File::from(std::os::fd::OwnedFd::from(tx))))
        .timeout(Duration::from_secs(30))
        .output();
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
}

// ---------------------------------------------------------------------------
// Extreme values

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn zero_limits_fail_closed_or_run_correctly() {
    let t = require_root!();
    let base = request(&["/bin/true"]);
    let with = |limits: &[(Limit, u64)]| {
        let mut r = base.clone();
        for &(limit, value) in limits {
            set_limit(&mut r, limit, Some(value));
        }
        r
    };
    // No time at all is refused.
    for r in [with(&[(Limit::Cpu, 0)]), with(&[(Limit::Wall, 0)])] {
        let line = t.direct().exchange(&frame(&r)).refusal();
        assert!(line.contains("more than 0"), "{line}");
    }
    // No address space or no descriptors: the program cannot even start,
    // and that is reported, never an OK.
    for r in [with(&[(Limit::Mem, 0)]), with(&[(Limit::Nfile, 0)]), with(&[(Limit::Stack, 0)])] {
        let got = t.direct().exchange(&frame(&r));
        match got.reply() {
            Ok(Reply::Finished(o)) => assert!(
                o.end != End::Exited(0) || o.exec_error.is_some(),
                "{r:?} ran fine\n{}",
                got.dump()
            ),
            _ => {
                got.refusal();
            }
        }
        assert!(!got.output.status.core_dumped(), "{}", got.dump());
    }
    // No extra process, no file size, no core: a program that needs none
    // of them runs.
    let o = t
        .direct()
        .exchange(&frame(&with(&[
            (Limit::Nproc, 0),
            (Limit::Fsize, 0),
            (Limit::Core, 0),
            (Limit::Grace, 0),
            (Limit::Output, 0),
        ])))
        .outcome();
    assert_eq!(o.end, End::Exited(0), "{o:?}");
}

/// A limit and its value (None: no limit of that kind).
type LimitValue = (Limit, Option<u64>);

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn u64_max_limits_under_an_unlimited_policy_run_correctly() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[
        ("max_cpu", "unlimited"),
        ("max_wall", "unlimited"),
        ("max_mem", "unlimited"),
        ("max_stack", "unlimited"),
        ("max_core", "unlimited"),
        ("max_fsize", "unlimited"),
        ("max_nproc", "unlimited"),
    ]));
    let base = request(&["/bin/true"]);
    let max = Some(u64::MAX);
    let cases: [(&str, &[LimitValue]); 9] = [
        ("cpu", &[(Limit::Cpu, max)]),
        ("wall", &[(Limit::Wall, max)]),
        ("grace", &[(Limit::Grace, max)]),
        ("cpu+grace", &[(Limit::Cpu, max), (Limit::Grace, max)]),
        ("mem", &[(Limit::Mem, max)]),
        ("stack", &[(Limit::Stack, max)]),
        ("core", &[(Limit::Core, max)]),
        ("fsize", &[(Limit::Fsize, max)]),
        (
            "none",
            &[
                (Limit::Cpu, None),
                (Limit::Wall, None),
                (Limit::Mem, None),
                (Limit::Stack, None),
                (Limit::Fsize, None),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, limits) in cases {
        let mut r = base.clone();
        for &(limit, value) in limits {
            set_limit(&mut r, limit, value);
        }
        let got = t.direct().timeout(Duration::from_secs(20)).exchange(&frame(&r));
        let ok = matches!(
            got.reply(),
            Ok(Reply::Finished(ref o)) if o.end == End::Exited(0) && o.limit.is_none()
        ) && got.output.status.code() == Some(0);
        if !ok {
            failures.push(format!("{name}: {}", got.dump()));
        }
    }
    assert!(
        failures.is_empty(),
        "/bin/true did not run correctly under extreme limits:\n{}",
        failures.join("\n")
    );
    // Even under max_nproc = unlimited, one run may hold at most a quarter
    // of the machine's pids: no process limit is refused, naming that cap.
    let cap = process_cap();
    let mut r = base.clone();
    set_limit(&mut r, Limit::Nproc, Some(u64::MAX));
    let line = t.direct().exchange(&frame(&r)).refusal();
    assert!(
        line.contains(&format!(
            "process limit of {} is over the policy's maximum of {cap}",
            u64::MAX
        )),
        "{line}"
    );
    // At the cap, RLIMIT_NPROC is the cap plus one (the target itself):
    // above the caller's own hard limit, which this helper cannot raise (no
    // CAP_SYS_RESOURCE in the bounding set), that must fail closed, naming
    // the limit; within it, the run goes.
    let caller_hard = {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the local.
        unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut r) };
        r.rlim_max
    };
    let mut r = base.clone();
    set_limit(&mut r, Limit::Nproc, Some(cap));
    let got = t.direct().exchange(&frame(&r));
    if caller_hard > cap {
        assert_eq!(got.outcome().end, End::Exited(0), "{}", got.dump());
    } else {
        let line = got.refusal();
        assert!(line.contains("RLIMIT_NPROC"), "{line}");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn cpu_limit_that_overflows_microseconds_is_not_enforced_as_a_tiny_one() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("max_cpu", "unlimited")]));
    let p = t.probe();
    // 18446744073709552 ms * 1000 wraps around 2^64 to 384 µs.
    let mut r = request(&[p.as_str(), "spin", "1"]);
    set_limit(&mut r, Limit::Cpu, Some(18_446_744_073_709_552));
    set_limit(&mut r, Limit::Wall, Some(1000));
    let got = t.direct().exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(
        o.limit,
        Some("wall"),
        "a CPU limit of 584 million years ended the run\n{}",
        got.dump()
    );
    t.assert_nothing_left(o.uid, &got.dump());
}

/// (case, cpu_ms, grace_ms, wall_ms, the limit the verdict must name)
type HugeCase = (&'static str, Option<u64>, u64, Option<u64>, Option<&'static str>);

/// CPU limits near u64::MAX / 1000 ms (whose microseconds, or the kernel's
/// nanoseconds of the rlimit, overflow 64 bits) and a grace of u64::MAX ms:
/// a target that burns 1.2 s of CPU and exits must run to its end, neither
/// killed by a wrapped tiny limit nor crashing the helper.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn cpu_limit_near_u64_max_ms_with_u64_max_grace_neither_ends_the_run_early_nor_crashes() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("max_cpu", "unlimited"), ("max_wall", "unlimited")]));
    let p = t.probe();
    const CENTURY_MS: u64 = 100 * 365 * 86_400 * 1000;
    const MAX_S: u64 = u64::MAX / 1000;
    let cases: Vec<HugeCase> = vec![
        ("cpu u64::MAX/1000 - 1, grace u64::MAX", Some(MAX_S - 1), u64::MAX, None, None),
        ("cpu u64::MAX/1000, grace u64::MAX", Some(MAX_S), u64::MAX, None, None),
        ("cpu u64::MAX/1000 + 1, grace u64::MAX", Some(MAX_S + 1), u64::MAX, None, None),
        ("cpu u64::MAX/1000, grace 0", Some(MAX_S), 0, None, None),
        // Whole seconds whose nanoseconds just wrap 64 bits.
        ("cpu u64::MAX/10^6 + 1", Some(u64::MAX / 1_000_000 + 1), 0, None, None),
        ("cpu a century - 1 s", Some(CENTURY_MS - 1000), 0, None, None),
        ("cpu a century + 1 s", Some(CENTURY_MS + 1000), 0, None, None),
        ("cpu u64::MAX/1000, grace u64::MAX, wall 60 s", Some(MAX_S), u64::MAX, Some(60_000), None),
        ("cpu u64::MAX/1000, grace 1 s, wall u64::MAX", Some(MAX_S), 1000, Some(u64::MAX), None),
        // Over its 1 s limit, within its endless grace: it runs to its end
        // and reports its real time as over the CPU limit.
        ("cpu 1 s, grace u64::MAX", Some(1000), u64::MAX, None, Some("cpu")),
    ];
    let t = &t;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|&(name, cpu, grace, wall, want)| {
                let p = p.as_str();
                scope.spawn(move || {
                    let mut r = request(&[p, "burn", "1200"]);
                    set_limit(&mut r, Limit::Cpu, cpu);
                    set_limit(&mut r, Limit::Grace, Some(grace));
                    set_limit(&mut r, Limit::Wall, wall);
                    let got = t.direct().timeout(Duration::from_secs(30)).exchange(&frame(&r));
                    let ok = matches!(
                        got.reply(),
                        Ok(Reply::Finished(ref o))
                            if o.end == End::Exited(0) && o.limit == want
                                && o.cpu_us >= 1_200_000
                    ) && got.output.status.code() == Some(0)
                        && got.stdout().contains("burned_ms=1200");
                    if let Ok(Reply::Finished(o)) = got.reply() {
                        t.assert_nothing_left(o.uid, &got.dump());
                    }
                    (!ok).then(|| format!("{name}: {}", got.dump()))
                })
            })
            .collect();
        runs.into_iter().filter_map(|h| h.join().expect("a run thread")).collect()
    });
    assert!(
        failures.is_empty(),
        "a run that burns 1.2 s of CPU did not run to its end:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Limits the caller cannot lift

/// The run's CPU limit is enforced by its init (root, out of the caller's
/// reach), not by the supervisor, which runs as the caller: a caller that
/// stops the supervisor right after the target started does not lift it.
/// The target keeps four busy workers alive, replacing each one that ends
/// (so that a per-process CPU limit alone would not stop it): on two CPUs,
/// unchecked, it would burn about 10 s of CPU while the supervisor stays
/// stopped for 5 s.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn cpu_limit_holds_while_the_caller_stops_the_supervisor() {
    use safeexec_tests::{json_uid, process, run_pids, signal};
    let t = require_root!();
    let p = t.probe();
    let run = t
        .run(&[
            "--json", "--cpu", "1", "--clock", "8", "--nproc", "10", "--exec", &p, "workers", "4",
        ])
        .spawn();
    let (sup, init, _target) = run_pids(run.id());
    signal(sup, libc::SIGSTOP);
    let stopped = Instant::now();
    // Init ends the run on its own, then stays a zombie until the
    // supervisor reaps it.
    while stopped.elapsed() < Duration::from_secs(5) && process(init).is_some_and(|p| p.alive()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let init_ended_after = stopped.elapsed();
    signal(sup, libc::SIGCONT);
    let out = run.wait();
    let j = json_report(&out);
    let context = format!("init ended {init_ended_after:?} after the stop\n{}", dump(&out));
    verdict(&out, &j, "time_limit", 1);
    assert_eq!(j["limit"], "cpu", "{context}");
    let cpu_ms = j["cpu_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(cpu_ms <= 1500.0, "{cpu_ms} ms of CPU under --cpu 1: {context}");
    if let Some(cg_ms) = j["cgroup"]["cpu_ms"].as_f64() {
        assert!(cg_ms <= 1500.0, "the cgroup counted {cg_ms} ms of CPU: {context}");
    }
    t.assert_nothing_left(json_uid(&j), &context);
}

/// The run's set-up has 5 s beside its wall-clock limit, counted from
/// init's fork by init's clock and by the supervisor's backstop alike:
/// however long init's own set-up takes (its look at the caller's
/// directories, which a slow mount stretches), the run ends by init's
/// clock, with init's report, and never by the backstop, which kills init
/// without one. Root stops init before it forks the target, for 7 s, to
/// stand in for a slow set-up: past the 2 s limit and the allowance, the
/// run is cut at the wall limit by init. (When the backstop counted from
/// the go, it killed init a second after the target's exec.)
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_set_up_past_its_allowance_ends_by_inits_clock_with_its_report() {
    use safeexec_tests::{json_uid, ContinueOnDrop};
    let t = require_root!();
    // Until a stop lands before the target's fork (a try that misses
    // costs the run's 1.5 s).
    for _ in 0..20 {
        let run = t.run(&["--json", "--clock", "2", "--exec", "/bin/sleep", "1.5"]).spawn();
        let Some(init) = stop_init_before_it_forks(run.id()) else {
            let _ = run.wait();
            continue;
        };
        let cont = ContinueOnDrop(init);
        std::thread::sleep(Duration::from_secs(7));
        drop(cont);
        let out = run.wait();
        let j = json_report(&out);
        verdict(&out, &j, "time_limit", 1);
        assert_eq!(j["limit"], "wall", "{}", dump(&out));
        // Sampled by the supervisor only when init did not report.
        assert_ne!(j["cpu_source"], "proc", "no report from init: {}", dump(&out));
        t.assert_nothing_left(json_uid(&j), &dump(&out));
        return;
    }
    panic!("no stop landed before the target's fork in twenty runs");
}

/// Init waits for the run's cgroups from the supervisor, which sends them
/// beside init's set-up. A caller that freezes its own cgroup (which holds
/// the helper, root's or not) before they are sent would hold init there,
/// with the run's namespaces, for as long: init waits only until the run's
/// latest end (wall limit, grace and the set-up's 5 s from init's fork),
/// then fails the run. Root stops the supervisor right after init's fork
/// to stand in for the freeze.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn init_waits_for_a_stalled_supervisors_cgroups_no_longer_than_the_runs_latest_end() {
    use safeexec_tests::{children_of, process, ContinueOnDrop};
    let t = require_root!();
    for _ in 0..30 {
        let run = t.run(&["--clock", "1", "--exec", "/bin/true"]).spawn();
        let started = Instant::now();
        let Some((sup, init)) = stop_supervisor_once_init_is_forked(run.id()) else {
            let _ = run.wait();
            continue;
        };
        let cont = ContinueOnDrop(sup);
        // Sent already, init forks the target at once: a miss.
        std::thread::sleep(Duration::from_millis(300));
        if !children_of(init).is_empty() {
            drop(cont);
            let _ = run.wait();
            continue;
        }
        let until = started + Duration::from_secs(1 + 5 + 3);
        while process(init).is_some_and(|p| p.alive()) {
            assert!(Instant::now() < until, "init still waits for the cgroups after 9 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(cont);
        let out = run.wait();
        if out.status.success() {
            continue; // the stop came after the go (the poller was late)
        }
        assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no cgroups in time"), "{}", dump(&out));
        return;
    }
    panic!("no stop landed between init's fork and the cgroups in thirty runs");
}

/// The helper and init of the run whose frontend is `frontend`, looked for
/// without pause from the moment init is forked; `None` if it never was
/// within 5 s.
fn init_as_soon_as_forked(frontend: u32) -> Option<(u32, u32)> {
    use safeexec_tests::children_of;
    let until = Instant::now() + Duration::from_secs(5);
    let mut helper = None;
    while Instant::now() < until {
        let Some(sup) = helper.or_else(|| children_of(frontend).first().copied()) else {
            continue;
        };
        helper = Some(sup);
        if let Some(&init) = children_of(sup).first() {
            return Some((sup, init));
        }
    }
    None
}

/// Stops the helper of the run whose frontend is `frontend` as soon as
/// its init exists; (helper, init), or `None` if that never showed.
fn stop_supervisor_once_init_is_forked(frontend: u32) -> Option<(u32, u32)> {
    let (sup, init) = init_as_soon_as_forked(frontend)?;
    safeexec_tests::signal(sup, libc::SIGSTOP);
    Some((sup, init))
}

/// Stops the init of the run whose frontend is `frontend`, at once, and
/// returns its pid if the stop landed before init forked the target; if
/// it came later, init is continued and `None` returned.
fn stop_init_before_it_forks(frontend: u32) -> Option<u32> {
    use safeexec_tests::{children_of, process, signal};
    let (_, init) = init_as_soon_as_forked(frontend)?;
    signal(init, libc::SIGSTOP);
    // The stop lands on init's way back from the kernel: only a stopped
    // init's children are final.
    let until = Instant::now() + Duration::from_secs(5);
    while process(init).is_none_or(|p| p.state != 'T') {
        if Instant::now() > until {
            signal(init, libc::SIGCONT);
            return None;
        }
    }
    if children_of(init).is_empty() {
        return Some(init);
    }
    signal(init, libc::SIGCONT);
    None
}

/// The buffers of TCP sockets are charged to a cgroup v1 only once its
/// `memory.kmem.tcp.limit_in_bytes` is written, and then to a counter of
/// their own: a review held 400 MiB of loopback TCP buffers under a
/// 32 MiB limit, and the run was reported OK. The helper writes the run's
/// memory limit there too: 20 connections with 8 MiB buffers, filled
/// without a read, queue no more than about that limit. (On cgroup v2 the
/// memory limit counts socket buffers itself.)
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn tcp_socket_buffers_are_held_by_the_runs_memory_limit() {
    let t = require_root!();
    let (out, j) = t.attack(&["--mem", "32768", "--clock", "30"], &["tcpbuf", "20"]);
    if !j["cgroup"]["memory_limited"].as_bool().unwrap_or(false) {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (this machine gives the run no memory cgroup): \
             tcp_socket_buffers_are_held_by_the_runs_memory_limit\n{j}"
        );
        return;
    }
    assert!(matches!(j["verdict"].as_str(), Some("ok" | "memory_limit")), "{}", dump(&out));
    if j["verdict"] == "ok" {
        let queued = num(&out, "queued_kib");
        // The limit, and the kernel's own slack for a socket or two.
        assert!(queued < 32768 + 8192, "queued {queued} KiB under 32 MiB\n{}", dump(&out));
    }
}

/// Every run with a memory cgroup has a memory limit, (nproc + 1) x --mem
/// plus its scratch tmpfs without --rss, which also holds the kernel
/// memory the run makes the kernel use: one process that queues all it can
/// in 500 unix socketpairs (about 200 KiB of socket buffers each, none of
/// it in its address space) stays within 32 MiB, not the 100 MiB and more
/// that the buffers would take. Killed at its limit or refused more
/// buffers: either way contained.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn kernel_memory_of_socket_buffers_is_held_by_the_runs_memory_limit() {
    let t = require_root!();
    let (out, j) = t.attack(
        &["--mem", "32768", "--fsize", "0", "--nfile", "1024", "--clock", "30"],
        &["sockbuf", "500"],
    );
    let Some(peak) = j["cgroup"]["memory_peak_kib"].as_u64() else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (this machine gives the run no memory cgroup): \
             kernel_memory_of_socket_buffers_is_held_by_the_runs_memory_limit\n{j}"
        );
        return;
    };
    // 32768 KiB for the one process, 4 KiB of scratch tmpfs, a page of
    // rounding.
    let bound = 32768 + 4 + 4;
    assert!(peak <= bound, "the run held {peak} KiB under a bound of {bound} KiB\n{}", dump(&out));
    assert_eq!(j["cgroup"]["memory_limited"], true, "{}", dump(&out));
    match j["verdict"].as_str() {
        Some("memory_limit") => {}
        Some("ok") => {
            let queued = num(&out, "queued_kib");
            assert!(queued < 32768, "queued {queued} KiB\n{}", dump(&out));
        }
        _ => panic!("neither killed at its memory limit nor refused buffers\n{}", dump(&out)),
    }
}
