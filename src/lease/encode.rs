//! Writing a lease: Go's four fields first, in Go's order, then ours, then `\n`.

use super::{Lease, BOOT_NANO_WIDTH};
use std::fmt::Write as _;

impl Lease {
    /// The file's bytes: Go's four fields first, in Go's order, then ours, then `\n`.
    pub fn encode(&self) -> Vec<u8> {
        // Ours are about 340 bytes with identity fields: room for that without growing.
        let extra = self.metadata_json.as_ref().map_or(0, |m| m.len());
        let mut s = String::with_capacity(384 + extra);
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
    Stamps::find(written).is_some_and(|s| s.patch(written, next))
}

/// Where a record's heartbeat times are: found once per record written, so that every
/// heartbeat patches them in place without searching the record again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps {
    /// Offset and length of the digits of `lastHeartbeatUnixNano`.
    unix: (usize, usize),
    /// The same for `heartbeatBoot`, where the record has it.
    boot: Option<(usize, usize)>,
}

impl Stamps {
    /// The heartbeat fields of the record `written`. The first match of each marker is the
    /// field itself: the Go fields and ours come before the metadata, and a marker with bare
    /// quotes cannot occur inside an earlier JSON string.
    pub fn find(written: &[u8]) -> Option<Stamps> {
        Some(Stamps {
            unix: digits_after(written, b"\"lastHeartbeatUnixNano\":")?,
            boot: digits_after(written, b"\"heartbeatBoot\":\""),
        })
    }

    /// Writes the heartbeat times of `next` over the old ones in `written` (the record these
    /// stamps were found in); `false` when a value would take another number of digits (or
    /// the record has no such field), and then nothing was changed.
    pub fn patch(&self, written: &mut [u8], next: &Lease) -> bool {
        let Ok(unix) = u64::try_from(next.last_heartbeat_unix_nano) else {
            return false;
        };
        let boot = match (next.heartbeat_boot_nano, self.boot) {
            (Some(b), Some(at)) => Some((b, at)),
            (Some(_), None) => return false,
            (None, _) => None,
        };
        let unix_fits = digit_count(unix, 0) == self.unix.1;
        if !unix_fits || boot.is_some_and(|(b, at)| digit_count(b, BOOT_NANO_WIDTH) != at.1) {
            return false;
        }
        put_digits(written, self.unix, unix);
        if let Some((b, at)) = boot {
            put_digits(written, at, b);
        }
        true
    }
}

/// Offset and length of the run of digits right after the first `marker`.
fn digits_after(buf: &[u8], marker: &[u8]) -> Option<(usize, usize)> {
    // Look at the first two bytes before comparing a whole window (a quote alone starts every
    // other JSON token).
    let found = buf
        .windows(marker.len())
        .position(|w| w[..2] == marker[..2] && w == marker)?;
    let at = found + marker.len();
    let len = buf[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    Some((at, len))
}

/// How many digits `value` takes, zero-padded to `width`.
fn digit_count(value: u64, width: usize) -> usize {
    let mut n = value;
    let mut used = 1;
    while n >= 10 {
        n /= 10;
        used += 1;
    }
    used.max(width)
}

/// Writes `value` zero-padded over the `len` digits at `at` (`len` as `digit_count` says).
fn put_digits(buf: &mut [u8], (at, len): (usize, usize), value: u64) {
    let mut n = value;
    for d in buf[at..at + len].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    // The usual case (ids, host names, numbers as text) needs no escape: copy it whole.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
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
