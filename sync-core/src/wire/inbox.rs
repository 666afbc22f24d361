//! The per-user inbox: `GET /api/inbox`, `POST /api/inbox/ack`, and the
//! items SSE and the sync sockets push.

use serde::{Deserialize, Serialize};

/// One notification as one person receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxItem {
    /// The item's place in its user's inbox: pass it back as `after` or to ack.
    pub cursor: i64,
    pub user: String,
    /// The notification's key: the same on every node and after every retry.
    pub key: String,
    /// The storage id of the document it is about (bs58, as `/api/petitions/{id}` takes it).
    pub doc_id: String,
    /// The document's own id as written in it (`automerge:…`).
    pub doc: String,
    /// What happened: `petition_new`, `mention`, `notice`, `overdue`, …
    pub kind: String,
    /// Who it was addressed to: `user:…`, `unit:…`, `household:…` or `all`.
    pub recipient: String,
    /// The entry (event, message) it is about.
    #[serde(default)]
    pub entry: Option<String>,
    pub urgent: bool,
    /// When it happened (the entry's stamp).
    pub at_ms: i64,
    /// A sentence for people, in Chinese.
    pub text: String,
    /// When the inbox row was written.
    pub created_at: i64,
}

/// A page of the inbox, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    /// The cursor to ask after next (the last item's, or the one asked after).
    pub next: i64,
    /// More items wait after this page.
    pub more: bool,
    /// How far the inbox is acknowledged.
    pub acked: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckRequest {
    pub cursor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckResponse {
    pub acked: i64,
}
