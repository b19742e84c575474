//! macOS: kqueue. `EVFILT_VNODE` (`NOTE_WRITE`) on a lock directory's descriptor says that an
//! entry of the directory was added, removed or renamed; `EVFILT_PROC` (`NOTE_EXIT`) that a
//! watched holder ended; `EVFILT_USER` wakes the thread. One kqueue and one thread serve the
//! whole process, one descriptor per watched directory, one registration per watched process.
//!
//! This backend is type-checked only: this project's CI has no macOS machine to run it on.
//! It is kept small on purpose, and every failure falls back to the waiter's poll.
//!
//! kqueue does not say which name changed, and every waiter's attempt writes and removes a
//! private temp name in the lock's directory (macOS has no `O_TMPFILE`), as do other locks in
//! it. So a directory change does not ring a waiter by itself: the thread first looks at the
//! lock's name (`lstat`: absent, or which file) and rings only when that differs from what it
//! saw when it last rang that waiter (or when the waiter subscribed). Otherwise waiters would
//! wake each other without end. A heartbeat rewrites its file in place and changes no entry,
//! so it wakes nobody.
//!
//! Unlike inotify's watch descriptors, nothing here is shared between two directories: an
//! event carries the registry key it was registered with (`udata`, never reused), and closing
//! a directory's descriptor removes its registration and any event still queued for it. So
//! subscribers may close descriptors themselves; the thread only reads events.

pub use super::pids::PidSub;
use super::pids::{self, Watches};
use super::{lock, Bell, DirId, Unwatched};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The directory itself went away: removed, renamed, or its filesystem revoked.
const GONE: u32 = libc::NOTE_DELETE | libc::NOTE_RENAME | libc::NOTE_REVOKE;
/// The registry key of the thread's wake-up event (real keys start above it).
const WAKE: u64 = 0;

struct Registry {
    kq: Option<OwnedFd>,
    dirs: BTreeMap<u64, Dir>,
    /// Watched processes (the kqueue filter is keyed by the pid itself).
    pids: Watches<()>,
    next_id: u64,
}

struct Dir {
    id: DirId,
    /// Held for its registration, which closing it ends. Opened `O_EVTONLY`: for events
    /// only, so it does not keep a volume from unmounting.
    _fd: OwnedFd,
    path: PathBuf,
    state: Arc<DirState>,
    subs: Vec<DirEntry>,
}

/// What the lock's name pointed at: `None` absent, else the file's device and inode; `Err`
/// when it could not be told (which counts as a change).
type Seen = Result<Option<(u64, u64)>, ()>;

struct DirEntry {
    id: u64,
    name: OsString,
    /// The lock's name as the thread last saw it for this waiter.
    seen: Seen,
    bell: Arc<Bell>,
}

#[derive(Default)]
struct DirState {
    gone: AtomicBool,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        kq: None,
        dirs: BTreeMap::new(),
        pids: BTreeMap::new(),
        next_id: WAKE + 1,
    });
    lock(&REGISTRY)
}

fn refusal(e: std::io::Error) -> Unwatched {
    Unwatched::Refused(match e.raw_os_error() {
        Some(code) => crate::sys::errno_name(code),
        None => e.to_string(),
    })
}

/// Registers (or changes, or deletes) one event on `kq`.
fn change(
    kq: RawFd,
    ident: usize,
    filter: i16,
    flags: u16,
    fflags: u32,
    key: u64,
) -> std::io::Result<()> {
    let ev = libc::kevent {
        ident,
        filter,
        flags,
        fflags,
        data: 0,
        udata: key as usize as *mut libc::c_void,
    };
    // SAFETY: one change from a live struct, no event list, no timeout.
    let r = unsafe { libc::kevent(kq, &ev, 1, std::ptr::null_mut(), 0, std::ptr::null()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Registry {
    /// The process's kqueue, created (with its thread) if there is none.
    fn kq(&mut self) -> Result<RawFd, Unwatched> {
        if let Some(kq) = &self.kq {
            return Ok(kq.as_raw_fd());
        }
        // SAFETY: plain syscall; checked before it is owned.
        let fd = unsafe { libc::kqueue() };
        if fd < 0 {
            return Err(refusal(std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let kq = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: our own descriptor.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        change(
            fd,
            0,
            libc::EVFILT_USER,
            libc::EV_ADD | libc::EV_CLEAR,
            0,
            WAKE,
        )
        .map_err(refusal)?;
        std::thread::Builder::new()
            .name("leaselock-watch".into())
            .stack_size(64 * 1024)
            .spawn(move || run(fd))
            .map_err(refusal)?;
        self.kq = Some(kq);
        Ok(fd)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Wakes the thread, so that it ends when nothing is watched any more.
    fn poke(&self) {
        if let Some(kq) = &self.kq {
            let _ = change(
                kq.as_raw_fd(),
                0,
                libc::EVFILT_USER,
                0,
                libc::NOTE_TRIGGER,
                WAKE,
            );
        }
    }
}

/// What the lock's name points at now.
fn look(path: &Path) -> Seen {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(()),
    }
}

pub struct DirSub {
    entry: u64,
    id: u64,
    state: Arc<DirState>,
}

impl DirSub {
    /// The watched directory was removed, renamed or revoked: this watch sees nothing more.
    pub fn is_gone(&self) -> bool {
        self.state.gone.load(Ordering::Acquire)
    }
}

pub fn watch_dir(dir: &Path, name: &OsStr, bell: &Arc<Bell>) -> Result<DirSub, Unwatched> {
    let id = super::dir_id(dir).map_err(|_| Unwatched::Missing)?;
    let seen = look(&dir.join(name));
    let mut reg = registry();
    let sub = reg.id();
    let entry = DirEntry {
        id: sub,
        name: name.to_owned(),
        seen,
        bell: bell.clone(),
    };
    let shared = reg
        .dirs
        .iter_mut()
        .find(|(_, d)| d.id == id && !d.state.gone.load(Ordering::Acquire));
    if let Some((key, d)) = shared {
        d.subs.push(entry);
        let (entry, state) = (*key, d.state.clone());
        return Ok(DirSub {
            entry,
            id: sub,
            state,
        });
    }
    let kq = reg.kq()?;
    let Ok(c_dir) = CString::new(dir.as_os_str().as_bytes()) else {
        return Err(Unwatched::Missing);
    };
    // SAFETY: a NUL-terminated path; the result is checked before it is owned.
    let fd = unsafe {
        libc::open(
            c_dir.as_ptr(),
            libc::O_EVTONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        reg.poke();
        return Err(match std::io::Error::last_os_error() {
            e if e.kind() == std::io::ErrorKind::NotFound => Unwatched::Missing,
            e => refusal(e),
        });
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let flags = libc::EV_ADD | libc::EV_CLEAR;
    if let Err(e) = change(
        kq,
        fd.as_raw_fd() as usize,
        libc::EVFILT_VNODE,
        flags,
        libc::NOTE_WRITE | GONE,
        sub,
    ) {
        reg.poke();
        return Err(refusal(e));
    }
    let state = Arc::new(DirState::default());
    let d = Dir {
        id,
        _fd: fd,
        path: dir.to_owned(),
        state: state.clone(),
        subs: vec![entry],
    };
    reg.dirs.insert(sub, d);
    Ok(DirSub {
        entry: sub,
        id: sub,
        state,
    })
}

impl Drop for DirSub {
    fn drop(&mut self) {
        let mut reg = registry();
        let Some(d) = reg.dirs.get_mut(&self.entry) else {
            return;
        };
        d.subs.retain(|s| s.id != self.id);
        if d.subs.is_empty() {
            // Closing the descriptor removes its registration (see the module's comment).
            reg.dirs.remove(&self.entry);
            reg.poke();
        }
    }
}

pub fn watch_pid(pid: i64, bell: &Arc<Bell>) -> Result<PidSub, Unwatched> {
    let pid = match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => p,
        _ => return Err(Unwatched::Refused("EINVAL".into())),
    };
    let mut reg = registry();
    let id = reg.id();
    if let Some(sub) = pids::join(&mut reg.pids, pid.into(), id, bell) {
        return Ok(sub);
    }
    let kq = reg.kq()?;
    // One shot: an exit is reported once, and the registration goes with it.
    let flags = libc::EV_ADD | libc::EV_ONESHOT;
    if let Err(e) = change(
        kq,
        pid as usize,
        libc::EVFILT_PROC,
        flags,
        libc::NOTE_EXIT,
        id,
    ) {
        reg.poke();
        return Err(match e.raw_os_error() {
            Some(libc::ESRCH) => Unwatched::Exited,
            _ => refusal(e),
        });
    }
    Ok(pids::add(&mut reg.pids, pid.into(), (), id, bell))
}

impl Drop for PidSub {
    fn drop(&mut self) {
        let mut reg = registry();
        let Some(p) = pids::leave(&mut reg.pids, self) else {
            return;
        };
        if let (Some(kq), false) = (&reg.kq, p.has_fired()) {
            // An error (it has just exited) leaves nothing registered.
            let _ = change(
                kq.as_raw_fd(),
                p.pid as usize,
                libc::EVFILT_PROC,
                libc::EV_DELETE,
                0,
                0,
            );
        }
        reg.poke();
    }
}

/// The thread: reads events, rings the bells concerned, and ends (closing the kqueue) when
/// nothing is watched any more.
fn run(kq: RawFd) {
    // SAFETY: kevent is plain data; all-zero is a valid value.
    let mut events: [libc::kevent; 16] = unsafe { std::mem::zeroed() };
    loop {
        {
            let mut reg = registry();
            if reg.dirs.is_empty() && reg.pids.is_empty() {
                let ended = reg.kq.take();
                drop(reg);
                drop(ended);
                return;
            }
        }
        // SAFETY: no changes; a live event array of the length passed; no timeout.
        let n = unsafe {
            libc::kevent(
                kq,
                std::ptr::null(),
                0,
                events.as_mut_ptr(),
                events.len() as i32,
                std::ptr::null(),
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            continue;
        }
        let mut reg = registry();
        for ev in &events[..n as usize] {
            if !dropped_by_fault() {
                dispatch(&mut reg, ev);
            }
        }
    }
}

fn dispatch(reg: &mut Registry, ev: &libc::kevent) {
    let key = ev.udata as usize as u64;
    if ev.filter == libc::EVFILT_PROC {
        if let Some(p) = reg.pids.get(&key) {
            p.fire(true);
        }
        return;
    }
    if ev.filter != libc::EVFILT_VNODE {
        return; // the wake-up
    }
    let gone = ev.fflags & GONE != 0 || ev.flags & libc::EV_ERROR != 0;
    if gone {
        if let Some(d) = reg.dirs.remove(&key) {
            d.state.gone.store(true, Ordering::Release);
            d.subs.iter().for_each(|s| s.bell.ring());
        }
        return;
    }
    let Some(d) = reg.dirs.get_mut(&key) else {
        return;
    };
    // One look per name, however many waiters wait for it.
    let mut looked: Vec<(OsString, Seen)> = Vec::new();
    for s in d.subs.iter_mut() {
        let now = match looked.iter().find(|(n, _)| *n == s.name) {
            Some((_, seen)) => *seen,
            None => {
                let seen = look(&d.path.join(&s.name));
                looked.push((s.name.clone(), seen));
                seen
            }
        };
        if now != s.seen || now.is_err() {
            s.seen = now;
            s.bell.ring();
        }
    }
}

/// Tests can lose notifications on purpose (`LEASELOCK_FAULT_ERRORS=watch.event`, with the
/// `fault-injection` feature) to prove that waiters still get the lock by their safety poll.
fn dropped_by_fault() -> bool {
    crate::faults::error("watch.event").is_some()
}
