//! The run's scratch directories (DESIGN.md invariants 5 and 7): by default
//! one private tmpfs on /tmp, /var/tmp, /dev/shm and /run, sized by
//! `--fsize` (capped by `--mem`, at least 4 KiB), empty at the start and
//! gone with the run, so the target finds nothing of the host there and
//! leaves nothing behind; the host's /tmp and /var/tmp only with
//! `--host-tmp`, if the policy allows it, and then read-only. A working directory (or a
//! relative exec_dir) that the private directories would hide is refused.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::PathBuf;
use std::process::Output;

use safeexec_tests::{
    assert_verdict, dump, frame, num, request, require_root, require_root_exclusive, result_for,
    stderr, stdout, verdict, word, Env, HostPath,
};
use shared::Request;

// ---------------------------------------------------------------------------
// Private by default

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn world_readable_file_in_the_hosts_tmp_is_invisible_by_default_and_visible_with_host_tmp() {
    let t = require_root!();
    let secret = format!("host secret {}\n", std::process::id());
    let files: Vec<HostPath> = ["/tmp", "/var/tmp", "/dev/shm", "/run"]
        .into_iter()
        .map(|dir| {
            let f = HostPath::new(dir, "secret");
            fs::write(f.path(), &secret).expect("write the host's file");
            fs::set_permissions(f.path(), fs::Permissions::from_mode(0o644)).expect("chmod");
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
    assert!(default.iter().all(|(_, w)| w == "not found"), "without --host-tmp: {default:?}");
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

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn target_cannot_leave_a_file_in_the_hosts_tmp_var_tmp_dev_shm_or_run() {
    let t = require_root!();
    let paths: Vec<HostPath> = ["/tmp", "/var/tmp", "/dev/shm", "/run"]
        .into_iter()
        .map(|d| HostPath::new(d, "left"))
        .collect();
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    // One name in the four directories: in the run they are one tmpfs of
    // 4 KiB (--fsize 1), room for one file.
    let (out, j) = t.attack(&["--fsize", "1"], &args);
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
    let landed: Vec<&str> = paths.iter().filter(|p| p.exists()).map(HostPath::str).collect();
    assert!(landed.is_empty(), "left on the host: {landed:?}");
    // With --host-tmp, the host's /tmp and /var/tmp are there, read-only.
    let paths: Vec<HostPath> =
        ["/tmp", "/var/tmp"].into_iter().map(|d| HostPath::new(d, "left-host")).collect();
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    let (out, j) = t.attack(&["--host-tmp"], &args);
    verdict(&out, &j, "ok", 0);
    for p in &paths {
        assert_eq!(result_for(&out, "leave", p.str()), "EROFS", "{}", dump(&out));
    }
    let landed: Vec<&str> = paths.iter().filter(|p| p.exists()).map(HostPath::str).collect();
    assert!(landed.is_empty(), "left on the host with --host-tmp: {landed:?}");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn disk_fill_in_a_private_tmp_is_contained_and_vanishes_with_the_run() {
    let t = require_root!();
    let name = format!("/tmp/safeexec-attack-fill-{}", std::process::id());
    let (out, j) = t.attack(&["--private-tmp", "--fsize", "1024"], &["fill", &name]);
    verdict(&out, &j, "ok", 0);
    assert!(num(&out, "wrote") <= 1024 * 1024, "{}", dump(&out));
    let e = word(&out, "error");
    assert!(e == "EFBIG" || e == "ENOSPC", "{}", dump(&out));
    let landed = std::path::Path::new(&name).exists();
    let _ = fs::remove_file(&name);
    assert!(!landed, "the fill landed in the host's /tmp");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn many_small_files_in_a_private_tmp_are_contained_and_vanish_with_the_run() {
    let t = require_root!();
    for dir in ["/tmp", "/dev/shm", "/var/tmp"] {
        let before = fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let (out, j) =
            t.attack(&["--private-tmp", "--fsize", "64", "--cpu", "5"], &["manyfiles", dir]);
        verdict(&out, &j, "ok", 0);
        let files = num(&out, "files");
        assert!(files <= 1024, "{files} files in {dir}\n{}", dump(&out));
        assert_eq!(word(&out, "error"), "ENOSPC", "{dir}\n{}", dump(&out));
        let after = fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        assert!(after <= before + 5, "{dir} of the host grew from {before} to {after}");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn filling_tmp_or_dev_shm_hits_enospc_at_the_fsize_bound_and_leaves_nothing_on_the_host() {
    let t = require_root!();
    let prefix = format!("safeexec-test-fill-{}", std::process::id());
    for dir in ["/tmp", "/dev/shm"] {
        // Four files of 512 KiB, each under the 1 MiB file-size limit: only
        // the size of the file system can stop them.
        let (out, j) = t.attack(&["--fsize", "1024"], &["fill", dir, &prefix, "512", "4"]);
        let landed: Vec<PathBuf> = (0..4)
            .map(|n| PathBuf::from(format!("{dir}/{prefix}.{n}")))
            .filter(|p| p.exists())
            .collect();
        for p in &landed {
            let _ = fs::remove_file(p);
        }
        verdict(&out, &j, "ok", 0);
        assert!(landed.is_empty(), "the fill landed in the host's {dir}: {landed:?}");
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
#[ignore = "needs root: sudo bash tests/run.sh"]
fn scratch_tmpfs_is_sized_by_fsize_capped_by_mem_and_at_least_4_kib() {
    let t = require_root!();
    for (opts, want_kib) in [
        (&["--fsize", "1024"][..], 1024),
        (&["--fsize", "0"][..], 4),
        (&["--fsize", "1"][..], 4),
        (&["--mem", "32768", "--fsize", "1048576"][..], 32768),
    ] {
        for dir in ["/tmp", "/var/tmp", "/dev/shm", "/run"] {
            let (out, j) = t.attack(opts, &["statfs", dir]);
            verdict(&out, &j, "ok", 0);
            assert_eq!(num(&out, "size_kib"), want_kib, "{opts:?} {dir}\n{}", dump(&out));
        }
    }
    // And the memory cap holds against writes too.
    let prefix = format!("safeexec-test-memfill-{}", std::process::id());
    let (out, j) = t.attack(
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
#[ignore = "needs root: sudo bash tests/run.sh"]
fn host_tmp_is_refused_when_the_policy_disallows_it() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("allow_host_tmp", "false")]));
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
    let r = Request { host_tmp: true, ..request(&["/bin/echo", "ran"]) };
    let line = t.direct().exchange(&frame(&r)).refusal();
    assert!(line.contains("host's /tmp"), "{line}");
}

// ---------------------------------------------------------------------------
// The working directory

/// The command that writes ./LEFT in its working directory.
const WRITE_LEFT: &[&str] =
    &["--nproc", "2", "--fsize", "10", "--", "/bin/sh", "-c", "echo x > ./LEFT"];

/// A caller's own directory under the host's /tmp, with a subdirectory
/// `sub` (for `--exec_dir sub`), both the test user's and of `mode`.
/// 0755 is how a caller keeps a directory; 0777 is how it lets the run's
/// uid (never its own) write there, so that a write that got through would
/// land on the host.
fn cwd_under_tmp(t: &Env, mode: u32) -> (HostPath, PathBuf) {
    let owner = t.test_user;
    let cwd = HostPath::dir("/tmp", "cwd", owner, mode);
    let sub = cwd.path().join("sub");
    fs::create_dir(&sub).expect("mkdir sub");
    chown(&sub, Some(owner.uid), Some(owner.gid)).expect("chown sub");
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

/// A working directory under the host's /tmp is shown to the run at its
/// own path, the caller's own as anywhere else: the run writes there if
/// the directory's permissions let its uid (0777), not otherwise (0755);
/// exec_dir is found in it; and the same with the host's /tmp.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn working_directory_under_the_hosts_tmp_is_the_callers_own_as_anywhere_else() {
    let t = require_root!();
    for host_tmp in [&[][..], &["--host-tmp"][..]] {
        let (cwd, sub) = cwd_under_tmp(&t, 0o755);
        for opts in [&[][..], &["--exec_dir", "sub"][..]] {
            let opts: Vec<&str> = host_tmp.iter().chain(opts).copied().collect();
            let out = t.safeexec_in(cwd.path(), &args_with(&opts));
            assert_eq!(out.status.code(), Some(1), "{opts:?}\n{}", dump(&out));
            assert_eq!(cwd.entries(), vec![sub.clone()], "{opts:?}: written\n{}", dump(&out));
        }
        let (cwd, sub) = cwd_under_tmp(&t, 0o777);
        for (opts, dir) in [(&[][..], cwd.path()), (&["--exec_dir", "sub"][..], sub.as_path())] {
            let opts: Vec<&str> = host_tmp.iter().chain(opts).copied().collect();
            let out = t.safeexec_in(cwd.path(), &args_with(&opts));
            assert_eq!(out.status.code(), Some(0), "{opts:?}\n{}", dump(&out));
            let left = dir.join("LEFT");
            let written = fs::read_to_string(&left).ok();
            assert_eq!(written.as_deref(), Some("x\n"), "{opts:?}\n{}", dump(&out));
            fs::remove_file(&left).expect("remove LEFT");
        }
    }
}

/// Where the policy refuses the host's /tmp, a working directory under it
/// still works (it is shown at its own path); `--host-tmp` is refused.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn working_directory_under_the_hosts_tmp_works_when_the_policy_disallows_host_tmp() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("allow_host_tmp", "false")]));
    let (cwd, sub) = cwd_under_tmp(&t, 0o777);
    for opts in [&["--host-tmp"][..], &["--host-tmp", "--exec_dir", "sub"][..]] {
        let out = t.safeexec_in(cwd.path(), &args_with(opts));
        assert_refused(&out, &["host's /tmp"]);
        assert_eq!(cwd.entries(), vec![sub.clone()], "{opts:?}: written\n{}", dump(&out));
    }
    let out = t.safeexec_in(cwd.path(), &args_with(&["--exec_dir", "sub"]));
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert!(sub.join("LEFT").exists(), "{}", dump(&out));
}

// ---------------------------------------------------------------------------
// The host's /tmp, read-only

/// With `--host-tmp` the run sees the host's /tmp and /var/tmp, read-only
/// like the rest of the host: creating a file there fails with EROFS and
/// nothing lands on the host.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn host_tmp_is_shown_read_only() {
    let t = require_root!();
    let paths: Vec<HostPath> =
        ["/tmp", "/var/tmp"].into_iter().map(|d| HostPath::new(d, "host-tmp-left")).collect();
    let mut args = vec!["leave"];
    args.extend(paths.iter().map(HostPath::str));
    let (out, j) = t.attack(&["--host-tmp", "--fsize", "1"], &args);
    verdict(&out, &j, "ok", 0);
    for p in &paths {
        assert_eq!(result_for(&out, "leave", p.str()), "EROFS", "{}\n{}", p.str(), dump(&out));
    }
    let landed: Vec<&str> = paths.iter().filter(|p| p.exists()).map(HostPath::str).collect();
    assert!(landed.is_empty(), "left on the host: {landed:?}");
}

// ---------------------------------------------------------------------------
// The host's message queues

/// Where systemd mounts the host's POSIX message queues (/dev/mqueue), a
/// run with the host's root saw the host's queues through that mount,
/// past its own IPC namespace: it took another user's message from a
/// queue others may read, and held its notification slot (a review of
/// the twelfth round). The run's own instance is mounted there: the
/// host's queue is not to be found, and keeps its message. The control:
/// the test user, outside the sandbox, may take it.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_cannot_take_a_message_from_the_hosts_queues() {
    let t = require_root_exclusive!();
    let probe = t.probe();
    let made_dir = !std::path::Path::new("/dev/mqueue").exists();
    if made_dir {
        fs::create_dir("/dev/mqueue").expect("make /dev/mqueue");
    }
    // The host's queues on /dev/mqueue, in a mount namespace of the
    // command's own (the host's mounts are left as they are).
    let with_host_queues = || {
        // SAFETY: raw system calls with static strings, between fork and
        // exec (async-signal-safe).
        let mounted = unsafe {
            libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"mqueue".as_ptr(),
                    c"/dev/mqueue".as_ptr(),
                    c"mqueue".as_ptr(),
                    0,
                    std::ptr::null(),
                ) == 0
        };
        if mounted {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let name = format!("safeexec-test-{}", std::process::id());
    let queue = format!("/dev/mqueue/{name}");
    let mq = |args: &[&str]| std::process::Command::new(&probe).arg("mqueue").args(args).output();
    let sent = mq(&["send", &name, "secret"]).expect("the probe");
    let run = t
        .run(&["--root", "host", "--json", "--exec", &probe, "mqueue", "take", &queue])
        .pre_exec(with_host_queues)
        .output();
    let control =
        t.run_program(&probe, &["mqueue", "take", &queue]).pre_exec(with_host_queues).output();
    let _ = mq(&["unlink", &name]);
    if made_dir {
        let _ = fs::remove_dir("/dev/mqueue");
    }
    assert_eq!(word(&sent, "sent"), "ok", "{}", dump(&sent));
    assert_eq!(word(&run, "open"), "ENOENT", "the run reached the host's queue\n{}", dump(&run));
    assert_eq!(word(&control, "took"), "ok", "the control took nothing\n{}", dump(&control));
}
