//! Identifier newtypes, so a unit id is never passed where a user id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::SchemaError;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id after checking it is non-empty, at most 128 bytes,
            /// and made of ASCII letters, digits, `-`, `_`, `.` or `:`.
            pub fn new(id: impl Into<String>) -> Result<Self, SchemaError> {
                let id = id.into();
                if is_valid_id(&id) {
                    Ok(Self(id))
                } else {
                    Err(SchemaError::InvalidId { kind: stringify!($name), value: id })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = SchemaError;
            fn from_str(s: &str) -> Result<Self, SchemaError> {
                Self::new(s)
            }
        }

        crate::openapi::manual_schema!($name, stringify!($name), {
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .pattern(Some("^[A-Za-z0-9._:-]{1,128}$"))
        });
    };
}

string_id!(
    /// A person: resident, officer, staff member, or the server's own actor.
    UserId
);
string_id!(
    /// A node of the organisation tree: city, county, station, village, department…
    UnitId
);
string_id!(
    /// A household in a village directory.
    HouseholdId
);
string_id!(
    /// An entry (timeline event, message, redaction…) inside a document.
    EntryId
);

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}
