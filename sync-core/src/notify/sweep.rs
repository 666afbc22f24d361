//! The clock sweep: due-soon and overdue notifications, and auto-escalation, for one petition at `now`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::notification::{Notification, NotificationKind as Kind, Recipient, Source, TITLE_CHARS, clip, key};
use crate::channel::Channel;
use crate::clocks::{ClockKind, ClockState};
use crate::error::SchemaError;
use crate::ids::UnitId;
use crate::org::OrgTree;
use crate::petition::{EventBody, PetitionClock, PetitionSummary, Status};
use crate::time::Timestamp;

/// Escalate when `clock` has been overdue for at least `overdue_minutes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// The clock that ran out.
    pub clock: ClockKind,
    /// How long it has been overdue; 0 escalates as soon as it is.
    pub overdue_minutes: u32,
}

/// When the server escalates a petition on its own (提级), per channel.
///
/// The default policy escalates nothing. A channel listed in `channels` uses
/// its own steps instead of `default` (an empty list turns escalation off
/// for it). Each step fires at most once per clock: steps at 20 and 60
/// minutes on the sign clock move an unsigned petition up one level after 20
/// minutes and one more after 60.
///
/// ```
/// use sync_core::notify::EscalationPolicy;
/// use sync_core::{Channel, ClockKind};
///
/// let policy = EscalationPolicy::from_json(
///     r#"{
///       "default": [{ "clock": "sign", "overdue_minutes": 20 }],
///       "channels": { "director_mailbox": [{ "clock": "sign", "overdue_minutes": 5 },
///                                          { "clock": "reply", "overdue_minutes": 1440 }] }
///     }"#,
/// )?;
/// assert_eq!(policy.steps(Channel::WalkIn)[0].overdue_minutes, 20);
/// assert_eq!(policy.steps(Channel::DirectorMailbox)[1].clock, ClockKind::Reply);
/// # Ok::<(), sync_core::SchemaError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// The steps for channels not listed in `channels`.
    #[serde(default)]
    pub default: Vec<EscalationStep>,
    /// Steps that replace `default` for a channel.
    #[serde(default)]
    pub channels: BTreeMap<Channel, Vec<EscalationStep>>,
}

impl EscalationPolicy {
    /// Reads a policy from its JSON form, shown above.
    pub fn from_json(json: &str) -> Result<EscalationPolicy, SchemaError> {
        serde_json::from_str(json).map_err(|e| SchemaError::InvalidValue {
            field: "escalation_policy".into(),
            reason: e.to_string(),
        })
    }

    /// The steps for petitions that came in through `channel`.
    pub fn steps(&self, channel: Channel) -> &[EscalationStep] {
        self.channels.get(&channel).unwrap_or(&self.default)
    }
}

/// What the host does for one petition after a sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SweepAction {
    /// Store and deliver this notification.
    Notify(Notification),
    /// Write `escalated { to, reason }` into the petition's timeline as the
    /// server's System actor, acting for `unit` (the lead it escalates from).
    Escalate {
        /// `{doc}/clock:{kind}:{start}/escalate/after:{minutes}m`: once per clock run and step.
        key: String,
        /// The petition's own id.
        doc: String,
        /// The lead unit the petition escalates from, which the event is written for.
        unit: UnitId,
        /// The unit above it.
        to: UnitId,
        /// Why, for the timeline (签收超时20分钟，自动提级).
        reason: String,
        /// The clock that ran out, written into the event: the escalation
        /// is moot if that clock's step turns out stamped before it.
        clock: ClockKind,
    },
}

impl SweepAction {
    /// The action's identity: the host records it once the action is done.
    pub fn key(&self) -> &str {
        match self {
            SweepAction::Notify(n) => &n.key,
            SweepAction::Escalate { key, .. } => key,
        }
    }

    /// For an escalation, the timeline event to write.
    pub fn event_body(&self) -> Option<EventBody> {
        match self {
            SweepAction::Escalate { to, reason, clock, .. } => Some(EventBody::Escalated {
                to: to.clone(),
                reason: reason.clone(),
                clock: Some(*clock),
            }),
            SweepAction::Notify(_) => None,
        }
    }
}

/// The actions due for one petition at `now`.
///
/// `summary` is the petition's summary computed at `now`
/// ([`crate::petition::PetitionDoc::summary`]); a running clock whose
/// deadline has passed by `now` counts as overdue even if the summary is
/// older. Finished petitions raise nothing.
///
/// * A running clock that is due soon notifies its holder (the lead unit);
///   an overdue one notifies the holder, urgent.
/// * While the petition is still in handling (submitted to handling), the
///   policy's steps for its channel are checked clock by clock; the first
///   clock with a step it has reached gives one [`SweepAction::Escalate`]
///   to [`OrgTree::escalation_target`] of the holder, with the largest such
///   step. At most one escalation per petition per sweep, since each is
///   computed from the same lead.
///
/// # Idempotency
///
/// Every action has a key that does not depend on `now`: the clock's kind
/// and start time, and the recipient or the step. The host keeps the keys of
/// the actions it has carried out (a unique index on the notification store,
/// a fired-keys table for escalations) and skips an action whose key is
/// already there. Sweeping again, on another node or after a restart, then
/// yields the same keys and nothing happens twice; a reopened petition's new
/// reply clock has a new start time, so it notifies again.
pub fn sweep(summary: &PetitionSummary, policy: &EscalationPolicy, org: &OrgTree, now: Timestamp) -> Vec<SweepAction> {
    if !summary.status.is_open() {
        return Vec::new();
    }
    let title = clip(&summary.title, TITLE_CHARS);
    let steps = policy.steps(summary.channel);
    let mut out = Vec::new();
    let mut escalation: Option<SweepAction> = None;
    for clock in &summary.clocks {
        let Some(holder) = &clock.holder else { continue };
        let segment = clock_segment(clock);
        let src = Source {
            doc: &summary.id,
            segment: segment.clone(),
            entry: None,
            at: now,
        };
        let name = clock_name(clock.kind);
        let unit = Recipient::Unit(holder.clone());
        match state_at(clock, now) {
            ClockState::DueSoon { .. } => {
                let text = format!("{name}即将到期：{title}");
                out.push(SweepAction::Notify(src.notify(unit, Kind::DueSoon, false, text)));
            }
            ClockState::Overdue { overdue_by_ms, .. } => {
                let text = format!("{name}已超时：{title}");
                out.push(SweepAction::Notify(src.notify(unit, Kind::Overdue, true, text)));
                if escalation.is_some() || !in_handling(summary.status) {
                    continue;
                }
                let reached = steps
                    .iter()
                    .filter(|s| s.clock == clock.kind && overdue_by_ms >= i64::from(s.overdue_minutes) * 60_000)
                    .max_by_key(|s| s.overdue_minutes);
                if let (Some(step), Some(to)) = (reached, org.escalation_target(holder)) {
                    escalation = Some(SweepAction::Escalate {
                        key: key(
                            &summary.id,
                            &segment,
                            "escalate",
                            &format!("after:{}m", step.overdue_minutes),
                        ),
                        doc: summary.id.clone(),
                        unit: holder.clone(),
                        to: to.clone(),
                        reason: format!("{name}超时{}，自动提级", duration(step.overdue_minutes)),
                        clock: clock.kind,
                    });
                }
            }
            ClockState::Pending { .. } | ClockState::MetOnTime { .. } | ClockState::MetLate { .. } => {}
        }
    }
    out.extend(escalation);
    out
}

/// The clock's state at `now`: the summary's, or overdue if its deadline has passed since.
fn state_at(clock: &PetitionClock, now: Timestamp) -> ClockState {
    match clock.state {
        s if s.is_met() => s,
        _ if now > clock.due_at => ClockState::Overdue {
            due_at: clock.due_at,
            overdue_by_ms: now.millis().saturating_sub(clock.due_at.millis()),
        },
        s => s,
    }
}

/// `clock:{kind}:{start ms}`: one run of one clock.
fn clock_segment(clock: &PetitionClock) -> String {
    format!("clock:{}:{}", clock.kind, clock.started_at.millis())
}

fn clock_name(kind: ClockKind) -> &'static str {
    match kind {
        ClockKind::Sign => "签收",
        ClockKind::Contact => "联系来信人",
        ClockKind::Reply => "回复",
    }
}

/// Minutes for people: 超时20分钟, 超时2小时, 超时1天.
fn duration(minutes: u32) -> String {
    match minutes {
        0 => String::new(),
        m if m % 1440 == 0 => format!("{}天", m / 1440),
        m if m % 60 == 0 => format!("{}小时", m / 60),
        m => format!("{m}分钟"),
    }
}

/// The states in which the lead still owes handling and an escalation applies.
fn in_handling(status: Status) -> bool {
    matches!(
        status,
        Status::Submitted | Status::Signed | Status::Dispatched | Status::Handling
    )
}
