//! Rendering pages: askama templates (checked when the crate compiles) to responses, and the
//! plain message pages every front end shares (not found, refused, failed).

use askama::Template;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

/// A rendered page, or a logged 500 if the template fails (it cannot fail on well-typed data
/// short of a formatting error in a value).
pub fn render(template: &impl Template) -> Response {
    render_status(StatusCode::OK, template)
}

pub fn render_status(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            internal_error()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
}

/// A page with a title and a sentence, for errors outside any signed-in layout.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    match (MessagePage { title, text }).render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => {
            let mut r = (status, text.to_owned()).into_response();
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            r
        }
    }
}

pub fn internal_error() -> Response {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "服务器出错了",
        "服务器处理这个请求时出错，已记录在日志中。请稍后重试；已经保存的内容不会丢失。",
    )
}

pub fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "找不到页面",
        "这个页面不存在，或者您没有查看它的权限。",
    )
}

/// After a form post: back to `target` (303, so a reload does not post again). An htmx
/// request gets `HX-Location`, which fetches `target` in place and puts it in the history.
pub fn see_other(request: &HeaderMap, target: &str) -> Response {
    if request.contains_key("hx-request") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(target) {
            r.headers_mut().insert("hx-location", v);
        }
        return r;
    }
    Redirect::to(target).into_response()
}
