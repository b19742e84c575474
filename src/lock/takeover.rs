//! Takeover: replacing a lock file judged stale (or whose owner is proven dead) with our lease.
//!
//! # Why takeover is race-free
//! A contender that finds the lock stale (or its owner dead) keeps a snapshot of what it judged:
//! the file's identity (device, inode) and its bytes. It first takes the takeover claim - a
//! small file `.<name>.takeover` beside the lock, published like a lock - so contenders of this
//! package take over one at a time (a claim whose taker died, or older than [`CLAIM_STALE`], is
//! broken). It then writes its own complete lease to a private name and swaps that name with
//! the lock path in one `renameat2(RENAME_EXCHANGE)`. The lock path is never empty, so no
//! third contender can slip a new lock in. The file that came out of the path is compared with
//! the snapshot: same inode and same bytes means it is the very file judged stale, unchanged
//! since (a live holder rewrites its heartbeat in place, which changes the bytes), and it is
//! deleted - the takeover is complete. Anything else means somebody else won (a Go contender,
//! which takes no claim) or the holder woke up: the exchange is undone (the path gets its file
//! back), only our own file is deleted, and we report contention. Without the claim, undos of
//! several contenders could chain and hand the path to a loser; with it, an exchange is never
//! undone while another of ours is in flight - unless a taker stalled past `CLAIM_STALE` with
//! the claim in hand (a frozen process); then the chain can leave an unrenewed lease at the
//! path (it goes stale) and a file at a private name, but still deletes nobody's fresh lock.
//! Nobody deletes a lock that was fresh when deleted: the only deletion is of a file proven to be the stale one, after it has left the
//! path. The holder whose file is briefly swapped out may see its path name another file for a
//! few microseconds; its heartbeat tolerates that for [`DISPLACED_GRACE`](super::renew::DISPLACED_GRACE) before it calls the
//! lease lost. Where the exchange is not supported (not Linux, or a filesystem without it) the
//! claim is a `rename` of the stale file to a private name, verified the same way; a wrong
//! claim is put back with `link`, which cannot overwrite a newer lock. That fallback leaves the
//! path empty for the microseconds of a wrong claim, which is documented as a weaker guarantee.

use super::error::{Blocked, LockError};
use super::options::Options;
use crate::lease;
use crate::owner::{self, Liveness};
use crate::sys::{self, LockDir, OwnedFile, PathError, Snapshot};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A takeover claim older than this is broken: its taker stalled or died mid-takeover.
pub const CLAIM_STALE: Duration = Duration::from_secs(1);

/// Replaces the stale file `snap` with our lease; `None` if it changed under us or another
/// contender is taking it over right now. See the module documentation for why this is
/// safe with any number of contenders.
pub(super) fn take_over(
    path: &Path,
    opts: &Options,
    snap: &Snapshot,
    bytes: &[u8],
) -> Result<Option<OwnedFile>, LockError> {
    let Some(claim) = claim(path, opts.file_mode)? else {
        return Ok(None);
    };
    crate::faults::point("takeover.after-claim");
    let taken = take_over_claimed(path, opts, snap, bytes);
    claim.give_up();
    taken
}

fn take_over_claimed(
    path: &Path,
    opts: &Options,
    snap: &Snapshot,
    bytes: &[u8],
) -> Result<Option<OwnedFile>, LockError> {
    // The claim may have come after another contender's takeover finished: then the path no
    // longer holds the judged file, and exchanging would only show readers our lease for a
    // moment and make the new holder's heartbeat look twice.
    if sys::id_at(path).ok().flatten() != Some(snap.id) {
        return Ok(None);
    }
    let (temp, ours) = sys::write_private(path, bytes, opts.file_mode)
        .map_err(|e| LockError::io("create", path, e))?;
    crate::faults::point("takeover.before-exchange");
    match sys::exchange(&temp, path) {
        Ok(true) => {}
        Ok(false) => {
            let _ = std::fs::remove_file(&temp);
            return take_over_by_rename(path, opts, snap, bytes);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(LockError::io("rename", path, e));
        }
    }
    crate::faults::point("takeover.after-exchange");
    // `temp` now names what was at the path.
    if is_snapshot(&temp, snap) {
        let _ = std::fs::remove_file(&temp);
        return Ok(Some(ours));
    }
    // Somebody else's lock (a Go contender that does not take the claim), or a holder that
    // woke up: undo, and delete only our own file - never one that came back instead.
    match sys::exchange(&temp, path) {
        Ok(true) => {
            if sys::id_at(&temp).ok().flatten() == Some(ours.id) {
                let _ = std::fs::remove_file(&temp);
            }
        }
        _ => {
            // The path vanished meanwhile: put theirs back if nothing else appeared.
            if std::fs::hard_link(&temp, path).is_ok() {
                let _ = std::fs::remove_file(&temp);
            }
        }
    }
    Ok(None)
}

/// Takes the right to take this lock over: a small file beside it, published like a lock
/// (`.<name>.takeover`). Contenders of this package take over one at a time, so an exchange
/// is never undone while another contender's exchange is in flight - the chained undo that
/// could otherwise hand the path to a loser and delete the winner's file. `None`: somebody
/// else holds the claim; try again after the retry delay. A claim whose taker died, or
/// older than [`CLAIM_STALE`] (a takeover takes microseconds), is broken.
fn claim(lock_path: &Path, file_mode: u32) -> Result<Option<Claim>, LockError> {
    let path = sys::sibling(lock_path, "takeover");
    let record = owner::new_lease(None).encode();
    for _ in 0..2 {
        match sys::publish(&path, &record, file_mode) {
            Ok(file) => return Ok(Some(Claim { path, file })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if sys::is_transient_create_error(&e) => return Ok(None),
            Err(e) => return Err(LockError::io("create", &path, e)),
        }
        let snap = match sys::snapshot(&path) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            // Never a claim of ours: a directory, FIFO or link planted there would block every
            // takeover for good. Moved aside (kept, never deleted), where we may.
            Err(PathError::NotRegular(kind)) => {
                move_aside(lock_path, &path, kind)?;
                continue;
            }
            Err(_) => return Ok(None),
        };
        let age = SystemTime::now()
            .duration_since(snap.modified)
            .unwrap_or(Duration::ZERO);
        let taker_dead =
            matches!(lease::parse(&snap.bytes), Ok(l) if owner::liveness(&l) == Liveness::Dead);
        if !taker_dead && age < CLAIM_STALE {
            return Ok(None);
        }
        if let Err(e) = remove_if_unchanged(&path, &snap) {
            if refused(&e) {
                return Err(LockError::NotMovable(Blocked {
                    owner: sys::owner_at(&path),
                    path,
                    why: "it is a takeover claim left behind that this user may not remove",
                }));
            }
        }
    }
    Ok(None)
}

/// The system's answer when the sticky bit (or a permission) stops a rename.
fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

/// Moves a thing that is not a regular file away from the claim name, to a private name beside
/// the lock; says so when this user may not.
fn move_aside(lock_path: &Path, claim: &Path, kind: sys::FileKind) -> Result<(), LockError> {
    let aside = sys::private_name(lock_path, "aside");
    match std::fs::rename(claim, &aside) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if refused(&e) => Err(LockError::NotMovable(Blocked {
            owner: sys::owner_at(claim),
            path: claim.to_path_buf(),
            why: match kind {
                sys::FileKind::Directory => "it is a directory at the takeover-claim name that this user may not move aside",
                sys::FileKind::Symlink => "it is a symlink at the takeover-claim name that this user may not move aside",
                _ => "it is not a regular file, at the takeover-claim name, and this user may not move it aside",
            },
        })),
        Err(e) => Err(LockError::io("rename", claim, e)),
    }
}

/// Why the stale lock at `path` may not be moved by us: its owner and the sticky bit.
pub(super) fn sticky(path: &Path, owner: u32) -> Blocked {
    Blocked {
        path: path.to_path_buf(),
        owner: Some(owner),
        why: "its directory has the sticky bit, so only the file's owner, the directory's owner or root may move it",
    }
}

/// What would stop this process taking over the lock `name` in `dir` (for `inspect`): the lock
/// file itself, or something at the claim name it may not move or remove.
pub(super) fn blocked(dir: &LockDir, name: &OsStr) -> Option<Blocked> {
    if let Some(owner) = sys::sticky_owner(dir, name) {
        return Some(sticky(&dir.join(name), owner));
    }
    let claim = sys::sibling(Path::new(name), "takeover");
    let claim_name = claim.file_name().unwrap_or_default();
    let owner = sys::sticky_owner(dir, claim_name)?;
    let at = dir.join(claim_name);
    let kind = match sys::snapshot(&at) {
        Err(PathError::NotRegular(kind)) => Some(kind),
        Ok(Some(s))
            if SystemTime::now()
                .duration_since(s.modified)
                .unwrap_or(Duration::ZERO)
                >= CLAIM_STALE =>
        {
            None
        }
        _ => return None,
    };
    Some(Blocked {
        path: at,
        owner: Some(owner),
        why: match kind {
            Some(_) => "it is not a regular file, at the takeover-claim name, and this user may not move it aside",
            None => "it is a takeover claim left behind that this user may not remove",
        },
    })
}

/// The fallback claim where an atomic exchange is not available.
fn take_over_by_rename(
    path: &Path,
    opts: &Options,
    snap: &Snapshot,
    bytes: &[u8],
) -> Result<Option<OwnedFile>, LockError> {
    let private = sys::private_name(path, "claim");
    match std::fs::rename(path, &private) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LockError::io("rename", path, e)),
    }
    if !is_snapshot(&private, snap) {
        // Not the judged file: back it goes, or it stays at the private name if the path was
        // taken meanwhile - never deleted.
        if std::fs::hard_link(&private, path).is_ok() {
            let _ = std::fs::remove_file(&private);
        }
        return Ok(None);
    }
    let _ = std::fs::remove_file(&private);
    match sys::publish_creating_parents(path, bytes, opts.file_mode, opts.dir_mode) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(LockError::io("create", path, e)),
    }
}

/// The right to take one lock over; see [`claim`].
struct Claim {
    path: PathBuf,
    file: OwnedFile,
}

impl Claim {
    fn give_up(self) {
        if sys::id_at(&self.path).ok().flatten() == Some(self.file.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the file at `path` if it is still the one in `snap`: claimed by a rename first, so
/// a newer file is never removed, and put back if the claim caught one.
fn remove_if_unchanged(path: &Path, snap: &Snapshot) -> io::Result<()> {
    let private = sys::private_name(path, "stale");
    std::fs::rename(path, &private)?;
    // Ours to delete if it is the stale one; otherwise it goes back (unless something newer
    // took the name meanwhile, and then it stays at the private name rather than be lost).
    if is_snapshot(&private, snap) || std::fs::hard_link(&private, path).is_ok() {
        let _ = std::fs::remove_file(&private);
    }
    Ok(())
}

/// Whether `path` (a private name) holds exactly the file judged in `snap`. The snapshot keeps
/// the judged file open, so its inode cannot have been freed and reused by another file: the
/// same id is the same file, and the same bytes mean nobody wrote to it since.
fn is_snapshot(path: &Path, snap: &Snapshot) -> bool {
    let Ok((file, id)) = sys::open_private(path) else {
        return false;
    };
    if id != snap.id {
        return false;
    }
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    match sys::read_capped(&file, len) {
        Ok((bytes, oversized)) => oversized == snap.oversized && bytes == snap.bytes,
        Err(_) => false,
    }
}
