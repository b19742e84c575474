//! A lock over any [`LeaseStore`]: acquiring (with waiting, and with takeover of a holder
//! proven dead), holding (see [`super::keep`]), updating and releasing. Written once for every
//! store.

use super::keep::{self, Deadline as LeaseDeadline};
use super::{Claim, LeaseStore, Renewal, StoreError, Stored, Token, Watch};
use crate::lease::Lease;
use crate::lock::METADATA_LIMIT;
use crate::owner::{self, Liveness};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

pub use keep::{margin, LossHandler, LossReason, Lost};

/// How long an acquisition may wait for a held lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Try once and report a held lock at once.
    Once,
    /// Keep trying until then.
    At(std::time::Instant),
    /// Keep trying without end (until cancelled).
    Never,
}

/// The slowest a waiter polls, for leases that end by expiry (which publishes nothing).
pub const POLL_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// How long a lease lives without renewal (the lock's `leaseStaleThreshold`).
    pub ttl: Duration,
    /// How often the holder renews it (the lock's `leaseHeartbeatInterval`).
    pub renew_every: Duration,
}

#[derive(Debug)]
pub enum StoreLockError {
    /// Somebody holds the lock (and the wait, if any, ran out).
    Held {
        holder: Box<Stored>,
    },
    Cancelled,
    /// `update` on a lock this instance does not hold.
    NotHeld,
    MetadataInvalid(String),
    MetadataTooLarge {
        size: usize,
        limit: usize,
    },
    Store(StoreError),
}

impl From<StoreError> for StoreLockError {
    fn from(e: StoreError) -> Self {
        StoreLockError::Store(e)
    }
}

pub struct Acquired {
    pub token: Token,
    /// The lease of a holder proven dead that this acquisition removed.
    pub reclaimed: Option<Box<Stored>>,
}

/// Cancels a waiting acquisition from any thread.
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    async fn cancelled(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_cancelled() {
            notified.await;
        }
    }
}

/// What a holder keeps while it holds.
pub(super) struct Holding {
    pub lease: Lease,
    pub token: Token,
    pub on_lost: Option<LossHandler>,
    /// When its first renewal is due.
    pub first_renewal: std::time::Instant,
    /// The runtime the lock was acquired on, for a release started outside of it.
    pub runtime: tokio::runtime::Handle,
}

pub(super) struct Inner<S> {
    pub store: Arc<S>,
    pub key: String,
    pub opts: StoreOptions,
    pub state: Mutex<Option<Holding>>,
    pub deadline: LeaseDeadline,
    /// Whether this lock's renewal task runs (see [`keep::hold`]).
    pub renewing: AtomicBool,
    /// Told when a holding ends here (release, abandon), so that a renewal in flight for it is
    /// dropped at once.
    pub ended: Notify,
}

impl<S> Inner<S> {
    /// A poisoned mutex only means another thread panicked while holding it; every update of
    /// the state is one assignment, so it is still consistent.
    pub fn state(&self) -> MutexGuard<'_, Option<Holding>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the current holding here, if any: from now on it is not renewed and no loss is
    /// reported for it.
    pub fn end_holding(&self) -> Option<Holding> {
        let old = self.state().take()?;
        self.ended.notify_waiters();
        Some(old)
    }
}

/// One lock key on one store, as seen by one `PidLock` instance.
pub struct StoreLock<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for StoreLock<S> {
    fn clone(&self) -> Self {
        StoreLock {
            inner: self.inner.clone(),
        }
    }
}

pub struct WeakStoreLock<S>(Weak<Inner<S>>);

impl<S> WeakStoreLock<S> {
    pub fn upgrade(&self) -> Option<StoreLock<S>> {
        self.0.upgrade().map(|inner| StoreLock { inner })
    }

    /// Whether this refers to `lock`.
    pub fn is(&self, lock: &StoreLock<S>) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&lock.inner))
    }

    /// Whether the lock it refers to still exists.
    pub fn alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

fn compact_metadata(m: Option<String>) -> Result<Option<String>, StoreLockError> {
    let Some(m) = m else { return Ok(None) };
    let value: serde_json::Value =
        serde_json::from_str(&m).map_err(|e| StoreLockError::MetadataInvalid(e.to_string()))?;
    let compact = value.to_string();
    if compact.len() > METADATA_LIMIT {
        return Err(StoreLockError::MetadataTooLarge {
            size: compact.len(),
            limit: METADATA_LIMIT,
        });
    }
    Ok(Some(compact))
}

fn record_text(lease: &Lease) -> String {
    String::from_utf8_lossy(&lease.encode()).into_owned()
}

/// Whether the holder of `stored` is provably dead: its record is its own (same owner id) and
/// names a process of this host, boot and PID namespace that is gone (the file store's rules).
fn proven_dead(stored: &Stored) -> bool {
    match &stored.record {
        Some(l) if l.owner_id == stored.owner_id => owner::liveness(l) == Liveness::Dead,
        _ => false,
    }
}

async fn until(deadline: Deadline) {
    match deadline {
        Deadline::At(t) => tokio::time::sleep_until(t.into()).await,
        Deadline::Once | Deadline::Never => std::future::pending().await,
    }
}

fn past(deadline: Deadline) -> bool {
    match deadline {
        Deadline::Once => true,
        Deadline::Never => false,
        Deadline::At(t) => std::time::Instant::now() >= t,
    }
}

impl<S: LeaseStore> StoreLock<S> {
    pub fn new(store: Arc<S>, key: String, opts: StoreOptions) -> Self {
        StoreLock {
            inner: Arc::new(Inner {
                store,
                key,
                opts,
                state: Mutex::new(None),
                deadline: LeaseDeadline::default(),
                renewing: AtomicBool::new(false),
                ended: Notify::new(),
            }),
        }
    }

    pub fn downgrade(&self) -> WeakStoreLock<S> {
        WeakStoreLock(Arc::downgrade(&self.inner))
    }

    pub fn store(&self) -> &Arc<S> {
        &self.inner.store
    }

    pub fn key(&self) -> &str {
        &self.inner.key
    }

    pub fn options(&self) -> StoreOptions {
        self.inner.opts
    }

    /// Whether this instance holds the lock and its lease cannot have expired yet. No I/O.
    pub fn held(&self) -> bool {
        self.inner.state().is_some() && self.inner.deadline.ahead()
    }

    /// The fencing token of the current acquisition.
    pub fn token(&self) -> Option<Token> {
        self.inner.state().as_ref().map(|h| h.token)
    }

    /// The record this instance stored, while it holds the lock.
    pub fn current(&self) -> Option<(Lease, Token)> {
        self.inner
            .state()
            .as_ref()
            .map(|h| (h.lease.clone(), h.token))
    }

    /// Whether this instance has a holding (current or with its deadline passed); `acquire`
    /// first forgets such a stale one.
    pub fn holding(&self) -> bool {
        self.inner.state().is_some()
    }

    /// A new lease for a claim made by the caller on a connection of its own, and its record
    /// as stored: see [`StoreLock::adopt`].
    pub fn prepare(&self, metadata: Option<String>) -> Result<(Lease, String), StoreLockError> {
        let lease = owner::new_lease(compact_metadata(metadata)?);
        let record = record_text(&lease);
        Ok((lease, record))
    }

    /// Holds a lease the caller claimed itself (granted with `token` for a request sent at
    /// `sent`), exactly as `acquire` holds one: renewed on `runtime` from now on.
    pub fn adopt(
        &self,
        lease: Lease,
        token: Token,
        sent: u64,
        on_lost: Option<LossHandler>,
        runtime: tokio::runtime::Handle,
    ) {
        keep::hold(&self.inner, lease, token, sent, on_lost, runtime);
    }

    /// Acquires: claims the key, or waits (woken by a release, or by a poll at the holder's
    /// expiry) until `deadline`. A holder proven dead is removed at once.
    pub async fn acquire(
        &self,
        deadline: Deadline,
        cancel: Option<Arc<Cancel>>,
        metadata: Option<String>,
        on_lost: Option<LossHandler>,
    ) -> Result<Acquired, StoreLockError> {
        let metadata = compact_metadata(metadata)?;
        self.forget_stale_holding().await;
        let lease = owner::new_lease(metadata);
        let record = record_text(&lease);
        let (store, key, ttl) = (&self.inner.store, &self.inner.key, self.inner.opts.ttl);
        let cancelled = || cancel.as_ref().is_some_and(|c| c.is_cancelled());
        let mut watch: Option<S::Watch> = None;
        let mut reclaimed = None;
        loop {
            if cancelled() {
                return Err(StoreLockError::Cancelled);
            }
            let sent = owner::clock_nanos();
            let holder = match store.claim(key, &lease.owner_id, &record, ttl).await? {
                Claim::Granted { token } => {
                    let runtime = tokio::runtime::Handle::current();
                    keep::hold(&self.inner, lease, token, sent, on_lost, runtime);
                    return Ok(Acquired { token, reclaimed });
                }
                Claim::Held { holder } => holder,
            };
            if proven_dead(&holder) {
                if store.remove(key, &holder.owner_id).await? {
                    reclaimed = Some(holder);
                }
                continue;
            }
            if past(deadline) {
                return Err(StoreLockError::Held { holder });
            }
            let Some(w) = watch.as_mut() else {
                // Subscribed before the next claim, so no release between the two is missed.
                watch = Some(store.watch(key).await?);
                continue;
            };
            let nap = holder
                .ttl_left
                .map_or(POLL_MAX, |t| t + Duration::from_millis(1))
                .min(POLL_MAX);
            tokio::select! {
                _ = w.changed() => {}
                _ = tokio::time::sleep(nap) => {}
                _ = async { match &cancel { Some(c) => c.cancelled().await, None => std::future::pending().await } } => {
                    return Err(StoreLockError::Cancelled);
                }
                _ = until(deadline) => {
                    return Err(StoreLockError::Held { holder });
                }
            }
        }
    }

    /// A holding still here when a new acquisition starts is one whose deadline passed before
    /// its fate was known (a freeze, a store too slow to answer; released and abandoned ones
    /// are gone): it is renewed no more, and its lease removed if still ours, so we never wait
    /// for ourselves. If it was not ours any more, the loss is told once, as its renewal would
    /// have told it.
    async fn forget_stale_holding(&self) {
        let Some(old) = self.inner.end_holding() else {
            return;
        };
        let (store, key) = (&self.inner.store, &self.inner.key);
        let (reason, new_owner, error) = match store.remove(key, &old.lease.owner_id).await {
            Ok(true) => return,
            Ok(false) => match store.read(key).await {
                Ok(now) => {
                    let (reason, new_owner) = keep::loss(now);
                    (reason, new_owner, None)
                }
                Err(e) => (LossReason::StoreUnreachable, None, Some(e.to_string())),
            },
            Err(e) => (LossReason::StoreUnreachable, None, Some(e.to_string())),
        };
        if let Some(report) = old.on_lost {
            report(Lost {
                reason,
                new_owner,
                error,
                at: SystemTime::now(),
            });
        }
    }

    /// Releases: stops renewing at once, then deletes the lease if it is still ours. `true`
    /// when it deleted it; `false` when nothing of ours was there.
    pub async fn release(&self) -> Result<bool, StoreLockError> {
        match self.stop_holding() {
            Some(owner_id) => self.remove_lease(&owner_id).await,
            None => Ok(false),
        }
    }

    /// The first half of a release: stops holding and renewing at once (no loss is reported
    /// for this holding from now on), and gives the owner id whose lease is to be deleted.
    pub fn stop_holding(&self) -> Option<String> {
        Some(self.inner.end_holding()?.lease.owner_id)
    }

    /// The second half of a release: deletes the lease of `owner_id` if it is still there.
    pub async fn remove_lease(&self, owner_id: &str) -> Result<bool, StoreLockError> {
        Ok(self.inner.store.remove(&self.inner.key, owner_id).await?)
    }

    /// Stops holding at once without waiting: renewal ends now and the lease is deleted in the
    /// background (best effort; otherwise it expires). For the sync dispose and for the end of
    /// a JS environment or process, which cannot wait for the network; they may wait a bounded
    /// time on the returned receiver, which gets a message (or disconnects) when it is done.
    pub fn abandon(&self) -> Option<std::sync::mpsc::Receiver<()>> {
        let old = self.inner.end_holding()?;
        let inner = self.inner.clone();
        let (done, finished) = std::sync::mpsc::channel();
        // On a runtime already shut down the task is dropped at once, and with it `done`.
        old.runtime.spawn(async move {
            let _ = inner.store.remove(&inner.key, &old.lease.owner_id).await;
            let _ = done.send(());
        });
        Some(finished)
    }

    /// Replaces the metadata in the stored record while held (one compare-owner renewal).
    pub async fn update(&self, metadata: Option<String>) -> Result<(), StoreLockError> {
        let metadata = compact_metadata(metadata)?;
        let next = match self.inner.state().as_ref() {
            Some(h) if self.inner.deadline.ahead() => Lease {
                metadata_json: metadata,
                ..h.lease.clone()
            },
            _ => return Err(StoreLockError::NotHeld),
        };
        let sent = owner::clock_nanos();
        let ttl = self.inner.opts.ttl;
        let outcome = self
            .inner
            .store
            .renew(
                &self.inner.key,
                &next.owner_id,
                ttl,
                Some(&record_text(&next)),
            )
            .await?;
        if let Renewal::Renewed = outcome {
            let mut state = self.inner.state();
            if let Some(h) = state.as_mut().filter(|h| h.lease.owner_id == next.owner_id) {
                h.lease = next;
                self.inner.deadline.confirm(sent, ttl);
                return Ok(());
            }
            return Err(StoreLockError::NotHeld);
        }
        let (reason, new_owner) = keep::loss(outcome.found());
        keep::lose(&self.inner, &next.owner_id, reason, new_owner, None);
        Err(StoreLockError::NotHeld)
    }
}

/// Who holds `key` on `store`, without taking it; `None` when it is free.
pub async fn inspect<S: LeaseStore>(store: &S, key: &str) -> Result<Option<Stored>, StoreError> {
    store.read(key).await
}

/// The wall-clock time of a stored lease's last renewal, from what is left of its TTL.
pub fn last_renewed(stored: &Stored, now: SystemTime) -> Option<SystemTime> {
    let (ttl, left) = (stored.ttl?, stored.ttl_left?);
    now.checked_sub(ttl.saturating_sub(left))
}
