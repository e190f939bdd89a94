//! Model-based test: random histories of writes on contacts (and a few owners, accounts
//! and orders) against a plain reference model. After every step every record is
//! compared with the model, and every index is checked against one recomputed from the
//! rows read back: categorical values, numeric comparisons, `exists`, `live`/`deleted`,
//! stage counts and stage histories. The change feed is checked too: sequences without
//! gaps, the log replayed equals the records, watched segments' members replay to
//! their evaluation.

#[path = "../support/model.rs"]
mod model;
#[path = "../support/replica.rs"]
mod replica;

mod checks;
mod engine;
mod harness;
mod histories;
mod ops;
mod reference;
