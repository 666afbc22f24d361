//! Cross-site request forgery protection for every form: a random token in a SameSite=Strict
//! HttpOnly cookie that each form repeats in a hidden `_csrf` field (htmx requests may send it
//! as the `X-CSRF-Token` header instead).
//!
//! A page on another site cannot read the token, and with SameSite=Strict its forged post
//! does not even carry the cookie. The only way to read a form's fields is [`Form`], which
//! checks the token first, so no handler can forget to.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::state::AppState;

/// The form field carrying the token.
pub const FIELD: &str = "_csrf";
/// The header htmx requests may carry it in.
pub const HEADER: &str = "x-csrf-token";

/// The browser's CSRF token, put in the request's extensions by the session middleware.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// 32 random bytes, base64url.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Equal tokens, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The fields of a submitted form (`application/x-www-form-urlencoded`), in order, after the
/// CSRF check passed. Repeated names (checkboxes) keep every value.
#[derive(Clone, Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let expected = req.extensions().get::<CsrfToken>().map(|t| t.0.clone());
        let header = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        let sent = header.or_else(|| form.get(FIELD).map(str::to_owned));
        match (expected, sent) {
            (Some(expected), Some(sent)) if same(&expected, &sent) => Ok(form),
            _ => Err(forbidden()),
        }
    }
}

fn forbidden() -> Response {
    super::pages::message(
        StatusCode::FORBIDDEN,
        "页面已过期",
        "这个表单的安全校验没有通过（页面可能已打开太久，或来自其他网站）。请返回、刷新页面后重新提交。",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..42]));
    }

    #[test]
    fn repeated_fields_keep_every_value() {
        let f = Form::parse(b"assist=water&assist=town&note=+%E5%BF%AB+&empty=");
        assert_eq!(f.all("assist"), ["water", "town"]);
        assert_eq!(f.get("note"), Some("快"));
        assert_eq!(f.get("empty"), None);
    }
}
