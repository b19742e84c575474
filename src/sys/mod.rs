//! File and process primitives, with every platform decision in this folder.
//!
//! The engine only uses what is exported here: a snapshot of whatever is at the lock path,
//! publishing a complete file under the lock name, the atomic exchange of two names, and
//! probes of the current and another process. `unix.rs` is the tested implementation (Linux;
//! macOS compiles the same code with the Linux-only parts replaced by portable fallbacks);
//! `windows.rs` keeps the same contract with Win32 calls.

use std::path::Path;
use std::time::SystemTime;

pub mod fskind;
#[cfg(target_os = "macos")]
pub mod holder_macos;
#[cfg(windows)]
pub mod holder_windows;
#[cfg(windows)]
mod holder_windows_open;
pub mod pidfd;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(unix)]
pub use unix::*;
#[cfg(unix)]
mod unix_process;
#[cfg(unix)]
pub use unix_process::*;

#[cfg(unix)]
mod resolve;
#[cfg(unix)]
pub use resolve::{
    describe_owner, open_lock_dir, owner_at, sticky_owner, LockDir, ResolveError, Untrusted,
};
#[cfg(windows)]
pub use win_dir::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;
#[cfg(windows)]
pub use windows::*;

/// Lock files are tiny (a Go lease is ~110 bytes, ours with 4 KiB of metadata ~5 KiB). Nothing
/// reads more than this from a lock path, whatever is there.
pub const READ_CAP: usize = 16 * 1024;
/// How much of the start of a file a snapshot keeps to show in messages.
pub const HEAD_BYTES: usize = 48;

/// Reads at most [`READ_CAP`] bytes from offset 0 through `read_at`; `(bytes, oversized)`.
/// A file longer than the cap is never read at all (a lease is never that long).
pub(crate) fn read_capped_with(
    len_hint: u64,
    mut read_at: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> std::io::Result<(Vec<u8>, bool)> {
    if len_hint > READ_CAP as u64 {
        return Ok((Vec::new(), true));
    }
    let mut buf = vec![0u8; READ_CAP + 1];
    let mut n = 0;
    while n < buf.len() {
        match read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if n > READ_CAP {
        return Ok((Vec::new(), true));
    }
    buf.truncate(n);
    Ok((buf, false))
}

/// The identity of a file, valid while somebody holds it open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A lock file this process created and keeps open while it holds the lock. Heartbeats write
/// through this handle, never through the path, so they cannot touch somebody else's file.
/// Its methods are per platform (`unix.rs`, `windows.rs`).
#[derive(Debug)]
pub struct OwnedFile {
    pub file: std::fs::File,
    pub id: FileId,
}

/// What was at the lock path when it was read: enough to judge it and to recognise it later.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: FileId,
    /// At most [`READ_CAP`] bytes; a longer file is never a valid lease.
    pub bytes: Vec<u8>,
    pub oversized: bool,
    /// The file's length, and its first [`HEAD_BYTES`] bytes (read even when oversized), to
    /// show what a file that is not a lease holds.
    pub len: u64,
    pub head: Vec<u8>,
    /// The file itself, kept open while the snapshot lives: its inode cannot be freed and
    /// reused meanwhile, so a file found later with the same id is this very file.
    pub judged: std::sync::Arc<std::fs::File>,
    pub modified: SystemTime,
}

/// Why a lock path could not be read as a lock file.
#[derive(Debug)]
pub enum PathError {
    /// Something other than a regular file is there; it was not opened or followed.
    NotRegular(FileKind),
    Io(std::io::Error),
}

impl From<std::io::Error> for PathError {
    fn from(e: std::io::Error) -> Self {
        PathError::Io(e)
    }
}

/// What a probe of another process found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessState {
    /// No process with that pid, or a zombie: the owner is gone.
    Gone,
    /// A live process; `start` is its start time in the unit `OwnerIdentity::process_start` uses.
    Running { start: String },
    /// Could not tell (no permission, no `/proc`, an unsupported platform).
    Unknown,
}

/// What kind of thing is at a lock path; anything but a regular file is refused, untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Symlink,
    Directory,
    Fifo,
    Socket,
    Device,
    Other,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Symlink => "a symbolic link",
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::Device => "a device",
            FileKind::Regular => "a regular file",
            FileKind::Other => "not a regular file",
        })
    }
}

/// Reads what is at `path` without following a symlink and without opening anything that is
/// not a regular file (opening a device or a FIFO can block or have side effects). `None` when
/// nothing is there.
pub fn snapshot(path: &Path) -> Result<Option<Snapshot>, PathError> {
    let before = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let kind = platform::kind_of(&before);
    if kind != FileKind::Regular {
        return Err(PathError::NotRegular(kind));
    }
    let (file, meta, id) = match platform::open_regular(path) {
        Ok(found) => found,
        Err(PathError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (bytes, oversized) = read_capped(&file, meta.len())?;
    let head = if oversized {
        use std::io::Read;
        let mut head = Vec::with_capacity(HEAD_BYTES);
        (&file).take(HEAD_BYTES as u64).read_to_end(&mut head)?;
        head
    } else {
        bytes[..bytes.len().min(HEAD_BYTES)].to_vec()
    };
    Ok(Some(Snapshot {
        id,
        bytes,
        oversized,
        modified: meta.modified()?,
        len: meta.len(),
        head,
        judged: std::sync::Arc::new(file),
    }))
}

/// Opens the file at `path` for appending, refusing anything but a regular file untouched (a
/// symlink is not followed, and nothing else is even opened): the handle, the file's length
/// and its permission bits (zero on Windows). `None` when nothing is there.
pub fn open_appendable(path: &Path) -> Result<Option<(OwnedFile, u64, u32)>, PathError> {
    open_if_regular(path, platform::open_append)
}

/// Opens the regular file at `path` for reading and rewriting in place, refusing anything but
/// a regular file untouched (a symlink is not followed, and nothing else is even opened).
/// `None` when nothing is there.
pub fn open_rewritable(path: &Path) -> Result<Option<OwnedFile>, PathError> {
    open_if_regular(path, platform::open_rewritable)
}

/// `open` applied to `path` only when it is a regular file (a symlink is not followed, and
/// nothing else is even opened); `None` when nothing is there, before or during the open.
fn open_if_regular<T>(
    path: &Path,
    open: impl FnOnce(&Path) -> Result<T, PathError>,
) -> Result<Option<T>, PathError> {
    let kind = match platform::kind_at(path) {
        Ok(kind) => kind,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if kind != FileKind::Regular {
        return Err(PathError::NotRegular(kind));
    }
    match open(path) {
        Ok(found) => Ok(Some(found)),
        Err(PathError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Publishes a complete file under `path`. On Unix the lock's directory was opened, and
/// created where missing, by the resolver through its checks (`resolve.rs`): a directory
/// missing now is an error, never created again by path - that would walk the user's path
/// anew, through whatever link was swapped into it meanwhile. Windows, whose lock directory is
/// its path as given, creates missing parent directories once.
pub fn publish_creating_parents(
    path: &Path,
    bytes: &[u8],
    file_mode: u32,
    dir_mode: u32,
) -> std::io::Result<OwnedFile> {
    #[cfg(unix)]
    {
        let _ = dir_mode;
        publish(path, bytes, file_mode)
    }
    #[cfg(windows)]
    match publish(path, bytes, file_mode) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_parents(path, dir_mode)?;
            publish(path, bytes, file_mode)
        }
        other => other,
    }
}

/// Opens a file we just moved to a private name, refusing anything but a regular file.
pub fn open_private(path: &Path) -> Result<(std::fs::File, FileId), PathError> {
    let (file, _, id) = platform::open_regular(path)?;
    Ok((file, id))
}

/// The directory a lock path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Lock names up to this many bytes appear whole in helper names; a longer one is cut and
/// tagged with a hash (see [`helper_stem`]), so every helper name stays well inside the 255
/// bytes filesystems allow whatever the lock name.
const HELPER_STEM_MAX: usize = 160;

/// The lock's file name as helper names carry it: whole when short, else its first bytes and a
/// hash of all of it (FNV-1a, the same in every process, so contenders agree on the name of the
/// takeover claim).
fn helper_stem(path: &Path) -> std::borrow::Cow<'_, str> {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    if name.len() <= HELPER_STEM_MAX {
        return name;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut cut = HELPER_STEM_MAX - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{hash:016x}", &name[..cut]).into()
}

/// A fixed hidden name beside `path` for a helper file of that lock: `.<name>.<tag>`.
pub fn sibling(path: &Path, tag: &str) -> std::path::PathBuf {
    path.with_file_name(format!(".{}.{tag}", helper_stem(path)))
}

/// A private name beside `path` for a file in transit (takeover, release, publish fallback).
/// Unique per process and call, and it starts with a dot so directory listings stay tidy.
pub fn private_name(path: &Path, tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    path.with_file_name(format!(
        ".{}.{tag}.{}.{n}.{nonce:x}",
        helper_stem(path),
        std::process::id()
    ))
}

/// The descriptor of an open lock file as a number, for [`close_at_exit`]; -1 where there is
/// no such thing to close that way (Windows).
pub fn raw_descriptor(file: &OwnedFile) -> i64 {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        file.file.as_raw_fd() as i64
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        -1
    }
}

/// Closes a lock file's descriptor that a thread stuck on a hung mount still owns, as the
/// process exits. Without this the kernel closes it while the process ends, and on a hung
/// network or FUSE mount that close (FUSE flush, NFS write-back) waits for the server with no
/// signal left to interrupt it: the exit never completes. Closed here, from a helper thread
/// that the exit then kills, the wait is interrupted instead.
///
/// # Safety
/// Only at process exit, with `raw` from [`raw_descriptor`] of a file that is still open: the
/// owner's later close (which never comes, the process is ending) would close the number again.
pub unsafe fn close_at_exit(raw: i64) {
    #[cfg(unix)]
    if raw >= 0 {
        // SAFETY: as the caller promises.
        unsafe {
            libc::close(raw as i32);
        }
    }
    #[cfg(not(unix))]
    let _ = raw;
}

/// Whether a descriptor number is still open in this process (`close_at_exit` removes it from
/// the table at once, before the close waits for the filesystem).
pub fn descriptor_is_open(raw: i64) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: F_GETFD only reads the descriptor table.
        raw >= 0 && unsafe { libc::fcntl(raw as i32, libc::F_GETFD) } != -1
    }
    #[cfg(not(unix))]
    {
        let _ = raw;
        false
    }
}

/// Windows has no symlink owners, sticky bits or directory descriptors to hold in this sense:
/// the lock's directory is used by its path, as given.
#[cfg(windows)]
mod win_dir {
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Untrusted {}

    impl Untrusted {
        pub fn path(&self) -> &Path {
            match *self {}
        }
        pub fn owner(&self) -> u32 {
            match *self {}
        }
    }

    impl std::fmt::Display for Untrusted {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match *self {}
        }
    }

    #[derive(Debug)]
    pub enum ResolveError {
        Untrusted(Untrusted),
        Io(std::io::Error, PathBuf),
    }

    #[derive(Debug)]
    pub struct LockDir {
        path: PathBuf,
    }

    impl LockDir {
        pub fn join(&self, name: &OsStr) -> PathBuf {
            self.path.join(name)
        }
        pub fn physical(&self) -> &Path {
            &self.path
        }
        pub fn is_removed(&self) -> bool {
            !self.path.is_dir()
        }
        pub fn relative<'a>(&self, p: &'a Path) -> Option<&'a Path> {
            p.strip_prefix(&self.path).ok()
        }
    }

    pub fn open_lock_dir(
        dir: &Path,
        create: Option<u32>,
        _trust_others: bool,
    ) -> Result<LockDir, ResolveError> {
        if create.is_some() {
            std::fs::create_dir_all(dir).map_err(|e| ResolveError::Io(e, dir.to_path_buf()))?;
        } else if !dir.is_dir() {
            let e = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(ResolveError::Io(e, dir.to_path_buf()));
        }
        Ok(LockDir {
            path: dir.to_path_buf(),
        })
    }

    pub fn describe_owner(uid: u32) -> String {
        format!("uid {uid}")
    }

    pub fn sticky_owner(_dir: &LockDir, _name: &OsStr) -> Option<u32> {
        None
    }

    pub fn owner_at(_path: &Path) -> Option<u32> {
        None
    }
}
