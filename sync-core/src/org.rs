//! The organisation tree and the people acting in it.
//!
//! City → county → station / town → village → village group or party group;
//! departments and task forces hang off the level that owns them. Each person
//! holds memberships (unit + role). Jurisdiction is the subtree below a unit.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{HouseholdId, UnitId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum UnitKind {
    City,
    County,
    Station,
    Town,
    Village,
    VillageGroup,
    PartyGroup,
    Department,
    TaskForce,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub id: UnitId,
    pub name: String,
    pub kind: UnitKind,
    pub parent: Option<UnitId>,
}

/// What a person does in a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// A villager: files petitions, talks in rooms, reads notices.
    Resident,
    /// A police officer or cadre who handles petitions in the unit's jurisdiction.
    Officer,
    /// A leader (director, station chief): supervises and escalates, sees KPIs.
    Leader,
    /// Staff of a department (water, roads, town office) that co-handles petitions.
    DepartmentStaff,
    /// Sets up units, users and memberships.
    Admin,
    /// The server's own actor: writes clock-driven events such as auto-escalation.
    System,
    /// A station server (the same binary one tier down, `serve --upstream`):
    /// replicates the unit's subtree and relays the changes its people made
    /// there. It reads; it acts for nobody. See [`crate::relay`].
    StationServer,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    pub unit: UnitId,
    pub role: Role,
}

/// The authenticated user a change or request is evaluated for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user: UserId,
    pub memberships: Vec<Membership>,
    /// The household a resident represents or belongs to, if any.
    #[serde(default)]
    pub household: Option<HouseholdId>,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.memberships.iter().any(|m| m.role == role)
    }

    /// Units in which this person holds `role`.
    pub fn units_with(&self, role: Role) -> impl Iterator<Item = &UnitId> {
        self.memberships.iter().filter(move |m| m.role == role).map(|m| &m.unit)
    }

    /// True for officers, leaders and department staff (and the server's
    /// own principal): people who handle petitions rather than file them.
    /// See [`crate::access`].
    pub fn is_staff(&self) -> bool {
        crate::access::holds(self, crate::access::RoleSet::HANDLERS)
    }

    pub fn is_system(&self) -> bool {
        crate::access::is_system(self)
    }
}

/// The organisation tree, as data the host loads from its store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgTree {
    units: BTreeMap<UnitId, Unit>,
}

impl OrgTree {
    pub fn new(units: impl IntoIterator<Item = Unit>) -> Self {
        OrgTree {
            units: units.into_iter().map(|u| (u.id.clone(), u)).collect(),
        }
    }

    pub fn insert(&mut self, unit: Unit) {
        self.units.insert(unit.id.clone(), unit);
    }

    pub fn get(&self, id: &UnitId) -> Option<&Unit> {
        self.units.get(id)
    }

    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    pub fn parent(&self, id: &UnitId) -> Option<&UnitId> {
        self.units.get(id).and_then(|u| u.parent.as_ref())
    }

    /// `id` itself, then its parent, up to the root. Stops on a cycle.
    pub fn ancestors_or_self<'a>(&'a self, id: &'a UnitId) -> Vec<&'a UnitId> {
        let mut out = vec![id];
        let mut seen = BTreeSet::from([id]);
        let mut cur = id;
        while let Some(p) = self.parent(cur) {
            if !seen.insert(p) {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }

    /// True when `unit` is `ancestor` or lies below it.
    pub fn is_within(&self, unit: &UnitId, ancestor: &UnitId) -> bool {
        self.ancestors_or_self(unit).contains(&ancestor)
    }

    /// True when any of the principal's memberships with one of `roles` has
    /// `unit` in its jurisdiction.
    pub fn has_jurisdiction(&self, who: &Principal, roles: &[Role], unit: &UnitId) -> bool {
        who.memberships
            .iter()
            .any(|m| roles.contains(&m.role) && self.is_within(unit, &m.unit))
    }

    /// Where a petition on `channel` from a resident at `location` goes when
    /// the writer names no unit (the resident app does not know the tree):
    ///
    /// * the station chief's line and the household line go to the nearest
    ///   station above the location (else the nearest unit above it that is
    ///   not a village, a village or party group, a department or a task
    ///   force);
    /// * the director's mailbox goes to the task force of the nearest level
    ///   above the location that has one (the first by id if it has several),
    ///   else to the county;
    /// * other channels have no default and must name their unit.
    pub fn default_route(&self, channel: crate::channel::Channel, location: &UnitId) -> Option<UnitId> {
        use crate::channel::Channel;
        self.get(location)?;
        let up = self.ancestors_or_self(location);
        let kind = |u: &UnitId| self.get(u).map(|u| u.kind);
        match channel {
            Channel::ChiefLine | Channel::HouseholdLine => up
                .iter()
                .find(|u| kind(u) == Some(UnitKind::Station))
                .or_else(|| {
                    up.iter().find(|u| {
                        kind(u).is_some_and(|k| {
                            !matches!(
                                k,
                                UnitKind::Village
                                    | UnitKind::VillageGroup
                                    | UnitKind::PartyGroup
                                    | UnitKind::Department
                                    | UnitKind::TaskForce
                            )
                        })
                    })
                })
                .map(|u| (*u).clone()),
            Channel::DirectorMailbox => up
                .iter()
                .find_map(|level| {
                    self.units
                        .values()
                        .find(|u| u.kind == UnitKind::TaskForce && u.parent.as_ref() == Some(*level))
                        .map(|u| u.id.clone())
                })
                .or_else(|| {
                    up.iter()
                        .find(|u| kind(u) == Some(UnitKind::County))
                        .map(|u| (*u).clone())
                }),
            _ => None,
        }
    }

    /// The nearest ancestor that is not a department or task force: the
    /// level a petition escalates to.
    pub fn escalation_target<'a>(&'a self, unit: &'a UnitId) -> Option<&'a UnitId> {
        self.ancestors_or_self(unit).into_iter().skip(1).find(|u| {
            self.get(u)
                .is_some_and(|u| !matches!(u.kind, UnitKind::Department | UnitKind::TaskForce))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, kind: UnitKind, parent: Option<&str>) -> Unit {
        Unit {
            id: UnitId::new(id).unwrap(),
            name: id.into(),
            kind,
            parent: parent.map(|p| UnitId::new(p).unwrap()),
        }
    }

    #[test]
    fn a_residents_channel_decides_where_an_unaddressed_petition_goes() {
        use crate::channel::Channel;
        let t = OrgTree::new([
            unit("county", UnitKind::County, None),
            unit("mailbox", UnitKind::TaskForce, Some("county")),
            unit("water", UnitKind::Department, Some("county")),
            unit("station", UnitKind::Station, Some("county")),
            unit("village", UnitKind::Village, Some("station")),
            unit("group", UnitKind::VillageGroup, Some("village")),
        ]);
        let id = |s: &str| UnitId::new(s).unwrap();
        assert_eq!(t.default_route(Channel::ChiefLine, &id("group")), Some(id("station")));
        assert_eq!(
            t.default_route(Channel::HouseholdLine, &id("village")),
            Some(id("station"))
        );
        assert_eq!(
            t.default_route(Channel::DirectorMailbox, &id("village")),
            Some(id("mailbox"))
        );
        assert_eq!(t.default_route(Channel::WalkIn, &id("village")), None);
        assert_eq!(t.default_route(Channel::ChiefLine, &id("nowhere")), None);
        let no_mailbox = OrgTree::new([
            unit("county", UnitKind::County, None),
            unit("village", UnitKind::Village, Some("county")),
        ]);
        assert_eq!(
            no_mailbox.default_route(Channel::DirectorMailbox, &id("village")),
            Some(id("county"))
        );
        assert_eq!(
            no_mailbox.default_route(Channel::ChiefLine, &id("village")),
            Some(id("county"))
        );
    }

    fn tree() -> OrgTree {
        OrgTree::new([
            unit("city", UnitKind::City, None),
            unit("county", UnitKind::County, Some("city")),
            unit("station", UnitKind::Station, Some("county")),
            unit("village", UnitKind::Village, Some("station")),
            unit("water", UnitKind::Department, Some("county")),
        ])
    }

    #[test]
    fn jurisdiction_is_the_subtree() {
        let t = tree();
        let id = |s: &str| UnitId::new(s).unwrap();
        assert!(t.is_within(&id("village"), &id("county")));
        assert!(!t.is_within(&id("county"), &id("village")));
        assert!(!t.is_within(&id("water"), &id("station")));
        let officer = Principal {
            user: UserId::new("o1").unwrap(),
            memberships: vec![Membership {
                unit: id("station"),
                role: Role::Officer,
            }],
            household: None,
        };
        assert!(t.has_jurisdiction(&officer, &[Role::Officer], &id("village")));
        assert!(!t.has_jurisdiction(&officer, &[Role::Officer], &id("water")));
        assert!(!t.has_jurisdiction(&officer, &[Role::Leader], &id("village")));
    }

    #[test]
    fn escalation_skips_departments() {
        let mut t = tree();
        t.insert(unit("water-team", UnitKind::TaskForce, Some("water")));
        let id = |s: &str| UnitId::new(s).unwrap();
        assert_eq!(t.escalation_target(&id("village")), Some(&id("station")));
        assert_eq!(t.escalation_target(&id("water-team")), Some(&id("county")));
        assert_eq!(t.escalation_target(&id("city")), None);
    }

    #[test]
    fn a_cycle_in_bad_data_does_not_hang() {
        let t = OrgTree::new([
            unit("a", UnitKind::County, Some("b")),
            unit("b", UnitKind::County, Some("a")),
        ]);
        assert_eq!(t.ancestors_or_self(&UnitId::new("a").unwrap()).len(), 2);
    }
}
