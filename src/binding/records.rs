//! What crosses the boundary as plain data: lease records, failures and lost-lease notices.
//! Times are milliseconds since the epoch, as JavaScript counts them.

use crate::lease::Lease;
use crate::lock::{io_code, Assessment, Holder, Inspected, LeaseLost, LockError};
use crate::owner::{self, Liveness};
use napi_derive::napi;
use std::time::{Duration, SystemTime};

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
    /// Why the metadata was dropped when read (nested too deeply), when it was.
    pub metadata_dropped: Option<String>,
    /// inspect only: whether this process could take the lock over once the rules allow.
    pub can_take_over: Option<bool>,
    /// inspect only: what would stop it.
    pub blocked: Option<NativeBlocked>,
    /// The lease's fencing token, as decimal text; absent for a lease without one (Go's).
    pub token: Option<String>,
}

/// A file in the way of a takeover that this process may not move.
#[napi(object)]
#[derive(Clone)]
pub struct NativeBlocked {
    pub path: String,
    pub owner: Option<u32>,
    pub message: String,
}

/// Why an operation failed: `code` is what the JS error's `code` will be, `message` its text.
#[napi(object)]
pub struct NativeFailure {
    pub code: String,
    pub message: String,
    pub holder: Option<LeaseRecord>,
    pub syscall: Option<String>,
    pub errno: Option<i32>,
    pub attempts: Option<u32>,
    /// `ELOCKNOTLEASE`: the size of the file that is not a lease.
    pub size: Option<f64>,
    /// The file an `ELOCKNOTMOVABLE` / `ELOCKUNSAFEPATH` is about, and its owner.
    pub path: Option<String>,
    pub owner: Option<u32>,
}

/// A lost lease, as `onLeaseLost` reports it.
#[napi(object)]
pub struct LostInfo {
    pub reason: String,
    pub new_owner: Option<LeaseRecord>,
    pub error: Option<String>,
    pub at: f64,
}

/// Milliseconds from JS as a Duration; anything too large for one saturates (never panics).
pub fn ms(d: f64) -> Duration {
    Duration::try_from_secs_f64((d / 1000.0).max(0.0)).unwrap_or(Duration::MAX)
}

pub fn epoch_ms(t: SystemTime) -> f64 {
    owner::unix_nanos(t) as f64 / 1e6
}

fn holder_record(h: &Holder) -> LeaseRecord {
    lease_record(&h.lease, h.alive, h.stale)
}

pub fn lease_record(l: &Lease, alive: Liveness, stale: bool) -> LeaseRecord {
    let limit = crate::lease::METADATA_DEPTH_LIMIT;
    let too_deep = |m: &&String| crate::lease::nests_deeper_than(m, limit);
    let dropped = l.metadata_json.as_ref().filter(too_deep).map(|_| {
        format!("dropped: nested deeper than {limit} levels (a lock file others may have written)")
    });
    LeaseRecord {
        metadata_dropped: dropped.clone(),
        can_take_over: None,
        blocked: None,
        valid: true,
        pid: Some(l.pid as f64),
        owner_id: Some(l.owner_id.clone()),
        hostname: l.identity.as_ref().map(|i| i.hostname.clone()),
        started_at: l.acquired_unix_nano.map(|n| n as f64 / 1e6),
        last_heartbeat: Some(l.last_heartbeat_unix_nano as f64 / 1e6),
        metadata: if dropped.is_some() {
            None
        } else {
            l.metadata_json.clone()
        },
        alive: match alive {
            Liveness::Alive => "alive",
            Liveness::Dead => "dead",
            Liveness::Unknown => "unknown",
        }
        .into(),
        stale,
        size: None,
        modified_at: None,
        token: l.token.map(|t| t.to_string()),
    }
}

pub fn assessment_record(a: Assessment) -> LeaseRecord {
    match a {
        Assessment::Lease(h) => holder_record(&h),
        // Reported as an error, never as a holder; shown as content that is not a lease.
        Assessment::NotALease { size, .. } => LeaseRecord {
            valid: false,
            pid: None,
            owner_id: None,
            hostname: None,
            started_at: None,
            last_heartbeat: None,
            metadata: None,
            alive: "unknown".into(),
            stale: false,
            size: Some(size.min(u32::MAX as u64) as u32),
            modified_at: None,
            metadata_dropped: None,
            can_take_over: None,
            blocked: None,
            token: None,
        },
        Assessment::Invalid {
            bytes,
            modified,
            stale,
        } => LeaseRecord {
            valid: false,
            pid: None,
            owner_id: None,
            hostname: None,
            started_at: None,
            last_heartbeat: None,
            metadata: None,
            alive: "unknown".into(),
            stale,
            size: Some(bytes as u32),
            modified_at: Some(epoch_ms(modified)),
            metadata_dropped: None,
            can_take_over: None,
            blocked: None,
            token: None,
        },
    }
}

/// What `inspect` found, with whether this process could take it over.
pub fn inspected_record(i: Inspected) -> LeaseRecord {
    LeaseRecord {
        can_take_over: Some(i.blocked.is_none()),
        blocked: i.blocked.map(|b| NativeBlocked {
            path: b.path.display().to_string(),
            owner: b.owner,
            message: LockError::NotMovable(b).to_string(),
        }),
        ..assessment_record(i.found)
    }
}

/// The JS error code of each failure. The codes are part of the API; the messages come from
/// the engine's `Display`.
fn code(e: &LockError) -> String {
    match e {
        LockError::Held { .. } => "ELOCKHELD".into(),
        LockError::RetryBudgetExhausted { .. } => "ELOCKCONTENDED".into(),
        LockError::NotAFile { .. } => "ELOCKNOTFILE".into(),
        LockError::NotALease { .. } | LockError::NotACounter { .. } => "ELOCKNOTLEASE".into(),
        LockError::MetadataInvalid(_) => "ERR_INVALID_ARG_VALUE".into(),
        LockError::MetadataTooLarge { .. } => "ERR_OUT_OF_RANGE".into(),
        LockError::NotHeld => "ELOCKNOTHELD".into(),
        LockError::Cancelled => "ABORT_ERR".into(),
        LockError::Untrusted(_) => "ELOCKUNSAFEPATH".into(),
        LockError::NotMovable(_) => "ELOCKNOTMOVABLE".into(),
        LockError::Io { source, .. } => io_code(source),
    }
}

pub fn failure(e: LockError) -> NativeFailure {
    let mut out = NativeFailure {
        code: code(&e),
        message: e.to_string(),
        holder: None,
        syscall: None,
        errno: None,
        attempts: None,
        size: None,
        path: None,
        owner: None,
    };
    match e {
        LockError::Held { holder } => out.holder = holder.as_deref().map(holder_record),
        LockError::RetryBudgetExhausted { attempts } => out.attempts = Some(attempts),
        LockError::NotALease { size, .. } => out.size = Some(size as f64),
        LockError::NotACounter { path, .. } => out.path = Some(path.display().to_string()),
        LockError::Untrusted(u) => {
            out.path = Some(u.path().display().to_string());
            out.owner = Some(u.owner());
        }
        LockError::NotMovable(b) => {
            out.path = Some(b.path.display().to_string());
            out.owner = b.owner;
        }
        LockError::Io { op, source, .. } => {
            out.syscall = Some(op.into());
            out.errno = source.raw_os_error();
        }
        _ => {}
    }
    out
}

/// The notice for `onLeaseLost`; the new owner, if any, is judged as `inspect` would.
pub fn lost_info(l: LeaseLost, stale_threshold: Duration) -> LostInfo {
    LostInfo {
        reason: l.reason.as_str().into(),
        new_owner: l.new_owner.as_ref().map(|o| {
            lease_record(
                o,
                owner::liveness(o),
                owner::is_stale(o, stale_threshold, SystemTime::now(), None),
            )
        }),
        error: l.error_code,
        at: epoch_ms(l.at),
    }
}
