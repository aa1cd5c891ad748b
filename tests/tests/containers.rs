//! The container mode (README, "Containers"): what a container gives the
//! setuid helper, recreated on the host with the kernel's own means (a
//! bounding set, no_new_privs, a nosuid mount, a user namespace), so that
//! no container engine is needed here. packaging/ci-container.sh runs the
//! same checks in real podman containers.
//!
//! - the six capabilities of the documented set are enough: no
//!   CAP_SYS_PTRACE, no CAP_DAC_OVERRIDE, nothing else;
//! - each condition a container can take away is named in one line, which
//!   the frontend shows as it is (never "the helper ended without a reply").

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use safeexec_tests::{
    dump, json_report, json_uid, path_str, require_root, stderr, verdict, TEST_USER,
};

/// The documented set, as setpriv names them.
const CAPS: [&str; 6] = ["setuid", "setgid", "setpcap", "kill", "sys_admin", "net_admin"];

fn bounding_set(caps: &[&str]) -> String {
    let plus: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
    format!("--bounding-set=-all,{}", plus.join(","))
}

/// A refusal by the helper, shown by the frontend as the helper's own line.
fn assert_named(out: &Output, words: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{}", dump(out));
    assert!(err.contains(words), "expected {words:?}\n{}", dump(out));
    assert!(!err.contains("without a reply"), "the frontend hid the helper's line\n{}", dump(out));
    assert_eq!(err.trim_end().lines().count(), 1, "not one line\n{}", dump(out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_six_documented_capabilities_alone_run_a_contained_program() {
    let t = require_root!();
    // The target forks a sleeper that leaves its session, then the run is
    // cut at its CPU limit: init still ends everything, with no
    // CAP_SYS_PTRACE (nor any other capability) in the helper's reach.
    let out = t
        .run(&[
            "--json",
            "--nproc",
            "3",
            "--cpu",
            "0.3",
            "--exec",
            "/bin/sh",
            "-c",
            "(setsid sleep 300 &); while :; do :; done",
        ])
        .setpriv_options(&[bounding_set(&CAPS)])
        .output();
    let j = json_report(&out);
    verdict(&out, &j, "time_limit", 1);
    t.assert_nothing_left(json_uid(&j), &dump(&out));
    let out =
        t.run(&["--exec", "/bin/echo", "hi"]).setpriv_options(&[bounding_set(&CAPS)]).output();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{}", dump(&out));
    // A minimal root with CAP_SYS_CHROOT besides, and no CAP_MKNOD: its
    // /dev has the host's devices all the same (binds, not new nodes).
    let seven = [&CAPS[..], &["sys_chroot"]].concat();
    let script = "echo hi > /dev/null && head -c 4 /dev/zero | od -An -tx1 && head -c 1 /dev/urandom >/dev/full";
    let out = t
        .run(&["--root", "minimal", "--nproc", "10", "--", "/bin/sh", "-c", script])
        .setpriv_options(&[bounding_set(&seven)])
        .output();
    assert_eq!(String::from_utf8_lossy(&out.stdout), " 00 00 00 00\n", "{}", dump(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"), "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn each_missing_capability_is_named() {
    let t = require_root!();
    for cap in CAPS {
        let others: Vec<&str> = CAPS.iter().copied().filter(|&c| c != cap).collect();
        let out =
            t.run(&["--exec", "/bin/true"]).setpriv_options(&[bounding_set(&others)]).output();
        assert_named(&out, &format!("lacks CAP_{} (", cap.to_uppercase()));
    }
    // A chroot needs one more, asked only of runs with --chroot_dir or a
    // minimal root (both enter their root with chroot).
    let jail = t.env().scratch("jail");
    for args in [&["--chroot_dir", path_str(jail.path())][..], &["--root", "minimal"]] {
        let out = t
            .run(&[args, &["--exec", "/bin/true"]].concat())
            .setpriv_options(&[bounding_set(&CAPS)])
            .output();
        assert_named(&out, "lacks CAP_SYS_CHROOT (for --chroot_dir and --root minimal)");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn no_new_privs_is_named() {
    let t = require_root!();
    let out = t.run(&["--exec", "/bin/true"]).setpriv_options(&["--no-new-privs"]).output();
    assert_named(&out, "no_new_privs is set");
}

/// Runs `script` as root through `unshare` with `unshare_args`, with
/// `$SAFEEXEC` and `$HELPER_DIR` set and `$AS_USER` the command that
/// becomes the test user. With `id_map`, the script waits until that map
/// is written as its uid and gid map (a new user namespace's, by root).
fn unshared(
    t: &safeexec_tests::Ctx,
    script: &str,
    unshare_args: &[&str],
    id_map: Option<&str>,
) -> Output {
    let env = t.env();
    let helper_dir = env.helper.parent().unwrap_or(Path::new("/"));
    let as_user =
        format!("setpriv --reuid={TEST_USER} --regid={TEST_USER} --init-groups -- /usr/bin/env --");
    let script = format!("echo ready; read go; {script}");
    let mut child = Command::new("unshare")
        .args(unshare_args)
        .args(["--", "/bin/sh", "-c", &script])
        .env("SAFEEXEC", &env.safeexec)
        .env("HELPER_DIR", helper_dir)
        .env("AS_USER", as_user)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("the script starts");
    assert_eq!(ready, "ready\n");
    if let Some(map) = id_map {
        // unshare execs the shell: the child is the namespace's first process.
        let pid = child.id();
        for file in ["uid_map", "gid_map"] {
            fs::write(format!("/proc/{pid}/{file}"), map).expect("the id map is written");
        }
    }
    child.stdin.take().expect("piped").write_all(b"go\n").expect("the script reads");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("stdout");
    let mut out = child.wait_with_output().expect("unshare ends");
    out.stdout = rest;
    out
}

/// The minimal /dev shows the host's devices as they are: where the host's
/// /dev/urandom is root's alone (here, in a mount namespace of the test's
/// own), the run's is not one it may read or write (found by review: the
/// nodes the helper makes once had mode 0666 whatever the host's).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_host_device_that_is_roots_alone_stays_so_in_the_runs_dev() {
    let t = require_root!();
    let place = t.env().scratch("devnode");
    let script = format!(
        r#"mount -t tmpfs tmpfs "{dir}" && mknod "{dir}/u" c 1 9 && chmod 600 "{dir}/u" &&
           mount --bind "{dir}/u" /dev/urandom &&
           $AS_USER "$SAFEEXEC" --root minimal --nproc 10 -- /bin/sh -c \
             'stat -c %a /dev/urandom; head -c 1 /dev/urandom >/dev/null && echo READ'"#,
        dir = place.path().display()
    );
    let out = unshared(&t, &script, &["--mount", "--propagation", "private"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "600\n", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn helper_on_a_nosuid_mount_is_named() {
    let t = require_root!();
    let out = unshared(
        &t,
        r#"mount --bind "$HELPER_DIR" "$HELPER_DIR" &&
           mount -o remount,bind,nosuid "$HELPER_DIR" &&
           exec $AS_USER "$SAFEEXEC" --exec /bin/true"#,
        &["--mount", "--propagation", "private"],
        None,
    );
    assert_named(&out, "mounted nosuid");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sandbox_ids_unmapped_in_a_user_namespace_are_named_with_the_range_needed() {
    let t = require_root!();
    // A user namespace with 65536 ids, as a container's: root and the test
    // user are in it, the policy's sandbox uids are not.
    let out = unshared(
        &t,
        r#"exec $AS_USER "$SAFEEXEC" --exec /bin/true"#,
        &["--user"],
        Some("0 0 65536\n"),
    );
    assert_named(
        &out,
        "the sandbox uids 1879048192-1883242495 (the policy's uid_base, uid_count and gid) are \
         not all mapped in this user namespace, which maps 0-65535: map 4194304 ids",
    );
}
