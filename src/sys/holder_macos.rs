//! macOS: proving that a process holds a lock file, and signalling it.
//!
//! The rules are those of `lib/proof.js` on Linux, read through libproc instead of `/proc`:
//! - the lease is read through an `O_NOFOLLOW` descriptor whose `fstat` shows a regular file
//!   with no group/other write, owned by the caller's effective uid (root: only a root-owned
//!   file, unless told otherwise) and by the holder's effective uid
//!   (`proc_pidinfo(PROC_PIDTBSDINFO)`, `pbi_uid`);
//! - the holder has that very file open: among its descriptors
//!   (`proc_pidinfo(PROC_PIDLISTFDS)`) a vnode whose device and inode
//!   (`proc_pidfdinfo(PROC_PIDFDVNODEINFO)`) are the file's;
//! - the holder's start time is the same before and after its descriptors are listed, so the
//!   descriptors read are that process's.
//!
//! macOS has no pidfd. The handle here is the pid and the start time read when it was opened;
//! `signal` reads the start time again and sends `kill()` only when it still matches. What
//! remains is the window between that read and the `kill()` - a few microseconds in which the
//! holder would have to end, be reaped, and its pid be handed to a new process. macOS hands out
//! pids in increasing order up to 99999 before it wraps, so the new process would also need the
//! whole pid range to have cycled in that instant.

use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What the proof found: the lease's bytes (read through the checked descriptor) and the
/// holder's start time (`<seconds>.<microseconds>`, as `OwnerIdentity::process_start` writes it).
#[derive(Debug)]
pub struct Proven {
    pub lease: Vec<u8>,
    pub start: String,
}

/// `PROC_PIDFDVNODEINFO` and its answer (sys/proc_info.h), which the libc crate does not have.
const PROC_PIDFDVNODEINFO: libc::c_int = 1;

#[repr(C)]
struct ProcFileInfo {
    fi_openflags: u32,
    fi_status: u32,
    fi_offset: libc::off_t,
    fi_type: i32,
    fi_guardflags: u32,
}

#[repr(C)]
struct VnodeFdInfo {
    pfi: ProcFileInfo,
    pvi: libc::vnode_info,
}

/// Effective uid and start time of `pid`; `None` when it is gone or a zombie.
fn bsd_info(pid: i32) -> io::Result<Option<(u32, String)>> {
    // SAFETY: an all-zero proc_bsdinfo is a valid out-buffer of the size we pass.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: info is writable for `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    if n != size {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(e),
        };
    }
    if info.pbi_status == libc::SZOMB {
        return Ok(None);
    }
    let start = format!("{}.{:06}", info.pbi_start_tvsec, info.pbi_start_tvusec);
    Ok(Some((info.pbi_uid, start)))
}

/// Whether `pid` has a vnode with this device and inode open.
fn has_open(pid: i32, dev: u32, ino: u64) -> io::Result<bool> {
    // SAFETY: a null buffer asks for the size needed.
    let need =
        unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, std::ptr::null_mut(), 0) };
    if need <= 0 {
        return Err(io::Error::last_os_error());
    }
    let entry = std::mem::size_of::<libc::proc_fdinfo>();
    // Room for descriptors opened meanwhile.
    let room = need as usize / entry + 32;
    let mut fds: Vec<libc::proc_fdinfo> = Vec::with_capacity(room);
    let bytes = (room * entry) as libc::c_int;
    // SAFETY: `fds` has capacity for `room` entries, `bytes` bytes.
    let got = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDLISTFDS,
            0,
            fds.as_mut_ptr().cast(),
            bytes,
        )
    };
    if got <= 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote `got` bytes of whole entries.
    unsafe { fds.set_len((got as usize / entry).min(room)) };
    for fd in fds
        .iter()
        .filter(|f| f.proc_fdtype == libc::PROX_FDTYPE_VNODE as u32)
    {
        // SAFETY: an all-zero VnodeFdInfo is a valid out-buffer of the size we pass.
        let mut info: VnodeFdInfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<VnodeFdInfo>() as libc::c_int;
        // SAFETY: info is writable for `size` bytes.
        let n = unsafe {
            libc::proc_pidfdinfo(
                pid,
                fd.proc_fd,
                PROC_PIDFDVNODEINFO,
                (&mut info as *mut VnodeFdInfo).cast(),
                size,
            )
        };
        // Closed meanwhile: not this one.
        if n == size && info.pvi.vi_stat.vst_dev == dev && info.pvi.vi_stat.vst_ino == ino {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the lease at `path` proves that process `pid` holds it (see the module comment).
/// `Err` is the reason it does not, fit for a message.
pub fn prove(path: &Path, pid: u32, allow_other_owner: bool) -> Result<Proven, String> {
    let pid = i32::try_from(pid).map_err(|_| "the pid is out of range".to_owned())?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "the lock path is a symbolic link".to_owned(),
            _ => format!("the lock file cannot be opened ({e})"),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("the lock file cannot be read ({e})"))?;
    if !meta.is_file() {
        return Err("the lock path is not a regular file".to_owned());
    }
    if meta.mode() & 0o022 != 0 {
        return Err("the lock file may be written by group or others".to_owned());
    }
    let (lease, oversized) = super::read_capped(&file, meta.len())
        .map_err(|e| format!("the lock file cannot be read ({e})"))?;
    if oversized {
        return Err("the lock file does not hold a lease".to_owned());
    }
    let uid = meta.uid();
    // SAFETY: no arguments, cannot fail.
    let me = unsafe { libc::geteuid() };
    if uid != me && !(me == 0 && allow_other_owner) {
        return Err(format!(
            "the lock file belongs to uid {uid}, not to this user (uid {me})"
        ));
    }
    let examine = |e: io::Error| format!("process {pid} cannot be examined ({e})");
    let (holder_uid, start) = bsd_info(pid)
        .map_err(examine)?
        .ok_or_else(|| "the holder is not running".to_owned())?;
    if holder_uid != uid {
        return Err(format!(
            "process {pid} runs as uid {holder_uid}, but the lock file belongs to uid {uid}"
        ));
    }
    if !has_open(pid, meta.dev() as u32, meta.ino()).map_err(examine)? {
        return Err(format!("process {pid} does not have the lock file open"));
    }
    match bsd_info(pid).map_err(examine)? {
        Some((_, again)) if again == start => Ok(Proven { lease, start }),
        _ => Err("the holder is not running".to_owned()),
    }
}

/// A process named by its pid and start time (see the module comment for what that leaves).
#[derive(Debug)]
pub struct Process {
    pid: i32,
    pub start: String,
}

impl Process {
    /// Opens `pid`; `None` when there is no such process.
    pub fn open(pid: u32) -> io::Result<Option<Process>> {
        let pid = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(bsd_info(pid)?.map(|(_, start)| Process { pid, start }))
    }

    /// Sends `signal` when the pid still names the process it named when opened; false when
    /// that process has ended.
    pub fn signal(&self, signal: i32) -> io::Result<bool> {
        match bsd_info(self.pid)? {
            Some((_, start)) if start == self.start => {}
            _ => return Ok(false),
        }
        // SAFETY: plain syscall.
        if unsafe { libc::kill(self.pid, signal) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(false)
        } else {
            Err(e)
        }
    }
}
