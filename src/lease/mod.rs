//! The lease record: what a lock file says, how it is written and how it is read.
//!
//! No I/O here. The format is shared with the Go package `kit/lockfile`: one compact JSON
//! object, the four Go fields first and in Go's order, then our own fields, then one `\n`.
//! Reading follows Go's `encoding/json` rules exactly (see [`parse`]), because a file that Go
//! would call a valid lease must be one to us too, and the other way round.

mod encode;
mod parse;
#[cfg(test)]
mod tests;

pub use encode::{patch_heartbeat, Stamps};
pub use parse::{parse, possible_lease, Invalid};
use std::sync::Arc;

/// The four fields the Go package reads, plus the ones this package adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lease {
    /// `"<pid>-<UnixNano at acquire>-<seq>"`, new for every acquisition.
    pub owner_id: String,
    pub pid: i64,
    /// Wall-clock Unix time of the last heartbeat, in nanoseconds.
    pub last_heartbeat_unix_nano: i64,
    /// Who the owner process is, strongly enough to survive PID reuse. `None` in a Go-written
    /// lease (and in any lease that does not carry it). Shared: every lease this process
    /// writes carries the same one.
    pub identity: Option<Arc<OwnerIdentity>>,
    /// CLOCK_BOOTTIME of the last heartbeat, in nanoseconds; only comparable within one boot.
    pub heartbeat_boot_nano: Option<u64>,
    /// Wall-clock Unix time of the acquisition, in nanoseconds.
    pub acquired_unix_nano: Option<i64>,
    /// The fencing token of this acquisition (see `lock::token`); `None` in a Go-written lease
    /// and in leases written before tokens existed.
    pub token: Option<u64>,
    /// The holder's metadata, as compact JSON text (`None` when there is none).
    pub metadata_json: Option<String>,
}

/// Where the owner process lives and which incarnation of its pid it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerIdentity {
    pub hostname: String,
    /// `/proc/sys/kernel/random/boot_id` on Linux; another per-boot token elsewhere.
    pub boot_id: String,
    /// Inode of `/proc/self/ns/pid` on Linux, empty where there is no such thing.
    pub pid_namespace: String,
    /// The process start time in the platform's own unit (clock ticks since boot on Linux).
    pub process_start: String,
    /// Inode of `/proc/self/ns/time` on Linux: the boot clock and the start time are shifted
    /// per time namespace, so they compare only within one. Empty where there is none; `None`
    /// in a lease that does not record it (its boot-clock readings compare with nothing).
    pub time_namespace: Option<String>,
}

/// How deeply metadata read from a lock file may nest. Anything deeper is dropped when read: a
/// planted lease with thousands of nested arrays (it fits the read cap) would otherwise make
/// every consumer that walks it recursively - `JSON.stringify`, `util.inspect` - overflow its
/// stack.
pub const METADATA_DEPTH_LIMIT: usize = 32;

/// Whether the JSON text `json` nests arrays and objects deeper than `limit`.
pub fn nests_deeper_than(json: &str, limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Width of the zero-padded `heartbeatBoot` string: a heartbeat rewrite never changes the
/// record's length, so it can be written in place without a reader seeing a torn length.
const BOOT_NANO_WIDTH: usize = 20;
