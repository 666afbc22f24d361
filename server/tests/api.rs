//! The API added for the five practices, over a real socket and a real
//! database seeded with the demo county: rooms (list, create, members,
//! pins, tags, redaction, raising a message as a petition, cross-room
//! appeals), notices (issue, list, receipts, the report counting what the
//! server delivered), the village directory and coverage, petitions
//! (reclassify, assists, 409 for what the workflow would set aside, list
//! filters, the public board), KPI reports, the unit tree, organisation
//! administration applied to a running server, and clock rules.

use anyhow::{Context, ensure};
use lianxin_server::auth::SmsSender;
use lianxin_server::backend_tests;
use lianxin_server::testing::{TestDb, TestServer};
use serde_json::{Value, json};
use sync_core::repo_protocol::DocumentId;

async fn demo_server(db: &TestDb) -> anyhow::Result<TestServer> {
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    DocumentId::from_bytes(b).to_string()
}

/// `method` `path` as `user`; fails unless the status is `expect`.
async fn call(
    server: &TestServer,
    user: &str,
    method: &str,
    path: &str,
    body: Value,
    expect: u16,
) -> anyhow::Result<Value> {
    let token = server.token(user).await?;
    let (status, answer) = match method {
        "GET" => server.get(path, Some(&token)).await?,
        "POST" => server.post(path, Some(&token), &body).await?,
        "PUT" => server.put(path, Some(&token), &body).await?,
        "DELETE" => server.delete(path, Some(&token)).await?,
        other => anyhow::bail!("no method {other}"),
    };
    ensure!(
        status == expect,
        "{method} {path} as {user}: {status} (expected {expect}) {answer}"
    );
    Ok(answer)
}

async fn room_named(server: &TestServer, user: &str, kind: &str) -> anyhow::Result<String> {
    let rooms = call(server, user, "GET", "/api/rooms", Value::Null, 200).await?;
    rooms["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == kind)
        .and_then(|r| r["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("{user} has no {kind} room: {rooms}"))
}

async fn rooms_are_listed_created_and_moderated(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    // Listed: the village room for its member, the household line for its household and station.
    let village = room_named(&s, "res-zhang", "village_room").await?;
    room_named(&s, "res-zhang", "household_line").await?;
    room_named(&s, "officer-wang", "household_line").await?;
    let liu = call(&s, "res-liu", "GET", "/api/rooms", Value::Null, 200).await?;
    assert!(liu["items"].as_array().unwrap().is_empty(), "{liu}");

    // An officer opens a group with a resident.
    let id = new_id();
    let body = json!({"id": id, "kind": "officer_group", "name": "上坪村一组警民群", "unit": "village-shangping",
                      "members": [{"user": "res-zhang", "role": "member"}]});
    let room = call(&s, "officer-li", "POST", "/api/rooms", body.clone(), 201).await?;
    assert_eq!(room["created_by"], "officer-li");
    call(&s, "officer-li", "POST", "/api/rooms", body, 200).await?;
    let members = |r: &Value| -> Vec<String> {
        r["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(members(&room), vec!["officer-li", "res-zhang"]);
    // Residents do not open rooms of a village; a resident cannot add members.
    let other = json!({"id": new_id(), "kind": "officer_group", "name": "x", "unit": "village-shangping"});
    let refused = call(&s, "res-zhang", "POST", "/api/rooms", other, 403).await?;
    assert_eq!(refused["error"]["refused"][0]["rule"], "not-allowed-to-create");
    call(
        &s,
        "res-zhang",
        "PUT",
        &format!("/api/rooms/{id}/members/res-liu"),
        json!({"role": "member"}),
        403,
    )
    .await?;
    let room = call(
        &s,
        "officer-li",
        "PUT",
        &format!("/api/rooms/{id}/members/res-liu"),
        json!({"role": "member"}),
        200,
    )
    .await?;
    assert_eq!(members(&room), vec!["officer-li", "res-liu", "res-zhang"]);
    let room = call(
        &s,
        "officer-li",
        "DELETE",
        &format!("/api/rooms/{id}/members/res-liu"),
        Value::Null,
        200,
    )
    .await?;
    assert_eq!(members(&room), vec!["officer-li", "res-zhang"]);

    // A message, pinned, tagged, redacted with a reason.
    let m = call(
        &s,
        "res-zhang",
        "POST",
        &format!("/api/rooms/{id}/messages"),
        json!({"text": "我家电话 13800000009"}),
        201,
    )
    .await?;
    let entry = m["id"].as_str().unwrap().to_owned();
    let room = call(
        &s,
        "officer-li",
        "PUT",
        &format!("/api/rooms/{id}/pins/{entry}"),
        Value::Null,
        200,
    )
    .await?;
    assert_eq!(room["pins"][0]["message"], entry.as_str());
    let room = call(
        &s,
        "officer-li",
        "PUT",
        &format!("/api/rooms/{id}/tags/safety"),
        Value::Null,
        200,
    )
    .await?;
    assert_eq!(room["tags"], json!(["safety"]));
    let room = call(
        &s,
        "officer-li",
        "DELETE",
        &format!("/api/rooms/{id}/pins/{entry}"),
        Value::Null,
        200,
    )
    .await?;
    assert_eq!(room["pins"], json!([]));
    let redacted = call(
        &s,
        "officer-li",
        "POST",
        &format!("/api/rooms/{id}/messages/{entry}/redact"),
        json!({"reason": "含个人电话"}),
        200,
    )
    .await?;
    assert_eq!(redacted["text"], "");
    assert_eq!(redacted["redacted"]["reason"], "含个人电话");
    assert_eq!(redacted["redacted"]["by"], "officer-li");
    let page = call(
        &s,
        "res-zhang",
        "GET",
        &format!("/api/rooms/{id}/messages"),
        Value::Null,
        200,
    )
    .await?;
    assert_eq!(page["items"][0]["text"], "", "{page}");
    // Someone else's message in the village room: a plain member may not redact it.
    let theirs = call(
        &s,
        "officer-li",
        "GET",
        &format!("/api/rooms/{village}/messages"),
        Value::Null,
        200,
    )
    .await?;
    let first = theirs["items"][0]["id"].as_str().unwrap().to_owned();
    let refused = call(
        &s,
        "res-zhang",
        "POST",
        &format!("/api/rooms/{village}/messages/{first}/redact"),
        json!({"reason": "x"}),
        403,
    )
    .await?;
    assert_eq!(refused["error"]["refused"][0]["rule"], "not-moderator");
    s.stop().await
}

async fn a_message_is_raised_as_a_petition_linked_both_ways(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let room = room_named(&s, "res-zhang", "village_room").await?;
    let m = call(
        &s,
        "res-zhang",
        "POST",
        &format!("/api/rooms/{room}/messages"),
        json!({"text": "村口垃圾堆很久没人清理"}),
        201,
    )
    .await?;
    let entry = m["id"].as_str().unwrap().to_owned();
    let petition = new_id();
    let body =
        json!({"id": petition, "category": "suggestion", "title": "村口垃圾堆", "routed_to": "village-shangping"});
    let raised = call(
        &s,
        "chief-east",
        "POST",
        &format!("/api/rooms/{room}/messages/{entry}/petition"),
        body.clone(),
        201,
    )
    .await?;
    assert_eq!(raised["petition"]["header"]["source"]["message"], entry.as_str());
    assert_eq!(
        raised["petition"]["header"]["source"]["room"],
        format!("automerge:{room}")
    );
    assert_eq!(raised["petition"]["header"]["submitter"], "res-zhang");
    assert_eq!(raised["petition"]["header"]["channel"], "village_room");
    assert_eq!(raised["message"]["petition"], format!("automerge:{petition}"));
    // A retry stores nothing twice.
    call(
        &s,
        "chief-east",
        "POST",
        &format!("/api/rooms/{room}/messages/{entry}/petition"),
        body,
        201,
    )
    .await?;
    let doc = s
        .state
        .docs
        .read(
            &s.state.auth.principal(&sync_core::UserId::new("chief-east")?).await?,
            &room,
        )
        .await?;
    assert_eq!(sync_core::room::RoomDoc::view(&doc)?.raised()?.len(), 1);
    // The resident reads their petition; the room shows the link.
    call(
        &s,
        "res-zhang",
        "GET",
        &format!("/api/petitions/{petition}"),
        Value::Null,
        200,
    )
    .await?;
    // A plain member may not raise someone else's message.
    let other = call(
        &s,
        "chief-east",
        "POST",
        &format!("/api/rooms/{room}/messages"),
        json!({"text": "请大家注意"}),
        201,
    )
    .await?;
    let other = other["id"].as_str().unwrap();
    let body = json!({"id": new_id(), "category": "help", "title": "t", "routed_to": "station-east"});
    let refused = call(
        &s,
        "res-zhang",
        "POST",
        &format!("/api/rooms/{room}/messages/{other}/petition"),
        body,
        403,
    )
    .await?;
    assert_eq!(refused["error"]["refused"][0]["rule"], "not-moderator", "{refused}");
    s.stop().await
}

async fn an_appeal_goes_to_several_rooms_and_one_update_resolves_it_everywhere(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let village = room_named(&s, "res-zhang", "village_room").await?;
    let group = new_id();
    call(
        &s,
        "officer-li",
        "POST",
        "/api/rooms",
        json!({"id": group, "kind": "officer_group", "name": "下溪村警民群",
        "unit": "village-xiaxi", "members": [{"user": "res-liu", "role": "member"}]}),
        201,
    )
    .await?;
    let appeal = call(&s, "officer-li", "POST", "/api/appeals",
        json!({"id": "schoolbag-1", "text": "不夜城到梨花广场路段，小孩书包丢失，见到请联系", "rooms": [village, group]}), 201).await?;
    assert_eq!(appeal["posts"].as_array().unwrap().len(), 2, "{appeal}");
    assert_eq!(appeal["resolved"], false);
    // Each room's member sees only their room's copy.
    let zhang = call(&s, "res-zhang", "GET", "/api/appeals/schoolbag-1", Value::Null, 200).await?;
    assert_eq!(zhang["posts"].as_array().unwrap().len(), 1);
    // Someone in the group reports it found; the officer's one update reaches every room.
    call(
        &s,
        "res-liu",
        "POST",
        &format!("/api/rooms/{group}/messages"),
        json!({"text": "书包找到了，在小卖部"}),
        201,
    )
    .await?;
    let done = call(
        &s,
        "officer-li",
        "POST",
        "/api/appeals/schoolbag-1/resolve",
        json!({"text": "书包已找到，谢谢大家"}),
        200,
    )
    .await?;
    assert_eq!(done["resolved"], true, "{done}");
    for room in [&village, &group] {
        let page = call(
            &s,
            "officer-li",
            "GET",
            &format!("/api/rooms/{room}/messages?limit=200"),
            Value::Null,
            200,
        )
        .await?;
        let items = page["items"].as_array().unwrap();
        let post = items
            .iter()
            .find(|m| m["appeal"] == "schoolbag-1" && m["reply_to"].is_null())
            .context("post")?;
        let update = items
            .iter()
            .find(|m| m["appeal"] == "schoolbag-1" && m["reply_to"] == post["id"])
            .context("update")?;
        assert_eq!(update["text"], "书包已找到，谢谢大家");
    }
    let again = call(
        &s,
        "officer-li",
        "POST",
        "/api/appeals/schoolbag-1/resolve",
        json!({"text": "again"}),
        200,
    )
    .await?;
    assert_eq!(again, done, "resolving twice posts nothing more");
    call(&s, "res-he", "GET", "/api/appeals/schoolbag-1", Value::Null, 404).await?;
    s.stop().await
}

async fn notices_are_issued_marked_and_reported_with_server_deliveries(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let id = new_id();
    let body = json!({"id": id, "kind": "anti_fraud", "title": "警惕刷单诈骗", "body": "凡是刷单的都是诈骗",
                      "unit": "station-east", "audience": {"units": ["village-shangping"]}});
    call(&s, "res-zhang", "POST", "/api/notices", body.clone(), 403).await?;
    let notice = call(&s, "officer-li", "POST", "/api/notices", body, 201).await?;
    assert_eq!(notice["kind"], "anti_fraud");
    let listed = call(&s, "res-zhang", "GET", "/api/notices", Value::Null, 200).await?;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == id.as_str()),
        "{listed}"
    );
    let other = call(&s, "res-he", "GET", "/api/notices", Value::Null, 200).await?;
    assert!(
        !other["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == id.as_str()),
        "{other}"
    );

    let report = call(
        &s,
        "officer-li",
        "GET",
        &format!("/api/notices/{id}/report"),
        Value::Null,
        200,
    )
    .await?;
    let not_reached: Vec<&str> = report["not_reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["household_id"].as_str().unwrap())
        .collect();
    assert!(not_reached.contains(&"hh-shangping-001"), "{report}");
    // Zhang's phone acknowledges its inbox: the server delivered the notice to his household.
    let inbox = call(&s, "res-zhang", "GET", "/api/inbox", Value::Null, 200).await?;
    let item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "notice" && i["doc_id"] == id.as_str())
        .context("notice item")?;
    call(
        &s,
        "res-zhang",
        "POST",
        "/api/inbox/ack",
        json!({"cursor": item["cursor"]}),
        200,
    )
    .await?;
    let report = call(
        &s,
        "officer-li",
        "GET",
        &format!("/api/notices/{id}/report"),
        Value::Null,
        200,
    )
    .await?;
    let zhang = report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["household_id"] == "hh-shangping-001")
        .context("record")?;
    assert!(zhang["delivered_at"].is_i64(), "{report}");
    assert!(zhang["read_at"].is_null());
    // Another household: the officer marks it read after a door visit.
    let marked = call(
        &s,
        "officer-li",
        "POST",
        &format!("/api/notices/{id}/receipts"),
        json!({"kind": "read", "household": "hh-shangping-002"}),
        200,
    )
    .await?;
    assert!(marked["my_receipts"].is_null());
    let mine = call(
        &s,
        "res-zhang",
        "POST",
        &format!("/api/notices/{id}/receipts"),
        json!({"kind": "forwarded"}),
        200,
    )
    .await?;
    assert!(mine["my_receipts"]["forwarded"].is_i64(), "{mine}");
    let report = call(
        &s,
        "officer-li",
        "GET",
        &format!("/api/notices/{id}/report"),
        Value::Null,
        200,
    )
    .await?;
    let not_reached: Vec<&str> = report["not_reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["household_id"].as_str().unwrap())
        .collect();
    assert_eq!(not_reached, vec!["hh-shangping-003"], "{report}");
    assert_eq!(report["forwarded"], 1);
    s.stop().await
}

async fn the_directory_is_edited_and_coverage_counted(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let dir = call(
        &s,
        "officer-li",
        "GET",
        "/api/units/village-shangping/directory",
        Value::Null,
        200,
    )
    .await?;
    assert_eq!(dir["households"].as_array().unwrap().len(), 3);
    call(
        &s,
        "res-zhang",
        "GET",
        "/api/units/village-shangping/directory",
        Value::Null,
        404,
    )
    .await?;
    call(
        &s,
        "officer-zhao",
        "GET",
        "/api/units/village-shangping/directory",
        Value::Null,
        404,
    )
    .await?;
    let edit = json!({"name": "张家", "representative": "res-zhang", "representative_name": "张大爷", "group_tag": "一组", "officer": "officer-li"});
    call(
        &s,
        "officer-li",
        "PUT",
        "/api/units/village-shangping/directory/households/hh-shangping-001",
        edit,
        200,
    )
    .await?;
    let edit = json!({"name": "王家", "phone": "13800000011", "group_tag": "二组", "officer": "officer-li"});
    let dir = call(
        &s,
        "officer-li",
        "PUT",
        "/api/units/village-shangping/directory/households/hh-shangping-004",
        edit,
        200,
    )
    .await?;
    assert_eq!(dir["households"].as_array().unwrap().len(), 4);
    call(
        &s,
        "officer-zhao",
        "PUT",
        "/api/units/village-shangping/directory/households/hh-shangping-005",
        json!({"name": "x"}),
        404,
    )
    .await?;
    let c = call(
        &s,
        "chief-east",
        "GET",
        "/api/reports/coverage?unit=station-east",
        Value::Null,
        200,
    )
    .await?;
    assert_eq!(
        (c["total"]["households"].as_u64(), c["total"]["reachable"].as_u64()),
        (Some(7), Some(2)),
        "{c}"
    );
    let village = |id: &str| {
        c["villages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(village("village-shangping")["reachable"], 2);
    assert_eq!(village("village-shangping")["rate"], 0.5);
    assert_eq!(village("village-xiaxi")["reachable"], 0);
    let officer = |id: &str| {
        c["officers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (
            officer("officer-li")["households"].as_u64(),
            officer("officer-li")["reachable"].as_u64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(officer("officer-wang")["reachable"], 0);
    s.stop().await
}

async fn petition_id(s: &TestServer, title: &str) -> anyhow::Result<String> {
    let page = call(s, "director", "GET", "/api/petitions?limit=200", Value::Null, 200).await?;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == title)
        .and_then(|i| i["doc_id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no petition {title}"))
}

async fn petitions_are_reclassified_assisted_and_refused_with_the_rule(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let id = new_id();
    let submitted = call(&s, "res-zhang", "POST", "/api/petitions", json!({"id": id, "channel": "chief_line", "category": "help",
        "title": "家里停水", "body": "泉水被引去灌溉", "location": {"unit": "village-shangping"}, "routed_to": "station-east"}), 201).await?;
    assert_eq!(submitted["summary"]["category"], "help");
    let path = format!("/api/petitions/{id}/actions");
    call(
        &s,
        "chief-east",
        "POST",
        &path,
        json!({"action": "sign", "unit": "station-east"}),
        200,
    )
    .await?;
    // Signing again would be set aside: refused with the rule, nothing stored.
    let again = call(
        &s,
        "officer-li",
        "POST",
        &path,
        json!({"action": "sign", "unit": "station-east"}),
        409,
    )
    .await?;
    assert_eq!(again["error"]["code"], "set_aside");
    assert_eq!(again["error"]["rule"], "already-signed");
    let same = call(
        &s,
        "chief-east",
        "POST",
        &path,
        json!({"action": "transfer", "unit": "station-east", "to": "station-east"}),
        409,
    )
    .await?;
    assert_eq!(same["error"]["rule"], "same-unit");
    let view = call(
        &s,
        "chief-east",
        "POST",
        &path,
        json!({"action": "reclassify", "unit": "station-east",
        "category": "non_police", "reason": "灌溉分流，非警务诉求"}),
        200,
    )
    .await?;
    assert_eq!(view["summary"]["category"], "non_police");
    let event = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reclassified")
        .context("event")?;
    assert_eq!(
        (event["by"].as_str(), event["reason"].as_str()),
        (Some("chief-east"), Some("灌溉分流，非警务诉求"))
    );
    assert_eq!(
        view["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "signed")
            .count(),
        1
    );
    let view = call(
        &s,
        "chief-east",
        "POST",
        &path,
        json!({"action": "change_assists", "unit": "station-east",
        "add": ["water", "village-shangping"]}),
        200,
    )
    .await?;
    assert_eq!(view["summary"]["lead"], "station-east");
    assert_eq!(view["summary"]["assists"], json!(["water", "village-shangping"]));
    // The water department now reads it and acts as an assisting unit.
    call(
        &s,
        "water-chen",
        "POST",
        &path,
        json!({"action": "progress", "unit": "water", "note": "已协调分时用水"}),
        200,
    )
    .await?;
    let noop = call(
        &s,
        "chief-east",
        "POST",
        &path,
        json!({"action": "change_assists", "unit": "station-east", "add": ["water"]}),
        409,
    )
    .await?;
    assert_eq!(noop["error"]["rule"], "no-change");
    let view = call(
        &s,
        "chief-east",
        "POST",
        &path,
        json!({"action": "change_assists", "unit": "station-east",
        "remove": ["village-shangping"]}),
        200,
    )
    .await?;
    assert_eq!(view["summary"]["assists"], json!(["water"]));
    // The water department was told.
    let inbox = call(&s, "water-chen", "GET", "/api/inbox", Value::Null, 200).await?;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "assist_requested" && i["doc_id"] == id.as_str()),
        "{inbox}"
    );
    s.stop().await
}

async fn lists_filter_and_the_board_shows_published_results_without_names(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let noise = petition_id(&s, "夜间施工噪音扰民").await?;
    let by = |q: &str| {
        let s = &s;
        let q = q.to_owned();
        async move {
            let page = call(
                s,
                "director",
                "GET",
                &format!("/api/petitions?limit=200{q}"),
                Value::Null,
                200,
            )
            .await?;
            Ok::<Vec<String>, anyhow::Error>(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["title"].as_str().unwrap().to_owned())
                    .collect(),
            )
        }
    };
    assert_eq!(by("&published=true").await?, vec!["夜间施工噪音扰民"]);
    assert_eq!(
        by("&channel=director_mailbox").await?,
        vec!["深夜有人撬车门", "疑似电信诈骗窝点线索"]
    );
    assert_eq!(by("&submitter=res-he").await?, vec!["夜间施工噪音扰民"]);
    let now = s.state.clock.now().millis();
    let recent = by(&format!("&from={}", now - 3 * 3600 * 1000)).await?;
    assert_eq!(recent.len(), 4, "{recent:?}");
    assert_eq!(by(&format!("&to={}", now - 3 * 3600 * 1000)).await?.len(), 2);
    call(&s, "director", "GET", "/api/petitions?channel=fax", Value::Null, 400).await?;
    // The board: residents of 白石村 see the published result; not who asked.
    let board = call(&s, "res-he", "GET", "/api/board", Value::Null, 200).await?;
    let item = &board["items"][0];
    assert_eq!(item["doc_id"], noise.as_str());
    assert_eq!(item["publication"], "夜间施工噪音问题已解决");
    assert!(item.get("submitter").is_none() && item.get("body").is_none(), "{item}");
    let elsewhere = call(&s, "res-zhang", "GET", "/api/board", Value::Null, 200).await?;
    assert!(elsewhere["items"].as_array().unwrap().is_empty(), "{elsewhere}");
    s.stop().await
}

async fn publishing_a_raised_petition_tells_the_submitter_and_the_room(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let room = room_named(&s, "res-zhang", "village_room").await?;
    let m = call(
        &s,
        "res-zhang",
        "POST",
        &format!("/api/rooms/{room}/messages"),
        json!({"text": "路灯坏了"}),
        201,
    )
    .await?;
    let entry = m["id"].as_str().unwrap();
    let id = new_id();
    call(
        &s,
        "officer-li",
        "POST",
        &format!("/api/rooms/{room}/messages/{entry}/petition"),
        json!({"id": id, "category": "suggestion", "title": "路灯坏了", "routed_to": "station-east"}),
        201,
    )
    .await?;
    let path = format!("/api/petitions/{id}/actions");
    call(
        &s,
        "officer-li",
        "POST",
        &path,
        json!({"action": "reply", "unit": "station-east", "text": "已修好"}),
        200,
    )
    .await?;
    call(
        &s,
        "officer-li",
        "POST",
        &path,
        json!({"action": "publish", "unit": "station-east", "summary": "路灯已修复"}),
        200,
    )
    .await?;
    for user in ["res-zhang", "chief-east"] {
        let inbox = call(&s, user, "GET", "/api/inbox", Value::Null, 200).await?;
        assert!(
            inbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["kind"] == "result_published" && i["doc_id"] == id.as_str()),
            "{user}: {inbox}"
        );
    }
    s.stop().await
}

async fn kpi_reports_group_and_export(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let from = s.state.clock.now().millis() - 30 * 24 * 3600 * 1000;
    let r = call(
        &s,
        "director",
        "GET",
        &format!("/api/reports/kpi?unit=county&from={from}&group=unit"),
        Value::Null,
        200,
    )
    .await?;
    // Six demo petitions, all held within the county (one mailbox letter went to the west
    // station, the other waits in the task force).
    assert_eq!(r["total"]["received"], 6, "{r}");
    // Every demo petition came through the write path, which records receipts.
    assert_eq!(r["total"]["response_rate"]["clock"], "server_receipt");
    let rows: Vec<(&str, u64)> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"]["unit"].as_str().unwrap(),
                g["kpis"]["received"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("mailbox-taskforce", 1),
            ("station-east", 2),
            ("station-west", 2),
            ("water", 1)
        ],
        "{r}"
    );
    assert_eq!(r["total"]["satisfaction"]["rated"], 1);
    assert_eq!(r["total"]["supervised"], 1);
    let token = s.token("director").await?;
    let csv = reqwest::Client::new()
        .get(s.url(&format!(
            "/api/reports/kpi?unit=county&from={from}&group=unit&format=csv"
        )))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await?;
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("total,,,,,6,"), "{csv}");
    call(
        &s,
        "res-zhang",
        "GET",
        &format!("/api/reports/kpi?from={from}"),
        Value::Null,
        403,
    )
    .await?;
    call(
        &s,
        "officer-zhao",
        "GET",
        &format!("/api/reports/kpi?unit=station-east&from={from}"),
        Value::Null,
        404,
    )
    .await?;
    call(
        &s,
        "director",
        "GET",
        &format!("/api/reports/kpi?unit=county&from={from}&group=planet"),
        Value::Null,
        400,
    )
    .await?;
    s.stop().await
}

async fn the_organisation_is_administered_on_running_servers(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    // A second server on the same database, started before the change.
    let other = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    let units = call(&s, "res-zhang", "GET", "/api/units", Value::Null, 200).await?;
    let ids: Vec<&str> = units["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "city",
            "county",
            "station-east",
            "village-shangping",
            "shangping-g1",
            "shangping-party"
        ]
    );
    call(
        &s,
        "director",
        "PUT",
        "/api/admin/units/town-qingshan",
        json!({"name": "青山镇人民政府", "kind": "town", "parent": "county"}),
        403,
    )
    .await?;
    let town = call(
        &s,
        "admin",
        "PUT",
        "/api/admin/units/town-qingshan",
        json!({"name": "青山镇人民政府", "kind": "town", "parent": "county"}),
        200,
    )
    .await?;
    assert_eq!(town["parent"], "county");
    call(
        &s,
        "admin",
        "PUT",
        "/api/admin/users/town-clerk",
        json!({"display_name": "镇政府王干事", "login": "town",
        "password": "clerk-password", "memberships": [{"unit": "town-qingshan", "role": "department_staff"}]}),
        200,
    )
    .await?;
    // This server routes to the new unit at once; the other within its poll.
    let id = new_id();
    call(
        &s,
        "res-zhang",
        "POST",
        "/api/petitions",
        json!({"id": id, "channel": "chief_line", "category": "help",
        "title": "路面塌陷", "body": "x", "location": {"unit": "village-shangping"}, "routed_to": "station-east"}),
        201,
    )
    .await?;
    call(
        &s,
        "chief-east",
        "POST",
        &format!("/api/petitions/{id}/actions"),
        json!({"action": "transfer", "unit": "station-east", "to": "town-qingshan"}),
        200,
    )
    .await?;
    let seen = async {
        loop {
            let units = call(&other, "admin", "GET", "/api/units", Value::Null, 200).await?;
            if units["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == "town-qingshan")
            {
                return Ok::<(), anyhow::Error>(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), seen)
        .await
        .context("the other server never saw the unit")??;
    call(
        &other,
        "town-clerk",
        "POST",
        &format!("/api/petitions/{id}/actions"),
        json!({"action": "accept", "unit": "town-qingshan"}),
        200,
    )
    .await?;
    // The command-line import reaches running servers the same way.
    lianxin_server::admin::import_str(
        &db.storage,
        r#"{"units": [{"id": "town-b", "name": "乙镇", "kind": "town", "parent": "county"}]}"#,
        false,
        s.state.clock.now(),
    )
    .await?;
    let seen = async {
        loop {
            let units = call(&other, "admin", "GET", "/api/units", Value::Null, 200).await?;
            if units["items"].as_array().unwrap().iter().any(|u| u["id"] == "town-b") {
                return Ok::<(), anyhow::Error>(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), seen)
        .await
        .context("the import never reached the server")??;
    other.stop().await?;
    s.stop().await
}

async fn clock_rules_are_configured_and_served(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let served = call(&s, "res-zhang", "GET", "/api/clock-rules", Value::Null, 200).await?;
    assert_eq!(served["rules"]["default"]["sign"]["wall_minutes"], 10);
    let mut new = served.clone();
    new["rules"]["overrides"] =
        json!([{"channel": "director_mailbox", "sign": {"wall_minutes": 5, "due_soon_before": 2}}]);
    call(&s, "director", "PUT", "/api/admin/clock-rules", new.clone(), 403).await?;
    let put = call(&s, "admin", "PUT", "/api/admin/clock-rules", new.clone(), 200).await?;
    assert_eq!(put["rules"]["overrides"][0]["sign"]["wall_minutes"], 5);
    let id = new_id();
    let p = call(
        &s,
        "res-zhou",
        "POST",
        "/api/petitions",
        json!({"id": id, "channel": "director_mailbox", "category": "help",
        "title": "t", "body": "b", "location": {"unit": "village-longtan"}, "routed_to": "mailbox-taskforce"}),
        201,
    )
    .await?;
    let submitted = p["summary"]["submitted_at"].as_i64().unwrap();
    assert_eq!(p["summary"]["sign_due"].as_i64().unwrap(), submitted + 5 * 60_000);
    let bad = json!({"rules": {"default": {"sign": {"wall_minutes": 0, "due_soon_before": 0}}}, "calendar": served["calendar"]});
    call(&s, "admin", "PUT", "/api/admin/clock-rules", bad, 400).await?;
    s.stop().await
}

/// The OpenAPI document is served without a token and describes the routes
/// with their bodies and errors (the unit test in `http::openapi` checks that
/// every route is in it).
async fn the_openapi_document_is_served(db: &mut TestDb) -> anyhow::Result<()> {
    let s = demo_server(db).await?;
    let (status, doc) = s.get("/api/openapi.json", None).await?;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let submit = &doc["paths"]["/api/petitions"]["post"];
    assert_eq!(
        submit["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/NewPetition",
        "{submit}"
    );
    for code in ["400", "401", "403", "409"] {
        assert!(submit["responses"][code].is_object(), "{code} missing: {submit}");
    }
    let act = &doc["paths"]["/api/petitions/{id}/actions"]["post"];
    assert!(act["responses"]["409"].is_object(), "{act}");
    assert!(doc["components"]["schemas"]["PetitionAction"].is_object());
    assert!(doc["components"]["schemas"]["KpiReport"].is_object());
    s.stop().await
}

backend_tests!(
    the_openapi_document_is_served,
    rooms_are_listed_created_and_moderated,
    a_message_is_raised_as_a_petition_linked_both_ways,
    an_appeal_goes_to_several_rooms_and_one_update_resolves_it_everywhere,
    notices_are_issued_marked_and_reported_with_server_deliveries,
    the_directory_is_edited_and_coverage_counted,
    petitions_are_reclassified_assisted_and_refused_with_the_rule,
    lists_filter_and_the_board_shows_published_results_without_names,
    publishing_a_raised_petition_tells_the_submitter_and_the_room,
    kpi_reports_group_and_export,
    the_organisation_is_administered_on_running_servers,
    clock_rules_are_configured_and_served,
);
