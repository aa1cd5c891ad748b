//! The only place of the harness that knows the protocol types of `shared`
//! (`Request`, `Limits`, `Reply`, `Outcome`). Tests build a request with
//! [`request`] (what the frontend sends with its default options), change
//! its limits with [`set_limit`], send it as [`frame`], and read what the
//! helper answered with [`decode_reply`], in this module's own terms
//! ([`Reply`], [`Outcome`], [`End`]). When the protocol changes, these
//! functions change and the tests stay as they are.

/// A request as the frontend builds it with its default options, for the
/// command `argv` (argv[0] is also the program path). Tests may change its
/// other fields (`argv`, `env`, `chroot`, `exec_dir`, `niceness`,
/// `share_net`, `host_tmp`); its limits only through [`set_limit`].
pub fn request(argv: &[&str]) -> shared::Request {
    shared::Request {
        program: argv.first().expect("a program").to_string(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        limits: shared::Limits::default()
            .with(Limit::Cpu, Some(10_000))
            .with(Limit::Wall, Some(60_000))
            .with(Limit::Grace, Some(0))
            .with(Limit::Mem, Some(32_768))
            .with(Limit::Stack, Some(8_192))
            .with(Limit::Core, Some(0))
            .with(Limit::Fsize, Some(0))
            .with(Limit::Nproc, Some(0))
            .with(Limit::Nfile, Some(512)),
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

impl crate::Env {
    /// [`request`] for the hostile probe: `probe ARGS...`.
    pub fn probe_request(&self, args: &[&str]) -> shared::Request {
        let p = self.probe();
        let mut argv = vec![p.as_str()];
        argv.extend_from_slice(args);
        request(&argv)
    }
}

/// A limit of a request, in the request's units (`shared::limits`).
pub use shared::Limit;

/// Sets one limit of a request: `Some(n)`, or `None` for no limit of that
/// kind (where the request has no way to say "none", the largest value:
/// u64::MAX).
pub fn set_limit(r: &mut shared::Request, limit: Limit, value: Option<u64>) {
    // The frontend always sends these four; "none" is their largest value.
    let always = matches!(limit, Limit::Grace | Limit::Core | Limit::Nproc | Limit::Nfile);
    let value = if always { Some(value.unwrap_or(u64::MAX)) } else { value };
    r.limits.set(limit, value);
}

/// One request frame, as the frontend sends it.
pub fn frame(request: &shared::Request) -> Vec<u8> {
    shared::wire::encode_request(request).expect("encode the request")
}

/// The header of a frame whose payload claims `len` bytes (for frames
/// built by hand, as an attacker would).
pub fn frame_header(len: u32) -> Vec<u8> {
    let mut h = b"sxec".to_vec();
    h.extend_from_slice(&shared::PROTOCOL_VERSION.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// A valid frame of `r` with `extra` appended to its payload, the length in
/// its header counting them (as a hostile encoder would send).
pub fn frame_with_extra_payload(r: &shared::Request, extra: &[u8]) -> Vec<u8> {
    let mut f = frame(r);
    f.extend_from_slice(extra);
    let len = (f.len() - 12) as u32;
    f[8..12].copy_from_slice(&len.to_le_bytes());
    f
}

/// What the helper answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The target ran (or its execve failed inside the sandbox).
    Finished(Outcome),
    /// The run was refused or could not be set up: one line.
    Failed(String),
}

/// How a run ended, in the facts the tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub end: End,
    /// The limit that ended the run, by the JSON report's name for it
    /// (`cpu`, `wall`, `memory`, `fsize`, `output`).
    pub limit: Option<&'static str>,
    /// Why execve failed, as strerror words.
    pub exec_error: Option<String>,
    /// CPU time of the run, user and system, µs.
    pub cpu_us: u64,
    /// The run's ids.
    pub uid: u32,
    pub gid: u32,
}

/// How the target's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
    Stopped(i32),
}

/// Decodes the reply frame the helper wrote; Err: no whole, valid frame.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, String> {
    match shared::wire::read_reply(&mut &bytes[..]).map_err(|e| e.to_string())? {
        shared::Reply::Failed(line) => Ok(Reply::Failed(line)),
        shared::Reply::Finished(facts) => {
            // Judged as the frontend judges it.
            let o = safeexec::verdict::judge(facts.into(), None);
            Ok(Reply::Finished(Outcome {
                end: match o.end {
                    shared::End::Exited(code) => End::Exited(code),
                    shared::End::Signaled(sig) => End::Signaled(sig),
                    shared::End::Stopped(sig) => End::Stopped(sig),
                },
                limit: o.limit.map(|l| l.name()),
                exec_error: o.exec_error,
                cpu_us: o.user_us.saturating_add(o.sys_us),
                uid: o.uid,
                gid: o.gid,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_limit_reaches_every_limit() {
        let mut r = request(&["/bin/true"]);
        let before = r.clone();
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            set_limit(&mut r, limit, Some(1000 + i as u64));
        }
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(r.limits.get(limit), Some(1000 + i as u64), "{limit:?}");
        }
        assert_eq!(r.argv, before.argv);
    }

    #[test]
    fn replies_decode_into_the_tests_terms() {
        let mut bytes = Vec::new();
        shared::wire::write_reply(&mut bytes, &shared::Reply::Failed("no".into()))
            .expect("encode a reply");
        assert_eq!(decode_reply(&bytes), Ok(Reply::Failed("no".into())));
        assert!(decode_reply(b"garbage").is_err());
    }
}
