//! Starting the helper with posix_spawn(3) rather than a fork: glibc and
//! musl clone with CLONE_VM|CLONE_VFORK, so the child runs in our memory
//! until it execs. A fork would copy our page tables and leave us taking
//! copy-on-write faults afterwards, which costs much of a run's start-up
//! where page faults are expensive (software virtualisation).
//!
//! What the helper gets: descriptors 0, 1 and 2 as asked, each passed
//! descriptor at its fixed number, and nothing else of ours (every
//! descriptor we open is close-on-exec; one the caller passed us open
//! stays open, as before); an empty environment; an empty signal mask and
//! every signal at its default (SIGPIPE included, which we ignore as Rust
//! programs do; the helper resets them all again itself); the exec's error
//! as the spawn's.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
use nix::sys::signal::SigSet;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Reads `program`'s file into the page cache, one page at a time, when
/// none of it is there (after a boot, or once memory pressure took it): so
/// read, the kernel's readahead grows, and the file lands in large folios,
/// which the program's exec then maps a few faults at a time. Left to the
/// exec itself, its faults read the file back as single pages, one fault
/// each (bench/README, "The binaries' pages in large folios"). Already
/// cached, it costs one read that takes nothing from the disk.
pub fn read_in(program: &Path) {
    /// A bound on the reads, whatever the file.
    const MAX_PAGES: usize = 4096;
    let Ok(mut file) = File::open(program) else { return };
    let mut page = [0u8; 4096];
    let probe = rustix::io::preadv2(
        &file,
        &mut [IoSliceMut::new(&mut page[..1])],
        0,
        rustix::io::ReadWriteFlags::NOWAIT,
    );
    if probe != Err(rustix::io::Errno::AGAIN) {
        return;
    }
    for _ in 0..MAX_PAGES {
        if !matches!(file.read(&mut page), Ok(n) if n > 0) {
            break;
        }
    }
}

/// What one of the child's descriptors 0, 1 and 2 is.
pub enum Stdio {
    /// Ours, as it is.
    Inherit,
    /// /dev/null (for reading as stdin, for writing as stdout or stderr).
    Null,
    /// This descriptor.
    Fd(OwnedFd),
}

impl<T: Into<OwnedFd>> From<T> for Stdio {
    fn from(fd: T) -> Stdio {
        Stdio::Fd(fd.into())
    }
}

/// Two descriptors asked for the same number, or one for 0, 1 or 2.
#[derive(Debug)]
pub struct Collision;

/// One child to start: its descriptors 0, 1 and 2, and the others it is
/// given at fixed numbers.
pub struct Spawn {
    stdio: [Stdio; 3],
    fds: Vec<(OwnedFd, RawFd)>,
}

impl Spawn {
    pub fn new(stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Spawn {
        Spawn { stdio: [stdin, stdout, stderr], fds: Vec::new() }
    }

    /// Gives the child `fd` as its descriptor number `at`.
    pub fn fd(&mut self, fd: OwnedFd, at: RawFd) -> Result<(), Collision> {
        if at <= 2 || self.fds.iter().any(|&(_, taken)| taken == at) {
            return Err(Collision);
        }
        self.fds.push((fd, at));
        Ok(())
    }

    /// Starts `program` with no argument but its name and an empty
    /// environment. Our copies of every descriptor given are closed when
    /// this returns, started or not.
    pub fn spawn(self, program: &Path) -> io::Result<Child> {
        let name = CString::new(program.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in the path"))?;
        let mut moves: Vec<(OwnedFd, RawFd)> = Vec::with_capacity(self.fds.len() + 3);
        for (i, stdio) in (0..).zip(self.stdio) {
            match stdio {
                Stdio::Inherit => {}
                Stdio::Null => moves.push((dev_null(i == 0)?.into(), i)),
                Stdio::Fd(fd) => moves.push((fd, i)),
            }
        }
        moves.extend(self.fds);
        let moves = out_of_the_way(moves)?;

        let mut actions = PosixSpawnFileActions::init()?;
        for (fd, at) in &moves {
            actions.add_dup2(fd.as_raw_fd(), *at)?;
        }
        let mut attr = PosixSpawnAttr::init()?;
        attr.set_flags(
            PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
        )?;
        attr.set_sigmask(&SigSet::empty())?;
        // Every signal at its default in the helper (it resets them all
        // itself too). Naming them all also spares glibc's child a query
        // of each one before it sets it: half of some 120 system calls.
        attr.set_sigdefault(&SigSet::all())?;
        let no_env: &[&std::ffi::CStr] = &[];
        let pid = posix_spawn(program, &actions, &attr, &[name], no_env)?;
        Ok(Child { pid })
    }
}

/// /dev/null, close-on-exec, as std's `Stdio::null` opens it: for reading
/// (a stdin), else for writing.
pub fn dev_null(read: bool) -> io::Result<File> {
    OpenOptions::new().read(read).write(!read).open("/dev/null")
}

/// Makes every descriptor to move stand at a number that is none of the
/// numbers moved to (nor 0, 1 or 2): each dup2 of the file actions then
/// has a source that no other one overwrites, and a source that differs
/// from its target (a dup2 onto itself leaves it close-on-exec in a C
/// library older than the rule, POSIX 2024's, that clears it).
fn out_of_the_way(moves: Vec<(OwnedFd, RawFd)>) -> io::Result<Vec<(OwnedFd, RawFd)>> {
    let highest = moves.iter().map(|&(_, at)| at).max().unwrap_or(2).max(2);
    let taken = |fd: RawFd| fd <= 2 || moves.iter().any(|&(_, at)| at == fd);
    let in_the_way: Vec<bool> = moves.iter().map(|(fd, _)| taken(fd.as_raw_fd())).collect();
    moves
        .into_iter()
        .zip(in_the_way)
        .map(|((fd, at), in_the_way)| match in_the_way {
            // Close-on-exec, as every descriptor of ours.
            true => Ok((rustix::io::fcntl_dupfd_cloexec(&fd, highest + 1)?, at)),
            false => Ok((fd, at)),
        })
        .collect()
}

/// A started child, to wait for.
pub struct Child {
    pid: Pid,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// Waits for the child to end. ECHILD when the caller ignores SIGCHLD
    /// (the kernel reaped it).
    pub fn wait(&self) -> io::Result<ExitStatus> {
        loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    return Ok(ExitStatus::from_raw((code & 0xff) << 8))
                }
                Ok(WaitStatus::Signaled(_, signal, core)) => {
                    return Ok(ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 }))
                }
                // Not asked for (no WUNTRACED or WCONTINUED): wait on.
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Runs `script` under /bin/sh as the spawned child would run: `sh`
    /// cannot be given arguments here, so the script comes on stdin.
    fn run(script: &str, fds: Vec<(OwnedFd, RawFd)>) -> (String, ExitStatus) {
        let (script_rx, mut script_tx) = io::pipe().unwrap();
        let (mut out_rx, out_tx) = io::pipe().unwrap();
        let mut spawn = Spawn::new(script_rx.into(), out_tx.into(), Stdio::Inherit);
        for (fd, at) in fds {
            spawn.fd(fd, at).unwrap();
        }
        let child = spawn.spawn(Path::new("/bin/sh")).unwrap();
        std::io::Write::write_all(&mut script_tx, script.as_bytes()).unwrap();
        drop(script_tx);
        let mut out = String::new();
        out_rx.read_to_string(&mut out).unwrap();
        (out, child.wait().unwrap())
    }

    fn pipe_fd() -> OwnedFd {
        OwnedFd::from(io::pipe().unwrap().1)
    }

    /// What `fd` is (`pipe:[N]`), in our /proc.
    fn what(fd: &OwnedFd) -> String {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .display()
            .to_string()
    }

    #[test]
    fn the_child_gets_each_descriptor_at_its_number_and_no_other_of_ours() {
        // Two of ours at the numbers the other takes, one at its own
        // number, one moved up; one not given.
        let (a, b, own, up, kept) = (pipe_fd(), pipe_fd(), pipe_fd(), pipe_fd(), pipe_fd());
        let (na, nb, nown, nkept) =
            (a.as_raw_fd(), b.as_raw_fd(), own.as_raw_fd(), kept.as_raw_fd());
        let want = [what(&b), what(&a), what(&own), what(&up), "closed".to_string()];
        let script = format!(
            "for n in {na} {nb} {nown} 30 {nkept}; do readlink /proc/$$/fd/$n || echo closed; done"
        );
        let (out, status) = run(&script, vec![(a, nb), (b, na), (own, nown), (up, 30)]);
        assert!(status.success());
        assert_eq!(out.lines().collect::<Vec<_>>(), want);
        drop(kept);
    }

    #[test]
    fn a_descriptor_is_the_one_given_not_another_at_that_number() {
        let (mut rx, tx) = io::pipe().unwrap();
        let (_, status) = run("echo through >&7", vec![(tx.into(), 7)]);
        assert!(status.success());
        let mut got = String::new();
        rx.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through\n");
    }

    #[test]
    fn the_environment_is_empty_and_no_signal_blocked_or_sigpipe_ignored() {
        use nix::sys::signal::{pthread_sigmask, SigmaskHow, Signal};
        // Blocked on this test's thread only; SIGPIPE we ignore (Rust does).
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::from(Signal::SIGUSR2)), None).unwrap();
        let (out, _) = run("env | grep -v '^PWD='; exec grep '^Sig[BI]' /proc/self/status", vec![]);
        pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&SigSet::from(Signal::SIGUSR2)), None)
            .unwrap();
        let field = |name: &str| {
            let line =
                out.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{out}"));
            u64::from_str_radix(line.trim(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0, "{out}");
        assert_eq!(field("SigIgn:") & 1 << (Signal::SIGPIPE as u64 - 1), 0, "{out}");
        assert!(out.starts_with("SigBlk:"), "an environment: {out}");
    }

    #[test]
    fn a_program_that_cannot_be_executed_is_an_error_of_the_spawn() {
        let err = Spawn::new(Stdio::Null, Stdio::Null, Stdio::Null)
            .spawn(Path::new("/nonexistent/safeexec-helper"))
            .err()
            .expect("not started");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = Spawn::new(Stdio::Null, Stdio::Null, Stdio::Null)
            .spawn(Path::new("/etc/passwd"))
            .err()
            .expect("not started");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_file_not_cached_is_read_in_whole_and_a_cached_one_is_left() {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        use std::os::unix::fs::FileExt;
        const PAGES: u64 = 256;
        // Beside the test's executable: a disk's file system, whose
        // pages can be dropped (not a tmpfs).
        let exe = std::env::current_exe().unwrap();
        let path = exe.with_file_name(format!("read-in-{}", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
        file.write_all_at(&vec![7u8; (PAGES * 4096) as usize], 0).unwrap();
        file.sync_all().unwrap();
        let drop_pages = || posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        let cached = |page: u64| {
            let mut byte = [0u8];
            let mut bufs = [IoSliceMut::new(&mut byte)];
            rustix::io::preadv2(&file, &mut bufs, page * 4096, rustix::io::ReadWriteFlags::NOWAIT)
                .is_ok()
        };
        drop_pages().unwrap();
        assert!(!cached(0) && !cached(PAGES - 1), "the file system keeps its pages: {path:?}");
        read_in(&path);
        let last = cached(PAGES - 1);
        // Its first page cached (and the few the kernel reads ahead): no more is read.
        drop_pages().unwrap();
        file.read_exact_at(&mut [0u8], 0).unwrap();
        read_in(&path);
        let left = !cached(PAGES - 1);
        std::fs::remove_file(&path).unwrap();
        assert!(last, "a file none of which was cached was not read in");
        assert!(left, "a cached file was read through");
    }

    #[test]
    fn a_number_given_twice_or_a_standard_one_is_a_collision() {
        let mut spawn = Spawn::new(Stdio::Inherit, Stdio::Inherit, Stdio::Inherit);
        spawn.fd(pipe_fd(), 3).unwrap();
        assert!(spawn.fd(pipe_fd(), 3).is_err());
        assert!(spawn.fd(pipe_fd(), 1).is_err());
    }
}
