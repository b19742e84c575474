//! Holding a store lease: renewing it, knowing its deadline, and reporting its loss.
//!
//! The holder cannot read the store's clock, but it knows when it *sent* each request. A lease
//! granted or renewed by a request sent at `t` expires on the server no earlier than `t + ttl`
//! by the server's clock; our deadline is `t + ttl - margin`, the margin covering a difference
//! in clock rates. So `held` turns false before the lease can have expired, however late the
//! reply came, and whether or not the store can be reached. A renewal still unanswered one more
//! margin before that deadline ends the holding with `store-unreachable`, so that the notice,
//! too, comes before the lease can have expired even when this process is slow to be scheduled.

use super::session::{Holding, Inner};
use super::{LeaseStore, Renewal, Stored, Token};
use crate::lease::Lease;
use crate::owner;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Pause between renewal attempts after one failed (the connection is reopened each time).
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(100);
/// How long a renewal sent after the deadline already passed (this process was frozen or
/// starved) may take to tell whether the lease is still ours.
const LATE_ANSWER: Duration = Duration::from_secs(2);

/// The share of a lease kept back for clocks that run at different rates: 1% of the TTL plus
/// 2 ms (as Redlock assumes), at least.
pub fn margin(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// Another owner's lease (or a foreign value) is under the key.
    OwnerChanged,
    /// Nothing is under the key: it expired, was deleted, or the store lost its data.
    Removed,
    /// The store could not confirm the lease before it could expire.
    StoreUnreachable,
}

impl LossReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::OwnerChanged => "owner-changed",
            LossReason::Removed => "removed",
            LossReason::StoreUnreachable => "store-unreachable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Lost {
    pub reason: LossReason,
    pub new_owner: Option<Stored>,
    /// The last store error, for `StoreUnreachable`.
    pub error: Option<String>,
    pub at: SystemTime,
}

pub type LossHandler = Arc<dyn Fn(Lost) + Send + Sync>;

/// When the current lease may expire, on [`owner::clock_nanos`] (which counts time asleep).
#[derive(Default)]
pub struct Deadline(AtomicU64);

impl Deadline {
    pub fn confirm(&self, sent: u64, ttl: Duration) {
        let usable = ttl.saturating_sub(margin(ttl)).as_nanos() as u64;
        self.0.store(sent.saturating_add(usable), Ordering::SeqCst);
    }

    /// Whether the lease cannot have expired yet.
    pub fn ahead(&self) -> bool {
        owner::clock_nanos() < self.0.load(Ordering::SeqCst)
    }

    /// Whether the lease may have expired on the store already, even by the store's clock
    /// running at our rate: the margin is past too. A holder that finds this on waking was not
    /// running on time (frozen, suspended, starved).
    fn overslept(&self, ttl: Duration) -> bool {
        let expiry = self
            .0
            .load(Ordering::SeqCst)
            .saturating_add(margin(ttl).as_nanos() as u64);
        owner::clock_nanos() >= expiry
    }

    /// Time left until the holder gives up on a store that does not answer: the deadline less
    /// one more margin.
    fn left(&self, ttl: Duration) -> Duration {
        let give_up = self
            .0
            .load(Ordering::SeqCst)
            .saturating_sub(margin(ttl).as_nanos() as u64);
        Duration::from_nanos(give_up.saturating_sub(owner::clock_nanos()))
    }
}

/// Records a granted lease (claimed by a request sent at `sent`) and has it renewed on
/// `runtime`.
///
/// One renewal task per lock serves each of its acquisitions in turn, and ends when it finds
/// nothing held: an acquisition while it runs only records its lease, so that a lock acquired
/// and released again and again does not start (and wake the runtime's thread for) a task
/// each time. The task never sleeps past a new holding's first renewal, as each holding's is
/// `renew_every` after its grant and the task's next wake-up is at most that after an earlier
/// one.
pub fn hold<S: LeaseStore>(
    inner: &Arc<Inner<S>>,
    lease: Lease,
    token: Token,
    sent: u64,
    on_lost: Option<LossHandler>,
    runtime: tokio::runtime::Handle,
) {
    inner.deadline.confirm(sent, inner.opts.ttl);
    *inner.state() = Some(Holding {
        lease,
        token,
        on_lost,
        first_renewal: Instant::now() + inner.opts.renew_every,
        runtime: runtime.clone(),
    });
    if !inner.renewing.swap(true, Ordering::SeqCst) {
        runtime.spawn(renewer(Arc::downgrade(inner)));
    }
}

/// The current holding's owner id and first renewal.
fn current<S>(inner: &Inner<S>) -> Option<(String, Instant)> {
    let state = inner.state();
    state
        .as_ref()
        .map(|h| (h.lease.owner_id.clone(), h.first_renewal))
}

fn is_current<S>(inner: &Inner<S>, owner_id: &str) -> bool {
    inner
        .state()
        .as_ref()
        .is_some_and(|h| h.lease.owner_id == owner_id)
}

/// The renewal task of one lock: renews each holding in turn until nothing is held. Keeps the
/// lock only weakly while nothing is to be renewed.
async fn renewer<S: LeaseStore>(lock: Weak<Inner<S>>) {
    loop {
        let Some(inner) = lock.upgrade() else { return };
        let Some((owner_id, first)) = current(&inner) else {
            inner.renewing.store(false, Ordering::SeqCst);
            // A holding recorded just before the flag was cleared found it set and relies on
            // this task; one recorded after it started its own.
            if inner.state().is_none() || inner.renewing.swap(true, Ordering::SeqCst) {
                return;
            }
            continue;
        };
        drop(inner);
        tokio::time::sleep_until(first.into()).await;
        let Some(inner) = lock.upgrade() else { return };
        if is_current(&inner, &owner_id) {
            renew(&inner, &owner_id, first).await;
        }
    }
}

/// Why a lease is lost, from what its key holds now: another owner's lease, or - nothing, or
/// something that is not a lease - removed, with no new owner to show.
pub fn loss(now: Option<Stored>) -> (LossReason, Option<Stored>) {
    match now {
        Some(holder) if holder.is_lease() => (LossReason::OwnerChanged, Some(holder)),
        _ => (LossReason::Removed, None),
    }
}

/// Ends the holding of `owner_id` (if it is still the current one) and reports why, once.
pub fn lose<S>(
    inner: &Inner<S>,
    owner_id: &str,
    reason: LossReason,
    new_owner: Option<Stored>,
    error: Option<String>,
) {
    let handler = {
        let mut state = inner.state();
        match state.as_ref() {
            Some(h) if h.lease.owner_id == owner_id => state.take().and_then(|h| h.on_lost),
            _ => return,
        }
    };
    if let Some(f) = handler {
        f(Lost {
            reason,
            new_owner,
            error,
            at: SystemTime::now(),
        });
    }
}

/// The renewals of one acquisition, the first at `first`; returns once it is lost, or no
/// longer the current one here (released, abandoned, or replaced by a newer acquisition).
///
/// A silence is the store's only while this process runs on time. Woken after the lease may
/// already have expired on the store (frozen by SIGSTOP, suspended, starved), the notice can no
/// longer come before that, and a timer or an error seen first on waking says nothing about the
/// store: the reply may be waiting in the socket. Then the renewal in flight, or one more, gets
/// `LATE_ANSWER` to say whether the lease was taken, removed or is still ours; `held` is false
/// all along, as the deadline has passed. Woken late by less than that, the notice still comes
/// in time, and is given at once.
async fn renew<S: LeaseStore>(inner: &Arc<Inner<S>>, owner_id: &str, first: Instant) {
    let (ttl, every) = (inner.opts.ttl, inner.opts.renew_every);
    let mut next = first;
    let mut last_error: Option<String> = None;
    // Whether the one late question since the last confirmed renewal has been asked.
    let mut asked_late = false;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let ended = inner.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if !is_current(inner, owner_id) {
            return;
        }
        let left = inner.deadline.left(ttl);
        let late = left.is_zero();
        if late && last_error.is_some() && (asked_late || !inner.deadline.overslept(ttl)) {
            let reason = LossReason::StoreUnreachable;
            return lose(inner, owner_id, reason, None, last_error);
        }
        asked_late |= late;
        let bound = if late { LATE_ANSWER } else { left };
        let sent = owner::clock_nanos();
        let started = Instant::now();
        let request = inner.store.renew(&inner.key, owner_id, ttl, None);
        tokio::pin!(request);
        let answer = async {
            let mut answer = tokio::time::timeout(bound, &mut request).await;
            if answer.is_err() && !asked_late && inner.deadline.overslept(ttl) {
                // The timer fired after the lease may have expired: this process was not running.
                asked_late = true;
                answer = tokio::time::timeout(LATE_ANSWER, &mut request).await;
            }
            answer
        };
        let answer = tokio::select! {
            answer = answer => answer,
            // Ended here while the renewal was in flight: its answer no longer matters.
            _ = &mut ended => return,
        };
        match answer {
            Ok(Ok(Renewal::Renewed)) => {
                // Confirmed only for the current holding: a newer one has its own deadline.
                let state = inner.state();
                if state.as_ref().is_none_or(|h| h.lease.owner_id != owner_id) {
                    return;
                }
                inner.deadline.confirm(sent, ttl);
                drop(state);
                last_error = None;
                asked_late = false;
                next = started + every;
            }
            Ok(Ok(lost)) => {
                let (reason, new_owner) = loss(lost.found());
                return lose(inner, owner_id, reason, new_owner, None);
            }
            Ok(Err(e)) => {
                last_error = Some(e.to_string());
                let wait = RETRY_AFTER_FAILURE.min(inner.deadline.left(ttl));
                next = Instant::now() + wait;
            }
            Err(_) => {
                let error = format!(
                    "no answer to a renewal before the lease could expire ({})",
                    last_error.as_deref().unwrap_or("the store did not reply")
                );
                let reason = LossReason::StoreUnreachable;
                return lose(inner, owner_id, reason, None, Some(error));
            }
        }
    }
}
