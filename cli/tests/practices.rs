//! The five practices of the source articles, each end to end on a real
//! `lianxin serve --demo` process driven over HTTP only, as a console or an
//! app would: staff sign in with their login, residents with a one-time code
//! that the test reads from the SMS gateway webhook it runs, and every step is
//! a request to the API.
//!
//! - 000 the chief's line: water cut off by irrigation, reclassified as no
//!   police matter, the lead stays while the water department and the town
//!   government assist; each acts, the chief replies, the resident rates it.
//! - 001 the household line: households added door to door, an anti-fraud
//!   notice to every household of the village, heads mark it, the report
//!   lists who was not reached.
//! - 002 the village group: an @mention answered with reply-to; a lost
//!   schoolbag posted to three rooms and one "found" update in every room.
//! - 003 the party-group room: a message raised as a petition, dispatched
//!   county → town → village → party group and accepted at each level,
//!   handled, rated on a follow-up visit, published on the board.
//! - 004 the director's mailbox: a 7×24 roster, a letter signed, the writer
//!   contacted and answered in time by whoever is on duty, an unsigned letter
//!   escalated by the server to the task force's parent, supervision, and the
//!   KPI report checked against a count made by hand from the letters.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use lianxin_server::backend_tests;
use lianxin_server::testing::TestDb;
use serde_json::{Value, json};
use sync_core::repo_protocol::DocumentId;
use tokio::io::{AsyncBufReadExt, BufReader};

const STEP: Duration = Duration::from_secs(20);

/// An SMS gateway: records every `{phone, code, purpose}` the server posts.
struct Gateway {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    async fn start() -> anyhow::Result<Gateway> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().expect("gateway lock").push(body);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/sms", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Gateway { url, received, task })
    }

    /// The latest code sent to `phone`.
    async fn code_for(&self, phone: &str) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let found = self
                .received
                .lock()
                .expect("gateway lock")
                .iter()
                .rev()
                .find(|m| m["phone"] == phone)
                .and_then(|m| m["code"].as_str().map(str::to_owned));
            if let Some(code) = found {
                return Ok(code);
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "no code reached the gateway for {phone}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One `lianxin serve --demo` process and an HTTP client for it.
struct Serve {
    process: tokio::process::Child,
    url: String,
    http: reqwest::Client,
    sms: Gateway,
}

impl Serve {
    /// Starts the binary on `db` with the demo county, its SMS gateway
    /// pointed at a [`Gateway`], and `extra` flags.
    async fn start(db: &TestDb, extra: &[&str]) -> anyhow::Result<Serve> {
        let sms = Gateway::start().await?;
        let dir = db.dir().join("serve");
        std::fs::create_dir_all(&dir)?;
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_lianxin"))
            .args(["--listen", "127.0.0.1:0", "--log", "warn", "--data-dir"])
            .arg(&dir)
            .args(["--database-url", &db.database_url(), "--sms-webhook-url", &sms.url])
            .args(extra)
            .args(["serve", "--demo"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(process.stdout.take().context("stdout")?).lines();
        let url = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .context("lianxin serve did not start")??
                .context("lianxin serve exited")?;
            if let Some(url) = line.strip_prefix("lianxin listening on ") {
                break url.trim().to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Serve {
            process,
            url,
            http: reqwest::Client::new(),
            sms,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.process.start_kill()?;
        self.process.wait().await?;
        Ok(())
    }

    /// `method path` with `token`; fails unless the status is `expect`.
    async fn call(&self, token: &str, method: &str, path: &str, body: Value, expect: u16) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => self.http.get(&url),
            "POST" => self.http.post(&url).json(&body),
            "PUT" => self.http.put(&url).json(&body),
            "DELETE" => self.http.delete(&url),
            other => bail!("no method {other}"),
        };
        let request = if token.is_empty() {
            request
        } else {
            request.bearer_auth(token)
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        ensure!(status == expect, "{method} {path}: {status} (expected {expect}) {text}");
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{method} {path}: {text}"))?
        })
    }

    /// Signs a staff member in with their login and the demo password.
    async fn login(&self, login: &str) -> anyhow::Result<String> {
        let pair = self
            .call(
                "",
                "POST",
                "/api/auth/login",
                json!({"login": login, "password": lianxin_demo::DEMO_PASSWORD}),
                200,
            )
            .await?;
        pair["access_token"].as_str().map(str::to_owned).context("access_token")
    }

    /// Signs a resident in by phone: the code comes from the SMS gateway.
    async fn by_phone(&self, phone: &str) -> anyhow::Result<String> {
        self.call("", "POST", "/api/auth/otp/request", json!({"phone": phone}), 202)
            .await?;
        let code = self.sms.code_for(phone).await?;
        let pair = self
            .call(
                "",
                "POST",
                "/api/auth/otp/verify",
                json!({"phone": phone, "code": code}),
                200,
            )
            .await?;
        pair["access_token"].as_str().map(str::to_owned).context("access_token")
    }

    async fn get(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        self.call(token, "GET", path, Value::Null, 200).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(token, "POST", path, body, 200).await
    }

    /// One action on a petition, answered 200 with the petition.
    async fn act(&self, token: &str, petition: &str, action: Value) -> anyhow::Result<Value> {
        self.post(token, &format!("/api/petitions/{petition}/actions"), action)
            .await
    }

    /// The caller's inbox items about `doc`, as `kind`s in order.
    async fn told(&self, token: &str, doc: &str) -> anyhow::Result<Vec<String>> {
        let inbox = self.get(token, "/api/inbox?limit=500").await?;
        Ok(items(&inbox)
            .iter()
            .filter(|i| i["doc_id"] == doc)
            .filter_map(|i| i["kind"].as_str().map(str::to_owned))
            .collect())
    }

    /// Polls `path` until `done` holds for its answer.
    async fn until(&self, token: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.get(token, path).await?;
            if done(&answer) {
                return Ok(answer);
            }
            ensure!(tokio::time::Instant::now() < deadline, "never {what}: {answer}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    DocumentId::from_bytes(b).to_string()
}

fn items(page: &Value) -> &[Value] {
    page["items"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn kinds(timeline: &Value) -> Vec<&str> {
    timeline
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["outcome"] == "applied")
        .filter_map(|e| e["kind"].as_str())
        .collect()
}

/// 000: 一人咨询，N方联动.
async fn chief_line(db: &mut TestDb) -> anyhow::Result<()> {
    let s = Serve::start(db, &[]).await?;
    let zhang = s.by_phone("13800000001").await?;
    let chief = s.login("chief").await?;
    let water = s.login("water").await?;
    let town = s.login("zhen").await?;

    let id = new_id();
    let submitted = s
        .call(
            &zhang,
            "POST",
            "/api/petitions",
            json!({"id": id, "channel": "chief_line", "category": "help", "title": "泉水被引去灌溉，家里断水",
                   "body": "村里的泉水被引去灌溉，我家断水两天了。", "location": {"unit": "village-shangping"},
                   "routed_to": "station-east"}),
            201,
        )
        .await?;
    assert_eq!(submitted["summary"]["status"], "submitted");
    assert!(s.told(&chief, &id).await?.contains(&"new_petition".to_owned()));

    s.act(&chief, &id, json!({"action": "sign", "unit": "station-east"}))
        .await?;
    // Not a police matter: classified, and the lead stays while two units assist.
    let view = s
        .act(
            &chief,
            &id,
            json!({"action": "reclassify", "unit": "station-east", "category": "non_police",
                   "reason": "灌溉截流导致断水，属水利和乡镇职责"}),
        )
        .await?;
    assert_eq!(view["summary"]["category"], "non_police");
    let view = s
        .act(
            &chief,
            &id,
            json!({"action": "change_assists", "unit": "station-east", "add": ["water", "town-dongling"]}),
        )
        .await?;
    assert_eq!(view["summary"]["lead"], "station-east", "{view}");
    assert_eq!(view["summary"]["assists"], json!(["water", "town-dongling"]));
    for who in [&water, &town] {
        assert!(
            s.told(who, &id).await?.contains(&"assist_requested".to_owned()),
            "an assisting unit is told"
        );
    }
    // Each assisting unit acts and answers.
    s.act(
        &water,
        &id,
        json!({"action": "progress", "unit": "water", "note": "已协调灌溉户分时用水，今晚恢复供水"}),
    )
    .await?;
    s.act(
        &town,
        &id,
        json!({"action": "progress", "unit": "town-dongling", "note": "镇政府已约谈灌溉户，签订用水协议"}),
    )
    .await?;
    s.act(&town, &id, json!({"action": "comment", "text": "镇里会跟进协议执行"}))
        .await?;
    // The water department may not reply for the lead.
    let refused = s
        .call(
            &water,
            "POST",
            &format!("/api/petitions/{id}/actions"),
            json!({"action": "reply", "unit": "water", "text": "x"}),
            409,
        )
        .await?;
    assert_eq!(refused["error"]["rule"], "not-lead", "{refused}");
    s.act(
        &chief,
        &id,
        json!({"action": "reply", "unit": "station-east", "text": "水利局和镇政府已协调分时用水，您家已恢复供水。"}),
    )
    .await?;

    // The resident reads the reply and rates it.
    let mine = s.get(&zhang, &format!("/api/petitions/{id}")).await?;
    assert_eq!(mine["summary"]["status"], "replied");
    let reply = mine["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "replied")
        .context("reply")?;
    assert_eq!(reply["text"], "水利局和镇政府已协调分时用水，您家已恢复供水。");
    let reclassified = mine["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reclassified")
        .context("reclassified")?;
    assert_eq!(reclassified["by"], "chief-east");
    assert!(reclassified["at"].is_string() || reclassified["at"].is_number());
    assert_eq!(
        kinds(&mine["timeline"])
            .into_iter()
            .filter(|k| *k == "progress")
            .count(),
        2
    );
    let told = s.told(&zhang, &id).await?;
    assert!(told.contains(&"status_changed".to_owned()), "{told:?}");
    let rated = s
        .act(
            &zhang,
            &id,
            json!({"action": "follow_up", "rating": 5, "comment": "水来了，谢谢"}),
        )
        .await?;
    assert_eq!(rated["summary"]["rating"], 5);
    s.stop().await
}

/// 001: one contact per household.
async fn household_line(db: &mut TestDb) -> anyhow::Result<()> {
    let s = Serve::start(db, &[]).await?;
    let li = s.login("li").await?;
    let admin = s.login("admin").await?;
    let village = "/api/units/village-shangping/directory";
    let before = s.get(&li, village).await?;
    assert_eq!(before["households"].as_array().map(Vec::len), Some(3), "{before}");

    // Door to door: two more households, their heads registered with their phones.
    for (user, household, name, head, phone) in [
        ("res-sun", "hh-shangping-004", "孙家", "孙大姐", "13800000011"),
        ("res-wu", "hh-shangping-005", "吴家", "吴大哥", "13800000012"),
    ] {
        s.call(
            &admin,
            "PUT",
            &format!("/api/admin/users/{user}"),
            json!({"display_name": head, "phone": phone, "household": household,
                   "memberships": [{"unit": "village-shangping", "role": "resident"}]}),
            200,
        )
        .await?;
        s.call(
            &li,
            "PUT",
            &format!("{village}/households/{household}"),
            json!({"name": name, "representative": user, "representative_name": head, "phone": phone,
                   "group_tag": "二组", "officer": "officer-li"}),
            200,
        )
        .await?;
    }
    let after = s.get(&li, village).await?;
    assert_eq!(after["households"].as_array().map(Vec::len), Some(5), "{after}");
    let coverage = s.get(&li, "/api/reports/coverage?unit=village-shangping").await?;
    let row = coverage["villages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["id"] == "village-shangping")
        .with_context(|| format!("{coverage}"))?;
    assert_eq!(row["households"], 5, "{coverage}");
    assert_eq!(row["reachable"], 2, "the two with a phone: {coverage}");

    // An anti-fraud notice to every household of the village.
    let id = new_id();
    let notice = s
        .call(
            &li,
            "POST",
            "/api/notices",
            json!({"id": id, "kind": "anti_fraud", "title": "警惕冒充公检法诈骗",
                   "body": "公检法机关不会通过电话办案，更不会要求转账到安全账户。请转发到家庭群。",
                   "unit": "station-east", "audience": {"units": ["village-shangping"]}}),
            201,
        )
        .await?;
    assert_eq!(notice["kind"], "anti_fraud");

    // 张大爷's phone gets it and acknowledges: the server delivered it.
    let zhang = s.by_phone("13800000001").await?;
    let inbox = s.get(&zhang, "/api/inbox").await?;
    let item = items(&inbox)
        .iter()
        .find(|i| i["kind"] == "notice" && i["doc_id"] == id.as_str())
        .with_context(|| format!("{inbox}"))?;
    s.post(&zhang, "/api/inbox/ack", json!({"cursor": item["cursor"]}))
        .await?;
    s.post(
        &zhang,
        &format!("/api/notices/{id}/receipts"),
        json!({"kind": "forwarded"}),
    )
    .await?;
    // 孙大姐 reads it; 吴大哥 marks it delivered.
    let sun = s.by_phone("13800000011").await?;
    assert!(s.told(&sun, &id).await?.contains(&"notice".to_owned()));
    let read = s
        .post(&sun, &format!("/api/notices/{id}/receipts"), json!({"kind": "read"}))
        .await?;
    assert!(read["my_receipts"]["read"].is_i64(), "{read}");
    let wu = s.by_phone("13800000012").await?;
    s.post(
        &wu,
        &format!("/api/notices/{id}/receipts"),
        json!({"kind": "delivered"}),
    )
    .await?;
    // A head marks only their own household.
    s.call(
        &wu,
        "POST",
        &format!("/api/notices/{id}/receipts"),
        json!({"kind": "read", "household": "hh-shangping-002"}),
        403,
    )
    .await?;

    let report = s.get(&li, &format!("/api/notices/{id}/report")).await?;
    assert_eq!(report["households"], 5, "{report}");
    let not_reached: Vec<&str> = report["not_reached"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["household_id"].as_str())
        .collect();
    assert_eq!(not_reached, ["hh-shangping-002", "hh-shangping-003"], "{report}");
    assert_eq!(report["reached"], 3);
    assert_eq!(report["forwarded"], 1);
    assert_eq!(report["read"], 1);
    let zhang_row = report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["household_id"] == "hh-shangping-001")
        .context("张家")?;
    assert!(zhang_row["delivered_at"].is_i64(), "{zhang_row}");
    // Residents do not read delivery reports.
    s.call(&zhang, "GET", &format!("/api/notices/{id}/report"), Value::Null, 403)
        .await?;
    s.stop().await
}

/// 002: one officer, one group.
async fn village_group(db: &mut TestDb) -> anyhow::Result<()> {
    let s = Serve::start(db, &[]).await?;
    let zhang = s.by_phone("13800000001").await?;
    let liu = s.by_phone("13800000002").await?;
    let li = s.login("li").await?;
    let rooms = s.get(&zhang, "/api/rooms").await?;
    let village = items(&rooms)
        .iter()
        .find(|r| r["kind"] == "village_room")
        .and_then(|r| r["id"].as_str())
        .context("the village room")?
        .to_owned();

    // @李警官 in the village room; the officer is told and answers with reply-to.
    let asked = s
        .call(
            &zhang,
            "POST",
            &format!("/api/rooms/{village}/messages"),
            json!({"text": "@李警官 我家户口本丢了，怎么补办？", "mentions": ["officer-li"]}),
            201,
        )
        .await?;
    let question = asked["id"].as_str().context("id")?.to_owned();
    assert!(s.told(&li, &village).await?.contains(&"mention".to_owned()));
    s.call(
        &li,
        "POST",
        &format!("/api/rooms/{village}/messages"),
        json!({"text": "带身份证到所里补办，当天可取。", "reply_to": question}),
        201,
    )
    .await?;
    let page = s
        .get(&zhang, &format!("/api/rooms/{village}/messages?limit=200"))
        .await?;
    let answer = items(&page)
        .iter()
        .find(|m| m["reply_to"] == question.as_str())
        .context("the answer")?;
    assert_eq!(answer["by"], "officer-li");

    // Two more groups of the officer's, then one appeal to all three rooms.
    let group = new_id();
    s.call(
        &li,
        "POST",
        "/api/rooms",
        json!({"id": group, "kind": "officer_group", "name": "上坪村一组群", "unit": "shangping-g1",
               "members": [{"user": "res-zhang", "role": "member"}]}),
        201,
    )
    .await?;
    let xiaxi = new_id();
    s.call(
        &li,
        "POST",
        "/api/rooms",
        json!({"id": xiaxi, "kind": "officer_group", "name": "下溪村警民群", "unit": "village-xiaxi",
               "members": [{"user": "res-liu", "role": "member"}]}),
        201,
    )
    .await?;
    let appeal = s
        .call(
            &li,
            "POST",
            "/api/appeals",
            json!({"id": "schoolbag-2024", "text": "放学路上一名小学生丢失蓝色书包，见到请联系李警官。",
                   "rooms": [village, group, xiaxi]}),
            201,
        )
        .await?;
    assert_eq!(appeal["posts"].as_array().map(Vec::len), Some(3), "{appeal}");
    // Someone in the 下溪 group reports it found.
    let liu_page = s.get(&liu, &format!("/api/rooms/{xiaxi}/messages")).await?;
    let post = items(&liu_page)
        .iter()
        .find(|m| m["appeal"] == "schoolbag-2024")
        .and_then(|m| m["id"].as_str())
        .context("the appeal in 下溪")?
        .to_owned();
    s.call(
        &liu,
        "POST",
        &format!("/api/rooms/{xiaxi}/messages"),
        json!({"text": "书包在村口小卖部，老板收着呢", "reply_to": post}),
        201,
    )
    .await?;
    let done = s
        .post(
            &li,
            "/api/appeals/schoolbag-2024/resolve",
            json!({"text": "书包已找到，谢谢大家！"}),
        )
        .await?;
    assert_eq!(done["resolved"], true, "{done}");
    // Every room sees the update, each as its own members read it.
    for (who, room) in [(&zhang, &village), (&zhang, &group), (&liu, &xiaxi)] {
        let page = s.get(who, &format!("/api/rooms/{room}/messages?limit=200")).await?;
        let post = items(&page)
            .iter()
            .find(|m| m["appeal"] == "schoolbag-2024" && m["reply_to"].is_null())
            .with_context(|| format!("the post in {room}"))?;
        assert!(
            items(&page)
                .iter()
                .any(|m| m["reply_to"] == post["id"] && m["text"] == "书包已找到，谢谢大家！"),
            "{room}: {page}"
        );
    }
    s.stop().await
}

/// 003: the five orders, from a party-group room to the board.
async fn party_group_room(db: &mut TestDb) -> anyhow::Result<()> {
    let s = Serve::start(db, &[]).await?;
    let zhang = s.by_phone("13800000001").await?;
    let party = s.login("party").await?;
    let director = s.login("director").await?;
    let town = s.login("zhen").await?;
    let cadre = s.login("cadre").await?;

    let room = new_id();
    s.call(
        &party,
        "POST",
        "/api/rooms",
        json!({"id": room, "kind": "village_room", "name": "上坪村党群议事室", "unit": "shangping-party",
               "members": [{"user": "res-zhang", "role": "member"}]}),
        201,
    )
    .await?;
    let said = s
        .call(
            &zhang,
            "POST",
            &format!("/api/rooms/{room}/messages"),
            json!({"text": "村口的垃圾堆越来越大，夏天臭得很，能不能清理后硬化成小广场？"}),
            201,
        )
        .await?;
    let entry = said["id"].as_str().context("id")?.to_owned();
    // The residents' order: raised as a petition to the county, linked both ways.
    let id = new_id();
    let raised = s
        .call(
            &party,
            "POST",
            &format!("/api/rooms/{room}/messages/{entry}/petition"),
            json!({"id": id, "category": "suggestion", "title": "村口垃圾堆清理硬化", "routed_to": "county"}),
            201,
        )
        .await?;
    assert_eq!(raised["petition"]["header"]["source"]["message"], entry.as_str());
    assert_eq!(raised["petition"]["header"]["submitter"], "res-zhang");
    assert_eq!(raised["message"]["petition"], format!("automerge:{id}"));
    let page = s.get(&zhang, &format!("/api/rooms/{room}/messages")).await?;
    let linked = items(&page)
        .iter()
        .find(|m| m["id"] == entry.as_str())
        .context("the message")?;
    assert_eq!(linked["petition"], format!("automerge:{id}"), "{page}");

    // Dispatched county → town → village → party group, accepted at each level.
    s.act(
        &director,
        &id,
        json!({"action": "transfer", "unit": "county", "to": "town-dongling", "note": "请镇政府办理"}),
    )
    .await?;
    for (who, unit, next) in [
        (&town, "town-dongling", Some("village-shangping")),
        (&cadre, "village-shangping", Some("shangping-party")),
        (&party, "shangping-party", None),
    ] {
        assert!(
            s.told(who, &id).await?.contains(&"assigned".to_owned()),
            "{unit} is told"
        );
        let view = s.act(who, &id, json!({"action": "accept", "unit": unit})).await?;
        assert_eq!(view["summary"]["status"], "handling");
        assert_eq!(view["summary"]["lead"], unit);
        if let Some(next) = next {
            s.act(
                who,
                &id,
                json!({"action": "transfer", "unit": unit, "to": next, "note": "逐级派单"}),
            )
            .await?;
        }
    }
    // Handled in the party group; a follow-up visit rates it; the result is published.
    s.act(
        &party,
        &id,
        json!({"action": "progress", "unit": "shangping-party", "note": "党员户出工清运垃圾"}),
    )
    .await?;
    s.act(
        &party,
        &id,
        json!({"action": "reply", "unit": "shangping-party", "text": "垃圾已清运，场地已硬化为小广场。"}),
    )
    .await?;
    s.act(
        &cadre,
        &id,
        json!({"action": "follow_up", "unit": "village-shangping", "rating": 5, "comment": "回访：群众满意"}),
    )
    .await?;
    let published = s
        .act(
            &party,
            &id,
            json!({"action": "publish", "unit": "shangping-party", "summary": "村口垃圾堆变成了硬化小广场"}),
        )
        .await?;
    assert!(
        published["summary"]["published"].as_bool().unwrap_or(false),
        "{published}"
    );
    let timeline = kinds(&published["timeline"]);
    assert_eq!(timeline.iter().filter(|k| **k == "accepted").count(), 3, "{timeline:?}");
    assert_eq!(published["summary"]["rating"], 5);

    // The villagers see it on the board, without who asked; the submitter and the room are told.
    let board = s.get(&zhang, "/api/board").await?;
    let item = items(&board)
        .iter()
        .find(|i| i["doc_id"] == id.as_str())
        .with_context(|| format!("{board}"))?;
    assert_eq!(item["publication"], "村口垃圾堆变成了硬化小广场");
    assert_eq!(item["rating"], 5);
    assert!(item.get("submitter").is_none() && item.get("body").is_none(), "{item}");
    let liu = s.by_phone("13800000002").await?;
    let elsewhere = s.get(&liu, "/api/board").await?;
    assert!(
        !items(&elsewhere).iter().any(|i| i["doc_id"] == id.as_str()),
        "another village's board: {elsewhere}"
    );
    assert!(s.told(&zhang, &id).await?.contains(&"result_published".to_owned()));
    s.stop().await
}

/// The KPI figures counted by hand from the letters' summaries, by the
/// definitions written in `sync_core::kpi`, as of `end`.
fn hand_count(letters: &[Value], end: i64) -> Value {
    let t = |s: &Value, field: &str| s[field].as_i64();
    // A letter's clock of `kind` as its summary shows it: (start, done, due),
    // on the times the clock itself used (server receipts, as the report).
    let clock_of = |s: &Value, kind: &str| -> (i64, Option<i64>, i64) {
        let c = s["clocks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["kind"] == kind))
            .unwrap_or_else(|| panic!("a {kind} clock in {s}"));
        let state = &c["state"];
        let done = matches!(state["state"].as_str(), Some("met_on_time" | "met_late"))
            .then(|| state["done_at"].as_i64())
            .flatten();
        (
            c["started_at"].as_i64().expect("started_at"),
            done,
            c["due_at"].as_i64().expect("due_at"),
        )
    };
    // (on time, decided) for one clock: done by its due time; decided when
    // done by the end or past due at the end.
    let clock = |kind: &str| {
        let (mut on_time, mut decided) = (0u32, 0u32);
        for s in letters {
            let (_, done, due) = clock_of(s, kind);
            match done.filter(|d| *d <= end) {
                Some(d) => {
                    decided += 1;
                    if d <= due {
                        on_time += 1;
                    }
                }
                None if end > due => decided += 1,
                None => {}
            }
        }
        (on_time, decided)
    };
    // From the clock's start (the submission as the server received it) to the step.
    let median = |kind: &str| {
        let mut v: Vec<i64> = letters
            .iter()
            .filter_map(|s| {
                let (start, done, _) = clock_of(s, kind);
                Some(done.filter(|d| *d <= end)? - start)
            })
            .collect();
        v.sort_unstable();
        let n = v.len();
        let m = match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2),
        };
        json!({"median_ms": m, "count": n})
    };
    let completed = letters
        .iter()
        .filter(|s| t(s, "replied_at").or(t(s, "closed_at")).is_some_and(|d| d <= end))
        .count() as u32;
    let due_not_given = letters
        .iter()
        .filter(|s| t(s, "replied_at").or(t(s, "closed_at")).is_none_or(|d| d > end))
        .filter(|s| t(s, "reply_due").is_some_and(|due| due <= end))
        .count() as u32;
    let rated: Vec<u64> = letters.iter().filter_map(|s| s["rating"].as_u64()).collect();
    json!({
        "received": letters.len(),
        "response_rate": clock("sign"),
        "contact_in_time_rate": clock("contact"),
        "on_time_reply_rate": clock("reply"),
        "completion_rate": [completed, completed + due_not_given],
        "rated": rated.len(),
        "satisfied": rated.iter().filter(|r| **r >= 4).count(),
        "median_time_to_sign": median("sign"),
        "median_time_to_contact": median("contact"),
        "median_time_to_reply": median("reply"),
        "supervised": letters.iter().filter(|s| s["supervised"] == true).count(),
        "escalated": letters.iter().filter(|s| s["escalations"].as_u64().unwrap_or(0) > 0).count(),
    })
}

/// The same figures as the report gives them.
fn as_reported(k: &Value) -> Value {
    let pair = |r: &Value| json!([r["numerator"], r["denominator"]]);
    let median = |m: &Value| json!({"median_ms": m["median_ms"], "count": m["count"]});
    json!({
        "received": k["received"],
        "response_rate": pair(&k["response_rate"]),
        "contact_in_time_rate": pair(&k["contact_in_time_rate"]),
        "on_time_reply_rate": pair(&k["on_time_reply_rate"]),
        "completion_rate": pair(&k["completion_rate"]),
        "rated": k["satisfaction"]["rated"],
        "satisfied": k["satisfaction"]["satisfied"]["numerator"],
        "median_time_to_sign": median(&k["median_time_to_sign"]),
        "median_time_to_contact": median(&k["median_time_to_contact"]),
        "median_time_to_reply": median(&k["median_time_to_reply"]),
        "supervised": k["supervised"],
        "escalated": k["escalated"],
    })
}

/// 004: the director's mailbox.
async fn directors_mailbox(db: &mut TestDb) -> anyhow::Result<()> {
    // The server escalates a mailbox letter left unsigned 5 minutes past its limit.
    let policy = db.dir().join("escalation.json");
    std::fs::write(
        &policy,
        r#"{"channels": {"director_mailbox": [{"clock": "sign", "overdue_minutes": 5}]}}"#,
    )?;
    let s = Serve::start(
        db,
        &[
            "--escalation-policy",
            policy.to_str().context("path")?,
            "--scheduler-every",
            "1s",
        ],
    )
    .await?;
    let director = s.login("director").await?;
    let zhao = s.login("zhao").await?;
    let tokens = [
        ("duty-lin", s.login("duty").await?),
        ("duty-ma", s.login("duty2").await?),
    ];
    // The period: the last two hours (the server runs on this machine's clock).
    let period_from = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )? - 2 * 3600 * 1000;

    // The task force's 7×24 roster: a day and a night shift.
    let week = json!([
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday"
    ]);
    let roster = s
        .call(
            &director,
            "PUT",
            "/api/units/mailbox-taskforce/roster",
            json!({"unit": "mailbox-taskforce", "covers_7x24": true, "shifts": [
                {"name": "白班", "days": week, "start": "08:00", "end": "20:00", "members": ["duty-lin"]},
                {"name": "夜班", "days": week, "start": "20:00", "end": "08:00", "members": ["duty-ma"]}]}),
            200,
        )
        .await?;
    let on_duty = roster["on_duty"][0].as_str().context("someone on duty")?.to_owned();
    let (duty, off) = if on_duty == "duty-lin" {
        (&tokens[0].1, &tokens[1].1)
    } else {
        (&tokens[1].1, &tokens[0].1)
    };

    // A letter: whoever is on duty is told, signs within 10 minutes, contacts within 30.
    let zhou = s.by_phone("13800000004").await?;
    let id = new_id();
    s.call(
        &zhou,
        "POST",
        "/api/petitions",
        json!({"id": id, "channel": "director_mailbox", "category": "help", "title": "网购演唱会门票被骗",
               "body": "在二手平台买演唱会门票，付款后对方拉黑。", "location": {"unit": "village-longtan"},
               "routed_to": "mailbox-taskforce"}),
        201,
    )
    .await?;
    assert!(s.told(duty, &id).await?.contains(&"new_petition".to_owned()));
    assert!(s.told(off, &id).await?.is_empty(), "the shift off duty is not told");
    s.act(duty, &id, json!({"action": "sign", "unit": "mailbox-taskforce"}))
        .await?;
    s.act(
        duty,
        &id,
        json!({"action": "contact", "unit": "mailbox-taskforce", "method": "phone", "note": "已电话联系来信人"}),
    )
    .await?;
    s.act(
        duty,
        &id,
        json!({"action": "transfer", "unit": "mailbox-taskforce", "to": "station-west", "note": "请西河派出所立案核查"}),
    )
    .await?;
    s.act(&zhao, &id, json!({"action": "accept", "unit": "station-west"}))
        .await?;
    // The director marks it for supervision; the station is told.
    s.act(
        &director,
        &id,
        json!({"action": "supervise", "unit": "station-west", "note": "当天办结"}),
    )
    .await?;
    assert!(s.told(&zhao, &id).await?.contains(&"supervised".to_owned()));
    let answered = s
        .act(
            &zhao,
            &id,
            json!({"action": "reply", "unit": "station-west", "text": "已追回票款，嫌疑人已落网。"}),
        )
        .await?;
    let summary = &answered["summary"];
    let at = |f: &str| summary[f].as_i64().unwrap_or(i64::MAX);
    assert!(at("signed_at") - at("submitted_at") <= 10 * 60_000, "{summary}");
    assert!(at("contacted_at") - at("submitted_at") <= 30 * 60_000, "{summary}");
    assert!(at("replied_at") <= at("reply_due"), "within 5 working days: {summary}");
    assert!(
        at("reply_due") - at("submitted_at") >= 5 * 24 * 3600 * 1000,
        "five working days are at least five days: {summary}"
    );
    s.act(
        &zhou,
        &id,
        json!({"action": "follow_up", "rating": 5, "comment": "当天就解决了"}),
    )
    .await?;

    // The demo's unsigned letter: overdue, escalated by the server to the task force's parent,
    // where the director is told.
    let letters = s
        .get(
            &director,
            &format!("/api/petitions?channel=director_mailbox&from={period_from}&limit=200"),
        )
        .await?;
    let unsigned = items(&letters)
        .iter()
        .find(|i| i["title"] == "深夜有人撬车门")
        .and_then(|i| i["doc_id"].as_str())
        .context("the unsigned letter")?
        .to_owned();
    let escalated = s
        .until(&director, &format!("/api/petitions/{unsigned}"), "escalated", |v| {
            v["summary"]["escalations"] == 1
        })
        .await?;
    assert_eq!(escalated["summary"]["lead"], "county", "{escalated}");
    assert!(escalated["summary"]["signed_at"].is_null());
    assert!(s.told(&director, &unsigned).await?.contains(&"escalated".to_owned()));

    // The KPI report for the period against a count by hand from the letters themselves.
    let report = s
        .get(
            &director,
            &format!("/api/reports/kpi?unit=county&channel=director_mailbox&from={period_from}"),
        )
        .await?;
    let end = report["now"].as_i64().context("now")?;
    let letters = s
        .get(
            &director,
            &format!("/api/petitions?channel=director_mailbox&from={period_from}&limit=200"),
        )
        .await?;
    let mut summaries = Vec::new();
    for item in items(&letters) {
        let doc = item["doc_id"].as_str().context("doc_id")?;
        summaries.push(s.get(&director, &format!("/api/petitions/{doc}")).await?["summary"].clone());
    }
    assert_eq!(summaries.len(), 3, "two demo letters and this one: {letters}");
    let by_hand = hand_count(&summaries, end);
    assert_eq!(as_reported(&report["total"]), by_hand, "{report}");
    // What the three letters came to, spelled out.
    assert_eq!(by_hand["response_rate"], json!([2, 3]));
    assert_eq!(by_hand["supervised"], 2, "this one and the demo's lead");
    assert_eq!(by_hand["escalated"], 1);
    assert_eq!(by_hand["rated"], 1);
    assert_eq!(report["total"]["response_rate"]["clock"], "server_receipt");
    s.stop().await
}

backend_tests!(
    chief_line,
    household_line,
    village_group,
    party_group_room,
    directors_mailbox
);
