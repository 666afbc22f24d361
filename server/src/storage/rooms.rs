//! Room listings for the API: the rooms a person sees, and the copies of a
//! cross-room appeal.

use sync_core::UserId;

use super::{RoomRow, StorageError, StorageTx, on_pool, on_tx, placeholders};

type RoomTuple = (String, String, String, String, Option<String>);

fn room_row((doc_id, kind, name, unit_id, household_id): RoomTuple) -> RoomRow {
    RoomRow {
        doc_id,
        kind,
        name,
        unit_id,
        household_id,
    }
}

impl super::Projections<'_> {
    /// The rooms `user` is a member of, the rooms of `units` (those the
    /// caller handles), and the household lines of `household`; by name.
    pub async fn rooms_for(
        &self,
        user: &UserId,
        units: &[String],
        household: Option<&str>,
    ) -> Result<Vec<RoomRow>, StorageError> {
        let mut sql = String::from(
            "SELECT doc_id, kind, name, unit_id, household_id FROM rooms WHERE doc_id IN \
             (SELECT doc_id FROM doc_access WHERE kind = 'user' AND subject = $1)",
        );
        let mut next = 2;
        if household.is_some() {
            sql.push_str(" OR household_id = $2");
            next = 3;
        }
        if !units.is_empty() {
            sql.push_str(&format!(" OR unit_id IN ({})", placeholders(next, units.len())));
        }
        sql.push_str(" ORDER BY name, doc_id");
        let rows: Vec<RoomTuple> = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql).bind(user.as_str());
            if let Some(h) = household {
                q = q.bind(h);
            }
            for u in units {
                q = q.bind(u);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(room_row).collect())
    }

    /// The messages (as stored JSON views) of the rooms `rooms` that belong
    /// to the cross-room appeal `appeal`, by room and stamp.
    pub async fn appeal_messages(&self, rooms: &[String], appeal: &str) -> Result<Vec<(String, String)>, StorageError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        // A message view serializes its appeal as `"appeal":"<id>"`, and an
        // id is a short text without quotes or backslashes (checked by the
        // operation), so the pattern matches exactly that field.
        let pattern = format!("%\"appeal\":\"{appeal}\"%");
        let sql = format!(
            "SELECT doc_id, body FROM room_messages WHERE body LIKE $1 AND doc_id IN ({}) ORDER BY doc_id, entry_id",
            placeholders(2, rooms.len())
        );
        let rows = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql).bind(&pattern);
            for r in rooms {
                q = q.bind(r);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows)
    }
}

impl StorageTx {
    /// The members of the room `doc_id`, as its access rows list them.
    pub async fn room_members(&mut self, doc_id: &str) -> Result<Vec<String>, StorageError> {
        let rows = on_tx!(self, |conn| {
            sqlx::query_scalar("SELECT subject FROM doc_access WHERE doc_id = $1 AND kind = 'user' ORDER BY subject")
                .bind(doc_id)
                .fetch_all(&mut *conn)
                .await
        })?;
        Ok(rows)
    }
}
