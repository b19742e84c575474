//! Platforms without a notification backend yet (macOS, Windows, the BSDs): nothing is
//! watched and every waiter polls, exactly as often as before notifications existed. This is
//! the documented behaviour there, not a silent degradation: `Unwatched::Unsupported`.
//!
//! The backends that would fit: kqueue `EVFILT_VNODE` (`NOTE_WRITE` on the directory) and
//! `EVFILT_PROC` (`NOTE_EXIT`) on macOS and the BSDs; `ReadDirectoryChangesW` and a process
//! handle waited on with `WaitForMultipleObjects` on Windows. Each would implement the same
//! two functions and two handle types as `linux.rs`. One trap for kqueue: it reports that a
//! directory changed, not which name, and every waiter's attempt writes and removes a private
//! temp name there (no `O_TMPFILE` on macOS) - so a woken waiter must first check whether the
//! lock path still names the file it judged, or waiters would wake each other without end.

use super::{Bell, Unwatched};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

pub struct DirSub(());

impl DirSub {
    pub fn is_gone(&self) -> bool {
        true
    }
}

pub struct PidSub(());

impl PidSub {
    pub fn has_fired(&self) -> bool {
        true
    }
}

pub fn watch_dir(_dir: &Path, _name: &OsStr, _bell: &Arc<Bell>) -> Result<DirSub, Unwatched> {
    Err(Unwatched::Unsupported)
}

pub fn watch_pid(_pid: i64, _bell: &Arc<Bell>) -> Result<PidSub, Unwatched> {
    Err(Unwatched::Unsupported)
}
