//! The only module with `unsafe`: thin wrappers over the system calls that
//! nix does not offer safely. Each wrapper does one call, maps the C error
//! convention to `io::Error` once (`cerr`), and says why it is sound. Also
//! the one way the helper opens a directory to walk from, mount on or stat
//! (`open_dir_handle`, `open_dir_below`).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};
use nix::NixPath;

/// Opens the directory at `path` (a fixed path of the host, or one of the
/// policy's) as a handle only (O_PATH): to walk from, mount on or stat,
/// never to read.
pub fn open_dir_handle<P: ?Sized + NixPath>(path: &P) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(path, flags, Mode::empty())
}

/// Opens the directory `name` in `at` as a handle only, without following
/// a symbolic link there (so never out of `at` but through "..").
pub fn open_dir_below<P: ?Sized + NixPath>(at: &OwnedFd, name: &P) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(at, name, flags, Mode::empty())
}

/// Maps the C convention (-1 and errno) to `io::Result`.
fn cerr(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Owns the descriptor a system call that makes one returned (-1: its
/// error).
fn new_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cerr(ret)? as RawFd;
    // SAFETY: callers pass only the return of a call that makes a new
    // descriptor: the kernel made it just now, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Forks. The helper is single-threaded whenever it forks (its one other
/// thread, `network`'s, is joined before; std starts none for it), so the
/// child may run arbitrary code, not only async-signal-safe functions.
pub fn fork() -> io::Result<ForkResult> {
    // SAFETY: the process has exactly one thread (see above), so no lock can
    // be held by a thread that does not exist in the child.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// clone3's flag that starts the child in the cgroup v2 directory
/// `CloneArgs::cgroup` names (Linux 5.7; absent from the libc crate's
/// musl headers).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3's argument (`struct clone_args`, its second version: the size
/// the kernel is told is the version).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks, the child born in `cgroup`, a cgroup v2 directory: no move of
/// the child follows (a write to cgroup.procs takes the kernel's global
/// lock of every thread group as its writer, which after an idle moment
/// waits for an RCU grace period, milliseconds). An error (a kernel
/// before 5.7, a seccomp filter of a container that refuses clone3, a
/// cgroup the kernel will not start a process in) made no child: the
/// caller forks and moves the child instead.
pub fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> io::Result<ForkResult> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no CLONE_VM and no stack is a fork: the child
    // runs on from here with a copy of the address space, this stack
    // included; `args` is live and of the size given. The process has one
    // thread (as for `fork`), so no lock is held by a thread the child
    // lacks. The C library does not see this fork: in the child, musl's
    // record of the thread's id is still the parent's, which only raise(3),
    // abort(3) and pthread_kill(3) read (glibc asks the kernel each time).
    // The child (the target) calls none: it reports its failures on the
    // channel and ends with `exit_now`. A panic there, or an allocation that
    // fails, aborts: musl's abort then sends its SIGABRT to init, which as
    // pid 1 of its namespace ignores it, and the target ends on a crash
    // (SIGSEGV) instead, which init reports as the run's end.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    match cerr(ret)? {
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent { child: Pid::from_raw(pid as libc::pid_t) }),
    }
}

/// Moves `thread`, a thread of this process, to `cpus`. It must not have
/// ended: glibc names it by its thread id, which is 0 once it has (and so
/// this thread would be moved).
pub fn set_thread_cpus(
    thread: std::os::unix::thread::RawPthread,
    cpus: &nix::sched::CpuSet,
) -> io::Result<()> {
    // std's handle is an integer; musl's pthread_t is a pointer, glibc's an
    // integer: the same value either way.
    let thread = thread as usize as libc::pthread_t;
    // SAFETY: cpu_set_t is plain old data; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let wanted = (0..libc::CPU_SETSIZE as usize).filter(|&c| cpus.is_set(c).unwrap_or(false));
    for cpu in wanted {
        // SAFETY: `cpu` is below CPU_SETSIZE, the size of `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the caller holds the thread's JoinHandle, so `thread` names a
    // thread of this process not yet joined (its memory is live); `set` is
    // a live cpu_set_t of the size given, which the call only reads.
    let ret = unsafe { libc::pthread_setaffinity_np(thread, std::mem::size_of_val(&set), &set) };
    match ret {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Empties this process's environment so that nothing the caller set can
/// reach any libc function (locale, time zone, resolver, malloc tuning).
pub fn clear_environment() -> io::Result<()> {
    // SAFETY: called once at start-up, while the process is single-threaded,
    // before any code reads the environment.
    let ret = unsafe { libc::clearenv() };
    cerr(ret.into()).map(drop)
}

/// How many supplementary groups this process has. nix's `getgroups` sizes
/// its buffer from sysconf, which glibc reads from /proc on every call; a
/// count needs no buffer.
pub fn group_count() -> io::Result<usize> {
    // SAFETY: a size of 0 asks only for the count; the kernel writes nothing.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Whether descriptor `fd` is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; any integer is a
    // valid argument (a closed one gives EBADF).
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Takes ownership of an inherited descriptor after checking it is open.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if !fd_is_open(fd) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the descriptor is open (checked above), was inherited, and no
    // other object in this process owns it: the helper calls this once per
    // channel descriptor, right after start-up.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Takes ownership of descriptors that arrived in an SCM_RIGHTS message.
pub fn own_received_fds(fds: Vec<RawFd>) -> Vec<OwnedFd> {
    fds.into_iter()
        // SAFETY: the kernel installed each of these descriptors in this
        // process just now, for this message; nothing else refers to them.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect()
}

/// Closes every descriptor from `first` up (`cloexec`: only marks them
/// close-on-exec instead).
pub fn close_from(first: u32, cloexec: bool) -> io::Result<()> {
    close_range(first, u32::MAX, cloexec)
}

/// Closes (or, with `cloexec`, marks close-on-exec) descriptors `first` to
/// `last`, open or not, in one call.
pub fn close_range(first: u32, last: u32, cloexec: bool) -> io::Result<()> {
    let flags = if cloexec { libc::CLOSE_RANGE_CLOEXEC } else { 0 };
    // SAFETY: close_range takes plain integers. The descriptors it closes
    // are owned by no Rust object that will use or close them again: callers
    // use it on descriptors the helper never took ownership of, or (init,
    // right after its fork) on numbers owned by `main`'s files, to which
    // init never returns: it ends with `exit_now`, and a panic aborts.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    cerr(ret).map(drop)
}

/// Opens a pidfd for `pid` (Linux 5.3), to signal or wait for exactly that
/// process even if its number is reused.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers and returns a new descriptor that we
    // own exclusively.
    new_fd(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })
}

/// Sends SIGKILL through a pidfd.
pub fn pidfd_kill(pidfd: &OwnedFd) -> io::Result<()> {
    // SAFETY: the descriptor is valid for the lifetime of `pidfd`; a null
    // siginfo is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cerr(ret).map(drop)
}

/// What wait4 tells about a child that ended.
pub struct Reaped {
    pub pid: Pid,
    pub status: i32,
    pub maxrss_kib: u64,
}

/// How [`wait4`] waits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until a child ends.
    Block,
    /// Not at all (`Ok(None)` when no child has ended), and a child that stopped counts too (its status then
    /// says so; it is still to be reaped).
    NoHangUntraced,
}

/// wait4 for `pid` (-1: any child), as `how` says. `Ok(None)`: without
/// blocking, nothing has ended (or stopped) yet.
pub fn wait4(pid: Pid, how: Wait) -> io::Result<Option<Reaped>> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = match how {
        Wait::Block => 0,
        Wait::NoHangUntraced => libc::WNOHANG | libc::WUNTRACED,
    };
    loop {
        // SAFETY: status and ru point to live, writable locals.
        let ret = unsafe { libc::wait4(pid.as_raw(), &mut status, flags | libc::__WALL, &mut ru) };
        match cerr(ret.into()) {
            Ok(0) => return Ok(None),
            Ok(p) => {
                return Ok(Some(Reaped {
                    pid: Pid::from_raw(p as i32),
                    status,
                    maxrss_kib: ru.ru_maxrss as u64,
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Gives this process the default I/O priority (class none: derived from
/// its niceness), whatever it inherited.
pub fn reset_io_priority() -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_set takes integers only; who 0 means this process,
    // and priority 0 is the class "none".
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, 0) };
    cerr(ret).map(drop)
}

/// The niceness of this process, -20 to 19.
pub fn niceness() -> io::Result<i32> {
    // SAFETY: getpriority takes integers only; who = 0 means this process.
    // The raw call returns 20 - niceness (1 to 40), never -1 but on error.
    let ret = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) };
    cerr(ret).map(|ret| 20 - ret as i32)
}

/// Sets the niceness of this process.
pub fn set_niceness(nice: i32) -> io::Result<()> {
    // SAFETY: setpriority takes integers only; who = 0 means this process.
    let ret = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    cerr(ret.into()).map(drop)
}

/// Sets the disposition of signal `sig` to SIG_DFL or SIG_IGN, through the
/// raw system call: glibc refuses the two real-time signals it reserves
/// (32 and 33), which a caller may still have left ignored.
fn set_disposition(sig: libc::c_int, ignore: bool) -> io::Result<()> {
    // The kernel's struct sigaction: handler, flags, restorer, mask. All
    // zero is SIG_DFL with no flags and an empty mask; SIG_IGN is 1.
    let mut act = [0u64; 4];
    act[0] = if ignore { libc::SIG_IGN as u64 } else { libc::SIG_DFL as u64 };
    // SAFETY: `act` is a live, initialised buffer as large as the kernel's
    // struct sigaction; no old action is read back; the mask size is the
    // kernel's (8 bytes).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            act.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    cerr(ret).map(drop)
}

/// Puts this process in the normal time-sharing class (SCHED_OTHER).
pub fn reset_scheduling() -> io::Result<()> {
    // SAFETY: sched_param is plain old data (musl's has more fields than
    // glibc's); all zero is priority 0.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    // The system call itself: musl's wrapper always fails with ENOSYS.
    // SAFETY: `param` is a live, initialised local; pid 0 is this process.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0,
            libc::SCHED_OTHER,
            &param as *const libc::sched_param,
        )
    };
    cerr(ret).map(drop)
}

/// Cancels the CPU-time interval timers (ITIMER_VIRTUAL, ITIMER_PROF):
/// they survive execve, set-id or not, and their signals reach us with no
/// permission check, whose default action ends the process (`harden`).
pub fn cancel_cpu_timers() -> io::Result<()> {
    let zero = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let off = libc::itimerval { it_interval: zero, it_value: zero };
    for which in [libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
        // SAFETY: setitimer reads `off`, a live local of the type it
        // expects, and writes nothing (no old value asked for).
        if unsafe { libc::setitimer(which, &off, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Puts every catchable signal, 1 to 64, back to its default action.
pub fn reset_signal_dispositions() -> io::Result<()> {
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            set_disposition(sig, false)?;
        }
    }
    Ok(())
}

/// Ignores SIGPIPE and SIGXFSZ in the helper itself: a reader that went
/// away, or a caller's stderr on a file with a hard RLIMIT_FSIZE of 0, must
/// turn into an error the helper reports, never into its death. The target
/// gets default dispositions back before exec.
pub fn ignore_write_signals() -> io::Result<()> {
    set_disposition(libc::SIGPIPE, true)?;
    set_disposition(libc::SIGXFSZ, true)
}

/// Gives SIGPIPE and SIGXFSZ their default actions back (in the target).
/// They are the only signals the helper ignores after `harden` reset all
/// of them, and exec resets the handlers Rust's runtime installs.
pub fn default_write_signals() -> io::Result<()> {
    set_disposition(libc::SIGPIPE, false)?;
    set_disposition(libc::SIGXFSZ, false)
}

/// Ends this process at once, without running atexit handlers or flushing
/// stdio buffers that belong to the parent's copy of the process.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the process; it never returns and touches no
    // memory of this process.
    unsafe { libc::_exit(code) }
}

/// CLOCK_MONOTONIC in microseconds: one clock that init and the target
/// (separate processes) read alike.
pub fn monotonic_us() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1000
}

/// strerror words for an errno value.
pub fn strerror(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

/// One instruction of a classic BPF program.
pub type SockFilter = libc::sock_filter;

/// Installs a seccomp filter on this process (and everything it execs).
/// The caller has set no_new_privs, which lets an unprivileged process do it.
pub fn install_seccomp(filter: &[SockFilter]) -> io::Result<()> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog { len, filter: filter.as_ptr().cast_mut() };
    // SAFETY: prog points to `filter`, which lives across the call; the
    // kernel copies the program and keeps no pointer into our memory.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    cerr(ret.into()).map(drop)
}

/// A program with its argv and environment as execve(2) takes them, the
/// pointer arrays built ahead, so that `exec` allocates nothing: the
/// target calls it under its address-space limit, where an allocation may
/// fail (and a failed one aborts).
pub struct Exec<'a> {
    program: &'a CStr,
    argv: Vec<*const libc::c_char>,
    env: Vec<*const libc::c_char>,
    // The pointers point into these, borrowed for as long.
    _strings: std::marker::PhantomData<&'a CString>,
}

impl<'a> Exec<'a> {
    pub fn new(program: &'a CStr, argv: &'a [CString], env: &'a [CString]) -> Exec<'a> {
        let array = |strings: &'a [CString]| {
            let pointers = strings.iter().map(|s| s.as_ptr());
            pointers.chain(std::iter::once(std::ptr::null())).collect()
        };
        Exec { program, argv: array(argv), env: array(env), _strings: std::marker::PhantomData }
    }

    /// execve(2); returns only on failure, with its errno.
    pub fn exec(&self) -> i32 {
        // SAFETY: the program and every string the arrays point to are
        // borrowed for 'a, so live across the call; both arrays end with a
        // null pointer, as execve requires.
        unsafe { libc::execve(self.program.as_ptr(), self.argv.as_ptr(), self.env.as_ptr()) };
        io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)
    }
}

/// A detached copy of the mount that holds directory `dir`, rooted at
/// `dir`, without the mounts below it (open_tree(2), Linux 5.2), in no
/// peer group. The kernel refuses a directory whose mount is not in this
/// process's mount namespace (EINVAL).
///
/// Private before it is attached: the copy of a shared mount (systemd
/// shares every mount) joins the host mount's peer group, and the run's
/// namespace, made private before the copy is attached, would not change
/// that. Every mount made below the copy (a jail's /dev, a bind inside a
/// shown directory) then reached the host's namespace and stayed after
/// the run, and the host's new mounts reached the run writable (a review
/// of the fourteenth round).
pub fn clone_mount_of(dir: &OwnedFd) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: the descriptor is valid for the lifetime of `dir`; the path
    // is an empty NUL-terminated string, as AT_EMPTY_PATH requires.
    let copy = new_fd(unsafe {
        libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c"".as_ptr(), flags)
    })?;
    // MS_PRIVATE, as struct mount_attr's 64-bit propagation field holds it.
    const PRIVATE: u64 = 1 << 18;
    setattr(&copy, false, [0, 0, PRIVATE, 0])?;
    Ok(copy)
}

/// Mount attributes (mount_setattr(2), Linux 5.12).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Sets and clears attributes of the mount of `mnt` (and, `recursive`, of
/// every mount below it).
pub fn mount_setattr(mnt: &OwnedFd, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    setattr(mnt, recursive, [set, clear, 0, 0])
}

/// mount_setattr(2) with a whole `struct mount_attr`: attr_set, attr_clr,
/// propagation, userns_fd.
fn setattr(mnt: &OwnedFd, recursive: bool, attr: [u64; 4]) -> io::Result<()> {
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: the descriptor is valid for the lifetime of `mnt`; the path
    // is empty (AT_EMPTY_PATH) and `attr` is a live buffer of the size
    // passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    cerr(ret).map(drop)
}

/// Attaches the detached mount `mnt` on top of the directory `onto`
/// (move_mount(2), Linux 5.2).
pub fn move_mount(mnt: &OwnedFd, onto: &OwnedFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: both descriptors are valid for the lifetime of their owners;
    // both paths are empty NUL-terminated strings, as the flags require.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            onto.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    cerr(ret).map(drop)
}

/// Gives this process a new, empty session keyring of its own, so that it
/// no longer possesses the keyring it inherited (the caller's). A kernel
/// without keys has nothing to leave.
pub fn leave_inherited_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks for a new anonymous keyring; nothing is read
    // from or written to this process's memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    match cerr(ret) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
        other => other.map(drop),
    }
}

/// A socket for `loopback_up`, in this thread's network namespace.
pub fn interface_socket() -> io::Result<OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    Ok(socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?)
}

/// Brings up the loopback interface `lo` of the network namespace `sock`
/// was made in (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP), whichever
/// namespace the calling thread is in; a new namespace has its loopback
/// down.
pub fn loopback_up(sock: &OwnedFd) -> io::Result<()> {
    // SAFETY: ifreq is plain old data; all zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in req.ifr_name.iter_mut().zip(c"lo".to_bytes()) {
        *to = *from as libc::c_char;
    }
    // SAFETY: `req` is a live ifreq whose name is NUL-terminated (zeroed
    // past "lo"); the kernel fills in its flags.
    cerr(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) }.into())?;
    // SAFETY: the kernel just wrote the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; the kernel only reads `req`.
    cerr(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) }.into()).map(drop)
}

/// Hands all the bytes of a small file to `parse`, read into a buffer of
/// `N` bytes on the stack; the rest of a larger file (the mountinfo of a
/// host with hundreds of mounts) goes on to the heap. Not into a heap
/// buffer from the start: the C library's allocator maps a fresh buffer of
/// this size each time and unmaps it when freed, and each unmap of the
/// supervisor's memory, while the network thread runs, stops the other CPU
/// to flush its TLB (tens of microseconds on a virtual machine). The buffer
/// is small for the same reason: each page of stack it reaches for the
/// first time is a page fault. Read in a loop, not from 32 bytes up, and
/// without asking the size first (/proc says 0).
pub fn with_small_file<const N: usize, T>(
    mut file: impl std::io::Read,
    parse: impl FnOnce(&[u8]) -> T,
) -> std::io::Result<T> {
    let mut stack = [0u8; N];
    let mut len = 0;
    while len < N {
        match file.read(&mut stack[len..]) {
            Ok(0) => return Ok(parse(&stack[..len])),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut all = stack.to_vec();
    file.read_to_end(&mut all)?;
    Ok(parse(&all))
}

/// The target of the symbolic link at `path`, read into a buffer on the
/// stack: std's and nix's read into a heap buffer and shrink it, a map and
/// an unmap per call under musl (see `with_small_file`). EINVAL: not a
/// link.
pub fn read_link(path: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; libc::PATH_MAX as usize];
    // SAFETY: `path` is NUL-terminated, and `buf` is writable for its whole
    // length, the most the kernel writes.
    let ret = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = cerr(ret as libc::c_long)? as usize;
    // A target that fills the buffer may have been cut short.
    if len >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(buf[..len].to_vec())
}

/// Reads the next records of the directory `dir` (open for reading) into
/// `buf` (getdents64), for `mounts::DirRecords` to parse; 0 at its end. Not
/// through the C library's directory stream, which it allocates, and frees
/// with an unmap under musl (see `with_small_file`).
pub fn read_dir_records(dir: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its whole length, the most the kernel
    // writes; `dir` is a descriptor the caller holds open.
    let ret = unsafe {
        libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len())
    };
    match cerr(ret)? as usize {
        n if n <= buf.len() => Ok(n),
        _ => Err(io::Error::from_raw_os_error(libc::EIO)),
    }
}

/// Hands the text of a small file of /proc to `parse` (`with_small_file`).
/// Bytes that are not UTF-8 (a process may name itself with any) become
/// U+FFFD rather than an error, so that no process is skipped for its name.
pub fn with_proc<T>(path: &str, parse: impl FnOnce(&str) -> T) -> std::io::Result<T> {
    // Enough for all but mountinfo on a host with many mounts.
    let file = std::fs::File::open(path)?;
    with_small_file::<4096, T>(file, |bytes| parse(&String::from_utf8_lossy(bytes)))
}

/// Writes a number into a file of /proc (a setting of the process), in
/// one write, without the heap.
pub fn write_proc(path: &str, value: i32) -> std::io::Result<()> {
    use std::io::Write;
    let mut text = [0u8; 12];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    write!(cursor, "{value}")?;
    let len = cursor.position() as usize;
    std::fs::OpenOptions::new().write(true).open(path)?.write_all(&text[..len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The fallback of `init::fork_target` relies on this: a clone3 the
    /// kernel refuses (here: a directory that is no cgroup v2 one) made no
    /// child, so the fork that follows is the only one.
    #[test]
    fn a_fork_into_what_is_no_cgroup_fails_and_makes_no_child() {
        let dir = std::fs::File::open("/").unwrap();
        match fork_into_cgroup(dir.as_fd()) {
            Ok(ForkResult::Child) => exit_now(0),
            Ok(ForkResult::Parent { child }) => panic!("a child {child} was made"),
            // Where clone3 exists: EBADF, the kernel's word for a descriptor
            // that is not a cgroup v2 directory.
            Err(e) => assert!(matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOSYS)), "{e}"),
        }
    }
}
