//! The acquisitions still waiting, process-wide, so that they can be cancelled from outside:
//! by `release()` on the same instance, and all of one group's when its environment (a worker
//! thread, the main thread) ends. A group that ended stays ended: a wait of it that was about
//! to succeed, and a lock it acquired in that very moment, hold and renew nothing.

use super::wait::Cancel;
use super::{lock, Inner};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

struct Entry {
    /// The instance (its address, stable while it waits).
    lock: usize,
    group: u64,
    cancel: Arc<Cancel>,
}

static WAITING: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static ENDED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
/// Whether `ENDED` has anything in it: every heartbeat and acquisition asks `group_ended`,
/// and until an environment ends the answer needs no lock.
static ANY_ENDED: AtomicBool = AtomicBool::new(false);

/// A registered wait; dropping it takes it off the list.
pub(super) struct Registered {
    cancel: Arc<Cancel>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&WAITING).retain(|e| !Arc::ptr_eq(&e.cancel, &self.cancel));
    }
}

/// Puts the wait of an acquisition of `inner` on the list until the guard is dropped.
pub(super) fn register(inner: &Inner, cancel: Arc<Cancel>) -> Registered {
    lock(&WAITING).push(Entry {
        lock: inner as *const Inner as usize,
        group: inner.group,
        cancel: cancel.clone(),
    });
    Registered { cancel }
}

/// Cancels the waits of one instance.
pub(super) fn cancel_lock(inner: &Inner) {
    let me = inner as *const Inner as usize;
    for e in lock(&WAITING).iter().filter(|e| e.lock == me) {
        e.cancel.cancel();
    }
}

/// Marks a group ended (`None`: the whole process) and cancels its waits.
pub(super) fn end_group(group: Option<u64>) {
    if let Some(g) = group {
        lock(&ENDED).insert(g);
        ANY_ENDED.store(true, Ordering::Release);
    }
    for e in lock(&WAITING)
        .iter()
        .filter(|e| group.is_none_or(|g| e.group == g))
    {
        e.cancel.cancel();
    }
}

/// Whether this group's environment has ended.
pub(super) fn group_ended(group: u64) -> bool {
    ANY_ENDED.load(Ordering::Acquire) && lock(&ENDED).contains(&group)
}
