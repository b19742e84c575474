//! The Linux backend through the waiter's eyes: which changes ring, what a removed or replaced
//! directory does, a holder's exit, and a watch taken up again while it is being retired.

use super::{Bell, Waiter};
use std::time::{Duration, Instant};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "leaselock-watch-{tag}-{}-{}",
        std::process::id(),
        crate::owner::unix_nanos(std::time::SystemTime::now())
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rang(bell: &Bell, seen: u64) -> bool {
    bell.sleep(seen, Some(Instant::now() + Duration::from_secs(10)))
}

fn quiet(bell: &Bell, seen: u64) -> bool {
    !bell.sleep(seen, Some(Instant::now() + Duration::from_millis(100)))
}

#[test]
fn changes_to_the_lock_name_ring_and_other_names_do_not() {
    let dir = temp_dir("names");
    let lock = dir.join("x.lock");
    let mut w = Waiter::new(true, Bell::new());
    let armed = w.arm(&lock, None);
    assert!(armed.fresh && armed.dir);
    let bell = w.bell().clone();

    let seen = bell.rings();
    std::fs::write(dir.join(".x.lock.tmp.1"), b"temp").unwrap();
    std::fs::write(dir.join("other.lock"), b"other").unwrap();
    assert!(quiet(&bell, seen), "other names wake nobody");

    std::fs::write(&lock, b"held").unwrap();
    assert!(rang(&bell, seen), "created");
    let seen = bell.rings();
    std::fs::write(&lock, b"rewritten in place").unwrap();
    assert!(quiet(&bell, seen), "in-place writes wake nobody");
    std::fs::rename(&lock, dir.join(".x.lock.release.1")).unwrap();
    assert!(rang(&bell, seen), "renamed away");
    let seen = bell.rings();
    std::fs::hard_link(dir.join(".x.lock.tmp.1"), &lock).unwrap();
    assert!(rang(&bell, seen), "linked in");
    let seen = bell.rings();
    std::fs::remove_file(&lock).unwrap();
    assert!(rang(&bell, seen), "removed");
    assert!(!w.arm(&lock, None).fresh, "armed once");
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_watch_taken_up_again_while_it_is_being_retired_keeps_working() {
    let dir = temp_dir("retire");
    let lock = dir.join("x.lock");
    for _ in 0..30 {
        let mut first = Waiter::new(true, Bell::new());
        assert!(first.arm(&lock, None).dir);
        drop(first);
        // Same directory, so the same watch descriptor, before the thread retires it.
        let mut second = Waiter::new(true, Bell::new());
        assert!(second.arm(&lock, None).dir);
        std::thread::sleep(Duration::from_millis(2));
        let seen = second.bell().rings();
        std::fs::write(&lock, b"x").unwrap();
        assert!(rang(second.bell(), seen), "still watched");
        std::fs::remove_file(&lock).unwrap();
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_removed_directory_is_reported_and_watched_again_once_back() {
    let dir = temp_dir("gone");
    let lock = dir.join("x.lock");
    let mut w = Waiter::new(true, Bell::new());
    assert!(w.arm(&lock, None).dir);
    let seen = w.bell().rings();
    std::fs::remove_dir(&dir).unwrap();
    assert!(rang(w.bell(), seen));
    let armed = w.arm(&lock, None);
    assert!(
        !armed.dir,
        "nothing to watch while the directory is missing"
    );
    std::fs::create_dir(&dir).unwrap();
    let armed = w.arm(&lock, None);
    assert!(armed.fresh && armed.dir, "watched again by path");
    let seen = w.bell().rings();
    std::fs::write(&lock, b"x").unwrap();
    assert!(rang(w.bell(), seen));
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_replaced_directory_is_noticed_by_the_next_arm() {
    let dir = temp_dir("replaced");
    let parent = dir.join("p");
    let sub = parent.join("d");
    std::fs::create_dir_all(&sub).unwrap();
    let lock = sub.join("x.lock");
    let mut w = Waiter::new(true, Bell::new());
    assert!(w.arm(&lock, None).dir);
    // The parent moves: our watch follows the old directory and is told nothing.
    std::fs::rename(&parent, dir.join("old")).unwrap();
    std::fs::create_dir_all(&sub).unwrap();
    let armed = w.arm(&lock, None);
    assert!(armed.fresh && armed.dir, "the new directory is watched");
    let seen = w.bell().rings();
    std::fs::write(&lock, b"x").unwrap();
    assert!(rang(w.bell(), seen));
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_holder_exit_rings_and_a_gone_pid_says_so() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id() as i64;
    let dir = temp_dir("pid");
    let lock = dir.join("x.lock");
    let mut w = Waiter::new(false, Bell::new());
    let armed = w.arm(&lock, Some(pid));
    assert!(armed.fresh && armed.holder && !armed.dir);
    assert!(
        !w.arm(&lock, Some(pid)).fresh,
        "the same holder is watched once"
    );
    let seen = w.bell().rings();
    child.kill().unwrap();
    assert!(
        rang(w.bell(), seen),
        "exit rings (even before it is reaped)"
    );
    child.wait().unwrap();
    let armed = w.arm(&lock, Some(pid));
    assert!(
        armed.fresh && !armed.holder,
        "an exited holder is not watched again"
    );
    // A pid with no process at all.
    let mut w2 = Waiter::new(false, Bell::new());
    let armed = w2.arm(&dir.join("y.lock"), Some(i32::MAX as i64));
    assert!(armed.fresh && !armed.holder);
    let _ = std::fs::remove_dir_all(dir);
}
