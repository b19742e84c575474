//! The lock itself: acquire, takeover, heartbeat, update and release for one lock path.
//!
//! # Why takeover is race-free
//! A contender that finds the lock stale (or its owner dead) keeps a snapshot of what it judged:
//! the file's identity (device, inode) and its bytes. It first takes the takeover claim - a
//! small file `.<name>.takeover` beside the lock, published like a lock - so contenders of this
//! package take over one at a time (a claim whose taker died, or older than [`CLAIM_STALE`], is
//! broken). It then writes its own complete lease to a private name and swaps that name with
//! the lock path in one `renameat2(RENAME_EXCHANGE)`. The lock path is never empty, so no
//! third contender can slip a new lock in. The file that came out of the path is compared with
//! the snapshot: same inode and same bytes means it is the very file judged stale, unchanged
//! since (a live holder rewrites its heartbeat in place, which changes the bytes), and it is
//! deleted - the takeover is complete. Anything else means somebody else won (a Go contender,
//! which takes no claim) or the holder woke up: the exchange is undone (the path gets its file
//! back), only our own file is deleted, and we report contention. Without the claim, undos of
//! several contenders could chain and hand the path to a loser; with it, an exchange is never
//! undone while another of ours is in flight - unless a taker stalled past `CLAIM_STALE` with
//! the claim in hand (a frozen process); then the chain can leave an unrenewed lease at the
//! path (it goes stale) and a file at a private name, but still deletes nobody's fresh lock. Nobody deletes a lock that was fresh when
//! deleted: the only deletion is of a file proven to be the stale one, after it has left the
//! path. The holder whose file is briefly swapped out may see its path name another file for a
//! few microseconds; its heartbeat tolerates that for [`DISPLACED_GRACE`] before it calls the
//! lease lost. Where the exchange is not supported (not Linux, or a filesystem without it) the
//! claim is a `rename` of the stale file to a private name, verified the same way; a wrong
//! claim is put back with `link`, which cannot overwrite a newer lock. That fallback leaves the
//! path empty for the microseconds of a wrong claim, which is documented as a weaker guarantee.
//!
//! # Why release cannot delete a new owner's lock
//! Release reads our file through the handle we keep (someone may have written their record
//! into it: then it is theirs). While our lease is fresh nobody may take it over, so the path
//! is still ours; past that, it first checks that the path still names our file (we keep it
//! open, so its inode cannot be reused). Then it renames the path to a private name - atomic, so
//! what moves is exactly one file - and deletes it only if the moved file is ours. If a takeover
//! happened in between, the moved file is the new owner's and it is linked straight back.

use crate::error::{Holder, LeaseLost, Liveness, LockError, LossReason};
use crate::heartbeat;
use crate::lease::{self, Lease};
use crate::owner;
use crate::sys::{self, OwnedFile, PathError, Snapshot};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long a holder tolerates its lock path naming another file (or none) before it calls the
/// lease lost. A contender's exchange that it then undoes lasts microseconds.
pub const DISPLACED_GRACE: Duration = Duration::from_millis(25);
/// While waiting for a held lock, how often to look again.
pub const WAIT_POLL: Duration = Duration::from_millis(20);
/// Metadata larger than this (as compact JSON) is refused.
pub const METADATA_LIMIT: usize = 4096;
/// Consecutive transient create errors (see `Attempt::Transient`) before they are reported.
const TRANSIENT_LIMIT: u32 = 50;
/// A takeover claim older than this is broken: its taker stalled or died mid-takeover.
pub const CLAIM_STALE: Duration = Duration::from_secs(1);
/// A heartbeat checks that the lock path still names our file on every this many beats (and on
/// every beat while anything looked wrong); the other beats check our open file only.
pub const PATH_CHECK_EVERY: u32 = 4;

/// Options, with the Go package's defaults. The binding validates them.
#[derive(Debug, Clone)]
pub struct Options {
    pub retry_limit: u32,
    pub retry_delay: Duration,
    pub invalid_stale: Duration,
    pub file_mode: u32,
    pub dir_mode: u32,
    pub heartbeat_interval: Duration,
    pub stale_threshold: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retry_limit: 12,
            retry_delay: Duration::from_millis(20),
            invalid_stale: Duration::from_millis(1200),
            file_mode: 0o644,
            dir_mode: 0o755,
            heartbeat_interval: Duration::from_millis(250),
            stale_threshold: Duration::from_secs(3),
        }
    }
}

/// Called once when a held lease is lost, from the heartbeat thread.
pub type LossHandler = Arc<dyn Fn(LeaseLost) + Send + Sync>;

/// What an acquisition took over, if anything.
#[derive(Debug, Clone)]
pub enum Reclaimed {
    /// A lease whose owner was dead or whose heartbeat was stale.
    Lease(Holder),
    /// A file whose content was not a lease, older than the invalid-content threshold.
    Invalid { bytes: usize, modified: SystemTime },
}

/// How long `acquire` may wait for a held lock.
#[derive(Clone, Default)]
pub struct Wait {
    /// `None`: try once (Go's behaviour). `Some(None)`: wait without end.
    pub until: Option<Option<Instant>>,
    pub cancel: Option<Arc<Cancel>>,
    /// Answer `WouldWait` instead of sleeping: the binding makes its first attempt on the JS
    /// thread, where it must not block, and only moves to a worker thread when it has to wait.
    pub no_sleep: bool,
}

impl Wait {
    pub fn once() -> Self {
        Wait::default()
    }

    pub fn for_duration(d: Option<Duration>, cancel: Option<Arc<Cancel>>) -> Self {
        Wait {
            // A deadline too far to represent is no deadline.
            until: Some(d.and_then(|d| Instant::now().checked_add(d))),
            cancel,
            no_sleep: false,
        }
    }

    /// The same wait, answering `WouldWait` where it would sleep.
    pub fn without_sleeping(&self) -> Self {
        Wait {
            no_sleep: true,
            ..self.clone()
        }
    }

    fn expired(&self) -> bool {
        match self.until {
            None => true,
            Some(None) => false,
            Some(Some(t)) => Instant::now() >= t,
        }
    }

    /// Sleeps `d` (cut short by the deadline), or returns `Cancelled` as soon as cancelled.
    fn sleep(&self, d: Duration) -> Result<(), LockError> {
        if self.no_sleep {
            return Err(LockError::WouldWait);
        }
        let d = match self.until {
            Some(Some(t)) => d.min(t.saturating_duration_since(Instant::now())),
            _ => d,
        };
        match &self.cancel {
            Some(c) => c.sleep(d),
            None => {
                std::thread::sleep(d);
                Ok(())
            }
        }
    }
}

/// A cancellation flag that wakes a sleeping waiter at once.
#[derive(Default)]
pub struct Cancel {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Cancel {
    pub fn cancel(&self) {
        *lock(&self.flag) = true;
        self.cv.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        *lock(&self.flag)
    }

    fn sleep(&self, d: Duration) -> Result<(), LockError> {
        let deadline = Instant::now() + d;
        let mut done = lock(&self.flag);
        loop {
            if *done {
                return Err(LockError::Cancelled);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            done = match self.cv.wait_timeout(done, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// A poisoned mutex here only means another thread panicked while holding it; the state it
/// protects is still consistent (every update is a single assignment), so carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One lock path as seen by one `PidLock` instance.
pub struct Lock {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    id: u64,
    path: PathBuf,
    opts: Options,
    /// Which JS environment (main thread or worker) owns this lock; its locks are released
    /// together when that environment ends.
    group: u64,
    state: Mutex<State>,
    held: AtomicBool,
    /// `owner::clock_nanos()` of the acquisition or the last heartbeat that confirmed the lease.
    confirmed_at: AtomicU64,
}

enum State {
    Idle,
    Held(Box<Holding>),
}

struct Holding {
    file: OwnedFile,
    lease: Lease,
    written: Vec<u8>,
    last_ok: Instant,
    beats: u32,
    displaced_since: Option<Instant>,
    last_error: Option<io::Error>,
    on_lost: Option<LossHandler>,
}

impl Lock {
    pub fn new(path: PathBuf, opts: Options, group: u64) -> Self {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Lock {
            inner: Arc::new(Inner {
                id: IDS.fetch_add(1, Ordering::Relaxed),
                path,
                opts,
                group,
                state: Mutex::new(State::Idle),
                held: AtomicBool::new(false),
                confirmed_at: AtomicU64::new(0),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Whether this instance holds the lock with a lease it can vouch for. No I/O: false once a
    /// loss is known, and also while the last confirmed heartbeat is older than the stale
    /// threshold less one interval - after the process was frozen or asleep that long, the
    /// lock may have been taken, and it counts as held again only once the heartbeat (which
    /// runs at once on waking) has confirmed it.
    pub fn held(&self) -> bool {
        if !self.inner.held.load(Ordering::Acquire) {
            return false;
        }
        let confirmed = self.inner.confirmed_at.load(Ordering::Acquire);
        let trust = self
            .inner
            .opts
            .stale_threshold
            .saturating_sub(self.inner.opts.heartbeat_interval);
        owner::clock_nanos().saturating_sub(confirmed) < trust.as_nanos() as u64
    }

    /// Acquires the lock, waiting as `wait` allows. `alive` overrides the liveness probe (the
    /// user's `processAppearsAlive`). Calls on one instance are serialised.
    pub fn acquire(
        &self,
        wait: &Wait,
        alive: Option<&dyn Fn(i64) -> bool>,
        metadata: Option<String>,
        on_lost: Option<LossHandler>,
    ) -> Result<Option<Reclaimed>, LockError> {
        let metadata = metadata.map(|m| compact_metadata(&m)).transpose()?;
        let mut contended = 0u32;
        let mut transient = 0u32;
        loop {
            if let Some(c) = &wait.cancel {
                if c.is_cancelled() {
                    return Err(LockError::Cancelled);
                }
            }
            {
                let mut st = lock(&self.inner.state);
                if matches!(*st, State::Held(_)) {
                    return Ok(None);
                }
                match self.inner.attempt(alive, metadata.clone())? {
                    Attempt::Acquired(holding, reclaimed) => {
                        let mut holding = holding;
                        holding.on_lost = on_lost;
                        *st = State::Held(holding);
                        self.inner.confirm();
                        self.inner.held.store(true, Ordering::Release);
                        drop(st);
                        heartbeat::start(&self.inner);
                        return Ok(reclaimed);
                    }
                    Attempt::Held(holder) => {
                        transient = 0;
                        if wait.expired() {
                            return Err(LockError::Held { holder });
                        }
                    }
                    Attempt::Transient(e) => {
                        // A real permission problem answers the same: after a second of it,
                        // say so instead of waiting forever.
                        transient += 1;
                        if transient >= TRANSIENT_LIMIT {
                            return Err(LockError::io("create", &self.inner.path, e));
                        }
                        drop(st);
                        wait.sleep(self.inner.opts.retry_delay.max(Duration::from_millis(1)))?;
                        continue;
                    }
                    Attempt::Contended { pause } => {
                        contended += 1;
                        // The retry budget is Go's rule for a single try; a caller that may
                        // still wait just keeps going.
                        if contended >= self.inner.opts.retry_limit && wait.expired() {
                            return Err(LockError::RetryBudgetExhausted {
                                attempts: contended,
                            });
                        }
                        if !pause {
                            continue;
                        }
                        drop(st);
                        if !self.inner.opts.retry_delay.is_zero() {
                            wait.sleep(self.inner.opts.retry_delay)?;
                        }
                        continue;
                    }
                }
            }
            wait.sleep(WAIT_POLL)?;
        }
    }

    /// Releases the lock if this instance holds it. `Ok(true)` when it removed the file,
    /// `Ok(false)` when there was nothing of ours to remove.
    pub fn release(&self) -> Result<bool, LockError> {
        let mut st = lock(&self.inner.state);
        self.inner.release_locked(&mut st)
    }

    /// Replaces the metadata of a held lease. Readers see the old record or the new one.
    pub fn update(&self, metadata: Option<String>) -> Result<(), LockError> {
        let metadata = metadata.map(|m| compact_metadata(&m)).transpose()?;
        let mut st = lock(&self.inner.state);
        let State::Held(h) = &mut *st else {
            return Err(LockError::NotHeld);
        };
        let now = SystemTime::now();
        let mut next = h
            .lease
            .with_heartbeat(owner::unix_nanos(now), sys::boot_nanos());
        next.metadata_json = metadata;
        let bytes = next.encode();
        let path = &self.inner.path;
        if bytes.len() != h.written.len() {
            // A new length cannot be written in place without a reader seeing a mix, so the new
            // record goes to a private name and is exchanged with ours in one step.
            let (temp, file) = sys::write_private(path, &bytes, self.inner.opts.file_mode)
                .map_err(|e| LockError::io("write", path, e))?;
            match sys::exchange(&temp, path) {
                Ok(true) => {
                    let out = sys::open_private(&temp).ok().map(|(_, id)| id);
                    if out == Some(h.file.id) {
                        let _ = std::fs::remove_file(&temp);
                        h.file = file;
                        h.lease = next;
                        h.written = bytes;
                        return Ok(());
                    }
                    // Not ours any more: give the path its file back; the heartbeat will
                    // report the loss.
                    let _ = sys::exchange(&temp, path);
                    let _ = std::fs::remove_file(&temp);
                    return Err(LockError::NotHeld);
                }
                Ok(false) => {
                    let _ = std::fs::remove_file(&temp);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    return Err(LockError::io("rename", path, e));
                }
            }
        }
        h.file
            .rewrite(&bytes, h.written.len())
            .map_err(|e| LockError::io("write", path, e))?;
        h.lease = next;
        h.written = bytes;
        Ok(())
    }

    /// The lease this instance wrote, while it holds the lock.
    pub fn current_lease(&self) -> Option<Lease> {
        match &*lock(&self.inner.state) {
            State::Held(h) => Some(h.lease.clone()),
            State::Idle => None,
        }
    }
}

/// Metadata goes into the lease as JSON text, so it must be JSON: parsed and written back
/// compact here, whoever the caller is, so a lease can never be made invalid through it. The
/// size limit applies to the compact form.
fn compact_metadata(m: &str) -> Result<String, LockError> {
    let value: serde_json::Value =
        serde_json::from_str(m).map_err(|e| LockError::MetadataInvalid(e.to_string()))?;
    let compact = value.to_string();
    if compact.len() > METADATA_LIMIT {
        return Err(LockError::MetadataTooLarge {
            size: compact.len(),
            limit: METADATA_LIMIT,
        });
    }
    Ok(compact)
}

enum Attempt {
    Acquired(Box<Holding>, Option<Reclaimed>),
    /// A create error that usually means contention (Windows: a delete-pending file answers
    /// access denied); retried like contention, but only so long.
    Transient(io::Error),
    Held(Option<Box<Holder>>),
    /// The file changed or vanished between our steps; `pause`: sleep the retry delay first.
    Contended {
        pause: bool,
    },
}

/// What a snapshot of the lock path means.
enum Judgement {
    Held(Option<Box<Holder>>),
    Takeable(Reclaimed),
}

impl Inner {
    fn new_lease(&self, metadata: Option<String>) -> Lease {
        let now = SystemTime::now();
        let now_nano = owner::unix_nanos(now);
        let me = owner::this_process();
        Lease {
            owner_id: owner::new_owner_id(now_nano),
            pid: me.pid,
            last_heartbeat_unix_nano: now_nano,
            identity: me.identity.clone(),
            heartbeat_boot_nano: if me.identity.is_some() {
                sys::boot_nanos()
            } else {
                None
            },
            acquired_unix_nano: Some(now_nano),
            metadata_json: metadata,
        }
    }

    fn holding(&self, file: OwnedFile, lease: Lease, written: Vec<u8>) -> Box<Holding> {
        Box::new(Holding {
            file,
            lease,
            written,
            last_ok: Instant::now(),
            beats: 0,
            displaced_since: None,
            last_error: None,
            on_lost: None,
        })
    }

    /// One try: publish our lease if the path is free, else judge what is there and take it
    /// over when the rules allow.
    fn attempt(
        &self,
        alive: Option<&dyn Fn(i64) -> bool>,
        metadata: Option<String>,
    ) -> Result<Attempt, LockError> {
        let path = &self.path;
        let lease = self.new_lease(metadata);
        let bytes = lease.encode();
        crate::faults::point("acquire.before-publish");
        match self.publish(&bytes) {
            Ok(file) => return Ok(Attempt::Acquired(self.holding(file, lease, bytes), None)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if sys::is_transient_create_error(&e) => return Ok(Attempt::Transient(e)),
            Err(e) => return Err(LockError::io("create", path, e)),
        }
        let snap = match sys::snapshot(path) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(Attempt::Contended { pause: false }),
            Err(PathError::NotRegular(kind)) => return Err(LockError::NotAFile { kind }),
            Err(PathError::Io(e)) => return Err(LockError::io("read", path, e)),
        };
        match self.judge(&snap, alive) {
            Judgement::Held(holder) => Ok(Attempt::Held(holder)),
            Judgement::Takeable(reclaimed) => {
                crate::faults::point("takeover.after-judge");
                match self.take_over(&snap, &bytes)? {
                    Some(file) => Ok(Attempt::Acquired(
                        self.holding(file, lease, bytes),
                        Some(reclaimed),
                    )),
                    None => Ok(Attempt::Contended { pause: true }),
                }
            }
        }
    }

    /// Publishes a complete lease, creating missing parent directories once.
    fn publish(&self, bytes: &[u8]) -> io::Result<OwnedFile> {
        match sys::publish(&self.path, bytes, self.opts.file_mode) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                sys::create_parents(&self.path, self.opts.dir_mode)?;
                sys::publish(&self.path, bytes, self.opts.file_mode)
            }
            other => other,
        }
    }

    fn judge(&self, snap: &Snapshot, alive: Option<&dyn Fn(i64) -> bool>) -> Judgement {
        let parsed = if snap.oversized {
            Err(lease::Invalid::Syntax)
        } else {
            lease::parse(&snap.bytes)
        };
        let now = SystemTime::now();
        match parsed {
            Ok(lease) => {
                let liveness = match alive {
                    Some(f) => {
                        if f(lease.pid) {
                            Liveness::Alive
                        } else {
                            Liveness::Dead
                        }
                    }
                    None => owner::liveness(&lease),
                };
                let stale = owner::is_stale(&lease, self.opts.stale_threshold, now);
                let holder = Holder {
                    lease,
                    alive: liveness,
                    stale,
                };
                if liveness == Liveness::Dead || stale {
                    Judgement::Takeable(Reclaimed::Lease(holder))
                } else {
                    Judgement::Held(Some(Box::new(holder)))
                }
            }
            Err(_) => {
                let age = now.duration_since(snap.modified).unwrap_or(Duration::ZERO);
                if age < self.opts.invalid_stale {
                    Judgement::Held(None)
                } else {
                    Judgement::Takeable(Reclaimed::Invalid {
                        bytes: snap.bytes.len(),
                        modified: snap.modified,
                    })
                }
            }
        }
    }

    /// Replaces the stale file `snap` with our lease; `None` if it changed under us or another
    /// contender is taking it over right now. See the module documentation for why this is
    /// safe with any number of contenders.
    fn take_over(&self, snap: &Snapshot, bytes: &[u8]) -> Result<Option<OwnedFile>, LockError> {
        let Some(claim) = self.claim_takeover()? else {
            return Ok(None);
        };
        crate::faults::point("takeover.after-claim");
        let taken = self.take_over_claimed(snap, bytes);
        claim.give_up();
        taken
    }

    fn take_over_claimed(
        &self,
        snap: &Snapshot,
        bytes: &[u8],
    ) -> Result<Option<OwnedFile>, LockError> {
        let path = &self.path;
        // The claim may have come after another contender's takeover finished: then the path no
        // longer holds the judged file, and exchanging would only show readers our lease for a
        // moment and make the new holder's heartbeat look twice.
        if sys::id_at(path).ok().flatten() != Some(snap.id) {
            return Ok(None);
        }
        let (temp, ours) = sys::write_private(path, bytes, self.opts.file_mode)
            .map_err(|e| LockError::io("create", path, e))?;
        crate::faults::point("takeover.before-exchange");
        match sys::exchange(&temp, path) {
            Ok(true) => {}
            Ok(false) => {
                let _ = std::fs::remove_file(&temp);
                return self.take_over_by_rename(snap, bytes);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                if e.kind() == io::ErrorKind::NotFound {
                    return Ok(None);
                }
                return Err(LockError::io("rename", path, e));
            }
        }
        crate::faults::point("takeover.after-exchange");
        // `temp` now names what was at the path.
        if is_snapshot(&temp, snap) {
            let _ = std::fs::remove_file(&temp);
            return Ok(Some(ours));
        }
        // Somebody else's lock (a Go contender that does not take the claim), or a holder that
        // woke up: undo, and delete only our own file - never one that came back instead.
        match sys::exchange(&temp, path) {
            Ok(true) => {
                if sys::id_at(&temp).ok().flatten() == Some(ours.id) {
                    let _ = std::fs::remove_file(&temp);
                }
            }
            _ => {
                // The path vanished meanwhile: put theirs back if nothing else appeared.
                if std::fs::hard_link(&temp, path).is_ok() {
                    let _ = std::fs::remove_file(&temp);
                }
            }
        }
        Ok(None)
    }

    /// Takes the right to take this lock over: a small file beside it, published like a lock
    /// (`.<name>.takeover`). Contenders of this package take over one at a time, so an exchange
    /// is never undone while another contender's exchange is in flight - the chained undo that
    /// could otherwise hand the path to a loser and delete the winner's file. `None`: somebody
    /// else holds the claim; try again after the retry delay. A claim whose taker died, or
    /// older than [`CLAIM_STALE`] (a takeover takes microseconds), is broken.
    fn claim_takeover(&self) -> Result<Option<Claim>, LockError> {
        let path = sys::sibling(&self.path, "takeover");
        let record = self.new_lease(None).encode();
        for _ in 0..2 {
            match sys::publish(&path, &record, self.opts.file_mode) {
                Ok(file) => return Ok(Some(Claim { path, file })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if sys::is_transient_create_error(&e) => return Ok(None),
                Err(e) => return Err(LockError::io("create", &path, e)),
            }
            let snap = match sys::snapshot(&path) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(_) => return Ok(None),
            };
            let age = SystemTime::now()
                .duration_since(snap.modified)
                .unwrap_or(Duration::ZERO);
            let taker_dead =
                matches!(lease::parse(&snap.bytes), Ok(l) if owner::liveness(&l) == Liveness::Dead);
            if !taker_dead && age < CLAIM_STALE {
                return Ok(None);
            }
            remove_if_unchanged(&path, &snap);
        }
        Ok(None)
    }
    /// The fallback claim where an atomic exchange is not available.
    fn take_over_by_rename(
        &self,
        snap: &Snapshot,
        bytes: &[u8],
    ) -> Result<Option<OwnedFile>, LockError> {
        let path = &self.path;
        let private = sys::private_name(path, "claim");
        match std::fs::rename(path, &private) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LockError::io("rename", path, e)),
        }
        if !is_snapshot(&private, snap) {
            let _ = std::fs::hard_link(&private, path);
            let _ = std::fs::remove_file(&private);
            return Ok(None);
        }
        let _ = std::fs::remove_file(&private);
        match self.publish(bytes) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(LockError::io("create", path, e)),
        }
    }

    fn release_locked(&self, st: &mut State) -> Result<bool, LockError> {
        let State::Held(h) = std::mem::replace(st, State::Idle) else {
            return Ok(false);
        };
        self.held.store(false, Ordering::Release);
        let path = &self.path;
        // Someone may have written their own record into our very file (the Go package's
        // tests do exactly that): then it is theirs, whatever its inode.
        if let Ok(current) = h.file.read_expecting(h.written.len()) {
            if current != h.written && !carries_owner(&current, &h.lease.owner_id) {
                return Ok(false);
            }
        }
        // Nobody may take a lease over while it is fresh, so within one stale threshold of our
        // last confirmed heartbeat the path is still ours and the claim below can go first.
        // Past that, look before claiming, so that a lock already taken from us is not even
        // moved for a moment.
        if h.last_ok.elapsed() + self.opts.heartbeat_interval >= self.opts.stale_threshold {
            match sys::id_at(path) {
                Ok(Some(id)) if id == h.file.id => {}
                // Not ours any more (lost, or removed by hand): leave it alone.
                _ => return Ok(false),
            }
        }
        crate::faults::point("release.before-claim");
        let private = sys::private_name(path, "release");
        if let Err(e) = std::fs::rename(path, &private) {
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(false);
            }
            // Still ours and still there: keep holding so the caller can try again.
            // Its heartbeat entry is still queued and finds it held again.
            *st = State::Held(h);
            self.held.store(true, Ordering::Release);
            return Err(LockError::io("rename", path, e));
        }
        crate::faults::point("release.after-claim");
        if sys::id_at(&private).ok().flatten() == Some(h.file.id) {
            let _ = std::fs::remove_file(&private);
            return Ok(true);
        }
        // A takeover slipped in between our check and our claim: that lock is not ours.
        let _ = std::fs::hard_link(&private, path);
        let _ = std::fs::remove_file(&private);
        Ok(false)
    }

    /// One heartbeat. Returns when to beat next (`None`: stop), and a loss to report.
    pub(crate) fn beat(&self) -> (Option<Instant>, Option<(LossHandler, LeaseLost)>) {
        // Released locks are skipped without touching the mutex a caller may be using.
        if !self.is_held() {
            return (None, None);
        }
        let mut st = lock(&self.state);
        let State::Held(h) = &mut *st else {
            return (None, None);
        };
        let now = Instant::now();
        let interval = self.opts.heartbeat_interval;
        let verdict = renew(&self.path, h);
        crate::faults::point("heartbeat.after-write");
        let loss = match verdict {
            Renewal::Ok => {
                self.confirm();
                h.last_ok = now;
                h.displaced_since = None;
                h.last_error = None;
                return (Some(now + interval), None);
            }
            Renewal::Lost(reason, new_owner) => Some((reason, new_owner, None)),
            Renewal::Displaced(reason, new_owner) => {
                let since = *h.displaced_since.get_or_insert(now);
                if now.duration_since(since) >= DISPLACED_GRACE {
                    Some((reason, new_owner, None))
                } else {
                    return (Some(now + DISPLACED_GRACE / 5), None);
                }
            }
            Renewal::Failed(e) => {
                // A transient error (EMFILE, EIO, ESTALE) is retried until shortly before
                // others may take the lease over: its last good heartbeat plus the stale
                // threshold, less one interval of margin.
                let give_up = h.last_ok + self.opts.stale_threshold.saturating_sub(interval);
                let code = e.raw_os_error().map(sys::errno_name);
                h.last_error = Some(e);
                if now >= give_up {
                    Some((LossReason::HeartbeatFailed, None, code))
                } else {
                    let retry = (interval / 4).max(Duration::from_millis(5));
                    return (Some((now + retry).min(give_up)), None);
                }
            }
        };
        let (reason, new_owner, error_code) = loss.unwrap_or((LossReason::Removed, None, None));
        let State::Held(h) = std::mem::replace(&mut *st, State::Idle) else {
            return (None, None);
        };
        self.held.store(false, Ordering::Release);
        drop(st);
        let report = h.on_lost.map(|f| {
            (
                f,
                LeaseLost {
                    reason,
                    new_owner,
                    error_code,
                    at: SystemTime::now(),
                },
            )
        });
        (None, report)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    fn confirm(&self) {
        self.confirmed_at
            .store(owner::clock_nanos(), Ordering::Release);
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        self.opts.heartbeat_interval
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    pub(crate) fn group(&self) -> u64 {
        self.group
    }

    /// Releases whatever this instance holds, for process or environment exit. Never waits
    /// long for a heartbeat in progress.
    pub(crate) fn release_for_exit(&self) {
        let mut st = match self.state.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                // A heartbeat is writing; it finishes within microseconds on a local disk.
                std::thread::sleep(Duration::from_millis(2));
                match self.state.try_lock() {
                    Ok(g) => g,
                    Err(_) => return,
                }
            }
        };
        let _ = self.release_locked(&mut st);
    }
}

enum Renewal {
    Ok,
    /// Definitive: our own file now carries someone else's record.
    Lost(LossReason, Option<Lease>),
    /// The path names another file or none; may be a contender's exchange in flight.
    Displaced(LossReason, Option<Lease>),
    Failed(io::Error),
}

/// Checks that the lease is still ours and rewrites its heartbeat, through the file we keep
/// open (never by path), then checks that the path still names that file.
fn renew(path: &Path, h: &mut Holding) -> Renewal {
    // First our own file, through the handle: still linked, still the length we wrote? A
    // completed takeover unlinks it, so this cheap check sees every lasting loss of the lock.
    let (len, links) = match h.file.stat() {
        Ok(found) => found,
        Err(e) => return Renewal::Failed(e),
    };
    if links == 0 {
        return lost_to_whatever_is_at(path, true);
    }
    // The path itself (renamed away, replaced while our file lives on elsewhere) is looked at
    // every few beats, and at every beat while something looked wrong.
    h.beats = h.beats.wrapping_add(1);
    if h.beats.is_multiple_of(PATH_CHECK_EVERY) || h.displaced_since.is_some() {
        match sys::id_at(path) {
            Ok(Some(id)) if id == h.file.id => {}
            Ok(_) => return lost_to_whatever_is_at(path, false),
            Err(e) => return Renewal::Failed(e),
        }
    }
    if len != h.written.len() as u64 {
        // Someone wrote into our very file. Theirs, unless it still carries our owner id.
        match h.file.read() {
            Ok(current) if !carries_owner(&current, &h.lease.owner_id) => {
                return Renewal::Lost(LossReason::OwnerChanged, lease::parse(&current).ok());
            }
            Ok(_) => {}
            Err(e) => return Renewal::Failed(e),
        }
    }
    // Then the write, through the file we keep open - never by path. If a takeover slipped in
    // since the checks, this lands in our own displaced file, harmlessly, and a later beat
    // sees it.
    let old_len = h.written.len();
    h.lease.last_heartbeat_unix_nano = owner::unix_nanos(SystemTime::now());
    if h.lease.heartbeat_boot_nano.is_some() {
        h.lease.heartbeat_boot_nano = sys::boot_nanos();
    }
    if !lease::patch_heartbeat(&mut h.written, &h.lease) {
        h.written = h.lease.encode();
    }
    if let Some(e) = crate::faults::error("heartbeat.write") {
        return Renewal::Failed(e);
    }
    match h.file.rewrite(&h.written, old_len) {
        Ok(()) => Renewal::Ok,
        Err(e) => Renewal::Failed(e),
    }
}

fn lost_to_whatever_is_at(path: &Path, definitive: bool) -> Renewal {
    let (reason, owner) = match sys::snapshot(path) {
        Ok(Some(s)) => match lease::parse(&s.bytes) {
            Ok(l) => (LossReason::OwnerChanged, Some(l)),
            Err(_) => (LossReason::Removed, None),
        },
        _ => (LossReason::Removed, None),
    };
    if definitive {
        Renewal::Lost(reason, owner)
    } else {
        Renewal::Displaced(reason, owner)
    }
}

/// The right to take one lock over; see `Inner::claim_takeover`.
struct Claim {
    path: PathBuf,
    file: OwnedFile,
}

impl Claim {
    fn give_up(self) {
        if sys::id_at(&self.path).ok().flatten() == Some(self.file.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the file at `path` if it is still the one in `snap`: claimed by a rename first, so
/// a newer file is never removed, and put back if the claim caught one.
fn remove_if_unchanged(path: &Path, snap: &Snapshot) {
    let private = sys::private_name(path, "stale");
    if std::fs::rename(path, &private).is_err() {
        return;
    }
    // Ours to delete if it is the stale one; otherwise it goes back (unless something newer
    // took the name meanwhile, and then it stays at the private name rather than be lost).
    if is_snapshot(&private, snap) || std::fs::hard_link(&private, path).is_ok() {
        let _ = std::fs::remove_file(&private);
    }
}

/// Whether `bytes` are a valid lease with this owner id.
fn carries_owner(bytes: &[u8], owner_id: &str) -> bool {
    matches!(lease::parse(bytes), Ok(l) if l.owner_id == owner_id)
}

/// Whether `path` (a private name) holds exactly the file judged in `snap`.
fn is_snapshot(path: &Path, snap: &Snapshot) -> bool {
    let Ok((file, id)) = sys::open_private(path) else {
        return false;
    };
    if id != snap.id {
        return false;
    }
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    match sys::read_capped(&file, len) {
        Ok((bytes, oversized)) => oversized == snap.oversized && bytes == snap.bytes,
        Err(_) => false,
    }
}

/// Reads the lock at `path` without taking it: `None` when free.
pub fn inspect(path: &Path, opts: &Options) -> Result<Option<Inspection>, LockError> {
    let snap = match sys::snapshot(path) {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(None),
        Err(PathError::NotRegular(kind)) => return Err(LockError::NotAFile { kind }),
        Err(PathError::Io(e)) => return Err(LockError::io("read", path, e)),
    };
    let now = SystemTime::now();
    match if snap.oversized {
        Err(lease::Invalid::Syntax)
    } else {
        lease::parse(&snap.bytes)
    } {
        Ok(lease) => {
            let alive = owner::liveness(&lease);
            let stale = owner::is_stale(&lease, opts.stale_threshold, now);
            Ok(Some(Inspection::Lease(Holder {
                lease,
                alive,
                stale,
            })))
        }
        Err(_) => {
            let age = now.duration_since(snap.modified).unwrap_or(Duration::ZERO);
            Ok(Some(Inspection::Invalid {
                bytes: snap.bytes.len(),
                modified: snap.modified,
                stale: age >= opts.invalid_stale,
            }))
        }
    }
}

#[derive(Debug, Clone)]
pub enum Inspection {
    Lease(Holder),
    Invalid {
        bytes: usize,
        modified: SystemTime,
        stale: bool,
    },
}

/// Releases every lock held by one environment (`Some(group)`) or by the whole process, as
/// the environment or the process ends. Fenced like any release.
pub fn release_held_for_exit(group: Option<u64>) {
    for inner in heartbeat::held_locks(group) {
        inner.release_for_exit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "leaselock-unit-{tag}-{}-{}",
            std::process::id(),
            owner::unix_nanos(SystemTime::now())
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn fast() -> Options {
        Options {
            heartbeat_interval: Duration::from_millis(20),
            stale_threshold: Duration::from_millis(300),
            ..Options::default()
        }
    }

    fn go_lease(pid: i64, age: Duration) -> Vec<u8> {
        let hb = owner::unix_nanos(SystemTime::now() - age);
        format!("{{\"version\":1,\"ownerID\":\"{pid}-{hb}-1\",\"pid\":{pid},\"lastHeartbeatUnixNano\":{hb}}}\n")
            .into_bytes()
    }

    fn loss_channel() -> (LossHandler, mpsc::Receiver<LeaseLost>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        (
            Arc::new(move |l| {
                let _ = lock(&tx).send(l);
            }),
            rx,
        )
    }

    #[test]
    fn acquire_release_and_exclusion_within_one_process() {
        let dir = temp_dir("basic");
        let path = dir.join("sub/dir/a.lock");
        let a = Lock::new(path.clone(), fast(), 0);
        let b = Lock::new(path.clone(), fast(), 0);
        assert!(a
            .acquire(&Wait::once(), None, None, None)
            .unwrap()
            .is_none());
        assert!(a.held());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"version\":1,\"ownerID\":\""));
        match b.acquire(&Wait::once(), None, None, None) {
            Err(LockError::Held { holder: Some(h) }) => {
                assert_eq!(h.lease.pid, std::process::id() as i64);
                assert_eq!(h.alive, Liveness::Alive);
            }
            other => panic!("expected held, got {other:?}"),
        }
        // Acquire on a holder is a no-op; heartbeats keep it fresh past the stale threshold.
        assert!(a
            .acquire(&Wait::once(), None, None, None)
            .unwrap()
            .is_none());
        std::thread::sleep(Duration::from_millis(500));
        assert!(matches!(
            b.acquire(&Wait::once(), None, None, None),
            Err(LockError::Held { .. })
        ));
        assert!(a.release().unwrap());
        assert!(!path.exists());
        assert!(!a.release().unwrap());
        assert!(b.acquire(&Wait::once(), None, None, None).is_ok());
        assert!(b.release().unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn many_threads_take_over_one_stale_lease_exactly_once() {
        let dir = temp_dir("race");
        let path = dir.join("x.lock");
        for round in 0..20 {
            std::fs::write(
                &path,
                go_lease(std::process::id() as i64, Duration::from_secs(10)),
            )
            .unwrap();
            let n = 12;
            let barrier = Arc::new(std::sync::Barrier::new(n));
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let l = Lock::new(path, fast(), 0);
                        barrier.wait();
                        let r = l.acquire(&Wait::once(), None, None, None);
                        (r.is_ok(), l)
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let winners: Vec<_> = results.iter().filter(|(ok, _)| *ok).collect();
            assert_eq!(winners.len(), 1, "round {round}: exactly one holder");
            let lease = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(
                Some(lease.owner_id),
                winners[0].1.current_lease().map(|l| l.owner_id)
            );
            for (_, l) in &results {
                l.release().unwrap();
            }
            assert!(!path.exists());
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(leftovers.is_empty(), "no temp files left behind");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn release_after_takeover_leaves_new_owner_alone_and_loss_is_reported_once() {
        let dir = temp_dir("fence");
        let path = dir.join("x.lock");
        let a = Lock::new(path.clone(), fast(), 0);
        let (on_lost, lost) = loss_channel();
        a.acquire(&Wait::once(), None, None, Some(on_lost)).unwrap();
        // B proves A "dead" through the override and takes over.
        let b = Lock::new(path.clone(), fast(), 0);
        let dead = |_pid: i64| false;
        let reclaimed = b.acquire(&Wait::once(), Some(&dead), None, None).unwrap();
        assert!(matches!(reclaimed, Some(Reclaimed::Lease(_))));
        let notice = lost.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(notice.reason, LossReason::OwnerChanged);
        assert!(!a.held());
        assert!(!a.release().unwrap());
        let on_disk = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            Some(on_disk.owner_id),
            b.current_lease().map(|l| l.owner_id)
        );
        assert!(
            lost.recv_timeout(Duration::from_millis(200)).is_err(),
            "only once"
        );
        b.release().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn heartbeat_notices_foreign_overwrite_and_removal() {
        let dir = temp_dir("hb");
        let path = dir.join("x.lock");
        let a = Lock::new(path.clone(), fast(), 0);
        let (on_lost, lost) = loss_channel();
        a.acquire(&Wait::once(), None, None, Some(on_lost)).unwrap();
        std::fs::write(&path, go_lease(4242, Duration::ZERO)).unwrap();
        let notice = lost.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(notice.reason, LossReason::OwnerChanged);
        assert_eq!(notice.new_owner.map(|l| l.pid), Some(4242));
        assert!(path.exists(), "a lost lease leaves the file alone");
        std::fs::remove_file(&path).unwrap();

        let (on_lost, lost) = loss_channel();
        a.acquire(&Wait::once(), None, None, Some(on_lost)).unwrap();
        std::fs::remove_file(&path).unwrap();
        let notice = lost.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(notice.reason, LossReason::Removed);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn invalid_content_is_held_until_old_enough() {
        let dir = temp_dir("invalid");
        let path = dir.join("x.lock");
        std::fs::write(&path, b"not-a-lease-json").unwrap();
        let l = Lock::new(path.clone(), fast(), 0);
        assert!(matches!(
            l.acquire(&Wait::once(), None, None, None),
            Err(LockError::Held { holder: None })
        ));
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(2))
            .unwrap();
        drop(f);
        match l.acquire(&Wait::once(), None, None, None) {
            Ok(Some(Reclaimed::Invalid { bytes, .. })) => assert_eq!(bytes, 16),
            other => panic!("expected reclaim of invalid content, got {other:?}"),
        }
        l.release().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn waiting_acquire_gets_the_lock_on_release_and_can_be_cancelled() {
        let dir = temp_dir("wait");
        let path = dir.join("x.lock");
        let a = Arc::new(Lock::new(path.clone(), fast(), 0));
        a.acquire(&Wait::once(), None, None, None).unwrap();
        let cancel = Arc::new(Cancel::default());
        let waiter = {
            let (path, cancel) = (path.clone(), cancel.clone());
            std::thread::spawn(move || {
                let b = Lock::new(path, fast(), 0);
                b.acquire(&Wait::for_duration(None, Some(cancel)), None, None, None)
                    .map(|_| ())
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        cancel.cancel();
        assert!(matches!(waiter.join().unwrap(), Err(LockError::Cancelled)));

        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let b = Lock::new(path, fast(), 0);
                let r = b.acquire(
                    &Wait::for_duration(Some(Duration::from_secs(10)), None),
                    None,
                    None,
                    None,
                );
                (r.is_ok(), b.release())
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        a.release().unwrap();
        let (ok, released) = waiter.join().unwrap();
        assert!(ok);
        assert!(released.unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn metadata_update_keeps_the_lease_and_changes_length_atomically() {
        let dir = temp_dir("meta");
        let path = dir.join("x.lock");
        let a = Lock::new(path.clone(), fast(), 0);
        a.acquire(&Wait::once(), None, Some("{\"a\":1}".into()), None)
            .unwrap();
        let owner = a.current_lease().unwrap().owner_id;
        a.update(Some("{\"url\":\"http://127.0.0.1:5173/\"}".into()))
            .unwrap();
        let l = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(l.owner_id, owner);
        assert_eq!(
            l.metadata_json.as_deref(),
            Some("{\"url\":\"http://127.0.0.1:5173/\"}")
        );
        std::thread::sleep(Duration::from_millis(100));
        assert!(a.held(), "heartbeats go on through the new file");
        assert!(matches!(
            a.update(Some("{not json".into())),
            Err(LockError::MetadataInvalid(_))
        ));
        // Stored compact, whatever spacing it came with.
        a.update(Some("{ \"a\" : [1, 2] }".into())).unwrap();
        let l = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(l.metadata_json.as_deref(), Some("{\"a\":[1,2]}"));
        let big = format!("\"{}\"", "x".repeat(METADATA_LIMIT));
        assert!(matches!(
            a.update(Some(big)),
            Err(LockError::MetadataTooLarge { .. })
        ));
        a.release().unwrap();
        assert!(matches!(a.update(None), Err(LockError::NotHeld)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn non_regular_files_are_refused_and_left_alone() {
        let dir = temp_dir("hostile");
        let target = dir.join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.join("link.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let l = Lock::new(link.clone(), fast(), 0);
        assert!(matches!(
            l.acquire(&Wait::once(), None, None, None),
            Err(LockError::NotAFile {
                kind: crate::sys::FileKind::Symlink
            })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let d = dir.join("dir.lock");
        std::fs::create_dir(&d).unwrap();
        let l = Lock::new(d.clone(), fast(), 0);
        assert!(matches!(
            l.acquire(&Wait::once(), None, None, None),
            Err(LockError::NotAFile {
                kind: crate::sys::FileKind::Directory
            })
        ));
        assert!(d.is_dir());
        let _ = std::fs::remove_dir_all(dir);
    }
}
