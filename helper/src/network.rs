//! The run's network namespace, made beside the supervisor's checks.
//!
//! A new network namespace is the slowest step of a run's set-up: the
//! kernel builds a network stack for it, about a millisecond on a virtual
//! machine. Made by init, it lay on the run's way to exec. So once the
//! request is read and the descriptors it does not name are closed, the
//! helper starts a thread (`start`), moved to another CPU, while it loads
//! the policy and checks the request. A namespace belongs to a thread, not
//! to the process: the thread makes one for itself, brings its loopback
//! up, and ends, leaving a descriptor of it. The helper joins the thread
//! before anything else happens (init's fork, a change of ids: it is
//! single-threaded again), and init enters the namespace (`setns`) rather
//! than making one. Each run's namespace is made by its own thread for that
//! run alone, and after init's fork no process outside the run holds it:
//! the supervisor's copy is closed there. A thread rather than a child
//! process: no copy of the helper's memory to make and fault in again (a
//! fork cost half a millisecond of CPU here).

use std::os::fd::OwnedFd;
use std::os::unix::thread::JoinHandleExt;
use std::thread::JoinHandle;

use nix::sched::{unshare, CloneFlags, CpuSet};

use crate::error::{Context, Error, Result};
use crate::sys;

/// The thread making the run's network namespace. Dropping it joins it, so
/// that the helper never forks or changes its ids with a second thread.
pub struct Maker(Option<JoinHandle<Result<OwnedFd>>>);

/// Starts the thread that makes the run's network namespace (`make`), on
/// the helper's other CPUs if it has any (`main::steer`). It has the
/// helper's ids and capabilities as they are by now: root's.
pub fn start(cpus: &CpuSet) -> Result<Maker> {
    // The thread ends only once it is moved (`moved` dropped): the move
    // names it by its thread id, which is another's (or ours, 0) once it
    // has ended.
    let (moved, wait_moved) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .spawn(move || {
            let made = make();
            let _ = wait_moved.recv();
            made
        })
        .map_err(|e| Error::Failed("cannot start a thread", e))?;
    if let Some(others) = crate::other_cpus(cpus) {
        // Only a matter of speed: it may run beside us, or after.
        let _ = sys::set_thread_cpus(thread.as_pthread_t(), &others);
    }
    drop(moved);
    Ok(Maker(Some(thread)))
}

/// A new network namespace for this thread, with its loopback up, its only
/// interface, as in bubblewrap: programs that talk to themselves over
/// 127.0.0.1 work, and no host address is there.
fn make() -> Result<OwnedFd> {
    unshare(CloneFlags::CLONE_NEWNET).context("cannot create the run's network namespace")?;
    sys::loopback_up().context("cannot bring up the run's loopback")?;
    let netns = std::fs::File::open("/proc/thread-self/ns/net")
        .context("cannot open the run's network namespace")?;
    Ok(netns.into())
}

impl Maker {
    /// The namespace, once the thread has made it and ended: a descriptor
    /// of a network namespace (init's `setns` checks its kind).
    pub fn namespace(mut self) -> Result<OwnedFd> {
        let thread = self.0.take().ok_or(Error::Internal("the network thread is gone".into()))?;
        thread.join().map_err(|_| Error::Internal("the network thread failed".into()))?
    }
}

impl Drop for Maker {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}
