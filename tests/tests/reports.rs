//! The report and safeexec's exit status for every way a run can end: the
//! original's four-line text report, the JSON report (and where each of its
//! figures came from), the isolate-style meta file, the report file and
//! descriptor, and a caller that ignores SIGCHLD.

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use safeexec_tests::{
    assert_verdict, dump, json_report, meta, path_str, report, require_root,
    require_root_exclusive, stderr, stdout, try_report, word, Json,
};

/// The keys the README documents for `--json`.
const JSON_KEYS: &[&str] = &[
    "schema",
    "verdict",
    "verdict_text",
    "exit_code",
    "signal",
    "limit",
    "wall_ms",
    "cpu_ms",
    "user_ms",
    "sys_ms",
    "peak_memory_kib",
    "memory_source",
    "cpu_source",
    "uid",
    "gid",
    "limits",
];

fn json_of(t: &safeexec_tests::Env, args: &[&str]) -> (std::process::Output, Json) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = t.safeexec(&all);
    let json = json_report(&out);
    (out, json)
}

fn three_decimals(v: &str) -> bool {
    v.split_once('.').is_some_and(|(s, ms)| s.bytes().all(|b| b.is_ascii_digit()) && ms.len() == 3)
}

// ---------------------------------------------------------------------------
// Each way a run can end

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn ok_run_reports_ok_and_exits_0() {
    let t = require_root!();
    let out = t.safeexec(&["--fsize", "100", "--exec", "/bin/echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    let r = assert_verdict(&out, "OK", 0);
    assert!(r.elapsed_seconds < 10, "{}", dump(&out));
    assert!(r.cpu_seconds < 5.0, "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn ok_run_json_report_has_every_documented_key() {
    let t = require_root!();
    let (out, j) = json_of(&t, &["--exec", "/bin/echo", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    for key in JSON_KEYS {
        assert!(j.get(key).is_some(), "JSON report lacks {key}: {j}");
    }
    assert_eq!(j["schema"], 1, "{j}");
    assert_eq!(j["verdict"], "ok", "{j}");
    assert_eq!(j["verdict_text"], "OK", "{j}");
    assert_eq!(j["exit_code"], 0, "{j}");
    assert!(j["signal"].is_null(), "{j}");
    assert!(j["limit"].is_null(), "{j}");
    assert!(j["limits"].is_object(), "{j}");
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn silent_prints_no_report() {
    let t = require_root!();
    let out = t.safeexec(&["--silent", "--exec", "/bin/echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    assert!(out.stderr.is_empty(), "{}", dump(&out));
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn nonzero_exit_reports_the_status_and_exits_1() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", &t.fixture("exit_with"), "3"]);
    assert_verdict(&out, "Command exited with non-zero status (3)", 1);
    let (out, j) = json_of(&t, &["--exec", &t.fixture("exit_with"), "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert_eq!(j["verdict"], "nonzero_exit", "{j}");
    assert_eq!(j["exit_code"], 3, "{j}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn death_by_signal_reports_the_signal_and_exits_1() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", &t.fixture("raise_signal"), "11"]);
    assert_verdict(&out, "Command terminated by signal (11: SIGSEGV)", 1);
    let (out, j) = json_of(&t, &["--exec", &t.fixture("raise_signal"), "11"]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert_eq!(j["verdict"], "signal", "{j}");
    assert_eq!(j["signal"], 11, "{j}");
    assert!(j["limit"].is_null(), "{j}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn cpu_limit_reports_time_limit_exceeded_and_exits_1() {
    let t = require_root!();
    let (out, j) = json_of(&t, &["--cpu", "0.5", "--exec", &t.fixture("loop")]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert_eq!(j["verdict"], "time_limit", "{j}");
    assert_eq!(j["verdict_text"], "Time Limit Exceeded", "{j}");
    assert_eq!(j["limit"], "cpu", "{j}");
    let cpu_ms = j["cpu_ms"].as_f64().expect("cpu_ms is a number");
    assert!(cpu_ms >= 450.0, "stopped after {cpu_ms} ms of CPU, before the 500 ms limit: {j}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn wall_limit_reports_time_limit_exceeded_and_exits_1() {
    let t = require_root!();
    let started = Instant::now();
    let out = t.safeexec(&["--clock", "1", "--exec", &t.fixture("sleep_forever")]);
    assert_verdict(&out, "Time Limit Exceeded", 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a 1 s wall limit took {:?}",
        started.elapsed()
    );
    let (out, j) = json_of(&t, &["--clock", "0.5", "--exec", &t.fixture("sleep_forever")]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert_eq!(j["verdict"], "time_limit", "{j}");
    assert_eq!(j["limit"], "wall", "{j}");
    let wall_ms = j["wall_ms"].as_f64().expect("wall_ms is a number");
    assert!((450.0..10_000.0).contains(&wall_ms), "wall_ms {wall_ms}: {j}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn resident_memory_limit_reports_memory_limit_exceeded_and_exits_1() {
    let t = require_root!();
    // 200 MiB touched against a 100 MiB resident limit; the address-space
    // limit is high enough for the allocation itself to succeed.
    let args = [
        "--mem",
        "1000000",
        "--rss",
        "102400",
        "--clock",
        "30",
        "--exec",
        &t.fixture("touch_mem"),
        "200",
        "20",
    ];
    let out = t.safeexec(&args);
    assert_verdict(&out, "Memory Limit Exceeded", 1);
    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let out = t.safeexec(&json_args);
    let j = json_report(&out);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert_eq!(j["verdict"], "memory_limit", "{j}");
    assert_eq!(j["limit"], "memory", "{j}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn peak_memory_is_reported() {
    let t = require_root!();
    // 64 MiB touched, under every limit: the report must show at least that.
    let args = ["--mem", "1000000", "--exec", &t.fixture("touch_mem"), "64", "0"];
    let out = t.safeexec(&args);
    let r = assert_verdict(&out, "OK", 0);
    assert!(
        r.memory_kbytes >= 64 * 1024,
        "peak {} KiB for 64 MiB touched\n{}",
        r.memory_kbytes,
        dump(&out)
    );
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn file_size_limit_reports_output_limit_exceeded_and_exits_1() {
    let t = require_root!();
    let s = t.scratch("fsize-report");
    s.file("open.txt", b"", 0o666);
    // The run may write in the caller's directory it is given.
    let dir = path_str(s.path());
    let file = s.join("open.txt");
    let out = t.safeexec(&["--bind-rw", dir, "--exec", &t.fixture("write_file"), &file]);
    assert_verdict(&out, "Output Limit Exceeded", 1);
    let (out, j) = json_of(&t, &["--bind-rw", dir, "--exec", &t.fixture("write_file"), &file]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert_eq!(j["verdict"], "output_limit", "{j}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn no_arguments_print_usage_and_exit_1() {
    let t = require_root!();
    let out = t.safeexec::<&str>(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    assert!(stderr(&out).to_lowercase().contains("usage"), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn stdin_of_safeexec_is_the_targets() {
    let t = require_root!();
    let out = t.safeexec_with_stdin(&["--exec", "/bin/cat"], b"from the caller\n");
    assert_eq!(stdout(&out), "from the caller\n", "{}", dump(&out));
    assert_eq!(report(&out).verdict, "OK", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn json_says_where_each_figure_came_from() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--exec", "/bin/true"]);
    let j = json_report(&out);
    assert_eq!(j["cpu_source"], "rusage", "{j}");
    let peak = j["peak_memory_kib"].as_u64();
    assert!(peak.is_some_and(|k| k > 0), "{j}");
    // Resident memory (the cgroup's figures are in `cgroup`, cgroups.rs).
    assert_eq!(j["memory_source"], "rusage", "{j}");
    assert_eq!(j["max_rss_kib"].as_u64(), peak, "{j}");
    assert!(j["max_rss_kib"].as_u64().is_some_and(|k| k > 0), "{j}");
}

/// A caller that ignores SIGCHLD has its helper reaped by the kernel: the
/// report still comes (it was read before the wait).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_caller_ignoring_sigchld_still_gets_its_report() {
    let t = require_root!();
    let out = t
        .run(&["--json", "--exec", "/bin/echo", "hi"])
        .pre_exec(|| {
            // SAFETY: signal(2) with SIG_IGN, async-signal-safe; the
            // disposition survives the exec of setpriv and the frontend.
            match unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) } {
                libc::SIG_ERR => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            }
        })
        .output();
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    let j = json_report(&out);
    assert_eq!(j["verdict"], "ok", "{j}");
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

/// The run shares the caller's stderr with the frontend, and so the flags
/// of its open file description: a run that left it non-blocking and full
/// (the caller reads it later) made the frontend's report fail with EAGAIN
/// behind what the run wrote, and a line of ours after it abort the
/// frontend with a core file (a review of the tenth round). The frontend
/// puts the caller's flags back after the run, and waits for its reader:
/// the report comes, last, and the exit status is the run's.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_that_leaves_stderr_non_blocking_and_full_does_not_lose_the_report() {
    let t = require_root!();
    let script = "import subprocess, sys, time\n\
                  p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n\
                  time.sleep(2)\n\
                  err = p.stderr.read()\n\
                  out = p.stdout.read()\n\
                  p.wait()\n\
                  sys.stdout.write('status=%d\\n' % p.returncode)\n\
                  sys.stdout.write('stdout=%s\\n' % out.decode().strip())\n\
                  sys.stdout.write('last=%s\\n' % err.decode(errors='replace').rstrip('\\n').split('\\n')[-1])\n";
    let probe = t.probe();
    let frontend = path_str(&t.safeexec).to_string();
    let args = ["-c", script, &frontend, "--json", "--exec", &probe, "fillerr"];
    let out =
        t.run_program(safeexec_tests::PYTHON, &args).timeout(Duration::from_secs(60)).output();
    let said = stdout(&out);
    assert_eq!(safeexec_tests::kv(&said, "status").as_deref(), Some("0"), "{}", dump(&out));
    assert!(said.contains("stdout=filled="), "the attack did not run\n{}", dump(&out));
    // The run's bytes end without a newline: the report follows them.
    let last = said.lines().find_map(|l| l.strip_prefix("last=")).unwrap_or_default();
    let last = last.trim_start_matches('.');
    let j: Json =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}\n{}", dump(&out)));
    assert_eq!(j["verdict"], "ok", "{j}");
}

/// A run shares the open file description of the caller's stdin too: one
/// that left it non-blocking made the caller's next read find nothing, and
/// a judge that reads its tests from its own stdin took that for their end
/// and skipped the rest (a review of the eleventh round). The frontend puts
/// the caller's flags of stdin back after the run, as it does stdout's and
/// stderr's.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_that_leaves_stdin_non_blocking_does_not_leave_it_so_to_the_caller() {
    use std::os::fd::AsRawFd;
    let t = require_root!();
    let (rx, _tx) = std::io::pipe().expect("pipe");
    let ours = rx.try_clone().expect("dup");
    let probe = t.probe();
    let out = t
        .run(&["--exec", probe.as_str(), "setnb"])
        .stdin(safeexec_tests::Input::File(std::fs::File::from(std::os::fd::OwnedFd::from(rx))))
        .output();
    assert_eq!(safeexec_tests::kv(&stdout(&out), "setnb").as_deref(), Some("ok"), "{}", dump(&out));
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_GETFL) };
    assert!(
        flags >= 0 && flags & libc::O_NONBLOCK == 0,
        "the caller's stdin was left non-blocking"
    );
}

// ---------------------------------------------------------------------------
// Where the report goes

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_file_receives_the_report_instead_of_stderr() {
    let t = require_root!();
    let s = t.scratch("report-file");
    let out = t.safeexec(&["--report_file", &s.join("report.txt"), "--exec", "/bin/echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    assert!(out.stderr.is_empty(), "report also on stderr\n{}", dump(&out));
    let text = std::fs::read(s.path().join("report.txt")).expect("read the report file");
    let r = try_report(&text)
        .unwrap_or_else(|| panic!("bad report file: {}", String::from_utf8_lossy(&text)));
    assert_eq!(r.verdict, "OK");
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_goes_to_an_inherited_descriptor() {
    let t = require_root!();
    // Descriptor 7 is a pipe the caller's own shell made (the frontend
    // reopens it through /proc/self/fd/7, which needs the caller to be
    // allowed to open it); cat copies what comes through it into a file.
    let s = t.scratch("report-fd");
    let copy = s.path().join("report.txt");
    let script = "set -o pipefail; exec 3>&1; \
                  \"$0\" --report_fd 7 --exec /bin/echo hi 7>&1 1>&3 3>&- | cat >\"$1\" 3>&-";
    let safeexec = path_str(&t.safeexec);
    let out = t.run_program("/bin/bash", &["-c", script, safeexec, path_str(&copy)]).output();
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    assert!(out.stderr.is_empty(), "report on stderr too: {}", dump(&out));
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let text = std::fs::read(&copy).expect("read what came through the pipe");
    let r = try_report(&text)
        .unwrap_or_else(|| panic!("bad report: {:?}", String::from_utf8_lossy(&text)));
    assert_eq!(r.verdict, "OK");
    assert!(text.starts_with(b"OK\nelapsed time: "), "{}", String::from_utf8_lossy(&text));
    // A pipe the caller could not open itself (root's, handed down) is
    // refused in one line before the run, not written past.
    let (mut rx, tx) = std::io::pipe().expect("pipe");
    let out = t.run(&["--report_fd", "7", "--exec", "/bin/echo", "hi"]).fd(tx, 7).output();
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert_eq!(stdout(&out), "", "the run went on\n{}", dump(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{}", dump(&out));
    assert!(err.contains("--report_fd 7") && err.contains("Permission denied"), "{}", dump(&out));
    let mut report = String::new();
    rx.read_to_string(&mut report).expect("read the pipe");
    assert_eq!(report, "", "something came through the refused descriptor");
}

/// The same through O_DIRECT, which the run may set on the stderr file it
/// shares with the frontend: the report's unaligned write then failed
/// (EINVAL) and was lost (a second review of the tenth round; a forged
/// report before it stood). Every flag F_SETFL changes is put back.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_that_sets_o_direct_on_a_stderr_file_does_not_lose_the_report() {
    let t = require_root!();
    let dir = t.scratch("odirect");
    let log = dir.path().join("err.log");
    let probe = t.probe();
    let frontend = path_str(&t.safeexec).to_string();
    let script = "exec \"$0\" --json --exec \"$1\" odirect 2>\"$2\"";
    let out = t.run_program("/bin/sh", &["-c", script, &frontend, &probe, path_str(&log)]).output();
    assert_eq!(word(&out, "odirect"), "ok", "the attack did not take\n{}", dump(&out));
    let text = fs::read_to_string(&log).unwrap_or_default();
    let j: Json = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(j["verdict"], "ok", "{j}");
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

/// A `--report_fd` the caller does not have open is refused, also where
/// its number is one the frontend itself holds by then (the kernel gives
/// the lowest free number: the helper's channel takes 3 and 4, the
/// directories it opens for the run the next ones). A review of the tenth
/// round had the report sent into the frontend's own request socket and
/// lost, with exit status 0; and the next numbers refused as "open for
/// reading only".
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_report_fd_the_caller_has_not_open_is_refused_even_where_the_frontend_holds_that_number() {
    let t = require_root!();
    for fd in ["3", "4", "5", "6", "9"] {
        let out = t.safeexec(&["--report_fd", fd, "--exec", "/bin/echo", "hi"]);
        assert_eq!(out.status.code(), Some(2), "--report_fd {fd}\n{}", dump(&out));
        assert_eq!(stdout(&out), "", "the run went on\n{}", dump(&out));
        let said = format!("safeexec: --report_fd {fd} is not an open descriptor\n");
        assert_eq!(stderr(&out), said, "{}", dump(&out));
    }
}

// ---------------------------------------------------------------------------
// The meta file

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_of_an_ok_run_has_isolate_keys_and_no_status() {
    let t = require_root!();
    let dir = t.scratch("meta-ok");
    let path = dir.join("meta");
    let out = t.safeexec(&["--meta", &path, "--exec", "/bin/echo", "hi"]);
    assert_verdict(&out, "OK", 0);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    assert!(three_decimals(&m["time"]), "{text}");
    assert!(three_decimals(&m["time-wall"]), "{text}");
    assert!(m["max-rss"].parse::<u64>().is_ok_and(|k| k > 0), "{text}");
    assert_eq!(m["exitcode"], "0", "{text}");
    assert!(!m.contains_key("status") && !m.contains_key("killed"), "{text}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_says_re_for_a_non_zero_exit() {
    let t = require_root!();
    let dir = t.scratch("meta-re");
    let path = dir.join("meta");
    let out = t.safeexec(&["--meta", &path, "--exec", &t.fixture("exit_with"), "3"]);
    assert_verdict(&out, "Command exited with non-zero status (3)", 1);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    assert_eq!(m["status"], "RE", "{text}");
    assert_eq!(m["exitcode"], "3", "{text}");
    assert!(m["message"].contains('3'), "{text}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_says_to_and_killed_for_a_wall_time_limit() {
    let t = require_root!();
    let dir = t.scratch("meta-to");
    let path = dir.join("meta");
    let out = t.safeexec(&["--meta", &path, "--clock", "0.3", "--exec", "/bin/sleep", "30"]);
    assert_verdict(&out, "Time Limit Exceeded", 1);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    assert_eq!(m["status"], "TO", "{text}");
    assert_eq!(m["killed"], "1", "{text}");
    // As isolate: a time limit writes no exit status.
    assert!(!m.contains_key("exitsig") && !m.contains_key("exitcode"), "{text}");
    assert!(m["message"].contains("wall"), "{text}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_of_a_cpu_limit_says_to_and_killed_without_exitsig() {
    let t = require_root!();
    let dir = t.scratch("meta-cpu");
    let path = dir.join("meta");
    let out = t.safeexec(&["--meta", &path, "--cpu", "0.2", "--exec", &t.fixture("loop")]);
    assert_verdict(&out, "Time Limit Exceeded", 1);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    assert_eq!((m["status"].as_str(), m["killed"].as_str()), ("TO", "1"), "{text}");
    assert!(!m.contains_key("exitsig"), "{text}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_has_the_runs_context_switches() {
    let t = require_root!();
    let dir = t.scratch("meta-csw");
    let path = dir.join("meta");
    let out = t.safeexec(&["--meta", &path, "--exec", "/bin/sleep", "0.05"]);
    assert_verdict(&out, "OK", 0);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    // A sleep gives the CPU up at least once.
    assert!(m["csw-voluntary"].parse::<u64>().is_ok_and(|n| n >= 1), "{text}");
    assert!(m["csw-forced"].parse::<u64>().is_ok(), "{text}");
}

/// isolate's rules: `killed` only when the sandbox ended the run, a signal
/// the program raised (SIGXCPU too) is SG with its number, a stop is SG.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_of_a_program_that_killed_or_stopped_itself_is_sg_without_killed() {
    let t = require_root!();
    let dir = t.scratch("meta-self");
    let path = dir.join("meta");
    for (sig, message) in [
        ("9", "Caught fatal signal 9"),
        ("24", "Caught fatal signal 24"),
        ("19", "Stopped by signal 19"),
    ] {
        let out = t.safeexec(&["--meta", &path, "--exec", &t.fixture("raise_signal"), sig]);
        assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
        let text = std::fs::read_to_string(&path).expect("meta file written");
        let m = meta(&text);
        assert_eq!(m["status"], "SG", "{text}");
        assert_eq!(m["exitsig"], sig, "{text}");
        assert_eq!(m["message"], message, "{text}");
        assert!(!m.contains_key("killed"), "the program ended itself\n{text}");
    }
}

/// CMS tells a memory limit by `cg-oom-killed`: also when `--rss` is
/// enforced by samples, without a memory cgroup.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_says_cg_oom_killed_for_rss_enforced_without_a_memory_cgroup() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("cgroup", "off")]));
    let dir = t.scratch("meta-rss-sampled");
    let path = dir.join("meta");
    let touch = t.fixture("touch_mem");
    let out = t.safeexec(&[
        "--meta", &path, "--mem", "1000000", "--rss", "20000", "--exec", &touch, "100", "1",
    ]);
    assert_verdict(&out, "Memory Limit Exceeded", 1);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    assert_eq!(m["cg-oom-killed"], "1", "{text}");
    assert_eq!(m["killed"], "1", "{text}");
    assert!(!m.contains_key("cg-mem"), "{text}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn meta_file_says_xx_when_safeexec_cannot_run_the_program() {
    let t = require_root!();
    let dir = t.scratch("meta-xx");
    let path = dir.join("meta");
    // Over the packaged policy's maximum of 3600 s.
    let out = t.safeexec(&["--meta", &path, "--cpu", "99999", "--exec", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    assert_eq!(m["status"], "XX", "{text}");
    assert!(m["message"].contains("cpu"), "{text}");
}
