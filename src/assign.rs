//! Lead assignment rules, applied inside the write that creates a lead (a contact
//! inserted without an owner) or requalifies one ([`WriteTransaction::requalify`]).

use std::collections::{BTreeMap, BTreeSet};

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::index::{self, bsi::Cmp};
use crate::lifecycle::Stage;
use crate::schema::{Contact, ContactId, EntityKind, Owner, OwnerId};
use crate::txn::{Snapshot, WriteTransaction};

const ROUND_ROBIN_META: &str = "assignment.round_robin";

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
            lead_stages: vec![Stage::new("prospect"), Stage::new("responder")],
        }
    }
}

/// The outcome of applying the rules to one lead.
pub(crate) struct Decision {
    pub(crate) owner: OwnerId,
    pub(crate) rule: String,
    /// Round-robin pointer to store: (rule key, owner row).
    pub(crate) pointer: Option<(String, u32)>,
}

/// The stored assignment configuration.
///
/// # Errors
/// A storage failure.
pub fn assignment<S: Snapshot + ?Sized>(snap: &S) -> Result<Assignment> {
    Ok(snap.config()?.assignment.clone())
}

fn round_robin_state<S: Snapshot + ?Sized>(snap: &S) -> Result<BTreeMap<String, u32>> {
    match snap.meta_bytes(ROUND_ROBIN_META)? {
        Some(bytes) => codec::decode("meta", &ROUND_ROBIN_META, &bytes),
        None => Ok(BTreeMap::new()),
    }
}

/// The next row after `last` in `candidates`, wrapping.
fn next_after(candidates: &RoaringBitmap, last: Option<u32>) -> Option<u32> {
    let after = last.and_then(|l| {
        let mut rest = candidates.clone();
        rest.remove_range(0..=l);
        rest.min()
    });
    after.or_else(|| candidates.min())
}

/// Decides the owner of `lead` under the stored rules, without writing anything.
pub(crate) fn decide<S: Snapshot + ?Sized>(
    snap: &S,
    lead: &Contact,
    now: crate::schema::Timestamp,
) -> Result<Option<Decision>> {
    let config = snap.config()?;
    let config = &config.assignment;
    if config.rules.is_empty() {
        return Ok(None);
    }
    let mut owners = snap.live(EntityKind::Owner)?;
    for excluded in &config.excluded {
        owners.remove(excluded.get());
    }
    let pointers = round_robin_state(snap)?;
    for rule in &config.rules {
        let (candidates, key) = match rule {
            AssignmentRule::RoundRobin { team, .. } => {
                let team_owners = snap.bitmap(&index::cat_key(EntityKind::Owner, "team", team))?;
                (&owners & &*team_owners, format!("team:{team}"))
            }
            AssignmentRule::ByRegion { .. } => {
                let Some(region) = &lead.region else { continue };
                let regional = snap.bitmap(&index::cat_key(EntityKind::Owner, "region", region))?;
                (&owners & &*regional, format!("region:{region}"))
            }
            AssignmentRule::CapacityLimited {
                team, period_days, ..
            } => {
                let pool = match team {
                    Some(team) => {
                        &owners & &*snap.bitmap(&index::cat_key(EntityKind::Owner, "team", team))?
                    }
                    None => owners.clone(),
                };
                let mut open = RoaringBitmap::new();
                for stage in &config.lead_stages {
                    open |= &*snap.bitmap(&index::cat_key(
                        EntityKind::Contact,
                        "stage",
                        stage.as_str(),
                    ))?;
                }
                open &= &snap.live(EntityKind::Contact)?;
                let cutoff = now.plus_days(-i64::from(*period_days)).day();
                let created = snap.bsi(&index::bsi_base(EntityKind::Contact, "created"))?;
                let open = created.compare(Cmp::Ge, cutoff, Some(&open));
                let mut best: Option<(u64, u32)> = None;
                for row in &pool {
                    let owner: Owner = snap.get(OwnerId::new(row))?;
                    let load = open.intersection_len(&*snap.bitmap(&index::cat_key(
                        EntityKind::Contact,
                        "owner",
                        &row.to_string(),
                    ))?);
                    if owner.capacity > 0 && load >= u64::from(owner.capacity) {
                        continue;
                    }
                    if best.is_none_or(|(l, _)| load < l) {
                        best = Some((load, row));
                    }
                }
                if let Some((_, row)) = best {
                    return Ok(Some(Decision {
                        owner: OwnerId::new(row),
                        rule: rule.name().to_owned(),
                        pointer: None,
                    }));
                }
                continue;
            }
        };
        if let Some(row) = next_after(&candidates, pointers.get(&key).copied()) {
            return Ok(Some(Decision {
                owner: OwnerId::new(row),
                rule: rule.name().to_owned(),
                pointer: Some((key, row)),
            }));
        }
    }
    Ok(None)
}

impl WriteTransaction {
    /// Replaces the lead assignment configuration.
    ///
    /// # Errors
    /// A rule without a name, an excluded owner that does not exist, or a storage failure.
    pub fn set_assignment(&mut self, assignment: Assignment) -> Result<()> {
        if let Some(rule) = assignment.rules.iter().find(|r| r.name().trim().is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "assignment rule {rule:?} needs a name"
            )));
        }
        for owner in &assignment.excluded {
            if self.find(*owner)?.is_none() {
                return Err(Error::NotFound {
                    kind: EntityKind::Owner,
                    id: owner.get(),
                });
            }
        }
        self.guarded(|tx| {
            tx.put_meta(
                crate::storage::meta::ASSIGNMENT,
                &codec::encode(&assignment),
            )?;
            let mut next = (*tx.config_arc()?).clone();
            next.assignment = assignment;
            tx.set_config(next);
            Ok(())
        })
    }

    /// Stores a round-robin pointer after a decision is applied.
    pub(crate) fn record_assignment(&mut self, decision: &Decision) -> Result<()> {
        if let Some((key, row)) = &decision.pointer {
            let mut state = round_robin_state(self)?;
            state.insert(key.clone(), *row);
            self.put_meta(ROUND_ROBIN_META, &codec::encode(&state))?;
        }
        Ok(())
    }

    /// Requalifies a lead: runs the assignment rules again and gives the contact the
    /// owner they pick (recording the rule). Returns the new owner, or `None` when no
    /// rule found one (the contact keeps its owner).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Deleted`], or a storage failure.
    pub fn requalify(&mut self, id: ContactId) -> Result<Option<OwnerId>> {
        self.guarded(|tx| {
            let mut contact = tx.live_record(id)?;
            let Some(decision) = decide(tx, &contact, tx.now())? else {
                return Ok(None);
            };
            contact.owner = Some(decision.owner);
            contact.assigned_by = Some(decision.rule.clone());
            tx.update_assigned(id, contact)?;
            tx.record_assignment(&decision)?;
            Ok(Some(decision.owner))
        })
    }
}
