//! Judging what is at a lock path: one assessment, shared by acquire (may it be taken over?)
//! and inspect (what is there?).
//!
//! A file is read at most [`crate::sys::READ_CAP`] bytes; a longer one, or one whose content is
//! not a lease by the Go package's rules, is judged by its age alone. A lease is judged by its
//! owner's liveness (as far as it can be proven; see [`crate::owner::liveness`]) and by the
//! age of its last heartbeat.

use crate::lease::{self, Lease};
use crate::owner::{self, Liveness};
use crate::sys::Snapshot;
use std::time::{Duration, SystemTime};

/// Who holds a lock: the lease as read, and what we concluded about it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub lease: Lease,
    pub alive: Liveness,
    pub stale: bool,
}

/// What a lock file was found to be.
// A lease is what is found nearly every time, and an assessment lives on the stack for one try:
// boxing the large variant would only add an allocation to the common case.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Assessment {
    /// A valid lease.
    Lease(Holder),
    /// Content that is not a lease (or too long to be one); `stale`: older than the
    /// invalid-content threshold.
    Invalid {
        bytes: usize,
        modified: SystemTime,
        stale: bool,
    },
    /// Content that cannot be a lease at all (see [`lease::possible_lease`]): somebody's data
    /// at the lock path. Never taken over, whatever its age (unless the caller chose the Go
    /// package's rule, `Thresholds::reclaim_invalid`).
    NotALease { size: u64, head: Vec<u8> },
}

impl Assessment {
    /// Whether the rules allow taking it over: a lease whose owner is proven dead or whose
    /// heartbeat is stale, or content that is not a lease and is old enough.
    pub fn takeable(&self) -> bool {
        match self {
            Assessment::Lease(h) => h.alive == Liveness::Dead || h.stale,
            Assessment::Invalid { stale, .. } => *stale,
            Assessment::NotALease { .. } => false,
        }
    }

    /// How long until the rules allow taking it over by age alone (zero: they do now; `None`:
    /// its age cannot be told, or age never frees it). `modified` is the file's mtime. A waiter
    /// looks again then at the latest.
    pub fn takeable_in(&self, limits: Thresholds, modified: SystemTime) -> Option<Duration> {
        let now = SystemTime::now();
        match self {
            _ if self.takeable() => Some(Duration::ZERO),
            Assessment::Lease(h) => owner::stale_in(&h.lease, limits.stale, now, Some(modified)),
            Assessment::Invalid { modified, .. } => {
                let age = now.duration_since(*modified).unwrap_or(Duration::ZERO);
                Some(limits.invalid.saturating_sub(age))
            }
            Assessment::NotALease { .. } => None,
        }
    }
}

/// The two ages that decide.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// A lease whose last heartbeat is this old is stale.
    pub stale: Duration,
    /// Content that is not a lease and was last modified this long ago is stale.
    pub invalid: Duration,
    /// The Go package's rule: all invalid content is reclaimable by age, not only what may
    /// be a lease.
    pub reclaim_invalid: bool,
}

/// Judges `snap`. `alive`, when given, replaces the liveness probe (the user's
/// `processAppearsAlive`): its answer is taken as proof either way.
pub fn assess(
    snap: &Snapshot,
    limits: Thresholds,
    alive: Option<&dyn Fn(i64) -> bool>,
) -> Assessment {
    let parsed = if snap.oversized {
        Err(lease::Invalid::Syntax)
    } else {
        lease::parse(&snap.bytes)
    };
    let now = SystemTime::now();
    match parsed {
        Ok(lease) => {
            let alive = match alive {
                Some(f) if f(lease.pid) => Liveness::Alive,
                Some(_) => Liveness::Dead,
                None => owner::liveness(&lease),
            };
            let stale = owner::is_stale(&lease, limits.stale, now, Some(snap.modified));
            Assessment::Lease(Holder {
                lease,
                alive,
                stale,
            })
        }
        Err(_)
            if !limits.reclaim_invalid
                && (snap.oversized || !lease::possible_lease(&snap.bytes)) =>
        {
            Assessment::NotALease {
                size: snap.len,
                head: snap.head.clone(),
            }
        }
        Err(_) => {
            let age = now.duration_since(snap.modified).unwrap_or(Duration::ZERO);
            Assessment::Invalid {
                bytes: snap.bytes.len(),
                modified: snap.modified,
                stale: age >= limits.invalid,
            }
        }
    }
}
