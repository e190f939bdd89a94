//! Importing contacts from CSV or JSON Lines: `--import FILE` (with a progress bar and a
//! report) and `POST /import/contacts` (with a column mapping and a dry run).
//!
//! CSV has a header row; each column goes to the field of its name (`name, email,
//! phone, region, source, tags, stage, lifetime_value, …`, `custom.<name>`), or where
//! the mapping sends it, read by the mapping's transform (see `mapping.rs`). JSON Lines
//! has one contact object per line, shaped as the body of `POST /contacts`. Rows with
//! an email are upserted by it, others inserted. A refused row is reported and skipped;
//! it never aborts the import, since a refused write applies nothing of itself. A dry
//! run does all of it in one transaction and rolls it back.

use std::path::Path;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use crmdb::{Contact, CustomSchema, Database, EntityKind, Error, Snapshot, Upserted};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use super::auth::Caller;
use super::errors::{ApiError, ApiResult, QueryArgs, blocking};
use super::mapping::Mapping;
use super::records::{ContactIn, Resource};

/// Rows per write transaction.
const BATCH_ROWS: usize = 5_000;
/// Rejections printed in full; the rest are counted.
const REASONS_SHOWN: usize = 20;
/// Rejections an API answer lists; the rest are counted.
const REASONS_SENT: usize = 1_000;

/// What an import did, or would do in a dry run.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// The file imported.
    pub file: String,
    /// Rows read (header excluded).
    pub rows: u64,
    /// New contacts.
    pub inserted: u64,
    /// Contacts replaced by email.
    pub updated: u64,
    /// Refused rows: line number and reason.
    pub rejected: Vec<(u64, String)>,
    /// Columns that went to no field.
    pub ignored: Vec<String>,
}

impl ImportReport {
    /// Prints the summary and the first reasons for rejection.
    pub fn print(&self) {
        for column in &self.ignored {
            println!("ignoring unknown CSV column {column:?}");
        }
        println!(
            "imported {}: {} rows, {} inserted, {} updated, {} rejected",
            self.file,
            self.rows,
            self.inserted,
            self.updated,
            self.rejected.len()
        );
        for (line, reason) in self.rejected.iter().take(REASONS_SHOWN) {
            println!("  line {line}: {reason}");
        }
        if self.rejected.len() > REASONS_SHOWN {
            println!("  … and {} more", self.rejected.len() - REASONS_SHOWN);
        }
    }
}

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// One parsed input row: its line, where it ends in the file, and the contact or why
/// it could not be read.
struct Row {
    line: u64,
    end: usize,
    contact: Result<ContactIn, String>,
}

/// Imports a CSV (`.csv`) or JSON Lines (anything else starting with `{`) file.
///
/// # Errors
/// An unreadable file, a CSV header without a `name` or `email` column, or a storage
/// failure (batches committed before it stay committed).
pub fn import_file(db: &Database, path: &Path) -> Result<ImportReport, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_csv = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"))
        || !text.trim_start().starts_with('{');
    let format = if is_csv {
        Format::Csv
    } else {
        Format::JsonLines
    };
    let schema = db.read(|r| r.schema(EntityKind::Contact))?;
    let (rows, ignored) = parse(&text, format, &Mapping::default(), &schema)?;
    let bar = super::cli::progress_bar(text.len() as u64, "bytes");
    let mut report = run(db, rows, false, |end| bar.set_position(end as u64))?;
    bar.finish_and_clear();
    report.file = path.display().to_string();
    report.ignored = ignored;
    Ok(report)
}

/// Reads the rows of `text`, and the columns that go nowhere.
///
/// # Errors
/// An unreadable CSV header, or one that gives neither a name nor an email.
fn parse(
    text: &str,
    format: Format,
    mapping: &Mapping,
    schema: &CustomSchema,
) -> Result<(Vec<Row>, Vec<String>), String> {
    match format {
        Format::Csv => csv_rows(text, mapping, schema),
        Format::JsonLines => Ok((json_lines(text, mapping, schema), Vec::new())),
    }
}

/// Writes the rows in batches of [`BATCH_ROWS`], each its own transaction, or, for a dry
/// run, all in one transaction that is rolled back. `progress` gets the end offset of
/// each batch written.
fn run(
    db: &Database,
    rows: Vec<Row>,
    dry_run: bool,
    mut progress: impl FnMut(usize),
) -> crmdb::Result<ImportReport> {
    let mut report = ImportReport {
        rows: rows.len() as u64,
        ..ImportReport::default()
    };
    if dry_run {
        let mut tx = db.begin_write()?;
        write_rows(&mut tx, rows, &mut report)?;
        tx.abort()?;
        return Ok(report);
    }
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Row> = rows.by_ref().take(BATCH_ROWS).collect();
        let end = batch.last().map_or(0, |row| row.end);
        let mut outcome = ImportReport::default();
        db.write(|tx| write_rows(tx, batch, &mut outcome))?;
        report.inserted += outcome.inserted;
        report.updated += outcome.updated;
        report.rejected.append(&mut outcome.rejected);
        progress(end);
    }
    Ok(report)
}

/// Writes rows into one transaction, counting what each did. Only a storage failure
/// stops it; a refused row applies nothing of itself and is reported.
fn write_rows(
    tx: &mut crmdb::WriteTransaction,
    rows: Vec<Row>,
    outcome: &mut ImportReport,
) -> crmdb::Result<()> {
    let schema = tx.schema(EntityKind::Contact)?;
    for row in rows {
        let contact = match row.contact {
            Ok(input) => Contact::from_input(input, &schema),
            Err(reason) => {
                outcome.rejected.push((row.line, reason));
                continue;
            }
        };
        let written = contact.and_then(|contact| {
            if contact.email.is_some() {
                tx.upsert_contact_by_email(contact).map(|(_, how)| how)
            } else {
                tx.insert(contact).map(|_| Upserted::Inserted)
            }
        });
        match written {
            Ok(Upserted::Inserted) => outcome.inserted += 1,
            Ok(Upserted::Updated) => outcome.updated += 1,
            Err(e @ (Error::Storage(_) | Error::Poisoned | Error::Corrupt { .. })) => {
                return Err(e);
            }
            Err(e) => outcome.rejected.push((row.line, e.to_string())),
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportParams {
    /// Report what would be written, write nothing.
    #[serde(default)]
    dry_run: bool,
    /// `csv` or `jsonl`; else taken from the Content-Type.
    #[serde(default)]
    format: Option<String>,
    /// The column mapping, a JSON object (see `mapping.rs`).
    #[serde(default)]
    mapping: Option<String>,
}

fn format_of(params: &ImportParams, headers: &HeaderMap) -> Result<Format, ApiError> {
    let named = match &params.format {
        Some(format) => format.to_lowercase(),
        None => headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_lowercase())
            .unwrap_or_default(),
    };
    match named.as_str() {
        "csv" | "text/csv" => Ok(Format::Csv),
        "jsonl"
        | "ndjson"
        | "application/x-ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/json-lines" => Ok(Format::JsonLines),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "an import is text/csv or application/x-ndjson (or ?format=csv|jsonl), not {named:?}"
            ),
        )),
    }
}

/// `POST /import/contacts?dry_run=…&format=…&mapping=…` with the file as the body:
/// `{"dry_run", "rows", "inserted", "updated", "rejected_count", "rejected": [{"line",
/// "reason"}], "ignored_columns"}`.
pub(super) async fn import_contacts(
    State(db): State<Database>,
    caller: Caller,
    headers: HeaderMap,
    QueryArgs(params): QueryArgs<ImportParams>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    caller.must_see_everything()?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "unreadable_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })?;
    let format = format_of(&params, &headers)?;
    let mapping = match &params.mapping {
        None => Mapping::default(),
        Some(text) => serde_json::from_str::<JsonValue>(text)
            .map_err(|e| e.to_string())
            .and_then(|value| Mapping::from_json(&value))
            .map_err(|e| ApiError::unprocessable("invalid_mapping", e))?,
    };
    let text = String::from_utf8(body.to_vec()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!("the file is not UTF-8: {e}"),
        )
    })?;
    let dry_run = params.dry_run;
    let parsed = blocking(&db, move |db| {
        let schema = db.read(|r| r.schema(EntityKind::Contact))?;
        Ok(parse(&text, format, &mapping, &schema))
    })
    .await?;
    let (rows, ignored) = parsed.map_err(|e| ApiError::unprocessable("invalid_import", e))?;
    let report = blocking(&db, move |db| run(db, rows, dry_run, |_| {})).await?;
    Ok(axum::Json(json!({
        "dry_run": dry_run,
        "rows": report.rows,
        "inserted": report.inserted,
        "updated": report.updated,
        "rejected_count": report.rejected.len(),
        "rejected": report
            .rejected
            .iter()
            .take(REASONS_SENT)
            .map(|(line, reason)| json!({ "line": line, "reason": reason }))
            .collect::<Vec<_>>(),
        "ignored_columns": ignored,
    })))
}

fn json_lines(text: &str, mapping: &Mapping, schema: &CustomSchema) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut end = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        end += line.len();
        if line.trim().is_empty() {
            continue;
        }
        let contact = match serde_json::from_str::<JsonValue>(line) {
            Ok(JsonValue::Object(object)) => mapping
                .object_contact(object, schema)
                .map_err(|e| format!("not a contact object: {e}")),
            Ok(_) => Err("not a contact object: a line holds one JSON object".into()),
            Err(e) => Err(format!("not a contact object: {e}")),
        };
        rows.push(Row {
            line: index as u64 + 1,
            end,
            contact,
        });
    }
    rows
}

/// One CSV record: first line, end offset, fields.
type CsvRecord = (u64, usize, Result<Vec<String>, String>);

/// Splits RFC 4180 CSV: quoted fields may hold commas, quotes (`""`) and newlines.
fn csv_records(text: &str) -> Vec<CsvRecord> {
    let mut records = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut line, mut row_line) = (1u64, 1u64);
    let mut in_quotes = false;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek().is_some_and(|(_, next)| *next == '"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                let fields = std::mem::take(&mut row);
                if !(fields.len() == 1 && fields[0].trim().is_empty()) {
                    records.push((row_line, at + 1, Ok(fields)));
                }
                line += 1;
                row_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        records.push((
            row_line,
            text.len(),
            Err("unterminated quoted field".into()),
        ));
    } else if !field.is_empty() || !row.is_empty() {
        row.push(field);
        records.push((row_line, text.len(), Ok(row)));
    }
    records
}

fn csv_rows(
    text: &str,
    mapping: &Mapping,
    schema: &CustomSchema,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let mut records = csv_records(text).into_iter();
    let header = match records.next() {
        Some((_, _, Ok(header))) => header,
        Some((_, _, Err(reason))) => return Err(format!("unreadable CSV header: {reason}")),
        None => return Ok((Vec::new(), Vec::new())),
    };
    if !mapping.names_a_contact(&header) {
        return Err("the CSV header names neither a name nor an email column".into());
    }
    let rows = records
        .map(|(line, end, fields)| {
            let contact = fields.and_then(|fields| {
                if fields.len() != header.len() {
                    return Err(format!(
                        "expected {} columns, found {}",
                        header.len(),
                        fields.len()
                    ));
                }
                mapping.csv_contact(&header, fields, schema)
            });
            Row { line, end, contact }
        })
        .collect();
    Ok((rows, mapping.ignored(&header)))
}
