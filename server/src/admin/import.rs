//! Importing units, users and memberships from a JSON or TOML file, as an idempotent upsert.
//!
//! ```toml
//! [[units]]
//! id = "county-a"
//! name = "A county"
//! kind = "county"
//!
//! [[units]]
//! id = "station-1"
//! name = "First station"
//! kind = "station"
//! parent = "county-a"
//!
//! [[users]]
//! id = "officer-zhang"
//! display_name = "张警官"
//! login = "zhang"
//! password = "initial password"     # set only if the user has none yet
//! memberships = [{ unit = "station-1", role = "officer" }]
//!
//! [[users]]
//! id = "resident-li"
//! display_name = "李大爷"
//! kind = "resident"
//! phone = "13800000001"
//! household = "hh-7"
//! # disabled = true                  # cannot sign in; every session revoked
//! ```
//!
//! Everything is written in one transaction: a file with an error changes
//! nothing, and the error names the entry (`users[3] (id "x")`). Importing
//! the same file again changes nothing; a user's memberships become exactly
//! the file's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sync_core::{HouseholdId, Membership, Role, Timestamp, Unit, UnitId, UnitKind, UserId};
use thiserror::Error;

use crate::auth::{AuthError, hash_password, normalize_phone};
use crate::storage::{NewUser, Storage, StorageError, UserKind};

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("cannot read {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not valid {format}: {message}")]
    Parse {
        path: String,
        format: &'static str,
        message: String,
    },
    #[error("{entry}: {message}")]
    Entry { entry: String, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// The file's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    #[serde(default)]
    pub units: Vec<serde_json::Value>,
    #[serde(default)]
    pub users: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitEntry {
    id: String,
    name: String,
    kind: UnitKind,
    #[serde(default)]
    parent: Option<String>,
    /// A disabled unit stays in the tree, shown as no longer in use.
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    id: String,
    display_name: String,
    /// Defaults to `staff` when a login is given, else `resident`.
    #[serde(default)]
    kind: Option<UserKind>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    household: Option<String>,
    #[serde(default)]
    memberships: Vec<MembershipEntry>,
    /// A disabled user cannot sign in and loses every session.
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipEntry {
    unit: String,
    role: Role,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub units: usize,
    pub users_created: usize,
    pub users_updated: usize,
    pub passwords_set: usize,
    /// Users disabled or re-enabled by this import.
    pub users_disabled_changed: usize,
    /// Units disabled or re-enabled by this import.
    pub units_disabled_changed: usize,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "imported {} unit(s); users: {} created, {} updated; {} initial password(s) set",
            self.units, self.users_created, self.users_updated, self.passwords_set
        )?;
        if self.users_disabled_changed > 0 {
            write!(f, "; {} user(s) disabled or re-enabled", self.users_disabled_changed)?;
        }
        if self.units_disabled_changed > 0 {
            write!(f, "; {} unit(s) disabled or re-enabled", self.units_disabled_changed)?;
        }
        Ok(())
    }
}

/// Reads `path` (TOML if it ends in `.toml`, else JSON) and imports it.
pub async fn import_file(storage: &Storage, path: &Path, now: Timestamp) -> Result<ImportReport, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let is_toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let file = parse(&text, is_toml).map_err(|(format, message)| ImportError::Parse {
        path: path.display().to_string(),
        format,
        message,
    })?;
    import(storage, file, now).await
}

/// Imports from text; `toml` selects the format.
pub async fn import_str(
    storage: &Storage,
    text: &str,
    toml: bool,
    now: Timestamp,
) -> Result<ImportReport, ImportError> {
    let file = parse(text, toml).map_err(|(format, message)| ImportError::Parse {
        path: "input".into(),
        format,
        message,
    })?;
    import(storage, file, now).await
}

fn parse(text: &str, is_toml: bool) -> Result<ImportFile, (&'static str, String)> {
    if is_toml {
        toml::from_str(text).map_err(|e| ("TOML", e.to_string()))
    } else {
        serde_json::from_str(text).map_err(|e| ("JSON", e.to_string()))
    }
}

fn entry_name(list: &str, index: usize, value: &serde_json::Value) -> String {
    match value.get("id").and_then(|v| v.as_str()) {
        Some(id) => format!("{list}[{index}] (id {id:?})"),
        None => format!("{list}[{index}]"),
    }
}

fn typed<T: DeserializeOwned>(entry: &str, value: &serde_json::Value) -> Result<T, ImportError> {
    serde_json::from_value(value.clone()).map_err(|e| bad(entry, e))
}

fn bad(entry: &str, message: impl fmt::Display) -> ImportError {
    ImportError::Entry {
        entry: entry.to_owned(),
        message: message.to_string(),
    }
}

/// The units an import file touches: each unit with its parent, and each
/// membership's unit (what an administrator must hold jurisdiction over).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportScope {
    pub units: Vec<(UnitId, Option<UnitId>)>,
    pub memberships: Vec<UnitId>,
    pub users: Vec<UserId>,
}

/// Checks a file's entries and says which units and users it touches.
pub fn scope(file: &ImportFile) -> Result<ImportScope, ImportError> {
    let units = validate_units(&file.units)?;
    let users = validate_users(&file.users)?;
    Ok(ImportScope {
        units: units.into_iter().map(|(_, u, _)| (u.id, u.parent)).collect(),
        memberships: users
            .iter()
            .flat_map(|u| u.memberships.iter().map(|m| m.unit.clone()))
            .collect(),
        users: users.into_iter().map(|u| u.user.id).collect(),
    })
}

/// Imports an already parsed file (the HTTP administration builds one per edit).
pub async fn import_parsed(storage: &Storage, file: ImportFile, now: Timestamp) -> Result<ImportReport, ImportError> {
    import(storage, file, now).await
}

async fn import(storage: &Storage, file: ImportFile, now: Timestamp) -> Result<ImportReport, ImportError> {
    let units = validate_units(&file.units)?;
    let disabled: BTreeMap<UnitId, bool> = units.iter().map(|(_, u, d)| (u.id.clone(), *d)).collect();
    let units: Vec<(String, Unit)> = units.into_iter().map(|(e, u, _)| (e, u)).collect();
    let users = validate_users(&file.users)?;
    let mut tx = storage.begin().await?;
    let mut report = ImportReport::default();

    let in_file: BTreeSet<&UnitId> = units.iter().map(|(_, u)| &u.id).collect();
    for (entry, unit) in order_by_parent(&units)? {
        if let Some(parent) = &unit.parent
            && !in_file.contains(parent)
            && !tx.unit_exists(parent).await?
        {
            return Err(bad(
                entry,
                format!("parent unit {parent:?} is neither in the file nor in the database"),
            ));
        }
        tx.upsert_unit(unit, now).await?;
        if tx
            .set_unit_disabled(unit.id.as_str(), disabled.get(&unit.id).copied().unwrap_or(false), now)
            .await?
        {
            report.units_disabled_changed += 1;
        }
        report.units += 1;
    }

    for ValidUser {
        entry,
        user,
        password,
        memberships,
        disabled,
    } in &users
    {
        for m in memberships {
            if !in_file.contains(&m.unit) && !tx.unit_exists(&m.unit).await? {
                return Err(bad(entry, format!("membership unit {:?} does not exist", m.unit)));
            }
        }
        let existed = tx.user_exists(&user.id).await?;
        let had_password = tx.upsert_user(user, now).await.map_err(|e| match e {
            StorageError::Conflict(message) => bad(entry, message),
            other => ImportError::Storage(other),
        })?;
        if existed {
            report.users_updated += 1;
        } else {
            report.users_created += 1;
        }
        if let Some(password) = password
            && !had_password
        {
            let hash = hash_password(password.clone()).await?;
            tx.set_password_hash(&user.id, &hash, now).await?;
            report.passwords_set += 1;
        }
        tx.set_memberships(&user.id, memberships).await?;
        if tx.set_user_disabled(&user.id, *disabled, now).await? {
            report.users_disabled_changed += 1;
        }
    }
    // Running servers poll this counter and reload the organisation.
    tx.bump_config_version(crate::storage::ORG).await?;
    tx.commit().await?;
    Ok(report)
}

fn validate_units(values: &[serde_json::Value]) -> Result<Vec<(String, Unit, bool)>, ImportError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let entry = entry_name("units", i, value);
        let e: UnitEntry = typed(&entry, value)?;
        let id = UnitId::new(e.id).map_err(|err| bad(&entry, err))?;
        if !seen.insert(id.clone()) {
            return Err(bad(&entry, format!("unit {id:?} appears twice")));
        }
        let parent = e.parent.map(UnitId::new).transpose().map_err(|err| bad(&entry, err))?;
        if parent.as_ref() == Some(&id) {
            return Err(bad(&entry, "a unit cannot be its own parent"));
        }
        if e.name.trim().is_empty() {
            return Err(bad(&entry, "name is empty"));
        }
        out.push((
            entry,
            Unit {
                id,
                name: e.name,
                kind: e.kind,
                parent,
            },
            e.disabled,
        ));
    }
    Ok(out)
}

struct ValidUser {
    entry: String,
    user: NewUser,
    password: Option<String>,
    memberships: Vec<Membership>,
    disabled: bool,
}

fn validate_users(values: &[serde_json::Value]) -> Result<Vec<ValidUser>, ImportError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let entry = entry_name("users", i, value);
        let e: UserEntry = typed(&entry, value)?;
        let id = UserId::new(e.id).map_err(|err| bad(&entry, err))?;
        if !seen.insert(id.clone()) {
            return Err(bad(&entry, format!("user {id:?} appears twice")));
        }
        let login = e.login.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
        let kind = e.kind.unwrap_or(if login.is_some() {
            UserKind::Staff
        } else {
            UserKind::Resident
        });
        if e.password.is_some() && login.is_none() {
            return Err(bad(&entry, "a password needs a login name"));
        }
        if e.password.as_ref().is_some_and(|p| p.len() < 8) {
            return Err(bad(&entry, "the initial password must have at least 8 characters"));
        }
        let phone = e
            .phone
            .map(|p| normalize_phone(&p))
            .transpose()
            .map_err(|err| bad(&entry, err))?;
        if login.is_none() && phone.is_none() && kind != UserKind::System {
            return Err(bad(&entry, "a user needs a login name or a phone number to sign in"));
        }
        let household = e
            .household
            .map(HouseholdId::new)
            .transpose()
            .map_err(|err| bad(&entry, err))?;
        let mut memberships = Vec::new();
        for m in e.memberships {
            let unit = UnitId::new(m.unit).map_err(|err| bad(&entry, err))?;
            if !sync_core::access::assignable(m.role) {
                return Err(bad(&entry, "the system role belongs to the server's own principal"));
            }
            memberships.push(Membership { unit, role: m.role });
        }
        let user = NewUser {
            id,
            login_name: login,
            display_name: e.display_name,
            phone,
            kind,
            household,
        };
        out.push(ValidUser {
            entry,
            user,
            password: e.password,
            memberships,
            disabled: e.disabled,
        });
    }
    Ok(out)
}

/// Units ordered so every parent in the file comes before its children.
fn order_by_parent(units: &[(String, Unit)]) -> Result<Vec<(&str, &Unit)>, ImportError> {
    let by_id: BTreeMap<&UnitId, &(String, Unit)> = units.iter().map(|e| (&e.1.id, e)).collect();
    let mut done: BTreeSet<&UnitId> = BTreeSet::new();
    let mut out = Vec::with_capacity(units.len());
    for (entry, unit) in units {
        // Walk up to the first ancestor that is done or not in the file,
        // then emit the chain top-down.
        let mut chain = vec![(entry.as_str(), unit)];
        let mut on_chain = BTreeSet::from([&unit.id]);
        let mut cur = unit;
        while let Some(parent) = &cur.parent {
            if done.contains(parent) || done.contains(&cur.id) {
                break;
            }
            let Some((p_entry, p_unit)) = by_id.get(parent).map(|e| (&e.0, &e.1)) else {
                break;
            };
            if !on_chain.insert(&p_unit.id) {
                return Err(bad(entry, "units form a cycle through their parents"));
            }
            chain.push((p_entry.as_str(), p_unit));
            cur = p_unit;
        }
        for (e, u) in chain.into_iter().rev() {
            if done.insert(&u.id) {
                out.push((e, u));
            }
        }
    }
    Ok(out)
}
