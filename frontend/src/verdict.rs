//! What the frontend makes of a run: the helper sends raw facts
//! ([`shared::Facts`], read as [`RunFacts`]: how the target ended, from its
//! wait status, and which figures stand in when init could not report),
//! the frontend alone decides which limit ended the run, which figures it
//! reports and where they came from ([`judge`]), and what the verdict is
//! ([`Verdict`]). Nothing here is privileged, so none of it
//! has to be audited as part of the setuid helper.

use std::io;

use nix::sys::signal::Signal;
use shared::{CgroupCounters, End, Facts, Limit, Limits, Network, Stop};

pub(crate) const SIGHUP: i32 = Signal::SIGHUP as i32;
pub(crate) const SIGKILL: i32 = Signal::SIGKILL as i32;
pub(crate) const SIGPIPE: i32 = Signal::SIGPIPE as i32;
const SIGXCPU: i32 = Signal::SIGXCPU as i32;
const SIGXFSZ: i32 = Signal::SIGXFSZ as i32;

/// How the target ended and what it used, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub end: End,
    /// The limit that ended the run, if one did.
    pub limit: Option<LimitKind>,
    /// Set when execve itself failed: the reason, in the C library's words.
    pub exec_error: Option<String>,
    pub wall_us: u64,
    /// User and system time of the processes reaped with a wait (rusage).
    pub user_us: u64,
    pub sys_us: u64,
    /// CPU time of the whole run: `user_us + sys_us`, or the run's cgroup
    /// counter where that saw more (`cpu_of`).
    pub cpu_us: u64,
    /// Peak resident memory: the largest resident set of one of its
    /// processes, or of all of them together when the supervisor's samples
    /// saw more. The cgroup's peak of the whole run is in `cgroup`.
    pub peak_kib: u64,
    pub memory_source: Source,
    /// Largest resident set of any one process of the run (rusage).
    pub maxrss_kib: u64,
    pub cpu_source: Source,
    /// Whether safeexec ended the run (a time limit, its memory samples,
    /// the output limit, the CPU backstop), not the program itself or the
    /// kernel's OOM killer: isolate's `killed`.
    pub killed: bool,
    /// Context switches of the run, voluntary and forced; `None` when only
    /// samples are known (`cpu_source` is `Proc`).
    pub csw: Option<(u64, u64)>,
    /// Bytes the target wrote to stdout and stderr, when they were counted
    /// (only with an output limit).
    pub output_bytes: Option<u64>,
    pub uid: u32,
    pub gid: u32,
    /// The limits in force during the run.
    pub limits: Limits,
    pub cgroup: Option<CgroupCounters>,
    pub network: Network,
    /// Why the run has no cgroup counters, when it has none
    /// (`run::why_no_cgroup`).
    pub cgroup_absent: Option<&'static str>,
    /// Why the run had no memory cgroup, from the helper.
    pub cgroup_missing: Option<String>,
}

/// The helper's facts as the frontend judges them: init's figures, or,
/// where init was killed before it could report, the supervisor's in their
/// place (its clock, its wait for init) and CPU time from samples only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    /// How the target ended, as init reaped it; `None` when init was killed
    /// before it could say (the supervisor's backstop).
    pub end: Option<End>,
    /// Init ended the run at its wall-clock deadline (limit + grace).
    pub deadline_passed: bool,
    /// Why init stopped the run before the target ended, if it did.
    pub stopped: Option<Stop>,
    /// execve's errno inside the sandbox, when it failed.
    pub exec_errno: Option<i32>,
    /// From the target's exec to its end (init's clock), or the supervisor's
    /// clock when init was killed.
    pub wall_us: u64,
    /// CPU time of every process of the run: init's rusage of its reaped
    /// children, or only the supervisor's samples (`cpu_sampled`).
    pub user_us: u64,
    pub sys_us: u64,
    pub cpu_sampled: bool,
    /// Context switches of every process of the run, voluntary and forced
    /// (init's rusage; 0 with `cpu_sampled`).
    pub csw_voluntary: u64,
    pub csw_forced: u64,
    /// Largest resident set of any one process of the run (rusage).
    pub maxrss_kib: u64,
    /// Largest resident memory of all the run's processes together that the
    /// supervisor's samples saw (0 when it did not sample).
    pub sampled_peak_kib: u64,
    pub uid: u32,
    pub gid: u32,
    /// The limits in force during the run.
    pub limits: Limits,
    /// The run's cgroup counters, where it had cgroups.
    pub cgroup: Option<CgroupCounters>,
    /// The network the run had.
    pub network: Network,
    /// Why the run had no memory cgroup (its memory figures and limit then
    /// come from rusage and sampling); `None` when it had one.
    pub cgroup_missing: Option<String>,
}

impl From<Facts> for RunFacts {
    fn from(facts: Facts) -> RunFacts {
        let r = facts.init.as_ref();
        RunFacts {
            end: r.map(|r| end_of(r.status)),
            deadline_passed: r.is_some_and(|r| r.deadline_passed),
            stopped: r.and_then(|r| r.stopped),
            exec_errno: facts.exec_errno,
            wall_us: r.map_or(facts.supervisor_wall_us, |r| r.wall_us),
            user_us: r.map_or(0, |r| r.user_us),
            sys_us: r.map_or(0, |r| r.sys_us),
            cpu_sampled: r.is_none(),
            csw_voluntary: r.map_or(0, |r| r.csw_voluntary),
            csw_forced: r.map_or(0, |r| r.csw_forced),
            maxrss_kib: r.map_or(facts.reaped_maxrss_kib, |r| r.maxrss_kib),
            sampled_peak_kib: r.map_or(0, |r| r.peak_sampled_kib),
            uid: facts.uid,
            gid: facts.gid,
            limits: facts.limits,
            cgroup: facts.init.and_then(|r| r.cgroup),
            network: facts.network,
            cgroup_missing: facts.cgroup_missing,
        }
    }
}

/// How the target ended, from its wait status.
fn end_of(status: i32) -> End {
    use nix::libc::{WEXITSTATUS, WIFSIGNALED, WIFSTOPPED, WSTOPSIG, WTERMSIG};
    if WIFSIGNALED(status) {
        End::Signaled(WTERMSIG(status))
    } else if WIFSTOPPED(status) {
        End::Stopped(WSTOPSIG(status))
    } else {
        End::Exited(WEXITSTATUS(status))
    }
}

/// Which limit ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Cpu,
    Wall,
    Memory,
    FileSize,
    Output,
}

impl LimitKind {
    /// Its name in the JSON report.
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

/// Where a figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// rusage of the reaped processes (kernel-exact, whole run).
    Rusage,
    /// The supervisor's /proc samples during the run.
    Proc,
    /// cgroup counters.
    Cgroup,
}

impl Source {
    /// Its name in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Source::Rusage => "rusage",
            Source::Proc => "proc",
            Source::Cgroup => "cgroup",
        }
    }
}

/// The outcome of a run from the helper's facts and the bytes the output
/// relay counted (`None` when there was no relay, i.e. no output limit).
pub fn judge(facts: RunFacts, relayed: Option<u64>) -> Outcome {
    let end = facts.end.unwrap_or(End::Signaled(SIGKILL));
    let (cpu_us, cpu_source) = cpu_of(&facts);
    let limit = limit_hit(&facts, end, relayed, cpu_us);
    let killed = facts.end.is_none()
        || facts.stopped.is_some()
        || facts.deadline_passed
        || (limit == Some(LimitKind::Cpu) && matches!(end, End::Signaled(SIGKILL | SIGXCPU)));
    // Resident memory, as the original reported it. The cgroup's peak (all
    // processes at once, but also the page cache the run read in, such as
    // its input files) is a figure of its own, in `cgroup`.
    let (peak_kib, memory_source) = if facts.maxrss_kib >= facts.sampled_peak_kib {
        (facts.maxrss_kib, Source::Rusage)
    } else {
        (facts.sampled_peak_kib, Source::Proc)
    };
    Outcome {
        end,
        limit,
        exec_error: facts.exec_errno.map(strerror),
        wall_us: facts.wall_us,
        user_us: facts.user_us,
        sys_us: facts.sys_us,
        cpu_us,
        peak_kib,
        memory_source,
        maxrss_kib: facts.maxrss_kib,
        cpu_source,
        killed,
        csw: (!facts.cpu_sampled).then_some((facts.csw_voluntary, facts.csw_forced)),
        output_bytes: facts.limits.get(Limit::Output).and(relayed),
        uid: facts.uid,
        gid: facts.gid,
        limits: facts.limits,
        cgroup: facts.cgroup,
        network: facts.network,
        cgroup_absent: None,
        cgroup_missing: facts.cgroup_missing,
    }
}

/// More CPU time in the run's cgroup than in rusage by which the cgroup's
/// figure stands for the run's: below it, the two differ by their own
/// accounting (the cgroup also counts the target's set-up before its
/// exec, as the target's rusage does).
const CGROUP_CPU_SLACK_US: u64 = 1000;

/// The run's CPU time and where it came from. Init's rusage counts the
/// processes reaped with a wait (all of them, as init reaps what is left);
/// a process whose parent ignores SIGCHLD is reaped by the kernel at its
/// exit, and its time reaches no rusage. The run's cgroup counts it: an
/// independent review hid 1.5 s of CPU from the report that way.
fn cpu_of(facts: &RunFacts) -> (u64, Source) {
    let rusage = facts.user_us.saturating_add(facts.sys_us);
    match facts.cgroup.as_ref().and_then(|c| c.cpu_us) {
        Some(cgroup) if cgroup > rusage.saturating_add(CGROUP_CPU_SLACK_US) => {
            (cgroup, Source::Cgroup)
        }
        _ if facts.cpu_sampled => (rusage, Source::Proc),
        _ => (rusage, Source::Rusage),
    }
}

/// Where the run's memory figures and limit came from: `cgroup v1`,
/// `cgroup v2`, or `sampling: ` and why the run had no memory cgroup (the
/// helper's reason, which it knows exactly; else the frontend's guess).
pub fn figures_from(o: &Outcome) -> String {
    match &o.cgroup {
        Some(c) if c.memory_peak_kib.is_some() => format!("cgroup v{}", c.version),
        _ => {
            let why = o.cgroup_missing.as_deref().or(o.cgroup_absent).unwrap_or("no memory cgroup");
            format!("sampling: {why}")
        }
    }
}

/// The limit that ended the run: the first of these that applies.
fn limit_hit(facts: &RunFacts, end: End, relayed: Option<u64>, cpu_us: u64) -> Option<LimitKind> {
    let l = &facts.limits;
    // Used more than the limit itself (the grace only delays the stop).
    let over = |limit: Limit, used_us: u64| {
        l.get(limit).is_some_and(|ms| used_us > ms.saturating_mul(1000))
    };
    if let Some(stop) = facts.stopped {
        return Some(match stop {
            Stop::Cpu => LimitKind::Cpu,
            Stop::Memory => LimitKind::Memory,
            Stop::ByCaller => LimitKind::Output,
        });
    }
    // An OOM kill is the run's own only when the run reached its own memory
    // limit (not a parent cgroup's or the machine's).
    if facts.cgroup.as_ref().is_some_and(|c| c.oom_kills > 0 && c.memory_limit_hit) {
        return Some(LimitKind::Memory);
    }
    if facts.deadline_passed {
        return Some(LimitKind::Wall);
    }
    // SIGXCPU is not the limit by itself: the CPU backstop comes past the
    // limit (caught just below); a program may raise it, and the original
    // and isolate both report that as the signal.
    if end == End::Signaled(SIGXFSZ) {
        return Some(LimitKind::FileSize);
    }
    if over(Limit::Cpu, cpu_us) {
        return Some(LimitKind::Cpu);
    }
    if over(Limit::Wall, facts.wall_us) {
        return Some(LimitKind::Wall);
    }
    match (relayed, l.get(Limit::Output)) {
        (Some(bytes), Some(max)) if bytes > max => Some(LimitKind::Output),
        _ => None,
    }
}

/// An errno in the C library's words, without std's " (os error N)".
fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.split_once(" (os error") {
        Some((words, _)) => words.to_string(),
        None => text,
    }
}

/// What happened to the run, in the original's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    NonZeroExit(i32),
    Signal(i32),
    MemoryLimit,
    TimeLimit,
    OutputLimit,
    /// The target died of SIGHUP (the original's wording).
    InvalidFunction,
    /// The target died of SIGPIPE (the original's wording).
    InternalError,
}

impl Verdict {
    pub fn of(outcome: &Outcome) -> Verdict {
        match (outcome.limit, outcome.end) {
            (Some(LimitKind::Memory), _) => Verdict::MemoryLimit,
            (Some(LimitKind::Cpu | LimitKind::Wall), _) => Verdict::TimeLimit,
            (Some(LimitKind::Output | LimitKind::FileSize), _) => Verdict::OutputLimit,
            (None, End::Exited(0)) => Verdict::Ok,
            (None, End::Exited(code)) => Verdict::NonZeroExit(code),
            (None, End::Signaled(SIGXFSZ)) => Verdict::OutputLimit,
            (None, End::Signaled(SIGHUP)) => Verdict::InvalidFunction,
            (None, End::Signaled(SIGPIPE)) => Verdict::InternalError,
            // A stopped program: as the original, the signal that stopped it.
            (None, End::Signaled(sig) | End::Stopped(sig)) => Verdict::Signal(sig),
        }
    }

    /// The verdict line of the original report.
    pub fn line(self) -> String {
        match self {
            Verdict::Ok => "OK".into(),
            Verdict::NonZeroExit(code) => format!("Command exited with non-zero status ({code})"),
            Verdict::Signal(sig) => {
                // (sic) the original's word for a signal past 31, byte for byte.
                let name = if (1..=31).contains(&sig) { signal_name(sig) } else { "UNKONWN" };
                format!("Command terminated by signal ({sig}: {name})")
            }
            Verdict::MemoryLimit => "Memory Limit Exceeded".into(),
            Verdict::TimeLimit => "Time Limit Exceeded".into(),
            Verdict::OutputLimit => "Output Limit Exceeded".into(),
            Verdict::InvalidFunction => "Invalid Function".into(),
            Verdict::InternalError => "Internal Error".into(),
        }
    }

    /// A stable token for machine-readable reports.
    pub fn token(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NonZeroExit(_) => "nonzero_exit",
            Verdict::Signal(_) | Verdict::InvalidFunction | Verdict::InternalError => "signal",
            Verdict::MemoryLimit => "memory_limit",
            Verdict::TimeLimit => "time_limit",
            Verdict::OutputLimit => "output_limit",
        }
    }
}

/// The name of a signal number, as the original printed it.
pub fn signal_name(sig: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "SIG0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig).ok().and_then(|i| NAMES.get(i).copied()).unwrap_or("SIGRT")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that exited 0 well within its limits: 1 s of CPU, 2 s of wall
    /// clock, 100 bytes of output.
    fn facts() -> RunFacts {
        RunFacts {
            end: Some(End::Exited(0)),
            deadline_passed: false,
            stopped: None,
            exec_errno: None,
            wall_us: 1_500_000,
            user_us: 300_000,
            sys_us: 200_000,
            cpu_sampled: false,
            csw_voluntary: 3,
            csw_forced: 4,
            maxrss_kib: 1000,
            sampled_peak_kib: 0,
            uid: 7,
            gid: 8,
            limits: Limits::default()
                .with(Limit::Cpu, Some(1000))
                .with(Limit::Wall, Some(2000))
                .with(Limit::Output, Some(100)),
            cgroup: None,
            network: Network::Loopback,
            cgroup_missing: None,
        }
    }

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(end_of(0), End::Exited(0));
        assert_eq!(end_of(3 << 8), End::Exited(3));
        assert_eq!(end_of(9), End::Signaled(9));
        assert_eq!(end_of(0x137f), End::Stopped(19));
    }

    fn cgroup(oom_kills: u64, memory_limit_hit: bool) -> CgroupCounters {
        CgroupCounters {
            version: 2,
            memory_peak_kib: Some(2048),
            cpu_us: Some(500_000),
            pids_peak: Some(1),
            oom_kills,
            memory_limited: true,
            memory_limit_hit,
        }
    }

    fn limit_of(f: RunFacts, relayed: Option<u64>) -> Option<LimitKind> {
        judge(f, relayed).limit
    }

    #[test]
    fn a_run_within_its_limits_hit_none() {
        let o = judge(facts(), Some(100));
        assert_eq!(o.limit, None);
        assert_eq!(o.end, End::Exited(0));
        assert_eq!(Verdict::of(&o), Verdict::Ok);
        assert_eq!((o.uid, o.gid, o.wall_us), (7, 8, 1_500_000));
        assert_eq!(o.limits, facts().limits);
    }

    #[test]
    fn init_killed_before_it_could_say_is_sigkill() {
        let o = judge(RunFacts { end: None, ..facts() }, None);
        assert_eq!(o.end, End::Signaled(9));
    }

    #[test]
    fn a_stop_by_the_supervisor_names_its_limit() {
        for (stop, kind) in [
            (Stop::Cpu, LimitKind::Cpu),
            (Stop::Memory, LimitKind::Memory),
            (Stop::ByCaller, LimitKind::Output),
        ] {
            let f = RunFacts {
                stopped: Some(stop),
                // Every later rule applies too: the stop comes first.
                deadline_passed: true,
                end: Some(End::Signaled(SIGXFSZ)),
                cgroup: Some(cgroup(1, true)),
                ..facts()
            };
            assert_eq!(limit_of(f, Some(1000)), Some(kind), "{stop:?}");
        }
    }

    #[test]
    fn an_oom_kill_is_memory_only_at_the_runs_own_limit() {
        let own = RunFacts {
            cgroup: Some(cgroup(1, true)),
            deadline_passed: true,
            end: Some(End::Signaled(9)),
            ..facts()
        };
        assert_eq!(limit_of(own, None), Some(LimitKind::Memory));
        // Killed for a parent cgroup's or the machine's memory: the signal.
        let other =
            RunFacts { cgroup: Some(cgroup(1, false)), end: Some(End::Signaled(9)), ..facts() };
        let o = judge(other, None);
        assert_eq!(o.limit, None);
        assert_eq!(Verdict::of(&o), Verdict::Signal(9));
        // Reached the limit, but nothing was killed.
        let no_kill = RunFacts { cgroup: Some(cgroup(0, true)), ..facts() };
        assert_eq!(limit_of(no_kill, None), None);
    }

    #[test]
    fn a_passed_deadline_is_wall_before_the_signals() {
        let f = RunFacts { deadline_passed: true, end: Some(End::Signaled(SIGXCPU)), ..facts() };
        assert_eq!(limit_of(f, None), Some(LimitKind::Wall));
    }

    #[test]
    fn sigxcpu_is_cpu_only_past_the_limit_and_sigxfsz_is_file_size() {
        let raised = RunFacts { end: Some(End::Signaled(SIGXCPU)), ..facts() };
        let o = judge(raised, None);
        assert_eq!((o.limit, o.killed), (None, false));
        assert_eq!(Verdict::of(&o).line(), "Command terminated by signal (24: SIGXCPU)");
        let backstop =
            RunFacts { end: Some(End::Signaled(SIGXCPU)), user_us: 2_000_000, ..facts() };
        let o = judge(backstop, None);
        assert_eq!((o.limit, o.killed), (Some(LimitKind::Cpu), true));
        let xfsz = RunFacts { end: Some(End::Signaled(SIGXFSZ)), user_us: 9_000_000, ..facts() };
        let o = judge(xfsz, None);
        assert_eq!(o.limit, Some(LimitKind::FileSize));
        assert_eq!(Verdict::of(&o), Verdict::OutputLimit);
    }

    #[test]
    fn killed_is_only_what_safeexec_ended() {
        let judged = |f: RunFacts| judge(f, None).killed;
        assert!(!judged(RunFacts { end: Some(End::Signaled(SIGKILL)), ..facts() }));
        assert!(!judged(RunFacts { end: Some(End::Stopped(19)), ..facts() }));
        assert!(!judged(RunFacts { cgroup: Some(cgroup(1, true)), ..facts() }));
        assert!(judged(RunFacts { end: None, ..facts() }));
        assert!(judged(RunFacts { deadline_passed: true, ..facts() }));
        assert!(judged(RunFacts { stopped: Some(Stop::Memory), ..facts() }));
    }

    #[test]
    fn a_stopped_program_reads_as_the_signal_that_stopped_it() {
        let o = judge(RunFacts { end: Some(End::Stopped(19)), ..facts() }, None);
        assert_eq!(o.limit, None);
        assert_eq!(Verdict::of(&o).line(), "Command terminated by signal (19: SIGSTOP)");
    }

    #[test]
    fn signals_past_31_read_as_in_the_original() {
        assert_eq!(Verdict::Signal(34).line(), "Command terminated by signal (34: UNKONWN)");
        assert_eq!(Verdict::Signal(64).line(), "Command terminated by signal (64: UNKONWN)");
        assert_eq!(Verdict::Signal(31).line(), "Command terminated by signal (31: SIGSYS)");
    }

    #[test]
    fn context_switches_are_known_unless_sampled() {
        assert_eq!(judge(facts(), None).csw, Some((3, 4)));
        assert_eq!(judge(RunFacts { cpu_sampled: true, ..facts() }, None).csw, None);
    }

    #[test]
    fn cpu_past_the_limit_is_cpu_even_within_the_grace() {
        // 600 + 401 ms of a 1000 ms limit, ended by itself within the grace.
        let f = RunFacts { user_us: 600_000, sys_us: 401_000, wall_us: 9_000_000, ..facts() };
        assert_eq!(limit_of(f, None), Some(LimitKind::Cpu));
        // Exactly at the limit is within it.
        let at = RunFacts { user_us: 600_000, sys_us: 400_000, ..facts() };
        assert_eq!(limit_of(at, None), None);
    }

    #[test]
    fn huge_figures_do_not_overflow() {
        let f = RunFacts {
            user_us: u64::MAX,
            sys_us: u64::MAX,
            limits: facts().limits.with(Limit::Cpu, Some(u64::MAX)),
            ..facts()
        };
        assert_eq!(limit_of(f, None), None);
    }

    #[test]
    fn wall_past_the_limit_is_wall() {
        let f = RunFacts { wall_us: 2_000_001, ..facts() };
        assert_eq!(limit_of(f, None), Some(LimitKind::Wall));
        let none = RunFacts {
            wall_us: u64::MAX,
            limits: facts().limits.with(Limit::Wall, None),
            ..facts()
        };
        assert_eq!(limit_of(none, None), None);
    }

    #[test]
    fn output_past_the_limit_is_output_when_counted() {
        assert_eq!(limit_of(facts(), Some(101)), Some(LimitKind::Output));
        assert_eq!(limit_of(facts(), Some(100)), None);
        // Nothing counted (no relay): nothing to judge.
        assert_eq!(limit_of(facts(), None), None);
        let unlimited = RunFacts { limits: facts().limits.with(Limit::Output, None), ..facts() };
        assert_eq!(limit_of(unlimited, Some(u64::MAX)), None);
        // Every earlier rule comes first.
        let wall = RunFacts { wall_us: 3_000_000, ..facts() };
        assert_eq!(limit_of(wall, Some(101)), Some(LimitKind::Wall));
    }

    #[test]
    fn output_bytes_are_reported_only_with_an_output_limit() {
        assert_eq!(judge(facts(), Some(42)).output_bytes, Some(42));
        let unlimited = RunFacts { limits: facts().limits.with(Limit::Output, None), ..facts() };
        assert_eq!(judge(unlimited, Some(42)).output_bytes, None);
    }

    #[test]
    fn cpu_source_says_whether_it_was_sampled() {
        assert_eq!(judge(facts(), None).cpu_source, Source::Rusage);
        let sampled = RunFacts { cpu_sampled: true, ..facts() };
        assert_eq!(judge(sampled, None).cpu_source, Source::Proc);
    }

    /// A child reaped without a wait (its parent ignored SIGCHLD) reaches
    /// no rusage; the cgroup saw it.
    #[test]
    fn cpu_time_the_cgroup_saw_beyond_rusage_is_the_runs() {
        let with_cgroup = |cpu_us| RunFacts {
            cgroup: Some(CgroupCounters { cpu_us: Some(cpu_us), ..cgroup(0, false) }),
            ..facts()
        };
        // Within the slack the two are the same figure: rusage, with its
        // split into user and system time.
        let o = judge(with_cgroup(500_000 + CGROUP_CPU_SLACK_US), None);
        assert_eq!((o.cpu_us, o.cpu_source, o.limit), (500_000, Source::Rusage, None));
        let o = judge(with_cgroup(1_600_000), None);
        assert_eq!((o.cpu_us, o.cpu_source), (1_600_000, Source::Cgroup));
        assert_eq!((o.user_us, o.sys_us), (300_000, 200_000));
        // Past the CPU limit (1 s) by the cgroup's count: the limit's.
        assert_eq!(o.limit, Some(LimitKind::Cpu));
        assert_eq!(judge(with_cgroup(400_000), None).cpu_us, 500_000);
    }

    #[test]
    fn peak_memory_is_rusage_unless_the_samples_saw_more() {
        let o = judge(RunFacts { sampled_peak_kib: 1000, ..facts() }, None);
        assert_eq!((o.peak_kib, o.memory_source), (1000, Source::Rusage));
        let o = judge(RunFacts { sampled_peak_kib: 1001, ..facts() }, None);
        assert_eq!((o.peak_kib, o.memory_source), (1001, Source::Proc));
        assert_eq!(o.maxrss_kib, 1000);
    }

    #[test]
    fn exec_error_is_the_c_librarys_words() {
        let o = judge(RunFacts { exec_errno: Some(2), ..facts() }, None);
        assert_eq!(o.exec_error.as_deref(), Some("No such file or directory"));
        assert_eq!(judge(facts(), None).exec_error, None);
    }

    #[test]
    fn names_are_the_reports() {
        let kinds = [
            LimitKind::Cpu,
            LimitKind::Wall,
            LimitKind::Memory,
            LimitKind::FileSize,
            LimitKind::Output,
        ];
        let names: Vec<_> = kinds.into_iter().map(LimitKind::name).collect();
        assert_eq!(names, ["cpu", "wall", "memory", "fsize", "output"]);
        let sources = [Source::Rusage, Source::Proc, Source::Cgroup].map(Source::name);
        assert_eq!(sources, ["rusage", "proc", "cgroup"]);
    }
}
