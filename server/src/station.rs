//! A station's uplink (`lianxin serve --upstream URL`): the same server, one
//! tier down, syncing its jurisdiction with the tier above.
//!
//! The station is a batched-sync client of the tier above's `/batch`, signed
//! in as a station server's account (`Role::StationServer` in its unit), and
//! runs the very state machine the phones run (`sync_core::batch::BatchClient`):
//! one exchange pushes what its own people changed and pulls what changed
//! above in its scope, in one round trip once connected; acknowledged parts
//! are never sent again after a cut; the cursor moves with every pull, also
//! when nothing in scope changed, so a quiet station never stalls. Each round:
//!
//! 1. sign in once (again before the token expires, or when it is refused)
//!    and open the `/batch` connection, which stays open across rounds;
//! 2. read the jurisdiction's directory (units, clocks, people with their
//!    password hashes, duty rosters) and apply it, so people sign in here
//!    while the uplink is down and a revocation above disables them here.
//!    The first round reads it; later rounds read it only when the
//!    generation the tier above names in its pull
//!    (`relay::directory_generation`) differs from the one applied, so an
//!    idle round is one round trip. Then send up the rosters this station's
//!    leaders set that are later edits than the tier above's (nothing is
//!    sent when there are none);
//! 3. run exchanges until neither side has more: documents changed here
//!    since the last push (listed from the change log, changes the tier
//!    above sent left out, paged like a pull), attested with their authors
//!    and with the receipt times of the entries clocks run on
//!    (`relay::receipts_to_carry`); pulled changes are stored with
//!    `Origin::Upstream`, their entries received when the tier above
//!    received them, so both tiers compute the same deadlines; a change the
//!    tier above refused is taken back here (`DocService::take_back`).
//!
//! Failures back off (`sync_core::relay::Backoff`); the station serves its
//! phones all along, from its own storage, whatever the uplink does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use automerge::{ActorId, AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use sync_core::batch::{BatchClient, ClientEvent, ClientState, DocId, Frame, ReplicaDocs, plan_pull};
use sync_core::clocks::Receipts;
use sync_core::relay::{self, Backoff};
use sync_core::repo_protocol::DocumentId;
use sync_core::wire::{KeySet, RosterOutcome, StationRoster, StationRosterResults, StationRosters};
use sync_core::{Timestamp, UnitId};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::docs::DocError;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::StorageError;

/// How a station reaches the tier above.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// The tier above's base URL (`http://county:8080`).
    pub url: String,
    /// The station server's account there, and its password.
    pub login: String,
    pub password: String,
    /// How long the uplink waits between exchanges when nothing changed
    /// here (a local change starts one at once).
    pub every: Duration,
    pub backoff: Backoff,
    /// The most documents one exchange pushes; the rest go in the next.
    /// The same as the most the tier above lists in one pull
    /// (`state::BATCH_PAGE_DOCS`), so a day's work, up and down, is one
    /// exchange.
    pub push_page_docs: usize,
    /// How long the uplink waits for the tier above to say anything (an
    /// HTTP answer, a connection, the next frame) before it gives the round
    /// up: a link that drops packets without closing is a black hole, not an
    /// error, and TCP alone would wait for minutes.
    pub silence: Duration,
}

impl UpstreamConfig {
    pub fn new(url: impl Into<String>, login: impl Into<String>, password: impl Into<String>) -> Self {
        UpstreamConfig {
            url: url.into().trim_end_matches('/').to_owned(),
            login: login.into(),
            password: password.into(),
            every: Duration::from_secs(10),
            backoff: Backoff::default(),
            push_page_docs: crate::state::BATCH_PAGE_DOCS as usize,
            silence: Duration::from_secs(60),
        }
    }
}

/// What the uplink has done, for logs, tests and the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkStatus {
    /// Rounds completed since start-up (each ends with every exchange done).
    pub rounds: u64,
    /// Exchanges completed since start-up: one per round when little
    /// changed, one per page when a round catches up on a long outage.
    pub exchanges: u64,
    /// Failed rounds in a row (0 when the last one succeeded).
    pub failures: u32,
    pub last_error: Option<String>,
    /// The cursor into the tier above's change sequence.
    pub cursor: u64,
    /// Changes the tier above refused and this station took back.
    pub taken_back: u64,
    /// Accounts disabled here because the tier above disabled or dropped them.
    pub disabled: u64,
    /// Rosters set here that the tier above stored (later edits than its own).
    pub rosters_sent: u64,
    /// Directories read from the tier above and applied (the first round's,
    /// then one each time its generation moved).
    pub directories: u64,
}

/// The running uplink. Dropping it stops it.
pub struct Uplink {
    task: JoinHandle<()>,
    status: watch::Receiver<UplinkStatus>,
}

impl Uplink {
    pub fn status(&self) -> UplinkStatus {
        self.status.borrow().clone()
    }

    /// Waits until `done` holds for the status (tests, tools).
    pub async fn wait_for(&self, mut done: impl FnMut(&UplinkStatus) -> bool) -> UplinkStatus {
        let mut rx = self.status.clone();
        loop {
            {
                let s = rx.borrow_and_update();
                if done(&s) {
                    return s.clone();
                }
            }
            if rx.changed().await.is_err() {
                return self.status();
            }
        }
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Error)]
pub enum UplinkError {
    #[error("the tier above is unreachable: {0}")]
    Unreachable(String),
    #[error("the tier above refused the station's account: {0}")]
    Unauthorized(String),
    #[error("the exchange failed: {0}")]
    Protocol(String),
    #[error(transparent)]
    Docs(#[from] DocError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("reading this server's token keys: {0}")]
    Keys(String),
    #[error("applying the directory: {0}")]
    Directory(#[from] ApiError),
}

/// What the uplink persists (table `uplink_state`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// The batched-sync client's state towards the tier above.
    client: ClientState,
    /// The local seq up to which this station's own changes were pushed.
    pushed: i64,
    /// The last exchange id used.
    exchange: u64,
}

/// Starts the uplink of `app` towards the tier above.
pub fn spawn(app: AppState, config: UpstreamConfig) -> Uplink {
    // The tier above is authoritative for people too: its tokens hold here.
    app.auth.keys().trust_url(format!("{}/api/auth/keys", config.url));
    let (tx, status) = watch::channel(UplinkStatus::default());
    let task = tokio::spawn(run(app, Arc::new(config), tx));
    Uplink { task, status }
}

async fn run(app: AppState, config: Arc<UpstreamConfig>, status: watch::Sender<UplinkStatus>) {
    let http = reqwest::Client::builder()
        .connect_timeout(config.silence)
        .read_timeout(config.silence)
        .build()
        .expect("an HTTP client without custom TLS builds");
    let mut session = Session {
        http,
        token: None,
        etag: None,
        rosters: Vec::new(),
        refused_rosters: BTreeSet::new(),
        directory: None,
        link: None,
        published: None,
        held: None,
    };
    let mut events = app.docs.subscribe();
    loop {
        match round(&app, &config, &mut session, &status).await {
            Ok(()) => {
                status.send_modify(|s| {
                    s.rounds += 1;
                    s.failures = 0;
                    s.last_error = None;
                });
                // Wait for a local change, or the interval (the tier above's
                // changes are pulled at least that often).
                let wait = tokio::time::sleep(config.every);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        e = events.recv() => match e {
                            Ok(e) if e.by.as_str() != relay::UPSTREAM_USER => break,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            }
            Err(e) => {
                // A failed round leaves the connection in an unknown state,
                // and the state held may be ahead of what was saved.
                session.link = None;
                session.held = None;
                if matches!(e, UplinkError::Unauthorized(_)) {
                    session.token = None;
                }
                let failures = status.borrow().failures + 1;
                let delay = config.backoff.delay_ms(failures, rand::random());
                tracing::warn!(error = %e, failures, retry_in_ms = delay, "station uplink round failed");
                status.send_modify(|s| {
                    s.failures = failures;
                    s.last_error = Some(e.to_string());
                });
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
    }
}

struct Session {
    http: reqwest::Client,
    /// The access token, and when to sign in again (a little before it
    /// expires, so no round fails on an expired token).
    token: Option<(String, tokio::time::Instant)>,
    /// The tag of the directory last applied.
    etag: Option<String>,
    /// The rosters the directory last listed: the tier above's copies.
    rosters: Vec<StationRoster>,
    /// Edits of rosters here the tier above refused and holds no copy of:
    /// not sent again until edited again.
    refused_rosters: BTreeSet<(UnitId, i64)>,
    /// Its generation (`relay::directory_generation`).
    directory: Option<u64>,
    /// The open `/batch` connection, kept across rounds.
    link: Option<Link>,
    /// This server's token keys as last published to the tier above.
    published: Option<KeySet>,
    /// The uplink's state, read once and saved as it changes; read again
    /// after a failed round.
    held: Option<Held>,
}

type Link = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn round(
    app: &AppState,
    config: &UpstreamConfig,
    session: &mut Session,
    status: &watch::Sender<UplinkStatus>,
) -> Result<(), UplinkError> {
    let token = match &session.token {
        Some((t, renew)) if tokio::time::Instant::now() < *renew => t.clone(),
        _ => {
            let (t, expires_in) = sign_in(&session.http, config).await?;
            // The connection was opened with the old token, which the tier
            // above ends when it expires.
            session.link = None;
            let margin = config.silence.max(Duration::from_secs(30));
            let renew = tokio::time::Instant::now() + expires_in.saturating_sub(margin);
            session.token = Some((t.clone(), renew));
            t
        }
    };
    publish_keys(app, config, session, &token).await?;
    if session.directory.is_none() {
        directory(app, config, session, &token, status).await?;
    }
    if let Err(e) = push_rosters(app, config, session, &token, status).await {
        // Rosters never hold up the documents' exchange.
        tracing::warn!(error = %e, "sending the station's rosters up failed");
    }
    let generation = exchanges(app, config, session, &token, status).await?;
    if generation.is_some() && generation != session.directory {
        directory(app, config, session, &token, status).await?;
    }
    Ok(())
}

/// Publishes this server's token keys to the tier above when they changed
/// since last published (the first round, a rotation), so the tokens its
/// people got here hold there too, for them only. A set the tier above
/// refuses is logged and not sent again until it changes: sync goes on.
async fn publish_keys(
    app: &AppState,
    config: &UpstreamConfig,
    session: &mut Session,
    token: &str,
) -> Result<(), UplinkError> {
    let keys = app
        .auth
        .keys()
        .key_set(app.clock.now())
        .await
        .map_err(|e| UplinkError::Keys(e.to_string()))?;
    // No key yet: nobody signed in here yet, so there is nothing to trust.
    if keys.keys.is_empty() || session.published.as_ref() == Some(&keys) {
        return Ok(());
    }
    let res = session
        .http
        .put(format!("{}/api/station/keys", config.url))
        .bearer_auth(token)
        .json(&keys)
        .send()
        .await
        .map_err(|e| UplinkError::Unreachable(e.to_string()))?;
    match res.status() {
        s if s.is_success() => tracing::info!(keys = keys.keys.len(), "published this station's token keys above"),
        s if s == reqwest::StatusCode::UNAUTHORIZED => {
            return Err(UplinkError::Unauthorized(format!("publishing the keys answered {s}")));
        }
        s if s.is_server_error() => {
            return Err(UplinkError::Unreachable(format!("publishing the keys answered {s}")));
        }
        s => {
            let body = res.text().await.unwrap_or_default();
            tracing::warn!(status = %s, %body, "the tier above refused this station's token keys; its tokens will not hold there");
        }
    }
    session.published = Some(keys);
    Ok(())
}

/// Signs in at the tier above: the access token and how long it lasts.
async fn sign_in(http: &reqwest::Client, config: &UpstreamConfig) -> Result<(String, Duration), UplinkError> {
    let res = http
        .post(format!("{}/api/auth/login", config.url))
        .json(&serde_json::json!({"login": config.login, "password": config.password}))
        .send()
        .await
        .map_err(|e| UplinkError::Unreachable(e.to_string()))?;
    if !res.status().is_success() {
        return Err(UplinkError::Unauthorized(format!("sign-in answered {}", res.status())));
    }
    let body: serde_json::Value = res.json().await.map_err(|e| UplinkError::Unreachable(e.to_string()))?;
    let token = body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| UplinkError::Protocol("the sign-in answer has no access token".into()))?;
    let expires_in = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(0));
    Ok((token, expires_in))
}

async fn directory(
    app: &AppState,
    config: &UpstreamConfig,
    session: &mut Session,
    token: &str,
    status: &watch::Sender<UplinkStatus>,
) -> Result<(), UplinkError> {
    let mut req = session
        .http
        .get(format!("{}/api/station/directory", config.url))
        .bearer_auth(token);
    if let Some(tag) = &session.etag {
        req = req.header(reqwest::header::IF_NONE_MATCH, tag);
    }
    let res = req.send().await.map_err(|e| UplinkError::Unreachable(e.to_string()))?;
    match res.status() {
        reqwest::StatusCode::NOT_MODIFIED => {
            // Changed and changed back between the pull and this request.
            session.directory = session.etag.as_deref().and_then(etag_generation);
            return Ok(());
        }
        s if s == reqwest::StatusCode::UNAUTHORIZED || s == reqwest::StatusCode::FORBIDDEN => {
            return Err(UplinkError::Unauthorized(format!("the directory answered {s}")));
        }
        s if !s.is_success() => return Err(UplinkError::Unreachable(format!("the directory answered {s}"))),
        _ => {}
    }
    let tag = res
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res.bytes().await.map_err(|e| UplinkError::Unreachable(e.to_string()))?;
    let dir: sync_core::wire::StationDirectory = serde_json::from_slice(&body)
        .map_err(|e| UplinkError::Protocol(format!("the directory does not read: {e}")))?;
    let disabled = crate::api::station::apply_directory(app, &dir).await?;
    tracing::info!(
        people = dir.people.len(),
        units = dir.units.len(),
        disabled,
        "applied the directory of the tier above"
    );
    status.send_modify(|s| {
        s.disabled += disabled as u64;
        s.directories += 1;
    });
    session.rosters = dir.rosters;
    session.etag = tag;
    session.directory = Some(relay::directory_generation(&body));
    Ok(())
}

/// Sends up the rosters set here that are later edits than the tier
/// above's copies (`relay::roster_wins`), so a station leader's roster
/// reaches the tier above; the directory brings the tier above's later
/// edits down. A refused edit is replaced here by the tier above's copy if
/// it has one (refused everywhere), and is otherwise not sent again until
/// it is edited again.
async fn push_rosters(
    app: &AppState,
    config: &UpstreamConfig,
    session: &mut Session,
    token: &str,
    status: &watch::Sender<UplinkStatus>,
) -> Result<(), UplinkError> {
    let above: BTreeMap<&UnitId, &StationRoster> = session.rosters.iter().map(|r| (&r.unit, r)).collect();
    let mut sent = Vec::new();
    for row in app.storage.rosters().all().await? {
        let theirs = above.get(&row.unit_id).map(|r| (r.updated_at, &r.updated_by));
        if session.refused_rosters.contains(&(row.unit_id.clone(), row.updated_at))
            || !relay::roster_wins((row.updated_at, &row.updated_by), theirs)
        {
            continue;
        }
        sent.push(StationRoster {
            unit: row.unit_id,
            roster: row.roster,
            updated_by: row.updated_by,
            updated_at: row.updated_at,
        });
    }
    if sent.is_empty() {
        return Ok(());
    }
    let res = session
        .http
        .put(format!("{}/api/station/rosters", config.url))
        .bearer_auth(token)
        .json(&StationRosters { rosters: sent.clone() })
        .send()
        .await
        .map_err(|e| UplinkError::Unreachable(e.to_string()))?;
    if !res.status().is_success() {
        return Err(UplinkError::Protocol(format!("the rosters answered {}", res.status())));
    }
    let results: StationRosterResults = res.json().await.map_err(|e| UplinkError::Protocol(e.to_string()))?;
    for (roster, result) in sent.iter().zip(results.results) {
        match result.outcome {
            RosterOutcome::Stored => status.send_modify(|s| s.rosters_sent += 1),
            RosterOutcome::Kept => {}
            RosterOutcome::Refused => {
                tracing::warn!(unit = %roster.unit, detail = ?result.detail, "the tier above refused a roster set here");
                match above.get(&roster.unit) {
                    Some(theirs) => {
                        app.storage
                            .rosters()
                            .put(
                                &theirs.unit,
                                &theirs.roster,
                                &theirs.updated_by,
                                sync_core::Timestamp::from_millis(theirs.updated_at),
                            )
                            .await?
                    }
                    None => {
                        session.refused_rosters.insert((roster.unit.clone(), roster.updated_at));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The generation an `ETag` of the tier above names (`relay::directory_etag`).
fn etag_generation(tag: &str) -> Option<u64> {
    u64::from_str_radix(tag.trim_matches('"'), 16).ok()
}

/// The station's documents as the batched client sees them: the ones loaded
/// for this exchange, with the heads they had when loaded, and which the
/// pull changed.
#[derive(Default)]
struct StationDocs {
    docs: BTreeMap<DocId, AutoCommit>,
    loaded_heads: BTreeMap<DocId, Vec<ChangeHash>>,
    updated: BTreeSet<DocId>,
    /// The station's actor bindings for the actors of what it pushes.
    authors: BTreeMap<ActorId, String>,
    /// The receipt times pushed with each document: those of its entries
    /// recorded here since the last push (`relay::receipts_to_carry`).
    receipts_out: BTreeMap<DocId, Vec<(String, Timestamp)>>,
    /// The tier above's receipt times sent with each pulled document.
    receipts_in: BTreeMap<DocId, Receipts>,
}

impl StationDocs {
    async fn load_from(&mut self, app: &AppState, id: DocId) -> Result<(), UplinkError> {
        if self.loaded_heads.contains_key(&id) {
            return Ok(());
        }
        let key = DocumentId::from_bytes(id.0).to_string();
        match app.docs.copy(&key).await? {
            Some(mut doc) => {
                self.loaded_heads.insert(id, doc.get_heads());
                self.docs.insert(id, doc);
            }
            None => {
                self.loaded_heads.insert(id, Vec::new());
            }
        }
        Ok(())
    }
}

impl ReplicaDocs for StationDocs {
    fn dirty(&self, state: &ClientState) -> Vec<DocId> {
        self.docs
            .iter()
            .filter(|(id, doc)| {
                state
                    .shared
                    .get(id)
                    .is_none_or(|s| *s != AutoCommit::clone(doc).get_heads())
            })
            .map(|(id, _)| *id)
            .collect()
    }

    fn load(&mut self, id: &DocId) -> Option<AutoCommit> {
        self.docs.get(id).cloned()
    }

    fn store(&mut self, id: &DocId, doc: AutoCommit) {
        self.docs.insert(*id, doc);
        self.updated.insert(*id);
    }

    /// Only forgets the loaded copy: the stored document is taken back
    /// through the write path when the host handles the `Dropped` event.
    fn remove(&mut self, id: &DocId) {
        self.docs.remove(id);
        self.updated.remove(id);
    }

    fn author(&self, actor: &ActorId) -> Option<String> {
        self.authors.get(actor).cloned()
    }

    fn receipts(&self, id: &DocId) -> Vec<(String, Timestamp)> {
        self.receipts_out.get(id).cloned().unwrap_or_default()
    }

    fn received(&mut self, id: &DocId, receipts: Vec<(String, Timestamp)>) {
        let held = self.receipts_in.entry(*id).or_default();
        for (entry, at) in receipts {
            held.insert(entry, at);
        }
    }
}

/// The uplink's state as the session holds it between saves.
struct Held {
    state: State,
    /// The shared heads as last written to `uplink_shared`: a save writes
    /// only the documents whose heads differ.
    saved: BTreeMap<DocId, Vec<ChangeHash>>,
}

/// Reads the uplink's state: the state document and the shared heads,
/// one row per document.
async fn load_state(app: &AppState) -> Result<Held, UplinkError> {
    let stations = app.storage.stations();
    let mut state = match stations.uplink_state().await? {
        Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the stored uplink state does not read; starting over");
            State::default()
        }),
        None => State::default(),
    };
    let mut saved = BTreeMap::new();
    // A state saved before the heads had rows of their own holds them
    // inline; the next save writes them out.
    if state.client.shared.is_empty() {
        for (doc, heads) in stations.uplink_shared().await? {
            let id = doc.parse::<DocId>();
            let heads: Result<Vec<ChangeHash>, _> =
                heads.split(',').filter(|h| !h.is_empty()).map(str::parse).collect();
            match (id, heads) {
                (Ok(id), Ok(heads)) => {
                    saved.insert(id, heads);
                }
                // Forgetting what is shared only costs a whole push of it.
                _ => tracing::warn!(doc = %doc, "shared heads that do not read; the document is pushed whole"),
            }
        }
        state.client.shared = saved.clone();
    }
    Ok(Held { state, saved })
}

/// Saves the uplink's state: the state document without the shared heads,
/// and the heads of the documents where they changed since the last save.
async fn save_state(app: &AppState, held: &mut Held) -> Result<(), UplinkError> {
    let shared = std::mem::take(&mut held.state.client.shared);
    let json = serde_json::to_string(&held.state).expect("the uplink state serializes");
    held.state.client.shared = shared;
    let shared = &held.state.client.shared;
    let changed: Vec<(DocId, &Vec<ChangeHash>)> = shared
        .iter()
        .filter(|(id, heads)| held.saved.get(id) != Some(*heads))
        .map(|(id, heads)| (*id, heads))
        .collect();
    let dropped: Vec<DocId> = held
        .saved
        .keys()
        .filter(|id| !shared.contains_key(id))
        .copied()
        .collect();
    let rows: Vec<(String, String)> = changed
        .iter()
        .map(|(id, heads)| {
            let text: Vec<String> = heads.iter().map(ChangeHash::to_string).collect();
            (id.to_string(), text.join(","))
        })
        .collect();
    let gone: Vec<String> = dropped.iter().map(DocId::to_string).collect();
    app.storage.stations().save_uplink_state(&json, &rows, &gone).await?;
    for (id, heads) in changed {
        held.saved.insert(id, heads.clone());
    }
    for id in dropped {
        held.saved.remove(&id);
    }
    Ok(())
}

/// Opens the `/batch` connection to the tier above.
async fn connect(config: &UpstreamConfig, token: &str) -> Result<Link, UplinkError> {
    let ws_url = format!(
        "{}/batch?token={token}",
        config
            .url
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    );
    let connect = tokio::time::timeout(config.silence, tokio_tungstenite::connect_async(&ws_url))
        .await
        .map_err(|_| UplinkError::Unreachable("no answer to the connection".into()))?;
    let (ws, _) = connect.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(r) if r.status().as_u16() == 401 => {
            UplinkError::Unauthorized(format!("/batch answered {}", r.status()))
        }
        e => UplinkError::Unreachable(e.to_string()),
    })?;
    Ok(ws)
}

/// Runs exchanges on the session's connection (opening it if there is
/// none) until neither side has more to send. Returns the directory
/// generation the last pull named.
async fn exchanges(
    app: &AppState,
    config: &UpstreamConfig,
    session: &mut Session,
    token: &str,
    status: &watch::Sender<UplinkStatus>,
) -> Result<Option<u64>, UplinkError> {
    let ws = match &mut session.link {
        Some(ws) => ws,
        None => session.link.insert(connect(config, token).await?),
    };
    let held = match &mut session.held {
        Some(held) => held,
        None => session.held.insert(load_state(app).await?),
    };
    let mut generation = None;
    loop {
        // What changed here since the last push, paged like a pull.
        let head = app.storage.documents().head_seq().await?;
        let page = config.push_page_docs.max(1);
        let rows = app
            .storage
            .stations()
            .locally_changed(held.state.pushed, relay::UPSTREAM_USER, page as u32 + 1)
            .await?;
        let changed: Vec<(DocId, u64)> = rows
            .into_iter()
            .filter_map(|(key, seq)| Some((DocId(*key.parse::<DocumentId>().ok()?.as_bytes()), seq as u64)))
            .collect();
        let plan = plan_pull(changed, page, head.max(held.state.pushed) as u64);
        let mut docs = StationDocs::default();
        for id in &plan.docs {
            docs.load_from(app, *id).await?;
        }
        // The receipts of what is pushed, so its clocks run the same above.
        for (id, doc) in &docs.docs {
            let key = DocumentId::from_bytes(id.0).to_string();
            let recorded = app.storage.documents().receipts_after(&key, held.state.pushed).await?;
            let carried = relay::receipts_to_carry(doc, recorded);
            if !carried.is_empty() {
                docs.receipts_out.insert(*id, carried);
            }
        }
        // The authors of what is pushed, as this station bound their actors.
        for (id, doc) in docs.docs.iter_mut() {
            let shared = held.state.client.shared.get(id).cloned().unwrap_or_default();
            let actors: BTreeSet<ActorId> = doc.get_changes(&shared).iter().map(|c| c.actor_id().clone()).collect();
            for actor in actors {
                if let Some(r) = app.storage.documents().actor_record(&actor.to_hex_string()).await? {
                    docs.authors.insert(actor, r.user.to_string());
                }
            }
        }
        let mut client = BatchClient::new(held.state.client.clone()).with_early_pull(true);
        held.state.exchange += 1;
        let frames = client.start(held.state.exchange, &mut docs);
        for f in frames {
            ws.feed(Message::Binary(f.into()))
                .await
                .map_err(|e| UplinkError::Unreachable(e.to_string()))?;
        }
        ws.flush().await.map_err(|e| UplinkError::Unreachable(e.to_string()))?;
        let more = loop {
            let next = tokio::time::timeout(config.silence, ws.next())
                .await
                .map_err(|_| UplinkError::Unreachable(format!("nothing heard for {:?}", config.silence)))?;
            let bytes = match next {
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(f))) => {
                    return Err(UplinkError::Unreachable(format!(
                        "the tier above closed the connection: {f:?}"
                    )));
                }
                None => return Err(UplinkError::Unreachable("the connection dropped".into())),
                Some(Err(e)) => return Err(UplinkError::Unreachable(e.to_string())),
                Some(Ok(_)) => continue,
            };
            // Load the pulled documents first: the client reads them synchronously.
            if let Ok(Frame::Pull(pull)) = Frame::decode(&bytes) {
                for d in &pull.docs {
                    docs.load_from(app, d.id).await?;
                }
            }
            let events = client.handle(&bytes, &mut docs).map_err(|e| match e {
                sync_core::batch::BatchError::Peer { code, message } if code == "unauthorized" => {
                    UplinkError::Unauthorized(message)
                }
                e => UplinkError::Protocol(e.to_string()),
            })?;
            store_pulled(app, &mut docs).await?;
            let mut done = None;
            for e in &events {
                match e {
                    // Some changes refused above, or every one this station
                    // holds (the document is then taken out of every list).
                    ClientEvent::Refused { id, refused } | ClientEvent::Dropped { id, refused, .. } => {
                        let key = DocumentId::from_bytes(id.0).to_string();
                        let removed = app.docs.take_back(&key, refused).await?;
                        status.send_modify(|s| s.taken_back += removed.len() as u64);
                    }
                    ClientEvent::Done { cursor } => done = Some(*cursor),
                    ClientEvent::Settings { generation: g } => generation = Some(*g),
                    _ => {}
                }
            }
            held.state.client = client.state().clone();
            if let Some(cursor) = done {
                // Every part was acknowledged: what the plan listed is up.
                held.state.pushed = held.state.pushed.max(plan.cursor as i64);
                save_state(app, held).await?;
                status.send_modify(|s| {
                    s.cursor = cursor;
                    s.exchanges += 1;
                });
                break events.contains(&ClientEvent::More) || plan.more;
            }
            save_state(app, held).await?;
        };
        if !more {
            return Ok(generation);
        }
        // Let the station's own phones in between pages of a long catch-up.
        tokio::task::yield_now().await;
    }
}

/// Stores what the pull brought into documents: the changes each gained
/// since it was loaded, through the write path as the tier above's.
async fn store_pulled(app: &AppState, docs: &mut StationDocs) -> Result<(), UplinkError> {
    for id in std::mem::take(&mut docs.updated) {
        let Some(doc) = docs.docs.get_mut(&id) else { continue };
        let before = docs.loaded_heads.get(&id).cloned().unwrap_or_default();
        let changes = doc.get_changes(&before);
        let key = DocumentId::from_bytes(id.0).to_string();
        let receipts = docs.receipts_in.remove(&id).unwrap_or_default();
        let applied = app.docs.apply_upstream(&key, changes, &receipts).await?;
        if !applied.refused.is_empty() {
            tracing::warn!(doc = %key, refused = applied.refused.len(), "changes from the tier above did not apply");
        }
        docs.loaded_heads.insert(id, doc.get_heads());
    }
    Ok(())
}
