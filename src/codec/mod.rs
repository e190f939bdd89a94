//! The on-disk encoding. **Boundary**: the only module that knows bincode and the
//! portable roaring layout; everything stored goes through here.
//!
//! Every stored value starts with a format-version byte. Records and metadata are
//! `[FORMAT_VERSION] ++ bincode(standard, fixed limit)`; bitmap chunks are
//! `[FORMAT_VERSION] ++` a chunk body ([`chunk`]: a tag, then a roaring portable
//! serialisation or the chunk's rows as bits). Decoding never panics: bad bytes come
//! back as [`Error::Corrupt`], an unknown version as [`Error::UnsupportedFormat`].

use std::fmt::Display;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

mod chunk;

pub(crate) use chunk::{ChunkAssembler, decode_chunk, encode_chunk};

/// The format version written by this build.
pub(crate) const FORMAT_VERSION: u8 = 2;

/// The oldest format version this build reads. Format 2 changed only how bitmap chunks
/// are encoded ([`chunk`]); every other value decodes the same under both.
pub(crate) const OLDEST_READABLE: u8 = 1;

/// The most bytes one decoded value may claim, so that a corrupt length prefix cannot
/// make the decoder allocate without bound.
pub(crate) const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODE_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

/// Encodes a value with its version byte, appending to `out`.
pub(crate) fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    out.push(FORMAT_VERSION);
    // Encoding into a Vec fails only for types serde cannot express (none of ours) or
    // beyond the size limit, which our field limits keep us far from.
    if let Err(e) = bincode::serde::encode_into_std_write(value, out, config()) {
        unreachable_encode(e);
    }
}

#[cold]
fn unreachable_encode(e: bincode::error::EncodeError) {
    // Not reachable with crmdb's own types; kept loud in debug builds.
    debug_assert!(false, "encoding failed: {e}");
}

/// Encodes a value with its version byte.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_into(value, &mut out);
    out
}

pub(crate) fn check_version(what: &'static str, key: &dyn Display, bytes: &[u8]) -> Result<()> {
    match bytes.first() {
        None => Err(Error::Corrupt {
            what,
            key: key.to_string(),
            reason: "empty value".into(),
        }),
        Some(version) if (OLDEST_READABLE..=FORMAT_VERSION).contains(version) => Ok(()),
        Some(&found) => Err(Error::UnsupportedFormat {
            what,
            found,
            supported: FORMAT_VERSION,
        }),
    }
}

/// Decodes a value written by [`encode`]. Trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    key: &dyn Display,
    bytes: &[u8],
) -> Result<T> {
    check_version(what, key, bytes)?;
    let corrupt = |reason: String| Error::Corrupt {
        what,
        key: key.to_string(),
        reason,
    };
    let (value, used) = bincode::serde::decode_from_slice(&bytes[1..], config())
        .map_err(|e| corrupt(e.to_string()))?;
    if used + 1 != bytes.len() {
        return Err(corrupt(format!(
            "{} trailing bytes",
            bytes.len() - used - 1
        )));
    }
    Ok(value)
}

/// The top-level fields of a struct value, each with its own encoding: what the change
/// feed compares to name the fields an update changed. All encodings share one buffer;
/// each field names its byte range. A value that is not a struct gives no fields.
pub(crate) fn struct_fields<T: Serialize>(value: &T) -> StructFields {
    value.serialize(FieldCapture).unwrap_or_default()
}

/// The fields of a struct value, encoded one by one into one buffer.
#[derive(Debug, Default)]
pub(crate) struct StructFields {
    bytes: Vec<u8>,
    fields: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl StructFields {
    /// Each field's name and encoding, in declaration order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.fields
            .iter()
            .map(|(name, range)| (*name, &self.bytes[range.clone()]))
    }
}

/// A serializer that accepts one struct and encodes each of its fields separately.
struct FieldCapture;

/// Why a value could not be taken apart: it is not a struct.
#[derive(Debug)]
pub(crate) struct NotAStruct;

impl std::fmt::Display for NotAStruct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a struct")
    }
}

impl std::error::Error for NotAStruct {}

impl serde::ser::Error for NotAStruct {
    fn custom<M: Display>(_: M) -> Self {
        NotAStruct
    }
}

impl serde::ser::SerializeStruct for StructFields {
    type Ok = StructFields;
    type Error = NotAStruct;
    fn serialize_field<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> std::result::Result<(), NotAStruct> {
        let start = self.bytes.len();
        bincode::serde::encode_into_std_write(value, &mut self.bytes, config())
            .map_err(|_| NotAStruct)?;
        self.fields.push((key, start..self.bytes.len()));
        Ok(())
    }
    fn end(self) -> std::result::Result<Self::Ok, NotAStruct> {
        Ok(self)
    }
}

/// Every serializer method but `serialize_struct` refuses.
macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> std::result::Result<Self::Ok, NotAStruct> {
            Err(NotAStruct)
        })*
    };
}

impl serde::Serializer for FieldCapture {
    type Ok = StructFields;
    type Error = NotAStruct;
    type SerializeSeq = serde::ser::Impossible<Self::Ok, NotAStruct>;
    type SerializeTuple = serde::ser::Impossible<Self::Ok, NotAStruct>;
    type SerializeTupleStruct = serde::ser::Impossible<Self::Ok, NotAStruct>;
    type SerializeTupleVariant = serde::ser::Impossible<Self::Ok, NotAStruct>;
    type SerializeMap = serde::ser::Impossible<Self::Ok, NotAStruct>;
    type SerializeStruct = StructFields;
    type SerializeStructVariant = serde::ser::Impossible<Self::Ok, NotAStruct>;

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<V: Serialize + ?Sized>(
        self,
        _: &V,
    ) -> std::result::Result<Self::Ok, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_newtype_struct<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &V,
    ) -> std::result::Result<Self::Ok, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_newtype_variant<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> std::result::Result<Self::Ok, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_seq(
        self,
        _: Option<usize>,
    ) -> std::result::Result<Self::SerializeSeq, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_tuple(self, _: usize) -> std::result::Result<Self::SerializeTuple, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeTupleStruct, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeTupleVariant, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_map(
        self,
        _: Option<usize>,
    ) -> std::result::Result<Self::SerializeMap, NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> std::result::Result<Self::SerializeStruct, NotAStruct> {
        Ok(StructFields {
            bytes: Vec::with_capacity(256),
            fields: Vec::with_capacity(len),
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeStructVariant, NotAStruct> {
        Err(NotAStruct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_errors() {
        let bytes = encode(&("hello".to_string(), 42u32));
        let back: (String, u32) = decode("test", &"k", &bytes).expect("round trip");
        assert_eq!(back, ("hello".to_string(), 42));

        let err = decode::<(String, u32)>("test", &"k", &[]).expect_err("empty");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        let mut newer = bytes.clone();
        newer[0] = 99;
        let err = decode::<(String, u32)>("test", &"k", &newer).expect_err("version");
        assert!(
            matches!(err, Error::UnsupportedFormat { found: 99, .. }),
            "{err}"
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<(String, u32)>("test", &"k", &trailing).is_err());
        for cut in 1..bytes.len() {
            assert!(decode::<(String, u32)>("test", &"k", &bytes[..cut]).is_err());
        }
    }

    #[test]
    fn struct_fields_are_encoded_one_by_one() {
        #[derive(Serialize)]
        struct Pair {
            a: u32,
            b: String,
        }
        let fields = struct_fields(&Pair {
            a: 7,
            b: "x".into(),
        });
        let fields: Vec<(&str, &[u8])> = fields.iter().collect();
        assert_eq!(fields.iter().map(|f| f.0).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(fields[0].1, [7]);
        assert_eq!(fields[1].1, [1, b'x']);
        assert_eq!(struct_fields(&7u32).iter().count(), 0);
    }
}
