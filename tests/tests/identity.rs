//! Who the run's processes are (DESIGN.md invariants 3 and 6): the target
//! runs as a throw-away uid from the policy's range, handed out in turn
//! through the whole range, unique while any process of it lives, never one
//! the request names; with its own gid, no groups, no capabilities and
//! no_new_privs. The supervisor keeps the caller's ids and CAP_KILL only;
//! init is root with CAP_KILL only (signals_and_ptrace.rs). Only members of
//! the helper's group may run it.

use std::fs;
use std::io::Write;
use std::thread;

use safeexec_tests::{
    assert_verdict, dump, frame, frame_with_extra_payload, in_policy_range, json_report, json_uid,
    kv, lookup_group, lookup_user, parse_ids, process, request, require_root, run_pids, set_limit,
    status_field, stderr, stdout, verdict, End, Limit, User, POLICY_UID_BASE,
};

// ---------------------------------------------------------------------------
// The target's ids

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_uid_lies_in_the_policy_range() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--exec", &t.fixture("ids")]);
    let (uid, ..) =
        parse_ids(stdout(&out).trim()).unwrap_or_else(|| panic!("no ids line\n{}", dump(&out)));
    assert!(
        in_policy_range(uid),
        "uid {uid} is outside [1879048192, 1879048192+4194304)\n{}",
        dump(&out)
    );
    let report = json_report(&out);
    assert_eq!(report["uid"], uid, "the report's uid is not the target's\n{}", dump(&out));
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_gid_equals_its_uid_under_the_per_run_gid_policy() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--exec", &t.fixture("ids")]);
    let (uid, gid, euid, egid, _) =
        parse_ids(stdout(&out).trim()).unwrap_or_else(|| panic!("no ids line\n{}", dump(&out)));
    assert_eq!(gid, uid, "gid is not the per-run gid\n{}", dump(&out));
    assert_eq!((euid, egid), (uid, gid), "effective ids differ\n{}", dump(&out));
    let report = json_report(&out);
    assert_eq!(report["gid"], gid, "the report's gid is not the target's\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_has_no_groups_no_capabilities_and_no_new_privs() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", "/bin/cat", "/proc/self/status"]);
    assert_verdict(&out, "OK", 0);
    let status = stdout(&out);
    let field = |key: &str| {
        status_field(&status, key)
            .unwrap_or_else(|| panic!("no {key} in /proc/self/status\n{}", dump(&out)))
    };
    assert_eq!(field("Groups"), "", "supplementary groups\n{}", dump(&out));
    assert_eq!(field("NoNewPrivs"), "1", "{}", dump(&out));
    for cap in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(field(cap), "0000000000000000", "{cap}\n{}", dump(&out));
    }
    let uid = field("Uid");
    let uids: Vec<u32> = uid.split_whitespace().map(|u| u.parse().expect("numeric uid")).collect();
    assert!(uids.iter().all(|&u| u == uids[0] && in_policy_range(u)), "Uid: {uid}\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_proc_self_status_shows_no_groups_no_capabilities_and_no_new_privs() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["status"]);
    verdict(&out, &j, "ok", 0);
    let text = stdout(&out);
    let uid = json_uid(&j).to_string();
    let field = |k: &str| status_field(&text, k).unwrap_or_else(|| panic!("no {k}:\n{text}"));
    assert_eq!(field("Groups"), "", "{text}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(cap), "0000000000000000", "{cap}\n{text}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
    for ids in ["Uid", "Gid"] {
        let v: Vec<&str> = field(ids).split_whitespace().collect();
        assert_eq!(v, vec![uid.as_str(); 4], "{ids}\n{text}");
    }
    assert_eq!(field("NSpid"), "2", "not pid 2 of its own namespace\n{text}");
    assert_eq!(field("NSsid"), "2", "not a session of its own\n{text}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn run_ids_come_from_the_policy_and_differ_from_the_callers() {
    let t = require_root!();
    let got = t.direct().exchange(&frame(&t.probe_request(&["ids"])));
    let o = got.outcome();
    let out = got.stdout();
    let want = o.uid.to_string();
    for key in ["ruid", "euid", "suid", "egid"] {
        assert_eq!(kv(&out, key).as_deref(), Some(want.as_str()), "{key}\n{out}");
    }
    assert_eq!(kv(&out, "setuid0").as_deref(), Some("EPERM"), "{out}");
    assert_eq!(kv(&out, "shadow").as_deref(), Some("EACCES"), "{out}");
    assert!(in_policy_range(o.uid), "uid {} is outside the policy's range", o.uid);
}

/// bincode's varint encoding of a u32 (as a hostile frame would carry an id).
fn varint(v: u32) -> Vec<u8> {
    match v {
        0..=250 => vec![v as u8],
        251..=65535 => {
            let mut b = vec![251];
            b.extend_from_slice(&(v as u16).to_le_bytes());
            b
        }
        _ => {
            let mut b = vec![252];
            b.extend_from_slice(&v.to_le_bytes());
            b
        }
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn requests_naming_uid_0_the_callers_or_another_users_uid_or_a_privileged_gid_are_rejected() {
    let t = require_root!();
    // The protocol has no place for ids: a frame that carries them anyway
    // (appended where a hostile encoder would put them) is malformed.
    let outsider = lookup_user("safeexec-outsider").expect("the outsider user");
    let mut ids = vec![0, t.test_user.uid, outsider.uid, 65534, POLICY_UID_BASE];
    for g in ["root", "shadow", "sudo", "adm", "disk"] {
        if let Ok((gid, _)) = lookup_group(g) {
            ids.push(gid);
        }
    }
    let r = request(&["/bin/true"]);
    for id in ids {
        for extra in [varint(id), [varint(id), varint(id)].concat()] {
            let got = t.direct().exchange(&frame_with_extra_payload(&r, &extra));
            let line = got.refusal();
            assert!(line.contains("unexpected bytes"), "id {id}: {line}");
        }
    }
    // And a plain run never gets any of them.
    let o = t.direct().exchange(&frame(&t.probe_request(&["ids"]))).outcome();
    assert!(in_policy_range(o.uid) && o.gid == o.uid, "{o:?}");
    assert_ne!(o.uid, t.test_user.uid);
    assert_ne!(o.uid, outsider.uid);
}

// ---------------------------------------------------------------------------
// One uid per live run

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn two_concurrent_runs_get_different_uids() {
    let t = require_root!();
    let env = t.env();
    let hold = |_| {
        thread::spawn(move || {
            // Each run holds its uid for 2 s so that the two overlap.
            env.safeexec(&["--exec", &env.fixture("ids"), "2"])
        })
    };
    let runs: Vec<_> = (0..2).map(hold).collect();
    let outs: Vec<_> = runs.into_iter().map(|h| h.join().expect("a run thread")).collect();
    let uids: Vec<u32> = outs
        .iter()
        .map(|out| {
            assert_eq!(out.status.code(), Some(0), "{}", dump(out));
            parse_ids(stdout(out).trim()).unwrap_or_else(|| panic!("no ids line\n{}", dump(out))).0
        })
        .collect();
    assert!(uids.iter().all(|&u| in_policy_range(u)), "uids {uids:?} outside the policy range");
    assert_ne!(uids[0], uids[1], "two concurrent runs shared uid {}", uids[0]);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn two_helpers_racing_get_distinct_uids() {
    let t = require_root!();
    let mut r = request(&["/bin/sleep", "1"]);
    set_limit(&mut r, Limit::Wall, Some(20_000));
    let f = frame(&r);
    let runs: Vec<_> = (0..6).map(|_| t.direct().start_exchange(&f)).collect();
    let outcomes: Vec<_> = runs
        .into_iter()
        .map(|e| {
            let got = e.finish();
            (got.outcome(), got.pid)
        })
        .collect();
    let mut uids: Vec<u32> = outcomes.iter().map(|(o, _)| o.uid).collect();
    for (o, _) in &outcomes {
        assert_eq!(o.end, End::Exited(0), "{o:?}");
        assert!(in_policy_range(o.uid), "{o:?}");
    }
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 6, "concurrent runs shared a uid: {outcomes:?}");
}

/// Init keeps CAP_KILL only (its kill(-1) at the end of the run), in its
/// effective and permitted sets, with an empty bounding set and
/// no_new_privs, from the moment it has seen the target's exec: it waits
/// for that off the CPU (`init::WallClock::wait_for_exec`), then drops
/// everything else before anything of the run can reach it.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn init_keeps_cap_kill_only_once_the_target_runs_its_program() {
    let t = require_root!();
    let p = t.probe();
    let run = t.run(&["--clock", "2", "--json", "--exec", &p, "sleep"]).spawn();
    let (_sup, init, _target) = run_pids(run.id());
    let read = || fs::read_to_string(format!("/proc/{init}/status")).unwrap_or_default();
    let cap_eff = |status: &str| status_field(status, "CapEff").map(str::to_string);
    // The target has exec'd: init drops within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut status = read();
    while cap_eff(&status).as_deref() != Some("0000000000000020")
        && std::time::Instant::now() < deadline
    {
        thread::sleep(std::time::Duration::from_millis(5));
        status = read();
    }
    let field = |k: &str| status_field(&status, k).map(str::to_string);
    assert_eq!(field("CapEff").as_deref(), Some("0000000000000020"), "{status}");
    assert_eq!(field("CapPrm").as_deref(), Some("0000000000000020"), "{status}");
    for cap in ["CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(field(cap).as_deref(), Some("0000000000000000"), "{cap}\n{status}");
    }
    assert_eq!(field("NoNewPrivs").as_deref(), Some("1"), "{status}");
    // Root in all its ids: neither the caller nor the target may signal it.
    let all_root = field("Uid").is_some_and(|u| u.split_whitespace().all(|id| id == "0"));
    assert!(all_root, "{status}");
    let out = run.wait();
    let j = json_report(&out);
    verdict(&out, &j, "time_limit", 1);
    t.assert_nothing_left(json_uid(&j), &dump(&out));
}

// ---------------------------------------------------------------------------
// The supervisor

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn supervisor_keeps_cap_kill_only_and_the_caller_cannot_trace_it() {
    let t = require_root!();
    let p = t.probe();
    let run = t.run(&["--clock", "2", "--json", "--exec", &p, "sleep"]).spawn();
    let (sup, init, _target) = run_pids(run.id());
    let status = fs::read_to_string(format!("/proc/{sup}/status")).expect("the supervisor");
    let field = |k: &str| status_field(&status, k).map(str::to_string);
    let caller = t.test_user.uid.to_string();
    let uids: Vec<String> =
        field("Uid").unwrap_or_default().split_whitespace().map(str::to_string).collect();
    assert_eq!(uids, vec![caller; 4], "{status}");
    assert_eq!(field("CapEff").as_deref(), Some("0000000000000020"), "{status}");
    assert_eq!(field("CapPrm").as_deref(), Some("0000000000000020"), "{status}");
    for cap in ["CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(field(cap).as_deref(), Some("0000000000000000"), "{cap}\n{status}");
    }
    assert_eq!(field("NoNewPrivs").as_deref(), Some("1"), "{status}");
    // The caller itself (same uid) tries to trace and read the supervisor
    // and init.
    let mut attacker = std::process::Command::new("setpriv")
        .args(["--reuid=safeexec-test", "--regid=safeexec-test", "--init-groups"])
        .args(["--", "/usr/bin/env", "--", &p, "pids", "nokill"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the caller's attacker");
    let mut stdin = attacker.stdin.take().expect("stdin");
    // Not kill/stop: the caller may signal its own supervisor (that is
    // cleanup.rs's business); trace and memory access it may not.
    writeln!(stdin, "{sup}\n{init}").expect("send pids");
    drop(stdin);
    let attacked = attacker.wait_with_output().expect("the attacker");
    let text = stdout(&attacked);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        for key in ["attach", "seize", "vm_readv", "mem"] {
            let v = kv(line, key).unwrap_or_default();
            assert!(v != "ok" && !v.is_empty(), "{key}: {line}");
        }
    }
    let out = run.wait();
    let j = json_report(&out);
    verdict(&out, &j, "time_limit", 1);
    t.assert_nothing_left(json_uid(&j), &dump(&out));
}

// ---------------------------------------------------------------------------
// Who may run the helper

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_helper_is_installed_setuid_root_for_the_group_only() {
    use std::os::unix::fs::MetadataExt;
    let t = require_root!();
    let meta = std::fs::metadata(&t.helper).expect("stat the helper");
    assert_eq!(meta.uid(), 0, "helper not owned by root");
    assert_eq!(meta.mode() & 0o7777, 0o4754, "helper mode {:o}", meta.mode() & 0o7777);
    let (gid, _) =
        safeexec_tests::lookup_group(safeexec_tests::TEST_GROUP).expect("the test group");
    assert_eq!(meta.gid(), gid, "helper not in the test group");
    let policy = std::fs::metadata(&t.policy).expect("stat the policy");
    assert_eq!((policy.uid(), policy.mode() & 0o7777), (0, 0o644), "policy owner or mode");
}

/// The installer, run as root, works only in directories nobody else may
/// change: a prefix another user owns (made first in a sticky directory),
/// where that user swapped its own file for the helper between root's copy
/// and its `chmod 4754`, and a build directory another user owns, where
/// that user swapped the built binaries, both gave a setuid-root program
/// of theirs (a review of the eleventh round). Each is refused before the
/// build, naming the entry, and nothing is installed.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_installer_refuses_a_prefix_or_build_directory_another_user_owns() {
    use std::os::unix::fs::{chown, PermissionsExt};
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let t = require_root!();
    let base = std::path::PathBuf::from(format!("/tmp/safeexec-install-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir(&base).expect("mkdir");
    let _gone = Gone(base.clone());
    fs::set_permissions(&base, fs::Permissions::from_mode(0o1777)).expect("chmod");
    let theirs = |name: &str, owner: safeexec_tests::Ids| {
        let dir = base.join(name);
        fs::create_dir(&dir).expect("mkdir");
        chown(&dir, Some(owner.uid), Some(owner.gid)).expect("chown");
        dir
    };
    let install = |prefix: &std::path::Path, target: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(t.repo.join("packaging/install.sh"))
            .arg("--prefix")
            .arg(prefix)
            .args(["--group", safeexec_tests::TEST_GROUP])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if let Some(target) = target {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let out = cmd.output().expect("run install.sh");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // The installer failed, saying `why`.
    let refused = |(succeeded, said): (bool, String), why: &str| {
        assert!(!succeeded, "{said}");
        assert!(said.contains(why), "{said}");
    };
    let prefix = theirs("prefix", t.test_user);
    let why = format!("--prefix: {} belongs to uid {}", prefix.display(), t.test_user.uid);
    refused(install(&prefix, None), &why);
    assert!(
        fs::read_dir(&prefix).expect("read the prefix").next().is_none(),
        "something was installed"
    );

    // Not there yet, in a directory anyone may add to: another user could
    // make it while the build runs (a later review did).
    let later = base.join("later");
    refused(install(&later, None), "does not exist, and");
    assert!(!later.exists(), "something was installed");

    let build = theirs("build", t.outsider);
    let root_prefix = theirs("root-prefix", safeexec_tests::Ids { uid: 0, gid: 0 });
    fs::set_permissions(&root_prefix, fs::Permissions::from_mode(0o755)).expect("chmod");
    let why = format!("the build directory: {} belongs to uid {}", build.display(), t.outsider.uid);
    refused(install(&root_prefix, Some(&build)), &why);
    let installed = fs::read_dir(&root_prefix).expect("read the prefix").next();
    assert!(installed.is_none(), "something was installed");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_user_outside_the_group_cannot_run_the_frontend() {
    let t = require_root!();
    let out = t.safeexec_as(User::Outsider, &["--exec", "/bin/echo", "hi"]);
    assert!(!stdout(&out).contains("hi"), "the outsider ran a program\n{}", dump(&out));
    assert!(stderr(&out).contains("Permission denied"), "{}", dump(&out));
    assert_eq!(out.status.code(), Some(2), "safeexec's own error must exit 2\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_user_outside_the_group_cannot_execute_the_helper() {
    let t = require_root!();
    let out = t.run_program(&t.helper, &[] as &[&str]).user(User::Outsider).output();
    assert!(!out.status.success(), "the outsider executed the helper\n{}", dump(&out));
    assert!(stderr(&out).contains("Permission denied"), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn outsider_cannot_execute_the_helper_directly() {
    let t = require_root!();
    let err = t
        .direct()
        .user(t.outsider.uid, t.outsider.gid)
        .try_spawn()
        .err()
        .expect("the outsider executed the helper");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
}

// ---------------------------------------------------------------------------
// A uid per run, whatever the helper's pid

/// Reads a number from a file of /proc/sys.
fn sysctl_number(path: &str) -> u32 {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path} is no number: {e}"))
}

/// Uids are handed out in turn, not derived from the helper's pid: two
/// helpers started one after the other with the same pid (steered through
/// ns_last_pid; retried when another process took it first) get different
/// uids, and the file of mode 0600 the first run leaves in a directory both
/// runs may write is not the second's to read.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn runs_whose_helpers_get_the_same_pid_get_different_uids_and_cannot_read_each_others_files() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = require_root!();
    let dir = t.scratch("same-pid");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let pid_max = sysctl_number("/proc/sys/kernel/pid_max");
    // A run of `probe args` with `dir` as its --bind-rw directory, whose
    // helper is given pid `pid` if no other process forks first.
    let run_at = |pid: u32, args: &[&str]| {
        let granted = fs::File::open(dir.path()).expect("open the shared directory");
        let mut r = shared::Request { bind_rw: 1, ..t.probe_request(args) };
        set_limit(&mut r, Limit::Fsize, Some(16));
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid");
        t.direct().pass(granted).exchange(&frame(&r))
    };
    for attempt in 0..30 {
        let last = sysctl_number("/proc/sys/kernel/ns_last_pid");
        let mut pid = last + 300 + attempt * 7;
        if pid + 100 >= pid_max {
            pid = 1000 + attempt * 7;
        }
        if process(pid).is_some() {
            continue;
        }
        let file = dir.join(&format!("private-{attempt}"));
        let first = run_at(pid, &["private", &file]);
        if first.pid != pid {
            continue; // another process took the pid first
        }
        let second = run_at(pid, &["read", &file]);
        if second.pid != pid {
            continue;
        }
        let (a, b) = (first.outcome(), second.outcome());
        assert_eq!(kv(&first.stdout(), &file).as_deref(), Some("ok"), "{}", first.dump());
        let meta = fs::metadata(&file).expect("the first run's file");
        assert_eq!((meta.uid(), meta.mode() & 0o777), (a.uid, 0o600), "{}", first.dump());
        assert_ne!(
            a.uid,
            b.uid,
            "two runs of helper pid {pid} shared uid {}\n{}\n{}",
            a.uid,
            first.dump(),
            second.dump()
        );
        assert!(in_policy_range(a.uid) && in_policy_range(b.uid), "{a:?} {b:?}");
        assert_eq!(
            kv(&second.stdout(), "open").as_deref(),
            Some("EACCES"),
            "the second run read the first one's private file\n{}",
            second.dump()
        );
        return;
    }
    panic!("could not give two helpers the same pid in 30 attempts");
}
