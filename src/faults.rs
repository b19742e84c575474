//! Named delay points between the steps of create, takeover, heartbeat and release, so tests
//! can force every interleaving the design argues about. Compiled in only with the
//! `fault-injection` feature; otherwise `point` is an empty inline function.
//!
//! With the feature, `LEASELOCK_FAULTS="takeover.after-exchange=200,release.before-claim=50"`
//! makes each named point sleep that many milliseconds (read once per process).

#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static DELAYS: OnceLock<HashMap<String, u64>> = OnceLock::new();
    let delays = DELAYS.get_or_init(|| {
        std::env::var("LEASELOCK_FAULTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim().to_string(), v.trim().parse().ok()?))
            })
            .collect()
    });
    if let Some(ms) = delays.get(name) {
        std::thread::sleep(std::time::Duration::from_millis(*ms));
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
