//! The end of an environment releases its locks even while a heartbeat is in the middle of a
//! write: it waits for the beat instead of giving up and leaving the lock renewed by nobody
//! (or, worse, by a heartbeat that keeps going for an environment that is gone).
//!
//! Run with `cargo test --features fault-injection --test edges_exit_midbeat`.
#![cfg(feature = "fault-injection")]

use leaselock::lock::{release_held_for_exit, Lock, Options, Wait};
use leaselock::owner;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[test]
fn environment_exit_waits_for_a_heartbeat_mid_write_and_releases() {
    std::env::set_var("LEASELOCK_FAULTS", "heartbeat.after-write=400");
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "leaselock-midbeat-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.lock");
    let opts = Options {
        heartbeat_interval: Duration::from_millis(20),
        stale_threshold: Duration::from_secs(5),
        ..Options::default()
    };
    let group = 77;
    let l = Lock::new(path.clone(), opts, group);
    l.acquire(&Wait::once(), None, None, None).unwrap();
    // The first beat comes after 20 ms and then stalls 400 ms with the lock's state in hand.
    std::thread::sleep(Duration::from_millis(120));
    release_held_for_exit(Some(group));
    assert!(!path.exists(), "the environment's end gave up on its lock");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !path.exists(),
        "a heartbeat renewed a lock of an environment that is gone"
    );
    let _ = std::fs::remove_dir_all(dir);
}
