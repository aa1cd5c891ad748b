//! The legacy command line against the original C tool: each case runs the
//! old `safeexec` (built here from its source, setuid root as it expects)
//! and ours with the same arguments, as the same user, and compares exit
//! status and report: the verdict line byte for byte, the three figure
//! lines by shape (their values vary from run to run). Where the README's
//! list "Differences from the original" says the two differ, the case
//! says which of its entries, and checks that difference instead.
//!
//! The old tool's source is `../shared/seed/original/` beside the checkout
//! (as CI has it), or the directory `SAFEEXEC_ORIGINAL_SRC` names: its
//! `safeexec.c`, `safe.c`, `safe.h` and `os-detect.c`. It is built in
//! PREFIX/original, mode 4750 root:safeexec-test (only the test user may
//! run it), and removed when the test ends. Its target gets uid
//! 4194303 + its pid (`--uidplus`, far from any account) and group 65534
//! (`--gid`): its end-of-run `kill(-1)` as that uid reaches nothing else.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safeexec_tests::{
    dump, lookup_group, require_root, stderr, stdout, try_report, Ctx, Report, TEST_GROUP,
};

/// Given to both tools before each case's own options: ours ignores them.
const IDS: [&str; 4] = ["--uidplus", "4194303", "--gid", "65534"];

/// The built old tool; removed when dropped.
struct Original {
    dir: PathBuf,
    program: PathBuf,
}

impl Drop for Original {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn source_dir(t: &Ctx) -> PathBuf {
    match std::env::var_os("SAFEEXEC_ORIGINAL_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => t.repo.join("../shared/seed/original"),
    }
}

fn run_root(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(out.status.success(), "{shown} failed\n{}", dump(&out));
}

/// Builds the old tool as its README says, setuid root.
fn build_original(t: &Ctx) -> Original {
    let src = source_dir(t);
    let dir = t.prefix.join(format!("original-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create the old tool's build directory");
    let original = Original { program: dir.join("safeexec"), dir };
    for name in ["safeexec.c", "safe.c", "safe.h", "os-detect.c"] {
        fs::copy(src.join(name), original.dir.join(name)).unwrap_or_else(|e| {
            panic!(
                "cannot copy the old tool's {name} from {} (set SAFEEXEC_ORIGINAL_SRC): {e}",
                src.display()
            )
        });
    }
    let gcc = |args: &[&str]| {
        run_root(Command::new("gcc").args(args).current_dir(&original.dir));
    };
    gcc(&["-c", "safe.c"]);
    gcc(&["-o", "os-detect", "os-detect.c"]);
    let detect = Command::new("./os-detect").current_dir(&original.dir).output();
    let flags = String::from_utf8(detect.expect("run os-detect").stdout).expect("flags");
    let mut compile = vec!["-c", "safeexec.c"];
    compile.extend(flags.split_whitespace());
    gcc(&compile);
    gcc(&["-o", "safeexec", "safeexec.o", "safe.o"]);
    let gid = lookup_group(TEST_GROUP).expect("the test group").0;
    chown(&original.program, Some(0), Some(gid)).expect("chown the old tool");
    fs::set_permissions(&original.program, fs::Permissions::from_mode(0o4750))
        .expect("make the old tool setuid");
    original
}

/// Where a run's report went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReportAt {
    Stderr,
    /// `--report_file FILE` (the case's argument `@REPORT` names it).
    File,
    /// `--report_fd 3`, a file.
    Fd3,
    /// `--silent`.
    Nowhere,
}

/// One comparison.
struct Case {
    name: &'static str,
    args: Vec<String>,
    report: ReportAt,
    /// The program's stdout must be the same too. (`@REPORT` and `@JAIL`
    /// in `args` stand for a report file and a jail of the run's own.)
    same_stdout: bool,
    /// The run's stdout is a file (not a pipe).
    stdout_to_file: bool,
    /// The README's entry that says how the two differ here, if they do.
    difference: Option<Difference>,
}

/// Expected differences, each one of the README's list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Difference {
    /// A program killed by SIGKILL not for a limit: ours reports the signal,
    /// the original called every SIGKILL Time Limit Exceeded.
    SigkillIsTheSignal,
    /// An error before the run: exit status 2, the original's 1.
    ErrorsExit2,
    /// `\n` (backslash, n) in --env_vars also separates entries.
    BackslashNSeparates,
    /// --uidplus and --gid are ignored: the ids come from the policy.
    IdsFromThePolicy,
}

fn case(name: &'static str, args: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|a| a.to_string()).collect(),
        report: ReportAt::Stderr,
        same_stdout: true,
        stdout_to_file: false,
        difference: None,
    }
}

impl Case {
    fn report(mut self, at: ReportAt) -> Self {
        self.report = at;
        self
    }
    fn differs(mut self, d: Difference) -> Self {
        self.difference = Some(d);
        self
    }
    fn any_stdout(mut self) -> Self {
        self.same_stdout = false;
        self
    }
    fn stdout_to_file(mut self) -> Self {
        self.stdout_to_file = true;
        self.same_stdout = false;
        self
    }
}

/// What one tool did: status, stdout, and the report text.
struct Ran {
    out: Output,
    report: String,
    stdout: String,
}

fn run_tool(t: &Ctx, program: &Path, c: &Case, tag: &str) -> Ran {
    let s = t.scratch(&format!("diff-{}-{tag}", c.name));
    // Others may write in it: both tools' programs run as a uid of no one.
    s.dir("tests", 0o777);
    let report_path = s.join("report");
    // A jail of the caller's own with a static hello world.
    let jail = s.join("jail");
    if c.args.iter().any(|a| a == "@JAIL") {
        s.copy_in(Path::new(&t.fixture("hello-static")), "jail/hello", 0o755);
    }
    let args: Vec<String> = IDS
        .iter()
        .map(|a| a.to_string())
        .chain(c.args.iter().map(|a| match a.as_str() {
            "@REPORT" => report_path.clone(),
            "@JAIL" => jail.clone(),
            _ => a.clone(),
        }))
        .collect();
    let mut run = t.run_program(program, &args).cwd(s.path());
    // The caller's own file: ours reopens descriptors past 2 (README).
    let fd3 = s.file("fd3", b"", 0o644);
    if c.report == ReportAt::Fd3 {
        let file = fs::OpenOptions::new().write(true).open(&fd3).expect("open the fd 3 file");
        run = run.fd(file, 3);
    }
    let stdout_file = s.path().join("stdout");
    if c.stdout_to_file {
        run = run.fd(fs::File::create(&stdout_file).expect("create the stdout file"), 1);
    }
    let out = run.output();
    let report = match c.report {
        ReportAt::Stderr | ReportAt::Nowhere => stderr(&out),
        ReportAt::File => fs::read_to_string(&report_path).unwrap_or_else(|_| "(no file)".into()),
        ReportAt::Fd3 => fs::read_to_string(&fd3).unwrap_or_default(),
    };
    let stdout = stdout(&out);
    Ran { out, report, stdout }
}

/// The report's verdict line and figure lines, or why there are none.
fn shape(text: &str) -> Result<Report, String> {
    try_report(text.as_bytes()).ok_or_else(|| format!("no report in {text:?}"))
}

/// Whether the two runs agree for this case; `Err` says how not.
fn compare(c: &Case, old: &Ran, new: &Ran) -> Result<(), String> {
    let status = (old.out.status.code(), new.out.status.code());
    match c.difference {
        Some(Difference::ErrorsExit2) => {
            if status != (Some(1), Some(2)) {
                return Err(format!("exit status {status:?}, expected the original's 1 and our 2"));
            }
            return Ok(());
        }
        _ if status.0 != status.1 => return Err(format!("exit status {status:?}")),
        _ => {}
    }
    if c.same_stdout && old.stdout != new.stdout {
        match c.difference {
            Some(Difference::BackslashNSeparates | Difference::IdsFromThePolicy) => {}
            _ => return Err(format!("stdout {:?} against {:?}", old.stdout, new.stdout)),
        }
    } else if c.difference == Some(Difference::BackslashNSeparates) {
        return Err("--env_vars with \\n gave the same environment".into());
    }
    if c.report == ReportAt::Nowhere {
        return match (shape(&old.report), shape(&new.report)) {
            (Err(_), Err(_)) => Ok(()),
            _ => Err(format!("a report despite --silent: {:?} / {:?}", old.report, new.report)),
        };
    }
    let (o, n) = (shape(&old.report)?, shape(&new.report)?);
    match c.difference {
        Some(Difference::SigkillIsTheSignal) => {
            let ours = "Command terminated by signal (9: SIGKILL)";
            if (o.verdict.as_str(), n.verdict.as_str()) != ("Time Limit Exceeded", ours) {
                return Err(format!("verdicts {:?} / {:?}", o.verdict, n.verdict));
            }
        }
        _ if o.verdict != n.verdict => {
            return Err(format!("verdict {:?} against ours {:?}", o.verdict, n.verdict))
        }
        _ => {}
    }
    Ok(())
}

fn cases(t: &Ctx) -> Vec<Case> {
    let f = |name: &str| t.fixture(name);
    let (hello, loop_, sleep, raise) =
        (f("hello"), f("loop"), f("sleep_forever"), f("raise_signal"));
    let exit_with = f("exit_with");
    let write_file = f("write_file");
    let write_static = f("write_file-static");
    let (fork, memory) = (f("fork.py"), f("memory.py"));
    let py = safeexec_tests::PYTHON;
    let raise_case = |name, sig| case(name, &["--exec", &raise, sig]);
    vec![
        case("ok", &["--exec", &hello]),
        case("non-zero-exit", &["--exec", &exit_with, "3"]),
        case("cpu-limit", &["--cpu", "1", "--exec", &loop_]),
        case("wall-clock", &["--cpu", "1", "--clock", "1", "--exec", &sleep]),
        case("fsize-0-write", &["--exec", &write_file, "tests/out"]).any_stdout(),
        case("fsize-0-stdout-to-a-file", &["--exec", &hello]).stdout_to_file(),
        case("fsize-100-write", &["--fsize", "100", "--exec", &write_file, "tests/out"])
            .any_stdout(),
        raise_case("sigsegv", "11"),
        raise_case("sighup-invalid-function", "1"),
        raise_case("sigpipe-internal-error", "13"),
        raise_case("sigxfsz-output-limit", "25"),
        raise_case("sigxcpu-raised", "24"),
        raise_case("signal-34", "34"),
        raise_case("sigstop", "19"),
        raise_case("sigkill-raised", "9").differs(Difference::SigkillIsTheSignal),
        case("mem-1000", &["--mem", "1000", "--exec", &hello]),
        case("memory-error", &["--exec", py, &memory]).any_stdout(),
        case("nproc-0", &["--exec", py, &fork]),
        case("nproc-1", &["--nproc", "1", "--exec", py, &fork]),
        case("nfile-0", &["--nfile", "0", "--exec", &write_static, "tests/out"]),
        case(
            "stack-core-niceness",
            &["--stack", "4096", "--core", "0", "--niceness", "19", "--exec", &hello],
        ),
        // Each tool runs in a scratch directory of its own: pwd differs.
        case("share-newnet", &["--share_newnet", "--exec", &hello]),
        case("chroot-dir", &["--chroot_dir", "@JAIL", "--exec", "/hello"]),
        case("exec-dir", &["--exec_dir", "tests", "--exec", "/bin/pwd"]).any_stdout(),
        case("report-file", &["--report_file", "@REPORT", "--exec", &hello]).report(ReportAt::File),
        case("report-fd", &["--report_fd", "3", "--exec", &hello]).report(ReportAt::Fd3),
        case("report-fd-minus-1", &["--report_fd", "-1", "--exec", &hello]),
        case("silent", &["--silent", "--exec", &hello]).report(ReportAt::Nowhere),
        case("silent-report-file", &["--silent", "--report_file", "@REPORT", "--exec", &hello])
            .report(ReportAt::Nowhere),
        case("silent-twice", &["--silent", "--silent", "--exec", &hello]).report(ReportAt::Nowhere),
        case("cpu-twice", &["--cpu", "5", "--cpu", "1", "--exec", &loop_]),
        case("env-vars", &["--env_vars", "A=1\nFOO\nB=2", "--exec", "/usr/bin/env"]),
        case("env-vars-empty", &["--env_vars", "", "--exec", "/usr/bin/env"]),
        case("env-vars-py", &["--env_vars", "PY", "--exec", "/usr/bin/env"]),
        case("env-vars-backslash-n", &["--env_vars", "A=1\\nB=2", "--exec", "/usr/bin/env"])
            .differs(Difference::BackslashNSeparates),
        case("ids", &["--exec", &f("ids")]).differs(Difference::IdsFromThePolicy),
        case("bad-option", &["--bogus", "--exec", &hello]).differs(Difference::ErrorsExit2),
        case("cpu-0", &["--cpu", "0", "--exec", &hello]).differs(Difference::ErrorsExit2),
    ]
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_legacy_command_line_matches_the_original_tool_but_for_the_listed_differences() {
    let t = require_root!();
    let original = build_original(&t);
    let mut wrong = Vec::new();
    for c in cases(&t) {
        let old = run_tool(&t, &original.program, &c, "old");
        let new = run_tool(&t, &t.safeexec, &c, "new");
        if let Err(why) = compare(&c, &old, &new) {
            wrong.push(format!(
                "{}: {why}\n  args: {:?}\n  original:\n{}\n  ours:\n{}",
                c.name,
                c.args,
                dump(&old.out),
                dump(&new.out)
            ));
        }
    }
    assert!(wrong.is_empty(), "{} cases differ:\n{}", wrong.len(), wrong.join("\n"));
}

/// `--report_file` with `--silent`: the original still creates (empties)
/// the file, and so do we.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn silent_with_a_report_file_empties_it_as_the_original_did() {
    let t = require_root!();
    let s = t.scratch("silent-report-file");
    let path = s.file("report", b"an old report\n", 0o644);
    let out = t.safeexec(&["--silent", "--report_file", &s.join("report"), "--exec", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    assert_eq!(fs::read(&path).expect("the report file"), b"", "not emptied\n{}", dump(&out));
}
