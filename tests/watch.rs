//! The process-wide watches, observed from the outside as the kernel sees them: one inotify
//! instance with one watch per directory however many waiters share it, and nothing at all -
//! no descriptor, no thread - once the last waiter is gone. One test in its own binary, so no
//! other test's waiters are counted.
#![cfg(target_os = "linux")]

use leaselock::watch::{Bell, Waiter};
use std::time::{Duration, Instant};

/// Inotify instances open in this process, and the watches each holds (from fdinfo).
fn inotify_watches() -> Vec<usize> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        if target.to_string_lossy() != "anon_inode:inotify" {
            continue;
        }
        let info = format!("/proc/self/fdinfo/{}", e.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        out.push(
            text.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count(),
        );
    }
    out
}

fn pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:[pidfd]")
        })
        .count()
}

fn watch_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "leaselock-watch")
        })
        .count()
}

/// The thread ends on its own shortly after the last watch goes; wait for it (bounded).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn one_watch_per_directory_shared_and_nothing_left_when_nobody_waits() {
    let root = std::env::temp_dir().join(format!("leaselock-watchcount-{}", std::process::id()));
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    assert!(inotify_watches().is_empty(), "nothing before anyone waits");
    assert_eq!(watch_threads(), 0);

    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    // Twenty waiters on two locks in one directory, three on a lock in another, and all of
    // them watching the same holder process.
    let mut waiters: Vec<(std::path::PathBuf, Waiter)> = (0..20)
        .map(|i| a.join(format!("{}.lock", i % 2)))
        .chain((0..3).map(|_| b.join("x.lock")))
        .map(|lock| (lock, Waiter::new(true, Bell::new())))
        .collect();
    for (lock, w) in &mut waiters {
        let armed = w.arm(lock, Some(child.id() as i64));
        assert!(armed.dir && armed.holder);
    }
    assert_eq!(
        inotify_watches(),
        vec![2],
        "one instance, one watch per directory"
    );
    // (The thread names itself as it starts.)
    eventually("one thread for all of them", || watch_threads() == 1);
    assert_eq!(pidfds(), 1, "one process handle for all of them");

    // Leaving one by one: the directory's watch stays while anyone waits on it.
    waiters.drain(..20);
    eventually("the first directory's watch is taken down", || {
        inotify_watches() == vec![1]
    });
    waiters.clear();
    eventually("the process handle is closed", || pidfds() == 0);
    eventually("the watch thread ends with the last watch", || {
        watch_threads() == 0
    });
    assert!(
        inotify_watches().is_empty(),
        "the inotify instance is closed"
    );

    // And it all comes back for the next waiter.
    let mut w = Waiter::new(true, Bell::new());
    assert!(w.arm(&a.join("0.lock"), None).dir);
    assert_eq!(inotify_watches(), vec![1]);
    drop(w);
    eventually("ends again", || watch_threads() == 0);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(root);
}
