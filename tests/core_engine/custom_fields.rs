//! Custom fields: typed round trips, typed errors, and queries over them.

use crmdb::{
    Account, Contact, ContactId, Database, EntityKind, Error, FieldDef, FieldType, Money, Query,
    Snapshot, Timestamp, Value, WriteTransaction,
};

use crate::support::{contact, custom};

fn define_every_field_type(tx: &mut WriteTransaction) -> crmdb::Result<()> {
    let options = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for def in [
        FieldDef::new("notes", FieldType::Text),
        FieldDef::new("employees", FieldType::Integer),
        FieldDef::new("budget", FieldType::Money),
        FieldDef::new("renewal", FieldType::Date),
        FieldDef::new("newsletter", FieldType::Bool),
        FieldDef::new(
            "industry",
            FieldType::SingleSelect(options(&["saas", "retail", "media"])),
        ),
        FieldDef::new(
            "channels",
            FieldType::MultiSelect(options(&["web", "shop", "phone"])),
        ),
    ] {
        tx.define_field(EntityKind::Contact, def)?;
    }
    Ok(())
}

fn channels(names: &[&str]) -> Value {
    Value::MultiSelect(names.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn custom_values_of_every_type_round_trip_typed() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let renewal = Timestamp::from_ymd(2026, 9, 30).expect("valid date");
    let values = custom(vec![
        ("notes", Value::Text("met at the fair".into())),
        ("employees", Value::Integer(-3)),
        ("budget", Value::Money(Money(12_345))),
        ("renewal", Value::Date(renewal)),
        ("newsletter", Value::Bool(false)),
        ("industry", Value::Select("retail".into())),
        ("channels", channels(&["web", "phone"])),
    ]);
    let id = db.write(|tx| {
        define_every_field_type(tx)?;
        tx.insert(Contact {
            custom: values.clone(),
            ..contact("Ada", "ada@example.com")
        })
    })?;
    db.read(|r| {
        assert_eq!(r.get(id)?.custom, values);
        let schema = r.schema(EntityKind::Contact)?;
        assert_eq!(schema.fields().count(), 7);
        assert_eq!(
            schema.field("budget").map(|f| &f.field_type),
            Some(&FieldType::Money)
        );
        Ok(())
    })
}

#[test]
fn bad_custom_values_are_typed_errors() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    db.write(|tx| {
        define_every_field_type(tx)?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("code", FieldType::Text).required(),
        )
    })?;
    let code = || ("code", Value::Text("c1".into()));
    enum Want {
        Invalid(&'static str),
        Unknown(&'static str),
    }
    let cases = [
        (
            "integer in a text field",
            vec![code(), ("notes", Value::Integer(1))],
            Want::Invalid("custom.notes"),
        ),
        (
            "text in an integer field",
            vec![code(), ("employees", Value::Text("12".into()))],
            Want::Invalid("custom.employees"),
        ),
        (
            "integer in a money field",
            vec![code(), ("budget", Value::Integer(5))],
            Want::Invalid("custom.budget"),
        ),
        (
            "bool in a date field",
            vec![code(), ("renewal", Value::Bool(true))],
            Want::Invalid("custom.renewal"),
        ),
        (
            "unknown option",
            vec![code(), ("industry", Value::Select("mining".into()))],
            Want::Invalid("custom.industry"),
        ),
        (
            "a multi value in a single select",
            vec![code(), ("industry", channels(&["saas"]))],
            Want::Invalid("custom.industry"),
        ),
        (
            "unknown option among several",
            vec![code(), ("channels", channels(&["web", "fax"]))],
            Want::Invalid("custom.channels"),
        ),
        (
            "unknown field",
            vec![code(), ("shoe_size", Value::Integer(42))],
            Want::Unknown("custom.shoe_size"),
        ),
        (
            "missing required field",
            vec![("notes", Value::Text("no code".into()))],
            Want::Invalid("custom.code"),
        ),
    ];
    for (what, values, want) in cases {
        let result = db.write(|tx| {
            tx.insert(Contact {
                custom: custom(values),
                ..Default::default()
            })
        });
        match (want, result) {
            (
                Want::Invalid(field),
                Err(Error::InvalidField {
                    kind: EntityKind::Contact,
                    field: f,
                    ..
                }),
            ) => assert_eq!(f, field, "{what}"),
            (
                Want::Unknown(field),
                Err(Error::UnknownField {
                    kind: EntityKind::Contact,
                    field: f,
                }),
            ) => assert_eq!(f, field, "{what}"),
            (_, other) => panic!("{what}: unexpected {other:?}"),
        }
    }
    // Custom fields of one kind are unknown on another.
    let account = db.write(|tx| {
        tx.insert(Account {
            custom: custom(vec![("notes", Value::Text("x".into()))]),
            ..Default::default()
        })
    });
    assert!(
        matches!(
            account,
            Err(Error::UnknownField {
                kind: EntityKind::Account,
                ..
            })
        ),
        "{account:?}"
    );
    // Malformed declarations are refused.
    for def in [
        FieldDef::new("Bad Name", FieldType::Text),
        FieldDef::new("", FieldType::Text),
        FieldDef::new("empty_select", FieldType::SingleSelect(vec![])),
        FieldDef::new(
            "twice",
            FieldType::MultiSelect(vec!["a".into(), "a".into()]),
        ),
    ] {
        let name = def.name.clone();
        let result = db.write(|tx| tx.define_field(EntityKind::Contact, def));
        assert!(
            matches!(result, Err(Error::InvalidArgument(_))),
            "{name:?}: {result:?}"
        );
    }
    Ok(())
}

#[test]
fn custom_fields_are_queryable_like_built_in_ones() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let day = |m, d| Value::Date(Timestamp::from_ymd(2026, m, d).expect("valid date"));
    let people = [
        custom(vec![
            ("notes", Value::Text("a".into())),
            ("employees", Value::Integer(10)),
            ("budget", Value::Money(Money::from_major(500))),
            ("renewal", day(1, 15)),
            ("newsletter", Value::Bool(true)),
            ("industry", Value::Select("saas".into())),
            ("channels", channels(&["web"])),
        ]),
        custom(vec![
            ("employees", Value::Integer(250)),
            ("budget", Value::Money(Money(9_950))),
            ("renewal", day(7, 1)),
            ("newsletter", Value::Bool(false)),
            ("industry", Value::Select("retail".into())),
            ("channels", channels(&["web", "shop"])),
        ]),
        custom(vec![
            ("notes", Value::Text("c".into())),
            ("industry", Value::Select("media".into())),
        ]),
        custom(vec![]),
    ];
    let ids: Vec<ContactId> = db.write(|tx| {
        define_every_field_type(tx)?;
        people
            .iter()
            .map(|values| {
                tx.insert(Contact {
                    custom: values.clone(),
                    ..Default::default()
                })
            })
            .collect()
    })?;
    let rows = |picks: &[usize]| -> Vec<u32> { picks.iter().map(|&i| ids[i].get()).collect() };
    let cases: &[(&str, &[usize])] = &[
        (r#"custom.industry = "saas""#, &[0]),
        ("custom.industry:retail", &[1]),
        (r#"custom.industry in ("saas", "media")"#, &[0, 2]),
        (r#"custom.industry != "saas""#, &[1, 2]),
        (r#"NOT custom.industry = "saas""#, &[1, 2, 3]),
        ("custom.industry exists", &[0, 1, 2]),
        ("custom.employees >= 10", &[0, 1]),
        ("custom.employees > 10", &[1]),
        ("custom.employees < 100", &[0]),
        ("custom.employees between 5 and 300", &[0, 1]),
        ("custom.employees exists", &[0, 1]),
        ("NOT custom.employees exists", &[2, 3]),
        ("custom.budget >= 100", &[0]),
        ("custom.budget = 99.5", &[1]),
        ("custom.budget <= 99.50", &[1]),
        ("custom.renewal < 2026-02-01", &[0]),
        ("custom.renewal between 2026-06-01 and 2026-07-01", &[1]),
        ("custom.newsletter = true", &[0]),
        ("custom.newsletter = false", &[1]),
        ("custom.newsletter exists", &[0, 1]),
        ("custom.channels:web", &[0, 1]),
        ("custom.channels:shop AND custom.channels:web", &[1]),
        ("custom.notes exists", &[0, 2]),
        ("NOT custom.notes exists", &[1, 3]),
    ];
    db.read(|r| {
        for (text, picks) in cases {
            let got: Vec<u32> = r
                .ids(EntityKind::Contact, &Query::parse(text)?)?
                .into_iter()
                .collect();
            assert_eq!(got, rows(picks), "{text}");
        }
        let built = Query::field("custom.employees")
            .ge(10)
            .and(Query::field("custom.industry").eq("saas"));
        assert_eq!(r.count(EntityKind::Contact, &built)?, 1);
        Ok(())
    })?;
    // Removing a value drops the record from the field's index.
    db.write(|tx| {
        tx.modify(ids[0], |c| {
            c.custom.remove("notes");
            c.custom.insert("employees".into(), Value::Integer(3));
        })
    })?;
    db.read(|r| {
        assert_eq!(
            r.count(EntityKind::Contact, &Query::parse("custom.notes exists")?)?,
            1
        );
        assert_eq!(
            r.count(
                EntityKind::Contact,
                &Query::parse("custom.employees >= 10")?
            )?,
            1
        );
        Ok(())
    })
}
