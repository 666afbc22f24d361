//! The caller's inbox: page and acknowledge. (Live delivery is
//! [`crate::notify::NotifyService::subscribe`], which SSE and the sync sockets use.)

use sync_core::Principal;
use sync_core::wire::{AckResponse, InboxItem, InboxPage};

use super::page_limit;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage;

/// Paging of `GET /api/inbox`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Items after this cursor; defaults to the acknowledged cursor.
    pub after: Option<i64>,
    pub limit: Option<u32>,
    /// `stream` only: follow what arrives from now on, without replaying the
    /// unacknowledged items (a page that has just rendered the current state).
    #[serde(default)]
    pub live: bool,
    /// The access token, for clients that cannot send headers (EventSource);
    /// read by the authentication, not here.
    #[serde(default)]
    pub token: Option<String>,
}

pub fn item(i: &storage::InboxItem) -> InboxItem {
    let n = &*i.notification;
    InboxItem {
        cursor: i.cursor,
        user: i.user.clone(),
        key: n.key.clone(),
        doc_id: n.doc_id.clone(),
        doc: n.doc.clone(),
        kind: n.kind.clone(),
        recipient: n.recipient.clone(),
        entry: n.entry.clone(),
        urgent: n.urgent,
        at_ms: n.at_ms,
        text: n.text.clone(),
        created_at: i.created_at,
    }
}

/// `GET /api/inbox`: the caller's items after a cursor, oldest first (never
/// items already acknowledged).
pub async fn page(app: &AppState, who: &Principal, q: InboxQuery) -> Result<InboxPage, ApiError> {
    let limit = page_limit(q.limit, 100, 500);
    let acked = app.notify.acked(&who.user).await?;
    let after = q.after.unwrap_or(acked).max(acked);
    let items = app.notify.inbox_after(&who.user, after, limit).await?;
    let next = items.last().map_or(after, |i| i.cursor);
    let more = items.len() == limit as usize;
    Ok(InboxPage {
        items: items.iter().map(item).collect(),
        next,
        more,
        acked,
    })
}

/// The most inbox items one batched pull carries; more make it ask for another exchange.
pub const BATCH_INBOX_PAGE: u32 = 200;

/// The inbox part of a batched pull: the items after `after` (raised to the
/// acknowledged cursor), at most [`BATCH_INBOX_PAGE`], the cursor after
/// them, and whether more wait.
pub async fn batch_page(
    app: &AppState,
    user: &sync_core::UserId,
    after: i64,
) -> Result<(sync_core::batch::InboxPull, bool), storage::StorageError> {
    let acked = app.notify.acked(user).await?;
    let after = after.max(acked);
    let mut items = app.notify.inbox_after(user, after, BATCH_INBOX_PAGE + 1).await?;
    let more = items.len() > BATCH_INBOX_PAGE as usize;
    items.truncate(BATCH_INBOX_PAGE as usize);
    let cursor = items.last().map_or(after, |i| i.cursor);
    let items = items
        .iter()
        .map(|i| {
            let n = &*i.notification;
            sync_core::batch::InboxEntry {
                cursor: i.cursor.max(0) as u64,
                key: n.key.clone(),
                kind: n.kind.clone(),
                doc: n.doc_id.clone(),
                entry: n.entry.clone(),
                urgent: n.urgent,
                at_ms: n.at_ms,
                text: n.text.clone(),
            }
        })
        .collect();
    Ok((
        sync_core::batch::InboxPull {
            cursor: cursor.max(0) as u64,
            items,
        },
        more,
    ))
}

/// A batched client has stored its inbox up to `cursor`: acknowledges it. A
/// cursor past the newest item means the client has everything, so the
/// acknowledgement stops at the newest item instead of failing the exchange.
pub async fn ack_stored(app: &AppState, user: &sync_core::UserId, cursor: i64) -> Result<(), storage::StorageError> {
    if let Err(storage::AckError::BeyondHead { head, .. }) = app.notify.ack(user, cursor.max(0)).await? {
        let _ = app.notify.ack(user, head).await?;
    }
    Ok(())
}

/// `POST /api/inbox/ack`: items up to `cursor` are done and never returned again.
pub async fn ack(app: &AppState, who: &Principal, cursor: i64) -> Result<AckResponse, ApiError> {
    match app.notify.ack(&who.user, cursor).await? {
        Ok(acked) => Ok(AckResponse { acked }),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::NotificationRow;

    /// What SSE and the sync sockets send (the storage item's own
    /// serialization) reads as the wire type, field for field.
    #[test]
    fn pushed_items_read_as_the_wire_item() {
        let stored = storage::InboxItem {
            cursor: 3,
            user: "u".into(),
            notification: Arc::new(NotificationRow {
                key: "k".into(),
                doc_id: "d".into(),
                doc: "automerge:d".into(),
                kind: "mention".into(),
                recipient: "user:u".into(),
                entry: None,
                urgent: true,
                at_ms: 1,
                text: "t".into(),
            }),
            created_at: 2,
        };
        let pushed = serde_json::to_string(&stored).expect("serializes");
        let read: InboxItem = serde_json::from_str(&pushed).expect("reads");
        assert_eq!(read, item(&stored));
    }
}
