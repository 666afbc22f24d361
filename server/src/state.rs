//! The shared state every request handler and connection gets.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::AuthService;
use crate::clock::Clock;
use crate::config::Config;
use crate::docs::DocService;
use crate::http::{ConnectionLimits, HeavyWork};
use crate::notify::NotifyService;
use crate::storage::Storage;

/// HTTP-level settings taken from the configuration.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub cors_permissive: bool,
    /// The largest WebSocket message accepted on the sync endpoints.
    pub max_ws_message_bytes: usize,
    /// The most changed documents one batched-sync pull lists; the client
    /// fetches the rest with further exchanges.
    pub batch_page_docs: u32,
    /// Permits for loading heavy sync payloads (see `http::payload`).
    pub heavy_work: HeavyWork,
    /// Header read timeout and connections per IP (see `http::accept`).
    pub connections: ConnectionLimits,
    /// Documents the server lacks that one `/sync` connection may have
    /// offered and not yet created (see `http::sync_ws`).
    pub max_offered_docs: usize,
}

/// The default of [`HttpSettings::max_offered_docs`].
pub const MAX_OFFERED_DOCS: usize = 256;

/// The default of [`HttpSettings::batch_page_docs`].
pub const BATCH_PAGE_DOCS: u32 = 2000;

impl HttpSettings {
    pub fn from_config(config: &Config) -> Self {
        HttpSettings {
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
            cors_permissive: config.cors_permissive,
            max_ws_message_bytes: 16 * 1024 * 1024,
            batch_page_docs: BATCH_PAGE_DOCS,
            heavy_work: HeavyWork::for_this_machine(),
            connections: ConnectionLimits {
                header_read_timeout: config.header_read_timeout,
                max_per_ip: config.max_connections_per_ip.max(1),
            },
            max_offered_docs: config.max_offered_docs.max(1),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_permissive: false,
            max_ws_message_bytes: 16 * 1024 * 1024,
            batch_page_docs: BATCH_PAGE_DOCS,
            heavy_work: HeavyWork::for_this_machine(),
            connections: ConnectionLimits::default(),
            max_offered_docs: MAX_OFFERED_DOCS,
        }
    }
}

/// Cheap to clone: every field is a handle.
#[derive(Clone, Debug)]
pub struct AppState {
    pub storage: Storage,
    pub auth: AuthService,
    pub clock: Arc<dyn Clock>,
    pub http: Arc<HttpSettings>,
    /// Documents: the one path by which changes reach storage.
    pub docs: DocService,
    /// Inboxes, live delivery, rosters, the clock scheduler and the outbox.
    pub notify: NotifyService,
    /// This server process's id, unique per start (peer ids, multi-node fan-out).
    pub node_id: String,
}
