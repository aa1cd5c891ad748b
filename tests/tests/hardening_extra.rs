//! Two hardening steps found by the security review: the directories above
//! the policy must be root's, and the caller's scheduling class does not
//! reach the target.

use std::os::unix::fs::PermissionsExt;

use safeexec_tests::{dump, require_root, require_root_exclusive, stderr, stdout};

/// Restores a directory's mode when the test ends, even on failure.
struct ModeGuard(std::path::PathBuf, u32);

impl Drop for ModeGuard {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(self.1));
    }
}

#[test]
fn policy_in_a_directory_others_may_write_is_refused() {
    let t = require_root_exclusive!();
    let dir = t
        .policy
        .parent()
        .expect("the policy has a directory")
        .to_path_buf();
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
fn callers_scheduling_class_does_not_reach_the_target() {
    let t = require_root!();
    // SCHED_IDLE needs no privilege; the caller runs safeexec under it.
    let out = t
        .run(&[
            "--nproc",
            "2",
            "--exec",
            "/bin/sh",
            "-c",
            "/usr/bin/chrt -p $$",
        ])
        .pre_exec(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: a plain system call on this (child) process with a
            // valid, initialised parameter.
            match unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let said = stdout(&out);
    assert!(said.contains("SCHED_OTHER"), "{}", dump(&out));
    assert!(!said.contains("SCHED_IDLE"), "{}", dump(&out));
}
