//! Directories and files the tests create, and remove again when they are
//! dropped, also after a failure: scratch directories of the test user under
//! PREFIX/work, and paths on the host's own file system (under /tmp, /run,
//! ...) that a test plants or that a run must not leave behind.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Env, Ids};

impl Env {
    /// A new scratch directory under PREFIX/work, owned by the test user,
    /// mode 0755; removed when dropped.
    pub fn scratch(&self, name: &str) -> Scratch {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.work.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let scratch = Scratch { path, owner: self.test_user };
        scratch.own(&scratch.path, 0o755);
        scratch
    }
}

/// A path as a &str, for command lines.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
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
        self.path.join(rel).to_str().expect("scratch paths are UTF-8").to_string()
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
                let parent_rel =
                    parent.strip_prefix(&self.path).expect("inside the scratch directory");
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

/// A path on the host's own file system (under /tmp, /var/tmp, /dev/shm,
/// /run, ...), unique to this test process: a file or directory the test
/// makes there, or one that a run must not leave there. Removed (the whole
/// tree, as root) when dropped.
#[derive(Debug)]
pub struct HostPath(PathBuf);

impl HostPath {
    /// `DIR/safeexec-test-WHAT-PID`, with nothing there yet: the same name
    /// in each directory (the private directories of a run are one tmpfs,
    /// where those names are one file).
    pub fn new(dir: &str, what: &str) -> Self {
        let path = PathBuf::from(format!("{dir}/safeexec-test-{what}-{}", std::process::id()));
        remove_tree(&path);
        HostPath(path)
    }

    /// A new directory `DIR/safeexec-test-WHAT-N-PID` owned by `owner`, of
    /// `mode`.
    pub fn dir(dir: &str, what: &str, owner: Ids, mode: u32) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let host = HostPath::new(dir, &format!("{what}-{n}"));
        fs::create_dir(&host.0)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", host.0.display()));
        chown(&host.0, Some(owner.uid), Some(owner.gid)).expect("chown a host directory");
        fs::set_permissions(&host.0, fs::Permissions::from_mode(mode))
            .expect("chmod a host directory");
        host
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path as a string, for command lines.
    pub fn str(&self) -> &str {
        self.0.to_str().expect("host paths are UTF-8")
    }

    pub fn exists(&self) -> bool {
        self.0.exists()
    }

    /// Every entry below this directory, recursively, sorted.
    pub fn entries(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut queue = vec![self.0.clone()];
        while let Some(d) = queue.pop() {
            for e in fs::read_dir(&d).expect("list the directory").flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    queue.push(e.path());
                }
                found.push(e.path());
            }
        }
        found.sort();
        found
    }
}

impl Drop for HostPath {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

/// A listening unix socket of the host that any user may connect to.
pub struct HostSocket {
    _listener: UnixListener,
    pub path: HostPath,
}

/// A [`HostSocket`] in the host's directory `dir`.
pub fn host_socket(dir: &str) -> HostSocket {
    let path = HostPath::new(dir, "sock");
    let listener = UnixListener::bind(path.path()).expect("bind the host's socket");
    fs::set_permissions(path.path(), fs::Permissions::from_mode(0o777)).expect("chmod the socket");
    HostSocket { _listener: listener, path }
}

/// Removes a file, or a directory with everything in it; nothing there is
/// fine.
fn remove_tree(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}
