//! A release whose claim caught a new owner's file, and cannot put it back because a third
//! process published meanwhile, leaves that file at its private name - never deletes it.
//!
//! Run with `cargo test --features fault-injection --test edges_release_putback`. The delays
//! (read once per process) hold the releasing thread between its steps while the test lets a
//! takeover and a new lock happen.
#![cfg(feature = "fault-injection")]

use leaselock::lease;
use leaselock::lock::{Lock, Options, Wait};
use leaselock::owner;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[test]
fn a_file_that_cannot_be_put_back_stays_at_its_private_name() {
    std::env::set_var(
        "LEASELOCK_FAULTS",
        "release.before-claim=400,release.after-claim=800",
    );
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "leaselock-putback-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.lock");
    let opts = Options {
        heartbeat_interval: Duration::from_secs(5),
        stale_threshold: Duration::from_secs(20),
        ..Options::default()
    };
    let a = Arc::new(Lock::new(path.clone(), opts.clone(), 0));
    a.acquire(&Wait::once(), None, None, None).unwrap();
    // A releases: its lease is fresh, so it claims at once - after the first delay.
    let releasing = {
        let a = a.clone();
        std::thread::spawn(move || a.release())
    };
    std::thread::sleep(Duration::from_millis(100));
    // B proves A "dead" and takes over while A waits before its claim.
    let b = Lock::new(path.clone(), opts.clone(), 0);
    let dead = |_: i64| false;
    b.acquire(&Wait::once(), Some(&dead), None, None).unwrap();
    let b_owner = b.current_lease().unwrap().owner_id;
    // A's claim moves B's file aside; C publishes at the free path before A can put it back.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!path.exists(), "A's claim moved B's file aside");
    let c = Lock::new(path.clone(), opts, 0);
    c.acquire(&Wait::once(), None, None, None).unwrap();
    let released = releasing.join().unwrap().unwrap();
    assert!(!released, "A removed nothing of its own");
    let owners: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| lease::parse(&std::fs::read(e.path()).ok()?).ok())
        .map(|l| l.owner_id)
        .collect();
    assert!(
        owners.contains(&b_owner),
        "B's file was deleted instead of being left at its private name: {owners:?}"
    );
    assert_eq!(
        lease::parse(&std::fs::read(&path).unwrap())
            .unwrap()
            .owner_id,
        c.current_lease().unwrap().owner_id
    );
    c.release().unwrap();
    let _ = b.release();
    let _ = std::fs::remove_dir_all(dir);
}
