//! Fault injection: the interleavings that the module documentation of `src/lock/takeover.rs`
//! and `src/lock/release.rs` argues about, forced with the named delay points of `src/faults.rs` and exercised with real
//! processes on real files.
//!
//! Run with `cargo test --features fault-injection --test faults`. Without the feature this file
//! compiles to nothing.
//!
//! The delays are read once per process from `LEASELOCK_FAULTS`, so every party that needs
//! them is a child process: a copy of this test binary running [`child_role`], driven by
//! commands on its stdin and answering on its stdout. The test process itself has no delays.
#![cfg(feature = "fault-injection")]

use leaselock::lease;
use leaselock::lock::{Assessment, Lock, LossHandler, Options, Wait};
use leaselock::lock::{LeaseLost, LockError, LossReason};
use leaselock::owner;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const ROLE_ENV: &str = "LEASELOCK_TEST_ROLE";
/// Answers from a child start with this, to tell them from the test harness's own output.
const TAG: &str = "@@ ";

// ------------------------------------------------------------------------------------------
// The child side.

/// Runs only inside a child started by a test below (otherwise it passes at once). It reads
/// commands from stdin - `acquire`, `release`, `held`, `exit` - and answers each on stdout.
/// Environment: the lock path, its timings, and `ALIVE=dead` to judge every owner dead.
#[test]
fn child_role() {
    if std::env::var_os(ROLE_ENV).is_none() {
        return;
    }
    let env = |k: &str| std::env::var(k).ok();
    let ms =
        |k: &str, d: u64| Duration::from_millis(env(k).and_then(|v| v.parse().ok()).unwrap_or(d));
    let path = PathBuf::from(env("LOCK_PATH").expect("LOCK_PATH"));
    let opts = Options {
        heartbeat_interval: ms("HB_MS", 250),
        stale_threshold: ms("STALE_MS", 3000),
        retry_delay: ms("RETRY_DELAY_MS", 20),
        retry_limit: env("RETRY_LIMIT")
            .and_then(|v| v.parse().ok())
            .unwrap_or(12),
        ..Options::default()
    };
    let judge_dead = env("ALIVE").as_deref() == Some("dead");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = {
        let out = out.clone();
        move |line: String| {
            let mut o = out.lock().unwrap();
            let _ = writeln!(o, "{TAG}{line}");
            let _ = o.flush();
        }
    };
    let on_lost: LossHandler = {
        let say = say.clone();
        Arc::new(move |l: LeaseLost| {
            let owner = l.new_owner.map(|o| o.owner_id).unwrap_or_default();
            say(format!("LOST {} {owner}", l.reason.as_str()));
        })
    };
    let lock = Lock::new(path, opts, 0);
    say("READY".into());
    for cmd in std::io::stdin().lock().lines() {
        let cmd = cmd.unwrap_or_default();
        match cmd.trim() {
            "acquire" => {
                let dead = |_: i64| false;
                let alive: Option<&dyn Fn(i64) -> bool> =
                    if judge_dead { Some(&dead) } else { None };
                match lock.acquire(&Wait::once(), alive, None, Some(on_lost.clone())) {
                    Ok(r) => {
                        let kind = match r {
                            None => "none",
                            Some(Assessment::Lease(h)) if h.stale => "stale",
                            Some(Assessment::Lease(_)) => "dead",
                            Some(Assessment::Invalid { .. } | Assessment::NotALease { .. }) => {
                                "invalid"
                            }
                        };
                        let id = lock.current_lease().map(|l| l.owner_id).unwrap_or_default();
                        say(format!("ACQUIRED {id} {kind}"));
                    }
                    Err(LockError::Held { holder }) => {
                        let id = holder.map(|h| h.lease.owner_id).unwrap_or_default();
                        say(format!("HELD {id}"));
                    }
                    Err(LockError::RetryBudgetExhausted { attempts }) => {
                        say(format!("CONTENDED {attempts}"))
                    }
                    Err(e) => say(format!("ERROR {e:?}")),
                }
            }
            "release" => {
                say("RELEASING".into());
                let t = Instant::now();
                match lock.release() {
                    Ok(removed) => say(format!("RELEASED {removed} {}", t.elapsed().as_millis())),
                    Err(e) => say(format!("ERROR {e:?}")),
                }
            }
            "held" => say(format!("HELD? {}", lock.held())),
            _ => break,
        }
    }
}

// ------------------------------------------------------------------------------------------
// The parent side.

/// A child process running [`child_role`].
struct Party {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Party {
    fn start(path: &Path, faults: &str, env: &[(&str, &str)]) -> Party {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["child_role", "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, "1")
            .env("LEASELOCK_FAULTS", faults)
            .env("LOCK_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the test binary");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may print "test child_role ... " on the same line first.
                if let Some(at) = line.find(TAG) {
                    if tx.send(line[at + TAG.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut p = Party {
            child,
            stdin,
            lines: rx,
        };
        assert_eq!(p.next(), "READY");
        p
    }

    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next answer; generous timeout, the machine may be busy.
    fn next(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the child answered in time")
    }

    /// The next answer that starts with `prefix`, skipping others (e.g. a `LOST` notice).
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            let l = self.next();
            if l.starts_with(prefix) {
                return l;
            }
            assert!(
                l.starts_with("LOST") || l == "RELEASING",
                "expected {prefix}, got {l}"
            );
        }
    }

    fn try_next(&mut self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }
}

impl Drop for Party {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "leaselock-faults-{tag}-{}-{}",
            std::process::id(),
            owner::unix_nanos(SystemTime::now())
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    /// Names in the directory other than the lock itself and its fencing-token counter (which
    /// stays for good): leaked private files.
    fn leftovers(&self, lock: &str) -> Vec<String> {
        let counter = format!(".{lock}.token");
        std::fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != lock && *n != counter)
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn go_lease(pid: i64, age: Duration) -> Vec<u8> {
    let hb = owner::unix_nanos(SystemTime::now() - age);
    format!(
        "{{\"version\":1,\"ownerID\":\"stale-{pid}-{hb}\",\"pid\":{pid},\"lastHeartbeatUnixNano\":{hb}}}\n"
    )
    .into_bytes()
}

fn owner_at(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    lease::parse(&bytes).ok().map(|l| l.owner_id)
}

fn ino(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().ino()
}

fn loss_channel() -> (LossHandler, mpsc::Receiver<(LeaseLost, Instant)>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    (
        Arc::new(move |l| {
            let _ = tx.lock().unwrap().send((l, Instant::now()));
        }),
        rx,
    )
}

// ------------------------------------------------------------------------------------------
// The interleavings.

/// What one race of contenders for a stale lock came to.
struct Race {
    dir: TempDir,
    path: PathBuf,
    parties: Vec<Party>,
    answers: Vec<String>,
    winner: usize,
    winner_id: String,
    stale_ino: u64,
}

/// Writes a stale lease (our own live pid, heartbeat 10 s old: stale on age alone), starts one
/// contender per fault list, lets them all acquire at once, and checks the safety property:
/// exactly one of them holds, every other one was refused.
fn stale_race(tag: &str, faults: &[String]) -> Race {
    let dir = TempDir::new(tag);
    let path = dir.0.join("race.lock");
    std::fs::write(
        &path,
        go_lease(std::process::id() as i64, Duration::from_secs(10)),
    )
    .unwrap();
    let stale_ino = ino(&path);
    let mut parties: Vec<Party> = faults
        .iter()
        .map(|f| Party::start(&path, f, &[("HB_MS", "1000"), ("STALE_MS", "3000")]))
        .collect();
    for p in parties.iter_mut() {
        p.send("acquire");
    }
    let answers: Vec<String> = parties.iter_mut().map(|p| p.expect("")).collect();
    let winners: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].starts_with("ACQUIRED"))
        .collect();
    assert_eq!(winners.len(), 1, "{tag}: exactly one winner: {answers:?}");
    let winner = winners[0];
    assert!(answers[winner].ends_with(" stale"), "{tag}: {answers:?}");
    for (i, a) in answers.iter().enumerate() {
        assert!(i == winner || a.starts_with("HELD "), "{tag}: {answers:?}");
    }
    let winner_id = answers[winner].split(' ').nth(1).unwrap().to_string();
    Race {
        dir,
        path,
        parties,
        answers,
        winner,
        winner_id,
        stale_ino,
    }
}

impl Race {
    /// The strict outcome the design promises: the winner's file is at the path, losers saw
    /// the winner's lease, nothing was left behind, and the winner keeps and releases it.
    fn assert_winner_keeps_its_file(mut self, tag: &str) {
        let (answers, id) = (&self.answers, &self.winner_id);
        for (i, a) in answers.iter().enumerate() {
            if i != self.winner {
                assert_eq!(
                    a,
                    &format!("HELD {id}"),
                    "{tag}: losers see the winner: {answers:?}"
                );
            }
        }
        assert_eq!(owner_at(&self.path).as_deref(), Some(id.as_str()), "{tag}");
        assert_ne!(ino(&self.path), self.stale_ino, "{tag}");
        let w = &mut self.parties[self.winner];
        w.send("held");
        assert_eq!(w.next(), "HELD? true", "{tag}: the winner lost nothing");
        assert!(
            self.dir.leftovers("race.lock").is_empty(),
            "{tag}: {:?}",
            self.dir.leftovers("race.lock")
        );
        w.send("release");
        assert!(w.expect("RELEASED").starts_with("RELEASED true "), "{tag}");
        assert!(!self.path.exists(), "{tag}");
        assert!(self.dir.leftovers("race.lock").is_empty(), "{tag}");
    }

    /// The weaker outcome that always holds: if the winner's file is not at the path, the
    /// winner is told by its next heartbeat (within an interval of 1 s, long before the lease
    /// now at the path can go stale for anybody else), so there are never two holders.
    fn assert_never_two_holders(mut self, tag: &str) {
        let others: Vec<&String> = (0..self.answers.len())
            .filter(|&i| i != self.winner && self.answers[i] != format!("HELD {}", self.winner_id))
            .map(|i| &self.answers[i])
            .collect();
        if !others.is_empty() {
            eprintln!("{tag}: losers saw another contender's orphaned lease: {others:?} (see chained_takeovers_leave_the_winner_its_file)");
        }
        let w = &mut self.parties[self.winner];
        if owner_at(&self.path).as_deref() == Some(self.winner_id.as_str()) {
            // Its file is at the path (maybe after a detour): it still holds and releases it.
            w.send("held");
            assert_eq!(w.expect("HELD?"), "HELD? true", "{tag}");
            w.send("release");
            assert!(w.expect("RELEASED").starts_with("RELEASED true "), "{tag}");
            assert!(
                self.dir.leftovers("race.lock").is_empty(),
                "{tag}: {:?}",
                self.dir.leftovers("race.lock")
            );
            return;
        }
        let told = w.next();
        assert!(
            told.starts_with("LOST "),
            "{tag}: the winner is told: {told}"
        );
        eprintln!("{tag}: the winner lost its file in the race and was told: {told} (see chained_takeovers_leave_the_winner_its_file)");
    }
}

/// Many contenders judge one stale lock and take it over at once, each stalled at a different
/// step (after judging, before and after its exchange, before publishing): exactly one
/// acquires and the others are refused.
#[test]
fn stale_lock_many_stalled_contenders_exactly_one_wins() {
    // Each round staggers the stalls differently, so the exchanges interleave differently.
    let patterns: [&dyn Fn(usize) -> String; 4] = [
        &|i| format!("takeover.after-judge={}", 10 + 15 * i),
        &|i| format!("takeover.after-exchange={}", 10 + 15 * i),
        &|i| {
            format!(
                "takeover.before-exchange={},takeover.after-exchange={}",
                15 * i,
                60 - 10 * i
            )
        },
        &|i| {
            format!(
                "acquire.before-publish={},takeover.after-judge={},takeover.after-exchange={}",
                5 * i,
                40 - 5 * i,
                10 * (i % 3)
            )
        },
    ];
    for (round, pattern) in patterns.iter().enumerate() {
        let faults: Vec<String> = (0..6).map(pattern).collect();
        let tag = format!("stale-race-{round}");
        stale_race(&tag, &faults).assert_never_two_holders(&tag);
    }
    // Contenders that stall only before their exchange each find the lock already taken by
    // the time they would exchange... or exchange in turn and undo in reverse order: either
    // way the winner keeps its file.
    let faults: Vec<String> = (0..6)
        .map(|i| {
            format!(
                "takeover.after-judge=50,takeover.before-exchange={}",
                40 * i
            )
        })
        .collect();
    stale_race("stale-race-serial", &faults).assert_winner_keeps_its_file("stale-race-serial");
}

/// Three contenders judge the same stale file S, then would exchange in the order A, B, C and
/// check in the same order. Without a takeover claim, B's undo would swap A's file back in and
/// receive C's, and C's undo would receive - and delete - A's, the winner's. With the claim,
/// only one contender takes over at a time; the others find the claim taken, retry, and find
/// the winner's fresh lease. The winner keeps its file.
#[test]
fn chained_takeovers_leave_the_winner_its_file() {
    let faults = [
        "takeover.after-judge=150,takeover.after-exchange=100".to_string(),
        "takeover.after-judge=150,takeover.before-exchange=30,takeover.after-exchange=120"
            .to_string(),
        "takeover.after-judge=150,takeover.before-exchange=60,takeover.after-exchange=140"
            .to_string(),
    ];
    stale_race("chained-undo", &faults).assert_winner_keeps_its_file("chained-undo");
}

/// A release stalled between its check (the path is still ours) and its claim (the rename),
/// while a contender that judges the holder dead takes the lock over: the release moves the
/// new owner's file, sees it is not ours and puts it straight back. The new owner keeps its
/// file and its lease.
#[test]
fn release_stalled_before_claim_leaves_the_new_owners_file() {
    let dir = TempDir::new("release-claim");
    let path = dir.0.join("r.lock");
    let mut old = Party::start(&path, "release.before-claim=1500", &[("HB_MS", "5000")]);
    old.send("acquire");
    assert!(old.expect("ACQUIRED").ends_with(" none"));
    old.send("release");
    assert_eq!(old.next(), "RELEASING");
    // Give the release time to pass its check and enter its stall (checked below: the release
    // lasted the whole stall, so it did pass its check before our takeover). Take over,
    // judging the old holder dead.
    std::thread::sleep(Duration::from_millis(100));
    let new = Lock::new(path.clone(), Options::default(), 0);
    let (on_lost, lost) = loss_channel();
    let dead = |_: i64| false;
    let r = new
        .acquire(&Wait::once(), Some(&dead), None, Some(on_lost))
        .expect("takeover of a holder judged dead");
    assert!(matches!(r, Some(Assessment::Lease(_))));
    let ours = new.current_lease().unwrap().owner_id;
    let ours_ino = ino(&path);
    let released = old.expect("RELEASED");
    let fields: Vec<&str> = released.split(' ').collect();
    assert_eq!(
        fields[1], "false",
        "the stalled release removed nothing: {released}"
    );
    let took: u64 = fields[2].parse().unwrap();
    assert!(
        took >= 1500,
        "the release passed its check and stalled: {released}"
    );
    assert_eq!(owner_at(&path), Some(ours.clone()));
    assert_eq!(
        ino(&path),
        ours_ino,
        "the very same file is back at the path"
    );
    // Our heartbeat (default interval) sees its file, through the blink of the put-back.
    std::thread::sleep(Duration::from_millis(600));
    assert!(new.held());
    assert!(lost.try_recv().is_err(), "the new owner lost nothing");
    assert!(
        dir.leftovers("r.lock").is_empty(),
        "{:?}",
        dir.leftovers("r.lock")
    );
    assert!(new.release().unwrap());
    assert!(dir.leftovers("r.lock").is_empty());
}

/// A release stalled after its claim (the lock path is empty meanwhile): another process
/// acquires the free path; the release then deletes only its own file.
#[test]
fn release_stalled_after_claim_deletes_only_its_own_file() {
    let dir = TempDir::new("release-after");
    let path = dir.0.join("r.lock");
    let mut old = Party::start(&path, "release.after-claim=1000", &[]);
    old.send("acquire");
    old.expect("ACQUIRED");
    old.send("release");
    assert_eq!(old.next(), "RELEASING");
    let new = Lock::new(path.clone(), Options::default(), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match new.acquire(&Wait::once(), None, None, None) {
            Ok(r) => {
                assert!(r.is_none(), "a free path, nothing reclaimed");
                break;
            }
            Err(LockError::Held { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let ours = new.current_lease().unwrap().owner_id;
    let released = old.expect("RELEASED");
    assert!(released.starts_with("RELEASED true "), "{released}");
    assert_eq!(owner_at(&path), Some(ours));
    assert!(new.held());
    assert!(
        dir.leftovers("r.lock").is_empty(),
        "{:?}",
        dir.leftovers("r.lock")
    );
    new.release().unwrap();
}

/// A heartbeat stalled past the stale threshold is a frozen holder: the watchdog tells it at the
/// give-up point (`heartbeat-stalled`) without waiting for the stalled call, it is taken over,
/// and when the call completes nothing changes: still lost, the new owner's file stays.
#[test]
fn heartbeat_stalled_past_the_threshold_is_taken_over_and_told() {
    let dir = TempDir::new("hb-stall");
    let path = dir.0.join("h.lock");
    let mut old = Party::start(
        &path,
        "heartbeat.after-write=1500",
        &[("HB_MS", "50"), ("STALE_MS", "400")],
    );
    old.send("acquire");
    old.expect("ACQUIRED");
    let opts = Options {
        heartbeat_interval: Duration::from_millis(50),
        stale_threshold: Duration::from_millis(400),
        ..Options::default()
    };
    let new = Lock::new(path.clone(), opts, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let reclaimed = loop {
        match new.acquire(&Wait::once(), None, None, None) {
            Ok(r) => break r,
            Err(LockError::Held { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    match reclaimed {
        Some(Assessment::Lease(h)) => assert!(h.stale, "taken over on age: {h:?}"),
        other => panic!("expected a stale takeover, got {other:?}"),
    }
    let ours = new.current_lease().unwrap().owner_id;
    let lost = old.expect("LOST");
    assert_eq!(lost, "LOST heartbeat-stalled ");
    old.send("held");
    assert_eq!(old.expect("HELD?"), "HELD? false");
    old.send("release");
    assert!(old.expect("RELEASED").starts_with("RELEASED false "));
    assert_eq!(owner_at(&path), Some(ours));
    assert!(new.held());
    new.release().unwrap();
    assert!(
        dir.leftovers("h.lock").is_empty(),
        "{:?}",
        dir.leftovers("h.lock")
    );
}

/// A contender that judged a live holder's lease on old bytes (here: a contender whose
/// `processAppearsAlive` calls every owner dead) and stalls before its exchange finds, after the
/// exchange, that the holder rewrote its heartbeat meanwhile: it undoes the exchange. The
/// holder keeps its lock and hears nothing; the contender runs out of attempts.
#[test]
fn takeover_judged_on_old_bytes_is_undone_when_the_holder_heartbeats() {
    for faults in ["takeover.after-judge=300", "takeover.before-exchange=300"] {
        let dir = TempDir::new("old-bytes");
        let path = dir.0.join("o.lock");
        let opts = Options {
            heartbeat_interval: Duration::from_millis(20),
            stale_threshold: Duration::from_secs(3),
            ..Options::default()
        };
        let holder = Lock::new(path.clone(), opts, 0);
        let (on_lost, lost) = loss_channel();
        holder
            .acquire(&Wait::once(), None, None, Some(on_lost))
            .unwrap();
        let ours = holder.current_lease().unwrap().owner_id;
        let ours_ino = ino(&path);
        let mut c = Party::start(
            &path,
            faults,
            &[
                ("ALIVE", "dead"),
                ("RETRY_LIMIT", "4"),
                ("RETRY_DELAY_MS", "0"),
            ],
        );
        c.send("acquire");
        let answer = c.expect("");
        assert_eq!(answer, "CONTENDED 4", "{faults}");
        assert!(holder.held(), "{faults}");
        assert!(
            lost.try_recv().is_err(),
            "{faults}: the holder lost nothing"
        );
        assert_eq!(owner_at(&path), Some(ours), "{faults}");
        assert_eq!(ino(&path), ours_ino, "{faults}");
        assert!(
            dir.leftovers("o.lock").is_empty(),
            "{faults}: {:?}",
            dir.leftovers("o.lock")
        );
        holder.release().unwrap();
    }
}

/// A contender stalled between its exchange and its check keeps the holder's file away from
/// the lock path for longer than the holder tolerates: the holder reports the loss (the path
/// names another owner's lease) before the contender can hold anything. Never two holders.
#[test]
fn contender_stalled_mid_exchange_costs_the_holder_its_lease_safely() {
    let dir = TempDir::new("mid-exchange");
    let path = dir.0.join("m.lock");
    let opts = Options {
        heartbeat_interval: Duration::from_millis(20),
        stale_threshold: Duration::from_secs(3),
        ..Options::default()
    };
    let holder = Lock::new(path.clone(), opts, 0);
    let (on_lost, lost) = loss_channel();
    holder
        .acquire(&Wait::once(), None, None, Some(on_lost))
        .unwrap();
    let mut c = Party::start(
        &path,
        "takeover.after-exchange=400",
        &[
            ("ALIVE", "dead"),
            ("RETRY_LIMIT", "50"),
            ("RETRY_DELAY_MS", "0"),
        ],
    );
    c.send("acquire");
    let answer = c.expect("");
    let acquired_at = Instant::now();
    let (loss, lost_at) = lost
        .recv_timeout(Duration::from_secs(10))
        .expect("the holder was told");
    assert!(!holder.held());
    assert!(matches!(
        loss.reason,
        LossReason::OwnerChanged | LossReason::Removed
    ));
    assert!(answer.starts_with("ACQUIRED"), "{answer}");
    assert!(
        lost_at < acquired_at,
        "the holder knew it had lost before the contender reported holding"
    );
    // The contender's lease is at the path and its heartbeat keeps it.
    let id = answer.split(' ').nth(1).unwrap().to_string();
    assert_eq!(owner_at(&path), Some(id));
    assert!(
        !holder.release().unwrap(),
        "release leaves the new owner's file"
    );
    c.send("held");
    assert_eq!(c.expect("HELD?"), "HELD? true");
    c.send("release");
    assert!(c.expect("RELEASED").starts_with("RELEASED true "));
    assert!(
        dir.leftovers("m.lock").is_empty(),
        "{:?}",
        dir.leftovers("m.lock")
    );
}

/// Fresh contenders stalled before publishing on an empty path: exactly one publishes.
#[test]
fn stalled_publishers_on_a_free_path_exactly_one_wins() {
    let dir = TempDir::new("publish");
    let path = dir.0.join("p.lock");
    let mut parties: Vec<Party> = (0..5)
        .map(|i| {
            Party::start(
                &path,
                &format!("acquire.before-publish={}", 30 - 6 * i),
                &[],
            )
        })
        .collect();
    for p in parties.iter_mut() {
        p.send("acquire");
    }
    let answers: Vec<String> = parties.iter_mut().map(|p| p.expect("")).collect();
    let winners = answers.iter().filter(|a| a.starts_with("ACQUIRED")).count();
    assert_eq!(winners, 1, "{answers:?}");
    assert!(dir.leftovers("p.lock").is_empty());
    let _ = parties
        .iter_mut()
        .map(|p| p.try_next(Duration::ZERO))
        .count();
}
