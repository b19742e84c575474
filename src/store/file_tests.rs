//! The file store on real files: exclusion with the engine's own `Lock` and with a Go-written
//! lease, claim races, and late holders after a takeover. (The session's behaviour tests run
//! over it too, in `tests.rs`.)

use super::file::FileStore;
use super::session::{Deadline, StoreLock, StoreLockError, StoreOptions};
use super::tests::{runtime, Fixture};
use super::{Claim, LeaseStore, Renewal};
use crate::lock::{self, LockError, Wait};
use crate::owner;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

const TTL: Duration = Duration::from_millis(400);

fn opts() -> StoreOptions {
    StoreOptions {
        ttl: TTL,
        renew_every: Duration::from_millis(50),
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "leaselock-filestore-{tag}-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// A lease record of this process under `owner` (alive, so never proven dead), written
/// `age` ago.
fn record_of(owner: &str, age: Duration) -> String {
    let mut l = owner::new_lease(None);
    l.owner_id = owner.to_string();
    l.last_heartbeat_unix_nano = owner::unix_nanos(SystemTime::now() - age);
    l.heartbeat_boot_nano = l
        .heartbeat_boot_nano
        .map(|b| b.saturating_sub(age.as_nanos() as u64));
    String::from_utf8(l.encode()).unwrap()
}

/// Replaces whatever is at `path` at once (a rename), as another program would.
fn put(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("incoming");
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn owner_at(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    crate::lease::parse(&bytes).ok().map(|l| l.owner_id)
}

impl Fixture for FileStore {
    fn fresh() -> (Arc<Self>, String) {
        let path = temp_dir("session").join("k.lock");
        (
            Arc::new(FileStore::new(lock::Options::default())),
            key(&path),
        )
    }

    fn set(&self, key: &str, owner: &str) {
        put(Path::new(key), record_of(owner, Duration::ZERO).as_bytes());
    }

    fn clear(&self, key: &str) {
        std::fs::remove_file(key).unwrap();
    }
}

fn engine_opts() -> lock::Options {
    lock::Options {
        heartbeat_interval: Duration::from_millis(50),
        stale_threshold: TTL,
        ..lock::Options::default()
    }
}

#[test]
fn a_store_lock_and_an_engine_lock_exclude_each_other_both_ways() {
    runtime().block_on(async {
        let path = temp_dir("engine").join("shared.lock");
        let store = Arc::new(FileStore::new(lock::Options::default()));
        let on_store = StoreLock::new(store.clone(), key(&path), opts());
        let engine = lock::Lock::new(path.clone(), engine_opts(), 0);

        let first = on_store
            .acquire(Deadline::Once, None, None, None)
            .await
            .unwrap();
        // Renewals keep it fresh well past the stale threshold both sides use.
        tokio::time::sleep(TTL * 3).await;
        let ours = on_store.current().unwrap().0.owner_id;
        match engine.acquire(&Wait::once(), None, None, None) {
            Err(LockError::Held { holder: Some(h) }) => {
                assert_eq!(h.lease.owner_id, ours);
                assert_eq!(h.lease.token, Some(first.token));
            }
            other => panic!("expected held by the store's lease, got {other:?}"),
        }
        assert!(on_store.release().await.unwrap());
        assert!(!path.exists());

        engine.acquire(&Wait::once(), None, None, None).unwrap();
        let engine_token = engine.token().unwrap();
        assert!(engine_token > first.token);
        tokio::time::sleep(TTL * 3).await;
        match on_store.acquire(Deadline::Once, None, None, None).await {
            Err(StoreLockError::Held { holder }) => {
                let lease = engine.current_lease().unwrap();
                assert_eq!(holder.owner_id, lease.owner_id);
                assert_eq!(holder.token, Some(engine_token));
                assert_eq!(holder.record.map(|r| r.pid), Some(lease.pid));
                assert!(holder.ttl_left.is_some_and(|t| t <= TTL));
            }
            other => panic!("expected held by the engine, got {:?}", other.err()),
        }

        // A waiting store lock is woken by the engine's release.
        let waiting = {
            let on_store = on_store.clone();
            let until = Instant::now() + Duration::from_secs(20);
            tokio::spawn(async move {
                on_store
                    .acquire(Deadline::At(until), None, None, None)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(engine.release().unwrap());
        let second = waiting.await.unwrap().unwrap();
        assert!(second.token > engine_token);
        assert_eq!(owner_at(&path), on_store.current().map(|c| c.0.owner_id));
        assert!(on_store.release().await.unwrap());
    });
}

/// The Go package's record, with its heartbeat moved to `age` ago.
fn go_record(age: Duration) -> Vec<u8> {
    let seed = include_bytes!("../../__test__/fixtures/go-seed/held-live.lock");
    let text = std::str::from_utf8(seed).unwrap();
    let at = text.find("\"lastHeartbeatUnixNano\":").unwrap() + 24;
    let end = at + text[at..].find('}').unwrap();
    let now = owner::unix_nanos(SystemTime::now() - age);
    format!("{}{now}{}", &text[..at], &text[end..]).into_bytes()
}

#[test]
fn a_go_lease_is_read_and_respected_until_it_is_stale() {
    runtime().block_on(async {
        let path = temp_dir("go").join("go.lock");
        let store = Arc::new(FileStore::new(lock::Options::default()));
        let fresh = go_record(Duration::ZERO);
        put(&path, &fresh);
        let seen = store.read(&key(&path)).await.unwrap().unwrap();
        assert_eq!(seen.owner_id, "24866-1795664371031210457-1");
        assert_eq!(seen.record.as_ref().map(|r| r.pid), Some(24866));
        assert_eq!(seen.token, None);
        let on_store = StoreLock::new(store.clone(), key(&path), opts());
        match on_store.acquire(Deadline::Once, None, None, None).await {
            Err(StoreLockError::Held { holder }) => {
                assert_eq!(holder.owner_id, "24866-1795664371031210457-1")
            }
            other => panic!("expected held by the Go lease, got {:?}", other.err()),
        }
        assert_eq!(std::fs::read(&path).unwrap(), fresh);

        // Its heartbeat stopped long ago: taken over, as the Go package would.
        put(&path, &go_record(Duration::from_secs(10)));
        on_store
            .acquire(Deadline::Once, None, None, None)
            .await
            .unwrap();
        let ours = on_store.current().unwrap().0.owner_id;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"version\":1,\"ownerID\":\""), "{text}");
        assert_eq!(owner_at(&path), Some(ours));
        assert!(on_store.release().await.unwrap());
    });
}

#[test]
fn a_claim_stamps_its_heartbeat_when_it_publishes_not_when_its_record_was_made() {
    runtime().block_on(async {
        let path = temp_dir("stamp").join("s.lock");
        let k = key(&path);
        let store = FileStore::new(lock::Options::default());
        // A record made before a long wait.
        let old = record_of("waited", TTL * 10);
        assert!(matches!(
            store.claim(&k, "waited", &old, TTL).await.unwrap(),
            Claim::Granted { .. }
        ));
        let other = record_of("other", Duration::ZERO);
        match store.claim(&k, "other", &other, TTL).await.unwrap() {
            Claim::Held { holder } => {
                assert_eq!(holder.owner_id, "waited");
                assert!(holder.ttl_left.is_some_and(|t| t > TTL / 2));
            }
            Claim::Granted { .. } => panic!("a lease just published was taken as expired"),
        }
    });
}

#[test]
fn content_that_is_not_a_lease_is_held_and_never_touched() {
    runtime().block_on(async {
        let dir = temp_dir("foreign");
        let path = dir.join("data.lock");
        std::fs::write(&path, b"precious data\n").unwrap();
        let store = FileStore::new(lock::Options::default());
        let k = key(&path);
        let record = record_of("claimant", Duration::ZERO);
        match store.claim(&k, "claimant", &record, TTL).await.unwrap() {
            Claim::Held { holder } => {
                assert!(holder.record.is_none());
                assert_eq!(holder.ttl_left, None);
            }
            Claim::Granted { .. } => panic!("took over somebody's data"),
        }
        assert!(matches!(
            store.renew(&k, "claimant", TTL, None).await.unwrap(),
            Renewal::OwnerChanged { holder } if holder.record.is_none()
        ));
        assert!(!store.remove(&k, "claimant").await.unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"precious data\n");
        // Nothing new beside it either (no token counter made for it).
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
    });
}

#[test]
fn a_directory_at_the_lock_path_is_refused_with_nothing_left_beside_it() {
    runtime().block_on(async {
        let dir = temp_dir("not-a-file");
        let path = dir.join("d.lock");
        std::fs::create_dir(&path).unwrap();
        let store = FileStore::new(lock::Options::default());
        let record = record_of("claimant", Duration::ZERO);
        let claimed = store.claim(&key(&path), "claimant", &record, TTL).await;
        assert!(claimed.is_err(), "a directory is not a lock");
        assert!(path.is_dir());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "no token counter made for it");
    });
}

/// One claim from a thread of its own, on a runtime of its own.
fn claim_blocking(store: &FileStore, k: &str, owner: &str, ttl: Duration) -> Claim {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let record = record_of(owner, Duration::ZERO);
    rt.block_on(store.claim(k, owner, &record, ttl)).unwrap()
}

#[test]
fn of_many_concurrent_claimants_exactly_one_wins_each_round_and_tokens_rise() {
    const CLAIMANTS: usize = 8;
    const ROUNDS: usize = 16;
    let path = temp_dir("race").join("race.lock");
    let k = key(&path);
    let store = Arc::new(FileStore::new(lock::Options::default()));
    let mut last = 0;
    for round in 0..ROUNDS {
        // Every other round the path holds an expired lease: the winner takes it over.
        let stale = round % 2 == 1;
        if stale {
            put(
                &path,
                record_of("expired", Duration::from_secs(10)).as_bytes(),
            );
        }
        let start = Arc::new(Barrier::new(CLAIMANTS));
        let outcomes: Vec<(String, Claim)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..CLAIMANTS)
                .map(|i| {
                    let (store, start, k) = (store.clone(), start.clone(), &k);
                    s.spawn(move || {
                        let owner = format!("claimant-{round}-{i}");
                        start.wait();
                        let claim = claim_blocking(&store, k, &owner, TTL);
                        (owner, claim)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|(o, c)| match c {
                Claim::Granted { token } => Some((o.clone(), *token)),
                Claim::Held { .. } => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round} (stale: {stale})");
        let (winner, token) = winners[0].clone();
        for (_, c) in &outcomes {
            if let Claim::Held { holder } = c {
                assert_eq!(holder.owner_id, winner, "round {round}");
            }
        }
        assert!(token > last, "round {round}: {token} after {last}");
        last = token;
        let on_disk = crate::lease::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            (on_disk.owner_id, on_disk.token),
            (winner.clone(), Some(token))
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(store.remove(&k, &winner)).unwrap());
    }
}

#[test]
fn a_late_renewal_or_removal_after_a_takeover_never_touches_the_new_owner() {
    runtime().block_on(async {
        let path = temp_dir("late").join("late.lock");
        let k = key(&path);
        let store = FileStore::new(lock::Options::default());
        let short = Duration::from_millis(100);
        let old = record_of("old", Duration::ZERO);
        assert!(matches!(
            store.claim(&k, "old", &old, short).await.unwrap(),
            Claim::Granted { .. }
        ));
        // The old holder stops renewing; the new one takes over once the lease has expired.
        let new = record_of("new", Duration::ZERO);
        loop {
            match store.claim(&k, "new", &new, short).await.unwrap() {
                Claim::Granted { .. } => break,
                Claim::Held { holder } => {
                    assert_eq!(holder.owner_id, "old");
                    tokio::time::sleep(holder.ttl_left.unwrap()).await;
                }
            }
        }
        let theirs = std::fs::read(&path).unwrap();
        for record in [None, Some(old.as_str())] {
            match store.renew(&k, "old", short, record).await.unwrap() {
                Renewal::OwnerChanged { holder } => assert_eq!(holder.owner_id, "new"),
                other => panic!("a late renewal answered {other:?}"),
            }
        }
        assert!(!store.remove(&k, "old").await.unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), theirs);
        assert!(matches!(
            store.renew(&k, "new", short, None).await.unwrap(),
            Renewal::Renewed
        ));
        assert_ne!(
            std::fs::read(&path).unwrap(),
            theirs,
            "heartbeat not written"
        );
    });
}

#[test]
fn a_holder_renewing_while_others_take_over_never_writes_into_their_lease() {
    const ROUNDS: usize = 12;
    let dir = temp_dir("renewing");
    let path = dir.join("busy.lock");
    let k = key(&path);
    let store = Arc::new(FileStore::new(lock::Options::default()));
    let mut prior = String::from("first");
    assert!(matches!(
        claim_blocking(&store, &k, &prior, TTL),
        Claim::Granted { .. }
    ));
    for round in 0..ROUNDS {
        let next = format!("next-{round}");
        let granted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        std::thread::scope(|s| {
            // The holder renews as fast as it can, until the lease is not its own.
            let renewer = {
                let (store, k, prior, granted) = (store.clone(), &k, &prior, granted.clone());
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    loop {
                        let started_after_grant = granted.load(std::sync::atomic::Ordering::SeqCst);
                        match rt.block_on(store.renew(k, prior, TTL, None)).unwrap() {
                            Renewal::Renewed => {
                                assert!(!started_after_grant, "renewed a taken lease")
                            }
                            Renewal::OwnerChanged { .. } | Renewal::Removed => return,
                        }
                    }
                })
            };
            // The contender calls anything older than 1 ms expired.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                assert!(Instant::now() < deadline, "round {round}: never taken over");
                if let Claim::Granted { .. } =
                    claim_blocking(&store, &k, &next, Duration::from_millis(1))
                {
                    granted.store(true, std::sync::atomic::Ordering::SeqCst);
                    break;
                }
            }
            renewer.join().unwrap();
        });
        assert_eq!(owner_at(&path), Some(next.clone()), "round {round}");
        prior = next;
    }
    // Nothing left behind at private names: every file in transit was deleted or put back.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "busy.lock" && n != ".busy.lock.token")
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_waiter_is_woken_by_a_release_through_the_directory_not_by_its_poll() {
    runtime().block_on(async {
        let path = temp_dir("woken").join("w.lock");
        let store = Arc::new(FileStore::new(lock::Options::default()));
        // A holder whose lease lasts long: only the release can end the wait early.
        let long = StoreOptions {
            ttl: Duration::from_secs(30),
            renew_every: Duration::from_secs(5),
        };
        let holder = StoreLock::new(store.clone(), key(&path), long);
        let waiter = StoreLock::new(store.clone(), key(&path), long);
        for _ in 0..5 {
            holder
                .acquire(Deadline::Once, None, None, None)
                .await
                .unwrap();
            let waiting = {
                let waiter = waiter.clone();
                tokio::spawn(async move {
                    let got = waiter.acquire(Deadline::Never, None, None, None).await;
                    (got.map(|a| a.token), Instant::now())
                })
            };
            tokio::time::sleep(Duration::from_millis(150)).await;
            let released = Instant::now();
            assert!(holder.release().await.unwrap());
            let (got, at) = waiting.await.unwrap();
            got.unwrap();
            // The session's own poll comes after a second; a watched release within a few ms.
            let took = at.duration_since(released);
            assert!(took < Duration::from_millis(300), "woken after {took:?}");
            assert!(waiter.release().await.unwrap());
        }
    });
}

/// Set in a child process started by the test below: `<role>|<lock path>|<log path>|<rounds>`.
const CHILD_ENV: &str = "LEASELOCK_FILESTORE_CHILD";

/// Runs only inside a child started by the test below (otherwise it passes at once): takes the
/// lock `rounds` times - through the file store's session (`store`) or the engine's `Lock`
/// (`engine`) - and logs each holding to the shared log, one append at entry, one at exit.
#[test]
fn child_holder() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let (role, path, log, rounds) = (parts[0], parts[1], parts[2], parts[3]);
    let rounds: usize = rounds.parse().unwrap();
    let append = |line: String| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        f.write_all(line.as_bytes()).unwrap();
    };
    let me = std::process::id();
    let long = Duration::from_secs(60);
    // All children start together: the test creates the gate once every one is running.
    let gate = Path::new(log).with_extension("go");
    while !gate.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Held for a moment, so that the others are waiting meanwhile.
    let hold = || std::thread::sleep(Duration::from_millis(2));
    match role {
        "store" => runtime().block_on(async {
            let store = Arc::new(FileStore::new(lock::Options::default()));
            let on_store = StoreLock::new(
                store,
                path.to_string(),
                StoreOptions {
                    ttl: Duration::from_secs(3),
                    renew_every: Duration::from_millis(250),
                },
            );
            for _ in 0..rounds {
                let until = Instant::now() + long;
                let got = on_store
                    .acquire(Deadline::At(until), None, None, None)
                    .await;
                let token = got.unwrap().token;
                append(format!("enter {me} {token}\n"));
                hold();
                append(format!("leave {me} {token}\n"));
                assert!(on_store.release().await.unwrap());
            }
        }),
        _ => {
            let engine = lock::Lock::new(PathBuf::from(path), lock::Options::default(), 0);
            for _ in 0..rounds {
                let wait = Wait::for_duration(Some(long), None);
                engine.acquire(&wait, None, None, None).unwrap();
                let token = engine.token().unwrap();
                append(format!("enter {me} {token}\n"));
                hold();
                append(format!("leave {me} {token}\n"));
                assert!(engine.release().unwrap());
            }
        }
    }
}

#[test]
fn processes_on_the_store_and_on_the_engine_never_hold_one_path_together() {
    const ROUNDS: usize = 20;
    let dir = temp_dir("processes");
    let path = dir.join("shared.lock");
    let log = dir.join("log");
    std::fs::write(&log, b"").unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["store", "engine", "store", "engine"]
        .iter()
        .map(|role| {
            let spec = format!("{role}|{}|{}|{ROUNDS}", path.display(), log.display());
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::file_tests::child_holder",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, spec)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(log.with_extension("go"), b"").unwrap();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4 * ROUNDS * 2);
    let mut last_token = 0u64;
    for pair in lines.chunks(2) {
        let enter: Vec<&str> = pair[0].split(' ').collect();
        let leave: Vec<&str> = pair[1].split(' ').collect();
        // Nobody entered between a holder's entry and its exit.
        assert_eq!(enter[0], "enter", "{pair:?}");
        assert_eq!(leave[0], "leave", "{pair:?}");
        assert_eq!(enter[1..], leave[1..], "{pair:?}");
        let token: u64 = enter[2].parse().unwrap();
        assert!(token > last_token, "{token} after {last_token}");
        last_token = token;
    }
    // The holders took turns (one process after another would change holder 3 times).
    let holders: Vec<&str> = lines
        .iter()
        .step_by(2)
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    let turns = holders.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(turns >= 8, "only {turns} changes of holder");
    let _ = std::fs::remove_dir_all(&dir);
}
