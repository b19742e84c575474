//! The Windows watch backend seen through the public `Waiter`: a directory watch is really set
//! up (not the polling fallback), rings for the lock's own name (any case) and not for other
//! names, and a watched holder's exit rings. Run by scripts/windows-lane.sh under Wine.
#![cfg(windows)]

use leaselock::watch::{Bell, Waiter};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("leaselock-watch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn within(d: Duration) -> Option<Instant> {
    Some(Instant::now() + d)
}

#[test]
fn the_lock_name_rings_its_waiter_and_other_names_do_not() {
    let dir = temp_dir("names");
    let lock = dir.join("x.lock");
    std::fs::write(&lock, b"held").unwrap();
    let bell = Bell::new();
    let mut waiter = Waiter::new(true, bell.clone());
    let armed = waiter.arm(&lock, None);
    assert!(armed.dir && armed.fresh, "{armed:?}");

    let seen = bell.rings();
    // Private temp names, another lock, and in-place writes of the lock itself: nobody rings.
    for i in 0..20 {
        let tmp = dir.join(format!(".x.lock.tmp-{i}"));
        std::fs::write(&tmp, b"t").unwrap();
        std::fs::remove_file(&tmp).unwrap();
    }
    std::fs::write(dir.join("other.lock"), b"o").unwrap();
    std::fs::rename(dir.join("other.lock"), dir.join("other.lock.old")).unwrap();
    std::fs::write(&lock, b"heartbeat").unwrap();
    assert!(
        !bell.sleep(seen, within(Duration::from_millis(500))),
        "rang for another name"
    );

    // The release renames the lock away: rings.
    std::fs::rename(&lock, dir.join("x.lock.released")).unwrap();
    assert!(
        bell.sleep(seen, within(Duration::from_secs(10))),
        "the release did not ring"
    );

    // Another process naming it in other case is the same file on Windows: rings too.
    let armed = waiter.arm(&lock, None);
    assert!(
        armed.dir && !armed.fresh,
        "the same watch goes on: {armed:?}"
    );
    let seen = bell.rings();
    std::fs::write(dir.join("X.LOCK"), b"new holder").unwrap();
    assert!(
        bell.sleep(seen, within(Duration::from_secs(10))),
        "a create in other case did not ring"
    );

    drop(waiter);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_watched_holder_exit_rings() {
    let dir = temp_dir("holder");
    let lock = dir.join("x.lock");
    // A process that lives until it is killed: cmd reading commands from a pipe.
    let mut child = std::process::Command::new("cmd.exe")
        .arg("/q")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bell = Bell::new();
    let mut waiter = Waiter::new(true, bell.clone());
    let armed = waiter.arm(&lock, Some(i64::from(child.id())));
    assert!(armed.holder, "{armed:?}");
    let seen = bell.rings();
    assert!(
        !bell.sleep(seen, within(Duration::from_millis(300))),
        "rang while it lives"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        bell.sleep(seen, within(Duration::from_secs(10))),
        "its exit did not ring"
    );
    drop(waiter);
    std::fs::remove_dir_all(&dir).unwrap();
}
