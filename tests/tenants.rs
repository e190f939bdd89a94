//! The tenant set: tenants opened on demand, closed in least-recently-used order when
//! idle, never more open than the budget allows, and one cache budget for all.

use crmdb::demo::Generator;
use crmdb::{Contact, EntityKind, Error, Query, Snapshot, TenantOptions, TenantSet, TenantStats};

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir as Scratch;

fn options(budget: usize, max_open: usize) -> TenantOptions {
    TenantOptions {
        memory_budget: budget,
        max_open,
        ..TenantOptions::default()
    }
}

fn open_names(set: &TenantSet) -> Vec<String> {
    set.stats()
        .expect("stats")
        .into_iter()
        .filter(|s: &TenantStats| s.open)
        .map(|s| s.name)
        .collect()
}

#[test]
fn tenants_are_created_listed_reopened_and_dropped() -> crmdb::Result<()> {
    let scratch = Scratch::new("life");
    let set = TenantSet::open(&scratch.0, options(64 << 20, 4))?;
    assert!(set.list()?.is_empty());
    let acme = set.create("acme")?;
    let id = acme.write(|tx| {
        tx.insert(Contact {
            name: "Li Lei".into(),
            email: Some("li.lei@example.com".into()),
            ..Default::default()
        })
    })?;
    drop(acme);
    set.create("globex")?;
    assert_eq!(set.list()?, ["acme", "globex"]);
    assert!(matches!(set.create("acme"), Err(Error::TenantExists(n)) if n == "acme"));
    assert!(matches!(set.get("initech"), Err(Error::UnknownTenant(n)) if n == "initech"));

    // Closed and opened again, the tenant has its data.
    assert!(set.close("acme")?);
    assert!(!set.close("acme")?);
    let acme = set.get("acme")?;
    assert_eq!(acme.read(|r| r.get(id))?.name, "Li Lei");

    // Held, it can be neither closed nor dropped; released, it can.
    assert!(matches!(set.close("acme"), Err(Error::TenantBusy(n)) if n == "acme"));
    assert!(matches!(set.drop_tenant("acme"), Err(Error::TenantBusy(_))));
    drop(acme);
    set.drop_tenant("acme")?;
    assert_eq!(set.list()?, ["globex"]);
    assert!(matches!(set.get("acme"), Err(Error::UnknownTenant(_))));
    assert!(matches!(
        set.drop_tenant("acme"),
        Err(Error::UnknownTenant(_))
    ));

    let stats = set.stats()?;
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].name, "globex");
    assert!(stats[0].file_bytes > 0 && stats[0].last_used.is_some());
    Ok(())
}

#[test]
fn names_that_are_not_plain_file_names_are_refused() -> crmdb::Result<()> {
    let scratch = Scratch::new("names");
    let set = TenantSet::open(&scratch.0, options(64 << 20, 4))?;
    let long = "a".repeat(65);
    for name in [
        "",
        "../escape",
        "a/b",
        "Acme",
        "-dash",
        "dot.name",
        long.as_str(),
    ] {
        assert!(
            matches!(set.create(name), Err(Error::InvalidArgument(_))),
            "{name:?} was accepted"
        );
        assert!(matches!(set.get(name), Err(Error::InvalidArgument(_))));
    }
    set.create(&"a".repeat(64))?;
    set.create("a-1_b")?;
    // Files that are not tenants are not listed.
    std::fs::write(scratch.0.join("notes.txt"), b"x")?;
    std::fs::write(scratch.0.join("Bad.redb"), b"x")?;
    assert_eq!(set.list()?, ["a-1_b".to_owned(), "a".repeat(64)]);
    Ok(())
}

#[test]
fn idle_tenants_close_least_recently_used_first_and_held_ones_never() -> crmdb::Result<()> {
    let scratch = Scratch::new("lru");
    let set = TenantSet::open(&scratch.0, options(64 << 20, 2))?;
    for name in ["a", "b", "c"] {
        set.create(name)?;
    }
    // Creating c closed a, the least recently used.
    assert_eq!(open_names(&set), ["b", "c"]);
    set.get("b")?;
    set.get("a")?; // closes c: b was used after it
    assert_eq!(open_names(&set), ["a", "b"]);

    // A held tenant stays open even when it is the least recently used.
    let held_a = set.get("a")?;
    set.get("b")?;
    set.get("c")?; // b is idle, a is held: b closes
    assert_eq!(open_names(&set), ["a", "c"]);

    // With every slot held, no other tenant opens: the budget would not hold it.
    let held_c = set.get("c")?;
    assert!(matches!(
        set.get("b"),
        Err(Error::TenantsBusy { max_open: 2 })
    ));
    // An open transaction holds its tenant too.
    drop(held_c);
    let c = set.get("c")?;
    let read = c.begin_read()?;
    drop(c);
    assert!(matches!(set.get("b"), Err(Error::TenantsBusy { .. })));
    drop(read);
    set.get("b")?;
    assert_eq!(open_names(&set), ["a", "b"]);
    assert!(set.open_count() <= 2);
    drop(held_a);
    Ok(())
}

#[test]
fn one_budget_bounds_every_open_tenants_caches() -> crmdb::Result<()> {
    let scratch = Scratch::new("budget");
    // A small budget that the tenants' bitmaps exceed many times over.
    let budget = 2 << 20;
    let set = TenantSet::open(&scratch.0, options(budget, 3))?;
    assert!(set.page_cache_share() * 3 + set.bitmap_cache_share() <= budget);
    let queries = [
        r#"region = "shanghai" AND stage:active"#,
        "tag:vip OR total_spent >= 500",
        "NOT stage:prospect AND created within 365d",
    ];
    let names: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    let mut lone_counts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let db = set.create(name)?;
        let generator = Generator {
            seed: 1000 + i as u64,
            ..Generator::new(1500)
        };
        generator.load(&db, |_| {})?;
        let mut counts = Vec::new();
        for q in queries {
            let query = Query::parse(q)?;
            counts.push(db.read(|r| r.count(EntityKind::Contact, &query))?);
        }
        lone_counts.push(counts);
    }
    // Round after round over every tenant: answers stay right, open tenants and the
    // shared bitmap cache stay within their bounds.
    for round in 0..3 {
        for (name, expected) in names.iter().zip(&lone_counts) {
            let db = set.get(name)?;
            for (q, want) in queries.iter().zip(expected) {
                let query = Query::parse(q)?;
                let got = db.read(|r| r.count(EntityKind::Contact, &query))?;
                assert_eq!(got, *want, "round {round}, {name}: {q}");
                assert!(set.bitmap_cache_bytes() <= set.bitmap_cache_share());
            }
            assert!(set.open_count() <= 3);
        }
    }
    let cached: usize = set.stats()?.iter().map(|s| s.bitmap_cache_bytes).sum();
    assert_eq!(
        cached,
        set.bitmap_cache_bytes(),
        "closed tenants hold no cache"
    );
    Ok(())
}
