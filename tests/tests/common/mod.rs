//! Shared pieces of the adversarial suite (tests/tests/attack_*.rs): a way
//! to run the installed helper exactly as a hostile member of its group
//! could (any argv, even empty; any environment; chosen descriptors,
//! rlimits and signal state), and the checks every attack ends with (no
//! process of the run left, the probe's `key=value` lines).
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::ffi::{CString, OsStr};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use safeexec_tests::{live_processes_of, live_sandbox_processes, lossy, Env, Proc};
use shared::{Outcome, Reply};

/// How long a direct run of the helper may take before it is killed and the
/// test fails.
pub const DIRECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long processes of a finished run may take to disappear.
pub const CLEANUP_WAIT: Duration = Duration::from_secs(5);

/// The probe's path (tests/fixtures/attack_probe.c).
pub fn probe(t: &Env) -> String {
    t.fixture("attack_probe")
}

/// A signal state or rlimit to set in the child just before it execs the
/// helper.
#[derive(Debug, Clone, Copy)]
pub enum Preset {
    /// setrlimit(resource, soft, hard).
    Rlimit(libc::__rlimit_resource_t, u64, u64),
    /// Block every signal.
    BlockAll,
    /// SIG_IGN for this signal (any number from 1 to 64 but 9 and 19).
    Ignore(i32),
}

/// A run of the installed helper, executed straight from a forked child
/// (no setpriv, no env(1)) that has become the test user: so the argv and
/// the environment the helper sees are exactly the ones given here.
pub struct Direct {
    program: PathBuf,
    /// None: argv is just the program path.
    argv: Option<Vec<Vec<u8>>>,
    envp: Vec<Vec<u8>>,
    uid: u32,
    gid: u32,
    fds: Vec<(OwnedFd, RawFd)>,
    close: Vec<RawFd>,
    presets: Vec<Preset>,
    stdin: Option<OwnedFd>,
    cwd: PathBuf,
    timeout: Duration,
}

/// Raw pointers the forked child needs, prepared before the fork (the child
/// of a multi-threaded process must not allocate).
struct ExecArgs {
    program: CString,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into the CStrings owned by the same struct,
// which are only read, and only in the forked child.
unsafe impl Send for ExecArgs {}
// SAFETY: as above; nothing is ever written through them.
unsafe impl Sync for ExecArgs {}

fn c(bytes: &[u8]) -> CString {
    CString::new(bytes.to_vec()).expect("test strings have no NUL byte")
}

/// Starts a direct run of the helper as the test user.
pub fn direct(t: &Env) -> Direct {
    Direct {
        program: t.helper.clone(),
        argv: None,
        envp: Vec::new(),
        uid: t.test_user.uid,
        gid: t.test_user.gid,
        fds: Vec::new(),
        close: Vec::new(),
        presets: Vec::new(),
        stdin: None,
        cwd: t.work.clone(),
        timeout: DIRECT_TIMEOUT,
    }
}

impl Direct {
    /// Executes this file instead of the installed helper (a hard link).
    pub fn program(mut self, path: &Path) -> Self {
        self.program = path.to_path_buf();
        self
    }

    /// The helper's whole argv (may be empty).
    pub fn argv(mut self, argv: &[&[u8]]) -> Self {
        self.argv = Some(argv.iter().map(|a| a.to_vec()).collect());
        self
    }

    /// Adds `NAME=VALUE` to the helper's (otherwise empty) environment.
    pub fn env(mut self, entry: &str) -> Self {
        self.envp.push(entry.as_bytes().to_vec());
        self
    }

    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Gives the helper `fd` as descriptor `target`.
    pub fn fd(mut self, fd: impl Into<OwnedFd>, target: RawFd) -> Self {
        self.fds.push((fd.into(), target));
        self
    }

    /// Closes `target` in the helper (0, 1 and 2 included).
    pub fn close(mut self, target: RawFd) -> Self {
        self.close.push(target);
        self
    }

    pub fn preset(mut self, p: Preset) -> Self {
        self.presets.push(p);
        self
    }

    pub fn stdin(mut self, fd: impl Into<OwnedFd>) -> Self {
        self.stdin = Some(fd.into());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the helper with its stdout and stderr on pipes. Err: the
    /// execve of the helper itself failed (e.g. under a tiny RLIMIT_AS).
    pub fn try_spawn(mut self) -> io::Result<Running> {
        let program = c(self.program.as_os_str().as_bytes());
        let argv: Vec<CString> = match &self.argv {
            Some(a) => a.iter().map(|s| c(s)).collect(),
            None => vec![program.clone()],
        };
        let envp: Vec<CString> = self.envp.iter().map(|s| c(s)).collect();
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        let exec = ExecArgs {
            program,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
        };

        // Mapped descriptors go to high numbers first, so that the dup2
        // calls in the child cannot clobber one another.
        let mut high: Vec<(OwnedFd, RawFd)> = Vec::new();
        for (fd, target) in &self.fds {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own.
            let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 300) };
            assert!(dup >= 0, "F_DUPFD_CLOEXEC: {}", io::Error::last_os_error());
            // SAFETY: a fresh descriptor nothing else owns.
            high.push((unsafe { OwnedFd::from_raw_fd(dup) }, *target));
        }
        let pairs: Vec<(RawFd, RawFd)> = high.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect();
        let close = self.close.clone();
        let presets = self.presets.clone();

        let mut cmd = Command::new(&self.program);
        cmd.uid(self.uid)
            .gid(self.gid)
            .current_dir(&self.cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match self.stdin.take() {
            Some(fd) => cmd.stdin(Stdio::from(fd)),
            None => cmd.stdin(Stdio::null()),
        };
        // SAFETY: the closure only makes async-signal-safe calls (setrlimit,
        // sigprocmask, signal, dup2, close, execve) on data prepared before
        // the fork.
        unsafe {
            cmd.pre_exec(move || {
                // The whole struct (Send + Sync), not its raw-pointer fields.
                let exec = &exec;
                for &(from, to) in &pairs {
                    if libc::dup2(from, to) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // After the dup2 calls: a tiny RLIMIT_NOFILE would refuse them.
                for p in &presets {
                    match *p {
                        Preset::Rlimit(res, soft, hard) => {
                            let r = libc::rlimit {
                                rlim_cur: soft,
                                rlim_max: hard,
                            };
                            if libc::setrlimit(res, &r) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                        }
                        Preset::BlockAll => {
                            let mut all: libc::sigset_t = std::mem::zeroed();
                            libc::sigfillset(&mut all);
                            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
                        }
                        Preset::Ignore(sig) => {
                            // The raw system call: glibc's wrapper refuses
                            // the signals it reserves (32, 33), the kernel
                            // does not.
                            let act: [u64; 4] = [libc::SIG_IGN as u64, 0, 0, 0];
                            libc::syscall(
                                libc::SYS_rt_sigaction,
                                sig,
                                act.as_ptr(),
                                std::ptr::null_mut::<u64>(),
                                8,
                            );
                        }
                    }
                }
                for &fd in &close {
                    libc::close(fd);
                }
                libc::execve(
                    exec.program.as_ptr(),
                    exec.argv_ptrs.as_ptr(),
                    exec.envp_ptrs.as_ptr(),
                );
                Err(io::Error::last_os_error())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        drop(high);
        drop(self.fds);
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        Ok(Running {
            pid: child.id(),
            child,
            stdout,
            stderr,
            started,
            timeout: self.timeout,
        })
    }

    /// Starts the helper; panics if it cannot be executed at all.
    pub fn spawn(self) -> Running {
        let shown = self.program.display().to_string();
        self.try_spawn()
            .unwrap_or_else(|e| panic!("cannot execute {shown}: {e}"))
    }

    /// Gives the helper `bytes` on a request pipe (fd 3) and a reply pipe
    /// (fd 4), runs it to its end.
    pub fn exchange(self, bytes: &[u8]) -> DirectOutput {
        self.start_exchange(bytes).finish()
    }

    /// Like [`Direct::exchange`], but returns while the run goes on.
    pub fn start_exchange(self, bytes: &[u8]) -> Exchange {
        let (request_rx, mut request_tx) = io::pipe().expect("request pipe");
        let (mut reply_rx, reply_tx) = io::pipe().expect("reply pipe");
        let running = self
            .fd(request_rx, shared::REQUEST_FD)
            .fd(reply_tx, shared::REPLY_FD)
            .spawn();
        let bytes = bytes.to_vec();
        // The helper may refuse before it read everything; a failed write
        // belongs to the test, it is no error here.
        let writer = thread::spawn(move || {
            let _ = request_tx.write_all(&bytes);
        });
        let reply = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = reply_rx.read_to_end(&mut buf);
            buf
        });
        Exchange {
            running,
            writer,
            reply,
        }
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Joins a reader thread, waiting at most `wait` (a leaked process may
/// hold the pipe open: that is for the test to find, not to hang on).
fn join_bounded(h: Option<thread::JoinHandle<Vec<u8>>>, wait: Duration) -> Vec<u8> {
    let Some(h) = h else { return Vec::new() };
    let until = Instant::now() + wait;
    while !h.is_finished() && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        b"<still open: some process kept this pipe>".to_vec()
    }
}

/// A helper that was started.
pub struct Running {
    /// The helper's pid: after its fork, the supervisor's.
    pub pid: u32,
    pub child: Child,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    started: Instant,
    timeout: Duration,
}

impl Running {
    /// Waits for the end (killing the helper and failing after the timeout).
    pub fn wait(mut self) -> Output {
        let deadline = self.started + self.timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "the helper (pid {}) still ran after {:?}: killed",
                        self.pid, self.timeout
                    );
                }
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("wait for the helper: {e}"),
            }
        };
        Output {
            status,
            stdout: join_bounded(self.stdout.take(), Duration::from_secs(3)),
            stderr: join_bounded(self.stderr.take(), Duration::from_secs(3)),
        }
    }

    /// Whether the helper has ended (reaping it if so).
    pub fn ended(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// A direct run in progress with its request and reply pipes.
pub struct Exchange {
    pub running: Running,
    writer: thread::JoinHandle<()>,
    reply: thread::JoinHandle<Vec<u8>>,
}

impl Exchange {
    pub fn pid(&self) -> u32 {
        self.running.pid
    }

    pub fn finish(self) -> DirectOutput {
        let started = self.running.started;
        let pid = self.running.pid;
        let output = self.running.wait();
        let elapsed = started.elapsed();
        let _ = self.writer.join();
        let reply_bytes = join_bounded(Some(self.reply), Duration::from_secs(3));
        DirectOutput {
            output,
            reply_bytes,
            elapsed,
            pid,
        }
    }
}

/// What a direct run gave back.
#[derive(Debug)]
pub struct DirectOutput {
    pub output: Output,
    pub reply_bytes: Vec<u8>,
    pub elapsed: Duration,
    pub pid: u32,
}

impl DirectOutput {
    pub fn reply(&self) -> Result<Reply, shared::wire::WireError> {
        shared::wire::read_reply(&mut &self.reply_bytes[..])
    }

    pub fn dump(&self) -> String {
        format!(
            "status: {:?}; after {:?}; reply: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.output.status,
            self.elapsed,
            self.reply(),
            lossy(&self.output.stdout),
            lossy(&self.output.stderr)
        )
    }

    pub fn stdout(&self) -> String {
        lossy(&self.output.stdout)
    }

    /// The outcome of a run that finished; panics with everything otherwise.
    pub fn outcome(&self) -> Outcome {
        match self.reply() {
            Ok(Reply::Finished(o)) => {
                assert_eq!(
                    self.output.status.code(),
                    Some(0),
                    "a finished run, but the helper did not exit 0\n{}",
                    self.dump()
                );
                o
            }
            _ => panic!("no outcome from the helper\n{}", self.dump()),
        }
    }

    /// Asserts a refusal that fails closed: no outcome, exit status 2, one
    /// line (in a Failed reply, or on stderr when the reply channel was
    /// unusable), no core dump; returns the line.
    pub fn refusal(&self) -> String {
        assert!(
            !self.output.status.core_dumped(),
            "the helper dumped core\n{}",
            self.dump()
        );
        assert_eq!(
            self.output.status.code(),
            Some(2),
            "a refusal must exit 2 (not crash, not succeed)\n{}",
            self.dump()
        );
        let line = match self.reply() {
            Ok(Reply::Failed(msg)) => msg,
            Ok(Reply::Finished(o)) => panic!("refused, yet it ran: {o:?}\n{}", self.dump()),
            Err(_) => lossy(&self.output.stderr),
        };
        let line = line.trim_end_matches('\n').to_string();
        assert!(!line.trim().is_empty(), "no error message\n{}", self.dump());
        assert_eq!(
            line.lines().count(),
            1,
            "the error is not one line: {line:?}\n{}",
            self.dump()
        );
        line
    }
}

// ---------------------------------------------------------------------------
// Processes

/// Children of `pid` (all its threads').
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Waits until `pid` has a child whose real uid satisfies `want`.
pub fn wait_for_child(pid: u32, want: impl Fn(u32) -> bool, timeout: Duration) -> Option<u32> {
    let until = Instant::now() + timeout;
    loop {
        for c in children_of(pid) {
            if safeexec_tests::process(c).is_some_and(|p| want(p.uid) && p.alive()) {
                return Some(c);
            }
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The pids of every process below `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        for c in children_of(p) {
            out.push(c);
            queue.push(c);
        }
    }
    out
}

fn kill_all(procs: &[Proc]) {
    for p in procs {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
    }
}

/// Polls until no live process has real uid `uid` (at most `wait`); then
/// kills any that are left (so that no other test meets them) and returns
/// them for the assertion.
pub fn survivors_of(uid: u32, wait: Duration) -> Vec<Proc> {
    let until = Instant::now() + wait;
    loop {
        let left = live_processes_of(uid);
        if left.is_empty() {
            return left;
        }
        if Instant::now() >= until {
            kill_all(&left);
            return left;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`survivors_of`] for the whole sandbox range (only meaningful when
/// no other run goes on: attack_cleanup's tests run one at a time).
pub fn sandbox_survivors(wait: Duration) -> Vec<Proc> {
    let until = Instant::now() + wait;
    loop {
        let left = live_sandbox_processes();
        if left.is_empty() || Instant::now() >= until {
            kill_all(&left);
            return left;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that nothing of the run of `uid` is left.
pub fn assert_nothing_left(uid: u32, context: &str) {
    let left = survivors_of(uid, CLEANUP_WAIT);
    assert!(
        left.is_empty(),
        "processes of sandbox uid {uid} survived the run: {left:?}\n{context}"
    );
}

// ---------------------------------------------------------------------------
// Reading what the probe and the frontend said

/// The value of `key=` in the probe's output (first occurrence).
pub fn kv(text: &str, key: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|tok| tok.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// `kv` parsed as a number.
pub fn kv_num(text: &str, key: &str) -> Option<i64> {
    kv(text, key)?.parse().ok()
}

/// The run's uid from a JSON report.
pub fn json_uid(j: &safeexec_tests::Json) -> u32 {
    j["uid"]
        .as_u64()
        .and_then(|u| u32::try_from(u).ok())
        .unwrap_or_else(|| panic!("no uid in the report: {j}"))
}

/// A path as a &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Turns an OsStr into bytes.
pub fn bytes(o: &OsStr) -> Vec<u8> {
    o.as_bytes().to_vec()
}

/// Sends a signal to a pid.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Asserts the JSON report's verdict token and safeexec's exit status.
pub fn verdict(out: &Output, j: &safeexec_tests::Json, token: &str, status: i32) {
    let dump = safeexec_tests::dump;
    assert_eq!(j["verdict"], token, "{}", dump(out));
    assert_eq!(out.status.code(), Some(status), "{}", dump(out));
}

/// What a probe printed as `key=VALUE`; the test fails if it printed none.
pub fn word(out: &Output, key: &str) -> String {
    let dump = safeexec_tests::dump;
    kv(&safeexec_tests::stdout(out), key)
        .unwrap_or_else(|| panic!("no {key}= from the probe\n{}", dump(out)))
}

/// A new pseudo-terminal (master, slave), both close-on-exec.
pub fn pty() -> (OwnedFd, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty writes two descriptors into the given locals.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe {
        use std::os::fd::FromRawFd;
        for fd in [master, slave] {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    }
}
