//! How a petition arrived and what it is about: the keys clock rules are configured by.

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::SchemaError;
            fn from_str(s: &str) -> Result<Self, $crate::error::SchemaError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::error::SchemaError::InvalidValue {
                        field: stringify!($name).to_lowercase(),
                        reason: format!("unknown value {s:?}"),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::error::SchemaError;
            fn try_from(s: String) -> Result<Self, $crate::error::SchemaError> { s.parse() }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> &'static str { v.as_str() }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(
                    utoipa::openapi::schema::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .enum_values(Some([$($text),+]))
                        .build(),
                ))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

pub(crate) use text_enum;

text_enum!(
    /// Where a petition came in.
    Channel {
        /// 局长信箱: the city director's mailbox (website, official account).
        DirectorMailbox = "director_mailbox",
        /// 所长微信: the station chief's own line.
        ChiefLine = "chief_line",
        /// 户户通: the household's one officer contact.
        HouseholdLine = "household_line",
        /// Raised from a message in a village room.
        VillageRoom = "village_room",
        /// Recorded by an officer for a resident who came in person or called.
        WalkIn = "walk_in",
        /// Submitted by another system through the API.
        Api = "api",
    }
);

text_enum!(
    /// What a petition is about.
    Category {
        Consultation = "consultation",
        Help = "help",
        Complaint = "complaint",
        Report = "report",
        Lead = "lead",
        Suggestion = "suggestion",
        /// Not a police matter: water, roads, land; dispatched to a department.
        NonPolice = "non_police",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), *c);
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), *c);
        }
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>().unwrap(), *c);
        }
        assert!("mailbox".parse::<Channel>().is_err());
    }
}
