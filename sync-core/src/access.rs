//! Who may read and act, in one place: the role sets, a principal's scope
//! over the organisation, and what a reader is shown of a petition's
//! personal data.
//!
//! A petition whose shared document holds personal data (a contact number,
//! the identity behind an anonymous letter) is a private document: its
//! readers are exactly those who may see that data ([`petition_units`],
//! [`petition_users`]), so no path that hands out documents (`/sync`,
//! `/batch`, REST, the phone replica) can show it to anyone else.
//!
//! Policy, the server's API and SQL, the notification fan-out and the
//! console all ask here, so "staff" means the same on every path and the
//! server's own principal is handled the same everywhere: it holds
//! `Role::System` at each root of the organisation and belongs to every
//! staff set ([`RoleSet::contains`]), so it acts and reads wherever staff
//! do; it is never a person a unit's work is handed to ([`RoleSet::people`]),
//! and no stored membership may claim it ([`assignable`]).

use std::collections::BTreeSet;

use crate::ids::{UnitId, UserId};
use crate::org::{OrgTree, Principal, Role};
use crate::petition::status::routed_units;
use crate::petition::{PetitionHeader, PetitionSummary, TimelineEvent};
use crate::policy::Visibility;

/// Roles held in a unit that grant a power over the unit's subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleSet {
    roles: &'static [Role],
}

impl RoleSet {
    /// Officers, leaders and department staff: the people who handle
    /// petitions, read their jurisdiction and are on a unit's duty.
    pub const HANDLERS: RoleSet = RoleSet {
        roles: &[Role::Officer, Role::Leader, Role::DepartmentStaff],
    };
    /// Officers and leaders: they route petitions and run rooms, notices
    /// and village directories.
    pub const OFFICERS: RoleSet = RoleSet {
        roles: &[Role::Officer, Role::Leader],
    };
    /// Leaders: they supervise (督办).
    pub const LEADERS: RoleSet = RoleSet { roles: &[Role::Leader] };
    /// Handlers and administrators: they read reports, rosters and the
    /// whole unit tree.
    pub const STAFF_AND_ADMINS: RoleSet = RoleSet {
        roles: &[Role::Officer, Role::Leader, Role::DepartmentStaff, Role::Admin],
    };

    /// Leaders and administrators: they replace a unit's duty roster.
    pub const LEADERS_AND_ADMINS: RoleSet = RoleSet {
        roles: &[Role::Leader, Role::Admin],
    };
    /// Administrators: they keep the organisation and the clock rules.
    pub const ADMINS: RoleSet = RoleSet { roles: &[Role::Admin] };

    /// Whether `role` is in the set. The server's own role is in every set.
    pub fn contains(self, role: Role) -> bool {
        role == Role::System || self.roles.contains(&role)
    }

    /// The people's roles in the set (never `System`): who a unit's work is
    /// handed to, as stored memberships name them.
    pub fn people(self) -> &'static [Role] {
        self.roles
    }
}

impl Role {
    /// The stored (and wire) name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::Officer => "officer",
            Role::Leader => "leader",
            Role::DepartmentStaff => "department_staff",
            Role::Admin => "admin",
            Role::System => "system",
            Role::StationServer => "station_server",
        }
    }
}

/// Whether a stored membership may hold `role`: every role but the
/// server's own.
pub fn assignable(role: Role) -> bool {
    role != Role::System
}

/// Whether `who` holds a role of `set` in any unit.
pub fn holds(who: &Principal, set: RoleSet) -> bool {
    who.memberships.iter().any(|m| set.contains(m.role))
}

/// Whether `who` holds a role of `set` in `unit` or a unit above it.
pub fn acts_over(org: &OrgTree, who: &Principal, set: RoleSet, unit: &UnitId) -> bool {
    who.memberships
        .iter()
        .any(|m| set.contains(m.role) && org.is_within(unit, &m.unit))
}

/// Whether `who` holds one of the people's roles of `set` over `unit`: the
/// same as [`acts_over`] without the server's own role, for duty rosters and
/// the units a person acts for.
pub fn person_over(org: &OrgTree, who: &Principal, set: RoleSet, unit: &UnitId) -> bool {
    who.memberships
        .iter()
        .any(|m| set.people().contains(&m.role) && org.is_within(unit, &m.unit))
}

/// Whether `who` is the server's own principal.
pub fn is_system(who: &Principal) -> bool {
    who.memberships.iter().any(|m| m.role == Role::System)
}

/// The units `who` holds a role of `set` over: their scope in the tree.
pub fn scope(org: &OrgTree, who: &Principal, set: RoleSet) -> Vec<UnitId> {
    org.units()
        .filter(|u| acts_over(org, who, set, &u.id))
        .map(|u| u.id.clone())
        .collect()
}

/// Whether `who` may read a document with this visibility. `is_room_member`
/// answers for the rooms a notice was sent to.
pub fn may_read(org: &OrgTree, who: &Principal, vis: &Visibility, is_room_member: impl Fn(&str) -> bool) -> bool {
    vis.units.iter().any(|u| acts_over(org, who, RoleSet::HANDLERS, u))
        || vis.users.contains(&who.user)
        || who.household.as_ref().is_some_and(|h| vis.households.contains(h))
        || vis.rooms.iter().any(|r| is_room_member(r))
        || vis
            .audience_units
            .iter()
            .any(|a| who.units_with(Role::Resident).any(|home| org.is_within(home, a)))
        || crate::relay::station_reads(org, who, vis)
}

/// Whether a petition's shared document holds personal data: a contact
/// number to call back on, or the identity behind an anonymous letter. (ID
/// numbers have no field: a header holds only its schema's fields.)
pub fn holds_personal_data(header: &PetitionHeader) -> bool {
    header.anonymous || header.contact.is_some()
}

/// Every unit a petition was routed to, as lead or assist, by `events`:
/// the units that handle it or handled it. Superseded routings count, as
/// for every read decision: the set only grows.
pub fn handling_units(events: &[TimelineEvent]) -> BTreeSet<UnitId> {
    events.iter().flat_map(routed_units).cloned().collect()
}

/// The units whose staff (and the staff of the units above them) may read a
/// petition: its handling units, and, unless it holds personal data, the
/// unit it is located in. A letter to the director's mailbox about a
/// village is shown to that village's officers only when it carries no
/// personal data.
pub fn petition_units(header: &PetitionHeader, events: &[TimelineEvent]) -> BTreeSet<UnitId> {
    let mut units = handling_units(events);
    if !holds_personal_data(header) {
        units.insert(header.location.unit.clone());
    }
    units
}

/// The users who may read a petition by name: its writer, and, when it
/// holds personal data, whoever typed it in for them.
pub fn petition_users(header: &PetitionHeader) -> Vec<UserId> {
    let mut users = vec![header.submitter.clone()];
    if holds_personal_data(header) && header.recorded_by != header.submitter {
        users.push(header.recorded_by.clone());
    }
    users
}

/// What a reader may see of a petition's personal data: the writer, whoever
/// typed it in, and the staff of the units handling it see everything;
/// everyone else sees a contact number's last four digits and, for an
/// anonymous letter, neither who wrote it nor how to reach them. A petition
/// holding personal data is not shown to anyone else at all
/// ([`petition_units`]); the masks remain for what a host builds from
/// projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    Full,
    Masked,
}

impl Disclosure {
    /// The disclosure for `who` of a petition named to `users` (its writer
    /// and recorder) and handled by `handlers`.
    pub fn of<'a>(
        org: &OrgTree,
        who: &Principal,
        users: &[&UserId],
        handlers: impl IntoIterator<Item = &'a UnitId>,
    ) -> Disclosure {
        if users.contains(&&who.user) || handlers.into_iter().any(|u| acts_over(org, who, RoleSet::HANDLERS, u)) {
            Disclosure::Full
        } else {
            Disclosure::Masked
        }
    }

    /// Hides what this disclosure does not show from a header.
    pub fn redact_header(self, header: &mut PetitionHeader) {
        if self == Disclosure::Full {
            return;
        }
        if let Some(c) = &header.contact {
            header.contact = Some(mask_phone(c));
        }
        if header.anonymous {
            // A letter the writer typed in names them twice.
            if header.recorded_by == header.submitter {
                header.recorded_by = anonymous();
            }
            header.submitter = anonymous();
            header.contact = None;
        }
    }

    /// Hides what this disclosure does not show from a summary.
    pub fn redact_summary(self, summary: &mut PetitionSummary) {
        if self == Disclosure::Masked && summary.anonymous {
            summary.submitter = anonymous();
        }
    }
}

/// The user id an anonymous writer is shown as.
pub fn anonymous() -> UserId {
    UserId::new("anonymous").expect("a valid id")
}

/// A phone number with all but its last four digits hidden.
pub fn mask_phone(number: &str) -> String {
    let keep: String = number
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("*******{keep}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::org::{Membership, Unit, UnitKind};

    fn unit(id: &str) -> UnitId {
        UnitId::new(id).unwrap()
    }

    fn tree() -> OrgTree {
        let u = |id: &str, kind, parent: Option<&str>| Unit {
            id: unit(id),
            name: id.into(),
            kind,
            parent: parent.map(unit),
        };
        OrgTree::new([
            u("county", UnitKind::County, None),
            u("station", UnitKind::Station, Some("county")),
            u("village", UnitKind::Village, Some("station")),
        ])
    }

    fn who(id: &str, unit_id: &str, role: Role) -> Principal {
        Principal {
            user: UserId::new(id).unwrap(),
            memberships: vec![Membership {
                unit: unit(unit_id),
                role,
            }],
            household: None,
        }
    }

    #[test]
    fn the_system_principal_is_in_every_staff_set_and_never_a_person_on_duty() {
        let org = tree();
        let system = who("lianxin-system", "county", Role::System);
        for set in [
            RoleSet::HANDLERS,
            RoleSet::OFFICERS,
            RoleSet::LEADERS,
            RoleSet::STAFF_AND_ADMINS,
            RoleSet::LEADERS_AND_ADMINS,
            RoleSet::ADMINS,
        ] {
            assert!(acts_over(&org, &system, set, &unit("village")));
            assert!(holds(&system, set));
            assert!(!set.people().contains(&Role::System));
        }
        assert!(is_system(&system));
        assert!(!assignable(Role::System));
        let resident = who("r", "village", Role::Resident);
        assert!(!holds(&resident, RoleSet::HANDLERS));
        let admin = who("a", "county", Role::Admin);
        assert!(!holds(&admin, RoleSet::HANDLERS) && holds(&admin, RoleSet::STAFF_AND_ADMINS));
    }

    #[test]
    fn role_names_are_the_serde_names() {
        for r in [
            Role::Resident,
            Role::Officer,
            Role::Leader,
            Role::DepartmentStaff,
            Role::Admin,
            Role::System,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
