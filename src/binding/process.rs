//! Signalling a lock's proven holder: `ProcessHandle` (a handle on one process that cannot come
//! to name another), `proveHolderFile` (the proof on macOS and Windows, where it cannot be read
//! from `/proc` as `lib/proof.js` does on Linux) and `listenForStopRequests` (Windows' graceful
//! ask). The platform work is in `sys::pidfd` (Linux), `sys::holder_macos` and
//! `sys::holder_windows`.

use napi::bindgen_prelude::*;
#[cfg(windows)]
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::sync::Mutex;

#[cfg(target_os = "macos")]
use crate::sys::holder_macos::{self as holder, Process as Inner};
#[cfg(windows)]
use crate::sys::holder_windows::{self as holder, Process as Inner};
#[cfg(target_os = "linux")]
use crate::sys::pidfd::{self, Opened, Pidfd as Inner};
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
type Inner = std::convert::Infallible;

/// A handle on one process. `signal()` returns false once that process has ended - also when
/// its pid has been reused meanwhile: the handle never reaches the newcomer (on macOS, see
/// `sys::holder_macos` for the window that remains).
#[napi]
pub struct ProcessHandle {
    inner: Mutex<Option<Inner>>,
    start: Option<String>,
}

fn os_error(e: std::io::Error, what: &str) -> Error {
    let code = e
        .raw_os_error()
        .map(crate::sys::errno_name)
        .unwrap_or_else(|| "EIO".to_owned());
    Error::new(Status::GenericFailure, format!("{code}: {what}: {e}"))
}

fn handle(inner: Option<Inner>, start: Option<String>) -> ProcessHandle {
    ProcessHandle {
        inner: Mutex::new(inner),
        start,
    }
}

/// Opens a handle on `pid`: a pidfd on Linux (`null` on a kernel before 5.3), a process handle
/// on Windows, the pid and its start time on macOS; `null` elsewhere, so the caller decides what
/// to do without one. A process that has already ended gives a handle whose `signal()` returns
/// false.
#[napi]
pub fn open_process_handle(pid: u32) -> Result<Option<ProcessHandle>> {
    #[cfg(target_os = "linux")]
    {
        let pid =
            i32::try_from(pid).map_err(|_| Error::new(Status::InvalidArg, "pid out of range"))?;
        Ok(
            match pidfd::open(pid).map_err(|e| os_error(e, "pidfd_open"))? {
                Opened::Handle(fd) => Some(handle(Some(fd), None)),
                Opened::Gone => Some(handle(None, None)),
                Opened::Unsupported => None,
            },
        )
    }
    #[cfg(any(target_os = "macos", windows))]
    {
        let p = Inner::open(pid).map_err(|e| os_error(e, "opening the process"))?;
        let start = p.as_ref().map(|p| p.start.clone());
        Ok(Some(handle(p, start)))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        let _ = (pid, handle);
        Ok(None)
    }
}

#[napi]
impl ProcessHandle {
    /// The start time of the process the handle names, in the lease's `processStart` unit
    /// (macOS and Windows; null on Linux, where the pidfd itself pins the process, and when it
    /// had ended before the handle was opened).
    #[napi(getter)]
    pub fn start(&self) -> Option<String> {
        self.start.clone()
    }

    /// Sends signal number `signal`; false when the process has ended (or the handle is closed).
    /// On Windows only SIGKILL (9: `TerminateProcess`) and 0 (is it running?) mean anything;
    /// the graceful ask is `requestExit()`.
    #[napi]
    pub fn signal(&self, signal: i32) -> Result<bool> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(inner) = guard.as_ref() else {
            return Ok(false);
        };
        #[cfg(target_os = "linux")]
        return inner
            .send_signal(signal)
            .map_err(|e| os_error(e, "pidfd_send_signal"));
        #[cfg(target_os = "macos")]
        return inner.signal(signal).map_err(|e| os_error(e, "kill"));
        #[cfg(windows)]
        return match signal {
            0 => Ok(!inner.has_ended()),
            9 => inner
                .terminate()
                .map_err(|e| os_error(e, "TerminateProcess")),
            _ => Err(Error::new(
                Status::InvalidArg,
                "on Windows a process handle sends only SIGKILL; use requestExit()",
            )),
        };
        #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
        match *inner {}
    }

    /// Asks the process to exit as gracefully as the platform allows: SIGTERM on Unix; on
    /// Windows the stop request its own leaselock listens for (`sys::holder_windows`).
    /// `'asked'`, `'ended'` (it had already ended) or `'not-listening'` (Windows: it does not
    /// take stop requests).
    #[napi]
    pub fn request_exit(&self) -> Result<String> {
        #[cfg(windows)]
        {
            let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let Some(inner) = guard.as_ref() else {
                return Ok("ended".to_owned());
            };
            let asked = inner
                .request_exit()
                .map_err(|e| os_error(e, "asking the process to exit"))?;
            Ok(match asked {
                holder::Asked::Asked => "asked",
                holder::Asked::Ended => "ended",
                holder::Asked::NotListening => "not-listening",
            }
            .to_owned())
        }
        #[cfg(not(windows))]
        Ok(if self.signal(libc::SIGTERM)? {
            "asked"
        } else {
            "ended"
        }
        .to_owned())
    }

    /// Closes the handle now rather than when it is collected.
    #[napi]
    pub fn close(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.take();
    }
}

/// What `proveHolderFile` found.
#[napi(object)]
pub struct HolderFileProof {
    pub ok: bool,
    /// Why the holder is not proven (when `ok` is false).
    pub reason: Option<String>,
    /// The lease as read through the checked handle (when `ok`).
    pub lease: Option<String>,
    /// The holder's start time, in the lease's `processStart` unit (when `ok`).
    pub start: Option<String>,
}

/// The proof that process `pid` holds the lock file at `path`, on macOS (libproc) and Windows
/// (owner SIDs, the Restart Manager); on other platforms `ok` is false (Linux proves it from
/// `/proc` in `lib/proof.js`).
#[napi]
pub fn prove_holder_file(path: String, pid: u32, allow_other_owner: bool) -> HolderFileProof {
    let refused = |reason: String| HolderFileProof {
        ok: false,
        reason: Some(reason),
        lease: None,
        start: None,
    };
    #[cfg(any(target_os = "macos", windows))]
    return match holder::prove(std::path::Path::new(&path), pid, allow_other_owner) {
        Ok(p) => HolderFileProof {
            ok: true,
            reason: None,
            lease: Some(String::from_utf8_lossy(&p.lease).into_owned()),
            start: Some(p.start),
        },
        Err(reason) => refused(reason),
    };
    #[cfg(not(any(target_os = "macos", windows)))]
    {
        let _ = (path, pid, allow_other_owner);
        refused("this platform proves holders from /proc".to_owned())
    }
}

#[cfg(windows)]
type StopFn = ThreadsafeFunction<u32, (), u32, Status, false, true>;

/// Windows: calls `callback` each time another process asks this one to exit (see
/// `sys::holder_windows`); once per process. True when listening started now; false when it
/// already was, when somebody else holds this process's event name, and on other platforms
/// (where SIGTERM is the ask). The callback never keeps Node alive.
#[napi]
pub fn listen_for_stop_requests(callback: Function<u32, ()>) -> Result<bool> {
    #[cfg(windows)]
    {
        let tsfn: StopFn = callback
            .build_threadsafe_function()
            .weak::<true>()
            .build()?;
        holder::listen(move || {
            // Closing (the environment is gone) or a full queue: nobody is left to ask.
            let _ = tsfn.call(0, ThreadsafeFunctionCallMode::NonBlocking);
        })
        .map_err(|e| os_error(e, "listening for stop requests"))
    }
    #[cfg(not(windows))]
    {
        let _ = callback;
        Ok(false)
    }
}
