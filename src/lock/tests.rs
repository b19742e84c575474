use super::*;
use crate::lease;
use crate::owner::Liveness;
use std::sync::mpsc;
use std::time::Instant;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "leaselock-unit-{tag}-{}-{}",
        std::process::id(),
        owner::unix_nanos(SystemTime::now())
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fast() -> Options {
    Options {
        heartbeat_interval: Duration::from_millis(20),
        stale_threshold: Duration::from_millis(300),
        ..Options::default()
    }
}

fn go_lease(pid: i64, age: Duration) -> Vec<u8> {
    let hb = owner::unix_nanos(SystemTime::now() - age);
    format!("{{\"version\":1,\"ownerID\":\"{pid}-{hb}-1\",\"pid\":{pid},\"lastHeartbeatUnixNano\":{hb}}}\n")
        .into_bytes()
}

fn loss_channel() -> (LossHandler, mpsc::Receiver<LeaseLost>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    (
        Arc::new(move |l| {
            let _ = lock(&tx).send(l);
        }),
        rx,
    )
}

#[test]
fn acquire_release_and_exclusion_within_one_process() {
    let dir = temp_dir("basic");
    let path = dir.join("sub/dir/a.lock");
    let a = Lock::new(path.clone(), fast(), 0);
    let b = Lock::new(path.clone(), fast(), 0);
    assert!(a
        .acquire(&Wait::once(), None, None, None)
        .unwrap()
        .is_none());
    assert!(a.held());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\"version\":1,\"ownerID\":\""));
    match b.acquire(&Wait::once(), None, None, None) {
        Err(LockError::Held { holder: Some(h) }) => {
            assert_eq!(h.lease.pid, std::process::id() as i64);
            assert_eq!(h.alive, Liveness::Alive);
        }
        other => panic!("expected held, got {other:?}"),
    }
    // Acquire on a holder is a no-op; heartbeats keep it fresh past the stale threshold.
    assert!(a
        .acquire(&Wait::once(), None, None, None)
        .unwrap()
        .is_none());
    std::thread::sleep(Duration::from_millis(500));
    assert!(matches!(
        b.acquire(&Wait::once(), None, None, None),
        Err(LockError::Held { .. })
    ));
    assert!(a.release().unwrap());
    assert!(!path.exists());
    assert!(!a.release().unwrap());
    assert!(b.acquire(&Wait::once(), None, None, None).is_ok());
    assert!(b.release().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn many_threads_take_over_one_stale_lease_exactly_once() {
    let dir = temp_dir("race");
    let path = dir.join("x.lock");
    let mut last_token = None;
    for round in 0..20 {
        std::fs::write(
            &path,
            go_lease(std::process::id() as i64, Duration::from_secs(10)),
        )
        .unwrap();
        let n = 12;
        let barrier = Arc::new(std::sync::Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let l = Lock::new(path, fast(), 0);
                    barrier.wait();
                    let r = l.acquire(&Wait::once(), None, None, None);
                    (r.is_ok(), l)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|(ok, _)| *ok).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one holder");
        let lease = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            Some(lease.owner_id),
            winners[0].1.current_lease().map(|l| l.owner_id)
        );
        // The lease at the path carries the winner's token, larger than the last round's.
        let token = winners[0].1.token();
        assert!(token.is_some() && lease.token == token && token > last_token);
        last_token = token;
        for (_, l) in &results {
            l.release().unwrap();
        }
        assert!(!path.exists());
    }
    // Only the fencing-token counter stays (release never removes it); no temp file.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [".x.lock.token"], "no temp files left behind");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn release_after_takeover_leaves_new_owner_alone_and_loss_is_reported_once() {
    let dir = temp_dir("fence");
    let path = dir.join("x.lock");
    let a = Lock::new(path.clone(), fast(), 0);
    let (on_lost, lost) = loss_channel();
    a.acquire(&Wait::once(), None, None, Some(on_lost)).unwrap();
    // B proves A "dead" through the override and takes over.
    let b = Lock::new(path.clone(), fast(), 0);
    let dead = |_pid: i64| false;
    let reclaimed = b.acquire(&Wait::once(), Some(&dead), None, None).unwrap();
    assert!(matches!(reclaimed, Some(Assessment::Lease(_))));
    let notice = lost.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(notice.reason, LossReason::OwnerChanged);
    assert!(!a.held());
    assert!(!a.release().unwrap());
    let on_disk = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        Some(on_disk.owner_id),
        b.current_lease().map(|l| l.owner_id)
    );
    assert!(
        lost.recv_timeout(Duration::from_millis(200)).is_err(),
        "only once"
    );
    b.release().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn heartbeat_notices_foreign_overwrite_and_removal() {
    let dir = temp_dir("hb");
    let path = dir.join("x.lock");
    let a = Lock::new(path.clone(), fast(), 0);
    let (on_lost, lost) = loss_channel();
    a.acquire(&Wait::once(), None, None, Some(on_lost)).unwrap();
    std::fs::write(&path, go_lease(4242, Duration::ZERO)).unwrap();
    let notice = lost.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(notice.reason, LossReason::OwnerChanged);
    assert_eq!(notice.new_owner.map(|l| l.pid), Some(4242));
    assert!(path.exists(), "a lost lease leaves the file alone");
    std::fs::remove_file(&path).unwrap();

    let (on_lost, lost) = loss_channel();
    a.acquire(&Wait::once(), None, None, Some(on_lost)).unwrap();
    std::fs::remove_file(&path).unwrap();
    let notice = lost.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(notice.reason, LossReason::Removed);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn invalid_content_is_held_until_old_enough() {
    let dir = temp_dir("invalid");
    let path = dir.join("x.lock");
    std::fs::write(&path, b"not-a-lease-json").unwrap();
    // By default content that cannot be a lease is refused and left alone, whatever its age.
    let refuse = Lock::new(path.clone(), fast(), 0);
    let old = std::fs::File::options().write(true).open(&path).unwrap();
    old.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(old);
    match refuse.acquire(&Wait::once(), None, None, None) {
        Err(LockError::NotALease { size, head, .. }) => {
            assert_eq!(size, 16);
            assert_eq!(head, b"not-a-lease-json");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"not-a-lease-json");
    // The Go package's rule, chosen: held while young, reclaimed once old.
    std::fs::write(&path, b"not-a-lease-json").unwrap();
    let go_rule = Options {
        reclaim_invalid: true,
        ..fast()
    };
    let l = Lock::new(path.clone(), go_rule, 0);
    assert!(matches!(
        l.acquire(&Wait::once(), None, None, None),
        Err(LockError::Held { holder: None })
    ));
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(2))
        .unwrap();
    drop(f);
    match l.acquire(&Wait::once(), None, None, None) {
        Ok(Some(Assessment::Invalid { bytes, .. })) => assert_eq!(bytes, 16),
        other => panic!("expected reclaim of invalid content, got {other:?}"),
    }
    l.release().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn waiting_acquire_gets_the_lock_on_release_and_can_be_cancelled() {
    let dir = temp_dir("wait");
    let path = dir.join("x.lock");
    let a = Arc::new(Lock::new(path.clone(), fast(), 0));
    a.acquire(&Wait::once(), None, None, None).unwrap();
    let cancel = Arc::new(Cancel::default());
    let waiter = {
        let (path, cancel) = (path.clone(), cancel.clone());
        std::thread::spawn(move || {
            let b = Lock::new(path, fast(), 0);
            b.acquire(&Wait::for_duration(None, Some(cancel)), None, None, None)
                .map(|_| ())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    cancel.cancel();
    assert!(matches!(waiter.join().unwrap(), Err(LockError::Cancelled)));

    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || {
            let b = Lock::new(path, fast(), 0);
            let r = b.acquire(
                &Wait::for_duration(Some(Duration::from_secs(10)), None),
                None,
                None,
                None,
            );
            (r.is_ok(), b.release())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    a.release().unwrap();
    let (ok, released) = waiter.join().unwrap();
    assert!(ok);
    assert!(released.unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn metadata_update_keeps_the_lease_and_changes_length_atomically() {
    let dir = temp_dir("meta");
    let path = dir.join("x.lock");
    let a = Lock::new(path.clone(), fast(), 0);
    a.acquire(&Wait::once(), None, Some("{\"a\":1}".into()), None)
        .unwrap();
    let owner = a.current_lease().unwrap().owner_id;
    a.update(Some("{\"url\":\"http://127.0.0.1:5173/\"}".into()))
        .unwrap();
    let l = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(l.owner_id, owner);
    assert_eq!(
        l.metadata_json.as_deref(),
        Some("{\"url\":\"http://127.0.0.1:5173/\"}")
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(a.held(), "heartbeats go on through the new file");
    assert!(matches!(
        a.update(Some("{not json".into())),
        Err(LockError::MetadataInvalid(_))
    ));
    // Stored compact, whatever spacing it came with.
    a.update(Some("{ \"a\" : [1, 2] }".into())).unwrap();
    let l = lease::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(l.metadata_json.as_deref(), Some("{\"a\":[1,2]}"));
    let big = format!("\"{}\"", "x".repeat(METADATA_LIMIT));
    assert!(matches!(
        a.update(Some(big)),
        Err(LockError::MetadataTooLarge { .. })
    ));
    a.release().unwrap();
    assert!(matches!(a.update(None), Err(LockError::NotHeld)));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn non_regular_files_are_refused_and_left_alone() {
    let dir = temp_dir("hostile");
    let target = dir.join("target");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.join("link.lock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let l = Lock::new(link.clone(), fast(), 0);
    assert!(matches!(
        l.acquire(&Wait::once(), None, None, None),
        Err(LockError::NotAFile {
            kind: crate::sys::FileKind::Symlink
        })
    ));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    let d = dir.join("dir.lock");
    std::fs::create_dir(&d).unwrap();
    let l = Lock::new(d.clone(), fast(), 0);
    assert!(matches!(
        l.acquire(&Wait::once(), None, None, None),
        Err(LockError::NotAFile {
            kind: crate::sys::FileKind::Directory
        })
    ));
    assert!(d.is_dir());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn release_cancels_a_waiting_acquire_of_the_same_instance() {
    let dir = temp_dir("release-cancels");
    let path = dir.join("x.lock");
    let a = Lock::new(path.clone(), fast(), 0);
    a.acquire(&Wait::once(), None, None, None).unwrap();
    let b = Arc::new(Lock::new(path.clone(), fast(), 0));
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || b.acquire(&Wait::for_duration(None, None), None, None, None))
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(!b.release().unwrap());
    assert!(matches!(waiter.join().unwrap(), Err(LockError::Cancelled)));
    assert!(!b.held());
    a.release().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_ended_group_acquires_nothing_and_its_waits_end() {
    let dir = temp_dir("group-ends");
    let path = dir.join("x.lock");
    let group = 0xdead_0001;
    let a = Lock::new(path.clone(), fast(), 0);
    a.acquire(&Wait::once(), None, None, None).unwrap();
    let b = Arc::new(Lock::new(path.clone(), fast(), group));
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || b.acquire(&Wait::for_duration(None, None), None, None, None))
    };
    std::thread::sleep(Duration::from_millis(100));
    release_held_for_exit(Some(group));
    assert!(matches!(waiter.join().unwrap(), Err(LockError::Cancelled)));
    a.release().unwrap();
    // Free now, but the group is gone: nothing is acquired for it.
    assert!(matches!(
        b.acquire(&Wait::once(), None, None, None),
        Err(LockError::Cancelled)
    ));
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn helper_names_are_bounded_for_long_lock_names() {
    let dir = temp_dir("long");
    let path = dir.join(format!("{}.lock", "n".repeat(250)));
    for p in [
        sys::sibling(&path, "takeover"),
        sys::private_name(&path, "release"),
    ] {
        let name = p.file_name().unwrap().len();
        assert!(name <= 200, "{name} bytes");
    }
    // Contenders agree on the claim's name.
    assert_eq!(
        sys::sibling(&path, "takeover"),
        sys::sibling(&path, "takeover")
    );
    let l = Lock::new(path.clone(), fast(), 0);
    l.acquire(&Wait::once(), None, None, None).unwrap();
    assert!(l.release().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_glimpse_is_printable() {
    assert_eq!(
        glimpse(b"{\"a\":1}\x1b]52;c;x\x07\\\xff"),
        "{\"a\":1}\\x1b]52;c;x\\x07\\\\\\xff"
    );
}

#[test]
fn a_waiter_takes_a_stale_lease_over_at_its_deadline_not_at_the_next_poll() {
    let dir = temp_dir("deadline");
    let path = dir.join("x.lock");
    // A Go lease (nothing to prove about its owner, nothing to watch but the file): only its
    // age can free it, 150 ms from now. The directory's safety poll is 500 ms.
    let opts = fast();
    let left = Duration::from_millis(150);
    std::fs::write(&path, go_lease(4242, opts.stale_threshold - left)).unwrap();
    let l = Lock::new(path.clone(), opts, 0);
    let t0 = Instant::now();
    let wait = Wait::for_duration(Some(Duration::from_secs(10)), None);
    let got = l.acquire(&wait, None, None, None).unwrap();
    let took = t0.elapsed();
    assert!(matches!(
        got,
        Some(Assessment::Lease(Holder { stale: true, .. }))
    ));
    assert!(took >= left - Duration::from_millis(20), "{took:?}");
    assert!(took < SAFETY_POLL - Duration::from_millis(100), "{took:?}");
    l.release().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
