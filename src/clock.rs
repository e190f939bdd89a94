//! Where the engine gets "now" from. **Boundary**: rules never read the wall clock
//! themselves; time comes from the [`Clock`] given to the builder or is passed in
//! (`sweep(now)`, `refresh_rfm(now)`).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::schema::Timestamp;

/// Where the engine gets "now" from. Rules never read the wall clock themselves.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Timestamp(secs)
    }
}

/// A clock that says what it is told: for tests, simulations and imports.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock(AtomicI64::new(at.0))
    }
    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }
    /// Moves the time forward by whole days.
    pub fn advance_days(&self, days: i64) {
        self.0
            .fetch_add(days * crate::schema::SECONDS_PER_DAY, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}
