//! The staff console in a real browser (Debian's headless Chromium over WebDriver), on the
//! demo county: a duty officer signs in, signs and dispatches a new letter with assisting
//! units while the station officer's queue updates live, the director supervises it, a
//! refused action shows its rule, the layout holds at 360 px, and the same work is done with
//! JavaScript disabled. Screenshots of the main pages go to `target/screenshots/console/`.
//!
//! Skipped, saying so, where `chromium` and `chromium-driver` are not installed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use lianxin_server::auth::SmsSender;
use lianxin_server::testing::{TestDb, TestServer};
use lianxin_tests::browser::{Chromium, Options, Session};
use serde_json::json;
use sync_core::UserId;
use sync_core::repo_protocol::DocumentId;

const WAIT: Duration = Duration::from_secs(15);

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots/console")
}

async fn start() -> anyhow::Result<Option<(TestDb, TestServer, Chromium)>> {
    let Some(chromium) = Chromium::start().await? else {
        return Ok(None);
    };
    let db = TestDb::sqlite().await?;
    let server = TestServer::start(db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&server.state).await?;
    Ok(Some((db, server, chromium)))
}

fn skipped(test: &str) {
    eprintln!(
        "{test}: skipped: /usr/bin/chromium or /usr/bin/chromedriver not installed (apt-get install chromium chromium-driver)"
    );
}

async fn sign_in(browser: &Session, server: &TestServer, login: &str) -> anyhow::Result<()> {
    browser.goto(&server.url("/queue")).await?;
    ensure!(
        browser.url().await?.contains("/login?next="),
        "an unsigned browser is sent to sign-in"
    );
    browser.fill("form[action='/login'] input[name=login]", login).await?;
    browser
        .fill(
            "form[action='/login'] input[name=password]",
            lianxin_demo::DEMO_PASSWORD,
        )
        .await?;
    browser.click("form[action='/login'] button").await?;
    browser.wait_for("#queue-list", WAIT).await?;
    ensure!(browser.url().await?.ends_with("/queue"), "back on the page asked for");
    Ok(())
}

/// The queue row (its `<article>`) of the petition titled `title`, if listed.
fn row_of(html: &str, title: &str) -> Option<String> {
    let at = html.find(&format!(">{title}</a>"))?;
    let start = html[..at].rfind("<article")?;
    let end = at + html[at..].find("</article>")?;
    Some(html[start..end].to_owned())
}

/// Marks the window so a later check can tell it was never reloaded.
async fn mark(browser: &Session) -> anyhow::Result<()> {
    browser
        .execute("window.lxStay = 1; return true;", json!([]))
        .await
        .map(drop)
}

async fn still_marked(browser: &Session) -> anyhow::Result<bool> {
    Ok(browser.execute("return window.lxStay === 1;", json!([])).await? == json!(true))
}

/// The `received` figure of a row of the dashboard's unit table (0 when the unit has no row).
async fn received(browser: &Session, row: &str) -> anyhow::Result<u32> {
    let html = browser.source().await?;
    let Some(at) = html.find(&format!("<tr id=\"{row}\"")) else {
        return Ok(0);
    };
    let cell = at + html[at..].find("class=\"received\">").context("cell")? + 17;
    Ok(html[cell..cell + html[cell..].find('<').context("end")?].parse()?)
}

/// A resident writes to the director's mailbox through the JSON API.
async fn new_letter(server: &TestServer, title: &str) -> anyhow::Result<String> {
    let token = server
        .state
        .auth
        .mint_access_token(&UserId::new("res-liu")?, 3_600_000)
        .await?;
    let id = DocumentId::from_bytes(rand::random());
    let (status, body) = server
        .post(
            "/api/petitions",
            Some(&token),
            &json!({
                "id": id.to_string(), "channel": "director_mailbox", "category": "help",
                "title": title, "body": "凌晨两点有人在院子外撬门，已经报过警，希望加强夜间巡逻。",
                "contact": "13800000002", "location": { "unit": "village-xiaxi" },
                "routed_to": "mailbox-taskforce",
            }),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    Ok(body["id"].as_str().context("id")?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_officer_dispatches_director_supervises_queue_updates_live() -> anyhow::Result<()> {
    let Some((db, server, chromium)) = start().await? else {
        skipped("duty_officer_dispatches_director_supervises_queue_updates_live");
        return Ok(());
    };
    let shots = screenshots();
    let duty = chromium.session(Options::default()).await?;
    duty.goto(&server.url("/")).await?;
    duty.wait_for("form[action='/login']", WAIT).await?;
    duty.save_screenshot(&shots, "login").await?;
    sign_in(&duty, &server, "duty").await?;
    let li = chromium.session(Options::default()).await?;
    sign_in(&li, &server, "li").await?;
    mark(&duty).await?;
    mark(&li).await?;

    // The director's dashboard before the letter: the east station's figures.
    let director = chromium.session(Options::default()).await?;
    sign_in(&director, &server, "director").await?;
    director.click("nav a[href='/dashboard']").await?;
    director.wait_for("#kpi-total", WAIT).await?;
    let east_before = received(&director, "u-station-east").await?;

    // A new letter reaches the duty officer's open queue without a reload.
    let title = "深夜有人撬门";
    let id = new_letter(&server, title).await?;
    duty.wait_for_text(title, WAIT).await?;
    ensure!(still_marked(&duty).await?, "the queue updated in place");
    let row = row_of(&duty.source().await?, title).context("listed")?;
    ensure!(row.contains("待签收") && row.contains("签收进行中"), "{row}");
    duty.save_screenshot(&shots, "queue").await?;
    ensure!(row_of(&li.source().await?, title).is_none(), "not the station's yet");

    // Sign, then dispatch to the east station with the water bureau and the village assisting.
    duty.click(&format!("a[href='/petitions/{id}']")).await?;
    duty.wait_for("#act-sign", WAIT).await?;
    duty.click("#act-sign summary").await?;
    duty.click("#act-sign button[type=submit]").await?;
    duty.wait_for_text("<strong>签收</strong>", WAIT).await?;
    duty.click("#act-transfer summary").await?;
    duty.click("#act-transfer select[name=to] option[value='station-east']")
        .await?;
    duty.click("#act-transfer input[name=assist][value='water']").await?;
    duty.click("#act-transfer input[name=assist][value='village-xiaxi']")
        .await?;
    duty.fill("#act-transfer input[name=note]", "请东岭派出所主办，水利局、下溪村协办")
        .await?;
    duty.click("#act-transfer button[type=submit]").await?;
    duty.wait_for_text("派给东岭派出所主办，下溪村、青山县水利局协办", WAIT)
        .await?;
    ensure!(duty.text(".header .status").await? == "已派单");
    duty.save_screenshot(&shots, "petition").await?;

    // The station officer's open queue shows it as it arrives.
    li.wait_for_text(title, WAIT).await?;
    ensure!(still_marked(&li).await?, "the officer's queue updated in place");

    // The director sees the east station's count go up, with a chart drawn by the server.
    director.goto(&server.url("/dashboard")).await?;
    director.wait_for("#kpi-total", WAIT).await?;
    let east_after = received(&director, "u-station-east").await?;
    ensure!(
        east_after == east_before + 1,
        "the KPI report counts the dispatched letter: {east_before} then {east_after}"
    );
    ensure!(director.find_all("svg.chart rect.bar").await?.len() >= 2, "bars drawn");
    director.save_screenshot(&shots, "dashboard").await?;

    // The director supervises it; the officer's queue shows the mark live.
    director.goto(&server.url(&format!("/petitions/{id}"))).await?;
    director.click("#act-supervise summary").await?;
    director
        .fill("#act-supervise textarea[name=note]", "今晚加派巡逻，明早报结果")
        .await?;
    director.click("#act-supervise button[type=submit]").await?;
    director.wait_for_text("今晚加派巡逻，明早报结果", WAIT).await?;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let row = row_of(&li.source().await?, title).unwrap_or_default();
        if row.contains(">督办<") {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the supervision mark never reached the queue: {row}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(still_marked(&li).await?);

    // An officer may not supervise: the API offers no such form. Filing the letter under the
    // category it already has is set aside, and the page says which rule.
    li.goto(&server.url(&format!("/petitions/{id}"))).await?;
    li.wait_for("#act-reclassify", WAIT).await?;
    ensure!(
        li.find_all("#act-supervise").await?.is_empty(),
        "an officer is offered supervision"
    );
    li.click("#act-reclassify summary").await?;
    li.fill("#act-reclassify input[name=reason]", "核实后仍属此类").await?;
    li.click("#act-reclassify button[type=submit]").await?;
    li.wait_for_text("操作未执行", WAIT).await?;
    ensure!(li.text(".alert").await?.contains("没有任何改动"));
    li.save_screenshot(&shots, "refused").await?;

    // Everything the page loaded came from this server.
    let loaded = li
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            json!([]),
        )
        .await?;
    let origin = server.url("");
    for url in loaded.as_array().context("entries")? {
        ensure!(
            url.as_str().is_some_and(|u| u.starts_with(&origin)),
            "{url} is not from {origin}"
        );
    }

    // A phone-width window: nothing runs off the side of the queue, the petition or the
    // dashboard.
    let petition = format!("/petitions/{id}");
    for (who, path, ready, shot) in [
        (&li, "/queue", "#queue-list", "queue-360"),
        (&li, petition.as_str(), "#timeline", "petition-360"),
        (&director, "/dashboard", "#kpi-total", "dashboard-360"),
    ] {
        who.set_size(360, 800).await?;
        who.goto(&server.url(path)).await?;
        who.wait_for(ready, WAIT).await?;
        let fits = who
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                json!([]),
            )
            .await?;
        who.save_screenshot(&shots, shot).await?;
        ensure!(fits == json!(true), "{path} is wider than a 360 px screen");
    }

    for s in [duty, li, director] {
        s.close().await?;
    }
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_with_javascript_disabled() -> anyhow::Result<()> {
    let Some((db, server, chromium)) = start().await? else {
        skipped("pages_work_with_javascript_disabled");
        return Ok(());
    };
    let b = chromium
        .session(Options {
            javascript: false,
            ..Options::default()
        })
        .await?;
    sign_in(&b, &server, "chief").await?;
    let title = "户口本丢了怎么补办";
    let html = b.source().await?;
    let row = row_of(&html, title).context("the unsigned demo letter is listed")?;
    ensure!(row.contains("签收已超时"), "{row}");

    // Filters are a plain GET form.
    b.click("select[name=status] option[value='submitted']").await?;
    b.click(".filters button").await?;
    b.wait_for_text("status=submitted", WAIT).await?;
    ensure!(b.url().await?.contains("status=submitted"));

    // Open it, sign it: a native <details> and a plain form post.
    let link = {
        let at = html.find(&format!(">{title}</a>")).context("link")?;
        let href = html[..at].rfind("href=\"").context("href")? + 6;
        html[href..href + html[href..].find('"').context("end")?].to_owned()
    };
    b.goto(&server.url(&link)).await?;
    b.click("#act-sign summary").await?;
    b.click("#act-sign button[type=submit]").await?;
    b.wait_for_text("<strong>签收</strong>", WAIT).await?;
    ensure!(b.text(".header .status").await? == "已签收");
    b.click("#act-contact summary").await?;
    b.click("#act-contact select[name=method] option[value='visit']")
        .await?;
    b.fill("#act-contact input[name=note]", "上门告知补办所需材料").await?;
    b.click("#act-contact button[type=submit]").await?;
    b.wait_for_text("上门。上门告知补办所需材料", WAIT).await?;
    b.save_screenshot(&screenshots(), "petition-nojs").await?;

    // The dashboard's filters are a plain GET form too.
    b.goto(&server.url("/dashboard")).await?;
    b.click("select[name=period] option[value='week']").await?;
    b.click(".filters button").await?;
    b.wait_for_text("period=week", WAIT).await?;
    ensure!(b.find_all("svg.chart").await?.len() == 3, "three charts");

    // The duty roster: the week grid and the shift form, no script needed.
    b.goto(&server.url("/roster?unit=station-east")).await?;
    b.wait_for("form[action='/roster/station-east']", WAIT).await?;
    b.save_screenshot(&screenshots(), "roster").await?;

    // Sign-out is a form too.
    b.click("form[action='/logout'] button").await?;
    b.wait_for("form[action='/login']", WAIT).await?;
    b.close().await?;
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_composed_and_its_receipts_arrive_live() -> anyhow::Result<()> {
    let Some((db, server, chromium)) = start().await? else {
        skipped("a_notice_is_composed_and_its_receipts_arrive_live");
        return Ok(());
    };
    let shots = screenshots();
    let li = chromium.session(Options::default()).await?;
    sign_in(&li, &server, "li").await?;
    li.click("nav a[href='/notices']").await?;
    li.wait_for("#compose", WAIT).await?;
    li.click("#compose select[name=kind] option[value='anti_fraud']")
        .await?;
    li.fill("#compose input[name=title]", "谨防冒充公检法诈骗").await?;
    li.fill(
        "#compose textarea[name=body]",
        "公检法机关不会通过电话办案，更不会要求转账到“安全账户”。",
    )
    .await?;
    li.click("#compose input[name=units][value='village-xiaxi']").await?;
    li.save_screenshot(&shots, "notices").await?;
    li.click("#compose button[type=submit]").await?;
    li.wait_for("#notice-report", WAIT).await?;
    let url = li.url().await?;
    let id = url.rsplit('/').next().context("notice id")?.to_owned();
    ensure!(li.text("h1").await?.contains("谨防冒充公检法诈骗"));
    mark(&li).await?;

    // A household reads it on the phone; the open report shows the receipt without a reload.
    let token = server
        .state
        .auth
        .mint_access_token(&UserId::new("res-liu")?, 3_600_000)
        .await?;
    let (status, body) = server
        .post(
            &format!("/api/notices/{id}/receipts"),
            Some(&token),
            &json!({ "kind": "read" }),
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    li.wait_for_text("已读 1", WAIT).await?;
    ensure!(still_marked(&li).await?, "the report updated in place");
    li.save_screenshot(&shots, "notice-report").await?;

    // The other main pages, for the record.
    li.goto(&server.url("/rooms")).await?;
    li.wait_for("#room-list", WAIT).await?;
    li.save_screenshot(&shots, "rooms").await?;
    li.click("#room-list a").await?;
    li.wait_for("#room-list, #post", WAIT).await?;
    li.save_screenshot(&shots, "room").await?;
    li.goto(&server.url("/directory?unit=station-east")).await?;
    li.wait_for("#coverage-villages", WAIT).await?;
    li.save_screenshot(&shots, "directory").await?;
    let admin = chromium.session(Options::default()).await?;
    sign_in(&admin, &server, "admin").await?;
    admin.click("nav a[href='/admin']").await?;
    admin.wait_for("#people", WAIT).await?;
    admin.save_screenshot(&shots, "admin").await?;
    for s in [li, admin] {
        s.close().await?;
    }
    server.stop().await?;
    db.cleanup().await;
    Ok(())
}
