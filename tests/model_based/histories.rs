//! Random histories, with and without reopening, and the cases they shrank to.

use proptest::prelude::*;

use crate::harness::Harness;
use crate::ops::{Op, op};

fn cases() -> u32 {
    std::env::var("CRMDB_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn run_history(ops: &[Op], file: bool) -> Result<(), TestCaseError> {
    let mut h = Harness::new(file);
    for (i, op) in ops.iter().enumerate() {
        h.run(op)
            .map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_histories_match_the_model(ops in proptest::collection::vec(op(false), 1..40)) {
        run_history(&ops, false)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases() / 8 + 1))]

    #[test]
    fn random_histories_survive_reopen(ops in proptest::collection::vec(op(true), 1..30)) {
        run_history(&ops, true)?;
    }
}

/// Shrunk from `random_histories_match_the_model`: a contact in the recycle bin whose
/// paid order is deleted meanwhile must come back with figures recomputed from its live
/// orders (documented in the engine: "figures of contacts in the recycle bin are
/// recomputed on restore").
#[test]
fn restoring_a_contact_recomputes_its_figures() {
    let new_contact = || Op::NewContact {
        email: None,
        region: None,
        tags: Vec::new(),
        ltv: 0,
        owner: None,
        account: None,
        stage: None,
    };
    let ops = [
        new_contact(),
        new_contact(),
        Op::NewOrder {
            who: 1,
            paid: true,
            total: 0,
        },
        Op::Delete { kind: 0, who: 1 },
        Op::Delete { kind: 3, who: 0 },
        Op::Restore { kind: 0, who: 1 },
    ];
    let mut h = Harness::new(false);
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = h.run(op) {
            panic!("step {i}: {e}");
        }
    }
}
