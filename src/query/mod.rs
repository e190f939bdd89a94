//! Segment queries: one AST ([`Query`]) with two front ends, a typed Rust builder and
//! the text language ([`Query::parse`]); a binder and planner that turn it into bitmap
//! operations over one snapshot; pages, group-bys and saved segments.
//!
//! The language is documented in the crate docs ("Query language").

pub(crate) mod eval;
pub(crate) mod fields;
pub(crate) mod page;
mod parser;

use serde::{Deserialize, Serialize};

use crate::error::QueryError;
use crate::schema::{EntityKind, Money, Record as _, Timestamp};

pub use page::{Group, GroupBy, Page, SortBy, TagCount};

/// Longest accepted query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Deepest accepted nesting of parentheses, NOTs and segment references.
pub const MAX_QUERY_DEPTH: usize = 64;
/// Most values in one `in (…)` list.
pub const MAX_IN_VALUES: usize = 1024;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A literal value in a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Literal {
    /// A string (`"shanghai"` or a bare word after `field:`).
    Str(String),
    /// An integer. On money fields, whole major units (`1000` = 1000.00).
    Int(i64),
    /// A decimal with at most two places, in minor units (`12.5` = 1250); money only.
    Decimal(i64),
    /// An exact amount of money in minor units (builder only).
    Money(Money),
    /// A date, as days since 1970-01-01 (`2026-01-31`).
    Date(i64),
    /// `true` or `false`.
    Bool(bool),
}

impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Str(v.to_owned())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Str(v)
    }
}
impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int(i64::from(v))
    }
}
impl From<u32> for Literal {
    fn from(v: u32) -> Self {
        Literal::Int(i64::from(v))
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<Money> for Literal {
    fn from(v: Money) -> Self {
        Literal::Money(v)
    }
}
impl From<Timestamp> for Literal {
    fn from(v: Timestamp) -> Self {
        Literal::Date(v.day())
    }
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Predicate {
    /// `field op value`; `field:value` is `field = value`.
    Cmp(CmpOp, Literal),
    /// `field in (a, b, …)`
    In(Vec<Literal>),
    /// `field between a and b`, both ends included.
    Between(Literal, Literal),
    /// `field within 90d`: a date field no earlier than that many days before today.
    Within {
        /// Days.
        days: u32,
    },
    /// `field exists`: the record has a value.
    Exists,
}

/// A segment expression. Build it in Rust or parse it from text.
///
/// ```
/// use crmdb::Query;
/// let built = Query::tag("vip")
///     .and(Query::field("region").eq("shanghai"))
///     .and(!Query::stage("churned"))
///     .and(Query::field("lifetime_value").ge(1000))
///     .and(Query::field("last_activity").within_days(90));
/// let parsed = Query::parse(
///     r#"tag:vip AND region = "shanghai" AND NOT stage:churned
///        AND lifetime_value >= 1000 AND last_activity within 90d"#,
/// )?;
/// assert_eq!(built.to_string(), parsed.to_string());
/// # Ok::<(), crmdb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// Every live record.
    All,
    /// All of these.
    And(Vec<Query>),
    /// Any of these.
    Or(Vec<Query>),
    /// Live records not matching.
    Not(Box<Query>),
    /// A saved segment by name.
    Segment {
        /// The segment name.
        name: String,
        /// Byte offset in the source text (0 when built).
        offset: usize,
    },
    /// A condition on a field.
    Field {
        /// The field name (`region`, `custom.industry`).
        field: String,
        /// The condition.
        predicate: Predicate,
        /// Byte offset in the source text (0 when built).
        offset: usize,
    },
}

/// A field in the builder, waiting for its condition.
#[derive(Debug, Clone)]
pub struct FieldRef(String);

impl FieldRef {
    fn pred(self, predicate: Predicate) -> Query {
        Query::Field {
            field: self.0,
            predicate,
            offset: 0,
        }
    }
    /// `field = value`
    pub fn eq(self, value: impl Into<Literal>) -> Query {
        self.pred(Predicate::Cmp(CmpOp::Eq, value.into()))
    }
    /// `field != value` (false where the field has no value).
    pub fn ne(self, value: impl Into<Literal>) -> Query {
        self.pred(Predicate::Cmp(CmpOp::Ne, value.into()))
    }
    /// `field < value`
    pub fn lt(self, value: impl Into<Literal>) -> Query {
        self.pred(Predicate::Cmp(CmpOp::Lt, value.into()))
    }
    /// `field <= value`
    pub fn le(self, value: impl Into<Literal>) -> Query {
        self.pred(Predicate::Cmp(CmpOp::Le, value.into()))
    }
    /// `field > value`
    pub fn gt(self, value: impl Into<Literal>) -> Query {
        self.pred(Predicate::Cmp(CmpOp::Gt, value.into()))
    }
    /// `field >= value`
    pub fn ge(self, value: impl Into<Literal>) -> Query {
        self.pred(Predicate::Cmp(CmpOp::Ge, value.into()))
    }
    /// `field in (values…)`
    pub fn is_in<L: Into<Literal>>(self, values: impl IntoIterator<Item = L>) -> Query {
        self.pred(Predicate::In(values.into_iter().map(Into::into).collect()))
    }
    /// `field between low and high`
    pub fn between(self, low: impl Into<Literal>, high: impl Into<Literal>) -> Query {
        self.pred(Predicate::Between(low.into(), high.into()))
    }
    /// `field within Nd`
    pub fn within_days(self, days: u32) -> Query {
        self.pred(Predicate::Within { days })
    }
    /// `field exists`
    pub fn exists(self) -> Query {
        self.pred(Predicate::Exists)
    }
}

impl Query {
    /// Parses the text language.
    ///
    /// # Errors
    /// [`crate::Error::Query`] with the byte offset and what was expected.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        parser::parse(text)
    }

    /// Every live record.
    pub fn all() -> Query {
        Query::All
    }
    /// Records carrying a tag (`tag:name`).
    pub fn tag(name: impl Into<String>) -> Query {
        FieldRef("tag".into()).eq(Literal::Str(name.into()))
    }
    /// Records in a stage (`stage:name`).
    pub fn stage(name: impl Into<String>) -> Query {
        FieldRef("stage".into()).eq(Literal::Str(name.into()))
    }
    /// Contacts holding a role (`role:name`).
    pub fn role(name: impl Into<String>) -> Query {
        FieldRef("role".into()).eq(Literal::Str(name.into()))
    }
    /// A saved segment (`segment:name`).
    pub fn segment(name: impl Into<String>) -> Query {
        Query::Segment {
            name: name.into(),
            offset: 0,
        }
    }
    /// A field, to be given a condition.
    pub fn field(name: impl Into<String>) -> FieldRef {
        FieldRef(name.into())
    }
    /// Both conditions.
    pub fn and(self, other: Query) -> Query {
        match self {
            Query::And(mut items) => {
                items.push(other);
                Query::And(items)
            }
            first => Query::And(vec![first, other]),
        }
    }
    /// Either condition.
    pub fn or(self, other: Query) -> Query {
        match self {
            Query::Or(mut items) => {
                items.push(other);
                Query::Or(items)
            }
            first => Query::Or(vec![first, other]),
        }
    }
}

impl std::ops::Not for Query {
    type Output = Query;
    fn not(self) -> Query {
        Query::Not(Box::new(self))
    }
}

fn write_literal(f: &mut std::fmt::Formatter<'_>, literal: &Literal) -> std::fmt::Result {
    match literal {
        Literal::Str(s) => {
            // Only `"` and `\` are escaped: exactly what the parser unescapes.
            f.write_str("\"")?;
            for c in s.chars() {
                if matches!(c, '"' | '\\') {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")
        }
        Literal::Int(i) => write!(f, "{i}"),
        Literal::Decimal(minor) | Literal::Money(Money(minor)) => write!(f, "{}", Money(*minor)),
        Literal::Date(day) => {
            let (y, m, d) = crate::schema::civil_from_days(*day);
            write!(f, "{y:04}-{m:02}-{d:02}")
        }
        Literal::Bool(b) => write!(f, "{b}"),
    }
}

/// Canonical text: parses back to an equal query (offsets aside).
impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |f: &mut std::fmt::Formatter<'_>, items: &[Query], sep: &str| {
            f.write_str("(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        };
        match self {
            Query::All => f.write_str("*"),
            Query::And(items) => join(f, items, " AND "),
            Query::Or(items) => join(f, items, " OR "),
            Query::Not(inner) => write!(f, "NOT {inner}"),
            Query::Segment { name, .. } => write!(f, "segment:{name}"),
            Query::Field {
                field, predicate, ..
            } => {
                write!(f, "{field}")?;
                match predicate {
                    Predicate::Cmp(op, value) => {
                        let op = match op {
                            CmpOp::Eq => "=",
                            CmpOp::Ne => "!=",
                            CmpOp::Lt => "<",
                            CmpOp::Le => "<=",
                            CmpOp::Gt => ">",
                            CmpOp::Ge => ">=",
                        };
                        write!(f, " {op} ")?;
                        write_literal(f, value)
                    }
                    Predicate::In(values) => {
                        f.write_str(" IN (")?;
                        for (i, v) in values.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write_literal(f, v)?;
                        }
                        f.write_str(")")
                    }
                    Predicate::Between(a, b) => {
                        f.write_str(" BETWEEN ")?;
                        write_literal(f, a)?;
                        f.write_str(" AND ")?;
                        write_literal(f, b)
                    }
                    Predicate::Within { days } => write!(f, " WITHIN {days}d"),
                    Predicate::Exists => f.write_str(" EXISTS"),
                }
            }
        }
    }
}

/// A saved segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SavedSegment {
    /// A fixed set of records (row ids of `kind`); deleted records drop out of results.
    Static {
        /// The entity kind.
        kind: EntityKind,
        /// Row ids.
        rows: Vec<u32>,
    },
    /// A stored expression, evaluated afresh each time.
    Dynamic {
        /// The entity kind.
        kind: EntityKind,
        /// The expression.
        query: Query,
    },
}

impl SavedSegment {
    /// A static segment of the given records.
    pub fn of_ids<I: crate::schema::RecordId>(ids: impl IntoIterator<Item = I>) -> SavedSegment {
        let mut rows: Vec<u32> = ids.into_iter().map(|id| id.row()).collect();
        rows.sort_unstable();
        rows.dedup();
        SavedSegment::Static {
            kind: I::Record::KIND,
            rows,
        }
    }

    /// The entity kind the segment selects.
    pub fn kind(&self) -> EntityKind {
        match self {
            SavedSegment::Static { kind, .. } | SavedSegment::Dynamic { kind, .. } => *kind,
        }
    }
}

/// A saved segment as stored: a dynamic one as its canonical query text (which parses
/// back to the same query), so that the stored bytes do not depend on the layout of the
/// [`Query`] AST and a new predicate does not change the format.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum StoredSegment {
    Static { kind: EntityKind, rows: Vec<u32> },
    Dynamic { kind: EntityKind, text: String },
}

impl StoredSegment {
    pub(crate) fn of(segment: &SavedSegment) -> StoredSegment {
        match segment {
            SavedSegment::Static { kind, rows } => StoredSegment::Static {
                kind: *kind,
                rows: rows.clone(),
            },
            SavedSegment::Dynamic { kind, query } => StoredSegment::Dynamic {
                kind: *kind,
                text: query.to_string(),
            },
        }
    }

    /// The segment; a stored text that no longer parses is corrupt.
    pub(crate) fn into_segment(self, name: &str) -> crate::Result<SavedSegment> {
        Ok(match self {
            StoredSegment::Static { kind, rows } => SavedSegment::Static { kind, rows },
            StoredSegment::Dynamic { kind, text } => SavedSegment::Dynamic {
                kind,
                query: Query::parse(&text).map_err(|e| crate::Error::Corrupt {
                    what: "segment",
                    key: name.to_owned(),
                    reason: format!("stored query does not parse: {e}"),
                })?,
            },
        })
    }
}

/// A saved segment by name, decoded from the `segments` table.
pub(crate) fn load_segment<S: crate::storage::source::Source + ?Sized>(
    snap: &S,
    name: &str,
) -> crate::Result<SavedSegment> {
    let bytes = snap
        .segment_bytes(name)?
        .ok_or_else(|| crate::Error::UnknownSegment(name.into()))?;
    crate::codec::decode::<StoredSegment>("segment", &name, &bytes)?.into_segment(name)
}
