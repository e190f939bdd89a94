//! decode: arbitrary bytes through every stored-value decoder.

use crmdb::{Account, Contact, Deal, Order, Owner, Product, RoaringBitmap, Task, raw};

fn decode_one<R: crmdb::Record + PartialEq>(data: &[u8]) {
    if let Ok(record) = raw::decode_record::<R>(data) {
        let bytes = raw::encode_record(&record);
        let again = raw::decode_record::<R>(&bytes)
            .unwrap_or_else(|e| panic!("a decoded {} does not decode re-encoded: {e}", R::KIND));
        assert_eq!(
            again,
            record,
            "a decoded {} changes when re-encoded",
            R::KIND
        );
    }
}

/// Feeds `data` to the decoder of each of the eight record types and to the two bitmap
/// chunk decoders: each must return an error or a value that survives re-encoding.
pub fn check_decode(data: &[u8]) {
    decode_one::<Contact>(data);
    decode_one::<Account>(data);
    decode_one::<Deal>(data);
    decode_one::<crmdb::Activity>(data);
    decode_one::<Order>(data);
    decode_one::<Product>(data);
    decode_one::<Owner>(data);
    decode_one::<Task>(data);
    // The bytes as chunk 1, decoded on its own and through the loader's assembler:
    // the assembler may refuse more (trailing bytes), never accept other rows.
    let alone = raw::decode_chunk(1, data);
    if let Ok(assembled) = raw::assemble_chunks(&[(1, data)]) {
        match &alone {
            Ok(bitmap) => assert_eq!(&assembled, bitmap, "the two chunk decoders disagree"),
            Err(e) => panic!("the assembler accepts a chunk the decoder refuses: {e}"),
        }
    }
    if let Ok(bitmap) = alone {
        let values: Vec<u32> = bitmap.iter().collect();
        assert_eq!(values.len() as u64, bitmap.len(), "bitmap length disagrees");
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "a decoded bitmap iterates out of order"
        );
        assert!(
            values.iter().all(|v| v >> 12 == 1),
            "a decoded chunk holds rows outside it"
        );
        assert_eq!(bitmap.min(), values.first().copied());
        assert_eq!(bitmap.max(), values.last().copied());
        let rebuilt: RoaringBitmap = values.iter().copied().collect();
        assert_eq!(
            rebuilt, bitmap,
            "a decoded bitmap differs from its own values"
        );
        let again = raw::decode_chunk(1, &raw::encode_chunk(1, &bitmap))
            .unwrap_or_else(|e| panic!("a decoded chunk does not decode re-encoded: {e}"));
        assert_eq!(again, bitmap);
    }
}
