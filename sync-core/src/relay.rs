//! Tiers: a station server relays its people's changes to the tier above,
//! which is authoritative. The rules both ends share live here.
//!
//! A station is a server started with `--upstream`: towards the county it is
//! one batched-sync client ([`crate::batch::BatchClient`]) signed in as a
//! principal holding [`Role::StationServer`] in its unit. What that
//! principal may do is small and fixed:
//!
//! * It **reads** every document a person of its jurisdiction could need:
//!   documents located in or routed to a unit of its subtree, and notices
//!   whose audience covers it ([`station_reads`]).
//! * It **speaks for** the people of its jurisdiction and nobody else
//!   ([`speaks_for`]): each relayed change names its author (the station
//!   attests the actor's user in the push, `Push::authors`), and the tier
//!   above checks the change with policy *for that author*, exactly as if
//!   the author's phone had sent it. A change attributed to someone with any
//!   membership outside the station's subtree (a county director, another
//!   station's officer, a server) is refused by
//!   [`Rule::RelayOutsideJurisdiction`]; one whose actor is not attested,
//!   or names a user the tier above does not know, by
//!   [`Rule::RelayUnattested`].
//! * A change the tier above refuses is **refused everywhere**: the station
//!   rebuilds the document without it and without what was built on it
//!   ([`without`]), and refuses it from then on with the rule it got
//!   ([`refused_upstream`]), so the phone that made it hears the rule the way
//!   a phone hears any refusal and rebases its user's other edits. Every
//!   other replica below that may have pulled the change (another phone, a
//!   station one tier further down) is told the refusal with the document
//!   on its next exchange ([`unheard_refusals`]) and drops it the same way.
//!   When the tier above refuses the change that created a document,
//!   nothing of it is left: the station takes it out of every list, each
//!   replica that could hold it is sent the refusals with no history, finds
//!   that every change it holds goes ([`split_history`]) and drops the
//!   whole document ([`crate::batch::ClientEvent::Dropped`]).
//!
//! Duty rosters are not documents: a unit's roster is set by its leaders
//! at whichever tier they use and travels both ways, down in the station
//! directory and up from the station's uplink; the later edit wins
//! ([`roster_wins`]), and the tier above accepts from a station only the
//! rosters of its units set by its own leaders ([`may_relay_roster`]).
//!
//! Receipt times travel with the documents: a petition's clocks start and
//! stop on the server's receipts of its timeline events, so a station
//! pushes its receipts of the events it relays and the tier above sends a
//! station its receipts with what it pulls ([`receipts_to_carry`]); a tier
//! records an entry new to it as received when the other tier received it
//! ([`carried_receipt`]). Every tier then computes the same deadlines, however
//! long the uplink was down.
//!
//! The tier above's changes come down in the pull and are stored at the
//! station without policy (`write::Origin::Upstream`): the tier above
//! already decided, and a station whose copy of the organisation is behind
//! must not refuse what the authority accepted.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, AutoCommit, Change, ChangeHash};

use crate::DocKind;
use crate::hlc::Hlc;
use crate::ids::{UnitId, UserId};
use crate::org::{OrgTree, Principal, Role};
use crate::petition::PetitionDoc;
use crate::policy::{MAX_FUTURE_SKEW_MS, Refusal, Rule, Visibility};
use crate::time::Timestamp;

/// The user the tier above's changes are stored under at a station: the
/// author it acted for is the tier above's business.
pub const UPSTREAM_USER: &str = "lianxin-upstream";

/// Whether `who` is a station server's principal.
pub fn is_station(who: &Principal) -> bool {
    who.has_role(Role::StationServer)
}

/// The units whose subtrees a station principal replicates.
pub fn station_units(who: &Principal) -> impl Iterator<Item = &UnitId> {
    who.units_with(Role::StationServer)
}

/// Whether a station principal reads a document with this visibility: one
/// located in, or routed to, a unit of its subtree, or a notice whose
/// audience units lie above or below its unit (its residents read those).
pub fn station_reads(org: &OrgTree, who: &Principal, vis: &Visibility) -> bool {
    station_units(who).any(|s| {
        vis.units.iter().any(|u| org.is_within(u, s))
            || vis
                .audience_units
                .iter()
                .any(|a| org.is_within(a, s) || org.is_within(s, a))
    })
}

/// Whether a station principal may relay changes by `author` (`None`: a user
/// the tier above does not know). Everyone whose every membership lies in
/// the station's subtree; never a server or another station, and never
/// someone who also holds a role outside it (their changes would carry
/// powers the station cannot vouch for).
pub fn speaks_for(org: &OrgTree, station: &Principal, author: Option<&Principal>) -> Result<(), (Rule, String)> {
    let Some(author) = author else {
        return Err((
            Rule::RelayUnattested,
            "the station named no author the tier above knows for this change".into(),
        ));
    };
    let within = |u: &UnitId| station_units(station).any(|s| org.is_within(u, s));
    let outside: Vec<&UnitId> = author
        .memberships
        .iter()
        .filter(|m| matches!(m.role, Role::System | Role::StationServer) || !within(&m.unit))
        .map(|m| &m.unit)
        .collect();
    if author.memberships.is_empty() || !outside.is_empty() {
        let units: Vec<&str> = outside.iter().map(|u| u.as_str()).collect();
        return Err((
            Rule::RelayOutsideJurisdiction,
            format!(
                "{} is not a person of station {}'s jurisdiction (acts in: {})",
                author.user,
                station.user,
                if units.is_empty() {
                    "nowhere".into()
                } else {
                    units.join(", ")
                }
            ),
        ));
    }
    Ok(())
}

/// Whether a station's directory (what the tier above hands it about its
/// jurisdiction) lists `person`: everyone it speaks for, and the accounts of
/// the stations below it (each holding only [`Role::StationServer`] in its
/// subtree), so a county that is itself a station of the city still signs
/// in its own stations when the city is authoritative for every account.
/// Never the reading station's own account, and the station still never
/// speaks for a server ([`speaks_for`]).
pub fn lists(org: &OrgTree, station: &Principal, person: &Principal) -> bool {
    if speaks_for(org, station, Some(person)).is_ok() {
        return true;
    }
    person.user != station.user
        && !person.memberships.is_empty()
        && person
            .memberships
            .iter()
            .all(|m| m.role == Role::StationServer && station_units(station).any(|s| org.is_within(&m.unit, s)))
}

/// Splits relayed changes (in an order that applies) into consecutive runs
/// by the same author, as `authors` attests each actor's user. Each run is
/// checked for its author; a run's author is `None` when the actor is not
/// attested.
pub fn author_runs(changes: Vec<Change>, authors: &BTreeMap<ActorId, String>) -> Vec<(Option<String>, Vec<Change>)> {
    let mut runs: Vec<(Option<String>, Vec<Change>)> = Vec::new();
    for c in changes {
        let author = authors.get(c.actor_id()).cloned();
        match runs.last_mut() {
            Some((a, run)) if *a == author => run.push(c),
            _ => runs.push((author, vec![c])),
        }
    }
    runs
}

/// Keeps the changes that neither were refused by the tier above (`known`:
/// hash → the rule and detail it gave) nor build on one; refuses the rest,
/// a refused change with the rule it got up there, its descendants with
/// [`Rule::DependsOnRefused`].
pub fn refused_upstream(
    changes: Vec<Change>,
    known: &BTreeMap<ChangeHash, (String, String)>,
) -> (Vec<Change>, Vec<Refusal>) {
    if known.is_empty() {
        return (changes, Vec::new());
    }
    let mut bad: BTreeSet<ChangeHash> = known.keys().copied().collect();
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for c in changes {
        let hash = c.hash();
        if let Some((rule, detail)) = known.get(&hash) {
            let rule = rule.parse().unwrap_or(Rule::RefusedUpstream);
            refused.push(Refusal::new(
                &hash,
                rule,
                format!("refused by the tier above: {detail}"),
            ));
        } else if c.deps().iter().any(|d| bad.contains(d)) {
            bad.insert(hash);
            refused.push(Refusal::new(
                &hash,
                Rule::DependsOnRefused,
                "builds on a change the tier above refused",
            ));
        } else {
            kept.push(c);
        }
    }
    (kept, refused)
}

/// A change the tier above refused after this server had stored it: the
/// server took it back ([`without`]) and stored the rebuilt document from
/// change number `seq` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenBack {
    /// The refused change.
    pub change: ChangeHash,
    /// The rule the tier above refused it by.
    pub rule: String,
    /// Its sentence for people.
    pub detail: String,
    /// The number of the last change of the rebuilt history.
    pub seq: u64,
}

/// What a batched client whose cursor is `cursor` is told of the changes of
/// a document taken back: every refusal recorded after its cursor. A
/// client below `seq` may have pulled the change before the tier above
/// refused it (from this server, or from a phone it synced with), and it
/// is about to be sent the rebuilt document; a client at or past `seq` was
/// sent the rebuilt document already, and these refusals with it. So every
/// replica that could hold a refused change hears of it once, on its next
/// exchange, and drops it as it drops a refusal of its own push.
pub fn unheard_refusals(cursor: u64, taken: &[TakenBack]) -> Vec<crate::batch::RefusedChange> {
    taken
        .iter()
        .filter(|t| t.seq > cursor)
        .map(|t| crate::batch::RefusedChange {
            change: t.change,
            rule: t.rule.clone(),
            detail: format!("refused by the tier above: {}", t.detail),
        })
        .collect()
}

/// Which of a document's recorded receipts travel with it to the other tier:
/// those of a petition's timeline events (submission, signing, contact,
/// reply, reopening: the entries its clocks start and stop on), so every
/// tier computes the same deadlines. `recorded` are the receipts the host
/// recorded since the other tier last heard from it. A message's receipt
/// stays at the tier it reached (no clock runs on it), and other documents
/// carry none: receipts cost bytes on a poor uplink, and only clocks need
/// them to agree.
pub fn receipts_to_carry(doc: &AutoCommit, recorded: Vec<(String, Timestamp)>) -> Vec<(String, Timestamp)> {
    if recorded.is_empty() || !matches!(DocKind::of(doc), Ok(Some(DocKind::Petition))) {
        return Vec::new();
    }
    let Ok(events) = PetitionDoc::view(doc).and_then(|p| p.events()) else {
        return Vec::new();
    };
    let events: BTreeSet<String> = events.iter().map(|e| e.at.to_string()).collect();
    recorded.into_iter().filter(|(id, _)| events.contains(id)).collect()
}

/// The receipt a tier records for an entry new to it that the other tier
/// says it received at `carried`: that time, but never later than `now`
/// (the entry is here now) nor earlier than the entry's own stamp allows
/// (a stamp may run at most [`MAX_FUTURE_SKEW_MS`] ahead of its receipt).
/// `None` when nothing was carried: the entry is received now.
pub fn carried_receipt(entry: &str, carried: Option<Timestamp>, now: Timestamp) -> Timestamp {
    let Some(carried) = carried else { return now };
    let earliest = entry
        .parse::<Hlc>()
        .map(|at| at.wall_ms - MAX_FUTURE_SKEW_MS)
        .unwrap_or(i64::MIN);
    Timestamp::from_millis(carried.millis().max(earliest).min(now.millis()))
}

/// `doc`'s history split by the changes in `drop`: the changes kept, and
/// the hashes of those taken out (each of `drop` and every change built on
/// one of them), both in history order (every change after its
/// dependencies).
pub fn split_history(doc: &mut AutoCommit, drop: &BTreeSet<ChangeHash>) -> (Vec<Change>, Vec<ChangeHash>) {
    let mut removed = BTreeSet::new();
    let mut order = Vec::new();
    let mut kept = Vec::new();
    for c in doc.get_changes(&[]) {
        let hash = c.hash();
        if drop.contains(&hash) || c.deps().iter().any(|d| removed.contains(d)) {
            removed.insert(hash);
            order.push(hash);
        } else {
            kept.push(c);
        }
    }
    (kept, order)
}

/// `doc` rebuilt from its history without the changes in `drop` and every
/// change built on one of them; returns the rebuilt document and the hashes
/// taken out. Unchanged (a clone) when none of `drop` is in the history;
/// empty (no heads) when every change is taken out, as when the tier above
/// refused the change that created the document.
pub fn without(doc: &mut AutoCommit, drop: &BTreeSet<ChangeHash>) -> (AutoCommit, BTreeSet<ChangeHash>) {
    let (kept, removed) = split_history(doc, drop);
    if removed.is_empty() {
        return (doc.clone(), BTreeSet::new());
    }
    let mut out = AutoCommit::new();
    out.apply_changes(kept)
        .expect("changes of a loaded document apply again in history order");
    (out, removed.into_iter().collect())
}

/// Which of two edits of a unit's duty roster stands, given as (update
/// time in milliseconds, editor): rosters travel both ways between tiers
/// (down in the station directory, up from a station's uplink), and the
/// later edit wins wherever the two meet, ties going to the larger editor
/// id so both tiers pick the same. An equal stamp is the same edit: the
/// roster held stays. Update times are each tier's server clock; tiers
/// that disagree by more than the time between two edits of one roster
/// would pick by the skew, which the clocks' own skew flags would show.
pub fn roster_wins(incoming: (i64, &UserId), held: Option<(i64, &UserId)>) -> bool {
    held.is_none_or(|held| incoming > held)
}

/// Whether a station may send up the roster of `unit` that `editor` (`None`:
/// someone the tier above does not know) set at the station: the unit lies
/// in its subtree, the station speaks for the editor ([`speaks_for`]), and
/// the editor is, as the tier above knows them, a leader or admin over the
/// unit (who sets a roster at any tier). Who may be on it is checked as for
/// any roster.
pub fn may_relay_roster(
    org: &OrgTree,
    station: &Principal,
    unit: &UnitId,
    editor: Option<&Principal>,
) -> Result<(), (Rule, String)> {
    if !station_units(station).any(|s| org.is_within(unit, s)) {
        return Err((
            Rule::NotInJurisdiction,
            format!("{unit} is not in station {}'s jurisdiction", station.user),
        ));
    }
    speaks_for(org, station, editor)?;
    let editor = editor.expect("speaks_for refuses an unknown editor");
    if !crate::access::acts_over(org, editor, crate::access::RoleSet::LEADERS_AND_ADMINS, unit) {
        return Err((
            Rule::RoleRequired,
            format!("{} is not a leader or admin over {unit} here", editor.user),
        ));
    }
    Ok(())
}

/// When to try a failed uplink again: exponential with "equal jitter" (half
/// the ceiling fixed, half random), so stations cut off together by one
/// outage do not all knock at once when it ends. Randomness is an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling after the first failure.
    pub base_ms: u64,
    /// The largest ceiling.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 500,
            max_ms: 60_000,
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (0: none), given a
    /// random number.
    pub fn delay_ms(&self, failures: u32, random: u64) -> u64 {
        if failures == 0 {
            return 0;
        }
        let ceiling = self
            .base_ms
            .saturating_mul(1u64 << (failures - 1).min(30))
            .min(self.max_ms)
            .max(1);
        ceiling / 2 + random % (ceiling - ceiling / 2 + 1)
    }
}

/// The generation of a station directory (`GET /api/station/directory`):
/// the first eight bytes of the SHA-256 of its body, big-endian. The tier
/// above names it in every pull it sends a station (`Pull::settings`) and
/// as the directory's `ETag`, so a station fetches the directory only in a
/// round where it moved, and an idle round stays one round trip.
pub fn directory_generation(body: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// The `ETag` of a directory of generation `generation`.
pub fn directory_etag(generation: u64) -> String {
    format!("\"{generation:016x}\"")
}

/// The user a stored change is attributed to at a station when it came
/// from the tier above.
pub fn upstream_user() -> UserId {
    UserId::new(UPSTREAM_USER).expect("a valid user id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{Membership, Unit, UnitKind};
    use automerge::ROOT;
    use automerge::transaction::Transactable;

    #[test]
    fn a_directory_generation_follows_its_body() {
        let a = directory_generation(br#"{"units":[],"people":[]}"#);
        assert_eq!(a, directory_generation(br#"{"units":[],"people":[]}"#));
        assert_ne!(a, directory_generation(br#"{"units":[],"people":[{}]}"#));
        assert_eq!(directory_etag(0x0123_4567_89ab_cdef), "\"0123456789abcdef\"");
    }

    fn org() -> OrgTree {
        let u = |id: &str, kind, parent: Option<&str>| Unit {
            id: UnitId::new(id).unwrap(),
            name: id.into(),
            kind,
            parent: parent.map(|p| UnitId::new(p).unwrap()),
        };
        OrgTree::new([
            u("county", UnitKind::County, None),
            u("st-a", UnitKind::Station, Some("county")),
            u("st-b", UnitKind::Station, Some("county")),
            u("village-a", UnitKind::Village, Some("st-a")),
        ])
    }

    fn who(user: &str, roles: &[(&str, Role)]) -> Principal {
        Principal {
            user: UserId::new(user).unwrap(),
            memberships: roles
                .iter()
                .map(|(u, r)| Membership {
                    unit: UnitId::new(*u).unwrap(),
                    role: *r,
                })
                .collect(),
            household: None,
        }
    }

    #[test]
    fn a_station_speaks_only_for_people_wholly_within_its_subtree() {
        let org = org();
        let station = who("station-a", &[("st-a", Role::StationServer)]);
        let officer = who("officer-a", &[("st-a", Role::Officer)]);
        let resident = who("res-a", &[("village-a", Role::Resident)]);
        let director = who("director", &[("county", Role::Leader)]);
        let both = who("both", &[("st-a", Role::Officer), ("st-b", Role::Officer)]);
        let other = who("station-b", &[("st-a", Role::StationServer)]);
        assert!(speaks_for(&org, &station, Some(&officer)).is_ok());
        assert!(speaks_for(&org, &station, Some(&resident)).is_ok());
        for p in [&director, &both, &other] {
            let (rule, detail) = speaks_for(&org, &station, Some(p)).unwrap_err();
            assert_eq!(rule, Rule::RelayOutsideJurisdiction, "{}: {detail}", p.user);
        }
        assert_eq!(speaks_for(&org, &station, None).unwrap_err().0, Rule::RelayUnattested);
    }

    #[test]
    fn a_directory_lists_the_people_and_the_stations_below_never_the_reader() {
        let org = org();
        let county = who("county-server", &[("county", Role::StationServer)]);
        let officer = who("officer-a", &[("st-a", Role::Officer)]);
        let below = who("station-a", &[("st-a", Role::StationServer)]);
        let other = who("station-b", &[("st-b", Role::StationServer)]);
        let mixed = who("mixed", &[("st-a", Role::StationServer), ("st-a", Role::Officer)]);
        for p in [&officer, &below, &other] {
            assert!(lists(&org, &county, p), "{}", p.user);
        }
        assert!(!lists(&org, &county, &county), "the reader's own account");
        assert!(!lists(&org, &county, &mixed), "a server that is also a person");
        // A station lists its own people, not its sibling's server.
        assert!(lists(&org, &below, &officer));
        assert!(!lists(&org, &below, &other));
        assert!(!lists(&org, &below, &below));
        let system = who("system", &[("st-a", Role::System)]);
        assert!(!lists(&org, &county, &system));
        // Listing a station's server is not speaking for it.
        assert_eq!(
            speaks_for(&org, &county, Some(&below)).unwrap_err().0,
            Rule::RelayOutsideJurisdiction
        );
    }

    #[test]
    fn a_station_reads_its_subtree_and_notices_that_cover_it() {
        let org = org();
        let station = who("station-a", &[("st-a", Role::StationServer)]);
        let at = |units: &[&str], audience: &[&str]| Visibility {
            units: units.iter().map(|u| UnitId::new(*u).unwrap()).collect(),
            audience_units: audience.iter().map(|u| UnitId::new(*u).unwrap()).collect(),
            ..Visibility::default()
        };
        assert!(station_reads(&org, &station, &at(&["village-a"], &[])));
        assert!(!station_reads(&org, &station, &at(&["st-b"], &[])));
        assert!(!station_reads(&org, &station, &at(&["county"], &[])));
        assert!(station_reads(&org, &station, &at(&[], &["county"])));
        assert!(!station_reads(&org, &station, &at(&[], &["st-b"])));
    }

    fn doc_with(n: usize) -> (AutoCommit, Vec<ChangeHash>) {
        let mut doc = AutoCommit::new().with_actor(ActorId::from([1u8; 16].as_slice()));
        let mut hashes = Vec::new();
        for i in 0..n {
            doc.put(ROOT, format!("k{i}"), i as i64).unwrap();
            doc.commit();
            hashes.push(doc.get_heads()[0]);
        }
        (doc, hashes)
    }

    #[test]
    fn a_rebuilt_document_lacks_the_refused_change_and_what_built_on_it() {
        let (mut doc, hashes) = doc_with(3);
        let (mut rebuilt, removed) = without(&mut doc, &BTreeSet::from([hashes[1]]));
        assert_eq!(removed, BTreeSet::from([hashes[1], hashes[2]]));
        assert_eq!(rebuilt.get_heads(), vec![hashes[0]]);
        let (_, none) = without(&mut doc, &BTreeSet::new());
        assert!(none.is_empty());
    }

    #[test]
    fn refusing_the_change_that_created_a_document_leaves_nothing_of_it() {
        let (mut doc, hashes) = doc_with(3);
        let created = BTreeSet::from([hashes[0]]);
        let (kept, removed) = split_history(&mut doc, &created);
        assert!(kept.is_empty());
        assert_eq!(removed, hashes, "every change, in history order");
        let (mut rebuilt, _) = without(&mut doc, &created);
        assert!(rebuilt.get_heads().is_empty());
        // A later change refused leaves what came before it.
        let (kept, removed) = split_history(&mut doc, &BTreeSet::from([hashes[2]]));
        assert_eq!((kept.len(), removed), (2, vec![hashes[2]]));
    }

    #[test]
    fn changes_refused_upstream_are_refused_again_with_their_rule() {
        let (mut doc, hashes) = doc_with(3);
        let known = BTreeMap::from([(hashes[1], ("role-required".to_owned(), "leaders only".to_owned()))]);
        let (kept, refused) = refused_upstream(doc.get_changes(&[]), &known);
        assert_eq!(kept.len(), 1);
        assert_eq!(refused[0].rule, Rule::RoleRequired);
        assert_eq!(refused[1].rule, Rule::DependsOnRefused);
    }

    #[test]
    fn refusals_reach_the_clients_that_could_hold_the_change() {
        let taken = |seq| TakenBack {
            change: ChangeHash([seq as u8; 32]),
            rule: "role-required".into(),
            detail: "leaders only".into(),
            seq,
        };
        let rows = [taken(10), taken(20)];
        let told = |cursor| -> Vec<u64> {
            unheard_refusals(cursor, &rows)
                .iter()
                .map(|r| u64::from(r.change.0[0]))
                .collect()
        };
        assert_eq!(told(0), [10, 20]);
        assert_eq!(told(9), [10, 20]);
        assert_eq!(told(10), [20], "a client at the rebuild's seq was sent it");
        assert!(told(25).is_empty());
        let r = &unheard_refusals(0, &rows)[0];
        assert_eq!(r.rule, "role-required");
        assert!(r.detail.contains("leaders only"));
    }

    #[test]
    fn runs_follow_the_attested_author_of_each_actor() {
        let (mut doc, _) = doc_with(2);
        let mut other = doc.fork().with_actor(ActorId::from([2u8; 16].as_slice()));
        other.put(ROOT, "x", 1).unwrap();
        other.commit();
        doc.merge(&mut other).unwrap();
        let authors = BTreeMap::from([(ActorId::from([1u8; 16].as_slice()), "a".to_owned())]);
        let runs = author_runs(doc.get_changes(&[]), &authors);
        let shape: Vec<(Option<String>, usize)> = runs.iter().map(|(a, r)| (a.clone(), r.len())).collect();
        assert_eq!(shape, vec![(Some("a".into()), 2), (None, 1)]);
    }

    #[test]
    fn the_later_roster_edit_wins_at_either_tier() {
        let (a, b) = (UserId::new("chief-a").unwrap(), UserId::new("director").unwrap());
        assert!(roster_wins((5, &a), None));
        assert!(roster_wins((6, &a), Some((5, &b))));
        assert!(!roster_wins((5, &a), Some((6, &b))));
        assert!(!roster_wins((5, &a), Some((5, &a))), "the same edit changes nothing");
        // A tie in time: both tiers pick the same one, whichever holds which.
        assert!(roster_wins((5, &b), Some((5, &a))) && !roster_wins((5, &a), Some((5, &b))));
    }

    #[test]
    fn a_station_sends_up_only_its_leaders_rosters_of_its_units() {
        let org = org();
        let station = who("station-a", &[("st-a", Role::StationServer)]);
        let chief = who("chief-a", &[("st-a", Role::Leader)]);
        let officer = who("officer-a", &[("st-a", Role::Officer)]);
        let director = who("director", &[("county", Role::Leader)]);
        let unit = |u: &str| UnitId::new(u).unwrap();
        assert!(may_relay_roster(&org, &station, &unit("st-a"), Some(&chief)).is_ok());
        assert!(may_relay_roster(&org, &station, &unit("village-a"), Some(&chief)).is_ok());
        let rule = |u: &str, p: Option<&Principal>| may_relay_roster(&org, &station, &unit(u), p).unwrap_err().0;
        assert_eq!(rule("st-b", Some(&chief)), Rule::NotInJurisdiction);
        assert_eq!(rule("st-a", Some(&officer)), Rule::RoleRequired);
        assert_eq!(rule("st-a", Some(&director)), Rule::RelayOutsideJurisdiction);
        assert_eq!(rule("st-a", None), Rule::RelayUnattested);
    }

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
        };
        assert_eq!(b.delay_ms(0, 7), 0);
        for random in [0, 1, 99, u64::MAX] {
            let d1 = b.delay_ms(1, random);
            assert!((50..=100).contains(&d1), "{d1}");
            let d9 = b.delay_ms(9, random);
            assert!((500..=1_000).contains(&d9), "{d9}");
        }
    }
}
