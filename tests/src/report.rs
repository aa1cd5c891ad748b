//! Reading what a run said: the text report (the original's four lines), the
//! JSON report, the isolate-style meta file, and the probes' `key=value`
//! facts on stdout.

use std::collections::HashMap;
use std::process::Output;

use crate::Json;

pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Status, stdout and stderr of a run, for assertion messages.
pub fn dump(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
        out.status,
        lossy(&out.stdout),
        lossy(&out.stderr)
    )
}

/// The original's four-line text report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The verdict line, e.g. `OK` or `Command exited with non-zero status (1)`.
    pub verdict: String,
    pub elapsed_seconds: u64,
    pub memory_kbytes: u64,
    pub cpu_seconds: f64,
}

/// Parses the text report at the end of `stderr` (the target's own stderr
/// comes first); `None` if there is none.
pub fn try_report(stderr: &[u8]) -> Option<Report> {
    let text = lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().rposition(|l| l.starts_with("elapsed time: "))?;
    if at == 0 || lines.len() < at + 3 {
        return None;
    }
    let field = |line: &str, prefix: &str, suffix: &str| -> Option<String> {
        Some(line.strip_prefix(prefix)?.strip_suffix(suffix)?.to_string())
    };
    Some(Report {
        verdict: lines[at - 1].to_string(),
        elapsed_seconds: field(lines[at], "elapsed time: ", " seconds")?.parse().ok()?,
        memory_kbytes: field(lines[at + 1], "memory usage: ", " kbytes")?.parse().ok()?,
        cpu_seconds: {
            let cpu = field(lines[at + 2], "cpu usage: ", " seconds")?;
            let (whole, frac) = cpu.split_once('.')?;
            if frac.len() != 3 || !whole.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            cpu.parse().ok()?
        },
    })
}

/// Like [`try_report`], panicking with the whole output when there is no
/// report.
pub fn report(out: &Output) -> Report {
    try_report(&out.stderr).unwrap_or_else(|| panic!("no text report on stderr\n{}", dump(out)))
}

/// Parses the JSON report: the last non-empty line of stderr.
pub fn try_json_report(stderr: &[u8]) -> Option<Json> {
    let text = lossy(stderr);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let value: Json = serde_json::from_str(line).ok()?;
    value.is_object().then_some(value)
}

/// Like [`try_json_report`], panicking with the whole output when there is
/// no JSON report.
pub fn json_report(out: &Output) -> Json {
    try_json_report(&out.stderr)
        .unwrap_or_else(|| panic!("no JSON report on stderr\n{}", dump(out)))
}

/// Asserts the frontend's exit status and the report's verdict line.
pub fn assert_verdict(out: &Output, verdict: &str, status: i32) -> Report {
    let r = report(out);
    assert_eq!(r.verdict, verdict, "wrong verdict\n{}", dump(out));
    assert_eq!(out.status.code(), Some(status), "wrong exit status of safeexec\n{}", dump(out));
    r
}

pub fn stdout(out: &Output) -> String {
    lossy(&out.stdout)
}

pub fn stderr(out: &Output) -> String {
    lossy(&out.stderr)
}

/// Parses the `ids` fixture's line `uid=U gid=G euid=U egid=G groups=N`.
pub fn parse_ids(line: &str) -> Option<(u32, u32, u32, u32, i32)> {
    let mut values = line.split_whitespace().map(|kv| kv.split_once('=').map(|(_, v)| v));
    let mut next = || values.next().flatten();
    Some((
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
    ))
}

/// The run's uid from a JSON report.
pub fn json_uid(j: &Json) -> u32 {
    j["uid"]
        .as_u64()
        .and_then(|u| u32::try_from(u).ok())
        .unwrap_or_else(|| panic!("no uid in the report: {j}"))
}

/// Asserts the JSON report's verdict token and safeexec's exit status.
pub fn verdict(out: &Output, j: &Json, token: &str, status: i32) {
    assert_eq!(j["verdict"], token, "{}", dump(out));
    assert_eq!(out.status.code(), Some(status), "{}", dump(out));
}

/// Parses a meta file into its keys; every line must be `key:value`.
pub fn meta(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(|line| {
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("meta line without a colon: {line:?}\n{text}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The value of `key=` in a probe's output (first occurrence).
pub fn kv(text: &str, key: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|tok| tok.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// [`kv`] parsed as a number.
pub fn kv_num(text: &str, key: &str) -> Option<i64> {
    kv(text, key)?.parse().ok()
}

/// What a probe printed as `key=VALUE`; the test fails if it printed none.
pub fn word(out: &Output, key: &str) -> String {
    kv(&stdout(out), key).unwrap_or_else(|| panic!("no {key}= from the probe\n{}", dump(out)))
}

/// What a probe printed as `key=NUMBER`; the test fails if it printed none.
pub fn num(out: &Output, key: &str) -> i64 {
    kv_num(&stdout(out), key)
        .unwrap_or_else(|| panic!("no number {key}= from the probe\n{}", dump(out)))
}

/// Asserts that the probe said `want` for each of `keys`, naming every one
/// it did not.
pub fn assert_each(out: &Output, keys: &[&str], want: &str) {
    let wrong: Vec<String> = keys
        .iter()
        .map(|k| (k, word(out, k)))
        .filter(|(_, v)| v != want)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(wrong.is_empty(), "not {want}: {wrong:?}\n{}", dump(out));
}

/// The probe's `LABEL PATH=RESULT` line for `path`.
pub fn result_for(out: &Output, label: &str, path: &str) -> String {
    let prefix = format!("{label} {path}=");
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("no '{prefix}' line from the probe\n{}", dump(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parser_reads_the_four_lines_after_the_targets_stderr() {
        let stderr = b"target noise\nelapsed time: 9 seconds\nOK\nelapsed time: 3 seconds\nmemory usage: 1234 kbytes\ncpu usage: 0.250 seconds\n";
        let r = try_report(stderr).expect("a report");
        assert_eq!(
            r,
            Report {
                verdict: "OK".into(),
                elapsed_seconds: 3,
                memory_kbytes: 1234,
                cpu_seconds: 0.25
            }
        );
    }

    #[test]
    fn report_parser_rejects_malformed_reports() {
        assert!(try_report(b"").is_none());
        assert!(try_report(
            b"elapsed time: 1 seconds\nmemory usage: 1 kbytes\ncpu usage: 0.000 seconds\n"
        )
        .is_none());
        assert!(try_report(
            b"OK\nelapsed time: 1 seconds\nmemory usage: 1 kbytes\ncpu usage: 0.00 seconds\n"
        )
        .is_none());
        assert!(try_report(
            b"OK\nelapsed time: x seconds\nmemory usage: 1 kbytes\ncpu usage: 0.000 seconds\n"
        )
        .is_none());
    }

    #[test]
    fn json_report_parser_takes_the_last_line() {
        let v = try_json_report(b"noise\n{\"schema\":1,\"verdict\":\"ok\",\"uid\":5}\n\n")
            .expect("json");
        assert_eq!(v["verdict"], "ok");
        assert_eq!(v["uid"], 5);
        assert!(try_json_report(b"OK\n").is_none());
    }

    #[test]
    fn probe_facts_parse() {
        assert_eq!(kv("a=1 b=two\nc=3", "b").as_deref(), Some("two"));
        assert_eq!(kv("ab=1", "b"), None);
        assert_eq!(kv_num("n=-4", "n"), Some(-4));
        assert_eq!(meta("time:0.010\nstatus:TO\n")["status"], "TO");
    }

    #[test]
    fn ids_line_parses() {
        assert_eq!(parse_ids("uid=5 gid=6 euid=5 egid=6 groups=0"), Some((5, 6, 5, 6, 0)));
        assert_eq!(parse_ids("uid=5"), None);
    }
}
