//! What a reader may do to a petition now: each action policy would let
//! them record and the workflow would apply against the current state, with
//! the units they may act for. Clients (the console, phone apps) build their
//! forms from it and hold no rule of their own.
//!
//! Each candidate is tried, not predicted: an event of the action's kind is
//! put to policy (`policy::event_refusal`, the check every incoming change
//! gets) and appended to the timeline the workflow derives from
//! (`derive`), exactly as `PetitionAction::apply_online` would judge it.
//! Actions whose arguments matter (a transfer's target, a new category) are
//! tried with one plausible argument; a particular argument may still be
//! refused when the action is taken.

use serde::{Deserialize, Serialize};

use super::event::{ContactMethod, EventBody, TimelineEvent};
use super::header::PetitionHeader;
use super::status::{Outcome, derive};
use crate::channel::Category;
use crate::doc::Message;
use crate::hlc::Hlc;
use crate::ids::UnitId;
use crate::policy::{PolicyContext, event_refusal, message_refusal};

/// One action a reader may take now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllowedAction {
    /// The action's name as `POST /api/petitions/{id}/actions` takes it
    /// (`sign`, `transfer`, … `comment`).
    pub action: String,
    /// The units the reader may take it for (the `unit` field).
    #[serde(default)]
    pub units: Vec<UnitId>,
    /// The reader may take it without naming a unit (the writer's own
    /// follow-up, reopening, withdrawal; a comment).
    #[serde(default)]
    pub without_unit: bool,
}

/// Every action `ctx.principal` may take on the petition now, in the order
/// a desk works through them.
pub fn allowed_actions(
    ctx: &PolicyContext<'_>,
    header: &PetitionHeader,
    events: &[TimelineEvent],
    messages: &[Message],
) -> Vec<AllowedAction> {
    let state = derive(header, events, messages);
    let involved = &state.involved_units;
    let latest = events
        .iter()
        .map(|e| e.at.wall_ms)
        .chain(messages.iter().map(|m| m.at.wall_ms))
        .max()
        .unwrap_or(0);
    // After everything the document holds, as a new stamp would be.
    let at = Hlc {
        wall_ms: latest.max(ctx.now.millis()) + 1,
        counter: 0,
        node: "probe".into(),
    };
    let takes_effect = |unit: Option<&UnitId>, body: EventBody| {
        let probe = TimelineEvent {
            by: ctx.principal.user.clone(),
            at: at.clone(),
            unit: unit.cloned(),
            body,
        };
        if event_refusal(ctx, &header.submitter, involved, &probe).is_err() {
            return false;
        }
        let id = probe.id();
        let mut timeline = events.to_vec();
        timeline.push(probe);
        !matches!(
            derive(header, &timeline, messages).outcome(&id),
            Some(Outcome::Superseded { .. })
        )
    };
    // A unit other than these, for a transfer's or an escalation's target.
    let other = |not: &[&UnitId]| ctx.org.units().map(|u| &u.id).find(|id| !not.contains(id)).cloned();
    let text = || "-".to_owned();
    let lead = state.lead.as_ref();
    let body = |name: &str, unit: &UnitId| -> Option<EventBody> {
        let not_lead = |extra: &[&UnitId]| {
            let mut not: Vec<&UnitId> = extra.to_vec();
            not.push(unit);
            not.extend(lead);
            other(&not)
        };
        Some(match name {
            "sign" => EventBody::Signed,
            "accept" => EventBody::Accepted,
            "transfer" => EventBody::Transferred {
                to: not_lead(&[])?,
                assist: vec![],
                note: None,
            },
            "return" => EventBody::Returned { reason: text() },
            "contact" => EventBody::Contacted {
                method: ContactMethod::Phone,
                note: None,
            },
            "progress" => EventBody::Progress { note: text() },
            "reply" => EventBody::Replied { text: text() },
            "supervise" => EventBody::Supervised { note: text() },
            "escalate" => EventBody::Escalated {
                to: not_lead(&[])?,
                reason: text(),
                clock: None,
            },
            "follow_up" => EventBody::FollowUp {
                rating: 5,
                comment: None,
            },
            "publish" => EventBody::Published { summary: text() },
            "close" => EventBody::Closed { note: None },
            "reopen" => EventBody::Reopened { reason: text() },
            "merge" => EventBody::Merged { into: text() },
            "reclassify" => EventBody::Reclassified {
                category: *Category::ALL.iter().find(|c| **c != state.category)?,
                reason: text(),
            },
            "change_assists" => match state.assists.first() {
                Some(assist) => EventBody::AssistsChanged {
                    add: vec![],
                    remove: vec![assist.clone()],
                },
                None => EventBody::AssistsChanged {
                    add: vec![not_lead(&[])?],
                    remove: vec![],
                },
            },
            _ => return None,
        })
    };
    let mut out = Vec::new();
    for name in HANDLER_ACTIONS {
        let units: Vec<UnitId> = involved
            .iter()
            .filter(|u| body(name, u).is_some_and(|b| takes_effect(Some(u), b)))
            .cloned()
            .collect();
        let without_unit = match *name {
            "follow_up" => takes_effect(
                None,
                EventBody::FollowUp {
                    rating: 5,
                    comment: None,
                },
            ),
            "reopen" => takes_effect(None, EventBody::Reopened { reason: text() }),
            _ => false,
        };
        if !units.is_empty() || without_unit {
            out.push(AllowedAction {
                action: (*name).to_owned(),
                units,
                without_unit,
            });
        }
    }
    if takes_effect(None, EventBody::Withdrawn { reason: None }) {
        out.push(AllowedAction {
            action: "withdraw".into(),
            units: vec![],
            without_unit: true,
        });
    }
    if message_refusal(ctx, &header.submitter, involved).is_ok() {
        out.push(AllowedAction {
            action: "comment".into(),
            units: vec![],
            without_unit: true,
        });
    }
    out
}

/// The actions taken for a unit, in the order a desk works through them.
const HANDLER_ACTIONS: &[&str] = &[
    "sign",
    "accept",
    "transfer",
    "return",
    "contact",
    "progress",
    "reply",
    "supervise",
    "escalate",
    "follow_up",
    "publish",
    "close",
    "reopen",
    "merge",
    "reclassify",
    "change_assists",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::org::{Membership, OrgTree, Principal, Role, Unit, UnitKind};
    use crate::petition::Location;
    use crate::time::Timestamp;

    fn unit(id: &str) -> UnitId {
        UnitId::new(id).unwrap()
    }

    fn org() -> OrgTree {
        let u = |id: &str, kind, parent: Option<&str>| Unit {
            id: unit(id),
            name: id.into(),
            kind,
            parent: parent.map(unit),
        };
        OrgTree::new([
            u("county", UnitKind::County, None),
            u("east", UnitKind::Station, Some("county")),
            u("water", UnitKind::Department, Some("county")),
            u("village", UnitKind::Village, Some("east")),
        ])
    }

    fn person(user: &str, roles: &[(&str, Role)]) -> Principal {
        Principal {
            user: UserId::new(user).unwrap(),
            memberships: roles
                .iter()
                .map(|(u, role)| Membership {
                    unit: unit(u),
                    role: *role,
                })
                .collect(),
            household: None,
        }
    }

    fn header() -> PetitionHeader {
        PetitionHeader {
            id: "p".into(),
            channel: crate::channel::Channel::ChiefLine,
            category: Category::Help,
            title: "t".into(),
            body: "b".into(),
            submitter: UserId::new("res").unwrap(),
            recorded_by: UserId::new("res").unwrap(),
            anonymous: false,
            contact: None,
            location: Location {
                unit: unit("village"),
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        }
    }

    fn event(ms: i64, by: &str, unit_for: Option<&str>, body: EventBody) -> TimelineEvent {
        TimelineEvent {
            by: UserId::new(by).unwrap(),
            at: Hlc {
                wall_ms: ms,
                counter: 0,
                node: by.into(),
            },
            unit: unit_for.map(unit),
            body,
        }
    }

    fn names(a: &[AllowedAction]) -> Vec<&str> {
        a.iter().map(|a| a.action.as_str()).collect()
    }

    #[test]
    fn what_each_reader_may_do_follows_policy_and_the_workflow() {
        let org = org();
        let h = header();
        let mut events = vec![event(1_000, "res", None, EventBody::Submitted { unit: unit("east") })];
        let officer = person("li", &[("east", Role::Officer)]);
        let ctx = |p| PolicyContext {
            org: &org,
            principal: p,
            now: Timestamp::from_millis(2_000),
        };
        let a = allowed_actions(&ctx(&officer), &h, &events, &[]);
        let n = names(&a);
        assert!(
            n.contains(&"sign") && n.contains(&"transfer") && n.contains(&"comment"),
            "{n:?}"
        );
        for never in ["accept", "close", "follow_up", "withdraw", "supervise"] {
            assert!(!n.contains(&never), "{never} in {n:?}");
        }
        assert_eq!(a[0].units, vec![unit("east")]);
        assert!(!a[0].without_unit);

        // Signed: signing again would be set aside; replying is open.
        events.push(event(3_000, "li", Some("east"), EventBody::Signed));
        let n: Vec<String> = allowed_actions(&ctx(&officer), &h, &events, &[])
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert!(
            !n.contains(&"sign".to_owned()) && n.contains(&"reply".to_owned()),
            "{n:?}"
        );

        // The writer: comment and withdraw, nothing for a unit.
        let res = person("res", &[]);
        assert_eq!(
            names(&allowed_actions(&ctx(&res), &h, &events, &[])),
            ["withdraw", "comment"]
        );
        // Someone else's department: nothing at all.
        let clerk = person("chen", &[("water", Role::DepartmentStaff)]);
        assert!(allowed_actions(&ctx(&clerk), &h, &events, &[]).is_empty());
    }
}
