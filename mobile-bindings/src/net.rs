//! The built-in clients: the batched sync WebSocket (`/batch`) with
//! reconnection and backoff, and small HTTP calls (`/api/me`, the inbox).
//!
//! Both block the calling thread (apps call them from a background thread
//! or job); neither holds the replica's lock while waiting on the network.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::error::{ErrorKind, LianxinError, Result, guard};
use crate::records::{SyncEvent, SyncReport};
use crate::replica::{Replica, random_bytes};

/// How `sync_with` connects and retries.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncOptions {
    /// Connection attempts before giving up (at least 1).
    pub max_attempts: u32,
    /// The first wait after a failed attempt; doubled each time, with up to 25% jitter.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Connect, read and write timeout.
    pub timeout_ms: u64,
    /// Exchanges on one connection before returning (paged pulls, replayed edits).
    pub max_exchanges: u32,
    /// Fetch the notification inbox after a successful sync.
    pub fetch_inbox: bool,
    /// Let the server send what changed on its side while the push is still
    /// going up (see `Replica::start_exchange`).
    pub early_pull: bool,
    /// Carry the inbox (and learn whether the settings changed) inside the
    /// exchange itself, so a reconnect is one exchange on one connection.
    /// Against a server that predates it, or when off, the inbox is fetched
    /// over HTTP after the exchange (`GET /api/inbox`, `POST /api/inbox/ack`)
    /// and the settings every time, as before.
    pub inbox_in_exchange: bool,
    /// How the exchange travels.
    pub transport: SyncTransport,
}

/// How the built-in client reaches `/batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncTransport {
    /// The WebSocket; where the upgrade fails (a proxy answering it with
    /// anything but 101, a connection dropped during the handshake) the
    /// same exchange as one `POST /batch`, and the POST alone for the next
    /// ten minutes.
    Auto,
    /// The WebSocket only.
    WebSocket,
    /// `POST /batch` only: one HTTP request per exchange.
    Http,
}

/// How long the built-in client keeps to `POST /batch` after a WebSocket upgrade failed.
const HTTP_AFTER_FAILED_UPGRADE: Duration = Duration::from_secs(600);

#[uniffi::export]
pub fn default_sync_options() -> SyncOptions {
    SyncOptions {
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 30_000,
        timeout_ms: 30_000,
        max_exchanges: 16,
        fetch_inbox: true,
        early_pull: true,
        inbox_in_exchange: true,
        transport: SyncTransport::Auto,
    }
}

/// What one exchange taught the pass.
#[derive(Default)]
struct Exchanged {
    /// Another exchange is wanted.
    more: bool,
    /// The exchange carried the inbox.
    inbox: bool,
    /// New notifications it brought.
    added: u32,
    /// The settings generation the pull carried.
    settings: Option<u64>,
}

impl Exchanged {
    /// Reads the events of a finished exchange into `report`.
    fn of(events: &[SyncEvent], report: &mut SyncReport) -> Self {
        let mut x = Exchanged::default();
        for e in events {
            match e {
                SyncEvent::More | SyncEvent::EditsReplayed { .. } => x.more = true,
                SyncEvent::Notifications { added, .. } => {
                    x.inbox = true;
                    x.added += added;
                    report.notifications_added += added;
                }
                SyncEvent::Settings { generation } => x.settings = Some(*generation),
                _ => {}
            }
        }
        x
    }
}

pub(crate) type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// `http(s)://host/x` → `ws(s)://host/x`.
pub(crate) fn ws_base(server_url: &str) -> String {
    if let Some(rest) = server_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = server_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        server_url.to_string()
    }
}

/// Percent-encodes a query value (tokens are base64url with dots, but be safe).
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn network(e: impl std::fmt::Display) -> LianxinError {
    LianxinError::Network(e.to_string())
}

/// Maps a WebSocket error: HTTP answers to the upgrade keep their meaning.
fn ws_error(e: tungstenite::Error) -> LianxinError {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            match status.as_u16() {
                401 | 403 => LianxinError::Unauthorized(format!("the sync upgrade was refused ({status}): {body}")),
                404 => LianxinError::Protocol(format!(
                    "the server has no batched sync endpoint /batch ({status}); is it up to date?"
                )),
                s if s >= 500 => LianxinError::Network(format!("server error {status}: {body}")),
                _ => LianxinError::Protocol(format!("the sync upgrade was answered {status}: {body}")),
            }
        }
        other => network(format!("sync connection: {other}")),
    }
}

/// The WebSocket handshake over a connected stream, with TLS for `wss://`.
#[cfg(feature = "tls")]
fn handshake(request: tungstenite::handshake::client::Request, stream: TcpStream, _secure: bool) -> Result<Socket> {
    handshake_result(tungstenite::client_tls_with_config(request, stream, None, None))
}

/// The WebSocket handshake over a connected stream; `wss://` needs the `tls` feature.
#[cfg(not(feature = "tls"))]
fn handshake(request: tungstenite::handshake::client::Request, stream: TcpStream, secure: bool) -> Result<Socket> {
    if secure {
        return Err(LianxinError::invalid(
            "wss:// needs a build with the `tls` feature of lianxin-mobile",
        ));
    }
    handshake_result(tungstenite::client::client_with_config(
        request,
        MaybeTlsStream::Plain(stream),
        None,
    ))
}

fn handshake_result<S>(
    r: std::result::Result<
        (Socket, S),
        tungstenite::HandshakeError<tungstenite::ClientHandshake<MaybeTlsStream<TcpStream>>>,
    >,
) -> Result<Socket> {
    match r {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(ws_error(e)),
        Err(tungstenite::HandshakeError::Interrupted(_)) => Err(network("the sync handshake was interrupted")),
    }
}

/// Whether a failed connection attempt reached something that refused the
/// WebSocket upgrade (a proxy's answer other than 101, or a connection
/// dropped during the handshake), rather than the token or the server.
///
/// A 401 or 403 answer to the upgrade counts too: Lianxin's `/batch` never
/// gives one (it checks the token after the upgrade and says so in an `err`
/// frame), so it came from a proxy that refuses WebSockets, and the same
/// exchange as a `POST /batch` hears the server's own verdict on the token.
fn upgrade_failed(e: &LianxinError) -> bool {
    match e {
        LianxinError::Unauthorized(m) => m.starts_with("the sync upgrade was refused"),
        LianxinError::InvalidInput(_) => false,
        LianxinError::Protocol(_) => true,
        LianxinError::Network(m) => {
            m.starts_with("sync connection") || m.contains("handshake") || m.starts_with("server error")
        }
        _ => false,
    }
}

/// Notes in the report why the pass fell back to `POST /batch`.
fn tracing_note(report: &mut SyncReport, e: &LianxinError) {
    report.inbox_note = Some(format!("WebSocket upgrade failed, using POST /batch: {e}"));
}

/// The server's close frame as an error: 4001 means the token is no longer good.
fn close_error(frame: Option<tungstenite::protocol::CloseFrame>) -> LianxinError {
    let reason = frame.as_ref().map(|f| format!(": {}", f.reason)).unwrap_or_default();
    use sync_core::wire::CloseCode;
    match frame.map(|f| u16::from(f.code)).and_then(CloseCode::from_code) {
        Some(CloseCode::Unauthorized) => {
            LianxinError::Unauthorized(format!("the server closed the sync connection{reason}"))
        }
        Some(CloseCode::BadFrame) => LianxinError::Protocol(format!("the server closed the sync connection{reason}")),
        _ => network(format!("the server closed the sync connection{reason}")),
    }
}

impl Replica {
    fn connect(&self, timeout: Duration) -> Result<Socket> {
        let (base, token) = {
            let inner = self.lock();
            (inner.session.server_url.clone(), inner.token.clone())
        };
        let token = token.ok_or_else(|| LianxinError::Unauthorized("no access token: call set_access_token".into()))?;
        let url = format!("{}/batch?token={}", ws_base(&base), query_value(&token));
        let request = url
            .as_str()
            .into_client_request()
            .map_err(|e| LianxinError::invalid(format!("server url {base:?}: {e}")))?;
        let host = request
            .uri()
            .host()
            .ok_or_else(|| LianxinError::invalid(format!("server url {base:?} has no host")))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let secure = request.uri().scheme_str() == Some("wss");
        let port = request.uri().port_u16().unwrap_or(if secure { 443 } else { 80 });
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| network(format!("cannot resolve {host}: {e}")))?
            .collect();
        let mut last = network(format!("{host} has no address"));
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout)).map_err(network)?;
                    stream.set_write_timeout(Some(timeout)).map_err(network)?;
                    let _ = stream.set_nodelay(true);
                    return handshake(request, stream, secure);
                }
                Err(e) => last = network(format!("cannot connect to {addr}: {e}")),
            }
        }
        Err(last)
    }

    /// One exchange over an open socket.
    fn exchange_over(&self, socket: &mut Socket, report: &mut SyncReport, options: &SyncOptions) -> Result<Exchanged> {
        let carry = options.fetch_inbox && options.inbox_in_exchange;
        let frames = self.lock().start_exchange(options.early_pull, carry)?;
        for f in frames {
            report.bytes_sent += f.len() as u64;
            if let Err(e) = socket.send(Message::binary(f)) {
                // The server may have said why before closing (an `err` frame
                // for an expired token): that is the better error.
                return Err(self.reason_for_close(socket).unwrap_or_else(|| ws_error(e)));
            }
        }
        report.exchanges += 1;
        let mut events = Vec::new();
        loop {
            match socket.read().map_err(ws_error)? {
                Message::Binary(bytes) => {
                    report.bytes_received += bytes.len() as u64;
                    let got = self.lock().receive(&bytes)?;
                    let done = got.iter().any(|e| matches!(e, SyncEvent::Done { .. }));
                    events.extend(got);
                    if done {
                        break;
                    }
                }
                Message::Close(frame) => return Err(close_error(frame)),
                // Pings are answered by the socket itself; text frames are not ours.
                _ => {}
            }
        }
        let x = Exchanged::of(&events, report);
        report.events.extend(events);
        if x.added > 0 {
            // Stored: say so now, without waiting for an answer. If this
            // frame is lost, the next exchange's push says it again.
            if let Some(ack) = self.lock().inbox_ack_frame()? {
                report.bytes_sent += ack.len() as u64;
                socket.send(Message::binary(ack)).map_err(ws_error)?;
            }
        }
        Ok(x)
    }

    /// One exchange as one `POST /batch`. The inbox acknowledgement rides
    /// with the next exchange's push.
    fn exchange_http(&self, agent: &ureq::Agent, report: &mut SyncReport, options: &SyncOptions) -> Result<Exchanged> {
        let carry = options.fetch_inbox && options.inbox_in_exchange;
        let frames = self.lock().start_exchange(false, carry)?;
        let body = sync_core::batch::join_frames(&frames);
        let (base, token) = {
            let inner = self.lock();
            (inner.session.server_url.clone(), inner.token.clone())
        };
        let token = token.ok_or_else(|| LianxinError::Unauthorized("no access token: call set_access_token".into()))?;
        report.bytes_sent += body.len() as u64;
        report.exchanges += 1;
        let mut response = agent
            .post(&format!("{base}/batch"))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", sync_core::batch::BODY_CONTENT_TYPE)
            .send(&body[..])
            .map_err(|e| network(format!("POST /batch: {e}")))?;
        let status = response.status().as_u16();
        let is_frames = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(sync_core::batch::BODY_CONTENT_TYPE));
        let answer = response
            .body_mut()
            .with_config()
            .limit(sync_core::batch::MAX_FRAME_BYTES as u64 * 4)
            .read_to_vec()
            .map_err(|e| network(format!("POST /batch: {e}")))?;
        report.bytes_received += answer.len() as u64;
        if !is_frames {
            let text = String::from_utf8_lossy(&answer);
            return Err(match status {
                401 | 403 => LianxinError::Unauthorized(format!("POST /batch answered {status}: {text}")),
                404 | 405 => {
                    LianxinError::Protocol(format!("the server has no POST /batch ({status}); is it up to date?"))
                }
                s if s >= 500 => LianxinError::Network(format!("POST /batch answered {status}: {text}")),
                _ => LianxinError::Protocol(format!("POST /batch answered {status}: {text}")),
            });
        }
        let frames = sync_core::batch::split_frames(&answer)
            .map_err(|e| LianxinError::Protocol(format!("POST /batch answer: {e}")))?;
        let mut events = Vec::new();
        let mut done = false;
        for frame in frames {
            let got = self.lock().receive(frame)?;
            done |= got.iter().any(|e| matches!(e, SyncEvent::Done { .. }));
            events.extend(got);
        }
        if !done {
            return Err(network("the POST /batch answer ended before the pull"));
        }
        let x = Exchanged::of(&events, report);
        report.events.extend(events);
        Ok(x)
    }

    /// Reads what the server sent before the connection failed, looking for an error frame.
    fn reason_for_close(&self, socket: &mut Socket) -> Option<LianxinError> {
        for _ in 0..4 {
            match socket.read() {
                Ok(Message::Binary(bytes)) => {
                    if let Err(e) = self.lock().receive(&bytes) {
                        return Some(e);
                    }
                }
                Ok(Message::Close(frame)) => return Some(close_error(frame)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// One sync pass: pushes and pulls until nothing more is to be said,
    /// then fetches the inbox. Uses `socket` if it is open (a connection the
    /// server keeps for further exchanges), connects otherwise, and leaves
    /// the connection in `socket` for the next pass. Network failures are
    /// retried with exponential backoff and jitter, up to `max_attempts`.
    pub(crate) fn sync_on(&self, socket: &mut Option<Socket>, options: &SyncOptions) -> Result<SyncReport> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        let timeout = Duration::from_millis(options.timeout_ms.max(100));
        let mut report = SyncReport {
            exchanges: 0,
            connections: 0,
            bytes_sent: 0,
            bytes_received: 0,
            events: Vec::new(),
            notifications_added: 0,
            inbox_note: None,
        };
        let mut failures = 0;
        let mut backoff = options.initial_backoff_ms;
        let mut exchanges = 0;
        // What the last exchange carried: the inbox, the settings generation.
        let mut last = Exchanged::default();
        let mut agent: Option<ureq::Agent> = None;
        loop {
            let attempt: Result<()> = (|| {
                loop {
                    let x = if self.use_http(options.transport) {
                        if agent.is_none() {
                            report.connections += 1;
                        }
                        let agent = agent.get_or_insert_with(|| Self::agent(timeout));
                        self.exchange_http(agent, &mut report, options)?
                    } else {
                        let open = match socket {
                            Some(s) => s,
                            None => {
                                report.connections += 1;
                                match self.connect(timeout) {
                                    Ok(s) => socket.insert(s),
                                    Err(e) if options.transport == SyncTransport::Auto && upgrade_failed(&e) => {
                                        tracing_note(&mut report, &e);
                                        *self.http_until.lock().unwrap_or_else(|p| p.into_inner()) =
                                            Some(std::time::Instant::now() + HTTP_AFTER_FAILED_UPGRADE);
                                        continue;
                                    }
                                    Err(e) => return Err(e),
                                }
                            }
                        };
                        self.exchange_over(open, &mut report, options)?
                    };
                    exchanges += 1;
                    let more = x.more;
                    last = x;
                    if !more || exchanges >= options.max_exchanges.max(1) {
                        return Ok(());
                    }
                }
            })();
            match attempt {
                Ok(()) => break,
                Err(e) => {
                    // Whatever went wrong, the connection is not to be trusted again.
                    *socket = None;
                    agent = None;
                    if e.kind() != ErrorKind::Network {
                        return Err(e);
                    }
                    failures += 1;
                    if failures >= options.max_attempts.max(1) {
                        return Err(LianxinError::Network(format!(
                            "gave up after {failures} attempts: {}",
                            e.message()
                        )));
                    }
                    let jitter = u64::from(random_bytes::<1>()?[0]) * backoff / 1024;
                    std::thread::sleep(Duration::from_millis(backoff + jitter));
                    backoff = (backoff * 2).min(options.max_backoff_ms.max(options.initial_backoff_ms));
                }
            }
        }
        if options.fetch_inbox {
            if !last.inbox {
                // An older server, or the exchange was asked not to carry it.
                match self.fetch_inbox_inner(timeout) {
                    Ok(n) => report.notifications_added += n,
                    Err(e) => report.inbox_note = Some(e.to_string()),
                }
            }
            // Deadlines follow the server's clock rules; a failure here does
            // not undo the sync, and the last rules fetched stay in force.
            // With the exchange's settings generation they are fetched only
            // when it moved.
            let generation = last.settings.filter(|_| options.inbox_in_exchange);
            let stale = match generation {
                Some(g) => self.lock().store.meta("settings_generation")? != Some(g.to_string()),
                None => true,
            };
            if stale {
                match self.refresh_settings_inner(timeout) {
                    Ok(()) => {
                        if let Some(g) = generation {
                            self.lock().store.set_meta("settings_generation", &g.to_string())?;
                        }
                    }
                    Err(e) => {
                        let note = report.inbox_note.take().map(|n| format!("{n}; ")).unwrap_or_default();
                        report.inbox_note = Some(format!("{note}settings: {e}"));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Whether this pass sends its exchanges as `POST /batch`.
    fn use_http(&self, transport: SyncTransport) -> bool {
        match transport {
            SyncTransport::Http => true,
            SyncTransport::WebSocket => false,
            SyncTransport::Auto => self
                .http_until
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|until| std::time::Instant::now() < until),
        }
    }

    fn sync_inner(&self, options: &SyncOptions) -> Result<SyncReport> {
        let mut socket = None;
        let report = self.sync_on(&mut socket, options);
        if let Some(mut s) = socket {
            let _ = s.close(None);
            let _ = s.flush();
        }
        report
    }

    /// An HTTP agent that reports statuses instead of failing on them.
    pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
        ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .build(),
        )
    }

    /// GET or POST `path` on the server with the access token; returns status and body.
    pub(crate) fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String)> {
        let (base, token) = {
            let inner = self.lock();
            (inner.session.server_url.clone(), inner.token.clone())
        };
        let token = token.ok_or_else(|| LianxinError::Unauthorized("no access token: call set_access_token".into()))?;
        let url = format!("{base}{path}");
        let agent = Self::agent(timeout);
        let auth = format!("Bearer {token}");
        let response = match (method, body) {
            ("POST", Some(b)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = response.map_err(|e| network(format!("{method} {path}: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| network(format!("{method} {path}: {e}")))?;
        if status == 401 {
            return Err(LianxinError::Unauthorized(format!("{method} {path}: {text}")));
        }
        Ok((status, text))
    }
}

#[uniffi::export]
impl Replica {
    /// Syncs with the server now: connects to `/batch`, pushes local edits,
    /// applies the server's, rebases around refused edits, and fetches the
    /// notification inbox. Retries with backoff on network failures.
    pub fn sync_now(&self) -> Result<SyncReport> {
        guard(|| self.sync_inner(&default_sync_options()))
    }

    /// `sync_now` with explicit options.
    pub fn sync_with(&self, options: SyncOptions) -> Result<SyncReport> {
        guard(|| self.sync_inner(&options))
    }

    /// Reads `/api/me` and takes the memberships and household it lists
    /// (the organisation tree stays as it is).
    pub fn refresh_me(&self) -> Result<()> {
        guard(|| {
            let (status, body) = self.http("GET", "/api/me", None, Duration::from_secs(30))?;
            if status != 200 {
                return Err(LianxinError::Protocol(format!("GET /api/me answered {status}: {body}")));
            }
            let me: sync_core::wire::Me =
                serde_json::from_str(&body).map_err(|e| LianxinError::Protocol(format!("GET /api/me: {e}")))?;
            let mut inner = self.lock();
            if me.id != inner.session.principal.user {
                return Err(LianxinError::Unauthorized(format!(
                    "the token belongs to {}, this replica to {}",
                    me.id, inner.session.principal.user
                )));
            }
            inner.session.principal.memberships = me.memberships;
            inner.session.principal.household = me.household;
            Ok(())
        })
    }
}

#[uniffi::export]
impl Replica {
    /// Fetches the server's clock rules and working-day calendar
    /// (`GET /api/clock-rules`) and the unit tree the user may see
    /// (`GET /api/units`), keeps them, and re-indexes the petitions, so the
    /// deadlines this phone shows equal the server's. `sync_now` calls it.
    pub fn refresh_settings(&self) -> Result<()> {
        guard(|| self.refresh_settings_inner(Duration::from_secs(30)))
    }

    /// Takes a `GET /api/clock-rules` answer the app fetched itself.
    pub fn receive_clock_settings(&self, body: String) -> Result<()> {
        guard(|| self.receive_clock_settings_inner(&body))
    }

    /// Takes a `GET /api/units` answer the app fetched itself: the
    /// organisation tree the local policy checks against.
    pub fn receive_units(&self, body: String) -> Result<()> {
        guard(|| self.receive_units_inner(&body))
    }
}

impl Replica {
    fn refresh_settings_inner(&self, timeout: Duration) -> Result<()> {
        let (status, body) = self.http("GET", "/api/clock-rules", None, timeout)?;
        if status != 200 {
            return Err(LianxinError::Protocol(format!(
                "GET /api/clock-rules answered {status}: {body}"
            )));
        }
        self.receive_clock_settings_inner(&body)?;
        let (status, body) = self.http("GET", "/api/units", None, timeout)?;
        if status != 200 {
            return Err(LianxinError::Protocol(format!(
                "GET /api/units answered {status}: {body}"
            )));
        }
        self.receive_units_inner(&body)
    }

    fn receive_clock_settings_inner(&self, body: &str) -> Result<()> {
        let clocks: sync_core::wire::ClockSettings =
            serde_json::from_str(body).map_err(|e| LianxinError::Protocol(format!("clock rules: {e}")))?;
        let mut inner = self.lock();
        if inner.session.clocks == clocks {
            return Ok(());
        }
        inner.store.set_meta("clock_settings", body)?;
        inner.session.clocks = clocks;
        inner.reindex_petitions()
    }

    fn receive_units_inner(&self, body: &str) -> Result<()> {
        let units: sync_core::wire::UnitList =
            serde_json::from_str(body).map_err(|e| LianxinError::Protocol(format!("units: {e}")))?;
        let mut inner = self.lock();
        inner.store.set_meta("units", body)?;
        inner.session.org = crate::replica::org_of(&units);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_become_socket_urls() {
        assert_eq!(ws_base("http://127.0.0.1:8470"), "ws://127.0.0.1:8470");
        assert_eq!(ws_base("https://lianxin.example"), "wss://lianxin.example");
        assert_eq!(query_value("a.b_c-d+e/f"), "a.b_c-d%2Be%2Ff");
    }
}
