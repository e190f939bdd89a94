//! Corrupt record and bitmap bytes are errors, not panics.

use crmdb::{Contact, Error, Money, Order, Value};

use crate::support::custom;

fn is_decode_error(e: &Error) -> bool {
    matches!(e, Error::Corrupt { .. } | Error::UnsupportedFormat { .. })
}

#[test]
fn corrupt_records_are_errors_not_panics() {
    let record = Contact {
        name: "Ada".into(),
        email: Some("ada@example.com".into()),
        region: Some("london".into()),
        tags: ["vip".to_owned(), "gold".to_owned()].into(),
        custom: custom(vec![("n", Value::Integer(1 << 40))]),
        lifetime_value: Money(123_456),
        ..Default::default()
    };
    let bytes = crmdb::raw::encode_record(&record);
    assert_eq!(
        crmdb::raw::decode_record::<Contact>(&bytes).expect("round trip"),
        record
    );

    for cut in 0..bytes.len() {
        match crmdb::raw::decode_record::<Contact>(&bytes[..cut]) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("truncated to {cut} bytes: {other:?}"),
        }
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        crmdb::raw::decode_record::<Contact>(&trailing),
        Err(Error::Corrupt { .. })
    ));
    // Version 1 records are read as they are (format 2 changed only bitmap chunks).
    let mut older = bytes.clone();
    older[0] = 1;
    assert_eq!(
        crmdb::raw::decode_record::<Contact>(&older).expect("a format-1 record"),
        record
    );
    for version in [0u8, 3, 200, 255] {
        let mut newer = bytes.clone();
        newer[0] = version;
        match crmdb::raw::decode_record::<Contact>(&newer) {
            Err(Error::UnsupportedFormat { found, .. }) => assert_eq!(found, version),
            other => panic!("version {version}: {other:?}"),
        }
    }
    // Flipped bytes either still decode to some record or are reported; never a panic.
    for at in 1..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            if let Err(e) = crmdb::raw::decode_record::<Contact>(&flipped) {
                assert!(is_decode_error(&e), "byte {at} ^ {mask:#x}: {e:?}");
            }
            if let Err(e) = crmdb::raw::decode_record::<Order>(&flipped) {
                assert!(is_decode_error(&e), "as order, byte {at}: {e:?}");
            }
        }
    }
    // A huge length prefix does not make the decoder allocate without bound.
    let mut huge = vec![bytes[0]];
    huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff]);
    assert!(crmdb::raw::decode_record::<Contact>(&huge).is_err());
}

#[test]
fn corrupt_bitmaps_are_errors_not_panics() {
    // Chunk 3: a sparse chunk (the portable form), a dense one (bits) and a full one
    // (a run).
    let base = 3u32 << 12;
    let sparse: crmdb::RoaringBitmap = [base, base + 7, base + 4095].into_iter().collect();
    let dense: crmdb::RoaringBitmap = (base..base + 4096).step_by(3).collect();
    let full: crmdb::RoaringBitmap = (base..base + 4096).collect();
    for bitmap in [sparse, dense, full] {
        let bytes = crmdb::raw::encode_chunk(3, &bitmap);
        assert_eq!(
            crmdb::raw::decode_chunk(3, &bytes).expect("round trip"),
            bitmap
        );
        assert_eq!(
            crmdb::raw::assemble_chunks(&[(3, &bytes)]).expect("round trip"),
            bitmap
        );
        for cut in 0..bytes.len() {
            for result in [
                crmdb::raw::decode_chunk(3, &bytes[..cut]),
                crmdb::raw::assemble_chunks(&[(3, &bytes[..cut])]),
            ] {
                match result {
                    Err(Error::Corrupt { .. }) => {}
                    other => panic!("truncated to {cut} bytes: {other:?}"),
                }
            }
        }
        let mut newer = bytes.clone();
        newer[0] = 9;
        assert!(matches!(
            crmdb::raw::decode_chunk(3, &newer),
            Err(Error::UnsupportedFormat { found: 9, .. })
        ));
        for at in 1..bytes.len().min(400) {
            for mask in [0x01u8, 0x10, 0xff] {
                let mut flipped = bytes.clone();
                flipped[at] ^= mask;
                for result in [
                    crmdb::raw::decode_chunk(3, &flipped),
                    crmdb::raw::assemble_chunks(&[(3, &flipped)]),
                ] {
                    if let Err(e) = result {
                        assert!(is_decode_error(&e), "byte {at} ^ {mask:#x}: {e:?}");
                    }
                }
            }
        }
    }
    // A header claiming the maximum number of containers with no bytes behind it.
    let mut lying = vec![2, 0];
    lying.extend_from_slice(&12346u32.to_le_bytes());
    lying.extend_from_slice(&65_536u32.to_le_bytes());
    assert!(matches!(
        crmdb::raw::decode_chunk(0, &lying),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        crmdb::raw::assemble_chunks(&[(0, &lying)]),
        Err(Error::Corrupt { .. })
    ));
}
