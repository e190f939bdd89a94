//! The leak probe of the library: for every read API that takes an id and every scoped
//! write, a record out of the principal's sight answers exactly as an id that does not
//! exist; a natural key held by one is reported without naming it; a relation to one
//! is refused as a relation to nothing.

use crmdb::identity::{
    Consent, ConsentStatus, DuplicateOptions, MergePolicy, duplicate_candidates,
};
use crmdb::{
    Contact, ContactId, Database, Deal, DealId, EntityKind, Error, Order, Owner, OwnerId,
    Principal, Query, Snapshot, Timestamp,
};

/// A read asked about one row, its answer rendered.
type ReadProbe = Box<dyn Fn(&crmdb::ScopedRead, u32) -> String>;
/// A scoped write asked to write one row.
type WriteProbe = Box<dyn Fn(&mut crmdb::ScopedWrite<'_>, u32) -> crmdb::Result<String>>;

/// An id that no record has.
const NOWHERE: u32 = 9_999;

struct Fixture {
    db: Database,
    /// Contacts owned by owner 1, out of owner 0's sight.
    hidden: ContactId,
    hidden_twin: ContactId,
    hidden_deal: DealId,
    /// A contact owned by owner 0.
    mine: ContactId,
}

fn fixture() -> Fixture {
    let db = Database::in_memory().expect("database");
    let (hidden, hidden_twin, hidden_deal, mine) = db
        .write(|tx| -> crmdb::Result<_> {
            for (name, team) in [("rep a", "north"), ("rep b", "south")] {
                tx.insert(Owner {
                    name: name.into(),
                    team: Some(team.into()),
                    ..Owner::default()
                })?;
            }
            let hidden = tx.insert(Contact {
                name: "Hidden Person".into(),
                email: Some("hidden@mail.example".into()),
                phone: Some("+86 138 0013 8000".into()),
                owner: Some(OwnerId::new(1)),
                ..Contact::default()
            })?;
            let hidden_twin = tx.insert(Contact {
                name: "Hidden Person".into(),
                email: Some("hidden.person@mail.example".into()),
                phone: Some("13800138000".into()),
                owner: Some(OwnerId::new(1)),
                ..Contact::default()
            })?;
            tx.move_stage(hidden, "responder")?;
            tx.record_consent(
                hidden,
                Consent {
                    channel: "sms".into(),
                    status: ConsentStatus::Granted,
                    basis: None,
                    source: Some("form".into()),
                    note: None,
                },
            )?;
            let hidden_deal = tx.insert(Deal {
                name: "their deal".into(),
                contact: Some(hidden),
                owner: Some(OwnerId::new(1)),
                ..Deal::default()
            })?;
            let mine = tx.insert(Contact {
                name: "Mine".into(),
                email: Some("mine@mail.example".into()),
                owner: Some(OwnerId::new(0)),
                ..Contact::default()
            })?;
            Ok((hidden, hidden_twin, hidden_deal, mine))
        })
        .expect("fixture");
    Fixture {
        db,
        hidden,
        hidden_twin,
        hidden_deal,
        mine,
    }
}

fn rep() -> Principal {
    Principal::owner(OwnerId::new(0))
}

/// An answer with the asked-for id taken out, so that two answers compare.
fn shape<T: std::fmt::Debug>(answer: &crmdb::Result<T>, row: u32) -> String {
    match answer {
        Ok(value) => format!("ok {value:?}"),
        Err(Error::NotFound { kind, id }) if *id == row => format!("not found {kind}"),
        Err(Error::BrokenRelation {
            kind,
            target_kind,
            target_id,
        }) if *target_id == row => format!("broken relation {kind} → {target_kind}"),
        Err(other) => format!("error {other:?}"),
    }
}

/// Asks `probe` about the hidden row and about a row that does not exist, and wants
/// the same answer.
fn same<T: std::fmt::Debug>(what: &str, hidden: u32, probe: impl Fn(u32) -> crmdb::Result<T>) {
    let seen = shape(&probe(hidden), hidden);
    let none = shape(&probe(NOWHERE), NOWHERE);
    assert_eq!(seen, none, "{what}: out of sight answers unlike nothing");
}

#[test]
fn reads_answer_out_of_sight_as_nonexistent() {
    let f = fixture();
    let hidden = f.hidden.get();
    let probes: Vec<(&str, ReadProbe)> = vec![
        (
            "get",
            Box::new(|r, row| shape(&r.get(ContactId::new(row)), row)),
        ),
        (
            "find",
            Box::new(|r, row| shape(&r.find(ContactId::new(row)), row)),
        ),
        (
            "resolve",
            Box::new(|r, row| shape(&r.resolve(ContactId::new(row)), row)),
        ),
        (
            "history",
            Box::new(|r, row| shape(&r.history(ContactId::new(row)), row)),
        ),
        (
            "stage_at",
            Box::new(|r, row| shape(&r.stage_at(ContactId::new(row), Timestamp(i64::MAX)), row)),
        ),
        (
            "consent",
            Box::new(|r, row| shape(&r.consent(ContactId::new(row)), row)),
        ),
        (
            "consent_history",
            Box::new(|r, row| shape(&r.consent_history(ContactId::new(row)), row)),
        ),
        (
            "a query naming its owner",
            Box::new(|r, _| {
                let query = Query::parse("owner = 1").expect("query");
                shape(&r.ids(EntityKind::Contact, &query), 0)
            }),
        ),
    ];
    for (what, probe) in &probes {
        let seen =
            f.db.read_as(&rep(), |r| Ok(probe(r, hidden)))
                .expect("read");
        let none =
            f.db.read_as(&rep(), |r| Ok(probe(r, NOWHERE)))
                .expect("read");
        let seen = seen.replace(&format!("{hidden}"), "ROW");
        let none = none.replace(&format!("{NOWHERE}"), "ROW");
        assert_eq!(seen, none, "{what}");
    }
    f.db.read_as(&rep(), |r| {
        assert_eq!(r.contact_by_email("hidden@mail.example")?, None);
        assert_eq!(r.contact_by_email("nobody@mail.example")?, None);
        assert_eq!(r.history(f.hidden_deal)?, Vec::new());
        assert!(matches!(r.get(f.hidden_deal), Err(Error::NotFound { .. })));
        // The twins are duplicates of each other, but neither is in sight.
        let report = duplicate_candidates(r, EntityKind::Contact, &DuplicateOptions::default())?;
        assert!(report.candidates.is_empty(), "{:?}", report.candidates);
        assert_eq!(report.records, 1, "only the rep's own contact is looked at");
        Ok(())
    })
    .expect("lookups");
    // The same twins are candidates to a principal who sees them.
    let report =
        f.db.read(|r| duplicate_candidates(r, EntityKind::Contact, &DuplicateOptions::default()))
            .expect("unscoped");
    assert!(
        report
            .candidates
            .iter()
            .any(|c| (c.a, c.b) == (f.hidden.get(), f.hidden_twin.get()))
    );
}

#[test]
fn writes_refuse_out_of_sight_as_nonexistent() {
    let f = fixture();
    let hidden = f.hidden.get();
    let consent = || Consent {
        channel: "email".into(),
        status: ConsentStatus::Denied,
        basis: None,
        source: None,
        note: None,
    };
    let ops: Vec<(&str, WriteProbe)> = vec![
        (
            "update",
            Box::new(|tx, row| {
                tx.update(ContactId::new(row), Contact::default())
                    .map(|()| String::new())
            }),
        ),
        (
            "modify",
            Box::new(|tx, row| {
                tx.modify(ContactId::new(row), |c| c.name = "x".into())
                    .map(|()| String::new())
            }),
        ),
        (
            "add_tag",
            Box::new(|tx, row| tx.add_tag(ContactId::new(row), "t").map(|()| String::new())),
        ),
        (
            "remove_tag",
            Box::new(|tx, row| {
                tx.remove_tag(ContactId::new(row), "t")
                    .map(|()| String::new())
            }),
        ),
        (
            "move_stage",
            Box::new(|tx, row| {
                tx.move_stage(ContactId::new(row), "active")
                    .map(|()| String::new())
            }),
        ),
        (
            "regress",
            Box::new(|tx, row| {
                tx.regress(ContactId::new(row), "prospect", "why")
                    .map(|()| String::new())
            }),
        ),
        (
            "soft_delete",
            Box::new(|tx, row| tx.soft_delete(ContactId::new(row)).map(|()| String::new())),
        ),
        (
            "restore",
            Box::new(|tx, row| tx.restore(ContactId::new(row)).map(|()| String::new())),
        ),
        (
            "purge",
            Box::new(|tx, row| tx.purge(ContactId::new(row)).map(|()| String::new())),
        ),
        (
            "requalify",
            Box::new(|tx, row| tx.requalify(ContactId::new(row)).map(|o| format!("{o:?}"))),
        ),
        (
            "record_consent",
            Box::new(move |tx, row| {
                tx.record_consent(ContactId::new(row), consent())
                    .map(|()| String::new())
            }),
        ),
        (
            "erase",
            Box::new(|tx, row| {
                tx.erase(ContactId::new(row), "asked")
                    .map(|_| String::new())
            }),
        ),
        (
            "merge into",
            Box::new(|tx, row| {
                tx.merge(
                    ContactId::new(row),
                    ContactId::new(3),
                    &MergePolicy::survivor_wins(),
                )
                .map(|m| m.to_string())
            }),
        ),
        (
            "merge from",
            Box::new(|tx, row| {
                tx.merge(
                    ContactId::new(3),
                    ContactId::new(row),
                    &MergePolicy::survivor_wins(),
                )
                .map(|m| m.to_string())
            }),
        ),
        (
            "share",
            Box::new(|tx, row| {
                tx.share(ContactId::new(row), &crmdb::Grantee::Team("north".into()))
                    .map(|()| String::new())
            }),
        ),
        (
            "unshare",
            Box::new(|tx, row| {
                tx.unshare(ContactId::new(row), &crmdb::Grantee::Team("north".into()))
                    .map(|()| String::new())
            }),
        ),
        (
            "shares",
            Box::new(|tx, row| tx.shares(ContactId::new(row)).map(|s| format!("{s:?}"))),
        ),
        (
            "a deal of it",
            Box::new(|tx, row| {
                tx.insert(Deal {
                    name: "d".into(),
                    contact: Some(ContactId::new(row)),
                    ..Deal::default()
                })
                .map(|_| String::new())
            }),
        ),
        (
            "an update pointing at it",
            Box::new(|tx, row| {
                let deal = tx.insert(Deal {
                    name: "mine".into(),
                    ..Deal::default()
                })?;
                tx.modify(deal, |d| d.contact = Some(ContactId::new(row)))
                    .map(|()| String::new())
            }),
        ),
    ];
    for (what, op) in &ops {
        same(what, hidden, |row| f.db.write_as(&rep(), |tx| op(tx, row)));
    }
    // Nothing was written to the hidden contact.
    let stored = f.db.read(|r| r.get(f.hidden)).expect("hidden contact");
    assert_eq!(stored.name, "Hidden Person");
    assert!(stored.deleted_at.is_none());
    let _ = f.mine;
}

/// A duplicate email held by a contact out of sight is `Taken`: the value is in use,
/// and the message names no record. Held by one in sight, it is `Duplicate` with the
/// holder's id, as for an unscoped write.
#[test]
fn a_natural_key_held_out_of_sight_is_taken_without_naming_the_holder() {
    let f = fixture();
    let taken = f.db.write_as(&rep(), |tx| {
        tx.insert(Contact {
            name: "copy".into(),
            email: Some("HIDDEN@mail.example".into()),
            ..Contact::default()
        })
    });
    match &taken {
        Err(e @ Error::Taken { kind, field, value }) => {
            assert_eq!(
                (*kind, *field, value.as_str()),
                (EntityKind::Contact, "contact.email", "hidden@mail.example")
            );
            let message = e.to_string();
            assert!(!message.contains(&f.hidden.get().to_string()), "{message}");
            assert_eq!(
                message,
                "contact.email \"hidden@mail.example\" is already in use"
            );
        }
        other => panic!("{other:?}"),
    }
    let upsert = f.db.write_as(&rep(), |tx| {
        tx.upsert_contact_by_email(Contact {
            name: "copy".into(),
            email: Some("hidden@mail.example".into()),
            ..Contact::default()
        })
    });
    assert!(matches!(upsert, Err(Error::Taken { .. })), "{upsert:?}");
    let moved = f.db.write_as(&rep(), |tx| {
        tx.modify(f.mine, |c| c.email = Some("hidden@mail.example".into()))
    });
    assert!(matches!(moved, Err(Error::Taken { .. })), "{moved:?}");
    let visible = f.db.write_as(&rep(), |tx| {
        tx.insert(Contact {
            name: "copy".into(),
            email: Some("mine@mail.example".into()),
            ..Contact::default()
        })
    });
    assert!(
        matches!(visible, Err(Error::Duplicate { existing, .. }) if existing == f.mine.get()),
        "{visible:?}"
    );
    // An upsert of the rep's own contact updates it.
    let (id, upserted) =
        f.db.write_as(&rep(), |tx| {
            tx.upsert_contact_by_email(Contact {
                name: "Mine Again".into(),
                email: Some("mine@mail.example".into()),
                owner: Some(OwnerId::new(0)),
                ..Contact::default()
            })
        })
        .expect("upsert in sight");
    assert_eq!((id, upserted), (f.mine, crmdb::Upserted::Updated));
}

/// What a principal creates stays in its sight; a reassignment out of its reach takes
/// a record out of sight at once; orders are written only by a principal seeing all.
#[test]
fn creations_stay_in_sight_and_reassignments_leave_it() {
    let f = fixture();
    let team = Principal::team("south");
    let (unowned, theirs) =
        f.db.write_as(&rep(), |tx| -> crmdb::Result<_> {
            let unowned = tx.insert(Contact {
                name: "walk-in".into(),
                ..Contact::default()
            })?;
            let theirs = tx.insert(Contact {
                name: "for rep b".into(),
                owner: Some(OwnerId::new(1)),
                ..Contact::default()
            })?;
            assert!(tx.get(unowned).is_ok() && tx.get(theirs).is_ok());
            tx.modify(f.mine, |c| c.owner = Some(OwnerId::new(1)))?;
            assert!(
                matches!(tx.get(f.mine), Err(Error::NotFound { .. })),
                "handed over"
            );
            assert!(matches!(
                tx.add_tag(f.mine, "x"),
                Err(Error::NotFound { .. })
            ));
            Ok((unowned, theirs))
        })
        .expect("rep writes");
    f.db.read_as(&rep(), |r| {
        assert!(r.get(unowned).is_ok() && r.get(theirs).is_ok());
        assert!(matches!(r.get(f.mine), Err(Error::NotFound { .. })));
        Ok(())
    })
    .expect("after commit");
    let shared =
        f.db.write_as(&team, |tx| {
            let id = tx.insert(Contact {
                name: "team lead".into(),
                ..Contact::default()
            })?;
            tx.shares(id)
        })
        .expect("team insert");
    assert_eq!(shared, vec![crmdb::Grantee::Team("south".into())]);
    let order = f.db.write_as(&rep(), |tx| tx.insert(Order::default()));
    assert!(matches!(order, Err(Error::InvalidArgument(_))), "{order:?}");
    let order =
        f.db.write_as(&Principal::everyone(), |tx| tx.insert(Order::default()));
    assert!(order.is_ok(), "{order:?}");
}

/// A principal without personal fields reads contacts with them redacted, cannot find
/// them by those fields, sees them redacted in the change feed, and its writes keep
/// the stored values it cannot read.
#[test]
fn a_principal_without_personal_fields_reads_them_redacted() {
    use crmdb::{FieldDef, FieldType, REDACTED, Value};
    let db = Database::in_memory().expect("database");
    let id = db
        .write(|tx| -> crmdb::Result<ContactId> {
            tx.define_field(
                EntityKind::Contact,
                FieldDef::new("salary", FieldType::Integer),
            )?;
            tx.define_field(
                EntityKind::Contact,
                FieldDef::new("shoe", FieldType::Integer),
            )?;
            tx.set_personal(EntityKind::Contact, "salary", true)?;
            tx.insert(Contact {
                name: "Wang Fang".into(),
                email: Some("wang.fang@mail.example".into()),
                phone: Some("+86 139 0000 0000".into()),
                tags: ["vip".to_owned()].into(),
                custom: [
                    ("salary".to_owned(), Value::Integer(9_000)),
                    ("shoe".to_owned(), Value::Integer(38)),
                ]
                .into(),
                ..Contact::default()
            })
        })
        .expect("setup");
    let analyst = Principal::everyone().without_personal();
    let query = |text: &str| Query::parse(text).expect("query");
    db.read_as(&analyst, |r| {
        let contact = r.get(id)?;
        assert_eq!(contact.name, REDACTED);
        assert_eq!((contact.email, contact.phone), (None, None));
        assert!(!contact.custom.contains_key("salary"));
        assert_eq!(contact.custom.get("shoe"), Some(&Value::Integer(38)));
        assert_eq!(r.records::<Contact>()?[0].1.name, REDACTED);
        assert_eq!(r.contact_by_email("wang.fang@mail.example")?, None);
        assert!(
            r.ids(EntityKind::Contact, &query("custom.salary > 10"))?
                .is_empty()
        );
        assert_eq!(
            r.ids(EntityKind::Contact, &query("custom.shoe > 10"))?
                .len(),
            1
        );
        assert_eq!(r.ids(EntityKind::Contact, &query("tag:vip"))?.len(), 1);
        for batch in r.changes(0, 100)? {
            let text = format!("{:?}", batch.events);
            assert!(
                !text.contains("Wang") && !text.contains("wang.fang"),
                "{text}"
            );
            assert!(!text.contains("9000"), "{text}");
        }
        Ok(())
    })
    .expect("redacted reads");
    // Unredacted, the same queries find the contact.
    db.read(|r| {
        assert_eq!(
            r.ids(EntityKind::Contact, &query("custom.salary > 10"))?
                .len(),
            1
        );
        assert_eq!(r.contact_by_email("wang.fang@mail.example")?, Some(id));
        Ok(())
    })
    .expect("full reads");
    db.write_as(&analyst, |tx| {
        tx.modify(id, |c| {
            assert_eq!(c.name, REDACTED, "modify hands over the redacted record");
            c.region = Some("hangzhou".into());
        })?;
        let mut replaced = tx.get(id)?;
        replaced.tags.insert("analysed".into());
        tx.update(id, replaced)
    })
    .expect("redacted writes");
    let stored = db.read(|r| r.get(id)).expect("stored");
    assert_eq!(stored.name, "Wang Fang");
    assert_eq!(stored.email.as_deref(), Some("wang.fang@mail.example"));
    assert_eq!(stored.phone.as_deref(), Some("+86 139 0000 0000"));
    assert_eq!(stored.custom.get("salary"), Some(&Value::Integer(9_000)));
    assert_eq!(stored.region.as_deref(), Some("hangzhou"));
    assert!(stored.tags.contains("analysed"));
}

/// A record of the rep's merged into one out of their sight is only deleted to them:
/// the error names neither the survivor nor the merge.
#[test]
fn a_merge_into_a_record_out_of_sight_is_not_named() {
    let f = fixture();
    f.db.write(|tx| tx.merge(f.hidden, f.mine, &MergePolicy::survivor_wins()))
        .expect("merge");
    let as_rep = f.db.write_as(&rep(), |tx| tx.add_tag(f.mine, "x"));
    match as_rep {
        Err(e @ Error::Deleted { .. }) => {
            let message = e.to_string();
            assert!(!message.contains("merge"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let as_all =
        f.db.write_as(&Principal::everyone(), |tx| tx.add_tag(f.mine, "x"));
    assert!(
        matches!(as_all, Err(Error::Merged { into, .. }) if into == f.hidden.get()),
        "{as_all:?}"
    );
}
