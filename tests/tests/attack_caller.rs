//! A malicious member of the helper's group runs the setuid helper directly:
//! hostile bytes on the request descriptor, hostile descriptors, rlimits,
//! signal state, argv and environment. Every attack must fail closed (one
//! line, exit status 2, nothing run, no core, no file touched) or run
//! exactly as a well-formed request would (DESIGN.md invariants 1-3, 8).

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::sync::Mutex;
use std::time::Duration;

use common::{direct, kv, probe, pty, Preset};
use safeexec_tests::{
    frame, in_policy_range, lookup_group, lookup_user, process, request, require_root, Env,
    POLICY_UID_BASE,
};
use shared::wire::MAX_REQUEST_BYTES;
use shared::{End, Reply, Request};

fn probe_request(t: &Env, args: &[&str]) -> Request {
    let p = probe(t);
    let mut argv = vec![p.as_str()];
    argv.extend_from_slice(args);
    request(&argv)
}

/// Header of a frame with the given payload length.
fn header(len: u32) -> Vec<u8> {
    let mut h = b"sxec".to_vec();
    h.extend_from_slice(&shared::PROTOCOL_VERSION.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// A valid frame of `r` with `extra` appended to its payload (length fixed).
fn frame_with_extra_payload(r: &Request, extra: &[u8]) -> Vec<u8> {
    let mut f = frame(r);
    f.extend_from_slice(extra);
    let len = (f.len() - 12) as u32;
    f[8..12].copy_from_slice(&len.to_le_bytes());
    f
}

/// bincode's varint encoding of a u32 (as a hostile frame would carry an id).
fn varint(v: u32) -> Vec<u8> {
    match v {
        0..=250 => vec![v as u8],
        251..=65535 => {
            let mut b = vec![251];
            b.extend_from_slice(&(v as u16).to_le_bytes());
            b
        }
        _ => {
            let mut b = vec![252];
            b.extend_from_slice(&v.to_le_bytes());
            b
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile bytes on the request descriptor

/// Changes one limit of a request.
type SetLimit = Box<dyn Fn(&mut shared::Limits)>;

#[test]
fn truncated_frame_is_refused() {
    let t = require_root!();
    let f = frame(&request(&["/bin/true"]));
    for cut in [3, 12, f.len() / 2, f.len() - 1] {
        let got = direct(&t).exchange(&f[..cut]);
        let line = got.refusal();
        assert!(
            line.contains("closed before a whole message"),
            "cut at {cut}: {line}"
        );
    }
}

#[test]
fn garbage_frame_is_refused() {
    let t = require_root!();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let line = direct(&t).exchange(&garbage).refusal();
    assert!(line.contains("bad magic"), "{line}");
}

#[test]
fn frame_with_trailing_bytes_after_it_is_refused() {
    let t = require_root!();
    let mut f = frame(&request(&["/bin/true"]));
    f.extend_from_slice(b"and then some");
    let line = direct(&t).exchange(&f).refusal();
    assert!(line.contains("unexpected bytes"), "{line}");
}

#[test]
fn frame_with_trailing_bytes_inside_its_payload_is_refused() {
    let t = require_root!();
    let f = frame_with_extra_payload(&request(&["/bin/true"]), &[0]);
    let line = direct(&t).exchange(&f).refusal();
    assert!(line.contains("unexpected bytes"), "{line}");
}

#[test]
fn oversized_frame_is_refused_before_its_payload_is_read() {
    let t = require_root!();
    let len = MAX_REQUEST_BYTES as u32 + 1;
    let mut f = header(len);
    f.resize(12 + len as usize, b'a');
    let got = direct(&t).exchange(&f);
    let line = got.refusal();
    assert!(line.contains("larger than the limit"), "{line}");
}

#[test]
fn frame_with_u32_max_length_is_refused() {
    let t = require_root!();
    let mut f = header(u32::MAX);
    f.extend_from_slice(&[0; 64]);
    let got = direct(&t).exchange(&f);
    let line = got.refusal();
    assert!(
        line.contains("4294967295") && line.contains("larger than the limit"),
        "{line}"
    );
    assert!(
        got.elapsed < Duration::from_secs(5),
        "refusing took {:?}",
        got.elapsed
    );
}

#[test]
fn ten_megabyte_string_is_refused_by_the_length_bound() {
    let t = require_root!();
    // A request whose argv[1] is 10 MB: the encoder refuses to build it,
    // so build the frame by hand, as an attacker would.
    let big = 10 << 20;
    let r = request(&["/bin/echo"]);
    assert!(matches!(
        shared::wire::encode_request(&Request {
            argv: vec!["/bin/echo".into(), "x".repeat(big)],
            ..r.clone()
        }),
        Err(shared::wire::WireError::TooLarge { .. })
    ));
    let mut f = header((big + 64) as u32);
    f.resize(12 + big + 64, b'x');
    let line = direct(&t).exchange(&f).refusal();
    assert!(line.contains("larger than the limit"), "{line}");
}

#[test]
fn frame_of_another_protocol_version_is_refused() {
    let t = require_root!();
    let mut f = frame(&request(&["/bin/true"]));
    f[4..8].copy_from_slice(&(shared::PROTOCOL_VERSION + 7).to_le_bytes());
    let line = direct(&t).exchange(&f).refusal();
    assert!(line.contains("version mismatch"), "{line}");
}

#[test]
fn request_with_bad_utf8_is_refused() {
    let t = require_root!();
    let mut f = frame(&request(&["/bin/true"]));
    let at = f
        .windows(4)
        .position(|w| w == b"/bin")
        .expect("the program path is in the frame");
    f[at + 1] = 0xc3;
    f[at + 2] = 0x28;
    let line = direct(&t).exchange(&f).refusal();
    assert!(line.contains("malformed"), "{line}");
}

#[test]
fn requests_naming_uid_0_the_callers_or_another_users_uid_or_a_privileged_gid_are_rejected() {
    let t = require_root!();
    // The protocol has no place for ids: a frame that carries them anyway
    // (appended where a hostile encoder would put them) is malformed.
    let outsider = lookup_user("safeexec-outsider").expect("the outsider user");
    let mut ids = vec![0, t.test_user.uid, outsider.uid, 65534, POLICY_UID_BASE];
    for g in ["root", "shadow", "sudo", "adm", "disk"] {
        if let Ok((gid, _)) = lookup_group(g) {
            ids.push(gid);
        }
    }
    let r = request(&["/bin/true"]);
    for id in ids {
        for extra in [varint(id), [varint(id), varint(id)].concat()] {
            let got = direct(&t).exchange(&frame_with_extra_payload(&r, &extra));
            let line = got.refusal();
            assert!(line.contains("unexpected bytes"), "id {id}: {line}");
        }
    }
    // And a plain run never gets any of them.
    let o = direct(&t)
        .exchange(&frame(&probe_request(&t, &["ids"])))
        .outcome();
    assert!(in_policy_range(o.uid) && o.gid == o.uid, "{o:?}");
    assert_ne!(o.uid, t.test_user.uid);
    assert_ne!(o.uid, outsider.uid);
}

#[test]
fn run_ids_come_from_the_policy_and_differ_from_the_callers() {
    let t = require_root!();
    let got = direct(&t).exchange(&frame(&probe_request(&t, &["ids"])));
    let o = got.outcome();
    let out = got.stdout();
    let want = o.uid.to_string();
    for key in ["ruid", "euid", "suid", "egid"] {
        assert_eq!(
            kv(&out, key).as_deref(),
            Some(want.as_str()),
            "{key}\n{out}"
        );
    }
    assert_eq!(kv(&out, "setuid0").as_deref(), Some("EPERM"), "{out}");
    assert_eq!(kv(&out, "shadow").as_deref(), Some("EACCES"), "{out}");
    assert_eq!(o.uid, POLICY_UID_BASE + got.pid, "uid is not base + pid");
}

// ---------------------------------------------------------------------------
// Hostile requests

#[test]
fn chroot_asked_without_descriptor_5_is_refused() {
    let t = require_root!();
    let r = Request {
        chroot: true,
        ..request(&["/bin/true"])
    };
    let line = direct(&t).exchange(&frame(&r)).refusal();
    assert!(line.contains("descriptor 5"), "{line}");
}

#[test]
fn chroot_descriptor_that_is_not_a_directory_is_refused() {
    let t = require_root!();
    let scratch = t.scratch("chroot-file");
    let file = std::fs::File::open(scratch.file("f", b"x", 0o644)).expect("open a file");
    let r = Request {
        chroot: true,
        ..request(&["/bin/true"])
    };
    let line = direct(&t).fd(file, 5).exchange(&frame(&r)).refusal();
    assert!(line.contains("not a directory"), "{line}");
}

#[test]
fn chroot_dir_the_caller_cannot_enter_is_refused_by_the_frontend() {
    let t = require_root!();
    let scratch = t.scratch("chroot-closed");
    let closed = scratch.path().join("closed");
    std::fs::create_dir(&closed).expect("mkdir");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for dir in ["/root", common::s(&closed)] {
        let out = t.safeexec(&["--chroot_dir", dir, "--exec", "/bin/true"]);
        assert_eq!(out.status.code(), Some(2), "{}", safeexec_tests::dump(&out));
        let err = safeexec_tests::stderr(&out);
        assert!(
            err.contains("cannot open chroot directory") && err.contains("Permission denied"),
            "{}",
            safeexec_tests::dump(&out)
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn zero_limits_fail_closed_or_run_correctly() {
    let t = require_root!();
    let base = request(&["/bin/true"]);
    let with = |f: &dyn Fn(&mut shared::Limits)| {
        let mut r = base.clone();
        f(&mut r.limits);
        r
    };
    // No time at all is refused.
    for r in [
        with(&|l| l.cpu_ms = Some(0)),
        with(&|l| l.wall_ms = Some(0)),
    ] {
        let line = direct(&t).exchange(&frame(&r)).refusal();
        assert!(line.contains("more than 0"), "{line}");
    }
    // No address space or no descriptors: the program cannot even start,
    // and that is reported, never an OK.
    for r in [
        with(&|l| l.mem_kib = Some(0)),
        with(&|l| l.nfile = 0),
        with(&|l| l.stack_kib = Some(0)),
    ] {
        let got = direct(&t).exchange(&frame(&r));
        match got.reply() {
            Ok(Reply::Finished(o)) => assert!(
                o.end != End::Exited(0) || o.exec_error.is_some(),
                "{:?} ran fine\n{}",
                r.limits,
                got.dump()
            ),
            _ => {
                got.refusal();
            }
        }
        assert!(!got.output.status.core_dumped(), "{}", got.dump());
    }
    // No extra process, no file size, no core: a program that needs none
    // of them runs.
    let o = direct(&t)
        .exchange(&frame(&with(&|l| {
            l.nproc = 0;
            l.fsize_kib = Some(0);
            l.core_kib = 0;
            l.grace_ms = 0;
            l.output_bytes = Some(0);
        })))
        .outcome();
    assert_eq!(o.end, End::Exited(0), "{o:?}");
}

#[test]
fn setup_failure_inside_the_run_is_one_line_never_a_sigpipe() {
    let t = require_root!();
    // The target's set-up fails (a missing exec_dir) before the supervisor
    // sends its go byte: the caller must get the reason, every time.
    let r = Request {
        exec_dir: Some("/nonexistent/dir".into()),
        ..request(&["/bin/true"])
    };
    for i in 0..20 {
        let got = direct(&t).exchange(&frame(&r));
        assert_ne!(
            got.output.status.signal(),
            Some(libc::SIGPIPE),
            "attempt {i}: the helper died of SIGPIPE without a reply\n{}",
            got.dump()
        );
        let line = got.refusal();
        assert!(
            line.contains("cannot enter exec_dir"),
            "attempt {i}: {line}"
        );
    }
    for i in 0..10 {
        let out = t.safeexec(&["--exec_dir", "/nonexistent/dir", "--exec", "/bin/true"]);
        let err = safeexec_tests::stderr(&out);
        assert!(
            out.status.code() == Some(2) && err.contains("cannot enter exec_dir"),
            "attempt {i}\n{}",
            safeexec_tests::dump(&out)
        );
    }
}

#[test]
fn core_limit_below_the_callers_hard_limit_is_granted() {
    let t = require_root!();
    // The caller's hard RLIMIT_CORE is unlimited: a core limit of 100 KiB
    // is within what it could set itself, so the run must get it.
    let mut r = probe_request(&t, &["rlimits"]);
    r.limits.core_kib = 100;
    let got = direct(&t)
        .preset(Preset::Rlimit(libc::RLIMIT_CORE, 0, libc::RLIM_INFINITY))
        .exchange(&frame(&r));
    assert!(
        matches!(got.reply(), Ok(Reply::Finished(_))),
        "--core 100 refused although the caller may set it\n{}",
        got.dump()
    );
    let o = got.outcome();
    assert_eq!(o.end, End::Exited(0), "{}", got.dump());
}

#[test]
fn negative_niceness_and_negative_limits_are_refused() {
    let t = require_root!();
    for nice in [-20, -1, 20, i32::MIN, i32::MAX] {
        let r = Request {
            niceness: nice,
            ..request(&["/bin/true"])
        };
        let line = direct(&t).exchange(&frame(&r)).refusal();
        assert!(line.contains("niceness"), "{nice}: {line}");
    }
    // The frontend has no way to say a negative limit.
    for (opt, v) in [
        ("--cpu", "-1"),
        ("--mem", "-5"),
        ("--nproc", "-1"),
        ("--clock", "-3"),
    ] {
        let out = t.safeexec(&[opt, v, "--exec", "/bin/true"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{opt} {v}\n{}",
            safeexec_tests::dump(&out)
        );
    }
}

#[test]
fn u64_max_limits_are_refused_naming_the_limit_and_the_maximum() {
    let t = require_root!();
    let base = request(&["/bin/true"]);
    let cases: Vec<(&str, &str, SetLimit)> = vec![
        ("cpu", "3600000 ms", Box::new(|l| l.cpu_ms = Some(u64::MAX))),
        (
            "wall-clock",
            "86400000 ms",
            Box::new(|l| l.wall_ms = Some(u64::MAX)),
        ),
        (
            "memory",
            "41943039 KiB",
            Box::new(|l| l.mem_kib = Some(u64::MAX)),
        ),
        (
            "stack",
            "4194303 KiB",
            Box::new(|l| l.stack_kib = Some(u64::MAX)),
        ),
        ("core", "4194303 KiB", Box::new(|l| l.core_kib = u64::MAX)),
        (
            "file size",
            "4194303 KiB",
            Box::new(|l| l.fsize_kib = Some(u64::MAX)),
        ),
        ("process", "65535", Box::new(|l| l.nproc = u64::MAX)),
        ("open file", "1024", Box::new(|l| l.nfile = u64::MAX)),
        ("grace", "86400000 ms", Box::new(|l| l.grace_ms = u64::MAX)),
        ("cpu", "3600000 ms", Box::new(|l| l.cpu_ms = None)),
    ];
    for (name, max, set) in cases {
        let mut r = base.clone();
        set(&mut r.limits);
        let line = direct(&t).exchange(&frame(&r)).refusal();
        assert!(
            line.contains(name) && line.contains(&format!("maximum of {max}")),
            "{name}: {line}"
        );
    }
}

#[test]
fn limits_just_over_the_policy_are_refused_and_at_it_run() {
    let t = require_root!();
    let mut over = request(&["/bin/true"]);
    over.limits.nfile = 1025;
    let line = direct(&t).exchange(&frame(&over)).refusal();
    assert!(
        line.contains("open file limit of 1025 is over the policy's maximum of 1024"),
        "{line}"
    );
    let mut at = request(&["/bin/true"]);
    at.limits.nfile = 1024;
    assert_eq!(
        direct(&t).exchange(&frame(&at)).outcome().end,
        End::Exited(0)
    );
}

#[test]
fn hundred_thousand_argv_entries_run_correctly() {
    let t = require_root!();
    let mut r = probe_request(&t, &["args"]);
    r.argv.extend((0..100_000).map(|i| format!("{}", i % 10)));
    let got = direct(&t).exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(o.end, End::Exited(0), "{}", got.dump());
    assert_eq!(
        kv(&got.stdout(), "argc").as_deref(),
        Some("100002"),
        "{}",
        got.dump()
    );
}

#[test]
fn argument_of_900_kib_fails_closed_with_e2big() {
    let t = require_root!();
    let mut r = probe_request(&t, &["args"]);
    r.argv.push("z".repeat(900 * 1024));
    let got = direct(&t).exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(
        o.exec_error.as_deref(),
        Some("Argument list too long"),
        "{}",
        got.dump()
    );
    assert_ne!(o.end, End::Exited(0));
}

#[test]
fn interior_nul_bytes_are_refused() {
    let t = require_root!();
    let base = request(&["/bin/true"]);
    let cases = [
        Request {
            program: "/bin/true\0/../evil".into(),
            ..base.clone()
        },
        Request {
            argv: vec!["/bin/true".into(), "a\0b".into()],
            ..base.clone()
        },
        Request {
            env: vec!["A=1\0LD_PRELOAD=/x.so".into()],
            ..base.clone()
        },
        Request {
            exec_dir: Some("/tmp\0/root".into()),
            ..base.clone()
        },
    ];
    for r in cases {
        let line = direct(&t).exchange(&frame(&r)).refusal();
        assert!(line.contains("NUL byte"), "{r:?}: {line}");
    }
}

#[test]
fn empty_request_argv_is_refused() {
    let t = require_root!();
    for r in [
        Request {
            argv: vec![],
            ..request(&["/bin/true"])
        },
        Request {
            program: String::new(),
            ..request(&["/bin/true"])
        },
    ] {
        let line = direct(&t).exchange(&frame(&r)).refusal();
        assert!(line.contains("empty argv"), "{line}");
    }
}

#[test]
fn malformed_environment_entries_are_refused() {
    let t = require_root!();
    for entry in ["NOEQUALS", "=value"] {
        let r = Request {
            env: vec![entry.into()],
            ..request(&["/bin/true"])
        };
        let line = direct(&t).exchange(&frame(&r)).refusal();
        assert!(line.contains("NAME=VALUE"), "{line}");
    }
}

// ---------------------------------------------------------------------------
// Hostile process state around the helper

#[test]
fn ld_preload_ld_audit_and_gconv_path_have_no_effect() {
    let t = require_root!();
    let scratch = t.scratch("preload");
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    let lib = scratch.path().join("attack_preload.so");
    let src = t.repo.join("tests/fixtures/attack_preload.c");
    let built = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("run gcc");
    assert!(built.status.success(), "{}", safeexec_tests::dump(&built));
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        scratch.path().join("gconv-modules"),
        "module INTERNAL EVIL// attack_preload 1\nmodule EVIL// INTERNAL attack_preload 1\nalias UTF-8// EVIL//\n",
    )
    .expect("write gconv-modules");
    let dir = common::s(scratch.path()).to_string();
    let lib = common::s(&lib).to_string();
    // Control: the library does drop a marker when it is loaded.
    let control = std::process::Command::new("/bin/true")
        .env("LD_PRELOAD", &lib)
        .env("ATTACK_MARKER_DIR", &dir)
        .status()
        .expect("run /bin/true");
    assert!(control.success());
    let markers = || -> Vec<String> {
        std::fs::read_dir(scratch.path())
            .expect("list the scratch dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("marker-"))
            .collect()
    };
    assert_eq!(markers().len(), 1, "the control wrote no marker");
    for m in markers() {
        std::fs::remove_file(scratch.path().join(m)).expect("remove the marker");
    }

    let got = direct(&t)
        .env(&format!("LD_PRELOAD={lib}"))
        .env(&format!("LD_AUDIT={lib}"))
        .env(&format!("GCONV_PATH={dir}"))
        .env(&format!("LD_LIBRARY_PATH={dir}"))
        .env(&format!("ATTACK_MARKER_DIR={dir}"))
        .env("MALLOC_CHECK_=3")
        .env("LANG=EVIL")
        .env("LC_ALL=EVIL")
        .env("TZ=../../../../etc/shadow")
        .exchange(&frame(&Request {
            env: vec!["ONLY=this".into()],
            ..probe_request(&t, &["env"])
        }));
    let o = got.outcome();
    assert_eq!(o.end, End::Exited(0), "{}", got.dump());
    assert_eq!(got.stdout(), "ONLY=this\n", "the target's environment");
    assert_eq!(markers(), Vec::<String>::new(), "the library ran");
}

#[test]
fn helper_with_fds_0_to_2_closed_keeps_its_channels_apart() {
    let t = require_root!();
    // The probe's exit status is the number of its open descriptors; with
    // the helper's 0-2 closed, they must be /dev/null, never a channel.
    let got = direct(&t)
        .close(0)
        .close(1)
        .close(2)
        .exchange(&frame(&probe_request(&t, &["fdlist"])));
    let o = got.outcome();
    assert_eq!(o.end, End::Exited(3), "{}", got.dump());
}

#[test]
fn request_descriptor_that_is_a_tty_socket_or_file_is_refused() {
    let t = require_root!();
    let scratch = t.scratch("reqfile");
    let valid = frame(&request(&["/bin/true"]));
    let file = scratch.file("request", &valid, 0o644);
    let (_master, slave) = pty();
    let (sock, _peer) = UnixStream::pair().expect("socketpair");
    let candidates: Vec<(&str, OwnedFd)> = vec![
        ("tty", slave),
        ("socket", sock.into()),
        (
            "file",
            std::fs::File::open(&file)
                .expect("open the request file")
                .into(),
        ),
    ];
    for (what, fd) in candidates {
        let (_keep, reply_tx) = std::io::pipe().expect("pipe");
        let got = direct(&t).fd(fd, 3).fd(reply_tx, 4).spawn().wait();
        assert_eq!(
            got.status.code(),
            Some(2),
            "{what}\n{}",
            safeexec_tests::dump(&got)
        );
        let err = safeexec_tests::stderr(&got);
        assert!(
            err.contains("descriptor 3") && err.contains("not a pipe"),
            "{what}: {err}"
        );
    }
    assert_eq!(std::fs::read(&file).expect("read back"), valid);
}

#[test]
fn reply_descriptor_that_is_a_file_is_refused_and_the_file_is_not_touched() {
    let t = require_root!();
    let scratch = t.scratch("replyfile");
    let content = b"precious data that must survive\n".repeat(100);
    let path = scratch.file("reply", &content, 0o644);
    let (request_rx, mut request_tx) = std::io::pipe().expect("pipe");
    request_tx
        .write_all(&frame(&request(&["/bin/true"])))
        .expect("write the request");
    drop(request_tx);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the reply file");
    let got = direct(&t).fd(request_rx, 3).fd(file, 4).spawn().wait();
    assert_eq!(got.status.code(), Some(2), "{}", safeexec_tests::dump(&got));
    assert!(safeexec_tests::stderr(&got).contains("descriptor 4"));
    assert_eq!(std::fs::read(&path).expect("read back"), content);
}

#[test]
fn extra_descriptors_do_not_reach_the_target() {
    let t = require_root!();
    let scratch = t.scratch("extrafds");
    let f = scratch.file("secret", b"secret", 0o600);
    let (_master, slave) = pty();
    let (sock, _peer) = UnixStream::pair().expect("socketpair");
    let (pipe_rx, _pipe_tx) = std::io::pipe().expect("pipe");
    let got = direct(&t)
        .fd(std::fs::File::open(&f).expect("open"), 5)
        .fd(slave, 6)
        .fd(OwnedFd::from(sock), 9)
        .fd(pipe_rx, 100)
        .fd(std::fs::File::open("/etc/passwd").expect("open"), 1000)
        .exchange(&frame(&probe_request(&t, &["fdlist"])));
    let o = got.outcome();
    assert_eq!(
        kv(&got.stdout(), "fds").as_deref(),
        Some("0,1,2"),
        "{}",
        got.dump()
    );
    assert_eq!(o.end, End::Exited(3));
}

// ---------------------------------------------------------------------------
// Hostile rlimits preset by the caller

/// Runs the probe's `fdlist` (a correct run exits 3) under preset rlimits;
/// asserts either a correct run or a one-line refusal; never a core, never
/// a survivor.
fn under_rlimit(t: &Env, res: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Option<String> {
    let got = direct(t)
        .preset(Preset::Rlimit(res, soft, hard))
        .exchange(&frame(&probe_request(t, &["fdlist"])));
    assert!(
        !got.output.status.core_dumped(),
        "core dumped\n{}",
        got.dump()
    );
    let result = match got.reply() {
        Ok(Reply::Finished(o)) => {
            assert_eq!(o.end, End::Exited(3), "{}", got.dump());
            assert_eq!(got.output.status.code(), Some(0), "{}", got.dump());
            common::assert_nothing_left(o.uid, &got.dump());
            None
        }
        _ => Some(got.refusal()),
    };
    let uid = POLICY_UID_BASE + got.pid;
    common::assert_nothing_left(uid, &got.dump());
    result
}

#[test]
fn preset_rlimit_nofile_3_fails_closed() {
    let t = require_root!();
    let refused = under_rlimit(&t, libc::RLIMIT_NOFILE, 3, 3);
    // This machine cannot raise a hard limit (no CAP_SYS_RESOURCE in the
    // bounding set): the run asks for 512 descriptors, so it must fail.
    let line = refused.expect("ran with 512 files under a hard limit of 3");
    assert!(!line.is_empty());
}

#[test]
fn preset_rlimit_nproc_0_fails_closed() {
    let t = require_root!();
    let line = under_rlimit(&t, libc::RLIMIT_NPROC, 0, 0).expect("ran above a hard NPROC of 0");
    assert!(line.to_lowercase().contains("nproc"), "{line}");
}

#[test]
fn preset_rlimit_fsize_0_runs_and_truncates_nothing() {
    let t = require_root!();
    // The request's file size limit is 0 too, so the run is within it.
    assert_eq!(under_rlimit(&t, libc::RLIMIT_FSIZE, 0, 0), None);
}

#[test]
fn preset_rlimit_fsize_0_with_stderr_on_a_file_neither_truncates_nor_kills() {
    let t = require_root!();
    let scratch = t.scratch("fsize-stderr");
    let content = b"the caller's log\n".repeat(64);
    let path = scratch.file("log", &content, 0o644);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open the log");
    // No request descriptor: the helper's only output is its error line,
    // which cannot be written under FSIZE 0.
    let got = direct(&t)
        .preset(Preset::Rlimit(libc::RLIMIT_FSIZE, 0, 0))
        .fd(log, 2)
        .spawn()
        .wait();
    assert_eq!(
        std::fs::read(&path).expect("read back"),
        content,
        "the log changed"
    );
    assert!(!got.status.core_dumped(), "{}", safeexec_tests::dump(&got));
    assert_eq!(
        got.status.code(),
        Some(2),
        "the helper did not fail closed with its exit status (killed by {:?})",
        got.status.signal()
    );
}

#[test]
fn preset_rlimit_as_1_mib_fails_closed() {
    let t = require_root!();
    let attempt = direct(&t)
        .preset(Preset::Rlimit(libc::RLIMIT_AS, 1 << 20, 1 << 20))
        .try_spawn();
    match attempt {
        // The kernel refused to even load the helper: nothing ran.
        Err(e) => eprintln!("execve under a 1 MiB address space: {e}"),
        Ok(running) => {
            let out = running.wait();
            assert!(!out.status.core_dumped(), "{}", safeexec_tests::dump(&out));
            assert!(!out.status.success(), "{}", safeexec_tests::dump(&out));
        }
    }
    // With channels and a request: fails closed (it cannot work: the
    // target's 32 MiB of address space are above the hard limit).
    assert!(under_rlimit_as(&t));
}

fn under_rlimit_as(t: &Env) -> bool {
    let (request_rx, mut request_tx) = std::io::pipe().expect("pipe");
    let (mut reply_rx, reply_tx) = std::io::pipe().expect("pipe");
    request_tx
        .write_all(&frame(&probe_request(t, &["fdlist"])))
        .expect("write");
    drop(request_tx);
    match direct(t)
        .preset(Preset::Rlimit(libc::RLIMIT_AS, 1 << 20, 1 << 20))
        .fd(request_rx, 3)
        .fd(reply_tx, 4)
        .try_spawn()
    {
        Err(_) => true,
        Ok(running) => {
            let pid = running.pid;
            let out = running.wait();
            let mut reply = Vec::new();
            std::io::Read::read_to_end(&mut reply_rx, &mut reply).expect("read the reply");
            assert!(!out.status.core_dumped(), "{}", safeexec_tests::dump(&out));
            assert!(
                !matches!(
                    shared::wire::read_reply(&mut &reply[..]),
                    Ok(Reply::Finished(_))
                ),
                "ran under a 1 MiB hard AS limit"
            );
            assert!(!out.status.success());
            common::assert_nothing_left(POLICY_UID_BASE + pid, "");
            true
        }
    }
}

#[test]
fn preset_rlimit_cpu_1_fails_closed_with_a_clear_message() {
    let t = require_root!();
    let line = under_rlimit(&t, libc::RLIMIT_CPU, 1, 1).expect("ran above a hard CPU limit of 1");
    assert!(line.to_lowercase().contains("cpu"), "{line}");
}

#[test]
fn preset_rlimit_core_unlimited_dumps_no_core() {
    let t = require_root!();
    let scratch = t.scratch("core");
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    let r = Request {
        exec_dir: Some(common::s(scratch.path()).to_string()),
        ..probe_request(&t, &["crash"])
    };
    let got = direct(&t)
        .preset(Preset::Rlimit(
            libc::RLIMIT_CORE,
            libc::RLIM_INFINITY,
            libc::RLIM_INFINITY,
        ))
        .cwd(scratch.path())
        .exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(o.end, End::Signaled(libc::SIGABRT), "{}", got.dump());
    assert_eq!(kv(&got.stdout(), "raise_core").as_deref(), Some("EPERM"));
    let cores: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}

#[test]
fn blocked_signal_mask_and_ignored_sigchld_do_not_reach_the_run() {
    let t = require_root!();
    let got = direct(&t)
        .preset(Preset::BlockAll)
        .preset(Preset::Ignore(libc::SIGCHLD))
        .preset(Preset::Ignore(libc::SIGTERM))
        .preset(Preset::Ignore(libc::SIGXCPU))
        .preset(Preset::Ignore(libc::SIGPIPE))
        // glibc's reserved signals, and real-time ones: what the helper
        // does not reset, the target inherits.
        .preset(Preset::Ignore(32))
        .preset(Preset::Ignore(33))
        .preset(Preset::Ignore(34))
        .preset(Preset::Ignore(64))
        .exchange(&frame(&probe_request(&t, &["status"])));
    let o = got.outcome();
    assert_eq!(o.end, End::Exited(0), "{}", got.dump());
    let out = got.stdout();
    let field = |k: &str| safeexec_tests::status_field(&out, k).map(str::to_string);
    assert_eq!(
        field("SigBlk").as_deref(),
        Some("0000000000000000"),
        "{out}"
    );
    assert_eq!(
        field("SigIgn").as_deref(),
        Some("0000000000000000"),
        "{out}"
    );
    // And a CPU limit still ends a spinning target in time.
    let mut r = probe_request(&t, &["spin", "2"]);
    r.limits.cpu_ms = Some(500);
    r.limits.nproc = 1;
    let got = direct(&t)
        .preset(Preset::BlockAll)
        .preset(Preset::Ignore(libc::SIGCHLD))
        .exchange(&frame(&r));
    let o = got.outcome();
    assert_eq!(o.limit, Some(shared::LimitKind::Cpu), "{}", got.dump());
    assert!(got.elapsed < Duration::from_secs(5), "{}", got.dump());
    common::assert_nothing_left(o.uid, &got.dump());
}

#[test]
fn empty_helper_argv_changes_nothing() {
    let t = require_root!();
    for argv in [vec![], vec![&b"--policy=/tmp/evil"[..], b"-c"]] {
        let got = direct(&t)
            .argv(&argv)
            .exchange(&frame(&probe_request(&t, &["ids"])));
        let o = got.outcome();
        assert_eq!(o.end, End::Exited(0), "{}", got.dump());
        assert!(in_policy_range(o.uid));
    }
}

#[test]
fn outsider_cannot_execute_the_helper_directly() {
    let t = require_root!();
    let err = direct(&t)
        .user(t.outsider.uid, t.outsider.gid)
        .try_spawn()
        .err()
        .expect("the outsider executed the helper");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
}

// ---------------------------------------------------------------------------
// Races on the uid

#[test]
fn two_helpers_racing_get_distinct_uids() {
    let t = require_root!();
    let mut r = request(&["/bin/sleep", "1"]);
    r.limits.wall_ms = Some(20_000);
    let f = frame(&r);
    let runs: Vec<_> = (0..6).map(|_| direct(&t).start_exchange(&f)).collect();
    let outcomes: Vec<_> = runs
        .into_iter()
        .map(|e| {
            let got = e.finish();
            (got.outcome(), got.pid)
        })
        .collect();
    let mut uids: Vec<u32> = outcomes.iter().map(|(o, _)| o.uid).collect();
    for (o, pid) in &outcomes {
        assert_eq!(o.end, End::Exited(0), "{o:?}");
        assert_eq!(o.uid, POLICY_UID_BASE + pid);
    }
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 6, "concurrent runs shared a uid: {outcomes:?}");
}

/// Serialises the tests of this file that steer the kernel's next pid.
static NEXT_PID: Mutex<()> = Mutex::new(());

#[test]
fn planted_process_owning_the_next_uid_is_refused() {
    let t = require_root!();
    let _g = NEXT_PID.lock().unwrap_or_else(|e| e.into_inner());
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("a number");
    for attempt in 0..30 {
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .expect("ns_last_pid")
            .trim()
            .parse()
            .expect("a number");
        let mut x = last + 500 + attempt * 7;
        if x + 100 >= pid_max {
            x = 1000 + attempt * 7;
        }
        if process(x).is_some() {
            continue;
        }
        let uid = POLICY_UID_BASE + x;
        // The planted process: a sleeper that owns the sandbox uid of the
        // helper that will get pid x.
        let mut planted = std::process::Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .args(["--clear-groups", "--", "/bin/sleep", "30"])
            .spawn()
            .expect("plant a sleeper");
        let wait_until = std::time::Instant::now() + Duration::from_secs(5);
        while process(planted.id()).is_none_or(|p| p.uid != uid)
            && std::time::Instant::now() < wait_until
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", x - 1))
            .expect("write ns_last_pid");
        let run = direct(&t).start_exchange(&frame(&request(&["/bin/true"])));
        let got_pid = run.pid();
        let got = run.finish();
        let _ = planted.kill();
        let _ = planted.wait();
        if got_pid != x {
            continue; // another process took pid x first; try again
        }
        let line = got.refusal();
        assert!(
            line.contains("still owns process") && line.contains(&uid.to_string()),
            "{line}"
        );
        assert!(
            line.contains(&planted.id().to_string()),
            "the refusal does not name the planted process {}: {line}",
            planted.id()
        );
        return;
    }
    panic!("could not give the helper the planted pid in 30 attempts");
}
