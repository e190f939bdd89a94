//! The consent ledger: entries kept, the latest the state, states in segments (with
//! `unknown` for contacts without an entry), the email channel in step with
//! `unsubscribed` both ways, configurable channels, events and watched segments.

use crmdb::feed::Change;
use crmdb::identity::{Consent, ConsentStatus, LawfulBasis, MergePolicy, UNSUBSCRIBED_SOURCE};
use crmdb::{BulkLoad, Contact, ContactId, Database, EntityKind, Error, Query, RecordId, Snapshot};

fn contact(name: &str) -> Contact {
    Contact {
        name: name.into(),
        ..Default::default()
    }
}

fn ids(db: &Database, query: &str) -> Vec<u32> {
    db.read(|r| r.ids(EntityKind::Contact, &Query::parse(query)?))
        .expect("query")
        .iter()
        .collect()
}

#[test]
fn the_latest_entry_is_the_state_and_history_is_kept() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let [a, b, c] = db.write(|tx| -> crmdb::Result<[ContactId; 3]> {
        let a = tx.insert(contact("a"))?;
        let b = tx.insert(contact("b"))?;
        let c = tx.insert(contact("c"))?;
        tx.set_actor("form");
        tx.record_consent(
            a,
            Consent {
                basis: Some(LawfulBasis::Consent),
                source: Some("newsletter form".into()),
                ..Consent::new("email", ConsentStatus::Granted)
            },
        )?;
        tx.record_consent(a, Consent::new("sms", ConsentStatus::Granted))?;
        tx.record_consent(a, Consent::new("sms", ConsentStatus::Denied))?;
        tx.record_consent(b, Consent::new("sms", ConsentStatus::Granted))?;
        tx.record_consent(b, Consent::new("email", ConsentStatus::Unknown))?;
        Ok([a, b, c])
    })?;
    db.read(|r| {
        let history = r.consent_history(a)?;
        assert_eq!(history.len(), 3);
        assert_eq!(history[0].actor, "form");
        assert_eq!(history[0].consent.basis, Some(LawfulBasis::Consent));
        let state = r.consent(a)?;
        assert_eq!(state["sms"].consent.status, ConsentStatus::Denied);
        assert_eq!(state["email"].consent.status, ConsentStatus::Granted);
        assert!(r.consent(c)?.is_empty());
        Ok(())
    })?;
    let (a, b, c) = (a.row(), b.row(), c.row());
    assert_eq!(ids(&db, "consent.email = \"granted\""), [a]);
    assert_eq!(ids(&db, "consent.sms = \"denied\""), [a]);
    assert_eq!(
        ids(&db, "consent.sms != \"denied\""),
        [b, c],
        "unknown counts as not denied"
    );
    assert_eq!(ids(&db, "consent.email = \"unknown\""), [b, c]);
    assert_eq!(ids(&db, "consent.sms IN (\"granted\", \"denied\")"), [a, b]);
    assert_eq!(ids(&db, "consent.wechat:unknown"), [a, b, c]);
    assert_eq!(
        ids(
            &db,
            "consent.email = \"granted\" AND consent.sms != \"denied\""
        ),
        Vec::<u32>::new()
    );

    for (query, offset) in [
        ("consent.fax = \"granted\"", 0),
        ("consent.email = \"maybe\"", 0),
    ] {
        let err = db
            .read(|r| r.count(EntityKind::Contact, &Query::parse(query)?))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Query(q) if q.offset == offset),
            "{query}: {err}"
        );
    }
    let err = db
        .write(|tx| {
            tx.record_consent(
                ContactId::new(a),
                Consent::new("fax", ConsentStatus::Granted),
            )
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    Ok(())
}

#[test]
fn the_email_channel_follows_unsubscribed_both_ways() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let (kept, opted_out) = db.write(|tx| -> crmdb::Result<_> {
        let kept = tx.insert(contact("kept"))?;
        let opted_out = tx.insert(Contact {
            unsubscribed: true,
            ..contact("opted out")
        })?;
        Ok((kept, opted_out))
    })?;
    assert_eq!(ids(&db, "consent.email = \"denied\""), [opted_out.row()]);
    // A consent entry sets the flag.
    db.write(|tx| tx.record_consent(kept, Consent::new("email", ConsentStatus::Denied)))?;
    assert!(db.read(|r| r.get(kept))?.unsubscribed);
    db.write(|tx| tx.record_consent(kept, Consent::new("email", ConsentStatus::Granted)))?;
    assert!(!db.read(|r| r.get(kept))?.unsubscribed);
    // Changing the flag appends an entry.
    db.write(|tx| tx.modify(opted_out, |c| c.unsubscribed = false))?;
    db.read(|r| {
        let last = r.consent_history(opted_out)?.pop().expect("an entry");
        assert_eq!(last.consent.status, ConsentStatus::Granted);
        assert_eq!(last.consent.source.as_deref(), Some(UNSUBSCRIBED_SOURCE));
        Ok(())
    })?;
    assert_eq!(
        ids(&db, "consent.email = \"granted\""),
        [kept.row(), opted_out.row()]
    );
    assert_eq!(ids(&db, "unsubscribed = true"), Vec::<u32>::new());

    // The bulk loader too.
    let report = BulkLoad::new(&db).run(
        vec![Contact {
            unsubscribed: true,
            ..contact("imported")
        }],
        |_| {},
    )?;
    let row = report.rows[0];
    assert_eq!(ids(&db, "consent.email = \"denied\""), [row]);
    Ok(())
}

#[test]
fn channels_are_configurable_and_states_leave_with_a_purge() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let id = db.write(|tx| tx.insert(contact("a")))?;
    db.write(|tx| tx.set_consent_channels(&["email", "sms", "line"]))?;
    assert_eq!(db.read(|r| r.consent_channels())?, ["email", "sms", "line"]);
    db.write(|tx| tx.record_consent(id, Consent::new("line", ConsentStatus::Granted)))?;
    assert_eq!(ids(&db, "consent.line = \"granted\""), [id.row()]);
    let err = db
        .write(|tx| tx.set_consent_channels(&["email", "sms"]))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_)),
        "a channel with states: {err}"
    );
    let err = db
        .write(|tx| tx.set_consent_channels(&["sms"]))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_)),
        "email stays: {err}"
    );
    let err = db
        .write(|tx| tx.set_consent_channels(&["email", "Bad Name"]))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");

    db.write(|tx| {
        tx.soft_delete(id)?;
        tx.purge(id)
    })?;
    db.read(|r| {
        assert!(r.consent_history(id)?.is_empty());
        Ok(())
    })?;
    db.write(|tx| tx.set_consent_channels(&["email", "sms"]))?;
    Ok(())
}

#[test]
fn consent_is_an_event_and_moves_watched_members() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let id = db.write(|tx| -> crmdb::Result<_> {
        let id = tx.insert(contact("a"))?;
        tx.save_segment(
            "reachable",
            crmdb::SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::parse("consent.sms = \"granted\"")?,
            },
        )?;
        tx.watch("reachable")?;
        Ok(id)
    })?;
    let after = db.read(|r| r.sequence())?;
    db.write(|tx| tx.record_consent(id, Consent::new("sms", ConsentStatus::Granted)))?;
    let batch = db.changes(after, 1)?.pop().expect("a batch");
    let names: Vec<&str> = batch.events.iter().map(|e| e.change.name()).collect();
    assert!(names.contains(&"consent_recorded"), "{names:?}");
    assert!(
        batch
            .events
            .iter()
            .any(|e| matches!(&e.change, Change::Entered { segment, ids, .. }
                if segment == "reachable" && ids.contains(id.row()))),
        "{names:?}"
    );
    Ok(())
}

#[test]
fn a_merge_keeps_every_denial_and_an_unmerge_gives_the_states_back() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let (survivor, other) = db.write(|tx| -> crmdb::Result<_> {
        let survivor = tx.insert(contact("s"))?;
        let other = tx.insert(contact("o"))?;
        tx.record_consent(survivor, Consent::new("sms", ConsentStatus::Granted))?;
        tx.record_consent(other, Consent::new("sms", ConsentStatus::Denied))?;
        tx.record_consent(other, Consent::new("email", ConsentStatus::Denied))?;
        Ok((survivor, other))
    })?;
    let merge = db.write(|tx| tx.merge(survivor, other, &MergePolicy::survivor_wins()))?;
    assert_eq!(ids(&db, "consent.sms = \"denied\""), [survivor.row()]);
    assert_eq!(ids(&db, "consent.email = \"denied\""), [survivor.row()]);
    assert!(db.read(|r| r.get(survivor))?.unsubscribed);
    let lineage = db.read(|r| r.lineage(merge))?;
    assert_eq!(lineage.denials_taken.len(), 2);
    db.write(|tx| tx.unmerge(merge))?;
    assert_eq!(ids(&db, "consent.sms = \"granted\""), [survivor.row()]);
    assert_eq!(ids(&db, "consent.sms = \"denied\""), [other.row()]);
    assert_eq!(ids(&db, "consent.email = \"unknown\""), [survivor.row()]);
    assert!(!db.read(|r| r.get(survivor))?.unsubscribed);
    Ok(())
}

#[test]
fn an_unmerge_keeps_a_later_denial_and_the_flag_with_it() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let (survivor, other) = db.write(|tx| -> crmdb::Result<_> {
        let survivor = tx.insert(contact("s"))?;
        let other = tx.insert(Contact {
            unsubscribed: true,
            ..contact("o")
        })?;
        Ok((survivor, other))
    })?;
    let merge = db.write(|tx| tx.merge(survivor, other, &MergePolicy::survivor_wins()))?;
    // The person opts out again, on their own account, after the merge.
    db.write(|tx| tx.record_consent(survivor, Consent::new("email", ConsentStatus::Denied)))?;
    db.write(|tx| tx.unmerge(merge))?;
    db.read(|r| {
        assert!(
            r.get(survivor)?.unsubscribed,
            "the flag stays with the later denial"
        );
        assert_eq!(
            r.consent(survivor)?["email"].consent.status,
            ConsentStatus::Denied
        );
        assert!(r.get(other)?.unsubscribed);
        Ok(())
    })?;
    Ok(())
}
