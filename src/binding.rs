//! The N-API layer: converts plain values in and out, runs the engine off the JS thread, and
//! delivers lost-lease notices through a threadsafe function. Errors cross as plain data
//! (`NativeOutcome.failure`); `lib/index.js` turns them into Node-style `Error`s, because
//! that is where JavaScript error objects are natural to build.

mod store;

use crate::lease::Lease;
use crate::lock::{
    self, Assessment, Cancel, Holder, LeaseLost, Lock, LockError, Options, Pending, Thresholds,
    Wait,
};
use crate::owner::{self, Liveness};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

type LostFn = ThreadsafeFunction<LostInfo, (), LostInfo, Status, false, true>;
type AliveFn = ThreadsafeFunction<f64, bool, f64, Status, false, true>;

/// Validated options (the JS layer checks types and ranges first).
#[napi(object)]
pub struct NativeOptions {
    pub retry_limit: u32,
    pub retry_delay: f64,
    pub invalid_stale: f64,
    pub file_mode: u32,
    pub dir_mode: u32,
    pub heartbeat_interval: f64,
    pub stale_threshold: f64,
}

/// A lock file's record, flattened: `valid: false` for content that is not a lease.
#[napi(object)]
#[derive(Clone)]
pub struct LeaseRecord {
    pub valid: bool,
    pub pid: Option<f64>,
    pub owner_id: Option<String>,
    pub hostname: Option<String>,
    /// Milliseconds since the epoch.
    pub started_at: Option<f64>,
    pub last_heartbeat: Option<f64>,
    /// Compact JSON text.
    pub metadata: Option<String>,
    /// `"alive"`, `"dead"` or `"unknown"`.
    pub alive: String,
    pub stale: bool,
    pub size: Option<u32>,
    pub modified_at: Option<f64>,
}

#[napi(object)]
pub struct NativeFailure {
    pub code: String,
    pub message: String,
    pub holder: Option<LeaseRecord>,
    pub syscall: Option<String>,
    pub errno: Option<i32>,
    pub attempts: Option<u32>,
}

#[napi(object)]
pub struct NativeOutcome {
    pub ok: bool,
    /// acquire: what was taken over; inspect: what is there.
    pub record: Option<LeaseRecord>,
    /// release: whether the file was removed.
    pub removed: bool,
    pub failure: Option<NativeFailure>,
}

#[napi(object)]
pub struct LostInfo {
    pub reason: String,
    pub new_owner: Option<LeaseRecord>,
    pub error: Option<String>,
    pub at: f64,
}

/// Milliseconds from JS as a Duration; anything too large for one saturates (never panics).
fn ms(d: f64) -> Duration {
    Duration::try_from_secs_f64((d / 1000.0).max(0.0)).unwrap_or(Duration::MAX)
}

fn epoch_ms(t: SystemTime) -> f64 {
    owner::unix_nanos(t) as f64 / 1e6
}

fn holder_record(h: &Holder) -> LeaseRecord {
    lease_record(&h.lease, h.alive, h.stale)
}

fn lease_record(l: &Lease, alive: Liveness, stale: bool) -> LeaseRecord {
    LeaseRecord {
        valid: true,
        pid: Some(l.pid as f64),
        owner_id: Some(l.owner_id.clone()),
        hostname: l.identity.as_ref().map(|i| i.hostname.clone()),
        started_at: l.acquired_unix_nano.map(|n| n as f64 / 1e6),
        last_heartbeat: Some(l.last_heartbeat_unix_nano as f64 / 1e6),
        metadata: l.metadata_json.clone(),
        alive: match alive {
            Liveness::Alive => "alive",
            Liveness::Dead => "dead",
            Liveness::Unknown => "unknown",
        }
        .into(),
        stale,
        size: None,
        modified_at: None,
    }
}

fn invalid_record(size: usize, modified: SystemTime, stale: bool) -> LeaseRecord {
    LeaseRecord {
        valid: false,
        pid: None,
        owner_id: None,
        hostname: None,
        started_at: None,
        last_heartbeat: None,
        metadata: None,
        alive: "unknown".into(),
        stale,
        size: Some(size as u32),
        modified_at: Some(epoch_ms(modified)),
    }
}

fn assessment_record(a: Assessment) -> LeaseRecord {
    match a {
        Assessment::Lease(h) => holder_record(&h),
        Assessment::Invalid {
            bytes,
            modified,
            stale,
        } => invalid_record(bytes, modified, stale),
    }
}

fn failure(e: LockError) -> NativeFailure {
    let plain = |code: &str, message: String| NativeFailure {
        code: code.into(),
        message,
        holder: None,
        syscall: None,
        errno: None,
        attempts: None,
    };
    match e {
        LockError::Held { holder } => NativeFailure {
            holder: holder.as_deref().map(holder_record),
            ..plain("ELOCKHELD", String::new())
        },
        LockError::RetryBudgetExhausted { attempts } => NativeFailure {
            attempts: Some(attempts),
            ..plain(
                "ELOCKCONTENDED",
                "acquire lock: contention exceeded retry budget".into(),
            )
        },
        LockError::NotAFile { kind } => plain(
            "ELOCKNOTFILE",
            format!(
                "lock path is {}, not a regular file; it was left untouched",
                crate::sys::describe_non_regular(kind)
            ),
        ),
        LockError::MetadataInvalid(why) => plain(
            "ERR_INVALID_ARG_VALUE",
            format!("metadata is not JSON: {why}"),
        ),
        LockError::MetadataTooLarge { size, limit } => plain(
            "ERR_OUT_OF_RANGE",
            format!("metadata is {size} bytes as JSON; the limit is {limit}"),
        ),
        LockError::NotHeld => plain(
            "ELOCKNOTHELD",
            "the lock is not held by this instance".into(),
        ),
        LockError::Cancelled => plain("ABORT_ERR", "The operation was aborted".into()),
        LockError::Io { op, path, source } => {
            let errno = source.raw_os_error();
            let code = errno
                .map(crate::sys::errno_name)
                .unwrap_or_else(|| "EIO".to_string());
            NativeFailure {
                syscall: Some(op.into()),
                errno,
                ..plain(
                    &code,
                    format!("{code}: {source}, {op} '{}'", path.display()),
                )
            }
        }
    }
}

fn done(record: Option<LeaseRecord>, removed: bool) -> NativeOutcome {
    NativeOutcome {
        ok: true,
        record,
        removed,
        failure: None,
    }
}

fn failed(e: LockError) -> NativeOutcome {
    NativeOutcome {
        ok: false,
        record: None,
        removed: false,
        failure: Some(failure(e)),
    }
}

fn lost_info(l: LeaseLost, stale_threshold: Duration) -> LostInfo {
    LostInfo {
        reason: l.reason.as_str().into(),
        new_owner: l.new_owner.as_ref().map(|o| {
            lease_record(
                o,
                owner::liveness(o),
                owner::is_stale(o, stale_threshold, SystemTime::now()),
            )
        }),
        error: l.error_code,
        at: epoch_ms(l.at),
    }
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

fn loss_handler(tsfn: LostFn, stale_threshold: Duration) -> lock::LossHandler {
    Arc::new(move |lost: LeaseLost| {
        // Closing (the environment is gone) or a full queue: nobody is left to tell.
        let _ = tsfn.call(
            lost_info(lost, stale_threshold),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    })
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

#[napi]
impl NativeLock {
    #[napi(constructor)]
    pub fn new(env: Env, path: String, options: NativeOptions) -> Self {
        let opts = Options {
            retry_limit: options.retry_limit.max(1),
            retry_delay: ms(options.retry_delay),
            invalid_stale: ms(options.invalid_stale),
            file_mode: options.file_mode,
            dir_mode: options.dir_mode,
            heartbeat_interval: ms(options.heartbeat_interval),
            stale_threshold: ms(options.stale_threshold),
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

    /// Acquires. The first attempt runs here on the JS thread (tens of microseconds of file
    /// work on a local disk) and its outcome is returned as is; only when the lock is held and
    /// `timeout` allows waiting, or a stale lock keeps changing, does the rest move to a worker
    /// thread, and then a promise is returned. `timeout`: `null` tries once; `Infinity` waits
    /// without end.
    #[napi(
        ts_args_type = "timeout: number | null, metadata: string | null, cancel: CancelToken | null, onLost: ((info: LostInfo) => void) | null, alive: ((pid: number) => boolean) | null",
        ts_return_type = "NativeOutcome | Promise<NativeOutcome>"
    )]
    pub fn acquire<'env>(
        &self,
        env: &'env Env,
        timeout: Option<f64>,
        metadata: Option<String>,
        cancel: Option<&CancelToken>,
        on_lost: Option<Function<LostInfo, ()>>,
        alive: Option<Function<f64, bool>>,
    ) -> Result<Either<NativeOutcome, PromiseRaw<'env, NativeOutcome>>> {
        let on_lost = match on_lost {
            Some(f) => Some(loss_handler(
                f.build_threadsafe_function().weak::<true>().build()?,
                self.lock.options().stale_threshold,
            )),
            None => None,
        };
        let wait = wait_for(timeout, cancel.map(|c| c.inner.clone()));
        let first = {
            let probe = alive
                .as_ref()
                .map(|f| move |pid: i64| -> bool { f.call(pid as f64).unwrap_or(true) });
            let probe_ref = probe.as_ref().map(|p| p as &dyn Fn(i64) -> bool);
            self.lock
                .acquire_without_sleeping(&wait, probe_ref, metadata.clone(), on_lost.clone())
        };
        match first {
            Ok(r) => return Ok(Either::A(done(r.map(assessment_record), false))),
            Err(Pending::MustWait) => {}
            Err(Pending::Failed(e)) => return Ok(Either::A(failed(e))),
        }
        let alive = match alive {
            Some(f) => Some(f.build_threadsafe_function().weak::<true>().build()?),
            None => None,
        };
        let lock = self.lock.clone();
        let promise = env.spawn_future(async move {
            let outcome = tokio::task::spawn_blocking(move || {
                let probe = alive.as_ref().map(|t| move |pid: i64| ask_alive(t, pid));
                let probe_ref = probe.as_ref().map(|p| p as &dyn Fn(i64) -> bool);
                match lock.acquire(&wait, probe_ref, metadata, on_lost) {
                    Ok(r) => done(r.map(assessment_record), false),
                    Err(e) => failed(e),
                }
            })
            .await;
            outcome.map_err(|e| Error::from_reason(format!("acquire task failed: {e}")))
        })?;
        Ok(Either::B(promise))
    }

    /// Acquires on the JS thread; waiting (when `timeout` allows) blocks it.
    #[napi(
        ts_args_type = "timeout: number | null, metadata: string | null, onLost: ((info: LostInfo) => void) | null, alive: ((pid: number) => boolean) | null"
    )]
    pub fn acquire_sync(
        &self,
        timeout: Option<f64>,
        metadata: Option<String>,
        on_lost: Option<Function<LostInfo, ()>>,
        alive: Option<Function<f64, bool>>,
    ) -> Result<NativeOutcome> {
        let on_lost = match on_lost {
            Some(f) => Some(loss_handler(
                f.build_threadsafe_function().weak::<true>().build()?,
                self.lock.options().stale_threshold,
            )),
            None => None,
        };
        let probe = alive
            .as_ref()
            .map(|f| move |pid: i64| -> bool { f.call(pid as f64).unwrap_or(true) });
        let probe_ref = probe.as_ref().map(|p| p as &dyn Fn(i64) -> bool);
        let wait = wait_for(timeout, None);
        Ok(
            match self.lock.acquire(&wait, probe_ref, metadata, on_lost) {
                Ok(r) => done(r.map(assessment_record), false),
                Err(e) => failed(e),
            },
        )
    }

    /// Releases on the JS thread: a rename, a stat and an unlink.
    #[napi]
    pub fn release(&self) -> NativeOutcome {
        match self.lock.release() {
            Ok(removed) => done(None, removed),
            Err(e) => failed(e),
        }
    }

    /// Replaces the metadata on the JS thread (a few file operations).
    #[napi]
    pub fn update(&self, metadata: Option<String>) -> NativeOutcome {
        match self.lock.update(metadata) {
            Ok(()) => done(None, false),
            Err(e) => failed(e),
        }
    }

    /// The record this instance wrote, while it holds the lock.
    #[napi]
    pub fn lease(&self) -> Option<LeaseRecord> {
        self.lock
            .current_lease()
            .map(|l| lease_record(&l, Liveness::Alive, false))
    }

    #[napi]
    pub fn inspect<'env>(
        env: &'env Env,
        path: String,
        stale_threshold: f64,
        invalid_stale: f64,
    ) -> Result<PromiseRaw<'env, NativeOutcome>> {
        env.spawn_future(async move {
            tokio::task::spawn_blocking(move || inspect_now(path, stale_threshold, invalid_stale))
                .await
                .map_err(|e| Error::from_reason(format!("inspect task failed: {e}")))
        })
    }

    #[napi]
    pub fn inspect_sync(path: String, stale_threshold: f64, invalid_stale: f64) -> NativeOutcome {
        inspect_now(path, stale_threshold, invalid_stale)
    }
}

fn inspect_now(path: String, stale_threshold: f64, invalid_stale: f64) -> NativeOutcome {
    let limits = Thresholds {
        stale: ms(stale_threshold),
        invalid: ms(invalid_stale),
    };
    match lock::inspect(&PathBuf::from(path), limits) {
        Ok(found) => done(found.map(assessment_record), false),
        Err(e) => failed(e),
    }
}
