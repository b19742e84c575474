//! The N-API layer: converts plain values in and out, runs the engine off the JS thread, and
//! delivers lost-lease notices through a threadsafe function. Failures cross as plain data
//! ([`records::NativeFailure`]: code, message and details); `lib/index.js` turns them into
//! Node-style `Error`s, because that is where JavaScript error objects are natural to build.

mod process;
mod records;
mod store;
mod store_direct;
mod store_thread;

use crate::lock::{
    self, Assessment, Cancel, LeaseLost, Lock, LockError, Options, Pending, Thresholds, Wait,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use records::{
    assessment_record, failure, inspected_record, lost_info, ms, LeaseRecord, LostInfo,
    NativeFailure,
};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

type LostFn = ThreadsafeFunction<LostInfo, (), LostInfo, Status, false, true>;
type AliveFn = ThreadsafeFunction<f64, bool, f64, Status, false, true>;

/// What `acquire` ended with when it is more than plain success (which is the token alone, or
/// `null`): `failure`, or success with what was taken over.
#[napi(object)]
pub struct AcquireOutcome {
    /// A dead or stale lease, or old content that was not a lease, replaced by ours.
    pub reclaimed: Option<LeaseRecord>,
    /// The fencing token of this acquisition, as decimal text.
    pub token: Option<String>,
    pub failure: Option<NativeFailure>,
}

/// The filesystem a lock lives on (see `PidLock.filesystem`).
#[napi(object)]
pub struct FilesystemInfo {
    /// The kernel's name for its type (`ext4`, `tmpfs`, `nfs`, `fuse`, `apfs`, `NTFS`...).
    pub r#type: String,
    /// `"local"`, `"network"`, `"fuse"` or `"unknown"`.
    pub kind: String,
    /// Whether inode numbers stay with a file across names there; `null` if not looked at.
    pub stable_inodes: Option<bool>,
}

/// What `inspect` found: `failure`, or the lock file's record (none: no lock file).
#[napi(object)]
pub struct InspectOutcome {
    pub holder: Option<LeaseRecord>,
    pub failure: Option<NativeFailure>,
}

/// What an acquisition returns to JS. Plain success (the usual case) is the fencing token alone,
/// as decimal text (`null` where none was issued): no object to build and read back. Otherwise
/// the outcome: success with what was taken over (and the token), or the failure.
type Acquired = Option<Either<String, AcquireOutcome>>;

fn acquired(lock: &Lock, r: std::result::Result<Option<Assessment>, LockError>) -> Acquired {
    match r {
        Ok(None) => lock.token().map(|t| Either::A(t.to_string())),
        Ok(Some(found)) => Some(Either::B(AcquireOutcome {
            reclaimed: Some(assessment_record(found)),
            token: lock.token().map(|t| t.to_string()),
            failure: None,
        })),
        Err(e) => Some(Either::B(AcquireOutcome {
            reclaimed: None,
            token: None,
            failure: Some(failure(e)),
        })),
    }
}

/// The defaults of `PidLock`'s options (milliseconds for times), from the engine's own.
#[napi(object)]
pub struct Defaults {
    pub acquire_retry_limit: u32,
    pub acquire_retry_delay: f64,
    pub invalid_pid_lock_stale_threshold: f64,
    pub file_write_mode: u32,
    pub directory_write_mode: u32,
    pub lease_heartbeat_interval: f64,
    pub lease_stale_threshold: f64,
    /// `'refuse'` or `'reclaim'`.
    pub invalid_content: String,
}

/// The values the JS layer must agree with the engine on, stated once here.
#[napi(object)]
pub struct Constants {
    pub defaults: Defaults,
    /// The largest metadata accepted, in bytes of compact JSON.
    pub metadata_limit: u32,
    /// The deepest nesting of metadata that readers keep (deeper, they drop it).
    pub metadata_depth_limit: u32,
    /// The first line of the error for a held lock.
    pub held_text: String,
}

#[napi]
pub fn constants() -> Constants {
    let d = Options::default();
    let millis = |t: Duration| t.as_millis() as f64;
    Constants {
        defaults: Defaults {
            acquire_retry_limit: d.retry_limit,
            acquire_retry_delay: millis(d.retry_delay),
            invalid_pid_lock_stale_threshold: millis(d.invalid_stale),
            file_write_mode: d.file_mode,
            directory_write_mode: d.dir_mode,
            lease_heartbeat_interval: millis(d.heartbeat_interval),
            lease_stale_threshold: millis(d.stale_threshold),
            invalid_content: if d.reclaim_invalid {
                "reclaim"
            } else {
                "refuse"
            }
            .into(),
        },
        metadata_limit: lock::METADATA_LIMIT as u32,
        metadata_depth_limit: crate::lease::METADATA_DEPTH_LIMIT as u32,
        held_text: lock::HELD_TEXT.into(),
    }
}

/// Whether metadata (compact JSON) nests deeper than readers keep: refused when it is set,
/// rather than written and then dropped by every reader.
#[napi]
pub fn metadata_nests_too_deep(json: String) -> bool {
    crate::lease::nests_deeper_than(&json, crate::lease::METADATA_DEPTH_LIMIT)
}

thread_local! {
    /// The JS environment of this thread (main or a worker): locks made here are released
    /// together when it ends.
    static GROUP: Cell<u64> = const { Cell::new(0) };
}

/// Registers the exit-time releases once per process and once per environment.
fn env_group(env: &Env) -> u64 {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        extern "C" fn release_all() {
            lock::release_held_for_exit(None);
        }
        // `process.exit()` and an uncaught exception run no environment cleanup hook on the
        // main thread, but they do end in libc's exit(), which runs this. It installs no
        // signal handler and changes neither how the process exits nor its exit code.
        crate::sys::at_exit(release_all);
    });
    GROUP.with(|g| {
        if g.get() == 0 {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            g.set(id);
            // A drained event loop, a worker's end, `process.exit()` in a worker and
            // `worker.terminate()` all run this hook: release that environment's locks so a
            // dead worker's lease is never renewed.
            let _ = env.add_env_cleanup_hook(id, |id| {
                lock::release_held_for_exit(Some(id));
            });
        }
        g.get()
    })
}

/// A cancellation handle for one waiting `acquire`.
#[napi]
pub struct CancelToken {
    inner: Arc<Cancel>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken {
            inner: Arc::new(Cancel::default()),
        }
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

/// The native half of `PidLock`; use `PidLock` from the package instead.
#[napi]
pub struct NativeLock {
    lock: Arc<Lock>,
}

/// Asks the user's `processAppearsAlive` on the JS thread and waits for the answer. If the
/// environment is gone or does not answer, the owner counts as alive (the safe side).
fn ask_alive(tsfn: &AliveFn, pid: i64) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let status = tsfn.call_with_return_value(
        pid as f64,
        ThreadsafeFunctionCallMode::NonBlocking,
        move |ret: Result<bool>, _env| {
            let _ = tx.send(ret.unwrap_or(true));
            Ok(())
        },
    );
    if status != Status::Ok {
        return true;
    }
    rx.recv_timeout(Duration::from_secs(30)).unwrap_or(true)
}

fn wait_for(timeout: Option<f64>, cancel: Option<Arc<Cancel>>) -> Wait {
    match timeout {
        None => Wait::once(),
        Some(t) if t <= 0.0 => Wait::once(),
        Some(t) if t.is_infinite() => Wait::for_duration(None, cancel),
        Some(t) => Wait::for_duration(Some(ms(t)), cancel),
    }
}

/// The user's `processAppearsAlive`, called on the JS thread (the first try runs there).
fn probe_here<'a>(f: &'a Function<'a, f64, bool>) -> impl Fn(i64) -> bool + 'a {
    move |pid| f.call(pid as f64).unwrap_or(true)
}

#[napi]
impl NativeLock {
    /// The options come validated (the JS layer checks types and ranges first), as separate
    /// arguments: reading them from an object costs a native call per property, for every
    /// `PidLock` made. Times in milliseconds; `reclaimInvalid` is `invalidContent: 'reclaim'`;
    /// `allowUntrustedParents` follows other users' symlinks and uses directories others may
    /// write (see README).
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)] // one per option, for the reason above
    pub fn new(
        env: Env,
        path: String,
        retry_limit: u32,
        retry_delay: f64,
        invalid_stale: f64,
        file_mode: u32,
        dir_mode: u32,
        heartbeat_interval: f64,
        stale_threshold: f64,
        reclaim_invalid: bool,
        allow_untrusted_parents: bool,
    ) -> Self {
        let opts = Options {
            retry_limit: retry_limit.max(1),
            retry_delay: ms(retry_delay),
            invalid_stale: ms(invalid_stale),
            file_mode,
            dir_mode,
            heartbeat_interval: ms(heartbeat_interval),
            stale_threshold: ms(stale_threshold),
            reclaim_invalid,
            allow_untrusted_parents,
        };
        let group = env_group(&env);
        NativeLock {
            lock: Arc::new(Lock::new(PathBuf::from(path), opts, group)),
        }
    }

    #[napi(getter)]
    pub fn held(&self) -> bool {
        self.lock.held()
    }

    /// The fencing token of the current acquisition while this instance holds the lock, as
    /// decimal text.
    #[napi(getter)]
    pub fn token(&self) -> Option<String> {
        self.lock.token().map(|t| t.to_string())
    }

    /// Acquires. On a known local disk type the first attempt runs here on the JS thread (tens
    /// of microseconds of file work) and its outcome is returned as is; only when the lock is
    /// held and `timeout` allows waiting, or a stale lock keeps changing, does the rest move to
    /// a worker thread, and then a promise is returned. Elsewhere (network, FUSE, not known
    /// yet) everything runs on a worker thread. `timeout`: `null` tries once; `Infinity` waits
    /// without end. The token as decimal text, or `null` when none was issued (or a promise of
    /// it): acquired, nothing taken over - or already held by this instance, which keeps the
    /// `onLost` and the token of its acquisition.
    #[napi(
        ts_args_type = "timeout: number | null, metadata: string | null, cancel: CancelToken | null, onLost: ((info: LostInfo) => void) | null, alive: ((pid: number) => boolean) | null",
        ts_return_type = "string | AcquireOutcome | null | Promise<string | AcquireOutcome | null>"
    )]
    pub fn acquire<'env>(
        &self,
        env: &'env Env,
        timeout: Option<f64>,
        metadata: Option<String>,
        cancel: Option<&CancelToken>,
        on_lost: Option<Function<LostInfo, ()>>,
        alive: Option<Function<f64, bool>>,
    ) -> Result<Either<Acquired, PromiseRaw<'env, Acquired>>> {
        if self.lock.held() {
            return Ok(Either::A(acquired(&self.lock, Ok(None))));
        }
        let on_lost = self.loss_handler(on_lost)?;
        let wait = wait_for(timeout, cancel.map(|c| c.inner.clone()));
        let first = if !self.lock.io_is_quick() {
            Err(Pending::MustWait)
        } else {
            let probe = alive.as_ref().map(probe_here);
            let probe_ref = probe.as_ref().map(|p| p as &dyn Fn(i64) -> bool);
            self.lock
                .acquire_without_sleeping(&wait, probe_ref, metadata.clone(), on_lost.clone())
        };
        match first {
            Ok(found) => return Ok(Either::A(acquired(&self.lock, Ok(found)))),
            Err(Pending::Failed(e)) => return Ok(Either::A(acquired(&self.lock, Err(e)))),
            Err(Pending::MustWait) => {}
        }
        let alive = match alive {
            Some(f) => Some(f.build_threadsafe_function().weak::<true>().build()?),
            None => None,
        };
        let lock = self.lock.clone();
        let promise = env.spawn_future(async move {
            tokio::task::spawn_blocking(move || {
                lock.learn_filesystem();
                let probe = alive.as_ref().map(|t| move |pid: i64| ask_alive(t, pid));
                let probe_ref = probe.as_ref().map(|p| p as &dyn Fn(i64) -> bool);
                acquired(&lock, lock.acquire(&wait, probe_ref, metadata, on_lost))
            })
            .await
            .map_err(|e| Error::from_reason(format!("acquire task failed: {e}")))
        })?;
        Ok(Either::B(promise))
    }

    /// Acquires on the JS thread; waiting (when `timeout` allows) blocks it. Returns as
    /// `acquire`.
    #[napi(
        ts_args_type = "timeout: number | null, metadata: string | null, onLost: ((info: LostInfo) => void) | null, alive: ((pid: number) => boolean) | null",
        ts_return_type = "string | AcquireOutcome | null"
    )]
    pub fn acquire_sync(
        &self,
        timeout: Option<f64>,
        metadata: Option<String>,
        on_lost: Option<Function<LostInfo, ()>>,
        alive: Option<Function<f64, bool>>,
    ) -> Result<Acquired> {
        if self.lock.held() {
            return Ok(acquired(&self.lock, Ok(None)));
        }
        let on_lost = self.loss_handler(on_lost)?;
        let probe = alive.as_ref().map(probe_here);
        let probe_ref = probe.as_ref().map(|p| p as &dyn Fn(i64) -> bool);
        let wait = wait_for(timeout, None);
        Ok(acquired(
            &self.lock,
            self.lock.acquire(&wait, probe_ref, metadata, on_lost),
        ))
    }

    /// Releases: on the JS thread on a known local disk type (a rename, a stat and an
    /// unlink), else on a worker thread, and then a promise is returned. Whether our lock file
    /// was removed, or the failure.
    #[napi(ts_return_type = "boolean | NativeFailure | Promise<boolean | NativeFailure>")]
    pub fn release<'env>(
        &self,
        env: &'env Env,
    ) -> Result<Either<Released, PromiseRaw<'env, Released>>> {
        let lock = self.lock.clone();
        off_thread_unless_quick(env, &self.lock, move || release_now(&lock))
    }

    /// Releases on the JS thread, whatever the filesystem (blocking by contract).
    #[napi(ts_return_type = "boolean | NativeFailure")]
    pub fn release_sync(&self) -> Released {
        release_now(&self.lock)
    }

    /// Replaces the metadata: on the JS thread on a known local disk type (a few file
    /// operations), else on a worker thread, and then a promise is returned. `null` when done.
    #[napi(ts_return_type = "NativeFailure | null | Promise<NativeFailure | null>")]
    pub fn update<'env>(
        &self,
        env: &'env Env,
        metadata: Option<String>,
    ) -> Result<Either<Option<NativeFailure>, PromiseRaw<'env, Option<NativeFailure>>>> {
        let lock = self.lock.clone();
        off_thread_unless_quick(env, &self.lock, move || {
            lock.update(metadata).err().map(failure)
        })
    }

    /// Replaces the metadata on the JS thread, whatever the filesystem (blocking by contract).
    /// `null` when done.
    #[napi]
    pub fn update_sync(&self, metadata: Option<String>) -> Option<NativeFailure> {
        self.lock.update(metadata).err().map(failure)
    }

    /// The filesystem the lock lives on, once an acquisition has looked at it.
    #[napi(getter)]
    pub fn filesystem(&self) -> Option<FilesystemInfo> {
        self.lock.filesystem().map(|f| FilesystemInfo {
            r#type: f.info.name,
            kind: f.info.kind.as_str().into(),
            stable_inodes: f.stable_inodes,
        })
    }

    #[napi]
    pub fn inspect<'env>(
        env: &'env Env,
        path: String,
        stale_threshold: f64,
        invalid_stale: f64,
        reclaim_invalid: bool,
        trust: bool,
    ) -> Result<PromiseRaw<'env, InspectOutcome>> {
        env.spawn_future(async move {
            tokio::task::spawn_blocking(move || {
                inspect_now(path, stale_threshold, invalid_stale, reclaim_invalid, trust)
            })
            .await
            .map_err(|e| Error::from_reason(format!("inspect task failed: {e}")))
        })
    }

    #[napi]
    pub fn inspect_sync(
        path: String,
        stale_threshold: f64,
        invalid_stale: f64,
        reclaim_invalid: bool,
        trust: bool,
    ) -> InspectOutcome {
        inspect_now(path, stale_threshold, invalid_stale, reclaim_invalid, trust)
    }

    /// The lost-lease handler for one acquisition: a weak threadsafe function (it never keeps
    /// Node alive), dropped on release or after it fires.
    fn loss_handler(
        &self,
        on_lost: Option<Function<LostInfo, ()>>,
    ) -> Result<Option<lock::LossHandler>> {
        let Some(f) = on_lost else {
            return Ok(None);
        };
        let tsfn: LostFn = f.build_threadsafe_function().weak::<true>().build()?;
        let stale_threshold = self.lock.options().stale_threshold;
        Ok(Some(Arc::new(move |lost: LeaseLost| {
            // Closing (the environment is gone) or a full queue: nobody is left to tell.
            let _ = tsfn.call(
                lost_info(lost, stale_threshold),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        })))
    }
}

/// Runs `work` here when the lock's filesystem is a known local disk type, else on a worker
/// thread (returning a promise), so that a slow or hung mount never holds up the JS thread.
fn off_thread_unless_quick<'env, T: ToNapiValue + Send + 'static>(
    env: &'env Env,
    lock: &Lock,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<Either<T, PromiseRaw<'env, T>>> {
    if lock.io_is_quick() {
        return Ok(Either::A(work()));
    }
    let promise = env.spawn_future(async move {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::from_reason(format!("lock task failed: {e}")))
    })?;
    Ok(Either::B(promise))
}

/// What `release` ended with: whether our lock file was removed, or the failure.
type Released = Either<bool, NativeFailure>;

fn release_now(lock: &Lock) -> Released {
    match lock.release() {
        Ok(removed) => Either::A(removed),
        Err(e) => Either::B(failure(e)),
    }
}

fn inspect_now(
    path: String,
    stale_threshold: f64,
    invalid_stale: f64,
    reclaim_invalid: bool,
    trust: bool,
) -> InspectOutcome {
    let limits = Thresholds {
        stale: ms(stale_threshold),
        invalid: ms(invalid_stale),
        reclaim_invalid,
    };
    match lock::inspect(&PathBuf::from(path), limits, trust) {
        Ok(found) => InspectOutcome {
            holder: found.map(inspected_record),
            failure: None,
        },
        Err(e) => InspectOutcome {
            holder: None,
            failure: Some(failure(e)),
        },
    }
}
