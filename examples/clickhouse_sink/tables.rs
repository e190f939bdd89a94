//! The ClickHouse tables the sink writes, and their rows in JSONEachRow and RowBinary.
//!
//! One table per record kind, `crm_<kind>`, keyed by (tenant, id) with the commit
//! sequence as the version, `ENGINE = ReplacingMergeTree(seq, is_deleted)`: a later
//! version of a record replaces an earlier one, the same version twice is one row, and
//! `is_deleted = 1` (a record in the recycle bin, or purged) drops out under `FINAL`.
//! Columns follow the record's fields (`stats.total_spent` is `stats_total_spent`);
//! money is Int64 in minor units (fen, cents), times are `DateTime64(0, 'UTC')`, custom
//! fields and line items are JSON text. One more table, `crm_segment_members`, holds
//! each watched segment's members as a `groupBitmap` state.

use crmdb::{EntityKind, RoaringBitmap};
use serde_json::{Map, Value as Json};

use super::state;

/// Which of ClickHouse's input formats the sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonEachRow,
    /// ClickHouse's binary row format: each column's value in its binary form.
    RowBinary,
}

impl Format {
    /// The format's name in ClickHouse.
    pub fn name(self) -> &'static str {
        match self {
            Format::JsonEachRow => "JSONEachRow",
            Format::RowBinary => "RowBinary",
        }
    }

    /// The file extension of its output files.
    pub fn extension(self) -> &'static str {
        match self {
            Format::JsonEachRow => "jsonl",
            Format::RowBinary => "rowbinary",
        }
    }
}

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    NullableString,
    UInt8,
    UInt32,
    NullableUInt32,
    UInt64,
    Int64,
    NullableInt64,
    Bool,
    Time,
    NullableTime,
    Strings,
    UInt32s,
    /// Any JSON value, kept as its text.
    Json,
    /// The variant name of an externally tagged enum value (`{"Contact": 3}` → `Contact`).
    VariantName,
    /// The id inside such a value (`{"Contact": 3}` → 3).
    VariantId,
    /// A `groupBitmap` state of UInt32 ids.
    Bitmap,
}

impl Type {
    /// The ClickHouse type.
    pub fn clickhouse(self) -> &'static str {
        match self {
            Type::String | Type::Json => "String",
            Type::NullableString | Type::VariantName => "Nullable(String)",
            Type::UInt8 => "UInt8",
            Type::UInt32 => "UInt32",
            Type::NullableUInt32 | Type::VariantId => "Nullable(UInt32)",
            Type::UInt64 => "UInt64",
            Type::Int64 => "Int64",
            Type::NullableInt64 => "Nullable(Int64)",
            Type::Bool => "Bool",
            Type::Time => "DateTime64(0, 'UTC')",
            Type::NullableTime => "Nullable(DateTime64(0, 'UTC'))",
            Type::Strings => "Array(String)",
            Type::UInt32s => "Array(UInt32)",
            Type::Bitmap => "AggregateFunction(groupBitmap, UInt32)",
        }
    }
}

/// A column: its name, where its value is in the record's JSON form (a dotted path),
/// and its type.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub path: &'static str,
    pub ty: Type,
}

const fn col(name: &'static str, path: &'static str, ty: Type) -> Column {
    Column { name, path, ty }
}

/// The columns every record table starts with.
const KEY: [Column; 4] = [
    col("tenant", "", Type::String),
    col("id", "", Type::UInt32),
    col("seq", "", Type::UInt64),
    col("is_deleted", "", Type::UInt8),
];

/// The columns every record kind ends with.
const TAIL: [Column; 4] = [
    col("custom", "custom", Type::Json),
    col("created_at", "created_at", Type::NullableTime),
    col("updated_at", "updated_at", Type::Time),
    col("deleted_at", "deleted_at", Type::NullableTime),
];

/// The columns of a kind's own fields, in declaration order (before [`TAIL`]).
fn fields(kind: EntityKind) -> Vec<Column> {
    use Type::*;
    match kind {
        EntityKind::Contact => vec![
            col("name", "name", String),
            col("email", "email", NullableString),
            col("phone", "phone", NullableString),
            col("region", "region", NullableString),
            col("gender", "gender", NullableString),
            col("birth_year", "birth_year", NullableInt64),
            col("source", "source", NullableString),
            col("owner", "owner", NullableUInt32),
            col("account", "account", NullableUInt32),
            col("stage", "stage", String),
            col("roles", "roles", Strings),
            col("tags", "tags", Strings),
            col("unsubscribed", "unsubscribed", Bool),
            col("lifetime_value", "lifetime_value", Int64),
            col("stats_order_count", "stats.order_count", UInt32),
            col("stats_total_spent", "stats.total_spent", Int64),
            col("stats_last_order", "stats.last_order", NullableTime),
            col("stats_last_activity", "stats.last_activity", NullableTime),
            col("stats_activity_count", "stats.activity_count", UInt32),
            col("assigned_by", "assigned_by", NullableString),
        ],
        EntityKind::Account => vec![
            col("name", "name", String),
            col("industry", "industry", NullableString),
            col("region", "region", NullableString),
            col("size", "size", NullableInt64),
            col("tier", "tier", NullableString),
            col("owner", "owner", NullableUInt32),
            col("tags", "tags", Strings),
        ],
        EntityKind::Deal => vec![
            col("name", "name", String),
            col("pipeline", "pipeline", String),
            col("stage", "stage", String),
            col("account", "account", NullableUInt32),
            col("contact", "contact", NullableUInt32),
            col("participants", "participants", UInt32s),
            col("owner", "owner", NullableUInt32),
            col("amount", "amount", Int64),
            col("currency", "currency", String),
            col("close_date", "close_date", NullableTime),
            col(
                "probability_override",
                "probability_override",
                NullableInt64,
            ),
            col("lost_reason", "lost_reason", NullableString),
            col("line_items", "line_items", Json),
            col("tags", "tags", Strings),
        ],
        EntityKind::Activity => vec![
            col("kind", "kind", String),
            col("direction", "direction", String),
            col("subject_kind", "subject", VariantName),
            col("subject_id", "subject", VariantId),
            col("owner", "owner", NullableUInt32),
            col("at", "at", Time),
            col("outcome", "outcome", NullableString),
        ],
        EntityKind::Order => vec![
            col("contact", "contact", NullableUInt32),
            col("account", "account", NullableUInt32),
            col("at", "at", Time),
            col("status", "status", String),
            col("currency", "currency", String),
            col("line_items", "line_items", Json),
            col("total", "total", Int64),
        ],
        EntityKind::Product => vec![
            col("sku", "sku", String),
            col("name", "name", String),
            col("category", "category", NullableString),
            col("list_price", "list_price", Int64),
        ],
        EntityKind::Owner => vec![
            col("name", "name", String),
            col("email", "email", NullableString),
            col("team", "team", NullableString),
            col("region", "region", NullableString),
            col("capacity", "capacity", UInt32),
        ],
        EntityKind::Task => vec![
            col("title", "title", String),
            col("assignee", "assignee", NullableUInt32),
            col("due", "due", NullableTime),
            col("status", "status", String),
            col("related_kind", "related", VariantName),
            col("related_id", "related", VariantId),
        ],
    }
}

/// A table the sink writes.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// The record kind, or `None` for the segment table.
    pub kind: Option<EntityKind>,
    pub columns: Vec<Column>,
}

/// The table of segment members.
pub const SEGMENTS: &str = "crm_segment_members";

impl Table {
    /// The table of a record kind.
    pub fn of(kind: EntityKind) -> Table {
        let mut columns = KEY.to_vec();
        columns.extend(fields(kind));
        columns.extend(TAIL);
        Table {
            name: format!("crm_{kind}"),
            kind: Some(kind),
            columns,
        }
    }

    /// The table of watched segments' members.
    pub fn segments() -> Table {
        Table {
            name: SEGMENTS.to_owned(),
            kind: None,
            columns: vec![
                col("tenant", "", Type::String),
                col("segment", "", Type::String),
                col("kind", "", Type::String),
                col("seq", "", Type::UInt64),
                col("is_deleted", "", Type::UInt8),
                col("members", "", Type::Bitmap),
            ],
        }
    }

    /// Every table: one per kind, then the segment table.
    pub fn all() -> Vec<Table> {
        let mut tables: Vec<Table> = EntityKind::ALL.into_iter().map(Table::of).collect();
        tables.push(Table::segments());
        tables
    }

    /// `CREATE TABLE IF NOT EXISTS …`.
    pub fn ddl(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("    {} {}", c.name, c.ty.clickhouse()))
            .collect();
        let order = if self.kind.is_some() {
            "(tenant, id)"
        } else {
            "(tenant, segment)"
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n{}\n) ENGINE = ReplacingMergeTree(seq, is_deleted) ORDER BY {order}",
            self.name,
            columns.join(",\n")
        )
    }

    /// The column list as ClickHouse's `structure` argument, as rows arrive in
    /// `format`: JSONEachRow carries segment members as an array of ids.
    pub fn structure(&self, format: Format) -> String {
        self.columns
            .iter()
            .map(|c| {
                let ty = match (c.ty, format) {
                    (Type::Bitmap, Format::JsonEachRow) => "Array(UInt32)",
                    (ty, _) => ty.clickhouse(),
                };
                format!("{} {ty}", c.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What turns rows as they arrive into the table's columns.
    fn select_list(&self, format: Format) -> String {
        self.columns
            .iter()
            .map(|c| match (c.ty, format) {
                (Type::Bitmap, Format::JsonEachRow) => {
                    format!("arrayReduce('groupBitmapState', {0}) AS {0}", c.name)
                }
                _ => c.name.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The statement that inserts a body of rows sent to ClickHouse's HTTP interface.
    pub fn insert_sql(&self, format: Format) -> String {
        format!(
            "INSERT INTO {} SELECT {} FROM input({}) FORMAT {}",
            self.name,
            self.select_list(format),
            literal(&self.structure(format)),
            format.name()
        )
    }

    /// The statement that loads output files (a path or a glob) into the table.
    pub fn load_sql(&self, format: Format, path: &str) -> String {
        format!(
            "INSERT INTO {} SELECT {} FROM file({}, '{}', {})",
            self.name,
            self.select_list(format),
            literal(path),
            format.name(),
            literal(&self.structure(format))
        )
    }
}

/// `text` as a ClickHouse string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// One value of a row, checked against its column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(Json),
    Bitmap(RoaringBitmap),
}

/// A row of a table, one cell per column.
pub type Row = Vec<Cell>;

/// A record's JSON form does not fit its table's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    pub table: String,
    pub column: &'static str,
    pub found: String,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "column {} of {} cannot hold {}",
            self.column, self.table, self.found
        )
    }
}

impl std::error::Error for ShapeError {}

/// The row of a record version; without an image, every field column takes its
/// type's empty value (a purged record the sink has no image of).
///
/// # Errors
/// A field whose JSON value does not fit its column's type.
pub fn record_row(
    table: &Table,
    tenant: &str,
    id: u32,
    seq: u64,
    is_deleted: bool,
    record: Option<&Json>,
) -> Result<Row, ShapeError> {
    let mut row = vec![
        Cell::Value(Json::from(tenant)),
        Cell::Value(Json::from(id)),
        Cell::Value(Json::from(seq)),
        Cell::Value(Json::from(u8::from(is_deleted))),
    ];
    for column in &table.columns[KEY.len()..] {
        let Some(mut value) = record else {
            row.push(Cell::Value(empty(column.ty)));
            continue;
        };
        for step in column.path.split('.') {
            value = value.get(step).unwrap_or(&Json::Null);
        }
        row.push(Cell::Value(cell(table, column, value)?));
    }
    Ok(row)
}

/// A type's empty value.
fn empty(ty: Type) -> Json {
    match ty {
        Type::String | Type::Json => Json::from(""),
        Type::NullableString
        | Type::NullableUInt32
        | Type::NullableInt64
        | Type::NullableTime
        | Type::VariantName
        | Type::VariantId => Json::Null,
        Type::UInt8 | Type::UInt32 | Type::UInt64 | Type::Int64 | Type::Time => Json::from(0),
        Type::Bool => Json::Bool(false),
        Type::Strings | Type::UInt32s | Type::Bitmap => Json::Array(Vec::new()),
    }
}

/// The row of a watched segment's members (or of a segment no longer watched).
pub fn segment_row(
    tenant: &str,
    segment: &str,
    kind: EntityKind,
    seq: u64,
    members: Option<RoaringBitmap>,
) -> Row {
    vec![
        Cell::Value(Json::from(tenant)),
        Cell::Value(Json::from(segment)),
        Cell::Value(Json::from(kind.as_str())),
        Cell::Value(Json::from(seq)),
        Cell::Value(Json::from(u8::from(members.is_none()))),
        Cell::Bitmap(members.unwrap_or_default()),
    ]
}

/// `value` as the column's type.
fn cell(table: &Table, column: &Column, value: &Json) -> Result<Json, ShapeError> {
    let refuse = || ShapeError {
        table: table.name.clone(),
        column: column.name,
        found: value.to_string(),
    };
    let fits = match column.ty {
        Type::String => value.is_string(),
        Type::NullableString => value.is_string() || value.is_null(),
        Type::UInt8 => value.as_u64().is_some_and(|v| v <= u64::from(u8::MAX)),
        Type::UInt32 => value.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)),
        Type::NullableUInt32 => {
            value.is_null() || value.as_u64().is_some_and(|v| v <= u64::from(u32::MAX))
        }
        Type::UInt64 => value.is_u64(),
        Type::Int64 | Type::Time => value.is_i64(),
        Type::NullableInt64 | Type::NullableTime => value.is_i64() || value.is_null(),
        Type::Bool => value.is_boolean(),
        Type::Strings => value
            .as_array()
            .is_some_and(|a| a.iter().all(Json::is_string)),
        Type::UInt32s => value.as_array().is_some_and(|a| {
            a.iter()
                .all(|v| v.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)))
        }),
        Type::Json => true,
        Type::VariantName | Type::VariantId => {
            return match value {
                Json::Null => Ok(Json::Null),
                Json::Object(map) if map.len() == 1 => {
                    let (name, id) = map.iter().next().ok_or_else(refuse)?;
                    if column.ty == Type::VariantName {
                        Ok(Json::from(name.as_str()))
                    } else if id.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)) {
                        Ok(id.clone())
                    } else {
                        Err(refuse())
                    }
                }
                _ => Err(refuse()),
            };
        }
        Type::Bitmap => false,
    };
    if !fits {
        return Err(refuse());
    }
    Ok(match column.ty {
        Type::Json => Json::from(value.to_string()),
        _ => value.clone(),
    })
}

/// Rows of `table` in `format`.
pub fn encode_rows(table: &Table, rows: &[Row], format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        match format {
            Format::JsonEachRow => {
                let mut object = Map::new();
                for (column, cell) in table.columns.iter().zip(row) {
                    let value = match cell {
                        Cell::Value(v) => v.clone(),
                        Cell::Bitmap(ids) => Json::from(ids.iter().collect::<Vec<u32>>()),
                    };
                    object.insert(column.name.to_owned(), value);
                }
                // A map of JSON values always serialises.
                let _ = serde_json::to_writer(&mut out, &Json::Object(object));
                out.push(b'\n');
            }
            Format::RowBinary => {
                for (column, cell) in table.columns.iter().zip(row) {
                    row_binary(&mut out, column.ty, cell);
                }
            }
        }
    }
    out
}

/// One cell in RowBinary. The cell was checked against the type when the row was made.
fn row_binary(out: &mut Vec<u8>, ty: Type, cell: &Cell) {
    let value = match cell {
        Cell::Bitmap(ids) => {
            out.extend_from_slice(&state::encode(ids));
            return;
        }
        Cell::Value(v) => v,
    };
    let nullable = matches!(
        ty,
        Type::NullableString
            | Type::NullableUInt32
            | Type::NullableInt64
            | Type::NullableTime
            | Type::VariantName
            | Type::VariantId
    );
    if nullable {
        out.push(u8::from(value.is_null()));
        if value.is_null() {
            return;
        }
    }
    let string = |out: &mut Vec<u8>, s: &str| {
        state::put_varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    };
    match ty {
        Type::String | Type::NullableString | Type::VariantName | Type::Json => {
            string(out, value.as_str().unwrap_or_default());
        }
        Type::UInt8 | Type::Bool => out.push(match value {
            Json::Bool(b) => u8::from(*b),
            v => v.as_u64().unwrap_or_default() as u8,
        }),
        Type::UInt32 | Type::NullableUInt32 | Type::VariantId => {
            out.extend_from_slice(&(value.as_u64().unwrap_or_default() as u32).to_le_bytes());
        }
        Type::UInt64 => out.extend_from_slice(&value.as_u64().unwrap_or_default().to_le_bytes()),
        Type::Int64 | Type::NullableInt64 | Type::Time | Type::NullableTime => {
            out.extend_from_slice(&value.as_i64().unwrap_or_default().to_le_bytes());
        }
        Type::Strings => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            state::put_varint(out, items.len() as u64);
            for item in items {
                string(out, item.as_str().unwrap_or_default());
            }
        }
        Type::UInt32s => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            state::put_varint(out, items.len() as u64);
            for item in items {
                out.extend_from_slice(&(item.as_u64().unwrap_or_default() as u32).to_le_bytes());
            }
        }
        Type::Bitmap => {}
    }
}
