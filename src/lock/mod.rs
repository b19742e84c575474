//! The lock itself: one lock path as seen by one instance, and its acquire loop.
//!
//! Each concern has its own room: [`wait`] (deadlines, cancellation), [`judge`] (what is at the
//! path, shared with [`inspect`]), [`takeover`] (replacing a stale lock, and why that is
//! race-free), [`renew`] (heartbeat and metadata update), [`release`] (and why it cannot delete
//! a new owner's lock), [`filesystem`] (which filesystem, and so which thread does the I/O),
//! [`identity`] (recognising files by inode or by content), [`exit`] (release at the end of
//! the process or a worker, bounded), [`dir`] (the lock's directory, held open), [`inspect`]
//! (reading without taking), [`token`] (fencing tokens, and why they follow the order of
//! holders), [`store_steps`] (the same files as a lease store: one claim, renewal, removal or
//! read at a time), [`options`] and [`error`]. The heartbeat threads are
//! [`crate::heartbeat`]; a lock is one of the things they beat ([`beat`]).

mod beat;
mod dir;
mod error;
mod exit;
mod filesystem;
mod identity;
mod inspect;
mod judge;
mod options;
mod release;
mod renew;
pub mod store_steps;
mod takeover;
#[cfg(test)]
mod tests;
mod token;
mod tries;
mod wait;
mod waits;

pub use error::{glimpse, io_code, Blocked, LeaseLost, LockError, LossReason, HELD_TEXT};
pub use exit::{release_held_for_exit, EXIT_RELEASE_BOUND};
pub use filesystem::Filesystem;
pub use identity::Recognise;
pub use inspect::{inspect, Inspected};
pub use judge::{Assessment, Holder, Thresholds};
pub use options::{Options, METADATA_LIMIT};
pub use renew::LossHandler;
pub use wait::{notifications_trusted, Cancel, Wait, SAFETY_POLL, WAIT_POLL};

use crate::heartbeat::{self, Heartbeats};
use crate::lease::Lease;
use crate::owner;
use crate::sys::{self, LockDir};
use filesystem::Place;
use inspect::{look, not_a_lease};
use renew::{Holding, DISPLACED_GRACE};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tries::Tries;
use wait::{NoSleep, Pause, Recheck, Sleeper};

/// Every held lock of the process is beaten here, on the thread of its filesystem, which also
/// keeps each held lock alive when its JS object is collected: a lock is released by
/// `release()` or by the end of the process or environment, never by garbage collection.
static HEARTBEATS: Heartbeats<Inner> = Heartbeats::new();

/// A poisoned mutex here only means another thread panicked while holding it; the state it
/// protects is still consistent (every update is a single assignment), so carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One lock path as seen by one `PidLock` instance.
pub struct Lock {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    opts: Options,
    /// An opaque group (the binding's JS environment) whose locks are released together when
    /// it ends.
    group: u64,
    /// `Some` while held. Never held across a liveness question or a sleep, so `release()`
    /// and the heartbeat are never kept waiting by a slow `processAppearsAlive`.
    state: Mutex<Option<Box<Holding>>>,
    /// Serialises the acquisitions of this instance (they hold it while they wait).
    acquiring: Mutex<()>,
    held: AtomicBool,
    /// `owner::clock_nanos()` of the acquisition or the last heartbeat that confirmed the lease.
    confirmed_at: AtomicU64,
    /// The lock's directory, checked and held open from the first try on; every operation
    /// names the lock file through it (see [`sys::open_lock_dir`]). Replaced only while not
    /// held, and only when the directory was removed.
    dir: Mutex<Option<Arc<LockDir>>>,
    /// The lock's fencing-token counter, open for appending while an acquisition tries (closed once
    /// it holds, and with `dir`).
    counter: Mutex<Option<token::Counter>>,
    /// Who to tell of a loss of the current holding; taken by whoever reports it (once), and
    /// kept apart from `state` so that a loss is told while a renewal is stuck holding that.
    notice: Mutex<Option<LossHandler>>,
    /// The filesystem the lock lives on.
    place: Place,
    /// The descriptor of the file held (see `sys::close_at_exit`), -1 when none.
    open_fd: AtomicI64,
}

/// An acquisition that was not allowed to sleep stopped short.
pub enum Pending {
    /// It finished with this error.
    Failed(LockError),
    /// It would have to sleep (wait for a held lock, or pause between retries).
    MustWait,
}

/// What follows a try that did not acquire.
enum Next {
    /// Held: sleep until something may have freed it.
    Held(Recheck),
    /// Try again after this pause (zero: at once).
    Retry(Duration),
}

impl From<LockError> for Pending {
    fn from(e: LockError) -> Self {
        Pending::Failed(e)
    }
}

/// What one try found.
enum Attempt {
    Acquired(Box<Holding>, Option<Box<Assessment>>),
    /// A create error that usually means contention (Windows: a delete-pending file answers
    /// access denied); retried like contention, but only so long.
    Transient(io::Error),
    /// Held; and when to look again.
    Held(Option<Box<Holder>>, Box<Recheck>),
    /// The file changed or vanished between our steps; `pause`: sleep the retry delay first.
    Contended {
        pause: bool,
    },
}

impl Lock {
    pub fn new(path: PathBuf, opts: Options, group: u64) -> Self {
        Lock {
            inner: Arc::new(Inner {
                path,
                opts,
                group,
                state: Mutex::new(None),
                acquiring: Mutex::new(()),
                held: AtomicBool::new(false),
                confirmed_at: AtomicU64::new(0),
                dir: Mutex::new(None),
                counter: Mutex::new(None),
                notice: Mutex::new(None),
                place: Place::default(),
                open_fd: AtomicI64::new(-1),
            }),
        }
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Whether this lock's I/O may run on the JS thread: its filesystem is a known local disk
    /// type (no I/O to answer; see `filesystem`).
    pub fn io_is_quick(&self) -> bool {
        self.inner.place.is_quick(&self.inner.path)
    }

    /// Finds out which filesystem the lock lives on, if not known yet. May block on a hung
    /// mount: call it off the JS thread.
    pub fn learn_filesystem(&self) {
        self.inner.place.learn(&self.inner.path);
    }

    /// The lock's filesystem, once an acquisition has looked at it.
    pub fn filesystem(&self) -> Option<Filesystem> {
        self.inner.place.describe()
    }

    /// Whether this instance holds the lock with a lease it can vouch for. No I/O: false once a
    /// loss is known, and also while the last confirmed heartbeat is older than the stale
    /// threshold less one interval - after the process was frozen or asleep that long, the
    /// lock may have been taken, and it counts as held again only once the heartbeat (which
    /// runs at once on waking) has confirmed it.
    pub fn held(&self) -> bool {
        self.inner.is_held() && self.inner.confirmed_recently()
    }

    /// Acquires the lock, waiting as `wait` allows. `alive` overrides the liveness probe (the
    /// user's `processAppearsAlive`). Calls on one instance are serialised. `Ok(Some(_))`:
    /// what was taken over.
    pub fn acquire(
        &self,
        wait: &Wait,
        alive: Option<&dyn Fn(i64) -> bool>,
        metadata: Option<String>,
        on_lost: Option<LossHandler>,
    ) -> Result<Option<Assessment>, LockError> {
        self.acquire_with(wait, &mut Sleeper::default(), alive, metadata, on_lost)
    }

    /// Acquires as `acquire` does, but stops with `Pending::MustWait` where that would sleep:
    /// the binding's first try runs on the JS thread, which must not block.
    pub fn acquire_without_sleeping(
        &self,
        wait: &Wait,
        alive: Option<&dyn Fn(i64) -> bool>,
        metadata: Option<String>,
        on_lost: Option<LossHandler>,
    ) -> Result<Option<Assessment>, Pending> {
        self.acquire_with(wait, &mut NoSleep, alive, metadata, on_lost)
    }

    /// The acquire loop, after which the lock's directory is let go unless now held: an
    /// instance that does not hold the lock keeps no descriptor open (it would keep a
    /// filesystem from being unmounted).
    fn acquire_with<E: From<LockError>>(
        &self,
        wait: &Wait,
        pause: &mut dyn Pause<E>,
        alive: Option<&dyn Fn(i64) -> bool>,
        metadata: Option<String>,
        on_lost: Option<LossHandler>,
    ) -> Result<Option<Assessment>, E> {
        let out = self.acquire_loop(wait, pause, alive, metadata, on_lost);
        if out.is_err() {
            // An earlier acquisition may still hold it (a verification that did not decide
            // before this one was cancelled).
            let st = lock(&self.inner.state);
            if st.is_none() {
                self.inner.let_go_of_dir();
            }
        }
        out
    }

    /// The acquire loop; `pause` passes the time between tries (or refuses to).
    fn acquire_loop<E: From<LockError>>(
        &self,
        wait: &Wait,
        pause: &mut dyn Pause<E>,
        alive: Option<&dyn Fn(i64) -> bool>,
        metadata: Option<String>,
        on_lost: Option<LossHandler>,
    ) -> Result<Option<Assessment>, E> {
        let metadata = metadata
            .map(|m| options::compact_metadata(&m))
            .transpose()?;
        self.inner.place.learn(&self.inner.path);
        let _serial = lock(&self.inner.acquiring);
        // `release()` and the end of this environment cancel the wait.
        let (wait, cancel) = wait.cancellable();
        let _registered = waits::register(&self.inner, cancel);
        pause.begin(&wait);
        let mut tries = Tries::default();
        loop {
            if wait.is_cancelled() || waits::group_ended(self.inner.group) {
                return Err(LockError::Cancelled.into());
            }
            let seen = pause.mark();
            let next = match self.inner.confirmed_holding() {
                Confirmed::Yes => return Ok(None),
                Confirmed::NotYet => Next::Retry(DISPLACED_GRACE / 5),
                Confirmed::NotHeld => match self
                    .inner
                    .attempt(alive, metadata.clone())
                    .map_err(|e| self.inner.shown(e))?
                {
                    Attempt::Acquired(holding, reclaimed) => {
                        return self
                            .take_holding(&wait, holding, on_lost)
                            .map(|()| reclaimed.map(|r| *r));
                    }
                    other => tries.pause_after(other, &wait, &self.inner)?,
                },
            };
            match next {
                Next::Held(recheck) => pause.held(seen, &recheck)?,
                Next::Retry(d) if !d.is_zero() => pause.retry(d)?,
                Next::Retry(_) => {}
            }
        }
    }

    /// Makes a just-published lease ours - unless the wait was cancelled (by `release()` or
    /// the end of this environment) meanwhile: then it is released at once, and nothing is
    /// held or renewed for a caller that is gone.
    fn take_holding<E: From<LockError>>(
        &self,
        wait: &Wait,
        holding: Box<Holding>,
        on_lost: Option<LossHandler>,
    ) -> Result<(), E> {
        let mut st = lock(&self.inner.state);
        if wait.is_cancelled() || waits::group_ended(self.inner.group) {
            drop(st);
            let _ = release::release(&self.inner.at(), holding, &self.inner.opts);
            return Err(LockError::Cancelled.into());
        }
        self.inner.hold(&mut st, holding, on_lost);
        drop(st);
        HEARTBEATS.start(self.inner.place.dev(), &self.inner);
        Ok(())
    }

    /// Releases the lock if this instance holds it. `Ok(true)` when it removed the file,
    /// `Ok(false)` when there was nothing of ours to remove.
    ///
    /// An acquisition of this instance still waiting is cancelled first: it ends with
    /// `Cancelled` and holds nothing. A release that fails keeps the lock held and renewed.
    pub fn release(&self) -> Result<bool, LockError> {
        waits::cancel_lock(&self.inner);
        let mut st = lock(&self.inner.state);
        let released = self.inner.release_locked(&mut st);
        // An acquisition still in flight (cancelled above) keeps the directory: it may have
        // published a file there that it must remove, and it lets go of it when it ends.
        let acquiring = matches!(
            self.inner.acquiring.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        );
        if st.is_none() && !acquiring {
            self.inner.let_go_of_dir();
        }
        drop(st);
        if released.is_err() {
            // Held again: make sure the heartbeat still beats it (it may have let go of it
            // while the release was under way).
            HEARTBEATS.start(self.inner.place.dev(), &self.inner);
        }
        released
    }

    /// Replaces the metadata of a held lease. Readers see the old record or the new one.
    pub fn update(&self, metadata: Option<String>) -> Result<(), LockError> {
        let metadata = metadata
            .map(|m| options::compact_metadata(&m))
            .transpose()?;
        let mut st = lock(&self.inner.state);
        let Some(h) = st.as_mut() else {
            return Err(LockError::NotHeld);
        };
        let now = owner::unix_nanos(SystemTime::now());
        let mut next = h.lease.with_heartbeat(now, sys::boot_nanos());
        next.metadata_json = metadata;
        h.replace(&self.inner.at(), next, self.inner.opts.file_mode)
            .map_err(|e| self.inner.shown(e))?;
        // A new record of another length comes with a new file.
        self.inner
            .open_fd
            .store(sys::raw_descriptor(&h.file), Ordering::Release);
        Ok(())
    }

    /// The lease this instance wrote, while it holds the lock.
    pub fn current_lease(&self) -> Option<Lease> {
        lock(&self.inner.state).as_ref().map(|h| h.lease.clone())
    }

    /// The fencing token of the current acquisition, while this instance holds the lock.
    pub fn token(&self) -> Option<u64> {
        lock(&self.inner.state).as_ref().and_then(|h| h.lease.token)
    }
}

/// What an acquisition finds this instance holding.
enum Confirmed {
    /// Held, with a lease confirmed recently enough to vouch for.
    Yes,
    /// Held, but the verification could not decide yet (a contender's exchange in flight, a
    /// transient error): look again shortly.
    NotYet,
    /// Not held (any more: a loss found by the verification has been reported).
    NotHeld,
}

impl Inner {
    /// Whether this instance holds the lock. A lease left unconfirmed (the process was frozen
    /// or asleep past it) is verified through the file first - one heartbeat, here and now -
    /// so that an acquire never answers success for a lock taken over meanwhile; a loss it
    /// finds is reported through the acquisition's `onLeaseLost`, once.
    fn confirmed_holding(self: &Arc<Self>) -> Confirmed {
        if lock(&self.state).is_none() {
            return Confirmed::NotHeld;
        }
        if self.confirmed_recently() {
            return Confirmed::Yes;
        }
        heartbeat::Beat::beat(&**self);
        if !self.is_held() {
            Confirmed::NotHeld
        } else if self.confirmed_recently() {
            Confirmed::Yes
        } else {
            Confirmed::NotYet
        }
    }

    fn confirmed_recently(&self) -> bool {
        let confirmed = self.confirmed_at.load(Ordering::Acquire);
        let trust = self
            .opts
            .stale_threshold
            .saturating_sub(self.opts.heartbeat_interval);
        owner::clock_nanos().saturating_sub(confirmed) < trust.as_nanos() as u64
    }

    /// One try: publish our lease if the path is free, else judge what is there and take it
    /// over when the rules allow. Longer than most functions here on purpose: it reads top to
    /// bottom in the protocol's order (token, publish, judge, takeover, confirm), and split up,
    /// its early returns would hide that order.
    fn attempt(
        &self,
        alive: Option<&dyn Fn(i64) -> bool>,
        metadata: Option<String>,
    ) -> Result<Attempt, LockError> {
        let dir = self.dir(true)?;
        let path = &dir.join(self.name());
        let opts = &self.opts;
        let mut slot = lock(&self.counter);
        let counter = match &mut *slot {
            Some(c) => c,
            empty => empty.insert(token::Counter::open(path, opts.file_mode)?),
        };
        let mut lease = owner::new_lease(metadata);
        lease.token = counter.advance()?;
        let bytes = lease.encode();
        crate::faults::point("acquire.before-publish");
        match sys::publish_creating_parents(path, &bytes, opts.file_mode, opts.dir_mode) {
            Ok(file) => {
                let how = self.place.recognise(&self.path);
                let holding = Holding::new(file, lease, bytes);
                return self.confirm_token(path, &mut slot, holding, None, how);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if sys::is_transient_create_error(&e) => return Ok(Attempt::Transient(e)),
            Err(e) => return Err(LockError::io("create", path, e)),
        }
        let snap = match look(path) {
            Ok(Some(snap)) => snap,
            Ok(None) => return Ok(Attempt::Contended { pause: false }),
            Err(e) => return Err(token::refused(&mut slot, e)),
        };
        let found = judge::assess(&snap, opts.thresholds(), alive);
        let how = self.place.recognise(&self.path);
        if let Assessment::NotALease { size, head } = found {
            return Err(token::refused(
                &mut slot,
                not_a_lease(&self.path, size, head),
            ));
        }
        if !found.takeable() {
            let recheck = Box::new(Recheck {
                path: path.to_path_buf(),
                takeable_in: found.takeable_in(opts.thresholds(), snap.modified),
                live_pid: match &found {
                    Assessment::Lease(h) if h.alive == owner::Liveness::Alive => Some(h.lease.pid),
                    _ => None,
                },
                asked_user: alive.is_some(),
            });
            let holder = match found {
                Assessment::Lease(holder) => Some(Box::new(holder)),
                Assessment::Invalid { .. } | Assessment::NotALease { .. } => None,
            };
            return Ok(Attempt::Held(holder, recheck));
        }
        // A file we may not move is said so now: waiting would not change that.
        if let Some(owner) = sys::sticky_owner(&dir, self.name()) {
            return Err(LockError::NotMovable(takeover::sticky(path, owner)));
        }
        crate::faults::point("takeover.after-judge");
        let taken = takeover::take_over(path, opts, &snap, &bytes, how)?;
        crate::faults::point("takeover.before-confirm");
        Ok(match taken {
            // A Go contender compares bytes and then unlinks by path: it can remove the file we
            // just put there. Success only while the path still names our file.
            Some(file) if identity::names_record(path, &file, &bytes, how) => {
                let holding = Holding::new(file, lease, bytes);
                return self.confirm_token(path, &mut slot, holding, Some(Box::new(found)), how);
            }
            _ => Attempt::Contended { pause: true },
        })
    }

    /// Records a new holding; the caller starts its heartbeat once the state lock is let go.
    /// Off a local disk type, first finds out whether the lock name reports the inode of the
    /// file we hold open (see `identity`).
    fn hold(
        &self,
        st: &mut Option<Box<Holding>>,
        mut h: Box<Holding>,
        on_lost: Option<LossHandler>,
    ) {
        h.how = if self.place.is_quick(&self.path) {
            Recognise::ByInode
        } else {
            identity::detect(&self.at(), &h.file)
        };
        self.place.acquired(h.how, h.file.id);
        self.open_fd
            .store(sys::raw_descriptor(&h.file), Ordering::Release);
        *lock(&self.notice) = on_lost;
        *st = Some(h);
        self.confirm();
        self.held.store(true, Ordering::Release);
    }

    /// Marks the current holding lost and tells its holder, once per acquisition, whichever
    /// thread gets here first.
    fn lose(&self, lost: LeaseLost) {
        if self.held.swap(false, Ordering::AcqRel) {
            let report = lock(&self.notice).take();
            if let Some(report) = report {
                report(lost);
            }
        }
    }

    fn release_locked(&self, st: &mut Option<Box<Holding>>) -> Result<bool, LockError> {
        let Some(h) = st.take() else {
            return Ok(false);
        };
        self.held.store(false, Ordering::Release);
        match release::release(&self.at(), h, &self.opts) {
            Ok(removed) => {
                lock(&self.notice).take();
                Ok(removed)
            }
            Err((h, e)) => {
                let e = self.shown(e);
                // Still ours and still there: keep holding so the caller can try again. Its
                // heartbeat entry is still queued and finds it held again.
                *st = Some(h);
                self.held.store(true, Ordering::Release);
                Err(e)
            }
        }
    }

    fn confirm(&self) {
        self.confirmed_at
            .store(owner::clock_nanos(), Ordering::Release);
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}
