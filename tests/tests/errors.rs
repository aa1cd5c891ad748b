//! Every failure is one line and a non-zero exit, and leaves nothing half
//! done (DESIGN.md invariant 8): requests the helper must refuse (NUL bytes,
//! an empty argv, malformed environment entries, an impossible niceness), a
//! missing request descriptor, a set-up that fails inside the run, and
//! arguments at the kernel's bounds. Refusals of a frame are in protocol.rs,
//! of limits over the policy in policy.rs.

use std::os::unix::process::ExitStatusExt;

use safeexec_tests::{dump, frame, kv, request, require_root, stderr, End};
use shared::Request;

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn helper_without_a_request_descriptor_refuses_with_one_line() {
    let t = require_root!();
    let out = t.direct().spawn().wait();
    assert!(!out.status.success(), "{}", dump(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "not one line\n{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn setup_failure_inside_the_run_is_one_line_never_a_sigpipe() {
    let t = require_root!();
    // The target's set-up fails (a missing exec_dir) before the supervisor
    // sends its go byte: the caller must get the reason, every time.
    let r = Request { exec_dir: Some("/nonexistent/dir".into()), ..request(&["/bin/true"]) };
    for i in 0..20 {
        let got = t.direct().exchange(&frame(&r));
        assert_ne!(
            got.output.status.signal(),
            Some(libc::SIGPIPE),
            "attempt {i}: the helper died of SIGPIPE without a reply\n{}",
            got.dump()
        );
        let line = got.refusal();
        assert!(line.contains("cannot enter exec_dir"), "attempt {i}: {line}");
    }
    for i in 0..10 {
        let out = t.safeexec(&["--exec_dir", "/nonexistent/dir", "--exec", "/bin/true"]);
        let err = stderr(&out);
        assert!(
            out.status.code() == Some(2) && err.contains("cannot enter exec_dir"),
            "attempt {i}\n{}",
            dump(&out)
        );
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn negative_niceness_and_negative_limits_are_refused() {
    let t = require_root!();
    for nice in [-20, -1, 20, i32::MIN, i32::MAX] {
        let r = Request { niceness: nice, ..request(&["/bin/true"]) };
        let line = t.direct().exchange(&frame(&r)).refusal();
        assert!(line.contains("niceness"), "{nice}: {line}");
    }
    // The frontend has no way to say a negative limit.
    for (opt, v) in [("--cpu", "-1"), ("--mem", "-5"), ("--nproc", "-1"), ("--clock", "-3")] {
        let out = t.safeexec(&[opt, v, "--exec", "/bin/true"]);
        assert_eq!(out.status.code(), Some(2), "{opt} {v}\n{}", dump(&out));
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn interior_nul_bytes_are_refused() {
    let t = require_root!();
    let base = request(&["/bin/true"]);
    let cases = [
        Request { program: "/bin/true\0/../evil".into(), ..base.clone() },
        Request { argv: vec!["/bin/true".into(), "a\0b".into()], ..base.clone() },
        Request { env: vec!["A=1\0LD_PRELOAD=/x.so".into()], ..base.clone() },
        Request { exec_dir: Some("/tmp\0/root".into()), ..base.clone() },
    ];
    for r in cases {
        let line = t.direct().exchange(&frame(&r)).refusal();
        assert!(line.contains("NUL byte"), "{r:?}: {line}");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn empty_request_argv_is_refused() {
    let t = require_root!();
    for r in [
        Request { argv: vec![], ..request(&["/bin/true"]) },
        Request { program: String::new(), ..request(&["/bin/true"]) },
    ] {
        let line = t.direct().exchange(&frame(&r)).refusal();
        assert!(line.contains("empty argv"), "{line}");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn malformed_environment_entries_are_refused() {
    let t = require_root!();
    for entry in ["NOEQUALS", "=value"] {
        let r = Request { env: vec![entry.into()], ..request(&["/bin/true"]) };
        let line = t.direct().exchange(&frame(&r)).refusal();
        assert!(line.contains("NAME=VALUE"), "{line}");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn argument_of_900_kib_fails_closed_with_e2big() {
    let t = require_root!();
    let mut r = t.probe_request(&["args"]);
    r.argv.push("z".repeat(900 * 1024));
    let got = t.direct().exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(o.exec_error.as_deref(), Some("Argument list too long"), "{}", got.dump());
    assert_ne!(o.end, End::Exited(0));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn hundred_thousand_argv_entries_run_correctly() {
    let t = require_root!();
    let mut r = t.probe_request(&["args"]);
    r.argv.extend((0..100_000).map(|i| format!("{}", i % 10)));
    let got = t.direct().exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(o.end, End::Exited(0), "{}", got.dump());
    assert_eq!(kv(&got.stdout(), "argc").as_deref(), Some("100002"), "{}", got.dump());
}
