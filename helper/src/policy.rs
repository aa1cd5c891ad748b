//! Invariants 3 and 4 (the policy side): the root-owned policy decides ids,
//! maxima, network sharing and chroot roots; the request only chooses within
//! it. The policy's path is compiled in: never taken from the caller, the
//! environment or the helper's own location, so a hardlinked copy of the
//! helper reads the same file.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, stat, Mode, SFlag};
use nix::sys::statvfs::{fstatvfs, FsFlags, Statvfs};
use nix::unistd::{Gid, Uid};
use shared::limits::{LimitSpec, TABLE};
use shared::{Limit, Limits, Request, Root};

use crate::cgroup::{self, CgroupRule};
use crate::error::{Context, Error, Result};
use crate::harden::Caller;
use crate::sys;
use crate::uids::Lease;

pub const POLICY_PATH: &str = match option_env!("SAFEEXEC_POLICY_PATH") {
    Some(path) => path,
    None => "/etc/safeexec/policy",
};

/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GidRule {
    /// Each run's gid equals its uid.
    PerRun,
    Fixed(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChrootRoots {
    Any,
    None,
    /// Directories (dev, ino) at or under which a chroot root must lie.
    Under(Vec<(u64, u64)>),
}

/// The largest value of each limit a caller may ask for, indexed by
/// `shared::Limit`; `None`: unlimited.
pub type Maxima = [Option<u64>; Limit::COUNT];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub uid_base: u32,
    pub uid_count: u32,
    pub gid: GidRule,
    pub allow_share_net: bool,
    /// Whether a run that used no network hands its namespace on to a
    /// later run (`netpool`).
    pub keep_networks: bool,
    /// Whether a caller may keep the host's /tmp and /var/tmp.
    pub allow_host_tmp: bool,
    pub chroot_roots: ChrootRoots,
    /// Directories (dev, ino) at or under which a chroot root is allowed
    /// whoever owns it, and shown writable (still nosuid and nodev).
    pub writable_chroot_roots: Vec<(u64, u64)>,
    pub max: Maxima,
    pub min_niceness: i32,
    /// Whether runs get cgroups of their own.
    pub cgroup: CgroupRule,
    /// Memory cgroups on the machine past which a run gets none.
    pub max_memory_cgroups: u64,
    /// Host directories every run may write (their files' permissions
    /// still apply).
    pub writable_dirs: Vec<String>,
    /// Cap of a run's memory cgroup limit when the caller sets none, KiB;
    /// `None`: half the machine's memory.
    pub max_run_memory: Option<u64>,
    /// The root of runs that do not ask for one.
    pub default_root: Root,
    /// Whether a run may see the host's file system (`--root host`).
    pub allow_host_root: bool,
    /// Host paths a minimal root shows read-only besides `mounts::SYSTEM`.
    pub minimal_root_binds: Vec<String>,
    /// Requests of one caller (its uid) at once, from the helper's start
    /// to the end of its run (`uids::take_caller_slot`).
    pub max_runs_per_caller: u32,
}

impl Default for Policy {
    /// Used when no policy file exists; the same values as the packaged file.
    fn default() -> Self {
        Policy {
            // Just past systemd's container range, far below its foreign
            // range; holds pid_max's largest value.
            uid_base: 0x7000_0000,
            uid_count: 4_194_304,
            gid: GidRule::PerRun,
            allow_share_net: false,
            keep_networks: true,
            allow_host_tmp: true,
            chroot_roots: ChrootRoots::Any,
            writable_chroot_roots: Vec::new(),
            max: [
                Some(3_600_000),  // cpu, ms
                Some(86_400_000), // wall, ms
                Some(86_400_000), // grace: capped by max_wall
                Some(41_943_039), // mem, KiB
                None,             // rss
                Some(4_194_303),  // stack, KiB
                Some(4_194_303),  // core, KiB
                Some(4_194_303),  // fsize, KiB
                Some(65_535),     // nproc
                Some(1024),       // nfile
                None,             // output
            ],
            min_niceness: 0,
            cgroup: CgroupRule::Auto,
            max_memory_cgroups: 32768,
            max_run_memory: None,
            writable_dirs: Vec::new(),
            default_root: Root::Host,
            allow_host_root: true,
            minimal_root_binds: Vec::new(),
            max_runs_per_caller: 256,
        }
    }
}

/// Every directory above the policy must be root's and writable by nobody
/// else (or sticky, like /tmp, where nobody else may rename root's
/// entries): otherwise someone could swap the file, or its directory.
fn ancestors_are_roots() -> Result<()> {
    let mut dir = std::path::Path::new(POLICY_PATH).parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() {
            break;
        }
        let meta = match std::fs::symlink_metadata(d) {
            Ok(meta) => meta,
            // Missing: then so is the policy (defaults hold), and only the
            // owner of an existing parent, checked next, could create it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                dir = d.parent();
                continue;
            }
            Err(e) => return Err(Error::Policy(format!("cannot stat {}: {e}", d.display()))),
        };
        let sticky = meta.mode() & 0o1000 != 0;
        if !meta.file_type().is_dir() || meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
            return Err(Error::Policy(format!(
                "{} (above the policy) must be a directory owned by root and not writable by group or others",
                d.display()
            )));
        }
        dir = d.parent();
    }
    Ok(())
}

/// Loads the policy; a missing file means the defaults. The file must be a
/// regular file owned by root and writable by nobody else, in directories
/// that are root's too.
pub fn load() -> Result<Policy> {
    ancestors_are_roots()?;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(POLICY_PATH)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut policy = Policy::default();
            policy.cap_processes();
            return Ok(policy);
        }
        Err(e) => return Err(Error::Policy(format!("cannot open {POLICY_PATH}: {e}"))),
    };
    let meta = file.metadata().context("cannot stat the policy")?;
    if !meta.file_type().is_file() {
        return Err(Error::Policy(format!("{POLICY_PATH} is not a regular file")));
    }
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(Error::Policy(format!(
            "{POLICY_PATH} must be owned by root and not writable by group or others"
        )));
    }
    // The packaged policy, comments and all, is about 6 KiB.
    let parsed = crate::sys::with_small_file::<8192, _>(file.take(MAX_POLICY_BYTES + 1), |bytes| {
        if bytes.len() as u64 > MAX_POLICY_BYTES {
            return Err(format!("{POLICY_PATH} is too large"));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("cannot read {POLICY_PATH}: it is not UTF-8"))?;
        parse(text).map_err(|msg| format!("{POLICY_PATH}: {msg}"))
    });
    let mut policy = parsed
        .map_err(|e| Error::Policy(format!("cannot read {POLICY_PATH}: {e}")))?
        .map_err(Error::Policy)?;
    policy.cap_processes();
    Ok(policy)
}

fn boolean(value: &str) -> std::result::Result<bool, String> {
    match value {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(format!("'{value}' is not true or false")),
    }
}

fn parse_max(value: &str, scale: f64) -> std::result::Result<Option<u64>, String> {
    if value == "unlimited" {
        return Ok(None);
    }
    let n: f64 = value.parse().map_err(|_| format!("'{value}' is not a number"))?;
    if !n.is_finite() || n < 0.0 || n * scale > 1e15 {
        return Err(format!("'{value}' is out of range"));
    }
    Ok(Some((n * scale).round() as u64))
}

/// Parses the policy text: `key = value` lines, `#` comments; unknown keys
/// are errors so that a typo never silently loosens the policy.
pub fn parse(text: &str) -> std::result::Result<Policy, String> {
    let mut p = Policy::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or(format!("line {}: expected key = value", n + 1))?;
        match p.set(key, value) {
            Ok(true) => {}
            Ok(false) => return Err(format!("line {}: unknown key '{key}'", n + 1)),
            Err(e) => return Err(format!("line {}: {key}: {e}", n + 1)),
        }
    }
    p.ids_are_sandbox_ids()?;
    if p.default_root == Root::Host && !p.allow_host_root {
        return Err("default_root = host needs allow_host_root = true".into());
    }
    Ok(p)
}

impl Policy {
    /// Sets one key of the policy file from its value; `Ok(false)`: no
    /// such key.
    fn set(&mut self, key: &str, value: &str) -> std::result::Result<bool, String> {
        let int = |v: &str| v.parse::<u32>().map_err(|_| format!("'{v}' is not a number"));
        match key {
            "uid_base" => self.uid_base = int(value)?,
            "uid_count" => self.uid_count = int(value)?,
            "gid" if value == "per-run" => self.gid = GidRule::PerRun,
            "gid" => self.gid = GidRule::Fixed(int(value)?),
            "allow_share_net" => self.allow_share_net = boolean(value)?,
            "allow_host_tmp" => self.allow_host_tmp = boolean(value)?,
            "keep_networks" => self.keep_networks = boolean(value)?,
            "cgroup" => self.cgroup = cgroup::parse_rule(value)?,
            "max_memory_cgroups" => self.max_memory_cgroups = u64::from(int(value)?),
            "max_run_memory" if value == "auto" => self.max_run_memory = None,
            "max_run_memory" => self.max_run_memory = parse_max(value, 1.0)?.or(Some(u64::MAX)),
            "chroot_roots" => self.chroot_roots = parse_roots(value)?,
            "writable_chroot_roots" => self.writable_chroot_roots = parse_writable_roots(value)?,
            "writable_dirs" => self.writable_dirs = absolute_paths(value)?,
            "default_root" => self.default_root = parse_root(value)?,
            "allow_host_root" => self.allow_host_root = boolean(value)?,
            "minimal_root_binds" => self.minimal_root_binds = absolute_paths(value)?,
            "max_runs_per_caller" => {
                self.max_runs_per_caller = int(value)?;
                if self.max_runs_per_caller == 0 {
                    return Err("max_runs_per_caller must be at least 1".into());
                }
            }
            k if k.starts_with("max_") && TABLE.iter().any(|r| r.policy_key == k) => {
                for spec in TABLE.iter().filter(|r| r.policy_key == k) {
                    self.max[spec.limit as usize] = parse_max(value, spec.policy_scale)?;
                }
            }
            "min_niceness" => {
                let n = value.parse().ok().filter(|n| (0..=19).contains(n));
                self.min_niceness = n.ok_or("must be 0 to 19")?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// One run may hold at most a quarter of the machine's pids, whatever
    /// the policy file says (its default, 65535, is twice a common
    /// pid_max): the rest of the machine must still be able to fork.
    fn cap_processes(&mut self) {
        let pid_max =
            crate::sys::with_proc("/proc/sys/kernel/pid_max", |t| t.trim().parse::<u64>());
        let quarter = pid_max.ok().and_then(|n| n.ok()).map_or(8192, |n| n / 4);
        let max = &mut self.max[Limit::Nproc as usize];
        *max = Some(max.map_or(quarter, |m| m.min(quarter)));
    }

    /// Sandbox ids must never reach the system's or the users' ranges, nor
    /// wrap around to uid 0 or the special (uid_t)-1.
    fn ids_are_sandbox_ids(&self) -> std::result::Result<(), String> {
        let end = u64::from(self.uid_base) + u64::from(self.uid_count);
        if self.uid_base < 65_536 || self.uid_count == 0 || end > i32::MAX as u64 {
            return Err(
                "uid_base must be at least 65536, and uid_base + uid_count at most 2^31-1".into()
            );
        }
        match self.gid {
            GidRule::Fixed(g) if g < 1000 => Err(format!("gid {g} is a system group")),
            _ => Ok(()),
        }
    }
}

fn absolute_paths(value: &str) -> std::result::Result<Vec<String>, String> {
    let paths: Vec<String> = value.split_whitespace().map(str::to_string).collect();
    match paths.iter().find(|p| !p.starts_with('/')) {
        Some(p) => Err(format!("'{p}' is not an absolute path")),
        None => Ok(paths),
    }
}

fn parse_root(value: &str) -> std::result::Result<Root, String> {
    match value {
        "host" => Ok(Root::Host),
        "minimal" => Ok(Root::Minimal),
        _ => Err(format!("'{value}' is not host or minimal")),
    }
}

fn parse_roots(value: &str) -> std::result::Result<ChrootRoots, String> {
    match value {
        "any" => Ok(ChrootRoots::Any),
        "none" | "" => Ok(ChrootRoots::None),
        list => directory_ids(list).map(ChrootRoots::Under),
    }
}

/// The (device, inode) of each directory of a space-separated list of
/// absolute paths. A directory that does not exist allows nothing; it is
/// not an error.
fn directory_ids(list: &str) -> std::result::Result<Vec<(u64, u64)>, String> {
    let mut ids = Vec::new();
    for path in absolute_paths(list)? {
        // One that may not be taken allows nothing, as a missing one.
        if let Ok(Some(dir)) = open_named(&path, true) {
            let st = fstat(&dir).map_err(|e| format!("cannot stat {path}: {e}"))?;
            ids.push((st.st_dev, st.st_ino));
        }
    }
    Ok(ids)
}

/// Opens a path the policy names (`writable_dirs`, `chroot_roots`,
/// `writable_chroot_roots`, `minimal_root_binds`) as a handle (O_PATH),
/// walked from / one component at a time as the kernel would, but
/// following a symbolic link only where root made it and only root may
/// change it: a link of root's, in a directory of root's that group and
/// others may not write (or that is sticky). Followed as the kernel does,
/// a link that the owner of a directory on the way put there (a judge's
/// account, say, where the admin keeps a scratch directory) sent root's
/// bind to a directory of another user's that the caller may not even
/// enter, shown to the run writable (a review of the eleventh round).
/// Every other way to put a directory there needs write access to it
/// (rename) or privilege (a mount). `None`: it does not exist; an error:
/// the way holds a link it may not take, or what is there is not a
/// directory (`dir`) or neither a directory nor a file. Callers leave such
/// a path out, as a missing one: refused, the owner of a directory on the
/// way would refuse every caller's runs (the round's sixth review).
pub fn open_named(path: &str, dir: bool) -> std::result::Result<Option<OwnedFd>, String> {
    use nix::fcntl::{openat, readlinkat, AtFlags};
    use nix::sys::stat::fstatat;
    let refuse = |why: &str| format!("{path}: {why}");
    let mut at = sys::open_dir_handle("/").map_err(|e| refuse(&format!("cannot open /: {e}")))?;
    // The components left to walk, the next last.
    let mut left: Vec<String> = Vec::new();
    let push = |left: &mut Vec<String>, text: &str| {
        left.extend(text.split('/').filter(|c| !c.is_empty() && *c != ".").rev().map(String::from));
    };
    push(&mut left, path);
    let mut links = 0;
    while let Some(name) = left.pop() {
        let st = match fstatat(&at, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(refuse(&format!("cannot stat {name}: {e}"))),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            let here = fstat(&at).map_err(|e| refuse(&e.to_string()))?;
            let only_root =
                here.st_uid == 0 && (here.st_mode & 0o022 == 0 || here.st_mode & 0o1000 != 0);
            links += 1;
            if st.st_uid != 0 || !only_root || links > 40 {
                return Err(refuse(&format!(
                    "the symbolic link {name} on the way is not root's, in a directory only root may change"
                )));
            }
            let target = readlinkat(&at, name.as_str()).map_err(|e| refuse(&e.to_string()))?;
            let target = target.to_str().ok_or_else(|| refuse("a link that is not UTF-8"))?;
            if target.starts_with('/') {
                at = sys::open_dir_handle("/").map_err(|e| refuse(&e.to_string()))?;
            }
            push(&mut left, target);
            continue;
        }
        let last = left.is_empty();
        let mut flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if !last || dir {
            flags |= OFlag::O_DIRECTORY;
        }
        // Not a link a moment ago: one swapped in since fails here.
        at = openat(&at, name.as_str(), flags, Mode::empty())
            .map_err(|e| refuse(&format!("cannot open {name}: {e}")))?;
        if last {
            let kind =
                SFlag::from_bits_truncate(fstat(&at).map_err(|e| refuse(&e.to_string()))?.st_mode)
                    & SFlag::S_IFMT;
            if kind != SFlag::S_IFDIR && (dir || kind != SFlag::S_IFREG) {
                return Err(refuse("not a directory"));
            }
        }
    }
    Ok(Some(at))
}

/// Writable jails: as `chroot_roots`' list, but never / (the whole host's
/// file system, writable).
fn parse_writable_roots(value: &str) -> std::result::Result<Vec<(u64, u64)>, String> {
    let roots = directory_ids(value)?;
    let slash = stat("/").map_err(|e| format!("cannot stat /: {e}"))?;
    if roots.contains(&(slash.st_dev, slash.st_ino)) {
        return Err("/ cannot be a writable jail".into());
    }
    Ok(roots)
}

/// A request that passed the policy, with everything execve needs.
#[derive(Debug)]
pub struct Plan {
    pub uid: Uid,
    pub gid: Gid,
    pub program: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub exec_dir: Option<CString>,
    pub limits: Limits,
    /// The limit of the run's memory cgroup (`run_memory_kib`).
    pub memory_kib: Option<u64>,
    pub niceness: i32,
    /// The host's network: asked and allowed.
    pub share_net: bool,
    pub host_tmp: bool,
    pub chroot: Option<Jail>,
    /// The file system outside a chroot directory (`Root::Host` with one).
    pub root: Root,
    /// Directories shown at their own path besides the root's own: the
    /// ones the run may write besides its scratch mounts, and the ones the
    /// caller could read and names.
    pub binds: Vec<Bind>,
    /// Host paths a minimal root shows read-only besides `mounts::SYSTEM`.
    pub system_binds: Vec<String>,
    /// What a minimal root shows of `mounts::SYSTEM` and
    /// `mounts::SYSTEM_ETC`, found before init's fork
    /// (`mounts::system_entries`); empty until then.
    pub system: Vec<(String, crate::mounts::Shown)>,
    /// The target's seccomp filter (`seccomp::filter`), built before
    /// init's fork for `sessions`; empty until then (the kernel refuses an
    /// empty one).
    pub filter: Vec<crate::sys::SockFilter>,
    /// Whether `filter` lets the target start sessions: where it was
    /// built for a CPU cgroup the run did not get, the target builds its
    /// own (`target::prepare`).
    pub sessions: crate::seccomp::Sessions,
    /// The caller's file mode creation mask, the target's (`harden::Caller`).
    pub umask: Mode,
}

/// A directory of the host shown to the run at its own path: init copies
/// its mount from this descriptor (never from a path), and attaches the
/// copy in the run's view at `path`.
#[derive(Debug)]
pub struct Bind {
    pub dir: OwnedFd,
    /// Where it is on the host (from the descriptor); absolute.
    pub path: String,
    pub id: (u64, u64),
    pub writable: bool,
    /// The caller's working directory, where the target starts.
    pub cwd: bool,
}

/// The directory descriptors of a request (`main::directory_fds`).
#[derive(Debug, Default)]
pub struct DirFds {
    pub chroot: Option<OwnedFd>,
    pub bind_rw: Vec<OwnedFd>,
    pub bind: Vec<OwnedFd>,
    pub cwd: Option<OwnedFd>,
}

/// A chroot directory that passed the policy.
#[derive(Debug)]
pub struct Jail {
    pub dir: OwnedFd,
    /// Shown read-only to the run (it is not the caller's, nor under a
    /// writable root of the policy).
    pub read_only: bool,
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Refused(format!("{what} contains a NUL byte")))
}

fn c_strings(what: &str, list: &[String]) -> Result<Vec<CString>> {
    list.iter().map(|s| c_string(what, s)).collect()
}

/// Checks one limit against its maximum (a row of `shared::limits::TABLE`).
fn within(spec: &LimitSpec, asked: Option<u64>, max: Option<u64>) -> Result<()> {
    let (name, unit) = (spec.name, spec.unit);
    match (asked, max) {
        (_, None) => Ok(()),
        (None, Some(max)) => Err(Error::Refused(format!(
            "no {name} limit is over the policy's maximum of {max}{unit}"
        ))),
        (Some(v), Some(max)) if v > max => Err(Error::Refused(format!(
            "{name} limit of {v}{unit} is over the policy's maximum of {max}{unit}"
        ))),
        _ => Ok(()),
    }
}

impl Policy {
    /// Checks every field of the request against the policy, then takes
    /// the run's uid index (`take_uid`: `uids::allocate`) and derives the
    /// sandbox ids from it (invariant 3, `uids`). The index is taken last,
    /// once nothing of the request can be refused: a refused request never
    /// moves the counter, which otherwise a caller could turn through the
    /// whole pool with requests that run nothing, and bring an earlier
    /// run's uid back, with what it left (a review of the twelfth round
    /// did so at a thousand a second).
    pub fn check(
        &self,
        request: Request,
        caller: &Caller,
        mut dirs: DirFds,
        take_uid: impl FnOnce() -> Result<Lease>,
    ) -> Result<(Plan, Lease)> {
        let (umask, niceness, caller) = (caller.umask, caller.niceness, caller.uid);
        self.check_limits(&request.limits)?;
        self.check_choices(&request)?;
        let chroot = match (request.chroot, dirs.chroot.take()) {
            (false, _) => None,
            (true, None) => {
                return Err(Error::Refused("chroot asked but no directory passed".into()))
            }
            (true, Some(fd)) => Some(self.check_chroot(fd, caller)?),
        };
        if chroot.is_some() && !(dirs.bind_rw.is_empty() && dirs.bind.is_empty()) {
            // The jail shows its own tree only: a bind would do nothing.
            return Err(Error::Refused(
                "--bind and --bind-rw do not apply inside a chroot directory".into(),
            ));
        }
        let root = self.root_of(&request, chroot.is_some())?;
        let program = c_string("the program path", &request.program)?;
        let argv = c_strings("an argument", &request.argv)?;
        let env = c_strings("an environment entry", &request.env)?;
        let exec_dir = request.exec_dir.as_deref().map(|d| c_string("exec_dir", d)).transpose()?;
        let binds = if chroot.is_some() { Vec::new() } else { self.binds(caller, dirs)? };
        let lease = take_uid()?;
        let (uid, gid) = self.ids_of(lease.index)?;
        let plan = Plan {
            uid,
            gid,
            program,
            argv,
            env,
            exec_dir,
            memory_kib: self.run_memory_kib(&request.limits),
            limits: request.limits,
            // Never better than the caller's own (`Caller::niceness`).
            niceness: request.niceness.max(niceness),
            // Not granted: the run's own network, as every run has (the
            // original tool's callers ask for it only to talk over loopback).
            share_net: request.share_net && self.allow_share_net,
            host_tmp: request.host_tmp,
            binds,
            system_binds: self.minimal_root_binds.clone(),
            system: Vec::new(),
            filter: Vec::new(),
            sessions: crate::seccomp::Sessions::Refused,
            root,
            chroot,
            umask,
        };
        Ok((plan, lease))
    }

    /// The root of the run: the one asked, or the policy's default; the
    /// host's only if the policy allows it. A chroot directory is its own
    /// root, in the host's view.
    fn root_of(&self, request: &Request, chroot: bool) -> Result<Root> {
        let refuse = |msg: &str| Err(Error::Refused(msg.into()));
        match request.root.unwrap_or(self.default_root) {
            _ if chroot => Ok(Root::Host),
            Root::Host if !self.allow_host_root => refuse(
                "the policy allows only --root minimal (the host's file system is not shown)",
            ),
            Root::Minimal if request.host_tmp => {
                refuse("--host-tmp does not apply to a minimal root (its /tmp is its own)")
            }
            root => Ok(root),
        }
    }

    /// Every limit within the policy's maximum (one walk of the table).
    fn check_limits(&self, limits: &Limits) -> Result<()> {
        for (spec, asked) in limits.iter() {
            within(spec, asked, self.max[spec.limit as usize])?;
        }
        if limits.get(Limit::Cpu) == Some(0) || limits.get(Limit::Wall) == Some(0) {
            return Err(Error::Refused("time limits must be more than 0".into()));
        }
        Ok(())
    }

    /// The request's other choices: niceness, /tmp, argv. The environment
    /// is the target's own business: any entries without a NUL byte
    /// (`Plan`), an entry without `=` too, as the original passed.
    fn check_choices(&self, request: &Request) -> Result<()> {
        let refuse = |msg: String| Err(Error::Refused(msg));
        if !(self.min_niceness..=19).contains(&request.niceness) {
            let (n, min) = (request.niceness, self.min_niceness);
            return refuse(format!("niceness {n} is outside {min}..19"));
        }
        if request.host_tmp && !self.allow_host_tmp {
            return refuse("the policy does not allow the host's /tmp".into());
        }
        if request.argv.is_empty() || request.program.is_empty() {
            return refuse("no program to run (empty argv)".into());
        }
        Ok(())
    }

    /// The limit of the run's memory cgroup, which also holds the kernel's
    /// memory the run makes it use (socket buffers, pipes, memfds): the
    /// caller's `--rss`, or else what its processes may map together (each
    /// up to its address-space limit) plus its scratch tmpfs; either at
    /// most the policy's `max_run_memory` (half the machine's memory by
    /// default).
    fn run_memory_kib(&self, limits: &Limits) -> Option<u64> {
        // No process or address-space limit derives none: the cap alone.
        let asked = limits.get(Limit::Rss).or_else(|| {
            let processes = limits.get(Limit::Nproc)?.saturating_add(1);
            let derived = processes.saturating_mul(limits.get(Limit::Mem)?);
            Some(derived.saturating_add(crate::mounts::scratch_kib(limits)))
        });
        let asked = asked.unwrap_or(u64::MAX);
        let half = || {
            let total = |text: &str| {
                text.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok()
                })
            };
            let kib = crate::sys::with_proc("/proc/meminfo", total).ok().flatten();
            kib.map_or(u64::MAX, |k: u64| k / 2)
        };
        Some(asked.min(self.max_run_memory.unwrap_or_else(half)))
    }

    /// What the run is shown at its own path: the policy's writable
    /// directories that exist (the policy is root's word), the directories
    /// the caller grants (`caller_grant`) or could read (`caller_readable`),
    /// and the working directory (`working_directory`).
    fn binds(&self, caller: Uid, dirs: DirFds) -> Result<Vec<Bind>> {
        let mut binds = Vec::new();
        for path in &self.writable_dirs {
            // Left out if missing, on a read-only mount, or not to be taken.
            let named = open_named(path, true).ok().flatten();
            if let Some(dir) = named.filter(|dir| !read_only(&fstatvfs(dir))) {
                binds.extend(bind_of(dir, true).ok());
            }
        }
        for dir in dirs.bind_rw {
            binds.push(caller_grant(dir, caller)?);
        }
        for dir in dirs.bind {
            binds.push(caller_readable(dir)?);
        }
        if let Some(dir) = dirs.cwd {
            binds.push(working_directory(dir, caller)?);
        }
        Ok(binds)
    }

    /// The sandbox ids: uid = base + the run's index (`uids::allocate`,
    /// below `uid_count`); gid per the policy's rule.
    fn ids_of(&self, index: u32) -> Result<(Uid, Gid)> {
        if index >= self.uid_count {
            return Err(Error::Internal(format!(
                "uid index {index} is outside the policy's range"
            )));
        }
        let uid = self.uid_base + index;
        let gid = match self.gid {
            GidRule::PerRun => uid,
            GidRule::Fixed(g) => g,
        };
        Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
    }

    /// The chroot directory was opened by the frontend as the caller; here it
    /// must be a directory and either under a root the policy lists as
    /// writable (`writable_chroot_roots`: a jail the admin built for its
    /// runs to write in), the caller's own (`any`: then all it holds is the
    /// caller's to grant, and the host's directories such as / or /var,
    /// with their /tmp and /run, are refused), or under a root the policy
    /// lists (`chroot_roots`).
    fn check_chroot(&self, dir: OwnedFd, caller: Uid) -> Result<Jail> {
        let st = fstat(&dir).context("fstat of the chroot directory")?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
            return Err(Error::Refused("the chroot descriptor is not a directory".into()));
        }
        if under_one_of(&dir, &self.writable_chroot_roots)? {
            return Ok(Jail { dir, read_only: false });
        }
        // A jail that is not the caller's is shown read-only, so that no run
        // leaves anything in it for the next.
        let jail = Jail { read_only: st.st_uid != caller.as_raw(), dir };
        match &self.chroot_roots {
            ChrootRoots::Any if !jail.read_only => Ok(jail),
            ChrootRoots::Any => Err(Error::Refused(
                "the chroot directory must belong to the caller \
                 (or lie under a root the policy lists: chroot_roots, or \
                 writable_chroot_roots for a jail its runs may write)"
                    .into(),
            )),
            ChrootRoots::None => {
                Err(Error::Refused("the policy allows no chroot directory".into()))
            }
            ChrootRoots::Under(roots) if under_one_of(&jail.dir, roots)? => Ok(jail),
            ChrootRoots::Under(_) => Err(Error::Refused(
                "the chroot directory is not under a root the policy allows".into(),
            )),
        }
    }
}

/// Whether directory `dir` is one of `roots` (device, inode) or below one.
/// The walk up uses "..", never a path the caller named.
fn under_one_of(dir: &OwnedFd, roots: &[(u64, u64)]) -> Result<bool> {
    if roots.is_empty() {
        return Ok(false);
    }
    let st = fstat(dir).context("fstat")?;
    let mut here: OwnedFd = dir.try_clone().context("dup")?;
    let mut id = (st.st_dev, st.st_ino);
    loop {
        if roots.contains(&id) {
            return Ok(true);
        }
        let up =
            sys::open_dir_below(&here, "..").context("walking up from the chroot directory")?;
        let up_st = fstat(&up).context("fstat")?;
        if (up_st.st_dev, up_st.st_ino) == id {
            return Ok(false); // the root of the file system
        }
        id = (up_st.st_dev, up_st.st_ino);
        here = up;
    }
}

/// A directory shown at its own path: where the descriptor says it is. A
/// read-only one may be a regular file (a program straight under /tmp).
fn bind_of(dir: OwnedFd, writable: bool) -> Result<Bind> {
    let st = fstat(&dir).context("fstat of a directory to show")?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFDIR && (writable || kind != SFlag::S_IFREG) {
        return Err(Error::Refused("a directory to show is not a directory".into()));
    }
    let path = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .context("cannot name a directory to show")?;
    let path = path.to_string_lossy().into_owned();
    if !path.starts_with('/') || path.ends_with(" (deleted)") {
        return Err(Error::Refused(format!("the directory {path} is not on a path of the host")));
    }
    Ok(Bind { dir, path, id: (st.st_dev, st.st_ino), writable, cwd: false })
}

/// A directory the caller grants the run to write (`--bind-rw`), opened by
/// the frontend as the caller: it must be a directory of the caller's own
/// and not a shared place.
fn caller_grant(dir: OwnedFd, caller: Uid) -> Result<Bind> {
    let bind = bind_of(dir, true)?;
    let st = fstat(&bind.dir).context("fstat of a writable directory")?;
    if st.st_uid != caller.as_raw() || st.st_mode & 0o1002 == 0o1002 {
        return Err(Error::Refused(format!(
            "--bind-rw {}: a writable directory must be a directory of the caller's own",
            bind.path
        )));
    }
    if read_only(&fstatvfs(&bind.dir)) {
        return Err(Error::Refused(format!("--bind-rw {}: it is on a read-only mount", bind.path)));
    }
    Ok(bind)
}

/// A directory the run may read (`--bind`, the program's, exec_dir): the
/// frontend opened it for reading as the caller, so the caller could list
/// it; a descriptor opened with O_PATH proves nothing and is refused.
fn caller_readable(dir: OwnedFd) -> Result<Bind> {
    let flags = nix::fcntl::fcntl(&dir, nix::fcntl::FcntlArg::F_GETFL).context("fcntl")?;
    if OFlag::from_bits_truncate(flags).contains(OFlag::O_PATH) {
        return Err(Error::Refused("a directory to show must be opened for reading".into()));
    }
    bind_of(dir, false)
}

/// The caller's working directory, opened for reading by the frontend: it
/// must be the helper's own (the caller's). The run may write there if the
/// caller owns it and it is not a shared place (sticky and writable by
/// others, like /tmp), as the original tool's callers expect (the
/// directory's own permissions still apply).
fn working_directory(dir: OwnedFd, caller: Uid) -> Result<Bind> {
    let here = stat(".").context("cannot stat the working directory")?;
    let mut bind = caller_readable(dir)?;
    if bind.id != (here.st_dev, here.st_ino) {
        return Err(Error::Refused(
            "the working directory's descriptor is another directory".into(),
        ));
    }
    let shared = here.st_mode & 0o1002 == 0o1002;
    bind.writable = here.st_uid == caller.as_raw() && !shared && !read_only(&fstatvfs(&bind.dir));
    bind.cwd = true;
    Ok(bind)
}

/// Whether a directory's mount is read-only for everyone (then the run
/// may not write it either: its copy stays read-only). Unknown: read-only.
fn read_only(st: &nix::Result<Statvfs>) -> bool {
    st.as_ref().map_or(true, |st| st.flags().contains(FsFlags::ST_RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaged_policy_equals_the_defaults() {
        let text = include_str!("../../packaging/policy");
        assert_eq!(parse(text).unwrap(), Policy::default());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse("max_cpus = 1").unwrap_err().contains("unknown key"));
    }

    #[test]
    fn uid_ranges_reaching_system_ids_are_refused() {
        assert!(parse("uid_base = 0").is_err());
        assert!(parse("uid_base = 1000").is_err());
        assert!(parse("uid_base = 2147483000\nuid_count = 4194304").is_err());
        assert!(parse("uid_count = 0").is_err());
        assert!(parse("gid = 0").is_err());
    }

    #[test]
    fn default_range_holds_the_largest_pid_max() {
        let p = Policy::default();
        assert!(p.uid_count >= 1 << 22);
        // Beyond systemd's container range (ends 0x6FFFFFFF) and below its
        // foreign range (starts 0x7FFE0000).
        assert!(p.uid_base > 0x6FFF_FFFF);
        assert!(u64::from(p.uid_base) + u64::from(p.uid_count) <= 0x7FFE_0000);
    }

    #[test]
    fn every_run_gets_a_memory_limit_at_most_max_run_memory() {
        let p = parse("max_run_memory = 65536").unwrap();
        let base = Limits::default()
            .with(Limit::Nproc, Some(1))
            .with(Limit::Mem, Some(1000))
            .with(Limit::Fsize, Some(0));
        // (1 + 1) x 1000 + the 4 KiB scratch.
        assert_eq!(p.run_memory_kib(&base), Some(2004));
        assert_eq!(p.run_memory_kib(&base.clone().with(Limit::Rss, Some(1 << 40))), Some(65536));
        assert_eq!(p.run_memory_kib(&base.with(Limit::Mem, None)), Some(65536));
    }

    #[test]
    fn writable_chroot_roots_never_include_slash() {
        assert!(parse("writable_chroot_roots = /").unwrap_err().contains("/ cannot be"));
        assert!(parse("writable_chroot_roots = /usr //.").is_err());
        assert!(parse("writable_chroot_roots = jail").unwrap_err().contains("not an absolute"));
        let p = parse("writable_chroot_roots = /usr /does-not-exist").unwrap();
        assert_eq!(p.writable_chroot_roots.len(), 1);
    }

    #[test]
    fn the_root_keys_parse_and_forcing_minimal_needs_a_minimal_default() {
        let p = parse("default_root = minimal\nallow_host_root = false\nminimal_root_binds = /opt")
            .unwrap();
        assert_eq!((p.default_root, p.allow_host_root), (Root::Minimal, false));
        assert_eq!(p.minimal_root_binds, vec!["/opt".to_string()]);
        assert!(parse("allow_host_root = false").unwrap_err().contains("allow_host_root"));
        assert!(parse("default_root = chroot").is_err());
        assert!(parse("minimal_root_binds = opt").is_err());
    }

    #[test]
    fn maxima_parse_seconds_and_unlimited() {
        let p = parse("max_cpu = 0.5\nmax_rss = unlimited\nmax_nproc = 3").unwrap();
        assert_eq!(p.max[Limit::Cpu as usize], Some(500));
        assert_eq!(p.max[Limit::Rss as usize], None);
        assert_eq!(p.max[Limit::Nproc as usize], Some(3));
    }
}
