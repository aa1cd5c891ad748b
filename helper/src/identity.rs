//! The one home of every change of identity. Each process of a run gets
//! its ids and capabilities as one [`Identity`] value; [`Identity::assume`]
//! applies it in the only safe order (bounding set, groups, gids, uids,
//! capability sets, no_new_privs) and then reads the result back from the
//! kernel ([`Identity::verify`]), failing closed unless it is exactly what
//! was asked. Init starts with the set-up identity it inherits through the
//! fork, which it only verifies.
//!
//! | who        | uids (real, effective, saved) | gids            | capabilities |
//! |------------|-------------------------------|-----------------|--------------|
//! | set-up     | 0, 0, 0                       | 0, 0, 0         | root's       |
//! | init       | 0, 0, 0                       | 0, 0, 0         | root's, then CAP_KILL once the target is forked |
//! | supervisor | caller (all three)            | caller          | CAP_KILL     |
//! | target     | sandbox uid                   | policy's gid    | none         |
//!
//! Every identity has no supplementary groups.

use std::sync::atomic::{AtomicBool, Ordering};

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{getresgid, getresuid, setgroups, setresgid, setresuid, Gid, Uid};

use crate::error::{Context, Error, Result};
use crate::harden::Caller;

/// Ids and capabilities a process of the run is to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Real, effective and saved uid.
    pub uids: [Uid; 3],
    /// Real, effective and saved gid.
    pub gids: [Gid; 3],
    /// Capabilities kept, permitted and effective, with empty bounding,
    /// inheritable and ambient sets and no_new_privs; `None`: root's are
    /// left as they are (the set-up, which is root).
    pub caps: Option<&'static [Capability]>,
}

const ROOT_UID: Uid = Uid::from_raw(0);
const ROOT_GID: Gid = Gid::from_raw(0);

impl Identity {
    /// The helper from right after `harden` until the supervisor drops to
    /// the caller: root in all its ids, so that what it creates (the run's
    /// cgroups, the uid state) is root's, owner and group, and so that the
    /// caller can neither signal it (a helper stopped while it holds the
    /// uid counter would hold up every caller) nor change its scheduling
    /// after `harden` reset it (nor, through a cgroup of its own, freeze or
    /// starve it: `cgroup::shelter`, before the uid counter). (The caller's ids are kept in `Caller`.)
    pub fn setup() -> Identity {
        Identity { uids: [ROOT_UID; 3], gids: [ROOT_GID; 3], caps: None }
    }

    /// Init while it builds the run: root in all its ids, so that neither
    /// the caller nor the target may signal or ptrace it; root's
    /// capabilities, for the namespaces, mounts and the target's set-up.
    pub fn init_setup() -> Identity {
        Identity { uids: [ROOT_UID; 3], gids: [ROOT_GID; 3], caps: None }
    }

    /// Init once the target is forked: CAP_KILL only, to end the run with
    /// kill(-1) inside its pid namespace (invariants 6 and 7).
    pub fn init() -> Identity {
        Identity { uids: [ROOT_UID; 3], gids: [ROOT_GID; 3], caps: Some(&[Capability::CAP_KILL]) }
    }

    /// The supervisor: the caller, keeping CAP_KILL only, to kill init
    /// (invariant 6).
    pub fn supervisor(caller: &Caller) -> Identity {
        Identity {
            uids: [caller.uid; 3],
            gids: [caller.gid; 3],
            caps: Some(&[Capability::CAP_KILL]),
        }
    }

    /// The target: the policy's ids, no capability (invariant 5).
    pub fn target(uid: Uid, gid: Gid) -> Identity {
        Identity { uids: [uid; 3], gids: [gid; 3], caps: Some(&[]) }
    }

    /// Becomes this identity and verifies it. Needs root's capabilities
    /// (CAP_SETPCAP, CAP_SETUID, CAP_SETGID) on entry. On error the caller
    /// must not go on: the process is neither the old identity nor the new.
    pub fn assume(&self) -> Result<()> {
        let keep = self.caps.is_some_and(|c| !c.is_empty()) && !self.uids[0].is_root();
        if self.caps.is_some() {
            // Shrinking the bounding set needs CAP_SETPCAP: first.
            clear_bounding_set()?;
        }
        if keep {
            nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
        }
        setgroups(&[]).context("setgroups")?;
        let [rg, eg, sg] = self.gids;
        setresgid(rg, eg, sg).context("setresgid")?;
        let [ru, eu, su] = self.uids;
        setresuid(ru, eu, su).context("setresuid")?;
        if let Some(kept) = self.caps {
            let kept: CapsHashSet = kept.iter().copied().collect();
            // Effective first: it must stay a subset of permitted.
            caps::set(None, CapSet::Effective, &kept).map_err(cap_error)?;
            caps::set(None, CapSet::Permitted, &kept).map_err(cap_error)?;
            caps::clear(None, CapSet::Inheritable).map_err(cap_error)?;
            caps::clear(None, CapSet::Ambient).map_err(cap_error)?;
            nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
        }
        if keep {
            nix::sys::prctl::set_keepcaps(false).context("prctl(PR_SET_KEEPCAPS)")?;
        }
        // A change of ids makes a process dumpable again.
        nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE)")?;
        self.verify()
    }

    /// Takes the caller's ids back in all three places, with no group,
    /// before the helper writes its last line to the caller's stderr and
    /// exits (`main::fail`); says whether the line may go. The kernel
    /// stamps a message on a Unix socket with its writer's real ids: a
    /// caller that gave a datagram socket as stderr, and a reply pipe
    /// nobody reads, had the set-up's refusal, which quotes the caller's
    /// own words (a directory's name with newlines), delivered as root's,
    /// to a receiver that trusts the stamp (a logging daemon: a review of
    /// the eleventh round). A process that is the caller already (the
    /// supervisor) changes nothing; one that cannot become it says no.
    pub fn speak_as_caller(caller: &Caller) -> bool {
        let is_caller = || {
            matches!((getresuid(), getresgid()), (Ok(u), Ok(g))
                if [u.real, u.effective, u.saved] == [caller.uid; 3]
                    && [g.real, g.effective, g.saved] == [caller.gid; 3])
                && matches!(crate::sys::group_count(), Ok(0))
        };
        is_caller()
            || (setgroups(&[]).is_ok()
                && setresgid(caller.gid, caller.gid, caller.gid).is_ok()
                && setresuid(caller.uid, caller.uid, caller.uid).is_ok()
                && is_caller())
    }

    /// Reads the ids, groups, the dumpable flag and the capability sets
    /// back from the kernel.
    /// The ambient set needs no read: it is always within permitted and
    /// inheritable. The bounding set is checked drop by drop as it is
    /// emptied (`clear_bounding_set`).
    pub fn verify(&self) -> Result<()> {
        let u = getresuid().context("getresuid")?;
        let g = getresgid().context("getresgid")?;
        let groups = crate::sys::group_count().context("getgroups")?;
        // Never dumpable (no ptrace by the caller, no core file). A change
        // of ids makes a process dumpable again, which `assume` undoes;
        // init, which only verifies what it inherits, has it checked here.
        let mut ok = [u.real, u.effective, u.saved] == self.uids
            && [g.real, g.effective, g.saved] == self.gids
            && groups == 0
            && !nix::sys::prctl::get_dumpable().unwrap_or(true);
        if let Some(kept) = self.caps {
            let kept: CapsHashSet = kept.iter().copied().collect();
            let read = |set| caps::read(None, set).map_err(cap_error);
            ok = ok
                && read(CapSet::Effective)? == kept
                && read(CapSet::Permitted)? == kept
                && read(CapSet::Inheritable)?.is_empty()
                && nix::sys::prctl::get_no_new_privs().unwrap_or(false);
        }
        if ok {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "the kernel did not give the ids and capabilities asked: {self:?}"
            )))
        }
    }
}

/// The capabilities the helper cannot run without, each with its use. A
/// container gives a setuid-root program only its own bounding set: these
/// six are the smallest set a run needs (`docs/design.md`, "Containers").
const NEEDED: &[(Capability, &str)] = &[
    (Capability::CAP_SETUID, "to take the sandbox uid"),
    (Capability::CAP_SETGID, "to take the sandbox gid"),
    (Capability::CAP_SETPCAP, "to empty the bounding set"),
    (Capability::CAP_KILL, "to end the run"),
    (Capability::CAP_SYS_ADMIN, "for the run's namespaces and mounts"),
    (Capability::CAP_NET_ADMIN, "to bring up the run's loopback"),
];

/// Fails, naming every capability of `NEEDED` (and CAP_SYS_CHROOT when a
/// chroot is asked) that the helper did not get from its setuid bit: a
/// container's capabilities bound what a setuid program gets.
pub fn check_capabilities(chroot: bool) -> Result<()> {
    let have = caps::read(None, CapSet::Effective).map_err(cap_error)?;
    let chroot_need = (Capability::CAP_SYS_CHROOT, "for --chroot_dir and --root minimal");
    let missing: Vec<&(Capability, &str)> = NEEDED
        .iter()
        .chain(chroot.then_some(&chroot_need))
        .filter(|(cap, _)| !have.contains(cap))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = missing.iter().map(|(cap, why)| format!("{cap} ({why})")).collect();
    let flags: Vec<String> =
        missing.iter().map(|(cap, _)| cap.to_string().replace("CAP_", "")).collect();
    Err(Error::Refused(format!(
        "the helper lacks {}: add {} to the container (--cap-add {})",
        named.join(", "),
        if missing.len() == 1 { "it" } else { "them" },
        flags.join(",")
    )))
}

/// Fails unless every id a run may get is mapped in the helper's user
/// namespace: the kernel refuses an unmapped id only when the target takes
/// it, with a bare EINVAL. `gid`: the fixed gid, or `None` when each run's
/// gid is its uid.
pub fn check_mapped(uid_base: u32, uid_count: u32, gid: Option<u32>) -> Result<()> {
    let last = uid_base.saturating_add(uid_count.saturating_sub(1));
    let (gids, gid_last) = gid.map_or((uid_base, last), |g| (g, g));
    for (kind, path, first, last) in [
        ("uid", "/proc/self/uid_map", uid_base, last),
        ("gid", "/proc/self/gid_map", gids, gid_last),
    ] {
        // What the map holds, if it leaves out an id of the policy's.
        let unmapped = |map: &str| {
            (!covers(map, first, last)).then(|| {
                let shown: Vec<String> = map_ranges(map)
                    .map(|(start, count)| format!("{start}-{}", start + (count - 1)))
                    .collect();
                shown.join(", ")
            })
        };
        if let Some(shown) = crate::sys::with_proc(path, unmapped).context(path)? {
            return Err(Error::Refused(format!(
                "the sandbox {kind}s {first}-{last} (the policy's uid_base, uid_count and gid) are \
                 not all mapped in this user namespace, which maps {shown}: map {} ids from {first} \
                 (a subordinate {kind} range that large), or move uid_base and uid_count into the map",
                u64::from(last - first) + 1
            )));
        }
    }
    Ok(())
}

/// The ranges of a uid_map or gid_map, as (first id inside, count).
fn map_ranges(map: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    map.lines().filter_map(|line| {
        let mut f = line.split_whitespace().map(|n| n.parse::<u64>().ok());
        let (Some(Some(inside)), Some(Some(_)), Some(Some(count))) = (f.next(), f.next(), f.next())
        else {
            return None;
        };
        (count > 0).then_some((inside, count))
    })
}

/// Whether every id of `first..=last` lies in one of the map's ranges.
fn covers(map: &str, first: u32, last: u32) -> bool {
    let mut ranges: Vec<(u64, u64)> = map_ranges(map).collect();
    ranges.sort_unstable();
    let mut next = u64::from(first);
    for (start, count) in ranges {
        if start <= next && next < start + count {
            next = start + count;
        }
    }
    next > u64::from(last)
}

fn cap_error(e: caps::errors::CapsError) -> Error {
    Error::Failed("capabilities", std::io::Error::other(e.to_string()))
}

/// Whether this process, or the one it was forked from, has emptied its
/// bounding set: the set is inherited through fork and can only shrink,
/// so a process forked after that has an empty set by construction.
static BOUNDING_SET_EMPTIED: AtomicBool = AtomicBool::new(false);

/// Empties this process's capability bounding set, so that no exec can
/// bring a capability back. The supervisor does it before it forks init
/// (`main::run`): init and the target inherit the empty set and skip the
/// forty-odd drops (each makes the kernel copy the process's credentials,
/// and a system call costs microseconds on a virtual machine). One drop
/// per capability, not a read and a drop: a drop of one already gone
/// succeeds, and one the kernel does not know (an older kernel) fails but
/// is not in the set.
pub fn clear_bounding_set() -> Result<()> {
    if BOUNDING_SET_EMPTIED.load(Ordering::Relaxed) {
        return Ok(());
    }
    for cap in caps::all() {
        if caps::drop(None, CapSet::Bounding, cap).is_err()
            && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
        {
            return Err(Error::Failed(
                "cannot empty the capability bounding set (CAP_SETPCAP missing?)",
                std::io::Error::other(cap.to_string()),
            ));
        }
    }
    BOUNDING_SET_EMPTIED.store(true, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn id_maps_cover_only_what_they_map() {
        let whole = "         0          0 4294967295\n";
        assert!(covers(whole, 1_879_048_192, 1_883_242_495));
        let podman = "0 100000 65536\n";
        assert!(covers(podman, 1000, 65535));
        assert!(!covers(podman, 1000, 65536));
        assert!(!covers(podman, 1_879_048_192, 1_883_242_495));
        let two = "0 1000 1\n1 100000 65536\n65537 200000 100\n";
        assert!(covers(two, 0, 65636));
        assert!(!covers(two, 0, 65637));
        assert!(!covers("", 0, 0));
    }
}
