//! The reports of an [`Outcome`]: the original text report, JSON, and an
//! isolate-style meta file. The verdict itself is `verdict`'s.

use std::fmt::Write as _;

use serde_json::json;
use shared::{End, Limits};

use crate::verdict::{figures_from, signal_name, LimitKind, Outcome, Verdict, SIGHUP, SIGPIPE};

fn cpu_us(o: &Outcome) -> u64 {
    o.cpu_us
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

/// The `limits` object: one key per row of the limits table, `null` for
/// no limit.
fn limits_json(l: &Limits) -> serde_json::Value {
    l.iter()
        .map(|(spec, value)| (spec.json_key.to_string(), json!(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One JSON object on one line (schema version 1, documented in the README).
pub fn json(o: &Outcome) -> String {
    let verdict = Verdict::of(o);
    let (exit_code, signal) = match o.end {
        End::Exited(c) => (Some(c), None),
        End::Signaled(s) | End::Stopped(s) => (None, Some(s)),
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
        "cgroup_absent": o.cgroup_absent,
        "figures_from": figures_from(o),
        "output_bytes": o.output_bytes,
        "uid": o.uid,
        "gid": o.gid,
        "limits": limits_json(&o.limits),
        "network": o.network.name(),
    });
    format!("{value}\n")
}

fn secs(us: u64) -> String {
    format!("{}.{:03}", us / 1_000_000, (us / 1000) % 1000)
}

/// An isolate-style meta file: `key:value` lines, times in seconds with
/// three decimals, memory in KiB, with isolate's rules: no exit status
/// after a time limit, `killed` only when safeexec ended the run, and
/// `cg-oom-killed` for the run's memory limit however it was enforced.
pub fn meta(o: &Outcome) -> String {
    let verdict = Verdict::of(o);
    let mut m = String::new();
    let _ = writeln!(m, "time:{}", secs(cpu_us(o)));
    let _ = writeln!(m, "time-wall:{}", secs(o.wall_us));
    let _ = writeln!(m, "max-rss:{}", o.maxrss_kib);
    if let Some((voluntary, forced)) = o.csw {
        let _ = writeln!(m, "csw-voluntary:{voluntary}");
        let _ = writeln!(m, "csw-forced:{forced}");
    }
    // isolate's keys for its cgroup mode.
    if let Some(kib) = o.cgroup.as_ref().and_then(|c| c.memory_peak_kib) {
        let _ = writeln!(m, "cg-mem:{kib}");
    }
    if o.limit == Some(LimitKind::Memory) || o.cgroup.as_ref().is_some_and(|c| c.oom_kills > 0) {
        let _ = writeln!(m, "cg-oom-killed:1");
    }
    if verdict != Verdict::TimeLimit {
        let _ = match o.end {
            End::Exited(code) => writeln!(m, "exitcode:{code}"),
            End::Signaled(sig) | End::Stopped(sig) => writeln!(m, "exitsig:{sig}"),
        };
    }
    if o.killed {
        let _ = writeln!(m, "killed:1");
    }
    let status_message = match (verdict, o.limit) {
        (Verdict::Ok, _) => None,
        (_, Some(LimitKind::Wall)) => Some(("TO", "Time limit exceeded (wall clock)".to_string())),
        (Verdict::TimeLimit, _) => Some(("TO", "Time limit exceeded".to_string())),
        (Verdict::MemoryLimit, _) => Some(("SG", "Memory limit exceeded".to_string())),
        (Verdict::OutputLimit, _) => Some(("SG", "Output limit exceeded".to_string())),
        (Verdict::NonZeroExit(code), _) => Some(("RE", format!("Exited with error status {code}"))),
        (Verdict::Signal(sig), _) if o.end == End::Stopped(sig) => {
            Some(("SG", format!("Stopped by signal {sig}")))
        }
        (Verdict::Signal(sig), _) => Some(("SG", format!("Caught fatal signal {sig}"))),
        (Verdict::InvalidFunction, _) => Some(("SG", format!("Caught fatal signal {SIGHUP}"))),
        (Verdict::InternalError, _) => Some(("SG", format!("Caught fatal signal {SIGPIPE}"))),
    };
    if let Some((status, message)) = status_message {
        let _ = writeln!(m, "status:{status}");
        let _ = writeln!(m, "message:{message}");
    }
    // Not isolate's: whether the run had the host's network.
    let _ = writeln!(m, "network:{}", o.network.name());
    // Not isolate's: where the memory figures and limit came from.
    let _ = writeln!(m, "figures-from:{}", figures_from(o).replace('\n', " "));
    m
}

/// The JSON report when safeexec could not run the program (exit status
/// 2): the one line it also printed.
pub fn json_failure(message: &str) -> String {
    format!("{}\n", json!({ "schema": 1, "verdict": "error", "error": message }))
}

/// The meta file when safeexec itself failed.
pub fn meta_failure(message: &str) -> String {
    format!("status:XX\nmessage:{}\n", message.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Source;
    use shared::{CgroupCounters, Limit, Network};

    fn outcome(end: End, limit: Option<LimitKind>) -> Outcome {
        Outcome {
            end,
            limit,
            exec_error: None,
            wall_us: 1_500_000,
            user_us: 1_000,
            sys_us: 2_345,
            cpu_us: 3_345,
            peak_kib: 1234,
            memory_source: Source::Rusage,
            maxrss_kib: 1234,
            cpu_source: Source::Rusage,
            killed: false,
            csw: Some((5, 6)),
            output_bytes: None,
            uid: 7,
            gid: 8,
            limits: Limits::default()
                .with(Limit::Cpu, Some(1000))
                .with(Limit::Wall, Some(2000))
                .with(Limit::Grace, Some(0))
                .with(Limit::Mem, Some(32768))
                .with(Limit::Stack, Some(8192))
                .with(Limit::Core, Some(0))
                .with(Limit::Fsize, Some(0))
                .with(Limit::Nproc, Some(0))
                .with(Limit::Nfile, Some(512)),
            cgroup: None,
            network: Network::Loopback,
            cgroup_absent: None,
            cgroup_missing: Some("the policy says cgroup = off".into()),
        }
    }

    /// Memory Limit Exceeded by an OOM kill, with every figure set.
    fn full() -> Outcome {
        Outcome {
            end: End::Signaled(9),
            limit: Some(LimitKind::Memory),
            exec_error: Some("Permission denied".into()),
            wall_us: 12_345_678,
            user_us: 2_000_500,
            sys_us: 999_999,
            cpu_us: 3_000_499,
            peak_kib: 4096,
            memory_source: Source::Proc,
            maxrss_kib: 2048,
            cpu_source: Source::Proc,
            killed: false,
            csw: None,
            output_bytes: Some(4097),
            uid: 1234,
            gid: 5678,
            limits: Limits::default()
                .with(Limit::Cpu, Some(3000))
                .with(Limit::Wall, Some(60000))
                .with(Limit::Grace, Some(250))
                .with(Limit::Mem, Some(65536))
                .with(Limit::Rss, Some(8192))
                .with(Limit::Stack, Some(8192))
                .with(Limit::Core, Some(0))
                .with(Limit::Fsize, Some(16))
                .with(Limit::Nproc, Some(3))
                .with(Limit::Nfile, Some(64))
                .with(Limit::Output, Some(4096)),
            cgroup: Some(CgroupCounters {
                version: 2,
                memory_peak_kib: Some(9000),
                cpu_us: Some(3_000_123),
                pids_peak: None,
                oom_kills: 1,
                memory_limited: true,
                memory_limit_hit: true,
            }),
            network: Network::Host,
            cgroup_absent: None,
            cgroup_missing: None,
        }
    }

    #[test]
    fn text_report_has_the_original_format() {
        assert_eq!(
            text(&outcome(End::Exited(0), None)),
            "OK\nelapsed time: 1 seconds\nmemory usage: 1234 kbytes\ncpu usage: 0.003 seconds\n"
        );
        assert_eq!(
            text(&full()),
            "Memory Limit Exceeded\nelapsed time: 12 seconds\nmemory usage: 4096 kbytes\ncpu usage: 3.000 seconds\n"
        );
    }

    #[test]
    fn verdict_lines_match_the_original() {
        let cases = [
            (End::Exited(3), None, "Command exited with non-zero status (3)"),
            (End::Signaled(11), None, "Command terminated by signal (11: SIGSEGV)"),
            (End::Signaled(9), Some(LimitKind::Memory), "Memory Limit Exceeded"),
            (End::Signaled(9), Some(LimitKind::Wall), "Time Limit Exceeded"),
            (End::Signaled(24), Some(LimitKind::Cpu), "Time Limit Exceeded"),
            (End::Signaled(24), None, "Command terminated by signal (24: SIGXCPU)"),
            (End::Signaled(34), None, "Command terminated by signal (34: UNKONWN)"),
            (End::Stopped(19), None, "Command terminated by signal (19: SIGSTOP)"),
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

    /// Byte for byte what the report printed before the limits table.
    #[test]
    fn json_is_unchanged_byte_for_byte() {
        assert_eq!(
            json(&outcome(End::Exited(0), None)),
            concat!(
                r#"{"cgroup":null,"cgroup_absent":null,"cpu_ms":3.345,"cpu_source":"rusage","exec_error":null,"#,
                r#""exit_code":0,"figures_from":"sampling: the policy says cgroup = off","#,
                r#""gid":8,"limit":null,"limits":{"core_kib":0,"cpu_ms":1000,"#,
                r#""fsize_kib":0,"grace_ms":0,"mem_kib":32768,"nfile":512,"nproc":0,"#,
                r#""output_bytes":null,"rss_kib":null,"stack_kib":8192,"wall_ms":2000},"#,
                r#""max_rss_kib":1234,"memory_source":"rusage","network":"loopback","#,
                r#""output_bytes":null,"#,
                r#""peak_memory_kib":1234,"schema":1,"signal":null,"signal_name":null,"#,
                r#""sys_ms":2.345,"uid":7,"user_ms":1.0,"verdict":"ok","verdict_text":"OK","#,
                r#""wall_ms":1500.0}"#,
                "\n"
            )
        );
        assert_eq!(
            json(&full()),
            concat!(
                r#"{"cgroup":{"cpu_ms":3000.123,"memory_limit_hit":true,"memory_limited":true,"#,
                r#""memory_peak_kib":9000,"oom_kills":1,"pids_peak":null,"version":2},"#,
                r#""cgroup_absent":null,"#,
                r#""cpu_ms":3000.499,"cpu_source":"proc","exec_error":"Permission denied","#,
                r#""exit_code":null,"figures_from":"cgroup v2","gid":5678,"limit":"memory","#,
                r#""limits":{"core_kib":0,"#,
                r#""cpu_ms":3000,"fsize_kib":16,"grace_ms":250,"mem_kib":65536,"nfile":64,"#,
                r#""nproc":3,"output_bytes":4096,"rss_kib":8192,"stack_kib":8192,"#,
                r#""wall_ms":60000},"max_rss_kib":2048,"memory_source":"proc","network":"host","#,
                r#""output_bytes":4097,"peak_memory_kib":4096,"schema":1,"signal":9,"#,
                r#""signal_name":"SIGKILL","sys_ms":999.999,"uid":1234,"user_ms":2000.5,"#,
                r#""verdict":"memory_limit","verdict_text":"Memory Limit Exceeded","#,
                r#""wall_ms":12345.678}"#,
                "\n"
            )
        );
    }

    #[test]
    fn json_limits_have_one_key_per_row_of_the_table() {
        let v: serde_json::Value = serde_json::from_str(&json(&full())).unwrap();
        let limits = v["limits"].as_object().unwrap();
        assert_eq!(limits.len(), shared::limits::TABLE.len());
        for spec in &shared::limits::TABLE {
            assert!(limits.contains_key(spec.json_key), "{}", spec.json_key);
        }
    }

    #[test]
    fn meta_uses_isolate_keys() {
        let wall = Outcome { killed: true, ..outcome(End::Signaled(9), Some(LimitKind::Wall)) };
        assert_eq!(
            meta(&wall),
            "time:0.003\ntime-wall:1.500\nmax-rss:1234\ncsw-voluntary:5\ncsw-forced:6\n\
             killed:1\nstatus:TO\nmessage:Time limit exceeded (wall clock)\nnetwork:loopback\n\
             figures-from:sampling: the policy says cgroup = off\n"
        );
        let ok = meta(&outcome(End::Exited(0), None));
        assert_eq!(
            ok,
            "time:0.003\ntime-wall:1.500\nmax-rss:1234\ncsw-voluntary:5\ncsw-forced:6\n\
             exitcode:0\nnetwork:loopback\nfigures-from:sampling: the policy says cgroup = off\n"
        );
        assert_eq!(
            meta(&full()),
            "time:3.000\ntime-wall:12.345\nmax-rss:2048\ncg-mem:9000\ncg-oom-killed:1\n\
             exitsig:9\nstatus:SG\nmessage:Memory limit exceeded\nnetwork:host\n\
             figures-from:cgroup v2\n"
        );
    }

    #[test]
    fn meta_as_isolate_for_a_program_that_killed_or_stopped_itself() {
        let m = meta(&outcome(End::Signaled(9), None));
        assert!(m.contains("exitsig:9\nstatus:SG\nmessage:Caught fatal signal 9\n"), "{m}");
        let m = meta(&outcome(End::Signaled(24), None));
        assert!(m.contains("exitsig:24\nstatus:SG\nmessage:Caught fatal signal 24\n"), "{m}");
        let m = meta(&outcome(End::Stopped(19), None));
        assert!(m.contains("exitsig:19\nstatus:SG\nmessage:Stopped by signal 19\n"), "{m}");
    }

    #[test]
    fn meta_of_a_time_limit_has_no_exit_status() {
        for end in [End::Exited(0), End::Signaled(9), End::Signaled(24)] {
            let m = meta(&Outcome { killed: true, ..outcome(end, Some(LimitKind::Cpu)) });
            assert!(!m.contains("exitsig") && !m.contains("exitcode"), "{m}");
            assert!(m.contains("status:TO\nmessage:Time limit exceeded\n"), "{m}");
        }
    }

    #[test]
    fn meta_says_cg_oom_killed_for_the_memory_limit_without_a_cgroup() {
        let sampled =
            Outcome { killed: true, ..outcome(End::Signaled(9), Some(LimitKind::Memory)) };
        let m = meta(&sampled);
        assert!(m.contains("cg-oom-killed:1\n") && m.contains("killed:1\n"), "{m}");
        assert!(!m.contains("cg-mem"), "{m}");
    }

    #[test]
    fn json_failure_is_one_object_with_the_error() {
        let v: serde_json::Value = serde_json::from_str(&json_failure("no \"such\"")).unwrap();
        assert_eq!(v, serde_json::json!({"schema": 1, "verdict": "error", "error": "no \"such\""}));
    }
}
