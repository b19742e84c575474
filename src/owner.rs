//! Owners: who this process is, and what can be proven about the owner of a lease.

use crate::lease::{Lease, OwnerIdentity};
use crate::sys::{self, ProcessState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What we know of an owner process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// Another host, boot or PID namespace, a Go-written lease, or a probe that could not
    /// tell. Treated as alive: only the lease's age can free such a lock.
    Unknown,
}

/// This process, read once: its pid and, where the platform can tell, its identity.
pub struct ThisProcess {
    pub pid: i64,
    pub identity: Option<Arc<OwnerIdentity>>,
}

pub fn this_process() -> &'static ThisProcess {
    static ME: OnceLock<ThisProcess> = OnceLock::new();
    ME.get_or_init(|| ThisProcess {
        pid: std::process::id() as i64,
        identity: sys::this_process().map(Arc::new),
    })
}

/// A new owner id in Go's form, `<pid>-<UnixNano>-<seq>`, with a process-wide sequence that
/// starts at 1 - so no two acquisitions, in any thread or instance, share one.
fn new_owner_id(now_unix_nano: i64) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{}", this_process().pid, now_unix_nano, seq)
}

/// A fresh lease of this process, as written at acquisition (and as a takeover claim's record).
pub fn new_lease(metadata_json: Option<String>) -> Lease {
    let now_nano = unix_nanos(SystemTime::now());
    let me = this_process();
    Lease {
        owner_id: new_owner_id(now_nano),
        pid: me.pid,
        last_heartbeat_unix_nano: now_nano,
        identity: me.identity.clone(),
        heartbeat_boot_nano: if me.identity.is_some() {
            sys::boot_nanos()
        } else {
            None
        },
        acquired_unix_nano: Some(now_nano),
        token: None,
        metadata_json,
    }
}

pub fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// A clock for this process's own lease age: the boot clock where there is one (it counts
/// time asleep, as a lease's age does), else a monotonic one. Nanoseconds.
pub fn clock_nanos() -> u64 {
    if let Some(n) = sys::boot_nanos() {
        return n;
    }
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    // Offset by one so that a never-confirmed zero is always old.
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
        + 1
}

/// Whether boot-clock readings of the lease's owner (its heartbeat stamp, its start time) can
/// be compared with ours: the same host and boot, and the same time namespace (which shifts
/// both). A lease that does not record its time namespace compares with nobody.
fn same_clock_frame(theirs: &OwnerIdentity, mine: &OwnerIdentity) -> bool {
    theirs.hostname == mine.hostname
        && theirs.boot_id == mine.boot_id
        && theirs.time_namespace.is_some()
        && theirs.time_namespace == mine.time_namespace
}

/// What can be proven about the owner process of `lease`.
///
/// Only a lease written in our own frame can prove its owner dead: the same host and boot, the
/// same PID namespace (pids mean the same process) and the same time namespace (start times
/// read the same). Then the pid is looked up: no such process (the kernel's ESRCH - a hidden
/// `/proc` entry is not proof), a zombie, or a pid whose start time differs from the recorded
/// one (the pid was reused) means the owner is gone. Everything else - another host,
/// container, boot or time namespace, a Go-written lease without identity, a process we may
/// not look at - is `Unknown`, which callers treat as alive so that only the lease's age can
/// free the lock.
pub fn liveness(lease: &Lease) -> Liveness {
    let (Some(theirs), Some(mine)) = (&lease.identity, &this_process().identity) else {
        return Liveness::Unknown;
    };
    if !same_clock_frame(theirs, mine) || theirs.pid_namespace != mine.pid_namespace {
        return Liveness::Unknown;
    }
    match sys::probe(lease.pid) {
        ProcessState::Gone => Liveness::Dead,
        ProcessState::Running { start } if start == theirs.process_start => Liveness::Alive,
        ProcessState::Running { .. } => Liveness::Dead,
        ProcessState::Unknown => Liveness::Unknown,
    }
}

/// Whether `lease` has gone without a heartbeat for `threshold` or longer.
///
/// Within one boot and time namespace the boot clock is compared, so a wall-clock jump cannot
/// make a live lease look stale; otherwise (a Go lease, another host or time namespace) the
/// wall clock, as the Go package does. A stamp in the future of our clock is not trusted: a
/// boot stamp ahead of ours falls back to the wall clock, a wall stamp ahead of ours to the
/// file's mtime (`modified`, where the caller has one; without one such a lease stays fresh).
pub fn is_stale(
    lease: &Lease,
    threshold: Duration,
    now: SystemTime,
    modified: Option<SystemTime>,
) -> bool {
    stale_in(lease, threshold, now, modified) == Some(Duration::ZERO)
}

/// How long until `lease` goes stale by the rule of [`is_stale`] (zero: it is); `None` when
/// its age cannot be told (a stamp in our future and no mtime). A waiter sleeps that long at
/// most: the lease's deadline is one of the things that free a lock.
pub fn stale_in(
    lease: &Lease,
    threshold: Duration,
    now: SystemTime,
    modified: Option<SystemTime>,
) -> Option<Duration> {
    let limit = threshold.as_nanos() as i128;
    let left = |age: i128| Duration::from_nanos((limit - age).clamp(0, u64::MAX as i128) as u64);
    if let (Some(theirs), Some(mine)) = (&lease.identity, &this_process().identity) {
        if same_clock_frame(theirs, mine) {
            if let (Some(then), Some(now_boot)) = (lease.heartbeat_boot_nano, sys::boot_nanos()) {
                if then <= now_boot {
                    return Some(left(now_boot as i128 - then as i128));
                }
            }
        }
    }
    let now_nano = unix_nanos(now) as i128;
    let then = lease.last_heartbeat_unix_nano as i128;
    if then <= now_nano {
        return Some(left(now_nano - then));
    }
    modified.map(|m| threshold.saturating_sub(now.duration_since(m).unwrap_or(Duration::ZERO)))
}
