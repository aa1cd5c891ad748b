//! The run's own cgroups (issue 4): kernel counters of the whole run, a
//! kernel-enforced resident memory limit, and cgroups that neither the
//! target can leave nor the run leaves behind.
//!
//! These tests expect the machine to offer a memory cgroup to the test
//! runner's cgroup (a v1 memory hierarchy, or a v2 one that hands the memory
//! controller down), as the project's machines do; elsewhere they fail,
//! saying so, rather than pass without looking.

use std::path::PathBuf;

use safeexec_tests::{
    assert_verdict, dump, json_report, require_root, require_root_exclusive, stdout,
    POLICY_UID_BASE,
};

/// The directories where the helper makes run cgroups for a caller in the
/// test runner's own cgroups: `<mount><path>/safeexec` per hierarchy.
fn safeexec_dirs() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next(), parts.next().unwrap_or(""), parts.next());
        let Some(path) = path else { continue };
        let mounts = if names.is_empty() {
            vec![
                "/sys/fs/cgroup".to_string(),
                "/sys/fs/cgroup/unified".to_string(),
            ]
        } else {
            vec![format!("/sys/fs/cgroup/{names}")]
        };
        for m in mounts {
            let dir = PathBuf::from(format!("{m}{}/safeexec", path.trim_end_matches('/')));
            if dir.is_dir() {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Runs `args` with `--json` and returns the report, which must carry
/// cgroup counters with a memory peak.
fn run_json(t: &safeexec_tests::Ctx, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = t.safeexec(&all);
    let j = json_report(&out);
    (out, j)
}

/// The JSON report's verdict and safeexec's exit status.
fn assert_json_verdict(
    out: &std::process::Output,
    j: &serde_json::Value,
    verdict: &str,
    status: i32,
) {
    assert_eq!(j["verdict_text"], verdict, "{}", dump(out));
    assert_eq!(out.status.code(), Some(status), "{}", dump(out));
}

fn uid_of(j: &serde_json::Value) -> u64 {
    j["uid"].as_u64().expect("uid in the report")
}

#[test]
fn reports_come_from_the_runs_own_cgroup() {
    let t = require_root!();
    let (out, j) = run_json(&t, &["--exec", "/bin/true"]);
    assert_json_verdict(&out, &j, "OK", 0);
    let cg = &j["cgroup"];
    assert!(
        cg.is_object(),
        "no cgroup counters: this machine offers the test runner no memory cgroup?\n{j}"
    );
    assert_eq!(j["memory_source"], "cgroup", "{j}");
    assert!(cg["version"] == 1 || cg["version"] == 2, "{j}");
    let peak = cg["memory_peak_kib"].as_u64().expect("memory peak");
    assert!(peak > 0 && peak < 64 * 1024, "{j}");
    assert_eq!(j["peak_memory_kib"].as_u64(), Some(peak), "{j}");
    assert!(cg["cpu_ms"].as_f64().is_some(), "{j}");
    assert_eq!(cg["pids_peak"].as_u64(), Some(1), "{j}");
    assert_eq!(cg["oom_kills"].as_u64(), Some(0), "{j}");
    assert_eq!(cg["memory_limited"], false, "{j}");
    assert!(j["max_rss_kib"].as_u64().is_some_and(|k| k > 0), "{j}");
}

/// The peak of all processes alive at once, which no single process's
/// rusage shows: three children hold 40 MiB each at the same time.
#[test]
fn peak_memory_is_the_whole_runs_at_once() {
    let t = require_root!();
    let script = "import os, time\n\
                  kids = []\n\
                  for _ in range(3):\n\
                  \x20   pid = os.fork()\n\
                  \x20   if pid == 0:\n\
                  \x20       b = b'x' * (40 << 20)\n\
                  \x20       time.sleep(0.5)\n\
                  \x20       os._exit(0)\n\
                  \x20   kids.append(pid)\n\
                  for pid in kids:\n\
                  \x20   os.waitpid(pid, 0)\n\
                  print('done')\n";
    let (out, j) = run_json(
        &t,
        &[
            "--mem",
            "1000000",
            "--nproc",
            "8",
            "--clock",
            "20",
            "--exec",
            "/usr/bin/python3",
            "-c",
            script,
        ],
    );
    assert_json_verdict(&out, &j, "OK", 0);
    assert_eq!(stdout(&out), "done\n", "{}", dump(&out));
    let peak = j["peak_memory_kib"].as_u64().unwrap_or(0);
    let largest_one = j["max_rss_kib"].as_u64().unwrap_or(0);
    assert_eq!(j["memory_source"], "cgroup", "{j}");
    assert!(peak >= 3 * 40 * 1024, "peak {peak} KiB < 120 MiB: {j}");
    assert!(largest_one < 2 * 40 * 1024, "{j}");
    assert!(
        j["cgroup"]["pids_peak"].as_u64().is_some_and(|n| n >= 4),
        "{j}"
    );
}

/// --rss is the kernel's limit: the run never holds more than it (a /proc
/// sample every 10 ms would see the program's 200 MiB before killing it).
#[test]
fn rss_limit_is_enforced_by_the_kernel() {
    let t = require_root!();
    let (out, j) = run_json(
        &t,
        &[
            "--mem",
            "1000000",
            "--rss",
            "50000",
            "--exec",
            &t.fixture("touch_mem"),
            "200",
            "0",
        ],
    );
    assert_json_verdict(&out, &j, "Memory Limit Exceeded", 1);
    let cg = &j["cgroup"];
    assert_eq!(cg["memory_limited"], true, "{j}");
    assert!(cg["oom_kills"].as_u64().is_some_and(|n| n >= 1), "{j}");
    assert_eq!(j["limit"], "memory", "{j}");
    let peak = j["peak_memory_kib"].as_u64().unwrap_or(u64::MAX);
    assert!(
        peak <= 50_000,
        "peak {peak} KiB over the 50000 KiB limit: {j}"
    );
    assert!(!stdout(&out).contains("touched"), "{}", dump(&out));
}

/// Files in the private /tmp are memory: they count toward --rss.
#[test]
fn private_tmp_files_count_toward_the_memory_limit() {
    let t = require_root!();
    let (out, j) = run_json(
        &t,
        &[
            "--mem",
            "1000000",
            "--fsize",
            "400000",
            "--rss",
            "50000",
            "--exec",
            "/bin/dd",
            "if=/dev/zero",
            "of=/tmp/fill",
            "bs=1M",
            "count=200",
        ],
    );
    assert_json_verdict(&out, &j, "Memory Limit Exceeded", 1);
    assert!(
        j["cgroup"]["oom_kills"].as_u64().is_some_and(|n| n >= 1),
        "{j}"
    );
}

/// The target can neither leave its cgroups, nor raise their limits, nor
/// make cgroups of its own; and they lie below the caller's cgroup, so the
/// caller's own limits still hold over the run.
#[test]
fn the_target_cannot_leave_or_loosen_its_cgroups() {
    let t = require_root!();
    let script = r#"
import os
out = []
for line in open('/proc/self/cgroup'):
    _, names, path = line.strip().split(':', 2)
    mounts = ['/sys/fs/cgroup/' + names] if names else ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']
    for m in mounts:
        here = m + path
        if not os.path.isdir(here) or not path.rstrip('/').rsplit('/', 2)[-2:-1] == ['safeexec']:
            continue
        print('in', names or 'v2', path)
        targets = [(d + '/' + f, '0')
                   for d in (m, os.path.dirname(here), os.path.dirname(os.path.dirname(here)))
                   for f in ('cgroup.procs', 'tasks', 'cgroup.threads')
                   if os.path.exists(d + '/' + f)]
        for f in ('memory.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.max', 'pids.max'):
            if os.path.exists(here + '/' + f):
                targets.append((here + '/' + f, '-1' if 'limit' in f else 'max'))
        for f, v in targets:
            try:
                with open(f, 'w') as w:
                    w.write(v)
                print('WROTE', f)
            except OSError as e:
                print('denied', f, e.errno)
        try:
            os.mkdir(here + '/mine')
            print('MADE', here + '/mine')
        except OSError as e:
            print('denied mkdir', e.errno)
"#;
    let (out, j) = run_json(&t, &["--exec", "/usr/bin/python3", "-c", script]);
    assert_json_verdict(&out, &j, "OK", 0);
    let text = stdout(&out);
    assert!(
        text.contains("in "),
        "the target saw no run cgroup:\n{text}\n{j}"
    );
    assert!(!text.contains("WROTE") && !text.contains("MADE"), "{text}");
    // Below the caller's own cgroup, named by the run's uid.
    let uid = uid_of(&j);
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let caller_path = |names: &str| {
        own.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, n, path) = (p.next(), p.next()?, p.next()?);
            (n == names).then(|| path.trim_end_matches('/').to_string())
        })
    };
    for line in text.lines().filter(|l| l.starts_with("in ")) {
        let mut f = line.split_whitespace().skip(1);
        let (names, path) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let names = if names == "v2" { "" } else { names };
        let caller = caller_path(names).expect("the caller's cgroup in that hierarchy");
        assert_eq!(path, format!("{caller}/safeexec/{uid}"), "{text}");
    }
}

/// Nothing of a run stays in the cgroup file systems, however it ended.
#[test]
fn run_cgroups_are_removed_after_every_kind_of_end() {
    let t = require_root!();
    let cases: [&[&str]; 4] = [
        &["--exec", "/bin/true"],
        &["--clock", "0.3", "--exec", &t.fixture("sleep_forever")],
        &["--cpu", "0.2", "--exec", &t.fixture("loop")],
        &[
            "--mem",
            "1000000",
            "--rss",
            "20000",
            "--exec",
            &t.fixture("touch_mem"),
            "100",
            "0",
        ],
    ];
    for args in cases {
        let (out, j) = run_json(&t, args);
        let uid = uid_of(&j).to_string();
        let dirs = safeexec_dirs();
        assert!(
            !dirs.is_empty(),
            "no safeexec cgroup directory: {}",
            dump(&out)
        );
        for d in dirs {
            assert!(
                !d.join(&uid).exists(),
                "{} left behind after {args:?}: {}",
                d.join(&uid).display(),
                dump(&out)
            );
        }
    }
}

/// A cgroup left by a run whose helper died (its init killed before it
/// could remove it) is removed by a later run.
#[test]
fn a_dead_runs_cgroup_is_swept() {
    let t = require_root!();
    let (out, j) = run_json(&t, &["--exec", "/bin/true"]);
    assert_json_verdict(&out, &j, "OK", 0);
    // A pid that is no process now.
    let mut child = std::process::Command::new("/bin/true")
        .spawn()
        .expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    let stale = (POLICY_UID_BASE + dead).to_string();
    let dirs = safeexec_dirs();
    assert!(!dirs.is_empty());
    for d in &dirs {
        std::fs::create_dir(d.join(&stale)).expect("make a stale cgroup");
    }
    let (out, j) = run_json(&t, &["--exec", "/bin/true"]);
    assert_json_verdict(&out, &j, "OK", 0);
    for d in &dirs {
        let left = d.join(&stale);
        let gone = !left.exists();
        if !gone {
            let _ = std::fs::remove_dir(&left);
        }
        assert!(gone, "{} was not swept", left.display());
    }
}

/// The isolate keys of its cgroup mode.
#[test]
fn meta_file_has_the_cgroup_keys() {
    let t = require_root!();
    let dir = t.scratch("cg-meta");
    let path = dir.join("meta");
    let out = t.safeexec(&[
        "--meta",
        &path,
        "--mem",
        "1000000",
        "--rss",
        "30000",
        "--exec",
        &t.fixture("touch_mem"),
        "100",
        "0",
    ]);
    assert_verdict(&out, "Memory Limit Exceeded", 1);
    let text = std::fs::read_to_string(&path).expect("meta file written");
    assert!(text.contains("\ncg-oom-killed:1\n"), "{text}");
    let mem: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cg-mem:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cg-mem: {text}"));
    assert!(mem > 0 && mem <= 30_000, "{text}");
}

/// With `cgroup = off` the figures come from wait4 and /proc again, and
/// --rss is the supervisor's sampled limit.
#[test]
fn policy_can_turn_cgroups_off() {
    let t = require_root_exclusive!();
    let packaged = std::fs::read_to_string(t.repo.join("packaging/policy")).expect("policy");
    let policy: String = packaged
        .lines()
        .filter(|l| !l.starts_with("cgroup"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "cgroup = off\n";
    t.set_policy(&policy);
    let (out, j) = run_json(&t, &["--exec", "/bin/true"]);
    assert_json_verdict(&out, &j, "OK", 0);
    assert!(j["cgroup"].is_null(), "{j}");
    assert_eq!(j["memory_source"], "rusage", "{j}");
    let (out, j) = run_json(
        &t,
        &[
            "--mem",
            "1000000",
            "--rss",
            "20000",
            "--exec",
            &t.fixture("touch_mem"),
            "100",
            "1",
        ],
    );
    assert_json_verdict(&out, &j, "Memory Limit Exceeded", 1);
    assert!(j["cgroup"].is_null(), "{j}");
}

/// The caller owns nothing of the run's cgroups: while a run is alive, it
/// can neither raise its limits, nor remove, rename or join its cgroups.
#[test]
fn the_caller_cannot_touch_a_live_runs_cgroups() {
    let t = require_root!();
    let before: Vec<PathBuf> = safeexec_dirs()
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    let run = t
        .run(&["--clock", "2", "--exec", &t.fixture("sleep_forever")])
        .spawn();
    // The run's directories: the new entries named by a number.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mine: Vec<PathBuf> = loop {
        let now: Vec<PathBuf> = safeexec_dirs()
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !before.contains(p))
            .collect();
        if !now.is_empty() || std::time::Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!mine.is_empty(), "the run's cgroups never appeared");
    let mut script = String::new();
    for d in &mine {
        let d = d.display();
        for f in ["memory.limit_in_bytes", "memory.max", "pids.max"] {
            script +=
                &format!("[ -e {d}/{f} ] && echo -1 2>/dev/null > {d}/{f} && echo WROTE {f}\n");
        }
        script += &format!("echo $$ 2>/dev/null > {d}/cgroup.procs && echo JOINED {d}\n");
        script += &format!("rmdir {d} 2>/dev/null && echo REMOVED {d}\n");
        script += &format!("mv {d} {d}.x 2>/dev/null && echo RENAMED {d}\n");
    }
    script += "echo checked\n";
    let name = safeexec_tests::User::Test.name();
    let out = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={name}"),
            &format!("--regid={name}"),
            "--init-groups",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ])
        .output()
        .expect("run setpriv");
    let said = stdout(&out);
    let report = run.wait(std::time::Duration::from_secs(20));
    assert_eq!(
        said, "checked\n",
        "the caller changed a run's cgroup:\n{said}"
    );
    assert!(
        String::from_utf8_lossy(&report.stderr).contains("Time Limit Exceeded"),
        "{}",
        dump(&report)
    );
}
