//! Cross-process coordination of writers to one store: the store lock and the rule that
//! tells a leftover temporary file from one still being written.
//!
//! The lock is an advisory `flock` on `<root>/.lock`, held exclusively around every
//! read-modify-write of `index.json` and around `gc`'s walk and delete, and by an import from
//! the moment it moves its blobs into `blobs/` until they are named. So two imports never
//! lose each other's names, and `gc` never deletes blobs an import is about to name.
//!
//! Temporary names carry the creating process's PID (`<kind>-<pid>-<random>`): an entry
//! whose process is gone is a leftover of killed work, whatever its age. PIDs are only
//! meaningful within one PID namespace; a store shared across namespaces should be collected
//! from the one its writers run in.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{Store, StoreError};

const LOCK_FILE: &str = ".lock";

/// The store's exclusive lock; released when dropped. Functions that must run under it take
/// a `&StoreLock`, so the type system shows where it is held.
#[derive(Debug)]
pub struct StoreLock {
    _flock: Flock<File>,
}

impl Store {
    /// Waits for and takes the store's exclusive lock.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let path = self.root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("open lock file", &path))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(flock) => return Ok(StoreLock { _flock: flock }),
                // A signal interrupted the wait: wait again.
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(StoreError::io("lock", &path)(e.into())),
            }
        }
    }
}

/// `<kind>-<pid>-`: the prefix of a temporary name made by this process.
pub(crate) fn temp_prefix(kind: &str) -> String {
    format!("{kind}-{}-", std::process::id())
}

/// The PID in a temporary name made with [`temp_prefix`] (after `kind`), if it has one.
pub(crate) fn temp_owner(name: &str, kind: &str) -> Option<i32> {
    let rest = name.strip_prefix(kind)?.strip_prefix('-')?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse::<i32>().ok().filter(|p| *p > 0)
}

/// Whether no process with this PID exists (a process of another user still counts as alive).
pub(crate) fn process_is_gone(pid: i32) -> bool {
    matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// Whether `path` names a temporary entry (of one of `kinds`) whose creating process is gone.
pub(crate) fn is_dead_temp(path: &Path, kinds: &[&str]) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    kinds.iter().find_map(|k| temp_owner(name, k)).is_some_and(process_is_gone)
}
