//! A held lock as the heartbeat threads see it: one beat, when the next is due, and when `held`
//! stops vouching for the lease without a confirming beat.

use super::renew::Outcome;
use super::{lock, waits, Inner, LeaseLost, LossReason};
use crate::heartbeat;
use crate::owner;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

impl heartbeat::Beat for Inner {
    /// One heartbeat; a loss is reported here, once, after the state lock is let go.
    fn beat(&self) -> Option<Instant> {
        // Released locks are skipped without touching the mutex a caller may be using.
        if !self.is_held() {
            return None;
        }
        if waits::group_ended(self.group) {
            // Acquired as its environment ended: nothing is renewed for an environment that
            // is gone.
            self.release_for_exit();
            return None;
        }
        let mut st = lock(&self.state);
        let outcome = st.as_mut()?.heartbeat(&|| self.at(), &self.opts);
        if !self.is_held() {
            // Reported lost while this beat was stuck: it stays lost, whatever the beat found.
            // The holding stays, so that `release()` still removes our file if it is ours.
            return None;
        }
        let lost = match outcome {
            Outcome::Renewed { next, confirmed } => {
                self.confirmed_at.store(confirmed, Ordering::Release);
                return Some(next);
            }
            Outcome::Retry { next } => return Some(next),
            Outcome::Lost(lost) => lost,
        };
        *st = None;
        self.let_go_of_dir();
        drop(st);
        self.lose(*lost);
        None
    }

    /// A full interval after an acquisition (the lease was just written); from the second
    /// beat on, beats fall on the shared grid (see `heartbeat::aligned`).
    fn next_due(&self) -> Option<Instant> {
        self.is_held()
            .then(|| Instant::now() + self.opts.heartbeat_interval)
    }

    /// Until `held` turns false without a confirming heartbeat (see `Lock::held`).
    fn give_up_in(&self) -> Option<Duration> {
        if !self.is_held() {
            return None;
        }
        let confirmed = self.confirmed_at.load(Ordering::Acquire);
        let trust = self
            .opts
            .stale_threshold
            .saturating_sub(self.opts.heartbeat_interval);
        let at = confirmed.saturating_add(trust.as_nanos() as u64);
        Some(Duration::from_nanos(
            at.saturating_sub(owner::clock_nanos()),
        ))
    }

    fn stalled(&self) {
        self.lose(LeaseLost {
            reason: LossReason::HeartbeatStalled,
            new_owner: None,
            error_code: None,
            at: SystemTime::now(),
        });
    }
}
