//! What policy needs to know about a document before a change: its kind,
//! owner, involved units, members and existing entry stamps.

use std::collections::{BTreeMap, BTreeSet};

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};

use crate::access;
use crate::directory::DirectoryDoc;
use crate::doc::DocKind;
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{EntryId, HouseholdId, UnitId, UserId};
use crate::notice::{Audience, NoticeDoc};
use crate::petition::PetitionDoc;
use crate::room::{MemberRole, RoomDoc, RoomInfo};

/// A summary of one document, enough to decide reads and writes.
#[derive(Clone, Debug, PartialEq)]
pub enum DocFacts {
    /// No content yet: the next change creates the document.
    Empty,
    Petition {
        submitter: UserId,
        /// Who typed in a petition holding personal data for its writer
        /// (`access::petition_users`), if not the writer.
        recorder: Option<UserId>,
        /// The units whose staff read and act on the petition
        /// (`access::petition_units`); it only grows.
        involved: BTreeSet<UnitId>,
        stamps: BTreeSet<Hlc>,
    },
    Room {
        info: RoomInfo,
        members: BTreeMap<UserId, MemberRole>,
        messages: BTreeMap<EntryId, UserId>,
        stamps: BTreeSet<Hlc>,
    },
    Notice {
        unit: UnitId,
        audience: Audience,
    },
    Directory {
        village: UnitId,
        households: BTreeSet<HouseholdId>,
    },
}

impl DocFacts {
    pub fn of(doc: &AutoCommit) -> Result<DocFacts, SchemaError> {
        let Some(kind) = DocKind::of(doc)? else {
            return Ok(DocFacts::Empty);
        };
        Ok(match kind {
            DocKind::Petition => {
                let p = PetitionDoc::view(doc)?;
                let header = p.header()?;
                let events = p.events()?;
                let involved = access::petition_units(&header, &events);
                let recorder = access::petition_users(&header).get(1).cloned();
                let stamps = events
                    .into_iter()
                    .map(|e| e.at)
                    .chain(p.messages()?.into_iter().map(|m| m.at))
                    .collect();
                DocFacts::Petition {
                    submitter: header.submitter,
                    recorder,
                    involved,
                    stamps,
                }
            }
            DocKind::Room => {
                // Each entry was read in full when policy accepted it; its
                // stamp and writer are all a later change is checked against.
                let r = RoomDoc::view(doc)?;
                let writers = r.message_writers()?;
                let mut stamps: BTreeSet<Hlc> = writers.iter().map(|(at, _)| at.clone()).collect();
                stamps.extend(r.moderation_stamps()?);
                let messages = writers
                    .into_iter()
                    .map(|(at, by)| Ok((EntryId::new(at.to_string())?, by)))
                    .collect::<Result<_, SchemaError>>()?;
                DocFacts::Room {
                    info: r.info()?,
                    members: r.members()?,
                    messages,
                    stamps,
                }
            }
            DocKind::Notice => {
                let n = NoticeDoc::view(doc)?;
                DocFacts::Notice {
                    unit: n.info()?.unit,
                    audience: n.audience()?,
                }
            }
            DocKind::Directory => {
                let d = DirectoryDoc::view(doc)?;
                DocFacts::Directory {
                    village: d.village()?,
                    households: d.households()?.into_iter().map(|h| h.id).collect(),
                }
            }
        })
    }

    pub fn kind(&self) -> Option<DocKind> {
        match self {
            DocFacts::Empty => None,
            DocFacts::Petition { .. } => Some(DocKind::Petition),
            DocFacts::Room { .. } => Some(DocKind::Room),
            DocFacts::Notice { .. } => Some(DocKind::Notice),
            DocFacts::Directory { .. } => Some(DocKind::Directory),
        }
    }

    /// Who may read the document, in a form a store can index.
    pub fn visibility(&self) -> Visibility {
        match self {
            DocFacts::Empty => Visibility::default(),
            DocFacts::Petition {
                submitter,
                recorder,
                involved,
                ..
            } => Visibility {
                units: involved.iter().cloned().collect(),
                users: std::iter::once(submitter).chain(recorder).cloned().collect(),
                ..Visibility::default()
            },
            DocFacts::Room { info, members, .. } => room_visibility(info, members),
            DocFacts::Notice { unit, audience } => {
                let mut units = vec![unit.clone()];
                units.extend(audience.units.iter().cloned());
                Visibility {
                    units,
                    households: audience.households.clone(),
                    rooms: audience.rooms.clone(),
                    audience_units: audience.units.clone(),
                    ..Visibility::default()
                }
            }
            DocFacts::Directory { village, .. } => Visibility {
                units: vec![village.clone()],
                ..Visibility::default()
            },
        }
    }
}

impl Visibility {
    /// Who may read `doc`: the same as `DocFacts::of(doc)?.visibility()`,
    /// without reading what visibility does not depend on (a room's or a
    /// petition's messages, which grow with every post).
    pub fn of(doc: &AutoCommit) -> Result<Visibility, SchemaError> {
        match DocKind::of(doc)? {
            Some(DocKind::Room) => {
                let r = RoomDoc::view(doc)?;
                Ok(room_visibility(&r.info()?, &r.members()?))
            }
            Some(DocKind::Petition) => {
                let p = PetitionDoc::view(doc)?;
                let header = p.header()?;
                Ok(Visibility {
                    units: access::petition_units(&header, &p.events()?).into_iter().collect(),
                    users: access::petition_users(&header),
                    ..Visibility::default()
                })
            }
            _ => Ok(DocFacts::of(doc)?.visibility()),
        }
    }
}

fn room_visibility(info: &RoomInfo, members: &BTreeMap<UserId, MemberRole>) -> Visibility {
    Visibility {
        units: vec![info.unit.clone()],
        users: members.keys().cloned().collect(),
        households: info.household.iter().cloned().collect(),
        ..Visibility::default()
    }
}

/// Who may read a document.
///
/// * staff (officers, leaders, department staff) with jurisdiction over any of `units`;
/// * the `users` named (a petition's submitter, a room's members);
/// * residents of the `households` named;
/// * members of the `rooms` named, and residents living within `audience_units` (notices).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visibility {
    pub units: Vec<UnitId>,
    pub users: Vec<UserId>,
    pub households: Vec<HouseholdId>,
    pub rooms: Vec<String>,
    pub audience_units: Vec<UnitId>,
}
