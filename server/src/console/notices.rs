//! Notices: the list of the reader's units' notices (`GET /api/notices`), each linking to its
//! receipt report, and the form that issues one (`POST /api/notices`) to an audience of
//! households, rooms and units. Who may issue for which unit, and who the audience reaches,
//! is the API's.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use sync_core::UserId;
use sync_core::notice::NoticeKind;

use super::{Chrome, Desk, Nav, error_page, new_doc_id, refusal_words, staff_units, unit_name, units_below, wire};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::csrf::Form;
use crate::web::{format, pages};

pub fn kind_word(k: NoticeKind) -> &'static str {
    match k {
        NoticeKind::AntiFraud => "反诈提醒",
        NoticeKind::Safety => "安全提示",
        NoticeKind::Legal => "法律宣传",
        NoticeKind::Reminder => "提醒",
        NoticeKind::General => "一般通知",
    }
}

struct Item {
    id: String,
    title: String,
    kind: &'static str,
    urgent: bool,
    unit: String,
    by: String,
    at: String,
}

/// What the compose form had, to show it again after a refusal.
#[derive(Default)]
struct Draft {
    kind: String,
    title: String,
    body: String,
    unit: String,
    units: Vec<String>,
    rooms: Vec<String>,
    households: String,
}

#[derive(Template)]
#[template(path = "console/notices.html")]
struct NoticesPage {
    chrome: Chrome,
    items: Vec<Item>,
    kinds: Vec<(&'static str, &'static str)>,
    /// Units the reader may issue for (their own staff units).
    issuers: Vec<(String, String)>,
    /// Units an audience may name (those at or below the reader's).
    targets: Vec<(String, String)>,
    rooms: Vec<(String, String)>,
    draft: Draft,
    errors: Vec<String>,
}

async fn build(app: &AppState, desk: &Desk, draft: Draft, errors: Vec<String>) -> Result<NoticesPage, ApiError> {
    let list = crate::api::notices::list(app, desk.principal(), wire(json!({ "limit": 50 }))?).await?;
    let mut items = Vec::with_capacity(list.items.len());
    for n in list.items {
        items.push(Item {
            id: n.id,
            title: n.title,
            kind: kind_word(n.kind),
            urgent: n.kind == NoticeKind::AntiFraud,
            unit: unit_name(app, &n.unit),
            by: name_of(app, &n.by).await,
            at: format::datetime(n.at),
        });
    }
    let rooms = crate::api::rooms::list_mine(app, desk.principal())
        .await?
        .items
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    Ok(NoticesPage {
        chrome: desk.chrome(Nav::Notices),
        items,
        kinds: NoticeKind::ALL.iter().map(|k| (k.as_str(), kind_word(*k))).collect(),
        issuers: staff_units(app, desk.principal()),
        targets: units_below(app, desk.principal()),
        rooms,
        draft,
        errors,
    })
}

async fn name_of(app: &AppState, id: &UserId) -> String {
    match app.storage.auth().get_user(id).await {
        Ok(Some(u)) => u.display_name,
        _ => id.to_string(),
    }
}

/// `GET /notices`.
pub async fn page(State(app): State<AppState>, desk: Desk) -> Response {
    match build(&app, &desk, Draft::default(), Vec::new()).await {
        Ok(p) => pages::render(&p),
        Err(e) => error_page(e),
    }
}

/// Household ids typed into the form: one per line, or separated by commas or spaces.
fn household_ids(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || ",，、;；".contains(c))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /notices`: issues the notice; then its receipt report, where receipts arrive live.
pub async fn issue(State(app): State<AppState>, desk: Desk, headers: HeaderMap, form: Form) -> Response {
    let draft = Draft {
        kind: form.get("kind").unwrap_or_default().to_owned(),
        title: form.get("title").unwrap_or_default().to_owned(),
        body: form.get("body").unwrap_or_default().to_owned(),
        unit: form.get("unit").unwrap_or_default().to_owned(),
        units: form.all("units").into_iter().map(str::to_owned).collect(),
        rooms: form.all("rooms").into_iter().map(str::to_owned).collect(),
        households: form.get("households").unwrap_or_default().to_owned(),
    };
    let id = new_doc_id();
    let result = async {
        let request = json!({
            "id": id,
            "kind": draft.kind,
            "title": draft.title,
            "body": draft.body,
            "unit": draft.unit,
            "audience": {
                "households": household_ids(&draft.households),
                "rooms": draft.rooms,
                "units": draft.units,
            },
        });
        let new = wire::<sync_core::wire::NewNotice>(request)?;
        crate::api::notices::issue(&app, desk.principal(), new).await
    }
    .await;
    match result {
        Ok((_, view)) => pages::see_other(&headers, &format!("/notices/{}", view.id)),
        Err(e @ (ApiError::Refused(_) | ApiError::Forbidden(_) | ApiError::BadRequest(_) | ApiError::NotFound(_))) => {
            let status = e.status_code();
            let words = match &e {
                ApiError::NotFound(m) => vec![format!("受众中有找不到的群聊或单位：{m}")],
                _ => refusal_words(&e),
            };
            match build(&app, &desk, draft, words).await {
                Ok(p) => pages::render_status(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn household_ids_are_split_on_any_separator() {
        assert_eq!(
            household_ids("hh-1\nhh-2, hh-3，hh-4  "),
            ["hh-1", "hh-2", "hh-3", "hh-4"]
        );
        assert!(household_ids(" \n ").is_empty());
    }
}
