//! The flat records and enums apps see. Enumerations stored as text in the
//! documents (channels, categories, statuses, roles…) travel as their stable
//! text form, so the bindings stay small and new values need no new release.

use sync_core::doc::Message;
use sync_core::petition::{Outcome, PetitionAction, PetitionSummary, TimelineEvent};
use sync_core::room::MessageView;
use sync_core::{EntryId, UnitId, UserId};

use crate::error::{LianxinError, Result};

/// One unit of the organisation tree (city, county, station, village, department…).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct UnitRecord {
    pub id: String,
    pub name: String,
    /// `city`, `county`, `station`, `town`, `village`, `village_group`, `party_group`, `department` or `task_force`.
    pub kind: String,
    pub parent: Option<String>,
}

/// A membership as `/api/me` lists it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct MembershipRecord {
    pub unit: String,
    /// `resident`, `officer`, `leader`, `department_staff`, `admin` or `system`.
    pub role: String,
}

/// Who is signed in on this replica and where the server is.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SessionConfig {
    /// `http://host:port` or `https://host`; the sync socket is `ws(s)://…/batch`.
    pub server_url: String,
    pub user_id: String,
    pub memberships: Vec<MembershipRecord>,
    pub household: Option<String>,
    /// The organisation tree the local policy checks jurisdiction against.
    pub units: Vec<UnitRecord>,
}

/// A petition in a list.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PetitionSummaryRecord {
    /// The document id (bs58check, as the REST API names it).
    pub id: String,
    pub title: String,
    pub channel: String,
    pub category: String,
    /// Derived from the timeline: `submitted`, `signed`, `dispatched`, `handling`, `replied`, `closed`, `withdrawn`, `merged`.
    pub status: String,
    pub lead_unit: Option<String>,
    pub submitter: String,
    pub location_unit: String,
    pub submitted_ms: Option<i64>,
    /// The earliest deadline of a clock not yet met.
    pub next_due_ms: Option<i64>,
    pub overdue: bool,
    /// The writer spoke after the last word from a handler.
    pub awaiting_handler: bool,
    pub rating: Option<u8>,
    /// Local edits the server has not acknowledged yet.
    pub unsynced: bool,
}

/// One timeline event with its derived outcome.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct TimelineEntryRecord {
    pub id: String,
    /// `submitted`, `signed`, `transferred`, `contacted`, `replied`…
    pub kind: String,
    pub by: String,
    pub at_ms: i64,
    pub unit: Option<String>,
    /// The event's main text (reply, note, reason, summary), if it has one.
    pub text: Option<String>,
    /// The kind-specific fields as JSON (`{"to": …, "assist": […]}` for a transfer…).
    pub details_json: String,
    /// False when the workflow set the event aside (e.g. a second signature).
    pub applied: bool,
    pub superseded_rule: Option<String>,
}

/// A message of a petition's conversation or of a room.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct MessageRecord {
    pub id: String,
    pub by: String,
    pub at_ms: i64,
    pub text: String,
    /// User ids, and `@all`.
    pub mentions: Vec<String>,
    pub reply_to: Option<String>,
    pub attachments: Vec<String>,
    pub tag: Option<String>,
    pub redacted: bool,
    pub redaction_reason: Option<String>,
    /// The petition this message was raised as.
    pub raised_petition: Option<String>,
    pub pinned: bool,
}

/// A petition in full.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PetitionRecord {
    pub summary: PetitionSummaryRecord,
    pub body: String,
    pub recorded_by: String,
    pub anonymous: bool,
    pub contact: Option<String>,
    pub assist_units: Vec<String>,
    pub source_room: Option<String>,
    pub source_message: Option<String>,
    pub timeline: Vec<TimelineEntryRecord>,
    pub conversation: Vec<MessageRecord>,
}

/// What a resident (or an officer recording a call or visit) files.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewPetitionRecord {
    /// `director_mailbox`, `chief_line`, `household_line`, …
    pub channel: String,
    /// `consultation`, `help`, `complaint`, `report`, `lead`, `suggestion`, …
    pub category: String,
    pub title: String,
    pub body: String,
    /// Where the matter is (usually the village).
    pub location_unit: String,
    /// The unit it goes to (a station, the mailbox task force…).
    pub routed_to: String,
    /// The resident it belongs to; `None` for the signed-in user.
    pub submitter: Option<String>,
    pub anonymous: bool,
    pub contact: Option<String>,
    /// Content hashes `sha256:<64 hex>` of attachments uploaded separately.
    pub attachments: Vec<String>,
}

/// Every verb on a petition. Handler verbs name the unit acted for.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum PetitionVerb {
    /// 签收.
    Sign {
        unit: String,
    },
    /// 流转·派单 to `to`, with assisting units.
    Transfer {
        unit: String,
        to: String,
        assist: Vec<String>,
        note: Option<String>,
    },
    /// 接单.
    Accept {
        unit: String,
    },
    /// 退单.
    Return {
        unit: String,
        reason: String,
    },
    /// 联系来信人 by `phone`, `visit` or `message`.
    Contact {
        unit: String,
        method: String,
        note: Option<String>,
    },
    Progress {
        unit: String,
        note: String,
    },
    /// 回复.
    Reply {
        unit: String,
        text: String,
    },
    /// 提级.
    Escalate {
        unit: String,
        to: String,
        reason: String,
    },
    /// 督办.
    Supervise {
        unit: String,
        note: String,
    },
    /// 回访评单: a rating from 1 to 5, by the writer (no unit) or recorded by a handler.
    Rate {
        unit: Option<String>,
        rating: u8,
        comment: Option<String>,
    },
    /// 公开.
    Publish {
        unit: String,
        summary: String,
    },
    /// 办结.
    Close {
        unit: String,
        note: Option<String>,
    },
    Reopen {
        unit: Option<String>,
        reason: String,
    },
    /// 并单 into another petition.
    Merge {
        unit: String,
        into: String,
    },
    Withdraw {
        reason: Option<String>,
    },
    /// A message in the petition's conversation.
    Comment {
        text: String,
        reply_to: Option<String>,
        attachments: Vec<String>,
    },
}

fn unit(s: &str) -> Result<UnitId> {
    UnitId::new(s).map_err(Into::into)
}

fn entry(s: &str) -> Result<EntryId> {
    EntryId::new(s).map_err(Into::into)
}

impl PetitionVerb {
    /// The sync-core action this verb writes.
    pub(crate) fn to_action(&self) -> Result<PetitionAction> {
        use PetitionAction as A;
        Ok(match self {
            PetitionVerb::Sign { unit: u } => A::Sign { unit: unit(u)? },
            PetitionVerb::Transfer {
                unit: u,
                to,
                assist,
                note,
            } => A::Transfer {
                unit: unit(u)?,
                to: unit(to)?,
                assist: assist.iter().map(|a| unit(a)).collect::<Result<_>>()?,
                note: note.clone(),
            },
            PetitionVerb::Accept { unit: u } => A::Accept { unit: unit(u)? },
            PetitionVerb::Return { unit: u, reason } => A::Return {
                unit: unit(u)?,
                reason: reason.clone(),
            },
            PetitionVerb::Contact { unit: u, method, note } => A::Contact {
                unit: unit(u)?,
                method: method.parse()?,
                note: note.clone(),
            },
            PetitionVerb::Progress { unit: u, note } => A::Progress {
                unit: unit(u)?,
                note: note.clone(),
            },
            PetitionVerb::Reply { unit: u, text } => A::Reply {
                unit: unit(u)?,
                text: text.clone(),
            },
            PetitionVerb::Escalate { unit: u, to, reason } => A::Escalate {
                unit: unit(u)?,
                to: unit(to)?,
                reason: reason.clone(),
            },
            PetitionVerb::Supervise { unit: u, note } => A::Supervise {
                unit: unit(u)?,
                note: note.clone(),
            },
            PetitionVerb::Rate {
                unit: u,
                rating,
                comment,
            } => A::FollowUp {
                unit: u.as_deref().map(unit).transpose()?,
                rating: *rating,
                comment: comment.clone(),
            },
            PetitionVerb::Publish { unit: u, summary } => A::Publish {
                unit: unit(u)?,
                summary: summary.clone(),
            },
            PetitionVerb::Close { unit: u, note } => A::Close {
                unit: unit(u)?,
                note: note.clone(),
            },
            PetitionVerb::Reopen { unit: u, reason } => A::Reopen {
                unit: u.as_deref().map(unit).transpose()?,
                reason: reason.clone(),
            },
            PetitionVerb::Merge { unit: u, into } => A::Merge {
                unit: unit(u)?,
                into: into.clone(),
            },
            PetitionVerb::Withdraw { reason } => A::Withdraw { reason: reason.clone() },
            PetitionVerb::Comment {
                text,
                reply_to,
                attachments,
            } => A::Comment {
                text: text.clone(),
                attachments: attachments.clone(),
                reply_to: reply_to.as_deref().map(entry).transpose()?,
            },
        })
    }
}

/// A room in a list.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RoomSummaryRecord {
    pub id: String,
    pub name: String,
    /// `officer_group`, `village_room` or `household_line`.
    pub kind: String,
    pub unit: String,
    pub household: Option<String>,
    pub members: u32,
    pub messages: u32,
    pub last_message_ms: Option<i64>,
    pub unsynced: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct MemberRecord {
    pub user: String,
    /// `owner`, `moderator` or `member`.
    pub role: String,
}

/// A room in full: members, tags and messages as readers see them (redacted content removed).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct RoomRecord {
    pub summary: RoomSummaryRecord,
    pub created_by: String,
    pub members: Vec<MemberRecord>,
    pub tags: Vec<String>,
    pub messages: Vec<MessageRecord>,
}

/// A notice, with this user's household's receipts.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NoticeRecord {
    pub id: String,
    /// `anti_fraud`, `safety`, `legal`, `reminder` or `general`.
    pub kind: String,
    pub title: String,
    pub body: String,
    pub unit: String,
    pub by: String,
    pub at_ms: i64,
    /// The signed-in user's household read / forwarded it (any member's receipt counts).
    pub read: bool,
    pub forwarded: bool,
    pub unsynced: bool,
}

/// Which receipt to record on a notice for the user's household.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum NoticeReceipt {
    Delivered,
    Read,
    Forwarded,
}

/// A household of a village directory (input and output).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct HouseholdRecord {
    pub id: String,
    pub name: String,
    pub representative: Option<String>,
    pub representative_name: Option<String>,
    pub phone: Option<String>,
    pub group_tag: Option<String>,
    pub officer: Option<String>,
    pub address: Option<String>,
    pub note: Option<String>,
    pub moved_out: bool,
}

/// A village directory.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DirectoryRecord {
    pub id: String,
    pub village: String,
    pub households: Vec<HouseholdRecord>,
    pub unsynced: bool,
}

/// An edit the server refused: reported once as an event, kept in
/// `refused_edits()` until the app dismisses it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RefusedEditRecord {
    /// Pass to `dismiss_refused_edit`.
    pub seq: i64,
    pub doc_id: String,
    /// The refused Automerge change (hex hash).
    pub change: String,
    /// The policy rule's stable name, e.g. `role-required`.
    pub rule: String,
    /// The server's sentence for people.
    pub detail: String,
    /// What the user did, e.g. `sign for station-east`.
    pub what: String,
    pub at_ms: i64,
}

/// Something a sync exchange did.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum SyncEvent {
    /// Changes from the server were applied to a document (or it arrived new).
    DocumentUpdated {
        doc_id: String,
        kind: String,
        created: bool,
    },
    /// The server stored this document's pushed edits.
    Acknowledged { doc_id: String },
    /// The server refused an edit; the replica dropped it (and re-applied the
    /// user's later edits of the same document that did not need it).
    EditRefused { edit: RefusedEditRecord },
    /// Still-valid local edits that had been written after a refused one were
    /// re-applied on top of the server's state and will be sent again.
    EditsReplayed { doc_id: String, count: u32 },
    /// The document is pushed whole next time (the server lacked its history).
    Resync { doc_id: String },
    /// A tier above refused every change the replica held of this document
    /// (say, the petition it filed): it is gone from the replica, with its
    /// notifications; each of its changes was reported as an `EditRefused`.
    DocumentRemoved { doc_id: String, kind: String },
    /// The exchange carried the notification inbox: `added` new ones were
    /// stored and the inbox cursor is now `cursor`.
    Notifications { added: u32, cursor: i64 },
    /// The generation of the server's settings (unit tree, clock rules,
    /// calendar); `sync_now` fetches them only when it changed.
    Settings { generation: u64 },
    /// The server paged its answer: run another exchange.
    More,
    /// The exchange is complete.
    Done { cursor: u64 },
}

/// What `sync_now` did.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncReport {
    pub exchanges: u32,
    pub connections: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub events: Vec<SyncEvent>,
    /// New notifications stored, from the exchange itself or, against an
    /// older server, fetched from its inbox after the sync.
    pub notifications_added: u32,
    /// Why the inbox was not fetched, if it was not (e.g. the server has no inbox).
    pub inbox_note: Option<String>,
}

/// A notification kept locally.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NotificationRecord {
    /// The server inbox's cursor for it: notifications are in cursor order.
    pub cursor: i64,
    /// Its identity: the same notification is never stored twice.
    pub key: String,
    /// `new_petition`, `assigned`, `mention`, `notice`, `overdue`, …
    pub kind: String,
    /// The document it is about: its id as the replica names it (bs58) when
    /// the server gives that, else the document's own id.
    pub doc: String,
    pub entry: Option<String>,
    pub text: String,
    pub urgent: bool,
    pub at_ms: i64,
    pub read: bool,
}

pub(crate) fn summary_record(s: &PetitionSummary, id: String, unsynced: bool) -> PetitionSummaryRecord {
    PetitionSummaryRecord {
        id,
        title: s.title.clone(),
        channel: s.channel.as_str().into(),
        category: s.category.as_str().into(),
        status: s.status.as_str().into(),
        lead_unit: s.lead.as_ref().map(|u| u.to_string()),
        submitter: s.submitter.to_string(),
        location_unit: s.location.to_string(),
        submitted_ms: s.submitted_at.map(|t| t.millis()),
        next_due_ms: s.next_due.map(|t| t.millis()),
        overdue: s.overdue,
        awaiting_handler: s.awaiting_handler,
        rating: s.rating,
        unsynced,
    }
}

pub(crate) fn timeline_record(e: &TimelineEvent, outcome: Option<&Outcome>) -> TimelineEntryRecord {
    use sync_core::petition::EventBody as B;
    let text = match &e.body {
        B::Replied { text } => Some(text.clone()),
        B::Progress { note } | B::Supervised { note } => Some(note.clone()),
        B::Returned { reason }
        | B::Escalated { reason, .. }
        | B::Reopened { reason }
        | B::Reclassified { reason, .. } => Some(reason.clone()),
        B::Published { summary } => Some(summary.clone()),
        B::Contacted { note, .. } | B::Closed { note } | B::Transferred { note, .. } => note.clone(),
        B::FollowUp { comment, .. } => comment.clone(),
        B::Withdrawn { reason } => reason.clone(),
        B::Merged { into } => Some(into.clone()),
        B::Submitted { .. } | B::Signed | B::Accepted | B::AssistsChanged { .. } => None,
    };
    let mut details = serde_json::to_value(&e.body).unwrap_or_default();
    if let Some(map) = details.as_object_mut() {
        map.remove("kind");
    }
    let (applied, superseded_rule) = match outcome {
        Some(Outcome::Superseded { rule, .. }) => (false, Some(rule.clone())),
        _ => (true, None),
    };
    TimelineEntryRecord {
        id: e.id().to_string(),
        kind: e.kind().as_str().into(),
        by: e.by.to_string(),
        at_ms: e.at.wall_ms,
        unit: e.unit.as_ref().map(|u| u.to_string()),
        text,
        details_json: details.to_string(),
        applied,
        superseded_rule,
    }
}

pub(crate) fn message_record(m: &Message) -> MessageRecord {
    MessageRecord {
        id: m.id().to_string(),
        by: m.by.to_string(),
        at_ms: m.at.wall_ms,
        text: m.text.clone(),
        mentions: m.mentions.iter().map(mention_text).collect(),
        reply_to: m.reply_to.as_ref().map(|r| r.to_string()),
        attachments: m.attachments.clone(),
        tag: m.tag.clone(),
        redacted: false,
        redaction_reason: None,
        raised_petition: None,
        pinned: false,
    }
}

pub(crate) fn message_view_record(v: &MessageView) -> MessageRecord {
    MessageRecord {
        redacted: v.redacted.is_some(),
        redaction_reason: v.redacted.as_ref().map(|r| r.reason.clone()),
        raised_petition: v.petition.clone(),
        pinned: v.pinned,
        ..message_record(&v.message)
    }
}

fn mention_text(m: &sync_core::doc::Mention) -> String {
    match m {
        sync_core::doc::Mention::User(u) => u.to_string(),
        sync_core::doc::Mention::All => "@all".into(),
    }
}

/// Parses `@all` or a user id.
pub(crate) fn parse_mention(s: &str) -> Result<sync_core::doc::Mention> {
    if s == "@all" {
        Ok(sync_core::doc::Mention::All)
    } else {
        let id = s.strip_prefix('@').unwrap_or(s);
        Ok(sync_core::doc::Mention::User(
            UserId::new(id).map_err(|e| LianxinError::invalid(format!("mention {s:?}: {e}")))?,
        ))
    }
}

/// Mentions written in the text as `@user-id` (and `@all`), in order, once each.
pub(crate) fn mentions_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "，。,;；:：!！?？()（）".contains(c)) {
        let Some(name) = word.strip_prefix('@') else { continue };
        let name = if name == "all" {
            "@all".to_string()
        } else {
            name.to_string()
        };
        let valid = name == "@all" || UserId::new(name.as_str()).is_ok();
        if valid && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_read_from_the_text() {
        assert_eq!(
            mentions_in("@officer-li 请看一下，@all 注意 @officer-li"),
            vec!["officer-li".to_string(), "@all".to_string()]
        );
        assert!(mentions_in("email a@b").is_empty());
    }

    #[test]
    fn every_verb_becomes_its_action() {
        let a = PetitionVerb::Contact {
            unit: "station-east".into(),
            method: "visit".into(),
            note: None,
        }
        .to_action()
        .unwrap();
        assert_eq!(a.name(), "contact");
        let bad = PetitionVerb::Contact {
            unit: "station-east".into(),
            method: "pigeon".into(),
            note: None,
        };
        assert!(matches!(bad.to_action(), Err(LianxinError::InvalidInput(_))));
    }
}
