//! Tiers end to end: a county and a station, two real servers on SQLite in
//! one process, the station's uplink through the link simulator, cut and
//! restored while both sides work.

use std::time::Duration;

use anyhow::{Context, ensure};
use lianxin_demo::DEMO_PASSWORD;
use lianxin_server::auth::SmsSender;
use lianxin_server::clock::ManualClock;
use lianxin_server::notify::NotifySettings;
use lianxin_server::station::{Uplink, UplinkStatus, UpstreamConfig};
use lianxin_server::testing::{TestDb, TestServer, test_notify_settings};
use lianxin_tests::linksim::{CutPlan, Direction, LinkSim, Profile};
use lianxin_tests::phone::Phone;
use lianxin_tests::scenario::Writer;
use lianxin_tests::tiers::{Api, doc_id, new_id, relay_directly};
use serde_json::{Value, json};
use sync_core::UnitId;
use sync_core::notify::EscalationPolicy;
use sync_core::petition::{PetitionAction, PetitionDoc};
use sync_core::relay::Backoff;

const STATION_LOGIN: &str = "station-east";
const STATION_PASSWORD: &str = "east station uplink secret";

/// Waits (at most a minute) until the uplink's status satisfies `done`.
async fn wait(uplink: &Uplink, what: &str, done: impl FnMut(&UplinkStatus) -> bool) -> anyhow::Result<UplinkStatus> {
    tokio::time::timeout(Duration::from_secs(60), uplink.wait_for(done))
        .await
        .with_context(|| format!("waiting for the uplink: {what}; status {:?}", uplink.status()))
}

/// Waits for `n` more completed rounds than now.
async fn rounds(uplink: &Uplink, n: u64) -> anyhow::Result<UplinkStatus> {
    let target = uplink.status().rounds + n;
    wait(uplink, &format!("{n} more rounds"), |s| s.rounds >= target).await
}

async fn call(server: &TestServer, token: &str, method: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    match method {
        "GET" => server.get(path, Some(token)).await,
        "PUT" => server.put(path, Some(token), &body).await,
        _ => server.post(path, Some(token), &body).await,
    }
}

async fn login(server: &TestServer, login: &str, password: &str) -> anyhow::Result<(u16, Value)> {
    server
        .post("/api/auth/login", None, &json!({"login": login, "password": password}))
        .await
}

/// Files a petition at `server` as `token`'s resident, routed to `station`.
async fn file(server: &TestServer, token: &str, village: &str, station: &str, title: &str) -> anyhow::Result<String> {
    let id = new_id();
    let (status, body) = call(
        server,
        token,
        "POST",
        "/api/petitions",
        json!({"id": id, "channel": "chief_line", "category": "help", "title": title, "body": "详情",
               "location": {"unit": village}, "routed_to": station}),
    )
    .await?;
    ensure!(status == 201, "filing answered {status}: {body}");
    Ok(id)
}

/// The kinds of a petition's timeline events, with who wrote each.
async fn timeline(server: &TestServer, token: &str, id: &str) -> anyhow::Result<Vec<(String, String)>> {
    let (status, body) = call(server, token, "GET", &format!("/api/petitions/{id}"), Value::Null).await?;
    ensure!(status == 200, "reading {id} answered {status}: {body}");
    Ok(body["timeline"]
        .as_array()
        .context("a timeline")?
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["by"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Whether `user` was told `kind` about `doc` at `server`: every item of
/// their inbox, acknowledged by a phone or not.
async fn told(server: &TestServer, user: &str, kind: &str, doc: &str) -> anyhow::Result<bool> {
    let items = server
        .state
        .storage
        .inbox()
        .after(&sync_core::UserId::new(user)?, 0, 10_000)
        .await?;
    Ok(items
        .iter()
        .any(|i| i.notification.kind == kind && i.notification.doc_id == doc))
}

/// A petition as `token`'s user reads it at `server`.
async fn view(server: &TestServer, token: &str, id: &str) -> anyhow::Result<Value> {
    let (status, body) = call(server, token, "GET", &format!("/api/petitions/{id}"), Value::Null).await?;
    ensure!(status == 200, "reading {id} answered {status}: {body}");
    Ok(body)
}

/// A roster putting `members` on duty for `unit` around the clock.
fn all_day(unit: &str, members: &[&str]) -> Value {
    json!({"unit": unit, "covers_7x24": true, "shifts": [{
        "name": "全天",
        "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
        "start": "00:00", "end": "00:00", "members": members}]})
}

/// A phone running the phone library itself (`lianxin-mobile`), synced
/// with a server as one user.
struct LibraryPhone {
    replica: std::sync::Arc<lianxin_mobile::Replica>,
    _dir: tempfile::TempDir,
}

impl LibraryPhone {
    async fn open(server: &TestServer, user: &str, token: &str) -> anyhow::Result<LibraryPhone> {
        let dir = tempfile::tempdir()?;
        let session = lianxin_mobile::SessionConfig {
            server_url: format!("http://{}", server.addr),
            user_id: user.to_owned(),
            memberships: vec![],
            household: None,
            units: vec![],
        };
        let replica = lianxin_mobile::Replica::open(dir.path().join("replica.sqlite").display().to_string(), session)?;
        replica.set_access_token(Some(token.to_owned()));
        let phone = LibraryPhone { replica, _dir: dir };
        phone.sync().await?;
        Ok(phone)
    }

    async fn sync(&self) -> anyhow::Result<lianxin_mobile::SyncReport> {
        let replica = self.replica.clone();
        Ok(tokio::task::spawn_blocking(move || replica.sync_now()).await??)
    }

    /// Takes the memberships the server lists for the user (`/api/me`), so
    /// the phone's own policy lets them act as they may.
    async fn refresh_me(&self) -> anyhow::Result<()> {
        let replica = self.replica.clone();
        tokio::task::spawn_blocking(move || replica.refresh_me()).await??;
        Ok(())
    }

    /// Whether the phone holds petition `id`, by reading it and by its list.
    fn holds(&self, id: &str) -> anyhow::Result<bool> {
        let listed = self.replica.list_petitions()?.iter().any(|p| p.id == id);
        let read = match self.replica.get_petition(id.to_owned()) {
            Ok(_) => true,
            Err(lianxin_mobile::LianxinError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        ensure!(listed == read, "petition {id} is listed: {listed}, readable: {read}");
        Ok(read)
    }

    /// The kinds of a petition's timeline events the phone holds, with who wrote each.
    async fn timeline(&self, id: &str) -> anyhow::Result<Vec<(String, String)>> {
        let p = self.replica.get_petition(id.to_owned())?;
        Ok(p.timeline.into_iter().map(|e| (e.kind, e.by)).collect())
    }

    /// The refusals the phone reported: (document, rule).
    async fn refused(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .replica
            .refused_edits()?
            .into_iter()
            .map(|r| (r.doc_id, r.rule))
            .collect())
    }
}

/// A county (the demo organisation, with an account for the east station's
/// server) and an empty east station whose uplink goes through the link
/// simulator, after the uplink's first round.
struct Tiers {
    county: TestServer,
    station: TestServer,
    link: LinkSim,
    uplink: Uplink,
    dbs: [TestDb; 2],
}

/// How a test's tiers are set up besides the defaults.
struct Setup {
    /// The uplink's link.
    profile: Profile,
    /// The most documents one pull of the county lists.
    county_page_docs: u32,
    /// The most documents one push of the station carries.
    push_page_docs: usize,
    /// When the county escalates on its own (a station escalates nothing).
    escalation: EscalationPolicy,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            profile: Profile::loopback(),
            county_page_docs: lianxin_server::state::BATCH_PAGE_DOCS,
            push_page_docs: 500,
            escalation: EscalationPolicy::default(),
        }
    }
}

/// An uplink to the tier at `url` as `login`, quick to retry.
fn uplink_config(url: String, login: &str, password: &str) -> UpstreamConfig {
    let mut config = UpstreamConfig::new(url, login, password);
    config.every = Duration::from_millis(100);
    config.silence = Duration::from_secs(3);
    config.backoff = Backoff {
        base_ms: 20,
        max_ms: 200,
    };
    config
}

impl Tiers {
    async fn start(seed: u64) -> anyhow::Result<Tiers> {
        Tiers::start_with(seed, Setup::default()).await
    }

    async fn start_with(seed: u64, setup: Setup) -> anyhow::Result<Tiers> {
        let county_db = TestDb::sqlite().await?;
        let county = TestServer::start_full(
            county_db.storage.clone(),
            SmsSender::DevLog,
            lianxin_server::auth::AuthSettings::default(),
            lianxin_server::state::HttpSettings {
                batch_page_docs: setup.county_page_docs,
                ..Default::default()
            },
            NotifySettings {
                escalation: setup.escalation,
                ..test_notify_settings()
            },
            ManualClock::starting_now(),
        )
        .await?;
        lianxin_demo::seed(&county.state).await?;
        let admin = county.token("admin").await?;
        let (status, body) = call(
            &county,
            &admin,
            "PUT",
            "/api/admin/users/station-east-server",
            json!({"display_name": "东岭派出所服务器", "login": STATION_LOGIN, "password": STATION_PASSWORD,
                   "memberships": [{"unit": "station-east", "role": "station_server"}]}),
        )
        .await?;
        ensure!(status == 200, "creating the station account answered {status}: {body}");
        let station_db = TestDb::sqlite().await?;
        let station = TestServer::start(station_db.storage.clone(), SmsSender::DevLog).await?;
        let link = LinkSim::start(county.addr, setup.profile, seed).await?;
        let mut config = uplink_config(format!("http://{}", link.addr()), STATION_LOGIN, STATION_PASSWORD);
        config.push_page_docs = setup.push_page_docs;
        let uplink = lianxin_server::station::spawn(station.state.clone(), config);
        rounds(&uplink, 1).await?;
        Ok(Tiers {
            county,
            station,
            link,
            uplink,
            dbs: [county_db, station_db],
        })
    }

    /// Restores the uplink and waits for a round after it.
    async fn restore(&self) -> anyhow::Result<()> {
        self.link.clear_cut_plan();
        let target = self.uplink.status().rounds + 1;
        wait(&self.uplink, "a round after the uplink came back", |s| {
            s.rounds >= target
        })
        .await?;
        Ok(())
    }

    /// Moves both tiers' clocks on by `minutes`.
    fn advance(&self, minutes: i64) {
        self.county.clock.advance_secs(minutes * 60);
        self.station.clock.advance_secs(minutes * 60);
    }

    /// Cuts the uplink and waits until a round has failed.
    async fn cut(&self) -> anyhow::Result<()> {
        self.link
            .set_cut_plan(CutPlan::after(Direction::Up, 0).every_connection());
        self.link.cut_all_now();
        wait(&self.uplink, "a failed round", |s| s.failures >= 1).await?;
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<()> {
        drop(self.uplink);
        self.station.stop().await?;
        self.county.stop().await?;
        for db in self.dbs {
            db.cleanup().await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_works_through_an_outage_and_the_county_stays_authoritative() -> anyhow::Result<()> {
    let tiers = Tiers::start(7).await?;
    let (county, station, link, uplink) = (&tiers.county, &tiers.station, &tiers.link, &tiers.uplink);
    let admin = county.token("admin").await?;
    let zhang = county.token("res-zhang").await?;
    let supervised = file(county, &zhang, "village-shangping", "station-east", "路灯坏了").await?;
    let taken_back = file(county, &zhang, "village-shangping", "station-east", "水渠堵了").await?;
    rounds(uplink, 1).await?;

    // The jurisdiction's people sign in at the station with their county
    // passwords, and see there what they see at the county.
    let (status, body) = login(station, "li", DEMO_PASSWORD).await?;
    ensure!(
        status == 200,
        "officer li signing in at the station answered {status}: {body}"
    );
    let li_station = body["access_token"].as_str().context("a token")?.to_owned();
    let li_county = county.token("officer-li").await?;
    let ids = |page: Value| -> std::collections::BTreeSet<String> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["doc_id"].as_str().map(str::to_owned))
            .collect()
    };
    let at_county = ids(call(county, &li_county, "GET", "/api/petitions?limit=200", Value::Null)
        .await?
        .1);
    let at_station = ids(
        call(station, &li_station, "GET", "/api/petitions?limit=200", Value::Null)
            .await?
            .1,
    );
    ensure!(at_county.contains(&supervised) && !at_county.is_empty());
    ensure!(
        at_station == at_county,
        "the station lists {at_station:?}, the county {at_county:?}"
    );
    let (status, _) = login(station, "zhao", DEMO_PASSWORD).await?;
    ensure!(status != 200, "a west station officer signed in at the east station");

    // A quiet scope: changes elsewhere in the county still move the cursor.
    let before = uplink.status().cursor;
    let he = county.token("res-he").await?;
    let west = file(county, &he, "village-baishi", "station-west", "西河的事").await?;
    let after = rounds(uplink, 2).await?;
    ensure!(
        after.cursor > before,
        "the cursor stayed at {before} while the county moved on"
    );
    ensure!(
        !station.state.docs.exists(&west).await?,
        "a west petition reached the east station"
    );

    // The station chief's phone syncs with the station.
    let chief_url = format!(
        "ws://{}/batch?token={}",
        station.addr,
        station.token("chief-east").await?
    );
    let mut phone = Phone::default();
    phone.sync(&chief_url, 3).await?;
    ensure!(phone.store.docs.contains_key(&doc_id(&taken_back)?));

    // The uplink goes down.
    link.set_cut_plan(CutPlan::after(Direction::Up, 0).every_connection());
    link.cut_all_now();
    wait(uplink, "a failed round", |s| s.failures >= 1).await?;

    // Offline at the station: an officer files and signs a petition, the
    // chief supervises another from his phone (he is a leader here still).
    let filed = file(station, &li_station, "village-xiaxi", "station-east", "邻里纠纷").await?;
    let (status, body) = call(
        station,
        &li_station,
        "POST",
        &format!("/api/petitions/{filed}/actions"),
        json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;
    ensure!(status == 200, "signing at the station answered {status}: {body}");
    let now = station.state.clock.now();
    let mut chief = Writer::new("chief-east", 3);
    let doc = phone.store.docs.remove(&doc_id(&taken_back)?).context("held")?;
    let mut p = PetitionDoc::from_doc(doc.with_actor(chief.actor.clone()))?;
    PetitionAction::Supervise {
        unit: UnitId::new("station-east")?,
        note: "所长督办".into(),
    }
    .apply(&mut p, &mut chief.author, now)?;
    phone.store.docs.insert(doc_id(&taken_back)?, p.into_doc());
    let report = phone.sync(&chief_url, 3).await?;
    ensure!(
        report.refused().is_empty(),
        "the station refused the chief: {:?}",
        report.refused()
    );
    // Officer li's phone (the phone library itself) pulls the chief's
    // supervision from the station before the county has seen it.
    let li_phone = LibraryPhone::open(station, "officer-li", &li_station).await?;
    let kinds = li_phone.timeline(&taken_back).await?;
    ensure!(
        kinds.iter().any(|(k, by)| k == "supervised" && by == "chief-east"),
        "li's phone did not receive the chief's supervision: {kinds:?}"
    );

    // Meanwhile at the county: the director supervises, the chief is no
    // longer a leader, officer wang is disabled.
    let director = county.token("director").await?;
    let (status, body) = call(
        county,
        &director,
        "POST",
        &format!("/api/petitions/{supervised}/actions"),
        json!({"action": "supervise", "unit": "station-east", "note": "请尽快办理"}),
    )
    .await?;
    ensure!(status == 200, "supervising at the county answered {status}: {body}");
    for (id, login, memberships, disabled) in [
        (
            "chief-east",
            "chief",
            json!([{"unit": "station-east", "role": "officer"}]),
            false,
        ),
        (
            "officer-wang",
            "wang",
            json!([{"unit": "station-east", "role": "officer"}]),
            true,
        ),
    ] {
        let (status, body) = call(
            county,
            &admin,
            "PUT",
            &format!("/api/admin/users/{id}"),
            json!({"display_name": id, "login": login, "memberships": memberships, "disabled": disabled}),
        )
        .await?;
        ensure!(status == 200, "editing {id} answered {status}: {body}");
    }
    let (status, body) = call(
        county,
        &admin,
        "PUT",
        "/api/admin/clock-rules",
        json!({"rules": {"default": {
                   "sign": {"wall_minutes": 15, "due_soon_before": 5},
                   "contact": {"wall_minutes": 30, "due_soon_before": 10},
                   "reply": {"working_days": 4, "due_soon_before": 1}}},
               "calendar": serde_json::to_value(county.state.docs.settings().calendar.clone())?}),
    )
    .await?;
    ensure!(status == 200, "new clock rules answered {status}: {body}");
    let (status, _) = login(station, "wang", DEMO_PASSWORD).await?;
    ensure!(status == 200, "the station lost wang while its uplink was down");

    // The uplink comes back, its first connections cut at random byte offsets.
    link.set_cut_plan(CutPlan::random(Direction::Up, 1..=3_000).connections(3));
    wait(uplink, "a round taking the chief's change back", |s| {
        s.failures == 0 && s.taken_back >= 1
    })
    .await?;
    rounds(uplink, 1).await?;

    // What the station did offline reached the county, once.
    let events = timeline(county, &director, &filed).await?;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    ensure!(kinds == ["submitted", "signed"], "the county holds {events:?}");
    ensure!(events[1].1 == "officer-li", "the signature is {:?}'s", events[1].1);
    // The director's supervision reached the station, and its officers.
    let events = timeline(station, &li_station, &supervised).await?;
    ensure!(
        events.iter().any(|(k, by)| k == "supervised" && by == "director"),
        "the station holds {events:?}"
    );
    ensure!(
        told(station, "officer-li", "supervised", &supervised).await?,
        "officer li was not told of the supervision at the station"
    );
    // A resident's petition filed at the county reached the station's officers.
    ensure!(
        told(station, "officer-li", "new_petition", &taken_back).await?,
        "officer li was not told of the new petition at the station"
    );
    // The county's clock rules came down: both tiers compute the same deadlines.
    ensure!(
        station.state.docs.settings().rules == county.state.docs.settings().rules,
        "the station's clock rules differ from the county's"
    );
    // The county's report says when the station last synced.
    let (status, report) = call(
        county,
        &director,
        "GET",
        "/api/reports/kpi?unit=county&from=0",
        Value::Null,
    )
    .await?;
    ensure!(status == 200, "the KPI report answered {status}: {report}");
    let line = &report["stations"][0];
    ensure!(
        line["unit"] == "station-east" && line["station"] == "station-east-server" && line["last_sync_at"].is_i64(),
        "the report shows no station line: {report}"
    );
    // The chief's supervision, refused at the county, is gone everywhere.
    for (server, token) in [(&county, &director), (&station, &li_station)] {
        let events = timeline(server, token, &taken_back).await?;
        ensure!(
            !events.iter().any(|(k, _)| k == "supervised"),
            "the chief's supervision is still there: {events:?}"
        );
    }
    // The chief's phone hears why on its next exchange, as a phone hears
    // any refusal, and drops the change.
    let report = phone.sync(&chief_url, 3).await?;
    let rules: Vec<String> = report.refused().into_iter().map(|(_, _, rule)| rule).collect();
    ensure!(rules == ["role-required"], "the chief's phone heard {rules:?}");
    let held = phone.store.docs.get(&doc_id(&taken_back)?).context("still held")?;
    let held = PetitionDoc::from_doc(held.clone())?;
    ensure!(
        !held.events()?.iter().any(|e| e.kind().as_str() == "supervised"),
        "the chief's phone still holds the refused supervision"
    );
    ensure!(
        phone.sync(&chief_url, 3).await?.refused().is_empty(),
        "the chief's phone was told twice"
    );
    // So does officer li's phone, which did not make the change: it drops
    // it and reports the rule.
    li_phone.sync().await?;
    let kinds = li_phone.timeline(&taken_back).await?;
    ensure!(
        !kinds.iter().any(|(k, _)| k == "supervised"),
        "li's phone still holds the refused supervision: {kinds:?}"
    );
    let told = li_phone.refused().await?;
    ensure!(
        told.iter()
            .any(|(doc, rule)| *doc == taken_back && rule == "role-required"),
        "li's phone was told {told:?}"
    );
    // The county's revocation reached the station.
    let (status, _) = login(station, "wang", DEMO_PASSWORD).await?;
    ensure!(status != 200, "wang still signs in at the station");

    // A station may relay only its own people's changes.
    let station_token = county.token("station-east-server").await?;
    let mut doc = county.state.docs.copy(&supervised).await?.context("stored")?;
    let base = doc.get_heads();
    let mut forger = Writer::new("director", 9);
    let mut p = PetitionDoc::from_doc(doc.with_actor(forger.actor.clone()))?;
    PetitionAction::Supervise {
        unit: UnitId::new("county")?,
        note: "伪造".into(),
    }
    .apply(&mut p, &mut forger.author, now)?;
    let forged = p.into_doc();
    let batch_url = format!("ws://{}/batch?token={station_token}", county.addr);
    let refused = relay_directly(
        &batch_url,
        &supervised,
        forged.clone(),
        base.clone(),
        vec![(forger.actor.clone(), "director".into())],
    )
    .await?;
    ensure!(
        refused == ["relay-outside-jurisdiction"],
        "a forged relay got {refused:?}"
    );
    let refused = relay_directly(&batch_url, &supervised, forged, base, Vec::new()).await?;
    ensure!(refused == ["relay-unattested"], "an unattested relay got {refused:?}");

    tiers.stop().await
}

/// Receipt times travel with the documents: a petition filed and signed at
/// the station while its uplink is down for two hours, and one filed at the
/// county meanwhile, run on the same clocks at both tiers once it is back;
/// the deadlines start when the first tier received each petition, not
/// when the other heard of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_the_same_at_both_tiers_after_an_outage() -> anyhow::Result<()> {
    let tiers = Tiers::start(13).await?;
    let (county, station) = (&tiers.county, &tiers.station);
    let (status, body) = login(station, "li", DEMO_PASSWORD).await?;
    ensure!(status == 200, "li signing in at the station answered {status}: {body}");
    let li_station = body["access_token"].as_str().context("a token")?.to_owned();
    let zhang = county.token("res-zhang").await?;

    tiers.cut().await?;
    let filed_at = station.state.clock.now();
    let here = file(station, &li_station, "village-xiaxi", "station-east", "夜里有人偷电缆").await?;
    let above = file(county, &zhang, "village-shangping", "station-east", "桥上的护栏断了").await?;
    tiers.advance(3);
    let (status, body) = call(
        station,
        &li_station,
        "POST",
        &format!("/api/petitions/{here}/actions"),
        json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;
    ensure!(status == 200, "signing at the station answered {status}: {body}");
    // Two hours pass before the uplink comes back.
    tiers.advance(120);
    tiers.restore().await?;
    rounds(&tiers.uplink, 1).await?;

    // Tokens outlive no two hours: li signs in again at both tiers.
    let (station_api, county_api) = (
        Api::new(format!("http://{}", station.addr)),
        Api::new(format!("http://{}", county.addr)),
    );
    let li_station = station_api.sign_in("li", DEMO_PASSWORD).await?;
    let li_county = county_api.sign_in("li", DEMO_PASSWORD).await?;
    for (id, what) in [(&here, "filed at the station"), (&above, "filed at the county")] {
        let at_station = station_api.clocks(&li_station, id).await?;
        let at_county = county_api.clocks(&li_county, id).await?;
        ensure!(
            at_station == at_county,
            "the petition {what} runs on other clocks at the station ({at_station}) than at the county ({at_county})"
        );
    }
    // The one filed at the station is due ten minutes after the station
    // received it, and was signed in time, at both tiers.
    let v = view(county, &li_county, &here).await?;
    let due = v["summary"]["sign_due"].as_i64().context("a sign deadline")?;
    ensure!(
        due == filed_at.plus_minutes(10).millis(),
        "the county says it was due at {due}, ten minutes after {}",
        filed_at.millis()
    );
    let sign = v["summary"]["clocks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["kind"] == "sign")
        .context("a sign clock")?
        .clone();
    ensure!(
        sign["state"]["state"] == "met_on_time",
        "signed after three minutes, the county does not read it as on time: {sign}"
    );
    tiers.stop().await
}

/// The county's uplink password at the city in the three-tier tests.
const COUNTY_PASSWORD: &str = "county uplink secret";

/// A city (the demo organisation) holding the accounts of the county's
/// server and the east station's server, and its admin's token.
async fn city_with_server_accounts() -> anyhow::Result<(TestDb, TestServer, String)> {
    let city_db = TestDb::sqlite().await?;
    let city = TestServer::start(city_db.storage.clone(), SmsSender::DevLog).await?;
    lianxin_demo::seed(&city.state).await?;
    let admin = city.token("admin").await?;
    for (id, login, password, unit) in [
        ("county-server", "county", COUNTY_PASSWORD, "county"),
        ("station-east-server", STATION_LOGIN, STATION_PASSWORD, "station-east"),
    ] {
        let (status, body) = call(
            &city,
            &admin,
            "PUT",
            &format!("/api/admin/users/{id}"),
            json!({"display_name": id, "login": login, "password": password,
                   "memberships": [{"unit": unit, "role": "station_server"}]}),
        )
        .await?;
        ensure!(status == 200, "creating {id} at the city answered {status}: {body}");
    }
    Ok((city_db, city, admin))
}

/// A county that is itself a station of the city: the city, authoritative
/// for every account, hands the county the accounts of the county's own
/// stations' servers, so they sign in there; the county's own account and
/// other stations' people stay out of what each reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_below_the_city_signs_in_its_own_stations() -> anyhow::Result<()> {
    let (city_db, city, _) = city_with_server_accounts().await?;
    let county_db = TestDb::sqlite().await?;
    let county = TestServer::start(county_db.storage.clone(), SmsSender::DevLog).await?;
    let mut config = UpstreamConfig::new(format!("http://{}", city.addr), "county", COUNTY_PASSWORD);
    config.every = Duration::from_millis(100);
    let uplink = lianxin_server::station::spawn(county.state.clone(), config);
    rounds(&uplink, 1).await?;

    let (status, body) = login(&county, STATION_LOGIN, STATION_PASSWORD).await?;
    ensure!(
        status == 200,
        "the east station's server signing in at the county answered {status}: {body}"
    );
    let (status, _) = login(&county, "county", COUNTY_PASSWORD).await?;
    ensure!(status != 200, "the county's own account signs in at the county");
    let east = body["access_token"].as_str().context("a token")?.to_owned();
    let (status, dir) = call(&county, &east, "GET", "/api/station/directory", Value::Null).await?;
    ensure!(
        status == 200,
        "the county's directory for east answered {status}: {dir}"
    );
    let people: std::collections::BTreeSet<&str> = dir["people"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect();
    ensure!(people.contains("officer-li"), "east's directory lacks li: {people:?}");
    for outside in ["station-east-server", "county-server", "officer-zhao", "director"] {
        ensure!(!people.contains(outside), "east's directory lists {outside}");
    }

    drop(uplink);
    county.stop().await?;
    city.stop().await?;
    county_db.cleanup().await;
    city_db.cleanup().await;
    Ok(())
}

/// How many cut-and-reconnect runs the random-cut test makes
/// (`LIANXIN_STATION_CUT_RUNS`; hundreds for a soak, a dozen in CI).
fn cut_runs() -> usize {
    lianxin_tests::tiers::runs_from_env("LIANXIN_STATION_CUT_RUNS", 12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_at_random_bytes_of_the_uplink_lose_nothing_and_repeat_nothing() -> anyhow::Result<()> {
    let tiers = Tiers::start(11).await?;
    let (county, station, link, uplink) = (&tiers.county, &tiers.station, &tiers.link, &tiers.uplink);
    let zhang = county.token("res-zhang").await?;
    let shared = file(county, &zhang, "village-shangping", "station-east", "村道积水").await?;
    rounds(uplink, 1).await?;
    let li = station.token("officer-li").await?;
    let director = county.token("director").await?;
    let mut filed = Vec::new();
    let runs = cut_runs();
    // Cut within what a reconnect carries each way (half of what the run
    // before carried, cut attempt and all), so most runs really cut
    // mid-exchange.
    let mut carried = (1_500u64, 1_500u64);
    let mut cut = 0;
    for run in 0..runs {
        // Both sides work while the uplink is down: a new petition and a
        // progress note at the station, a comment by the resident above.
        tiers.cut().await?;
        filed.push(file(station, &li, "village-xiaxi", "station-east", &format!("第{run}件")).await?);
        let (status, body) = call(
            station,
            &li,
            "POST",
            &format!("/api/petitions/{shared}/actions"),
            json!({"action": "progress", "unit": "station-east", "note": format!("进展{run}")}),
        )
        .await?;
        ensure!(status == 200, "progress at the station answered {status}: {body}");
        let (status, body) = call(
            county,
            &zhang,
            "POST",
            &format!("/api/petitions/{shared}/actions"),
            json!({"action": "comment", "text": format!("还没修好{run}")}),
        )
        .await?;
        ensure!(status == 200, "a comment at the county answered {status}: {body}");
        // It comes back cut at a random byte, up or down, once or twice.
        let direction = if run % 2 == 0 { Direction::Up } else { Direction::Down };
        let within = match direction {
            Direction::Up => carried.0,
            Direction::Down => carried.1,
        };
        link.reset_stats();
        link.set_cut_plan(CutPlan::random(direction, 1..=(within / 2).max(64)).connections(1 + run as u64 % 2));
        let target = uplink.status().rounds + 1;
        wait(uplink, "a round after the cuts", |s| s.rounds >= target).await?;
        let stats = link.stats();
        cut += usize::from(stats.cuts > 0);
        carried = (stats.bytes_up.max(64), stats.bytes_down.max(64));
    }
    eprintln!("station_cut_runs={runs} station_cut_reconnects_cut={cut}");
    ensure!(
        cut * 2 >= runs,
        "only {cut} of {runs} reconnects were cut: the cuts fall beyond what an exchange carries"
    );
    link.clear_cut_plan();
    rounds(uplink, 1).await?;
    // Every document both tiers hold is the same at both, and each step is there once.
    for id in filed.iter().chain([&shared]) {
        let mut above = county.state.docs.copy(id).await?.context("at the county")?;
        let mut here = station.state.docs.copy(id).await?.context("at the station")?;
        ensure!(above.get_heads() == here.get_heads(), "{id} differs between the tiers");
    }
    let events = timeline(county, &director, &shared).await?;
    let notes = events
        .iter()
        .filter(|(k, by)| k == "progress" && by == "officer-li")
        .count();
    ensure!(notes == runs, "the county holds {notes} of {runs} progress notes");
    let (_, view) = call(
        county,
        &director,
        "GET",
        &format!("/api/petitions/{shared}"),
        Value::Null,
    )
    .await?;
    let comments = view["conversation"].as_array().map_or(0, Vec::len);
    ensure!(comments == runs, "the county holds {comments} of {runs} comments");
    tiers.stop().await
}

/// Once connected, a round where nothing changed is one round trip on the
/// connection already open: the station reads the directory again only when
/// the generation the county names in its pull moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_round_is_one_round_trip_and_the_directory_comes_only_when_it_moved() -> anyhow::Result<()> {
    let tiers = Tiers::start(11).await?;
    let (county, station, link, uplink) = (&tiers.county, &tiers.station, &tiers.link, &tiers.uplink);
    ensure!(
        uplink.status().directories == 1,
        "the first round reads the directory: {:?}",
        uplink.status()
    );
    // Let a round in flight finish, then count the idle ones.
    rounds(uplink, 1).await?;
    link.reset_stats();
    let before = uplink.status().rounds;
    rounds(uplink, 5).await?;
    let stats = link.stats();
    let after = uplink.status().rounds;
    let idle = after - before;
    ensure!(
        stats.connections == 0,
        "idle rounds open no connection: {stats:?} over {idle} rounds"
    );
    // A round may be under way at either end of the window.
    ensure!(
        stats.round_trips <= idle + 1,
        "an idle round is one round trip: {} round trips over {idle} rounds ({stats:?})",
        stats.round_trips
    );
    ensure!(
        uplink.status().directories == 1,
        "an unchanged directory is not read again: {:?}",
        uplink.status()
    );

    // A new officer at the county: the next pull names a new generation,
    // the station reads the directory once, and the officer signs in there.
    let admin = county.token("admin").await?;
    let (status, body) = call(
        county,
        &admin,
        "PUT",
        "/api/admin/users/officer-he",
        json!({"display_name": "何警官", "login": "he-jing", "password": "he jing new password",
               "memberships": [{"unit": "station-east", "role": "officer"}]}),
    )
    .await?;
    ensure!(status == 200, "adding an officer answered {status}: {body}");
    wait(uplink, "the changed directory", |s| s.directories == 2).await?;
    let (status, body) = login(station, "he-jing", "he jing new password").await?;
    ensure!(
        status == 200,
        "the new officer signing in at the station answered {status}: {body}"
    );
    rounds(uplink, 3).await?;
    ensure!(
        uplink.status().directories == 2,
        "the directory is read once per change: {:?}",
        uplink.status()
    );
    tiers.stop().await
}

/// The uplink's state: the state document and the shared heads, one row
/// per document.
async fn uplink_saved(station: &TestServer) -> anyhow::Result<(Value, Vec<(String, String)>)> {
    let stations = station.state.storage.stations();
    let json = stations.uplink_state().await?.context("a saved uplink state")?;
    Ok((serde_json::from_str(&json)?, stations.uplink_shared().await?))
}

/// The heads the station shares with the county are kept one row per
/// document and written where they moved, so the uplink's state document
/// stays small however many documents the station holds; a state saved
/// before the rows existed (heads inline) is read on restart and written
/// out to rows as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uplink_keeps_its_shared_heads_per_document_and_a_restart_resumes() -> anyhow::Result<()> {
    let tiers = Tiers::start(19).await?;
    let held = lianxin_tests::tiers::stored_all(&tiers.station.state.storage).await?;
    ensure!(held.len() > 5, "the station holds {} documents", held.len());
    let (state, rows) = uplink_saved(&tiers.station).await?;
    ensure!(
        rows.len() == held.len(),
        "{} shared heads saved for {} documents",
        rows.len(),
        held.len()
    );
    ensure!(
        state["client"]["shared"].as_object().is_some_and(|m| m.is_empty()),
        "the state document holds the heads inline: {state}"
    );
    ensure!(state.to_string().len() < 1_000, "the state document is {state}");
    for (doc, heads) in &rows {
        let id: sync_core::batch::DocId = doc.parse().map_err(anyhow::Error::msg)?;
        let key = sync_core::repo_protocol::DocumentId::from_bytes(id.0).to_string();
        let stored: Vec<String> = held[&key].heads.iter().map(|h| h.to_string()).collect();
        ensure!(*heads == stored.join(","), "{key} shares {heads}, holds {stored:?}");
    }

    // A petition filed at the station: one more row, the state still small.
    let li = tiers.station.token("officer-li").await?;
    file(&tiers.station, &li, "village-xiaxi", "station-east", "井盖丢了").await?;
    rounds(&tiers.uplink, 2).await?;
    let (state, rows) = uplink_saved(&tiers.station).await?;
    ensure!(
        rows.len() == held.len() + 1,
        "{} rows after one new petition",
        rows.len()
    );
    ensure!(state.to_string().len() < 1_000, "the state document is {state}");

    // The uplink stops. Its state is rewritten as saved before the rows
    // existed: the heads inline, no rows.
    let Tiers {
        county,
        station,
        link,
        uplink,
        dbs,
    } = tiers;
    drop(uplink);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut state, rows) = uplink_saved(&station).await?;
    let inline: serde_json::Map<String, Value> = rows
        .iter()
        .map(|(doc, heads)| (doc.clone(), json!(heads.split(',').collect::<Vec<_>>())))
        .collect();
    state["client"]["shared"] = Value::Object(inline);
    let docs: Vec<String> = rows.iter().map(|(doc, _)| doc.clone()).collect();
    station
        .state
        .storage
        .stations()
        .save_uplink_state(&state.to_string(), &[], &docs)
        .await?;
    ensure!(uplink_saved(&station).await?.1.is_empty());

    // Restarted, it reads them and writes them out to their rows again,
    // each as it was.
    let uplink = lianxin_server::station::spawn(
        station.state.clone(),
        uplink_config(format!("http://{}", link.addr()), STATION_LOGIN, STATION_PASSWORD),
    );
    rounds(&uplink, 2).await?;
    let holds = rows.len();
    let before = rows;
    let (state, rows) = uplink_saved(&station).await?;
    ensure!(
        rows.len() == holds,
        "{} rows for {holds} documents after the restart",
        rows.len()
    );
    ensure!(rows == before, "the restarted uplink saved other heads than it held");
    ensure!(state.to_string().len() < 1_000, "the state document is {state}");
    Tiers {
        county,
        station,
        link,
        uplink,
        dbs,
    }
    .stop()
    .await
}

/// Tokens hold across tiers without a shared secret: the county's at the
/// station (it trusts the keys its upstream publishes), the station's at the
/// county (the uplink publishes the station's keys), but a station's key
/// signs in nobody the station may not speak for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_at_either_tier_hold_at_the_other_only_for_whom_they_may() -> anyhow::Result<()> {
    let tiers = Tiers::start(13).await?;
    let (county, station, uplink) = (&tiers.county, &tiers.station, &tiers.uplink);
    let me = |body: &Value| body["id"].as_str().unwrap_or_default().to_owned();

    // A county token at the station.
    let li_county = county.token("officer-li").await?;
    let (status, body) = station.get("/api/me", Some(&li_county)).await?;
    ensure!(
        status == 200 && me(&body) == "officer-li",
        "a county token at the station answered {status}: {body}"
    );

    // A station token at the county, once the uplink published the keys.
    let (status, body) = login(station, "li", DEMO_PASSWORD).await?;
    ensure!(status == 200, "li signing in at the station answered {status}: {body}");
    let li_station = body["access_token"].as_str().context("a token")?.to_owned();
    let (status, _) = county.get("/api/me", Some(&li_station)).await?;
    ensure!(
        status == 401,
        "before the station published its keys the county does not know them ({status})"
    );
    rounds(uplink, 2).await?;
    let (status, body) = county.get("/api/me", Some(&li_station)).await?;
    ensure!(
        status == 200 && me(&body) == "officer-li",
        "a station token at the county answered {status}: {body}"
    );
    let (status, body) = county.get("/api/petitions?limit=5", Some(&li_station)).await?;
    ensure!(
        status == 200,
        "li acts at the county with the station's token: {status}: {body}"
    );

    // The station's key signing in the county's director is refused, with the rule.
    let now = station.state.auth.now();
    let forged = lianxin_server::auth::AccessClaims {
        sub: "director".into(),
        jti: "forged-director".into(),
        iat: now.millis() / 1000,
        exp: now.millis() / 1000 + 600,
        kind: lianxin_server::storage::UserKind::Staff,
        sid: "forged".into(),
        iss: Some(station.state.auth.keys().issuer().to_owned()),
        foreign: None,
    };
    let forged = station.state.auth.keys().sign(&forged, now).await?;
    let (status, body) = county.get("/api/me", Some(&forged)).await?;
    ensure!(
        status == 401 && body.to_string().contains("relay-outside-jurisdiction"),
        "a station token for the director answered {status}: {body}"
    );

    // A station token is no key of another station, nor the county's.
    let station_token = county.token("station-east-server").await?;
    let (status, body) = call(
        county,
        &station_token,
        "PUT",
        "/api/station/keys",
        json!({"issuer": "east", "keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
               "kid": "k1", "x": "not a key", "status": "current"}]}),
    )
    .await?;
    ensure!(
        status == 400 && body.to_string().contains("not an Ed25519 public key"),
        "a key that does not read answered {status}: {body}"
    );
    let li_token = county.token("officer-li").await?;
    let (status, body) = call(
        county,
        &li_token,
        "PUT",
        "/api/station/keys",
        json!({"issuer": "east", "keys": []}),
    )
    .await?;
    ensure!(
        status == 403,
        "an officer publishing station keys answered {status}: {body}"
    );
    tiers.stop().await
}

/// After a long outage the station catches up in pages, both ways, and its
/// phones keep syncing with it while it does: the catch-up yields between
/// pages and never holds what a phone's exchange needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_is_caught_up_in_pages_while_the_phones_keep_syncing() -> anyhow::Result<()> {
    const ABOVE: usize = 160;
    const HERE: usize = 30;
    let tiers = Tiers::start_with(
        17,
        Setup {
            // A slow uplink, so the catch-up takes a while.
            profile: Profile::new("uplink", 400_000, 400_000, Duration::from_millis(250), 0.0),
            county_page_docs: 20,
            push_page_docs: 10,
            ..Setup::default()
        },
    )
    .await?;
    let (county, station, link, uplink) = (&tiers.county, &tiers.station, &tiers.link, &tiers.uplink);
    let li_url = format!(
        "ws://{}/batch?token={}",
        station.addr,
        station.token("officer-li").await?
    );
    let mut phone = Phone::default();
    phone.sync(&li_url, 3).await?;
    let held = phone.store.docs.len();

    // The outage: residents write to the county, officers file at the station.
    tiers.cut().await?;
    let zhang = county.token("res-zhang").await?;
    let li = station.token("officer-li").await?;
    let mut above = Vec::new();
    for n in 0..ABOVE {
        above.push(
            file(
                county,
                &zhang,
                "village-shangping",
                "station-east",
                &format!("县里收到的第{n}件"),
            )
            .await?,
        );
    }
    let mut here = Vec::new();
    for n in 0..HERE {
        here.push(
            file(
                station,
                &li,
                "village-xiaxi",
                "station-east",
                &format!("所里登记的第{n}件"),
            )
            .await?,
        );
    }

    // The link comes back; while the station catches up, li's phone syncs.
    let before = uplink.status();
    link.clear_cut_plan();
    let mut during = Vec::new();
    loop {
        let now = uplink.status();
        if now.rounds > before.rounds {
            break;
        }
        let started = std::time::Instant::now();
        phone.sync(&li_url, 3).await?;
        let took = started.elapsed();
        let after = uplink.status();
        if after.rounds == before.rounds && after.exchanges > before.exchanges {
            during.push(took);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = rounds(uplink, 1).await?;
    let pages = done.exchanges - before.exchanges;
    ensure!(
        pages as usize >= ABOVE / 20,
        "{ABOVE} documents above at 20 a page came in {pages} exchanges"
    );
    ensure!(
        !during.is_empty(),
        "no phone sync completed while the station caught up ({pages} exchanges)"
    );
    let slowest = during.iter().max().copied().unwrap_or_default();
    ensure!(
        slowest < Duration::from_secs(5),
        "a phone sync during the catch-up took {slowest:?}"
    );
    eprintln!(
        "catch-up: {pages} exchanges; {} phone syncs during it, the slowest {slowest:?}",
        during.len()
    );

    // Everything is at both tiers, the same, and on the phone.
    for id in above.iter().chain(&here) {
        let mut up = county.state.docs.copy(id).await?.context("at the county")?;
        let mut down = station.state.docs.copy(id).await?.context("at the station")?;
        ensure!(up.get_heads() == down.get_heads(), "{id} differs between the tiers");
    }
    phone.sync(&li_url, 3).await?;
    ensure!(
        phone.store.docs.len() == held + ABOVE + HERE,
        "the phone holds {} documents, not {}",
        phone.store.docs.len(),
        held + ABOVE + HERE
    );
    tiers.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_rosters_travel_both_ways_and_the_duty_desk_follows_the_latest() -> anyhow::Result<()> {
    let tiers = Tiers::start(13).await?;
    let (county, station, uplink) = (&tiers.county, &tiers.station, &tiers.uplink);
    let zhang = county.token("res-zhang").await?;
    let (li, wang) = ("officer-li", "officer-wang");
    let li_token = station.token(li).await?;

    // No roster yet: the station's whole staff hears of a new petition.
    let before = file(county, &zhang, "village-shangping", "station-east", "无人值班时").await?;
    rounds(uplink, 2).await?;
    ensure!(
        told(station, li, "new_petition", &before).await? && told(station, wang, "new_petition", &before).await?,
        "without a roster both officers should hear of {before}"
    );

    // The county sets the station's roster: li on duty around the clock.
    let admin = county.token("admin").await?;
    let (status, body) = call(
        county,
        &admin,
        "PUT",
        "/api/units/station-east/roster",
        all_day("station-east", &["officer-li"]),
    )
    .await?;
    ensure!(status == 200, "the county's roster answered {status}: {body}");
    rounds(uplink, 2).await?;
    let (status, here) = call(station, &li_token, "GET", "/api/units/station-east/roster", Value::Null).await?;
    ensure!(status == 200, "the station's roster answered {status}: {here}");
    ensure!(
        here["on_duty"] == json!(["officer-li"])
            && here["updated_by"] == "admin"
            && here["updated_at"] == body["updated_at"],
        "the station holds {here}, the county set {body}"
    );
    // The station's duty desk follows it: li hears, wang does not.
    let on_li = file(county, &zhang, "village-shangping", "station-east", "李警官值班").await?;
    rounds(uplink, 2).await?;
    ensure!(
        told(station, li, "new_petition", &on_li).await?,
        "li, on duty, did not hear of {on_li}"
    );
    ensure!(
        !told(station, wang, "new_petition", &on_li).await?,
        "wang, off duty, heard of {on_li}"
    );

    // The station chief puts wang on duty at the station, later; the uplink
    // sends it up and the county's duty desk follows it.
    station.clock.advance_secs(60);
    let chief = station.token("chief-east").await?;
    let (status, body) = call(
        station,
        &chief,
        "PUT",
        "/api/units/station-east/roster",
        all_day("station-east", &["officer-wang"]),
    )
    .await?;
    ensure!(status == 200, "the station's roster answered {status}: {body}");
    wait(uplink, "the roster sent up", |s| s.rosters_sent >= 1).await?;
    rounds(uplink, 2).await?;
    let director = county.token("director").await?;
    let (_, above) = call(county, &director, "GET", "/api/units/station-east/roster", Value::Null).await?;
    ensure!(
        above["on_duty"] == json!(["officer-wang"]) && above["updated_by"] == "chief-east",
        "the county holds {above}"
    );
    let (_, here) = call(station, &chief, "GET", "/api/units/station-east/roster", Value::Null).await?;
    ensure!(
        here["on_duty"] == json!(["officer-wang"]),
        "the directory took the station's later roster back: {here}"
    );
    let on_wang = file(county, &zhang, "village-shangping", "station-east", "王警官值班").await?;
    ensure!(
        told(county, wang, "new_petition", &on_wang).await?,
        "wang, on duty by the station's roster, did not hear of {on_wang} at the county"
    );
    ensure!(
        !told(county, li, "new_petition", &on_wang).await?,
        "li, off duty, heard of {on_wang} at the county"
    );
    rounds(uplink, 2).await?;
    ensure!(
        told(station, wang, "new_petition", &on_wang).await? && !told(station, li, "new_petition", &on_wang).await?,
        "the station's desk did not follow its own roster for {on_wang}"
    );

    // A roster the county holds a later edit of is kept there, and one for a
    // unit outside the station's jurisdiction is refused.
    let station_token = county.token("station-east-server").await?;
    let sent = json!({"rosters": [
        {"unit": "station-east", "roster": all_day("station-east", &["officer-li"]),
         "updated_by": "chief-east", "updated_at": 1},
        {"unit": "station-west", "roster": all_day("station-west", &["officer-zhao"]),
         "updated_by": "chief-east", "updated_at": i64::MAX}]});
    let (status, results) = call(county, &station_token, "PUT", "/api/station/rosters", sent).await?;
    ensure!(status == 200, "sending rosters up answered {status}: {results}");
    ensure!(
        results["results"][0]["outcome"] == "kept" && results["results"][1]["outcome"] == "refused",
        "the county answered {results}"
    );
    let (_, above) = call(county, &director, "GET", "/api/units/station-east/roster", Value::Null).await?;
    ensure!(
        above["on_duty"] == json!(["officer-wang"]),
        "an older edit won: {above}"
    );
    let (status, _) = call(county, &director, "PUT", "/api/station/rosters", json!({"rosters": []})).await?;
    ensure!(status == 403, "a person sent rosters as a station: {status}");
    tiers.stop().await
}

/// The escalated events of a petition's timeline, each with its outcome and rule.
fn escalations(view: &Value) -> Vec<(String, String)> {
    view["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "escalated")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or_default().to_owned(),
                e["rule"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_station_petition_is_escalated_once_and_a_stale_view_does_not_stand() -> anyhow::Result<()> {
    let policy = EscalationPolicy::from_json(r#"{"default": [{"clock": "sign", "overdue_minutes": 0}]}"#)?;
    let tiers = Tiers::start_with(
        17,
        Setup {
            escalation: policy,
            ..Setup::default()
        },
    )
    .await?;
    let (county, station, uplink) = (&tiers.county, &tiers.station, &tiers.uplink);
    let zhang = county.token("res-zhang").await?;

    // A petition for the station goes unsigned past its ten minutes.
    let overdue = file(county, &zhang, "village-shangping", "station-east", "无人签收").await?;
    rounds(uplink, 1).await?;
    ensure!(
        station.state.docs.exists(&overdue).await?,
        "the station lacks {overdue}"
    );
    tiers.advance(11);
    // The station's sweep runs (its clocks tell its people) but escalates nothing.
    let swept = station.state.notify.tick().await?;
    ensure!(
        swept.escalated == 0 && swept.delivered > 0,
        "the station's sweep did {swept:?}"
    );
    // The uplink goes down; the county escalates, once however often it sweeps.
    tiers.cut().await?;
    let director = county.token("director").await?;
    county.state.notify.tick().await?;
    let v = view(county, &director, &overdue).await?;
    ensure!(
        escalations(&v) == [("applied".to_owned(), String::new())],
        "the county did not escalate {overdue}: {v}"
    );
    ensure!(
        county.state.notify.tick().await?.escalated == 0,
        "the county escalated twice"
    );
    ensure!(
        station.state.notify.tick().await?.escalated == 0,
        "the station escalated"
    );
    tiers.restore().await?;
    rounds(uplink, 1).await?;
    for server in [county, station] {
        ensure!(
            server.state.notify.tick().await?.escalated == 0,
            "a tick after the reconnect escalated"
        );
    }
    rounds(uplink, 1).await?;
    let li = station.token("officer-li").await?;
    for (server, token) in [(county, &director), (station, &li)] {
        let v = view(server, token, &overdue).await?;
        ensure!(
            escalations(&v) == [("applied".to_owned(), String::new())] && v["summary"]["lead"] == "county",
            "{overdue} at {}: {v}",
            server.addr
        );
    }

    // The stale view: the station signs in time while its uplink is down;
    // the county, not having seen it, escalates when the deadline passes.
    let signed = file(county, &zhang, "village-shangping", "station-east", "已按时签收").await?;
    rounds(uplink, 1).await?;
    ensure!(station.state.docs.exists(&signed).await?, "the station lacks {signed}");
    tiers.cut().await?;
    let (status, body) = call(
        station,
        &li,
        "POST",
        &format!("/api/petitions/{signed}/actions"),
        json!({"action": "sign", "unit": "station-east"}),
    )
    .await?;
    ensure!(status == 200, "signing at the station answered {status}: {body}");
    tiers.advance(11);
    county.state.notify.tick().await?;
    let v = view(county, &director, &signed).await?;
    ensure!(
        escalations(&v) == [("applied".to_owned(), String::new())] && v["summary"]["lead"] == "county",
        "the county did not escalate {signed} on its view: {v}"
    );
    tiers.restore().await?;
    rounds(uplink, 2).await?;
    // Both tiers hold the escalation, set aside by the earlier signature,
    // and the station still leads; nothing escalates it again.
    let (director, li) = (county.token("director").await?, station.token("officer-li").await?);
    for server in [county, station] {
        ensure!(
            server.state.notify.tick().await?.escalated == 0,
            "a tick after the reconnect escalated"
        );
    }
    for (server, token) in [(county, &director), (station, &li)] {
        let v = view(server, token, &signed).await?;
        ensure!(
            escalations(&v) == [("superseded".to_owned(), "clock-met".to_owned())]
                && v["summary"]["lead"] == "station-east"
                && v["summary"]["status"] == "signed",
            "{signed} at {}: {v}",
            server.addr
        );
        let v = view(server, token, &overdue).await?;
        ensure!(escalations(&v).len() == 1, "{overdue} at {}: {v}", server.addr);
    }
    tiers.stop().await
}

/// How many petitions the KPI report of `unit` counts at `server`, up to a
/// day after its clock's now (phones stamp by their own clocks).
async fn received(server: &TestServer, token: &str, unit: &str) -> anyhow::Result<u64> {
    let to = server.state.clock.now().millis() + 24 * 3600 * 1000;
    let (status, report) = call(
        server,
        token,
        "GET",
        &format!("/api/reports/kpi?unit={unit}&from=0&to={to}"),
        Value::Null,
    )
    .await?;
    ensure!(status == 200, "the KPI report answered {status}: {report}");
    report["total"]["received"].as_u64().context("a count received")
}

/// The petitions `token`'s user lists at `server`.
async fn listed(server: &TestServer, token: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let (status, page) = call(server, token, "GET", "/api/petitions?limit=200", Value::Null).await?;
    ensure!(status == 200, "listing petitions answered {status}: {page}");
    Ok(page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["doc_id"].as_str().map(str::to_owned))
        .collect())
}

/// The documents `token`'s user's inbox at `server` names.
async fn inbox_docs(server: &TestServer, token: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let (status, body) = call(server, token, "GET", "/api/inbox?after=0", Value::Null).await?;
    ensure!(status == 200, "the inbox answered {status}: {body}");
    Ok(body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["doc_id"].as_str().map(str::to_owned))
        .collect())
}

/// What a sync of the phone library reported about `id`: the documents it
/// removed, and the rules of the refused edits.
fn heard(report: &lianxin_mobile::SyncReport, id: &str) -> (bool, Vec<String>) {
    let mut removed = false;
    let mut rules = Vec::new();
    for e in &report.events {
        match e {
            lianxin_mobile::SyncEvent::DocumentRemoved { doc_id, kind } if doc_id == id => {
                removed = kind == "petition";
            }
            lianxin_mobile::SyncEvent::EditRefused { edit } if edit.doc_id == id => rules.push(edit.rule.clone()),
            _ => {}
        }
    }
    (removed, rules)
}

/// A walk-in petition of res-liu's, recorded by an officer for village-xiaxi.
fn walk_in(title: &str) -> lianxin_mobile::NewPetitionRecord {
    lianxin_mobile::NewPetitionRecord {
        channel: "walk_in".into(),
        category: "help".into(),
        title: title.into(),
        body: "来所里反映的事".into(),
        location_unit: "village-xiaxi".into(),
        routed_to: "station-east".into(),
        submitter: Some("res-liu".into()),
        anonymous: false,
        contact: None,
        attachments: vec![],
    }
}

/// A petition an officer records on his phone at the station while the
/// uplink is down, which the county refuses whole once it is back: the
/// county posted officer wang to the village post of Shangping meanwhile,
/// and an officer records petitions only for his own jurisdiction. The
/// station takes it out of every list; wang's phone and the chief's, which
/// pulled it, drop it and hear the rule, once; a village cadre's phone,
/// which could never read it, hears nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_petition_the_county_refuses_whole_leaves_every_phone_that_held_it() -> anyhow::Result<()> {
    let tiers = Tiers::start(19).await?;
    let (county, station, uplink) = (&tiers.county, &tiers.station, &tiers.uplink);
    let chief_token = station.token("chief-east").await?;
    let sun_token = station.token("cadre-sun").await?;
    let wang = LibraryPhone::open(station, "officer-wang", &station.token("officer-wang").await?).await?;
    wang.refresh_me().await?;
    let chief = LibraryPhone::open(station, "chief-east", &chief_token).await?;
    let sun = LibraryPhone::open(station, "cadre-sun", &sun_token).await?;
    let counted = received(station, &chief_token, "station-east").await?;

    // The uplink is down: wang records a walk-in petition on his phone, the
    // station takes it, the chief's phone pulls it, the cadre's does not.
    tiers.cut().await?;
    let id = wang.replica.submit_petition(walk_in("桥头摊位纠纷"))?;
    wang.sync().await?;
    chief.sync().await?;
    sun.sync().await?;
    ensure!(chief.holds(&id)?, "the chief's phone did not pull the petition");
    ensure!(
        !sun.holds(&id)?,
        "the cadre's phone holds a petition of another village"
    );
    ensure!(
        listed(station, &chief_token).await?.contains(&id),
        "the station does not list it"
    );
    ensure!(received(station, &chief_token, "station-east").await? == counted + 1);
    // Officer li has no phone here: his inbox keeps what he was told.
    let li_token = station.token("officer-li").await?;
    ensure!(
        inbox_docs(station, &li_token).await?.contains(&id),
        "officer li was not told of the new petition"
    );

    // Meanwhile the county posts wang to the Shangping village post.
    let admin = county.token("admin").await?;
    let (status, body) = call(
        county,
        &admin,
        "PUT",
        "/api/admin/users/officer-wang",
        json!({"display_name": "王警官", "login": "wang",
               "memberships": [{"unit": "village-shangping", "role": "officer"}]}),
    )
    .await?;
    ensure!(status == 200, "posting wang answered {status}: {body}");

    // The uplink comes back: the county refuses the petition whole, and the
    // station takes it out of every list.
    tiers.link.clear_cut_plan();
    wait(uplink, "the petition taken back", |s| s.taken_back >= 1).await?;
    rounds(uplink, 1).await?;
    ensure!(!county.state.docs.exists(&id).await?, "the county stored it");
    ensure!(
        !listed(station, &chief_token).await?.contains(&id),
        "the station still lists it"
    );
    let (status, _) = call(
        station,
        &chief_token,
        "GET",
        &format!("/api/petitions/{id}"),
        Value::Null,
    )
    .await?;
    ensure!(status == 404, "reading it at the station answered {status}");
    let now_counted = received(station, &chief_token, "station-east").await?;
    ensure!(
        now_counted == counted,
        "the KPI report counts {now_counted} petitions, {counted} before it was filed"
    );
    ensure!(
        !inbox_docs(station, &li_token).await?.contains(&id),
        "officer li's inbox still names it"
    );

    // Wang's phone hears the county's rule and no longer holds it; once.
    let report = wang.sync().await?;
    let (removed, rules) = heard(&report, &id);
    ensure!(
        removed && rules == ["not-allowed-to-create"],
        "wang's phone heard {:?}",
        report.events
    );
    ensure!(!wang.holds(&id)?, "wang's phone still holds it");
    let refused = wang.refused().await?;
    ensure!(
        refused.contains(&(id.clone(), "not-allowed-to-create".to_owned())),
        "wang's phone lists the refused edits {refused:?}"
    );
    let again = wang.sync().await?;
    ensure!(
        heard(&again, &id) == (false, vec![]),
        "wang's phone was told twice: {:?}",
        again.events
    );
    // The chief's phone, which only pulled it, drops it too.
    let report = chief.sync().await?;
    let (removed, rules) = heard(&report, &id);
    ensure!(
        removed && rules == ["not-allowed-to-create"],
        "the chief's phone heard {:?}",
        report.events
    );
    ensure!(!chief.holds(&id)?, "the chief's phone still holds it");
    // The cadre, who could never read it, hears nothing of it: neither his
    // phone nor a pull from scratch names it.
    let report = sun.sync().await?;
    ensure!(
        heard(&report, &id) == (false, vec![]) && sun.refused().await?.is_empty(),
        "the cadre's phone heard {:?}",
        report.events
    );
    let pulled =
        lianxin_tests::tiers::pulled_from(&format!("ws://{}/batch?token={sun_token}", station.addr), 0).await?;
    ensure!(
        !pulled.iter().any(|(doc, _)| *doc == id),
        "a pull to the cadre names it: {pulled:?}"
    );
    // A pull from scratch to the chief names it with its refusal and no
    // history, as he may have held it.
    let pulled =
        lianxin_tests::tiers::pulled_from(&format!("ws://{}/batch?token={chief_token}", station.addr), 0).await?;
    ensure!(
        pulled.iter().any(|(doc, refused)| *doc == id && refused.len() == 1),
        "a pull to the chief from scratch: {pulled:?}"
    );

    let settings = lianxin_server::check::CheckSettings::stored(&station.state.storage).await?;
    let check = lianxin_server::check::check_database(&station.state.storage, &settings).await?;
    ensure!(check.problems.is_empty(), "the station's check: {:?}", check.problems);
    tiers.stop().await
}

/// Starts the uplink of `server` to the tier at `url` as `login`, quick to
/// retry, and waits for its first round.
async fn uplink_to(server: &TestServer, url: String, login: &str, password: &str) -> anyhow::Result<Uplink> {
    let uplink = lianxin_server::station::spawn(server.state.clone(), uplink_config(url, login, password));
    rounds(&uplink, 1).await?;
    Ok(uplink)
}

/// Three tiers: the city refuses whole a petition that the county, a
/// station of the city (on PostgreSQL when `LIANXIN_TEST_POSTGRES_URL` is
/// set), had accepted from its east station while its own uplink was down. The county takes it back, tells the east station,
/// which takes it back the same way, and the phone that recorded it there
/// drops it and hears the city's rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_of_a_station_takes_a_petition_refused_whole_back_too() -> anyhow::Result<()> {
    let (city_db, city, admin) = city_with_server_accounts().await?;
    // The county takes the petition back too: on PostgreSQL when one is named.
    let county_db = match TestDb::postgres().await? {
        Some(db) => db,
        None => TestDb::sqlite().await?,
    };
    eprintln!("the county runs on {:?}", county_db.backend());
    let county = TestServer::start(county_db.storage.clone(), SmsSender::DevLog).await?;
    let link = LinkSim::start(city.addr, Profile::loopback(), 23).await?;
    let county_up = uplink_to(&county, format!("http://{}", link.addr()), "county", COUNTY_PASSWORD).await?;
    let east_db = TestDb::sqlite().await?;
    let east = TestServer::start(east_db.storage.clone(), SmsSender::DevLog).await?;
    let east_up = uplink_to(
        &east,
        format!("http://{}", county.addr),
        STATION_LOGIN,
        STATION_PASSWORD,
    )
    .await?;

    // The county's uplink to the city goes down; officer wang records a
    // petition on his phone at the east station, which relays it to the
    // county, which accepts it on what it knows of wang.
    link.set_cut_plan(CutPlan::after(Direction::Up, 0).every_connection());
    link.cut_all_now();
    wait(&county_up, "a failed round of the county", |s| s.failures >= 1).await?;
    let wang = LibraryPhone::open(&east, "officer-wang", &east.token("officer-wang").await?).await?;
    wang.refresh_me().await?;
    let id = wang.replica.submit_petition(walk_in("渡口的船坏了"))?;
    wang.sync().await?;
    // Two rounds: the first may have begun before the petition arrived.
    rounds(&east_up, 2).await?;
    ensure!(
        county.state.docs.exists(&id).await?,
        "the county did not take the petition"
    );

    // At the city, wang is posted to the Shangping village post meanwhile.
    let (status, body) = call(
        &city,
        &admin,
        "PUT",
        "/api/admin/users/officer-wang",
        json!({"display_name": "王警官", "login": "wang",
               "memberships": [{"unit": "village-shangping", "role": "officer"}]}),
    )
    .await?;
    ensure!(status == 200, "posting wang answered {status}: {body}");

    // The county's uplink comes back: the city refuses the petition whole,
    // the county takes it back, and so does the east station after it.
    link.clear_cut_plan();
    wait(&county_up, "the county taking the petition back", |s| s.taken_back >= 1).await?;
    wait(&east_up, "the east station taking the petition back", |s| {
        s.taken_back >= 1
    })
    .await?;
    ensure!(!city.state.docs.exists(&id).await?, "the city stored it");
    for (tier, server) in [("county", &county), ("east", &east)] {
        ensure!(!server.state.docs.exists(&id).await?, "the {tier} still holds it");
        let chief = server.token("chief-east").await?;
        ensure!(
            !listed(server, &chief).await?.contains(&id),
            "the {tier} still lists it"
        );
        let settings = lianxin_server::check::CheckSettings::stored(&server.state.storage).await?;
        let check = lianxin_server::check::check_database(&server.state.storage, &settings).await?;
        ensure!(check.problems.is_empty(), "the {tier}'s check: {:?}", check.problems);
    }

    // Wang's phone hears the city's rule from the east station and drops it.
    let report = wang.sync().await?;
    let (removed, rules) = heard(&report, &id);
    ensure!(
        removed && rules == ["not-allowed-to-create"],
        "wang's phone heard {:?}",
        report.events
    );
    ensure!(!wang.holds(&id)?, "wang's phone still holds it");

    drop(east_up);
    drop(county_up);
    east.stop().await?;
    county.stop().await?;
    city.stop().await?;
    for db in [east_db, county_db, city_db] {
        db.cleanup().await;
    }
    Ok(())
}
