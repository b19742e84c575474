//! The Redis (and Valkey) store: one multiplexed connection per server and process, opened on
//! first use and opened again after it breaks; one pub/sub connection per waiting acquisition.
//! All I/O runs on the tokio runtime of the caller.

pub mod direct;
mod scripts;

use super::{Claim, LeaseStore, Renewal, StoreError, Stored, Watch};
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubStream};
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, Script, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long opening a connection (TCP or unix socket, then authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may wait for its reply before the connection is given up.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisStore {
    client: Client,
    /// The URL without its password, for messages.
    shown: String,
    /// The shared connection and its generation (so only the user of a broken one drops it).
    conn: tokio::sync::Mutex<(u64, Option<MultiplexedConnection>)>,
}

/// `url` with any password replaced by `***` and any query dropped (it may carry `pass=`).
pub fn redact(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            let hidden = if rest[..at].contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{scheme}://{hidden}{}", &rest[at..])
        }
        None => format!("{scheme}://{rest}"),
    }
}

impl RedisStore {
    /// Checks `url` (`redis://`, `rediss://`, `unix://`, `redis+unix://`, and the `valkey`
    /// spellings) without connecting. `rediss://` verifies the server's certificate against the
    /// system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured), with rustls.
    pub fn open(url: &str) -> Result<RedisStore, String> {
        let shown = redact(url);
        let client = Client::open(url).map_err(|e| format!("{shown} is not a Redis URL: {e}"))?;
        Ok(RedisStore {
            client,
            shown,
            conn: tokio::sync::Mutex::new((0, None)),
        })
    }

    /// The store for `url`, shared by every lock of the process that names the same URL.
    pub fn shared(url: &str) -> Result<Arc<RedisStore>, String> {
        static STORES: Mutex<Option<HashMap<String, Weak<RedisStore>>>> = Mutex::new(None);
        let mut stores = STORES.lock().unwrap_or_else(|p| p.into_inner());
        let map = stores.get_or_insert_with(HashMap::new);
        if let Some(s) = map.get(url).and_then(Weak::upgrade) {
            return Ok(s);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let store = Arc::new(RedisStore::open(url)?);
        map.insert(url.to_string(), Arc::downgrade(&store));
        Ok(store)
    }

    /// The URL as shown in messages (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn error(&self, e: &RedisError) -> StoreError {
        let auth = e.kind() == ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
        if auth {
            StoreError::Auth(format!(
                "the Redis server at {} refused the credentials: {e}",
                self.shown
            ))
        } else if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            StoreError::Unreachable(format!(
                "cannot reach the Redis server at {}: {e}",
                self.shown
            ))
        } else {
            StoreError::Server(format!("the Redis server at {} failed: {e}", self.shown))
        }
    }

    fn timed_out(&self, what: &str) -> StoreError {
        StoreError::Unreachable(format!(
            "cannot reach the Redis server at {}: {what} timed out",
            self.shown
        ))
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = &slot.1 {
            return Ok((slot.0, c.clone()));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let opened = tokio::time::timeout(
            CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| self.timed_out("connecting"))?
        .map_err(|e| self.error(&e))?;
        slot.0 += 1;
        slot.1 = Some(opened.clone());
        Ok((slot.0, opened))
    }

    /// Drops connection `generation` after it failed, so the next call opens a new one.
    async fn forget(&self, generation: u64) {
        let mut slot = self.conn.lock().await;
        if slot.0 == generation {
            slot.1 = None;
        }
    }

    async fn run(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Value, StoreError> {
        let (generation, mut conn) = self.connection().await?;
        let mut call = script.prepare_invoke();
        for k in keys {
            call.key(*k);
        }
        for a in args {
            call.arg(*a);
        }
        let reply = tokio::time::timeout(RESPONSE_TIMEOUT, call.invoke_async::<Value>(&mut conn))
            .await
            .map_err(|_| self.timed_out("a command"));
        match reply {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let err = self.error(&e);
                if matches!(err, StoreError::Unreachable(_)) {
                    self.forget(generation).await;
                }
                Err(err)
            }
            Err(timeout) => {
                self.forget(generation).await;
                Err(timeout)
            }
        }
    }
}

fn malformed(what: &str, v: &Value) -> StoreError {
    StoreError::Server(scripts::unexpected(what, v))
}

/// What the claim script's reply `v` says.
fn claim_reply(v: &Value) -> Result<Claim, StoreError> {
    match scripts::split(v) {
        Some((1, [t, ..])) => scripts::token(t)
            .map(|token| Claim::Granted { token })
            .ok_or_else(|| malformed("claim", v)),
        Some((0, rest)) => scripts::stored(rest)
            .map(|holder| Claim::Held {
                holder: Box::new(holder),
            })
            .ok_or_else(|| malformed("claim", v)),
        _ => Err(malformed("claim", v)),
    }
}

/// What the remove script's reply `v` says: whether it deleted.
fn remove_reply(v: &Value) -> Result<bool, StoreError> {
    match v {
        Value::Int(n) => Ok(*n == 1),
        other => Err(malformed("remove", other)),
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

impl LeaseStore for RedisStore {
    type Watch = RedisWatch;

    async fn claim(
        &self,
        key: &str,
        owner_id: &str,
        record: &str,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let [lease, counter, _] = scripts::names(key);
        let ttl = ms(ttl);
        let v = self
            .run(
                scripts::claim(),
                &[&lease, &counter],
                &[owner_id, record, &ttl],
            )
            .await?;
        claim_reply(&v)
    }

    async fn renew(
        &self,
        key: &str,
        owner_id: &str,
        ttl: Duration,
        record: Option<&str>,
    ) -> Result<Renewal, StoreError> {
        let [lease, _, _] = scripts::names(key);
        let ttl = ms(ttl);
        let v = self
            .run(
                scripts::renew(),
                &[&lease],
                &[owner_id, &ttl, record.unwrap_or("")],
            )
            .await?;
        match scripts::split(&v) {
            Some((1, _)) => Ok(Renewal::Renewed),
            Some((0, _)) => Ok(Renewal::Removed),
            Some((2, rest)) => scripts::stored(rest)
                .map(|holder| Renewal::OwnerChanged {
                    holder: Box::new(holder),
                })
                .ok_or_else(|| malformed("renew", &v)),
            _ => Err(malformed("renew", &v)),
        }
    }

    async fn remove(&self, key: &str, owner_id: &str) -> Result<bool, StoreError> {
        let [lease, _, channel] = scripts::names(key);
        let v = self
            .run(scripts::remove(), &[&lease], &[owner_id, &channel])
            .await?;
        remove_reply(&v)
    }

    async fn read(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let [lease, _, _] = scripts::names(key);
        let v = self.run(scripts::read(), &[&lease], &[]).await?;
        match scripts::split(&v) {
            Some((0, _)) => Ok(None),
            Some((1, rest)) => scripts::stored(rest)
                .map(Some)
                .ok_or_else(|| malformed("read", &v)),
            _ => Err(malformed("read", &v)),
        }
    }

    async fn watch(&self, key: &str) -> Result<RedisWatch, StoreError> {
        let [_, _, channel] = scripts::names(key);
        let subscribed = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub.into_on_message())
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, subscribed)
            .await
            .map_err(|_| self.timed_out("subscribing"))?
            .map_err(|e| self.error(&e))?;
        Ok(RedisWatch {
            stream: Some(stream),
        })
    }
}

/// A subscription to one lock's release channel.
pub struct RedisWatch {
    /// `None` once the subscription broke: then only the caller's poll is left.
    stream: Option<PubSubStream>,
}

impl Watch for RedisWatch {
    async fn changed(&mut self) {
        match &mut self.stream {
            Some(s) => {
                if s.next().await.is_none() {
                    self.stream = None;
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_passwords_and_queries() {
        assert_eq!(
            redact("redis://u:secret@127.0.0.1:6379/0"),
            "redis://u:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://:secret@host/1"), "redis://:***@host/1");
        assert_eq!(redact("redis://secret@host"), "redis://***@host");
        assert_eq!(
            redact("unix:///tmp/r.sock?pass=secret"),
            "unix:///tmp/r.sock"
        );
        assert_eq!(redact("redis://host:1/0"), "redis://host:1/0");
    }
}
