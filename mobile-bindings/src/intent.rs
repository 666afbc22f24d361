//! Local edits as intents: what the user meant, written into a document as one change.
//!
//! Every edit is journalled with the hash of the change it made until the
//! server acknowledges that change. If the server refuses an edit, Automerge
//! changes made after it on the same document depend on it and cannot be
//! sent alone; their intents are written again on top of the server's state
//! instead ([`crate::rebase`]).

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use sync_core::directory::{DirectoryDoc, Household};
use sync_core::doc::Message;
use sync_core::notice::{NoticeDoc, ReceiptKind};
use sync_core::petition::{PetitionAction, PetitionDoc};
use sync_core::room::RoomDoc;
use sync_core::{Author, EntryId, HouseholdId, Timestamp};

use crate::error::{LianxinError, Result};

/// One local edit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    /// A new document (petition, raised petition…): never replayed.
    Create { what: String },
    /// A petition verb.
    Petition { action: PetitionAction },
    /// A room message.
    Post {
        text: String,
        mentions: Vec<String>,
        reply_to: Option<EntryId>,
    },
    /// A moderation record hiding a message.
    Redact { message: EntryId, reason: String },
    /// The room's link to a petition raised from one of its messages: never
    /// replayed alone (the petition was created with it).
    Raised { message: EntryId, petition: String },
    /// A receipt on a notice for a household.
    Receipt { household: HouseholdId, kind: ReceiptKind },
    /// A household added or edited in a village directory.
    Household { household: Household },
}

impl Intent {
    /// A short description for the app, e.g. `sign for station-east`.
    pub fn describe(&self) -> String {
        match self {
            Intent::Create { what } => what.clone(),
            Intent::Petition { action } => {
                let json = serde_json::to_value(action).unwrap_or_default();
                match json.get("unit").and_then(|u| u.as_str()) {
                    Some(unit) => format!("{} for {unit}", action.name()),
                    None => action.name().to_string(),
                }
            }
            Intent::Post { text, .. } => format!("message {:?}", short(text)),
            Intent::Redact { message, .. } => format!("redaction of message {message}"),
            Intent::Raised { petition, .. } => format!("link to raised petition {petition}"),
            Intent::Receipt { household, kind } => format!("{kind} receipt for household {household}"),
            Intent::Household { household } => format!("household {} ({})", household.id, household.name),
        }
    }

    /// Whether the intent can be written again on another state of its document.
    pub fn replayable(&self) -> bool {
        !matches!(self, Intent::Create { .. } | Intent::Raised { .. })
    }

    /// Writes the intent into `doc` as one change by `author`. Returns the
    /// new entry's id where the edit makes one.
    pub fn apply(&self, doc: AutoCommit, author: &mut Author, now: Timestamp) -> Result<(AutoCommit, Option<String>)> {
        match self {
            Intent::Create { what } => Err(LianxinError::invalid(format!("{what} cannot be written again"))),
            Intent::Raised { .. } => Err(LianxinError::invalid(
                "the link to a raised petition is written with the petition",
            )),
            Intent::Petition { action } => {
                let mut p = PetitionDoc::from_doc(doc)?;
                let id = action.clone().apply(&mut p, author, now)?;
                Ok((p.into_doc(), Some(id.to_string())))
            }
            Intent::Post {
                text,
                mentions,
                reply_to,
            } => {
                let mut r = RoomDoc::from_doc(doc)?;
                let message = Message {
                    mentions: mentions
                        .iter()
                        .map(|m| crate::records::parse_mention(m))
                        .collect::<Result<_>>()?,
                    reply_to: reply_to.clone(),
                    ..Message::draft(text.clone())
                };
                let id = r.post(author, now, message)?;
                Ok((r.into_doc(), Some(id.to_string())))
            }
            Intent::Redact { message, reason } => {
                let mut r = RoomDoc::from_doc(doc)?;
                if !r.raw_messages()?.iter().any(|m| &m.id() == message) {
                    return Err(LianxinError::not_found(format!("no message {message} in this room")));
                }
                let id = r.redact(author, now, message, reason)?;
                Ok((r.into_doc(), Some(id.to_string())))
            }
            Intent::Receipt { household, kind } => {
                let mut n = NoticeDoc::from_doc(doc)?;
                n.record_receipt(author, now, household, *kind)?;
                Ok((n.into_doc(), None))
            }
            Intent::Household { household } => {
                let mut d = DirectoryDoc::from_doc(doc)?;
                d.upsert_household(author, now, household)?;
                Ok((d.into_doc(), Some(household.id.to_string())))
            }
        }
    }
}

fn short(text: &str) -> String {
    let mut s: String = text.chars().take(24).collect();
    if text.chars().count() > 24 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::UnitId;

    #[test]
    fn intents_round_trip_through_json_and_describe_themselves() {
        let i = Intent::Petition {
            action: PetitionAction::Sign {
                unit: UnitId::new("station-east").unwrap(),
            },
        };
        let json = serde_json::to_string(&i).unwrap();
        assert_eq!(serde_json::from_str::<Intent>(&json).unwrap(), i);
        assert_eq!(i.describe(), "sign for station-east");
        assert!(i.replayable());
        assert!(!Intent::Create { what: "x".into() }.replayable());
    }
}
