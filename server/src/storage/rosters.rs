//! Duty rosters and who handles a unit's work: stored rosters, the hand-over
//! mark the scheduler moves, and the open notifications an incoming shift
//! inherits.

use sync_core::notify::Roster;
use sync_core::{Timestamp, UnitId, UserId};

use super::inbox::{NotificationRow, NotificationTuple, notification_from_tuple};
use super::{StorageError, StorageTx, on_pool, on_tx};

/// A unit's stored roster and the next shift boundary the scheduler acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterRow {
    pub unit_id: UnitId,
    pub roster: Roster,
    pub updated_by: UserId,
    pub updated_at: i64,
    pub next_handover: Option<i64>,
}

impl StorageTx {
    /// People who handle a unit's work when no roster says who is on duty:
    /// its officers, leaders and department staff, enabled accounts only.
    pub async fn unit_staff(&mut self, unit: &str) -> Result<Vec<String>, StorageError> {
        // The people of `access::RoleSet::HANDLERS`, as memberships store them.
        let roles = sync_core::access::RoleSet::HANDLERS.people();
        let sql = format!(
            "SELECT DISTINCT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.unit_id = $1 AND m.role IN ({}) AND u.disabled_at IS NULL ORDER BY m.user_id",
            super::placeholders(2, roles.len())
        );
        let rows: Vec<String> = on_tx!(self, |conn| {
            let mut q = sqlx::query_scalar(&sql).bind(unit);
            for r in roles {
                q = q.bind(r.as_str());
            }
            q.fetch_all(&mut *conn).await
        })?;
        Ok(rows)
    }

    /// A unit's roster, if it has one that reads (rosters are checked when
    /// stored; one that no longer reads is logged and taken as none, so its
    /// unit's work falls back to the unit's staff).
    pub async fn roster(&mut self, unit: &str) -> Result<Option<Roster>, StorageError> {
        let row: Option<String> = on_tx!(self, |conn| {
            sqlx::query_scalar("SELECT roster FROM rosters WHERE unit_id = $1")
                .bind(unit)
                .fetch_optional(&mut *conn)
                .await
        })?;
        Ok(row.and_then(|json| readable(unit, &json)))
    }
}

impl super::Rosters<'_> {
    /// Stores a unit's roster; the scheduler hands over to the shift on duty at its next tick.
    pub async fn put(&self, unit: &UnitId, roster: &Roster, by: &UserId, now: Timestamp) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO rosters (unit_id, roster, updated_by, updated_at, next_handover) \
                 VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (unit_id) DO UPDATE SET roster = excluded.roster, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at, next_handover = NULL",
            )
            .bind(unit.as_str())
            .bind(roster.to_json())
            .bind(by.as_str())
            .bind(now.millis())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Every stored roster that reads (see [`StorageTx::roster`]).
    pub async fn all(&self) -> Result<Vec<RosterRow>, StorageError> {
        let rows: Vec<(String, String, String, i64, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT unit_id, roster, updated_by, updated_at, next_handover FROM rosters ORDER BY unit_id",
            )
            .fetch_all(pool)
            .await
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (unit_id, json, updated_by, updated_at, next_handover) in rows {
            let Some(roster) = readable(&unit_id, &json) else {
                continue;
            };
            out.push(RosterRow {
                unit_id: UnitId::new(unit_id).map_err(StorageError::corrupt)?,
                roster,
                updated_by: UserId::new(updated_by).map_err(StorageError::corrupt)?,
                updated_at,
                next_handover,
            });
        }
        Ok(out)
    }

    /// One unit's roster.
    pub async fn roster(&self, unit: &UnitId) -> Result<Option<RosterRow>, StorageError> {
        Ok(self.all().await?.into_iter().find(|r| r.unit_id == *unit))
    }

    /// Moves a unit's hand-over mark from `expected` to `next`; false when
    /// another node (or the roster's replacement) moved it first.
    pub async fn advance_handover(&self, unit: &str, expected: Option<i64>, next: i64) -> Result<bool, StorageError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE rosters SET next_handover = $3 WHERE unit_id = $1 \
                 AND ((next_handover IS NULL AND $2 IS NULL) OR next_handover = $2)",
            )
            .bind(unit)
            .bind(expected)
            .bind(next)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// The notifications to a unit about petitions the unit still leads and
    /// that are still open: what an incoming shift inherits.
    pub async fn open_unit_notifications(&self, unit: &str) -> Result<Vec<NotificationRow>, StorageError> {
        let rows: Vec<NotificationTuple> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT n.key, n.doc_id, n.doc, n.kind, n.recipient, n.entry, n.urgent, n.at_ms, n.text \
                 FROM notifications n JOIN petitions p ON p.doc_id = n.doc_id \
                 WHERE n.recipient = $1 AND p.lead_unit = $2 \
                 AND p.status NOT IN ('closed', 'withdrawn', 'merged') ORDER BY n.at_ms, n.key",
            )
            .bind(format!("unit:{unit}"))
            .bind(unit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(notification_from_tuple).collect())
    }
}

/// A stored roster, or `None` (logged) if it no longer reads.
fn readable(unit: &str, json: &str) -> Option<Roster> {
    match Roster::from_json(json) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(unit, error = %e, "a stored roster does not read; the unit's staff stand in");
            None
        }
    }
}
