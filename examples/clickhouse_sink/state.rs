//! ClickHouse's `AggregateFunction(groupBitmap, UInt32)` state, written and read.
//!
//! ClickHouse keeps a UInt32 bitmap state in one of two forms:
//! - **small** (kind byte `0`): a count byte, then up to 32 ids as little-endian
//!   UInt32s, in the order they were added;
//! - **large** (kind byte `1`): the length of the roaring bytes as an unsigned LEB128
//!   varint, then roaring's portable serialization with run containers where they are
//!   smaller (what crmdb stores for its bitmap chunks).
//!
//! [`encode`] writes what ClickHouse writes for the same set, byte for byte: the small
//! form for up to 32 ids (ascending), the large one above. [`decode`] reads both, in
//! any order of the small form's ids, and refuses anything else with a [`StateError`].
//! The fixture `tests/fixtures/clickhouse_group_bitmap.tsv` holds states ClickHouse
//! itself produced.

use crmdb::RoaringBitmap;

/// The most ids ClickHouse keeps in the small form.
pub const SMALL_MAX: usize = 32;

/// The longest roaring body a state may claim (a full UInt32 bitmap is about 512 MiB;
/// no segment of one tenant comes near). Guards against a corrupt length.
pub const MAX_BODY: u64 = 1 << 30;

/// Why state bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// No bytes at all.
    Empty,
    /// A kind byte other than 0 (small) or 1 (large).
    UnknownKind(u8),
    /// A small state claiming more than 32 ids.
    SmallTooLarge(u8),
    /// The bytes end before the state does.
    Truncated,
    /// Bytes follow the end of the state.
    Trailing(usize),
    /// The varint length is malformed or beyond [`MAX_BODY`].
    BadLength,
    /// The roaring body does not decode.
    Roaring(String),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Empty => write!(f, "empty groupBitmap state"),
            StateError::UnknownKind(k) => write!(f, "groupBitmap state of unknown kind {k}"),
            StateError::SmallTooLarge(n) => {
                write!(
                    f,
                    "small groupBitmap state claims {n} ids (at most {SMALL_MAX})"
                )
            }
            StateError::Truncated => write!(f, "groupBitmap state is cut short"),
            StateError::Trailing(n) => write!(f, "{n} bytes follow the groupBitmap state"),
            StateError::BadLength => write!(f, "groupBitmap state has a malformed length"),
            StateError::Roaring(e) => write!(f, "groupBitmap state's roaring bytes: {e}"),
        }
    }
}

impl std::error::Error for StateError {}

/// The state ClickHouse writes for `ids`.
pub fn encode(ids: &RoaringBitmap) -> Vec<u8> {
    if ids.len() <= SMALL_MAX as u64 {
        let mut out = Vec::with_capacity(2 + 4 * ids.len() as usize);
        out.push(0);
        out.push(ids.len() as u8);
        for id in ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        return out;
    }
    // Runs are taken out first so that the chosen forms depend on the ids alone.
    let mut body = ids.clone();
    body.remove_run_compression();
    body.optimize();
    let size = body.serialized_size();
    let mut out = Vec::with_capacity(1 + 10 + size);
    out.push(1);
    put_varint(&mut out, size as u64);
    // Writing into a Vec cannot fail.
    let _ = body.serialize_into(&mut out);
    out
}

/// Reads a state in either form.
///
/// # Errors
/// A [`StateError`] saying what is wrong with the bytes.
pub fn decode(bytes: &[u8]) -> Result<RoaringBitmap, StateError> {
    let (&kind, rest) = bytes.split_first().ok_or(StateError::Empty)?;
    match kind {
        0 => {
            let (&count, ids) = rest.split_first().ok_or(StateError::Truncated)?;
            if count as usize > SMALL_MAX {
                return Err(StateError::SmallTooLarge(count));
            }
            let need = 4 * count as usize;
            if ids.len() < need {
                return Err(StateError::Truncated);
            }
            if ids.len() > need {
                return Err(StateError::Trailing(ids.len() - need));
            }
            Ok(ids
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        }
        1 => {
            let (length, body) = take_varint(rest)?;
            if length > MAX_BODY {
                return Err(StateError::BadLength);
            }
            let length = length as usize;
            if body.len() < length {
                return Err(StateError::Truncated);
            }
            if body.len() > length {
                return Err(StateError::Trailing(body.len() - length));
            }
            let mut reader = body;
            let bitmap = RoaringBitmap::deserialize_from(&mut reader)
                .map_err(|e| StateError::Roaring(e.to_string()))?;
            if !reader.is_empty() {
                return Err(StateError::Trailing(reader.len()));
            }
            Ok(bitmap)
        }
        other => Err(StateError::UnknownKind(other)),
    }
}

/// Appends `value` as an unsigned LEB128 varint (ClickHouse's `writeVarUInt`).
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads an unsigned LEB128 varint of at most 10 bytes; returns it and the rest.
fn take_varint(bytes: &[u8]) -> Result<(u64, &[u8]), StateError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return Err(StateError::BadLength);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    if bytes.len() < 10 {
        Err(StateError::Truncated)
    } else {
        Err(StateError::BadLength)
    }
}
