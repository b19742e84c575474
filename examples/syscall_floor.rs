//! The benchmark's floors: the system calls a lock makes, issued by a plain native loop with no
//! lock logic, no JavaScript and no N-API around them (see bench/README.md).
//!
//!   syscall_floor pair <dir> <count> [threads]
//!                                         one acquire+release's calls per pair; prints each
//!                                         pair's time in microseconds, one JSON array
//!   syscall_floor idle <dir> <n> <ms> [threads]
//!                                         holds n open files and renews each every <ms> as a
//!                                         heartbeat does; prints READY, runs until stdin closes
//!
//! With `threads`, that many idle threads exist meanwhile. A process with more than one thread
//! shares its descriptor table, and then the kernel takes and drops a reference on every
//! descriptor a call uses, which a single-threaded process skips; a Node process always has
//! several threads, so the bench reports the floor both ways.
//!
//! The calls are the ones `strace` shows for `acquireSync()` + `releaseSync()` on Linux: the
//! lock's directory resolved from `/` one component at a time (`openat` with `O_PATH` and
//! `O_NOFOLLOW`, `fstat`, `close` of the previous one; `geteuid` once), then `*at` calls on that
//! directory's descriptor: the fencing-token counter (`fstatat` without following, `openat` for
//! appending, `statx`, a `pread` of its header, the one-byte append and an `lseek` for where it
//! ended), an anonymous `O_TMPFILE` file, the lease written, `statx`, `linkat` of
//! `/proc/self/fd/<file>` to the lock name, an `fstat` of the counter (nobody appended since)
//! and its `close`, a `pread` of our own file, `getpid` (for the private name), `renameat` to
//! the private name, `fstatat` (no follow), `unlinkat`, and the two `close`s. A heartbeat is `fstat` + `pwrite` of the same length, with an `fstatat` of the lock
//! name in the directory held open every fourth beat.

#[cfg(target_os = "linux")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: syscall_floor pair <dir> <count> [threads] | idle <dir> <n> <ms> [threads]";
    match args.get(1).map(String::as_str) {
        Some("pair") if args.len() == 4 || args.len() == 5 => {
            let count = args[3].parse().expect(usage);
            idle_threads(args.get(4), usage);
            linux::pairs(std::path::Path::new(&args[2]), count);
        }
        Some("idle") if args.len() == 5 || args.len() == 6 => {
            let n = args[3].parse().expect(usage);
            let ms = args[4].parse().expect(usage);
            idle_threads(args.get(5), usage);
            linux::idle(std::path::Path::new(&args[2]), n, ms);
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

/// Starts `count` threads that only exist (parked until the process exits), so that the calls
/// are made by a process with a shared descriptor table, as in Node.
#[cfg(target_os = "linux")]
fn idle_threads(count: Option<&String>, usage: &str) {
    let count: usize = count.map_or(0, |t| t.parse().expect(usage));
    for _ in 0..count {
        std::thread::spawn(|| loop {
            std::thread::park();
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("syscall_floor mirrors the Linux system calls; nothing to measure here");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CString;
    use std::io::{BufRead, Write};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn c(p: &Path) -> CString {
        CString::new(p.as_os_str().as_bytes()).expect("no NUL in a temp path")
    }

    fn check(rc: libc::c_long, what: &str) {
        if rc < 0 {
            panic!("{what}: {}", std::io::Error::last_os_error());
        }
    }

    /// A record as long as ours with identity fields and a token (what `acquireSync` writes);
    /// `seq` makes its owner id, as each lock's lease has an owner id of its own.
    fn record(seq: usize) -> Vec<u8> {
        let mut r = format!(
            "{{\"version\":1,\"ownerID\":\"{}-1796000000000000000-{seq}\",\"pid\":{}",
            std::process::id(),
            std::process::id()
        );
        r.push_str(",\"lastHeartbeatUnixNano\":1796000000000000000,\"hostname\":\"bench-host\"");
        r.push_str(
            ",\"bootID\":\"00000000-0000-0000-0000-000000000000\",\"pidNamespace\":\"4026531836\"",
        );
        r.push_str(",\"processStart\":\"123456\",\"heartbeatBootNano\":1234567890123,\"acquiredUnixNano\":1796000000000000000,\"token\":1796000000000001}\n");
        r.into_bytes()
    }

    /// Opens `dir` as the lock does: from `/`, one component at a time, never following a link.
    fn walk(dir: &Path) -> libc::c_int {
        let root = c(Path::new("/"));
        // SAFETY: plain system calls on valid NUL-terminated paths and owned buffers.
        unsafe {
            let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_PATH | libc::O_DIRECTORY;
            let mut fd = libc::open(root.as_ptr(), flags);
            check(fd as _, "open /");
            libc::geteuid();
            for part in dir.components().skip(1) {
                let name = c(Path::new(part.as_os_str()));
                let next = libc::openat(fd, name.as_ptr(), flags | libc::O_NOFOLLOW);
                check(next as _, "openat");
                libc::close(fd);
                let mut st: libc::stat = std::mem::zeroed();
                check(libc::fstat(next, &mut st) as _, "fstat dir");
                fd = next;
            }
            fd
        }
    }

    pub fn pairs(dir: &Path, count: usize) {
        let bytes = record(1);
        let mut out = Vec::with_capacity(count);
        let mut buf = vec![0u8; bytes.len() + 1];
        let dir = std::fs::canonicalize(dir).expect("an existing directory");
        let lock = c(Path::new("floor.lock"));
        let private = c(Path::new(".floor.lock.release.1.1.0"));
        let dot = c(Path::new("."));
        let counter = c(Path::new(".floor.lock.token"));
        let counter_path = dir.join(".floor.lock.token");
        let _ = std::fs::remove_file(&counter_path);
        std::fs::write(&counter_path, b"leaselock-fence 1 00000000000000000001\n")
            .expect("a counter");
        let mut head = [0u8; 39];
        for _ in 0..count {
            let t0 = Instant::now();
            let dfd = walk(&dir);
            // SAFETY: plain system calls on valid NUL-terminated paths and owned buffers.
            unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                check(
                    libc::fstatat(dfd, counter.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) as _,
                    "fstatat counter",
                );
                let cfd = libc::openat(
                    dfd,
                    counter.as_ptr(),
                    libc::O_RDWR
                        | libc::O_APPEND
                        | libc::O_NOCTTY
                        | libc::O_NONBLOCK
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                );
                check(cfd as _, "open counter");
                let mut stx: libc::statx = std::mem::zeroed();
                check(
                    libc::statx(
                        cfd,
                        c"".as_ptr(),
                        libc::AT_EMPTY_PATH,
                        libc::STATX_ALL,
                        &mut stx,
                    ) as _,
                    "statx counter",
                );
                check(
                    libc::pread(cfd, head.as_mut_ptr().cast(), head.len(), 0) as _,
                    "pread counter",
                );
                check(libc::write(cfd, b".".as_ptr().cast(), 1) as _, "append");
                check(libc::lseek(cfd, 0, libc::SEEK_CUR) as _, "lseek");
                let fd = libc::openat(
                    dfd,
                    dot.as_ptr(),
                    libc::O_RDWR | libc::O_CLOEXEC | libc::O_TMPFILE,
                    0o644,
                );
                check(fd as _, "open");
                check(
                    libc::write(fd, bytes.as_ptr().cast(), bytes.len()) as _,
                    "write",
                );
                check(
                    libc::statx(
                        fd,
                        c"".as_ptr(),
                        libc::AT_EMPTY_PATH,
                        libc::STATX_ALL,
                        &mut stx,
                    ) as _,
                    "statx",
                );
                let proc_path = CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default();
                check(
                    libc::linkat(
                        libc::AT_FDCWD,
                        proc_path.as_ptr(),
                        dfd,
                        lock.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    ) as _,
                    "linkat",
                );
                check(libc::fstat(cfd, &mut st) as _, "fstat counter");
                libc::close(cfd);
                check(
                    libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) as _,
                    "pread",
                );
                libc::getpid();
                check(
                    libc::renameat(dfd, lock.as_ptr(), dfd, private.as_ptr()) as _,
                    "renameat",
                );
                check(
                    libc::fstatat(dfd, private.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) as _,
                    "fstatat",
                );
                check(libc::unlinkat(dfd, private.as_ptr(), 0) as _, "unlinkat");
                libc::close(fd);
                libc::close(dfd);
            }
            out.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        let text: Vec<String> = out.iter().map(|us| format!("{us:.3}")).collect();
        println!("[{}]", text.join(","));
    }

    pub fn idle(dir: &Path, n: usize, interval_ms: u64) {
        let mut files = Vec::with_capacity(n);
        let dfd = walk(&std::fs::canonicalize(dir).expect("an existing directory"));
        for i in 0..n {
            let path = c(&dir.join(format!("idle-{i}.lock")));
            // SAFETY: as above.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
                    0o644,
                )
            };
            check(fd as _, "open");
            let bytes = record(i + 1);
            // SAFETY: as above.
            check(
                unsafe { libc::pwrite(fd, bytes.as_ptr().cast(), bytes.len(), 0) } as _,
                "pwrite",
            );
            let stamps = [
                find(&bytes, b"lastHeartbeatUnixNano\":").expect("a heartbeat stamp"),
                find(&bytes, b"heartbeatBootNano\":").expect("a boot-clock stamp"),
            ];
            files.push((fd, c(Path::new(&format!("idle-{i}.lock"))), bytes, stamps));
        }
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            let _ = tx.send(());
        });
        println!("READY");
        let _ = std::io::stdout().flush();
        let interval = Duration::from_millis(interval_ms);
        let mut beat: u64 = 0;
        let mut next = Instant::now() + interval;
        loop {
            match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            beat += 1;
            // New timestamps of the same widths, patched in place into each lease's own record
            // as a heartbeat does (every lock writes its own bytes, not one shared buffer).
            let unix = format!("{:019}", 1_796_000_000_000_000_000u64 + beat);
            let boot = format!("{:013}", 1_234_567_890_123u64 + beat);
            for (fd, name, record, [at_unix, at_boot]) in &mut files {
                record[*at_unix..*at_unix + unix.len()].copy_from_slice(unix.as_bytes());
                record[*at_boot..*at_boot + boot.len()].copy_from_slice(boot.as_bytes());
                // SAFETY: as above.
                unsafe {
                    let mut st: libc::stat = std::mem::zeroed();
                    check(libc::fstat(*fd, &mut st) as _, "fstat");
                    if beat.is_multiple_of(4) {
                        check(
                            libc::fstatat(dfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
                                as _,
                            "fstatat",
                        );
                    }
                    check(
                        libc::pwrite(*fd, record.as_ptr().cast(), record.len(), 0) as _,
                        "pwrite",
                    );
                }
            }
            next += interval;
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + needle.len())
    }
}
