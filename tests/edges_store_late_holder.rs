//! A holder on the file store that stalls between checking that the lease is its own and
//! acting on it, while another claimant takes the expired lease over: its renewal must answer
//! `OwnerChanged` (its write went into the file that was taken away, never into the new
//! owner's), and its removal must leave the new owner's lease in place.
//!
//! Run with `cargo test --features fault-injection --test edges_store_late_holder`. The delays
//! (read once per process) hold the late holder's thread between its steps while the test
//! takes the lease over.
#![cfg(feature = "fault-injection")]

use leaselock::lease;
use leaselock::lock::Options;
use leaselock::owner;
use leaselock::store::file::FileStore;
use leaselock::store::{Claim, LeaseStore, Renewal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const SHORT: Duration = Duration::from_millis(50);
/// Long enough for the late holder's step to reach its delay (600 ms) before the takeover.
const STALLED: Duration = Duration::from_millis(150);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn record(owner: &str) -> String {
    let mut l = owner::new_lease(None);
    l.owner_id = owner.to_string();
    String::from_utf8(l.encode()).unwrap()
}

fn owner_at(path: &Path) -> Option<String> {
    lease::parse(&std::fs::read(path).ok()?)
        .ok()
        .map(|l| l.owner_id)
}

/// Claims `key` for `owner`, waiting out the holder's lease (by its own `ttl_left`).
async fn take(store: &FileStore, key: &str, owner: &str) {
    let rec = record(owner);
    loop {
        match store.claim(key, owner, &rec, SHORT).await.unwrap() {
            Claim::Granted { .. } => return,
            Claim::Held { holder } => {
                tokio::time::sleep(holder.ttl_left.unwrap_or(SHORT)).await;
            }
        }
    }
}

#[test]
fn a_holder_stalled_mid_step_never_renews_or_removes_the_new_owners_lease() {
    std::env::set_var(
        "LEASELOCK_FAULTS",
        "store.renew.before-write=600,store.remove.before-move=600",
    );
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "leaselock-store-late-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("late.lock");
    let key = path.to_str().unwrap().to_string();
    let store = Arc::new(FileStore::new(Options::default()));
    runtime().block_on(async {
        // The renewal: verified as "old"'s, then stalled; "new" takes the lease over meanwhile.
        take(&store, &key, "old").await;
        let renewing = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.renew(&key, "old", SHORT, None).await })
        };
        tokio::time::sleep(STALLED).await;
        take(&store, &key, "new").await;
        let theirs = std::fs::read(&path).unwrap();
        match renewing.await.unwrap().unwrap() {
            Renewal::OwnerChanged { holder } => assert_eq!(holder.owner_id, "new"),
            other => panic!("the late renewal answered {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            theirs,
            "the late write landed"
        );

        // The removal: "new"'s lease looked at as its own, then stalled; "newer" takes over.
        let removing = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.remove(&key, "new").await })
        };
        tokio::time::sleep(STALLED).await;
        take(&store, &key, "newer").await;
        let theirs = std::fs::read(&path).unwrap();
        assert!(
            !removing.await.unwrap().unwrap(),
            "removed a lease not its own"
        );
        assert_eq!(owner_at(&path).as_deref(), Some("newer"));
        assert_eq!(std::fs::read(&path).unwrap(), theirs);
    });
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "late.lock" && n != ".late.lock.token")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
