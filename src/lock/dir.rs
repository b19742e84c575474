//! The lock's directory: resolved once with the checks of [`sys::open_lock_dir`], held open
//! while the lock is held or acquired, and every name reached through it, so nothing is walked
//! again between a check and a use.

use super::{lock, Inner, LockError};
use crate::sys::{self, LockDir, ResolveError};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Inner {
    pub(super) fn name(&self) -> &OsStr {
        self.path.file_name().unwrap_or_default()
    }

    /// The lock's directory: the one held open, unless it was removed; else resolved (and
    /// created) now, with the checks of [`sys::open_lock_dir`].
    pub(super) fn dir(&self, create: bool) -> Result<Arc<LockDir>, LockError> {
        let mut cached = lock(&self.dir);
        if let Some(d) = cached.as_ref().filter(|d| !d.is_removed()) {
            return Ok(d.clone());
        }
        let create = create.then_some(self.opts.dir_mode);
        let d = Arc::new(open_dir(
            &self.path,
            create,
            self.opts.allow_untrusted_parents,
        )?);
        *cached = Some(d.clone());
        Ok(d)
    }

    /// Closes the lock's directory; only while not held (the caller holds the state lock or
    /// knows).
    pub(super) fn let_go_of_dir(&self) {
        *lock(&self.counter) = None;
        *lock(&self.dir) = None;
    }

    /// Where the lock file is named while held: through the directory held open.
    pub(super) fn at(&self) -> PathBuf {
        match lock(&self.dir).as_ref() {
            Some(d) => d.join(self.name()),
            None => self.path.clone(),
        }
    }

    /// `e` with the path the user gave in place of the held directory's prefix.
    pub(super) fn shown(&self, e: LockError) -> LockError {
        match lock(&self.dir).as_ref() {
            Some(d) => shown(d, &self.path, e),
            None => e,
        }
    }
}

/// `e` with the directory of `user_path` (the lock path the user gave) in place of the prefix of
/// the held directory `d`.
pub(super) fn shown(d: &LockDir, user_path: &Path, e: LockError) -> LockError {
    let user_dir = sys::parent_dir(user_path);
    let fix = |p: PathBuf| d.relative(&p).map_or(p.clone(), |r| user_dir.join(r));
    match e {
        LockError::Io { op, path, source } => LockError::Io {
            op,
            path: fix(path),
            source,
        },
        LockError::NotACounter { path, why } => LockError::NotACounter {
            path: fix(path),
            why,
        },
        LockError::NotMovable(mut b) => {
            b.path = fix(b.path);
            LockError::NotMovable(b)
        }
        other => other,
    }
}

/// The directory of the lock at `path`, opened without creating it, and the lock's name in it;
/// `None` when the directory does not exist.
pub(super) fn locate(path: &Path, trust: bool) -> Result<Option<(LockDir, PathBuf)>, LockError> {
    match open_dir(path, None, trust) {
        Ok(dir) => {
            let at = dir.join(path.file_name().unwrap_or_default());
            Ok(Some((dir, at)))
        }
        Err(LockError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Opens the directory of the lock at `path` (see [`sys::open_lock_dir`]).
pub(super) fn open_dir(
    path: &Path,
    create: Option<u32>,
    trust: bool,
) -> Result<LockDir, LockError> {
    sys::open_lock_dir(sys::parent_dir(path), create, trust).map_err(|e| match e {
        ResolveError::Untrusted(u) => LockError::Untrusted(u),
        ResolveError::Io(e, p) => {
            LockError::io(if create.is_some() { "mkdir" } else { "open" }, &p, e)
        }
    })
}
