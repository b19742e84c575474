//! `ProcessHandle`: signalling a lock's proven holder through a pidfd (see `sys::pidfd`). The
//! proof itself (`lib/proof.js`) reads files only; what JavaScript cannot do is hold a process
//! by something other than its reusable pid.

use crate::sys::pidfd::{self, Opened, Pidfd};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Mutex;

/// A handle on one process. `signal()` returns false once that process has ended - also when
/// its pid has been reused meanwhile: the handle never reaches the newcomer.
#[napi]
pub struct ProcessHandle {
    fd: Mutex<Option<Pidfd>>,
}

fn os_error(e: std::io::Error, what: &str) -> Error {
    let code = e
        .raw_os_error()
        .map(crate::sys::errno_name)
        .unwrap_or_else(|| "EIO".to_owned());
    Error::new(Status::GenericFailure, format!("{code}: {what}: {e}"))
}

/// Opens a handle on `pid`: `null` where there are no pidfds (not Linux, or a kernel before
/// 5.3), so the caller decides what to do without one. A process that has already ended gives
/// a handle whose `signal()` returns false.
#[napi]
pub fn open_process_handle(pid: u32) -> Result<Option<ProcessHandle>> {
    let pid = i32::try_from(pid).map_err(|_| Error::new(Status::InvalidArg, "pid out of range"))?;
    match pidfd::open(pid).map_err(|e| os_error(e, "pidfd_open"))? {
        Opened::Handle(fd) => Ok(Some(ProcessHandle {
            fd: Mutex::new(Some(fd)),
        })),
        Opened::Gone => Ok(Some(ProcessHandle {
            fd: Mutex::new(None),
        })),
        Opened::Unsupported => Ok(None),
    }
}

#[napi]
impl ProcessHandle {
    /// Sends signal number `signal`; false when the process has ended (or the handle is closed).
    #[napi]
    pub fn signal(&self, signal: i32) -> Result<bool> {
        let guard = self.fd.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(fd) => fd
                .send_signal(signal)
                .map_err(|e| os_error(e, "pidfd_send_signal")),
            None => Ok(false),
        }
    }

    /// Closes the handle now rather than when it is collected.
    #[napi]
    pub fn close(&self) {
        let mut guard = self.fd.lock().unwrap_or_else(|p| p.into_inner());
        guard.take();
    }
}
