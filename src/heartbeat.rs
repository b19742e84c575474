//! One heartbeat thread for every lock the process holds.
//!
//! A native thread, not a task on the JS event loop or on a shared async runtime: garbage
//! collection pauses, a blocked event loop or a busy runtime cannot starve it, and it never
//! keeps Node alive. One thread with a deadline queue costs the same whether the process holds
//! one lock or a thousand. The registry of scheduled locks also keeps each held lock alive when
//! its JS object is collected: a lock is released by `release()` or by the end of the process
//! or worker, never by garbage collection.

use crate::lock::Inner;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How early a beat may run to share a wake-up with others.
const SLACK: Duration = Duration::from_millis(5);

struct Due {
    at: Instant,
    seq: u64,
    lock: Arc<Inner>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    // Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Due>,
    seq: u64,
    /// Every lock with an entry in `heap` - exactly one each - by id. Held locks are always
    /// here; this is what exit-time release walks.
    scheduled: HashMap<u64, Arc<Inner>>,
    thread_started: bool,
}

struct Scheduler {
    queue: Mutex<Queue>,
    wake: Condvar,
}

fn scheduler() -> &'static Scheduler {
    static S: OnceLock<Scheduler> = OnceLock::new();
    S.get_or_init(|| Scheduler {
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
    })
}

fn guard(s: &Scheduler) -> MutexGuard<'_, Queue> {
    s.queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes sure a lock just acquired gets heartbeats, the first about one interval from now. A
/// lock released and acquired again keeps its one queue entry (a beat that comes early is
/// harmless), so tight acquire/release loops do not pile up entries.
pub(crate) fn start(lock: &Arc<Inner>) {
    let s = scheduler();
    let mut q = guard(s);
    if q.scheduled.contains_key(&lock.id()) {
        return;
    }
    q.scheduled.insert(lock.id(), lock.clone());
    let at = Instant::now() + lock.heartbeat_interval();
    // Wake the thread only when this beat is due before everything it already waits for.
    let wake = q.heap.peek().is_none_or(|top| at < top.at);
    push(&mut q, lock.clone(), at);
    if !q.thread_started {
        let spawned = std::thread::Builder::new()
            .name("leaselock-heartbeat".into())
            .spawn(run);
        // Without a thread the lease would go stale and be taken over: unsafe for nobody,
        // and the holder hears of it if it ever checks. Try again at the next acquire.
        q.thread_started = spawned.is_ok();
    }
    drop(q);
    if wake {
        s.wake.notify_one();
    }
}

fn push(q: &mut Queue, lock: Arc<Inner>, at: Instant) {
    q.seq += 1;
    let seq = q.seq;
    q.heap.push(Due { at, seq, lock });
}

fn run() {
    let s = scheduler();
    let mut q = guard(s);
    loop {
        let now = Instant::now();
        match q.heap.peek() {
            None => {
                q = s.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            // Beats due within SLACK are run together: a thousand locks cost a few wake-ups
            // per interval instead of a thousand, and a beat a few ms early is harmless.
            Some(top) if top.at > now + SLACK => {
                let left = top.at - now;
                q = match s.wake.wait_timeout(q, left) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            Some(_) => {
                let Some(due) = q.heap.pop() else { continue };
                drop(q);
                let (next, loss) = due.lock.beat();
                if let Some((handler, lost)) = loss {
                    handler(lost);
                }
                q = guard(s);
                match next {
                    Some(at) => push(&mut q, due.lock, at),
                    // Acquired again since the beat found it idle: keep beating.
                    None if due.lock.is_held() => {
                        let at = Instant::now() + due.lock.heartbeat_interval();
                        push(&mut q, due.lock, at);
                    }
                    None => {
                        q.scheduled.remove(&due.lock.id());
                    }
                }
            }
        }
    }
}

/// Every lock held in the process (for exit), or only those of one group (a worker's).
pub(crate) fn held_locks(group: Option<u64>) -> Vec<Arc<Inner>> {
    guard(scheduler())
        .scheduled
        .values()
        .filter(|l| l.is_held() && group.is_none_or(|g| l.group() == g))
        .cloned()
        .collect()
}
