//! The safeexec protocol: what the frontend asks of the helper (`Request`) and
//! what the helper answers (`Reply`), plus their framing (module `wire`, the
//! only place that knows about bincode).
//!
//! Both types are plain data. The helper trusts none of it: every field is
//! re-validated against the root-owned policy before it is used.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

pub mod limits;
pub mod wire;

pub use limits::{Limit, LimitSpec, Limits};

/// Bumped whenever `Request` or `Reply` change shape, so that a frontend and a
/// helper from different builds fail with a clear message instead of decoding
/// garbage.
pub const PROTOCOL_VERSION: u32 = 7;

/// Descriptor of the helper's request socket (a Unix stream socket): one
/// request frame, with the descriptors it names beside it (SCM_RIGHTS),
/// then the end of the stream. The frontend starts the helper before it
/// has parsed its command line, so what the run is given arrives with the
/// request, not at the spawn (`Request::passed_fds`).
pub const REQUEST_FD: i32 = 3;
/// Descriptor on which the helper writes the reply frame (a pipe).
pub const REPLY_FD: i32 = 4;
/// Most directories a caller may grant.
pub const MAX_BIND_RW: u32 = 8;
/// Most read-only directories a request may name (8 of the caller's, the
/// program's directory and exec_dir).
pub const MAX_BIND: u32 = 10;
/// Most descriptors one request may come with: the program's three
/// standard ones, the chroot and working directories, and the granted
/// and shown ones.
pub const MAX_PASSED_FDS: usize = PASSED_STDIO + 2 + MAX_BIND_RW as usize + MAX_BIND as usize;
/// The first descriptor number the helper never takes from its caller:
/// it closes every one from here up before it reads the request.
pub const FIRST_UNUSED_FD: i32 = REPLY_FD + 1;

/// The file system a run sees outside a chroot directory.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// The host's, read-only, with private scratch places.
    Host,
    /// A new root of read-only binds of the system directories, with the
    /// directories the request names at their own paths, and nothing else.
    Minimal,
}

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
    /// The chroot directory comes with the request (`passed_fds`).
    pub chroot: bool,
    /// Directory to enter (inside the chroot, if any) before exec, resolved
    /// as the sandbox uid.
    pub exec_dir: Option<String>,
    pub niceness: i32,
    /// Keep the host network namespace. Granted only if the policy allows
    /// it; otherwise the run gets a network of its own with loopback only,
    /// as every run does (`Facts::network` says which it had).
    pub share_net: bool,
    /// Keep the host's /tmp and /var/tmp instead of private, empty ones
    /// (only if the policy allows it).
    pub host_tmp: bool,
    /// How many directories of the caller's own the run may write (at most
    /// `MAX_BIND_RW`), each passed with the request.
    pub bind_rw: u32,
    /// How many directories the run may read at their own path (at most
    /// `MAX_BIND`), each passed with the request.
    pub bind: u32,
    /// The caller's working directory comes with the request.
    pub cwd: bool,
    /// The root asked for; `None`: the policy's `default_root`.
    pub root: Option<Root>,
}

/// The program's descriptors 0, 1 and 2 come first with every request:
/// whatever the helper was started with there is not the program's (the
/// frontend starts it with /dev/null) and is replaced.
pub const PASSED_STDIO: usize = 3;

impl Request {
    /// How many descriptors come with the request, in this order: the
    /// program's standard ones (`PASSED_STDIO`: 0, 1, 2), the chroot
    /// directory, the working directory, the `bind_rw` directories, the
    /// `bind` ones. Saturating: a hostile count is refused, not wrapped.
    pub fn passed_fds(&self) -> usize {
        let dirs = PASSED_STDIO + usize::from(self.chroot) + usize::from(self.cwd);
        (self.bind_rw as usize).saturating_add(self.bind as usize).saturating_add(dirs)
    }
}

/// What the helper answers: exactly one per request. Sent once per run, so
/// the size difference of the variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The target ran (or execve failed inside the sandbox).
    Finished(Facts),
    /// The run was refused or could not be set up; one line for the user.
    Failed(String),
}

/// What the helper saw of a run: raw facts, from the kernel where it could.
/// The verdict, the reported figures, and which of them stand in for the
/// ones init could not give, are the frontend's work
/// (`frontend/src/verdict.rs`); the helper judges nothing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Init's report of the whole run; `None` when init was killed before
    /// it could say (the supervisor's backstop).
    pub init: Option<InitReport>,
    /// execve's errno inside the sandbox, when it failed.
    pub exec_errno: Option<i32>,
    /// The supervisor's clock, from when it started watching the run to
    /// init's end.
    pub supervisor_wall_us: u64,
    /// Largest resident set the supervisor's wait for init reported.
    pub reaped_maxrss_kib: u64,
    pub uid: u32,
    pub gid: u32,
    /// The limits in force during the run.
    pub limits: Limits,
    /// The network the run had.
    pub network: Network,
    /// Why the run had no memory cgroup (its memory figures and limit then
    /// come from rusage and sampling); `None` when it had one.
    pub cgroup_missing: Option<String>,
}

/// What init tells once the run is over: how the target ended, and what
/// every process of the run used (init's own set-up excluded).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// Wait status of the target, as waitpid gives it.
    pub status: i32,
    /// Init ended the run at its wall-clock deadline (limit + grace).
    pub deadline_passed: bool,
    /// Why init stopped the run before the target ended, if it did.
    pub stopped: Option<Stop>,
    /// Largest memory of the run's processes together that init's samples
    /// saw (0 when it did not sample).
    pub peak_sampled_kib: u64,
    /// From the start of the target to its end (or to the deadline).
    pub wall_us: u64,
    /// getrusage(RUSAGE_CHILDREN) of init after the last process of the
    /// run was reaped: the whole run, exactly.
    pub user_us: u64,
    pub sys_us: u64,
    /// Context switches, voluntary and forced, from the same rusage.
    pub csw_voluntary: u64,
    pub csw_forced: u64,
    /// Largest resident set of any process of the run.
    pub maxrss_kib: u64,
    /// The run's cgroup counters, read after the same reaping.
    pub cgroup: Option<CgroupCounters>,
}

/// The network a run had.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A network namespace of its own whose only interface is its loopback
    /// (up): no address of the host can be reached.
    Loopback,
    /// The host's network: the caller asked (`share_net`) and the policy
    /// allows it.
    Host,
}

impl Network {
    /// Its name in the JSON report and the meta file.
    pub fn name(self) -> &'static str {
        match self {
            Network::Loopback => "loopback",
            Network::Host => "host",
        }
    }
}

/// Why the supervisor stopped a run.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The whole run's CPU time reached limit + grace.
    Cpu,
    /// The sampled memory of the run passed its limit (no memory cgroup).
    Memory,
    /// The caller asked: the frontend sends SIGUSR1 to the helper when the
    /// output it relays passes its limit.
    ByCaller,
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
    /// Stopped by this signal (SIGSTOP): the run ended there, as in the
    /// original, and init killed what was left.
    Stopped(i32),
}
