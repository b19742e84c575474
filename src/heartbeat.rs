//! Heartbeat threads: one per filesystem for every lease the process holds there, and one
//! watchdog over them.
//!
//! Native threads, not tasks on the JS event loop or on a shared async runtime: garbage
//! collection pauses, a blocked event loop or a busy runtime cannot starve them, and they never
//! keep Node alive. One thread with a deadline queue costs the same whether the process holds
//! one lease on a disk or a thousand. A thread per filesystem (the caller's key) means a hung
//! mount stalls only the renewals on it; the watchdog notices a renewal stuck past its give-up
//! point without waiting for the stuck call, and has it reported.
//!
//! The scheduler knows only the small [`Beat`] trait: it runs beats when they are due and
//! keeps every scheduled item alive (an `Arc`) until that item says it has nothing left to
//! renew. What a beat does, and what a lease or an owner is, is not its business.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Something that needs renewing now and then.
pub trait Beat: Send + Sync + 'static {
    /// Renews once, on the heartbeat thread. Returns when the next beat is due, or `None`
    /// when there is nothing left to renew.
    fn beat(&self) -> Option<Instant>;
    /// When the next beat is due if there is something to renew right now, else `None`.
    fn next_due(&self) -> Option<Instant>;
    /// How long until a renewal that has not completed by then is given up (the give-up
    /// point; zero once past it), while there is something to renew; else `None`. Must not
    /// block on anything a beat holds.
    fn give_up_in(&self) -> Option<Duration>;
    /// Reports that renewal is stuck past the give-up point. Called on the watchdog thread
    /// while a beat may still be blocked in a system call; must not block on what it holds.
    fn stalled(&self);
}

/// How early a beat may run to share a wake-up with others.
const SLACK: Duration = Duration::from_millis(5);

/// When a renewal every `interval` is next due, at the latest `interval` after `now`: the last
/// point of a process-wide grid of that step before then. Every lease of the process with the
/// same interval then beats at the same moments - one wake-up per interval for a thousand of
/// them, as a single loop renewing them all would do - and none waits longer than `interval`
/// (the beat that joins the grid comes sooner, once).
pub fn aligned(now: Instant, interval: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let latest = now + interval;
    // In u64 nanoseconds (584 years), which divide much faster than u128.
    let step = u64::try_from(interval.as_nanos()).unwrap_or(0);
    match latest.checked_duration_since(epoch) {
        Some(since) if step > 0 => {
            let since = u64::try_from(since.as_nanos()).unwrap_or(0);
            latest - Duration::from_nanos(since % step)
        }
        _ => latest,
    }
}

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
    /// Whether a beat is running now, and how many have started: the watchdog calls the
    /// thread stuck when it finds the same beat running at two looks.
    busy: AtomicBool,
    started: AtomicU64,
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
            busy: AtomicBool::new(false),
            started: AtomicU64::new(0),
        }
    }

    /// Whether a beat is running, and which (a count of beats started).
    fn activity(&self) -> (bool, u64) {
        let started = self.started.load(AtomicOrdering::Acquire);
        (self.busy.load(AtomicOrdering::Acquire), started)
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
        // The items due now, beaten in one batch, and when each wants its next beat.
        let mut batch: Vec<(Arc<T>, Option<Instant>)> = Vec::new();
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
                    // Everything due by then is taken in one trip through the lock, and put
                    // back in one: not two per beat.
                    let by = now + SLACK;
                    while q.heap.peek().is_some_and(|top| top.at <= by) {
                        if let Some(due) = q.heap.pop() {
                            batch.push((due.item, None));
                        }
                    }
                    drop(q);
                    for (item, next) in batch.iter_mut() {
                        self.started.fetch_add(1, AtomicOrdering::AcqRel);
                        self.busy.store(true, AtomicOrdering::Release);
                        *next = item.beat();
                        self.busy.store(false, AtomicOrdering::Release);
                    }
                    q = self.guard();
                    for (item, next) in batch.drain(..) {
                        // Asked under the queue lock, as `start` is: an item that became
                        // active again since its beat found nothing to renew keeps its entry.
                        match next.or_else(|| item.next_due()) {
                            Some(at) => push(&mut q, item, at),
                            None => {
                                q.scheduled.remove(&key(&item));
                            }
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

/// How soon the watchdog looks again at a renewal past its give-up point whose thread was not
/// yet seen stuck: a process that was asleep or stopped gets its beats in first.
const RECHECK: Duration = Duration::from_millis(25);

/// One [`Scheduler`] per key (the caller's filesystem), so that a hung filesystem stalls only
/// the renewals on it, and the watchdog thread over all of them.
pub struct Heartbeats<T: 'static> {
    schedulers: Mutex<Vec<(u64, &'static Scheduler<T>)>>,
    watchdog: Mutex<WatchState>,
    wake: Condvar,
}

/// Whether the watchdog thread runs, how often it was told of new items (a poke that comes
/// while it is looking is not lost: it looks again instead of sleeping), and until when it
/// sleeps (`None`: it is looking, or sleeps until told) - a new item whose give-up point comes
/// later than that needs no poke, which keeps tight acquire/release loops from waking it.
struct WatchState {
    started: bool,
    pokes: u64,
    asleep_until: Option<Instant>,
}

impl<T: Beat> Heartbeats<T> {
    pub const fn new() -> Self {
        Heartbeats {
            schedulers: Mutex::new(Vec::new()),
            watchdog: Mutex::new(WatchState {
                started: false,
                pokes: 0,
                asleep_until: None,
            }),
            wake: Condvar::new(),
        }
    }

    fn all(&self) -> Vec<(u64, &'static Scheduler<T>)> {
        self.schedulers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The scheduler for `key`, made on first use. Schedulers live as long as the process:
    /// there is one per filesystem a lock was ever held on.
    fn scheduler(&self, key: u64) -> &'static Scheduler<T> {
        let mut list = self.schedulers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = list.iter().find(|(k, _)| *k == key) {
            return s;
        }
        let s: &'static Scheduler<T> = Box::leak(Box::new(Scheduler::new()));
        list.push((key, s));
        s
    }

    /// Makes sure `item` gets beats on the thread for `key`, and is watched.
    pub fn start(&'static self, key: u64, item: &Arc<T>) {
        self.scheduler(key).start(item);
        let give_up = item.give_up_in().map(|left| Instant::now() + left);
        let mut w = self.watch_state();
        if w.started
            && (give_up.is_none() || w.asleep_until.zip(give_up).is_some_and(|(t, g)| t <= g))
        {
            return;
        }
        w.pokes = w.pokes.wrapping_add(1);
        if !w.started {
            // Without a watchdog a stuck renewal is still noticed by `held` (no I/O); only the
            // callback would wait for the stuck call. Try again at the next start.
            // The name fits Linux's 15 bytes and differs there from the waiters' "leaselock-watch".
            w.started = std::thread::Builder::new()
                .name("leaselock-stall".into())
                .spawn(move || self.watch())
                .is_ok();
        }
        drop(w);
        self.wake.notify_one();
    }

    fn watch_state(&self) -> MutexGuard<'_, WatchState> {
        self.watchdog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every item scheduled now, on any thread.
    pub fn scheduled(&self) -> Vec<Arc<T>> {
        let mut out: Vec<Arc<T>> = Vec::new();
        for (_, s) in self.all() {
            for item in s.scheduled() {
                if !out.iter().any(|o| Arc::ptr_eq(o, &item)) {
                    out.push(item);
                }
            }
        }
        out
    }

    /// The watchdog: sleeps until the earliest give-up point of anything scheduled; an item
    /// past it whose scheduler thread is stuck in one beat (the same beat running at two
    /// looks) is reported stalled. Costs one look per give-up period while all is well.
    fn watch(&self) {
        let mut seen: Vec<(u64, u64)> = Vec::new();
        loop {
            let pokes = {
                let mut w = self.watch_state();
                w.asleep_until = None;
                w.pokes
            };
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for (key, s) in self.all() {
                let (busy, started) = s.activity();
                let before = seen.iter_mut().find(|(k, _)| *k == key);
                let stuck = busy && before.as_ref().is_some_and(|(_, n)| *n == started);
                match before {
                    Some(entry) => entry.1 = started,
                    None => seen.push((key, started)),
                }
                for item in s.scheduled() {
                    let at = match item.give_up_in() {
                        None => continue,
                        Some(left) if !left.is_zero() => now + left,
                        Some(_) if stuck => {
                            item.stalled();
                            continue;
                        }
                        Some(_) => now + RECHECK,
                    };
                    next = Some(next.map_or(at, |n: Instant| n.min(at)));
                }
            }
            let mut guard = self.watch_state();
            if guard.pokes != pokes {
                continue;
            }
            guard.asleep_until = next;
            // A poisoned wait only means a beat panicked elsewhere; look again either way.
            match next {
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    drop(self.wake.wait_timeout(guard, left));
                }
                None => drop(self.wake.wait(guard)),
            }
        }
    }
}

impl<T: Beat> Default for Heartbeats<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::aligned;
    use std::time::{Duration, Instant};

    #[test]
    fn aligned_beats_share_a_grid_and_never_come_later_than_the_interval() {
        let step = Duration::from_millis(250);
        let base = Instant::now();
        let first = aligned(base, step);
        assert!(first > base && first <= base + step);
        for ms in [1u64, 7, 60, 249, 250, 251, 700] {
            let now = base + Duration::from_millis(ms);
            let next = aligned(now, step);
            assert!(next > now && next <= now + step, "{ms} ms");
            // On the same grid as the first: a whole number of steps apart.
            let apart = next.max(first) - next.min(first);
            assert_eq!(apart.as_nanos() % step.as_nanos(), 0, "{ms} ms");
        }
    }
}
