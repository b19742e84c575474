//! The fast path of store locks: the uncontended claim and the release's remove are written by
//! `lib/store-direct.js` on a connection of the JS thread's own and answered on the JS thread,
//! without the store thread's two extra hops ([`super::store_thread`]). This side makes the
//! request bytes, reads the replies, and hands a granted lease to the same holding code as
//! `acquire` ([`StoreLock::adopt`]). Whatever is not plain - a held lock, an error, no answer -
//! makes the JS side run the operation again on the store thread, as it always did.

use super::store::{loss_handler, track_held, NativeStoreLock, StoreLostInfo};
use super::store_thread::runtime;
use crate::lease::Lease;
use crate::owner;
use crate::store::redis::{direct, RedisStore, RESPONSE_TIMEOUT};
use direct::Requests;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::{Mutex, MutexGuard};

/// What the fast path of one lock has in flight, or left for the store thread to finish.
#[derive(Default)]
pub struct Direct {
    /// The lease of a claim in flight, and when its request was sent.
    claim: Option<(Lease, u64)>,
    /// The owner id of a claim that got no answer: it may have been granted, so the next
    /// `acquire` deletes it first.
    pub orphan: Option<String>,
    /// The owner id of a released lease whose remove failed or got no answer: `release` on
    /// the store thread deletes it.
    pub releasing: Option<String>,
    /// This lock's requests, made at its first fast-path claim.
    requests: Option<Requests>,
}

/// Where the JS side connects for the fast path, and what it sends first.
#[napi(object)]
pub struct DirectRoute {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub path: Option<String>,
    /// `AUTH` / `SELECT` to send first (may be empty).
    pub hello: Buffer,
    /// How many replies `hello` gets; each must be `+OK`.
    pub replies: u32,
    /// Milliseconds a reply (or the connection) may take before it is given up.
    pub timeout: f64,
}

impl Direct {
    pub fn lock(direct: &Mutex<Direct>) -> MutexGuard<'_, Direct> {
        direct.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn requests(&mut self, key: &str) -> &Requests {
        self.requests.get_or_insert_with(|| Requests::new(key))
    }
}

impl NativeStoreLock {
    pub(super) fn direct(&self) -> MutexGuard<'_, Direct> {
        Direct::lock(&self.direct)
    }
}

#[napi]
impl NativeStoreLock {
    /// The fast-path route to the store at `url`; `null` when it has none (TLS).
    #[napi]
    pub fn direct_route(url: String) -> Result<Option<DirectRoute>> {
        let store = RedisStore::shared(&url).map_err(|m| Error::new(Status::InvalidArg, m))?;
        Ok(store.direct_route().map(|r| DirectRoute {
            port: r.tcp.as_ref().map(|(_, p)| u32::from(*p)),
            host: r.tcp.map(|(h, _)| h),
            path: r.path,
            hello: r.hello.into(),
            replies: r.replies,
            timeout: RESPONSE_TIMEOUT.as_secs_f64() * 1000.0,
        }))
    }

    /// The request of a first claim, to be written at once; `null` when this acquisition must
    /// take the store thread's path (a holding to forget first, a metadata error to report).
    /// The request's send time is taken here, before the write.
    #[napi]
    pub fn direct_claim(&self, metadata: Option<String>) -> Option<String> {
        if self.lock.holding() {
            return None;
        }
        let mut direct = self.direct();
        if direct.orphan.is_some() || direct.releasing.is_some() {
            return None;
        }
        let (lease, record) = self.lock.prepare(metadata).ok()?;
        let ttl = self.lock.options().ttl;
        let request = direct
            .requests(self.lock.key())
            .claim(&lease.owner_id, &record, ttl);
        direct.claim = Some((lease, owner::clock_nanos()));
        Some(request)
    }

    /// The reply to the claim of [`Self::direct_claim`] (`null`: none came). A granted lease is
    /// held from here on and its fencing token returned; `null` otherwise, and then the
    /// acquisition is to be run on the store thread.
    #[napi(ts_args_type = "reply: Buffer | null, onLost: ((info: StoreLostInfo) => void) | null")]
    pub fn direct_claimed(
        &self,
        reply: Option<BufferSlice>,
        on_lost: Option<Function<StoreLostInfo, ()>>,
    ) -> Result<Option<String>> {
        let Some((lease, sent)) = self.direct().claim.take() else {
            return Ok(None);
        };
        let granted = reply.as_ref().map(|r| direct::granted(r));
        let Some(Some(token)) = granted else {
            if granted.is_none() {
                self.direct().orphan = Some(lease.owner_id);
            }
            return Ok(None);
        };
        let prepared = on_lost
            .map(|f| f.build_threadsafe_function().weak::<true>().build())
            .transpose()
            .and_then(|tsfn| Ok((tsfn.map(loss_handler), runtime()?)));
        let (on_lost, runtime) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // Granted but cannot be held here: deleted by the next acquisition.
                self.direct().orphan = Some(lease.owner_id);
                return Err(e);
            }
        };
        self.lock.adopt(lease, token, sent, on_lost, runtime);
        track_held(&self.lock, self.group);
        Ok(Some(token.to_string()))
    }

    /// Stops holding at once (renewal ends, no loss is reported any more) and gives the remove
    /// request to write; `null` when nothing is held (then `release` answers).
    #[napi]
    pub fn direct_release(&self) -> Option<String> {
        let mut direct = self.direct();
        if direct.releasing.is_some() {
            return None;
        }
        let owner_id = self.lock.stop_holding()?;
        let request = direct.requests(self.lock.key()).remove(&owner_id);
        direct.releasing = Some(owner_id);
        Some(request)
    }

    /// The reply to the remove of [`Self::direct_release`] (`null`: none came): whether it
    /// deleted our lease, or `null` when `release` is to finish it on the store thread.
    #[napi]
    pub fn direct_released(&self, reply: Option<BufferSlice>) -> Option<bool> {
        let removed = direct::removed(&reply?)?;
        self.direct().releasing = None;
        Some(removed)
    }
}
