//! Invariant 3, the uid side: each run's uid is `uid_base + index`, the
//! index handed out in turn through the policy's whole `uid_count` (so a
//! uid comes back only after `uid_count` more runs, not when a pid does),
//! and held by a lock for as long as any process of the run may live: no
//! two live runs share a uid, without a look at /proc (whose cost grew
//! with every process of the host).
//!
//! One root-owned file in the state directory: its first 8 bytes are the
//! next index; byte `8 + index` carries an open-file-description lock for
//! each live run. The lock belongs to the description the supervisor opened
//! and init shares through fork (the target's copy closes at exec), so it
//! is released only once both are gone: init's copy goes with init, after
//! every other process of the run is dead and its cgroups are removed; if
//! the supervisor is killed, init (and with it the run) is killed too.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::uio::{pread, pwrite};

use crate::error::{Context, Error, Result};

/// Where the helper keeps its state (compiled in, like the policy's path).
pub const STATE_DIR: &str = match option_env!("SAFEEXEC_STATE_DIR") {
    Some(dir) => dir,
    None => "/var/lib/safeexec",
};

/// A run's index, held for the life of the run.
pub struct Lease {
    pub index: u32,
    file: File,
}

/// `len` bytes of a file from `start` (0: to its end, however long), as a
/// lock request.
fn range(start: u64, len: i64, kind: libc::c_int) -> libc::flock {
    let short = |v: libc::c_int| v as libc::c_short;
    libc::flock {
        l_type: short(kind),
        l_whence: short(libc::SEEK_SET),
        l_start: start as i64,
        l_len: len,
        l_pid: 0,
    }
}

/// One byte of the state file, as a lock request.
fn byte(byte: u64, kind: libc::c_int) -> libc::flock {
    range(byte, 1, kind)
}

/// Takes or releases one byte's lock, never waiting for it.
fn lock(file: &File, at: u64, kind: libc::c_int) -> nix::Result<()> {
    fcntl(file, FcntlArg::F_OFD_SETLK(&byte(at, kind))).map(drop)
}

/// Takes the write lock of the whole of `file` for its open file
/// description, if nobody holds it, never waiting for it (the network
/// pool's slots: `netpool`).
pub fn lock_whole(file: &File) -> bool {
    fcntl(file, FcntlArg::F_OFD_SETLK(&range(0, 0, libc::F_WRLCK))).is_ok()
}

/// Takes one of the caller's `max` slots of requests at once (policy
/// `max_runs_per_caller`): the write lock of one byte of the caller's file
/// in `STATE_DIR/callers`, for this open file description, which init
/// shares through fork, so that it is held until both are gone. A helper
/// is root in all its ids from its start, so that the caller can neither
/// signal nor reschedule it, and then no longer counts against the
/// caller's RLIMIT_NPROC: a caller that started helpers and sent them no
/// request held 1,764 root processes with 720 MB of the machine's memory
/// and a network namespace each, for up to `harden::REQUEST_WAIT`, under a
/// process limit of 200 (a review of the thirteenth round). Taken before
/// the network thread may make a namespace. The search starts at a byte
/// of our pid's, so that a caller's runs rarely try the same bytes.
pub fn take_caller_slot(uid: u32, max: u32) -> Result<File> {
    // A new machine or container has neither yet.
    make_root_dir(STATE_DIR, 0o022)?;
    make_root_dir(&format!("{STATE_DIR}/callers"), 0o077)?;
    let file = open_root_file(&format!("{STATE_DIR}/callers/{uid}"))?;
    let first = std::process::id() % max.max(1);
    let free = (0..max)
        .map(|i| u64::from((first + i) % max))
        .find(|&byte| lock(&file, byte, libc::F_WRLCK).is_ok());
    match free {
        Some(_) => Ok(file),
        None => Err(Error::Refused(format!(
            "this user has {max} runs at once already (the policy's max_runs_per_caller)"
        ))),
    }
}

/// Makes the directory `path` (mode 0700) if missing; it must be root's,
/// and `mode & unwanted` zero. Returns what it found.
pub fn make_root_dir(path: &str, unwanted: u32) -> Result<std::fs::Metadata> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::Failed("cannot make a state directory", e)),
    }
    let dir = std::fs::symlink_metadata(path).context("cannot stat a state directory")?;
    if !dir.is_dir() || dir.uid() != 0 || dir.mode() & unwanted != 0 {
        return Err(Error::Policy(format!(
            "{path} must be a directory of root's that only root may write"
        )));
    }
    Ok(dir)
}

/// Opens the state file, making the directory and the file if missing;
/// both must be root's and writable by nobody else.
fn open_state() -> Result<File> {
    make_root_dir(STATE_DIR, 0o022)?;
    open_root_file(&format!("{STATE_DIR}/uids"))
}

/// Opens `path` for reading and writing, never through a symbolic link,
/// making it (mode 0600) if missing: it must be a file of root's that
/// nobody else may read or write.
pub fn open_root_file(path: &str) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::Failed("cannot open a state file", e))?;
    let meta = file.metadata().context("cannot stat a state file")?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        return Err(Error::Policy(format!("{path} must be root's file, mode 0600")));
    }
    Ok(file)
}

/// How long a helper waits for another to move the counter on. No caller
/// can stop a helper while it holds byte 0 (`identity::Identity::setup`),
/// nor freeze, stall or starve it through a cgroup (`cgroup::shelter`) or
/// its session's autogroup (`harden::reset_timing`);
/// past this, the run fails rather than take an index without moving the
/// counter on (which would hand the same uid to the next run).
const ORDER_TRIES: u32 = 250;

/// Hands out the next free index of `count`: under the lock on byte 0, the
/// first index from the stored next one whose byte nobody holds (that lock
/// makes it this run's), and moves the counter past it. Byte 0 is never
/// waited for more than about 50 ms.
pub fn allocate(count: u32) -> Result<Lease> {
    let file = open_state()?;
    let ordered = (0..ORDER_TRIES).any(|_| {
        let got = lock(&file, 0, libc::F_WRLCK).is_ok();
        if !got {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        got
    });
    if !ordered {
        // Nothing read: the counter's page is read under the lock only (a
        // page fetched from a throttled disk would hold us too).
        return Err(Error::Failed(
            "the uid allocator is busy; try again",
            std::io::Error::from(std::io::ErrorKind::WouldBlock),
        ));
    }
    let mut stored = [0u8; 8];
    let next = match pread(&file, &mut stored, 0) {
        Ok(8) => u64::from_le_bytes(stored) % u64::from(count),
        _ => 0,
    };
    let found = (0..u64::from(count).min(1 << 16))
        .map(|i| ((next + i) % u64::from(count)) as u32)
        .find(|&index| lock(&file, 8 + u64::from(index), libc::F_WRLCK).is_ok());
    // A caller whose hard file-size limit is below 8 bytes (which the
    // helper cannot raise without CAP_SYS_RESOURCE) would have the write cut
    // short, winding the counter back; a run that did not move it on would
    // hand its uid to the next run, which could then reach what this one
    // left (a directory, a FIFO, an empty file). Refused, like the other
    // limits the helper cannot work under.
    let fits = getrlimit(Resource::RLIMIT_FSIZE).is_ok_and(|(soft, _)| soft >= 8);
    let result = match found {
        Some(_) if !fits => Err(Error::Refused(
            "the caller's file-size limit (RLIMIT_FSIZE) is under 8 bytes: the helper cannot \
             record the uid it hands out (raise it: ulimit -f)"
                .into(),
        )),
        Some(index) => match pwrite(&file, &(u64::from(index) + 1).to_le_bytes(), 0) {
            Ok(8) => Ok(index),
            Ok(_) => Err(Error::Internal("a short write of the uid state file".into())),
            Err(e) => Err(Error::Failed("cannot write the uid state file", e.into())),
        },
        None => Err(Error::Refused("every sandbox uid of the policy is in use".into())),
    };
    let _ = lock(&file, 0, libc::F_UNLCK);
    result.map(|index| Lease { index, file })
}

impl Lease {
    /// Whether the run of `index` may still have a process: someone holds
    /// its byte (this run's own index counts as held: the kernel does not
    /// report a lock of the very file it is asked through). For the sweep
    /// of cgroups left by runs that ended without init removing them; one
    /// open file for the whole sweep.
    pub fn held_by_another(&self, index: u32) -> bool {
        let mut fl = byte(8 + u64::from(index), libc::F_WRLCK);
        match fcntl(&self.file, FcntlArg::F_OFD_GETLK(&mut fl)) {
            Ok(_) => index == self.index || fl.l_type != libc::F_UNLCK as libc::c_short,
            Err(_) => true, // unknown: leave it
        }
    }
}
