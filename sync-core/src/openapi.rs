//! OpenAPI schemas (feature `openapi`) for the types whose serde form is
//! written by hand: ids and text enums are strings, stamps and times are
//! numbers or strings, configuration files are objects. Everything else
//! derives its schema next to its serde derive.

/// Implements `utoipa::ToSchema` for `$ty` with the schema `$schema`.
macro_rules! manual_schema {
    ($ty:ty, $name:expr, $schema:expr) => {
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object($schema.build()))
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}
pub(crate) use manual_schema;

/// A string schema with a description.
#[cfg(feature = "openapi")]
pub(crate) fn string(description: &str) -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
}

/// An object schema with a description (a configuration file whose form is
/// documented where it is read).
#[cfg(feature = "openapi")]
pub(crate) fn object(description: &str) -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .description(Some(description))
}

manual_schema!(crate::time::Timestamp, "Timestamp", {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .description(Some("milliseconds since the Unix epoch (UTC)"))
});
manual_schema!(
    crate::hlc::Hlc,
    "Hlc",
    string("a hybrid-logical-clock stamp `wall_ms.counter.node`, also the entry's id")
);
manual_schema!(
    crate::doc::Mention,
    "Mention",
    string("`@all` for every member of the room, else a user id")
);
manual_schema!(
    crate::notify::Roster,
    "Roster",
    object("a 7x24 duty roster: `{unit, covers_7x24, shifts: [{name?, days, start, end, members}]}`")
);
manual_schema!(
    crate::clocks::ClockRules,
    "ClockRules",
    object(
        "time limits: `{default: {sign, contact, reply}, overrides: [{channel?, category?, sign?, contact?, reply?}]}`, each limit `{wall_minutes | working_days, due_soon_before}`"
    )
);
manual_schema!(
    crate::clocks::Limit,
    "Limit",
    object("one time limit: `{wall_minutes | working_days, due_soon_before}`")
);
manual_schema!(
    crate::clocks::Calendar,
    "Calendar",
    object("a working-day calendar: `{utc_offset_minutes, weekend, holidays, makeup_days, covers?, source?}`")
);
