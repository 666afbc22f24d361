//! Report inputs: the KPI columns of the petitions a report reads.

use sqlx::Row;
use sync_core::kpi::{ClockBasis, KpiClock, KpiRow};
use sync_core::petition::PetitionSummary;
use sync_core::{Timestamp, UnitId};

use super::{StorageError, on_pool, on_tx, placeholders, rows_per_statement};

/// The KPI columns of one petition as read (`summary` for a row written
/// before the columns existed).
struct KpiColumns {
    lead: Option<String>,
    location: String,
    category: String,
    channel: String,
    submitted_at: Option<i64>,
    in_rates: Option<i64>,
    clocks: [(Option<i64>, Option<i64>, Option<i64>); 3],
    receipt_clocks: Option<i64>,
    closed_at: Option<i64>,
    rating: Option<i64>,
    supervised: i64,
    escalated: Option<i64>,
    skew_flagged: Option<i64>,
    summary: Option<String>,
}

const KPI_COLUMNS: &str = "lead_unit, location_unit, category, channel, submitted_at, in_rates, \
     sign_start, sign_done, sign_due, contact_start, contact_done, contact_due, \
     reply_start, reply_done, reply_due, receipt_clocks, closed_at, rating, supervised, escalated, skew_flagged, \
     CASE WHEN kpi_ready = 0 THEN summary END";

impl KpiColumns {
    fn into_row(self) -> Result<KpiRow, StorageError> {
        if let Some(summary) = self.summary {
            let s: PetitionSummary = serde_json::from_str(&summary).map_err(StorageError::corrupt)?;
            return Ok(KpiRow::of(&s));
        }
        let ts = |v: Option<i64>| v.map(Timestamp::from_millis);
        let receipt = self.receipt_clocks.unwrap_or(0);
        let clock = |i: usize| {
            let (start, done, due) = self.clocks[i];
            Some(KpiClock {
                start: Timestamp::from_millis(start?),
                done: ts(done),
                due: Timestamp::from_millis(due?),
                basis: if receipt & (1 << i) != 0 {
                    ClockBasis::ServerReceipt
                } else {
                    ClockBasis::DeviceStamp
                },
            })
        };
        let holder = self.lead.clone().unwrap_or_else(|| self.location.clone());
        Ok(KpiRow {
            holder: UnitId::new(holder).map_err(StorageError::corrupt)?,
            category: self.category.parse().map_err(StorageError::corrupt)?,
            channel: self.channel.parse().map_err(StorageError::corrupt)?,
            submitted_at: ts(self.submitted_at),
            in_rates: self.in_rates.unwrap_or(1) != 0,
            sign: clock(0),
            contact: clock(1),
            reply: clock(2),
            closed_at: ts(self.closed_at),
            rating: self.rating.and_then(|r| u8::try_from(r).ok()),
            supervised: self.supervised != 0,
            escalated: self.escalated.unwrap_or(0) != 0,
            skew_flagged: self.skew_flagged.unwrap_or(0) != 0,
        })
    }
}

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

/// The statement selecting `columns` of the petitions `q` selects, for one
/// chunk of `units`.
fn report_sql(columns: &str, q: &ReportRows, units: usize) -> String {
    let mut sql = format!("SELECT {columns} FROM petitions WHERE submitted_at >= $1 AND submitted_at < $2");
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
        placeholders(n + 1, units)
    ));
    sql
}

/// Units per statement, after the fixed parameters.
fn units_per_statement(q: &ReportRows) -> usize {
    let fixed = 2 + usize::from(q.category.is_some()) + usize::from(q.channel.is_some());
    rows_per_statement(1).saturating_sub(fixed).max(1)
}

impl super::Projections<'_> {
    /// The KPI rows of the petitions `q` selects, read from the columns the
    /// write path keeps (from the summary for rows written before them).
    pub async fn kpi_rows(&self, q: &ReportRows) -> Result<Vec<KpiRow>, StorageError> {
        let mut out = Vec::new();
        for units in q.units.chunks(units_per_statement(q)) {
            let sql = report_sql(KPI_COLUMNS, q, units.len());
            let columns: Vec<KpiColumns> = on_pool!(self, |pool| {
                async {
                    let mut query = sqlx::query(&sql).bind(q.from.millis()).bind(q.to.millis());
                    for v in [&q.category, &q.channel].into_iter().flatten() {
                        query = query.bind(v);
                    }
                    for u in units {
                        query = query.bind(u);
                    }
                    let rows = query.fetch_all(pool).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        out.push(KpiColumns {
                            lead: r.try_get(0)?,
                            location: r.try_get(1)?,
                            category: r.try_get(2)?,
                            channel: r.try_get(3)?,
                            submitted_at: r.try_get(4)?,
                            in_rates: r.try_get(5)?,
                            clocks: [
                                (r.try_get(6)?, r.try_get(7)?, r.try_get(8)?),
                                (r.try_get(9)?, r.try_get(10)?, r.try_get(11)?),
                                (r.try_get(12)?, r.try_get(13)?, r.try_get(14)?),
                            ],
                            receipt_clocks: r.try_get(15)?,
                            closed_at: r.try_get(16)?,
                            rating: r.try_get(17)?,
                            supervised: r.try_get(18)?,
                            escalated: r.try_get(19)?,
                            skew_flagged: r.try_get(20)?,
                            summary: r.try_get(21)?,
                        });
                    }
                    Ok::<_, sqlx::Error>(out)
                }
                .await
            })?;
            for c in columns {
                out.push(c.into_row()?);
            }
        }
        Ok(out)
    }

    /// The stored summaries of the petitions `q` selects: how reports were
    /// read before the KPI columns, kept as `lianxin bench kpi`'s baseline.
    pub async fn report_summaries(&self, q: &ReportRows) -> Result<Vec<PetitionSummary>, StorageError> {
        let mut out = Vec::new();
        for units in q.units.chunks(units_per_statement(q)) {
            let sql = report_sql("summary", q, units.len());
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
            for json in rows {
                out.push(super::projections::read_summary("in a report", &json)?);
            }
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
