//! How an import's columns become a contact: a column mapping (file column → field,
//! custom fields included) with a transform per column, applied to a CSV row or a JSON
//! Lines object to build the body `POST /contacts` takes.
//!
//! A mapping is a JSON object naming file columns (matched trimmed and
//! case-insensitively): `"E-mail": "email"` sends a column to a field, `"Notes": null`
//! drops it, and `{"field": "tags", "split": "|"}` or `{"field": "created_at",
//! "date": "%d/%m/%Y"}` adds a transform. A column the mapping does not name goes to the
//! field of its own name, if there is one (`custom.<name>` for a custom field).

use std::collections::BTreeMap;

use crmdb::{CustomSchema, FieldType};
use serde_json::{Map, Value as Json};

use super::records::ContactIn;

/// How a field's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Text,
    Integer,
    Bool,
    /// A list, split at the column's separator.
    List,
    /// A date or time, read with the column's date format if it has one.
    Time,
}

/// The contact fields an import may set, and how each is read.
const FIELDS: [(&str, Shape); 15] = [
    ("name", Shape::Text),
    ("email", Shape::Text),
    ("phone", Shape::Text),
    ("region", Shape::Text),
    ("gender", Shape::Text),
    ("birth_year", Shape::Integer),
    ("source", Shape::Text),
    ("owner", Shape::Integer),
    ("account", Shape::Integer),
    ("stage", Shape::Text),
    ("roles", Shape::List),
    ("tags", Shape::List),
    ("unsubscribed", Shape::Bool),
    // Money is read by the field itself from its exact decimal text.
    ("lifetime_value", Shape::Text),
    ("created_at", Shape::Time),
];

/// The separator of list columns that name none.
const DEFAULT_SPLIT: &str = ";";

/// Where one file column goes.
#[derive(Debug, Clone)]
struct Column {
    /// A field of [`FIELDS`] or `custom.<name>`; `None` drops the column.
    field: Option<String>,
    split: Option<String>,
    date: Option<String>,
}

/// A column mapping; the empty mapping sends each column to the field of its name.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    columns: BTreeMap<String, Column>,
}

fn key(column: &str) -> String {
    column.trim().trim_start_matches('\u{feff}').to_lowercase()
}

fn known_field(field: &str) -> bool {
    FIELDS.iter().any(|(name, _)| *name == field)
        || field.strip_prefix("custom.").is_some_and(|n| !n.is_empty())
}

impl Mapping {
    /// Reads a mapping from its JSON object.
    ///
    /// # Errors
    /// Why it is not a mapping: not an object, an unknown field, a bad transform.
    pub fn from_json(value: &Json) -> Result<Mapping, String> {
        let object = value
            .as_object()
            .ok_or("a mapping is a JSON object of file column → field")?;
        let mut columns = BTreeMap::new();
        for (source, target) in object {
            let column = match target {
                Json::Null => Column {
                    field: None,
                    split: None,
                    date: None,
                },
                Json::String(field) => Column {
                    field: Some(field.clone()),
                    split: None,
                    date: None,
                },
                Json::Object(spec) => {
                    let text = |name: &str| -> Result<Option<String>, String> {
                        match spec.get(name) {
                            None | Some(Json::Null) => Ok(None),
                            Some(Json::String(text)) => Ok(Some(text.clone())),
                            Some(_) => Err(format!("column {source:?}: {name:?} must be text")),
                        }
                    };
                    if let Some(extra) = spec
                        .keys()
                        .find(|k| !["field", "split", "date"].contains(&k.as_str()))
                    {
                        return Err(format!(
                            "column {source:?}: unknown option {extra:?} (field, split, date)"
                        ));
                    }
                    Column {
                        field: text("field")?,
                        split: text("split")?.filter(|s| !s.is_empty()),
                        date: text("date")?,
                    }
                }
                _ => {
                    return Err(format!(
                        "column {source:?}: expected a field name, null or an object"
                    ));
                }
            };
            if let Some(field) = &column.field
                && !known_field(field)
            {
                let names: Vec<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
                return Err(format!(
                    "column {source:?}: unknown field {field:?}; expected custom.<name> or one of {}",
                    names.join(", ")
                ));
            }
            if let Some(format) = &column.date {
                check_date_format(format).map_err(|e| format!("column {source:?}: {e}"))?;
            }
            columns.insert(key(source), column);
        }
        Ok(Mapping { columns })
    }

    /// Where a file column goes: as mapped, else to the field of its name, else nowhere.
    fn column(&self, source: &str) -> Column {
        let source = key(source);
        self.columns
            .get(&source)
            .cloned()
            .unwrap_or_else(|| Column {
                field: known_field(&source).then_some(source),
                split: None,
                date: None,
            })
    }

    /// The header's columns that go to no field.
    pub fn ignored(&self, header: &[String]) -> Vec<String> {
        header
            .iter()
            .filter(|h| self.column(h).field.is_none())
            .cloned()
            .collect()
    }

    /// Whether some column of the header gives the name or the email.
    pub fn names_a_contact(&self, header: &[String]) -> bool {
        header.iter().any(|h| {
            matches!(
                self.column(h).field.as_deref(),
                Some("name") | Some("email")
            )
        })
    }

    /// A CSV row (cells in header order) as a contact; empty cells are left unset.
    ///
    /// # Errors
    /// The first cell that its field cannot read, or the contact's own refusal.
    pub fn csv_contact(
        &self,
        header: &[String],
        cells: Vec<String>,
        schema: &CustomSchema,
    ) -> Result<ContactIn, String> {
        let mut body = Body::default();
        for (source, cell) in header.iter().zip(cells) {
            let column = self.column(source);
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            if let Some(field) = &column.field {
                body.set(field, from_text(source, &column, field, cell, schema)?);
            }
        }
        body.contact(true)
    }

    /// A JSON Lines object as a contact: mapped keys are renamed and their text read as
    /// their field reads it; other keys are kept as they are (a line may be the body of
    /// `POST /contacts`).
    ///
    /// # Errors
    /// A value its field cannot read, or the contact's own refusal.
    pub fn object_contact(
        &self,
        object: Map<String, Json>,
        schema: &CustomSchema,
    ) -> Result<ContactIn, String> {
        let mut body = Body::default();
        for (source, value) in object {
            if !self.columns.contains_key(&key(&source)) {
                body.set(&source, value);
                continue;
            }
            let column = self.column(&source);
            let Some(field) = &column.field else {
                continue;
            };
            let value = match &value {
                Json::String(text) if !text.trim().is_empty() => {
                    from_text(&source, &column, field, text.trim(), schema)?
                }
                _ => value,
            };
            body.set(field, value);
        }
        body.contact(false)
    }
}

/// The request body being built.
#[derive(Default)]
struct Body {
    fields: Map<String, Json>,
    custom: Map<String, Json>,
}

impl Body {
    fn set(&mut self, field: &str, value: Json) {
        match field.strip_prefix("custom.") {
            Some(name) => {
                self.custom.insert(name.to_owned(), value);
            }
            None => {
                self.fields.insert(field.to_owned(), value);
            }
        }
    }

    /// The contact; `default_name` gives a row without a name the empty one (the
    /// contact's own checks then decide), as a CSV row may leave the column out.
    fn contact(mut self, default_name: bool) -> Result<ContactIn, String> {
        if !self.custom.is_empty() {
            let custom = self
                .fields
                .entry("custom")
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(existing) = custom {
                existing.append(&mut self.custom);
            }
        }
        if default_name && !self.fields.contains_key("name") {
            self.fields.insert("name".into(), Json::from(""));
        }
        serde_json::from_value(Json::Object(self.fields)).map_err(|e| e.to_string())
    }
}

/// How a field reads text: a built-in field by its table, a custom one by its type.
fn shape(field: &str, schema: &CustomSchema) -> Shape {
    if let Some(name) = field.strip_prefix("custom.") {
        return match schema.field(name).map(|def| &def.field_type) {
            Some(FieldType::Integer) => Shape::Integer,
            Some(FieldType::Bool) => Shape::Bool,
            Some(FieldType::Date) => Shape::Time,
            Some(FieldType::MultiSelect(_)) => Shape::List,
            // Unknown custom fields are refused by name when the contact is built.
            _ => Shape::Text,
        };
    }
    FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(Shape::Text, |(_, shape)| *shape)
}

fn from_text(
    source: &str,
    column: &Column,
    field: &str,
    text: &str,
    schema: &CustomSchema,
) -> Result<Json, String> {
    let bad = |what: &str| format!("column {source:?}: {text:?} is not {what}");
    Ok(match shape(field, schema) {
        Shape::Text => Json::from(text),
        Shape::Integer => Json::from(text.parse::<i64>().map_err(|_| bad("an integer"))?),
        Shape::Bool => Json::from(match text.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => true,
            "false" | "no" | "n" | "0" => false,
            _ => return Err(bad("true or false")),
        }),
        Shape::List => Json::from(
            text.split(column.split.as_deref().unwrap_or(DEFAULT_SPLIT))
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(Json::from)
                .collect::<Vec<_>>(),
        ),
        Shape::Time => match &column.date {
            Some(format) => Json::from(
                read_date(format, text).ok_or_else(|| bad(&format!("a date like {format:?}")))?,
            ),
            None => Json::from(text),
        },
    })
}

/// The directives a date format may use.
const DIRECTIVES: [char; 7] = ['Y', 'y', 'm', 'd', 'H', 'M', 'S'];

fn check_date_format(format: &str) -> Result<(), String> {
    let mut chars = format.chars();
    let mut seen = Vec::new();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some('%') => {}
            Some(d) if DIRECTIVES.contains(&d) => seen.push(d),
            Some(d) => {
                return Err(format!(
                    "unknown date directive %{d} (%Y %y %m %d %H %M %S)"
                ));
            }
            None => return Err("a date format cannot end in %".into()),
        }
    }
    let has = |d| seen.contains(&d);
    if !(has('Y') || has('y')) || !has('m') || !has('d') {
        return Err("a date format needs a year (%Y or %y), %m and %d".into());
    }
    Ok(())
}

/// Reads `text` with a `strftime`-style format (`%Y %y %m %d %H %M %S`, `%%`, other
/// characters literally) into `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SSZ` when the format
/// has a time of day.
fn read_date(format: &str, text: &str) -> Option<String> {
    let mut parts: BTreeMap<char, u32> = BTreeMap::new();
    let mut rest = text;
    let mut directives = format.chars();
    while let Some(c) = directives.next() {
        if c != '%' {
            rest = rest.strip_prefix(c)?;
            continue;
        }
        let directive = directives.next()?;
        if directive == '%' {
            rest = rest.strip_prefix('%')?;
            continue;
        }
        let most = if directive == 'Y' { 4 } else { 2 };
        let digits = rest
            .bytes()
            .take(most)
            .take_while(u8::is_ascii_digit)
            .count();
        if digits == 0 || (directive == 'Y' && digits != 4) {
            return None;
        }
        parts.insert(directive, rest[..digits].parse().ok()?);
        rest = &rest[digits..];
    }
    if !rest.is_empty() {
        return None;
    }
    let year = match (parts.get(&'Y'), parts.get(&'y')) {
        (Some(year), _) => *year,
        (None, Some(short)) => 2000 + short,
        (None, None) => return None,
    };
    let (month, day) = (*parts.get(&'m')?, *parts.get(&'d')?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if ['H', 'M', 'S'].iter().any(|d| parts.contains_key(d)) {
        let get = |d| parts.get(&d).copied().unwrap_or(0);
        let (hour, minute, second) = (get('H'), get('M'), get('S'));
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        return Some(format!("{date}T{hour:02}:{minute:02}:{second:02}Z"));
    }
    Some(date)
}

#[cfg(test)]
mod tests {
    use super::read_date;

    #[test]
    fn dates_are_read_by_their_format() {
        assert_eq!(
            read_date("%d/%m/%Y", "03/12/2026").as_deref(),
            Some("2026-12-03")
        );
        assert_eq!(
            read_date("%m-%d-%y", "1-2-26").as_deref(),
            Some("2026-01-02")
        );
        assert_eq!(
            read_date("%Y%m%d %H:%M", "20261203 09:05").as_deref(),
            Some("2026-12-03T09:05:00Z")
        );
        assert_eq!(read_date("%d/%m/%Y", "13/13/2026"), None);
        assert_eq!(read_date("%d/%m/%Y", "03/12/26"), None);
        assert_eq!(read_date("%d/%m/%Y", "03/12/2026 extra"), None);
    }
}
