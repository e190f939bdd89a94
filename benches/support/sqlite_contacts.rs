//! The SQLite side of the write benches: the contact table a hand-written CRM would
//! keep (a unique email index, single-column indexes on the categorical and numeric
//! fields crmdb indexes, and a contact–tag table indexed by tag), loaded, updated and
//! written the way such an application would.

#![allow(dead_code)]

use std::path::Path;

use crmdb::Contact;
use rusqlite::{Connection, params};

const TABLES: &str = "
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT,
        phone TEXT,
        region TEXT,
        gender TEXT,
        birth_year INTEGER,
        source TEXT,
        stage TEXT NOT NULL,
        unsubscribed INTEGER NOT NULL,
        lifetime_value INTEGER NOT NULL,
        created INTEGER,
        updated INTEGER NOT NULL
    );
    CREATE TABLE contact_tag (
        contact_id INTEGER NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (contact_id, tag)
    ) WITHOUT ROWID;";

const INDEXES: &str = "
    CREATE UNIQUE INDEX contacts_email ON contacts (email);
    CREATE INDEX contacts_region ON contacts (region);
    CREATE INDEX contacts_gender ON contacts (gender);
    CREATE INDEX contacts_source ON contacts (source);
    CREATE INDEX contacts_stage ON contacts (stage);
    CREATE INDEX contacts_birth_year ON contacts (birth_year);
    CREATE INDEX contacts_unsubscribed ON contacts (unsubscribed);
    CREATE INDEX contacts_lifetime_value ON contacts (lifetime_value);
    CREATE INDEX contacts_created ON contacts (created);
    CREATE INDEX contact_tag_tag ON contact_tag (tag);";

const INSERT: &str =
    "INSERT INTO contacts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// An empty in-memory database with the tables and no indexes yet.
pub fn in_memory() -> Connection {
    let conn = Connection::open_in_memory().expect("sqlite in memory");
    conn.execute_batch(TABLES).expect("sqlite tables");
    conn
}

/// A database file in WAL mode with `synchronous=FULL` (every commit durable), with
/// the tables and indexes.
pub fn durable_file(path: &Path) -> Connection {
    let conn = open_durable(path);
    conn.execute_batch(TABLES).expect("sqlite tables");
    conn.execute_batch(INDEXES).expect("sqlite indexes");
    conn
}

/// Another connection to a file made by [`durable_file`].
pub fn open_durable(path: &Path) -> Connection {
    let conn = open_wal(path, "FULL");
    conn.busy_timeout(std::time::Duration::from_secs(60))
        .expect("busy timeout");
    conn
}

/// A file in WAL mode (`synchronous=NORMAL`, the usual bulk-load setting) with the
/// tables and no indexes yet.
pub fn file_for_load(path: &Path) -> Connection {
    let conn = open_wal(path, "NORMAL");
    conn.execute_batch(TABLES).expect("sqlite tables");
    conn
}

fn open_wal(path: &Path, synchronous: &str) -> Connection {
    let conn = Connection::open(path).expect("sqlite file");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", synchronous)
        .expect("synchronous");
    conn
}

fn insert_contact(
    contacts: &mut rusqlite::Statement<'_>,
    tags: &mut rusqlite::Statement<'_>,
    id: i64,
    c: &Contact,
) {
    contacts
        .execute(params![
            id,
            c.name,
            c.email,
            c.phone,
            c.region,
            c.gender,
            c.birth_year,
            c.source,
            c.stage.as_str(),
            c.unsubscribed,
            c.lifetime_value.minor(),
            c.created_at.map(|t| t.0),
            c.updated_at.0,
        ])
        .expect("insert contact");
    for tag in &c.tags {
        tags.execute(params![id, tag]).expect("insert tag");
    }
}

/// Loads every contact in one transaction, then builds the indexes: SQLite's fastest
/// way to a fully indexed table.
pub fn bulk_load(conn: &mut Connection, contacts: &[Contact]) {
    let txn = conn.transaction().expect("begin");
    {
        let mut insert = txn.prepare(INSERT).expect("prepare");
        let mut tag = txn
            .prepare("INSERT INTO contact_tag VALUES (?1, ?2)")
            .expect("prepare");
        for (id, c) in contacts.iter().enumerate() {
            insert_contact(&mut insert, &mut tag, id as i64, c);
        }
    }
    txn.execute_batch(INDEXES).expect("indexes");
    txn.commit().expect("commit");
}

/// One durable insert of a contact with its tags, in its own transaction.
pub fn insert_one(conn: &mut Connection, id: i64, c: &Contact) {
    let txn = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("begin");
    {
        let mut insert = txn.prepare_cached(INSERT).expect("prepare");
        let mut tag = txn
            .prepare_cached("INSERT INTO contact_tag VALUES (?1, ?2)")
            .expect("prepare");
        insert_contact(&mut insert, &mut tag, id, c);
    }
    txn.commit().expect("commit");
}

/// The one-record transaction of the write bench: update the region, toggle a tag,
/// move the stage, commit.
pub fn one_record(conn: &mut Connection, id: i64, region: &str, tag: &str) {
    let txn = conn.transaction().expect("begin");
    {
        let stage: String = txn
            .prepare_cached("SELECT stage FROM contacts WHERE id = ?1")
            .expect("prepare")
            .query_row(params![id], |row| row.get(0))
            .expect("select");
        let to = if stage == "active" {
            "dormant"
        } else {
            "active"
        };
        txn.prepare_cached(
            "UPDATE contacts SET region = ?2, stage = ?3, updated = updated + 1 WHERE id = ?1",
        )
        .expect("prepare")
        .execute(params![id, region, to])
        .expect("update");
        let removed = txn
            .prepare_cached("DELETE FROM contact_tag WHERE contact_id = ?1 AND tag = ?2")
            .expect("prepare")
            .execute(params![id, tag])
            .expect("delete tag");
        if removed == 0 {
            txn.prepare_cached("INSERT INTO contact_tag VALUES (?1, ?2)")
                .expect("prepare")
                .execute(params![id, tag])
                .expect("insert tag");
        }
    }
    txn.commit().expect("commit");
}
