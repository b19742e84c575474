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
use std::sync::Arc;
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

/// Records a granted lease (claimed by a request sent at `sent`) and starts renewing it.
pub fn hold<S: LeaseStore>(
    inner: &Arc<Inner<S>>,
    lease: Lease,
    token: Token,
    sent: u64,
    on_lost: Option<LossHandler>,
) {
    inner.deadline.confirm(sent, inner.opts.ttl);
    let mut state = inner.state();
    let owner_id = lease.owner_id.clone();
    let runtime = tokio::runtime::Handle::current();
    let renewer = runtime.spawn(renew(inner.clone(), owner_id)).abort_handle();
    *state = Some(Holding {
        lease,
        token,
        on_lost,
        renewer: Some(renewer),
        runtime,
    });
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

/// The renewal loop of one acquisition; aborted by release, ends by itself on a loss.
async fn renew<S: LeaseStore>(inner: Arc<Inner<S>>, owner_id: String) {
    let (ttl, every) = (inner.opts.ttl, inner.opts.renew_every);
    let mut next = Instant::now() + every;
    let mut last_error: Option<String> = None;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let left = inner.deadline.left(ttl);
        if left.is_zero() && last_error.is_some() {
            let reason = LossReason::StoreUnreachable;
            return lose(&inner, &owner_id, reason, None, last_error);
        }
        // Woken past the deadline after a healthy renewal: this process was frozen or
        // starved. Ask once more; the answer says whether the lease is still ours.
        let bound = if left.is_zero() { LATE_ANSWER } else { left };
        let sent = owner::clock_nanos();
        let started = Instant::now();
        let answer =
            tokio::time::timeout(bound, inner.store.renew(&inner.key, &owner_id, ttl, None));
        match answer.await {
            Ok(Ok(Renewal::Renewed)) => {
                inner.deadline.confirm(sent, ttl);
                last_error = None;
                next = started + every;
            }
            Ok(Ok(Renewal::Removed)) => {
                return lose(&inner, &owner_id, LossReason::Removed, None, None);
            }
            Ok(Ok(Renewal::OwnerChanged { holder })) => {
                let reason = LossReason::OwnerChanged;
                return lose(&inner, &owner_id, reason, Some(*holder), None);
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
                return lose(&inner, &owner_id, reason, None, Some(error));
            }
        }
    }
}
