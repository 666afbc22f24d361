//! Units, users and memberships: the organisation data that auth and admin need.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sync_core::{HouseholdId, Membership, OrgTree, Role, Timestamp, Unit, UnitId, UnitKind, UserId};

use super::{StorageError, StorageTx, on_pool, on_tx};

/// How a user signs in and what the token says they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// Officers, leaders, department staff, admins: login name + password.
    Staff,
    /// Residents: phone + one-time code.
    Resident,
    /// The server's own actor and other machine accounts.
    System,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Staff => "staff",
            UserKind::Resident => "resident",
            UserKind::System => "system",
        }
    }
}

impl FromStr for UserKind {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, StorageError> {
        match s {
            "staff" => Ok(UserKind::Staff),
            "resident" => Ok(UserKind::Resident),
            "system" => Ok(UserKind::System),
            other => Err(StorageError::corrupt(format!("unknown user kind {other:?}"))),
        }
    }
}

/// A user as stored, without the password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub login_name: Option<String>,
    pub display_name: String,
    pub phone: Option<String>,
    pub kind: UserKind,
    pub household: Option<HouseholdId>,
    pub disabled: bool,
}

/// Fields for creating or updating a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub login_name: Option<String>,
    pub display_name: String,
    pub phone: Option<String>,
    pub kind: UserKind,
    pub household: Option<HouseholdId>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    login_name: Option<String>,
    display_name: String,
    phone: Option<String>,
    kind: String,
    household_id: Option<String>,
    disabled_at: Option<i64>,
}

impl UserRow {
    fn into_record(self) -> Result<UserRecord, StorageError> {
        Ok(UserRecord {
            id: UserId::new(self.id).map_err(StorageError::corrupt)?,
            login_name: self.login_name,
            display_name: self.display_name,
            phone: self.phone,
            kind: self.kind.parse()?,
            household: self
                .household_id
                .map(HouseholdId::new)
                .transpose()
                .map_err(StorageError::corrupt)?,
            disabled: self.disabled_at.is_some(),
        })
    }
}

const USER_COLUMNS: &str = "id, login_name, display_name, phone, kind, household_id, disabled_at";

fn unit_kind_str(kind: UnitKind) -> Result<String, StorageError> {
    enum_str(&kind)
}

fn role_str(role: Role) -> Result<String, StorageError> {
    enum_str(&role)
}

/// The snake_case name serde gives a unit-variant enum.
fn enum_str<T: Serialize>(value: &T) -> Result<String, StorageError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StorageError::corrupt("enum does not serialise to a string")),
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StorageError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StorageError::corrupt(format!("unknown value {s:?}")))
}

impl super::Auth<'_> {
    pub async fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StorageError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await
        })?;
        row.map(UserRow::into_record).transpose()
    }

    /// Display names of the users among `ids` that exist, by id.
    pub async fn display_names(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::BTreeMap<String, String>, StorageError> {
        let mut names = std::collections::BTreeMap::new();
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT id, display_name FROM users WHERE id IN ({})", marks.join(", "));
            let rows: Vec<(String, String)> = on_pool!(self, |pool| {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(pool).await
            })?;
            names.extend(rows);
        }
        Ok(names)
    }

    /// A user and their password hash, by login name.
    pub async fn find_user_by_login(
        &self,
        login_name: &str,
    ) -> Result<Option<(UserRecord, Option<String>)>, StorageError> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE login_name = $1");
        let row = on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(login_name)
                .fetch_optional(pool)
                .await?
                .map(|row| {
                    use sqlx::{FromRow, Row};
                    Ok::<_, sqlx::Error>((
                        UserRow::from_row(&row)?,
                        row.try_get::<Option<String>, _>("password_hash")?,
                    ))
                })
                .transpose()
        })?;
        row.map(|(user, hash)| Ok((user.into_record()?, hash))).transpose()
    }

    pub async fn find_user_by_phone(&self, phone: &str) -> Result<Option<UserRecord>, StorageError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE phone = $1");
        let row: Option<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(phone).fetch_optional(pool).await
        })?;
        row.map(UserRow::into_record).transpose()
    }

    /// Creates a user; fails if the id, login name or phone is taken.
    pub async fn create_user(&self, user: &NewUser, now: Timestamp) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        tx.insert_user(user, now).await?;
        tx.commit().await
    }

    pub async fn set_password_hash(&self, user: &UserId, hash: &str, now: Timestamp) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        tx.set_password_hash(user, hash, now).await?;
        tx.commit().await
    }

    /// A user and their memberships in one statement (what every
    /// authenticated request loads); `None` for an unknown user.
    pub async fn user_with_memberships(
        &self,
        id: &UserId,
    ) -> Result<Option<(UserRecord, Vec<Membership>)>, StorageError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, m.unit_id, m.role FROM users u \
             LEFT JOIN memberships m ON m.user_id = u.id WHERE u.id = $1 ORDER BY m.unit_id, m.role"
        );
        let rows = on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(id.as_str())
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    use sqlx::{FromRow, Row};
                    Ok::<_, sqlx::Error>((
                        UserRow::from_row(row)?,
                        row.try_get::<Option<String>, _>("unit_id")?,
                        row.try_get::<Option<String>, _>("role")?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut memberships = Vec::new();
        let mut user = None;
        for (row, unit, role) in rows {
            if let (Some(unit), Some(role)) = (unit, role) {
                memberships.push(Membership {
                    unit: UnitId::new(unit).map_err(StorageError::corrupt)?,
                    role: parse_enum(&role)?,
                });
            }
            if user.is_none() {
                user = Some(row.into_record()?);
            }
        }
        Ok(user.map(|u| (u, memberships)))
    }

    /// Every staff account (login name and password) with its memberships, by id: the people
    /// an administration page lists. Residents are many and are reached by the directory.
    pub async fn staff_with_memberships(&self) -> Result<Vec<(UserRecord, Vec<Membership>)>, StorageError> {
        let people = self.with_memberships("u.kind = 'staff'").await?;
        Ok(people.into_iter().map(|(user, _, ms)| (user, ms)).collect())
    }

    /// Every person's account (not the server's own) with its password hash
    /// and memberships, by id: what a station's directory is cut from.
    pub async fn people_with_credentials(
        &self,
    ) -> Result<Vec<(UserRecord, Option<String>, Vec<Membership>)>, StorageError> {
        self.with_memberships("u.kind <> 'system'").await
    }

    /// The accounts `filter` (a condition on `u`, the users table) selects,
    /// each with its password hash and memberships, by id.
    async fn with_memberships(
        &self,
        filter: &str,
    ) -> Result<Vec<(UserRecord, Option<String>, Vec<Membership>)>, StorageError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, password_hash, m.unit_id, m.role FROM users u \
             LEFT JOIN memberships m ON m.user_id = u.id WHERE {filter} ORDER BY u.id, m.unit_id, m.role"
        );
        let rows = on_pool!(self, |pool| {
            sqlx::query(&sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    use sqlx::{FromRow, Row};
                    Ok::<_, sqlx::Error>((
                        UserRow::from_row(row)?,
                        row.try_get::<Option<String>, _>("password_hash")?,
                        row.try_get::<Option<String>, _>("unit_id")?,
                        row.try_get::<Option<String>, _>("role")?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut out: Vec<(UserRecord, Option<String>, Vec<Membership>)> = Vec::new();
        for (row, hash, unit, role) in rows {
            let record = row.into_record()?;
            if out.last().is_none_or(|(u, _, _)| u.id != record.id) {
                out.push((record, hash, Vec::new()));
            }
            if let (Some(unit), Some(role), Some((_, _, ms))) = (unit, role, out.last_mut()) {
                ms.push(Membership {
                    unit: UnitId::new(unit).map_err(StorageError::corrupt)?,
                    role: parse_enum(&role)?,
                });
            }
        }
        Ok(out)
    }

    pub async fn get_unit(&self, id: &UnitId) -> Result<Option<Unit>, StorageError> {
        let row: Option<(String, String, String, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, name, kind, parent_id FROM units WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
        })?;
        row.map(unit_from_row).transpose()
    }

    /// Every unit, as the organisation tree sync-core evaluates policy on.
    pub async fn org_tree(&self) -> Result<OrgTree, StorageError> {
        let rows: Vec<(String, String, String, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, name, kind, parent_id FROM units ORDER BY id")
                .fetch_all(pool)
                .await
        })?;
        Ok(OrgTree::new(
            rows.into_iter().map(unit_from_row).collect::<Result<Vec<_>, _>>()?,
        ))
    }
}

fn unit_from_row((id, name, kind, parent): (String, String, String, Option<String>)) -> Result<Unit, StorageError> {
    Ok(Unit {
        id: UnitId::new(id).map_err(StorageError::corrupt)?,
        name,
        kind: parse_enum(&kind)?,
        parent: parent.map(UnitId::new).transpose().map_err(StorageError::corrupt)?,
    })
}

impl StorageTx {
    pub async fn insert_user(&mut self, user: &NewUser, now: Timestamp) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO users (id, login_name, display_name, phone, kind, household_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(user.id.as_str())
            .bind(user.login_name.as_deref())
            .bind(&user.display_name)
            .bind(user.phone.as_deref())
            .bind(user.kind.as_str())
            .bind(user.household.as_ref().map(HouseholdId::as_str))
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| unique_violation(e, || format!("user {}: id, login name or phone already taken", user.id)))?;
        Ok(())
    }

    /// Creates the user or updates every field but the password. Returns
    /// true when the user already existed and had a password hash.
    pub async fn upsert_user(&mut self, user: &NewUser, now: Timestamp) -> Result<bool, StorageError> {
        let existing: Option<Option<String>> = on_tx!(self, |conn| {
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user.id.as_str())
                .fetch_optional(&mut *conn)
                .await
        })?;
        let Some(hash) = existing else {
            self.insert_user(user, now).await?;
            return Ok(false);
        };
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE users SET login_name = $2, display_name = $3, phone = $4, kind = $5, \
                 household_id = $6, updated_at = $7 WHERE id = $1",
            )
            .bind(user.id.as_str())
            .bind(user.login_name.as_deref())
            .bind(&user.display_name)
            .bind(user.phone.as_deref())
            .bind(user.kind.as_str())
            .bind(user.household.as_ref().map(HouseholdId::as_str))
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| {
            unique_violation(e, || {
                format!("user {}: login name or phone already taken by another user", user.id)
            })
        })?;
        Ok(hash.is_some())
    }

    pub async fn set_password_hash(&mut self, user: &UserId, hash: &str, now: Timestamp) -> Result<(), StorageError> {
        let done = on_tx!(self, |conn| {
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(user.as_str())
                .bind(hash)
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(StorageError::NotFound {
                what: "user",
                id: user.to_string(),
            });
        }
        Ok(())
    }

    /// Replaces the user's memberships with `memberships`.
    pub async fn set_memberships(&mut self, user: &UserId, memberships: &[Membership]) -> Result<(), StorageError> {
        on_tx!(self, |conn| {
            sqlx::query("DELETE FROM memberships WHERE user_id = $1")
                .bind(user.as_str())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        for m in memberships {
            let role = role_str(m.role)?;
            on_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO memberships (user_id, unit_id, role) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(user.as_str())
                .bind(m.unit.as_str())
                .bind(&role)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// Creates the unit or updates its name, kind and parent.
    pub async fn upsert_unit(&mut self, unit: &Unit, now: Timestamp) -> Result<(), StorageError> {
        let kind = unit_kind_str(unit.kind)?;
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO units (id, name, kind, parent_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
                 parent_id = excluded.parent_id, updated_at = excluded.updated_at",
            )
            .bind(unit.id.as_str())
            .bind(&unit.name)
            .bind(&kind)
            .bind(unit.parent.as_ref().map(UnitId::as_str))
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Disables or re-enables a user. Disabling also revokes every session
    /// of the user, in this transaction. Returns true when the state changed.
    pub async fn set_user_disabled(
        &mut self,
        user: &UserId,
        disabled: bool,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let changed = on_tx!(self, |conn| {
            let sql = if disabled {
                "UPDATE users SET disabled_at = $2, updated_at = $2 WHERE id = $1 AND disabled_at IS NULL"
            } else {
                "UPDATE users SET disabled_at = NULL, updated_at = $2 WHERE id = $1 AND disabled_at IS NOT NULL"
            };
            let changed = sqlx::query(sql)
                .bind(user.as_str())
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())?;
            if disabled {
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user.as_str())
                    .bind(now.millis())
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())?;
            }
            Ok::<_, sqlx::Error>(changed)
        })?;
        if disabled && changed > 0 {
            self.bump_config_version(super::config::REVOCATIONS).await?;
        }
        Ok(changed > 0)
    }

    pub async fn user_exists(&mut self, id: &UserId) -> Result<bool, StorageError> {
        let n: i64 = on_tx!(self, |conn| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *conn)
                .await
        })?;
        Ok(n > 0)
    }

    pub async fn unit_exists(&mut self, id: &UnitId) -> Result<bool, StorageError> {
        let n: i64 = on_tx!(self, |conn| {
            sqlx::query_scalar("SELECT COUNT(*) FROM units WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *conn)
                .await
        })?;
        Ok(n > 0)
    }
}

/// Turns a unique-constraint violation into a readable conflict.
fn unique_violation(e: sqlx::Error, message: impl FnOnce() -> String) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict(message()),
        _ => StorageError::Database(e),
    }
}
