//! Unix primitives. Linux is the tested platform; the Linux-only calls (`O_TMPFILE`,
//! `renameat2`, `/proc`) each have a portable fallback that macOS and the BSDs use.

use super::{parent_dir, FileId, FileKind, OwnedFile, PathError};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

pub(super) fn kind_of(meta: &std::fs::Metadata) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        FileKind::Regular
    } else if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_fifo() {
        FileKind::Fifo
    } else if t.is_socket() {
        FileKind::Socket
    } else if t.is_block_device() || t.is_char_device() {
        FileKind::Device
    } else {
        FileKind::Other
    }
}

fn id_of(meta: &std::fs::Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// Opens a regular file for reading without following a symlink: its handle, metadata and id.
/// A symlink swapped in after the caller's `lstat` answers ELOOP here, reported as such.
pub(super) fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata, FileId), PathError> {
    regular(open_nofollow(path, false))
}

/// A file opened without following a final symlink (`ELOOP` means there was one), kept only if
/// it is a regular file.
fn regular(opened: io::Result<File>) -> Result<(File, std::fs::Metadata, FileId), PathError> {
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(PathError::NotRegular(FileKind::Symlink))
        }
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    let kind = kind_of(&meta);
    if kind != FileKind::Regular {
        return Err(PathError::NotRegular(kind));
    }
    let id = id_of(&meta);
    Ok((file, meta, id))
}

/// Opens a regular file for reading and for writing in place (not appending), without
/// following a symlink: a renewal writes through the very handle whose content it verified.
pub(super) fn open_rewritable(path: &Path) -> Result<OwnedFile, PathError> {
    let (file, _, id) = regular(open_nofollow(path, true))?;
    Ok(OwnedFile { file, id })
}

/// Reads at most `READ_CAP` bytes from the start of an open lock file.
pub fn read_capped(file: &File, len_hint: u64) -> io::Result<(Vec<u8>, bool)> {
    super::read_capped_with(len_hint, |buf, at| file.read_at(buf, at))
}

fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

impl OwnedFile {
    /// Rewrites the record in place. Heartbeats keep the length, so readers never see an
    /// empty or shortened file; a different length (new metadata without an atomic exchange)
    /// is written first and trimmed after.
    pub fn rewrite(&self, bytes: &[u8], old_len: usize) -> io::Result<()> {
        self.file.write_all_at(bytes, 0)?;
        if bytes.len() < old_len {
            self.file.set_len(bytes.len() as u64)?;
        }
        Ok(())
    }

    /// Reads the file expecting about `expected` bytes: one `pread` in the usual case where it
    /// is unchanged (every heartbeat does this), a full capped read otherwise.
    pub fn read_expecting(&self, expected: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; expected + 1];
        let n = loop {
            match self.file.read_at(&mut buf, 0) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n <= expected {
            buf.truncate(n);
            return Ok(buf);
        }
        self.read()
    }

    pub fn read(&self) -> io::Result<Vec<u8>> {
        // No fstat first: this runs on every heartbeat, and the read itself tells the length.
        let (bytes, oversized) = read_capped(&self.file, 0)?;
        if oversized {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "lock file grew"));
        }
        Ok(bytes)
    }

    /// The file's length and number of names, through the handle.
    pub fn stat(&self) -> io::Result<(u64, u64)> {
        use std::os::fd::AsRawFd;
        // A plain fstat: every heartbeat makes this call, and it needs nothing `statx` adds.
        // SAFETY: `st` is plain data filled by the call, on a descriptor we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(self.file.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(clippy::unnecessary_cast)] // off_t and nlink_t differ per target
        Ok((st.st_size as u64, st.st_nlink as u64))
    }
}

/// Opens the regular file at `path` for appending (and reading), without following a symlink:
/// the handle, its length and its permission bits. The caller has seen a regular file there; a
/// symlink swapped in since answers ELOOP, anything else swapped in is refused after the open
/// (`O_NONBLOCK`, `O_NOCTTY`: opening a FIFO or a terminal neither waits nor adopts it).
pub(super) fn open_append(path: &Path) -> Result<(OwnedFile, u64, u32), PathError> {
    let (file, meta, id) = regular(open_appending(path))?;
    Ok((OwnedFile { file, id }, meta.len(), meta.mode()))
}

/// `open` for reading and appending, without following a symlink or waiting on a FIFO:
/// `openat` for a name in a held directory (see `at_args`).
fn open_appending(path: &Path) -> io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    #[cfg(target_os = "linux")]
    if let Some((dir, name)) = at_args(path) {
        use std::os::fd::FromRawFd;
        let fd = loop {
            // SAFETY: a NUL-terminated name that outlives the call.
            let fd =
                unsafe { libc::openat(dir, name.as_ptr(), libc::O_RDWR | libc::O_APPEND | flags) };
            let e = io::Error::last_os_error();
            if fd >= 0 || e.kind() != io::ErrorKind::Interrupted {
                break if fd >= 0 { Ok(fd) } else { Err(e) };
            }
        }?;
        // SAFETY: just opened, owned by nobody else.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
    OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(flags)
        .open(path)
}

/// The kind of file at `path`, without following a symlink: `fstatat` for a name in a held
/// directory (see `at_args`).
pub(super) fn kind_at(path: &Path) -> io::Result<FileKind> {
    #[cfg(target_os = "linux")]
    if let Some((dir, name)) = at_args(path) {
        // SAFETY: `st` is plain data filled by the call; `name` outlives it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::Regular,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFDIR => FileKind::Directory,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFBLK | libc::S_IFCHR => FileKind::Device,
            _ => FileKind::Other,
        });
    }
    std::fs::symlink_metadata(path).map(|m| kind_of(&m))
}

/// Appends one byte to a file opened for appending and answers where that write ended: the
/// offset of the handle right after it, which is ours alone - `O_APPEND` moves it to the end and
/// writes in one step under the inode's lock, and nobody else shares this open file
/// description. (A later `fstat` could already count somebody else's byte.) `_keep`: the bytes
/// at the start that appends never touch (Windows leaves them out of its range lock).
pub fn append_one(file: &OwnedFile, _keep: u64) -> io::Result<u64> {
    use std::io::Seek;
    let mut f = &file.file;
    loop {
        match f.write(b".") {
            Ok(1) => break,
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    f.stream_position()
}

/// Reads up to `buf.len()` bytes at `at` (one `pread`).
pub fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, at) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// The id of what is at `path` now, without following a symlink; `None` when nothing is.
pub fn id_at(path: &Path) -> io::Result<Option<FileId>> {
    #[cfg(target_os = "linux")]
    if let Some((dir, name)) = at_args(path) {
        // SAFETY: `st` is plain data filled by the call; `name` outlives it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if rc == 0 {
            #[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 on every target
            return Ok(Some(FileId {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
            }));
        }
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::NotFound {
            Ok(None)
        } else {
            Err(e)
        };
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(id_of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A new file holding the complete record, not yet under the lock name.
struct Unpublished {
    owned: OwnedFile,
    /// `None` for an anonymous `O_TMPFILE`, else the private temp name.
    temp: Option<std::path::PathBuf>,
}

/// Writes `bytes` to a new file that has no name yet, or a private one, ready to be published.
fn write_new(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    named: bool,
) -> io::Result<Unpublished> {
    #[cfg(target_os = "linux")]
    if !named {
        // An anonymous file: nobody can see it before it is complete, and a crash leaves
        // nothing behind.
        match open_anonymous(dir, mode) {
            Ok(mut file) => {
                file.write_all(bytes)?;
                let id = id_of(&file.metadata()?);
                return Ok(Unpublished {
                    owned: OwnedFile { file, id },
                    temp: None,
                });
            }
            // Filesystems without O_TMPFILE answer EOPNOTSUPP or EISDIR; others are real.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = (dir, named);
    let temp = super::private_name(path, "new");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)?;
    if let Err(e) = file.write_all(bytes) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    let id = id_of(&file.metadata()?);
    Ok(Unpublished {
        owned: OwnedFile { file, id },
        temp: Some(temp),
    })
}

/// Publishes a complete lock file under `path` if nothing is there: the file is written in
/// full first and then given the lock name with `link(2)`, which fails with `EEXIST` when the
/// name is taken. A reader therefore never sees an empty or partial lock file - the gap the
/// Go package's create-then-write has.
pub fn publish(path: &Path, bytes: &[u8], mode: u32) -> io::Result<OwnedFile> {
    let dir = parent_dir(path);
    let new = write_new(dir, path, bytes, mode, false)?;
    if new.temp.is_some() {
        return link_named(new, path);
    }
    publish_anonymous(new, dir, path, bytes, mode)
}

/// Gives an `O_TMPFILE` file its name through `/proc/self/fd`, which needs no privilege
/// (unlike `linkat(AT_EMPTY_PATH)`).
#[cfg(target_os = "linux")]
fn publish_anonymous(
    new: Unpublished,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> io::Result<OwnedFile> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", new.owned.file.as_raw_fd());
    match linkat_follow(Path::new(&proc_path), path) {
        Ok(()) => Ok(new.owned),
        // No /proc: publish through a named temp file instead.
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir_exists(dir) => {
            let named = write_new(dir, path, bytes, mode, true)?;
            link_named(named, path)
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn publish_anonymous(
    new: Unpublished,
    _dir: &Path,
    path: &Path,
    _bytes: &[u8],
    _mode: u32,
) -> io::Result<OwnedFile> {
    // Only Linux makes anonymous files; elsewhere `write_new` always names them.
    link_named(new, path)
}

#[cfg(target_os = "linux")]
fn dir_exists(dir: &Path) -> bool {
    std::fs::metadata(dir).map(|m| m.is_dir()).unwrap_or(false)
}

fn link_named(new: Unpublished, path: &Path) -> io::Result<OwnedFile> {
    let temp = new.temp.as_deref().unwrap_or(path);
    let linked = std::fs::hard_link(temp, path);
    let _ = std::fs::remove_file(temp);
    linked.map(|()| new.owned)
}

#[cfg(target_os = "linux")]
fn linkat_follow(from: &Path, to: &Path) -> io::Result<()> {
    let from = cstr(from)?;
    let (dir, to) = match at_args(to) {
        Some(held) => held,
        None => (libc::AT_FDCWD, cstr(to)?),
    };
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            dir,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    cvt(rc)
}

/// An anonymous `O_TMPFILE` file in the directory `dir` (`openat` on a held directory's
/// descriptor, see `at_args`).
#[cfg(target_os = "linux")]
fn open_anonymous(dir: &Path, mode: u32) -> io::Result<File> {
    let flags = libc::O_RDWR | libc::O_TMPFILE | libc::O_CLOEXEC;
    let Some((fd, None)) = super::resolve::held_dir_name(dir) else {
        return OpenOptions::new()
            .read(true)
            .write(true)
            .mode(mode)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir);
    };
    // SAFETY: a NUL-terminated name; the returned descriptor is new and ours alone.
    let rc = unsafe { libc::openat(fd, c".".as_ptr(), flags, mode as libc::c_uint) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { File::from_raw_fd(rc) })
}

/// A name in a directory held open (`/proc/self/fd/<fd>/<name>`, see
/// `resolve::held_dir_name`) as the arguments of a `*at` call: that descriptor and the name.
/// `None` for any other path, which the caller uses as it is.
#[cfg(target_os = "linux")]
fn at_args(path: &Path) -> Option<(libc::c_int, std::ffi::CString)> {
    use std::os::unix::ffi::OsStrExt;
    let (fd, name) = super::resolve::held_dir_name(path)?;
    Some((fd, std::ffi::CString::new(name?.as_bytes()).ok()?))
}

#[cfg(target_os = "linux")]
fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Renames `from` to `to`: `renameat` when both are names in one held directory.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let (Some((a, from)), Some((b, to))) = (at_args(from), at_args(to)) {
        // SAFETY: NUL-terminated names that outlive the call.
        return cvt(unsafe { libc::renameat(a, from.as_ptr(), b, to.as_ptr()) });
    }
    std::fs::rename(from, to)
}

/// Removes the file `path`: `unlinkat` for a name in a held directory.
pub fn remove_file(path: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some((dir, name)) = at_args(path) {
        // SAFETY: a NUL-terminated name that outlives the call.
        return cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) });
    }
    std::fs::remove_file(path)
}

#[cfg(target_os = "linux")]
fn cstr(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Writes a complete record to a new private name beside `path` (for an exchange).
pub fn write_private(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> io::Result<(std::path::PathBuf, OwnedFile)> {
    let new = write_new(parent_dir(path), path, bytes, mode, true)?;
    match new.temp {
        Some(t) => Ok((t, new.owned)),
        None => Err(io::Error::other("expected a named file")),
    }
}

/// Atomically swaps the files named `a` and `b`; both names exist before and after. `Ok(false)`
/// where the platform or filesystem cannot (the caller falls back to rename-and-verify).
pub fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        let ca = cstr(a)?;
        let cb = cstr(b)?;
        // SAFETY: valid NUL-terminated paths; RENAME_EXCHANGE takes no other arguments.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Node-style error code names (`EACCES`...) for errno values.
pub fn errno_name(code: i32) -> String {
    let name = match code {
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EROFS => "EROFS",
        libc::ENOSPC => "ENOSPC",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EIO => "EIO",
        libc::EEXIST => "EEXIST",
        libc::ELOOP => "ELOOP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EBUSY => "EBUSY",
        libc::EINVAL => "EINVAL",
        libc::EXDEV => "EXDEV",
        libc::EDQUOT => "EDQUOT",
        libc::ESTALE => "ESTALE",
        libc::EAGAIN => "EAGAIN",
        libc::EINTR => "EINTR",
        libc::ENXIO => "ENXIO",
        _ => return format!("E{code}"),
    };
    name.to_string()
}

/// Errors on creating the lock name that mean contention rather than failure. None on Unix:
/// `EEXIST` is handled by the caller and everything else is real.
pub fn is_transient_create_error(_e: &io::Error) -> bool {
    false
}

/// Runs `f` when the process exits through `exit()` (`process.exit()`, an uncaught exception,
/// a drained event loop), not on a kill or a default-action signal.
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: registering a plain function pointer with libc.
    unsafe {
        libc::atexit(f);
    }
}
