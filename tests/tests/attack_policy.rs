//! Attacks that need a policy other than the packaged one: chroot roots,
//! unlimited maxima pushed to u64::MAX, CPU limits near u64::MAX / 1000 ms
//! with a grace of u64::MAX, --host-tmp against `allow_host_tmp = false`, a
//! policy file that is not safely
//! owned, a hard-linked helper next to a fake policy. Every test here
//! rewrites the installed policy, so each holds the harness's exclusive
//! policy lock (require_root_exclusive!) for its whole run, and the
//! packaged policy is put back when it ends (also after a failure).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{direct, probe, s};
use safeexec_tests::{dump, frame, request, require_root_exclusive, stderr, stdout, Env};
use shared::{End, LimitKind, Request};

/// The packaged policy with some `key = value` lines replaced or added.
fn policy_with(t: &Env, changes: &[(&str, &str)]) -> String {
    let packaged =
        std::fs::read_to_string(t.repo.join("packaging/policy")).expect("read packaging/policy");
    let mut lines: Vec<String> = packaged
        .lines()
        .filter(|l| {
            let key = l.split('=').next().map(str::trim).unwrap_or("");
            !changes.iter().any(|(k, _)| *k == key)
        })
        .map(str::to_string)
        .collect();
    for (k, v) in changes {
        lines.push(format!("{k} = {v}"));
    }
    lines.join("\n") + "\n"
}

/// A jail under `root` with a static hello in it, owned by the test user.
fn jail(t: &Env, scratch: &safeexec_tests::Scratch, rel: &str) -> std::path::PathBuf {
    let dir = scratch.dir(rel, 0o755);
    scratch.copy_in(
        &t.fixtures.join("hello-static"),
        &format!("{rel}/hello"),
        0o755,
    );
    dir
}

/// Changes one limit of a request.
type SetLimit = Box<dyn Fn(&mut shared::Limits)>;

#[test]
fn chroot_dir_outside_the_policys_roots_is_refused() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("roots");
    let allowed = scratch.dir("jails", 0o755);
    let inside = jail(&t, &scratch, "jails/a");
    let outside = jail(&t, &scratch, "elsewhere");
    // A symlink inside the allowed root that leads out of it.
    let link = allowed.join("link");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(t.test_user.uid), Some(t.test_user.gid)).expect("lchown");
    t.set_policy(&policy_with(&t, &[("chroot_roots", s(&allowed))]));

    // Control: a jail under the root runs.
    let out = t.safeexec(&["--chroot_dir", s(&inside), "--exec", "/hello"]);
    assert_eq!(stdout(&out), "Hello World\n", "{}", dump(&out));

    let dotdot = format!("{}/../elsewhere", s(&allowed));
    for dir in [s(&outside), s(&link), dotdot.as_str(), "/"] {
        let out = t.safeexec(&["--chroot_dir", dir, "--exec", "/hello"]);
        assert_eq!(out.status.code(), Some(2), "{dir}\n{}", dump(&out));
        assert!(
            stderr(&out).contains("not under a root the policy allows"),
            "{dir}\n{}",
            dump(&out)
        );
        assert_eq!(stdout(&out), "", "{dir} ran\n{}", dump(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", dump(&out));
    }
}

#[test]
fn chroot_roots_none_refuses_every_chroot() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("noroots");
    let inside = jail(&t, &scratch, "j");
    t.set_policy(&policy_with(&t, &[("chroot_roots", "none")]));
    let out = t.safeexec(&["--chroot_dir", s(&inside), "--exec", "/hello"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(stderr(&out).contains("allows no chroot"), "{}", dump(&out));
}

#[test]
fn cpu_limit_that_overflows_microseconds_is_not_enforced_as_a_tiny_one() {
    let t = require_root_exclusive!();
    t.set_policy(&policy_with(&t, &[("max_cpu", "unlimited")]));
    let p = probe(&t);
    // 18446744073709552 ms * 1000 wraps around 2^64 to 384 µs.
    let mut r = request(&[p.as_str(), "spin", "1"]);
    r.limits.cpu_ms = Some(18_446_744_073_709_552);
    r.limits.wall_ms = Some(1000);
    let got = direct(&t).exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(
        o.limit,
        Some(LimitKind::Wall),
        "a CPU limit of 584 million years ended the run\n{}",
        got.dump()
    );
    common::assert_nothing_left(o.uid, &got.dump());
}

#[test]
fn u64_max_limits_under_an_unlimited_policy_run_correctly() {
    let t = require_root_exclusive!();
    t.set_policy(&policy_with(
        &t,
        &[
            ("max_cpu", "unlimited"),
            ("max_wall", "unlimited"),
            ("max_mem", "unlimited"),
            ("max_stack", "unlimited"),
            ("max_core", "unlimited"),
            ("max_fsize", "unlimited"),
            ("max_nproc", "unlimited"),
        ],
    ));
    let base = request(&["/bin/true"]);
    let cases: Vec<(&str, SetLimit)> = vec![
        ("cpu", Box::new(|l| l.cpu_ms = Some(u64::MAX))),
        ("wall", Box::new(|l| l.wall_ms = Some(u64::MAX))),
        ("grace", Box::new(|l| l.grace_ms = u64::MAX)),
        (
            "cpu+grace",
            Box::new(|l| {
                l.cpu_ms = Some(u64::MAX);
                l.grace_ms = u64::MAX;
            }),
        ),
        ("mem", Box::new(|l| l.mem_kib = Some(u64::MAX))),
        ("stack", Box::new(|l| l.stack_kib = Some(u64::MAX))),
        ("core", Box::new(|l| l.core_kib = u64::MAX)),
        ("fsize", Box::new(|l| l.fsize_kib = Some(u64::MAX))),
        (
            "none",
            Box::new(|l| {
                l.cpu_ms = None;
                l.wall_ms = None;
                l.mem_kib = None;
                l.stack_kib = None;
                l.fsize_kib = None;
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (name, set) in cases {
        let mut r = base.clone();
        set(&mut r.limits);
        let got = direct(&t)
            .timeout(Duration::from_secs(20))
            .exchange(&frame(&r));
        let ok = matches!(
            got.reply(),
            Ok(shared::Reply::Finished(ref o)) if o.end == End::Exited(0) && o.limit.is_none()
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
    // No process limit means RLIMIT_NPROC = infinity, above the caller's
    // own hard limit, which this helper cannot raise (no CAP_SYS_RESOURCE
    // in the bounding set): that must fail closed, naming the limit.
    let caller_hard = {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the local.
        unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut r) };
        r.rlim_max
    };
    let mut r = base.clone();
    r.limits.nproc = u64::MAX;
    let got = direct(&t).exchange(&frame(&r));
    if caller_hard == libc::RLIM_INFINITY {
        assert_eq!(got.outcome().end, End::Exited(0), "{}", got.dump());
    } else {
        let line = got.refusal();
        assert!(line.contains("RLIMIT_NPROC"), "{line}");
    }
}

/// (case, cpu_ms, grace_ms, wall_ms, the limit the verdict must name)
type HugeCase = (
    &'static str,
    Option<u64>,
    u64,
    Option<u64>,
    Option<LimitKind>,
);

/// CPU limits near u64::MAX / 1000 ms (whose microseconds, or the kernel's
/// nanoseconds of the rlimit, overflow 64 bits) and a grace of u64::MAX ms:
/// a target that burns 1.2 s of CPU and exits must run to its end, neither
/// killed by a wrapped tiny limit nor crashing the helper.
#[test]
fn cpu_limit_near_u64_max_ms_with_u64_max_grace_neither_ends_the_run_early_nor_crashes() {
    let t = require_root_exclusive!();
    t.set_policy(&policy_with(
        &t,
        &[("max_cpu", "unlimited"), ("max_wall", "unlimited")],
    ));
    let p = t.fixture("review_probe");
    const CENTURY_MS: u64 = 100 * 365 * 86_400 * 1000;
    const MAX_S: u64 = u64::MAX / 1000;
    let cases: Vec<HugeCase> = vec![
        (
            "cpu u64::MAX/1000 - 1, grace u64::MAX",
            Some(MAX_S - 1),
            u64::MAX,
            None,
            None,
        ),
        (
            "cpu u64::MAX/1000, grace u64::MAX",
            Some(MAX_S),
            u64::MAX,
            None,
            None,
        ),
        (
            "cpu u64::MAX/1000 + 1, grace u64::MAX",
            Some(MAX_S + 1),
            u64::MAX,
            None,
            None,
        ),
        ("cpu u64::MAX/1000, grace 0", Some(MAX_S), 0, None, None),
        // Whole seconds whose nanoseconds just wrap 64 bits.
        (
            "cpu u64::MAX/10^6 + 1",
            Some(u64::MAX / 1_000_000 + 1),
            0,
            None,
            None,
        ),
        (
            "cpu a century - 1 s",
            Some(CENTURY_MS - 1000),
            0,
            None,
            None,
        ),
        (
            "cpu a century + 1 s",
            Some(CENTURY_MS + 1000),
            0,
            None,
            None,
        ),
        (
            "cpu u64::MAX/1000, grace u64::MAX, wall 60 s",
            Some(MAX_S),
            u64::MAX,
            Some(60_000),
            None,
        ),
        (
            "cpu u64::MAX/1000, grace 1 s, wall u64::MAX",
            Some(MAX_S),
            1000,
            Some(u64::MAX),
            None,
        ),
        // Over its 1 s limit, within its endless grace: it runs to its end
        // and reports its real time as over the CPU limit.
        (
            "cpu 1 s, grace u64::MAX",
            Some(1000),
            u64::MAX,
            None,
            Some(LimitKind::Cpu),
        ),
    ];
    let env = t.env();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|&(name, cpu, grace, wall, want)| {
                let p = p.as_str();
                scope.spawn(move || {
                    let mut r = request(&[p, "burn", "1200"]);
                    r.limits.cpu_ms = cpu;
                    r.limits.grace_ms = grace;
                    r.limits.wall_ms = wall;
                    let got = direct(env)
                        .timeout(Duration::from_secs(30))
                        .exchange(&frame(&r));
                    let ok = matches!(
                        got.reply(),
                        Ok(shared::Reply::Finished(ref o))
                            if o.end == End::Exited(0) && o.limit == want
                                && o.user_us + o.sys_us >= 1_200_000
                    ) && got.output.status.code() == Some(0)
                        && got.stdout().contains("burned_ms=1200");
                    if let Ok(shared::Reply::Finished(o)) = got.reply() {
                        common::assert_nothing_left(o.uid, &got.dump());
                    }
                    (!ok).then(|| format!("{name}: {}", got.dump()))
                })
            })
            .collect();
        runs.into_iter()
            .filter_map(|h| h.join().expect("a run thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "a run that burns 1.2 s of CPU did not run to its end:\n{}",
        failures.join("\n")
    );
}

#[test]
fn host_tmp_is_refused_when_the_policy_disallows_it() {
    let t = require_root_exclusive!();
    t.set_policy(&policy_with(&t, &[("allow_host_tmp", "false")]));
    // Control: the private scratch directories need no permission.
    let out = t.safeexec(&["--exec", "/bin/echo", "ran"]);
    assert_eq!(stdout(&out), "ran\n", "{}", dump(&out));
    let out = t.safeexec(&["--host-tmp", "--exec", "/bin/echo", "ran"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert_eq!(stdout(&out), "", "--host-tmp ran\n{}", dump(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{}", dump(&out));
    assert!(err.contains("host's /tmp"), "{}", dump(&out));
    // The same request straight to the helper.
    let r = Request {
        host_tmp: true,
        ..request(&["/bin/echo", "ran"])
    };
    let line = direct(&t).exchange(&frame(&r)).refusal();
    assert!(line.contains("host's /tmp"), "{line}");
}

#[test]
fn limits_over_a_tightened_policy_are_refused_naming_limit_and_maximum() {
    let t = require_root_exclusive!();
    t.set_policy(&policy_with(
        &t,
        &[
            ("max_nproc", "2"),
            ("max_mem", "100000"),
            ("max_output", "10"),
        ],
    ));
    for (args, want) in [
        (
            vec!["--nproc", "3"],
            "process limit of 3 is over the policy's maximum of 2",
        ),
        (
            vec!["--mem", "100001"],
            "memory limit of 100001 KiB is over the policy's maximum of 100000 KiB",
        ),
        (vec!["--output", "11"], "maximum of 10 KiB"),
        (
            vec![],
            "no output limit is over the policy's maximum of 10 KiB",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--exec", "/bin/echo", "ran"]);
        let out = t.safeexec(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", dump(&out));
        assert!(stderr(&out).contains(want), "{args:?}\n{}", dump(&out));
        assert_eq!(stdout(&out), "", "{args:?} ran");
    }
}

#[test]
fn share_net_is_refused_unless_the_policy_allows_it() {
    let t = require_root_exclusive!();
    t.set_policy(&policy_with(&t, &[("allow_share_net", "false")]));
    let r = Request {
        share_net: true,
        ..request(&["/bin/true"])
    };
    let line = direct(&t).exchange(&frame(&r)).refusal();
    assert!(line.contains("sharing the network"), "{line}");
}

fn assert_policy_refused(t: &Env, want: &str) {
    let got = direct(t).exchange(&frame(&request(&["/bin/echo", "ran"])));
    let line = got.refusal();
    assert!(line.starts_with("policy:") && line.contains(want), "{line}");
    assert_eq!(got.stdout(), "");
}

#[test]
fn policy_writable_by_group_or_others_is_refused() {
    let t = require_root_exclusive!();
    for mode in [0o664, 0o646, 0o666] {
        // Different text, so that the restore rewrites it (mode included).
        t.set_policy(&(policy_with(&t, &[]) + "# loosened\n"));
        std::fs::set_permissions(&t.policy, std::fs::Permissions::from_mode(mode))
            .expect("chmod the policy");
        assert_policy_refused(&t, "must be owned by root and not writable");
    }
}

#[test]
fn policy_owned_by_a_user_is_refused() {
    let t = require_root_exclusive!();
    t.set_policy(&(policy_with(&t, &[]) + "# owned by a user\n"));
    std::os::unix::fs::chown(&t.policy, Some(t.test_user.uid), None).expect("chown the policy");
    assert_policy_refused(&t, "must be owned by root");
}

#[test]
fn policy_that_is_a_symlink_is_refused() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("policy-link");
    let target = scratch.path().join("loose-policy");
    std::fs::write(&target, policy_with(&t, &[("max_cpu", "unlimited")])).expect("write");
    std::os::unix::fs::chown(&target, Some(0), Some(0)).expect("chown");
    t.set_policy(&(policy_with(&t, &[]) + "# to be replaced\n"));
    std::fs::remove_file(&t.policy).expect("remove the policy");
    std::os::unix::fs::symlink(&target, &t.policy).expect("symlink the policy");
    assert_policy_refused(&t, "cannot open");
}

#[test]
fn policy_with_a_system_gid_or_a_uid_range_reaching_users_is_refused() {
    let t = require_root_exclusive!();
    for (k, v, want) in [
        ("gid", "0", "system group"),
        ("uid_base", "0", "uid_base"),
        ("uid_base", "1000", "uid_base"),
        ("uid_count", "0", "uid_count"),
        ("max_cpus", "1", "unknown key"),
    ] {
        t.set_policy(&policy_with(&t, &[(k, v)]));
        assert_policy_refused(&t, want);
    }
}

#[test]
fn hardlinked_copy_of_the_helper_ignores_a_fake_policy_beside_it() {
    let t = require_root_exclusive!();
    t.set_policy(&policy_with(&t, &[("max_cpu", "2")]));
    let scratch = t.scratch("hardlink");
    // A tree like the installation's, with the helper hard-linked into it
    // and a loose policy where a relative lookup would find it.
    for rel in ["bin", "libexec/safeexec", "etc/safeexec"] {
        scratch.dir(rel, 0o755);
    }
    let link = scratch.path().join("libexec/safeexec/safeexec-helper");
    std::fs::hard_link(&t.helper, &link).expect("hard-link the helper");
    let fake = policy_with(&t, &[("max_cpu", "unlimited")]);
    for rel in ["etc/safeexec/policy", "libexec/safeexec/policy", "policy"] {
        scratch.file(rel, fake.as_bytes(), 0o644);
        let path = scratch.path().join(rel);
        std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown the fake policy");
    }
    let mut r = request(&["/bin/true"]);
    r.limits.cpu_ms = Some(5000);
    let got = direct(&t)
        .program(&link)
        .cwd(scratch.path())
        .exchange(&frame(&r));
    let line = got.refusal();
    assert!(
        line.contains("cpu limit of 5000 ms is over the policy's maximum of 2000 ms"),
        "{line}"
    );
    std::fs::remove_file(&link).expect("remove the link");
}
