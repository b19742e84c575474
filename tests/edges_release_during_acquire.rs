//! A `release()` that cancels an acquisition in flight must not make that acquisition's own
//! clean-up walk the user's path again: the file it published lives in the directory it opened
//! and checked, whatever has been swapped into the path meanwhile.
//!
//! Run with `cargo test --features fault-injection --test edges_release_during_acquire`.
#![cfg(all(feature = "fault-injection", target_os = "linux"))]

use leaselock::lock::{Lock, LockError, Options, Wait};
use leaselock::owner;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[test]
fn a_cancelled_acquisition_removes_its_file_from_the_directory_it_opened() {
    std::env::set_var("LEASELOCK_FAULTS", "acquire.before-publish=1000");
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "leaselock-cancel-walk-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    let parent = dir.join("p");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let l = Arc::new(Lock::new(parent.join("x.lock"), Options::default(), 0));
    let acquiring = {
        let l = l.clone();
        std::thread::spawn(move || l.acquire(&Wait::once(), None, None, None).map(|_| ()))
    };
    // The acquisition has opened `p` and waits before publishing: cancel it, then swap `p`
    // for a link to somewhere else.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!l.release().unwrap());
    std::fs::rename(&parent, dir.join("moved")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &parent).unwrap();
    let out = acquiring.join().unwrap();
    assert!(matches!(out, Err(LockError::Cancelled)), "{out:?}");
    // Only the fencing-token counter stays (release never removes it).
    let left: Vec<_> = std::fs::read_dir(dir.join("moved"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [".x.lock.token"],
        "the cancelled lease was left behind: {left:?}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(dir);
}
