//! A database's settings, read from the `meta` table: custom-field schemas,
//! lifecycle machines, lead assignment rules. Write transactions change them through
//! `txn::config`, and publish the new value to the database's cache on commit.

use std::collections::BTreeMap;

use crate::assign::Assignment;
use crate::codec;
use crate::error::Result;
use crate::lifecycle::Machines;
use crate::schema::{CustomSchema, EntityKind};
use crate::storage::meta;

/// Settings read from the `meta` table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) schemas: BTreeMap<EntityKind, CustomSchema>,
    pub(crate) machines: Machines,
    pub(crate) assignment: Assignment,
}

impl Config {
    pub(crate) fn schema(&self, kind: EntityKind) -> CustomSchema {
        self.schemas.get(&kind).cloned().unwrap_or_default()
    }

    /// Loads the settings through `get` (a meta-table lookup).
    pub(crate) fn load(get: impl Fn(&str) -> Result<Option<Vec<u8>>>) -> Result<Config> {
        let schemas = match get(meta::SCHEMA)? {
            Some(bytes) => codec::decode("meta", &meta::SCHEMA, &bytes)?,
            None => BTreeMap::new(),
        };
        let machines = match get(meta::MACHINES)? {
            Some(bytes) => codec::decode("meta", &meta::MACHINES, &bytes)?,
            None => Machines::default(),
        };
        let assignment = match get(meta::ASSIGNMENT)? {
            Some(bytes) => codec::decode("meta", &meta::ASSIGNMENT, &bytes)?,
            None => Assignment::default(),
        };
        Ok(Config {
            schemas,
            machines,
            assignment,
        })
    }
}
