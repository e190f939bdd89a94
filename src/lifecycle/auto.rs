//! Which automatic contact move an order or activity triggers (pure).

use super::{AutoMove, Machines, Trigger};
use crate::schema::Stage;

/// What happened to a contact that may move it automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A paid order counted for the contact; `first` when it had none before.
    PaidOrder { first: bool },
    /// An inbound activity about the contact was recorded.
    InboundActivity,
}

/// The automatic move `event` triggers for a contact in `stage`, with the cause
/// recorded in its history entry: the first matching rule in declaration order.
pub(crate) fn triggered<'m>(
    machines: &'m Machines,
    event: Event,
    stage: &Stage,
) -> Option<(&'m AutoMove, &'static str)> {
    let rule = machines.auto_moves.iter().find(|m| {
        let fires = match (m.trigger, event) {
            (Trigger::InboundActivity, Event::InboundActivity) => true,
            (Trigger::FirstOrder, Event::PaidOrder { first }) => first,
            (Trigger::RepeatOrder, Event::PaidOrder { first }) => !first,
            (Trigger::AnyOrder, Event::PaidOrder { .. }) => true,
            _ => false,
        };
        fires && m.from.contains(stage)
    })?;
    let cause = match rule.trigger {
        Trigger::FirstOrder => "first paid order",
        Trigger::RepeatOrder => "repeat paid order",
        Trigger::AnyOrder => "paid order",
        Trigger::InboundActivity => "inbound activity",
    };
    Some((rule, cause))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::stages::contact::*;

    #[test]
    fn default_rules_fire_as_the_spec_says() {
        let machines = Machines::default();
        let cases = [
            (
                Event::PaidOrder { first: true },
                PROSPECT,
                Some((NEW_CUSTOMER, "first paid order")),
            ),
            (
                Event::PaidOrder { first: true },
                RESPONDER,
                Some((NEW_CUSTOMER, "first paid order")),
            ),
            (
                Event::PaidOrder { first: false },
                NEW_CUSTOMER,
                Some((ACTIVE, "repeat paid order")),
            ),
            (
                Event::PaidOrder { first: false },
                DORMANT,
                Some((ACTIVE, "paid order")),
            ),
            (
                Event::PaidOrder { first: true },
                CHURNED,
                Some((ACTIVE, "paid order")),
            ),
            (Event::PaidOrder { first: false }, ACTIVE, None),
            (
                Event::InboundActivity,
                PROSPECT,
                Some((RESPONDER, "inbound activity")),
            ),
            (Event::InboundActivity, RESPONDER, None),
            (Event::InboundActivity, DORMANT, None),
        ];
        for (event, from, want) in cases {
            let got = triggered(&machines, event, &Stage::new(from))
                .map(|(rule, cause)| (rule.to.as_str().to_owned(), cause));
            assert_eq!(
                got,
                want.map(|(to, cause)| (to.to_owned(), cause)),
                "{event:?} from {from}"
            );
        }
    }
}
