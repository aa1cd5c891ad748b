//! Who the target runs as: a throw-away uid from the policy range, unique per
//! run, its own gid, no groups, no capabilities, no_new_privs; and who may
//! run the helper at all.

use std::thread;

use safeexec_tests::{
    assert_verdict, dump, in_policy_range, json_report, parse_ids, require_root, status_field,
    stderr, stdout, User,
};

#[test]
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
    assert_eq!(
        report["uid"],
        uid,
        "the report's uid is not the target's\n{}",
        dump(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

#[test]
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
    let outs: Vec<_> = runs
        .into_iter()
        .map(|h| h.join().expect("a run thread"))
        .collect();
    let uids: Vec<u32> = outs
        .iter()
        .map(|out| {
            assert_eq!(out.status.code(), Some(0), "{}", dump(out));
            parse_ids(stdout(out).trim())
                .unwrap_or_else(|| panic!("no ids line\n{}", dump(out)))
                .0
        })
        .collect();
    assert!(
        uids.iter().all(|&u| in_policy_range(u)),
        "uids {uids:?} outside the policy range"
    );
    assert_ne!(
        uids[0], uids[1],
        "two concurrent runs shared uid {}",
        uids[0]
    );
}

#[test]
fn target_gid_equals_its_uid_under_the_per_run_gid_policy() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--exec", &t.fixture("ids")]);
    let (uid, gid, euid, egid, _) =
        parse_ids(stdout(&out).trim()).unwrap_or_else(|| panic!("no ids line\n{}", dump(&out)));
    assert_eq!(gid, uid, "gid is not the per-run gid\n{}", dump(&out));
    assert_eq!(
        (euid, egid),
        (uid, gid),
        "effective ids differ\n{}",
        dump(&out)
    );
    let report = json_report(&out);
    assert_eq!(
        report["gid"],
        gid,
        "the report's gid is not the target's\n{}",
        dump(&out)
    );
}

#[test]
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
    let uids: Vec<u32> = uid
        .split_whitespace()
        .map(|u| u.parse().expect("numeric uid"))
        .collect();
    assert!(
        uids.iter().all(|&u| u == uids[0] && in_policy_range(u)),
        "Uid: {uid}\n{}",
        dump(&out)
    );
}

#[test]
fn a_user_outside_the_group_cannot_run_the_frontend() {
    let t = require_root!();
    let out = t.safeexec_as(User::Outsider, &["--exec", "/bin/echo", "hi"]);
    assert!(
        !stdout(&out).contains("hi"),
        "the outsider ran a program\n{}",
        dump(&out)
    );
    assert!(stderr(&out).contains("Permission denied"), "{}", dump(&out));
    assert_eq!(
        out.status.code(),
        Some(2),
        "safeexec's own error must exit 2\n{}",
        dump(&out)
    );
}

#[test]
fn a_user_outside_the_group_cannot_execute_the_helper() {
    let t = require_root!();
    let out = t.run_helper::<&str>(&[]).user(User::Outsider).output();
    assert!(
        !out.status.success(),
        "the outsider executed the helper\n{}",
        dump(&out)
    );
    assert!(stderr(&out).contains("Permission denied"), "{}", dump(&out));
}

#[test]
fn the_helper_is_installed_setuid_root_for_the_group_only() {
    use std::os::unix::fs::MetadataExt;
    let t = require_root!();
    let meta = std::fs::metadata(&t.helper).expect("stat the helper");
    assert_eq!(meta.uid(), 0, "helper not owned by root");
    assert_eq!(
        meta.mode() & 0o7777,
        0o4754,
        "helper mode {:o}",
        meta.mode() & 0o7777
    );
    let (gid, _) =
        safeexec_tests::lookup_group(safeexec_tests::TEST_GROUP).expect("the test group");
    assert_eq!(meta.gid(), gid, "helper not in the test group");
    let policy = std::fs::metadata(&t.policy).expect("stat the policy");
    assert_eq!(
        (policy.uid(), policy.mode() & 0o7777),
        (0, 0o644),
        "policy owner or mode"
    );
}
