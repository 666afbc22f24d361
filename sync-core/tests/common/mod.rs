//! A small county to test against: two stations, villages, a department, and its people.

#![allow(dead_code)]

use automerge::{ActorId, AutoCommit, Change};
use sync_core::petition::{EventBody, Location, PetitionDoc, PetitionHeader};
use sync_core::policy::{Checked, PolicyContext, Rule, check_changes};
use sync_core::{
    Author, Category, Channel, HlcClock, HouseholdId, Membership, OrgTree, Principal, Role, Timestamp, Unit, UnitId,
    UnitKind, UserId,
};

pub const T0: Timestamp = Timestamp(1_750_000_000_000);

pub fn unit(id: &str) -> UnitId {
    UnitId::new(id).unwrap()
}

pub fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

pub fn org() -> OrgTree {
    let u = |id: &str, kind, parent: Option<&str>| Unit {
        id: unit(id),
        name: id.into(),
        kind,
        parent: parent.map(unit),
    };
    OrgTree::new([
        u("city", UnitKind::City, None),
        u("county", UnitKind::County, Some("city")),
        u("city-taskforce", UnitKind::TaskForce, Some("city")),
        u("station-a", UnitKind::Station, Some("county")),
        u("station-b", UnitKind::Station, Some("county")),
        u("village-a1", UnitKind::Village, Some("station-a")),
        u("village-b1", UnitKind::Village, Some("station-b")),
        u("water", UnitKind::Department, Some("county")),
    ])
}

fn principal(id: &str, memberships: &[(&str, Role)], household: Option<&str>) -> Principal {
    Principal {
        user: user(id),
        memberships: memberships
            .iter()
            .map(|(u, r)| Membership {
                unit: unit(u),
                role: *r,
            })
            .collect(),
        household: household.map(|h| HouseholdId::new(h).unwrap()),
    }
}

/// Resident of village A1, household h1.
pub fn resident() -> Principal {
    principal("r1", &[("village-a1", Role::Resident)], Some("h1"))
}
/// Another resident of village A1, household h2.
pub fn neighbour() -> Principal {
    principal("r2", &[("village-a1", Role::Resident)], Some("h2"))
}
pub fn officer_a() -> Principal {
    principal("oa", &[("station-a", Role::Officer)], None)
}
pub fn officer_a2() -> Principal {
    principal("oa2", &[("station-a", Role::Officer)], None)
}
pub fn officer_b() -> Principal {
    principal("ob", &[("station-b", Role::Officer)], None)
}
pub fn leader() -> Principal {
    principal("director", &[("county", Role::Leader)], None)
}
pub fn water_staff() -> Principal {
    principal("w1", &[("water", Role::DepartmentStaff)], None)
}
pub fn system() -> Principal {
    principal("server", &[("city", Role::System)], None)
}

/// An author for `who` with a clock named after them.
pub fn author(who: &Principal) -> Author {
    let node: String = who
        .user
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Author::new(who.user.clone(), HlcClock::new(node).unwrap())
}

pub fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16].as_slice())
}

pub fn header(submitter: &Principal, recorded_by: &Principal) -> PetitionHeader {
    PetitionHeader {
        id: "p-1".into(),
        channel: Channel::ChiefLine,
        category: Category::Help,
        title: "泉水被截流，家里断水".into(),
        body: "村里的泉水被引去灌溉，我家已经断水三天。".into(),
        submitter: submitter.user.clone(),
        recorded_by: recorded_by.user.clone(),
        anonymous: false,
        contact: Some("13800000000".into()),
        location: Location {
            unit: unit("village-a1"),
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    }
}

/// A petition filed by `resident()` and routed to station A.
pub fn petition() -> PetitionDoc {
    let r = resident();
    PetitionDoc::create(actor(1), header(&r, &r), unit("station-a"), &mut author(&r), T0).unwrap()
}

/// Every change of `doc` made after `before`'s heads.
pub fn changes_since(before: &mut AutoCommit, after: &mut AutoCommit) -> Vec<Change> {
    after.get_changes(&before.get_heads())
}

/// Checks the changes `edit` makes to a fork of `doc` (with `actor`) as `who`.
pub fn check_edit(doc: &PetitionDoc, who: &Principal, actor_n: u8, edit: impl FnOnce(&mut PetitionDoc)) -> Checked {
    let mut base = doc.doc().clone();
    let mut fork = PetitionDoc::from_doc(base.fork().with_actor(actor(actor_n))).unwrap();
    edit(&mut fork);
    let changes = changes_since(&mut base, fork.doc_mut());
    let org = org();
    check_changes(
        &PolicyContext {
            org: &org,
            principal: who,
            now: T0.plus_minutes(60),
        },
        base,
        changes,
    )
}

/// Records `body` as `who` acting for `unit`, at `minutes` after T0.
pub fn record(doc: &mut PetitionDoc, who: &Principal, unit_id: Option<&str>, minutes: i64, body: EventBody) {
    doc.record(&mut author(who), T0.plus_minutes(minutes), unit_id.map(unit), body)
        .unwrap();
}

/// `who` writing in `org` an hour after T0.
pub fn ctx<'a>(org: &'a sync_core::OrgTree, who: &'a Principal) -> PolicyContext<'a> {
    PolicyContext {
        org,
        principal: who,
        now: T0.plus_minutes(60),
    }
}

/// Every change was accepted.
#[track_caller]
pub fn allowed(c: &Checked) {
    assert!(c.refused.is_empty(), "expected allowed, got {:?}", c.refused);
    assert!(!c.accepted.is_empty(), "nothing was checked");
}

/// The one change was refused by `rule`.
#[track_caller]
pub fn refused(c: &Checked, rule: Rule) {
    assert_eq!(
        c.refused.len(),
        1,
        "expected one refusal by {rule}, got {:?}",
        c.refused
    );
    assert_eq!(c.refused[0].rule, rule, "{}", c.refused[0]);
    assert!(c.accepted.is_empty());
}
