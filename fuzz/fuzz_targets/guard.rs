//! The payload guard: it never panics, and what it passes never panics Automerge (loaded into
//! an empty and into a non-empty document, or received and answered as a sync message).
#![no_main]

use std::sync::OnceLock;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use libfuzzer_sys::fuzz_target;
use sync_core::guard::{Limits, chunks, sync_message};

/// A small document with a few changes, for payloads to land in.
fn base() -> &'static AutoCommit {
    static BASE: OnceLock<AutoCommit> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut doc = AutoCommit::new();
        for i in 0..4 {
            doc.put(ROOT, "n", i).expect("put");
            doc.commit();
        }
        doc
    })
}

/// Limits small enough that an accepted payload stays quick under the fuzzer.
fn limits() -> Limits {
    Limits {
        max_payload_ops: 20_000,
        max_change_ops: 20_000,
        max_column_items: 50_000,
        max_payload_items: 200_000,
        max_inflated_bytes: 1 << 20,
        ..Limits::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    if chunks(data, &limits).is_ok() {
        let _ = AutoCommit::new().load_incremental(data);
        let _ = base().clone().load_incremental(data);
    }
    if sync_message(data, &limits).is_ok()
        && let Ok(message) = sync::Message::decode(data)
    {
        let mut doc = base().clone();
        let mut state = sync::State::new();
        if doc.sync().receive_sync_message(&mut state, message).is_ok() {
            let _ = doc.sync().generate_sync_message(&mut state);
        }
    }
});
