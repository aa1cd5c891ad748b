//! A bounded fuzz of the request decoder (DESIGN.md invariant 2), run in CI
//! by `cargo test`: random bytes, random valid requests, and mutations of
//! valid frames (bit flips, byte changes, insertions, deletions, cuts,
//! hostile length prefixes) fed to `shared::wire::decode_request` and to
//! the streaming `read_request`. Properties:
//!
//! - the decoder never panics;
//! - it never makes an allocation larger than the frame bound (a counting
//!   global allocator records the largest one while decoding);
//! - both entry points agree;
//! - every valid request round-trips, and whatever decodes re-encodes to a
//!   frame that decodes to the same request.
//!
//! Each property runs for a fixed time (`SAFEEXEC_FUZZ_SECS`, default 6 s;
//! the whole file stays under 20 s) from a seed printed on failure
//! (`SAFEEXEC_FUZZ_SEED` replays one). Needs no root.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use safeexec_tests::{frame_header, request, set_limit, Limit};
use shared::wire::{self, WireError, MAX_REQUEST_BYTES};
use shared::Request;

/// Records the largest single allocation made while `MEASURING` is set.
struct Counting;

static MEASURING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping only touches atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if MEASURING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest allocation the decoder may make: the payload buffer itself
/// (at most the bound) plus some slack for bookkeeping.
const ALLOCATION_BOUND: usize = MAX_REQUEST_BYTES + 4096;

fn budget() -> Duration {
    let secs = std::env::var("SAFEEXEC_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(6.0)
        .clamp(0.1, 60.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    std::env::var("SAFEEXEC_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    })
}

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn string(&mut self, max: u64) -> String {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| match self.below(10) {
                0 => char::from_u32(0x80 + self.below(0x2000) as u32).unwrap_or('?'),
                1 => '\0',
                2 => '=',
                _ => (b' ' + self.below(95) as u8) as char,
            })
            .collect()
    }

    fn opt_u64(&mut self) -> Option<u64> {
        match self.below(4) {
            0 => None,
            1 => Some(u64::MAX - self.below(3)),
            2 => Some(self.below(300)),
            _ => Some(self.next() >> self.below(64)),
        }
    }
}

/// A random request: every field and every limit (through the harness,
/// which alone knows how a request holds its limits) drawn at random.
fn random_request(rng: &mut Rng) -> Request {
    let mut r = request(&["/"]);
    r.program = rng.string(40);
    r.argv = (0..rng.below(12)).map(|_| rng.string(60)).collect();
    r.env = (0..rng.below(12)).map(|_| rng.string(60)).collect();
    for limit in Limit::ALL {
        set_limit(&mut r, limit, rng.opt_u64());
    }
    r.chroot = rng.chance(2);
    r.exec_dir = if rng.chance(2) { None } else { Some(rng.string(40)) };
    r.niceness = rng.next() as i32 >> rng.below(32);
    r.share_net = rng.chance(2);
    r.host_tmp = rng.chance(2);
    r
}

/// A reader that hands out the frame in random small pieces, as a pipe may.
struct Chunked<'a> {
    data: &'a [u8],
    rng: Rng,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (1 + self.rng.below(64) as usize).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Decodes `frame` both ways, checking the properties; returns the result.
fn check(frame: &[u8], rng: &mut Rng, seed: u64) -> Result<Request, WireError> {
    LARGEST.store(0, Ordering::Relaxed);
    MEASURING.store(true, Ordering::Relaxed);
    let whole = wire::decode_request(frame);
    let streamed = wire::read_request(&mut Chunked { data: frame, rng: Rng(rng.next() | 1) });
    MEASURING.store(false, Ordering::Relaxed);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= ALLOCATION_BOUND,
        "seed {seed}: decoding a {}-byte frame allocated {largest} bytes at once",
        frame.len()
    );
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "seed {seed}: the two decoders disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "seed {seed}: decode_request gave {whole:?}, read_request gave {streamed:?} for {frame:?}"
        ),
    }
    if let Ok(r) = &whole {
        let again = wire::encode_request(r).expect("a decoded request re-encodes");
        assert_eq!(
            wire::decode_request(&again).expect("a re-encoded request decodes"),
            *r,
            "seed {seed}: decode(encode(decode(x))) != decode(x)"
        );
    }
    whole
}

#[test]
fn random_bytes_never_panic_nor_allocate_beyond_the_bound() {
    let seed = seed();
    let mut rng = Rng(seed);
    let until = Instant::now() + budget();
    let mut rounds = 0u64;
    while Instant::now() < until {
        let len = rng.below(600) as usize;
        let body: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        let frame = match rng.below(3) {
            // Pure noise.
            0 => body,
            // A valid header claiming the real length.
            1 => [frame_header(len as u32), body].concat(),
            // A valid header claiming any length at all.
            _ => {
                let claimed = match rng.below(4) {
                    0 => u32::MAX,
                    1 => MAX_REQUEST_BYTES as u32 + rng.below(16) as u32,
                    _ => rng.next() as u32,
                };
                [frame_header(claimed), body].concat()
            }
        };
        let _ = check(&frame, &mut rng, seed);
        rounds += 1;
    }
    eprintln!("fuzz_decoder: {rounds} random frames (seed {seed})");
    assert!(rounds > 1000, "too few rounds in the time budget: {rounds}");
}

#[test]
fn valid_requests_round_trip_and_their_mutations_never_panic() {
    let seed = seed();
    let mut rng = Rng(seed);
    let until = Instant::now() + budget();
    let mut rounds = 0u64;
    let mut decoded_mutants = 0u64;
    while Instant::now() < until {
        let request = random_request(&mut rng);
        let frame = wire::encode_request(&request).expect("a small request encodes");
        assert_eq!(
            check(&frame, &mut rng, seed).expect("a valid frame decodes"),
            request,
            "seed {seed}: round trip"
        );
        for _ in 0..8 {
            let mut m = frame.clone();
            let payload_start = 12;
            for _ in 0..1 + rng.below(6) {
                let at = payload_start + rng.below((m.len() - payload_start) as u64 + 1) as usize;
                match rng.below(8) {
                    0 if at < m.len() => m[at] ^= 1 << rng.below(8),
                    1 if at < m.len() => m[at] = rng.byte(),
                    2 => m.insert(at, rng.byte()),
                    3 if at < m.len() => {
                        m.remove(at);
                    }
                    4 => m.truncate(at),
                    // A hostile length prefix: bincode's u64 varint marker
                    // followed by a huge count.
                    5 => {
                        let huge =
                            [253u8].into_iter().chain((u64::MAX >> rng.below(40)).to_le_bytes());
                        m.splice(at..at, huge);
                    }
                    6 if at < m.len() => m[at] = [251, 252, 253, 254, 255][rng.below(5) as usize],
                    _ => {
                        let n = rng.below(8);
                        for _ in 0..n {
                            m.insert(at.min(m.len()), rng.byte());
                        }
                    }
                }
            }
            // Half the time, keep the header's length honest so the
            // mutation reaches the payload decoder.
            if rng.chance(2) && m.len() >= 12 {
                let len = (m.len() - 12) as u32;
                m[8..12].copy_from_slice(&len.to_le_bytes());
            }
            if check(&m, &mut rng, seed).is_ok() {
                decoded_mutants += 1;
            }
        }
        rounds += 1;
    }
    eprintln!(
        "fuzz_decoder: {rounds} requests, {} mutants, {decoded_mutants} of them decodable (seed {seed})",
        rounds * 8
    );
    assert!(rounds > 500, "too few rounds in the time budget: {rounds}");
}

#[test]
fn hostile_length_prefixes_inside_a_frame_allocate_nothing_large() {
    let seed = 7;
    let mut rng = Rng(seed);
    // The program string's length prefix, then the argv count, claiming
    // from 2^20 up to 2^64-1 elements, with a honest frame length.
    for shift in 0..44 {
        let claim = u64::MAX >> shift;
        for position in 0..2 {
            let mut payload = Vec::new();
            if position == 1 {
                payload.extend_from_slice(&[4, b'/', b'b', b'i', b'n']);
            }
            payload.push(253);
            payload.extend_from_slice(&claim.to_le_bytes());
            payload.extend_from_slice(&[b'a'; 32]);
            let frame = [frame_header(payload.len() as u32), payload].concat();
            assert!(check(&frame, &mut rng, seed).is_err(), "a claim of {claim} elements decoded");
        }
    }
}
