//! The uid allocator (invariant 3): a run's uid is the policy's base plus
//! an index handed out in turn through the whole range from the root-owned
//! state file `PREFIX/var/lib/safeexec/uids`, each held by a lock for as
//! long as its run may live. The tests here hold its locks themselves, so
//! they run one at a time, in a test binary of their own.

use std::sync::Mutex;
use std::time::Duration;

use safeexec_tests::{dump, frame, in_policy_range, request, require_root, stderr, End, Preset};
use shared::{Request, Root};

/// One test at a time: each holds one of the allocator's locks.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A uid whose lock a live run holds is never handed out, even when the
/// counter points at it: the next free one is (invariant 3; the lock, not a
/// look at /proc, keeps two live runs from sharing a uid).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_uid_held_by_a_live_run_is_never_handed_out() {
    let t = require_root!();
    let _g = alone();
    // A uid far from the ones runs get now, which no run holds.
    let held = t.next_run_uid() + 100_000;
    let hold = t.hold_uid(held);
    t.set_next_run_uid(held);
    let got = t.direct().exchange(&frame(&request(&["/bin/true"])));
    drop(hold);
    let o = got.outcome();
    assert_eq!(o.end, End::Exited(0), "{}", got.dump());
    assert_ne!(o.uid, held, "the run got a uid a live run holds");
    assert!(in_policy_range(o.uid), "{o:?}");
}

/// A counter lock nobody releases (no caller can stop a helper that holds
/// it: the helper is root in all its ids then) holds up no run: the run
/// fails at once, in one line, rather than wait, and rather than take a uid
/// without moving the counter on (which would give the next run the same).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_held_uid_counter_lock_fails_a_run_at_once_and_holds_up_none() {
    let t = require_root!();
    let _g = alone();
    // A run first, so that the allocator's state file exists.
    let out = t.safeexec(&["--exec", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let held = t.hold_uid_counter();
    let started = std::time::Instant::now();
    let out = t.run(&["--exec", "/bin/true"]).timeout(Duration::from_secs(20)).output();
    let elapsed = started.elapsed();
    drop(held);
    assert_eq!(out.status.code(), Some(2), "{}", dump(&out));
    assert!(stderr(&out).contains("the uid allocator is busy"), "{}", dump(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", dump(&out));
    assert!(elapsed < Duration::from_secs(5), "the run waited {elapsed:?}\n{}", dump(&out));
    // Released, the next run goes.
    let out = t.safeexec(&["--exec", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
}

/// A request the policy refuses takes no uid: the counter moves only for
/// runs. Before, every refused request moved it, and a caller turned it
/// through the whole pool at a thousand requests a second, running
/// nothing, to bring an earlier run's uid back to its next run, with the
/// files that run had left (a review of the twelfth round).
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_refused_request_takes_no_uid() {
    let t = require_root!();
    let _g = alone();
    // A run first, so that the allocator's state file exists.
    let out = t.safeexec(&["--exec", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let before = t.uid_counter();
    for refused in ["niceness", "empty argv", "NUL"] {
        let mut req = request(&["/bin/true"]);
        match refused {
            "niceness" => req.niceness = 25,
            "empty argv" => req.argv.clear(),
            _ => req.env.push("A=\0B".into()),
        }
        let got = t.direct().exchange(&frame(&req));
        assert!(!got.refusal().is_empty(), "{refused}: {}", got.dump());
    }
    assert_eq!(t.uid_counter(), before, "refused requests moved the uid counter");
    let got = t.direct().exchange(&frame(&request(&["/bin/true"])));
    assert_eq!(got.outcome().end, End::Exited(0), "{}", got.dump());
    assert_ne!(t.uid_counter(), before, "a run did not move the uid counter");
}

/// Under a caller's descriptor limit the helper could not raise (this
/// machine's bounding set lacks CAP_SYS_RESOURCE), the set-up failed
/// (EMFILE) after the run's uid was taken: requests that ran nothing
/// moved the counter at some 350 a second (a second review of the twelfth
/// round, at 13 descriptors). The helper refuses first, with a line.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_descriptor_limit_too_small_for_the_set_up_takes_no_uid() {
    let t = require_root!();
    let _g = alone();
    let out = t.safeexec(&["--exec", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let before = t.uid_counter();
    for root in [Root::Host, Root::Minimal] {
        let req = Request { root: Some(root), ..request(&["/bin/true"]) };
        let got =
            t.direct().preset(Preset::Rlimit(libc::RLIMIT_NOFILE, 13, 13)).exchange(&frame(&req));
        assert!(got.refusal().contains("RLIMIT_NOFILE"), "{root:?}: {}", got.dump());
    }
    assert_eq!(t.uid_counter(), before, "a failed set-up moved the uid counter");
}
