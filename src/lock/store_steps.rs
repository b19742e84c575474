//! The engine's steps for the file lease store ([`crate::store::file`]): one claim, one
//! renewal, one removal and one read of a lock path, each complete in itself, keeping nothing
//! open from one step to the next. They are made of the engine's own parts - publishing, the
//! token counter, judging, takeover, release's move aside - on the very files a [`super::Lock`]
//! uses, so that the two exclude each other on one path. Why each step is race-free is argued
//! in `crate::store::file`, next to the trait it implements.

use super::dir::{locate, open_dir, shown};
use super::error::LockError;
use super::identity::{self, Recognise};
use super::inspect::look;
use super::judge::{self, Assessment};
use super::options::Options;
use super::renew::{carries_owner, Holding, DISPLACED_GRACE};
use super::{release, takeover, token};
use crate::lease::Lease;
use crate::owner;
use crate::sys::{self, LockDir, OwnedFile, PathError, Snapshot};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// The store keeps no file open between steps, and some filesystems make inode numbers up per
/// name (see [`identity`]): its files are recognised by content, which is never weaker for
/// exclusion.
const HOW: Recognise = Recognise::ByContent;

/// How many times a removal moves the lock aside when what it moved was not ours, but the path
/// carries our lease again afterwards (a contender's undo put it back meanwhile).
const REMOVE_TRIES: u32 = 3;

/// What is at a lock path, as a store reports it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The lease, when the content is one.
    pub lease: Option<Lease>,
    /// The age at which it may be taken over (the claimant's stale threshold for a lease, the
    /// invalid-content threshold otherwise); `None` for content that age never frees.
    pub limit: Option<Duration>,
    /// How long until then (zero: now); `None` with `limit`.
    pub left: Option<Duration>,
}

impl Found {
    /// Content that is not a lease (or not a regular file): never taken over, never expires.
    fn foreign() -> Found {
        Found {
            lease: None,
            limit: None,
            left: None,
        }
    }

    fn is_foreign(&self) -> bool {
        self.lease.is_none() && self.limit.is_none()
    }
}

/// The outcome of [`claim`].
pub enum Claimed {
    /// Our lease is at the path, with this token (`None`: this user may not use the counter).
    Granted(Option<u64>),
    Held(Found),
}

/// The outcome of [`renew`].
pub enum Renewed {
    Renewed,
    /// Nothing is at the path.
    Removed,
    /// Another owner's lease, or something that is not a lease, is at the path.
    OwnerChanged(Found),
}

/// Judges `snap` by age alone: whether its holder lives is the caller's question (the store
/// session proves holders dead itself). `(may be taken over now, what it is)`.
fn judged(snap: &Snapshot, opts: &Options) -> (bool, Found) {
    let limits = opts.thresholds();
    let by_age_only: &dyn Fn(i64) -> bool = &|_| true;
    let found = judge::assess(snap, limits, Some(by_age_only));
    let left = found.takeable_in(limits, snap.modified);
    let takeable = found.takeable();
    let described = match found {
        Assessment::Lease(h) => Found {
            lease: Some(h.lease),
            limit: Some(limits.stale),
            left,
        },
        Assessment::Invalid { .. } => Found {
            lease: None,
            limit: Some(limits.invalid),
            left,
        },
        Assessment::NotALease { .. } => Found::foreign(),
    };
    (takeable, described)
}

/// Publishes `lease` at `path` with a fresh token if nothing is there, or takes over what is
/// there if it has expired (a lease older than `opts.stale_threshold`, or content that may be a
/// torn lease older than the invalid-content threshold). Contention (another claimant's
/// takeover in flight) is retried up to the retry limit, `opts.retry_delay` apart.
pub fn claim(path: &Path, mut lease: Lease, opts: &Options) -> Result<Claimed, LockError> {
    let dir = open_dir(path, Some(opts.dir_mode), opts.allow_untrusted_parents)?;
    let at = dir.join(path.file_name().unwrap_or_default());
    claim_in(&dir, &at, &mut lease, opts).map_err(|e| shown(&dir, path, e))
}

fn claim_in(
    dir: &LockDir,
    at: &Path,
    lease: &mut Lease,
    opts: &Options,
) -> Result<Claimed, LockError> {
    let mut counter = token::Counter::open(at, opts.file_mode)?;
    let pause = opts.retry_pause();
    let name = at.file_name().unwrap_or_default();
    // The last try's transient create error: when the tries end on one, it is reported (a real
    // permission problem looks the same), as the engine does.
    let mut transient = None;
    for _ in 0..opts.retry_limit.max(1) {
        transient = None;
        lease.token = counter.advance()?;
        // Stamped now, not when the caller made the record (perhaps before a long wait): a
        // lease must never reach the path already old.
        let now = owner::unix_nanos(SystemTime::now());
        *lease = lease.with_heartbeat(now, sys::boot_nanos());
        let bytes = lease.encode();
        match sys::publish_creating_parents(at, &bytes, opts.file_mode, opts.dir_mode) {
            Ok(file) => match confirmed(&mut counter, at, file, lease, bytes, opts)? {
                Some(token) => return Ok(Claimed::Granted(token)),
                None => {
                    std::thread::sleep(pause);
                    continue;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if sys::is_transient_create_error(&e) => {
                transient = Some(e);
                std::thread::sleep(pause);
                continue;
            }
            Err(e) => return Err(LockError::io("create", at, e)),
        }
        // Something that is not a file at the path: refused, with nothing new left beside it.
        let snap = match look(at) {
            Ok(Some(snap)) => snap,
            Ok(None) => continue,
            Err(e) => {
                counter.discard_if_new();
                return Err(e);
            }
        };
        let (expired, found) = judged(&snap, opts);
        if found.is_foreign() {
            // Somebody's data: left alone, with nothing new beside it.
            counter.discard_if_new();
            return Ok(Claimed::Held(found));
        }
        if !expired {
            return Ok(Claimed::Held(found));
        }
        if let Some(owner) = sys::sticky_owner(dir, name) {
            return Err(LockError::NotMovable(takeover::sticky(at, owner)));
        }
        if let Some(file) = takeover::take_over(at, opts, &snap, &bytes, HOW)? {
            // A Go contender compares bytes and unlinks by path: it may have removed ours.
            if identity::names_record(at, &file, &bytes, HOW) {
                if let Some(token) = confirmed(&mut counter, at, file, lease, bytes, opts)? {
                    return Ok(Claimed::Granted(token));
                }
            }
        }
        std::thread::sleep(pause);
    }
    Err(match transient {
        Some(e) => LockError::io("create", at, e),
        None => LockError::RetryBudgetExhausted {
            attempts: opts.retry_limit.max(1),
        },
    })
}

/// Confirms the token of our lease just placed at `at` (see `token`), or gives the lease up.
/// `Some(token)` when it stays.
fn confirmed(
    counter: &mut token::Counter,
    at: &Path,
    file: OwnedFile,
    lease: &Lease,
    bytes: Vec<u8>,
    opts: &Options,
) -> Result<Option<Option<u64>>, LockError> {
    let holding = Holding::new(file, lease.clone(), bytes);
    let kept = token::confirm_or_give_up(Some(counter), at, holding, HOW, opts)?;
    Ok(kept.map(|h| h.lease.token))
}

/// Refreshes the heartbeat of `owner_id`'s lease at `path` (and replaces its record with
/// `next`, keeping its token, when given), if the lease there is still that owner's.
pub fn renew(
    path: &Path,
    owner_id: &str,
    next: Option<Lease>,
    opts: &Options,
) -> Result<Renewed, LockError> {
    let Some((dir, at)) = locate(path, opts.allow_untrusted_parents)? else {
        return Ok(Renewed::Removed);
    };
    renew_in(&at, owner_id, next, opts).map_err(|e| shown(&dir, path, e))
}

fn renew_in(
    at: &Path,
    owner_id: &str,
    next: Option<Lease>,
    opts: &Options,
) -> Result<Renewed, LockError> {
    let file = match sys::open_rewritable(at) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(Renewed::Removed),
        Err(PathError::NotRegular(_)) => return Ok(Renewed::OwnerChanged(Found::foreign())),
        Err(PathError::Io(e)) => return Err(LockError::io("open", at, e)),
    };
    // Verified through the handle we will write through: whatever the path names by now.
    let (written, oversized) =
        sys::read_capped(&file.file, 0).map_err(|e| LockError::io("read", at, e))?;
    let current = match crate::lease::parse(&written) {
        Ok(l) if !oversized && l.owner_id == owner_id => l,
        _ => return not_ours(sys::snapshot(at), at, opts),
    };
    let now = owner::unix_nanos(SystemTime::now());
    let boot = sys::boot_nanos();
    let fresh = match next {
        Some(next) => Lease {
            token: current.token,
            ..next
        },
        None => current.clone(),
    }
    .with_heartbeat(now, boot);
    crate::faults::point("store.renew.before-write");
    let mut holding = Holding::new(file, current, written);
    holding.how = HOW;
    match holding.replace(at, fresh, opts.file_mode) {
        // `NotHeld`: an exchange found the path no longer ours, and gave it back.
        Ok(()) | Err(LockError::NotHeld) => {}
        Err(e) => return Err(e),
    }
    still_ours(at, owner_id, opts)
}

/// After a write through our handle: whether the path still leads to our lease (the write
/// then reached it). A contender's exchange that it undoes lasts microseconds, so a path that
/// names something else is looked at again for [`DISPLACED_GRACE`] before it counts.
fn still_ours(at: &Path, owner_id: &str, opts: &Options) -> Result<Renewed, LockError> {
    let since = Instant::now();
    loop {
        let found = sys::snapshot(at);
        if let Ok(Some(s)) = &found {
            if !s.oversized && carries_owner(&s.bytes, owner_id) {
                return Ok(Renewed::Renewed);
            }
        }
        if since.elapsed() >= DISPLACED_GRACE {
            return not_ours(found, at, opts);
        }
        std::thread::sleep(DISPLACED_GRACE / 5);
    }
}

/// A renewal's answer when `found`, read at `at`, is not our lease.
fn not_ours(
    found: Result<Option<Snapshot>, PathError>,
    at: &Path,
    opts: &Options,
) -> Result<Renewed, LockError> {
    Ok(match found {
        Ok(Some(s)) => Renewed::OwnerChanged(judged(&s, opts).1),
        Ok(None) => Renewed::Removed,
        Err(PathError::NotRegular(_)) => Renewed::OwnerChanged(Found::foreign()),
        Err(PathError::Io(e)) => return Err(LockError::io("read", at, e)),
    })
}

/// Removes `owner_id`'s lease at `path`, and nothing else. `true` when it removed it.
pub fn remove(path: &Path, owner_id: &str, opts: &Options) -> Result<bool, LockError> {
    let Some((dir, at)) = locate(path, opts.allow_untrusted_parents)? else {
        return Ok(false);
    };
    remove_in(&at, owner_id).map_err(|e| shown(&dir, path, e))
}

fn remove_in(at: &Path, owner_id: &str) -> Result<bool, LockError> {
    for _ in 0..REMOVE_TRIES {
        // Looked at first, so that somebody else's lock is not even moved for a moment.
        if !carries_at(at, owner_id)? {
            return Ok(false);
        }
        crate::faults::point("store.remove.before-move");
        let ours = |moved: &Path| identity::carries_at(moved, owner_id).unwrap_or(false);
        match release::move_aside(at, ours) {
            Ok(true) => return Ok(true),
            // Not ours after all (a takeover slipped in): it went back; look again.
            Ok(false) => {}
            Err(e) => return Err(LockError::io("rename", at, e)),
        }
    }
    Ok(false)
}

/// Whether the regular file at `at` is a lease of `owner_id`.
fn carries_at(at: &Path, owner_id: &str) -> Result<bool, LockError> {
    identity::carries_at(at, owner_id).map_err(|e| LockError::io("read", at, e))
}

/// What is at `path`, judged by age against `opts` (`None`: nothing). Something that is not a
/// regular file is an error, as for `inspect`.
pub fn read(path: &Path, opts: &Options) -> Result<Option<Found>, LockError> {
    let Some((dir, at)) = locate(path, opts.allow_untrusted_parents)? else {
        return Ok(None);
    };
    let snap = look(&at).map_err(|e| shown(&dir, path, e))?;
    Ok(snap.map(|s| judged(&s, opts).1))
}
