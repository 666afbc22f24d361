//! The petition header: written once, when the petition is created.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::channel::{Category, Channel};
use crate::doc::am;
use crate::doc::{check_attachment, check_text, limits};
use crate::error::SchemaError;
use crate::ids::{EntryId, UnitId, UserId};

/// Where the matter is: a unit (usually a village) and optional coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    pub unit: UnitId,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
}

/// The room message a petition was raised from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceRef {
    /// The room document's id (`automerge:` URL or bare id).
    pub room: String,
    pub message: EntryId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PetitionHeader {
    /// The document's own id, as the creator minted it.
    pub id: String,
    pub channel: Channel,
    pub category: Category,
    pub title: String,
    pub body: String,
    /// The resident the petition belongs to.
    pub submitter: UserId,
    /// Who typed it in: the submitter, or an officer recording a call or visit.
    pub recorded_by: UserId,
    /// Hide the submitter's identity from everyone but the handling unit.
    #[serde(default)]
    pub anonymous: bool,
    /// A phone number to call back on.
    #[serde(default)]
    pub contact: Option<String>,
    pub location: Location,
    #[serde(default)]
    pub attachments: Vec<String>,
    #[serde(default)]
    pub source: Option<SourceRef>,
}

impl PetitionHeader {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_text("id", &self.id, limits::SHORT, true)?;
        check_text("title", &self.title, limits::TITLE, true)?;
        check_text("body", &self.body, limits::BODY, true)?;
        if let Some(c) = &self.contact {
            let digits = c.chars().filter(|c| c.is_ascii_digit()).count();
            if !(5..=20).contains(&digits) || !c.chars().all(|c| c.is_ascii_digit() || "+- ".contains(c)) {
                return Err(SchemaError::InvalidValue {
                    field: "contact".into(),
                    reason: format!("{c:?} is not a phone number"),
                });
            }
        }
        for (v, range, name) in [(self.location.lat, 90.0, "lat"), (self.location.lon, 180.0, "lon")] {
            if v.is_some_and(|v| !v.is_finite() || v.abs() > range) {
                return Err(SchemaError::InvalidValue {
                    field: name.into(),
                    reason: "out of range".into(),
                });
            }
        }
        if self.attachments.len() > limits::LIST {
            return Err(SchemaError::InvalidValue {
                field: "attachments".into(),
                reason: "at most 64".into(),
            });
        }
        self.attachments.iter().try_for_each(|a| check_attachment(a))
    }

    pub(crate) fn read(doc: &impl ReadDoc, obj: &ObjId) -> Result<Self, SchemaError> {
        let source = match am::opt_str(doc, obj, "source_room")? {
            Some(room) => Some(SourceRef {
                room,
                message: am::parse(doc, obj, "source_message")?,
            }),
            None => None,
        };
        let header = PetitionHeader {
            id: am::req_str(doc, obj, "id")?,
            channel: am::parse(doc, obj, "channel")?,
            category: am::parse(doc, obj, "category")?,
            title: am::req_str(doc, obj, "title")?,
            body: am::req_str(doc, obj, "body")?,
            submitter: am::parse(doc, obj, "submitter")?,
            recorded_by: am::parse(doc, obj, "recorded_by")?,
            anonymous: am::opt_bool(doc, obj, "anonymous")?.unwrap_or(false),
            contact: am::opt_str(doc, obj, "contact")?,
            location: Location {
                unit: am::parse(doc, obj, "location_unit")?,
                lat: am::opt_f64(doc, obj, "lat")?,
                lon: am::opt_f64(doc, obj, "lon")?,
            },
            attachments: am::str_list(doc, obj, "attachments")?,
            source,
        };
        header.validate()?;
        Ok(header)
    }

    pub(crate) fn write<T: Transactable>(&self, tx: &mut T, parent: &ObjId, key: &str) -> Result<(), SchemaError> {
        self.validate()?;
        let obj = tx.put_object(parent, key, ObjType::Map)?;
        am::put_str(tx, &obj, "id", &self.id)?;
        am::put_str(tx, &obj, "channel", self.channel.as_str())?;
        am::put_str(tx, &obj, "category", self.category.as_str())?;
        am::put_str(tx, &obj, "title", &self.title)?;
        am::put_str(tx, &obj, "body", &self.body)?;
        am::put_str(tx, &obj, "submitter", self.submitter.as_str())?;
        am::put_str(tx, &obj, "recorded_by", self.recorded_by.as_str())?;
        tx.put(&obj, "anonymous", self.anonymous)?;
        am::put_opt_str(tx, &obj, "contact", self.contact.as_deref())?;
        am::put_str(tx, &obj, "location_unit", self.location.unit.as_str())?;
        if let Some(lat) = self.location.lat {
            tx.put(&obj, "lat", lat)?;
        }
        if let Some(lon) = self.location.lon {
            tx.put(&obj, "lon", lon)?;
        }
        am::put_str_list(tx, &obj, "attachments", &self.attachments)?;
        if let Some(src) = &self.source {
            am::put_str(tx, &obj, "source_room", &src.room)?;
            am::put_str(tx, &obj, "source_message", src.message.as_str())?;
        }
        Ok(())
    }
}
