//! Size and shape: a change's size, each field written once, records
//! holding only their schema's fields, a document's entry limits, and the
//! shape of a new document.

use super::*;

impl Inspector<'_, '_> {
    /// The change as a whole: its encoded size and its message.
    pub(super) fn check_change_size(&self) -> Result<(), Refusal> {
        let bytes = self.change.raw_bytes().len();
        if bytes > shape::MAX_CHANGE_BYTES {
            return Err(self.refuse(
                Rule::ChangeTooLarge,
                format!("{bytes} bytes, at most {} in one change", shape::MAX_CHANGE_BYTES),
            ));
        }
        let note = self.change.message().map_or(0, str::len) + self.change.extra_bytes().len();
        if note > shape::MAX_CHANGE_NOTE_BYTES {
            return Err(self.refuse(
                Rule::ChangeTooLarge,
                format!(
                    "a change message of {note} bytes, at most {}",
                    shape::MAX_CHANGE_NOTE_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// Every value a change writes is one a reader will see: no key of a map
    /// is written twice in one change, and inside the objects the change
    /// creates (and anywhere in a new document) nothing is deleted and no
    /// list item overwritten. Otherwise a change could carry megabytes that
    /// no schema read ever looks at.
    pub(super) fn check_written_once(&self, ops: &[automerge::legacy::Op]) -> Result<(), Refusal> {
        let creating = self.facts.kind().is_none();
        let mut written: HashSet<(&ObjectId, &str)> = HashSet::new();
        for op in ops {
            let fresh = creating || self.created_here(&op.obj);
            match &op.key {
                automerge::legacy::Key::Map(k) => {
                    if !written.insert((&op.obj, k.as_str())) {
                        return Err(self.refuse(
                            Rule::WrittenTwice,
                            format!("the change writes {k:?} of one object twice"),
                        ));
                    }
                }
                automerge::legacy::Key::Seq(_) if fresh && !op.insert => {
                    return Err(self.refuse(
                        Rule::WrittenTwice,
                        "a new list's items are inserted, never overwritten or deleted in the change that makes them",
                    ));
                }
                automerge::legacy::Key::Seq(_) => {}
            }
            if fresh && matches!(op.action, OpType::Delete) {
                return Err(self.refuse(Rule::WrittenTwice, "a change deletes nothing inside what it creates"));
            }
        }
        Ok(())
    }

    /// Refuses a record whose shape `shape::record` refused, or that is over
    /// the entry limit.
    pub(super) fn check_record(
        &self,
        what: &str,
        obj: &ObjId,
        has: impl Fn(&str) -> bool,
    ) -> Result<shape::Size, Refusal> {
        let size = shape::record(&*self.doc, obj, has).map_err(|e| match e {
            ShapeError::UnknownField(k) => self.refuse(Rule::UnknownField, format!("{what} has no field {k:?}")),
            ShapeError::Conflict(k) => self.refuse(Rule::WrittenTwice, format!("{what} holds two values for {k:?}")),
            ShapeError::Nested(k) => self.refuse(
                Rule::Malformed,
                format!("{what}'s field {k:?} holds an object where the schema has a value"),
            ),
        })?;
        if size.bytes > shape::MAX_ENTRY_BYTES {
            return Err(self.refuse(
                Rule::EntryTooLarge,
                format!("{what} is {} bytes, at most {}", size.bytes, shape::MAX_ENTRY_BYTES),
            ));
        }
        Ok(size)
    }

    pub(super) fn check_household_shape(&self, id: &str) -> Result<(), Refusal> {
        let obj = am::req_obj(&*self.doc, &ROOT, "households", ObjType::Map)
            .and_then(|hs| am::req_obj(&*self.doc, &hs, id, ObjType::Map))
            .map_err(|e| self.malformed("household", e))?;
        self.check_record("a household", &obj, |k| HOUSEHOLD_FIELDS.contains(&k))
            .map(|_| ())
    }

    /// The document after the change stays under its kind's limits.
    pub(super) fn check_document_size(
        &self,
        kind: DocKind,
        entries: usize,
        touched: &BTreeSet<&str>,
    ) -> Result<(), Refusal> {
        let full = |what: &str, n: usize, max: usize| {
            if n > max {
                Err(self.refuse(Rule::DocumentFull, format!("{what}: {n}, at most {max}")))
            } else {
                Ok(())
            }
        };
        let count = |key: &str| {
            am::req_obj(&*self.doc, &ROOT, key, ObjType::Map)
                .map(|o| self.doc.length(&o))
                .map_err(|e| self.malformed(key, e))
        };
        match kind {
            DocKind::Petition => full(
                "timeline events and messages of a petition",
                entries,
                shape::MAX_PETITION_ENTRIES,
            ),
            DocKind::Room => {
                full(
                    "messages, redactions and links of a room",
                    entries,
                    shape::MAX_ROOM_ENTRIES,
                )?;
                if touched.contains(container_name(&Container::Members)) {
                    full("members of a room", count("members")?, shape::MAX_ROOM_MEMBERS)?;
                }
                Ok(())
            }
            DocKind::Notice if touched.contains(container_name(&Container::Receipts)) => {
                full("receipts of a notice", count("receipts")?, shape::MAX_NOTICE_RECEIPTS)
            }
            DocKind::Directory if touched.contains(container_name(&Container::Households)) => {
                full("households of a directory", count("households")?, shape::MAX_HOUSEHOLDS)
            }
            DocKind::Notice | DocKind::Directory => Ok(()),
        }
    }

    /// A new document's records hold only their schema's fields, within the
    /// entry limit; its member list and audience within theirs.
    pub(super) fn check_creation_shape(&self, kind: DocKind) -> Result<(), Refusal> {
        let doc = &*self.doc;
        let obj = |key: &str, ty: ObjType| am::req_obj(doc, &ROOT, key, ty).map_err(|e| self.malformed(key, e));
        match kind {
            DocKind::Petition => {
                self.check_record("the header", &obj("header", ObjType::Map)?, |k| {
                    shape::HEADER.contains(&k)
                })?;
                let timeline = obj("timeline", ObjType::List)?;
                for event in am::list_maps(doc, &timeline, "timeline").map_err(|e| self.malformed("timeline", e))? {
                    self.check_record("the submitted event", &event, |k| {
                        shape::event_has(EventKind::Submitted, k)
                    })?;
                }
            }
            DocKind::Room => {
                self.check_record("the room's info", &obj("info", ObjType::Map)?, |k| {
                    shape::ROOM_INFO.contains(&k)
                })?;
                let members = doc.length(obj("members", ObjType::Map)?);
                if members > shape::MAX_ROOM_MEMBERS {
                    return Err(self.refuse(
                        Rule::DocumentFull,
                        format!("members of a room: {members}, at most {}", shape::MAX_ROOM_MEMBERS),
                    ));
                }
                if doc.length(obj("tags", ObjType::Map)?) > 0 {
                    return Err(self.refuse(Rule::Malformed, "a new room has no tags yet"));
                }
            }
            DocKind::Notice => {
                self.check_record("the notice's info", &obj("info", ObjType::Map)?, |k| {
                    shape::NOTICE_INFO.contains(&k)
                })?;
                let audience = shape::record(doc, &obj("audience", ObjType::Map)?, |k| shape::AUDIENCE.contains(&k))
                    .map_err(|e| self.refuse(Rule::UnknownField, format!("the notice's audience: {e:?}")))?;
                if audience.items > shape::MAX_AUDIENCE {
                    return Err(self.refuse(
                        Rule::DocumentFull,
                        format!(
                            "an audience of {} households, rooms and units, at most {}",
                            audience.items,
                            shape::MAX_AUDIENCE
                        ),
                    ));
                }
            }
            DocKind::Directory => {
                self.check_record("the directory's info", &obj("info", ObjType::Map)?, |k| {
                    shape::DIRECTORY_INFO.contains(&k)
                })?;
            }
        }
        Ok(())
    }
}
