//! The stage name a staged record (contact, deal) is in. The machines that say which
//! stages exist and how records move between them are in `lifecycle`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stage name. Empty means "not set" (on insert: the machine's first stage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stage(String);

impl Stage {
    /// A stage by name.
    pub fn new(name: impl Into<String>) -> Stage {
        Stage(name.into())
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether no stage is set.
    pub fn is_unset(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Stage {
    fn from(name: &str) -> Stage {
        Stage(name.to_owned())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(none)" } else { &self.0 })
    }
}
