//! The lease record: what a lock file says, how it is written and how it is read.
//!
//! No I/O here. The format is shared with the Go package `kit/lockfile`: one compact JSON
//! object, the four Go fields first and in Go's order, then our own fields, then one `\n`.
//! Reading follows Go's `encoding/json` rules exactly (see [`parse`]), because a file that Go
//! would call a valid lease must be one to us too, and the other way round.

use std::fmt::Write as _;

/// The four fields the Go package reads, plus the ones this package adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lease {
    /// `"<pid>-<UnixNano at acquire>-<seq>"`, new for every acquisition.
    pub owner_id: String,
    pub pid: i64,
    /// Wall-clock Unix time of the last heartbeat, in nanoseconds.
    pub last_heartbeat_unix_nano: i64,
    /// Who the owner process is, strongly enough to survive PID reuse. `None` in a Go-written
    /// lease (and in any lease that does not carry it).
    pub identity: Option<OwnerIdentity>,
    /// CLOCK_BOOTTIME of the last heartbeat, in nanoseconds; only comparable within one boot.
    pub heartbeat_boot_nano: Option<u64>,
    /// Wall-clock Unix time of the acquisition, in nanoseconds.
    pub acquired_unix_nano: Option<i64>,
    /// The holder's metadata, as compact JSON text (`None` when there is none).
    pub metadata_json: Option<String>,
}

/// Where the owner process lives and which incarnation of its pid it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerIdentity {
    pub hostname: String,
    /// `/proc/sys/kernel/random/boot_id` on Linux; another per-boot token elsewhere.
    pub boot_id: String,
    /// Inode of `/proc/self/ns/pid` on Linux, empty where there is no such thing.
    pub pid_namespace: String,
    /// The process start time in the platform's own unit (clock ticks since boot on Linux).
    pub process_start: String,
}

/// Width of the zero-padded `heartbeatBoot` string: a heartbeat rewrite never changes the
/// record's length, so it can be written in place without a reader seeing a torn length.
const BOOT_NANO_WIDTH: usize = 20;

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
    let Some(found) = buf.windows(marker.len()).position(|w| w == marker) else {
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

/// Why a file's content is not a valid lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON by Go's rules (syntax, trailing bytes, nesting deeper than Go allows).
    Syntax,
    /// JSON, but a known field has the wrong type or an out-of-range number, or the top-level
    /// value is not an object.
    Type,
    /// Parsed, but `version != 1`, blank `ownerID`, `pid <= 0` or `lastHeartbeatUnixNano <= 0`.
    Rules,
}

/// Go's `encoding/json` gives up past this nesting depth.
const GO_MAX_DEPTH: usize = 10_000;

/// Reads a lease by the Go package's rules: `json.Unmarshal` into its record, then validation.
///
/// Go's decoder, which this mirrors: whitespace is space, tab, CR and LF only; the whole input
/// must be one JSON value; object keys match field names exactly or case-insensitively (with
/// Unicode simple folding, so `ſ` matches `s` and the Kelvin sign matches `k`); unknown keys
/// are ignored whatever their (valid) value; for a repeated key the last one wins; a `null`
/// value leaves the field as it was; a number bound for an integer field must be an integer
/// literal that fits in 64 bits (`1.0` and `1e3` are type errors); invalid UTF-8 inside strings
/// is accepted (Go replaces it with U+FFFD); a type mismatch anywhere makes the whole record
/// an error. A top-level `null` decodes to an all-zero record, which fails validation.
pub fn parse(input: &[u8]) -> Result<Lease, Invalid> {
    let mut p = Parser { b: input, i: 0 };
    let mut raw = RawLease::default();
    p.ws();
    let mut type_error = false;
    match p.peek() {
        Some(b'{') => p.top_object(&mut raw, &mut type_error)?,
        Some(b'n') => p.literal(b"null")?,
        Some(_) => {
            p.skip_value_at(0)?;
            type_error = true;
        }
        None => return Err(Invalid::Syntax),
    }
    p.ws();
    if p.i != p.b.len() {
        return Err(Invalid::Syntax);
    }
    if type_error {
        return Err(Invalid::Type);
    }
    raw.validate()
}

#[derive(Default)]
struct RawLease {
    version: i64,
    owner_id: String,
    pid: i64,
    last_heartbeat: i64,
    hostname: Option<String>,
    boot_id: Option<String>,
    pid_namespace: Option<String>,
    process_start: Option<String>,
    heartbeat_boot: Option<String>,
    acquired: Option<i64>,
    metadata: Option<String>,
}

impl RawLease {
    fn validate(self) -> Result<Lease, Invalid> {
        if self.version != 1
            || self.owner_id.trim().is_empty()
            || self.pid <= 0
            || self.last_heartbeat <= 0
        {
            return Err(Invalid::Rules);
        }
        let identity = match (
            self.hostname,
            self.boot_id,
            self.pid_namespace,
            self.process_start,
        ) {
            (Some(hostname), Some(boot_id), Some(pid_namespace), Some(process_start)) => {
                Some(OwnerIdentity {
                    hostname,
                    boot_id,
                    pid_namespace,
                    process_start,
                })
            }
            _ => None,
        };
        Ok(Lease {
            owner_id: self.owner_id,
            pid: self.pid,
            last_heartbeat_unix_nano: self.last_heartbeat,
            identity,
            heartbeat_boot_nano: self.heartbeat_boot.and_then(|s| s.parse().ok()),
            acquired_unix_nano: self.acquired.filter(|a| *a > 0),
            metadata_json: self.metadata,
        })
    }
}

/// The fields we look for, after Go's key folding.
#[derive(Clone, Copy)]
enum Field {
    Version,
    OwnerId,
    Pid,
    LastHeartbeat,
    // Our own fields. Go ignores them; we read them exactly (no folding, since we write them).
    Hostname,
    BootId,
    PidNamespace,
    ProcessStart,
    HeartbeatBoot,
    Acquired,
    Metadata,
}

fn go_field(key: &[u8]) -> Option<Field> {
    match key {
        b"hostname" => return Some(Field::Hostname),
        b"bootId" => return Some(Field::BootId),
        b"pidNamespace" => return Some(Field::PidNamespace),
        b"processStart" => return Some(Field::ProcessStart),
        b"heartbeatBoot" => return Some(Field::HeartbeatBoot),
        b"acquiredUnixNano" => return Some(Field::Acquired),
        b"metadata" => return Some(Field::Metadata),
        _ => {}
    }
    let folded = go_fold(key);
    match folded.as_slice() {
        b"VERSION" => Some(Field::Version),
        b"OWNERID" => Some(Field::OwnerId),
        b"PID" => Some(Field::Pid),
        b"LASTHEARTBEATUNIXNANO" => Some(Field::LastHeartbeat),
        _ => None,
    }
}

/// Go's `foldName`: ASCII letters upper-cased, every other rune replaced by the smallest rune
/// of its simple-fold orbit. Only two non-ASCII runes fold into ASCII letters - U+017F (long s)
/// to `S` and U+212A (Kelvin sign) to `K` - so any other non-ASCII rune can never match one of
/// our ASCII names and is kept as a marker byte.
fn go_fold(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        let c = key[i];
        if c < 0x80 {
            out.push(c.to_ascii_uppercase());
            i += 1;
            continue;
        }
        let (rune, n) = decode_utf8(&key[i..]);
        out.push(match rune {
            Some('\u{017F}') => b'S',
            Some('\u{212A}') => b'K',
            _ => 0xFF,
        });
        i += n;
    }
    out
}

/// One rune, or `None` for an invalid sequence (which Go decodes as U+FFFD, one byte long).
fn decode_utf8(b: &[u8]) -> (Option<char>, usize) {
    let len = match b[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (None, 1),
    };
    if b.len() < len {
        return (None, 1);
    }
    match std::str::from_utf8(&b[..len]) {
        Ok(s) => (s.chars().next(), len),
        Err(_) => (None, 1),
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), Invalid> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Invalid::Syntax)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Invalid::Syntax)
        }
    }

    fn top_object(&mut self, raw: &mut RawLease, type_error: &mut bool) -> Result<(), Invalid> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            match go_field(&key) {
                Some(field) => self.field(field, raw, type_error)?,
                None => self.skip_value_at(1)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Invalid::Syntax),
            }
        }
    }

    fn field(
        &mut self,
        field: Field,
        raw: &mut RawLease,
        type_error: &mut bool,
    ) -> Result<(), Invalid> {
        if self.peek() == Some(b'n') {
            // Go leaves the field untouched for a null.
            return self.literal(b"null");
        }
        match field {
            Field::Version | Field::Pid | Field::LastHeartbeat | Field::Acquired => {
                let start = self.i;
                // Only Go's own fields make a type error; Go ignores ours.
                let go_owned = !matches!(field, Field::Acquired);
                if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
                    self.skip_value_at(1)?;
                    *type_error |= go_owned;
                    return Ok(());
                }
                self.number()?;
                match go_parse_int(&self.b[start..self.i]) {
                    Some(n) => match field {
                        Field::Version => raw.version = n,
                        Field::Pid => raw.pid = n,
                        Field::LastHeartbeat => raw.last_heartbeat = n,
                        _ => raw.acquired = Some(n),
                    },
                    None => *type_error |= go_owned,
                }
            }
            Field::Metadata => {
                let start = self.i;
                self.skip_value_at(1)?;
                raw.metadata = Some(String::from_utf8_lossy(&self.b[start..self.i]).into_owned());
            }
            _ => {
                if self.peek() != Some(b'"') {
                    self.skip_value_at(1)?;
                    *type_error |= matches!(field, Field::OwnerId);
                    return Ok(());
                }
                let bytes = self.string()?;
                let s = String::from_utf8_lossy(&bytes).into_owned();
                match field {
                    Field::OwnerId => raw.owner_id = s,
                    Field::Hostname => raw.hostname = Some(s),
                    Field::BootId => raw.boot_id = Some(s),
                    Field::PidNamespace => raw.pid_namespace = Some(s),
                    Field::ProcessStart => raw.process_start = Some(s),
                    Field::HeartbeatBoot => raw.heartbeat_boot = Some(s),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A JSON string, unescaped. Invalid UTF-8 is passed through (Go accepts it); control
    /// characters and bad escapes are syntax errors.
    fn string(&mut self) -> Result<Vec<u8>, Invalid> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or(Invalid::Syntax)?;
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = self.peek().ok_or(Invalid::Syntax)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    self.i = save;
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(Invalid::Syntax),
                    }
                }
                0..=0x1F => return Err(Invalid::Syntax),
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Invalid> {
        let digits = self.b.get(self.i..self.i + 4).ok_or(Invalid::Syntax)?;
        let mut v = 0u32;
        for d in digits {
            v = v * 16 + (*d as char).to_digit(16).ok_or(Invalid::Syntax)?;
        }
        self.i += 4;
        Ok(v)
    }

    /// JSON number grammar, strictly: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<(), Invalid> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Invalid::Syntax),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Invalid::Syntax);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Invalid::Syntax);
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    /// Skips any one JSON value without recursion, so hostile nesting cannot overflow the
    /// stack. Depth is limited as Go limits it.
    /// `outer`: how many containers enclose this value, as Go counts them (every `{` and `[`
    /// opened, the lease object itself included, empty ones too; at most 10 000).
    fn skip_value_at(&mut self, outer: usize) -> Result<(), Invalid> {
        // Each entry: true = inside an object, false = inside an array.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            self.ws();
            // A value.
            match self.peek().ok_or(Invalid::Syntax)? {
                b'{' => {
                    if outer + stack.len() + 1 > GO_MAX_DEPTH {
                        return Err(Invalid::Syntax);
                    }
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(true);
                        self.object_key()?;
                        continue;
                    }
                }
                b'[' => {
                    if outer + stack.len() + 1 > GO_MAX_DEPTH {
                        return Err(Invalid::Syntax);
                    }
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(false);
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Invalid::Syntax),
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&in_object) = stack.last() else {
                    return Ok(());
                };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if in_object {
                            self.ws();
                            self.object_key()?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {
                        self.i += 1;
                        stack.pop();
                    }
                    Some(b']') if !in_object => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return Err(Invalid::Syntax),
                }
            }
        }
    }

    fn object_key(&mut self) -> Result<(), Invalid> {
        self.string()?;
        self.ws();
        self.expect(b':')
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)` on a JSON number literal: integers only, in range.
fn go_parse_int(lit: &[u8]) -> Option<i64> {
    std::str::from_utf8(lit).ok()?.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_HELD: &[u8] = b"{\"version\":1,\"ownerID\":\"24866-1795664371031210457-1\",\"pid\":24866,\"lastHeartbeatUnixNano\":1795664371031285549}\n";

    fn sample() -> Lease {
        Lease {
            owner_id: "42-1700000000000000000-1".into(),
            pid: 42,
            last_heartbeat_unix_nano: 1_700_000_000_123_456_789,
            identity: Some(OwnerIdentity {
                hostname: "box".into(),
                boot_id: "b0".into(),
                pid_namespace: "4026531836".into(),
                process_start: "123".into(),
            }),
            heartbeat_boot_nano: Some(5_000_000_000),
            acquired_unix_nano: Some(1_700_000_000_000_000_000),
            metadata_json: Some("{\"url\":\"http://localhost:5173/\"}".into()),
        }
    }

    #[test]
    fn go_fixture_parses() {
        let l = parse(GO_HELD).unwrap();
        assert_eq!(l.pid, 24866);
        assert_eq!(l.owner_id, "24866-1795664371031210457-1");
        assert!(l.identity.is_none());
    }

    #[test]
    fn encode_starts_like_go_and_round_trips() {
        let l = sample();
        let bytes = l.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"version\":1,\"ownerID\":\"42-1700000000000000000-1\",\"pid\":42,\"lastHeartbeatUnixNano\":1700000000123456789,"));
        assert!(text.ends_with("}\n") && !text.ends_with("}\n\n"));
        assert_eq!(parse(&bytes).unwrap(), l);
        // The heartbeat rewrite keeps the length, and patching equals encoding.
        let hb = l.with_heartbeat(1_700_000_009_999_999_999, Some(123_456_789_012_345));
        assert_eq!(hb.encode().len(), bytes.len());
        let mut patched = bytes.clone();
        assert!(patch_heartbeat(&mut patched, &hb));
        assert_eq!(patched, hb.encode());
        // A width change is refused, not mangled.
        let mut short = bytes.clone();
        assert!(!patch_heartbeat(&mut short, &l.with_heartbeat(5, Some(1))));
        assert_eq!(short, bytes);
    }

    #[test]
    fn go_only_record_encodes_exactly_like_go() {
        let l = parse(GO_HELD).unwrap();
        assert_eq!(l.encode(), GO_HELD);
    }

    #[test]
    fn go_rules() {
        let ok = |s: &str| parse(s.as_bytes()).is_ok();
        let base = r#""ownerID":"o","pid":5,"lastHeartbeatUnixNano":9"#;
        assert!(ok(&format!("{{\"version\":1,{base}}}")));
        assert!(ok(&format!(" \r\n\t{{\"version\":1,{base}}}\n\n ")));
        assert!(ok(&format!("{{\"VERSION\":1,{base}}}")));
        assert!(ok(&format!("{{\"ver\u{017F}ion\":1,{base}}}")));
        assert!(ok(&format!("{{\"version\":2,\"version\":1,{base}}}")));
        assert!(!ok(&format!("{{\"version\":1,\"version\":2,{base}}}")));
        assert!(ok(&format!("{{\"version\":1,\"version\":null,{base}}}")));
        assert!(ok(&format!(
            "{{\"version\":1,\"x\":[1,{{\"a\":[]}}],{base}}}"
        )));
        assert!(!ok(&format!("{{\"version\":1,{base},\"x\":\"\u{1}\"}}")));
        assert!(!ok(&format!("{{\"version\":1.0,{base}}}")));
        assert!(!ok(&format!("{{\"version\":1e0,{base}}}")));
        assert!(!ok(&format!("{{\"version\":\"1\",{base}}}")));
        assert!(!ok(&format!("{{\"version\":1,{base}}}x")));
        assert!(!ok(&format!("{{\"version\":1,{base}}}{{}}")));
        assert!(!ok(&format!("{{\"version\":01,{base}}}")));
        assert!(!ok(&format!(
            "{{\"version\":1,\"pid\":99999999999999999999,{base}}}"
        )));
        assert!(!ok("null"));
        assert!(!ok(""));
        assert!(!ok("12345"));
        assert!(!ok("[]"));
        assert!(!ok(
            r#"{"version":1,"ownerID":"  ","pid":5,"lastHeartbeatUnixNano":9}"#
        ));
        assert!(!ok(
            r#"{"version":1,"ownerID":"o","pid":0,"lastHeartbeatUnixNano":9}"#
        ));
        assert!(!ok(
            r#"{"version":1,"ownerID":"o","pid":5,"lastHeartbeatUnixNano":-9}"#
        ));
        // Invalid UTF-8 inside a string is fine for Go.
        let mut v =
            b"{\"version\":1,\"ownerID\":\"o\xff\",\"pid\":5,\"lastHeartbeatUnixNano\":9}".to_vec();
        assert!(parse(&v).is_ok());
        // ...but not outside one.
        v.push(0xff);
        assert!(parse(&v).is_err());
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut s = String::from("{\"version\":1,\"x\":");
        s.push_str(&"[".repeat(200_000));
        s.push_str(&"]".repeat(200_000));
        s.push('}');
        assert_eq!(parse(s.as_bytes()), Err(Invalid::Syntax));
        let mut s =
            String::from(r#"{"ownerID":"o","pid":5,"lastHeartbeatUnixNano":9,"version":1,"x":"#);
        s.push_str(&"[".repeat(5000));
        s.push_str(&"]".repeat(5000));
        s.push('}');
        assert!(parse(s.as_bytes()).is_ok());
    }
}
