//! The checks behind the fuzz targets in `fuzz/`, written once and used twice: the fuzz
//! targets include this file, and `tests/fuzz_corpus.rs` replays every corpus file through
//! it in a plain `cargo test`. It therefore depends on nothing but `crmdb` and `std`:
//! operation sequences are decoded from raw bytes by [`ByteReader`], not by `arbitrary`.
//!
//! Every check panics on a wrong answer; a returned error from the engine is an answer
//! like any other and is compared with what the reference model expects.

#[path = "fuzz_checks/decode.rs"]
mod decode;
#[path = "fuzz_checks/ops.rs"]
mod ops;
#[path = "fuzz_checks/ops_model.rs"]
mod ops_model;
#[path = "fuzz_checks/query_parse.rs"]
mod query_parse;
#[path = "fuzz_checks/reference.rs"]
mod reference;

// Every includer calls some of these: a fuzz target one check, `tests/fuzz_corpus.rs` all
// three.
#[allow(unused_imports)]
pub use self::{
    decode::check_decode,
    ops::{MAX_OPS, Op, decode_ops},
    ops_model::check_ops_model,
    query_parse::{check_query_parse, without_offsets},
};

/// 2026-01-01T00:00:00Z, where every database of these checks starts its clock.
const EPOCH: i64 = 1_767_225_600;

// ---------------------------------------------------------------------------------------
// A tiny byte reader: the one decoder of fuzz input shared by fuzzing and replay.
// ---------------------------------------------------------------------------------------

/// Reads small choices from fuzz input; an exhausted input reads as zeros.
pub struct ByteReader<'a> {
    data: &'a [u8],
}

impl<'a> ByteReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ByteReader { data }
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// One bit.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}
