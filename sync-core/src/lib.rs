//! Lianxin sync-core: the sans-IO heart shared by the server and the phones.

pub mod author;
pub mod channel;
pub mod directory;
pub mod doc;
pub mod error;
pub mod hlc;
pub mod ids;
pub mod notice;
pub mod org;
pub mod petition;
pub mod policy;
pub mod room;
pub mod time;

pub use author::Author;
pub use channel::{Category, Channel};
pub use doc::DocKind;
pub use error::SchemaError;
pub use hlc::{Hlc, HlcClock};
pub use ids::{EntryId, HouseholdId, UnitId, UserId};
pub use org::{Membership, OrgTree, Principal, Role, Unit, UnitKind};
pub use time::Timestamp;
