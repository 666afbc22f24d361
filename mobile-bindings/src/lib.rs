//! Lianxin mobile bindings: an offline replica for phone apps, exposed to
//! Kotlin, Swift and Python through UniFFI.
//!
//! A [`Replica`] holds a signed-in user's documents in a local SQLite file.
//! Apps list and read petitions, rooms, notices and village directories as
//! flat records, and act on them (sign, contact, reply, comment, post with
//! @mentions, mark a notice read, add a household…); every action is checked
//! by sync-core's policy first, so a phone refuses locally what the server
//! would refuse. Sync uses the batched extension: `sync_now` over the
//! built-in WebSocket client, or `start_exchange` / `receive` for apps that
//! move the bytes with their platform's networking. When the server refuses
//! an edit, the replica reports it, drops it, and writes the user's later
//! edits again on top of the server's state, so they are not lost.
//!
//! Every exported call returns [`LianxinError`] on failure and never lets a
//! panic unwind into the foreign caller.

mod auto;
mod error;
mod inbox;
mod index;
mod intent;
mod net;
mod records;
mod replica;
mod store;
mod sync;

pub use auto::SyncListener;
pub use error::{ErrorKind, LianxinError};
pub use net::{SyncOptions, SyncTransport, default_sync_options};
pub use records::*;
pub use replica::Replica;

uniffi::setup_scaffolding!();
