//! Transient heartbeat errors (EIO injected into the heartbeat's write) are retried until
//! shortly before the lease would expire; they are not a loss by themselves. Needs
//! `--features fault-injection`; one test per file, because the fault configuration is read
//! once per process.
#![cfg(feature = "fault-injection")]

use leaselock::error::LeaseLost;
use leaselock::lease;
use leaselock::lock::{Lock, Options, Wait};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

#[test]
fn a_burst_of_failed_heartbeat_writes_is_survived() {
    // The first 8 writes fail. With a 20 ms interval and a 600 ms threshold, the retries (every
    // 5 ms) get through well before the lease could expire.
    std::env::set_var("LEASELOCK_FAULT_ERRORS", "heartbeat.write=8");
    let dir = std::env::temp_dir().join(format!("leaselock-hb-burst-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.lock");
    let opts = Options {
        heartbeat_interval: Duration::from_millis(20),
        stale_threshold: Duration::from_millis(600),
        ..Options::default()
    };
    let lock = Lock::new(path.clone(), opts, 0);
    let (tx, rx) = mpsc::channel::<LeaseLost>();
    let tx = Mutex::new(tx);
    let on_lost = Arc::new(move |l: LeaseLost| {
        let _ = tx.lock().unwrap().send(l);
    });
    lock.acquire(&Wait::once(), None, None, Some(on_lost))
        .unwrap();
    let first = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "no loss"
    );
    assert!(lock.held());
    // The heartbeat went on after the burst: the lease on disk is newer.
    let later = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(later.owner_id, first.owner_id);
    assert!(later.last_heartbeat_unix_nano > first.last_heartbeat_unix_nano);
    assert!(lock.release().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}
