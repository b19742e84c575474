//! Windows primitives, with the same contract as `unix.rs`. CI runs them under Wine
//! (`scripts/windows-lane.sh`); see the README's platform section for what was verified where.
//!
//! Every handle to a lock file is opened with read, write *and delete* sharing: a file opened
//! without `FILE_SHARE_DELETE` cannot be renamed or deleted by anybody else, which would turn a
//! crashed-but-not-yet-closed holder, or a virus scanner, into a stuck lock.
//!
//! A record is rewritten in place under an exclusive byte-range lock, and read under a shared
//! one (see [`RangeLock`]): Windows cannot replace a file that anybody holds open (and the
//! holder always does), so the atomic exchange of the Linux path has no equivalent here.

use super::{parent_dir, FileId, FileKind, OwnedFile, PathError, ProcessState};
use crate::lease::OwnerIdentity;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use windows_sys::Wdk::System::SystemInformation::NtQuerySystemInformation;
use windows_sys::Win32::Foundation::{CloseHandle, FILETIME};
use windows_sys::Win32::Storage::FileSystem::{
    FileRenameInfo, GetFileInformationByHandle, LockFileEx, SetFileInformationByHandle,
    UnlockFileEx, BY_HANDLE_FILE_INFORMATION, DELETE, FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_RENAME_INFO, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNamePhysicalDnsHostname, GetComputerNameExW,
};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
/// `GetExitCodeProcess` answers this while the process runs.
const STILL_ACTIVE: u32 = 259;
/// ERROR_LOCK_VIOLATION: another handle holds a conflicting byte-range lock.
const ERROR_LOCK_VIOLATION: i32 = 33;
/// ERROR_DIRECTORY: "the directory name is invalid" - something that is not a directory.
const ERROR_DIRECTORY: i32 = 267;
/// How long a read or a rewrite waits for the other side's range lock. Both hold it for the
/// microseconds of one read or write, so this is only reached when the other process was
/// suspended in between; the caller then sees the error instead of a stall.
const RANGE_LOCK_WAIT: Duration = Duration::from_millis(200);
/// How long an append waits for other processes' appends to the same counter.
const APPEND_LOCK_WAIT: Duration = Duration::from_secs(2);

/// A byte-range lock over the whole file (any length), released on drop. The writer of a
/// record takes it exclusive for the write and the trim that follows; readers take it shared,
/// so a reader sees the old record or the new one, never new bytes followed by the tail of a
/// longer old record. On Windows the lock is mandatory: other programs' reads of the range fail
/// while a rewrite is under way instead of seeing a mix.
struct RangeLock<'a> {
    file: &'a File,
    /// Where the locked range starts (it runs to the largest offset).
    from: u64,
}

impl<'a> RangeLock<'a> {
    fn take(file: &'a File, exclusive: bool) -> io::Result<Self> {
        Self::take_from(file, 0, exclusive, RANGE_LOCK_WAIT)
    }

    /// The lock over `from..`, waiting at most `wait` for a conflicting one to go.
    fn take_from(file: &'a File, from: u64, exclusive: bool, wait: Duration) -> io::Result<Self> {
        let flags = LOCKFILE_FAIL_IMMEDIATELY
            | if exclusive {
                LOCKFILE_EXCLUSIVE_LOCK
            } else {
                0
            };
        // To the largest offset: a range whose end would pass 2^64 - 1 is refused.
        let span = u64::MAX - from;
        let deadline = Instant::now() + wait;
        let mut tries = 0u32;
        loop {
            // SAFETY: an all-zero OVERLAPPED (offset 0, no event) is valid for a synchronous
            // handle; the handle is open for the call.
            let ok = unsafe {
                let mut at: OVERLAPPED = std::mem::zeroed();
                at.Anonymous.Anonymous.Offset = from as u32;
                at.Anonymous.Anonymous.OffsetHigh = (from >> 32) as u32;
                LockFileEx(
                    file.as_raw_handle() as _,
                    flags,
                    0,
                    span as u32,
                    (span >> 32) as u32,
                    &mut at,
                )
            };
            if ok != 0 {
                return Ok(RangeLock { file, from });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(ERROR_LOCK_VIOLATION) || Instant::now() >= deadline {
                return Err(e);
            }
            tries += 1;
            if tries < 16 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl Drop for RangeLock<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `take`; unlocking the exact range that was locked.
        unsafe {
            let mut at: OVERLAPPED = std::mem::zeroed();
            at.Anonymous.Anonymous.Offset = self.from as u32;
            at.Anonymous.Anonymous.OffsetHigh = (self.from >> 32) as u32;
            let span = u64::MAX - self.from;
            UnlockFileEx(
                self.file.as_raw_handle() as _,
                0,
                span as u32,
                (span >> 32) as u32,
                &mut at,
            );
        }
    }
}

pub(super) fn kind_of(meta: &std::fs::Metadata) -> FileKind {
    let t = meta.file_type();
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_file() {
        FileKind::Regular
    } else {
        FileKind::Other
    }
}

fn handle_info(file: &File) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is a valid out-buffer.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for the duration of the call; info is writable.
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle() as _, &mut info) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

pub(super) fn id_of_file(file: &File) -> io::Result<FileId> {
    let info = handle_info(file)?;
    Ok(FileId {
        dev: info.dwVolumeSerialNumber as u64,
        ino: ((info.nFileIndexHigh as u64) << 32) | info.nFileIndexLow as u64,
    })
}

/// Opens without following a reparse point (symlink or junction).
fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// Opens a regular file for reading without following a reparse point: handle, metadata, id.
pub(super) fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata, FileId), PathError> {
    open_regular_with(path, false)
}

/// Opens a regular file for reading and for writing in place, without following a reparse
/// point: a renewal writes through the very handle whose content it verified.
pub(super) fn open_rewritable(path: &Path) -> Result<OwnedFile, PathError> {
    let (file, _, id) = open_regular_with(path, true)?;
    Ok(OwnedFile { file, id })
}

/// [`open_regular`], for writing too where `write`.
fn open_regular_with(
    path: &Path,
    write: bool,
) -> Result<(File, std::fs::Metadata, FileId), PathError> {
    let file = open_nofollow(path, write)?;
    let meta = file.metadata()?;
    let kind = kind_of(&meta);
    if kind != FileKind::Regular {
        return Err(PathError::NotRegular(kind));
    }
    let id = id_of_file(&file)?;
    Ok((file, meta, id))
}

/// Reads the record under a shared range lock, so never in the middle of a rewrite.
pub fn read_capped(file: &File, len_hint: u64) -> io::Result<(Vec<u8>, bool)> {
    let _shared = RangeLock::take(file, false)?;
    super::read_capped_with(len_hint, |buf, at| file.seek_read(buf, at))
}

impl OwnedFile {
    /// Rewrites the record in place under an exclusive range lock: write, then trim a longer
    /// old record, with no reader of this package (nor, Windows locks being mandatory, any
    /// other reader) in between.
    pub fn rewrite(&self, bytes: &[u8], old_len: usize) -> io::Result<()> {
        let _exclusive = RangeLock::take(&self.file, true)?;
        let mut at = 0;
        while at < bytes.len() {
            at += self.file.seek_write(&bytes[at..], at as u64)?;
        }
        if bytes.len() < old_len {
            self.file.set_len(bytes.len() as u64)?;
        }
        Ok(())
    }

    pub fn read_expecting(&self, _expected: usize) -> io::Result<Vec<u8>> {
        self.read()
    }

    pub fn read(&self) -> io::Result<Vec<u8>> {
        let len = self.file.metadata()?.len();
        let (bytes, oversized) = read_capped(&self.file, len)?;
        if oversized {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "lock file grew"));
        }
        Ok(bytes)
    }

    pub fn stat(&self) -> io::Result<(u64, u64)> {
        let info = handle_info(&self.file)?;
        let len = ((info.nFileSizeHigh as u64) << 32) | info.nFileSizeLow as u64;
        Ok((len, info.nNumberOfLinks as u64))
    }
}

/// The kind of file at `path`, without following a symlink.
pub(super) fn kind_at(path: &Path) -> std::io::Result<FileKind> {
    std::fs::symlink_metadata(path).map(|m| kind_of(&m))
}

/// Opens the regular file at `path` for appending (`FILE_APPEND_DATA`, no `FILE_WRITE_DATA`:
/// every write lands at the end) and reading, without following a reparse point: the handle,
/// its length and (Windows has none) zero permission bits.
pub(super) fn open_append(path: &Path) -> Result<(OwnedFile, u64, u32), PathError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = kind_of(&meta);
    if kind != FileKind::Regular {
        return Err(PathError::NotRegular(kind));
    }
    let id = id_of_file(&file)?;
    Ok((OwnedFile { file, id }, meta.len(), 0))
}

/// Appends one byte and answers where that write ended. Under an exclusive range lock, so that
/// the length read after the write is ours whatever Windows does with the handle's position on
/// an append: nobody else of this package appends in between (their appends wait for the lock).
/// The range starts at `keep` (the end of the counter's header, which is written once and read
/// without a lock); appenders hold it for one write, and wait for each other up to
/// `APPEND_LOCK_WAIT` (several processes appending at once is the normal case here).
pub fn append_one(file: &OwnedFile, keep: u64) -> io::Result<u64> {
    let _exclusive = RangeLock::take_from(&file.file, keep, true, APPEND_LOCK_WAIT)?;
    let mut f = &file.file;
    loop {
        match f.write(b".") {
            Ok(1) => break,
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(file.stat()?.0)
}

/// Reads up to `buf.len()` bytes at `at` (the counter's header, which no lock covers).
pub fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    file.seek_read(buf, at)
}

pub fn id_at(path: &Path) -> io::Result<Option<FileId>> {
    match open_nofollow(path, false) {
        Ok(f) => Ok(Some(id_of_file(&f)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_named(path: &Path, bytes: &[u8], mode: u32) -> io::Result<(PathBuf, OwnedFile)> {
    let _ = mode; // Windows has no permission bits to apply.
    let temp = super::private_name(path, "new");
    // DELETE access, so that `publish` can rename the file through this very handle.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .access_mode(FILE_GENERIC_READ | FILE_GENERIC_WRITE | DELETE)
        .create_new(true)
        .share_mode(SHARE_ALL)
        .open(&temp)?;
    if let Err(e) = file.write_all(bytes) {
        drop(file);
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    let id = id_of_file(&file)?;
    Ok((temp, OwnedFile { file, id }))
}

/// Publishes a complete file under `path`: written under a private name, then renamed through
/// its handle without replacing (which fails when the name exists), so no reader ever sees a
/// partial lock file. Not a hard link and an unlink, as on Unix: a name deleted while a handle
/// is open lingers on Windows without POSIX delete semantics (Wine, older Windows) until that
/// handle closes, so the holder's private name would stay beside the lock for as long as it
/// is held.
pub fn publish(path: &Path, bytes: &[u8], mode: u32) -> io::Result<OwnedFile> {
    let (temp, owned) = write_named(path, bytes, mode)?;
    match rename_no_replace(&owned.file, path) {
        Ok(()) => Ok(owned),
        Err(e) => {
            drop(owned);
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Gives the file behind `file` (opened with DELETE access) the name `to`; "already exists"
/// (ERROR_ALREADY_EXISTS) when something has that name.
fn rename_no_replace(file: &File, to: &Path) -> io::Result<()> {
    let to = std::path::absolute(to)?;
    let name: Vec<u16> = to.as_os_str().encode_wide().collect();
    let head = std::mem::offset_of!(FILE_RENAME_INFO, FileName);
    // The name follows the header in one buffer, with a terminating NUL; u64s for alignment.
    let size = head + (name.len() + 1) * 2;
    let mut buf = vec![0u64; size.div_ceil(8)];
    let info = buf.as_mut_ptr().cast::<FILE_RENAME_INFO>();
    let len = u32::try_from(name.len() * 2).map_err(|_| io::Error::from_raw_os_error(206))?;
    // SAFETY: `buf` is zeroed (ReplaceIfExists false, no root directory), aligned for the
    // header and long enough for it plus the name; the handle is open for the call.
    let ok = unsafe {
        (*info).FileNameLength = len;
        let dst = std::ptr::addr_of_mut!((*info).FileName).cast::<u16>();
        std::ptr::copy_nonoverlapping(name.as_ptr(), dst, name.len());
        SetFileInformationByHandle(
            file.as_raw_handle() as _,
            FileRenameInfo,
            info.cast(),
            size as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn write_private(path: &Path, bytes: &[u8], mode: u32) -> io::Result<(PathBuf, OwnedFile)> {
    write_named(path, bytes, mode)
}

/// Windows has no atomic exchange of two names; callers fall back to rename-and-verify.
pub fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Creates the missing parent directories. A regular file where a directory should be makes
/// `create_dir_all` answer "already exists", which would read as a lock file that exists; it
/// is reported as ERROR_DIRECTORY (`ENOTDIR`), as on Unix.
pub fn create_parents(path: &Path, _mode: u32) -> io::Result<()> {
    match std::fs::create_dir_all(parent_dir(path)) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(io::Error::from_raw_os_error(ERROR_DIRECTORY))
        }
        other => other,
    }
}

/// Windows has no boot clock shared between processes that we rely on; staleness uses the
/// wall clock, as the Go package does.
pub fn boot_nanos() -> Option<u64> {
    None
}

/// Host, boot and start time. The boot token is the kernel's boot moment
/// (`NtQuerySystemInformation(SystemTimeOfDayInformation)`, 100 ns units): every process of
/// one boot reads the same value, to the tick. Windows moves it when the clock is set, so two
/// processes on either side of a clock change disagree, and then the only effect is that a dead
/// owner is not proven dead and its lease must go stale first - the safe side. Without it there
/// is no identity, and every holder is judged by its lease's age.
pub fn this_process() -> Option<OwnerIdentity> {
    let start = match probe(std::process::id() as i64) {
        ProcessState::Running { start } => start,
        _ => return None,
    };
    Some(OwnerIdentity {
        hostname: hostname(),
        boot_id: format!("boot-{}", boot_time()?),
        pid_namespace: String::new(),
        process_start: start,
        time_namespace: Some(String::new()),
    })
}

/// The kernel's boot moment (FILETIME units), the first field of SYSTEM_TIMEOFDAY_INFORMATION.
/// A boot moment computed here as "wall clock minus uptime" would not do: the two readings are
/// not taken at once, so processes of one boot get values a tick apart, and any rounding of
/// them has a boundary some pairs fall on either side of.
fn boot_time() -> Option<i64> {
    /// SystemTimeOfDayInformation; the structure is 48 bytes (BootTime, CurrentTime,
    /// TimeZoneBias, TimeZoneId, Reserved, BootTimeBias, SleepTimeBias).
    const TIME_OF_DAY: i32 = 3;
    let mut info = [0i64; 6];
    let mut len = 0u32;
    // SAFETY: `info` is writable for the 48 bytes passed; `len` is a valid out-pointer.
    let status = unsafe {
        NtQuerySystemInformation(
            TIME_OF_DAY,
            info.as_mut_ptr().cast(),
            std::mem::size_of_val(&info) as u32,
            &mut len,
        )
    };
    (status == 0 && info[0] > 0).then_some(info[0])
}

/// The DNS host name, as Node's `os.hostname()` and Go's `os.Hostname()` give it - not the
/// `COMPUTERNAME` variable, which is upper-cased NetBIOS and which a child started with its
/// own environment may lack. `COMPUTERNAME` only if the call fails.
pub fn hostname() -> String {
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: buf holds `len` u16s; on success `len` is the number written, without the NUL.
    let ok =
        unsafe { GetComputerNameExW(ComputerNamePhysicalDnsHostname, buf.as_mut_ptr(), &mut len) };
    if ok != 0 && (len as usize) <= buf.len() {
        return String::from_utf16_lossy(&buf[..len as usize]);
    }
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

/// `OpenProcess` + `GetProcessTimes`: the creation time tells a reused pid from the owner, and
/// an exit code other than STILL_ACTIVE means the process has ended (its handle may linger).
/// Access denied (a process of another user) is `Unknown`: alive, as far as we can tell.
pub fn probe(pid: i64) -> ProcessState {
    if pid <= 0 || pid > u32::MAX as i64 {
        return ProcessState::Unknown;
    }
    // SAFETY: plain Win32 call; a null handle means failure.
    let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid as u32) };
    if h.is_null() {
        // ERROR_INVALID_PARAMETER: no such process.
        return match io::Error::last_os_error().raw_os_error() {
            Some(87) => ProcessState::Gone,
            _ => ProcessState::Unknown,
        };
    }
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    let mut code: u32 = 0;
    // SAFETY: h is a valid process handle until CloseHandle; the out-pointers are valid.
    let (times_ok, code_ok) = unsafe {
        let t = GetProcessTimes(h, &mut created, &mut exited, &mut kernel, &mut user);
        let c = GetExitCodeProcess(h, &mut code);
        CloseHandle(h);
        (t != 0, c != 0)
    };
    if code_ok && code != STILL_ACTIVE {
        return ProcessState::Gone;
    }
    if !times_ok {
        return ProcessState::Unknown;
    }
    let start = ((created.dwHighDateTime as u64) << 32) | created.dwLowDateTime as u64;
    ProcessState::Running {
        start: start.to_string(),
    }
}

/// Errors on creating the lock name that mean "somebody is in the middle of something" rather
/// than a real failure: a file that is delete-pending, or held open without delete sharing by
/// a scanner, answers access denied or a sharing violation. They are retried as contention.
pub fn is_transient_create_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(5) | Some(32) | Some(33))
}

/// Node-style error code names for Windows system error codes.
pub fn errno_name(code: i32) -> String {
    match code {
        2 | 3 => "ENOENT",
        4 => "EMFILE",
        5 => "EACCES",
        19 => "EROFS",
        32 | 33 => "EBUSY",
        80 | 183 => "EEXIST",
        112 => "ENOSPC",
        123 => "EINVAL",
        206 => "ENAMETOOLONG",
        267 => "ENOTDIR",
        _ => return format!("E{code}"),
    }
    .to_string()
}

/// Runs `f` when the process exits normally (`exit()`), not on a kill.
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: registering a plain function pointer with the C runtime.
    unsafe {
        libc::atexit(f);
    }
}

/// Renames `from` to `to` (the Unix side turns names in a held directory into `renameat`).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)
}

/// Removes the file `path`.
pub fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}
