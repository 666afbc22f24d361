//! New entries and documents hold only their schema's fields, each written
//! once, within the limits per entry, per change and per document
//! (`sync_core::policy::shape`).

mod common;

use automerge::legacy::{Key, ObjectId, Op, OpId, OpType};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use common::*;
use sync_core::directory::{DirectoryDoc, Household};
use sync_core::doc::Message;
use sync_core::policy::shape::{MAX_CHANGE_ENTRIES, MAX_PETITION_ENTRIES};
use sync_core::policy::{Checked, Rule, check_changes};
use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};
use sync_core::{HouseholdId, Principal};

/// Checks raw edits made in one change on a fork of `doc` as `who`.
fn raw_edit(doc: &AutoCommit, who: &Principal, edit: impl FnOnce(&mut AutoCommit)) -> Checked {
    let mut base = doc.clone();
    let mut fork = base.fork().with_actor(actor(9));
    edit(&mut fork);
    fork.commit();
    let changes = fork.get_changes(&base.get_heads());
    assert_eq!(changes.len(), 1, "one change");
    let org = org();
    check_changes(&ctx(&org, who), base, changes)
}

fn check(doc: AutoCommit, who: &Principal, changes: Vec<Change>) -> Checked {
    let org = org();
    check_changes(&ctx(&org, who), doc, changes)
}

fn list(doc: &AutoCommit, key: &str) -> ObjId {
    doc.get(ROOT, key).unwrap().unwrap().1
}

/// Appends a message map to `list` field by field, as a hand-made client would.
fn raw_message(d: &mut AutoCommit, list: &ObjId, by: &str, n: usize) -> ObjId {
    let at = format!("{:013}.{n:05}.hostile", T0.plus_minutes(1).millis());
    let m = d.insert_object(list, d.length(list), ObjType::Map).unwrap();
    d.put(&m, "by", by).unwrap();
    d.put(&m, "at", at).unwrap();
    d.put(&m, "text", "还是没水").unwrap();
    m
}

// ---- fields outside the schema ----

#[test]
fn a_comment_with_a_field_outside_the_schema_is_refused() {
    let doc = petition().into_doc();
    let conv = list(&doc, "conversation");
    let c = raw_edit(&doc, &resident(), |d| {
        let m = raw_message(d, &conv, "r1", 0);
        d.put(&m, "junk", "x".repeat(1000)).unwrap();
    });
    refused(&c, Rule::UnknownField);
    assert!(c.refused[0].detail.contains("junk"), "{}", c.refused[0]);

    // The same comment without it is fine.
    allowed(&raw_edit(&doc, &resident(), |d| {
        raw_message(d, &conv, "r1", 0);
    }));

    // 5 MB of it is over the change limit before any field is read.
    refused(
        &raw_edit(&doc, &resident(), |d| {
            let m = raw_message(d, &conv, "r1", 0);
            d.put(&m, "junk", "x".repeat(5 * 1024 * 1024)).unwrap();
        }),
        Rule::ChangeTooLarge,
    );
}

#[test]
fn a_message_with_many_keys_and_an_event_with_another_kinds_field_are_refused() {
    let doc = petition().into_doc();
    let conv = list(&doc, "conversation");
    refused(
        &raw_edit(&doc, &resident(), |d| {
            let m = raw_message(d, &conv, "r1", 0);
            for i in 0..10_000 {
                d.put(&m, format!("k{i}").as_str(), "").unwrap();
            }
        }),
        Rule::UnknownField,
    );
    // A nested map in a known field is not part of any schema either.
    refused(
        &raw_edit(&doc, &resident(), |d| {
            let m = raw_message(d, &conv, "r1", 0);
            let a = d.put_object(&m, "attachments", ObjType::List).unwrap();
            d.insert_object(&a, 0, ObjType::Map).unwrap();
        }),
        Rule::Malformed,
    );

    // A signed event carrying a `reason` (a returned event's field).
    let timeline = list(&doc, "timeline");
    let oa = officer_a();
    refused(
        &raw_edit(&doc, &oa, |d| {
            let e = d.insert_object(&timeline, 1, ObjType::Map).unwrap();
            d.put(&e, "kind", "signed").unwrap();
            d.put(&e, "by", "oa").unwrap();
            d.put(&e, "at", format!("{:013}.00000.oa", T0.plus_minutes(2).millis()))
                .unwrap();
            d.put(&e, "unit", "station-a").unwrap();
            d.put(&e, "reason", "x".repeat(3000)).unwrap();
        }),
        Rule::UnknownField,
    );
}

/// The creation change of a document with one more put on the object
/// `parent` made (a field the typed writer never writes).
fn creation_with_extra(doc: &mut AutoCommit, parent: &str, key: &str, value: ScalarValue) -> Change {
    let [creation] = doc.get_changes(&[]).try_into().unwrap();
    let mut expanded = creation.decode();
    let start = creation.start_op().get();
    let actor = creation.actor_id().clone();
    let i = expanded
        .operations
        .iter()
        .position(|op| op.obj == ObjectId::Root && op.key == Key::Map(parent.into()))
        .unwrap();
    expanded.operations.push(Op {
        action: OpType::Put(value),
        obj: ObjectId::Id(OpId(start + i as u64, actor)),
        key: Key::Map(key.into()),
        pred: Vec::new().into(),
        insert: false,
    });
    expanded.hash = None;
    Change::from(expanded)
}

#[test]
fn a_new_petition_room_or_notice_with_an_extra_header_field_is_refused() {
    let r = resident();
    let mut doc = petition().into_doc();
    let junk = creation_with_extra(&mut doc, "header", "junk", "x".repeat(1000).into());
    refused(&check(AutoCommit::new(), &r, vec![junk]), Rule::UnknownField);
    let ok = creation_with_extra(&mut doc, "header", "lat", ScalarValue::F64(25.0));
    allowed(&check(AutoCommit::new(), &r, vec![ok]));

    let oa = officer_a();
    let mut room = RoomDoc::create(
        actor(1),
        RoomInfo {
            id: "room-1".into(),
            kind: RoomKind::VillageRoom,
            name: "A1 议事厅".into(),
            unit: unit("village-a1"),
            household: None,
            created_by: oa.user.clone(),
        },
        [(oa.user.clone(), MemberRole::Owner), (user("r1"), MemberRole::Member)],
    )
    .unwrap()
    .into_doc();
    allowed(&check(AutoCommit::new(), &oa, room.get_changes(&[])));
    let junk = creation_with_extra(&mut room, "info", "motto", "x".into());
    refused(&check(AutoCommit::new(), &oa, vec![junk]), Rule::UnknownField);
}

#[test]
fn a_header_over_the_entry_limit_is_refused() {
    let r = resident();
    let mut doc = petition().into_doc();
    // `source_message` is a header field, read only beside `source_room`.
    let big = creation_with_extra(&mut doc, "header", "source_message", "x".repeat(70_000).into());
    refused(&check(AutoCommit::new(), &r, vec![big]), Rule::EntryTooLarge);
}

// ---- values written and hidden in the same change ----

#[test]
fn values_written_twice_or_deleted_in_one_change_are_refused() {
    let doc = petition().into_doc();
    let conv = list(&doc, "conversation");
    refused(
        &raw_edit(&doc, &resident(), |d| {
            let m = raw_message(d, &conv, "r1", 0);
            d.put(&m, "text", "y".repeat(9000)).unwrap();
        }),
        Rule::WrittenTwice,
    );
    refused(
        &raw_edit(&doc, &resident(), |d| {
            let m = raw_message(d, &conv, "r1", 0);
            d.put(&m, "tag", "x".repeat(100_000)).unwrap();
            d.delete(&m, "tag").unwrap();
        }),
        Rule::WrittenTwice,
    );
    refused(
        &raw_edit(&doc, &resident(), |d| {
            let m = raw_message(d, &conv, "r1", 0);
            let a = d.put_object(&m, "mentions", ObjType::List).unwrap();
            d.insert(&a, 0, "x".repeat(100_000)).unwrap();
            d.put(&a, 0, "oa").unwrap();
        }),
        Rule::WrittenTwice,
    );
}

// ---- per change and per document ----

#[test]
fn one_change_adds_a_bounded_number_of_entries() {
    let doc = petition().into_doc();
    let conv = list(&doc, "conversation");
    let n = MAX_PETITION_ENTRIES - 1;
    assert!(n <= MAX_CHANGE_ENTRIES);
    allowed(&raw_edit(&doc, &resident(), |d| {
        for i in 0..n {
            raw_message(d, &conv, "r1", i);
        }
    }));
    // A room takes more entries than a petition: one change still adds at most the change limit.
    let oa = officer_a();
    let room = RoomDoc::create(
        actor(1),
        RoomInfo {
            id: "room-1".into(),
            kind: RoomKind::VillageRoom,
            name: "A1 议事厅".into(),
            unit: unit("village-a1"),
            household: None,
            created_by: oa.user.clone(),
        },
        [(user("r1"), MemberRole::Member)],
    )
    .unwrap()
    .into_doc();
    let messages = list(&room, "messages");
    refused(
        &raw_edit(&room, &oa, |d| {
            for i in 0..=MAX_CHANGE_ENTRIES {
                raw_message(d, &messages, "oa", i);
            }
        }),
        Rule::ChangeTooLarge,
    );
}

#[test]
fn a_full_petition_takes_no_more_entries() {
    // One submitted event and 999 messages: the petition is full.
    let mut doc = petition().into_doc();
    let conv = list(&doc, "conversation");
    for i in 0..MAX_PETITION_ENTRIES - 1 {
        raw_message(&mut doc, &conv, "r1", i);
    }
    doc.commit();
    let c = raw_edit(&doc, &resident(), |d| {
        let m = d.insert_object(&conv, d.length(&conv), ObjType::Map).unwrap();
        d.put(&m, "by", "r1").unwrap();
        d.put(&m, "at", format!("{:013}.00000.last", T0.plus_minutes(2).millis()))
            .unwrap();
        d.put(&m, "text", "再问一次").unwrap();
    });
    refused(&c, Rule::DocumentFull);
    // The typed write is refused the same way, on the phone before it is sent.
    let mut p = sync_core::petition::PetitionDoc::from_doc(doc.clone()).unwrap();
    let before = p.doc_mut().get_heads();
    p.post(&mut author(&resident()), T0.plus_minutes(3), Message::draft("再问一次"))
        .unwrap();
    let org = org();
    let r = resident();
    let refusal = sync_core::policy::check_local(&ctx(&org, &r), p.doc_mut(), &before).unwrap_err();
    assert_eq!(refusal.rule, Rule::DocumentFull);
}

// ---- households ----

fn directory() -> DirectoryDoc {
    DirectoryDoc::create(actor(1), unit("village-a1"), &user("oa")).unwrap()
}

fn household(id: &str) -> Household {
    Household {
        id: HouseholdId::new(id).unwrap(),
        name: "张家".into(),
        representative: None,
        representative_name: None,
        phone: None,
        group_tag: None,
        officer: None,
        address: None,
        note: None,
        moved_out: false,
    }
}

#[test]
fn households_hold_only_their_fields_within_their_limits() {
    let oa = officer_a();
    let mut dir = directory();
    dir.upsert_household(&mut author(&oa), T0, &household("h1")).unwrap();
    let doc = dir.into_doc();
    let hs = doc.get(ROOT, "households").unwrap().unwrap().1;
    let h1 = doc.get(&hs, "h1").unwrap().unwrap().1;

    // A new household with a field no household has.
    refused(
        &raw_edit(&doc, &oa, |d| {
            let h = d.put_object(&hs, "h2", ObjType::Map).unwrap();
            d.put(&h, "name", "李家").unwrap();
            d.put(&h, "updated_by", "oa").unwrap();
            d.put(&h, "junk", "x").unwrap();
        }),
        Rule::UnknownField,
    );
    // An existing household's phone set to 5,000 characters.
    refused(
        &raw_edit(&doc, &oa, |d| {
            d.put(&h1, "phone", "1".repeat(5000)).unwrap();
            d.put(&h1, "updated_by", "oa").unwrap();
        }),
        Rule::Malformed,
    );
    // The same field written twice in one change.
    refused(
        &raw_edit(&doc, &oa, |d| {
            d.put(&h1, "note", "x".repeat(3000)).unwrap();
            d.put(&h1, "note", "门口有狗").unwrap();
        }),
        Rule::WrittenTwice,
    );
    // An honest edit passes.
    allowed(&raw_edit(&doc, &oa, |d| {
        d.put(&h1, "note", "门口有狗").unwrap();
        d.put(&h1, "updated_by", "oa").unwrap();
    }));
}

#[test]
fn a_room_created_with_ten_thousand_members_is_within_the_limits() {
    let oa = officer_a();
    let members: Vec<_> = (0..10_000)
        .map(|i| (user(&format!("resident-{i}")), MemberRole::Member))
        .chain([(oa.user.clone(), MemberRole::Owner)])
        .collect();
    let mut room = RoomDoc::create(
        actor(1),
        RoomInfo {
            id: "room-big".into(),
            kind: RoomKind::VillageRoom,
            name: "大群".into(),
            unit: unit("village-a1"),
            household: None,
            created_by: oa.user.clone(),
        },
        members,
    )
    .unwrap()
    .into_doc();
    allowed(&check(AutoCommit::new(), &oa, room.get_changes(&[])));
}
