//! The attacks of the independent review, each against the mechanism that
//! now stops it (docs/threat-model.md):
//!
//! - the target's seccomp filter (`helper/src/seccomp.rs`): no setuid or
//!   setgid file or directory, whatever the system call; openat2 and
//!   io_uring_setup, whose modes a filter cannot see, fail with ENOSYS; a
//!   system call of another ABI (32-bit `int $0x80`, x32) kills the target;
//! - init's ids (`sandbox::init_run`): root in its real, effective and saved
//!   uid and gid and no groups, so that the caller cannot stop it and outlive
//!   the wall-clock limit;
//! - the private scratch tmpfs (`sandbox::private_mounts`): the host's /tmp,
//!   /var/tmp, /dev/shm and /run are not the run's unless `--host-tmp` asks
//!   for the first two; the tmpfs is as large as `--fsize`, no larger than
//!   `--mem`, at least 4 KiB, and gone with the run;
//! - the chroot jail as a detached copy of the directory's own mount
//!   (`sys::clone_mount_of`): no /proc, no mount below the jail, and no
//!   directory of another mount namespace.
//!
//! The hostile program is tests/fixtures/review_probe.c. Each test asserts
//! that the attack fails and, where it reads a JSON report, that nothing of
//! the run is left. The policy-rewriting attacks of the review are in
//! attack_policy.rs.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_nothing_left, json_uid, s, signal, verdict, wait_for_child, word};
use safeexec_tests::{
    assert_verdict, dump, in_policy_range, json_report, process, require_root,
    require_root_exclusive, status_field, stderr, stdout, Env, Ids, Json, Scratch, TEST_USER,
};

/// The review's probe (dynamically linked).
fn probe(t: &Env) -> String {
    t.fixture("review_probe")
}

/// `safeexec --json OPTS --exec PROGRAM ATTACK...` as the test user; returns
/// the output and the JSON report, after checking that nothing of the run
/// is left.
fn attack_with(t: &Env, program: &str, opts: &[&str], attack: &[&str]) -> (Output, Json) {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--json", "--exec", program]);
    args.extend_from_slice(attack);
    let out = t.safeexec(&args);
    let j = json_report(&out);
    assert_nothing_left(json_uid(&j), &dump(&out));
    (out, j)
}

/// [`attack_with`] the review's probe.
fn attack(t: &Env, opts: &[&str], attack: &[&str]) -> (Output, Json) {
    attack_with(t, &probe(t), opts, attack)
}

fn num(out: &Output, key: &str) -> u64 {
    word(out, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key}= is not a number\n{}", dump(out)))
}

/// The probe's `LABEL PATH=RESULT` line for `path`.
fn result_for(out: &Output, label: &str, path: &str) -> String {
    let prefix = format!("{label} {path}=");
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("no '{prefix}' line from the probe\n{}", dump(out)))
}

/// A path of the host that the test creates and must remove again (also
/// when it fails); a name unique to this test process.
struct HostPath(PathBuf);

impl HostPath {
    fn new(dir: &str, what: &str) -> Self {
        let p = PathBuf::from(format!(
            "{dir}/safeexec-review-{what}-{}",
            std::process::id()
        ));
        let _ = fs::remove_file(&p);
        HostPath(p)
    }

    fn str(&self) -> &str {
        s(&self.0)
    }
}

impl Drop for HostPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A scratch directory every user may write in (as a caller would make one
/// for its program's output).
fn open_scratch(t: &Env, name: &str) -> Scratch {
    let scratch = t.scratch(name);
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    scratch
}

/// Every file or directory below `dir` (recursively) that has S_ISUID or
/// S_ISGID, with its mode.
fn setid_entries(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(d) = queue.pop() {
        for e in fs::read_dir(&d)
            .expect("list the scratch directory")
            .flatten()
        {
            let m = fs::symlink_metadata(e.path()).expect("lstat");
            if m.mode() & 0o6000 != 0 {
                found.push((e.path(), m.mode() & 0o7777));
            }
            if m.is_dir() {
                queue.push(e.path());
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// The seccomp filter: no set-id file, no unfilterable system call, no
// other ABI

/// Runs the probe's `setid` attack in a fresh o+w scratch directory.
fn setid_attack(t: &Env) -> (Output, Scratch) {
    let scratch = open_scratch(t, "setid");
    let (out, j) = attack(t, &[], &["setid", s(scratch.path())]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "create_own"), "ok", "{}", dump(&out));
    let left = setid_entries(scratch.path());
    assert!(
        left.is_empty(),
        "the target left set-id files on the host: {left:?}\n{}",
        dump(&out)
    );
    (out, scratch)
}

fn assert_refused_with(out: &Output, keys: &[&str], errno: &str) {
    let wrong: Vec<String> = keys
        .iter()
        .map(|k| (k, word(out, k)))
        .filter(|(_, v)| v != errno)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "not refused with {errno}: {wrong:?}\n{}",
        dump(out)
    );
}

#[test]
fn chmod_fchmod_fchmodat_of_its_own_file_to_setuid_or_setgid_fail_with_eperm() {
    let t = require_root!();
    let (out, scratch) = setid_attack(&t);
    let mut keys = vec![
        "fchmod_suid",
        "fchmod_sgid",
        "fchmodat_suid",
        "fchmodat_sgid",
        "fchmodat2_setid",
    ];
    if cfg!(target_arch = "x86_64") {
        keys.extend(["chmod_suid", "chmod_sgid"]);
    }
    assert_refused_with(&out, &keys, "EPERM");
    // An ordinary chmod still works: 0644 became 0755, and no more.
    assert_eq!(word(&out, "chmod_plain"), "ok", "{}", dump(&out));
    assert_eq!(word(&out, "mode_own"), "755", "{}", dump(&out));
    let mode = fs::metadata(scratch.path().join("own"))
        .expect("the probe's file")
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "mode on the host: {mode:o}");
}

#[test]
fn creating_a_setuid_or_setgid_file_with_open_openat_creat_or_mknod_fails_with_eperm() {
    let t = require_root!();
    let (out, scratch) = setid_attack(&t);
    let mut keys = vec![
        "openat_suid",
        "openat_sgid",
        "otmpfile_suid",
        "mknodat_suid",
    ];
    if cfg!(target_arch = "x86_64") {
        keys.extend(["open_suid", "creat_setid"]);
    }
    assert_refused_with(&out, &keys, "EPERM");
    for name in [
        "open_suid",
        "openat_suid",
        "openat_sgid",
        "creat_setid",
        "mknodat_suid",
    ] {
        assert_eq!(
            word(&out, &format!("mode_{name}")),
            "missing",
            "{name} was created\n{}",
            dump(&out)
        );
        assert!(
            !scratch.path().join(name).exists(),
            "{name} exists on the host"
        );
    }
    // Creating an ordinary executable file still works.
    assert_eq!(word(&out, "create_plain"), "ok", "{}", dump(&out));
    assert_eq!(word(&out, "mode_plain"), "755", "{}", dump(&out));
}

#[test]
fn mkdir_with_the_setgid_bit_fails_with_eperm_and_a_plain_mkdir_works() {
    let t = require_root!();
    let (out, scratch) = setid_attack(&t);
    let mut keys = vec!["mkdirat_sgid"];
    if cfg!(target_arch = "x86_64") {
        keys.push("mkdir_sgid");
    }
    assert_refused_with(&out, &keys, "EPERM");
    for name in ["mkdir_sgid", "mkdirat_sgid"] {
        assert!(
            !scratch.path().join(name).exists(),
            "{name} exists on the host\n{}",
            dump(&out)
        );
    }
    assert_eq!(word(&out, "mkdir_plain"), "ok", "{}", dump(&out));
    assert_eq!(word(&out, "mode_dir_plain"), "775", "{}", dump(&out));
}

#[test]
fn openat2_creating_a_setuid_file_and_io_uring_setup_fail_with_enosys() {
    let t = require_root!();
    let scratch = open_scratch(&t, "nosys");
    let (out, j) = attack(&t, &[], &["nosys", s(scratch.path())]);
    verdict(&out, &j, "ok", 0);
    assert_refused_with(&out, &["openat2", "io_uring_setup"], "ENOSYS");
    assert_eq!(word(&out, "openat2_file"), "missing", "{}", dump(&out));
    let left = setid_entries(scratch.path());
    assert!(left.is_empty(), "set-id files on the host: {left:?}");
}

/// A system call through another ABI's entry must kill the target: the
/// filter only knows the native numbers.
#[cfg(target_arch = "x86_64")]
fn assert_killed_by_sigsys(t: &Env, attack: &str) {
    let p = probe(t);
    let out = t.safeexec(&["--exec", p.as_str(), attack]);
    assert_verdict(&out, "Command terminated by signal (31: SIGSYS)", 1);
    assert!(
        stdout(&out).contains(&format!("before={attack}")),
        "the probe never tried\n{}",
        dump(&out)
    );
    assert!(
        !stdout(&out).contains(&format!("{attack}=")),
        "the system call returned\n{}",
        dump(&out)
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn int_0x80_system_call_is_killed_with_sigsys() {
    let t = require_root!();
    assert_killed_by_sigsys(&t, "int80");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_system_call_is_killed_with_sigsys() {
    let t = require_root!();
    assert_killed_by_sigsys(&t, "x32");
}

// ---------------------------------------------------------------------------
// Init's ids: the caller cannot stop the run's pid 1

/// `kill(pid, sig)` from a child that has become `user` (real, effective
/// and saved ids, its own groups dropped); Err(errno) when refused.
fn kill_as(user: Ids, pid: u32, sig: i32) -> Result<(), i32> {
    // SAFETY: the child only makes async-signal-safe system calls
    // (setgroups, setresgid, setresuid, kill, _exit) before it exits.
    unsafe {
        match libc::fork() {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                let gid = user.gid;
                if libc::setgroups(1, &gid) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(user.uid, user.uid, user.uid) != 0
                {
                    libc::_exit(200);
                }
                let r = libc::kill(pid as i32, sig);
                let e = *libc::__errno_location();
                libc::_exit(if r == 0 { 0 } else { e.clamp(1, 199) });
            }
            child => {
                let mut status = 0;
                assert_eq!(libc::waitpid(child, &mut status, 0), child, "waitpid");
                assert!(libc::WIFEXITED(status), "the killer died: {status:#x}");
                match libc::WEXITSTATUS(status) {
                    0 => Ok(()),
                    200 => panic!("the killer could not become {TEST_USER}"),
                    e => Err(e),
                }
            }
        }
    }
}

#[test]
fn caller_cannot_sigstop_or_sigkill_init_to_outlive_the_wall_limit() {
    let t = require_root!();
    let started = Instant::now();
    let spawned = t.run(&["--clock", "2", "--", "/bin/sleep", "30"]).spawn();
    let frontend = spawned.id();
    let wait = Duration::from_secs(10);
    let sup = wait_for_child(frontend, |_| true, wait).expect("the helper started");
    let init = wait_for_child(sup, |_| true, wait).expect("init started");
    // Once the target runs, init has set its ids.
    wait_for_child(init, in_policy_range, wait).expect("the target started");
    assert_eq!(
        process(sup).map(|p| p.uid),
        Some(t.test_user.uid),
        "the supervisor does not run as the caller"
    );
    let status = fs::read_to_string(format!("/proc/{init}/status")).expect("init's status");
    let ids = |key: &str| {
        status_field(&status, key)
            .unwrap_or("")
            .split_whitespace()
            .take(3)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let stop = kill_as(t.test_user, init, libc::SIGSTOP);
    let kill = kill_as(t.test_user, init, libc::SIGKILL);
    if stop.is_ok() {
        // Let the run go on to its end, whichever way.
        signal(init, libc::SIGCONT);
    }
    let out = spawned.wait(Duration::from_secs(30));
    let elapsed = started.elapsed();
    assert_eq!(ids("Uid"), ["0", "0", "0"], "init's uids\n{status}");
    assert_eq!(ids("Gid"), ["0", "0", "0"], "init's gids\n{status}");
    assert_eq!(
        status_field(&status, "Groups"),
        Some(""),
        "init's groups\n{status}"
    );
    assert_eq!(
        stop,
        Err(libc::EPERM),
        "the caller stopped init\n{}",
        dump(&out)
    );
    assert_eq!(
        kill,
        Err(libc::EPERM),
        "the caller killed init\n{}",
        dump(&out)
    );
    assert_verdict(&out, "Time Limit Exceeded", 1);
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "a 2 s wall limit ended after {elapsed:?}\n{}",
        dump(&out)
    );
}

// ---------------------------------------------------------------------------
// Private scratch directories by default

#[test]
fn world_readable_file_in_the_hosts_tmp_is_invisible_by_default_and_visible_with_host_tmp() {
    let t = require_root!();
    let secret = format!("review secret {}\n", std::process::id());
    let files: Vec<HostPath> = ["/tmp", "/var/tmp", "/dev/shm", "/run"]
        .into_iter()
        .map(|dir| {
            let f = HostPath::new(dir, "secret");
            fs::write(&f.0, &secret).expect("write the host's file");
            fs::set_permissions(&f.0, fs::Permissions::from_mode(0o644)).expect("chmod");
            f
        })
        .collect();
    let seen = |host_tmp: bool| -> Vec<(String, String)> {
        files
            .iter()
            .map(|f| {
                let mut args = vec!["--exec", "/bin/cat", f.str()];
                if host_tmp {
                    args.insert(0, "--host-tmp");
                }
                let out = t.safeexec(&args);
                let what = if stdout(&out) == secret {
                    "read".to_string()
                } else {
                    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
                    "not found".to_string()
                };
                (f.str().to_string(), what)
            })
            .collect()
    };
    let default = seen(false);
    assert!(
        default.iter().all(|(_, w)| w == "not found"),
        "without --host-tmp: {default:?}"
    );
    let host = seen(true);
    let want: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let keeps = f.str().starts_with("/tmp/") || f.str().starts_with("/var/tmp/");
            let w = if keeps { "read" } else { "not found" };
            (f.str().to_string(), w.to_string())
        })
        .collect();
    assert_eq!(host, want, "with --host-tmp");
}

/// A listening unix socket of the host, any user may connect to it.
struct HostSocket {
    _listener: UnixListener,
    path: HostPath,
}

fn host_socket(dir: &str) -> HostSocket {
    let path = HostPath::new(dir, "sock");
    let listener = UnixListener::bind(&path.0).expect("bind the host's socket");
    fs::set_permissions(&path.0, fs::Permissions::from_mode(0o777)).expect("chmod the socket");
    HostSocket {
        _listener: listener,
        path,
    }
}

#[test]
fn unix_socket_listening_under_the_hosts_run_cannot_be_connected() {
    let t = require_root!();
    let sock = host_socket("/run");
    for opts in [&[][..], &["--host-tmp"][..]] {
        let (out, j) = attack(&t, opts, &["connect", sock.path.str()]);
        verdict(&out, &j, "ok", 0);
        assert_eq!(
            word(&out, "connect"),
            "ENOENT",
            "{opts:?}: the host's /run reached\n{}",
            dump(&out)
        );
    }
}

#[test]
fn filling_tmp_or_dev_shm_hits_enospc_at_the_fsize_bound_and_leaves_nothing_on_the_host() {
    let t = require_root!();
    let prefix = format!("safeexec-review-fill-{}", std::process::id());
    for dir in ["/tmp", "/dev/shm"] {
        // Four files of 512 KiB, each under the 1 MiB file-size limit: only
        // the size of the file system can stop them.
        let (out, j) = attack(
            &t,
            &["--fsize", "1024"],
            &["fill", dir, &prefix, "512", "4"],
        );
        let landed: Vec<PathBuf> = (0..4)
            .map(|n| PathBuf::from(format!("{dir}/{prefix}.{n}")))
            .filter(|p| p.exists())
            .collect();
        for p in &landed {
            let _ = fs::remove_file(p);
        }
        verdict(&out, &j, "ok", 0);
        assert!(
            landed.is_empty(),
            "the fill landed in the host's {dir}: {landed:?}"
        );
        assert_eq!(word(&out, "error"), "ENOSPC", "{dir}\n{}", dump(&out));
        let wrote = num(&out, "wrote");
        assert!(
            (512 * 1024..=1024 * 1024).contains(&wrote),
            "{dir}: wrote {wrote} bytes in a tmpfs of 1024 KiB\n{}",
            dump(&out)
        );
    }
}

#[test]
fn scratch_tmpfs_is_sized_by_fsize_capped_by_mem_and_at_least_4_kib() {
    let t = require_root!();
    for (opts, want_kib) in [
        (&["--fsize", "1024"][..], 1024),
        (&["--fsize", "0"][..], 4),
        (&["--fsize", "1"][..], 4),
        (&["--mem", "32768", "--fsize", "1048576"][..], 32768),
    ] {
        for dir in ["/tmp", "/var/tmp", "/dev/shm", "/run"] {
            let (out, j) = attack(&t, opts, &["statfs", dir]);
            verdict(&out, &j, "ok", 0);
            assert_eq!(
                num(&out, "size_kib"),
                want_kib,
                "{opts:?} {dir}\n{}",
                dump(&out)
            );
        }
    }
    // And the memory cap holds against writes too.
    let prefix = format!("safeexec-review-memfill-{}", std::process::id());
    let (out, j) = attack(
        &t,
        &["--mem", "32768", "--fsize", "1048576"],
        &["fill", "/dev/shm", &prefix, "1024", "64"],
    );
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "error"), "ENOSPC", "{}", dump(&out));
    let wrote = num(&out, "wrote");
    assert!(
        (16 << 20..=32 << 20).contains(&wrote),
        "wrote {wrote} bytes under --mem 32768\n{}",
        dump(&out)
    );
}

#[test]
fn target_cannot_leave_a_file_in_the_hosts_tmp_var_tmp_dev_shm_or_run() {
    let t = require_root!();
    let paths: Vec<HostPath> = ["/tmp", "/var/tmp", "/dev/shm", "/run"]
        .into_iter()
        .map(|d| HostPath::new(d, "left"))
        .collect();
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    let (out, j) = attack(&t, &["--fsize", "1"], &args);
    verdict(&out, &j, "ok", 0);
    for p in &paths {
        assert_eq!(
            result_for(&out, "leave", p.str()),
            "ok",
            "the probe could not even write {} in its own scratch\n{}",
            p.str(),
            dump(&out)
        );
    }
    let landed: Vec<&str> = paths
        .iter()
        .filter(|p| p.0.exists())
        .map(HostPath::str)
        .collect();
    assert!(landed.is_empty(), "left on the host: {landed:?}");
}

/// `--chroot_dir /` would be a jail of the root file system: what the host
/// keeps in world-writable directories of that file system (here /tmp and
/// /var/tmp, when they are no mounts of their own, and /run's sockets)
/// would be the run's. A jail must be the caller's own directory (or one the
/// policy lists, then read-only): / is refused, and nothing runs.
#[test]
fn chroot_dir_slash_cannot_leave_a_file_in_the_hosts_tmp_or_reach_the_hosts_run() {
    let t = require_root!();
    let paths: Vec<HostPath> = ["/tmp", "/var/tmp"]
        .into_iter()
        .map(|d| HostPath::new(d, "chroot-left"))
        .collect();
    let sock = host_socket("/run");
    let p = probe(&t);
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    let leave: Vec<&str> = ["--fsize", "1", "--chroot_dir", "/", "--exec", &p]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let out = t.safeexec(&leave);
    let connect = t.safeexec(&[
        "--chroot_dir",
        "/",
        "--exec",
        &p,
        "connect",
        sock.path.str(),
    ]);
    for out in [&out, &connect] {
        assert_eq!(out.status.code(), Some(2), "{}", dump(out));
        let err = stderr(out);
        assert_eq!(err.trim().lines().count(), 1, "{}", dump(out));
        assert!(err.contains("must belong to the caller"), "{}", dump(out));
        assert!(
            !stdout(out).contains("connect"),
            "the probe ran\n{}",
            dump(out)
        );
    }
    let landed: Vec<&str> = paths
        .iter()
        .filter(|p| p.0.exists())
        .map(HostPath::str)
        .collect();
    assert!(landed.is_empty(), "left on the host: {landed:?}");
}

/// A jail the policy lists but the caller does not own (here the whole root
/// file system, as a careless admin might list it) is shown read-only and
/// without the mounts below it: no host process in /proc, nothing written.
#[test]
fn jail_the_caller_does_not_own_is_read_only_and_shows_no_host_mount() {
    let t = require_root_exclusive!();
    let text = std::fs::read_to_string(&t.policy).expect("read the policy");
    t.set_policy(&format!("{text}\nchroot_roots = /\n"));
    let paths: Vec<HostPath> = ["/tmp", "/var/tmp"]
        .into_iter()
        .map(|d| HostPath::new(d, "ro-jail-left"))
        .collect();
    let p = probe(&t);
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    let (out, j) = attack_with(&t, &p, &["--fsize", "1", "--chroot_dir", "/"], &args);
    verdict(&out, &j, "ok", 0);
    for p in &paths {
        assert_ne!(
            result_for(&out, "leave", p.str()),
            "ok",
            "wrote {} in a jail that is not the caller's\n{}",
            p.str(),
            dump(&out)
        );
        assert!(!p.0.exists(), "left on the host: {}", p.str());
    }
    let (out, j) = attack_with(&t, &p, &["--chroot_dir", "/"], &["list", "/proc"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(
        num(&out, "entries"),
        0,
        "/proc of the jail is not empty\n{}",
        dump(&out)
    );
}

// ---------------------------------------------------------------------------
// Chroot: a detached copy of the jail's own mount

/// A tmpfs mounted (in the host's mount namespace) on a directory of a
/// jail; unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(dir: &Path) -> Self {
        let target = std::ffi::CString::new(s(dir)).expect("path");
        // SAFETY: mount with NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=64k,mode=755".as_ptr().cast(),
            )
        };
        assert_eq!(
            r,
            0,
            "mount a tmpfs on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        Mounted(dir.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Ok(target) = std::ffi::CString::new(s(&self.0)) {
            // SAFETY: umount2 with a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[test]
fn mount_below_the_chroot_dir_is_not_visible_in_the_jail() {
    let t = require_root!();
    let scratch = t.scratch("submount");
    let jail = scratch.dir("jail", 0o755);
    scratch.copy_in(&t.fixtures.join("review_probe-static"), "jail/probe", 0o755);
    let sub = scratch.dir("jail/sub", 0o755);
    scratch.file("jail/sub/under", b"the jail's own file\n", 0o644);
    let mounted = Mounted::tmpfs(&sub);
    fs::write(sub.join("marker"), b"a host mount\n").expect("write in the tmpfs");
    assert!(
        !sub.join("under").exists(),
        "the tmpfs does not hide 'under'"
    );
    let (out, j) = attack_with(
        &t,
        "/probe",
        &["--chroot_dir", s(&jail)],
        &["exists", "/sub/marker", "/sub/under"],
    );
    drop(mounted);
    verdict(&out, &j, "ok", 0);
    assert_eq!(
        result_for(&out, "exists", "/sub/marker"),
        "ENOENT",
        "the mount below the jail is visible\n{}",
        dump(&out)
    );
    assert_eq!(
        result_for(&out, "exists", "/sub/under"),
        "yes",
        "the jail's own directory is hidden\n{}",
        dump(&out)
    );
}

/// `setpriv` as the test user: the command line prefix.
fn as_test_user() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={TEST_USER}"),
        &format!("--regid={TEST_USER}"),
        "--init-groups",
        "--",
    ]);
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    cmd
}

/// Whether the test user may create a user and mount namespace.
fn user_namespaces_available() -> Result<(), String> {
    let out = as_test_user()
        .args(["unshare", "--user", "--map-root-user", "--mount", "true"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unshare --user --map-root-user --mount: {}",
            dump(&out)
        ))
    }
}

#[test]
fn chroot_dir_of_another_mount_namespace_is_refused() {
    let t = require_root!();
    if let Err(why) = user_namespaces_available() {
        // Not a failure of the helper: the attack needs an unprivileged
        // user namespace, which this machine does not give.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (unprivileged user namespaces are unavailable): \
             chroot_dir_of_another_mount_namespace_is_refused: {why}"
        );
        return;
    }
    let scratch = t.scratch("otherns");
    let dir = scratch.dir("mnt", 0o755);
    let probe_static = t.fixture("review_probe-static");
    // In a user and mount namespace of the test user's own: a tmpfs on the
    // scratch directory, a jail in it, then wait.
    let script = format!(
        "mount -t tmpfs none {d} && mkdir {d}/jail && cp {p} {d}/jail/probe && echo ready && exec sleep 60",
        d = s(&dir),
        p = probe_static
    );
    let mut holder = as_test_user()
        .args([
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
        ])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the namespace holder");
    let (tx, rx) = mpsc::channel();
    let holder_out = holder.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(holder_out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let ready = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let through_proc = format!("/proc/{}/root{}/jail", holder.id(), s(&dir));
    let seen = Path::new(&through_proc).join("probe").exists();
    let out = if ready.trim() == "ready" && seen {
        Some(t.safeexec(&[
            "--chroot_dir",
            &through_proc,
            "--exec",
            "/probe",
            "list",
            "/",
        ]))
    } else {
        None
    };
    let _ = holder.kill();
    let holder_status = holder.wait().expect("wait for the holder");
    let Some(out) = out else {
        panic!(
            "the namespace holder did not get ready ({ready:?}, jail seen: {seen}; {holder_status})"
        );
    };
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert_eq!(stdout(&out), "", "the target ran\n{}", dump(&out));
    let err = stderr(&out);
    assert!(err.contains("another mount namespace"), "{}", dump(&out));
    assert_eq!(err.trim().lines().count(), 1, "{}", dump(&out));
}
