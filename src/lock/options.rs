//! What a caller may choose, with the Go package's defaults, and the limits on what it passes.

use super::error::LockError;
use super::judge::Thresholds;
use std::time::Duration;

/// Metadata larger than this (as compact JSON) is refused.
pub const METADATA_LIMIT: usize = 4096;

/// Options, with the Go package's defaults. The binding validates them.
#[derive(Debug, Clone)]
pub struct Options {
    pub retry_limit: u32,
    pub retry_delay: Duration,
    pub invalid_stale: Duration,
    pub file_mode: u32,
    pub dir_mode: u32,
    pub heartbeat_interval: Duration,
    pub stale_threshold: Duration,
    /// Reclaim every invalid content by age (the Go package's rule), not only possible leases.
    pub reclaim_invalid: bool,
    /// Follow symlinks owned by other users and use directories others may write without the
    /// sticky bit (see [`crate::sys::open_lock_dir`]). Off by default.
    pub allow_untrusted_parents: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retry_limit: 12,
            retry_delay: Duration::from_millis(20),
            invalid_stale: Duration::from_millis(1200),
            file_mode: 0o644,
            dir_mode: 0o755,
            heartbeat_interval: Duration::from_millis(250),
            stale_threshold: Duration::from_secs(3),
            reclaim_invalid: false,
            allow_untrusted_parents: false,
        }
    }
}

impl Options {
    /// The pause between tries of a contended lock: the retry delay, but never zero, so that a
    /// zero delay never spins.
    pub fn retry_pause(&self) -> Duration {
        self.retry_delay.max(Duration::from_millis(1))
    }

    /// The ages at which a lease or a file that is not one may be taken over.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            stale: self.stale_threshold,
            invalid: self.invalid_stale,
            reclaim_invalid: self.reclaim_invalid,
        }
    }
}

/// Metadata goes into the lease as JSON text, so it must be JSON: parsed and written back
/// compact here, whoever the caller is, so a lease can never be made invalid through it. The
/// size limit applies to the compact form.
pub fn compact_metadata(m: &str) -> Result<String, LockError> {
    let value: serde_json::Value =
        serde_json::from_str(m).map_err(|e| LockError::MetadataInvalid(e.to_string()))?;
    let compact = value.to_string();
    if compact.len() > METADATA_LIMIT {
        return Err(LockError::MetadataTooLarge {
            size: compact.len(),
            limit: METADATA_LIMIT,
        });
    }
    Ok(compact)
}
