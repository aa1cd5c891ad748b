//! The run's network namespace, made beside the supervisor's checks.
//!
//! A new network namespace is the slowest step of a run's set-up: the
//! kernel builds a network stack for it, about a millisecond on a virtual
//! machine. Made by init, it lay on the run's way to exec. So the helper
//! forks a short-lived child for it as soon as it is hardened (`start`),
//! moved to another CPU, while the supervisor reads and checks the request.
//! The child makes the namespace, brings its loopback up, sends it back as
//! a descriptor on a channel of its own (`channel::Channel`) and exits; init joins it (`setns`)
//! rather than making one. Each run's namespace is made by its own child
//! for that run alone, and after init's fork no process outside the run
//! holds it: the supervisor's copy is closed there.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::{unshare, CloneFlags, CpuSet};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{ForkResult, Pid};

use shared::{CHROOT_FD, FIRST_UNUSED_FD};

use crate::channel::{self, Channel};
use crate::error::{Context, Error, Result};
use crate::sys;

/// The child's one message on its channel (`channel::Channel`).
type Made = std::result::Result<(), String>;

/// The child making the run's network namespace. Dropping it kills and
/// reaps the child, which by then has ended or is of no more use.
pub struct Maker {
    /// `None` in init's copy (`disown`): the child is the supervisor's.
    child: Option<Pid>,
    channel: Channel,
}

/// Forks the child that makes the run's network namespace (`make`). It has
/// the helper's ids as they are by now, root in all of them, so the caller
/// can neither signal nor trace it.
pub fn start(cpus: &CpuSet) -> Result<Maker> {
    // Above the descriptors the request may name, which are still the
    // caller's and closed unless named (`main::directory_fds`).
    let (ours, theirs) = channel::pair_from(FIRST_UNUSED_FD)?;
    match sys::fork().context("cannot fork")? {
        ForkResult::Child => {
            drop(ours);
            // Nothing of the caller's in the child.
            let _ = sys::close_range(CHROOT_FD as u32, FIRST_UNUSED_FD as u32 - 1, false);
            // Its one message: Ok, the namespace beside it, or why not.
            let sent = match make() {
                Ok(netns) => theirs.send(&Made::Ok(()), &[netns.as_raw_fd()]),
                Err(e) => theirs.send(&Made::Err(e.to_string()), &[]),
            };
            sys::exit_now(i32::from(sent.is_err()))
        }
        ForkResult::Parent { child } => {
            crate::steer(child, cpus);
            Ok(Maker { child: Some(child), channel: ours })
        }
    }
}

/// A new network namespace with its loopback up, its only interface, as
/// in bubblewrap: programs that talk to themselves over 127.0.0.1 work,
/// and no host address is there.
fn make() -> Result<OwnedFd> {
    unshare(CloneFlags::CLONE_NEWNET).context("cannot create the run's network namespace")?;
    sys::loopback_up().context("cannot bring up the run's loopback")?;
    let netns =
        std::fs::File::open("/proc/self/ns/net").context("cannot open /proc/self/ns/net")?;
    Ok(netns.into())
}

impl Maker {
    /// The namespace, once the child has made it: one descriptor of a
    /// network namespace (init's `setns` checks its kind).
    pub fn namespace(&self) -> Result<OwnedFd> {
        match self.channel.recv::<Made>()? {
            Some((Ok(()), mut fds)) if fds.len() == 1 => Ok(fds.remove(0)),
            Some((Err(line), _)) => Err(Error::Setup(line)),
            _ => Err(Error::Internal("the run's network namespace was not made".into())),
        }
    }

    /// In init, which has a copy of the supervisor's `Maker` from the fork:
    /// closes its copy of the channel; the child is not init's to kill or
    /// reap (its pid may be another process's by then).
    pub fn disown(mut self) {
        self.child = None;
    }
}

impl Drop for Maker {
    fn drop(&mut self) {
        if let Some(child) = self.child {
            let _ = kill(child, Signal::SIGKILL);
            let _ = sys::wait4(child, sys::Wait::Block);
        }
    }
}
