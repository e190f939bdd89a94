//! Following tenants' change feeds into ClickHouse: a durable consumer per tenant, rows
//! written through a [`Destination`] (ClickHouse's HTTP interface, or files for batch
//! loading), acknowledged only once the destination has them.
//!
//! A tenant the sink has not seen is first copied whole from one read snapshot at
//! sequence `S`: every record at version `S`, every watched segment's members. Only
//! then is the consumer registered at `S`, so a crash during the copy copies again.
//! After that each delivery reads the batches after the acknowledged sequence from one
//! snapshot, writes each record's last version in each batch (version = the batch's
//! sequence), then the members of every watched segment those batches changed, as of
//! the same snapshot, and acknowledges. A delivery cut short is delivered again from the
//! last acknowledgement; ReplacingMergeTree keeps one row per (tenant, id) and version,
//! so a batch delivered twice changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crmdb::feed::Change;
use crmdb::{
    Account, Activity, AnyRecord, Contact, Database, Deal, EntityKind, Order, Owner, Product,
    ReadTransaction, Record, RecordId, Snapshot, Task,
};
use serde::Serialize;

use super::tables::{self, Format, Row, ShapeError, Table};

/// The name of the sink's durable consumer in every tenant, unless told otherwise.
pub const CONSUMER: &str = "clickhouse_sink";

/// The most batches read from a tenant at once.
const PAGE: usize = 500;

/// What went wrong in a delivery. Nothing is acknowledged after an error.
#[derive(Debug)]
pub enum SinkError {
    /// The database refused or failed.
    Crm(crmdb::Error),
    /// A record did not fit its table.
    Shape(ShapeError),
    /// Writing a file failed.
    Io(std::io::Error),
    /// ClickHouse answered with something other than 200.
    Http { status: u16, body: String },
    /// The destination address could not be used.
    Address(String),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Crm(e) => write!(f, "crmdb: {e}"),
            SinkError::Shape(e) => write!(f, "{e}"),
            SinkError::Io(e) => write!(f, "i/o: {e}"),
            SinkError::Http { status, body } => write!(f, "ClickHouse answered {status}: {body}"),
            SinkError::Address(a) => write!(f, "bad ClickHouse address {a}"),
        }
    }
}

impl std::error::Error for SinkError {}

impl From<crmdb::Error> for SinkError {
    fn from(e: crmdb::Error) -> Self {
        SinkError::Crm(e)
    }
}

impl From<ShapeError> for SinkError {
    fn from(e: ShapeError) -> Self {
        SinkError::Shape(e)
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError::Io(e)
    }
}

/// One body of rows for one table, covering a tenant's sequences `from..=to`.
#[derive(Debug)]
pub struct Body<'a> {
    pub table: &'a Table,
    pub tenant: &'a str,
    pub from: u64,
    pub to: u64,
    pub format: Format,
    pub bytes: Vec<u8>,
    pub rows: usize,
}

/// Where rows go. `write` returns only once the destination has the rows for good: the
/// sink acknowledges batches after it.
pub trait Destination {
    /// Writes one body.
    ///
    /// # Errors
    /// Whatever kept the rows from being stored; the delivery stops unacknowledged.
    fn write(&mut self, body: &Body<'_>) -> Result<(), SinkError>;
}

/// Files for batch loading: `<dir>/<table>/<tenant>-<from>-<to>.<ext>`, each written to
/// a temporary name, synced and renamed, so a file is whole or absent. Writing the same
/// range again replaces the file with the same rows. `<dir>/schema.sql` holds the table
/// definitions and the statements that load the files.
#[derive(Debug)]
pub struct FileDestination {
    dir: PathBuf,
}

impl FileDestination {
    /// Files under `dir` (created, with `schema.sql`, if missing).
    ///
    /// # Errors
    /// The directory or `schema.sql` cannot be written.
    pub fn new(dir: impl AsRef<Path>, format: Format) -> Result<FileDestination, SinkError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let mut schema = String::from(
            "-- Tables for crmdb's ClickHouse sink, and the statements that load its files.\n",
        );
        for table in Table::all() {
            schema.push_str(&table.ddl());
            schema.push_str(";\n");
        }
        for table in Table::all() {
            let glob = format!("{}/*.{}", table.name, format.extension());
            schema.push_str(&table.load_sql(format, &glob));
            schema.push_str(";\n");
        }
        std::fs::write(dir.join("schema.sql"), schema)?;
        Ok(FileDestination { dir })
    }
}

impl Destination for FileDestination {
    fn write(&mut self, body: &Body<'_>) -> Result<(), SinkError> {
        let dir = self.dir.join(&body.table.name);
        std::fs::create_dir_all(&dir)?;
        let name = format!(
            "{}-{:020}-{:020}.{}",
            body.tenant,
            body.from,
            body.to,
            body.format.extension()
        );
        let temporary = dir.join(format!(".{name}.partial"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&body.bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, dir.join(&name))?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    }
}

/// ClickHouse's HTTP interface (`http://host:port`, no TLS): one `POST` per body, the
/// insert statement in the `query` parameter. ClickHouse answers 200 once the insert is
/// stored.
#[derive(Debug)]
pub struct HttpDestination {
    host: String,
    address: std::net::SocketAddr,
    user: Option<(String, String)>,
    timeout: Duration,
}

impl HttpDestination {
    /// A ClickHouse server at `url`, optionally with a user and password.
    ///
    /// # Errors
    /// [`SinkError::Address`] for anything but `http://host[:port][/]`.
    pub fn new(url: &str, user: Option<(String, String)>) -> Result<HttpDestination, SinkError> {
        let bad = || SinkError::Address(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let with_port = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:8123")
        };
        let address = with_port
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(HttpDestination {
            host: with_port,
            address,
            user,
            timeout: Duration::from_secs(30),
        })
    }
}

/// `text` with everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Destination for HttpDestination {
    fn write(&mut self, body: &Body<'_>) -> Result<(), SinkError> {
        let mut stream = TcpStream::connect_timeout(&self.address, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let query = percent_encode(&body.table.insert_sql(body.format));
        let mut head = format!(
            "POST /?query={query} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\
             Content-Type: application/octet-stream\r\nConnection: close\r\n",
            self.host,
            body.bytes.len()
        );
        if let Some((user, password)) = &self.user {
            head.push_str(&format!(
                "X-ClickHouse-User: {user}\r\nX-ClickHouse-Key: {password}\r\n"
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body.bytes)?;
        stream.flush()?;
        // The answer is short: a status line, headers, and an error text at most.
        let mut answer = Vec::new();
        stream.take(1 << 20).read_to_end(&mut answer)?;
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| text.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .unwrap_or(0);
        if status == 200 {
            Ok(())
        } else {
            let body = text
                .split_once("\r\n\r\n")
                .map_or("", |(_, b)| b)
                .trim()
                .chars()
                .take(500)
                .collect();
            Err(SinkError::Http { status, body })
        }
    }
}

/// What one delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The sequence acknowledged before.
    pub after: u64,
    /// The sequence acknowledged now.
    pub through: u64,
    /// Whether the tenant was copied whole (its first delivery).
    pub bootstrapped: bool,
    /// Record rows written.
    pub rows: usize,
    /// Segment states written.
    pub segments: usize,
}

/// The sink: a destination and a format.
pub struct Sink<D: Destination> {
    pub destination: D,
    pub format: Format,
    consumer: String,
    tables: BTreeMap<EntityKind, Table>,
    segments: Table,
}

impl<D: Destination> Sink<D> {
    /// A sink writing `format` to `destination`.
    pub fn new(destination: D, format: Format) -> Sink<D> {
        Sink {
            destination,
            format,
            consumer: CONSUMER.to_owned(),
            tables: EntityKind::ALL
                .into_iter()
                .map(|k| (k, Table::of(k)))
                .collect(),
            segments: Table::segments(),
        }
    }

    /// The sink under another consumer name (`[a-z0-9_]`), for a second sink to other
    /// tables or another ClickHouse: each name follows the feed on its own.
    pub fn consumer(mut self, name: &str) -> Sink<D> {
        self.consumer = name.to_owned();
        self
    }

    /// Brings ClickHouse up to date with one tenant and acknowledges what it wrote.
    ///
    /// # Errors
    /// A [`SinkError`]; nothing is acknowledged then, and the next delivery starts over
    /// from the last acknowledgement.
    pub fn deliver(&mut self, tenant: &str, db: &Database) -> Result<Delivery, SinkError> {
        let snapshot = db.begin_read()?;
        let last = snapshot.sequence()?;
        let acknowledged = snapshot
            .consumers()?
            .into_iter()
            .find(|c| c.name == self.consumer)
            .map(|c| c.acknowledged);
        let Some(after) = acknowledged else {
            let delivery = self.bootstrap(tenant, &snapshot)?;
            drop(snapshot);
            db.write(|tx| tx.register_consumer(&self.consumer, last))?;
            return Ok(delivery);
        };
        if after == last {
            return Ok(Delivery {
                after,
                through: last,
                ..Delivery::default()
            });
        }
        let delivery = self.deliver_from(tenant, &snapshot, after)?;
        drop(snapshot);
        db.write(|tx| tx.acknowledge(&self.consumer, last))?;
        Ok(delivery)
    }

    /// Writes everything after `after` up to the snapshot's last commit, without
    /// acknowledging: what a delivery does before its acknowledgement, and what a
    /// redelivery after a crash does again.
    ///
    /// # Errors
    /// As [`Sink::deliver`].
    pub fn deliver_from(
        &mut self,
        tenant: &str,
        snapshot: &ReadTransaction,
        after: u64,
    ) -> Result<Delivery, SinkError> {
        let last = snapshot.sequence()?;
        let mut delivery = Delivery {
            after,
            through: last,
            ..Delivery::default()
        };
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut position = after;
        while position < last {
            let batches = snapshot.changes(position, PAGE)?;
            let Some(end) = batches.last().map(|b| b.sequence) else {
                break;
            };
            // Each record's last version in each batch.
            let mut versions: BTreeMap<(EntityKind, u32, u64), (bool, Option<AnyRecord>)> =
                BTreeMap::new();
            for batch in &batches {
                for event in &batch.events {
                    let key = |kind, id| (kind, id, batch.sequence);
                    match &event.change {
                        Change::Inserted { id, record }
                        | Change::Updated {
                            id, after: record, ..
                        }
                        | Change::Deleted { id, record }
                        | Change::Restored { id, record } => {
                            let deleted = record.deleted_at().is_some();
                            versions
                                .insert(key(record.kind(), *id), (deleted, Some(record.clone())));
                        }
                        Change::Purged { kind, id } => {
                            // The last image, marked deleted, keeps the row's columns.
                            let entry = versions.entry(key(*kind, *id)).or_insert((true, None));
                            entry.0 = true;
                        }
                        Change::Watched { segment }
                        | Change::Unwatched { segment }
                        | Change::Entered { segment, .. }
                        | Change::Left { segment, .. } => {
                            touched.insert(segment.clone());
                        }
                        _ => {}
                    }
                }
            }
            let mut rows: BTreeMap<EntityKind, Vec<Row>> = BTreeMap::new();
            for ((kind, id, seq), (deleted, record)) in versions {
                let table = &self.tables[&kind];
                // A purge without an image in this page: only the key columns count once
                // the row is deleted, so the others take their empty values.
                let image = record.map(|r| serde_json::to_value(&r).unwrap_or_default());
                rows.entry(kind).or_default().push(tables::record_row(
                    table,
                    tenant,
                    id,
                    seq,
                    deleted,
                    image.as_ref(),
                )?);
            }
            for (kind, rows) in rows {
                delivery.rows += rows.len();
                self.write_rows(
                    &self.tables[&kind].clone(),
                    tenant,
                    position + 1,
                    end,
                    &rows,
                )?;
            }
            position = end;
        }
        delivery.segments = self.write_segments(tenant, snapshot, Some(&touched), after + 1)?;
        Ok(delivery)
    }

    /// Copies a tenant whole from one snapshot.
    fn bootstrap(
        &mut self,
        tenant: &str,
        snapshot: &ReadTransaction,
    ) -> Result<Delivery, SinkError> {
        let last = snapshot.sequence()?;
        let mut delivery = Delivery {
            after: 0,
            through: last,
            bootstrapped: true,
            ..Delivery::default()
        };
        delivery.rows += self.copy_kind::<Contact>(tenant, snapshot, last)?;
        delivery.rows += self.copy_kind::<Account>(tenant, snapshot, last)?;
        delivery.rows += self.copy_kind::<Deal>(tenant, snapshot, last)?;
        delivery.rows += self.copy_kind::<Activity>(tenant, snapshot, last)?;
        delivery.rows += self.copy_kind::<Order>(tenant, snapshot, last)?;
        delivery.rows += self.copy_kind::<Product>(tenant, snapshot, last)?;
        delivery.rows += self.copy_kind::<Owner>(tenant, snapshot, last)?;
        delivery.rows += self.copy_kind::<Task>(tenant, snapshot, last)?;
        delivery.segments = self.write_segments(tenant, snapshot, None, 0)?;
        Ok(delivery)
    }

    fn copy_kind<R: Record + Serialize>(
        &mut self,
        tenant: &str,
        snapshot: &ReadTransaction,
        last: u64,
    ) -> Result<usize, SinkError> {
        let table = self.tables[&R::KIND].clone();
        let mut rows = Vec::new();
        for (id, record) in snapshot.records::<R>()? {
            let image = serde_json::to_value(&record).unwrap_or_default();
            let deleted = record.deleted_at().is_some();
            rows.push(tables::record_row(
                &table,
                tenant,
                id.row(),
                last,
                deleted,
                Some(&image),
            )?);
        }
        self.write_rows(&table, tenant, 0, last, &rows)?;
        Ok(rows.len())
    }

    /// Writes the members of the watched segments in `only` (every watched segment when
    /// `None`) as of the snapshot, and a deletion for those no longer watched.
    fn write_segments(
        &mut self,
        tenant: &str,
        snapshot: &ReadTransaction,
        only: Option<&BTreeSet<String>>,
        from: u64,
    ) -> Result<usize, SinkError> {
        let last = snapshot.sequence()?;
        let watched: BTreeMap<String, EntityKind> = snapshot.watched()?.into_iter().collect();
        let mut rows = Vec::new();
        for (name, kind) in &watched {
            if only.is_none_or(|o| o.contains(name)) {
                let members = snapshot.members(name)?;
                rows.push(tables::segment_row(
                    tenant,
                    name,
                    *kind,
                    last,
                    Some(members),
                ));
            }
        }
        for name in only.into_iter().flatten() {
            if !watched.contains_key(name) {
                // Unwatched: the kind no longer matters once the row is deleted.
                rows.push(tables::segment_row(
                    tenant,
                    name,
                    EntityKind::Contact,
                    last,
                    None,
                ));
            }
        }
        let table = self.segments.clone();
        self.write_rows(&table, tenant, from, last, &rows)?;
        Ok(rows.len())
    }

    fn write_rows(
        &mut self,
        table: &Table,
        tenant: &str,
        from: u64,
        to: u64,
        rows: &[Row],
    ) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let body = Body {
            table,
            tenant,
            from,
            to,
            format: self.format,
            bytes: tables::encode_rows(table, rows, self.format),
            rows: rows.len(),
        };
        self.destination.write(&body)
    }
}
