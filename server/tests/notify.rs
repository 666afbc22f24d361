//! Notification fan-out end to end, over a real socket and a real database seeded with the
//! demo county: every source of notification, the inbox cursor and acknowledgement, live
//! delivery over SSE and the automerge-repo WebSocket, duty rosters and the hand-over, the
//! clocks and auto-escalation across a restart, the outbox with a failing gateway, and notice
//! delivery reports.

use std::time::Duration;

use anyhow::{Context, ensure};
use futures_util::{SinkExt, StreamExt};
use lianxin_server::backend_tests;
use lianxin_server::clock::{Clock, ManualClock};
use lianxin_server::notify::NotifySettings;
use lianxin_server::testing::{TestDb, TestServer, WebhookRecorder, test_notify_settings};
use serde_json::{Value, json};
use sync_core::notice::{Audience, NewNotice, NoticeDoc, NoticeKind, ReceiptKind};
use sync_core::notify::EscalationPolicy;
use sync_core::repo_protocol::{self, DocumentId, JoinMessage, RepoMessage};
use sync_core::{Calendar, Date, HouseholdId, Timestamp, UnitId, UserId};
use tokio_tungstenite::tungstenite::Message as Ws;

const STEP: Duration = Duration::from_secs(10);

/// Monday 2025-06-16 at `hh:mm` in the calendar's local time (UTC+8).
fn monday_at(hh: i64, mm: i64) -> Timestamp {
    let cal = Calendar::china();
    cal.start_of_day(Date::from_ymd(2025, 6, 16).expect("date"))
        .plus_minutes(hh * 60 + mm)
}

async fn server_with(
    db: &TestDb,
    settings: NotifySettings,
    clock: std::sync::Arc<ManualClock>,
) -> anyhow::Result<TestServer> {
    let server = TestServer::start_notify(db.storage.clone(), settings, clock).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

async fn demo_server(db: &TestDb) -> anyhow::Result<TestServer> {
    server_with(db, test_notify_settings(), ManualClock::new(monday_at(10, 0))).await
}

async fn token(server: &TestServer, user: &str) -> anyhow::Result<String> {
    Ok(server
        .state
        .auth
        .mint_access_token(&UserId::new(user)?, 24 * 60 * 60 * 1000)
        .await?)
}

fn new_id() -> DocumentId {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    DocumentId::from_bytes(b)
}

/// Files a petition as `user`, routed to `unit`; returns its id.
async fn submit(server: &TestServer, user: &str, title: &str, unit: &str) -> anyhow::Result<String> {
    let id = new_id();
    let body = json!({
        "id": id.to_string(), "channel": "chief_line", "category": "help", "title": title,
        "body": "请尽快处理。", "location": {"unit": "village-shangping"}, "routed_to": unit,
    });
    let (status, view) = server
        .post("/api/petitions", Some(&token(server, user).await?), &body)
        .await?;
    ensure!(status == 201, "submit: {status} {view}");
    Ok(id.to_string())
}

async fn act(server: &TestServer, user: &str, id: &str, action: Value) -> anyhow::Result<Value> {
    let (status, view) = server
        .post(
            &format!("/api/petitions/{id}/actions"),
            Some(&token(server, user).await?),
            &action,
        )
        .await?;
    ensure!(status == 200, "{user} {action}: {status} {view}");
    Ok(view)
}

/// The caller's unacknowledged inbox.
async fn inbox(server: &TestServer, user: &str) -> anyhow::Result<Vec<Value>> {
    let (status, page) = server
        .get("/api/inbox?limit=500", Some(&token(server, user).await?))
        .await?;
    ensure!(status == 200, "inbox of {user}: {status} {page}");
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// The caller's items about document `doc_id`, as `kind`s in cursor order.
/// A mention of `user` written straight to the store, not raised by a document.
fn mention_for(user: &UserId, key: &str, text: &str, at: Timestamp) -> sync_core::notify::Notification {
    sync_core::notify::Notification {
        key: key.into(),
        recipient: sync_core::notify::Recipient::User(user.clone()),
        kind: sync_core::notify::NotificationKind::Mention,
        doc: "test".into(),
        entry: None,
        urgent: false,
        at,
        text: text.into(),
    }
}

/// Stores `notifications` about `doc_id` as a change's transaction would, commits, and returns
/// the inbox items written.
async fn write_committed(
    server: &TestServer,
    doc_id: &str,
    notifications: &[sync_core::notify::Notification],
) -> anyhow::Result<Vec<lianxin_server::storage::InboxItem>> {
    let mut tx = server.state.storage.begin().await?;
    let written = lianxin_server::write::fanout::write(
        &mut tx,
        doc_id,
        notifications,
        server.clock.now(),
        &Calendar::china(),
        &Default::default(),
    )
    .await?;
    tx.commit().await?;
    Ok(written)
}

async fn kinds_about(server: &TestServer, user: &str, doc_id: &str) -> anyhow::Result<Vec<String>> {
    Ok(inbox(server, user)
        .await?
        .iter()
        .filter(|i| i["doc_id"] == doc_id)
        .filter_map(|i| i["kind"].as_str().map(str::to_owned))
        .collect())
}

// ---- every source ----

async fn every_source_reaches_the_people_it_concerns(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    // A new petition in the east station's queue: no roster, so its officers and leader.
    let id = submit(&server, "res-zhang", "路灯坏了", "station-east").await?;
    for officer in ["officer-li", "officer-wang", "chief-east"] {
        assert_eq!(kinds_about(&server, officer, &id).await?, ["new_petition"], "{officer}");
    }
    assert!(
        kinds_about(&server, "officer-zhao", &id).await?.is_empty(),
        "west station"
    );
    assert!(
        kinds_about(&server, "res-zhang", &id).await?.is_empty(),
        "nobody hears of their own entry"
    );

    // Status changes and replies on my petition, for the resident.
    act(
        &server,
        "officer-li",
        &id,
        json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;
    act(
        &server,
        "officer-li",
        &id,
        json!({"action": "comment", "text": "明天上午来修"}),
    )
    .await?;
    // Transfer with an assisting unit; supervision; escalation.
    act(
        &server,
        "officer-li",
        &id,
        json!({"action": "transfer", "unit": "station-east", "to": "water", "assist": ["village-shangping"], "note": "请水利局处理"}),
    )
    .await?;
    assert_eq!(
        kinds_about(&server, "res-zhang", &id).await?,
        ["status_changed", "petition_message", "status_changed"]
    );
    assert_eq!(kinds_about(&server, "water-chen", &id).await?, ["assigned"]);
    act(
        &server,
        "director",
        &id,
        json!({"action": "supervise", "unit": "water", "note": "限期办结"}),
    )
    .await?;
    let water = inbox(&server, "water-chen").await?;
    let supervised = water
        .iter()
        .find(|i| i["doc_id"] == id && i["kind"] == "supervised")
        .context("water is told of the supervision")?;
    assert_eq!(supervised["urgent"], true);
    // The resident writes back: the lead unit hears it.
    act(&server, "res-zhang", &id, json!({"action": "comment", "text": "谢谢"})).await?;
    assert_eq!(
        kinds_about(&server, "water-chen", &id).await?,
        ["assigned", "supervised", "petition_message"]
    );

    // @mention and @all in a room.
    let room = room_id(&server, "上坪村警民议事厅").await?;
    let li = token(&server, "officer-li").await?;
    let (status, posted) = server
        .post(
            &format!("/api/rooms/{room}/messages"),
            Some(&li),
            &json!({"text": "@张大爷 明天开会", "mentions": [{"user": "res-zhang"}]}),
        )
        .await?;
    ensure!(status == 201, "{posted}");
    let one = posted["id"].as_str().context("message id")?.to_owned();
    assert_eq!(kinds_for_entry(&server, "res-zhang", &room, &one).await?, ["mention"]);
    assert!(kinds_for_entry(&server, "chief-east", &room, &one).await?.is_empty());
    let (status, posted) = server
        .post(
            &format!("/api/rooms/{room}/messages"),
            Some(&li),
            &json!({"text": "请大家注意防火", "mentions": ["all"]}),
        )
        .await?;
    ensure!(status == 201, "{posted}");
    let all = posted["id"].as_str().context("message id")?.to_owned();
    assert_eq!(kinds_for_entry(&server, "chief-east", &room, &all).await?, ["mention"]);
    assert_eq!(kinds_for_entry(&server, "res-zhang", &room, &all).await?, ["mention"]);
    assert!(
        kinds_for_entry(&server, "officer-li", &room, &all).await?.is_empty(),
        "not the writer"
    );
    // One notification for the room's members, in each member's inbox.
    for user in ["chief-east", "res-zhang"] {
        let items = inbox(&server, user).await?;
        let item = items
            .iter()
            .find(|i| i["doc_id"] == room.as_str() && i["entry"] == all.as_str())
            .context("the @all item")?;
        assert_eq!(item["recipient"], "all", "{item}");
        assert!(
            item["key"].as_str().is_some_and(|k| k.ends_with("/mention/all")),
            "{item}"
        );
    }

    // A new notice for my household.
    let notice = issue_notice(&server, &["village-shangping"], &[]).await?;
    let items = inbox(&server, "res-zhang").await?;
    let n = items
        .iter()
        .find(|i| i["doc_id"] == notice)
        .context("the notice reaches the household")?;
    assert_eq!(
        (n["kind"].as_str(), n["urgent"].as_bool()),
        (Some("notice"), Some(true))
    );
    assert!(
        kinds_about(&server, "res-he", &notice).await?.is_empty(),
        "another village"
    );
    server.stop().await
}

/// The caller's items about one message of a room (entry ids are unique within a document).
async fn kinds_for_entry(server: &TestServer, user: &str, room: &str, entry: &str) -> anyhow::Result<Vec<String>> {
    Ok(inbox(server, user)
        .await?
        .iter()
        .filter(|i| i["doc_id"] == room && i["entry"] == entry)
        .filter_map(|i| i["kind"].as_str().map(str::to_owned))
        .collect())
}

async fn room_id(server: &TestServer, name: &str) -> anyhow::Result<String> {
    let rooms = server.state.storage.projections().rooms().await?;
    rooms
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| r.doc_id)
        .with_context(|| format!("no room {name}"))
}

/// Issues an anti-fraud notice from the east station to `units` and `rooms`; returns its id.
async fn issue_notice(server: &TestServer, units: &[&str], rooms: &[&str]) -> anyhow::Result<String> {
    let id = new_id();
    let who = server.state.auth.principal(&UserId::new("officer-li")?).await?;
    let actor = server.state.docs.server_actor(&who.user);
    let mut author = sync_core::Author::new(who.user.clone(), sync_core::HlcClock::new("officerli")?);
    let notice = NewNotice {
        id: id.to_url(),
        kind: NoticeKind::AntiFraud,
        title: "警惕刷单返利诈骗".into(),
        body: "刷单就是诈骗！".into(),
        unit: UnitId::new("station-east")?,
        audience: Audience {
            households: vec![],
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            units: units.iter().map(|u| UnitId::new(*u)).collect::<Result<_, _>>()?,
        },
    };
    let doc = NoticeDoc::create(actor, notice, &mut author, server.clock.now())?;
    let applied = server.state.docs.create(&who, &id.to_string(), doc.into_doc()).await?;
    ensure!(applied.refused.is_empty(), "{:?}", applied.refused);
    Ok(id.to_string())
}

// ---- the inbox ----

async fn the_inbox_is_ordered_resumable_and_done_once_acknowledged(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    // The resident's phone is offline while three things happen to their petition.
    let id = submit(&server, "res-zhang", "路灯坏了", "station-east").await?;
    act(
        &server,
        "officer-li",
        &id,
        json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;
    act(
        &server,
        "officer-li",
        &id,
        json!({"action": "comment", "text": "第一条"}),
    )
    .await?;
    act(
        &server,
        "officer-li",
        &id,
        json!({"action": "comment", "text": "第二条"}),
    )
    .await?;
    let zhang = token(&server, "res-zhang").await?;
    let (_, page) = server.get("/api/inbox", Some(&zhang)).await?;
    let items = page["items"].as_array().context("items")?;
    let mine: Vec<&Value> = items.iter().filter(|i| i["doc_id"] == id).collect();
    assert_eq!(mine.len(), 3, "{page}");
    let cursors: Vec<i64> = items.iter().filter_map(|i| i["cursor"].as_i64()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "in cursor order: {cursors:?}");
    assert!(mine[2]["text"].as_str().unwrap_or_default().contains("第二条"));

    // Paging from a cursor.
    let first = mine[0]["cursor"].as_i64().context("cursor")?;
    let (_, after) = server.get(&format!("/api/inbox?after={first}"), Some(&zhang)).await?;
    assert!(
        after["items"]
            .as_array()
            .context("items")?
            .iter()
            .all(|i| i["cursor"].as_i64() > Some(first))
    );

    // Acknowledged items are never returned again, even when asked for.
    let second = mine[1]["cursor"].as_i64().context("cursor")?;
    let (status, acked) = server
        .post("/api/inbox/ack", Some(&zhang), &json!({"cursor": second}))
        .await?;
    assert_eq!((status, acked["acked"].as_i64()), (200, Some(second)));
    let (_, again) = server.get("/api/inbox?after=0", Some(&zhang)).await?;
    let left: Vec<i64> = again["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i["cursor"].as_i64())
        .collect();
    assert!(left.iter().all(|c| *c > second), "{left:?}");
    assert!(left.contains(&mine[2]["cursor"].as_i64().context("cursor")?));
    // An older ack changes nothing; an ack beyond the inbox is refused with a reason.
    let (_, older) = server
        .post("/api/inbox/ack", Some(&zhang), &json!({"cursor": first}))
        .await?;
    assert_eq!(older["acked"].as_i64(), Some(second));
    let (status, refused) = server
        .post("/api/inbox/ack", Some(&zhang), &json!({"cursor": 1_000_000_000}))
        .await?;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("beyond")
    );
    let (status, _) = server.get("/api/inbox", None).await?;
    assert_eq!(status, 401);

    // Deriving the same notifications again (another node, a retry) stores nothing new.
    let before = server.state.storage.inbox().head(None).await?;
    let zhang_principal = server.state.auth.principal(&UserId::new("res-zhang")?).await?;
    let doc = server.state.docs.read(&zhang_principal, &id).await?;
    let p = sync_core::petition::PetitionDoc::view(&doc)?;
    let again = sync_core::notify::petition_notifications(None, &p)?;
    ensure!(!again.is_empty());
    let written = write_committed(&server, &id, &again).await?;
    assert!(written.is_empty(), "nothing delivered twice: {written:?}");
    assert_eq!(server.state.storage.inbox().head(None).await?, before);
    server.stop().await
}

// ---- live delivery ----

/// A minimal Server-Sent Events reader.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(server: &TestServer, user: &str, last_event_id: Option<i64>) -> anyhow::Result<Sse> {
        let mut request =
            reqwest::Client::new().get(server.url(&format!("/api/inbox/stream?token={}", token(server, user).await?)));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await?;
        ensure!(response.status() == 200, "stream: {}", response.status());
        Ok(Sse {
            response,
            buffer: String::new(),
        })
    }

    /// The next `notification` event as `(id, data)`.
    async fn next(&mut self) -> anyhow::Result<(i64, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse::<i64>().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.as_deref() == Some("notification") {
                    return Ok((id.context("an event id")?, serde_json::from_str(&data)?));
                }
                continue;
            }
            let chunk = tokio::time::timeout(STEP, self.response.chunk())
                .await
                .context("no event in time")??
                .context("stream ended")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn sse_delivers_live_and_resumes_from_the_last_event_id(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let mut stream = Sse::open(&server, "officer-wang", None).await?;
    // Whatever the demo raised comes first; skip to the live part.
    let head = server
        .state
        .storage
        .inbox()
        .head(Some(&UserId::new("officer-wang")?))
        .await?;
    let id = submit(&server, "res-zhang", "井盖丢了", "station-east").await?;
    let (event_id, item) = loop {
        let (event_id, item) = stream.next().await?;
        if event_id > head {
            break (event_id, item);
        }
    };
    assert_eq!(
        (item["doc_id"].as_str(), item["kind"].as_str()),
        (Some(id.as_str()), Some("new_petition"))
    );
    assert_eq!(item["cursor"].as_i64(), Some(event_id));
    drop(stream);

    // While disconnected: two more.
    let second = submit(&server, "res-liu", "路面塌陷", "station-east").await?;
    let third = submit(&server, "res-zhang", "广场舞噪音", "station-east").await?;
    let mut resumed = Sse::open(&server, "officer-wang", Some(event_id)).await?;
    let (a, first_back) = resumed.next().await?;
    let (b, second_back) = resumed.next().await?;
    assert!(event_id < a && a < b);
    assert_eq!(first_back["doc_id"].as_str(), Some(second.as_str()));
    assert_eq!(second_back["doc_id"].as_str(), Some(third.as_str()));
    server.stop().await
}

/// Live delivery takes the items a commit hands over as they are, but reads
/// the store when something was committed in between without telling the
/// dispatcher, so nothing is skipped or reordered.
async fn live_delivery_skips_nothing_committed_between_handed_over_items(db: &mut TestDb) -> anyhow::Result<()> {
    let settings = NotifySettings {
        // Only commits wake the dispatcher here.
        poll_every: Duration::from_secs(3600),
        ..test_notify_settings()
    };
    let server = server_with(db, settings, ManualClock::new(monday_at(10, 0))).await?;
    let wang = UserId::new("officer-wang")?;
    let mut stream = Sse::open(&server, "officer-wang", None).await?;
    let head = server.state.storage.inbox().head(Some(&wang)).await?;
    let first = submit(&server, "res-zhang", "井盖丢了", "station-east").await?;
    let quiet = mention_for(&wang, "test/quiet/officer-wang", "另一个写入者", server.clock.now());
    let written = write_committed(&server, &first, &[quiet]).await?;
    ensure!(written.len() == 1);
    let second = submit(&server, "res-liu", "路面塌陷", "station-east").await?;

    let mut got = Vec::new();
    while got.len() < 3 {
        let (id, item) = stream.next().await?;
        if id > head {
            got.push((id, item));
        }
    }
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "in cursor order");
    assert_eq!(got[0].1["doc_id"].as_str(), Some(first.as_str()));
    assert_eq!(got[1].1["key"].as_str(), Some("test/quiet/officer-wang"));
    assert_eq!(got[2].1["doc_id"].as_str(), Some(second.as_str()));
    server.stop().await
}

async fn the_sync_websocket_pushes_notifications_to_connected_clients(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let url = format!(
        "ws://{}/sync?token={}",
        server.addr,
        token(&server, "officer-li").await?
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let join = RepoMessage::Join(JoinMessage {
        sender_id: "test-client".into(),
        peer_metadata: None,
        supported_protocol_versions: vec!["1".into()],
    });
    ws.send(Ws::Binary(repo_protocol::encode(&join).into())).await?;
    let peer = tokio::time::timeout(STEP, ws.next()).await?.context("closed")??;
    assert!(matches!(
        repo_protocol::decode(&peer.into_data())?,
        RepoMessage::Peer(_)
    ));

    let id = submit(&server, "res-zhang", "桥栏杆松动", "station-east").await?;
    let pushed = loop {
        let frame = tokio::time::timeout(STEP, ws.next()).await?.context("closed")??;
        if let Some(n) = repo_protocol::decode_notification(&frame.into_data())? {
            break n;
        }
    };
    assert_eq!(pushed.target_id.as_str(), "test-client");
    let item: Value = serde_json::from_str(&pushed.notification)?;
    assert_eq!(
        (item["doc_id"].as_str(), item["kind"].as_str()),
        (Some(id.as_str()), Some("new_petition"))
    );
    assert_eq!(item["cursor"].as_i64(), i64::try_from(pushed.cursor).ok());
    server.stop().await
}

// ---- duty rosters ----

fn roster(day: &[&str], night: &[&str]) -> Value {
    let all = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    json!({
        "unit": "station-east", "covers_7x24": true,
        "shifts": [
            {"name": "白班", "days": all, "start": "08:00", "end": "20:00", "members": day},
            {"name": "夜班", "days": all, "start": "20:00", "end": "08:00", "members": night},
        ]
    })
}

async fn put_roster(server: &TestServer, user: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .put(server.url("/api/units/station-east/roster"))
        .bearer_auth(token(server, user).await?)
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

async fn the_roster_decides_who_is_told_and_the_next_shift_inherits_open_items(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    // Only a leader (or an admin) sets the roster; a bad roster is refused with its reason.
    let (status, refused) = put_roster(&server, "officer-li", &roster(&["officer-li"], &["officer-wang"])).await?;
    assert_eq!(status, 403, "{refused}");
    let mut overlapping = roster(&["officer-li"], &["officer-wang"]);
    overlapping["shifts"][1]["start"] = json!("19:00");
    let (status, refused) = put_roster(&server, "chief-east", &overlapping).await?;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("overlap"),
        "{refused}"
    );
    let (status, refused) = put_roster(&server, "chief-east", &roster(&["officer-li"], &["res-zhang"])).await?;
    assert_eq!(status, 400, "a resident on duty: {refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("res-zhang"),
        "{refused}"
    );
    let (status, view) = put_roster(&server, "chief-east", &roster(&["officer-li"], &["officer-wang"])).await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["on_duty"], json!(["officer-li"]));
    assert_eq!(view["next_handover"].as_i64(), Some(monday_at(20, 0).millis()));
    server.state.notify.tick().await?;

    // 10:00 on Monday: the day shift is on duty and alone is told.
    let open = submit(&server, "res-zhang", "路灯坏了", "station-east").await?;
    let done = submit(&server, "res-zhang", "狗丢了", "station-east").await?;
    assert_eq!(kinds_about(&server, "officer-li", &open).await?, ["new_petition"]);
    assert!(kinds_about(&server, "officer-wang", &open).await?.is_empty());
    assert!(kinds_about(&server, "chief-east", &open).await?.is_empty());
    act(
        &server,
        "res-zhang",
        &done,
        json!({"action": "withdraw", "reason": "找到了"}),
    )
    .await?;

    // Before the hand-over nothing moves; at 20:00 the night shift inherits what is still open.
    server.clock.advance_secs(9 * 3600);
    let report = server.state.notify.tick().await?;
    assert_eq!(report.handovers, 0);
    server.clock.advance_secs(3600);
    let report = server.state.notify.tick().await?;
    assert_eq!(report.handovers, 1, "{report:?}");
    // The new petition, and the overdue clocks the day shift was told of at 19:00.
    let inherited = kinds_about(&server, "officer-wang", &open).await?;
    assert_eq!(inherited, ["new_petition", "overdue", "overdue"]);
    assert_eq!(kinds_about(&server, "officer-li", &open).await?, inherited);
    assert!(
        kinds_about(&server, "officer-wang", &done).await?.is_empty(),
        "withdrawn: not open"
    );
    // Ticking again hands nothing over twice.
    let report = server.state.notify.tick().await?;
    assert_eq!(report.handovers, 0);
    assert_eq!(kinds_about(&server, "officer-wang", &open).await?, inherited);
    // New work at night goes to the night shift only.
    let night = submit(&server, "res-zhang", "有人砸车", "station-east").await?;
    assert_eq!(kinds_about(&server, "officer-wang", &night).await?, ["new_petition"]);
    assert!(kinds_about(&server, "officer-li", &night).await?.is_empty());
    server.stop().await
}

// ---- clocks ----

async fn clocks_notify_and_escalate_once_across_a_restart(db: &mut TestDb) -> anyhow::Result<()> {
    let settings = NotifySettings {
        escalation: EscalationPolicy::from_json(r#"{"default": [{"clock": "sign", "overdue_minutes": 20}]}"#)?,
        ..test_notify_settings()
    };
    let clock = ManualClock::new(monday_at(10, 0));
    let server = server_with(db, settings.clone(), clock.clone()).await?;
    server.state.notify.tick().await?;
    let id = submit(&server, "res-zhang", "门口积水", "station-east").await?;

    // Due soon before the 10 minutes to sign are up, overdue (urgent) after.
    clock.advance_secs(9 * 60);
    server.state.notify.tick().await?;
    assert_eq!(
        kinds_about(&server, "officer-li", &id).await?,
        ["new_petition", "due_soon"]
    );
    clock.advance_secs(2 * 60);
    server.state.notify.tick().await?;
    let items = inbox(&server, "officer-li").await?;
    let overdue: Vec<&Value> = items
        .iter()
        .filter(|i| i["doc_id"] == id && i["kind"] == "overdue")
        .collect();
    // Sign and contact are both overdue by now? Contact has 30 minutes: only sign.
    assert_eq!(overdue.len(), 1, "{items:?}");
    assert_eq!(overdue[0]["urgent"], true);

    // A restart sweeps again and fires nothing twice.
    server.stop().await?;
    let storage = db.reopen().await?;
    let server = TestServer::start_notify(storage, settings.clone(), clock.clone()).await?;
    server.state.notify.tick().await?;
    assert_eq!(
        kinds_about(&server, "officer-li", &id).await?,
        ["new_petition", "due_soon", "overdue"]
    );

    // 20 minutes overdue: escalated to the county by the server's own actor, once.
    clock.advance_secs(20 * 60);
    let report = server.state.notify.tick().await?;
    assert!(report.escalated >= 1, "{report:?}");
    let timeline = escalations(&server, &id).await?;
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    assert_eq!(timeline[0]["by"], "lianxin-system");
    assert_eq!(timeline[0]["unit"], "station-east");
    assert_eq!(timeline[0]["to"], "county");
    // The county's leader hears of it at once.
    assert!(
        kinds_about(&server, "director", &id)
            .await?
            .contains(&"escalated".to_owned())
    );

    server.stop().await?;
    let storage = db.reopen().await?;
    let server = TestServer::start_notify(storage, settings, clock.clone()).await?;
    clock.advance_secs(60);
    server.state.notify.tick().await?;
    server.state.notify.tick().await?;
    assert_eq!(
        escalations(&server, &id).await?.len(),
        1,
        "not escalated twice after a restart"
    );
    server.stop().await
}

async fn escalations(server: &TestServer, id: &str) -> anyhow::Result<Vec<Value>> {
    let (status, view) = server
        .get(&format!("/api/petitions/{id}"), Some(&token(server, "director").await?))
        .await?;
    ensure!(status == 200, "{view}");
    Ok(view["timeline"]
        .as_array()
        .context("timeline")?
        .iter()
        .filter(|e| e["kind"] == "escalated")
        .cloned()
        .collect())
}

// ---- the outbox ----

async fn the_outbox_survives_a_failing_gateway_and_a_restart(db: &mut TestDb) -> anyhow::Result<()> {
    let push = WebhookRecorder::start().await?;
    push.set_failing(true);
    let settings = NotifySettings {
        push_url: Some(push.url.clone()),
        push_delay: Duration::from_secs(30),
        max_attempts: 3,
        backoff_base: Duration::from_secs(60),
        ..test_notify_settings()
    };
    let clock = ManualClock::new(monday_at(10, 0));
    let server = server_with(db, settings.clone(), clock.clone()).await?;

    // officer-wang is connected: what reaches him live is not pushed.
    let mut live = Sse::open(&server, "officer-wang", None).await?;
    let head = server
        .state
        .storage
        .inbox()
        .head(Some(&UserId::new("officer-wang")?))
        .await?;
    let id = submit(&server, "res-zhang", "电线杆倾斜", "station-east").await?;
    let seen = loop {
        let (event_id, item) = live.next().await?;
        if event_id > head && item["doc_id"] == id {
            break event_id;
        }
    };
    // The stream records the live delivery (in the background, batched).
    let waited = std::time::Instant::now();
    while server.state.storage.inbox().delivered_at(seen).await?.is_none() {
        ensure!(waited.elapsed() < STEP, "the live delivery was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing goes out before the delay.
    server.state.notify.tick().await?;
    assert_eq!(push.attempts(), 0);
    let jobs = jobs_about(&server, &id).await?;
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert!(
        jobs.iter().all(|j| j.status == "pending" && j.attempts == 0),
        "{jobs:?}"
    );

    // The gateway is down: every attempt fails and is retried later.
    clock.advance_secs(31);
    server.state.notify.tick().await?;
    let jobs = jobs_about(&server, &id).await?;
    let state = |user: &str| {
        jobs.iter()
            .find(|j| j.user_id == user)
            .map(|j| (j.status.clone(), j.attempts))
    };
    assert_eq!(state("officer-li"), Some(("pending".into(), 1)), "{jobs:?}");
    assert_eq!(state("chief-east"), Some(("pending".into(), 1)), "{jobs:?}");
    assert_eq!(
        state("officer-wang"),
        Some(("skipped".into(), 0)),
        "delivered live: {jobs:?}"
    );
    assert!(
        jobs.iter()
            .filter(|j| j.status == "pending")
            .all(|j| j.last_error.as_deref().is_some_and(|e| e.contains("503")))
    );

    // The server restarts; the jobs are still there, and the gateway still fails.
    drop(live);
    server.stop().await?;
    let storage = db.reopen().await?;
    let server = TestServer::start_notify(storage, settings.clone(), clock.clone()).await?;
    clock.advance_secs(61);
    server.state.notify.tick().await?;
    let jobs = jobs_about(&server, &id).await?;
    assert!(
        jobs.iter()
            .filter(|j| j.user_id != "officer-wang")
            .all(|j| (j.status.as_str(), j.attempts) == ("pending", 2)),
        "{jobs:?}"
    );

    // The gateway is back: each push goes out exactly once, carrying its key.
    push.set_failing(false);
    clock.advance_secs(121);
    server.state.notify.tick().await?;
    clock.advance_secs(3600);
    server.state.notify.tick().await?;
    let jobs = jobs_about(&server, &id).await?;
    assert!(
        jobs.iter()
            .filter(|j| j.user_id != "officer-wang")
            .all(|j| j.status == "sent"),
        "{jobs:?}"
    );
    let pushed: Vec<Value> = push
        .received()
        .into_iter()
        .filter(|p| {
            p["key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&format!("automerge:{id}/")))
        })
        .collect();
    let mut users: Vec<&str> = pushed.iter().filter_map(|p| p["user"].as_str()).collect();
    users.sort();
    assert_eq!(users, ["chief-east", "officer-li"], "{pushed:?}");
    assert_eq!(pushed[0]["kind"], "new_petition");

    // A gateway that never recovers: after 3 attempts the push is a dead letter.
    push.set_failing(true);
    act(
        &server,
        "director",
        &id,
        json!({"action": "supervise", "unit": "station-east", "note": "马上处理"}),
    )
    .await?;
    for _ in 0..4 {
        clock.advance_secs(3600);
        server.state.notify.tick().await?;
    }
    let admin = token(&server, "admin").await?;
    let (status, dead) = server.get("/api/admin/outbox/dead?limit=1000", Some(&admin)).await?;
    assert_eq!(status, 200, "{dead}");
    let supervised: Vec<&Value> = dead["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter(|d| {
            d["key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&format!("automerge:{id}/")) && k.contains("/supervised/"))
        })
        .collect();
    assert_eq!(supervised.len(), 3, "the station's three people: {supervised:?}");
    assert!(
        supervised.iter().all(|d| d["channel"] == "push" && d["attempts"] == 3),
        "{supervised:?}"
    );
    assert!(supervised[0]["last_error"].as_str().unwrap_or_default().contains("503"));
    let (status, _) = server
        .get("/api/admin/outbox/dead", Some(&token(&server, "officer-li").await?))
        .await?;
    assert_eq!(status, 403);
    server.stop().await
}

async fn urgent_items_also_go_out_as_text_messages(db: &mut TestDb) -> anyhow::Result<()> {
    let push = WebhookRecorder::start().await?;
    let sms = WebhookRecorder::start().await?;
    let settings = NotifySettings {
        push_url: Some(push.url.clone()),
        sms_url: Some(sms.url.clone()),
        ..test_notify_settings()
    };
    let clock = ManualClock::new(monday_at(10, 0));
    let server = server_with(db, settings, clock.clone()).await?;
    // An anti-fraud notice is urgent: the household head gets a push and a text message.
    let notice = issue_notice(&server, &["village-shangping"], &[]).await?;
    clock.advance_secs(31);
    server.state.notify.tick().await?;
    let about = |m: &Value| {
        m["key"]
            .as_str()
            .is_some_and(|k| k.starts_with(&format!("automerge:{notice}/")))
    };
    let texts: Vec<Value> = sms.received().into_iter().filter(|m| about(m)).collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["phone"], "13800000001");
    assert_eq!(texts[0]["user"], "res-zhang");
    assert!(
        texts[0]["text"].as_str().unwrap_or_default().starts_with("反诈提醒"),
        "{texts:?}"
    );
    let pushes: Vec<Value> = push.received().into_iter().filter(|m| about(m)).collect();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0]["urgent"], true);
    // A new petition is not urgent: pushes only.
    let id = submit(&server, "res-zhang", "路灯坏了", "station-east").await?;
    clock.advance_secs(31);
    server.state.notify.tick().await?;
    assert!(
        sms.received()
            .iter()
            .all(|m| !m["key"].as_str().unwrap_or_default().contains(&id))
    );
    assert_eq!(
        push.received()
            .iter()
            .filter(|m| m["key"].as_str().unwrap_or_default().contains(&id))
            .count(),
        3
    );
    server.stop().await
}

/// The outbox rows about petition `id`.
/// A petition the tier above refused whole (the station took it out of
/// every list) is in no inbox any more, and nothing about it goes out.
async fn nothing_goes_out_about_a_document_taken_back_whole(db: &mut TestDb) -> anyhow::Result<()> {
    let push = WebhookRecorder::start().await?;
    let settings = NotifySettings {
        push_url: Some(push.url.clone()),
        push_delay: Duration::from_secs(30),
        ..test_notify_settings()
    };
    let clock = ManualClock::new(monday_at(10, 0));
    let server = server_with(db, settings, clock.clone()).await?;
    let id = submit(&server, "res-zhang", "夜里有人偷电缆", "station-east").await?;
    let queued = jobs_about(&server, &id).await?;
    ensure!(!queued.is_empty(), "nothing was queued about the petition");
    ensure!(queued.iter().all(|j| j.status == "pending"), "{queued:?}");
    let mut tx = server.state.storage.begin().await?;
    tx.take_out_of_lists(&id, &[], clock.now()).await?;
    tx.commit().await?;

    clock.advance_secs(31);
    server.state.notify.tick().await?;
    let jobs = jobs_about(&server, &id).await?;
    ensure!(jobs.len() == queued.len(), "{jobs:?}");
    ensure!(
        jobs.iter().all(|j| j.status == "skipped"
            && j.last_error
                .as_deref()
                .is_some_and(|e| e.contains("refused the document whole"))),
        "{jobs:?}"
    );
    // The other pushes that were due went out; none named the petition.
    let sent = push.received();
    ensure!(
        !sent.is_empty(),
        "no push went out at all: the gateway was never reached"
    );
    let about: Vec<&Value> = sent.iter().filter(|p| p.to_string().contains(&id)).collect();
    ensure!(about.is_empty(), "pushes went out about it: {about:?}");
    server.stop().await
}

async fn jobs_about(server: &TestServer, id: &str) -> anyhow::Result<Vec<lianxin_server::storage::OutboxRow>> {
    let prefix = format!("automerge:{id}/");
    let mut out = Vec::new();
    for status in ["pending", "sent", "skipped", "dead"] {
        out.extend(
            server
                .state
                .storage
                .outbox()
                .rows(status, 100_000)
                .await?
                .into_iter()
                .filter(|r| r.key.starts_with(&prefix) && r.key.contains("/new_petition/")),
        );
    }
    Ok(out)
}

// ---- notices ----

async fn a_notice_reports_the_households_not_reached(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let id = issue_notice(&server, &["village-shangping"], &[]).await?;
    let li = token(&server, "officer-li").await?;
    let (status, report) = server.get(&format!("/api/notices/{id}/report"), Some(&li)).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["households"], 3, "the directory's three households: {report}");
    assert_eq!(report["reached"], 0);

    // The household head reads it and forwards it to the family.
    let zhang = server.state.auth.principal(&UserId::new("res-zhang")?).await?;
    let household = HouseholdId::new("hh-shangping-001")?;
    for kind in [ReceiptKind::Read, ReceiptKind::Forwarded] {
        let (_, applied) = server
            .state
            .docs
            .act(&zhang, &id, |doc, author, now| {
                let mut n = NoticeDoc::from_doc(std::mem::take(doc))?;
                let r = n.record_receipt(author, now, &household, kind);
                *doc = n.into_doc();
                r
            })
            .await?;
        ensure!(applied.refused.is_empty(), "{:?}", applied.refused);
    }
    let (_, report) = server.get(&format!("/api/notices/{id}/report"), Some(&li)).await?;
    assert_eq!(
        (
            report["reached"].as_i64(),
            report["read"].as_i64(),
            report["forwarded"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let mut not_reached: Vec<&str> = report["not_reached"]
        .as_array()
        .context("list")?
        .iter()
        .filter_map(|h| h["household_id"].as_str())
        .collect();
    not_reached.sort();
    assert_eq!(not_reached, ["hh-shangping-002", "hh-shangping-003"]);
    assert_eq!(report["not_reached"][0]["name"], "李家");
    // Residents do not see the report.
    let (status, _) = server
        .get(
            &format!("/api/notices/{id}/report"),
            Some(&token(&server, "res-zhang").await?),
        )
        .await?;
    assert_eq!(status, 403);

    // A notice to a room reaches the households of its members.
    let room = room_id(&server, "上坪村警民议事厅").await?;
    let to_room = issue_notice(&server, &[], &[&room]).await?;
    let (_, report) = server.get(&format!("/api/notices/{to_room}/report"), Some(&li)).await?;
    assert_eq!(report["households"], 1, "{report}");
    assert_eq!(report["deliveries"][0]["household_id"], "hh-shangping-001");
    server.stop().await
}

/// A connection that does not keep up with its live channel (more items at
/// once than the channel holds) reads the rest from the store: every item
/// arrives, once, in cursor order.
async fn a_subscriber_that_falls_behind_reads_the_rest_from_the_store(db: &mut TestDb) -> anyhow::Result<()> {
    const ITEMS: usize = 200;
    let server = server_with(db, test_notify_settings(), ManualClock::new(monday_at(10, 0))).await?;
    let wang = UserId::new("officer-wang")?;
    let mut subscription = server.state.notify.subscribe_live(&wang).await?;
    let head = subscription.cursor();
    let notifications: Vec<_> = (0..ITEMS)
        .map(|i| {
            mention_for(
                &wang,
                &format!("test/burst/{i}/officer-wang"),
                &format!("第{i}条"),
                server.clock.now(),
            )
        })
        .collect();
    let written = write_committed(&server, "test-doc", &notifications).await?;
    ensure!(written.len() == ITEMS);
    // Let the dispatcher publish the whole burst before anything is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cursors = Vec::new();
    for _ in 0..ITEMS {
        let item = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .context("an item of the burst never came")??;
        cursors.push(item.cursor);
    }
    let expected: Vec<i64> = written.iter().map(|i| i.cursor).collect();
    assert_eq!(cursors, expected, "each item once, in cursor order");
    assert!(cursors[0] > head);
    let more = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(more.is_err(), "nothing after the burst: {more:?}");
    server.stop().await
}

backend_tests!(
    a_subscriber_that_falls_behind_reads_the_rest_from_the_store,
    every_source_reaches_the_people_it_concerns,
    the_inbox_is_ordered_resumable_and_done_once_acknowledged,
    sse_delivers_live_and_resumes_from_the_last_event_id,
    live_delivery_skips_nothing_committed_between_handed_over_items,
    the_sync_websocket_pushes_notifications_to_connected_clients,
    the_roster_decides_who_is_told_and_the_next_shift_inherits_open_items,
    clocks_notify_and_escalate_once_across_a_restart,
    the_outbox_survives_a_failing_gateway_and_a_restart,
    nothing_goes_out_about_a_document_taken_back_whole,
    urgent_items_also_go_out_as_text_messages,
    a_notice_reports_the_households_not_reached,
);
