//! Notifications: a local table filled from the server's per-user inbox, and the inbox cursor.
//!
//! The server keeps a durable inbox per user, numbered by a cursor
//! (`GET /api/inbox?after=<cursor>` pages it, `POST /api/inbox/ack {cursor}`
//! acknowledges). The replica stores each page, then moves its cursor and
//! acknowledges, so a notification is shown once however often the phone
//! reconnects. Apps that do their own HTTP call `inbox_cursor`, fetch the
//! page, and pass its body to `receive_inbox`.

use std::time::Duration;

use serde_json::Value;

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

fn int(v: &Value, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_i64))
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Reads an inbox page: `{"items": [...], "cursor"?, "more"?}` or a bare array.
/// An item is a notification (`key`, `kind`, `doc`, `entry`, `text`,
/// `urgent`, `at`) with its inbox `cursor`, flat or under `notification`.
pub(crate) fn parse_page(body: &str) -> Result<InboxPage> {
    let bad = |m: String| LianxinError::Protocol(format!("inbox page: {m}"));
    let v: Value = serde_json::from_str(body).map_err(|e| bad(e.to_string()))?;
    let items = match &v {
        Value::Array(a) => a.clone(),
        Value::Object(_) => ["items", "notifications"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_array).cloned())
            .ok_or_else(|| bad("no items".into()))?,
        _ => return Err(bad("not an object".into())),
    };
    let mut rows = Vec::with_capacity(items.len());
    for item in &items {
        let n = item.get("notification").filter(|n| n.is_object()).unwrap_or(item);
        let cursor =
            int(item, &["cursor", "seq", "id"]).ok_or_else(|| bad(format!("an item has no cursor: {item}")))?;
        rows.push(NotificationRow {
            cursor,
            key: text(n, "key").ok_or_else(|| bad(format!("item {cursor} has no key")))?,
            kind: text(n, "kind").unwrap_or_default(),
            doc: text(n, "doc").unwrap_or_default(),
            entry: text(n, "entry"),
            text: text(n, "text").unwrap_or_default(),
            urgent: n.get("urgent").and_then(Value::as_bool).unwrap_or(false),
            at_ms: int(n, &["at", "at_ms"]).unwrap_or(0),
            read: false,
        });
    }
    let last = rows.iter().map(|r| r.cursor).max();
    let cursor = match (int(&v, &["cursor", "next"]), last) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let more = v.get("more").and_then(Value::as_bool).unwrap_or(rows.len() >= PAGE);
    Ok(InboxPage { rows, cursor, more })
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
    fn flat_and_nested_pages_read_alike() {
        let flat = r#"{"items":[{"cursor":3,"key":"p/1/new_petition/unit:s","kind":"new_petition","doc":"p","text":"新诉求","urgent":true,"at":5}],"more":false}"#;
        let nested = r#"[{"cursor":3,"notification":{"key":"p/1/new_petition/unit:s","kind":"new_petition","doc":"p","text":"新诉求","urgent":true,"at":5}}]"#;
        let a = parse_page(flat).unwrap();
        let b = parse_page(nested).unwrap();
        assert_eq!(a.rows[0].key, b.rows[0].key);
        assert_eq!((a.cursor, b.cursor), (Some(3), Some(3)));
        assert!(a.rows[0].urgent && !a.more);
        assert!(parse_page(r#"{"items":[{"key":"x"}]}"#).is_err());
    }
}
