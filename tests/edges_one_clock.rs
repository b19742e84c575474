//! One clock for every decision about our own lease's age: after a suspend (simulated here: the
//! boot clock jumps, `Instant` stands still) a release whose lease others already see as stale
//! looks at the path before claiming, and so never moves a new owner's file aside.
//!
//! Run with `cargo test --features fault-injection --test edges_one_clock`.
#![cfg(all(feature = "fault-injection", unix))]

use leaselock::lock::{Lock, Options, Wait};
use leaselock::owner;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[test]
fn release_after_a_suspend_leaves_the_new_owner_in_place() {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "leaselock-clock-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let suspend = dir.join("suspended-ms");
    std::fs::write(&suspend, "0").unwrap();
    std::env::set_var("LEASELOCK_FAULT_SUSPEND_FILE", &suspend);
    // A claim that happens at all stays visible (the path empty) for 500 ms.
    std::env::set_var("LEASELOCK_FAULTS", "release.after-claim=500");
    let path = dir.join("x.lock");
    let opts = Options {
        heartbeat_interval: Duration::from_secs(30),
        stale_threshold: Duration::from_secs(60),
        ..Options::default()
    };
    let a = Arc::new(Lock::new(path.clone(), opts.clone(), 0));
    a.acquire(&Wait::once(), None, None, None).unwrap();
    // The machine sleeps for ten minutes; on waking, B sees A's lease stale and takes over.
    std::fs::write(&suspend, "600000").unwrap();
    let b = Lock::new(path.clone(), opts, 0);
    b.acquire(&Wait::once(), None, None, None).unwrap();
    let b_id = std::fs::symlink_metadata(&path).unwrap();
    // A releases: its lease is ten minutes old by the boot clock, so it must look first.
    let releasing = {
        let a = a.clone();
        std::thread::spawn(move || a.release())
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        path.exists(),
        "release moved the new owner's file aside (it judged its lease by a clock that stops in suspend)"
    );
    assert!(!releasing.join().unwrap().unwrap());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::symlink_metadata(&path).unwrap().ino(), b_id.ino());
    assert!(b.release().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}
