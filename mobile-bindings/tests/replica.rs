//! Replicas synced through an in-process batched-sync host: offline edits by
//! an officer and a resident merge, refused edits are reported and the valid
//! ones after them are kept and sent again.

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::{AutoCommit, ChangeHash};
use lianxin_mobile::*;
use sync_core::batch::{DocId, ServerExchange, heads_of, parse_push, plan_pull};
use sync_core::policy::PolicyContext;
use sync_core::{Membership, OrgTree, Principal, Role, Timestamp, Unit, UnitId, UnitKind, UserId};

fn units() -> Vec<UnitRecord> {
    let u = |id: &str, kind: &str, parent: Option<&str>| UnitRecord {
        id: id.into(),
        name: id.into(),
        kind: kind.into(),
        parent: parent.map(Into::into),
    };
    vec![
        u("county", "county", None),
        u("station-east", "station", Some("county")),
        u("village-a", "village", Some("station-east")),
    ]
}

fn org() -> OrgTree {
    OrgTree::new(units().into_iter().map(|u| Unit {
        id: UnitId::new(u.id).unwrap(),
        name: u.name,
        kind: serde_json::from_value::<UnitKind>(serde_json::Value::String(u.kind)).unwrap(),
        parent: u.parent.map(|p| UnitId::new(p).unwrap()),
    }))
}

fn session(user: &str, memberships: &[(&str, &str)], household: Option<&str>) -> SessionConfig {
    SessionConfig {
        server_url: "http://127.0.0.1:1".into(),
        user_id: user.into(),
        memberships: memberships
            .iter()
            .map(|(unit, role)| MembershipRecord {
                unit: (*unit).into(),
                role: (*role).into(),
            })
            .collect(),
        household: household.map(Into::into),
        units: units(),
    }
}

fn principal(s: &SessionConfig) -> Principal {
    Principal {
        user: UserId::new(&s.user_id).unwrap(),
        memberships: s
            .memberships
            .iter()
            .map(|m| Membership {
                unit: UnitId::new(&m.unit).unwrap(),
                role: serde_json::from_value::<Role>(serde_json::Value::String(m.role.clone())).unwrap(),
            })
            .collect(),
        household: s.household.as_ref().map(|h| h.parse().unwrap()),
    }
}

/// A batched-sync server in memory: documents, a change log and the policy.
/// Every client sees every document (read scopes are the real server's business).
#[derive(Default)]
struct Host {
    docs: BTreeMap<DocId, AutoCommit>,
    history: BTreeMap<DocId, Vec<(u64, Vec<ChangeHash>)>>,
    seq: u64,
}

impl Host {
    fn heads_at(&self, id: &DocId, cursor: u64) -> Vec<ChangeHash> {
        self.history[id]
            .iter()
            .take_while(|(s, _)| *s <= cursor)
            .last()
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    }

    fn handle(&mut self, who: &Principal, ex: &mut ServerExchange, frame: &[u8]) -> Vec<Vec<u8>> {
        let push = match parse_push(frame) {
            Ok(p) => p,
            Err(rejected) => return vec![rejected.reply],
        };
        ex.begin(&push);
        let org = org();
        let ctx = PolicyContext {
            org: &org,
            principal: who,
            now: Timestamp(i64::MAX / 4),
        };
        for doc in &push.docs {
            let stored = self.docs.get(&doc.id).cloned().unwrap_or_default();
            let received = ex.apply(&ctx, stored, doc).unwrap();
            if !received.accepted.is_empty() {
                self.seq += received.accepted.len() as u64;
                let before = self.docs.get_mut(&doc.id).map(|d| d.get_heads()).unwrap_or_default();
                let heads = heads_of(&before, &received.accepted);
                self.history.entry(doc.id).or_default().push((self.seq, heads));
            }
            self.docs.insert(doc.id, received.doc);
        }
        let mut out: Vec<Vec<u8>> = ex.ack(&push).into_iter().collect();
        if push.last {
            let cursor = ex.cursor();
            let changed: Vec<(DocId, u64)> = self
                .history
                .iter()
                .filter_map(|(id, h)| h.iter().map(|(s, _)| *s).find(|s| *s > cursor).map(|s| (*id, s)))
                .collect();
            let plan = plan_pull(changed, 1000, self.seq);
            let pushed: Vec<DocId> = ex.pushed_docs().filter(|id| !plan.docs.contains(id)).copied().collect();
            let mut docs = Vec::new();
            for id in plan.docs.iter().copied().chain(pushed) {
                let base = match ex.pushed_base(&id) {
                    Some(b) => b.to_vec(),
                    None => self.heads_at(&id, cursor),
                };
                if let Some(doc) = self.docs.get_mut(&id) {
                    docs.extend(ex.pull_doc(id, doc, &base));
                }
            }
            out.push(ex.pull(plan.cursor, docs, plan.more));
        }
        out
    }

    /// Runs exchanges for `replica` as `who` until it has nothing more to say.
    fn sync(&mut self, replica: &Replica, who: &Principal) -> Vec<SyncEvent> {
        // This host answers only final pulls (the Python suite syncs with
        // early pulls against the real server).
        let early = false;
        let mut all = Vec::new();
        for _ in 0..8 {
            let mut ex = ServerExchange::new();
            let mut down = Vec::new();
            for f in replica.start_exchange(early).unwrap() {
                down.extend(self.handle(who, &mut ex, &f));
            }
            let mut again = false;
            for f in down {
                let events = replica.receive(f).unwrap();
                again |= events
                    .iter()
                    .any(|e| matches!(e, SyncEvent::More | SyncEvent::EditsReplayed { .. }));
                all.extend(events);
            }
            if !again {
                break;
            }
        }
        all
    }

    fn petition(&self, id: &str) -> sync_core::petition::PetitionDoc {
        let bytes = sync_core::repo_protocol::DocumentId::from_url(&format!("automerge:{id}")).unwrap();
        let doc = self.docs[&DocId(*bytes.as_bytes())].clone();
        sync_core::petition::PetitionDoc::from_doc(doc).unwrap()
    }
}

struct People {
    officer: Arc<Replica>,
    officer_session: SessionConfig,
    resident: Arc<Replica>,
    resident_session: SessionConfig,
    dir: tempfile::TempDir,
}

fn people(officer_memberships: &[(&str, &str)]) -> People {
    let dir = tempfile::tempdir().unwrap();
    let officer_session = session("officer-li", officer_memberships, None);
    let resident_session = session("res-zhang", &[("village-a", "resident")], Some("hh-1"));
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    People {
        officer: Replica::open(path("officer.sqlite"), officer_session.clone()).unwrap(),
        resident: Replica::open(path("resident.sqlite"), resident_session.clone()).unwrap(),
        officer_session,
        resident_session,
        dir,
    }
}

impl People {
    /// Local edits still journalled (not yet known to be on the server), read from the file.
    fn journalled(&self, file: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.dir.path().join(file)).unwrap();
        conn.query_row("SELECT count(*) FROM journal", [], |r| r.get(0))
            .unwrap()
    }
}

fn water_petition() -> NewPetitionRecord {
    NewPetitionRecord {
        channel: "director_mailbox".into(),
        category: "help".into(),
        title: "自来水停了三天".into(),
        body: "村东头的水管坏了，请派人来看看。".into(),
        location_unit: "village-a".into(),
        routed_to: "station-east".into(),
        submitter: None,
        anonymous: false,
        contact: Some("13800000001".into()),
        attachments: vec![],
    }
}

#[test]
fn an_officer_offline_and_a_resident_merge_through_the_server() {
    let p = people(&[("station-east", "officer")]);
    let mut host = Host::default();
    let officer = principal(&p.officer_session);
    let resident = principal(&p.resident_session);

    let id = p.resident.submit_petition(water_petition()).unwrap();
    assert!(p.resident.has_unsynced_changes().unwrap());
    host.sync(&p.resident, &resident);
    assert!(!p.resident.has_unsynced_changes().unwrap());

    let events = host.sync(&p.officer, &officer);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SyncEvent::DocumentUpdated { created: true, .. }))
    );
    assert_eq!(p.officer.list_petitions().unwrap()[0].status, "submitted");

    // Offline: the officer signs, visits and replies; the resident comments.
    for verb in [
        PetitionVerb::Sign {
            unit: "station-east".into(),
        },
        PetitionVerb::Contact {
            unit: "station-east".into(),
            method: "visit".into(),
            note: Some("上门查看了水管".into()),
        },
        PetitionVerb::Reply {
            unit: "station-east".into(),
            text: "水管已修好。".into(),
        },
    ] {
        p.officer.act(id.clone(), verb).unwrap();
    }
    p.resident
        .act(
            id.clone(),
            PetitionVerb::Comment {
                text: "谢谢，水来了".into(),
                reply_to: None,
                attachments: vec![],
            },
        )
        .unwrap();
    assert_eq!(p.officer.get_petition(id.clone()).unwrap().summary.status, "replied");
    assert!(p.officer.list_petitions().unwrap()[0].unsynced);
    assert_eq!(p.journalled("officer.sqlite"), 3);

    host.sync(&p.officer, &officer);
    host.sync(&p.resident, &resident);
    host.sync(&p.officer, &officer);

    for r in [&p.officer, &p.resident] {
        let view = r.get_petition(id.clone()).unwrap();
        assert_eq!(view.summary.status, "replied");
        let kinds: Vec<&str> = view.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["submitted", "signed", "contacted", "replied"]);
        assert_eq!(view.conversation.len(), 1);
        assert!(!view.summary.unsynced);
    }
    let server = host.petition(&id);
    assert_eq!(server.state().unwrap().status.as_str(), "replied");
    assert_eq!(server.messages().unwrap().len(), 1);
    // Acknowledged edits leave the journal.
    assert_eq!(p.journalled("officer.sqlite"), 0);
    assert_eq!(p.journalled("resident.sqlite"), 0);
}

#[test]
fn the_local_policy_refuses_before_anything_is_stored() {
    let p = people(&[("station-east", "officer")]);
    let id = p.resident.submit_petition(water_petition()).unwrap();
    let before = p.resident.get_petition(id.clone()).unwrap();
    let err = p
        .resident
        .act(
            id.clone(),
            PetitionVerb::Sign {
                unit: "station-east".into(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, LianxinError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("role-required"), "{err}");
    assert_eq!(p.resident.get_petition(id.clone()).unwrap(), before);
    let bad = p
        .resident
        .act("not-an-id".into(), PetitionVerb::Withdraw { reason: None });
    assert!(matches!(bad, Err(LianxinError::InvalidInput(_))));
}

#[test]
fn a_refused_edit_is_reported_and_the_valid_edits_after_it_are_sent_again() {
    // The phone still believes the officer leads the station (a membership
    // the server has since withdrawn): supervising passes locally, not on the server.
    let p = people(&[("station-east", "officer"), ("station-east", "leader")]);
    let mut host = Host::default();
    let officer_on_server = principal(&session("officer-li", &[("station-east", "officer")], None));
    let resident = principal(&p.resident_session);
    let id = p.resident.submit_petition(water_petition()).unwrap();
    host.sync(&p.resident, &resident);
    host.sync(&p.officer, &officer_on_server);

    p.officer
        .act(
            id.clone(),
            PetitionVerb::Supervise {
                unit: "station-east".into(),
                note: "尽快处理".into(),
            },
        )
        .unwrap();
    p.officer
        .act(
            id.clone(),
            PetitionVerb::Reply {
                unit: "station-east".into(),
                text: "已安排维修。".into(),
            },
        )
        .unwrap();
    let events = host.sync(&p.officer, &officer_on_server);

    let refused: Vec<&RefusedEditRecord> = events
        .iter()
        .filter_map(|e| match e {
            SyncEvent::EditRefused { edit } => Some(edit),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0].rule, "role-required");
    assert_eq!(refused[0].what, "supervise for station-east");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SyncEvent::EditsReplayed { count: 1, .. }))
    );
    assert_eq!(p.officer.refused_edits().unwrap(), vec![refused[0].clone()]);

    // The reply reached the server; the supervision did not, and the phone dropped it.
    let server = host.petition(&id);
    let kinds: Vec<String> = server.events().unwrap().iter().map(|e| e.kind().to_string()).collect();
    assert_eq!(kinds, ["submitted", "replied"]);
    let local = p.officer.get_petition(id.clone()).unwrap();
    let kinds: Vec<&str> = local.timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "replied"]);
    assert!(!p.officer.has_unsynced_changes().unwrap());
    assert_eq!(p.journalled("officer.sqlite"), 0);

    // Nothing is refused again on the next sync, and the report can be dismissed.
    let again = host.sync(&p.officer, &officer_on_server);
    assert!(
        !again.iter().any(|e| matches!(e, SyncEvent::EditRefused { .. })),
        "{again:?}"
    );
    assert!(p.officer.dismiss_refused_edit(refused[0].seq).unwrap());
    assert!(p.officer.refused_edits().unwrap().is_empty());
}

#[test]
fn rooms_notices_and_the_directory_are_read_and_edited_locally() {
    use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};
    let p = people(&[("station-east", "officer")]);
    let mut host = Host::default();
    let officer = principal(&p.officer_session);
    let resident = principal(&p.resident_session);
    // The server holds a village room, a notice and a directory, made by the officer elsewhere.
    let actor = automerge::ActorId::from([9u8; 16].as_slice());
    let room = RoomDoc::create(
        actor.clone(),
        RoomInfo {
            id: "automerge:room".into(),
            kind: RoomKind::OfficerGroup,
            name: "东村议事厅".into(),
            unit: UnitId::new("village-a").unwrap(),
            household: None,
            created_by: UserId::new("officer-li").unwrap(),
        },
        [(UserId::new("res-zhang").unwrap(), MemberRole::Member)],
    )
    .unwrap();
    let dir = sync_core::directory::DirectoryDoc::create(
        actor.clone(),
        UnitId::new("village-a").unwrap(),
        &UserId::new("officer-li").unwrap(),
    )
    .unwrap();
    let mut author = sync_core::Author::new(
        UserId::new("officer-li").unwrap(),
        sync_core::HlcClock::new("host").unwrap(),
    );
    let notice = sync_core::notice::NoticeDoc::create(
        actor,
        sync_core::notice::NewNotice {
            id: "automerge:notice".into(),
            kind: sync_core::notice::NoticeKind::AntiFraud,
            title: "警惕冒充客服诈骗".into(),
            body: "接到自称客服的电话要求转账，请立即挂断。".into(),
            unit: UnitId::new("station-east").unwrap(),
            audience: sync_core::notice::Audience {
                units: vec![UnitId::new("village-a").unwrap()],
                ..Default::default()
            },
        },
        &mut author,
        Timestamp(1_700_000_000_000),
    )
    .unwrap();
    for (n, doc) in [(1u8, room.into_doc()), (2, dir.into_doc()), (3, notice.into_doc())] {
        let mut doc = doc;
        let id = DocId([n; 16]);
        host.seq += 1;
        let heads = doc.get_heads();
        host.history.insert(id, vec![(host.seq, heads)]);
        host.docs.insert(id, doc);
    }
    host.sync(&p.officer, &officer);
    host.sync(&p.resident, &resident);

    let rooms = p.resident.list_rooms().unwrap();
    assert_eq!(rooms[0].name, "东村议事厅");
    let room_id = rooms[0].id.clone();
    let msg = p
        .resident
        .post_message(room_id.clone(), "@officer-li 路灯坏了".into(), vec![], None)
        .unwrap();
    host.sync(&p.resident, &resident);
    host.sync(&p.officer, &officer);
    let view = p.officer.get_room(room_id.clone()).unwrap();
    assert_eq!(view.messages[0].mentions, vec!["officer-li".to_string()]);

    // The officer raises the message as a petition and moderates it.
    let raised = p
        .officer
        .raise_as_petition(room_id.clone(), msg.clone(), {
            let mut n = water_petition();
            n.title = "路灯坏了".into();
            n.submitter = Some("res-zhang".into());
            n.channel = "household_line".into();
            n
        })
        .unwrap();
    p.officer
        .redact_message(room_id.clone(), msg.clone(), "已转为诉求单".into())
        .unwrap();
    let view = p.officer.get_room(room_id.clone()).unwrap();
    assert!(view.messages[0].redacted);
    assert_eq!(
        view.messages[0].raised_petition.as_deref(),
        Some(format!("automerge:{raised}").as_str())
    );
    assert!(p.officer.get_petition(raised.clone()).unwrap().source_message.is_some());

    // Door to door: a household is added offline.
    let directory = p.officer.list_directories().unwrap()[0].id.clone();
    p.officer
        .add_household(
            directory.clone(),
            HouseholdRecord {
                id: "hh-1".into(),
                name: "张家".into(),
                representative: Some("res-zhang".into()),
                representative_name: Some("张大爷".into()),
                phone: None,
                group_tag: Some("一组".into()),
                officer: Some("officer-li".into()),
                address: None,
                note: None,
                moved_out: false,
            },
        )
        .unwrap();
    let events = host.sync(&p.officer, &officer);
    assert!(
        !events.iter().any(|e| matches!(e, SyncEvent::EditRefused { .. })),
        "{events:?}"
    );

    // The resident reads the notice and says so.
    let notice_id = p.resident.list_notices().unwrap()[0].id.clone();
    p.resident.mark_notice(notice_id.clone(), NoticeReceipt::Read).unwrap();
    assert!(p.resident.list_notices().unwrap()[0].read);
    let events = host.sync(&p.resident, &resident);
    assert!(
        !events.iter().any(|e| matches!(e, SyncEvent::EditRefused { .. })),
        "{events:?}"
    );
    host.sync(&p.officer, &officer);
    assert_eq!(p.officer.get_directory(directory).unwrap().households[0].name, "张家");
    assert_eq!(p.officer.list_petitions().unwrap().len(), 1);
}

#[test]
fn a_replica_file_belongs_to_one_user_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite").to_str().unwrap().to_string();
    let s = session("res-zhang", &[("village-a", "resident")], Some("hh-1"));
    let r = Replica::open(path.clone(), s.clone()).unwrap();
    let id = r.submit_petition(water_petition()).unwrap();
    drop(r);
    let r = Replica::open(path.clone(), s).unwrap();
    assert_eq!(r.list_petitions().unwrap()[0].id, id);
    let other = Replica::open(path, session("officer-li", &[("station-east", "officer")], None));
    assert!(matches!(other, Err(LianxinError::Storage(_))));
}

#[test]
fn deadlines_follow_the_clock_rules_the_server_serves() {
    let p = people(&[("station-east", "officer")]);
    p.resident.submit_petition(water_petition()).unwrap();
    let due = |r: &Replica| {
        let [s] = r.list_petitions().unwrap().try_into().unwrap();
        s.next_due_ms.unwrap() - s.submitted_ms.unwrap()
    };
    assert_eq!(due(&p.resident), 10 * 60_000, "the built-in sign limit");
    // What `GET /api/clock-rules` answers when the mailbox signs within 5 minutes.
    let rules = sync_core::ClockRules::from_json(
        r#"{"overrides": [{"channel": "director_mailbox", "sign": {"wall_minutes": 5, "due_soon_before": 2}}]}"#,
    )
    .unwrap();
    let served = sync_core::wire::ClockSettings {
        rules,
        calendar: sync_core::Calendar::china(),
    };
    p.resident
        .receive_clock_settings(serde_json::to_string(&served).unwrap())
        .unwrap();
    assert_eq!(due(&p.resident), 5 * 60_000, "re-indexed with the served rules");
    assert!(
        p.resident.receive_clock_settings("{}".into()).is_err(),
        "an answer that is not clock settings is refused"
    );
}
