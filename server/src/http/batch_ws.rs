//! The batched sync endpoint for phones and station servers: `GET /batch?token=…`
//! upgraded to a WebSocket (see `sync_core::batch` for the protocol).
//!
//! The same exchange also runs as one `POST /batch` ([`batch_post`]) where
//! WebSocket upgrades fail.
//!
//! Every binary message is one batch frame. A client sends the push parts of
//! an exchange at once; each pushed document goes through the document
//! service's write path (actor binding, policy, storage with projections in
//! one transaction), each part with documents is acknowledged once stored,
//! and after the `last` part one `pull` carries every document in the user's
//! scope with a change after the client's cursor. Unchanged documents are
//! neither listed nor loaded: the change log and the access projection name
//! the changed ones. At a station, a document the tier above took back
//! whole goes, with every change refused and no history, to each client
//! that may hold it and whose cursor lies below the take-back.
//!
//! A malformed frame or an unsupported version is answered with an `err`
//! frame and a close; the connection is the only thing that fails. The
//! connection stays open for more exchanges until the client closes it or
//! the token expires or is revoked. The server pings a quiet connection
//! every [`PING_EVERY`] to keep NAT mappings alive, but never closes one for
//! a missing pong or for silence: on a 2G link a pong, or the next frame,
//! waits behind the upload it shares the link with, and killing a connection
//! whose data is still flowing would make the client start over. Dead peers
//! are found by TCP keepalive (see `server::serve`), which probes only when
//! no byte at all has moved for a minute.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use sync_core::batch::{
    BODY_CONTENT_TYPE, BatchError, ClientFrame, DocId, DocPull, ErrorCode, MAX_FRAME_BYTES, PullExtras, PullPlan,
    ServerExchange, check_push, error_frame, join_frames, parse_client_frame, plan_pull, split_frames,
};
use sync_core::repo_protocol::DocumentId;
use sync_core::wire::CloseCode;
use sync_core::{OrgTree, Principal};
use tokio::time::Instant;

use super::extract::Authenticated;
use super::sync_ws::TokenQuery;
use crate::docs::{DocError, RelayAuthors};
use crate::state::AppState;
use crate::storage::AccessScope;

/// How often the server pings a connection that has been quiet.
pub const PING_EVERY: Duration = Duration::from_secs(120);
/// The most document bytes one pull carries (a document larger than that
/// still travels alone).
const PULL_BUDGET: usize = MAX_FRAME_BYTES / 4;

/// WebSocket close codes this endpoint uses (`sync_core::wire::CloseCode`).
const CLOSE_UNAUTHORIZED: u16 = CloseCode::Unauthorized.code();
const CLOSE_BAD_FRAME: u16 = CloseCode::BadFrame.code();
const CLOSE_INTERNAL: u16 = CloseCode::Internal.code();

pub async fn batch_ws(State(state): State<AppState>, Query(q): Query<TokenQuery>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(state.http.max_ws_message_bytes)
        .read_buffer_size(super::WS_READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            if let Err(e) = run(state, socket, q.token).await {
                tracing::debug!(error = %e, "batch connection ended");
            }
        })
}

/// `POST /batch`: the same exchange as one HTTP request, for networks that
/// refuse WebSocket upgrades. The body is the client's frames joined
/// (`sync_core::batch::join_frames`), the answer the server's frames joined:
/// the acks and the pull, or the frames up to an `err` frame, whose code
/// also sets the status (400 bad frame or unsupported version, 500 internal).
/// A signed-out caller gets the API's JSON 401 before any frame is read.
pub async fn batch_post(State(state): State<AppState>, auth: Authenticated, body: Bytes) -> Response {
    let frames = match split_frames(&body) {
        Ok(frames) => frames,
        Err(e) => {
            let frame = error_frame(ErrorCode::BadFrame, &e.to_string());
            return body_response(StatusCode::BAD_REQUEST, &[frame]);
        }
    };
    let mut conn = Connection::new(state, auth.principal);
    let mut out = Out::Body(Vec::new());
    let mut status = StatusCode::OK;
    for frame in frames {
        match conn.on_frame(&mut out, frame).await {
            Ok(Ok(())) => {}
            Ok(Err(end)) => {
                status = match end.code {
                    ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::BAD_REQUEST,
                };
                let _ = out.send(error_frame(end.code, &end.message)).await;
                break;
            }
            // Writing to a Vec does not fail.
            Err(_) => unreachable!("a body collects frames without failing"),
        }
    }
    let Out::Body(frames) = out else {
        unreachable!("built as a body")
    };
    body_response(status, &frames)
}

fn body_response(status: StatusCode, frames: &[Vec<u8>]) -> Response {
    (status, [(header::CONTENT_TYPE, BODY_CONTENT_TYPE)], join_frames(frames)).into_response()
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Where a connection's frames go: a WebSocket, at once, or the body of the
/// answer to a `POST /batch`, at the end.
pub(super) enum Out<'a> {
    Ws(&'a mut Sink),
    Body(Vec<Vec<u8>>),
}

impl Out<'_> {
    async fn send(&mut self, frame: Vec<u8>) -> Result<(), axum::Error> {
        match self {
            Out::Ws(sink) => sink.send(Message::Binary(frame.into())).await,
            Out::Body(frames) => {
                frames.push(frame);
                Ok(())
            }
        }
    }
}

async fn fail(sink: &mut Sink, code: ErrorCode, close: u16, message: &str) -> Result<(), axum::Error> {
    sink.send(Message::Binary(error_frame(code, message).into())).await?;
    let reason: String = message.chars().take(100).collect();
    sink.send(Message::Close(Some(CloseFrame {
        code: close,
        reason: reason.into(),
    })))
    .await
}

async fn run(state: AppState, socket: WebSocket, token: Option<String>) -> Result<(), axum::Error> {
    let (mut sink, mut stream) = socket.split();
    let unauthorized = |m: String| {
        (
            ErrorCode::Unauthorized,
            CLOSE_UNAUTHORIZED,
            format!("unauthorized: {m}"),
        )
    };
    let authed = async {
        let token = token.ok_or_else(|| unauthorized("pass ?token=<access token>".into()))?;
        let claims = state
            .auth
            .authenticate(&token)
            .await
            .map_err(|e| unauthorized(e.to_string()))?;
        let user = sync_core::UserId::new(claims.sub.clone()).map_err(|e| unauthorized(e.to_string()))?;
        let principal = state
            .auth
            .principal(&user)
            .await
            .map_err(|e| unauthorized(e.to_string()))?;
        Ok((claims, principal))
    };
    let (claims, principal) = match authed.await {
        Ok(ok) => ok,
        Err((code, close, m)) => return fail(&mut sink, code, close, &m).await,
    };
    let mut watch = state.auth.watch(claims);
    let mut conn = Connection::new(state, principal);
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(frame) = frame else { return Ok(()) };
                last_heard = Instant::now();
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(e) => match super::too_large(&e) {
                        Some(why) => {
                            fail(&mut sink, ErrorCode::BadFrame, super::CLOSE_TOO_BIG, &why).await?;
                            return super::drain(stream).await;
                        }
                        None => return Err(e),
                    },
                };
                match frame {
                    Message::Binary(b) => {
                        if let Err(end) = conn.on_frame(&mut Out::Ws(&mut sink), &b).await? {
                            return fail(&mut sink, end.code, end.close, &end.message).await;
                        }
                    }
                    Message::Close(_) => return Ok(()),
                    Message::Text(_) => {
                        return fail(&mut sink, ErrorCode::BadFrame, CLOSE_BAD_FRAME, "batch frames are binary messages").await;
                    }
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= PING_EVERY {
                    sink.send(Message::Ping(Vec::new().into())).await?;
                }
            }
            end = watch.ended() => {
                let why = match end { crate::auth::TokenEnd::Expired => "token expired", crate::auth::TokenEnd::Revoked => "token revoked" };
                return fail(&mut sink, ErrorCode::Unauthorized, CLOSE_UNAUTHORIZED, why).await;
            }
        }
    }
}

/// Why the server ends a connection after a frame.
pub(super) struct End {
    pub code: ErrorCode,
    pub close: u16,
    pub message: String,
}

impl From<DocError> for End {
    fn from(e: DocError) -> Self {
        tracing::warn!(error = %e, "batch exchange failed");
        End {
            code: ErrorCode::Internal,
            close: CLOSE_INTERNAL,
            message: format!("the server could not complete the exchange: {e}"),
        }
    }
}

pub(super) struct Connection {
    state: AppState,
    principal: Principal,
    ex: ServerExchange,
    exchange: Option<u64>,
    /// Documents pushed in this exchange that the user may not read: never pulled.
    unreadable: BTreeSet<DocId>,
}

impl Connection {
    pub(super) fn new(state: AppState, principal: Principal) -> Self {
        Connection {
            state,
            principal,
            ex: ServerExchange::new(),
            exchange: None,
            unreadable: BTreeSet::new(),
        }
    }

    /// Handles one client frame. `Ok(Err(_))` ends the connection with an error frame.
    pub(super) async fn on_frame(&mut self, sink: &mut Out<'_>, bytes: &[u8]) -> Result<Result<(), End>, axum::Error> {
        let push = match parse_client_frame(bytes) {
            Ok(ClientFrame::Push(p)) => p,
            Ok(ClientFrame::InboxAck(a)) => {
                return Ok(self.ack_inbox(a.cursor).await.map_err(End::from));
            }
            Err(rejected) => {
                tracing::info!(user = %self.principal.user, error = %rejected.error, "batch frame refused");
                // One error frame: the caller sends it with the close.
                let code = match rejected.error {
                    BatchError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
                    _ => ErrorCode::BadFrame,
                };
                return Ok(Err(End {
                    code,
                    close: CLOSE_BAD_FRAME,
                    message: rejected.error.to_string(),
                }));
            }
        };
        if self.exchange != Some(push.exchange) {
            self.exchange = Some(push.exchange);
            self.unreadable.clear();
        }
        self.ex.begin(&push);
        if self.ex.wants_early_pull(&push) {
            match self.early_pull().await {
                Ok(frame) => sink.send(frame).await?,
                Err(e) => return Ok(Err(e.into())),
            }
        }
        if push.last
            && let Some(cursor) = self.ex.inbox()
        {
            // Acknowledged before anything else: what the client has stored
            // stays acknowledged even if the exchange fails later.
            if let Err(e) = self.ack_inbox(cursor).await {
                return Ok(Err(e.into()));
            }
        }
        let docs = self.state.docs.clone();
        let limits = sync_core::guard::Limits::default();
        // A station relays its people's changes: each is checked for its author.
        let relay = if sync_core::relay::is_station(&self.principal) && !push.docs.is_empty() {
            Some(self.relay_authors(&push.authors).await)
        } else {
            None
        };
        for doc in &push.docs {
            // Refused before anything is read for it; heavy ones wait their turn.
            let cost = match check_push(doc, &limits) {
                Ok(cost) => cost,
                Err(e) => {
                    tracing::info!(user = %self.principal.user, error = %e, "batch push refused");
                    return Ok(Err(End {
                        code: ErrorCode::BadFrame,
                        close: CLOSE_BAD_FRAME,
                        message: e.to_string(),
                    }));
                }
            };
            let _permit = self.state.http.heavy_work.admit(&cost, doc.data.len()).await;
            let doc_id = DocumentId::from_bytes(doc.id.0).to_string();
            let readable = match self.readable_or_new(&doc_id).await {
                Ok(r) => r,
                Err(e) => return Ok(Err(e.into())),
            };
            if !readable {
                self.unreadable.insert(doc.id);
            }
            let applied = match &relay {
                Some((authors, who_for)) => {
                    docs.apply_relayed_push(authors, who_for, &doc_id, doc, readable, &mut self.ex)
                        .await
                }
                None => {
                    docs.apply_batch_push(&self.principal, &doc_id, doc, readable, &mut self.ex)
                        .await
                }
            };
            if let Err(e) = applied {
                return Ok(Err(e.into()));
            }
        }
        if let Some(ack) = self.ex.ack(&push) {
            sink.send(ack).await?;
        }
        if push.last {
            match self.pull().await {
                Ok(frame) => sink.send(frame).await?,
                Err(e) => return Ok(Err(e.into())),
            }
        }
        Ok(Ok(()))
    }

    /// Acknowledges the user's inbox up to `cursor` (the client has stored
    /// the items up to it).
    async fn ack_inbox(&self, cursor: u64) -> Result<(), DocError> {
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        Ok(crate::api::inbox::ack_stored(&self.state, &self.principal.user, cursor).await?)
    }

    /// What a protocol-2 pull carries besides documents: the inbox after
    /// the client's cursor, if it asked, and the settings generation.
    async fn extras(&self) -> Result<PullExtras, DocError> {
        let mut extras = PullExtras::default();
        if let Some(after) = self.ex.inbox() {
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let (page, more) = crate::api::inbox::batch_page(&self.state, &self.principal.user, after).await?;
            extras.inbox = Some(page);
            extras.inbox_more = more;
        }
        extras.settings = Some(if sync_core::relay::is_station(&self.principal) {
            // A station mirrors its whole directory (people too), not only
            // the settings a phone mirrors.
            crate::api::station::directory_body(&self.state, &self.principal)
                .await?
                .1
        } else {
            let (org, settings) = self.state.storage.config().config_versions().await?;
            ((org as u64) << 32) | (settings as u64 & 0xffff_ffff)
        });
        Ok(extras)
    }

    /// The authors a station's push attests, by actor, and for each the
    /// principal the changes are checked for, or why the station may not
    /// relay them (`sync_core::relay::speaks_for`).
    async fn relay_authors(
        &self,
        attested: &[(automerge::ActorId, String)],
    ) -> (BTreeMap<automerge::ActorId, String>, RelayAuthors) {
        let org = self.state.docs.org();
        let mut who_for = RelayAuthors::new();
        for (_, user) in attested {
            if who_for.contains_key(user) {
                continue;
            }
            let principal = match sync_core::UserId::new(user.clone()) {
                Ok(id) => self.state.auth.principal(&id).await.ok(),
                Err(_) => None,
            };
            let verdict = sync_core::relay::speaks_for(&org, &self.principal, principal.as_ref())
                .map(|()| principal.expect("speaks_for refuses an unknown author"));
            if let Err((rule, detail)) = &verdict {
                tracing::info!(station = %self.principal.user, author = %user, %rule, %detail, "relayed changes refused");
            }
            who_for.insert(user.clone(), verdict);
        }
        (attested.iter().cloned().collect(), who_for)
    }

    /// Whether the user may read `doc_id`, or it does not exist yet (policy
    /// then decides whether they may create it). A document the tier above
    /// took back whole is readable only to those who may hold it: pushed
    /// again, it is refused with the tier above's rule and they are told.
    async fn readable_or_new(&self, doc_id: &str) -> Result<bool, DocError> {
        let docs = &self.state.docs;
        Ok(docs.may_read(&self.principal, doc_id).await?
            || docs.may_have_held(&self.principal, doc_id).await?
            || (!docs.exists(doc_id).await? && !docs.taken_back_whole(doc_id).await?))
    }

    /// The documents in the user's scope with a change after the client's
    /// cursor, paged, with the cursor that follows them.
    async fn plan(&self) -> Result<PullPlan, DocError> {
        let docs = &self.state.docs;
        let storage = docs.storage();
        let cursor = i64::try_from(self.ex.cursor()).unwrap_or(i64::MAX);
        // Taken before the documents are read: a change that lands meanwhile
        // has a higher seq and comes with the next exchange.
        let mut latest = storage.documents().head_seq().await?.max(cursor);
        let scope = access_scope(&docs.org(), &self.principal);
        let page = self.state.http.batch_page_docs.max(1);
        let mut rows = storage.documents().changed_in_scope(cursor, &scope, page + 1).await?;
        // Rows come lowest first seq first; the documents not listed have a
        // first seq at least the last row's, so the cursor must stop before it.
        let mut listed_all = true;
        if rows.len() > page as usize {
            let boundary = rows[page as usize].1;
            rows.truncate(page as usize);
            latest = latest.min(boundary - 1).max(cursor);
            listed_all = false;
        }
        let mut changed = Vec::with_capacity(rows.len());
        for (doc_id, first) in rows {
            let Ok(id) = doc_id.parse::<DocumentId>() else { continue };
            // A document taken back whole goes to those who may hold it,
            // with every change refused and no history.
            if docs.may_read(&self.principal, &doc_id).await? || docs.may_have_held(&self.principal, &doc_id).await? {
                changed.push((DocId(*id.as_bytes()), first as u64));
            }
        }
        let mut plan = plan_pull(changed, usize::MAX, latest as u64);
        plan.more |= !listed_all;
        Ok(plan)
    }

    /// Reads what the client lacks of each planned document, up to
    /// [`PULL_BUDGET`] bytes; the plan is cut where the budget ran out.
    async fn read(&self, plan: &mut PullPlan) -> Result<Vec<DocPull>, DocError> {
        let cursor = i64::try_from(self.ex.cursor()).unwrap_or(i64::MAX);
        let mut pulls = Vec::new();
        let mut bytes = 0usize;
        for (n, id) in plan.docs.clone().into_iter().enumerate() {
            if bytes >= PULL_BUDGET {
                plan.truncate(n);
                break;
            }
            if let Some(p) = self.read_one(id, cursor).await? {
                bytes += p.data.len();
                pulls.push(p);
            }
        }
        Ok(pulls)
    }

    async fn read_one(&self, id: DocId, cursor: i64) -> Result<Option<DocPull>, DocError> {
        let doc_id = DocumentId::from_bytes(id.0).to_string();
        let base = self.ex.known_base(&id);
        // A station is sent the receipt times of what it lacks.
        let receipts = sync_core::relay::is_station(&self.principal);
        self.state
            .docs
            .batch_pull(id, &doc_id, cursor, base, receipts, &self.ex)
            .await
    }

    /// The early pull: what changed on the server, sent while the client is
    /// still pushing.
    async fn early_pull(&mut self) -> Result<Vec<u8>, DocError> {
        let mut plan = self.plan().await?;
        let pulls = self.read(&mut plan).await?;
        Ok(self.ex.early_pull(pulls))
    }

    /// The pull that ends an exchange.
    async fn pull(&mut self) -> Result<Vec<u8>, DocError> {
        let mut plan = self.plan().await?;
        let mut pulls = self.read(&mut plan).await?;
        // Pushed documents the plan does not name: the client may still lack
        // part of them (a refusal, a whole push after lost history).
        let cursor = i64::try_from(self.ex.cursor()).unwrap_or(i64::MAX);
        let extra: Vec<DocId> = self
            .ex
            .pushed_docs()
            .filter(|id| !plan.docs.contains(id) && !self.unreadable.contains(id))
            .copied()
            .collect();
        for id in extra {
            pulls.extend(self.read_one(id, cursor).await?);
        }
        if sync_core::relay::is_station(&self.principal) {
            let storage = self.state.docs.storage();
            let at = self.state.docs.now();
            storage
                .stations()
                .record_sync(self.principal.user.as_str(), at, plan.cursor as i64)
                .await?;
        }
        let extras = self.extras().await?;
        Ok(self.ex.pull_with(plan.cursor, pulls, plan.more, extras))
    }
}

/// The `doc_access` subjects that could let `who` read a document: the units
/// below any of their memberships, the units above them (notices to a whole
/// county), and their household. The exact decision is `may_read` per document.
pub fn access_scope(org: &OrgTree, who: &Principal) -> AccessScope {
    let mut subjects: BTreeSet<String> = BTreeSet::new();
    for m in &who.memberships {
        for u in org.ancestors_or_self(&m.unit) {
            subjects.insert(u.to_string());
        }
    }
    for u in org.units() {
        if who.memberships.iter().any(|m| org.is_within(&u.id, &m.unit)) {
            subjects.insert(u.id.to_string());
        }
    }
    if let Some(h) = &who.household {
        subjects.insert(h.to_string());
    }
    AccessScope {
        user: who.user.to_string(),
        subjects: subjects.into_iter().collect(),
    }
}
