//! Waiters of this process that wait for the same holder process share one watch of it (a
//! pidfd, a process handle, a kqueue filter). The bookkeeping of that sharing is the same on
//! every backend and lives here; each backend keeps its registry's lock and its OS object.

use super::Bell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One watched process: the backend's OS object for it (`T`), and the waiters sharing it.
pub(super) struct Watched<T> {
    pub pid: i64,
    /// kqueue keys its filter by the pid itself and keeps no object here (`T = ()`).
    #[cfg_attr(target_os = "macos", allow(dead_code))]
    pub os: T,
    bells: Vec<(u64, Arc<Bell>)>,
    /// Exited and rung; the OS object stays signalled after that, so it is watched no more.
    fired: Arc<AtomicBool>,
}

/// A backend's watched processes, by the id of their first subscription.
pub(super) type Watches<T> = BTreeMap<u64, Watched<T>>;

impl<T> Watched<T> {
    pub fn has_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// The process has exited: marks it so and, when `ring`, rings every waiter's bell (a fault
    /// test drops the notification to show that the waiters' poll still finds the exit).
    pub fn fire(&self, ring: bool) {
        self.fired.store(true, Ordering::Release);
        if ring {
            self.bells.iter().for_each(|(_, b)| b.ring());
        }
    }
}

/// A waiter's interest in one process's exit. Dropping it leaves the shared watch (each backend
/// implements `Drop` with [`leave`] under its registry's lock).
pub struct PidSub {
    entry: u64,
    id: u64,
    fired: Arc<AtomicBool>,
}

impl PidSub {
    /// The process has exited (and the bell was rung for it).
    pub fn has_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

/// Joins the watch of `pid` that other waiters share, if there is one. One that has exited is
/// never joined: the pid may belong to a new process by now.
pub(super) fn join<T>(
    watches: &mut Watches<T>,
    pid: i64,
    id: u64,
    bell: &Arc<Bell>,
) -> Option<PidSub> {
    let (entry, w) = watches
        .iter_mut()
        .find(|(_, w)| w.pid == pid && !w.has_fired())?;
    w.bells.push((id, bell.clone()));
    Some(PidSub {
        entry: *entry,
        id,
        fired: w.fired.clone(),
    })
}

/// Records a new watch of `pid` (its OS object `os`) whose first waiter is subscription `id`.
pub(super) fn add<T>(
    watches: &mut Watches<T>,
    pid: i64,
    os: T,
    id: u64,
    bell: &Arc<Bell>,
) -> PidSub {
    let fired = Arc::new(AtomicBool::new(false));
    let watched = Watched {
        pid,
        os,
        bells: vec![(id, bell.clone())],
        fired: fired.clone(),
    };
    watches.insert(id, watched);
    PidSub {
        entry: id,
        id,
        fired,
    }
}

/// Takes `sub`'s waiter out of its watch; returns the watch when that was its last waiter, for
/// the backend to take down.
pub(super) fn leave<T>(watches: &mut Watches<T>, sub: &PidSub) -> Option<Watched<T>> {
    let w = watches.get_mut(&sub.entry)?;
    w.bells.retain(|(id, _)| *id != sub.id);
    if !w.bells.is_empty() {
        return None;
    }
    watches.remove(&sub.entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_share_a_live_watch_and_the_last_one_out_takes_it_down() {
        let mut watches: Watches<()> = BTreeMap::new();
        let bell = Bell::new();
        let first = add(&mut watches, 42, (), 1, &bell);
        let Some(second) = join(&mut watches, 42, 2, &bell) else {
            panic!("a live watch of the same pid is shared");
        };
        assert_eq!(second.entry, first.entry);
        assert!(join(&mut watches, 43, 3, &bell).is_none());
        assert!(leave(&mut watches, &first).is_none(), "one waiter is left");
        if let Some(w) = watches.get(&first.entry) {
            w.fire(true);
        }
        assert!(first.has_fired() && second.has_fired());
        // An exited process is never joined again: its pid may be another process's by now.
        assert!(join(&mut watches, 42, 4, &bell).is_none());
        assert!(leave(&mut watches, &second).is_some(), "the last one out");
        assert!(watches.is_empty());
    }
}
