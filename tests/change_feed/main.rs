//! The change feed and segment membership events: what every commit leaves in the
//! log, how consumers read it (after a sequence, waiting, durably, from a bootstrap
//! snapshot), retention, and watched segments' entered and left events.

mod consumers;
mod events;
mod membership;
mod support;
