//! A record version's index terms: the `(field, value)` pairs its categorical and
//! numeric indexes hold. Records write them through their field tables; the index
//! layer diffs two versions' terms into bitmap changes.

use std::borrow::Cow;

use super::Value;

/// Most bytes in a tag.
pub(crate) const MAX_TAG_BYTES: usize = 64;

/// Checks a tag name: 1 to 64 bytes, no control characters, no leading or trailing space.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
        return Err(format!(
            "tag {} must be 1 to {MAX_TAG_BYTES} bytes",
            crate::error::quote(tag)
        ));
    }
    if tag.chars().any(char::is_control) || tag.trim() != tag {
        return Err(format!(
            "tag {} has control characters or surrounding spaces",
            crate::error::quote(tag)
        ));
    }
    Ok(())
}

/// The index terms of one record version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Terms {
    /// `(field, value)` pairs of categorical indexes.
    pub(crate) cats: Vec<(Cow<'static, str>, String)>,
    /// `(field, value)` pairs of numeric indexes.
    pub(crate) nums: Vec<(Cow<'static, str>, i64)>,
}

impl Terms {
    pub(crate) fn cat(&mut self, field: &'static str, value: &str) {
        self.cats.push((Cow::Borrowed(field), value.to_owned()));
    }

    pub(crate) fn cat_opt(&mut self, field: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.cat(field, value);
        }
    }

    pub(crate) fn cat_id(&mut self, field: &'static str, id: Option<u32>) {
        if let Some(id) = id {
            self.cats.push((Cow::Borrowed(field), id.to_string()));
        }
    }

    pub(crate) fn num(&mut self, field: &'static str, value: i64) {
        self.nums.push((Cow::Borrowed(field), value));
    }

    pub(crate) fn num_opt(&mut self, field: &'static str, value: Option<i64>) {
        if let Some(value) = value {
            self.num(field, value);
        }
    }

    /// Terms of custom fields. Text is indexed for `exists` only (an empty value).
    pub(crate) fn custom(&mut self, values: &std::collections::BTreeMap<String, Value>) {
        for (name, value) in values {
            let field = || Cow::Owned(format!("custom.{name}"));
            match value {
                Value::Text(_) => self.cats.push((field(), String::new())),
                Value::Integer(v) => self.nums.push((field(), *v)),
                Value::Money(m) => self.nums.push((field(), m.0)),
                Value::Date(t) => self.nums.push((field(), t.day())),
                Value::Bool(b) => self.cats.push((field(), b.to_string())),
                Value::Select(s) => self.cats.push((field(), s.clone())),
                Value::MultiSelect(set) => {
                    for s in set {
                        self.cats.push((field(), s.clone()));
                    }
                }
            }
        }
    }

    /// Sorts and dedups so that two versions can be diffed in one pass.
    pub(crate) fn normalise(&mut self) {
        self.cats.sort();
        self.cats.dedup();
        self.nums.sort();
        self.nums.dedup_by(|a, b| a.0 == b.0);
    }
}
