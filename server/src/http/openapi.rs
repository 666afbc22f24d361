//! The OpenAPI 3.1 document at `/api/openapi.json`, generated from the code
//! (utoipa): one path item per route of [`super::routes`], each with its
//! request and response types from `sync_core::wire` and its error answers
//! (`ErrorBody`). A test fails when a route is missing here.

#![allow(dead_code)]

use sync_core::kpi::KpiReport;
use sync_core::notify::Roster;
use sync_core::petition::PetitionAction;
use sync_core::room::MessageView;
use sync_core::wire::*;
use utoipa::{OpenApi, ToSchema};

// The auth bodies: these live in `crate::auth`, shown here as the wire forms.

/// `POST /api/auth/login`.
#[derive(ToSchema)]
struct LoginBody {
    login: String,
    password: String,
}

/// `POST /api/auth/otp/request`.
#[derive(ToSchema)]
struct OtpRequestBody {
    phone: String,
}

/// `POST /api/auth/otp/request` answer (202).
#[derive(ToSchema)]
struct OtpSentBody {
    sent: bool,
    /// Seconds the code stays valid.
    expires_in: i64,
}

/// `POST /api/auth/otp/verify`.
#[derive(ToSchema)]
struct OtpVerifyBody {
    phone: String,
    code: String,
}

/// `POST /api/auth/refresh`.
#[derive(ToSchema)]
struct RefreshBody {
    refresh_token: String,
}

/// `POST /api/auth/logout` (optional body).
#[derive(ToSchema)]
struct LogoutBody {
    /// End every session of the user.
    all: Option<bool>,
}

/// The signed-in user a token pair names.
#[derive(ToSchema)]
struct TokenUser {
    id: String,
    display_name: String,
    kind: AccountKind,
}

/// A push or text message the gateways never accepted.
#[derive(ToSchema)]
struct DeadLetter {
    id: i64,
    inbox_seq: i64,
    key: String,
    user_id: String,
    /// `push` or `sms`.
    channel: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
    done_at: Option<i64>,
}

/// `GET /api/admin/outbox/dead`.
#[derive(ToSchema)]
struct DeadLetterPage {
    items: Vec<DeadLetter>,
}

/// A token pair.
#[derive(ToSchema)]
struct TokenPairBody {
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: i64,
    refresh_token: String,
    user: TokenUser,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    summary = "A database round trip: `ok`",
    responses(
        (status = 200, description = "ok", body = String),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn healthz() {}

#[utoipa::path(
    get,
    path = "/sync",
    tag = "sync",
    summary = "WebSocket, automerge-repo v1 (`?token=`, `&inbox_after=`)",
    params(("token" = Option<String>, Query)),
    responses(
        (status = 101, description = "switching to WebSocket"),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn sync() {}

#[utoipa::path(
    get,
    path = "/batch",
    tag = "sync",
    summary = "WebSocket, the batched sync extension (`?token=`)",
    params(("token" = Option<String>, Query)),
    responses(
        (status = 101, description = "switching to WebSocket"),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn batch() {}

#[utoipa::path(
    post,
    path = "/batch",
    tag = "sync",
    summary = "The batched sync exchange as one request, where WebSocket upgrades fail",
    description = "The body is the client's batch frames (push parts, an `iack`), each prefixed by its length as 4 bytes big-endian; the answer is the server's frames (acks, the pull) in the same form. Protocol 2 carries the caller's inbox in the exchange. See `sync_core::batch`.",
    request_body(content = Vec<u8>, content_type = "application/x-lianxin-batch"),
    responses(
        (status = 200, description = "the server's frames", content_type = "application/x-lianxin-batch", body = Vec<u8>),
        (status = 400, description = "a frame did not decode or speaks an unsupported version: the frames so far and an `err` frame", content_type = "application/x-lianxin-batch", body = Vec<u8>),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed: the frames so far and an `err` frame", content_type = "application/x-lianxin-batch", body = Vec<u8>)
    )
)]
fn batch_post() {}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "system",
    summary = "This document",
    responses(
        (status = 200, description = "ok", body = String),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn openapi_json() {}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    summary = "Sign in with a login name and password",
    request_body = LoginBody,
    responses(
        (status = 200, description = "ok", body = TokenPairBody),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 429, description = "rate-limited", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn login() {}

#[utoipa::path(
    post,
    path = "/api/auth/otp/request",
    tag = "auth",
    summary = "Send a one-time code to a phone",
    request_body = OtpRequestBody,
    responses(
        (status = 200, description = "ok", body = OtpSentBody),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 429, description = "rate-limited", body = ErrorBody),
        (status = 502, description = "the SMS gateway failed", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn otp_request() {}

#[utoipa::path(
    post,
    path = "/api/auth/otp/verify",
    tag = "auth",
    summary = "Sign in with a phone and its one-time code",
    request_body = OtpVerifyBody,
    responses(
        (status = 200, description = "ok", body = TokenPairBody),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn otp_verify() {}

#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    summary = "Exchange a refresh token for a new pair",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "ok", body = TokenPairBody),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn refresh() {}

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    summary = "End this session, or all of the user's (`{all: true}`)",
    request_body = LogoutBody,
    responses(
        (status = 204, description = "done"),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn logout() {}

#[utoipa::path(
    get,
    path = "/api/me",
    tag = "auth",
    summary = "Who the token belongs to",
    responses(
        (status = 200, description = "ok", body = Me),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn me() {}

#[utoipa::path(
    get,
    path = "/api/auth/keys",
    tag = "auth",
    summary = "The public keys that verify this server's access tokens (JWKS-like; no sign-in)",
    description = "Ed25519 keys as JSON Web Keys with their key id (`kid`, named in each token's header) and state (`current`, or `retired`: still verifying the tokens it signed). Another tier that trusts this issuer (`--trust-issuer-url`) verifies its tokens with these keys.",
    responses(
        (status = 200, description = "ok", body = KeySet),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn auth_keys() {}

#[utoipa::path(
    get,
    path = "/api/petitions",
    tag = "petitions",
    summary = "Petitions the caller may see, newest first",
    params(("status" = Option<String>, Query), ("unit" = Option<String>, Query), ("category" = Option<String>, Query), ("channel" = Option<String>, Query), ("submitter" = Option<String>, Query), ("from" = Option<i64>, Query), ("to" = Option<i64>, Query), ("published" = Option<bool>, Query), ("overdue" = Option<bool>, Query), ("limit" = Option<u32>, Query), ("before" = Option<String>, Query)),
    responses(
        (status = 200, description = "ok", body = PetitionPage),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn list_petitions() {}

#[utoipa::path(
    post,
    path = "/api/petitions",
    tag = "petitions",
    summary = "Submit a petition (201; 200 for a retried submit)",
    request_body = NewPetition,
    responses(
        (status = 201, description = "created", body = PetitionView),
        (status = 200, description = "already stored (a retry)", body = PetitionView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 409, description = "conflicts with what is stored (`set_aside` names the workflow rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn submit_petition() {}

#[utoipa::path(
    get,
    path = "/api/petitions/{id}",
    tag = "petitions",
    summary = "One petition: header, timeline with outcomes, conversation, clocks",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "ok", body = PetitionView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn get_petition() {}

#[utoipa::path(
    post,
    path = "/api/petitions/{id}/actions",
    tag = "petitions",
    summary = "One action (sign, transfer, reclassify, change_assists, reply, …); 409 when the workflow would set it aside",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a client-generated key (1-64 letters, digits, - or _): an action already carried out under it is not carried out again; the answer is the petition as it stands")),
    request_body = PetitionAction,
    responses(
        (status = 200, description = "ok", body = PetitionView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 409, description = "conflicts with what is stored (`set_aside` names the workflow rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn act_on_petition() {}

#[utoipa::path(
    get,
    path = "/api/board",
    tag = "petitions",
    summary = "The public results board (公开晒单)",
    params(("unit" = Option<String>, Query), ("limit" = Option<u32>, Query), ("before" = Option<String>, Query)),
    responses(
        (status = 200, description = "ok", body = BoardPage),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn board() {}

#[utoipa::path(
    get,
    path = "/api/rooms",
    tag = "rooms",
    summary = "The caller's rooms",
    responses(
        (status = 200, description = "ok", body = RoomList),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn list_rooms() {}

#[utoipa::path(
    post,
    path = "/api/rooms",
    tag = "rooms",
    summary = "Open a room (201; 200 for a retry)",
    request_body = NewRoom,
    responses(
        (status = 201, description = "created", body = RoomView),
        (status = 200, description = "already stored (a retry)", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 409, description = "conflicts with what is stored (`set_aside` names the workflow rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn create_room() {}

#[utoipa::path(
    get,
    path = "/api/rooms/{id}",
    tag = "rooms",
    summary = "A room's name, members, pins and tags",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "ok", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn get_room() {}

#[utoipa::path(
    put,
    path = "/api/rooms/{id}/members/{user}",
    tag = "rooms",
    summary = "Add a member or change their role",
    params(("id" = String, Path), ("user" = String, Path)),
    request_body = SetMember,
    responses(
        (status = 200, description = "ok", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_member() {}

#[utoipa::path(
    delete,
    path = "/api/rooms/{id}/members/{user}",
    tag = "rooms",
    summary = "Remove a member",
    params(("id" = String, Path), ("user" = String, Path)),
    responses(
        (status = 200, description = "ok", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn delete_member() {}

#[utoipa::path(
    put,
    path = "/api/rooms/{id}/pins/{entry}",
    tag = "rooms",
    summary = "Pin a message",
    params(("id" = String, Path), ("entry" = String, Path)),
    responses(
        (status = 200, description = "ok", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_pin() {}

#[utoipa::path(
    delete,
    path = "/api/rooms/{id}/pins/{entry}",
    tag = "rooms",
    summary = "Unpin a message",
    params(("id" = String, Path), ("entry" = String, Path)),
    responses(
        (status = 200, description = "ok", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn delete_pin() {}

#[utoipa::path(
    put,
    path = "/api/rooms/{id}/tags/{tag}",
    tag = "rooms",
    summary = "Tag the room's work type",
    params(("id" = String, Path), ("tag" = String, Path)),
    responses(
        (status = 200, description = "ok", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_tag() {}

#[utoipa::path(
    delete,
    path = "/api/rooms/{id}/tags/{tag}",
    tag = "rooms",
    summary = "Remove a tag",
    params(("id" = String, Path), ("tag" = String, Path)),
    responses(
        (status = 200, description = "ok", body = RoomView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn delete_tag() {}

#[utoipa::path(
    get,
    path = "/api/rooms/{id}/messages",
    tag = "rooms",
    summary = "A page of messages in stamp order, with its authors' display names",
    description = "Forward from the first message with `after`; the latest messages with `latest=true`, and \
                   earlier ones with `before` (the page's `earlier`). `after` cannot be given with `before` or `latest`.",
    params(
        ("id" = String, Path),
        ("after" = Option<String>, Query, description = "page forward after this entry (the previous page's `next`)"),
        ("before" = Option<String>, Query, description = "the last `limit` messages before this entry (the page's `earlier`)"),
        ("latest" = Option<bool>, Query, description = "the last `limit` messages of the room"),
        ("limit" = Option<u32>, Query, description = "1-200, default 50")
    ),
    responses(
        (status = 200, description = "ok", body = MessagePage),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn room_messages() {}

#[utoipa::path(
    post,
    path = "/api/rooms/{id}/messages",
    tag = "rooms",
    summary = "Post a message (201)",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a client-generated key (1-64 letters, digits, - or _): a retried post is not posted again; the answer is the message the first one became")),
    request_body = NewMessage,
    responses(
        (status = 201, description = "created", body = MessageView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn post_message() {}

#[utoipa::path(
    post,
    path = "/api/rooms/{id}/messages/{entry}/redact",
    tag = "rooms",
    summary = "Redact a message with a reason",
    params(("id" = String, Path), ("entry" = String, Path)),
    request_body = Redact,
    responses(
        (status = 200, description = "ok", body = MessageView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn redact() {}

#[utoipa::path(
    post,
    path = "/api/rooms/{id}/messages/{entry}/petition",
    tag = "rooms",
    summary = "Raise a message as a petition, linked both ways (201)",
    params(("id" = String, Path), ("entry" = String, Path)),
    request_body = RaiseAsPetition,
    responses(
        (status = 201, description = "created", body = Raised),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 409, description = "conflicts with what is stored (`set_aside` names the workflow rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn raise() {}

#[utoipa::path(
    post,
    path = "/api/appeals",
    tag = "rooms",
    summary = "Post one appeal to several rooms (201)",
    request_body = NewAppeal,
    responses(
        (status = 201, description = "created", body = AppealView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn appeal() {}

#[utoipa::path(
    get,
    path = "/api/appeals/{id}",
    tag = "rooms",
    summary = "An appeal's copies in the caller's rooms",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "ok", body = AppealView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn get_appeal() {}

#[utoipa::path(
    post,
    path = "/api/appeals/{id}/resolve",
    tag = "rooms",
    summary = "One update that reaches every room of the appeal",
    params(("id" = String, Path)),
    request_body = ResolveAppeal,
    responses(
        (status = 200, description = "ok", body = AppealView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn resolve_appeal() {}

#[utoipa::path(
    get,
    path = "/api/notices",
    tag = "notices",
    summary = "Notices the caller may read, newest first",
    params(("before" = Option<i64>, Query), ("limit" = Option<u32>, Query)),
    responses(
        (status = 200, description = "ok", body = NoticeList),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn list_notices() {}

#[utoipa::path(
    post,
    path = "/api/notices",
    tag = "notices",
    summary = "Issue a notice (201; 200 for a retry)",
    request_body = NewNotice,
    responses(
        (status = 201, description = "created", body = NoticeView),
        (status = 200, description = "already stored (a retry)", body = NoticeView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 409, description = "conflicts with what is stored (`set_aside` names the workflow rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn issue_notice() {}

#[utoipa::path(
    get,
    path = "/api/notices/{id}",
    tag = "notices",
    summary = "A notice and the caller's household's receipts",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "ok", body = NoticeView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn get_notice() {}

#[utoipa::path(
    post,
    path = "/api/notices/{id}/receipts",
    tag = "notices",
    summary = "A household got, read or forwarded the notice",
    params(("id" = String, Path)),
    request_body = MarkReceipt,
    responses(
        (status = 200, description = "ok", body = NoticeView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn mark_receipt() {}

#[utoipa::path(
    get,
    path = "/api/notices/{id}/report",
    tag = "notices",
    summary = "Delivery records and the households not reached",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "ok", body = NoticeReport),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn notice_report() {}

#[utoipa::path(
    get,
    path = "/api/units/{id}/directory",
    tag = "directory",
    summary = "A village's households",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "ok", body = DirectoryView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn get_directory() {}

#[utoipa::path(
    put,
    path = "/api/units/{id}/directory/households/{household}",
    tag = "directory",
    summary = "Add or edit a household",
    params(("id" = String, Path), ("household" = String, Path)),
    request_body = HouseholdEdit,
    responses(
        (status = 200, description = "ok", body = DirectoryView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_household() {}

#[utoipa::path(
    get,
    path = "/api/reports/coverage",
    tag = "reports",
    summary = "Reachable households per village and officer",
    params(("unit" = Option<String>, Query)),
    responses(
        (status = 200, description = "ok", body = CoverageReport),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn coverage() {}

#[utoipa::path(
    get,
    path = "/api/reports/kpi",
    tag = "reports",
    summary = "The KPI report (JSON, or CSV with `format=csv`)",
    params(("from" = Option<i64>, Query), ("to" = Option<i64>, Query), ("unit" = Option<String>, Query), ("category" = Option<String>, Query), ("channel" = Option<String>, Query), ("group" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses(
        (status = 200, description = "ok", body = KpiReport),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn kpi() {}

#[utoipa::path(
    get,
    path = "/api/units",
    tag = "organisation",
    summary = "The unit tree the caller may see",
    responses(
        (status = 200, description = "ok", body = UnitList),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn units() {}

#[utoipa::path(
    get,
    path = "/api/clock-rules",
    tag = "organisation",
    summary = "The clock rules and working-day calendar in force",
    responses(
        (status = 200, description = "ok", body = ClockSettings),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn clock_settings() {}

#[utoipa::path(
    get,
    path = "/api/station/directory",
    tag = "organisation",
    summary = "A station server's jurisdiction: units, clocks, and its people's accounts with password hashes (station accounts only)",
    responses(
        (status = 200, description = "ok", body = StationDirectory),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "the caller is not a station server's account", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn station_directory() {}

#[utoipa::path(
    put,
    path = "/api/station/rosters",
    tag = "organisation",
    summary = "Duty rosters a station's leaders set at the station, sent up by its uplink; the later edit wins (station accounts only)",
    request_body = StationRosters,
    responses(
        (status = 200, description = "what became of each roster, in order", body = StationRosterResults),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "the caller is not a station server's account", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_station_rosters() {}

#[utoipa::path(
    put,
    path = "/api/station/keys",
    tag = "organisation",
    summary = "A station server publishes its token keys (station accounts only)",
    description = "The body is what the station's `GET /api/auth/keys` answers. From then on this server accepts access tokens the station's keys signed, for the people the station speaks for only (everyone whose every membership lies in the station's subtree); a token it signed for anyone else is refused with the rule. The station's uplink publishes its keys on its first round and after every rotation.",
    request_body = KeySet,
    responses(
        (status = 204, description = "taken"),
        (status = 400, description = "the key set names no issuer, holds no key, a key that does not read, or a key id of this server or of another station", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "the caller is not a station server's account", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn station_keys() {}

#[utoipa::path(
    put,
    path = "/api/admin/units/{id}",
    tag = "organisation",
    summary = "Create or edit a unit (admins)",
    params(("id" = String, Path)),
    request_body = UnitEdit,
    responses(
        (status = 200, description = "ok", body = UnitView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_unit() {}

#[utoipa::path(
    get,
    path = "/api/admin/users",
    tag = "organisation",
    summary = "The people an admin may edit, with their memberships (admins)",
    responses(
        (status = 200, description = "ok", body = UserList),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn users() {}

#[utoipa::path(
    put,
    path = "/api/admin/users/{id}",
    tag = "organisation",
    summary = "Create or edit a person and their memberships (admins)",
    params(("id" = String, Path)),
    request_body = UserEdit,
    responses(
        (status = 200, description = "ok", body = ImportResult),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_user() {}

#[utoipa::path(
    post,
    path = "/api/admin/import",
    tag = "organisation",
    summary = "Import an organisation file, JSON or TOML (admins)",
    request_body(content = String, description = "the organisation file (units, users) as JSON, or TOML with `Content-Type: application/toml`"),
    responses(
        (status = 200, description = "ok", body = ImportResult),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn import() {}

#[utoipa::path(
    put,
    path = "/api/admin/clock-rules",
    tag = "organisation",
    summary = "Set the clock rules and calendar (admins of the top unit)",
    request_body = ClockSettings,
    responses(
        (status = 200, description = "ok", body = ClockSettings),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_clock_settings() {}

#[utoipa::path(
    get,
    path = "/api/inbox",
    tag = "inbox",
    summary = "The caller's notifications after a cursor",
    params(("after" = Option<i64>, Query), ("limit" = Option<u32>, Query)),
    responses(
        (status = 200, description = "ok", body = InboxPage),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn inbox() {}

#[utoipa::path(
    post,
    path = "/api/inbox/ack",
    tag = "inbox",
    summary = "Acknowledge up to a cursor",
    request_body = AckRequest,
    responses(
        (status = 200, description = "ok", body = AckResponse),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn ack() {}

#[utoipa::path(
    get,
    path = "/api/inbox/stream",
    tag = "inbox",
    summary = "Server-Sent Events: one `notification` event per item (`Last-Event-ID` resumes)",
    params(("token" = Option<String>, Query), ("after" = Option<i64>, Query)),
    responses(
        (status = 200, description = "event stream"),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn stream() {}

#[utoipa::path(
    get,
    path = "/api/units/{id}/roster",
    tag = "units",
    summary = "A unit's duty roster and who is on duty",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "ok", body = RosterView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn get_roster() {}

#[utoipa::path(
    put,
    path = "/api/units/{id}/roster",
    tag = "units",
    summary = "Replace a unit's duty roster",
    params(("id" = String, Path)),
    request_body = Roster,
    responses(
        (status = 200, description = "ok", body = RosterView),
        (status = 400, description = "bad input", body = ErrorBody),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 404, description = "no such thing, or not readable by the caller", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn put_roster() {}

#[utoipa::path(
    get,
    path = "/api/admin/outbox/dead",
    tag = "admin",
    summary = "Pushes and texts the gateways never accepted (admins)",
    params(("limit" = Option<u32>, Query)),
    responses(
        (status = 200, description = "ok", body = DeadLetterPage),
        (status = 401, description = "not signed in, or the token is invalid, expired or revoked", body = ErrorBody),
        (status = 403, description = "refused by policy or role (`refused` lists each change and rule)", body = ErrorBody),
        (status = 500, description = "the server failed", body = ErrorBody)
    )
)]
fn dead_letters() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lianxin API",
        description = "Petitions, rooms, notices, directories, reports and the organisation. Bodies are `sync_core::wire` types; every operation is also `lianxin_server::api::*`."
    ),
    paths(
        healthz,
        sync,
        batch,
        batch_post,
        openapi_json,
        login,
        otp_request,
        otp_verify,
        refresh,
        logout,
        me,
        auth_keys,
        list_petitions,
        submit_petition,
        get_petition,
        act_on_petition,
        board,
        list_rooms,
        create_room,
        get_room,
        put_member,
        delete_member,
        put_pin,
        delete_pin,
        put_tag,
        delete_tag,
        room_messages,
        post_message,
        redact,
        raise,
        appeal,
        get_appeal,
        resolve_appeal,
        list_notices,
        issue_notice,
        get_notice,
        mark_receipt,
        notice_report,
        get_directory,
        put_household,
        coverage,
        kpi,
        units,
        clock_settings,
        station_directory,
        put_station_rosters,
        station_keys,
        put_unit,
        users,
        put_user,
        import,
        put_clock_settings,
        inbox,
        ack,
        stream,
        get_roster,
        put_roster,
        dead_letters
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Fails when a route of the router is not in the document, or the
    /// document describes one the router does not have.
    #[test]
    fn the_document_describes_every_route_and_no_other() {
        let doc = serde_json::to_value(super::document()).expect("serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "post", "put", "delete", "patch"] {
                if let Some(op) = item.get(method) {
                    documented.insert((method.to_uppercase(), path.clone()));
                    let responses = op["responses"].as_object().expect("responses");
                    assert!(responses.contains_key("500"), "{method} {path} lists no errors");
                }
            }
        }
        let routed: BTreeSet<(String, String)> = super::super::routes()
            .iter()
            .map(|(m, p, _)| (m.to_string(), (*p).to_owned()))
            .collect();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(missing.is_empty(), "routes missing from /api/openapi.json: {missing:?}");
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    }
}
