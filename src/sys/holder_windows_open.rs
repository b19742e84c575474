//! Windows: which processes have a file open - for the holder proof (`holder_windows.rs`).
//!
//! Asked three ways, the first that answers wins:
//! 1. the kernel's own list of the pids that have the file open
//!    (`NtQueryInformationFile(FileProcessIdsUsingFileInformation)`), asked through the caller's
//!    handle on the file, so no path is involved (Windows 7 and later);
//! 2. the system handle table (`NtQuerySystemInformation(SystemExtendedHandleInformation)`):
//!    each handle of the holder of the same object type as the caller's own handle on the file
//!    is duplicated into this process and compared by volume serial and file index. Handles with
//!    the access mask of a synchronous named pipe are skipped, and only disk files are queried,
//!    because a query on a pipe with a read pending can wait for that read;
//! 3. the Restart Manager, which lists pid + start time per process (`RM_UNIQUE_PROCESS`) by
//!    path: the path must name the same file after the query, and a list without anybody in it
//!    (the caller has the file open while it asks) proves nothing.
//!
//! Under Wine 8 the first is not answered and the third is a stub that lists nobody; the second
//! is what runs there.

use super::holder_windows::filetime_string;
use super::FileId;
use std::fs::File;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use windows_sys::Wdk::Storage::FileSystem::{
    FileProcessIdsUsingFileInformation, NtQueryInformationFile,
};
use windows_sys::Wdk::System::SystemInformation::NtQuerySystemInformation;
use windows_sys::Win32::Foundation::{
    DuplicateHandle, DUPLICATE_SAME_ACCESS, ERROR_MORE_DATA, HANDLE,
};
use windows_sys::Win32::Storage::FileSystem::{GetFileType, FILE_TYPE_DISK};
use windows_sys::Win32::System::RestartManager::{
    RmEndSession, RmGetList, RmRegisterResources, RmStartSession, CCH_RM_SESSION_KEY,
    RM_PROCESS_INFO,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcess, PROCESS_DUP_HANDLE};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

const INFO_LENGTH_MISMATCH: i32 = 0xC000_0004_u32 as i32;
/// SystemExtendedHandleInformation.
const EXTENDED_HANDLE_INFORMATION: i32 = 64;
/// The access mask of a synchronous named pipe handle, whose queries can wait for a pending
/// read.
const SYNC_PIPE_ACCESS: u32 = 0x0012_019f;
/// The handle table is read up to this size (a busy machine has a few hundred thousand handles,
/// 40 bytes each).
const HANDLE_TABLE_MAX: usize = 256 << 20;

/// Whether process `pid`, started at `start`, has open the file that `file` (the caller's
/// handle) is and `path` names. `Err` when nothing here can tell.
pub(super) fn holds(
    file: &File,
    id: FileId,
    path: &Path,
    pid: u32,
    start: &str,
) -> Result<bool, String> {
    if let Some(pids) = pids_with_open(file) {
        if !pids.is_empty() {
            return Ok(pids.contains(&pid));
        }
    }
    if let Some(found) = in_handle_table(file, id, pid) {
        return Ok(found);
    }
    holds_by_path(path, id, pid, start)
}

/// The pids and start times of every process that has the file at `path` open, from the
/// Restart Manager.
fn processes_with_open(path: &Path) -> io::Result<Vec<(u32, String)>> {
    let mut session = 0u32;
    let mut key = [0u16; CCH_RM_SESSION_KEY as usize + 1];
    // SAFETY: `key` has room for CCH_RM_SESSION_KEY characters and the NUL.
    let rc = unsafe { RmStartSession(&mut session, 0, key.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let result = (|| {
        let wide: Vec<u16> = std::path::absolute(path)?
            .as_os_str()
            .encode_wide()
            .chain(Some(0))
            .collect();
        let names = [wide.as_ptr()];
        // SAFETY: one NUL-terminated name, alive for the call; no applications or services.
        let rc = unsafe {
            RmRegisterResources(
                session,
                1,
                names.as_ptr(),
                0,
                std::ptr::null(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc as i32));
        }
        let mut room = 8u32;
        for _ in 0..4 {
            let mut infos = vec![RM_PROCESS_INFO::default(); room as usize];
            let (mut needed, mut count, mut reasons) = (0u32, room, 0u32);
            // SAFETY: `infos` holds `count` entries; the call writes at most that many.
            let rc = unsafe {
                RmGetList(
                    session,
                    &mut needed,
                    &mut count,
                    infos.as_mut_ptr(),
                    &mut reasons,
                )
            };
            if rc == ERROR_MORE_DATA {
                room = needed.max(room) + 4;
                continue;
            }
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc as i32));
            }
            infos.truncate(count.min(room) as usize);
            return Ok(infos
                .iter()
                .map(|p| {
                    let start = filetime_string(p.Process.ProcessStartTime);
                    (p.Process.dwProcessId, start)
                })
                .collect());
        }
        Err(io::Error::other("the list kept growing"))
    })();
    // SAFETY: the session was started above.
    unsafe { RmEndSession(session) };
    result
}

/// The pids of the processes that have the file behind `file` open: the kernel's own list for
/// that file (`FileProcessIdsUsingFileInformation`), asked through our handle, so no path is
/// involved. `None` where it is not answered (Wine does not implement it).
fn pids_with_open(file: &File) -> Option<Vec<u32>> {
    // FILE_PROCESS_IDS_USING_FILE_INFORMATION: a ULONG count, then ULONG_PTR pids, aligned
    // as a ULONG_PTR array.
    let mut buf = vec![0usize; 64];
    for _ in 0..6 {
        // SAFETY: an all-zero IO_STATUS_BLOCK is a valid out-buffer.
        let mut iosb: IO_STATUS_BLOCK = unsafe { std::mem::zeroed() };
        let bytes = (buf.len() * std::mem::size_of::<usize>()) as u32;
        // SAFETY: the handle is open; `buf` is writable for `bytes` bytes.
        let status = unsafe {
            NtQueryInformationFile(
                file.as_raw_handle(),
                &mut iosb,
                buf.as_mut_ptr().cast(),
                bytes,
                FileProcessIdsUsingFileInformation,
            )
        };
        if status == INFO_LENGTH_MISMATCH {
            buf = vec![0usize; buf.len() * 4];
            continue;
        }
        if status != 0 {
            return None;
        }
        let count = (buf[0] & 0xffff_ffff).min(buf.len() - 1);
        return Some(buf[1..=count].iter().map(|&p| p as u32).collect());
    }
    None
}

/// Whether the Restart Manager lists process `pid`, started at `start`, among those that have
/// the file at `path` open - and `path` still names the file `id` afterwards (the Restart
/// Manager works by path). A list without anybody in it cannot be right (this process has the
/// file open while it asks): that Restart Manager proves nothing (Wine's is a stub).
fn holds_by_path(path: &Path, id: FileId, pid: u32, start: &str) -> Result<bool, String> {
    let open = processes_with_open(path)
        .map_err(|e| format!("the Restart Manager cannot tell who has the lock file open ({e})"))?;
    if open.is_empty() {
        return Err("neither the kernel nor the Restart Manager here says who has a file open (the Restart Manager lists nobody, not even this process, which has the lock file open), so the holder cannot be proven".to_owned());
    }
    let now = super::windows::id_at(path).map_err(|e| e.to_string())?;
    if now != Some(id) {
        return Err("the lock file changed while it was checked".to_owned());
    }
    Ok(open.iter().any(|p| p.0 == pid && p.1 == start))
}

/// One entry of SYSTEM_HANDLE_INFORMATION_EX (not in windows-sys).
#[repr(C)]
#[derive(Clone, Copy)]
struct HandleEntry {
    object: usize,
    pid: usize,
    handle: usize,
    access: u32,
    backtrace: u16,
    object_type: u16,
    attributes: u32,
    reserved: u32,
}

/// The system handle table: `(entries, count)`; `None` when it cannot be read.
fn handle_table() -> Option<(Vec<usize>, usize)> {
    let head = 2; // NumberOfHandles, Reserved (ULONG_PTRs), then the entries
    let mut buf = vec![0usize; 1 << 16];
    loop {
        let bytes = buf.len() * std::mem::size_of::<usize>();
        let mut needed = 0u32;
        // SAFETY: `buf` is writable for `bytes` bytes and aligned for the entries.
        let status = unsafe {
            NtQuerySystemInformation(
                EXTENDED_HANDLE_INFORMATION,
                buf.as_mut_ptr().cast(),
                u32::try_from(bytes).ok()?,
                &mut needed,
            )
        };
        if status == INFO_LENGTH_MISMATCH && bytes < HANDLE_TABLE_MAX {
            let want = (needed as usize).max(bytes * 2).min(HANDLE_TABLE_MAX);
            buf = vec![0usize; want.div_ceil(std::mem::size_of::<usize>()) + 1024];
            continue;
        }
        if status != 0 {
            return None;
        }
        let room =
            (bytes - head * std::mem::size_of::<usize>()) / std::mem::size_of::<HandleEntry>();
        return Some((buf, room));
    }
}

/// Whether process `pid` has a handle on the file `id`, from the system handle table; `None`
/// when the table cannot be read or does not list the caller's own handle on the file.
fn in_handle_table(file: &File, id: FileId, pid: u32) -> Option<bool> {
    let (buf, room) = handle_table()?;
    let count = buf[0].min(room);
    // SAFETY: the entries follow the two-word header, `count` of them within `buf`, and `buf`
    // is aligned for usize, which is the entries' alignment.
    let entries =
        unsafe { std::slice::from_raw_parts(buf.as_ptr().add(2).cast::<HandleEntry>(), count) };
    let me = std::process::id() as usize;
    let mine = file.as_raw_handle() as usize;
    let file_type = entries
        .iter()
        .find(|e| e.pid == me && e.handle == mine)?
        .object_type;
    // SAFETY: plain call; a null handle means failure.
    let source = unsafe { OpenProcess(PROCESS_DUP_HANDLE, 0, pid) };
    if source.is_null() {
        return None;
    }
    // SAFETY: just opened, owned by nothing else.
    let source = unsafe { OwnedHandle::from_raw_handle(source) };
    let candidates = entries.iter().filter(|e| {
        e.pid == pid as usize && e.object_type == file_type && e.access != SYNC_PIPE_ACCESS
    });
    for e in candidates {
        let mut dup: HANDLE = std::ptr::null_mut();
        // SAFETY: both process handles are valid; on success `dup` is a new handle we own.
        let ok = unsafe {
            DuplicateHandle(
                source.as_raw_handle(),
                e.handle as HANDLE,
                GetCurrentProcess(),
                &mut dup,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 || dup.is_null() {
            continue;
        }
        // SAFETY: just duplicated, owned by nothing else.
        let dup = unsafe { File::from_raw_handle(dup) };
        // SAFETY: the handle is open; GetFileType does not wait for I/O on a disk file.
        if unsafe { GetFileType(dup.as_raw_handle()) } != FILE_TYPE_DISK {
            continue;
        }
        if super::windows::id_of_file(&dup).ok() == Some(id) {
            return Some(true);
        }
    }
    Some(false)
}
