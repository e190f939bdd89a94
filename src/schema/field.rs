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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::*;

    fn t(day: i64) -> Timestamp {
        Timestamp(day * SECONDS_PER_DAY)
    }

    /// A kind, and per sample record its index terms and declared references.
    type Sample = (EntityKind, Vec<Terms>, Vec<Vec<(EntityKind, u32)>>);

    /// Records of a kind with every built-in field set (one per subject where a field
    /// holds one of several kinds).
    fn samples() -> Vec<Sample> {
        fn of<R: Record>(records: &[R]) -> Sample {
            let terms = records
                .iter()
                .map(|r| {
                    let mut terms = Terms::default();
                    r.terms(&mut terms);
                    terms
                })
                .collect();
            (
                R::KIND,
                terms,
                records.iter().map(|r| r.references()).collect(),
            )
        }
        let line = LineItem {
            product: ProductId::new(5),
            quantity: 2,
            unit_price: Money(100),
        };
        let contact = Contact {
            region: Some("r".into()),
            gender: Some("g".into()),
            source: Some("s".into()),
            owner: Some(OwnerId::new(1)),
            account: Some(AccountId::new(2)),
            stage: Stage::new("active"),
            roles: [ContactRole::Fan].into(),
            tags: ["vip".to_owned()].into(),
            lifetime_value: Money(1),
            stats: ContactStats {
                order_count: 1,
                total_spent: Money(1),
                last_order: Some(t(1)),
                last_activity: Some(t(1)),
                activity_count: 1,
            },
            birth_year: Some(1990),
            created_at: Some(t(1)),
            ..Default::default()
        };
        let account = Account {
            industry: Some("i".into()),
            region: Some("r".into()),
            size: Some(3),
            tier: Some("a".into()),
            owner: Some(OwnerId::new(1)),
            tags: ["vip".to_owned()].into(),
            created_at: Some(t(1)),
            ..Default::default()
        };
        let deal = Deal {
            stage: Stage::new("lead"),
            account: Some(AccountId::new(2)),
            contact: Some(ContactId::new(3)),
            participants: vec![ContactId::new(4)],
            owner: Some(OwnerId::new(1)),
            amount: Money(1),
            close_date: Some(t(2)),
            line_items: vec![line.clone()],
            tags: ["vip".to_owned()].into(),
            created_at: Some(t(1)),
            ..Default::default()
        };
        let activity = |subject| Activity {
            owner: Some(OwnerId::new(1)),
            created_at: Some(t(1)),
            ..Activity::new(ActivityKind::Call, Direction::Inbound, subject, t(1))
        };
        let order = Order {
            contact: Some(ContactId::new(3)),
            account: Some(AccountId::new(2)),
            at: t(1),
            line_items: vec![line],
            total: Money(200),
            created_at: Some(t(1)),
            ..Default::default()
        };
        let product = Product {
            sku: "x".into(),
            category: Some("c".into()),
            list_price: Money(1),
            created_at: Some(t(1)),
            ..Default::default()
        };
        let owner = Owner {
            team: Some("t".into()),
            region: Some("r".into()),
            capacity: 1,
            created_at: Some(t(1)),
            ..Default::default()
        };
        let task = |related| Task {
            assignee: Some(OwnerId::new(1)),
            due: Some(t(3)),
            related: Some(related),
            created_at: Some(t(1)),
            ..Default::default()
        };
        let subjects = [
            Subject::Contact(ContactId::new(3)),
            Subject::Account(AccountId::new(2)),
            Subject::Deal(DealId::new(6)),
        ];
        vec![
            of(&[contact]),
            of(&[account]),
            of(&[deal]),
            of(&subjects.map(activity)),
            of(&[order]),
            of(&[product]),
            of(&[owner]),
            of(&subjects.map(task)),
        ]
    }

    /// The field table, the index terms a record writes and the references it declares
    /// agree: every term is a table field, every non-derived field writes a term when
    /// set, and a reference field's terms are exactly the record's references.
    #[test]
    fn field_tables_agree_with_terms_and_references() {
        let all = samples();
        assert_eq!(
            all.iter().map(|s| s.0).collect::<Vec<_>>(),
            EntityKind::ALL,
            "one sample per kind"
        );
        for (kind, terms, references) in all {
            let fields = kind.fields();
            let mut written = BTreeSet::new();
            for (terms, references) in terms.iter().zip(&references) {
                let mut from_terms = BTreeSet::new();
                for (name, value) in &terms.cats {
                    written.insert(name.to_string());
                    let (field_kind, target) = kind
                        .field(name)
                        .unwrap_or_else(|| panic!("{kind} term {name} not in the table"));
                    assert!(!field_kind.is_numeric(), "{kind} {name}");
                    if let Some(target) = target {
                        from_terms.insert((target, value.parse::<u32>().expect("a row id")));
                    }
                }
                for (name, _) in &terms.nums {
                    written.insert(name.to_string());
                    let (field_kind, _) = kind
                        .field(name)
                        .unwrap_or_else(|| panic!("{kind} term {name} not in the table"));
                    assert!(field_kind.is_numeric(), "{kind} {name}");
                }
                let declared: BTreeSet<(EntityKind, u32)> = references.iter().copied().collect();
                assert_eq!(
                    from_terms, declared,
                    "{kind}: reference fields vs references()"
                );
            }
            for field in &fields {
                assert_eq!(
                    written.contains(field.name),
                    !field.derived,
                    "{kind} field {} (derived: {})",
                    field.name,
                    field.derived
                );
            }
        }
    }

    /// Every kind's referrers are the reference fields that point at it.
    #[test]
    fn referrers_come_from_reference_fields() {
        let mut owner_referrers = EntityKind::Owner.referrers();
        owner_referrers.sort();
        assert_eq!(
            owner_referrers,
            [
                (EntityKind::Contact, "owner"),
                (EntityKind::Account, "owner"),
                (EntityKind::Deal, "owner"),
                (EntityKind::Activity, "owner"),
                (EntityKind::Task, "assignee"),
            ]
        );
        assert!(EntityKind::Task.referrers().is_empty());
        assert_eq!(
            EntityKind::Product.referrers(),
            [
                (EntityKind::Deal, "product"),
                (EntityKind::Order, "product")
            ]
        );
    }
}
