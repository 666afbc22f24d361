//! Configuration administered at run time: settings (clock rules, the
//! working-day calendar) and the version counters running servers poll to
//! pick up changes to them and to the organisation.

use sync_core::{Timestamp, UserId};

use super::{StorageError, StorageTx, on_pool, on_tx};

/// The configuration kinds with a version counter.
pub const ORG: &str = "org";
pub const SETTINGS: &str = "settings";
/// Raised by every revocation; nodes poll it to find revocations made elsewhere.
pub const REVOCATIONS: &str = "revocations";

impl StorageTx {
    /// Records that the load-time step `name` is done.
    pub async fn mark_load_step(&mut self, name: &str, now: Timestamp) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query("INSERT INTO load_steps (name, done_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Forgets that the load-time step `name` ran, so the next start runs it again.
    pub async fn forget_load_step(&mut self, name: &str) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM load_steps WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Raises the version of `name` (`org` or `settings`) in this transaction.
    pub async fn bump_config_version(&mut self, name: &str) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query("UPDATE config_versions SET version = version + 1 WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Stores a setting (JSON) and raises the settings version.
    pub async fn put_setting(
        &mut self,
        key: &str,
        value: &str,
        by: &UserId,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, \
                 updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(by.as_str())
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.bump_config_version(SETTINGS).await
    }

    /// Disables or re-enables a unit; true when that changed it.
    pub async fn set_unit_disabled(
        &mut self,
        unit: &str,
        disabled: bool,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let sql = if disabled {
            "UPDATE units SET disabled_at = $2, updated_at = $2 WHERE id = $1 AND disabled_at IS NULL"
        } else {
            "UPDATE units SET disabled_at = NULL, updated_at = $2 WHERE id = $1 AND disabled_at IS NOT NULL"
        };
        let n = on_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(unit)
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }
}

impl super::Config<'_> {
    /// The version counters: `(org, settings)`.
    pub async fn config_versions(&self) -> Result<(i64, i64), StorageError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT name, version FROM config_versions")
                .fetch_all(pool)
                .await
        })?;
        let get = |n: &str| rows.iter().find(|(k, _)| k == n).map_or(0, |(_, v)| *v);
        Ok((get(ORG), get(SETTINGS)))
    }

    /// The revocation counter ([`REVOCATIONS`]).
    pub async fn revocation_version(&self) -> Result<i64, StorageError> {
        let v: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT version FROM config_versions WHERE name = $1")
                .bind(REVOCATIONS)
                .fetch_optional(pool)
                .await
        })?;
        Ok(v.unwrap_or(0))
    }

    /// Raises the revocation counter, after a revocation committed.
    pub(crate) async fn bump_revocations(&self) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE config_versions SET version = version + 1 WHERE name = $1")
                .bind(REVOCATIONS)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// A stored setting (JSON), if set.
    /// Whether the load-time step `name` is done.
    pub async fn load_step_done(&self, name: &str) -> Result<bool, StorageError> {
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM load_steps WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StorageError> {
        let v = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        })?;
        Ok(v)
    }

    /// Ids of disabled units.
    pub async fn disabled_units(&self) -> Result<Vec<String>, StorageError> {
        let v = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM units WHERE disabled_at IS NOT NULL ORDER BY id")
                .fetch_all(pool)
                .await
        })?;
        Ok(v)
    }
}
