//! The root-owned policy decides what a caller may ask for (DESIGN.md
//! invariants 4 and 8, the trust table's row on the policy file): the
//! helper reads only the policy compiled into it, and only when root alone
//! may have written it (owner, mode, no symlink, directories above it); it
//! refuses a policy whose ids or ranges reach users; and it refuses, in a
//! line naming the limit and the maximum, any limit over the policy's.
//!
//! Most tests here rewrite the installed policy: they hold the harness's
//! exclusive policy lock (require_root_exclusive!) for their whole run, and
//! the packaged policy is put back when they end (also after a failure).
//! The policy's rules on chroot, the host's /tmp and the network are tested
//! with those (paths_and_chroot.rs, scratch_dirs.rs, network.rs).

use std::os::unix::fs::PermissionsExt;

use safeexec_tests::{
    assert_verdict, dump, frame, process_cap, request, require_root, require_root_exclusive,
    set_limit, stderr, stdout, End, Env, Limit,
};

// ---------------------------------------------------------------------------
// Limits over the policy

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_cpu_limit_over_the_policy_maximum_is_refused_naming_the_limit() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("max_cpu", "2")]));
    let out = t.safeexec(&["--cpu", "5", "--exec", "/bin/echo", "hi"]);
    assert!(!stdout(&out).contains("hi"), "ran over the policy\n{}", dump(&out));
    assert_eq!(out.status.code(), Some(2), "a refusal is safeexec's own error\n{}", dump(&out));
    let err = stderr(&out).to_lowercase();
    assert!(
        err.contains("cpu") && err.contains('2'),
        "the error names neither the limit nor the maximum\n{}",
        dump(&out)
    );
    // Within the maximum, the same policy runs it.
    let out = t.safeexec(&["--cpu", "1", "--exec", "/bin/echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn u64_max_limits_are_refused_naming_the_limit_and_the_maximum() {
    let t = require_root!();
    let base = request(&["/bin/true"]);
    // The packaged max_nproc (65535), or a quarter of pid_max if lower.
    let nproc_max = process_cap().min(65_535).to_string();
    let cases: [(&str, &str, Limit, Option<u64>); 10] = [
        ("cpu", "3600000 ms", Limit::Cpu, Some(u64::MAX)),
        ("wall-clock", "86400000 ms", Limit::Wall, Some(u64::MAX)),
        ("memory", "41943039 KiB", Limit::Mem, Some(u64::MAX)),
        ("stack", "4194303 KiB", Limit::Stack, Some(u64::MAX)),
        ("core", "4194303 KiB", Limit::Core, Some(u64::MAX)),
        ("file size", "4194303 KiB", Limit::Fsize, Some(u64::MAX)),
        ("process", &nproc_max, Limit::Nproc, Some(u64::MAX)),
        ("open file", "1024", Limit::Nfile, Some(u64::MAX)),
        ("grace", "86400000 ms", Limit::Grace, Some(u64::MAX)),
        ("cpu", "3600000 ms", Limit::Cpu, None),
    ];
    for (name, max, limit, value) in cases {
        let mut r = base.clone();
        set_limit(&mut r, limit, value);
        let line = t.direct().exchange(&frame(&r)).refusal();
        assert!(
            line.contains(name) && line.contains(&format!("maximum of {max}")),
            "{name}: {line}"
        );
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn limits_just_over_the_policy_are_refused_and_at_it_run() {
    let t = require_root!();
    let mut over = request(&["/bin/true"]);
    set_limit(&mut over, Limit::Nfile, Some(1025));
    let line = t.direct().exchange(&frame(&over)).refusal();
    assert!(
        line.contains("open file limit of 1025 is over the policy's maximum of 1024"),
        "{line}"
    );
    let mut at = request(&["/bin/true"]);
    set_limit(&mut at, Limit::Nfile, Some(1024));
    assert_eq!(t.direct().exchange(&frame(&at)).outcome().end, End::Exited(0));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn limits_over_a_tightened_policy_are_refused_naming_limit_and_maximum() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[
        ("max_nproc", "2"),
        ("max_mem", "100000"),
        ("max_output", "10"),
    ]));
    for (args, want) in [
        (vec!["--nproc", "3"], "process limit of 3 is over the policy's maximum of 2"),
        (
            vec!["--mem", "100001"],
            "memory limit of 100001 KiB is over the policy's maximum of 100000 KiB",
        ),
        // The output maximum is checked in bytes (policy KiB × 1024).
        (
            vec!["--output", "11"],
            "output limit of 11264 bytes is over the policy's maximum of 10240 bytes",
        ),
        (vec![], "no output limit is over the policy's maximum of 10240 bytes"),
    ] {
        let mut a = args.clone();
        a.extend(["--exec", "/bin/echo", "ran"]);
        let out = t.safeexec(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", dump(&out));
        assert!(stderr(&out).contains(want), "{args:?}\n{}", dump(&out));
        assert_eq!(stdout(&out), "", "{args:?} ran");
    }
}

// ---------------------------------------------------------------------------
// The policy file

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_packaged_policy_is_back_after_a_test_rewrote_it() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("max_cpu", "2")]));
    drop(t);
    let t = require_root_exclusive!();
    let installed = std::fs::read(&t.policy).expect("read the installed policy");
    let packaged = std::fs::read(t.repo.join("packaging/policy")).expect("read packaging/policy");
    assert!(installed == packaged, "the rewritten policy stayed in place");
}

fn assert_policy_refused(t: &Env, want: &str) {
    let got = t.direct().exchange(&frame(&request(&["/bin/echo", "ran"])));
    let line = got.refusal();
    assert!(line.starts_with("policy:") && line.contains(want), "{line}");
    assert_eq!(got.stdout(), "");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn policy_writable_by_group_or_others_is_refused() {
    let t = require_root_exclusive!();
    for mode in [0o664, 0o646, 0o666] {
        // Different text, so that the restore rewrites it (mode included).
        t.set_policy(&(t.policy_with(&[]) + "# loosened\n"));
        std::fs::set_permissions(&t.policy, std::fs::Permissions::from_mode(mode))
            .expect("chmod the policy");
        assert_policy_refused(&t, "must be owned by root and not writable");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn policy_owned_by_a_user_is_refused() {
    let t = require_root_exclusive!();
    t.set_policy(&(t.policy_with(&[]) + "# owned by a user\n"));
    std::os::unix::fs::chown(&t.policy, Some(t.test_user.uid), None).expect("chown the policy");
    assert_policy_refused(&t, "must be owned by root");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn policy_that_is_a_symlink_is_refused() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("policy-link");
    let target = scratch.path().join("loose-policy");
    std::fs::write(&target, t.policy_with(&[("max_cpu", "unlimited")])).expect("write");
    std::os::unix::fs::chown(&target, Some(0), Some(0)).expect("chown");
    t.set_policy(&(t.policy_with(&[]) + "# to be replaced\n"));
    std::fs::remove_file(&t.policy).expect("remove the policy");
    std::os::unix::fs::symlink(&target, &t.policy).expect("symlink the policy");
    assert_policy_refused(&t, "cannot open");
}

/// Restores a directory's mode when the test ends, even on failure.
struct ModeGuard(std::path::PathBuf, u32);

impl Drop for ModeGuard {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(self.1));
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn policy_in_a_directory_others_may_write_is_refused() {
    let t = require_root_exclusive!();
    let dir = t.policy.parent().expect("the policy has a directory").to_path_buf();
    let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o7777;
    let _restore = ModeGuard(dir.clone(), mode);
    // Anyone could now replace the (root-owned, read-only) policy file.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = t.safeexec(&["--exec", "/bin/echo", "ran"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(!stdout(&out).contains("ran"), "{}", dump(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{}", dump(&out));
    assert!(err.contains("above the policy"), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn policy_with_a_system_gid_or_a_uid_range_reaching_users_is_refused() {
    let t = require_root_exclusive!();
    for (k, v, want) in [
        ("gid", "0", "system group"),
        ("uid_base", "0", "uid_base"),
        ("uid_base", "1000", "uid_base"),
        ("uid_count", "0", "uid_count"),
        ("max_cpus", "1", "unknown key"),
    ] {
        t.set_policy(&t.policy_with(&[(k, v)]));
        assert_policy_refused(&t, want);
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn hardlinked_copy_of_the_helper_ignores_a_fake_policy_beside_it() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("max_cpu", "2")]));
    let scratch = t.scratch("hardlink");
    // A tree like the installation's, with the helper hard-linked into it
    // and a loose policy where a relative lookup would find it.
    for rel in ["bin", "libexec/safeexec", "etc/safeexec"] {
        scratch.dir(rel, 0o755);
    }
    let link = scratch.path().join("libexec/safeexec/safeexec-helper");
    std::fs::hard_link(&t.helper, &link).expect("hard-link the helper");
    let fake = t.policy_with(&[("max_cpu", "unlimited")]);
    for rel in ["etc/safeexec/policy", "libexec/safeexec/policy", "policy"] {
        scratch.file(rel, fake.as_bytes(), 0o644);
        let path = scratch.path().join(rel);
        std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown the fake policy");
    }
    let mut r = request(&["/bin/true"]);
    set_limit(&mut r, Limit::Cpu, Some(5000));
    let got = t.direct().program(&link).cwd(scratch.path()).exchange(&frame(&r));
    let line = got.refusal();
    assert!(
        line.contains("cpu limit of 5000 ms is over the policy's maximum of 2000 ms"),
        "{line}"
    );
    std::fs::remove_file(&link).expect("remove the link");
}

// ---------------------------------------------------------------------------
// Limits no policy can lift

/// One run may not hold more than a quarter of the machine's pids, even
/// when the policy allows any number of processes: a larger process limit,
/// or none, is refused in a line naming that maximum; within it, the run
/// goes ahead.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_process_limit_over_a_quarter_of_pid_max_is_refused_even_when_the_policy_allows_any() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("max_nproc", "unlimited")]));
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number");
    let quarter = pid_max / 4;
    let over = (quarter + 1).to_string();
    let out = t.safeexec(&["--nproc", &over, "--exec", "/bin/echo", "ran"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert_eq!(stdout(&out), "", "the run went ahead\n{}", dump(&out));
    let want = format!("process limit of {over} is over the policy's maximum of {quarter}");
    assert!(stderr(&out).contains(&want), "no '{want}'\n{}", dump(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", dump(&out));
    // No process limit at all, straight to the helper.
    let mut r = request(&["/bin/true"]);
    set_limit(&mut r, Limit::Nproc, None);
    let line = t.direct().exchange(&frame(&r)).refusal();
    assert!(line.contains(&format!("maximum of {quarter}")), "{line}");
    // Within it, the same policy runs it.
    let out = t.safeexec(&["--nproc", "2", "--exec", "/bin/echo", "ran"]);
    assert_eq!(stdout(&out), "ran\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
}
