//! The resident app at `/app/`: a small installable web app (PWA) for a cheap phone on a 2G
//! link, served by the same binary.
//!
//! **Architecture invariant:** the app is a client of the HTTP API and holds no rules. The
//! server sends three things only: the shell (one HTML page carrying the Chinese words for the
//! API's codes, from [`crate::web::labels`]), the service worker that keeps the shell for
//! visits without a network, and the web manifest. Everything else the app shows or does goes
//! through `/api/*` with the resident's bearer token, like any other client: deadlines and
//! their limits come from sync-core's clocks in the API's answers, and refusals come back with
//! their rule. The script (`assets/app/app.js`) is hand-written, with no framework and no
//! build step; offline actions wait in IndexedDB under client-generated ids and are sent once
//! (`Idempotency-Key`, the petition's own id).

use askama::Template;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::state::AppState;
use crate::web::{assets, labels, pages};

/// Where the app lives; also the service worker's scope.
pub const PATH: &str = "/app/";

/// The embedded files the shell loads, all kept by the service worker.
const SHELL_ASSETS: &[&str] = &["app/app.css", "app/app.js", "app/icon.svg"];

/// The service worker's code (its list of files to keep is prepended when served).
const SERVICE_WORKER: &str = include_str!("sw.js");

/// The app's routes, with the same security headers as the console.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(|| async { Redirect::permanent(PATH) }))
        .route(PATH, get(shell))
        .route("/app/sw.js", get(service_worker))
        .route("/app/manifest.webmanifest", get(manifest))
        .layer(axum::middleware::from_fn(crate::web::headers))
}

#[derive(Template)]
#[template(path = "app/shell.html")]
struct Shell {
    css: &'static str,
    js: &'static str,
    icon: &'static str,
    words: String,
}

/// `GET /app/`: the shell. It holds no personal data, so it may be kept (and the service worker
/// keeps it); `no-cache` makes an online browser ask whether it changed.
async fn shell() -> Response {
    let mut response = pages::render(&Shell {
        css: assets::url("app/app.css"),
        js: assets::url("app/app.js"),
        icon: assets::url("app/icon.svg"),
        words: words().to_string(),
    });
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The version of the shell: changes whenever an asset or the worker does, so a browser
/// installs the new worker, which keeps the new files and drops the old ones.
fn version() -> String {
    // FNV-1a over the hashed asset paths and the worker's code: stable across builds of the
    // same files, different when any of them changes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for name in SHELL_ASSETS {
        eat(assets::url(name).as_bytes());
    }
    eat(SERVICE_WORKER.as_bytes());
    eat(words().to_string().as_bytes());
    format!("{h:016x}")
}

/// `GET /app/sw.js`: the service worker, with the files it keeps. Revalidated on every
/// navigation by the browser (`no-cache`, answered 304 while unchanged).
async fn service_worker(headers: HeaderMap) -> Response {
    let version = version();
    let etag = format!("\"{version}\"");
    let mut response = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let files: Vec<&str> = std::iter::once(PATH)
            .chain(SHELL_ASSETS.iter().map(|n| assets::url(n)))
            .collect();
        let head = format!(
            "const VERSION = {};\nconst SHELL = {};\n",
            serde_json::Value::from(version.as_str()),
            serde_json::to_string(&files).unwrap_or_else(|_| "[]".into())
        );
        let mut r = (head + SERVICE_WORKER).into_response();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
        r
    };
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    response
}

/// `GET /app/manifest.webmanifest`: what a phone needs to install the app.
async fn manifest() -> Response {
    let body = serde_json::json!({
        "name": "连心 · 居民",
        "short_name": "连心",
        "lang": "zh-CN",
        "start_url": PATH,
        "scope": PATH,
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#a61b1b",
        "icons": [{ "src": assets::url("app/icon.svg"), "sizes": "any", "type": "image/svg+xml" }],
    });
    let mut r = body.to_string().into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/manifest+json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The Chinese words for the API's codes, for the script to show: the console's words
/// ([`labels`]), so both front ends say the same thing.
pub fn words() -> serde_json::Value {
    use serde_json::{Map, Value};
    use sync_core::clocks::ClockKind;
    use sync_core::petition::{EventKind, Status};
    use sync_core::{Category, Channel};
    fn table<T: Copy + serde::Serialize>(all: &[T], word: impl Fn(T) -> String) -> Value {
        let mut m = Map::new();
        for v in all {
            if let Ok(Value::String(code)) = serde_json::to_value(v) {
                m.insert(code, Value::from(word(*v)));
            }
        }
        Value::Object(m)
    }
    let mut rules = Map::new();
    for r in sync_core::policy::Rule::ALL {
        rules.insert(r.as_str().to_owned(), Value::from(labels::rule(r.as_str())));
    }
    for code in sync_core::petition::status::rules::ALL {
        rules.insert((*code).to_owned(), Value::from(labels::rule(code)));
    }
    let mut errors = Map::new();
    for code in [
        "bad_request",
        "payload_too_large",
        "timeout",
        "unauthenticated",
        "invalid_token",
        "token_expired",
        "token_revoked",
        "refresh_invalid",
        "refresh_reused",
        "forbidden",
        "conflict",
        "not_found",
        "rate_limited",
        "invalid_credentials",
        "account_disabled",
        "invalid_phone",
        "otp_invalid",
        "otp_attempts_exceeded",
        "otp_expired",
        "signup_closed",
        "internal",
    ] {
        if let Some(words) = labels::error(code) {
            errors.insert(code.to_owned(), Value::from(words));
        }
    }
    serde_json::json!({
        "error": errors,
        "status": table(Status::ALL, |s| labels::status(s).to_owned()),
        "channel": table(Channel::ALL, |c| labels::channel(c).to_owned()),
        "category": table(Category::ALL, |c| labels::category(c).to_owned()),
        "event": table(EventKind::ALL, |k| labels::event(k).to_owned()),
        "clock": table(ClockKind::ALL, |k| labels::clock(k).to_owned()),
        "rule": rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_cover_every_code_the_app_shows() {
        let w = words();
        for key in ["status", "channel", "category", "event", "clock", "rule", "error"] {
            assert!(w[key].as_object().is_some_and(|m| !m.is_empty()), "{key}");
        }
        assert_eq!(w["status"]["signed"], "已签收");
        assert_eq!(w["channel"]["chief_line"], "所长直通");
        assert_eq!(w["clock"]["reply"], "答复");
        assert!(w["error"]["not_found"].is_string());
    }

    #[test]
    fn the_version_follows_the_files() {
        assert_eq!(version(), version());
        assert_eq!(version().len(), 16);
    }
}
