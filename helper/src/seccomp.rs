//! Invariant 7, files: a target must not leave behind anything that acts as
//! its uid after the run. Its uid comes back (after `uid_count` runs), so
//! a setuid or setgid file it made would let anyone who runs that
//! file later signal or read a future run. no_new_privs only protects runs,
//! not the host; so the target may not set those bits at all.
//!
//! A classic BPF filter, installed last before execve: chmod, fchmod,
//! fchmodat, fchmodat2, mkdir(at), mknod(at), creat and open(at) with
//! O_CREAT or O_TMPFILE fail with EPERM when the mode has S_ISUID or
//! S_ISGID, mknod(at) when it makes a device, and renameat2 when it leaves
//! a whiteout (a device too); openat2 and io_uring_setup (whose modes a
//! filter cannot see) fail with ENOSYS, and callers fall back to openat; so does io_setup,
//! whose contexts are one count for the whole machine, and so do
//! inotify's and fanotify's inits (watches on the host's files show what
//! the host's processes open); fcntl's F_NOTIFY, the same by signals,
//! fails with EPERM. posix_fadvise's
//! POSIX_FADV_DONTNEED succeeds without being done: it drops any reader's
//! cached pages of a file, which a later run reads back (`FADV_DONTNEED`). System calls of
//! another ABI (32-bit, x32) kill the process: the filter only knows the
//! native numbers.
//!
//! The kernel can also set those bits itself, when an overlayfs in a user
//! namespace copies a set-id file up: so the target may not create a user
//! namespace (unshare and clone with CLONE_NEWUSER fail with EPERM, clone3,
//! whose flags a filter cannot read, with ENOSYS, and callers fall back to
//! clone), nor mount anything. Nor may it clone with CLONE_PARENT (`PARENT`),
//! nor ask its parent to trace it (`PTRACE_TRACEME`): both make init reap
//! its children or threads. And keyrings outlive processes: the keyctl
//! family fails too, so the target can neither read the caller's session
//! keyring nor leave keys behind for the next run of its uid.
//!
//! The file-size limit: RLIMIT_FSIZE is checked only when a file's size
//! grows, so fallocate's modes that reserve blocks past the size
//! (FALLOC_FL_KEEP_SIZE, but for punching a hole) fail with EOPNOTSUPP,
//! as on a file system without them: a file of size 0 could otherwise
//! hold gigabytes of the disk (`FALLOCATE_MODES`); so does the ioctl that
//! reserves the same way (`PREALLOCATE_REQUESTS`, EPERM).
//!
//! Invariant 5, reach: the target may not act on a terminal it was handed
//! beyond its own use (no typing into it, taking it over, or stopping it:
//! `TERMINAL_REQUESTS`), and opens sockets of the internet families and
//! of netlink's routing protocol only (`INET_FAMILIES`, `NETLINK_PROTOCOLS`;
//! AF_UNIX only as a connected socketpair, `SOCKETPAIR_TYPES`): no
//! filesystem socket of the host, no vsock or packet socket, which the
//! network namespace does not cover, and no netlink protocol that carries
//! the host's events into it. Nor may a run without a CPU cgroup of its
//! own start a session (setsid, EPERM, `Sessions`): for the root
//! cgroup's processes a session is an autogroup of the scheduler, and a
//! new one competes at niceness 0 with the host's (`target::stand_back`
//! puts the run's own at the run's niceness).

use crate::sys::SockFilter;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
/// x32 system calls share x86_64's arch value and carry this bit.
const X32_BIT: u32 = 0x4000_0000;

/// Offsets in struct seccomp_data.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// Low 32 bits of argument `i` (both supported targets are little-endian).
const fn arg(i: u32) -> u32 {
    16 + 8 * i
}

const SETID_BITS: u32 = libc::S_ISUID | libc::S_ISGID;
/// The bit of the file type that character and block devices have
/// (S_IFCHR; S_IFBLK is it and S_IFDIR), which no other type mknod makes
/// has (a FIFO, a socket, a regular file): any user may make the device
/// 0:0, the whiteout an overlay file system reads as a deleted file, and a
/// run left them on the host where it may write (a review of the tenth
/// round). Nothing else of a device is for a run to make.
const DEVICE_BIT: u32 = libc::S_IFCHR;
/// renameat2's RENAME_WHITEOUT: the rename leaves that same whiteout
/// where the file was, and any user may ask it since Linux 5.8 (a review
/// of the eleventh round left one so, past the rule on mknod).
const RENAME_WHITEOUT: u32 = libc::RENAME_WHITEOUT;
/// Flags with which open creates a file (O_TMPFILE without O_DIRECTORY).
const CREATE_FLAGS: u32 = (libc::O_CREAT | (libc::O_TMPFILE & !libc::O_DIRECTORY)) as u32;

/// What a rule does with a system call.
#[derive(Clone, Copy)]
enum Rule {
    /// Refuse if argument `mode` has a set-id bit.
    Mode { mode: u32 },
    /// mknod: refuse if argument `mode` has a set-id bit or makes a device
    /// (`DEVICE_BIT`).
    Node { mode: u32 },
    /// Refuse if it creates (argument `flags`) with a set-id mode.
    Create { flags: u32, mode: u32 },
    /// Refuse if argument `arg` has any of `bits` (clone flags).
    Flags { arg: u32, bits: u32 },
    /// Refuse outright with EPERM.
    Deny,
    /// Refuse outright with ENOSYS (the caller falls back to an older call).
    NoSys,
    /// Answer with `answer` if argument `arg` is one of `values`, else
    /// allow: `Label::Deny` (EPERM), or `Label::Skip` (success, not done:
    /// advice the kernel may ignore anyway).
    Refuse { arg: u32, values: &'static [u32], answer: Label },
    /// Refuse unless argument `arg` is one of `values`, by jumping to
    /// `otherwise`: `Label::NoFamily` (EAFNOSUPPORT) or `Label::NoSupport`
    /// (EOPNOTSUPP: the caller falls back, as on a file system without
    /// the mode).
    Only { arg: u32, values: &'static [u32], otherwise: Label },
    /// socket and socketpair, by address family (argument 0): allow those
    /// of `free`; for `family`, go on as `Only` with `arg`, `values` and
    /// `otherwise`; refuse any other with EAFNOSUPPORT.
    Family { family: u32, free: &'static [u32], arg: u32, values: &'static [u32], otherwise: Label },
    /// setsockopt: refuse with EPERM the options `ip` of level IPPROTO_IP,
    /// `ipv6` of level IPPROTO_IPV6, `socket` of level SOL_SOCKET and `tcp`
    /// of level IPPROTO_TCP.
    SocketOptions {
        ip: &'static [u32],
        ipv6: &'static [u32],
        socket: &'static [u32],
        tcp: &'static [u32],
    },
}

/// Terminal requests that act on a terminal beyond the target's own use of
/// it: typing into it (TIOCSTI), taking it as controlling terminal
/// (TIOCSCTTY), changing its line discipline (TIOCSETD), the console's
/// requests (TIOCLINUX, TIOCCONS), locking others out (TIOCEXCL),
/// stopping or starting its output (TCXONC), discarding what others typed
/// (TCFLSH), and resizing it, which signals its foreground process group
/// (TIOCSWINSZ).
const TERMINAL_REQUESTS: &[u32] = &[
    libc::TCFLSH as u32,
    libc::TIOCSWINSZ as u32,
    libc::TIOCSTI as u32,
    libc::TIOCSCTTY as u32,
    libc::TIOCSETD as u32,
    libc::TIOCLINUX as u32,
    libc::TIOCCONS as u32,
    libc::TIOCEXCL as u32,
    libc::TCXONC as u32,
];

/// ioctl requests that reserve disk blocks past a file's size, on any file
/// system that has fallocate: the kernel serves them with fallocate and
/// FALLOC_FL_KEEP_SIZE (`ioctl_preallocate`). FS_IOC_RESVSP, FS_IOC_RESVSP64
/// and FS_IOC_ZERO_RANGE (linux/falloc.h, inside the kernel: `_IOW('X', 40,
/// 42 and 57, struct space_resv)`, 48 bytes); a second review found the
/// last. FS_IOC_UNRESVSP(64), 41 and 43, only punch holes.
const PREALLOCATE_REQUESTS: [u32; 3] = [0x4030_5828, 0x4030_582a, 0x4030_5839];

/// ioctl requests of the file systems' encryption (linux/fscrypt.h) that
/// leave state past the run: FS_IOC_ADD_ENCRYPTION_KEY goes into the file
/// system's own keyring, not the run's, past the filter's refusal of the
/// keyctl family, and stays until it is removed or the file system is
/// unmounted; FS_IOC_REMOVE_ENCRYPTION_KEY(_ALL_USERS) takes one away;
/// FS_IOC_SET_ENCRYPTION_POLICY makes an empty directory encrypted for
/// good; FS_IOC_GET_ENCRYPTION_PWSALT writes a salt into the super block
/// if there is none (a review of the twelfth round, by reading; the
/// machine's ext4 has no `encrypt` feature). Judges' programs have no use
/// for them.
const ENCRYPTION_REQUESTS: [u32; 5] =
    [0x800c_6613, 0x4010_6614, 0xc050_6617, 0xc040_6618, 0xc040_6619];

/// Every ioctl request the filter refuses (EPERM).
const REFUSED_REQUESTS: &[u32] = &{
    const PARTS: [&[u32]; 3] = [TERMINAL_REQUESTS, &PREALLOCATE_REQUESTS, &ENCRYPTION_REQUESTS];
    let mut all =
        [0u32; TERMINAL_REQUESTS.len() + PREALLOCATE_REQUESTS.len() + ENCRYPTION_REQUESTS.len()];
    let (mut i, mut part) = (0, 0);
    while part < PARTS.len() {
        let mut j = 0;
        while j < PARTS[part].len() {
            all[i] = PARTS[part][j];
            (i, j) = (i + 1, j + 1);
        }
        part += 1;
    }
    all
};

/// Address families a program may open sockets of: the internet ones (in
/// the run's own network namespace), and netlink's protocols of
/// `NETLINK_PROTOCOLS`. Not AF_UNIX: a filesystem socket of the host
/// would be reachable through a read-only mount; `socketpair` keeps
/// AF_UNIX. Nothing else (vsock, packet, bluetooth, ...): the network
/// namespace does not cover every family.
const INET_FAMILIES: &[u32] = &[libc::AF_INET as u32, libc::AF_INET6 as u32];
/// Netlink's routing protocol only, which the C library's address lookups
/// use, in the run's own namespace. Not the others, whose kernel ends are
/// not all of the namespace: NETLINK_KOBJECT_UEVENT brings the host's
/// device events (disks, USB, modules) into every network namespace of
/// the host's user namespace, the run's included, in both roots (a review
/// of the twelfth round); a program asking another gets EPROTONOSUPPORT,
/// as from a kernel without it.
const NETLINK_PROTOCOLS: &[u32] = &[0 /* NETLINK_ROUTE */];
/// Connected types only: a datagram socketpair could send to, or connect
/// to, any unix socket path of the host it can see. With or without the
/// two flags a socket type may carry.
const SOCKETPAIR_TYPES: &[u32] = &{
    const FLAGS: [u32; 4] = [
        0,
        libc::SOCK_CLOEXEC as u32,
        libc::SOCK_NONBLOCK as u32,
        (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u32,
    ];
    let mut types = [0u32; 8];
    let mut i = 0;
    while i < 4 {
        types[i] = libc::SOCK_STREAM as u32 | FLAGS[i];
        types[i + 4] = libc::SOCK_SEQPACKET as u32 | FLAGS[i];
        i += 1;
    }
    types
};

/// fallocate modes a program may use: the plain one, which grows the
/// file within RLIMIT_FSIZE (the kernel checks the new size), and a
/// punched hole, which frees blocks. Every other mode either keeps the
/// size while it reserves blocks past it, where RLIMIT_FSIZE does not
/// look (an independent review filled 3 GB of disk under `--fsize 0`
/// with FALLOC_FL_KEEP_SIZE), or moves the size by ways no program of a
/// judge needs.
const FALLOCATE_MODES: &[u32] =
    &[0, (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE) as u32];

/// IPV6_FLOWLABEL_MGR (linux/in6.h; the libc crate does not name it):
/// IPv6 flow labels are state of the network namespace that outlives the
/// socket that made them (a label may linger up to a minute; an exclusive
/// one sets a flag of the namespace for good, which a later program reads
/// back without a packet), and a namespace a run used no network in is
/// handed on to a later run (`netpool`). Judges' programs have no use for
/// them.
const IPV6_FLOWLABEL_MGR: u32 = 32;

/// Multicast memberships: a join makes the kernel send a report on the
/// interface a few milliseconds later (a timer of the namespace), and a
/// leave another, also when the socket closes at the program's exit: a
/// report a run arms as it ends goes out after the next run's check of the
/// kept namespace, and moves counters that run reads (an independent
/// review carried a number from one run to the next so). IPPROTO_IP:
/// IP_ADD_MEMBERSHIP (35) to MCAST_MSFILTER (48), every membership and
/// source filter option; IPPROTO_IPV6: IPV6_ADD_MEMBERSHIP and
/// IPV6_DROP_MEMBERSHIP (20, 21), and the MCAST_ ones (42 to 48).
/// IPPROTO_IP's options refused: IP_MINTTL (see `TCP_REFUSED`) and the
/// memberships.
const IP_REFUSED: &[u32] = &[IP_MINTTL, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48];
const IP_MINTTL: u32 = 21;
/// IPV6_MINHOPCOUNT (73), IPv6's IP_MINTTL.
const IPV6_MINHOPCOUNT: u32 = 73;
/// IPv6's options refused: its memberships, and flow labels.
const IPV6_REFUSED: &[u32] =
    &[20, 21, IPV6_FLOWLABEL_MGR, 42, 43, 44, 45, 46, 47, 48, IPV6_MINHOPCOUNT];

/// TCP connections that outlive the run: a socket whose program is gone
/// lives on as an orphan while it has data to send, until the peer's
/// reset or its retries run out. A run made each end drop everything the
/// other sent, resets included (a TCP_MD5SIG key, or TCP-AO's, that does
/// not match the peer's; or IP_MINTTL 255, which drops the loopback's
/// packets), and set TCP_USER_TIMEOUT to weeks: its orphans, with their
/// send queues, held the run's whole memory limit in the machine's TCP
/// memory and its removed memory cgroup for some 23 days, and only root
/// could end them (a review of the eleventh round). TCP_MD5SIG (14),
/// TCP_USER_TIMEOUT (18), TCP_MD5SIG_EXT (32), TCP_AO_ADD_KEY to
/// TCP_AO_REPAIR (38 to 42). Judges' programs have no use for them.
const TCP_REFUSED: &[u32] = &[14, 18, 32, 38, 39, 40, 41, 42];

/// Filters attached to sockets: SO_ATTACH_FILTER (26), SO_ATTACH_BPF (50),
/// SO_ATTACH_REUSEPORT_CBPF (51) and SO_ATTACH_REUSEPORT_EBPF (52). The
/// kernel compiles each (its JIT is always on here), and what it compiles
/// counts against one budget of the whole machine (net.core.bpf_jit_limit),
/// past which no process without privilege gets a filter, a seccomp filter
/// included: a review of the tenth round had one run take 140 MiB of it
/// with 2,500 filters (some 9,500 take it all), none of it charged to the
/// run's memory. Judges' programs have no use for them.
const SOCKET_FILTERS: &[u32] = &[26, 50, 51, 52];

/// ptrace's PTRACE_TRACEME (0): a thread of the target (or an orphan)
/// makes its parent, init, its tracer, and init then reaps each such
/// thread as it ends: a run that started threads that asked so in a loop
/// had init, root at niceness 0 outside the run's cgroups, spend a quarter
/// of a CPU (a review of the thirteenth round). Only a debugger's child
/// asks it; tracing a process of the run's own (PTRACE_ATTACH, SEIZE) is
/// left as it is.
const PTRACE_TRACEME: &[u32] = &[0];

/// prctl's PR_SET_SECCOMP (22) and seccomp's SECCOMP_SET_MODE_FILTER (1):
/// a program's filters of its own are compiled into the same budget.
const PR_SET_SECCOMP: &[u32] = &[22];
const SECCOMP_SET_MODE_FILTER: &[u32] = &[1];

/// posix_fadvise's POSIX_FADV_DONTNEED: it drops a file's pages from the
/// page cache, for any file the caller may read, whoever's pages they
/// are. A run evicted chosen pieces of a host file (one the judge had
/// cached), and a later run of another uid read the pattern back (a read
/// with RWF_NOWAIT fails on a page not cached): a message from one run to
/// the next, and an effect on the host that outlives the run (a review of
/// the eleventh round). The kernel already refuses the calls that show
/// whether a page is cached (mincore, cachestat) on a file the caller may
/// not write; this one is answered with success and not done, as advice
/// the kernel may ignore.
const FADV_DONTNEED: &[u32] = &[libc::POSIX_FADV_DONTNEED as u32];

/// fcntl's F_NOTIFY (dnotify).
const F_NOTIFY: &[u32] = &[libc::F_NOTIFY as u32];

/// fchmodat2(2): 452 in x86_64's table and in the generic one of aarch64;
/// the libc crate names it for x86_64 only.
const SYS_FCHMODAT2: libc::c_long = 452;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(SYS_FCHMODAT2 == libc::SYS_fchmodat2);

const NEWUSER: u32 = libc::CLONE_NEWUSER as u32;

/// clone's CLONE_PARENT: the child is the caller's sibling, so a child of
/// the target's is init's, which reaps it: a run that cloned so in a loop
/// had init, root at niceness 0 outside the run's cgroups and report,
/// spend 0.3 to 0.45 CPU-seconds per CPU-second of its own (a review of the
/// thirteenth round). Programs have no use for it (EPERM).
const PARENT: u32 = libc::CLONE_PARENT as u32;

/// What the filter does with each system call it looks at.
const RULES: &[(libc::c_long, Rule)] = &[
    (libc::SYS_fchmod, Rule::Mode { mode: 1 }),
    (libc::SYS_fchmodat, Rule::Mode { mode: 2 }),
    (SYS_FCHMODAT2, Rule::Mode { mode: 2 }),
    (libc::SYS_mkdirat, Rule::Mode { mode: 2 }),
    (libc::SYS_mknodat, Rule::Node { mode: 2 }),
    (libc::SYS_renameat2, Rule::Flags { arg: 4, bits: RENAME_WHITEOUT }),
    (libc::SYS_openat, Rule::Create { flags: 2, mode: 3 }),
    (libc::SYS_openat2, Rule::NoSys),
    (libc::SYS_io_uring_setup, Rule::NoSys),
    // The machine's asynchronous I/O contexts are one count for all
    // (fs.aio-max-nr): a run took them all for its wall limit, and every
    // other user's io_setup failed (a review). Callers fall back to
    // threads.
    (libc::SYS_io_setup, Rule::NoSys),
    // Watches on the host's files, which the read-only view shows: a run
    // saw every open of libc and /etc/passwd on the host, the names of
    // the programs other users ran, and devices come and go in /dev (a
    // review of the twelfth round). Callers fall back to looking again.
    (libc::SYS_inotify_init1, Rule::NoSys),
    (libc::SYS_fanotify_init, Rule::NoSys),
    // dnotify, the oldest of them: a signal for each read, run, made or
    // removed file in a directory (a third review counted the host's
    // execs in /usr/bin so).
    (libc::SYS_fcntl, Rule::Refuse { arg: 1, values: F_NOTIFY, answer: Label::Deny }),
    (libc::SYS_unshare, Rule::Flags { arg: 0, bits: NEWUSER }),
    (libc::SYS_clone, Rule::Flags { arg: 0, bits: NEWUSER | PARENT }),
    (libc::SYS_clone3, Rule::NoSys),
    (libc::SYS_setns, Rule::Deny),
    (libc::SYS_mount, Rule::Deny),
    (libc::SYS_umount2, Rule::Deny),
    (libc::SYS_pivot_root, Rule::Deny),
    (libc::SYS_fsopen, Rule::Deny),
    (libc::SYS_fsconfig, Rule::Deny),
    (libc::SYS_fsmount, Rule::Deny),
    (libc::SYS_fspick, Rule::Deny),
    (libc::SYS_open_tree, Rule::Deny),
    (libc::SYS_move_mount, Rule::Deny),
    (libc::SYS_mount_setattr, Rule::Deny),
    (libc::SYS_add_key, Rule::Deny),
    (libc::SYS_keyctl, Rule::Deny),
    (libc::SYS_request_key, Rule::Deny),
    (libc::SYS_ioctl, Rule::Refuse { arg: 1, values: REFUSED_REQUESTS, answer: Label::Deny }),
    (
        libc::SYS_socket,
        Rule::Family {
            family: libc::AF_NETLINK as u32,
            free: INET_FAMILIES,
            arg: 2,
            values: NETLINK_PROTOCOLS,
            otherwise: Label::NoProtocol,
        },
    ),
    (
        libc::SYS_socketpair,
        Rule::Family {
            family: libc::AF_UNIX as u32,
            free: &[],
            arg: 1,
            values: SOCKETPAIR_TYPES,
            otherwise: Label::NoFamily,
        },
    ),
    (
        libc::SYS_fallocate,
        Rule::Only { arg: 1, values: FALLOCATE_MODES, otherwise: Label::NoSupport },
    ),
    (
        libc::SYS_setsockopt,
        Rule::SocketOptions {
            ip: IP_REFUSED,
            ipv6: IPV6_REFUSED,
            socket: SOCKET_FILTERS,
            tcp: TCP_REFUSED,
        },
    ),
    (libc::SYS_prctl, Rule::Refuse { arg: 0, values: PR_SET_SECCOMP, answer: Label::Deny }),
    (libc::SYS_ptrace, Rule::Refuse { arg: 0, values: PTRACE_TRACEME, answer: Label::Deny }),
    (
        libc::SYS_seccomp,
        Rule::Refuse { arg: 0, values: SECCOMP_SET_MODE_FILTER, answer: Label::Deny },
    ),
    // fadvise64 on x86_64, fadvise64_64 on aarch64: (fd, offset, len, advice).
    (libc::SYS_fadvise64, Rule::Refuse { arg: 3, values: FADV_DONTNEED, answer: Label::Skip }),
];

/// The older calls that x86_64 still has beside the `at` ones.
#[cfg(target_arch = "x86_64")]
const OLD_CALLS: &[(libc::c_long, Rule)] = &[
    (libc::SYS_inotify_init, Rule::NoSys),
    (libc::SYS_chmod, Rule::Mode { mode: 1 }),
    (libc::SYS_mkdir, Rule::Mode { mode: 1 }),
    (libc::SYS_mknod, Rule::Node { mode: 1 }),
    (libc::SYS_creat, Rule::Mode { mode: 1 }),
    (libc::SYS_open, Rule::Create { flags: 1, mode: 2 }),
];
#[cfg(not(target_arch = "x86_64"))]
const OLD_CALLS: &[(libc::c_long, Rule)] = &[];

/// Whether the target may start sessions of its own. A new session is a
/// new autogroup of the scheduler, at niceness 0 against the host's,
/// whatever the run's niceness; but the kernel puts only the processes of
/// the root cgroup in autogroups, so a run in a CPU cgroup of its own,
/// weighted as its niceness (`cgroup::RunCgroup::weighs`), gains nothing
/// by one (measured: two setsid children of a run at niceness 19 took 0.35
/// CPU-seconds in 5.5 s beside two busy nice-0 sessions of the host, and
/// 5.5 outside the cgroup). Refused (EPERM) only where the run has no such
/// cgroup: Python's `start_new_session`, `os.setsid` and `setsid CMD`
/// work wherever the run has one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sessions {
    Allowed,
    Refused,
}

impl Sessions {
    /// For a run that has a CPU weight of its own (`weighed`), or not.
    pub fn for_run(weighed: bool) -> Sessions {
        if weighed {
            Sessions::Allowed
        } else {
            Sessions::Refused
        }
    }
}

/// The rule of `Sessions::Refused`.
const SESSION_CALLS: &[(libc::c_long, Rule)] = &[(libc::SYS_setsid, Rule::Deny)];

/// Every rule, by system call number, in `room` (on the caller's stack:
/// see `filter`).
fn rules(
    room: &mut [(libc::c_long, Rule); MAX_RULES],
    sessions: Sessions,
) -> &[(libc::c_long, Rule)] {
    let session_calls = match sessions {
        Sessions::Allowed => &[][..],
        Sessions::Refused => SESSION_CALLS,
    };
    let all = RULES.iter().chain(OLD_CALLS).chain(session_calls);
    let n = RULES.len() + OLD_CALLS.len() + session_calls.len();
    for (slot, rule) in room.iter_mut().zip(all) {
        *slot = *rule;
    }
    // In place, with no scratch: the numbers are unique.
    room[..n].sort_unstable_by_key(|&(nr, _)| nr);
    &room[..n]
}

/// Instructions with symbolic jump targets, resolved by `filter`.
#[derive(Clone, Copy)]
enum Op {
    Load(u32),
    /// if A == k goto then, else fall through
    JumpIfEq(u32, Label),
    JumpIfGe(u32, Label),
    /// if A & k goto then, else goto otherwise
    JumpIfAny(u32, Label, Label),
    Ret(u32),
    Here(Label),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Kill,
    Allow,
    Deny,
    NoSys,
    NoFamily,
    NoProtocol,
    NoSupport,
    /// Success, not done (a `Rule::Refuse` answer).
    Skip,
    /// The check block of rule `i`; `Mode(i)`: its mode test (or its
    /// first list of values), `Second(i)` to `Fourth(i)`: its second to
    /// fourth lists of values.
    Rule(usize),
    Mode(usize),
    Second(usize),
    Third(usize),
    Fourth(usize),
    /// The upper half of a search, from rule `i` on (`dispatch`).
    Upper(usize),
}

/// Most rules `rules` may hold: `filter`'s table of label positions has
/// room for this many. The filter's jumps bind sooner: classic BPF jumps
/// forward by at most 255 instructions, which `filter` checks (every
/// test that runs the filter assembles it).
const MAX_RULES: usize = 64;
const _: () = assert!(RULES.len() + OLD_CALLS.len() + SESSION_CALLS.len() <= MAX_RULES);
/// Places in that table: the eight fixed labels, the arch check's, and
/// six per rule.
const LABELS: usize = FIXED + 6 * MAX_RULES;
/// The fixed labels and the arch check's.
const FIXED: usize = 9;

/// Where `label` is kept in `filter`'s table.
fn slot(label: Label) -> usize {
    match label {
        Label::Kill => 0,
        Label::Allow => 1,
        Label::Deny => 2,
        Label::NoSys => 3,
        Label::NoFamily => 4,
        Label::NoSupport => 5,
        Label::Skip => 6,
        Label::NoProtocol => 7,
        Label::Rule(usize::MAX) => 8,
        Label::Rule(i) => FIXED + i,
        Label::Mode(i) => FIXED + MAX_RULES + i,
        Label::Upper(i) => FIXED + 2 * MAX_RULES + i,
        Label::Second(i) => FIXED + 3 * MAX_RULES + i,
        Label::Third(i) => FIXED + 4 * MAX_RULES + i,
        Label::Fourth(i) => FIXED + 5 * MAX_RULES + i,
    }
}

/// Emits the whole program into `emit`, labels included.
fn program(rules: &[(libc::c_long, Rule)], emit: &mut impl FnMut(Op)) {
    for op in [
        Op::Load(ARCH),
        Op::JumpIfEq(NATIVE_ARCH, Label::Rule(usize::MAX)),
        Op::Ret(RET_KILL_PROCESS),
        Op::Here(Label::Rule(usize::MAX)),
        Op::Load(NR),
        Op::JumpIfGe(X32_BIT, Label::Kill),
    ] {
        emit(op);
    }
    dispatch(rules, 0, emit);
    for (i, (_, rule)) in rules.iter().enumerate() {
        emit(Op::Here(Label::Rule(i)));
        check(i, *rule, emit);
    }
    for op in [
        Op::Here(Label::Allow),
        Op::Ret(RET_ALLOW),
        Op::Here(Label::Deny),
        Op::Ret(RET_ERRNO | libc::EPERM as u32),
        Op::Here(Label::NoSys),
        Op::Ret(RET_ERRNO | libc::ENOSYS as u32),
        Op::Here(Label::NoFamily),
        Op::Ret(RET_ERRNO | libc::EAFNOSUPPORT as u32),
        Op::Here(Label::NoProtocol),
        Op::Ret(RET_ERRNO | libc::EPROTONOSUPPORT as u32),
        Op::Here(Label::NoSupport),
        Op::Ret(RET_ERRNO | libc::EOPNOTSUPP as u32),
        // An errno of 0: the call returns 0 and is not made.
        Op::Here(Label::Skip),
        Op::Ret(RET_ERRNO),
        Op::Here(Label::Kill),
        Op::Ret(RET_KILL_PROCESS),
    ] {
        emit(op);
    }
}

/// Finds the rule of the number in A among the sorted `rules` (rules
/// `first` on) by halving, and jumps to its check block; a number of no
/// rule is allowed. A binary search, not a chain of comparisons: the
/// kernel runs the filter for every system call number when it installs
/// it (to cache the calls it always allows), and on each call of the
/// target, so the path to a decision must stay short.
fn dispatch(rules: &[(libc::c_long, Rule)], first: usize, emit: &mut impl FnMut(Op)) {
    if rules.len() <= 3 {
        for (i, &(nr, _)) in rules.iter().enumerate() {
            emit(Op::JumpIfEq(nr as u32, Label::Rule(first + i)));
        }
        emit(Op::Ret(RET_ALLOW));
        return;
    }
    let half = rules.len() / 2;
    emit(Op::JumpIfGe(rules[half].0 as u32, Label::Upper(first + half)));
    dispatch(&rules[..half], first, emit);
    emit(Op::Here(Label::Upper(first + half)));
    dispatch(&rules[half..], first + half, emit);
}

/// The check block of rule `i`: it ends in a jump or a return.
fn check(i: usize, rule: Rule, emit: &mut impl FnMut(Op)) {
    match rule {
        Rule::Mode { mode } => {
            emit(Op::Load(arg(mode)));
            emit(Op::JumpIfAny(SETID_BITS, Label::Deny, Label::Allow));
        }
        Rule::Node { mode } => {
            emit(Op::Load(arg(mode)));
            emit(Op::JumpIfAny(SETID_BITS | DEVICE_BIT, Label::Deny, Label::Allow));
        }
        Rule::Create { flags, mode } => {
            emit(Op::Load(arg(flags)));
            emit(Op::JumpIfAny(CREATE_FLAGS, Label::Mode(i), Label::Allow));
            emit(Op::Here(Label::Mode(i)));
            emit(Op::Load(arg(mode)));
            emit(Op::JumpIfAny(SETID_BITS, Label::Deny, Label::Allow));
        }
        Rule::Flags { arg: a, bits } => {
            emit(Op::Load(arg(a)));
            emit(Op::JumpIfAny(bits, Label::Deny, Label::Allow));
        }
        Rule::Deny => emit(Op::JumpIfAny(0, Label::Deny, Label::Deny)),
        Rule::NoSys => emit(Op::JumpIfAny(0, Label::NoSys, Label::NoSys)),
        Rule::Refuse { arg: a, values, answer } => {
            emit(Op::Load(arg(a)));
            values.iter().for_each(|&v| emit(Op::JumpIfEq(v, answer)));
            emit(Op::Ret(RET_ALLOW));
        }
        Rule::Family { family, free, arg: a, values, otherwise } => {
            emit(Op::Load(arg(0)));
            emit(Op::JumpIfEq(family, Label::Mode(i)));
            free.iter().for_each(|&v| emit(Op::JumpIfEq(v, Label::Allow)));
            emit(Op::JumpIfAny(0, Label::NoFamily, Label::NoFamily));
            emit(Op::Here(Label::Mode(i)));
            check(i, Rule::Only { arg: a, values, otherwise }, emit);
        }
        Rule::Only { arg: a, values, otherwise } => {
            emit(Op::Load(arg(a)));
            values.iter().for_each(|&v| emit(Op::JumpIfEq(v, Label::Allow)));
            emit(Op::JumpIfAny(0, otherwise, otherwise));
        }
        Rule::SocketOptions { ip, ipv6, socket, tcp } => {
            socket_options(i, [ip, ipv6, socket, tcp], emit)
        }
    }
}

/// setsockopt's check block (rule `i`): by level (argument 1), then the
/// option (argument 2) among those refused at that level.
fn socket_options(i: usize, refused: [&[u32]; 4], emit: &mut impl FnMut(Op)) {
    let levels = [libc::IPPROTO_IP, libc::IPPROTO_IPV6, libc::SOL_SOCKET, libc::IPPROTO_TCP];
    let labels = [Label::Mode(i), Label::Second(i), Label::Third(i), Label::Fourth(i)];
    emit(Op::Load(arg(1)));
    for (level, label) in levels.into_iter().zip(labels) {
        emit(Op::JumpIfEq(level as u32, label));
    }
    emit(Op::Ret(RET_ALLOW));
    for (label, names) in labels.into_iter().zip(refused) {
        emit(Op::Here(label));
        emit(Op::Load(arg(2)));
        names.iter().for_each(|&name| emit(Op::JumpIfEq(name, Label::Deny)));
        emit(Op::Ret(RET_ALLOW));
    }
}

/// The filter, ready for `sys::install_seccomp`: `program` with its labels
/// resolved into the relative forward jumps of classic BPF, in two passes
/// over it: one places the labels, the other writes the instructions. No list of steps in between, and the positions in a table
/// on the stack: what the supervisor frees while the network thread runs
/// is unmapped by musl's allocator, and each unmap interrupts the thread's
/// CPU (a TLB shootdown).
pub fn filter(sessions: Sessions) -> Vec<SockFilter> {
    let mut room = [(0, Rule::Deny); MAX_RULES];
    let rules = rules(&mut room, sessions);
    let mut at = [usize::MAX; LABELS];
    let mut count = 0usize;
    program(rules, &mut |op| match op {
        Op::Here(label) => at[slot(label)] = count,
        _ => count += 1,
    });
    let target = |label: Label, from: usize| -> u8 {
        let to = at[slot(label)];
        if to == usize::MAX {
            unreachable!("label {label:?} is placed by program()");
        }
        u8::try_from(to - from - 1).unwrap_or_else(|_| unreachable!("the filter is short"))
    };
    let mut out = Vec::with_capacity(count);
    program(rules, &mut |op| {
        let pc = out.len();
        let insn = |code, jt, jf, k| SockFilter { code, jt, jf, k };
        match op {
            Op::Here(_) => {}
            Op::Load(off) => out.push(insn(BPF_LD_W_ABS, 0, 0, off)),
            Op::JumpIfEq(k, then) => out.push(insn(BPF_JEQ_K, target(then, pc), 0, k)),
            Op::JumpIfGe(k, then) => out.push(insn(BPF_JGE_K, target(then, pc), 0, k)),
            Op::JumpIfAny(k, then, otherwise) => {
                out.push(insn(BPF_JSET_K, target(then, pc), target(otherwise, pc), k))
            }
            Op::Ret(k) => out.push(insn(BPF_RET_K, 0, 0, k)),
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter of the instructions this module emits, to check
    /// the filter's decisions without installing it.
    fn run(filter: &[SockFilter], arch: u32, nr: u32, args: [u32; 6]) -> u32 {
        let load = |off: u32| match off {
            ARCH => arch,
            NR => nr,
            o => args[((o - 16) / 8) as usize],
        };
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = filter[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => a = load(i.k),
                BPF_JEQ_K => pc += if a == i.k { i.jt } else { i.jf } as usize,
                BPF_JGE_K => pc += if a >= i.k { i.jt } else { i.jf } as usize,
                BPF_JSET_K => pc += if a & i.k != 0 { i.jt } else { i.jf } as usize,
                BPF_RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn decide(nr: libc::c_long, args: [u32; 6]) -> u32 {
        run(&filter(Sessions::Refused), NATIVE_ARCH, nr as u32, args)
    }

    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn setid_modes_are_refused() {
        assert_eq!(decide(libc::SYS_fchmod, [3, 0o4755, 0, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_fchmodat, [0, 0, 0o2755, 0, 0, 0]), EPERM);
        assert_eq!(decide(SYS_FCHMODAT2, [0, 0, 0o6777, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_mkdirat, [0, 0, 0o2775, 0, 0, 0]), EPERM);
        let creat = libc::O_CREAT as u32 | libc::O_WRONLY as u32;
        assert_eq!(decide(libc::SYS_openat, [0, 0, creat, 0o4755, 0, 0]), EPERM);
    }

    #[test]
    fn ordinary_modes_pass() {
        assert_eq!(decide(libc::SYS_fchmod, [3, 0o755, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(decide(libc::SYS_fchmodat, [0, 0, 0o1777, 0, 0, 0]), RET_ALLOW);
        let creat = libc::O_CREAT as u32;
        assert_eq!(decide(libc::SYS_openat, [0, 0, creat, 0o644, 0, 0]), RET_ALLOW);
        // Without O_CREAT the mode argument is garbage and ignored.
        assert_eq!(decide(libc::SYS_openat, [0, 0, 0, 0o4755, 0, 0]), RET_ALLOW);
        assert_eq!(decide(libc::SYS_write, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn user_namespaces_mounts_and_keyrings_are_refused() {
        let newuser = libc::CLONE_NEWUSER as u32;
        assert_eq!(decide(libc::SYS_unshare, [newuser, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_clone, [newuser | 17, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_clone, [libc::CLONE_PARENT as u32 | 17, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_ptrace, [0; 6]), EPERM, "PTRACE_TRACEME");
        // PTRACE_SEIZE, whose type the C libraries' bindings differ on.
        let seize = 0x4206;
        assert_eq!(decide(libc::SYS_ptrace, [seize, 0, 0, 0, 0, 0]), RET_ALLOW);
        // A plain fork and a thread still work.
        assert_eq!(decide(libc::SYS_clone, [17, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(decide(libc::SYS_unshare, [libc::CLONE_FILES as u32, 0, 0, 0, 0, 0]), RET_ALLOW);
        let nosys = RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(decide(libc::SYS_clone3, [0; 6]), nosys);
        for nr in [
            libc::SYS_mount,
            libc::SYS_fsopen,
            libc::SYS_setns,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_setsid,
        ] {
            assert_eq!(decide(nr, [0; 6]), EPERM, "system call {nr}");
        }
    }

    /// Only the filter of a run without a CPU cgroup of its own refuses
    /// setsid; nothing else differs.
    #[test]
    fn sessions_are_refused_only_where_asked() {
        let allowed = filter(Sessions::Allowed);
        assert_eq!(run(&allowed, NATIVE_ARCH, libc::SYS_setsid as u32, [0; 6]), RET_ALLOW);
        for nr in 0..600u32 {
            if nr != libc::SYS_setsid as u32 {
                let refused = decide(nr as libc::c_long, [0; 6]);
                assert_eq!(run(&allowed, NATIVE_ARCH, nr, [0; 6]), refused, "call {nr}");
            }
        }
    }

    #[test]
    fn unfilterable_calls_and_other_abis_are_refused() {
        let nosys = RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(decide(libc::SYS_openat2, [0; 6]), nosys);
        assert_eq!(decide(libc::SYS_io_uring_setup, [0; 6]), nosys);
        assert_eq!(decide(libc::SYS_inotify_init1, [0; 6]), nosys);
        assert_eq!(decide(libc::SYS_fanotify_init, [0; 6]), nosys);
        let eperm = RET_ERRNO | libc::EPERM as u32;
        assert_eq!(decide(libc::SYS_fcntl, [3, libc::F_NOTIFY as u32, 0, 0, 0, 0]), eperm);
        assert_eq!(decide(libc::SYS_fcntl, [3, libc::F_GETFL as u32, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(decide(libc::SYS_io_setup, [0; 6]), nosys);
        for sessions in [Sessions::Allowed, Sessions::Refused] {
            assert_eq!(run(&filter(sessions), 0x4000_0003, 15, [0; 6]), RET_KILL_PROCESS);
            assert_eq!(run(&filter(sessions), NATIVE_ARCH, X32_BIT | 90, [0; 6]), RET_KILL_PROCESS);
        }
    }

    #[test]
    fn terminal_injection_and_takeover_requests_are_refused() {
        for req in TERMINAL_REQUESTS {
            assert_eq!(decide(libc::SYS_ioctl, [0, *req, 0, 0, 0, 0]), EPERM, "ioctl {req:#x}");
        }
        assert_eq!(decide(libc::SYS_ioctl, [0, libc::TCGETS as u32, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(decide(libc::SYS_ioctl, [1, libc::TIOCGWINSZ as u32, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn ipv6_flow_labels_are_refused_and_other_socket_options_allowed() {
        let v6 = libc::IPPROTO_IPV6 as u32;
        assert_eq!(decide(libc::SYS_setsockopt, [3, v6, IPV6_FLOWLABEL_MGR, 0, 0, 0]), EPERM);
        for (level, name) in [(v6, 33), (v6, 26), (0, IPV6_FLOWLABEL_MGR), (1, 2)] {
            assert_eq!(decide(libc::SYS_setsockopt, [3, level, name, 0, 0, 0]), RET_ALLOW);
        }
    }

    #[test]
    fn device_nodes_are_refused_and_fifos_sockets_and_files_made() {
        let nr = libc::SYS_mknodat;
        for mode in [libc::S_IFCHR | 0o666, libc::S_IFBLK | 0o600, libc::S_IFIFO | 0o4644] {
            assert_eq!(decide(nr, [libc::AT_FDCWD as u32, 0, mode, 0, 0, 0]), EPERM);
        }
        for mode in [libc::S_IFIFO | 0o644, libc::S_IFSOCK | 0o755, libc::S_IFREG | 0o600, 0o600] {
            let decided = decide(nr, [libc::AT_FDCWD as u32, 0, mode, 0, 0, 0]);
            assert_eq!(decided, RET_ALLOW, "mode {mode:o}");
        }
    }

    #[test]
    fn socket_filters_and_a_programs_own_seccomp_filters_are_refused() {
        let sol = libc::SOL_SOCKET as u32;
        for name in [26, 50, 51, 52] {
            assert_eq!(decide(libc::SYS_setsockopt, [3, sol, name, 0, 0, 0]), EPERM, "{name}");
        }
        for name in [2, 7, 8, 27] {
            let decided = decide(libc::SYS_setsockopt, [3, sol, name, 0, 0, 0]);
            assert_eq!(decided, RET_ALLOW, "option {name}");
        }
        assert_eq!(decide(libc::SYS_prctl, [22, 2, 0, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_prctl, [38, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(decide(libc::SYS_seccomp, [1, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_seccomp, [2, 0, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn multicast_memberships_are_refused_and_the_options_beside_them_allowed() {
        let (v4, v6) = (libc::IPPROTO_IP as u32, libc::IPPROTO_IPV6 as u32);
        for (level, name) in [(v4, 35), (v4, 39), (v4, 42), (v4, 48), (v6, 20), (v6, 42), (v6, 46)]
        {
            let decided = decide(libc::SYS_setsockopt, [3, level, name, 0, 0, 0]);
            assert_eq!(decided, EPERM, "level {level}, option {name}");
        }
        // Multicast's own settings (interface, TTL, loop), and the
        // neighbouring options of both levels.
        for (level, name) in [(v4, 32), (v4, 33), (v4, 34), (v4, 49), (v6, 17), (v6, 19), (v6, 49)]
        {
            let decided = decide(libc::SYS_setsockopt, [3, level, name, 0, 0, 0]);
            assert_eq!(decided, RET_ALLOW, "level {level}, option {name}");
        }
    }

    #[test]
    fn options_that_make_a_tcp_connection_outlive_the_run_are_refused() {
        let (v4, v6, tcp) =
            (libc::IPPROTO_IP as u32, libc::IPPROTO_IPV6 as u32, libc::IPPROTO_TCP as u32);
        let refused = [(tcp, 14), (tcp, 18), (tcp, 32), (tcp, 38), (tcp, 42), (v4, 21), (v6, 73)];
        for (level, name) in refused {
            let decided = decide(libc::SYS_setsockopt, [3, level, name, 0, 0, 0]);
            assert_eq!(decided, EPERM, "level {level}, option {name}");
        }
        // TCP_NODELAY, TCP_KEEPIDLE, TCP_CORK, TCP_CONGESTION; IP_TTL, IP_TOS.
        for (level, name) in [(tcp, 1), (tcp, 4), (tcp, 3), (tcp, 13), (v4, 2), (v4, 1)] {
            let decided = decide(libc::SYS_setsockopt, [3, level, name, 0, 0, 0]);
            assert_eq!(decided, RET_ALLOW, "level {level}, option {name}");
        }
    }

    #[test]
    fn only_internet_and_netlink_routing_sockets_and_unix_socketpairs_are_allowed() {
        let nofamily = RET_ERRNO | libc::EAFNOSUPPORT as u32;
        for family in [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK] {
            assert_eq!(decide(libc::SYS_socket, [family as u32, 1, 0, 0, 0, 0]), RET_ALLOW);
        }
        // Netlink's device events (15), audit (9), generic (16), connector (11).
        let noprotocol = RET_ERRNO | libc::EPROTONOSUPPORT as u32;
        let netlink = libc::AF_NETLINK as u32;
        for protocol in [15, 9, 16, 11, 4] {
            let decided = decide(libc::SYS_socket, [netlink, 2, protocol, 0, 0, 0]);
            assert_eq!(decided, noprotocol, "netlink protocol {protocol}");
        }
        // The internet families' protocols are the kernel's to check.
        assert_eq!(decide(libc::SYS_socket, [libc::AF_INET as u32, 2, 15, 0, 0, 0]), RET_ALLOW);
        for family in [libc::AF_UNIX, libc::AF_VSOCK, libc::AF_PACKET, libc::AF_BLUETOOTH] {
            assert_eq!(decide(libc::SYS_socket, [family as u32, 1, 0, 0, 0, 0]), nofamily);
        }
        let unix = libc::AF_UNIX as u32;
        for ty in
            [libc::SOCK_STREAM, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK]
        {
            assert_eq!(decide(libc::SYS_socketpair, [unix, ty as u32, 0, 0, 0, 0]), RET_ALLOW);
        }
        // A datagram pair could send to any unix socket path it sees.
        for ty in [libc::SOCK_DGRAM, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC] {
            assert_eq!(decide(libc::SYS_socketpair, [unix, ty as u32, 0, 0, 0, 0]), nofamily);
        }
        assert_eq!(decide(libc::SYS_socketpair, [libc::AF_INET as u32, 1, 0, 0, 0, 0]), nofamily);
    }

    #[test]
    fn fallocate_may_not_reserve_blocks_past_the_files_size() {
        let unsupported = RET_ERRNO | libc::EOPNOTSUPP as u32;
        let keep = libc::FALLOC_FL_KEEP_SIZE as u32;
        for mode in [keep, keep | libc::FALLOC_FL_ZERO_RANGE as u32, 0x20, 0x08, 0x10, 0x40] {
            assert_eq!(
                decide(libc::SYS_fallocate, [3, mode, 0, 0, 0, 0]),
                unsupported,
                "{mode:#x}"
            );
        }
        for req in PREALLOCATE_REQUESTS.into_iter().chain(ENCRYPTION_REQUESTS) {
            assert_eq!(decide(libc::SYS_ioctl, [3, req, 0, 0, 0, 0]), EPERM, "ioctl {req:#x}");
        }
        // FS_IOC_GET_ENCRYPTION_POLICY(_EX) and the key's status only read.
        for req in [0x400c_6615, 0xc009_6616, 0xc080_661a] {
            assert_eq!(decide(libc::SYS_ioctl, [3, req, 0, 0, 0, 0]), RET_ALLOW, "ioctl {req:#x}");
        }
        let punch = libc::FALLOC_FL_PUNCH_HOLE as u32 | keep;
        for mode in [0, punch] {
            assert_eq!(decide(libc::SYS_fallocate, [3, mode, 0, 0, 0, 0]), RET_ALLOW, "{mode:#x}");
        }
    }

    #[test]
    fn filter_fits_classic_bpf() {
        assert!(filter(Sessions::Refused).len() < 4096);
    }

    #[test]
    fn a_rename_that_leaves_a_whiteout_is_refused_and_others_are_not() {
        let rename = |flags: u32| decide(libc::SYS_renameat2, [3, 0, 3, 0, flags, 0]);
        assert_eq!(rename(libc::RENAME_WHITEOUT), EPERM);
        assert_eq!(rename(libc::RENAME_WHITEOUT | libc::RENAME_NOREPLACE), EPERM);
        for flags in [0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE] {
            assert_eq!(rename(flags), RET_ALLOW);
        }
    }

    #[test]
    fn dropping_a_files_cached_pages_succeeds_without_being_done() {
        let advice = |a: libc::c_int| decide(libc::SYS_fadvise64, [3, 0, 0, a as u32, 0, 0]);
        assert_eq!(advice(libc::POSIX_FADV_DONTNEED), RET_ERRNO, "errno 0: success, not done");
        for other in
            [libc::POSIX_FADV_NORMAL, libc::POSIX_FADV_SEQUENTIAL, libc::POSIX_FADV_WILLNEED]
        {
            assert_eq!(advice(other), RET_ALLOW);
        }
    }

    /// The kernel runs the filter for every number when it installs it:
    /// a call no rule names is decided in a dozen instructions, not after
    /// a comparison with each rule.
    #[test]
    fn every_call_is_decided_in_a_few_instructions() {
        let filter = filter(Sessions::Refused);
        let mut room = [(0, Rule::Deny); MAX_RULES];
        let listed: Vec<u32> =
            rules(&mut room, Sessions::Refused).iter().map(|&(nr, _)| nr as u32).collect();
        for nr in 0..600u32 {
            let (mut pc, mut steps) = (0usize, 0);
            loop {
                let i = filter[pc];
                steps += 1;
                pc += 1;
                match i.code {
                    BPF_LD_W_ABS => {}
                    BPF_JEQ_K if nr == i.k && i.k != NATIVE_ARCH => break,
                    BPF_JEQ_K => pc += if i.k == NATIVE_ARCH { i.jt } else { i.jf } as usize,
                    BPF_JGE_K => pc += if nr >= i.k { i.jt } else { i.jf } as usize,
                    BPF_RET_K => {
                        assert!(!listed.contains(&nr), "call {nr} was allowed without its check");
                        break;
                    }
                    other => panic!("unexpected opcode {other:#x} before the dispatch ended"),
                }
            }
            assert!(steps <= 12, "call {nr} took {steps} instructions to dispatch");
        }
    }
}
