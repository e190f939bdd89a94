//! Binding a [`Query`] to one snapshot, planning, and evaluating it over bitmaps.
//!
//! Semantics are two-valued: a condition on a record without a value for the field is
//! false, whatever the operator (so `x != 1` does not match records without `x`); `NOT q`
//! is the complement of `q` within the live records of the kind. Results only ever
//! contain live records.

use std::borrow::Cow;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::fields::{self, FieldKind};
use super::{CmpOp, Literal, MAX_QUERY_DEPTH, Predicate, Query, SavedSegment};
use crate::error::{Error, QueryError, QueryErrorKind, Result};
use crate::index::bsi::Cmp;
use crate::index::{self, Bsi};
use crate::schema::{ConsentStatus, EntityKind, consent_field};
use crate::storage::source::Source;

/// A bound, executable plan.
pub(crate) enum Plan {
    All,
    Bitmap(Arc<RoaringBitmap>),
    Num { bsi: Arc<Bsi>, cmp: Cmp, value: i64 },
    Range { bsi: Arc<Bsi>, low: i64, high: i64 },
    Exists(Arc<Bsi>),
    And(Vec<Plan>),
    Or(Vec<Plan>),
    Not(Box<Plan>),
}

struct Binder<'s, S: ?Sized> {
    snap: &'s S,
    kind: EntityKind,
    config: Arc<crate::config::Config>,
    /// Segments being bound, to refuse cycles.
    stack: Vec<String>,
    today: i64,
    /// Whether to read the wide bitmaps of a narrowing source (see
    /// `Source::narrowing`); the caller narrows the result.
    wide: bool,
}

fn qerr(offset: usize, kind: QueryErrorKind) -> Error {
    Error::Query(QueryError { offset, kind })
}

fn mismatch(offset: usize, field: &str, reason: impl Into<String>) -> Error {
    qerr(
        offset,
        QueryErrorKind::TypeMismatch {
            field: field.into(),
            reason: reason.into(),
        },
    )
}

impl<S: Source + ?Sized> Binder<'_, S> {
    fn bind(&mut self, query: &Query, depth: usize) -> Result<Plan> {
        if depth > MAX_QUERY_DEPTH {
            return Err(qerr(
                0,
                QueryErrorKind::TooDeep {
                    limit: MAX_QUERY_DEPTH,
                },
            ));
        }
        Ok(match query {
            Query::All => Plan::All,
            Query::And(items) => Plan::And(
                items
                    .iter()
                    .map(|q| self.bind(q, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Query::Or(items) => Plan::Or(
                items
                    .iter()
                    .map(|q| self.bind(q, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Query::Not(inner) => Plan::Not(Box::new(self.bind(inner, depth + 1)?)),
            Query::Segment { name, offset } => self.bind_segment(name, *offset, depth)?,
            Query::Field {
                field,
                predicate,
                offset,
            } => self.bind_field(field, predicate, *offset)?,
        })
    }

    fn bind_segment(&mut self, name: &str, offset: usize, depth: usize) -> Result<Plan> {
        if self.stack.iter().any(|s| s == name) {
            return Err(Error::SegmentCycle(name.to_owned()));
        }
        let segment = match super::load_segment(self.snap, name) {
            Ok(segment) => segment,
            Err(Error::UnknownSegment(_)) => {
                return Err(qerr(
                    offset,
                    QueryErrorKind::UnknownSegment(name.to_owned()),
                ));
            }
            Err(e) => return Err(e),
        };
        if segment.kind() != self.kind {
            return Err(mismatch(
                offset,
                "segment",
                format!(
                    "segment {name:?} selects {} records, not {}",
                    segment.kind(),
                    self.kind
                ),
            ));
        }
        match segment {
            SavedSegment::Static { rows, .. } => {
                // Saved ids may since have been deleted or purged: unlike index bitmaps
                // they are not kept in step with the records, so keep the live ones.
                let mut rows: RoaringBitmap = rows.into_iter().collect();
                rows &= &*self.load(&index::live_key(self.kind))?;
                Ok(Plan::Bitmap(Arc::new(rows)))
            }
            SavedSegment::Dynamic { query, .. } => {
                self.stack.push(name.to_owned());
                let plan = self.bind(&query, depth + 1);
                self.stack.pop();
                plan
            }
        }
    }

    /// A bitmap the plan reads: wide when the result is narrowed at the end.
    fn load(&self, key: &str) -> Result<Arc<RoaringBitmap>> {
        if self.wide {
            self.snap.wide_bitmap(key)
        } else {
            self.snap.bitmap(key)
        }
    }

    /// A numeric index the plan reads, as [`load`](Self::load).
    fn load_bsi(&self, base: &str) -> Result<Arc<Bsi>> {
        if self.wide {
            self.snap.wide_bsi(base)
        } else {
            self.snap.bsi(base)
        }
    }

    fn cat(&self, field: &str, value: &str) -> Result<Arc<RoaringBitmap>> {
        self.load(&index::cat_key(self.kind, field, value))
    }

    fn cat_values(
        &self,
        field: &str,
        kind: FieldKind,
        values: &[&Literal],
        offset: usize,
    ) -> Result<Plan> {
        let mut strings = Vec::with_capacity(values.len());
        for value in values {
            strings.push(self.cat_string(field, kind, value, offset)?);
        }
        if strings.len() == 1 {
            return Ok(Plan::Bitmap(self.cat(field, &strings[0])?));
        }
        let mut union = RoaringBitmap::new();
        for s in &strings {
            union |= &*self.cat(field, s)?;
        }
        Ok(Plan::Bitmap(Arc::new(union)))
    }

    fn cat_string(
        &self,
        field: &str,
        kind: FieldKind,
        value: &Literal,
        offset: usize,
    ) -> Result<String> {
        match (kind, value) {
            // No stored value is empty: an empty one could only ever match nothing.
            (FieldKind::Cat { .. } | FieldKind::Stage, Literal::Str(s)) if s.is_empty() => {
                Err(mismatch(offset, field, "an empty value matches nothing"))
            }
            (FieldKind::Id, Literal::Int(i)) if *i >= 0 && *i <= i64::from(u32::MAX) => {
                Ok(i.to_string())
            }
            (FieldKind::Id, _) => Err(mismatch(
                offset,
                field,
                "expected a record id (a non-negative integer)",
            )),
            (FieldKind::Bool, Literal::Bool(b)) => Ok(b.to_string()),
            (FieldKind::Bool, _) => Err(mismatch(offset, field, "expected true or false")),
            (FieldKind::Stage, Literal::Str(stage)) => {
                let machines = &self.config.machines;
                let known = match self.kind {
                    EntityKind::Contact => {
                        machines.contact.position(&stage.as_str().into()).is_some()
                    }
                    _ => machines
                        .pipelines
                        .values()
                        .any(|m| m.position(&stage.as_str().into()).is_some()),
                };
                if !known {
                    return Err(qerr(offset, QueryErrorKind::UnknownStage(stage.clone())));
                }
                Ok(stage.clone())
            }
            // A tag no record carries yet matches nothing: a segment must not start
            // failing because its tag is new.
            (FieldKind::Cat { .. }, Literal::Str(s)) => Ok(s.clone()),
            (FieldKind::Cat { .. }, Literal::Int(i)) => Ok(i.to_string()),
            (FieldKind::Cat { .. } | FieldKind::Stage, _) => {
                Err(mismatch(offset, field, "expected a string"))
            }
            (FieldKind::Text, _) => Err(mismatch(offset, field, "text fields support only EXISTS")),
            _ => Err(mismatch(offset, field, "not a categorical field")),
        }
    }

    fn number(&self, field: &str, kind: FieldKind, value: &Literal, offset: usize) -> Result<i64> {
        match (kind, value) {
            (FieldKind::Int, Literal::Int(i)) => Ok(*i),
            (FieldKind::Money, Literal::Int(major)) => major
                .checked_mul(100)
                .ok_or_else(|| mismatch(offset, field, "amount out of range")),
            (FieldKind::Money, Literal::Decimal(minor)) => Ok(*minor),
            (FieldKind::Money, Literal::Money(m)) => Ok(m.0),
            (FieldKind::Date, Literal::Date(day)) => Ok(*day),
            (FieldKind::Int, _) => Err(mismatch(offset, field, "expected an integer")),
            (FieldKind::Money, _) => Err(mismatch(
                offset,
                field,
                "expected an amount such as 1000 or 99.50",
            )),
            (FieldKind::Date, _) => Err(mismatch(
                offset,
                field,
                "expected a date such as 2026-01-31",
            )),
            _ => Err(mismatch(offset, field, "not a numeric field")),
        }
    }

    fn bind_field(&mut self, name: &str, predicate: &Predicate, offset: usize) -> Result<Plan> {
        if self.kind == EntityKind::Contact
            && let Some(channel) = name.strip_prefix("consent.")
        {
            return self.bind_consent(name, channel, predicate, offset);
        }
        let schema = self.config.schema(self.kind);
        let Some((field, kind)) = fields::resolve(self.kind, &schema, name) else {
            return Err(qerr(offset, QueryErrorKind::UnknownField(name.to_owned())));
        };
        if kind.is_numeric() {
            let bsi = self.load_bsi(&index::bsi_base(self.kind, &field))?;
            let num = |lit: &Literal| self.number(name, kind, lit, offset);
            return Ok(match predicate {
                Predicate::Cmp(op, lit) => {
                    let cmp = match op {
                        CmpOp::Eq => Cmp::Eq,
                        CmpOp::Ne => Cmp::Ne,
                        CmpOp::Lt => Cmp::Lt,
                        CmpOp::Le => Cmp::Le,
                        CmpOp::Gt => Cmp::Gt,
                        CmpOp::Ge => Cmp::Ge,
                    };
                    Plan::Num {
                        bsi,
                        cmp,
                        value: num(lit)?,
                    }
                }
                Predicate::In(values) => {
                    let mut items = Vec::with_capacity(values.len());
                    for lit in values {
                        items.push(Plan::Num {
                            bsi: Arc::clone(&bsi),
                            cmp: Cmp::Eq,
                            value: num(lit)?,
                        });
                    }
                    Plan::Or(items)
                }
                Predicate::Between(low, high) => Plan::Range {
                    bsi,
                    low: num(low)?,
                    high: num(high)?,
                },
                Predicate::Within { days } => {
                    if kind != FieldKind::Date {
                        return Err(mismatch(offset, name, "WITHIN applies to date fields"));
                    }
                    Plan::Num {
                        bsi,
                        cmp: Cmp::Ge,
                        value: self.today - i64::from(*days),
                    }
                }
                Predicate::Exists => Plan::Exists(bsi),
            });
        }
        match predicate {
            Predicate::Cmp(CmpOp::Eq, lit) => self.cat_values(&field, kind, &[lit], offset),
            Predicate::Cmp(CmpOp::Ne, lit) => {
                // Has a value, and not this one.
                let value = self.cat_values(&field, kind, &[lit], offset)?;
                let has = self.exists(&field, kind)?;
                Ok(Plan::And(vec![has, Plan::Not(Box::new(value))]))
            }
            Predicate::Cmp(..) | Predicate::Between(..) => Err(mismatch(
                offset,
                name,
                "ordering comparisons apply to numeric and date fields",
            )),
            Predicate::In(values) => {
                let refs: Vec<&Literal> = values.iter().collect();
                self.cat_values(&field, kind, &refs, offset)
            }
            Predicate::Within { .. } => {
                Err(mismatch(offset, name, "WITHIN applies to date fields"))
            }
            Predicate::Exists => self.exists(&field, kind),
        }
    }

    /// `consent.<channel>`: every contact has a state in every channel, `unknown`
    /// without an entry, so `!=` and `unknown` include the contacts without one.
    fn bind_consent(
        &self,
        name: &str,
        channel: &str,
        predicate: &Predicate,
        offset: usize,
    ) -> Result<Plan> {
        if !self.config.consent_channels.iter().any(|c| c == channel) {
            return Err(qerr(offset, QueryErrorKind::UnknownField(name.to_owned())));
        }
        let field = consent_field(channel);
        let bitmap = |status: ConsentStatus| -> Result<Plan> {
            let key = index::cat_key(EntityKind::Contact, &field, status.as_str());
            Ok(Plan::Bitmap(self.load(&key)?))
        };
        let state = |literal: &Literal| -> Result<Plan> {
            let status = match literal {
                Literal::Str(s) => ConsentStatus::parse(s),
                _ => None,
            };
            match status {
                Some(ConsentStatus::Unknown) => Ok(Plan::Not(Box::new(Plan::Or(vec![
                    bitmap(ConsentStatus::Granted)?,
                    bitmap(ConsentStatus::Denied)?,
                ])))),
                Some(status) => bitmap(status),
                None => Err(mismatch(
                    offset,
                    name,
                    "expected granted, denied or unknown",
                )),
            }
        };
        match predicate {
            Predicate::Cmp(CmpOp::Eq, literal) => state(literal),
            Predicate::Cmp(CmpOp::Ne, literal) => Ok(Plan::Not(Box::new(state(literal)?))),
            Predicate::In(values) => Ok(Plan::Or(
                values.iter().map(state).collect::<Result<Vec<_>>>()?,
            )),
            Predicate::Exists => Ok(Plan::All),
            _ => Err(mismatch(
                offset,
                name,
                "consent states are compared with =, != and IN",
            )),
        }
    }

    fn exists(&self, field: &str, _kind: FieldKind) -> Result<Plan> {
        let mut union = RoaringBitmap::new();
        for key in self
            .snap
            .keys_with_prefix(&index::cat_prefix(self.kind, field))?
        {
            union |= &*self.load(&key)?;
        }
        Ok(Plan::Bitmap(Arc::new(union)))
    }
}

/// Estimated result size, for ordering AND operands.
fn estimate(plan: &Plan, live: u64) -> u64 {
    match plan {
        Plan::All => live,
        Plan::Bitmap(b) => b.len(),
        Plan::Num {
            bsi, cmp: Cmp::Eq, ..
        } => bsi.exists.len() / 16,
        Plan::Num { bsi, .. } | Plan::Range { bsi, .. } => bsi.exists.len() / 2,
        Plan::Exists(bsi) => bsi.exists.len(),
        Plan::And(items) => items
            .iter()
            .map(|p| estimate(p, live))
            .min()
            .unwrap_or(live),
        Plan::Or(items) => items
            .iter()
            .map(|p| estimate(p, live))
            .sum::<u64>()
            .min(live),
        Plan::Not(inner) => live.saturating_sub(estimate(inner, live)),
    }
}

/// The live records of the kind being queried.
struct Live<'a> {
    rows: &'a RoaringBitmap,
    /// Whether every row present in an index is live, so that index results need no
    /// intersection with `rows`. True when the recycle bin is empty: every record is
    /// either live or deleted, row ids are never reused and a purge removes the row from
    /// all its bitmaps (`WriteTransaction::purge`). Static segments are intersected
    /// with the live set when bound, since their saved ids are not kept in step.
    all_indexed_live: bool,
}

/// Evaluates a plan; the result is a subset of `within`, or of the live rows when
/// `within` is `None`.
fn run(plan: &Plan, within: Option<&RoaringBitmap>, live: &Live<'_>) -> RoaringBitmap {
    run_shared(plan, within, live).into_owned()
}

/// [`run`], borrowing an index bitmap that needs no restriction instead of copying it.
fn run_shared<'p>(
    plan: &'p Plan,
    within: Option<&RoaringBitmap>,
    live: &Live<'_>,
) -> Cow<'p, RoaringBitmap> {
    // The restriction of index results: `None` when the index holds live rows only.
    let restrict = within.or((!live.all_indexed_live).then_some(live.rows));
    let scope = || within.unwrap_or(live.rows);
    let restricted = |rows: &'p RoaringBitmap| match restrict {
        Some(r) => Cow::Owned(r & rows),
        None => Cow::Borrowed(rows),
    };
    match plan {
        Plan::All => Cow::Owned(scope().clone()),
        Plan::Bitmap(b) => restricted(b),
        Plan::Exists(bsi) => restricted(&bsi.exists),
        Plan::Num { bsi, cmp, value } => Cow::Owned(bsi.compare(*cmp, *value, restrict)),
        Plan::Range { bsi, low, high } => Cow::Owned(bsi.range(*low, *high, restrict)),
        Plan::And(items) => {
            let live_len = live.rows.len();
            let mut order: Vec<&Plan> = items.iter().collect();
            order.sort_by_key(|p| estimate(p, live_len));
            let mut running: Option<Cow<'p, RoaringBitmap>> = None;
            for item in order {
                let next = match running {
                    // A negated operand after the first only removes rows.
                    Some(rows) => match item {
                        Plan::Not(inner) => Cow::Owned(subtract(rows.into_owned(), inner, live)),
                        _ => Cow::Owned(run(item, Some(&rows), live)),
                    },
                    None => run_shared(item, within, live),
                };
                let empty = next.is_empty();
                running = Some(next);
                if empty {
                    break;
                }
            }
            running.unwrap_or_else(|| Cow::Owned(scope().clone()))
        }
        Plan::Or(items) => {
            let mut union: Option<RoaringBitmap> = None;
            for item in items {
                let next = run_shared(item, within, live);
                match &mut union {
                    Some(union) => *union |= &*next,
                    None => union = Some(next.into_owned()),
                }
            }
            Cow::Owned(union.unwrap_or_default())
        }
        Plan::Not(inner) => Cow::Owned(subtract(scope().clone(), inner, live)),
    }
}

/// `rows − inner`, without restricting a plain bitmap to `rows` first.
fn subtract(mut rows: RoaringBitmap, inner: &Plan, live: &Live<'_>) -> RoaringBitmap {
    match inner {
        Plan::Bitmap(b) => rows -= &**b,
        Plan::Exists(bsi) => rows -= &bsi.exists,
        _ => {
            let matched = run(inner, Some(&rows), live);
            rows -= matched;
        }
    }
    rows
}

fn binder<'s, S: Source + ?Sized>(snap: &'s S, kind: EntityKind) -> Result<Binder<'s, S>> {
    Ok(Binder {
        snap,
        kind,
        config: snap.config()?,
        stack: Vec::new(),
        today: snap.clock_now().day(),
        wide: false,
    })
}

/// Evaluates a query over the live records of a kind.
pub(crate) fn evaluate<S: Source + ?Sized>(
    snap: &S,
    kind: EntityKind,
    query: &Query,
) -> Result<RoaringBitmap> {
    let (mut rows, narrowing) = evaluate_wide(snap, kind, query)?;
    if let Some(seen) = narrowing {
        rows &= seen;
    }
    Ok(rows)
}

/// How many live records of a kind match a query: [`evaluate`]'s length, without
/// building the narrowed set.
pub(crate) fn count<S: Source + ?Sized>(snap: &S, kind: EntityKind, query: &Query) -> Result<u64> {
    let (rows, narrowing) = evaluate_wide(snap, kind, query)?;
    Ok(match narrowing {
        Some(seen) => rows.intersection_len(seen),
        None => rows.len(),
    })
}

/// The rows matching `query`, and the rows to narrow them to: a narrowing source (a
/// scoped transaction) is evaluated on its wide bitmaps and narrowed once by the
/// caller.
fn evaluate_wide<'s, S: Source + ?Sized>(
    snap: &'s S,
    kind: EntityKind,
    query: &Query,
) -> Result<(RoaringBitmap, Option<&'s RoaringBitmap>)> {
    let narrowing = snap.narrowing(kind)?;
    let mut binder = binder(snap, kind)?;
    binder.wide = narrowing.is_some();
    let plan = binder.bind(query, 0)?;
    let live = binder.load(&index::live_key(kind))?;
    let all_indexed_live = binder.load(&index::deleted_key(kind))?.is_empty();
    let rows = run(
        &plan,
        None,
        &Live {
            rows: &live,
            all_indexed_live,
        },
    );
    Ok((rows, narrowing))
}

/// `query` with the dynamic segments it names (for `kind`) replaced by their queries,
/// recursively: the same evaluation without loading and parsing them again. Static
/// segments, segments of another kind and anything nested deeper than the query depth
/// limit are left to the binder.
pub(crate) fn inline_segments<S: Source + ?Sized>(
    snap: &S,
    kind: EntityKind,
    query: &Query,
) -> Result<Query> {
    fn walk<S: Source + ?Sized>(
        snap: &S,
        kind: EntityKind,
        q: &Query,
        depth: usize,
    ) -> Result<Query> {
        let all = |items: &[Query]| -> Result<Vec<Query>> {
            items
                .iter()
                .map(|q| walk(snap, kind, q, depth + 1))
                .collect()
        };
        Ok(match q {
            Query::And(items) => Query::And(all(items)?),
            Query::Or(items) => Query::Or(all(items)?),
            Query::Not(inner) => Query::Not(Box::new(walk(snap, kind, inner, depth + 1)?)),
            Query::Segment { name, .. } if depth < MAX_QUERY_DEPTH => {
                match super::load_segment(snap, name) {
                    Ok(SavedSegment::Dynamic { kind: k, query }) if k == kind => {
                        walk(snap, kind, &query, depth + 1)?
                    }
                    _ => q.clone(),
                }
            }
            other => other.clone(),
        })
    }
    walk(snap, kind, query, 0)
}

/// Checks that a dynamic segment binds, and does not refer to itself.
pub(crate) fn check_segment<S: Source + ?Sized>(
    snap: &S,
    name: &str,
    kind: EntityKind,
    query: &Query,
) -> Result<()> {
    let mut binder = binder(snap, kind)?;
    binder.stack.push(name.to_owned());
    binder.bind(query, 0).map(|_| ())
}
