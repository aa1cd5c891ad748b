//! The run's view of the file system, built by init in the run's new mount
//! namespace before the target is forked: a /proc of its own pid namespace,
//! one private scratch tmpfs on the host's shared writable places, no cgroup
//! file system, and the chroot jail as a detached mount (invariants 4, 5, 7).

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use shared::{Limit, Limits};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, Mode};

use crate::error::{Context, Error, Result};
use crate::policy::{Grant, Jail, Plan};
use crate::sys;

/// Directories of the host a run never sees: world-writable ones (what the
/// target would leave there, a disk fill or a note for the next run, would
/// outlive it; /dev/shm is memory) and /run, where host daemons listen on
/// unix sockets. They all show one small private tmpfs instead, gone with
/// the run. The first two stay the host's with `--host-tmp`.
const SCRATCH_DIRS: &[(&CStr, bool)] =
    &[(c"/tmp", true), (c"/var/tmp", true), (c"/dev/shm", false), (c"/run", false)];

/// Size of the run's scratch tmpfs: as large as one file may be, and no
/// more than the memory limit (tmpfs pages are memory the rlimits do not
/// see): at least a page, at most 1 GiB.
pub fn scratch_kib(limits: &Limits) -> u64 {
    let cap_kib = limits.get(Limit::Mem).unwrap_or(1 << 20).min(1 << 20);
    limits.get(Limit::Fsize).unwrap_or(1 << 20).min(cap_kib).max(4)
}

/// mount(2) with a source always named (nix wants `Option`s of one type).
fn mount(
    source: &CStr,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: MsFlags,
    data: Option<&CStr>,
) -> nix::Result<()> {
    nix::mount::mount(Some(source), target, fstype, flags, data)
}

/// Gives the run its own view of the host's file system: a /proc of its
/// own pid namespace (it sees no other process of the machine) and the
/// private scratch tmpfs. Only fixed paths of the host are touched, before
/// any chroot: they matter inside a chroot only if the chroot directory
/// holds them (`--chroot_dir /`); the caller's own tree is never mounted on.
pub fn private_mounts(plan: &Plan) -> Result<()> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(c"proc", c"/proc", Some(c"proc"), hardened | MsFlags::MS_NOEXEC, None)
        .context("cannot mount the run's /proc")?;
    let size_kib = scratch_kib(&plan.limits);
    let options = CString::new(format!("size={size_kib}k,nr_inodes=1024,mode=1777"))
        .map_err(|_| Error::Internal("tmpfs options".into()))?;
    let mut scratch: Option<&CStr> = None;
    for &(dir, host_may_keep) in SCRATCH_DIRS {
        if host_may_keep && plan.host_tmp {
            continue;
        }
        // Only real directories: a symlink here would move the mount.
        let is_dir = std::fs::symlink_metadata(OsStr::from_bytes(dir.to_bytes()))
            .is_ok_and(|m| m.file_type().is_dir());
        if !is_dir {
            continue;
        }
        match scratch {
            None => {
                mount(c"tmpfs", dir, Some(c"tmpfs"), hardened, Some(&options))
                    .context("cannot mount the run's scratch tmpfs")?;
                scratch = Some(dir);
            }
            Some(first) => mount(first, dir, None, MsFlags::MS_BIND, None)
                .context("cannot bind the run's scratch tmpfs")?,
        }
    }
    private_ptys()?;
    // The cgroup file systems: the run's own cgroups are root's, but a
    // cgroup elsewhere whose tasks file someone made writable would let the
    // target leave them (and their limits). An empty read-only tmpfs.
    let is_dir = std::fs::symlink_metadata("/sys/fs/cgroup").is_ok_and(|m| m.file_type().is_dir());
    if is_dir {
        mount(
            c"tmpfs",
            c"/sys/fs/cgroup",
            Some(c"tmpfs"),
            hardened | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
            Some(c"size=4k,nr_inodes=1,mode=555"),
        )
        .context("cannot hide /sys/fs/cgroup")?;
    }
    Ok(())
}

/// Ptys the run may open: a devpts instance of its own with a small
/// maximum on /dev/pts, and /dev/ptmx opening in it, so that a run cannot
/// take the host's ptys (and block new logins); gone with the run.
const MAX_PTYS: u32 = 16;

fn private_ptys() -> Result<()> {
    let is = |path: &str, dir: bool| {
        std::fs::symlink_metadata(path).is_ok_and(|m| {
            if dir {
                m.is_dir()
            } else {
                m.file_type().is_char_device()
            }
        })
    };
    if !is("/dev/pts", true) {
        return Ok(());
    }
    let options = CString::new(format!("newinstance,ptmxmode=0666,mode=0620,max={MAX_PTYS}"))
        .map_err(|_| Error::Internal("devpts options".into()))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(c"devpts", c"/dev/pts", Some(c"devpts"), flags, Some(&options))
        .context("cannot mount the run's /dev/pts")?;
    // A symbolic link to pts/ptmx (as in containers) already leads there.
    if is("/dev/ptmx", false) {
        mount(c"/dev/pts/ptmx", c"/dev/ptmx", None, MsFlags::MS_BIND, None)
            .context("cannot bind the run's /dev/ptmx")?;
    }
    Ok(())
}

/// The host's file system, read-only for the run: every mount of the run's
/// namespace, as it is a copy of the host's. Mounts made after this (its
/// /proc, scratch tmpfs, ptys) are the run's own; what else it may write is
/// granted with `writable`.
pub fn read_only_host() -> Result<()> {
    // First, no propagation either way: nothing made here reaches the
    // host, and no host mount made meanwhile arrives here writable.
    mount(c"none", c"/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
        .context("cannot make the run's mounts private")?;
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root = nix::fcntl::open("/", flags, Mode::empty()).context("cannot open /")?;
    sys::mount_setattr(&root, true, sys::MOUNT_ATTR_RDONLY, 0)
        .context("cannot make the host read-only for the run")
}

/// A granted directory (the policy's, or the caller's own) writable again
/// in the run's view: a copy of it as a mount of its own, without the mounts
/// below it, read-write, nosuid and nodev, put on top of it. Its files keep
/// their permissions. Returns the copy.
pub fn writable(grant: &Grant) -> Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir = nix::fcntl::open(grant.path.as_str(), flags, Mode::empty());
    let same = dir
        .as_ref()
        .ok()
        .and_then(|d| fstat(d).ok())
        .is_some_and(|st| (st.st_dev, st.st_ino) == grant.id);
    let (Ok(dir), true) = (dir, same) else {
        return Err(Error::Setup(format!(
            "the writable directory {} moved or is gone",
            grant.path
        )));
    };
    let copy = sys::clone_mount_of(&dir).context("cannot copy a writable directory's mount")?;
    let (set, clear) = (sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV, sys::MOUNT_ATTR_RDONLY);
    sys::mount_setattr(&copy, false, set, clear)
        .context("cannot make a granted directory writable")?;
    sys::move_mount(&copy, &dir).context("cannot put a writable directory in place")?;
    Ok(copy)
}

/// The chroot directory as a detached copy of its own mount: no mount below
/// it comes along, nothing set-id or device works in it, and a jail that is
/// not the caller's is read-only. The kernel refuses a directory of another
/// mount namespace.
pub fn jail_mount(jail: &Jail) -> Result<OwnedFd> {
    let copy = sys::clone_mount_of(&jail.dir).map_err(|e| {
        Error::Setup(format!(
            "cannot use the chroot directory (is it in another mount namespace?): {}",
            sys::strerror(e.raw_os_error().unwrap_or(0))
        ))
    })?;
    let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    if jail.read_only {
        attrs |= sys::MOUNT_ATTR_RDONLY;
    }
    sys::mount_setattr(&copy, false, attrs, 0)
        .context("cannot restrict the chroot directory's mount")?;
    Ok(copy)
}

/// The target starts in the caller's working directory (or resolves
/// exec_dir from it). A directory under one of the run's private mounts
/// would still be the host's one, below the mount: the run would read and
/// write the host's /tmp through it. It must be the directory its path now
/// names, or the run is refused.
pub fn working_directory_is_visible() -> Result<()> {
    let here = std::fs::metadata(".").context("cannot stat the working directory")?;
    let path = std::env::current_dir().context("cannot name the working directory")?;
    let same = path.is_absolute()
        && std::fs::metadata(&path)
            .is_ok_and(|there| (there.dev(), there.ino()) == (here.dev(), here.ino()));
    if same {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "the working directory {} lies under the run's private /tmp, /var/tmp, /dev/shm or /run: \
         run safeexec from another directory, or use --host-tmp",
        path.display()
    )))
}
