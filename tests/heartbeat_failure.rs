//! Heartbeat writes that keep failing end in a loss reported as `heartbeat-failed` with the
//! OS error, before the lease could be taken over - and the file is left alone. Needs
//! `--features fault-injection`; one test per file (the fault configuration is per process).
#![cfg(feature = "fault-injection")]

mod common;

use leaselock::lock::LossReason;
use std::time::{Duration, Instant};

#[test]
fn heartbeat_writes_that_keep_failing_end_in_a_reported_loss() {
    std::env::set_var("LEASELOCK_FAULT_ERRORS", "heartbeat.write");
    let t0 = Instant::now();
    let (dir, path, lock, lost) = common::held_lock("hb-fail", 50, 500);
    let notice = lost
        .recv_timeout(Duration::from_secs(5))
        .expect("a loss is reported");
    let after = t0.elapsed();
    assert_eq!(notice.reason, LossReason::HeartbeatFailed);
    assert_eq!(notice.error_code.as_deref(), Some("EIO"));
    // Given up shortly before the lease could go stale (threshold less one interval), not at
    // the first error and not after others could have taken it.
    assert!(
        after >= Duration::from_millis(300),
        "gave up too early: {after:?}"
    );
    assert!(after < Duration::from_millis(1500), "{after:?}");
    assert!(!lock.held());
    assert!(path.exists(), "a lost lease leaves the file alone");
    assert!(
        !lock.release().unwrap(),
        "nothing of ours to remove after a loss"
    );
    assert!(
        lost.recv_timeout(Duration::from_millis(300)).is_err(),
        "told once"
    );
    let _ = std::fs::remove_dir_all(dir);
}
