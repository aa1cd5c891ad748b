//! The figures of issues 4 and 11, in one run: the start-up cost of
//! `safeexec --exec /bin/true` over a bare fork+exec beside bubblewrap's
//! (and isolate's, where installed) in one interleaved loop, runs per second
//! beside bubblewrap's, the start-up cost again on a host with 2,000 idle
//! processes of another user, and how close the reported CPU time, peak
//! memory and limit kills come to the truth.
//!
//! Run it with `sudo bash bench/run.sh` (see bench/README.md). As root it
//! sets up the test installation through the harness (tests/src/lib.rs),
//! compiles bench/fixtures/*.c with `gcc -O2`, starts the keeper of the idle
//! processes (a second copy of this binary that stays root, see [`Keeper`]),
//! then drops to the test user for good: every timed command runs as that
//! user, started directly (no setpriv in between, which would add two execs
//! to every timing).
//!
//! The targets are printed beside the figures and marked PASS or MISS; a
//! MISS does not fail the run (these are figures, not tests).

use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use safeexec_tests::{
    context, dump, lossy, machine_busy_ms, try_json_report, Access, Env, Ids, Json, OUTSIDER_USER,
    TEST_USER,
};

/// Timed rounds of the interleaved start-up loops (sections 1, 1b and 3),
/// after the warm-up rounds.
const ROUNDS: usize = 200;
const WARMUP_ROUNDS: usize = 20;
/// The pause after each command of an interleaved loop, untimed: what a
/// command leaves to finish after it returns (safeexec's helper cleaning
/// up after its report, the kernel's teardown of bubblewrap's network
/// namespace) is done before the next command starts, not in its time.
const SETTLE: Duration = Duration::from_millis(3);
/// How long each caller loops in the throughput section.
const THROUGHPUT_FOR: Duration = Duration::from_secs(3);
/// Concurrent callers of the throughput section.
const CALLERS: &[usize] = &[1, 2, 8];
/// The callers the throughput target judges: one per core of the issue's
/// two-core machine.
const TARGET_CALLERS: usize = 2;
/// Idle processes of another user on the host in section 3.
const HOST_SLEEPERS: usize = 2_000;
/// Section 3 runs [`ROUNDS`] rounds without the idle processes and as
/// many with them, in this many blocks each way, alternated; each block
/// after [`SCALE_WARMUP_ROUNDS`] untimed rounds (the first runs after the
/// idle processes start or end). The machine's speed drifts from block to
/// block by more than the idle processes move a run (bench/README), so
/// many short blocks, not a few long ones.
const SCALE_BLOCKS: usize = 8;
/// Resamples of the blocks for the interval of section 3's growth.
const SCALE_RESAMPLES: usize = 2_000;
const SCALE_WARMUP_ROUNDS: usize = 5;
/// How long each of them sleeps: the bound on its life should every
/// clean-up below fail.
const SLEEPER_SECS: &str = "900";
/// The first argument that makes this binary the keeper of the idle
/// processes instead of the benchmark.
const KEEPER_ARG: &str = "--keep-host-sleepers";
/// The isolate box the benchmark uses, when isolate is installed.
const ISOLATE_BOX: &str = "--box-id=11";
/// CPU seconds to burn, and how many runs of each.
const CPU_BURNS: &[(&str, usize)] = &[("0.05", 10), ("0.5", 5), ("2", 3)];
const SPIKE_RUNS: usize = 10;
/// The spike's size: 100 MiB.
const SPIKE_KIB: f64 = 102_400.0;
const LIMIT_RUNS: usize = 20;
/// The CPU and wall limit of the overshoot test, in ms.
const LIMIT_MS: f64 = 300.0;

/// Targets of issue 4.
const MAX_OVERHEAD_MS: f64 = 1.0;
const MAX_OVERSHOOT_MS: f64 = 5.0;
const MAX_SPIKE_ERROR: f64 = 0.02;
const MAX_CPU_ERROR_MS: f64 = 2.0;
const MAX_CPU_ERROR: f64 = 0.02;
/// Issue 15: what `--root minimal` may add over `--root host`.
const MAX_MINIMAL_ROOT_MS: f64 = 0.5;
/// Targets of issue 11: safeexec's start-up overhead as a fraction of the
/// faster peer's (and the fraction it aims at), its runs per second with
/// [`TARGET_CALLERS`] callers as a multiple of bubblewrap's, and how much
/// its overhead may grow with [`HOST_SLEEPERS`] idle processes on the host.
const MAX_PEER_RATIO: f64 = 0.75;
const AIM_PEER_RATIO: f64 = 0.5;
const MIN_THROUGHPUT_RATIO: f64 = 1.5;
const MAX_SCALE_GROWTH_MS: f64 = 0.2;

const TRUE: &str = "/bin/true";
const SLEEP: &str = "/bin/sleep";
/// bubblewrap exactly as issue 11 ran it.
const BWRAP_ARGS: &[&str] = &["--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", TRUE];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == KEEPER_ARG) {
        process::exit(keep_sleepers(&args[2..]));
    }
    // `cargo test --all-targets` runs this binary without --bench: do not
    // spend minutes there.
    if !args.iter().any(|a| a == "--bench") {
        println!("safeexec benchmark: skipped (run it with: sudo bash bench/run.sh)");
        return;
    }
    let Some(ctx) = context("bench", Access::Shared) else {
        eprintln!("the benchmark installs safeexec and needs root: sudo bash bench/run.sh");
        return;
    };
    let env: &Env = &ctx;
    let fixtures = match place_fixtures(env) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("bench: {e}");
            process::exit(1);
        }
    };
    // Learnt as root: git refuses a checkout that another user owns.
    let facts = Facts::gather(env);
    let keeper = match Keeper::start(env.outsider) {
        Ok(keeper) => Some(keeper),
        Err(e) => {
            eprintln!("bench: cannot start the keeper of the idle processes: {e}");
            None
        }
    };
    if let Err(e) = become_user(TEST_USER, env.test_user) {
        eprintln!("bench: cannot become {TEST_USER}: {e}");
        process::exit(1);
    }
    let mut b = Bench {
        safeexec: env.safeexec.clone(),
        helper: env.helper.clone(),
        work: env.work.clone(),
        burn: path_str(&fixtures.join("burn")),
        spike: path_str(&fixtures.join("spike")),
        safeexec_name: format!("safeexec ({} build)", facts.build_name),
        bwrap: None,
        isolate: None,
        peer_notes: Vec::new(),
        marks: Vec::new(),
    };
    b.check_install();
    b.probe_peers(&facts);

    print_header(env, &facts);
    b.startup();
    b.minimal_root();
    b.throughput();
    b.host_scale(keeper);
    b.cpu_accuracy();
    b.spike();
    b.overshoot();
    b.clean_up_isolate();

    let missed: Vec<&str> =
        b.marks.iter().filter(|(_, ok)| !ok).map(|(what, _)| what.as_str()).collect();
    println!();
    println!(
        "targets: {} PASS, {} MISS{}",
        b.marks.len() - missed.len(),
        missed.len(),
        if missed.is_empty() { String::new() } else { format!(" ({})", missed.join(", ")) }
    );
    drop(ctx);
}

// ---------------------------------------------------------------------------
// Set-up

/// Compiles bench/fixtures/*.c into PREFIX/bench and checks, through the
/// harness (setpriv, as the test user), that a run can execute them.
fn place_fixtures(env: &Env) -> Result<PathBuf, String> {
    let dir = env.prefix.join("bench");
    build_fixtures(&env.repo.join("bench/fixtures"), &dir)?;
    let burn = path_str(&dir.join("burn"));
    let out = env.safeexec(&["--json", "--exec", &burn, "0"]);
    match try_json_report(&out.stderr) {
        Some(j) if j["verdict"] == "ok" => Ok(dir),
        _ => Err(format!("a run cannot execute the fixture {burn}:\n{}", dump(&out))),
    }
}

/// Compiles every `*.c` of `src` with `gcc -O2` into `out` (0755 root).
fn build_fixtures(src: &Path, out: &Path) -> Result<(), String> {
    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let own = |p: &Path| {
        chown(p, Some(0), Some(0))
            .and_then(|()| fs::set_permissions(p, fs::Permissions::from_mode(0o755)))
            .map_err(|e| format!("cannot chown/chmod {}: {e}", p.display()))
    };
    own(out)?;
    let mut sources: Vec<PathBuf> = fs::read_dir(src)
        .map_err(|e| format!("cannot list {}: {e}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    for source in sources {
        let stem = source.file_stem().expect("a .c file has a stem");
        let dest = out.join(stem);
        let tmp = dest.with_extension(format!("tmp{}", process::id()));
        let result = Command::new("gcc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&tmp)
            .arg(&source)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run gcc: {e}"))?;
        if !result.status.success() {
            return Err(format!("gcc {} failed:\n{}", source.display(), dump(&result)));
        }
        own(&tmp)?;
        fs::rename(&tmp, &dest).map_err(|e| format!("cannot install {}: {e}", dest.display()))?;
    }
    Ok(())
}

/// Drops root for good: the groups of `name`, then its gid and uid (real,
/// effective and saved, so no capability is kept).
fn become_user(name: &str, ids: Ids) -> io::Result<()> {
    let cname = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: plain system calls with valid arguments; glibc applies the id
    // changes to every thread of the process.
    unsafe {
        if libc::initgroups(cname.as_ptr(), ids.gid) != 0
            || libc::setresgid(ids.gid, ids.gid, ids.gid) != 0
            || libc::setresuid(ids.uid, ids.uid, ids.uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::setuid(0) == 0 || libc::geteuid() != ids.uid || libc::getegid() != ids.gid {
            return Err(io::Error::other("root could not be dropped"));
        }
    }
    Ok(())
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("installation paths are UTF-8").to_string()
}

/// What the header says about the code, its build and the peers.
struct Facts {
    /// Short commit of the checkout, and whether it has uncommitted changes.
    commit: String,
    /// The C library of each installed binary, e.g. "musl, static".
    build: String,
    /// The safeexec binary's C library alone ("musl", "glibc"), for labels.
    build_name: String,
    bwrap: Option<PathBuf>,
    isolate: Option<PathBuf>,
    /// The peers' versions, or why one is missing.
    peers: String,
}

impl Facts {
    fn gather(env: &Env) -> Facts {
        let frontend = libc_of(&env.safeexec);
        let helper = libc_of(&env.helper);
        let build = if frontend == helper {
            format!("{frontend} (safeexec and its helper)")
        } else {
            format!("{frontend} (safeexec), {helper} (helper)")
        };
        let build_name = frontend.split(',').next().unwrap_or(frontend).to_string();
        let bwrap = on_path("bwrap");
        let isolate = on_path("isolate");
        let version = |p: &Path| {
            let out = Command::new(p).arg("--version").stdin(Stdio::null()).output();
            let text = out.map(|o| format!("{}{}", lossy(&o.stdout), lossy(&o.stderr)));
            let first = text.unwrap_or_default().lines().next().unwrap_or("").trim().to_string();
            format!("{first} ({})", p.display())
        };
        let peers = format!(
            "{}; {}",
            bwrap
                .as_deref()
                .map_or("bubblewrap: not installed (apt-get install bubblewrap)".into(), version),
            isolate
                .as_deref()
                .map_or("isolate: not on PATH (not packaged for Debian)".into(), version)
        );
        Facts { commit: commit_of(&env.repo), build, build_name, bwrap, isolate, peers }
    }
}

/// The checkout's short commit, "unknown" outside git.
fn commit_of(repo: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-c")
            .arg(format!("safe.directory={}", repo.display()))
            .arg("-C")
            .arg(repo)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
    };
    let Some(out) = git(&["rev-parse", "--short", "HEAD"]).filter(|o| o.status.success()) else {
        return "unknown".into();
    };
    let commit = lossy(&out.stdout).trim().to_string();
    match git(&["diff", "--quiet", "HEAD"]) {
        Some(o) if o.status.code() == Some(1) => format!("{commit} (with uncommitted changes)"),
        _ => commit,
    }
}

/// Which C library a binary was built with, from marks in its bytes: the
/// dynamic loader it names, or glibc's static start-up (which reads
/// GLIBC_TUNABLES, present even when stripped); a static binary with
/// neither is musl's.
fn libc_of(path: &Path) -> &'static str {
    let Ok(bytes) = fs::read(path) else {
        return "unreadable";
    };
    let has = |mark: &[u8]| bytes.windows(mark.len()).any(|w| w == mark);
    if has(b"GLIBC_TUNABLES") {
        "glibc, static"
    } else if has(b"/ld-musl-") {
        "musl, dynamic"
    } else if has(b"/ld-linux") {
        "glibc, dynamic"
    } else {
        "musl, static"
    }
}

/// An executable `name` in a directory of PATH (root's, before the drop).
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn print_header(env: &Env, facts: &Facts) {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let load = read("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!();
    println!("safeexec benchmark of commit {}", facts.commit);
    println!(
        "  {} ({cpus} CPUs), Linux {}, load average {} at start, as user {TEST_USER}",
        cpu,
        read("/proc/sys/kernel/osrelease").trim(),
        load.join(" ")
    );
    println!("  build: {}", facts.build);
    println!("  peers: {}", facts.peers);
    println!("  {} (helper {})", env.safeexec.display(), env.helper.display());
    println!(
        "  figures in ms unless said; a mark judges the medians for start-up, every run otherwise"
    );
}

// ---------------------------------------------------------------------------
// The idle processes of section 3

/// The keeper of section 3's idle processes: a second copy of this binary
/// (`--keep-host-sleepers UID GID COUNT`), started as root before the
/// benchmark drops root, since only root can start processes as another
/// user and kill them. On "start" it starts them, on "stop" it kills and
/// reaps them, one reply line each; it does the same when its stdin
/// closes, which is how it learns that the benchmark ended, however it
/// ended (an error, a panic, Ctrl-C). Should the keeper itself be killed,
/// the kernel kills them (their parent-death signal).
struct Keeper {
    child: Child,
    requests: ChildStdin,
    replies: BufReader<ChildStdout>,
}

impl Keeper {
    fn start(user: Ids) -> io::Result<Keeper> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([KEEPER_ARG, &user.uid.to_string(), &user.gid.to_string()])
            .arg(HOST_SLEEPERS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let requests = child.stdin.take().expect("stdin is piped");
        let replies = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Keeper { child, requests, replies })
    }

    /// Sends one request; its reply line.
    fn ask(&mut self, request: &str) -> Result<String, String> {
        writeln!(self.requests, "{request}").map_err(|e| format!("the keeper is gone: {e}"))?;
        let mut reply = String::new();
        match self.replies.read_line(&mut reply) {
            Ok(0) => Err("the keeper ended without a reply".into()),
            Ok(_) => Ok(reply.trim_end().to_string()),
            Err(e) => Err(format!("cannot read the keeper's reply: {e}")),
        }
    }

    /// Stops the idle processes, then waits for the keeper to end.
    fn finish(mut self) -> Result<String, String> {
        let reply = self.ask("stop");
        let Keeper { mut child, requests, .. } = self;
        drop(requests);
        let _ = child.wait();
        reply
    }
}

/// The keeper's side (see [`Keeper`]); `args` are UID GID COUNT.
fn keep_sleepers(args: &[String]) -> i32 {
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
    let (Some(uid), Some(gid), Some(count)) = (number(0), number(1), number(2)) else {
        eprintln!("bench: usage: {KEEPER_ARG} UID GID COUNT");
        return 2;
    };
    // Ctrl-C reaches the whole process group: the keeper outlives the
    // benchmark to clean up, and ends when the benchmark's pipe closes.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: setting a signal's disposition to ignored installs no handler.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    let mut sleepers = Vec::new();
    let mut out = io::stdout();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match line.trim() {
            "start" if !sleepers.is_empty() => "error: already started".to_string(),
            "start" => match start_sleepers(&mut sleepers, uid, gid, count as usize) {
                Ok(()) => format!("started {}", sleepers.len()),
                Err(e) => {
                    let stopped = stop_sleepers(&mut sleepers);
                    format!("error: cannot start /bin/sleep as uid {uid}: {e} ({stopped} stopped)")
                }
            },
            "stop" => format!("stopped and reaped {}", stop_sleepers(&mut sleepers)),
            other => format!("error: unknown request {other:?}"),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    stop_sleepers(&mut sleepers);
    0
}

/// Starts `count` `sleep`s as uid:gid, without supplementary groups (std
/// drops root's when it sets the uid), each with SIGKILL as its
/// parent-death signal.
fn start_sleepers(sleepers: &mut Vec<Child>, uid: u32, gid: u32, count: usize) -> io::Result<()> {
    let keeper = process::id();
    for _ in 0..count {
        let mut cmd = Command::new(SLEEP);
        cmd.arg(SLEEPER_SECS)
            .env_clear()
            .current_dir("/")
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec (std runs this after setuid, which
        // would clear the signal) the closure makes only async-signal-safe
        // system calls and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The keeper may have died before the signal was set.
                if libc::getppid() as u32 != keeper {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        sleepers.push(cmd.spawn()?);
    }
    Ok(())
}

/// Kills and reaps every sleeper started; how many. Each is signalled by
/// the pid of a child not yet reaped, which no other process can have.
fn stop_sleepers(sleepers: &mut Vec<Child>) -> usize {
    for sleeper in sleepers.iter_mut() {
        let _ = sleeper.kill();
    }
    for sleeper in sleepers.iter_mut() {
        let _ = sleeper.wait();
    }
    let stopped = sleepers.len();
    sleepers.clear();
    stopped
}

/// How many processes the machine has (the numeric entries of /proc).
fn process_count() -> usize {
    fs::read_dir("/proc").map_or(0, |dir| {
        dir.filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .count()
    })
}

// ---------------------------------------------------------------------------
// Running

struct Bench {
    safeexec: PathBuf,
    helper: PathBuf,
    work: PathBuf,
    burn: String,
    spike: String,
    /// safeexec's name in the start-up tables, with its build.
    safeexec_name: String,
    /// The peers that ran here (see [`Bench::probe_peers`]).
    bwrap: Option<PathBuf>,
    isolate: Option<PathBuf>,
    /// Why a peer was left out.
    peer_notes: Vec<String>,
    /// (what, met) for every target, for the summary.
    marks: Vec<(String, bool)>,
}

/// One run with a JSON report.
struct Run {
    /// The target's stdout.
    stdout: String,
    json: Json,
}

impl Run {
    fn num(&self, key: &str) -> f64 {
        self.json[key].as_f64().unwrap_or(f64::NAN)
    }

    fn text(&self, key: &str) -> String {
        match &self.json[key] {
            Json::String(s) => s.clone(),
            Json::Null => "null".into(),
            other => other.to_string(),
        }
    }
}

/// One command of an interleaved start-up loop.
struct Contender {
    /// Its name in the table.
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// A peer sandbox, whose overhead safeexec's is compared with.
    peer: bool,
}

impl Contender {
    fn new(name: &str, program: &Path, args: &[&str], peer: bool) -> Contender {
        Contender {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            peer,
        }
    }

    fn shown(&self) -> String {
        let program = self.program.file_name().map_or(self.program.as_os_str(), |n| n);
        format!("{} {}", program.to_string_lossy(), self.args.join(" "))
    }
}

impl Bench {
    /// A command as the test user would type it: empty environment but PATH,
    /// in the installation's work directory, stdin /dev/null.
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&self.work)
            .stdin(Stdio::null());
        cmd
    }

    fn safeexec(&self, args: &[&str]) -> Command {
        self.command(&self.safeexec, args)
    }

    fn bare_true(&self) -> Command {
        self.command(Path::new(TRUE), &[])
    }

    fn bwrap(&self, bwrap: &Path) -> Command {
        self.command(bwrap, BWRAP_ARGS)
    }

    fn run_of(&self, c: &Contender) -> Command {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        self.command(&c.program, &args)
    }

    /// Stops the benchmark when safeexec cannot even run /bin/true.
    fn check_install(&self) {
        let out = self
            .safeexec(&["--json", "--exec", TRUE])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.safeexec.display()));
        let ok = try_json_report(&out.stderr).is_some_and(|j| j["verdict"] == "ok");
        if !out.status.success() || !ok {
            eprintln!("bench: safeexec --json --exec /bin/true did not report ok:\n{}", dump(&out));
            process::exit(1);
        }
    }

    /// Runs each installed peer once as the test user: one that cannot run
    /// here (no user namespaces for unprivileged users, an isolate that
    /// refuses the box) is left out with the reason, rather than failing
    /// every round. isolate gets its box here, as its `--init`.
    fn probe_peers(&mut self, facts: &Facts) {
        let first_line = |out: &Output| {
            let text = format!("{}{}", lossy(&out.stderr), lossy(&out.stdout));
            text.lines().next().unwrap_or("no output").to_string()
        };
        if let Some(bwrap) = &facts.bwrap {
            match self.bwrap(bwrap).output() {
                Ok(out) if out.status.success() => self.bwrap = Some(bwrap.clone()),
                Ok(out) => self.peer_notes.push(format!(
                    "bubblewrap fails here ({}), left out: {}",
                    out.status,
                    first_line(&out)
                )),
                Err(e) => self.peer_notes.push(format!("bubblewrap cannot start, left out: {e}")),
            }
        }
        if let Some(isolate) = &facts.isolate {
            // A box left by an earlier run that ended early is emptied first.
            let _ = self.command(isolate, &[ISOLATE_BOX, "--cleanup"]).output();
            let init = self.command(isolate, &[ISOLATE_BOX, "--init"]).output();
            let probe = self.command(isolate, &[ISOLATE_BOX, "--run", "--", TRUE]).output();
            match (init, probe) {
                (Ok(init), Ok(probe)) if init.status.success() && probe.status.success() => {
                    self.isolate = Some(isolate.clone());
                }
                (Ok(init), _) if !init.status.success() => self.peer_notes.push(format!(
                    "isolate {ISOLATE_BOX} --init fails, left out: {}",
                    first_line(&init)
                )),
                (_, Ok(probe)) => self
                    .peer_notes
                    .push(format!("isolate --run fails, left out: {}", first_line(&probe))),
                (Err(e), _) | (_, Err(e)) => {
                    self.peer_notes.push(format!("isolate cannot start, left out: {e}"))
                }
            }
        }
    }

    fn clean_up_isolate(&self) {
        if let Some(isolate) = &self.isolate {
            let _ = self.command(isolate, &[ISOLATE_BOX, "--cleanup"]).output();
        }
    }

    /// `safeexec --json ARGS`, stdout a pipe; `None` (after saying why) when
    /// there is no JSON report.
    fn json_run(&self, args: &[&str]) -> Option<Run> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out: Output = match self.safeexec(&all).output() {
            Ok(out) => out,
            Err(e) => {
                eprintln!("bench: cannot run safeexec: {e}");
                return None;
            }
        };
        match try_json_report(&out.stderr) {
            Some(json) => {
                Some(Run { stdout: String::from_utf8_lossy(&out.stdout).into_owned(), json })
            }
            None => {
                eprintln!("bench: no JSON report from safeexec {all:?}:\n{}", dump(&out));
                None
            }
        }
    }

    fn mark(&mut self, what: &str, ok: bool) -> &'static str {
        self.marks.push((what.to_string(), ok));
        if ok {
            "PASS"
        } else {
            "MISS"
        }
    }

    // -----------------------------------------------------------------------
    // Interleaved start-up loops (sections 1, 1b and 3)

    /// The commands of issue 11's table: bare exec first, then the peers
    /// that run here, then safeexec with the packaged policy.
    /// Puts the programs compared in the state an installed system has
    /// them in: their files' pages dropped from the page cache, to be read
    /// back by their own execs in the warm-up (after a reboot, say), rather
    /// than left there by the writes of their installation. The harness
    /// writes safeexec's two static binaries afresh before every
    /// benchmark, and fresh copies started 0.1 to 0.19 ms faster per run
    /// than the same files some minutes later or read back from disk,
    /// while a fresh copy of bubblewrap (72 KiB) gained 0.035 ms (bench/
    /// README, "The binaries' pages"). The same for every peer; /bin/true,
    /// the program of every run, is left as it is.
    fn drop_cached_programs(&self, contenders: &[Contender]) {
        let mut files: Vec<&Path> = contenders
            .iter()
            .filter(|c| c.program != Path::new(TRUE))
            .map(|c| &*c.program)
            .collect();
        if files.contains(&self.safeexec.as_path()) {
            files.push(&self.helper);
        }
        for file in files {
            if let Err(e) = drop_cached(file) {
                eprintln!("bench: cannot drop the cached pages of {}: {e}", file.display());
            }
        }
    }

    fn contenders(&self) -> Vec<Contender> {
        let mut all = vec![Contender::new("bare exec", Path::new(TRUE), &[], false)];
        if let Some(bwrap) = &self.bwrap {
            all.push(Contender::new("bubblewrap", bwrap, BWRAP_ARGS, true));
        }
        if let Some(isolate) = &self.isolate {
            all.push(Contender::new("isolate", isolate, &[ISOLATE_BOX, "--run", "--", TRUE], true));
        }
        all.push(Contender::new(&self.safeexec_name, &self.safeexec, &["--exec", TRUE], false));
        all
    }

    /// Wall times of [`ROUNDS`] rounds after [`WARMUP_ROUNDS`]: each round
    /// runs every contender once, the order rotated by one every round, so
    /// that each runs as often first, second... and all share the
    /// machine's noise. A round in which a run failed is left out whole.
    /// The samples of each contender, and the rounds left out.
    fn interleaved(&self, contenders: &[Contender]) -> (Vec<Vec<f64>>, usize) {
        self.rounds_of(contenders, WARMUP_ROUNDS, ROUNDS)
    }

    /// [`Bench::interleaved`] with `rounds` timed rounds after `warmup`.
    fn rounds_of(
        &self,
        contenders: &[Contender],
        warmup: usize,
        rounds: usize,
    ) -> (Vec<Vec<f64>>, usize) {
        self.drop_cached_programs(contenders);
        let n = contenders.len();
        let mut samples = vec![Vec::with_capacity(rounds); n];
        let mut round = vec![0.0; n];
        let mut failed = 0;
        for i in 0..warmup + rounds {
            let mut ok = true;
            for j in 0..n {
                let k = (i + j) % n;
                let (ms, good) = timed(&mut self.run_of(&contenders[k]));
                thread::sleep(SETTLE);
                round[k] = ms;
                ok &= good;
            }
            if !ok {
                failed += 1;
            } else if i >= warmup {
                for (s, ms) in samples.iter_mut().zip(&round) {
                    s.push(*ms);
                }
            }
        }
        (samples, failed)
    }

    // -----------------------------------------------------------------------
    // 1. Start-up cost

    fn startup(&mut self) {
        let contenders = self.contenders();
        let (samples, failed) = self.interleaved(&contenders);
        println!();
        println!(
            "1. start-up: /bin/true as {TEST_USER}, {ROUNDS} interleaved rounds after {WARMUP_ROUNDS} \
             of warm-up (each round runs each command once, the order rotated every round){}",
            rounds_note(failed)
        );
        let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
        print_table_head("over bare", &[]);
        let overheads = print_rows(&contenders, &stats, |_, _| String::new());
        for c in &contenders[1..] {
            let policy = if c.name == self.safeexec_name { " (the packaged policy)" } else { "" };
            println!("   {:<26} = {}{policy}", c.name, c.shown());
        }
        for note in &self.peer_notes {
            println!("   {note}");
        }
        if self.isolate.is_none() && !self.peer_notes.iter().any(|n| n.starts_with("isolate")) {
            println!("   isolate: not on PATH (not packaged for Debian), left out");
        }
        let ours = *overheads.last().expect("safeexec is a contender");
        let mark = self.mark("overhead (issue 4)", ours <= MAX_OVERHEAD_MS);
        println!(
            "   {:<53} {ours:>+10.3}   target <= {MAX_OVERHEAD_MS} ms (issue 4)  {mark}",
            "safeexec's overhead over bare exec"
        );
        let faster = contenders
            .iter()
            .zip(&overheads)
            .filter(|(c, o)| c.peer && o.is_finite())
            .min_by(|a, b| a.1.total_cmp(b.1));
        match faster {
            Some((peer, &theirs)) => {
                let ratio = ours / theirs;
                let mark = self.mark("start-up vs peer", ratio <= MAX_PEER_RATIO);
                println!(
                    "   {:<53} {:>10}   target <= {MAX_PEER_RATIO}x, aim {AIM_PEER_RATIO}x{}  {mark}",
                    format!("safeexec's overhead / {}'s (the faster peer)", peer.name),
                    format!("{ratio:.2}x"),
                    if ratio <= AIM_PEER_RATIO { " (aim met)" } else { "" }
                );
            }
            None => println!("   no peer sandbox ran here: the ratio of issue 11 is left out"),
        }
    }

    /// What the minimal root adds: `--root minimal` against `--root host`,
    /// both of /bin/true, interleaved as in section 1.
    fn minimal_root(&mut self) {
        let contenders = [
            Contender::new(
                "--root host",
                &self.safeexec,
                &["--root", "host", "--exec", TRUE],
                false,
            ),
            Contender::new(
                "--root minimal",
                &self.safeexec,
                &["--root", "minimal", "--exec", TRUE],
                false,
            ),
        ];
        let (samples, failed) = self.interleaved(&contenders);
        let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
        println!();
        println!(
            "1b. the minimal root: safeexec ... --exec /bin/true, interleaved as in 1.{}",
            rounds_note(failed)
        );
        print_table_head("over host", &[]);
        let diff = print_rows(&contenders, &stats, |_, _| String::new())[1];
        let mark = self.mark("minimal root", diff <= MAX_MINIMAL_ROOT_MS);
        println!(
            "   {:<53} {diff:>+10.3}   target <= {MAX_MINIMAL_ROOT_MS} ms (issue 15)  {mark}",
            "what the minimal root adds"
        );
    }

    // -----------------------------------------------------------------------
    // 2. Throughput

    fn throughput(&mut self) {
        println!();
        println!(
            "2. throughput: completed runs of /bin/true per second, each caller looping for {} s",
            THROUGHPUT_FOR.as_secs()
        );
        println!(
            "   {:>7} {:>12} {:>12} {:>16} {:>22}",
            "callers", "safeexec", "bubblewrap", "safeexec/bwrap", "CPU ms/run se / bwrap"
        );
        let bwrap = self.bwrap.clone();
        let both = self.contenders();
        for (i, &callers) in CALLERS.iter().enumerate() {
            self.drop_cached_programs(&both);
            // Alternate which goes first, as in the start-up loops.
            let ours = || rate(callers, || self.safeexec(&["--exec", TRUE]));
            let theirs = |bwrap: &PathBuf| rate(callers, || self.bwrap(bwrap));
            let (ours, theirs) = if i % 2 == 0 {
                let o = ours();
                (o, bwrap.as_ref().map(theirs))
            } else {
                let t = bwrap.as_ref().map(theirs);
                (ours(), t)
            };
            let ratio = theirs.map(|t| ours.per_s / t.per_s);
            let cpu = format!(
                "{:.2} / {}",
                ours.cpu_ms,
                theirs.map_or("-".into(), |t| format!("{:.2}", t.cpu_ms))
            );
            let mut line = format!(
                "   {callers:>7} {:>12.0} {:>12} {:>16} {cpu:>22}",
                ours.per_s,
                theirs.map_or("-".into(), |t| format!("{:.0}", t.per_s)),
                ratio.map_or("-".into(), |r| format!("{r:.2}x"))
            );
            if callers == TARGET_CALLERS {
                if let Some(r) = ratio {
                    let mark = self.mark("throughput vs bubblewrap", r >= MIN_THROUGHPUT_RATIO);
                    line += &format!("   target >= {MIN_THROUGHPUT_RATIO}x  {mark}");
                }
            }
            let failed = ours.failed + theirs.map_or(0, |t| t.failed);
            println!("{line}{}", failed_note(failed));
        }
        println!(
            "   CPU ms/run: the whole machine's busy time per completed run (/proc/stat), every \
             process of the runs and the kernel's workers included"
        );
        if bwrap.is_none() {
            println!("   bubblewrap did not run here: the ratio of issue 11 is left out");
        }
        let bare = rate(1, || self.bare_true());
        println!(
            "   bare /bin/true, 1 caller, for scale: {:.0} runs/s, {:.2} CPU ms/run{}",
            bare.per_s,
            bare.cpu_ms,
            failed_note(bare.failed)
        );
    }

    // -----------------------------------------------------------------------
    // 3. Scale of the host

    /// Section 1's loop on the host as it is and with [`HOST_SLEEPERS`]
    /// idle processes of another user on it, in alternated blocks; how
    /// much each command's overhead over bare exec grows.
    fn host_scale(&mut self, keeper: Option<Keeper>) {
        println!();
        let Some(mut keeper) = keeper else {
            println!(
                "3. scale of the host: left out (the keeper of the idle processes did not start)"
            );
            self.mark("scale of the host", false);
            return;
        };
        let contenders = self.contenders();
        let before = process_count();
        let per_block = ROUNDS / SCALE_BLOCKS;
        // Each block's samples, by side: the interval resamples blocks.
        let (mut quiet, mut busy) = (Vec::new(), Vec::new());
        let (mut failed, mut took, mut during) = (0, Vec::new(), 0);
        let mut trouble = None;
        // Blocks without and with the idle processes in the order ABBA
        // ABBA...: a drift of the machine's speed over the section weighs
        // on both sides alike.
        let (mut running, mut stops) = (false, Vec::new());
        for block in 0..2 * SCALE_BLOCKS {
            let with = matches!(block % 4, 1 | 2);
            if with && !running {
                let clock = Instant::now();
                match keeper.ask("start") {
                    Ok(reply) if reply.starts_with("started") => running = true,
                    Ok(reply) | Err(reply) => {
                        trouble = Some(format!("the idle processes did not start: {reply}"));
                        break;
                    }
                }
                took.push(clock.elapsed().as_secs_f64());
                during = during.max(process_count());
            } else if !with && running {
                match keeper.ask("stop") {
                    Ok(reply) => stops.push(reply),
                    Err(e) => {
                        trouble = Some(format!("the idle processes did not stop: {e}"));
                        break;
                    }
                }
                running = false;
            }
            let (samples, left_out) = self.rounds_of(&contenders, SCALE_WARMUP_ROUNDS, per_block);
            failed += left_out;
            if with { &mut busy } else { &mut quiet }.push(samples);
        }
        let stopped = keeper.finish();
        let after = process_count();
        let stopped = match stopped {
            Ok(last) => Ok(stops.into_iter().chain([last]).collect::<Vec<_>>().join(", ")),
            Err(e) => Err(e),
        };
        if let Some(why) = trouble {
            println!("3. scale of the host: left out: {why}");
            self.mark("scale of the host", false);
            return;
        }
        let took = took.iter().sum::<f64>() / took.len().max(1) as f64;
        println!(
            "3. scale of the host: /bin/true interleaved as in 1., without and with \
             {HOST_SLEEPERS} idle processes of {OUTSIDER_USER} (sleep {SLEEPER_SECS}, started in \
             {took:.1} s on average; {before} -> {during} processes on the machine), in {} blocks \
             of {per_block} rounds each way, without and with alternating ABBA{}",
            SCALE_BLOCKS,
            rounds_note(failed)
        );
        let without = overheads(&pooled(&quiet, contenders.len()));
        let stats: Vec<Stats> =
            pooled(&busy, contenders.len()).iter().map(|s| Stats::of(s)).collect();
        print_table_head("over bare", &["without", "growth"]);
        let with = print_rows(&contenders, &stats, |i, over| {
            format!(" {:>+10.3} {:>+10.3}", without[i], over - without[i])
        });
        let growth = with.last().expect("safeexec is a contender")
            - without.last().expect("safeexec is a contender");
        let mark = self.mark("scale of the host", growth <= MAX_SCALE_GROWTH_MS);
        let (low, high) = growth_interval(&quiet, &busy, contenders.len() - 1);
        println!(
            "   {:<75} {growth:>+10.3}   target <= {MAX_SCALE_GROWTH_MS} ms  {mark}  \
             ({:.2} us per idle process; 90 % of block resamples {low:+.3} to {high:+.3})",
            "growth of safeexec's overhead",
            growth * 1000.0 / HOST_SLEEPERS as f64
        );
        match stopped {
            Ok(reply) => {
                println!("   idle processes: {reply} ({after} processes on the machine after)")
            }
            Err(e) => println!(
                "   idle processes: {e} (they die with the keeper: the figures with them may \
                 be of fewer)"
            ),
        }
    }

    // -----------------------------------------------------------------------
    // 4. Reported CPU time

    fn cpu_accuracy(&mut self) {
        println!();
        println!(
            "4. CPU time: cpu_ms of `safeexec --cpu 10 --json` vs CLOCK_PROCESS_CPUTIME_ID inside"
        );
        println!(
            "   {:>6} {:>4} {:>9} {:>9} {:>8} {:>8} {:>7} {:>8}   target",
            "burn s", "runs", "inside", "reported", "err med", "err max", "rel max", "source"
        );
        for &(secs, runs) in CPU_BURNS {
            let mut inside = Vec::new();
            let mut reported = Vec::new();
            let mut errors = Vec::new();
            let mut sources = Vec::new();
            let mut bad = 0;
            for _ in 0..runs {
                let Some(run) = self.json_run(&["--cpu", "10", "--exec", &self.burn, secs]) else {
                    bad += 1;
                    continue;
                };
                let measured: f64 = run.stdout.trim().parse().unwrap_or(f64::NAN);
                let cpu = run.num("cpu_ms");
                if run.text("verdict") != "ok" || !measured.is_finite() || !cpu.is_finite() {
                    eprintln!(
                        "bench: burn {secs} s: unexpected run: {} / stdout {:?}",
                        run.json, run.stdout
                    );
                    bad += 1;
                    continue;
                }
                inside.push(measured);
                reported.push(cpu);
                errors.push(cpu - measured);
                sources.push(run.text("cpu_source"));
            }
            let worst = errors.iter().copied().fold(0.0_f64, |m, e| m.max(e.abs()));
            let worst_rel =
                errors.iter().zip(&inside).map(|(e, t)| (e / t).abs()).fold(0.0_f64, f64::max);
            let ok = bad == 0
                && errors
                    .iter()
                    .zip(&inside)
                    .all(|(e, t)| e.abs() <= MAX_CPU_ERROR_MS.max(MAX_CPU_ERROR * t));
            let mark = self.mark(&format!("cpu {secs} s"), ok);
            println!(
                "   {:>6} {:>4} {:>9.3} {:>9.3} {:>+8.3} {:>8.3} {:>6.2}% {:>8}   <= {MAX_CPU_ERROR_MS} ms or {}%  {mark}{}",
                secs,
                inside.len(),
                median(&inside),
                median(&reported),
                median(&errors),
                worst,
                worst_rel * 100.0,
                summary(&sources),
                MAX_CPU_ERROR * 100.0,
                failed_note(bad)
            );
        }
    }

    // -----------------------------------------------------------------------
    // 5. Peak memory of a short spike

    fn spike(&mut self) {
        let mut reported = Vec::new();
        let mut inside = Vec::new();
        let mut held = Vec::new();
        let mut sources = Vec::new();
        let mut cgroup_peaks = Vec::new();
        let mut bad = 0;
        for _ in 0..SPIKE_RUNS {
            let Some(run) = self.json_run(&["--mem", "400000", "--exec", &self.spike]) else {
                bad += 1;
                continue;
            };
            let fields: Vec<f64> =
                run.stdout.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            let peak = run.num("peak_memory_kib");
            if run.text("verdict") != "ok" || fields.len() != 2 || !peak.is_finite() {
                eprintln!("bench: spike: unexpected run: {} / stdout {:?}", run.json, run.stdout);
                bad += 1;
                continue;
            }
            reported.push(peak);
            if let Some(kib) = run.json["cgroup"]["memory_peak_kib"].as_f64() {
                cgroup_peaks.push(kib);
            }
            inside.push(fields[0]);
            held.push(fields[1]);
            sources.push(run.text("memory_source"));
        }
        let worst =
            reported.iter().map(|r| ((r - SPIKE_KIB) / SPIKE_KIB).abs()).fold(0.0_f64, f64::max);
        let mark = self.mark("memory spike", bad == 0 && worst <= MAX_SPIKE_ERROR);
        println!();
        println!(
            "5. peak memory: 100 MiB touched, held {:.2} ms (median), freed; `safeexec --mem 400000 --json`",
            median(&held)
        );
        println!(
            "   {:>4} {:>10} {:>10} {:>10} {:>12} {:>8} {:>8}   target",
            "runs", "min KiB", "median", "max", "ru_maxrss in", "err max", "source"
        );
        println!(
            "   {:>4} {:>10.0} {:>10.0} {:>10.0} {:>12.0} {:>7.2}% {:>8}   within {}% of 102400 KiB  {mark}{}",
            reported.len(),
            reported.iter().copied().fold(f64::INFINITY, f64::min),
            median(&reported),
            reported.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            median(&inside),
            worst * 100.0,
            summary(&sources),
            MAX_SPIKE_ERROR * 100.0,
            failed_note(bad)
        );
        if !cgroup_peaks.is_empty() {
            let worst = cgroup_peaks
                .iter()
                .map(|r| ((r - SPIKE_KIB) / SPIKE_KIB).abs())
                .fold(0.0_f64, f64::max);
            println!(
                "   {:>4} {:>10.0} {:>10.0} {:>10.0} {:>12} {:>7.2}% {:>8}   (the run's cgroup peak, for comparison)",
                cgroup_peaks.len(),
                cgroup_peaks.iter().copied().fold(f64::INFINITY, f64::min),
                median(&cgroup_peaks),
                cgroup_peaks.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "",
                worst * 100.0,
                "cgroup",
            );
        }
    }

    // -----------------------------------------------------------------------
    // 6. Limit overshoot

    fn overshoot(&mut self) {
        println!();
        println!(
            "6. limit overshoot, limit {} s, {LIMIT_RUNS} runs each (reported - {LIMIT_MS})",
            LIMIT_MS / 1000.0
        );
        println!(
            "   {:<42} {:>8} {:>8} {:>8}  {:<16} target",
            "", "min", "median", "max", "verdict/limit"
        );
        let limit = format!("{}", LIMIT_MS / 1000.0);
        let burn = self.burn.clone();
        let cases: [(&str, &str, Vec<&str>, &str, &str); 2] = [
            (
                "cpu: --cpu 0.3, busy loop, cpu_ms",
                "cpu limit",
                vec!["--cpu", &limit, "--exec", &burn, "1000"],
                "cpu_ms",
                "cpu",
            ),
            (
                "wall: --clock 0.3, /bin/sleep 10, wall_ms",
                "wall limit",
                vec!["--clock", &limit, "--exec", SLEEP, "10"],
                "wall_ms",
                "wall",
            ),
        ];
        for (label, name, args, key, want) in cases {
            let mut over = Vec::new();
            let mut verdicts = Vec::new();
            let mut bad = 0;
            for _ in 0..LIMIT_RUNS {
                let Some(run) = self.json_run(&args) else {
                    bad += 1;
                    continue;
                };
                let figure = run.num(key);
                let verdict = format!("{}/{}", run.text("verdict"), run.text("limit"));
                if run.text("limit") != want || !figure.is_finite() {
                    bad += 1;
                }
                verdicts.push(verdict);
                if figure.is_finite() {
                    over.push(figure - LIMIT_MS);
                }
            }
            let lo = over.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = over.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ok = bad == 0 && lo.abs() <= MAX_OVERSHOOT_MS && hi.abs() <= MAX_OVERSHOOT_MS;
            let mark = self.mark(name, ok);
            println!(
                "   {:<42} {:>+8.3} {:>+8.3} {:>+8.3}  {:<16} within {MAX_OVERSHOOT_MS} ms  {mark}{}",
                label,
                lo,
                median(&over),
                hi,
                summary(&verdicts),
                failed_note(bad)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Measuring and statistics

/// Wall time of one run (spawn to reaped) in ms, and whether it exited 0.
fn timed(cmd: &mut Command) -> (f64, bool) {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let ok = cmd.status().is_ok_and(|s| s.success());
    (start.elapsed().as_secs_f64() * 1e3, ok)
}

/// What [`rate`] measured.
#[derive(Clone, Copy)]
struct Rate {
    per_s: f64,
    failed: usize,
    /// The machine's busy CPU time per completed run: every process of the
    /// run and the kernel's workers (a network namespace's teardown), and
    /// whatever else ran meanwhile.
    cpu_ms: f64,
}

/// Runs per second of `callers` threads, each looping `make()` for
/// [`THROUGHPUT_FOR`]; how many runs failed, and the CPU time per run.
/// Drops the pages of `file` from the page cache (those no process maps).
fn drop_cached(file: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(file)?;
    // SAFETY: posix_fadvise reads its integer arguments only; the
    // descriptor is open for the call.
    let err = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    match err {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

fn rate(callers: usize, make: impl Fn() -> Command + Sync) -> Rate {
    let busy = machine_busy_ms();
    let start = Instant::now();
    let end = start + THROUGHPUT_FOR;
    let counts: Vec<(usize, usize)> = thread::scope(|s| {
        let workers: Vec<_> = (0..callers)
            .map(|_| {
                s.spawn(|| {
                    let (mut done, mut failed) = (0, 0);
                    while Instant::now() < end {
                        if timed(&mut make()).1 {
                            done += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (done, failed)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a caller thread panicked")).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_ms = machine_busy_ms() - busy;
    let done: usize = counts.iter().map(|c| c.0).sum();
    let failed: usize = counts.iter().map(|c| c.1).sum();
    Rate { per_s: done as f64 / elapsed, failed, cpu_ms: cpu_ms / done.max(1) as f64 }
}

/// Each contender's samples of all `blocks` together.
fn pooled(blocks: &[Vec<Vec<f64>>], contenders: usize) -> Vec<Vec<f64>> {
    let mut all = vec![Vec::new(); contenders];
    for block in blocks {
        for (all, samples) in all.iter_mut().zip(block) {
            all.extend_from_slice(samples);
        }
    }
    all
}

/// Each contender's median over the first's (bare exec's).
fn overheads(samples: &[Vec<f64>]) -> Vec<f64> {
    samples.iter().map(|s| median(s) - median(&samples[0])).collect()
}

/// Section 3's growth of contender `k`'s overhead, recomputed over blocks
/// drawn with replacement on each side: its 5th and 95th percentiles, how
/// far the blocks' drift alone moves the figure.
fn growth_interval(quiet: &[Vec<Vec<f64>>], busy: &[Vec<Vec<f64>>], k: usize) -> (f64, f64) {
    if quiet.is_empty() || busy.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    // xorshift64: any fixed sequence does; the figures are reproducible.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut draw = |side: &[Vec<Vec<f64>>]| -> Vec<Vec<f64>> {
        let picked: Vec<Vec<Vec<f64>>> = (0..side.len())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                side[(state % side.len() as u64) as usize].clone()
            })
            .collect();
        pooled(&picked, side[0].len())
    };
    let mut growths: Vec<f64> = (0..SCALE_RESAMPLES)
        .map(|_| overheads(&draw(busy))[k] - overheads(&draw(quiet))[k])
        .collect();
    growths.sort_by(f64::total_cmp);
    (percentile(&growths, 5.0), percentile(&growths, 95.0))
}

struct Stats {
    p10: f64,
    median: f64,
    p90: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        Stats {
            p10: percentile(samples, 10.0),
            median: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
        }
    }
}

/// Nearest-rank percentile; NaN for no samples.
fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// "rusage" when all agree, else "rusage 7, proc 3".
fn summary(values: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|(s, _)| s == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    match counts.as_slice() {
        [] => "-".into(),
        [(only, _)] => (*only).to_string(),
        many => many.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", "),
    }
}

fn failed_note(failed: usize) -> String {
    if failed == 0 {
        String::new()
    } else {
        format!("  ({failed} runs failed)")
    }
}

fn rounds_note(failed: usize) -> String {
    if failed == 0 {
        String::new()
    } else {
        format!(" ({failed} rounds with a failed run left out)")
    }
}

/// The column heads of a start-up table: `over` names the first row, which
/// the others' medians are compared with; `extra` heads further columns.
fn print_table_head(over: &str, extra: &[&str]) {
    let mut head =
        format!("   {:<26} {:>8} {:>8} {:>8} {:>10}", "command", "p10", "median", "p90", over);
    for column in extra {
        head += &format!(" {column:>10}");
    }
    println!("{head}");
}

/// Prints one row per contender: p10, median and p90, then (but for the
/// first) the median's difference from the first's and `extra` of the
/// row's index and that difference; returns the differences (0 for the
/// first).
fn print_rows(
    contenders: &[Contender],
    stats: &[Stats],
    extra: impl Fn(usize, f64) -> String,
) -> Vec<f64> {
    let base = stats[0].median;
    let mut differences = Vec::with_capacity(stats.len());
    for (i, (c, s)) in contenders.iter().zip(stats).enumerate() {
        let over = s.median - base;
        let cells =
            if i == 0 { String::new() } else { format!(" {over:>+10.3}{}", extra(i, over)) };
        println!("   {:<26} {:>8.3} {:>8.3} {:>8.3}{cells}", c.name, s.p10, s.median, s.p90);
        differences.push(over);
    }
    differences
}
