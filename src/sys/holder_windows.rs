//! Windows: proving that a process holds a lock file, and asking it to exit.
//!
//! The rules are those of `lib/proof.js` on Linux, with Windows' means:
//! - the lease is read through a handle opened without following a reparse point, which must be
//!   a regular file whose DACL lets nobody but its owner, SYSTEM and Administrators write it;
//! - the file's owner SID is the caller's token user (unless the caller allows another owner)
//!   and the holder process's token user;
//! - the holder has that very file open (`holder_windows_open.rs` says how that is found), while
//!   a handle on the holder process is held, so that its pid cannot pass to another process
//!   meanwhile;
//! - the lease names the holder's creation time (checked in `lib/proof.js`).
//!
//! Windows has no SIGTERM for another process. `process.kill(pid, 'SIGTERM')` in Node is
//! `TerminateProcess`: no handler runs. A console control event (`GenerateConsoleCtrlEvent`)
//! reaches a whole process group on the caller's own console only, and reaching another console
//! means detaching from ours and sending Ctrl+C to everything attached there - processes that
//! were never proven to hold anything. So the graceful ask is a request the holder's own
//! leaselock listens for: a named auto-reset event `Local\leaselock-stop-<pid>-<start>`, created
//! by the holder (never opened if it already existed: a squatter's event is not listened to),
//! which the stopper does not signal when the event's owner is another user than the holder's
//! (where an owner can be read: Wine reports none).
//! The holder then behaves as Node on Unix would on SIGTERM (`lib/stop-requests.js`). A holder
//! that does not listen (another program, an older leaselock) is ended only with `--force`,
//! by `TerminateProcess` through the handle opened before the final check.

use super::windows::{id_of_file, probe};
use super::ProcessState;
use std::fs::File;
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use windows_sys::Win32::Foundation::{
    GetLastError, LocalFree, ERROR_ALREADY_EXISTS, FILETIME, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, GetSecurityInfo, SE_FILE_OBJECT, SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{
    GetLengthSid, GetTokenInformation, TokenUser, ACCESS_ALLOWED_ACE, ACE_HEADER, ACL,
    DACL_SECURITY_INFORMATION, INHERIT_ONLY_ACE, OWNER_SECURITY_INFORMATION, PSID, TOKEN_QUERY,
    TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    READ_CONTROL,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentProcess, GetExitCodeProcess, GetProcessTimes, OpenEventW, OpenProcess,
    OpenProcessToken, SetEvent, TerminateProcess, WaitForSingleObject, EVENT_MODIFY_STATE,
    INFINITE, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
};

/// What the proof found: the lease's bytes (read through the checked handle) and the holder's
/// start time (the creation `FILETIME`, as `OwnerIdentity::process_start` writes it).
#[derive(Debug)]
pub struct Proven {
    pub lease: Vec<u8>,
    pub start: String,
}

/// SIDs allowed to write a lock file besides its owner: LocalSystem and Administrators, who
/// can take any file anyway.
const SYSTEM_SID: &[u8] = &[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
const ADMINS_SID: &[u8] = &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 32, 2, 0, 0];
/// Rights that let a holder of them change the file's content or who may: FILE_WRITE_DATA,
/// FILE_APPEND_DATA, WRITE_DAC, WRITE_OWNER, GENERIC_ALL, GENERIC_WRITE.
const WRITE_RIGHTS: u32 = 0x2 | 0x4 | 0x4_0000 | 0x8_0000 | 0x1000_0000 | 0x4000_0000;
const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
/// `GetExitCodeProcess` answers this while the process runs.
const STILL_ACTIVE: u32 = 259;
/// ERROR_INVALID_PARAMETER from `OpenProcess`: no such process.
const NO_SUCH_PROCESS: i32 = 87;
/// ERROR_FILE_NOT_FOUND from `OpenEventW`: nobody listens under that name.
const NOT_FOUND: i32 = 2;

fn sid_bytes(sid: PSID) -> Vec<u8> {
    // SAFETY: `sid` points to a valid SID for the duration of the call (the caller's buffer);
    // GetLengthSid gives its length in bytes.
    unsafe {
        let len = GetLengthSid(sid) as usize;
        std::slice::from_raw_parts(sid.cast::<u8>(), len).to_vec()
    }
}

/// `S-1-5-21-...` for messages.
fn sid_text(sid: &[u8]) -> String {
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is a complete SID; on success `text` is a NUL-terminated string that
    // LocalFree releases.
    unsafe {
        if ConvertSidToStringSidW(sid.as_ptr() as PSID, &mut text) == 0 || text.is_null() {
            return "an unknown account".to_owned();
        }
        let mut n = 0;
        while *text.add(n) != 0 {
            n += 1;
        }
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, n));
        LocalFree(text.cast());
        s
    }
}

/// The token user of the process behind `process` (a handle with query rights).
fn token_user(process: HANDLE) -> io::Result<Vec<u8>> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is open; on success `token` is a new handle we own.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just opened, owned by nothing else.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    let mut buf = vec![0u64; 64];
    let mut len = 0u32;
    // SAFETY: `buf` is writable for its size in bytes, aligned for TOKEN_USER.
    let ok = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: filled in by GetTokenInformation; its SID points into `buf`, alive here.
    Ok(sid_bytes(unsafe {
        (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid
    }))
}

/// The owner SID of a file or kernel object, and (for a file) the SIDs other than the owner,
/// SYSTEM and Administrators that its DACL lets write (`["Everyone"]`-like for a null DACL).
fn owner_and_writers(handle: HANDLE, file: bool) -> io::Result<(Vec<u8>, Vec<String>)> {
    let mut owner: PSID = std::ptr::null_mut();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd = std::ptr::null_mut();
    let what = OWNER_SECURITY_INFORMATION | if file { DACL_SECURITY_INFORMATION } else { 0 };
    let kind = if file {
        SE_FILE_OBJECT
    } else {
        SE_KERNEL_OBJECT
    };
    // SAFETY: `handle` is open with READ_CONTROL; the out-pointers point into `sd`, freed below.
    let rc = unsafe {
        GetSecurityInfo(
            handle,
            kind,
            what,
            &mut owner,
            std::ptr::null_mut(),
            if file {
                &mut dacl
            } else {
                std::ptr::null_mut()
            },
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let result = (|| {
        if owner.is_null() {
            return Err(io::Error::other("no owner"));
        }
        let owner = sid_bytes(owner);
        let mut writers = Vec::new();
        if !file {
            return Ok((owner, writers));
        }
        if dacl.is_null() {
            writers.push("everyone (the file has no access control list)".to_owned());
            return Ok((owner, writers));
        }
        // SAFETY: a valid ACL from GetSecurityInfo: a header, then AceCount ACEs, each starting
        // with an ACE_HEADER that gives its size, all within AclSize bytes.
        unsafe {
            let acl = &*dacl;
            let end = dacl.cast::<u8>().add(acl.AclSize as usize);
            let mut ace = dacl.cast::<u8>().add(std::mem::size_of::<ACL>());
            for _ in 0..acl.AceCount {
                if ace.add(std::mem::size_of::<ACE_HEADER>()) > end {
                    break;
                }
                let header = &*ace.cast::<ACE_HEADER>();
                if header.AceType == ACCESS_ALLOWED_ACE_TYPE
                    && u32::from(header.AceFlags) & INHERIT_ONLY_ACE == 0
                {
                    let allowed = &*ace.cast::<ACCESS_ALLOWED_ACE>();
                    let sid = std::ptr::addr_of!(allowed.SidStart) as PSID;
                    let sid = sid_bytes(sid);
                    let trusted = sid == owner || sid == SYSTEM_SID || sid == ADMINS_SID;
                    if allowed.Mask & WRITE_RIGHTS != 0 && !trusted {
                        writers.push(sid_text(&sid));
                    }
                }
                if header.AceSize == 0 {
                    break;
                }
                ace = ace.add(header.AceSize as usize);
            }
        }
        Ok((owner, writers))
    })();
    // SAFETY: allocated by GetSecurityInfo for us.
    unsafe { LocalFree(sd) };
    result
}

pub(super) fn filetime_string(t: FILETIME) -> String {
    ((u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)).to_string()
}

fn open_lease(path: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .access_mode(windows_sys::Win32::Storage::FileSystem::FILE_GENERIC_READ | READ_CONTROL)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
        .map_err(|e| format!("the lock file cannot be opened ({e})"))
}

/// Whether the lease at `path` proves that process `pid` holds it (see the module comment).
/// `Err` is the reason it does not, fit for a message.
pub fn prove(path: &Path, pid: u32, allow_other_owner: bool) -> Result<Proven, String> {
    const REPARSE_POINT: u32 = 0x400;
    let file = open_lease(path)?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if meta.file_attributes() & REPARSE_POINT != 0 {
        return Err("the lock path is a symbolic link or junction".to_owned());
    }
    if !meta.is_file() {
        return Err("the lock path is not a regular file".to_owned());
    }
    let id = id_of_file(&file).map_err(|e| e.to_string())?;
    let (lease, oversized) = super::read_capped(&file, meta.len())
        .map_err(|e| format!("the lock file cannot be read ({e})"))?;
    if oversized {
        return Err("the lock file does not hold a lease".to_owned());
    }
    let handle = file.as_raw_handle();
    let (owner, writers) = owner_and_writers(handle, true)
        .map_err(|e| format!("the lock file's owner cannot be read ({e})"))?;
    if let Some(w) = writers.first() {
        return Err(format!("the lock file may be written by {w}"));
    }
    // SAFETY: the pseudo-handle of this process needs no closing.
    let me = token_user(unsafe { GetCurrentProcess() })
        .map_err(|e| format!("this process's user cannot be read ({e})"))?;
    if owner != me && !allow_other_owner {
        let (o, m) = (sid_text(&owner), sid_text(&me));
        return Err(format!(
            "the lock file belongs to {o}, not to this user ({m})"
        ));
    }
    let process = Process::open(pid)
        .map_err(|e| format!("process {pid} cannot be examined ({e})"))?
        .ok_or_else(|| "the holder is not running".to_owned())?;
    let holder =
        token_user(process.raw()).map_err(|e| format!("process {pid} cannot be examined ({e})"))?;
    if holder != owner {
        let (h, o) = (sid_text(&holder), sid_text(&owner));
        return Err(format!(
            "process {pid} runs as {h}, but the lock file belongs to {o}"
        ));
    }
    // The process handle is open from here on: no other process can get its pid meanwhile.
    let holds = super::holder_windows_open::holds(&file, id, path, pid, &process.start)?;
    if !holds {
        return Err(format!("process {pid} does not have the lock file open"));
    }
    if process.has_ended() {
        return Err("the holder is not running".to_owned());
    }
    Ok(Proven {
        lease,
        start: process.start,
    })
}

fn own_start() -> Option<String> {
    match probe(i64::from(std::process::id())) {
        ProcessState::Running { start } => Some(start),
        _ => None,
    }
}

/// The name of a process's stop-request event: tied to its start time, so a later process that
/// reuses the pid has another name.
fn stop_event_name(pid: u32, start: &str) -> Vec<u16> {
    format!("Local\\leaselock-stop-{pid}-{start}")
        .encode_utf16()
        .chain(Some(0))
        .collect()
}

/// A handle on one process, opened with the rights to wait for it, read its times and user,
/// and end it. It names that process for good, whoever gets its pid after it has ended.
#[derive(Debug)]
pub struct Process {
    handle: OwnedHandle,
    pid: u32,
    pub start: String,
}

/// What a stop request found.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// The request was made.
    Asked,
    /// The process has already ended.
    Ended,
    /// The process does not listen for stop requests (or the event under its name is not its
    /// user's).
    NotListening,
}

impl Process {
    /// Opens `pid`; `None` when there is no such process or it has ended.
    pub fn open(pid: u32) -> io::Result<Option<Process>> {
        let rights = PROCESS_TERMINATE | PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
        // SAFETY: plain call; a null handle means failure.
        let h = unsafe { OpenProcess(rights, 0, pid) };
        if h.is_null() {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(NO_SUCH_PROCESS) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: just opened, owned by nothing else.
        let handle = unsafe { OwnedHandle::from_raw_handle(h) };
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: the handle is open; the out-pointers are valid.
        let ok = unsafe { GetProcessTimes(h, &mut created, &mut exited, &mut kernel, &mut user) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let process = Process {
            handle,
            pid,
            start: filetime_string(created),
        };
        Ok(if process.has_ended() {
            None
        } else {
            Some(process)
        })
    }

    fn raw(&self) -> HANDLE {
        self.handle.as_raw_handle()
    }

    pub fn has_ended(&self) -> bool {
        let mut code = 0u32;
        // SAFETY: the handle is open; `code` is writable.
        unsafe {
            WaitForSingleObject(self.raw(), 0) == WAIT_OBJECT_0
                || (GetExitCodeProcess(self.raw(), &mut code) != 0 && code != STILL_ACTIVE)
        }
    }

    /// Signals the process's stop-request event, after checking that the event belongs to the
    /// process's user.
    pub fn request_exit(&self) -> io::Result<Asked> {
        if self.has_ended() {
            return Ok(Asked::Ended);
        }
        let name = stop_event_name(self.pid, &self.start);
        // SAFETY: `name` is NUL-terminated; a null handle means failure.
        let ev = unsafe { OpenEventW(EVENT_MODIFY_STATE | READ_CONTROL, 0, name.as_ptr()) };
        if ev.is_null() {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(NOT_FOUND) => Ok(Asked::NotListening),
                _ => Err(e),
            };
        }
        // SAFETY: just opened, owned by nothing else.
        let ev = unsafe { OwnedHandle::from_raw_handle(ev) };
        // An event of another user under this name is a squatter's: the holder does not listen
        // to it. Where no owner can be read (Wine gives kernel objects none) the request is
        // made all the same: it is a request to a process already proven, never a signal, and
        // a squatter could only learn that it was made.
        if let Ok((owner, _)) = owner_and_writers(ev.as_raw_handle(), false) {
            if owner != token_user(self.raw())? {
                return Ok(Asked::NotListening);
            }
        }
        // SAFETY: the event is open with EVENT_MODIFY_STATE.
        if unsafe { SetEvent(ev.as_raw_handle()) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Asked::Asked)
    }

    /// Ends the process (exit code 1, as Node's `process.kill` does on Windows); false when it
    /// had already ended.
    pub fn terminate(&self) -> io::Result<bool> {
        if self.has_ended() {
            return Ok(false);
        }
        // SAFETY: the handle is open with PROCESS_TERMINATE.
        if unsafe { TerminateProcess(self.raw(), 1) } == 0 {
            let e = io::Error::last_os_error();
            return if self.has_ended() { Ok(false) } else { Err(e) };
        }
        Ok(true)
    }
}

/// Starts listening for stop requests to this process: `on_request` runs on a thread of its
/// own each time one comes. Once per process; `Ok(false)` when already listening, or when an
/// event under this process's name already existed (made by somebody else: not listened to).
pub fn listen(on_request: impl Fn() + Send + 'static) -> io::Result<bool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static LISTENING: AtomicBool = AtomicBool::new(false);
    if LISTENING.swap(true, Ordering::SeqCst) {
        return Ok(false);
    }
    let start = own_start().ok_or_else(|| io::Error::other("own start time unknown"))?;
    let name = stop_event_name(std::process::id(), &start);
    // SAFETY: default security (this user's token default DACL), auto-reset, not signalled.
    let ev = unsafe { CreateEventW(std::ptr::null(), 0, 0, name.as_ptr()) };
    if ev.is_null() {
        LISTENING.store(false, Ordering::SeqCst);
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created (or opened), owned by nothing else.
    let ev = unsafe { OwnedHandle::from_raw_handle(ev) };
    // SAFETY: reads this thread's last error, set by CreateEventW.
    if unsafe { GetLastError() } == ERROR_ALREADY_EXISTS {
        return Ok(false);
    }
    std::thread::Builder::new()
        .name("leaselock-stop".into())
        .spawn(move || loop {
            // SAFETY: the event stays open for the life of this thread (the process's).
            let r = unsafe { WaitForSingleObject(ev.as_raw_handle(), INFINITE) };
            if r != WAIT_OBJECT_0 {
                return;
            }
            on_request();
        })?;
    Ok(true)
}
