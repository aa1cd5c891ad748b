//! The caller's terminal is never the run's. When any of our descriptors 0,
//! 1 and 2 is a terminal, the run gets a new pty of its own in its place
//! (as sudo's `use_pty` does), and the relay (`relay`) copies between the
//! two; the run can then type into, stop, lock or reconfigure only its own
//! pty, which is gone with it. What it prints is relayed as it is, escape
//! sequences included, as `cat` would: they act on the caller's terminal
//! emulator (its title, modes such as mouse reporting, and answers the
//! emulator types back, which reach the caller's shell once the run is
//! over; threat-model.md, "Known gaps"). The relay:
//!
//! ```text
//!   caller's terminal                frontend                       the run
//!   fd 0 (raw) ─── keys ──▶ keys thread ───▶ pty master ═ slave ──▶ fd 0
//!   fd 1 (or 2) ◀──────── relay thread ◀── pty master ═ slave ◀── fd 1, 2
//!                          (counted, with --output)
//!   signal thread: SIGWINCH: the window size to the pty; SIGINT, SIGTERM,
//!   SIGHUP, SIGQUIT: the caller's settings back, the signal passed to the
//!   helper, then safeexec dies of it; SIGTSTP: settings back, stopped,
//!   raw again once continued.
//! ```
//!
//! The keys of the caller's terminal (our stdin) are relayed only when we
//! are in its foreground; a run started in the background gets /dev/null
//! as its stdin instead (the keyboard is not its to read). They are
//! relayed in one of two ways ([`Keys`]):
//!
//! - raw, when our stdout is a terminal too: the caller's terminal is put
//!   in raw mode for the run, and every key reaches the pty's own line
//!   discipline, which handles echo, editing, ^D and the rest for the run;
//! - cooked, when our stdout is not a terminal (a pipe, as in
//!   `safeexec ... | less`, or a file): the caller's terminal is left as it
//!   is, since another program of a pipeline may be setting it too, and two
//!   programs restoring it after each other could leave it raw. Its own
//!   line discipline then edits and echoes the lines (the pty does not echo
//!   them again) and sends ^C to safeexec as before (the helper, in a
//!   session of its own, ends with it through its parent-death signal); an end
//!   of file (^D) is passed on as the pty's. Such a program (less) and
//!   safeexec then both read the keys while the run lasts, as the program
//!   and the run did before when the run read its stdin: a run that needs
//!   no keys is best given `</dev/null`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{pthread_sigmask, raise, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{
    cfmakeraw, tcgetattr, tcsetattr, LocalFlags, SetArg, SpecialCharacterIndices as Cc, Termios,
};
use nix::unistd::{getpgrp, isatty, tcgetpgrp};

use crate::relay::ToHelper;

/// What each of the caller's descriptors 0, 1 and 2 is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Std {
    Closed,
    Terminal,
    /// A file, a pipe, a socket: passed to the helper as it is.
    Other,
}

/// The caller's descriptors 0, 1 and 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub stdin: Std,
    pub stdout: Std,
    pub stderr: Std,
    /// How the keys of our stdin reach the run, if they do: only when our
    /// stdin is a terminal whose foreground we are.
    pub keyboard: Option<Keys>,
}

/// How the caller's keys reach the run (see the module's comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// The caller's terminal raw; the pty's line discipline does the rest.
    Raw,
    /// The caller's terminal left as it is; its lines are passed on.
    Cooked,
}

impl Caller {
    pub fn now() -> Caller {
        let (stdin, stdout) = (kind(io::stdin().as_fd()), kind(io::stdout().as_fd()));
        let ours =
            stdin == Std::Terminal && tcgetpgrp(io::stdin()).is_ok_and(|group| group == getpgrp());
        let keyboard = match (ours, stdout) {
            (false, _) => None,
            (true, Std::Terminal) => Some(Keys::Raw),
            (true, _) => Some(Keys::Cooked),
        };
        Caller { stdin, stdout, stderr: kind(io::stderr().as_fd()), keyboard }
    }

    /// The run needs a pty of its own.
    pub fn needs_pty(&self) -> bool {
        self.keyboard.is_some() || self.stdout == Std::Terminal || self.stderr == Std::Terminal
    }

    /// The terminal whose settings and window size the pty copies (our
    /// stdin's, else our stdout's, else our stderr's), as a descriptor of
    /// its own.
    pub fn model(&self) -> io::Result<Option<File>> {
        let fd = if self.stdin == Std::Terminal {
            io::stdin().as_fd().try_clone_to_owned()?
        } else if self.stdout == Std::Terminal {
            io::stdout().as_fd().try_clone_to_owned()?
        } else if self.stderr == Std::Terminal {
            io::stderr().as_fd().try_clone_to_owned()?
        } else {
            return Ok(None);
        };
        Ok(Some(File::from(fd)))
    }
}

fn kind(fd: BorrowedFd<'_>) -> Std {
    if fcntl(fd, FcntlArg::F_GETFD).is_err() {
        Std::Closed
    } else if isatty(fd).unwrap_or(false) {
        Std::Terminal
    } else {
        Std::Other
    }
}

/// A new pty: the master stays with us, the slave goes to the helper.
pub struct Pty {
    pub master: File,
    pub slave: OwnedFd,
}

impl Pty {
    /// Opens a pty whose slave has the settings and the window size of
    /// `like` (the caller's terminal), so that the run sees the terminal
    /// the caller has. Neither end becomes our controlling terminal, and
    /// neither is inherited by anything we start.
    pub fn open(like: Option<BorrowedFd<'_>>) -> io::Result<Pty> {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname_r(&master)?;
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(name)?;
        let master = File::from(OwnedFd::from(master));
        if let Some(like) = like {
            if let Ok(settings) = tcgetattr(like) {
                tcsetattr(&slave, SetArg::TCSANOW, &settings)?;
            }
            copy_window_size(like, &master);
        }
        Ok(Pty { master, slave: slave.into() })
    }
}

impl Pty {
    /// No echo of what is typed: the caller's terminal echoes it already
    /// ([`Keys::Cooked`]). The run may turn it on again, on its own pty.
    pub fn echo_off(&self) -> io::Result<()> {
        let mut settings = tcgetattr(&self.slave)?;
        settings.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&self.slave, SetArg::TCSANOW, &settings)?;
        Ok(())
    }
}

/// The end-of-file key of a pty, to pass an end of file on: its VEOF, if
/// the pty reads lines (ICANON); else there is no such thing.
pub fn end_of_file_key(master: &File) -> Option<u8> {
    let settings = tcgetattr(master).ok()?;
    let key = settings.control_chars[Cc::VEOF as usize];
    (settings.local_flags.contains(LocalFlags::ICANON) && key != 0).then_some(key)
}

/// Whether `key` ends a line on a pty: a newline, or its VEOL or VEOL2.
/// A chunk of a cooked terminal that does not end so was flushed by ^D.
pub fn ends_a_line(master: &File, key: u8) -> bool {
    key == b'\n'
        || tcgetattr(master).is_ok_and(|settings| {
            key != 0
                && [Cc::VEOL, Cc::VEOL2]
                    .iter()
                    .any(|&cc| settings.control_chars[cc as usize] == key)
        })
}

/// Gives `to` (a pty's master) the window size of `from`, if it has one.
pub fn copy_window_size(from: impl AsFd, to: impl AsFd) {
    if let Ok(size) = rustix::termios::tcgetwinsize(from) {
        let _ = rustix::termios::tcsetwinsize(to, size);
    }
}

/// The caller's terminal in raw mode for the run, and its settings as they
/// were. Every way out puts them back: the end of the run (`restore`, also
/// on drop of [`Cooked`]), a caught signal, a stop.
pub struct RawMode {
    tty: File,
    state: Mutex<Mode>,
}

enum Mode {
    Raw {
        saved: Termios,
    },
    /// Stopped (SIGTSTP): the saved settings are in force.
    Suspended,
    Restored,
}

impl RawMode {
    /// Saves the settings of `tty` and makes it raw.
    pub fn enter(tty: File) -> io::Result<Arc<RawMode>> {
        let saved = tcgetattr(&tty)?;
        tcsetattr(&tty, SetArg::TCSANOW, &raw_of(&saved))?;
        Ok(Arc::new(RawMode { tty, state: Mutex::new(Mode::Raw { saved }) }))
    }

    fn lock(&self) -> MutexGuard<'_, Mode> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the saved settings back, once; raw mode never returns after.
    /// TCSANOW: never waits on the caller's terminal to drain.
    pub fn restore(&self) {
        let mut mode = self.lock();
        if let Mode::Raw { saved } = std::mem::replace(&mut *mode, Mode::Restored) {
            let _ = tcsetattr(&self.tty, SetArg::TCSANOW, &saved);
        }
    }

    /// Before a stop: the saved settings back, for the shell.
    fn suspend(&self) {
        let mut mode = self.lock();
        if let Mode::Raw { saved } = &*mode {
            let _ = tcsetattr(&self.tty, SetArg::TCSANOW, saved);
            *mode = Mode::Suspended;
        }
    }

    /// Once continued: the settings the shell left are the ones to restore
    /// at the end; raw again. In the background, setting them stops us
    /// (SIGTTOU) until we are in the foreground again.
    fn resume(&self) {
        let mut mode = self.lock();
        if let Mode::Suspended = &*mode {
            if let Ok(saved) = tcgetattr(&self.tty) {
                if tcsetattr(&self.tty, SetArg::TCSANOW, &raw_of(&saved)).is_ok() {
                    *mode = Mode::Raw { saved };
                }
            }
        }
    }
}

/// Raw, and reads that never wait (VMIN 0, VTIME 0): the relay polls
/// before it reads, and a key another process took meanwhile must not
/// leave it blocked.
fn raw_of(saved: &Termios) -> Termios {
    let mut raw = saved.clone();
    cfmakeraw(&mut raw);
    raw.control_chars[Cc::VMIN as usize] = 0;
    raw.control_chars[Cc::VTIME as usize] = 0;
    raw
}

/// Restores the caller's settings when dropped: every return of `run::run`
/// after raw mode was entered.
pub struct Cooked(pub Option<Arc<RawMode>>);

impl Drop for Cooked {
    fn drop(&mut self) {
        if let Some(raw) = &self.0 {
            raw.restore();
        }
    }
}

/// The signal the pty's line discipline would send for these keys when
/// no process group would get it: the helper does not make the pty the
/// run's controlling terminal, so ^C, ^\ and ^Z would be lost; they act on
/// safeexec instead, as they did when the run had the caller's terminal.
/// Once a process group holds the pty, the line discipline does it all.
pub fn unheard_key_signal(master: &File, keys: &[u8]) -> Option<Signal> {
    let settings = tcgetattr(master).ok()?;
    let held = tcgetpgrp(master).is_ok_and(|group| group.as_raw() > 0);
    key_signal(&settings, held, keys)
}

fn key_signal(settings: &Termios, held: bool, keys: &[u8]) -> Option<Signal> {
    if held || !settings.local_flags.contains(LocalFlags::ISIG) {
        return None;
    }
    const KEYS: [(Cc, Signal); 3] =
        [(Cc::VINTR, Signal::SIGINT), (Cc::VQUIT, Signal::SIGQUIT), (Cc::VSUSP, Signal::SIGTSTP)];
    keys.iter().find_map(|&key| {
        KEYS.iter()
            // 0 is _POSIX_VDISABLE: no key for it.
            .find(|(cc, _)| key != 0 && settings.control_chars[*cc as usize] == key)
            .map(|&(_, signal)| signal)
    })
}

/// The signals the frontend catches while a pty relays, read from a
/// signalfd by a thread of their own ([`Signals::watch`]).
pub struct Signals {
    fd: SignalFd,
}

/// Caught only while the caller's terminal is raw, and only those the
/// caller does not ignore (`nohup`, a shell's background job).
const ENDING: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

impl Signals {
    /// Blocks SIGWINCH and, with `raw`, the ending signals and SIGTSTP, in
    /// this thread: call it before any thread is started, so that all of
    /// them inherit the mask and every such signal reaches the signalfd.
    /// (The helper does not inherit it: std clears the mask in the child,
    /// and the helper resets it.)
    pub fn block(raw: bool) -> io::Result<Signals> {
        let ignored = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| ignored_mask(&status))
            .unwrap_or(0);
        let mut set = SigSet::empty();
        set.add(Signal::SIGWINCH);
        if raw {
            for signal in ENDING.into_iter().chain([Signal::SIGTSTP]) {
                if !is_in(ignored, signal) {
                    set.add(signal);
                }
            }
        }
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    /// Handles the signals on a thread of its own, until the process ends.
    /// `window`: the caller's terminal and the pty's master, for SIGWINCH.
    pub fn watch(
        self,
        raw: Option<Arc<RawMode>>,
        window: Option<(File, File)>,
        helper: Arc<ToHelper>,
    ) -> io::Result<()> {
        std::thread::Builder::new().name("signals".into()).spawn(move || loop {
            let signo = match self.fd.read_signal() {
                Ok(Some(info)) => info.ssi_signo,
                Ok(None) | Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            let Ok(signal) = Signal::try_from(signo as i32) else { continue };
            match signal {
                Signal::SIGWINCH => {
                    if let Some((tty, master)) = &window {
                        copy_window_size(tty, master);
                    }
                }
                Signal::SIGTSTP => {
                    if let Some(raw) = &raw {
                        raw.suspend();
                    }
                    stop_as_the_terminal_would();
                    if let Some(raw) = &raw {
                        raw.resume();
                    }
                }
                _ => {
                    if let Some(raw) = &raw {
                        raw.restore();
                    }
                    // As the caller's terminal did to the helper when the
                    // run had it: the run ends with safeexec.
                    helper.forward(signal);
                    die_of(signal);
                }
            }
        })?;
        Ok(())
    }
}

/// Stops the whole process as SIGTSTP from the terminal does, and returns
/// once it is continued. The signal goes to this thread, unblocked here
/// alone, with its default action: the kernel stops us before the call
/// returns. Sent to the process, the stop was taken by another thread
/// later, and this one went on to make the caller's terminal raw again
/// before it: a stopped safeexec left the caller's shell a raw terminal (a
/// review of the fourteenth round). And in an orphaned process group (a
/// terminal whose shell has gone, `script`), the kernel ignores SIGTSTP,
/// as it does for every program, where a SIGSTOP stopped us for good.
fn stop_as_the_terminal_would() {
    let mut tstp = SigSet::empty();
    tstp.add(Signal::SIGTSTP);
    let _ = tstp.thread_unblock();
    let _ = raise(Signal::SIGTSTP);
    let _ = tstp.thread_block();
}

/// Ends the process as `signal` does (it is not ignored: see `ENDING`).
fn die_of(signal: Signal) -> ! {
    let _ = raise(signal);
    let mut only = SigSet::empty();
    only.add(signal);
    // Pending on this thread: delivered, with its default action, here.
    let _ = only.thread_unblock();
    std::process::exit(128 + signal as i32)
}

/// The `SigIgn:` mask of a `/proc/PID/status`.
fn ignored_mask(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|line| line.strip_prefix("SigIgn:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

fn is_in(mask: u64, signal: Signal) -> bool {
    (mask >> (signal as i32 - 1)) & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::{ControlFlags, InputFlags, OutputFlags};
    use std::io::{Read, Write};

    fn pty() -> Pty {
        Pty::open(None).unwrap()
    }

    /// What the kernel keeps of a terminal's settings: its flags and its
    /// nineteen control characters (NCCS of the kernel's struct termios).
    /// The C library's struct may be longer (musl's has 32 and two speeds),
    /// and tcgetattr leaves the rest of it as it was.
    type Kept = (InputFlags, OutputFlags, ControlFlags, LocalFlags, Vec<u8>);

    fn kept_of(fd: &impl AsFd) -> Kept {
        let t = tcgetattr(fd).unwrap();
        let cc = t.control_chars[..19].to_vec();
        (t.input_flags, t.output_flags, t.control_flags, t.local_flags, cc)
    }

    fn kept(t: &Termios) -> Kept {
        let cc = t.control_chars[..19].to_vec();
        (t.input_flags, t.output_flags, t.control_flags, t.local_flags, cc)
    }

    /// Reads what the master has, until `want` bytes or the slave closed.
    fn read_master(master: &mut File, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < want {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(Errno::EIO as i32) => break,
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn pty_slave_is_a_terminal_and_no_end_is_inherited() {
        let p = pty();
        assert!(isatty(&p.slave).unwrap());
        for fd in [p.master.as_fd(), p.slave.as_fd()] {
            let flags = fcntl(fd, FcntlArg::F_GETFD).unwrap();
            assert_ne!(flags & nix::libc::FD_CLOEXEC, 0, "inheritable pty end");
        }
    }

    #[test]
    fn what_the_run_writes_reaches_the_master_then_its_end() {
        let mut p = pty();
        File::from(p.slave.try_clone().unwrap()).write_all(b"hi\n").unwrap();
        drop(p.slave);
        // The slave's own output processing turns \n into \r\n.
        assert_eq!(read_master(&mut p.master, usize::MAX), b"hi\r\n");
    }

    #[test]
    fn the_pty_copies_the_settings_and_window_size_of_the_callers_terminal() {
        let caller = pty();
        let mut settings = tcgetattr(&caller.slave).unwrap();
        settings.control_chars[Cc::VINTR as usize] = b'x';
        settings.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&caller.slave, SetArg::TCSANOW, &settings).unwrap();
        let size = rustix::termios::Winsize { ws_row: 33, ws_col: 111, ws_xpixel: 0, ws_ypixel: 0 };
        rustix::termios::tcsetwinsize(&caller.master, size).unwrap();

        let run = Pty::open(Some(caller.slave.as_fd())).unwrap();
        assert_eq!(kept_of(&run.slave), kept_of(&caller.slave));
        let got = rustix::termios::tcgetwinsize(&run.slave).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 111));
    }

    #[test]
    fn raw_mode_is_restored_exactly_once_and_never_comes_back() {
        let caller = pty();
        let before = tcgetattr(&caller.slave).unwrap();
        let raw = RawMode::enter(File::from(caller.slave.try_clone().unwrap())).unwrap();
        let during = tcgetattr(&caller.slave).unwrap();
        assert!(!during.local_flags.contains(LocalFlags::ICANON | LocalFlags::ECHO));
        assert!(!during.local_flags.contains(LocalFlags::ISIG));
        assert_eq!(during.control_chars[Cc::VMIN as usize], 0);

        drop(Cooked(Some(Arc::clone(&raw))));
        assert_eq!(kept_of(&caller.slave), kept(&before));
        // A stop and a continue after the end leave it as it is.
        raw.suspend();
        raw.resume();
        raw.restore();
        assert_eq!(kept_of(&caller.slave), kept(&before));
    }

    #[test]
    fn a_stop_gives_the_shell_its_settings_and_a_continue_takes_them_anew() {
        let caller = pty();
        let before = tcgetattr(&caller.slave).unwrap();
        let raw = RawMode::enter(File::from(caller.slave.try_clone().unwrap())).unwrap();
        raw.suspend();
        assert_eq!(kept_of(&caller.slave), kept(&before));
        // The shell changes them while we are stopped: those are restored.
        let mut shell = before.clone();
        shell.control_chars[Cc::VERASE as usize] = b'#';
        tcsetattr(&caller.slave, SetArg::TCSANOW, &shell).unwrap();
        raw.resume();
        assert!(!tcgetattr(&caller.slave).unwrap().local_flags.contains(LocalFlags::ICANON));
        raw.restore();
        assert_eq!(kept_of(&caller.slave), kept(&shell));
    }

    #[test]
    fn interrupt_keys_act_on_safeexec_only_while_no_group_holds_the_pty() {
        let p = pty();
        let settings = tcgetattr(&p.slave).unwrap();
        let ctrl_c = settings.control_chars[Cc::VINTR as usize];
        let ctrl_z = settings.control_chars[Cc::VSUSP as usize];
        let ctrl_q = settings.control_chars[Cc::VQUIT as usize];
        assert_eq!(key_signal(&settings, false, b"abc"), None);
        assert_eq!(key_signal(&settings, false, &[b'a', ctrl_c]), Some(Signal::SIGINT));
        assert_eq!(key_signal(&settings, false, &[ctrl_z]), Some(Signal::SIGTSTP));
        assert_eq!(key_signal(&settings, false, &[ctrl_q]), Some(Signal::SIGQUIT));
        assert_eq!(key_signal(&settings, true, &[ctrl_c]), None, "a group gets it");
        let mut raw = settings.clone();
        cfmakeraw(&mut raw);
        assert_eq!(key_signal(&raw, false, &[ctrl_c]), None, "the run made ^C a key");
        let mut disabled = settings.clone();
        disabled.control_chars[Cc::VINTR as usize] = 0;
        assert_eq!(key_signal(&disabled, false, &[0]), None);
        // A fresh pty is nobody's controlling terminal.
        assert_eq!(unheard_key_signal(&p.master, &[ctrl_c]), Some(Signal::SIGINT));
    }

    #[test]
    fn ignored_signals_are_read_from_proc_status() {
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000001\n";
        let mask = ignored_mask(status).unwrap();
        assert!(is_in(mask, Signal::SIGHUP));
        assert!(!is_in(mask, Signal::SIGINT));
        assert_eq!(ignored_mask("Name:\tx\n"), None);
    }

    #[test]
    fn a_pipe_is_passed_as_it_is_and_a_pty_is_a_terminal() {
        let (rx, _tx) = io::pipe().unwrap();
        assert_eq!(kind(rx.as_fd()), Std::Other);
        let p = pty();
        assert_eq!(kind(p.slave.as_fd()), Std::Terminal);
    }
}
