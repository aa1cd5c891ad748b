//! No path the caller names is opened with root's rights (DESIGN.md
//! invariant 4, and the trust table's "files it could not open itself"):
//! the frontend opens the chroot directory as the caller and passes it as
//! descriptor 5; the helper checks it against the policy's roots, takes the
//! jail as a detached copy of the directory's own mount (no /proc, no mount
//! below it, nothing of another mount namespace) and mounts a jail the
//! caller does not own read-only; and the target, as its own uid, can
//! neither read nor write what is not its to read or write.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use safeexec_tests::{
    dump, frame, host_socket, num, path_str, request, require_root, require_root_exclusive,
    result_for, stderr, stdout, verdict, word, Env, HostPath, Input,
};
use shared::Request;

// ---------------------------------------------------------------------------
// The chroot descriptor

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_asked_without_its_descriptor_is_refused() {
    let t = require_root!();
    let r = Request { chroot: true, ..request(&["/bin/true"]) };
    let line = t.direct().exchange(&frame(&r)).refusal();
    assert!(line.contains("the request names 4 descriptors, and 3 came with it"), "{line}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_descriptor_that_is_not_a_directory_is_refused() {
    let t = require_root!();
    let scratch = t.scratch("chroot-file");
    let file = std::fs::File::open(scratch.file("f", b"x", 0o644)).expect("open a file");
    let r = Request { chroot: true, ..request(&["/bin/true"]) };
    let line = t.direct().pass(file).exchange(&frame(&r)).refusal();
    assert!(line.contains("not a directory"), "{line}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_dir_the_caller_cannot_enter_is_refused_by_the_frontend() {
    let t = require_root!();
    let scratch = t.scratch("chroot-closed");
    let closed = scratch.path().join("closed");
    std::fs::create_dir(&closed).expect("mkdir");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for dir in ["/root", path_str(&closed)] {
        let out = t.safeexec(&["--chroot_dir", dir, "--exec", "/bin/true"]);
        assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
        let err = stderr(&out);
        assert!(
            err.contains("cannot open chroot directory") && err.contains("Permission denied"),
            "{}",
            dump(&out)
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

// ---------------------------------------------------------------------------
// Jails the policy allows

/// A jail under `root` with a static hello in it, owned by the test user.
fn jail(t: &Env, scratch: &safeexec_tests::Scratch, rel: &str) -> std::path::PathBuf {
    let dir = scratch.dir(rel, 0o755);
    scratch.copy_in(&t.fixtures.join("hello-static"), &format!("{rel}/hello"), 0o755);
    dir
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
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
    t.set_policy(&t.policy_with(&[("chroot_roots", path_str(&allowed))]));

    // Control: a jail under the root runs.
    let out = t.safeexec(&["--chroot_dir", path_str(&inside), "--exec", "/hello"]);
    assert_eq!(stdout(&out), "Hello World\n", "{}", dump(&out));

    let dotdot = format!("{}/../elsewhere", path_str(&allowed));
    for dir in [path_str(&outside), path_str(&link), dotdot.as_str(), "/"] {
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
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_roots_none_refuses_every_chroot() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("noroots");
    let inside = jail(&t, &scratch, "j");
    t.set_policy(&t.policy_with(&[("chroot_roots", "none")]));
    let out = t.safeexec(&["--chroot_dir", path_str(&inside), "--exec", "/hello"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(stderr(&out).contains("allows no chroot"), "{}", dump(&out));
}

/// `--chroot_dir /` would be a jail of the root file system: what the host
/// keeps in world-writable directories of that file system (here /tmp and
/// /var/tmp, when they are no mounts of their own, and /run's sockets)
/// would be the run's. A jail must be the caller's own directory (or one the
/// policy lists, then read-only): / is refused, and nothing runs.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_dir_slash_cannot_leave_a_file_in_the_hosts_tmp_or_reach_the_hosts_run() {
    let t = require_root!();
    let paths: Vec<HostPath> =
        ["/tmp", "/var/tmp"].into_iter().map(|d| HostPath::new(d, "chroot-left")).collect();
    let sock = host_socket("/run");
    let p = t.probe();
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    let leave: Vec<&str> = ["--fsize", "1", "--chroot_dir", "/", "--exec", &p]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let out = t.safeexec(&leave);
    let connect = t.safeexec(&["--chroot_dir", "/", "--exec", &p, "connect", sock.path.str()]);
    for out in [&out, &connect] {
        assert_eq!(out.status.code(), Some(2), "{}", dump(out));
        let err = stderr(out);
        assert_eq!(err.trim().lines().count(), 1, "{}", dump(out));
        assert!(err.contains("must belong to the caller"), "{}", dump(out));
        assert!(!stdout(out).contains("connect"), "the probe ran\n{}", dump(out));
    }
    let landed: Vec<&str> = paths.iter().filter(|p| p.exists()).map(HostPath::str).collect();
    assert!(landed.is_empty(), "left on the host: {landed:?}");
}

/// A jail the policy lists but the caller does not own (here the whole root
/// file system, as a careless admin might list it) is shown read-only and
/// without the mounts below it: no host process in /proc, nothing written.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn jail_the_caller_does_not_own_is_read_only_and_shows_no_host_mount() {
    let t = require_root_exclusive!();
    let text = std::fs::read_to_string(&t.policy).expect("read the policy");
    t.set_policy(&format!("{text}\nchroot_roots = /\n"));
    let paths: Vec<HostPath> =
        ["/tmp", "/var/tmp"].into_iter().map(|d| HostPath::new(d, "ro-jail-left")).collect();
    let p = t.probe();
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    let (out, j) = t.attack_with(&p, &["--fsize", "1", "--chroot_dir", "/"], &args);
    verdict(&out, &j, "ok", 0);
    for p in &paths {
        assert_ne!(
            result_for(&out, "leave", p.str()),
            "ok",
            "wrote {} in a jail that is not the caller's\n{}",
            p.str(),
            dump(&out)
        );
        assert!(!p.exists(), "left on the host: {}", p.str());
    }
    let (out, j) = t.attack_with(&p, &["--chroot_dir", "/"], &["list", "/proc"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(num(&out, "entries"), 0, "/proc of the jail is not empty\n{}", dump(&out));
}

/// Makes a device node (as root: a jail's owner needs root for mknod too),
/// owned by `owner`.
fn mknod(path: &Path, major: u32, minor: u32, mode: u32, owner: safeexec_tests::Ids) {
    let c = std::ffi::CString::new(path_str(path)).expect("path");
    // SAFETY: mknod with a NUL-terminated path that outlives the call.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | mode, libc::makedev(major, minor)) };
    assert_eq!(r, 0, "mknod {}: {}", path.display(), std::io::Error::last_os_error());
    std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid)).expect("chown the node");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod the node");
}

/// A jail of another user (a service account, here the outsider), which
/// the packaged policy refuses, listed in `writable_chroot_roots`: the run
/// writes where the jail's permissions let it (a 0777 directory) and
/// nowhere else (a 0755 one), its mount is nosuid and nodev, a device node
/// its owner made (as /dev/null, with mknod) does not open, and a setuid
/// root program in it gives nothing. A directory beside the listed root,
/// named directly or through a symlink in the jail, is still refused.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn writable_listed_jail_honours_no_set_id_file_nor_device_node_and_lists_nothing_else() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("wjail");
    let owner = t.outsider;
    let own = |p: &Path, mode: u32| {
        std::os::unix::fs::chown(p, Some(owner.uid), Some(owner.gid)).expect("chown");
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let jail = scratch.dir("jail", 0o755);
    let beside = scratch.dir("beside", 0o755);
    for (dir, mode) in [(&jail, 0o755), (&beside, 0o755)] {
        own(dir, mode);
    }
    for (name, mode) in [("out", 0o777), ("ro", 0o755)] {
        fs::create_dir(jail.join(name)).expect("mkdir");
        own(&jail.join(name), mode);
    }
    let probe = jail.join("probe");
    fs::copy(t.fixtures.join("probe-static"), &probe).expect("copy the probe");
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o4755)).expect("setuid root");
    fs::copy(t.fixtures.join("hello-static"), beside.join("hello")).expect("copy hello");
    std::os::unix::fs::symlink(&beside, jail.join("link")).expect("symlink");
    mknod(&jail.join("null"), 1, 3, 0o666, owner);
    // Control: on the host the node opens (reads 0 bytes).
    let control = t
        .run_program(path_str(&t.fixtures.join("probe")), &["read", path_str(&jail.join("null"))])
        .output();
    assert_eq!(word(&control, "read"), "0", "control\n{}", dump(&control));
    let j = path_str(&jail);
    let refused = t.safeexec(&["--chroot_dir", j, "--exec", "/probe", "ids"]);
    assert_eq!(refused.status.code(), Some(2), "{}", dump(&refused));
    assert!(stderr(&refused).contains("writable_chroot_roots"), "{}", dump(&refused));

    t.set_policy(&t.policy_with(&[("writable_chroot_roots", j)]));
    let run = |args: &[&str]| t.attack_with("/probe", &["--fsize", "4", "--chroot_dir", j], args);
    let (out, rep) = run(&["write", "/out/f"]);
    verdict(&out, &rep, "ok", 0);
    assert_eq!(word(&out, "wrote"), "6", "{}", dump(&out));
    assert_eq!(fs::read(jail.join("out/f")).expect("the run's file"), b"pwned\n");
    let (out, _) = run(&["write", "/ro/f"]);
    assert_eq!(word(&out, "open"), "EACCES", "{}", dump(&out));
    let (out, _) = run(&["read", "/null"]);
    assert_eq!(word(&out, "open"), "EACCES", "the owner's device node opened\n{}", dump(&out));
    let (out, rep) = run(&["ids"]);
    assert_eq!(word(&out, "euid"), safeexec_tests::json_uid(&rep).to_string(), "{}", dump(&out));
    assert_eq!(word(&out, "setuid0"), "EPERM", "{}", dump(&out));
    let (out, _) = run(&["statfs", "/"]);
    for (key, want) in [("nosuid", "1"), ("nodev", "1"), ("rdonly", "0")] {
        assert_eq!(word(&out, key), want, "{key}\n{}", dump(&out));
    }
    for dir in [path_str(&beside).to_string(), format!("{j}/link")] {
        let out = t.safeexec(&["--chroot_dir", &dir, "--exec", "/hello"]);
        assert_eq!(out.status.code(), Some(2), "{dir}\n{}", dump(&out));
        assert_eq!(stdout(&out), "", "{dir} ran\n{}", dump(&out));
    }
}

// ---------------------------------------------------------------------------
// The jail: a detached copy of its directory's own mount

/// A mount the test made in the host's mount namespace: unmounted, with
/// whatever is below it, when dropped, also when the test fails.
struct HostMount(PathBuf);

impl HostMount {
    /// A tmpfs on `dir`.
    fn tmpfs(dir: &Path) -> Self {
        mount_at(Some(c"tmpfs"), dir, Some(c"tmpfs"), 0, Some(c"size=64k,mode=755"));
        HostMount(dir.to_path_buf())
    }

    /// `dir` bound on `on`, read-only.
    fn read_only_bind(dir: &Path, on: &Path) -> Self {
        let source = std::ffi::CString::new(path_str(dir)).expect("path");
        mount_at(Some(&source), on, None, libc::MS_BIND, None);
        let bind = HostMount(on.to_path_buf());
        mount_at(None, on, None, libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY, None);
        bind
    }

    /// `dir` bound on itself and shared, as systemd shares every mount.
    fn shared(dir: &Path) -> Self {
        let source = std::ffi::CString::new(path_str(dir)).expect("path");
        mount_at(Some(&source), dir, None, libc::MS_BIND, None);
        let shared = HostMount(dir.to_path_buf());
        mount_at(None, dir, None, libc::MS_SHARED, None);
        shared
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        if let Ok(target) = std::ffi::CString::new(path_str(&self.0)) {
            // SAFETY: umount2 with a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// mount(2) on `target`, or the test fails.
fn mount_at(
    source: Option<&std::ffi::CStr>,
    target: &Path,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) {
    let at = std::ffi::CString::new(path_str(target)).expect("path");
    let ptr = |s: Option<&std::ffi::CStr>| s.map_or(std::ptr::null(), std::ffi::CStr::as_ptr);
    // SAFETY: NUL-terminated strings (or null) that outlive the call.
    let r = unsafe { libc::mount(ptr(source), at.as_ptr(), ptr(fstype), flags, ptr(data).cast()) };
    assert_eq!(r, 0, "mount on {} (flags {flags:#x}): {}", target.display(), errno());
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn mount_below_the_chroot_dir_is_not_visible_in_the_jail() {
    let t = require_root!();
    let scratch = t.scratch("submount");
    let jail = scratch.dir("jail", 0o755);
    scratch.copy_in(&t.fixtures.join("probe-static"), "jail/probe", 0o755);
    let sub = scratch.dir("jail/sub", 0o755);
    scratch.file("jail/sub/under", b"the jail's own file\n", 0o644);
    let mounted = HostMount::tmpfs(&sub);
    fs::write(sub.join("marker"), b"a host mount\n").expect("write in the tmpfs");
    assert!(!sub.join("under").exists(), "the tmpfs does not hide 'under'");
    let (out, j) = t.attack_with(
        "/probe",
        &["--chroot_dir", path_str(&jail)],
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

/// Where the caller's directories are on a shared mount, what init mounts
/// below its copies of them (a jail's /dev and its devpts, a bind inside
/// the working directory) stays in the run, and no mount of the run is a
/// peer of one of the host's. A review of the fourteenth round found the
/// copies in the host mounts' peer groups: each run left its jail's /dev
/// mounted on the host, one more per run, which only root could remove
/// and which slowed every later run; and a mount the host made meanwhile
/// reached the run writable.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_runs_mounts_stay_in_the_run_where_the_callers_directories_are_on_a_shared_mount() {
    let t = require_root!();
    let scratch = t.scratch("shared-mount");
    let jail = jail(&t, &scratch, "jail");
    scratch.dir("jail/dev", 0o755);
    let out_dir = scratch.dir("w/out", 0o755);
    let cwd = scratch.path().join("w");
    let shared = HostMount::shared(scratch.path());
    let jailed = t.safeexec(&["--chroot_dir", path_str(&jail), "--exec", "/hello"]);
    let args = ["--bind-rw", path_str(&out_dir), "--exec", "/bin/cat", "/proc/self/mountinfo"];
    let shown = t.safeexec_in(&cwd, &args);
    let host = fs::read_to_string("/proc/self/mountinfo").expect("the host's mountinfo");
    let below = format!("{}/", path_str(scratch.path()));
    let left: Vec<&str> = host
        .lines()
        .filter(|line| line.split(' ').nth(4).is_some_and(|point| point.starts_with(&below)))
        .collect();
    let left = left.join("\n");
    drop(shared);
    assert_eq!(jailed.status.code(), Some(0), "{}", dump(&jailed));
    assert_eq!(shown.status.code(), Some(0), "{}", dump(&shown));
    assert_eq!(left, "", "the runs' mounts are on the host after them");
    let seen = stdout(&shown);
    let peers: Vec<&str> = seen
        .lines()
        .filter(|line| line.contains(" shared:") || line.contains(" master:"))
        .collect();
    assert!(peers.is_empty(), "mounts of the run in a peer group: {peers:#?}");
}

/// Whether the test user may create a user and mount namespace.
fn user_namespaces_available(t: &Env) -> Result<(), String> {
    let out = t.run_program("unshare", &["--user", "--map-root-user", "--mount", "true"]).output();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("unshare --user --map-root-user --mount: {}", dump(&out)))
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn chroot_dir_of_another_mount_namespace_is_refused() {
    let t = require_root!();
    if let Err(why) = user_namespaces_available(&t) {
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
    let probe_static = t.fixture("probe-static");
    // In a user and mount namespace of the test user's own: a tmpfs on the
    // scratch directory, a jail in it, then wait.
    let script = format!(
        "mount -t tmpfs none {d} && mkdir {d}/jail && cp {p} {d}/jail/probe && exec sleep 60",
        d = path_str(&dir),
        p = probe_static
    );
    let mut holder = t
        .run_program("unshare", &["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .spawn();
    // The holder's pid is the shell's in the new namespaces (setpriv, env
    // and unshare each execute the next): its root shows its mounts.
    let through_proc = format!("/proc/{}/root{}/jail", holder.id(), path_str(&dir));
    let until = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        if Path::new(&through_proc).join("probe").exists() {
            break true;
        }
        if holder.ended().is_some() || Instant::now() >= until {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = ready
        .then(|| t.safeexec(&["--chroot_dir", &through_proc, "--exec", "/probe", "list", "/"]));
    let _ = holder.child.kill();
    let held = holder.wait();
    let Some(out) = out else {
        panic!("the namespace holder did not get ready: {}", dump(&held));
    };
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert_eq!(stdout(&out), "", "the target ran\n{}", dump(&out));
    let err = stderr(&out);
    assert!(err.contains("another mount namespace"), "{}", dump(&out));
    assert_eq!(err.trim().lines().count(), 1, "{}", dump(&out));
}

// ---------------------------------------------------------------------------
// The target's own rights

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn reading_etc_shadow_and_root_fails() {
    let t = require_root!();
    for path in ["/etc/shadow", "/root", "/root/.bashrc", "/etc/sudoers"] {
        if !std::path::Path::new(path).exists() {
            continue;
        }
        let (out, j) = t.attack(&[], &["read", path]);
        verdict(&out, &j, "nonzero_exit", 1);
        assert_eq!(word(&out, "open"), "EACCES", "{path}\n{}", dump(&out));
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn writing_outside_the_allowed_places_fails_and_truncates_nothing() {
    let t = require_root!();
    let scratch = t.scratch("write-outside");
    let content = b"the caller's data\n".repeat(10);
    let own_file = scratch.file("mine", &content, 0o644);
    let own_dir = scratch.dir("dir", 0o755);
    let fixture = t.fixtures.join("probe");
    let probe_before = fs::read(&fixture).expect("read the probe");
    let passwd_before = fs::read("/etc/passwd").expect("read /etc/passwd");
    let new_file = own_dir.join("new");
    let targets = [
        path_str(&own_file).to_string(),
        path_str(&new_file).to_string(),
        path_str(&fixture).to_string(),
        path_str(&t.helper).to_string(),
        path_str(&t.policy).to_string(),
        "/etc/passwd".to_string(),
        "/usr/bin/new".to_string(),
    ];
    for target in &targets {
        let (out, j) = t.attack(&["--fsize", "64"], &["write", target]);
        verdict(&out, &j, "nonzero_exit", 1);
        // EROFS: the host's file system is read-only in a run, the
        // caller's own directories included unless granted to it.
        let e = word(&out, "open");
        assert!(
            e == "EACCES" || e == "EROFS" || e == "ETXTBSY" || e.starts_with("errno"),
            "{target}: {e}"
        );
    }
    assert_eq!(fs::read(&own_file).expect("read"), content);
    assert!(!new_file.exists());
    assert_eq!(fs::read(&fixture).expect("read"), probe_before);
    assert_eq!(fs::read("/etc/passwd").expect("read"), passwd_before);
    assert!(!std::path::Path::new("/usr/bin/new").exists());
}

// ---------------------------------------------------------------------------
// The host is read-only to the run

/// Directories of the host that root made world-writable (0777, and 1777
/// like a /tmp; here under the test prefix, outside the run's scratch
/// mounts) take a file from anybody outside the sandbox, but none from the
/// run: the host's file system is read-only to it (EROFS), and nothing
/// lands there.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn world_writable_host_directories_are_read_only_to_the_run() {
    let t = require_root!();
    let root = safeexec_tests::Ids { uid: 0, gid: 0 };
    let work = path_str(&t.work);
    let dirs =
        [HostPath::dir(work, "open", root, 0o777), HostPath::dir(work, "sticky", root, 0o1777)];
    let files: Vec<String> = dirs.iter().map(|d| format!("{}/left", d.str())).collect();
    // Control: outside the sandbox the test user may create files there.
    let control = t.run_program(t.probe(), &["leave", files[0].as_str()]).output();
    assert_eq!(result_for(&control, "leave", &files[0]), "ok", "{}", dump(&control));
    fs::remove_file(&files[0]).expect("remove the control's file");
    let mut attack = vec!["leave"];
    attack.extend(files.iter().map(String::as_str));
    let (out, j) = t.attack(&["--fsize", "1"], &attack);
    verdict(&out, &j, "ok", 0);
    for f in &files {
        assert_eq!(result_for(&out, "leave", f), "EROFS", "{f}\n{}", dump(&out));
    }
    for d in &dirs {
        assert_eq!(d.entries(), Vec::<PathBuf>::new(), "the run left files on the host");
    }
}

/// `--bind-rw DIR` grants the run a directory of the caller's own: one the
/// caller does not own (a world-writable directory of root's, the host's
/// /tmp) is refused in one line saying so, and the target never runs.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn bind_rw_of_a_directory_the_caller_does_not_own_is_refused() {
    let t = require_root!();
    let root = safeexec_tests::Ids { uid: 0, gid: 0 };
    let open = HostPath::dir(path_str(&t.work), "bind-open", root, 0o777);
    let in_tmp = HostPath::new("/tmp", "bind-left");
    let p = t.probe();
    for (dir, file) in [(open.str(), format!("{}/left", open.str())), ("/tmp", in_tmp.str().into())]
    {
        let out = t.safeexec(&["--bind-rw", dir, "--exec", &p, "leave", &file]);
        assert_eq!(out.status.code(), Some(2), "{dir}\n{}", dump(&out));
        assert_eq!(stdout(&out), "", "{dir}: the target ran\n{}", dump(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{dir}\n{}", dump(&out));
        assert!(err.contains("caller's own"), "{dir}: no reason given\n{}", dump(&out));
        assert!(!Path::new(&file).exists(), "{file} was written");
    }
}

/// What the run may write besides its scratch mounts: a `--bind-rw`
/// directory of the caller's, and its working directory when the caller
/// owns it (both of mode 0777 here: the run's uid is not the caller's, and
/// their own permissions still apply). Another directory of the caller's,
/// as open but neither granted nor the working directory, stays read-only.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_run_writes_in_a_bind_rw_directory_and_in_the_callers_own_working_directory() {
    let t = require_root!();
    let [bind, cwd, other] = ["bind-rw", "own-cwd", "not-granted"].map(|name| {
        let s = t.scratch(name);
        fs::set_permissions(s.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        s
    });
    let files = [bind.join("from-run"), cwd.join("from-run"), other.join("from-run")];
    let p = t.probe();
    let mut args =
        vec!["--json", "--fsize", "1", "--bind-rw", path_str(bind.path()), "--exec", &p, "leave"];
    args.extend(files.iter().map(String::as_str));
    let out = t.safeexec_in(cwd.path(), &args);
    let j = safeexec_tests::json_report(&out);
    verdict(&out, &j, "ok", 0);
    for f in &files[..2] {
        assert_eq!(result_for(&out, "leave", f), "ok", "{f}\n{}", dump(&out));
        assert_eq!(fs::read_to_string(f).ok().as_deref(), Some("left\n"), "{f}");
    }
    assert_eq!(result_for(&out, "leave", &files[2]), "EROFS", "{}", dump(&out));
    assert!(!Path::new(&files[2]).exists(), "written where nothing was granted");
    t.assert_nothing_left(safeexec_tests::json_uid(&j), &dump(&out));
}

// ---------------------------------------------------------------------------
// A directory of the caller's on a read-only mount

/// A directory of the caller's (and writable by everybody) seen through a
/// mount that is read-only for everyone, root included, stays read-only in
/// the run: `--bind-rw` of it is refused, and as the working directory it
/// is not granted.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_directory_on_a_read_only_mount_is_granted_to_no_run() {
    let t = require_root!();
    let scratch = t.scratch("ro-mount");
    let dir = scratch.dir("dir", 0o777);
    let ro = scratch.dir("ro", 0o755);
    let bind = HostMount::read_only_bind(&dir, &ro);
    // Control: the mount is read-only for root too.
    let e = fs::write(ro.join("control"), b"x").expect_err("root wrote on the read-only mount");
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let p = t.probe();
    let granted = ro.join("granted");
    let out = t.safeexec(&[
        "--json",
        "--fsize",
        "64",
        "--bind-rw",
        path_str(&ro),
        "--exec",
        &p,
        "write",
        path_str(&granted),
    ]);
    assert_eq!(out.status.code(), Some(2), "--bind-rw of a read-only mount\n{}", dump(&out));
    assert!(stderr(&out).contains("read-only"), "{}", dump(&out));
    assert!(!stdout(&out).contains("wrote="), "the probe ran\n{}", dump(&out));
    let out = t.safeexec_in(&ro, &["--json", "--fsize", "64", "--exec", &p, "write", "cwd"]);
    let j = safeexec_tests::json_report(&out);
    verdict(&out, &j, "nonzero_exit", 1);
    assert_eq!(word(&out, "open"), "EROFS", "{}", dump(&out));
    t.assert_nothing_left(safeexec_tests::json_uid(&j), &dump(&out));
    drop(bind);
    let written: Vec<_> = fs::read_dir(&dir).expect("list").flatten().map(|e| e.path()).collect();
    assert!(written.is_empty(), "written through the read-only mount: {written:?}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_working_directory_hidden_by_the_runs_own_mounts_is_refused_not_entered() {
    let t = require_root!();
    // Started in the host's /proc (or cgroup file system) below the run's
    // own mount of it, the target would list the host's processes.
    for dir in ["/proc", "/sys/fs/cgroup"] {
        let out = t.safeexec_in(
            Path::new(dir),
            &["--root", "host", "--", "/bin/sh", "-c", "ls; cat 1/cmdline"],
        );
        assert_eq!(out.status.code(), Some(2), "{dir}\n{}", dump(&out));
        assert!(
            stderr(&out).contains("lies under a mount the run gets its own of"),
            "{dir}\n{}",
            dump(&out)
        );
        assert!(out.stdout.is_empty(), "{dir}: the run started\n{}", dump(&out));
    }
}

/// A directory given as the program's stdin (`< /`) would let the target
/// open the host's files through it (`openat`), from the caller's
/// read-write view of them, past a minimal root, a jail and the read-only
/// host: an independent review wrote a file in the host's /tmp that way.
/// So would a descriptor opened O_PATH. The helper refuses both, before
/// anything of the run starts.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_directory_or_o_path_descriptor_as_a_standard_descriptor_is_refused() {
    let t = require_root!();
    let probe = t.probe();
    let o_path = || {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open("/etc/passwd")
            .expect("O_PATH")
    };
    let inputs = [
        (fs::File::open("/").expect("open /"), "a directory"),
        (o_path(), "a descriptor opened O_PATH"),
    ];
    for (input, what) in inputs {
        for root in ["minimal", "host"] {
            let args = ["--root", root, "--exec", &probe, "ids"];
            let out = t.run(&args).stdin(Input::File(input.try_clone().expect("dup"))).output();
            assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
            let said = format!("the program's stdin is {what}");
            assert!(stderr(&out).contains(&said), "{}", dump(&out));
            assert_eq!(stdout(&out), "", "the program ran\n{}", dump(&out));
        }
    }
}

/// A working directory below another directory the run is shown (here
/// read-only, being sticky and open to all, below a `--bind-rw` one) is
/// entered by init, which is root. Entered by its path, a symbolic link
/// the caller put in place of the directory after the policy's look sent
/// the run into a tree the caller may not enter: an independent review
/// read a file of another user's 0700 home in 17 runs of 40. The caller
/// here swaps its working directory with such a link (renameat2,
/// RENAME_EXCHANGE) without pause through 40 runs: no run may read the
/// other user's file, whichever way each run falls.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_working_directory_is_entered_without_following_a_link_swapped_in_by_the_caller() {
    use std::os::unix::fs::{chown, lchown, symlink};
    let t = require_root!();
    let (outsider, tester) = (t.env().outsider, t.env().test_user);
    let home = t.scratch("outsiders-home");
    let public = home.path().join("pub");
    fs::create_dir(&public).expect("mkdir");
    let secret = public.join("secret");
    fs::write(&secret, "the outsider's secret\n").expect("write");
    for (path, mode) in [(home.path(), 0o700), (public.as_path(), 0o755), (secret.as_path(), 0o644)]
    {
        chown(path, Some(outsider.uid), Some(outsider.gid)).expect("chown");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let shown = t.scratch("shown");
    let cwd = shown.path().join("c");
    fs::create_dir(&cwd).expect("mkdir");
    chown(&cwd, Some(tester.uid), Some(tester.gid)).expect("chown");
    fs::set_permissions(&cwd, fs::Permissions::from_mode(0o1777)).expect("chmod");
    let link = shown.path().join("s");
    symlink(&public, &link).expect("symlink");
    lchown(&link, Some(tester.uid), Some(tester.gid)).expect("lchown");
    let script = "import ctypes, os, signal, subprocess, sys\n\
                  shown, safeexec = sys.argv[1:]\n\
                  renameat2 = {'x86_64': 316, 'aarch64': 276}[os.uname().machine]\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  os.chdir(shown + '/c')\n\
                  swapper = os.fork()\n\
                  if swapper == 0:\n\
                  \x20   a, b = (shown + '/c').encode(), (shown + '/s').encode()\n\
                  \x20   while True:\n\
                  \x20       libc.syscall(renameat2, -100, a, -100, b, 2)\n\
                  for i in range(40):\n\
                  \x20   r = subprocess.run([safeexec, '--bind-rw', shown, '--exec', '/bin/cat', 'secret'],\n\
                  \x20                      capture_output=True, text=True)\n\
                  \x20   print('run%d=%s' % (i, (r.stdout + r.stderr).replace('\\n', ' ')))\n\
                  os.kill(swapper, signal.SIGKILL)\n\
                  os.waitpid(swapper, 0)\n";
    let frontend = path_str(&t.safeexec).to_string();
    let out = t
        .run_program(safeexec_tests::PYTHON, &["-c", script, path_str(shown.path()), &frontend])
        .output();
    let said = stdout(&out);
    assert_eq!(said.lines().filter(|l| l.starts_with("run")).count(), 40, "{}", dump(&out));
    assert!(!said.contains("the outsider's secret"), "a run read it:\n{}", dump(&out));
}

/// A path the policy names is walked by root: a symbolic link on the way
/// that someone other than root could have made is not taken. A policy's
/// `writable_dirs` (and its jails' roots) below a directory of the
/// caller's own: the caller replaced the named directory with a link to a
/// directory of another user's, inside that user's 0700 home, and root
/// showed it to the run, writable, at the link's target (below /tmp, where
/// the run's view makes the directories above it root's and open); the
/// run read and wrote there (a review of the eleventh round). Now such a
/// path is left out, as a missing one is: nothing of the other user's
/// reaches the run, and the caller's link refuses no run (refusing them
/// all was a sixth review's finding on the first fix); a jails' root
/// through such a link allows no jail.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_policy_path_through_a_link_of_the_callers_is_not_followed() {
    use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let t = require_root_exclusive!();
    let base = PathBuf::from(format!("/tmp/safeexec-policy-link-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir(&base).expect("mkdir");
    let _gone = Gone(base.clone());
    let own = |path: &Path, ids: safeexec_tests::Ids, mode: u32| {
        chown(path, Some(ids.uid), Some(ids.gid)).expect("chown");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let judge = base.join("judge");
    fs::create_dir(&judge).expect("mkdir");
    own(&judge, t.test_user, 0o755);
    // Another user's private home, with a directory open to all inside.
    let home = base.join("outsider");
    let drop = home.join("drop");
    fs::create_dir_all(&drop).expect("mkdir");
    fs::write(drop.join("secret"), "the outsider's own words\n").expect("write");
    own(&home, t.outsider, 0o700);
    own(&drop, t.outsider, 0o777);
    own(&drop.join("secret"), t.outsider, 0o644);
    let named = judge.join("scratch");
    symlink(&drop, &named).expect("symlink");
    lchown(&named, Some(t.test_user.uid), Some(t.test_user.gid)).expect("lchown");

    t.set_policy(&t.policy_with(&[("writable_dirs", path_str(&named))]));
    let attack = format!(
        "cat {0}/secret; echo planted > {1}/planted; echo planted > {0}/planted",
        path_str(&drop),
        path_str(&named)
    );
    for root in ["host", "minimal"] {
        let out = t.safeexec(&["--root", root, "--exec", "/bin/sh", "-c", attack.as_str()]);
        assert!(!stdout(&out).contains("own words"), "{root}: the run read it\n{}", dump(&out));
        assert!(!drop.join("planted").exists(), "{root}: the run wrote in the other's directory");
        assert_ne!(out.status.code(), Some(2), "{root}: refused\n{}", dump(&out));
        let out = t.safeexec(&["--root", root, "--exec", "/bin/echo", "hi"]);
        assert_eq!(stdout(&out), "hi\n", "{root}: {}", dump(&out));
    }

    // The same link as a root of writable jails, to a jail of root's that
    // the policy does not list: it allows nothing, and refuses no other run.
    let scratch = t.scratch("policy-link");
    let rootjail = jail(&t, &scratch, "rootjail");
    for entry in [rootjail.clone(), rootjail.join("hello")] {
        chown(&entry, Some(0), Some(0)).expect("chown");
    }
    fs::remove_file(&named).expect("rm the link");
    symlink(&rootjail, &named).expect("symlink");
    lchown(&named, Some(t.test_user.uid), Some(t.test_user.gid)).expect("lchown");
    t.set_policy(&t.policy_with(&[("writable_chroot_roots", path_str(&named))]));
    let out = t.safeexec(&["--chroot_dir", path_str(&rootjail), "--exec", "/hello"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(stderr(&out).contains("refused: the chroot directory"), "{}", dump(&out));
    let out = t.safeexec(&["--exec", "/bin/echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", dump(&out));
}
