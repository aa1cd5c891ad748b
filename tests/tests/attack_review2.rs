//! The attacks of the second review, each against the fix that now stops it
//! (docs/threat-model.md):
//!
//! - keyrings (`sandbox::enter`, `sys::leave_inherited_keyring`, and the
//!   keyctl family in `seccomp::filter`): the target starts in a session
//!   keyring of its own, so it neither finds nor reads the caller's keys,
//!   and it can add no key anywhere, so nothing of it is left in the
//!   caller's session keyring or its uid's user keyring;
//! - user namespaces and mounts (`seccomp::filter`): unshare and clone with
//!   CLONE_NEWUSER fail with EPERM, clone3 with ENOSYS (fork and threads
//!   fall back to clone), mount, the new mount API and setns with EPERM; so
//!   no overlayfs copy-up can leave a set-gid directory on the host;
//! - the working directory (`sandbox::working_directory_is_visible`): a
//!   caller's directory hidden under the run's private /tmp is refused
//!   unless `--host-tmp`, and then only if the policy allows it;
//! - capabilities (`sandbox::enter`): the caller's inheritable and ambient
//!   sets are cleared in the target.
//!
//! The hostile programs are tests/fixtures/review2_probe.c (the target) and
//! tests/fixtures/keyring_caller.c (a caller with a secret in its session
//! keyring). Each test asserts that the attack fails and, where it reads a
//! JSON report, that nothing of the run is left.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_nothing_left, json_uid, kv, s, verdict, word};
use safeexec_tests::{
    dump, in_policy_range, json_report, require_root, require_root_exclusive, status_field, stderr,
    stdout, Env, Json, TEST_USER,
};

/// The second review's probe.
fn probe(t: &Env) -> String {
    t.fixture("review2_probe")
}

/// `safeexec --json OPTS --exec PROBE ATTACK...` as the test user; returns
/// the output and the JSON report, after checking that nothing of the run
/// is left.
fn attack(t: &Env, opts: &[&str], attack: &[&str]) -> (Output, Json) {
    let p = probe(t);
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--json", "--exec", &p]);
    args.extend_from_slice(attack);
    let out = t.safeexec(&args);
    let j = json_report(&out);
    assert_nothing_left(json_uid(&j), &dump(&out));
    (out, j)
}

/// Asserts that each of `keys` is `want`, naming every one that is not.
fn assert_each(out: &Output, keys: &[&str], want: &str) {
    let wrong: Vec<String> = keys
        .iter()
        .map(|k| (k, word(out, k)))
        .filter(|(_, v)| v != want)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(wrong.is_empty(), "not {want}: {wrong:?}\n{}", dump(out));
}

/// Runs `argv` as the test user through `setpriv --reuid --regid
/// --init-groups EXTRA -- /usr/bin/env -- ARGV` (as the harness runs
/// safeexec), in PREFIX/work, with only PATH in the environment; kills it
/// and fails after `timeout`.
fn as_test_user(t: &Env, extra: &[&str], argv: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={TEST_USER}"))
        .arg(format!("--regid={TEST_USER}"))
        .arg("--init-groups")
        .args(extra)
        .args(["--", "/usr/bin/env", "--"])
        .args(argv)
        .current_dir(&t.work)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_reader = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_reader = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{shown}: still running after {timeout:?}, killed");
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{shown}: wait failed: {e}"),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// A directory under the host's /tmp, created by the test and removed
/// (recursively, as root) when dropped.
struct HostTmpDir(PathBuf);

impl HostTmpDir {
    /// `/tmp/PREFIX-PID-N`, owned by `owner` (uid, gid), with `mode`.
    fn new(prefix: &str, owner: (u32, u32), mode: u32) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = PathBuf::from(format!("/tmp/{prefix}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        let dir = HostTmpDir(p);
        chown(&dir.0, Some(owner.0), Some(owner.1)).expect("chown");
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(mode)).expect("chmod");
        dir
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Every entry below the directory, recursively.
    fn entries(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut queue = vec![self.0.clone()];
        while let Some(d) = queue.pop() {
            for e in fs::read_dir(&d).expect("list the directory").flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    queue.push(e.path());
                }
                found.push(e.path());
            }
        }
        found.sort();
        found
    }
}

impl Drop for HostTmpDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Keyrings

/// The `caller: ` lines of the keyring wrapper, without that prefix.
fn caller_lines(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|l| l.strip_prefix("caller: ").map(str::to_string))
        .collect()
}

#[test]
fn target_cannot_find_read_or_add_to_the_callers_session_keyring_and_leaves_no_key() {
    let t = require_root!();
    let wrapper = t.fixture("keyring_caller");
    let p = probe(&t);
    let safeexec = s(&t.safeexec).to_string();
    let out = as_test_user(
        &t,
        &[],
        &[
            &wrapper, &safeexec, "--json", "--exec", &p, "keys", "@SECRET@",
        ],
        Duration::from_secs(60),
    );
    let text = stdout(&out);
    let j = json_report(&out);
    assert_nothing_left(json_uid(&j), &dump(&out));
    let lines = caller_lines(&out);
    let secret = kv(&text, "secret").unwrap_or_else(|| panic!("no secret key\n{}", dump(&out)));
    assert_eq!(
        kv(&text, "safeexec_status").as_deref(),
        Some("0"),
        "{}",
        dump(&out)
    );
    verdict(&out, &j, "ok", 0);
    // Inside: every keyring system call fails, and /proc/keys shows no key
    // of the caller.
    assert_each(
        &out,
        &[
            "search",
            "read_session",
            "read_secret",
            "describe_secret",
            "request_key",
            "session_id",
            "add_session",
            "add_user",
            "join_svc",
        ],
        "EPERM",
    );
    assert_eq!(word(&out, "proc_keys"), "ok", "{}", dump(&out));
    assert_eq!(
        word(&out, "proc_keys_secret"),
        "absent",
        "the target sees the caller's key in /proc/keys\n{}",
        dump(&out)
    );
    assert!(
        !text.contains("hunter2") && !text.contains("found="),
        "the target found or read the secret\n{}",
        dump(&out)
    );
    assert!(
        !text.lines().any(|l| l.starts_with("proc_keys_line: ")
            && l.contains(&format!("{:x}", secret.parse::<u64>().unwrap_or(0)))),
        "/proc/keys lists the secret's id\n{}",
        dump(&out)
    );
    // After the run the caller's session keyring holds its secret, and
    // nothing the target added.
    let after: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("after_key="))
        .collect();
    assert_eq!(
        kv(&text, "after_count").as_deref(),
        Some("1"),
        "the caller's session keyring: {after:?}\n{}",
        dump(&out)
    );
    assert_eq!(after.len(), 1, "{}", dump(&out));
    assert!(
        after[0].starts_with(&format!("after_key={secret};user;"))
            && after[0].ends_with(";caller_secret"),
        "the caller's session keyring: {after:?}\n{}",
        dump(&out)
    );
}

// ---------------------------------------------------------------------------
// User namespaces and mounts

#[test]
fn user_namespaces_mounts_and_setns_fail_with_eperm_and_clone3_with_enosys() {
    let t = require_root!();
    let (out, j) = attack(&t, &["--nproc", "2"], &["userns"]);
    verdict(&out, &j, "ok", 0);
    assert_each(
        &out,
        &["unshare_user", "unshare_user_mount", "clone_user"],
        "EPERM",
    );
    assert_each(&out, &["clone3_user", "clone3_plain"], "ENOSYS");
    // mount_badtype, open_tree and setns_not_ns would fail otherwise (EFAULT,
    // success, EINVAL) without the filter: EPERM is its answer.
    assert_each(
        &out,
        &[
            "mount",
            "mount_badtype",
            "umount",
            "fsopen",
            "open_tree",
            "open_tree_clone",
            "setns",
            "setns_not_ns",
        ],
        "EPERM",
    );
}

#[test]
fn threads_and_fork_still_work_with_nproc_2() {
    let t = require_root!();
    let (out, j) = attack(&t, &["--nproc", "2"], &["forkthread"]);
    verdict(&out, &j, "ok", 0);
    assert_each(&out, &["thread", "fork"], "ok");
}

/// The review's attack: with the host's /tmp, an overlayfs in a user
/// namespace over a tmpfs of mode 2777 would copy a set-gid directory up
/// into a world-writable directory of the host. It must end at the unshare.
#[test]
fn overlayfs_copy_up_in_a_user_namespace_leaves_no_setgid_directory_on_the_host() {
    let t = require_root!();
    let scratch = HostTmpDir::new("safeexec-review2-overlay", (0, 0), 0o777);
    let (out, j) = attack(&t, &["--host-tmp"], &["overlay", s(scratch.path())]);
    let uid = json_uid(&j);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "unshare"), "EPERM", "{}", dump(&out));
    assert_eq!(word(&out, "overlay"), "not_tried", "{}", dump(&out));
    let setid: Vec<(PathBuf, u32, u32)> = scratch
        .entries()
        .into_iter()
        .filter_map(|p| {
            let m = fs::symlink_metadata(&p).ok()?;
            (m.mode() & 0o6000 != 0).then(|| (p, m.mode() & 0o7777, m.uid()))
        })
        .collect();
    assert!(
        setid.is_empty(),
        "set-id entries on the host (the run's uid was {uid}): {setid:?}\n{}",
        dump(&out)
    );
    let of_sandbox: Vec<PathBuf> = scratch
        .entries()
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| in_policy_range(m.uid())))
        .collect();
    assert!(
        of_sandbox.is_empty(),
        "the target left entries on the host: {of_sandbox:?}\n{}",
        dump(&out)
    );
}

// ---------------------------------------------------------------------------
// The working directory

/// The command that writes ./LEFT in its working directory.
const WRITE_LEFT: &[&str] = &[
    "--nproc",
    "2",
    "--fsize",
    "10",
    "--",
    "/bin/sh",
    "-c",
    "echo x > ./LEFT",
];

/// A caller's own directory under the host's /tmp, with a subdirectory
/// `sub` (for `--exec_dir sub`), both the test user's and of `mode`.
/// 0755 is how a caller keeps a directory; 0777 is how it lets the run's
/// uid (never its own) write there, so that a write that got through would
/// land on the host.
fn cwd_under_tmp(t: &Env, mode: u32) -> (HostTmpDir, PathBuf) {
    let owner = (t.test_user.uid, t.test_user.gid);
    let cwd = HostTmpDir::new("safeexec-test-cwd", owner, mode);
    let sub = cwd.path().join("sub");
    fs::create_dir(&sub).expect("mkdir sub");
    chown(&sub, Some(owner.0), Some(owner.1)).expect("chown sub");
    fs::set_permissions(&sub, fs::Permissions::from_mode(mode)).expect("chmod sub");
    (cwd, sub)
}

/// Asserts a refusal: exit status 2, one line on stderr containing each
/// of `words`, nothing on stdout.
fn assert_refused(out: &Output, words: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", dump(out));
    assert_eq!(stdout(out), "", "the target ran\n{}", dump(out));
    let err = stderr(out);
    assert_eq!(err.trim().lines().count(), 1, "{}", dump(out));
    for w in words {
        assert!(err.contains(w), "no '{w}' in the refusal\n{}", dump(out));
    }
}

fn args_with<'a>(opts: &[&'a str]) -> Vec<&'a str> {
    opts.iter().chain(WRITE_LEFT).copied().collect()
}

#[test]
fn working_directory_under_the_hosts_tmp_is_refused_unless_host_tmp() {
    let t = require_root!();
    for mode in [0o755, 0o777] {
        let (cwd, sub) = cwd_under_tmp(&t, mode);
        // exec_dir is resolved from the working directory: refused as well.
        for opts in [&[][..], &["--exec_dir", "sub"][..]] {
            let out = t.safeexec_in(cwd.path(), &args_with(opts));
            assert_refused(&out, &["working directory", "--host-tmp"]);
            assert_eq!(
                cwd.entries(),
                vec![sub.clone()],
                "mode {mode:o}, {opts:?}: the run wrote in the caller's directory\n{}",
                dump(&out)
            );
        }
    }
    // With the host's /tmp the directory is the run's to use.
    let (cwd, sub) = cwd_under_tmp(&t, 0o777);
    for (opts, dir) in [
        (&["--host-tmp"][..], cwd.path()),
        (&["--host-tmp", "--exec_dir", "sub"][..], sub.as_path()),
    ] {
        let out = t.safeexec_in(cwd.path(), &args_with(opts));
        assert_eq!(out.status.code(), Some(0), "{opts:?}\n{}", dump(&out));
        let left = dir.join("LEFT");
        assert_eq!(
            fs::read_to_string(&left).ok().as_deref(),
            Some("x\n"),
            "{opts:?}\n{}",
            dump(&out)
        );
        fs::remove_file(&left).expect("remove LEFT");
    }
}

#[test]
fn working_directory_under_the_hosts_tmp_is_refused_when_the_policy_disallows_host_tmp() {
    let t = require_root_exclusive!();
    let packaged = fs::read_to_string(t.repo.join("packaging/policy")).expect("read the policy");
    let mut policy: String = packaged
        .lines()
        .filter(|l| l.split('=').next().map(str::trim) != Some("allow_host_tmp"))
        .map(|l| format!("{l}\n"))
        .collect();
    policy.push_str("allow_host_tmp = false\n");
    t.set_policy(&policy);
    let (cwd, sub) = cwd_under_tmp(&t, 0o777);
    for (opts, words) in [
        (&[][..], &["working directory", "--host-tmp"][..]),
        (&["--host-tmp"][..], &["host's /tmp"][..]),
        (&["--exec_dir", "sub"][..], &["working directory"][..]),
        (
            &["--host-tmp", "--exec_dir", "sub"][..],
            &["host's /tmp"][..],
        ),
    ] {
        let out = t.safeexec_in(cwd.path(), &args_with(opts));
        assert_refused(&out, words);
        assert_eq!(
            cwd.entries(),
            vec![sub.clone()],
            "{opts:?}: the run wrote in the caller's directory\n{}",
            dump(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// Capabilities

#[test]
fn callers_inheritable_and_ambient_capabilities_do_not_reach_the_target() {
    let t = require_root!();
    let caps = [
        "--inh-caps=+net_raw,+sys_admin",
        "--ambient-caps=+net_raw,+sys_admin",
    ];
    // Control: the caller itself has them.
    let control = as_test_user(
        &t,
        &caps,
        &["/bin/cat", "/proc/self/status"],
        Duration::from_secs(30),
    );
    let text = stdout(&control);
    assert_eq!(
        status_field(&text, "CapInh"),
        Some("0000000000202000"),
        "the caller has no inheritable capabilities\n{}",
        dump(&control)
    );
    assert_eq!(
        status_field(&text, "CapAmb"),
        Some("0000000000202000"),
        "the caller has no ambient capabilities\n{}",
        dump(&control)
    );
    let safeexec = s(&t.safeexec).to_string();
    for caps in [&caps[..1], &caps[..]] {
        let out = as_test_user(
            &t,
            caps,
            &[
                &safeexec,
                "--json",
                "--exec",
                "/bin/cat",
                "/proc/self/status",
            ],
            Duration::from_secs(60),
        );
        let j = json_report(&out);
        assert_nothing_left(json_uid(&j), &dump(&out));
        verdict(&out, &j, "ok", 0);
        let text = stdout(&out);
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(
                status_field(&text, cap),
                Some("0000000000000000"),
                "{caps:?}: {cap} of the target\n{}",
                dump(&out)
            );
        }
    }
}
