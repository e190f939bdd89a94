//! Who may see what: principals, the records shared with an owner or a team, and the
//! rows of each kind a principal sees, computed from bitmaps that the write path keeps
//! in the same transaction as the rows.
//!
//! A record with an owner (contacts, accounts, deals and activities by `owner`, tasks
//! by `assignee`) is seen by a principal whose reach takes in its owner, or with whom
//! it is shared. The reach of [`Principal::owner`] is the owner; of
//! [`Principal::manager`], the owner and everyone reporting to them, directly or not
//! ([`WriteTransaction::set_manager`]); of [`Principal::team`], the team's owners; of
//! [`Principal::everyone`], every record. Shares ([`WriteTransaction::share`]) are
//! bitmaps per grantee, `{kind}/_share_owner={id}` and `{kind}/_share_team={name}`; an
//! owner sees what is shared with them or with their team, a manager also what is
//! shared with their reports. Ownership is the owner field's own index, so a reassignment
//! moves visibility in the same commit.
//!
//! Products and owners are a catalogue and a directory: every principal sees them.
//! Orders carry no owner: only [`Principal::everyone`] sees them.
//!
//! [`WriteTransaction::set_manager`]: crate::WriteTransaction::set_manager
//! [`WriteTransaction::share`]: crate::WriteTransaction::share

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::index;
use crate::schema::{EntityKind, Owner, OwnerId};
use crate::storage::source::Source;

/// How far a principal's sight reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    /// The owner's own records.
    Own,
    /// The owner's and their reports' records, down the reporting lines.
    Reports,
    /// The records of a team's owners.
    Team,
    /// Every record.
    Everything,
}

/// Whom a scoped transaction acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    owner: Option<OwnerId>,
    team: Option<String>,
    reach: Reach,
    /// Whether the principal reads personal fields; without, they are redacted.
    personal: bool,
}

impl Principal {
    /// An owner (a sales rep): their records and those shared with them or their team.
    pub fn owner(owner: OwnerId) -> Principal {
        Principal {
            owner: Some(owner),
            team: None,
            reach: Reach::Own,
            personal: true,
        }
    }

    /// A manager: their records, their reports' (down the reporting lines), and those
    /// shared with any of them or their teams.
    pub fn manager(owner: OwnerId) -> Principal {
        Principal {
            owner: Some(owner),
            team: None,
            reach: Reach::Reports,
            personal: true,
        }
    }

    /// A team: its owners' records and those shared with the team or its owners.
    pub fn team(team: impl Into<String>) -> Principal {
        Principal {
            owner: None,
            team: Some(team.into()),
            reach: Reach::Team,
            personal: true,
        }
    }

    /// Everyone's records (an administrator, an analyst).
    pub fn everyone() -> Principal {
        Principal {
            owner: None,
            team: None,
            reach: Reach::Everything,
            personal: true,
        }
    }

    /// The same principal, reading contacts' personal fields redacted (a marketing
    /// analyst): the name is [`REDACTED`], the email and phone are absent, custom
    /// fields marked personal ([`WriteTransaction::set_personal`]) are left out, and
    /// neither queries nor lookups by them find anything (a redacted value cannot be
    /// matched either).
    ///
    /// [`WriteTransaction::set_personal`]: crate::WriteTransaction::set_personal
    pub fn without_personal(mut self) -> Principal {
        self.personal = false;
        self
    }

    /// Whether the principal reads personal fields.
    pub fn sees_personal(&self) -> bool {
        self.personal
    }

    /// How far the principal sees.
    pub fn reach(&self) -> Reach {
        self.reach
    }

    /// The team the principal is, if it is one.
    pub fn team_name(&self) -> Option<&str> {
        self.team.as_deref()
    }

    /// The owner the principal is, if it is one.
    pub fn owner_id(&self) -> Option<OwnerId> {
        self.owner
    }

    /// Whom a record this principal creates is shared with when its owner is not in
    /// the principal's reach, so that it stays in sight: the owner (or manager) it is,
    /// or the team. `None` for [`Principal::everyone`], who sees it anyway.
    pub fn grantee(&self) -> Option<Grantee> {
        match (self.reach, self.owner, &self.team) {
            (Reach::Everything, ..) => None,
            (_, Some(owner), _) => Some(Grantee::Owner(owner)),
            (_, None, Some(team)) => Some(Grantee::Team(team.clone())),
            (_, None, None) => None,
        }
    }
}

/// What a redacted contact's name reads (see [`Principal::without_personal`]).
pub const REDACTED: &str = "[redacted]";

/// Whom a record is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    /// An owner.
    Owner(OwnerId),
    /// A team, by name.
    Team(String),
}

/// The kinds whose records have an owner, and the field naming it.
pub(crate) const OWNED: [(EntityKind, &str); 5] = [
    (EntityKind::Contact, "owner"),
    (EntityKind::Account, "owner"),
    (EntityKind::Deal, "owner"),
    (EntityKind::Activity, "owner"),
    (EntityKind::Task, "assignee"),
];

/// The pseudo-fields of the share bitmaps.
pub(crate) const SHARE_OWNER: &str = "_share_owner";
pub(crate) const SHARE_TEAM: &str = "_share_team";

/// Whether records of `kind` have an owner and can be shared.
pub(crate) fn owner_field(kind: EntityKind) -> Option<&'static str> {
    OWNED.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f)
}

/// The bitmap key of the records of `kind` shared with `grantee`.
pub(crate) fn share_key(kind: EntityKind, grantee: &Grantee) -> String {
    match grantee {
        Grantee::Owner(owner) => index::cat_key(kind, SHARE_OWNER, &owner.get().to_string()),
        Grantee::Team(team) => index::cat_key(kind, SHARE_TEAM, team),
    }
}

/// The rows of each kind a principal sees. A kind without an entry is seen whole. Each
/// kind's rows are worked out on first use, so that a read of contacts does not pay
/// for activities.
#[derive(Debug, Default)]
pub(crate) struct Visibility {
    rows: BTreeMap<EntityKind, OnceLock<RoaringBitmap>>,
    /// The owners whose records (and shares) the principal sees.
    owners: BTreeSet<u32>,
    /// The teams whose shares the principal sees.
    teams: BTreeSet<String>,
}

impl Visibility {
    /// What `principal` sees in `snap`. Reporting lines come from `reports_to`
    /// (owner → manager).
    pub(crate) fn of<S: Source + ?Sized>(
        snap: &S,
        principal: &Principal,
        reports_to: &BTreeMap<u32, u32>,
    ) -> Result<Visibility> {
        let owners: BTreeSet<u32> = match principal.reach {
            Reach::Everything => return Ok(Visibility::default()),
            Reach::Own => principal.owner.iter().map(|o| o.get()).collect(),
            Reach::Reports => {
                let mut reach: BTreeSet<u32> = principal.owner.iter().map(|o| o.get()).collect();
                // Down the lines until nothing new: the lines are acyclic (checked on
                // write), and the loop is bounded by the number of owners anyway.
                for _ in 0..=reports_to.len() {
                    let before = reach.len();
                    for (report, manager) in reports_to {
                        if reach.contains(manager) {
                            reach.insert(*report);
                        }
                    }
                    if reach.len() == before {
                        break;
                    }
                }
                reach
            }
            Reach::Team => {
                let team = principal.team.as_deref().unwrap_or_default();
                let members = snap.bitmap(&index::cat_key(EntityKind::Owner, "team", team))?;
                members.iter().collect()
            }
        };
        let mut teams: BTreeSet<String> = principal.team.iter().cloned().collect();
        for owner in &owners {
            let record: Option<Owner> = snap.record(OwnerId::new(*owner))?;
            teams.extend(record.and_then(|owner| owner.team));
        }
        let mut rows: BTreeMap<EntityKind, OnceLock<RoaringBitmap>> = OWNED
            .iter()
            .map(|(kind, _)| (*kind, OnceLock::new()))
            .collect();
        rows.insert(EntityKind::Order, OnceLock::from(RoaringBitmap::new()));
        Ok(Visibility {
            rows,
            owners,
            teams,
        })
    }

    /// The bitmaps whose union is what the principal sees of `kind`: its owners'
    /// records and shares, and its teams' shares. None for a kind without owners.
    fn sources(&self, kind: EntityKind) -> Vec<String> {
        let Some(field) = owner_field(kind) else {
            return Vec::new();
        };
        let mut keys = Vec::with_capacity(self.owners.len() * 2 + self.teams.len());
        for owner in &self.owners {
            let id = owner.to_string();
            keys.push(index::cat_key(kind, field, &id));
            keys.push(index::cat_key(kind, SHARE_OWNER, &id));
        }
        keys.extend(
            self.teams
                .iter()
                .map(|team| index::cat_key(kind, SHARE_TEAM, team)),
        );
        keys
    }

    /// Whether rows of `kind` are narrowed at all (without working them out).
    pub(crate) fn narrows(&self, kind: EntityKind) -> bool {
        self.rows.contains_key(&kind)
    }

    /// The rows of `kind` the principal sees in `snap`, or `None` when it sees them all.
    pub(crate) fn rows<S: Source + ?Sized>(
        &self,
        snap: &S,
        kind: EntityKind,
    ) -> Result<Option<&RoaringBitmap>> {
        let Some(cell) = self.rows.get(&kind) else {
            return Ok(None);
        };
        if let Some(rows) = cell.get() {
            return Ok(Some(rows));
        }
        let mut seen = RoaringBitmap::new();
        for key in self.sources(kind) {
            seen |= &*snap.bitmap(&key)?;
        }
        Ok(Some(cell.get_or_init(|| seen)))
    }

    /// Whether the principal sees row `row` of `kind` in `snap`.
    pub(crate) fn sees<S: Source + ?Sized>(
        &self,
        snap: &S,
        kind: EntityKind,
        row: u32,
    ) -> Result<bool> {
        Ok(self.rows(snap, kind)?.is_none_or(|rows| rows.contains(row)))
    }

    /// Works out again whether row `row` of `kind` is seen, from its owner and share
    /// bitmaps in `snap` (a write transaction after writing the row), and keeps the
    /// answer where the kind's rows were worked out already (otherwise they will be,
    /// from the same bitmaps). Rows of kinds seen whole, or never, are left as they are.
    pub(crate) fn recheck<S: Source + ?Sized>(
        &mut self,
        snap: &S,
        kind: EntityKind,
        row: u32,
    ) -> Result<bool> {
        if owner_field(kind).is_none() {
            return self.sees(snap, kind, row);
        }
        if !self.rows.contains_key(&kind) {
            return Ok(true);
        }
        let mut seen = false;
        for key in self.sources(kind) {
            if snap.bitmap(&key)?.contains(row) {
                seen = true;
                break;
            }
        }
        self.set(kind, row, seen);
        Ok(seen)
    }

    /// Marks row `row` of `kind` seen or not, where the kind's rows were worked out (a
    /// kind seen whole stays so).
    pub(crate) fn set(&mut self, kind: EntityKind, row: u32, seen: bool) {
        if let Some(rows) = self.rows.get_mut(&kind).and_then(OnceLock::get_mut) {
            if seen {
                rows.insert(row);
            } else {
                rows.remove(row);
            }
        }
    }
}
