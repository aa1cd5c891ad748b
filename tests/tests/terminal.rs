//! The caller's terminal is never the run's (frontend/src/terminal.rs):
//! when safeexec runs on a terminal, the run gets a new pty of its own, and
//! whatever it does to that pty (raw mode, typed keys, a stopped output, a
//! lock, a line discipline), whatever limit or signal ends it, the caller's
//! terminal ends as it was, with nothing typed into it.
//!
//! Each test here gives the frontend a real terminal, the way a shell
//! does: a pty the test opens, whose slave is safeexec's stdin (and stdout
//! and stderr, unless said otherwise) and its controlling terminal, in a
//! session of its own, safeexec being in its foreground. The test reads the
//! master (the "screen") and compares the slave's settings before and
//! after.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use safeexec_tests::{
    dump, json_uid, kv, lossy, process, pty, require_root, run_pids, signal, Ctx, Env, Input, Json,
    Scratch, Spawned,
};

/// How long a test waits for something a run should do soon.
const SOON: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The caller's terminal

/// A terminal's settings, as tcgetattr gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    iflag: libc::tcflag_t,
    oflag: libc::tcflag_t,
    cflag: libc::tcflag_t,
    lflag: libc::tcflag_t,
    line: libc::cc_t,
    cc: Vec<libc::cc_t>,
    ispeed: libc::speed_t,
    ospeed: libc::speed_t,
}

impl Settings {
    fn of(fd: BorrowedFd<'_>) -> Settings {
        let tio = termios(fd);
        // SAFETY: cfget*speed only read the initialised struct.
        let (ispeed, ospeed) = unsafe { (libc::cfgetispeed(&tio), libc::cfgetospeed(&tio)) };
        Settings {
            iflag: tio.c_iflag,
            oflag: tio.c_oflag,
            cflag: tio.c_cflag,
            lflag: tio.c_lflag,
            line: tio.c_line,
            cc: tio.c_cc.to_vec(),
            ispeed,
            ospeed,
        }
    }

    /// Raw as a full-screen program makes it: no line editing, no echo.
    fn is_raw(&self) -> bool {
        self.lflag & (libc::ICANON | libc::ECHO) == 0
    }
}

fn termios(fd: BorrowedFd<'_>) -> libc::termios {
    // SAFETY: termios is plain data; tcgetattr fills it in.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr on a descriptor we own, into the local.
    let r = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut tio) };
    assert_eq!(r, 0, "tcgetattr: {}", io::Error::last_os_error());
    tio
}

/// The bytes waiting in a terminal's input queue: what the caller's shell
/// would read next.
fn pending_input(fd: BorrowedFd<'_>) -> libc::c_int {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into the local.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", io::Error::last_os_error());
    n
}

/// The caller's terminal: a pty of the test's, whose master it reads
/// into `screen` all along (so that the frontend never blocks writing to
/// it).
struct CallerTerminal {
    master: File,
    /// The test's own descriptor of the slave: its settings, its input.
    slave: OwnedFd,
    screen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl CallerTerminal {
    /// A new terminal in the state a shell leaves it for a command (line
    /// editing, echo, signals), with a few settings of its own that no
    /// default has: restoring "some" settings is not restoring these.
    fn open() -> CallerTerminal {
        let (master, slave) = pty();
        let mut tio = termios(slave.as_fd());
        tio.c_cc[libc::VERASE] = 0x08;
        tio.c_cc[libc::VWERASE] = 0x0e;
        tio.c_iflag |= libc::IUTF8;
        tio.c_oflag |= libc::ONLCR | libc::OPOST;
        tio.c_lflag |= libc::ICANON | libc::ECHO | libc::ISIG | libc::ECHOCTL;
        // SAFETY: tcsetattr from an initialised struct on our slave.
        let r = unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &tio) };
        assert_eq!(r, 0, "tcsetattr: {}", io::Error::last_os_error());
        let size = libc::winsize { ws_row: 37, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads the local struct.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };

        let reading = master.try_clone().expect("dup the master");
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(reading.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let screen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (screen, stop) = (Arc::clone(&screen), Arc::clone(&stop));
            thread::spawn(move || read_screen(File::from(reading), &screen, &stop))
        };
        CallerTerminal { master: File::from(master), slave, screen, stop, reader: Some(reader) }
    }

    fn settings(&self) -> Settings {
        Settings::of(self.slave.as_fd())
    }

    fn screen(&self) -> Vec<u8> {
        self.screen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn screen_text(&self) -> String {
        lossy(&self.screen())
    }

    /// Waits until the screen shows `what`; false after `timeout`.
    fn wait_for(&self, what: &str, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while !self.screen_text().contains(what) {
            if Instant::now() >= until {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Waits until the settings satisfy `want`; false after `timeout`.
    fn wait_settings(&self, want: impl Fn(&Settings) -> bool, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while !want(&self.settings()) {
            if Instant::now() >= until {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Everything the screen showed, once nothing more came for a while
    /// (the frontend has ended: nothing else writes there).
    fn settled_screen(&self) -> Vec<u8> {
        let until = Instant::now() + SOON;
        let mut seen = self.screen().len();
        loop {
            thread::sleep(Duration::from_millis(300));
            let now = self.screen().len();
            if now == seen || Instant::now() >= until {
                return self.screen();
            }
            seen = now;
        }
    }

    /// Types `keys` on the caller's keyboard.
    fn type_keys(&self, keys: &[u8]) {
        (&self.master).write_all(keys).expect("type on the caller's terminal");
    }

    /// The slave's device number, to tell it from the run's pty.
    fn rdev(&self) -> String {
        let meta = File::from(self.slave.try_clone().expect("dup the slave"))
            .metadata()
            .expect("fstat the slave");
        assert!(meta.file_type().is_char_device());
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        format!("{major}:{minor}")
    }

    fn name(&self) -> String {
        fs::read_link(format!("/proc/self/fd/{}", self.slave.as_raw_fd()))
            .expect("the slave's name")
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for CallerTerminal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read_screen(mut master: File, screen: &Mutex<Vec<u8>>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: poll on one initialised pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 50) };
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => screen.lock().unwrap_or_else(|e| e.into_inner()).extend(&buf[..n]),
                // WouldBlock, and EIO while no slave is open.
                Err(_) => break,
            }
        }
    }
}

/// Starts `safeexec ARGS` as the test user on the caller's terminal: in a
/// session of its own whose controlling terminal it is (so that safeexec
/// is in its foreground), as its stdin, and as its stdout and stderr too
/// unless `output_is_terminal` is false (then they are the pipes of the
/// returned [`Spawned`]).
fn start_on(t: &Env, term: &CallerTerminal, args: &[&str], output_is_terminal: bool) -> Spawned {
    on_terminal(t, term, args, output_is_terminal).spawn()
}

/// `start_on`'s command, not started yet.
fn on_terminal(
    t: &Env,
    term: &CallerTerminal,
    args: &[&str],
    output_is_terminal: bool,
) -> safeexec_tests::Run {
    let slave = || File::from(term.slave.try_clone().expect("dup the slave"));
    let mut run = t.run(args).stdin(Input::File(slave())).pre_exec(|| {
        // Runs after fd 0 became the slave (setpriv has not run yet).
        // SAFETY: setsid and ioctl are async-signal-safe system calls.
        unsafe {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    });
    if output_is_terminal {
        run = run.fd(OwnedFd::from(slave()), 1).fd(OwnedFd::from(slave()), 2);
    }
    run.timeout(Duration::from_secs(120))
}

/// As `start_on` (its output on the terminal too), with safeexec a job
/// of a shell's: in a process group of its own, in the terminal's
/// foreground, whose parent leads the session (the shell) and waits for
/// it. Job control stops it only so: the group of a session's leader is
/// orphaned, and there the kernel ignores SIGTSTP. Returns safeexec's pid
/// beside the run (whose own pid is the leader's).
fn start_as_a_job(t: &Env, term: &CallerTerminal, args: &[&str]) -> (Spawned, u32) {
    // After `on_terminal`'s hook: the leader has the terminal by then.
    let run = on_terminal(t, term, args, true)
        .pre_exec(|| {
            // SAFETY: async-signal-safe system calls only (fork,
            // close_range, setpgid, sigaction, tcsetpgrp, waitpid, _exit).
            unsafe {
                let job = libc::fork();
                if job < 0 {
                    return Err(io::Error::last_os_error());
                }
                if job > 0 {
                    // Not the pipe on which std waits for the exec.
                    libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0);
                    let mut status = 0;
                    loop {
                        let r = libc::waitpid(job, &mut status, 0);
                        if r == job {
                            break;
                        }
                        if r < 0 && *libc::__errno_location() != libc::EINTR {
                            libc::_exit(125);
                        }
                    }
                    let code = match libc::WIFEXITED(status) {
                        true => libc::WEXITSTATUS(status),
                        false => 128 + libc::WTERMSIG(status),
                    };
                    libc::_exit(code);
                }
                // The job: a group of its own, in the foreground (as a
                // background group, it would be stopped for asking).
                libc::setpgid(0, 0);
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                let put = libc::tcsetpgrp(0, libc::getpid());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
                if put < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        })
        .spawn();
    let job = safeexec_tests::wait_for_child(run.id(), |_| true, SOON).expect("the job's process");
    (run, job)
}

/// The JSON report of a run that wrote it to a file.
fn report_in(path: &str, out: &Output) -> Json {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report file {path}: {e}\n{}", dump(out)));
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("report file {path} is not JSON ({e}): {text:?}\n{}", dump(out)))
}

/// A directory of the test user's for the runs' report files.
fn reports(t: &Ctx) -> Scratch {
    t.scratch("terminal-reports")
}

/// Everything about a run, for assertion messages.
fn shown(out: &Output, term: &CallerTerminal) -> String {
    format!("{}\n--- caller's screen ---\n{:?}\n---", dump(out), term.screen_text())
}

// ---------------------------------------------------------------------------
// What the run does to its terminal

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn stty_raw_in_the_run_changes_its_own_pty_and_leaves_the_callers_terminal_as_it_was() {
    let t = require_root!();
    let dir = reports(&t);
    let report = dir.join("report.json");
    let term = CallerTerminal::open();
    let before = term.settings();
    let run = start_on(
        &t,
        &term,
        &[
            "--json",
            "--report_file",
            &report,
            "--nproc",
            "4",
            "--clock",
            "30",
            "--exec",
            "/bin/sh",
            "-c",
            "stty raw -echo && stty -a && echo STTY-DONE",
        ],
        true,
    );
    let out = run.wait();
    let screen = lossy(&term.settled_screen());
    let j = report_in(&report, &out);
    assert_eq!(j["verdict"], "ok", "{j}\n{}", shown(&out, &term));
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out, &term));
    // It did change a terminal: its own, which it then saw raw.
    assert!(screen.contains("STTY-DONE"), "{}", shown(&out, &term));
    assert!(
        screen.contains("-icanon") && screen.contains("-echo "),
        "the run's stty -a does not show its terminal raw\n{}",
        shown(&out, &term)
    );
    assert_eq!(term.settings(), before, "the caller's terminal was left changed");
    assert_eq!(pending_input(term.slave.as_fd()), 0, "input left in the caller's terminal");
    t.assert_nothing_left(json_uid(&j), &shown(&out, &term));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn terminal_requests_that_type_stop_lock_or_take_over_a_terminal_fail_on_the_runs_own_pty() {
    let t = require_root!();
    let dir = reports(&t);
    let report = dir.join("report.json");
    let term = CallerTerminal::open();
    let before = term.settings();
    let fixture = t.fixture("terminal_requests");
    let out = start_on(
        &t,
        &term,
        &["--json", "--report_file", &report, "--clock", "30", "--exec", &fixture, "requests"],
        true,
    )
    .wait();
    let screen = lossy(&term.settled_screen());
    let j = report_in(&report, &out);
    assert_eq!(j["verdict"], "ok", "{j}\n{}", shown(&out, &term));
    let fact = |key: &str| {
        kv(&screen, key).unwrap_or_else(|| panic!("no {key}= from the run\n{}", shown(&out, &term)))
    };
    assert_eq!(fact("isatty"), "1", "the run has no terminal\n{}", shown(&out, &term));
    // Its terminal is not the caller's: another device, another name.
    assert_ne!(fact("rdev"), term.rdev(), "the run has the caller's terminal");
    assert_ne!(fact("ttyname"), term.name(), "the run has the caller's terminal");
    assert_eq!(fact("typed"), "0", "{}", shown(&out, &term));
    for request in
        ["tiocsti", "tcxonc", "tiocexcl", "tiocsetd", "tiocsctty", "tioccons", "tioclinux"]
    {
        assert_eq!(fact(request), "EPERM", "{request}\n{}", shown(&out, &term));
    }
    // Nothing typed reached the caller's terminal: not its input queue,
    // nor, echoed by the run's pty, its screen.
    assert_eq!(pending_input(term.slave.as_fd()), 0, "keys were typed into the caller's terminal");
    assert!(!screen.contains("PWNED"), "typed keys were echoed\n{}", shown(&out, &term));
    assert_eq!(term.settings(), before, "the caller's terminal was left changed");
    t.assert_nothing_left(json_uid(&j), &shown(&out, &term));
}

// ---------------------------------------------------------------------------
// Every way out restores the caller's terminal

/// The frontend, on the caller's terminal, gets `sig` while its run (which
/// made its pty raw) waits: safeexec dies of that signal, the caller's
/// terminal is as it was, and nothing of the run is left.
fn signal_to_the_frontend_mid_run(t: &Ctx, sig: i32) {
    let term = CallerTerminal::open();
    let before = term.settings();
    let fixture = t.fixture("terminal_requests");
    let run = start_on(t, &term, &["--clock", "60", "--exec", &fixture, "raw"], true);
    let frontend = run.id();
    let ready = term.wait_for("READY", SOON);
    let (sup, _init, target) = run_pids(frontend);
    let uid = process(target).map(|p| p.uid).expect("the target's uid");
    assert!(ready, "the run never made its terminal raw: {:?}", term.screen_text());
    assert!(term.screen_text().contains("raw=ok"), "{:?}", term.screen_text());
    // The caller's terminal is raw meanwhile: that is what must be undone.
    assert!(
        term.wait_settings(|s| s.is_raw(), SOON),
        "the caller's terminal is not raw during the run: {:?}",
        term.settings()
    );
    let helper_started = process(sup).map(|p| p.started).expect("the helper");

    signal(frontend, sig);
    let out = run.wait();
    assert_eq!(
        out.status.signal(),
        Some(sig),
        "safeexec did not die of signal {sig}\n{}",
        shown(&out, &term)
    );
    assert_eq!(term.settings(), before, "the caller's terminal was left changed");
    t.assert_nothing_left(uid, &shown(&out, &term));
    // The helper is gone too (its pid may only be another process's now).
    let until = Instant::now() + SOON;
    while process(sup).is_some_and(|p| p.started == helper_started && p.alive()) {
        assert!(Instant::now() < until, "the helper outlived safeexec\n{}", shown(&out, &term));
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigterm_to_the_frontend_restores_the_callers_terminal_and_ends_the_run() {
    let t = require_root!();
    signal_to_the_frontend_mid_run(&t, libc::SIGTERM);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigint_to_the_frontend_restores_the_callers_terminal_and_ends_the_run() {
    let t = require_root!();
    signal_to_the_frontend_mid_run(&t, libc::SIGINT);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sighup_to_the_frontend_restores_the_callers_terminal_and_ends_the_run() {
    let t = require_root!();
    signal_to_the_frontend_mid_run(&t, libc::SIGHUP);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn wall_limit_on_a_run_that_made_its_terminal_raw_restores_the_callers_terminal() {
    let t = require_root!();
    let dir = reports(&t);
    let report = dir.join("report.json");
    let term = CallerTerminal::open();
    let before = term.settings();
    let fixture = t.fixture("terminal_requests");
    let started = Instant::now();
    let out = start_on(
        &t,
        &term,
        &["--json", "--report_file", &report, "--clock", "1", "--exec", &fixture, "raw"],
        true,
    )
    .wait();
    let elapsed = started.elapsed();
    term.settled_screen();
    let j = report_in(&report, &out);
    assert!(term.screen_text().contains("raw=ok"), "{}", shown(&out, &term));
    assert_eq!(j["verdict"], "time_limit", "{j}\n{}", shown(&out, &term));
    assert_eq!(j["limit"], "wall", "{j}");
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out, &term));
    assert!(elapsed < SOON, "a 1 s wall limit took {elapsed:?}");
    assert_eq!(term.settings(), before, "the caller's terminal was left raw");
    t.assert_nothing_left(json_uid(&j), &shown(&out, &term));
}

/// A run that writes to its terminal a byte at a time blocks and wakes at
/// each byte, and the kernel's tick-sampled CPU time, which RLIMIT_CPU is
/// checked against, charged it 1.9 times what it used: a backstop a second
/// past the run's CPU limit ended it with SIGXCPU at two thirds of it (a
/// review of the thirteenth round). The run is stopped by init at its
/// limit, with the right verdict.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_writing_a_byte_at_a_time_to_its_terminal_is_stopped_at_its_cpu_limit_not_before() {
    let t = require_root!();
    let dir = reports(&t);
    let report = dir.join("report.json");
    let term = CallerTerminal::open();
    let probe = t.probe();
    let args = ["--json", "--report_file", &report, "--cpu", "2", "--clock", "60"];
    let out = start_on(&t, &term, &[&args[..], &["--exec", &probe, "bytes"]].concat(), true).wait();
    term.settled_screen();
    let j = report_in(&report, &out);
    assert_eq!(j["verdict"], "time_limit", "{j}\n{}", dump(&out));
    assert_eq!(j["limit"], "cpu", "{j}");
    let cpu_ms = j["cpu_ms"].as_f64().unwrap_or(0.0);
    assert!(cpu_ms >= 2000.0, "stopped after {cpu_ms} ms of a 2000 ms limit\n{j}");
}

// ---------------------------------------------------------------------------
// Output and keys

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn output_limit_counts_what_the_run_writes_to_its_terminal() {
    let t = require_root!();
    let dir = reports(&t);
    let report = dir.join("report.json");
    let term = CallerTerminal::open();
    let before = term.settings();
    let limit = 1024;
    let out = start_on(
        &t,
        &term,
        &[
            "--json",
            "--report_file",
            &report,
            "--output",
            "1",
            "--clock",
            "20",
            "--exec",
            "/usr/bin/yes",
        ],
        true,
    )
    .wait();
    let screen = term.settled_screen();
    let j = report_in(&report, &out);
    assert_eq!(j["verdict"], "output_limit", "{j}\n{}", shown(&out, &term));
    assert_eq!(j["limit"], "output", "{j}");
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out, &term));
    assert!(
        j["output_bytes"].as_u64().is_some_and(|n| n > limit),
        "the endless output was not counted past the limit: {j}"
    );
    // What reaches the caller is what the relay counted, the run's pty's
    // \r\n included (the caller's terminal is raw meanwhile, so it adds
    // nothing): the limit, not a byte more.
    assert!(
        screen.len() as u64 <= limit,
        "{} bytes reached the caller's terminal past a {limit}-byte limit",
        screen.len()
    );
    assert!(screen.len() as u64 >= limit / 2, "only {} bytes reached the caller", screen.len());
    assert!(
        screen.iter().all(|&b| b"y\r\n".contains(&b)),
        "not the run's output: {:?}",
        lossy(&screen)
    );
    assert_eq!(term.settings(), before, "the caller's terminal was left changed");
    t.assert_nothing_left(json_uid(&j), &shown(&out, &term));
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn keys_reach_a_run_whose_output_is_a_pipe_and_ctrl_d_ends_its_input() {
    let t = require_root!();
    let term = CallerTerminal::open();
    let before = term.settings();
    let fixture = t.fixture("terminal_requests");
    let run = start_on(&t, &term, &["--json", "--clock", "60", "--exec", &fixture, "keys"], false);
    run_pids(run.id());
    // The keys of a line, edited on the caller's terminal (the erase key
    // it was given), then an end of file.
    term.type_keys(b"hellp\x08o there\n");
    let echoed = term.wait_for("there", SOON);
    // Left as it is (cooked) while the run reads: never raw.
    for _ in 0..20 {
        assert_eq!(term.settings(), before, "the caller's terminal was changed during the run");
        thread::sleep(Duration::from_millis(10));
    }
    term.type_keys(&[before.cc[libc::VEOF]]);
    let out = run.wait();
    let j = safeexec_tests::json_report(&out);
    let text = lossy(&out.stdout);
    assert!(echoed, "the caller's terminal did not echo the keys\n{}", shown(&out, &term));
    assert_eq!(j["verdict"], "ok", "{j}\n{}", shown(&out, &term));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("got=")).collect::<Vec<_>>(),
        ["got=hello there"],
        "{}",
        shown(&out, &term)
    );
    assert_eq!(kv(&text, "eof").as_deref(), Some("1"), "no end of file\n{}", shown(&out, &term));
    assert_eq!(kv(&text, "isatty").as_deref(), Some("1"), "{}", shown(&out, &term));
    assert_ne!(kv(&text, "rdev"), Some(term.rdev()), "the run read the caller's terminal itself");
    assert_eq!(term.settings(), before, "the caller's terminal was left changed");
    assert_eq!(pending_input(term.slave.as_fd()), 0, "keys left unread");
    t.assert_nothing_left(json_uid(&j), &shown(&out, &term));
}

/// SIGTSTP (^Z) stops safeexec with the caller's terminal as the
/// caller's shell left it, and so it stays while safeexec is stopped;
/// continued, safeexec goes on, and the terminal ends as it was. A review
/// of the fourteenth round: the stop, sent to the whole process, took
/// effect after the thread that sent it had made the terminal raw again,
/// so that a stopped safeexec left the caller's shell a raw terminal (no
/// echo, no line editing, no output processing); an interactive dash read
/// an end of file from it and exited.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_stopped_safeexec_leaves_the_callers_terminal_as_the_shell_left_it() {
    let t = require_root!();
    let term = CallerTerminal::open();
    let before = term.settings();
    let (run, pid) = start_as_a_job(&t, &term, &["--clock", "20", "--exec", "/bin/sleep", "3"]);
    let _continued = safeexec_tests::ContinueOnDrop(pid);
    // Each stop is a race of the frontend's threads: several of them.
    let mut stops = Vec::new();
    for _ in 0..4 {
        if !term.wait_settings(Settings::is_raw, SOON) {
            break;
        }
        // What the shell's ^Z sends.
        signal(pid, libc::SIGTSTP);
        let until = Instant::now() + SOON;
        while process(pid).is_some_and(|p| p.state != 'T') && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        let state = process(pid).map(|p| p.state);
        // Time for a wrong resume to show.
        thread::sleep(Duration::from_millis(100));
        stops.push((state, term.settings()));
        signal(pid, libc::SIGCONT);
    }
    let out = run.wait();
    assert_eq!(stops.len(), 4, "the caller's terminal was not raw again\n{}", shown(&out, &term));
    for (state, while_stopped) in stops {
        assert_eq!(state, Some('T'), "SIGTSTP did not stop safeexec\n{}", shown(&out, &term));
        assert_eq!(while_stopped, before, "the caller's terminal while safeexec was stopped");
    }
    // Continued, it went on to the run's end.
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out, &term));
    assert_eq!(term.settings(), before, "the caller's terminal was left changed");
}

/// Where safeexec's process group is orphaned (a session's leader alone
/// in it: `script`, `ssh -t HOST safeexec`, a terminal whose shell has
/// gone), SIGTSTP (^Z) stops nothing, as the kernel has it for every
/// program: no shell is there to continue it. The frontend made it a
/// SIGSTOP, which the kernel never ignores, and a review of the fourteenth
/// round found safeexec stopped for good, past its run's wall limit.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sigtstp_in_an_orphaned_process_group_does_not_stop_safeexec() {
    let t = require_root!();
    let term = CallerTerminal::open();
    let before = term.settings();
    let run = start_on(&t, &term, &["--clock", "20", "--exec", "/bin/sleep", "1"], true);
    let pid = run.id();
    let _continued = safeexec_tests::ContinueOnDrop(pid);
    assert!(term.wait_settings(Settings::is_raw, SOON), "the caller's terminal was never raw");
    signal(pid, libc::SIGTSTP);
    thread::sleep(Duration::from_millis(300));
    let state = process(pid).map(|p| p.state);
    if state == Some('T') {
        signal(pid, libc::SIGCONT);
    }
    let out = run.wait();
    assert_ne!(state, Some('T'), "SIGTSTP stopped safeexec\n{}", shown(&out, &term));
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out, &term));
    assert_eq!(term.settings(), before, "the caller's terminal was left changed");
}
