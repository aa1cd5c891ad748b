//! The target attacks: a malicious program run through the frontend tries
//! to exhaust the machine, escape its limits, reach the network, the host's
//! files, the supervisor or another run, and to outlive its run. Every
//! attack must fail, the run must end with the right verdict and exit
//! status, and no process of the run may be left (DESIGN.md trust table,
//! the target's row; invariants 5 and 7).

mod common;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{
    assert_nothing_left, json_uid, kv, kv_num, probe, pty, s, verdict, wait_for_child, word,
};
use safeexec_tests::{
    assert_verdict, dump, in_policy_range, json_report, require_root, status_field, stdout, Env,
    Input, Json,
};

/// `safeexec --json ARGS --exec attack_probe ATTACK...` as the test user;
/// returns the output, the JSON report and the run's uid, after checking
/// that nothing of the run is left.
fn attack(t: &Env, opts: &[&str], attack: &[&str]) -> (Output, Json) {
    let p = probe(t);
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--json", "--exec", p.as_str()]);
    args.extend_from_slice(attack);
    let out = t.safeexec(&args);
    let j = json_report(&out);
    assert_nothing_left(json_uid(&j), &dump(&out));
    (out, j)
}

fn num(out: &Output, key: &str) -> i64 {
    kv_num(&stdout(out), key).unwrap_or_else(|| panic!("no {key}= from the probe\n{}", dump(out)))
}

// ---------------------------------------------------------------------------
// Exhaustion

#[test]
fn fork_bomb_is_contained() {
    let t = require_root!();
    let (out, j) = attack(&t, &["--nproc", "5", "--clock", "10"], &["forkbomb", "1"]);
    verdict(&out, &j, "ok", 0);
    let forks = num(&out, "forks");
    assert!(
        (1..=5).contains(&forks),
        "{forks} forks under --nproc 5\n{}",
        dump(&out)
    );
    assert!(
        num(&out, "failed") > 0,
        "the bomb never hit the limit\n{}",
        dump(&out)
    );
}

#[test]
fn fork_bomb_with_no_process_allowed_cannot_fork_once() {
    let t = require_root!();
    let (out, j) = attack(&t, &[], &["forkbomb", "0.3"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(num(&out, "forks"), 0, "{}", dump(&out));
}

#[test]
fn thread_bomb_is_contained() {
    let t = require_root!();
    let (out, j) = attack(&t, &["--nproc", "3", "--mem", "262144"], &["threadbomb"]);
    verdict(&out, &j, "ok", 0);
    let threads = num(&out, "threads");
    assert!(
        threads <= 3,
        "{threads} threads under --nproc 3\n{}",
        dump(&out)
    );
    assert_eq!(word(&out, "error"), "EAGAIN", "{}", dump(&out));
}

#[test]
fn memory_bomb_is_contained_by_the_address_space_limit() {
    let t = require_root!();
    let (out, j) = attack(&t, &["--mem", "65536"], &["memorybomb"]);
    verdict(&out, &j, "ok", 0);
    let mib = num(&out, "allocated_mib");
    assert!(
        (1..64).contains(&mib),
        "allocated {mib} MiB under 64 MiB\n{}",
        dump(&out)
    );
}

#[test]
fn memory_bomb_is_killed_at_the_resident_memory_limit() {
    let t = require_root!();
    let (out, j) = attack(
        &t,
        &["--mem", "2000000", "--rss", "50000", "--clock", "20"],
        &["memorybomb"],
    );
    verdict(&out, &j, "memory_limit", 1);
    assert!(!stdout(&out).contains("allocated_mib"), "{}", dump(&out));
}

#[test]
fn disk_fill_is_contained_to_the_file_size_limit() {
    let t = require_root!();
    let scratch = t.scratch("fill");
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o1777)).expect("chmod");
    let path = scratch.path().join("fill");
    let (out, j) = attack(&t, &["--fsize", "1024"], &["fill", s(&path)]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "error"), "EFBIG", "{}", dump(&out));
    assert_eq!(num(&out, "wrote"), 1024 * 1024, "{}", dump(&out));
    let len = fs::metadata(&path).expect("the filled file").len();
    assert_eq!(len, 1024 * 1024, "the file outgrew the limit");
}

#[test]
fn disk_fill_in_a_private_tmp_is_contained_and_vanishes_with_the_run() {
    let t = require_root!();
    let name = format!("/tmp/safeexec-attack-fill-{}", std::process::id());
    let (out, j) = attack(&t, &["--private-tmp", "--fsize", "1024"], &["fill", &name]);
    verdict(&out, &j, "ok", 0);
    assert!(num(&out, "wrote") <= 1024 * 1024, "{}", dump(&out));
    let e = word(&out, "error");
    assert!(e == "EFBIG" || e == "ENOSPC", "{}", dump(&out));
    let landed = std::path::Path::new(&name).exists();
    let _ = fs::remove_file(&name);
    assert!(!landed, "the fill landed in the host's /tmp");
}

#[test]
fn many_small_files_in_a_private_tmp_are_contained_and_vanish_with_the_run() {
    let t = require_root!();
    for dir in ["/tmp", "/dev/shm", "/var/tmp"] {
        let before = fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let (out, j) = attack(
            &t,
            &["--private-tmp", "--fsize", "64", "--cpu", "5"],
            &["manyfiles", dir],
        );
        verdict(&out, &j, "ok", 0);
        let files = num(&out, "files");
        assert!(files <= 1024, "{files} files in {dir}\n{}", dump(&out));
        assert_eq!(word(&out, "error"), "ENOSPC", "{dir}\n{}", dump(&out));
        let after = fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        assert!(
            after <= before + 5,
            "{dir} of the host grew from {before} to {after}"
        );
    }
}

#[test]
fn endless_stdout_is_cut_at_the_output_limit() {
    let t = require_root!();
    let started = Instant::now();
    let (out, j) = attack(&t, &["--output", "100"], &["flood"]);
    verdict(&out, &j, "output_limit", 1);
    assert!(
        out.stdout.len() <= 100 * 1024,
        "{} bytes passed",
        out.stdout.len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn busy_loop_in_several_processes_is_cut_at_the_cpu_limit() {
    let t = require_root!();
    let started = Instant::now();
    let (out, j) = attack(&t, &["--cpu", "0.5", "--nproc", "3"], &["spin", "3"]);
    verdict(&out, &j, "time_limit", 1);
    assert_eq!(j["limit"], "cpu", "{}", dump(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn endless_sleep_is_cut_at_the_wall_limit() {
    let t = require_root!();
    let started = Instant::now();
    let (out, j) = attack(&t, &["--clock", "0.5"], &["sleep"]);
    verdict(&out, &j, "time_limit", 1);
    assert_eq!(j["limit"], "wall", "{}", dump(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn opening_descriptors_until_emfile_is_contained() {
    let t = require_root!();
    let (out, j) = attack(&t, &["--nfile", "16"], &["fds"]);
    verdict(&out, &j, "ok", 0);
    assert!(num(&out, "opened") <= 13, "{}", dump(&out));
    assert_eq!(word(&out, "error"), "EMFILE", "{}", dump(&out));
}

#[test]
fn raising_a_hard_rlimit_fails() {
    let t = require_root!();
    let (out, j) = attack(&t, &[], &["rlimits"]);
    verdict(&out, &j, "ok", 0);
    for key in [
        "nofile", "nproc", "cpu", "as", "fsize", "core", "stack", "memlock",
    ] {
        let v = word(&out, key);
        assert!(
            v == "EPERM" || v == "unlimited",
            "{key}={v}\n{}",
            dump(&out)
        );
    }
    assert_eq!(word(&out, "core"), "EPERM");
}

#[test]
fn crashing_target_dumps_no_core() {
    let t = require_root!();
    let scratch = t.scratch("crash");
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o1777)).expect("chmod");
    let (out, j) = attack(&t, &["--exec_dir", s(scratch.path())], &["crash"]);
    verdict(&out, &j, "signal", 1);
    assert_eq!(j["signal"], libc::SIGABRT, "{}", dump(&out));
    let cores: Vec<_> = fs::read_dir(scratch.path())
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}

// ---------------------------------------------------------------------------
// Outliving the run, killing what it should not

#[test]
fn setsid_double_fork_sleeper_does_not_survive() {
    let t = require_root!();
    let (out, j) = attack(&t, &["--nproc", "3"], &["daemon"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "daemon"), "started", "{}", dump(&out));
}

#[test]
fn kill_minus_1_from_the_target_reaches_nothing_outside_its_run() {
    let t = require_root!();
    let env = t.env();
    // A process of the caller and a concurrent run, both of which must
    // live through the attack.
    let mut callers_own = std::process::Command::new("setpriv")
        .args([
            "--reuid=safeexec-test",
            "--regid=safeexec-test",
            "--init-groups",
        ])
        .args(["--", "/bin/sleep", "20"])
        .spawn()
        .expect("start the caller's sleeper");
    let other = std::thread::spawn(move || {
        let p = probe(env);
        env.safeexec(&["--clock", "2", "--json", "--exec", &p, "sleep"])
    });
    std::thread::sleep(Duration::from_millis(300));
    let (out, j) = attack(&t, &[], &["killall"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "kill_init"), "EPERM", "{}", dump(&out));
    assert_eq!(word(&out, "alive"), "yes");
    let other = other.join().expect("the other run");
    let oj = json_report(&other);
    assert_eq!(
        oj["verdict"],
        "time_limit",
        "the other run was hit\n{}",
        dump(&other)
    );
    assert_eq!(oj["limit"], "wall", "{}", dump(&other));
    assert!(
        callers_own.try_wait().expect("try_wait").is_none(),
        "the caller's own process was killed"
    );
    let _ = callers_own.kill();
    let _ = callers_own.wait();
}

/// Starts the probe's `pids` attack with a pipe as its stdin; returns the
/// running frontend and the pipe's write end.
fn start_pid_attack(t: &Env, clock: &str) -> (safeexec_tests::Spawned, File) {
    let (rx, tx) = std::io::pipe().expect("pipe");
    let p = probe(t);
    let spawned = t
        .run(&["--clock", clock, "--json", "--exec", &p, "pids"])
        .stdin(Input::File(File::from(OwnedFd::from(rx))))
        .spawn();
    (spawned, File::from(OwnedFd::from(tx)))
}

/// (supervisor, init, target) host pids of the run started by `frontend`.
fn run_pids(frontend: u32) -> (u32, u32, u32) {
    let wait = Duration::from_secs(10);
    let sup = wait_for_child(frontend, |_| true, wait).expect("the helper started");
    let init = wait_for_child(sup, |_| true, wait).expect("init started");
    let target = wait_for_child(init, in_policy_range, wait).expect("the target started");
    // Until the target has exec'd, the supervisor may still be dropping
    // its privileges: wait for the program to replace the helper's image.
    let deadline = std::time::Instant::now() + wait;
    while fs::read_link(format!("/proc/{target}/exe"))
        .is_ok_and(|exe| exe.to_string_lossy().contains("safeexec-helper"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the target never exec'd"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    (sup, init, target)
}

fn assert_attacks_failed(out: &Output) {
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("pid=")).collect();
    assert!(
        !lines.is_empty(),
        "the probe attacked nothing\n{}",
        dump(out)
    );
    for line in lines {
        for key in ["kill", "stop", "attach", "seize", "vm_readv", "mem"] {
            let v = kv(line, key).unwrap_or_default();
            assert!(
                v != "ok" && !v.is_empty(),
                "{key} succeeded: {line}\n{}",
                dump(out)
            );
        }
    }
}

#[test]
fn target_cannot_signal_trace_or_read_the_supervisor_init_or_frontend() {
    let t = require_root!();
    let (spawned, mut tx) = start_pid_attack(&t, "20");
    let frontend = spawned.id();
    let (sup, init, _target) = run_pids(frontend);
    // Host pids (not visible in its namespace), and pid 1 (its own init).
    writeln!(tx, "{sup}\n{init}\n{frontend}\n{}\n1", std::process::id()).expect("send pids");
    drop(tx);
    let out = spawned.wait(Duration::from_secs(30));
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    assert_attacks_failed(&out);
    let init_line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("pid=1 "))
        .map(str::to_string)
        .expect("the probe attacked pid 1");
    assert_eq!(
        kv(&init_line, "kill").as_deref(),
        Some("EPERM"),
        "{init_line}"
    );
    assert_nothing_left(json_uid(&j), &dump(&out));
}

#[test]
fn target_cannot_signal_trace_or_read_another_concurrent_run() {
    let t = require_root!();
    let env = t.env();
    let p = probe(&t);
    // Run A: sleeps until its wall limit; it must end by that limit, not
    // by anything run B does.
    let a = t
        .run(&["--clock", "3", "--json", "--exec", &p, "sleep"])
        .spawn();
    let (a_sup, a_init, a_target) = run_pids(a.id());
    let (b, mut tx) = start_pid_attack(env, "20");
    run_pids(b.id());
    writeln!(tx, "{a_target}\n{a_init}\n{a_sup}\n{}", a.id()).expect("send pids");
    drop(tx);
    let out_b = b.wait(Duration::from_secs(30));
    let jb = json_report(&out_b);
    verdict(&out_b, &jb, "ok", 0);
    assert_attacks_failed(&out_b);
    let out_a = a.wait(Duration::from_secs(30));
    let ja = json_report(&out_a);
    assert_eq!(
        ja["verdict"],
        "time_limit",
        "run A was hit\n{}",
        dump(&out_a)
    );
    assert_eq!(ja["limit"], "wall", "{}", dump(&out_a));
    assert_ne!(ja["uid"], jb["uid"]);
    assert_nothing_left(json_uid(&ja), "run A");
    assert_nothing_left(json_uid(&jb), "run B");
}

// ---------------------------------------------------------------------------
// Network

fn listeners() -> Vec<(&'static str, TcpListener)> {
    let mut v = vec![(
        "tcp4",
        TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1"),
    )];
    v.push(("tcp6", TcpListener::bind("[::1]:0").expect("listen on ::1")));
    v
}

#[test]
fn tcp_to_host_loopback_v4_and_v6_fails() {
    let t = require_root!();
    for (kind, listener) in listeners() {
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port().to_string();
        let (out, j) = attack(&t, &[], &["net", kind, &port]);
        verdict(&out, &j, "nonzero_exit", 1);
        assert_ne!(word(&out, "connect"), "ok", "{kind}\n{}", dump(&out));
        assert!(
            listener.accept().is_err(),
            "{kind}: the listener got a connection"
        );
    }
}

#[test]
fn udp_to_host_loopback_v4_and_v6_delivers_nothing() {
    let t = require_root!();
    for (kind, addr) in [("udp4", "127.0.0.1:0"), ("udp6", "[::1]:0")] {
        let sock = UdpSocket::bind(addr).expect("bind a UDP socket");
        sock.set_nonblocking(true).expect("non-blocking");
        let port = sock.local_addr().expect("address").port().to_string();
        let (out, j) = attack(&t, &[], &["net", kind, &port]);
        verdict(&out, &j, "nonzero_exit", 1);
        assert_ne!(word(&out, "sendto"), "ok", "{kind}\n{}", dump(&out));
        let mut buf = [0u8; 16];
        assert!(sock.recv(&mut buf).is_err(), "{kind}: a datagram arrived");
    }
}

#[test]
fn host_abstract_unix_socket_is_unreachable() {
    let t = require_root!();
    use std::os::linux::net::SocketAddrExt;
    let name = format!("safeexec-attack-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("an abstract address");
    let listener = UnixListener::bind_addr(&addr).expect("bind the abstract socket");
    listener.set_nonblocking(true).expect("non-blocking");
    // Control: the host can connect to it.
    let control = std::os::unix::net::UnixStream::connect_addr(&addr);
    assert!(control.is_ok(), "the control connection failed");
    drop(listener.accept());
    let (out, j) = attack(&t, &[], &["unix", &name]);
    verdict(&out, &j, "nonzero_exit", 1);
    assert_eq!(word(&out, "connect"), "ECONNREFUSED", "{}", dump(&out));
    assert!(
        listener.accept().is_err(),
        "the target reached the host's socket"
    );
}

// ---------------------------------------------------------------------------
// Files

#[test]
fn reading_etc_shadow_and_root_fails() {
    let t = require_root!();
    for path in ["/etc/shadow", "/root", "/root/.bashrc", "/etc/sudoers"] {
        if !std::path::Path::new(path).exists() {
            continue;
        }
        let (out, j) = attack(&t, &[], &["read", path]);
        verdict(&out, &j, "nonzero_exit", 1);
        assert_eq!(word(&out, "open"), "EACCES", "{path}\n{}", dump(&out));
    }
}

#[test]
fn writing_outside_the_allowed_places_fails_and_truncates_nothing() {
    let t = require_root!();
    let scratch = t.scratch("write-outside");
    let content = b"the caller's data\n".repeat(10);
    let own_file = scratch.file("mine", &content, 0o644);
    let own_dir = scratch.dir("dir", 0o755);
    let fixture = t.fixtures.join("attack_probe");
    let probe_before = fs::read(&fixture).expect("read the probe");
    let passwd_before = fs::read("/etc/passwd").expect("read /etc/passwd");
    let new_file = own_dir.join("new");
    let targets = [
        s(&own_file).to_string(),
        s(&new_file).to_string(),
        s(&fixture).to_string(),
        s(&t.helper).to_string(),
        s(&t.policy).to_string(),
        "/etc/passwd".to_string(),
        "/usr/bin/new".to_string(),
    ];
    for target in &targets {
        let (out, j) = attack(&t, &["--fsize", "64"], &["write", target]);
        verdict(&out, &j, "nonzero_exit", 1);
        let e = word(&out, "open");
        assert!(
            e == "EACCES" || e == "ETXTBSY" || e.starts_with("errno"),
            "{target}: {e}"
        );
    }
    assert_eq!(fs::read(&own_file).expect("read"), content);
    assert!(!new_file.exists());
    assert_eq!(fs::read(&fixture).expect("read"), probe_before);
    assert_eq!(fs::read("/etc/passwd").expect("read"), passwd_before);
    assert!(!std::path::Path::new("/usr/bin/new").exists());
}

// ---------------------------------------------------------------------------
// Privilege from setuid and file-capability programs

fn copy_probe(t: &Env, dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    fs::copy(t.fixtures.join("attack_probe"), &path).expect("copy the probe");
    std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown root");
    s(&path).to_string()
}

/// Runs `program ids` as the plain test user outside any sandbox.
fn ids_outside(t: &Env, program: &str) -> String {
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=safeexec-test",
            "--regid=safeexec-test",
            "--init-groups",
        ])
        .args(["--", "/usr/bin/env", "--", program, "ids"])
        .current_dir(&t.work)
        .output()
        .expect("run the probe outside");
    stdout(&out)
}

#[test]
fn setuid_root_program_gains_nothing() {
    let t = require_root!();
    let scratch = t.scratch("suid");
    let prog = copy_probe(&t, scratch.path(), "suid-probe");
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
    // Control: outside the sandbox the copy does make its caller root.
    let control = ids_outside(&t, &prog);
    assert_eq!(
        kv(&control, "euid").as_deref(),
        Some("0"),
        "control: {control}"
    );
    let out = t.safeexec(&["--json", "--exec", &prog, "ids"]);
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    let uid = json_uid(&j).to_string();
    assert_eq!(word(&out, "euid"), uid, "{}", dump(&out));
    assert_eq!(word(&out, "suid"), uid);
    assert_eq!(word(&out, "shadow"), "EACCES");
    assert_eq!(word(&out, "setuid0"), "EPERM");
    assert_eq!(word(&out, "capeff"), "0000000000000000");
    assert_nothing_left(json_uid(&j), &dump(&out));
}

#[test]
fn file_capability_program_gains_nothing() {
    let t = require_root!();
    let scratch = t.scratch("fcaps");
    // "+ep": a capability-dumb program (the kernel refuses to start it
    // without every capability it names); "+p": a capability-aware one.
    for (name, caps) in [
        ("fcap-ep", "cap_dac_read_search,cap_setuid,cap_sys_admin+ep"),
        ("fcap-p", "cap_dac_read_search,cap_setuid,cap_sys_admin+p"),
    ] {
        let prog = copy_probe(&t, scratch.path(), name);
        fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).expect("chmod");
        let setcap = std::process::Command::new("setcap")
            .args([caps, &prog])
            .output()
            .unwrap_or_else(|e| {
                panic!("setcap is needed for this test (Debian package libcap2-bin): {e}")
            });
        assert!(setcap.status.success(), "setcap: {}", dump(&setcap));
        if caps.ends_with("+ep") {
            // Control: outside the sandbox the copy reads /etc/shadow.
            let control = ids_outside(&t, &prog);
            assert_eq!(
                kv(&control, "shadow").as_deref(),
                Some("ok"),
                "control: {control}"
            );
        }
        let out = t.safeexec(&["--json", "--exec", &prog, "ids"]);
        let j = json_report(&out);
        assert_nothing_left(json_uid(&j), &dump(&out));
        if j["exec_error"] == "Operation not permitted" {
            // Refused by the kernel: it ran nothing at all.
            verdict(&out, &j, "nonzero_exit", 1);
            assert_eq!(stdout(&out), "", "{}", dump(&out));
            continue;
        }
        verdict(&out, &j, "ok", 0);
        assert_eq!(word(&out, "capeff"), "0000000000000000", "{}", dump(&out));
        assert_eq!(word(&out, "capprm"), "0000000000000000", "{}", dump(&out));
        assert_eq!(word(&out, "shadow"), "EACCES");
        assert_eq!(word(&out, "setuid0"), "EPERM");
    }
}

// ---------------------------------------------------------------------------
// Terminal, descriptors, environment, credentials

#[test]
fn tiocsti_on_an_inherited_terminal_injects_nothing() {
    let t = require_root!();
    let (master, slave) = pty();
    // Raw mode: any injected byte is readable at once, nothing is echoed.
    // SAFETY: termios is plain data; the calls only read/write it.
    unsafe {
        let mut tio: libc::termios = std::mem::zeroed();
        libc::tcgetattr(slave.as_raw_fd(), &mut tio);
        libc::cfmakeraw(&mut tio);
        libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &tio);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let reader_end = slave.try_clone().expect("dup the slave");
    let p = probe(&t);
    let out = t
        .run(&["--json", "--exec", &p, "tiocsti"])
        .stdin(Input::File(File::from(slave)))
        .output();
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "isatty"), "1", "{}", dump(&out));
    assert_eq!(word(&out, "injected"), "0", "{}", dump(&out));
    assert_eq!(word(&out, "error"), "EPERM", "{}", dump(&out));
    // What the caller's shell would read next from its terminal: nothing.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(reader_end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut buf = [0u8; 256];
    let mut tty = File::from(reader_end);
    match tty.read(&mut buf) {
        Ok(n) => panic!(
            "{n} bytes were injected into the caller's terminal: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
    }
    assert_nothing_left(json_uid(&j), &dump(&out));
}

#[test]
fn target_sees_only_descriptors_0_1_2() {
    let t = require_root!();
    let scratch = t.scratch("fds");
    let f = scratch.file("secret", b"secret", 0o600);
    let (pipe_rx, _pipe_tx) = std::io::pipe().expect("pipe");
    let p = probe(&t);
    let out = t
        .run(&["--json", "--exec", &p, "fdlist"])
        .fd(File::open(&f).expect("open"), 5)
        .fd(File::open(&f).expect("open"), 7)
        .fd(pipe_rx, 63)
        .output();
    let j = json_report(&out);
    assert_eq!(word(&out, "fds"), "0,1,2", "{}", dump(&out));
    assert_eq!(j["exit_code"], 3, "{}", dump(&out));
}

#[test]
fn target_environment_is_exactly_what_was_asked() {
    let t = require_root!();
    let p = probe(&t);
    let out = t
        .run(&["--env_vars", "A=1\\nB=two words", "--exec", &p, "env"])
        .var("SECRET_TOKEN", "hunter2")
        .var("LD_PRELOAD", "")
        .output();
    assert_eq!(stdout(&out), "A=1\nB=two words\n", "{}", dump(&out));
    assert_verdict(&out, "OK", 0);
    let out = t
        .run(&["--exec", &p, "env"])
        .var("SECRET_TOKEN", "hunter2")
        .output();
    assert_eq!(
        stdout(&out),
        "PATH=/usr/local/bin:/usr/bin:/bin\n",
        "{}",
        dump(&out)
    );
}

#[test]
fn target_proc_self_status_shows_no_groups_no_capabilities_and_no_new_privs() {
    let t = require_root!();
    let (out, j) = attack(&t, &[], &["status"]);
    verdict(&out, &j, "ok", 0);
    let text = stdout(&out);
    let uid = json_uid(&j).to_string();
    let field = |k: &str| status_field(&text, k).unwrap_or_else(|| panic!("no {k}:\n{text}"));
    assert_eq!(field("Groups"), "", "{text}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(cap), "0000000000000000", "{cap}\n{text}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
    for ids in ["Uid", "Gid"] {
        let v: Vec<&str> = field(ids).split_whitespace().collect();
        assert_eq!(v, vec![uid.as_str(); 4], "{ids}\n{text}");
    }
    assert_eq!(
        field("NSpid"),
        "2",
        "not pid 2 of its own namespace\n{text}"
    );
    assert_eq!(field("NSsid"), "2", "not a session of its own\n{text}");
}

#[test]
fn target_proc_shows_no_host_process() {
    let t = require_root!();
    let out = t.safeexec(&["--json", "--exec", "/bin/ls", "/proc"]);
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    let pids: Vec<u32> = stdout(&out)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(pids, vec![1, 2], "{}", dump(&out));
}

#[test]
fn supervisor_keeps_cap_kill_only_and_the_caller_cannot_trace_it() {
    let t = require_root!();
    let p = probe(&t);
    let run = t
        .run(&["--clock", "2", "--json", "--exec", &p, "sleep"])
        .spawn();
    let (sup, init, _target) = run_pids(run.id());
    let status = fs::read_to_string(format!("/proc/{sup}/status")).expect("the supervisor");
    let field = |k: &str| status_field(&status, k).map(str::to_string);
    let caller = t.test_user.uid.to_string();
    let uids: Vec<String> = field("Uid")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(uids, vec![caller; 4], "{status}");
    assert_eq!(
        field("CapEff").as_deref(),
        Some("0000000000000020"),
        "{status}"
    );
    assert_eq!(
        field("CapPrm").as_deref(),
        Some("0000000000000020"),
        "{status}"
    );
    for cap in ["CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(
            field(cap).as_deref(),
            Some("0000000000000000"),
            "{cap}\n{status}"
        );
    }
    assert_eq!(field("NoNewPrivs").as_deref(), Some("1"), "{status}");
    // The caller itself (same uid) tries to trace and read the supervisor
    // and init.
    let mut attacker = std::process::Command::new("setpriv")
        .args([
            "--reuid=safeexec-test",
            "--regid=safeexec-test",
            "--init-groups",
        ])
        .args(["--", "/usr/bin/env", "--", &p, "pids", "nokill"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the caller's attacker");
    let mut stdin = attacker.stdin.take().expect("stdin");
    // Not kill/stop: the caller may signal its own supervisor (that is
    // attack_cleanup's business); trace and memory access it may not.
    writeln!(stdin, "{sup}\n{init}").expect("send pids");
    drop(stdin);
    let attacked = attacker.wait_with_output().expect("the attacker");
    let text = stdout(&attacked);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        for key in ["attach", "seize", "vm_readv", "mem"] {
            let v = kv(line, key).unwrap_or_default();
            assert!(v != "ok" && !v.is_empty(), "{key}: {line}");
        }
    }
    let out = run.wait(Duration::from_secs(30));
    let j = json_report(&out);
    verdict(&out, &j, "time_limit", 1);
    assert_nothing_left(json_uid(&j), &dump(&out));
}
