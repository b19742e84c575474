//! Writing a lease: Go's four fields first, in Go's order, then ours, then `\n`.

use super::{Lease, BOOT_NANO_WIDTH};
use std::fmt::Write as _;

impl Lease {
    /// The file's bytes: Go's four fields first, in Go's order, then ours, then `\n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256);
        s.push_str("{\"version\":1,\"ownerID\":");
        push_json_string(&mut s, &self.owner_id);
        let _ = write!(
            s,
            ",\"pid\":{},\"lastHeartbeatUnixNano\":{}",
            self.pid, self.last_heartbeat_unix_nano
        );
        if let Some(id) = &self.identity {
            s.push_str(",\"hostname\":");
            push_json_string(&mut s, &id.hostname);
            s.push_str(",\"bootId\":");
            push_json_string(&mut s, &id.boot_id);
            s.push_str(",\"pidNamespace\":");
            push_json_string(&mut s, &id.pid_namespace);
            s.push_str(",\"processStart\":");
            push_json_string(&mut s, &id.process_start);
            if let Some(ns) = &id.time_namespace {
                s.push_str(",\"timeNamespace\":");
                push_json_string(&mut s, ns);
            }
        }
        if let Some(b) = self.heartbeat_boot_nano {
            let _ = write!(
                s,
                ",\"heartbeatBoot\":\"{b:0width$}\"",
                width = BOOT_NANO_WIDTH
            );
        }
        if let Some(a) = self.acquired_unix_nano {
            let _ = write!(s, ",\"acquiredUnixNano\":{a}");
        }
        if let Some(t) = self.token {
            let _ = write!(s, ",\"token\":{t}");
        }
        if let Some(m) = &self.metadata_json {
            s.push_str(",\"metadata\":");
            s.push_str(m);
        }
        s.push_str("}\n");
        s.into_bytes()
    }

    /// The same record with fresh heartbeat times. Both are fixed-width today (19 digits of
    /// Unix nanoseconds until the year 2286, and a zero-padded boot clock), so the result has
    /// the same length as before and can be rewritten in place.
    pub fn with_heartbeat(&self, unix_nano: i64, boot_nano: Option<u64>) -> Lease {
        let mut next = self.clone();
        next.last_heartbeat_unix_nano = unix_nano;
        if self.heartbeat_boot_nano.is_some() {
            next.heartbeat_boot_nano = boot_nano;
        }
        next
    }
}

/// Patches the heartbeat times of `next` into `written` (the bytes of the same record with
/// older times) without encoding the record again or allocating; `false` when a field would
/// change width, and then the caller encodes it.
pub fn patch_heartbeat(written: &mut [u8], next: &Lease) -> bool {
    let Ok(unix) = u64::try_from(next.last_heartbeat_unix_nano) else {
        return false;
    };
    if !patch_after(written, b"\"lastHeartbeatUnixNano\":", unix, 0) {
        return false;
    }
    match next.heartbeat_boot_nano {
        Some(b) => patch_after(written, b"\"heartbeatBoot\":\"", b, BOOT_NANO_WIDTH),
        None => true,
    }
}

/// Overwrites the run of digits right after the first `marker` with `value`, zero-padded to
/// `width`, if that takes exactly as many digits. The first match is the field itself: the Go
/// fields and ours come before the metadata, and a marker with bare quotes cannot occur inside
/// an earlier JSON string.
fn patch_after(buf: &mut [u8], marker: &[u8], value: u64, width: usize) -> bool {
    // Every heartbeat runs this: look at the first two bytes before comparing a whole window
    // (a quote alone starts every other JSON token), which keeps it off the profile.
    let Some(found) = buf
        .windows(marker.len())
        .position(|w| w[..2] == marker[..2] && w == marker)
    else {
        return false;
    };
    let at = found + marker.len();
    let len = buf[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut digits = [b'0'; 20];
    let mut n = value;
    let mut used = 0;
    loop {
        digits[19 - used] = b'0' + (n % 10) as u8;
        used += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let shown = used.max(width);
    if shown != len || shown > 20 {
        return false;
    }
    buf[at..at + len].copy_from_slice(&digits[20 - len..]);
    true
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
