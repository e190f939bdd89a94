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
    for version in [0u8, 2, 200, 255] {
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
    let bitmap: crmdb::RoaringBitmap = (0..3000u32).chain([70_000, 1 << 20, u32::MAX]).collect();
    let bytes = crmdb::raw::encode_bitmap(&bitmap);
    assert_eq!(
        crmdb::raw::decode_bitmap(&bytes).expect("round trip"),
        bitmap
    );
    for cut in 0..bytes.len() {
        match crmdb::raw::decode_bitmap(&bytes[..cut]) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("truncated to {cut} bytes: {other:?}"),
        }
    }
    let mut newer = bytes.clone();
    newer[0] = 9;
    assert!(matches!(
        crmdb::raw::decode_bitmap(&newer),
        Err(Error::UnsupportedFormat { found: 9, .. })
    ));
    for at in 1..bytes.len().min(400) {
        for mask in [0x01u8, 0x10, 0xff] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            if let Err(e) = crmdb::raw::decode_bitmap(&flipped) {
                assert!(is_decode_error(&e), "byte {at} ^ {mask:#x}: {e:?}");
            }
        }
    }
    // A header claiming the maximum number of containers with no bytes behind it.
    let mut lying = vec![bytes[0]];
    lying.extend_from_slice(&12346u32.to_le_bytes());
    lying.extend_from_slice(&65_536u32.to_le_bytes());
    assert!(matches!(
        crmdb::raw::decode_bitmap(&lying),
        Err(Error::Corrupt { .. })
    ));
}
