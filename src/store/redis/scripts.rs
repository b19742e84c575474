//! The server side of the Redis store: one Lua script per operation, each run atomically by the
//! server, and the reading of their replies.
//!
//! Layout, for a lock named `K` (the braces are a Redis Cluster hash tag, so all of one lock's
//! keys live in one slot and one script may touch them together):
//! - `leaselock:{K}:lease` - a hash `owner`, `token`, `record` (the lease record, the same JSON
//!   a lock file holds), `ttl` (ms), expiring after `ttl` unless renewed;
//! - `leaselock:{K}:token` - the fencing counter, never expiring;
//! - `leaselock:{K}:released` - the channel a release publishes on.
//!
//! A value under the lease key that is not such a hash (another program's key) is reported as
//! held by an unknown owner and never overwritten or deleted.

use super::super::{Stored, Token};
use crate::lease;
use redis::{Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// The lease key, the fencing counter key and the release channel of lock `key`.
pub fn names(key: &str) -> [String; 3] {
    [
        format!("leaselock:{{{key}}}:lease"),
        format!("leaselock:{{{key}}}:token"),
        format!("leaselock:{{{key}}}:released"),
    ]
}

/// Shared by every script: what is stored under a lease key, as
/// `{pttl, owner, token, record, ttl}` (`false` for what a foreign value lacks), or nil.
const DESCRIBE: &str = r#"
local function describe(k)
  local kind = redis.call('TYPE', k)['ok']
  if kind == 'none' then return nil end
  local pttl = redis.call('PTTL', k)
  if kind ~= 'hash' then return {pttl, false, false, false, false} end
  local h = redis.call('HMGET', k, 'owner', 'token', 'record', 'ttl')
  return {pttl, h[1], h[2], h[3], h[4]}
end
"#;

/// KEYS: lease, counter. ARGV: owner, record, ttl ms.
/// Reply `{1, token}` when claimed, else `{0, <describe>...}`.
///
/// The token is the larger of the counter plus one and the server's clock in microseconds.
/// The counter alone makes tokens increase while the server keeps its data; the clock floor
/// keeps them increasing when the counter is lost (a restart without persistence, a failover
/// to a replica that had not received the last increments): the server runs one script at a
/// time, each taking more than a microsecond, so no counter can run ahead of that clock. Only
/// a server clock set back across such a loss can repeat a token; that window is documented.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DESCRIBE}{}",
        r#"
local cur = describe(KEYS[1])
if cur then return {0, unpack(cur)} end
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
local n = redis.call('INCR', KEYS[2])
if n < floor then
  n = floor
  redis.call('SET', KEYS[2], string.format('%.0f', n))
end
local token = string.format('%.0f', n)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token, 'record', ARGV[2], 'ttl', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, token}
"#
    ))
});

/// KEYS: lease. ARGV: owner, ttl ms, record ('' keeps it).
/// Reply `{1}` renewed, `{0}` nothing there, `{2, <describe>...}` somebody else's.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DESCRIBE}{}",
        r#"
local cur = describe(KEYS[1])
if not cur then return {0} end
if cur[2] ~= ARGV[1] then return {2, unpack(cur)} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'record', ARGV[3]) end
return {1}
"#
    ))
});

/// KEYS: lease. ARGV: owner, channel. Deletes only `owner`'s lease, then wakes the waiters.
/// A value that is not a hash makes `HGET` fail: `pcall` turns that into an error table, which
/// is no owner id, so such a value is left alone (one call less than asking `TYPE` first).
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.pcall('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[1])
  return 1
end
return 0
"#,
    )
});

/// KEYS: lease. Reply `{0}` when free, else `{1, <describe>...}`.
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DESCRIBE}{}",
        r#"
local cur = describe(KEYS[1])
if not cur then return {0} end
return {1, unpack(cur)}
"#
    ))
});

pub fn claim() -> &'static Script {
    &CLAIM
}
pub fn renew() -> &'static Script {
    &RENEW
}
pub fn remove() -> &'static Script {
    &REMOVE
}
pub fn read() -> &'static Script {
    &READ
}

/// A reply that is not what our script returns (a proxy in between, a server that is not
/// Redis): reported rather than guessed at.
pub fn unexpected(what: &str, v: &Value) -> String {
    format!("unexpected reply to the {what} script: {v:?}")
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

pub fn token(v: &Value) -> Option<Token> {
    text(v).and_then(|t| t.parse().ok())
}

/// The status number a script reply starts with, and the rest of it.
pub fn split(v: &Value) -> Option<(i64, &[Value])> {
    match v {
        Value::Array(items) => {
            let (first, rest) = items.split_first()?;
            Some((int(first)?, rest))
        }
        _ => None,
    }
}

/// A `describe` tuple: `{pttl, owner, token, record, ttl}`.
pub fn stored(items: &[Value]) -> Option<Stored> {
    let pttl = int(items.first()?)?;
    let at = |i: usize| items.get(i).unwrap_or(&Value::Nil);
    let record = match at(3) {
        Value::BulkString(b) => lease::parse(b).ok(),
        _ => None,
    };
    Some(Stored {
        owner_id: text(at(1)).unwrap_or_default(),
        record,
        token: token(at(2)),
        ttl: int(at(4)).and_then(|ms| u64::try_from(ms).ok().map(Duration::from_millis)),
        // -1: no expiry; -2: gone between the two reads of one script (cannot happen).
        ttl_left: u64::try_from(pttl).ok().map(Duration::from_millis),
    })
}
