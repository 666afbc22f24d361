//! The resident app over HTTP: the shell, its service worker and manifest, the first-load and
//! list-page budgets (compressed bytes on the wire), and what the app relies on from the API:
//! a petition filed without naming a unit goes where its channel goes, clocks carry their
//! limit, and an action or a room post retried under the same `Idempotency-Key` is carried
//! out once. The same flows in a real browser are in `cli/tests/app_browser.rs`.

use anyhow::{Context, ensure};
use lianxin_server::auth::SmsSender;
use lianxin_server::testing::{TestDb, TestServer};
use serde_json::{Value, json};
use sync_core::UserId;
use sync_core::repo_protocol::DocumentId;

async fn demo(db: &TestDb) -> anyhow::Result<TestServer> {
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

async fn token(server: &TestServer, user: &str) -> anyhow::Result<String> {
    Ok(server
        .state
        .auth
        .mint_access_token(&UserId::new(user)?, 3_600_000)
        .await?)
}

/// GETs `path` as a browser does (`br, gzip`); the status, the headers and the bytes as they
/// came over the wire (reqwest is built without decompression here).
async fn wire(
    server: &TestServer,
    path: &str,
    bearer: Option<&str>,
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut r = client.get(server.url(path)).header("accept-encoding", "br, gzip");
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Ok((status, headers, r.bytes().await?.to_vec()))
}

fn gunzip(bytes: &[u8]) -> anyhow::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut s)?;
    Ok(s)
}

#[tokio::test]
async fn first_load_fits_the_budget_and_the_worker_keeps_the_shell() -> anyhow::Result<()> {
    const BUDGET: usize = 50 * 1024;
    let db = TestDb::sqlite().await?;
    let server = demo(&db).await?;

    let (status, headers, _) = wire(&server, "/app", None).await?;
    ensure!(status == 308 && headers["location"] == "/app/", "{status}");

    let (status, headers, shell) = wire(&server, "/app/", None).await?;
    ensure!(status == 200, "{status}");
    ensure!(headers["content-encoding"] == "gzip", "the shell is compressed");
    ensure!(headers["cache-control"] == "no-cache", "the shell may be kept");
    let csp = headers["content-security-policy"].to_str()?;
    ensure!(
        csp.contains("manifest-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = gunzip(&shell)?;
    ensure!(
        html.contains("data-words=") && html.contains("已签收"),
        "the words are in the shell"
    );
    ensure!(!html.contains("<script>"), "no inline script");

    // Every file the shell names, as the browser would fetch it.
    let mut total = shell.len();
    let mut files = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = &part[..part.find('"').context("quote")?];
            if url.starts_with('#') {
                continue;
            }
            ensure!(
                url.starts_with('/') && !url.starts_with("//"),
                "{url} is on this server"
            );
            files.push(url.to_owned());
        }
    }
    files.push("/app/sw.js".into());
    for url in &files {
        let (status, headers, bytes) = wire(&server, url, None).await?;
        ensure!(status == 200, "{url}: {status}");
        if url.ends_with(".js") && url.starts_with("/assets/") {
            ensure!(headers["content-encoding"] == "br", "{url} is precompressed");
        }
        total += bytes.len();
    }
    ensure!(
        files.len() >= 5,
        "shell, style, script, icon, manifest, worker: {files:?}"
    );
    ensure!(!html.contains("woff") && !html.contains("font-face"), "no web fonts");
    println!("app_first_load_bytes={total} budget={BUDGET} files={}", files.len() + 1);
    ensure!(total <= BUDGET, "first load is {total} bytes, over {BUDGET}");

    // The worker lists what it keeps, and is revalidated cheaply.
    let (_, headers, body) = wire(&server, "/app/sw.js", None).await?;
    let sw = String::from_utf8(body)?;
    ensure!(sw.contains("\"/app/\"") && sw.contains("/assets/app/app."), "{sw}");
    let etag = headers["etag"].to_str()?.to_owned();
    let again = reqwest::Client::new()
        .get(server.url("/app/sw.js"))
        .header("if-none-match", &etag)
        .send()
        .await?;
    ensure!(again.status() == 304, "an unchanged worker is a 304");

    let (_, _, manifest) = wire(&server, "/app/manifest.webmanifest", None).await?;
    let manifest: Value = serde_json::from_slice(&manifest)?;
    ensure!(
        manifest["start_url"] == "/app/" && manifest["scope"] == "/app/",
        "{manifest}"
    );
    Ok(())
}

#[tokio::test]
async fn a_page_of_my_petitions_fits_in_5_kb_compressed() -> anyhow::Result<()> {
    const BUDGET: usize = 5 * 1024;
    let db = TestDb::sqlite().await?;
    let server = demo(&db).await?;
    let zhang = token(&server, "res-zhang").await?;
    for i in 0..20 {
        let id = DocumentId::from_bytes(rand::random());
        let channel = ["chief_line", "household_line", "director_mailbox"][i % 3];
        let (status, body) = server
            .post(
                "/api/petitions",
                Some(&zhang),
                &json!({
                    "id": id.to_string(), "channel": channel,
                    "category": "help", "title": format!("第{i}件事：村口路灯坏了，晚上看不见路"),
                    "body": "村口的路灯坏了半个月，老人晚上出门容易摔倒，希望尽快修好。",
                    "location": { "unit": "village-shangping" }, "contact": "13800000001",
                }),
            )
            .await?;
        ensure!(status == 201, "{status} {body}");
    }
    let path = "/api/petitions?limit=20&submitter=res-zhang";
    let (status, headers, bytes) = wire(&server, path, Some(&zhang)).await?;
    ensure!(status == 200, "{status}");
    ensure!(headers["content-encoding"] == "gzip", "the API's JSON is compressed");
    let page: Value = serde_json::from_str(&gunzip(&bytes)?)?;
    let items = page["items"].as_array().context("items")?;
    ensure!(items.len() == 20, "a full page: {}", items.len());
    let raw = serde_json::to_vec(&page)?.len();
    println!(
        "app_petition_page_bytes={} raw={raw} items=20 budget={BUDGET}",
        bytes.len()
    );
    ensure!(
        bytes.len() <= BUDGET,
        "a page of 20 is {} bytes compressed",
        bytes.len()
    );
    Ok(())
}

#[tokio::test]
async fn unaddressed_petitions_follow_their_channel_and_clocks_carry_their_limit() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db).await?;
    let zhang = token(&server, "res-zhang").await?;
    for (channel, lead) in [
        ("chief_line", "station-east"),
        ("household_line", "station-east"),
        ("director_mailbox", "mailbox-taskforce"),
    ] {
        let id = DocumentId::from_bytes(rand::random()).to_string();
        let (status, body) = server
            .post(
                "/api/petitions",
                Some(&zhang),
                &json!({"id": id, "channel": channel, "category": "consultation", "title": "换身份证",
                        "body": "孙子的身份证快到期了", "location": {"unit": "village-shangping"}}),
            )
            .await?;
        ensure!(status == 201, "{status} {body}");
        ensure!(
            body["summary"]["lead"] == lead,
            "{channel}: {}",
            body["summary"]["lead"]
        );
        let reply = body["summary"]["clocks"]
            .as_array()
            .context("clocks")?
            .iter()
            .find(|c| c["kind"] == "reply")
            .context("reply clock")?;
        ensure!(reply["limit"]["working_days"] == 5, "{reply}");
    }
    let (status, body) = server
        .post(
            "/api/petitions",
            Some(&zhang),
            &json!({"id": DocumentId::from_bytes(rand::random()).to_string(), "channel": "walk_in",
                    "category": "help", "title": "t", "body": "b", "location": {"unit": "village-shangping"}}),
        )
        .await?;
    ensure!(
        status == 400 && body["error"]["message"].as_str().unwrap_or("").contains("routed_to"),
        "{status} {body}"
    );
    Ok(())
}

async fn post_keyed(
    server: &TestServer,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_actions_and_posts_are_carried_out_once() -> anyhow::Result<()> {
    lianxin_server::testing::run_test(TestDb::sqlite().await?, carried_out_once).await
}

/// The same on PostgreSQL (the key and the entry it made are read back by prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_actions_and_posts_are_carried_out_once_postgres() -> anyhow::Result<()> {
    match TestDb::postgres().await? {
        Some(db) => lianxin_server::testing::run_test(db, carried_out_once).await,
        None => {
            lianxin_server::testing::postgres_skipped("app::retried_actions_and_posts_are_carried_out_once_postgres");
            Ok(())
        }
    }
}

async fn carried_out_once(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo(db).await?;
    let zhang = token(&server, "res-zhang").await?;
    let id = DocumentId::from_bytes(rand::random()).to_string();
    let new = json!({"id": id, "channel": "chief_line", "category": "help", "title": "断水",
                     "body": "泉水被引去灌溉，家里断水", "location": {"unit": "village-shangping"}});
    let (status, _) = server.post("/api/petitions", Some(&zhang), &new).await?;
    ensure!(status == 201);
    let (status, _) = server.post("/api/petitions", Some(&zhang), &new).await?;
    ensure!(status == 200, "a retried submit files once");

    let path = format!("/api/petitions/{id}/actions");
    let comment = json!({"action": "comment", "text": "水还是没有来"});
    for _ in 0..3 {
        let (status, body) = post_keyed(&server, &path, &zhang, "c-1", &comment).await?;
        ensure!(status == 200, "{status} {body}");
    }
    let (_, view) = server.get(&format!("/api/petitions/{id}"), Some(&zhang)).await?;
    let said = view["conversation"]
        .as_array()
        .context("conversation")?
        .iter()
        .filter(|m| m["text"] == "水还是没有来")
        .count();
    ensure!(said == 1, "three sends under one key are one comment, not {said}");
    let (status, _) = post_keyed(&server, &path, &zhang, "c-2", &comment).await?;
    ensure!(status == 200, "another key is another comment");

    // A refusal is not remembered as done: the retry is refused again, with its rule.
    let sign = json!({"action": "sign", "unit": "station-east"});
    for _ in 0..2 {
        let (status, body) = post_keyed(&server, &path, &zhang, "s-1", &sign).await?;
        ensure!(
            status == 403 && body["error"]["refused"][0]["rule"].is_string(),
            "{status} {body}"
        );
    }
    let (status, body) = post_keyed(&server, &path, &zhang, "no good", &comment).await?;
    ensure!(status == 400, "{status} {body}");

    // Room posts: the retry answers the message the first post became.
    let (_, rooms) = server.get("/api/rooms", Some(&zhang)).await?;
    let room = rooms["items"]
        .as_array()
        .context("rooms")?
        .iter()
        .find(|r| r["kind"] == "village_room")
        .context("village room")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let path = format!("/api/rooms/{room}/messages");
    let post = json!({"text": "@李警官 村口的路灯坏了", "mentions": ["officer-li"]});
    let (s1, first) = post_keyed(&server, &path, &zhang, "m-1", &post).await?;
    let (s2, again) = post_keyed(&server, &path, &zhang, "m-1", &post).await?;
    ensure!(s1 == 201 && s2 == 201, "{s1} {s2} {again}");
    ensure!(first["id"] == again["id"], "{first} vs {again}");
    let (_, page) = server.get(&format!("{path}?limit=500"), Some(&zhang)).await?;
    let n = page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter(|m| m["text"] == "@李警官 村口的路灯坏了")
        .count();
    ensure!(n == 1, "one message, not {n}");
    Ok(())
}

/// A room opens on its latest messages, and earlier ones are paged back with `before`; the
/// room and each page carry the display names of the people in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_opens_on_its_latest_messages_with_names() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db).await?;
    let zhang = token(&server, "res-zhang").await?;
    let (_, rooms) = server.get("/api/rooms", Some(&zhang)).await?;
    let room = rooms["items"]
        .as_array()
        .context("rooms")?
        .iter()
        .find(|r| r["kind"] == "village_room")
        .context("village room")?["id"]
        .as_str()
        .context("id")?
        .to_owned();
    let path = format!("/api/rooms/{room}/messages");
    for i in 0..25 {
        let (status, body) = server
            .post(&path, Some(&zhang), &json!({"text": format!("第{i}条")}))
            .await?;
        ensure!(status == 201, "{status} {body}");
    }
    let texts = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .map(|a| a.iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default()
    };
    let (_, all) = server.get(&format!("{path}?limit=200"), Some(&zhang)).await?;
    let all = texts(&all);
    ensure!(all.len() == 27 && all[26] == "第24条", "{all:?}");

    // The latest ten, oldest first, and a cursor to the ones before.
    let (status, latest) = server
        .get(&format!("{path}?latest=true&limit=10"), Some(&zhang))
        .await?;
    ensure!(status == 200, "{status} {latest}");
    ensure!(texts(&latest) == all[17..], "{latest}");
    ensure!(latest["next"].is_null(), "{latest}");
    let mut before = latest["earlier"].as_str().context("earlier")?.to_owned();
    let mut seen = texts(&latest);
    while let Some(cursor) = Some(before.clone()).filter(|c| !c.is_empty()) {
        let (status, page) = server
            .get(&format!("{path}?before={cursor}&limit=10"), Some(&zhang))
            .await?;
        ensure!(status == 200, "{status} {page}");
        let mut earlier = texts(&page);
        earlier.append(&mut seen);
        seen = earlier;
        before = page["earlier"].as_str().unwrap_or("").to_owned();
    }
    ensure!(seen == all, "paging back gives every message once, in order: {seen:?}");

    // Forward paging is as it was, and one direction at a time.
    let (_, first) = server.get(&format!("{path}?limit=10"), Some(&zhang)).await?;
    ensure!(texts(&first) == all[..10] && first["next"].is_string(), "{first}");
    let (status, body) = server
        .get(
            &format!("{path}?latest=true&after={}", first["next"].as_str().unwrap_or("")),
            Some(&zhang),
        )
        .await?;
    ensure!(
        status == 400 && body["error"]["message"].as_str().unwrap_or("").contains("direction"),
        "{status} {body}"
    );

    // Names: the members of the room and the authors on the page.
    ensure!(latest["names"]["res-zhang"] == "张大爷", "{}", latest["names"]);
    let (_, first) = server.get(&format!("{path}?limit=1"), Some(&zhang)).await?;
    ensure!(first["names"]["officer-li"] == "李警官", "{}", first["names"]);
    let (_, view) = server.get(&format!("/api/rooms/{room}"), Some(&zhang)).await?;
    ensure!(
        view["names"]["officer-li"] == "李警官" && view["names"]["res-zhang"] == "张大爷",
        "{}",
        view["names"]
    );
    Ok(())
}

/// The inbox items of `user` of `kind` about `doc_id` (and its `entry`, if given), as
/// `recipient` strings.
async fn told(
    server: &TestServer,
    user: &str,
    (doc_id, entry): (&str, Option<&Value>),
    kind: &str,
) -> anyhow::Result<Vec<String>> {
    let t = token(server, user).await?;
    let (status, inbox) = server.get("/api/inbox?limit=500", Some(&t)).await?;
    ensure!(status == 200, "{status} {inbox}");
    Ok(inbox["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter(|i| i["doc_id"] == doc_id && i["kind"] == kind && entry.is_none_or(|e| i["entry"] == *e))
        .map(|i| i["recipient"].as_str().unwrap_or("").to_owned())
        .collect())
}

/// 户户通: a household's message on its 1:1 line, and a petition it files on the household line,
/// reach the officer the village directory assigns to the household (not the station's whole
/// duty desk); the resident sees the officer on the line by name; when the directory names
/// another officer, the next message goes to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_household_line_reaches_the_households_directory_officer() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db).await?;
    let zhang = token(&server, "res-zhang").await?;
    let (_, rooms) = server.get("/api/rooms", Some(&zhang)).await?;
    let line = rooms["items"]
        .as_array()
        .context("rooms")?
        .iter()
        .find(|r| r["kind"] == "household_line")
        .context("household line")?["id"]
        .as_str()
        .context("id")?
        .to_owned();

    // The resident sees the officer on the line, by name.
    let (_, view) = server.get(&format!("/api/rooms/{line}"), Some(&zhang)).await?;
    ensure!(
        view["members"]
            .as_array()
            .context("members")?
            .iter()
            .any(|m| m["user"] == "officer-li"),
        "the household's officer is on the line: {view}"
    );
    ensure!(view["names"]["officer-li"] == "李警官", "{}", view["names"]);

    let (status, posted) = server
        .post(
            &format!("/api/rooms/{line}/messages"),
            Some(&zhang),
            &json!({"text": "李警官，我家的户口本能补办吗？"}),
        )
        .await?;
    ensure!(status == 201, "{status} {posted}");
    let message = (line.as_str(), Some(&posted["id"]));
    let li = told(&server, "officer-li", message, "line_message").await?;
    ensure!(li == ["user:officer-li"], "the directory's officer is told: {li:?}");
    let wang = told(&server, "officer-wang", message, "line_message").await?;
    ensure!(wang.is_empty(), "not the rest of the station: {wang:?}");

    // The officer sees the conversation in the console's room page.
    let li_token = token(&server, "officer-li").await?;
    let (status, page) = server
        .get(
            &format!("/api/rooms/{line}/messages?latest=true&limit=50"),
            Some(&li_token),
        )
        .await?;
    ensure!(status == 200, "{status} {page}");
    ensure!(page["names"]["res-zhang"] == "张大爷", "{}", page["names"]);

    // A petition filed on the household line goes to the same officer.
    let id = DocumentId::from_bytes(rand::random()).to_string();
    let (status, body) = server
        .post(
            "/api/petitions",
            Some(&zhang),
            &json!({"id": id, "channel": "household_line", "category": "consultation", "title": "补办户口本",
                    "body": "户口本丢了", "location": {"unit": "village-shangping"}}),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    ensure!(body["summary"]["lead"] == "station-east", "still the station's: {body}");
    let li = told(&server, "officer-li", (&id, None), "new_petition").await?;
    ensure!(li == ["user:officer-li"], "{li:?}");
    ensure!(
        told(&server, "officer-wang", (&id, None), "new_petition")
            .await?
            .is_empty()
    );

    // The directory now names 王警官 for the household: the next message is his.
    let (status, body) = server
        .put(
            "/api/units/village-shangping/directory/households/hh-shangping-001",
            Some(&li_token),
            &json!({"name": "张家", "officer": "officer-wang"}),
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    let (_, posted) = server
        .post(
            &format!("/api/rooms/{line}/messages"),
            Some(&zhang),
            &json!({"text": "王警官，麻烦您了"}),
        )
        .await?;
    let message = (line.as_str(), Some(&posted["id"]));
    let wang = told(&server, "officer-wang", message, "line_message").await?;
    ensure!(wang == ["user:officer-wang"], "{wang:?}");
    ensure!(told(&server, "officer-li", message, "line_message").await?.is_empty());
    Ok(())
}

/// A petition's view names its people: the conversation and timeline show names, not ids.
#[tokio::test]
async fn a_petition_view_carries_the_names_of_its_people() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db).await?;
    let zhang = token(&server, "res-zhang").await?;
    let (_, list) = server
        .get("/api/petitions?submitter=res-zhang&limit=50", Some(&zhang))
        .await?;
    let mut seen_officer = false;
    for item in list["items"].as_array().context("items")? {
        let id = item["doc_id"].as_str().context("doc_id")?;
        let (status, view) = server.get(&format!("/api/petitions/{id}"), Some(&zhang)).await?;
        ensure!(status == 200, "{status} {view}");
        ensure!(view["names"]["res-zhang"] == "张大爷", "{}", view["names"]);
        let people = view["conversation"]
            .as_array()
            .context("conversation")?
            .iter()
            .chain(view["timeline"].as_array().context("timeline")?)
            .filter_map(|e| e["by"].as_str());
        for by in people {
            ensure!(view["names"][by].is_string(), "{by} has a name: {}", view["names"]);
            seen_officer |= by == "officer-li";
        }
    }
    ensure!(seen_officer, "the demo has an officer in 张大爷's petitions");
    Ok(())
}
