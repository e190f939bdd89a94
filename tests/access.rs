//! Access scopes: for random owners, reporting lines, contacts, shares and principals,
//! every scoped read equals the unscoped one narrowed to the rows the principal may
//! see, computed here from the rows alone; and that stays true through random
//! reassignments and shares. A record out of sight answers as one that never existed.

use std::collections::{BTreeMap, BTreeSet};

use crmdb::{
    Contact, ContactId, Database, EntityKind, Error, Grantee, GroupBy, Money, Owner, OwnerId,
    Principal, Query, Snapshot, SortBy,
};
use proptest::prelude::*;

const OWNERS: u32 = 6;
const TEAMS: [&str; 2] = ["north", "south"];
const QUERIES: [&str; 9] = [
    "*",
    "tag:a",
    "tag:a AND NOT tag:b",
    "NOT tag:a",
    "lifetime_value > 500",
    "lifetime_value between 100 and 600 OR tag:c",
    "region = \"x\" OR tag:c",
    "owner = 1",
    "NOT (region = \"y\" AND lifetime_value < 300)",
];

#[derive(Debug, Clone)]
struct Person {
    owner: Option<u32>,
    tags: Vec<&'static str>,
    region: &'static str,
    value: i64,
}

#[derive(Debug, Clone)]
enum Step {
    Reassign(usize, Option<u32>),
    ShareOwner(usize, u32),
    ShareTeam(usize, usize),
    Unshare(usize, u32),
}

fn person() -> impl Strategy<Value = Person> {
    (
        proptest::option::weighted(0.85, 0..OWNERS),
        proptest::sample::subsequence(vec!["a", "b", "c"], 0..=3),
        prop_oneof![Just("x"), Just("y")],
        0..1_000i64,
    )
        .prop_map(|(owner, tags, region, value)| Person {
            owner,
            tags,
            region,
            value,
        })
}

fn step(people: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..people, proptest::option::of(0..OWNERS)).prop_map(|(p, o)| Step::Reassign(p, o)),
        (0..people, 0..OWNERS).prop_map(|(p, o)| Step::ShareOwner(p, o)),
        (0..people, 0..TEAMS.len()).prop_map(|(p, t)| Step::ShareTeam(p, t)),
        (0..people, 0..OWNERS).prop_map(|(p, o)| Step::Unshare(p, o)),
    ]
}

fn principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        (0..OWNERS).prop_map(|o| Principal::owner(OwnerId::new(o))),
        (0..OWNERS).prop_map(|o| Principal::manager(OwnerId::new(o))),
        (0..TEAMS.len()).prop_map(|t| Principal::team(TEAMS[t])),
        Just(Principal::everyone()),
    ]
}

/// The reference: who owns what and what is shared with whom, kept beside the database.
#[derive(Debug, Default)]
struct Model {
    owners: Vec<u32>,
    team_of: BTreeMap<u32, &'static str>,
    reports_to: BTreeMap<u32, u32>,
    owner_of: BTreeMap<u32, Option<u32>>,
    shared_owner: BTreeSet<(u32, u32)>,
    shared_team: BTreeSet<(u32, &'static str)>,
}

impl Model {
    /// The contacts `principal` may see, from the model alone.
    fn visible(&self, principal: &Principal) -> BTreeSet<u32> {
        let reach: BTreeSet<u32> = match principal.reach() {
            crmdb::Reach::Everything => return self.owner_of.keys().copied().collect(),
            crmdb::Reach::Own => principal.owner_id().iter().map(|o| o.get()).collect(),
            crmdb::Reach::Reports => {
                let top = principal.owner_id().expect("a manager").get();
                self.owners
                    .iter()
                    .copied()
                    .filter(|o| {
                        let mut at = Some(*o);
                        while let Some(here) = at {
                            if here == top {
                                return true;
                            }
                            at = self.reports_to.get(&here).copied();
                        }
                        false
                    })
                    .collect()
            }
            crmdb::Reach::Team => {
                let team = team_name(principal);
                self.team_of
                    .iter()
                    .filter(|(_, t)| **t == team)
                    .map(|(o, _)| *o)
                    .collect()
            }
        };
        let mut teams: BTreeSet<&str> = reach.iter().map(|o| self.team_of[o]).collect();
        if principal.reach() == crmdb::Reach::Team {
            teams.insert(team_name(principal));
        }
        self.owner_of
            .iter()
            .filter(|(row, owner)| {
                owner.is_some_and(|o| reach.contains(&o))
                    || self
                        .shared_owner
                        .iter()
                        .any(|(r, o)| r == *row && reach.contains(o))
                    || self
                        .shared_team
                        .iter()
                        .any(|(r, t)| r == *row && teams.contains(t))
            })
            .map(|(row, _)| *row)
            .collect()
    }
}

/// The team of a team principal.
fn team_name(principal: &Principal) -> &str {
    principal.team_name().expect("a team principal")
}

fn setup(people: &[Person]) -> (Database, Model, Vec<ContactId>) {
    let db = Database::in_memory().expect("database");
    let mut model = Model::default();
    let ids = db
        .write(|tx| -> crmdb::Result<Vec<ContactId>> {
            for o in 0..OWNERS {
                let team = TEAMS[(o % 2) as usize];
                let id = tx.insert(Owner {
                    name: format!("owner {o}"),
                    team: Some(team.into()),
                    ..Owner::default()
                })?;
                assert_eq!(id.get(), o);
                model.owners.push(o);
                model.team_of.insert(o, team);
            }
            // 1 and 2 report to 0 (2 through 1), 4 to 3.
            for (report, manager) in [(1, 0), (2, 1), (4, 3)] {
                tx.set_manager(OwnerId::new(report), Some(OwnerId::new(manager)))?;
                model.reports_to.insert(report, manager);
            }
            let mut ids = Vec::new();
            for (i, p) in people.iter().enumerate() {
                let id = tx.insert(Contact {
                    name: format!("person {i}"),
                    email: Some(format!("p{i}@mail.example")),
                    owner: p.owner.map(OwnerId::new),
                    region: Some(p.region.into()),
                    tags: p.tags.iter().map(|t| (*t).to_owned()).collect(),
                    lifetime_value: Money(p.value * 100),
                    ..Contact::default()
                })?;
                model.owner_of.insert(id.get(), p.owner);
                ids.push(id);
            }
            Ok(ids)
        })
        .expect("setup");
    (db, model, ids)
}

fn apply(db: &Database, model: &mut Model, ids: &[ContactId], steps: &[Step]) {
    db.write(|tx| -> crmdb::Result<()> {
        for step in steps {
            match step {
                Step::Reassign(p, owner) => {
                    tx.modify(ids[*p], |c| c.owner = owner.map(OwnerId::new))?;
                    model.owner_of.insert(ids[*p].get(), *owner);
                }
                Step::ShareOwner(p, o) => {
                    tx.share(ids[*p], &Grantee::Owner(OwnerId::new(*o)))?;
                    model.shared_owner.insert((ids[*p].get(), *o));
                }
                Step::ShareTeam(p, t) => {
                    tx.share(ids[*p], &Grantee::Team(TEAMS[*t].into()))?;
                    model.shared_team.insert((ids[*p].get(), TEAMS[*t]));
                }
                Step::Unshare(p, o) => {
                    tx.unshare(ids[*p], &Grantee::Owner(OwnerId::new(*o)))?;
                    model.shared_owner.remove(&(ids[*p].get(), *o));
                }
            }
        }
        Ok(())
    })
    .expect("steps apply");
}

/// Every scoped read against the unscoped one narrowed to `seen`.
fn check(db: &Database, principal: &Principal, seen: &BTreeSet<u32>, total: u32) {
    let seen_bitmap: crmdb::RoaringBitmap = seen.iter().copied().collect();
    let by_value = SortBy::field("lifetime_value").descending();
    for text in QUERIES {
        let query = Query::parse(text).expect("query parses");
        let all = db
            .read(|r| r.ids(EntityKind::Contact, &query))
            .expect("unscoped");
        let full_page = db
            .read(|r| r.page::<Contact>(&query, &by_value, 10_000, None))
            .expect("unscoped page");
        db.read_as(principal, |r| {
            let ids = r.ids(EntityKind::Contact, &query)?;
            assert_eq!(ids, &all & &seen_bitmap, "{text} as {principal:?}");
            assert_eq!(r.count(EntityKind::Contact, &query)?, ids.len(), "{text}");
            let page = r.page::<Contact>(&query, &by_value, 5, None)?;
            let expected: Vec<u32> = full_page
                .items
                .iter()
                .map(|(id, _)| id.get())
                .filter(|id| seen.contains(id))
                .take(5)
                .collect();
            let got: Vec<u32> = page.items.iter().map(|(id, _)| id.get()).collect();
            assert_eq!(got, expected, "page of {text}");
            assert_eq!(page.total, ids.len());
            let groups = r.group_by(EntityKind::Contact, &query, &GroupBy::new("region"))?;
            for group in groups {
                let region = Query::parse(&format!("({text}) AND region = \"{}\"", group.value))?;
                let in_group = db.read(|u| u.ids(EntityKind::Contact, &region))?;
                assert_eq!(
                    group.count,
                    (&in_group & &seen_bitmap).len(),
                    "{text} by region"
                );
            }
            Ok(())
        })
        .expect("scoped reads");
    }
    db.read_as(principal, |r| {
        assert_eq!(r.visible(EntityKind::Contact)?, seen_bitmap);
        let tags: u64 = r.tags(EntityKind::Contact)?.iter().map(|t| t.count).sum();
        let expected: u64 = db.read(|u| {
            let mut n = 0;
            for (id, c) in u.records::<Contact>()? {
                if seen.contains(&id.get()) {
                    n += c.tags.len() as u64;
                }
            }
            Ok(n)
        })?;
        assert_eq!(tags, expected, "tag counts");
        for row in 0..total + 3 {
            match r.get(ContactId::new(row)) {
                Ok(_) => assert!(seen.contains(&row), "{row} is out of sight"),
                Err(Error::NotFound { id, .. }) => {
                    assert_eq!(id, row);
                    assert!(!seen.contains(&row), "{row} is in sight");
                }
                Err(other) => panic!("{other}"),
            }
            let email = format!("p{row}@mail.example");
            assert_eq!(
                r.contact_by_email(&email)?.map(|id| id.get()),
                seen.contains(&row).then_some(row),
                "the email of {row}"
            );
        }
        // The change feed names only records in sight.
        for batch in r.changes(0, 1_000)? {
            for event in batch.events {
                if let Some((EntityKind::Contact, row)) = event.change.target() {
                    assert!(seen.contains(&row), "an event of {row} leaked");
                }
            }
        }
        Ok(())
    })
    .expect("scoped lookups");
}

fn cases() -> u32 {
    std::env::var("CRMDB_ACCESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn scoped_reads_are_the_unscoped_ones_narrowed_to_what_is_visible(
        people in proptest::collection::vec(person(), 1..40),
        steps in proptest::collection::vec(step(40), 0..30),
        principals in proptest::collection::vec(principal(), 1..4),
    ) {
        let (db, mut model, ids) = setup(&people);
        let steps: Vec<Step> = steps
            .into_iter()
            .filter(|s| match s {
                Step::Reassign(p, _) | Step::ShareOwner(p, _) | Step::ShareTeam(p, _)
                | Step::Unshare(p, _) => *p < ids.len(),
            })
            .collect();
        for principal in &principals {
            check(&db, principal, &model.visible(principal), ids.len() as u32);
        }
        apply(&db, &mut model, &ids, &steps);
        for principal in &principals {
            check(&db, principal, &model.visible(principal), ids.len() as u32);
        }
    }
}

#[test]
fn reporting_lines_refuse_cycles_and_unknown_owners() {
    let (db, _, _) = setup(&[]);
    let refused = db.write(|tx| tx.set_manager(OwnerId::new(0), Some(OwnerId::new(2))));
    assert!(
        matches!(refused, Err(Error::InvalidArgument(_))),
        "{refused:?}"
    );
    let refused = db.write(|tx| tx.set_manager(OwnerId::new(0), Some(OwnerId::new(99))));
    assert!(
        matches!(refused, Err(Error::BrokenRelation { .. })),
        "{refused:?}"
    );
    let refused = db.write(|tx| tx.share(OwnerId::new(0), &Grantee::Team("north".into())));
    assert!(
        matches!(refused, Err(Error::InvalidArgument(_))),
        "{refused:?}"
    );
}

/// Analytics read through the scope: an owner's funnel is the funnel of the deals they
/// own, and their owner ranking has only their own row with the same figures.
#[test]
fn analytics_see_only_what_is_visible() {
    use crmdb::Timestamp;
    use crmdb::analytics::{FunnelRequest, OwnerSort, funnel, owner_ranking};
    let db = Database::in_memory().expect("database");
    crmdb::demo::Generator::new(2_000)
        .load(&db, |_| {})
        .expect("demo data");
    let (from, to) = (Timestamp(0), Timestamp(4_102_444_800));
    for owner in [0, 3, 7] {
        let principal = Principal::owner(OwnerId::new(owner));
        let scoped = db
            .read_as(&principal, |r| {
                funnel(
                    r,
                    &FunnelRequest {
                        pipeline: "default".into(),
                        from,
                        to,
                        segment: None,
                    },
                )
            })
            .expect("scoped funnel");
        let theirs = db
            .read(|r| {
                funnel(
                    r,
                    &FunnelRequest {
                        pipeline: "default".into(),
                        from,
                        to,
                        segment: Some(Query::parse(&format!("owner = {owner}"))?),
                    },
                )
            })
            .expect("funnel of their deals");
        assert_eq!(scoped, theirs, "owner {owner}");
        assert!(scoped.deals > 0, "owner {owner} has deals");

        let ranked = db
            .read_as(&principal, |r| {
                owner_ranking(r, from, to, OwnerSort::WonAmount)
            })
            .expect("scoped ranking");
        let all = db
            .read(|r| owner_ranking(r, from, to, OwnerSort::WonAmount))
            .expect("ranking");
        let mine = all.iter().find(|o| o.owner.get() == owner).expect("a row");
        let row = ranked
            .iter()
            .find(|o| o.owner.get() == owner)
            .expect("their row");
        assert_eq!(row.won_amount, mine.won_amount);
        assert_eq!(row.won_count, mine.won_count);
        for other in ranked.iter().filter(|o| o.owner.get() != owner) {
            assert_eq!((other.won_count, other.closed_count), (0, 0), "{other:?}");
        }
    }
}
