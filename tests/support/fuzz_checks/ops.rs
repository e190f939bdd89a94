//! ops_model input: the operations decoded from fuzz bytes, and their value pools.

use super::ByteReader;

/// Most operations decoded from one input.
pub const MAX_OPS: usize = 96;

pub(super) const STAGES: [&str; 7] = [
    "prospect",
    "responder",
    "new_customer",
    "active",
    "dormant",
    "churned",
    // Not part of the contact lifecycle.
    "vip",
];
pub(super) const KNOWN_STAGES: usize = 6;
pub(super) const NAMES: [&str; 4] = ["Li Lei", "Han Meimei", "", "Zhao Wei"];
/// The first two are the same address once normalised; the last is not an address.
pub(super) const EMAILS: [&str; 5] = [
    "ann@example.com",
    " ANN@Example.com ",
    "bob@example.com",
    "cy@example.org",
    "not-an-email",
];
pub(super) const REGIONS: [&str; 3] = ["shanghai", "beijing", "shenzhen"];
/// The last is refused (surrounding space).
pub(super) const TAGS: [&str; 5] = ["vip", "gold", "churn_risk", "b2b", " bad"];
pub(super) const VALID_TAGS: usize = 4;
pub(super) const ACTOR: &str = "fuzzer";

/// One decoded operation. Targets are indexes into the model's contacts; one past the end
/// names a contact that does not exist.
#[derive(Debug, Clone)]
pub enum Op {
    /// Insert a contact.
    Insert {
        /// Index into `NAMES`.
        name: usize,
        /// Index into `EMAILS`, or none.
        email: Option<usize>,
        /// Index into `REGIONS`, or none.
        region: Option<usize>,
        /// Bit set over the valid tags.
        tags: u8,
        /// Lifetime value in whole units.
        value: u8,
        /// Index into `STAGES`, or none for the machine's first stage.
        stage: Option<usize>,
    },
    /// Replace a contact's caller fields, keeping tags and stage.
    Update {
        /// Contact index.
        target: usize,
        /// Index into `NAMES`.
        name: usize,
        /// Index into `EMAILS`, or none.
        email: Option<usize>,
        /// Index into `REGIONS`, or none.
        region: Option<usize>,
        /// Lifetime value in whole units.
        value: u8,
    },
    /// Add a tag.
    AddTag {
        /// Contact index.
        target: usize,
        /// Index into `TAGS`.
        tag: usize,
    },
    /// Remove a tag.
    RemoveTag {
        /// Contact index.
        target: usize,
        /// Index into `TAGS`.
        tag: usize,
    },
    /// A plain stage move.
    Move {
        /// Contact index.
        target: usize,
        /// Index into `STAGES`.
        stage: usize,
    },
    /// A regress, with or without a reason.
    Regress {
        /// Contact index.
        target: usize,
        /// Index into `STAGES`.
        stage: usize,
        /// Whether a reason is given.
        reason: bool,
    },
    /// Move to the recycle bin.
    SoftDelete {
        /// Contact index.
        target: usize,
    },
    /// Bring back from the recycle bin.
    Restore {
        /// Contact index.
        target: usize,
    },
    /// A paid order of the contact, which updates its figures and may move its stage.
    PaidOrder {
        /// Contact index.
        target: usize,
        /// Total in whole units.
        amount: u8,
    },
    /// Commit the open transaction.
    Commit,
    /// Abort the open transaction.
    Abort,
}

fn maybe(reader: &mut ByteReader<'_>, n: usize) -> Option<usize> {
    let choice = reader.below(n + 1);
    (choice < n).then_some(choice)
}

/// Decodes up to [`MAX_OPS`] operations. `contacts` bounds targets: the decoder keeps a
/// running upper bound of how many contacts may exist so targets stay small.
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let mut reader = ByteReader::new(data);
    let mut ops = Vec::new();
    let mut inserts = 0usize;
    while !reader.is_empty() && ops.len() < MAX_OPS {
        let target_of = |reader: &mut ByteReader<'_>, inserts: usize| reader.below(inserts + 1);
        let op = match reader.below(12) {
            0 | 1 => {
                inserts += 1;
                Op::Insert {
                    name: reader.below(NAMES.len()),
                    email: maybe(&mut reader, EMAILS.len()),
                    region: maybe(&mut reader, REGIONS.len()),
                    tags: reader.byte() & 0b1111,
                    value: reader.byte(),
                    stage: maybe(&mut reader, STAGES.len()),
                }
            }
            2 => Op::Update {
                target: target_of(&mut reader, inserts),
                name: reader.below(NAMES.len()),
                email: maybe(&mut reader, EMAILS.len()),
                region: maybe(&mut reader, REGIONS.len()),
                value: reader.byte(),
            },
            3 => Op::AddTag {
                target: target_of(&mut reader, inserts),
                tag: reader.below(TAGS.len()),
            },
            4 => Op::RemoveTag {
                target: target_of(&mut reader, inserts),
                tag: reader.below(TAGS.len()),
            },
            5 => Op::Move {
                target: target_of(&mut reader, inserts),
                stage: reader.below(STAGES.len()),
            },
            6 => Op::Regress {
                target: target_of(&mut reader, inserts),
                stage: reader.below(STAGES.len()),
                reason: reader.flag(),
            },
            7 => Op::SoftDelete {
                target: target_of(&mut reader, inserts),
            },
            8 => Op::Restore {
                target: target_of(&mut reader, inserts),
            },
            9 => Op::PaidOrder {
                target: target_of(&mut reader, inserts),
                amount: reader.byte(),
            },
            10 => Op::Commit,
            _ => Op::Abort,
        };
        ops.push(op);
    }
    ops
}
