//! `lianxin bench kpi`: the KPI report's time over many petitions, beside a
//! plain `COUNT(*)` over the same table in the same run.
//!
//! The petitions are projection rows (summaries derived by sync-core from
//! generated timelines) written straight into the petitions table: the
//! report reads only that table, and filling it through the full write path
//! would take minutes for nothing the report reads.

use std::time::Instant;

use clap::Args;
use rand::{Rng, SeedableRng};
use sync_core::clocks::Receipts;
use sync_core::kpi::{Dimension, ReportQuery};
use sync_core::petition::{ContactMethod, EventBody, Location, PetitionHeader, PetitionSummary, TimelineEvent, derive};
use sync_core::{Calendar, Category, Channel, ClockRules, Hlc, OrgTree, Timestamp, Unit, UnitId, UnitKind, UserId};

use lianxin_server::storage::Storage;

#[derive(Clone, Debug, Args)]
pub struct KpiArgs {
    /// Petitions to write before timing.
    #[arg(long, default_value_t = 100_000)]
    pub petitions: usize,
    /// Timed runs of each query; the median is printed.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

const STATIONS: usize = 4;
const VILLAGES_PER_STATION: usize = 5;
const DAY_MS: i64 = 86_400_000;

fn org() -> OrgTree {
    let unit = |id: String, kind, parent: Option<String>| Unit {
        id: UnitId::new(id.clone()).expect("bench id"),
        name: id,
        kind,
        parent: parent.map(|p| UnitId::new(p).expect("bench id")),
    };
    let mut units = vec![unit("county".into(), UnitKind::County, None)];
    for s in 0..STATIONS {
        units.push(unit(format!("station-{s}"), UnitKind::Station, Some("county".into())));
        for v in 0..VILLAGES_PER_STATION {
            units.push(unit(
                format!("village-{s}-{v}"),
                UnitKind::Village,
                Some(format!("station-{s}")),
            ));
        }
    }
    OrgTree::new(units)
}

/// A petition submitted at `at` with a random, plausible history, its
/// clocks on the server's receipt times.
fn petition(i: usize, at: Timestamp, rng: &mut impl Rng, now: Timestamp) -> PetitionSummary {
    let s = i % STATIONS;
    let station = UnitId::new(format!("station-{s}")).expect("bench id");
    let village = UnitId::new(format!("village-{s}-{}", i % VILLAGES_PER_STATION)).expect("bench id");
    let header = PetitionHeader {
        id: format!("bench-{i}"),
        channel: Channel::ALL[i % Channel::ALL.len()],
        category: Category::ALL[i % Category::ALL.len()],
        title: "bench".into(),
        body: "bench".into(),
        submitter: UserId::new("resident").expect("bench id"),
        recorded_by: UserId::new("resident").expect("bench id"),
        anonymous: false,
        contact: None,
        location: Location {
            unit: village,
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    };
    let stamp = |t: Timestamp, node: &str| Hlc {
        wall_ms: t.millis(),
        counter: 0,
        node: node.into(),
    };
    let officer = UserId::new("officer").expect("bench id");
    let step = |minutes: i64, body: EventBody| TimelineEvent {
        by: officer.clone(),
        at: stamp(at.plus_minutes(minutes), "officer"),
        unit: Some(station.clone()),
        body,
    };
    let mut events = vec![TimelineEvent {
        by: header.submitter.clone(),
        at: stamp(at, "resident"),
        unit: None,
        body: EventBody::Submitted { unit: station.clone() },
    }];
    if rng.gen_bool(0.95) {
        events.push(step(rng.gen_range(1..20), EventBody::Signed));
        events.push(step(
            rng.gen_range(20..60),
            EventBody::Contacted {
                method: ContactMethod::Phone,
                note: None,
            },
        ));
        if rng.gen_bool(0.9) {
            events.push(step(
                rng.gen_range(60..10 * 24 * 60),
                EventBody::Replied { text: "r".into() },
            ));
            if rng.gen_bool(0.5) {
                events.push(TimelineEvent {
                    by: header.submitter.clone(),
                    at: stamp(at.plus_minutes(11 * 24 * 60), "resident"),
                    unit: None,
                    body: EventBody::FollowUp {
                        rating: rng.gen_range(1..=5),
                        comment: None,
                    },
                });
            }
        }
    }
    // Each event reached the server within two seconds of its stamp.
    let receipts: Receipts = events
        .iter()
        .map(|e| {
            (
                e.id().to_string(),
                e.at.timestamp().plus_millis(rng.gen_range(0..2_000)),
            )
        })
        .collect();
    let state = derive(&header, &events, &[]);
    PetitionSummary::with_receipts(
        &header,
        &state,
        &ClockRules::default(),
        &Calendar::china(),
        now,
        Some(&receipts),
    )
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// Writes the petitions, then times `COUNT(*)`, the report (grouped by unit
/// and category, over the whole county and period) from the KPI columns,
/// and the same report from decoded summaries (how it was read before the
/// columns), alternately; the two reports must be equal.
pub async fn kpi(storage: Storage, backend: &str, args: &KpiArgs) -> anyhow::Result<Vec<String>> {
    let cal = Calendar::china();
    let now = lianxin_server::clock::Clock::now(&lianxin_server::clock::SystemClock);
    let start = now.plus_millis(-60 * DAY_MS);
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    let existing = storage.projections().count_petitions().await?;
    let wrote = Instant::now();
    let mut batch = Vec::new();
    for i in 0..args.petitions {
        let at = start.plus_millis(rng.gen_range(0..50 * DAY_MS));
        batch.push((format!("bench-kpi-{existing}-{i}"), petition(i, at, &mut rng, now)));
        if batch.len() == 10_000 {
            storage.projections().seed_petition_rows(&batch, now).await?;
            batch.clear();
        }
    }
    storage.projections().seed_petition_rows(&batch, now).await?;
    let write_s = wrote.elapsed().as_secs_f64();
    let org = org();
    let query = ReportQuery {
        from: start,
        to: now,
        unit: Some(UnitId::new("county").expect("bench id")),
        category: None,
        channel: None,
        group_by: vec![Dimension::Unit, Dimension::Category],
    };
    let (mut count_ms, mut report_ms, mut summaries_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0;
    let mut received = 0;
    let fail = |e: lianxin_server::error::ApiError| anyhow::anyhow!("{e}");
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        rows = storage.projections().count_petitions().await?;
        count_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let r = lianxin_server::api::reports::run(&storage, &org, &cal, query.clone(), now)
            .await
            .map_err(fail)?;
        report_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let baseline = lianxin_server::api::reports::run_from_summaries(&storage, &org, &cal, query.clone(), now)
            .await
            .map_err(fail)?;
        summaries_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            r == baseline,
            "the report from the KPI columns differs from the one from the summaries"
        );
        received = r.total.received;
    }
    let (count, report, summaries) = (median(count_ms), median(report_ms), median(summaries_ms));
    Ok(vec![
        format!("backend={backend}"),
        format!("petitions_in_table={rows}"),
        format!("petitions_in_report={received}"),
        format!("write_s={write_s:.1}"),
        format!("count_ms={count:.2}"),
        format!("report_ms={report:.1}"),
        format!("report_from_summaries_ms={summaries:.1}"),
        format!("ratio_report_vs_count={:.1}", report / count.max(0.001)),
        format!("ratio_summaries_vs_report={:.1}", summaries / report.max(0.001)),
    ])
}
