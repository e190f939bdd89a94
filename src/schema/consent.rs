//! Consent: the values of a contact's consent ledger (`txn::consent` writes it).

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// The channels a database starts with.
pub const DEFAULT_CHANNELS: [&str; 4] = ["email", "sms", "phone", "wechat"];

/// The source of the email entries that follow the `unsubscribed` flag.
pub const UNSUBSCRIBED_SOURCE: &str = "unsubscribed";

/// A contact's consent in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConsentStatus {
    /// The contact agreed to be reached this way.
    Granted,
    /// The contact refused, or withdrew.
    Denied,
    /// Nothing known (as for a contact with no entry in the channel).
    Unknown,
}

impl ConsentStatus {
    /// `granted`, `denied` or `unknown`: the value segments compare with.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Granted => "granted",
            ConsentStatus::Denied => "denied",
            ConsentStatus::Unknown => "unknown",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<ConsentStatus> {
        [
            ConsentStatus::Granted,
            ConsentStatus::Denied,
            ConsentStatus::Unknown,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Why processing is lawful (the six bases of GDPR article 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LawfulBasis {
    /// The person consented.
    Consent,
    /// A contract with the person needs it.
    Contract,
    /// The law requires it.
    LegalObligation,
    /// Someone's life depends on it.
    VitalInterests,
    /// A task in the public interest.
    PublicTask,
    /// The controller's legitimate interests.
    LegitimateInterests,
}

/// What the caller records; the engine adds the time and the actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// The channel (one of the database's consent channels).
    pub channel: String,
    /// The status.
    pub status: ConsentStatus,
    /// The lawful basis, if one is recorded.
    pub basis: Option<LawfulBasis>,
    /// Where it was collected (a form, a till, a call).
    pub source: Option<String>,
    /// Free text.
    pub note: Option<String>,
}

impl Consent {
    /// `status` in `channel`, without basis, source or note.
    pub fn new(channel: impl Into<String>, status: ConsentStatus) -> Consent {
        Consent {
            channel: channel.into(),
            status,
            basis: None,
            source: None,
            note: None,
        }
    }
}

impl Consent {
    /// The email entry that follows a change of the `unsubscribed` flag.
    pub(crate) fn unsubscribed(unsubscribed: bool) -> Consent {
        Consent {
            source: Some(UNSUBSCRIBED_SOURCE.into()),
            ..Consent::new(
                "email",
                if unsubscribed {
                    ConsentStatus::Denied
                } else {
                    ConsentStatus::Granted
                },
            )
        }
    }
}

/// One entry of a contact's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEntry {
    /// What was recorded.
    pub consent: Consent,
    /// When (the transaction clock).
    pub at: Timestamp,
    /// Who (the transaction's actor).
    pub actor: String,
}

/// The index field of a channel's state: `consent.<channel>`.
pub(crate) fn consent_field(channel: &str) -> String {
    format!("consent.{channel}")
}
