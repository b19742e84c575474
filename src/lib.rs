//! leaselock: cross-process lease lock files that cannot get stuck.
//!
//! The engine (`lease`, `sys`, `owner`, `heartbeat`, `lock`) is plain Rust with no N-API type
//! in it, so `cargo test` covers it without Node. `binding` is the thin N-API layer.

pub mod faults;
pub mod heartbeat;
pub mod lease;
pub mod lock;
pub mod owner;
pub mod store;
pub mod sys;
pub mod watch;

#[cfg(not(test))]
mod binding;
