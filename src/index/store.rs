//! Reading bitmaps out of redb and merging a transaction's delta into it at commit.

use redb::{ReadableTable, Table};
use roaring::RoaringBitmap;

use super::bsi::BUCKETS;
use super::{BitDelta, Bsi, IndexDelta};
use crate::codec::{self, ChunkAssembler};
use crate::error::{Error, Result};

type Key<'a> = (&'a str, u32);

/// Row ids per chunk: `1 << CHUNK_BITS`. Small enough that a one-record write rewrites
/// at most a page-sized value per touched bitmap, large enough that a million-row
/// bitmap loads from a few hundred entries.
pub(crate) const CHUNK_BITS: u32 = 12;

pub(crate) fn chunk_range(chunk: u32) -> std::ops::RangeInclusive<u32> {
    let lo = chunk << CHUNK_BITS;
    lo..=lo | ((1 << CHUNK_BITS) - 1)
}

/// A chunk's name in errors, `key@chunk`, formatted only when one is reported.
struct ChunkName<'a>(&'a str, u32);

impl std::fmt::Display for ChunkName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.0, self.1)
    }
}

/// Decodes one chunk on its own, for a write that changes it or a read of a few rows.
fn decode_chunk(key: &str, chunk: u32, bytes: &[u8]) -> Result<RoaringBitmap> {
    codec::decode_chunk(
        "bitmap chunk",
        &ChunkName(key, chunk),
        chunk_range(chunk),
        bytes,
    )
}

/// A bitmap being loaded: whole ones through the assembler, one container at a time;
/// a few chunks (the rows a commit touched) each decoded on its own, which costs less
/// than a container-sized bit array per bitmap.
enum Loading {
    Whole(ChunkAssembler),
    Few(RoaringBitmap),
}

impl Loading {
    fn new(whole: bool) -> Loading {
        if whole {
            Loading::Whole(ChunkAssembler::new())
        } else {
            Loading::Few(RoaringBitmap::new())
        }
    }

    fn add(&mut self, key: &str, chunk: u32, bytes: &[u8]) -> Result<()> {
        match self {
            Loading::Whole(assembler) => assembler.add(
                "bitmap chunk",
                &ChunkName(key, chunk),
                chunk_range(chunk),
                bytes,
            ),
            Loading::Few(bitmap) => {
                *bitmap |= decode_chunk(key, chunk, bytes)?;
                Ok(())
            }
        }
    }

    fn finish(self) -> RoaringBitmap {
        match self {
            Loading::Whole(assembler) => assembler.finish(),
            Loading::Few(bitmap) => bitmap,
        }
    }
}

/// The chunks holding the rows of `rows`.
pub(crate) fn chunks_holding(rows: &RoaringBitmap) -> Vec<u32> {
    let mut out = Vec::new();
    chunks_of(rows, &mut out);
    out
}

/// Loads the given chunks of a bitmap only (a few: the rows a commit touched).
pub(crate) fn load_chunks<T>(table: &T, key: &str, chunks: &[u32]) -> Result<RoaringBitmap>
where
    T: ReadableTable<Key<'static>, &'static [u8]>,
{
    let mut bitmap = Loading::new(false);
    for &chunk in chunks {
        if let Some(v) = table.get((key, chunk))? {
            bitmap.add(key, chunk, v.value())?;
        }
    }
    Ok(bitmap.finish())
}

/// Loads a whole bitmap (all chunks).
pub(crate) fn load_bitmap<T>(table: &T, key: &str) -> Result<RoaringBitmap>
where
    T: ReadableTable<Key<'static>, &'static [u8]>,
{
    let mut bitmap = Loading::new(true);
    for entry in table.range((key, 0u32)..=(key, u32::MAX))? {
        let (k, v) = entry?;
        bitmap.add(key, k.value().1, v.value())?;
    }
    Ok(bitmap.finish())
}

/// The first key after every key that starts with `prefix`, for prefix range scans.
/// `None` when no such string exists (the prefix is all `char::MAX`).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Loads a bit-sliced index stored under `base` (`"{kind}/{field}#"`): its slices,
/// `exists` and buckets in one range scan.
pub(crate) fn load_bsi<T>(table: &T, base: &str) -> Result<Bsi>
where
    T: ReadableTable<Key<'static>, &'static [u8]>,
{
    load_bsi_chunks(table, base, None)
}

/// Loads a numeric index, only the given chunks of it when `chunks` is given (sorted).
pub(crate) fn load_bsi_chunks<T>(table: &T, base: &str, chunks: Option<&[u32]>) -> Result<Bsi>
where
    T: ReadableTable<Key<'static>, &'static [u8]>,
{
    let mut bsi = Bsi::default();
    let end = prefix_end(base).unwrap_or_default();
    // The bitmap being read: its name, where it goes, and its chunks so far. A name's
    // chunks are adjacent in key order.
    let mut current: Option<(String, Part, Loading)> = None;
    for entry in table.range((base, 0u32)..(end.as_str(), 0u32))? {
        let (k, v) = entry?;
        let (name, chunk) = k.value();
        if chunks.is_some_and(|wanted| wanted.binary_search(&chunk).is_err()) {
            continue;
        }
        if current.as_ref().is_none_or(|(n, ..)| n != name) {
            if let Some((_, part, bitmap)) = current.take() {
                part.place(&mut bsi, bitmap.finish());
            }
            let part = Part::of(name, &name[base.len()..])?;
            current = Some((name.to_owned(), part, Loading::new(chunks.is_none())));
        }
        if let Some((_, _, bitmap)) = current.as_mut() {
            bitmap.add(name, chunk, v.value())?;
        }
    }
    if let Some((_, part, bitmap)) = current {
        part.place(&mut bsi, bitmap.finish());
    }
    bsi.trim();
    Ok(bsi)
}

/// Which bitmap of a numeric index a key names, from its suffix after the base.
#[derive(Clone, Copy)]
enum Part {
    Exists,
    Bucket(u16),
    Slice(usize),
}

impl Part {
    fn of(name: &str, suffix: &str) -> Result<Part> {
        if suffix == "e" {
            return Ok(Part::Exists);
        }
        if let Some(bucket) = suffix.strip_prefix('b') {
            return bucket
                .parse()
                .ok()
                .filter(|b| *b < BUCKETS)
                .map(Part::Bucket)
                .ok_or_else(|| Error::Corrupt {
                    what: "numeric index",
                    key: name.to_owned(),
                    reason: "bad bucket name".into(),
                });
        }
        suffix
            .parse()
            .ok()
            .filter(|b| *b < 64)
            .map(Part::Slice)
            .ok_or_else(|| Error::Corrupt {
                what: "numeric index",
                key: name.to_owned(),
                reason: "bad slice name".into(),
            })
    }

    fn place(self, bsi: &mut Bsi, bitmap: RoaringBitmap) {
        match self {
            Part::Exists => bsi.exists |= bitmap,
            Part::Bucket(bucket) => *bsi.buckets.entry(bucket).or_default() |= bitmap,
            Part::Slice(bit) => {
                if bsi.slices.len() <= bit {
                    bsi.slices.resize_with(bit + 1, RoaringBitmap::new);
                }
                bsi.slices[bit] |= bitmap;
            }
        }
    }
}

/// The distinct chunks (row id >> CHUNK_BITS) a bitmap touches.
fn chunks_of(bitmap: &RoaringBitmap, out: &mut Vec<u32>) {
    let mut next = bitmap.min();
    while let Some(v) = next {
        let chunk = v >> CHUNK_BITS;
        out.push(chunk);
        let end = *chunk_range(chunk).end();
        if end == u32::MAX {
            break;
        }
        let rank = bitmap.rank(end);
        next = u32::try_from(rank).ok().and_then(|r| bitmap.select(r));
    }
}

/// Applies one bitmap's delta, chunk by chunk.
fn merge_bitmap(
    table: &mut Table<Key<'static>, &'static [u8]>,
    key: &str,
    delta: &BitDelta,
) -> Result<()> {
    let mut chunks = Vec::new();
    chunks_of(&delta.add, &mut chunks);
    chunks_of(&delta.remove, &mut chunks);
    chunks.sort_unstable();
    chunks.dedup();
    for chunk in chunks {
        let mut window = RoaringBitmap::new();
        window.insert_range(chunk_range(chunk));
        let add = &delta.add & &window;
        let remove = &delta.remove & &window;
        let existing = match table.get((key, chunk))? {
            Some(bytes) => Some(decode_chunk(key, chunk, bytes.value())?),
            None => None,
        };
        let mut merged = match existing {
            None => add,
            Some(mut bitmap) => {
                bitmap -= &remove;
                bitmap |= &add;
                bitmap
            }
        };
        if merged.is_empty() {
            table.remove((key, chunk))?;
        } else {
            table.insert(
                (key, chunk),
                codec::encode_chunk(&mut merged, chunk_range(chunk)).as_slice(),
            )?;
        }
    }
    Ok(())
}

/// Merges a transaction's whole index delta and stamps every touched object with
/// `generation`. Called once per commit, by `txn.rs` only.
pub(crate) fn merge(
    bitmaps: &mut Table<Key<'static>, &'static [u8]>,
    generations: &mut Table<&'static str, u64>,
    delta: &IndexDelta,
    generation: u64,
) -> Result<()> {
    let mut cat_keys: Vec<&String> = delta.cats.keys().collect();
    cat_keys.sort_unstable();
    for key in cat_keys {
        merge_bitmap(bitmaps, key, &delta.cats[key])?;
        generations.insert(key.as_str(), generation)?;
    }
    let mut bases: Vec<&String> = delta.nums.keys().collect();
    bases.sort_unstable();
    for base in bases {
        let bsi = &delta.nums[base];
        merge_bitmap(bitmaps, &format!("{base}e"), &bsi.exists)?;
        for (bit, slice) in bsi.slices.iter().enumerate() {
            if !slice.is_empty() {
                merge_bitmap(bitmaps, &format!("{base}{bit}"), slice)?;
            }
        }
        for (bucket, rows) in &bsi.buckets {
            if !rows.is_empty() {
                merge_bitmap(bitmaps, &format!("{base}b{bucket}"), rows)?;
            }
        }
        generations.insert(base.as_str(), generation)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_found() {
        let bitmap: RoaringBitmap = [1, 2, 70_000, 200_000, u32::MAX].into_iter().collect();
        let mut out = Vec::new();
        chunks_of(&bitmap, &mut out);
        assert_eq!(out, vec![0, 17, 48, u32::MAX >> CHUNK_BITS]);
    }

    #[test]
    fn prefix_end_orders_after_prefix() {
        assert_eq!(prefix_end("contact/ltv#").as_deref(), Some("contact/ltv$"));
        assert!("contact/ltv#63" < prefix_end("contact/ltv#").unwrap_or_default().as_str());
    }
}
