//! `--import FILE`: contacts from CSV or JSON Lines, with a progress bar and a report.
//!
//! CSV has a header row naming any of `name,email,phone,region,source,tags,stage,
//! lifetime_value` (tags separated by `;`, lifetime value in major units). JSON Lines
//! has one contact object per line, shaped as the body of `POST /contacts`. Rows with
//! an email are upserted by it, others inserted. A refused row is reported and skipped;
//! it never aborts the import, since a refused write applies nothing of itself.

use std::path::Path;

use crmdb::{Contact, Database, Error, Snapshot, Upserted};

use super::records::{ContactIn, Resource};

/// Rows per write transaction.
const BATCH_ROWS: usize = 5_000;
/// Rejections printed in full; the rest are counted.
const REASONS_SHOWN: usize = 20;

/// What an import did.
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
}

impl ImportReport {
    /// Prints the summary and the first reasons for rejection.
    pub fn print(&self) {
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
    let rows = if is_csv {
        csv_rows(&text)?
    } else {
        json_lines(&text)
    };
    let mut report = ImportReport {
        file: path.display().to_string(),
        rows: rows.len() as u64,
        ..ImportReport::default()
    };
    let bar = super::cli::progress_bar(text.len() as u64, "bytes");
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Row> = rows.by_ref().take(BATCH_ROWS).collect();
        let end = batch.last().map_or(0, |row| row.end);
        let mut outcome = ImportReport::default();
        db.write(|tx| {
            let schema = tx.schema(crmdb::EntityKind::Contact)?;
            for row in batch {
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
        })?;
        report.inserted += outcome.inserted;
        report.updated += outcome.updated;
        report.rejected.append(&mut outcome.rejected);
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    Ok(report)
}

fn json_lines(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut end = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        end += line.len();
        if line.trim().is_empty() {
            continue;
        }
        rows.push(Row {
            line: index as u64 + 1,
            end,
            contact: serde_json::from_str::<ContactIn>(line)
                .map_err(|e| format!("not a contact object: {e}")),
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

const COLUMNS: [&str; 8] = [
    "name",
    "email",
    "phone",
    "region",
    "source",
    "tags",
    "stage",
    "lifetime_value",
];

fn csv_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut records = csv_records(text).into_iter();
    let header = match records.next() {
        Some((_, _, Ok(header))) => header,
        Some((_, _, Err(reason))) => return Err(format!("unreadable CSV header: {reason}")),
        None => return Ok(Vec::new()),
    };
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_lowercase())
        .collect();
    for name in &header {
        if !COLUMNS.contains(&name.as_str()) {
            println!("ignoring unknown CSV column {name:?}");
        }
    }
    let position = |name: &str| header.iter().position(|h| h == name);
    let columns: Vec<Option<usize>> = COLUMNS.iter().map(|c| position(c)).collect();
    if columns[0].is_none() && columns[1].is_none() {
        return Err("the CSV header names neither a name nor an email column".into());
    }
    Ok(records
        .map(|(line, end, fields)| {
            let contact = fields.and_then(|fields| {
                if fields.len() != header.len() {
                    return Err(format!(
                        "expected {} columns, found {}",
                        header.len(),
                        fields.len()
                    ));
                }
                let get = |i: usize| {
                    columns[i]
                        .and_then(|c| fields.get(c))
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                };
                let tags = get(5)
                    .map(|t| {
                        t.split(';')
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(
                    ContactIn::from_columns(get(0).unwrap_or_default(), get(1)).with_columns(
                        get(2),
                        get(3),
                        get(4),
                        tags,
                        get(6),
                        get(7),
                    ),
                )
            });
            Row { line, end, contact }
        })
        .collect())
}
