//! Transient heartbeat errors (EIO injected into the heartbeat's write) are retried until
//! shortly before the lease would expire; they are not a loss by themselves. Needs
//! `--features fault-injection`; one test per file, because the fault configuration is read
//! once per process.
#![cfg(feature = "fault-injection")]

mod common;

use leaselock::lease;
use std::time::Duration;

#[test]
fn a_burst_of_failed_heartbeat_writes_is_survived() {
    // The first 8 writes fail. With a 20 ms interval and a 600 ms threshold, the retries (every
    // 5 ms) get through well before the lease could expire.
    std::env::set_var("LEASELOCK_FAULT_ERRORS", "heartbeat.write=8");
    let (dir, path, lock, lost) = common::held_lock("hb-burst", 20, 600);
    let first = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        lost.recv_timeout(Duration::from_millis(1500)).is_err(),
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
