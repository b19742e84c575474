//! A handle on another process that cannot come to name a different one: a Linux pidfd.
//!
//! `leaselock stop` signals a lock's holder only after proving that it holds the lock file. A
//! plain `kill(pid)` after that proof can still hit an innocent process if the holder ends and
//! its pid is reused in between; a pidfd opened before the final check refers to that one
//! process for good, and `pidfd_send_signal` on it fails with ESRCH once it has ended.
//! Where there are no pidfds (not Linux, or a kernel before 5.3) `open` says so, and the caller
//! decides what to do without one.

use std::io;

/// An open pidfd; closed when dropped.
#[derive(Debug)]
pub struct Pidfd(#[cfg(target_os = "linux")] std::os::fd::OwnedFd);

/// What opening a handle on `pid` found.
#[derive(Debug)]
pub enum Opened {
    Handle(Pidfd),
    /// No such process (it has ended).
    Gone,
    /// This platform or kernel has no pidfds.
    Unsupported,
}

#[cfg(target_os = "linux")]
pub fn open(pid: i32) -> io::Result<Opened> {
    use std::os::fd::FromRawFd;
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no memory
    // is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(Opened::Gone),
            Some(libc::ENOSYS) => Ok(Opened::Unsupported),
            _ => Err(e),
        };
    }
    // SAFETY: the descriptor was just returned to us and is owned by nothing else. It is a
    // small non-negative int, so the cast is lossless.
    Ok(Opened::Handle(Pidfd(unsafe {
        std::os::fd::OwnedFd::from_raw_fd(fd as i32)
    })))
}

#[cfg(not(target_os = "linux"))]
pub fn open(_pid: i32) -> io::Result<Opened> {
    Ok(Opened::Unsupported)
}

impl Pidfd {
    /// Sends `signal`; `Ok(false)` when the process has already ended.
    #[cfg(target_os = "linux")]
    pub fn send_signal(&self, signal: i32) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the life of `self`; a null siginfo asks the kernel
        // to fill it in as kill(2) would, and the flags are 0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(false)
        } else {
            Err(e)
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn send_signal(&self, _signal: i32) -> io::Result<bool> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_signals_its_process_and_reports_when_it_has_ended() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        let pid = child.id() as i32;
        let Opened::Handle(fd) = open(pid).expect("pidfd_open") else {
            panic!("no pidfd for a live child")
        };
        assert!(fd.send_signal(0).expect("signal 0"));
        assert!(fd.send_signal(libc::SIGKILL).expect("SIGKILL"));
        child.wait().expect("reaped");
        // The pid may be reused from here on; the pidfd still names the ended process.
        assert!(!fd.send_signal(0).expect("after the end"));
    }

    #[test]
    fn a_process_that_has_ended_is_gone() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        let pid = child.id() as i32;
        child.wait().expect("reaped");
        // Its pid is free now (a new process taking it this instant would be a rare flake, and
        // would show as a Handle, never as a signal to it: nothing is sent here).
        assert!(matches!(open(pid), Ok(Opened::Gone)));
    }
}
