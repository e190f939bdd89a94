//! The runner: one database, in memory or in a file, driven step by step.

use std::sync::Arc;

use crmdb::feed::Batch;
use crmdb::{
    Clock, Database, EntityKind, Error, ManualClock, Query, SavedSegment, Snapshot, Timestamp,
    WriteTransaction,
};

use crate::checks::check_against_model;
use crate::engine::step;
use crate::model;
use crate::ops::Op;
use crate::reference::Model;
use crate::replica::{Replica, apply, records, replay_members};

/// The watched segments of every history: a tag, a money range with a negated stage,
/// and one nesting the first.
const WATCHED: [(&str, &str); 3] = [
    ("w_vip", "tag:vip"),
    ("w_rich", "lifetime_value >= 1 AND NOT stage:churned"),
    ("w_nested", "segment:w_vip OR region = \"shanghai\""),
];

pub(crate) struct Harness {
    db: Option<Database>,
    clock: Arc<ManualClock>,
    path: Option<std::path::PathBuf>,
    model: Model,
    /// What a consumer of the change feed has seen: every batch, the records they
    /// replay to, and the commit sequence it has read up to.
    batches: Vec<Batch>,
    replica: Replica,
    sequence: u64,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.db = None;
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn unique_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!(
        "crmdb-model-{}-{n}-{:?}.redb",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ))
}

impl Harness {
    pub(crate) fn new(file: bool) -> Harness {
        let clock = Arc::new(ManualClock::new(Timestamp(
            model::base_day() * 86_400 + 9 * 3_600,
        )));
        let path = file.then(unique_path);
        let mut builder = Database::builder();
        builder.clock(clock.clone());
        let db = match &path {
            Some(p) => builder.create(p),
            None => builder.in_memory(),
        }
        .expect("open database");
        db.write(|tx| -> crmdb::Result<()> {
            for (name, text) in WATCHED {
                let query = Query::parse(text).expect("a valid query");
                let kind = EntityKind::Contact;
                tx.save_segment(name, SavedSegment::Dynamic { kind, query })?;
                tx.watch(name)?;
            }
            Ok(())
        })
        .expect("watch segments");
        let mut harness = Harness {
            db: Some(db),
            clock,
            path,
            model: Model::default(),
            batches: Vec::new(),
            replica: Replica::new(),
            sequence: 0,
        };
        harness.check_feed(true).expect("the setup commit's batch");
        harness
    }

    /// Reads the batches committed since the last check and checks the feed's
    /// promises: sequences follow without a gap (and a step that changed the model took
    /// at least one); the record events replayed give the database's records; every
    /// watched segment's members are its evaluation and the replay of its events.
    fn check_feed(&mut self, changed: bool) -> Result<(), String> {
        let db = self.db.as_ref().expect("open");
        let fail = |e: crmdb::Error| e.to_string();
        let last = db.read(|r| r.sequence()).map_err(fail)?;
        let batches = db.changes(self.sequence, usize::MAX).map_err(fail)?;
        let sequences: Vec<u64> = batches.iter().map(|b| b.sequence).collect();
        let expected: Vec<u64> = (self.sequence + 1..=last).collect();
        if sequences != expected {
            return Err(format!(
                "batches {sequences:?} after {}, last {last}",
                self.sequence
            ));
        }
        if changed && last == self.sequence {
            return Err(format!("a changing step took no sequence (still {last})"));
        }
        for batch in &batches {
            apply(&mut self.replica, batch);
        }
        self.batches.extend(batches);
        self.sequence = last;
        let replayed = replay_members(&self.batches);
        db.read(|r| {
            let stored = records(r)?;
            if stored != self.replica {
                return Err(crmdb::Error::InvalidArgument(format!(
                    "the replayed records differ: {} replayed, {} stored",
                    self.replica.len(),
                    stored.len()
                )));
            }
            for (name, _) in WATCHED {
                let members = r.members(name)?;
                let evaluated = r.ids(EntityKind::Contact, &Query::segment(name))?;
                let replay = replayed.get(name).cloned().unwrap_or_default();
                if members != evaluated || replay != members {
                    return Err(crmdb::Error::InvalidArgument(format!(
                        "{name}: members {members:?}, evaluation {evaluated:?}, replay {replay:?}"
                    )));
                }
            }
            Ok(())
        })
        .map_err(fail)
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("open")
    }

    pub(crate) fn run(&mut self, op: &Op) -> Result<(), String> {
        let before = self.model.clone();
        self.apply_op(op)?;
        let changed = self.model != before;
        self.check_feed(changed)
    }

    fn apply_op(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Tick(days) => self.clock.advance_days(i64::from(*days)),
            Op::Reopen => {
                let path = self.path.clone().expect("file-backed");
                self.db = None;
                let mut builder = Database::builder();
                builder.clock(self.clock.clone());
                self.db = Some(builder.open(&path).map_err(|e| e.to_string())?);
            }
            Op::Txn { ops, end } => {
                let mut scratch = self.model.clone();
                let today = self.clock.now().day();
                let body = |tx: &mut WriteTransaction, scratch: &mut Model| {
                    for op in ops {
                        step(tx, op, scratch)?;
                    }
                    // Reads inside the transaction see its own writes.
                    check_against_model(tx, scratch, today)
                };
                if *end == 3 {
                    let mut failure = None;
                    let result: crmdb::Result<()> = self.db().write(|tx| {
                        failure = body(tx, &mut scratch).err();
                        Err(Error::InvalidArgument("roll back".into()))
                    });
                    if let Some(f) = failure {
                        return Err(f);
                    }
                    if !matches!(result, Err(Error::InvalidArgument(_))) {
                        return Err(format!("closure error not returned: {result:?}"));
                    }
                } else {
                    let mut tx = self.db().begin_write().map_err(|e| e.to_string())?;
                    body(&mut tx, &mut scratch)?;
                    match end {
                        0 => {
                            tx.commit().map_err(|e| e.to_string())?;
                            self.model = scratch;
                        }
                        1 => drop(tx),
                        _ => tx.abort().map_err(|e| e.to_string())?,
                    }
                }
            }
            op => {
                // A refused operation applies nothing of itself: commit anyway.
                let mut tx = self.db().begin_write().map_err(|e| e.to_string())?;
                step(&mut tx, op, &mut self.model)?;
                tx.commit().map_err(|e| e.to_string())?;
            }
        }
        let today = self.clock.now().day();
        let model = &self.model;
        let mut outcome = Ok(());
        self.db()
            .read(|r| {
                outcome = check_against_model(r, model, today);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        outcome
    }
}
