//! 户户通, through the write path: a household's message on its household line, and a petition
//! it files on the household line, reach the officer the village directory assigns to the
//! household. The write asks the host for that officer ([`Needs::household_officer`]) and
//! addresses the notification with the answer ([`Facts::household_officer`]), falling back to
//! the line's or the petition's unit when the household has no officer.

mod common;

use std::collections::HashMap;

use automerge::{AutoCommit, Change};
use common::*;
use sync_core::doc::Message;
use sync_core::doc::cache::EntryCache;
use sync_core::notify::{NotificationKind as Kind, Recipient};
use sync_core::petition::PetitionDoc;
use sync_core::policy::PolicyContext;
use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};
use sync_core::write::{Facts, Needs, Origin, Proposal, WriteOutcome, propose};
use sync_core::{Calendar, Channel, ClockRules, HouseholdId, Principal};

fn propose_as(who: &Principal, doc_id: &str, before: &AutoCommit, changes: Vec<Change>) -> (Proposal, EntryCache) {
    let org = org();
    let ctx = PolicyContext {
        org: &org,
        principal: who,
        now: T0.plus_minutes(60),
    };
    let mut cache = EntryCache::default();
    let p = propose(
        &ctx,
        Origin::Client,
        doc_id,
        before,
        changes,
        &HashMap::new(),
        &mut cache,
    );
    assert!(p.accepts_anything(), "policy accepts the write");
    (p, cache)
}

fn finish(p: Proposal, mut cache: EntryCache, officer: Option<&str>) -> WriteOutcome {
    let facts = Facts {
        household_officer: officer.map(user),
        ..Facts::default()
    };
    p.finish(
        &facts,
        &ClockRules::default(),
        &Calendar::china(),
        T0.plus_minutes(60),
        &mut cache,
    )
    .unwrap()
}

/// The (recipient, kind) of each notification of `kind`.
fn told(out: &WriteOutcome, kind: Kind) -> Vec<Recipient> {
    out.notifications
        .iter()
        .filter(|n| n.kind == kind)
        .map(|n| n.recipient.clone())
        .collect()
}

/// Household h1's line to station A, with an officer of the station on it.
fn line() -> AutoCommit {
    let info = RoomInfo {
        id: "line-h1".into(),
        kind: RoomKind::HouseholdLine,
        name: "h1 ↔ A".into(),
        unit: unit("station-a"),
        household: Some(HouseholdId::new("h1").unwrap()),
        created_by: resident().user,
    };
    RoomDoc::create(actor(1), info, [(user("oa2"), MemberRole::Moderator)])
        .unwrap()
        .into_doc()
}

/// `who`'s post of `text` on `base`, as the change their device sends.
fn post(base: &AutoCommit, who: &Principal, text: &str) -> Vec<Change> {
    let mut base = base.clone();
    let mut fork = RoomDoc::from_doc(base.fork().with_actor(actor(7))).unwrap();
    fork.post(&mut author(who), T0.plus_minutes(5), Message::draft(text))
        .unwrap();
    changes_since(&mut base, fork.doc_mut())
}

#[test]
fn a_households_line_message_reaches_its_directory_officer_else_the_lines_unit() {
    let base = line();
    let changes = post(&base, &resident(), "李警官，身份证快到期了怎么换？");

    let (p, cache) = propose_as(&resident(), "line-h1", &base, changes.clone());
    assert_eq!(
        p.needs(),
        &Needs {
            household_officer: Some(HouseholdId::new("h1").unwrap()),
            ..Needs::default()
        },
        "the write asks who the household's officer is"
    );
    let out = finish(p, cache, Some("oa2"));
    assert_eq!(told(&out, Kind::LineMessage), vec![Recipient::User(user("oa2"))]);
    assert!(out.notifications[0].key.ends_with("/line_message/user:oa2"));

    // A household the directory gives no officer: the line's unit, whoever is on duty.
    let (p, cache) = propose_as(&resident(), "line-h1", &base, changes);
    let out = finish(p, cache, None);
    assert_eq!(told(&out, Kind::LineMessage), vec![Recipient::Unit(unit("station-a"))]);
}

#[test]
fn an_officers_line_message_goes_to_the_household_and_needs_no_directory() {
    let base = line();
    let changes = post(&base, &officer_a2(), "带旧证和户口本到所里办理。");
    let (p, cache) = propose_as(&officer_a2(), "line-h1", &base, changes);
    assert!(p.needs().is_empty(), "{:?}", p.needs());
    let out = finish(p, cache, None);
    assert_eq!(
        told(&out, Kind::LineMessage),
        vec![Recipient::Household(HouseholdId::new("h1").unwrap())]
    );
}

#[test]
fn a_neighbours_room_message_needs_no_directory() {
    // Another household's resident writing on h1's line is refused by policy; on a
    // village room the directory is not asked either (checked here on the line's kind
    // alone: h2 is not the line's household).
    let base = line();
    let org = org();
    let ctx = PolicyContext {
        org: &org,
        principal: &neighbour(),
        now: T0.plus_minutes(60),
    };
    let mut cache = EntryCache::default();
    let p = propose(
        &ctx,
        Origin::Client,
        "line-h1",
        &base,
        post(&base, &neighbour(), "我也想问"),
        &HashMap::new(),
        &mut cache,
    );
    assert!(!p.accepts_anything());
    assert!(p.needs().is_empty(), "{:?}", p.needs());
}

/// A new petition by `resident()` on `channel`, as the changes that create it.
fn new_petition(channel: Channel) -> Vec<Change> {
    let r = resident();
    let mut h = header(&r, &r);
    h.channel = channel;
    let mut doc = PetitionDoc::create(actor(3), h, unit("station-a"), &mut author(&r), T0)
        .unwrap()
        .into_doc();
    doc.get_changes(&[])
}

#[test]
fn a_petition_filed_on_the_household_line_reaches_the_households_officer() {
    let changes = new_petition(Channel::HouseholdLine);
    let (p, cache) = propose_as(&resident(), "p-1", &AutoCommit::new(), changes.clone());
    assert_eq!(p.needs().household_officer, Some(HouseholdId::new("h1").unwrap()));
    let out = finish(p, cache, Some("oa2"));
    assert_eq!(told(&out, Kind::NewPetition), vec![Recipient::User(user("oa2"))]);
    let key = &out
        .notifications
        .iter()
        .find(|n| n.kind == Kind::NewPetition)
        .unwrap()
        .key;
    assert!(key.ends_with("/new_petition/user:oa2"), "{key}");
    // The petition stays routed to the station: its duty desk and clocks still cover it.
    let summary = out.projection.petition.as_ref().unwrap();
    assert_eq!(summary.lead.as_ref(), Some(&unit("station-a")));

    // No officer in the directory: the station's queue, as before.
    let (p, cache) = propose_as(&resident(), "p-1", &AutoCommit::new(), changes);
    let out = finish(p, cache, None);
    assert_eq!(told(&out, Kind::NewPetition), vec![Recipient::Unit(unit("station-a"))]);
}

#[test]
fn a_petition_on_another_channel_does_not_ask_for_the_officer() {
    let (p, cache) = propose_as(&resident(), "p-1", &AutoCommit::new(), new_petition(Channel::ChiefLine));
    assert!(p.needs().is_empty(), "{:?}", p.needs());
    // Even a host that answers anyway does not redirect it.
    let out = finish(p, cache, Some("oa2"));
    assert_eq!(told(&out, Kind::NewPetition), vec![Recipient::Unit(unit("station-a"))]);
}
