//! Every row of the EXAMPLES table of the original safeexec
//! (reference/safeexec-behaviour.md), run through the installed setuid helper
//! as an unprivileged user.

use std::process::Command;
use std::time::{Duration, Instant};

use safeexec_tests::{assert_verdict, dump, report, require_root, stderr, stdout, PYTHON};

const TLE: &str = "Time Limit Exceeded";

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn hello_world_in_c_prints_hello_world_and_ok() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", &t.fixture("hello")]);
    assert_eq!(stdout(&out), "Hello World\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn hello_world_with_mem_1000_fails_to_load_with_status_127() {
    let t = require_root!();
    let out = t.safeexec(&["--mem", "1000", "--exec", &t.fixture("hello")]);
    assert!(!stdout(&out).contains("Hello World"), "{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (127)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn endless_loop_with_default_limits_exceeds_the_10_second_cpu_limit() {
    let t = require_root!();
    let started = Instant::now();
    let out = t.safeexec(&["--exec", &t.fixture("loop")]);
    let r = assert_verdict(&out, TLE, 1);
    assert!(
        r.cpu_seconds >= 9.0,
        "stopped after {} s of CPU, before the 10 s limit\n{}",
        r.cpu_seconds,
        dump(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(70), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn endless_loop_with_cpu_1_exceeds_the_time_limit() {
    let t = require_root!();
    let started = Instant::now();
    let out = t.safeexec(&["--cpu", "1", "--exec", &t.fixture("loop")]);
    let r = assert_verdict(&out, TLE, 1);
    assert!(r.cpu_seconds >= 0.9, "stopped after {} s of CPU\n{}", r.cpu_seconds, dump(&out));
    assert!(started.elapsed() < Duration::from_secs(30), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn endless_loop_with_clock_1_exceeds_the_time_limit() {
    let t = require_root!();
    let started = Instant::now();
    let out = t.safeexec(&["--clock", "1", "--exec", &t.fixture("loop")]);
    assert_verdict(&out, TLE, 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a 1 s wall limit took {:?}\n{}",
        started.elapsed(),
        dump(&out)
    );
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sleeping_forever_with_cpu_1_clock_5_exceeds_the_wall_limit_after_about_5_seconds() {
    let t = require_root!();
    let started = Instant::now();
    let out = t.safeexec(&["--cpu", "1", "--clock", "5", "--exec", &t.fixture("sleep_forever")]);
    let took = started.elapsed();
    let r = assert_verdict(&out, TLE, 1);
    assert!(
        took >= Duration::from_millis(4900),
        "ended after {took:?}, before the 5 s wall limit\n{}",
        dump(&out)
    );
    assert!(took < Duration::from_secs(20), "a 5 s wall limit took {took:?}\n{}", dump(&out));
    assert!(
        (4..=19).contains(&r.elapsed_seconds),
        "elapsed time {} s\n{}",
        r.elapsed_seconds,
        dump(&out)
    );
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn python_fork_with_default_nproc_fails() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", PYTHON, &t.fixture("fork.py")]);
    assert!(!stdout(&out).contains("forked"), "fork succeeded\n{}", dump(&out));
    assert!(stderr(&out).contains("Resource temporarily unavailable"), "{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn python_fork_with_nproc_1_prints_twice() {
    let t = require_root!();
    let out = t.safeexec(&["--nproc", "1", "--exec", PYTHON, &t.fixture("fork.py")]);
    assert_eq!(stdout(&out), "forked\nforked\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn python_raising_its_hard_rlimit_fails() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", PYTHON, &t.fixture("raise_rlimit.py")]);
    assert!(!stdout(&out).contains("raised"), "raised a hard limit\n{}", dump(&out));
    assert!(stderr(&out).contains("not allowed to raise maximum limit"), "{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn python_network_access_fails() {
    let t = require_root!();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let port = listener.local_addr().expect("listener address").port().to_string();
    let out = t.safeexec(&["--exec", PYTHON, &t.fixture("network.py"), &port]);
    assert!(!stdout(&out).contains("connected"), "reached the host's 127.0.0.1\n{}", dump(&out));
    assert!(!stdout(&out).contains("resolved"), "resolved a host name\n{}", dump(&out));
    assert!(listener.accept().is_err(), "the listener got a connection\n{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn python_allocating_a_lot_gets_memory_error() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", PYTHON, &t.fixture("memory.py")]);
    assert!(stderr(&out).contains("MemoryError"), "{}", dump(&out));
    assert!(!stdout(&out).contains("allocated"), "{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn listing_a_directory_the_sandbox_may_not_traverse_fails() {
    let t = require_root!();
    let s = t.scratch("private-dir");
    s.dir("private", 0o700);
    s.file("private/secret.txt", b"secret\n", 0o600);
    let out = t.safeexec(&["--exec", "/bin/ls", &s.join("private")]);
    assert!(!stdout(&out).contains("secret.txt"), "listed a private directory\n{}", dump(&out));
    assert!(stderr(&out).contains("Permission denied"), "{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (2)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn exec_dir_runs_the_program_inside_that_directory() {
    let t = require_root!();
    let s = t.scratch("exec-dir");
    s.dir("tests", 0o755);
    let out = t.safeexec_in(s.path(), &["--exec_dir", "tests", "--exec", "/bin/pwd"]);
    let expected = std::fs::canonicalize(s.path().join("tests")).expect("canonical path");
    assert_eq!(stdout(&out).trim_end(), expected.to_str().expect("UTF-8 path"), "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn writing_a_file_not_writable_by_others_is_denied() {
    let t = require_root!();
    let s = t.scratch("not-writable");
    let file = s.file("mine.txt", b"the test user's\n", 0o644);
    // In the caller's own working directory, which the run may write: only
    // the file's permissions stand in the way.
    let out = t.safeexec_in(
        s.path(),
        &["--fsize", "100", "--exec", &t.fixture("write_file"), &s.join("mine.txt")],
    );
    assert!(stderr(&out).contains("Permission denied"), "{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
    let after = std::fs::read(&file).expect("read the file back");
    assert_eq!(after, b"the test user's\n", "the file changed");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn writing_a_world_writable_file_with_default_fsize_0_is_too_large() {
    let t = require_root!();
    let s = t.scratch("fsize-0-python");
    s.file("open.txt", b"", 0o666);
    // Python ignores SIGXFSZ, so the limit shows as the error EFBIG. In the
    // caller's own working directory, which the run may write.
    let out = t.safeexec_in(
        s.path(),
        &["--exec", PYTHON, &t.fixture("write_file.py"), &s.join("open.txt")],
    );
    assert!(stderr(&out).contains("File too large"), "{}", dump(&out));
    assert!(!stdout(&out).contains("wrote"), "{}", dump(&out));
    let r = report(&out);
    assert_ne!(r.verdict, "OK", "{}", dump(&out));
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert_eq!(
        std::fs::metadata(s.path().join("open.txt")).expect("stat").len(),
        0,
        "bytes were written"
    );
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn writing_a_world_writable_file_with_default_fsize_0_from_c_is_output_limit_exceeded() {
    let t = require_root!();
    let s = t.scratch("fsize-0-c");
    s.file("open.txt", b"", 0o666);
    // A C program does not ignore SIGXFSZ: it dies of it. In the caller's
    // own working directory, which the run may write.
    let out = t.safeexec_in(s.path(), &["--exec", &t.fixture("write_file"), &s.join("open.txt")]);
    assert!(!stdout(&out).contains("wrote"), "{}", dump(&out));
    assert_verdict(&out, "Output Limit Exceeded", 1);
    assert_eq!(
        std::fs::metadata(s.path().join("open.txt")).expect("stat").len(),
        0,
        "bytes were written"
    );
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn writing_a_file_with_nfile_0_fails_with_too_many_open_files() {
    let t = require_root!();
    let s = t.scratch("nfile-0");
    s.file("open.txt", b"", 0o666);
    // Static, because with no descriptors at all the dynamic loader could
    // not even open libc.
    let out = t.safeexec(&[
        "--nfile",
        "0",
        "--exec",
        &t.fixture("write_file-static"),
        &s.join("open.txt"),
    ]);
    assert!(stderr(&out).contains("Too many open files"), "{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn env_vars_is_the_whole_environment_of_the_target() {
    let t = require_root!();
    let out = t
        .run(&["--env_vars", "PYTHONIOENCODING=UTF-8", "--exec", "/usr/bin/env"])
        .var("SECRET_OF_THE_CALLER", "leaked")
        .output();
    assert_eq!(stdout(&out), "PYTHONIOENCODING=UTF-8\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn env_vars_py_gives_pythons_environment() {
    let t = require_root!();
    let out = t.safeexec(&["--env_vars", "PY", "--exec", "/usr/bin/env"]);
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(
        lines,
        ["PYTHONHOME=/", "PYTHONIOENCODING=utf-8", "PYTHONPATH=/static"],
        "{}",
        dump(&out)
    );
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn printing_uid_and_gid_shows_a_sandbox_uid_and_ignores_gid_and_uidplus() {
    let t = require_root!();
    let out = t.safeexec(&["--gid", "0", "--uidplus", "0", "--exec", &t.fixture("ids")]);
    let line = stdout(&out);
    let (uid, gid, euid, egid, groups) = safeexec_tests::parse_ids(line.trim())
        .unwrap_or_else(|| panic!("no ids line\n{}", dump(&out)));
    assert!(
        safeexec_tests::in_policy_range(uid),
        "uid {uid} outside the policy range\n{}",
        dump(&out)
    );
    assert_eq!((euid, egid), (uid, gid), "{}", dump(&out));
    assert_ne!(gid, 0, "--gid 0 was obeyed\n{}", dump(&out));
    assert_eq!(groups, 0, "supplementary groups\n{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_to_an_empty_jail_cannot_execute_a_dynamic_program() {
    let t = require_root!();
    let s = t.scratch("jail-empty");
    s.dir("jail", 0o755);
    s.copy_in(std::path::Path::new(&t.fixture("hello")), "jail/hello", 0o755);
    let out = t.safeexec(&["--chroot_dir", &s.join("jail"), "--exec", "/hello"]);
    assert!(!stdout(&out).contains("Hello World"), "ran without its libraries\n{}", dump(&out));
    assert_ne!(out.status.code(), Some(0), "{}", dump(&out));
    assert!(
        stderr(&out).contains("cannot execute /hello"),
        "no exec error reported\n{}",
        dump(&out)
    );
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_to_a_jail_with_a_static_hello_prints_hello_world() {
    let t = require_root!();
    let s = t.scratch("jail-static");
    s.dir("jail", 0o755);
    s.copy_in(std::path::Path::new(&t.fixture("hello-static")), "jail/hello", 0o755);
    let out = t.safeexec(&["--chroot_dir", &s.join("jail"), "--exec", "/hello"]);
    assert_eq!(stdout(&out), "Hello World\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_to_a_jail_with_the_loader_and_libc_runs_a_dynamic_hello() {
    let t = require_root!();
    let s = t.scratch("jail-dynamic");
    s.dir("jail", 0o755);
    let hello = t.fixture("hello");
    s.copy_in(std::path::Path::new(&hello), "jail/hello", 0o755);
    let ldd = Command::new("ldd").arg(&hello).output().expect("run ldd");
    assert!(ldd.status.success(), "ldd failed: {}", String::from_utf8_lossy(&ldd.stderr));
    let mut copied = 0;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            s.copy_in(std::path::Path::new(path), &format!("jail{path}"), 0o755);
            copied += 1;
        }
    }
    assert!(copied >= 2, "ldd named no loader and libc:\n{}", String::from_utf8_lossy(&ldd.stdout));
    let out = t.safeexec(&["--chroot_dir", &s.join("jail"), "--exec", "/hello"]);
    assert_eq!(stdout(&out), "Hello World\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

// The legacy command line to the letter (issue 13), beyond the examples.

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn an_option_given_twice_takes_its_last_value_as_in_the_original() {
    let t = require_root!();
    let out = t.safeexec(&["--cpu", "5", "--cpu", "1", "--exec", &t.fixture("loop")]);
    let r = assert_verdict(&out, TLE, 1);
    assert!(r.cpu_seconds < 4.0, "--cpu 5 won over --cpu 1\n{}", dump(&out));
    let out = t.safeexec(&["--silent", "--silent", "--exec", "/bin/echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    assert_eq!(stderr(&out), "", "a report despite --silent\n{}", dump(&out));
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_fd_minus_1_the_originals_default_reports_on_stderr() {
    let t = require_root!();
    let out = t.safeexec(&["--report_fd", "-1", "--exec", "/bin/true"]);
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn env_vars_entries_reach_the_program_as_they_are_one_without_equals_too() {
    let t = require_root!();
    let out = t.safeexec(&["--env_vars", "FOO\nA=1", "--exec", "/usr/bin/env"]);
    assert_eq!(stdout(&out), "FOO\nA=1\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_program_that_stops_itself_is_reported_at_once_as_the_original_did() {
    let t = require_root!();
    // Were the stop not seen, the run would last to its wall limit and
    // read Time Limit Exceeded.
    let out = t.safeexec(&["--clock", "600", "--exec", &t.fixture("raise_signal"), "19"]);
    assert_verdict(&out, "Command terminated by signal (19: SIGSTOP)", 1);
    let (out, j) = t.attack_with(&t.fixture("raise_signal"), &["--clock", "600"], &["19"]);
    assert_eq!((j["signal"].as_i64(), j["limit"].is_null()), (Some(19), true), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_signal_past_31_reads_as_the_original_printed_it() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", &t.fixture("raise_signal"), "34"]);
    assert_verdict(&out, "Command terminated by signal (34: UNKONWN)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_program_that_raises_sigxcpu_reads_as_the_signal_not_a_time_limit() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", &t.fixture("raise_signal"), "24"]);
    assert_verdict(&out, "Command terminated by signal (24: SIGXCPU)", 1);
}
