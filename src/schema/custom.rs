//! Tenant-defined custom fields: a typed schema per entity kind, checked on every write.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{EntityKind, Money, Timestamp};
use crate::error::{Error, Result};

/// Longest accepted custom text value, in bytes.
pub(crate) const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Longest accepted field name or select option, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 64;

/// The type of a custom field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldType {
    /// Free text; indexed for `exists` only.
    Text,
    /// A signed integer; range-indexed.
    Integer,
    /// Money in minor units; range-indexed.
    Money,
    /// A date (a [`Timestamp`], indexed by day); range-indexed.
    Date,
    /// True or false; bitmap-indexed.
    Bool,
    /// One of a fixed list of options; bitmap-indexed.
    SingleSelect(Vec<String>),
    /// Any subset of a fixed list of options; bitmap-indexed.
    MultiSelect(Vec<String>),
}

impl FieldType {
    fn name(&self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Money => "money",
            FieldType::Date => "date",
            FieldType::Bool => "bool",
            FieldType::SingleSelect(_) => "single select",
            FieldType::MultiSelect(_) => "multi select",
        }
    }
}

/// A custom field declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// The name, `[a-z0-9_]`, at most 64 bytes; queried as `custom.<name>`.
    pub name: String,
    /// The type.
    pub field_type: FieldType,
    /// Whether every record of the kind must carry a value.
    pub required: bool,
}

impl FieldDef {
    /// An optional field.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> FieldDef {
        FieldDef {
            name: name.into(),
            field_type,
            required: false,
        }
    }

    /// The same field, required on every write.
    pub fn required(mut self) -> FieldDef {
        self.required = true;
        self
    }
}

/// A typed custom field value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// For [`FieldType::Text`].
    Text(String),
    /// For [`FieldType::Integer`].
    Integer(i64),
    /// For [`FieldType::Money`].
    Money(Money),
    /// For [`FieldType::Date`].
    Date(Timestamp),
    /// For [`FieldType::Bool`].
    Bool(bool),
    /// For [`FieldType::SingleSelect`].
    Select(String),
    /// For [`FieldType::MultiSelect`].
    MultiSelect(BTreeSet<String>),
}

/// The custom fields of one entity kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomSchema {
    fields: BTreeMap<String, FieldDef>,
}

pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} {} must be 1 to {MAX_NAME_BYTES} bytes of [a-z0-9_]",
            crate::error::quote(name)
        )))
    }
}

impl CustomSchema {
    /// The declared fields, by name.
    pub fn fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.values()
    }

    /// One field by name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.get(name)
    }

    /// Adds or replaces a field declaration after checking it is well formed.
    pub(crate) fn define(&mut self, def: FieldDef) -> Result<()> {
        check_name("custom field name", &def.name)?;
        if let FieldType::SingleSelect(options) | FieldType::MultiSelect(options) = &def.field_type
        {
            if options.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "select field {:?} needs at least one option",
                    def.name
                )));
            }
            let mut seen = BTreeSet::new();
            for option in options {
                if option.is_empty() || option.len() > MAX_NAME_BYTES || !seen.insert(option) {
                    return Err(Error::InvalidArgument(format!(
                        "select field {:?}: options must be distinct, non-empty and at most {MAX_NAME_BYTES} bytes",
                        def.name
                    )));
                }
            }
        }
        self.fields.insert(def.name.clone(), def);
        Ok(())
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<FieldDef> {
        self.fields.remove(name)
    }

    /// Checks a record's custom values against the schema.
    pub(crate) fn validate(
        &self,
        kind: EntityKind,
        values: &BTreeMap<String, Value>,
    ) -> Result<()> {
        for (name, value) in values {
            let Some(def) = self.fields.get(name) else {
                return Err(Error::UnknownField {
                    kind,
                    field: format!("custom.{name}"),
                });
            };
            let invalid = |reason: String| Error::InvalidField {
                kind,
                field: format!("custom.{name}"),
                reason,
            };
            match (&def.field_type, value) {
                (FieldType::Text, Value::Text(text)) => {
                    if text.len() > MAX_TEXT_BYTES {
                        return Err(invalid(format!("text longer than {MAX_TEXT_BYTES} bytes")));
                    }
                }
                (FieldType::Integer, Value::Integer(_))
                | (FieldType::Money, Value::Money(_))
                | (FieldType::Date, Value::Date(_))
                | (FieldType::Bool, Value::Bool(_)) => {}
                (FieldType::SingleSelect(options), Value::Select(choice)) => {
                    if !options.contains(choice) {
                        return Err(invalid(format!(
                            "{} is not one of {options:?}",
                            crate::error::quote(choice)
                        )));
                    }
                }
                (FieldType::MultiSelect(options), Value::MultiSelect(choices)) => {
                    if let Some(bad) = choices.iter().find(|c| !options.contains(c)) {
                        return Err(invalid(format!(
                            "{} is not one of {options:?}",
                            crate::error::quote(bad)
                        )));
                    }
                }
                (expected, _) => {
                    return Err(invalid(format!("expected a {} value", expected.name())));
                }
            }
        }
        if let Some(missing) = self
            .fields
            .values()
            .find(|def| def.required && !values.contains_key(&def.name))
        {
            return Err(Error::InvalidField {
                kind,
                field: format!("custom.{}", missing.name),
                reason: "required field is missing".into(),
            });
        }
        Ok(())
    }
}

/// Whether a custom field type is indexed as categorical bitmaps (else numeric).
pub(crate) fn custom_is_categorical(field_type: &FieldType) -> bool {
    matches!(
        field_type,
        FieldType::Text | FieldType::Bool | FieldType::SingleSelect(_) | FieldType::MultiSelect(_)
    )
}
