//! The runner: one database, in memory or in a file, driven step by step.

use std::sync::Arc;

use crmdb::{Clock, Database, Error, ManualClock, Timestamp, WriteTransaction};

use crate::checks::check_against_model;
use crate::engine::step;
use crate::model;
use crate::ops::Op;
use crate::reference::Model;

pub(crate) struct Harness {
    db: Option<Database>,
    clock: Arc<ManualClock>,
    path: Option<std::path::PathBuf>,
    model: Model,
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
        Harness {
            db: Some(db),
            clock,
            path,
            model: Model::default(),
        }
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("open")
    }

    pub(crate) fn run(&mut self, op: &Op) -> Result<(), String> {
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
