//! Duplicate candidates: normalisation, the planted duplicates of the demo data found
//! with the precision and recall measured, automatic merges never proposed across two
//! different emails, accounts.

use std::collections::{BTreeMap, HashSet};

use crmdb::demo::{DuplicateVariant, Generator};
use crmdb::identity::{
    DuplicateOptions, MatchReason, duplicate_candidates, normalise_company, normalise_email,
    normalise_name, normalise_phone,
};
use crmdb::{Account, Contact, Database, EntityKind, Error, RecordId};

#[test]
fn values_are_normalised_as_documented() {
    assert_eq!(
        normalise_email("  Li.Lei+Shop@GMail.com ", false).as_deref(),
        Some("li.lei+shop@gmail.com")
    );
    assert_eq!(
        normalise_email("Li.Lei+Shop@GoogleMail.com", true).as_deref(),
        Some("lilei@gmail.com")
    );
    assert_eq!(
        normalise_email("li.lei+shop@corp.example", true).as_deref(),
        Some("li.lei@corp.example"),
        "dots stay at other providers"
    );
    assert_eq!(normalise_email("no-at-sign", true), None);
    for phone in [
        "+86 138-0013-8000",
        "0086 13800138000",
        "138 0013 8000",
        "8613800138000",
    ] {
        assert_eq!(
            normalise_phone(phone, "86").as_deref(),
            Some("8613800138000"),
            "{phone}"
        );
    }
    assert_eq!(
        normalise_phone("+1 (415) 555-0100", "86").as_deref(),
        Some("14155550100")
    );
    assert_eq!(
        normalise_phone("010 6552 9988", "86").as_deref(),
        Some("861065529988")
    );
    assert_eq!(normalise_phone("12-34", "86"), None);
    assert_eq!(normalise_name("  ZHANG,  Wei "), "wei zhang");
    assert_eq!(normalise_name("Wei Zhang"), "wei zhang");
    assert_eq!(normalise_company("Acme Trading Co., Ltd."), "acme trading");
    assert_eq!(normalise_company("上海星辰贸易有限公司"), "上海星辰贸易");
}

/// Precision, and recall per variant, of the default options on planted duplicates.
#[test]
fn planted_duplicates_are_found_with_measured_precision_and_recall() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let generator = Generator::new(20_000);
    generator.load(&db, |_| {})?;
    let planted = generator.plant_duplicates(&db, 1000)?;
    let truth: HashSet<(u32, u32)> = planted
        .iter()
        .map(|p| (p.original.row(), p.copy.row()))
        .collect();
    let report =
        db.read(|r| duplicate_candidates(r, EntityKind::Contact, &DuplicateOptions::default()))?;
    assert_eq!(report.records, 21_000);
    let found: HashSet<(u32, u32)> = report.candidates.iter().map(|c| (c.a, c.b)).collect();
    let true_positives = found.intersection(&truth).count();
    let precision = true_positives as f64 / found.len() as f64;
    let recall = true_positives as f64 / truth.len() as f64;
    let mut per_variant: BTreeMap<DuplicateVariant, (u32, u32)> = BTreeMap::new();
    for p in &planted {
        let entry = per_variant.entry(p.variant).or_default();
        entry.1 += 1;
        if found.contains(&(p.original.row(), p.copy.row())) {
            entry.0 += 1;
        }
    }
    println!(
        "20 000 contacts + 1 000 planted: {} candidates from {} pairs compared \
         ({} oversized blocks); precision {precision:.3}, recall {recall:.3}; per variant \
         (found, planted): {per_variant:?}",
        found.len(),
        report.compared,
        report.oversized_blocks
    );
    assert!(precision >= 0.95, "precision {precision}");
    assert!(recall >= 0.9, "recall {recall}");
    for (variant, (hit, of)) in &per_variant {
        assert!(
            f64::from(*hit) >= 0.8 * f64::from(*of),
            "{variant:?}: {hit} of {of}"
        );
    }
    // Never automatic across two different emails; the web form's `+web` address is a
    // different email without the provider rules, and the same one with them.
    for candidate in &report.candidates {
        if candidate.reasons.contains(&MatchReason::DifferentEmails) {
            assert!(!candidate.automatic, "{candidate:?}");
        }
    }
    let web = planted
        .iter()
        .find(|p| p.variant == DuplicateVariant::WebForm)
        .expect("a web form copy");
    let pair = (web.original.row(), web.copy.row());
    let find = |options: &DuplicateOptions| -> crmdb::Result<_> {
        let report = db.read(|r| duplicate_candidates(r, EntityKind::Contact, options))?;
        Ok(report.candidates.into_iter().find(|c| (c.a, c.b) == pair))
    };
    let plain = find(&DuplicateOptions::default())?.expect("found");
    assert!(!plain.automatic && plain.reasons.contains(&MatchReason::DifferentEmails));
    let ruled = find(&DuplicateOptions {
        provider_rules: true,
        ..DuplicateOptions::default()
    })?
    .expect("found");
    assert!(ruled.automatic && ruled.reasons.contains(&MatchReason::SameEmail));
    assert_eq!(ruled.score, 100);
    Ok(())
}

#[test]
fn deleted_records_are_left_out_and_accounts_are_compared_by_company_name() -> crmdb::Result<()> {
    let db = Database::in_memory()?;
    let (a, b, c) = db.write(|tx| -> crmdb::Result<_> {
        let a = tx.insert(Contact {
            name: "Zhang Wei".into(),
            phone: Some("+86 138 0013 8000".into()),
            ..Default::default()
        })?;
        let b = tx.insert(Contact {
            name: "zhang wei".into(),
            phone: Some("13800138000".into()),
            ..Default::default()
        })?;
        let c = tx.insert(Contact {
            name: "Zhang Wie".into(),
            phone: Some("138-0013-8000".into()),
            ..Default::default()
        })?;
        Ok((a, b, c))
    })?;
    let pairs = |db: &Database| -> crmdb::Result<Vec<(u32, u32, u32)>> {
        let report = db
            .read(|r| duplicate_candidates(r, EntityKind::Contact, &DuplicateOptions::default()))?;
        Ok(report
            .candidates
            .iter()
            .map(|c| (c.a, c.b, c.score))
            .collect())
    };
    assert_eq!(
        pairs(&db)?,
        vec![
            (a.row(), b.row(), 100),
            (a.row(), c.row(), 90),
            (b.row(), c.row(), 90)
        ]
    );
    db.write(|tx| tx.soft_delete(b))?;
    assert_eq!(pairs(&db)?, vec![(a.row(), c.row(), 90)]);

    let (x, y) = db.write(|tx| -> crmdb::Result<_> {
        let x = tx.insert(Account {
            name: "Acme Trading Co., Ltd.".into(),
            region: Some("shanghai".into()),
            industry: Some("retail".into()),
            ..Default::default()
        })?;
        let y = tx.insert(Account {
            name: "ACME Trading".into(),
            region: Some("shanghai".into()),
            industry: Some("Retail".into()),
            ..Default::default()
        })?;
        tx.insert(Account {
            name: "Acme Trading".into(),
            region: Some("beijing".into()),
            industry: Some("logistics".into()),
            ..Default::default()
        })?;
        Ok((x, y))
    })?;
    let report =
        db.read(|r| duplicate_candidates(r, EntityKind::Account, &DuplicateOptions::default()))?;
    let found: Vec<(u32, u32)> = report.candidates.iter().map(|c| (c.a, c.b)).collect();
    assert_eq!(found, vec![(x.row(), y.row())], "{report:?}");
    assert!(matches!(
        db.read(|r| duplicate_candidates(r, EntityKind::Order, &DuplicateOptions::default())),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}
