//! The programs that call the original tool, run unchanged: their exact
//! command lines (through `/bin/sh -c`, as PHP's `proc_open` and Python's
//! `Popen` give them), from the directory and with the environment they
//! use, against jails built as their projects document, and judged by
//! their own parsing of the result, re-implemented here.
//!
//! - CS Circles' grader (cemc/cscircles-wp-content,
//!   `plugins/pybox/action-submit-code.php`): Python 3 in a jail built as
//!   cemc/python3jail says, owned by a service account (here the outsider
//!   user; the web server's account is the test user), with the one policy
//!   line `writable_chroot_roots = JAIL`.
//! - Websheets (daveagp/websheets `config.py` `java_prefix`, parsed as
//!   `grade_java.py` does) and java_visualize (daveagp/java_visualize
//!   `java_safe_ram_maketrace.php`), in a java_jail owned by a service
//!   account with the one policy line `chroot_roots = JAIL`. The JVM is
//!   not copied into that jail: a stand-in program at /java/bin/java
//!   (tests/fixtures/java_standin.c) takes its command line and acts as
//!   their Java programs do, java_visualize's two VMs talking over
//!   loopback included.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use safeexec_tests::{dump, lookup_group, path_str, require_root_exclusive, Ctx, Ids, Scratch};
use safeexec_tests::{stderr, stdout, TEST_GROUP};

/// Makes a character device node owned by `owner`, as the jail's admin
/// does with mknod.
fn mknod(path: &Path, major: u32, minor: u32, mode: u32, owner: Ids) {
    let c = std::ffi::CString::new(path_str(path)).expect("path");
    // SAFETY: mknod with a NUL-terminated path that outlives the call.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | mode, libc::makedev(major, minor)) };
    assert_eq!(r, 0, "mknod {}: {}", path.display(), std::io::Error::last_os_error());
    set_owner(path, owner, mode);
}

fn set_owner(path: &Path, owner: Ids, mode: u32) {
    chown(path, Some(owner.uid), Some(owner.gid)).expect("chown");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Creates `dir` (and its parents below `root`) owned by `owner`.
fn make_dir(root: &Path, rel: &str, owner: Ids, mode: u32) -> PathBuf {
    let mut path = root.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        path.push(part);
        if !path.is_dir() {
            fs::create_dir(&path).expect("mkdir");
            set_owner(&path, owner, 0o755);
        }
    }
    set_owner(&path, owner, mode);
    path
}

/// Copies `from` (following symlinks) to the same path inside `root`.
fn copy_into(root: &Path, from: &Path, owner: Ids) {
    let rel = from.to_str().expect("UTF-8 path").trim_start_matches('/');
    let to = root.join(rel);
    let parent = to.parent().expect("a parent").strip_prefix(root).expect("inside the jail");
    make_dir(root, path_str(parent), owner, 0o755);
    fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    chown(&to, Some(owner.uid), Some(owner.gid)).expect("chown");
}

/// The shared libraries `ldd` lists for `program`.
fn libraries(program: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(program).output().expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from))
        .collect()
}

/// Links (or, across file systems, copies) the tree `from` into `to`,
/// leaving out what a grader never imports. Hard links stay root's: a
/// chown would change the host's own files.
fn link_tree(from: &Path, to: &Path, owner: Ids) {
    const LEFT_OUT: &[&str] =
        &["test", "__pycache__", "site-packages", "dist-packages", "idlelib", "tkinter"];
    fs::create_dir_all(to).expect("mkdir");
    set_owner(to, owner, 0o755);
    for entry in fs::read_dir(from).expect("list the stdlib").flatten() {
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            if !LEFT_OUT.contains(&name.to_str().unwrap_or("")) {
                link_tree(&src, &dst, owner);
            }
        } else if kind.is_file() && fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).expect("copy a stdlib file");
        }
    }
}

/// A python3jail as its README and `maintenance` script build it, with the
/// host's Python 3: /bin/python3 and the libraries ldd lists, the standard
/// library in /lib/python3.X (found through `--env_vars PY`'s
/// PYTHONHOME=/), /static, /dev/null, /dev/random and /dev/urandom made
/// with mknod, everything owned by the service account, the top directory
/// 0751 (the web server may only enter it), and /scratch, where the web
/// server makes a directory per submission, of the web server's group.
///
/// One difference from `maintenance`: /scratch is 0771, not 0770. Python
/// 3.9 and later open their script by its absolute path
/// (/scratch/ID/usercode.py), which the run's uid, in no group of the
/// host, must be able to pass: with 0770 every submission fails with
/// "Permission denied", with the original tool as well (its run's uid was
/// in no such group either).
fn python3jail(t: &Ctx, scratch: &Scratch) -> PathBuf {
    let owner = t.outsider;
    let jail = make_dir(scratch.path(), "python3jail", owner, 0o755);
    let python = fs::canonicalize(safeexec_tests::PYTHON).expect("the host's python3");
    let bin = make_dir(&jail, "bin", owner, 0o755);
    fs::copy(&python, bin.join("python3")).expect("copy python3");
    set_owner(&bin.join("python3"), owner, 0o755);
    for lib in libraries(&python) {
        copy_into(&jail, &lib, owner);
    }
    let out = Command::new(&python)
        .args([
            "-S",
            "-c",
            "import sys, os; print(os.path.dirname(os.__file__), sys.version_info[1])",
        ])
        .output()
        .expect("ask python for its stdlib");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (stdlib, minor) = text.trim().split_once(' ').expect("stdlib and version");
    link_tree(Path::new(stdlib), &jail.join(format!("lib/python3.{minor}")), owner);
    make_dir(&jail, "static", owner, 0o755);
    make_dir(&jail, "dev", owner, 0o755);
    for (name, minor, mode) in [("null", 3, 0o666), ("random", 8, 0o666), ("urandom", 9, 0o444)] {
        mknod(&jail.join("dev").join(name), 1, minor, mode, owner);
    }
    let web_group = lookup_group(TEST_GROUP).expect("the web server's group").0;
    make_dir(&jail, "scratch", Ids { uid: 0, gid: web_group }, 0o771);
    set_owner(&jail, owner, 0o751);
    jail
}

/// What CS Circles' `safepython` returns, and what it shows the student.
#[derive(Debug)]
struct Submission {
    /// The report file (`safeexecOut`).
    report: String,
    ok: bool,
    cpu: Option<String>,
    stdout: String,
    /// The program's stderr, which the grader sends to a file.
    stderr: String,
    /// The output files, after the run.
    outdata: BTreeMap<String, String>,
    output: Output,
}

impl Submission {
    /// The grader's words for the run (action-submit-code.php).
    fn message(&self) -> String {
        let first = self.report.split('\n').next().unwrap_or("");
        if self.ok {
            "Program executed without crashing.".into()
        } else if first == "Command exited with non-zero status (1)" {
            "Program crashed.".into()
        } else {
            format!("Program crashed \u{2014} {first}.")
        }
    }

    fn dump(&self) -> String {
        format!("{self:#?}\n{}", dump(&self.output))
    }
}

/// The CPU time as the grader's `|(cpu.usage:.)([\d\.]*)(.seconds)|` finds it.
fn cpu_of(report: &str) -> Option<String> {
    let at = report.find("cpu usage: ")? + "cpu usage: ".len();
    let digits: String =
        report[at..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    report[at + digits.len()..].starts_with(" seconds").then_some(digits)
}

/// CS Circles' `safepython($files, $mainfile, $stdin, $cpulimit)`: a new
/// scratch directory (0711, the web server's) under the jail's /scratch,
/// the input files written and the output files made empty and 0777, the
/// exact command line run by the web server from the jail with an empty
/// environment, stdin piped, stderr to a file; then the report file and
/// the output files are read.
fn safepython(
    t: &Ctx,
    jail: &Path,
    files: &[(&str, Option<&str>)],
    main: &str,
    stdin: &str,
    cpulimit: u32,
) -> Submission {
    static N: AtomicU64 = AtomicU64::new(0);
    let web = t.test_user;
    let id = format!("L{}{:03}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let dir = format!("scratch/{id}/");
    let pjail = format!("{}/", path_str(jail));
    let here = make_dir(jail, &dir, web, 0o711);
    for (name, contents) in files {
        let path = here.join(name);
        fs::write(&path, contents.unwrap_or("")).expect("write a submission file");
        set_owner(&path, web, if contents.is_none() { 0o777 } else { 0o644 });
    }
    let report_file = format!("{pjail}{dir}safeexec.out");
    let stderr_file = here.join("stderr.out");
    let err = fs::File::create(&stderr_file).expect("create stderr.out");
    set_owner(&stderr_file, web, 0o644);
    let clock = cpulimit * 2 + 4; // WALLFACTOR, WALLBUFFER
    let command = format!(
        "{} --share_newnet --fsize 100 --env_vars PY --gid 2000 --uidplus 50000 --cpu {cpulimit} \
         --mem 100000 --clock {clock} --report_file {report_file} --chroot_dir {pjail} \
         --exec_dir /{dir} --exec /bin/python3 -u -S {main}",
        path_str(&t.safeexec)
    );
    let output = t
        .run_program("/bin/sh", &["-c", &command])
        .cwd(jail)
        .empty_env()
        .stdin_bytes(stdin.as_bytes())
        .fd(err, 2)
        .output();
    let report = fs::read_to_string(&report_file).unwrap_or_default();
    let outdata = files
        .iter()
        .filter(|(_, contents)| contents.is_none())
        .map(|(name, _)| {
            (name.to_string(), fs::read_to_string(here.join(name)).unwrap_or_default())
        })
        .collect();
    let submission = Submission {
        ok: report.starts_with("OK"),
        cpu: cpu_of(&report),
        stdout: stdout(&output),
        stderr: fs::read_to_string(&stderr_file).unwrap_or_default(),
        outdata,
        report,
        output,
    };
    let _ = fs::remove_dir_all(&here);
    submission
}

/// A CS Circles submission: `usercode.py` holding `code`, plus output files.
fn submit(t: &Ctx, jail: &Path, code: &str, outputs: &[&str], stdin: &str) -> Submission {
    let mut files = vec![("usercode.py", Some(code))];
    files.extend(outputs.iter().map(|name| (*name, None)));
    safepython(t, jail, &files, "usercode.py", stdin, 1)
}

/// The jail of a service account is refused under the packaged policy, with
/// a message that names the policy line to add; with that one line every
/// outcome the grader tells apart comes out as with the original tool: OK
/// (its output and CPU time), an exception (crashed), a time limit, a
/// write past `--fsize 100` (Python ignores SIGXFSZ: an exception, as with
/// the original), SIGSEGV, and output files written into the submission's
/// 0777 files.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn cs_circles_grader_runs_unchanged_in_a_python3jail_with_one_policy_line() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("cscircles");
    let jail = python3jail(&t, &scratch);
    let refused = submit(&t, &jail, "print(1)", &[], "");
    assert!(!refused.ok, "{}", refused.dump());
    assert!(refused.stderr.contains("writable_chroot_roots"), "{}", refused.dump());

    t.set_policy(&t.policy_with(&[("writable_chroot_roots", path_str(&jail))]));
    let ok = submit(&t, &jail, "s = input()\nprint(s * 2)\n", &[], "ab\n");
    assert_eq!(ok.message(), "Program executed without crashing.", "{}", ok.dump());
    assert_eq!(ok.stdout, "abab\n", "{}", ok.dump());
    assert!(ok.cpu.as_deref().is_some_and(|c| c.parse::<f64>().is_ok()), "{}", ok.dump());

    let raised = submit(&t, &jail, "raise ValueError('boom')\n", &[], "");
    assert_eq!(raised.message(), "Program crashed.", "{}", raised.dump());
    assert!(raised.stderr.contains("ValueError: boom"), "{}", raised.dump());

    let spin = submit(&t, &jail, "while True:\n    pass\n", &[], "");
    assert_eq!(spin.message(), "Program crashed \u{2014} Time Limit Exceeded.", "{}", spin.dump());
    let used: f64 = spin.cpu.as_deref().and_then(|c| c.parse().ok()).expect("cpu usage");
    assert!(used >= 1.0, "{}", spin.dump());

    let big = "with open('big.txt', 'w') as f:\n    f.write('x' * 200000)\n";
    let fsize = submit(&t, &jail, big, &["big.txt"], "");
    assert_eq!(fsize.message(), "Program crashed.", "{}", fsize.dump());
    assert!(fsize.stderr.contains("File too large"), "{}", fsize.dump());
    assert_eq!(fsize.outdata["big.txt"].len(), 100 * 1024, "{}", fsize.dump());

    let segv = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n";
    let segv = submit(&t, &jail, segv, &[], "");
    assert_eq!(
        segv.message(),
        "Program crashed \u{2014} Command terminated by signal (11: SIGSEGV).",
        "{}",
        segv.dump()
    );

    let write = "with open('out.txt', 'w') as f:\n    print('result', file=f)\nprint('done')\n";
    let wrote = submit(&t, &jail, write, &["out.txt"], "");
    assert_eq!(wrote.message(), "Program executed without crashing.", "{}", wrote.dump());
    assert_eq!(wrote.outdata["out.txt"], "result\n", "{}", wrote.dump());
    assert_eq!(wrote.stdout, "done\n", "{}", wrote.dump());
}

/// The jail's /dev/null and /dev/urandom, which the admin made with mknod:
/// a submission reads them as with the original tool. The jail's own
/// nodes are never honoured (the jail is nodev): every chroot run gets the
/// host's.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn cs_circles_submission_reads_dev_null_and_dev_urandom() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("cscircles-dev");
    let jail = python3jail(&t, &scratch);
    t.set_policy(&t.policy_with(&[("writable_chroot_roots", path_str(&jail))]));
    let code = "print(len(open('/dev/null').read()), len(open('/dev/urandom', 'rb').read(16)))\n";
    let dev = submit(&t, &jail, code, &[], "");
    assert_eq!(dev.message(), "Program executed without crashing.", "{}", dev.dump());
    assert_eq!(dev.stdout, "0 16\n", "{}", dev.dump());
}

/// A java_jail as its callers use it: /java/bin/java (the stand-in), /cp
/// (the classpath, the working directory of Websheets' runs) and /scratch,
/// owned by a service account, listed read-only in `chroot_roots`.
fn java_jail(t: &Ctx, scratch: &Scratch) -> PathBuf {
    let owner = t.outsider;
    let jail = make_dir(scratch.path(), "java_jail", owner, 0o755);
    let bin = make_dir(&jail, "java/bin", owner, 0o755);
    fs::copy(t.fixtures.join("java_standin-static"), bin.join("java")).expect("copy the JVM");
    set_owner(&bin.join("java"), owner, 0o755);
    make_dir(&jail, "cp", owner, 0o755);
    make_dir(&jail, "scratch", owner, 0o755);
    t.set_policy(&t.policy_with(&[("chroot_roots", path_str(&jail))]));
    jail
}

/// Websheets' `config.run_java`: `java_prefix()` + the command, through
/// Popen (no shell: each word is an argument, `--env_vars ""` an empty
/// one), stdin the grader's JSON; `grade_java.py` then says "Sandbox
/// Limit" with the first line of stderr when the return code is not 0 or
/// the output after RAMRun's status line starts with "Time Limit
/// Exceeded", else passes.
fn websheets(t: &Ctx, jail: &Path, stdin: &str) -> (String, Output) {
    let safeexec = path_str(&t.safeexec).to_string();
    let mut args: Vec<String> = [
        "--chroot_dir",
        path_str(jail),
        "--exec_dir",
        "/cp",
        "--env_vars",
        "",
        "--nproc",
        "100",
        "--mem",
        "10000000",
        "--nfile",
        "100",
        "--gid",
        "1000",
        "--clock",
        "5",
        "--exec",
        "/java/bin/java",
        "-cp",
        ".:javax.json-1.0.jar",
        "-Xmx128M",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["traceprinter/ramtools/RAMRun".into(), "tester.Hello".into()]);
    let out = t.run_program(&safeexec, &args).stdin_bytes(stdin.as_bytes()).output();
    let text = stdout(&out);
    let rest = text.split_once('\n').map_or("", |(_, rest)| rest);
    let verdict = if out.status.code() != Some(0) || rest.starts_with("Time Limit Exceeded") {
        format!("Sandbox Limit: {}", stderr(&out).split('\n').next().unwrap_or(""))
    } else if text.starts_with("Error") {
        "Internal Error (RAMRun)".to_string()
    } else {
        format!("Passed: {}", rest.trim_end())
    };
    (verdict, out)
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn websheets_java_grader_runs_unchanged_in_a_java_jail() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("websheets");
    let jail = java_jail(&t, &scratch);
    let (v, out) = websheets(&t, &jail, "{\"stdin\": \"THREADS\"}");
    assert_eq!(v, "Passed: Hello from tester.Hello env=0", "{}", dump(&out));
    let (v, out) = websheets(&t, &jail, "{\"stdin\": \"CRASH\"}");
    assert_eq!(
        v,
        "Sandbox Limit: Exception in thread \"main\" java.lang.RuntimeException: tester.Hello",
        "{}",
        dump(&out)
    );
    let (v, out) = websheets(&t, &jail, "{\"stdin\": \"LOOP\"}");
    assert_eq!(v, "Sandbox Limit: Time Limit Exceeded", "{}", dump(&out));
}

/// java_visualize's `java_safe_ram_maketrace.php`: its command string
/// through `/bin/sh -c` (`--share_newnet` with an empty value, `--env_vars
/// ''`), stdin the user's JSON; it shows the trace when safeexec returns 0
/// with some output. Its two VMs talk over loopback, which every run has:
/// under the packaged policy (no host network) the trace comes back.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn java_visualize_traces_with_its_two_vms_talking_over_loopback() {
    let t = require_root_exclusive!();
    let scratch = t.scratch("javavis");
    let jail = java_jail(&t, &scratch);
    let mut command = path_str(&t.safeexec).to_string();
    for (a, v) in [
        ("chroot_dir", path_str(&jail)),
        ("clock", "15"),
        ("cpu", "10"),
        ("mem", "8000000"),
        ("exec_dir", "/"),
        ("env_vars", "''"),
        ("nproc", "200"),
        ("nfile", "200"),
        ("share_newnet", ""),
    ] {
        command.push_str(&format!(" --{a} {v} "));
    }
    command.push_str(" --exec /java/bin/java -Xmx512M  -cp /cp/:/cp/javax.json-1.0.jar:/java/lib/tools.jar:/cp/visualizer-stdlib  traceprinter.InMemory");
    let out = t
        .run_program("/bin/sh", &["-c", &command])
        .stdin_bytes(b"{\"usercode\":\"public class X {}\"}")
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let trace = stdout(&out);
    assert!(trace.starts_with("{\"trace\":"), "{}", dump(&out));
    assert!(trace.contains("\"handshake\":\"JDWP-Handshake\""), "{}", dump(&out));
    assert!(trace.contains("\"env\":0"), "{}", dump(&out));
}
