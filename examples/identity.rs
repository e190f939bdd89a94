//! Customer identity, end to end: duplicates planted in the demo data are found (with
//! precision and recall), merged and one merge undone; consent recorded and queried;
//! a person erased from a database file, which is compacted and scanned byte by byte.
//!
//! `cargo run --release --example identity`

use std::collections::HashSet;
use std::time::Instant;

use crmdb::demo::Generator;
use crmdb::identity::{
    Consent, ConsentStatus, DuplicateOptions, LawfulBasis, MergePolicy, duplicate_candidates,
};
use crmdb::{Contact, ContactId, Database, EntityKind, Query, RecordId, Snapshot};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ---- duplicates ----
    let db = Database::in_memory()?;
    let generator = Generator::new(20_000);
    generator.load(&db, |_| {})?;
    let planted = generator.plant_duplicates(&db, 400)?;
    let truth: HashSet<(u32, u32)> = planted
        .iter()
        .map(|p| (p.original.row(), p.copy.row()))
        .collect();
    let started = Instant::now();
    let report =
        db.read(|r| duplicate_candidates(r, EntityKind::Contact, &DuplicateOptions::default()))?;
    let found: HashSet<(u32, u32)> = report.candidates.iter().map(|c| (c.a, c.b)).collect();
    let hits = found.intersection(&truth).count();
    let precision = hits as f64 / found.len().max(1) as f64;
    let recall = hits as f64 / truth.len() as f64;
    println!(
        "{} contacts, {} planted duplicates: {} candidates in {:.0?} ({} pairs compared); \
         precision {precision:.3}, recall {recall:.3}",
        report.records,
        planted.len(),
        found.len(),
        started.elapsed(),
        report.compared
    );
    assert!(precision >= 0.9 && recall >= 0.8, "detection fell short");

    // ---- merge the automatic candidates, undo one ----
    let automatic: Vec<(u32, u32)> = report
        .candidates
        .iter()
        .filter(|c| c.automatic)
        .map(|c| (c.a, c.b))
        .collect();
    let vips = Query::parse("tag:vip")?;
    let before = db.read(|r| r.count(EntityKind::Contact, &vips))?;
    let merges = db.write(|tx| -> crmdb::Result<Vec<u64>> {
        let mut merges = Vec::new();
        for (a, b) in &automatic {
            merges.push(tx.merge(
                ContactId::new(*a),
                ContactId::new(*b),
                &MergePolicy::survivor_wins(),
            )?);
        }
        Ok(merges)
    })?;
    let (first, (a, b)) = (merges[0], automatic[0]);
    println!(
        "merged {} automatic candidates; contact {b} now resolves to {}",
        merges.len(),
        db.read(|r| r.resolve(ContactId::new(b)))?.row()
    );
    db.write(|tx| tx.unmerge(first))?;
    db.read(|r| {
        assert_eq!(r.resolve(ContactId::new(b))?.row(), b);
        println!(
            "undid merge {first}: contact {b} is back with {} orders, contact {a} has {}; \
             vip contacts {before} before merging, {} now",
            r.get(ContactId::new(b))?.stats.order_count,
            r.get(ContactId::new(a))?.stats.order_count,
            r.count(EntityKind::Contact, &vips)?
        );
        Ok(())
    })?;

    // ---- consent ----
    let someone = ContactId::new(a);
    db.write(|tx| -> crmdb::Result<()> {
        tx.record_consent(
            someone,
            Consent {
                basis: Some(LawfulBasis::Consent),
                source: Some("store till".into()),
                ..Consent::new("sms", ConsentStatus::Granted)
            },
        )?;
        tx.record_consent(someone, Consent::new("email", ConsentStatus::Denied))
    })?;
    let reachable = Query::parse("consent.sms = \"granted\" AND consent.email != \"denied\"")?;
    let opted_out = Query::parse("consent.email = \"denied\"")?;
    db.read(|r| {
        println!(
            "consent: {} reachable by sms and not denied by email, {} denied email \
             (unsubscribed contacts included); contact {a} unsubscribed: {}",
            r.count(EntityKind::Contact, &reachable)?,
            r.count(EntityKind::Contact, &opted_out)?,
            r.get(someone)?.unsubscribed
        );
        Ok(())
    })?;

    // ---- erasure from a file ----
    let dir = std::env::temp_dir().join(format!("crmdb-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("crm.redb");
    let email = "xu.mingyue@erase.example";
    let phone = "+86 137 0000 4242";
    let name = "Xu Mingyue";
    let mut file = Database::create(&path)?;
    let person = file.write(|tx| -> crmdb::Result<ContactId> {
        let id = tx.insert(Contact {
            name: name.into(),
            email: Some(email.into()),
            phone: Some(phone.into()),
            ..Default::default()
        })?;
        tx.modify(id, |c| c.region = Some("hangzhou".into()))?;
        tx.record_consent(
            id,
            Consent {
                note: Some(format!("{name} called to opt in")),
                ..Consent::new("phone", ConsentStatus::Granted)
            },
        )?;
        Ok(id)
    })?;
    let erasure = file.write(|tx| tx.erase(person, "erasure request 17"))?;
    file.compact()?;
    drop(file);
    let bytes = std::fs::read(&path)?;
    let left: Vec<&str> = [name, email, phone]
        .into_iter()
        .filter(|v| bytes.windows(v.len()).any(|w| w == v.as_bytes()))
        .collect();
    println!(
        "erasure {} of contacts {:?}: the compacted file ({} bytes) holds {} of the \
         erased values",
        erasure.erasure,
        erasure.contacts,
        bytes.len(),
        left.len()
    );
    std::fs::remove_dir_all(&dir)?;
    assert!(left.is_empty(), "the file still holds {left:?}");
    Ok(())
}
