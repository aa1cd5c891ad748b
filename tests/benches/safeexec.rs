//! The figures of issue 4, in one run: the cost of `safeexec --exec
//! /bin/true` over a bare fork+exec, runs per second, and how close the
//! reported CPU time, peak memory and limit kills come to the truth.
//!
//! Run it with `sudo bash bench/run.sh` (see bench/README.md). As root it
//! sets up the test installation through the harness (tests/src/lib.rs),
//! compiles bench/fixtures/*.c with `gcc -O2`, then drops to the test user
//! for good: every command below runs as that user, started directly (no
//! setpriv in between, which would add two execs to every timing).
//!
//! The targets are printed beside the figures and marked PASS or MISS; a
//! MISS does not fail the run (these are figures, not tests).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{self, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use safeexec_tests::{context, dump, try_json_report, Access, Env, Ids, Json, TEST_USER};

/// Timed pairs (bare, safeexec) of runs of /bin/true, after the warm-up.
const OVERHEAD_RUNS: usize = 300;
const WARMUP_RUNS: usize = 20;
/// Runs of a peer sandbox (bubblewrap), when installed, in the same conditions.
const PEER_RUNS: usize = 100;
/// How long each caller loops in the throughput test.
const THROUGHPUT_FOR: Duration = Duration::from_secs(3);
/// CPU seconds to burn, and how many runs of each.
const CPU_BURNS: &[(&str, usize)] = &[("0.05", 10), ("0.5", 5), ("2", 3)];
const SPIKE_RUNS: usize = 10;
/// The spike's size: 100 MiB.
const SPIKE_KIB: f64 = 102_400.0;
const LIMIT_RUNS: usize = 20;
/// The CPU and wall limit of the overshoot test, in ms.
const LIMIT_MS: f64 = 300.0;

/// Targets of the issue.
const MAX_OVERHEAD_MS: f64 = 1.0;
/// Issue 15: what `--root minimal` may add over `--root host`.
const MAX_MINIMAL_ROOT_MS: f64 = 0.5;
const MAX_OVERSHOOT_MS: f64 = 5.0;
const MAX_SPIKE_ERROR: f64 = 0.02;
const MAX_CPU_ERROR_MS: f64 = 2.0;
const MAX_CPU_ERROR: f64 = 0.02;

const TRUE: &str = "/bin/true";
const SLEEP: &str = "/bin/sleep";

fn main() {
    // `cargo test --all-targets` runs this binary without --bench: do not
    // spend minutes there.
    if !std::env::args().any(|a| a == "--bench") {
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
    if let Err(e) = become_user(TEST_USER, env.test_user) {
        eprintln!("bench: cannot become {TEST_USER}: {e}");
        process::exit(1);
    }
    let mut b = Bench {
        safeexec: env.safeexec.clone(),
        work: env.work.clone(),
        burn: path_str(&fixtures.join("burn")),
        spike: path_str(&fixtures.join("spike")),
        marks: Vec::new(),
    };
    b.check_install();

    print_header(env);
    b.overhead();
    b.minimal_root();
    b.throughput();
    b.cpu_accuracy();
    b.spike();
    b.overshoot();

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

fn print_header(env: &Env) {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("safeexec benchmark");
    let load = read("/proc/loadavg");
    println!(
        "  {} ({cpus} CPUs), Linux {}, load average {} at start, as user {TEST_USER}",
        cpu,
        read("/proc/sys/kernel/osrelease").trim(),
        load.split_whitespace().next().unwrap_or("?")
    );
    println!("  {} (helper {})", env.safeexec.display(), env.helper.display());
    println!("  figures in ms unless said; a mark judges the median for the overhead, every run otherwise");
}

// ---------------------------------------------------------------------------
// Running

struct Bench {
    safeexec: PathBuf,
    work: PathBuf,
    burn: String,
    spike: String,
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
    // 1. Start-up cost

    fn overhead(&mut self) {
        let mut bare = Vec::with_capacity(OVERHEAD_RUNS);
        let mut sandboxed = Vec::with_capacity(OVERHEAD_RUNS);
        let mut failed = 0;
        for i in 0..WARMUP_RUNS + OVERHEAD_RUNS {
            // Alternate the order so that neither always runs second.
            let (b, s) = if i % 2 == 0 {
                let b = timed(&mut self.bare_true());
                (b, timed(&mut self.safeexec(&["--exec", TRUE])))
            } else {
                let s = timed(&mut self.safeexec(&["--exec", TRUE]));
                (timed(&mut self.bare_true()), s)
            };
            if !b.1 || !s.1 {
                failed += 1;
                continue;
            }
            if i >= WARMUP_RUNS {
                bare.push(b.0);
                sandboxed.push(s.0);
            }
        }
        let b = Stats::of(&bare);
        let s = Stats::of(&sandboxed);
        let diff = s.median - b.median;
        println!();
        println!(
            "1. start-up: /bin/true, {} interleaved pairs (after {WARMUP_RUNS} warm-up){}",
            bare.len(),
            if failed > 0 { format!(", {failed} failed runs left out") } else { String::new() }
        );
        println!("   {:<44} {:>8} {:>8} {:>8}", "", "p10", "median", "p90");
        println!(
            "   {:<44} {:>8.3} {:>8.3} {:>8.3}",
            "bare fork+exec (std::process::Command)", b.p10, b.median, b.p90
        );
        println!(
            "   {:<44} {:>8.3} {:>8.3} {:>8.3}",
            "safeexec --exec /bin/true", s.p10, s.median, s.p90
        );
        let mark = self.mark("overhead", diff <= MAX_OVERHEAD_MS);
        println!(
            "   {:<44} {:>8} {:>8.3} {:>8}   target <= {MAX_OVERHEAD_MS} ms  {mark}",
            "overhead (difference of the medians)", "", diff, ""
        );
        self.peer_bubblewrap(b.median);
    }

    /// A peer measured in the same way, when it is installed: bubblewrap
    /// with every namespace it can make (user, pid, net, IPC, UTS, cgroup),
    /// a read-only view of / and its own /proc, close to what safeexec sets up.
    fn peer_bubblewrap(&mut self, bare_median: f64) {
        let bwrap = "/usr/bin/bwrap";
        if !Path::new(bwrap).exists() {
            println!("   (bubblewrap not installed: apt-get install bubblewrap to compare)");
            return;
        }
        let args = [
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            TRUE,
        ];
        let mut times = Vec::with_capacity(PEER_RUNS);
        for _ in 0..PEER_RUNS {
            let mut cmd = Command::new(bwrap);
            cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            let (t, ok) = timed(&mut cmd);
            if !ok {
                println!("   (bubblewrap failed here: unprivileged user namespaces disabled?)");
                return;
            }
            times.push(t);
        }
        let p = Stats::of(&times);
        println!(
            "   {:<44} {:>8.3} {:>8.3} {:>8.3}   overhead {:.3}",
            "peer: bwrap --unshare-all ... /bin/true",
            p.p10,
            p.median,
            p.p90,
            p.median - bare_median
        );
    }

    /// What the minimal root adds: `--root minimal` against `--root host`,
    /// both of /bin/true, in interleaved pairs.
    fn minimal_root(&mut self) {
        let host = ["--root", "host", "--exec", TRUE];
        let minimal = ["--root", "minimal", "--exec", TRUE];
        let (mut h, mut m) = (Vec::new(), Vec::new());
        let mut failed = 0;
        for i in 0..WARMUP_RUNS + OVERHEAD_RUNS {
            let (a, b) = if i % 2 == 0 {
                let a = timed(&mut self.safeexec(&host));
                (a, timed(&mut self.safeexec(&minimal)))
            } else {
                let b = timed(&mut self.safeexec(&minimal));
                (timed(&mut self.safeexec(&host)), b)
            };
            if !a.1 || !b.1 {
                failed += 1;
                continue;
            }
            if i >= WARMUP_RUNS {
                h.push(a.0);
                m.push(b.0);
            }
        }
        let (h, m) = (Stats::of(&h), Stats::of(&m));
        println!();
        println!("1b. the minimal root: /bin/true, interleaved pairs{}", failed_note(failed));
        for (what, st) in [
            ("safeexec --root host --exec /bin/true", &h),
            ("safeexec --root minimal --exec /bin/true", &m),
        ] {
            println!("   {what:<44} {:>8.3} {:>8.3} {:>8.3}", st.p10, st.median, st.p90);
        }
        let diff = m.median - h.median;
        let mark = self.mark("minimal root", diff <= MAX_MINIMAL_ROOT_MS);
        println!(
            "   {:<44} {:>8} {:>8.3} {:>8}   target <= {MAX_MINIMAL_ROOT_MS} ms  {mark}",
            "minimal over host (difference of the medians)", "", diff, ""
        );
    }

    // -----------------------------------------------------------------------
    // 2. Throughput

    fn throughput(&mut self) {
        println!();
        println!("2. throughput: each caller loops for {} s", THROUGHPUT_FOR.as_secs());
        for callers in [1, 2] {
            let (rate, failed) = rate(callers, || self.safeexec(&["--exec", TRUE]));
            println!(
                "   {:<44} {rate:>8.0} runs/s{}",
                format!(
                    "safeexec --exec /bin/true, {callers} caller{}",
                    if callers == 1 { "" } else { "s" }
                ),
                failed_note(failed)
            );
        }
        let (rate, failed) = rate(1, || self.bare_true());
        println!(
            "   {:<44} {rate:>8.0} runs/s{}",
            "bare /bin/true, 1 caller (for scale)",
            failed_note(failed)
        );
    }

    // -----------------------------------------------------------------------
    // 3. Reported CPU time

    fn cpu_accuracy(&mut self) {
        println!();
        println!(
            "3. CPU time: cpu_ms of `safeexec --cpu 10 --json` vs CLOCK_PROCESS_CPUTIME_ID inside"
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
    // 4. Peak memory of a short spike

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
            "4. peak memory: 100 MiB touched, held {:.2} ms (median), freed; `safeexec --mem 400000 --json`",
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
    // 5. Limit overshoot

    fn overshoot(&mut self) {
        println!();
        println!(
            "5. limit overshoot, limit {} s, {LIMIT_RUNS} runs each (reported - {LIMIT_MS})",
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

/// Runs per second of `callers` threads, each looping `make()` for
/// [`THROUGHPUT_FOR`]; and how many runs failed.
fn rate(callers: usize, make: impl Fn() -> Command + Sync) -> (f64, usize) {
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
    let done: usize = counts.iter().map(|c| c.0).sum();
    let failed: usize = counts.iter().map(|c| c.1).sum();
    (done as f64 / elapsed, failed)
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
