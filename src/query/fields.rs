//! Resolving a query's field name: a built-in field from its kind's field table
//! (`schema`), or `custom.<name>` from the kind's custom-field schema.

pub(crate) use crate::schema::FieldKind;
use crate::schema::{CustomSchema, EntityKind, FieldType};

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
            FieldType::SingleSelect(_) => FieldKind::Cat { multi: false },
            FieldType::MultiSelect(_) => FieldKind::Cat { multi: true },
        };
        return Some((name.to_owned(), field_kind));
    }
    kind.field(name)
        .map(|(field_kind, _)| (name.to_owned(), field_kind))
}
