//! Processes, as /proc shows them, and what a test's own runs left behind.
//!
//! The suite shares its machine with other users' runs of safeexec (another
//! checkout's tests, a judge), whose uids lie in the same policy range. So it
//! never signals, nor waits for, a process because its uid is in that range
//! or because of its name. It looks only at the processes of one run of its
//! own (see [`Ctx::left_of_run`]), and kills nothing but those, and the
//! processes it started itself.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Ctx, POLICY_UID_BASE, POLICY_UID_COUNT};

/// How long processes of a finished run may take to disappear.
pub const CLEANUP_WAIT: Duration = Duration::from_secs(5);

/// Whether `uid` lies in the default policy's sandbox range.
pub fn in_policy_range(uid: u32) -> bool {
    (POLICY_UID_BASE..POLICY_UID_BASE + POLICY_UID_COUNT).contains(&uid)
}

/// The most processes one run may have whatever the policy says: a quarter
/// of this machine's `/proc/sys/kernel/pid_max` (the helper caps the
/// policy's `max_nproc` there, `unlimited` included).
pub fn process_cap() -> u64 {
    let text = fs::read_to_string("/proc/sys/kernel/pid_max").expect("read pid_max");
    text.trim().parse::<u64>().expect("pid_max is a number") / 4
}

/// A process seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// Real uid.
    pub uid: u32,
    /// The State letter (R, S, D, Z, T, ...).
    pub state: char,
    pub name: String,
    pub ppid: u32,
    /// Its pid in each pid namespace, from /proc's own down to its own
    /// (`NSpid`): one entry for a process of /proc's namespace.
    pub ns_pids: Vec<u32>,
    /// When it started, in clock ticks since boot.
    pub started: u64,
}

impl Proc {
    /// Neither a zombie nor dead: it can still run.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Whether it is the init (pid 1) of a pid namespace below /proc's.
    fn is_namespace_init(&self) -> bool {
        self.ns_pids.len() > 1 && self.ns_pids.last() == Some(&1)
    }
}

/// Reads one process's status; `None` if it is gone.
pub fn process(pid: u32) -> Option<Proc> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted from the State letter after the name's ')'.
    let started = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    let mut proc = Proc {
        pid,
        uid: u32::MAX,
        state: '?',
        name: String::new(),
        ppid: 0,
        ns_pids: Vec::new(),
        started,
    };
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("Name:") {
            proc.name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("State:") {
            proc.state = v.trim().chars().next().unwrap_or('?');
        } else if let Some(v) = line.strip_prefix("Uid:") {
            proc.uid = v.split_whitespace().next()?.parse().ok()?;
        } else if let Some(v) = line.strip_prefix("PPid:") {
            proc.ppid = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("NSpid:") {
            proc.ns_pids = v.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        }
    }
    Some(proc)
}

/// Every process in /proc.
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .collect()
}

/// The `/proc/PID/status` field `key` of a status text.
pub fn status_field<'t>(status: &'t str, key: &str) -> Option<&'t str> {
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

/// Now, in the clock ticks since boot of a process's start in /proc.
pub fn boot_ticks() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the local; CLOCK_BOOTTIME is the
    // clock of /proc/PID/stat's start time.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(r, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    let hz = ticks_per_second();
    ts.tv_sec as u64 * hz + ts.tv_nsec as u64 * hz / 1_000_000_000
}

/// CPU time (user and system) a live process has used, in seconds, to the
/// nanosecond: its CPU-time clock (0 once it is gone). /proc's times are
/// sampled at the kernel's tick, which charges a whole tick to whoever
/// runs then: wrong for a process that wakes briefly and often.
pub fn process_cpu_s(pid: u32) -> f64 {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: both calls write into the given locals only.
    let ok = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut ts) == 0
    };
    if ok {
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    } else {
        0.0
    }
}

/// The clock ticks of /proc's times (USER_HZ).
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    hz as u64
}

/// CPU time the whole machine has spent busy since boot, all CPUs and
/// kernel workers included (/proc/stat: user, nice, system, irq, softirq
/// and steal), in ms.
pub fn machine_busy_ms() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let first = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> =
        first.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().map(|&i| ticks.get(i).copied().unwrap_or(0)).sum();
    busy as f64 * 1000.0 / ticks_per_second() as f64
}

/// Children of `pid` (all its threads').
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Waits until `pid` has a live child whose real uid satisfies `want`.
pub fn wait_for_child(pid: u32, want: impl Fn(u32) -> bool, timeout: Duration) -> Option<u32> {
    wait_for(pid, |p| want(p.uid), timeout)
}

/// The run's init among the supervisor's children: the one that is pid 1
/// of a pid namespace.
pub fn wait_for_init(sup: u32, timeout: Duration) -> Option<u32> {
    wait_for(sup, Proc::is_namespace_init, timeout)
}

/// Waits until `pid` has a live child that satisfies `want`.
fn wait_for(pid: u32, want: impl Fn(&Proc) -> bool, timeout: Duration) -> Option<u32> {
    let until = Instant::now() + timeout;
    loop {
        for c in children_of(pid) {
            if process(c).is_some_and(|p| want(&p) && p.alive()) {
                return Some(c);
            }
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The host pids (supervisor, init, target) of the run whose frontend the
/// test started as `frontend`, once the target has executed its program.
pub fn run_pids(frontend: u32) -> (u32, u32, u32) {
    let wait = Duration::from_secs(10);
    let sup = wait_for_child(frontend, |_| true, wait).expect("the helper started");
    let init = wait_for_init(sup, wait).expect("init started");
    let target = wait_for_child(init, in_policy_range, wait).expect("the target started");
    // Until the target has exec'd, the supervisor may still be dropping
    // its privileges: wait for the program to replace the helper's image.
    let deadline = Instant::now() + wait;
    while fs::read_link(format!("/proc/{target}/exe"))
        .is_ok_and(|exe| exe.to_string_lossy().contains("safeexec-helper"))
    {
        assert!(Instant::now() < deadline, "the target never exec'd");
        thread::sleep(Duration::from_millis(2));
    }
    (sup, init, target)
}

/// Sends SIGCONT to a process the test stopped, however the test ends (a
/// failed assertion included): a helper left stopped would hold its run's
/// uid.
pub struct ContinueOnDrop(pub u32);

impl Drop for ContinueOnDrop {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

/// Sends a signal to a process the test started itself (or one of its own
/// runs', found through [`children_of`]).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// The init of the pid namespace `p` lives in, when that is a namespace
/// below /proc's (as every run's is): its nearest ancestor, or itself, that
/// is pid 1 there.
fn namespace_init(p: &Proc) -> Option<Proc> {
    let mut at = p.clone();
    for _ in 0..64 {
        if at.is_namespace_init() {
            return Some(at);
        }
        if at.ns_pids.len() < 2 {
            return None;
        }
        at = process(at.ppid)?;
    }
    None
}

/// SIGKILL to exactly the process `p` was: through a pidfd, after checking
/// that the pid still names a process started when `p` did (so that a
/// recycled pid is never hit).
fn kill_exactly(p: &Proc) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid as libc::c_int, 0) };
    if fd < 0 {
        return;
    }
    let fd = fd as libc::c_int;
    if process(p.pid).is_some_and(|now| now.started == p.started && now.uid == p.uid) {
        // SAFETY: a signal to the process our own descriptor refers to.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
}

impl Ctx {
    /// The live processes of real uid `uid` (the uid of one of this test's
    /// runs) that the run left, looked at once.
    ///
    /// Why they are the test's own: a run's uid is held by a lock for as
    /// long as the run may have a process, and the helper hands uids out in
    /// turn through the whole range and refuses one that still owns a
    /// process; so another run of `uid` begins only once everything of this
    /// one is gone, and only after the whole range came round. A process of `uid` counts
    /// when it started between the test's start and the look, or when the
    /// init of its pid namespace (the run's init) did: what a run leaves
    /// lives in its pid namespace, forks included.
    pub fn left_of_run(&self, uid: u32) -> Vec<Proc> {
        let now = boot_ticks();
        self.of_run(uid, now).into_iter().map(|(p, _)| p).collect()
    }

    /// (process, whether its namespace's init started in the test's time)
    /// for the live processes of `uid` of this test's runs, `now` being
    /// when the look began.
    fn of_run(&self, uid: u32, now: u64) -> Vec<(Proc, bool)> {
        let in_time = |ticks: u64| (self.began..=now).contains(&ticks);
        processes()
            .into_iter()
            .filter(|p| p.uid == uid && p.alive() && p.started >= self.began)
            .map(|p| {
                let tied = namespace_init(&p).is_some_and(|init| in_time(init.started));
                (p, tied)
            })
            .filter(|(p, tied)| *tied || in_time(p.started))
            .collect()
    }

    /// Polls until nothing of [`Ctx::left_of_run`] is left (at most
    /// `wait`), and returns what was left then. It kills those of them in a
    /// pid namespace whose init started in the test's time, so that no
    /// other test meets them, and signals nothing else.
    pub fn survivors(&self, uid: u32, wait: Duration) -> Vec<Proc> {
        let until = Instant::now() + wait;
        let since = boot_ticks();
        loop {
            let left = self.of_run(uid, since);
            if left.is_empty() {
                return Vec::new();
            }
            if Instant::now() >= until {
                for (p, tied) in &left {
                    if *tied {
                        kill_exactly(p);
                    }
                }
                return left.into_iter().map(|(p, _)| p).collect();
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that nothing of the run of `uid` (one of this test's) is left
    /// after [`CLEANUP_WAIT`].
    pub fn assert_nothing_left(&self, uid: u32, context: &str) {
        let left = self.survivors(uid, CLEANUP_WAIT);
        assert!(
            left.is_empty(),
            "processes of sandbox uid {uid} survived the run: {left:?}\n{context}"
        );
    }
}

/// The first 8 bytes of the uid state file: the next index it stored.
fn stored_next_index(file: &fs::File) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut next = [0u8; 8];
    file.read_exact_at(&mut next, 0).map_or(0, |()| u64::from_le_bytes(next))
}

/// The helper's uid allocator as a test sees it (root may read and lock
/// it): `PREFIX/var/lib/safeexec/uids`, whose first 8 bytes are the next
/// index and whose byte `8 + index` is locked for each live run.
impl crate::Env {
    fn uid_state(&self) -> fs::File {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.prefix.join("var/lib/safeexec/uids"))
            .expect("open the helper's uid state file")
    }

    /// The uid the next run will most likely get: the stored next index,
    /// past those held by live runs. Only a guess when other runs start
    /// meanwhile: a test that relies on it runs alone in its binary.
    pub fn next_run_uid(&self) -> u32 {
        let file = self.uid_state();
        let stored = stored_next_index(&file);
        let count = u64::from(POLICY_UID_COUNT);
        let index = (0..64)
            .map(|i| (stored + i) % count)
            .find(|&i| !byte_locked(&file, 8 + i))
            .unwrap_or(stored % count);
        POLICY_UID_BASE + index as u32
    }

    /// The allocator's stored next index (the last run's index plus one,
    /// up to `POLICY_UID_COUNT`): the runs started between two reads got
    /// the indexes from the first up to the second, modulo the count.
    pub fn uid_counter(&self) -> u64 {
        stored_next_index(&self.uid_state())
    }

    /// Whether a live run holds `uid` (its lock in the state file).
    pub fn uid_is_held(&self, uid: u32) -> bool {
        byte_locked(&self.uid_state(), 8 + u64::from(uid - POLICY_UID_BASE))
    }

    /// Holds the allocator's counter lock (byte 0) as a stuck holder would,
    /// until the returned file is dropped (closing it releases the lock).
    pub fn hold_uid_counter(&self) -> fs::File {
        let file = self.uid_state();
        lock_byte(&file, 0, libc::F_WRLCK);
        file
    }

    /// Holds `uid` as a live run's helper does (the lock on its byte),
    /// until the returned file is dropped.
    pub fn hold_uid(&self, uid: u32) -> fs::File {
        let file = self.uid_state();
        lock_byte(&file, 8 + u64::from(uid - POLICY_UID_BASE), libc::F_WRLCK);
        file
    }

    /// Makes `uid` the next one handed out (as a test that plants a process
    /// of that uid needs), under the allocator's own lock.
    pub fn set_next_run_uid(&self, uid: u32) {
        use std::os::unix::fs::FileExt;
        let file = self.uid_state();
        lock_byte(&file, 0, libc::F_WRLCK);
        let index = u64::from(uid - POLICY_UID_BASE);
        file.write_all_at(&index.to_le_bytes(), 0).expect("write the uid state file");
        lock_byte(&file, 0, libc::F_UNLCK);
    }
}

fn flock(start: u64, kind: i32) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start as libc::off_t,
        l_len: 1,
        l_pid: 0,
    }
}

/// Whether an open-file-description lock is held on byte `at` of `file`.
fn byte_locked(file: &fs::File, at: u64) -> bool {
    use std::os::fd::AsRawFd;
    let mut fl = flock(at, libc::F_WRLCK);
    // SAFETY: F_OFD_GETLK writes into the live, initialised `fl`.
    let ret = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    ret == 0 && fl.l_type != libc::F_UNLCK as libc::c_short
}

/// Takes (waiting) or releases the open-file-description lock on byte `at`.
fn lock_byte(file: &fs::File, at: u64, kind: i32) {
    use std::os::fd::AsRawFd;
    let fl = flock(at, kind);
    // SAFETY: F_OFD_SETLKW reads the live, initialised `fl`.
    let ret = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &fl) };
    assert_eq!(ret, 0, "lock the uid state file: {}", std::io::Error::last_os_error());
}

/// The uid of the run whose helper (supervisor) is `sup`, once its target
/// has switched to it; `None` if that did not happen within `wait`.
pub fn run_uid(sup: u32, wait: Duration) -> Option<u32> {
    let init = wait_for_init(sup, wait)?;
    let target = wait_for_child(init, in_policy_range, wait)?;
    process(target).map(|p| p.uid).filter(|&uid| in_policy_range(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_with_its_start_and_parent() {
        let me = process(std::process::id()).expect("this process");
        // SAFETY: getuid and getppid have no preconditions.
        let (uid, ppid) = unsafe { (libc::getuid(), libc::getppid()) };
        assert_eq!((me.uid, me.ppid), (uid, ppid as u32));
        assert!(me.alive());
        assert!(!me.ns_pids.is_empty());
        assert!(me.started <= boot_ticks());
        assert!(namespace_init(&me).is_none_or(|init| init.is_namespace_init()));
    }
}
