//! Sorted pages with cursors, and group-by counts and sums.

use roaring::RoaringBitmap;

use super::Query;
use super::fields::{self, FieldKind};
use crate::error::{Error, Result};
use crate::index;
use crate::schema::{EntityKind, Record, RecordId};
use crate::storage::source::Source;

/// The order of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortBy {
    field: Option<String>,
    descending: bool,
}

impl SortBy {
    /// By row id (creation order), ascending.
    pub fn id() -> SortBy {
        SortBy {
            field: None,
            descending: false,
        }
    }
    /// By an indexed field, ascending; records without a value come last. Ties are
    /// broken by row id.
    pub fn field(name: impl Into<String>) -> SortBy {
        SortBy {
            field: Some(name.into()),
            descending: false,
        }
    }
    /// The same order, descending (records without a value still last).
    pub fn descending(mut self) -> SortBy {
        self.descending = true;
        self
    }
}

/// One page of records.
#[derive(Debug, Clone)]
pub struct Page<R: Record> {
    /// The records, in order.
    pub items: Vec<(R::Id, R)>,
    /// Pass to the next call for the following page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// How many records match in all.
    pub total: u64,
}

/// A group-by request: group matching records by a categorical field, optionally
/// summing a numeric field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBy {
    field: String,
    sum: Option<String>,
}

impl GroupBy {
    /// Group by a categorical field (`stage`, `owner`, `region`, `tag`, `custom.x`).
    pub fn new(field: impl Into<String>) -> GroupBy {
        GroupBy {
            field: field.into(),
            sum: None,
        }
    }
    /// Also sum a numeric field per group.
    pub fn sum(mut self, field: impl Into<String>) -> GroupBy {
        self.sum = Some(field.into());
        self
    }
}

/// A tag and how many live records carry it ([`Snapshot::tags`](crate::Snapshot::tags)).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagCount {
    /// The tag.
    pub tag: String,
    /// Live records carrying it.
    pub count: u64,
}

/// One group of a [`GroupBy`] result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The field value.
    pub value: String,
    /// Matching records with this value.
    pub count: u64,
    /// The sum of the requested numeric field over them (minor units for money, days
    /// for dates).
    pub sum: Option<i128>,
}

fn bad_cursor() -> Error {
    Error::InvalidArgument("malformed page cursor".into())
}

/// Cursor forms: `i<row>` (by id), `v<value>:<row>` (numeric), `c<row>:<value>`
/// (categorical), `n<row>` (past every valued record, among those without a value).
enum Cursor {
    Row(u32),
    Num(i64, u32),
    Cat(u32, String),
    Missing(u32),
}

fn parse_cursor(text: &str) -> Result<Cursor> {
    let (tag, rest) = text.split_at_checked(1).ok_or_else(bad_cursor)?;
    let row = |s: &str| s.parse::<u32>().map_err(|_| bad_cursor());
    Ok(match tag {
        "i" => Cursor::Row(row(rest)?),
        "n" => Cursor::Missing(row(rest)?),
        "v" => {
            let (v, r) = rest.split_once(':').ok_or_else(bad_cursor)?;
            Cursor::Num(v.parse().map_err(|_| bad_cursor())?, row(r)?)
        }
        "c" => {
            let (r, v) = rest.split_once(':').ok_or_else(bad_cursor)?;
            Cursor::Cat(row(r)?, v.to_owned())
        }
        _ => return Err(bad_cursor()),
    })
}

fn after(bitmap: &RoaringBitmap, row: u32) -> RoaringBitmap {
    let mut out = bitmap.clone();
    out.remove_range(0..=row);
    out
}

pub(crate) fn page<S: Source + ?Sized, R: Record>(
    snap: &S,
    query: &Query,
    sort: &SortBy,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<R>> {
    if limit == 0 || limit > 10_000 {
        return Err(Error::InvalidArgument(
            "page limit must be 1 to 10000".into(),
        ));
    }
    let kind = R::KIND;
    let matches = super::eval::evaluate(snap, kind, query)?;
    let total = matches.len();
    let cursor = cursor.map(parse_cursor).transpose()?;
    let (rows, next): (Vec<u32>, Option<String>) = match &sort.field {
        None => {
            let start = match cursor {
                None => matches.clone(),
                Some(Cursor::Row(r)) => after(&matches, r),
                Some(_) => return Err(bad_cursor()),
            };
            let rows: Vec<u32> = if sort.descending {
                start.iter().rev().take(limit).collect()
            } else {
                start.iter().take(limit).collect()
            };
            let rows = if sort.descending {
                // Descending by id: the cursor means "below this row".
                match &cursor {
                    Some(Cursor::Row(r)) => {
                        let mut below = matches.clone();
                        below.remove_range(*r..);
                        below.iter().rev().take(limit).collect()
                    }
                    _ => rows,
                }
            } else {
                rows
            };
            let next = (rows.len() == limit)
                .then(|| rows.last().map(|r| format!("i{r}")))
                .flatten();
            (rows, next)
        }
        Some(name) => {
            let schema = snap.config()?.schema(kind);
            let (field, field_kind) =
                fields::resolve(kind, &schema, name).ok_or_else(|| Error::UnknownField {
                    kind,
                    field: name.clone(),
                })?;
            if field_kind.is_numeric() {
                numeric_page(snap, kind, &field, &matches, sort.descending, limit, cursor)?
            } else if matches!(field_kind, FieldKind::Cat { multi: true } | FieldKind::Text) {
                return Err(Error::InvalidArgument(format!(
                    "cannot sort by multi-valued or text field {name:?}"
                )));
            } else {
                cat_page(snap, kind, &field, &matches, sort.descending, limit, cursor)?
            }
        }
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let id = R::Id::from_row(row);
        let record = snap.record(id)?.ok_or(Error::NotFound {
            kind: R::KIND,
            id: id.row(),
        })?;
        items.push((id, record));
    }
    Ok(Page {
        items,
        next_cursor: next,
        total,
    })
}

fn numeric_page<S: Source + ?Sized>(
    snap: &S,
    kind: EntityKind,
    field: &str,
    matches: &RoaringBitmap,
    descending: bool,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<u32>, Option<String>)> {
    use crate::index::bsi::Cmp;
    // `matches` is narrowed already: the wide index is as good and not narrowed again.
    let bsi = snap.wide_bsi(&index::bsi_base(kind, field))?;
    let valued = matches & &bsi.exists;
    let missing = matches - &bsi.exists;
    let (valued, missing) = match cursor {
        None => (valued, missing),
        Some(Cursor::Num(v, r)) => {
            let beyond = bsi.compare(if descending { Cmp::Lt } else { Cmp::Gt }, v, Some(&valued));
            let same = bsi.compare(Cmp::Eq, v, Some(&valued));
            (beyond | after(&same, r), missing)
        }
        Some(Cursor::Missing(r)) => (RoaringBitmap::new(), after(&missing, r)),
        Some(_) => return Err(bad_cursor()),
    };
    let top = bsi.top_k(&valued, limit as u64, descending);
    let mut rows: Vec<(i64, u32)> = top.iter().map(|r| (bsi.value(r).unwrap_or(0), r)).collect();
    rows.sort_by(|a, b| {
        if descending {
            b.0.cmp(&a.0).then(a.1.cmp(&b.1))
        } else {
            a.cmp(b)
        }
    });
    let mut out: Vec<u32> = rows.iter().map(|(_, r)| *r).collect();
    let mut next = rows.last().map(|(v, r)| format!("v{v}:{r}"));
    if out.len() < limit {
        let extra: Vec<u32> = missing.iter().take(limit - out.len()).collect();
        if let Some(last) = extra.last() {
            next = Some(format!("n{last}"));
        }
        out.extend(extra);
    }
    let next = if out.len() == limit { next } else { None };
    Ok((out, next))
}

fn cat_page<S: Source + ?Sized>(
    snap: &S,
    kind: EntityKind,
    field: &str,
    matches: &RoaringBitmap,
    descending: bool,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<u32>, Option<String>)> {
    let prefix = index::cat_prefix(kind, field);
    let mut keys = snap.keys_with_prefix(&prefix)?;
    if descending {
        keys.reverse();
    }
    let mut valued = RoaringBitmap::new();
    let mut out = Vec::new();
    let mut next = None;
    let (mut skipping, missing_after) = match &cursor {
        None => (None, None),
        Some(Cursor::Cat(r, v)) => (Some((v.clone(), *r)), None),
        Some(Cursor::Missing(r)) => (None, Some(*r)),
        Some(_) => return Err(bad_cursor()),
    };
    for key in &keys {
        let value = &key[prefix.len()..];
        let in_group = matches & &*snap.wide_bitmap(key)?;
        valued |= &in_group;
        if missing_after.is_some() {
            continue;
        }
        let in_group = match &skipping {
            Some((v, r)) if v == value => {
                let rest = after(&in_group, *r);
                skipping = None;
                rest
            }
            Some(_) => continue,
            None => in_group,
        };
        for row in in_group.iter() {
            if out.len() == limit {
                break;
            }
            out.push(row);
            next = Some(format!("c{row}:{value}"));
        }
    }
    if out.len() < limit {
        let missing = matches - &valued;
        let missing = match missing_after {
            Some(r) => after(&missing, r),
            None => missing,
        };
        for row in missing.iter().take(limit - out.len()) {
            out.push(row);
            next = Some(format!("n{row}"));
        }
    }
    let next = if out.len() == limit { next } else { None };
    Ok((out, next))
}

pub(crate) fn group_by<S: Source + ?Sized>(
    snap: &S,
    kind: EntityKind,
    query: &Query,
    group: &GroupBy,
) -> Result<Vec<Group>> {
    let schema = snap.config()?.schema(kind);
    let (field, field_kind) =
        fields::resolve(kind, &schema, &group.field).ok_or_else(|| Error::UnknownField {
            kind,
            field: group.field.clone(),
        })?;
    if field_kind.is_numeric() || field_kind == FieldKind::Text {
        return Err(Error::InvalidArgument(format!(
            "cannot group by numeric or text field {:?}",
            group.field
        )));
    }
    let sum_bsi = match &group.sum {
        None => None,
        Some(name) => {
            let (sum_field, sum_kind) =
                fields::resolve(kind, &schema, name).ok_or_else(|| Error::UnknownField {
                    kind,
                    field: name.clone(),
                })?;
            if !sum_kind.is_numeric() {
                return Err(Error::InvalidArgument(format!(
                    "cannot sum non-numeric field {name:?}"
                )));
            }
            Some(snap.wide_bsi(&index::bsi_base(kind, &sum_field))?)
        }
    };
    let matches = super::eval::evaluate(snap, kind, query)?;
    let prefix = index::cat_prefix(kind, &field);
    let mut groups = Vec::new();
    for key in snap.keys_with_prefix(&prefix)? {
        let in_group = &matches & &*snap.wide_bitmap(&key)?;
        if in_group.is_empty() {
            continue;
        }
        groups.push(Group {
            value: key[prefix.len()..].to_owned(),
            count: in_group.len(),
            sum: sum_bsi.as_ref().map(|bsi| bsi.sum(&in_group)),
        });
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    Ok(groups)
}
