//! The village directory: households, their representative, village-group
//! tag and assigned officer. Officers edit it offline, door to door.

use std::borrow::Borrow;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::author::Author;
use crate::doc::am;
use crate::doc::{DocKind, check_text, init_root, limits};
use crate::error::SchemaError;
use crate::ids::{HouseholdId, UnitId, UserId};
use crate::time::Timestamp;

/// One household. Concurrent edits of the same field resolve to one value
/// on every replica (Automerge's deterministic last-writer rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Household {
    pub id: HouseholdId,
    pub name: String,
    /// The household's one contact (户主 or the literate smartphone user).
    #[serde(default)]
    pub representative: Option<UserId>,
    #[serde(default)]
    pub representative_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Village group (村民小组) tag.
    #[serde(default)]
    pub group_tag: Option<String>,
    /// The officer in charge of the household.
    #[serde(default)]
    pub officer: Option<UserId>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// Households are never deleted; they move out.
    #[serde(default)]
    pub moved_out: bool,
}

/// Fields of a household an officer may set.
pub(crate) const HOUSEHOLD_FIELDS: &[&str] = &[
    "name",
    "representative",
    "representative_name",
    "phone",
    "group_tag",
    "officer",
    "address",
    "note",
    "moved_out",
    "updated_by",
    "updated_at",
];

impl Household {
    pub fn validate(&self) -> Result<(), SchemaError> {
        check_text("name", &self.name, limits::TITLE, true)?;
        for (field, v) in [
            ("representative_name", &self.representative_name),
            ("phone", &self.phone),
            ("group_tag", &self.group_tag),
            ("address", &self.address),
        ] {
            if let Some(v) = v {
                check_text(field, v, limits::SHORT, false)?;
            }
        }
        if let Some(n) = &self.note {
            check_text("note", n, limits::NOTE, false)?;
        }
        Ok(())
    }

    fn fields(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("name", Some(self.name.clone())),
            ("representative", self.representative.as_ref().map(|u| u.to_string())),
            ("representative_name", self.representative_name.clone()),
            ("phone", self.phone.clone()),
            ("group_tag", self.group_tag.clone()),
            ("officer", self.officer.as_ref().map(|u| u.to_string())),
            ("address", self.address.clone()),
            ("note", self.note.clone()),
        ]
    }
}

#[derive(Debug, Clone)]
pub struct DirectoryDoc<D = AutoCommit> {
    doc: D,
}

impl DirectoryDoc {
    pub fn create(actor: ActorId, village: UnitId, created_by: &UserId) -> Result<Self, SchemaError> {
        let mut doc = AutoCommit::new().with_actor(actor);
        init_root(&mut doc, DocKind::Directory)?;
        let info = doc.put_object(ROOT, "info", ObjType::Map)?;
        am::put_str(&mut doc, &info, "village", village.as_str())?;
        am::put_str(&mut doc, &info, "created_by", created_by.as_str())?;
        doc.put_object(ROOT, "households", ObjType::Map)?;
        doc.commit();
        Ok(DirectoryDoc { doc })
    }
}

impl<D: Borrow<AutoCommit>> DirectoryDoc<D> {
    pub fn village(&self) -> Result<UnitId, SchemaError> {
        let info = am::req_obj(self.d(), &ROOT, "info", ObjType::Map)?;
        am::parse(self.d(), &info, "village")
    }

    pub fn households(&self) -> Result<Vec<Household>, SchemaError> {
        let hs = am::req_obj(self.d(), &ROOT, "households", ObjType::Map)?;
        let mut out = Vec::new();
        for item in self.d().map_range(&hs, ..) {
            let id = HouseholdId::new(item.key.to_string())?;
            let o = item.id();
            let h = Household {
                id,
                name: am::req_str(self.d(), &o, "name")?,
                representative: am::parse_opt(self.d(), &o, "representative")?,
                representative_name: am::opt_str(self.d(), &o, "representative_name")?,
                phone: am::opt_str(self.d(), &o, "phone")?,
                group_tag: am::opt_str(self.d(), &o, "group_tag")?,
                officer: am::parse_opt(self.d(), &o, "officer")?,
                address: am::opt_str(self.d(), &o, "address")?,
                note: am::opt_str(self.d(), &o, "note")?,
                moved_out: am::opt_bool(self.d(), &o, "moved_out")?.unwrap_or(false),
            };
            out.push(h);
        }
        Ok(out)
    }
}

impl DirectoryDoc {
    /// Adds a household, or writes the fields that differ on an existing one.
    pub fn upsert_household(&mut self, author: &mut Author, now: Timestamp, h: &Household) -> Result<(), SchemaError> {
        h.validate()?;
        let hs = am::req_obj(self.d(), &ROOT, "households", ObjType::Map)?;
        let existing = am::opt_obj(self.d(), &hs, h.id.as_str(), ObjType::Map)?;
        let before = self.households()?.into_iter().find(|x| x.id == h.id);
        let at = author.stamp(None, now);
        let result = (|| {
            let o = match existing {
                Some(o) => o,
                None => self.doc.put_object(&hs, h.id.as_str(), ObjType::Map)?,
            };
            let old = before.as_ref().map(Household::fields);
            for (i, (key, value)) in h.fields().into_iter().enumerate() {
                if old.as_ref().is_some_and(|old| old[i].1 == value) {
                    continue;
                }
                match value {
                    Some(v) => am::put_str(&mut self.doc, &o, key, &v)?,
                    None if old.is_some() => self.doc.put(&o, key, automerge::ScalarValue::Null)?,
                    None => {}
                }
            }
            if before.as_ref().is_none_or(|b| b.moved_out != h.moved_out) {
                self.doc.put(&o, "moved_out", h.moved_out)?;
            }
            am::put_str(&mut self.doc, &o, "updated_by", author.user.as_str())?;
            am::put_str(&mut self.doc, &o, "updated_at", &at.to_string())
        })();
        crate::doc::finish(&mut self.doc, result)
    }
}

crate::doc::typed_doc!(DirectoryDoc, DocKind::Directory);

/// Households reached over households counted: the directory's coverage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Households that still live in the village.
    pub households: u32,
    /// Of those, households with a reachable contact (see [`Household::is_reachable`]).
    pub reachable: u32,
}

impl Coverage {
    /// `reachable / households`, or `None` with no households.
    pub fn rate(&self) -> Option<f64> {
        (self.households > 0).then(|| f64::from(self.reachable) / f64::from(self.households))
    }

    pub fn add(&mut self, h: &Household) {
        if h.moved_out {
            return;
        }
        self.households += 1;
        if h.is_reachable() {
            self.reachable += 1;
        }
    }
}

impl Household {
    /// The officer can reach the household without a door visit: it has a
    /// representative with an account (who gets notices and messages in the
    /// app) or a phone number on record. Households that moved out count for
    /// nothing.
    pub fn is_reachable(&self) -> bool {
        !self.moved_out && (self.representative.is_some() || self.phone.is_some())
    }
}

/// Coverage of `households` in total and per assigned officer (`None`:
/// households no officer is assigned to).
pub fn coverage<'a>(
    households: impl IntoIterator<Item = &'a Household>,
) -> (Coverage, std::collections::BTreeMap<Option<UserId>, Coverage>) {
    let mut total = Coverage::default();
    let mut by_officer: std::collections::BTreeMap<Option<UserId>, Coverage> = std::collections::BTreeMap::new();
    for h in households {
        total.add(h);
        if !h.moved_out {
            by_officer.entry(h.officer.clone()).or_default().add(h);
        }
    }
    (total, by_officer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household(id: &str, rep: Option<&str>, phone: Option<&str>, officer: Option<&str>, moved: bool) -> Household {
        Household {
            id: HouseholdId::new(id).unwrap(),
            name: id.into(),
            representative: rep.map(|r| UserId::new(r).unwrap()),
            representative_name: None,
            phone: phone.map(str::to_owned),
            group_tag: None,
            officer: officer.map(|o| UserId::new(o).unwrap()),
            address: None,
            note: None,
            moved_out: moved,
        }
    }

    #[test]
    fn coverage_counts_households_with_a_contact_per_officer() {
        let hs = [
            household("h1", Some("r1"), None, Some("li"), false),
            household("h2", None, Some("13800000000"), Some("li"), false),
            household("h3", None, None, Some("li"), false),
            household("h4", None, None, None, false),
            household("h5", Some("r5"), None, Some("li"), true),
        ];
        let (total, by) = coverage(&hs);
        assert_eq!(
            total,
            Coverage {
                households: 4,
                reachable: 2
            }
        );
        assert_eq!(total.rate(), Some(0.5));
        let li = by[&Some(UserId::new("li").unwrap())];
        assert_eq!((li.households, li.reachable), (3, 2));
        assert_eq!(
            by[&None],
            Coverage {
                households: 1,
                reachable: 0
            }
        );
        assert_eq!(Coverage::default().rate(), None);
    }
}
