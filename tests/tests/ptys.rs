//! The run's ptys: each run has a devpts instance of its own on /dev/pts,
//! with /dev/ptmx opening in it, of at most 16 ptys, gone with the run; so
//! a run can neither take the host's ptys (and block new logins) nor leave
//! one behind. (What a run may do with a terminal the caller hands it is
//! in hardening.rs.)

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use safeexec_tests::{dump, json_report, json_uid, num, require_root, verdict, word};

/// The host's /dev/pts as (name, owner) pairs.
fn host_ptys() -> BTreeSet<(String, u32)> {
    std::fs::read_dir("/dev/pts")
        .expect("list the host's /dev/pts")
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.uid())))
        .collect()
}

/// The target opens /dev/ptmx 20 times and holds what it got: 16 ptys, then
/// ENOSPC. Meanwhile the host's /dev/pts, looked at over and over, never
/// shows a pty of the run's uid.
#[test]
#[ignore = "needs root: sudo bash tests/run.sh"]
fn a_run_gets_at_most_16_ptys_of_its_own_and_none_of_the_hosts() {
    let t = require_root!();
    let before = host_ptys();
    let p = t.probe();
    let mut run = t.run(&["--json", "--clock", "30", "--exec", &p, "ptmx", "20", "1500"]).spawn();
    let mut seen = BTreeSet::new();
    while run.ended().is_none() {
        seen.extend(host_ptys().difference(&before).cloned());
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run.wait();
    let j = json_report(&out);
    let uid = json_uid(&j);
    let of_run: Vec<&(String, u32)> = seen.iter().filter(|(_, owner)| *owner == uid).collect();
    assert!(of_run.is_empty(), "the run opened ptys of the host: {of_run:?}\n{}", dump(&out));
    verdict(&out, &j, "ok", 0);
    assert_eq!(num(&out, "opened"), 16, "{}", dump(&out));
    assert_eq!(word(&out, "error"), "ENOSPC", "{}", dump(&out));
    t.assert_nothing_left(uid, &dump(&out));
}
