//! A database's settings, read from the `meta` table: custom-field schemas,
//! lifecycle machines, lead assignment rules (whose planner is `assign`). Write transactions change them through
//! `txn::config`, and publish the new value to the database's cache on commit.

use std::collections::BTreeMap;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;
use crate::lifecycle::{Machines, stages};
use crate::schema::{CustomSchema, EntityKind, OwnerId, Stage};
use crate::storage::meta;

/// Settings read from the `meta` table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) schemas: BTreeMap<EntityKind, CustomSchema>,
    pub(crate) machines: Machines,
    pub(crate) assignment: Assignment,
    /// The consent channels, `email` first.
    pub(crate) consent_channels: Vec<String>,
    /// The custom fields marked personal, per kind.
    pub(crate) personal: BTreeMap<EntityKind, std::collections::BTreeSet<String>>,
    /// Reporting lines: owner row → manager row.
    pub(crate) reports_to: BTreeMap<u32, u32>,
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
        let consent_channels = match get(meta::CONSENT_CHANNELS)? {
            Some(bytes) => codec::decode("meta", &meta::CONSENT_CHANNELS, &bytes)?,
            None => crate::schema::DEFAULT_CHANNELS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        };
        let personal = match get(meta::PERSONAL)? {
            Some(bytes) => codec::decode("meta", &meta::PERSONAL, &bytes)?,
            None => BTreeMap::new(),
        };
        let reports_to = match get(meta::REPORTS)? {
            Some(bytes) => codec::decode("meta", &meta::REPORTS, &bytes)?,
            None => BTreeMap::new(),
        };
        Ok(Config {
            schemas,
            machines,
            assignment,
            consent_channels,
            personal,
            reports_to,
        })
    }
}

/// One assignment rule. Rules are tried in order; the first that finds an owner wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssignmentRule {
    /// Round robin among the live owners of a team.
    RoundRobin {
        /// Recorded on the lead as the rule that assigned it.
        name: String,
        /// The team.
        team: String,
    },
    /// Round robin among the live owners whose region equals the lead's region.
    ByRegion {
        /// Recorded on the lead.
        name: String,
    },
    /// The live owner (of a team, or any) with the fewest open leads created in the
    /// last `period_days` days, among those below their `capacity` (0 means no limit);
    /// ties go to the lowest owner id.
    CapacityLimited {
        /// Recorded on the lead.
        name: String,
        /// Restrict to a team.
        team: Option<String>,
        /// The period capacity counts over.
        period_days: u32,
    },
}

impl AssignmentRule {
    /// The rule's name.
    pub fn name(&self) -> &str {
        match self {
            AssignmentRule::RoundRobin { name, .. }
            | AssignmentRule::ByRegion { name }
            | AssignmentRule::CapacityLimited { name, .. } => name,
        }
    }
}

/// The assignment configuration of a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Rules, tried in order.
    pub rules: Vec<AssignmentRule>,
    /// Owners never assigned leads (on leave, managers).
    pub excluded: BTreeSet<OwnerId>,
    /// Contact stages that count as open leads for capacity.
    pub lead_stages: Vec<Stage>,
}

impl Default for Assignment {
    /// No rules; open leads are contacts in `prospect` or `responder`.
    fn default() -> Self {
        Assignment {
            rules: Vec::new(),
            excluded: BTreeSet::new(),
            lead_stages: vec![
                Stage::new(stages::contact::PROSPECT),
                Stage::new(stages::contact::RESPONDER),
            ],
        }
    }
}
