//! How long an acquisition may wait for a held lock, how a wait is cancelled, and how a
//! waiter sleeps between looks.
//!
//! A waiter does not look again on a fixed short poll. It sleeps on a [`Bell`] until something
//! that could free the lock has happened (see [`crate::watch`]): the lock's name changed in its
//! directory, the holder process ended, or the lease reached the age at which it may be taken
//! over - or until the wait's deadline, or a cancellation, which rings the same bell. A slow
//! safety poll ([`SAFETY_POLL`]) runs under all of that, so a lost notification delays a
//! hand-over but never hangs it. Where nothing can be watched, the waiter polls every
//! [`WAIT_POLL`], as it always did.

use super::error::LockError;
use super::Pending;
use crate::watch::{Bell, Waiter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// While waiting for a held lock that cannot be watched, how often to look again.
pub const WAIT_POLL: Duration = Duration::from_millis(20);
/// While waiting for a watched lock, how often to look again anyway, in case a notification
/// was lost (an event the kernel dropped; a filesystem that does not report every change).
pub const SAFETY_POLL: Duration = Duration::from_millis(500);

/// When an acquisition stops waiting for a held lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// Try once and report a held lock at once (Go's behaviour).
    Once,
    /// Keep trying until then.
    At(Instant),
    /// Keep trying without end (until cancelled).
    Never,
}

/// How long `acquire` may wait for a held lock, and what cancels the wait.
#[derive(Clone)]
pub struct Wait {
    deadline: Deadline,
    cancel: Option<Arc<Cancel>>,
}

impl Default for Wait {
    fn default() -> Self {
        Wait::once()
    }
}

impl Wait {
    pub fn once() -> Self {
        Wait {
            deadline: Deadline::Once,
            cancel: None,
        }
    }

    /// Waits `d` at most; `None` (or a deadline too far to represent) waits without end.
    pub fn for_duration(d: Option<Duration>, cancel: Option<Arc<Cancel>>) -> Self {
        let deadline = match d.and_then(|d| Instant::now().checked_add(d)) {
            Some(t) => Deadline::At(t),
            None => Deadline::Never,
        };
        Wait { deadline, cancel }
    }

    /// The same wait with a cancellation flag of its own (the caller's, if it gave one), so
    /// that `release()` or the end of its environment can cancel it.
    pub(super) fn cancellable(&self) -> (Wait, Arc<Cancel>) {
        let cancel = self.cancel.clone().unwrap_or_default();
        let wait = Wait {
            deadline: self.deadline,
            cancel: Some(cancel.clone()),
        };
        (wait, cancel)
    }

    /// Whether the time to wait for a held lock is up.
    pub(super) fn expired(&self) -> bool {
        match self.deadline {
            Deadline::Once => true,
            Deadline::Never => false,
            Deadline::At(t) => Instant::now() >= t,
        }
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }

    /// The bell this wait sleeps on: its cancellation's, so that cancelling wakes it.
    fn bell(&self) -> Arc<Bell> {
        match &self.cancel {
            Some(c) => c.bell.clone(),
            None => Bell::new(),
        }
    }

    /// Sleeps until `bell` rings after `seen`, `d` passes or the deadline comes; then
    /// `Cancelled` if the wait was cancelled meanwhile.
    fn sleep_on(&self, bell: &Bell, seen: u64, d: Duration) -> Result<(), LockError> {
        let mut until = Instant::now().checked_add(d);
        if let Deadline::At(t) = self.deadline {
            until = Some(until.map_or(t, |u| u.min(t)));
        }
        // A cancel whose ring came before `seen` was taken is not slept through: it set the
        // flag before it rang.
        if self.is_cancelled() {
            return Err(LockError::Cancelled);
        }
        bell.sleep(seen, until);
        if self.is_cancelled() {
            return Err(LockError::Cancelled);
        }
        Ok(())
    }
}

/// A cancellation flag that wakes a sleeping waiter at once: it rings the bell the waiter
/// sleeps on.
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    bell: Arc<Bell>,
}

impl Cancel {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
        self.bell.ring();
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// What a look at a held lock found that tells when to look again.
#[derive(Debug, Clone)]
pub(super) struct Recheck {
    /// The lock path as the look used it (through the directory held open).
    pub path: PathBuf,
    /// How long until the lock may be taken over by its age alone (the lease's heartbeat or
    /// the invalid content's modification time); `None` when its age cannot be told.
    pub takeable_in: Option<Duration>,
    /// The holder's pid, when it is proven alive in our own PID namespace: its exit can free
    /// the lock at any moment, so it is watched (or, where it cannot be, polled for).
    pub live_pid: Option<i64>,
    /// Liveness came from the user's `processAppearsAlive`, whose answer may change at any
    /// time without anything to watch: poll.
    pub asked_user: bool,
}

/// How an acquisition passes the time between tries; `E` is what stops it.
pub(super) trait Pause<E> {
    /// Binds the pause to the acquisition's own wait (the one that `release()` and the end of
    /// the environment cancel), before the first try.
    fn begin(&mut self, wait: &Wait);
    /// The bell's count before a look; passed back to [`Pause::held`] after it, so that a
    /// change during the look is not slept through.
    fn mark(&self) -> u64;
    /// The lock is held: sleep until something may have freed it.
    fn held(&mut self, seen: u64, recheck: &Recheck) -> Result<(), E>;
    /// Pause `d` before trying again (contention, a transient error).
    fn retry(&mut self, d: Duration) -> Result<(), E>;
}

/// The pause of a waiting acquisition: watches set up on the first held look and kept for the
/// rest of the wait, dropped with it.
#[derive(Default)]
pub(super) struct Sleeper {
    wait: Wait,
    bell: Arc<Bell>,
    waiter: Option<Waiter>,
    /// Looks in a row that set up a watch and so did not sleep.
    fresh_in_row: u32,
}

/// After this many looks in a row that each set a watch up (a directory or holder that keeps
/// changing as we watch it), sleep anyway: a wait never spins.
const FRESH_LIMIT: u32 = 3;

/// Whether change notifications on the filesystem of `path` can be trusted: only on a local
/// disk do they report what every process does, and only there is setting up a watch sure to
/// be quick (it resolves the path under a mutex that all waiters of the process share).
pub fn notifications_trusted(path: &Path) -> bool {
    crate::sys::fskind::of_path(crate::sys::parent_dir(path)).is_ok_and(|i| i.kind.is_local())
}

impl Pause<LockError> for Sleeper {
    fn begin(&mut self, wait: &Wait) {
        self.bell = wait.bell();
        self.wait = wait.clone();
    }

    fn mark(&self) -> u64 {
        self.bell.rings()
    }

    fn held(&mut self, seen: u64, recheck: &Recheck) -> Result<(), LockError> {
        let (path, bell) = (recheck.path.as_path(), &self.bell);
        let waiter = self
            .waiter
            .get_or_insert_with(|| Waiter::new(notifications_trusted(path), bell.clone()));
        // (A holder in this very process ends with us: nothing to watch.)
        let me = crate::owner::this_process().pid;
        let watch_pid = recheck
            .live_pid
            .filter(|pid| !recheck.asked_user && *pid != me);
        let armed = waiter.arm(path, watch_pid);
        self.fresh_in_row = if armed.fresh {
            self.fresh_in_row + 1
        } else {
            0
        };
        if armed.fresh && self.fresh_in_row <= FRESH_LIMIT {
            // Something may have changed between the look and the watch: look again now.
            return if self.wait.is_cancelled() {
                Err(LockError::Cancelled)
            } else {
                Ok(())
            };
        }
        let holder_covered = armed.holder || recheck.live_pid.is_none_or(|pid| pid == me);
        let watched = armed.dir && !recheck.asked_user && holder_covered;
        let poll = if watched { SAFETY_POLL } else { WAIT_POLL };
        let next = recheck.takeable_in.map_or(poll, |t| t.min(poll));
        self.wait.sleep_on(&self.bell, seen, next)
    }

    fn retry(&mut self, d: Duration) -> Result<(), LockError> {
        // A change of the lock's name (if it is watched by now) ends the pause early too.
        self.wait.sleep_on(&self.bell, self.bell.rings(), d)
    }
}

/// The pause of the binding's first try, on the JS thread: it never sleeps.
pub(super) struct NoSleep;

impl Pause<Pending> for NoSleep {
    fn begin(&mut self, _wait: &Wait) {}

    fn mark(&self) -> u64 {
        0
    }

    fn held(&mut self, _seen: u64, _recheck: &Recheck) -> Result<(), Pending> {
        Err(Pending::MustWait)
    }

    fn retry(&mut self, _d: Duration) -> Result<(), Pending> {
        Err(Pending::MustWait)
    }
}
