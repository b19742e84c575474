//! Linux: inotify on lock directories, pidfd on holder processes, one thread for both.
//!
//! The registry below is the single owner of every descriptor. Subscribers add and remove
//! entries under its mutex and poke the thread through an eventfd; only the thread closes
//! descriptors (after its `poll` has returned), so it never polls a number that was closed and
//! reused meanwhile, and only the thread takes unused watches down, so a waiter that got its
//! lock does not wait for that. When the registry is empty the thread closes everything and ends; the
//! next subscriber starts a new one.
//!
//! `inotify_add_watch` runs under the registry mutex. It resolves a path, which is quick on a
//! local disk; the caller only watches directories whose filesystem it trusts, so a hung
//! network mount never stalls the mutex that other locks' waiters share.

pub use super::pids::PidSub;
use super::pids::{self, Watches};
use super::{lock, Bell, Unwatched};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Changes of a directory's entries, and the end of the watched directory itself. No
/// `IN_MODIFY`: a holder's heartbeat rewrites its file in place several times a second, and
/// nothing a waiter could act on is in it (staleness comes from the lease's deadline).
const MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;
/// The watched directory is gone or no longer at its path: every waiter on it must re-arm.
const GONE: u32 = libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED | libc::IN_UNMOUNT;

struct Registry {
    backend: Option<Backend>,
    /// By watch descriptor: inotify gives one per inode, whatever path reached it.
    dirs: BTreeMap<i32, Dir>,
    /// Watched processes, each through its pidfd.
    pids: Watches<OwnedFd>,
    next_id: u64,
}

struct Backend {
    inotify: OwnedFd,
    wake: OwnedFd,
    /// Descriptors given up by subscribers, closed by the thread between two polls.
    closing: Vec<OwnedFd>,
    /// Watches whose last subscriber left, removed by the thread, so that a waiter that just
    /// got its lock returns without waiting for the kernel to take a watch down.
    retiring: Vec<i32>,
}

struct Dir {
    state: Arc<DirState>,
    subs: Vec<DirEntry>,
}

struct DirEntry {
    id: u64,
    name: Box<[u8]>,
    bell: Arc<Bell>,
}

#[derive(Default)]
struct DirState {
    gone: AtomicBool,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        backend: None,
        dirs: BTreeMap::new(),
        pids: BTreeMap::new(),
        next_id: 1,
    });
    lock(&REGISTRY)
}

fn errno_refusal(e: std::io::Error) -> Unwatched {
    Unwatched::Refused(match e.raw_os_error() {
        Some(code) => crate::sys::errno_name(code),
        None => e.to_string(),
    })
}

impl Registry {
    /// The running backend, started (with its thread) if there is none.
    fn backend(&mut self) -> Result<&mut Backend, Unwatched> {
        if self.backend.is_none() {
            self.backend = Some(start()?);
        }
        self.backend.as_mut().ok_or(Unwatched::Unsupported)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

impl Backend {
    fn poke(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A full counter
        // (EAGAIN) means the thread has a wake-up pending anyway.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

fn start() -> Result<Backend, Unwatched> {
    // SAFETY: plain syscalls; each result is checked before it is wrapped as an owned fd.
    let inotify = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if inotify < 0 {
        return Err(errno_refusal(std::io::Error::last_os_error()));
    }
    // SAFETY: `inotify` is a fresh descriptor nobody else owns.
    let inotify = unsafe { OwnedFd::from_raw_fd(inotify) };
    // SAFETY: as above.
    let wake = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if wake < 0 {
        return Err(errno_refusal(std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    let wake = unsafe { OwnedFd::from_raw_fd(wake) };
    let (ino_fd, wake_fd) = (inotify.as_raw_fd(), wake.as_raw_fd());
    std::thread::Builder::new()
        .name("leaselock-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || run(ino_fd, wake_fd))
        .map_err(errno_refusal)?;
    Ok(Backend {
        inotify,
        wake,
        closing: Vec::new(),
        retiring: Vec::new(),
    })
}

/// A waiter's interest in one name in one directory; dropping it ends the interest, and the
/// watch itself with the directory's last interest.
pub struct DirSub {
    wd: i32,
    id: u64,
    state: Arc<DirState>,
}

impl DirSub {
    /// The watched directory was removed, renamed or unmounted: this watch sees nothing more.
    pub fn is_gone(&self) -> bool {
        self.state.gone.load(Ordering::Acquire)
    }
}

pub fn watch_dir(dir: &Path, name: &OsStr, bell: &Arc<Bell>) -> Result<DirSub, Unwatched> {
    let Ok(c_dir) = CString::new(dir.as_os_str().as_bytes()) else {
        return Err(Unwatched::Missing);
    };
    let mut reg = registry();
    let fd = reg.backend()?.inotify.as_raw_fd();
    // SAFETY: a valid inotify descriptor and a NUL-terminated path.
    let wd = unsafe { libc::inotify_add_watch(fd, c_dir.as_ptr(), MASK) };
    if wd < 0 {
        let e = std::io::Error::last_os_error();
        let empty = reg.dirs.is_empty() && reg.pids.is_empty();
        if empty {
            // The backend was started for this watch alone: let the thread end.
            if let Some(b) = &reg.backend {
                b.poke();
            }
        }
        return Err(match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Unwatched::Missing,
            _ => errno_refusal(e),
        });
    }
    let id = reg.id();
    let dir = reg.dirs.entry(wd).or_insert_with(|| Dir {
        state: Arc::default(),
        subs: Vec::new(),
    });
    dir.subs.push(DirEntry {
        id,
        name: name.as_bytes().into(),
        bell: bell.clone(),
    });
    let state = dir.state.clone();
    Ok(DirSub { wd, id, state })
}

impl Drop for DirSub {
    fn drop(&mut self) {
        let mut reg = registry();
        let Some(dir) = reg.dirs.get_mut(&self.wd) else {
            return;
        };
        // The descriptor may have been given to a new directory after ours was gone.
        if !Arc::ptr_eq(&dir.state, &self.state) {
            return;
        }
        dir.subs.retain(|s| s.id != self.id);
        if !dir.subs.is_empty() {
            return;
        }
        reg.dirs.remove(&self.wd);
        if let Some(b) = &mut reg.backend {
            b.retiring.push(self.wd);
            b.poke();
        }
    }
}

pub fn watch_pid(pid: i64, bell: &Arc<Bell>) -> Result<PidSub, Unwatched> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(Unwatched::Refused("EINVAL".into()));
    };
    if pid <= 0 {
        return Err(Unwatched::Refused("EINVAL".into()));
    }
    let mut reg = registry();
    let id = reg.id();
    if let Some(sub) = pids::join(&mut reg.pids, pid.into(), id, bell) {
        return Ok(sub);
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1. It
    // refers to the process that has the pid now; the caller proved just before that this
    // is the lease's owner, and a pid is not reused in the microseconds between.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ESRCH) => Unwatched::Exited,
            _ => errno_refusal(e),
        });
    }
    // SAFETY: a fresh descriptor that nobody else owns (pidfd_open sets close-on-exec).
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    reg.backend()?.poke();
    Ok(pids::add(&mut reg.pids, pid.into(), fd, id, bell))
}

impl Drop for PidSub {
    fn drop(&mut self) {
        let mut reg = registry();
        let Some(p) = pids::leave(&mut reg.pids, self) else {
            return;
        };
        match &mut reg.backend {
            Some(b) => {
                b.closing.push(p.os);
                b.poke();
            }
            None => drop(p.os),
        }
    }
}

/// The thread: waits for inotify events, exits of watched processes and pokes, rings the
/// bells concerned, and ends when nothing is watched any more.
fn run(inotify: RawFd, wake: RawFd) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut pid_ids: Vec<u64> = Vec::new();
    loop {
        {
            let mut reg = registry();
            retire(&mut reg);
            if reg.dirs.is_empty() && reg.pids.is_empty() {
                // Dropped after the registry is unlocked: closes both descriptors.
                let ended = reg.backend.take();
                drop(reg);
                drop(ended);
                return;
            }
            fds.clear();
            pid_ids.clear();
            fds.push(pollfd(inotify));
            fds.push(pollfd(wake));
            let watched = reg.pids.iter();
            for (id, p) in watched.filter(|(_, p)| !p.has_fired()) {
                fds.push(pollfd(p.os.as_raw_fd()));
                pid_ids.push(*id);
            }
        }
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs; every descriptor in it
        // is owned by the registry and closed only by this thread.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            // EINTR; anything else (ENOMEM) is retried the same way after a pause.
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            continue;
        }
        if fds[1].revents != 0 {
            let mut count = 0u64;
            // SAFETY: reads 8 bytes into a live u64 from our eventfd, resetting it.
            unsafe { libc::read(wake, (&mut count as *mut u64).cast(), 8) };
        }
        if fds[0].revents != 0 {
            read_events(inotify, &mut buf);
        }
        let exited: Vec<u64> = fds[2..]
            .iter()
            .zip(&pid_ids)
            .filter(|(f, _)| f.revents != 0)
            .map(|(_, id)| *id)
            .collect();
        if !exited.is_empty() {
            let reg = registry();
            for id in exited {
                if let Some(p) = reg.pids.get(&id) {
                    p.fire(!dropped_by_fault());
                }
            }
        }
    }
}

/// Closes what subscribers gave up and removes the watches nobody uses any more - unless a
/// new subscriber has taken the same watch up again meanwhile (inotify hands out one watch
/// descriptor per directory, so it would be the same number).
fn retire(reg: &mut Registry) {
    let Some(b) = &mut reg.backend else {
        return;
    };
    b.closing.clear();
    for wd in std::mem::take(&mut b.retiring) {
        if !reg.dirs.contains_key(&wd) {
            // SAFETY: our inotify descriptor and a watch descriptor it returned. An error
            // (the watch already went with its directory) leaves nothing to undo.
            unsafe { libc::inotify_rm_watch(b.inotify.as_raw_fd(), wd) };
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Tests can lose notifications on purpose (`LEASELOCK_FAULT_ERRORS=watch.event`, with the
/// `fault-injection` feature) to prove that waiters still get the lock by their safety poll.
fn dropped_by_fault() -> bool {
    crate::faults::error("watch.event").is_some()
}

/// Drains the inotify queue and rings the bells of the names it mentions.
fn read_events(fd: RawFd, buf: &mut [u8]) {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    loop {
        // SAFETY: reads into a live buffer of its own length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            // EAGAIN: drained. (Our buffer always fits at least one event, so no EINVAL.)
            return;
        }
        let data = &buf[..n as usize];
        let mut reg = registry();
        let mut at = 0;
        while at + HEADER <= data.len() {
            // SAFETY: the kernel wrote a whole event header at `at`; read_unaligned copes
            // with any alignment of the byte buffer.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(data[at..].as_ptr().cast()) };
            let name_end = (at + HEADER + ev.len as usize).min(data.len());
            let raw_name = &data[at + HEADER..name_end];
            at = name_end;
            let name = match raw_name.iter().position(|&b| b == 0) {
                Some(end) => &raw_name[..end],
                None => raw_name,
            };
            if dropped_by_fault() {
                continue;
            }
            dispatch(&mut reg, &ev, name);
        }
    }
}

fn dispatch(reg: &mut Registry, ev: &libc::inotify_event, name: &[u8]) {
    if ev.mask & libc::IN_Q_OVERFLOW != 0 {
        // Events were lost: whoever waits anywhere must look again.
        for d in reg.dirs.values() {
            d.subs.iter().for_each(|s| s.bell.ring());
        }
        return;
    }
    if ev.mask & GONE != 0 {
        let Some(d) = reg.dirs.remove(&ev.wd) else {
            return;
        };
        d.state.gone.store(true, Ordering::Release);
        d.subs.iter().for_each(|s| s.bell.ring());
        if ev.mask & libc::IN_IGNORED == 0 {
            if let Some(b) = &reg.backend {
                // SAFETY: our descriptor and its watch; an error means it is already gone.
                unsafe { libc::inotify_rm_watch(b.inotify.as_raw_fd(), ev.wd) };
            }
        }
        return;
    }
    if let Some(d) = reg.dirs.get(&ev.wd) {
        for s in d.subs.iter().filter(|s| *s.name == *name) {
            s.bell.ring();
        }
    }
}
