//! How long an acquisition may wait for a held lock, and how a wait is cancelled.

use super::error::LockError;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// While waiting for a held lock, how often to look again.
pub const WAIT_POLL: Duration = Duration::from_millis(20);

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

    /// Sleeps `d` (cut short by the deadline), or returns `Cancelled` as soon as cancelled.
    pub(super) fn sleep(&self, d: Duration) -> Result<(), LockError> {
        let d = match self.deadline {
            Deadline::At(t) => d.min(t.saturating_duration_since(Instant::now())),
            Deadline::Once | Deadline::Never => d,
        };
        match &self.cancel {
            Some(c) => c.sleep(d),
            None => {
                std::thread::sleep(d);
                Ok(())
            }
        }
    }
}

/// A cancellation flag that wakes a sleeping waiter at once.
#[derive(Default)]
pub struct Cancel {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Cancel {
    pub fn cancel(&self) {
        *self.flag() = true;
        self.cv.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        *self.flag()
    }

    /// A poisoned flag only means a thread panicked while holding it; a bool is always
    /// consistent, so carry on.
    fn flag(&self) -> MutexGuard<'_, bool> {
        self.flag.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep(&self, d: Duration) -> Result<(), LockError> {
        let deadline = Instant::now() + d;
        let mut done = self.flag();
        loop {
            if *done {
                return Err(LockError::Cancelled);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            done = match self.cv.wait_timeout(done, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}
