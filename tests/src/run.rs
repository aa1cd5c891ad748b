//! Running things as an unprivileged user, the two ways the tests need:
//!
//! - [`Run`]: the frontend (or any program) as the test user, the way a
//!   login would start it: `setpriv --reuid=USER --regid=USER --init-groups
//!   -- /usr/bin/env -- PROGRAM ARGS`, with only PATH in its environment;
//! - [`Direct`]: the installed helper itself, executed straight from a
//!   forked child that has become the test user (no setpriv, no env(1)), so
//!   that its argv, environment, descriptors, rlimits and signal state are
//!   exactly the ones a hostile member of its group would choose.
//!
//! Both give a [`Spawned`] process, which a test waits for (killed, and the
//! test failed, after a timeout: a hanging helper must not hang the suite).

use std::ffi::{CString, OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::protocol::{decode_reply, Outcome, Reply};
use crate::report::{dump, json_report, json_uid, lossy};
use crate::{Ctx, Env, Json, DEFAULT_TIMEOUT, OUTSIDER_USER, TEST_USER};

/// How long a direct run of the helper may take before it is killed and the
/// test fails.
pub const DIRECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the output of a process that ended may stay open (a process it
/// leaked may hold the pipe: that is for the test to find, not to hang on).
const DRAIN_WAIT: Duration = Duration::from_secs(3);

/// Who runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// [`TEST_USER`], a member of the helper's group.
    Test,
    /// [`OUTSIDER_USER`], not a member of the helper's group.
    Outsider,
}

impl User {
    pub fn name(self) -> &'static str {
        match self {
            User::Test => TEST_USER,
            User::Outsider => OUTSIDER_USER,
        }
    }
}

/// What a command reads on its standard input.
#[derive(Debug)]
pub enum Input {
    Null,
    Bytes(Vec<u8>),
    File(File),
}

type Hook = Box<dyn FnMut() -> io::Result<()> + Send + Sync>;

// ---------------------------------------------------------------------------
// Through setpriv: the frontend, or any program

/// A program run as an unprivileged user through `setpriv --reuid=USER
/// --regid=USER --init-groups [OPTIONS] -- /usr/bin/env -- PROGRAM ARGS`:
/// the frontend ([`Env::run`]) or any other ([`Env::run_program`]). Stdin
/// is /dev/null, the working directory PREFIX/work and the environment only
/// `PATH=/usr/bin:/bin`, unless the builder says otherwise.
pub struct Run {
    program: PathBuf,
    args: Vec<OsString>,
    user: User,
    setpriv: Vec<OsString>,
    stdin: Input,
    cwd: PathBuf,
    vars: Vec<(OsString, OsString)>,
    timeout: Duration,
    fds: Vec<(OwnedFd, RawFd)>,
    close: Vec<RawFd>,
    hooks: Vec<Hook>,
}

impl Env {
    /// A run of the installed frontend as the test user.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.run_program(&self.safeexec, args)
    }

    /// A run of `program` (a path, or a name found in PATH) as the test user.
    pub fn run_program<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Run {
        Run {
            program: PathBuf::from(program.as_ref()),
            args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
            user: User::Test,
            setpriv: Vec::new(),
            stdin: Input::Null,
            cwd: self.work.clone(),
            vars: vec![("PATH".into(), "/usr/bin:/bin".into())],
            timeout: DEFAULT_TIMEOUT,
            fds: Vec::new(),
            close: Vec::new(),
            hooks: Vec::new(),
        }
    }

    /// `safeexec ARGS` as the test user; stdin /dev/null.
    pub fn safeexec<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.run(args).output()
    }

    /// `safeexec ARGS` as the test user with these bytes on stdin.
    pub fn safeexec_with_stdin<S: AsRef<OsStr>>(&self, args: &[S], stdin: &[u8]) -> Output {
        self.run(args).stdin_bytes(stdin).output()
    }

    /// `safeexec ARGS` as the given user.
    pub fn safeexec_as<S: AsRef<OsStr>>(&self, user: User, args: &[S]) -> Output {
        self.run(args).user(user).output()
    }

    /// `safeexec ARGS` as the test user, in directory `cwd`.
    pub fn safeexec_in<S: AsRef<OsStr>>(&self, cwd: &Path, args: &[S]) -> Output {
        self.run(args).cwd(cwd).output()
    }
}

impl Run {
    pub fn user(mut self, user: User) -> Self {
        self.user = user;
        self
    }

    /// More options for setpriv (before its `--`), e.g. `--inh-caps=...`.
    pub fn setpriv_options<S: AsRef<OsStr>>(mut self, options: &[S]) -> Self {
        self.setpriv.extend(options.iter().map(|o| o.as_ref().to_os_string()));
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }

    pub fn stdin(mut self, input: Input) -> Self {
        self.stdin = input;
        self
    }

    pub fn stdin_bytes(self, bytes: &[u8]) -> Self {
        self.stdin(Input::Bytes(bytes.to_vec()))
    }

    /// Sets a variable in the command's environment (which otherwise holds
    /// only PATH).
    pub fn var(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.vars.push((name.as_ref().into(), value.as_ref().into()));
        self
    }

    /// Starts the command with an empty environment, not even PATH (as a
    /// web server's `proc_open` with an empty array does).
    pub fn empty_env(mut self) -> Self {
        self.vars.clear();
        self
    }

    /// How long the command may run, from its start, before it is killed and
    /// the test fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passes `fd` to the command as descriptor `target` (0-2 included, which
    /// replaces the standard stream).
    pub fn fd(mut self, fd: impl Into<OwnedFd>, target: RawFd) -> Self {
        self.fds.push((fd.into(), target));
        self
    }

    /// Closes descriptor `target` in the command (after [`Run::fd`] mappings).
    pub fn close_fd(mut self, target: RawFd) -> Self {
        self.close.push(target);
        self
    }

    /// Runs `hook` in the child just before `setpriv` is executed (to set
    /// rlimits, a signal disposition, ...). It must be async-signal-safe.
    pub fn pre_exec(
        mut self,
        hook: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// The command line, for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("[{}] {}", self.user.name(), self.program.display());
        for a in &self.args {
            let _ = write!(s, " {}", a.to_string_lossy());
        }
        s
    }

    /// Runs the command to its end (see [`Spawned::wait`]).
    pub fn output(self) -> Output {
        self.spawn().wait()
    }

    /// Starts the command; its stdout and stderr are pipes.
    pub fn spawn(mut self) -> Spawned {
        let name = self.user.name();
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={name}"))
            .arg(format!("--regid={name}"))
            .arg("--init-groups")
            .args(&self.setpriv)
            .arg("--")
            // setpriv keeps its capabilities (PR_SET_KEEPCAPS) until its own
            // execve, so an execve by setpriv itself would pass permission
            // checks that the user would fail. env is executed without
            // privilege and then executes the program as the plain user.
            .arg("/usr/bin/env")
            .arg("--")
            .arg(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut stdin_bytes = None;
        match std::mem::replace(&mut self.stdin, Input::Null) {
            Input::Null => {
                cmd.stdin(Stdio::null());
            }
            Input::File(f) => {
                cmd.stdin(Stdio::from(f));
            }
            Input::Bytes(b) => {
                cmd.stdin(Stdio::piped());
                stdin_bytes = Some(b);
            }
        }
        let high = high_copies(&self.fds);
        let pairs: Vec<(RawFd, RawFd)> = high.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect();
        let close = self.close.clone();
        let mut hooks = std::mem::take(&mut self.hooks);
        if !pairs.is_empty() || !close.is_empty() || !hooks.is_empty() {
            // SAFETY: the closure only calls async-signal-safe functions
            // (dup2, close, and the caller's hooks, which must be).
            unsafe {
                cmd.pre_exec(move || {
                    for hook in hooks.iter_mut() {
                        hook()?;
                    }
                    place_fds(&pairs, &close)
                });
            }
        }
        let described = self.describe();
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
        drop(high);
        drop(self.fds);
        let stdin_thread = match (stdin_bytes, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        Spawned::new(child, stdin_thread, described, started, self.timeout)
    }
}

impl Ctx {
    /// `safeexec --json OPTS --exec PROBE ATTACK...` as the test user;
    /// returns the output and the JSON report, after checking that nothing
    /// of the run is left.
    pub fn attack(&self, opts: &[&str], attack: &[&str]) -> (Output, Json) {
        self.attack_with(&self.probe(), opts, attack)
    }

    /// [`Ctx::attack`] with another program (a copy of the probe, or the
    /// probe's path inside a jail).
    pub fn attack_with(&self, program: &str, opts: &[&str], attack: &[&str]) -> (Output, Json) {
        let mut args: Vec<&str> = opts.to_vec();
        args.extend(["--json", "--exec", program]);
        args.extend_from_slice(attack);
        let out = self.safeexec(&args);
        let j = json_report(&out);
        self.assert_nothing_left(json_uid(&j), &dump(&out));
        (out, j)
    }
}

// ---------------------------------------------------------------------------
// The helper, executed directly

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
    /// ITIMER_PROF and ITIMER_VIRTUAL, each firing every microsecond of
    /// CPU time (every tick the process runs on): they survive execve.
    CpuTimers,
}

/// A run of the installed helper, executed straight from a forked child
/// (no setpriv, no env(1)) that has become the test user (`setgroups([])`,
/// then its gid and uid): so the argv and the environment the helper sees
/// are exactly the ones given here. By default: argv is the helper's path,
/// the environment is empty, descriptors 0 (/dev/null), 1 and 2 (pipes)
/// only, the working directory PREFIX/work.
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
    /// Sent with the request, after the program's standard descriptors.
    passed: Vec<OwnedFd>,
    /// The program's standard descriptors sent are /dev/null, not copies
    /// of the helper's own.
    null_program_stdio: bool,
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

fn c_string(bytes: &[u8]) -> CString {
    CString::new(bytes.to_vec()).expect("test strings have no NUL byte")
}

impl Env {
    /// A direct run of the installed helper as the test user.
    pub fn direct(&self) -> Direct {
        Direct {
            program: self.helper.clone(),
            argv: None,
            envp: Vec::new(),
            uid: self.test_user.uid,
            gid: self.test_user.gid,
            fds: Vec::new(),
            close: Vec::new(),
            presets: Vec::new(),
            stdin: None,
            passed: Vec::new(),
            null_program_stdio: false,
            cwd: self.work.clone(),
            timeout: DIRECT_TIMEOUT,
        }
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

    /// Sends `fd` with the request (`shared::Request::passed_fds`), after
    /// the program's standard descriptors and any passed before.
    pub fn pass(mut self, fd: impl Into<OwnedFd>) -> Self {
        self.passed.push(fd.into());
        self
    }

    /// Sends /dev/null as the program's three standard descriptors, so
    /// that the helper replaces its own 0-2 with other files.
    pub fn null_program_stdio(mut self) -> Self {
        self.null_program_stdio = true;
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
    /// execve of the helper itself failed (e.g. under a tiny RLIMIT_AS, or
    /// for a user who may not execute it).
    pub fn try_spawn(self) -> io::Result<Spawned> {
        self.launch().map(|(spawned, _)| spawned)
    }

    /// `try_spawn`, and what a request to it sends as the program's
    /// standard descriptors: its own 0, 1 and 2 (so that the program's
    /// output comes out with the helper's), then what `pass` gave.
    fn launch(mut self) -> io::Result<(Spawned, Vec<OwnedFd>)> {
        let program = c_string(self.program.as_os_str().as_bytes());
        let argv: Vec<CString> = match &self.argv {
            Some(a) => a.iter().map(|s| c_string(s)).collect(),
            None => vec![program.clone()],
        };
        let envp: Vec<CString> = self.envp.iter().map(|s| c_string(s)).collect();
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        let exec = ExecArgs { program, _argv: argv, _envp: envp, argv_ptrs, envp_ptrs };
        let high = high_copies(&self.fds);
        let pairs: Vec<(RawFd, RawFd)> = high.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect();
        let close = self.close.clone();
        let presets = self.presets.clone();

        let (out_rx, out_tx) = io::pipe()?;
        let (err_rx, err_tx) = io::pipe()?;
        let stdin = match self.stdin.take() {
            Some(fd) => fd,
            None => File::open("/dev/null")?.into(),
        };
        let mut to_pass: Vec<OwnedFd> = if self.null_program_stdio {
            let null = || File::options().read(true).write(true).open("/dev/null");
            vec![null()?.into(), null()?.into(), null()?.into()]
        } else {
            vec![stdin.try_clone()?, out_tx.try_clone()?.into(), err_tx.try_clone()?.into()]
        };
        to_pass.append(&mut self.passed);
        let mut cmd = Command::new(&self.program);
        cmd.uid(self.uid)
            .gid(self.gid)
            .current_dir(&self.cwd)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(out_tx))
            .stderr(Stdio::from(err_tx));
        // SAFETY: the closure only makes async-signal-safe calls (dup2,
        // close, setrlimit, sigprocmask, rt_sigaction, execve) on data
        // prepared before the fork.
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
                    apply_preset(*p)?;
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
        let described = format!("{} (uid {}, direct)", self.program.display(), self.uid);
        let started = Instant::now();
        let child = cmd.spawn();
        // Our copies of the child's ends, in the command too.
        drop(cmd);
        drop(high);
        drop(self.fds);
        let mut spawned = Spawned::new(child?, None, described, started, self.timeout);
        spawned.stdout = Some(reader(out_rx));
        spawned.stderr = Some(reader(err_rx));
        Ok((spawned, to_pass))
    }

    /// Starts the helper with a request socket (descriptor 3) and a reply
    /// pipe (4), as the frontend does: the request is the caller's to send.
    pub fn spawn_for_request(self) -> (Spawned, RequestTx, io::PipeReader) {
        self.spawn_for_request_on(UnixStream::pair().expect("request socket"))
    }

    /// `spawn_for_request` on a socket pair of the test's own: `ours` to
    /// send on, `theirs` the helper's end (of which the test may keep a
    /// copy, or on which it may have set options).
    pub fn spawn_for_request_on(
        self,
        pair: (UnixStream, UnixStream),
    ) -> (Spawned, RequestTx, io::PipeReader) {
        let shown = self.program.display().to_string();
        self.launch_for_request(pair).unwrap_or_else(|e| panic!("cannot execute {shown}: {e}"))
    }

    /// `spawn_for_request`; Err: the helper's own execve failed.
    pub fn try_spawn_for_request(self) -> io::Result<(Spawned, RequestTx, io::PipeReader)> {
        self.launch_for_request(UnixStream::pair()?)
    }

    fn launch_for_request(
        self,
        (socket, request_rx): (UnixStream, UnixStream),
    ) -> io::Result<(Spawned, RequestTx, io::PipeReader)> {
        let (reply_rx, reply_tx) = io::pipe()?;
        let (running, fds) =
            self.fd(request_rx, shared::REQUEST_FD).fd(reply_tx, shared::REPLY_FD).launch()?;
        Ok((running, RequestTx { socket, fds }, reply_rx))
    }

    /// Starts the helper; panics if it cannot be executed at all.
    pub fn spawn(self) -> Spawned {
        let shown = self.program.display().to_string();
        self.try_spawn().unwrap_or_else(|e| panic!("cannot execute {shown}: {e}"))
    }

    /// Gives the helper `bytes` on a request pipe (fd 3) and a reply pipe
    /// (fd 4), runs it to its end.
    pub fn exchange(self, bytes: &[u8]) -> DirectOutput {
        self.start_exchange(bytes).finish()
    }

    /// Like [`Direct::exchange`], but returns while the run goes on.
    pub fn start_exchange(self, bytes: &[u8]) -> Exchange {
        self.start_exchange_after(bytes, Duration::ZERO)
    }

    /// Like [`Direct::exchange`], with the request written only `delay`
    /// after the helper started (a slow caller): what the helper does
    /// before it reads the request has long been done by then.
    pub fn exchange_after(self, bytes: &[u8], delay: Duration) -> DirectOutput {
        self.start_exchange_after(bytes, delay).finish()
    }

    fn start_exchange_after(self, bytes: &[u8], delay: Duration) -> Exchange {
        let (running, request_tx, reply_rx) = self.spawn_for_request();
        let bytes = bytes.to_vec();
        // The helper may refuse before it read everything; a failed write
        // belongs to the test, it is no error here.
        let writer = thread::spawn(move || {
            thread::sleep(delay);
            let _ = request_tx.send(&bytes);
        });
        Exchange { running, writer, reply: reader(reply_rx) }
    }
}

/// The caller's end of a direct helper's request socket, and the
/// descriptors to send with the request (`Direct::spawn_for_request`).
pub struct RequestTx {
    socket: UnixStream,
    fds: Vec<OwnedFd>,
}

impl RequestTx {
    /// Sends `bytes` with the descriptors beside the first of them, then
    /// ends the stream, as the frontend does (`safeexec::run::send_request`).
    pub fn send(self, bytes: &[u8]) -> io::Result<()> {
        safeexec::run::send_request(self.socket, bytes, &self.fds).map_err(io::Error::other)
    }

    /// Holds the socket open without sending: the caller that never asks.
    pub fn into_socket(self) -> UnixStream {
        self.socket
    }
}

/// Sets one preset in the forked child. Async-signal-safe.
fn apply_preset(p: Preset) -> io::Result<()> {
    // SAFETY: plain system calls on this (child) process with initialised
    // arguments.
    unsafe {
        match p {
            Preset::Rlimit(res, soft, hard) => {
                let r = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                if libc::setrlimit(res, &r) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Preset::BlockAll => {
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            }
            Preset::CpuTimers => {
                let tick = libc::timeval { tv_sec: 0, tv_usec: 1 };
                let timer = libc::itimerval { it_interval: tick, it_value: tick };
                for which in [libc::ITIMER_PROF, libc::ITIMER_VIRTUAL] {
                    if libc::setitimer(which, &timer, std::ptr::null_mut()) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            Preset::Ignore(sig) => {
                // The raw system call: glibc's wrapper refuses the signals
                // it reserves (32, 33), the kernel does not.
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
    Ok(())
}

/// A direct run in progress with its request and reply pipes.
pub struct Exchange {
    pub running: Spawned,
    writer: JoinHandle<()>,
    reply: JoinHandle<Vec<u8>>,
}

impl Exchange {
    /// The helper's pid: after its fork, the supervisor's.
    pub fn pid(&self) -> u32 {
        self.running.id()
    }

    pub fn finish(self) -> DirectOutput {
        let started = self.running.started;
        let pid = self.running.id();
        let output = self.running.wait();
        let elapsed = started.elapsed();
        let _ = self.writer.join();
        let reply_bytes = join_bounded(Some(self.reply), DRAIN_WAIT);
        DirectOutput { output, reply_bytes, elapsed, pid }
    }
}

/// What a direct run of the helper gave back.
#[derive(Debug)]
pub struct DirectOutput {
    pub output: Output,
    /// Every byte the helper wrote on its reply descriptor.
    pub reply_bytes: Vec<u8>,
    pub elapsed: Duration,
    /// The helper's pid (the supervisor's; it says nothing of the run's
    /// uid, which the allocator hands out in turn).
    pub pid: u32,
}

impl DirectOutput {
    pub fn reply(&self) -> Result<Reply, String> {
        decode_reply(&self.reply_bytes)
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
        assert!(!self.output.status.core_dumped(), "the helper dumped core\n{}", self.dump());
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
        assert_eq!(line.lines().count(), 1, "the error is not one line: {line:?}\n{}", self.dump());
        line
    }
}

// ---------------------------------------------------------------------------
// A started process

/// A started command (through [`Run`] or [`Direct`]), its stdout and stderr
/// being read.
pub struct Spawned {
    pub child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    stdin_thread: Option<JoinHandle<()>>,
    described: String,
    started: Instant,
    timeout: Duration,
}

impl Spawned {
    fn new(
        mut child: Child,
        stdin_thread: Option<JoinHandle<()>>,
        described: String,
        started: Instant,
        timeout: Duration,
    ) -> Self {
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        Spawned { child, stdout, stderr, stdin_thread, described, started, timeout }
    }

    /// Its pid (setpriv's, which becomes the program's through its execs).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has ended (reaping it if so).
    pub fn ended(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the end and returns the status and output; after the
    /// timeout (from its start) kills it and fails the test.
    pub fn wait(mut self) -> Output {
        let deadline = self.started + self.timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let status = self.child.wait().expect("wait for a killed child");
                    let partial = self.collect(status);
                    panic!(
                        "{}: still running after {:?}, killed\n{}",
                        self.described,
                        self.timeout,
                        dump(&partial)
                    );
                }
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("{}: wait failed: {e}", self.described),
            }
        };
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> Output {
        if let Some(t) = self.stdin_thread.take() {
            let _ = t.join();
        }
        Output {
            status,
            stdout: join_bounded(self.stdout.take(), DRAIN_WAIT),
            stderr: join_bounded(self.stderr.take(), DRAIN_WAIT),
        }
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Joins a reader thread, waiting at most `wait` (a leaked process may
/// hold the pipe open: that is for the test to find, not to hang on).
fn join_bounded(h: Option<JoinHandle<Vec<u8>>>, wait: Duration) -> Vec<u8> {
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

// ---------------------------------------------------------------------------
// Descriptors

/// Close-on-exec copies of the descriptors to pass, at numbers of 300 and
/// up: the dup2 calls in the child then cannot clobber one another.
fn high_copies(fds: &[(OwnedFd, RawFd)]) -> Vec<(OwnedFd, RawFd)> {
    fds.iter()
        .map(|(fd, target)| {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one.
            let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 300) };
            assert!(dup >= 0, "F_DUPFD_CLOEXEC: {}", io::Error::last_os_error());
            // SAFETY: dup is a fresh descriptor that nothing else owns.
            (unsafe { OwnedFd::from_raw_fd(dup) }, *target)
        })
        .collect()
}

/// In the forked child: each high copy onto its target, then the closes.
/// Async-signal-safe.
fn place_fds(pairs: &[(RawFd, RawFd)], close: &[RawFd]) -> io::Result<()> {
    for &(from, to) in pairs {
        // SAFETY: dup2 between descriptors of this (child) process.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for &fd in close {
        // SAFETY: closing a descriptor of this (child) process.
        unsafe { libc::close(fd) };
    }
    Ok(())
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
    assert_eq!(r, 0, "openpty: {}", io::Error::last_os_error());
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe {
        for fd in [master, slave] {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    }
}
