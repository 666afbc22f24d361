//! Three tiers as `lianxin` processes: a city (the demo organisation, the
//! top tier), a county that is a station of the city, and two stations
//! (east and west) of the county, each `lianxin serve` on port 0 with a
//! database of its own (the stations and the city on SQLite, the county on
//! PostgreSQL when `LIANXIN_TEST_POSTGRES_URL` is set). Every uplink goes
//! through the link simulator, so a test cuts it where it likes; what a tier
//! stores is read from its database, and everything else over HTTP.
//!
//! Each tier's log goes to a file that a failing test prints the end of.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use lianxin_demo::DEMO_PASSWORD;
use lianxin_server::testing::{NodeOptions, NodeProcess, POSTGRES_URL_VAR, TestDb};
use lianxin_tests::linksim::{CutPlan, Direction, LinkSim, Profile};
use lianxin_tests::phone::Phone;
use lianxin_tests::scenario::Writer;
use lianxin_tests::tiers::{Api, doc_id, load, relay_directly, stored, stored_all};
use serde_json::{Value, json};
use sync_core::UnitId;
use sync_core::petition::{PetitionAction, PetitionDoc};

/// How long one awaited condition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(90);

/// The station servers' accounts at the city, which is authoritative for
/// every account: (user id, login, unit).
const SERVERS: [(&str, &str, &str); 3] = [
    ("county-server", "county", "county"),
    ("station-east-server", "station-east", "station-east"),
    ("station-west-server", "station-west", "station-west"),
];

fn password(login: &str) -> String {
    format!("{login} uplink secret")
}

/// Polls `probe` until it yields a value (at most `patience`).
async fn until<T>(
    what: &str,
    patience: Duration,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("waited {patience:?} for {what}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// One `lianxin serve` process and its database.
struct Tier {
    name: &'static str,
    api: Api,
    addr: SocketAddr,
    db: TestDb,
    node: NodeProcess,
    log: PathBuf,
}

impl Tier {
    /// Starts `lianxin serve ARGS` on port 0 over `db`; returns once it
    /// listens, with what it printed before (the demo banner).
    async fn start(
        name: &'static str,
        db: TestDb,
        args: &[String],
        env: &[(&str, String)],
    ) -> anyhow::Result<(Tier, Vec<String>)> {
        let log = db.dir().join(format!("{name}.log"));
        let options = NodeOptions {
            args: args.to_vec(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            own_secret: true,
            log: Some(log.clone()),
        };
        let (node, printed) = NodeProcess::launch(Path::new(env!("CARGO_BIN_EXE_lianxin")), &db, name, options)
            .await
            .with_context(|| format!("the {name}'s log:\n{}", tail(&log)))?;
        let url = node.url.clone();
        let addr = url.trim_start_matches("http://").parse()?;
        Ok((
            Tier {
                name,
                api: Api::new(url),
                addr,
                db,
                node,
                log,
            },
            printed,
        ))
    }

    /// Starts a station of the server at `above` (the link simulator's end).
    async fn station(
        name: &'static str,
        db: TestDb,
        above: &LinkSim,
        login: &str,
        extra: &[&str],
    ) -> anyhow::Result<Tier> {
        let mut args: Vec<String> = [
            "--upstream",
            &format!("http://{}", above.addr()),
            "--upstream-login",
            login,
            "--upstream-every",
            "300ms",
            "--upstream-retry-max",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let (tier, _) = Tier::start(name, db, &args, &[("LIANXIN_UPSTREAM_PASSWORD", password(login))]).await?;
        Ok(tier)
    }

    /// `lianxin admin check` over this tier's database while it serves, as
    /// an operator runs it: every document rebuilds from its snapshot and
    /// changes, and its projection rows equal a recomputation.
    async fn check(&self) -> anyhow::Result<()> {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lianxin"))
            .args(["--log", "error", "--data-dir"])
            .arg(self.db.dir().join(self.name))
            .args(["--database-url", &self.db.database_url(), "admin", "check"])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success() && stdout.lines().any(|l| l == "problems=0"),
            "`lianxin admin check` at the {}: {stdout}{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    async fn stop(self) {
        let _ = self.node.kill().await;
        self.db.cleanup().await;
    }
}

/// The last lines of a log file.
fn tail(log: &PathBuf) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// How the city runs.
#[derive(Default)]
struct Options {
    /// `--escalation-policy` (JSON) at the city, the one tier that escalates.
    escalation: Option<Value>,
    /// Clock-rule overrides the city's admin sets before the county starts.
    clock_overrides: Vec<Value>,
    /// Every tier's `--scheduler-every`.
    scheduler_every: Option<&'static str>,
}

/// City ← county ← {east, west}, each uplink through a link simulator.
struct Tiers {
    city: Tier,
    county: Tier,
    east: Tier,
    west: Tier,
    /// The county's uplink to the city, and the stations' to the county.
    county_up: LinkSim,
    east_up: LinkSim,
    west_up: LinkSim,
    /// Tokens at the city: its admin, and the demo resident 张大爷 (from the demo banner).
    admin: String,
    zhang: String,
}

impl Tiers {
    async fn start(seed: u64, options: Options) -> anyhow::Result<Tiers> {
        let city_db = TestDb::sqlite().await?;
        let scheduler: Vec<&str> = match options.scheduler_every {
            Some(every) => vec!["--scheduler-every", every],
            None => Vec::new(),
        };
        let mut args: Vec<String> = ["--demo"].iter().chain(&scheduler).map(|s| s.to_string()).collect();
        if let Some(policy) = &options.escalation {
            let path = city_db.dir().join("escalation.json");
            std::fs::write(&path, policy.to_string())?;
            args.extend(["--escalation-policy".to_owned(), path.display().to_string()]);
        }
        let (city, banner) = Tier::start("city", city_db, &args, &[]).await?;
        let zhang = banner
            .iter()
            .find_map(|l| l.strip_prefix("A 12-hour token for res-zhang: "))
            .context("the demo banner names a token for res-zhang")?
            .trim()
            .to_owned();
        let admin = city.api.sign_in("admin", DEMO_PASSWORD).await?;
        for (id, login, unit) in SERVERS {
            let (status, body) = city
                .api
                .put(
                    &admin,
                    &format!("/api/admin/users/{id}"),
                    json!({"display_name": format!("{unit} 服务器"), "login": login, "password": password(login),
                           "memberships": [{"unit": unit, "role": "station_server"}]}),
                )
                .await?;
            ensure!(status == 200, "creating {id} at the city answered {status}: {body}");
        }
        if !options.clock_overrides.is_empty() {
            let (status, mut settings) = city.api.get(&admin, "/api/clock-rules").await?;
            ensure!(status == 200, "the clock rules answered {status}: {settings}");
            settings["rules"]["overrides"] = Value::Array(options.clock_overrides.clone());
            let (status, body) = city.api.put(&admin, "/api/admin/clock-rules", settings).await?;
            ensure!(status == 200, "new clock rules answered {status}: {body}");
        }

        let county_db = match TestDb::postgres().await? {
            Some(db) => db,
            None => {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "tiers: {POSTGRES_URL_VAR} not set: PostgreSQL skipped, the county runs on SQLite"
                );
                TestDb::sqlite().await?
            }
        };
        let county_up = LinkSim::start(city.addr, Profile::loopback(), seed).await?;
        let county = Tier::station("county", county_db, &county_up, "county", &scheduler).await?;
        // The county holds the accounts of its own stations once the city's
        // directory came down.
        until("the county to sign in its stations' servers", PATIENCE, async || {
            Ok((county.api.login("station-east", &password("station-east")).await?.0 == 200).then_some(()))
        })
        .await?;
        let east_up = LinkSim::start(county.addr, Profile::loopback(), seed + 1).await?;
        let west_up = LinkSim::start(county.addr, Profile::loopback(), seed + 2).await?;
        let east = Tier::station("east", TestDb::sqlite().await?, &east_up, "station-east", &scheduler).await?;
        let west = Tier::station("west", TestDb::sqlite().await?, &west_up, "station-west", &scheduler).await?;
        for (tier, login) in [(&east, "li"), (&west, "zhao")] {
            until(
                &format!("{login} to sign in at the {}", tier.name),
                PATIENCE,
                async || Ok((tier.api.login(login, DEMO_PASSWORD).await?.0 == 200).then_some(())),
            )
            .await?;
        }
        Ok(Tiers {
            city,
            county,
            east,
            west,
            county_up,
            east_up,
            west_up,
            admin,
            zhang,
        })
    }

    /// Runs `test`, prints the end of every tier's log if it fails, then
    /// stops the processes and drops their databases.
    async fn run(self, test: impl AsyncFnOnce(&Tiers) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let outcome = test(&self).await;
        if let Err(e) = &outcome {
            eprintln!("failed: {e:#}");
            for tier in [&self.city, &self.county, &self.east, &self.west] {
                eprintln!("--- the end of the {}'s log ---\n{}", tier.name, tail(&tier.log));
            }
        }
        drop((self.county_up, self.east_up, self.west_up));
        for tier in [self.east, self.west, self.county, self.city] {
            tier.stop().await;
        }
        outcome
    }

    /// Cuts `link` now and every connection through it from now on.
    fn cut(link: &LinkSim) {
        link.set_cut_plan(CutPlan::after(Direction::Up, 0).every_connection());
        link.cut_all_now();
    }

    /// Waits until the tiers agree: every document a station holds is
    /// stored with the same heads at the county and the city, every
    /// document the county holds with the same at the city, and each of
    /// `ids` is held by east, the county and the city alike.
    async fn converged(&self, ids: &[String]) -> anyhow::Result<()> {
        let mut last = String::new();
        let outcome = until("every tier to converge", PATIENCE, async || {
            let city = stored_all(&self.city.db.storage).await?;
            let county = stored_all(&self.county.db.storage).await?;
            let east = stored_all(&self.east.db.storage).await?;
            let west = stored_all(&self.west.db.storage).await?;
            for id in ids {
                if !east.contains_key(id) {
                    last = format!("east lacks {id}");
                    return Ok(None);
                }
            }
            for (below, above, name) in [
                (&east, &county, "east/county"),
                (&west, &county, "west/county"),
                (&east, &city, "east/city"),
                (&county, &city, "county/city"),
            ] {
                for (id, here) in below {
                    if above.get(id).map(|s| &s.heads) != Some(&here.heads) {
                        last = format!("{name} differ on {id}");
                        return Ok(None);
                    }
                }
            }
            // The other way: what the county holds in east's scope reached east.
            for id in ids {
                if county.get(id).map(|s| &s.heads) != east.get(id).map(|s| &s.heads) {
                    last = format!("the county's {id} has not reached east");
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await;
        outcome.with_context(|| last.clone())
    }

    /// Every tier stores each change it holds once, and passes `lianxin admin check`.
    async fn each_change_once(&self) -> anyhow::Result<usize> {
        let mut changes = 0;
        for tier in [&self.city, &self.county, &self.east, &self.west] {
            tier.check().await?;
            for (id, s) in stored_all(&tier.db.storage).await? {
                ensure!(
                    s.repeated.is_empty(),
                    "the {} stores {} changes of {id} twice",
                    tier.name,
                    s.repeated.len()
                );
                changes += s.changes.len();
            }
        }
        Ok(changes)
    }
}

fn count(timeline: &[(String, String)], kind: &str) -> usize {
    timeline.iter().filter(|(k, _)| k == kind).count()
}

fn now() -> anyhow::Result<sync_core::Timestamp> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    Ok(sync_core::Timestamp::from_millis(i64::try_from(ms)?))
}

/// East's uplink is down for a while: officers sign in and work at the
/// station, the county disables one of them and demotes the chief (as the
/// city, authoritative for people, says), the director supervises at the
/// county, a petition of the station goes overdue and the city escalates
/// it; then the uplink comes back and every tier converges, each change
/// once, the chief's refused supervision taken back and reported to his
/// phone, one escalation everywhere. Then a forged relay, through the
/// county's process boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tiers_through_an_outage() -> anyhow::Result<()> {
    let options = Options {
        // Only walk-in leads escalate, on a 2-minute sign clock (the
        // shortest the rules allow), so nothing else in the demo moves.
        escalation: Some(json!({"channels": {"walk_in": [{"clock": "sign", "overdue_minutes": 0}]}})),
        clock_overrides: vec![json!({"channel": "walk_in", "category": "lead",
                                     "sign": {"wall_minutes": 2, "due_soon_before": 1}})],
        scheduler_every: Some("1s"),
    };
    let tiers = Tiers::start(31, options).await?;
    tiers.run(async |t| outage(t).await).await
}

async fn outage(t: &Tiers) -> anyhow::Result<()> {
    let (city, county, east, west) = (&t.city.api, &t.county.api, &t.east.api, &t.west.api);
    let li = east.sign_in("li", DEMO_PASSWORD).await?;
    let walk_in = |category: &str, title: &str| {
        json!({"channel": "walk_in", "category": category, "title": title, "body": "来所反映",
               "submitter": "res-liu", "location": {"unit": "village-xiaxi"}, "routed_to": "station-east"})
    };
    // A station petition whose 2-minute sign clock starts now, at every tier.
    let overdue = east.file(&li, walk_in("lead", "可疑人员线索")).await?;
    // Two of the resident's petitions filed at the city reach the station.
    let chief_line = |title: &str| {
        json!({"channel": "chief_line", "category": "help", "title": title, "body": "详情",
               "location": {"unit": "village-shangping"}, "routed_to": "station-east"})
    };
    let demoted = city.file(&t.zhang, chief_line("路灯坏了")).await?;
    let supervised = city.file(&t.zhang, chief_line("水渠堵了")).await?;
    t.converged(&[overdue.clone(), demoted.clone(), supervised.clone()])
        .await?;
    let told = east.inbox(&li).await?;
    ensure!(
        told.contains(&("new_petition".into(), supervised.clone())),
        "officer li was not told at the station of the petition filed at the city: {told:?}"
    );

    // The chief's phone holds the station's petitions; wang has a session.
    let chief = east.sign_in("chief", DEMO_PASSWORD).await?;
    let chief_url = east.batch_url(&chief);
    let mut phone = Phone::default();
    phone.sync(&chief_url, 3).await?;
    ensure!(phone.store.docs.contains_key(&doc_id(&demoted)?));
    let wang = east.sign_in("wang", DEMO_PASSWORD).await?;

    // East's uplink goes down.
    Tiers::cut(&t.east_up);

    // Officers sign in at the station and work there: a walk-in filed,
    // signed, the writer contacted, a reply.
    let li = east.sign_in("li", DEMO_PASSWORD).await?;
    let offline = east.file(&li, walk_in("help", "邻里纠纷")).await?;
    for action in [
        json!({"action": "sign", "unit": "station-east"}),
        json!({"action": "contact", "unit": "station-east", "method": "phone", "note": "电话联系"}),
        json!({"action": "reply", "unit": "station-east", "text": "已调解"}),
    ] {
        east.act(&li, &offline, action).await?;
    }
    // The chief supervises from his phone: still a leader as far as the station knows.
    let mut writer = Writer::new("chief-east", 3);
    let doc = phone.store.docs.remove(&doc_id(&demoted)?).context("held")?;
    let mut p = PetitionDoc::from_doc(doc.with_actor(writer.actor.clone()))?;
    PetitionAction::Supervise {
        unit: UnitId::new("station-east")?,
        note: "所长督办".into(),
    }
    .apply(&mut p, &mut writer.author, now()?)?;
    phone.store.docs.insert(doc_id(&demoted)?, p.into_doc());
    let report = phone.sync(&chief_url, 3).await?;
    ensure!(
        report.refused().is_empty(),
        "the station refused the chief: {:?}",
        report.refused()
    );

    // Meanwhile above: the city's admin makes the chief a plain officer and
    // disables wang; the director supervises at the county.
    for (id, name, login, roles, disabled) in [
        ("chief-east", "黄所长", "chief", vec!["officer"], false),
        ("officer-wang", "王警官", "wang", vec!["officer"], true),
    ] {
        let memberships: Vec<Value> = roles
            .iter()
            .map(|r| json!({"unit": "station-east", "role": r}))
            .collect();
        let (status, body) = city
            .put(
                &t.admin,
                &format!("/api/admin/users/{id}"),
                json!({"display_name": name, "login": login, "memberships": memberships, "disabled": disabled}),
            )
            .await?;
        ensure!(status == 200, "editing {id} at the city answered {status}: {body}");
    }
    let director = county.sign_in("director", DEMO_PASSWORD).await?;
    county
        .act(
            &director,
            &supervised,
            json!({"action": "supervise", "unit": "station-east", "note": "请尽快办理"}),
        )
        .await?;
    // The county holds the city's word on both before east comes back.
    let east_server = county.sign_in("station-east", &password("station-east")).await?;
    until("the city's edits to reach the county", PATIENCE, async || {
        let (status, dir) = county.get(&east_server, "/api/station/directory").await?;
        ensure!(status == 200, "the directory answered {status}: {dir}");
        let person = |id: &str| {
            dir["people"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["id"] == id)
                .cloned()
                .unwrap_or_default()
        };
        let chief_roles: Vec<Value> = person("chief-east")["memberships"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok((chief_roles.len() == 1 && person("officer-wang")["disabled"] == true).then_some(()))
    })
    .await?;
    ensure!(
        east.login("wang", DEMO_PASSWORD).await?.0 == 200,
        "the station lost wang while its uplink was down"
    );

    // The walk-in lead goes overdue at every tier; only the city escalates it.
    let escalated = |timeline: &[(String, String)]| count(timeline, "escalated");
    let city_director = director_at(city).await?;
    until(
        "the city to escalate the overdue lead",
        Duration::from_secs(200),
        async || Ok((escalated(&city.timeline(&city_director, &overdue).await?) == 1).then_some(())),
    )
    .await?;
    until("the county to hold the escalation", PATIENCE, async || {
        Ok((escalated(&county.timeline(&director, &overdue).await?) == 1).then_some(()))
    })
    .await?;
    until(
        "the station's own clock to find the lead overdue",
        PATIENCE,
        async || {
            Ok(east
                .inbox(&li)
                .await?
                .contains(&("overdue".into(), overdue.clone()))
                .then_some(()))
        },
    )
    .await?;
    let here = east.timeline(&li, &overdue).await?;
    ensure!(escalated(&here) == 0, "the station escalated on its own: {here:?}");

    // The uplink comes back, and every tier converges.
    t.east_up.clear_cut_plan();
    let ids = [overdue.clone(), demoted.clone(), supervised.clone(), offline.clone()];
    t.converged(&ids).await?;

    // What the station did offline reached the county and the city, once,
    // with the station's receipt times: every tier runs its clocks alike.
    let clocks = east.clocks(&li, &offline).await?;
    for (api, token) in [(city, &city_director), (county, &director)] {
        let events = api.timeline(token, &offline).await?;
        let expected: Vec<(String, String)> = ["submitted", "signed", "contacted", "replied"]
            .iter()
            .map(|k| (k.to_string(), "officer-li".to_string()))
            .collect();
        ensure!(events == expected, "{} holds {events:?}", api.base);
        let there = api.clocks(token, &offline).await?;
        ensure!(
            there == clocks,
            "the station's walk-in runs on other clocks at {} ({there}) than at the station ({clocks})",
            api.base
        );
    }
    // One escalation at every tier, and the sweeps add none.
    for _ in 0..3 {
        for (api, token) in [(city, &city_director), (county, &director), (east, &li)] {
            let events = api.timeline(token, &overdue).await?;
            ensure!(escalated(&events) == 1, "{} holds {events:?}", api.base);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The director's supervision at the county reached officer li at the station.
    let told = east.inbox(&li).await?;
    ensure!(
        told.contains(&("supervised".into(), supervised.clone())),
        "officer li was not told at the station of the supervision: {told:?}"
    );
    // The chief's supervision, refused at the county, is gone at every tier,
    // and his phone hears the rule.
    for (api, token) in [(city, &city_director), (county, &director), (east, &li)] {
        let events = api.timeline(token, &demoted).await?;
        ensure!(
            !events.iter().any(|(k, by)| k == "supervised" && by == "chief-east"),
            "{} still holds the chief's supervision: {events:?}",
            api.base
        );
    }
    let mut rules = Vec::new();
    for _ in 0..2 {
        let report = phone.sync(&chief_url, 3).await?;
        rules.extend(report.refused().into_iter().map(|(_, _, rule)| rule));
    }
    ensure!(rules == ["role-required"], "the chief's phone heard {rules:?}");
    // The disabled officer no longer signs in at the station, nor uses his session.
    ensure!(
        east.login("wang", DEMO_PASSWORD).await?.0 != 200,
        "wang still signs in at the station"
    );
    let (status, _) = east.get(&wang, "/api/me").await?;
    ensure!(status == 401, "wang's station session answered {status}");

    // The west station holds none of east's work, and only its own people.
    for id in &ids {
        ensure!(
            stored(&t.west.db.storage, id).await?.is_none(),
            "{id} reached the west station"
        );
    }
    ensure!(
        west.login("li", DEMO_PASSWORD).await?.0 != 200,
        "li signs in at the west station"
    );

    // A station may relay only its own people's changes: the county refuses
    // one attributed to its director, and one nobody attests.
    let mut doc = load(&t.county.db.storage, &offline).await?.context("at the county")?;
    let base = doc.get_heads();
    let mut forger = Writer::new("director", 9);
    let mut p = PetitionDoc::from_doc(doc.with_actor(forger.actor.clone()))?;
    PetitionAction::Supervise {
        unit: UnitId::new("county")?,
        note: "伪造".into(),
    }
    .apply(&mut p, &mut forger.author, now()?)?;
    let forged = p.into_doc();
    let url = county.batch_url(&east_server);
    let refused = relay_directly(
        &url,
        &offline,
        forged.clone(),
        base.clone(),
        vec![(forger.actor.clone(), "director".into())],
    )
    .await?;
    ensure!(
        refused == ["relay-outside-jurisdiction"],
        "a forged relay got {refused:?}"
    );
    let refused = relay_directly(&url, &offline, forged, base.clone(), Vec::new()).await?;
    ensure!(refused == ["relay-unattested"], "an unattested relay got {refused:?}");
    let mut after = load(&t.county.db.storage, &offline).await?.context("at the county")?;
    ensure!(after.get_heads() == base, "the county stored a forged change");

    let changes = t.each_change_once().await?;
    eprintln!("tiers_outage_changes_stored={changes}");
    Ok(())
}

/// The director's token at `api` (he signs in at any tier that holds him).
async fn director_at(api: &Api) -> anyhow::Result<String> {
    api.sign_in("director", DEMO_PASSWORD).await
}

/// How many cut-and-reconnect runs the random-cut test makes
/// (`LIANXIN_TIER_CUT_RUNS`; hundreds by hand, a couple of dozen in CI).
fn cut_runs() -> usize {
    lianxin_tests::tiers::runs_from_env("LIANXIN_TIER_CUT_RUNS", 24)
}

/// Both uplinks (east → county and county → city) are cut while the
/// tiers work and come back cut again at a random byte, up or down; after
/// every run the tiers agree, and after all of them every change is stored
/// once at every tier and every step is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cuts_in_either_uplink_lose_nothing_and_repeat_nothing() -> anyhow::Result<()> {
    let tiers = Tiers::start(47, Options::default()).await?;
    tiers.run(async |t| random_cuts(t).await).await
}

async fn random_cuts(t: &Tiers) -> anyhow::Result<()> {
    let (city, east) = (&t.city.api, &t.east.api);
    let li = east.sign_in("li", DEMO_PASSWORD).await?;
    let runs = cut_runs();
    // Each run adds two entries to the shared petition, which holds at most
    // 1,000: a new one every 100 runs, so any number of runs fits.
    const RUNS_PER_SHARED: usize = 100;
    let mut shared: Vec<String> = Vec::new();
    let mut filed = Vec::new();
    let started = Instant::now();
    // The largest a connection through each link was in the last run, per
    // direction: random cuts fall anywhere within it, so they land in the
    // directory request and the exchange alike rather than past their end.
    let mut span: [[u64; 2]; 2] = [[2_000, 800]; 2];
    let mut random_cuts = 0;
    for run in 0..runs {
        if run % RUNS_PER_SHARED == 0 {
            let id = city
                .file(
                    &t.zhang,
                    json!({"channel": "chief_line", "category": "help", "title": format!("村道积水{run}"), "body": "详情",
                           "location": {"unit": "village-shangping"}, "routed_to": "station-east"}),
                )
                .await?;
            t.converged(std::slice::from_ref(&id)).await?;
            filed.push(id.clone());
            shared.push(id);
        }
        let shared = shared.last().context("a shared petition")?;
        let (i, link, which) = if run % 2 == 0 {
            (0, &t.east_up, "east")
        } else {
            (1, &t.county_up, "county")
        };
        let direction = if run / 2 % 2 == 0 {
            Direction::Up
        } else {
            Direction::Down
        };
        // Both sides work while the uplink is down.
        Tiers::cut(link);
        let new = east
            .file(
                &li,
                json!({"channel": "walk_in", "category": "help", "title": format!("第{run}件"), "body": "来所反映",
                       "submitter": "res-liu", "location": {"unit": "village-xiaxi"}, "routed_to": "station-east"}),
            )
            .await?;
        east.act(
            &li,
            shared,
            json!({"action": "progress", "unit": "station-east", "note": format!("进展{run}")}),
        )
        .await?;
        let (status, body) = city
            .post(
                &t.zhang,
                &format!("/api/petitions/{shared}/actions"),
                json!({"action": "comment", "text": format!("还没修好{run}")}),
            )
            .await?;
        ensure!(status == 200, "a comment at the city answered {status}: {body}");
        // It comes back with its next connections cut at a random byte.
        let before = link.stats();
        let range = 1..=span[i][direction as usize];
        link.set_cut_plan(CutPlan::random(direction, range).connections(2 + run as u64 % 2));
        t.converged(&[shared.clone(), new.clone()])
            .await
            .with_context(|| format!("run {run}: {which}'s uplink cut {direction}"))?;
        let after = link.stats();
        let connections = (after.connections - before.connections).max(1);
        span[i] = [
            (after.bytes_up - before.bytes_up) / connections * 2,
            (after.bytes_down - before.bytes_down) / connections * 2,
        ]
        .map(|b| b.max(64));
        random_cuts += after.cuts - before.cuts;
        filed.push(new);
    }
    // Most runs cut a connection mid-way (a cut past a connection's end does nothing).
    ensure!(
        random_cuts as usize >= runs / 2,
        "only {random_cuts} cuts in {runs} runs"
    );
    for link in [&t.east_up, &t.county_up] {
        link.clear_cut_plan();
    }
    t.converged(&filed).await?;
    let changes = t.each_change_once().await?;
    // Every step is there once, at every tier that holds the petition.
    let director = director_at(city).await?;
    for (block, shared) in shared.iter().enumerate() {
        let expected = (runs - block * RUNS_PER_SHARED).min(RUNS_PER_SHARED);
        for (api, token) in [(city, &director), (east, &li)] {
            let notes = count(&api.timeline(token, shared).await?, "progress");
            ensure!(
                notes == expected,
                "{} holds {notes} of {expected} progress notes",
                api.base
            );
            let (_, view) = api.get(token, &format!("/api/petitions/{shared}")).await?;
            let comments = view["conversation"].as_array().map_or(0, Vec::len);
            ensure!(
                comments == expected,
                "{} holds {comments} of {expected} comments",
                api.base
            );
        }
    }
    eprintln!(
        "tiers_cut_runs={runs} tiers_cut_random_cuts={random_cuts} tiers_cut_seconds={:.1} tiers_cut_changes_stored={changes}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
