//! Differential test: random data sets and random segments evaluated by crmdb and by
//! SQLite in memory must select the same ids.
//!
//! The two-valued semantics are written out in SQL: a comparison on NULL is false
//! (`col IS NOT NULL AND col op ?`), multi-valued fields live in side tables and are
//! tested with `EXISTS`, and `NOT q` is `NOT COALESCE((q), 0)` within the live rows.

#[path = "support/model.rs"]
mod model;

use crmdb::{
    CmpOp, Contact, ContactId, EntityKind, Literal, Predicate, Query, RoaringBitmap, SavedSegment,
    Snapshot, Timestamp,
};
use model::Kind;
use proptest::prelude::*;
use rusqlite::types::Value as Sql;

fn cases(default: u32) -> u32 {
    std::env::var("CRMDB_SQLITE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn today() -> Timestamp {
    Timestamp(model::base_day() * 86_400 + 20 * 3_600)
}

/// Single-valued columns of the `contact` table, by query field.
const COLUMNS: [(&str, &str); 20] = [
    ("region", "region"),
    ("gender", "gender"),
    ("source", "source"),
    ("owner", "owner"),
    ("account", "account"),
    ("stage", "stage"),
    ("unsubscribed", "unsubscribed"),
    ("lifetime_value", "lifetime_value"),
    ("order_count", "order_count"),
    ("total_spent", "total_spent"),
    ("activity_count", "activity_count"),
    ("last_order", "last_order"),
    ("last_activity", "last_activity"),
    ("created", "created"),
    ("birth_year", "birth_year"),
    ("custom.industry", "c_industry"),
    ("custom.score", "c_score"),
    ("custom.budget", "c_budget"),
    ("custom.renewal", "c_renewal"),
    ("custom.trial", "c_trial"),
];

/// Multi-valued fields and their side tables `(id, v)`.
const SIDE_TABLES: [(&str, &str); 4] = [
    ("tag", "contact_tag"),
    ("role", "contact_role"),
    ("custom.channels", "contact_channel"),
    ("custom.note", "contact_note"),
];

fn load_sqlite(records: &[(ContactId, Contact)]) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(field, col)| {
            let ty = if model::kind_of(field).is_numeric() {
                "INTEGER"
            } else {
                "TEXT"
            };
            format!("{col} {ty}")
        })
        .collect();
    let mut ddl = format!(
        "CREATE TABLE contact (id INTEGER PRIMARY KEY, deleted INTEGER NOT NULL, {});",
        columns.join(", ")
    );
    for (_, table) in SIDE_TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE {table} (id INTEGER NOT NULL, v TEXT NOT NULL);"
        ));
    }
    conn.execute_batch(&ddl).expect("schema");
    let placeholders = vec!["?"; COLUMNS.len() + 2].join(", ");
    let mut insert = conn
        .prepare(&format!("INSERT INTO contact VALUES ({placeholders})"))
        .expect("prepare");
    for (id, c) in records {
        let mut values = vec![
            Sql::Integer(i64::from(id.get())),
            Sql::Integer(i64::from(c.deleted_at.is_some())),
        ];
        for (field, _) in COLUMNS {
            values.push(if model::kind_of(field).is_numeric() {
                model::num_value(c, field).map_or(Sql::Null, Sql::Integer)
            } else {
                model::cat_values(c, field)
                    .into_iter()
                    .next()
                    .map_or(Sql::Null, Sql::Text)
            });
        }
        insert
            .execute(rusqlite::params_from_iter(values))
            .expect("insert contact");
        for (field, table) in SIDE_TABLES {
            for v in model::cat_values(c, field) {
                conn.execute(
                    &format!("INSERT INTO {table} VALUES (?1, ?2)"),
                    rusqlite::params![id.get(), v],
                )
                .expect("insert side row");
            }
        }
    }
    drop(insert);
    conn
}

struct Sql92<'a> {
    params: Vec<Sql>,
    segments: &'a std::collections::BTreeMap<String, SavedSegment>,
    today: i64,
}

impl Sql92<'_> {
    fn bind(&mut self, v: Sql) -> String {
        self.params.push(v);
        format!("?{}", self.params.len())
    }

    fn lit(&mut self, kind: Kind, lit: &Literal) -> String {
        let v = match (kind, lit) {
            (k, l) if k.is_numeric() => Sql::Integer(model::lit_number(k, l)),
            (_, Literal::Str(s)) => Sql::Text(s.clone()),
            (_, Literal::Int(i)) => Sql::Text(i.to_string()),
            (_, Literal::Bool(b)) => Sql::Text(b.to_string()),
            other => panic!("ill-typed literal {other:?}"),
        };
        self.bind(v)
    }

    /// A two-valued SQL condition on the row `c`.
    fn expr(&mut self, q: &Query) -> String {
        match q {
            Query::All => "1".into(),
            Query::And(items) => {
                let parts: Vec<String> = items.iter().map(|i| self.expr(i)).collect();
                format!("({})", parts.join(" AND "))
            }
            Query::Or(items) => {
                let parts: Vec<String> = items.iter().map(|i| self.expr(i)).collect();
                format!("({})", parts.join(" OR "))
            }
            Query::Not(inner) => format!("(NOT COALESCE(({}), 0))", self.expr(inner)),
            Query::Segment { name, .. } => match self.segments.get(name).cloned() {
                Some(SavedSegment::Static { rows, .. }) => {
                    let rows: Vec<String> = rows.iter().map(u32::to_string).collect();
                    format!("(c.id IN ({}))", rows.join(", "))
                }
                Some(SavedSegment::Dynamic { query, .. }) => self.expr(&query),
                None => panic!("unknown segment {name}"),
            },
            Query::Field {
                field, predicate, ..
            } => self.field(field, predicate),
        }
    }

    fn field(&mut self, field: &str, predicate: &Predicate) -> String {
        let kind = model::kind_of(field);
        if let Some((_, table)) = SIDE_TABLES.iter().find(|(f, _)| *f == field) {
            let any = format!("EXISTS (SELECT 1 FROM {table} s WHERE s.id = c.id)");
            let one_of = |this: &mut Self, lits: &[Literal]| {
                let vs: Vec<String> = lits.iter().map(|l| this.lit(kind, l)).collect();
                format!(
                    "EXISTS (SELECT 1 FROM {table} s WHERE s.id = c.id AND s.v IN ({}))",
                    vs.join(", ")
                )
            };
            return match predicate {
                Predicate::Cmp(CmpOp::Eq, l) => one_of(self, std::slice::from_ref(l)),
                Predicate::Cmp(CmpOp::Ne, l) => {
                    format!("({any} AND NOT {})", one_of(self, std::slice::from_ref(l)))
                }
                Predicate::In(ls) => one_of(self, ls),
                Predicate::Exists => any,
                other => panic!("ill-typed {other:?} on {field}"),
            };
        }
        let col = COLUMNS
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, c)| format!("c.{c}"))
            .unwrap_or_else(|| panic!("no column for {field}"));
        let cond = match predicate {
            Predicate::Cmp(op, l) => {
                let op = match op {
                    CmpOp::Eq => "=",
                    CmpOp::Ne => "<>",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                format!("{col} {op} {}", self.lit(kind, l))
            }
            Predicate::In(ls) => {
                let vs: Vec<String> = ls.iter().map(|l| self.lit(kind, l)).collect();
                format!("{col} IN ({})", vs.join(", "))
            }
            Predicate::Between(a, b) => {
                let (a, b) = (self.lit(kind, a), self.lit(kind, b));
                format!("{col} BETWEEN {a} AND {b}")
            }
            Predicate::Within { days } => {
                let since = self.bind(Sql::Integer(self.today - i64::from(*days)));
                format!("{col} >= {since}")
            }
            Predicate::Exists => "1".into(),
        };
        format!("({col} IS NOT NULL AND {cond})")
    }
}

fn sqlite_ids(
    conn: &rusqlite::Connection,
    q: &Query,
    segments: &std::collections::BTreeMap<String, SavedSegment>,
) -> RoaringBitmap {
    let mut sql = Sql92 {
        params: Vec::new(),
        segments,
        today: today().day(),
    };
    let cond = sql.expr(q);
    let text = format!("SELECT c.id FROM contact c WHERE c.deleted = 0 AND COALESCE(({cond}), 0)");
    let mut stmt = conn.prepare(&text).expect("prepare query");
    let rows = stmt
        .query_map(rusqlite::params_from_iter(sql.params), |r| {
            r.get::<_, i64>(0)
        })
        .expect("run query");
    rows.map(|r| u32::try_from(r.expect("row")).expect("row id"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    #[test]
    fn segments_select_the_same_ids_as_sqlite(
        contacts in proptest::collection::vec(model::gen_contact(), 5..120),
        picks in proptest::collection::vec(0usize..200, 0..15),
        dynamic in model::query(Vec::new()),
        queries in proptest::collection::vec(
            model::query(vec!["picked".into(), "dyn".into()]),
            8,
        ),
    ) {
        let (db, records) = model::load(&contacts, today());
        let rows: Vec<ContactId> = picks
            .iter()
            .filter_map(|p| records.get(p % records.len()).map(|(id, _)| *id))
            .collect();
        let segments: std::collections::BTreeMap<String, SavedSegment> = [
            ("picked".to_owned(), SavedSegment::of_ids(rows)),
            ("dyn".to_owned(), SavedSegment::Dynamic { kind: EntityKind::Contact, query: dynamic }),
        ]
        .into_iter()
        .collect();
        db.write(|tx| -> crmdb::Result<_> {
            for (name, segment) in &segments {
                tx.save_segment(name, segment.clone())?;
            }
            Ok(())
        })
        .map_err(|e| TestCaseError::fail(format!("save segments: {e}")))?;
        let conn = load_sqlite(&records);
        for q in &queries {
            let ours = db
                .read(|r| r.ids(EntityKind::Contact, q))
                .map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
            let theirs = sqlite_ids(&conn, q, &segments);
            prop_assert_eq!(ours, theirs, "{}", q);
        }
    }
}
