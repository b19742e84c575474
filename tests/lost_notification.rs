//! A waiter whose notifications are all lost still gets the lock, by its safety poll - later
//! than a notified one would, never not at all. Needs `--features fault-injection`
//! (`LEASELOCK_FAULT_ERRORS=watch.event` drops every event the watch thread reads); one test
//! per file, the fault configuration is per process.
#![cfg(all(feature = "fault-injection", target_os = "linux"))]

mod common;

use leaselock::lock::{Lock, Options, Wait, SAFETY_POLL};
use std::time::{Duration, Instant};

#[test]
fn a_waiter_whose_notifications_are_lost_acquires_by_the_safety_poll() {
    std::env::set_var("LEASELOCK_FAULT_ERRORS", "watch.event");
    let (dir, path, holder, _lost) = common::held_lock("lost-notification", 50, 3000);
    let waiter = std::thread::spawn({
        let path = path.clone();
        move || {
            let lock = Lock::new(path, Options::default(), 0);
            let wait = Wait::for_duration(Some(Duration::from_secs(20)), None);
            let got = lock
                .acquire(&wait, None, None, None)
                .map(|_| Instant::now());
            (lock, got)
        }
    });
    // Release a while after the waiter's first look, so its next safety poll is well ahead.
    std::thread::sleep(SAFETY_POLL / 3);
    let released = Instant::now();
    assert!(holder.release().unwrap());
    let (lock, got) = waiter.join().unwrap();
    let acquired = got.expect("acquired by the poll");
    let delay = acquired.duration_since(released);
    // The release event was dropped, so only the poll can have found the lock free.
    assert!(
        delay >= SAFETY_POLL / 5,
        "too quick for a poll ({delay:?}): was the notification really lost?"
    );
    assert!(delay <= SAFETY_POLL + Duration::from_secs(2), "{delay:?}");
    assert!(lock.held());
    lock.release().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
