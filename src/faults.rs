//! Named fault points between the steps of create, takeover, heartbeat and release, so tests
//! can force every interleaving the design argues about, and the I/O errors it must survive.
//! Compiled in only with the `fault-injection` feature; otherwise both functions are empty
//! and inlined away.
//!
//! With the feature (each variable read once per process):
//! - `LEASELOCK_FAULTS="takeover.after-exchange=200,release.before-claim=50"` makes each named
//!   `point` sleep that many milliseconds;
//! - `LEASELOCK_FAULT_ERRORS="heartbeat.write=5"` makes the first 5 passes through the named
//!   `error` point fail with EIO (`0` or no count: every pass fails);
//! - `LEASELOCK_FAULT_SUSPEND_FILE=<path>`: the boot clock reads that many milliseconds more
//!   than it is (the file's content, read at every reading), as after a suspend of that long,
//!   during which `Instant` stands still.

#[cfg(feature = "fault-injection")]
fn parse(var: &str) -> std::collections::HashMap<String, u64> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "0"));
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.trim().parse().unwrap_or(0)))
        })
        .collect()
}

#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static DELAYS: OnceLock<HashMap<String, u64>> = OnceLock::new();
    if let Some(ms) = DELAYS.get_or_init(|| parse("LEASELOCK_FAULTS")).get(name) {
        std::thread::sleep(std::time::Duration::from_millis(*ms));
    }
}

/// An injected I/O error at this point, if one is configured and not used up.
#[cfg(feature = "fault-injection")]
pub fn error(name: &str) -> Option<std::io::Error> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static LEFT: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let left = LEFT.get_or_init(|| Mutex::new(parse("LEASELOCK_FAULT_ERRORS")));
    let mut left = left.lock().unwrap_or_else(|p| p.into_inner());
    match left.get_mut(name) {
        None => None,
        Some(0) => Some(std::io::Error::from_raw_os_error(libc::EIO)),
        Some(1) => {
            left.remove(name);
            Some(std::io::Error::from_raw_os_error(libc::EIO))
        }
        Some(n) => {
            *n -= 1;
            Some(std::io::Error::from_raw_os_error(libc::EIO))
        }
    }
}

/// Nanoseconds of simulated suspend to add to the boot clock.
#[cfg(feature = "fault-injection")]
pub fn suspended_nanos() -> u64 {
    std::env::var_os("LEASELOCK_FAULT_SUSPEND_FILE")
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(0, |ms| ms * 1_000_000)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn suspended_nanos() -> u64 {
    0
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn error(_name: &str) -> Option<std::io::Error> {
    None
}
