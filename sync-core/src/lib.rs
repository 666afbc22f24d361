//! Lianxin sync-core: the sans-IO heart shared by the server and the phones.

pub mod channel;
pub mod error;
pub mod hlc;
pub mod ids;
pub mod org;
pub mod repo_protocol;
pub mod time;

pub use error::SchemaError;
pub use hlc::{Hlc, HlcClock};
pub use ids::{EntryId, HouseholdId, UnitId, UserId};
pub use time::Timestamp;
pub use org::{Membership, OrgTree, Principal, Role, Unit, UnitKind};
pub use channel::{Category, Channel};
