//! Rooms (议事厅 / 聊天室 / 1:1 line): members, messages, pins, tags,
//! redactions that keep an audit record, and "raise as petition".

use std::collections::{BTreeMap, BTreeSet, HashSet};

use std::borrow::Borrow;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::author::Author;
use crate::channel::text_enum;
use crate::doc::{DocKind, Message, check_text, init_root, limits};
use crate::doc::{am, cache};
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{EntryId, HouseholdId, UnitId, UserId};
use crate::petition::{PetitionDoc, PetitionHeader, SourceRef};
use crate::time::Timestamp;

text_enum!(
    /// What a room is for.
    RoomKind {
        /// "One officer, one group": a village group the officer runs.
        OfficerGroup = "officer_group",
        /// A party-group room with the five-orders loop.
        VillageRoom = "village_room",
        /// A private line between a household and a unit.
        HouseholdLine = "household_line",
    }
);

text_enum!(
    /// A member's standing in a room.
    MemberRole {
        Owner = "owner",
        Moderator = "moderator",
        Member = "member",
    }
);

impl MemberRole {
    pub fn moderates(self) -> bool {
        matches!(self, MemberRole::Owner | MemberRole::Moderator)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub id: String,
    pub kind: RoomKind,
    pub name: String,
    /// The unit the room belongs to; for a household line, the unit party.
    pub unit: UnitId,
    /// The household party of a household line.
    #[serde(default)]
    pub household: Option<HouseholdId>,
    pub created_by: UserId,
}

impl RoomInfo {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_text("id", &self.id, limits::SHORT, true)?;
        check_text("name", &self.name, limits::TITLE, true)?;
        if (self.kind == RoomKind::HouseholdLine) != self.household.is_some() {
            return Err(SchemaError::InvalidValue {
                field: "household".into(),
                reason: "a household line names its household; other rooms do not".into(),
            });
        }
        Ok(())
    }
}

/// A moderation record: the message stays in history, its content is hidden
/// from every view, and who, when and why are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redaction {
    pub by: UserId,
    pub at: Hlc,
    pub message: EntryId,
    pub reason: String,
}

/// A message that was raised as a petition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raised {
    pub by: UserId,
    pub at: Hlc,
    pub message: EntryId,
    pub petition: String,
}

impl Redaction {
    pub(crate) fn read(doc: &impl ReadDoc, o: &ObjId) -> Result<Self, SchemaError> {
        let r = Redaction {
            by: am::parse(doc, o, "by")?,
            at: am::req_hlc(doc, o, "at")?,
            message: am::parse(doc, o, "message")?,
            reason: am::req_str(doc, o, "reason")?,
        };
        check_text("reason", &r.reason, limits::NOTE, true)?;
        Ok(r)
    }
}

impl Raised {
    pub(crate) fn read(doc: &impl ReadDoc, o: &ObjId) -> Result<Self, SchemaError> {
        let r = Raised {
            by: am::parse(doc, o, "by")?,
            at: am::req_hlc(doc, o, "at")?,
            message: am::parse(doc, o, "message")?,
            petition: am::req_str(doc, o, "petition")?,
        };
        check_text("petition", &r.petition, limits::SHORT, true)?;
        Ok(r)
    }
}

/// A message as readers see it: redacted content is gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub id: EntryId,
    #[serde(flatten)]
    pub message: Message,
    pub redacted: Option<Redaction>,
    pub petition: Option<String>,
    pub pinned: bool,
}

#[derive(Debug, Clone)]
pub struct RoomDoc<D = AutoCommit> {
    doc: D,
}

impl RoomDoc {
    /// Creates a room with its creator as owner and `members` as members.
    pub fn create(
        actor: ActorId,
        info: RoomInfo,
        members: impl IntoIterator<Item = (UserId, MemberRole)>,
    ) -> Result<Self, SchemaError> {
        info.validate()?;
        let mut doc = AutoCommit::new().with_actor(actor);
        init_root(&mut doc, DocKind::Room)?;
        let obj = doc.put_object(ROOT, "info", ObjType::Map)?;
        am::put_str(&mut doc, &obj, "id", &info.id)?;
        am::put_str(&mut doc, &obj, "kind", info.kind.as_str())?;
        am::put_str(&mut doc, &obj, "name", &info.name)?;
        am::put_str(&mut doc, &obj, "unit", info.unit.as_str())?;
        am::put_opt_str(&mut doc, &obj, "household", info.household.as_ref().map(|h| h.as_str()))?;
        am::put_str(&mut doc, &obj, "created_by", info.created_by.as_str())?;
        let m = doc.put_object(ROOT, "members", ObjType::Map)?;
        // The creator is the owner, written once: a key written twice in one
        // change is refused (`written-twice`).
        for (user, role) in members {
            if user != info.created_by {
                am::put_str(&mut doc, &m, user.as_str(), role.as_str())?;
            }
        }
        am::put_str(&mut doc, &m, info.created_by.as_str(), MemberRole::Owner.as_str())?;
        for key in ["tags", "pins"] {
            doc.put_object(ROOT, key, ObjType::Map)?;
        }
        for key in ["messages", "redactions", "raised"] {
            doc.put_object(ROOT, key, ObjType::List)?;
        }
        doc.commit();
        Ok(RoomDoc { doc })
    }
}

impl<D: Borrow<AutoCommit>> RoomDoc<D> {
    fn obj(&self, key: &str, ty: ObjType) -> Result<ObjId, SchemaError> {
        am::req_obj(self.d(), &ROOT, key, ty)
    }

    pub fn info(&self) -> Result<RoomInfo, SchemaError> {
        let obj = self.obj("info", ObjType::Map)?;
        let info = RoomInfo {
            id: am::req_str(self.d(), &obj, "id")?,
            kind: am::parse(self.d(), &obj, "kind")?,
            name: am::req_str(self.d(), &obj, "name")?,
            unit: am::parse(self.d(), &obj, "unit")?,
            household: am::parse_opt(self.d(), &obj, "household")?,
            created_by: am::parse(self.d(), &obj, "created_by")?,
        };
        info.validate()?;
        Ok(info)
    }

    pub fn members(&self) -> Result<BTreeMap<UserId, MemberRole>, SchemaError> {
        am::str_map(self.d(), &self.obj("members", ObjType::Map)?, "members")?
            .into_iter()
            .map(|(k, v)| Ok((UserId::new(k)?, v.parse()?)))
            .collect()
    }

    pub fn tags(&self) -> Result<BTreeSet<String>, SchemaError> {
        Ok(am::str_map(self.d(), &self.obj("tags", ObjType::Map)?, "tags")?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Pinned message ids, with who pinned each.
    pub fn pins(&self) -> Result<BTreeMap<EntryId, UserId>, SchemaError> {
        am::str_map(self.d(), &self.obj("pins", ObjType::Map)?, "pins")?
            .into_iter()
            .map(|(k, v)| Ok((EntryId::new(k)?, UserId::new(v)?)))
            .collect()
    }

    /// Messages with their content as stored, in list order.
    pub fn raw_messages(&self) -> Result<Vec<Message>, SchemaError> {
        let list = self.obj("messages", ObjType::List)?;
        am::list_maps(self.d(), &list, "messages")?
            .iter()
            .map(|o| cache::entry(o, || Message::read(self.d(), o)))
            .collect()
    }

    pub fn redactions(&self) -> Result<Vec<Redaction>, SchemaError> {
        let list = self.obj("redactions", ObjType::List)?;
        am::list_maps(self.d(), &list, "redactions")?
            .iter()
            .map(|o| Redaction::read(self.d(), o))
            .collect()
    }

    pub fn raised(&self) -> Result<Vec<Raised>, SchemaError> {
        let list = self.obj("raised", ObjType::List)?;
        am::list_maps(self.d(), &list, "raised")?
            .iter()
            .map(|o| Raised::read(self.d(), o))
            .collect()
    }

    /// Messages as readers see them, in stamp order: redacted content removed,
    /// raised petitions and pins attached.
    pub fn messages(&self) -> Result<Vec<MessageView>, SchemaError> {
        let redactions = self.redactions()?;
        let raised = self.raised()?;
        let pins = self.pins()?;
        let mut out: Vec<MessageView> = self
            .raw_messages()?
            .into_iter()
            .map(|message| view_of(message, &redactions, &raised, &pins))
            .collect();
        out.sort_by(|a, b| a.message.at.cmp(&b.message.at));
        Ok(out)
    }

    /// The messages that are new or read differently since `before` (`None`
    /// for a new room), as readers see them now.
    ///
    /// Only the entries that changed are read in full: finding them walks the
    /// message list by object id, and reads the room's redactions, petition
    /// links and pins, which stay small. So the cost of a post does not grow
    /// with every message the room ever had.
    pub fn message_delta<B: Borrow<AutoCommit>>(
        &self,
        before: Option<&RoomDoc<B>>,
    ) -> Result<MessageDelta, SchemaError> {
        let redactions = self.redactions()?;
        let raised = self.raised()?;
        let pins = self.pins()?;
        let objs = self.entry_objs("messages")?;
        let (known, touched): (HashSet<ObjId>, BTreeSet<EntryId>) = match before {
            None => (HashSet::new(), BTreeSet::new()),
            Some(b) => {
                let mut touched = BTreeSet::new();
                let (old_redactions, old_raised) = (b.redactions()?, b.raised()?);
                let old_pins = b.pins()?;
                touched.extend(
                    redactions
                        .iter()
                        .filter(|r| !old_redactions.contains(r))
                        .map(|r| r.message.clone()),
                );
                touched.extend(
                    raised
                        .iter()
                        .filter(|r| !old_raised.contains(r))
                        .map(|r| r.message.clone()),
                );
                touched.extend(pins.keys().filter(|k| !old_pins.contains_key(*k)).cloned());
                touched.extend(old_pins.keys().filter(|k| !pins.contains_key(*k)).cloned());
                (b.entry_objs("messages")?.into_iter().collect(), touched)
            }
        };
        let mut delta = MessageDelta::default();
        for o in &objs {
            if !known.contains(o) {
                let m = cache::entry(o, || Message::read(self.d(), o))?;
                delta.new.push(view_of(m, &redactions, &raised, &pins));
            } else if !touched.is_empty() {
                let id = EntryId::new(am::req_str(self.d(), o, "at")?)?;
                if touched.contains(&id) {
                    let m = cache::entry(o, || Message::read(self.d(), o))?;
                    delta.changed.push(view_of(m, &redactions, &raised, &pins));
                }
            }
        }
        delta.new.sort_by(|a, b| a.message.at.cmp(&b.message.at));
        delta.changed.sort_by(|a, b| a.message.at.cmp(&b.message.at));
        Ok(delta)
    }

    /// Each message's id and writer, read without its content.
    pub(crate) fn message_writers(&self) -> Result<Vec<(Hlc, UserId)>, SchemaError> {
        self.entry_objs("messages")?
            .iter()
            .map(|o| Ok((am::req_hlc(self.d(), o, "at")?, am::parse(self.d(), o, "by")?)))
            .collect()
    }

    /// The stamps of the redactions and petition links, read without the rest.
    pub(crate) fn moderation_stamps(&self) -> Result<Vec<Hlc>, SchemaError> {
        let mut out = Vec::new();
        for key in ["redactions", "raised"] {
            for o in self.entry_objs(key)? {
                out.push(am::req_hlc(self.d(), &o, "at")?);
            }
        }
        Ok(out)
    }

    fn entry_objs(&self, key: &str) -> Result<Vec<ObjId>, SchemaError> {
        am::list_maps(self.d(), &self.obj(key, ObjType::List)?, key)
    }

    /// Every entry's stamp, which a new entry's stamp must follow.
    fn stamps(&self) -> Result<Vec<Hlc>, SchemaError> {
        let mut s = Vec::new();
        for o in self.entry_objs("messages")? {
            s.push(am::req_hlc(self.d(), &o, "at")?);
        }
        s.extend(self.moderation_stamps()?);
        Ok(s)
    }
}

/// What a change did to a room's messages (see [`RoomDoc::message_delta`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageDelta {
    /// Messages the room did not have before, in stamp order.
    pub new: Vec<MessageView>,
    /// Older messages that were redacted, pinned or unpinned, or raised as a
    /// petition, in stamp order.
    pub changed: Vec<MessageView>,
}

/// `message` as readers see it, given the room's moderation records.
fn view_of(
    mut message: Message,
    redactions: &[Redaction],
    raised: &[Raised],
    pins: &BTreeMap<EntryId, UserId>,
) -> MessageView {
    let id = message.id();
    // The earliest redaction of a message is the one on record.
    let redacted = redactions
        .iter()
        .filter(|r| r.message == id)
        .min_by(|a, b| a.at.cmp(&b.at))
        .cloned();
    if redacted.is_some() {
        message.text.clear();
        message.attachments.clear();
        message.mentions.clear();
    }
    let petition = raised
        .iter()
        .filter(|r| r.message == id)
        .min_by(|a, b| a.at.cmp(&b.at))
        .map(|r| r.petition.clone());
    MessageView {
        pinned: pins.contains_key(&id),
        id,
        message,
        redacted,
        petition,
    }
}

impl RoomDoc {
    pub fn post(&mut self, author: &mut Author, now: Timestamp, message: Message) -> Result<EntryId, SchemaError> {
        self.post_view(author, now, message).map(|v| v.id)
    }

    /// Like [`RoomDoc::post`], returning the message as readers see it: as
    /// written, since nothing can redact, pin or raise it yet.
    pub fn post_view(
        &mut self,
        author: &mut Author,
        now: Timestamp,
        mut message: Message,
    ) -> Result<MessageView, SchemaError> {
        message.by = author.user.clone();
        message.at = author.stamp(&self.stamps()?, now);
        let list = self.obj("messages", ObjType::List)?;
        let result = message.append(&mut self.doc, &list);
        crate::doc::finish(&mut self.doc, result)?;
        Ok(MessageView {
            id: message.id(),
            message,
            redacted: None,
            petition: None,
            pinned: false,
        })
    }

    pub fn set_member(&mut self, user: &UserId, role: Option<MemberRole>) -> Result<(), SchemaError> {
        let m = self.obj("members", ObjType::Map)?;
        let result = match role {
            Some(r) => am::put_str(&mut self.doc, &m, user.as_str(), r.as_str()),
            None => self.doc.delete(&m, user.as_str()).map_err(Into::into),
        };
        crate::doc::finish(&mut self.doc, result)
    }

    pub fn set_tag(&mut self, tag: &str, on: bool) -> Result<(), SchemaError> {
        check_text("tag", tag, limits::SHORT, true)?;
        let t = self.obj("tags", ObjType::Map)?;
        let result = if on {
            self.doc.put(&t, tag, true).map_err(Into::into)
        } else {
            self.doc.delete(&t, tag).map_err(Into::into)
        };
        crate::doc::finish(&mut self.doc, result)
    }

    pub fn set_pin(&mut self, author: &Author, message: &EntryId, on: bool) -> Result<(), SchemaError> {
        let p = self.obj("pins", ObjType::Map)?;
        let result = if on {
            am::put_str(&mut self.doc, &p, message.as_str(), author.user.as_str())
        } else {
            self.doc.delete(&p, message.as_str()).map_err(Into::into)
        };
        crate::doc::finish(&mut self.doc, result)
    }

    pub fn redact(
        &mut self,
        author: &mut Author,
        now: Timestamp,
        message: &EntryId,
        reason: &str,
    ) -> Result<EntryId, SchemaError> {
        check_text("reason", reason, limits::NOTE, true)?;
        let at = author.stamp(&self.stamps()?, now);
        let list = self.obj("redactions", ObjType::List)?;
        let result = (|| {
            let o = self.doc.insert_object(&list, self.doc.length(&list), ObjType::Map)?;
            am::put_str(&mut self.doc, &o, "by", author.user.as_str())?;
            am::put_str(&mut self.doc, &o, "at", &at.to_string())?;
            am::put_str(&mut self.doc, &o, "message", message.as_str())?;
            am::put_str(&mut self.doc, &o, "reason", reason)
        })();
        crate::doc::finish(&mut self.doc, result)?;
        Ok(EntryId::new(at.to_string()).expect("hlc is a valid id"))
    }

    /// Turns a message into a petition: creates the petition (with a link back
    /// to the message) and records the link in this room. Two changes, one per
    /// document; the caller stores or syncs both.
    pub fn raise_as_petition(
        &mut self,
        author: &mut Author,
        now: Timestamp,
        message: &EntryId,
        petition_actor: ActorId,
        mut header: PetitionHeader,
        routed_to: UnitId,
    ) -> Result<PetitionDoc, SchemaError> {
        if !self.raw_messages()?.iter().any(|m| &m.id() == message) {
            return Err(SchemaError::InvalidValue {
                field: "message".into(),
                reason: format!("no message {message} in this room"),
            });
        }
        header.source = Some(SourceRef {
            room: self.info()?.id,
            message: message.clone(),
        });
        let petition = PetitionDoc::create(petition_actor, header.clone(), routed_to, author, now)?;
        self.link_petition(author, now, message, &header.id)?;
        Ok(petition)
    }

    /// Records in this room that `message` was raised as the petition
    /// `petition` (its `automerge:` id), as one change. The petition itself
    /// names the message as its source; together they link both ways.
    pub fn link_petition(
        &mut self,
        author: &mut Author,
        now: Timestamp,
        message: &EntryId,
        petition: &str,
    ) -> Result<(), SchemaError> {
        check_text("petition", petition, limits::SHORT, true)?;
        let at = author.stamp(&self.stamps()?, now);
        let list = self.obj("raised", ObjType::List)?;
        let result = (|| {
            let o = self.doc.insert_object(&list, self.doc.length(&list), ObjType::Map)?;
            am::put_str(&mut self.doc, &o, "by", author.user.as_str())?;
            am::put_str(&mut self.doc, &o, "at", &at.to_string())?;
            am::put_str(&mut self.doc, &o, "message", message.as_str())?;
            am::put_str(&mut self.doc, &o, "petition", petition)
        })();
        crate::doc::finish(&mut self.doc, result)
    }
}

crate::doc::typed_doc!(RoomDoc, DocKind::Room);
