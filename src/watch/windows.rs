//! Windows: `ReadDirectoryChangesW` on lock directories, process handles on holders, one
//! thread for both.
//!
//! Each watched directory has one handle (opened with read, write and delete sharing, so it
//! never blocks a rename or a removal) with one overlapped read always pending on it, made by
//! the thread (`windows_read.rs`); its completion signals an event. The thread waits on those
//! events, the watched processes' handles and a wake-up event with `WaitForMultipleObjects`,
//! which takes 64 handles at most: past 63 directories and processes a new watch is refused
//! and that waiter polls.
//!
//! The registry below owns every handle and read. Once a directory's first read is made, only
//! the thread closes its handle, after ending the read (see `DirRead`'s drop), and only the
//! thread closes process handles. When the registry is empty the thread ends; the next
//! subscriber starts a new one. The system keeps a directory's changes between two reads once
//! the first read is made, so nothing falls between a completion and the next read; a change
//! list that did not fit (no bytes, or `ERROR_NOTIFY_ENUM_DIR`) rings every waiter of that
//! directory.

pub use super::pids::PidSub;
use super::pids::{self, Watches};
use super::windows_read::{last_error, new_event, refusal, DirRead, Read};
use super::{lock, Bell, DirId, Unwatched};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{ERROR_INVALID_PARAMETER, HANDLE, WAIT_FAILED, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{
    OpenProcess, SetEvent, WaitForMultipleObjects, WaitForSingleObject, INFINITE,
    PROCESS_SYNCHRONIZE,
};

pub(super) use super::windows_read::dir_id;

/// `WaitForMultipleObjects` takes this many handles; one is the wake-up event.
const MAX_WATCHED: usize = 63;
/// How long a new watch waits for the thread to make its first read (a change before that is
/// not reported, and the waiter's safety poll finds it).
const START_WAIT: Duration = Duration::from_secs(1);

struct Registry {
    backend: Option<Backend>,
    dirs: BTreeMap<u64, Dir>,
    /// Watched processes, each through a process handle.
    pids: Watches<OwnedHandle>,
    next_id: u64,
}

struct Backend {
    /// Auto-reset event that interrupts the thread's wait.
    wake: OwnedHandle,
    /// Process handles given up by subscribers, closed by the thread.
    closing: Vec<OwnedHandle>,
    /// Directories nobody watches any more (or that are gone), taken down by the thread.
    retiring: Vec<Dir>,
}

struct Dir {
    id: DirId,
    read: DirRead,
    /// The thread has made the first read.
    started: bool,
    state: Arc<DirState>,
    subs: Vec<DirEntry>,
}

struct DirEntry {
    id: u64,
    /// The lock's name in lower case: Windows names are matched without regard to case.
    name: String,
    bell: Arc<Bell>,
}

#[derive(Default)]
struct DirState {
    gone: AtomicBool,
    /// Rung by the thread once the first read is made (or has failed).
    started: Bell,
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

impl Registry {
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

    fn full(&self) -> bool {
        self.dirs.len() + self.pids.len() >= MAX_WATCHED
    }

    /// Lets a thread started for a watch that then failed end again.
    fn poke(&self) {
        if let Some(b) = &self.backend {
            b.poke();
        }
    }
}

impl Backend {
    fn poke(&self) {
        // SAFETY: an event handle we own. Setting a set event is harmless.
        unsafe { SetEvent(self.wake.as_raw_handle() as HANDLE) };
    }
}

fn start() -> Result<Backend, Unwatched> {
    let wake = new_event(false)?;
    std::thread::Builder::new()
        .name("leaselock-watch".into())
        .stack_size(64 * 1024)
        .spawn(run)
        .map_err(refusal)?;
    Ok(Backend {
        wake,
        closing: Vec::new(),
        retiring: Vec::new(),
    })
}

/// A waiter's interest in one name in one directory; dropping it ends the interest, and the
/// directory's handle with its last interest.
pub struct DirSub {
    entry: u64,
    id: u64,
    state: Arc<DirState>,
}

impl DirSub {
    /// The watched directory was removed or its handle failed: this watch sees nothing more.
    pub fn is_gone(&self) -> bool {
        self.state.gone.load(Ordering::Acquire)
    }
}

pub fn watch_dir(dir: &Path, name: &OsStr, bell: &Arc<Bell>) -> Result<DirSub, Unwatched> {
    // Opened before the registry is locked: a slow open stalls only this waiter. (Closed
    // again at once when the directory is watched already.)
    let (read, id) = DirRead::open(dir)?;
    let mut reg = registry();
    let sub_id = reg.id();
    let entry = DirEntry {
        id: sub_id,
        name: name.to_string_lossy().to_lowercase(),
        bell: bell.clone(),
    };
    let shared = reg
        .dirs
        .iter_mut()
        .find(|(_, d)| d.id == id && !d.state.gone.load(Ordering::Acquire));
    if let Some((key, d)) = shared {
        d.subs.push(entry);
        let (entry, state) = (*key, d.state.clone());
        drop(reg);
        state.started.sleep(0, Some(Instant::now() + START_WAIT));
        return Ok(DirSub {
            entry,
            id: sub_id,
            state,
        });
    }
    if reg.full() {
        return Err(Unwatched::Refused("too many watches".into()));
    }
    reg.backend()?;
    let state = Arc::new(DirState::default());
    let dir = Dir {
        id,
        read,
        started: false,
        state: state.clone(),
        subs: vec![entry],
    };
    reg.dirs.insert(sub_id, dir);
    reg.poke();
    drop(reg);
    // The first read is made by the thread (see `start_reads`); changes count from then on.
    state.started.sleep(0, Some(Instant::now() + START_WAIT));
    Ok(DirSub {
        entry: sub_id,
        id: sub_id,
        state,
    })
}

impl Drop for DirSub {
    fn drop(&mut self) {
        let mut reg = registry();
        let Some(dir) = reg.dirs.get_mut(&self.entry) else {
            return;
        };
        dir.subs.retain(|s| s.id != self.id);
        if !dir.subs.is_empty() {
            return;
        }
        let Some(dir) = reg.dirs.remove(&self.entry) else {
            return;
        };
        match &mut reg.backend {
            Some(b) => {
                b.retiring.push(dir);
                b.poke();
            }
            // Cannot happen (the thread runs while anything is watched); never free a buffer
            // the kernel may still write to.
            None => std::mem::forget(dir),
        }
    }
}

pub fn watch_pid(pid: i64, bell: &Arc<Bell>) -> Result<PidSub, Unwatched> {
    let Ok(pid) = u32::try_from(pid) else {
        return Err(Unwatched::Refused("EINVAL".into()));
    };
    if pid == 0 {
        return Err(Unwatched::Refused("EINVAL".into()));
    }
    let mut reg = registry();
    let id = reg.id();
    if let Some(sub) = pids::join(&mut reg.pids, pid.into(), id, bell) {
        return Ok(sub);
    }
    if reg.full() {
        return Err(Unwatched::Refused("too many watches".into()));
    }
    // SAFETY: plain call; the handle is checked before it is owned. It refers to the process
    // that has the pid now, which the caller proved just before to be the lease's owner.
    let h = unsafe { OpenProcess(PROCESS_SYNCHRONIZE, 0, pid) };
    if h.is_null() {
        return Err(match last_error() {
            ERROR_INVALID_PARAMETER => Unwatched::Exited,
            code => refusal(std::io::Error::from_raw_os_error(code as i32)),
        });
    }
    // SAFETY: a fresh handle nobody else owns.
    let handle = unsafe { OwnedHandle::from_raw_handle(h) };
    // SAFETY: our process handle; a zero timeout only asks whether it has ended.
    if unsafe { WaitForSingleObject(h, 0) } == WAIT_OBJECT_0 {
        return Err(Unwatched::Exited);
    }
    reg.backend()?.poke();
    Ok(pids::add(&mut reg.pids, pid.into(), handle, id, bell))
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

/// The thread: waits for directory reads to end, watched processes to exit and pokes, rings
/// the bells concerned, and ends when nothing is watched any more.
fn run() {
    let mut handles: Vec<HANDLE> = Vec::new();
    loop {
        let (retiring, closing) = {
            let mut reg = registry();
            start_reads(&mut reg);
            let Some(b) = reg.backend.as_mut() else {
                return;
            };
            let retiring = std::mem::take(&mut b.retiring);
            let closing = std::mem::take(&mut b.closing);
            if retiring.is_empty() && reg.dirs.is_empty() && reg.pids.is_empty() {
                // Dropped after the registry is unlocked: closes the wake-up event.
                let ended = reg.backend.take();
                drop(reg);
                drop((ended, closing));
                return;
            }
            handles.clear();
            if let Some(b) = &reg.backend {
                handles.push(b.wake.as_raw_handle() as HANDLE);
            }
            let reads = reg.dirs.values().filter(|d| d.read.is_pending());
            handles.extend(reads.map(|d| d.read.event()));
            let live = reg.pids.values().filter(|p| !p.has_fired());
            handles.extend(live.map(|p| p.os.as_raw_handle() as HANDLE));
            (retiring, closing)
        };
        if !retiring.is_empty() || !closing.is_empty() {
            // Outside the mutex: a cancelled read may take a moment to end (see DirRead).
            drop(retiring);
            drop(closing);
            continue;
        }
        // SAFETY: `handles` holds at most 64 live handles (see MAX_WATCHED), all owned by the
        // registry and closed only by this thread.
        let r =
            unsafe { WaitForMultipleObjects(handles.len() as u32, handles.as_ptr(), 0, INFINITE) };
        if r == WAIT_FAILED {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        let mut reg = registry();
        check_dirs(&mut reg);
        check_pids(&reg);
    }
}

/// Makes the first read of each new directory. Only this thread makes reads: Windows cancels
/// the I/O a thread started when that thread ends, and waiters' threads come and go.
fn start_reads(reg: &mut Registry) {
    let mut failed = Vec::new();
    for (key, d) in reg.dirs.iter_mut().filter(|(_, d)| !d.started) {
        d.started = true;
        if d.read.start().is_err() {
            d.state.gone.store(true, Ordering::Release);
            d.subs.iter().for_each(|s| s.bell.ring());
            failed.push(*key);
        }
        d.state.started.ring();
    }
    for key in failed {
        if let (Some(d), Some(b)) = (reg.dirs.remove(&key), reg.backend.as_mut()) {
            b.retiring.push(d);
        }
    }
}

fn check_dirs(reg: &mut Registry) {
    let mut gone = Vec::new();
    for (key, d) in reg.dirs.iter_mut() {
        if !d.started {
            continue;
        }
        let read = d.read.result();
        if matches!(read, Read::Pending) {
            continue;
        }
        if dropped_by_fault() {
            // Tests lose notifications on purpose; the read goes on.
        } else if let Read::Names(n) = read {
            let names = d.read.names(n);
            for s in d.subs.iter().filter(|s| names.contains(&s.name)) {
                s.bell.ring();
            }
        } else {
            d.subs.iter().for_each(|s| s.bell.ring());
        }
        if matches!(read, Read::Gone) || d.read.start().is_err() {
            d.state.gone.store(true, Ordering::Release);
            d.subs.iter().for_each(|s| s.bell.ring());
            gone.push(*key);
        }
    }
    for key in gone {
        if let (Some(d), Some(b)) = (reg.dirs.remove(&key), reg.backend.as_mut()) {
            b.retiring.push(d);
        }
    }
}

fn check_pids(reg: &Registry) {
    for p in reg.pids.values().filter(|p| !p.has_fired()) {
        // SAFETY: our process handle; a zero timeout only asks whether it has ended.
        if unsafe { WaitForSingleObject(p.os.as_raw_handle() as HANDLE, 0) } == WAIT_OBJECT_0 {
            p.fire(!dropped_by_fault());
        }
    }
}

/// Tests can lose notifications on purpose (`LEASELOCK_FAULT_ERRORS=watch.event`, with the
/// `fault-injection` feature) to prove that waiters still get the lock by their safety poll.
fn dropped_by_fault() -> bool {
    crate::faults::error("watch.event").is_some()
}
