//! The demo county behind `lianxin serve --demo`: an organisation, people and
//! documents in different states, so a newcomer sees a living system at once.
//!
//! Everything is built with sync-core's typed documents, each entry written
//! by its own user's actor, and then goes through the same validated path as
//! any client's changes: the demo is also a check that policy admits real work.

pub mod writing;

use std::collections::BTreeMap;

use automerge::{ActorId, AutoCommit};
use rand::RngCore;
use sync_core::directory::{DirectoryDoc, Household};
use sync_core::doc::{Mention, Message};
use sync_core::notice::{Audience, NewNotice, NoticeDoc, NoticeKind, ReceiptKind};
use sync_core::petition::{ContactMethod, EventBody, Location, PetitionDoc, PetitionHeader};
use sync_core::repo_protocol::DocumentId;
use sync_core::room::{MemberRole, RoomDoc, RoomInfo, RoomKind};
use sync_core::{Author, Category, Channel, HlcClock, HouseholdId, Timestamp, UnitId, UserId};

/// The password every demo officer and staff member logs in with.
pub const DEMO_PASSWORD: &str = "lianxin-demo";

/// One demo person, as the credentials banner lists them.
#[derive(Clone, Debug)]
pub struct DemoPerson {
    pub id: &'static str,
    pub name: &'static str,
    pub login: Option<&'static str>,
    pub phone: Option<&'static str>,
    pub role: &'static str,
}

/// The people of the demo county.
pub const PEOPLE: &[DemoPerson] = &[
    DemoPerson {
        id: "admin",
        name: "系统管理员",
        login: Some("admin"),
        phone: None,
        role: "admin (city)",
    },
    DemoPerson {
        id: "director",
        name: "陈局长",
        login: Some("director"),
        phone: None,
        role: "leader (county)",
    },
    DemoPerson {
        id: "duty-lin",
        name: "林值班",
        login: Some("duty"),
        phone: None,
        role: "officer (mailbox task force)",
    },
    DemoPerson {
        id: "duty-ma",
        name: "马值班",
        login: Some("duty2"),
        phone: None,
        role: "officer (mailbox task force)",
    },
    DemoPerson {
        id: "chief-east",
        name: "黄所长",
        login: Some("chief"),
        phone: None,
        role: "leader (east station)",
    },
    DemoPerson {
        id: "officer-li",
        name: "李警官",
        login: Some("li"),
        phone: None,
        role: "officer (east station)",
    },
    DemoPerson {
        id: "officer-wang",
        name: "王警官",
        login: Some("wang"),
        phone: None,
        role: "officer (east station)",
    },
    DemoPerson {
        id: "officer-zhao",
        name: "赵警官",
        login: Some("zhao"),
        phone: None,
        role: "officer (west station)",
    },
    DemoPerson {
        id: "water-chen",
        name: "陈工",
        login: Some("water"),
        phone: None,
        role: "department staff (water)",
    },
    DemoPerson {
        id: "town-wu",
        name: "吴干事",
        login: Some("zhen"),
        phone: None,
        role: "officer (东岭镇人民政府)",
    },
    DemoPerson {
        id: "cadre-sun",
        name: "孙书记",
        login: Some("cadre"),
        phone: None,
        role: "village cadre, leader (上坪村)",
    },
    DemoPerson {
        id: "party-qian",
        name: "钱组长",
        login: Some("party"),
        phone: None,
        role: "party-group leader (上坪村党小组)",
    },
    DemoPerson {
        id: "res-zhang",
        name: "张大爷",
        login: None,
        phone: Some("13800000001"),
        role: "resident (上坪村)",
    },
    DemoPerson {
        id: "res-liu",
        name: "刘阿姨",
        login: None,
        phone: Some("13800000002"),
        role: "resident (下溪村)",
    },
    DemoPerson {
        id: "res-he",
        name: "何师傅",
        login: None,
        phone: Some("13800000003"),
        role: "resident (白石村)",
    },
    DemoPerson {
        id: "res-zhou",
        name: "周女士",
        login: None,
        phone: Some("13800000004"),
        role: "resident (龙潭村)",
    },
];

/// The organisation and its people, in the admin import format.
pub fn org_file() -> String {
    let units = serde_json::json!([
        {"id": "city", "name": "云岭市公安局", "kind": "city"},
        {"id": "county", "name": "青山县公安局", "kind": "county", "parent": "city"},
        {"id": "mailbox-taskforce", "name": "局长信箱专班", "kind": "task_force", "parent": "county"},
        {"id": "town-dongling", "name": "东岭镇人民政府", "kind": "town", "parent": "county"},
        {"id": "water", "name": "青山县水利局", "kind": "department", "parent": "county"},
        {"id": "station-east", "name": "东岭派出所", "kind": "station", "parent": "county"},
        {"id": "station-west", "name": "西河派出所", "kind": "station", "parent": "county"},
        {"id": "village-shangping", "name": "上坪村", "kind": "village", "parent": "station-east"},
        {"id": "village-xiaxi", "name": "下溪村", "kind": "village", "parent": "station-east"},
        {"id": "village-baishi", "name": "白石村", "kind": "village", "parent": "station-west"},
        {"id": "village-longtan", "name": "龙潭村", "kind": "village", "parent": "station-west"},
        {"id": "shangping-g1", "name": "上坪村一组", "kind": "village_group", "parent": "village-shangping"},
        {"id": "shangping-party", "name": "上坪村党小组", "kind": "party_group", "parent": "village-shangping"},
        {"id": "baishi-g1", "name": "白石村一组", "kind": "village_group", "parent": "village-baishi"},
    ]);
    let member = |unit: &str, role: &str| serde_json::json!({"unit": unit, "role": role});
    let staff = |p: &DemoPerson, memberships: Vec<serde_json::Value>| serde_json::json!({"id": p.id, "display_name": p.name, "login": p.login, "password": DEMO_PASSWORD, "memberships": memberships});
    let resident = |p: &DemoPerson, village: &str, household: &str| serde_json::json!({"id": p.id, "display_name": p.name, "kind": "resident", "phone": p.phone, "household": household, "memberships": [member(village, "resident")]});
    let p = |id: &str| PEOPLE.iter().find(|p| p.id == id).expect("demo person");
    let users = serde_json::json!([
        staff(p("admin"), vec![member("city", "admin")]),
        staff(p("director"), vec![member("county", "leader")]),
        staff(p("duty-lin"), vec![member("mailbox-taskforce", "officer")]),
        staff(p("duty-ma"), vec![member("mailbox-taskforce", "officer")]),
        staff(
            p("chief-east"),
            vec![member("station-east", "leader"), member("station-east", "officer")]
        ),
        staff(p("officer-li"), vec![member("station-east", "officer")]),
        staff(p("officer-wang"), vec![member("station-east", "officer")]),
        staff(p("officer-zhao"), vec![member("station-west", "officer")]),
        staff(p("water-chen"), vec![member("water", "department_staff")]),
        staff(p("town-wu"), vec![member("town-dongling", "officer")]),
        staff(p("cadre-sun"), vec![member("village-shangping", "leader")]),
        staff(p("party-qian"), vec![member("shangping-party", "leader")]),
        resident(p("res-zhang"), "village-shangping", "hh-shangping-001"),
        resident(p("res-liu"), "village-xiaxi", "hh-xiaxi-001"),
        resident(p("res-he"), "village-baishi", "hh-baishi-001"),
        resident(p("res-zhou"), "village-longtan", "hh-longtan-001"),
    ]);
    serde_json::to_string_pretty(&serde_json::json!({"units": units, "users": users})).expect("static json")
}

/// One demo document.
pub struct DemoDoc {
    pub id: DocumentId,
    pub doc: AutoCommit,
}

/// Writes entries as demo users, each with their own actor and clock.
struct Writers {
    rng: Box<dyn RngCore + Send>,
    authors: BTreeMap<&'static str, (ActorId, Author)>,
}

impl Writers {
    fn new(rng: Box<dyn RngCore + Send>) -> Self {
        Writers {
            rng,
            authors: BTreeMap::new(),
        }
    }

    /// Switches `doc` to `user`'s actor and returns their author.
    fn on<'a>(&'a mut self, doc: &mut AutoCommit, user: &'static str) -> &'a mut Author {
        let rng = &mut self.rng;
        let (actor, author) = self.authors.entry(user).or_insert_with(|| {
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            let node: String = user.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let author = Author::new(
                UserId::new(user).expect("demo id"),
                HlcClock::new(node).expect("demo node"),
            );
            (ActorId::from(bytes.as_slice()), author)
        });
        doc.set_actor(actor.clone());
        author
    }

    fn doc_id(&mut self) -> DocumentId {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        DocumentId::from_bytes(bytes)
    }
}

fn u(id: &str) -> UnitId {
    UnitId::new(id).expect("demo unit id")
}

/// The demo's documents and which user wrote with which actor.
pub struct Demo {
    pub docs: Vec<DemoDoc>,
    pub actors: BTreeMap<ActorId, UserId>,
}

/// Builds the demo documents as of `now`: petitions in different states,
/// rooms, a notice and the village directories.
pub fn documents(now: Timestamp, rng: Box<dyn RngCore + Send>) -> Result<Demo, sync_core::SchemaError> {
    let mut w = Writers::new(rng);
    let mut out = Vec::new();
    let ago = |minutes: i64| now.plus_minutes(-minutes);

    let petition = |w: &mut Writers,
                    submitter: &'static str,
                    recorder: &'static str,
                    channel: Channel,
                    category: Category,
                    title: &str,
                    body: &str,
                    village: &str,
                    routed: &str,
                    at: Timestamp|
     -> Result<(DocumentId, PetitionDoc), sync_core::SchemaError> {
        let id = w.doc_id();
        let mut doc = AutoCommit::new();
        let author = w.on(&mut doc, recorder);
        let header = PetitionHeader {
            id: id.to_url(),
            channel,
            category,
            title: title.into(),
            body: body.into(),
            submitter: UserId::new(submitter)?,
            recorded_by: UserId::new(recorder)?,
            anonymous: false,
            contact: None,
            location: Location {
                unit: u(village),
                lat: None,
                lon: None,
            },
            attachments: vec![],
            source: None,
        };
        let doc = PetitionDoc::create(doc.get_actor().clone(), header, u(routed), author, at)?;
        Ok((id, doc))
    };

    // 1. A spring diverted for irrigation: dispatched to the water department, in hand.
    let (id, mut p) = petition(
        &mut w,
        "res-zhang",
        "res-zhang",
        Channel::ChiefLine,
        Category::NonPolice,
        "泉水被截流，家里断水",
        "村里的泉水被引去灌溉，我家已经断水三天，请帮忙协调。",
        "village-shangping",
        "station-east",
        ago(3 * 24 * 60),
    )?;
    let record = |w: &mut Writers,
                  p: &mut PetitionDoc,
                  who: &'static str,
                  unit: Option<&str>,
                  at: Timestamp,
                  body: EventBody| {
        let author = w.on(p.doc_mut(), who);
        p.record(author, at, unit.map(u), body).map(|_| ())
    };
    record(
        &mut w,
        &mut p,
        "officer-li",
        Some("station-east"),
        ago(3 * 24 * 60 - 4),
        EventBody::Signed,
    )?;
    record(
        &mut w,
        &mut p,
        "officer-li",
        Some("station-east"),
        ago(3 * 24 * 60 - 15),
        EventBody::Contacted {
            method: ContactMethod::Phone,
            note: Some("已电话联系张大爷".into()),
        },
    )?;
    record(
        &mut w,
        &mut p,
        "officer-li",
        Some("station-east"),
        ago(3 * 24 * 60 - 30),
        EventBody::Transferred {
            to: u("water"),
            assist: vec![u("village-shangping")],
            note: Some("一人咨询，多方联动：请水利局主办，村委协助".into()),
        },
    )?;
    record(
        &mut w,
        &mut p,
        "water-chen",
        Some("water"),
        ago(2 * 24 * 60),
        EventBody::Accepted,
    )?;
    record(
        &mut w,
        &mut p,
        "water-chen",
        Some("water"),
        ago(24 * 60),
        EventBody::Progress {
            note: "已到现场查看，正在与灌溉户协商分时用水".into(),
        },
    )?;
    let author = w.on(p.doc_mut(), "res-zhang");
    p.post(author, ago(60), Message::draft("今天还是没水，麻烦再催一下"))?;
    out.push(DemoDoc { id, doc: p.into_doc() });

    // 2. A household-registration question, not yet signed: its sign clock is overdue.
    let (id, p) = petition(
        &mut w,
        "res-liu",
        "res-liu",
        Channel::HouseholdLine,
        Category::Consultation,
        "户口本丢了怎么补办",
        "家里的户口本丢了，需要带什么材料去补办？",
        "village-xiaxi",
        "station-east",
        ago(15),
    )?;
    out.push(DemoDoc { id, doc: p.into_doc() });

    // 3. A noise complaint, answered, rated, published and closed.
    let (id, mut p) = petition(
        &mut w,
        "res-he",
        "res-he",
        Channel::VillageRoom,
        Category::Complaint,
        "夜间施工噪音扰民",
        "村口工地每天夜里施工到十二点，影响休息。",
        "village-baishi",
        "station-west",
        ago(6 * 24 * 60),
    )?;
    record(
        &mut w,
        &mut p,
        "officer-zhao",
        Some("station-west"),
        ago(6 * 24 * 60 - 5),
        EventBody::Signed,
    )?;
    record(
        &mut w,
        &mut p,
        "officer-zhao",
        Some("station-west"),
        ago(6 * 24 * 60 - 20),
        EventBody::Contacted {
            method: ContactMethod::Visit,
            note: None,
        },
    )?;
    record(
        &mut w,
        &mut p,
        "officer-zhao",
        Some("station-west"),
        ago(5 * 24 * 60),
        EventBody::Replied {
            text: "已约谈施工方，夜间十点后停止施工。".into(),
        },
    )?;
    record(
        &mut w,
        &mut p,
        "res-he",
        None,
        ago(4 * 24 * 60),
        EventBody::FollowUp {
            rating: 5,
            comment: Some("现在晚上安静了，谢谢".into()),
        },
    )?;
    record(
        &mut w,
        &mut p,
        "officer-zhao",
        Some("station-west"),
        ago(4 * 24 * 60 - 10),
        EventBody::Published {
            summary: "夜间施工噪音问题已解决".into(),
        },
    )?;
    record(
        &mut w,
        &mut p,
        "officer-zhao",
        Some("station-west"),
        ago(4 * 24 * 60 - 20),
        EventBody::Closed { note: None },
    )?;
    out.push(DemoDoc { id, doc: p.into_doc() });

    // 4. A letter to the director's mailbox, routed by the task force to the west station.
    let (id, mut p) = petition(
        &mut w,
        "res-zhou",
        "res-zhou",
        Channel::DirectorMailbox,
        Category::Lead,
        "疑似电信诈骗窝点线索",
        "龙潭村后山出租屋有人深夜聚集打电话，疑似诈骗。",
        "village-longtan",
        "mailbox-taskforce",
        ago(40),
    )?;
    record(
        &mut w,
        &mut p,
        "duty-lin",
        Some("mailbox-taskforce"),
        ago(34),
        EventBody::Transferred {
            to: u("station-west"),
            assist: vec![],
            note: Some("请西河派出所核查".into()),
        },
    )?;
    record(
        &mut w,
        &mut p,
        "director",
        Some("station-west"),
        ago(20),
        EventBody::Supervised {
            note: "重要线索，限期核查".into(),
        },
    )?;
    out.push(DemoDoc { id, doc: p.into_doc() });

    // 5. A walk-in recorded by an officer, signed and the writer contacted.
    let (id, mut p) = petition(
        &mut w,
        "res-zhang",
        "officer-wang",
        Channel::WalkIn,
        Category::Help,
        "邻里宅基地纠纷",
        "与邻居因宅基地边界发生争执，请求调解。",
        "village-shangping",
        "station-east",
        ago(2 * 60),
    )?;
    record(
        &mut w,
        &mut p,
        "officer-wang",
        Some("station-east"),
        ago(2 * 60 - 1),
        EventBody::Signed,
    )?;
    record(
        &mut w,
        &mut p,
        "officer-wang",
        Some("station-east"),
        ago(2 * 60 - 1),
        EventBody::Contacted {
            method: ContactMethod::Visit,
            note: Some("当面受理".into()),
        },
    )?;
    out.push(DemoDoc { id, doc: p.into_doc() });

    // 6. A letter nobody has signed yet: the task force's 10-minute sign clock has run out.
    let (id, p) = petition(
        &mut w,
        "res-liu",
        "res-liu",
        Channel::DirectorMailbox,
        Category::Help,
        "深夜有人撬车门",
        "下溪村村口停车场连续两晚有人撬车门，请派人巡查。",
        "village-xiaxi",
        "mailbox-taskforce",
        ago(25),
    )?;
    out.push(DemoDoc { id, doc: p.into_doc() });

    // A village room run by the officer ("one officer, one group").
    let id = w.doc_id();
    let mut doc = AutoCommit::new();
    w.on(&mut doc, "officer-li");
    let info = RoomInfo {
        id: id.to_url(),
        kind: RoomKind::VillageRoom,
        name: "上坪村警民议事厅".into(),
        unit: u("village-shangping"),
        household: None,
        created_by: UserId::new("officer-li")?,
    };
    let mut room = RoomDoc::create(
        doc.get_actor().clone(),
        info,
        [
            (UserId::new("res-zhang")?, MemberRole::Member),
            (UserId::new("chief-east")?, MemberRole::Moderator),
        ],
    )?;
    room.set_tag("legal_publicity", true)?;
    let author = w.on(room.doc_mut(), "officer-li");
    let first = room.post(
        author,
        ago(3 * 60),
        Message {
            mentions: vec![Mention::All],
            tag: Some("reminders".into()),
            ..Message::draft("近期冒充客服退款诈骗高发，请大家不要向陌生账户转账。")
        },
    )?;
    let author = w.on(room.doc_mut(), "officer-li");
    room.set_pin(author, &first, true)?;
    let author = w.on(room.doc_mut(), "res-zhang");
    room.post(
        author,
        ago(2 * 60),
        Message {
            mentions: vec![sync_core::doc::Mention::User(UserId::new("officer-li")?)],
            ..Message::draft("@李警官 收到，我跟家里人说一下")
        },
    )?;
    out.push(DemoDoc {
        id,
        doc: room.into_doc(),
    });

    // A private line between a household and the east station, with the
    // household's officer (the village directory's, below) on it.
    let id = w.doc_id();
    let mut doc = AutoCommit::new();
    w.on(&mut doc, "res-zhang");
    let info = RoomInfo {
        id: id.to_url(),
        kind: RoomKind::HouseholdLine,
        name: "张大爷家 ↔ 东岭派出所".into(),
        unit: u("station-east"),
        household: Some(HouseholdId::new("hh-shangping-001")?),
        created_by: UserId::new("res-zhang")?,
    };
    let mut line = RoomDoc::create(
        doc.get_actor().clone(),
        info,
        [(UserId::new("officer-li")?, MemberRole::Moderator)],
    )?;
    let author = w.on(line.doc_mut(), "res-zhang");
    line.post(
        author,
        ago(90),
        Message::draft("李警官，我家孙子的身份证快到期了，怎么换？"),
    )?;
    let author = w.on(line.doc_mut(), "officer-li");
    line.post(
        author,
        ago(80),
        Message::draft("带旧证和户口本到所里办理，周六上午也可以。"),
    )?;
    out.push(DemoDoc {
        id,
        doc: line.into_doc(),
    });

    // An anti-fraud notice to the east station's households.
    let id = w.doc_id();
    let mut doc = AutoCommit::new();
    let author = w.on(&mut doc, "officer-li");
    let households: Vec<HouseholdId> = [
        "hh-shangping-001",
        "hh-shangping-002",
        "hh-shangping-003",
        "hh-xiaxi-001",
        "hh-xiaxi-002",
    ]
    .iter()
    .map(|h| HouseholdId::new(*h))
    .collect::<Result<_, _>>()?;
    let notice = NewNotice {
        id: id.to_url(),
        kind: NoticeKind::AntiFraud,
        title: "警惕冒充客服退款诈骗".into(),
        body: "凡是自称客服要求转账、共享屏幕、下载会议软件的，都是诈骗！".into(),
        unit: u("station-east"),
        audience: Audience {
            households: households.clone(),
            rooms: vec![],
            units: vec![],
        },
    };
    let mut n = NoticeDoc::create(doc.get_actor().clone(), notice, author, ago(5 * 60))?;
    let author = w.on(n.doc_mut(), "res-zhang");
    n.record_receipt(author, ago(4 * 60), &households[0], ReceiptKind::Read)?;
    let author = w.on(n.doc_mut(), "res-zhang");
    n.record_receipt(author, ago(4 * 60 - 5), &households[0], ReceiptKind::Forwarded)?;
    out.push(DemoDoc { id, doc: n.into_doc() });

    // Village directories, kept door to door.
    for (village, officer, prefix, names) in [
        (
            "village-shangping",
            "officer-li",
            "hh-shangping",
            ["张家", "李家", "赵家"],
        ),
        ("village-xiaxi", "officer-wang", "hh-xiaxi", ["刘家", "孙家", "钱家"]),
        ("village-baishi", "officer-zhao", "hh-baishi", ["何家", "吴家", "郑家"]),
        (
            "village-longtan",
            "officer-zhao",
            "hh-longtan",
            ["周家", "冯家", "陈家"],
        ),
    ] {
        let id = w.doc_id();
        let mut doc = AutoCommit::new();
        w.on(&mut doc, officer);
        let mut dir = DirectoryDoc::create(doc.get_actor().clone(), u(village), &UserId::new(officer)?)?;
        for (i, name) in names.iter().enumerate() {
            let household = Household {
                id: HouseholdId::new(format!("{prefix}-{:03}", i + 1))?,
                name: (*name).into(),
                representative: None,
                representative_name: None,
                phone: None,
                group_tag: Some("一组".into()),
                officer: Some(UserId::new(officer)?),
                address: None,
                note: None,
                moved_out: false,
            };
            let author = w.on(dir.doc_mut(), officer);
            dir.upsert_household(author, ago(7 * 24 * 60), &household)?;
        }
        out.push(DemoDoc {
            id,
            doc: dir.into_doc(),
        });
    }
    let actors = w
        .authors
        .into_values()
        .map(|(actor, author)| (actor, author.user))
        .collect();
    Ok(Demo { docs: out, actors })
}

/// Seeds the demo into `state` unless its database already has units, and
/// returns the credentials banner.
pub async fn seed(state: &lianxin_server::AppState) -> anyhow::Result<String> {
    use anyhow::Context;
    let storage = &state.storage;
    let fresh = storage.auth().org_tree().await?.units().next().is_none();
    if fresh {
        lianxin_server::admin::import_str(storage, &org_file(), false, state.clock.now())
            .await
            .context("importing the demo county")?;
        state.docs.reload_org().await?;
        let demo = documents(
            state.clock.now(),
            Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_entropy()),
        )?;
        for mut d in demo.docs {
            let key = d.id.to_string();
            let changes = d.doc.get_changes(&[]);
            // Deliver each writer's run of changes as that writer, in order.
            let mut run: Vec<automerge::Change> = Vec::new();
            let mut run_user: Option<UserId> = None;
            for c in changes {
                let user = demo
                    .actors
                    .get(c.actor_id())
                    .cloned()
                    .context("demo change by an unknown actor")?;
                if run_user.as_ref().is_some_and(|u| *u != user) {
                    deliver(state, run_user.take().expect("set"), &key, std::mem::take(&mut run)).await?;
                }
                run_user = Some(user);
                run.push(c);
            }
            if let Some(user) = run_user {
                deliver(state, user, &key, run).await?;
            }
            received_as_stamped(state, &key, &d.doc).await?;
        }
    }
    let mut banner = String::from("\nDemo county 青山县 (云岭市) is ready");
    banner.push_str(if fresh {
        " (seeded now).\n"
    } else {
        " (already seeded).\n"
    });
    banner.push_str(&format!(
        "Staff console: open http://<address>/ in a browser and sign in with a login below and the password {DEMO_PASSWORD}.\n"
    ));
    banner.push_str(&format!(
        "Officers and staff sign in with POST /api/auth/login {{\"login\", \"password\": \"{DEMO_PASSWORD}\"}}:\n"
    ));
    for p in PEOPLE.iter().filter(|p| p.login.is_some()) {
        banner.push_str(&format!(
            "  {:<8} {:<10} {}\n",
            p.login.unwrap_or_default(),
            p.name,
            p.role
        ));
    }
    banner.push_str(
        "Residents open the app at http://<address>/app/ and sign in by phone (or POST /api/auth/otp/request {\"phone\"}); the code is in the log (dev mode):\n",
    );
    for p in PEOPLE.iter().filter(|p| p.phone.is_some()) {
        banner.push_str(&format!(
            "  {:<12} {:<10} {}\n",
            p.phone.unwrap_or_default(),
            p.name,
            p.role
        ));
    }
    for user in ["officer-li", "res-zhang"] {
        let token = state
            .auth
            .mint_access_token(&UserId::new(user)?, 12 * 60 * 60 * 1000)
            .await?;
        banner.push_str(&format!("A 12-hour token for {user}: {token}\n"));
    }
    banner.push_str("Try: curl -H \"Authorization: Bearer <token>\" http://<address>/api/petitions\n");
    Ok(banner)
}

/// The demo's petitions are history the server imports: each entry counts as
/// received when it was stamped (its delivery at seed time recorded now), so
/// their clocks read as the story tells them.
async fn received_as_stamped(state: &lianxin_server::AppState, key: &str, doc: &AutoCommit) -> anyhow::Result<()> {
    if !matches!(sync_core::DocKind::of(doc)?, Some(sync_core::DocKind::Petition)) {
        return Ok(());
    }
    let p = PetitionDoc::view(doc)?;
    let stamps: Vec<sync_core::Hlc> = p
        .events()?
        .into_iter()
        .map(|e| e.at)
        .chain(p.messages()?.into_iter().map(|m| m.at))
        .collect();
    let entries: Vec<(String, Timestamp)> = stamps.iter().map(|h| (h.to_string(), h.timestamp())).collect();
    let receipts: sync_core::clocks::Receipts = entries.iter().cloned().collect();
    let settings = state.docs.settings();
    let summary = p.summary_with(&settings.rules, &settings.calendar, state.clock.now(), Some(&receipts))?;
    state.docs.import_receipts(key, &entries, Some(&summary)).await?;
    Ok(())
}

async fn deliver(
    state: &lianxin_server::AppState,
    user: UserId,
    key: &str,
    changes: Vec<automerge::Change>,
) -> anyhow::Result<()> {
    let who = state.auth.principal(&user).await?;
    let applied = state.docs.apply(&who, key, changes).await?;
    anyhow::ensure!(applied.refused.is_empty(), "demo change refused: {:?}", applied.refused);
    Ok(())
}
