//! Windows: one watched directory's handle and its overlapped `ReadDirectoryChangesW` read,
//! for `windows.rs`, which owns every [`DirRead`] in its registry and makes every read from
//! its one thread.
//!
//! While a read is pending the kernel holds the address of its `OVERLAPPED` and buffer, so
//! they are boxed, and a `DirRead` that is dropped first cancels its read and waits for it to
//! end - and leaks the buffer rather than free it if the read does not end within a second.

use super::{DirId, Unwatched};
use std::fs::{File, OpenOptions};
use std::mem::ManuallyDrop;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_IO_INCOMPLETE, ERROR_NOTIFY_ENUM_DIR, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetFileInformationByHandle, ReadDirectoryChangesW, BY_HANDLE_FILE_INFORMATION,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OVERLAPPED, FILE_LIST_DIRECTORY,
    FILE_NOTIFY_CHANGE_FILE_NAME,
};
use windows_sys::Win32::System::Threading::{CreateEventW, ResetEvent, WaitForSingleObject};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};

/// Read, write and delete sharing: our handle never stands in anybody's way.
const SHARE_ALL: u32 = 7;
/// One read's buffer, in 32-bit words (the records are DWORD-aligned): 16 KiB.
const BUF_WORDS: usize = 4096;
/// How long a dropped read may take to end before its buffer is leaked instead.
const CANCEL_WAIT_MS: u32 = 1000;

pub(super) fn refusal(e: std::io::Error) -> Unwatched {
    Unwatched::Refused(match e.raw_os_error() {
        Some(code) => crate::sys::errno_name(code),
        None => e.to_string(),
    })
}

pub(super) fn last_error() -> u32 {
    // SAFETY: reads the calling thread's last-error value.
    unsafe { GetLastError() }
}

/// A new unnamed event, not signalled.
pub(super) fn new_event(manual_reset: bool) -> Result<OwnedHandle, Unwatched> {
    // SAFETY: default security, no name; checked for null before it is owned.
    let h = unsafe { CreateEventW(std::ptr::null(), manual_reset.into(), 0, std::ptr::null()) };
    if h.is_null() {
        return Err(refusal(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh handle nobody else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

/// The identity of the directory at `dir` (volume serial number and file index).
pub(super) fn dir_id(dir: &Path) -> std::io::Result<DirId> {
    let f = OpenOptions::new()
        .access_mode(0)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(dir)?;
    id_of(&f)
}

fn id_of(f: &File) -> std::io::Result<DirId> {
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is a valid out-buffer; the handle is open.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { GetFileInformationByHandle(f.as_raw_handle() as HANDLE, &mut info) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(DirId {
        dev: info.dwVolumeSerialNumber as u64,
        ino: ((info.nFileIndexHigh as u64) << 32) | info.nFileIndexLow as u64,
    })
}

/// What the kernel writes into while a read is pending.
struct Io {
    ov: OVERLAPPED,
    buf: [u32; BUF_WORDS],
    /// Manual-reset event signalled when the read ends (`ov.hEvent`).
    event: OwnedHandle,
}

/// A watched directory's handle and its read.
pub(super) struct DirRead {
    handle: OwnedHandle,
    /// Boxed: the kernel holds its address while a read is pending. Freed by `drop` only once
    /// no read is pending.
    io: ManuallyDrop<Box<Io>>,
    pending: bool,
}

// SAFETY: the raw handle in `io.ov` is our own event; a `DirRead` is only used by one thread
// at a time (under the registry mutex, or by the watch thread after taking it out).
unsafe impl Send for DirRead {}

/// What a read brought.
pub(super) enum Read {
    Pending,
    /// This many bytes of records in the buffer (see [`DirRead::names`]).
    Names(usize),
    /// More changes than fit: every waiter of the directory must look.
    Overflow,
    /// The handle fails (the directory was removed): every waiter must look, and re-watch.
    Gone,
}

impl DirRead {
    /// Opens `dir` for change reads (no read yet) and tells its identity.
    pub(super) fn open(dir: &Path) -> Result<(DirRead, DirId), Unwatched> {
        let file = OpenOptions::new()
            .access_mode(FILE_LIST_DIRECTORY)
            .share_mode(SHARE_ALL)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OVERLAPPED)
            .open(dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Unwatched::Missing,
                _ => refusal(e),
            })?;
        let id = id_of(&file).map_err(refusal)?;
        let io = Box::new(Io {
            ov: OVERLAPPED::default(),
            buf: [0; BUF_WORDS],
            event: new_event(true)?,
        });
        let read = DirRead {
            handle: OwnedHandle::from(file),
            io: ManuallyDrop::new(io),
            pending: false,
        };
        Ok((read, id))
    }

    /// Starts the next read. Changes made since the last one are kept by the system and
    /// returned by this one.
    pub(super) fn start(&mut self) -> std::io::Result<()> {
        let event = self.event();
        // SAFETY: our event handle.
        unsafe { ResetEvent(event) };
        self.io.ov = OVERLAPPED {
            hEvent: event,
            ..OVERLAPPED::default()
        };
        // SAFETY: a directory handle opened for overlapped listing; `io` is boxed and stays
        // allocated until the read is over (see Drop).
        let ok = unsafe {
            ReadDirectoryChangesW(
                self.handle.as_raw_handle() as HANDLE,
                self.io.buf.as_mut_ptr().cast(),
                (BUF_WORDS * 4) as u32,
                0,
                FILE_NOTIFY_CHANGE_FILE_NAME,
                std::ptr::null_mut(),
                &mut self.io.ov,
                None,
            )
        };
        self.pending = ok != 0;
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn is_pending(&self) -> bool {
        self.pending
    }

    /// Signalled when the read ends.
    pub(super) fn event(&self) -> HANDLE {
        self.io.event.as_raw_handle() as HANDLE
    }

    /// How the read went, without waiting; anything but `Pending` ends it.
    pub(super) fn result(&mut self) -> Read {
        if !self.pending {
            return Read::Gone;
        }
        let mut n = 0u32;
        let h = self.handle.as_raw_handle() as HANDLE;
        // SAFETY: our handle and its read's OVERLAPPED; no waiting.
        let ok = unsafe { GetOverlappedResult(h, &self.io.ov, &mut n, 0) };
        let read = match (ok != 0, n) {
            (true, 0) => Read::Overflow,
            (true, n) => Read::Names(n as usize),
            (false, _) => match last_error() {
                ERROR_IO_INCOMPLETE => Read::Pending,
                ERROR_NOTIFY_ENUM_DIR => Read::Overflow,
                _ => Read::Gone,
            },
        };
        if !matches!(read, Read::Pending) {
            self.pending = false;
        }
        read
    }

    /// The names (lower case) in the first `len` bytes of the buffer: a chain of
    /// `FILE_NOTIFY_INFORMATION` records (next-entry offset, action, name length in bytes,
    /// then the name in UTF-16), each checked against the buffer's end.
    pub(super) fn names(&self, len: usize) -> Vec<String> {
        let bytes: Vec<u8> = self.io.buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let bytes = &bytes[..len.min(bytes.len())];
        let word = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let mut names = Vec::new();
        let mut at = 0usize;
        while let (Some(next), Some(name_len)) = (word(at), word(at + 8)) {
            let start = at + 12;
            let Some(raw) = bytes.get(start..start + name_len as usize) else {
                break;
            };
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]))
                .collect();
            names.push(String::from_utf16_lossy(&units).to_lowercase());
            if next == 0 {
                break;
            }
            at += next as usize;
        }
        names
    }
}

impl Drop for DirRead {
    /// Cancels a pending read and waits for it to end before the buffer is freed (the handle
    /// closes after this body). A read that does not end in time keeps its buffer, leaked.
    fn drop(&mut self) {
        if self.pending {
            // SAFETY: our handle and the OVERLAPPED of its read.
            unsafe { CancelIoEx(self.handle.as_raw_handle() as HANDLE, &self.io.ov) };
            // SAFETY: our event handle, signalled when the read ends.
            let r = unsafe { WaitForSingleObject(self.event(), CANCEL_WAIT_MS) };
            if r != WAIT_OBJECT_0 {
                return;
            }
        }
        // SAFETY: no read is pending, so nothing else refers to the buffer; dropped once.
        unsafe { ManuallyDrop::drop(&mut self.io) };
    }
}
