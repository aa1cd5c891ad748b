//! The one table of limits. Each row says how a limit is named in messages,
//! which policy key caps it, which resource limits of the target it becomes
//! and under which key it is reported: the frontend's request, the policy's
//! maxima and checks, the target's rlimits and the JSON report all walk this
//! table, so a new limit is one variant and one row.

use serde::{Deserialize, Serialize};

/// A kind of limit; the index of its row in [`TABLE`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// CPU time (user + system) of the whole run, ms.
    Cpu,
    /// Wall clock from the target's exec, ms.
    Wall,
    /// Time granted past the CPU and wall limits before the run is
    /// stopped, so that a program just over its limit reports its real
    /// time, ms.
    Grace,
    /// Address space of each process (RLIMIT_AS and RLIMIT_DATA), KiB.
    Mem,
    /// Memory of the whole run (its memory cgroup, or samples), KiB.
    Rss,
    Stack,
    Core,
    /// Largest file the target may write; 0 forbids writing to regular
    /// files at all, KiB.
    Fsize,
    /// Processes the target may create besides itself.
    Nproc,
    /// Open files per process.
    Nfile,
    /// Bytes the target may write to its stdout and stderr together.
    Output,
}

/// How a limit becomes resource limits of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rlimit {
    /// Not a resource limit.
    None,
    /// These resources, at the value times the factor.
    Scaled(&'static [Resource], u64),
    /// RLIMIT_NPROC at the value plus one (the target itself).
    ProcessesBesidesItself,
    /// RLIMIT_CPU in whole seconds at limit + grace, rounded up: a backstop
    /// per process behind the exact limit on the whole run.
    CpuSecondsWithGrace,
}

/// The resource limits the table names (the helper maps them to the
/// kernel's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    As,
    Data,
    Stack,
    Core,
    Fsize,
    Nproc,
    Nofile,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct LimitSpec {
    pub limit: Limit,
    /// As messages name it: "the cpu limit of ...".
    pub name: &'static str,
    /// Unit of the value, after a number in messages (" ms", " KiB", "").
    pub unit: &'static str,
    /// Policy key of its maximum (two limits may share one).
    pub policy_key: &'static str,
    /// How many units of the value one unit of the policy's number is
    /// (the policy gives seconds for ms, KiB for bytes).
    pub policy_scale: f64,
    pub rlimit: Rlimit,
    /// Key in the JSON report's `limits` object.
    pub json_key: &'static str,
}

const fn row(
    limit: Limit,
    name: &'static str,
    unit: &'static str,
    policy_key: &'static str,
    policy_scale: f64,
    rlimit: Rlimit,
    json_key: &'static str,
) -> LimitSpec {
    LimitSpec { limit, name, unit, policy_key, policy_scale, rlimit, json_key }
}

use Resource as R;

/// Every limit, in the order of [`Limit`]'s variants.
#[rustfmt::skip]
pub const TABLE: [LimitSpec; Limit::COUNT] = [
    row(Limit::Cpu, "cpu", " ms", "max_cpu", 1000.0, Rlimit::CpuSecondsWithGrace, "cpu_ms"),
    row(Limit::Wall, "wall-clock", " ms", "max_wall", 1000.0, Rlimit::None, "wall_ms"),
    row(Limit::Grace, "grace", " ms", "max_wall", 1000.0, Rlimit::None, "grace_ms"),
    row(Limit::Mem, "memory", " KiB", "max_mem", 1.0, Rlimit::Scaled(&[R::As, R::Data], 1024), "mem_kib"),
    row(Limit::Rss, "resident memory", " KiB", "max_rss", 1.0, Rlimit::None, "rss_kib"),
    row(Limit::Stack, "stack", " KiB", "max_stack", 1.0, Rlimit::Scaled(&[R::Stack], 1024), "stack_kib"),
    row(Limit::Core, "core", " KiB", "max_core", 1.0, Rlimit::Scaled(&[R::Core], 1024), "core_kib"),
    row(Limit::Fsize, "file size", " KiB", "max_fsize", 1.0, Rlimit::Scaled(&[R::Fsize], 1024), "fsize_kib"),
    row(Limit::Nproc, "process", "", "max_nproc", 1.0, Rlimit::ProcessesBesidesItself, "nproc"),
    row(Limit::Nfile, "open file", "", "max_nfile", 1.0, Rlimit::Scaled(&[R::Nofile], 1), "nfile"),
    row(Limit::Output, "output", " bytes", "max_output", 1024.0, Rlimit::None, "output_bytes"),
];

impl Limit {
    pub const COUNT: usize = 11;

    /// Every limit, in the table's order.
    pub const ALL: [Limit; Limit::COUNT] = {
        let mut all = [Limit::Cpu; Limit::COUNT];
        let mut i = 0;
        while i < Limit::COUNT {
            all[i] = TABLE[i].limit;
            i += 1;
        }
        all
    };

    pub fn spec(self) -> &'static LimitSpec {
        &TABLE[self as usize]
    }
}

/// The limits of one run; `None`: no limit of this kind (the policy may
/// refuse that).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits([Option<u64>; Limit::COUNT]);

impl Limits {
    pub fn get(&self, limit: Limit) -> Option<u64> {
        self.0[limit as usize]
    }

    pub fn set(&mut self, limit: Limit, value: Option<u64>) {
        self.0[limit as usize] = value;
    }

    /// Builder form of [`Limits::set`].
    pub fn with(mut self, limit: Limit, value: Option<u64>) -> Self {
        self.set(limit, value);
        self
    }

    /// Every limit with its row.
    pub fn iter(&self) -> impl Iterator<Item = (&'static LimitSpec, Option<u64>)> + '_ {
        TABLE.iter().map(|spec| (spec, self.get(spec.limit)))
    }

    /// When a time limit (CPU or wall) ends the run: the limit plus the
    /// grace, in microseconds, saturating. The one place grace is added.
    pub fn deadline_us(&self, limit: Limit) -> Option<u64> {
        let grace = self.get(Limit::Grace).unwrap_or(0);
        self.get(limit).map(|ms| ms.saturating_add(grace).saturating_mul(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_the_order_of_the_variants() {
        for (i, spec) in TABLE.iter().enumerate() {
            assert_eq!(spec.limit as usize, i, "{}", spec.name);
        }
    }

    #[test]
    fn grace_is_added_once_and_saturates() {
        let l = Limits::default().with(Limit::Cpu, Some(1500)).with(Limit::Grace, Some(500));
        assert_eq!(l.deadline_us(Limit::Cpu), Some(2_000_000));
        assert_eq!(l.deadline_us(Limit::Wall), None);
        let huge = l.with(Limit::Grace, Some(u64::MAX));
        assert_eq!(huge.deadline_us(Limit::Cpu), Some(u64::MAX));
    }
}
