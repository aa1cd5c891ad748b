//! The run's view of the file system, built by init in the run's new mount
//! namespace before the target is forked (invariants 4, 5, 7). Either the
//! host's, read-only (`read_only_host`), with a /proc of its own pid
//! namespace, one private scratch tmpfs on the host's shared writable
//! places and no cgroup file system (`private_mounts`); or a minimal root
//! of read-only binds of the system directories and nothing else
//! (`minimal_root`). Either way the directories the request shows
//! (`policy::Bind`) are copies of the mounts of the descriptors the caller
//! passed, attached at their own paths (`copy_binds`); a chroot jail is a
//! copy of its own mount (`jail_mount`) with a minimal /dev (`minimal_dev`).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use shared::{Limit, Limits};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use nix::unistd::{fchdir, symlinkat};

use crate::error::{Context, Error, Result};
use crate::policy::{Bind, Jail, Plan};
use crate::sys;
use shared::Root;

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

fn scratch_options(limits: &Limits) -> Result<CString> {
    c_text(&format!("size={}k,nr_inodes=1024,mode=1777", scratch_kib(limits)))
}

/// The host's places a run sees its private scratch tmpfs in: the
/// `SCRATCH_DIRS` that are real directories (a symlink here would move the
/// mount), but /tmp and /var/tmp with `--host-tmp`. Found once by init,
/// before it copies the run's directories (`init::enter_namespaces`): only
/// root can change what they are.
pub fn scratch_places(host_tmp: bool) -> Vec<&'static CStr> {
    SCRATCH_DIRS
        .iter()
        .filter(move |(_, may_keep)| !(*may_keep && host_tmp))
        .map(|(d, _)| *d)
        .filter(|dir| is_real_dir(dir))
        .collect()
}

/// `places` as text, for comparing paths with them.
fn as_text<'a>(places: &[&'a CStr]) -> Vec<&'a str> {
    places.iter().filter_map(|d| d.to_str().ok()).collect()
}

/// Whether the host's `path` is a directory itself, not a symbolic link
/// (which would move a mount made there).
fn is_real_dir(path: &CStr) -> bool {
    std::fs::symlink_metadata(OsStr::from_bytes(path.to_bytes())).is_ok_and(|m| m.is_dir())
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
/// own pid namespace (it sees no other process of the machine), the
/// private scratch tmpfs, its own ptys and message queues. Only fixed paths of the host are touched, before
/// any chroot: they matter inside a chroot only if the chroot directory
/// holds them (`--chroot_dir /`); the caller's own tree is never mounted on.
pub fn private_mounts(plan: &Plan, places: &[&'static CStr]) -> Result<Option<&'static CStr>> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(c"proc", c"/proc", Some(c"proc"), hardened | MsFlags::MS_NOEXEC, None)
        .context("cannot mount the run's /proc")?;
    let options = scratch_options(&plan.limits)?;
    let mut scratch: Option<&CStr> = None;
    for &dir in places {
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
    // The POSIX message queues of the run's IPC namespace where systemd
    // mounts the host's: there the run, with the host's root, saw the
    // host's queues, received (took) another user's messages from a queue
    // others may read and held its notification slot (a review of the
    // twelfth round). A mount of the host's elsewhere is a "Known gap".
    if is_real_dir(c"/dev/mqueue") {
        mount(c"mqueue", c"/dev/mqueue", Some(c"mqueue"), hardened | MsFlags::MS_NOEXEC, None)
            .context("cannot mount the run's /dev/mqueue")?;
    }
    // The cgroup file systems: the run's own cgroups are root's, but a
    // cgroup elsewhere whose tasks file someone made writable would let the
    // target leave them (and their limits). An empty read-only tmpfs.
    if is_real_dir(c"/sys/fs/cgroup") {
        mount(
            c"tmpfs",
            c"/sys/fs/cgroup",
            Some(c"tmpfs"),
            hardened | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
            Some(c"size=4k,nr_inodes=1,mode=555"),
        )
        .context("cannot hide /sys/fs/cgroup")?;
    }
    Ok(scratch)
}

/// Ptys the run may open: a devpts instance of its own with a small
/// maximum on /dev/pts, and /dev/ptmx opening in it, so that a run cannot
/// take the host's ptys (and block new logins); gone with the run.
const MAX_PTYS: u32 = 16;

/// A devpts instance of the run's own at `dir`.
fn mount_devpts(dir: &CStr) -> Result<()> {
    let options = c_text(&format!("newinstance,ptmxmode=0666,mode=0620,max={MAX_PTYS}"))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(c"devpts", dir, Some(c"devpts"), flags, Some(&options))
        .context("cannot mount the run's /dev/pts")
}

fn private_ptys() -> Result<()> {
    if !is_real_dir(c"/dev/pts") {
        return Ok(());
    }
    mount_devpts(c"/dev/pts")?;
    // A symbolic link to pts/ptmx (as in containers) already leads there.
    if std::fs::symlink_metadata("/dev/ptmx").is_ok_and(|m| m.file_type().is_char_device()) {
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
    let root = sys::open_dir_handle("/").context("cannot open /")?;
    sys::mount_setattr(&root, true, sys::MOUNT_ATTR_RDONLY, 0)
        .context("cannot make the host read-only for the run")
}

/// Copies of the mounts of the directories the run is shown
/// (`Plan::binds`), taken from the descriptors the caller passed (never
/// from a path) while init is still in the helper's mount namespace (the
/// kernel copies no mount of another one): without the mounts below them,
/// read-only unless granted, never set-id or devices. Their files keep
/// their permissions.
pub fn copy_binds(plan: &Plan, places: &[&CStr]) -> Result<Vec<Option<OwnedFd>>> {
    let places = as_text(places);
    // The host's view shows a read-only directory outside its scratch
    // places as it is, and a minimal root one below its system
    // directories: no copy.
    let seen = |bind: &Bind| match plan.root {
        Root::Host => !places.iter().any(|p| is_under(&bind.path, p)),
        Root::Minimal => SYSTEM.iter().any(|s| is_under(&bind.path, s)),
    };
    let needed = |bind: &Bind| bind.writable || !seen(bind);
    let copy = |bind: &Bind| -> Result<Option<OwnedFd>> {
        if !needed(bind) {
            return Ok(None);
        }
        let copy = sys::clone_mount_of(&bind.dir).context("cannot copy a directory's mount")?;
        let hardened = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
        let (set, clear) = match bind.writable {
            true => (hardened, sys::MOUNT_ATTR_RDONLY),
            false => (hardened | sys::MOUNT_ATTR_RDONLY, 0),
        };
        sys::mount_setattr(&copy, false, set, clear)
            .context("cannot restrict a directory's copy")?;
        Ok(Some(copy))
    };
    plan.binds.iter().map(copy).collect()
}

/// Whether `path` is `dir` or lies below it.
fn is_under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether a read-only directory to show lies in one shown already (at
/// or above its path): then it is seen there, and a read-only copy on top
/// would hide the other's writability.
fn covered(bind: &Bind, attached_at: &[&str]) -> bool {
    !bind.writable && attached_at.iter().any(|at| is_under(&bind.path, at))
}

/// Where the target starts: the copy of the working directory, or a
/// directory found by its path in the run's view, with the device and
/// inode it must have there (the caller's working directory) or none (a
/// place of the run's own that stands in for it: its /, its /tmp).
enum Start {
    Copy(usize),
    Path(String, Option<(u64, u64)>),
}

/// The place to attach a copy at `path` below `root`, walked one component
/// at a time without following a symbolic link (so never out of `root`).
/// A missing component is made (root's, 0755; for the last one, an empty
/// file if `file`) only on a file system of `ours`: the run's own tmpfs,
/// never a directory of the host or of the caller. Below a directory just
/// made, the rest is missing too (and ours): it is made without a look.
fn mount_point(root: &OwnedFd, path: &str, ours: &[u64], file: bool) -> Result<OwnedFd> {
    let refuse = |why: &str| Error::Setup(format!("cannot show {path}: {why}"));
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(refuse("it is not a plain path"));
    }
    let file_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut walked: Option<OwnedFd> = None;
    let mut made = false;
    for (i, part) in parts.iter().enumerate() {
        let here = walked.as_ref().unwrap_or(root);
        let leaf_file = file && i + 1 == parts.len();
        let opened = match (made, leaf_file) {
            (true, _) => Err(Errno::ENOENT),
            (false, true) => openat(here, *part, file_flags, Mode::empty()),
            (false, false) => sys::open_dir_below(here, *part),
        };
        let next = match opened {
            Err(Errno::ENOENT) if made || ours.contains(&fstat(here).context("fstat")?.st_dev) => {
                made = true;
                make_step(here, part, leaf_file)
            }
            other => other,
        };
        walked =
            Some(next.map_err(|e| Error::setup(format_args!("cannot show {path}: {part}"), e))?);
    }
    let here = match walked {
        Some(here) => here,
        None => root.try_clone().context("dup")?,
    };
    if file != is_regular(&here) {
        return Err(refuse("it changed kind"));
    }
    Ok(here)
}

/// Makes the missing `name` in `dir` (a file system of the run's own):
/// root's, an empty file (`file`) or a directory, and opens it. The file
/// is made and opened in one call; nothing may be there yet, not even a
/// symbolic link (O_EXCL).
fn make_step(dir: &OwnedFd, name: &str, file: bool) -> nix::Result<OwnedFd> {
    if file {
        let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        return openat(dir, name, create, Mode::from_bits_truncate(0o644));
    }
    mkdirat(dir, name, Mode::from_bits_truncate(0o755))?;
    sys::open_dir_below(dir, name)
}

/// Makes the empty file `name` in `dir` (of the run's own), root's, with
/// `mode`, in one call. Nothing may be there yet, not even a symbolic link
/// (mknod follows none).
fn make_file<P: ?Sized + nix::NixPath>(dir: &OwnedFd, name: &P, mode: u32) -> nix::Result<()> {
    nix::sys::stat::mknodat(dir, name, SFlag::S_IFREG, Mode::from_bits_truncate(mode), 0)
}

/// Attaches a detached copy at `onto`.
fn attach(copy: &OwnedFd, onto: &OwnedFd, path: &str) -> Result<()> {
    sys::move_mount(copy, onto).map_err(|e| Error::setup(format_args!("cannot show {path}"), e))
}

/// The binds in path order (a directory before what lies below it), with
/// their copies' index.
fn in_path_order(binds: &[Bind]) -> Vec<(usize, &Bind)> {
    let mut order: Vec<(usize, &Bind)> = binds.iter().enumerate().collect();
    order.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    order
}

fn is_regular(fd: &OwnedFd) -> bool {
    fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

/// The copy of bind `i` (`copy_binds` made it wherever one is used).
fn copy_of(copies: &[Option<OwnedFd>], i: usize) -> Result<&OwnedFd> {
    copies.get(i).and_then(Option::as_ref).ok_or(Error::Internal("a bind without a copy".into()))
}

/// Enters where the target starts; `None`: stays where it is.
fn enter_start(start: Option<Start>, copies: &[Option<OwnedFd>]) -> Result<()> {
    match start {
        Some(Start::Copy(i)) => {
            fchdir(copy_of(copies, i)?).context("cannot enter the working directory")
        }
        Some(Start::Path(path, id)) => {
            // Invariant 4: init is root, and a chdir by path would follow a
            // symbolic link the caller put in place of a directory on the
            // way after the policy's look, into a tree the caller may not
            // enter (a review read another user's files so). Walked without
            // following one, and used only if it is the caller's directory.
            let root = sys::open_dir_handle("/").context("cannot open /")?;
            let dir = mount_point(&root, &path, &[], false)?;
            let found = fstat(&dir).map(|st| (st.st_dev, st.st_ino));
            if id.is_some_and(|id| found != Ok(id)) {
                return Err(Error::Setup(format!(
                    "the working directory {path} is not where it was (moved, or below \
                     another mount than the directory shown)"
                )));
            }
            fchdir(&dir).context("cannot enter the working directory")
        }
        None => Ok(()),
    }
}

/// The directories the request shows, in the host's read-only view: one
/// under the run's private scratch places (its /tmp, say) is attached in
/// the scratch tmpfs at its own path; a writable one elsewhere on top of
/// itself, found again by its path and used only if it is the same
/// directory (device, inode); a read-only one elsewhere is seen as it is.
/// The target starts in the copy of the working directory, if it has one.
pub fn show_on_host(plan: &Plan, copies: &[Option<OwnedFd>], places: &[&CStr]) -> Result<()> {
    let places = as_text(places);
    let root = sys::open_dir_handle("/").context("cannot open /")?;
    let scratch: Vec<u64> = places
        .first()
        .and_then(|p| nix::sys::stat::stat(*p).ok())
        .map(|st| st.st_dev)
        .into_iter()
        .collect();
    let mut start = None;
    let mut attached_at: Vec<&str> = Vec::new();
    for (i, bind) in in_path_order(&plan.binds) {
        if covered(bind, &attached_at) {
            if bind.cwd {
                start = Some(Start::Path(bind.path.clone(), Some(bind.id)));
            }
            continue;
        }
        let place = places.iter().find(|p| is_under(&bind.path, p));
        let attached = match place {
            Some(p) if bind.path == *p => scratch_place_itself(bind)?,
            Some(_) => {
                let onto = mount_point(&root, &bind.path, &scratch, is_regular(&bind.dir))?;
                attach(copy_of(copies, i)?, &onto, &bind.path).map(|()| true)?
            }
            None if bind.writable => {
                let onto = mount_point(&root, &bind.path, &[], false)?;
                let same = fstat(&onto).is_ok_and(|st| (st.st_dev, st.st_ino) == bind.id);
                if !same {
                    return Err(Error::Setup(format!("the directory {} moved", bind.path)));
                }
                attach(copy_of(copies, i)?, &onto, &bind.path).map(|()| true)?
            }
            None => false,
        };
        if attached {
            attached_at.push(&bind.path);
        }
        match (bind.cwd, attached) {
            (true, true) => start = Some(Start::Copy(i)),
            // The scratch place itself: the run's own stands in for it.
            (true, false) if place.is_some() => start = Some(Start::Path(bind.path.clone(), None)),
            _ => {}
        }
    }
    enter_start(start, copies)
}

/// A directory to show that is a scratch place itself (/tmp): it would
/// cover the run's own. The working directory is not shown (the target
/// starts in the run's private one); anything else is refused.
fn scratch_place_itself(bind: &Bind) -> Result<bool> {
    if bind.cwd {
        return Ok(false);
    }
    Err(Error::Setup(format!(
        "cannot show {0} itself: the run has a private {0} of its own; \
         name a directory below it",
        bind.path
    )))
}

/// The system directories a minimal root shows, read-only, where the host
/// has them; a symbolic link (as /bin is on merged-/usr systems) is made
/// again as the same link. The policy's `minimal_root_binds` add to them.
pub const SYSTEM: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"];

/// What of the host's /etc a minimal root shows: what the dynamic loader
/// (ld.so.cache), libc (users and groups, name service, localhost, time
/// zone), locales and TLS certificates read, and the configuration of the
/// system's alternatives, Python and Java ("*": every entry with that
/// prefix). Each is a mount of the run's: the list is short on purpose.
pub const SYSTEM_ETC: &[&str] = &[
    "ld.so.cache",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "resolv.conf",
    "localtime",
    "timezone",
    "locale.conf",
    "ssl",
    "pki",
    "crypto-policies",
    "alternatives",
    "python3*",
    "java*",
];

/// Where init builds a minimal root: on the host's /tmp of the run's
/// mount namespace (which no process of the run sees once it is entered).
const NEW_ROOT: &str = "/tmp";

/// Whether `name` is one of `list` ("*": every name with that prefix).
fn listed(list: &[&str], name: &str) -> bool {
    list.iter().any(|e| match e.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *e,
    })
}

/// How a minimal root shows an entry of a system directory: a link made
/// again as the same link, or a bind of a directory or a file.
#[derive(Debug)]
pub enum Shown {
    Link(std::path::PathBuf),
    Dir,
    File,
}

/// The entries of the host's / and /etc that a minimal root shows
/// (`SYSTEM`, `SYSTEM_ETC`), with their kinds and links' targets: found by
/// the supervisor before init's fork, while the run's network namespace is
/// being made (`main::run` waits for it anyway), so that init only makes
/// and binds them (`show_entries`). A fixed name is asked alone, as a link
/// first (/bin, /lib... are, on merged-/usr systems); a directory is read
/// (once, for the names and kinds of all) only for a "prefix*" entry:
/// reading /etc costs as much as some thirty look-ups. None for the
/// host's view.
pub fn system_entries(root: Root) -> Result<Vec<(String, Shown)>> {
    if root != Root::Minimal {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = SYSTEM.iter().map(|s| s.trim_start_matches('/')).collect();
    let mut found = listed_in("/", &names)?;
    found.extend(listed_in("/etc", SYSTEM_ETC)?);
    Ok(found)
}

/// The entries of the host's directory `dir` that `list` names. No
/// buffer is allocated and freed per entry but small strings: std's
/// read_link and the C library's directory stream each map and unmap one
/// under musl, and an unmap of the supervisor's memory while the network
/// thread runs stops the other CPU to flush its TLB (see
/// `sys::with_small_file`). That had cost a minimal root's run 0.1 ms.
fn listed_in(dir: &str, list: &[&str]) -> Result<Vec<(String, Shown)>> {
    let mut named: Vec<(String, u8)> = Vec::with_capacity(2 * list.len());
    if list.iter().any(|e| e.ends_with('*')) {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let host = nix::fcntl::open(dir, flags, Mode::empty())
            .context("cannot read a system directory")?;
        let mut buf = [0u8; 4096];
        loop {
            let len = sys::read_dir_records(host.as_fd(), &mut buf)
                .context("cannot read a system directory")?;
            if len == 0 {
                break;
            }
            let mut records = DirRecords(&buf[..len]);
            for (name, kind) in records.by_ref() {
                if let Some(name) = std::str::from_utf8(name).ok().filter(|n| listed(list, n)) {
                    named.push((name.to_string(), kind));
                }
            }
            // The kernel writes whole records: anything left is not one, and
            // the entries after it would be missed unseen.
            if !records.0.is_empty() {
                return Err(Error::Internal(format!("a record of {dir} cut short")));
            }
        }
    } else {
        named.extend(list.iter().map(|name| (name.to_string(), libc::DT_UNKNOWN)));
    }
    let mut found = Vec::with_capacity(named.len());
    for (name, kind) in named {
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        let shown = match kind {
            libc::DT_LNK | libc::DT_UNKNOWN => match sys::read_link(&c_text(&path)?) {
                Ok(target) => Some(Shown::Link(OsString::from_vec(target).into())),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => kind_of(&path),
                Err(_) => None,
            },
            libc::DT_DIR => Some(Shown::Dir),
            libc::DT_REG => Some(Shown::File),
            _ => None,
        };
        found.extend(shown.map(|shown| (path, shown)));
    }
    Ok(found)
}

/// The records getdents64 wrote (`sys::read_dir_records`): each entry's
/// name and type (a DT_ value), "." and ".." included.
struct DirRecords<'a>(&'a [u8]);

impl<'a> Iterator for DirRecords<'a> {
    type Item = (&'a [u8], u8);

    /// A record: inode (8 bytes), offset (8), its length (2), type (1),
    /// then the name and a NUL, padded. A record cut short ends the walk,
    /// and stays unread (`listed_in` refuses it).
    fn next(&mut self) -> Option<Self::Item> {
        let len = usize::from(u16::from_ne_bytes(self.0.get(16..18)?.try_into().ok()?));
        let record = self.0.get(..len).filter(|_| len > 19)?;
        let name = &record[19..];
        let name = &name[..name.iter().position(|&b| b == 0)?];
        let kind = record[18];
        self.0 = &self.0[len..];
        Some((name, kind))
    }
}

/// Shows `entries` (`system_entries`) at their host paths below `root` (at
/// `NEW_ROOT`), each made and bound in two system calls, or made as the
/// same link in one, where `show_system` walks and checks every path on
/// its own. Returns their host paths.
fn show_entries(root: &OwnedFd, entries: &[(String, Shown)]) -> Result<Vec<String>> {
    for (path, shown) in entries {
        let at = path.trim_start_matches('/');
        let made = match shown {
            Shown::Link(target) => {
                symlinkat(target.as_os_str(), root, at)
                    .context("cannot make a link of the minimal root")?;
                continue;
            }
            Shown::Dir => mkdirat(root, at, Mode::from_bits_truncate(0o755)),
            Shown::File => make_file(root, at, 0o644),
        };
        made.context("the minimal root")?;
        let onto = c_text(&format!("{NEW_ROOT}{path}"))?;
        mount(&c_text(path)?, &onto, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
            .context("cannot show a system directory")?;
    }
    Ok(entries.iter().map(|(path, _)| path.clone()).collect())
}

/// The kind of the host's `path` that is not a link: a directory, a file
/// or something else (`None`, as when it is missing).
fn kind_of(path: &str) -> Option<Shown> {
    match nix::sys::stat::lstat(path).ok()?.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Some(Shown::Dir),
        libc::S_IFREG => Some(Shown::File),
        _ => None,
    }
}

/// A path or mount options the helper made, for a system call.
fn c_text(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::Internal(format!("a NUL byte in {text}")))
}

/// Shows the host's `path` (root's, a fixed or the policy's path) at the
/// same place below `root` (at `NEW_ROOT`): a bind of it with the mounts
/// below it, read-only as the host's view is by now; a link as the same
/// link. Returns whether it exists.
fn show_system(root: &OwnedFd, ours: &[u64], path: &str) -> Result<bool> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).context("readlink")?;
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = mount_point(root, parent, ours, false)?;
        symlinkat(target.as_os_str(), &dir, name)
            .context("cannot make a link of the minimal root")?;
        return Ok(true);
    }
    if !(meta.is_dir() || meta.is_file()) {
        return Ok(false);
    }
    // Opened as the policy's paths are (`policy::open_named`): one whose
    // way holds a link another user could have put there is left out.
    let Ok(Some(source)) = crate::policy::open_named(path, false) else {
        return Ok(false);
    };
    // A bind of what was opened (one call; open_tree and move_mount are
    // two, and a namespace each): the mount point is ours, the source
    // root's.
    mount_point(root, path, ours, meta.is_file())?;
    let at = c_text(&format!("{NEW_ROOT}{path}"))?;
    let from = c_text(&format!("/proc/self/fd/{}", source.as_raw_fd()))?;
    mount(&from, &at, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
        .context("cannot show a system directory")?;
    Ok(true)
}

/// A minimal root instead of the host's view: a new tmpfs, read-only for
/// the run, with binds of the system directories (`SYSTEM`, the policy's
/// `minimal_root_binds`, `SYSTEM_ETC`), a /proc of the run's own, a private
/// /tmp, a minimal /dev (`fill_dev`) and the directories the request
/// shows at their own paths (`show_in_minimal`); nothing else. It becomes
/// the root of init and the target (`enter_root`): neither can reach a file
/// of the host outside these by any path.
pub fn minimal_root(plan: &Plan, copies: &[Option<OwnedFd>]) -> Result<()> {
    read_only_host()?;
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    // Not nodev: its /dev is a directory of it (`fill_dev`; a tmpfs of its
    // own would cost a mount). Read-only before the target starts, it holds
    // only what init made there.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let options = c"size=64k,nr_inodes=1024,mode=755";
    mount(c"tmpfs", &c_text(NEW_ROOT)?, Some(c"tmpfs"), flags, Some(options))
        .context("cannot mount the minimal root")?;
    let root = sys::open_dir_handle(NEW_ROOT).context("cannot open the root")?;
    let mut ours = vec![fstat(&root).context("fstat")?.st_dev];
    // /etc before the policy's binds: the root has none yet, and a bind of
    // the policy's below /etc (or of /etc itself) goes on top of it.
    mkdirat(&root, "etc", Mode::from_bits_truncate(0o755)).context("cannot make the root")?;
    let mut shown = show_entries(&root, &plan.system)?;
    for path in &plan.system_binds {
        if show_system(&root, &ours, path)? {
            shown.push(path.clone());
        }
    }
    for dir in ["proc", "tmp", "dev"] {
        mkdirat(&root, dir, Mode::from_bits_truncate(0o755)).context("cannot make the root")?;
    }
    let under = |dir: &str| c_text(&format!("{NEW_ROOT}/{dir}"));
    let proc_flags = hardened | MsFlags::MS_NOEXEC;
    mount(c"proc", &under("proc")?, Some(c"proc"), proc_flags, None)
        .context("cannot mount the run's /proc")?;
    let options = scratch_options(&plan.limits)?;
    mount(c"tmpfs", &under("tmp")?, Some(c"tmpfs"), hardened, Some(&options))
        .context("cannot mount the run's /tmp")?;
    ours.push(nix::sys::stat::stat(under("tmp")?.as_c_str()).context("stat")?.st_dev);
    fill_dev(&sys::open_dir_below(&root, "dev").context("/dev")?, &under("dev")?)?;
    let mut start = None;
    let mut attached_at: Vec<&str> = Vec::new();
    for (i, bind) in in_path_order(&plan.binds) {
        let attached =
            !covered(bind, &attached_at) && show_in_minimal(&root, &ours, &shown, bind, copies, i)?;
        if attached {
            attached_at.push(&bind.path);
        }
        if bind.cwd {
            let id = (!runs_own(&bind.path)).then_some(bind.id);
            start =
                Some(if attached { Start::Copy(i) } else { Start::Path(bind.path.clone(), id) });
        }
    }
    sys::mount_setattr(&root, false, sys::MOUNT_ATTR_RDONLY, 0)
        .context("cannot make the minimal root read-only")?;
    enter_root(&root)?;
    enter_start(start.or(Some(Start::Path("/".into(), None))), copies)
}

/// Makes `root` the root of init, and so of the target. A chroot rather
/// than pivot_root and a detach of the host's mounts, which costs a wait
/// for an RCU grace period (milliseconds): the host's mounts stay in the
/// namespace, out of reach (no process of the run has a descriptor there,
/// and the target cannot chroot).
fn enter_root(root: &OwnedFd) -> Result<()> {
    fchdir(root).context("cannot enter the minimal root")?;
    nix::unistd::chroot(".").context("chroot")
}

/// Shows one directory of the request in the minimal root, at its own
/// path; returns whether a copy was attached (a read-only one that a
/// system directory already shows is not). Its own /, /proc, /dev and
/// /tmp are the run's: they are never covered (a working directory there
/// starts the target at that path of the run's own).
fn show_in_minimal(
    root: &OwnedFd,
    ours: &[u64],
    shown: &[String],
    bind: &Bind,
    copies: &[Option<OwnedFd>],
    i: usize,
) -> Result<bool> {
    let own = runs_own(&bind.path);
    if own && bind.cwd {
        return Ok(false);
    }
    if own {
        return Err(Error::Setup(format!(
            "cannot show {}: the run has its own /, /proc, /dev and /tmp; name another directory",
            bind.path
        )));
    }
    if !bind.writable && shown.iter().any(|s| is_under(&bind.path, s)) {
        return Ok(false);
    }
    let onto = mount_point(root, &bind.path, ours, is_regular(&bind.dir))?;
    attach(copy_of(copies, i)?, &onto, &bind.path)?;
    Ok(true)
}

/// Whether a minimal root has its own directory at `path` (its /, /tmp,
/// /proc and /dev), in place of the host's.
fn runs_own(path: &str) -> bool {
    ["/proc", "/dev"].iter().any(|d| is_under(path, d)) || ["/", "/tmp"].contains(&path)
}

/// The host's devices a run may use, in every minimal /dev.
const DEVICES: &[&CStr] = &[c"null", c"zero", c"full", c"random", c"urandom"];

/// A minimal /dev at `dir` (a directory of the run's own view): a small
/// read-only tmpfs (not nodev) of its own, filled by `fill_dev`.
pub fn minimal_dev(dir: &CStr) -> Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(c"tmpfs", dir, Some(c"tmpfs"), flags, Some(c"size=4k,nr_inodes=64,mode=755"))
        .context("cannot mount the run's /dev")?;
    let dev = sys::open_dir_handle(dir).context("cannot open /dev")?;
    fill_dev(&dev, dir)?;
    sys::mount_setattr(&dev, false, sys::MOUNT_ATTR_RDONLY, 0)
        .context("cannot make the run's /dev read-only")
}

/// Fills the empty directory `dev` (at `dir`) of a minimal /dev, on a
/// tmpfs of the run's own that is not nodev and is made read-only before
/// the target starts: nodes of the host's null, zero, full, random and
/// urandom (`make_device`; binds of them where the helper may not make
/// nodes), a devpts of the run's own (`private_ptys`' limits) with ptmx,
/// and the usual links (fd, stdin, stdout, stderr, shm to /tmp). No other
/// device of the host, and no node a jail's owner made.
fn fill_dev(dev: &OwnedFd, dir: &CStr) -> Result<()> {
    for name in DEVICES {
        let host = c_text(&format!("/dev/{}", name.to_string_lossy()))?;
        if make_device(dev, name, &host)? {
            continue;
        }
        make_file(dev, *name, 0o666).context("/dev")?;
        let at = c_text(&format!("{}/{}", dir.to_string_lossy(), name.to_string_lossy()))?;
        mount(&host, &at, None, MsFlags::MS_BIND, None)
            .context("cannot put a device in the run's /dev")?;
    }
    mkdirat(dev, "pts", Mode::from_bits_truncate(0o755)).context("/dev/pts")?;
    let links = [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/tmp", "shm"),
    ];
    for (target, name) in links {
        symlinkat(target, dev, name).context("cannot make a link in the run's /dev")?;
    }
    mount_devpts(&c_text(&format!("{}/pts", dir.to_string_lossy()))?)
}

/// A node in the run's /dev with the device numbers and the permission
/// bits of the host's `host` when that is a character device itself (not a
/// link): no mount to make, nor to tear down at the end. `false` where the
/// helper may not make nodes (a container that withholds CAP_MKNOD) or the
/// host's is something else: then a bind of it, which shows it as it is.
fn make_device(dev: &OwnedFd, name: &CStr, host: &CStr) -> Result<bool> {
    let Ok(st) = nix::sys::stat::lstat(host) else {
        return Ok(false);
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Ok(false);
    }
    // With the permission bits in full: init's umask is 0 (`enter_namespaces`).
    let mode = Mode::from_bits_truncate(st.st_mode & 0o777);
    match nix::sys::stat::mknodat(dev, name, SFlag::S_IFCHR, mode, st.st_rdev) {
        Err(Errno::EPERM) => Ok(false),
        other => other.context("cannot make a device of the run's /dev").map(|()| true),
    }
}

/// A chroot run's /dev: the jail's own device nodes are never honoured
/// (its copy is nodev); if it has a /dev directory, the run's minimal /dev
/// (`minimal_dev`) covers it. The kernel mounts nothing on a detached
/// mount, so the jail's copy is first attached in the run's scratch tmpfs
/// (`scratch`, which only init sees), and the /dev is built there too
/// before it is moved onto the jail's: nothing is made in the jail.
pub fn jail_dev(jail: &OwnedFd, scratch: Option<&CStr>) -> Result<()> {
    let (Ok(jail_dev), Some(scratch)) = (sys::open_dir_below(jail, "dev"), scratch) else {
        return Ok(());
    };
    // The scratch place is a real directory (`scratch_places`).
    let place = sys::open_dir_handle(scratch).context("cannot open the scratch")?;
    for dir in ["jail", "dev"] {
        mkdirat(&place, dir, Mode::from_bits_truncate(0o700)).context("cannot stage /dev")?;
    }
    let at = sys::open_dir_below(&place, "jail").context("cannot stage the jail")?;
    sys::move_mount(jail, &at).context("cannot attach the chroot directory")?;
    minimal_dev(&c_text(&format!("{}/dev", scratch.to_string_lossy()))?)?;
    let dev = sys::open_dir_below(&place, "dev").context("/dev")?;
    sys::move_mount(&dev, &jail_dev).context("cannot put /dev in the chroot directory")
}

/// The chroot directory as a detached copy of its own mount: no mount below
/// it comes along, nothing set-id or device works in it, and a jail that is
/// not the caller's is read-only. The kernel refuses a directory of another
/// mount namespace.
pub fn jail_mount(jail: &Jail) -> Result<OwnedFd> {
    let copy = sys::clone_mount_of(&jail.dir).map_err(|e| {
        Error::setup("cannot use the chroot directory (is it in another mount namespace?)", e)
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
/// exec_dir from it). A directory under one of the run's own mounts (its
/// /tmp, /proc, /sys/fs/cgroup, ...) would still be the host's one, below
/// the mount: the run would see the host's processes or write the host's
/// /tmp through it. It must be the directory its path now names, or the
/// run is refused.
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
        "the working directory {} lies under a mount the run gets its own of (/tmp, /var/tmp, \
         /dev/shm, /run, /proc, /sys/fs/cgroup, /dev/pts): run safeexec from another directory",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listing of a directory through getdents64 (`DirRecords`, parsed
    /// in safe code) and readlink into the stack: every entry a prefix
    /// names, over several reads of the kernel's records, with its kind and
    /// a link's target; nothing else.
    #[test]
    fn a_listing_finds_each_named_entry_with_its_kind() {
        let dir = std::env::temp_dir().join(format!("safeexec-listing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Enough long names that the records fill more than one 4 KiB read.
        for i in 0..200 {
            std::fs::write(dir.join(format!("other-{i:0>40}")), "").unwrap();
        }
        std::fs::write(dir.join("file-a"), "").unwrap();
        std::fs::create_dir(dir.join("file-dir")).unwrap();
        std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", dir.join("file-link")).unwrap();
        std::fs::write(dir.join("exact"), "").unwrap();
        let mut found = listed_in(dir.to_str().unwrap(), &["file-*", "exact"]).unwrap();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let shown: Vec<(String, String)> =
            found.into_iter().map(|(path, shown)| (path, format!("{shown:?}"))).collect();
        assert_eq!(
            shown,
            [
                (at("exact"), "File".to_string()),
                (at("file-a"), "File".to_string()),
                (at("file-dir"), "Dir".to_string()),
                (at("file-link"), "Link(\"/usr/share/zoneinfo/UTC\")".to_string()),
            ]
        );
        // Fixed names alone, each looked up: a link, and a missing name.
        let fixed = listed_in(dir.to_str().unwrap(), &["file-link", "missing"]).unwrap();
        assert_eq!(fixed.len(), 1);
        assert!(
            matches!(&fixed[0].1, Shown::Link(t) if t.as_os_str() == "/usr/share/zoneinfo/UTC")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One record as getdents64 writes it: `len` bytes in all.
    fn record(name: &[u8], kind: u8, len: u16) -> Vec<u8> {
        let mut r = vec![0u8; 16];
        r.extend_from_slice(&len.to_ne_bytes());
        r.push(kind);
        r.extend_from_slice(name);
        r.resize(usize::from(len), 0);
        r
    }

    /// Whole records are walked; one cut short (or claiming less than its
    /// header) stops the walk and is left unread, for `listed_in` to
    /// refuse; nothing panics, whatever the bytes.
    #[test]
    fn directory_records_are_read_whole_or_left() {
        let mut buf = record(b"usr", libc::DT_DIR, 24);
        buf.extend(record(b"etc", libc::DT_LNK, 24));
        let mut walk = DirRecords(&buf);
        let seen: Vec<_> = walk.by_ref().collect();
        assert_eq!(seen, [(&b"usr"[..], libc::DT_DIR), (&b"etc"[..], libc::DT_LNK)]);
        assert!(walk.0.is_empty());
        for cut in 1..buf.len() {
            let mut walk = DirRecords(&buf[..cut]);
            let whole = walk.by_ref().count();
            assert_eq!(whole, cut / 24, "cut at {cut}");
            assert_eq!(walk.0.len(), cut % 24, "cut at {cut}");
        }
        let short = record(b"x", libc::DT_REG, 19);
        let mut walk = DirRecords(&short);
        assert_eq!(walk.by_ref().count(), 0);
        assert!(!walk.0.is_empty());
    }
}
