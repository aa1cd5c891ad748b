//! What the target could gain beyond its uid (DESIGN.md invariant 5, the
//! trust table's row on privilege): nothing through setuid or
//! file-capability programs, nor through capabilities the caller left
//! inheritable or ambient; no set-id file of its own uid (which a later run
//! would get), whatever the system call; no system call the seccomp filter
//! cannot read (openat2, io_uring_setup: ENOSYS) or number (another ABI:
//! SIGSYS); no user namespace, mount or setns (so no overlayfs copy-up
//! leaves a set-gid directory on the host); no key of the caller's session
//! keyring and none of its own left behind; no raised hard rlimit, no core
//! file. Threads and fork keep working.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use safeexec_tests::{
    assert_each, assert_verdict, dump, in_policy_range, json_report, json_uid, kv, path_str,
    require_root, require_root_exclusive, status_field, stderr, stdout, verdict, word, Ctx, Env,
    HostPath, Scratch,
};

// ---------------------------------------------------------------------------
// Set-id and file-capability programs, capabilities the caller left

fn copy_probe(t: &Env, dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    fs::copy(t.fixtures.join("probe"), &path).expect("copy the probe");
    std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown root");
    path_str(&path).to_string()
}

/// Runs `program ids` as the plain test user outside any sandbox.
fn ids_outside(t: &Env, program: &str) -> String {
    stdout(&t.run_program(program, &["ids"]).output())
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn setuid_root_program_gains_nothing() {
    let t = require_root!();
    let scratch = t.scratch("suid");
    let prog = copy_probe(&t, scratch.path(), "suid-probe");
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
    // Control: outside the sandbox the copy does make its caller root.
    let control = ids_outside(&t, &prog);
    assert_eq!(kv(&control, "euid").as_deref(), Some("0"), "control: {control}");
    let out = t.safeexec(&["--json", "--exec", &prog, "ids"]);
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    let uid = json_uid(&j).to_string();
    assert_eq!(word(&out, "euid"), uid, "{}", dump(&out));
    assert_eq!(word(&out, "suid"), uid);
    assert_eq!(word(&out, "shadow"), "EACCES");
    assert_eq!(word(&out, "setuid0"), "EPERM");
    assert_eq!(word(&out, "capeff"), "0000000000000000");
    t.assert_nothing_left(json_uid(&j), &dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn file_capability_program_gains_nothing() {
    let t = require_root!();
    let scratch = t.scratch("fcaps");
    // "+ep": a capability-dumb program (the kernel refuses to start it
    // without every capability it names); "+p": a capability-aware one.
    for (name, caps) in [
        ("fcap-ep", "cap_dac_read_search,cap_setuid,cap_sys_admin+ep"),
        ("fcap-p", "cap_dac_read_search,cap_setuid,cap_sys_admin+p"),
    ] {
        let prog = copy_probe(&t, scratch.path(), name);
        fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).expect("chmod");
        let setcap =
            std::process::Command::new("setcap").args([caps, &prog]).output().unwrap_or_else(|e| {
                panic!("setcap is needed for this test (Debian package libcap2-bin): {e}")
            });
        assert!(setcap.status.success(), "setcap: {}", dump(&setcap));
        if caps.ends_with("+ep") {
            // Control: outside the sandbox the copy reads /etc/shadow.
            let control = ids_outside(&t, &prog);
            assert_eq!(kv(&control, "shadow").as_deref(), Some("ok"), "control: {control}");
        }
        let out = t.safeexec(&["--json", "--exec", &prog, "ids"]);
        let j = json_report(&out);
        t.assert_nothing_left(json_uid(&j), &dump(&out));
        if j["exec_error"] == "Operation not permitted" {
            // Refused by the kernel: it ran nothing at all.
            verdict(&out, &j, "nonzero_exit", 1);
            assert_eq!(stdout(&out), "", "{}", dump(&out));
            continue;
        }
        verdict(&out, &j, "ok", 0);
        assert_eq!(word(&out, "capeff"), "0000000000000000", "{}", dump(&out));
        assert_eq!(word(&out, "capprm"), "0000000000000000", "{}", dump(&out));
        assert_eq!(word(&out, "shadow"), "EACCES");
        assert_eq!(word(&out, "setuid0"), "EPERM");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn callers_inheritable_and_ambient_capabilities_do_not_reach_the_target() {
    let t = require_root!();
    let caps = ["--inh-caps=+net_raw,+sys_admin", "--ambient-caps=+net_raw,+sys_admin"];
    // Control: the caller itself has them.
    let control = t.run_program("/bin/cat", &["/proc/self/status"]).setpriv_options(&caps).output();
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
    for caps in [&caps[..1], &caps[..]] {
        let out = t
            .run(&["--json", "--exec", "/bin/cat", "/proc/self/status"])
            .setpriv_options(caps)
            .output();
        let j = json_report(&out);
        t.assert_nothing_left(json_uid(&j), &dump(&out));
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

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn raising_a_hard_rlimit_fails() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["rlimits"]);
    verdict(&out, &j, "ok", 0);
    for key in ["nofile", "nproc", "cpu", "as", "fsize", "core", "stack", "memlock"] {
        let v = word(&out, key);
        assert!(v == "EPERM" || v == "unlimited", "{key}={v}\n{}", dump(&out));
    }
    assert_eq!(word(&out, "core"), "EPERM");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn crashing_target_dumps_no_core() {
    let t = require_root!();
    // The run's working directory, writable by its uid and granted to it:
    // a core dump would land there.
    let scratch = open_scratch(&t, "crash");
    let dir = path_str(scratch.path());
    let (out, j) = t.attack(&["--bind-rw", dir, "--exec_dir", dir], &["crash"]);
    verdict(&out, &j, "signal", 1);
    assert_eq!(j["signal"], libc::SIGABRT, "{}", dump(&out));
    let cores: Vec<_> = fs::read_dir(scratch.path())
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}

// ---------------------------------------------------------------------------
// The seccomp filter: no set-id file, no unfilterable system call, no
// other ABI

/// A scratch directory every user may write in (as a caller would make one
/// for its program's output).
fn open_scratch(t: &Env, name: &str) -> Scratch {
    let scratch = t.scratch(name);
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    scratch
}

/// `--bind-rw DIR`: the run may write in the caller's directory `dir`
/// (the rest of the host's file system is read-only).
fn bind_rw(dir: &Path) -> [&str; 2] {
    ["--bind-rw", path_str(dir)]
}

/// Every file or directory below `dir` (recursively) that has S_ISUID or
/// S_ISGID, with its mode.
fn setid_entries(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(d) = queue.pop() {
        for e in fs::read_dir(&d).expect("list the scratch directory").flatten() {
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

/// Runs the probe's `setid` attack in a fresh o+w scratch directory.
fn setid_attack(t: &Ctx) -> (Output, Scratch) {
    let scratch = open_scratch(t, "setid");
    let (out, j) = t.attack(&bind_rw(scratch.path()), &["setid", path_str(scratch.path())]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "create_own"), "ok", "{}", dump(&out));
    let left = setid_entries(scratch.path());
    assert!(left.is_empty(), "the target left set-id files on the host: {left:?}\n{}", dump(&out));
    (out, scratch)
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chmod_fchmod_fchmodat_of_its_own_file_to_setuid_or_setgid_fail_with_eperm() {
    let t = require_root!();
    let (out, scratch) = setid_attack(&t);
    let mut keys =
        vec!["fchmod_suid", "fchmod_sgid", "fchmodat_suid", "fchmodat_sgid", "fchmodat2_setid"];
    if cfg!(target_arch = "x86_64") {
        keys.extend(["chmod_suid", "chmod_sgid"]);
    }
    assert_each(&out, &keys, "EPERM");
    // An ordinary chmod still works: 0644 became 0755, and no more.
    assert_eq!(word(&out, "chmod_plain"), "ok", "{}", dump(&out));
    assert_eq!(word(&out, "mode_own"), "755", "{}", dump(&out));
    let mode = fs::metadata(scratch.path().join("own")).expect("the probe's file").mode();
    assert_eq!(mode & 0o7777, 0o755, "mode on the host: {mode:o}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn creating_a_setuid_or_setgid_file_with_open_openat_creat_or_mknod_fails_with_eperm() {
    let t = require_root!();
    let (out, scratch) = setid_attack(&t);
    let mut keys = vec!["openat_suid", "openat_sgid", "otmpfile_suid", "mknodat_suid"];
    if cfg!(target_arch = "x86_64") {
        keys.extend(["open_suid", "creat_setid"]);
    }
    assert_each(&out, &keys, "EPERM");
    for name in ["open_suid", "openat_suid", "openat_sgid", "creat_setid", "mknodat_suid"] {
        assert_eq!(
            word(&out, &format!("mode_{name}")),
            "missing",
            "{name} was created\n{}",
            dump(&out)
        );
        assert!(!scratch.path().join(name).exists(), "{name} exists on the host");
    }
    // Creating an ordinary executable file still works.
    assert_eq!(word(&out, "create_plain"), "ok", "{}", dump(&out));
    assert_eq!(word(&out, "mode_plain"), "755", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn mkdir_with_the_setgid_bit_fails_with_eperm_and_a_plain_mkdir_works() {
    let t = require_root!();
    let (out, scratch) = setid_attack(&t);
    let mut keys = vec!["mkdirat_sgid"];
    if cfg!(target_arch = "x86_64") {
        keys.push("mkdir_sgid");
    }
    assert_each(&out, &keys, "EPERM");
    for name in ["mkdir_sgid", "mkdirat_sgid"] {
        assert!(!scratch.path().join(name).exists(), "{name} exists on the host\n{}", dump(&out));
    }
    assert_eq!(word(&out, "mkdir_plain"), "ok", "{}", dump(&out));
    assert_eq!(word(&out, "mode_dir_plain"), "775", "{}", dump(&out));
}

/// Any user may make the character device 0:0, the whiteout an overlay
/// file system reads as a deleted file: a run left such nodes, with its
/// uid, where it may write on the host (a review of the tenth round), and
/// with a rename that leaves one where the file was (RENAME_WHITEOUT, a
/// review of the eleventh). The filter refuses every device node and that
/// rename (EPERM), not only set-id ones.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_device_node_even_a_whiteout_is_refused_and_none_is_left() {
    let t = require_root!();
    let scratch = open_scratch(&t, "whiteout");
    let node = scratch.path().join("wh");
    let (out, j) = t.attack(&bind_rw(scratch.path()), &["whiteout", path_str(&node)]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "whiteout"), "EPERM", "{}", dump(&out));
    assert_eq!(word(&out, "rename_whiteout"), "EPERM", "{}", dump(&out));
    assert!(fs::symlink_metadata(&node).is_err(), "a node was left on the host");
    use std::os::unix::fs::FileTypeExt;
    for entry in fs::read_dir(scratch.path()).expect("read the scratch directory") {
        let entry = entry.expect("an entry");
        let kind = entry.file_type().expect("its type");
        assert!(
            !kind.is_char_device() && !kind.is_block_device(),
            "a device was left on the host: {}",
            entry.path().display()
        );
    }
}

/// A run may read a host file, but not drop its pages from the page
/// cache: a run evicted chosen pieces of a file another user had cached,
/// and a later run of another uid read the pattern back (a read with
/// RWF_NOWAIT fails on a page not cached; a review of the eleventh round).
/// posix_fadvise's POSIX_FADV_DONTNEED is answered with success and not
/// done: every page of a cached file of root's is still cached after it.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_cannot_drop_a_host_files_pages_from_the_page_cache() {
    let t = require_root!();
    let scratch = open_scratch(&t, "evict");
    let path = scratch.path().join("cached");
    let mut file = fs::File::create(&path).expect("create");
    std::io::Write::write_all(&mut file, &vec![7u8; 1 << 20]).expect("write");
    // Clean pages: a dirty one is never dropped.
    file.sync_all().expect("fsync");
    drop(file);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(uncached_pages(&path), 0, "the file is not cached to begin with");
    let (out, j) = t.attack(&[], &["evict", path_str(&path)]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "evict"), "ok", "{}", dump(&out));
    assert_eq!(uncached_pages(&path), 0, "the run dropped pages of the host's file");
}

/// The file systems' encryption requests leave state past the run: a key
/// added goes into the file system's own keyring (past the filter's
/// refusal of the keyctl family) until it is removed or the file system
/// unmounted, a directory made encrypted stays so, and a salt is written
/// into the super block (a review of the twelfth round, by reading). Each
/// is refused (EPERM), where the kernel itself answers otherwise
/// (EOPNOTSUPP on an ext4 without the feature, ENOTTY on a tmpfs).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_can_neither_add_file_system_encryption_keys_nor_encrypt_a_directory() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["fscrypt"]);
    verdict(&out, &j, "ok", 0);
    let requests = ["set_policy", "get_pwsalt", "add_key", "remove_key", "remove_key_all"];
    assert_each(&out, &requests, "EPERM");
}

/// Watches on the files a run is shown tell it what the host's processes
/// do: a run saw every open of libc and /etc/passwd on the host, the
/// names of the programs other users ran, and devices come and go in /dev
/// (a review of the twelfth round). inotify's and fanotify's inits fail
/// with ENOSYS, as on a kernel without them (fanotify in FID mode is open
/// to any user since Linux 5.13), and dnotify (fcntl's F_NOTIFY: a signal
/// for each read or run in a directory; a third review counted the host's
/// execs in /usr/bin) with EPERM.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_can_watch_no_file_of_the_host() {
    let t = require_root!();
    for root in ["host", "minimal"] {
        let (out, j) = t.attack(&["--root", root], &["watch"]);
        verdict(&out, &j, "ok", 0);
        assert_each(&out, &["inotify", "fanotify"], "ENOSYS");
        assert_each(&out, &["dnotify"], "EPERM");
    }
}

/// The OOM killer picks the run's processes first (oom_score_adj 1000,
/// whatever the caller's). (Its sessions: `cgroups::a_session_the_run_starts_stays_in_its_weighted_cpu_cgroup`
/// and `without_cgroups_the_run_may_start_no_session_and_its_autogroup_is_at_its_niceness`.)
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_run_is_the_oom_killers_first_choice() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nproc", "2"], &["standing"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "oom_score_adj"), "1000", "{}", dump(&out));
}

/// A child cloned with CLONE_PARENT is its parent's sibling: a child of
/// the target's would be init's to reap, and a run that cloned so in a
/// loop had init, root at niceness 0 outside the run's cgroups, spend 0.3
/// to 0.45 CPU-seconds per CPU-second of its own (a review of the
/// thirteenth round). The filter refuses it.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_cannot_hand_its_children_to_init() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nproc", "2"], &["cloneparent"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "clone_parent"), "EPERM", "{}", dump(&out));
    // Nor its threads, which a thread that asks its parent to trace it
    // hands init to reap (a later review of the round: a quarter of a CPU).
    let (out, j) = t.attack(&["--nproc", "2"], &["traceme"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "traceme"), "EPERM", "{}", dump(&out));
}

/// Only the run's own processes are the OOM killer's first choice: set in
/// the helper, oom_score_adj 1000 made the supervisor and init (which stay
/// in the caller's memory cgroup) the first choice there, and a caller
/// sharing that cgroup with another filled it and had the other's runs
/// killed first (a last review of the twelfth round). They keep the
/// caller's value (0 here); the target has 1000.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn only_the_runs_own_processes_are_the_oom_killers_first_choice() {
    let t = require_root!();
    let run = t.run(&["--clock", "2", "--exec", &t.fixture("sleep_forever")]).spawn();
    let (sup, init, target) = safeexec_tests::run_pids(run.id());
    let adj = |pid: u32| {
        let text = fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap_or_default();
        text.trim().to_string()
    };
    let got = [adj(sup), adj(init), adj(target)];
    let out = run.wait();
    assert!(stderr(&out).contains("Time Limit Exceeded"), "{}", dump(&out));
    assert_eq!(got, ["0", "0", "1000"], "oom_score_adj of the supervisor, init and target");
}

/// Where a run has no CPU cgroup of its own (the policy's `cgroup = off`),
/// its autogroup is at its niceness as it starts (a hostile run may set it
/// back to 0 then: "Known gaps"), and none of its processes may start a
/// session: with the kernel's autogroups (on here) a task's niceness ranks
/// it only within its session, and each session a run's processes started
/// competed at niceness 0 with each of the host's (a review of the twelfth
/// round).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn without_cgroups_the_run_may_start_no_session_and_its_autogroup_is_at_its_niceness() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("cgroup", "off")]));
    for (args, nice) in
        [(&["--nproc", "2"][..], "16"), (&["--nproc", "2", "--niceness", "19"][..], "19")]
    {
        let (out, j) = t.attack(args, &["standing"]);
        verdict(&out, &j, "ok", 0);
        assert_eq!(word(&out, "autogroup_nice"), nice, "{}", dump(&out));
        assert_eq!(word(&out, "setsid"), "EPERM", "{}", dump(&out));
    }
}

/// How many 4 KiB pieces of `path` are not in the page cache: a read with
/// RWF_NOWAIT fails with EAGAIN on those (and reads nothing in).
fn uncached_pages(path: &Path) -> usize {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(path).expect("open");
    let len = file.metadata().expect("stat").len();
    let mut buf = [0u8; 4096];
    let mut missing = 0;
    for offset in (0..len).step_by(buf.len()) {
        let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: one iovec over a buffer of ours that lives through the call.
        let n =
            unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset as i64, libc::RWF_NOWAIT) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "preadv2: {e}");
            missing += 1;
        }
    }
    missing
}

/// Every filter a program attaches to a socket, or installs on itself
/// with seccomp, is compiled into one budget of the whole machine
/// (net.core.bpf_jit_limit), past which no process without privilege gets
/// one, the next run's own seccomp filter included; none of it is charged
/// to the run's memory (a review of the tenth round took 140 MiB of it in
/// one run). The filter refuses both (EPERM).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn socket_filters_and_seccomp_filters_of_the_programs_own_are_refused() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["filters"]);
    verdict(&out, &j, "ok", 0);
    assert_each(&out, &["so_attach_filter", "prctl_seccomp", "seccomp_filter"], "EPERM");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn openat2_creating_a_setuid_file_io_uring_setup_and_io_setup_fail_with_enosys() {
    let t = require_root!();
    let scratch = open_scratch(&t, "nosys");
    let (out, j) = t.attack(&bind_rw(scratch.path()), &["nosys", path_str(scratch.path())]);
    verdict(&out, &j, "ok", 0);
    assert_each(&out, &["openat2", "io_uring_setup", "io_setup"], "ENOSYS");
    assert_eq!(word(&out, "openat2_file"), "missing", "{}", dump(&out));
    let left = setid_entries(scratch.path());
    assert!(left.is_empty(), "set-id files on the host: {left:?}");
}

/// A system call through another ABI's entry must kill the target: the
/// filter only knows the native numbers.
#[cfg(target_arch = "x86_64")]
fn assert_killed_by_sigsys(t: &Env, attack: &str) {
    let p = t.probe();
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
#[ignore = "needs root: sudo bash tests/run.sh"]
fn int_0x80_system_call_is_killed_with_sigsys() {
    let t = require_root!();
    assert_killed_by_sigsys(&t, "int80");
}

#[cfg(target_arch = "x86_64")]
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn x32_system_call_is_killed_with_sigsys() {
    let t = require_root!();
    assert_killed_by_sigsys(&t, "x32");
}

// ---------------------------------------------------------------------------
// User namespaces and mounts

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn user_namespaces_mounts_and_setns_fail_with_eperm_and_clone3_with_enosys() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nproc", "2"], &["userns"]);
    verdict(&out, &j, "ok", 0);
    assert_each(&out, &["unshare_user", "unshare_user_mount", "clone_user"], "EPERM");
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
#[ignore = "needs root: sudo bash tests/run.sh"]
fn threads_and_fork_still_work_with_nproc_2() {
    let t = require_root!();
    let (out, j) = t.attack(&["--nproc", "2"], &["forkthread"]);
    verdict(&out, &j, "ok", 0);
    assert_each(&out, &["thread", "fork"], "ok");
}

/// The attack: with the host's /tmp, an overlayfs in a user
/// namespace over a tmpfs of mode 2777 would copy a set-gid directory up
/// into a world-writable directory of the host. It must end at the unshare.
/// (The host's /tmp is read-only in a run: the world-writable directory
/// there is one the caller grants with --bind-rw.)
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn overlayfs_copy_up_in_a_user_namespace_leaves_no_setgid_directory_on_the_host() {
    let t = require_root!();
    let scratch = HostPath::dir("/tmp", "overlay", t.test_user, 0o777);
    let (out, j) = t.attack(
        &["--host-tmp", "--bind-rw", scratch.str()],
        &["overlay", path_str(scratch.path())],
    );
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
// Keyrings

/// The `caller: ` lines of the keyring wrapper, without that prefix.
fn caller_lines(out: &Output) -> Vec<String> {
    stdout(out).lines().filter_map(|l| l.strip_prefix("caller: ").map(str::to_string)).collect()
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_cannot_find_read_or_add_to_the_callers_session_keyring_and_leaves_no_key() {
    let t = require_root!();
    let wrapper = t.fixture("keyring_caller");
    let p = t.probe();
    let safeexec = path_str(&t.safeexec).to_string();
    let out =
        t.run_program(&wrapper, &[&safeexec, "--json", "--exec", &p, "keys", "@SECRET@"]).output();
    let text = stdout(&out);
    let j = json_report(&out);
    t.assert_nothing_left(json_uid(&j), &dump(&out));
    let lines = caller_lines(&out);
    let secret = kv(&text, "secret").unwrap_or_else(|| panic!("no secret key\n{}", dump(&out)));
    assert_eq!(kv(&text, "safeexec_status").as_deref(), Some("0"), "{}", dump(&out));
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
    let after: Vec<&String> = lines.iter().filter(|l| l.starts_with("after_key=")).collect();
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
