//! Lifecycle machines enforced at write time: legal and illegal moves of the default
//! contact lifecycle, the default deal pipeline and a custom machine; stage history;
//! automatic moves from orders and activities; the inactivity sweep; machine
//! replacement; and a property test tying the stage index and history to the rows.

mod automatic_moves;
mod custom_machines;
mod default_machines;
mod history;
mod machine_replacement;
mod property;
mod support;
mod sweep;
