//! What a new entry may hold, and how much a change and a document may grow.
//!
//! Typed readers read an entry's known fields and ignore the rest, so
//! without this check anything extra (a 5 MB `junk` field, a message with
//! 100,000 keys) would be stored and synced to every device. Each kind of
//! entry lists its schema's fields here; policy refuses a new entry with any
//! other field (`unknown-field`), values written twice or deleted inside what
//! a change creates (`written-twice`: stored, never seen), an entry over
//! [`MAX_ENTRY_BYTES`] (`entry-too-large`), a change over its limits
//! (`change-too-large`) and a document that would grow past its limits
//! (`document-full`).

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef};

use crate::petition::EventKind;

/// Bytes of one entry (a timeline event, a message, a moderation record, a
/// household, a header or a document's info): keys and values, lists included.
/// The largest entry the schema allows (a 10,000-character body of 3-byte
/// characters with 64 attachments) is about 35 KB.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Bytes of one change as Automerge encodes it, uncompressed. A room created
/// with 10,000 members is one change of about 210 KB.
pub const MAX_CHANGE_BYTES: usize = 2 * 1024 * 1024;
/// Bytes of a change's message and extra bytes together (Lianxin's writers
/// send none).
pub const MAX_CHANGE_NOTE_BYTES: usize = 1024;
/// Operations one change makes on existing containers: each new timeline
/// event, message, moderation record, receipt, household or household field,
/// member, tag or pin is one.
pub const MAX_CHANGE_ENTRIES: usize = 1_000;
/// Timeline events and conversation messages of one petition.
pub const MAX_PETITION_ENTRIES: usize = 1_000;
/// Messages, redactions and raised-petition links of one room.
pub const MAX_ROOM_ENTRIES: usize = 1_000_000;
/// Members of one room.
pub const MAX_ROOM_MEMBERS: usize = 100_000;
/// Receipts of one notice.
pub const MAX_NOTICE_RECEIPTS: usize = 1_000_000;
/// Households of one village directory.
pub const MAX_HOUSEHOLDS: usize = 20_000;
/// Households, rooms and units a notice's audience names, together.
pub const MAX_AUDIENCE: usize = 100_000;

/// Fields of a room message or a petition's conversation message.
pub(crate) const MESSAGE: &[&str] = &[
    "by",
    "at",
    "text",
    "mentions",
    "reply_to",
    "attachments",
    "tag",
    "appeal",
];
/// Fields of a redaction record.
pub(crate) const REDACTION: &[&str] = &["by", "at", "message", "reason"];
/// Fields of a raised-as-petition link.
pub(crate) const RAISED: &[&str] = &["by", "at", "message", "petition"];
/// Fields of a petition header.
pub(crate) const HEADER: &[&str] = &[
    "id",
    "channel",
    "category",
    "title",
    "body",
    "submitter",
    "recorded_by",
    "anonymous",
    "contact",
    "location_unit",
    "lat",
    "lon",
    "attachments",
    "source_room",
    "source_message",
];
/// Fields of a room's info.
pub(crate) const ROOM_INFO: &[&str] = &["id", "kind", "name", "unit", "household", "created_by"];
/// Fields of a notice's info.
pub(crate) const NOTICE_INFO: &[&str] = &["id", "kind", "title", "body", "unit", "by", "at"];
/// Fields of a notice's audience (lists).
pub(crate) const AUDIENCE: &[&str] = &["households", "rooms", "units"];
/// Fields of a directory's info.
pub(crate) const DIRECTORY_INFO: &[&str] = &["village", "created_by"];

/// Whether a timeline event of `kind` has a field `key`.
pub(crate) fn event_has(kind: EventKind, key: &str) -> bool {
    if matches!(key, "kind" | "by" | "at" | "unit") {
        return true;
    }
    let own: &[&str] = match kind {
        EventKind::Submitted | EventKind::Signed | EventKind::Accepted => &[],
        EventKind::Transferred => &["to", "assist", "note"],
        EventKind::Returned | EventKind::Reopened => &["reason"],
        EventKind::Contacted => &["method", "note"],
        EventKind::Progress | EventKind::Supervised => &["note"],
        EventKind::Replied => &["text"],
        EventKind::Escalated => &["to", "reason", "clock"],
        EventKind::FollowUp => &["rating", "comment"],
        EventKind::Published => &["summary"],
        EventKind::Closed => &["note"],
        EventKind::Merged => &["into"],
        EventKind::Withdrawn => &["reason"],
        EventKind::Reclassified => &["category", "reason"],
        EventKind::AssistsChanged => &["add", "remove"],
    };
    own.contains(&key)
}

/// Why a record's shape was refused.
#[derive(Debug)]
pub(crate) enum ShapeError {
    /// A key outside the schema.
    UnknownField(String),
    /// A key holding two values at once (written twice concurrently).
    Conflict(String),
    /// A map inside the record, or an object inside one of its lists.
    Nested(String),
}

/// The size of a record that passed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Size {
    /// Bytes of keys and values.
    pub bytes: usize,
    /// Items of the record's lists.
    pub items: usize,
}

/// Checks that the map `obj` holds only keys `has` admits, each with one
/// value that is a scalar or a list of scalars, and measures it.
pub(crate) fn record(doc: &impl ReadDoc, obj: &ObjId, has: impl Fn(&str) -> bool) -> Result<Size, ShapeError> {
    let mut size = Size::default();
    for key in doc.keys(obj) {
        if !has(&key) {
            return Err(ShapeError::UnknownField(key));
        }
        let values = doc.get_all(obj, key.as_str()).unwrap_or_default();
        let [(value, id)] = values.as_slice() else {
            return Err(ShapeError::Conflict(key));
        };
        size.bytes += key.len();
        match value {
            Value::Scalar(s) => size.bytes += scalar_bytes(s),
            Value::Object(ObjType::List) => {
                for item in doc.list_range(id, ..) {
                    match item.value {
                        ValueRef::Scalar(s) => size.bytes += item_bytes(&s),
                        ValueRef::Object(_) => return Err(ShapeError::Nested(key)),
                    }
                    size.items += 1;
                }
            }
            Value::Object(_) => return Err(ShapeError::Nested(key)),
        }
    }
    Ok(size)
}

fn item_bytes(s: &ScalarValueRef<'_>) -> usize {
    match s {
        ScalarValueRef::Str(s) => s.len(),
        ScalarValueRef::Bytes(b) => b.len(),
        ScalarValueRef::Unknown { bytes, .. } => bytes.len(),
        _ => 8,
    }
}

fn scalar_bytes(s: &ScalarValue) -> usize {
    match s {
        ScalarValue::Str(s) => s.len(),
        ScalarValue::Bytes(b) => b.len(),
        ScalarValue::Unknown { bytes, .. } => bytes.len(),
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;
    use crate::doc::{Mention, Message};
    use crate::hlc::Hlc;
    use crate::ids::{EntryId, UserId};

    /// What the typed writer writes is what the field list admits.
    #[test]
    fn a_message_with_every_field_set_passes() {
        let mut doc = AutoCommit::new();
        let list = doc.put_object(ROOT, "messages", ObjType::List).unwrap();
        let m = Message {
            by: UserId::new("u").unwrap(),
            at: Hlc {
                wall_ms: 1,
                counter: 0,
                node: "n".into(),
            },
            text: "hello".into(),
            mentions: vec![Mention::All],
            reply_to: Some(EntryId::new("x").unwrap()),
            attachments: vec![format!("sha256:{}", "a".repeat(64))],
            tag: Some("t".into()),
            appeal: Some("a".into()),
        };
        m.append(&mut doc, &list).unwrap();
        let (_, obj) = doc.get(&list, 0).unwrap().unwrap();
        assert_eq!(doc.keys(&obj).count(), MESSAGE.len());
        let size = record(&doc, &obj, |k| MESSAGE.contains(&k)).unwrap();
        assert_eq!(size.items, 2);
        doc.put(&obj, "junk", "x").unwrap();
        assert!(matches!(
            record(&doc, &obj, |k| MESSAGE.contains(&k)),
            Err(ShapeError::UnknownField(k)) if k == "junk"
        ));
    }
}
