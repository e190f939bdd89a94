//! The operations of a history, their value pools and their random strategies.

use proptest::prelude::*;

pub(crate) const EMAILS: [&str; 4] = ["ann@x.io", "bob@x.io", " ANN@X.io", "cy@x.io"];
/// Index 6 is not a stage of the contact machine.
pub(crate) const STAGE_NAMES: [&str; 7] = [
    "prospect",
    "responder",
    "new_customer",
    "active",
    "dormant",
    "churned",
    "bogus",
];
pub(crate) const REGIONS: [&str; 3] = ["shanghai", "beijing", "shenzhen"];
pub(crate) const TAGS: [&str; 4] = ["vip", "gold", "b2b", "newsletter"];
pub(crate) const LTVS: [i64; 7] = [0, 1, 100, 99_999, -250, i64::MAX, i64::MIN];

#[derive(Debug, Clone)]
pub(crate) enum Op {
    NewContact {
        email: Option<u8>,
        region: Option<u8>,
        tags: Vec<u8>,
        ltv: u8,
        owner: Option<u8>,
        account: Option<u8>,
        stage: Option<u8>,
    },
    Update {
        who: u8,
        region: Option<u8>,
        ltv: u8,
        email: Option<u8>,
        owner: Option<u8>,
    },
    Tag {
        who: u8,
        tag: u8,
        add: bool,
    },
    Move {
        who: u8,
        stage: u8,
    },
    Regress {
        who: u8,
        stage: u8,
        reason: bool,
    },
    Delete {
        kind: u8,
        who: u8,
    },
    Restore {
        kind: u8,
        who: u8,
    },
    Purge {
        kind: u8,
        who: u8,
    },
    NewOwner,
    NewAccount,
    NewOrder {
        who: u8,
        paid: bool,
        total: u8,
    },
    Tick(u8),
    /// Several operations in one transaction, then 0 commit, 1 drop, 2 abort, 3 a
    /// closure returning an error.
    Txn {
        ops: Vec<Op>,
        end: u8,
    },
    Reopen,
}

fn simple_op() -> impl Strategy<Value = Op> {
    let who = || any::<u8>();
    prop_oneof![
        5 => (
            proptest::option::weighted(0.7, 0..EMAILS.len() as u8),
            proptest::option::weighted(0.8, 0..REGIONS.len() as u8),
            proptest::collection::vec(0..TAGS.len() as u8, 0..3),
            0..LTVS.len() as u8,
            proptest::option::weighted(0.4, any::<u8>()),
            proptest::option::weighted(0.3, any::<u8>()),
            proptest::option::weighted(0.3, 0..STAGE_NAMES.len() as u8),
        )
            .prop_map(|(email, region, tags, ltv, owner, account, stage)| Op::NewContact {
                email, region, tags, ltv, owner, account, stage,
            }),
        3 => (
            who(),
            proptest::option::of(0..REGIONS.len() as u8),
            0..LTVS.len() as u8,
            proptest::option::weighted(0.5, 0..EMAILS.len() as u8),
            proptest::option::weighted(0.3, any::<u8>()),
        )
            .prop_map(|(who, region, ltv, email, owner)| Op::Update { who, region, ltv, email, owner }),
        4 => (who(), 0..TAGS.len() as u8, any::<bool>()).prop_map(|(who, tag, add)| Op::Tag { who, tag, add }),
        4 => (who(), 0..STAGE_NAMES.len() as u8).prop_map(|(who, stage)| Op::Move { who, stage }),
        2 => (who(), 0..STAGE_NAMES.len() as u8, any::<bool>())
            .prop_map(|(who, stage, reason)| Op::Regress { who, stage, reason }),
        2 => (0u8..4, who()).prop_map(|(kind, who)| Op::Delete { kind, who }),
        2 => (0u8..4, who()).prop_map(|(kind, who)| Op::Restore { kind, who }),
        1 => (0u8..4, who()).prop_map(|(kind, who)| Op::Purge { kind, who }),
        1 => Just(Op::NewOwner),
        1 => Just(Op::NewAccount),
        2 => (who(), proptest::bool::weighted(0.8), any::<u8>())
            .prop_map(|(who, paid, total)| Op::NewOrder { who, paid, total }),
        1 => (0u8..4).prop_map(Op::Tick),
    ]
}

pub(crate) fn op(reopen: bool) -> impl Strategy<Value = Op> {
    let txn = (proptest::collection::vec(simple_op(), 1..6), 0u8..4)
        .prop_map(|(ops, end)| Op::Txn { ops, end });
    let reopen_weight = if reopen { 1 } else { 0 };
    prop_oneof![
        10 => simple_op(),
        3 => txn,
        reopen_weight => Just(Op::Reopen),
    ]
}
