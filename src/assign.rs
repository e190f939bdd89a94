//! Lead assignment: the planner that picks a lead's owner under the rules of
//! [`Assignment`] (stored with the other settings in `config`), applied by the
//! transaction inside the write that creates a lead (a contact inserted without an
//! owner) or requalifies one ([`WriteTransaction::requalify`]).
//!
//! [`Assignment`]: crate::Assignment
//! [`WriteTransaction::requalify`]: crate::WriteTransaction::requalify

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::codec;
use crate::config::AssignmentRule;
use crate::error::{Error, Result};
use crate::index::{self, bsi::Cmp};
use crate::schema::{EntityKind, Owner, OwnerId};
use crate::storage::meta;
use crate::storage::source::Source;

/// The outcome of applying the rules to one lead.
pub(crate) struct Decision {
    pub(crate) owner: OwnerId,
    pub(crate) rule: String,
    /// Round-robin pointer to store: (rule key, owner row).
    pub(crate) pointer: Option<(String, u32)>,
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

/// The round-robin pointers of the assignment rules: the last owner picked per pool.
pub(crate) fn round_robin_state<S: Source + ?Sized>(snap: &S) -> Result<BTreeMap<String, u32>> {
    match snap.meta_bytes(meta::ROUND_ROBIN)? {
        Some(bytes) => codec::decode("meta", &meta::ROUND_ROBIN, &bytes),
        None => Ok(BTreeMap::new()),
    }
}

/// Decides the owner of a lead in `region` under the stored rules, without writing
/// anything.
pub(crate) fn decide<S: Source + ?Sized>(
    snap: &S,
    region: Option<&str>,
    now: crate::schema::Timestamp,
) -> Result<Option<Decision>> {
    let config = snap.config()?;
    let config = &config.assignment;
    if config.rules.is_empty() {
        return Ok(None);
    }
    let mut owners = (*snap.live_rows(EntityKind::Owner)?).clone();
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
                let Some(region) = region else { continue };
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
                open &= &*snap.live_rows(EntityKind::Contact)?;
                let cutoff = now.plus_days(-i64::from(*period_days)).day();
                let created = snap.bsi(&index::bsi_base(EntityKind::Contact, "created"))?;
                let open = created.compare(Cmp::Ge, cutoff, Some(&open));
                let mut best: Option<(u64, u32)> = None;
                for row in &pool {
                    let owner: Owner = snap.record(OwnerId::new(row))?.ok_or(Error::NotFound {
                        kind: EntityKind::Owner,
                        id: row,
                    })?;
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
