//! Notifications a petition change raises: routing to units, status to the submitter, messages both ways.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use automerge::AutoCommit;

use super::notification::{
    Notification, NotificationKind as Kind, Recipient, SNIPPET_CHARS, Source, TITLE_CHARS, clip,
};
use crate::channel::Channel;
use crate::doc::Message;
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{EntryId, UnitId, UserId};
use crate::petition::{EventBody, Outcome, PetitionDoc, PetitionHeader, PetitionState, TimelineEvent, derive};

/// What notification derivation reads of a petition: its entries and the
/// state derived from them. A host that already derived the state for its
/// projections builds this once and uses it for both.
#[derive(Clone, Debug, PartialEq)]
pub struct PetitionSnapshot {
    /// The header, written at creation.
    pub header: PetitionHeader,
    /// The timeline, in list order.
    pub events: Vec<TimelineEvent>,
    /// The conversation, in list order.
    pub messages: Vec<Message>,
    /// Derived from the above ([`derive()`]).
    pub state: PetitionState,
}

impl PetitionSnapshot {
    /// Derives the state of these entries.
    pub fn new(header: PetitionHeader, events: Vec<TimelineEvent>, messages: Vec<Message>) -> Self {
        let state = derive(&header, &events, &messages);
        PetitionSnapshot {
            header,
            events,
            messages,
            state,
        }
    }

    /// Reads a petition document.
    pub fn read<D: Borrow<AutoCommit>>(doc: &PetitionDoc<D>) -> Result<Self, SchemaError> {
        Ok(Self::new(doc.header()?, doc.events()?, doc.messages()?))
    }
}

/// The notifications raised by a petition going from `before` (`None` for a
/// new document) to `after`. See [`petition_changes`].
pub fn petition_notifications<D: Borrow<AutoCommit>>(
    before: Option<&PetitionDoc<D>>,
    after: &PetitionDoc<D>,
) -> Result<Vec<Notification>, SchemaError> {
    let before = before.map(PetitionSnapshot::read).transpose()?;
    Ok(petition_changes(before.as_ref(), &PetitionSnapshot::read(after)?))
}

/// 户户通: a petition filed on the household line goes to the household's own
/// officer. `officer` is the officer the village directory assigns to the
/// writer's household (a fact the host reads; the petition does not record
/// it). The new-petition notification that [`petition_changes`] addresses to
/// the unit the petition was routed to is addressed to that officer instead;
/// the petition itself stays routed to the unit, so the unit's duty desk and
/// clocks still cover it. Without an officer (`None`: the household has none,
/// or none the host can reach) the unit keeps it. Petitions on other channels
/// are left as they are.
pub fn to_household_officer(
    notifications: Vec<Notification>,
    header: &PetitionHeader,
    officer: Option<&UserId>,
) -> Vec<Notification> {
    let Some(officer) = officer.filter(|_| header.channel == Channel::HouseholdLine) else {
        return notifications;
    };
    notifications
        .into_iter()
        .filter_map(|mut n| {
            if n.kind != Kind::NewPetition || !matches!(n.recipient, Recipient::Unit(_)) {
                return Some(n);
            }
            if *officer == header.recorded_by {
                // The officer typed it in: nobody is told of their own entry.
                return None;
            }
            let to = Recipient::User(officer.clone());
            n.key = match n.key.rsplit_once('/') {
                Some((head, _)) => format!("{head}/{to}"),
                None => n.key,
            };
            n.recipient = to;
            Some(n)
        })
        .collect()
}

/// The notifications raised by a petition going from `before` (`None` for a
/// new document) to `after`.
///
/// Only events that apply in `after` and did not apply in `before` notify;
/// superseded events notify nobody. Units are the ones the event routed the
/// petition to or the lead at that point of the timeline, so a later merge
/// does not redirect an old notification:
///
/// | entry | recipient | kind |
/// | --- | --- | --- |
/// | submitted | the unit it was routed to | new petition |
/// | transferred | the new lead; each assisting unit; the submitter | assigned; assist requested; status |
/// | returned | the unit it went back to | returned |
/// | escalated | the new lead, urgent | escalated |
/// | supervised | the lead, urgent | supervised |
/// | assists changed | each added assisting unit | assist requested |
/// | published | the submitter; the members of the room it was raised from | result published |
/// | signed, replied, closed, merged | the submitter | status |
/// | progress | the submitter | progress |
/// | reopened | the lead; the submitter unless they reopened it | status |
/// | withdrawn | the lead | status |
/// | follow-up by the submitter | the lead | follow-up |
/// | message by the submitter | the lead when it was written | petition message |
/// | message by anyone else | the submitter | petition message |
///
/// Nobody is notified of their own entry. Notifications are never taken
/// back: an event that applied and is set aside by a later merge (a reply
/// that turns out to have crossed a transfer) keeps what it raised, and the
/// event that displaced it raises its own.
pub fn petition_changes(before: Option<&PetitionSnapshot>, after: &PetitionSnapshot) -> Vec<Notification> {
    let applied_before: BTreeSet<&EntryId> = before
        .map(|b| {
            b.state
                .outcomes
                .iter()
                .filter(|(_, o)| *o == Outcome::Applied)
                .map(|(id, _)| id)
                .collect()
        })
        .unwrap_or_default();
    let by_id: BTreeMap<EntryId, &TimelineEvent> = after.events.iter().map(|e| (e.id(), e)).collect();
    let ctx = Ctx {
        doc: &after.header.id,
        header: &after.header,
        title: clip(&after.header.title, TITLE_CHARS),
    };
    let mut out = Vec::new();

    // Outcomes are in stamp order: follow the lead along the applied events,
    // so each entry is addressed to the lead it saw or made, whatever else
    // merged since and whether it is derived in one step or change by change.
    let mut lead: Option<UnitId> = None;
    let mut dispatcher: Option<UnitId> = None;
    let mut finished = false;
    let mut trail: Vec<(&Hlc, Option<UnitId>, bool)> = Vec::new();
    for (id, outcome) in &after.state.outcomes {
        let Some(event) = by_id.get(id).copied() else {
            continue;
        };
        if *outcome != Outcome::Applied {
            continue;
        }
        match &event.body {
            EventBody::Submitted { unit } => lead = Some(unit.clone()),
            EventBody::Transferred { to, .. } => {
                // A transfer is written for the lead it hands over from.
                dispatcher = event.unit.clone();
                lead = Some(to.clone());
            }
            // Only a transfer makes a petition returnable, and a return goes back to its sender.
            EventBody::Returned { .. } => lead = dispatcher.take(),
            EventBody::Escalated { to, .. } => lead = Some(to.clone()),
            EventBody::Closed { .. } | EventBody::Withdrawn { .. } | EventBody::Merged { .. } => finished = true,
            EventBody::Reopened { .. } => finished = false,
            _ => {}
        }
        trail.push((&event.at, lead.clone(), finished));
        if !applied_before.contains(id) {
            ctx.event(event, lead.as_ref(), &mut out);
        }
    }
    debug_assert_eq!(lead, after.state.lead, "lead tracking follows status::derive");

    let seen: BTreeSet<EntryId> = before
        .map(|b| b.messages.iter().map(Message::id).collect())
        .unwrap_or_default();
    let mut new: Vec<&Message> = after.messages.iter().filter(|m| !seen.contains(&m.id())).collect();
    new.sort_by(|a, b| a.at.cmp(&b.at));
    for m in new {
        let (lead, finished) = trail
            .iter()
            .take_while(|(at, ..)| *at < &m.at)
            .last()
            .map(|(_, lead, finished)| (lead.as_ref(), *finished))
            .unwrap_or((None, false));
        ctx.message(m, lead, finished, &mut out);
    }
    out
}

struct Ctx<'a> {
    doc: &'a str,
    header: &'a PetitionHeader,
    title: String,
}

impl Ctx<'_> {
    fn event(&self, e: &TimelineEvent, lead: Option<&UnitId>, out: &mut Vec<Notification>) {
        let src = Source {
            doc: self.doc,
            segment: e.id().to_string(),
            entry: Some(e.id()),
            at: e.at.timestamp(),
        };
        let title = &self.title;
        let submitter = Recipient::User(self.header.submitter.clone());
        let mut push = |to: Recipient, kind: Kind, urgent: bool, text: String| {
            if to != Recipient::User(e.by.clone()) {
                out.push(src.notify(to, kind, urgent, text));
            }
        };
        let unit = |u: &UnitId| Recipient::Unit(u.clone());
        match &e.body {
            EventBody::Submitted { unit: to } => {
                push(unit(to), Kind::NewPetition, false, format!("新诉求待签收：{title}"));
            }
            EventBody::Signed => push(
                submitter,
                Kind::StatusChanged,
                false,
                format!("您的诉求已签收：{title}"),
            ),
            EventBody::Transferred { to, assist, .. } => {
                push(unit(to), Kind::Assigned, false, format!("诉求转派待接单：{title}"));
                for a in assist {
                    push(unit(a), Kind::AssistRequested, false, format!("请协办诉求：{title}"));
                }
                push(
                    submitter,
                    Kind::StatusChanged,
                    false,
                    format!("您的诉求已转交办理：{title}"),
                );
            }
            EventBody::Returned { reason } => {
                if let Some(l) = lead {
                    let reason = clip(reason, SNIPPET_CHARS);
                    push(
                        unit(l),
                        Kind::Returned,
                        false,
                        format!("诉求被退回：{title}（{reason}）"),
                    );
                }
            }
            EventBody::Escalated { to, reason, .. } => {
                let reason = clip(reason, SNIPPET_CHARS);
                push(
                    unit(to),
                    Kind::Escalated,
                    true,
                    format!("提级办理：{title}（{reason}）"),
                );
            }
            EventBody::Supervised { note } => {
                if let Some(l) = lead {
                    let note = clip(note, SNIPPET_CHARS);
                    push(unit(l), Kind::Supervised, true, format!("督办：{title}（{note}）"));
                }
            }
            EventBody::Progress { note } => {
                let note = clip(note, SNIPPET_CHARS);
                push(submitter, Kind::Progress, false, format!("办理进展：{note}"));
            }
            EventBody::Replied { .. } => push(
                submitter,
                Kind::StatusChanged,
                false,
                format!("您的诉求已回复：{title}"),
            ),
            EventBody::Closed { .. } => push(
                submitter,
                Kind::StatusChanged,
                false,
                format!("您的诉求已办结：{title}"),
            ),
            EventBody::Merged { .. } => push(
                submitter,
                Kind::StatusChanged,
                false,
                format!("您的诉求已并入同类诉求一并办理：{title}"),
            ),
            EventBody::Reopened { reason } => {
                if let Some(l) = lead {
                    let reason = clip(reason, SNIPPET_CHARS);
                    push(
                        unit(l),
                        Kind::StatusChanged,
                        false,
                        format!("诉求重新办理：{title}（{reason}）"),
                    );
                }
                push(
                    submitter,
                    Kind::StatusChanged,
                    false,
                    format!("您的诉求重新办理：{title}"),
                );
            }
            EventBody::Withdrawn { .. } => {
                if let Some(l) = lead {
                    push(unit(l), Kind::StatusChanged, false, format!("诉求已撤回：{title}"));
                }
            }
            EventBody::FollowUp { rating, .. } => {
                if let (Some(l), true) = (lead, e.by == self.header.submitter) {
                    push(unit(l), Kind::FollowUp, false, format!("回访评价{rating}星：{title}"));
                }
            }
            EventBody::AssistsChanged { add, .. } => {
                for a in add {
                    push(unit(a), Kind::AssistRequested, false, format!("请协办诉求：{title}"));
                }
            }
            EventBody::Published { .. } => {
                push(
                    submitter,
                    Kind::ResultPublished,
                    false,
                    format!("您的诉求办理结果已公开：{title}"),
                );
                if let Some(source) = &self.header.source {
                    let room = source.room.strip_prefix("automerge:").unwrap_or(&source.room);
                    push(
                        Recipient::Room(room.to_owned()),
                        Kind::ResultPublished,
                        false,
                        format!("群里反映的问题办理结果已公开：{title}"),
                    );
                }
            }
            EventBody::Accepted | EventBody::Contacted { .. } | EventBody::Reclassified { .. } => {}
        }
    }

    /// A new message; `lead` and `finished` as of the message's stamp.
    fn message(&self, m: &Message, lead: Option<&UnitId>, finished: bool, out: &mut Vec<Notification>) {
        let src = Source {
            doc: self.doc,
            segment: m.id().to_string(),
            entry: Some(m.id()),
            at: m.at.timestamp(),
        };
        let snippet = if m.text.trim().is_empty() {
            "[附件]".to_owned()
        } else {
            clip(&m.text, SNIPPET_CHARS)
        };
        if m.by == self.header.submitter {
            let Some(lead) = lead else { return };
            let text = if !finished {
                format!("诉求有新留言：{}｜{snippet}", self.title)
            } else {
                format!("已结束的诉求有新留言：{}｜{snippet}", self.title)
            };
            out.push(src.notify(Recipient::Unit(lead.clone()), Kind::PetitionMessage, false, text));
        } else {
            let text = format!("办理人员留言：{snippet}");
            let to = Recipient::User(self.header.submitter.clone());
            out.push(src.notify(to, Kind::PetitionMessage, false, text));
        }
    }
}
