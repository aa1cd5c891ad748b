//! Files the caller names, as another user or the caller's own mistake
//! can make them: report paths (`--report_file`, `--meta`) that are links
//! planted in a shared directory, FIFOs, devices, directories or sockets
//! are refused at once, nothing followed, nothing written, nothing waited
//! for; and secrets (`--env-file`, `--pass-env`) reach the target without
//! ever being on a command line or in an error message.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use safeexec_tests::{
    dump, json_report, json_uid, lossy, meta, path_str, process, require_root, run_pids, stderr,
    stdout, Ctx, HostPath, Ids, Input, User,
};

/// How long a refusal may take: it is made before the run, without
/// waiting on anything (a loaded machine still does it in far less).
const AT_ONCE: Duration = Duration::from_secs(10);

/// The two report paths: option, and how its errors name it.
const REPORT_PATHS: [(&str, &str); 2] = [("--report_file", "report file"), ("--meta", "meta file")];

/// `safeexec OPTION PATH --exec /bin/echo RAN` as the test user, bounded:
/// a frontend that waits on the path fails the test instead of hanging it.
fn report_to(t: &Ctx, option: &str, path: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = t
        .run(&["--json", option, path, "--exec", "/bin/echo", "RAN"])
        .timeout(Duration::from_secs(60))
        .output();
    (out, started.elapsed())
}

/// Asserts the refusal of a report path: exit 2, the one line `message`
/// (as `report_to` asks for JSON: the object that holds it), quickly, and
/// the program never ran.
fn assert_refused(out: &Output, took: Duration, message: &str) {
    assert_eq!(out.status.code(), Some(2), "{message}\n{}", dump(out));
    let json = serde_json::json!({ "schema": 1, "verdict": "error", "error": message });
    assert_eq!(stderr(out), format!("{json}\n"), "{}", dump(out));
    assert_eq!(stdout(out), "", "the program ran\n{}", dump(out));
    assert!(took < AT_ONCE, "the refusal took {took:?}: {message}");
}

fn link_message(what: &str, path: &str) -> String {
    format!("{what} {path} is a symbolic link; safeexec does not follow links for report files")
}

fn kind_message(what: &str, path: &str, kind: &str) -> String {
    format!("{what} {path} is {kind}; safeexec writes reports to regular files only")
}

/// Gives a path the test made as root to the test user.
fn own(path: &Path, user: Ids, mode: u32) {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).expect("chown");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path_str(path)).expect("a path without NUL");
    // SAFETY: mkfifo reads the NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
}

// ---------------------------------------------------------------------------
// Report paths

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_paths_that_are_links_are_refused_and_the_links_target_is_untouched() {
    let t = require_root!();
    let mine = t.scratch("caller-files");
    let victim = mine.file("victim", b"the caller's own file\n", 0o644);
    let nowhere = mine.path().join("nowhere");
    // A shared drop directory, as /tmp: sticky, everybody may write it.
    let root = Ids { uid: 0, gid: 0 };
    let shared = HostPath::dir(path_str(&t.work), "sticky", root, 0o1777);
    for (option, what) in REPORT_PATHS {
        let name = what.replace(' ', "-");
        // Another user plants a link to the caller's file where the
        // caller's report is to go.
        let planted = shared.path().join(&name);
        let ln = t
            .run_program("/bin/ln", &["-s", path_str(&victim), path_str(&planted)])
            .user(User::Outsider)
            .output();
        assert!(ln.status.success(), "the outsider could not plant a link\n{}", dump(&ln));
        assert_eq!(fs::symlink_metadata(&planted).expect("the planted link").uid(), t.outsider.uid);
        // And a dangling link of the caller's, whose target does not exist.
        let dangling = mine.path().join(format!("dangling-{name}"));
        std::os::unix::fs::symlink(&nowhere, &dangling).expect("symlink");
        let ids = t.test_user;
        std::os::unix::fs::lchown(&dangling, Some(ids.uid), Some(ids.gid)).expect("lchown");

        for link in [&planted, &dangling] {
            let (out, took) = report_to(&t, option, path_str(link));
            assert_refused(&out, took, &link_message(what, path_str(link)));
            assert!(fs::symlink_metadata(link).expect("the link").file_type().is_symlink());
        }
        assert_eq!(fs::read_link(&planted).expect("readlink"), victim, "the link was changed");
        assert_eq!(fs::read_link(&dangling).expect("readlink"), nowhere, "the link was changed");
        assert_eq!(
            fs::read(&victim).expect("the caller's file"),
            b"the caller's own file\n",
            "{option}: the link's target was written"
        );
        assert_eq!(fs::metadata(&victim).expect("stat").mode() & 0o7777, 0o644);
        assert!(fs::symlink_metadata(&nowhere).is_err(), "{option}: the link's target was created");
    }
}

/// Another user's file, left in a shared drop directory where the
/// caller's report is to go (writable by all, as `umask 0` makes it), is
/// refused before anything is written: its owner could read the report or
/// change it after us (an independent review's). The kernel refuses the
/// open itself where fs.protected_regular is set; this machine may not.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_files_another_user_planted_in_a_sticky_directory_are_refused() {
    let t = require_root!();
    let root = Ids { uid: 0, gid: 0 };
    let shared = HostPath::dir(path_str(&t.work), "sticky-planted", root, 0o1777);
    for (option, what) in REPORT_PATHS {
        let planted = shared.path().join(what.replace(' ', "-"));
        fs::write(&planted, b"the outsider's own\n").expect("plant");
        own(&planted, t.outsider, 0o666);
        let (out, took) = report_to(&t, option, path_str(&planted));
        let message = format!(
            "{what} {} belongs to another user (uid {}) in a sticky directory, who could read \
             or change the report: name a file of your own",
            path_str(&planted),
            t.outsider.uid
        );
        assert_refused(&out, took, &message);
        assert_eq!(fs::read(&planted).expect("the file"), b"the outsider's own\n");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_paths_that_are_fifos_devices_directories_or_sockets_are_refused_at_once() {
    let t = require_root!();
    let mine = t.scratch("caller-files");
    let lonely = mine.path().join("fifo-without-reader");
    mkfifo(&lonely);
    own(&lonely, t.test_user, 0o600);
    let read = mine.path().join("fifo-with-reader");
    mkfifo(&read);
    own(&read, t.test_user, 0o600);
    // The reader the report would reach if it were written.
    let mut reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&read)
        .expect("open the FIFO's reader");
    let dir = mine.dir("a-directory", 0o755);
    let socket_path = mine.path().join("socket");
    let _listener = UnixListener::bind(&socket_path).expect("bind a socket");
    own(&socket_path, t.test_user, 0o777);

    for (option, what) in REPORT_PATHS {
        for (path, kind) in [
            (lonely.as_path(), "a FIFO"),
            (read.as_path(), "a FIFO"),
            (Path::new("/dev/null"), "a device"),
            (dir.as_path(), "a directory"),
            (socket_path.as_path(), "a socket"),
        ] {
            let (out, took) = report_to(&t, option, path_str(path));
            assert_refused(&out, took, &kind_message(what, path_str(path), kind));
        }
    }
    // Nothing went through the FIFO that had a reader (a writer that came
    // and went would leave its bytes, or at least an end of file).
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got);
    assert!(got.is_empty(), "a report reached the FIFO: {:?}", lossy(&got));
    assert!(fs::read_dir(&dir).expect("list the directory").next().is_none());
}

/// A report or meta file below a directory that others may write (not
/// sticky) is refused at once: the sandbox uids are others, and a run
/// given that directory (here the caller's own working directory, 0777)
/// could put a file of its own in the report's place, or replace the
/// directory above it, also after the frontend is done (an independent
/// review's forged "OK", by a run alive beside the reported one).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_files_below_a_directory_others_may_write_are_refused() {
    let t = require_root!();
    let shared = t.scratch("shared");
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let own_dir = shared.path().join("own");
    fs::create_dir(&own_dir).expect("mkdir");
    own(&own_dir, t.test_user, 0o755);
    for (option, what) in REPORT_PATHS {
        for dir in [shared.path(), own_dir.as_path()] {
            let file = dir.join(what.replace(' ', "-"));
            let (out, took) = report_to(&t, option, path_str(&file));
            let message = format!(
                "{what} {} is below {}, which others may write (not sticky): a run could put a \
                 report of its own in its place; name a file in a directory runs cannot write",
                path_str(&file),
                path_str(shared.path())
            );
            assert_refused(&out, took, &message);
            assert!(!file.exists(), "{option}: the file was made");
        }
    }
}

/// A sticky directory keeps others from renaming a file in it, but not its
/// owner: one of another user's (here the outsider's), made where others
/// may make one (a shared directory such as /tmp), is refused as a place
/// for reports (a fourth review's note: a sandbox uid's own would be one).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_files_in_a_sticky_directory_another_user_owns_are_refused() {
    let t = require_root!();
    let root = Ids { uid: 0, gid: 0 };
    let shared = HostPath::dir(path_str(&t.work), "shared-sticky", root, 0o1777);
    let theirs = HostPath::dir(shared.str(), "sticky-theirs", t.outsider, 0o1777);
    for (option, what) in REPORT_PATHS {
        let file = theirs.path().join(what.replace(' ', "-"));
        let (out, took) = report_to(&t, option, path_str(&file));
        let message = foreign_message(what, &file, theirs.path(), t.outsider.uid);
        assert_refused(&out, took, &message);
        assert!(!file.exists(), "{option}: the file was made");
    }
}

fn foreign_message(what: &str, file: &Path, dir: &Path, owner: u32) -> String {
    format!(
        "{what} {} is below {}, a directory another user owns (uid {owner}), who could put a \
         report of its own in its place; name a file in a directory of yours or root's",
        path_str(file),
        path_str(dir),
    )
}

/// Not only a sticky directory: the owner of any directory on the way may
/// rename a file in it and put another in its place. A review of the tenth
/// round had another user make a directory (0755) and a file in it open to
/// all where a judge's report was to go, in a shared directory, before the
/// judge: that user read the report, then replaced it with an "OK" of its
/// own. Refused, and the file untouched. (Another user's directory that
/// root put where only root may write, a service account's jail, stands:
/// `callers::cs_circles_grader_runs_unchanged_in_a_python3jail_with_one_policy_line`.)
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_files_below_a_directory_another_user_owns_are_refused() {
    let t = require_root!();
    let root = Ids { uid: 0, gid: 0 };
    let shared = HostPath::dir(path_str(&t.work), "shared-squat", root, 0o1777);
    let theirs = HostPath::dir(shared.str(), "dir-theirs", t.outsider, 0o755);
    for (option, what) in REPORT_PATHS {
        let file = theirs.path().join(what.replace(' ', "-"));
        fs::write(&file, b"").expect("write");
        own(&file, t.outsider, 0o666);
        let (out, took) = report_to(&t, option, path_str(&file));
        assert_refused(&out, took, &foreign_message(what, &file, theirs.path(), t.outsider.uid));
        assert_eq!(fs::read(&file).expect("read"), b"", "{option}: the file was written");
    }
}

/// A symbolic link on the way to a report file is followed, and its owner
/// may point it at any directory: another user's link in a sticky
/// directory, named by the caller as the directory of its report, sent
/// the report into another file of the caller's (a review of the tenth
/// round, where fs.protected_symlinks is 0, as here). Refused, and the
/// caller's file untouched.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_paths_through_another_users_link_are_refused() {
    let t = require_root!();
    let mine = t.scratch("caller-dir");
    let root = Ids { uid: 0, gid: 0 };
    let shared = HostPath::dir(path_str(&t.work), "sticky-links", root, 0o1777);
    let link = shared.path().join("judge");
    std::os::unix::fs::symlink(mine.path(), &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(t.outsider.uid), Some(t.outsider.gid)).expect("lchown");
    for (option, what) in REPORT_PATHS {
        let name = what.replace(' ', "-");
        let precious = mine.file(&name, b"the caller's own data\n", 0o644);
        let file = link.join(&name);
        let (out, took) = report_to(&t, option, path_str(&file));
        let message = format!(
            "{what} {} goes through {}, a symbolic link another user owns (uid {}), who could \
             point it at another file; name a path without it",
            path_str(&file),
            path_str(&link),
            t.outsider.uid
        );
        assert_refused(&out, took, &message);
        let kept = fs::read(&precious).expect("read");
        assert_eq!(kept, b"the caller's own data\n", "{option}: the caller's file was written");
    }
}

/// A symbolic link reached through another is looked at too: the caller's
/// own link to another user's link, in a directory of that user's that it
/// made in a shared one, which that user pointed at another directory of
/// the caller's (a second review of the tenth round truncated the caller's
/// file there, and forged a report by pointing it at a directory of its
/// own). The way is walked as the kernel takes it, one link after another:
/// the caller's link leads into the other user's directory, refused.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_and_meta_paths_through_the_callers_link_to_another_users_link_are_refused() {
    let t = require_root!();
    let mine = t.scratch("chain-mine");
    let target = mine.dir("target", 0o755);
    let root = Ids { uid: 0, gid: 0 };
    let shared = HostPath::dir(path_str(&t.work), "chain-shared", root, 0o1777);
    let theirs = HostPath::dir(shared.str(), "chain-theirs", t.outsider, 0o755);
    let their_link = theirs.path().join("lnk");
    std::os::unix::fs::symlink(&target, &their_link).expect("symlink");
    let (o, me) = (t.outsider, t.test_user);
    std::os::unix::fs::lchown(&their_link, Some(o.uid), Some(o.gid)).expect("lchown");
    let my_link = mine.path().join("mylink");
    std::os::unix::fs::symlink(&their_link, &my_link).expect("symlink");
    std::os::unix::fs::lchown(&my_link, Some(me.uid), Some(me.gid)).expect("lchown");
    for (option, what) in REPORT_PATHS {
        let name = what.replace(' ', "-");
        let precious = target.join(&name);
        fs::write(&precious, b"the caller's own data\n").expect("write");
        own(&precious, me, 0o644);
        let file = my_link.join(&name);
        let (out, took) = report_to(&t, option, path_str(&file));
        let message = foreign_message(what, &file, theirs.path(), o.uid);
        assert_refused(&out, took, &message);
        let kept = fs::read(&precious).expect("read");
        assert_eq!(kept, b"the caller's own data\n", "{option}: the caller's file was written");
    }
}

/// What a service account made within a directory of its own that root
/// put where only root may write is what root arranged: a report two
/// levels down in such a tree (the account's directory, and one it made
/// in it) is written (a third review of the tenth round had the deeper
/// one refused, though the account could replace either alike).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_report_deep_in_a_service_accounts_tree_that_root_placed_is_written() {
    let t = require_root!();
    // The account's, with the judge's group (the caller's) let write in.
    let account = Ids { uid: t.outsider.uid, gid: t.test_user.gid };
    let grader = HostPath::dir(path_str(&t.work), "grader", account, 0o2775);
    let runs = HostPath::dir(grader.str(), "runs", account, 0o2775);
    let file = runs.path().join("report");
    let out = t.safeexec(&["--report_file", path_str(&file), "--exec", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let report = fs::read_to_string(&file).expect("the report");
    assert!(report.starts_with("OK\n"), "{report}");
}

/// The directories of a relative report path are found from the working
/// directory; where that cannot be named (removed), the frontend refuses
/// rather than look at nothing, and an absolute path, which needs none, is
/// looked at as always (a fourth review's way past the look: a removed
/// working directory, then a report below a 0777 directory of a jail).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn report_paths_are_looked_at_from_a_removed_working_directory_too() {
    let t = require_root!();
    let shared = t.scratch("shared-seen-from-nowhere");
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let base = t.scratch("removed-cwd");
    let frontend = t.prefix.join("bin/safeexec");
    for (option, what) in REPORT_PATHS {
        let absolute = shared.join(&what.replace(' ', "-"));
        let cases = [
            (
                absolute.as_str(),
                format!("below {}, which others may write", path_str(shared.path())),
            ),
            ("relative-report", "the working directory cannot be named".to_string()),
        ];
        for (report, said) in cases {
            let gone = base.join("gone");
            let script = format!(
                "mkdir {gone} && cd {gone} && rmdir {gone} && exec {} {option} {report} --exec \
                 /bin/echo RAN",
                path_str(&frontend)
            );
            let out = t.run_program("/bin/sh", &["-c", &script]).output();
            assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
            assert!(stderr(&out).contains(&said), "{said}\n{}", dump(&out));
            assert_eq!(stdout(&out), "", "the program ran\n{}", dump(&out));
        }
        assert!(!Path::new(&absolute).exists(), "{option}: the file was made");
    }
}

/// Where the report's directory comes to be writable by others during the
/// run, the run can still put the file aside and leave one of its own: the
/// frontend looks again once the run is over, and a path that names
/// another file than it opened is refused, exit 2, the file there left as
/// the run made it.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_report_or_meta_file_the_run_replaced_is_refused_not_trusted() {
    let t = require_root!();
    let cwd = t.scratch("replaced");
    let probe = t.probe();
    for (option, what) in REPORT_PATHS {
        fs::set_permissions(cwd.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let file = cwd.join("report.txt");
        let args = [option, &file, "--fsize", "16", "--exec", &probe, "replace", &file];
        let run = t.run(&args).cwd(cwd.path()).spawn();
        // Once the frontend has opened the file, the directory opens up.
        std::thread::sleep(Duration::from_millis(1500));
        fs::set_permissions(cwd.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        let out = run.wait();
        fs::set_permissions(cwd.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(stdout(&out).contains(&format!("replace {file}=ok")), "{}", dump(&out));
        assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
        let said = format!("{what} {file} was replaced during the run");
        assert!(stderr(&out).contains(&said), "{}", dump(&out));
        assert_eq!(fs::read_to_string(&file).ok().as_deref(), Some("forged\n"), "{}", dump(&out));
        fs::remove_file(&file).expect("remove the run's file");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn missing_report_and_meta_files_are_created_0644_with_the_report() {
    let t = require_root!();
    let mine = t.scratch("caller-files");
    let report = mine.join("report.json");
    let meta_path = mine.join("meta");
    let out = t
        .run(&[
            "--json",
            "--report_file",
            &report,
            "--meta",
            &meta_path,
            "--exec",
            "/bin/echo",
            "RAN",
        ])
        // No umask: the mode is the one safeexec asks for.
        .pre_exec(|| {
            // SAFETY: umask is async-signal-safe and cannot fail.
            unsafe { libc::umask(0) };
            Ok(())
        })
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_eq!(stdout(&out), "RAN\n", "{}", dump(&out));
    for path in [&report, &meta_path] {
        let m =
            fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}\n{}", dump(&out)));
        assert!(m.is_file(), "{path}");
        assert_eq!(m.mode() & 0o7777, 0o644, "{path}");
        assert_eq!((m.uid(), m.gid()), (t.test_user.uid, t.test_user.gid), "{path}");
    }
    let text = fs::read_to_string(&report).expect("read the report");
    let j: safeexec_tests::Json = serde_json::from_str(text.trim()).expect("a JSON report");
    assert_eq!(j["verdict"], "ok", "{text}");
    let m = meta(&fs::read_to_string(&meta_path).expect("read the meta file"));
    assert_eq!(m.get("exitcode").map(String::as_str), Some("0"), "{m:?}");
    t.assert_nothing_left(json_uid(&j), &dump(&out));
}

// ---------------------------------------------------------------------------
// Secrets

/// A value no command line or message of the suite has by chance.
fn secret(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("s3cr3t-{what}-{}-{nanos}", std::process::id())
}

fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_else(|e| panic!("cannot read the command line of {pid}: {e}"));
    lossy(&raw).replace('\0', " ")
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn env_file_and_pass_env_reach_the_target_and_no_command_line_shows_the_values() {
    let t = require_root!();
    let mine = t.scratch("caller-files");
    let (from_file, from_env) = (secret("file"), secret("env"));
    let env_file = mine.file(
        "secrets.env",
        format!("# the run's secrets\n\n  SAFEEXEC_FILE_SECRET={from_file}\n").as_bytes(),
        0o600,
    );
    // The target waits for a line on its stdin while the test looks.
    let (rx, mut tx) = std::io::pipe().expect("pipe");
    let run = t
        .run(&[
            "--json",
            "--env-file",
            path_str(&env_file),
            "--pass-env",
            "SAFEEXEC_PASSED_SECRET",
            "--exec",
            "/bin/sh",
            "-c",
            "read line; exec /usr/bin/env",
        ])
        .var("SAFEEXEC_PASSED_SECRET", &from_env)
        .stdin(Input::File(File::from(OwnedFd::from(rx))))
        .spawn();
    let frontend = run.id();
    let (sup, init, target) = run_pids(frontend);
    let mut seen = Vec::new();
    for (who, pid) in [("safeexec", frontend), ("helper", sup), ("init", init), ("target", target)]
    {
        let line = cmdline(pid);
        for value in [&from_file, &from_env] {
            assert!(
                !line.contains(value.as_str()),
                "the {who}'s command line shows a secret: {line}"
            );
        }
        seen.push(format!("{who}: {line}"));
    }
    // What was read is safeexec's own command line, as the caller gave it.
    assert!(seen[0].contains("--pass-env SAFEEXEC_PASSED_SECRET"), "{seen:?}");
    assert!(process(target).is_some_and(|p| p.alive()), "the run ended before the look");
    writeln!(tx).expect("let the target go on");
    drop(tx);
    let out = run.wait();
    let j = json_report(&out);
    assert_eq!(j["verdict"], "ok", "{j}\n{}", dump(&out));
    let env = stdout(&out);
    let vars: Vec<&str> = env.lines().collect();
    assert!(
        vars.contains(&format!("SAFEEXEC_FILE_SECRET={from_file}").as_str()),
        "the env file's variable did not reach the target\n{}",
        dump(&out)
    );
    assert!(
        vars.contains(&format!("SAFEEXEC_PASSED_SECRET={from_env}").as_str()),
        "the passed variable did not reach the target\n{}",
        dump(&out)
    );
    for value in [&from_file, &from_env] {
        assert!(!stderr(&out).contains(value.as_str()), "a secret in the report\n{}", dump(&out));
    }
    t.assert_nothing_left(json_uid(&j), &dump(&out));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_malformed_env_file_line_or_an_unset_pass_env_variable_is_refused_without_its_value() {
    let t = require_root!();
    let mine = t.scratch("caller-files");
    let value = secret("bad");
    let refused = |args: &[&str]| -> Output {
        let mut all = args.to_vec();
        all.extend(["--exec", "/bin/echo", "RAN"]);
        let out = t.run(&all).var("SAFEEXEC_HELD_SECRET", &value).output();
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", dump(&out));
        assert_eq!(stdout(&out), "", "the program ran\n{}", dump(&out));
        assert!(!stderr(&out).contains(&value), "the value is in the error\n{}", dump(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", dump(&out));
        out
    };
    for (i, (text, line, why)) in [
        (format!("GOOD=1\n{value} without an equals sign\n"), 2, "not NAME=VALUE"),
        (
            format!("# first\n\n={value}\n"),
            3,
            "not NAME=VALUE (a NAME is letters, digits and _, not starting with a digit)",
        ),
        (
            format!("OK=1\nexport SECRET={value}\n"),
            2,
            "not NAME=VALUE (a NAME is letters, digits and _, not starting with a digit)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let file = mine.file(&format!("bad-{i}.env"), text.as_bytes(), 0o600);
        let out = refused(&["--env-file", path_str(&file)]);
        assert_eq!(
            stderr(&out),
            format!("safeexec: env file {}: line {line}: {why}\n", file.display()),
            "{}",
            dump(&out)
        );
    }
    let out = refused(&["--pass-env", "SAFEEXEC_UNSET_SECRET"]);
    assert_eq!(
        stderr(&out),
        "safeexec: --pass-env SAFEEXEC_UNSET_SECRET: no such variable in safeexec's environment\n"
    );
    // A value given where a name is due is not repeated either.
    refused(&["--pass-env", &format!("SAFEEXEC_HELD_SECRET={value}")]);
}
