//! The segment query language: canonical forms and parsed structure of good input, the
//! exact offset and kind of every parse error, and the binding errors a query meets
//! against a database's schema.

use crmdb::{
    Contact, Database, EntityKind, Error, FieldDef, FieldType, Literal, MAX_QUERY_BYTES,
    MAX_QUERY_DEPTH, Predicate, Query, QueryError, QueryErrorKind, SavedSegment, Snapshot,
};

/// The query with every source offset set to zero, so that a parsed query can be
/// compared with one built in Rust.
fn without_offsets(query: Query) -> Query {
    match query {
        Query::All => Query::All,
        Query::And(items) => Query::And(items.into_iter().map(without_offsets).collect()),
        Query::Or(items) => Query::Or(items.into_iter().map(without_offsets).collect()),
        Query::Not(inner) => Query::Not(Box::new(without_offsets(*inner))),
        Query::Segment { name, .. } => Query::Segment { name, offset: 0 },
        Query::Field {
            field, predicate, ..
        } => Query::Field {
            field,
            predicate,
            offset: 0,
        },
    }
}

#[track_caller]
fn check_canonical(input: &str, canonical: &str) {
    let parsed = Query::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
    assert_eq!(parsed.to_string(), canonical, "canonical form of {input:?}");
    // The canonical form is a fixed point.
    let again = Query::parse(canonical)
        .unwrap_or_else(|e| panic!("canonical {canonical:?} should parse: {e}"));
    assert_eq!(again.to_string(), canonical, "reparse of {canonical:?}");
    assert_eq!(
        without_offsets(again),
        without_offsets(parsed),
        "structure of {input:?} and of its canonical form"
    );
}

#[test]
fn good_inputs_have_canonical_forms() {
    let cases = [
        ("*", "*"),
        ("tag:vip", r#"tag = "vip""#),
        (r#"tag:"big spender""#, r#"tag = "big spender""#),
        (r#"region = "shanghai""#, r#"region = "shanghai""#),
        ("stage:active", r#"stage = "active""#),
        ("segment:high_value", "segment:high_value"),
        ("SEGMENT:high_value", "segment:high_value"),
        (
            "tag:a AND tag:b AND tag:c",
            r#"(tag = "a" AND tag = "b" AND tag = "c")"#,
        ),
        // NOT binds tighter than AND, AND tighter than OR.
        (
            "tag:a OR tag:b AND NOT tag:c",
            r#"(tag = "a" OR (tag = "b" AND NOT tag = "c"))"#,
        ),
        ("NOT tag:a OR tag:b", r#"(NOT tag = "a" OR tag = "b")"#),
        ("NOT NOT tag:a", r#"NOT NOT tag = "a""#),
        (
            "(tag:a OR tag:b) AND tag:c",
            r#"((tag = "a" OR tag = "b") AND tag = "c")"#,
        ),
        ("((((tag:a))))", r#"tag = "a""#),
        // Keywords are case-insensitive.
        (
            "tag:a and tag:b or not tag:c",
            r#"((tag = "a" AND tag = "b") OR NOT tag = "c")"#,
        ),
        ("lifetime_value >= 1000", "lifetime_value >= 1000"),
        ("total < 99.5", "total < 99.50"),
        ("total <= 0.05", "total <= 0.05"),
        ("birth_year > -5", "birth_year > -5"),
        ("total != -1.5", "total != -1.50"),
        ("unsubscribed = true", "unsubscribed = true"),
        ("unsubscribed = FALSE", "unsubscribed = false"),
        ("owner = 12", "owner = 12"),
        (
            "created between 2026-01-01 and 2026-06-30",
            "created BETWEEN 2026-01-01 AND 2026-06-30",
        ),
        ("last_activity within 90d", "last_activity WITHIN 90d"),
        ("last_activity WITHIN 12w", "last_activity WITHIN 84d"),
        ("custom.notes exists", "custom.notes EXISTS"),
        (
            r#"custom.industry in ("saas", "retail")"#,
            r#"custom.industry IN ("saas", "retail")"#,
        ),
        ("owner IN (1,2 , 3)", "owner IN (1, 2, 3)"),
        (r#"region = "say \"hi\"""#, r#"region = "say \"hi\"""#),
        (r#"region = "back\\slash""#, r#"region = "back\\slash""#),
        (r#"region = "上海""#, r#"region = "上海""#),
        ("  tag:vip  ", r#"tag = "vip""#),
        (
            r#"tag:vip AND region = "shanghai" AND NOT stage:churned
                AND lifetime_value >= 1000 AND last_activity within 90d"#,
            r#"(tag = "vip" AND region = "shanghai" AND NOT stage = "churned" AND lifetime_value >= 1000 AND last_activity WITHIN 90d)"#,
        ),
    ];
    for (input, canonical) in cases {
        check_canonical(input, canonical);
    }
}

#[test]
fn canonical_form_round_trips_any_string_literal() {
    // `Display` promises canonical text that parses back to an equal query, whatever
    // the string inside: control characters included.
    for value in [
        "tab\there",
        "new\nline",
        "cr\rreturn",
        "nul\0byte",
        "bell\u{7}",
    ] {
        let built = Query::field("region").eq(value);
        let text = built.to_string();
        let parsed = Query::parse(&text)
            .unwrap_or_else(|e| panic!("canonical text {text:?} of {value:?} should parse: {e}"));
        assert_eq!(parsed, built, "round trip of {value:?} through {text:?}");
    }
}

#[track_caller]
fn check_structure(input: &str, expected: Query) {
    let parsed = Query::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
    assert_eq!(without_offsets(parsed), expected, "structure of {input:?}");
}

#[test]
fn good_inputs_have_the_expected_structure() -> crmdb::Result<()> {
    check_structure("tag:vip", Query::tag("vip"));
    check_structure("stage:active", Query::stage("active"));
    check_structure("role:advocate", Query::role("advocate"));
    check_structure("segment:top", Query::segment("top"));
    check_structure(
        "lifetime_value >= 1000",
        Query::field("lifetime_value").ge(1000),
    );
    // Decimals are kept in minor units; integers as given.
    check_structure(
        "total = 12.5",
        Query::field("total").eq(Literal::Decimal(1250)),
    );
    check_structure(
        "total = 12.05",
        Query::field("total").eq(Literal::Decimal(1205)),
    );
    check_structure(
        "total = -0.5",
        Query::field("total").eq(Literal::Decimal(-50)),
    );
    check_structure(
        "created >= 1970-01-02",
        Query::field("created").ge(Literal::Date(1)),
    );
    check_structure(
        "created >= 2024-02-29",
        Query::field("created").ge(Literal::Date(19_782)),
    );
    check_structure(
        "created between 1970-01-01 and 1970-01-31",
        Query::field("created").between(Literal::Date(0), Literal::Date(30)),
    );
    check_structure("at within 2w", Query::field("at").within_days(14));
    check_structure("custom.x exists", Query::field("custom.x").exists());
    check_structure(
        r#"region in ("a", "b")"#,
        Query::field("region").is_in(["a", "b"]),
    );
    check_structure(
        "tag:a OR tag:b AND NOT tag:c",
        Query::tag("a").or(Query::tag("b").and(!Query::tag("c"))),
    );
    check_structure("unsubscribed = true", Query::field("unsubscribed").eq(true));

    // Offsets point at the field (or the segment keyword) in the source.
    let parsed = Query::parse(r#"tag:a AND  region = "x" OR segment:s"#)?;
    let Query::Or(items) = parsed else {
        panic!("expected OR at the top");
    };
    let Query::And(ref left) = items[0] else {
        panic!("expected AND on the left");
    };
    let offsets: Vec<usize> = left
        .iter()
        .chain(std::iter::once(&items[1]))
        .map(|q| match q {
            Query::Field { offset, .. } | Query::Segment { offset, .. } => *offset,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(offsets, [0, 11, 27]);
    Ok(())
}

/// What a parse error should say: its kind, and for `Expected` a fragment of what was
/// expected and exactly what was found.
enum Want {
    Expected(&'static str, &'static str),
    TooLong,
    TooDeep,
}

#[track_caller]
fn check_parse_error(input: &str, offset: usize, want: Want) {
    let err = match Query::parse(input) {
        Ok(q) => panic!("{input:?} should not parse, got {q}"),
        Err(e) => e,
    };
    let shown: String = input.chars().take(60).collect();
    assert_eq!(err.offset, offset, "offset for {shown:?}: {err}");
    match (want, &err.kind) {
        (
            Want::Expected(expected, found),
            QueryErrorKind::Expected {
                expected: e,
                found: f,
            },
        ) => {
            assert!(
                e.contains(expected),
                "{shown:?}: expected {expected:?} in {e:?}"
            );
            assert_eq!(f, found, "{shown:?}: what was found");
        }
        (Want::TooLong, QueryErrorKind::TooLong { limit }) => {
            assert_eq!(*limit, MAX_QUERY_BYTES);
        }
        (Want::TooDeep, QueryErrorKind::TooDeep { limit }) => {
            assert_eq!(*limit, MAX_QUERY_DEPTH);
        }
        (_, other) => panic!("{shown:?}: wrong error kind {other:?}"),
    }
    // Errors name the byte offset in their message.
    assert!(err.to_string().contains(&format!("byte {offset}")), "{err}");
}

#[test]
fn bad_inputs_report_offset_and_expectation() {
    use Want::Expected as E;
    let eoi = "end of input";
    let cases: Vec<(&str, usize, Want)> = vec![
        // Unbalanced parentheses.
        ("(tag:vip", 8, E("\")\"", eoi)),
        ("(tag:a OR (tag:b)", 17, E("\")\"", eoi)),
        ("tag:a)", 5, E("AND, OR or end of input", "\")\"")),
        (")", 0, E("a condition", "\")\"")),
        // Empty input and missing terms.
        ("", 0, E("a condition", eoi)),
        ("   ", 3, E("a condition", eoi)),
        ("NOT", 3, E("a condition", eoi)),
        ("tag:a AND", 9, E("a condition", eoi)),
        // Missing values.
        ("region =", 8, E("a value", eoi)),
        ("region = AND tag:a", 9, E("a value", "\"AND\"")),
        ("tag:", 4, E("a value after \":\"", eoi)),
        ("tag:(", 4, E("a value after \":\"", "\"(\"")),
        ("region in ()", 11, E("a value", "\")\"")),
        // A bare word is a value only after a colon.
        ("region = shanghai", 9, E("a value", "\"shanghai\"")),
        // Bad operators.
        ("region == \"x\"", 8, E("a value", "a comparison operator")),
        ("region ~ \"x\"", 7, E("a comparison", "\"~\"")),
        ("region ! \"x\"", 7, E("a query term", "'!'")),
        ("region", 6, E("a comparison", eoi)),
        ("region in 1", 10, E("\"(\" after IN", "\"1\"")),
        ("region in (1 2)", 13, E("\",\" or \")\"", "\"2\"")),
        ("region between 1 or 2", 17, E("AND in BETWEEN", "\"or\"")),
        // Strings.
        ("region = \"abc", 13, E("a closing quote", eoi)),
        ("region = \"abc\\", 14, E("a closing quote", eoi)),
        ("region = \"a\\q\"", 12, E("an escape", "\\q")),
        // Keywords in the wrong place.
        ("AND tag:a", 0, E("a condition", "\"AND\"")),
        ("tag:a OR OR tag:b", 9, E("a condition", "\"OR\"")),
        (
            "tag:a NOT tag:b",
            6,
            E("AND, OR or end of input", "\"NOT\""),
        ),
        ("tag:a tag:b", 6, E("AND, OR or end of input", "\"tag\"")),
        ("in:x", 0, E("a condition", "\"in\"")),
        ("exists", 0, E("a condition", "\"exists\"")),
        ("9lives = 1", 0, E("a field name", "\"9lives\"")),
        // Numbers and dates.
        ("total = 1.234", 8, E("a value", "\"1.234\"")),
        ("total = 1.", 8, E("a value", "\"1.\"")),
        (
            "total = 99999999999999999999",
            8,
            E("a value", "\"99999999999999999999\""),
        ),
        ("created > 2026-02-30", 10, E("a value", "\"2026-02-30\"")),
        ("created > 2026-13-01", 10, E("a value", "\"2026-13-01\"")),
        ("created > 2026-1-01", 10, E("a value", "\"2026-1-01\"")),
        (
            "created between 2026-01-01 and 2026-00-10",
            31,
            E("a value", "\"2026-00-10\""),
        ),
        // Durations.
        ("last_activity within", 20, E("a duration such as", eoi)),
        (
            "last_activity within 90",
            21,
            E("a duration such as", "\"90\""),
        ),
        (
            "last_activity within 90m",
            21,
            E("a duration such as", "\"90m\""),
        ),
        (
            "last_activity within \"90d\"",
            21,
            E("a duration such as", "string \"90d\""),
        ),
        (
            "last_activity within d",
            21,
            E("at most 1000000 days", "\"d\""),
        ),
        (
            "last_activity within -5d",
            21,
            E("at most 1000000 days", "\"-5d\""),
        ),
        (
            "last_activity within 2000000d",
            21,
            E("at most 1000000 days", "\"2000000d\""),
        ),
    ];
    for (input, offset, want) in cases {
        check_parse_error(input, offset, want);
    }
}

#[test]
fn input_length_is_bounded() {
    let padded = format!("tag:a{}", " ".repeat(MAX_QUERY_BYTES - 5));
    assert_eq!(padded.len(), MAX_QUERY_BYTES);
    assert!(
        Query::parse(&padded).is_ok(),
        "exactly the limit is accepted"
    );
    check_parse_error(
        &"x".repeat(MAX_QUERY_BYTES + 1),
        MAX_QUERY_BYTES,
        Want::TooLong,
    );
    let long = format!("{padded} ");
    check_parse_error(&long, MAX_QUERY_BYTES, Want::TooLong);
}

#[test]
fn nesting_depth_is_bounded() {
    let parens = |n: usize| format!("{}tag:a{}", "(".repeat(n), ")".repeat(n));
    assert!(Query::parse(&parens(MAX_QUERY_DEPTH)).is_ok());
    // The error points at what would be nested one level too deep.
    check_parse_error(
        &parens(MAX_QUERY_DEPTH + 1),
        MAX_QUERY_DEPTH + 1,
        Want::TooDeep,
    );
    check_parse_error(&parens(5_000), MAX_QUERY_DEPTH + 1, Want::TooDeep);

    let nots = |n: usize| format!("{}tag:a", "NOT ".repeat(n));
    assert!(Query::parse(&nots(MAX_QUERY_DEPTH)).is_ok());
    check_parse_error(
        &nots(MAX_QUERY_DEPTH + 1),
        4 * (MAX_QUERY_DEPTH + 1),
        Want::TooDeep,
    );

    // Parentheses and NOTs count together.
    let half = MAX_QUERY_DEPTH / 2;
    let mixed = format!("{}tag:a{}", "(NOT ".repeat(half + 1), ")".repeat(half + 1));
    check_parse_error(&mixed, 5 * half + 1, Want::TooDeep);
}

#[test]
fn in_lists_are_bounded() {
    let list = |n: usize| {
        let values: Vec<String> = (0..n).map(|_| "0".to_owned()).collect();
        format!("owner in ({})", values.join(","))
    };
    assert!(Query::parse(&list(crmdb::MAX_IN_VALUES)).is_ok());
    // The first value over the limit: "owner in (" is 10 bytes, each value 2 with its comma.
    check_parse_error(
        &list(crmdb::MAX_IN_VALUES + 1),
        10 + 2 * crmdb::MAX_IN_VALUES,
        Want::Expected("at most 1024 values", "\"0\""),
    );
}

/// A small database: one tagged contact with custom fields, one account, and saved
/// segments of each kind.
fn small_database() -> crmdb::Result<Database> {
    let db = Database::in_memory()?;
    db.write(|tx| -> crmdb::Result<_> {
        tx.define_field(EntityKind::Contact, FieldDef::new("notes", FieldType::Text))?;
        tx.define_field(
            EntityKind::Contact,
            FieldDef::new("employees", FieldType::Integer),
        )?;
        let contact = tx.insert(Contact {
            name: "Li Lei".into(),
            region: Some("shanghai".into()),
            ..Default::default()
        })?;
        tx.add_tag(contact, "vip")?;
        let account = tx.insert(crmdb::Account {
            name: "Acme".into(),
            industry: Some("saas".into()),
            ..Default::default()
        })?;
        tx.save_segment(
            "vips",
            SavedSegment::Dynamic {
                kind: EntityKind::Contact,
                query: Query::tag("vip"),
            },
        )?;
        tx.save_segment("key_accounts", SavedSegment::of_ids([account]))?;
        Ok(())
    })?;
    Ok(db)
}

#[test]
fn queries_that_bind_against_the_small_database() -> crmdb::Result<()> {
    let db = small_database()?;
    let cases = [
        (EntityKind::Contact, "tag:vip", 1),
        (EntityKind::Contact, "region:nowhere", 0),
        (EntityKind::Contact, "segment:vips AND stage:prospect", 1),
        (EntityKind::Contact, "custom.notes exists", 0),
        (EntityKind::Contact, "custom.employees >= 0", 0),
        (EntityKind::Deal, "stage:won", 0),
        (EntityKind::Account, "industry:saas", 1),
        (EntityKind::Account, "segment:key_accounts", 1),
        // A tag no record has carried matches nothing: a segment on a new tag counts 0
        // instead of failing.
        (EntityKind::Contact, "tag:ghost", 0),
        (EntityKind::Contact, "region:shanghai OR tag:ghost", 1),
        (EntityKind::Contact, r#"tag in ("vip", "ghost")"#, 1),
        (EntityKind::Account, "tag:vip", 0),
        (EntityKind::Contact, "NOT tag:ghost", 1),
    ];
    db.read(|r| {
        for (kind, text, count) in cases {
            assert_eq!(r.count(kind, &Query::parse(text)?)?, count, "{kind} {text}");
        }
        Ok(())
    })
}

enum Bind {
    Kind(QueryErrorKind),
    Mismatch(&'static str),
}

#[test]
fn binding_errors_name_the_offending_term() -> crmdb::Result<()> {
    use EntityKind::{Account, Contact, Deal};
    use QueryErrorKind as K;
    let db = small_database()?;
    let field = |name: &str| Bind::Kind(K::UnknownField(name.into()));
    let stage = |name: &str| Bind::Kind(K::UnknownStage(name.into()));
    let segment = |name: &str| Bind::Kind(K::UnknownSegment(name.into()));
    let cases = [
        (Contact, "nosuch = 1", 0, field("nosuch")),
        (Contact, "tag:vip AND industry:saas", 12, field("industry")),
        (Contact, "custom.nope exists", 0, field("custom.nope")),
        (Account, "custom.notes exists", 0, field("custom.notes")),
        (Contact, "stage:nirvana", 0, stage("nirvana")),
        (Contact, "stage:lead", 0, stage("lead")),
        (Deal, "stage:active", 0, stage("active")),
        (Contact, "NOT segment:nope", 4, segment("nope")),
        (
            Contact,
            "segment:key_accounts",
            0,
            Bind::Mismatch("segment"),
        ),
        (
            Contact,
            r#"lifetime_value = "x""#,
            0,
            Bind::Mismatch("lifetime_value"),
        ),
        (
            Contact,
            "lifetime_value within 5d",
            0,
            Bind::Mismatch("lifetime_value"),
        ),
        (
            Contact,
            "order_count = 1.5",
            0,
            Bind::Mismatch("order_count"),
        ),
        (Contact, "region > 5", 0, Bind::Mismatch("region")),
        (Contact, "region within 5d", 0, Bind::Mismatch("region")),
        (Contact, r#"owner = "bob""#, 0, Bind::Mismatch("owner")),
        (
            Contact,
            "unsubscribed = 1",
            0,
            Bind::Mismatch("unsubscribed"),
        ),
        (Contact, "created = 5", 0, Bind::Mismatch("created")),
        (Contact, "stage = 3", 0, Bind::Mismatch("stage")),
        (
            Contact,
            r#"custom.notes = "x""#,
            0,
            Bind::Mismatch("custom.notes"),
        ),
        (
            Contact,
            r#"custom.employees = "many""#,
            0,
            Bind::Mismatch("custom.employees"),
        ),
        (
            Contact,
            "tag:vip AND (region:x OR birth_year = true)",
            25,
            Bind::Mismatch("birth_year"),
        ),
    ];
    db.read(|r| {
        for (kind, text, offset, want) in cases {
            let query = Query::parse(text)?;
            let err = match r.count(kind, &query) {
                Ok(n) => panic!("{kind} {text:?} should not bind, counted {n}"),
                Err(Error::Query(e)) => e,
                Err(other) => panic!("{kind} {text:?}: not a query error: {other}"),
            };
            let QueryError {
                offset: at,
                kind: got,
            } = err;
            assert_eq!(at, offset, "{kind} {text:?}: offset of {got:?}");
            match want {
                Bind::Kind(expected) => assert_eq!(got, expected, "{kind} {text:?}"),
                Bind::Mismatch(field) => match got {
                    K::TypeMismatch { field: f, .. } => assert_eq!(f, field, "{kind} {text:?}"),
                    other => panic!("{kind} {text:?}: expected a type mismatch, got {other:?}"),
                },
            }
        }
        Ok(())
    })
}

#[test]
fn builder_queries_bind_like_parsed_ones() -> crmdb::Result<()> {
    let db = small_database()?;
    db.read(|r| {
        let built = Query::tag("ghost");
        assert_eq!(r.count(EntityKind::Contact, &built)?, 0);
        let built = Query::field("region").eq("");
        match r.count(EntityKind::Contact, &built) {
            Err(Error::Query(QueryError {
                offset: 0,
                kind: QueryErrorKind::TypeMismatch { field, .. },
            })) => assert_eq!(field, "region"),
            other => panic!("expected an empty value to be refused, got {other:?}"),
        }
        let built = Query::field("region").eq("shanghai").and(Query::tag("vip"));
        assert_eq!(r.count(EntityKind::Contact, &built)?, 1);
        let pred = Query::Field {
            field: "birth_year".into(),
            predicate: Predicate::Within { days: 3 },
            offset: 0,
        };
        assert!(matches!(
            r.count(EntityKind::Contact, &pred),
            Err(Error::Query(QueryError {
                kind: QueryErrorKind::TypeMismatch { .. },
                ..
            }))
        ));
        Ok(())
    })
}
