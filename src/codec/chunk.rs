//! Bitmap chunks: the stored pieces of every bitmap, each holding only the rows of one
//! window of row ids (the window geometry is `index::store`'s; a window lies inside one
//! roaring container of 65 536 rows).
//!
//! A format-2 chunk is `[2, tag] ++ body`:
//! - tag `0`: the roaring portable serialisation of the chunk's rows, run containers
//!   where they are smaller (a full window is one run);
//! - tag `1`: the window's rows as bits, row `window.start + i` at bit `i % 8` of byte
//!   `i / 8` (512 bytes for a 4096-row window), written when that is smaller than the
//!   portable form: above about 250 rows of 4096. The portable form alone keeps a
//!   window's rows as an array of two bytes each up to 4096 rows, sixteen times the
//!   bits of a dense window.
//!
//! A format-1 chunk is `[1] ++ roaring portable serialisation`, and still decodes.

use std::fmt::Display;
use std::ops::RangeInclusive;

use roaring::RoaringBitmap;

use super::{FORMAT_VERSION, check_version};
use crate::error::{Error, Result};

/// The portable format's cookies.
const COOKIE_NO_RUN: u32 = 12346;
const COOKIE_RUN: u16 = 12347;

/// Chunk body tags of format 2.
const PORTABLE: u8 = 0;
const BITS: u8 = 1;

/// The bytes of one roaring container's bit array (65 536 rows).
const CONTAINER_BYTES: usize = 8192;

/// The bytes of a window's rows as bits.
fn window_bytes(window: &RangeInclusive<u32>) -> usize {
    (window.end() - window.start()) as usize / 8 + 1
}

/// Encodes one chunk of rows, all inside `window`, whose length is a multiple of 8 and
/// whose start is too. Turns runs on in `bitmap` where they are smaller.
///
/// The bytes depend on the rows alone, not on how `bitmap` came to hold them: roaring
/// keeps a container's run form when it ties with the other forms, so runs are first
/// taken out and then put back where they are smaller. A copy that reached the same
/// rows by another path (a move's copy, a backup replayed) then stores the same bytes.
pub(crate) fn encode_chunk(bitmap: &mut RoaringBitmap, window: RangeInclusive<u32>) -> Vec<u8> {
    debug_assert!(bitmap.min().is_none_or(|m| window.contains(&m)));
    debug_assert!(bitmap.max().is_none_or(|m| window.contains(&m)));
    bitmap.remove_run_compression();
    bitmap.optimize();
    let portable = bitmap.serialized_size();
    let bits = window_bytes(&window);
    if portable <= bits {
        let mut out = Vec::with_capacity(2 + portable);
        out.extend_from_slice(&[FORMAT_VERSION, PORTABLE]);
        // Writing into a Vec cannot fail.
        let _ = bitmap.serialize_into(&mut out);
        return out;
    }
    let mut out = vec![0u8; 2 + bits];
    out[0] = FORMAT_VERSION;
    out[1] = BITS;
    let start = *window.start();
    for row in bitmap.iter() {
        let at = (row - start) as usize;
        out[2 + at / 8] |= 1 << (at % 8);
    }
    out
}

/// The form of a chunk's body after its version byte (and tag).
enum Body<'a> {
    Portable(&'a [u8]),
    Bits(&'a [u8]),
}

fn body<'a>(what: &'static str, key: &dyn Display, bytes: &'a [u8]) -> Result<Body<'a>> {
    check_version(what, key, bytes)?;
    if bytes[0] == 1 {
        return Ok(Body::Portable(&bytes[1..]));
    }
    match bytes.get(1) {
        Some(&PORTABLE) => Ok(Body::Portable(&bytes[2..])),
        Some(&BITS) => Ok(Body::Bits(&bytes[2..])),
        _ => Err(corrupt(what, key, "bad bitmap chunk tag")),
    }
}

fn corrupt(what: &'static str, key: &dyn Display, reason: &str) -> Error {
    Error::Corrupt {
        what,
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Decodes one chunk on its own (for a write that changes it): its rows, which must lie
/// in `window`.
pub(crate) fn decode_chunk(
    what: &'static str,
    key: &dyn Display,
    window: RangeInclusive<u32>,
    bytes: &[u8],
) -> Result<RoaringBitmap> {
    match body(what, key, bytes)? {
        Body::Bits(bits) => {
            if bits.len() != window_bytes(&window) || window.start() % 8 != 0 {
                return Err(corrupt(what, key, "a chunk of bits of the wrong length"));
            }
            Ok(RoaringBitmap::from_lsb0_bytes(*window.start(), bits))
        }
        Body::Portable(portable) => {
            let bitmap = decode_portable(what, key, portable)?;
            let inside = bitmap.min().is_none_or(|m| window.contains(&m))
                && bitmap.max().is_none_or(|m| window.contains(&m));
            if !inside {
                return Err(corrupt(what, key, "row ids outside the chunk"));
            }
            Ok(bitmap)
        }
    }
}

/// Decodes a portable serialisation, checking the header against the byte length first
/// so that a corrupt header cannot claim more containers than the bytes could hold.
fn decode_portable(what: &'static str, key: &dyn Display, body: &[u8]) -> Result<RoaringBitmap> {
    let word = |at: usize| -> Option<u32> {
        body.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let truncated = || corrupt(what, key, "truncated bitmap header");
    let first = word(0).ok_or_else(truncated)?;
    let containers = if first == COOKIE_NO_RUN {
        word(4).ok_or_else(truncated)? as usize
    } else if first as u16 == COOKIE_RUN {
        (first >> 16) as usize + 1
    } else {
        return Err(corrupt(what, key, "bad bitmap cookie"));
    };
    // Each container takes at least 4 header bytes and 2 data bytes.
    if containers > 65_536 || containers.saturating_mul(6) > body.len() {
        return Err(corrupt(
            what,
            key,
            "bitmap header claims more containers than its bytes hold",
        ));
    }
    RoaringBitmap::deserialize_from(body).map_err(|e| corrupt(what, key, &e.to_string()))
}

/// Builds one bitmap from its stored chunks.
///
/// Decoding every chunk into a bitmap of its own and taking their union would build and
/// merge a bitmap per chunk; the assembler instead reads every chunk of a container into
/// one bit array and makes one container of it. It checks what [`decode_chunk`] checks,
/// and refuses trailing bytes: rows in order, inside the window, as many as the header
/// says.
pub(crate) struct ChunkAssembler {
    bitmap: RoaringBitmap,
    container: Option<u16>,
    bits: Box<[u8; CONTAINER_BYTES]>,
}

/// A cursor over the bytes of one chunk.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(taken)
    }

    fn u16(&mut self) -> Option<u32> {
        self.take(2)
            .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Sets the bits `start..=end` (both below 65 536).
fn set_range(bits: &mut [u8; CONTAINER_BYTES], start: u32, end: u32) {
    let (first, last) = ((start / 8) as usize, (end / 8) as usize);
    let head = 0xffu8 << (start % 8);
    let tail = 0xffu8 >> (7 - end % 8);
    if first == last {
        bits[first] |= head & tail;
        return;
    }
    bits[first] |= head;
    bits[first + 1..last].fill(0xff);
    bits[last] |= tail;
}

impl ChunkAssembler {
    pub(crate) fn new() -> ChunkAssembler {
        ChunkAssembler {
            bitmap: RoaringBitmap::new(),
            container: None,
            bits: Box::new([0; CONTAINER_BYTES]),
        }
    }

    /// Adds one chunk whose rows must all lie in `window`, a window inside one
    /// container. Chunks may come in any order; the chunks of a container that come one
    /// after another are gathered before it is built.
    pub(crate) fn add(
        &mut self,
        what: &'static str,
        key: &dyn Display,
        window: RangeInclusive<u32>,
        bytes: &[u8],
    ) -> Result<()> {
        let (low, high) = (*window.start(), *window.end());
        if high >> 16 != low >> 16 || low > high {
            return Err(corrupt(what, key, "a chunk window across containers"));
        }
        let container = (low >> 16) as u16;
        let body = body(what, key, bytes)?;
        if self.container != Some(container) {
            self.flush();
            self.container = Some(container);
        }
        let (low, high) = (low & 0xffff, high & 0xffff);
        match body {
            Body::Bits(bits) => {
                if bits.len() != window_bytes(&window) || low % 8 != 0 {
                    return Err(corrupt(what, key, "a chunk of bits of the wrong length"));
                }
                let at = (low / 8) as usize;
                for (into, from) in self.bits[at..at + bits.len()].iter_mut().zip(bits) {
                    *into |= from;
                }
                Ok(())
            }
            Body::Portable(portable) => {
                self.add_portable(what, key, (container, low, high), portable)
            }
        }
    }

    /// Adds a portable serialisation of at most one container, `container`, whose rows
    /// lie in `low..=high` of it.
    fn add_portable(
        &mut self,
        what: &'static str,
        key: &dyn Display,
        (container, low, high): (u16, u32, u32),
        portable: &[u8],
    ) -> Result<()> {
        let truncated = || corrupt(what, key, "truncated bitmap chunk");
        let outside = || corrupt(what, key, "rows out of order or outside the chunk");
        let mut r = Reader {
            bytes: portable,
            at: 0,
        };
        let first = r.u32().ok_or_else(truncated)?;
        let (count, with_runs) = if first == COOKIE_NO_RUN {
            (r.u32().ok_or_else(truncated)?, false)
        } else if first as u16 == COOKIE_RUN {
            ((first >> 16) + 1, true)
        } else {
            return Err(corrupt(what, key, "bad bitmap cookie"));
        };
        if count > 1 {
            return Err(corrupt(what, key, "a chunk spans more than one container"));
        }
        if count == 1 {
            let run = with_runs && r.take(1).ok_or_else(truncated)?[0] & 1 == 1;
            let stored_container = r.u16().ok_or_else(truncated)?;
            let cardinality = r.u16().ok_or_else(truncated)? + 1;
            if !with_runs {
                // The offset of the only container.
                r.take(4).ok_or_else(truncated)?;
            }
            if stored_container != u32::from(container) {
                return Err(corrupt(what, key, "row ids outside the chunk"));
            }
            if run {
                let runs = r.u16().ok_or_else(truncated)?;
                let (mut next, mut total) = (low, 0u32);
                for _ in 0..runs {
                    let start = r.u16().ok_or_else(truncated)?;
                    let end = start + r.u16().ok_or_else(truncated)?;
                    if start < next || end > high {
                        return Err(outside());
                    }
                    set_range(&mut self.bits, start, end);
                    total += end - start + 1;
                    next = end + 1;
                }
                if total != cardinality {
                    return Err(corrupt(
                        what,
                        key,
                        "run lengths disagree with the row count",
                    ));
                }
            } else if cardinality <= 4096 {
                let values = r.take(2 * cardinality as usize).ok_or_else(truncated)?;
                let mut next = low;
                for pair in values.chunks_exact(2) {
                    let v = u16::from_le_bytes([pair[0], pair[1]]);
                    if u32::from(v) < next || u32::from(v) > high {
                        return Err(outside());
                    }
                    self.bits[usize::from(v >> 3)] |= 1 << (v & 7);
                    next = u32::from(v) + 1;
                }
            } else {
                return Err(corrupt(what, key, "more rows than a chunk holds"));
            }
        }
        if r.at != r.bytes.len() {
            return Err(corrupt(what, key, "trailing bytes after the bitmap chunk"));
        }
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(container) = self.container.take() {
            let part = RoaringBitmap::from_lsb0_bytes(u32::from(container) << 16, &self.bits[..]);
            self.bits.fill(0);
            self.bitmap |= part;
        }
    }

    /// The bitmap of every chunk added.
    pub(crate) fn finish(mut self) -> RoaringBitmap {
        self.flush();
        self.bitmap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(chunk: u32) -> RangeInclusive<u32> {
        chunk << 12..=(chunk << 12) | 4095
    }

    fn assembled(chunks: &[(u32, Vec<u8>)]) -> Result<RoaringBitmap> {
        let mut assembler = ChunkAssembler::new();
        for (chunk, bytes) in chunks {
            assembler.add("b", &"k", window(*chunk), bytes)?;
        }
        Ok(assembler.finish())
    }

    #[test]
    fn the_bytes_depend_on_the_rows_alone() {
        // Five rows in two runs: as an array and as runs they take the same bytes, so
        // roaring keeps whichever form the bitmap had.
        let window = 0..=4095;
        let mut built: RoaringBitmap = [0, 1, 2, 10, 11].into_iter().collect();
        let mut shrunk = RoaringBitmap::new();
        shrunk.insert_range(0..12);
        shrunk.optimize();
        for row in 3..10 {
            shrunk.remove(row);
        }
        assert_eq!(built, shrunk);
        assert_eq!(
            encode_chunk(&mut built, window.clone()),
            encode_chunk(&mut shrunk, window)
        );
    }

    #[test]
    fn chunk_forms_are_pinned() {
        // Sparse: the portable form. A full window: one run. Dense: 512 bytes of bits.
        let mut sparse: RoaringBitmap = [4096 + 1, 4096 + 5].into_iter().collect();
        let bytes = encode_chunk(&mut sparse, window(1));
        assert_eq!(
            bytes,
            [
                2, 0, 58, 48, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 16, 0, 0, 0, 1, 16, 5, 16
            ],
            "sparse chunk"
        );
        let mut full: RoaringBitmap = window(1).collect();
        let bytes = encode_chunk(&mut full, window(1));
        assert_eq!(
            bytes,
            [2, 0, 59, 48, 0, 0, 1, 0, 0, 255, 15, 1, 0, 0, 16, 255, 15],
            "full chunk"
        );
        let mut dense: RoaringBitmap = window(1).step_by(3).collect();
        let bytes = encode_chunk(&mut dense, window(1));
        assert_eq!(bytes.len(), 2 + 512);
        assert_eq!(&bytes[..5], &[2, 1, 0b0100_1001, 0b1001_0010, 0b0010_0100]);
        for (mut bitmap, chunk) in [
            (sparse, 1),
            (full, 1),
            (dense, 1),
            (RoaringBitmap::new(), 7),
        ] {
            let bytes = encode_chunk(&mut bitmap, window(chunk));
            let back = decode_chunk("b", &"k", window(chunk), &bytes).expect("decodes");
            assert_eq!(back, bitmap);
            assert_eq!(assembled(&[(chunk, bytes)]).expect("assembles"), bitmap);
        }
    }

    #[test]
    fn format_one_chunks_still_decode() {
        // `[1] ++ portable`, as format 1 wrote every chunk.
        let bitmap: RoaringBitmap = (8192..8192 + 4096).step_by(2).collect();
        let mut bytes = vec![1];
        bitmap.serialize_into(&mut bytes).expect("serialise");
        assert_eq!(
            decode_chunk("b", &"k", window(2), &bytes).expect("v1"),
            bitmap
        );
        assert_eq!(assembled(&[(2, bytes)]).expect("v1"), bitmap);
    }

    #[test]
    fn assembled_chunks_equal_the_union_of_decoded_ones() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..40 {
            let mut chunks = Vec::new();
            let mut union = RoaringBitmap::new();
            let mut chunk = (next() % 5) as u32;
            for _ in 0..(next() % 40) {
                chunk += 1 + (next() % 3) as u32;
                let density = next() % 4097;
                let mut rows: RoaringBitmap =
                    window(chunk).filter(|_| next() % 4096 < density).collect();
                if round % 7 == 0 {
                    rows.insert_range(window(chunk).start() + 100..=window(chunk).start() + 900);
                }
                let bytes = encode_chunk(&mut rows, window(chunk));
                let decoded = decode_chunk("b", &"k", window(chunk), &bytes).expect("decodes");
                assert_eq!(decoded, rows);
                union |= decoded;
                chunks.push((chunk, bytes));
            }
            assert_eq!(
                assembled(&chunks).expect("assembles"),
                union,
                "round {round}"
            );
        }
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        let mut rows: RoaringBitmap = (4096..4096 + 300).chain([8000]).collect();
        let mut sparse: RoaringBitmap = [4100, 4200].into_iter().collect();
        for bytes in [
            encode_chunk(&mut rows, window(1)),
            encode_chunk(&mut sparse, window(1)),
        ] {
            for cut in 0..bytes.len() {
                assert!(decode_chunk("b", &"k", window(1), &bytes[..cut]).is_err());
                assert!(assembled(&[(1, bytes[..cut].to_vec())]).is_err());
            }
            // Read as another chunk's bytes, portable rows lie outside it (bits carry
            // no absolute row ids, so they read as the other window's rows).
            if bytes[1] == PORTABLE {
                assert!(decode_chunk("b", &"k", window(2), &bytes).is_err());
            }
            let mut trailing = bytes.clone();
            trailing.push(0);
            assert!(assembled(&[(1, trailing)]).is_err());
            for at in 1..bytes.len().min(64) {
                let mut flipped = bytes.clone();
                flipped[at] ^= 0x5a;
                // Either an error or a bitmap both paths agree on.
                if let Ok(bitmap) = assembled(&[(1, flipped.clone())]) {
                    assert_eq!(
                        decode_chunk("b", &"k", window(1), &flipped).expect("agrees"),
                        bitmap
                    );
                }
            }
        }
        let mut huge = vec![FORMAT_VERSION, PORTABLE];
        huge.extend_from_slice(&COOKIE_NO_RUN.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_chunk("b", &"k", window(0), &huge).is_err());
        assert!(assembled(&[(0, huge)]).is_err());
        assert!(decode_chunk("b", &"k", window(0), &[FORMAT_VERSION, 9]).is_err());
    }
}
