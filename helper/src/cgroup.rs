//! The run's own cgroups: kernel counters of the whole run (peak memory,
//! CPU time, processes) and a kernel-enforced memory limit.
//!
//! safeexec owns a subtree in every hierarchy that has a controller we use
//! (the v1 `memory`, `pids` and `cpuacct` hierarchies, and the v2 one), and
//! each run gets one directory `<uid>` there, whatever the caller's cgroup:
//! a v2 cgroup that holds processes (a systemd service) can hand no
//! controller down, and systemd's cgroups are not ours to change. The
//! subtree is the cgroup of the packaged systemd unit with `Delegate=yes`
//! where it runs (v2), else `safeexec` at the top of the hierarchy, made at
//! first use: the host's root, or a container's own cgroup (the root of its
//! cgroup namespace, or its cgroup bind-mounted). The hierarchies and the
//! helper's place in them come from /proc/self/cgroup mapped through the
//! mounts of /proc/self/mountinfo. The run's memory limit (the policy's
//! `max_run_memory` at most) bounds each run; the caller's own cgroup no
//! longer does.
//!
//! The directories are root's (0755, files 0644, owner and group), and so
//! is every cgroup above them: neither the caller nor the target can change
//! a limit or move a process, and the run does not see the cgroup file
//! systems at all (`mounts::private_mounts`). The supervisor makes them
//! while still root and hands them to init (`send`, `receive`); the target
//! is born in the v2 one (`v2_dir`) and joins the others before it drops
//! root; init reads the counters once every
//! process of the run is reaped, reclaims the page cache the run brought
//! in, then removes them. A later run sweeps what a killed init left.
//!
//! Nothing here opens a path the request names: the paths are the mount
//! points and cgroup paths the kernel gives in /proc/self, and each
//! directory opened is checked to be on a cgroup file system.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode};
use nix::sys::statfs::{fstatfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
use nix::unistd::{unlinkat, UnlinkatFlags};
use shared::CgroupCounters;

use crate::channel::CgroupLayout;
use crate::error::{Error, Result};
use crate::sys;
use crate::uids::Lease;

const TOO_MANY: &str =
    "too many memory cgroups on this machine (removed ones still held by their page cache)";

/// Memory cgroups of the machine, from /proc/cgroups (`u64::MAX` if
/// unreadable, which makes none).
fn memory_cgroups() -> u64 {
    let count = |text: &str| {
        text.lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("memory")).then(|| f.nth(1)?.parse().ok())?
            })
            .unwrap_or(0)
    };
    sys::with_proc("/proc/cgroups", count).unwrap_or(u64::MAX)
}

/// Where the helper goes, in safeexec's subtree of a hierarchy, out of a
/// cgroup the caller may freeze, stall or starve (`shelter`); init and the
/// target are born there.
const SHELTER: &str = "shelter";

/// Where the packaged systemd unit's keeper process lives, in the unit's
/// cgroup (the v2 subtree under it): not a run's, never swept.
const KEEPER: &str = "keeper";

/// At most one directory per hierarchy: memory, pids, cpuacct, cpu and v2.
const MAX_NODES: usize = 5;

/// safeexec's own subtree, at the top of each hierarchy the helper sees
/// (the host's root, or the root of a container's cgroup namespace or
/// mount), made at first use.
const SUBTREE: &str = "safeexec";

/// A run's directory in the subtree: its uid, and for an installation
/// other than the packaged one (another state directory) a tag of that
/// directory, so that installations sharing the subtree never sweep each
/// other's runs (they may share a uid range).
fn run_name(uid: u32) -> String {
    let state = crate::uids::STATE_DIR;
    if state == "/var/lib/safeexec" {
        return uid.to_string();
    }
    // FNV-1a: the tests compute the same tag from their prefix.
    let hash = state.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{uid}-{:08x}", hash as u32)
}

/// The cgroup of the packaged systemd unit (`safeexec.service`,
/// `Delegate=yes`), relative to the v2 hierarchy's top: safeexec's subtree
/// there when it exists, so that systemd leaves it to us.
const UNIT_CGROUP: &str = "system.slice/safeexec.service";

/// Whether runs get cgroups (policy key `cgroup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupRule {
    /// Where the kernel offers them; otherwise the figures come from
    /// rusage and /proc.
    Auto,
    /// A run without a memory and a CPU counter is refused.
    Required,
    Off,
}

/// One directory of the run: in one hierarchy, below `parent`.
struct Node {
    v2: bool,
    /// The subtree's directory, to remove `name` from at the end.
    parent: OwnedFd,
    name: String,
    dir: OwnedFd,
}

/// The run's cgroups. `memory`, `pids`, `cpu` (the CPU time counter) and
/// `weight` (the share of the CPUs) index `nodes`.
pub struct RunCgroup {
    nodes: Vec<Node>,
    memory: Option<usize>,
    pids: Option<usize>,
    cpu: Option<usize>,
    weight: Option<usize>,
}

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("cgroup: {what}: {e}"))
}

/// One hierarchy the helper is in: where it is mounted, whether it is v2,
/// its controllers (v1), and where the helper's own cgroup is.
#[derive(Debug, PartialEq)]
struct Hierarchy {
    mount: String,
    v2: bool,
    controllers: Vec<String>,
    own: Own,
}

/// Where the helper's own cgroup is, as /proc/self/cgroup says.
#[derive(Debug, PartialEq)]
enum Own {
    /// At this path below the mount point ("" for the mount's root).
    Below(String),
    /// Outside what the mount shows (a container's mount of its own cgroup).
    Outside,
    /// Not known: its line cannot be trusted. The kernel cuts a line at
    /// `PATH_MAX` (a caller may nest its own cgroups that deep, and make
    /// the cut end in `..`), writes a cgroup name as it is (a newline in
    /// one makes lines of the caller's choosing: a hierarchy then appears
    /// twice), and shows a cgroup outside the cgroup namespace with `..`.
    Unknown,
}

/// How many bytes of a path /proc/self/cgroup writes at most (`PATH_MAX`
/// less the final NUL): a path that long may have been cut.
const CUT_AT: usize = 4095;

/// The v1 controllers the runs' cgroups use.
const RUN_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpuacct", "cpu"];

/// The niceness all runs together weigh as against the host's processes:
/// the weight of safeexec's subtree in a hierarchy with the cpu controller
/// (`weigh_subtree`). The kernel shares the CPUs between cgroups level by
/// level: a run's own weight ranks it only among the runs, and the
/// subtree, at the default weight of a nice-0 task, let a lone run at
/// niceness 19 take a nice-0 share of the machine (a review of the twelfth
/// round). The default run niceness: a lone run at it weighs as it asks.
const SUBTREE_NICENESS: i32 = 16;

/// The file and value that weigh a cgroup as a task at `niceness`.
fn weight(v2: bool, niceness: i32) -> (&'static str, String) {
    let nice = niceness.clamp(-20, 19);
    if v2 {
        ("cpu.weight.nice", nice.to_string())
    } else {
        ("cpu.shares", NICE_WEIGHTS[(nice + 20) as usize].to_string())
    }
}

/// Weighs safeexec's subtree `dir` as `SUBTREE_NICENESS`, unless it is
/// already. Not the packaged systemd unit's cgroup, whose weight is the
/// unit's (`CPUWeight=`).
fn weigh_subtree(dir: &OwnedFd, v2: bool) -> Result<()> {
    let (file, value) = weight(v2, SUBTREE_NICENESS);
    if read_file(dir, file).is_some_and(|now| now.trim() == value) {
        return Ok(());
    }
    write_file(dir, file, &value).map_err(|e| err(file, e))
}

/// The kernel's weight of each niceness, -20 to 19 (its table
/// `sched_prio_to_weight`): a v1 cpu cgroup's `cpu.shares` that weighs
/// as a task at that niceness (1024, niceness 0, is a cgroup's default).
const NICE_WEIGHTS: [u32; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
    3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87,
    70, 56, 45, 36, 29, 23, 18, 15,
];

/// The v1 cpu controller's files that set a cgroup's share of the CPU
/// (`Hierarchy::stoppers`); those a kernel lacks are absent.
const CPU_SHARE_FILES: [&str; 4] =
    ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.idle"];

/// The v1 blkio controller's files that set a cgroup's share of the disks
/// or throttle it: a helper that reads the uid counter's page from a disk
/// throttled to a byte a second holds its lock for as long.
const BLKIO_SHARE_FILES: [&str; 6] = [
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
    "blkio.weight",
    "blkio.bfq.weight",
];

impl Hierarchy {
    /// Whether the runs' cgroups are made here: v2, or a v1 hierarchy with
    /// a controller they use (not the freezer's alone). Not for cpu alone
    /// where cpuset shares its hierarchy: a new cpuset cgroup has no CPU,
    /// and nothing could join it (a suspicion of a review of the twelfth
    /// round).
    fn holds_runs(&self) -> bool {
        let used = |c: &String| {
            RUN_CONTROLLERS.contains(&c.as_str()) && !(c == "cpu" && self.has("cpuset"))
        };
        self.v2 || self.controllers.iter().any(used)
    }

    /// The files of a cgroup here whose writer can stop the processes in it
    /// and below it: v2's cgroup.procs (a delegated cgroup's writer may
    /// move any process below it into a child it froze); in v1 (where no
    /// caller can move a process of root's), the freezer's freezer.state
    /// and the memory controller's memory.oom_control (with the OOM killer
    /// off, a process at the cgroup's limit waits in the kernel for as
    /// long as the limit holds).
    fn stoppers(&self) -> Vec<&'static str> {
        if self.v2 {
            return vec!["cgroup.procs"];
        }
        let files = [("freezer", "freezer.state"), ("memory", "memory.oom_control")];
        let mut stoppers: Vec<&str> =
            files.into_iter().filter(|(c, _)| self.has(c)).map(|(_, file)| file).collect();
        if self.has("cpu") {
            stoppers.extend(CPU_SHARE_FILES);
        }
        if self.has("blkio") {
            stoppers.extend(BLKIO_SHARE_FILES);
        }
        stoppers
    }

    /// Whether it has v1 controller `c`.
    fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }

    /// Whether it is v1's cpu or blkio hierarchy, where a cgroup's
    /// processes share the CPU or the disks with the cgroups beside it and
    /// below it, by their weights: whoever may make one there (may write
    /// the directory above or the cgroup's own) can give it a weight that
    /// leaves ours none.
    fn weighted(&self) -> bool {
        !self.v2 && (self.has("cpu") || self.has("blkio"))
    }
}

/// A cgroup file system mount, from /proc/self/mountinfo: the cgroup it
/// shows at its mount point (`root`), the mount point, its version, and
/// its super options (the controllers of a v1 one).
#[derive(Debug, PartialEq)]
struct CgroupMount {
    root: String,
    point: String,
    v2: bool,
    options: Vec<String>,
}

/// The cgroup mounts of mountinfo text (written by the kernel:
/// `id parent dev root point options [tags] - type source super`).
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, rest) = line.split_once(" - ")?;
            let mut fields = fields.split(' ');
            let root = unescape(fields.nth(3)?);
            let point = unescape(fields.next()?);
            let mut rest = rest.split(' ');
            let v2 = match rest.next()? {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let options = rest.nth(1)?.split(',').map(str::to_string).collect();
            Some(CgroupMount { root, point, v2, options })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `path` below `root`, both absolute cgroup paths: `Some("")` for the
/// root itself, `Some("a/b")` below it, `None` outside it.
fn below(root: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(root.trim_end_matches('/'))?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    Some(rest.trim_matches('/').to_string())
}

/// The hierarchies of interest: each line of /proc/self/cgroup
/// (`id:controllers:path`, the path as the helper's cgroup namespace shows
/// it) with the mount of that hierarchy that shows the most of it. A mount
/// shows the cgroup `root` at its mount point: the host's root, the root
/// of a private cgroup namespace, or a container's own cgroup bind-mounted.
fn map_hierarchies(proc_cgroup: &str, mounts: &[CgroupMount]) -> Vec<Hierarchy> {
    // The v1 freezer, cpu and blkio hierarchies are only for `shelter`.
    let wanted = |c: &str| RUN_CONTROLLERS.contains(&c) || ["freezer", "cpu", "blkio"].contains(&c);
    let mut found = Vec::new();
    let mut forged = false;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(names), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            forged = true; // not the kernel's: a newline in a cgroup's name
            continue;
        };
        forged |= id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit());
        // The kernel writes no path with a final `/` but the root's: one
        // cut short by a name that starts with a newline.
        let usable = path.starts_with('/')
            && path.len() < CUT_AT
            && (path == "/" || !path.ends_with('/'))
            && !path.split('/').any(|c| c == "..");
        let v2 = names.is_empty();
        let controllers: Vec<String> =
            if v2 { Vec::new() } else { names.split(',').map(str::to_string).collect() };
        if !v2 && !controllers.iter().any(|c| wanted(c)) {
            continue;
        }
        let shows =
            |m: &&CgroupMount| m.v2 == v2 && controllers.iter().all(|c| m.options.contains(c));
        let Some(mount) = mounts.iter().filter(shows).min_by_key(|m| m.root.len()) else {
            continue;
        };
        let own = match (usable, below(&mount.root, path)) {
            (false, _) => Own::Unknown,
            (true, Some(own)) => Own::Below(own),
            (true, None) => Own::Outside,
        };
        // A hierarchy named twice: one of the lines is not the kernel's own.
        if let Some(seen) = found.iter_mut().find(|h: &&mut Hierarchy| h.mount == mount.point) {
            seen.own = Own::Unknown;
            continue;
        }
        found.push(Hierarchy { mount: mount.point.clone(), v2, controllers, own });
    }
    if forged {
        found.iter_mut().for_each(|h| h.own = Own::Unknown);
    }
    found
}

/// The hierarchies the helper is in, read once per run (by the helper,
/// for `shelter`, `RunCgroup::create` and `sweep_stale`).
///
/// The cgroup mounts they were found among are kept, unused, as long as
/// they are: the supervisor finds them while the network thread runs, and
/// what it frees then musl's allocator unmaps at once, each unmap
/// interrupting the thread's CPU (a TLB shootdown).
pub struct Hierarchies {
    list: Vec<Hierarchy>,
    _mounts: Vec<CgroupMount>,
}

impl Hierarchies {
    /// Fails where cgroup file systems are mounted but /proc/self/cgroup
    /// cannot be read: `shelter` would have nothing to judge.
    pub fn find() -> Result<Hierarchies> {
        let mounts = sys::with_proc("/proc/self/mountinfo", cgroup_mounts).unwrap_or_default();
        let found = sys::with_proc("/proc/self/cgroup", |text| map_hierarchies(text, &mounts));
        let list = match found {
            Ok(list) => list,
            Err(_) if mounts.is_empty() => Vec::new(),
            Err(e) => return Err(err("cannot read /proc/self/cgroup", e)),
        };
        Ok(Hierarchies { list, _mounts: mounts })
    }

    /// Whether a run here is likely to get a CPU weight of its own
    /// (`RunCgroup::weighs`): a hierarchy that holds runs offers the cpu
    /// controller (v2: may, as its subtree hands it down). A guess, for
    /// the filter built ahead (`seccomp::Sessions`); the target checks it.
    pub fn may_weigh(&self, rule: CgroupRule) -> bool {
        rule != CgroupRule::Off
            && self.list.iter().any(|h| h.holds_runs() && (h.v2 || h.has("cpu")))
    }
}

fn fs_is_cgroup(dir: &OwnedFd, v2: bool) -> bool {
    let want = if v2 { CGROUP2_SUPER_MAGIC } else { CGROUP_SUPER_MAGIC };
    fstatfs(dir).is_ok_and(|s| s.filesystem_type() == want)
}

fn open_dir(at: Option<&OwnedFd>, path: &str) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    match at {
        Some(at) => openat(at, path, flags | OFlag::O_NOFOLLOW, Mode::empty()),
        None => openat(nix::fcntl::AT_FDCWD, path, flags, Mode::empty()),
    }
}

fn write_file(dir: &OwnedFd, file: &str, value: &str) -> nix::Result<()> {
    let fd =
        openat(dir, file, OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())?;
    nix::unistd::write(&fd, value.as_bytes()).map(drop)
}

fn open_file(dir: &OwnedFd, file: &str) -> nix::Result<OwnedFd> {
    openat(dir, file, OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
}

fn read_file(dir: &OwnedFd, file: &str) -> Option<String> {
    let fd = open_file(dir, file).ok()?;
    let mut buf = [0u8; 4096];
    let n = nix::unistd::read(&fd, &mut buf).ok()?;
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// `key value` lines (memory.events, cpu.stat, memory.oom_control).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The value of `key` in the `key value` lines of `file`.
fn read_keyed(dir: &OwnedFd, file: &str, key: &str) -> Option<u64> {
    keyed(&read_file(dir, file)?, key)
}

/// A file that holds one number (memory.peak, pids.peak).
fn read_number(dir: &OwnedFd, file: &str) -> Option<u64> {
    read_file(dir, file)?.trim().parse().ok()
}

/// Whether a file is root's and writable by nobody else.
fn root_only(st: nix::Result<FileStat>) -> bool {
    st.is_ok_and(|st| st.st_uid == 0 && st.st_mode & 0o022 == 0)
}

impl RunCgroup {
    /// Creates the run's cgroups (as root, in the supervisor, beside init's
    /// set-up) and sets the memory and process limits in them. With `Auto`,
    /// a hierarchy that cannot be used is left out; with `Required`, a run
    /// without a memory and a CPU counter is refused.
    ///
    /// `max_memory` (policy `max_memory_cgroups`): memory cgroups on the
    /// machine (live ones, and removed ones the kernel still keeps for pages
    /// charged to them) from which on a run gets none. The kernel has about
    /// 65535, and a caller could pin one per run (a page the run brought
    /// into the cache, locked by the caller, cannot be reclaimed before the
    /// removal). Past it the run's memory figures and --rss come from rusage
    /// and /proc, and the rest of the machine keeps its share.
    pub fn create(
        found: &Hierarchies,
        rule: CgroupRule,
        max_memory: u64,
        uid: u32,
        memory_kib: Option<u64>,
        nproc: Option<u64>,
        niceness: i32,
    ) -> Result<(Option<RunCgroup>, Option<String>)> {
        if rule == CgroupRule::Off {
            return Ok((None, Some("the policy says cgroup = off".into())));
        }
        let mut cg =
            RunCgroup { nodes: Vec::new(), memory: None, pids: None, cpu: None, weight: None };
        let mut first_error = None;
        let too_many = memory_cgroups() >= max_memory;
        for h in found.list.iter().filter(|h| h.holds_runs()) {
            if let Err(e) = cg.add(h, uid, too_many) {
                first_error.get_or_insert(e);
            }
        }
        if rule == CgroupRule::Required && (cg.memory.is_none() || cg.cpu.is_none()) {
            cg.remove();
            return Err(first_error.unwrap_or_else(|| {
                err("no memory and CPU controllers to use", "policy: cgroup = required")
            }));
        }
        if let Err(e) = cg.set_limits(memory_kib, nproc, niceness) {
            cg.remove();
            return Err(e);
        }
        // Why the memory figures and limit will come from sampling.
        let missing = cg.memory.is_none().then(|| match first_error {
            Some(Error::Setup(why)) => why,
            _ => "no hierarchy offers the memory controller to safeexec's subtree".into(),
        });
        Ok((if cg.nodes.is_empty() { None } else { Some(cg) }, missing))
    }

    /// Makes the run's directory in one hierarchy, if it brings a
    /// controller the run has none of yet.
    fn add(&mut self, h: &Hierarchy, uid: u32, too_many: bool) -> Result<()> {
        let covered = [self.memory, self.pids, self.cpu, self.weight].iter().all(Option::is_some);
        if h.v2 && covered {
            return Ok(());
        }
        if too_many && !h.v2 && h.controllers.iter().any(|c| c == "memory") {
            return Err(err("memory", TOO_MANY));
        }
        let (node, v2_controllers) = make_node(h, uid, too_many)?;
        let names = if h.v2 { &v2_controllers } else { &h.controllers };
        let has = |c: &str| names.iter().any(|x| x == c);
        let i = Some(self.nodes.len());
        let mut used = false;
        for (slot, here) in [
            (&mut self.memory, has("memory")),
            (&mut self.pids, has("pids")),
            // v2 counts CPU in every cgroup; v1 needs cpuacct.
            (&mut self.cpu, h.v2 || has("cpuacct")),
            (&mut self.weight, has("cpu")),
        ] {
            if slot.is_none() && here {
                *slot = i;
                used = true;
            }
        }
        if used {
            self.nodes.push(node);
        } else {
            // Nothing new here (a second v2 mount): not joined.
            remove_node(&node);
        }
        Ok(())
    }

    /// The memory limit (with swap, so that swapping does not lift it),
    /// the process limit and the run's weight, written while the cgroups
    /// are still empty.
    fn set_limits(&self, memory_kib: Option<u64>, nproc: Option<u64>, niceness: i32) -> Result<()> {
        if let (Some(kib), Some(i)) = (memory_kib, self.memory) {
            let node = &self.nodes[i];
            // Past what the kernel counts in pages: no limit.
            let bytes = match kib.checked_mul(1024).filter(|&b| b < 1 << 62) {
                Some(b) => b.to_string(),
                None if node.v2 => "max".to_string(),
                None => "-1".to_string(),
            };
            if node.v2 {
                write_file(&node.dir, "memory.max", &bytes).map_err(|e| err("memory.max", e))?;
                // Absent without swap accounting: then there is no swap to use.
                let _ = write_file(&node.dir, "memory.swap.max", "0");
            } else {
                // A caller's own cgroup may have disabled the OOM killer,
                // and a new cgroup inherits that: a run at its limit would
                // hang instead of ending.
                write_file(&node.dir, "memory.oom_control", "0")
                    .map_err(|e| err("memory.oom_control", e))?;
                write_file(&node.dir, "memory.limit_in_bytes", &bytes)
                    .map_err(|e| err("memory.limit_in_bytes", e))?;
                let _ = write_file(&node.dir, "memory.memsw.limit_in_bytes", &bytes);
                // v1 charges the buffers of TCP and UDP sockets to a cgroup
                // only once this is written, and to a counter of their own,
                // not in the limit above: without it a run held 400 MiB of
                // loopback TCP buffers under a 32 MiB limit (a review). A
                // kernel without it has no socket charges in v1 at all.
                let _ = write_file(&node.dir, "memory.kmem.tcp.limit_in_bytes", &bytes);
            }
        }
        if let Some(i) = self.pids {
            // The target and `nproc` more, as RLIMIT_NPROC; more than the
            // kernel's largest pid count is no limit.
            let max = match nproc.map_or(u64::MAX, |n| n.saturating_add(1)) {
                n if n > 1 << 22 => "max".to_string(),
                n => n.to_string(),
            };
            write_file(&self.nodes[i].dir, "pids.max", &max).map_err(|e| err("pids.max", e))?;
        }
        if let Some(i) = self.weight {
            // The whole run weighs as one task at its niceness against the
            // other runs (and all runs together as `SUBTREE_NICENESS`
            // against the host's processes), whatever it writes to its
            // /proc (`target::stand_back`).
            let (file, value) = weight(self.nodes[i].v2, niceness);
            write_file(&self.nodes[i].dir, file, &value).map_err(|e| err(file, e))?;
        }
        Ok(())
    }

    /// Whether the run has a CPU weight of its own (`set_limits`): then the
    /// kernel's autogroups, which only the root cgroup's processes are in,
    /// do not apply to it.
    pub fn weighs(&self) -> bool {
        self.weight.is_some()
    }

    /// Which descriptor is which, and the descriptors, for init
    /// (`channel::ToRun::Cgroups`).
    pub fn layout(&self) -> (CgroupLayout, Vec<RawFd>) {
        let layout = CgroupLayout {
            v2: self.nodes.iter().map(|n| n.v2).collect(),
            memory: self.memory,
            pids: self.pids,
            cpu: self.cpu,
            weight: self.weight,
        };
        let fds =
            self.nodes.iter().flat_map(|n| [n.parent.as_raw_fd(), n.dir.as_raw_fd()]).collect();
        (layout, fds)
    }

    /// Init's side of `layout`: checks that the message and the descriptors
    /// agree.
    pub fn from_layout(layout: CgroupLayout, fds: Vec<OwnedFd>, uid: u32) -> Result<RunCgroup> {
        let n = layout.v2.len();
        let fits = |i: Option<usize>| i.is_none_or(|i| i < n);
        if n > MAX_NODES
            || fds.len() != 2 * n
            || ![layout.memory, layout.pids, layout.cpu, layout.weight].into_iter().all(fits)
        {
            return Err(Error::Internal(
                "the cgroups' message does not fit its descriptors".into(),
            ));
        }
        let mut fds = fds.into_iter();
        let mut nodes = Vec::new();
        for v2 in layout.v2 {
            if let (Some(parent), Some(dir)) = (fds.next(), fds.next()) {
                nodes.push(Node { v2, parent, name: run_name(uid), dir });
            }
        }
        let (memory, pids, cpu, weight) = (layout.memory, layout.pids, layout.cpu, layout.weight);
        Ok(RunCgroup { nodes, memory, pids, cpu, weight })
    }

    /// Whether the kernel enforces the resident memory limit.
    pub fn limits_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// The run's cgroup v2 directory, if it has one: init forks the target
    /// into it (`sys::fork_into_cgroup`), so that the target never moves
    /// there.
    pub fn v2_dir(&self) -> Option<BorrowedFd<'_>> {
        self.nodes.iter().find(|n| n.v2).map(|n| n.dir.as_fd())
    }

    /// Moves the calling process into every cgroup of the run but the v2
    /// one when it was born there (`born_in_v2`). Called by the target
    /// while it still has root's rights; what it forks later stays in them
    /// (the files are root's). In v1 it moves itself through `tasks` (it
    /// is single-threaded, so that is the whole process): a move of oneself
    /// that way skips the kernel's lock over all thread groups, whose first
    /// taking after an idle moment waits for an RCU grace period (7 to
    /// 15 ms here). v2 has only `cgroup.procs`, hence the birth there.
    pub fn join(&self, born_in_v2: bool) -> Result<()> {
        for node in self.nodes.iter().filter(|n| !(n.v2 && born_in_v2)) {
            let file = if node.v2 { "cgroup.procs" } else { "tasks" };
            write_file(&node.dir, file, "0").map_err(|e| err("cannot join", e))?;
        }
        Ok(())
    }

    /// A descriptor that gives the run's CPU time so far
    /// (`CpuCounter::cpu_us`), for the supervisor's look at the CPU limit.
    pub fn cpu_counter(&self) -> Option<CpuCounter> {
        let node = &self.nodes[self.cpu?];
        let file = if node.v2 { "cpu.stat" } else { "cpuacct.usage" };
        let fd = open_file(&node.dir, file).ok()?;
        Some(CpuCounter { fd, v2: node.v2 })
    }

    /// Reads the counters. Called by init once every process of the run
    /// has been reaped, so they are final.
    pub fn counters(&self, memory_kib: Option<u64>) -> CgroupCounters {
        let version_of = |i: Option<usize>| i.map(|i| if self.nodes[i].v2 { 2 } else { 1 });
        let mut c = CgroupCounters {
            version: version_of(self.memory).or(version_of(self.cpu)).unwrap_or(1),
            memory_peak_kib: None,
            cpu_us: None,
            pids_peak: None,
            oom_kills: 0,
            memory_limited: memory_kib.is_some() && self.memory.is_some(),
            memory_limit_hit: false,
        };
        if let Some(i) = self.memory {
            let dir = &self.nodes[i].dir;
            if self.nodes[i].v2 {
                c.memory_peak_kib = read_number(dir, "memory.peak").map(|b| b / 1024);
                c.oom_kills = read_keyed(dir, "memory.events", "oom_kill").unwrap_or(0);
                // `max` of this cgroup alone: its own limit was reached.
                let hit = read_keyed(dir, "memory.events.local", "max");
                c.memory_limit_hit = hit.is_some_and(|n| n > 0);
            } else {
                c.memory_peak_kib = read_number(dir, "memory.max_usage_in_bytes").map(|b| b / 1024);
                c.oom_kills = read_keyed(dir, "memory.oom_control", "oom_kill").unwrap_or(0);
                // v1 has no count of this cgroup's own limit being reached
                // (failcnt stays 0 on this kernel): the peak tells, within
                // one charge (a huge page, 2 MiB) of the limit.
                c.memory_limit_hit = match (c.memory_peak_kib, memory_kib) {
                    (Some(peak), Some(max)) => peak.saturating_add(2048) >= max,
                    _ => false,
                };
            }
        }
        if let Some(counter) = self.cpu_counter() {
            c.cpu_us = counter.cpu_us();
        }
        if let Some(i) = self.pids {
            c.pids_peak = read_number(&self.nodes[i].dir, "pids.peak");
        }
        c
    }

    /// Removes the run's cgroups (they must be empty: init calls this after
    /// the last process of the run is reaped). A cgroup left behind (init
    /// was killed) is removed by a later run (`sweep`).
    pub fn remove(&self) {
        if let Some(i) = self.memory {
            release_memory(&self.nodes[i].dir, self.nodes[i].v2);
        }
        for node in &self.nodes {
            remove_node(node);
        }
    }
}

/// Page cache the run brought in stays charged to its memory cgroup after
/// the run, and keeps the removed cgroup alive in the kernel until the
/// pages are reclaimed: enough runs would exhaust the machine's memory
/// cgroups (about 65535). So that charge is reclaimed first (the pages
/// leave the cache), when there is any: the reclaim costs about half a
/// millisecond. The run's tmpfs pages (shmem) cannot be reclaimed; they
/// leave the cgroup when the run's mounts go, with init.
fn release_memory(dir: &OwnedFd, v2: bool) {
    let stat = read_file(dir, "memory.stat").unwrap_or_default();
    let (file, reclaim) =
        if v2 { ("file", "memory.reclaim") } else { ("cache", "memory.force_empty") };
    let cached = keyed(&stat, file).unwrap_or(0);
    let cached = cached.saturating_sub(keyed(&stat, "shmem").unwrap_or(0));
    if cached > 0 {
        let amount = if v2 { cached.to_string() } else { "0".to_string() };
        let _ = write_file(dir, reclaim, &amount);
    }
}

fn remove_node(node: &Node) {
    let _ = unlinkat(&node.parent, node.name.as_str(), UnlinkatFlags::RemoveDir);
}

/// Reads the run's CPU time from its cgroup.
pub struct CpuCounter {
    fd: OwnedFd,
    v2: bool,
}

impl CpuCounter {
    /// CPU time of every process that ever was in the run, in microseconds.
    pub fn cpu_us(&self) -> Option<u64> {
        let mut buf = [0u8; 1024];
        let n = nix::sys::uio::pread(&self.fd, &mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        if self.v2 {
            keyed(text, "usage_usec")
        } else {
            text.trim().parse::<u64>().ok().map(|ns| ns / 1000)
        }
    }
}

/// Makes the run's `<uid>` directory in safeexec's subtree of one
/// hierarchy; returns it with the controllers it has (v2).
fn make_node(h: &Hierarchy, uid: u32, too_many: bool) -> Result<(Node, Vec<String>)> {
    let (parent, unit) = subtree_of(h)?;
    let controllers = if h.v2 { hand_down(&parent, too_many)? } else { Vec::new() };
    let weighed = if h.v2 { controllers.iter().any(|c| c == "cpu") } else { h.has("cpu") };
    if weighed && !unit {
        weigh_subtree(&parent, h.v2)?;
    }
    let name = run_name(uid);
    let mode = Mode::from_bits_truncate(0o755);
    match mkdirat(&parent, name.as_str(), mode) {
        Err(nix::errno::Errno::EEXIST) => {
            // Left by an earlier run of this uid, which is over (the uid is
            // ours now): it must be empty.
            unlinkat(&parent, name.as_str(), UnlinkatFlags::RemoveDir)
                .map_err(|e| err("cannot remove a stale cgroup", e))?;
            mkdirat(&parent, name.as_str(), mode)
        }
        other => other,
    }
    .map_err(|e| err("cannot make the run's cgroup", e))?;
    let dir = match open_dir(Some(&parent), &name) {
        Ok(dir) => dir,
        Err(e) => {
            let _ = unlinkat(&parent, name.as_str(), UnlinkatFlags::RemoveDir);
            return Err(err("the run's cgroup", e));
        }
    };
    let node = Node { v2: h.v2, parent, name, dir };
    Ok((node, controllers))
}

/// safeexec's subtree in one hierarchy, whatever the caller's cgroup: in
/// v2 the cgroup of the packaged systemd unit when it runs, else the
/// root-owned `safeexec` directory at the top of the hierarchy, made if
/// missing. Keeps: the subtree and every cgroup above it are root's alone
/// (`only_root_may_move`), so no caller may move a process into, out of or
/// between its cgroups, or change their limits.
fn subtree(h: &Hierarchy) -> Result<OwnedFd> {
    subtree_of(h).map(|(dir, _)| dir)
}

/// `subtree`, and whether it is the packaged unit's cgroup.
fn subtree_of(h: &Hierarchy) -> Result<(OwnedFd, bool)> {
    let mount = open_dir(None, &h.mount).map_err(|e| err(&h.mount, e))?;
    if !fs_is_cgroup(&mount, h.v2) {
        return Err(err(&h.mount, "not a cgroup file system"));
    }
    let unit = if h.v2 { open_dir(Some(&mount), UNIT_CGROUP).ok() } else { None };
    let is_unit = unit.is_some();
    let dir = match unit {
        Some(unit) => unit,
        None => root_owned_dir(&mount, SUBTREE)?,
    };
    if !fs_is_cgroup(&dir, h.v2) || !root_only(fstat(&dir)) {
        return Err(err(SUBTREE, "the directory must be root's and writable by nobody else"));
    }
    if h.v2 && !only_root_may_move(&dir) {
        // In v2 whoever may write cgroup.procs of a common ancestor may move
        // a process between two cgroups below it.
        return Err(err(
            SUBTREE,
            "a cgroup above is delegated (its cgroup.procs is not root's alone)",
        ));
    }
    Ok((dir, is_unit))
}

/// v2: hands the memory, pids and cpu controllers the parent offers down
/// to the run's cgroup (only where the parent has no process of its own,
/// such as the root cgroup); returns those it has.
fn hand_down(parent: &OwnedFd, too_many: bool) -> Result<Vec<String>> {
    let offered = read_file(parent, "cgroup.controllers").unwrap_or_default();
    let enabled = read_file(parent, "cgroup.subtree_control").unwrap_or_default();
    let lists = |text: &str, c: &str| text.split_whitespace().any(|o| o == c);
    if too_many && lists(&enabled, "memory") {
        // Every cgroup made here would be a memory cgroup.
        return Err(err("memory", TOO_MANY));
    }
    let wanted: &[&str] = if too_many { &["pids", "cpu"] } else { &["memory", "pids", "cpu"] };
    let mut controllers = Vec::new();
    for &c in wanted {
        let enable = || write_file(parent, "cgroup.subtree_control", &format!("+{c}")).is_ok();
        if lists(&offered, c) && (lists(&enabled, c) || enable()) {
            controllers.push(c.to_string());
        }
    }
    Ok(controllers)
}

/// Takes the helper (`helper`, this process, before it takes a uid or
/// forks init) out of a cgroup the caller may freeze, stall or starve
/// (`Hierarchy::stoppers`): where its cgroup or one above is delegated (in
/// v2 a systemd user session, a service with Delegate=yes; in v1 a freezer
/// or memory cgroup whose freezer.state or memory.oom_control is the
/// caller's, a cpu or blkio one whose weights or throttles are, or where
/// the caller may make a cgroup beside it: `Hierarchy::weighted`), or
/// where its line of /proc/self/cgroup cannot be trusted (`Own::Unknown`),
/// it goes to `safeexec/shelter` at the hierarchy's root,
/// root's, which no write of the caller's reaches; init and the target,
/// forked after, are born there. Elsewhere it changes nothing, and nobody
/// but root can move the helper (v2: only a writer of an ancestor's
/// cgroup.procs; v1: only root or the process's own uid). Whatever the
/// policy's `cgroup` says: it keeps the uid counter's lock, init, and so
/// the run's limits, out of the caller's hands.
pub fn shelter(found: &Hierarchies, helper: u32) -> Result<()> {
    for h in &found.list {
        let stoppers = h.stoppers();
        if stoppers.is_empty() {
            continue;
        }
        let own = match &h.own {
            // The mount's root, or outside it: nothing it shows to check.
            Own::Below(own) if own.is_empty() => continue,
            Own::Outside => continue,
            Own::Below(own) => Some(own.as_str()),
            Own::Unknown => None,
        };
        let mount = open_dir(None, &h.mount).map_err(|e| err(&h.mount, e))?;
        if !fs_is_cgroup(&mount, h.v2) {
            continue;
        }
        // Found by its path, which a v1 caller may change under us by
        // renaming a cgroup of its own, or removing one and making another,
        // and which a line cut short by a newline in a name below it may
        // show as an ancestor of ours: the directory is ours if only root
        // may write it and every directory above it (then nobody else can
        // do any of these), else only if it lists us, read to its end (a
        // cost that grows with the cgroup's processes, so not the first
        // test). From its descriptor on, its ancestors are fixed. Anything
        // else counts as the caller's. In the weighted hierarchies nobody
        // else may make a cgroup beside ours or below it either
        // (`Hierarchy::weighted`): there only the first test will do.
        let own_dir = own.and_then(|own| open_dir(Some(&mount), own).ok());
        let safe = |dir: &OwnedFd, dirs| only_root_may_write(dir, &stoppers, h.v2, dirs);
        let fixed = |dir: &OwnedFd| safe(dir, Dirs::RootOnly);
        let ours_and_safe = |dir: &OwnedFd| {
            fixed(dir) || (!h.weighted() && lists(dir, helper) && safe(dir, Dirs::Any))
        };
        if own_dir.as_ref().is_some_and(ours_and_safe) {
            continue;
        }
        let shelter = root_owned_dir(&subtree(h)?, SHELTER)?;
        let sheltered = if h.weighted() { fixed(&shelter) } else { safe(&shelter, Dirs::Any) };
        if !sheltered {
            return Err(err(
                SUBTREE,
                "a cgroup above is delegated (its freezer, OOM control, CPU or disk share, or \
                 directory, is not root's alone)",
            ));
        }
        write_file(&shelter, "cgroup.procs", &helper.to_string())
            .map_err(|e| err("cannot move out of the caller's delegated cgroup", e))?;
    }
    Ok(())
}

/// Whether the cgroup `dir` lists process `pid` in its cgroup.procs, read
/// to its end a page at a time (a line split between two reads is joined).
fn lists(dir: &OwnedFd, pid: u32) -> bool {
    let Ok(fd) = open_file(dir, "cgroup.procs") else {
        return false;
    };
    let pid = pid.to_string();
    let mut buf = [0u8; 4096];
    let mut kept = 0; // the start of a line the last read cut
    loop {
        let n = match nix::unistd::read(&fd, &mut buf[kept..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => kept + n,
        };
        let Some(end) = buf[..n].iter().rposition(|&b| b == b'\n') else {
            return false; // no pid is 4 KiB long
        };
        if buf[..end].split(|&b| b == b'\n').any(|line| line == pid.as_bytes()) {
            return true;
        }
        buf.copy_within(end + 1..n, 0);
        kept = n - end - 1;
    }
}

/// `name` in `at`, made if missing; it must be root's and writable by
/// nobody else.
fn root_owned_dir(at: &OwnedFd, name: &str) -> Result<OwnedFd> {
    match mkdirat(at, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(err(name, e)),
    }
    let dir = open_dir(Some(at), name).map_err(|e| err(name, e))?;
    if !root_only(fstat(&dir)) {
        return Err(err(name, "the directory must be root's and writable by nobody else"));
    }
    Ok(dir)
}

/// Whether `cgroup.procs` of `dir` and of every cgroup above it is root's
/// and writable by nobody else (walking up through "..", which stops at
/// the hierarchy's root).
fn only_root_may_move(dir: &OwnedFd) -> bool {
    only_root_may_write(dir, &["cgroup.procs"], true, Dirs::Any)
}

/// What `only_root_may_write` asks of `dir` and the directories above it.
#[derive(Clone, Copy, PartialEq)]
enum Dirs {
    Any,
    /// Root's and writable by nobody else, each: no one else can rename
    /// or remove one, make one in its place, or make one beside or below
    /// it.
    RootOnly,
}

/// Whether each of `files` of `dir` and of every cgroup above it is root's
/// and writable by nobody else (in v1, or absent: v1's root cgroup has no
/// freezer.state), and those directories are as `dirs` asks.
fn only_root_may_write(dir: &OwnedFd, files: &[&str], v2: bool, dirs: Dirs) -> bool {
    let mut here = match dir.try_clone() {
        Ok(fd) => fd,
        Err(_) => return false,
    };
    loop {
        let no_follow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
        let root_alone = |file: &&str| match fstatat(&here, *file, no_follow) {
            Err(nix::errno::Errno::ENOENT) => !v2,
            st => root_only(st),
        };
        if !files.iter().all(root_alone) {
            return false;
        }
        let Ok(up) = open_dir(Some(&here), "..") else {
            return false;
        };
        let (Ok(a), Ok(b)) = (fstat(&here), fstat(&up)) else {
            return false;
        };
        if dirs == Dirs::RootOnly && !root_only(Ok(a)) {
            return false;
        }
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) || !fs_is_cgroup(&up, v2) {
            return true;
        }
        here = up;
    }
}

/// Removes cgroups of earlier runs that are over (their init was killed
/// before it could), in every hierarchy. Their name is `run_name` of the
/// run's uid; only this installation's names in its uid range are looked at
/// (another installation may share the subtree); a run is over once nobody holds its uid's lock
/// (`uids::Lease::held_by_another`), whatever became of its helper's pid (a
/// zombie, or reused). This run's own is left alone. Run by the supervisor
/// while it is still root, beside init's set-up.
pub fn sweep_stale(found: &Hierarchies, uid_base: u32, uid_count: u32, lease: &Lease) {
    let own = run_name(uid_base.saturating_add(lease.index));
    let turn = lease.index.is_multiple_of(SWEEP_EVERY);
    for h in found.list.iter().filter(|h| h.holds_runs()) {
        if let Ok(dir) = subtree(h) {
            match others(&dir, &own) {
                Some(0) => {}
                Some(n) if n > SWEEP_ALWAYS_UP_TO && !turn => {}
                _ => sweep(&dir, h.v2, uid_base, uid_count, lease),
            }
        }
    }
}

/// Other runs' directories in a subtree up to which every run sweeps it;
/// past them, one run in `SWEEP_EVERY` (by uid index, handed out in turn).
/// A sweep tests the uid lock of every run's directory it finds: with 100
/// runs at once, a run's start made 512 such tests and grew by a
/// millisecond of CPU (a review of the thirteenth round). Cgroups left by
/// a killed init wait a few more runs where many run at once.
const SWEEP_ALWAYS_UP_TO: usize = 16;
const SWEEP_EVERY: u32 = 16;

/// How many directories the subtree holds besides this run's own (`own`),
/// the shelter and the packaged unit's keeper; `None`: unknown. The cgroup
/// file systems count a directory's subdirectories in its link count (2
/// plus them), which saves reading the directory on most runs: a buffer
/// that the C library's allocator maps and unmaps, each hierarchy, each
/// run.
fn others(dir: &OwnedFd, own: &str) -> Option<usize> {
    let subdirs = usize::try_from(fstat(dir).ok()?.st_nlink.saturating_sub(2)).ok()?;
    let no_follow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    // Looked up only until they account for every subdirectory: most runs
    // find their own first and stop there.
    let known = [own, SHELTER, KEEPER].into_iter().filter(|n| fstatat(dir, *n, no_follow).is_ok());
    Some(subdirs - known.take(subdirs).count())
}

fn sweep(dir: &OwnedFd, v2: bool, uid_base: u32, uid_count: u32, lease: &Lease) {
    let Ok(copy) = dir.try_clone() else {
        return;
    };
    let Ok(mut entries) = nix::dir::Dir::from_fd(copy) else {
        return;
    };
    for entry in entries.iter().flatten() {
        let Some(uid) =
            entry.file_name().to_str().ok().and_then(|n| n.split('-').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(index) = uid.checked_sub(uid_base).filter(|&i| i < uid_count) else {
            continue;
        };
        // Another installation's run: not ours to judge.
        let name = run_name(uid);
        if entry.file_name().to_bytes() != name.as_bytes() {
            continue;
        }
        if lease.held_by_another(index) {
            continue;
        }
        if let Ok(stale) = open_dir(Some(dir), &name) {
            // Its page cache first, as init would have done.
            if fstat(&stale).is_ok_and(|st| st.st_uid == 0) {
                release_memory(&stale, v2);
                let _ = unlinkat(dir, name.as_str(), UnlinkatFlags::RemoveDir);
            }
        }
    }
}

/// For the policy parser.
pub fn parse_rule(value: &str) -> std::result::Result<CgroupRule, String> {
    match value {
        "auto" => Ok(CgroupRule::Auto),
        "required" => Ok(CgroupRule::Required),
        "off" => Ok(CgroupRule::Off),
        _ => Err(format!("'{value}' is not auto, required or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cgroup.procs longer than a read, with a pid split between two.
    #[test]
    fn a_pid_is_found_in_a_long_list_whole_lines_only() {
        let dir = std::env::temp_dir().join(format!("safeexec-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 4094 bytes of "1\n", then "123456\n": the read of 4096 cuts it.
        let mut text = "1\n".repeat(2047);
        text.push_str("123456\n7\n");
        std::fs::write(dir.join("cgroup.procs"), &text).unwrap();
        let fd = open_dir(None, dir.to_str().unwrap()).unwrap();
        assert!(lists(&fd, 123456));
        assert!(lists(&fd, 7));
        assert!(!lists(&fd, 12), "a cut line is no pid");
        assert!(!lists(&fd, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keyed_lines() {
        let t = "usage_usec 1234\nuser_usec 1000\n";
        assert_eq!(keyed(t, "usage_usec"), Some(1234));
        assert_eq!(keyed(t, "user"), None);
        assert_eq!(keyed("oom_kill_disable 0\noom_kill 3", "oom_kill"), Some(3));
    }

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn host_hierarchies_are_mapped_through_mountinfo() {
        let proc = "4:memory:/a/b\n3:cpu,cpuacct:/\n2:devices:/\n0::/user.slice\n";
        let h = map_hierarchies(proc, &cgroup_mounts(HYBRID));
        let seen: Vec<_> = h.iter().map(|h| (h.mount.as_str(), &h.own)).collect();
        let below = |p: &str| Own::Below(p.into());
        assert_eq!(
            seen,
            [
                ("/sys/fs/cgroup/memory", &below("a/b")),
                ("/sys/fs/cgroup/cpu,cpuacct", &below("")),
                ("/sys/fs/cgroup/unified", &below("user.slice")),
            ]
        );
        assert_eq!(h[1].controllers, ["cpu", "cpuacct"]);
        assert!(h[1].weighted() && h[1].holds_runs());
        assert_eq!(h[1].stoppers(), CPU_SHARE_FILES);
    }

    /// A container without a cgroup namespace: its mount shows its own
    /// cgroup at /sys/fs/cgroup, and /proc/self/cgroup the host's path.
    #[test]
    fn a_mount_whose_root_is_the_containers_cgroup_is_mapped() {
        let info = "1 0 0:1 /machine.slice/libpod-1.scope /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let proc = "0::/machine.slice/libpod-1.scope/app\n";
        let h = map_hierarchies(proc, &cgroup_mounts(info));
        assert_eq!(h[0].mount, "/sys/fs/cgroup");
        assert_eq!(h[0].own, Own::Below("app".into()));
        // A cgroup outside the mount: usable, but the helper's own unknown.
        let h = map_hierarchies("0::/system.slice\n", &cgroup_mounts(info));
        assert_eq!(h[0].own, Own::Outside);
    }

    /// A private cgroup namespace: both show the namespace's root as `/`.
    #[test]
    fn a_private_cgroup_namespace_is_mapped() {
        let info = "1 0 0:1 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = map_hierarchies("0::/\n", &cgroup_mounts(info));
        assert_eq!(
            h,
            [Hierarchy {
                mount: "/sys/fs/cgroup".into(),
                v2: true,
                controllers: vec![],
                own: Own::Below(String::new())
            }]
        );
        // A path outside the namespace: the helper's own is not known.
        let h = map_hierarchies("0::/../../x\n", &cgroup_mounts(info));
        assert_eq!(h[0].own, Own::Unknown);
    }

    /// A line the kernel cut at PATH_MAX (a caller's cgroups nested that
    /// deep, the cut ending in `..` or anywhere), or a hierarchy named
    /// twice (a newline in a cgroup's name): the helper's own cgroup there
    /// is not known, and `shelter` moves it.
    #[test]
    fn a_cut_or_forged_line_leaves_the_helpers_cgroup_unknown() {
        let info = "1 0 0:1 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        let mounts = cgroup_mounts(info);
        let deep = format!("/d/{}", "n".repeat(CUT_AT));
        let cut = format!("0::{}/..\n", &deep[..CUT_AT - 3]);
        assert_eq!(map_hierarchies(&cut, &mounts)[0].own, Own::Unknown);
        let cut = format!("0::{}\n", &deep[..CUT_AT]);
        assert_eq!(map_hierarchies(&cut, &mounts)[0].own, Own::Unknown);
        let just = format!("0::{}\n", &deep[..CUT_AT - 1]);
        assert!(matches!(map_hierarchies(&just, &mounts)[0].own, Own::Below(_)));
        let forged = map_hierarchies("0::/d/a\n0::/\n", &mounts);
        assert_eq!(forged.len(), 1);
        assert_eq!(forged[0].own, Own::Unknown);
        // A name that starts with a newline and has no colon after it.
        assert_eq!(map_hierarchies("0::/d/\nx\n", &mounts)[0].own, Own::Unknown);
        assert_eq!(map_hierarchies("0::/d/\n", &mounts)[0].own, Own::Unknown);
        assert_eq!(map_hierarchies("x:y:/z\n0::/d\n", &mounts)[0].own, Own::Unknown);
        assert_eq!(map_hierarchies("0::/d\n", &mounts)[0].own, Own::Below("d".into()));
    }

    #[test]
    fn mountinfo_escapes_and_prefixes() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(below("/a", "/ab"), None);
        assert_eq!(below("/a", "/a/b/"), Some("b".into()));
        assert_eq!(below("/", "/x"), Some("x".into()));
    }

    #[test]
    fn a_cpu_hierarchy_holds_runs_unless_cpuset_shares_it() {
        let v1 = |names: &[&str]| Hierarchy {
            mount: String::new(),
            v2: false,
            controllers: names.iter().map(|n| n.to_string()).collect(),
            own: Own::Below(String::new()),
        };
        assert!(v1(&["cpu"]).holds_runs());
        assert!(v1(&["cpu", "cpuacct"]).holds_runs());
        assert!(!v1(&["cpu", "cpuset"]).holds_runs());
        assert!(v1(&["cpuset", "memory"]).holds_runs());
        assert!(!v1(&["freezer"]).holds_runs());
    }

    #[test]
    fn rules_parse() {
        assert_eq!(parse_rule("auto"), Ok(CgroupRule::Auto));
        assert!(parse_rule("yes").is_err());
    }
}
