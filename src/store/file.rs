//! The file store: [`LeaseStore`] over lock files, the same files (Go-compatible leases, the
//! `.<name>.token` counter, the takeover claim) that the file engine's [`crate::lock::Lock`]
//! uses, so a lock on this store and a `Lock` on the same path exclude each other, and a Go
//! process's lease is read and respected. The key is the lock path. Each operation is one
//! step of the engine ([`crate::lock::store_steps`]), run off the async thread
//! (`spawn_blocking`: a hung mount blocks a worker, never the runtime); nothing is kept open
//! from one operation to the next.
//!
//! # Expiry
//! A lock file has no server to expire it: a lease *expires* when its last heartbeat is older
//! than the claimant's stale threshold (the `ttl` it claims with; `read` uses the store's own),
//! judged as the engine judges it (the boot clock within one boot and time namespace, else the
//! wall clock, as the Go package does). Unlike a server's TTL this is each claimant's own
//! judgement: everybody who locks one path must use the same stale threshold, as with the
//! engine. Content that may be a torn lease (an empty file from a Go creator, say) expires
//! after the invalid-content threshold; content that cannot be a lease never expires and is
//! never touched: it is reported as held with `record: None`.
//!
//! # Why it is race-free
//! Files are recognised by content throughout, never by inode number (see
//! `lock::identity`: some filesystems make inode numbers up per name): a lease is ours when it
//! carries our owner id, which nobody else writes, and a lease judged expired is recognised by
//! its exact bytes, which every heartbeat changes.
//!
//! - **claim** appends to the token counter, then publishes its complete lease with an
//!   exclusive create (`O_TMPFILE` + `linkat` where there is one, else a private name linked
//!   into place): nobody ever sees a half-written lease, and of any number of claimants exactly
//!   one create succeeds. An expired lease is replaced by the engine's takeover
//!   (`lock::takeover`): one contender at a time under the takeover claim, an atomic exchange
//!   (or a rename aside), and the file that came out deleted only if it is byte for byte the
//!   one judged expired - a holder that renewed meanwhile gets its file back, and nothing that
//!   was fresh when deleted is ever deleted. The token is then confirmed as the engine
//!   confirms it (`lock::token`: appended again after the lease reached the path if anybody
//!   appended in between), so tokens follow the order in which leases held the path, across
//!   this store and the engine alike. A lease that lost the path meanwhile is given up with the
//!   engine's release and the claim tries again.
//! - **renew** opens the path, reads the lease *through that handle* and checks the owner id
//!   there, then writes the fresh heartbeat through the same handle - never by path, so it can
//!   only ever write into the file it verified. A takeover that slipped in between can have
//!   done one of two things. It exchanged our file out and has not yet compared it: our write
//!   changed the bytes it judged, so it puts our file back and deletes only its own. Or it
//!   already compared and deleted it: our write went into a file no name leads to. So the
//!   renewal finally checks that the path leads to a lease with our owner id; only then is it
//!   `Renewed` (a file with our owner id at the path is the one we wrote, or one written by
//!   another of our own renewals, as fresh). A path that names something else is looked at
//!   again for the holder's displacement grace (25 ms: an exchange being undone), then it is
//!   `OwnerChanged` (or `Removed`). A record of a new length (an update with other metadata)
//!   is written to a private name and exchanged with ours in one step; what came out is checked
//!   to carry our owner id, and exchanged back otherwise. A late holder therefore never writes
//!   into a newer owner's file, and never reports a renewal that did not reach the path.
//! - **remove** looks first (somebody else's lease is not even moved), then renames the path to
//!   a private name - atomic, so exactly one file moves - and deletes what moved only if it
//!   carries our owner id. If a takeover slipped in between the look and the move, the moved
//!   lease is the new owner's: it is linked straight back (`link` never replaces a file; if a
//!   third claimant took the empty path meanwhile, the moved lease stays at the private name,
//!   deleted by nobody, and its owner's next renewal reports the loss). A late remove after a
//!   completed takeover finds another owner id at its first look and touches nothing.
//! - Waiters watch the lock's directory ([`crate::watch`]), as the engine's waiters do: the
//!   rename of a removal and the exchange of a takeover wake them, with nothing published.
//!   Where the directory cannot be watched (not a local disk, no backend, `LEASELOCK_WATCH=off`)
//!   the watch is a poll of [`crate::lock::WAIT_POLL`]; and the session's own poll at the
//!   holder's expiry (one second at most) runs under both.

use super::{Claim, LeaseStore, Renewal, StoreError, Stored, Watch};
use crate::lease::{self, Lease};
use crate::lock::store_steps::{self, Claimed, Found, Renewed};
use crate::lock::{LockError, Options};
use crate::owner::{self, Liveness};
use crate::watch::{Bell, Waiter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Leases in lock files. Options other than the stale threshold apply as they do to a `Lock`
/// (modes, retry limit and delay for contention, the invalid-content threshold, trust in the
/// parent directories); the stale threshold is the one `read` judges by.
pub struct FileStore {
    opts: Arc<Options>,
}

impl FileStore {
    pub fn new(opts: Options) -> FileStore {
        FileStore {
            opts: Arc::new(opts),
        }
    }

    /// The store's options with a claimant's stale threshold.
    fn with_ttl(&self, ttl: Duration) -> Options {
        Options {
            stale_threshold: ttl,
            ..(*self.opts).clone()
        }
    }
}

/// An engine failure, as a store reports it.
fn failed(e: LockError) -> StoreError {
    StoreError::Server(e.to_string())
}

/// Runs one engine step off the async thread.
async fn step<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LockError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out.map_err(failed),
        Err(e) => Err(StoreError::Server(format!("a file store step failed: {e}"))),
    }
}

/// The key as a lock path: it must name a file.
fn lock_path(key: &str) -> Result<PathBuf, StoreError> {
    let path = PathBuf::from(key);
    if path.file_name().is_none() {
        return Err(StoreError::Server(format!(
            "{key:?} is not a lock file path (it names no file)"
        )));
    }
    Ok(path)
}

/// `record` as a lease of `owner_id`.
fn own_record(record: &str, owner_id: &str) -> Result<Lease, StoreError> {
    match lease::parse(record.as_bytes()) {
        Ok(l) if l.owner_id == owner_id => Ok(l),
        Ok(_) => Err(StoreError::Server(
            "the record to store carries another owner id".into(),
        )),
        Err(e) => Err(StoreError::Server(format!(
            "the record to store is not a lease: {e:?}"
        ))),
    }
}

fn stored(found: Found) -> Stored {
    Stored {
        owner_id: found
            .lease
            .as_ref()
            .map(|l| l.owner_id.clone())
            .unwrap_or_default(),
        token: found.lease.as_ref().and_then(|l| l.token),
        record: found.lease,
        ttl: found.limit,
        ttl_left: found.left,
    }
}

impl LeaseStore for FileStore {
    type Watch = FileWatch;

    async fn claim(
        &self,
        key: &str,
        owner_id: &str,
        record: &str,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let path = lock_path(key)?;
        let lease = own_record(record, owner_id)?;
        let opts = self.with_ttl(ttl);
        match step(move || store_steps::claim(&path, lease, &opts)).await? {
            // A user who may not use the counter (another user's, in a sticky directory) gets
            // no token: 0, which every fenced resource refuses as older than anything.
            Claimed::Granted(token) => Ok(Claim::Granted {
                token: token.unwrap_or(0),
            }),
            Claimed::Held(found) => Ok(Claim::Held {
                holder: Box::new(stored(found)),
            }),
        }
    }

    async fn renew(
        &self,
        key: &str,
        owner_id: &str,
        ttl: Duration,
        record: Option<&str>,
    ) -> Result<Renewal, StoreError> {
        let path = lock_path(key)?;
        let next = record.map(|r| own_record(r, owner_id)).transpose()?;
        let opts = self.with_ttl(ttl);
        let owner_id = owner_id.to_string();
        match step(move || store_steps::renew(&path, &owner_id, next, &opts)).await? {
            Renewed::Renewed => Ok(Renewal::Renewed),
            Renewed::Removed => Ok(Renewal::Removed),
            Renewed::OwnerChanged(found) => Ok(Renewal::OwnerChanged {
                holder: Box::new(stored(found)),
            }),
        }
    }

    async fn remove(&self, key: &str, owner_id: &str) -> Result<bool, StoreError> {
        let path = lock_path(key)?;
        let (opts, owner_id) = (self.opts.clone(), owner_id.to_string());
        step(move || store_steps::remove(&path, &owner_id, &opts)).await
    }

    async fn read(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let path = lock_path(key)?;
        let opts = self.opts.clone();
        Ok(step(move || store_steps::read(&path, &opts))
            .await?
            .map(stored))
    }

    async fn watch(&self, key: &str) -> Result<FileWatch, StoreError> {
        let path = lock_path(key)?;
        let opts = self.opts.clone();
        step(move || Ok(FileWatch::start(&path, &opts))).await
    }
}

/// A waiter's watch of one lock path: its directory (the lock's name in it) and, while a
/// process proven alive in our own PID namespace holds it, that process's exit.
pub struct FileWatch {
    /// Kept for its watches, which end when it is dropped.
    _waiter: Waiter,
    task: Arc<Notify>,
    watched: bool,
}

impl FileWatch {
    fn start(path: &Path, opts: &Options) -> FileWatch {
        let task = Arc::new(Notify::new());
        let trusted = crate::lock::notifications_trusted(path);
        let mut waiter = Waiter::new(trusted, Bell::waking(task.clone()));
        let holder = live_holder(path, opts);
        let armed = waiter.arm(path, holder);
        FileWatch {
            _waiter: waiter,
            task,
            watched: armed.dir,
        }
    }
}

/// The pid of the holder at `path`, when it is a process proven alive (so its exit can be
/// watched); a holder proven dead is the session's to remove, and any other cannot be watched.
fn live_holder(path: &Path, opts: &Options) -> Option<i64> {
    let found = store_steps::read(path, opts).ok()??;
    let lease = found.lease?;
    (owner::liveness(&lease) == Liveness::Alive && lease.pid != owner::this_process().pid)
        .then_some(lease.pid)
}

impl Watch for FileWatch {
    async fn changed(&mut self) {
        if self.watched {
            self.task.notified().await;
        } else {
            tokio::time::sleep(crate::lock::WAIT_POLL).await;
        }
    }
}
