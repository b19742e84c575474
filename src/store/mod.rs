//! Lease stores: where a lease can live - a Redis or Valkey server ([`redis`]), or lock files
//! ([`file`], the files the engine's `Lock` uses); etcd could follow.
//!
//! A store only keeps leases and answers five atomic questions about them ([`LeaseStore`]);
//! everything a lock *does* with them - waiting, proving a holder dead, renewing, knowing its
//! own deadline, reporting a loss - is in [`session`], written once for every store. Nothing
//! here knows about JavaScript; `binding` wraps [`session::StoreLock`] for Node.

pub mod file;
#[cfg(test)]
mod file_tests;
mod keep;
pub mod redis;
pub mod session;
#[cfg(test)]
mod tests;

use crate::lease::Lease;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// A fencing token: strictly increasing across all acquisitions of one key on one store.
pub type Token = u64;

/// A lease as a store returns it: the holder's record and what the store adds.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The owner id the lease was claimed with (also inside `record`, when that parses).
    pub owner_id: String,
    /// The holder's record; `None` when the stored value is not a lease of ours (a key some
    /// other program wrote, or a record that does not parse).
    pub record: Option<Lease>,
    pub token: Option<Token>,
    /// How long the lease lives at most (the holder's `leaseStaleThreshold`).
    pub ttl: Option<Duration>,
    /// Time to live left, as the store counts it; `None` when the value never expires.
    pub ttl_left: Option<Duration>,
}

impl Stored {
    /// Whether this is a lease: a record that parses and names the owner it is stored under.
    /// Anything else (another program's value, a record edited by hand) is no holder's lease.
    pub fn is_lease(&self) -> bool {
        self.record
            .as_ref()
            .is_some_and(|r| r.owner_id == self.owner_id)
    }
}

/// The outcome of one attempt to claim a free key.
#[derive(Debug)]
pub enum Claim {
    Granted {
        token: Token,
    },
    /// Somebody holds it; `ttl_left` of their lease is in `holder`.
    Held {
        holder: Box<Stored>,
    },
}

/// The outcome of one compare-owner renewal.
#[derive(Debug)]
pub enum Renewal {
    Renewed,
    /// Nothing is stored under the key any more (expired, deleted, or the store lost its data).
    Removed,
    /// Another owner's lease (or a foreign value) is there now.
    OwnerChanged {
        holder: Box<Stored>,
    },
}

impl Renewal {
    /// What holds the key, for a renewal that found it not ours: a value, or nothing.
    pub fn found(self) -> Option<Stored> {
        match self {
            Renewal::OwnerChanged { holder } => Some(*holder),
            Renewal::Removed | Renewal::Renewed => None,
        }
    }
}

/// Why a store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No connection could be made or kept (refused, reset, timed out, name not resolved).
    Unreachable(String),
    /// The store refused our credentials.
    Auth(String),
    /// The store answered with an error, or with something we do not understand.
    Server(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unreachable(m) | StoreError::Auth(m) | StoreError::Server(m) => {
                f.write_str(m)
            }
        }
    }
}

impl StoreError {
    /// The error code the JS layer gives this failure.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unreachable(_) => "ELOCKSTOREUNREACHABLE",
            StoreError::Auth(_) => "ELOCKSTOREAUTH",
            StoreError::Server(_) => "ELOCKSTORE",
        }
    }
}

/// Something that changes when a lease may have been released (a pub/sub subscription).
pub trait Watch: Send {
    /// Resolves when the key was released. A broken watch never resolves again: then the
    /// caller's slower poll is all that is left.
    fn changed(&mut self) -> impl Future<Output = ()> + Send;
}

/// Where leases live. Every method is one atomic step on the store, and every write compares
/// the owner first, so a late holder can never extend or delete a newer owner's lease.
/// Expiry is the store's own: no client compares clocks with another. (The file store has no
/// server: there a lease expires by its age as each claimant judges it; see [`file`].)
pub trait LeaseStore: Send + Sync + 'static {
    type Watch: Watch + 'static;

    /// Claims `key` if nothing is stored under it, recording `record` for `owner_id`, with a
    /// fresh fencing token, for `ttl`.
    fn claim(
        &self,
        key: &str,
        owner_id: &str,
        record: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Extends our lease to `ttl` from now (and replaces its record, when given), if it is
    /// still ours.
    fn renew(
        &self,
        key: &str,
        owner_id: &str,
        ttl: Duration,
        record: Option<&str>,
    ) -> impl Future<Output = Result<Renewal, StoreError>> + Send;

    /// Deletes the lease if `owner_id` still owns it, and wakes the waiters. Used by release,
    /// and by a takeover of a holder proven dead. `true` when it deleted.
    fn remove(
        &self,
        key: &str,
        owner_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// What is stored under `key`, without changing it.
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<Stored>, StoreError>> + Send;

    /// Starts watching `key` for releases.
    fn watch(&self, key: &str) -> impl Future<Output = Result<Self::Watch, StoreError>> + Send;
}
