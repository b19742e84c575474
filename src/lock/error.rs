//! What can go wrong, as plain Rust values. The binding turns them into JS errors on the JS
//! thread; nothing here knows about JavaScript.

use super::judge::Holder;
use crate::lease::Lease;
use crate::sys::FileKind;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

#[derive(Debug)]
pub enum LockError {
    /// A live owner holds a fresh lease (`holder: Some`), or the file's content is not a lease
    /// and is younger than the invalid-content threshold (`holder: None`).
    Held { holder: Option<Box<Holder>> },
    /// Every attempt found the lock stale, but it changed under us each time.
    RetryBudgetExhausted { attempts: u32 },
    /// Something other than a regular file is at the lock path; it was left untouched.
    NotAFile { kind: FileKind },
    /// Metadata that is not JSON text.
    MetadataInvalid(String),
    /// Metadata over the size limit.
    MetadataTooLarge { size: usize, limit: usize },
    /// `update` on a lock this instance does not hold.
    NotHeld,
    /// The wait was cancelled (abort signal) before the lock was acquired.
    Cancelled,
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl LockError {
    pub fn io(op: &'static str, path: &std::path::Path, source: io::Error) -> Self {
        LockError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why a held lease was lost; reported once through `onLeaseLost`.
#[derive(Debug, Clone)]
pub struct LeaseLost {
    pub reason: LossReason,
    /// The lease now at the path, when another owner's is there.
    pub new_owner: Option<Lease>,
    /// The last OS error code seen (for `HeartbeatFailed`).
    pub error_code: Option<String>,
    pub at: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// The path now names a file with another owner's lease (a takeover, or an overwrite).
    OwnerChanged,
    /// The lock file was removed or replaced by something that is not a lease of ours.
    Removed,
    /// Heartbeats kept failing until the lease was about to expire.
    HeartbeatFailed,
}

impl LossReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::OwnerChanged => "owner-changed",
            LossReason::Removed => "removed",
            LossReason::HeartbeatFailed => "heartbeat-failed",
        }
    }
}
