//! The inactivity sweep's planner (pure): which contacts move where at a given "now".

use std::collections::BTreeMap;

use super::SweepRule;
use crate::error::Result;
use crate::schema::{SECONDS_PER_DAY, Stage, Timestamp};

/// A contact a rule may sweep: its stage and its latest activity, order or creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) row: u32,
    pub(crate) stage: Stage,
    pub(crate) latest: Option<Timestamp>,
}

/// One planned move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) from: Stage,
    pub(crate) to: Stage,
    pub(crate) reason: String,
}

/// Plans the sweep at `now`: a contact a rule's `candidates` yields whose latest
/// activity, order and creation are all more than `after_days` before `now` moves to
/// the rule's `to` stage. Where several rules apply, the one with the longest
/// `after_days` wins. `candidates` may over-approximate (it is asked once per rule, in
/// the order applied); the boundary is decided here, to the second.
pub(crate) fn plan(
    rules: &[SweepRule],
    now: Timestamp,
    mut candidates: impl FnMut(&SweepRule) -> Result<Vec<Candidate>>,
) -> Result<BTreeMap<u32, Planned>> {
    let mut rules: Vec<&SweepRule> = rules.iter().collect();
    rules.sort_by_key(|r| std::cmp::Reverse(r.after_days));
    let mut planned = BTreeMap::new();
    for rule in rules {
        for candidate in candidates(rule)? {
            if planned.contains_key(&candidate.row) || !rule.from.contains(&candidate.stage) {
                continue;
            }
            let quiet_for = candidate
                .latest
                .map_or(i64::MAX, |t| now.0.saturating_sub(t.0));
            if quiet_for <= i64::from(rule.after_days) * SECONDS_PER_DAY {
                continue;
            }
            if candidate.stage != rule.to {
                let reason = format!(
                    "no activity, order or creation for more than {} days",
                    rule.after_days
                );
                planned.insert(
                    candidate.row,
                    Planned {
                        from: candidate.stage,
                        to: rule.to.clone(),
                        reason,
                    },
                );
            }
        }
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Machines;

    fn day(n: i64) -> Timestamp {
        Timestamp(n * SECONDS_PER_DAY)
    }

    #[test]
    fn longest_rule_wins_and_boundaries_are_exact() {
        let rules = Machines::default().sweep;
        let now = day(1000);
        let candidate = |row, stage: &str, latest| Candidate {
            row,
            stage: Stage::new(stage),
            latest,
        };
        let all = vec![
            candidate(1, "active", Some(day(1000 - 90))), // exactly 90 days: stays
            candidate(2, "active", Some(Timestamp(day(1000 - 90).0 - 1))), // dormant
            candidate(3, "active", Some(day(1000 - 181))), // churned (180 wins over 90)
            candidate(4, "dormant", Some(day(1000 - 100))), // already dormant, not churned
            candidate(5, "dormant", Some(day(1000 - 200))), // churned
            candidate(6, "prospect", Some(day(0))),       // not swept
            candidate(7, "churned", Some(day(0))),        // already there
            candidate(8, "active", None),                 // never seen: swept
        ];
        let plan = plan(&rules, now, |_| Ok(all.clone())).expect("plans");
        let moves: Vec<(u32, &str, &str)> = plan
            .iter()
            .map(|(row, p)| (*row, p.from.as_str(), p.to.as_str()))
            .collect();
        assert_eq!(
            moves,
            [
                (2, "active", "dormant"),
                (3, "active", "churned"),
                (5, "dormant", "churned"),
                (8, "active", "churned"),
            ]
        );
        assert_eq!(
            plan[&3].reason,
            "no activity, order or creation for more than 180 days"
        );
    }
}
