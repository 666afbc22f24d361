//! The automerge-repo v1 wire protocol, so stock automerge-repo clients (the npm packages
//! `@automerge/automerge-repo` + `@automerge/automerge-repo-network-websocket` 2.x) can sync with us.

mod document_id;

pub use document_id::{AutomergeUrl, DocumentId, DocumentIdError, URL_PREFIX};
