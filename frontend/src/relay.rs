//! The output relay, used only with an output limit (`--output`). The
//! helper gets the write ends of two pipes as its stdout and stderr (the
//! target inherits them); a thread of the frontend copies what arrives to
//! the frontend's own stdout and stderr, unbuffered, and counts the bytes of
//! both together:
//!
//! ```text
//!   target ──stdout pipe──┐
//!                         ├─▶ relay thread ──▶ our stdout / stderr
//!   target ──stderr pipe──┘        │            (at most the limit in all)
//!                                  └─ count > limit: SIGUSR1 to the helper,
//!                                     once ("stop the run", Stop::ByCaller)
//! ```
//!
//! Bytes past the limit are read and counted, never written. The order at
//! the end (`run::run`): read the helper's reply, then [`Relay::finish`]
//! (no stop order goes out after it is called; it returns once both pipes
//! reached end of file, i.e. once the helper and every process of the run
//! are gone), and only then wait for the helper: a stop order never names a
//! pid that may have been reaped. (A caller that ignores SIGCHLD has the
//! kernel reap the helper as it exits; closing the order as soon as the
//! reply pipe is done leaves only the moment between the helper's exit and
//! our read of its end of file.)

use std::fs::File;
use std::io::{self, PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A running relay.
pub struct Relay {
    thread: JoinHandle<u64>,
    order: Arc<StopOrder>,
}

/// The write ends the helper gets as its stdout and stderr.
pub struct HelperEnds {
    pub stdout: PipeWriter,
    pub stderr: PipeWriter,
}

impl Relay {
    /// Creates the two pipes and starts copying from them, allowing `limit`
    /// bytes in all. The caller hands the returned write ends to the helper
    /// and must drop every copy of them of its own right after spawning it,
    /// or the relay never sees end of file.
    pub fn start(limit: u64) -> io::Result<(Relay, HelperEnds)> {
        // Our own stdout and stderr, duplicated first (so that a closed
        // descriptor 1 or 2 is not confused with a pipe made below): a File
        // writes unbuffered. Without one, what the target writes there is
        // counted and dropped, as the helper's inherited stdio would.
        let sinks = [
            io::stdout().as_fd().try_clone_to_owned().ok().map(File::from),
            io::stderr().as_fd().try_clone_to_owned().ok().map(File::from),
        ];
        let (out_rx, out_tx) = io::pipe()?;
        let (err_rx, err_tx) = io::pipe()?;
        let order = Arc::new(StopOrder::default());
        let thread_order = Arc::clone(&order);
        let thread = std::thread::Builder::new()
            .name("output relay".into())
            .spawn(move || copy([out_rx, err_rx], sinks, limit, || thread_order.want()))?;
        let ends = HelperEnds { stdout: out_tx, stderr: err_tx };
        Ok((Relay { thread, order }, ends))
    }

    /// The helper runs with this pid: a stop order may go to it (at once,
    /// if the limit was passed already).
    pub fn helper_started(&self, pid: u32) {
        if let Ok(pid) = i32::try_from(pid) {
            self.order.set_pid(Pid::from_raw(pid));
        }
    }

    /// Call once the helper's reply was read (or could not be): from now on
    /// no stop order goes out, for the helper may be gone. Returns, once the
    /// run and the helper closed both pipes, the bytes counted on them.
    pub fn finish(self) -> u64 {
        self.order.close();
        // `copy` does not panic; should it, the bug shows here.
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// The one stop order of a run: wanted once the output passed its limit,
/// sent once the helper's pid is known, never after [`StopOrder::close`].
/// The lock makes "send" and "close" exclusive.
#[derive(Default)]
struct StopOrder(Mutex<OrderState>);

#[derive(Default)]
struct OrderState {
    pid: Option<Pid>,
    wanted: bool,
    sent: bool,
    closed: bool,
}

impl StopOrder {
    fn want(&self) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.wanted = true;
        s.send_if_due();
    }

    fn set_pid(&self, pid: Pid) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.pid = Some(pid);
        s.send_if_due();
    }

    fn close(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
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

/// Copies from both sources to their sinks until both reach end of file:
/// at most `limit` bytes written in all, everything counted; `passed` is
/// called once, when the count first passes the limit. A sink that fails
/// (its reader went away) is dropped; counting goes on. Returns the count.
fn copy<R: Read + AsFd, W: Write>(
    sources: [R; 2],
    mut sinks: [Option<W>; 2],
    limit: u64,
    passed: impl FnOnce(),
) -> u64 {
    let mut sources = sources.map(Some);
    let mut passed = Some(passed);
    let mut counted = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let ready = match wait_readable(&sources) {
            Some(ready) => ready,
            None => return counted,
        };
        for (i, ready) in ready.into_iter().enumerate() {
            let Some(source) = sources[i].as_mut().filter(|_| ready) else {
                continue;
            };
            let n = match source.read(&mut buf) {
                Ok(0) => {
                    sources[i] = None;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    sources[i] = None;
                    continue;
                }
            };
            let allowed = limit.saturating_sub(counted).min(n as u64) as usize;
            counted = counted.saturating_add(n as u64);
            if let Some(sink) = sinks[i].as_mut() {
                if allowed > 0 && sink.write_all(&buf[..allowed]).is_err() {
                    sinks[i] = None;
                }
            }
            if counted > limit {
                if let Some(passed) = passed.take() {
                    passed();
                }
            }
        }
    }
}

/// Waits until one of the open sources can be read (or is at end of
/// file); `None` once none is open.
fn wait_readable<R: AsFd>(sources: &[Option<R>; 2]) -> Option<[bool; 2]> {
    let open: Vec<usize> = (0..2).filter(|&i| sources[i].is_some()).collect();
    if open.is_empty() {
        return None;
    }
    let mut fds: Vec<PollFd<'_>> =
        sources.iter().flatten().map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN)).collect();
    let mut ready = [false; 2];
    match poll(&mut fds, PollTimeout::NONE) {
        // POLLHUP or POLLERR make a read return at once too.
        Ok(_) => {
            for (fd, &i) in fds.iter().zip(&open) {
                ready[i] = fd.any().unwrap_or(true);
            }
        }
        Err(Errno::EINTR) => {}
        // Not with two open descriptors; should it happen, blocking reads
        // still end, at the latest with the run.
        Err(_) => {
            for &i in &open {
                ready[i] = true;
            }
        }
    }
    Some(ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

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

    /// Runs `copy` on two pipes, each fed by a thread of its own; returns
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
        let mut passed = 0;
        let counted = copy([out_rx, err_rx], sinks, limit, || passed += 1);
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

    #[test]
    fn no_stop_order_before_the_pid_is_known_nor_after_the_close() {
        let order = StopOrder::default();
        order.want();
        assert!(!order.0.lock().unwrap().sent, "sent without a pid");
        order.close();
        // Our own pid: a SIGUSR1 sent here would end the test process.
        order.set_pid(Pid::this());
        assert!(!order.0.lock().unwrap().sent, "sent after the close");
    }

    #[test]
    fn passing_the_limit_sends_the_helper_sigusr1() {
        use std::process::{Command, Stdio};
        // Limit 0: nothing reaches our stdout, the first byte passes it.
        let (relay, ends) = Relay::start(0).unwrap();
        let mut helper = Command::new("/bin/sh")
            .args([
                "-c",
                "trap 'exit 7' USR1; printf x; sleep 10 >/dev/null 2>&1 & wait $!; exit 1",
            ])
            .stdin(Stdio::null())
            .stdout(ends.stdout)
            .stderr(ends.stderr)
            .spawn()
            .unwrap();
        relay.helper_started(helper.id());
        // Only here: the order went out before the wait could reap.
        let status = helper.wait().unwrap();
        assert_eq!(relay.finish(), 1);
        assert_eq!(status.code(), Some(7), "no SIGUSR1: {status}");
    }

    #[test]
    fn relay_ends_when_both_pipes_close_and_counts_nothing_unwritten() {
        let (relay, ends) = Relay::start(10).unwrap();
        drop(ends);
        assert_eq!(relay.finish(), 0);
    }
}
