//! Model-based test: random histories of writes on contacts (and a few owners, accounts
//! and orders) against a plain reference model. After every step every record is
//! compared with the model, and every index is checked against one recomputed from the
//! rows read back: categorical values, numeric comparisons, `exists`, `live`/`deleted`,
//! stage counts and stage histories.

#[path = "../support/model.rs"]
mod model;

mod checks;
mod engine;
mod harness;
mod histories;
mod ops;
mod reference;
