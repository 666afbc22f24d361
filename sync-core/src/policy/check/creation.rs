//! New documents: who may create each kind, and what it must hold.

use super::*;

impl Inspector<'_, '_> {
    pub(super) fn check_creation(&self) -> Result<(), Refusal> {
        let kind = DocKind::of(&*self.doc)
            .map_err(|e| self.malformed("new document", e))?
            .ok_or_else(|| self.refuse(Rule::Malformed, "the first change of a document must create it"))?;
        let expected: &[&str] = match kind {
            DocKind::Petition => &["type", "schema", "header", "conversation", "timeline"],
            DocKind::Room => &[
                "type",
                "schema",
                "info",
                "members",
                "tags",
                "pins",
                "messages",
                "redactions",
                "raised",
            ],
            DocKind::Notice => &["type", "schema", "info", "audience", "receipts"],
            DocKind::Directory => &["type", "schema", "info", "households"],
        };
        let keys: BTreeSet<String> = self.doc.keys(ROOT).collect();
        if keys != expected.iter().map(|s| s.to_string()).collect() {
            return Err(self.refuse(
                Rule::Malformed,
                format!("a new {kind} has exactly the fields {expected:?}"),
            ));
        }
        self.check_creation_shape(kind)?;
        let p = self.ctx.principal;
        let mut stamps = BTreeSet::new();
        match kind {
            DocKind::Petition => {
                let doc = PetitionDoc::view(&*self.doc).map_err(|e| self.malformed("petition", e))?;
                let header = doc.header().map_err(|e| self.malformed("petition header", e))?;
                let events = doc.events().map_err(|e| self.malformed("timeline", e))?;
                let messages = doc.messages().map_err(|e| self.malformed("conversation", e))?;
                let [event] = events.as_slice() else {
                    return Err(self.refuse(Rule::Malformed, "a new petition holds exactly its submitted event"));
                };
                let EventBody::Submitted { unit } = &event.body else {
                    return Err(self.refuse(Rule::Malformed, "a new petition's first event is submitted"));
                };
                if !messages.is_empty() {
                    return Err(self.refuse(Rule::Malformed, "a new petition has an empty conversation"));
                }
                self.check_by(&event.by, "the submitted event")?;
                self.check_by(&header.recorded_by, "recorded_by")?;
                self.check_stamp(&event.at, &mut stamps)?;
                self.unit_exists(unit)?;
                self.unit_exists(&header.location.unit)?;
                if p.is_system() {
                    return Ok(());
                }
                if p.is_staff() {
                    if self.staff_over(OFFICERS, unit) || self.staff_over(OFFICERS, &header.location.unit) {
                        return Ok(());
                    }
                    return Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        "officers record petitions for their own jurisdiction",
                    ));
                }
                if header.submitter != p.user {
                    return Err(self.refuse(Rule::NotSubmitter, "residents file petitions in their own name"));
                }
                if matches!(header.channel, Channel::WalkIn | Channel::Api) {
                    return Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("the {} channel is for officers and systems", header.channel),
                    ));
                }
                Ok(())
            }
            DocKind::Room => {
                let doc = RoomDoc::view(&*self.doc).map_err(|e| self.malformed("room", e))?;
                let info = doc.info().map_err(|e| self.malformed("room info", e))?;
                let members = doc.members().map_err(|e| self.malformed("room members", e))?;
                let empty = doc.raw_messages().map(|m| m.is_empty()).unwrap_or(false)
                    && doc.redactions().map(|m| m.is_empty()).unwrap_or(false)
                    && doc.raised().map(|m| m.is_empty()).unwrap_or(false)
                    && doc.pins().map(|m| m.is_empty()).unwrap_or(false);
                doc.tags().map_err(|e| self.malformed("room tags", e))?;
                if !empty {
                    return Err(self.refuse(
                        Rule::Malformed,
                        "a new room starts with no messages, pins or redactions",
                    ));
                }
                self.check_by(&info.created_by, "created_by")?;
                self.unit_exists(&info.unit)?;
                if members.get(&p.user) != Some(&MemberRole::Owner) {
                    return Err(self.refuse(Rule::Malformed, "the creator of a room is its owner"));
                }
                let line_party =
                    info.kind == RoomKind::HouseholdLine && p.household.is_some() && p.household == info.household;
                if self.staff_over(OFFICERS, &info.unit) || line_party {
                    Ok(())
                } else {
                    Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("rooms of {} are opened by its officers", info.unit),
                    ))
                }
            }
            DocKind::Notice => {
                let doc = NoticeDoc::view(&*self.doc).map_err(|e| self.malformed("notice", e))?;
                let info = doc.info().map_err(|e| self.malformed("notice info", e))?;
                let audience = doc.audience().map_err(|e| self.malformed("notice audience", e))?;
                if !doc.receipts().map_err(|e| self.malformed("receipts", e))?.is_empty() {
                    return Err(self.refuse(Rule::Malformed, "a new notice has no receipts"));
                }
                self.check_by(&info.by, "the notice")?;
                self.check_stamp(&info.at, &mut stamps)?;
                self.unit_exists(&info.unit)?;
                audience.units.iter().try_for_each(|u| self.unit_exists(u))?;
                if self.staff_over(OFFICERS, &info.unit) {
                    Ok(())
                } else {
                    Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("notices of {} are issued by its officers", info.unit),
                    ))
                }
            }
            DocKind::Directory => {
                let doc = DirectoryDoc::view(&*self.doc).map_err(|e| self.malformed("directory", e))?;
                let village = doc.village().map_err(|e| self.malformed("directory", e))?;
                if !doc
                    .households()
                    .map_err(|e| self.malformed("households", e))?
                    .is_empty()
                {
                    return Err(self.refuse(Rule::Malformed, "a new directory has no households yet"));
                }
                let created_by = crate::doc::am::opt_str(
                    &*self.doc,
                    &crate::doc::am::req_obj(&*self.doc, &ROOT, "info", ObjType::Map)
                        .map_err(|e| self.malformed("directory", e))?,
                    "created_by",
                )
                .map_err(|e| self.malformed("directory", e))?
                .unwrap_or_default();
                if created_by != p.user.as_str() {
                    return Err(self.refuse(
                        Rule::ForgedAuthor,
                        format!("created_by says {created_by}, but the change comes from {}", p.user),
                    ));
                }
                self.unit_exists(&village)?;
                if self.staff_over(OFFICERS, &village) {
                    Ok(())
                } else {
                    Err(self.refuse(
                        Rule::NotAllowedToCreate,
                        format!("the directory of {village} is kept by its officers"),
                    ))
                }
            }
        }
    }
}
