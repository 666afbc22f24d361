//! A headless Chromium for browser tests: Debian's `chromium` driven through `chromedriver`
//! over the W3C WebDriver protocol (JSON over HTTP, the dozen commands the tests use).
//!
//! A few plain HTTP calls with the reqwest the workspace already builds are all a test
//! needs; a WebDriver crate would bring its own HTTP stack and Unicode tables. Without the two
//! Debian packages, [`Chromium::start`] answers `None` and the test says it was skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver; each [`Chromium::session`] is a fresh browser with its own profile.
pub struct Chromium {
    driver: Child,
    url: String,
    http: reqwest::Client,
    profiles: tempfile::TempDir,
}

/// How a session's browser is set up.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub javascript: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            javascript: true,
            width: 1280,
            height: 900,
        }
    }
}

impl Chromium {
    /// Starts chromedriver, or `None` when Debian's `chromium` or `chromium-driver` is not
    /// installed (the caller prints that the test was skipped).
    pub async fn start() -> anyhow::Result<Option<Chromium>> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            return Ok(None);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let me = Chromium {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            profiles: tempfile::tempdir()?,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = me.http.get(format!("{}/status", me.url)).send().await
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Some(me))
    }

    /// A new browser window.
    pub async fn session(&self, options: Options) -> anyhow::Result<Session> {
        let profile = tempfile::tempdir_in(self.profiles.path())?.keep();
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--lang=zh-CN",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", options.width, options.height));
        let mut chrome = json!({ "binary": CHROMIUM, "args": args });
        if !options.javascript {
            chrome["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("{}/session", self.url),
                Some(json!({ "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": chrome,
                }}})),
            )
            .await?;
        let id = answer["sessionId"].as_str().context("session id")?;
        Ok(Session {
            base: format!("{}/session/{id}", self.url),
            http: self.http.clone(),
        })
    }

    async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
        call(&self.http, method, url, body).await
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let value: Value = response.json().await?;
    if !status.is_success() {
        bail!("WebDriver {url}: {status} {}", value["value"]["message"]);
    }
    Ok(value["value"].clone())
}

/// One browser window.
pub struct Session {
    base: String,
    http: reqwest::Client,
}

/// An element of the page, by its WebDriver reference.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Session {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.base),
            Some(body),
        )
        .await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        call(&self.http, reqwest::Method::GET, &format!("{}{path}", self.base), None).await
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.post("/url", json!({ "url": url })).await.map(drop)
    }

    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.get("/url").await?.as_str().unwrap_or_default().to_owned())
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> anyhow::Result<String> {
        Ok(self.get("/source").await?.as_str().unwrap_or_default().to_owned())
    }

    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await
            .with_context(|| format!("no element {css}"))?;
        Ok(Element(v[ELEMENT].as_str().context("element ref")?.to_owned()))
    }

    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let v = self
            .post("/elements", json!({ "using": "css selector", "value": css }))
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str())
                    .map(|s| Element(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Clicks the element, first scrolled to the middle of the window: WebDriver clicks an
    /// element that is in view as it stands, even when a fixed bar (a phone layout's bottom
    /// navigation) covers it.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let e = self.find(css).await?;
        self.post(
            "/execute/sync",
            json!({
                "script": "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'}); return true;",
                "args": [{ ELEMENT: e.0 }],
            }),
        )
        .await?;
        self.post(&format!("/element/{}/click", e.0), json!({})).await.map(drop)
    }

    /// Clears a field and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{}/clear", e.0), json!({})).await?;
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }))
            .await
            .map(drop)
    }

    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let e = self.find(css).await?;
        Ok(self
            .get(&format!("/element/{}/text", e.0))
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs a script in the page (sessions with JavaScript only).
    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Waits until the page's HTML contains `needle`; fails after `timeout`.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.source().await?.contains(needle) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "page {} never showed {needle:?}{}",
                    self.url().await?,
                    self.alert().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches an element.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.find_all(css).await?.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("page {} never had {css}{}", self.url().await?, self.alert().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the page's alert (a refusal, a failed sign-in), to say why a wait failed.
    async fn alert(&self) -> String {
        match self.find_all(".alert").await {
            Ok(found) if !found.is_empty() => {
                format!("; the page says: {}", self.text(".alert").await.unwrap_or_default())
            }
            _ => String::new(),
        }
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine;
        let v = self.get("/screenshot").await?;
        Ok(base64::engine::general_purpose::STANDARD.decode(v.as_str().context("png")?)?)
    }

    /// Saves a screenshot as `<dir>/<name>.png`.
    pub async fn save_screenshot(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.screenshot().await?)?;
        Ok(path)
    }

    pub async fn set_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await
            .map(drop)
    }

    /// Cuts the window off the network, or gives it back, with DevTools network emulation
    /// (`Network.emulateNetworkConditions` through chromedriver's CDP bridge): requests fail
    /// as on a dead link, `navigator.onLine` turns false and the page hears `offline` and
    /// `online`.
    pub async fn set_offline(&self, offline: bool) -> anyhow::Result<()> {
        self.cdp("Network.enable", json!({})).await?;
        self.cdp(
            "Network.emulateNetworkConditions",
            json!({ "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
        )
        .await
        .map(drop)
    }

    /// One Chrome DevTools Protocol command.
    pub async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await
    }

    pub async fn close(self) -> anyhow::Result<()> {
        call(&self.http, reqwest::Method::DELETE, &self.base, None)
            .await
            .map(drop)
    }
}
