//! The run's network namespace, made beside the supervisor's checks.
//!
//! A new network namespace is the slowest step of a run's set-up: the
//! kernel builds a network stack for it, over half a millisecond of CPU on
//! a virtual machine. Made by init, it lay on the run's way to exec. So as
//! soon as the helper is hardened and has its ids, before it even reads the
//! request, it starts a thread (`start`), moved to another CPU, while it
//! loads the policy, waits for the request and checks it. A namespace
//! belongs to a thread, not to the process: the thread makes one for
//! itself (or enters one kept from an earlier run, if the policy keeps
//! them) once the helper has the policy's word (`Maker::may_open`), opens
//! a socket in it and a descriptor of it, then ends. The helper joins the thread
//! before anything else happens (init's fork, a change of ids: it is
//! single-threaded again), and init enters the namespace (`setns`) rather
//! than making one; the supervisor brings its loopback up through the
//! socket beside init's set-up (`Loopback::up`). Each run's namespace is
//! made by its own thread for that run alone, and no process outside the
//! run holds it once the target may run: the supervisor closes its
//! descriptor at init's fork and its socket before the target's go. A
//! thread rather than a child
//! process: no copy of the helper's memory to make and fault in again (a
//! fork cost half a millisecond of CPU here).

use std::os::fd::OwnedFd;
use std::os::unix::thread::JoinHandleExt;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

use nix::sched::CpuSet;
use shared::Network;

use crate::error::{Context, Error, Result};
use crate::netpool::{self, Slot};
use crate::sys;

/// The thread making the run's network namespace, and its leave to open
/// descriptors. Dropping it joins it (the leave withheld: the thread then
/// opens nothing), so that the helper never forks or changes its ids with a
/// second thread.
pub struct Maker {
    thread: Option<JoinHandle<Result<Namespace>>>,
    may_open: Option<Sender<bool>>,
}

/// Starts the thread that makes the run's network namespace (`make`), on
/// the helper's other CPUs if it has any (`main::steer`). It has the
/// helper's ids and capabilities as they are by now: root's.
pub fn start(cpus: &CpuSet) -> Result<Maker> {
    // The thread ends only once it is moved (`moved` dropped): the move
    // names it by its thread id, which is another's (or ours, 0) once it
    // has ended.
    let (moved, wait_moved) = channel::<()>();
    let (may_open, wait_may_open) = channel::<bool>();
    let thread = std::thread::Builder::new()
        .spawn(move || {
            let made = make(|| wait_may_open.recv().ok());
            let _ = wait_moved.recv();
            made
        })
        .map_err(|e| Error::Failed("cannot start a thread", e))?;
    if let Some(others) = crate::other_cpus(cpus) {
        // Only a matter of speed: it may run beside us, or after.
        let _ = sys::set_thread_cpus(thread.as_pthread_t(), &others);
    }
    drop(moved);
    Ok(Maker { thread: Some(thread), may_open: Some(may_open) })
}

/// The run's network namespace as the thread leaves it: a descriptor of
/// it, for init's `setns`, and its loopback, still down.
struct Namespace {
    fd: OwnedFd,
    loopback: Loopback,
    slot: Option<Slot>,
}

/// The run's network as the supervisor hands it on.
pub struct RunNetwork {
    pub network: Network,
    /// The run's namespace, for init's `setns` (none: the host's).
    pub netns: Option<OwnedFd>,
    /// For the supervisor, to bring the run's loopback up.
    pub loopback: Option<Loopback>,
    /// The pool's slot of the run's namespace, if it has one: held by the
    /// supervisor and, through fork, by init, until the run's end.
    pub slot: Option<Slot>,
}

/// A socket in the run's network namespace, to bring its loopback up,
/// and the pool's slot to keep the namespace in, if that is left to the
/// supervisor (`netpool::Refill`), with a descriptor of the namespace.
pub struct Loopback(OwnedFd, Option<(netpool::Refill, OwnedFd)>);

impl Loopback {
    /// Brings the namespace's loopback up, its only interface, as in
    /// bubblewrap: programs that talk to themselves over 127.0.0.1 work,
    /// and no host address is there. Done by the supervisor, still root,
    /// beside init's set-up and before the target's go (`main::prepare`),
    /// rather than by the thread on the way to init's fork, where the
    /// kernel's work for it (the loopback's addresses and routes) took a
    /// tenth of a millisecond. The namespace is kept in the pool's slot
    /// here too, if that is left to the supervisor: a failure there only
    /// leaves the slot to be refilled by a later run. The socket and the
    /// descriptor, the supervisor's last holds on the namespace, close here.
    pub fn up(self) -> Result<()> {
        sys::loopback_up(&self.0).context("cannot bring up the run's loopback")?;
        if let Some((refill, netns)) = self.1 {
            refill.keep(&netns);
        }
        Ok(())
    }
}

/// The run's network namespace for this thread: one kept from an earlier
/// run, or a new one (`netpool`; only a new one, not kept, if the policy
/// says so). Nothing is opened until `may_open` says so (with the policy's
/// word; none: the helper is failing).
fn make(may_open: impl FnOnce() -> Option<bool>) -> Result<Namespace> {
    let Some(keep) = may_open() else {
        return Err(Error::Internal("the network thread was not let open".into()));
    };
    let (slot, refill) = netpool::enter(keep)?;
    let socket = sys::interface_socket().context("cannot make a socket in the run's network")?;
    let fd: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
        .context("cannot open the run's network namespace")?
        .into();
    let refill = match refill {
        Some(refill) => Some((refill, fd.try_clone().context("dup")?)),
        None => None,
    };
    Ok(Namespace { fd, loopback: Loopback(socket, refill), slot })
}

impl Maker {
    /// Lets the thread go on with the policy's `keep_networks` (`keep`).
    pub fn may_open(&mut self, keep: bool) {
        if let Some(may_open) = self.may_open.take() {
            let _ = may_open.send(keep);
        }
    }

    /// The run's network, once the thread has ended (joined even when
    /// unused: the helper forks with one thread only). The host's, when the
    /// policy allows sharing it and the caller asks: the namespace is then
    /// closed at once, and its slot freed, so that neither the supervisor
    /// nor init keeps it. Else the run's own.
    pub fn network(self, share_net: bool) -> Result<RunNetwork> {
        let made = self.namespace()?;
        Ok(match share_net {
            true => {
                drop(made);
                RunNetwork { network: Network::Host, netns: None, loopback: None, slot: None }
            }
            false => RunNetwork {
                network: Network::Loopback,
                netns: Some(made.fd),
                loopback: Some(made.loopback),
                slot: made.slot,
            },
        })
    }

    /// The namespace, once the thread has made it and ended (init's
    /// `setns` checks the descriptor's kind).
    fn namespace(mut self) -> Result<Namespace> {
        drop(self.may_open.take());
        let thread =
            self.thread.take().ok_or(Error::Internal("the network thread is gone".into()))?;
        thread.join().map_err(|_| Error::Internal("the network thread failed".into()))?
    }
}

impl Drop for Maker {
    fn drop(&mut self) {
        // The leave first: a thread still waiting for it ends without it.
        drop(self.may_open.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
