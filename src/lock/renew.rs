//! Keeping a held lease: the heartbeat that renews it and notices its loss, and the metadata
//! update that replaces its record.
//!
//! Both write only through the file we created and keep open - never by path - so neither can
//! touch somebody else's lock. A record of the same length is rewritten in place (readers see
//! the old bytes or the new ones); a record of a new length is written to a private name and
//! exchanged with ours in one step, and what came out of the path is verified to be our file.

use super::error::{LeaseLost, LockError, LossReason};
use super::identity::{self, Recognise};
use super::options::Options;
use crate::lease::{self, Lease};
use crate::owner;
use crate::sys::{self, OwnedFile};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long a holder tolerates its lock path naming another file (or none) before it calls the
/// lease lost. A contender's exchange that it then undoes lasts microseconds.
pub const DISPLACED_GRACE: Duration = Duration::from_millis(25);
/// A heartbeat checks that the lock path still names our file on every this many beats (and on
/// every beat while anything looked wrong); the other beats check our open file only.
pub const PATH_CHECK_EVERY: u32 = 4;

/// Called once when a held lease is lost, from the heartbeat thread.
pub type LossHandler = Arc<dyn Fn(LeaseLost) + Send + Sync>;

/// A lease this instance holds, and what its heartbeat has seen.
pub(super) struct Holding {
    pub file: OwnedFile,
    pub lease: Lease,
    /// The bytes of `lease` as last written.
    pub written: Vec<u8>,
    /// Where the heartbeat times are in `written`: found by the first heartbeat (a lock
    /// released before that never needs them), forgotten when `written` changes.
    stamps: Option<lease::Stamps>,
    /// When a heartbeat (or the acquisition) last confirmed the lease, on
    /// [`owner::clock_nanos`]: every decision about our lease's age uses that one clock, which
    /// counts time asleep as the lease's age does (`Instant` stops during a suspend).
    pub last_ok: u64,
    beats: u32,
    displaced_since: Option<Instant>,
    last_error: Option<io::Error>,
    /// How this lock's files are recognised on its filesystem.
    pub how: Recognise,
}

/// What one heartbeat concluded.
pub(super) enum Outcome {
    /// The lease is ours and renewed (confirmed at `confirmed`, on [`owner::clock_nanos`]);
    /// beat again then.
    Renewed { next: Instant, confirmed: u64 },
    /// Not renewed, not lost yet: look again then.
    Retry { next: Instant },
    /// Lost for good.
    Lost(Box<LeaseLost>),
}

/// What `renew` found.
enum Renewal {
    /// Renewed; the boot clock it stamped, where there is one.
    Ok(Option<u64>),
    /// Definitive: our own file now carries someone else's record, or is gone.
    Lost(LossReason, Option<Lease>),
    /// The path names another file or none; may be a contender's exchange in flight.
    Displaced(LossReason, Option<Lease>),
    Failed(io::Error),
}

impl Holding {
    pub fn new(file: OwnedFile, lease: Lease, written: Vec<u8>) -> Box<Self> {
        Box::new(Holding {
            file,
            lease,
            stamps: None,
            written,
            last_ok: owner::clock_nanos(),
            beats: 0,
            displaced_since: None,
            last_error: None,
            how: Recognise::ByInode,
        })
    }

    /// One heartbeat: renew, and decide when to look again or that the lease is lost. `path`
    /// gives the lock path (through the directory held open), asked only on the beats that
    /// look at it.
    pub fn heartbeat(&mut self, path: &dyn Fn() -> PathBuf, opts: &Options) -> Outcome {
        let now = Instant::now();
        let interval = opts.heartbeat_interval;
        let verdict = self.renew(path);
        crate::faults::point("heartbeat.after-write");
        let lost = |reason, new_owner, error_code| {
            Outcome::Lost(Box::new(LeaseLost {
                reason,
                new_owner,
                error_code,
                at: SystemTime::now(),
            }))
        };
        match verdict {
            Renewal::Ok(boot) => {
                // The reading the record was stamped with (the same clock), else a fresh one.
                self.last_ok = boot.unwrap_or_else(owner::clock_nanos);
                self.displaced_since = None;
                self.last_error = None;
                Outcome::Renewed {
                    next: crate::heartbeat::aligned(now, interval),
                    confirmed: self.last_ok,
                }
            }
            Renewal::Lost(reason, new_owner) => lost(reason, new_owner, None),
            Renewal::Displaced(reason, new_owner) => {
                let since = *self.displaced_since.get_or_insert(now);
                if now.duration_since(since) >= DISPLACED_GRACE {
                    lost(reason, new_owner, None)
                } else {
                    Outcome::Retry {
                        next: now + DISPLACED_GRACE / 5,
                    }
                }
            }
            Renewal::Failed(e) => {
                // A transient error (EMFILE, EIO, ESTALE) is retried until shortly before
                // others may take the lease over: its last good heartbeat plus the stale
                // threshold, less one interval of margin.
                let give_up =
                    self.last_ok + opts.stale_threshold.saturating_sub(interval).as_nanos() as u64;
                let clock = owner::clock_nanos();
                let code = e.raw_os_error().map(sys::errno_name);
                self.last_error = Some(e);
                if clock >= give_up {
                    lost(LossReason::HeartbeatFailed, None, code)
                } else {
                    let retry = (interval / 4).max(Duration::from_millis(5));
                    let left = Duration::from_nanos(give_up - clock);
                    Outcome::Retry {
                        next: now + retry.min(left),
                    }
                }
            }
        }
    }

    /// Checks that the lease is still ours and rewrites its heartbeat, through the file we
    /// keep open (never by path), then checks that the path still names that file.
    fn renew(&mut self, path: &dyn Fn() -> PathBuf) -> Renewal {
        // First our own file, through the handle: still linked, still the length we wrote? A
        // completed takeover unlinks it, so this cheap check sees every lasting loss.
        let (len, links) = match self.file.stat() {
            Ok(found) => found,
            Err(e) => return Renewal::Failed(e),
        };
        if links == 0 {
            return lost_to_whatever_is_at(&path(), true);
        }
        // The path itself (renamed away, replaced while our file lives on elsewhere) is looked
        // at every few beats, and at every beat while something looked wrong.
        self.beats = self.beats.wrapping_add(1);
        if self.beats.is_multiple_of(PATH_CHECK_EVERY) || self.displaced_since.is_some() {
            let path = path();
            match identity::names_ours(&path, &self.file, &self.lease.owner_id, self.how) {
                Ok(true) => {}
                Ok(false) => return lost_to_whatever_is_at(&path, false),
                Err(e) => return Renewal::Failed(e),
            }
        }
        if len != self.written.len() as u64 {
            // Someone wrote into our very file. Theirs, unless it still carries our owner id.
            match self.file.read() {
                Ok(current) if !carries_owner(&current, &self.lease.owner_id) => {
                    return Renewal::Lost(LossReason::OwnerChanged, lease::parse(&current).ok());
                }
                Ok(_) => {}
                Err(e) => return Renewal::Failed(e),
            }
        }
        // Then the write, through the file we keep open. If a takeover slipped in since the
        // checks, this lands in our own displaced file, harmlessly, and a later beat sees it.
        let old_len = self.written.len();
        self.lease.last_heartbeat_unix_nano = owner::unix_nanos(SystemTime::now());
        let boot = sys::boot_nanos();
        if self.lease.heartbeat_boot_nano.is_some() {
            self.lease.heartbeat_boot_nano = boot;
        }
        if self.stamps.is_none() {
            self.stamps = lease::Stamps::find(&self.written);
        }
        let patched = self
            .stamps
            .is_some_and(|s| s.patch(&mut self.written, &self.lease));
        if !patched {
            self.set_written(self.lease.encode());
        }
        if let Some(e) = crate::faults::error("heartbeat.write") {
            return Renewal::Failed(e);
        }
        match self.file.rewrite(&self.written, old_len) {
            Ok(()) => Renewal::Ok(boot),
            Err(e) => Renewal::Failed(e),
        }
    }

    /// Replaces the record with `next` (the same lease with new metadata). Readers see the old
    /// record or the new one, never a mix.
    pub fn replace(&mut self, path: &Path, next: Lease, file_mode: u32) -> Result<(), LockError> {
        let bytes = next.encode();
        if bytes.len() != self.written.len() {
            // A new length cannot be written in place without a reader seeing a mix, so the
            // new record goes to a private name and is exchanged with ours in one step.
            let (temp, file) = sys::write_private(path, &bytes, file_mode)
                .map_err(|e| LockError::io("write", path, e))?;
            match sys::exchange(&temp, path) {
                Ok(true) => {
                    let ours =
                        identity::names_ours(&temp, &self.file, &self.lease.owner_id, self.how);
                    if ours.unwrap_or(false) {
                        let _ = std::fs::remove_file(&temp);
                        self.file = file;
                        self.lease = next;
                        self.set_written(bytes);
                        return Ok(());
                    }
                    // Not ours any more: give the path its file back; the heartbeat will
                    // report the loss.
                    let _ = sys::exchange(&temp, path);
                    let _ = std::fs::remove_file(&temp);
                    return Err(LockError::NotHeld);
                }
                // No exchange on this filesystem: rewrite in place below.
                Ok(false) => {
                    let _ = std::fs::remove_file(&temp);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    return Err(LockError::io("rename", path, e));
                }
            }
        }
        self.file
            .rewrite(&bytes, self.written.len())
            .map_err(|e| LockError::io("write", path, e))?;
        self.lease = next;
        self.set_written(bytes);
        Ok(())
    }

    /// A new record as written; where its heartbeat times are is looked up again.
    fn set_written(&mut self, bytes: Vec<u8>) {
        self.stamps = None;
        self.written = bytes;
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

/// Whether `bytes` are a valid lease with this owner id.
pub(super) fn carries_owner(bytes: &[u8], owner_id: &str) -> bool {
    matches!(lease::parse(bytes), Ok(l) if l.owner_id == owner_id)
}
