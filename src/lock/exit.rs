//! Releasing at the end of the process or of a JS environment (a worker), without ever
//! hanging that end on a slow or hung filesystem.
//!
//! Locks on local disk types are released at once, as any release. The others are released by
//! one thread per filesystem and waited for at most [`EXIT_RELEASE_BOUND`] in all: a lock on a
//! hung mount is left to go stale on its own rather than hang the exit, and the exit code is
//! never touched. At process exit, the files of calls still stuck on a hung mount are closed by
//! a helper thread (see `sys::close_at_exit`), or the kernel's own close would wait for the
//! server.

use super::{Inner, HEARTBEATS};
use crate::sys;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the exit-time and environment-cleanup release wait for locks on slow or hung
/// filesystems before they let the leases go stale on their own.
pub const EXIT_RELEASE_BOUND: Duration = Duration::from_millis(500);

impl Inner {
    /// Releases whatever this instance holds, for process or environment exit. A heartbeat
    /// in progress is waited for (it holds the state for one write), never given up on; on a
    /// slow filesystem this runs on a helper thread that the exit waits for only so long.
    pub(super) fn release_for_exit(&self) {
        let mut st = super::lock(&self.state);
        let _ = self.release_locked(&mut st);
        if st.is_none() {
            self.let_go_of_dir();
        }
    }
}

/// Releases every lock held by one group (`Some(group)`) or by the whole process (`None`), as
/// the environment or the process ends. Fenced like any release.
pub fn release_held_for_exit(group: Option<u64>) {
    // First its waits: an environment that ends acquires nothing afterwards.
    super::waits::end_group(group);
    let mut slow: Vec<(u64, Vec<Arc<Inner>>)> = Vec::new();
    for inner in HEARTBEATS.scheduled() {
        if !inner.is_held() || group.is_some_and(|g| inner.group != g) {
            continue;
        }
        if inner.place.is_quick(&inner.path) {
            inner.release_for_exit();
            continue;
        }
        let dev = inner.place.dev();
        match slow.iter_mut().find(|(d, _)| *d == dev) {
            Some((_, list)) => list.push(inner),
            None => slow.push((dev, vec![inner])),
        }
    }
    release_slow_bounded(slow);
    if group.is_none() {
        close_stuck_files();
    }
}

/// Releases locks on slow or hung filesystems, one thread per filesystem, waiting for them at
/// most [`EXIT_RELEASE_BOUND`] in all.
fn release_slow_bounded(slow: Vec<(u64, Vec<Arc<Inner>>)>) {
    if slow.is_empty() {
        return;
    }
    let deadline = Instant::now() + EXIT_RELEASE_BOUND;
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let mut waiting = 0;
    for (_, list) in slow {
        let done = done.clone();
        let spawned = std::thread::Builder::new()
            .name("leaselock-exit".into())
            .spawn(move || {
                for inner in list {
                    inner.release_for_exit();
                }
                let _ = done.send(());
            });
        waiting += usize::from(spawned.is_ok());
    }
    drop(done);
    for _ in 0..waiting {
        let left = deadline.saturating_duration_since(Instant::now());
        if finished.recv_timeout(left).is_err() {
            break;
        }
    }
}

/// As the process exits: the files of locks whose state is still locked by a call stuck on a
/// slow or hung mount are closed by a helper thread (see `sys::close_at_exit` for why).
fn close_stuck_files() {
    let mut closing = Vec::new();
    for inner in HEARTBEATS.scheduled() {
        if inner.place.is_quick(&inner.path) || inner.state.try_lock().is_ok() {
            continue;
        }
        let fd = inner.open_fd.swap(-1, Ordering::AcqRel);
        if fd < 0 {
            continue;
        }
        // SAFETY: the process is exiting and the holding that owns `fd` is still alive (its
        // state is locked by the stuck call), so `fd` is still that open file.
        let spawned = std::thread::Builder::new()
            .name("leaselock-exit".into())
            .spawn(move || unsafe { sys::close_at_exit(fd) });
        if spawned.is_ok() {
            closing.push(fd);
        }
    }
    // The helpers must have taken the descriptors out of the table before the exit goes on;
    // that is immediate (the wait for the filesystem comes after), so this is brief.
    let deadline = Instant::now() + Duration::from_millis(100);
    while closing.iter().any(|&fd| sys::descriptor_is_open(fd)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}
