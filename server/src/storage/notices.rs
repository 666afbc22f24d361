//! Notices for the API: which notices a reader may be shown, and what the
//! server itself delivered of each.

use std::collections::BTreeMap;

use serde::Serialize;
use sync_core::Timestamp;

use super::{StorageError, StorageTx, on_pool, on_tx, rows_per_statement, value_rows};

/// One candidate notice for a listing: storage id and when it was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRow {
    pub doc_id: String,
    pub created_at: i64,
}

impl super::Projections<'_> {
    /// Notices whose access rows name one of `units` (as issuing or audience
    /// unit), `household`, or one of `rooms`, newest first, stored before
    /// `before` if given. Callers still check each with `may_read`.
    pub async fn notice_candidates(
        &self,
        units: &[String],
        household: Option<&str>,
        rooms: &[String],
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NoticeRow>, StorageError> {
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let mut any = Vec::new();
        if !units.is_empty() {
            let list: Vec<String> = units.iter().map(|_| next()).collect();
            any.push(format!(
                "(a.kind IN ('unit', 'audience_unit') AND a.subject IN ({}))",
                list.join(", ")
            ));
        }
        if household.is_some() {
            any.push(format!("(a.kind = 'household' AND a.subject = {})", next()));
        }
        if !rooms.is_empty() {
            let list: Vec<String> = rooms.iter().map(|_| next()).collect();
            any.push(format!("(a.kind = 'room' AND a.subject IN ({}))", list.join(", ")));
        }
        if any.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = format!(
            "SELECT d.doc_id, d.created_at FROM documents d WHERE d.kind = 'notice' AND EXISTS \
             (SELECT 1 FROM doc_access a WHERE a.doc_id = d.doc_id AND ({}))",
            any.join(" OR ")
        );
        if before.is_some() {
            sql.push_str(&format!(" AND d.created_at < {}", next()));
        }
        sql.push_str(&format!(" ORDER BY d.created_at DESC, d.doc_id DESC LIMIT {}", next()));
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql);
            for u in units {
                q = q.bind(u);
            }
            if let Some(h) = household {
                q = q.bind(h);
            }
            for r in rooms {
                q = q.bind(r);
            }
            if let Some(b) = before {
                q = q.bind(b);
            }
            q.bind(i64::from(limit)).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(doc_id, created_at)| NoticeRow { doc_id, created_at })
            .collect())
    }

    /// Per household of the notice `doc_id`, the earliest time the server
    /// itself knows one of its people got the notice: an inbox item pushed
    /// on a live connection (SSE or a sync socket), an inbox acknowledged
    /// past the item (at the time of that acknowledgement), or a push the
    /// gateway accepted.
    pub async fn notice_server_deliveries(&self, doc_id: &str) -> Result<BTreeMap<String, i64>, StorageError> {
        // Recipient, and the three times the server may have delivered at.
        type Row = (String, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT n.recipient, i.delivered_at, \
                 CASE WHEN a.acked >= i.seq THEN a.acked_at END, \
                 (SELECT MIN(o.done_at) FROM outbox o WHERE o.inbox_seq = i.seq AND o.channel = 'push' \
                  AND o.status = 'sent') \
                 FROM notifications n JOIN inbox i ON i.notification_id = n.id \
                 LEFT JOIN inbox_acks a ON a.user_id = i.user_id \
                 WHERE n.doc_id = $1 AND n.recipient LIKE 'household:%'",
            )
            .bind(doc_id)
            .fetch_all(pool)
            .await
        })?;
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        for (recipient, live, acked, pushed) in rows {
            let Some(household) = recipient.strip_prefix("household:") else {
                continue;
            };
            let Some(at) = [live, acked, pushed].into_iter().flatten().min() else {
                continue;
            };
            let slot = out.entry(household.to_owned()).or_insert(at);
            *slot = (*slot).min(at);
        }
        Ok(out)
    }
}

/// One household's delivery record of a notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NoticeDeliveryRow {
    pub household_id: String,
    pub name: Option<String>,
    pub village_unit: Option<String>,
    pub notified_at: i64,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub forwarded_at: Option<i64>,
}

impl StorageTx {
    /// Records that a notice went to `households`, one delivery record each
    /// (kept as it is when there is one already).
    pub async fn insert_notice_deliveries(
        &mut self,
        doc_id: &str,
        households: &[&str],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        for chunk in households.chunks(rows_per_statement(3)) {
            let sql = format!(
                "INSERT INTO notice_deliveries (doc_id, household_id, notified_at) VALUES {} \
                 ON CONFLICT (doc_id, household_id) DO NOTHING",
                value_rows(chunk.len(), 3)
            );
            on_tx!(self, |conn| {
                let mut q = sqlx::query(&sql);
                for h in chunk {
                    q = q.bind(doc_id).bind(*h).bind(now.millis());
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Copies a household's receipts from the notice document onto its delivery record.
    pub async fn update_notice_receipts(
        &mut self,
        doc_id: &str,
        household: &str,
        delivered: Option<i64>,
        read: Option<i64>,
        forwarded: Option<i64>,
    ) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE notice_deliveries SET delivered_at = $3, read_at = $4, forwarded_at = $5 \
                 WHERE doc_id = $1 AND household_id = $2",
            )
            .bind(doc_id)
            .bind(household)
            .bind(delivered)
            .bind(read)
            .bind(forwarded)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

impl super::Projections<'_> {
    /// A notice's delivery records, with names from the directories.
    pub async fn notice_deliveries(&self, doc_id: &str) -> Result<Vec<NoticeDeliveryRow>, StorageError> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT d.household_id, h.name, h.village_unit, d.notified_at, d.delivered_at, d.read_at, d.forwarded_at \
                 FROM notice_deliveries d LEFT JOIN households h ON h.household_id = d.household_id \
                 WHERE d.doc_id = $1 ORDER BY d.household_id",
            )
            .bind(doc_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
