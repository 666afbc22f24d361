//! Browser sessions in cookies: the token pair of the API's own sign-in, kept in HttpOnly,
//! SameSite cookies, refreshed when the access token runs out.
//!
//! A page request carries `lx_at` (the access token) and `lx_rt` (the refresh token). The
//! middleware authenticates the access token exactly as the API's `Authenticated` does; when it
//! has expired it spends the refresh token (the API's rotation) and sets the new pair on the
//! response. A browser sends several requests at once (a page, its live stream, a list
//! refresh), so two of them may present the same refresh token: the API serves a token reused
//! within its grace period (`AuthSettings::refresh_reuse_grace_ms`, a minute) instead of
//! treating it as theft, on every node, so the console needs no bookkeeping of its own.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use sync_core::UserId;

use crate::auth::{AuthError, TokenPair};
use crate::http::Authenticated;
use crate::state::AppState;

/// The access token's cookie.
pub const ACCESS_COOKIE: &str = "lx_at";
/// The refresh token's cookie.
pub const REFRESH_COOKIE: &str = "lx_rt";
/// The CSRF token's cookie (see [`super::csrf`]).
pub const CSRF_COOKIE: &str = "lx_csrf";

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, path `/`, SameSite as given, `Secure` when the browser
/// reached us over HTTPS; no `Max-Age`, so closing the browser ends the session (duty desks
/// are shared). An empty value clears the cookie.
pub fn set_cookie(name: &str, value: &str, same_site: &str, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if value.is_empty() {
        c.push_str("; Max-Age=0");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are base64url or JWTs")
}

/// The request came over HTTPS (a TLS-terminating proxy says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The signed-in user of a page request, put in the request's extensions by [`middleware`].
#[derive(Clone, Debug)]
pub struct Session {
    pub auth: Authenticated,
    pub display_name: String,
}

/// What [`middleware`] found: a session, or none (signed out, expired, revoked).
#[derive(Clone, Debug)]
pub struct MaybeSession(pub Option<Session>);

/// Cookies the response must set, decided while reading the request.
#[derive(Default)]
struct CookieUpdates(Vec<HeaderValue>);

/// Authenticates the session cookies, refreshing the pair when the access token expired, and
/// issues the CSRF cookie to a browser that has none.
pub async fn middleware(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let secure = is_https(req.headers());
    let mut updates = CookieUpdates::default();
    let session = match load(&app, req.headers(), secure, &mut updates).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the session");
            return super::pages::internal_error();
        }
    };
    let csrf = match cookie(req.headers(), CSRF_COOKIE) {
        Some(t) => t,
        None => {
            let t = super::csrf::new_token();
            updates.0.push(set_cookie(CSRF_COOKIE, &t, "Strict", secure));
            t
        }
    };
    req.extensions_mut().insert(super::csrf::CsrfToken(csrf));
    req.extensions_mut().insert(MaybeSession(session));
    let mut response = next.run(req).await;
    for c in updates.0 {
        response.headers_mut().append(SET_COOKIE, c);
    }
    response
}

async fn load(
    app: &AppState,
    headers: &HeaderMap,
    secure: bool,
    updates: &mut CookieUpdates,
) -> Result<Option<Session>, AuthError> {
    if let Some(token) = cookie(headers, ACCESS_COOKIE) {
        match authenticate(app, &token).await {
            Ok(s) => return Ok(Some(s)),
            Err(AuthError::Storage(e)) => return Err(AuthError::Storage(e)),
            Err(_) => {}
        }
    }
    let Some(refresh) = cookie(headers, REFRESH_COOKIE) else {
        return Ok(None);
    };
    match app.auth.refresh(&refresh).await {
        Ok(pair) => {
            let session = authenticate(app, &pair.access_token).await?;
            set_pair(updates, &pair, secure);
            Ok(Some(session))
        }
        Err(AuthError::Storage(e)) => Err(AuthError::Storage(e)),
        Err(e) => {
            tracing::debug!(error = %e, "browser session ended");
            updates.0.push(set_cookie(ACCESS_COOKIE, "", "Lax", secure));
            updates.0.push(set_cookie(REFRESH_COOKIE, "", "Lax", secure));
            Ok(None)
        }
    }
}

fn set_pair(updates: &mut CookieUpdates, pair: &TokenPair, secure: bool) {
    updates
        .0
        .push(set_cookie(ACCESS_COOKIE, &pair.access_token, "Lax", secure));
    updates
        .0
        .push(set_cookie(REFRESH_COOKIE, &pair.refresh_token, "Lax", secure));
}

/// The cookies a successful sign-in sets: the new pair and a fresh CSRF token, so a token
/// planted before sign-in is worth nothing after it.
pub fn sign_in_cookies(pair: &TokenPair, secure: bool) -> Vec<HeaderValue> {
    let mut updates = CookieUpdates::default();
    set_pair(&mut updates, pair, secure);
    updates
        .0
        .push(set_cookie(CSRF_COOKIE, &super::csrf::new_token(), "Strict", secure));
    updates.0
}

/// The cookies sign-out sets: all cleared.
pub fn sign_out_cookies(secure: bool) -> Vec<HeaderValue> {
    vec![
        set_cookie(ACCESS_COOKIE, "", "Lax", secure),
        set_cookie(REFRESH_COOKIE, "", "Lax", secure),
        set_cookie(CSRF_COOKIE, "", "Strict", secure),
    ]
}

async fn authenticate(app: &AppState, token: &str) -> Result<Session, AuthError> {
    let claims = app.auth.authenticate(token).await?;
    let user = UserId::new(claims.sub.clone()).map_err(|_| AuthError::InvalidToken)?;
    let principal = app.auth.principal(&user).await.map_err(|e| match e {
        AuthError::UnknownUser(_) => AuthError::InvalidToken,
        other => other,
    })?;
    let display_name = app
        .storage
        .auth()
        .get_user(&user)
        .await?
        .map_or_else(|| user.to_string(), |u| u.display_name);
    Ok(Session {
        auth: Authenticated {
            user,
            claims,
            principal,
        },
        display_name,
    })
}

/// A page that needs a signed-in user. Without one, the browser goes to the sign-in page,
/// which brings it back here afterwards.
#[derive(Clone, Debug)]
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        match parts.extensions.get::<MaybeSession>() {
            Some(MaybeSession(Some(s))) => Ok(SignedIn(s.clone())),
            _ => Err(to_sign_in(parts)),
        }
    }
}

/// Where a request without a session goes: the sign-in page, remembering the page (for a form
/// post, the page the form was on).
fn to_sign_in(parts: &Parts) -> Response {
    let here = if parts.method == Method::GET {
        parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned()
    } else {
        super::same_origin_referer(&parts.headers).unwrap_or_else(|| "/".to_owned())
    };
    let target = format!("/login?next={}", super::encode_query(&here));
    if parts.headers.contains_key("hx-request") {
        // htmx would swap the sign-in page into a fragment; send the whole window there.
        let mut r = axum::http::StatusCode::NO_CONTENT.into_response();
        r.headers_mut()
            .insert("hx-redirect", HeaderValue::from_str(&target).expect("encoded"));
        return r;
    }
    Redirect::to(&target).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; lx_at=tok"));
        h.append(COOKIE, HeaderValue::from_static("lx_rt=r"));
        assert_eq!(cookie(&h, ACCESS_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, REFRESH_COOKIE).as_deref(), Some("r"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn session_cookies_are_http_only_and_same_site() {
        let c = set_cookie(ACCESS_COOKIE, "t", "Lax", true);
        let c = c.to_str().unwrap();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"),
            "{c}"
        );
        assert!(!c.contains("Max-Age"), "{c}");
        assert!(
            set_cookie(ACCESS_COOKIE, "", "Lax", false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }
}
