//! Activities: interactions and follow-ups (seed 001) that drive a contact's "last
//! interaction" and interaction count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{FieldProblem, check_text, day, opt_ref, record_common, record_impl, sealed};
use super::{
    AccountId, ContactEffect, ContactId, Contribution, DealId, EntityKind, Field, OwnerId,
    Timestamp, Value,
};

/// What an activity was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// A contact.
    Contact(ContactId),
    /// An account.
    Account(AccountId),
    /// A deal.
    Deal(DealId),
}

impl Subject {
    /// The subject re-pointed from row `from` of `kind` to row `to`; whether it was.
    pub(crate) fn repoint(&mut self, kind: EntityKind, from: u32, to: u32) -> bool {
        if self.reference() != (kind, from) {
            return false;
        }
        *self = match self {
            Subject::Contact(_) => Subject::Contact(ContactId::new(to)),
            Subject::Account(_) => Subject::Account(AccountId::new(to)),
            Subject::Deal(_) => Subject::Deal(DealId::new(to)),
        };
        true
    }

    /// [`Subject::repoint`] undone where it still holds.
    pub(crate) fn repoint_back(
        &mut self,
        before: Subject,
        kind: EntityKind,
        survivor: u32,
        other: u32,
    ) -> bool {
        if before.reference() == (kind, other) && self.reference() == (kind, survivor) {
            *self = before;
            true
        } else {
            false
        }
    }

    pub(crate) fn reference(self) -> (EntityKind, u32) {
        match self {
            Subject::Contact(id) => (EntityKind::Contact, id.get()),
            Subject::Account(id) => (EntityKind::Account, id.get()),
            Subject::Deal(id) => (EntityKind::Deal, id.get()),
        }
    }
}

/// The kind of an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ActivityKind {
    /// Phone call.
    Call,
    /// Email.
    Email,
    /// Meeting.
    Meeting,
    /// On-site visit.
    Visit,
    /// Internal note.
    #[default]
    Note,
    /// Response to a campaign.
    CampaignResponse,
    /// Visit to the website.
    WebVisit,
}

impl ActivityKind {
    /// Lowercase name used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Call => "call",
            ActivityKind::Email => "email",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Visit => "visit",
            ActivityKind::Note => "note",
            ActivityKind::CampaignResponse => "campaign_response",
            ActivityKind::WebVisit => "web_visit",
        }
    }
}

/// Who started an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Direction {
    /// The customer reached out (moves a Prospect to Responder).
    Inbound,
    /// The brand reached out.
    #[default]
    Outbound,
}

/// An interaction or follow-up record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Call, email, meeting …
    pub kind: ActivityKind,
    /// Inbound or outbound.
    pub direction: Direction,
    /// What it was about; must exist and be live.
    pub subject: Subject,
    /// Who handled it.
    pub owner: Option<OwnerId>,
    /// When it happened.
    pub at: Timestamp,
    /// Outcome as recorded.
    pub outcome: Option<String>,
    /// Custom field values.
    pub custom: BTreeMap<String, Value>,
    /// Creation time; filled in when `None` on insert.
    pub created_at: Option<Timestamp>,
    /// *Engine-maintained*.
    pub updated_at: Timestamp,
    /// *Engine-maintained*.
    pub deleted_at: Option<Timestamp>,
}

impl Activity {
    /// An activity about `subject` at `at`, everything else default.
    pub fn new(kind: ActivityKind, direction: Direction, subject: Subject, at: Timestamp) -> Self {
        Activity {
            kind,
            direction,
            subject,
            owner: None,
            at,
            outcome: None,
            custom: BTreeMap::new(),
            created_at: None,
            updated_at: Timestamp(0),
            deleted_at: None,
        }
    }
}

record_impl!(Activity, ActivityId, Activity);

type F = Field<Activity>;

/// The subject's row id when it is of `kind`.
fn subject_row(subject: Option<Subject>, kind: EntityKind) -> Option<u32> {
    subject
        .map(Subject::reference)
        .filter(|(k, _)| *k == kind)
        .map(|(_, row)| row)
}

impl sealed::RecordInternal for Activity {
    record_common!();

    const AFFECTS_CONTACTS: bool = true;
    const FIELDS: &'static [F] = &[
        F::cat("kind", |a, t, f| t.cat(f, a.kind.as_str())),
        F::cat("direction", |a, t, f| {
            t.cat(
                f,
                match a.direction {
                    Direction::Inbound => "inbound",
                    Direction::Outbound => "outbound",
                },
            )
        }),
        F::id("owner", EntityKind::Owner, |a, t, f| {
            t.cat_id(f, a.owner.map(|o| o.get()))
        }),
        F::id("contact", EntityKind::Contact, |a, t, f| {
            t.cat_id(f, subject_row(Some(a.subject), EntityKind::Contact))
        }),
        F::id("account", EntityKind::Account, |a, t, f| {
            t.cat_id(f, subject_row(Some(a.subject), EntityKind::Account))
        }),
        F::id("deal", EntityKind::Deal, |a, t, f| {
            t.cat_id(f, subject_row(Some(a.subject), EntityKind::Deal))
        }),
        F::date("at", |a, t, f| t.num(f, a.at.day())),
        F::date("created", |a, t, f| t.num_opt(f, a.created_at.map(day))),
    ];

    fn contact_effect(&self) -> Option<ContactEffect> {
        Some(ContactEffect {
            contact: match self.subject {
                Subject::Contact(id) => Some(id),
                _ => None,
            },
            live: self.deleted_at.is_none(),
            contribution: Contribution::Activity {
                inbound: self.direction == Direction::Inbound,
                at: self.at,
            },
        })
    }

    fn repoint(&mut self, kind: EntityKind, from: u32, to: u32) -> bool {
        self.subject.repoint(kind, from, to)
    }

    fn repoint_back(&mut self, before: &Self, kind: EntityKind, survivor: u32, other: u32) -> bool {
        self.subject
            .repoint_back(before.subject, kind, survivor, other)
    }

    fn references(&self) -> Vec<(EntityKind, u32)> {
        let mut out = vec![self.subject.reference()];
        opt_ref(EntityKind::Owner, self.owner, &mut out);
        out
    }

    fn check(&self) -> Result<(), FieldProblem> {
        if let Some(outcome) = &self.outcome {
            check_text("outcome", outcome)?;
        }
        Ok(())
    }
}
