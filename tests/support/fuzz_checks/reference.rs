//! ops_model reference: what the database should hold after each operation.

use crmdb::{
    ChangeKind, Contact, ContactId, Money, Order, OrderStatus, Stage, StageChange, Timestamp,
};

use super::ops::{ACTOR, EMAILS, KNOWN_STAGES, NAMES, Op, REGIONS, STAGES, TAGS, VALID_TAGS};

/// What the database should hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Model {
    pub(super) contacts: Vec<Contact>,
    pub(super) histories: Vec<Vec<StageChange>>,
    pub(super) orders: Vec<Order>,
}

pub(super) fn normalised(email: &str) -> String {
    email.trim().to_lowercase()
}

fn stage_position(stage: &Stage) -> Option<usize> {
    STAGES[..KNOWN_STAGES]
        .iter()
        .position(|s| *s == stage.as_str())
}

impl Model {
    pub(super) fn live(&self, target: usize) -> Option<&Contact> {
        self.contacts.get(target).filter(|c| c.deleted_at.is_none())
    }

    fn email_taken(&self, email: &str, except: Option<usize>) -> bool {
        let key = normalised(email);
        self.contacts.iter().enumerate().any(|(i, c)| {
            Some(i) != except && c.email.as_deref().map(normalised) == Some(key.clone())
        })
    }

    fn email_ok(&self, email: Option<&str>, except: Option<usize>) -> bool {
        email.is_none_or(|e| e.contains('@') && !self.email_taken(e, except))
    }

    fn change(
        &self,
        from: Option<&Stage>,
        to: &str,
        at: Timestamp,
        kind: ChangeKind,
    ) -> StageChange {
        StageChange {
            from: from.cloned(),
            to: Stage::new(to),
            at,
            actor: if kind == ChangeKind::Automatic {
                crmdb::SYSTEM_ACTOR.to_owned()
            } else {
                ACTOR.to_owned()
            },
            reason: None,
            kind,
        }
    }

    /// Applies `op` at time `now`; returns whether the engine should accept it.
    pub(super) fn apply(&mut self, op: &Op, now: Timestamp) -> bool {
        match *op {
            Op::Insert {
                name,
                email,
                region,
                tags,
                value,
                stage,
            } => {
                let email = email.map(|e| EMAILS[e]);
                if !self.email_ok(email, None) {
                    return false;
                }
                let stage = match stage {
                    None => "prospect",
                    Some(s) if s < KNOWN_STAGES => STAGES[s],
                    Some(_) => return false,
                };
                let contact = Contact {
                    name: NAMES[name].into(),
                    email: email.map(str::to_owned),
                    region: region.map(|r| REGIONS[r].to_owned()),
                    tags: (0..VALID_TAGS)
                        .filter(|bit| tags & (1 << bit) != 0)
                        .map(|bit| TAGS[bit].to_owned())
                        .collect(),
                    lifetime_value: Money(i64::from(value) * 100),
                    stage: Stage::new(stage),
                    created_at: Some(now),
                    updated_at: now,
                    ..Default::default()
                };
                self.contacts.push(contact);
                self.histories
                    .push(vec![self.change(None, stage, now, ChangeKind::Create)]);
                true
            }
            Op::Update {
                target,
                name,
                email,
                region,
                value,
            } => {
                let email = email.map(|e| EMAILS[e]);
                if self.live(target).is_none() || !self.email_ok(email, Some(target)) {
                    return false;
                }
                let c = &mut self.contacts[target];
                c.name = NAMES[name].into();
                c.email = email.map(str::to_owned);
                c.region = region.map(|r| REGIONS[r].to_owned());
                c.lifetime_value = Money(i64::from(value) * 100);
                c.updated_at = now;
                true
            }
            Op::AddTag { target, tag } | Op::RemoveTag { target, tag } => {
                if tag >= VALID_TAGS || self.live(target).is_none() {
                    return false;
                }
                let c = &mut self.contacts[target];
                let changed = if matches!(op, Op::AddTag { .. }) {
                    c.tags.insert(TAGS[tag].to_owned())
                } else {
                    c.tags.remove(TAGS[tag])
                };
                if changed {
                    c.updated_at = now;
                }
                true
            }
            Op::Move { target, stage } | Op::Regress { target, stage, .. } => {
                let Some(current) = self.live(target).map(|c| c.stage.clone()) else {
                    return false;
                };
                if stage >= KNOWN_STAGES {
                    return false;
                }
                let to = STAGES[stage];
                let from_pos = stage_position(&current).expect("model stages are known");
                let entry = if current.as_str() == to {
                    // Same stage: rewritten, nothing to check, no history.
                    None
                } else if let Op::Regress { reason, .. } = *op {
                    if !reason || stage >= from_pos {
                        return false;
                    }
                    let mut entry = self.change(Some(&current), to, now, ChangeKind::Regress);
                    entry.reason = Some("win back".into());
                    Some(entry)
                } else {
                    let is_return =
                        matches!((current.as_str(), to), ("dormant" | "churned", "active"));
                    if stage < from_pos && !is_return {
                        return false;
                    }
                    Some(self.change(Some(&current), to, now, ChangeKind::Move))
                };
                let c = &mut self.contacts[target];
                c.stage = Stage::new(to);
                c.updated_at = now;
                if let Some(entry) = entry {
                    self.histories[target].push(entry);
                }
                true
            }
            Op::SoftDelete { target } => {
                if self.live(target).is_none() {
                    return false;
                }
                self.contacts[target].deleted_at = Some(now);
                true
            }
            Op::Restore { target } => {
                match self.contacts.get_mut(target) {
                    Some(c) if c.deleted_at.is_some() => c.deleted_at = None,
                    _ => return false,
                }
                true
            }
            Op::PaidOrder { target, amount } => {
                let Some(c) = self.live(target) else {
                    return false;
                };
                let total = Money(i64::from(amount) * 100);
                let first = c.stats.order_count == 0;
                let from = c.stage.clone();
                // The default machines' automatic moves, first match wins, each recorded
                // with its cause.
                let to = match from.as_str() {
                    "prospect" | "responder" if first => Some(("new_customer", "first paid order")),
                    "new_customer" if !first => Some(("active", "repeat paid order")),
                    "dormant" | "churned" => Some(("active", "paid order")),
                    _ => None,
                };
                let to = to.map(|(to, cause)| {
                    let mut entry = self.change(Some(&from), to, now, ChangeKind::Automatic);
                    entry.reason = Some(cause.to_owned());
                    self.histories[target].push(entry);
                    to
                });
                let c = &mut self.contacts[target];
                if let Some(to) = to {
                    c.stage = Stage::new(to);
                }
                c.stats.order_count += 1;
                c.stats.total_spent.0 += total.0;
                c.stats.last_order = c.stats.last_order.max(Some(now));
                c.updated_at = now;
                self.orders.push(Order {
                    contact: Some(ContactId::new(target as u32)),
                    at: now,
                    status: OrderStatus::Paid,
                    currency: "EUR".into(),
                    total,
                    created_at: Some(now),
                    updated_at: now,
                    ..Default::default()
                });
                true
            }
            Op::Commit | Op::Abort => true,
        }
    }
}
