//! Which filesystem a lock lives on, and what follows from it: where its I/O may run and how it
//! recognises its files.
//!
//! On a local disk type (see `sys::fskind`) the first attempt of an async acquire and the work
//! of release and update run on the JS thread: tens of microseconds, less than a hop to another
//! thread and back. On network, FUSE and unknown filesystems any call can take seconds or hang,
//! so the async methods do all their I/O off the JS thread (the sync methods block by
//! contract). Finding out is itself I/O - `statfs` on a hung mount hangs too - so a lock whose
//! filesystem is not known yet counts as slow and learns it off the JS thread on its first
//! acquire. The answer is kept per directory for the life of the process, so later locks in a
//! known directory start on the right path at once.

use super::identity::Recognise;
use crate::sys::fskind::{self, FsInfo, FsKind};
use crate::sys::{self, FileId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

/// Directories remembered at most; past this the memory starts over (a program with that many
/// lock directories pays one `statfs` off the JS thread per directory again).
const REMEMBERED: usize = 1024;

fn known() -> &'static Mutex<HashMap<PathBuf, FsInfo>> {
    static KNOWN: OnceLock<Mutex<HashMap<PathBuf, FsInfo>>> = OnceLock::new();
    KNOWN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// What one lock knows of its filesystem.
#[derive(Default)]
pub(super) struct Place {
    info: OnceLock<FsInfo>,
    /// What the last acquisition found about inode numbers: 0 not looked, 1 stable, 2 made up.
    inodes: AtomicU8,
    /// The device of the file last held (the heartbeat thread it renews on).
    dev: AtomicU64,
}

/// A lock's filesystem as callers see it.
#[derive(Debug, Clone)]
pub struct Filesystem {
    pub info: FsInfo,
    /// Whether the lock name reports the inode our handle reports; `None` before that was
    /// looked at (never on a local disk type, whose inodes are stable by kind).
    pub stable_inodes: Option<bool>,
}

impl Place {
    /// The filesystem, if known, without any I/O (from this lock or the directory memory).
    pub fn known(&self, path: &Path) -> Option<&FsInfo> {
        if let Some(info) = self.info.get() {
            return Some(info);
        }
        let dir = sys::parent_dir(path);
        let found = known()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(dir)
            .cloned()?;
        Some(self.info.get_or_init(|| found))
    }

    /// The filesystem, asking the kernel if it is not known yet: may block on a hung mount.
    pub fn learn(&self, path: &Path) -> &FsInfo {
        if let Some(info) = self.known(path) {
            return info;
        }
        let dir = sys::parent_dir(path);
        // Cannot tell (no permission to look, a path that vanished): slow is the safe guess.
        let info = fskind::of_path(dir).unwrap_or(FsInfo {
            kind: FsKind::Unknown,
            name: String::new(),
        });
        let mut memory = known().lock().unwrap_or_else(|p| p.into_inner());
        if memory.len() >= REMEMBERED {
            memory.clear();
        }
        memory.insert(dir.to_path_buf(), info.clone());
        drop(memory);
        self.info.get_or_init(|| info)
    }

    /// Whether I/O here can run on the JS thread: a known local disk type.
    pub fn is_quick(&self, path: &Path) -> bool {
        self.known(path).is_some_and(|i| i.kind.is_local())
    }

    /// How this lock recognises files: as its last acquisition found, else by the kind (only a
    /// local disk type is trusted without looking).
    pub fn recognise(&self, path: &Path) -> Recognise {
        match self.inodes.load(Ordering::Acquire) {
            1 => Recognise::ByInode,
            2 => Recognise::ByContent,
            _ if self.is_quick(path) => Recognise::ByInode,
            _ => Recognise::ByContent,
        }
    }

    /// Records what an acquisition found: how files are recognised, and on which device.
    pub fn acquired(&self, how: Recognise, id: FileId) {
        let code = match how {
            Recognise::ByInode => 1,
            Recognise::ByContent => 2,
        };
        self.inodes.store(code, Ordering::Release);
        self.dev.store(id.dev, Ordering::Release);
    }

    pub fn dev(&self) -> u64 {
        self.dev.load(Ordering::Acquire)
    }

    pub fn describe(&self) -> Option<Filesystem> {
        let info = self.info.get()?.clone();
        let stable_inodes = match self.inodes.load(Ordering::Acquire) {
            1 => Some(true),
            2 => Some(false),
            _ if info.kind.is_local() => Some(true),
            _ => None,
        };
        Some(Filesystem {
            info,
            stable_inodes,
        })
    }
}
