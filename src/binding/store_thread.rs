//! Where store operations run and how their outcomes reach JavaScript.
//!
//! Every store operation, the Redis connection's reader and writer, and the renewals run on one
//! thread (`leaselock-store`) with a current-thread tokio runtime: an operation never hops
//! between worker threads on its way to the socket and back. An outcome reaches the JS thread
//! through a threadsafe function made once per lock, carrying the operation's id;
//! `lib/store.js` settles the matching promise. A promise per call from napi's runtime costs a
//! threadsafe function, two tasks and a hop between its workers per operation, which was most
//! of an uncontended acquire's time.
//!
//! The threadsafe function is weak (it does not keep Node alive): `lib/store.js` keeps the event
//! loop open itself while operations are in flight.

use super::store::StoreOutcome;
use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use tokio::runtime::Handle;

type DoneFn = ThreadsafeFunction<StoreOutcome, (), StoreOutcome, Status, false, true>;

/// The way back to JS for the outcomes of one lock's calls.
#[derive(Clone)]
pub struct Outcomes(Arc<DoneFn>);

impl Outcomes {
    /// Outcomes go to `done`, called on the JS thread with each one (`outcome.id` names the call).
    pub fn to(done: Function<StoreOutcome, ()>) -> Result<Self> {
        let tsfn = done.build_threadsafe_function().weak::<true>().build()?;
        Ok(Outcomes(Arc::new(tsfn)))
    }

    /// Runs `work` on the store thread; its outcome goes back with `id`.
    pub fn start<F>(&self, id: u32, work: F) -> Result<()>
    where
        F: Future<Output = StoreOutcome> + Send + 'static,
    {
        let done = self.0.clone();
        runtime()?.spawn(async move {
            let mut outcome = match AssertUnwindSafe(work).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => super::store::internal_failure(),
            };
            outcome.id = id;
            // Closing: the environment is gone, and nobody is left to tell.
            let _ = done.call(outcome, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }
}

/// The handle of the store thread's runtime, started on first use.
pub fn runtime() -> Result<Handle> {
    static RUNTIME: OnceLock<std::result::Result<Handle, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let handle = rt.handle().clone();
            // Runs for the life of the process: leases are deleted from here at its end.
            std::thread::Builder::new()
                .name("leaselock-store".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
        .map_err(|m| {
            Error::new(
                Status::GenericFailure,
                format!("cannot start the store thread: {m}"),
            )
        })
}
