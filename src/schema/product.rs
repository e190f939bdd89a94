//! Products: what is sold, for quotes and product analysis.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::normalise_key;
use super::record::{FieldProblem, check_text, day, record_common, record_impl, sealed};
use super::{EntityKind, Field, Money, Timestamp, Value};

/// Something sold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Stock keeping unit, unique per database (case-insensitive).
    pub sku: String,
    /// Name.
    pub name: String,
    /// Category; indexed.
    pub category: Option<String>,
    /// List price.
    pub list_price: Money,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

record_impl!(Product, ProductId, Product);

type F = Field<Product>;

impl sealed::RecordInternal for Product {
    record_common!();

    fn unique_keys(&self) -> Vec<(&'static str, String)> {
        vec![("product.sku", normalise_key(&self.sku))]
    }

    const FIELDS: &'static [F] = &[
        F::cat("category", |p, t, f| t.cat_opt(f, p.category.as_deref())),
        F::money("list_price", |p, t, f| t.num(f, p.list_price.0)),
        F::date("created", |p, t, f| t.num_opt(f, p.created_at.map(day))),
    ];

    fn references(&self) -> Vec<(EntityKind, u32)> {
        Vec::new()
    }

    fn check(&self) -> Result<(), FieldProblem> {
        if self.sku.trim().is_empty() {
            return Err(("sku", "empty".into()));
        }
        check_text("sku", &self.sku)?;
        check_text("name", &self.name)
    }
}
