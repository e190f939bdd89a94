//! The raw tables of a database file, for tests that compare two files entry by entry.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use crmdb::EntityKind;

/// Entries (key bytes, value bytes) by table name.
pub(crate) type Tables = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// Every entry of every table of a closed database file, as bytes, by table name; the
/// generation counters (per-database cache keys) are left out but for which keys exist
/// and the commit sequence.
pub(crate) fn dump(path: &Path) -> Tables {
    use redb::{Key, ReadableDatabase, ReadableTable, TableDefinition, Value};
    fn table<K: Key + 'static, V: Value + 'static>(
        txn: &redb::ReadTransaction,
        name: &str,
        out: &mut Tables,
    ) {
        let table = txn
            .open_table(TableDefinition::<K, V>::new(name))
            .expect("table");
        let mut entries = Vec::new();
        for entry in table.iter().expect("iter") {
            let (k, v) = entry.expect("entry");
            let value = if name == "bitmap_gen" && K::as_bytes(&k.value()).as_ref() != b"#sequence"
            {
                Vec::new()
            } else {
                V::as_bytes(&v.value()).as_ref().to_vec()
            };
            entries.push((K::as_bytes(&k.value()).as_ref().to_vec(), value));
        }
        out.insert(name.to_owned(), entries);
    }
    let db = redb::ReadOnlyDatabase::open(path).expect("open raw");
    let txn = db.begin_read().expect("read");
    let mut out = BTreeMap::new();
    for kind in EntityKind::ALL {
        table::<u32, &[u8]>(&txn, &format!("rows.{kind}"), &mut out);
    }
    table::<&str, &[u8]>(&txn, "meta", &mut out);
    table::<(&str, &str), u32>(&txn, "unique", &mut out);
    table::<(&str, u32), &[u8]>(&txn, "bitmaps", &mut out);
    table::<&str, u64>(&txn, "bitmap_gen", &mut out);
    table::<(u8, u32, u32), &[u8]>(&txn, "history", &mut out);
    table::<&str, &[u8]>(&txn, "segments", &mut out);
    table::<(u64, u32), &[u8]>(&txn, "changes", &mut out);
    table::<&str, u64>(&txn, "consumers", &mut out);
    table::<&str, &[u8]>(&txn, "watched", &mut out);
    table::<&str, &[u8]>(&txn, "identity", &mut out);
    out
}
