//! The test harness of safeexec: runs the real, installed, setuid-root
//! helper as an unprivileged user. The test files of `tests/tests/` are named
//! by what they prove (docs/threat-model.md maps each invariant to them); this
//! crate is everything they share:
//!
//! - here: the set-up of the test installation, [`Env`], [`Ctx`] and the
//!   macros [`require_root!`] and [`require_root_exclusive!`];
//! - [`run`](mod@run): running the frontend (or any program) as the test
//!   user through setpriv ([`Run`]), and the helper itself, executed exactly
//!   as a hostile member of its group could ([`Direct`]);
//! - [`protocol`]: the only place that knows the protocol types of `shared`
//!   (a default request, its limits, the reply);
//! - [`procs`]: /proc, and the processes a test's own runs left behind;
//! - [`report`]: reading reports, meta files and the probes' `key=value`
//!   lines;
//! - [`scratch`]: directories and host paths that tests create and remove.
//!
//! When the tests run as root, the first test of each test process (guarded
//! by a `OnceLock`, and across processes by an flock) sets up:
//!
//! - the system group `safeexec-test`, the system user `safeexec-test` (in
//!   that group) and the system user `safeexec-outsider` (not in it);
//! - an installation made by `packaging/install.sh --prefix PREFIX --group
//!   safeexec-test`, PREFIX being `$SAFEEXEC_TEST_PREFIX` or
//!   `/var/lib/safeexec-test` (fixed, so that the policy path compiled into
//!   the helper stays the same and the build is not redone; not under /tmp
//!   or /var/tmp, which the sandbox replaces with private empty ones);
//! - the fixtures of `tests/fixtures/` in `PREFIX/fixtures/` (C compiled with
//!   gcc, Python scripts copied), readable by everybody.
//!
//! Every test that needs all that is marked
//! `#[ignore = "needs root: sudo bash tests/run.sh"]` (so that a plain
//! `cargo test` reports it as ignored, not as passed) and starts with
//! [`require_root!`] (or [`require_root_exclusive!`] when it rewrites the
//! policy). `tests/run.sh` runs them with `--include-ignored`. Included but
//! not run as root, such a test prints `SKIPPED (needs root): NAME` and
//! passes, unless `SAFEEXEC_REQUIRE_ROOT_TESTS=1`, in which case it fails.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{chown, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod procs;
pub mod protocol;
pub mod report;
pub mod run;
pub mod scratch;

pub use procs::*;
pub use protocol::{
    decode_reply, frame, frame_header, frame_with_extra_payload, request, set_limit, End, Limit,
    Outcome, Reply,
};
pub use report::*;
pub use run::*;
pub use scratch::*;
pub use serde_json::Value as Json;

/// The unprivileged user the tests run safeexec as (member of [`TEST_GROUP`]).
pub const TEST_USER: &str = "safeexec-test";
/// The group allowed to execute the test installation's helper.
pub const TEST_GROUP: &str = "safeexec-test";
/// A user that is not in [`TEST_GROUP`].
pub const OUTSIDER_USER: &str = "safeexec-outsider";
/// Where the tests install safeexec unless `SAFEEXEC_TEST_PREFIX` says otherwise.
pub const DEFAULT_PREFIX: &str = "/var/lib/safeexec-test";
/// Directories the helper replaces with a private tmpfs inside the sandbox:
/// the fixtures and scratch directories must not live below them.
pub const PRIVATE_IN_SANDBOX: &[&str] = &["/tmp", "/var/tmp", "/dev/shm", "/run"];
/// Set to 1 to make tests that need root fail instead of skipping.
pub const REQUIRE_ROOT_VAR: &str = "SAFEEXEC_REQUIRE_ROOT_TESTS";
/// The reason every root-only test gives in its `#[ignore = "..."]`
/// (checked by this crate's own tests).
pub const NEEDS_ROOT: &str = "needs root: sudo bash tests/run.sh";

/// First uid of the default policy's sandbox range (packaging/policy).
pub const POLICY_UID_BASE: u32 = 1_879_048_192;
/// Size of the default policy's sandbox range.
pub const POLICY_UID_COUNT: u32 = 4_194_304;

/// The Python the fixtures run with (a system path that the sandbox uid can
/// read, unlike a Python installed under a home directory).
pub const PYTHON: &str = "/usr/bin/python3";

/// How long any one command may run before the harness kills it and fails
/// the test (a hanging helper must not hang the suite).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// C fixtures that are also built statically, as `NAME-static`.
const STATIC_FIXTURES: &[&str] = &["hello", "write_file", "probe", "java_standin", "touch_mem"];

/// A user and its primary group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// The set-up test installation.
#[derive(Debug)]
pub struct Env {
    /// The checkout the tests were built from.
    pub repo: PathBuf,
    pub prefix: PathBuf,
    /// `PREFIX/bin/safeexec`
    pub safeexec: PathBuf,
    /// `PREFIX/libexec/safeexec/safeexec-helper`
    pub helper: PathBuf,
    /// The policy compiled into the helper: `PREFIX/etc/safeexec/policy`.
    pub policy: PathBuf,
    /// Compiled fixtures and Python scripts.
    pub fixtures: PathBuf,
    /// Parent of the scratch directories.
    pub work: PathBuf,
    pub test_user: Ids,
    pub outsider: Ids,
}

// ---------------------------------------------------------------------------
// Skipping and set-up

/// How a test uses the policy file: most only read it; a test that rewrites
/// it needs every other test (in any test process) to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Shared,
    Exclusive,
}

/// One test's hold on the installation: its lock on the policy, for as long
/// as the test runs, and the moment it began (see [`Ctx::left_of_run`]).
pub struct Ctx {
    env: &'static Env,
    access: Access,
    /// When the test began, in clock ticks since boot (as /proc shows a
    /// process's start): every run the test starts begins after it.
    pub(crate) began: u64,
    _policy_lock: File,
}

impl Deref for Ctx {
    type Target = Env;
    fn deref(&self) -> &Env {
        self.env
    }
}

impl Ctx {
    /// The installation, for code that wants a `'static` reference.
    pub fn env(&self) -> &'static Env {
        self.env
    }

    /// Replaces the test installation's policy; the packaged policy comes
    /// back when this test ends. Only for tests that started with
    /// [`require_root_exclusive!`].
    pub fn set_policy(&self, text: &str) {
        assert_eq!(
            self.access,
            Access::Exclusive,
            "set_policy needs require_root_exclusive!() so that no other test runs meanwhile"
        );
        write_root_file(&self.env.policy, text.as_bytes(), 0o644).unwrap_or_else(|e| {
            panic!("cannot write the policy {}: {e}", self.env.policy.display())
        });
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if self.access == Access::Exclusive {
            if let Err(e) = restore_policy(self.env) {
                eprintln!("warning: cannot restore the packaged policy: {e}");
            }
        }
    }
}

/// Turns `crate::module::test_name::here` into `module::test_name`.
pub fn test_name_from(type_name: &str) -> String {
    let name = type_name.strip_suffix("::here").unwrap_or(type_name);
    let name = name.replace("::{{closure}}", "");
    match name.split_once("::") {
        Some((_crate, rest)) => rest.to_string(),
        None => name,
    }
}

/// Whether tests that need root must fail rather than skip.
pub fn root_required() -> bool {
    std::env::var(REQUIRE_ROOT_VAR).is_ok_and(|v| v == "1")
}

/// The test installation, set up on first use; `None` (after printing a
/// SKIPPED line) when the tests do not run as root and
/// `SAFEEXEC_REQUIRE_ROOT_TESTS` is not 1. Panics when set-up fails.
pub fn context(test: &str, access: Access) -> Option<Ctx> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        if root_required() {
            panic!(
                "{test} needs root (it runs the installed setuid helper), and {REQUIRE_ROOT_VAR}=1"
            );
        }
        // Straight to descriptor 2: libtest captures eprintln! of passing
        // tests, and a skip must be seen.
        let _ = writeln!(io::stderr(), "SKIPPED (needs root): {test}");
        return None;
    }
    let env = match INSTALLED.get_or_init(set_up) {
        Ok(env) => env,
        Err(e) => panic!("{test}: setting up the test installation failed: {e}"),
    };
    let lock = lock_file(&env.prefix.join(".policy.lock"), access)
        .unwrap_or_else(|e| panic!("{test}: cannot lock the policy: {e}"));
    Some(Ctx { env, access, began: procs::boot_ticks(), _policy_lock: lock })
}

static INSTALLED: OnceLock<Result<Env, String>> = OnceLock::new();

/// Starts a test that runs the installed helper: evaluates to a [`Ctx`], or
/// returns from the test (after printing `SKIPPED (needs root): NAME`) when
/// not root, or panics when not root and `SAFEEXEC_REQUIRE_ROOT_TESTS=1`.
/// Such a test is also marked `#[ignore = "needs root: sudo bash
/// tests/run.sh"]`.
#[macro_export]
macro_rules! require_root {
    () => {{
        fn here() {}
        let name = $crate::test_name_from(::std::any::type_name_of_val(&here));
        match $crate::context(&name, $crate::Access::Shared) {
            Some(ctx) => ctx,
            None => return,
        }
    }};
}

/// Like [`require_root!`], for a test that rewrites the policy: no other test
/// runs while it does, and the packaged policy is restored when it ends.
#[macro_export]
macro_rules! require_root_exclusive {
    () => {{
        fn here() {}
        let name = $crate::test_name_from(::std::any::type_name_of_val(&here));
        match $crate::context(&name, $crate::Access::Exclusive) {
            Some(ctx) => ctx,
            None => return,
        }
    }};
}

fn lock_file(path: &Path, access: Access) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let op = match access {
        Access::Shared => libc::LOCK_SH,
        Access::Exclusive => libc::LOCK_EX,
    };
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(file);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn set_up() -> Result<Env, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate has no parent directory")?
        .to_path_buf();
    let prefix = PathBuf::from(
        std::env::var_os("SAFEEXEC_TEST_PREFIX").unwrap_or_else(|| OsString::from(DEFAULT_PREFIX)),
    );
    if !prefix.is_absolute() {
        return Err(format!("SAFEEXEC_TEST_PREFIX must be absolute, not {}", prefix.display()));
    }
    if let Some(dir) = PRIVATE_IN_SANDBOX.iter().find(|d| prefix.starts_with(d)) {
        return Err(format!(
            "the test prefix {} is below {dir}, which the sandbox replaces with an empty \
             directory: choose another SAFEEXEC_TEST_PREFIX",
            prefix.display()
        ));
    }
    ensure_root_dir(&prefix)?;
    let _setup = lock_file(&prefix.join(".setup.lock"), Access::Exclusive)
        .map_err(|e| format!("cannot lock {}: {e}", prefix.display()))?;

    let started = Instant::now();
    // Set where the tests run on a read-only copy of this machine (the
    // cgroup v2 guest of tests/cgv2.sh): the users and the installation
    // were made beforehand, from the same build.
    let installed = std::env::var_os("SAFEEXEC_TEST_INSTALLED").is_some_and(|v| v == "1");
    if !installed {
        ensure_users()?;
    }
    let test_user = lookup_user(TEST_USER)?;
    let outsider = lookup_user(OUTSIDER_USER)?;
    let group_gid = lookup_group(TEST_GROUP)?.0;
    if lookup_group(TEST_GROUP)?.1.iter().any(|m| m == OUTSIDER_USER) || outsider.gid == group_gid {
        return Err(format!("{OUTSIDER_USER} must not be a member of {TEST_GROUP}"));
    }

    if !installed {
        install(&repo, &prefix)?;
    }
    let env = Env {
        safeexec: prefix.join("bin/safeexec"),
        helper: prefix.join("libexec/safeexec/safeexec-helper"),
        policy: prefix.join("etc/safeexec/policy"),
        fixtures: prefix.join("fixtures"),
        work: prefix.join("work"),
        repo,
        prefix,
        test_user,
        outsider,
    };
    {
        // A test that rewrote the policy and died may have left it changed.
        let _policy = lock_file(&env.prefix.join(".policy.lock"), Access::Exclusive)
            .map_err(|e| format!("cannot lock the policy: {e}"))?;
        restore_policy(&env).map_err(|e| format!("cannot restore the packaged policy: {e}"))?;
    }
    seed_uid_counter(&env.prefix)?;
    ensure_root_dir(&env.fixtures)?;
    ensure_root_dir(&env.work)?;
    build_fixtures(&env)?;
    eprintln!(
        "safeexec test installation ready in {} ({:.1} s)",
        env.prefix.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(env)
}

/// Starts a new installation's uid counter at a place drawn from its prefix,
/// so that test installations in other prefixes (all share the packaged uid
/// range) running at the same time hand out other uids.
fn seed_uid_counter(prefix: &Path) -> Result<(), String> {
    use std::hash::{Hash, Hasher};
    let path = prefix.join("var/lib/safeexec/uids");
    if path.exists() || prefix == Path::new(DEFAULT_PREFIX) {
        return Ok(());
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    prefix.hash(&mut hasher);
    let start = hasher.finish() % u64::from(POLICY_UID_COUNT / 2);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&start.to_le_bytes()))
        .map_err(|e| format!("cannot seed {}: {e}", path.display()))
}

/// Creates a directory (0755 root:root) if it is missing.
fn ensure_root_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        chown(dir, Some(0), Some(0)).map_err(|e| format!("cannot chown {}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Runs a set-up command, turning a failure into its output.
fn run_setup(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    let text = format!("{}{}", lossy(&out.stdout), lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{shown} failed ({}):\n{text}", out.status))
    }
}

fn ensure_users() -> Result<(), String> {
    if lookup_group(TEST_GROUP).is_err() {
        run_setup(Command::new("groupadd").args(["--system", TEST_GROUP]))?;
    }
    if lookup_user(TEST_USER).is_err() {
        run_setup(Command::new("useradd").args([
            "--system",
            "--gid",
            TEST_GROUP,
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ]))?;
    }
    if lookup_user(OUTSIDER_USER).is_err() {
        run_setup(Command::new("useradd").args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            OUTSIDER_USER,
        ]))?;
    }
    Ok(())
}

/// Looks a user up in /etc/passwd (no NSS: the tests create local users).
pub fn lookup_user(name: &str) -> Result<Ids, String> {
    let passwd =
        fs::read_to_string("/etc/passwd").map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == name)
        .and_then(|f| Some(Ids { uid: f[2].parse().ok()?, gid: f[3].parse().ok()? }))
        .ok_or_else(|| format!("no user {name} in /etc/passwd"))
}

/// Looks a group up in /etc/group: its gid and its listed members.
pub fn lookup_group(name: &str) -> Result<(u32, Vec<String>), String> {
    let group =
        fs::read_to_string("/etc/group").map_err(|e| format!("cannot read /etc/group: {e}"))?;
    group
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == name)
        .and_then(|f| {
            let members = f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
            Some((f[2].parse().ok()?, members))
        })
        .ok_or_else(|| format!("no group {name} in /etc/group"))
}

/// Runs packaging/install.sh into the prefix, with a clean environment (none
/// of the variables cargo sets for tests may leak into that build).
fn install(repo: &Path, prefix: &Path) -> Result<(), String> {
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join("packaging/install.sh"))
        .arg("--prefix")
        .arg(prefix)
        .args(["--group", TEST_GROUP])
        .current_dir(repo)
        .env_clear();
    let mut path = OsString::new();
    if let Some(cargo_dir) =
        std::env::var_os("CARGO").as_deref().map(Path::new).and_then(Path::parent)
    {
        path.push(cargo_dir);
        path.push(":");
    }
    path.push(std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()));
    cmd.env("PATH", path);
    for var in ["HOME", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "TERM", "CARGO_BUILD_JOBS"]
    {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    let out = run_setup(&mut cmd)?;
    if out.contains("warning:") {
        eprintln!("install.sh said:\n{out}");
    }
    Ok(())
}

/// Puts the packaged policy back if the installed one differs.
fn restore_policy(env: &Env) -> io::Result<()> {
    let packaged = fs::read(env.repo.join("packaging/policy"))?;
    if fs::read(&env.policy).ok().as_deref() != Some(&packaged[..]) {
        write_root_file(&env.policy, &packaged, 0o644)?;
    }
    Ok(())
}

/// Writes a root-owned file atomically (temporary file, then rename).
pub fn write_root_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other("no file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    chown(&tmp, Some(0), Some(0))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)
}

/// Whether `out` must be made again from `src`: a copy of the source it was
/// last made from is kept as `.OUT.src` beside it (content, not mtime, so
/// that checking out an older commit rebuilds too).
fn stale(src: &Path, out: &Path) -> bool {
    let Ok(source) = fs::read(src) else {
        return true;
    };
    !out.exists() || fs::read(source_copy(out)).ok().as_deref() != Some(&source[..])
}

fn source_copy(out: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(out.file_name().expect("an output file name"));
    name.push(".src");
    out.with_file_name(name)
}

fn remember_source(src: &Path, out: &Path) -> Result<(), String> {
    let source = fs::read(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    write_root_file(&source_copy(out), &source, 0o644)
        .map_err(|e| format!("cannot write {}: {e}", source_copy(out).display()))
}

/// Compiles the C fixtures and copies the Python ones into PREFIX/fixtures,
/// mode 0755/0644, skipping those that are up to date.
fn build_fixtures(env: &Env) -> Result<(), String> {
    let src_dir = env.repo.join("tests/fixtures");
    let entries =
        fs::read_dir(&src_dir).map_err(|e| format!("cannot list {}: {e}", src_dir.display()))?;
    let mut sources: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    sources.sort();
    for src in sources {
        let (Some(stem), Some(ext)) = (src.file_stem().and_then(OsStr::to_str), src.extension())
        else {
            continue;
        };
        if ext == "c" {
            compile(&src, &env.fixtures.join(stem), false)?;
            if STATIC_FIXTURES.contains(&stem) {
                compile(&src, &env.fixtures.join(format!("{stem}-static")), true)?;
            }
        } else if ext == "py" {
            let name = src.file_name().expect("a .py file has a name");
            let out = env.fixtures.join(name);
            if stale(&src, &out) {
                let text =
                    fs::read(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
                write_root_file(&out, &text, 0o644)
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                remember_source(&src, &out)?;
            }
        }
    }
    Ok(())
}

fn compile(src: &Path, out: &Path, statically: bool) -> Result<(), String> {
    if !stale(src, out) {
        return Ok(());
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-Wall", "-o"]).arg(&tmp).arg(src);
    if statically {
        cmd.arg("-static");
    }
    run_setup(&mut cmd)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", tmp.display()))?;
    fs::rename(&tmp, out).map_err(|e| format!("cannot rename to {}: {e}", out.display()))?;
    remember_source(src, out)
}

// ---------------------------------------------------------------------------
// Fixtures and the policy

impl Env {
    /// Path of a compiled fixture (`hello`, `probe`, `probe-static`, ...) or
    /// a Python script (`fork.py`), as a string for command lines.
    pub fn fixture(&self, name: &str) -> String {
        let path = self.fixtures.join(name);
        assert!(path.exists(), "no fixture {} (is tests/fixtures/ complete?)", path.display());
        path.to_str().expect("fixture paths are UTF-8").to_string()
    }

    /// The hostile target (tests/fixtures/probe.c): `probe ATTACK ARGS...`
    /// prints what the attack achieved as `key=value` facts.
    pub fn probe(&self) -> String {
        self.fixture("probe")
    }

    /// The packaged policy (packaging/policy) with each `key = value` of
    /// `changes` in place of that key's own line, or added.
    pub fn policy_with(&self, changes: &[(&str, &str)]) -> String {
        let packaged =
            fs::read_to_string(self.repo.join("packaging/policy")).expect("read packaging/policy");
        policy_text_with(&packaged, changes)
    }
}

/// `policy` with each `key = value` of `changes` in place of that key's
/// lines (which are dropped), at the end.
fn policy_text_with(policy: &str, changes: &[(&str, &str)]) -> String {
    let mut text: String = policy
        .lines()
        .filter(|l| {
            let key = l.split('=').next().map(str::trim).unwrap_or("");
            !changes.iter().any(|(k, _)| *k == key)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for (k, v) in changes {
        text.push_str(&format!("{k} = {v}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_drop_crate_and_helper_fn() {
        assert_eq!(test_name_from("legacy::hello_world::here"), "hello_world");
        assert_eq!(test_name_from("legacy::m::t::{{closure}}::here"), "m::t");
    }

    #[test]
    fn policy_edits_replace_or_add_whole_lines() {
        let text = "# c\nmax_cpu = 3600\nmax_cpus_x = 1\ngid = per-run\n";
        assert_eq!(
            policy_text_with(text, &[("max_cpu", "2"), ("allow_share_net", "true")]),
            "# c\nmax_cpus_x = 1\ngid = per-run\nmax_cpu = 2\nallow_share_net = true\n"
        );
    }

    #[test]
    fn policy_range_is_the_packaged_one() {
        let policy = include_str!("../../packaging/policy");
        let value = |key: &str| -> u32 {
            policy
                .lines()
                .find_map(|l| l.strip_prefix(key)?.trim().strip_prefix('=')?.trim().parse().ok())
                .unwrap_or_else(|| panic!("packaging/policy has no numeric {key}"))
        };
        assert_eq!(value("uid_base"), POLICY_UID_BASE);
        assert_eq!(value("uid_count"), POLICY_UID_COUNT);
        assert!(!in_policy_range(POLICY_UID_BASE - 1));
        assert!(in_policy_range(POLICY_UID_BASE + POLICY_UID_COUNT - 1));
        assert!(!in_policy_range(POLICY_UID_BASE + POLICY_UID_COUNT));
    }

    /// Each `#[test]` of tests/tests/*.rs: its file, name, attributes and
    /// body (up to the `}` that closes it in column 0, as rustfmt writes).
    fn integration_tests() -> Vec<(String, String, String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("list tests/tests")
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        files.sort();
        let mut found = Vec::new();
        for file in files {
            let text = fs::read_to_string(&file).expect("read a test file");
            let name = file.file_name().expect("a file name").to_string_lossy();
            for chunk in text.split("#[test]\n").skip(1) {
                let Some(fn_at) = chunk.find("fn ") else {
                    continue;
                };
                let attrs = &chunk[..fn_at];
                let rest = &chunk[fn_at + 3..];
                let test = rest[..rest.find('(').unwrap_or(0)].to_string();
                let body = &rest[..rest.find("\n}\n").unwrap_or(rest.len())];
                found.push((name.to_string(), test, attrs.to_string(), body.to_string()));
            }
        }
        found
    }

    /// A plain `cargo test` must report the tests that need root as ignored,
    /// never as passed without having looked: every test that starts the
    /// installation says so in its `#[ignore]`, and no other test is
    /// ignored.
    #[test]
    fn root_only_tests_and_only_they_are_ignored_with_the_reason() {
        let tests = integration_tests();
        assert!(tests.len() > 200, "found only {} tests", tests.len());
        let marker = format!("#[ignore = \"{NEEDS_ROOT}\"]");
        let mut wrong = Vec::new();
        for (file, test, attrs, body) in &tests {
            let needs_root = body.contains("require_root");
            let marked = attrs.contains(&marker);
            if needs_root != marked || (!needs_root && attrs.contains("#[ignore")) {
                wrong.push(format!("{file}: {test} (needs root: {needs_root})"));
            }
        }
        assert!(
            wrong.is_empty(),
            "tests whose #[ignore] does not match their need for root:\n{}",
            wrong.join("\n")
        );
    }
}
