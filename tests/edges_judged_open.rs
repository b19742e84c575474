//! A takeover keeps the file it judged open until it has verified what it exchanged: otherwise
//! the judged file could be deleted and its inode reused by a new file with the same bytes
//! (two empty files: a stale one, and a fresh one a Go writer has just created and not yet
//! written), and the verification - same inode, same bytes - would pass for the wrong file.
//!
//! Run with `cargo test --features fault-injection --test edges_judged_open`.
#![cfg(all(feature = "fault-injection", unix))]

use leaselock::lock::{Lock, LockError, Options, Wait};
use leaselock::owner;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[test]
fn a_fresh_file_reusing_the_judged_inode_is_not_taken_over() {
    std::env::set_var("LEASELOCK_FAULTS", "takeover.after-judge=400");
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "leaselock-judged-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.lock");
    // A stale empty file: a possible lease, old enough to be reclaimed.
    let stale = std::fs::File::create(&path).unwrap();
    stale
        .set_modified(SystemTime::now() - Duration::from_secs(10))
        .unwrap();
    drop(stale);
    let judged_ino = std::fs::metadata(&path).unwrap().ino();
    let l = Arc::new(Lock::new(path.clone(), Options::default(), 0));
    let acquiring = {
        let l = l.clone();
        std::thread::spawn(move || l.acquire(&Wait::once(), None, None, None).map(|_| ()))
    };
    // While the contender pauses after judging: the stale file goes, and a fresh empty one
    // (a writer between its create and its write) takes the name - and, on this filesystem,
    // the freed inode if it was freed.
    std::thread::sleep(Duration::from_millis(150));
    std::fs::remove_file(&path).unwrap();
    // Files come and go until one gets the judged inode (a filesystem reuses a freed inode
    // soon), or for a while: the judged inode must still be in use, so it never comes back.
    let mut fresh_ino = 0;
    for _ in 0..64 {
        let spare = dir.join("spare");
        std::fs::File::create(&spare).unwrap();
        fresh_ino = std::fs::metadata(&spare).unwrap().ino();
        if fresh_ino == judged_ino {
            std::fs::rename(&spare, &path).unwrap();
            break;
        }
        std::fs::remove_file(&spare).unwrap();
    }
    if fresh_ino != judged_ino {
        std::fs::File::create(&path).unwrap();
        fresh_ino = std::fs::metadata(&path).unwrap().ino();
    }
    eprintln!("judged inode {judged_ino}, fresh inode {fresh_ino}");
    let outcome = acquiring.join().unwrap();
    assert!(
        matches!(outcome, Err(LockError::Held { holder: None })),
        "the fresh file was taken over: {outcome:?}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), fresh_ino);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    let _ = std::fs::remove_dir_all(dir);
}
