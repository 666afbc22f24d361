//! Rooms: the reader's rooms (`GET /api/rooms`), a form to open one (`POST /api/rooms`) and
//! the cross-room appeal: one message posted to several rooms at once (`POST /api/appeals`),
//! then followed room by room (`GET /api/appeals/{id}`). Who may open a room for a unit and
//! post where is the API's.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use sync_core::room::RoomKind;

use super::{Chrome, Desk, Nav, error_page, new_doc_id, refusal_words, unit_name, units_below, wire};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::pages;

pub fn kind_word(k: RoomKind) -> &'static str {
    match k {
        RoomKind::OfficerGroup => "一村一警群",
        RoomKind::VillageRoom => "村群议事厅",
        RoomKind::HouseholdLine => "户户通专线",
    }
}

struct Item {
    id: String,
    name: String,
    kind: &'static str,
    unit: String,
}

struct Sent {
    room: String,
    href: String,
    resolved: bool,
}

#[derive(Template)]
#[template(path = "console/rooms.html")]
struct RoomsPage {
    chrome: Chrome,
    items: Vec<Item>,
    kinds: Vec<(&'static str, &'static str)>,
    units: Vec<(String, String)>,
    /// An appeal just sent (`?appeal=`), room by room.
    appeal: Vec<Sent>,
    errors: Vec<String>,
}

async fn build(app: &AppState, desk: &Desk, appeal: Option<&str>, errors: Vec<String>) -> Result<RoomsPage, ApiError> {
    let rooms = crate::api::rooms::list_mine(app, desk.principal()).await?.items;
    let name_of = |id: &str| {
        rooms
            .iter()
            .find(|r| r.id == id)
            .map_or_else(|| id.to_owned(), |r| r.name.clone())
    };
    let appeal = match appeal {
        Some(a) => crate::api::rooms::get_appeal(app, desk.principal(), a)
            .await?
            .posts
            .into_iter()
            .map(|p| Sent {
                room: name_of(&p.room),
                href: format!("/rooms/{}#m-{}", p.room, p.message.id),
                resolved: p.resolution.is_some(),
            })
            .collect(),
        None => Vec::new(),
    };
    let items = rooms
        .iter()
        .map(|r| Item {
            id: r.id.clone(),
            name: r.name.clone(),
            kind: kind_word(r.kind),
            unit: unit_name(app, &r.unit),
        })
        .collect();
    Ok(RoomsPage {
        chrome: desk.chrome(Nav::Rooms),
        items,
        kinds: [RoomKind::OfficerGroup, RoomKind::VillageRoom]
            .iter()
            .map(|k| (k.as_str(), kind_word(*k)))
            .collect(),
        units: units_below(app, desk.principal()),
        appeal,
        errors,
    })
}

/// `GET /rooms?appeal=`.
pub async fn page(State(app): State<AppState>, desk: Desk, RawQuery(raw): RawQuery) -> Response {
    let q = Form::parse(raw.unwrap_or_default().as_bytes());
    match build(&app, &desk, q.get("appeal"), Vec::new()).await {
        Ok(p) => pages::render(&p),
        Err(e) => error_page(e),
    }
}

/// A refusal shown on the rooms page, or the error page for anything else.
async fn refused(app: &AppState, desk: &Desk, e: ApiError) -> Response {
    match e {
        e @ (ApiError::Refused(_) | ApiError::Forbidden(_) | ApiError::BadRequest(_) | ApiError::NotFound(_)) => {
            let status = e.status_code();
            let words = match &e {
                ApiError::NotFound(m) => vec![format!("找不到：{m}")],
                _ => refusal_words(&e),
            };
            match build(app, desk, None, words).await {
                Ok(p) => pages::render_status(status, &p),
                Err(e) => error_page(e),
            }
        }
        e => error_page(e),
    }
}

/// Account ids typed into a form: one per line, or separated by commas or spaces.
fn accounts(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || ",，、;；".contains(c))
        .map(|s| s.trim_start_matches(['@', '＠']))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /rooms`: opens a room with the reader as owner; then the room.
pub async fn create(State(app): State<AppState>, desk: Desk, headers: HeaderMap, form: Form) -> Response {
    let result = async {
        let members: Vec<serde_json::Value> = accounts(form.get("members").unwrap_or_default())
            .into_iter()
            .map(|u| json!({ "user": u, "role": "member" }))
            .collect();
        let new = wire::<sync_core::wire::NewRoom>(json!({
            "id": new_doc_id(),
            "kind": form.get("kind").unwrap_or_default(),
            "name": form.get("name").unwrap_or_default(),
            "unit": form.get("unit").unwrap_or_default(),
            "members": members,
        }))?;
        crate::api::rooms::create(&app, desk.principal(), new).await
    }
    .await;
    match result {
        Ok((_, room)) => pages::see_other(&headers, &format!("/rooms/{}", room.id)),
        Err(e) => refused(&app, &desk, e).await,
    }
}

/// `POST /appeals`: one message to every room ticked, with the `@` mentions its text names.
pub async fn appeal(State(app): State<AppState>, desk: Desk, headers: HeaderMap, form: Form) -> Response {
    let id = format!("appeal-{}", new_doc_id());
    let result = async {
        let text = form.get("text").unwrap_or_default();
        let new = wire::<sync_core::wire::NewAppeal>(json!({
            "id": id,
            "text": text,
            "rooms": form.all("rooms"),
            "mentions": super::room::mentions(text),
        }))?;
        crate::api::rooms::appeal(&app, desk.principal(), new).await
    }
    .await;
    match result {
        Ok(view) => pages::see_other(&headers, &format!("/rooms?appeal={}", view.id)),
        Err(e) => refused(&app, &desk, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_accounts_are_read_from_the_text() {
        assert_eq!(
            accounts("@officer-li\nofficer-wang, res-zhang"),
            ["officer-li", "officer-wang", "res-zhang"]
        );
    }
}
