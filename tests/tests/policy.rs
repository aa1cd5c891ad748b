//! The root-owned policy decides what a caller may ask for. These tests
//! rewrite the test installation's policy, so they run alone
//! (require_root_exclusive!) and the packaged policy comes back after each.

use safeexec_tests::{assert_verdict, dump, require_root_exclusive, stderr, stdout};

/// The packaged policy with one `key = value` line replaced.
fn packaged_with(t: &safeexec_tests::Env, key: &str, value: &str) -> String {
    let policy =
        std::fs::read_to_string(t.repo.join("packaging/policy")).expect("read packaging/policy");
    let mut found = false;
    let lines: Vec<String> = policy
        .lines()
        .map(|line| {
            if line.split('=').next().map(str::trim) == Some(key) {
                found = true;
                format!("{key} = {value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(found, "packaging/policy has no {key} line");
    lines.join("\n") + "\n"
}

#[test]
fn a_cpu_limit_over_the_policy_maximum_is_refused_naming_the_limit() {
    let t = require_root_exclusive!();
    t.set_policy(&packaged_with(&t, "max_cpu", "2"));
    let out = t.safeexec(&["--cpu", "5", "--exec", "/bin/echo", "hi"]);
    assert!(
        !stdout(&out).contains("hi"),
        "ran over the policy\n{}",
        dump(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a refusal is safeexec's own error\n{}",
        dump(&out)
    );
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
fn the_packaged_policy_is_back_after_a_test_rewrote_it() {
    let t = require_root_exclusive!();
    t.set_policy(&packaged_with(&t, "max_cpu", "2"));
    drop(t);
    let t = require_root_exclusive!();
    let installed = std::fs::read(&t.policy).expect("read the installed policy");
    let packaged = std::fs::read(t.repo.join("packaging/policy")).expect("read packaging/policy");
    assert!(
        installed == packaged,
        "the rewritten policy stayed in place"
    );
}
