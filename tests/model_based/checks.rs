//! Checks every record against the model and every index against the rows.

use std::collections::{BTreeMap, BTreeSet};

use crmdb::{
    Account, Contact, ContactId, EntityKind, Error, GroupBy, Literal, Money, Order, OrderStatus,
    Owner, Query, RoaringBitmap, Snapshot,
};

use crate::model::{self, Env};
use crate::ops::{EMAILS, REGIONS, STAGE_NAMES, TAGS};
use crate::reference::{MContact, Model, norm};

/// `(row, in the recycle bin)` of every stored record of a kind.
type RowStates = Vec<(u32, bool)>;

fn bitmap(rows: impl IntoIterator<Item = u32>) -> RoaringBitmap {
    rows.into_iter().collect()
}

pub(crate) fn check_against_model<S: Snapshot>(
    snap: &S,
    m: &Model,
    today: i64,
) -> Result<(), String> {
    let err = |e: Error| e.to_string();
    let records = snap.records::<Contact>().map_err(err)?;
    // Rows against the model.
    let rows: Vec<u32> = records.iter().map(|(id, _)| id.get()).collect();
    let model_rows: Vec<u32> = m.contacts.keys().copied().collect();
    if rows != model_rows {
        return Err(format!("contact rows {rows:?}, model {model_rows:?}"));
    }
    for (id, c) in &records {
        let e = &m.contacts[&id.get()];
        let got = MContact {
            email: c.email.clone(),
            region: c.region.clone(),
            owner: c.owner.map(|o| o.get()),
            account: c.account.map(|a| a.get()),
            stage: STAGE_NAMES
                .iter()
                .position(|s| *s == c.stage.as_str())
                .unwrap_or(99),
            tags: c.tags.clone(),
            ltv: c.lifetime_value.0,
            created: c.created_at.unwrap_or_default(),
            deleted: c.deleted_at.is_some(),
            order_count: c.stats.order_count,
            total_spent: c.stats.total_spent.0,
            last_order: c.stats.last_order,
            changes: snap.history(*id).map_err(err)?.len(),
        };
        if &got != e {
            return Err(format!("contact {id}: stored {got:?}, model {e:?}"));
        }
        let last = snap.history(*id).map_err(err)?.last().map(|h| h.to.clone());
        if last.as_ref() != Some(&c.stage) {
            return Err(format!(
                "contact {id}: stage {} but history ends in {last:?}",
                c.stage
            ));
        }
        if c.deleted_at.is_none() && !c.stats.total_spent.0.eq(&e.total_spent) {
            return Err(format!("contact {id}: figures differ"));
        }
    }
    for (email, _) in EMAILS.iter().zip(0..) {
        let got = snap.contact_by_email(email).map_err(err)?.map(|c| c.get());
        let want = m
            .contacts
            .iter()
            .find(|(_, c)| c.email.as_deref().map(norm) == Some(norm(email)))
            .map(|(r, _)| *r);
        if got != want {
            return Err(format!("email {email:?}: {got:?}, model {want:?}"));
        }
    }
    // live / deleted of every kind against the rows read back and the model.
    let owners = snap.records::<Owner>().map_err(err)?;
    let accounts = snap.records::<Account>().map_err(err)?;
    let orders = snap.records::<Order>().map_err(err)?;
    let sets: [(EntityKind, RowStates, RowStates); 4] = [
        (
            EntityKind::Contact,
            records
                .iter()
                .map(|(i, r)| (i.get(), r.deleted_at.is_some()))
                .collect(),
            m.contacts.iter().map(|(r, c)| (*r, c.deleted)).collect(),
        ),
        (
            EntityKind::Owner,
            owners
                .iter()
                .map(|(i, r)| (i.get(), r.deleted_at.is_some()))
                .collect(),
            m.owners.iter().map(|(r, d)| (*r, *d)).collect(),
        ),
        (
            EntityKind::Account,
            accounts
                .iter()
                .map(|(i, r)| (i.get(), r.deleted_at.is_some()))
                .collect(),
            m.accounts.iter().map(|(r, d)| (*r, *d)).collect(),
        ),
        (
            EntityKind::Order,
            orders
                .iter()
                .map(|(i, r)| (i.get(), r.deleted_at.is_some()))
                .collect(),
            m.orders.iter().map(|(r, o)| (*r, o.deleted)).collect(),
        ),
    ];
    for (kind, stored, modelled) in sets {
        if stored != modelled {
            return Err(format!("{kind} rows {stored:?}, model {modelled:?}"));
        }
        let live = bitmap(stored.iter().filter(|(_, d)| !d).map(|(r, _)| *r));
        let deleted = bitmap(stored.iter().filter(|(_, d)| *d).map(|(r, _)| *r));
        let got_live = snap.live(kind).map_err(err)?;
        let got_deleted = snap.deleted(kind).map_err(err)?;
        if got_live != live || got_deleted != deleted {
            return Err(format!(
                "{kind}: live {got_live:?} deleted {got_deleted:?}, rows say {live:?} {deleted:?}"
            ));
        }
        if snap.count(kind, &Query::all()).map_err(err)? != live.len() {
            return Err(format!("{kind}: count(*) differs from live"));
        }
    }
    for (id, o) in &orders {
        let e = &m.orders[&id.get()];
        let got = (
            o.contact.map(|c| c.get()),
            o.status == OrderStatus::Paid,
            o.total.0,
            o.at,
        );
        if got != (Some(e.contact), e.paid, e.total, e.at) {
            return Err(format!("order {id}: stored {got:?}, model {e:?}"));
        }
    }
    check_indexes(snap, &records, today)
}

/// Every index against one recomputed from the rows read back.
fn check_indexes<S: Snapshot>(
    snap: &S,
    records: &[(ContactId, Contact)],
    today: i64,
) -> Result<(), String> {
    let env = Env {
        today,
        segments: Default::default(),
    };
    let mut queries: Vec<Query> = Vec::new();
    let mut values: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    values.insert("region", REGIONS.iter().map(|s| (*s).to_owned()).collect());
    values.insert(
        "stage",
        STAGE_NAMES[..6].iter().map(|s| (*s).to_owned()).collect(),
    );
    values.insert("tag", TAGS.iter().map(|s| (*s).to_owned()).collect());
    values.insert("unsubscribed", ["true".into(), "false".into()].into());
    for field in ["owner", "account"] {
        let ids: BTreeSet<String> = records
            .iter()
            .flat_map(|(_, c)| model::cat_values(c, field))
            .collect();
        values.insert(field, ids);
    }
    for (field, vs) in &values {
        queries.push(Query::field(*field).exists());
        for v in vs {
            let lit = match *field {
                "owner" | "account" => Literal::Int(v.parse().unwrap_or_default()),
                "unsubscribed" => Literal::Bool(v == "true"),
                _ => Literal::Str(v.clone()),
            };
            queries.push(Query::field(*field).eq(lit));
        }
    }
    for (field, kind) in [
        ("lifetime_value", model::Kind::Money),
        ("order_count", model::Kind::Int),
        ("total_spent", model::Kind::Money),
        ("last_order", model::Kind::Date),
        ("created", model::Kind::Date),
    ] {
        queries.push(Query::field(field).exists());
        let distinct: BTreeSet<i64> = records
            .iter()
            .filter_map(|(_, c)| model::num_value(c, field))
            .collect();
        for v in distinct {
            let lit = match kind {
                model::Kind::Money => Literal::Money(Money(v)),
                model::Kind::Date => Literal::Date(v),
                _ => Literal::Int(v),
            };
            queries.push(Query::field(field).eq(lit.clone()));
            queries.push(Query::field(field).ge(lit));
        }
    }
    queries.push(Query::field("last_order").within_days(1));
    for q in &queries {
        let expected = model::naive_ids(q, records, &env);
        match snap.ids(EntityKind::Contact, q) {
            Ok(got) if got == expected => {}
            Ok(got) => return Err(format!("{q}: index says {got:?}, rows say {expected:?}")),
            // A tag no record ever carried is unknown to the engine.
            Err(Error::Query(e)) if expected.is_empty() && e.to_string().contains("tag") => {}
            Err(e) => return Err(format!("{q}: {e}")),
        }
    }
    // Stage counts against the rows.
    let groups = snap
        .group_by(EntityKind::Contact, &Query::all(), &GroupBy::new("stage"))
        .map_err(|e| e.to_string())?;
    let mut naive: BTreeMap<String, u64> = BTreeMap::new();
    for (_, c) in records.iter().filter(|(_, c)| c.deleted_at.is_none()) {
        *naive.entry(c.stage.as_str().to_owned()).or_default() += 1;
    }
    let got: BTreeMap<String, u64> = groups.into_iter().map(|g| (g.value, g.count)).collect();
    if got != naive {
        return Err(format!("stage counts {got:?}, rows say {naive:?}"));
    }
    Ok(())
}
