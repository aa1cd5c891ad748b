//! No process of a run survives the run.

use std::time::Duration;

use safeexec_tests::{dump, json_report, live_processes_of, process, require_root, stdout};

#[test]
fn double_forked_setsid_sleeper_does_not_survive_the_run() {
    let t = require_root!();
    let out = t.safeexec(&["--nproc", "5", "--json", "--exec", &t.fixture("daemon")]);
    // Look first, before anything else can give the run time to die.
    let j = json_report(&out);
    let uid = j["uid"]
        .as_u64()
        .and_then(|u| u32::try_from(u).ok())
        .unwrap_or_else(|| panic!("no uid in the report: {j}"));
    let survivors = live_processes_of(uid);
    let daemon_pid: Option<u32> = stdout(&out)
        .trim()
        .strip_prefix("daemon ")
        .and_then(|p| p.parse().ok());
    let daemon_pid =
        daemon_pid.unwrap_or_else(|| panic!("the fixture printed no daemon pid\n{}", dump(&out)));
    let daemon_now = process(daemon_pid).filter(|p| p.uid == uid && p.alive());
    // Whatever happens, do not leave the daemon behind for other tests.
    let leftovers_later = {
        std::thread::sleep(Duration::from_secs(1));
        let later = live_processes_of(uid);
        for p in &later {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
        }
        later
    };
    assert!(
        survivors.is_empty() && daemon_now.is_none(),
        "processes of uid {uid} alive after safeexec returned: {survivors:?} (daemon {daemon_pid}: {daemon_now:?}); \
         one second later: {leftovers_later:?}\n{}",
        dump(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

#[test]
fn nothing_of_a_time_limited_run_survives() {
    let t = require_root!();
    let out = t.safeexec(&[
        "--clock",
        "0.5",
        "--json",
        "--exec",
        &t.fixture("sleep_forever"),
    ]);
    let j = json_report(&out);
    let uid = j["uid"]
        .as_u64()
        .and_then(|u| u32::try_from(u).ok())
        .unwrap_or_else(|| panic!("no uid in the report: {j}"));
    let survivors = live_processes_of(uid);
    assert!(
        survivors.is_empty(),
        "processes of uid {uid} alive after the run: {survivors:?}\n{}",
        dump(&out)
    );
    assert_eq!(j["verdict"], "time_limit", "{j}");
}
