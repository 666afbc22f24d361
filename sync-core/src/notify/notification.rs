//! The notification record, its recipients and kinds, and how its key is built.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::channel::text_enum;
use crate::ids::{EntryId, HouseholdId, UnitId, UserId};
use crate::time::Timestamp;

/// Who a notification is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// One person.
    User(UserId),
    /// A unit's shared inbox: whoever is on duty for it (see [`super::Roster`]).
    Unit(UnitId),
    /// A household: its representative and whoever the host delivers household mail to.
    Household(HouseholdId),
    /// Everyone an `@all` in a room reached: the room's members when the
    /// message came in, except its writer, in id order. One notification
    /// stands for all of them (stored once, delivered to each), so an @all
    /// in a room of ten thousand is one record, not ten thousand.
    Members(Vec<UserId>),
    /// The members of a room (its storage id): a petition raised from the
    /// room reports back there when its result is published.
    Room(String),
}

impl fmt::Display for Recipient {
    /// `user:<id>`, `unit:<id>`, `household:<id>` or, for a room's members, `all`, as used in
    /// keys (the key's document part already names the room).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::User(u) => write!(f, "user:{u}"),
            Recipient::Unit(u) => write!(f, "unit:{u}"),
            Recipient::Household(h) => write!(f, "household:{h}"),
            Recipient::Members(_) => f.write_str("all"),
            Recipient::Room(r) => write!(f, "room:{r}"),
        }
    }
}

text_enum!(
    /// What a notification is about. The text form is part of the key.
    NotificationKind {
        /// 新诉求: a new petition waits in the lead unit's queue to be signed.
        NewPetition = "new_petition",
        /// 派单: the petition was transferred to the unit, which should accept it.
        Assigned = "assigned",
        /// 退单: the petition came back to the unit that dispatched it.
        Returned = "returned",
        /// 协办: the unit was asked to co-handle the petition.
        AssistRequested = "assist_requested",
        /// 提级: the petition was escalated to the unit.
        Escalated = "escalated",
        /// 督办: a leader put the petition under supervision.
        Supervised = "supervised",
        /// The petition's status changed in a way its recipient cares about.
        StatusChanged = "status_changed",
        /// A progress note, for the submitter.
        Progress = "progress",
        /// The submitter rated the handling.
        FollowUp = "follow_up",
        /// A new message in a petition's conversation.
        PetitionMessage = "petition_message",
        /// An @mention (or @all) in a room.
        Mention = "mention",
        /// A new message on a household line (户户通).
        LineMessage = "line_message",
        /// A broadcast notice for a household.
        Notice = "notice",
        /// A petition clock is about to run out.
        DueSoon = "due_soon",
        /// A petition clock ran out.
        Overdue = "overdue",
        /// A petition's result was published on the public board (公开晒单).
        ResultPublished = "result_published",
    }
);

/// One notification for one recipient.
///
/// Its `key` is its identity: a notification derived twice (by two server
/// nodes, after a retry or a restart) has the same key, so a store with a
/// unique index on `key` keeps exactly one. The key format is described in
/// the [module documentation](super).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The identity: `{doc}/{source}/{what}/{target}`.
    pub key: String,
    /// Who it is for.
    pub recipient: Recipient,
    /// What it is about.
    pub kind: NotificationKind,
    /// The document it is about: its own id (petition header, room or notice info `id`).
    pub doc: String,
    /// The timeline event or message it is about, if any.
    #[serde(default)]
    pub entry: Option<EntryId>,
    /// Delivered at once, also by SMS where the host has a gateway.
    pub urgent: bool,
    /// When it happened: the entry's stamp, or the sweep's `now` for clocks.
    pub at: Timestamp,
    /// A short text for the inbox and the push, in Chinese.
    pub text: String,
}

/// Where a notification comes from: a document and an entry, a clock, or an issue.
pub(crate) struct Source<'a> {
    pub doc: &'a str,
    /// The key segment naming the entry or clock.
    pub segment: String,
    pub entry: Option<EntryId>,
    pub at: Timestamp,
}

impl Source<'_> {
    /// The notification of `kind` from this source for `recipient`.
    pub fn notify(&self, recipient: Recipient, kind: NotificationKind, urgent: bool, text: String) -> Notification {
        Notification {
            key: key(self.doc, &self.segment, kind.as_str(), &recipient.to_string()),
            recipient,
            kind,
            doc: self.doc.to_owned(),
            entry: self.entry.clone(),
            urgent,
            at: self.at,
            text,
        }
    }
}

/// `{doc}/{source}/{what}/{target}`. Ids, entry stamps and kinds never
/// contain `/`; the document id is free text, so `%` and `/` in it are
/// percent-encoded to keep the four parts apart.
pub(crate) fn key(doc: &str, source: &str, what: &str, target: &str) -> String {
    let mut out = String::with_capacity(doc.len() + source.len() + what.len() + target.len() + 3);
    for c in doc.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    for part in [source, what, target] {
        out.push('/');
        out.push_str(part);
    }
    out
}

/// At most `max` characters of `s` on one line, with `…` when cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut out: String = one_line.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// How many characters of a title or message an inbox line shows.
pub(crate) const TITLE_CHARS: usize = 30;
pub(crate) const SNIPPET_CHARS: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_parts_apart_whatever_the_document_id() {
        assert_eq!(key("p-1", "e", "k", "unit:u"), "p-1/e/k/unit:u");
        assert_eq!(key("a/b%", "e", "k", "unit:u"), "a%2Fb%25/e/k/unit:u");
        assert_ne!(key("a/b", "e", "k", "t"), key("a", "b/e", "k", "t"));
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("泉水被截流", 5), "泉水被截流");
        assert_eq!(clip("泉水被截流，家里断水", 5), "泉水被截流…");
        assert_eq!(clip("a\n b", 5), "a b");
    }

    #[test]
    fn recipients_and_kinds_have_stable_forms() {
        let r = Recipient::Unit(UnitId::new("station-a").unwrap());
        assert_eq!(r.to_string(), "unit:station-a");
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"unit":"station-a"}"#);
        for k in NotificationKind::ALL {
            assert_eq!(k.as_str().parse::<NotificationKind>().unwrap(), *k);
        }
    }
}
