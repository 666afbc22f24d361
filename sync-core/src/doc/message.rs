//! Messages: the entries of a room and of a petition's conversation.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc};
use serde::{Deserialize, Serialize};

use super::am;
use super::{check_attachment, check_text, limits};
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{EntryId, UserId};

/// Someone a message calls on.
///
/// One encoding everywhere, in documents and on the wire: the text `"@all"`
/// for every member of the room, else the user id (`"officer-li"`). Reading
/// also takes the forms older clients sent (`"all"`, `"@officer-li"`,
/// `{"user": "officer-li"}`), so nothing they stored stops reading.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Mention {
    User(UserId),
    /// `@all`: every member of the room.
    All,
}

impl Mention {
    /// The one text form: `"@all"` or the user id.
    pub fn to_text(&self) -> String {
        match self {
            Mention::User(u) => u.to_string(),
            Mention::All => "@all".into(),
        }
    }

    /// Reads the text form, as documents store it.
    pub fn from_text(s: &str) -> Result<Self, SchemaError> {
        if s == "@all" {
            Ok(Mention::All)
        } else {
            UserId::new(s).map(Mention::User)
        }
    }

    /// Reads what a client may send: the text form, or the older `"all"` and `"@user-id"`.
    pub fn from_client(s: &str) -> Result<Self, SchemaError> {
        match s {
            "@all" | "all" => Ok(Mention::All),
            _ => UserId::new(s.strip_prefix('@').unwrap_or(s)).map(Mention::User),
        }
    }
}

impl Serialize for Mention {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Mention {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Tagged { user: String },
        }
        let text = match Form::deserialize(deserializer)? {
            Form::Text(s) => s,
            Form::Tagged { user } => user,
        };
        Mention::from_client(&text).map_err(serde::de::Error::custom)
    }
}

/// One message. Its id is its stamp: unique per writer, ordered the same everywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub by: UserId,
    pub at: Hlc,
    pub text: String,
    #[serde(default)]
    pub mentions: Vec<Mention>,
    #[serde(default)]
    pub reply_to: Option<EntryId>,
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Work-type tag (legal publicity, dispute mediation, …).
    #[serde(default)]
    pub tag: Option<String>,
    /// The cross-room appeal (a lost schoolbag, a missing person) this
    /// message posts or resolves: the same id in every room it went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appeal: Option<String>,
}

impl Message {
    /// A message with only its content: `post` fills in the author and the
    /// stamp when it is written.
    pub fn draft(text: impl Into<String>) -> Self {
        Message {
            by: UserId::new("draft").expect("a valid id"),
            at: Hlc {
                wall_ms: 0,
                counter: 0,
                node: "draft".into(),
            },
            text: text.into(),
            mentions: Vec::new(),
            reply_to: None,
            attachments: Vec::new(),
            tag: None,
            appeal: None,
        }
    }

    pub fn id(&self) -> EntryId {
        EntryId::new(self.at.to_string()).expect("an hlc is a valid entry id")
    }

    pub fn validate(&self) -> Result<(), SchemaError> {
        check_text("text", &self.text, limits::BODY, self.attachments.is_empty())?;
        if self.mentions.len() > limits::LIST || self.attachments.len() > limits::LIST {
            return Err(SchemaError::InvalidValue {
                field: "message".into(),
                reason: "too many mentions or attachments".into(),
            });
        }
        self.attachments.iter().try_for_each(|a| check_attachment(a))?;
        if let Some(tag) = &self.tag {
            check_text("tag", tag, limits::SHORT, true)?;
        }
        if let Some(appeal) = &self.appeal {
            check_text("appeal", appeal, limits::SHORT, true)?;
        }
        Ok(())
    }

    pub(crate) fn read(doc: &impl ReadDoc, obj: &ObjId) -> Result<Self, SchemaError> {
        let msg = Message {
            by: am::parse(doc, obj, "by")?,
            at: am::req_hlc(doc, obj, "at")?,
            text: am::opt_str(doc, obj, "text")?.unwrap_or_default(),
            mentions: am::str_list(doc, obj, "mentions")?
                .iter()
                .map(|m| Mention::from_text(m))
                .collect::<Result<_, _>>()?,
            reply_to: am::parse_opt(doc, obj, "reply_to")?,
            attachments: am::str_list(doc, obj, "attachments")?,
            tag: am::opt_str(doc, obj, "tag")?,
            appeal: am::opt_str(doc, obj, "appeal")?,
        };
        msg.validate()?;
        Ok(msg)
    }

    /// Appends this message as a new map at the end of `list`.
    pub(crate) fn append<T: Transactable>(&self, tx: &mut T, list: &ObjId) -> Result<(), SchemaError> {
        self.validate()?;
        let obj = tx.insert_object(list, tx.length(list), ObjType::Map)?;
        am::put_str(tx, &obj, "by", self.by.as_str())?;
        am::put_str(tx, &obj, "at", &self.at.to_string())?;
        am::put_str(tx, &obj, "text", &self.text)?;
        if !self.mentions.is_empty() {
            am::put_str_list(tx, &obj, "mentions", self.mentions.iter().map(Mention::to_text))?;
        }
        am::put_opt_str(tx, &obj, "reply_to", self.reply_to.as_ref().map(|r| r.as_str()))?;
        if !self.attachments.is_empty() {
            am::put_str_list(tx, &obj, "attachments", &self.attachments)?;
        }
        am::put_opt_str(tx, &obj, "tag", self.tag.as_deref())?;
        am::put_opt_str(tx, &obj, "appeal", self.appeal.as_deref())?;
        Ok(())
    }
}
