//! Owners: who this process is, and what can be proven about the owner of a lease.

use crate::lease::{Lease, OwnerIdentity};
use crate::sys::{self, ProcessState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
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
    pub identity: Option<OwnerIdentity>,
}

pub fn this_process() -> &'static ThisProcess {
    static ME: OnceLock<ThisProcess> = OnceLock::new();
    ME.get_or_init(|| ThisProcess {
        pid: std::process::id() as i64,
        identity: sys::this_process(),
    })
}

/// A new owner id in Go's form, `<pid>-<UnixNano>-<seq>`, with a process-wide sequence that
/// starts at 1 - so no two acquisitions, in any thread or instance, share one.
pub fn new_owner_id(now_unix_nano: i64) -> String {
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

/// Whether the lease's owner and this process share a boot (and so a boot clock).
fn same_boot(lease: &Lease) -> bool {
    match (&lease.identity, &this_process().identity) {
        (Some(theirs), Some(mine)) => {
            theirs.boot_id == mine.boot_id && theirs.hostname == mine.hostname
        }
        _ => false,
    }
}

/// What can be proven about the owner process of `lease`.
///
/// Only a lease from our own host, boot and PID namespace can prove its owner dead: then the
/// pid is looked up, and a missing pid, a zombie, or a pid whose start time differs from the
/// recorded one (the pid was reused) means the owner is gone. Everything else - another host,
/// container or boot, a Go-written lease without identity, a probe without permission - is
/// `Unknown`, which callers treat as alive so that only the lease's age can free the lock.
pub fn liveness(lease: &Lease) -> Liveness {
    let (Some(theirs), Some(mine)) = (&lease.identity, &this_process().identity) else {
        return Liveness::Unknown;
    };
    if theirs.hostname != mine.hostname
        || theirs.boot_id != mine.boot_id
        || theirs.pid_namespace != mine.pid_namespace
    {
        return Liveness::Unknown;
    }
    match sys::probe(lease.pid) {
        ProcessState::Gone => Liveness::Dead,
        ProcessState::Running { start } if start == theirs.process_start => Liveness::Alive,
        ProcessState::Running { .. } => Liveness::Dead,
        ProcessState::Unknown => Liveness::Unknown,
    }
}

/// Whether `lease` has gone without a heartbeat for `threshold` or longer. Within one boot the
/// boot clock is compared, so a wall-clock jump cannot make a live lease look stale; otherwise
/// (a Go lease, another host) the wall clock, as the Go package does.
pub fn is_stale(lease: &Lease, threshold: Duration, now: SystemTime) -> bool {
    let limit = threshold.as_nanos() as i128;
    if same_boot(lease) {
        if let (Some(then), Some(now_boot)) = (lease.heartbeat_boot_nano, sys::boot_nanos()) {
            return now_boot as i128 - then as i128 >= limit;
        }
    }
    unix_nanos(now) as i128 - lease.last_heartbeat_unix_nano as i128 >= limit
}
