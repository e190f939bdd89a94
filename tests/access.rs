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
    // RFM: the refresh's figures for the customers in sight only.
    let all = db
        .write(|tx| tx.refresh_rfm(Timestamp(1_767_225_600)))
        .expect("refresh");
    for owner in [0, 3] {
        let principal = Principal::owner(OwnerId::new(owner));
        let scoped = db
            .read_as(&principal, crmdb::analytics::rfm_state)
            .expect("scoped rfm")
            .expect("refreshed");
        let tiered = db
            .read(|r| {
                r.ids(
                    EntityKind::Contact,
                    &Query::parse(&format!("(tier:top20 OR tier:rest) AND owner = {owner}"))?,
                )
            })
            .expect("their customers");
        let top = db
            .read(|r| {
                r.count(
                    EntityKind::Contact,
                    &Query::parse(&format!("tier:top20 AND owner = {owner}"))?,
                )
            })
            .expect("their top customers");
        assert_eq!(scoped.customers, tiered.len(), "owner {owner}");
        assert_eq!(scoped.top20, top, "owner {owner}");
        assert!(scoped.customers < all.customers, "owner {owner}");
        assert_eq!(scoped.refreshed_at, all.refreshed_at);
    }
    let everyone = db
        .read_as(&Principal::everyone(), crmdb::analytics::rfm_state)
        .expect("rfm");
    assert_eq!(everyone, Some(all));
}

/// A write by a principal: what it asks for, whether or not the record is in sight.
#[derive(Debug, Clone)]
enum Scoped {
    Reassign(usize, Option<u32>),
    Tag(usize),
    ShareTeam(usize, usize),
    Unshare(usize, u32),
    Insert(Option<u32>),
}

fn scoped_step(people: usize) -> impl Strategy<Value = Scoped> {
    prop_oneof![
        (0..people, proptest::option::of(0..OWNERS)).prop_map(|(p, o)| Scoped::Reassign(p, o)),
        (0..people).prop_map(Scoped::Tag),
        (0..people, 0..TEAMS.len()).prop_map(|(p, t)| Scoped::ShareTeam(p, t)),
        (0..people, 0..OWNERS).prop_map(|(p, o)| Scoped::Unshare(p, o)),
        proptest::option::of(0..OWNERS).prop_map(Scoped::Insert),
    ]
}

/// The grantee a principal's own inserts are shared with, as the model names it.
fn model_share(model: &mut Model, principal: &Principal, row: u32) {
    match principal.grantee() {
        Some(Grantee::Owner(owner)) => {
            model.shared_owner.insert((row, owner.get()));
        }
        Some(Grantee::Team(team)) => {
            let team = TEAMS.iter().find(|t| **t == team).expect("a known team");
            model.shared_team.insert((row, team));
        }
        None => {}
    }
}

/// Runs one scoped write against the model: in sight it is applied (and the model
/// follows); out of sight it is refused as a record that does not exist, and nothing
/// changes. Within the transaction the visible set already follows the write.
fn scoped_write(db: &Database, model: &mut Model, principal: &Principal, step: &Scoped) {
    let before = model.visible(principal);
    let in_sight = |row: u32| before.contains(&row);
    let row_of = |p: usize| p as u32;
    let outcome = db.write_as(principal, |tx| -> crmdb::Result<Option<u32>> {
        let result = match step {
            Scoped::Reassign(p, owner) => tx
                .modify(ContactId::new(row_of(*p)), |c| {
                    c.owner = owner.map(OwnerId::new)
                })
                .map(|()| None),
            Scoped::Tag(p) => tx.add_tag(ContactId::new(row_of(*p)), "w").map(|()| None),
            Scoped::ShareTeam(p, t) => tx
                .share(ContactId::new(row_of(*p)), &Grantee::Team(TEAMS[*t].into()))
                .map(|()| None),
            Scoped::Unshare(p, o) => tx
                .unshare(
                    ContactId::new(row_of(*p)),
                    &Grantee::Owner(OwnerId::new(*o)),
                )
                .map(|()| None),
            Scoped::Insert(owner) => tx
                .insert(Contact {
                    name: "new".into(),
                    owner: owner.map(OwnerId::new),
                    ..Contact::default()
                })
                .map(|id| Some(id.get())),
        };
        if let Ok(inserted) = result {
            let mut next = Model {
                owners: model.owners.clone(),
                team_of: model.team_of.clone(),
                reports_to: model.reports_to.clone(),
                owner_of: model.owner_of.clone(),
                shared_owner: model.shared_owner.clone(),
                shared_team: model.shared_team.clone(),
            };
            follow(&mut next, principal, step, inserted);
            let seen: crmdb::RoaringBitmap = next.visible(principal).into_iter().collect();
            assert_eq!(
                tx.visible(EntityKind::Contact)?,
                seen,
                "{step:?} in the transaction"
            );
        }
        result
    });
    match (step, outcome) {
        (Scoped::Insert(_), Ok(inserted)) => follow(model, principal, step, inserted),
        (Scoped::Insert(_), Err(e)) => panic!("insert refused: {e}"),
        (
            Scoped::Reassign(p, _)
            | Scoped::Tag(p)
            | Scoped::ShareTeam(p, _)
            | Scoped::Unshare(p, _),
            outcome,
        ) => {
            let row = row_of(*p);
            match outcome {
                Ok(_) => {
                    assert!(in_sight(row), "{step:?} wrote a record out of sight");
                    follow(model, principal, step, None);
                }
                Err(Error::NotFound { kind, id }) => {
                    assert_eq!((kind, id), (EntityKind::Contact, row));
                    assert!(!in_sight(row), "{step:?} refused a record in sight");
                }
                Err(other) => panic!("{step:?}: {other}"),
            }
        }
    }
}

/// The model after an applied scoped write.
fn follow(model: &mut Model, principal: &Principal, step: &Scoped, inserted: Option<u32>) {
    match step {
        Scoped::Reassign(p, owner) => {
            model.owner_of.insert(*p as u32, *owner);
        }
        Scoped::Tag(_) => {}
        Scoped::ShareTeam(p, t) => {
            model.shared_team.insert((*p as u32, TEAMS[*t]));
        }
        Scoped::Unshare(p, o) => {
            model.shared_owner.remove(&(*p as u32, *o));
        }
        Scoped::Insert(owner) => {
            let row = inserted.expect("an inserted row");
            model.owner_of.insert(row, *owner);
            if !model.visible(principal).contains(&row) {
                model_share(model, principal, row);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Scoped writes are refused out of sight and applied in sight; the visible sets
    /// the write path keeps equal a recomputation from the model after every write, in
    /// the transaction and after commit, for every principal.
    #[test]
    fn scoped_writes_touch_only_what_is_in_sight(
        people in proptest::collection::vec(person(), 1..30),
        writes in proptest::collection::vec((principal(), scoped_step(30)), 1..25),
        readers in proptest::collection::vec(principal(), 1..3),
    ) {
        let (db, mut model, ids) = setup(&people);
        for (principal, step) in &writes {
            let out_of_range = match step {
                Scoped::Reassign(p, _) | Scoped::Tag(p) | Scoped::ShareTeam(p, _)
                | Scoped::Unshare(p, _) => *p >= ids.len(),
                Scoped::Insert(_) => false,
            };
            if !out_of_range {
                scoped_write(&db, &mut model, principal, step);
            }
        }
        let total = model.owner_of.len() as u32;
        for principal in readers.iter().chain(writes.iter().map(|(p, _)| p)) {
            check_visible(&db, principal, &model.visible(principal), total);
        }
    }
}

/// What `principal` sees after commit against the model: the visible set and `get`.
fn check_visible(db: &Database, principal: &Principal, seen: &BTreeSet<u32>, total: u32) {
    let seen_bitmap: crmdb::RoaringBitmap = seen.iter().copied().collect();
    db.read_as(principal, |r| {
        assert_eq!(
            r.visible(EntityKind::Contact)?,
            seen_bitmap,
            "{principal:?}"
        );
        let all = r.ids(EntityKind::Contact, &Query::parse("*")?)?;
        assert_eq!(all, seen_bitmap);
        for row in 0..total + 2 {
            assert_eq!(
                r.get(ContactId::new(row)).is_ok(),
                seen.contains(&row),
                "{row}"
            );
        }
        Ok(())
    })
    .expect("scoped reads after scoped writes");
}

/// The demo data set the analytics property test reads, with reporting lines (1–4 report
/// to 0, 6 and 7 to 5) and some deals shared with a team or an owner.
fn analytics_db() -> &'static Database {
    static DB: std::sync::OnceLock<Database> = std::sync::OnceLock::new();
    DB.get_or_init(|| {
        let db = Database::in_memory().expect("database");
        crmdb::demo::Generator::new(3_000)
            .load(&db, |_| {})
            .expect("demo data");
        db.write(|tx| -> crmdb::Result<()> {
            for (report, manager) in [(1, 0), (2, 0), (3, 1), (4, 1), (6, 5), (7, 5)] {
                tx.set_manager(OwnerId::new(report), Some(OwnerId::new(manager)))?;
            }
            let teams: Vec<String> = tx
                .records::<Owner>()?
                .into_iter()
                .filter_map(|(_, o)| o.team)
                .collect();
            for row in (0..300).step_by(7) {
                let deal = crmdb::DealId::new(row);
                tx.share(
                    deal,
                    &Grantee::Team(teams[row as usize % teams.len()].clone()),
                )?;
                tx.share(deal, &Grantee::Owner(OwnerId::new(row % 11)))?;
            }
            Ok(())
        })
        .expect("lines and shares");
        db
    })
}

fn demo_principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        (0..12u32).prop_map(|o| Principal::owner(OwnerId::new(o))),
        (0..8u32).prop_map(|o| Principal::manager(OwnerId::new(o))),
        (0..5usize).prop_map(|t| Principal::team(format!("team_{t}"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases().min(24), ..ProptestConfig::default() })]

    /// For random principals on the demo data, a scoped funnel (deals, stage counts, wins,
    /// losses, cycle times) equals the unscoped funnel of the visible deals, and a scoped
    /// group-by with a sum equals the unscoped one over the visible contacts.
    #[test]
    fn scoped_analytics_are_the_unscoped_ones_of_what_is_visible(
        principal in demo_principal(),
        window in 0..3usize,
    ) {
        use crmdb::analytics::{FunnelRequest, funnel};
        use crmdb::{SavedSegment, Timestamp};
        let db = analytics_db();
        let windows = [(0, 4_102_444_800), (1_704_067_200, 1_735_689_600), (1_735_689_600, 1_767_225_600)];
        let (from, to) = (Timestamp(windows[window].0), Timestamp(windows[window].1));
        let deals = db.read_as(&principal, |r| r.visible(EntityKind::Deal)).expect("visible");
        db.write(|tx| tx.save_segment("visible_deals", SavedSegment::Static {
            kind: EntityKind::Deal,
            rows: deals.iter().collect(),
        }))
        .expect("segment");
        let request = |segment: Option<Query>| FunnelRequest {
            pipeline: "default".into(),
            from,
            to,
            segment,
        };
        let scoped = db.read_as(&principal, |r| funnel(r, &request(None))).expect("scoped funnel");
        let expected = db
            .read(|r| funnel(r, &request(Some(Query::segment("visible_deals")))))
            .expect("funnel of the visible deals");
        prop_assert_eq!(&scoped, &expected, "{:?}", principal);

        let contacts = db.read_as(&principal, |r| r.visible(EntityKind::Contact)).expect("visible");
        let by_stage = GroupBy::new("stage").sum("lifetime_value");
        let all = Query::parse("tag:vip OR lifetime_value > 100").expect("query");
        let scoped = db
            .read_as(&principal, |r| r.group_by(EntityKind::Contact, &all, &by_stage))
            .expect("scoped groups");
        db.write(|tx| tx.save_segment("visible_contacts", SavedSegment::Static {
            kind: EntityKind::Contact,
            rows: contacts.iter().collect(),
        }))
        .expect("segment");
        let narrowed = Query::parse("(tag:vip OR lifetime_value > 100) AND segment:visible_contacts")
            .expect("query");
        let expected = db
            .read(|r| r.group_by(EntityKind::Contact, &narrowed, &by_stage))
            .expect("groups of the visible contacts");
        prop_assert_eq!(scoped, expected, "{:?}", principal);
    }
}
