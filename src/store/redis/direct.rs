//! Requests for a connection the caller keeps itself (the JS thread's own socket to the server,
//! `lib/store-direct.js`): the claim and remove scripts as the bytes of one `EVALSHA` each, and
//! the reading of their replies. Only the plain outcomes are taken from such a reply - a claim
//! granted, a remove answered; for anything else (a held lock, a script the server has not
//! loaded, an error) the caller runs the operation again through [`RedisStore`], which stays
//! the one place that waits, retries and loads scripts.

use super::{claim_reply, ms, remove_reply, scripts, RedisStore};
use crate::store::{Claim, Token};
use redis::{ConnectionAddr, Value};
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

/// The claim script for `owner_id` (see [`crate::store::LeaseStore::claim`]), as sent.
pub fn claim_request(key: &str, owner_id: &str, record: &str, ttl: Duration) -> Vec<u8> {
    let [lease, counter, _] = scripts::names(key);
    redis::cmd("EVALSHA")
        .arg(scripts::claim().get_hash())
        .arg(2)
        .arg(lease)
        .arg(counter)
        .arg(owner_id)
        .arg(record)
        .arg(ms(ttl))
        .get_packed_command()
}

/// The remove script for `owner_id` (see [`crate::store::LeaseStore::remove`]), as sent.
pub fn remove_request(key: &str, owner_id: &str) -> Vec<u8> {
    let [lease, _, channel] = scripts::names(key);
    redis::cmd("EVALSHA")
        .arg(scripts::remove().get_hash())
        .arg(1)
        .arg(lease)
        .arg(owner_id)
        .arg(channel)
        .get_packed_command()
}

fn parse(reply: &[u8]) -> Option<Value> {
    redis::parse_redis_value(reply).ok()
}

/// The token of a claim granted by `reply` (one whole reply); `None` for any other reply.
pub fn granted(reply: &[u8]) -> Option<Token> {
    match claim_reply(&parse(reply)?) {
        Ok(Claim::Granted { token }) => Some(token),
        _ => None,
    }
}

/// Whether the remove answered by `reply` deleted; `None` for an error or another reply.
pub fn removed(reply: &[u8]) -> Option<bool> {
    remove_reply(&parse(reply)?).ok()
}

#[cfg(test)]
mod tests {
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
    }

    #[test]
    fn requests_name_the_scripts_by_hash() {
        let claim = claim_request("k", "o", "{}", Duration::from_secs(5));
        let text = String::from_utf8_lossy(&claim);
        assert!(text.starts_with("*8\r\n$7\r\nEVALSHA\r\n$40\r\n"));
        assert!(text.contains(scripts::claim().get_hash()));
        assert!(text.contains("leaselock:{k}:lease") && text.ends_with("$4\r\n5000\r\n"));
        let rm = String::from_utf8_lossy(&remove_request("k", "o")).into_owned();
        assert!(rm.contains(scripts::remove().get_hash()) && rm.contains("leaselock:{k}:released"));
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
