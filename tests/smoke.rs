use crmdb::{Contact, Database, EntityKind, Query, Snapshot};

#[test]
fn smoke() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let id = db.write(|tx| {
        let id = tx.insert(Contact {
            name: "Li Lei".into(),
            email: Some("li.lei@example.com".into()),
            region: Some("shanghai".into()),
            ..Default::default()
        })?;
        tx.add_tag(id, "vip")?;
        tx.move_stage(id, "active")?;
        Ok(id)
    })?;
    let n = db.read(|r| {
        r.count(
            EntityKind::Contact,
            &Query::parse("tag:vip AND region = \"shanghai\"")?,
        )
    })?;
    assert_eq!(n, 1);
    db.read(|r| {
        assert_eq!(r.get(id)?.stage.as_str(), "active");
        assert_eq!(r.history(id)?.len(), 2);
        Ok(())
    })?;
    let g = crmdb::demo::Generator::new(2000);
    let t = std::time::Instant::now();
    let s = g.load(&db, |_| {})?;
    eprintln!("{s:?} in {:?}", t.elapsed());
    let q = Query::parse(
        "tag:vip AND NOT stage:churned AND lifetime_value >= 1000 AND last_activity within 400d",
    )?;
    let n = db.read(|r| r.count(EntityKind::Contact, &q))?;
    eprintln!("count {n}");
    Ok(())
}

#[test]
fn demo_analytics_smoke() -> crmdb::Result<()> {
    use crmdb::analytics;
    let g = crmdb::demo::Generator::new(3000);
    let db = Database::in_memory()?;
    let s = g.load(&db, |_| {})?;
    assert_eq!(s.deals, 300);
    let from = g.now.plus_days(-800);
    let f = db.read(|r| analytics::funnel(r, &analytics::FunnelRequest { pipeline: "default".into(), from, to: g.now, segment: None }))?;
    eprintln!("{f:#?}");
    let ranking = db.read(|r| analytics::owner_ranking(r, from, g.now, analytics::OwnerSort::WonAmount))?;
    eprintln!("{:?}", &ranking[..3]);
    let st = db.write(|tx| tx.refresh_rfm(g.now))?;
    eprintln!("{st:?}");
    let n = db.read(|r| r.count(EntityKind::Contact, &Query::parse("tier:top20 AND rfm.recency >= 4")?))?;
    eprintln!("top20 & recency>=4: {n}");
    Ok(())
}
