//! The reference model: what each operation should do and leave behind.

use std::collections::{BTreeMap, BTreeSet};

use crmdb::{Error, Timestamp};

use crate::ops::{EMAILS, LTVS, Op, REGIONS, TAGS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MContact {
    pub(crate) email: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) owner: Option<u32>,
    pub(crate) account: Option<u32>,
    pub(crate) stage: usize,
    pub(crate) tags: BTreeSet<String>,
    pub(crate) ltv: i64,
    pub(crate) created: Timestamp,
    pub(crate) deleted: bool,
    pub(crate) order_count: u32,
    pub(crate) total_spent: i64,
    pub(crate) last_order: Option<Timestamp>,
    /// Entries in the stage history.
    pub(crate) changes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MOrder {
    pub(crate) contact: u32,
    pub(crate) paid: bool,
    pub(crate) total: i64,
    pub(crate) at: Timestamp,
    pub(crate) deleted: bool,
}

/// The expected outcome of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    NotFound,
    Deleted,
    NotDeleted,
    BrokenRelation,
    StillReferenced,
    Duplicate,
    IllegalTransition,
}

pub(crate) fn outcome_of(result: &crmdb::Result<()>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(Error::NotFound { .. }) => Outcome::NotFound,
        Err(Error::Deleted { .. }) => Outcome::Deleted,
        Err(Error::NotDeleted { .. }) => Outcome::NotDeleted,
        Err(Error::BrokenRelation { .. }) => Outcome::BrokenRelation,
        Err(Error::StillReferenced { .. }) => Outcome::StillReferenced,
        Err(Error::Duplicate { .. }) => Outcome::Duplicate,
        Err(Error::IllegalTransition { .. }) => Outcome::IllegalTransition,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) contacts: BTreeMap<u32, MContact>,
    /// Owner and account rows: `true` when in the recycle bin.
    pub(crate) owners: BTreeMap<u32, bool>,
    pub(crate) accounts: BTreeMap<u32, bool>,
    pub(crate) orders: BTreeMap<u32, MOrder>,
    /// Next row id per kind: contact, owner, account, order.
    next: [u32; 4],
}

pub(crate) fn norm(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Model {
    /// A row id of kind `k`: usually an allocated one, sometimes one never allocated.
    pub(crate) fn pick(&self, k: usize, who: u8) -> u32 {
        u32::from(who) % (self.next[k] + 1)
    }

    fn owner_live(&self, row: u32) -> bool {
        self.owners.get(&row) == Some(&false)
    }

    fn account_live(&self, row: u32) -> bool {
        self.accounts.get(&row) == Some(&false)
    }

    fn refs_live(&self, c: &MContact) -> bool {
        c.owner.is_none_or(|o| self.owner_live(o)) && c.account.is_none_or(|a| self.account_live(a))
    }

    fn email_taken(&self, email: &Option<String>, except: Option<u32>) -> bool {
        let Some(email) = email else {
            return false;
        };
        self.contacts.iter().any(|(row, c)| {
            Some(*row) != except && c.email.as_deref().map(norm) == Some(norm(email))
        })
    }

    /// The live contact at `row`, or why there is none.
    fn live_contact(&self, row: u32) -> Result<&MContact, Outcome> {
        match self.contacts.get(&row) {
            None => Err(Outcome::NotFound),
            Some(c) if c.deleted => Err(Outcome::Deleted),
            Some(c) => Ok(c),
        }
    }

    /// Figures from the contact's live paid orders.
    fn recompute_stats(&mut self, row: u32) {
        let paid: Vec<&MOrder> = self
            .orders
            .values()
            .filter(|o| o.contact == row && o.paid && !o.deleted)
            .collect();
        let count = paid.len() as u32;
        let total = paid.iter().map(|o| o.total).sum();
        let last = paid.iter().map(|o| o.at).max();
        if let Some(c) = self.contacts.get_mut(&row) {
            c.order_count = count;
            c.total_spent = total;
            c.last_order = last;
        }
    }

    /// A paid order starts counting for a live contact: figures, then an automatic move.
    fn order_counted(&mut self, row: u32) {
        let first = self.contacts.get(&row).is_some_and(|c| c.order_count == 0);
        self.recompute_stats(row);
        let Some(c) = self.contacts.get_mut(&row) else {
            return;
        };
        let to = match c.stage {
            0 | 1 if first => Some(2),
            2 if !first => Some(3),
            4 | 5 => Some(3),
            _ => None,
        };
        if let Some(to) = to {
            c.stage = to;
            c.changes += 1;
        }
    }

    pub(crate) fn apply(&mut self, op: &Op, now: Timestamp) -> Outcome {
        match op {
            Op::NewContact {
                email,
                region,
                tags,
                ltv,
                owner,
                account,
                stage,
            } => {
                let c = MContact {
                    email: email.map(|e| EMAILS[usize::from(e)].to_owned()),
                    region: region.map(|r| REGIONS[usize::from(r)].to_owned()),
                    owner: owner.map(|o| self.pick(1, o)),
                    account: account.map(|a| self.pick(2, a)),
                    stage: stage.map_or(0, usize::from),
                    tags: tags
                        .iter()
                        .map(|t| TAGS[usize::from(*t)].to_owned())
                        .collect(),
                    ltv: LTVS[usize::from(*ltv)],
                    created: now,
                    deleted: false,
                    order_count: 0,
                    total_spent: 0,
                    last_order: None,
                    changes: 1,
                };
                if !self.refs_live(&c) {
                    return Outcome::BrokenRelation;
                }
                if self.email_taken(&c.email, None) {
                    return Outcome::Duplicate;
                }
                if c.stage >= 6 {
                    return Outcome::IllegalTransition;
                }
                self.contacts.insert(self.next[0], c);
                self.next[0] += 1;
                Outcome::Ok
            }
            Op::Update {
                who,
                region,
                ltv,
                email,
                owner,
            } => {
                let row = self.pick(0, *who);
                let mut c = match self.live_contact(row) {
                    Ok(c) => c.clone(),
                    Err(e) => return e,
                };
                c.region = region.map(|r| REGIONS[usize::from(r)].to_owned());
                c.ltv = LTVS[usize::from(*ltv)];
                c.email = email.map(|e| EMAILS[usize::from(e)].to_owned());
                c.owner = owner.map(|o| self.pick(1, o));
                if !self.refs_live(&c) {
                    return Outcome::BrokenRelation;
                }
                if self.email_taken(&c.email, Some(row)) {
                    return Outcome::Duplicate;
                }
                self.contacts.insert(row, c);
                Outcome::Ok
            }
            Op::Tag { who, tag, add } => {
                let row = self.pick(0, *who);
                let mut c = match self.live_contact(row) {
                    Ok(c) => c.clone(),
                    Err(e) => return e,
                };
                let tag = TAGS[usize::from(*tag)].to_owned();
                let changed = if *add {
                    c.tags.insert(tag)
                } else {
                    c.tags.remove(&tag)
                };
                if !changed {
                    return Outcome::Ok;
                }
                if !self.refs_live(&c) {
                    return Outcome::BrokenRelation;
                }
                self.contacts.insert(row, c);
                Outcome::Ok
            }
            Op::Move { who, stage } | Op::Regress { who, stage, .. } => {
                let row = self.pick(0, *who);
                let c = match self.live_contact(row) {
                    Ok(c) => c.clone(),
                    Err(e) => return e,
                };
                if !self.refs_live(&c) {
                    return Outcome::BrokenRelation;
                }
                let (from, to) = (c.stage, usize::from(*stage));
                if from == to {
                    return Outcome::Ok;
                }
                let legal = match op {
                    Op::Regress { reason, .. } => *reason && to < from,
                    // Forward skips are allowed; backward only dormant/churned → active.
                    _ => to < 6 && (to > from || (to == 3 && (from == 4 || from == 5))),
                };
                if !legal {
                    return Outcome::IllegalTransition;
                }
                let c = self.contacts.get_mut(&row).expect("checked above");
                c.stage = to;
                c.changes += 1;
                Outcome::Ok
            }
            Op::Delete { kind, who } => {
                let k = usize::from(*kind);
                let row = self.pick(k, *who);
                let deleted = match k {
                    0 => self.contacts.get_mut(&row).map(|c| &mut c.deleted),
                    1 => self.owners.get_mut(&row),
                    2 => self.accounts.get_mut(&row),
                    _ => self.orders.get_mut(&row).map(|o| &mut o.deleted),
                };
                match deleted {
                    None => Outcome::NotFound,
                    Some(true) => Outcome::Deleted,
                    Some(d) => {
                        *d = true;
                        if k == 3 {
                            let contact = self.orders[&row].contact;
                            if self.contacts.get(&contact).is_some_and(|c| !c.deleted) {
                                self.recompute_stats(contact);
                            }
                        }
                        Outcome::Ok
                    }
                }
            }
            Op::Restore { kind, who } => {
                let k = usize::from(*kind);
                let row = self.pick(k, *who);
                let (exists, deleted, refs_ok) = match k {
                    0 => match self.contacts.get(&row) {
                        None => (false, false, false),
                        Some(c) => (true, c.deleted, self.refs_live(c)),
                    },
                    1 => (
                        self.owners.contains_key(&row),
                        self.owners.get(&row) == Some(&true),
                        true,
                    ),
                    2 => (
                        self.accounts.contains_key(&row),
                        self.accounts.get(&row) == Some(&true),
                        true,
                    ),
                    _ => match self.orders.get(&row) {
                        None => (false, false, false),
                        Some(o) => (
                            true,
                            o.deleted,
                            self.contacts.get(&o.contact).is_some_and(|c| !c.deleted),
                        ),
                    },
                };
                if !exists {
                    return Outcome::NotFound;
                }
                if !deleted {
                    return Outcome::NotDeleted;
                }
                if !refs_ok {
                    return Outcome::BrokenRelation;
                }
                match k {
                    0 => {
                        self.contacts.get_mut(&row).expect("exists").deleted = false;
                        // Documented: figures of contacts in the recycle bin are
                        // recomputed on restore.
                        self.recompute_stats(row);
                    }
                    1 => {
                        self.owners.insert(row, false);
                    }
                    2 => {
                        self.accounts.insert(row, false);
                    }
                    _ => {
                        let order = self.orders.get_mut(&row).expect("exists");
                        order.deleted = false;
                        let (contact, paid) = (order.contact, order.paid);
                        if paid {
                            self.order_counted(contact);
                        } else {
                            self.recompute_stats(contact);
                        }
                    }
                }
                Outcome::Ok
            }
            Op::Purge { kind, who } => {
                let k = usize::from(*kind);
                let row = self.pick(k, *who);
                let deleted = match k {
                    0 => self.contacts.get(&row).map(|c| c.deleted),
                    1 => self.owners.get(&row).copied(),
                    2 => self.accounts.get(&row).copied(),
                    _ => self.orders.get(&row).map(|o| o.deleted),
                };
                match deleted {
                    None => return Outcome::NotFound,
                    Some(false) => return Outcome::NotDeleted,
                    Some(true) => {}
                }
                let referenced = match k {
                    0 => self.orders.values().any(|o| o.contact == row),
                    1 => self.contacts.values().any(|c| c.owner == Some(row)),
                    2 => self.contacts.values().any(|c| c.account == Some(row)),
                    _ => false,
                };
                if referenced {
                    return Outcome::StillReferenced;
                }
                match k {
                    0 => self.contacts.remove(&row).map(|_| ()),
                    1 => self.owners.remove(&row).map(|_| ()),
                    2 => self.accounts.remove(&row).map(|_| ()),
                    _ => self.orders.remove(&row).map(|_| ()),
                };
                Outcome::Ok
            }
            Op::NewOwner => {
                self.owners.insert(self.next[1], false);
                self.next[1] += 1;
                Outcome::Ok
            }
            Op::NewAccount => {
                self.accounts.insert(self.next[2], false);
                self.next[2] += 1;
                Outcome::Ok
            }
            Op::NewOrder { who, paid, total } => {
                let contact = self.pick(0, *who);
                if self.live_contact(contact).is_err() {
                    return Outcome::BrokenRelation;
                }
                self.orders.insert(
                    self.next[3],
                    MOrder {
                        contact,
                        paid: *paid,
                        total: i64::from(*total) * 1_000,
                        at: now,
                        deleted: false,
                    },
                );
                self.next[3] += 1;
                if *paid {
                    self.order_counted(contact);
                }
                Outcome::Ok
            }
            Op::Tick(_) | Op::Txn { .. } | Op::Reopen => unreachable!("handled by the runner"),
        }
    }
}
