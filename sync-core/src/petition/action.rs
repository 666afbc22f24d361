//! Petition actions: the verbs REST clients and phone apps use, each turned
//! into one timeline event or conversation message.

use serde::{Deserialize, Serialize};

use super::PetitionDoc;
use super::event::{ContactMethod, EventBody};
use crate::author::Author;
use crate::channel::Category;
use crate::doc::Message;
use crate::error::SchemaError;
use crate::ids::{EntryId, UnitId};
use crate::time::Timestamp;

/// One thing a user does to a petition. Handler actions name the unit acted for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PetitionAction {
    Sign {
        unit: UnitId,
    },
    Transfer {
        unit: UnitId,
        to: UnitId,
        #[serde(default)]
        assist: Vec<UnitId>,
        #[serde(default)]
        note: Option<String>,
    },
    Accept {
        unit: UnitId,
    },
    Return {
        unit: UnitId,
        reason: String,
    },
    Contact {
        unit: UnitId,
        method: ContactMethod,
        #[serde(default)]
        note: Option<String>,
    },
    Progress {
        unit: UnitId,
        note: String,
    },
    Reply {
        unit: UnitId,
        text: String,
    },
    Escalate {
        unit: UnitId,
        to: UnitId,
        reason: String,
    },
    Supervise {
        unit: UnitId,
        note: String,
    },
    /// A rating: by the writer (no unit) or recorded by a handler on a follow-up visit.
    FollowUp {
        #[serde(default)]
        unit: Option<UnitId>,
        rating: u8,
        #[serde(default)]
        comment: Option<String>,
    },
    Publish {
        unit: UnitId,
        summary: String,
    },
    Close {
        unit: UnitId,
        #[serde(default)]
        note: Option<String>,
    },
    Reopen {
        #[serde(default)]
        unit: Option<UnitId>,
        reason: String,
    },
    Merge {
        unit: UnitId,
        into: String,
    },
    Withdraw {
        #[serde(default)]
        reason: Option<String>,
    },
    /// Files the petition under another category; the lead writes it.
    Reclassify {
        unit: UnitId,
        category: Category,
        reason: String,
    },
    /// Adds or removes assisting units; the lead stays.
    ChangeAssists {
        unit: UnitId,
        #[serde(default)]
        add: Vec<UnitId>,
        #[serde(default)]
        remove: Vec<UnitId>,
    },
    /// A message in the petition's conversation.
    Comment {
        text: String,
        #[serde(default)]
        attachments: Vec<String>,
        #[serde(default)]
        reply_to: Option<EntryId>,
    },
}

impl PetitionAction {
    /// The name clients use, e.g. `"sign"`.
    pub fn name(&self) -> &'static str {
        match self {
            PetitionAction::Sign { .. } => "sign",
            PetitionAction::Transfer { .. } => "transfer",
            PetitionAction::Accept { .. } => "accept",
            PetitionAction::Return { .. } => "return",
            PetitionAction::Contact { .. } => "contact",
            PetitionAction::Progress { .. } => "progress",
            PetitionAction::Reply { .. } => "reply",
            PetitionAction::Escalate { .. } => "escalate",
            PetitionAction::Supervise { .. } => "supervise",
            PetitionAction::FollowUp { .. } => "follow_up",
            PetitionAction::Publish { .. } => "publish",
            PetitionAction::Close { .. } => "close",
            PetitionAction::Reopen { .. } => "reopen",
            PetitionAction::Merge { .. } => "merge",
            PetitionAction::Withdraw { .. } => "withdraw",
            PetitionAction::Reclassify { .. } => "reclassify",
            PetitionAction::ChangeAssists { .. } => "change_assists",
            PetitionAction::Comment { .. } => "comment",
        }
    }

    /// The unit acted for and the event body, or `None` for a comment.
    fn into_event(self) -> Result<(Option<UnitId>, EventBody), Comment> {
        use PetitionAction as A;
        Ok(match self {
            A::Sign { unit } => (Some(unit), EventBody::Signed),
            A::Transfer { unit, to, assist, note } => (Some(unit), EventBody::Transferred { to, assist, note }),
            A::Accept { unit } => (Some(unit), EventBody::Accepted),
            A::Return { unit, reason } => (Some(unit), EventBody::Returned { reason }),
            A::Contact { unit, method, note } => (Some(unit), EventBody::Contacted { method, note }),
            A::Progress { unit, note } => (Some(unit), EventBody::Progress { note }),
            A::Reply { unit, text } => (Some(unit), EventBody::Replied { text }),
            A::Escalate { unit, to, reason } => (
                Some(unit),
                EventBody::Escalated {
                    to,
                    reason,
                    clock: None,
                },
            ),
            A::Supervise { unit, note } => (Some(unit), EventBody::Supervised { note }),
            A::FollowUp { unit, rating, comment } => (unit, EventBody::FollowUp { rating, comment }),
            A::Publish { unit, summary } => (Some(unit), EventBody::Published { summary }),
            A::Close { unit, note } => (Some(unit), EventBody::Closed { note }),
            A::Reopen { unit, reason } => (unit, EventBody::Reopened { reason }),
            A::Merge { unit, into } => (Some(unit), EventBody::Merged { into }),
            A::Withdraw { reason } => (None, EventBody::Withdrawn { reason }),
            A::Reclassify { unit, category, reason } => (Some(unit), EventBody::Reclassified { category, reason }),
            A::ChangeAssists { unit, add, remove } => (Some(unit), EventBody::AssistsChanged { add, remove }),
            A::Comment {
                text,
                attachments,
                reply_to,
            } => {
                return Err(Comment {
                    text,
                    attachments,
                    reply_to,
                });
            }
        })
    }

    /// Writes the action into `doc` as one change by `author`.
    pub fn apply(self, doc: &mut PetitionDoc, author: &mut Author, now: Timestamp) -> Result<EntryId, SchemaError> {
        match self.into_event() {
            Ok((unit, body)) => doc.record(author, now, unit, body),
            Err(Comment {
                text,
                attachments,
                reply_to,
            }) => {
                let message = Message {
                    reply_to,
                    attachments,
                    ..Message::draft(text)
                };
                doc.post(author, now, message)
            }
        }
    }
}

/// Why the workflow would set an action aside against the current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// The workflow rule (`petition::status::rules`), e.g. `already-signed`.
    pub rule: String,
    /// The event that made the action inapplicable, if one did.
    pub after: Option<EntryId>,
}

impl PetitionAction {
    /// Writes the action like [`PetitionAction::apply`], then asks the
    /// workflow what becomes of it against the document as it now stands.
    ///
    /// An action taken online (a REST request) that the workflow would set
    /// aside at once is a mistake the person should hear of, not a silent
    /// no-op: the caller discards the edit and reports the rule. Offline
    /// edits that merge later keep their set-aside semantics (they are
    /// written with [`PetitionAction::apply`] and derived like any event).
    pub fn apply_online(
        self,
        doc: &mut PetitionDoc,
        author: &mut Author,
        now: Timestamp,
    ) -> Result<Result<EntryId, SetAside>, SchemaError> {
        let id = self.apply(doc, author, now)?;
        Ok(match doc.state()?.outcome(&id) {
            Some(super::Outcome::Superseded { rule, after }) => Err(SetAside {
                rule: rule.clone(),
                after: after.clone(),
            }),
            _ => Ok(id),
        })
    }
}

struct Comment {
    text: String,
    attachments: Vec<String>,
    reply_to: Option<EntryId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_from_the_json_clients_send() {
        let a: PetitionAction = serde_json::from_str(r#"{"action":"sign","unit":"station-a"}"#).unwrap();
        assert_eq!(
            a,
            PetitionAction::Sign {
                unit: UnitId::new("station-a").unwrap()
            }
        );
        let a: PetitionAction = serde_json::from_str(r#"{"action":"contact","unit":"s","method":"visit"}"#).unwrap();
        assert_eq!(a.name(), "contact");
        for bad in [
            r#"{"action":"sign"}"#,
            r#"{"action":"fly","unit":"s"}"#,
            r#"{"action":"sign","unit":"s","x":1}"#,
        ] {
            assert!(serde_json::from_str::<PetitionAction>(bad).is_err(), "{bad}");
        }
    }
}
