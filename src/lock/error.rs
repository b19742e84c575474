//! What can go wrong, as plain Rust values, with their messages. The binding adds the codes
//! JavaScript sees and turns them into JS errors; nothing here knows about JavaScript.

use super::judge::Holder;
use crate::lease::Lease;
use crate::sys;
use crate::sys::FileKind;
use std::fmt;
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
    /// The file at the lock path is not a lock and cannot be a lease cut off mid-write; it was
    /// left untouched. `head`: its first bytes, as read.
    NotALease {
        path: PathBuf,
        size: u64,
        head: Vec<u8>,
    },
    /// The file at the fencing-token counter's name (see `token`) is not a counter of ours, or
    /// others may write it; nothing was written to it.
    NotACounter { path: PathBuf, why: String },
    /// A symlink or directory in the lock path that another user controls; not followed.
    Untrusted(crate::sys::Untrusted),
    /// A file in the way (the stale lock, or something at the takeover-claim name) that this
    /// process may not move: it belongs to `owner`, and `why` says what stops us. Waiting
    /// would not help, so it is reported at once.
    NotMovable(Blocked),
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

/// A file this process may not move, in the way of a takeover.
#[derive(Debug, Clone)]
pub struct Blocked {
    pub path: PathBuf,
    pub owner: Option<u32>,
    /// What stops us, to follow "<path> belongs to <owner> and".
    pub why: &'static str,
}

/// The first line of the error for a held lock (the JS layer adds who holds it).
pub const HELD_TEXT: &str = "lock file is already held by another process";

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held { .. } => f.write_str(HELD_TEXT),
            LockError::RetryBudgetExhausted { .. } => {
                f.write_str("acquire lock: contention exceeded retry budget")
            }
            LockError::NotAFile { kind } => write!(
                f,
                "lock path is {kind}, not a regular file; it was left untouched"
            ),
            LockError::NotALease { path, size, head } => write!(
                f,
                "{} is not a lock file: its {size} bytes are not a lease (it starts with \"{}\"). \
                 It was left untouched. Lock a separate path next to the resource, such as \
                 {}.lock; if this file is a stale lock left by another tool, delete it.",
                path.display(),
                glimpse(head),
                path.display()
            ),
            LockError::NotACounter { path, why } => write!(
                f,
                "{} is not this lock's fencing-token counter: {why}. It was left untouched and \
                 the lock was not taken; move it away if it is yours, or lock another path.",
                path.display()
            ),
            LockError::MetadataInvalid(why) => write!(f, "metadata is not JSON: {why}"),
            LockError::MetadataTooLarge { size, limit } => {
                write!(f, "metadata is {size} bytes as JSON; the limit is {limit}")
            }
            LockError::NotHeld => f.write_str("the lock is not held by this instance"),
            LockError::Cancelled => f.write_str("The operation was aborted"),
            LockError::Untrusted(u) => write!(
                f,
                "lock path refused: {u}. Pass allowUntrustedParents: true only if you trust every user who can write there"
            ),
            LockError::NotMovable(b) => write!(
                f,
                "this user cannot take the lock over: {} belongs to {} and {}; it was left untouched",
                b.path.display(),
                b.owner
                    .map_or_else(|| "another user".to_string(), sys::describe_owner),
                b.why
            ),
            LockError::Io { op, path, source } => write!(
                f,
                "{}: {source}, {op} '{}'",
                io_code(source),
                path.display()
            ),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Bytes of unknown content as printable ASCII: printable characters as they are, everything
/// else (control characters, terminal escapes, non-ASCII) as `\xNN`, so that nothing read from
/// a file can act on a terminal.
pub fn glimpse(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The name of an I/O error's OS code (`ENOENT`), or `EIO` when it has none.
pub fn io_code(e: &io::Error) -> String {
    e.raw_os_error()
        .map(sys::errno_name)
        .unwrap_or_else(|| "EIO".to_string())
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
    /// A renewal did not complete by the give-up point: its filesystem is stuck (a hung mount).
    /// Reported while the call is still stuck; its late completion changes nothing.
    HeartbeatStalled,
}

impl LossReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::OwnerChanged => "owner-changed",
            LossReason::Removed => "removed",
            LossReason::HeartbeatFailed => "heartbeat-failed",
            LossReason::HeartbeatStalled => "heartbeat-stalled",
        }
    }
}
