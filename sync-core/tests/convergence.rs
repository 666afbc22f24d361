//! Convergence: replicas edit offline, merge in random orders, and must end
//! byte-for-byte equal in content and in derived status.

mod common;

use common::*;
use proptest::prelude::*;
use sync_core::doc::{Message, canonical_bytes};
use sync_core::petition::{ContactMethod, EventBody, PetitionDoc};
use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};
use sync_core::{Author, Principal};

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    /// Replica `r` records action `a` at device time T0 + `minutes`.
    Edit { r: usize, a: u8, unit: u8, minutes: i64 },
    /// Replica `to` receives everything replica `from` has.
    Sync { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..REPLICAS, 0u8..15, 0u8..3, -30i64..600).prop_map(|(r, a, unit, minutes)| Step::Edit { r, a, unit, minutes }),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

/// Who writes on each replica: an officer's phone, the duty desk, the resident's phone.
fn people() -> [Principal; REPLICAS] {
    [officer_a(), leader(), resident()]
}

fn message(text: &str) -> Message {
    Message {
        by: user("x"),
        at: "0000000000000.00000.x".parse().unwrap(),
        text: text.into(),
        mentions: vec![],
        reply_to: None,
        attachments: vec![],
        tag: None,
        appeal: None,
    }
}

fn petition_edit(doc: &mut PetitionDoc, who: &mut Author, a: u8, unit_choice: u8, minutes: i64) {
    let units = ["station-a", "water", "county"];
    let acting = Some(unit(units[unit_choice as usize]));
    let now = T0.plus_minutes(minutes);
    let body = match a {
        0 => EventBody::Signed,
        1 => EventBody::Transferred {
            to: unit(units[(unit_choice as usize + 1) % 3]),
            assist: vec![],
            note: None,
        },
        2 => EventBody::Accepted,
        3 => EventBody::Returned {
            reason: "不属于本单位".into(),
        },
        4 => EventBody::Contacted {
            method: ContactMethod::Phone,
            note: None,
        },
        5 => EventBody::Progress {
            note: "正在协调".into(),
        },
        6 => EventBody::Replied {
            text: "已处理".into()
        },
        7 => EventBody::Escalated {
            to: unit("county"),
            reason: "超时".into(),
            clock: None,
        },
        8 => EventBody::Supervised { note: "督办".into() },
        9 => EventBody::FollowUp {
            rating: 1 + unit_choice,
            comment: None,
        },
        10 => EventBody::Published {
            summary: "结果公开".into(),
        },
        11 => EventBody::Closed { note: None },
        12 => EventBody::Reopened {
            reason: "问题复发".into(),
        },
        13 => EventBody::Withdrawn { reason: None },
        _ => {
            doc.post(who, now, message("还没有解决")).unwrap();
            return;
        }
    };
    doc.record(who, now, acting, body).unwrap();
}

fn assert_converged(docs: &mut [PetitionDoc]) {
    let (first, rest) = docs.split_first_mut().unwrap();
    let state = serde_json::to_string(&first.state().unwrap()).unwrap();
    let bytes = canonical_bytes(first.doc_mut());
    let content = serde_json::to_string(&automerge::AutoSerde::from(first.doc())).unwrap();
    let heads = first.doc_mut().get_heads();
    for other in rest {
        assert_eq!(other.doc_mut().get_heads(), heads);
        assert_eq!(
            serde_json::to_string(&other.state().unwrap()).unwrap(),
            state,
            "derived status differs"
        );
        assert_eq!(
            serde_json::to_string(&automerge::AutoSerde::from(other.doc())).unwrap(),
            content,
            "content differs"
        );
        assert_eq!(canonical_bytes(other.doc_mut()), bytes, "canonical bytes differ");
    }
}

proptest! {
    // PROPTEST_CASES overrides the case count (CI runs the default).
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256), ..ProptestConfig::default() })]

    #[test]
    fn petitions_converge_whatever_the_merge_order(steps in prop::collection::vec(step(), 1..40), order in Just(()).prop_perturb(|_, mut rng| {
        let mut o: Vec<usize> = (0..REPLICAS).collect();
        for i in (1..o.len()).rev() { o.swap(i, rng.random_range(0..=i)); }
        o
    })) {
        let base = petition();
        let mut docs: Vec<PetitionDoc> = (0..REPLICAS)
            .map(|i| PetitionDoc::from_doc(base.doc().clone().fork().with_actor(actor(10 + i as u8))).unwrap())
            .collect();
        let people = people();
        let mut authors: Vec<Author> = people.iter().map(author).collect();
        for s in &steps {
            match *s {
                Step::Edit { r, a, unit, minutes } => petition_edit(&mut docs[r], &mut authors[r], a, unit, minutes),
                Step::Sync { from, to } if from != to => {
                    let mut src = docs[from].doc().clone();
                    docs[to].doc_mut().merge(&mut src).unwrap();
                }
                Step::Sync { .. } => {}
            }
        }
        // Everyone receives everyone else's changes, in a random order.
        let snapshot: Vec<_> = docs.iter().map(|d| d.doc().clone()).collect();
        for (i, doc) in docs.iter_mut().enumerate() {
            for &j in &order {
                if j != i {
                    doc.doc_mut().merge(&mut snapshot[j].clone()).unwrap();
                }
            }
        }
        assert_converged(&mut docs);
        // And the derivation itself does not depend on the timeline's list order.
        let header = docs[0].header().unwrap();
        let mut events = docs[0].events().unwrap();
        let messages = docs[0].messages().unwrap();
        let expected = sync_core::petition::derive(&header, &events, &messages);
        events.reverse();
        prop_assert_eq!(sync_core::petition::derive(&header, &events, &messages), expected);
    }

    #[test]
    fn rooms_converge_with_concurrent_posts_redactions_and_membership(steps in prop::collection::vec((0..REPLICAS, 0u8..5, 0usize..8, -10i64..100), 1..30)) {
        let info = RoomInfo { id: "room-1".into(), kind: RoomKind::VillageRoom, name: "议事厅".into(), unit: unit("village-a1"), household: None, created_by: user("oa") };
        let base = RoomDoc::create(actor(1), info, [(user("r1"), MemberRole::Member)]).unwrap();
        let mut docs: Vec<RoomDoc> = (0..REPLICAS)
            .map(|i| RoomDoc::from_doc(base.doc().clone().fork().with_actor(actor(10 + i as u8))).unwrap())
            .collect();
        let mut authors: Vec<Author> = people().iter().map(author).collect();
        for (r, a, pick, minutes) in steps {
            let now = T0.plus_minutes(minutes);
            let ids: Vec<_> = docs[r].raw_messages().unwrap().iter().map(|m| m.id()).collect();
            match a {
                0 | 1 => { docs[r].post(&mut authors[r], now, message("大家好")).unwrap(); }
                2 if !ids.is_empty() => { docs[r].redact(&mut authors[r], now, &ids[pick % ids.len()], "不当言论").unwrap(); }
                3 => docs[r].set_member(&user(["r2", "r3"][pick % 2]), if pick % 3 == 0 { None } else { Some(MemberRole::Member) }).unwrap(),
                _ => {
                    let to = (r + 1) % REPLICAS;
                    let mut src = docs[r].doc().clone();
                    docs[to].doc_mut().merge(&mut src).unwrap();
                }
            }
        }
        let snapshot: Vec<_> = docs.iter().map(|d| d.doc().clone()).collect();
        for doc in docs.iter_mut() {
            for s in &snapshot {
                doc.doc_mut().merge(&mut s.clone()).unwrap();
            }
        }
        let view = serde_json::to_string(&docs[0].messages().unwrap()).unwrap();
        let members = docs[0].members().unwrap();
        let bytes = canonical_bytes(docs[0].doc_mut());
        for d in docs.iter_mut().skip(1) {
            prop_assert_eq!(serde_json::to_string(&d.messages().unwrap()).unwrap(), view.clone());
            prop_assert_eq!(d.members().unwrap(), members.clone());
            prop_assert_eq!(canonical_bytes(d.doc_mut()), bytes.clone());
        }
    }
}
