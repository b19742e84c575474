//! Release: removing our lock file, and never anybody else's.
//!
//! # Why release cannot delete a new owner's lock
//! Release reads our file through the handle we keep (someone may have written their record
//! into it: then it is theirs). While our lease is fresh nobody may take it over, so the path
//! is still ours; past that, it first checks that the path still names our file (we keep it
//! open, so its inode cannot be reused; where inode numbers are made up per name, the file
//! with our owner id - see `identity`). Then it renames the path to a private name - atomic,
//! so what moves is exactly one file - and deletes it only if the moved file is ours. If a
//! takeover happened in between, the moved file is the new owner's and it is linked straight
//! back.

use super::error::LockError;
use super::identity;
use super::options::Options;
use super::renew::{carries_owner, Holding};
use crate::owner;
use crate::sys;
use std::io;
use std::path::Path;
use std::time::Duration;

/// Removes the lock file of `h` if it is still ours. `Ok(true)` when it removed it, `Ok(false)`
/// when there was nothing of ours to remove. On an error the file is still ours and still
/// there, and the holding comes back so that the caller can keep holding and try again.
pub(super) fn release(
    path: &Path,
    h: Box<Holding>,
    opts: &Options,
) -> Result<bool, (Box<Holding>, LockError)> {
    // Someone may have written their own record into our very file (the Go package's tests
    // do exactly that): then it is theirs, whatever its inode.
    if let Ok(current) = h.file.read_expecting(h.written.len()) {
        if current != h.written && !carries_owner(&current, &h.lease.owner_id) {
            return Ok(false);
        }
    }
    // Nobody may take a lease over while it is fresh, so within one stale threshold of our
    // last confirmed heartbeat the path is still ours and the claim below can go first. Past
    // that, look before claiming, so that a lock already taken from us is not even moved for
    // a moment.
    let since_ok = Duration::from_nanos(owner::clock_nanos().saturating_sub(h.last_ok));
    if since_ok + opts.heartbeat_interval >= opts.stale_threshold {
        match identity::names_ours(path, &h.file, &h.lease.owner_id, h.how) {
            Ok(true) => {}
            // Not ours any more (lost, or removed by hand): leave it alone.
            _ => return Ok(false),
        }
    }
    crate::faults::point("release.before-claim");
    let moved = move_aside(path, |private| {
        crate::faults::point("release.after-claim");
        identity::names_ours(private, &h.file, &h.lease.owner_id, h.how).unwrap_or(false)
    });
    moved.map_err(|e| (h, LockError::io("rename", path, e)))
}

/// Moves the lock at `path` to a private name - atomic, so exactly one file moves - and
/// deletes it there if `ours` says the moved file is ours. `Ok(true)` when it deleted it;
/// `Ok(false)` when nothing was there, or what moved was not ours: then a takeover slipped in
/// between the caller's check and the move, and that lease goes back without replacing
/// anything; if the path was taken meanwhile it stays at the private name - never deleted.
pub(super) fn move_aside(path: &Path, ours: impl FnOnce(&Path) -> bool) -> io::Result<bool> {
    let private = sys::private_name(path, "release");
    match sys::rename(path, &private) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    if ours(&private) {
        let _ = sys::remove_file(&private);
        return Ok(true);
    }
    if std::fs::hard_link(&private, path).is_ok() {
        let _ = sys::remove_file(&private);
    }
    Ok(false)
}
