//! The data set and the write-path workloads the write and change-feed benches share.

#![allow(dead_code)]

use std::sync::Arc;

use crmdb::demo::{Generator, Rng, region_name};
use crmdb::{Builder, BulkLoad, Contact, ContactId, Database, ManualClock, Snapshot};
use redb::TableDefinition;
use redb::backends::InMemoryBackend;

pub const ROWS: TableDefinition<u32, &[u8]> = TableDefinition::new("contacts");

/// The tag toggled by the one-record transaction; no generated contact carries it.
pub const BENCH_TAG: &str = "bench_touched";

pub fn contact_count() -> u32 {
    std::env::var("CRMDB_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The data set, generated once per run.
pub struct Data {
    pub generator: Generator,
    pub contacts: Vec<Contact>,
    pub encoded: Vec<Vec<u8>>,
}

impl Data {
    pub fn new() -> Data {
        let generator = Generator::new(contact_count());
        let contacts: Vec<Contact> = (0..generator.contacts)
            .map(|i| {
                let mut contact = generator.contact(i).contact;
                contact.owner = None;
                contact.account = None;
                contact.updated_at = generator.now;
                contact
            })
            .collect();
        let encoded = contacts.iter().map(crmdb::raw::encode_record).collect();
        Data {
            generator,
            contacts,
            encoded,
        }
    }

    pub fn rows(&self) -> u64 {
        self.contacts.len() as u64
    }

    /// A builder with the database clock stopped at the generator's "now".
    pub fn builder(&self) -> Builder {
        let mut builder = Builder::new();
        builder.clock(Arc::new(ManualClock::new(self.generator.now)));
        builder
    }

    pub fn empty_crmdb(&self) -> Database {
        self.builder().in_memory().expect("in-memory crmdb")
    }

    pub fn empty_redb(&self) -> redb::Database {
        let db = redb::Builder::new()
            .set_cache_size(Builder::DEFAULT_CACHE_SIZE)
            .create_with_backend(InMemoryBackend::new())
            .expect("in-memory redb");
        let txn = db.begin_write().expect("begin");
        txn.open_table(ROWS).expect("create table");
        txn.commit().expect("commit");
        db
    }

    pub fn load_crmdb(&self, db: &Database, contacts: Vec<Contact>, batch_size: usize) {
        self.load_crmdb_with(db, contacts, batch_size, None);
    }

    /// `threads`: `None` for the default, `Some(0)` for the one-by-one loop.
    pub fn load_crmdb_with(
        &self,
        db: &Database,
        contacts: Vec<Contact>,
        batch_size: usize,
        threads: Option<usize>,
    ) {
        let mut load = BulkLoad::new(db);
        load.batch_size(batch_size);
        if let Some(threads) = threads {
            load.threads(threads);
        }
        let report = load.run(contacts, |_| {}).expect("bulk load");
        assert_eq!(
            report.inserted,
            self.rows(),
            "{:?}",
            report.rejected.first()
        );
    }

    pub fn load_redb(&self, db: &redb::Database) {
        let txn = db.begin_write().expect("begin");
        {
            let mut table = txn.open_table(ROWS).expect("table");
            for (row, bytes) in self.encoded.iter().enumerate() {
                table.insert(row as u32, bytes.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    /// Row ids spread uniformly over the data set, with a fixed seed.
    pub fn random_rows(&self, count: usize) -> Vec<u32> {
        let mut rng = Rng::new(7);
        (0..count).map(|_| rng.below(self.rows()) as u32).collect()
    }
}

pub const DEFAULT_BATCH: usize = 50_000;

/// A scratch directory under the system temp dir, removed on drop.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("crmdb-bench-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("scratch dir");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Updates the region, toggles a tag and moves the stage of one contact, and commits.
pub fn one_record_txn(db: &Database, id: ContactId, region: usize) {
    db.write(|tx| {
        let contact = tx.get(id)?;
        tx.modify(id, |c| c.region = Some(region_name(region).to_owned()))?;
        if contact.tags.contains(BENCH_TAG) {
            tx.remove_tag(id, BENCH_TAG)?;
        } else {
            tx.add_tag(id, BENCH_TAG)?;
        }
        // Legal from every stage: forward to active, or the dormant/churned return to it,
        // and active goes forward to dormant.
        let to = if contact.stage.as_str() == "active" {
            "dormant"
        } else {
            "active"
        };
        tx.move_stage(id, to)
    })
    .expect("one-record transaction");
}
