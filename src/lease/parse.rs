//! Reading a lease exactly as Go's `encoding/json` and the Go package's validation would.

use super::{Lease, OwnerIdentity};

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

/// How every lease writer starts a record (Go's `json.Marshal` of its struct, and ours).
const RECORD_START: &[u8] = b"{\"version\":";

/// Whether content that is not a valid lease may still be one: empty or whitespace; a record
/// cut off mid-write (not complete JSON, and a byte prefix of a record as lease writers start
/// one - what a Go writer stalled between its create and its write leaves); or a complete JSON
/// object with an `ownerID` key (matched as Go matches keys) that is nevertheless not a valid
/// lease (another version, pid 0...). Anything else - `{"name":"app"}`, a `package.json`, a
/// binary - was not written by a lease writer.
pub fn possible_lease(input: &[u8]) -> bool {
    let mut p = Parser { b: input, i: 0 };
    p.ws();
    if p.peek().is_none() {
        return true;
    }
    let mut has_owner = false;
    let parsed = if p.peek() == Some(b'{') {
        p.object_keys(&mut has_owner)
    } else {
        p.skip_value_at(0)
    };
    match parsed {
        Ok(()) => {
            p.ws();
            p.i == p.b.len() && has_owner
        }
        // Ran out of input: a cut-off record if it starts like one.
        Err(_) if p.i >= p.b.len() => {
            input.starts_with(RECORD_START) || RECORD_START.starts_with(input)
        }
        Err(_) => RECORD_START.starts_with(input),
    }
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
    time_namespace: Option<String>,
    heartbeat_boot: Option<String>,
    acquired: Option<i64>,
    token: Option<i64>,
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
                Some(std::sync::Arc::new(OwnerIdentity {
                    hostname,
                    boot_id,
                    pid_namespace,
                    process_start,
                    time_namespace: self.time_namespace,
                }))
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
            token: self.token.filter(|t| *t > 0).map(|t| t as u64),
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
    TimeNamespace,
    HeartbeatBoot,
    Acquired,
    Token,
    Metadata,
}

fn go_field(key: &[u8]) -> Option<Field> {
    match key {
        b"hostname" => return Some(Field::Hostname),
        b"bootId" => return Some(Field::BootId),
        b"pidNamespace" => return Some(Field::PidNamespace),
        b"processStart" => return Some(Field::ProcessStart),
        b"timeNamespace" => return Some(Field::TimeNamespace),
        b"heartbeatBoot" => return Some(Field::HeartbeatBoot),
        b"acquiredUnixNano" => return Some(Field::Acquired),
        b"token" => return Some(Field::Token),
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

    /// A top-level object, noting whether one of its keys is Go's `ownerID`.
    fn object_keys(&mut self, has_owner: &mut bool) -> Result<(), Invalid> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            *has_owner |= matches!(go_field(&key), Some(Field::OwnerId));
            self.ws();
            self.expect(b':')?;
            self.skip_value_at(1)?;
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
            Field::Version | Field::Pid | Field::LastHeartbeat | Field::Acquired | Field::Token => {
                let start = self.i;
                // Only Go's own fields make a type error; Go ignores ours.
                let go_owned = !matches!(field, Field::Acquired | Field::Token);
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
                        Field::Token => raw.token = Some(n),
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
                    Field::TimeNamespace => raw.time_namespace = Some(s),
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
            let opened = match self.peek().ok_or(Invalid::Syntax)? {
                b'{' => self.open(&mut stack, outer, true)?,
                b'[' => self.open(&mut stack, outer, false)?,
                _ => {
                    self.scalar()?;
                    false
                }
            };
            if !opened && !self.next_element(&mut stack)? {
                return Ok(());
            }
        }
    }

    /// Skips a string, `true`, `false`, `null` or a number.
    fn scalar(&mut self) -> Result<(), Invalid> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Invalid::Syntax),
        }
    }

    /// Enters the object or array at the cursor: `true` when it has content to read (it is
    /// pushed on `stack`, and for an object the first key is read), `false` when it was empty
    /// and is already closed.
    fn open(&mut self, stack: &mut Vec<bool>, outer: usize, object: bool) -> Result<bool, Invalid> {
        if outer + stack.len() + 1 > GO_MAX_DEPTH {
            return Err(Invalid::Syntax);
        }
        self.i += 1;
        self.ws();
        let close = if object { b'}' } else { b']' };
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(false);
        }
        stack.push(object);
        if object {
            self.object_key()?;
        }
        Ok(true)
    }

    /// After a value: closes the containers it ends. `true` when the cursor is at the next
    /// element, `false` when the outermost value is complete.
    fn next_element(&mut self, stack: &mut Vec<bool>) -> Result<bool, Invalid> {
        loop {
            let Some(&in_object) = stack.last() else {
                return Ok(false);
            };
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    if in_object {
                        self.ws();
                        self.object_key()?;
                    }
                    return Ok(true);
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
