//! The target has no network (DESIGN.md invariant 5, the trust table's
//! row on the network): a network namespace of its own, so not even the
//! host's loopback (TCP and UDP, v4 and v6) nor its abstract unix sockets;
//! no unix socket at all (the seccomp filter allows socket() only for
//! AF_INET, AF_INET6 and AF_NETLINK: EAFNOSUPPORT); and a private /run,
//! where host daemons listen on unix sockets. Its own loopback is up.
//! `--share_newnet` keeps the host's network only if the policy allows it;
//! otherwise the run gets its own, like every run.

use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;

use safeexec_tests::{
    assert_verdict, dump, host_socket, json_report, kv, meta, require_root, require_root_exclusive,
    result_for, run_pids, stdout, verdict, word, PYTHON,
};

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn tcp_connect_to_a_listener_on_host_loopback_fails() {
    let t = require_root!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let port = listener.local_addr().expect("listener address").port().to_string();
    let out = t.safeexec(&["--exec", &t.fixture("tcp_connect"), &port]);
    assert!(
        !stdout(&out).contains("connected"),
        "the target reached 127.0.0.1:{port}\n{}",
        dump(&out)
    );
    assert!(listener.accept().is_err(), "the listener got a connection\n{}", dump(&out));
    assert_verdict(&out, "Command exited with non-zero status (1)", 1);
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn tcp_connect_to_host_loopback_works_outside_the_sandbox() {
    // The control for the test above: the fixture can connect when it is
    // not sandboxed, so its failure inside means no network.
    let t = require_root!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    let port = listener.local_addr().expect("listener address").port().to_string();
    let out = std::process::Command::new(t.fixture("tcp_connect"))
        .arg(&port)
        .output()
        .expect("run tcp_connect");
    assert_eq!(stdout(&out), "connected\n", "{}", dump(&out));
}

fn listeners() -> Vec<(&'static str, TcpListener)> {
    let mut v = vec![("tcp4", TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1"))];
    v.push(("tcp6", TcpListener::bind("[::1]:0").expect("listen on ::1")));
    v
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn tcp_to_host_loopback_v4_and_v6_fails() {
    let t = require_root!();
    for (kind, listener) in listeners() {
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port().to_string();
        let (out, j) = t.attack(&[], &["net", kind, &port]);
        verdict(&out, &j, "nonzero_exit", 1);
        assert_ne!(word(&out, "connect"), "ok", "{kind}\n{}", dump(&out));
        assert!(listener.accept().is_err(), "{kind}: the listener got a connection");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn udp_to_host_loopback_v4_and_v6_delivers_nothing() {
    let t = require_root!();
    for (kind, addr) in [("udp4", "127.0.0.1:0"), ("udp6", "[::1]:0")] {
        let sock = UdpSocket::bind(addr).expect("bind a UDP socket");
        sock.set_nonblocking(true).expect("non-blocking");
        let port = sock.local_addr().expect("address").port().to_string();
        // The datagram may leave (to the run's own loopback, where nothing
        // listens on that port): it must not arrive at the host's socket.
        let (out, _) = t.attack(&[], &["net", kind, &port]);
        assert!(stdout(&out).contains("sendto="), "{kind}: the probe did not run\n{}", dump(&out));
        let mut buf = [0u8; 16];
        assert!(sock.recv(&mut buf).is_err(), "{kind}: a datagram arrived");
    }
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn host_abstract_unix_socket_is_unreachable() {
    let t = require_root!();
    use std::os::linux::net::SocketAddrExt;
    let name = format!("safeexec-attack-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("an abstract address");
    let listener = UnixListener::bind_addr(&addr).expect("bind the abstract socket");
    listener.set_nonblocking(true).expect("non-blocking");
    // Control: the host can connect to it.
    let control = std::os::unix::net::UnixStream::connect_addr(&addr);
    assert!(control.is_ok(), "the control connection failed");
    drop(listener.accept());
    let (out, j) = t.attack(&[], &["unix", &name]);
    verdict(&out, &j, "nonzero_exit", 1);
    // The filter allows no unix socket at all (socketpair aside): the first
    // step of the attack fails, so no connect is even tried.
    assert_eq!(word(&out, "socket"), "EAFNOSUPPORT", "{}", dump(&out));
    assert_eq!(kv(&stdout(&out), "connect"), None, "{}", dump(&out));
    assert!(listener.accept().is_err(), "the target reached the host's socket");
}

#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn unix_socket_listening_under_the_hosts_run_cannot_be_connected() {
    let t = require_root!();
    let sock = host_socket("/run");
    for opts in [&[][..], &["--host-tmp"][..]] {
        // No unix socket can be made (the filter allows none)...
        let (out, j) = t.attack(opts, &["connect", sock.path.str()]);
        verdict(&out, &j, "nonzero_exit", 1);
        assert_eq!(word(&out, "socket"), "EAFNOSUPPORT", "{opts:?}\n{}", dump(&out));
        assert_eq!(kv(&stdout(&out), "connect"), None, "{opts:?}\n{}", dump(&out));
        // ...and the socket's path is not even there: /run is private.
        let (out, j) = t.attack(opts, &["exists", sock.path.str()]);
        verdict(&out, &j, "ok", 0);
        assert_eq!(
            result_for(&out, "exists", sock.path.str()),
            "ENOENT",
            "{opts:?}: the host's /run reached\n{}",
            dump(&out)
        );
    }
}

/// The host's listeners on 127.0.0.1 and ::1, and the loopback fixture's
/// arguments naming them.
fn host_listeners() -> (Vec<TcpListener>, Vec<String>) {
    let listeners = listeners().into_iter().map(|(_, l)| l).collect::<Vec<_>>();
    for l in &listeners {
        l.set_nonblocking(true).expect("non-blocking");
    }
    let ports = listeners.iter().map(|l| l.local_addr().expect("address").port().to_string());
    let ports = ports.collect();
    (listeners, ports)
}

/// `--share_newnet` under the packaged policy (which does not grant the
/// host's network), as CS Circles' grader asks on every run: the run has a
/// network of its own, whose loopback is up. A server the program starts
/// on 127.0.0.1 or ::1 answers it; the host's listeners on the same
/// addresses get nothing. The JSON report and the meta file say
/// "loopback"; without `--share_newnet` the same.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn share_newnet_without_the_policys_grant_reaches_its_own_loopback_and_no_host_address() {
    let t = require_root!();
    let (listeners, ports) = host_listeners();
    let scratch = t.scratch("netns");
    let meta_path = scratch.join("meta");
    for opts in [&["--share_newnet"][..], &[][..]] {
        let mut args = opts.to_vec();
        args.extend(["--meta", &meta_path, "--json", "--exec", PYTHON]);
        let fixture = t.fixture("loopback.py");
        args.extend([fixture.as_str(), &ports[0], &ports[1]]);
        let out = t.safeexec(&args);
        let j = json_report(&out);
        verdict(&out, &j, "ok", 0);
        let facts = stdout(&out);
        for (key, want) in [("own4", "ok"), ("own6", "ok")] {
            assert_eq!(kv(&facts, key).as_deref(), Some(want), "{key} {opts:?}\n{}", dump(&out));
        }
        for key in ["host4", "host6"] {
            assert_ne!(kv(&facts, key).as_deref(), Some("ok"), "{key} {opts:?}\n{}", dump(&out));
        }
        for l in &listeners {
            assert!(l.accept().is_err(), "a host listener got a connection\n{}", dump(&out));
        }
        assert_eq!(j["network"], "loopback", "{}", dump(&out));
        let m = meta(&std::fs::read_to_string(&meta_path).expect("meta file written"));
        assert_eq!(m.get("network").map(String::as_str), Some("loopback"), "{m:?}");
    }
}

/// Under a policy that allows it, `--share_newnet` keeps the host's
/// network (the host's listener is reached) and the reports say "host".
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn share_newnet_under_a_policy_that_allows_it_keeps_the_hosts_network() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("allow_share_net", "true")]));
    let (listeners, ports) = host_listeners();
    let fixture = t.fixture("loopback.py");
    let args = ["--share_newnet", "--json", "--exec", PYTHON, &fixture, &ports[0], &ports[1]];
    let out = t.safeexec(&args);
    let j = json_report(&out);
    verdict(&out, &j, "ok", 0);
    assert_eq!(kv(&stdout(&out), "host4").as_deref(), Some("ok"), "{}", dump(&out));
    assert!(listeners[0].accept().is_ok(), "the host's listener got nothing\n{}", dump(&out));
    assert_eq!(j["network"], "host", "{}", dump(&out));
}

// ---------------------------------------------------------------------------
// Socket families

/// A unix socket that root made listening, mode 0777, in a host directory
/// outside /run (here under the test prefix), which the test user reaches
/// outside the sandbox: the run sees that directory (read-only, which does
/// not stop a connect), but it cannot even make a unix socket
/// (EAFNOSUPPORT), so the listener gets nothing. A unix socketpair, which
/// reaches nothing outside the run, still works.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn unix_socket_listening_in_a_host_directory_cannot_be_connected_but_socketpairs_work() {
    use std::os::unix::fs::PermissionsExt;
    let t = require_root!();
    let path = safeexec_tests::HostPath::new(safeexec_tests::path_str(&t.work), "listening");
    let listener = UnixListener::bind(path.path()).expect("bind the host's socket");
    std::fs::set_permissions(path.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod the socket");
    listener.set_nonblocking(true).expect("non-blocking");
    // Control: outside the sandbox the test user connects.
    let control = t.run_program(t.probe(), &["connect", path.str()]).output();
    assert_eq!(word(&control, "connect"), "ok", "{}", dump(&control));
    assert!(listener.accept().is_ok(), "the control connection did not arrive");
    let (out, j) = t.attack(&[], &["connect", path.str()]);
    assert_eq!(word(&out, "socket"), "EAFNOSUPPORT", "{}", dump(&out));
    verdict(&out, &j, "nonzero_exit", 1);
    assert!(listener.accept().is_err(), "the target reached the host's socket");
    let (out, j) = t.attack(&[], &["sockets"]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "socket_unix"), "EAFNOSUPPORT", "{}", dump(&out));
    assert_eq!(word(&out, "socketpair_unix"), "ok", "{}", dump(&out));
    assert_eq!(word(&out, "socketpair_carries"), "yes", "{}", dump(&out));
}

/// The network namespace does not cover every address family: sockets of
/// vsock (the hypervisor's host), packet and bluetooth fail with
/// EAFNOSUPPORT; the internet ones (in the run's own namespace) and netlink
/// (which address lookups use) still open.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn sockets_of_families_beyond_internet_and_netlink_fail_with_eafnosupport() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["sockets"]);
    verdict(&out, &j, "ok", 0);
    safeexec_tests::assert_each(
        &out,
        &["socket_vsock", "socket_packet", "socket_bluetooth"],
        "EAFNOSUPPORT",
    );
    safeexec_tests::assert_each(&out, &["socket_inet", "socket_inet6", "socket_netlink"], "ok");
}

/// A datagram socketpair is a unix socket that may name any address in
/// sendto: it would reach a host daemon's datagram socket (as /dev/log)
/// that the run can see. Only connected types (stream, seqpacket) may be
/// made as a pair; the filter answers EAFNOSUPPORT to the others.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn datagram_socketpair_is_refused_and_reaches_no_host_socket() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let t = require_root!();
    // A host daemon's datagram socket, in a directory the run can see (the
    // host's own file system, read-only in the run; a socket there can
    // still be sent to).
    let scratch = t.scratch("dgram");
    let path = scratch.path().join("log");
    let daemon = UnixDatagram::bind(&path).expect("bind the daemon's socket");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    daemon.set_nonblocking(true).expect("non-blocking");
    // Control: the socket receives what is sent to it.
    UnixDatagram::unbound().expect("socket").send_to(b"control", &path).expect("send");
    let mut buf = [0u8; 64];
    assert_eq!(daemon.recv(&mut buf).ok(), Some(7), "the control datagram did not arrive");
    let at = path.to_str().expect("a UTF-8 path");
    let (out, j) = t.attack_with(&t.fixture("review3"), &[], &["dgram", at]);
    verdict(&out, &j, "ok", 0);
    assert_eq!(word(&out, "dgram"), "EAFNOSUPPORT", "{}", dump(&out));
    assert_eq!(word(&out, "dgram_cloexec"), "EAFNOSUPPORT", "{}", dump(&out));
    assert_eq!(word(&out, "stream"), "ok", "a stream socketpair must keep working\n{}", dump(&out));
    match daemon.recv(&mut buf) {
        Ok(n) => panic!(
            "the host's socket received {:?}\n{}",
            String::from_utf8_lossy(&buf[..n]),
            dump(&out)
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
    }
}

/// Each run's network namespace is its own (`network::start` makes one per
/// run, beside the supervisor's checks): two runs alive at once, and the
/// host, each have a different one. A namespace shared between runs would
/// let one submission reach another's loopback and abstract sockets.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn two_runs_alive_at_once_each_have_a_network_namespace_of_their_own() {
    let t = require_root!();
    let host = std::fs::read_link("/proc/self/ns/net").expect("our network namespace");
    // The first run is still alive (sleeping) when the second reads its own.
    let script =
        "import os, time; print(os.readlink('/proc/self/ns/net'), flush=True); time.sleep(2)";
    let outs: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|i| {
                let t = &t;
                scope.spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(500 * i));
                    t.safeexec(&["--clock", "10", "--exec", PYTHON, "-c", script])
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("a run's thread")).collect()
    });
    let seen: Vec<String> = outs.iter().map(|o| stdout(o).trim().to_string()).collect();
    for out in &outs {
        assert!(stdout(out).starts_with("net:["), "{}", dump(out));
    }
    assert_ne!(seen[0], seen[1], "two live runs share a network namespace");
    for s in &seen {
        assert_ne!(s, &host.display().to_string(), "a run has the host's network namespace");
    }
}

/// The network thread is joined before init's fork and the helper's copy
/// of the namespace closed there (`network::start`, `main::run`), its socket
/// in the namespace once the loopback is up (`network::Loopback::up`):
/// while a run lives, the supervisor has one thread and holds no network
/// namespace and no socket but its end of the run's channel, init holds
/// none either (it entered the one made for the run), and the target is in
/// a namespace other than the host's.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn only_the_run_holds_its_network_namespace_and_the_supervisor_has_one_thread() {
    let t = require_root!();
    let p = t.probe();
    let run = t.run(&["--clock", "2", "--json", "--exec", &p, "sleep"]).spawn();
    let (sup, init, target) = run_pids(run.id());
    let tasks = std::fs::read_dir(format!("/proc/{sup}/task")).expect("the supervisor").count();
    assert_eq!(tasks, 1, "the supervisor has more than one thread");
    assert_holds_no_network_but_the_channel(sup, init);
    assert_eq!(ns(sup), ns(std::process::id()), "the supervisor left the host's network");
    assert_eq!(ns(init), ns(target), "init is not in the run's network namespace");
    assert_ne!(ns(target), ns(std::process::id()), "the target has the host's network");
    let out = run.wait();
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
}

/// With the host's network shared, the namespace the thread made anyway is
/// closed unused at once (`network::Maker::network`): neither the supervisor nor init
/// holds a network namespace or a socket but the channel's, and the whole
/// run is in the host's namespace.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_shared_network_leaves_no_namespace_of_the_threads_open() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("allow_share_net", "true")]));
    let p = t.probe();
    let run = t.run(&["--share_newnet", "--clock", "2", "--json", "--exec", &p, "sleep"]).spawn();
    let (sup, init, target) = run_pids(run.id());
    assert_holds_no_network_but_the_channel(sup, init);
    for pid in [sup, init, target] {
        assert_eq!(ns(pid), ns(std::process::id()), "a process of the run left the host's network");
    }
    let out = run.wait();
    assert_eq!(out.status.code(), Some(1), "{}", dump(&out));
}

/// The network namespace `pid` is in.
fn ns(pid: u32) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("a namespace")
}

/// The supervisor and init hold no descriptor of a network namespace and
/// no socket but their ends of the run's channel.
fn assert_holds_no_network_but_the_channel(sup: u32, init: u32) {
    for (who, pid) in [("supervisor", sup), ("init", init)] {
        let mut sockets = 0;
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("descriptors").flatten() {
            let to = std::fs::read_link(fd.path()).unwrap_or_default();
            assert!(!to.to_string_lossy().starts_with("net:["), "the {who} holds {to:?}");
            sockets += usize::from(to.to_string_lossy().starts_with("socket:["));
        }
        assert_eq!(sockets, 1, "the {who} holds a socket besides its end of the channel");
    }
}

// Network namespaces kept between runs (the helper's `netpool`): a run
// that used no network hands its namespace on to a later run; any trace a
// run could leave in it (a packet's counters, a socket passed out of the
// run, an IPv6 flow label left to linger) keeps it from the next. Each test
// holds every slot but the first, so that its runs take that one in turn
// (the next waits until the run before is wholly gone): without the checks,
// the second run would get the first one's namespace, as the first test's
// control shows.

/// The helper's `netpool::SLOTS`.
const NET_SLOTS: u32 = 16;

/// Slots 1 and up of the pool, held by the test, and slot 0's file.
struct PinnedToSlot0 {
    dir: std::path::PathBuf,
    _others: Vec<std::fs::File>,
}

/// An open-file-description lock on the whole of `file`, if free.
fn lock_whole(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    let whole = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: `whole` is a live flock the kernel only reads.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &whole) == 0 }
}

/// `path` (made if missing, as the helper makes a slot's file), opened
/// for reading and writing (a write lock needs both) and locked whole, once
/// the run holding it, if any, has ended: within 10 s.
fn lock_when_free(path: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("a slot's file {}: {e}", path.display()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lock_whole(&file) {
        assert!(std::time::Instant::now() < deadline, "{} stays held", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    file
}

impl PinnedToSlot0 {
    fn new(t: &safeexec_tests::Ctx) -> Self {
        use std::os::unix::fs::DirBuilderExt;
        // A run first, which mounts the pool (its tmpfs) if it keeps any.
        let out = t.safeexec(&["--exec", "/bin/true"]);
        assert_verdict(&out, "OK", 0);
        let dir = t.prefix.join("var/lib/safeexec/netns");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).expect("the pool");
        // A run of another test still holding one ends soon.
        let others = (1..NET_SLOTS).map(|n| lock_when_free(&dir.join(n.to_string()))).collect();
        PinnedToSlot0 { dir, _others: others }
    }

    /// Waits until no run holds slot 0 (the run before has wholly ended).
    fn wait_free(&self) {
        drop(lock_when_free(&self.dir.join("0")));
    }

    /// Runs `script` in Python in slot 0 once it is free; its stdout.
    fn run(&self, t: &safeexec_tests::Ctx, script: &str) -> String {
        self.wait_free();
        let out = t.safeexec(&["--clock", "10", "--exec", PYTHON, "-c", script]);
        assert_verdict(&out, "OK", 0);
        stdout(&out)
    }
}

/// Prints the run's network namespace, then what `more` prints.
fn script_ns(more: &str) -> String {
    format!("import os, socket, struct\nprint(os.readlink('/proc/self/ns/net'))\n{more}")
}

/// The first line of a run's output: its network namespace.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The control: two runs that use no network, one after the other in one
/// slot, have the same namespace (`netpool`), its loopback up in both. The
/// run before them sent a packet: the first of them made a new namespace,
/// which its supervisor kept in the slot (`netpool::Refill`).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_that_used_no_network_hands_its_namespace_on() {
    let t = require_root_exclusive!();
    let pin = PinnedToSlot0::new(&t);
    let send = "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))";
    let sender = pin.run(&t, &script_ns(send));
    // ::1 is on the loopback once it is up.
    let lo_up = "print(any(l.split()[-1] == 'lo' for l in open('/proc/net/if_inet6')))";
    let first = pin.run(&t, &script_ns(lo_up));
    let second = pin.run(&t, &script_ns(lo_up));
    assert!(first.starts_with("net:["), "{first}");
    assert_ne!(first_line(&sender), first_line(&first), "a used namespace was handed on");
    assert_eq!(first_line(&first), first_line(&second), "the namespace was not handed on");
    for out in [&first, &second] {
        assert_eq!(out.lines().nth(1), Some("True"), "the loopback is not up: {out}");
    }
}

/// With the policy's `keep_networks = false`, every run has a new
/// namespace, even after a run that used no network.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_policy_that_keeps_no_network_gives_every_run_a_new_one() {
    let t = require_root_exclusive!();
    t.set_policy(&t.policy_with(&[("keep_networks", "false")]));
    let pin = PinnedToSlot0::new(&t);
    let first = pin.run(&t, &script_ns(""));
    let second = pin.run(&t, &script_ns(""));
    assert!(first.starts_with("net:["), "{first}");
    assert_ne!(first_line(&first), first_line(&second), "the namespace was handed on");
}

/// A datagram sent on the run's loopback moves its counters: the next run
/// gets another namespace, whose counters are all zero (a run reading them
/// learns nothing of the runs before).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_that_sent_a_packet_does_not_hand_its_namespace_on() {
    let t = require_root_exclusive!();
    let pin = PinnedToSlot0::new(&t);
    let send = "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))";
    let sender = pin.run(&t, &script_ns(send));
    let reader = pin.run(
        &t,
        &script_ns(
            "udp = [l.split() for l in open('/proc/net/snmp') if l.startswith('Udp:')]\n\
             print('OutDatagrams', dict(zip(udp[0], udp[1]))['OutDatagrams'])",
        ),
    );
    assert_ne!(first_line(&sender), first_line(&reader), "the namespace was handed on");
    assert_eq!(reader.lines().nth(1), Some("OutDatagrams 0"), "{reader}");
}

/// A UDP connect to ::1 sends no packet, but the kernel caches a route
/// for the CPU the program is on, which outlives the run: a later run that
/// looked (/proc/net/rt6_stats, or the route's use count in
/// /proc/net/ipv6_route) would read one bit per CPU an earlier run set.
/// The next run does not get that namespace.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_route_cached_without_a_packet_does_not_reach_the_next_run() {
    let t = require_root_exclusive!();
    let pin = PinnedToSlot0::new(&t);
    let cache = "for cpu in os.sched_getaffinity(0):\n\
                 \x20   os.sched_setaffinity(0, {cpu})\n\
                 \x20   s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
                 \x20   s.connect(('::1', 9))\n\
                 \x20   s.close()\n\
                 print(open('/proc/net/rt6_stats').read().split()[2])";
    let cacher = pin.run(&t, &script_ns(cache));
    assert_ne!(cacher.lines().nth(1), Some("0000"), "no route was cached: {cacher}");
    let reader = pin.run(&t, &script_ns("print(open('/proc/net/rt6_stats').read().split()[2])"));
    assert_ne!(first_line(&cacher), first_line(&reader), "the namespace was handed on");
    assert_eq!(reader.lines().nth(1), Some("0000"), "the next run sees a cached route: {reader}");
}

/// IPv4 caches a route for each CPU too, when a program connects a UDP
/// socket to 127.0.0.1, without a packet and where the fingerprint does
/// not look; it carries its age, which a later run reads back with a
/// route request (RTA_CACHEINFO): an independent review sent a number from
/// one run to the next that way. The namespace is handed on (nothing else
/// of it moved), its routes flushed (`netpool::flush_routes`).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_routes_age_does_not_reach_the_next_run() {
    let t = require_root_exclusive!();
    let pin = PinnedToSlot0::new(&t);
    let cache = "import time\n\
                 for cpu in os.sched_getaffinity(0):\n\
                 \x20   os.sched_setaffinity(0, {cpu})\n\
                 \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 \x20   s.connect(('127.0.0.1', 9))\n\
                 \x20   s.close()\n\
                 time.sleep(1.5)";
    let cacher = pin.run(&t, &script_ns(cache));
    // The route's age in hundredths of a second (RTA_CACHEINFO's first
    // field after the client count), from an RTM_GETROUTE for 127.0.0.1.
    let age = "s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)\n\
               body = struct.pack('BBBBBBBBI', socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0)\n\
               body += struct.pack('HH4s', 8, 1, socket.inet_aton('127.0.0.1'))\n\
               s.send(struct.pack('IHHII', 16 + len(body), 26, 1, 1, 0) + body)\n\
               data, off, age = s.recv(65536), 28, None\n\
               while off + 4 <= len(data):\n\
               \x20   l, kind = struct.unpack_from('HH', data, off)\n\
               \x20   if l < 4: break\n\
               \x20   if kind == 12: age = struct.unpack_from('II', data, off + 4)[1]\n\
               \x20   off += (l + 3) & ~3\n\
               print('age', age)";
    let reader = pin.run(&t, &script_ns(age));
    assert_eq!(first_line(&cacher), first_line(&reader), "the control: not handed on");
    let seen = reader.lines().nth(1).and_then(|l| l.strip_prefix("age "));
    let seen: u64 = seen.and_then(|a| a.parse().ok()).unwrap_or(0);
    assert!(seen < 100, "the next run reads a route cached {seen}/100 s before: {reader}");
}

/// The pool's mounts are left out of each run's view (`netpool::leave_out`):
/// a run sees no kept namespace, its own slot or another live run's, in
/// its mountinfo, and holds none alive.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_sees_no_kept_namespace_among_its_mounts() {
    let t = require_root!();
    let out = t.safeexec(&["--exec", "/bin/true"]);
    assert_verdict(&out, "OK", 0);
    let pool = t.prefix.join("var/lib/safeexec/netns");
    let pool = pool.to_str().expect("a UTF-8 prefix");
    let kept = std::fs::read_to_string("/proc/self/mountinfo").expect("our mounts");
    let count = |mounts: &str| mounts.lines().filter(|l| l.contains(pool)).count();
    assert!(count(&kept) >= 2, "the control: no pool, or no namespace kept in it\n{kept}");
    let out = t.safeexec(&["--exec", "/bin/cat", "/proc/self/mountinfo"]);
    assert_verdict(&out, "OK", 0);
    assert_eq!(count(&stdout(&out)), 0, "{}", dump(&out));
    // A minimal root is init's own root before it leaves the pool out,
    // and the run's mountinfo shows nothing outside its root: its whole
    // mount namespace, read from outside (a review of the fourteenth round
    // found the pool left in it, every kept namespace held alive).
    let run = t.run(&["--root", "minimal", "--clock", "20", "--exec", "/bin/sleep", "2"]).spawn();
    let (_, init, _) = safeexec_tests::run_pids(run.id());
    let seen = std::process::Command::new("nsenter")
        .args(["-t", &init.to_string(), "-m", "--", "/bin/cat", "/proc/self/mountinfo"])
        .output()
        .expect("nsenter");
    let out = run.wait();
    assert_verdict(&out, "OK", 0);
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(seen.contains(" / / "), "the run's mounts were not read: {seen}");
    assert_eq!(count(&seen), 0, "{seen}");
}

/// A multicast membership makes the kernel send a report a few
/// milliseconds after the join, and another after the leave, which the
/// program's exit makes: a run that joins as it ends has its report sent
/// after the next run's check of the kept namespace, into that run, which
/// reads its size back from the counters (an independent review carried a
/// number between runs so, 26 times in 30). The seccomp filter refuses
/// every membership option, IPv4's and IPv6's (EPERM).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn multicast_memberships_are_refused_to_the_run() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["mcast"]);
    verdict(&out, &j, "ok", 0);
    let joins =
        ["ip_add_membership", "mcast_join_group_v4", "ipv6_add_membership", "mcast_join_group_v6"];
    safeexec_tests::assert_each(&out, &joins, "EPERM");
}

/// A run made its TCP connections outlive it by weeks, as orphans with
/// full send queues that kept the machine's TCP memory (the run's whole
/// memory limit) and its removed memory cgroup: each end dropped the
/// other's packets, resets included (a TCP_MD5SIG key the peer does not
/// share, or a minimum TTL the loopback misses), and a user timeout of
/// weeks kept them retransmitting (a review of the eleventh round). The
/// seccomp filter refuses every option of that kind (EPERM).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn options_that_keep_a_tcp_connection_past_the_run_are_refused() {
    let t = require_root!();
    let (out, j) = t.attack(&[], &["tcpopts"]);
    verdict(&out, &j, "ok", 0);
    let options = [
        "tcp_md5sig",
        "tcp_md5sig_ext",
        "tcp_ao_add_key",
        "tcp_user_timeout",
        "ip_minttl",
        "ipv6_minhopcount",
    ];
    safeexec_tests::assert_each(&out, &options, "EPERM");
}

/// The kernel broadcasts the host's device events (uevents: disks, USB,
/// modules) into every network namespace of the host's user namespace,
/// the run's included: a run listening on NETLINK_KOBJECT_UEVENT printed
/// the host's events, in both roots (a review of the twelfth round).
/// Netlink's routing protocol, which the C library's lookups use, is the
/// only one a run may open; the others fail as on a kernel without them.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn the_hosts_device_events_do_not_reach_the_run() {
    let t = require_root!();
    for root in ["host", "minimal"] {
        let (out, j) = t.attack(&["--root", root], &["netlink"]);
        verdict(&out, &j, "ok", 0);
        assert_eq!(word(&out, "route"), "ok", "{root}: {}", dump(&out));
        safeexec_tests::assert_each(
            &out,
            &["uevent", "audit", "generic", "connector"],
            "EPROTONOSUPPORT",
        );
    }
}

/// An IPv6 flow label is state of the namespace that outlives the socket
/// that made it, with no packet: a label may linger up to a minute, and an
/// exclusive one sets a flag of the namespace for good, which a later
/// program reads back (a connect with a label it does not own fails); a
/// review carried a bit from one run to the next that way. The seccomp
/// filter refuses the option (EPERM), which the test user may use outside
/// the sandbox (the control); the next run in the slot sees no label.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn an_ipv6_flow_label_is_refused_to_the_run() {
    let t = require_root_exclusive!();
    let pin = PinnedToSlot0::new(&t);
    // struct in6_flowlabel_req: the destination, the label, then action
    // (get), share (exclusive, then any), flags (create), expires, linger.
    let label = "for share in (1, 255):\n\
                 \x20   s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
                 \x20   req = socket.inet_pton(socket.AF_INET6, '::1') + struct.pack('!I', 0x12345 + share)\n\
                 \x20   req += struct.pack('=BBHHHI', 0, share, 1, 6, 6, 0)\n\
                 \x20   try:\n\
                 \x20       s.setsockopt(socket.IPPROTO_IPV6, 32, req)\n\
                 \x20       print('made', share)\n\
                 \x20   except OSError as e:\n\
                 \x20       print('refused', share, e.errno)\n\
                 print(len(open('/proc/net/ip6_flowlabel').readlines()) - 1)";
    let script = script_ns(label);
    // The control, outside the sandbox: the kernel lets the user make them
    // (in a network namespace of the control's own, which goes with it).
    let user = format!("--reuid={}", safeexec_tests::TEST_USER);
    let group = format!("--regid={}", safeexec_tests::TEST_USER);
    let out = std::process::Command::new("unshare")
        .args(["--net", "setpriv", &user, &group, "--init-groups", PYTHON, "-c", &script])
        .output()
        .expect("unshare");
    assert!(stdout(&out).contains("made 1\nmade 255\n"), "{}", dump(&out));
    let maker = pin.run(&t, &script);
    let eperm = libc::EPERM;
    assert!(
        maker.contains(&format!("refused 1 {eperm}\nrefused 255 {eperm}\n0\n")),
        "the run made a flow label: {maker}"
    );
    let reader =
        pin.run(&t, &script_ns("print(len(open('/proc/net/ip6_flowlabel').readlines()) - 1)"));
    assert_eq!(reader.lines().nth(1), Some("0"), "the next run sees a label: {reader}");
}

/// A run whose standard output is a unix socket can pass one of its own
/// sockets out through it (SCM_RIGHTS): a listener that outlives the run,
/// in its namespace. The next run must not get that namespace, where the
/// outsider's listener would answer it.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_socket_passed_out_of_a_run_does_not_reach_the_next_run() {
    use std::os::unix::net::UnixStream;
    let t = require_root_exclusive!();
    let pin = PinnedToSlot0::new(&t);
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    // Its namespace on stderr: stdout is the socket the listener goes on.
    let pass = "import os, socket, sys\n\
                sys.stderr.write(os.readlink('/proc/self/ns/net') + '\\n')\n\
                l = socket.socket(); l.bind(('127.0.0.1', 5555)); l.listen()\n\
                socket.send_fds(socket.socket(fileno=os.dup(1)), [b'x'], [l.fileno()])";
    pin.wait_free();
    let out = t.run(&["--clock", "10", "--exec", PYTHON, "-c", pass]).fd(theirs, 1).output();
    assert_verdict(&out, "OK", 0);
    let passer = safeexec_tests::stderr(&out);
    let listener = received_fd(&ours);
    let reader = pin.run(
        &t,
        &script_ns(
            "try:\n    socket.create_connection(('127.0.0.1', 5555)); print('connected')\n\
             except OSError as e:\n    print(e.strerror)",
        ),
    );
    assert_ne!(first_line(&passer), first_line(&reader), "the namespace was handed on");
    assert_eq!(reader.lines().nth(1), Some("Connection refused"), "{reader}");
    drop(listener);
}

/// The descriptor a run passed on `sock` with SCM_RIGHTS.
fn received_fd(sock: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut data = [0u8; 8];
    let mut space = [0u64; 8];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: msghdr is plain old data; all zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&space);
    // SAFETY: every pointer of `msg` is to live memory of the size it names.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "no message from the run");
    // SAFETY: the kernel filled the control buffer; CMSG_FIRSTHDR reads
    // within `msg_controllen`.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    assert!(!cmsg.is_null(), "no descriptor from the run");
    // SAFETY: a SCM_RIGHTS message carries at least one int after its header.
    unsafe {
        assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
        std::os::fd::OwnedFd::from_raw_fd(std::ptr::read_unaligned(
            libc::CMSG_DATA(cmsg).cast::<i32>(),
        ))
    }
}
