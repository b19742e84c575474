//! What an acquisition counts across its tries, and what follows a try that did not acquire:
//! another try, a wait on the holder, or the error that ends the acquisition.

use super::{Attempt, Inner, LockError, Next, Wait};
use std::time::Duration;

/// Consecutive transient create errors (see `Attempt::Transient`) before they are reported.
const TRANSIENT_LIMIT: u32 = 50;

/// The counts an acquisition keeps across its tries.
#[derive(Default)]
pub(super) struct Tries {
    contended: u32,
    transient: u32,
}

impl Tries {
    /// What follows a try that did not acquire, or the error that ends the wait.
    pub(super) fn pause_after(
        &mut self,
        attempt: Attempt,
        wait: &Wait,
        inner: &Inner,
    ) -> Result<Next, LockError> {
        let opts = &inner.opts;
        match attempt {
            // Taken by the caller before it asks; never passed here.
            Attempt::Acquired(..) => Ok(Next::Retry(Duration::ZERO)),
            Attempt::Held(holder, recheck) => {
                self.transient = 0;
                if wait.expired() {
                    return Err(LockError::Held { holder });
                }
                Ok(Next::Held(*recheck))
            }
            Attempt::Transient(e) => {
                // A real permission problem answers the same: after a second of it, say so
                // instead of waiting forever.
                self.transient += 1;
                if self.transient >= TRANSIENT_LIMIT {
                    return Err(LockError::io("create", &inner.path, e));
                }
                Ok(Next::Retry(opts.retry_pause()))
            }
            Attempt::Contended { pause } => {
                self.contended += 1;
                // The retry budget is Go's rule for a single try; a caller that may still
                // wait just keeps going.
                if self.contended >= opts.retry_limit && wait.expired() {
                    let attempts = self.contended;
                    return Err(LockError::RetryBudgetExhausted { attempts });
                }
                // Another contender's takeover in flight: pause at least a little, so that a
                // zero retry delay never spins (on the JS thread least of all, where a pause
                // moves the wait to a worker thread).
                Ok(Next::Retry(if pause {
                    opts.retry_pause()
                } else {
                    Duration::ZERO
                }))
            }
        }
    }
}
