//! The HTTP API: routes, middleware and handlers.

mod accept;
pub(crate) mod api;
mod auth_routes;
mod batch_ws;
mod directory;
mod extract;
pub(crate) mod inbox;
mod notices;
pub mod openapi;
pub(crate) mod org;
mod payload;
mod rooms;
mod sync_ws;

use axum::Router;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use accept::{ConnectionLimits, serve};
pub(crate) use api::ApiQuery;
pub use extract::{ApiJson, Authenticated, ClientKey, bearer_token};
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

/// Every route of the API, `(method, path, handler)`: the router is built
/// from this table alone, and the OpenAPI document (`openapi.rs`) must
/// describe each entry (a test checks both ways).
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    use Method as M;
    vec![
        (M::GET, "/healthz", get(healthz)),
        (M::GET, "/sync", get(sync_ws::sync_ws)),
        (M::GET, "/batch", get(batch_ws::batch_ws)),
        (
            M::POST,
            "/batch",
            post(batch_ws::batch_post).layer(axum::extract::DefaultBodyLimit::max(sync_core::batch::MAX_FRAME_BYTES)),
        ),
        (M::GET, "/api/openapi.json", get(openapi_json)),
        (M::POST, "/api/auth/login", post(auth_routes::login)),
        (M::POST, "/api/auth/otp/request", post(auth_routes::otp_request)),
        (M::POST, "/api/auth/otp/verify", post(auth_routes::otp_verify)),
        (M::POST, "/api/auth/refresh", post(auth_routes::refresh)),
        (M::POST, "/api/auth/logout", post(auth_routes::logout)),
        (M::GET, "/api/me", get(auth_routes::me)),
        (M::GET, "/api/auth/keys", get(auth_routes::keys)),
        (M::GET, "/api/petitions", get(api::list_petitions)),
        (M::POST, "/api/petitions", post(api::submit_petition)),
        (M::GET, "/api/petitions/{id}", get(api::get_petition)),
        (M::POST, "/api/petitions/{id}/actions", post(api::act_on_petition)),
        (M::GET, "/api/board", get(api::board)),
        (M::GET, "/api/rooms", get(rooms::list)),
        (M::POST, "/api/rooms", post(rooms::create)),
        (M::GET, "/api/rooms/{id}", get(rooms::get)),
        (M::PUT, "/api/rooms/{id}/members/{user}", put(rooms::put_member)),
        (
            M::DELETE,
            "/api/rooms/{id}/members/{user}",
            delete(rooms::delete_member),
        ),
        (M::PUT, "/api/rooms/{id}/pins/{entry}", put(rooms::put_pin)),
        (M::DELETE, "/api/rooms/{id}/pins/{entry}", delete(rooms::delete_pin)),
        (M::PUT, "/api/rooms/{id}/tags/{tag}", put(rooms::put_tag)),
        (M::DELETE, "/api/rooms/{id}/tags/{tag}", delete(rooms::delete_tag)),
        (M::GET, "/api/rooms/{id}/messages", get(rooms::messages)),
        (M::POST, "/api/rooms/{id}/messages", post(rooms::post_message)),
        (M::POST, "/api/rooms/{id}/messages/{entry}/redact", post(rooms::redact)),
        (M::POST, "/api/rooms/{id}/messages/{entry}/petition", post(rooms::raise)),
        (M::POST, "/api/appeals", post(rooms::appeal)),
        (M::GET, "/api/appeals/{id}", get(rooms::get_appeal)),
        (M::POST, "/api/appeals/{id}/resolve", post(rooms::resolve_appeal)),
        (M::GET, "/api/inbox", get(inbox::inbox)),
        (M::POST, "/api/inbox/ack", post(inbox::ack)),
        (M::GET, "/api/inbox/stream", get(inbox::stream)),
        (M::GET, "/api/units", get(org::units)),
        (M::GET, "/api/clock-rules", get(org::clock_settings)),
        (M::GET, "/api/station/directory", get(org::station_directory)),
        (M::PUT, "/api/station/rosters", put(org::put_station_rosters)),
        (M::PUT, "/api/station/keys", put(org::put_station_keys)),
        (M::PUT, "/api/admin/units/{id}", put(org::put_unit)),
        (M::GET, "/api/admin/users", get(org::users)),
        (M::PUT, "/api/admin/users/{id}", put(org::put_user)),
        (M::POST, "/api/admin/import", post(org::import)),
        (M::PUT, "/api/admin/clock-rules", put(org::put_clock_settings)),
        (M::GET, "/api/units/{id}/roster", get(inbox::get_roster)),
        (M::PUT, "/api/units/{id}/roster", put(inbox::put_roster)),
        (M::GET, "/api/units/{id}/directory", get(directory::get)),
        (
            M::PUT,
            "/api/units/{id}/directory/households/{household}",
            put(directory::put_household),
        ),
        (M::GET, "/api/reports/coverage", get(directory::coverage)),
        (M::GET, "/api/reports/kpi", get(directory::kpi)),
        (M::GET, "/api/notices", get(notices::list)),
        (M::POST, "/api/notices", post(notices::issue)),
        (M::GET, "/api/notices/{id}", get(notices::get)),
        (M::POST, "/api/notices/{id}/receipts", post(notices::mark)),
        (M::GET, "/api/notices/{id}/report", get(notices::report)),
        (M::GET, "/api/admin/outbox/dead", get(inbox::dead_letters)),
    ]
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let http = state.http.clone();
    let mut api = Router::new();
    let mut top = Router::new();
    for (_, path, handler) in routes() {
        // Routes of one path with different methods merge into one.
        match path.strip_prefix("/api") {
            Some(rest) => api = api.route(rest, handler),
            None => top = top.route(path, handler),
        }
    }
    let router = top
        .nest(
            "/api",
            api.fallback(not_found)
                .layer(axum::middleware::from_fn(crate::web::gzip_json)),
        )
        .merge(crate::app::router())
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

/// `GET /api/openapi.json`.
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(openapi::document())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}
