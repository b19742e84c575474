//! What the single-test fault binaries share: a temp lock path and a lock whose losses arrive
//! on a channel.

use leaselock::lock::LeaseLost;
use leaselock::lock::{Lock, Options, Wait};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Acquires a lock with the given heartbeat timing in a fresh temp dir; losses go to the
/// receiver. Returns the dir (remove it when done), the lock path, the lock and the receiver.
pub fn held_lock(
    tag: &str,
    heartbeat_ms: u64,
    stale_ms: u64,
) -> (PathBuf, PathBuf, Lock, mpsc::Receiver<LeaseLost>) {
    let dir = std::env::temp_dir().join(format!("leaselock-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.lock");
    let opts = Options {
        heartbeat_interval: Duration::from_millis(heartbeat_ms),
        stale_threshold: Duration::from_millis(stale_ms),
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
    (dir, path, lock, rx)
}
