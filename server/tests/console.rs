//! The staff console over HTTP, as a browser without JavaScript sees it: sign-in with the
//! password and one-time-code flows, session cookies, CSRF, security headers, embedded
//! assets, the queue and a petition's actions on the demo county. The same flows in a real
//! browser are in the workspace `tests` crate (`console_browser`).

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use lianxin_server::auth::SmsSender;
use lianxin_server::testing::{TestDb, TestServer, WebhookRecorder};
use reqwest::header::{HeaderMap, SET_COOKIE};

/// A browser without JavaScript: keeps cookies, follows no redirects (tests look at them).
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        Browser {
            base: server.url(""),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, r: reqwest::Response) -> anyhow::Result<Page> {
        for c in r.headers().get_all(SET_COOKIE) {
            let c = c.to_str()?;
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').context("cookie pair")?;
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Ok(Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await?,
        })
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<Page> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await?;
        self.finish(r).await
    }

    /// Posts a form with the browser's CSRF token added, as every console form does.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Page> {
        let csrf = self.cookies.get("lx_csrf").cloned().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("_csrf", &csrf));
        self.post_raw(path, &all).await
    }

    async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Page> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(fields)
            .send()
            .await?;
        self.finish(r).await
    }

    async fn sign_in(&mut self, login: &str) -> anyhow::Result<()> {
        self.get("/login").await?;
        let page = self
            .post(
                "/login",
                &[
                    ("login", login),
                    ("password", lianxin_demo::DEMO_PASSWORD),
                    ("next", "/queue"),
                ],
            )
            .await?;
        ensure!(
            page.status == 303 && page.location() == "/queue",
            "sign-in: {} {}",
            page.status,
            page.body
        );
        Ok(())
    }
}

async fn demo(db: &TestDb, sms: SmsSender) -> anyhow::Result<TestServer> {
    let server = TestServer::start(db.storage.clone(), sms).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(server)
}

/// The document id of the demo petition with this title, from the queue page's links.
fn petition_link(queue: &str, title: &str) -> anyhow::Result<String> {
    let at = queue
        .find(&format!(">{title}</a>"))
        .with_context(|| format!("{title} not listed"))?;
    let href = queue[..at].rfind("href=\"/petitions/").context("link")?;
    let start = href + "href=\"".len();
    let end = start + queue[start..].find('"').context("link end")?;
    Ok(queue[start..end].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_page_assets_and_headers() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut b = Browser::new(&server);

    let home = b.get("/").await?;
    ensure!(home.status == 303 && home.location() == "/login", "{}", home.location());
    let login = b.get("/login?next=%2Fqueue").await?;
    ensure!(login.status == 200, "{}", login.status);
    ensure!(login.body.contains("工作台登录") && login.body.contains("name=\"next\" value=\"/queue\""));
    let csp = login.headers["content-security-policy"].to_str()?;
    ensure!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    ensure!(login.headers["cache-control"] == "no-store");
    ensure!(
        b.cookies.contains_key("lx_csrf"),
        "a CSRF cookie is issued before sign-in"
    );

    // Every asset the page names is served, hashed, compressed and cacheable for good.
    let mut seen = 0;
    for part in login.body.split("/assets/").skip(1) {
        let path = format!("/assets/{}", &part[..part.find('"').context("quote")?]);
        for (accept, coding) in [("br, gzip", Some("br")), ("gzip", Some("gzip")), ("identity", None)] {
            let r = b
                .client
                .get(format!("{}{path}", b.base))
                .header("accept-encoding", accept)
                .send()
                .await?;
            ensure!(r.status() == 200, "{path}: {}", r.status());
            ensure!(
                r.headers().get("content-encoding").and_then(|v| v.to_str().ok()) == coding,
                "{path} with {accept}"
            );
            ensure!(r.headers()["cache-control"].to_str()?.contains("immutable"));
            let etag = r.headers()["etag"].clone();
            let again = b
                .client
                .get(format!("{}{path}", b.base))
                .header("if-none-match", etag)
                .send()
                .await?;
            ensure!(again.status() == 304, "{path} revalidates");
        }
        seen += 1;
    }
    ensure!(
        seen == 3,
        "the page loads its stylesheet, htmx and the console script ({seen})"
    );
    ensure!(
        b.get("/assets/console.0000.css").await?.status == 404,
        "a stale hash is not served"
    );
    ensure!(b.get("/no/such/page").await?.status == 404);
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_the_csrf_token_and_the_same_site() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut b = Browser::new(&server);
    b.get("/login").await?;
    let password = lianxin_demo::DEMO_PASSWORD;

    let missing = b
        .post_raw("/login", &[("login", "duty"), ("password", password)])
        .await?;
    ensure!(
        missing.status == 403 && missing.body.contains("安全校验"),
        "{}",
        missing.status
    );
    let wrong = b
        .post_raw(
            "/login",
            &[("login", "duty"), ("password", password), ("_csrf", "forged")],
        )
        .await?;
    ensure!(wrong.status == 403, "{}", wrong.status);
    ensure!(!b.cookies.contains_key("lx_at"), "no session from a forged form");

    // A signed-in browser's actions need the token too.
    b.sign_in("chief").await?;
    let queue = b.get("/queue").await?;
    let link = petition_link(&queue.body, "户口本丢了怎么补办")?;
    let forged = b
        .post_raw(&format!("{link}/act"), &[("action", "sign"), ("unit", "station-east")])
        .await?;
    ensure!(forged.status == 403, "{}", forged.status);
    let cross = b
        .client
        .post(format!("{}{link}/act", b.base))
        .header("cookie", b.cookie_header())
        .header("origin", "http://evil.example")
        .form(&[("action", "sign"), ("_csrf", b.cookies["lx_csrf"].as_str())])
        .send()
        .await?;
    ensure!(
        cross.status() == 403,
        "a post from another site is refused: {}",
        cross.status()
    );
    let still = b.get(&link).await?;
    ensure!(!still.body.contains("<strong>签收</strong>"), "nothing was signed");
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_officer_signs_dispatches_and_is_told_a_refusal_in_words() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut b = Browser::new(&server);
    b.get("/login").await?;
    let wrong = b
        .post(
            "/login",
            &[("login", "duty"), ("password", "not-it"), ("next", "/queue")],
        )
        .await?;
    ensure!(
        wrong.status == 401 && wrong.body.contains("账号或密码不正确"),
        "{}",
        wrong.status
    );
    b.sign_in("chief").await?;
    let at = b.cookies.get("lx_at").context("access cookie")?;
    ensure!(!at.is_empty() && b.cookies.contains_key("lx_rt"));

    let queue = b.get("/queue").await?;
    ensure!(queue.status == 200, "{}", queue.status);
    ensure!(queue.body.contains("户口本丢了怎么补办") && queue.body.contains("待签收"));
    ensure!(
        queue.body.contains("c-bad") && queue.body.contains("签收已超时"),
        "the unsigned letter's clock is overdue, in words and colour"
    );
    let filtered = b.get("/queue?status=closed").await?;
    ensure!(
        filtered.status == 200 && !filtered.body.contains("户口本丢了怎么补办"),
        "filters reach the API"
    );

    let link = petition_link(&queue.body, "户口本丢了怎么补办")?;
    let page = b.get(&link).await?;
    ensure!(
        page.status == 200 && page.body.contains("家里的户口本丢了"),
        "{}",
        page.status
    );

    // Sign, then dispatch with assisting units.
    let signed = b
        .post(&format!("{link}/act"), &[("action", "sign"), ("unit", "station-east")])
        .await?;
    ensure!(
        signed.status == 303 && signed.location() == link,
        "{} {}",
        signed.status,
        signed.body
    );
    let sent = b
        .post(
            &format!("{link}/act"),
            &[
                ("action", "transfer"),
                ("unit", "station-east"),
                ("to", "village-xiaxi"),
                ("assist", "water"),
                ("assist", "station-west"),
                ("note", "请村委主办"),
            ],
        )
        .await?;
    ensure!(sent.status == 303, "{} {}", sent.status, sent.body);
    let page = b.get(&link).await?;
    ensure!(page.body.contains("已派单"), "status in words");
    ensure!(
        page.body.contains("派给下溪村主办，青山县水利局、西河派出所协办"),
        "the dispatch in the timeline"
    );

    // Supervision is a leader's: an officer who tries is told the rule in words.
    let mut li = Browser::new(&server);
    li.sign_in("li").await?;
    let refused = li
        .post(
            &format!("{link}/act"),
            &[("action", "supervise"), ("unit", "station-east"), ("note", "快办")],
        )
        .await?;
    ensure!(refused.status == 403, "{}", refused.status);
    ensure!(
        refused.body.contains("操作未执行") && refused.body.contains("role-required"),
        "{}",
        refused.body
    );
    ensure!(refused.body.contains("需要您没有的角色"));
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_renew_and_an_ended_one_goes_back_to_sign_in() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut b = Browser::new(&server);
    b.sign_in("duty").await?;
    let first = b.cookies["lx_at"].clone();

    // The access token runs out after 15 minutes: the refresh token renews it in passing.
    server.clock.advance_secs(16 * 60);
    let queue = b.get("/queue?status=submitted").await?;
    ensure!(queue.status == 200, "{} {}", queue.status, queue.location());
    ensure!(b.cookies["lx_at"] != first, "a new access token was set");
    // Two requests with the same spent refresh token (a page and its stream) both succeed.
    let mut twin = Browser::new(&server);
    twin.cookies = b.cookies.clone();
    server.clock.advance_secs(16 * 60);
    let (one, two) = (b.get("/queue").await?, twin.get("/queue").await?);
    ensure!(one.status == 200 && two.status == 200, "{} {}", one.status, two.status);

    // The live stream takes the session cookie.
    let stream = b
        .client
        .get(format!("{}/api/inbox/stream?live=true", b.base))
        .header("cookie", b.cookie_header())
        .send()
        .await?;
    ensure!(stream.status() == 200, "{}", stream.status());
    ensure!(
        stream.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    drop(stream);
    // Other API routes do not.
    let api = b
        .client
        .get(format!("{}/api/petitions", b.base))
        .header("cookie", b.cookie_header())
        .send()
        .await?;
    ensure!(api.status() == 401, "{}", api.status());

    // Thirty-one days later the refresh token is gone too: sign-in, remembering the page.
    server.clock.advance_secs(31 * 24 * 3600);
    let gone = b.get("/queue?status=submitted").await?;
    ensure!(gone.status == 303, "{}", gone.status);
    ensure!(
        gone.location() == "/login?next=%2Fqueue%3Fstatus%3Dsubmitted",
        "{}",
        gone.location()
    );
    ensure!(!b.cookies.contains_key("lx_at"), "the dead cookies are cleared");
    b.get("/login").await?;
    let back = b
        .post(
            "/login",
            &[
                ("login", "duty"),
                ("password", lianxin_demo::DEMO_PASSWORD),
                ("next", "/queue?status=submitted"),
            ],
        )
        .await?;
    ensure!(back.location() == "/queue?status=submitted", "{}", back.location());
    let away = b
        .post(
            "/login",
            &[
                ("login", "duty"),
                ("password", lianxin_demo::DEMO_PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await?;
    ensure!(
        away.location() == "/",
        "never sent to another site: {}",
        away.location()
    );

    // Sign-out ends the session on the server: the old cookies are worth nothing.
    let kept = b.cookies.clone();
    let out = b.post("/logout", &[]).await?;
    ensure!(out.status == 303 && out.location() == "/login");
    let mut replay = Browser::new(&server);
    replay.cookies = kept;
    ensure!(
        replay.get("/queue").await?.status == 303,
        "a signed-out session cannot be replayed"
    );
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_code_sign_in() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let sms = WebhookRecorder::start().await?;
    let server = demo(&db, sms.sender()?).await?;
    let mut b = Browser::new(&server);
    b.get("/login").await?;
    let sent = b
        .post("/login/code", &[("phone", "13800000001"), ("next", "/queue")])
        .await?;
    ensure!(
        sent.status == 200 && sent.body.contains("验证码已发送"),
        "{}",
        sent.status
    );
    let code = sms.last_code_for("13800000001").context("a code was sent")?;
    let bad = b
        .post(
            "/login/verify",
            &[("phone", "13800000001"), ("code", "000000"), ("next", "/queue")],
        )
        .await?;
    ensure!(bad.status == 401 && bad.body.contains("验证码不正确"), "{}", bad.status);
    let ok = b
        .post(
            "/login/verify",
            &[("phone", "13800000001"), ("code", &code), ("next", "/queue")],
        )
        .await?;
    ensure!(
        ok.status == 303 && ok.location() == "/queue",
        "{} {}",
        ok.status,
        ok.body
    );
    ensure!(b.get("/queue").await?.status == 200);
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

/// The queue page's first load, with a full page of 50 petitions: the page and every asset it
/// names, as a browser that takes brotli and gzip receives them, is at most 100 KB; and every
/// URL it loads is on this server (no page waits on another).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_first_load_budget() -> anyhow::Result<()> {
    const BUDGET: usize = 100 * 1024;
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let resident = server
        .state
        .auth
        .mint_access_token(&sync_core::UserId::new("res-liu")?, 3_600_000)
        .await?;
    for i in 0..55 {
        let id = sync_core::repo_protocol::DocumentId::from_bytes(rand::random());
        let (status, body) = server
            .post(
                "/api/petitions",
                Some(&resident),
                &serde_json::json!({
                    "id": id.to_string(), "channel": "director_mailbox", "category": "help",
                    "title": format!("第{i}封来信：村道塌方，车辆无法通行"),
                    "body": "昨夜大雨，村口到镇上的道路塌了一半，孩子上学要绕很远的山路。",
                    "location": { "unit": "village-xiaxi" }, "routed_to": "mailbox-taskforce",
                }),
            )
            .await?;
        ensure!(status == 201, "{status} {body}");
    }
    let mut b = Browser::new(&server);
    b.sign_in("duty").await?;
    let fetch = |path: String, cookies: String| {
        let client = b.client.clone();
        let url = format!("{}{path}", b.base);
        async move {
            let r = client
                .get(url)
                .header("cookie", cookies)
                .header("accept-encoding", "br, gzip")
                .send()
                .await?;
            ensure!(r.status() == 200, "{path}: {}", r.status());
            let coding = r
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            Ok::<_, anyhow::Error>((coding, r.bytes().await?.to_vec()))
        }
    };
    let (coding, page) = fetch("/queue".into(), b.cookie_header()).await?;
    ensure!(coding.as_deref() == Some("gzip"), "the page is compressed: {coding:?}");
    let html = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(&page[..]).read_to_string(&mut s)?;
        s
    };
    ensure!(html.matches("<article").count() == 50, "a full page of petitions");
    let mut total = page.len();
    let mut assets = 0;
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = &part[..part.find('"').context("quote")?];
            ensure!(
                url.starts_with('/') && !url.starts_with("//"),
                "{url} is not on this server"
            );
            if url.starts_with("/assets/") {
                let (coding, bytes) = fetch(url.to_owned(), String::new()).await?;
                ensure!(coding.as_deref() == Some("br"), "{url} is precompressed: {coding:?}");
                total += bytes.len();
                assets += 1;
            }
        }
    }
    println!(
        "console_queue_first_load_bytes={total} page_bytes={} assets={assets} budget_bytes={BUDGET}",
        page.len()
    );
    ensure!(assets == 3, "stylesheet, htmx, console script: {assets}");
    ensure!(
        total <= BUDGET,
        "the queue's first load is {total} bytes, over the {BUDGET}-byte budget"
    );
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_roster_week_grid_and_editor() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut chief = Browser::new(&server);
    chief.sign_in("chief").await?;
    let empty = chief.get("/roster?unit=station-east").await?;
    ensure!(
        empty.status == 200 && empty.body.contains("还没有值班表"),
        "{}",
        empty.status
    );

    let week = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let mut fields: Vec<(&str, &str)> = vec![
        ("covers_7x24", "1"),
        ("name_0", "白班"),
        ("start_0", "08:00"),
        ("end_0", "20:00"),
        ("members_0", "officer-li"),
        ("name_1", "夜班"),
        ("start_1", "20:00"),
        ("end_1", "08:00"),
        ("members_1", "officer-wang"),
    ];
    fields.extend(week.iter().flat_map(|d| [("days_0", *d), ("days_1", *d)]));
    let saved = chief.post("/roster/station-east", &fields).await?;
    ensure!(
        saved.status == 303 && saved.location() == "/roster?unit=station-east",
        "{} {}",
        saved.status,
        saved.body
    );
    let page = chief.get("/roster?unit=station-east").await?;
    ensure!(page.body.contains("现在值班："), "who is on duty now");
    ensure!(
        page.body.matches(">李警官</td>").count() == 7 * 12,
        "the day shift fills 12 hours a day"
    );
    ensure!(
        page.body.matches(">王警官</td>").count() == 7 * 12,
        "the night shift the other 12"
    );
    ensure!(!page.body.contains("uncovered"), "no gap in a 7x24 roster");
    ensure!(
        page.body.contains("value=\"白班\"") && page.body.contains("value=\"officer-wang\""),
        "the form holds the shifts"
    );

    // A 7x24 promise with the nights left open is refused, with the reason.
    let mut gap = fields.clone();
    gap.retain(|(k, _)| !k.ends_with("_1"));
    let refused = chief.post("/roster/station-east", &gap).await?;
    ensure!(
        refused.status == 400 && refused.body.contains("值班表有误"),
        "{} {}",
        refused.status,
        refused.body
    );
    // An officer may read the roster but not change it.
    let mut li = Browser::new(&server);
    li.sign_in("li").await?;
    ensure!(li.get("/roster?unit=station-east").await?.body.contains(">王警官</td>"));
    let denied = li.post("/roster/station-east", &fields).await?;
    ensure!(
        denied.status == 403 && denied.body.contains("不能修改"),
        "{}",
        denied.status
    );
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_lists_notifications_with_links_and_marks_them_read() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut duty = Browser::new(&server);
    duty.sign_in("duty").await?;
    let resident = server
        .state
        .auth
        .mint_access_token(&sync_core::UserId::new("res-liu")?, 3_600_000)
        .await?;
    let id = sync_core::repo_protocol::DocumentId::from_bytes(rand::random());
    let (status, body) = server
        .post(
            "/api/petitions",
            Some(&resident),
            &serde_json::json!({
                "id": id.to_string(), "channel": "director_mailbox", "category": "help",
                "title": "山洪冲坏了便桥", "body": "村里的便桥被冲坏了，老人孩子过不了河。",
                "location": { "unit": "village-xiaxi" }, "routed_to": "mailbox-taskforce",
            }),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    let mut inbox = String::new();
    for _ in 0..50 {
        inbox = duty.get("/inbox").await?.body;
        if inbox.contains("新诉求") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(inbox.contains("新诉求"), "the new letter's notification is listed");
    ensure!(
        inbox.contains(&format!("href=\"/petitions/{id}\"")),
        "and links to the letter"
    );
    let cursor = {
        let at = inbox.find("name=\"cursor\" value=\"").context("read form")? + 21;
        inbox[at..at + inbox[at..].find('"').context("end")?].to_owned()
    };
    let read = duty.post("/inbox/read", &[("cursor", &cursor)]).await?;
    ensure!(read.status == 303 && read.location() == "/inbox", "{}", read.status);
    ensure!(
        duty.get("/inbox").await?.body.contains("没有未读消息"),
        "acknowledged items are gone"
    );
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

/// The demo's village room, by its storage id.
async fn village_room(server: &TestServer) -> anyhow::Result<String> {
    let storage = server.state.docs.storage();
    for d in storage.documents().docs_changed_since(0, 1000).await? {
        if let Some(room) = storage.projections().room(&d.doc_id).await?
            && room.kind == "village_room"
        {
            return Ok(d.doc_id);
        }
    }
    anyhow::bail!("no village room in the demo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_read_post_with_mention_and_reply() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let room = village_room(&server).await?;
    let mut li = Browser::new(&server);
    li.sign_in("li").await?;
    let page = li.get(&format!("/rooms/{room}")).await?;
    ensure!(
        page.status == 200 && page.body.contains("@所有人"),
        "the demo's @all notice: {}",
        page.status
    );
    let first = {
        let at = page.body.find("?reply=").context("a reply link")? + 7;
        page.body[at..at + page.body[at..].find('#').context("end")?].to_owned()
    };
    let replying = li.get(&format!("/rooms/{room}?reply={first}")).await?;
    ensure!(
        replying.body.contains("name=\"reply_to\""),
        "the form answers that message"
    );
    let posted = li
        .post(
            &format!("/rooms/{room}/post"),
            &[("text", "@chief-east 这条提醒请所长再看一下"), ("reply_to", &first)],
        )
        .await?;
    ensure!(posted.status == 303, "{} {}", posted.status, posted.body);
    let page = li.get(&format!("/rooms/{room}")).await?;
    ensure!(
        page.body.contains("这条提醒请所长再看一下") && page.body.contains("@黄所长"),
        "posted with its mention"
    );
    ensure!(page.body.contains("回复 李警官："), "shown as a reply");

    // The chief hears of it in 消息, with a link to the room.
    let mut chief = Browser::new(&server);
    chief.sign_in("chief").await?;
    let mut inbox = String::new();
    for _ in 0..50 {
        inbox = chief.get("/inbox").await?.body;
        if inbox.contains("有人@我") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(
        inbox.contains("有人@我") && inbox.contains(&format!("href=\"/rooms/{room}\"")),
        "{inbox}"
    );

    // Someone outside the room sees no room at all.
    let mut zhao = Browser::new(&server);
    zhao.sign_in("zhao").await?;
    ensure!(zhao.get(&format!("/rooms/{room}")).await?.status == 404);
    let refused = zhao.post(&format!("/rooms/{room}/post"), &[("text", "路过")]).await?;
    ensure!(refused.status == 404, "{}", refused.status);
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notice_receipt_report_lists_households_not_reached() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let storage = server.state.docs.storage();
    let mut notice = None;
    for d in storage.documents().docs_changed_since(0, 1000).await? {
        if !storage.projections().notice_deliveries(&d.doc_id).await?.is_empty() {
            notice = Some(d.doc_id);
        }
    }
    let notice = notice.context("the demo's notice")?;
    let mut li = Browser::new(&server);
    li.sign_in("li").await?;
    let page = li.get(&format!("/notices/{notice}")).await?;
    ensure!(page.status == 200 && page.body.contains("通知回执"), "{}", page.status);
    let report = storage.projections().notice_deliveries(&notice).await?;
    let unreached = report
        .iter()
        .filter(|r| r.delivered_at.is_none() && r.read_at.is_none() && r.forwarded_at.is_none())
        .count();
    ensure!(
        unreached > 0 && unreached < report.len(),
        "the demo notice reached some households, not all"
    );
    ensure!(
        page.body.contains(&format!("户数 {}", report.len())),
        "the count of households"
    );
    ensure!(
        page.body.contains(&format!("未送达 {unreached}")),
        "the count not reached"
    );
    ensure!(
        page.body.matches("class=\"unreached\"").count() == unreached,
        "one door-visit row per household not reached"
    );
    ensure!(
        page.body.matches("<tr").count() == report.len() + 1,
        "every household has a row"
    );
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

/// The number in the `received` cell of a KPI table row (`<tr id="{row}">`).
fn received_in(page: &str, row: &str) -> Option<u32> {
    let at = page.find(&format!("<tr id=\"{row}\""))?;
    let rest = &page[at..];
    let cell = rest.find("class=\"received\">")? + "class=\"received\">".len();
    rest[cell..cell + rest[cell..].find('<')?].parse().ok()
}

/// A resident writes a letter to the director's mailbox through the JSON API.
async fn letter(server: &TestServer, title: &str) -> anyhow::Result<String> {
    let token = server
        .state
        .auth
        .mint_access_token(&sync_core::UserId::new("res-liu")?, 3_600_000)
        .await?;
    let id = sync_core::repo_protocol::DocumentId::from_bytes(rand::random());
    let (status, body) = server
        .post(
            "/api/petitions",
            Some(&token),
            &serde_json::json!({
                "id": id.to_string(), "channel": "director_mailbox", "category": "help",
                "title": title, "body": "村口路灯坏了一个月，晚上看不见路。",
                "contact": "13800000002", "location": { "unit": "village-xiaxi" },
                "routed_to": "mailbox-taskforce",
            }),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    Ok(format!("/petitions/{}", body["id"].as_str().context("id")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_counts_a_dispatched_letter_and_exports_csv() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut director = Browser::new(&server);
    director.sign_in("director").await?;
    let before = director.get("/dashboard").await?;
    ensure!(before.status == 200, "{} {}", before.status, before.body);
    ensure!(
        before.body.contains("<svg class=\"chart\"") && before.body.contains("各单位指标"),
        "charts and tables"
    );
    let east_before = received_in(&before.body, "u-station-east").unwrap_or(0);
    let total_before = received_in(&before.body, "total").context("the total row")?;

    // The duty officer signs a new letter and dispatches it to the east station.
    let link = letter(&server, "村口路灯坏了").await?;
    let mut duty = Browser::new(&server);
    duty.sign_in("duty").await?;
    for fields in [
        vec![("action", "sign"), ("unit", "mailbox-taskforce")],
        vec![
            ("action", "transfer"),
            ("unit", "mailbox-taskforce"),
            ("to", "station-east"),
            ("assist", "water"),
        ],
    ] {
        let r = duty.post(&format!("{link}/act"), &fields).await?;
        ensure!(r.status == 303, "{} {}", r.status, r.body);
    }
    let after = director.get("/dashboard").await?;
    ensure!(
        received_in(&after.body, "u-station-east") == Some(east_before + 1),
        "the east station's row counts the letter: {:?} after {east_before}",
        received_in(&after.body, "u-station-east")
    );
    ensure!(received_in(&after.body, "total") == Some(total_before + 1));

    // Supervised by the director: the supervised list names it.
    let r = director
        .post(
            &format!("{link}/act"),
            &[
                ("action", "supervise"),
                ("unit", "station-east"),
                ("note", "一周内修好"),
            ],
        )
        .await?;
    ensure!(r.status == 303, "{} {}", r.status, r.body);
    let page = director.get("/dashboard").await?;
    let supervised = &page.body[page.body.find("id=\"supervised-list\"").context("list")?..];
    let supervised = &supervised[..supervised.find("</section>").context("end")?];
    ensure!(supervised.contains("村口路灯坏了"), "{supervised}");

    // Category and unit filters reach the API; a bad date is refused in words.
    let help = director.get("/dashboard?unit=county&category=complaint").await?;
    ensure!(help.status == 200 && received_in(&help.body, "c-help").is_none());
    let bad = director.get("/dashboard?from=yesterday").await?;
    ensure!(bad.status == 400 && bad.body.contains("不是有效日期"), "{}", bad.status);

    let csv = director.get("/dashboard/kpi.csv?unit=county&period=month").await?;
    ensure!(csv.status == 200, "{}", csv.status);
    ensure!(
        csv.headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/csv")),
        "a CSV file"
    );
    ensure!(
        csv.body.contains("station-east") && csv.body.lines().count() >= 2,
        "{}",
        csv.body
    );

    // A unit outside the reader's jurisdiction is not shown.
    let mut zhao = Browser::new(&server);
    zhao.sign_in("zhao").await?;
    ensure!(zhao.get("/dashboard?unit=station-east").await?.status == 404);
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_filters_by_channel_and_sorts_most_urgent_first() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut chief = Browser::new(&server);
    chief.sign_in("chief").await?;
    let newest = chief.get("/queue").await?.body;
    let urgent = chief.get("/queue?sort=urgent").await?.body;
    let titles = |html: &str| -> Vec<String> {
        html.split("<h2><a href=\"/petitions/")
            .skip(1)
            .filter_map(|s| {
                let start = s.find('>')? + 1;
                Some(s[start..start + s[start..].find("</a>")?].to_owned())
            })
            .collect()
    };
    let (n, u) = (titles(&newest), titles(&urgent));
    ensure!(n.len() >= 2 && n.len() == u.len(), "{n:?} {u:?}");
    let mut sorted_n = n.clone();
    let mut sorted_u = u.clone();
    sorted_n.sort();
    sorted_u.sort();
    ensure!(sorted_n == sorted_u, "the same petitions in another order");
    // Most urgent first: by the earliest unmet deadline the API reports, none last.
    let token = server
        .state
        .auth
        .mint_access_token(&sync_core::UserId::new("chief-east")?, 3_600_000)
        .await?;
    let (status, listed) = server.get("/api/petitions?limit=200", Some(&token)).await?;
    ensure!(status == 200, "{status} {listed}");
    let mut expected: Vec<(i64, String)> = listed["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|i| {
            (
                i["next_due"].as_i64().unwrap_or(i64::MAX),
                i["title"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    expected.sort_by_key(|(due, _)| *due);
    let expected: Vec<String> = expected.into_iter().map(|(_, t)| t).collect();
    ensure!(u == expected, "{u:?} is not {expected:?}");
    ensure!(
        u != n || expected == n,
        "the order changed or was already the urgent one"
    );
    ensure!(urgent.contains("value=\"urgent\" selected"), "the choice is kept");

    let walk_in = chief.get("/queue?channel=walk_in").await?.body;
    ensure!(
        !walk_in.contains("户口本丢了怎么补办") || newest.contains("来访"),
        "the channel filter reaches the API"
    );
    let bad = chief.get("/queue?channel=pigeon").await?;
    ensure!(bad.status == 400, "{}", bad.status);
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_compose_to_an_audience_and_open_the_receipt_report() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut li = Browser::new(&server);
    li.sign_in("li").await?;
    let page = li.get("/notices").await?;
    ensure!(page.status == 200 && page.body.contains("发通知"), "{}", page.status);
    let sent = li
        .post(
            "/notices",
            &[
                ("kind", "anti_fraud"),
                ("unit", "station-east"),
                ("title", "谨防冒充客服退款诈骗"),
                ("body", "凡是要求转账到“安全账户”的都是诈骗。"),
                ("units", "village-xiaxi"),
            ],
        )
        .await?;
    ensure!(sent.status == 303, "{} {}", sent.status, sent.body);
    let report = li.get(sent.location()).await?;
    ensure!(
        report.status == 200 && report.body.contains("谨防冒充客服退款诈骗") && report.body.contains("户数 "),
        "{}",
        report.status
    );
    ensure!(report.body.contains("反诈提醒"));
    let list = li.get("/notices").await?;
    ensure!(list.body.contains(&format!("href=\"{}\"", sent.location())), "listed");

    // No audience: refused in words, the draft kept.
    let empty = li
        .post(
            "/notices",
            &[
                ("kind", "general"),
                ("unit", "station-east"),
                ("title", "无人可收"),
                ("body", "空"),
            ],
        )
        .await?;
    ensure!(
        empty.status == 400 && empty.body.contains("没有发出"),
        "{}",
        empty.status
    );
    ensure!(empty.body.contains("value=\"无人可收\""), "the draft is kept");

    // Issuing for a unit the reader does not work for is refused by its rule.
    let other = li
        .post(
            "/notices",
            &[
                ("kind", "general"),
                ("unit", "station-west"),
                ("title", "越权通知"),
                ("body", "不该发出"),
                ("units", "village-baishi"),
            ],
        )
        .await?;
    ensure!(
        other.status == 403 && other.body.contains("没有发出"),
        "{} {}",
        other.status,
        other.body
    );
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_create_appeal_pin_redact_and_raise_a_petition() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let village = village_room(&server).await?;
    let mut li = Browser::new(&server);
    li.sign_in("li").await?;
    let list = li.get("/rooms").await?;
    ensure!(
        list.status == 200 && list.body.contains(&format!("/rooms/{village}")),
        "{}",
        list.status
    );

    // A new room, then an appeal to it and the village room at once.
    let made = li
        .post(
            "/rooms",
            &[
                ("name", "下溪村防汛群"),
                ("kind", "officer_group"),
                ("unit", "village-xiaxi"),
                ("members", "officer-wang"),
            ],
        )
        .await?;
    ensure!(made.status == 303, "{} {}", made.status, made.body);
    let room = made.location().trim_start_matches("/rooms/").to_owned();
    let page = li.get(made.location()).await?;
    ensure!(page.status == 200 && page.body.contains("下溪村防汛群") && page.body.contains("2 位成员"));
    let appeal = li
        .post(
            "/appeals",
            &[
                ("text", "今晚有暴雨，请低洼处住户转移 @all"),
                ("rooms", &room),
                ("rooms", &village),
            ],
        )
        .await?;
    ensure!(appeal.status == 303, "{} {}", appeal.status, appeal.body);
    let sent = li.get(appeal.location()).await?;
    ensure!(sent.body.contains("联合呼吁已发到 2 个群"), "{}", sent.body);
    for r in [&room, &village] {
        ensure!(
            li.get(&format!("/rooms/{r}")).await?.body.contains("今晚有暴雨"),
            "in {r}"
        );
    }

    // Post, pin, redact with a reason.
    li.post(&format!("/rooms/{room}/post"), &[("text", "沙袋放在村委会门口")])
        .await?;
    let page = li.get(&format!("/rooms/{room}")).await?.body;
    let entry = |html: &str, text: &str| -> anyhow::Result<String> {
        let at = html.find(text).context("message")?;
        let li_at = html[..at].rfind("id=\"m-").context("id")? + 6;
        Ok(html[li_at..li_at + html[li_at..].find('"').context("end")?].to_owned())
    };
    let sandbags = entry(&page, "沙袋放在村委会门口")?;
    let pinned = li
        .post(&format!("/rooms/{room}/pin"), &[("message", &sandbags), ("on", "1")])
        .await?;
    ensure!(pinned.status == 303, "{} {}", pinned.status, pinned.body);
    ensure!(
        li.get(&format!("/rooms/{room}")).await?.body.contains(" · 置顶"),
        "pinned"
    );
    let redacted = li
        .post(
            &format!("/rooms/{room}/redact"),
            &[("message", &sandbags), ("reason", "地点写错了")],
        )
        .await?;
    ensure!(redacted.status == 303, "{} {}", redacted.status, redacted.body);
    let page = li.get(&format!("/rooms/{room}")).await?.body;
    ensure!(
        page.contains("撤回：地点写错了") && !page.contains("沙袋放在村委会门口"),
        "{page}"
    );

    // A resident's message in the village room raised as a petition, linked both ways.
    let vpage = li.get(&format!("/rooms/{village}")).await?.body;
    let first = {
        let at = vpage.find("id=\"raise-").context("a message to raise")? + 10;
        vpage[at..at + vpage[at..].find('"').context("end")?].to_owned()
    };
    let raised = li
        .post(
            &format!("/rooms/{village}/raise"),
            &[
                ("message", &first),
                ("title", "群里反映的问题"),
                ("category", "help"),
                ("routed_to", "station-east"),
            ],
        )
        .await?;
    ensure!(
        raised.status == 303 && raised.location().starts_with("/petitions/"),
        "{} {}",
        raised.status,
        raised.body
    );
    ensure!(li.get(raised.location()).await?.body.contains("群里反映的问题"));
    ensure!(
        li.get(&format!("/rooms/{village}"))
            .await?
            .body
            .contains(&format!("href=\"{}\"", raised.location())),
        "the room links the petition"
    );

    // An officer of another station cannot see the room, let alone pin in it.
    let mut zhao = Browser::new(&server);
    zhao.sign_in("zhao").await?;
    let refused = zhao
        .post(&format!("/rooms/{room}/pin"), &[("message", &sandbags), ("on", "0")])
        .await?;
    ensure!(refused.status == 404, "{} {}", refused.status, refused.body);
    ensure!(!zhao.get("/rooms").await?.body.contains(&room), "not listed either");
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_shows_coverage_per_village_and_officer() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let mut chief = Browser::new(&server);
    chief.sign_in("chief").await?;
    let page = chief.get("/directory?unit=station-east").await?;
    ensure!(page.status == 200, "{} {}", page.status, page.body);
    ensure!(
        page.body.contains("id=\"v-village-shangping\"") && page.body.contains("id=\"v-village-xiaxi\""),
        "a row per village of the station"
    );
    ensure!(!page.body.contains("id=\"v-village-baishi\""), "not the west station's");
    ensure!(page.body.contains("id=\"coverage-officers\""));
    let report = lianxin_server::api::directory::report(
        &server.state,
        &server
            .state
            .auth
            .principal(&sync_core::UserId::new("chief-east")?)
            .await?,
        "station-east",
    )
    .await?;
    ensure!(
        page.body.contains(&format!(
            "能联系上 {}/{} 户",
            report.total.reachable, report.total.households
        )),
        "the API's totals"
    );

    // A village's households, and one added through the form.
    let v = chief.get("/directory?unit=station-east&village=village-xiaxi").await?;
    ensure!(v.status == 200 && v.body.contains("id=\"households\""), "{}", v.status);
    let saved = chief
        .post(
            "/directory/village-xiaxi/households",
            &[
                ("unit", "station-east"),
                ("household", "hh-xiaxi-099"),
                ("name", "新来的孙家"),
                ("phone", "13800000099"),
            ],
        )
        .await?;
    ensure!(saved.status == 303, "{} {}", saved.status, saved.body);
    let v = chief.get(saved.location()).await?;
    ensure!(v.body.contains("新来的孙家") && v.body.contains("13800000099"));
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_edits_units_people_and_memberships() -> anyhow::Result<()> {
    lianxin_server::testing::run_test(TestDb::sqlite().await?, admin_flow).await
}

/// The same on PostgreSQL (the staff list is a query of its own on each backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_edits_units_people_and_memberships_postgres() -> anyhow::Result<()> {
    match TestDb::postgres().await? {
        Some(db) => lianxin_server::testing::run_test(db, admin_flow).await,
        None => {
            lianxin_server::testing::postgres_skipped("console::admin_edits_units_people_and_memberships_postgres");
            Ok(())
        }
    }
}

async fn admin_flow(db: &mut TestDb) -> anyhow::Result<()> {
    let server = demo(db, SmsSender::DevLog).await?;
    let mut admin = Browser::new(&server);
    admin.sign_in("admin").await?;
    let page = admin.get("/admin").await?;
    ensure!(page.status == 200, "{} {}", page.status, page.body);
    ensure!(
        page.body.contains("东岭派出所") && page.body.contains("李警官"),
        "units and people"
    );
    let unit = admin
        .post(
            "/admin/units",
            &[
                ("id", "station-north"),
                ("name", "北山派出所"),
                ("kind", "station"),
                ("parent", "county"),
            ],
        )
        .await?;
    ensure!(unit.status == 303, "{} {}", unit.status, unit.body);
    let person = admin
        .post(
            "/admin/people",
            &[
                ("id", "officer-sun"),
                ("name", "孙警官"),
                ("login", "sun"),
                ("password", "sun-password-1"),
                ("m_unit", "station-north"),
                ("m_role", "officer"),
                ("m_unit", ""),
                ("m_role", ""),
            ],
        )
        .await?;
    ensure!(person.status == 303, "{} {}", person.status, person.body);
    let page = admin.get("/admin?person=officer-sun").await?;
    ensure!(page.body.contains("北山派出所·民警"), "the membership is listed");
    ensure!(page.body.contains("value=\"孙警官\""), "loaded into the form");

    // The new officer signs in and works for the new station.
    let mut sun = Browser::new(&server);
    sun.get("/login").await?;
    let r = sun
        .post(
            "/login",
            &[("login", "sun"), ("password", "sun-password-1"), ("next", "/queue")],
        )
        .await?;
    ensure!(r.status == 303, "{} {}", r.status, r.body);

    // Not an admin: no administration.
    let mut li = Browser::new(&server);
    li.sign_in("li").await?;
    let refused = li.get("/admin").await?;
    ensure!(refused.status == 403, "{}", refused.status);
    ensure!(
        !li.get("/queue").await?.body.contains("href=\"/admin\""),
        "no 管理 link"
    );
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn petition_reclassify_assists_and_a_set_aside_action_in_words() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = demo(&db, SmsSender::DevLog).await?;
    let link = letter(&server, "路灯不亮").await?;
    let mut duty = Browser::new(&server);
    duty.sign_in("duty").await?;
    // Accepting what was never dispatched to the unit: the workflow's rule, in words.
    let aside = duty
        .post(
            &format!("{link}/act"),
            &[("action", "accept"), ("unit", "mailbox-taskforce")],
        )
        .await?;
    ensure!(aside.status == 409, "{} {}", aside.status, aside.body);
    ensure!(
        aside.body.contains("操作未执行") && aside.body.contains("规则 "),
        "{}",
        aside.body
    );
    for fields in [
        vec![("action", "sign"), ("unit", "mailbox-taskforce")],
        vec![
            ("action", "reclassify"),
            ("unit", "mailbox-taskforce"),
            ("category", "suggestion"),
            ("reason", "属于建议"),
        ],
        vec![
            ("action", "change_assists"),
            ("unit", "mailbox-taskforce"),
            ("add", "water"),
        ],
    ] {
        let r = duty.post(&format!("{link}/act"), &fields).await?;
        ensure!(r.status == 303, "{fields:?}: {} {}", r.status, r.body);
    }
    let page = duty.get(&link).await?.body;
    ensure!(page.contains("改为建议：属于建议"), "reclassified");
    ensure!(page.contains("增加协办：青山县水利局"), "assists changed");
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}
