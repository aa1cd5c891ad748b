//! The safeexec protocol: what the frontend asks of the helper (`Request`) and
//! what the helper answers (`Reply`), plus their framing (module `wire`, the
//! only place that knows about bincode).
//!
//! Both types are plain data. The helper trusts none of it: every field is
//! re-validated against the root-owned policy before it is used.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

pub mod wire;

/// Bumped whenever `Request` or `Reply` change shape, so that a frontend and a
/// helper from different builds fail with a clear message instead of decoding
/// garbage.
pub const PROTOCOL_VERSION: u32 = 2;

/// Descriptor on which the helper reads the request frame.
pub const REQUEST_FD: i32 = 3;
/// Descriptor on which the helper writes the reply frame.
pub const REPLY_FD: i32 = 4;
/// Descriptor of the chroot directory, opened by the frontend as the caller
/// (present only when `Request::chroot` is true).
pub const CHROOT_FD: i32 = 5;

/// One run, as the caller asks for it. Ids are deliberately absent: the uid,
/// gid and groups of the target come from the policy, never from the caller.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Path given to execve as is (no PATH search), resolved inside the
    /// sandbox after the switch to the sandbox uid.
    pub program: String,
    /// The complete argv of the target, argv[0] included.
    pub argv: Vec<String>,
    /// The complete environment of the target, `NAME=value` each.
    pub env: Vec<String>,
    pub limits: Limits,
    /// The chroot directory is passed as descriptor `CHROOT_FD`.
    pub chroot: bool,
    /// Directory to enter (inside the chroot, if any) before exec, resolved
    /// as the sandbox uid.
    pub exec_dir: Option<String>,
    pub niceness: i32,
    /// Keep the host network namespace (only if the policy allows it).
    pub share_net: bool,
    /// Keep the host's /tmp and /var/tmp instead of private, empty ones
    /// (only if the policy allows it).
    pub host_tmp: bool,
}

/// Limits of a run. `None` means "no limit of this kind" (the policy may
/// refuse that). Units are in the names.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time (user + system) of the whole run.
    pub cpu_ms: Option<u64>,
    /// Wall clock from the start of the target.
    pub wall_ms: Option<u64>,
    /// Extra time granted past the CPU and wall limits before the run is
    /// killed, so that a program just over its limit reports its real time.
    pub grace_ms: u64,
    /// Address space of each process (RLIMIT_AS and RLIMIT_DATA).
    pub mem_kib: Option<u64>,
    /// Resident memory of the whole run, enforced by the supervisor.
    pub rss_kib: Option<u64>,
    pub stack_kib: Option<u64>,
    pub core_kib: u64,
    /// Largest file the target may write (RLIMIT_FSIZE); 0 forbids writing
    /// to regular files at all.
    pub fsize_kib: Option<u64>,
    /// Processes the target may create besides itself (RLIMIT_NPROC - 1).
    pub nproc: u64,
    /// Open files per process (RLIMIT_NOFILE).
    pub nfile: u64,
    /// Bytes the target may write to its stdout and stderr together.
    pub output_bytes: Option<u64>,
}

/// What the helper answers: exactly one per request. Sent once per run, so
/// the size difference of the variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The target ran (or execve failed inside the sandbox).
    Finished(Outcome),
    /// The run was refused or could not be set up; one line for the user.
    Failed(String),
}

/// How the target ended and what it used.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub end: End,
    /// The limit that ended the run, if one did.
    pub limit: Option<LimitKind>,
    /// Set when execve itself failed: the reason, as strerror words.
    pub exec_error: Option<String>,
    pub wall_us: u64,
    pub user_us: u64,
    pub sys_us: u64,
    /// Peak resident memory: the largest resident set of one of its
    /// processes, or of all of them together when /proc samples saw more.
    /// The cgroup's peak of the whole run is in `cgroup`.
    pub peak_kib: u64,
    pub memory_source: Source,
    /// Largest resident set of any one process of the run (wait4 rusage).
    pub maxrss_kib: u64,
    pub cpu_source: Source,
    /// Bytes the target wrote to stdout and stderr, when they were counted
    /// (only with an output limit).
    pub output_bytes: Option<u64>,
    pub uid: u32,
    pub gid: u32,
    /// The limits in force during the run.
    pub limits: Limits,
    /// The run's cgroup counters, where it had cgroups.
    pub cgroup: Option<CgroupCounters>,
}

/// Counters of the run's own cgroups, read once every process of the run
/// was gone. `None`: that controller was not available.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CgroupCounters {
    /// 1 or 2: the cgroup version of the memory counter (or of the CPU
    /// counter, without one).
    pub version: u8,
    /// Peak of the memory charged to the run, all its processes at once:
    /// resident pages, the page cache it read in, its tmpfs files and kernel
    /// memory.
    pub memory_peak_kib: Option<u64>,
    /// CPU time of every process of the run.
    pub cpu_us: Option<u64>,
    /// Most processes (threads included) alive at once.
    pub pids_peak: Option<u64>,
    /// Processes of the run the kernel's OOM killer killed (for the run's
    /// own limit, or for a parent cgroup's or the machine's memory).
    pub oom_kills: u64,
    /// Whether the kernel enforced the resident memory limit (`rss_kib`).
    pub memory_limited: bool,
    /// Whether the run's memory reached its own limit: only then is an OOM
    /// kill the run's Memory Limit Exceeded.
    pub memory_limit_hit: bool,
}

/// How the target's main process ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
}

/// Which limit ended a run.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Cpu,
    Wall,
    Memory,
    FileSize,
    Output,
}

/// Where a figure came from.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// wait4() rusage at the end of the run (kernel-exact, whole run).
    Rusage,
    /// /proc samples during the run.
    Proc,
    /// cgroup counters.
    Cgroup,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Rusage => "rusage",
            Source::Proc => "proc",
            Source::Cgroup => "cgroup",
        }
    }
}

impl LimitKind {
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Cpu => "cpu",
            LimitKind::Wall => "wall",
            LimitKind::Memory => "memory",
            LimitKind::FileSize => "fsize",
            LimitKind::Output => "output",
        }
    }
}
