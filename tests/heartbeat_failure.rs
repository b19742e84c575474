//! Heartbeat writes that keep failing end in a loss reported as `heartbeat-failed` with the
//! OS error, before the lease could be taken over - and the file is left alone. Needs
//! `--features fault-injection`; one test per file (the fault configuration is per process).
#![cfg(feature = "fault-injection")]

use leaselock::error::{LeaseLost, LossReason};
use leaselock::lock::{Lock, Options, Wait};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn heartbeat_writes_that_keep_failing_end_in_a_reported_loss() {
    std::env::set_var("LEASELOCK_FAULT_ERRORS", "heartbeat.write");
    let dir = std::env::temp_dir().join(format!("leaselock-hb-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.lock");
    let opts = Options {
        heartbeat_interval: Duration::from_millis(50),
        stale_threshold: Duration::from_millis(500),
        ..Options::default()
    };
    let lock = Lock::new(path.clone(), opts, 0);
    let (tx, rx) = mpsc::channel::<LeaseLost>();
    let tx = Mutex::new(tx);
    let on_lost = Arc::new(move |l: LeaseLost| {
        let _ = tx.lock().unwrap().send(l);
    });
    let t0 = Instant::now();
    lock.acquire(&Wait::once(), None, None, Some(on_lost))
        .unwrap();
    let lost = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("a loss is reported");
    let after = t0.elapsed();
    assert_eq!(lost.reason, LossReason::HeartbeatFailed);
    assert_eq!(lost.error_code.as_deref(), Some("EIO"));
    // Given up shortly before the lease could go stale (threshold less one interval), not at
    // the first error and not after others could have taken it.
    assert!(
        after >= Duration::from_millis(300),
        "gave up too early: {after:?}"
    );
    assert!(
        after < Duration::from_millis(500) + Duration::from_secs(1),
        "{after:?}"
    );
    assert!(!lock.held());
    assert!(path.exists(), "a lost lease leaves the file alone");
    assert!(
        !lock.release().unwrap(),
        "nothing of ours to remove after a loss"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "told once"
    );
    let _ = std::fs::remove_dir_all(dir);
}
