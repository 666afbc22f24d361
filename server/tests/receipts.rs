//! Receipt times: the server records when it received every petition entry,
//! and a petition's clocks run on them. A stamp running ahead (or dragged
//! ahead by another writer's) cannot make an officer's step late, a phone
//! offline for hours keeps the times it stamped, a late sync is not blamed on
//! an officer, and a back-dated step is flagged.

use anyhow::{Context, ensure};
use automerge::{ActorId, Change};
use lianxin_server::auth::SmsSender;
use lianxin_server::backend_tests;
use lianxin_server::clock::Clock;
use lianxin_server::testing::{TestDb, TestServer};
use serde_json::{Value, json};
use sync_core::petition::{EventBody, Location, PetitionDoc, PetitionHeader};
use sync_core::repo_protocol::DocumentId;
use sync_core::{Author, Category, Channel, HlcClock, Timestamp, UnitId, UserId};

const MIN: i64 = 60_000;

async fn demo_server(db: &TestDb) -> anyhow::Result<TestServer> {
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

async fn token(server: &TestServer, user: &str) -> anyhow::Result<String> {
    Ok(server
        .state
        .auth
        .mint_access_token(&UserId::new(user)?, 60 * 60 * 1000)
        .await?)
}

fn new_id() -> DocumentId {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    DocumentId::from_bytes(b)
}

fn now(server: &TestServer) -> Timestamp {
    server.clock.now()
}

/// A petition res-zhang files over REST, received now.
async fn submit(server: &TestServer) -> anyhow::Result<String> {
    let id = new_id();
    let body = json!({
        "id": id.to_string(),
        "channel": "chief_line",
        "category": "help",
        "title": "路灯坏了",
        "body": "村口的路灯坏了一个月。",
        "location": {"unit": "village-shangping"},
        "routed_to": "station-east",
    });
    let (status, view) = server
        .post("/api/petitions", Some(&token(server, "res-zhang").await?), &body)
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

async fn view(server: &TestServer, id: &str) -> anyhow::Result<Value> {
    let (status, view) = server
        .get(
            &format!("/api/petitions/{id}"),
            Some(&token(server, "officer-li").await?),
        )
        .await?;
    ensure!(status == 200, "get: {status} {view}");
    Ok(view)
}

/// The summary as the petitions list (the stored projection) has it.
async fn listed(server: &TestServer, id: &str) -> anyhow::Result<Value> {
    let (status, page) = server
        .get("/api/petitions?limit=200", Some(&token(server, "officer-li").await?))
        .await?;
    ensure!(status == 200, "list: {status} {page}");
    page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["doc_id"] == id))
        .cloned()
        .context("the petition is not listed")
}

fn clock<'a>(summary: &'a Value, kind: &str) -> &'a Value {
    summary["clocks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == kind))
        .unwrap_or(&Value::Null)
}

/// Changes `user`'s phone makes to petition `id` (as the server holds it
/// now) while its clock reads `device_now`; delivered later with `deliver`.
async fn on_phone(
    server: &TestServer,
    user: &str,
    id: &str,
    device_now: Timestamp,
    write: impl FnOnce(&mut PetitionDoc, &mut Author, Timestamp) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Change>> {
    let who = server.state.auth.principal(&UserId::new(user)?).await?;
    let mut doc = server.state.docs.read(&who, id).await?;
    let before = doc.get_heads();
    let mut p = PetitionDoc::from_doc(doc.fork().with_actor(ActorId::random()))?;
    let mut author = Author::new(
        UserId::new(user)?,
        HlcClock::new(format!("{}phone", user.replace('-', "")))?,
    );
    write(&mut p, &mut author, device_now)?;
    Ok(p.into_doc().get_changes(&before))
}

async fn deliver(server: &TestServer, user: &str, id: &str, changes: Vec<Change>) -> anyhow::Result<()> {
    let who = server.state.auth.principal(&UserId::new(user)?).await?;
    let applied = server.state.docs.apply(&who, id, changes).await?;
    ensure!(applied.refused.is_empty(), "refused: {:?}", applied.refused);
    ensure!(!applied.accepted.is_empty(), "nothing accepted");
    Ok(())
}

/// A resident's comment stamped 4 min 50 s ahead (inside the allowance)
/// drags the officer's REST stamp past the 10-minute sign limit; the sign
/// reached the server 9 minutes in, so it is on time.
async fn a_comment_stamped_ahead_cannot_make_a_sign_late(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let id = submit(&server).await?;
    server.clock.advance_millis(8 * MIN);
    let ahead = now(&server).plus_millis(4 * MIN + 50_000);
    let comment = on_phone(&server, "res-zhang", &id, ahead, |p, author, at| {
        p.post(author, at, sync_core::doc::Message::draft("怎么还没人管"))?;
        Ok(())
    })
    .await?;
    deliver(&server, "res-zhang", &id, comment).await?;
    server.clock.advance_millis(MIN);
    act(
        &server,
        "officer-li",
        &id,
        json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;

    let v = view(&server, &id).await?;
    let signed = v["timeline"]
        .as_array()
        .and_then(|t| t.iter().find(|e| e["kind"] == "signed"))
        .context("no signed event")?;
    let stamp = signed["at"].as_str().context("stamp")?;
    let stamp_ms: i64 = stamp[..13].parse()?;
    let submitted_ms = v["summary"]["submitted_at"].as_i64().context("submitted_at")?;
    assert!(
        stamp_ms > submitted_ms + 10 * MIN,
        "the sign's own stamp was dragged past the limit: {stamp}"
    );
    for (what, summary) in [("get", &v["summary"]), ("list", &listed(&server, &id).await?)] {
        let sign = clock(summary, "sign");
        assert_eq!(sign["state"]["state"], "met_on_time", "{what}: {sign}");
        assert_eq!(sign["state"]["done_at"], submitted_ms + 9 * MIN, "{what}: {sign}");
        assert_eq!(sign["basis"], "server_receipt", "{what}: {sign}");
    }
    server.stop().await
}

/// An officer 20 minutes late signs on a phone whose clock was set back
/// 15 minutes: the device's time stands, but the gap is flagged on the clock,
/// on the event, and in the KPI report.
async fn a_back_dated_sign_is_flagged(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let from = now(&server);
    let id = submit(&server).await?;
    server.clock.advance_millis(20 * MIN);
    let set_back = now(&server).plus_millis(-15 * MIN);
    let sign = on_phone(&server, "officer-li", &id, set_back, |p, author, at| {
        p.record(author, at, Some(UnitId::new("station-east")?), EventBody::Signed)?;
        Ok(())
    })
    .await?;
    deliver(&server, "officer-li", &id, sign).await?;

    let v = view(&server, &id).await?;
    let c = clock(&v["summary"], "sign");
    assert_eq!(c["skew"]["step"], "done", "{c}");
    assert_eq!(c["skew"]["device_at"], set_back.millis(), "{c}");
    assert_eq!(c["skew"]["received_at"], now(&server).millis(), "{c}");
    let signed = v["timeline"]
        .as_array()
        .and_then(|t| t.iter().find(|e| e["kind"] == "signed"))
        .context("no signed event")?;
    assert_eq!(signed["received_at"], now(&server).millis(), "{signed}");
    let listed = listed(&server, &id).await?;
    assert_eq!(clock(&listed, "sign")["skew"], c["skew"]);

    let (status, report) = server
        .get(
            &format!(
                "/api/reports/kpi?from={}&to={}&unit=station-east",
                from.millis(),
                now(&server).millis() + 1
            ),
            Some(&token(&server, "director").await?),
        )
        .await?;
    ensure!(status == 200, "report: {status} {report}");
    assert_eq!(report["total"]["received"], 1, "{report}");
    assert_eq!(report["total"]["clock_skew_flagged"], 1, "{report}");
    assert_eq!(report["total"]["response_rate"]["clock"], "server_receipt", "{report}");
    server.stop().await
}

/// A resident's phone files a petition offline and syncs three hours later:
/// the clocks start when it arrived, so the officer who signs two minutes
/// after that is on time. An officer's phone that signs and contacts in time
/// while offline and syncs four hours later is on time too.
async fn phones_offline_for_hours_are_not_counted_late(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let written = now(&server);
    let id = new_id();
    let key = id.to_string();
    let zhang = UserId::new("res-zhang")?;
    let header = PetitionHeader {
        id: format!("automerge:{key}"),
        channel: Channel::ChiefLine,
        category: Category::Help,
        title: "桥上的护栏断了".into(),
        body: "村东小桥护栏断了，孩子上学危险。".into(),
        submitter: zhang.clone(),
        recorded_by: zhang.clone(),
        anonymous: false,
        contact: None,
        location: Location {
            unit: UnitId::new("village-shangping")?,
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    };
    let mut author = Author::new(zhang.clone(), HlcClock::new("reszhangphone")?);
    let mut doc = PetitionDoc::create(
        ActorId::random(),
        header,
        UnitId::new("station-east")?,
        &mut author,
        written,
    )?
    .into_doc();
    let changes: Vec<Change> = doc.get_changes(&[]);
    server.clock.advance_millis(3 * 60 * MIN);
    deliver(&server, "res-zhang", &key, changes).await?;
    let arrived = now(&server);
    server.clock.advance_millis(2 * MIN);
    act(
        &server,
        "officer-li",
        &key,
        json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;
    let v = view(&server, &key).await?;
    let sign = clock(&v["summary"], "sign");
    assert_eq!(sign["state"]["state"], "met_on_time", "{sign}");
    assert_eq!(sign["started_at"], arrived.millis(), "{sign}");
    assert_eq!(sign["skew"]["step"], "start", "the late sync is visible: {sign}");

    // Filed online; the officer's phone is offline from the start.
    let id = submit(&server).await?;
    let filed = now(&server);
    server.clock.advance_millis(5 * MIN);
    let on_duty = on_phone(&server, "officer-li", &id, now(&server), |p, author, at| {
        let east = Some(UnitId::new("station-east")?);
        p.record(author, at, east.clone(), EventBody::Signed)?;
        p.record(
            author,
            at.plus_millis(15 * MIN),
            east,
            EventBody::Contacted {
                method: sync_core::petition::ContactMethod::Phone,
                note: None,
            },
        )?;
        Ok(())
    })
    .await?;
    server.clock.advance_millis(4 * 60 * MIN);
    deliver(&server, "officer-li", &id, on_duty).await?;
    for (what, summary) in [
        ("get", view(&server, &id).await?["summary"].clone()),
        ("list", listed(&server, &id).await?),
    ] {
        for (kind, minutes) in [("sign", 5), ("contact", 20)] {
            let c = clock(&summary, kind);
            assert_eq!(c["state"]["state"], "met_on_time", "{what} {kind}: {c}");
            assert_eq!(
                c["state"]["done_at"],
                filed.millis() + minutes * MIN,
                "{what} {kind}: {c}"
            );
            assert_eq!(c["skew"]["step"], "done", "{what} {kind}: {c}");
        }
    }
    server.stop().await
}

backend_tests!(
    a_comment_stamped_ahead_cannot_make_a_sign_late,
    a_back_dated_sign_is_flagged,
    phones_offline_for_hours_are_not_counted_late,
);
