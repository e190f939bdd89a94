//! Access scopes in brief (the README's example): a rep sees their own contacts and
//! those shared with their team, their manager sees what their reports see, and everyone else
//! sees only their own. Then writes as the rep: another rep's contact is "not found", a
//! duplicate email held by it is "already in use" without naming it, and a contact the
//! rep creates stays in their sight. Last, an analyst reads every contact with the
//! personal fields redacted.
//!
//! ```text
//! cargo run --example access
//! ```

use crmdb::{
    Contact, Database, EntityKind, Error, Grantee, Owner, Principal, Query, REDACTED, Snapshot,
};

fn main() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let (boss, rep, other, hidden) = db.write(|tx| -> crmdb::Result<_> {
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
        let hidden = tx.insert(Contact {
            name: "Zhao Lei".into(),
            email: Some("zhao.lei@mail.example".into()),
            owner: Some(other),
            ..Default::default()
        })?;
        let _ = mine;
        Ok((boss, rep, other, hidden))
    })?;
    let all = Query::parse("*")?;
    let count = |who: Principal| db.read_as(&who, |r| r.count(EntityKind::Contact, &all));
    assert_eq!(count(Principal::owner(rep))?, 2); // their own and the shared one
    assert_eq!(count(Principal::manager(boss))?, 2); // what their report sees
    assert_eq!(count(Principal::owner(other))?, 2);
    println!("scoped counts as expected: rep 2, manager 2, other 2");

    // Writing as the rep: what they cannot see answers as what does not exist.
    let as_rep = Principal::owner(rep);
    let refused = db.write_as(&as_rep, |tx| tx.add_tag(hidden, "poached"));
    assert!(
        matches!(refused, Err(Error::NotFound { .. })),
        "{refused:?}"
    );
    let taken = db.write_as(&as_rep, |tx| {
        tx.insert(Contact {
            name: "Copy".into(),
            email: Some("zhao.lei@mail.example".into()),
            ..Default::default()
        })
    });
    let message = taken.expect_err("the email is in use").to_string();
    assert!(!message.contains(&hidden.get().to_string()), "{message}");
    println!("refused: {message}");
    let walk_in = db.write_as(&as_rep, |tx| {
        tx.insert(Contact {
            name: "Walk-in".into(),
            ..Default::default()
        })
    })?;
    db.read_as(&as_rep, |r| r.get(walk_in))?; // shared with its creator, so in sight
    assert_eq!(count(Principal::owner(rep))?, 3);

    // An analyst sees everyone, without the personal fields.
    let analyst = Principal::everyone().without_personal();
    let seen = db.read_as(&analyst, |r| r.get(hidden))?;
    assert_eq!((seen.name.as_str(), seen.email), (REDACTED, None));
    println!(
        "the analyst reads contact {} as {:?}",
        hidden.get(),
        seen.name
    );
    Ok(())
}
