//! The batched sync endpoint `/batch`, end to end: a simulated phone and a
//! real server over SQLite, through the link simulator.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use automerge::{AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use lianxin_server::backend_tests;
use lianxin_server::state::HttpSettings;
use lianxin_server::testing::TestDb;
use lianxin_tests::linksim::{CutPlan, Direction, LinkSim, Profile};
use lianxin_tests::phone::{Phone, PhoneError};
use lianxin_tests::scenario::{self, OTHER_USER, OfflineDay, PHONE_USER, Prepared, Site, Writer, copy_db, doc_id};
use sync_core::batch::{ClientEvent, DocId, ErrorCode, Frame, Push};
use sync_core::repo_protocol::DocumentId;
use tokio_tungstenite::tungstenite::Message;

const SMALL: OfflineDay = OfflineDay {
    held: 40,
    phone_docs: 5,
    phone_changes: 50,
    server_docs: 4,
    new_docs: 2,
    server_changes: 40,
    text: scenario::Text::Random,
};

/// Every document both sides should hold, equal on both, and every change
/// the server stored, stored once.
async fn assert_converged(
    site: &Site,
    phone: &mut Phone,
    expected: &BTreeMap<DocId, Vec<ChangeHash>>,
) -> anyhow::Result<()> {
    for (id, heads) in expected {
        let doc = phone
            .store
            .docs
            .get_mut(id)
            .with_context(|| format!("the phone lacks {id}"))?;
        ensure!(
            doc.get_heads() == *heads,
            "the phone's {id} is not at the expected heads"
        );
        let mut stored = site.doc(*id).await?;
        ensure!(
            stored.get_heads() == *heads,
            "the server's {id} is not at the expected heads"
        );
        let counts = site.stored_counts(*id).await?;
        ensure!(
            counts.values().all(|n| *n == 1),
            "a change of {id} is stored twice: {counts:?}"
        );
    }
    ensure!(
        phone.store.docs.len() == expected.len(),
        "the phone holds extra documents"
    );
    Ok(())
}

async fn run_on_copy(prepared: &Prepared, dir: &std::path::Path) -> anyhow::Result<Site> {
    copy_db(&prepared.db, dir)?;
    Site::start(dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_day_is_one_round_trip_after_set_up_and_loads_only_changed_documents() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let prepared = scenario::prepare(&tmp.path().join("base"), SMALL).await?;
    // Unshaped, and on a slow link where the early pull overlaps the push.
    for profile in [Profile::g3_slow(), Profile::loopback()] {
        offline_day_through(&prepared, &tmp.path().join(&profile.name), profile).await?;
    }
    Ok(())
}

async fn offline_day_through(prepared: &Prepared, dir: &std::path::Path, profile: Profile) -> anyhow::Result<()> {
    let site = run_on_copy(prepared, dir).await?;
    let link = LinkSim::start(site.server.addr, profile, 1).await?;
    let mut phone = prepared.phone.clone();
    let loads_before = site.server.state.docs.loads();
    phone.store.loads = 0;

    let report = phone.sync(&site.batch_url(link.addr(), PHONE_USER).await?, 1).await?;

    let stats = link.stats();
    // The WebSocket upgrade is the set-up; the exchange itself is one turn.
    assert_eq!(stats.round_trips, 2, "{stats}");
    assert_eq!(report.exchanges, 1);
    let created = report
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::DocCreated { .. }))
        .count();
    assert_eq!(created, SMALL.new_docs, "new petitions arrive in the same exchange");
    let pushed = report
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Acked { .. }))
        .count();
    assert_eq!(pushed, SMALL.phone_docs);
    let loaded = site.server.state.docs.loads() - loads_before;
    // Each pushed document is loaded once, each document changed on the server
    // once; the unchanged ones never.
    assert_eq!(
        loaded as usize,
        SMALL.phone_docs + SMALL.server_docs,
        "documents loaded by the server"
    );
    assert_eq!(phone.store.loads, SMALL.phone_docs + SMALL.server_docs - SMALL.new_docs);
    assert_converged(&site, &mut phone, &prepared.all_heads).await?;

    let total = stats.bytes_up + stats.bytes_down;
    println!(
        "small offline day, {}: {stats}; floor {} B",
        link.profile().name,
        prepared.floor_bytes
    );
    ensure!(
        total * 10 <= prepared.floor_bytes as u64 * 15,
        "{total} B for a floor of {} B",
        prepared.floor_bytes
    );

    // Nothing changed since: an idle reconnect is one small frame each way.
    link.reset_stats();
    let again = phone.sync(&site.batch_url(link.addr(), PHONE_USER).await?, 1).await?;
    let idle = link.stats();
    assert!(again.is_idle(), "{:?}", again.events);
    assert!(idle.bytes_up + idle.bytes_down < 1024, "idle reconnect: {idle}");
    Ok(())
}

/// Cuts the link at a random byte offset, up or down, during the exchange
/// of a small offline day, 200 times with different seeds (override with
/// `LIANXIN_CUT_RUNS`): every run ends with both sides equal and each change
/// stored once, and a later idle exchange sends nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cuts_lose_nothing_and_store_nothing_twice() -> anyhow::Result<()> {
    let runs: u64 = std::env::var("LIANXIN_CUT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir()?;
    let prepared = scenario::prepare(&tmp.path().join("base"), SMALL).await?;
    // One uncut run tells how many bytes an exchange moves each way.
    let (up, down) = {
        let site = run_on_copy(&prepared, &tmp.path().join("measure")).await?;
        let link = LinkSim::start(site.server.addr, Profile::loopback(), 0).await?;
        prepared
            .phone
            .clone()
            .sync(&site.batch_url(link.addr(), PHONE_USER).await?, 1)
            .await?;
        site.stop().await?;
        (link.stats().bytes_up, link.stats().bytes_down)
    };
    let (mut cut_up, mut cuts, mut reconnects) = (0, 0, 0);
    for seed in 1..=runs {
        let dir = tmp.path().join(format!("run-{seed}"));
        let site = run_on_copy(&prepared, &dir).await?;
        let link = LinkSim::start(site.server.addr, Profile::loopback(), seed).await?;
        let (direction, total) = if seed % 2 == 0 {
            (Direction::Up, up)
        } else {
            (Direction::Down, down)
        };
        cut_up += u64::from(direction == Direction::Up);
        // Up to three connections in a row are cut somewhere in the exchange,
        // before its last byte: a cut after it would withhold nothing (the
        // phone hangs up once it has everything) and cost no reconnect.
        link.set_cut_plan(CutPlan::random(direction, 0..=total - 1).connections(1 + seed % 3));
        let mut phone = prepared.phone.clone();
        let url = site.batch_url(link.addr(), PHONE_USER).await?;
        let report = tokio::time::timeout(Duration::from_secs(60), phone.sync(&url, 10))
            .await
            .with_context(|| format!("seed {seed}: sync hung"))?
            .with_context(|| format!("seed {seed}"))?;
        assert_converged(&site, &mut phone, &prepared.all_heads)
            .await
            .with_context(|| format!("seed {seed}, {direction} cut: {:?}", link.stats()))?;
        ensure!(report.refused().is_empty(), "seed {seed}: {:?}", report.refused());
        cuts += link.stats().cuts;
        reconnects += report.connections - 1;

        // A reconnect after convergence pushes and pulls nothing.
        link.clear_cut_plan();
        link.reset_stats();
        let idle = phone.sync(&url, 1).await?;
        ensure!(
            idle.is_idle(),
            "seed {seed}: not idle after convergence: {:?}",
            idle.events
        );
        site.stop().await?;
        std::fs::remove_dir_all(&dir)?;
    }
    println!(
        "{runs} runs converged ({cut_up} cut uploads, {} cut downloads): {cuts} cuts, {reconnects} reconnects",
        runs - cut_up
    );
    ensure!(cuts >= runs, "the links were cut only {cuts} times in {runs} runs");
    ensure!(reconnects as u64 >= cuts, "every cut costs a reconnect");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_is_reported_and_the_rest_is_stored() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let site = Site::with_county(tmp.path()).await?;
    let mut li = Writer::new(PHONE_USER, 1);
    let id = doc_id(1, 0);
    let mut doc = scenario::petition(&mut li, id, 0, site.now().plus_minutes(-60))?;
    site.apply(PHONE_USER, id, doc.get_changes(&[])).await?;

    // A resident's phone: the resident may comment on their own petition,
    // but a change written as officer-li is forged and refused.
    let mut phone = Phone::default();
    let url = site.batch_url(site.server.addr, "res-zhang").await?;
    phone.sync(&url, 1).await?;
    let held = phone
        .store
        .docs
        .get_mut(&id)
        .context("the resident sees their petition")?;
    let mut res = Writer::new("res-zhang", 5);
    scenario::comment(held, &mut res, 2, 7, site.now())?;
    let mut forger = Writer::new("res-zhang", 6);
    forger.author = Writer::new(PHONE_USER, 6).author;
    scenario::comment(held, &mut forger, 1, 8, site.now())?;

    let report = phone.sync(&url, 1).await?;
    let refused = report.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].2, "forged-by");
    let mut stored = site.doc(id).await?;
    let changes = stored.get_changes(&[]);
    assert_eq!(
        changes.len(),
        1 + 2,
        "the creation and the resident's two comments are stored"
    );

    // The officer's own phone, meanwhile, sees the resident's comments.
    let mut officer = Phone::default();
    officer
        .sync(&site.batch_url(site.server.addr, PHONE_USER).await?, 1)
        .await?;
    let mut theirs = officer.store.docs.get(&id).context("the officer holds it")?.clone();
    assert_eq!(theirs.get_heads(), stored.get_heads());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_outside_the_scope_are_neither_pulled_nor_writable() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let site = Site::with_county(tmp.path()).await?;
    let mut li = Writer::new(PHONE_USER, 1);
    let east = doc_id(1, 0);
    let mut doc = scenario::petition(&mut li, east, 0, site.now().plus_minutes(-60))?;
    site.apply(PHONE_USER, east, doc.get_changes(&[])).await?;

    // officer-zhao works at the west station: the east petition is not theirs.
    let mut west = Phone::default();
    let url = site.batch_url(site.server.addr, "officer-zhao").await?;
    west.sync(&url, 1).await?;
    assert!(west.store.docs.is_empty(), "nothing of the east station is pulled");

    // Pushing to it anyway (they learnt its id) is refused, and nothing of
    // it comes back in the pull.
    let mut copy = doc.clone();
    let mut zhao = Writer::new("officer-zhao", 9);
    scenario::comment(&mut copy, &mut zhao, 1, 3, site.now())?;
    west.store.docs.insert(east, copy);
    let report = west.sync(&url, 1).await?;
    let refused = report.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        !report
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::DocUpdated { .. } | ClientEvent::DocCreated { .. })),
        "{:?}",
        report.events
    );
    let mut stored = site.doc(east).await?;
    assert_eq!(stored.get_heads(), doc.get_heads(), "nothing was stored");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_bad_tokens_end_only_that_connection() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let site = Site::with_county(tmp.path()).await?;
    let addr = site.server.addr;

    // No token, then a bad one: an `err` frame with the reason, then close.
    for url in [
        format!("ws://{addr}/batch"),
        format!("ws://{addr}/batch?token=nonsense"),
    ] {
        let err = Phone::default().sync(&url, 1).await.expect_err("refused");
        let PhoneError::Refused(why) = err else { panic!("{err}") };
        assert!(why.starts_with("unauthorized"), "{why}");
    }

    // Garbage, then an unsupported version.
    let url = site.batch_url(addr, PHONE_USER).await?;
    for (bytes, code) in [
        (b"not a frame".to_vec(), ErrorCode::BadFrame),
        (
            Frame::Push(Push {
                version: 99,
                ..Push::new(1, 0, 0)
            })
            .encode(),
            ErrorCode::UnsupportedVersion,
        ),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
        ws.send(Message::Binary(bytes.into())).await?;
        let reply = loop {
            match ws.next().await.context("an answer")?? {
                Message::Binary(b) => break b,
                _ => continue,
            }
        };
        let Frame::Error(e) = Frame::decode(&reply)? else {
            panic!("not an error frame")
        };
        assert_eq!(e.code, code, "{}", e.message);
        let closed = loop {
            match ws.next().await {
                None | Some(Err(_)) => break None,
                Some(Ok(Message::Close(c))) => break c,
                Some(Ok(_)) => {}
            }
        };
        assert!(closed.is_some_and(|c| u16::from(c.code) == 4002));
    }

    // The server keeps serving everyone else.
    let mut phone = Phone::default();
    let report = phone.sync(&url, 1).await?;
    assert!(matches!(report.events.last(), Some(ClientEvent::Done { .. })));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_larger_than_one_page_completes_over_several_exchanges() -> anyhow::Result<()> {
    // More changed documents than one pull lists: the phone follows `more`.
    let tmp = tempfile::tempdir()?;
    let http = HttpSettings {
        batch_page_docs: 16,
        ..HttpSettings::default()
    };
    let site = Site::with_county_and(tmp.path(), http).await?;
    let mut wang = Writer::new(OTHER_USER, 2);
    let n = 40;
    let mut expected = BTreeMap::new();
    for i in 0..n {
        let id = doc_id(3, i);
        let mut doc: AutoCommit = scenario::petition(&mut wang, id, i, site.now().plus_minutes(-60))?;
        expected.insert(id, doc.get_heads());
        site.apply(OTHER_USER, id, doc.get_changes(&[])).await?;
    }
    let mut phone = Phone::default();
    let report = phone
        .sync(&site.batch_url(site.server.addr, PHONE_USER).await?, 1)
        .await?;
    assert_eq!(report.exchanges, 3, "40 documents in pages of 16");
    assert_eq!(phone.store.docs.len(), n);
    for (id, heads) in &expected {
        assert_eq!(phone.store.docs.get_mut(id).unwrap().get_heads(), *heads);
    }
    Ok(())
}

/// The endpoint on each backend (PostgreSQL with `LIANXIN_TEST_POSTGRES_URL`):
/// scope, offline edits both ways, a document new to the phone, and a
/// document the server compacted while the phone was away (its history
/// before the cursor is then a snapshot without change numbers, and the
/// pull falls back to sending it whole).
async fn offline_edits_converge_on_each_backend(db: &mut TestDb) -> anyhow::Result<()> {
    let site = Site::serve(db.storage.clone(), &db.dir()).await?;
    site.import_county().await?;
    let at = site.now().plus_minutes(-60);
    let mut li = Writer::new(PHONE_USER, 1);
    let mut wang = Writer::new(OTHER_USER, 2);
    let mut zhao = Writer::new("officer-zhao", 3);
    let mut expected = BTreeMap::new();
    for i in 0..4 {
        let id = doc_id(1, i);
        let mut doc = scenario::petition(&mut li, id, i, at)?;
        site.apply(PHONE_USER, id, doc.get_changes(&[])).await?;
    }
    // A west-station petition officer-li never sees.
    let west = doc_id(4, 0);
    let mut doc = scenario::petition_in(&mut zhao, west, 0, at, "village-baishi", "station-west")?;
    site.apply("officer-zhao", west, doc.get_changes(&[])).await?;

    let url = site.batch_url(site.server.addr, PHONE_USER).await?;
    let mut phone = Phone::default();
    phone.sync(&url, 1).await?;
    assert_eq!(phone.store.docs.len(), 4);

    // Offline: the phone comments on petition 0; the server gains comments
    // on petition 1, enough on petition 2 to be compacted, and a new petition.
    let mut ph = Writer::new(PHONE_USER, 4);
    scenario::comment(phone.store.docs.get_mut(&doc_id(1, 0)).unwrap(), &mut ph, 5, 1, at)?;
    for (i, count) in [(1, 7), (2, lianxin_server::docs::COMPACT_AFTER_CHANGES + 10)] {
        let id = doc_id(1, i);
        let mut doc = site.doc(id).await?;
        let heads = doc.get_heads();
        scenario::comment(&mut doc, &mut wang, count, i as u64, at)?;
        site.apply(OTHER_USER, id, doc.get_changes(&heads)).await?;
    }
    let fresh = doc_id(2, 0);
    let mut doc = scenario::petition(&mut wang, fresh, 99, at)?;
    site.apply(OTHER_USER, fresh, doc.get_changes(&[])).await?;

    let report = phone.sync(&url, 1).await?;
    assert!(report.refused().is_empty(), "{:?}", report.refused());
    assert!(report.events.contains(&ClientEvent::DocCreated {
        id: fresh,
        heads: doc.get_heads()
    }));
    for i in 0..4 {
        expected.insert(doc_id(1, i), site.doc(doc_id(1, i)).await?.get_heads());
    }
    expected.insert(fresh, doc.get_heads());
    for (id, heads) in &expected {
        let mine = phone
            .store
            .docs
            .get_mut(id)
            .with_context(|| format!("the phone lacks {id}"))?;
        ensure!(mine.get_heads() == *heads, "{id} differs");
    }
    ensure!(!phone.store.docs.contains_key(&west));
    let stored = db
        .storage
        .documents()
        .load_document(&DocumentId::from_bytes(doc_id(1, 2).0).to_string())
        .await?
        .context("stored")?;
    ensure!(stored.snapshot.is_some(), "petition 2 was compacted");

    // And the next reconnect is idle.
    let idle = phone.sync(&url, 1).await?;
    assert!(idle.is_idle(), "{:?}", idle.events);
    site.server.stop().await?;
    Ok(())
}

backend_tests!(offline_edits_converge_on_each_backend);
