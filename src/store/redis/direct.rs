//! Requests for a connection the caller keeps itself (the JS thread's own socket to the server,
//! `lib/store-direct.js`): the claim and remove scripts as the bytes of one `EVALSHA` each, and
//! the reading of their replies. Only the plain outcomes are taken from such a reply - a claim
//! granted, a remove answered; for anything else (a held lock, a script the server has not
//! loaded, an error) the caller runs the operation again through [`RedisStore`], which stays
//! the one place that waits, retries and loads scripts.

use super::{ms, scripts, RedisStore};
use crate::store::Token;
use redis::ConnectionAddr;
use std::time::Duration;

/// Where the caller connects, and what it sends first.
pub struct Route {
    /// Host and port, or `None` for a unix socket.
    pub tcp: Option<(String, u16)>,
    /// The unix socket's path.
    pub path: Option<String>,
    /// `AUTH` and `SELECT` as the URL asks, to send before anything else (may be empty).
    pub hello: Vec<u8>,
    /// How many replies `hello` gets; each must be `+OK`.
    pub replies: u32,
}

impl RedisStore {
    /// The route for a connection of the caller's own, or `None` when the URL needs TLS (that
    /// stays with the store's own connection).
    pub fn direct_route(&self) -> Option<Route> {
        let info = self.client.get_connection_info();
        let (tcp, path) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (Some((host.clone(), *port)), None),
            ConnectionAddr::Unix(p) if cfg!(unix) => (None, Some(p.to_str()?.to_string())),
            _ => return None,
        };
        let settings = info.redis_settings();
        let mut hello = Vec::new();
        let mut replies = 0;
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            hello.extend(auth.arg(password).get_packed_command());
            replies += 1;
        }
        if settings.db() != 0 {
            hello.extend(redis::cmd("SELECT").arg(settings.db()).get_packed_command());
            replies += 1;
        }
        Some(Route {
            tcp,
            path,
            hello,
            replies,
        })
    }
}

/// The two requests of one lock, as sent: what does not change between acquisitions (the
/// script hashes, the key names) is written once, the owner id, record and TTL per request.
/// Text, not bytes: every part is UTF-8, and a JS string is much cheaper to make than a Buffer.
pub struct Requests {
    /// `EVALSHA <claim> 2 <lease> <counter>`.
    claim: Prefix,
    /// `EVALSHA <remove> 1 <lease>`.
    remove: Prefix,
    /// The release channel, the remove's last argument.
    channel: String,
}

/// The first parts of a command, written as RESP bulk strings (the array header, which counts
/// the parts still to come, is written with the request).
struct Prefix {
    parts: usize,
    text: String,
}

impl Prefix {
    fn new(parts: &[&str]) -> Prefix {
        let mut text = String::new();
        for part in parts {
            bulk(&mut text, part);
        }
        Prefix {
            parts: parts.len(),
            text,
        }
    }

    /// The whole command: this prefix, then `rest`.
    fn with(&self, rest: &[&str]) -> String {
        use std::fmt::Write;
        let more: usize = rest.iter().map(|p| p.len() + 16).sum();
        let mut out = String::with_capacity(self.text.len() + more + 8);
        // Writing to a String cannot fail.
        let _ = write!(out, "*{}\r\n", self.parts + rest.len());
        out.push_str(&self.text);
        for part in rest {
            bulk(&mut out, part);
        }
        out
    }
}

impl Requests {
    pub fn new(key: &str) -> Requests {
        let [lease, counter, channel] = scripts::names(key);
        let claim_hash = scripts::claim().get_hash();
        let remove_hash = scripts::remove().get_hash();
        Requests {
            claim: Prefix::new(&["EVALSHA", claim_hash, "2", &lease, &counter]),
            remove: Prefix::new(&["EVALSHA", remove_hash, "1", &lease]),
            channel,
        }
    }

    /// The claim script for `owner_id` (see [`crate::store::LeaseStore::claim`]).
    pub fn claim(&self, owner_id: &str, record: &str, ttl: Duration) -> String {
        self.claim.with(&[owner_id, record, &ms(ttl)])
    }

    /// The remove script for `owner_id` (see [`crate::store::LeaseStore::remove`]).
    pub fn remove(&self, owner_id: &str) -> String {
        self.remove.with(&[owner_id, &self.channel])
    }
}

/// Appends `part` as a RESP bulk string.
fn bulk(out: &mut String, part: &str) {
    use std::fmt::Write;
    let _ = write!(out, "${}\r\n{part}\r\n", part.len());
}

/// The token of a claim granted by `reply` (one whole reply); `None` for any other reply.
///
/// Only the exact shape of a grant is read (`*2 :1 $n <digits>`, what [`claim_reply`] takes as
/// granted): anything else goes to the store thread's path, whose parser reads every reply.
/// The general parser costs more here than the rest of the call.
pub fn granted(reply: &[u8]) -> Option<Token> {
    let rest = reply.strip_prefix(b"*2\r\n:1\r\n$")?;
    let (len, rest) = line(rest)?;
    let len: usize = std::str::from_utf8(len).ok()?.parse().ok()?;
    let (digits, tail) = line(rest)?;
    if digits.len() != len || !tail.is_empty() {
        return None;
    }
    let token = std::str::from_utf8(digits).ok()?;
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// Whether the remove answered by `reply` deleted; `None` for an error or another reply.
pub fn removed(reply: &[u8]) -> Option<bool> {
    match reply {
        b":1\r\n" => Some(true),
        b":0\r\n" => Some(false),
        _ => None,
    }
}

/// The bytes before the first CRLF of `bytes`, and those after it.
fn line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.windows(2).position(|w| w == b"\r\n")?;
    Some((&bytes[..at], &bytes[at + 2..]))
}

#[cfg(test)]
mod tests {
    use super::super::{claim_reply, remove_reply};
    use super::*;

    #[test]
    fn replies_are_read_as_the_store_reads_them() {
        assert_eq!(granted(b"*2\r\n:1\r\n$2\r\n42\r\n"), Some(42));
        assert_eq!(granted(b"*2\r\n:0\r\n:1000\r\n"), None);
        assert_eq!(granted(b"-NOSCRIPT No matching script.\r\n"), None);
        assert_eq!(granted(b"*2\r\n:1\r\n"), None);
        assert_eq!(removed(b":1\r\n"), Some(true));
        assert_eq!(removed(b":0\r\n"), Some(false));
        assert_eq!(removed(b"-ERR boom\r\n"), None);
        assert_eq!(granted(b"*2\r\n:1\r\n$3\r\n42\r\n"), None);
        assert_eq!(granted(b"*2\r\n:1\r\n$2\r\n42\r\n:1\r\n"), None);
        assert_eq!(granted(b"*2\r\n:1\r\n$2\r\n-4\r\n"), None);
        assert_eq!(
            granted(b"*2\r\n:1\r\n$20\r\n99999999999999999999\r\n"),
            None
        );
        assert_eq!(
            granted(b"*2\r\n:1\r\n$16\r\n1796092031788734\r\n"),
            Some(1796092031788734)
        );
        assert_eq!(removed(b":2\r\n"), None);
        // Every reply the fast path reads as plain, the store thread's parser reads the same.
        for reply in [&b"*2\r\n:1\r\n$2\r\n42\r\n"[..], b":1\r\n", b":0\r\n"] {
            let v = redis::parse_redis_value(reply).unwrap();
            assert!(claim_reply(&v).is_ok() || remove_reply(&v).is_ok());
        }
    }

    #[test]
    fn requests_are_the_commands_the_store_sends() {
        let requests = Requests::new("k");
        let [lease, counter, channel] = scripts::names("k");
        let claim = redis::cmd("EVALSHA")
            .arg(scripts::claim().get_hash())
            .arg(2)
            .arg(&lease)
            .arg(counter)
            .arg("o")
            .arg("{\"a\":\"\u{e9}\"}")
            .arg(5000)
            .get_packed_command();
        let ours = requests.claim("o", "{\"a\":\"\u{e9}\"}", Duration::from_secs(5));
        assert_eq!(ours.as_bytes(), &claim[..]);
        let remove = redis::cmd("EVALSHA")
            .arg(scripts::remove().get_hash())
            .arg(1)
            .arg(lease)
            .arg("o")
            .arg(channel)
            .get_packed_command();
        assert_eq!(requests.remove("o").as_bytes(), &remove[..]);
    }

    #[test]
    fn routes_carry_auth_and_database() {
        let tls_or_plain = RedisStore::open("redis://u:pw@127.0.0.1:7000/3").unwrap();
        let route = tls_or_plain.direct_route().unwrap();
        assert_eq!(route.tcp, Some(("127.0.0.1".into(), 7000)));
        assert_eq!(route.replies, 2);
        let hello = String::from_utf8_lossy(&route.hello).into_owned();
        assert!(
            hello.contains("AUTH\r\n$1\r\nu\r\n$2\r\npw") && hello.contains("SELECT\r\n$1\r\n3")
        );
        let plain = RedisStore::open("redis://127.0.0.1:7000").unwrap();
        assert_eq!(plain.direct_route().unwrap().replies, 0);
    }
}
