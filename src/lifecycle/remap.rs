//! The planner of a machine replacement (pure): where records in stages the new
//! machines lack go.

use std::collections::BTreeMap;

use super::{Machine, Machines};
use crate::error::{Error, Result};
use crate::schema::{EntityKind, Stage};

/// Records of one kind in one stage, and the machine (pipeline) they run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) kind: EntityKind,
    /// The deal pipeline; `None` for contacts.
    pub(crate) pipeline: Option<String>,
    pub(crate) stage: Stage,
    pub(crate) rows: Vec<u32>,
}

/// One planned remap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remap {
    pub(crate) kind: EntityKind,
    pub(crate) row: u32,
    pub(crate) to: Stage,
}

/// Plans the remaps of a replacement by `machines`: every record in a stage its new
/// machine lacks goes where `mapping` says (old stage → new stage). Refused, with
/// nothing planned, when a record's pipeline disappears or its stage has no valid
/// target.
pub(crate) fn plan(
    machines: &Machines,
    mapping: &BTreeMap<Stage, Stage>,
    groups: &[Group],
) -> Result<Vec<Remap>> {
    let mut remaps = Vec::new();
    for group in groups {
        if group.rows.is_empty() {
            continue;
        }
        let machine: &Machine = machines
            .for_pipeline(group.pipeline.as_deref())
            .ok_or_else(|| Error::InvalidMachine {
                reason: format!(
                    "{} {} is in pipeline {}, which the new machines lack",
                    group.kind,
                    group.rows[0],
                    crate::error::quote(group.pipeline.as_deref().unwrap_or_default())
                ),
            })?;
        if machine.position(&group.stage).is_some() {
            continue;
        }
        let target = mapping
            .get(&group.stage)
            .filter(|t| machine.position(t).is_some())
            .ok_or_else(|| Error::InvalidMachine {
                reason: match &group.pipeline {
                    None => format!(
                        "{} contacts are in stage {}, which the new contact machine lacks and \
                         the mapping does not place",
                        group.rows.len(),
                        group.stage
                    ),
                    Some(_) => format!(
                        "deal {} is in stage {}, which its new pipeline lacks and the mapping \
                         does not place",
                        group.rows[0], group.stage
                    ),
                },
            })?;
        remaps.extend(group.rows.iter().map(|&row| Remap {
            kind: group.kind,
            row,
            to: target.clone(),
        }));
    }
    Ok(remaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(kind: EntityKind, pipeline: Option<&str>, stage: &str, rows: &[u32]) -> Group {
        Group {
            kind,
            pipeline: pipeline.map(str::to_owned),
            stage: Stage::new(stage),
            rows: rows.to_vec(),
        }
    }

    #[test]
    fn plans_remaps_and_refuses_unplaced_records() {
        let mut machines = Machines::default();
        machines
            .contact
            .stages
            .retain(|s| s.name.as_str() != "dormant");
        machines
            .contact
            .returns
            .retain(|(f, _)| f.as_str() != "dormant");
        machines.sweep.clear();
        let mapping = BTreeMap::from([(Stage::new("dormant"), Stage::new("churned"))]);
        let groups = [
            group(EntityKind::Contact, None, "active", &[1, 2]),
            group(EntityKind::Contact, None, "dormant", &[3, 4]),
            group(EntityKind::Deal, Some("default"), "won", &[7]),
        ];
        let plan = plan(&machines, &mapping, &groups).expect("placed");
        assert_eq!(
            plan.iter()
                .map(|r| (r.kind, r.row, r.to.as_str()))
                .collect::<Vec<_>>(),
            [
                (EntityKind::Contact, 3, "churned"),
                (EntityKind::Contact, 4, "churned")
            ]
        );
        // No mapping for dormant: refused.
        let refused = super::plan(&machines, &BTreeMap::new(), &groups);
        assert!(matches!(refused, Err(Error::InvalidMachine { .. })));
        // A pipeline that disappears: refused.
        let lost = [group(EntityKind::Deal, Some("gone"), "lead", &[9])];
        assert!(matches!(
            super::plan(&machines, &mapping, &lost),
            Err(Error::InvalidMachine { .. })
        ));
        // An empty group is ignored even when its stage is unknown.
        let empty = [group(EntityKind::Contact, None, "dormant", &[])];
        assert_eq!(
            super::plan(&machines, &BTreeMap::new(), &empty).expect("nothing"),
            []
        );
    }
}
