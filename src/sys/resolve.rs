//! Finding a lock's directory without letting another local user redirect it.
//!
//! The path is walked one component at a time from `/`, each directory opened relative to the
//! one before (`openat` with `O_NOFOLLOW`), so what is checked is what is used. A symlink on
//! the way is followed only when it belongs to the caller or to root - the rule the kernel's
//! `fs.protected_symlinks` applies in sticky world-writable directories, applied everywhere,
//! because a group-writable workspace is just as open to a colleague's link. A directory that
//! others may write, without the sticky bit, owned by neither the caller nor root, is refused
//! too: its owner (or anyone who can write it) could swap what is below it. The caller may opt
//! out of both (`trust_others`).
//!
//! The directory found is kept open. On Linux every later operation names files through
//! `/proc/self/fd/<fd>/<name>`: the kernel resolves that magic link straight to the open
//! directory, so no component of the user's path is walked again between the check and the use.
//! The calls an uncontended acquire and release make turn such a name back into a `*at` call on
//! the descriptor itself ([`held_dir_name`]): the same directory, without the walk through
//! `/proc`.
//! Where `/proc` is missing (and on macOS) the physical path that was checked is used instead:
//! it has no symlink left in it, and before each try of an acquire it must still lead to the
//! open directory ([`LockDir::is_removed`]); a directory swapped in by someone allowed to write
//! an ancestor in the moment between that comparison and the use, or while the lock is held,
//! is not noticed there.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution follows at most (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Why a lock path was not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// A symlink owned by someone other than the caller or root.
    Symlink { path: PathBuf, owner: u32 },
    /// A directory others may write, without the sticky bit, owned by someone else.
    Directory {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
}

impl Untrusted {
    pub fn path(&self) -> &Path {
        match self {
            Untrusted::Symlink { path, .. } | Untrusted::Directory { path, .. } => path,
        }
    }

    pub fn owner(&self) -> u32 {
        match self {
            Untrusted::Symlink { owner, .. } | Untrusted::Directory { owner, .. } => *owner,
        }
    }
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::Symlink { path, owner } => write!(
                f,
                "the symlink {} belongs to {}, neither this user nor root, so it could point the lock anywhere; it was not followed",
                path.display(),
                super::describe_owner(*owner)
            ),
            Untrusted::Directory { path, owner, mode } => write!(
                f,
                "the directory {} (mode {:o}) belongs to {} and others may write it without the sticky bit, so what is in it could be swapped",
                path.display(),
                mode & 0o7777,
                super::describe_owner(*owner)
            ),
        }
    }
}

#[derive(Debug)]
pub enum ResolveError {
    Untrusted(Untrusted),
    /// A system error, with the path it concerns.
    Io(io::Error, PathBuf),
}

/// A lock's directory, held open. Files in it are named with [`LockDir::join`].
#[derive(Debug)]
pub struct LockDir {
    fd: OwnedFd,
    /// The directory as walked, without any symlink in it.
    physical: PathBuf,
    /// The prefix that reaches exactly this open directory.
    via: PathBuf,
}

impl LockDir {
    /// The path to use for `name` in this directory.
    pub fn join(&self, name: &OsStr) -> PathBuf {
        self.via.join(name)
    }

    /// The directory as walked (for messages).
    pub fn physical(&self) -> &Path {
        &self.physical
    }

    /// Whether the directory has been removed since it was opened, or - where it is reached by
    /// its physical path, without `/proc` - that path no longer leads to it (a parent renamed,
    /// or swapped for a link): then resolve again, with the checks. Without this, an acquire
    /// that waits would follow a swapped path on its next try.
    #[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 on every target
    pub fn is_removed(&self) -> bool {
        let Ok(st) = fstat(self.fd.as_raw_fd()) else {
            return true;
        };
        if st.st_nlink == 0 {
            return true;
        }
        if self.via != self.physical {
            return false;
        }
        use std::os::unix::fs::MetadataExt;
        !matches!(std::fs::metadata(&self.physical),
            Ok(m) if m.dev() == st.st_dev as u64 && m.ino() == st.st_ino as u64)
    }

    /// `p` below this directory's prefix, as a name relative to it (to show the user's path).
    pub fn relative<'a>(&self, p: &'a Path) -> Option<&'a Path> {
        p.strip_prefix(&self.via).ok()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(target_os = "linux")]
const DIR_FLAGS: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
#[cfg(not(target_os = "linux"))]
const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn open_at(dir: RawFd, name: &OsStr, nofollow: bool) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let flags = DIR_FLAGS | if nofollow { libc::O_NOFOLLOW } else { 0 };
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is owned by us.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: `st` is plain data filled by the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn lstat_at(dir: RawFd, name: &OsStr) -> io::Result<libc::stat> {
    let c = c_name(name)?;
    // SAFETY: as in `fstat`; `c` outlives the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn readlink_at(dir: RawFd, name: &OsStr) -> io::Result<OsString> {
    let c = c_name(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is writable for its length; `c` outlives the call.
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

fn mkdir_at(dir: RawFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` outlives the call.
    if unsafe { libc::mkdirat(dir, c.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

/// `st_mode` as u32 (`mode_t` is u16 on macOS, u32 on Linux), and the sticky bit.
#[allow(clippy::unnecessary_cast)]
fn mode_of(st: &libc::stat) -> (u32, bool) {
    let mode = st.st_mode as u32;
    (mode, mode & libc::S_ISVTX as u32 != 0)
}

fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// The rule for a directory on the way: others may not write it unless it is sticky or belongs
/// to the caller or root.
fn check_dir(st: &libc::stat, path: &Path, me: u32) -> Result<(), Untrusted> {
    let (mode, sticky) = mode_of(st);
    let others_write = mode & 0o022 != 0;
    if others_write && !sticky && st.st_uid != me && st.st_uid != 0 {
        return Err(Untrusted::Directory {
            path: path.to_path_buf(),
            owner: st.st_uid,
            mode,
        });
    }
    Ok(())
}

/// Opens the directory `dir` as described at the top of this file (a relative `dir` counts
/// from the working directory), creating missing directories with `create` (a mode; umask
/// applies) when given.
pub fn open_lock_dir(
    dir: &Path,
    create: Option<u32>,
    trust_others: bool,
) -> Result<LockDir, ResolveError> {
    let absolute;
    let dir = if dir.is_absolute() {
        dir
    } else {
        let cwd = std::env::current_dir().map_err(|e| io_err(e, dir))?;
        absolute = cwd.join(dir);
        &absolute
    };
    let mut walk = Walk {
        cur: open_root()?,
        physical: PathBuf::from("/"),
        todo: components(dir),
        links: 0,
        me: euid(),
        create,
        trust_others,
    };
    while let Some(name) = walk.todo.pop_front() {
        walk.step(name)?;
    }
    let via = via_proc(&walk.cur).unwrap_or_else(|| walk.physical.clone());
    Ok(LockDir {
        fd: walk.cur,
        physical: walk.physical,
        via,
    })
}

fn io_err(e: io::Error, p: &Path) -> ResolveError {
    ResolveError::Io(e, p.to_path_buf())
}

fn open_root() -> Result<OwnedFd, ResolveError> {
    open_at(libc::AT_FDCWD, OsStr::new("/"), false).map_err(|e| io_err(e, Path::new("/")))
}

/// A walk in progress: the directory reached (open), its path, and the names still to go.
struct Walk {
    cur: OwnedFd,
    physical: PathBuf,
    todo: std::collections::VecDeque<OsString>,
    links: usize,
    me: u32,
    create: Option<u32>,
    trust_others: bool,
}

impl Walk {
    /// Goes one name further: into a directory, up with `..`, creating a missing one, or
    /// through a symlink (its target's names go first in `todo`).
    fn step(&mut self, name: OsString) -> Result<(), ResolveError> {
        if name == ".." {
            self.cur = open_at(self.cur.as_raw_fd(), &name, false)
                .map_err(|e| io_err(e, &self.physical))?;
            self.physical.pop();
            let physical = self.physical.clone();
            return self.check(&physical);
        }
        let here = self.physical.join(&name);
        match open_at(self.cur.as_raw_fd(), &name, true) {
            Ok(next) => {
                self.cur = next;
                self.check(&here)?;
                self.physical = here;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let Some(mode) = self.create else {
                    return Err(io_err(e, &here));
                };
                match mkdir_at(self.cur.as_raw_fd(), &name, mode) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(io_err(e, &here)),
                }
                // Open what is there now, through the same checks.
                self.todo.push_front(name);
                Ok(())
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                self.follow(&name, here, e)
            }
            Err(e) => Err(io_err(e, &here)),
        }
    }

    /// The directory just entered (`self.cur`) must not be open to others (see `check_dir`).
    fn check(&self, path: &Path) -> Result<(), ResolveError> {
        if self.trust_others {
            return Ok(());
        }
        let st = fstat(self.cur.as_raw_fd()).map_err(|e| io_err(e, path))?;
        check_dir(&st, path, self.me).map_err(ResolveError::Untrusted)
    }

    /// `name` would not open as a directory without following it: a symlink of ours or root's
    /// is followed, another user's refused; anything else is the error `e`.
    fn follow(&mut self, name: &OsStr, here: PathBuf, e: io::Error) -> Result<(), ResolveError> {
        let st = lstat_at(self.cur.as_raw_fd(), name).map_err(|e| io_err(e, &here))?;
        if !is_symlink(&st) {
            return Err(io_err(e, &here));
        }
        if st.st_uid != self.me && st.st_uid != 0 && !self.trust_others {
            return Err(ResolveError::Untrusted(Untrusted::Symlink {
                path: here,
                owner: st.st_uid,
            }));
        }
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(io_err(io::Error::from_raw_os_error(libc::ELOOP), &here));
        }
        let target =
            PathBuf::from(readlink_at(self.cur.as_raw_fd(), name).map_err(|e| io_err(e, &here))?);
        let mut rest = components(&target);
        rest.append(&mut self.todo);
        self.todo = rest;
        if target.is_absolute() {
            self.cur = open_root()?;
            self.physical = PathBuf::from("/");
        }
        Ok(())
    }
}

/// Who owns something, for a message: `uid 65534 (nobody)`, or `uid 4242` without a name.
pub fn describe_owner(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `pwd` and `buf` outlive the call; on success `result` points into them.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            uid as libc::uid_t,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: `pw_name` is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Why this process may not move (rename or delete) `name` in `dir` although it may write the
/// directory: the sticky bit, and the file is neither ours nor in a directory of ours. `None`
/// when nothing of that kind stops us (or nothing is there); root may always.
pub fn sticky_owner(dir: &LockDir, name: &OsStr) -> Option<u32> {
    let me = euid();
    if me == 0 {
        return None;
    }
    let d = fstat(dir.raw_fd()).ok()?;
    let f = lstat_at(dir.raw_fd(), name).ok()?;
    let (_, sticky) = mode_of(&d);
    (sticky && f.st_uid != me && d.st_uid != me).then_some(f.st_uid)
}

/// The owner of what is at `path`, without following a symlink.
pub fn owner_at(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.uid())
}

/// The names in `p`, `..` kept (resolved against the real parent, as the kernel does).
fn components(p: &Path) -> std::collections::VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// The prefix [`LockDir::join`] gives names in a directory held open (see [`via_proc`]).
#[cfg(target_os = "linux")]
const HELD_PREFIX: &[u8] = b"/proc/self/fd/";

/// `path` as the directory descriptor and the name it stands for, when it is one of
/// [`LockDir::join`]'s `/proc/self/fd/<fd>/<name>` (`name` without a slash; `None` for the
/// directory itself). The kernel resolves that magic link straight to descriptor `fd`, so a
/// `*at` call on `fd` with `name` reaches exactly the same file - without first walking
/// `/proc`, which is most of what such a call costs. `None` for every other path, which is
/// then used as it is. Linux only: elsewhere no name is made through `/proc`.
#[cfg(target_os = "linux")]
pub fn held_dir_name(path: &Path) -> Option<(RawFd, Option<&OsStr>)> {
    let rest = path.as_os_str().as_bytes().strip_prefix(HELD_PREFIX)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let fd: RawFd = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    match &rest[digits..] {
        [] => Some((fd, None)),
        [b'/', name @ ..] if !name.is_empty() && !name.contains(&b'/') => {
            Some((fd, Some(OsStr::from_bytes(name))))
        }
        _ => None,
    }
}

/// `/proc/self/fd/<fd>` when `/proc` is there to resolve it to this very directory. Whether it
/// is is checked once per process (against the first directory opened), not per lock.
#[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 on every target
fn via_proc(fd: &OwnedFd) -> Option<PathBuf> {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !cfg!(target_os = "linux") {
        return None;
    }
    let via = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let works = *WORKS.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        match (fstat(fd.as_raw_fd()), std::fs::metadata(&via)) {
            (Ok(a), Ok(b)) => b.dev() == a.st_dev as u64 && b.ino() == a.st_ino as u64,
            _ => false,
        }
    });
    works.then_some(via)
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
