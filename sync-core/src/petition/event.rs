//! Timeline events: the append-only history a petition's status is derived from.

use std::fmt;

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::channel::{Category, text_enum};
use crate::clocks::ClockKind;
use crate::doc::am;
use crate::doc::{check_text, limits};
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{EntryId, UnitId, UserId};

text_enum!(
    /// How a handler reached the person who wrote in.
    ContactMethod {
        Phone = "phone",
        Visit = "visit",
        Message = "message",
    }
);

/// What happened, with the data that kind of event carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventBody {
    /// The petition entered the system, held by `unit` (the routing target).
    Submitted { unit: UnitId },
    /// 签收: the holding unit took it in.
    Signed,
    /// 流转·派单: the lead unit hands the petition to `to`, with assisting units.
    Transferred {
        to: UnitId,
        #[serde(default)]
        assist: Vec<UnitId>,
        #[serde(default)]
        note: Option<String>,
    },
    /// 接单: the unit it was dispatched to accepts it.
    Accepted,
    /// 退单: the unit it was dispatched to sends it back, saying why.
    Returned { reason: String },
    /// 联系来信人: the writer was contacted.
    Contacted {
        method: ContactMethod,
        #[serde(default)]
        note: Option<String>,
    },
    /// A note on the handling so far.
    Progress { note: String },
    /// 回复: the answer to the writer.
    Replied { text: String },
    /// 提级: the unit above takes over. An automatic escalation names the
    /// `clock` whose running out it judged: it is moot, and set aside, if
    /// the step that stops that clock is stamped before it (the sweep saw a
    /// stale timeline; see `status::rules::CLOCK_MET`). A person's
    /// escalation names none and always stands.
    Escalated {
        to: UnitId,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clock: Option<ClockKind>,
    },
    /// 督办: a leader marks the petition for supervision.
    Supervised { note: String },
    /// 回访: a follow-up with a rating from 1 to 5.
    FollowUp {
        rating: u8,
        #[serde(default)]
        comment: Option<String>,
    },
    /// 公开: the result is published.
    Published { summary: String },
    /// 办结: handling is complete.
    Closed {
        #[serde(default)]
        note: Option<String>,
    },
    /// The petition is handled again.
    Reopened { reason: String },
    /// 并单: a duplicate of another petition.
    Merged { into: String },
    /// The writer withdraws the petition.
    Withdrawn {
        #[serde(default)]
        reason: Option<String>,
    },
    /// 重新分类: the lead files the petition under another category (a
    /// request found to be no police matter becomes `non_police`), saying why.
    Reclassified { category: Category, reason: String },
    /// 协办调整: the lead adds or removes assisting units and stays the lead
    /// (一人咨询, N方联动).
    AssistsChanged {
        #[serde(default)]
        add: Vec<UnitId>,
        #[serde(default)]
        remove: Vec<UnitId>,
    },
}

text_enum!(
    /// The name of an event kind, as stored in the document.
    EventKind {
        Submitted = "submitted",
        Signed = "signed",
        Transferred = "transferred",
        Accepted = "accepted",
        Returned = "returned",
        Contacted = "contacted",
        Progress = "progress",
        Replied = "replied",
        Escalated = "escalated",
        Supervised = "supervised",
        FollowUp = "follow_up",
        Published = "published",
        Closed = "closed",
        Reopened = "reopened",
        Merged = "merged",
        Withdrawn = "withdrawn",
        Reclassified = "reclassified",
        AssistsChanged = "assists_changed",
    }
);

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::Submitted { .. } => EventKind::Submitted,
            EventBody::Signed => EventKind::Signed,
            EventBody::Transferred { .. } => EventKind::Transferred,
            EventBody::Accepted => EventKind::Accepted,
            EventBody::Returned { .. } => EventKind::Returned,
            EventBody::Contacted { .. } => EventKind::Contacted,
            EventBody::Progress { .. } => EventKind::Progress,
            EventBody::Replied { .. } => EventKind::Replied,
            EventBody::Escalated { .. } => EventKind::Escalated,
            EventBody::Supervised { .. } => EventKind::Supervised,
            EventBody::FollowUp { .. } => EventKind::FollowUp,
            EventBody::Published { .. } => EventKind::Published,
            EventBody::Closed { .. } => EventKind::Closed,
            EventBody::Reopened { .. } => EventKind::Reopened,
            EventBody::Merged { .. } => EventKind::Merged,
            EventBody::Withdrawn { .. } => EventKind::Withdrawn,
            EventBody::Reclassified { .. } => EventKind::Reclassified,
            EventBody::AssistsChanged { .. } => EventKind::AssistsChanged,
        }
    }
}

impl EventKind {
    /// Kinds only handling staff write; each must name the unit acted for.
    pub fn is_handler_action(self) -> bool {
        !matches!(
            self,
            EventKind::FollowUp | EventKind::Reopened | EventKind::Withdrawn | EventKind::Submitted
        )
    }
}

/// One entry of a petition's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    /// Who wrote it: always the user whose change carries it.
    pub by: UserId,
    /// When, by the writer's hybrid logical clock; also the entry's id.
    pub at: Hlc,
    /// The unit the writer acted for (handler actions), if any.
    #[serde(default)]
    pub unit: Option<UnitId>,
    #[serde(flatten)]
    pub body: EventBody,
}

impl TimelineEvent {
    pub fn id(&self) -> EntryId {
        EntryId::new(self.at.to_string()).expect("an hlc is a valid entry id")
    }

    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// Checks the fields a well-formed event of its kind must have.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let kind = self.kind();
        if kind == EventKind::Submitted && self.unit.is_some() {
            return Err(SchemaError::InvalidValue {
                field: "unit".into(),
                reason: "a submitted event names its unit in the body".into(),
            });
        }
        if kind.is_handler_action() && self.unit.is_none() {
            return Err(SchemaError::InvalidValue {
                field: "unit".into(),
                reason: format!("a {kind} event names the unit acted for"),
            });
        }
        match &self.body {
            EventBody::Transferred { to, assist, note } => {
                if assist.len() > limits::LIST || assist.contains(to) {
                    return Err(SchemaError::InvalidValue {
                        field: "assist".into(),
                        reason: "at most 64 assisting units, not including the lead".into(),
                    });
                }
                opt_text("note", note)?;
            }
            EventBody::Returned { reason } | EventBody::Escalated { reason, .. } | EventBody::Reopened { reason } => {
                check_text("reason", reason, limits::NOTE, true)?;
            }
            EventBody::Contacted { note, .. } | EventBody::Closed { note } => opt_text("note", note)?,
            EventBody::Progress { note } | EventBody::Supervised { note } => {
                check_text("note", note, limits::NOTE, true)?
            }
            EventBody::Replied { text } => check_text("text", text, limits::BODY, true)?,
            EventBody::FollowUp { rating, comment } => {
                if !(1..=5).contains(rating) {
                    return Err(SchemaError::InvalidValue {
                        field: "rating".into(),
                        reason: format!("{rating} is not between 1 and 5"),
                    });
                }
                opt_text("comment", comment)?;
            }
            EventBody::Published { summary } => check_text("summary", summary, limits::BODY, true)?,
            EventBody::Merged { into } => check_text("into", into, limits::SHORT, true)?,
            EventBody::Withdrawn { reason } => opt_text("reason", reason)?,
            EventBody::Reclassified { reason, .. } => check_text("reason", reason, limits::NOTE, true)?,
            EventBody::AssistsChanged { add, remove } => {
                let overlap = add.iter().any(|u| remove.contains(u));
                if add.is_empty() && remove.is_empty() || overlap || add.len() + remove.len() > limits::LIST {
                    return Err(SchemaError::InvalidValue {
                        field: "assists".into(),
                        reason: "name at most 64 units to add or remove, none in both lists".into(),
                    });
                }
            }
            EventBody::Submitted { .. } | EventBody::Signed | EventBody::Accepted => {}
        }
        Ok(())
    }

    pub(crate) fn read(doc: &impl ReadDoc, obj: &ObjId) -> Result<Self, SchemaError> {
        let kind: EventKind = am::parse(doc, obj, "kind")?;
        let text = |k: &str| am::req_str(doc, obj, k);
        let opt = |k: &str| am::opt_str(doc, obj, k);
        let unit = |k: &str| am::parse::<UnitId>(doc, obj, k);
        let body = match kind {
            EventKind::Submitted => EventBody::Submitted { unit: unit("unit")? },
            EventKind::Signed => EventBody::Signed,
            EventKind::Transferred => EventBody::Transferred {
                to: unit("to")?,
                assist: am::str_list(doc, obj, "assist")?
                    .into_iter()
                    .map(UnitId::new)
                    .collect::<Result<_, _>>()?,
                note: opt("note")?,
            },
            EventKind::Accepted => EventBody::Accepted,
            EventKind::Returned => EventBody::Returned {
                reason: text("reason")?,
            },
            EventKind::Contacted => EventBody::Contacted {
                method: am::parse(doc, obj, "method")?,
                note: opt("note")?,
            },
            EventKind::Progress => EventBody::Progress { note: text("note")? },
            EventKind::Replied => EventBody::Replied { text: text("text")? },
            EventKind::Escalated => EventBody::Escalated {
                to: unit("to")?,
                reason: text("reason")?,
                clock: am::parse_opt(doc, obj, "clock")?,
            },
            EventKind::Supervised => EventBody::Supervised { note: text("note")? },
            EventKind::FollowUp => {
                let rating = am::opt_int(doc, obj, "rating")?.ok_or_else(|| SchemaError::Missing("rating".into()))?;
                let rating = u8::try_from(rating).map_err(|_| SchemaError::InvalidValue {
                    field: "rating".into(),
                    reason: format!("{rating} is out of range"),
                })?;
                EventBody::FollowUp {
                    rating,
                    comment: opt("comment")?,
                }
            }
            EventKind::Published => EventBody::Published {
                summary: text("summary")?,
            },
            EventKind::Closed => EventBody::Closed { note: opt("note")? },
            EventKind::Reopened => EventBody::Reopened {
                reason: text("reason")?,
            },
            EventKind::Merged => EventBody::Merged { into: text("into")? },
            EventKind::Withdrawn => EventBody::Withdrawn { reason: opt("reason")? },
            EventKind::Reclassified => EventBody::Reclassified {
                category: am::parse(doc, obj, "category")?,
                reason: text("reason")?,
            },
            EventKind::AssistsChanged => {
                let units = |k: &str| -> Result<Vec<UnitId>, SchemaError> {
                    am::str_list(doc, obj, k)?.into_iter().map(UnitId::new).collect()
                };
                EventBody::AssistsChanged {
                    add: units("add")?,
                    remove: units("remove")?,
                }
            }
        };
        let event = TimelineEvent {
            by: am::parse(doc, obj, "by")?,
            at: am::req_hlc(doc, obj, "at")?,
            unit: match kind {
                EventKind::Submitted => None,
                _ => am::parse_opt(doc, obj, "unit")?,
            },
            body,
        };
        event.validate()?;
        Ok(event)
    }

    /// Appends this event as a new map at the end of `list`.
    pub(crate) fn append<T: Transactable>(&self, tx: &mut T, list: &ObjId) -> Result<(), SchemaError> {
        self.validate()?;
        let obj = tx.insert_object(list, tx.length(list), ObjType::Map)?;
        am::put_str(tx, &obj, "kind", self.kind().as_str())?;
        am::put_str(tx, &obj, "by", self.by.as_str())?;
        am::put_str(tx, &obj, "at", &self.at.to_string())?;
        am::put_opt_str(tx, &obj, "unit", self.unit.as_ref().map(|u| u.as_str()))?;
        match &self.body {
            EventBody::Submitted { unit } => am::put_str(tx, &obj, "unit", unit.as_str())?,
            EventBody::Signed | EventBody::Accepted => {}
            EventBody::Transferred { to, assist, note } => {
                am::put_str(tx, &obj, "to", to.as_str())?;
                am::put_str_list(tx, &obj, "assist", assist.iter().map(|u| u.as_str()))?;
                am::put_opt_str(tx, &obj, "note", note.as_deref())?;
            }
            EventBody::Returned { reason } | EventBody::Reopened { reason } => am::put_str(tx, &obj, "reason", reason)?,
            EventBody::Contacted { method, note } => {
                am::put_str(tx, &obj, "method", method.as_str())?;
                am::put_opt_str(tx, &obj, "note", note.as_deref())?;
            }
            EventBody::Progress { note } | EventBody::Supervised { note } => am::put_str(tx, &obj, "note", note)?,
            EventBody::Replied { text } => am::put_str(tx, &obj, "text", text)?,
            EventBody::Escalated { to, reason, clock } => {
                am::put_str(tx, &obj, "to", to.as_str())?;
                am::put_str(tx, &obj, "reason", reason)?;
                am::put_opt_str(tx, &obj, "clock", clock.map(ClockKind::as_str))?;
            }
            EventBody::FollowUp { rating, comment } => {
                tx.put(&obj, "rating", i64::from(*rating))?;
                am::put_opt_str(tx, &obj, "comment", comment.as_deref())?;
            }
            EventBody::Published { summary } => am::put_str(tx, &obj, "summary", summary)?,
            EventBody::Closed { note } => am::put_opt_str(tx, &obj, "note", note.as_deref())?,
            EventBody::Merged { into } => am::put_str(tx, &obj, "into", into)?,
            EventBody::Withdrawn { reason } => am::put_opt_str(tx, &obj, "reason", reason.as_deref())?,
            EventBody::Reclassified { category, reason } => {
                am::put_str(tx, &obj, "category", category.as_str())?;
                am::put_str(tx, &obj, "reason", reason)?;
            }
            EventBody::AssistsChanged { add, remove } => {
                am::put_str_list(tx, &obj, "add", add.iter().map(|u| u.as_str()))?;
                am::put_str_list(tx, &obj, "remove", remove.iter().map(|u| u.as_str()))?;
            }
        }
        Ok(())
    }
}

fn opt_text(field: &str, value: &Option<String>) -> Result<(), SchemaError> {
    value
        .as_deref()
        .map_or(Ok(()), |v| check_text(field, v, limits::NOTE, false))
}

impl fmt::Display for TimelineEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} by {} at {}", self.kind(), self.by, self.at)
    }
}
