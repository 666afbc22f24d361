//! Sign-in and sign-out: the API's password and one-time-code flows, with the token pair kept
//! in the session cookies. A signed-in browser goes back to the page it was sent from.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::AuthError;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::csrf::{CsrfToken, Form};
use crate::web::session::{self, SignedIn};
use crate::web::{pages, safe_next};

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: Option<String>,
    /// Set once a code was sent: the verify form is shown for this phone.
    code_sent_to: Option<String>,
    login: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn page(
    session: Option<SignedIn>,
    axum::Extension(CsrfToken(csrf)): axum::Extension<CsrfToken>,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if session.is_some() {
        return Redirect::to(&next).into_response();
    }
    pages::render(&LoginPage {
        csrf,
        next,
        error: None,
        code_sent_to: None,
        login: String::new(),
    })
}

fn again(csrf: &CsrfToken, form: &Form, error: String, code_sent_to: Option<String>) -> Response {
    let status = if code_sent_to.is_some() && error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    pages::render_status(
        status,
        &LoginPage {
            csrf: csrf.0.clone(),
            next: safe_next(form.get("next")),
            error: (!error.is_empty()).then_some(error),
            code_sent_to,
            login: form.get("login").unwrap_or_default().to_owned(),
        },
    )
}

/// The sign-in failed: why, in words. Internal failures are logged and said generically.
fn words(e: AuthError) -> String {
    let api = ApiError::from(e);
    match &api {
        ApiError::Auth { code, .. } => match *code {
            "invalid_credentials" => "账号或密码不正确。".to_owned(),
            "account_disabled" => "这个账号已停用，请联系管理员。".to_owned(),
            "otp_invalid" => "验证码不正确，请重新输入。".to_owned(),
            "otp_expired" => "验证码已过期，请重新获取。".to_owned(),
            "otp_attempts_exceeded" => "验证码输错次数过多，请重新获取。".to_owned(),
            "invalid_phone" => "手机号码格式不正确。".to_owned(),
            "signup_closed" => "这个手机号码没有账号，请联系管理员开通。".to_owned(),
            "sms_unavailable" => "短信暂时发不出去，请稍后再试。".to_owned(),
            _ => api.to_string(),
        },
        ApiError::RateLimited { retry_after_secs, .. } => {
            format!(
                "尝试次数过多，请在 {} 后再试。",
                crate::web::format::duration(retry_after_secs * 1000)
            )
        }
        ApiError::Internal(detail) => {
            tracing::error!(error = %detail, "sign-in failed");
            "服务器出错了，请稍后再试。".to_owned()
        }
        other => other.to_string(),
    }
}

fn signed_in(headers: &HeaderMap, pair: &crate::auth::TokenPair, next: &str) -> Response {
    let mut r = Redirect::to(next).into_response();
    for c in session::sign_in_cookies(pair, session::is_https(headers)) {
        r.headers_mut().append(SET_COOKIE, c);
    }
    r
}

/// `POST /login`: login name and password.
pub async fn password(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
    form: Form,
) -> Response {
    let (Some(login), Some(password)) = (form.get("login"), form.get("password")) else {
        return again(&csrf, &form, "请输入账号和密码。".to_owned(), None);
    };
    match app.auth.login_password(login, password).await {
        Ok(pair) => signed_in(&headers, &pair, &safe_next(form.get("next"))),
        Err(e) => again(&csrf, &form, words(e), None),
    }
}

/// `POST /login/code`: sends a one-time code to a phone.
pub async fn request_code(
    State(app): State<AppState>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
    form: Form,
) -> Response {
    let Some(phone) = form.get("phone") else {
        return again(&csrf, &form, "请输入手机号码。".to_owned(), None);
    };
    match app.auth.request_otp(phone).await {
        Ok(_) => again(&csrf, &form, String::new(), Some(phone.to_owned())),
        Err(e) => again(&csrf, &form, words(e), None),
    }
}

/// `POST /login/verify`: the phone and the code it received.
pub async fn verify_code(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
    form: Form,
) -> Response {
    let (Some(phone), Some(code)) = (form.get("phone"), form.get("code")) else {
        return again(
            &csrf,
            &form,
            "请输入验证码。".to_owned(),
            form.get("phone").map(str::to_owned),
        );
    };
    match app.auth.verify_otp(phone, code).await {
        Ok(pair) => signed_in(&headers, &pair, &safe_next(form.get("next"))),
        Err(e) => again(&csrf, &form, words(e), Some(phone.to_owned())),
    }
}

/// `POST /logout`: ends this session on the server and clears the cookies. Works without a
/// session too (it only clears the cookies then).
pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    session: Option<SignedIn>,
    _form: Form,
) -> Response {
    if let Some(SignedIn(s)) = session
        && let Err(e) = app.auth.logout(&s.auth.claims, false).await
    {
        tracing::warn!(error = %e, "sign-out could not end the session");
    }
    let mut r = Redirect::to("/login").into_response();
    for c in session::sign_out_cookies(session::is_https(&headers)) {
        r.headers_mut().append(SET_COOKIE, c);
    }
    r
}
