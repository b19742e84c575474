//! One heartbeat thread for every lease the process holds.
//!
//! A native thread, not a task on the JS event loop or on a shared async runtime: garbage
//! collection pauses, a blocked event loop or a busy runtime cannot starve it, and it never
//! keeps Node alive. One thread with a deadline queue costs the same whether the process holds
//! one lease or a thousand.
//!
//! The scheduler knows only the small [`Beat`] trait: it runs beats when they are due and
//! keeps every scheduled item alive (an `Arc`) until that item says it has nothing left to
//! renew. What a beat does, and what a lease or an owner is, is not its business.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Something that needs renewing now and then.
pub trait Beat: Send + Sync + 'static {
    /// Renews once, on the heartbeat thread. Returns when the next beat is due, or `None`
    /// when there is nothing left to renew.
    fn beat(&self) -> Option<Instant>;
    /// When the next beat is due if there is something to renew right now, else `None`.
    fn next_due(&self) -> Option<Instant>;
}

/// How early a beat may run to share a wake-up with others.
const SLACK: Duration = Duration::from_millis(5);

struct Due<T> {
    at: Instant,
    seq: u64,
    item: Arc<T>,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<T> Eq for Due<T> {}
impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Due<T> {
    // Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

struct Queue<T> {
    heap: BinaryHeap<Due<T>>,
    seq: u64,
    /// Every item with an entry in `heap` - exactly one each - by address (stable while the
    /// `Arc` here keeps it alive).
    scheduled: BTreeMap<usize, Arc<T>>,
    thread_started: bool,
}

/// A deadline queue served by one thread, started on first use.
pub struct Scheduler<T> {
    queue: Mutex<Queue<T>>,
    wake: Condvar,
}

fn key<T>(item: &Arc<T>) -> usize {
    Arc::as_ptr(item) as usize
}

impl<T: Beat> Scheduler<T> {
    pub const fn new() -> Self {
        Scheduler {
            queue: Mutex::new(Queue {
                heap: BinaryHeap::new(),
                seq: 0,
                scheduled: BTreeMap::new(),
                thread_started: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// A poisoned mutex only means a beat panicked elsewhere; the queue is still consistent
    /// (every change is made whole under the lock), so carry on.
    fn guard(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure `item` gets beats, the first when `next_due` says. An item already scheduled
    /// keeps its one queue entry (a beat that comes early is harmless), so tight
    /// acquire/release loops do not pile up entries.
    pub fn start(&'static self, item: &Arc<T>) {
        let mut q = self.guard();
        if q.scheduled.contains_key(&key(item)) {
            return;
        }
        let Some(at) = item.next_due() else {
            return;
        };
        q.scheduled.insert(key(item), item.clone());
        // Wake the thread only when this beat is due before everything it already waits for.
        let wake = q.heap.peek().is_none_or(|top| at < top.at);
        push(&mut q, item.clone(), at);
        if !q.thread_started {
            let spawned = std::thread::Builder::new()
                .name("leaselock-heartbeat".into())
                .spawn(move || self.run());
            // Without a thread the lease would go stale and be taken over: unsafe for nobody,
            // and the holder hears of it if it ever checks. Try again at the next start.
            q.thread_started = spawned.is_ok();
        }
        drop(q);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Every item scheduled now.
    pub fn scheduled(&self) -> Vec<Arc<T>> {
        self.guard().scheduled.values().cloned().collect()
    }

    fn run(&self) {
        let mut q = self.guard();
        loop {
            let now = Instant::now();
            match q.heap.peek() {
                None => {
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                // Beats due within SLACK are run together: a thousand leases cost a few
                // wake-ups per interval instead of a thousand, and a beat a few ms early is
                // harmless.
                Some(top) if top.at > now + SLACK => {
                    let left = top.at - now;
                    q = match self.wake.wait_timeout(q, left) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                }
                Some(_) => {
                    let Some(due) = q.heap.pop() else { continue };
                    drop(q);
                    let next = due.item.beat();
                    q = self.guard();
                    // Asked under the queue lock, as `start` is: an item that became active
                    // again since its beat found nothing to renew keeps its entry.
                    match next.or_else(|| due.item.next_due()) {
                        Some(at) => push(&mut q, due.item, at),
                        None => {
                            q.scheduled.remove(&key(&due.item));
                        }
                    }
                }
            }
        }
    }
}

impl<T: Beat> Default for Scheduler<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn push<T>(q: &mut Queue<T>, item: Arc<T>, at: Instant) {
    q.seq += 1;
    let seq = q.seq;
    q.heap.push(Due { at, seq, item });
}
