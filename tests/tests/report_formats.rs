//! The report formats and options of issue 4: the isolate-style meta file,
//! the output limit, the grace period, the report descriptor, and the JSON
//! fields that say where each figure came from.

use std::collections::HashMap;
use std::io::Read;

use safeexec_tests::{assert_verdict, dump, json_report, require_root, stdout};

/// Parses a meta file into its keys; every line must be `key:value`.
fn meta(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(|line| {
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("meta line without a colon: {line:?}\n{text}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn three_decimals(v: &str) -> bool {
    v.split_once('.')
        .is_some_and(|(s, ms)| s.bytes().all(|b| b.is_ascii_digit()) && ms.len() == 3)
}

#[test]
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
    assert!(
        !m.contains_key("status") && !m.contains_key("killed"),
        "{text}"
    );
}

#[test]
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
fn meta_file_says_to_and_killed_for_a_wall_time_limit() {
    let t = require_root!();
    let dir = t.scratch("meta-to");
    let path = dir.join("meta");
    let out = t.safeexec(&[
        "--meta",
        &path,
        "--clock",
        "0.3",
        "--exec",
        "/bin/sleep",
        "30",
    ]);
    assert_verdict(&out, "Time Limit Exceeded", 1);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    let m = meta(&text);
    assert_eq!(m["status"], "TO", "{text}");
    assert_eq!(m["killed"], "1", "{text}");
    assert_eq!(m["exitsig"], "9", "{text}");
    assert!(m["message"].contains("wall"), "{text}");
}

#[test]
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

#[test]
fn output_limit_cuts_endless_output_and_reports_it() {
    let t = require_root!();
    let out = t.safeexec(&[
        "--json", "--output", "64", "--nproc", "2", "--exec", "/bin/sh", "-c", "yes",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
    // Exactly the limit reaches the caller, not a byte more.
    assert_eq!(out.stdout.len(), 64 * 1024, "{}", dump(&out));
    let j = json_report(&out);
    assert_eq!(j["verdict"], "output_limit", "{j}");
    assert_eq!(j["limit"], "output", "{j}");
    assert!(
        j["output_bytes"].as_u64().is_some_and(|b| b > 64 * 1024),
        "{j}"
    );
    let text = t.safeexec(&[
        "--output", "1", "--nproc", "2", "--exec", "/bin/sh", "-c", "yes",
    ]);
    assert_verdict(&text, "Output Limit Exceeded", 1);
}

#[test]
fn output_under_the_limit_passes_whole() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--output", "64", "--exec", "/bin/echo", "small"]);
    assert_eq!(stdout(&out), "small\n", "{}", dump(&out));
    let j = json_report(&out);
    assert_eq!(j["verdict"], "ok", "{j}");
    assert_eq!(j["output_bytes"], 6, "{j}");
}

#[test]
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
fn report_goes_to_an_inherited_descriptor() {
    let t = require_root!();
    let (mut rx, tx) = std::io::pipe().expect("pipe");
    let out = t
        .run(&["--report_fd", "7", "--exec", "/bin/echo", "hi"])
        .fd(tx, 7)
        .output();
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    assert!(
        out.stderr.is_empty(),
        "report on stderr too: {}",
        dump(&out)
    );
    let mut report = String::new();
    rx.read_to_string(&mut report).expect("read the report");
    assert!(report.starts_with("OK\nelapsed time: "), "{report}");
}

#[test]
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
