//! Notifications: a local table filled from the server's per-user inbox, and the inbox cursor.
//!
//! The server keeps a durable inbox per user, numbered by a cursor
//! (`GET /api/inbox?after=<cursor>` pages it, `POST /api/inbox/ack {cursor}`
//! acknowledges). The replica stores each page, then moves its cursor and
//! acknowledges, so a notification is shown once however often the phone
//! reconnects. Apps that do their own HTTP call `inbox_cursor`, fetch the
//! page, and pass its body to `receive_inbox`.

use std::time::Duration;

use crate::error::{LianxinError, Result, guard};
use crate::records::NotificationRecord;
use crate::replica::Replica;
use crate::store::NotificationRow;

/// How many notifications one inbox request asks for.
const PAGE: usize = 200;

/// One page of the inbox: its notifications and the cursor after them.
#[derive(Debug)]
pub(crate) struct InboxPage {
    pub rows: Vec<NotificationRow>,
    pub cursor: Option<i64>,
    pub more: bool,
}

/// Reads an inbox page: the server's `sync_core::wire::InboxPage`.
pub(crate) fn parse_page(body: &str) -> Result<InboxPage> {
    let page: sync_core::wire::InboxPage =
        serde_json::from_str(body).map_err(|e| LianxinError::Protocol(format!("inbox page: {e}")))?;
    let rows: Vec<NotificationRow> = page
        .items
        .into_iter()
        .map(|i| NotificationRow {
            cursor: i.cursor,
            key: i.key,
            kind: i.kind,
            // The storage id (bs58), as the replica names documents.
            doc: i.doc_id,
            entry: i.entry,
            text: i.text,
            urgent: i.urgent,
            at_ms: i.at_ms,
            read: false,
        })
        .collect();
    let last = rows.iter().map(|r| r.cursor).max();
    Ok(InboxPage {
        cursor: Some(last.map_or(page.next, |l| l.max(page.next))),
        more: page.more,
        rows,
    })
}

impl Replica {
    /// Stores a page and moves the cursor; returns how many were new and the cursor.
    fn store_page(&self, page: &InboxPage) -> Result<(u32, i64)> {
        let inner = self.lock();
        inner.store.transaction(|s| {
            let added = s.notifications_add(&page.rows)?;
            let old: i64 = s.meta("inbox_cursor")?.and_then(|c| c.parse().ok()).unwrap_or(0);
            let cursor = page.cursor.unwrap_or(old).max(old);
            s.set_meta("inbox_cursor", &cursor.to_string())?;
            Ok((added as u32, cursor))
        })
    }

    pub(crate) fn fetch_inbox_inner(&self, timeout: Duration) -> Result<u32> {
        let mut added = 0;
        for _ in 0..50 {
            let after = self.inbox_cursor()?;
            let (status, body) = self.http("GET", &format!("/api/inbox?after={after}&limit={PAGE}"), None, timeout)?;
            match status {
                200 => {}
                404 => return Err(LianxinError::NotFound("the server has no notification inbox".into())),
                _ => {
                    return Err(LianxinError::Protocol(format!(
                        "GET /api/inbox answered {status}: {body}"
                    )));
                }
            }
            let page = parse_page(&body)?;
            let (n, cursor) = self.store_page(&page)?;
            added += n;
            if cursor > after {
                let ack = serde_json::json!({ "cursor": cursor }).to_string();
                let (status, body) = self.http("POST", "/api/inbox/ack", Some(&ack), timeout)?;
                if !(200..300).contains(&status) {
                    return Err(LianxinError::Protocol(format!(
                        "POST /api/inbox/ack answered {status}: {body}"
                    )));
                }
            }
            if !page.more || page.rows.is_empty() {
                break;
            }
        }
        Ok(added)
    }
}

#[uniffi::export]
impl Replica {
    /// The inbox cursor: every notification up to it is stored locally.
    pub fn inbox_cursor(&self) -> Result<i64> {
        guard(|| {
            Ok(self
                .lock()
                .store
                .meta("inbox_cursor")?
                .and_then(|c| c.parse().ok())
                .unwrap_or(0))
        })
    }

    /// Stores an inbox page the app fetched itself (`GET /api/inbox?after=<inbox_cursor()>`)
    /// and moves the cursor. Returns how many notifications were new; the app
    /// then acknowledges the new cursor (`POST /api/inbox/ack`).
    pub fn receive_inbox(&self, body: String) -> Result<u32> {
        guard(|| Ok(self.store_page(&parse_page(&body)?)?.0))
    }

    /// Fetches every new notification from the server inbox, stores it and
    /// acknowledges it. `sync_now` does this after syncing.
    pub fn fetch_inbox(&self) -> Result<u32> {
        guard(|| self.fetch_inbox_inner(Duration::from_secs(30)))
    }

    /// Notifications held locally, in inbox order.
    pub fn notifications(&self, unread_only: bool) -> Result<Vec<NotificationRecord>> {
        guard(|| {
            Ok(self
                .lock()
                .store
                .notifications(unread_only)?
                .into_iter()
                .map(|n| NotificationRecord {
                    cursor: n.cursor,
                    key: n.key,
                    kind: n.kind,
                    doc: n.doc,
                    entry: n.entry,
                    text: n.text,
                    urgent: n.urgent,
                    at_ms: n.at_ms,
                    read: n.read,
                })
                .collect())
        })
    }

    /// Marks every notification up to `cursor` as read. Returns how many changed.
    pub fn mark_notifications_read(&self, cursor: i64) -> Result<u32> {
        guard(|| Ok(self.lock().store.mark_notifications_read(cursor)? as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_page_reads() {
        let page = r#"{"items":[{"cursor":3,"user":"o","key":"p/1/new_petition/unit:s","doc_id":"p","doc":"automerge:p","kind":"new_petition","recipient":"unit:s","entry":null,"urgent":true,"at_ms":5,"text":"新诉求","created_at":6}],"next":3,"more":false,"acked":0}"#;
        let a = parse_page(page).unwrap();
        assert_eq!(a.rows[0].key, "p/1/new_petition/unit:s");
        assert_eq!((a.rows[0].doc.as_str(), a.rows[0].at_ms), ("p", 5));
        assert_eq!(a.cursor, Some(3));
        assert!(a.rows[0].urgent && !a.more);
        let empty = parse_page(r#"{"items":[],"next":9,"more":false,"acked":9}"#).unwrap();
        assert_eq!((empty.rows.len(), empty.cursor), (0, Some(9)));
        assert!(parse_page(r#"{"items":[{"key":"x"}]}"#).is_err());
    }
}
