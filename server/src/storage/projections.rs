//! Projection rows: petitions, who-can-see-what, rooms and room messages.
//!
//! Written inside the transaction that stores the changes they come from
//! (through a [`super::ChangeHook`]), so a change and its projections become
//! visible together. Reads serve list views and read-access checks without
//! loading documents.

use sync_core::kpi::{ClockBasis, KpiClock, KpiRow};
use sync_core::petition::PetitionSummary;
use sync_core::{Timestamp, UserId};

use super::{StorageError, StorageTx, on_pool, on_tx};

pub use sync_core::projection::{AccessRow, MessageRow, RoomRow};

/// Filters for listing petitions. `visible_*` restrict to what the reader may see.
#[derive(Clone, Debug, Default)]
pub struct PetitionQuery {
    /// Units in the reader's jurisdiction (empty: none).
    pub visible_units: Vec<String>,
    /// The reader themself, as submitter.
    pub visible_user: Option<UserId>,
    /// Published petitions are visible too (the public board; combine with
    /// `location_units`).
    pub public: bool,
    pub status: Option<String>,
    pub lead_unit: Option<String>,
    pub category: Option<String>,
    pub channel: Option<String>,
    pub submitter: Option<String>,
    /// Submitted at or after this time.
    pub submitted_from: Option<Timestamp>,
    /// Submitted before this time.
    pub submitted_to: Option<Timestamp>,
    pub published: Option<bool>,
    /// Only petitions located in one of these units.
    pub location_units: Option<Vec<String>>,
    /// Only petitions with an unmet deadline before this time.
    pub overdue_at: Option<Timestamp>,
    /// Page after this submission time and doc id (newest first).
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// A stored summary, read back.
pub(crate) fn read_summary(doc_id: &str, json: &str) -> Result<PetitionSummary, StorageError> {
    serde_json::from_str(json).map_err(|e| StorageError::corrupt(format!("petition {doc_id}'s stored summary: {e}")))
}

/// Access rows as stored, read back.
pub(super) fn access_rows(doc_id: &str, rows: Vec<(String, String)>) -> Result<Vec<AccessRow>, StorageError> {
    rows.into_iter()
        .map(|(kind, subject)| {
            let kind = kind
                .parse()
                .map_err(|e| StorageError::corrupt(format!("access row of {doc_id}: {e}")))?;
            Ok(AccessRow { kind, subject })
        })
        .collect()
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

impl StorageTx {
    /// Writes a petition's projection row, with the columns a KPI report
    /// reads (`kpi::KpiRow`).
    pub async fn upsert_petition(&mut self, doc_id: &str, s: &PetitionSummary, seq: i64) -> Result<(), StorageError> {
        let summary = serde_json::to_string(s).map_err(StorageError::corrupt)?;
        let ms = |t: Option<Timestamp>| t.map(|t| t.millis());
        let k = KpiRow::of(s);
        let clock = |c: Option<&KpiClock>| {
            (
                c.map(|c| c.start.millis()),
                c.and_then(|c| ms(c.done)),
                c.map(|c| c.due.millis()),
            )
        };
        let clocks = [
            clock(k.sign.as_ref()),
            clock(k.contact.as_ref()),
            clock(k.reply.as_ref()),
        ];
        let receipt_clocks = [&k.sign, &k.contact, &k.reply]
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some_and(|c| c.basis == ClockBasis::ServerReceipt))
            .fold(0i64, |bits, (i, _)| bits | (1 << i));
        on_tx!(self, |conn| {
            let mut q = sqlx::query(
                "INSERT INTO petitions (doc_id, title, channel, category, status, lead_unit, submitter, location_unit, \
                 submitted_at, signed_at, contacted_at, replied_at, closed_at, next_due, rating, supervised, \
                 awaiting_handler, updated_seq, summary, published, kpi_ready, in_rates, \
                 sign_start, sign_done, sign_due, contact_start, contact_done, contact_due, \
                 reply_start, reply_done, reply_due, receipt_clocks, escalated, skew_flagged) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                 1, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33) \
                 ON CONFLICT (doc_id) DO UPDATE SET title = excluded.title, channel = excluded.channel, \
                 category = excluded.category, status = excluded.status, lead_unit = excluded.lead_unit, \
                 submitter = excluded.submitter, location_unit = excluded.location_unit, \
                 submitted_at = excluded.submitted_at, signed_at = excluded.signed_at, \
                 contacted_at = excluded.contacted_at, replied_at = excluded.replied_at, \
                 closed_at = excluded.closed_at, next_due = excluded.next_due, rating = excluded.rating, \
                 supervised = excluded.supervised, awaiting_handler = excluded.awaiting_handler, \
                 updated_seq = excluded.updated_seq, summary = excluded.summary, published = excluded.published, \
                 kpi_ready = 1, in_rates = excluded.in_rates, \
                 sign_start = excluded.sign_start, sign_done = excluded.sign_done, sign_due = excluded.sign_due, \
                 contact_start = excluded.contact_start, contact_done = excluded.contact_done, \
                 contact_due = excluded.contact_due, reply_start = excluded.reply_start, \
                 reply_done = excluded.reply_done, reply_due = excluded.reply_due, \
                 receipt_clocks = excluded.receipt_clocks, escalated = excluded.escalated, \
                 skew_flagged = excluded.skew_flagged",
            )
            .bind(doc_id)
            .bind(&s.title)
            .bind(s.channel.as_str())
            .bind(s.category.as_str())
            .bind(s.status.as_str())
            .bind(s.lead.as_ref().map(|u| u.as_str()))
            .bind(s.submitter.as_str())
            .bind(s.location.as_str())
            .bind(ms(s.submitted_at))
            .bind(ms(s.signed_at))
            .bind(ms(s.contacted_at))
            .bind(ms(s.replied_at))
            .bind(ms(s.closed_at))
            .bind(ms(s.next_due))
            .bind(s.rating.map(i64::from))
            .bind(flag(s.supervised))
            .bind(flag(s.awaiting_handler))
            .bind(seq)
            .bind(&summary)
            .bind(flag(s.published))
            .bind(flag(k.in_rates));
            for (start, done, due) in clocks {
                q = q.bind(start).bind(done).bind(due);
            }
            q.bind(receipt_clocks)
                .bind(flag(k.escalated))
                .bind(flag(k.skew_flagged))
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Replaces the access rows of a document.
    pub async fn replace_doc_access(&mut self, doc_id: &str, rows: &[AccessRow]) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM doc_access WHERE doc_id = $1")
                .bind(doc_id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        for row in rows {
            on_tx!(self, |conn| {
                sqlx::query("INSERT INTO doc_access (doc_id, kind, subject) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(doc_id)
                    .bind(row.kind.as_str())
                    .bind(&row.subject)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    pub async fn upsert_room(&mut self, row: &RoomRow, seq: i64) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO rooms (doc_id, kind, name, unit_id, household_id, updated_seq) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (doc_id) DO UPDATE SET kind = excluded.kind, name = excluded.name, \
                 unit_id = excluded.unit_id, household_id = excluded.household_id, updated_seq = excluded.updated_seq",
            )
            .bind(&row.doc_id)
            .bind(&row.kind)
            .bind(&row.name)
            .bind(&row.unit_id)
            .bind(row.household_id.as_deref())
            .bind(seq)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Inserts or rewrites room messages (new ones, and ones redacted since).
    pub async fn upsert_room_messages(&mut self, doc_id: &str, rows: &[MessageRow]) -> Result<(), StorageError> {
        for m in rows {
            on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO room_messages (doc_id, entry_id, author, at_ms, body) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (doc_id, entry_id) DO UPDATE SET body = excluded.body",
                )
                .bind(doc_id)
                .bind(&m.entry_id)
                .bind(&m.author)
                .bind(m.at_ms)
                .bind(&m.body)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }
}

impl super::Projections<'_> {
    /// The petitions matching `q` with their stored summaries, newest
    /// submission first.
    pub async fn list_petitions(&self, q: &PetitionQuery) -> Result<Vec<(String, PetitionSummary)>, StorageError> {
        // Placeholders are numbered in the order the binds below are added.
        let mut sql = String::from("SELECT p.doc_id, p.summary FROM petitions p WHERE (");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let mut visible = Vec::new();
        if !q.visible_units.is_empty() {
            let list: Vec<String> = q.visible_units.iter().map(|_| next()).collect();
            visible.push(format!(
                "EXISTS (SELECT 1 FROM doc_access a WHERE a.doc_id = p.doc_id AND a.kind = 'unit' AND a.subject IN ({}))",
                list.join(", ")
            ));
        }
        if q.visible_user.is_some() {
            visible.push(format!("p.submitter = {}", next()));
        }
        if q.public {
            // The public board: published results, whoever submitted them.
            visible.push("p.published = 1".to_owned());
        }
        if visible.is_empty() {
            return Ok(Vec::new());
        }
        sql.push_str(&visible.join(" OR "));
        sql.push(')');
        if q.status.is_some() {
            sql.push_str(&format!(" AND p.status = {}", next()));
        }
        if q.lead_unit.is_some() {
            sql.push_str(&format!(" AND p.lead_unit = {}", next()));
        }
        if q.category.is_some() {
            sql.push_str(&format!(" AND p.category = {}", next()));
        }
        if q.channel.is_some() {
            sql.push_str(&format!(" AND p.channel = {}", next()));
        }
        if q.submitter.is_some() {
            sql.push_str(&format!(" AND p.submitter = {}", next()));
        }
        if q.submitted_from.is_some() {
            sql.push_str(&format!(" AND p.submitted_at >= {}", next()));
        }
        if q.submitted_to.is_some() {
            sql.push_str(&format!(" AND p.submitted_at < {}", next()));
        }
        if q.published.is_some() {
            sql.push_str(&format!(" AND p.published = {}", next()));
        }
        if let Some(units) = &q.location_units {
            let list: Vec<String> = units.iter().map(|_| next()).collect();
            if list.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&format!(" AND p.location_unit IN ({})", list.join(", ")));
        }
        if q.overdue_at.is_some() {
            sql.push_str(&format!(
                " AND p.next_due IS NOT NULL AND p.next_due < {} AND p.status NOT IN ('closed', 'withdrawn', 'merged')",
                next()
            ));
        }
        if q.before.is_some() {
            let (a, b) = (next(), next());
            sql.push_str(&format!(
                " AND (COALESCE(p.submitted_at, 0) < {a} OR (COALESCE(p.submitted_at, 0) = {a} AND p.doc_id < {b}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY COALESCE(p.submitted_at, 0) DESC, p.doc_id DESC LIMIT {}",
            next()
        ));
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(&sql);
            for u in &q.visible_units {
                query = query.bind(u);
            }
            if let Some(u) = &q.visible_user {
                query = query.bind(u.as_str());
            }
            for v in [&q.status, &q.lead_unit, &q.category, &q.channel, &q.submitter]
                .into_iter()
                .flatten()
            {
                query = query.bind(v);
            }
            for t in [q.submitted_from, q.submitted_to].into_iter().flatten() {
                query = query.bind(t.millis());
            }
            if let Some(p) = q.published {
                query = query.bind(flag(p));
            }
            for u in q.location_units.iter().flatten() {
                query = query.bind(u);
            }
            if let Some(t) = q.overdue_at {
                query = query.bind(t.millis());
            }
            if let Some((t, id)) = &q.before {
                query = query.bind(*t).bind(id);
            }
            query.bind(i64::from(q.limit)).fetch_all(pool).await
        })?;
        rows.into_iter()
            .map(|(id, json)| {
                let summary = read_summary(&id, &json)?;
                Ok((id, summary))
            })
            .collect()
    }

    /// The access rows of a document that can let `user` read it: every row
    /// but those naming other users (a room of thousands has a row per
    /// member). Empty for a document that does not exist.
    pub async fn doc_access_for(&self, doc_id: &str, user: &UserId) -> Result<Vec<AccessRow>, StorageError> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, subject FROM doc_access WHERE doc_id = $1 AND (kind <> 'user' OR subject = $2)",
            )
            .bind(doc_id)
            .bind(user.as_str())
            .fetch_all(pool)
            .await
        })?;
        access_rows(doc_id, rows)
    }

    /// Whether `user` is listed as a member of the room `doc_id`.
    pub async fn is_room_member(&self, doc_id: &str, user: &UserId) -> Result<bool, StorageError> {
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM doc_access WHERE doc_id = $1 AND kind = 'user' AND subject = $2")
                .bind(doc_id)
                .bind(user.as_str())
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    /// Every room, by name.
    pub async fn rooms(&self) -> Result<Vec<RoomRow>, StorageError> {
        let rows: Vec<(String, String, String, String, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT doc_id, kind, name, unit_id, household_id FROM rooms ORDER BY name, doc_id")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(doc_id, kind, name, unit_id, household_id)| RoomRow {
                doc_id,
                kind,
                name,
                unit_id,
                household_id,
            })
            .collect())
    }

    pub async fn room(&self, doc_id: &str) -> Result<Option<RoomRow>, StorageError> {
        let row: Option<(String, String, String, String, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT doc_id, kind, name, unit_id, household_id FROM rooms WHERE doc_id = $1")
                .bind(doc_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(doc_id, kind, name, unit_id, household_id)| RoomRow {
            doc_id,
            kind,
            name,
            unit_id,
            household_id,
        }))
    }

    /// A page of room messages in stamp order, after `after` (an entry id) if given.
    pub async fn room_messages(
        &self,
        doc_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MessageRow>, StorageError> {
        let rows: Vec<(String, String, i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT entry_id, author, at_ms, body FROM room_messages WHERE doc_id = $1 AND entry_id > $2 \
                 ORDER BY entry_id LIMIT $3",
            )
            .bind(doc_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(entry_id, author, at_ms, body)| MessageRow {
                entry_id,
                author,
                at_ms,
                body,
            })
            .collect())
    }

    /// The last `limit` messages of a room before the entry `before` (before
    /// the end without it), in stamp order.
    pub async fn room_messages_before(
        &self,
        doc_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MessageRow>, StorageError> {
        let sql = if before.is_some() {
            "SELECT entry_id, author, at_ms, body FROM room_messages WHERE doc_id = $1 AND entry_id < $2 \
             ORDER BY entry_id DESC LIMIT $3"
        } else {
            "SELECT entry_id, author, at_ms, body FROM room_messages WHERE doc_id = $1 AND $2 = '' \
             ORDER BY entry_id DESC LIMIT $3"
        };
        let rows: Vec<(String, String, i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(doc_id)
                .bind(before.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .rev()
            .map(|(entry_id, author, at_ms, body)| MessageRow {
                entry_id,
                author,
                at_ms,
                body,
            })
            .collect())
    }

    /// Every access row of a document.
    pub async fn doc_access(&self, doc_id: &str) -> Result<Vec<AccessRow>, StorageError> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT kind, subject FROM doc_access WHERE doc_id = $1")
                .bind(doc_id)
                .fetch_all(pool)
                .await
        })?;
        access_rows(doc_id, rows)
    }

    /// Up to `limit` petition document ids after `after`, in id order.
    pub async fn petition_ids(&self, after: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        let ids = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT doc_id FROM petitions WHERE doc_id > $1 ORDER BY doc_id LIMIT $2")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        Ok(ids)
    }

    /// A petition's stored summary, if it has a row.
    pub async fn petition_summary(&self, doc_id: &str) -> Result<Option<PetitionSummary>, StorageError> {
        let row: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT summary FROM petitions WHERE doc_id = $1")
                .bind(doc_id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|json| read_summary(doc_id, &json)).transpose()
    }
}
