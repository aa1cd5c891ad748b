//! The test harness of safeexec: runs the real, installed, setuid-root
//! helper as an unprivileged user.
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
//! Every test that needs all that starts with [`require_root!`] (or
//! [`require_root_exclusive!`] when it rewrites the policy). Not as root, such
//! a test prints `SKIPPED (needs root): NAME` and passes, unless
//! `SAFEEXEC_REQUIRE_ROOT_TESTS=1`, in which case it fails.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Deref;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{chown, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

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
pub const PRIVATE_IN_SANDBOX: &[&str] = &["/tmp", "/var/tmp", "/dev/shm", "/run/lock"];
/// Set to 1 to make tests that need root fail instead of skipping.
pub const REQUIRE_ROOT_VAR: &str = "SAFEEXEC_REQUIRE_ROOT_TESTS";

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
const STATIC_FIXTURES: &[&str] = &["hello", "write_file", "review_probe"];

/// Whether `uid` lies in the default policy's sandbox range.
pub fn in_policy_range(uid: u32) -> bool {
    (POLICY_UID_BASE..POLICY_UID_BASE + POLICY_UID_COUNT).contains(&uid)
}

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

/// Who runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// [`TEST_USER`], a member of the helper's group.
    Test,
    /// [`OUTSIDER_USER`], not a member of the helper's group.
    Outsider,
}

impl User {
    pub fn name(self) -> &'static str {
        match self {
            User::Test => TEST_USER,
            User::Outsider => OUTSIDER_USER,
        }
    }
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

/// Holds a test's lock on the policy for as long as the test runs.
pub struct Ctx {
    env: &'static Env,
    access: Access,
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
    Some(Ctx {
        env,
        access,
        _policy_lock: lock,
    })
}

static INSTALLED: OnceLock<Result<Env, String>> = OnceLock::new();

/// The installation once [`require_root!`] has set it up (for the free
/// functions such as [`safeexec`]).
pub fn installed() -> &'static Env {
    match INSTALLED.get() {
        Some(Ok(env)) => env,
        Some(Err(e)) => panic!("setting up the test installation failed: {e}"),
        None => panic!("the test installation is not set up: start the test with require_root!()"),
    }
}

/// Starts a test that runs the installed helper: evaluates to a [`Ctx`], or
/// returns from the test (after printing `SKIPPED (needs root): NAME`) when
/// not root, or panics when not root and `SAFEEXEC_REQUIRE_ROOT_TESTS=1`.
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
        return Err(format!(
            "SAFEEXEC_TEST_PREFIX must be absolute, not {}",
            prefix.display()
        ));
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
    ensure_users()?;
    let test_user = lookup_user(TEST_USER)?;
    let outsider = lookup_user(OUTSIDER_USER)?;
    let group_gid = lookup_group(TEST_GROUP)?.0;
    if lookup_group(TEST_GROUP)?
        .1
        .iter()
        .any(|m| m == OUTSIDER_USER)
        || outsider.gid == group_gid
    {
        return Err(format!(
            "{OUTSIDER_USER} must not be a member of {TEST_GROUP}"
        ));
    }

    install(&repo, &prefix)?;
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
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
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
        .and_then(|f| {
            Some(Ids {
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
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
            let members = f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
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
    if let Some(cargo_dir) = std::env::var_os("CARGO")
        .as_deref()
        .map(Path::new)
        .and_then(Path::parent)
    {
        path.push(cargo_dir);
        path.push(":");
    }
    path.push(std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()));
    cmd.env("PATH", path);
    for var in [
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TERM",
        "CARGO_BUILD_JOBS",
    ] {
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
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
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
// Paths

impl Env {
    /// Path of a compiled fixture (`hello`, `hello-static`, ...) or a Python
    /// script (`fork.py`), as a string for command lines.
    pub fn fixture(&self, name: &str) -> String {
        let path = self.fixtures.join(name);
        assert!(
            path.exists(),
            "no fixture {} (is tests/fixtures/ complete?)",
            path.display()
        );
        path.to_str().expect("fixture paths are UTF-8").to_string()
    }

    /// A new scratch directory under PREFIX/work, owned by the test user,
    /// mode 0755; removed when dropped.
    pub fn scratch(&self, name: &str) -> Scratch {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.work.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let scratch = Scratch {
            path,
            owner: self.test_user,
        };
        scratch.own(&scratch.path, 0o755);
        scratch
    }
}

/// A directory owned by the test user; removed (as root) when dropped.
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
    owner: Ids,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/rel` as a string, for command lines.
    pub fn join(&self, rel: &str) -> String {
        self.path
            .join(rel)
            .to_str()
            .expect("scratch paths are UTF-8")
            .to_string()
    }

    fn own(&self, path: &Path, mode: u32) {
        chown(path, Some(self.owner.uid), Some(self.owner.gid))
            .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
    }

    /// Creates `rel` (parents must exist) owned by the test user, with mode.
    pub fn file(&self, rel: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.path.join(rel);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self.own(&path, mode);
        path
    }

    /// Creates the directory `rel` (and its parents) owned by the test user.
    pub fn dir(&self, rel: &str, mode: u32) -> PathBuf {
        let path = self.path.join(rel);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let mut p = path.as_path();
        while p != self.path {
            self.own(p, if p == path { mode } else { 0o755 });
            p = p.parent().expect("inside the scratch directory");
        }
        path
    }

    /// Copies a file into the scratch directory (following symlinks),
    /// creating parent directories, owned by the test user.
    pub fn copy_in(&self, from: &Path, rel: &str, mode: u32) -> PathBuf {
        let path = self.path.join(rel.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            if !parent.is_dir() {
                let parent_rel = parent
                    .strip_prefix(&self.path)
                    .expect("inside the scratch directory");
                self.dir(parent_rel.to_str().expect("UTF-8 path"), 0o755);
            }
        }
        fs::copy(from, &path).unwrap_or_else(|e| {
            panic!("cannot copy {} to {}: {e}", from.display(), path.display())
        });
        self.own(&path, mode);
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Running things

/// What a command reads on its standard input.
#[derive(Debug)]
pub enum Input {
    Null,
    Bytes(Vec<u8>),
    File(File),
}

/// Which binary a [`Run`] executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Frontend,
    Helper,
}

type Hook = Box<dyn FnMut() -> io::Result<()> + Send + Sync>;

/// A command run as an unprivileged user through `setpriv --reuid=USER
/// --regid=USER --init-groups -- /usr/bin/env -- BINARY ARGS`: the frontend
/// ([`Env::run`]) or the helper itself ([`Env::run_helper`]).
pub struct Run<'a> {
    env: &'a Env,
    binary: Binary,
    args: Vec<OsString>,
    user: User,
    stdin: Input,
    cwd: PathBuf,
    vars: Vec<(OsString, OsString)>,
    timeout: Duration,
    fds: Vec<(OwnedFd, RawFd)>,
    close: Vec<RawFd>,
    hooks: Vec<Hook>,
}

impl Env {
    /// A run of the installed frontend as the test user, stdin from
    /// /dev/null, in PREFIX/work.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run<'_> {
        Run {
            env: self,
            binary: Binary::Frontend,
            args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
            user: User::Test,
            stdin: Input::Null,
            cwd: self.work.clone(),
            vars: vec![("PATH".into(), "/usr/bin:/bin".into())],
            timeout: DEFAULT_TIMEOUT,
            fds: Vec::new(),
            close: Vec::new(),
            hooks: Vec::new(),
        }
    }

    /// A run of the installed helper itself, as the test user, with no
    /// descriptors but 0-2 unless [`Run::fd`] adds some.
    pub fn run_helper<S: AsRef<OsStr>>(&self, args: &[S]) -> Run<'_> {
        Run {
            binary: Binary::Helper,
            ..self.run(args)
        }
    }

    /// `safeexec ARGS` as the test user; stdin /dev/null.
    pub fn safeexec<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.run(args).output()
    }

    /// `safeexec ARGS` as the test user with these bytes on stdin.
    pub fn safeexec_with_stdin<S: AsRef<OsStr>>(&self, args: &[S], stdin: &[u8]) -> Output {
        self.run(args).stdin_bytes(stdin).output()
    }

    /// `safeexec ARGS` as the given user.
    pub fn safeexec_as<S: AsRef<OsStr>>(&self, user: User, args: &[S]) -> Output {
        self.run(args).user(user).output()
    }

    /// `safeexec ARGS` as the test user, in directory `cwd`.
    pub fn safeexec_in<S: AsRef<OsStr>>(&self, cwd: &Path, args: &[S]) -> Output {
        self.run(args).cwd(cwd).output()
    }
}

/// `safeexec ARGS` as the test user (the installation must have been set up
/// by [`require_root!`] first).
pub fn safeexec<S: AsRef<OsStr>>(args: &[S]) -> Output {
    installed().safeexec(args)
}

impl<'a> Run<'a> {
    pub fn user(mut self, user: User) -> Self {
        self.user = user;
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }

    pub fn stdin(mut self, input: Input) -> Self {
        self.stdin = input;
        self
    }

    pub fn stdin_bytes(self, bytes: &[u8]) -> Self {
        self.stdin(Input::Bytes(bytes.to_vec()))
    }

    /// Sets a variable in the command's environment (which otherwise holds
    /// only PATH).
    pub fn var(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.vars
            .push((name.as_ref().into(), value.as_ref().into()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passes `fd` to the command as descriptor `target` (0-2 included, which
    /// replaces the standard stream).
    pub fn fd(mut self, fd: impl Into<OwnedFd>, target: RawFd) -> Self {
        self.fds.push((fd.into(), target));
        self
    }

    /// Closes descriptor `target` in the command (after [`Run::fd`] mappings).
    pub fn close_fd(mut self, target: RawFd) -> Self {
        self.close.push(target);
        self
    }

    /// Runs `hook` in the child just before `setpriv` is executed (to set
    /// rlimits, a signal mask, ...). It must be async-signal-safe.
    pub fn pre_exec(
        mut self,
        hook: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// The command line, for messages.
    pub fn describe(&self) -> String {
        let bin = match self.binary {
            Binary::Frontend => &self.env.safeexec,
            Binary::Helper => &self.env.helper,
        };
        let mut s = format!("[{}] {}", self.user.name(), bin.display());
        for a in &self.args {
            let _ = write!(s, " {}", a.to_string_lossy());
        }
        s
    }

    /// Runs the command to its end (killing it after the timeout, which
    /// fails the test) and returns its status and output.
    pub fn output(self) -> Output {
        let described = self.describe();
        let timeout = self.timeout;
        let mut child = self.spawn();
        match wait_with_timeout(&mut child, timeout) {
            Ok(output) => output,
            Err(partial) => panic!(
                "{described}: still running after {timeout:?}, killed\n{}",
                dump(&partial)
            ),
        }
    }

    /// Starts the command; its stdout and stderr are pipes.
    pub fn spawn(mut self) -> Spawned {
        let bin = match self.binary {
            Binary::Frontend => self.env.safeexec.clone(),
            Binary::Helper => self.env.helper.clone(),
        };
        let name = self.user.name();
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={name}"))
            .arg(format!("--regid={name}"))
            .arg("--init-groups")
            .arg("--")
            // setpriv keeps its capabilities (PR_SET_KEEPCAPS) until its own
            // execve, so an execve by setpriv itself would pass permission
            // checks that the user would fail. env is executed without
            // privilege and then executes the binary as the plain user.
            .arg("/usr/bin/env")
            .arg("--")
            .arg(&bin)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut stdin_bytes = None;
        match std::mem::replace(&mut self.stdin, Input::Null) {
            Input::Null => {
                cmd.stdin(Stdio::null());
            }
            Input::File(f) => {
                cmd.stdin(Stdio::from(f));
            }
            Input::Bytes(b) => {
                cmd.stdin(Stdio::piped());
                stdin_bytes = Some(b);
            }
        }
        // Each mapped descriptor is first duplicated to a high number, so
        // that the dup2 calls in the child cannot clobber each other.
        let mut high: Vec<(OwnedFd, RawFd)> = Vec::new();
        for (fd, target) in &self.fds {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one.
            let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
            assert!(dup >= 0, "F_DUPFD_CLOEXEC: {}", io::Error::last_os_error());
            // SAFETY: dup is a fresh descriptor that nothing else owns.
            high.push((unsafe { OwnedFd::from_raw_fd(dup) }, *target));
        }
        let pairs: Vec<(RawFd, RawFd)> = high.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect();
        let close = self.close.clone();
        let mut hooks = std::mem::take(&mut self.hooks);
        if !pairs.is_empty() || !close.is_empty() || !hooks.is_empty() {
            // SAFETY: the closure only calls async-signal-safe functions
            // (dup2, close, and the caller's hooks, which must be).
            unsafe {
                cmd.pre_exec(move || {
                    for hook in hooks.iter_mut() {
                        hook()?;
                    }
                    for &(from, to) in &pairs {
                        if libc::dup2(from, to) < 0 {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    for &fd in &close {
                        libc::close(fd);
                    }
                    Ok(())
                });
            }
        }
        let described = self.describe();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
        drop(high);
        drop(self.fds);
        let stdin_thread = match (stdin_bytes, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        Spawned {
            child,
            stdout,
            stderr,
            stdin_thread,
            described,
        }
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// A started command.
pub struct Spawned {
    pub child: std::process::Child,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    stdin_thread: Option<thread::JoinHandle<()>>,
    described: String,
}

impl Spawned {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the end (see [`Run::output`]).
    pub fn wait(mut self, timeout: Duration) -> Output {
        let described = std::mem::take(&mut self.described);
        match wait_with_timeout(&mut self, timeout) {
            Ok(output) => output,
            Err(partial) => panic!(
                "{described}: still running after {timeout:?}, killed\n{}",
                dump(&partial)
            ),
        }
    }
}

/// Waits for the child; kills it after `timeout` and returns Err with what
/// it printed.
fn wait_with_timeout(s: &mut Spawned, timeout: Duration) -> Result<Output, Output> {
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status: ExitStatus = loop {
        match s.child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = s.child.kill();
                break s.child.wait().expect("wait for a killed child");
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{}: wait failed: {e}", s.described),
        }
    };
    if let Some(t) = s.stdin_thread.take() {
        let _ = t.join();
    }
    // After a timeout, grandchildren may keep the pipes open: do not wait
    // for them forever.
    let collect = |h: Option<thread::JoinHandle<Vec<u8>>>| -> Vec<u8> {
        let Some(h) = h else { return Vec::new() };
        if timed_out {
            let until = Instant::now() + Duration::from_secs(2);
            while !h.is_finished() && Instant::now() < until {
                thread::sleep(Duration::from_millis(10));
            }
            if !h.is_finished() {
                return b"<output still open>".to_vec();
            }
        }
        h.join().unwrap_or_default()
    };
    let output = Output {
        status,
        stdout: collect(s.stdout.take()),
        stderr: collect(s.stderr.take()),
    };
    if timed_out {
        Err(output)
    } else {
        Ok(output)
    }
}

// ---------------------------------------------------------------------------
// Talking to the helper directly

/// A request as the frontend builds it with its default options, for the
/// command `argv` (argv[0] is also the program path).
pub fn request(argv: &[&str]) -> shared::Request {
    shared::Request {
        program: argv.first().expect("a program").to_string(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        limits: shared::Limits {
            cpu_ms: Some(10_000),
            wall_ms: Some(60_000),
            grace_ms: 0,
            mem_kib: Some(32_768),
            rss_kib: None,
            stack_kib: Some(8_192),
            core_kib: 0,
            fsize_kib: Some(0),
            nproc: 0,
            nfile: 512,
            output_bytes: None,
        },
        chroot: false,
        exec_dir: None,
        niceness: 16,
        share_net: false,
        host_tmp: false,
    }
}

/// One request frame, as the frontend sends it.
pub fn frame(request: &shared::Request) -> Vec<u8> {
    shared::wire::encode_request(request).expect("encode the request")
}

/// What a direct run of the helper gave back.
#[derive(Debug)]
pub struct HelperOutput {
    pub output: Output,
    /// Every byte the helper wrote on its reply descriptor.
    pub reply_bytes: Vec<u8>,
}

impl HelperOutput {
    /// Decodes the reply frame.
    pub fn reply(&self) -> Result<shared::Reply, shared::wire::WireError> {
        shared::wire::read_reply(&mut &self.reply_bytes[..])
    }

    /// The outcome of a finished run; panics with everything otherwise.
    pub fn outcome(&self) -> shared::Outcome {
        match self.reply() {
            Ok(shared::Reply::Finished(outcome)) => outcome,
            other => panic!(
                "no outcome from the helper: {other:?}\n{}",
                dump(&self.output)
            ),
        }
    }
}

impl<'a> Run<'a> {
    /// Gives the helper `bytes` on its request descriptor (a pipe, closed
    /// after the bytes) and a pipe as its reply descriptor, runs it to its
    /// end and returns its output and reply bytes. Further descriptors,
    /// rlimits and so on can be set on the `Run` before.
    pub fn exchange(self, bytes: &[u8]) -> HelperOutput {
        let (request_rx, mut request_tx) = io::pipe().expect("request pipe");
        let (mut reply_rx, reply_tx) = io::pipe().expect("reply pipe");
        let timeout = self.timeout;
        let spawned = self
            .fd(request_rx, shared::REQUEST_FD)
            .fd(reply_tx, shared::REPLY_FD)
            .spawn();
        let bytes = bytes.to_vec();
        // The helper may refuse before reading everything: a failed write
        // is part of the test, not an error here.
        let writer = thread::spawn(move || {
            let _ = request_tx.write_all(&bytes);
        });
        let reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = reply_rx.read_to_end(&mut buf);
            buf
        });
        let output = spawned.wait(timeout);
        let _ = writer.join();
        let reply_bytes = reader.join().unwrap_or_default();
        HelperOutput {
            output,
            reply_bytes,
        }
    }
}

// ---------------------------------------------------------------------------
// Reading results

pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Status, stdout and stderr of a run, for assertion messages.
pub fn dump(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
        out.status,
        lossy(&out.stdout),
        lossy(&out.stderr)
    )
}

/// The original's four-line text report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The verdict line, e.g. `OK` or `Command exited with non-zero status (1)`.
    pub verdict: String,
    pub elapsed_seconds: u64,
    pub memory_kbytes: u64,
    pub cpu_seconds: f64,
}

/// Parses the text report at the end of `stderr` (the target's own stderr
/// comes first); `None` if there is none.
pub fn try_report(stderr: &[u8]) -> Option<Report> {
    let text = lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .rposition(|l| l.starts_with("elapsed time: "))?;
    if at == 0 || lines.len() < at + 3 {
        return None;
    }
    let field = |line: &str, prefix: &str, suffix: &str| -> Option<String> {
        Some(line.strip_prefix(prefix)?.strip_suffix(suffix)?.to_string())
    };
    Some(Report {
        verdict: lines[at - 1].to_string(),
        elapsed_seconds: field(lines[at], "elapsed time: ", " seconds")?
            .parse()
            .ok()?,
        memory_kbytes: field(lines[at + 1], "memory usage: ", " kbytes")?
            .parse()
            .ok()?,
        cpu_seconds: {
            let cpu = field(lines[at + 2], "cpu usage: ", " seconds")?;
            let (whole, frac) = cpu.split_once('.')?;
            if frac.len() != 3 || !whole.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            cpu.parse().ok()?
        },
    })
}

/// Like [`try_report`], panicking with the whole output when there is no
/// report.
pub fn report(out: &Output) -> Report {
    try_report(&out.stderr).unwrap_or_else(|| panic!("no text report on stderr\n{}", dump(out)))
}

/// Parses the JSON report: the last non-empty line of stderr.
pub fn try_json_report(stderr: &[u8]) -> Option<Json> {
    let text = lossy(stderr);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let value: Json = serde_json::from_str(line).ok()?;
    value.is_object().then_some(value)
}

/// Like [`try_json_report`], panicking with the whole output when there is
/// no JSON report.
pub fn json_report(out: &Output) -> Json {
    try_json_report(&out.stderr)
        .unwrap_or_else(|| panic!("no JSON report on stderr\n{}", dump(out)))
}

/// Asserts the frontend's exit status and the report's verdict line.
pub fn assert_verdict(out: &Output, verdict: &str, status: i32) -> Report {
    let r = report(out);
    assert_eq!(r.verdict, verdict, "wrong verdict\n{}", dump(out));
    assert_eq!(
        out.status.code(),
        Some(status),
        "wrong exit status of safeexec\n{}",
        dump(out)
    );
    r
}

pub fn stdout(out: &Output) -> String {
    lossy(&out.stdout)
}

pub fn stderr(out: &Output) -> String {
    lossy(&out.stderr)
}

/// Parses the `ids` fixture's line `uid=U gid=G euid=U egid=G groups=N`.
pub fn parse_ids(line: &str) -> Option<(u32, u32, u32, u32, i32)> {
    let mut values = line
        .split_whitespace()
        .map(|kv| kv.split_once('=').map(|(_, v)| v));
    let mut next = || values.next().flatten();
    Some((
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
    ))
}

// ---------------------------------------------------------------------------
// Processes

/// A process seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// Real uid.
    pub uid: u32,
    /// The State letter (R, S, D, Z, T, ...).
    pub state: char,
    pub name: String,
}

impl Proc {
    /// Neither a zombie nor dead: it can still run.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads one process's status; `None` if it is gone.
pub fn process(pid: u32) -> Option<Proc> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut proc = Proc {
        pid,
        uid: u32::MAX,
        state: '?',
        name: String::new(),
    };
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("Name:") {
            proc.name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("State:") {
            proc.state = v.trim().chars().next().unwrap_or('?');
        } else if let Some(v) = line.strip_prefix("Uid:") {
            proc.uid = v.split_whitespace().next()?.parse().ok()?;
        }
    }
    Some(proc)
}

/// Every process in /proc.
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .collect()
}

/// Live (non-zombie) processes whose real uid is `uid`.
pub fn live_processes_of(uid: u32) -> Vec<Proc> {
    processes()
        .into_iter()
        .filter(|p| p.uid == uid && p.alive())
        .collect()
}

/// Live processes whose real uid lies in the default policy's range.
pub fn live_sandbox_processes() -> Vec<Proc> {
    processes()
        .into_iter()
        .filter(|p| in_policy_range(p.uid) && p.alive())
        .collect()
}

/// The `/proc/PID/status` fields of a process's status text as (key, value).
pub fn status_field<'t>(status: &'t str, key: &str) -> Option<&'t str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parser_reads_the_four_lines_after_the_targets_stderr() {
        let stderr = b"target noise\nelapsed time: 9 seconds\nOK\nelapsed time: 3 seconds\nmemory usage: 1234 kbytes\ncpu usage: 0.250 seconds\n";
        let r = try_report(stderr).expect("a report");
        assert_eq!(
            r,
            Report {
                verdict: "OK".into(),
                elapsed_seconds: 3,
                memory_kbytes: 1234,
                cpu_seconds: 0.25
            }
        );
    }

    #[test]
    fn report_parser_rejects_malformed_reports() {
        assert!(try_report(b"").is_none());
        assert!(try_report(
            b"elapsed time: 1 seconds\nmemory usage: 1 kbytes\ncpu usage: 0.000 seconds\n"
        )
        .is_none());
        assert!(try_report(
            b"OK\nelapsed time: 1 seconds\nmemory usage: 1 kbytes\ncpu usage: 0.00 seconds\n"
        )
        .is_none());
        assert!(try_report(
            b"OK\nelapsed time: x seconds\nmemory usage: 1 kbytes\ncpu usage: 0.000 seconds\n"
        )
        .is_none());
    }

    #[test]
    fn json_report_parser_takes_the_last_line() {
        let v = try_json_report(b"noise\n{\"schema\":1,\"verdict\":\"ok\",\"uid\":5}\n\n")
            .expect("json");
        assert_eq!(v["verdict"], "ok");
        assert_eq!(v["uid"], 5);
        assert!(try_json_report(b"OK\n").is_none());
    }

    #[test]
    fn ids_line_parses() {
        assert_eq!(
            parse_ids("uid=5 gid=6 euid=5 egid=6 groups=0"),
            Some((5, 6, 5, 6, 0))
        );
        assert_eq!(parse_ids("uid=5"), None);
    }

    #[test]
    fn test_names_drop_crate_and_helper_fn() {
        assert_eq!(test_name_from("legacy::hello_world::here"), "hello_world");
        assert_eq!(test_name_from("legacy::m::t::{{closure}}::here"), "m::t");
    }

    #[test]
    fn policy_range_is_the_packaged_one() {
        let policy = include_str!("../../packaging/policy");
        let value = |key: &str| -> u32 {
            policy
                .lines()
                .find_map(|l| {
                    l.strip_prefix(key)?
                        .trim()
                        .strip_prefix('=')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("packaging/policy has no numeric {key}"))
        };
        assert_eq!(value("uid_base"), POLICY_UID_BASE);
        assert_eq!(value("uid_count"), POLICY_UID_COUNT);
        assert!(!in_policy_range(POLICY_UID_BASE - 1));
        assert!(in_policy_range(POLICY_UID_BASE + POLICY_UID_COUNT - 1));
        assert!(!in_policy_range(POLICY_UID_BASE + POLICY_UID_COUNT));
    }
}
