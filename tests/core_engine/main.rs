//! The core engine promises: durability across reopen, atomic rollback, refused
//! operations that apply nothing, relations, natural keys, custom fields, the recycle
//! bin, snapshot isolation under a concurrent writer, thread safety, corrupt bytes,
//! and the contact figures that orders and activities maintain.

mod concurrency;
mod contact_figures;
mod corrupt_bytes;
mod custom_fields;
mod durability;
mod group_commit;
mod natural_keys;
mod recycle_bin;
mod refusals;
mod relations;
mod sequence;
mod support;
