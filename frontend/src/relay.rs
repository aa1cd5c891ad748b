//! The relay between the run and the caller's descriptors, used when the
//! output is limited (`--output`) or when the run has a pty of its own
//! because one of our descriptors 0, 1 and 2 is a terminal (`terminal`).
//! The helper's descriptors 0, 1 and 2 (which the target inherits) are:
//!
//! - where ours is a terminal: the pty's slave (stdin only if the terminal's
//!   keys are ours to read, else /dev/null);
//! - where ours is anything else: with an output limit, stdout and stderr
//!   are pipes of the relay; otherwise our own descriptor, as it is;
//! - where ours is closed: /dev/null.
//!
//! One thread copies, unbuffered, and counts all the output together:
//!
//! ```text
//!   run ─ stdout pipe ─┐                    ┌─▶ our stdout
//!   run ─ stderr pipe ─┼─▶ relay thread ────┼─▶ our stderr
//!   run ═ pty slave ═══╡  (all output       └─▶ our terminal: stdout if it
//!                      │   counted)              is one, else stderr
//!   run ◀═ pty slave ══╧══ pty master ◀── keys thread ◀── our stdin's keys
//!                                │
//!                                └─ count > limit: SIGUSR1 to the helper,
//!                                   once ("stop the run", Stop::ByCaller)
//! ```
//!
//! Bytes past the limit are read and counted, never written. The relay
//! writes to our descriptors as they are: a caller that stops reading
//! stalls the relay, and the run then blocks on its pipe or pty, which
//! costs it no CPU time. The keys go to the master on a thread of their
//! own (`pass_keys`): while the run does not read them, no more are taken
//! from the caller's terminal, and the output goes on.
//!
//! The order at the end (`run::run`): read the helper's reply, then
//! [`Relay::finish`] (no signal goes to the helper after it is called; it
//! returns once every pipe reached end of file and the pty's slave was
//! closed, i.e. once the helper and every process of the run are gone), and
//! only then wait for the helper: a signal never names a pid that may have
//! been reaped. (A caller that ignores SIGCHLD has the kernel reap the
//! helper as it exits; closing the order as soon as the reply pipe is done
//! leaves only the moment between the helper's exit and our read of its end
//! of file.)

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::spawn::Stdio;
use crate::terminal::{self, Caller, Keys, Pty, Std};

/// A running relay.
pub struct Relay {
    thread: JoinHandle<u64>,
    helper: Arc<ToHelper>,
    /// Closed by `finish`: the run is over, and the thread only drains.
    run_over: OwnedFd,
}

/// The helper's descriptors 0, 1 and 2.
pub struct HelperStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl HelperStdio {
    /// Ours, as they are; /dev/null for a closed one (as the helper would
    /// put there anyway) and for a terminal, which is never passed on (the
    /// pty takes its place where it is needed).
    pub fn inherited(caller: &Caller) -> HelperStdio {
        let ours = |kind| if kind == Std::Other { Stdio::Inherit } else { Stdio::Null };
        HelperStdio {
            stdin: ours(caller.stdin),
            stdout: ours(caller.stdout),
            stderr: ours(caller.stderr),
        }
    }
}

impl Relay {
    /// Sets up the helper's descriptors 0, 1 and 2 and starts copying:
    /// `limit` bytes of output in all, if any; `pty` is the run's own, when
    /// `caller` has a terminal. Returns no relay when there is nothing to
    /// relay (no limit, no pty): then the helper has our descriptors.
    ///
    /// The caller hands the returned descriptors to the helper and must
    /// drop every copy of them of its own right after spawning it, or the
    /// relay never sees the end of the run. A stop order or a forwarded
    /// signal goes to the pid given to `helper`.
    pub fn start(
        caller: &Caller,
        limit: Option<u64>,
        pty: Option<Pty>,
        helper: Arc<ToHelper>,
    ) -> io::Result<(Option<Relay>, HelperStdio)> {
        let mut stdio = HelperStdio::inherited(caller);
        if limit.is_none() && pty.is_none() {
            return Ok((None, stdio));
        }
        // Our own descriptors, duplicated first (so that a closed one is not
        // confused with a pipe made below): a File writes unbuffered.
        // Without one, what the run writes there is counted and dropped.
        let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().ok().map(File::from);
        let our_stdout = dup(io::stdout().as_fd());
        let our_stderr = dup(io::stderr().as_fd());
        let our_stdin = dup(io::stdin().as_fd());
        // A stdin the run could write to (a socket, as inetd and socat give
        // their children, or a file opened for both): what the run wrote
        // there went past the output limit, uncounted (a review of the
        // eleventh round). Under a limit the run reads it from a pipe.
        let input = match (limit, caller.stdin) {
            (Some(_), Std::Other) => dup(io::stdin().as_fd()).filter(writable),
            _ => None,
        };
        if let Some(from) = input {
            if access(&from).is_some_and(|mode| mode != OFlag::O_WRONLY) {
                let (rx, tx) = io::pipe()?;
                stdio.stdin = Stdio::from(rx);
                std::thread::Builder::new()
                    .name("input".into())
                    .spawn(move || pass_input(from, File::from(OwnedFd::from(tx))))?;
            } else {
                // Opened for writing only: nothing to read there, and a
                // thread would wait on it for ever (a review).
                stdio.stdin = Stdio::Null;
            }
        }

        let mut outputs = Vec::new();
        if let Some(pty) = pty {
            let slave = || pty.slave.try_clone().map(Stdio::from);
            if caller.keyboard.is_some() {
                stdio.stdin = slave()?;
            }
            if caller.stdout == Std::Terminal {
                stdio.stdout = slave()?;
            }
            if caller.stderr == Std::Terminal {
                stdio.stderr = slave()?;
            }
            // The run's terminal output (with the echo of raw keys) goes to
            // our terminal: stdout if it is one, else stderr, else stdin if
            // it was opened for writing too.
            let sink = if caller.stdout == Std::Terminal {
                our_stdout.as_ref().map(File::try_clone).transpose()?
            } else if caller.stderr == Std::Terminal {
                our_stderr.as_ref().map(File::try_clone).transpose()?
            } else {
                our_stdin.as_ref().filter(|f| writable(f)).map(File::try_clone).transpose()?
            };
            if let (Some(mode), Some(from)) = (caller.keyboard, our_stdin) {
                let (to, master) = (pty.master.try_clone()?, pty.master.try_clone()?);
                let on_keys = move |chunk: &[u8]| {
                    if mode == Keys::Raw {
                        if let Some(signal) = terminal::unheard_key_signal(&master, chunk) {
                            // To the whole process: the signal thread reads it.
                            let _ = kill(Pid::this(), signal);
                        }
                    }
                };
                std::thread::Builder::new()
                    .name("keys".into())
                    .spawn(move || pass_keys(from, to, mode, on_keys))?;
            }
            outputs.push(Output { from: Some(pty.master), to: sink });
        }
        if limit.is_some() {
            for (ours, to, theirs) in [
                (caller.stdout, our_stdout, &mut stdio.stdout),
                (caller.stderr, our_stderr, &mut stdio.stderr),
            ] {
                if ours != Std::Terminal {
                    let (rx, tx) = io::pipe()?;
                    *theirs = Stdio::from(tx);
                    outputs.push(Output { from: Some(File::from(OwnedFd::from(rx))), to });
                }
            }
        }
        let thread_helper = Arc::clone(&helper);
        let (over_rx, run_over) = io::pipe()?;
        let over = File::from(OwnedFd::from(over_rx));
        let thread = std::thread::Builder::new()
            .name("output relay".into())
            .spawn(move || pump(outputs, limit, || thread_helper.want_stop(), &over))?;
        Ok((Some(Relay { thread, helper, run_over: OwnedFd::from(run_over) }), stdio))
    }

    /// Call once the helper's reply was read (or could not be): from now on
    /// no signal goes to the helper, for it may be gone. Returns, once the
    /// run and the helper closed every pipe and the pty's slave, or else
    /// once what they left is drained (`pump`), the bytes of output counted.
    pub fn finish(self) -> u64 {
        self.helper.close();
        drop(self.run_over);
        // `pump` does not panic; should it, the bug shows here.
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// How a descriptor was opened: O_RDONLY, O_WRONLY or O_RDWR.
fn access(file: &File) -> Option<OFlag> {
    let flags = fcntl(file, FcntlArg::F_GETFL).ok()?;
    Some(OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE)
}

/// Whether a descriptor was opened for writing.
fn writable(file: &File) -> bool {
    access(file).is_some_and(|mode| mode != OFlag::O_RDONLY)
}

/// What may go to the helper, by signal: the one stop order of a run
/// (SIGUSR1, wanted once the output passed its limit) and the signals that
/// end safeexec while the caller's terminal is raw (`terminal::Signals`).
/// Both go only once the helper's pid is known, and never after
/// [`ToHelper::close`]: the lock makes "send" and "close" exclusive.
#[derive(Default)]
pub struct ToHelper(Mutex<OrderState>);

#[derive(Default)]
struct OrderState {
    pid: Option<Pid>,
    wanted: bool,
    sent: bool,
    closed: bool,
}

impl ToHelper {
    fn lock(&self) -> std::sync::MutexGuard<'_, OrderState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn want_stop(&self) {
        let mut s = self.lock();
        s.wanted = true;
        s.send_if_due();
    }

    /// The helper runs with this pid: a stop order may go to it (at once,
    /// if the limit was passed already).
    pub fn helper_started(&self, pid: u32) {
        if let Ok(pid) = i32::try_from(pid) {
            let mut s = self.lock();
            s.pid = Some(Pid::from_raw(pid));
            s.send_if_due();
        }
    }

    /// Passes `signal` on to the helper, if it may still get one.
    pub fn forward(&self, signal: Signal) {
        let s = self.lock();
        if let (Some(pid), false) = (s.pid, s.closed) {
            let _ = kill(pid, signal);
        }
    }

    fn close(&self) {
        self.lock().closed = true;
    }
}

impl OrderState {
    fn send_if_due(&mut self) {
        let Some(pid) = self.pid else { return };
        if self.wanted && !self.sent && !self.closed {
            self.sent = true;
            // The helper is not reaped before the order is closed (a zombie
            // at worst): this pid is still its. Failing means it is gone
            // already, and with it the run.
            let _ = kill(pid, Signal::SIGUSR1);
        }
    }
}

/// One of the run's output streams: a pipe or the pty's master, and where
/// it goes.
struct Output<W> {
    from: Option<File>,
    to: Option<W>,
}

/// How long the relay waits for more output once the run is over, when an
/// output is still open: a copy of its pipe's write end, or of the pty's
/// slave, outlived the run. The run can pass one out, in flight (SCM_RIGHTS)
/// on a socket the caller gave it as a standard descriptor: an independent
/// review held the frontend past the wall limit that way, for ever. What is
/// there is read to its end however long our writes of it take (a slow
/// terminal): no process of the run can add to it, and an idle while ends
/// the drain. (A bound on the whole drain cut off an honest program's last
/// output, held up by a slow terminal: a second review.)
const DRAIN_IDLE: Duration = Duration::from_millis(100);

/// Copies until every output reached its end, or, once `run_over` is
/// readable (its write end closed: `Relay::finish`), until what is left is
/// drained (nothing more for `DRAIN_IDLE`): at most
/// `limit` bytes written in all, everything counted; `passed` is called
/// once, when the count first passes the limit. A sink that fails (its
/// reader went away) is dropped; counting goes on. Returns the count.
fn pump<W: Write>(
    mut outputs: Vec<Output<W>>,
    limit: Option<u64>,
    passed: impl FnOnce(),
    run_over: &File,
) -> u64 {
    let mut passed = Some(passed);
    let mut counted = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut over = false;
    loop {
        let wait = match over {
            false => Wait::Until(run_over),
            true => Wait::Idle(DRAIN_IDLE),
        };
        let Some(ready) = wait_readable(&outputs, &wait) else { break };
        let ready = match ready {
            Ready::Outputs { ready, run_over } => {
                over |= run_over;
                ready
            }
            Ready::Idle => break,
        };
        for i in ready {
            let output = &mut outputs[i];
            let Some(n) = read_some(&mut output.from, &mut buf) else { continue };
            let allowed = match limit {
                Some(limit) => limit.saturating_sub(counted).min(n as u64) as usize,
                None => n,
            };
            counted = counted.saturating_add(n as u64);
            if let Some(sink) = output.to.as_mut() {
                if allowed > 0 && write_out(sink, &buf[..allowed]).is_err() {
                    output.to = None;
                }
            }
            if limit.is_some_and(|limit| counted > limit) {
                if let Some(passed) = passed.take() {
                    passed();
                }
            }
        }
    }
    counted
}

/// Reads what an output has: `None` when nothing was read, and the output
/// closed at its end: end of file (a pipe) or EIO (the pty's slave was
/// closed by every process that had it).
fn read_some(source: &mut Option<File>, buf: &mut [u8]) -> Option<usize> {
    match source.as_mut()?.read(buf) {
        Ok(0) => {
            *source = None;
            None
        }
        Ok(n) => Some(n),
        Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {
            None
        }
        Err(_) => {
            *source = None;
            None
        }
    }
}

/// Copies the caller's keys to the pty's master until the run is over (the
/// master refuses them) or the caller's terminal is gone. On a thread of
/// its own, never joined: its read may wait on the caller's terminal (in a
/// pipeline, another program may take the line it was told of) and its
/// write on the run (which may never read): neither must hold the output
/// up. `on_keys` sees every chunk first.
///
/// A read of nothing is, raw, no key at all (VMIN 0) and, cooked, an end
/// of file (^D), which goes on as the pty's own end-of-file key; so does a
/// cooked chunk that ^D cut short of the end of its line, so that the run
/// reads it at once, as it would have from the caller's terminal.
fn pass_keys(mut from: File, mut to: File, mode: Keys, mut on_keys: impl FnMut(&[u8])) {
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
        let hung_up = match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => fds[0].revents().is_some_and(|events| {
                events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            }),
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        let sent = match from.read(&mut buf) {
            Ok(0) if hung_up || !nix::unistd::isatty(&from).unwrap_or(false) => {
                if mode == Keys::Cooked {
                    let _ = send_end_of_file(&mut to);
                }
                return;
            }
            Ok(0) if mode == Keys::Cooked => send_end_of_file(&mut to),
            Ok(0) => Ok(()),
            Ok(n) => {
                on_keys(&buf[..n]);
                let flushed = mode == Keys::Cooked && !terminal::ends_a_line(&to, buf[n - 1]);
                to.write_all(&buf[..n]).and_then(|()| match flushed {
                    // ^D in the middle of a line: the run reads it as it is.
                    true => send_end_of_file(&mut to),
                    false => Ok(()),
                })
            }
            Err(e)
                if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) =>
            {
                Ok(())
            }
            Err(_) => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Copies the caller's stdin into the run's stdin pipe until either ends:
/// a pipe's worth read ahead at most (its writes wait for the run to
/// read). Detached: blocked on a stdin that never ends, it goes with us.
fn pass_input(mut from: File, mut to: File) {
    let mut buf = [0u8; 4096];
    loop {
        // A non-blocking stdin is waited for, not spun on.
        let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if write_out(&mut to, &buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
            Err(_) => return,
        }
    }
}

fn send_end_of_file(master: &mut File) -> io::Result<()> {
    match terminal::end_of_file_key(master) {
        Some(key) => master.write_all(&[key]),
        None => Ok(()),
    }
}

/// Writes all of `data` to a sink as it is: blocking if it blocks; if the
/// caller made it non-blocking, retried every few milliseconds (no CPU
/// spent) until its reader takes it.
pub fn write_out<W: Write + ?Sized>(sink: &mut W, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match sink.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How `wait_readable` waits: until an output is ready or the run is over
/// (the descriptor given becomes readable), or, after the run, at most a
/// while.
enum Wait<'a> {
    Until(&'a File),
    Idle(Duration),
}

/// What `wait_readable` found.
enum Ready {
    /// These outputs can be read (or are at their end); whether the run
    /// is over (`Wait::Until`).
    Outputs { ready: Vec<usize>, run_over: bool },
    /// Nothing came for the while given (`Wait::Idle`).
    Idle,
}

/// Waits until one of the open outputs can be read (or is at its end), as
/// `wait` says; `None` once none is open.
fn wait_readable<W>(outputs: &[Output<W>], wait: &Wait<'_>) -> Option<Ready> {
    let open: Vec<usize> = (0..outputs.len()).filter(|&i| outputs[i].from.is_some()).collect();
    if open.is_empty() {
        return None;
    }
    let mut fds: Vec<PollFd<'_>> = outputs
        .iter()
        .filter_map(|o| o.from.as_ref())
        .map(|from| PollFd::new(from.as_fd(), PollFlags::POLLIN))
        .collect();
    let timeout = match wait {
        Wait::Until(run_over) => {
            fds.push(PollFd::new(run_over.as_fd(), PollFlags::POLLIN));
            PollTimeout::NONE
        }
        Wait::Idle(idle) => PollTimeout::try_from(*idle).unwrap_or(PollTimeout::MAX),
    };
    let ready = match poll(&mut fds, timeout) {
        Ok(0) if matches!(wait, Wait::Idle(_)) => Ready::Idle,
        // POLLHUP or POLLERR make a read return at once too.
        Ok(_) => {
            let outputs: Vec<usize> = fds
                .iter()
                .zip(&open)
                .filter(|(fd, _)| fd.any().unwrap_or(true))
                .map(|(_, &i)| i)
                .collect();
            let run_over = matches!(wait, Wait::Until(_))
                && fds.last().is_some_and(|fd| fd.any().unwrap_or(true));
            Ready::Outputs { ready: outputs, run_over }
        }
        Err(Errno::EINTR) => Ready::Outputs { ready: Vec::new(), run_over: false },
        // Not with open descriptors; should it happen, every one is tried
        // after a pause (a read that finds nothing returns at once, EAGAIN,
        // or blocks until the run writes or ends).
        Err(_) => {
            std::thread::sleep(Duration::from_millis(5));
            Ready::Outputs { ready: open, run_over: false }
        }
    };
    Some(ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// `pump`'s word that the run is over, never given while the writer
    /// lives.
    fn run_not_over() -> (File, io::PipeWriter) {
        let (rx, tx) = io::pipe().expect("pipe");
        (File::from(OwnedFd::from(rx)), tx)
    }

    /// Once the run is over, an output whose writer outlived it (a copy of
    /// its pipe sent away by the run) is drained, not waited on: what was
    /// written comes through, and the pump ends within `DRAIN_IDLE` or so.
    #[test]
    fn after_the_run_an_output_still_open_is_drained_not_waited_for() {
        let (rx, mut held) = io::pipe().expect("pipe");
        held.write_all(b"left in the pipe").expect("write");
        let outputs =
            vec![Output { from: Some(File::from(OwnedFd::from(rx))), to: Some(Vec::new()) }];
        let (over, over_tx) = run_not_over();
        drop(over_tx);
        let started = std::time::Instant::now();
        let counted = pump(outputs, None, || {}, &over);
        assert_eq!(counted, 16);
        assert!(started.elapsed() < 10 * DRAIN_IDLE, "waited {:?}", started.elapsed());
        drop(held);
    }

    /// A sink whose reader went away.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn file(fd: impl Into<OwnedFd>) -> File {
        File::from(fd.into())
    }

    /// Runs `pump` on two pipes, each fed by a thread of its own; returns
    /// the count and how many times the limit was reported passed.
    fn relay<W: Write>(
        out: Vec<Vec<u8>>,
        err: Vec<Vec<u8>>,
        sinks: [Option<W>; 2],
        limit: u64,
    ) -> (u64, u32) {
        let (out_rx, mut out_tx) = io::pipe().unwrap();
        let (err_rx, mut err_tx) = io::pipe().unwrap();
        let writers = [
            thread::spawn(move || out.iter().for_each(|c| out_tx.write_all(c).unwrap())),
            thread::spawn(move || err.iter().for_each(|c| err_tx.write_all(c).unwrap())),
        ];
        let [out_sink, err_sink] = sinks;
        let outputs = vec![
            Output { from: Some(file(out_rx)), to: out_sink },
            Output { from: Some(file(err_rx)), to: err_sink },
        ];
        let mut passed = 0;
        let (not_over, _writer) = run_not_over();
        let counted = pump(outputs, Some(limit), || passed += 1, &not_over);
        for w in writers {
            w.join().unwrap();
        }
        (counted, passed)
    }

    #[test]
    fn under_the_limit_everything_is_copied_to_its_own_stream() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (counted, passed) = relay(
            vec![b"hello ".to_vec(), b"world\n".to_vec()],
            vec![b"oops\n".to_vec()],
            [Some(&mut out), Some(&mut err)],
            100,
        );
        assert_eq!((counted, passed), (17, 0));
        assert_eq!(out, b"hello world\n");
        assert_eq!(err, b"oops\n");
    }

    #[test]
    fn exactly_the_limit_is_not_past_it() {
        let mut out = Vec::new();
        let (counted, passed) = relay(vec![b"12345".to_vec()], vec![], [Some(&mut out), None], 5);
        assert_eq!((counted, passed), (5, 0));
        assert_eq!(out, b"12345");
    }

    #[test]
    fn past_the_limit_bytes_are_counted_not_written_and_passing_is_reported_once() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let big = vec![b'x'; 300 * 1024];
        let (counted, passed) = relay(
            vec![big.clone(), big],
            vec![vec![b'e'; 1000], vec![b'e'; 1000]],
            [Some(&mut out), Some(&mut err)],
            1000,
        );
        assert_eq!(counted, 2 * 300 * 1024 + 2000);
        assert_eq!(passed, 1);
        // At most the limit in all, whichever stream it came on.
        assert_eq!(out.len() + err.len(), 1000);
        assert!(out.iter().all(|&b| b == b'x') && err.iter().all(|&b| b == b'e'));
    }

    #[test]
    fn a_limit_of_zero_writes_nothing() {
        let mut out = Vec::new();
        let (counted, passed) = relay(vec![b"a".to_vec()], vec![], [Some(&mut out), None], 0);
        assert_eq!((counted, passed), (1, 1));
        assert!(out.is_empty());
    }

    #[test]
    fn a_reader_gone_only_stops_the_copy_and_counting_goes_on() {
        let mut err = Vec::new();
        let mut gone = Gone;
        let sinks: [Option<&mut dyn Write>; 2] = [Some(&mut gone), Some(&mut err)];
        let (counted, passed) = relay(
            vec![vec![b'o'; 70_000], vec![b'o'; 70_000]],
            vec![b"still here\n".to_vec()],
            sinks,
            1 << 20,
        );
        assert_eq!((counted, passed), (140_011, 0));
        assert_eq!(err, b"still here\n");
    }

    /// A pty as the run has it: its settings made plain (no echo, no \r
    /// added) where a test needs exact bytes.
    fn run_pty(plain: bool) -> Pty {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, OutputFlags, SetArg};
        let pty = Pty::open(None).unwrap();
        if plain {
            let mut settings = tcgetattr(&pty.slave).unwrap();
            settings.local_flags.remove(LocalFlags::ECHO);
            settings.output_flags.remove(OutputFlags::OPOST);
            tcsetattr(&pty.slave, SetArg::TCSANOW, &settings).unwrap();
        }
        pty
    }

    #[test]
    fn pty_output_and_a_pipe_are_counted_together_against_one_limit() {
        let pty = run_pty(true);
        let (err_rx, mut err_tx) = io::pipe().unwrap();
        let mut slave = file(pty.slave);
        let run = thread::spawn(move || {
            slave.write_all(&[b't'; 3000]).unwrap();
            err_tx.write_all(&[b'e'; 3000]).unwrap();
        });
        let (mut tty, mut err) = (Vec::new(), Vec::new());
        let outputs: Vec<Output<&mut Vec<u8>>> = vec![
            Output { from: Some(pty.master), to: Some(&mut tty) },
            Output { from: Some(file(err_rx)), to: Some(&mut err) },
        ];
        let mut passed = 0;
        // Ends once the slave and the pipe are closed (the run is gone).
        let (not_over, _writer) = run_not_over();
        let counted = pump(outputs, Some(4000), || passed += 1, &not_over);
        run.join().unwrap();
        assert_eq!((counted, passed), (6000, 1));
        assert_eq!(tty.len() + err.len(), 4000);
    }

    #[test]
    fn without_a_limit_the_pty_output_is_all_copied_and_nothing_is_reported() {
        let pty = run_pty(false);
        let mut slave = file(pty.slave);
        let run = thread::spawn(move || slave.write_all(b"line\n").unwrap());
        let mut tty = Vec::new();
        let outputs = vec![Output { from: Some(pty.master), to: Some(&mut tty) }];
        let (not_over, _writer) = run_not_over();
        let counted = pump(outputs, None, || panic!("no limit to pass"), &not_over);
        run.join().unwrap();
        assert_eq!(counted, 6);
        assert_eq!(tty, b"line\r\n");
    }

    #[test]
    fn keys_reach_the_run_through_its_pty_and_are_seen_on_the_way() {
        let pty = run_pty(true);
        let (keys_rx, mut keys_tx) = io::pipe().unwrap();
        let to = pty.master.try_clone().unwrap();
        let mut slave = file(pty.slave);
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let keys = thread::spawn(move || {
            pass_keys(file(keys_rx), to, Keys::Raw, |chunk| seen_tx.send(chunk.to_vec()).unwrap())
        });
        keys_tx.write_all(b"typed\n").unwrap();
        // Canonical mode: one line at a time.
        let mut line = [0u8; 64];
        let n = slave.read(&mut line).unwrap();
        assert_eq!(&line[..n], b"typed\n");
        assert_eq!(seen_rx.recv().unwrap(), b"typed\n");
        drop(keys_tx);
        keys.join().unwrap();
    }

    #[test]
    fn a_cooked_end_of_file_reaches_the_run_as_its_own() {
        let pty = run_pty(true);
        let (keys_rx, mut keys_tx) = io::pipe().unwrap();
        let to = pty.master.try_clone().unwrap();
        let mut slave = file(pty.slave);
        let keys = thread::spawn(move || pass_keys(file(keys_rx), to, Keys::Cooked, |_| {}));
        keys_tx.write_all(b"a line\n").unwrap();
        let mut line = [0u8; 64];
        let n = slave.read(&mut line).unwrap();
        assert_eq!(&line[..n], b"a line\n");
        // What a cooked terminal gives for "cut" and ^D: the run reads it
        // without waiting for the end of the line.
        keys_tx.write_all(b"cut").unwrap();
        let n = slave.read(&mut line).unwrap();
        assert_eq!(&line[..n], b"cut");
        drop(keys_tx);
        keys.join().unwrap();
        assert_eq!(slave.read(&mut line).unwrap(), 0, "no end of file");
    }

    #[test]
    fn a_run_that_never_reads_its_keys_does_not_stall_its_output() {
        let pty = run_pty(true);
        let (keys_rx, mut keys_tx) = io::pipe().unwrap();
        let to = pty.master.try_clone().unwrap();
        // Far more keys than the pty holds, and no newline.
        let typist = thread::spawn(move || {
            let _ = keys_tx.write_all(&vec![b'k'; 1 << 20]);
        });
        let keys = thread::spawn(move || pass_keys(file(keys_rx), to, Keys::Raw, |_| {}));
        let mut slave = file(pty.slave);
        let run = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            slave.write_all(&[b'o'; 100_000]).unwrap();
        });
        let mut tty = Vec::new();
        let outputs = vec![Output { from: Some(pty.master), to: Some(&mut tty) }];
        let (not_over, _writer) = run_not_over();
        let counted = pump(outputs, None, || {}, &not_over);
        run.join().unwrap();
        assert_eq!(counted, 100_000);
        // The run is over: the master refuses the keys, their thread ends.
        keys.join().unwrap();
        drop(typist);
    }

    #[test]
    fn a_sink_made_non_blocking_by_the_caller_still_gets_everything() {
        let (mut sink_rx, sink_tx) = io::pipe().unwrap();
        let sink = file(sink_tx);
        fcntl(&sink, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        let reader = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            let mut all = Vec::new();
            sink_rx.read_to_end(&mut all).unwrap();
            all.len()
        });
        let (out_rx, mut out_tx) = io::pipe().unwrap();
        let run = thread::spawn(move || out_tx.write_all(&vec![b'x'; 500_000]).unwrap());
        let outputs = vec![Output { from: Some(file(out_rx)), to: Some(sink) }];
        let (not_over, _writer) = run_not_over();
        assert_eq!(pump(outputs, None, || {}, &not_over), 500_000);
        run.join().unwrap();
        assert_eq!(reader.join().unwrap(), 500_000);
    }

    #[test]
    fn no_signal_goes_before_the_pid_is_known_nor_after_the_close() {
        let helper = ToHelper::default();
        helper.want_stop();
        assert!(!helper.lock().sent, "sent without a pid");
        helper.close();
        // Our own pid: a SIGUSR1 sent here would end the test process.
        helper.helper_started(std::process::id());
        assert!(!helper.lock().sent, "sent after the close");
        helper.forward(Signal::SIGUSR1);
    }

    /// The relay's pipe, for a child of std's.
    fn ours(stdio: Stdio) -> std::process::Stdio {
        match stdio {
            Stdio::Fd(fd) => fd.into(),
            _ => panic!("not a pipe of the relay"),
        }
    }

    #[test]
    fn passing_the_limit_sends_the_helper_sigusr1() {
        use std::process::Command;
        // Limit 0: nothing reaches our stdout, the first byte passes it.
        let caller =
            Caller { stdin: Std::Other, stdout: Std::Other, stderr: Std::Other, keyboard: None };
        let helper = Arc::new(ToHelper::default());
        let (relay, stdio) = Relay::start(&caller, Some(0), None, Arc::clone(&helper)).unwrap();
        let relay = relay.unwrap();
        let mut child = Command::new("/bin/sh")
            .args([
                "-c",
                "trap 'exit 7' USR1; printf x; sleep 10 >/dev/null 2>&1 & wait $!; exit 1",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(ours(stdio.stdout))
            .stderr(ours(stdio.stderr))
            .spawn()
            .unwrap();
        helper.helper_started(child.id());
        // Only here: the order went out before the wait could reap.
        let status = child.wait().unwrap();
        assert_eq!(relay.finish(), 1);
        assert_eq!(status.code(), Some(7), "no SIGUSR1: {status}");
    }

    #[test]
    fn relay_ends_when_every_pipe_closes_and_counts_nothing_unwritten() {
        let caller =
            Caller { stdin: Std::Other, stdout: Std::Other, stderr: Std::Other, keyboard: None };
        let (relay, stdio) =
            Relay::start(&caller, Some(10), None, Arc::new(ToHelper::default())).unwrap();
        drop(stdio);
        assert_eq!(relay.unwrap().finish(), 0);
    }

    #[test]
    fn nothing_to_relay_without_a_limit_or_a_terminal() {
        let caller =
            Caller { stdin: Std::Other, stdout: Std::Closed, stderr: Std::Other, keyboard: None };
        let (relay, _) = Relay::start(&caller, None, None, Arc::new(ToHelper::default())).unwrap();
        assert!(relay.is_none());
    }
}
