//! Turning an `Outcome` into the verdict and the reports: the original text
//! report, JSON, and an isolate-style meta file.

use std::fmt::Write as _;

use serde_json::json;
use shared::{End, LimitKind, Limits, Outcome};

/// What happened to the run, in the original's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    NonZeroExit(i32),
    Signal(i32),
    MemoryLimit,
    TimeLimit,
    OutputLimit,
    /// The target died of SIGHUP (the original's wording).
    InvalidFunction,
    /// The target died of SIGPIPE (the original's wording).
    InternalError,
}

const SIGHUP: i32 = 1;
const SIGKILL: i32 = 9;
const SIGPIPE: i32 = 13;
const SIGXCPU: i32 = 24;
const SIGXFSZ: i32 = 25;

impl Verdict {
    pub fn of(outcome: &Outcome) -> Verdict {
        match (outcome.limit, outcome.end) {
            (Some(LimitKind::Memory), _) => Verdict::MemoryLimit,
            (Some(LimitKind::Cpu | LimitKind::Wall), _) => Verdict::TimeLimit,
            (Some(LimitKind::Output | LimitKind::FileSize), _) => Verdict::OutputLimit,
            (None, End::Exited(0)) => Verdict::Ok,
            (None, End::Exited(code)) => Verdict::NonZeroExit(code),
            (None, End::Signaled(SIGXCPU)) => Verdict::TimeLimit,
            (None, End::Signaled(SIGXFSZ)) => Verdict::OutputLimit,
            (None, End::Signaled(SIGHUP)) => Verdict::InvalidFunction,
            (None, End::Signaled(SIGPIPE)) => Verdict::InternalError,
            (None, End::Signaled(sig)) => Verdict::Signal(sig),
        }
    }

    /// The verdict line of the original report.
    pub fn line(self) -> String {
        match self {
            Verdict::Ok => "OK".into(),
            Verdict::NonZeroExit(code) => format!("Command exited with non-zero status ({code})"),
            Verdict::Signal(sig) => {
                format!("Command terminated by signal ({sig}: {})", signal_name(sig))
            }
            Verdict::MemoryLimit => "Memory Limit Exceeded".into(),
            Verdict::TimeLimit => "Time Limit Exceeded".into(),
            Verdict::OutputLimit => "Output Limit Exceeded".into(),
            Verdict::InvalidFunction => "Invalid Function".into(),
            Verdict::InternalError => "Internal Error".into(),
        }
    }

    /// A stable token for machine-readable reports.
    pub fn token(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NonZeroExit(_) => "nonzero_exit",
            Verdict::Signal(_) | Verdict::InvalidFunction | Verdict::InternalError => "signal",
            Verdict::MemoryLimit => "memory_limit",
            Verdict::TimeLimit => "time_limit",
            Verdict::OutputLimit => "output_limit",
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "SIG0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("SIGRT")
}

fn cpu_us(o: &Outcome) -> u64 {
    o.user_us + o.sys_us
}

/// The original four-line report; cpu usage is user + system time.
pub fn text(o: &Outcome) -> String {
    format!(
        "{}\nelapsed time: {} seconds\nmemory usage: {} kbytes\ncpu usage: {}.{:03} seconds\n",
        Verdict::of(o).line(),
        o.wall_us / 1_000_000,
        o.peak_kib,
        cpu_us(o) / 1_000_000,
        (cpu_us(o) / 1000) % 1000,
    )
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn limits_json(l: &Limits) -> serde_json::Value {
    json!({
        "cpu_ms": l.cpu_ms,
        "wall_ms": l.wall_ms,
        "grace_ms": l.grace_ms,
        "mem_kib": l.mem_kib,
        "rss_kib": l.rss_kib,
        "stack_kib": l.stack_kib,
        "core_kib": l.core_kib,
        "fsize_kib": l.fsize_kib,
        "nproc": l.nproc,
        "nfile": l.nfile,
        "output_bytes": l.output_bytes,
    })
}

/// One JSON object on one line (schema version 1, documented in the README).
pub fn json(o: &Outcome) -> String {
    let verdict = Verdict::of(o);
    let (exit_code, signal) = match o.end {
        End::Exited(c) => (Some(c), None),
        End::Signaled(s) => (None, Some(s)),
    };
    let value = json!({
        "schema": 1,
        "verdict": verdict.token(),
        "verdict_text": verdict.line(),
        "exit_code": exit_code,
        "signal": signal,
        "signal_name": signal.map(signal_name),
        "limit": o.limit.map(LimitKind::name),
        "exec_error": o.exec_error,
        "wall_ms": ms(o.wall_us),
        "cpu_ms": ms(cpu_us(o)),
        "user_ms": ms(o.user_us),
        "sys_ms": ms(o.sys_us),
        "cpu_source": o.cpu_source.name(),
        "peak_memory_kib": o.peak_kib,
        "memory_source": o.memory_source.name(),
        "max_rss_kib": o.maxrss_kib,
        "cgroup": o.cgroup.as_ref().map(|c| json!({
            "version": c.version,
            "memory_peak_kib": c.memory_peak_kib,
            "cpu_ms": c.cpu_us.map(ms),
            "pids_peak": c.pids_peak,
            "oom_kills": c.oom_kills,
            "memory_limited": c.memory_limited,
            "memory_limit_hit": c.memory_limit_hit,
        })),
        "output_bytes": o.output_bytes,
        "uid": o.uid,
        "gid": o.gid,
        "limits": limits_json(&o.limits),
    });
    format!("{value}\n")
}

fn secs(us: u64) -> String {
    format!("{}.{:03}", us / 1_000_000, (us / 1000) % 1000)
}

/// An isolate-style meta file: `key:value` lines, times in seconds with
/// three decimals, memory in KiB.
pub fn meta(o: &Outcome) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "time:{}", secs(cpu_us(o)));
    let _ = writeln!(m, "time-wall:{}", secs(o.wall_us));
    let _ = writeln!(m, "max-rss:{}", o.maxrss_kib);
    // isolate's keys for its cgroup mode.
    if let Some(kib) = o.cgroup.as_ref().and_then(|c| c.memory_peak_kib) {
        let _ = writeln!(m, "cg-mem:{kib}");
    }
    if o.cgroup.as_ref().is_some_and(|c| c.oom_kills > 0) {
        let _ = writeln!(m, "cg-oom-killed:1");
    }
    match o.end {
        End::Exited(code) => {
            let _ = writeln!(m, "exitcode:{code}");
        }
        End::Signaled(sig) => {
            let _ = writeln!(m, "exitsig:{sig}");
        }
    }
    let killed = o.limit.is_some() || o.end == End::Signaled(SIGKILL);
    if killed {
        let _ = writeln!(m, "killed:1");
    }
    let status_message = match (Verdict::of(o), o.limit) {
        (Verdict::Ok, _) => None,
        (_, Some(LimitKind::Wall)) => Some(("TO", "Time limit exceeded (wall clock)".to_string())),
        (Verdict::TimeLimit, _) => Some(("TO", "Time limit exceeded".to_string())),
        (Verdict::MemoryLimit, _) => Some(("SG", "Memory limit exceeded".to_string())),
        (Verdict::OutputLimit, _) => Some(("SG", "Output limit exceeded".to_string())),
        (Verdict::NonZeroExit(code), _) => Some(("RE", format!("Exited with error status {code}"))),
        (Verdict::Signal(sig), _) => Some(("SG", format!("Caught fatal signal {sig}"))),
        (Verdict::InvalidFunction, _) => Some(("SG", format!("Caught fatal signal {SIGHUP}"))),
        (Verdict::InternalError, _) => Some(("SG", format!("Caught fatal signal {SIGPIPE}"))),
    };
    if let Some((status, message)) = status_message {
        let _ = writeln!(m, "status:{status}");
        let _ = writeln!(m, "message:{message}");
    }
    m
}

/// The meta file when safeexec itself failed.
pub fn meta_failure(message: &str) -> String {
    format!("status:XX\nmessage:{}\n", message.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Source;

    fn outcome(end: End, limit: Option<LimitKind>) -> Outcome {
        Outcome {
            end,
            limit,
            exec_error: None,
            wall_us: 1_500_000,
            user_us: 1_000,
            sys_us: 2_345,
            peak_kib: 1234,
            memory_source: Source::Rusage,
            maxrss_kib: 1234,
            cpu_source: Source::Rusage,
            output_bytes: None,
            uid: 7,
            gid: 8,
            limits: Limits {
                cpu_ms: Some(1000),
                wall_ms: Some(2000),
                grace_ms: 0,
                mem_kib: Some(32768),
                rss_kib: None,
                stack_kib: Some(8192),
                core_kib: 0,
                fsize_kib: Some(0),
                nproc: 0,
                nfile: 512,
                output_bytes: None,
            },
            cgroup: None,
        }
    }

    #[test]
    fn text_report_has_the_original_format() {
        assert_eq!(
            text(&outcome(End::Exited(0), None)),
            "OK\nelapsed time: 1 seconds\nmemory usage: 1234 kbytes\ncpu usage: 0.003 seconds\n"
        );
    }

    #[test]
    fn verdict_lines_match_the_original() {
        let cases = [
            (
                End::Exited(3),
                None,
                "Command exited with non-zero status (3)",
            ),
            (
                End::Signaled(11),
                None,
                "Command terminated by signal (11: SIGSEGV)",
            ),
            (
                End::Signaled(9),
                Some(LimitKind::Memory),
                "Memory Limit Exceeded",
            ),
            (
                End::Signaled(9),
                Some(LimitKind::Wall),
                "Time Limit Exceeded",
            ),
            (End::Signaled(24), None, "Time Limit Exceeded"),
            (End::Signaled(25), None, "Output Limit Exceeded"),
            (End::Signaled(1), None, "Invalid Function"),
            (End::Signaled(13), None, "Internal Error"),
        ];
        for (end, limit, line) in cases {
            assert_eq!(Verdict::of(&outcome(end, limit)).line(), line);
        }
    }

    #[test]
    fn json_is_one_object_with_the_documented_keys() {
        let v: serde_json::Value =
            serde_json::from_str(&json(&outcome(End::Signaled(9), Some(LimitKind::Cpu)))).unwrap();
        assert_eq!(v["verdict"], "time_limit");
        assert_eq!(v["limit"], "cpu");
        assert_eq!(v["signal"], 9);
        assert_eq!(v["exit_code"], serde_json::Value::Null);
        assert_eq!(v["cpu_ms"], 3.345);
        assert_eq!(v["limits"]["nfile"], 512);
    }

    #[test]
    fn meta_uses_isolate_keys() {
        let m = meta(&outcome(End::Signaled(9), Some(LimitKind::Wall)));
        assert!(m.contains("time:0.003\n"), "{m}");
        assert!(m.contains("time-wall:1.500\n"));
        assert!(m.contains("max-rss:1234\n"));
        assert!(m.contains("exitsig:9\n"));
        assert!(m.contains("killed:1\n"));
        assert!(m.contains("status:TO\n"));
        let ok = meta(&outcome(End::Exited(0), None));
        assert!(ok.contains("exitcode:0\n") && !ok.contains("status:"));
    }
}
