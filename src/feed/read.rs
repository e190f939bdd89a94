//! Reading batches back from the `changes` table, for both transaction types.

use redb::ReadableTable;

use super::Batch;
use super::stored::decode_batch;
use crate::error::{Error, Result};

/// The stored parts of one batch, by part number.
type Parts = Vec<(u32, Vec<u8>)>;

/// The oldest sequence the log still holds, or `last + 1` when it holds none.
pub(crate) fn oldest_kept<T>(table: &T, last: u64) -> Result<u64>
where
    T: ReadableTable<(u64, u32), &'static [u8]>,
{
    Ok(match table.first()? {
        Some((key, _)) => key.value().0,
        None => last.saturating_add(1),
    })
}

/// Up to `limit` batches after sequence `after`, in order, from a snapshot whose last
/// commit is `last`.
///
/// # Errors
/// [`Error::Trimmed`] when batches after `after` are no longer kept,
/// [`Error::InvalidArgument`] for an `after` beyond `last`, or a decode failure.
pub(crate) fn read_batches<T>(table: &T, after: u64, limit: usize, last: u64) -> Result<Vec<Batch>>
where
    T: ReadableTable<(u64, u32), &'static [u8]>,
{
    if after > last {
        return Err(Error::InvalidArgument(format!(
            "sequence {after} is beyond the last commit, {last}"
        )));
    }
    let oldest = oldest_kept(table, last)?;
    if after < last && after.saturating_add(1) < oldest {
        return Err(Error::Trimmed { after, oldest });
    }
    let mut batches = Vec::new();
    if limit == 0 {
        return Ok(batches);
    }
    let mut current: Option<(u64, Parts)> = None;
    for entry in table.range((after.saturating_add(1), 0)..)? {
        let (key, value) = entry?;
        let (sequence, part) = key.value();
        if current.as_ref().is_some_and(|(s, _)| *s != sequence) {
            let (s, parts) = current.take().unwrap_or_default();
            batches.push(decode_batch(s, &parts)?);
            if batches.len() >= limit {
                return Ok(batches);
            }
        }
        current
            .get_or_insert_with(|| (sequence, Vec::new()))
            .1
            .push((part, value.value().to_vec()));
    }
    if let Some((s, parts)) = current {
        batches.push(decode_batch(s, &parts)?);
    }
    Ok(batches)
}
