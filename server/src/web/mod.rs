//! What the browser front ends share: embedded assets, sessions in cookies, CSRF protection,
//! security headers, page rendering and the Chinese words for the API's codes.
//!
//! The staff console (`crate::console`) is built on this, and the resident app will be too.
//! Pages are clients of the HTTP API's operations: they hold no rules of their own.

pub mod assets;
pub mod chart;
pub mod csrf;
pub mod format;
pub mod labels;
pub mod pages;
pub mod session;

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HOST, ORIGIN, REFERER, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// Everything a page loads comes from this server: no inline script or style, no other origin.
/// `connect-src 'self'` covers htmx's requests, the resident app's API calls and the live
/// stream; `manifest-src` and `worker-src` the resident app's manifest and service worker.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; manifest-src 'self'; worker-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Security headers on every page, and a refusal of any state-changing request that says it
/// comes from another site (the CSRF token is checked again by [`csrf::Form`]).
pub async fn headers(req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) && cross_site(req.headers()) {
        return pages::message(
            StatusCode::FORBIDDEN,
            "请求被拒绝",
            "这个请求来自其他网站，为了您的账号安全没有执行。",
        );
    }
    let is_asset = req.uri().path().starts_with("/assets/");
    let gzip_ok = assets::Encoding::negotiate(req.headers()) != assets::Encoding::Identity;
    let mut response = next.run(req).await;
    if gzip_ok {
        response = gzip_page(response).await;
    }
    let h = response.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !is_asset && !h.contains_key(CACHE_CONTROL) {
        // Pages show personal data: no shared or back-button caches keep them. (The resident
        // app's shell, which holds none, says its own.)
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Pages are rendered whole, so they are compressed whole: gzip (fast at level 6, and every
/// browser takes it), leaving alone anything already encoded and anything not HTML (the
/// assets come precompressed; the live stream must not be buffered).
async fn gzip_page(response: Response) -> Response {
    gzip_whole(response, "text/html").await
}

/// The API's JSON answers, gzipped when the client takes gzip: a page of petitions is a few
/// kilobytes of repetitive JSON that a 2G link carries in a fifth of the time compressed.
/// Anything else (the live stream, WebSocket upgrades, already encoded bodies) is left alone.
pub async fn gzip_json(req: Request, next: Next) -> Response {
    let gzip_ok = assets::Encoding::negotiate(req.headers()) != assets::Encoding::Identity;
    let response = next.run(req).await;
    if gzip_ok {
        gzip_whole(response, "application/json").await
    } else {
        response
    }
}

/// Gzips a whole response body whose content type starts with `kind`.
async fn gzip_whole(response: Response, kind: &str) -> Response {
    use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, VARY};
    use std::io::Write;
    let matches = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(kind.as_bytes()));
    if !matches || response.headers().contains_key(CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return pages::internal_error();
    };
    let mut z = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::new(6));
    if z.write_all(&bytes).is_err() {
        return pages::internal_error();
    }
    let Ok(zipped) = z.finish() else {
        return pages::internal_error();
    };
    parts.headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(zipped))
}

/// The browser says the request comes from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` whose host is not ours.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin == "null" || origin.split_once("://").is_none_or(|(_, h)| h != host)
}

/// The path and query of a same-origin `Referer`, for returning to the page a form was on.
pub fn same_origin_referer(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(REFERER)?.to_str().ok()?;
    let host = headers.get(HOST)?.to_str().ok()?;
    let (_, rest) = referer.split_once("://")?;
    let path = rest.strip_prefix(host)?;
    path.starts_with('/').then(|| path.to_owned())
}

/// Percent-encodes a value for a query string.
pub fn encode_query(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A `next` parameter that is safe to redirect to: a path on this site, never another host.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next(Some("/petitions/x?y=1")), "/petitions/x?y=1");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "queue"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8470"));
        assert!(!cross_site(&h));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8470"));
        assert!(!cross_site(&h));
        h.insert(ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(cross_site(&h));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8470"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }
}
