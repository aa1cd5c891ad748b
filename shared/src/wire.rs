//! Framing and encoding. One frame each way:
//!
//! ```text
//! magic "sxec" | version u32 LE | length u32 LE | bincode payload (length bytes)
//! ```
//!
//! The length is checked against a hard bound before any payload byte is
//! read, and the decoder is configured with the same bound, so hostile input
//! can never make either side allocate more than the bound. Trailing bytes
//! inside the payload, bad UTF-8 and unknown enum tags are all errors.

use std::fmt;
use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Reply, Request, PROTOCOL_VERSION};

const MAGIC: [u8; 4] = *b"sxec";
const HEADER_LEN: usize = 12;

/// Largest request payload the helper accepts (argv and environment
/// included; execve itself refuses more than this anyway).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest reply payload.
pub const MAX_REPLY_BYTES: usize = 1 << 16;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_REQUEST_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_REQUEST_BYTES>()
}

/// Why a frame could not be read or decoded.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// The peer closed the channel before a whole frame arrived.
    Truncated,
    BadMagic,
    Version {
        ours: u32,
        theirs: u32,
    },
    TooLarge {
        len: u64,
        max: usize,
    },
    /// Bytes left after the frame, inside or after the payload.
    Trailing,
    Decode(String),
    Encode(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "channel: {e}"),
            WireError::Truncated => write!(f, "channel closed before a whole message arrived"),
            WireError::BadMagic => write!(f, "not a safeexec message (bad magic)"),
            WireError::Version { ours, theirs } => write!(
                f,
                "protocol version mismatch: this side speaks {ours}, the other sent {theirs}; \
                 install safeexec and safeexec-helper from the same build"
            ),
            WireError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes is larger than the limit of {max} bytes")
            }
            WireError::Trailing => write!(f, "unexpected bytes after the message"),
            WireError::Decode(e) => write!(f, "malformed message: {e}"),
            WireError::Encode(e) => write!(f, "cannot encode message: {e}"),
        }
    }
}

impl std::error::Error for WireError {}

fn encode<T: Serialize>(value: &T, max: usize) -> Result<Vec<u8>, WireError> {
    let payload = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    if payload.len() > max {
        return Err(WireError::TooLarge { len: payload.len() as u64, max });
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    let (value, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| WireError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(WireError::Trailing);
    }
    Ok(value)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<(), WireError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => return Err(WireError::Truncated),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(())
}

/// Reads one frame of at most `max` payload bytes; with `expect_eof`, the
/// channel must end right after it.
fn read_frame(r: &mut impl Read, max: usize, expect_eof: bool) -> Result<Vec<u8>, WireError> {
    let mut header = [0u8; HEADER_LEN];
    read_full(r, &mut header)?;
    if header[0..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version { ours: PROTOCOL_VERSION, theirs: version });
    }
    let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if len as usize > max {
        return Err(WireError::TooLarge { len: len.into(), max });
    }
    let mut payload = vec![0u8; len as usize];
    read_full(r, &mut payload)?;
    if expect_eof {
        let mut extra = [0u8; 1];
        loop {
            match r.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => return Err(WireError::Trailing),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WireError::Io(e)),
            }
        }
    }
    Ok(payload)
}

fn write_all(w: &mut impl Write, frame: &[u8]) -> Result<(), WireError> {
    w.write_all(frame).map_err(WireError::Io)?;
    w.flush().map_err(WireError::Io)
}

/// Encodes a request as one frame.
pub fn encode_request(request: &Request) -> Result<Vec<u8>, WireError> {
    encode(request, MAX_REQUEST_BYTES)
}

/// Decodes one complete request frame (header included).
pub fn decode_request(mut frame: &[u8]) -> Result<Request, WireError> {
    decode(&read_frame(&mut frame, MAX_REQUEST_BYTES, true)?)
}

/// Writes a request frame.
pub fn write_request(w: &mut impl Write, request: &Request) -> Result<(), WireError> {
    write_all(w, &encode_request(request)?)
}

/// Reads the request: one frame, then end of channel.
pub fn read_request(r: &mut impl Read) -> Result<Request, WireError> {
    decode(&read_frame(r, MAX_REQUEST_BYTES, true)?)
}

/// Writes the reply frame.
pub fn write_reply(w: &mut impl Write, reply: &Reply) -> Result<(), WireError> {
    write_all(w, &encode(reply, MAX_REPLY_BYTES)?)
}

/// Reads the reply frame.
pub fn read_reply(r: &mut impl Read) -> Result<Reply, WireError> {
    decode(&read_frame(r, MAX_REPLY_BYTES, false)?)
}

/// Encodes one of the helper's internal messages (between its supervisor
/// and the run's side) as a frame of at most [`MAX_REPLY_BYTES`].
pub fn encode_message<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    encode(message, MAX_REPLY_BYTES)
}

/// Decodes one whole internal message frame, with the bounds of a reply.
pub fn decode_message<T: DeserializeOwned>(mut frame: &[u8]) -> Result<T, WireError> {
    decode(&read_frame(&mut frame, MAX_REPLY_BYTES, true)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CgroupCounters, Facts, InitReport, Limit, Limits, Network, Stop};

    fn limits() -> Limits {
        Limits::default()
            .with(Limit::Cpu, Some(10_000))
            .with(Limit::Wall, Some(60_000))
            .with(Limit::Mem, Some(32768))
            .with(Limit::Nfile, Some(512))
    }

    fn request() -> Request {
        Request {
            program: "/bin/echo".into(),
            argv: vec!["/bin/echo".into(), "hi".into()],
            env: vec!["A=B".into()],
            limits: limits(),
            chroot: false,
            exec_dir: None,
            niceness: 16,
            share_net: false,
            host_tmp: false,
            bind_rw: 0,
            bind: 0,
            cwd: false,
            root: None,
        }
    }

    #[test]
    fn request_round_trips() {
        let frame = encode_request(&request()).unwrap();
        assert_eq!(decode_request(&frame).unwrap(), request());
    }

    #[test]
    fn reply_round_trips() {
        let reply = Reply::Finished(Facts {
            init: Some(InitReport {
                status: 9,
                deadline_passed: false,
                stopped: Some(Stop::ByCaller),
                peak_sampled_kib: 5,
                wall_us: 1,
                user_us: 2,
                sys_us: 3,
                csw_voluntary: 0,
                csw_forced: 0,
                maxrss_kib: 4,
                cgroup: Some(CgroupCounters {
                    version: 1,
                    memory_peak_kib: Some(8),
                    cpu_us: None,
                    pids_peak: Some(2),
                    oom_kills: 0,
                    memory_limited: true,
                    memory_limit_hit: false,
                }),
            }),
            exec_errno: None,
            supervisor_wall_us: 10,
            reaped_maxrss_kib: 11,
            uid: 6,
            gid: 7,
            limits: limits(),
            network: Network::Loopback,
            cgroup_missing: None,
        });
        let mut buf = Vec::new();
        write_reply(&mut buf, &reply).unwrap();
        assert_eq!(read_reply(&mut buf.as_slice()).unwrap(), reply);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let frame = encode_request(&request()).unwrap();
        for cut in 0..frame.len() {
            assert!(decode_request(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut frame = encode_request(&request()).unwrap();
        frame.push(0);
        assert!(matches!(decode_request(&frame), Err(WireError::Trailing)));
    }

    #[test]
    fn trailing_bytes_inside_the_payload_are_rejected() {
        let mut frame = encode_request(&request()).unwrap();
        frame.push(0);
        let len = (frame.len() - HEADER_LEN) as u32;
        frame[8..12].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(decode_request(&frame), Err(WireError::Trailing)));
    }

    #[test]
    fn length_prefix_of_u32_max_is_rejected_before_reading() {
        let mut frame = encode_request(&request()).unwrap();
        frame[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_request(&frame), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn other_version_is_named() {
        let mut frame = encode_request(&request()).unwrap();
        frame[4..8].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
        let err = decode_request(&frame).unwrap_err();
        assert!(err.to_string().contains("version mismatch"), "{err}");
    }

    #[test]
    fn bad_utf8_is_rejected() {
        let mut frame = encode_request(&request()).unwrap();
        let at = frame.windows(4).position(|w| w == b"/bin").unwrap();
        frame[at] = 0xff;
        assert!(matches!(decode_request(&frame), Err(WireError::Decode(_))));
    }

    #[test]
    fn oversized_request_is_refused_by_the_encoder() {
        let mut r = request();
        r.argv.push("x".repeat(MAX_REQUEST_BYTES));
        assert!(matches!(encode_request(&r), Err(WireError::TooLarge { .. })));
    }

    /// A cheap deterministic fuzz: random bytes behind a valid header must
    /// never panic or allocate beyond the bound (the bincode limit).
    #[test]
    fn random_payloads_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = encode_request(&request()).unwrap();
        for round in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut frame = Vec::with_capacity(HEADER_LEN + len);
            frame.extend_from_slice(&valid[..8]);
            frame.extend_from_slice(&(len as u32).to_le_bytes());
            if round % 2 == 0 {
                // mutate a valid payload
                frame.extend_from_slice(&valid[HEADER_LEN..]);
                frame.truncate(HEADER_LEN + len.min(valid.len() - HEADER_LEN));
                let n = frame.len() - HEADER_LEN;
                frame[8..12].copy_from_slice(&(n as u32).to_le_bytes());
                for _ in 0..3 {
                    if n > 0 {
                        let i = HEADER_LEN + (next() as usize % n);
                        frame[i] = next() as u8;
                    }
                }
            } else {
                frame.extend((0..len).map(|_| next() as u8));
            }
            let _ = decode_request(&frame);
        }
    }
}
