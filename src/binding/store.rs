//! The N-API side of store locks (`new PidLock(key, { store: 'redis://...' })`): every store
//! operation starts on the store thread and returns at once; its outcome comes back later with
//! the call's id ([`super::store_thread`]), so the JS thread never waits on the network. Errors
//! cross as plain data, as for file locks.

use super::env_group;
use super::records::{epoch_ms, lease_record, ms, LeaseRecord, NativeFailure};
use super::store_direct::Direct;
use super::store_thread::Outcomes;
use crate::owner;
use crate::store::redis::RedisStore;
use crate::store::session::{
    self, Cancel, Deadline, LossHandler, Lost, StoreLock, StoreLockError, StoreOptions,
    WeakStoreLock,
};
use crate::store::Stored;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::cell::Cell;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

type StoreLostFn = ThreadsafeFunction<StoreLostInfo, (), StoreLostInfo, Status, false, true>;

#[napi(object)]
pub struct NativeStoreOptions {
    pub heartbeat_interval: f64,
    pub stale_threshold: f64,
}

/// A stored lease: the record (as for a lock file) and what the store adds.
#[napi(object)]
pub struct StoreHolder {
    pub record: LeaseRecord,
    /// The fencing token, as decimal text.
    pub token: Option<String>,
    /// Milliseconds of TTL left on the store; `null` for a value that never expires.
    pub ttl_left: Option<f64>,
}

#[napi(object)]
pub struct StoreOutcome {
    /// The id of the call this is the outcome of.
    pub id: u32,
    pub ok: bool,
    /// acquire: the new fencing token.
    pub token: Option<String>,
    /// acquire: the holder proven dead and removed; inspect: who holds it; a held failure:
    /// the holder.
    pub holder: Option<StoreHolder>,
    /// release: whether our lease was deleted.
    pub removed: bool,
    pub failure: Option<NativeFailure>,
}

#[napi(object)]
pub struct StoreLostInfo {
    pub reason: String,
    pub new_owner: Option<StoreHolder>,
    pub error: Option<String>,
    pub at: f64,
}

fn store_holder(s: &Stored) -> StoreHolder {
    let record = match s.record.as_ref().filter(|_| s.is_lease()) {
        Some(l) => {
            let mut r = lease_record(l, owner::liveness(l), false);
            if let Some(t) = session::last_renewed(s, SystemTime::now()) {
                r.last_heartbeat = Some(epoch_ms(t));
            }
            r
        }
        None => LeaseRecord {
            valid: false,
            pid: None,
            owner_id: None,
            hostname: None,
            started_at: None,
            last_heartbeat: None,
            metadata: None,
            alive: "unknown".into(),
            stale: false,
            size: None,
            modified_at: None,
            metadata_dropped: None,
            can_take_over: None,
            blocked: None,
            token: None,
        },
    };
    StoreHolder {
        record,
        token: s.token.map(|t| t.to_string()),
        ttl_left: s.ttl_left.map(|d| d.as_secs_f64() * 1000.0),
    }
}

fn outcome() -> StoreOutcome {
    StoreOutcome {
        id: 0,
        ok: true,
        token: None,
        holder: None,
        removed: false,
        failure: None,
    }
}

fn failed(e: StoreLockError) -> StoreOutcome {
    let plain = |code: &str, message: String| NativeFailure {
        code: code.into(),
        message,
        holder: None,
        syscall: None,
        errno: None,
        attempts: None,
        size: None,
        path: None,
        owner: None,
    };
    let mut holder = None;
    let failure = match e {
        StoreLockError::Held { holder: h } => {
            holder = Some(store_holder(&h));
            plain("ELOCKHELD", String::new())
        }
        StoreLockError::Cancelled => plain("ABORT_ERR", "The operation was aborted".into()),
        StoreLockError::NotHeld => plain(
            "ELOCKNOTHELD",
            "the lock is not held by this instance".into(),
        ),
        StoreLockError::MetadataInvalid(why) => plain(
            "ERR_INVALID_ARG_VALUE",
            format!("metadata is not JSON: {why}"),
        ),
        StoreLockError::MetadataTooLarge { size, limit } => plain(
            "ERR_OUT_OF_RANGE",
            format!("metadata is {size} bytes as JSON; the limit is {limit}"),
        ),
        StoreLockError::Store(e) => plain(e.code(), e.to_string()),
    };
    StoreOutcome {
        ok: false,
        holder,
        failure: Some(failure),
        ..outcome()
    }
}

/// The outcome of an operation that panicked (a bug): a failure rather than a promise that
/// never settles.
pub(super) fn internal_failure() -> StoreOutcome {
    failed(StoreLockError::Store(crate::store::StoreError::Server(
        "internal error in the store thread".into(),
    )))
}

pub(super) fn lost_info(l: Lost) -> StoreLostInfo {
    StoreLostInfo {
        reason: l.reason.as_str().into(),
        new_owner: l.new_owner.as_ref().map(store_holder),
        error: l.error,
        at: epoch_ms(l.at),
    }
}

pub(super) fn loss_handler(tsfn: StoreLostFn) -> LossHandler {
    Arc::new(move |lost: Lost| {
        // Closing (the environment is gone) or a full queue: nobody is left to tell.
        let _ = tsfn.call(lost_info(lost), ThreadsafeFunctionCallMode::NonBlocking);
    })
}

/// Held store locks by JS environment: when one ends (a worker terminated, the main loop
/// drained, `process.exit()`), its leases stop being renewed and are deleted - waited for up to
/// [`EXIT_RELEASE_WAIT`] in all, else they expire by their TTL.
static HELD: Mutex<Vec<(u64, WeakStoreLock<RedisStore>)>> = Mutex::new(Vec::new());

/// How long the end of an environment or process may wait for its store leases' deletion.
const EXIT_RELEASE_WAIT: Duration = Duration::from_millis(250);

thread_local! {
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// Abandons the held store locks of `group` (all of them for `None`) and waits a bounded time
/// for their deletion.
fn release_for_exit(group: Option<u64>) {
    let mut pending = Vec::new();
    {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|(g, weak)| {
            if group.is_some_and(|want| want != *g) {
                return true;
            }
            pending.extend(weak.upgrade().and_then(|lock| lock.abandon()));
            false
        });
    }
    let until = Instant::now() + EXIT_RELEASE_WAIT;
    for done in pending {
        let _ = done.recv_timeout(until.saturating_duration_since(Instant::now()));
    }
}

/// Registers `lock`, now held, for its release at the end of environment `group` (one entry per
/// lock however often it is acquired; dropped locks leave).
pub(super) fn track_held(lock: &StoreLock<RedisStore>, group: u64) {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|(_, w)| w.alive());
    if !held.iter().any(|(_, w)| w.is(lock)) {
        held.push((group, lock.downgrade()));
    }
}

fn watch_environment(env: &Env) -> u64 {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        extern "C" fn release_all() {
            release_for_exit(None);
        }
        // `process.exit()` runs no environment cleanup hook on the main thread, but it ends
        // in libc's exit(), which runs this (the runtime's threads still run then).
        crate::sys::at_exit(release_all);
    });
    let group = env_group(env);
    if !HOOKED.with(|h| h.replace(true)) {
        let _ = env.add_env_cleanup_hook(group, |group| release_for_exit(Some(group)));
    }
    group
}

/// Cancels one waiting store `acquire`.
#[napi]
pub struct StoreCancelToken {
    pub(super) inner: Arc<Cancel>,
}

#[napi]
impl StoreCancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        StoreCancelToken {
            inner: Arc::new(Cancel::default()),
        }
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

/// The native half of a `PidLock` on a store; use `PidLock` from the package instead.
#[napi]
pub struct NativeStoreLock {
    pub(super) lock: StoreLock<RedisStore>,
    pub(super) group: u64,
    outcomes: Outcomes,
    /// The state of operations on the JS thread's own connection ([`super::store_direct`]).
    pub(super) direct: Arc<Mutex<Direct>>,
}

#[napi]
impl NativeStoreLock {
    /// Checks the URL (no connection is made until the first operation). The outcome of every
    /// call goes to `done`, with the call's `id`.
    #[napi(
        constructor,
        ts_args_type = "url: string, key: string, options: NativeStoreOptions, done: (outcome: StoreOutcome) => void"
    )]
    pub fn new(
        env: Env,
        url: String,
        key: String,
        options: NativeStoreOptions,
        done: Function<StoreOutcome, ()>,
    ) -> Result<Self> {
        let store = RedisStore::shared(&url).map_err(|m| Error::new(Status::InvalidArg, m))?;
        let opts = StoreOptions {
            ttl: ms(options.stale_threshold),
            renew_every: ms(options.heartbeat_interval),
        };
        Ok(NativeStoreLock {
            lock: StoreLock::new(store, key, opts),
            group: watch_environment(&env),
            outcomes: Outcomes::to(done)?,
            direct: Arc::default(),
        })
    }

    #[napi(getter)]
    pub fn held(&self) -> bool {
        self.lock.held()
    }

    /// The fencing token of the current acquisition, as decimal text.
    #[napi(getter)]
    pub fn token(&self) -> Option<String> {
        self.lock.token().map(|t| t.to_string())
    }

    /// `timeout`: `null` tries once; `Infinity` waits without end. The outcome comes with `id`.
    #[napi(
        ts_args_type = "id: number, timeout: number | null, metadata: string | null, cancel: StoreCancelToken | null, onLost: ((info: StoreLostInfo) => void) | null"
    )]
    pub fn acquire(
        &self,
        id: u32,
        timeout: Option<f64>,
        metadata: Option<String>,
        cancel: Option<&StoreCancelToken>,
        on_lost: Option<Function<StoreLostInfo, ()>>,
    ) -> Result<()> {
        let on_lost = match on_lost {
            Some(f) => Some(loss_handler(
                f.build_threadsafe_function().weak::<true>().build()?,
            )),
            None => None,
        };
        let deadline = match timeout {
            None => Deadline::Once,
            Some(t) if t <= 0.0 => Deadline::Once,
            Some(t) => Instant::now()
                .checked_add(ms(t))
                .map_or(Deadline::Never, Deadline::At),
        };
        let cancel = cancel.map(|c| c.inner.clone());
        let (lock, group) = (self.lock.clone(), self.group);
        let orphan = self.direct().orphan.take();
        let direct = self.direct.clone();
        self.outcomes.start(id, async move {
            if let Some(owner_id) = orphan {
                // A claim sent on the JS thread's connection got no answer and may have been
                // granted: deleted first, so that we never wait for ourselves (and kept for the
                // next acquisition while that cannot be done).
                if let Err(e) = lock.remove_lease(&owner_id).await {
                    Direct::lock(&direct).orphan = Some(owner_id);
                    return failed(e);
                }
            }
            match lock.acquire(deadline, cancel, metadata, on_lost).await {
                Ok(a) => {
                    track_held(&lock, group);
                    StoreOutcome {
                        token: Some(a.token.to_string()),
                        holder: a.reclaimed.as_deref().map(store_holder),
                        ..outcome()
                    }
                }
                Err(e) => failed(e),
            }
        })
    }

    #[napi]
    pub fn release(&self, id: u32) -> Result<()> {
        let lock = self.lock.clone();
        let releasing = self.direct().releasing.take();
        self.outcomes.start(id, async move {
            let released = match releasing {
                // Already stopped holding; its remove on the JS thread's connection failed.
                Some(owner_id) => lock.remove_lease(&owner_id).await,
                None => lock.release().await,
            };
            match released {
                Ok(removed) => StoreOutcome {
                    removed,
                    ..outcome()
                },
                Err(e) => failed(e),
            }
        })
    }

    /// Stops holding now; the lease is deleted in the background (or expires).
    #[napi]
    pub fn abandon(&self) {
        let _ = self.lock.abandon();
    }

    #[napi]
    pub fn update(&self, id: u32, metadata: Option<String>) -> Result<()> {
        let lock = self.lock.clone();
        self.outcomes.start(id, async move {
            match lock.update(metadata).await {
                Ok(()) => outcome(),
                Err(e) => failed(e),
            }
        })
    }

    /// The record this instance stored, while it holds the lock.
    #[napi]
    pub fn lease(&self) -> Option<StoreHolder> {
        self.lock.current().map(|(l, token)| StoreHolder {
            record: lease_record(&l, owner::Liveness::Alive, false),
            token: Some(token.to_string()),
            ttl_left: None,
        })
    }

    /// Who holds `key` on the store at `url`, without taking it; the outcome goes to `done`.
    #[napi(
        ts_args_type = "id: number, url: string, key: string, done: (outcome: StoreOutcome) => void"
    )]
    pub fn inspect(
        id: u32,
        url: String,
        key: String,
        done: Function<StoreOutcome, ()>,
    ) -> Result<()> {
        let store = RedisStore::shared(&url).map_err(|m| Error::new(Status::InvalidArg, m))?;
        Outcomes::to(done)?.start(id, async move {
            match session::inspect(&*store, &key).await {
                Ok(found) => StoreOutcome {
                    holder: found.as_ref().map(store_holder),
                    ..outcome()
                },
                Err(e) => failed(StoreLockError::Store(e)),
            }
        })
    }
}
