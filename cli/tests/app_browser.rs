//! The resident app in a real browser (Debian's headless Chromium over WebDriver) on a real
//! `lianxin serve --demo` process, at 360 px wide: a resident of 下溪村 signs in with the code
//! from the dev-mode log, files a petition to the station chief, the officer replies (named, not
//! by id, in the timeline and the conversation), the
//! phone goes offline (DevTools network emulation), the resident comments and rates, both
//! wait as 待发送, the link comes back and the server holds each exactly once; the notice's
//! read and forwarded receipts reach the notice report; a post in the village room @s the
//! officer (a long room opens on its latest messages, names not ids, earlier ones on request);
//! more petitions than a page show behind 更多; an event set aside says why; a visit with no network opens the shell and the kept petitions. Screenshots go to `target/screenshots/app/`.
//!
//! Skipped, saying so, where `chromium` and `chromium-driver` are not installed.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use lianxin_testkit::browser::{Chromium, Options, Session};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(20);
const PHONE: &str = "13800000002";

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots/app")
}

/// `lianxin serve --demo` in dev mode (no SMS gateway), its log kept for the one-time codes.
struct Serve {
    process: tokio::process::Child,
    url: String,
    dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Serve {
    async fn start() -> anyhow::Result<Serve> {
        let dir = tempfile::tempdir()?;
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_lianxin"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log",
                "warn,lianxin::sms=info",
                "--data-dir",
            ])
            .arg(dir.path())
            .args(["serve", "--demo"])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut errors = BufReader::new(process.stderr.take().context("stderr")?).lines();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                kept.lock().expect("log").push(plain(&line));
            }
        });
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
            dir,
            log,
            http: reqwest::Client::new(),
        })
    }

    /// The newest one-time code the log shows for `phone`.
    async fn code_for(&self, phone: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .log
                .lock()
                .expect("log")
                .iter()
                .rev()
                .filter(|l| l.contains("one-time code") && l.contains(phone))
                .find_map(|l| {
                    let at = l.find("code=")? + 5;
                    Some(l[at..].chars().take_while(char::is_ascii_digit).collect::<String>())
                });
            if let Some(code) = found.filter(|c| !c.is_empty()) {
                return Ok(code);
            }
            if Instant::now() > deadline {
                bail!(
                    "no one-time code for {phone} in the log:\n{}",
                    self.log.lock().expect("log").join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A token for `user`, minted by `lianxin admin` on the same database.
    async fn token(&self, user: &str) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lianxin"))
            .args(["--log", "warn", "--data-dir"])
            .arg(self.dir.path())
            .args(["admin", "mint-token", "--user", user, "--ttl", "1h"])
            .env_remove("DATABASE_URL")
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "mint-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout)?;
        Ok(text
            .split_whitespace()
            .find(|w| w.matches('.').count() == 2)
            .context("a token")?
            .to_owned())
    }

    async fn call(&self, token: &str, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url);
        let r = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        }
        .bearer_auth(token)
        .send()
        .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "{method} {path}: {status} {v}");
        Ok(v)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}

/// A log line without its terminal colours (`ESC [ … m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn ready(browser: &Session, page: &str) -> anyhow::Result<()> {
    browser.wait_for(&format!("body[data-ready='{page}']"), WAIT).await
}

/// Waits until the page has no action waiting to be sent.
async fn drained(browser: &Session) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let html = browser.source().await?;
        if !html.contains("待发送") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("actions still waiting after the link came back");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_files_comments_offline_rates_and_reads_a_notice() -> anyhow::Result<()> {
    let Some(chromium) = Chromium::start().await? else {
        eprintln!(
            "app_browser: skipped: /usr/bin/chromium or /usr/bin/chromedriver not installed (apt-get install chromium chromium-driver)"
        );
        return Ok(());
    };
    let shots = screenshots();
    let serve = Serve::start().await?;
    let phone = chromium
        .session(Options {
            javascript: true,
            width: 360,
            height: 740,
        })
        .await?;

    // A phone's screen: headless windows are at least 500 px wide, so the page is given a
    // 360 px viewport through DevTools.
    phone
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await?;

    // Sign in with the code from the dev-mode log.
    phone.goto(&format!("{}/app", serve.url)).await?;
    phone.wait_for("#phone", WAIT).await?;
    phone.save_screenshot(&shots, "login").await?;
    phone.fill("#phone", PHONE).await?;
    phone.click("#f1 button").await?;
    phone.wait_for("#f2:not([hidden])", WAIT).await?;
    let code = serve.code_for(PHONE).await?;
    phone.fill("#code", &code).await?;
    phone.click("#f2 button").await?;
    phone.wait_for("a#new", WAIT).await?;

    // File a petition to the station chief.
    phone.click("a#new").await?;
    phone.wait_for("#f", WAIT).await?;
    let title = "村口路灯坏了半个月";
    phone.fill("#title", title).await?;
    phone
        .fill("#body", "晚上村口一片黑，老人出门容易摔倒，希望尽快修好。")
        .await?;
    phone.fill("#contact", PHONE).await?;
    phone.save_screenshot(&shots, "new-petition").await?;
    phone.click("#send").await?;
    phone.wait_for("a.petition", WAIT).await?;
    drained(&phone).await?;
    let liu = serve.token("res-liu").await?;
    let deadline = Instant::now() + WAIT;
    let filed = loop {
        let mine = serve
            .call(&liu, "GET", "/api/petitions?submitter=res-liu&limit=50", json!(null))
            .await?;
        let filed: Vec<Value> = mine["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter(|p| p["title"] == title)
            .cloned()
            .collect();
        if !filed.is_empty() {
            break filed;
        }
        ensure!(Instant::now() < deadline, "the petition never reached the server");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(filed.len() == 1, "filed once: {}", filed.len());
    ensure!(filed[0]["lead"] == "station-east", "to the station over 下溪村");
    let id = filed[0]["doc_id"].as_str().context("doc id")?.to_owned();
    phone.wait_for("a.petition", WAIT).await?;
    let listed = phone.text("a.petition .st").await?;
    ensure!(
        listed.starts_with("待签收，10分钟内签收，截止"),
        "the newest petition's clock in words: {listed}"
    );
    phone.save_screenshot(&shots, "petitions").await?;

    // The officer signs and replies; the resident sees the reply and the clock in words.
    let wang = serve.token("officer-wang").await?;
    let act = format!("/api/petitions/{id}/actions");
    serve
        .call(&wang, "POST", &act, json!({"action": "sign", "unit": "station-east"}))
        .await?;
    serve
        .call(
            &wang,
            "POST",
            &act,
            json!({"action": "contact", "unit": "station-east", "method": "phone"}),
        )
        .await?;
    serve
        .call(
            &wang,
            "POST",
            &act,
            json!({"action": "reply", "unit": "station-east", "text": "已报电力所，明天上午来修。"}),
        )
        .await?;
    serve
        .call(
            &wang,
            "POST",
            &act,
            json!({"action": "comment", "text": "师傅明天上午在家吗？"}),
        )
        .await?;
    phone.goto(&format!("{}/app/#/p/{id}", serve.url)).await?;
    phone.wait_for("form#r", WAIT).await?;
    let clock = phone.text("#clock").await?;
    ensure!(clock.starts_with("已回复"), "status in words: {clock}");
    // The handler by name, in the timeline and the conversation.
    for part in ["#timeline", "#talk"] {
        let text = phone.text(part).await?;
        ensure!(
            text.contains("王警官") && !text.contains("officer-wang"),
            "{part} names the officer: {text}"
        );
    }
    phone.save_screenshot(&shots, "petition").await?;

    // Offline: comment and rate; both wait.
    phone.set_offline(true).await?;
    phone.fill("#comment", "谢谢，等你们来修").await?;
    phone.click("#c button").await?;
    phone.wait_for_text("待发送", WAIT).await?;
    phone.click("#r button").await?;
    let deadline = Instant::now() + WAIT;
    while phone.find_all(".wait").await?.len() < 2 {
        ensure!(Instant::now() < deadline, "the rating waits beside the comment");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        phone.text("#net").await?.contains("离线"),
        "the page says it is offline"
    );
    phone.save_screenshot(&shots, "offline-waiting").await?;

    // Back online: each is sent, and the server holds each once.
    phone.set_offline(false).await?;
    drained(&phone).await?;
    let view = serve
        .call(&liu, "GET", &format!("/api/petitions/{id}"), json!(null))
        .await?;
    let comments = view["conversation"]
        .as_array()
        .context("conversation")?
        .iter()
        .filter(|m| m["text"] == "谢谢，等你们来修")
        .count();
    let ratings = view["timeline"]
        .as_array()
        .context("timeline")?
        .iter()
        .filter(|e| e["kind"] == "follow_up")
        .count();
    ensure!(comments == 1 && ratings == 1, "comments {comments}, ratings {ratings}");
    ensure!(view["summary"]["rating"] == 5, "{}", view["summary"]);

    // A notice for the household: opening it sends a read receipt to the notice report.
    phone.click("nav a[href='#/notices']").await?;
    phone.wait_for("a.notice", WAIT).await?;
    phone.save_screenshot(&shots, "notices").await?;
    phone.click("a.notice").await?;
    phone.wait_for("#fwd", WAIT).await?;
    drained(&phone).await?;
    let notices = serve.call(&liu, "GET", "/api/notices", json!(null)).await?;
    let notice = notices["items"][0]["id"].as_str().context("notice")?.to_owned();
    let li = serve.token("officer-li").await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let report = serve
            .call(&li, "GET", &format!("/api/notices/{notice}/report"), json!(null))
            .await?;
        let read = report["deliveries"]
            .as_array()
            .context("deliveries")?
            .iter()
            .any(|d| d["household_id"] == "hh-xiaxi-001" && d["read_at"].is_number());
        if read {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the read receipt never reached the report: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Forwarding to the family: without a share sheet (desktop Chromium) the notice is copied
    // for pasting into the family's chat, and the forwarded receipt follows.
    phone
        .cdp(
            "Browser.grantPermissions",
            json!({ "origin": serve.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }),
        )
        .await?;
    phone.click("#fwd").await?;
    phone.wait_for_text("已转发", WAIT).await?;
    drained(&phone).await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let report = serve
            .call(&li, "GET", &format!("/api/notices/{notice}/report"), json!(null))
            .await?;
        let forwarded = report["deliveries"]
            .as_array()
            .context("deliveries")?
            .iter()
            .any(|d| d["household_id"] == "hh-xiaxi-001" && d["forwarded_at"].is_number());
        if forwarded {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the forwarded receipt never reached the report: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The village room: the officer's group; the resident posts and @s the officer.
    let room = sync_core::repo_protocol::DocumentId::from_bytes(rand::random()).to_string();
    serve
        .call(
            &wang,
            "POST",
            "/api/rooms",
            json!({"id": room, "kind": "officer_group", "name": "下溪村警民议事厅", "unit": "village-xiaxi",
                   "members": [{"user": "res-liu", "role": "member"}]}),
        )
        .await?;
    // A long room opens on its latest messages, with names, not ids; earlier ones on request.
    for i in 1..=55 {
        serve
            .call(
                &wang,
                "POST",
                &format!("/api/rooms/{room}/messages"),
                json!({"text": format!("通知第{i}条")}),
            )
            .await?;
    }
    phone.click("nav a[href='#/rooms']").await?;
    phone.wait_for("a.room", WAIT).await?;
    phone.click("a.room").await?;
    phone.wait_for("#m #at", WAIT).await?;
    let html = phone.source().await?;
    ensure!(
        html.contains("通知第55条") && !html.contains("通知第1条<"),
        "the room opens on its latest messages"
    );
    ensure!(
        phone.text("#msgs .msg small").await?.starts_with("王警官"),
        "authors by name"
    );
    let at = phone.text("label:has(#at)").await?;
    ensure!(
        at.contains("王警官") && !at.contains("officer-wang"),
        "the officer by name: {at}"
    );
    phone.click("#earlier").await?;
    phone.wait_for_text("通知第1条", WAIT).await?;
    ensure!(
        phone.find_all("#msgs .msg").await?.len() == 55,
        "the earlier messages join the page once"
    );
    phone.fill("#text", "王警官，村口的路灯什么时候修？").await?;
    phone.click("#at").await?;
    phone.click("#m button").await?;
    drained(&phone).await?;
    phone.wait_for_text("王警官，村口的路灯什么时候修？", WAIT).await?;
    phone.save_screenshot(&shots, "room").await?;
    let page = serve
        .call(
            &liu,
            "GET",
            &format!("/api/rooms/{room}/messages?limit=100"),
            json!(null),
        )
        .await?;
    let posted: Vec<&Value> = page["items"]
        .as_array()
        .context("messages")?
        .iter()
        .filter(|m| m["text"] == "王警官，村口的路灯什么时候修？")
        .collect();
    ensure!(posted.len() == 1, "posted once: {}", posted.len());
    ensure!(posted[0]["mentions"] == json!(["officer-wang"]), "{}", posted[0]);

    // A post written offline in a room the officer then removes the resident from: refused
    // when the link returns, and the page says why.
    phone.set_offline(true).await?;
    phone.fill("#text", "我再问一下").await?;
    phone.click("#m button").await?;
    phone.wait_for_text("待发送", WAIT).await?;
    serve
        .call(
            &wang,
            "DELETE",
            &format!("/api/rooms/{room}/members/res-liu"),
            json!(null),
        )
        .await?;
    phone.set_offline(false).await?;
    phone.wait_for(".refused", WAIT).await?;
    let said = phone.text(".refused").await?;
    ensure!(
        said.contains("未能发送") && said.contains("已不是群成员"),
        "the refusal is shown in words: {said}"
    );
    phone.save_screenshot(&shots, "refused").await?;
    phone.click(".refused button").await?;
    let deadline = Instant::now() + WAIT;
    while !phone.find_all(".refused").await?.is_empty() {
        ensure!(Instant::now() < deadline, "the refusal stays after 知道了");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The public results board of the village.
    phone.click("nav a[href='#/board']").await?;
    ready(&phone, "board").await?;
    ensure!(phone.text("h1").await? == "公开晒单", "the board");
    let board = serve.call(&liu, "GET", "/api/board", json!(null)).await?;
    let shown = phone.find_all("main .card:not(.refused)").await?.len();
    ensure!(
        shown == board["items"].as_array().map_or(0, Vec::len),
        "the board shows what the API publishes"
    );

    // Usable at 360 px: nothing wider than the screen.
    let width = phone
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth];",
            json!([]),
        )
        .await?;
    ensure!(width == json!([360, 360]), "viewport and page width: {width}");

    // More petitions than a page: the rest behind 更多.
    for i in 1..=21 {
        let id = sync_core::repo_protocol::DocumentId::from_bytes(rand::random()).to_string();
        serve
            .call(
                &liu,
                "POST",
                "/api/petitions",
                json!({"id": id, "channel": "chief_line", "category": "consultation", "title": format!("咨询第{i}件"),
                       "body": "请问怎么办理", "location": {"unit": "village-xiaxi"}}),
            )
            .await?;
    }
    phone.click("nav a[href='#/petitions']").await?;
    phone.wait_for("#more:not([hidden])", WAIT).await?;
    ensure!(phone.find_all("a.petition").await?.len() == 20, "a page of 20");
    phone.click("#more").await?;
    phone.wait_for("#more[hidden]", WAIT).await?;
    let listed = phone.find_all("a.petition").await?.len();
    let all = serve
        .call(&liu, "GET", "/api/petitions?submitter=res-liu&limit=100", json!(null))
        .await?;
    let all = all["items"].as_array().map_or(0, Vec::len);
    ensure!(
        listed == all && all > 20,
        "every petition after 更多: {listed} of {all}"
    );
    phone.wait_for_text(title, WAIT).await?;

    // A visit with no network: the shell comes from the service worker, the petitions from
    // what the page kept.
    phone.goto(&format!("{}/app/#/petitions", serve.url)).await?;
    ready(&phone, "petitions").await?;
    phone
        .execute("return navigator.serviceWorker.ready.then(() => true);", json!([]))
        .await?;
    phone.set_offline(true).await?;
    phone.goto("about:blank").await?;
    phone.goto(&format!("{}/app/#/petitions", serve.url)).await?;
    phone.wait_for("#stale", WAIT).await?;
    phone.wait_for_text("咨询第21件", WAIT).await?;
    phone.save_screenshot(&shots, "offline-repeat-visit").await?;

    // An event set aside says why, in the console's words. Two officers signing on phones
    // offline is how one happens; here the kept copy of the petition is given such a second
    // signing, in the API's shape, and shown with no network.
    let kept = phone
        .execute(
            "const key = 'GET /api/petitions/' + arguments[0];
             return new Promise((ok, fail) => {
               const r = indexedDB.open('lianxin', 1);
               r.onerror = () => fail(r.error);
               r.onsuccess = () => {
                 const t = r.result.transaction('kv', 'readwrite'), kv = t.objectStore('kv');
                 const g = kv.get(key);
                 g.onsuccess = () => {
                   const p = g.result, first = p && p.timeline.find((e) => e.kind === 'signed');
                   if (!first) { ok(false); return; }
                   p.timeline.push(Object.assign({}, first, { id: first.id + 'x', outcome: 'superseded',
                     rule: 'already-signed', after: first.id }));
                   kv.put(p, key);
                   t.oncomplete = () => ok(true);
                 };
               };
             });",
            json!([id]),
        )
        .await?;
    ensure!(kept == json!(true), "the petition was kept with its signing: {kept}");
    phone.goto(&format!("{}/app/#/p/{id}", serve.url)).await?;
    phone.wait_for("#timeline .why", WAIT).await?;
    let why = phone.text("#timeline .why").await?;
    ensure!(
        why.starts_with("未生效：已经有人签收了，以最早的签收为准。（因 ") && why.ends_with(" 的记录）"),
        "why the second signing was set aside: {why}"
    );
    phone.save_screenshot(&shots, "set-aside").await?;
    phone.set_offline(false).await?;
    phone.close().await?;
    Ok(())
}
