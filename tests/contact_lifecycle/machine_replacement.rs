//! Replacing the machines remaps stored records.

use std::collections::BTreeMap;

use crmdb::{
    Backward, ChangeKind, Contact, Deal, EntityKind, Error, Forward, Machine, Machines, Query,
    Rule, Snapshot, Stage,
};

use crate::support::{clocked, stage_defs};

#[test]
fn replacing_machines_remaps_records() -> crmdb::Result<()> {
    let (db, _clock) = clocked()?;
    let ids = db.write(|tx| -> crmdb::Result<_> {
        let mut ids = Vec::new();
        for stage in ["prospect", "responder", "active", "dormant", "prospect"] {
            ids.push(tx.insert(Contact {
                stage: Stage::new(stage),
                ..Default::default()
            })?);
        }
        tx.soft_delete(ids[4])?;
        Ok(ids)
    })?;
    let deals = db.write(|tx| -> crmdb::Result<_> {
        Ok([
            tx.insert(Deal::default())?,
            tx.insert(Deal {
                stage: Stage::new("negotiation"),
                ..Default::default()
            })?,
        ])
    })?;
    let mut next = Machines {
        contact: Machine {
            stages: stage_defs(&[("lead_in", false), ("customer", false), ("lapsed", false)]),
            forward: Forward::Skip,
            backward: Backward::RegressOnly,
            returns: vec![],
            guards: vec![],
        },
        ..Machines::default()
    };
    next.auto_moves.clear();
    next.sweep.clear();
    next.pipelines.insert(
        "default".into(),
        Machine {
            stages: stage_defs(&[("open", false), ("lead", false), ("closed", true)]),
            forward: Forward::Skip,
            backward: Backward::Free,
            returns: vec![],
            guards: vec![],
        },
    );
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<Stage, Stage> {
        pairs
            .iter()
            .map(|(a, b)| (Stage::new(*a), Stage::new(*b)))
            .collect()
    };
    let before = db.read(|r| Ok((r.records::<Contact>()?, r.records::<Deal>()?, r.machines()?)))?;
    let incomplete = [
        map(&[
            ("prospect", "lead_in"),
            ("responder", "lead_in"),
            ("active", "customer"),
        ]),
        map(&[
            ("prospect", "lead_in"),
            ("responder", "lead_in"),
            ("active", "customer"),
            ("dormant", "nowhere"),
            ("negotiation", "open"),
        ]),
        map(&[
            ("prospect", "lead_in"),
            ("responder", "lead_in"),
            ("active", "customer"),
            ("dormant", "lapsed"),
        ]),
    ];
    for mapping in incomplete {
        let result = db.write(|tx| tx.replace_machines(next.clone(), &mapping));
        assert!(
            matches!(result, Err(Error::InvalidMachine { .. })),
            "{mapping:?}: {result:?}"
        );
        let after =
            db.read(|r| Ok((r.records::<Contact>()?, r.records::<Deal>()?, r.machines()?)))?;
        assert_eq!(
            after, before,
            "{mapping:?}: a refused replacement applies nothing"
        );
    }

    let mapping = map(&[
        ("prospect", "lead_in"),
        ("responder", "lead_in"),
        ("new_customer", "customer"),
        ("active", "customer"),
        ("dormant", "lapsed"),
        ("churned", "lapsed"),
        ("negotiation", "open"),
    ]);
    let remapped = db.write(|tx| {
        tx.set_actor("admin");
        tx.replace_machines(next.clone(), &mapping)
    })?;
    // Five contacts (one in the bin) and the negotiation deal; the lead deal's stage
    // still exists.
    assert_eq!(remapped, 6);
    db.read(|r| {
        assert_eq!(r.machines()?, next);
        let stages: Vec<String> = ids
            .iter()
            .map(|id| Ok(r.get(*id)?.stage.as_str().to_owned()))
            .collect::<crmdb::Result<_>>()?;
        assert_eq!(
            stages,
            ["lead_in", "lead_in", "customer", "lapsed", "lead_in"]
        );
        assert_eq!(r.get(deals[0])?.stage.as_str(), "lead");
        assert_eq!(r.get(deals[1])?.stage.as_str(), "open");
        let count = |kind, stage: &str| r.count(kind, &Query::stage(stage));
        assert_eq!(count(EntityKind::Contact, "lead_in")?, 2);
        assert_eq!(count(EntityKind::Contact, "customer")?, 1);
        assert_eq!(count(EntityKind::Contact, "lapsed")?, 1);
        assert_eq!(count(EntityKind::Deal, "open")?, 1);
        let last = r.history(ids[3])?.pop().expect("entries");
        assert_eq!(last.kind, ChangeKind::Remap);
        assert_eq!(last.from, Some(Stage::new("dormant")));
        assert_eq!(last.to, Stage::new("lapsed"));
        assert_eq!(last.actor, "admin");
        assert_eq!(r.history(deals[0])?.len(), 1, "not remapped");
        // Old stage names are gone from queries.
        assert!(matches!(
            count(EntityKind::Contact, "prospect"),
            Err(Error::Query(_))
        ));
        Ok(())
    })?;
    // The new machine is enforced from now on.
    let back = db.write(|tx| tx.move_stage(ids[2], "lead_in"));
    assert!(
        matches!(
            back,
            Err(Error::IllegalTransition {
                rule: Rule::BackwardNeedsRegress,
                ..
            })
        ),
        "{back:?}"
    );
    db.write(|tx| tx.move_stage(ids[0], "lapsed"))?;
    Ok(())
}
