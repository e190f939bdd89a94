//! Reading a table the same way from either transaction type: the entries the
//! `Source` implementations of `snapshot.rs` return, and bitmaps through the cache.

use std::sync::Arc;

use redb::ReadableTable;
use roaring::RoaringBitmap;

use super::Shared;
use crate::index::Bsi;
use crate::index::cache::Cached;

use crate::codec;
use crate::error::Result;
use crate::index::store;
use crate::lifecycle::StageChange;
use crate::schema::EntityKind;

pub(super) fn consumers_in<T: ReadableTable<&'static str, u64>>(
    table: &T,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (name, position) = entry?;
        out.push((name.value().to_owned(), position.value()));
    }
    Ok(out)
}

pub(super) fn watched_in<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
) -> Result<Vec<(String, EntityKind)>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (name, bytes) = entry?;
        let name = name.value().to_owned();
        let kind = codec::decode("watched", &name, bytes.value())?;
        out.push((name, kind));
    }
    Ok(out)
}

pub(super) fn keys_in<G: ReadableTable<&'static str, u64>>(
    generations: &G,
    prefix: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let iter = match store::prefix_end(prefix) {
        Some(end) => generations.range(prefix..end.as_str())?,
        None => generations.range(prefix..)?,
    };
    for entry in iter {
        let (key, _) = entry?;
        out.push(key.value().to_owned());
    }
    Ok(out)
}

pub(super) fn history_in<T: ReadableTable<(u8, u32, u32), &'static [u8]>>(
    table: &T,
    kind: EntityKind,
    row: u32,
) -> Result<Vec<StageChange>> {
    let k = kind as u8;
    let mut out = Vec::new();
    for entry in table.range((k, row, 0)..=(k, row, u32::MAX))? {
        let (key, value) = entry?;
        let (_, _, seq) = key.value();
        out.push(codec::decode(
            "history",
            &format!("{kind}/{row}/{seq}"),
            value.value(),
        )?);
    }
    Ok(out)
}

pub(super) fn entries_in<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in table.range(prefix..)? {
        let (key, value) = entry?;
        if !key.value().starts_with(prefix) {
            break;
        }
        out.push((key.value().to_owned(), value.value().to_vec()));
    }
    Ok(out)
}

pub(super) fn all_rows<T: ReadableTable<u32, &'static [u8]>>(
    table: &T,
) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

pub(super) fn segment_names_in<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        out.push(entry?.0.value().to_owned());
    }
    Ok(out)
}

fn empty_bitmap() -> Arc<RoaringBitmap> {
    Arc::new(RoaringBitmap::new())
}

/// Loads a categorical bitmap through the shared cache.
pub(super) fn cached_bitmap<G, B>(
    inner: &Shared,
    generations: &G,
    bitmaps: &B,
    key: &str,
) -> Result<Arc<RoaringBitmap>>
where
    G: ReadableTable<&'static str, u64>,
    B: ReadableTable<(&'static str, u32), &'static [u8]>,
{
    let Some(generation) = generations.get(key)?.map(|g| g.value()) else {
        return Ok(empty_bitmap());
    };
    if let Some(Cached::Bitmap(bitmap)) = inner.cache.get(key, generation) {
        return Ok(bitmap);
    }
    let bitmap = Arc::new(store::load_bitmap(bitmaps, key)?);
    inner
        .cache
        .insert(key, generation, Cached::Bitmap(Arc::clone(&bitmap)));
    Ok(bitmap)
}

/// Loads a numeric index through the shared cache.
pub(super) fn cached_bsi<G, B>(
    inner: &Shared,
    generations: &G,
    bitmaps: &B,
    base: &str,
) -> Result<Arc<Bsi>>
where
    G: ReadableTable<&'static str, u64>,
    B: ReadableTable<(&'static str, u32), &'static [u8]>,
{
    let Some(generation) = generations.get(base)?.map(|g| g.value()) else {
        return Ok(Arc::new(Bsi::default()));
    };
    if let Some(Cached::Bsi(bsi)) = inner.cache.get(base, generation) {
        return Ok(bsi);
    }
    let bsi = Arc::new(store::load_bsi(bitmaps, base)?);
    inner
        .cache
        .insert(base, generation, Cached::Bsi(Arc::clone(&bsi)));
    Ok(bsi)
}
