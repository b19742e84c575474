//! Unix processes: who this process is (boot clock, boot id, namespaces, start time, host) and
//! whether another one is alive. Files are in `unix.rs`.

use super::ProcessState;
use crate::lease::OwnerIdentity;

/// A boot clock in nanoseconds: monotonic, counts suspend, comparable across processes of one
/// boot. Immune to wall-clock jumps.
pub fn boot_nanos() -> Option<u64> {
    // Linux: CLOCK_BOOTTIME. macOS: CLOCK_MONOTONIC, which there counts time asleep and starts
    // at boot (unlike Rust's `Instant`, which uses the uptime clock that stops in sleep).
    #[cfg(target_os = "linux")]
    let clock = libc::CLOCK_BOOTTIME;
    #[cfg(target_os = "macos")]
    let clock = libc::CLOCK_MONOTONIC;
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out-pointer.
        if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
            let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            return Some(now + crate::faults::suspended_nanos());
        }
        None
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    None
}

/// Who this process is: host, boot, PID namespace and start time. `None` where the platform
/// cannot tell (then leases carry no identity and only their age frees them).
pub fn this_process() -> Option<OwnerIdentity> {
    // Linux: the kernel's boot id and the PID namespace's inode. macOS: the boot session UUID,
    // which changes at every boot, and no PID namespaces.
    #[cfg(target_os = "linux")]
    let (boot_id, pid_namespace, time_namespace) = {
        // Every field must be read in the frame the pids of leases are probed in: a /proc
        // mounted for another PID namespace (a `unshare --pid` without a new /proc) names
        // other processes, so then this process records no identity at all.
        if !proc_is_ours() {
            return None;
        }
        (
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()?
                .trim()
                .to_string(),
            namespace_of("pid")?,
            // Kernels before 5.6 have no time namespaces: one frame for every process.
            match std::fs::read_link("/proc/self/ns/time") {
                Ok(_) => namespace_of("time")?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(_) => return None,
            },
        )
    };
    #[cfg(target_os = "macos")]
    let (boot_id, pid_namespace, time_namespace) = (
        macos::sysctl_string("kern.bootsessionuuid")?,
        String::new(),
        String::new(),
    );
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        let ProcessState::Running { start } = probe(std::process::id() as i64) else {
            return None;
        };
        Some(OwnerIdentity {
            hostname: hostname(),
            boot_id,
            pid_namespace,
            process_start: start,
            time_namespace: Some(time_namespace),
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    None
}

/// The inode of one of this process's namespaces (`pid`, `time`), from `/proc/self/ns/<kind>`.
#[cfg(target_os = "linux")]
fn namespace_of(kind: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/self/ns/{kind}")).ok()?;
    let s = link.to_string_lossy();
    // "pid:[4026531836]"
    let inner = s
        .strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?;
    Some(inner.to_string())
}

/// Whether `/proc` belongs to this process's PID namespace: `/proc/self` names our own pid.
#[cfg(target_os = "linux")]
fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .is_some_and(|l| l.as_os_str() == std::process::id().to_string().as_str())
}

/// What the kernel itself says about a pid: ESRCH from `kill(pid, 0)` is proof that no such
/// process exists; anything else (it exists, EPERM: it exists but is not ours) proves nothing
/// about which incarnation it is. (macOS asks `proc_pidinfo`, which answers ESRCH itself.)
#[cfg(not(target_os = "macos"))]
fn kernel_says_gone(pid: i64) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Is the process with this pid (in our PID namespace) alive, and which incarnation is it?
/// Linux reads `/proc/<pid>/stat`: state (a zombie `Z` or dead `X` is gone) and field 22, the
/// start time in clock ticks since boot, which tells a reused pid from the owner.
pub fn probe(pid: i64) -> ProcessState {
    if pid <= 0 || pid > i32::MAX as i64 {
        return ProcessState::Unknown;
    }
    #[cfg(target_os = "linux")]
    {
        let text = match std::fs::read(format!("/proc/{pid}/stat")) {
            Ok(t) => t,
            // A missing entry may only be hidden (`hidepid`, systemd's `ProtectProc`): only the
            // kernel's ESRCH proves the pid free.
            Err(_) if kernel_says_gone(pid) => return ProcessState::Gone,
            Err(_) => return ProcessState::Unknown,
        };
        // The command name is in parentheses and may itself contain ") ", so parse after
        // the last ')'.
        let Some(close) = text.iter().rposition(|&b| b == b')') else {
            return ProcessState::Unknown;
        };
        let rest = String::from_utf8_lossy(&text[close + 1..]);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
        match (fields.first(), fields.get(19)) {
            (Some(&"Z") | Some(&"X") | Some(&"x"), _) => ProcessState::Gone,
            (Some(_), Some(start)) => ProcessState::Running {
                start: (*start).to_string(),
            },
            _ => ProcessState::Unknown,
        }
    }
    #[cfg(target_os = "macos")]
    {
        macos::probe(pid)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        // Without a start time a live pid proves nothing (it may be reused), but ESRCH still
        // proves the pid is free. The caller only trusts `Gone` within our own boot and host.
        if kernel_says_gone(pid) {
            ProcessState::Gone
        } else {
            ProcessState::Unknown
        }
    }
}

/// macOS: `proc_pidinfo(PROC_PIDTBSDINFO)` gives the state (a zombie is gone) and the start
/// time in seconds and microseconds, which tells a reused pid from the owner.
#[cfg(target_os = "macos")]
mod macos {
    use super::ProcessState;
    use std::io;

    pub fn probe(pid: i64) -> ProcessState {
        // SAFETY: an all-zero proc_bsdinfo is a valid out-buffer of the size we pass.
        let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        // SAFETY: info is writable for `size` bytes.
        let n = unsafe {
            libc::proc_pidinfo(
                pid as libc::c_int,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            )
        };
        if n == size {
            if info.pbi_status == libc::SZOMB {
                return ProcessState::Gone;
            }
            return ProcessState::Running {
                start: format!("{}.{:06}", info.pbi_start_tvsec, info.pbi_start_tvusec),
            };
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::ESRCH) => ProcessState::Gone,
            _ => ProcessState::Unknown,
        }
    }

    pub fn sysctl_string(name: &str) -> Option<String> {
        let cname = std::ffi::CString::new(name).ok()?;
        let mut buf = [0u8; 128];
        let mut len: libc::size_t = buf.len();
        // SAFETY: buf is writable for len bytes; no new value is set.
        let rc = unsafe {
            libc::sysctlbyname(
                cname.as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return None;
        }
        let end = buf[..len.min(buf.len())]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(len.min(buf.len()));
        Some(String::from_utf8_lossy(&buf[..end]).into_owned())
    }
}
