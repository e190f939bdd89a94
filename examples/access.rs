//! Access scopes in brief (the README's example): a rep sees their own contacts and
//! those shared with their team, their manager sees what their reports see, and everyone else
//! sees only their own.
//!
//! ```text
//! cargo run --example access
//! ```

use crmdb::{Contact, Database, EntityKind, Grantee, Owner, Principal, Query, Snapshot};

fn main() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let (boss, rep, other) = db.write(|tx| -> crmdb::Result<_> {
        let boss = tx.insert(Owner {
            name: "Boss".into(),
            ..Default::default()
        })?;
        let rep = tx.insert(Owner {
            name: "Rep".into(),
            team: Some("north".into()),
            ..Default::default()
        })?;
        let other = tx.insert(Owner {
            name: "Other".into(),
            ..Default::default()
        })?;
        tx.set_manager(rep, Some(boss))?; // the rep reports to the boss
        let mine = tx.insert(Contact {
            name: "Li Lei".into(),
            owner: Some(rep),
            ..Default::default()
        })?;
        let theirs = tx.insert(Contact {
            name: "Wang Fang".into(),
            owner: Some(other),
            ..Default::default()
        })?;
        tx.share(theirs, &Grantee::Team("north".into()))?; // the rep's team sees it too
        let _ = mine;
        Ok((boss, rep, other))
    })?;
    let all = Query::parse("*")?;
    let count = |who: Principal| db.read_as(&who, |r| r.count(EntityKind::Contact, &all));
    assert_eq!(count(Principal::owner(rep))?, 2); // their own and the shared one
    assert_eq!(count(Principal::manager(boss))?, 2); // what their report sees
    assert_eq!(count(Principal::owner(other))?, 1);
    println!("scoped counts as expected: rep 2, manager 2, other 1");
    Ok(())
}
