//! Fan-out inside a transaction: notifications become inbox rows for people, outbox jobs and
//! notice delivery records, in the transaction of the change (or clock) that raised them.
//!
//! A notification is stored by its key first; only a key that is new goes on to inboxes, so
//! deriving again (another node, a retry, a restart) delivers nothing twice. Recipients are
//! expanded to people here, at the instant of the change:
//!
//! * a user is themself, and the members an @all reached are themselves;
//! * a unit is whoever its roster has on duty now, or, with no roster or nobody on duty, the
//!   unit's officers, leaders and department staff;
//! * a household is the accounts of its members and the representative the directory names.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sync_core::notify::{Notification, NotificationKind, Recipient};
use sync_core::{Calendar, Timestamp};

use crate::storage::{InboxItem, NotificationRow, StorageError, StorageTx};

/// How fan-out reaches people without a live connection.
#[derive(Clone, Debug, Default)]
pub struct FanoutSettings {
    /// A push gateway is configured: every inbox item gets a push job.
    pub push: bool,
    /// An SMS gateway is configured: urgent items also get a text-message job.
    pub sms: bool,
    /// How long a job waits for a live connection to deliver the item first.
    pub push_delay_ms: i64,
}

/// The row a notification about storage document `doc_id` is stored as.
pub fn row(doc_id: &str, n: &Notification) -> NotificationRow {
    NotificationRow {
        key: n.key.clone(),
        doc_id: doc_id.to_owned(),
        doc: n.doc.clone(),
        kind: n.kind.as_str().to_owned(),
        recipient: n.recipient.to_string(),
        entry: n.entry.as_ref().map(|e| e.to_string()),
        urgent: n.urgent,
        at_ms: n.at.millis(),
        text: n.text.clone(),
    }
}

/// Stores `notifications` about `doc_id` and delivers the new ones. Returns
/// the inbox items written (in cursor order), for the dispatcher once the
/// transaction commits.
pub async fn write(
    tx: &mut StorageTx,
    doc_id: &str,
    notifications: &[Notification],
    now: Timestamp,
    cal: &Calendar,
    settings: &FanoutSettings,
) -> Result<Vec<InboxItem>, StorageError> {
    if notifications.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<NotificationRow> = notifications.iter().map(|n| row(doc_id, n)).collect();
    let new: HashSet<String> = tx.insert_notifications(&rows, now).await?.into_iter().collect();
    let fresh: Vec<(&Notification, &NotificationRow)> = notifications
        .iter()
        .zip(&rows)
        .filter(|(n, _)| new.contains(&n.key))
        .collect();
    // A notice goes to thousands of households: their people are read together.
    let households: BTreeSet<&str> = fresh
        .iter()
        .filter_map(|(n, _)| match &n.recipient {
            Recipient::Household(h) => Some(h.as_str()),
            _ => None,
        })
        .collect();
    let households: Vec<&str> = households.into_iter().collect();
    let household_people = match households.is_empty() {
        true => HashMap::new(),
        false => tx.household_users(&households).await?,
    };
    // A unit is looked up once per write; users and @all name their people.
    let mut units: HashMap<&str, Vec<String>> = HashMap::new();
    let mut items: Vec<(String, &NotificationRow)> = Vec::new();
    let mut notified: Vec<&str> = Vec::new();
    for (n, row) in fresh {
        let people = match &n.recipient {
            Recipient::Household(h) => household_people.get(h.as_str()).cloned().unwrap_or_default(),
            Recipient::Unit(unit) if units.contains_key(unit.as_str()) => units[unit.as_str()].clone(),
            Recipient::Unit(unit) => {
                let on_duty = people(tx, &n.recipient, now, cal).await?;
                units.insert(unit.as_str(), on_duty.clone());
                on_duty
            }
            other => people(tx, other, now, cal).await?,
        };
        items.extend(people.into_iter().map(|user| (user, row)));
        if let (NotificationKind::Notice, Recipient::Household(h)) = (n.kind, &n.recipient) {
            notified.push(h.as_str());
        }
    }
    if !notified.is_empty() {
        tx.insert_notice_deliveries(doc_id, &notified, now).await?;
    }
    deliver(tx, &items, now, settings).await
}

/// Puts stored notifications into people's inboxes (and the outbox); returns
/// the new inbox items, in cursor order. Used by [`write`] and by roster
/// hand-overs.
pub async fn deliver(
    tx: &mut StorageTx,
    items: &[(String, &NotificationRow)],
    now: Timestamp,
    settings: &FanoutSettings,
) -> Result<Vec<InboxItem>, StorageError> {
    let pairs: Vec<(String, String)> = items.iter().map(|(u, n)| (u.clone(), n.key.clone())).collect();
    let inserted = tx.insert_inbox(&pairs, now).await?;
    if inserted.is_empty() {
        return Ok(Vec::new());
    }
    if settings.push || settings.sms {
        let urgent: HashSet<&str> = items
            .iter()
            .filter(|(_, n)| n.urgent)
            .map(|(_, n)| n.key.as_str())
            .collect();
        let not_before = now.plus_millis(settings.push_delay_ms);
        let mut jobs: Vec<(i64, &str, &str, &str)> = Vec::new();
        for (seq, user, key) in &inserted {
            if settings.push {
                jobs.push((*seq, key, user, "push"));
            }
            if settings.sms && urgent.contains(key.as_str()) {
                jobs.push((*seq, key, user, "sms"));
            }
        }
        tx.enqueue_outbox(&jobs, not_before, now).await?;
    }
    tx.signal_inbox().await?;
    let mut rows: HashMap<&str, Arc<NotificationRow>> = HashMap::new();
    for (_, n) in items {
        rows.entry(n.key.as_str()).or_insert_with(|| Arc::new((*n).clone()));
    }
    Ok(inserted
        .into_iter()
        .filter_map(|(seq, user, key)| {
            rows.get(key.as_str()).map(|n| InboxItem {
                cursor: seq,
                user,
                notification: n.clone(),
                created_at: now.millis(),
            })
        })
        .collect())
}

/// The people a recipient stands for at `now`.
pub async fn people(
    tx: &mut StorageTx,
    recipient: &Recipient,
    now: Timestamp,
    cal: &Calendar,
) -> Result<Vec<String>, StorageError> {
    match recipient {
        Recipient::User(u) => Ok(vec![u.to_string()]),
        Recipient::Members(people) => Ok(people.iter().map(|u| u.to_string()).collect()),
        Recipient::Room(room) => tx.room_members(room).await,
        Recipient::Household(h) => Ok(tx
            .household_users(&[h.as_str()])
            .await?
            .remove(h.as_str())
            .unwrap_or_default()),
        Recipient::Unit(unit) => {
            if let Some(roster) = tx.roster(unit.as_str()).await? {
                let on_duty = roster.on_duty(cal, now);
                if !on_duty.is_empty() {
                    return Ok(on_duty.into_iter().map(|u| u.to_string()).collect());
                }
            }
            tx.unit_staff(unit.as_str()).await
        }
    }
}
