//! A takeover reports success only while the path names the file it put there: a Go contender
//! compares bytes and then unlinks by path, so it can remove our fresh file right after our
//! exchange.
//!
//! Run with `cargo test --features fault-injection --test edges_takeover_confirm`.
#![cfg(feature = "fault-injection")]

use leaselock::lease;
use leaselock::lock::{Lock, Options, Wait};
use leaselock::owner;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[test]
fn a_takeover_whose_file_was_unlinked_is_not_reported_as_held() {
    std::env::set_var("LEASELOCK_FAULTS", "takeover.before-confirm=400");
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "leaselock-confirm-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.lock");
    let hb = owner::unix_nanos(SystemTime::now() - Duration::from_secs(30));
    let pid = std::process::id();
    std::fs::write(
        &path,
        format!("{{\"version\":1,\"ownerID\":\"stale\",\"pid\":{pid},\"lastHeartbeatUnixNano\":{hb}}}\n"),
    )
    .unwrap();
    let l = Arc::new(Lock::new(path.clone(), Options::default(), 0));
    let acquiring = {
        let l = l.clone();
        std::thread::spawn(move || l.acquire(&Wait::once(), None, None, None).map(|_| ()))
    };
    // The "Go contender": unlinks by path while the takeover is between exchange and answer.
    std::thread::sleep(Duration::from_millis(150));
    std::fs::remove_file(&path).unwrap();
    acquiring.join().unwrap().unwrap();
    let ours = l.current_lease().unwrap().owner_id;
    let at_path = std::fs::read(&path)
        .ok()
        .and_then(|b| lease::parse(&b).ok())
        .map(|l| l.owner_id);
    assert_eq!(
        at_path.as_deref(),
        Some(ours.as_str()),
        "acquire succeeded while the path did not name our file"
    );
    assert!(l.release().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}
