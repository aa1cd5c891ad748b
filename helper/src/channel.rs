//! The one channel between the supervisor and the run's side (init, and the
//! target until it execs): a SOCK_SEQPACKET socketpair carrying typed
//! messages, each one bounded frame of `shared::wire`, descriptors beside
//! it. Who speaks when:
//!
//! ```text
//! supervisor ── ToRun::Cgroups (+ their descriptors) ──► init, before it forks the target
//! supervisor ── ToRun::Go ──────────────────────────────► target, before it execs
//! supervisor ── shutdown(SHUT_WR), or its death ────────► init: end the run now
//!                                                          (after its report: clean up now)
//! target ─────── FromRun::ExecFailed / SetupFailed ─────► supervisor
//! init ───────── FromRun::Finished / SetupFailed ───────► supervisor, as it ends
//! ```
//!
//! Only the helper's own code sends: the run's end is close-on-exec, so the
//! target's program never holds it. The supervisor reads a message only
//! when poll says one is there (a SOCK_SEQPACKET message arrives whole),
//! so the channel never makes it wait; it replies on init's `Finished`,
//! which init sends once every other process of the run is reaped.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, shutdown, socketpair, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, Shutdown, SockFlag, SockType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::{wire, InitReport};

use crate::error::{Context, Error, Result};
use crate::sys;

/// The supervisor's messages to the run.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum ToRun {
    /// The run's cgroups, their descriptors beside the message (two per
    /// hierarchy), or none.
    Cgroups(Option<CgroupLayout>),
    /// The supervisor's root-only steps are done and it is the caller
    /// now: the target may exec (invariant 6).
    Go,
}

/// Which of the descriptors sent with `ToRun::Cgroups` is which: one
/// hierarchy per entry of `v2`, and the index of the memory, pids, CPU
/// time and CPU weight ones among them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    pub v2: Vec<bool>,
    pub memory: Option<usize>,
    pub pids: Option<usize>,
    pub cpu: Option<usize>,
    pub weight: Option<usize>,
}

/// The run's messages to the supervisor.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum FromRun {
    /// Init or the target could not set the run up (one line).
    SetupFailed(String),
    /// execve failed in the target, with this errno.
    ExecFailed(i32),
    /// Init ended the run.
    Finished(InitReport),
}

impl FromRun {
    /// A set-up failure's line, cut to fit a message (a long path in it).
    pub fn setup_failed(e: &Error) -> FromRun {
        let mut line = e.to_string();
        let mut end = line.len().min(2000);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        FromRun::SetupFailed(line)
    }
}

/// Largest number of descriptors one message carries.
const MAX_FDS: usize = 8;

/// Bytes a message may take (a frame header included): the run's messages
/// are small, and a larger one fails to send rather than being cut. On the
/// stack: no allocation on the target's way to exec.
const MAX_MESSAGE: usize = 4096;

/// One end of the channel.
pub struct Channel(OwnedFd);

/// The supervisor's end and the run's end.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .context("socketpair")?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    /// Sends one message, with descriptors beside it.
    pub fn send<T: Serialize>(&self, message: &T, fds: &[RawFd]) -> Result<()> {
        let frame = wire::encode_message(message)?;
        if frame.len() > MAX_MESSAGE {
            return Err(Error::Internal("a message of the run's channel is too large".into()));
        }
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&frame)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .context("cannot send on the run's channel")?;
        Ok(())
    }

    /// Receives one message and the descriptors beside it; `None` at end
    /// of file (every copy of the other end is closed, or it shut down).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<OwnedFd>)>> {
        let mut buf = [0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        // The other end closed with a message of ours unread (a target that
        // never took its go) leaves a reset pending, which the kernel would
        // report before the messages still queued here: take it first.
        let _ = getsockopt(&self.0, sockopt::SocketError);
        let flags = MsgFlags::MSG_CMSG_CLOEXEC;
        let msg = recvmsg::<()>(self.0.as_raw_fd(), &mut iov, Some(&mut space), flags)
            .context("cannot receive on the run's channel")?;
        let mut raw = Vec::new();
        for c in msg.cmsgs().context("cannot receive on the run's channel")? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                raw.extend(fds);
            }
        }
        // Owned at once, so that they close on every path below.
        let fds = sys::own_received_fds(raw);
        let n = msg.bytes;
        if n == 0 {
            return Ok(None);
        }
        let message = wire::decode_message(&buf[..n])
            .map_err(|e| Error::Internal(format!("the run's channel: {e}")))?;
        Ok(Some((message, fds)))
    }

    /// The supervisor's order to end the run: init sees the channel shut
    /// (as it does when the supervisor dies), while the supervisor can
    /// still read what the run says.
    pub fn stop_run(&self) {
        let _ = shutdown(self.0.as_raw_fd(), Shutdown::Write);
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
