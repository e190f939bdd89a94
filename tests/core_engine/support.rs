//! Shared helpers: a manual clock, contacts, temp directories and a snapshot fingerprint.

use std::collections::BTreeMap;

use crmdb::{
    Account, Activity, Contact, Deal, EntityKind, Order, Owner, Product, Query, Snapshot, Task,
    Value,
};

#[path = "../support/temp_dir.rs"]
mod temp_dir;
pub(crate) use temp_dir::TempDir;

#[path = "../support/records.rs"]
mod records;

pub(crate) use records::{clocked, contact, t0};

/// Everything observable about a snapshot through the public API, as text, so that two
/// states can be compared whole.
pub(crate) fn fingerprint<S: Snapshot>(s: &S) -> crmdb::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "contacts {:?}", s.records::<Contact>()?);
    let _ = writeln!(out, "accounts {:?}", s.records::<Account>()?);
    let _ = writeln!(out, "deals {:?}", s.records::<Deal>()?);
    let _ = writeln!(out, "activities {:?}", s.records::<Activity>()?);
    let _ = writeln!(out, "orders {:?}", s.records::<Order>()?);
    let _ = writeln!(out, "products {:?}", s.records::<Product>()?);
    let _ = writeln!(out, "owners {:?}", s.records::<Owner>()?);
    let _ = writeln!(out, "tasks {:?}", s.records::<Task>()?);
    for kind in EntityKind::ALL {
        let _ = writeln!(out, "{kind} live {:?}", s.live(kind)?);
        let _ = writeln!(out, "{kind} deleted {:?}", s.deleted(kind)?);
    }
    for kind in [EntityKind::Contact, EntityKind::Account, EntityKind::Deal] {
        let _ = writeln!(out, "{kind} tags {:?}", s.tags(kind)?);
    }
    for (id, c) in s.records::<Contact>()? {
        let _ = writeln!(out, "contact {id} history {:?}", s.history(id)?);
        if let Some(email) = &c.email {
            let _ = writeln!(out, "email {email} -> {:?}", s.contact_by_email(email)?);
        }
    }
    for (id, _) in s.records::<Deal>()? {
        let _ = writeln!(out, "deal {id} history {:?}", s.history(id)?);
    }
    for (_, p) in s.records::<Product>()? {
        let _ = writeln!(out, "sku {} -> {:?}", p.sku, s.product_by_sku(&p.sku)?);
    }
    let machines = s.machines()?;
    for stage in &machines.contact.stages {
        let q = Query::stage(stage.name.as_str());
        let _ = writeln!(
            out,
            "contact stage {} {}",
            stage.name,
            s.count(EntityKind::Contact, &q)?
        );
    }
    let _ = writeln!(out, "segments {:?}", s.segments()?);
    let _ = writeln!(out, "contact schema {:?}", s.schema(EntityKind::Contact)?);
    Ok(out)
}

pub(crate) fn custom(values: Vec<(&str, Value)>) -> BTreeMap<String, Value> {
    values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
