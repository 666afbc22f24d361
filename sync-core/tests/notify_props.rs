//! Properties of petition notifications over random timelines: only applied
//! events notify, keys are unique, and deriving change by change in stamp
//! order gives exactly what deriving all at once gives.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use sync_core::doc::Message;
use sync_core::notify::{Notification, PetitionSnapshot, Recipient, petition_changes};
use sync_core::petition::{EventBody, Outcome, TimelineEvent};
use sync_core::{EntryId, Hlc, Principal, UnitId, UserId};

const UNITS: [&str; 4] = ["station-a", "station-b", "county", "water"];

/// One random entry: an event (kind `0..12`) or a message (`12..14`), at
/// T0 + `minutes`, written by person `who` acting for unit `acting`.
#[derive(Clone, Debug)]
struct Entry {
    kind: u8,
    who: u8,
    acting: u8,
    target: u8,
    minutes: i64,
}

fn entry() -> impl Strategy<Value = Entry> {
    (0u8..14, 0u8..3, 0u8..4, 0u8..4, 1i64..500).prop_map(|(kind, who, acting, target, minutes)| Entry {
        kind,
        who,
        acting,
        target,
        minutes,
    })
}

fn people() -> [Principal; 3] {
    [officer_a(), officer_b(), leader()]
}

fn stamp(minutes: i64, counter: u32, node: &str) -> Hlc {
    Hlc {
        wall_ms: T0.plus_minutes(minutes).millis(),
        counter,
        node: node.into(),
    }
}

/// Builds the entries; `i` keeps every stamp unique.
fn build(entries: &[Entry]) -> (Vec<TimelineEvent>, Vec<Message>) {
    let r = resident();
    let mut events = vec![TimelineEvent {
        by: r.user.clone(),
        at: stamp(0, 0, "r1"),
        unit: None,
        body: EventBody::Submitted {
            unit: unit("station-a"),
        },
    }];
    let mut messages = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let officer = &people()[e.who as usize];
        let resident_writes = matches!(e.kind, 9 | 10 | 12);
        let by = if resident_writes {
            r.user.clone()
        } else {
            officer.user.clone()
        };
        let node: String = by.as_str().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let at = stamp(e.minutes, i as u32 + 1, &node);
        let to: UnitId = unit(UNITS[e.target as usize]);
        let body = match e.kind {
            0 => EventBody::Signed,
            1 => EventBody::Transferred {
                assist: [unit(UNITS[(e.target as usize + 1) % 4])]
                    .into_iter()
                    .filter(|a| *a != to)
                    .collect(),
                to,
                note: None,
            },
            2 => EventBody::Accepted,
            3 => EventBody::Returned {
                reason: "退回".into()
            },
            4 => EventBody::Replied { text: "答复".into() },
            5 => EventBody::Escalated {
                to,
                reason: "提级".into(),
                clock: None,
            },
            6 => EventBody::Supervised { note: "督办".into() },
            7 => EventBody::Closed { note: None },
            8 => EventBody::Progress { note: "进展".into() },
            9 => EventBody::Reopened {
                reason: "重办".into()
            },
            10 => EventBody::Withdrawn { reason: None },
            11 => EventBody::Merged { into: "p-0".into() },
            _ => {
                messages.push(Message {
                    by,
                    at,
                    text: format!("留言{i}"),
                    mentions: vec![],
                    reply_to: None,
                    attachments: vec![],
                    tag: None,
                    appeal: None,
                });
                continue;
            }
        };
        let acting = (!resident_writes).then(|| unit(UNITS[e.acting as usize]));
        events.push(TimelineEvent {
            by,
            at,
            unit: acting,
            body,
        });
    }
    (events, messages)
}

fn keys(ns: &[Notification]) -> BTreeSet<String> {
    ns.iter().map(|n| n.key.clone()).collect()
}

proptest! {
    // PROPTEST_CASES overrides the case count (CI runs the default).
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256), ..ProptestConfig::default() })]

    #[test]
    fn applied_events_alone_notify_and_stepwise_equals_at_once(entries in prop::collection::vec(entry(), 0..24)) {
        let r = resident();
        let header = header(&r, &r);
        let (events, messages) = build(&entries);
        let all = PetitionSnapshot::new(header.clone(), events.clone(), messages.clone());
        let at_once = petition_changes(None, &all);

        prop_assert_eq!(keys(&at_once).len(), at_once.len(), "keys are unique");
        let message_ids: BTreeSet<EntryId> = messages.iter().map(Message::id).collect();
        let writers: BTreeMap<EntryId, UserId> = events
            .iter()
            .map(|e| (e.id(), e.by.clone()))
            .chain(messages.iter().map(|m| (m.id(), m.by.clone())))
            .collect();
        for n in &at_once {
            let id = n.entry.as_ref().expect("every petition notification names its entry");
            if !message_ids.contains(id) {
                prop_assert_eq!(all.state.outcome(id), Some(&Outcome::Applied), "{:?}", n);
            }
            prop_assert_ne!(&n.recipient, &Recipient::User(writers[id].clone()), "nobody hears of their own entry");
        }

        // Entries arriving one by one in stamp order: each step adds one.
        let mut order: Vec<(Hlc, Option<usize>, Option<usize>)> = events
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, e)| (e.at.clone(), Some(i), None))
            .chain(messages.iter().enumerate().map(|(i, m)| (m.at.clone(), None, Some(i))))
            .collect();
        order.sort();
        let mut seen_events = vec![events[0].clone()];
        let mut seen_messages = Vec::new();
        let mut stepwise = petition_changes(None, &PetitionSnapshot::new(header.clone(), seen_events.clone(), vec![]));
        let mut before = PetitionSnapshot::new(header.clone(), seen_events.clone(), vec![]);
        for (_, e, m) in order {
            if let Some(i) = e {
                seen_events.push(events[i].clone());
            }
            if let Some(i) = m {
                seen_messages.push(messages[i].clone());
            }
            let after = PetitionSnapshot::new(header.clone(), seen_events.clone(), seen_messages.clone());
            stepwise.extend(petition_changes(Some(&before), &after));
            before = after;
        }
        prop_assert_eq!(keys(&stepwise), keys(&at_once));
        prop_assert_eq!(stepwise.len(), at_once.len());
    }
}
