//! `--root minimal`: the run's root is a new tmpfs with read-only copies of
//! the system directories (/usr, /bin, /lib..., part of /etc), its own
//! /proc, a private /tmp, a minimal /dev, and the directories the request
//! shows at their own paths (the working directory, the program's, the
//! caller's `--bind` and `--bind-rw` ones), opened as the caller. Real
//! programs run in it unchanged; nothing else of the host is reachable.
//! Also the minimal /dev of chroot runs, and runs from /tmp.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use safeexec_tests::{
    dump, path_str, require_root, require_root_exclusive, result_for, stderr, stdout, Env,
    HostPath, Ids,
};

const MINIMAL: [&str; 2] = ["--root", "minimal"];

/// `safeexec --root minimal OPTS -- PROGRAM ARGS`, as the test user, from
/// `cwd` (the test's work directory if `None`).
fn minimal(t: &Env, cwd: Option<&Path>, opts: &[&str], command: &[&str]) -> std::process::Output {
    let mut args: Vec<&str> = MINIMAL.to_vec();
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(command);
    match cwd {
        Some(cwd) => t.safeexec_in(cwd, &args),
        None => t.safeexec(&args),
    }
}

/// The entries the probe's `list` printed, sorted.
fn listed(out: &std::process::Output) -> Vec<String> {
    let mut entries: Vec<String> =
        stdout(out).lines().filter_map(|l| l.strip_prefix("entry=")).map(String::from).collect();
    entries.sort();
    entries
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert_eq!(out.status.code(), Some(0), "{what}\n{}", dump(out));
    assert!(stderr(out).contains("OK"), "{what}\n{}", dump(out));
}

// ---------------------------------------------------------------------------
// Real programs

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn static_and_dynamic_c_programs_run_in_a_minimal_root() {
    let t = require_root!();
    for hello in ["hello", "hello-static"] {
        let out = minimal(&t, None, &[], &[&t.fixture(hello)]);
        assert_ok(&out, hello);
        assert_eq!(stdout(&out), "Hello World\n", "{hello}\n{}", dump(&out));
    }
}

/// Python 3 with its standard library (json, decimal, sqlite3, ssl with
/// the system's certificates, a thread), and a shell script of the
/// caller's, found by its path in the caller's own directory.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn python_with_its_standard_library_and_a_shell_script_run_in_a_minimal_root() {
    let t = require_root!();
    let code = "import json, decimal, sqlite3, ssl, threading, os, locale\n\
                ctx = ssl.create_default_context()\n\
                assert ctx.cert_store_stats()['x509_ca'] > 0\n\
                th = threading.Thread(target=print, args=('thread',)); th.start(); th.join()\n\
                print(json.dumps({'sum': str(decimal.Decimal('0.1') * 3)}), os.getcwd())";
    let opts = ["--mem", "500000", "--nproc", "4"];
    let out = minimal(&t, None, &opts, &["/usr/bin/python3", "-c", code]);
    assert_ok(&out, "python3");
    assert_eq!(
        stdout(&out),
        format!("thread\n{{\"sum\": \"0.3\"}} {}\n", path_str(&t.work)),
        "{}",
        dump(&out)
    );
    let dir = t.scratch("script");
    let script = dir.file(
        "run.sh",
        b"#!/bin/sh\nset -e\necho \"$(basename \"$0\") $(cat ./data)\"\n",
        0o755,
    );
    dir.file("data", b"from the caller's directory\n", 0o644);
    let out = minimal(&t, Some(dir.path()), &["--nproc", "4"], &[path_str(&script)]);
    assert_ok(&out, "shell script");
    assert_eq!(stdout(&out), "run.sh from the caller's directory\n", "{}", dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn java_runs_in_a_minimal_root_where_installed() {
    let t = require_root!();
    if !Path::new("/usr/bin/java").exists() || !Path::new("/usr/bin/javac").exists() {
        eprintln!(
            "SKIPPED: java_runs_in_a_minimal_root_where_installed: no /usr/bin/java and javac"
        );
        return;
    }
    let dir = t.scratch("java");
    dir.file("Hi.java", b"public class Hi { public static void main(String[] a) { System.out.println(\"hi from \" + System.getProperty(\"java.version\").split(\"\\\\.\")[0].length()); } }\n", 0o644);
    let javac = std::process::Command::new("javac")
        .arg("Hi.java")
        .current_dir(dir.path())
        .status()
        .expect("run javac");
    assert!(javac.success(), "javac failed");
    let opts = ["--mem", "16000000", "--rss", "1000000", "--nproc", "200", "--cpu", "30"];
    let out = minimal(&t, Some(dir.path()), &opts, &["/usr/bin/java", "-Xmx64m", "-cp", ".", "Hi"]);
    assert_ok(&out, "java");
    assert!(stdout(&out).starts_with("hi from "), "{}", dump(&out));
}

// ---------------------------------------------------------------------------
// Nothing else of the host

/// Test data as a judge leaves it: world-readable, in a world-readable
/// directory of the host (under /srv, and another under the test prefix).
/// The host view reads it (the reason for a minimal root); the minimal
/// root does not have it, and its / and /etc hold only what it shows.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn world_readable_host_data_outside_the_binds_is_unreachable_in_a_minimal_root() {
    let t = require_root!();
    let root = Ids { uid: 0, gid: 0 };
    let srv = HostPath::dir("/srv", "judge-data", root, 0o755);
    let answers = srv.path().join("1.out");
    fs::write(&answers, "the expected answer\n").expect("write the answers");
    fs::set_permissions(&answers, fs::Permissions::from_mode(0o644)).expect("chmod");
    let beside = HostPath::dir(path_str(&t.prefix), "beside", root, 0o755);
    let secret = beside.path().join("secret");
    fs::write(&secret, "x\n").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let (a, s) = (path_str(&answers), path_str(&secret));

    let host = t.safeexec(&["--root", "host", "--", "/bin/cat", a]);
    assert_eq!(stdout(&host), "the expected answer\n", "the host view: {}", dump(&host));

    let p = t.probe();
    let probe = |args: &[&str]| {
        let mut command = vec![p.as_str()];
        command.extend_from_slice(args);
        minimal(&t, None, &[], &command)
    };
    // (The test prefix, under /var, holds the probe: that directory is shown.)
    let hidden = [a, s, "/srv", "/home", "/root", "/var/log", "/etc/hostname", "/etc/shadow"];
    let mut attack = vec!["exists"];
    attack.extend(hidden);
    let out = probe(&attack);
    for path in hidden {
        assert_eq!(result_for(&out, "exists", path), "ENOENT", "{path}\n{}", dump(&out));
    }
    let out = probe(&["list", "/"]);
    let entries = listed(&out);
    // The test prefix holds the probe: its directory is shown, under /var.
    let allowed = [
        "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr", "var",
    ];
    for e in &entries {
        assert!(allowed.contains(&e.as_str()), "/ of the minimal root holds {e}\n{}", dump(&out));
    }
    let out = probe(&["list", "/dev"]);
    let dev = listed(&out);
    assert_eq!(
        dev,
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "urandom", "zero"
        ],
        "{}",
        dump(&out)
    );
}

/// The minimal root's own tree is read-only for the run, its /dev
/// included (a directory of the root's tmpfs, which is not nodev so that
/// the nodes init made there work): the target leaves nothing in /, /etc
/// or /dev (EROFS, not just EACCES), while the devices read and write as
/// on the host.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_minimal_roots_own_tree_and_its_dev_are_read_only_and_its_devices_work() {
    let t = require_root!();
    let p = t.probe();
    let run = |attack: &[&str]| {
        let mut command = vec![p.as_str()];
        command.extend_from_slice(attack);
        minimal(&t, None, &[], &command)
    };
    let places = ["/left", "/etc/left", "/dev/left", "/dev/null"];
    let mut attack = vec!["leave"];
    attack.extend(places);
    let out = run(&attack);
    for path in &places[..3] {
        assert_eq!(result_for(&out, "leave", path), "EROFS", "{path}\n{}", dump(&out));
    }
    assert_eq!(result_for(&out, "leave", "/dev/null"), "ok", "{}", dump(&out));
    let out = run(&["read", "/dev/urandom"]);
    assert_eq!(stdout(&out).trim(), "read=4096", "{}", dump(&out));
    let out = run(&["read", "/dev/zero"]);
    assert_eq!(stdout(&out).trim(), "read=4096", "{}", dump(&out));
    let out = run(&["read", "/dev/null"]);
    assert_eq!(stdout(&out).trim(), "read=0", "{}", dump(&out));
}

/// `--bind DIR` shows a directory the caller can read, read-only; one it
/// cannot read is refused by the frontend, which opens it as the caller;
/// `--bind-rw` of a directory the caller cannot write (not its own) is
/// refused; one of its own is writable.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn bind_shows_what_the_caller_can_read_and_bind_rw_what_it_owns() {
    let t = require_root!();
    let root = Ids { uid: 0, gid: 0 };
    let closed = HostPath::dir(path_str(&t.prefix), "closed", root, 0o700);
    let foreign = HostPath::dir(path_str(&t.prefix), "foreign", root, 0o755);
    let p = t.probe();
    for (opt, dir, words) in [
        ("--bind", closed.str(), &["cannot open", "Permission denied"][..]),
        ("--bind-rw", foreign.str(), &["caller's own"][..]),
        ("--bind-rw", closed.str(), &["cannot open", "Permission denied"][..]),
    ] {
        let out = minimal(&t, None, &[opt, dir], &[&p, "list", dir]);
        assert_eq!(out.status.code(), Some(2), "{opt} {dir}\n{}", dump(&out));
        assert_eq!(stdout(&out), "", "{opt} {dir}: the target ran\n{}", dump(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{}", dump(&out));
        for w in words {
            assert!(err.contains(w), "{opt} {dir}: no '{w}'\n{}", dump(&out));
        }
    }
    let data = t.scratch("bind-ro");
    data.file("input", b"data\n", 0o644);
    fs::set_permissions(data.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let out_dir = t.scratch("bind-rw");
    fs::set_permissions(out_dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let (input, left, written) = (data.join("input"), data.join("left"), out_dir.join("out"));
    let opts =
        ["--fsize", "1", "--bind", path_str(data.path()), "--bind-rw", path_str(out_dir.path())];
    let out = minimal(&t, None, &opts, &[&p, "read", &input]);
    assert_ok(&out, "read a --bind file");
    let out = minimal(&t, None, &opts, &[&p, "leave", &left, &written]);
    assert_eq!(result_for(&out, "leave", &left), "EROFS", "{}", dump(&out));
    assert_eq!(result_for(&out, "leave", &written), "ok", "{}", dump(&out));
    assert!(!Path::new(&left).exists(), "written in a read-only bind");
    assert_eq!(fs::read_to_string(&written).ok().as_deref(), Some("left\n"));
}

/// The policy chooses the root of runs that do not ask (`default_root`),
/// and can force the minimal one (`allow_host_root = false`): then
/// `--root host` is refused in one line.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_policy_chooses_the_default_root_and_can_force_the_minimal_one() {
    let t = require_root_exclusive!();
    let root = Ids { uid: 0, gid: 0 };
    let srv = HostPath::dir("/srv", "forced", root, 0o755);
    let cat = |opts: &[&str]| {
        let mut args = opts.to_vec();
        args.extend(["--", "/bin/ls", "-d", srv.str()]);
        t.safeexec(&args)
    };
    let out = cat(&["--root", "minimal", "--host-tmp"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(stderr(&out).contains("--host-tmp"), "{}", dump(&out));
    t.set_policy(&t.policy_with(&[("default_root", "minimal")]));
    assert_ne!(cat(&[]).status.code(), Some(0), "the default root is not minimal");
    assert_eq!(cat(&["--root", "host"]).status.code(), Some(0), "--root host");
    t.set_policy(&t.policy_with(&[("default_root", "minimal"), ("allow_host_root", "false")]));
    let out = cat(&["--root", "host"]);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(stderr(&out).contains("--root minimal"), "{}", dump(&out));
    assert_eq!(stdout(&out), "", "{}", dump(&out));
    t.set_policy(&t.policy_with(&[("default_root", "host"), ("allow_host_root", "false")]));
    let out = cat(&[]);
    assert_eq!(out.status.code(), Some(2), "an inconsistent policy is refused\n{}", dump(&out));
    assert!(stderr(&out).contains("allow_host_root"), "{}", dump(&out));
}

/// The policy's `minimal_root_binds` add system directories, read-only, to
/// every minimal root, one below /etc too (the entries of `SYSTEM_ETC` then
/// go in beside it); nothing else of the host's /etc shows.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_policys_minimal_root_binds_add_system_directories_read_only() {
    let t = require_root_exclusive!();
    let root = Ids { uid: 0, gid: 0 };
    let srv = HostPath::dir("/srv", "extra", root, 0o755);
    let etc = HostPath::dir("/etc", "extra", root, 0o755);
    let unlisted = HostPath::dir("/etc", "unlisted", root, 0o755);
    for dir in [&srv, &etc, &unlisted] {
        fs::write(dir.path().join("data"), "shown\n").expect("write data");
        fs::set_permissions(dir.path().join("data"), fs::Permissions::from_mode(0o644))
            .expect("chmod data");
    }
    let data = |dir: &HostPath| format!("{}/data", dir.str());
    let (srv_data, etc_data, unlisted_data) = (data(&srv), data(&etc), data(&unlisted));
    let cat = |file: &str| minimal(&t, None, &[], &["/bin/cat", file, "/etc/passwd"]);
    for file in [&srv_data, &etc_data, &unlisted_data] {
        let out = cat(file);
        assert!(
            !stdout(&out).contains("shown"),
            "shown before the policy names it\n{}",
            dump(&out)
        );
    }
    let binds = format!("{} {}", srv.str(), etc.str());
    t.set_policy(&t.policy_with(&[("minimal_root_binds", binds.as_str())]));
    for file in [&srv_data, &etc_data] {
        let out = cat(file);
        assert_eq!(out.status.code(), Some(0), "{file}\n{}", dump(&out));
        assert!(stdout(&out).starts_with("shown\nroot:"), "{file} and /etc/passwd\n{}", dump(&out));
    }
    let out = cat(&unlisted_data);
    assert!(!stdout(&out).contains("shown"), "an unlisted /etc entry showed\n{}", dump(&out));
    let new = format!("{}/new", srv.str());
    let out = minimal(&t, None, &[], &["/bin/touch", new.as_str()]);
    assert_ne!(out.status.code(), Some(0), "a system directory was writable\n{}", dump(&out));
    assert!(!Path::new(&new).exists(), "the run wrote into the host's {}", srv.str());
}

/// A caller's umask of 077 does not reach what the helper makes as root:
/// the minimal root's directories keep their modes, so the program reads
/// /etc/passwd and the system's directories; the program itself still
/// creates its files under the caller's umask, as the old tool's did.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_callers_umask_shapes_the_programs_files_not_the_minimal_root() {
    let t = require_root!();
    let script = "head -c 5 /etc/passwd; echo; ls -ld /etc | cut -c1-10; \
                  touch /tmp/made; ls -l /tmp/made | cut -c1-10";
    let out = t
        .run(&["--root", "minimal", "--nproc", "10", "--", "/bin/sh", "-c", script])
        .pre_exec(|| {
            // SAFETY: umask is async-signal-safe and cannot fail.
            unsafe { libc::umask(0o077) };
            Ok(())
        })
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_eq!(stdout(&out), "root:\ndrwxr-xr-x\n-rw-------\n", "{}", dump(&out));
}

// ---------------------------------------------------------------------------
// /tmp that just works

/// A program of the caller's under the host's /tmp, in a directory of its
/// own or straight in /tmp, named from elsewhere: the run sees it at its
/// path (read-only), in either root, and still has its own private /tmp.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_program_under_tmp_named_from_elsewhere_runs() {
    let t = require_root!();
    let dir = HostPath::dir("/tmp", "prog", t.test_user, 0o755);
    let in_dir = dir.path().join("hello");
    fs::copy(t.fixture("hello"), &in_dir).expect("copy hello");
    let alone = HostPath::new("/tmp", "hello-alone");
    fs::copy(t.fixture("hello"), alone.path()).expect("copy hello");
    let neighbour = HostPath::new("/tmp", "neighbour");
    fs::write(neighbour.path(), "x").expect("write a neighbour");
    for root in ["host", "minimal"] {
        for program in [path_str(&in_dir), alone.str()] {
            let out = t.safeexec(&["--root", root, "--", program]);
            assert_ok(&out, &format!("{root} {program}"));
            assert_eq!(stdout(&out), "Hello World\n", "{root} {program}\n{}", dump(&out));
        }
        // Only the program is shown of /tmp, not what lies beside it.
        let out = t.safeexec(&["--root", root, "--", &t.probe(), "exists", neighbour.str()]);
        assert_eq!(result_for(&out, "exists", neighbour.str()), "ENOENT", "{root}\n{}", dump(&out));
    }
}

/// A checkout under /tmp: the README's first command (an absolute program)
/// and a program of the checkout, run from there, in either root; the
/// caller's own directory is writable as everywhere else, and the run's
/// /tmp stays its own.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn runs_from_a_working_directory_under_tmp_work() {
    let t = require_root!();
    let checkout = HostPath::dir("/tmp", "checkout", t.test_user, 0o777);
    let hello = checkout.path().join("hello");
    fs::copy(t.fixture("hello"), &hello).expect("copy hello");
    symlink("hello", checkout.path().join("link")).expect("symlink");
    for root in ["host", "minimal"] {
        let out = t.safeexec_in(
            checkout.path(),
            &["--root", root, "--fsize", "100", "--exec", "/bin/echo", "hi"],
        );
        assert_ok(&out, root);
        assert_eq!(stdout(&out), "hi\n", "{root}\n{}", dump(&out));
        let out = t.safeexec_in(checkout.path(), &["--root", root, "--", "./hello"]);
        assert_eq!(stdout(&out), "Hello World\n", "{root}\n{}", dump(&out));
        let out = t.safeexec_in(
            checkout.path(),
            &[
                "--root",
                root,
                "--fsize",
                "1",
                "--nproc",
                "2",
                "--",
                "/bin/sh",
                "-c",
                "echo x > ./LEFT; echo y > /tmp/y; cat /tmp/y",
            ],
        );
        assert_ok(&out, root);
        assert_eq!(stdout(&out), "y\n", "{root}\n{}", dump(&out));
        let left = checkout.path().join("LEFT");
        assert_eq!(fs::read_to_string(&left).ok().as_deref(), Some("x\n"), "{root}");
        fs::remove_file(&left).expect("remove LEFT");
        assert!(!Path::new("/tmp/y").exists(), "{root}: the run wrote in the host's /tmp");
    }
}

// ---------------------------------------------------------------------------
// The minimal /dev of chroot runs

/// A jail of the caller's with the device nodes its owner made (as
/// cemc/python3jail says: /dev/null, /dev/urandom by mknod, here one of
/// them the host's memory in disguise, and a /dev/mem): the run gets the
/// host's null, zero, full, random and urandom, and none of the jail's.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_chroot_run_gets_the_five_host_devices_and_none_the_jails_owner_made() {
    let t = require_root!();
    let jail = t.scratch("dev-jail");
    jail.copy_in(Path::new(&t.fixture("probe-static")), "probe", 0o755);
    let dev = jail.dir("dev", 0o755);
    for (name, minor) in [("null", 1), ("mem", 1), ("urandom", 9)] {
        let path = std::ffi::CString::new(path_str(&dev.join(name))).expect("path");
        // SAFETY: mknod with a NUL-terminated path that outlives the call.
        let r =
            unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, minor)) };
        assert_eq!(r, 0, "mknod {name}: {}", std::io::Error::last_os_error());
    }
    let jail_dir = path_str(jail.path());
    let run = |attack: &[&str]| {
        let mut args = vec!["--chroot_dir", jail_dir, "--", "/probe"];
        args.extend_from_slice(attack);
        t.safeexec(&args)
    };
    let out = run(&["list", "/dev"]);
    let dev_entries = listed(&out);
    assert_eq!(
        dev_entries,
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "urandom", "zero"
        ],
        "{}",
        dump(&out)
    );
    let out = run(&["read", "/dev/urandom"]);
    assert_eq!(stdout(&out).trim(), "read=4096", "{}", dump(&out));
    let out = run(&["read", "/dev/null"]);
    assert_eq!(
        stdout(&out).trim(),
        "read=0",
        "the jail's null is the host's memory\n{}",
        dump(&out)
    );
    let out = run(&["write", "/dev/null"]);
    assert_eq!(stdout(&out).trim(), "wrote=6", "{}", dump(&out));
}
