//! The JSON REST API over a real socket and a real database seeded with the
//! demo county: petitions (submit, list, read, every action) and rooms.

use anyhow::{Context, ensure};
use lianxin_server::auth::SmsSender;
use lianxin_server::backend_tests;
use lianxin_server::testing::{TestDb, TestServer};
use serde_json::{Value, json};
use sync_core::UserId;
use sync_core::repo_protocol::DocumentId;

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

const SPRING: &str = "泉水被截流，家里断水";
const HUKOU: &str = "户口本丢了怎么补办";
const NOISE: &str = "夜间施工噪音扰民";
const LEAD: &str = "疑似电信诈骗窝点线索";

/// The listed items, as `(title, item)`.
async fn list(server: &TestServer, user: &str, query: &str) -> anyhow::Result<Vec<Value>> {
    let (status, page) = server
        .get(
            &format!("/api/petitions?limit=200{query}"),
            Some(&token(server, user).await?),
        )
        .await?;
    ensure!(status == 200, "list {query}: {status} {page}");
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

fn titles(items: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = items
        .iter()
        .filter_map(|i| i["title"].as_str().map(str::to_owned))
        .collect();
    t.sort();
    t
}

async fn id_of(server: &TestServer, title: &str) -> anyhow::Result<String> {
    let items = list(server, "director", "").await?;
    Ok(items
        .iter()
        .find(|i| i["title"] == title)
        .and_then(|i| i["doc_id"].as_str())
        .with_context(|| format!("no petition {title}"))?
        .to_owned())
}

async fn act(server: &TestServer, user: &str, id: &str, action: Value) -> anyhow::Result<(u16, Value)> {
    server
        .post(
            &format!("/api/petitions/{id}/actions"),
            Some(&token(server, user).await?),
            &action,
        )
        .await
}

fn submission(id: &DocumentId) -> Value {
    json!({
        "id": id.to_string(),
        "channel": "chief_line",
        "category": "help",
        "title": "路灯坏了",
        "body": "村口的路灯坏了一个月，晚上看不见路。",
        "location": {"unit": "village-shangping"},
        "routed_to": "station-east",
    })
}

async fn a_retried_submit_files_one_petition(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let zhang = token(&server, "res-zhang").await?;
    let id = new_id();
    let (s1, first) = server.post("/api/petitions", Some(&zhang), &submission(&id)).await?;
    assert_eq!(s1, 201, "{first}");
    assert_eq!(first["summary"]["status"], "submitted");
    assert_eq!(first["header"]["submitter"], "res-zhang");
    let (s2, second) = server.post("/api/petitions", Some(&zhang), &submission(&id)).await?;
    assert_eq!(s2, 200, "{second}");
    assert_eq!(first["timeline"], second["timeline"]);
    // Someone else reusing the id does not take the petition over.
    let li = token(&server, "officer-li").await?;
    let (s3, other) = server.post("/api/petitions", Some(&li), &submission(&id)).await?;
    assert_eq!(s3, 409, "{other}");

    let mine = list(&server, "res-zhang", "").await?;
    assert_eq!(mine.iter().filter(|i| i["doc_id"] == id.to_string()).count(), 1);
    assert!(mine.iter().all(|i| i["submitter"] == "res-zhang"), "{mine:?}");
    let station = list(&server, "officer-li", "").await?;
    assert_eq!(station.iter().filter(|i| i["doc_id"] == id.to_string()).count(), 1);
    server.stop().await
}

async fn lists_filter_by_status_unit_category_and_overdue(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let all = titles(&list(&server, "director", "").await?);
    for t in [SPRING, HUKOU, NOISE, LEAD] {
        assert!(all.contains(&t.to_owned()), "{all:?}");
    }
    assert_eq!(titles(&list(&server, "director", "&status=closed").await?), [NOISE]);
    let west = list(&server, "director", "&unit=station-west").await?;
    assert_eq!(titles(&west), {
        let mut v = vec![LEAD.to_owned(), NOISE.to_owned()];
        v.sort();
        v
    });
    assert_eq!(
        titles(&list(&server, "director", "&category=complaint").await?),
        [NOISE]
    );
    let overdue = list(&server, "director", "&overdue=true").await?;
    assert!(titles(&overdue).contains(&HUKOU.to_owned()), "{overdue:?}");
    assert!(!titles(&overdue).contains(&NOISE.to_owned()));
    assert!(overdue.iter().all(|i| i["overdue"] == true));

    // Jurisdiction: the west station does not list the east station's petitions.
    let zhao = titles(&list(&server, "officer-zhao", "").await?);
    assert!(
        zhao.contains(&NOISE.to_owned()) && !zhao.contains(&HUKOU.to_owned()),
        "{zhao:?}"
    );
    // Paging.
    let director = token(&server, "director").await?;
    let (_, page) = server.get("/api/petitions?limit=2", Some(&director)).await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let next = page["next"].as_str().context("a next cursor")?;
    let (status, page2) = server
        .get(&format!("/api/petitions?limit=2&before={next}"), Some(&director))
        .await?;
    assert_eq!(status, 200, "{page2}");
    assert_ne!(page["items"][0]["doc_id"], page2["items"][0]["doc_id"]);
    server.stop().await
}

async fn one_petition_with_timeline_and_derived_status(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let li = token(&server, "officer-li").await?;
    let spring = id_of(&server, SPRING).await?;
    let (status, view) = server.get(&format!("/api/petitions/{spring}"), Some(&li)).await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["url"], format!("automerge:{spring}"));
    let kinds: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "signed",
            "contacted",
            "transferred",
            "accepted",
            "progress"
        ]
    );
    assert_eq!(view["summary"]["status"], "handling");
    assert_eq!(view["summary"]["lead"], "water");
    assert_eq!(view["conversation"][0]["by"], "res-zhang");
    // The automerge URL works as an id too.
    let (status, _) = server
        .get(&format!("/api/petitions/automerge:{spring}"), Some(&li))
        .await?;
    assert_eq!(status, 200);
    server.stop().await
}

async fn every_action_by_the_right_user(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let zhang = token(&server, "res-zhang").await?;
    let id = new_id();
    let (status, body) = server.post("/api/petitions", Some(&zhang), &submission(&id)).await?;
    assert_eq!(status, 201, "{body}");
    let id = id.to_string();
    let steps = [
        (
            "officer-li",
            json!({"action": "sign", "unit": "station-east"}),
            "signed",
        ),
        (
            "officer-li",
            json!({"action": "contact", "unit": "station-east", "method": "phone", "note": "已电话联系"}),
            "signed",
        ),
        (
            "officer-li",
            json!({"action": "transfer", "unit": "station-east", "to": "water", "note": "请水利局处理"}),
            "dispatched",
        ),
        ("water-chen", json!({"action": "accept", "unit": "water"}), "handling"),
        (
            "water-chen",
            json!({"action": "reply", "unit": "water", "text": "路灯已修好"}),
            "replied",
        ),
        (
            "res-zhang",
            json!({"action": "follow_up", "rating": 5, "comment": "谢谢"}),
            "replied",
        ),
        ("water-chen", json!({"action": "close", "unit": "water"}), "closed"),
    ];
    for (user, action, expected) in steps {
        let (status, view) = act(&server, user, &id, action.clone()).await?;
        assert_eq!(status, 200, "{user} {action}: {view}");
        assert_eq!(view["summary"]["status"], expected, "{user} {action}");
    }
    let (_, view) = server.get(&format!("/api/petitions/{id}"), Some(&zhang)).await?;
    let kinds: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "signed",
            "contacted",
            "transferred",
            "accepted",
            "replied",
            "follow_up",
            "closed"
        ]
    );
    assert_eq!(view["summary"]["rating"], 5);
    assert_eq!(
        titles(&list(&server, "water-chen", "&status=closed").await?),
        ["路灯坏了"]
    );
    server.stop().await
}

async fn refusals_are_403_and_unreadable_is_404(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let hukou = id_of(&server, HUKOU).await?;
    let spring = id_of(&server, SPRING).await?;

    // A resident cannot close his own petition.
    let (status, body) = act(
        &server,
        "res-zhang",
        &spring,
        json!({"action": "close", "unit": "water"}),
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "refused");
    let rule = body["error"]["refused"][0]["rule"].as_str().unwrap_or_default();
    assert!(!rule.is_empty(), "{body}");
    assert!(body["error"]["refused"][0]["change"].is_string());

    // An officer of the west station cannot see the east station's petition.
    let (status, body) = act(
        &server,
        "officer-zhao",
        &hukou,
        json!({"action": "sign", "unit": "station-west"}),
    )
    .await?;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let zhao = token(&server, "officer-zhao").await?;
    let (status, _) = server.get(&format!("/api/petitions/{hukou}"), Some(&zhao)).await?;
    assert_eq!(status, 404);
    // Nor can another resident.
    let liu = token(&server, "res-liu").await?;
    let (status, _) = server.get(&format!("/api/petitions/{spring}"), Some(&liu)).await?;
    assert_eq!(status, 404);
    // An east officer signing for a unit he does not belong to is refused.
    let (status, body) = act(
        &server,
        "officer-li",
        &hukou,
        json!({"action": "sign", "unit": "water"}),
    )
    .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("refused")),
        "{body}"
    );
    // Nothing refused was stored.
    let (_, view) = server
        .get(
            &format!("/api/petitions/{hukou}"),
            Some(&token(&server, "officer-li").await?),
        )
        .await?;
    assert_eq!(view["timeline"].as_array().map(Vec::len), Some(1));
    assert_eq!(view["summary"]["status"], "submitted");
    server.stop().await
}

async fn bad_input_is_400_with_a_json_error(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let li = token(&server, "officer-li").await?;
    let hukou = id_of(&server, HUKOU).await?;
    let bad = [
        ("/api/petitions", json!({"title": "缺字段"})),
        ("/api/petitions", {
            let mut s = submission(&new_id());
            s["id"] = json!("not-a-document-id");
            s
        }),
        ("/api/petitions", {
            let mut s = submission(&new_id());
            s["category"] = json!("gossip");
            s
        }),
        (
            &format!("/api/petitions/{hukou}/actions") as &str,
            json!({"action": "dance", "unit": "station-east"}),
        ),
        (&format!("/api/petitions/{hukou}/actions"), json!({"action": "sign"})),
        (
            "/api/petitions/xyz/actions",
            json!({"action": "sign", "unit": "station-east"}),
        ),
    ];
    for (path, body) in bad {
        let (status, answer) = server.post(path, Some(&li), &body).await?;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{answer}"
        );
    }
    for query in ["status=lost", "category=gossip", "before=nonsense", "colour=red"] {
        let (status, answer) = server.get(&format!("/api/petitions?{query}"), Some(&li)).await?;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    let (status, answer) = server.get("/api/petitions/not-an-id", Some(&li)).await?;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server.get("/api/petitions", None).await?;
    assert_eq!(status, 401, "{answer}");
    server.stop().await
}

/// The demo's rooms, as `(kind, doc_id)`.
async fn rooms(server: &TestServer) -> anyhow::Result<Vec<(String, String)>> {
    let storage = server.state.docs.storage();
    let mut out = Vec::new();
    for d in storage.documents().docs_changed_since(0, 1000).await? {
        if let Some(room) = storage.projections().room(&d.doc_id).await? {
            out.push((room.kind, d.doc_id));
        }
    }
    Ok(out)
}

async fn room_of(server: &TestServer, kind: &str) -> anyhow::Result<String> {
    rooms(server)
        .await?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, id)| id)
        .with_context(|| format!("no {kind} room"))
}

async fn room_messages_post_and_page_with_mentions(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let room = room_of(&server, "village_room").await?;
    let li = token(&server, "officer-li").await?;
    let zhang = token(&server, "res-zhang").await?;
    let path = format!("/api/rooms/{room}/messages");

    let (status, posted) = server
        .post(
            &path,
            Some(&li),
            &json!({"text": "@张大爷 明天上午来所里领证", "mentions": [{"user": "res-zhang"}], "tag": "reminders"}),
        )
        .await?;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(posted["by"], "officer-li");
    // Sent in the old tagged form, answered in the one form every path uses.
    assert_eq!(posted["mentions"], json!(["res-zhang"]));
    let (status, reply) = server
        .post(&path, Some(&zhang), &json!({"text": "好的", "reply_to": posted["id"]}))
        .await?;
    assert_eq!(status, 201, "{reply}");

    // Page through everything two at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let q = match &after {
            Some(a) => format!("{path}?limit=2&after={a}"),
            None => format!("{path}?limit=2"),
        };
        let (status, page) = server.get(&q, Some(&zhang)).await?;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item.clone());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    let texts: Vec<&str> = seen.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts.len(), 4, "two demo messages and two new ones: {texts:?}");
    assert_eq!(texts[2..], ["@张大爷 明天上午来所里领证", "好的"]);
    let mention = &seen[2];
    assert_eq!(mention["mentions"], json!(["res-zhang"]));
    assert_eq!(seen[3]["reply_to"], posted["id"]);

    // Outsiders neither read nor write.
    let liu = token(&server, "res-liu").await?;
    let (status, _) = server.get(&path, Some(&liu)).await?;
    assert_eq!(status, 404);
    let (status, _) = server.post(&path, Some(&liu), &json!({"text": "我也来"})).await?;
    assert_eq!(status, 404);
    let (status, answer) = server.post(&path, Some(&li), &json!({"text": ""})).await?;
    assert_eq!(status, 400, "{answer}");
    server.stop().await
}

async fn a_household_line_is_private_to_the_household_and_station(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo_server(db).await?;
    let line = room_of(&server, "household_line").await?;
    let path = format!("/api/rooms/{line}/messages");
    for user in ["res-zhang", "officer-li", "officer-wang", "chief-east"] {
        let (status, page) = server.get(&path, Some(&token(&server, user).await?)).await?;
        assert_eq!(status, 200, "{user}: {page}");
        assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{user}");
    }
    for user in ["res-liu", "res-he", "officer-zhao"] {
        let (status, page) = server.get(&path, Some(&token(&server, user).await?)).await?;
        assert_eq!(status, 404, "{user}: {page}");
    }
    let wang = token(&server, "officer-wang").await?;
    let (status, posted) = server
        .post(&path, Some(&wang), &json!({"text": "王警官：证件已办好"}))
        .await?;
    assert_eq!(status, 201, "{posted}");
    let (status, page) = server.get(&path, Some(&token(&server, "res-zhang").await?)).await?;
    assert_eq!(status, 200);
    assert_eq!(page["items"][2]["text"], "王警官：证件已办好");
    let liu = token(&server, "res-liu").await?;
    let (status, _) = server.post(&path, Some(&liu), &json!({"text": "偷看"})).await?;
    assert_eq!(status, 404);
    server.stop().await
}

/// A petition takes at most `MAX_PETITION_ENTRIES` timeline events and
/// messages: a REST comment on a full one is a 403 naming `document-full`,
/// like a CRDT client's change (the petition was filled through the same
/// write path, in one change of 999 messages).
async fn a_full_petition_refuses_a_rest_comment_with_the_rule(db: &mut TestDb) -> anyhow::Result<()> {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT, ReadDoc};
    use lianxin_server::clock::Clock;
    use sync_core::policy::shape::MAX_PETITION_ENTRIES;

    let server = demo_server(db).await?;
    let zhang = token(&server, "res-zhang").await?;
    let id = new_id();
    let (status, body) = server.post("/api/petitions", Some(&zhang), &submission(&id)).await?;
    assert_eq!(status, 201, "{body}");
    let id = id.to_string();
    let who = server.state.auth.principal(&UserId::new("res-zhang")?).await?;
    let mut doc = server.state.docs.read(&who, &id).await?;
    let before = doc.get_heads();
    let mut fork = doc.fork().with_actor(automerge::ActorId::random());
    let conv = fork.get(ROOT, "conversation")?.context("conversation")?.1;
    let now = server.clock.now().millis();
    for i in 0..MAX_PETITION_ENTRIES - 1 {
        let m = fork.insert_object(&conv, i, ObjType::Map)?;
        fork.put(&m, "by", "res-zhang")?;
        fork.put(&m, "at", format!("{now:013}.{i:05}.fill"))?;
        fork.put(&m, "text", "还是没水")?;
    }
    fork.commit();
    let applied = server.state.docs.apply(&who, &id, fork.get_changes(&before)).await?;
    ensure!(applied.refused.is_empty(), "{:?}", applied.refused);

    let (status, body) = act(
        &server,
        "res-zhang",
        &id,
        json!({"action": "comment", "text": "再问一次"}),
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["refused"][0]["rule"], "document-full", "{body}");
    server.stop().await
}

backend_tests!(
    a_full_petition_refuses_a_rest_comment_with_the_rule,
    a_retried_submit_files_one_petition,
    lists_filter_by_status_unit_category_and_overdue,
    one_petition_with_timeline_and_derived_status,
    every_action_by_the_right_user,
    refusals_are_403_and_unreadable_is_404,
    bad_input_is_400_with_a_json_error,
    room_messages_post_and_page_with_mentions,
    a_household_line_is_private_to_the_household_and_station,
);
