//! Reading a lock without taking it: what is at the path, judged as acquire judges it, and what
//! would stop this process taking it over.

use super::dir::locate;
use super::{judge, takeover, Assessment, Blocked, LockError, Thresholds};
use crate::sys::{self, PathError, Snapshot};
use std::path::Path;

/// Reads what is at `path` without following or opening anything but a regular file: `None`
/// when nothing is there.
pub(super) fn look(path: &Path) -> Result<Option<Snapshot>, LockError> {
    match sys::snapshot(path) {
        Ok(found) => Ok(found),
        Err(PathError::NotRegular(kind)) => Err(LockError::NotAFile { kind }),
        Err(PathError::Io(e)) => Err(LockError::io("read", path, e)),
    }
}

/// What `inspect` found: the judgement, and what would stop this process taking it over.
pub struct Inspected {
    pub found: Assessment,
    pub blocked: Option<Blocked>,
}

/// Reads the lock at `path` without taking it: `None` when free. `trust`: the caller's
/// `allow_untrusted_parents`.
pub fn inspect(
    path: &Path,
    limits: Thresholds,
    trust: bool,
) -> Result<Option<Inspected>, LockError> {
    let Some((dir, at)) = locate(path, trust)? else {
        return Ok(None);
    };
    let name = path.file_name().unwrap_or_default();
    let found = match look(&at) {
        Ok(found) => found,
        Err(LockError::Io { op, source, .. }) => return Err(LockError::io(op, path, source)),
        Err(e) => return Err(e),
    };
    let Some(snap) = found else {
        return Ok(None);
    };
    let found = judge::assess(&snap, limits, None);
    if let Assessment::NotALease { size, head } = found {
        return Err(not_a_lease(path, size, head));
    }
    Ok(Some(Inspected {
        found,
        blocked: takeover::blocked(&dir, name).map(|mut b| {
            b.path = sys::parent_dir(path).join(b.path.file_name().unwrap_or_default());
            b
        }),
    }))
}

pub(super) fn not_a_lease(path: &Path, size: u64, head: Vec<u8>) -> LockError {
    LockError::NotALease {
        path: path.to_path_buf(),
        size,
        head,
    }
}
