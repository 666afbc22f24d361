//! Village directories: which document holds each village's households, the
//! households' rows, and the people household mail reaches.

use std::collections::HashMap;

use super::{StorageError, StorageTx, on_pool, on_tx, placeholders, rows_per_statement};

impl super::Projections<'_> {
    /// The directory documents of `villages`, oldest first: `(village, doc_id)`.
    pub async fn directory_docs(&self, villages: &[String]) -> Result<Vec<(String, String)>, StorageError> {
        if villages.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT a.subject, d.doc_id FROM documents d JOIN doc_access a ON a.doc_id = d.doc_id \
             WHERE d.kind = 'directory' AND a.kind = 'unit' AND a.subject IN ({}) ORDER BY d.created_at, d.doc_id",
            placeholders(1, villages.len())
        );
        let rows = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql);
            for v in villages {
                q = q.bind(v);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows)
    }
}

pub use sync_core::projection::HouseholdRow;

impl StorageTx {
    /// The people household mail goes to, for each of `households` that has
    /// anyone: its members' enabled accounts and the representative the
    /// directory names, sorted. Many households are read in a few statements.
    pub async fn household_users(&mut self, households: &[&str]) -> Result<HashMap<String, Vec<String>>, StorageError> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in households.chunks(rows_per_statement(1)) {
            let list = placeholders(1, chunk.len());
            let sql = format!(
                "SELECT household_id, id FROM users WHERE disabled_at IS NULL AND household_id IN ({list}) \
                 UNION SELECT household_id, representative FROM households \
                 WHERE representative IS NOT NULL AND household_id IN ({list})"
            );
            let rows: Vec<(String, String)> = on_tx!(self, |conn| {
                let mut q = sqlx::query_as(&sql);
                for h in chunk {
                    q = q.bind(*h);
                }
                q.fetch_all(&mut *conn).await
            })?;
            for (household, user) in rows {
                out.entry(household).or_default().push(user);
            }
        }
        for people in out.values_mut() {
            people.sort();
            people.dedup();
        }
        Ok(out)
    }

    /// Writes the households of a village directory.
    pub async fn upsert_households(&mut self, doc_id: &str, rows: &[HouseholdRow]) -> Result<(), StorageError> {
        for h in rows {
            on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO households (household_id, village_unit, name, representative, moved_out, doc_id) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (household_id) DO UPDATE SET \
                     village_unit = excluded.village_unit, name = excluded.name, \
                     representative = excluded.representative, moved_out = excluded.moved_out, doc_id = excluded.doc_id",
                )
                .bind(&h.household_id)
                .bind(&h.village_unit)
                .bind(&h.name)
                .bind(h.representative.as_deref())
                .bind(i64::from(h.moved_out))
                .bind(doc_id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }
}

impl super::Projections<'_> {
    /// Households in the villages `units` (directory households and residents' accounts).
    pub async fn households_in_units(&self, units: &[String]) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        for chunk in units.chunks(rows_per_statement(2)) {
            let list = placeholders(1, chunk.len());
            let sql = format!(
                "SELECT household_id FROM households WHERE moved_out = 0 AND village_unit IN ({list}) \
                 UNION SELECT u.household_id FROM users u JOIN memberships m ON m.user_id = u.id \
                 WHERE u.household_id IS NOT NULL AND m.unit_id IN ({list})"
            );
            let rows: Vec<String> = on_pool!(self, |pool| {
                let mut q = sqlx::query_scalar(&sql);
                for u in chunk {
                    q = q.bind(u);
                }
                q.fetch_all(pool).await
            })?;
            out.extend(rows);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Households of a room's members, and the household of a household line.
    pub async fn room_households(&self, room_doc_id: &str) -> Result<Vec<String>, StorageError> {
        let mut rows: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT u.household_id FROM doc_access a JOIN users u ON u.id = a.subject \
                 WHERE a.doc_id = $1 AND a.kind = 'user' AND u.household_id IS NOT NULL \
                 UNION SELECT household_id FROM rooms WHERE doc_id = $1 AND household_id IS NOT NULL",
            )
            .bind(room_doc_id)
            .fetch_all(pool)
            .await
        })?;
        rows.sort();
        rows.dedup();
        Ok(rows)
    }
}
