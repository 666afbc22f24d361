//! The HTTP API: routes, middleware and handlers.

mod accept;
pub(crate) mod api;
mod auth_routes;
mod batch_ws;
mod directory;
mod extract;
pub(crate) mod inbox;
mod notices;
mod org;
mod payload;
mod rooms;
mod sync_ws;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use accept::{ConnectionLimits, serve};
pub(crate) use api::ApiQuery;
pub use extract::{ApiJson, Authenticated, bearer_token};
pub use payload::{HEAVY_WEIGHT, HeavyWork};

use crate::error::ApiError;
use crate::state::AppState;

/// Read buffer of one WebSocket connection. tungstenite zero-fills the whole
/// buffer before every read attempt and keeps it for the connection's life, so
/// its 128 KiB default means 128 KiB of resident memory per subscriber and a
/// 128 KiB memset each time a connection's task wakes to send a notification.
/// Frames larger than this still arrive, in several reads.
pub const WS_READ_BUFFER_BYTES: usize = 8 * 1024;

/// WebSocket close code for a message over the size limit (RFC 6455 "message too big").
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// The sentence for a WebSocket read error that is a message over the size
/// limit, or `None` for any other error.
pub(crate) fn too_large(e: &axum::Error) -> Option<String> {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    match std::error::Error::source(e)?.downcast_ref::<Error>()? {
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => Some(format!(
            "message of {size} bytes is larger than the limit of {max_size} bytes"
        )),
        _ => None,
    }
}

/// Reads what the peer still sends after the server closed, for a few
/// seconds, so the peer reads the close frame before the socket goes:
/// closing with unread data in the receive buffer makes the kernel answer
/// with a reset, which can discard the close frame on the peer's side.
pub(crate) async fn drain<S>(mut stream: S) -> Result<(), axum::Error>
where
    S: futures_util::Stream<Item = Result<axum::extract::ws::Message, axum::Error>> + Unpin,
{
    use futures_util::StreamExt;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    Ok(())
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let http = state.http.clone();
    let api = Router::new()
        .route("/auth/login", post(auth_routes::login))
        .route("/auth/otp/request", post(auth_routes::otp_request))
        .route("/auth/otp/verify", post(auth_routes::otp_verify))
        .route("/auth/refresh", post(auth_routes::refresh))
        .route("/auth/logout", post(auth_routes::logout))
        .route("/me", get(auth_routes::me))
        .route("/petitions", get(api::list_petitions).post(api::submit_petition))
        .route("/petitions/{id}", get(api::get_petition))
        .route("/petitions/{id}/actions", post(api::act_on_petition))
        .route("/board", get(api::board))
        .route("/rooms", get(rooms::list).post(rooms::create))
        .route("/rooms/{id}", get(rooms::get))
        .route(
            "/rooms/{id}/members/{user}",
            put(rooms::put_member).delete(rooms::delete_member),
        )
        .route(
            "/rooms/{id}/pins/{entry}",
            put(rooms::put_pin).delete(rooms::delete_pin),
        )
        .route("/rooms/{id}/tags/{tag}", put(rooms::put_tag).delete(rooms::delete_tag))
        .route("/rooms/{id}/messages", get(rooms::messages).post(rooms::post_message))
        .route("/rooms/{id}/messages/{entry}/redact", post(rooms::redact))
        .route("/rooms/{id}/messages/{entry}/petition", post(rooms::raise))
        .route("/appeals", post(rooms::appeal))
        .route("/appeals/{id}", get(rooms::get_appeal))
        .route("/appeals/{id}/resolve", post(rooms::resolve_appeal))
        .route("/inbox", get(inbox::inbox))
        .route("/inbox/ack", post(inbox::ack))
        .route("/inbox/stream", get(inbox::stream))
        .route("/units", get(org::units))
        .route("/clock-rules", get(org::clock_settings))
        .route("/admin/units/{id}", put(org::put_unit))
        .route("/admin/users/{id}", put(org::put_user))
        .route("/admin/import", post(org::import))
        .route("/admin/clock-rules", put(org::put_clock_settings))
        .route("/units/{id}/roster", get(inbox::get_roster).put(inbox::put_roster))
        .route("/notices", get(notices::list).post(notices::issue))
        .route("/notices/{id}", get(notices::get))
        .route("/notices/{id}/receipts", post(notices::mark))
        .route("/notices/{id}/report", get(notices::report))
        .route("/units/{id}/directory", get(directory::get))
        .route(
            "/units/{id}/directory/households/{household}",
            put(directory::put_household),
        )
        .route("/reports/coverage", get(directory::coverage))
        .route("/reports/kpi", get(directory::kpi))
        .route("/admin/outbox/dead", get(inbox::dead_letters))
        .fallback(not_found);
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/sync", get(sync_ws::sync_ws))
        .route("/batch", get(batch_ws::batch_ws))
        .nest("/api", api)
        .merge(crate::console::router(state.clone()))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(http.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout,
        ))
        .layer(axum::middleware::map_response(uniform_errors))
        .layer(TraceLayer::new_for_http().make_span_with(request_span));
    if http.cors_permissive {
        router.layer(CorsLayer::permissive())
    } else {
        router
    }
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Result<&'static str, ApiError> {
    state.storage.ping().await?;
    Ok("ok")
}

/// The span of one request: method and path only. The query string is left
/// out because WebSocket clients carry their access token there.
fn request_span(request: &axum::extract::Request) -> tracing::Span {
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
}

/// Gives the bare 413 and 408 answers of the tower-http limit and timeout
/// layers the same JSON body as every other error.
async fn uniform_errors(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !is_json => ApiError::PayloadTooLarge.into_response(),
        StatusCode::REQUEST_TIMEOUT if !is_json => ApiError::Timeout.into_response(),
        _ => response,
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}
