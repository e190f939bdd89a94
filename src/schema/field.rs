//! Field tables: the one place a built-in field exists. Each record kind declares one
//! table (its `FIELDS`): name, how the field is indexed and queried, what it refers to,
//! and how a record writes its index terms. The query binder, the index terms, the
//! referrer check of a purge, the derived indexes and the public [`FieldInfo`] list
//! all read these tables; a test checks the crate docs' field list against them.

use super::{EntityKind, Terms};

/// How a field is indexed and which literals it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// Categorical, strings; `multi` when a record can hold several values.
    Cat { multi: bool },
    /// Categorical, a record id (integer literals).
    Id,
    /// The lifecycle stage.
    Stage,
    /// Categorical `true`/`false`.
    Bool,
    /// Custom text: `exists` only.
    Text,
    /// Numeric.
    Int,
    /// Numeric, money in minor units.
    Money,
    /// Numeric, days since the epoch.
    Date,
}

impl FieldKind {
    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, FieldKind::Int | FieldKind::Money | FieldKind::Date)
    }
}

/// Writes one field's index terms of a record under the field's name.
pub(crate) type EmitTerms<R> = fn(&R, &mut Terms, &'static str);

/// One built-in field of record type `R`.
pub(crate) struct Field<R: ?Sized> {
    pub(crate) name: &'static str,
    pub(crate) kind: FieldKind,
    /// The kind of record the field's values are row ids of.
    pub(crate) refers_to: Option<EntityKind>,
    /// `None` for a derived field (`rfm.*`, `tier`, `band`): not computed from the row,
    /// written by a refresh through the transaction's derived-index interface.
    pub(crate) terms: Option<EmitTerms<R>>,
}

impl<R: ?Sized> Field<R> {
    const fn new(name: &'static str, kind: FieldKind, terms: EmitTerms<R>) -> Self {
        Field {
            name,
            kind,
            refers_to: None,
            terms: Some(terms),
        }
    }
    /// A single-valued categorical field.
    pub(crate) const fn cat(name: &'static str, terms: EmitTerms<R>) -> Self {
        Self::new(name, FieldKind::Cat { multi: false }, terms)
    }
    /// A multi-valued categorical field (tags, roles).
    pub(crate) const fn multi(name: &'static str, terms: EmitTerms<R>) -> Self {
        Self::new(name, FieldKind::Cat { multi: true }, terms)
    }
    /// A reference to records of `target`, indexed by row id.
    pub(crate) const fn id(name: &'static str, target: EntityKind, terms: EmitTerms<R>) -> Self {
        Field {
            name,
            kind: FieldKind::Id,
            refers_to: Some(target),
            terms: Some(terms),
        }
    }
    /// The lifecycle stage.
    pub(crate) const fn stage(name: &'static str, terms: EmitTerms<R>) -> Self {
        Self::new(name, FieldKind::Stage, terms)
    }
    /// A `true`/`false` field.
    pub(crate) const fn boolean(name: &'static str, terms: EmitTerms<R>) -> Self {
        Self::new(name, FieldKind::Bool, terms)
    }
    /// An integer field.
    pub(crate) const fn int(name: &'static str, terms: EmitTerms<R>) -> Self {
        Self::new(name, FieldKind::Int, terms)
    }
    /// A money field (minor units).
    pub(crate) const fn money(name: &'static str, terms: EmitTerms<R>) -> Self {
        Self::new(name, FieldKind::Money, terms)
    }
    /// A date field (days since the epoch).
    pub(crate) const fn date(name: &'static str, terms: EmitTerms<R>) -> Self {
        Self::new(name, FieldKind::Date, terms)
    }
    /// A derived field, written by a refresh rather than from the row.
    pub(crate) const fn derived(name: &'static str, kind: FieldKind) -> Self {
        Field {
            name,
            kind,
            refers_to: None,
            terms: None,
        }
    }

    pub(crate) fn info(&self) -> FieldInfo {
        let shape = match self.kind {
            FieldKind::Cat { multi: false } => FieldShape::Category,
            FieldKind::Cat { multi: true } => FieldShape::MultiCategory,
            FieldKind::Id => match self.refers_to {
                Some(target) => FieldShape::Reference(target),
                None => FieldShape::Integer,
            },
            FieldKind::Stage => FieldShape::Stage,
            FieldKind::Bool => FieldShape::Bool,
            FieldKind::Text => FieldShape::Text,
            FieldKind::Int => FieldShape::Integer,
            FieldKind::Money => FieldShape::Money,
            FieldKind::Date => FieldShape::Date,
        };
        FieldInfo {
            name: self.name,
            shape,
            derived: self.terms.is_none(),
        }
    }
}

/// How a queryable built-in field is indexed, and so which conditions and literals it
/// takes ([`EntityKind::fields`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldShape {
    /// One string value per record (`region = "shanghai"`).
    Category,
    /// Several string values per record (`tag:vip`).
    MultiCategory,
    /// Row ids of records of a kind (`owner = 12`).
    Reference(EntityKind),
    /// The lifecycle stage (`stage:active`).
    Stage,
    /// `true` or `false`.
    Bool,
    /// Free text: `exists` only.
    Text,
    /// An integer.
    Integer,
    /// Money in minor units; literals are major units (`1000`, `99.50`).
    Money,
    /// A date, compared by day (`2026-01-31`, `within 90d`).
    Date,
}

/// One queryable built-in field of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldInfo {
    /// The name used in queries, sorts and group-bys.
    pub name: &'static str,
    /// How it is indexed.
    pub shape: FieldShape,
    /// Written by a refresh (`refresh_rfm`) rather than from the record's own fields.
    pub derived: bool,
}
