//! 消息: the signed-in user's notifications (the API's inbox), newest last as the inbox keeps
//! them, each linking to its petition; "mark all read" acknowledges them through the API. The
//! list reloads itself when the live stream brings something new.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use sync_core::Timestamp;

use super::{Chrome, Desk, Nav, error_page, wire};
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::{format, pages};

#[derive(Deserialize)]
struct Item {
    cursor: i64,
    doc_id: String,
    kind: String,
    urgent: bool,
    at_ms: i64,
    text: String,
}

struct Row {
    at: String,
    kind: &'static str,
    text: String,
    href: Option<String>,
    urgent: bool,
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
struct InboxPage {
    chrome: Chrome,
    rows: Vec<Row>,
    /// The last cursor shown, for "mark all read".
    last: Option<i64>,
}

/// A notification kind in words, and whether it is about a petition (else a room or a notice).
fn kind(k: &str) -> (&'static str, bool) {
    match k {
        "new_petition" => ("新诉求", true),
        "assigned" => ("派单", true),
        "returned" => ("退单", true),
        "assist_requested" => ("协办", true),
        "escalated" => ("提级", true),
        "supervised" => ("督办", true),
        "status_changed" => ("状态变化", true),
        "progress" => ("办理进展", true),
        "follow_up" => ("回访", true),
        "petition_message" => ("诉求留言", true),
        "due_soon" => ("即将到期", true),
        "overdue" => ("已超时", true),
        "mention" => ("有人@我", false),
        "line_message" => ("专线消息", false),
        "notice" => ("通知", false),
        _ => ("消息", false),
    }
}

/// `GET /inbox`: up to 200 unacknowledged notifications.
pub async fn page(State(app): State<AppState>, desk: Desk) -> Response {
    let result = async {
        let query = wire(json!({ "limit": 200 }))?;
        crate::http::inbox::inbox(State(app.clone()), desk.session.auth.clone(), ApiQuery(query)).await
    }
    .await;
    let body = match result {
        Ok(axum::Json(body)) => body,
        Err(e) => return error_page(e),
    };
    let items: Vec<Item> = serde_json::to_value(&body.items)
        .and_then(serde_json::from_value)
        .unwrap_or_default();
    let last = items.last().map(|i| i.cursor);
    let rows = items
        .into_iter()
        .rev()
        .map(|i| {
            let (word, petition) = kind(&i.kind);
            Row {
                at: format::datetime(Timestamp::from_millis(i.at_ms)),
                kind: word,
                text: i.text,
                href: if petition {
                    Some(format!("/petitions/{}", i.doc_id))
                } else if i.kind == "notice" {
                    Some(format!("/notices/{}", i.doc_id))
                } else if matches!(i.kind.as_str(), "mention" | "line_message") {
                    Some(format!("/rooms/{}", i.doc_id))
                } else {
                    None
                },
                urgent: i.urgent,
            }
        })
        .collect();
    pages::render(&InboxPage {
        chrome: desk.chrome(Nav::Inbox),
        rows,
        last,
    })
}

/// `POST /inbox/read`: acknowledges everything up to the cursor the page showed.
pub async fn read(State(app): State<AppState>, desk: Desk, headers: HeaderMap, form: Form) -> Response {
    let result = async {
        let cursor: i64 = form
            .get("cursor")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| crate::error::ApiError::BadRequest("缺少消息位置".into()))?;
        let ack = wire(json!({ "cursor": cursor }))?;
        crate::http::inbox::ack(State(app.clone()), desk.session.auth.clone(), ApiJson(ack)).await
    }
    .await;
    match result {
        Ok(_) => pages::see_other(&headers, "/inbox"),
        Err(e) => error_page(e),
    }
}
