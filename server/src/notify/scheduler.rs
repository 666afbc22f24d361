//! The scheduler: roster hand-overs, the petition clock sweep with auto-escalation, and the
//! outbox, all at the server clock's `now`.
//!
//! A tick is idempotent: run twice, on two nodes, or again after a restart, it finds the keys
//! of what it already did (notifications, inbox rows, fired escalations, hand-over marks) and
//! does nothing more.

use sync_core::notify::{SweepAction, sweep};
use sync_core::org::{Membership, Role};
use sync_core::petition::{EventBody, PetitionDoc, PetitionSummary};
use sync_core::{Principal, Timestamp, UnitId, UserId};

use super::{NotifyError, NotifyService};
use crate::storage::NotificationRow;
use crate::write::fanout;

/// The user id the server's own writes (auto-escalation) are made with.
pub const SYSTEM_USER: &str = "lianxin-system";

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Units whose open items went to an incoming shift.
    pub handovers: usize,
    /// Inbox rows written by hand-overs and clock notifications.
    pub delivered: usize,
    /// Auto-escalations written into petition timelines.
    pub escalated: usize,
    /// Outbox jobs sent, skipped (delivered live or read), retried and given up.
    pub sent: usize,
    pub skipped: usize,
    pub retried: usize,
    pub dead: usize,
}

impl NotifyService {
    /// Runs the scheduler once at the clock's `now`.
    pub async fn tick(&self) -> Result<TickReport, NotifyError> {
        let now = self.inner.clock.now();
        let mut report = TickReport::default();
        self.handovers(now, &mut report).await?;
        self.sweep_clocks(now, &mut report).await?;
        if report.delivered > 0 {
            self.wake();
        }
        self.work_outbox(now, &mut report).await?;
        Ok(report)
    }

    /// The server's own principal: System role at every root of the organisation.
    pub fn system_principal(&self) -> Principal {
        let org = self.inner.docs.org();
        Principal {
            user: UserId::new(SYSTEM_USER).expect("a valid user id"),
            memberships: org
                .units()
                .filter(|u| u.parent.is_none())
                .map(|u| Membership {
                    unit: u.id.clone(),
                    role: Role::System,
                })
                .collect(),
            household: None,
        }
    }

    /// At a shift boundary, the incoming shift inherits the unit's open items.
    async fn handovers(&self, now: Timestamp, report: &mut TickReport) -> Result<(), NotifyError> {
        let storage = &self.inner.storage;
        let settings = self.inner.docs.settings();
        let cal = &settings.calendar;
        for row in storage.rosters().all().await? {
            if row.next_handover.is_some_and(|t| t > now.millis()) {
                continue;
            }
            let roster = &row.roster;
            // Deliver first, then move the mark: a crash in between delivers
            // again at the next tick, which inbox keys make harmless, and a
            // node that loses the race to move the mark delivered nothing new.
            let on_duty = roster.on_duty(cal, now);
            if !on_duty.is_empty() {
                let open = storage.rosters().open_unit_notifications(row.unit_id.as_str()).await?;
                let items: Vec<(String, &NotificationRow)> = on_duty
                    .iter()
                    .flat_map(|u| open.iter().map(move |n| (u.to_string(), n)))
                    .collect();
                let mut tx = storage.begin().await?;
                report.delivered += fanout::deliver(&mut tx, &items, now, &self.inner.docs.settings().fanout)
                    .await?
                    .len();
                tx.commit().await?;
            }
            let next = roster.next_handover(cal, now).millis();
            if storage
                .rosters()
                .advance_handover(row.unit_id.as_str(), row.next_handover, next)
                .await?
                && !on_duty.is_empty()
            {
                report.handovers += 1;
            }
        }
        Ok(())
    }

    /// Due-soon and overdue notifications, and auto-escalation, for every open petition.
    async fn sweep_clocks(&self, now: Timestamp, report: &mut TickReport) -> Result<(), NotifyError> {
        let storage = &self.inner.storage;
        let settings = self.inner.docs.settings();
        let org = self.inner.docs.org();
        for (doc_id, json) in storage.clocks().petitions_with_running_clocks().await? {
            let summary: PetitionSummary = match serde_json::from_str(&json) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(doc = %doc_id, error = %e, "stored petition summary does not read");
                    continue;
                }
            };
            let summary = summary.at(&settings.rules, &settings.calendar, now);
            let actions = sweep(&summary, &self.inner.settings.escalation, &org, now);
            let mut notes = Vec::new();
            for action in actions {
                match action {
                    SweepAction::Notify(n) => notes.push(n),
                    SweepAction::Escalate {
                        key,
                        unit,
                        to,
                        reason,
                        clock,
                        ..
                    } => {
                        let body = EventBody::Escalated {
                            to,
                            reason,
                            clock: Some(clock),
                        };
                        if self.escalate(&doc_id, &key, unit, body).await? {
                            report.escalated += 1;
                        }
                    }
                }
            }
            // Most sweeps find clocks they already told of; skip those without a write transaction.
            if !notes.is_empty() {
                let keys: Vec<String> = notes.iter().map(|n| n.key.clone()).collect();
                let known: std::collections::HashSet<String> = storage
                    .inbox()
                    .known_notification_keys(&keys)
                    .await?
                    .into_iter()
                    .collect();
                notes.retain(|n| !known.contains(&n.key));
            }
            if !notes.is_empty() {
                let mut tx = storage.begin().await?;
                report.delivered += fanout::write(&mut tx, &doc_id, &notes, now, &settings.calendar, &settings.fanout)
                    .await?
                    .len();
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Writes `escalated { to, reason, clock }` for `unit` into the petition's timeline as the
    /// System principal, once per `key`. True when this call wrote it.
    async fn escalate(&self, doc_id: &str, key: &str, unit: UnitId, body: EventBody) -> Result<bool, NotifyError> {
        let who = self.system_principal();
        let outcome = self
            .inner
            .docs
            .act_once(&who, doc_id, key, |doc, author, now| {
                let mut p = PetitionDoc::from_doc(std::mem::take(doc))?;
                let result = p.record(author, now, Some(unit), body);
                *doc = p.into_doc();
                result.map(|_| ())
            })
            .await;
        match outcome {
            Ok(Some((_, applied))) if applied.refused.is_empty() => Ok(true),
            Ok(Some((_, applied))) => {
                tracing::warn!(doc = %doc_id, refused = ?applied.refused, "auto-escalation refused by policy");
                Ok(false)
            }
            Ok(None) => Ok(false),
            // Another node fired it between our check and our commit.
            Err(crate::docs::DocError::Storage(crate::storage::StorageError::Conflict(_))) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
