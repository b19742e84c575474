//! The lock logic over an in-memory store (an implementation of [`LeaseStore`] small enough
//! to show what a store has to provide; faults are switched on per test: every call failing,
//! or hanging) and, where the behaviour is the store's to give, over the file store too: those
//! tests are generic over a [`Fixture`] and run once per store.

use super::session::{Cancel, Deadline, LossReason, Lost, StoreLock, StoreLockError, StoreOptions};
use super::{Claim, LeaseStore, Renewal, StoreError, Stored, Token, Watch};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Default)]
struct Entry {
    owner: String,
    token: Token,
    expires: Option<Instant>,
}

struct MemoryStore {
    leases: Mutex<(HashMap<String, Entry>, Token)>,
    released: broadcast::Sender<String>,
    failing: AtomicBool,
    hanging: AtomicBool,
    /// The next renewal freezes the whole runtime thread (as SIGSTOP freezes the process)
    /// after it was sent; meanwhile an intruder takes the key. Then its reply comes as set.
    freeze: Mutex<Option<(Duration, FrozenReply)>>,
}

/// How the reply to a renewal sent just before a freeze reaches the woken holder.
#[derive(Clone, Copy, Debug)]
enum FrozenReply {
    /// Through another task a moment after waking (a connection's reader), so the timer of
    /// the renewal, long due, is seen first.
    Late,
    /// Not at all: the connection reports an error first (its own reply timeout).
    Error,
}

impl MemoryStore {
    fn new() -> Arc<Self> {
        Arc::new(MemoryStore {
            leases: Mutex::new((HashMap::new(), 0)),
            released: broadcast::channel(16).0,
            failing: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
            freeze: Mutex::new(None),
        })
    }

    async fn fault(&self) -> Result<(), StoreError> {
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unreachable("switched off".into()));
        }
        Ok(())
    }

    /// The live entry under `key`, dropping an expired one (the store's own expiry).
    fn live<'a>(map: &'a mut HashMap<String, Entry>, key: &str) -> Option<&'a mut Entry> {
        if map
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|t| Instant::now() >= t))
        {
            map.remove(key);
        }
        map.get_mut(key)
    }

    /// A lease of `e.owner` (with this process's identity: never proven dead).
    fn stored(e: &Entry) -> Stored {
        let record = crate::lease::Lease {
            owner_id: e.owner.clone(),
            ..crate::owner::new_lease(None)
        };
        Stored {
            owner_id: e.owner.clone(),
            record: Some(record),
            token: Some(e.token),
            ttl_left: e
                .expires
                .map(|t| t.saturating_duration_since(Instant::now())),
            ..Stored::default()
        }
    }
}

/// What a behaviour test needs of a store besides the trait: a fresh one with a key, and a
/// way to change what is under the key behind the holder's back.
pub(super) trait Fixture: LeaseStore + Sized {
    fn fresh() -> (Arc<Self>, String);
    /// Puts a lease of `owner` (a live process, never expiring by itself within a test) under
    /// `key`, replacing whatever is there.
    fn set(&self, key: &str, owner: &str);
    /// Removes whatever is under `key`.
    fn clear(&self, key: &str);
}

impl Fixture for MemoryStore {
    fn fresh() -> (Arc<Self>, String) {
        (MemoryStore::new(), "k".into())
    }

    fn set(&self, key: &str, owner: &str) {
        let mut g = self.leases.lock().unwrap();
        g.1 += 1;
        let token = g.1;
        let owner = owner.to_string();
        g.0.insert(
            key.into(),
            Entry {
                owner,
                token,
                expires: None,
            },
        );
    }

    fn clear(&self, key: &str) {
        self.leases.lock().unwrap().0.remove(key);
    }
}

/// Runs a generic behaviour test once per store.
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $name() { super::$name::<super::MemoryStore>() })*
        }
        mod file {
            $(#[test] fn $name() { super::$name::<crate::store::file::FileStore>() })*
        }
    };
}

for_each_store!(
    tokens_rise_and_a_second_instance_is_refused_with_the_holder,
    a_waiter_is_woken_by_the_release_and_can_be_cancelled,
    a_lease_removed_or_taken_is_reported_with_its_reason,
    a_holder_that_releases_is_never_told_of_a_loss,
);

struct MemoryWatch(broadcast::Receiver<String>, String);

impl Watch for MemoryWatch {
    async fn changed(&mut self) {
        loop {
            match self.0.recv().await {
                Ok(k) if k == self.1 => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

impl LeaseStore for MemoryStore {
    type Watch = MemoryWatch;

    async fn claim(
        &self,
        key: &str,
        owner: &str,
        _: &str,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        self.fault().await?;
        let mut g = self.leases.lock().unwrap();
        if let Some(e) = Self::live(&mut g.0, key) {
            return Ok(Claim::Held {
                holder: Box::new(Self::stored(e)),
            });
        }
        g.1 += 1;
        let token = g.1;
        let entry = Entry {
            owner: owner.into(),
            token,
            expires: Some(Instant::now() + ttl),
        };
        g.0.insert(key.into(), entry);
        Ok(Claim::Granted { token })
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        _: Option<&str>,
    ) -> Result<Renewal, StoreError> {
        self.fault().await?;
        let frozen = self.freeze.lock().unwrap().take();
        if let Some((how_long, reply)) = frozen {
            std::thread::sleep(how_long);
            self.set(key, "intruder");
            match reply {
                FrozenReply::Error => {
                    return Err(StoreError::Unreachable("reply timed out".into()))
                }
                FrozenReply::Late => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let _ = tx.send(());
                    });
                    let _ = rx.await;
                }
            }
        }
        let mut g = self.leases.lock().unwrap();
        Ok(match Self::live(&mut g.0, key) {
            None => Renewal::Removed,
            Some(e) if e.owner == owner => {
                e.expires = Some(Instant::now() + ttl);
                Renewal::Renewed
            }
            Some(e) => Renewal::OwnerChanged {
                holder: Box::new(Self::stored(e)),
            },
        })
    }

    async fn remove(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        self.fault().await?;
        let mut g = self.leases.lock().unwrap();
        let ours = Self::live(&mut g.0, key).is_some_and(|e| e.owner == owner);
        if ours {
            g.0.remove(key);
            let _ = self.released.send(key.into());
        }
        Ok(ours)
    }

    async fn read(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        self.fault().await?;
        let mut g = self.leases.lock().unwrap();
        Ok(Self::live(&mut g.0, key).map(|e| Self::stored(e)))
    }

    async fn watch(&self, key: &str) -> Result<MemoryWatch, StoreError> {
        self.fault().await?;
        Ok(MemoryWatch(self.released.subscribe(), key.into()))
    }
}

const TTL: Duration = Duration::from_millis(400);

fn opts() -> StoreOptions {
    StoreOptions {
        ttl: TTL,
        renew_every: Duration::from_millis(50),
    }
}

/// A runtime like the store thread's (also used by `file_tests.rs`).
pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A loss handler that hands the notice to the test.
fn on_lost() -> (
    super::session::LossHandler,
    tokio::sync::mpsc::UnboundedReceiver<(Lost, Instant)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (
        Arc::new(move |l: Lost| drop(tx.send((l, Instant::now())))),
        rx,
    )
}

fn tokens_rise_and_a_second_instance_is_refused_with_the_holder<S: Fixture>() {
    runtime().block_on(async {
        let (store, key) = S::fresh();
        let a = StoreLock::new(store.clone(), key.clone(), opts());
        let b = StoreLock::new(store.clone(), key, opts());
        let first = a.acquire(Deadline::Once, None, None, None).await.unwrap();
        assert!(a.held());
        match b.acquire(Deadline::Once, None, None, None).await {
            Err(StoreLockError::Held { holder }) => assert_eq!(holder.token, Some(first.token)),
            other => panic!("expected Held, got {:?}", other.err()),
        }
        assert!(a.release().await.unwrap());
        assert!(!a.held());
        assert!(!a.release().await.unwrap());
        let second = b.acquire(Deadline::Once, None, None, None).await.unwrap();
        assert!(second.token > first.token);
    });
}

fn a_waiter_is_woken_by_the_release_and_can_be_cancelled<S: Fixture>() {
    runtime().block_on(async {
        let (store, key) = S::fresh();
        store.set(&key, "someone");
        let a = StoreLock::new(store.clone(), key.clone(), opts());
        let cancel = Arc::new(Cancel::default());
        let waiting = {
            let (a, cancel) = (a.clone(), cancel.clone());
            tokio::spawn(async move { a.acquire(Deadline::Never, Some(cancel), None, None).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
        assert!(matches!(
            waiting.await.unwrap(),
            Err(StoreLockError::Cancelled)
        ));

        let waiting = {
            let a = a.clone();
            tokio::spawn(async move { a.acquire(Deadline::Never, None, None, None).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(store.remove(&key, "someone").await.unwrap());
        assert!(waiting.await.unwrap().is_ok());
        assert!(a.held());
    });
}

#[test]
fn renewal_failing_ends_the_holding_before_the_lease_could_expire() {
    runtime().block_on(async {
        for hang in [false, true] {
            let store = MemoryStore::new();
            let (handler, mut lost) = on_lost();
            let a = StoreLock::new(store.clone(), "k".into(), opts());
            let acquired_at = Instant::now();
            a.acquire(Deadline::Once, None, None, Some(handler))
                .await
                .unwrap();
            if hang {
                store.hanging.store(true, Ordering::SeqCst);
            } else {
                store.failing.store(true, Ordering::SeqCst);
            }
            let (notice, at) = lost.recv().await.unwrap();
            assert_eq!(notice.reason, LossReason::StoreUnreachable);
            assert!(notice.error.is_some());
            // Given up two margins (2 x 6 ms) before the lease could expire.
            assert!(at < acquired_at + TTL, "told too late (hang: {hang})");
            assert!(!a.held());
        }
    });
}

fn a_lease_removed_or_taken_is_reported_with_its_reason<S: Fixture>() {
    runtime().block_on(async {
        let (store, key) = S::fresh();
        let (handler, mut lost) = on_lost();
        let a = StoreLock::new(store.clone(), key.clone(), opts());
        a.acquire(Deadline::Once, None, None, Some(handler))
            .await
            .unwrap();
        store.clear(&key);
        assert_eq!(lost.recv().await.unwrap().0.reason, LossReason::Removed);
        assert!(!a.held());

        let (handler, mut lost) = on_lost();
        a.acquire(Deadline::Once, None, None, Some(handler))
            .await
            .unwrap();
        store.set(&key, "intruder");
        let (notice, _) = lost.recv().await.unwrap();
        assert_eq!(notice.reason, LossReason::OwnerChanged);
        assert_eq!(
            notice.new_owner.map(|h| h.owner_id),
            Some("intruder".to_string())
        );
        assert!(matches!(a.update(None).await, Err(StoreLockError::NotHeld)));
    });
}

fn a_holder_that_releases_is_never_told_of_a_loss<S: Fixture>() {
    runtime().block_on(async {
        let (store, key) = S::fresh();
        let (handler, mut lost) = on_lost();
        let a = StoreLock::new(store.clone(), key.clone(), opts());
        a.acquire(Deadline::Once, None, None, Some(handler))
            .await
            .unwrap();
        assert!(a.release().await.unwrap());
        // Somebody else's lease under the key now: a renewal still running would call it a loss.
        store.set(&key, "intruder");
        tokio::time::sleep(TTL * 2).await;
        assert!(lost.try_recv().is_err());
    });
}

#[test]
fn a_holder_that_releases_is_never_told_of_a_loss_even_by_a_failing_store() {
    runtime().block_on(async {
        let store = MemoryStore::new();
        let (handler, mut lost) = on_lost();
        let a = StoreLock::new(store.clone(), "k".into(), opts());
        a.acquire(Deadline::Once, None, None, Some(handler))
            .await
            .unwrap();
        a.release().await.unwrap();
        store.failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(TTL * 2).await;
        assert!(lost.try_recv().is_err());
    });
}

#[test]
fn a_holder_frozen_mid_renewal_is_told_the_lease_was_taken_not_that_the_store_was_silent() {
    for reply in [FrozenReply::Late, FrozenReply::Error] {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = MemoryStore::new();
            let (handler, mut lost) = on_lost();
            let a = StoreLock::new(store.clone(), "k".into(), opts());
            a.acquire(Deadline::Once, None, None, Some(handler))
                .await
                .unwrap();
            *store.freeze.lock().unwrap() = Some((TTL * 3 / 2, reply));
            let (notice, _) = lost.recv().await.unwrap();
            assert_eq!(notice.reason, LossReason::OwnerChanged, "{reply:?}");
            assert_eq!(
                notice.new_owner.map(|h| h.owner_id),
                Some("intruder".to_string())
            );
            assert!(!a.held());
        });
    }
}
