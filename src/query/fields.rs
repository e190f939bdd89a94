//! The queryable fields of each entity kind and their index shapes.

use crate::schema::{CustomSchema, EntityKind, FieldType};

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

const CAT: FieldKind = FieldKind::Cat { multi: false };
const MULTI: FieldKind = FieldKind::Cat { multi: true };

fn builtin(kind: EntityKind) -> &'static [(&'static str, FieldKind)] {
    use FieldKind::*;
    match kind {
        EntityKind::Contact => &[
            ("region", CAT),
            ("gender", CAT),
            ("source", CAT),
            ("owner", Id),
            ("account", Id),
            ("stage", Stage),
            ("role", MULTI),
            ("tag", MULTI),
            ("unsubscribed", Bool),
            ("lifetime_value", Money),
            ("order_count", Int),
            ("total_spent", Money),
            ("activity_count", Int),
            ("last_order", Date),
            ("last_activity", Date),
            ("created", Date),
            ("birth_year", Int),
            ("rfm.recency", Int),
            ("rfm.frequency", Int),
            ("rfm.monetary", Int),
            ("tier", CAT),
            ("band", CAT),
        ],
        EntityKind::Account => &[
            ("industry", CAT),
            ("region", CAT),
            ("tier", CAT),
            ("owner", Id),
            ("tag", MULTI),
            ("size", Int),
            ("created", Date),
        ],
        EntityKind::Deal => &[
            ("pipeline", CAT),
            ("stage", Stage),
            ("owner", Id),
            ("account", Id),
            ("contact", Id),
            ("participant", Id),
            ("product", Id),
            ("tag", MULTI),
            ("amount", Money),
            ("close_date", Date),
            ("created", Date),
        ],
        EntityKind::Activity => &[
            ("kind", CAT),
            ("direction", CAT),
            ("owner", Id),
            ("contact", Id),
            ("account", Id),
            ("deal", Id),
            ("at", Date),
            ("created", Date),
        ],
        EntityKind::Order => &[
            ("status", CAT),
            ("contact", Id),
            ("account", Id),
            ("product", Id),
            ("at", Date),
            ("total", Money),
            ("created", Date),
        ],
        EntityKind::Product => &[("category", CAT), ("list_price", Money), ("created", Date)],
        EntityKind::Owner => &[
            ("team", CAT),
            ("region", CAT),
            ("capacity", Int),
            ("created", Date),
        ],
        EntityKind::Task => &[
            ("status", CAT),
            ("assignee", Id),
            ("contact", Id),
            ("account", Id),
            ("deal", Id),
            ("due", Date),
            ("created", Date),
        ],
    }
}

/// Resolves a query field name to its index field name and kind.
pub(crate) fn resolve(
    kind: EntityKind,
    schema: &CustomSchema,
    name: &str,
) -> Option<(String, FieldKind)> {
    if let Some(custom) = name.strip_prefix("custom.") {
        let def = schema.field(custom)?;
        let field_kind = match def.field_type {
            FieldType::Text => FieldKind::Text,
            FieldType::Integer => FieldKind::Int,
            FieldType::Money => FieldKind::Money,
            FieldType::Date => FieldKind::Date,
            FieldType::Bool => FieldKind::Bool,
            FieldType::SingleSelect(_) => CAT,
            FieldType::MultiSelect(_) => MULTI,
        };
        return Some((name.to_owned(), field_kind));
    }
    builtin(kind)
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, k)| ((*n).to_owned(), *k))
}
