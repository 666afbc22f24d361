//! REST action bodies (`POST /api/petitions/{id}/actions` takes a `PetitionAction` as JSON):
//! parsing never panics, and an action that parses is written to a petition and checked by
//! policy without panicking.
#![no_main]

use std::sync::OnceLock;

use automerge::{ActorId, AutoCommit};
use libfuzzer_sys::fuzz_target;
use sync_core::petition::{Location, PetitionAction, PetitionDoc, PetitionHeader};
use sync_core::policy::{PolicyContext, check_changes};
use sync_core::{Author, Category, Channel, HlcClock, Membership, OrgTree, Principal, Role, Timestamp, Unit, UnitId, UnitKind, UserId};

const NOW: Timestamp = Timestamp(1_750_000_000_000);

struct World {
    org: OrgTree,
    officer: Principal,
    petition: AutoCommit,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let unit = |id: &str, kind, parent: Option<&str>| Unit {
            id: UnitId::new(id).expect("id"),
            name: id.into(),
            kind,
            parent: parent.map(|p| UnitId::new(p).expect("id")),
        };
        let org = OrgTree::new([
            unit("station", UnitKind::Station, None),
            unit("village", UnitKind::Village, Some("station")),
        ]);
        let resident = UserId::new("r1").expect("id");
        let header = PetitionHeader {
            id: "p".into(),
            channel: Channel::ChiefLine,
            category: Category::Help,
            title: "泉水被截流".into(),
            body: "家里断水三天".into(),
            submitter: resident.clone(),
            recorded_by: resident.clone(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: UnitId::new("village").expect("id"),
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        };
        let mut author = Author::new(resident, HlcClock::new("r1").expect("node"));
        let petition = PetitionDoc::create(
            ActorId::from([1u8; 16].as_slice()),
            header,
            UnitId::new("station").expect("id"),
            &mut author,
            NOW,
        )
        .expect("create")
        .into_doc();
        let officer = Principal {
            user: UserId::new("o1").expect("id"),
            memberships: vec![Membership {
                unit: UnitId::new("station").expect("id"),
                role: Role::Officer,
            }],
            household: None,
        };
        World { org, officer, petition }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(action) = serde_json::from_slice::<PetitionAction>(data) else {
        return;
    };
    let w = world();
    let mut stored = w.petition.clone();
    let heads = stored.get_heads();
    let Ok(mut doc) = PetitionDoc::from_doc(stored.fork().with_actor(ActorId::from([2u8; 16].as_slice()))) else {
        return;
    };
    let mut author = Author::new(w.officer.user.clone(), HlcClock::new("o1").expect("node"));
    if action.apply(&mut doc, &mut author, NOW).is_ok() {
        let changes = doc.into_doc().get_changes(&heads);
        let ctx = PolicyContext {
            org: &w.org,
            principal: &w.officer,
            now: NOW,
        };
        let _ = check_changes(&ctx, stored, changes);
    }
});
