//! Report inputs: the petition summaries a KPI report reads.

use sync_core::Timestamp;

use super::{Storage, StorageError, on_pool, on_tx, placeholders, rows_per_statement};

/// Which petitions a report reads.
#[derive(Clone, Debug, Default)]
pub struct ReportRows {
    /// Petitions held (led, or located while unled) by one of these units.
    pub units: Vec<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub category: Option<String>,
    pub channel: Option<String>,
}

impl Storage {
    /// The stored summaries (JSON) of the petitions `q` selects.
    pub async fn report_summaries(&self, q: &ReportRows) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        // Fixed parameters first, then one chunk of units per statement.
        let fixed = 2 + usize::from(q.category.is_some()) + usize::from(q.channel.is_some());
        for units in q.units.chunks(rows_per_statement(1).saturating_sub(fixed).max(1)) {
            let mut sql = String::from("SELECT summary FROM petitions WHERE submitted_at >= $1 AND submitted_at < $2");
            let mut n = 2;
            if q.category.is_some() {
                n += 1;
                sql.push_str(&format!(" AND category = ${n}"));
            }
            if q.channel.is_some() {
                n += 1;
                sql.push_str(&format!(" AND channel = ${n}"));
            }
            sql.push_str(&format!(
                " AND COALESCE(lead_unit, location_unit) IN ({})",
                placeholders(n + 1, units.len())
            ));
            let rows: Vec<String> = on_pool!(self, |pool| {
                let mut query = sqlx::query_scalar(&sql).bind(q.from.millis()).bind(q.to.millis());
                for v in [&q.category, &q.channel].into_iter().flatten() {
                    query = query.bind(v);
                }
                for u in units {
                    query = query.bind(u);
                }
                query.fetch_all(pool).await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// `SELECT COUNT(*) FROM petitions`: the baseline `lianxin bench kpi`
    /// prints beside the report's time.
    pub async fn count_petitions(&self) -> Result<i64, StorageError> {
        let n = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM petitions")
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }

    /// Writes petition projection rows (and the bare document rows they
    /// hang off) without documents or changes, many per statement: how
    /// `lianxin bench kpi` fills a database with 100,000 petitions in
    /// seconds. Not for real data: nothing here can be loaded or synced.
    #[doc(hidden)]
    pub async fn seed_petition_rows(
        &self,
        rows: &[(String, sync_core::petition::PetitionSummary)],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        for chunk in rows.chunks(rows_per_statement(4)) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, 'petition', ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect();
            let sql = format!(
                "INSERT INTO documents (doc_id, kind, created_at, updated_at) VALUES {}",
                values.join(", ")
            );
            on_tx!(tx, |conn| {
                let mut q = sqlx::query(&sql);
                for (id, _) in chunk {
                    q = q.bind(id).bind(now.millis()).bind(now.millis());
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        for (id, summary) in rows {
            tx.upsert_petition(id, summary, 0).await?;
        }
        tx.commit().await
    }
}
