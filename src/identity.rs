//! Customer identity: finding records that are one person (or one company) arrived
//! twice, from different channels.
//!
//! [`duplicate_candidates`] proposes pairs without comparing every record with every
//! other. Each record gets **blocking keys**, and only records that share a key are
//! compared:
//! - its normalised email ([`normalise_email`]);
//! - its normalised phone ([`normalise_phone`]);
//! - its normalised name within its region and (contacts) within its account, and
//!   that name with any one character left out. Two names one typo apart (a letter
//!   changed, dropped, added, or two swapped) share one of those keys.
//!
//! Every pair that shares a key is then scored on all its fields, in points out of 100:
//!
//! | evidence | points |
//! |---|---|
//! | the same email | +90 |
//! | the same phone | +60 |
//! | the same name | +40 |
//! | a similar name (Jaro–Winkler ≥ [`DuplicateOptions::name_similarity`]) | +30 |
//! | the same account | +20 |
//! | the same birth year | +10 |
//! | different birth years | −30 |
//! | different genders | −20 |
//! | different regions | −10 |
//!
//! Pairs scoring at least [`DuplicateOptions::min_score`] are candidates. A candidate is
//! proposed for an **automatic** merge only from 95 points, and never when both records
//! hold an email and the two differ. The email is the contact's natural key: a person
//! may have two addresses, but two verified addresses are a decision for a person to
//! make, not for a rule. Accounts block on their normalised name (legal suffixes such as
//! `Ltd` or `有限公司` dropped) within a region, and score on name, region, industry and
//! owner.
//!
//! The keys are 64-bit hashes sorted in one vector, so a million contacts take a few
//! hundred megabytes and seconds, not a table of strings. A key that more than
//! [`DuplicateOptions::max_block`] records share (a shared office phone, a very common
//! name in one city) is skipped and counted in the report rather than compared
//! pairwise.

pub use crate::schema::{
    Consent, ConsentEntry, ConsentStatus, DEFAULT_CHANNELS, LawfulBasis, UNSUBSCRIBED_SOURCE,
};
pub use crate::txn::{ERASED, Erasure, FieldRule, Lineage, MergePolicy, MovedRecord, Undone};

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::error::{Error, Result};
use crate::schema::{Account, Contact, EntityKind, RecordId};
use crate::txn::Snapshot;

/// How duplicates are looked for.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateOptions {
    /// The country calling code of phone numbers written without one (`86`).
    pub country_code: String,
    /// Mailbox rules of email providers. With this set, a `+tag` after the local part
    /// is dropped at every domain (most providers deliver `a+tag@x` to `a@x`), and dots
    /// in the local part are dropped at `gmail.com` and `googlemail.com`, which ignore
    /// them. Off by default: other providers treat those as other mailboxes.
    pub provider_rules: bool,
    /// The least score, in points out of 100, of a candidate.
    pub min_score: u32,
    /// The least Jaro–Winkler similarity (0 to 1) of two names that count as similar.
    pub name_similarity: f64,
    /// Records sharing one key above which the key is not compared pairwise.
    pub max_block: usize,
}

impl Default for DuplicateOptions {
    /// Country code 86, no provider rules, 60 points, similarity 0.9, blocks of 32.
    fn default() -> Self {
        DuplicateOptions {
            country_code: "86".into(),
            provider_rules: false,
            min_score: 60,
            name_similarity: 0.9,
            max_block: 32,
        }
    }
}

/// Why two records may be one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchReason {
    /// The same normalised email.
    SameEmail,
    /// Both hold an email, and they differ: never merged automatically.
    DifferentEmails,
    /// The same normalised phone.
    SamePhone,
    /// The same normalised name.
    SameName,
    /// Names within the similarity threshold.
    SimilarName,
    /// The same account (contacts), or the same industry (accounts).
    SameAccount,
    /// The same owner (accounts).
    SameOwner,
    /// The same birth year.
    SameBirthYear,
    /// Different birth years.
    DifferentBirthYear,
    /// Different genders.
    DifferentGender,
    /// Different regions.
    DifferentRegion,
}

/// Two records that may be one.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Their kind.
    pub kind: EntityKind,
    /// The lower row id.
    pub a: u32,
    /// The higher row id.
    pub b: u32,
    /// Points out of 100.
    pub score: u32,
    /// The similarity of their normalised names (0 to 1).
    pub name_similarity: f64,
    /// What the score is made of.
    pub reasons: BTreeSet<MatchReason>,
    /// Whether the pair may be merged without a person looking: 95 points or more, and
    /// no two different emails.
    pub automatic: bool,
}

/// What [`duplicate_candidates`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DuplicateReport {
    /// The candidates, best first (then by row ids).
    pub candidates: Vec<Candidate>,
    /// Live records looked at.
    pub records: u64,
    /// Pairs scored.
    pub compared: u64,
    /// Keys shared by more than `max_block` records, not compared pairwise.
    pub oversized_blocks: u64,
}

/// `email` trimmed and lowercased; with `provider_rules`, without a `+tag` and, at
/// Gmail, without dots in the local part. `None` for a value without `@`.
pub fn normalise_email(email: &str, provider_rules: bool) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    if !provider_rules {
        return Some(email);
    }
    let local = local.split('+').next().unwrap_or(local);
    let local = if matches!(domain, "gmail.com" | "googlemail.com") {
        local.replace('.', "")
    } else {
        local.to_owned()
    };
    let domain = if domain == "googlemail.com" {
        "gmail.com"
    } else {
        domain
    };
    Some(format!("{local}@{domain}"))
}

/// `phone` as digits with its country code: `+86 138-0013-8000`, `0086 13800138000` and
/// `138 0013 8000` (with `country_code` 86) are all `8613800138000`. A national number's
/// leading trunk `0` is dropped. `None` for fewer than 6 digits.
pub fn normalise_phone(phone: &str, country_code: &str) -> Option<String> {
    let trimmed = phone.trim();
    let mut digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return None;
    }
    let international = trimmed.starts_with('+') || digits.starts_with("00");
    if let Some(rest) = digits.strip_prefix("00") {
        digits = rest.to_owned();
    }
    if international {
        return Some(digits);
    }
    // A national number (the country code may still lead it, written without `+`).
    if digits.starts_with(country_code) && digits.len() >= country_code.len() + 9 {
        return Some(digits);
    }
    let national = digits.strip_prefix('0').unwrap_or(&digits);
    Some(format!("{country_code}{national}"))
}

/// `name` lowercased, punctuation dropped, its words sorted: `Wei  ZHANG` and
/// `Zhang, Wei` are both `wei zhang`.
pub fn normalise_name(name: &str) -> String {
    let cleaned = words_of(name);
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    words.sort_unstable();
    words.join(" ")
}

/// A company name normalised, without its legal form (`Acme Trading Co., Ltd.` and
/// `ACME Trading` are both `acme trading`).
pub fn normalise_company(name: &str) -> String {
    const FORMS: [&str; 12] = [
        "co",
        "company",
        "corp",
        "corporation",
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "gmbh",
        "plc",
        "group",
    ];
    let mut name = name.to_owned();
    for suffix in ["有限责任公司", "股份有限公司", "有限公司", "集团", "公司"] {
        name = name.replace(suffix, " ");
    }
    words_of(&name)
        .split_whitespace()
        .filter(|w| !FORMS.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` lowercased, with a space for every character that is not a letter or digit.
fn words_of(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let keep = c.is_alphanumeric();
            c.to_lowercase()
                .filter(move |_| keep)
                .chain((!keep).then_some(' '))
        })
        .collect()
}

/// What one record is compared on.
#[derive(Debug, Default)]
struct Prepared {
    row: u32,
    email: Option<String>,
    phone: Option<String>,
    name: String,
    region: Option<String>,
    /// The account (contacts) or the industry (accounts), as text.
    group: Option<String>,
    owner: Option<u32>,
    birth_year: Option<i32>,
    gender: Option<String>,
}

/// Candidate duplicates among the live contacts or accounts of a snapshot.
///
/// # Errors
/// [`Error::InvalidArgument`] for another kind, or a storage failure.
pub fn duplicate_candidates<S: Snapshot + ?Sized>(
    snapshot: &S,
    kind: EntityKind,
    options: &DuplicateOptions,
) -> Result<DuplicateReport> {
    let records: Vec<Prepared> = match kind {
        EntityKind::Contact => snapshot
            .records::<Contact>()?
            .into_iter()
            .filter(|(_, c)| c.deleted_at.is_none())
            .map(|(id, c)| Prepared {
                row: id.row(),
                email: c
                    .email
                    .as_deref()
                    .and_then(|e| normalise_email(e, options.provider_rules)),
                phone: c
                    .phone
                    .as_deref()
                    .and_then(|p| normalise_phone(p, &options.country_code)),
                name: normalise_name(&c.name),
                region: c.region,
                group: c.account.map(|a| a.row().to_string()),
                owner: None,
                birth_year: c.birth_year,
                gender: c.gender,
            })
            .collect(),
        EntityKind::Account => snapshot
            .records::<Account>()?
            .into_iter()
            .filter(|(_, a)| a.deleted_at.is_none())
            .map(|(id, a)| Prepared {
                row: id.row(),
                name: normalise_company(&a.name),
                region: a.region,
                group: a.industry.map(|i| i.trim().to_lowercase()),
                owner: a.owner.map(|o| o.row()),
                ..Prepared::default()
            })
            .collect(),
        other => {
            return Err(Error::InvalidArgument(format!(
                "duplicate candidates are found among contacts and accounts, not {other}"
            )));
        }
    };
    let mut report = DuplicateReport {
        records: records.len() as u64,
        ..DuplicateReport::default()
    };

    // Blocking keys, as (hash, index into `records`), sorted so that equal keys meet.
    let mut keys: Vec<(u64, u32)> = Vec::with_capacity(records.len() * 12);
    for (index, record) in records.iter().enumerate() {
        let index = index as u32;
        if let Some(email) = &record.email {
            keys.push((key(&(1u8, email)), index));
        }
        if let Some(phone) = &record.phone {
            keys.push((key(&(2u8, phone)), index));
        }
        if record.name.is_empty() {
            continue;
        }
        // A name is compared within its region and, for a contact, within its account.
        let region = record.region.as_deref().unwrap_or_default();
        let account = (kind == EntityKind::Contact)
            .then_some(record.group.as_deref())
            .flatten();
        let chars: Vec<char> = record.name.chars().collect();
        // Long names keep their whole-name key only: one typo in them still leaves the
        // email or phone to find the pair. The last variant leaves nothing out.
        let variants = if chars.len() <= 32 { chars.len() } else { 0 };
        for leave_out in 0..=variants {
            keys.push((name_key(3, region, &chars, leave_out), index));
            if let Some(account) = account {
                keys.push((name_key(4, account, &chars, leave_out), index));
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();

    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for block in keys.chunk_by(|a, b| a.0 == b.0) {
        if block.len() < 2 {
            continue;
        }
        if block.len() > options.max_block {
            report.oversized_blocks += 1;
            continue;
        }
        for (i, a) in block.iter().enumerate() {
            for b in &block[i + 1..] {
                pairs.push((a.1.min(b.1), a.1.max(b.1)));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();

    report.compared = pairs.len() as u64;
    for (i, j) in pairs {
        let (a, b) = (&records[i as usize], &records[j as usize]);
        let candidate = score(kind, a, b, options);
        if candidate.score >= options.min_score {
            report.candidates.push(candidate);
        }
    }
    report.candidates.sort_by(|x, y| {
        y.score
            .cmp(&x.score)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    Ok(report)
}

/// The blocking hash of a key.
fn key(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The blocking hash of a name within `scope`, without its character `leave_out`
/// (none when it is past the end), hashed without building the shorter name.
fn name_key(tag: u8, scope: &str, chars: &[char], leave_out: usize) -> u64 {
    let mut hasher = DefaultHasher::new();
    tag.hash(&mut hasher);
    scope.hash(&mut hasher);
    for (i, c) in chars.iter().enumerate() {
        if i != leave_out {
            hasher.write_u32(u32::from(*c));
        }
    }
    hasher.finish()
}

/// The candidate two records make, before the threshold.
fn score(kind: EntityKind, a: &Prepared, b: &Prepared, options: &DuplicateOptions) -> Candidate {
    let mut points: i32 = 0;
    let mut reasons = BTreeSet::new();
    let mut add = |reason: MatchReason, value: i32| {
        reasons.insert(reason);
        points += value;
    };
    let mut conflict = false;
    if let (Some(x), Some(y)) = (&a.email, &b.email) {
        if x == y {
            add(MatchReason::SameEmail, 90);
        } else {
            add(MatchReason::DifferentEmails, 0);
            conflict = true;
        }
    }
    if let (Some(x), Some(y)) = (&a.phone, &b.phone)
        && x == y
    {
        add(MatchReason::SamePhone, 60);
    }
    let similarity = if a.name.is_empty() || b.name.is_empty() {
        0.0
    } else {
        strsim::jaro_winkler(&a.name, &b.name)
    };
    // A company's name says more than a person's: people share names far more often.
    let same_name = if kind == EntityKind::Account { 60 } else { 40 };
    if !a.name.is_empty() && a.name == b.name {
        add(MatchReason::SameName, same_name);
    } else if similarity >= options.name_similarity {
        add(MatchReason::SimilarName, same_name * 3 / 4);
    }
    if let (Some(x), Some(y)) = (&a.group, &b.group)
        && x == y
    {
        add(MatchReason::SameAccount, 20);
    }
    if let (Some(x), Some(y)) = (a.owner, b.owner)
        && x == y
    {
        add(MatchReason::SameOwner, 10);
    }
    if let (Some(x), Some(y)) = (a.birth_year, b.birth_year) {
        if x == y {
            add(MatchReason::SameBirthYear, 10);
        } else {
            add(MatchReason::DifferentBirthYear, -30);
        }
    }
    if let (Some(x), Some(y)) = (&a.gender, &b.gender)
        && x != y
    {
        add(MatchReason::DifferentGender, -20);
    }
    if let (Some(x), Some(y)) = (&a.region, &b.region)
        && x != y
    {
        add(MatchReason::DifferentRegion, -10);
    }
    let score = points.clamp(0, 100) as u32;
    Candidate {
        kind,
        a: a.row.min(b.row),
        b: a.row.max(b.row),
        score,
        name_similarity: similarity,
        reasons,
        automatic: score >= 95 && !conflict,
    }
}
