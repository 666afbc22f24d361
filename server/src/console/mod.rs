//! The staff console at `/`: server-rendered pages for duty officers, station chiefs,
//! departments, the director and admins.
//!
//! **Architecture invariant:** the console is a client of the HTTP API's operations. Each page
//! calls the same operation its API route does, with the signed-in user's principal, and shows
//! what it answers; a form sends the same request body the JSON API takes. No rule lives here:
//! what may be done, and why not, comes back from sync-core through the API, so whatever the
//! console can do, the API can. Shared browser machinery (assets, cookies, CSRF, headers,
//! words) is in [`crate::web`].

mod admin;
mod dashboard;
mod directory;
mod inbox;
mod login;
mod notice;
mod notices;
mod petition;
mod queue;
mod room;
mod rooms;
mod roster;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use sync_core::org::Role;
use sync_core::{Principal, UnitId};

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::session::{Session, SignedIn};
use crate::web::{assets, labels, pages, session};

/// The console's routes, with the session middleware and the security headers.
pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(home))
        .route("/login", get(login::page).post(login::password))
        .route("/login/code", post(login::request_code))
        .route("/login/verify", post(login::verify_code))
        .route("/logout", post(login::logout))
        .route("/session", get(session_ping))
        .route("/queue", get(queue::page))
        .route("/petitions/{id}", get(petition::page))
        .route("/petitions/{id}/act", post(petition::act))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/kpi.csv", get(dashboard::csv))
        .route("/inbox", get(inbox::page))
        .route("/inbox/read", post(inbox::read))
        .route("/rooms", get(rooms::page).post(rooms::create))
        .route("/appeals", post(rooms::appeal))
        .route("/rooms/{id}", get(room::page))
        .route("/rooms/{id}/post", post(room::post))
        .route("/rooms/{id}/pin", post(room::pin))
        .route("/rooms/{id}/redact", post(room::redact))
        .route("/rooms/{id}/raise", post(room::raise))
        .route("/notices", get(notices::page).post(notices::issue))
        .route("/notices/{id}", get(notice::page))
        .route("/directory", get(directory::page))
        .route("/directory/{village}/households", post(directory::save))
        .route("/admin", get(admin::page))
        .route("/admin/units", post(admin::save_unit))
        .route("/admin/people", post(admin::save_person))
        .route("/roster", get(roster::page))
        .route("/roster/{unit}", post(roster::save))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(state, session::middleware));
    Router::new()
        .route("/assets/{*file}", get(assets::serve))
        .merge(pages)
        .layer(axum::middleware::from_fn(crate::web::headers))
}

async fn home(session: Option<SignedIn>) -> Redirect {
    match session {
        Some(_) => Redirect::to("/queue"),
        None => Redirect::to("/login"),
    }
}

/// `GET /session`: 204 while signed in (renewing the cookies if the access token ran out),
/// 401 otherwise. The live-update script calls it when its stream ends.
async fn session_ping(session: Option<SignedIn>) -> axum::http::StatusCode {
    match session {
        Some(_) => axum::http::StatusCode::NO_CONTENT,
        None => axum::http::StatusCode::UNAUTHORIZED,
    }
}

async fn fallback() -> Response {
    pages::not_found()
}

impl axum::extract::OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <SignedIn as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// Which part of the console a page belongs to, for the navigation bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    Queue,
    Inbox,
    Rooms,
    Notices,
    Directory,
    Roster,
    Dashboard,
    Admin,
}

/// The frame around every signed-in page: who is at the desk, the CSRF token every form
/// repeats, the navigation.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub user: String,
    pub csrf: String,
    pub active: Nav,
    /// The reader administers some unit (the 管理 link is shown; the API decides the rest).
    pub admin: bool,
}

impl Chrome {
    pub fn is(&self, nav: &str) -> bool {
        let name = match self.active {
            Nav::Queue => "queue",
            Nav::Inbox => "inbox",
            Nav::Rooms => "rooms",
            Nav::Notices => "notices",
            Nav::Directory => "directory",
            Nav::Roster => "roster",
            Nav::Dashboard => "dashboard",
            Nav::Admin => "admin",
        };
        name == nav
    }
}

/// A signed-in page request: the session and the browser's CSRF token.
pub struct Desk {
    pub session: Session,
    pub csrf: String,
}

impl FromRequestParts<AppState> for Desk {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let SignedIn(session) = SignedIn::from_request_parts(parts, state).await?;
        let csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        Ok(Desk { session, csrf })
    }
}

impl Desk {
    pub fn chrome(&self, active: Nav) -> Chrome {
        Chrome {
            user: self.session.display_name.clone(),
            csrf: self.csrf.clone(),
            active,
            admin: self.session.auth.principal.has_role(Role::Admin),
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.session.auth.principal
    }
}

/// Builds an API request body from the fields a form or query string gave, exactly as a JSON
/// client would send it, so the console cannot ask for anything the API would not take.
pub fn wire<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// A unit's name, or its id when the organisation does not know it.
pub fn unit_name(app: &AppState, unit: &UnitId) -> String {
    app.docs
        .org()
        .get(unit)
        .map_or_else(|| unit.to_string(), |u| u.name.clone())
}

/// The units the reader works for (staff memberships), for "acting for" choices.
pub fn staff_units(app: &AppState, who: &Principal) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = who
        .memberships
        .iter()
        .filter(|m| sync_core::access::RoleSet::HANDLERS.people().contains(&m.role))
        .map(|m| (m.unit.to_string(), unit_name(app, &m.unit)))
        .collect();
    out.dedup();
    out
}

/// Every unit at or below one the reader holds a staff, leader or admin role in, parents
/// first: the choices of a unit picker. The API decides what each choice may show.
pub fn units_below(app: &AppState, who: &Principal) -> Vec<(String, String)> {
    let org = app.docs.org();
    let mine: Vec<&UnitId> = who
        .memberships
        .iter()
        .filter(|m| m.role != Role::Resident)
        .map(|m| &m.unit)
        .collect();
    let mut units: Vec<(usize, String, String)> = org
        .units()
        .filter(|u| mine.iter().any(|m| org.is_within(&u.id, m)))
        .map(|u| (org.ancestors_or_self(&u.id).len(), u.id.to_string(), u.name.clone()))
        .collect();
    units.sort();
    units.into_iter().map(|(_, id, name)| (id, name)).collect()
}

/// A fresh document id for something the console creates (a notice, a room, a petition
/// raised from a message), as a client would mint one.
pub fn new_doc_id() -> String {
    sync_core::repo_protocol::DocumentId::from_bytes(rand::random()).to_string()
}

/// An API error as a page: the reader is told in words what happened.
pub fn error_page(e: ApiError) -> Response {
    use axum::http::StatusCode;
    match e {
        ApiError::NotFound(_) => pages::not_found(),
        ApiError::Forbidden(_) | ApiError::Refused(_) => {
            pages::message(StatusCode::FORBIDDEN, "无权操作", &refusal_words(&e).join(" "))
        }
        ApiError::SetAside { .. } => pages::message(StatusCode::CONFLICT, "无法办理", &refusal_words(&e).join(" ")),
        ApiError::BadRequest(m) => pages::message(StatusCode::BAD_REQUEST, "请求有误", &m),
        ApiError::Internal(detail) => {
            tracing::error!(error = %detail, "console page failed");
            pages::internal_error()
        }
        other => {
            let status = other.status_code();
            pages::message(status, "无法完成", &other.to_string())
        }
    }
}

/// An API error as sentences: each refused change by its rule in words, else the message.
pub fn refusal_words(e: &ApiError) -> Vec<String> {
    match e {
        ApiError::Refused(refusals) => refusals
            .iter()
            .map(|r| format!("{}（规则 {}：{}）", labels::rule(r.rule.as_str()), r.rule, r.detail))
            .collect(),
        ApiError::Forbidden(m) => vec![format!("您没有这项操作的权限：{m}")],
        // The workflow would set the action aside against the petition as it stands.
        ApiError::SetAside { rule, .. } => vec![format!("{}（规则 {rule}）", labels::rule(rule))],
        other => vec![other.to_string()],
    }
}
