//! A room (村群议事厅, party-group room, household line): its messages, oldest first, with
//! replies, @mentions, redactions (kept with who and why) and pins shown as such, and a form
//! to post with @mentions and reply-to. Messages and posting are the API's
//! (`GET`/`POST /api/rooms/{id}/messages`); membership decides, there, who may read and write.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use sync_core::{Timestamp, UserId};

use super::{Chrome, Desk, Nav, error_page, refusal_words, wire};
use crate::error::ApiError;

use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::{format, pages};

struct Said {
    id: String,
    at: String,
    by: String,
    text: String,
    reply_to: Option<String>,
    mentions: String,
    redacted: Option<String>,
    pinned: bool,
    petition: Option<String>,
}

#[derive(Template)]
#[template(path = "console/room.html")]
struct RoomPage {
    chrome: Chrome,
    id: String,
    name: String,
    kind: &'static str,
    members: usize,
    /// Units a petition raised from a message may be routed to.
    units: Vec<(String, String)>,
    categories: Vec<(&'static str, &'static str)>,
    messages: Vec<Said>,
    /// The message being answered (`?reply=`), as "who: text".
    reply: Option<(String, String)>,
    next: Option<String>,
    errors: Vec<String>,
}

/// The `@name` tokens of a post as the API's mentions: `@all` for everyone, else a user id.
pub fn mentions(text: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for token in text.split(|c: char| c.is_whitespace() || "，。,;；:：".contains(c)) {
        let Some(name) = token.strip_prefix('@').or_else(|| token.strip_prefix('＠')) else {
            continue;
        };
        let m = if name == "all" || name == "所有人" {
            json!("all")
        } else if UserId::new(name).is_ok() {
            json!({ "user": name })
        } else {
            continue;
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

async fn build(
    app: &AppState,
    desk: &Desk,
    id: &str,
    raw: Option<&str>,
    errors: Vec<String>,
) -> Result<RoomPage, ApiError> {
    let q = Form::parse(raw.unwrap_or("").as_bytes());
    let room = crate::api::rooms::get(app, desk.principal(), id).await?;
    let mut request = json!({ "limit": 200 });
    if let Some(after) = q.get("after") {
        request["after"] = json!(after);
    }
    let query = wire(request)?;
    let page = crate::api::rooms::messages(app, desk.principal(), id, query).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|m| serde_json::to_value(m).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<_, _>>()?;
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut people: Vec<String> = Vec::new();
    for m in &items {
        people.extend(m["by"].as_str().map(str::to_owned));
        for x in m["mentions"].as_array().into_iter().flatten() {
            let id = match x {
                Value::String(s) if !s.starts_with('@') && s != "all" => Some(s.as_str()),
                other => other["user"].as_str(),
            };
            people.extend(id.map(str::to_owned));
        }
    }
    for by in &people {
        let by = by.as_str();
        if names.contains_key(by) {
            continue;
        }
        let name = match UserId::new(by) {
            Ok(u) => match app.storage.auth().get_user(&u).await {
                Ok(Some(user)) => user.display_name,
                _ => by.to_owned(),
            },
            Err(_) => by.to_owned(),
        };
        names.insert(by.to_owned(), name);
    }
    let name = |v: &Value| {
        v.as_str()
            .map(|s| names.get(s).cloned().unwrap_or_else(|| s.to_owned()))
            .unwrap_or_default()
    };
    let text_of: BTreeMap<String, String> = items
        .iter()
        .filter_map(|m| {
            Some((
                m["id"].as_str()?.to_owned(),
                format!("{}：{}", name(&m["by"]), m["text"].as_str()?),
            ))
        })
        .collect();
    let at = |v: &Value| {
        v.as_str()
            .and_then(|s| s.split('.').next())
            .and_then(|ms| ms.parse::<i64>().ok())
            .map(|ms| format::datetime(Timestamp::from_millis(ms)))
            .unwrap_or_default()
    };
    let messages = items
        .iter()
        .map(|m| Said {
            id: m["id"].as_str().unwrap_or_default().to_owned(),
            at: at(&m["at"]),
            by: name(&m["by"]),
            text: m["text"].as_str().unwrap_or_default().to_owned(),
            reply_to: m["reply_to"]
                .as_str()
                .map(|r| text_of.get(r).cloned().unwrap_or_else(|| "一条更早的消息".to_owned())),
            mentions: m["mentions"]
                .as_array()
                .into_iter()
                .flatten()
                // The stored form is the text one (`@all`, a user id); the JSON one
                // (`"all"`, `{"user": id}`) is taken too.
                .map(|x| match x {
                    Value::String(s) if s == "all" || s == "@all" => "@所有人".to_owned(),
                    Value::String(_) => format!("@{}", name(x)),
                    other => format!("@{}", name(&other["user"])),
                })
                .collect::<Vec<_>>()
                .join(" "),
            redacted: m["redacted"].as_object().map(|r| {
                format!(
                    "已被{}撤回：{}",
                    name(&r.get("by").cloned().unwrap_or_default()),
                    r.get("reason").and_then(|x| x.as_str()).unwrap_or_default()
                )
            }),
            pinned: m["pinned"].as_bool().unwrap_or(false),
            petition: m["petition"]
                .as_str()
                .map(|p| p.trim_start_matches("automerge:").to_owned()),
        })
        .collect();
    let reply = q
        .get("reply")
        .and_then(|r| text_of.get(r).map(|t| (r.to_owned(), t.clone())));
    let org = app.docs.org();
    let mut units: Vec<(String, String)> = org.units().map(|u| (u.id.to_string(), u.name.clone())).collect();
    units.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(RoomPage {
        chrome: desk.chrome(Nav::Rooms),
        id: id.to_owned(),
        name: room.name,
        kind: super::rooms::kind_word(room.kind),
        members: room.members.len(),
        units,
        categories: sync_core::Category::ALL
            .iter()
            .map(|c| (c.as_str(), crate::web::labels::category(*c)))
            .collect(),
        messages,
        reply,
        next: page.next,
        errors,
    })
}

/// `GET /rooms/{id}?after=&reply=`.
pub async fn page(
    State(app): State<AppState>,
    desk: Desk,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    match build(&app, &desk, &id, raw.as_deref(), Vec::new()).await {
        Ok(p) => pages::render(&p),
        Err(e) => error_page(e),
    }
}

/// `POST /rooms/{id}/post`: a message with the `@` mentions its text names and an optional
/// reply-to.
pub async fn post(
    State(app): State<AppState>,
    desk: Desk,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        let text = form
            .get("text")
            .ok_or_else(|| ApiError::BadRequest("消息不能为空".into()))?;
        let mut body = json!({ "text": text, "mentions": mentions(text) });
        if let Some(r) = form.get("reply_to") {
            body["reply_to"] = json!(r);
        }
        let message = wire(body)?;
        crate::api::rooms::post(&app, desk.principal(), &id, message).await
    }
    .await;
    done(&app, &desk, &headers, &id, result.map(drop)).await
}

/// After a form on the room: back to the room, or the room again with the refusal in words.
async fn done(app: &AppState, desk: &Desk, headers: &HeaderMap, id: &str, result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => pages::see_other(headers, &format!("/rooms/{id}")),
        Err(e @ (ApiError::Refused(_) | ApiError::Forbidden(_) | ApiError::BadRequest(_) | ApiError::Conflict(_))) => {
            let status = e.status_code();
            match build(app, desk, id, None, refusal_words(&e)).await {
                Ok(p) => pages::render_status(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}

fn field<'a>(form: &'a Form, name: &str, what: &str) -> Result<&'a str, ApiError> {
    form.get(name)
        .ok_or_else(|| ApiError::BadRequest(format!("请填写{what}")))
}

/// `POST /rooms/{id}/pin`: pins (`on=1`) or unpins a message (moderators, says the API).
pub async fn pin(
    State(app): State<AppState>,
    desk: Desk,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        let entry = field(&form, "message", "消息")?;
        crate::api::rooms::set_pin(&app, desk.principal(), &id, entry, form.get("on") == Some("1")).await
    }
    .await;
    done(&app, &desk, &headers, &id, result.map(drop)).await
}

/// `POST /rooms/{id}/redact`: hides a message's content, keeping who, when and why.
pub async fn redact(
    State(app): State<AppState>,
    desk: Desk,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        let entry = field(&form, "message", "消息")?;
        let reason = wire::<sync_core::wire::Redact>(json!({ "reason": field(&form, "reason", "撤回原因")? }))?;
        crate::api::rooms::redact(&app, desk.principal(), &id, entry, &reason.reason).await
    }
    .await;
    done(&app, &desk, &headers, &id, result.map(drop)).await
}

/// `POST /rooms/{id}/raise`: raises a message as a petition, linked both ways; then the
/// petition.
pub async fn raise(
    State(app): State<AppState>,
    desk: Desk,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        let entry = field(&form, "message", "消息")?;
        let req = wire::<sync_core::wire::RaiseAsPetition>(json!({
            "id": super::new_doc_id(),
            "category": field(&form, "category", "类别")?,
            "title": field(&form, "title", "标题")?,
            "routed_to": field(&form, "routed_to", "交办单位")?,
        }))?;
        crate::api::rooms::raise(&app, desk.principal(), &id, entry, req).await
    }
    .await;
    match result {
        Ok(raised) => pages::see_other(&headers, &format!("/petitions/{}", raised.petition.id)),
        Err(e) => done(&app, &desk, &headers, &id, Err(e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_read_from_the_text() {
        assert_eq!(
            mentions("@officer-li 我家的户口本丢了，@all 谁见过？@officer-li"),
            vec![json!({ "user": "officer-li" }), json!("all")]
        );
        assert!(mentions("没有提到任何人 a@b").is_empty());
    }
}
