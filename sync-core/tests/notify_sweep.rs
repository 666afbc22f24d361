//! The clock sweep over a timeline of `now`s: due soon, overdue, escalation, each exactly once.

mod common;

use std::collections::BTreeSet;

use common::*;
use sync_core::notify::{EscalationPolicy, EscalationStep, NotificationKind as Kind, Recipient, SweepAction, sweep};
use sync_core::petition::{EventBody, PetitionDoc, Status};
use sync_core::{Calendar, Channel, ClockKind, ClockRules, Timestamp};

/// A host: it sweeps, keeps the keys it has acted on, and writes escalations
/// into the timeline as the server's System actor.
struct Host {
    doc: PetitionDoc,
    policy: EscalationPolicy,
    cal: Calendar,
    rules: ClockRules,
    fired: BTreeSet<String>,
}

/// What one sweep newly did: `(kind or "escalate", clock or unit, recipient or target)`.
type Done = Vec<(String, String)>;

impl Host {
    fn new(policy: EscalationPolicy) -> Host {
        Host {
            doc: petition(),
            policy,
            cal: Calendar::china(),
            rules: ClockRules::default(),
            fired: BTreeSet::new(),
        }
    }

    fn actions(&self, now: Timestamp) -> Vec<SweepAction> {
        let summary = self.doc.summary(&self.rules, &self.cal, now).unwrap();
        sweep(&summary, &self.policy, &org(), now)
    }

    /// Sweeps at `minutes` after T0 and carries out what is new.
    fn tick(&mut self, minutes: i64) -> Done {
        let now = T0.plus_minutes(minutes);
        let mut done = Vec::new();
        for action in self.actions(now) {
            if !self.fired.insert(action.key().to_owned()) {
                continue;
            }
            match &action {
                SweepAction::Notify(n) => {
                    assert_eq!(n.at, now);
                    let clock = n.key.split('/').nth(1).unwrap().split(':').nth(1).unwrap().to_owned();
                    done.push((format!("{} {clock}", n.kind), n.recipient.to_string()));
                }
                SweepAction::Escalate { unit, to, .. } => {
                    let body = action.event_body().unwrap();
                    self.doc
                        .record(&mut author(&system()), now, Some(unit.clone()), body)
                        .unwrap();
                    done.push(("escalate".into(), format!("{unit}->{to}")));
                }
            }
        }
        done
    }
}

fn did(items: &[(&str, &str)]) -> Done {
    items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn sign_step(minutes: u32) -> EscalationStep {
    EscalationStep {
        clock: ClockKind::Sign,
        overdue_minutes: minutes,
    }
}

#[test]
fn due_soon_then_overdue_then_escalate_each_happens_once() {
    let mut host = Host::new(EscalationPolicy {
        default: vec![sign_step(20)],
        ..Default::default()
    });
    assert_eq!(host.tick(1), did(&[]));
    // Sign is due 10 minutes after submission, due soon 3 minutes before.
    assert_eq!(host.tick(7), did(&[("due_soon sign", "unit:station-a")]));
    assert_eq!(host.tick(10), did(&[]), "the deadline minute is still on time");
    assert_eq!(host.tick(11), did(&[("overdue sign", "unit:station-a")]));
    assert_eq!(host.tick(15), did(&[]));
    // Contact is due at 30 minutes, due soon from 20.
    assert_eq!(host.tick(20), did(&[("due_soon contact", "unit:station-a")]));
    assert_eq!(
        host.tick(29),
        did(&[]),
        "sign is overdue by 19 minutes, one short of the step"
    );
    assert_eq!(host.tick(30), did(&[("escalate", "station-a->county")]));
    let state = host.doc.state().unwrap();
    assert_eq!(state.lead, Some(unit("county")));
    assert_eq!(state.status, Status::Submitted);
    assert_eq!(state.escalations, 1);
    assert_eq!(
        host.tick(31),
        did(&[("overdue sign", "unit:county"), ("overdue contact", "unit:county")]),
        "the county now holds clocks that ran out"
    );
    for minutes in [31, 45, 120, 600] {
        assert_eq!(host.tick(minutes), did(&[]), "nothing twice, no second escalation");
    }
}

#[test]
fn sweeping_again_after_a_restart_yields_the_same_keys() {
    let mut host = Host::new(EscalationPolicy {
        default: vec![sign_step(0)],
        ..Default::default()
    });
    for m in [7, 11, 12] {
        host.tick(m);
    }
    let now = T0.plus_minutes(12);
    let first = host.actions(now);
    let second = host.actions(now);
    assert_eq!(first, second);
    let restarted: BTreeSet<String> = first.iter().map(|a| a.key().to_owned()).collect();
    assert!(restarted.is_subset(&host.fired), "{restarted:?} vs {:?}", host.fired);
    assert!(
        host.fired
            .iter()
            .any(|k| k.starts_with("p-1/clock:sign:1750000000000/escalate/after:0m"))
    );
    assert!(
        host.fired
            .contains("p-1/clock:sign:1750000000000/overdue/unit:station-a")
    );
}

#[test]
fn the_escalation_a_sweep_asks_for_passes_write_validation_as_the_system_actor() {
    let host = Host::new(EscalationPolicy {
        default: vec![sign_step(20)],
        ..Default::default()
    });
    let now = T0.plus_minutes(30);
    let escalation = host
        .actions(now)
        .into_iter()
        .find(|a| matches!(a, SweepAction::Escalate { .. }))
        .unwrap();
    let SweepAction::Escalate { unit: from, .. } = &escalation else {
        unreachable!()
    };
    let checked = check_edit(&host.doc, &system(), 7, |d| {
        d.record(
            &mut author(&system()),
            now,
            Some(from.clone()),
            escalation.event_body().unwrap(),
        )
        .unwrap();
    });
    assert!(checked.refused.is_empty(), "{:?}", checked.refused);
    assert_eq!(checked.accepted.len(), 1);
}

#[test]
fn escalation_steps_chain_up_the_tree_at_their_own_times() {
    let mut host = Host::new(EscalationPolicy {
        default: vec![sign_step(20), sign_step(60)],
        ..Default::default()
    });
    let escalations = |d: Done| d.into_iter().filter(|(a, _)| a == "escalate").collect::<Done>();
    assert_eq!(escalations(host.tick(30)), did(&[("escalate", "station-a->county")]));
    assert_eq!(escalations(host.tick(50)), did(&[]));
    assert_eq!(escalations(host.tick(70)), did(&[("escalate", "county->city")]));
    assert_eq!(escalations(host.tick(200)), did(&[]), "every step has fired");
    assert_eq!(host.doc.state().unwrap().escalations, 2);
}

#[test]
fn a_sweep_that_wakes_late_escalates_once_with_the_largest_step_reached() {
    let mut host = Host::new(EscalationPolicy {
        default: vec![sign_step(20), sign_step(60)],
        ..Default::default()
    });
    let actions = host.actions(T0.plus_minutes(90));
    let escalations: Vec<&SweepAction> = actions
        .iter()
        .filter(|a| matches!(a, SweepAction::Escalate { .. }))
        .collect();
    assert_eq!(escalations.len(), 1);
    assert!(escalations[0].key().ends_with("/escalate/after:60m"));
    host.tick(90);
    assert_eq!(host.doc.state().unwrap().lead, Some(unit("county")));
}

#[test]
fn a_reopened_petitions_new_reply_clock_notifies_again() {
    let mut host = Host::new(EscalationPolicy::default());
    let a = Some("station-a");
    let oa = officer_a();
    record(&mut host.doc, &oa, a, 2, EventBody::Signed);
    record(
        &mut host.doc,
        &oa,
        a,
        3,
        EventBody::Contacted {
            method: sync_core::petition::ContactMethod::Phone,
            note: None,
        },
    );
    let day = 24 * 60;
    // T0 is Sunday 15 June 2025 23:06 in Beijing; five working days end on Friday 20 June.
    let due_soon = host.tick(5 * day);
    assert_eq!(due_soon, did(&[("due_soon reply", "unit:station-a")]));
    assert_eq!(host.tick(6 * day), did(&[("overdue reply", "unit:station-a")]));
    record(
        &mut host.doc,
        &oa,
        a,
        6 * day + 60,
        EventBody::Replied {
            text: "已处理".into()
        },
    );
    assert_eq!(host.tick(7 * day), did(&[]));
    let reopen = EventBody::Reopened {
        reason: "没有解决".into(),
    };
    record(&mut host.doc, &resident(), None, 7 * day + 60, reopen);
    let later = host.tick(20 * day);
    assert_eq!(later, did(&[("overdue reply", "unit:station-a")]));
    let reply_keys: Vec<&String> = host.fired.iter().filter(|k| k.contains("/clock:reply:")).collect();
    assert_eq!(reply_keys.len(), 3, "{reply_keys:?}");
}

#[test]
fn finished_petitions_and_policies_without_steps_do_not_escalate() {
    let mut host = Host::new(EscalationPolicy {
        default: vec![sign_step(0)],
        channels: [(Channel::ChiefLine, vec![])].into(),
    });
    let done = host.tick(60);
    assert!(done.iter().all(|(a, _)| a != "escalate"), "{done:?}");
    assert!(done.contains(&("overdue sign".to_string(), "unit:station-a".to_string())));

    record(
        &mut host.doc,
        &resident(),
        None,
        61,
        EventBody::Withdrawn { reason: None },
    );
    assert!(host.actions(T0.plus_minutes(62)).is_empty());
}

#[test]
fn a_summary_older_than_now_still_counts_a_passed_deadline_as_overdue() {
    let host = Host::new(EscalationPolicy::default());
    let stale = host.doc.summary(&host.rules, &host.cal, T0.plus_minutes(1)).unwrap();
    let actions = sweep(&stale, &host.policy, &org(), T0.plus_minutes(45));
    let overdue: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            SweepAction::Notify(n) if n.kind == Kind::Overdue => Some(n.key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(overdue.len(), 2, "sign and contact: {actions:?}");
    assert!(actions.iter().all(|a| match a {
        SweepAction::Notify(n) => n.recipient == Recipient::Unit(unit("station-a")) && n.urgent,
        SweepAction::Escalate { .. } => false,
    }));
}

#[test]
fn policies_and_actions_round_trip_through_json() {
    let policy = EscalationPolicy::from_json(
        r#"{ "default": [{ "clock": "sign", "overdue_minutes": 20 }],
             "channels": { "director_mailbox": [{ "clock": "reply", "overdue_minutes": 1440 }] } }"#,
    )
    .unwrap();
    assert_eq!(policy.steps(Channel::WalkIn), &[sign_step(20)]);
    assert_eq!(policy.steps(Channel::DirectorMailbox)[0].clock, ClockKind::Reply);
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(EscalationPolicy::from_json(&json).unwrap(), policy);
    assert!(EscalationPolicy::from_json(r#"{ "default": [{ "clock": "sign" }] }"#).is_err());
    assert!(EscalationPolicy::from_json(r#"{ "channels": { "pigeon": [] } }"#).is_err());

    let host = Host::new(EscalationPolicy {
        default: vec![sign_step(5)],
        ..Default::default()
    });
    for action in host.actions(T0.plus_minutes(20)) {
        let json = serde_json::to_string(&action).unwrap();
        assert_eq!(serde_json::from_str::<SweepAction>(&json).unwrap(), action);
    }
}

#[test]
fn a_stored_summary_re_evaluated_later_equals_one_computed_then() {
    // The scheduler sweeps summaries stored when the petition last changed.
    let host = Host::new(EscalationPolicy::default());
    let stored = host.doc.summary(&host.rules, &host.cal, T0).unwrap();
    for minutes in [0, 6, 7, 11, 25, 45, 60 * 24 * 9] {
        let now = T0.plus_minutes(minutes);
        let fresh = host.doc.summary(&host.rules, &host.cal, now).unwrap();
        assert_eq!(stored.at(&host.rules, &host.cal, now), fresh, "{minutes} minutes later");
    }
}
