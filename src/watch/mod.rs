//! Wake-ups for waiters: a waiting `acquire` sleeps until something that could free the lock
//! has happened, instead of looking again on a fixed short poll.
//!
//! Three things can free a held lock, and each has its own wake-up:
//! - the lock file is removed, renamed or replaced: a change notification on the lock's
//!   directory, filtered to the lock's own name (the holder's in-place heartbeat writes and
//!   everybody's private temp names wake nobody);
//! - the holder process ends: a handle on that process that becomes ready when it exits;
//! - the lease goes stale: a deadline the caller computes from the lease itself.
//!
//! A waiter owns one [`Bell`] and sleeps on it; every source rings it. The sources are shared
//! per process: one watch per directory whatever the number of waiters and locks in it, one
//! background thread for all of them, and none of it exists while nobody waits - the first
//! waiter sets the watch up, the last one to leave removes it, and the thread ends with the
//! last watch. The thread is a plain native thread: it never holds Node's event loop open.
//!
//! Notifications are an accelerator, never the only way out. A waiter whose directory is
//! watched still looks again on a slow safety poll, so a notification that is lost (a queue
//! overflow, a filesystem that does not report changes made elsewhere) delays a hand-over but
//! never hangs it. Where no watch can be
//! set up - another platform, a full watch table, notifications switched off with
//! `LEASELOCK_WATCH=off`, a filesystem whose notifications are not trusted - the waiter polls
//! as often as it did before notifications existed.
//!
//! Platforms: Linux uses inotify for directories and pidfd for processes (`linux.rs`);
//! Windows `ReadDirectoryChangesW` and process handles (`windows.rs`); macOS kqueue
//! (`kqueue.rs`: `EVFILT_VNODE` on the directory, `EVFILT_PROC` on the holder; type-checked
//! only, never run by this project's CI). Other platforms have no backend (`none.rs`): every
//! subscription answers [`Unwatched::Unsupported`] and waiters poll.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

#[cfg(any(target_os = "linux", target_os = "macos", windows))]
mod pids;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as backend;

#[cfg(all(test, target_os = "linux"))]
mod linux_tests;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
mod windows_read;
#[cfg(windows)]
use windows as backend;

#[cfg(target_os = "macos")]
mod kqueue;
#[cfg(target_os = "macos")]
use kqueue as backend;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod none;
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
use none as backend;

/// What one waiter sleeps on. Anyone may ring it: a directory change, a holder's exit, a
/// cancellation. Rings are counted, so a ring between a look and the sleep after it is never
/// lost: the sleeper passes the count it saw before it looked.
#[derive(Default)]
pub struct Bell {
    rings: Mutex<u64>,
    cv: Condvar,
    /// An async task woken by every ring too (a waiter on the file lease store).
    task: Option<Arc<tokio::sync::Notify>>,
}

impl Bell {
    pub fn new() -> Arc<Bell> {
        Arc::new(Bell::default())
    }

    /// A bell that also wakes `task`: a ring while nobody awaits it is kept for the next await.
    pub fn waking(task: Arc<tokio::sync::Notify>) -> Arc<Bell> {
        Arc::new(Bell {
            task: Some(task),
            ..Bell::default()
        })
    }

    pub fn ring(&self) {
        *lock(&self.rings) += 1;
        self.cv.notify_all();
        if let Some(task) = &self.task {
            task.notify_one();
        }
    }

    /// How many times it has rung so far.
    pub fn rings(&self) -> u64 {
        *lock(&self.rings)
    }

    /// Sleeps until the bell rings after `seen` (see [`Bell::rings`]) or `until` passes
    /// (`None`: no limit). True when it rang.
    pub fn sleep(&self, seen: u64, until: Option<Instant>) -> bool {
        let mut rings = lock(&self.rings);
        loop {
            if *rings != seen {
                return true;
            }
            let left = match until {
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    Some(left)
                }
                None => None,
            };
            rings = match left {
                Some(left) => match self.cv.wait_timeout(rings, left) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                },
                None => match self.cv.wait(rings) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                },
            };
        }
    }
}

/// A poisoned mutex only means another thread panicked while holding it; everything guarded
/// here is updated in single steps and stays consistent, so carry on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a directory or a process is not watched; the waiter polls instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unwatched {
    /// No notification backend on this platform.
    Unsupported,
    /// The directory does not exist (yet): the next attempt creates it.
    Missing,
    /// The process is already gone: look again at once.
    Exited,
    /// The system refused (a full watch table, too many open files, ...): the OS error name.
    Refused(String),
}

/// Whether notifications (directories and processes) are switched off for this process
/// (`LEASELOCK_WATCH=off`, read once): waiters then poll as if no backend existed. For
/// filesystems that report changes wrongly in a way no check here can see.
pub fn disabled() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| std::env::var_os("LEASELOCK_WATCH").is_some_and(|v| v == "off" || v == "0"))
}

/// The identity of a directory when it was watched, to notice that the path now names another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirId {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
fn dir_id(dir: &Path) -> std::io::Result<DirId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    Ok(DirId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

#[cfg(windows)]
fn dir_id(dir: &Path) -> std::io::Result<DirId> {
    windows::dir_id(dir)
}

#[cfg(not(any(unix, windows)))]
fn dir_id(dir: &Path) -> std::io::Result<DirId> {
    // No backend here: nothing is ever watched.
    std::fs::metadata(dir).map(|_| DirId { dev: 0, ino: 0 })
}

/// One waiter's watches for one lock: its directory (changes to the lock's name) and, while a
/// provably live process holds it, that process's exit. Set up lazily by [`Waiter::arm`],
/// removed when the waiter is dropped.
pub struct Waiter {
    bell: Arc<Bell>,
    watch_dir: bool,
    dir_sub: Option<(DirId, backend::DirSub)>,
    pid_sub: Option<(i64, backend::PidSub)>,
}

/// What [`Waiter::arm`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Armed {
    /// Something was set up (or set up again) just now. A change between the caller's last
    /// look and this moment was not seen by it: look again before sleeping.
    pub fresh: bool,
    /// The lock's directory is watched: changes to the lock's name ring the bell.
    pub dir: bool,
    /// The holder's exit rings the bell.
    pub holder: bool,
}

impl Waiter {
    /// A waiter that rings `bell`. No system call yet. `watch_dir`: whether notifications on
    /// the lock's filesystem are trusted; where they are not, the directory is never watched.
    pub fn new(watch_dir: bool, bell: Arc<Bell>) -> Waiter {
        Waiter {
            bell,
            watch_dir: watch_dir && !disabled(),
            dir_sub: None,
            pid_sub: None,
        }
    }

    pub fn bell(&self) -> &Arc<Bell> {
        &self.bell
    }

    /// Makes sure the directory of `lock_path` - the path the last look used, through the
    /// directory the lock holds open - is watched (the same directory as when the watch was set
    /// up: when the looks have moved to another one, that one is watched), and that `holder`'s exit is watched when given - a pid proven live in
    /// our own PID namespace; `None` drops the process watch.
    pub fn arm(&mut self, lock_path: &Path, holder: Option<i64>) -> Armed {
        let mut fresh = false;
        let holder = holder.filter(|_| !disabled());
        if self.watch_dir {
            fresh |= self.arm_dir(lock_path);
        }
        let holder_ok = match holder {
            None => {
                self.pid_sub = None;
                false
            }
            Some(pid) if matches!(&self.pid_sub, Some((p, s)) if *p == pid && !s.has_fired()) => {
                true
            }
            Some(pid) => {
                self.pid_sub = None;
                match backend::watch_pid(pid, &self.bell) {
                    Ok(sub) => {
                        self.pid_sub = Some((pid, sub));
                        fresh = true;
                        true
                    }
                    // Gone before we could watch it: that is news, look again now.
                    Err(Unwatched::Exited) => {
                        fresh = true;
                        false
                    }
                    Err(_) => false,
                }
            }
        };
        Armed {
            fresh,
            dir: self.dir_sub.is_some(),
            holder: holder_ok,
        }
    }

    /// True when a watch was (re)created just now.
    fn arm_dir(&mut self, lock_path: &Path) -> bool {
        let dir = crate::sys::parent_dir(lock_path);
        let current = dir_id(dir).ok();
        if let Some((id, sub)) = &self.dir_sub {
            if Some(*id) == current && !sub.is_gone() {
                return false;
            }
            // The looks go through another directory now (the old one was removed): watch that.
            self.dir_sub = None;
        }
        let Some(id) = current else {
            return false;
        };
        let name = lock_path.file_name().unwrap_or_default();
        match backend::watch_dir(dir, name, &self.bell) {
            Ok(sub) => {
                self.dir_sub = Some((id, sub));
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ring_before_the_sleep_is_not_lost() {
        let bell = Bell::new();
        let seen = bell.rings();
        bell.ring();
        assert!(bell.sleep(seen, None));
        let seen = bell.rings();
        let t = Instant::now();
        assert!(!bell.sleep(seen, Some(Instant::now() + Duration::from_millis(30))));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_ring_from_another_thread_wakes_the_sleeper() {
        let bell = Bell::new();
        let seen = bell.rings();
        let b = bell.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.ring();
        });
        assert!(bell.sleep(seen, Some(Instant::now() + Duration::from_secs(30))));
        t.join().unwrap();
    }
}
