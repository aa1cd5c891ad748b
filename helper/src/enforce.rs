//! The limits of the whole run that no resource limit covers: CPU time of
//! all its processes together, to the millisecond, and its memory when no
//! memory cgroup holds it. Enforced by init, which neither the caller nor
//! the target can stop or slow down (root in all its ids): a stopped,
//! blocked or dead supervisor does not lift them.
//!
//! Init's /proc is the run's own, so every process it lists is the run's.

use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use nix::unistd::Pid;
use shared::{Limit, Limits, Stop};

use crate::cgroup::{CpuCounter, RunCgroup};

/// Shortest pause between two looks at a CPU limit: a look costs tens of
/// microseconds, and the limit is then hit within about this much.
const MIN_LOOK_US: u64 = 250;

/// CPU time left under the limit below which init looks again at once
/// instead of sleeping: waking from a sleep can take a millisecond on a
/// virtual CPU.
const SPIN_US: u64 = 3000;

/// Wall time init may spend looking at once, per run, besides
/// `SPIN_PER_CPU` times the CPU time the run uses meanwhile. A busy run
/// uses its last `SPIN_US` in about that much, or keeps earning more
/// (on a loaded machine, where it gets a share of a CPU); but a run that
/// stops using the CPU there never reaches its limit, and init, root at
/// niceness 0 outside the run's cgroups, spun a whole CPU of the host
/// until the wall limit, up to a day (a review of the thirteenth round:
/// `--cpu 0.003 -- /bin/sleep 100`). Since the run has less than
/// `SPIN_US` to use, init spins 10 + 4 × 3 ms at most per run. Past it,
/// init sleeps between looks as elsewhere, a millisecond or more.
const SPIN_BUDGET: Duration = Duration::from_millis(10);
const SPIN_PER_CPU: u32 = 4;

/// How often the run's memory is sampled when no cgroup limits it.
const MEMORY_LOOK: Duration = Duration::from_millis(10);

/// A look that finds the run idle, or samples its memory, takes at most
/// about this share of init's time: the next one waits at least this many
/// times as long as the last took. Without a cgroup's counter a look reads
/// every process of the run (`sample`), so its cost grows with them: with
/// 2,000 idle processes, looks every 10 ms (`--rss`) or every millisecond
/// (near the CPU limit) kept init, root at niceness 0 outside the run's
/// cgroups, busy on a host CPU for the whole wall limit: 14 CPU-seconds in
/// 20 s (a review of the thirteenth round). Not while the run uses the
/// CPU: then the looks follow what is left of its limit, as they must to
/// stop it there (applied to them too, a run of 6,000 idle processes and
/// two busy threads overshot `--cpu 3` by 3.4 CPU-seconds: a later review),
/// and what they cost is bounded by the CPU the run uses.
const LOOK_COST_RATIO: u32 = 20;

/// A run counts as busy, so that init's next look follows what is left of
/// its limit rather than wait as for an idle run, when it used at least
/// 1/`BUSY_SHARE` of a CPU since the last look: a run that woke for a few
/// microseconds before each of init's looks counted as busy, and kept init
/// reading its 279 processes, half a CPU, on 10 ms of its own (a review of
/// the thirteenth round). A busy run spends what is left of its limit
/// within `BUSY_SHARE` times as long, which bounds the looks it gets.
const BUSY_SHARE: u64 = 4;

/// Longest pause, times the run's CPUs (a millisecond at least), between
/// two looks at a run near its CPU limit whose CPU time stands still: past
/// `SPIN_BUDGET`, an idle run no longer wakes init every millisecond for
/// the rest of its wall limit (20 ms on two CPUs); the pause doubles from
/// a millisecond while the time stands still, and a run that starts again
/// on all its CPUs has used about this much more before init sees it.
const IDLE_LOOK_MAX: Duration = Duration::from_millis(40);

/// Init's look at the run's CPU time and memory.
pub struct Enforcer {
    /// CPU time of the whole run at which it is stopped (limit + grace).
    cpu_kill_us: Option<u64>,
    /// Sampled memory limit, KiB (only without a memory cgroup).
    sampled_rss_max: Option<u64>,
    counter: Option<CpuCounter>,
    cpus: u64,
    next: Option<Instant>,
    /// When init first looked at once, and the run's CPU time then, µs
    /// (`SPIN_BUDGET`).
    spun_from: Option<(Instant, u64)>,
    /// The run's CPU time at the last look, and the pause it earns while
    /// it stands still (`IDLE_LOOK_MAX`).
    last_cpu_us: u64,
    last_look: Instant,
    idle_pause: Duration,
    /// Largest memory of the run's processes together that a sample saw.
    pub peak_sampled_kib: u64,
}

impl Enforcer {
    pub fn new(limits: &Limits, cgroup: Option<&RunCgroup>) -> Enforcer {
        let memory_limited = cgroup.is_some_and(RunCgroup::limits_memory);
        let mut e = Enforcer {
            cpu_kill_us: limits.deadline_us(Limit::Cpu),
            sampled_rss_max: limits.get(Limit::Rss).filter(|_| !memory_limited),
            counter: cgroup.and_then(RunCgroup::cpu_counter),
            cpus: cpu_count(),
            next: None,
            spun_from: None,
            last_cpu_us: 0,
            last_look: Instant::now(),
            idle_pause: Duration::ZERO,
            peak_sampled_kib: 0,
        };
        e.next = e.next_look(0, Duration::ZERO);
        e
    }

    /// How long until the next look is due; `None`: never.
    pub fn wait(&self) -> Option<Duration> {
        self.next.map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Looks if a look is due: `Some` when a limit was reached.
    pub fn look(&mut self) -> Option<Stop> {
        if self.next.is_none_or(|t| Instant::now() < t) {
            return None;
        }
        let began = Instant::now();
        let sampled = (self.counter.is_none() || self.sampled_rss_max.is_some()).then(sample);
        let (sampled_cpu_us, rss_kib) = sampled.unwrap_or((0, 0));
        // The cgroup's counter whenever there is one, memory sampled or
        // not: it counts every process that was ever in the run, those the
        // kernel reaped without a wait (their parent ignored SIGCHLD) too,
        // whose time neither a sample nor init's rusage sees.
        let cpu_us = match &self.counter {
            Some(counter) => counter.cpu_us().unwrap_or(sampled_cpu_us),
            None => sampled_cpu_us,
        };
        self.peak_sampled_kib = self.peak_sampled_kib.max(rss_kib);
        if self.cpu_kill_us.is_some_and(|kill| cpu_us >= kill) {
            return Some(Stop::Cpu);
        }
        if self.sampled_rss_max.is_some_and(|max| rss_kib > max) {
            return Some(Stop::Memory);
        }
        self.next = self.next_look(cpu_us, began.elapsed());
        None
    }

    /// A CPU limit cannot be reached sooner than (what is left) / (number
    /// of CPUs). `took`: how long the last look took (`LOOK_COST_RATIO`).
    fn next_look(&mut self, cpu_used: u64, took: Duration) -> Option<Instant> {
        // Idle unless the run used, since the last look, a `BUSY_SHARE`
        // of a CPU.
        let now = Instant::now();
        let since = now.saturating_duration_since(self.last_look);
        self.last_look = now;
        let since_us = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
        let idle = cpu_used.saturating_sub(self.last_cpu_us).saturating_mul(BUSY_SHARE) < since_us;
        let longest = (IDLE_LOOK_MAX / self.cpus as u32).max(Duration::from_millis(1));
        self.idle_pause = match idle {
            true => (self.idle_pause * 2).clamp(Duration::from_millis(1), longest),
            false => Duration::ZERO,
        };
        self.last_cpu_us = cpu_used;
        let at_least = match idle {
            true => self.idle_pause.max(took * LOOK_COST_RATIO),
            false => Duration::ZERO,
        };
        let cpu = self.cpu_kill_us.map(|kill| match kill.saturating_sub(cpu_used) {
            left if left < SPIN_US && self.may_spin(cpu_used) => Duration::ZERO,
            left => Duration::from_micros((left / self.cpus).max(MIN_LOOK_US)).max(at_least),
        });
        let mem = self.sampled_rss_max.map(|_| MEMORY_LOOK.max(took * LOOK_COST_RATIO));
        let wait = [cpu, mem].into_iter().flatten().min()?;
        Instant::now().checked_add(wait)
    }

    /// Whether init may look again at once: within `SPIN_BUDGET`, and
    /// `SPIN_PER_CPU` times the CPU time the run has used since, of its
    /// first such look.
    fn may_spin(&mut self, cpu_used: u64) -> bool {
        let now = Instant::now();
        let (from, cpu_then) = *self.spun_from.get_or_insert((now, cpu_used));
        let earned = Duration::from_micros(cpu_used.saturating_sub(cpu_then)) * SPIN_PER_CPU;
        now.saturating_duration_since(from) < SPIN_BUDGET + earned
    }
}

/// How many CPUs the run may use at once (at least 1).
fn cpu_count() -> u64 {
    let Ok(set) = nix::sched::sched_getaffinity(Pid::from_raw(0)) else {
        return 1;
    };
    let n = (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).count();
    n.max(1) as u64
}

/// CPU time (user + system) used so far by the live process `pid`, all
/// its threads, exactly; 0 once it has ended.
fn process_cpu_us(pid: Pid) -> u64 {
    let clock = nix::time::ClockId::pid_cpu_clock_id(pid);
    let ts = clock.and_then(nix::time::clock_gettime);
    ts.map_or(0, |t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
}

/// Reads one field of /proc/PID/stat (1-based, counted after the command
/// name, which may contain spaces).
fn stat_field(text: &str, n: usize) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 2..];
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

/// A sample of the run: CPU time so far (what init reaped, exactly; live
/// processes exactly; what they reaped, in clock ticks) and the resident
/// memory of all its processes.
fn sample() -> (u64, u64) {
    let tick_us = 1_000_000 / 100; // USER_HZ is 100 on Linux
    let mut cpu_us = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |r| {
        let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
        us(r.user_time()) + us(r.system_time())
    });
    let mut rss_kib = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (cpu_us, 0);
    };
    for entry in dir.flatten() {
        // Init's own time (building the namespaces) is not the run's.
        let pid = match entry.file_name().to_str().map(str::parse::<i32>) {
            Some(Ok(pid)) if pid > 1 => pid,
            _ => continue,
        };
        cpu_us += process_cpu_us(Pid::from_raw(pid));
        let fields = |stat: &str| {
            let reaped = stat_field(stat, 16).unwrap_or(0) + stat_field(stat, 17).unwrap_or(0);
            (reaped, stat_field(stat, 24).unwrap_or(0))
        };
        if let Ok((reaped, rss_pages)) = crate::sys::with_proc(&format!("/proc/{pid}/stat"), fields)
        {
            cpu_us += reaped * tick_us;
            rss_kib += rss_pages * 4;
        }
    }
    (cpu_us, rss_kib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_command_names_with_spaces() {
        let stat = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23";
        assert_eq!(stat_field(stat, 4), Some(1));
        assert_eq!(stat_field(stat, 14), Some(11));
    }
}
