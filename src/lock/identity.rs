//! How a lock recognises a file: by inode where the filesystem keeps inode numbers with a file,
//! by content where it does not.
//!
//! Release, takeover, update and the heartbeat's path check all ask "is the file at this name
//! the one I mean?". On a local disk the answer is the inode: we keep our file open, so its
//! number cannot be reused. But FUSE filesystems built on libfuse's high-level API (sshfs,
//! rclone and many more) and some network filesystems invent inode numbers per name: the same
//! file reports one number through the handle we opened under a temp name and another through
//! the lock name, and a hard link or rename gets a new one. Comparing numbers there would call
//! a healthy lease lost and make release leave our file behind.
//!
//! There, content decides instead: our lease carries an owner id made for this acquisition and
//! written by nobody else, and a lease judged stale is recognised by its exact bytes (a live
//! holder changes them with every heartbeat, so equal bytes are that record unchanged). Neither
//! is weaker than the inode for exclusion: a takeover still moves exactly one file atomically
//! and deletes it only when it is the record judged, and release deletes only a file with our
//! owner id.
//!
//! Which way applies is decided per lock: on a local disk type (see `sys::fskind`) inodes are
//! trusted as they are; elsewhere the acquisition checks whether the lock name reports the
//! inode our handle reports, and contenders that hold nothing compare content.

use super::renew::carries_owner;
use crate::sys::{self, OwnedFile, Snapshot};
use std::io;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognise {
    /// Inode numbers stay with a file across names: compare them (and bytes where judged).
    ByInode,
    /// Inode numbers may differ per name: compare the owner id or the bytes.
    ByContent,
}

/// What the acquisition found: does the lock name report the inode our handle reports?
pub(super) fn detect(path: &Path, file: &OwnedFile) -> Recognise {
    match sys::id_at(path) {
        Ok(Some(id)) if id == file.id => Recognise::ByInode,
        _ => Recognise::ByContent,
    }
}

/// Whether `path` names our file `file`, whose record carries `owner_id`. `Ok(false)` when it
/// names another file or nothing.
pub(super) fn names_ours(
    path: &Path,
    file: &OwnedFile,
    owner_id: &str,
    how: Recognise,
) -> io::Result<bool> {
    match how {
        Recognise::ByInode => Ok(sys::id_at(path)? == Some(file.id)),
        Recognise::ByContent => carries_at(path, owner_id),
    }
}

/// Whether the regular file at `path` is a lease of `owner_id` (read by path).
pub(super) fn carries_at(path: &Path, owner_id: &str) -> io::Result<bool> {
    Ok(match sys::snapshot(path) {
        Ok(Some(s)) => !s.oversized && carries_owner(&s.bytes, owner_id),
        Ok(None) | Err(sys::PathError::NotRegular(_)) => false,
        Err(sys::PathError::Io(e)) => return Err(e),
    })
}

/// Whether `path` names `file`, whose content is exactly `record` (a file we just wrote).
pub(super) fn names_record(path: &Path, file: &OwnedFile, record: &[u8], how: Recognise) -> bool {
    match how {
        Recognise::ByInode => sys::id_at(path).ok().flatten() == Some(file.id),
        Recognise::ByContent => {
            matches!(sys::snapshot(path), Ok(Some(s)) if !s.oversized && s.bytes == record)
        }
    }
}

/// Whether `path` holds exactly the file judged in `snap`, unchanged since. The snapshot keeps
/// the judged file open, so its inode cannot have been freed and reused by another file: the
/// same id is the same file, and the same bytes mean nobody wrote to it since.
pub(super) fn is_snapshot(path: &Path, snap: &Snapshot, how: Recognise) -> bool {
    let Ok((file, id)) = sys::open_private(path) else {
        return false;
    };
    if how == Recognise::ByInode && id != snap.id {
        return false;
    }
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    match sys::read_capped(&file, len) {
        Ok((bytes, oversized)) => oversized == snap.oversized && bytes == snap.bytes,
        Err(_) => false,
    }
}
