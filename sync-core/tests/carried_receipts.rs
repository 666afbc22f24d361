//! Receipt times travel between tiers: a petition relayed after an outage
//! runs its clocks from when the first tier received its entries, so every
//! tier computes the same deadlines.

mod common;

use std::collections::HashMap;

use automerge::AutoCommit;
use common::*;
use sync_core::clocks::Receipts;
use sync_core::doc::Message;
use sync_core::doc::cache::EntryCache;
use sync_core::petition::PetitionDoc;
use sync_core::policy::MAX_FUTURE_SKEW_MS;
use sync_core::relay::{carried_receipt, receipts_to_carry};
use sync_core::write::{Facts, Origin, WriteOutcome, propose};
use sync_core::{Calendar, ClockRules, Timestamp};

/// A petition filed at `T0` with one message posted a minute later.
fn filed() -> (PetitionDoc, String, String) {
    let mut p = petition();
    let submitted = p.events().unwrap()[0].at.to_string();
    let r = resident();
    let message = p
        .post(&mut author(&r), T0.plus_minutes(1), Message::draft("水还是没有来"))
        .unwrap()
        .to_string();
    (p, submitted, message)
}

/// The whole petition reaching a tier at `now`, relayed with `carried`.
fn arrives(doc: &mut AutoCommit, carried: Receipts, now: Timestamp) -> WriteOutcome {
    let org = org();
    let who = officer_a();
    let ctx = ctx(&org, &who);
    let mut cache = EntryCache::default();
    let changes = doc.get_changes(&[]);
    propose(
        &ctx,
        Origin::Upstream,
        "p-1",
        &AutoCommit::new(),
        changes,
        &HashMap::new(),
        &mut cache,
    )
    .carrying(carried)
    .finish(
        &Facts::default(),
        &ClockRules::default(),
        &Calendar::china(),
        now,
        &mut cache,
    )
    .unwrap()
}

fn receipt(out: &WriteOutcome, entry: &str) -> Timestamp {
    out.receipts
        .iter()
        .find(|(id, _)| id == entry)
        .map(|(_, at)| *at)
        .unwrap_or_else(|| panic!("no receipt for {entry}: {:?}", out.receipts))
}

#[test]
fn a_relayed_petition_keeps_the_clocks_of_the_tier_that_received_it() {
    let (mut p, submitted, message) = filed();
    let at_station = T0.plus_millis(4_000);
    let carried: Receipts = [(submitted.clone(), at_station)].into_iter().collect();
    // Two hours of outage later it reaches the county.
    let now = T0.plus_minutes(120);
    let out = arrives(p.doc_mut(), carried, now);
    assert_eq!(receipt(&out, &submitted), at_station);
    // Nothing was carried for the message: it is received now.
    assert_eq!(receipt(&out, &message), now);
    let summary = out.projection.petition.expect("a petition row");
    assert_eq!(summary.sign_due, Some(at_station.plus_minutes(10)));
    assert_eq!(summary.contact_due, Some(at_station.plus_minutes(30)));
    assert!(summary.overdue, "signed nowhere two hours after it was received");

    // Without the carried receipt the county's clocks would start at arrival.
    let (mut p, submitted, _) = filed();
    let out = arrives(p.doc_mut(), Receipts::new(), now);
    assert_eq!(receipt(&out, &submitted), now);
    assert_eq!(out.projection.petition.unwrap().sign_due, Some(now.plus_minutes(10)));
}

#[test]
fn a_carried_receipt_is_bounded_by_the_arrival_and_the_entrys_stamp() {
    let (_, submitted, _) = filed();
    let now = T0.plus_minutes(120);
    // Not later than it arrived here.
    assert_eq!(carried_receipt(&submitted, Some(now.plus_minutes(5)), now), now);
    // Not earlier than its stamp allows: a stamp runs at most
    // MAX_FUTURE_SKEW_MS ahead of its receipt.
    assert_eq!(
        carried_receipt(&submitted, Some(T0.plus_minutes(-60)), now),
        T0.plus_millis(-MAX_FUTURE_SKEW_MS)
    );
    assert_eq!(
        carried_receipt(&submitted, Some(T0.plus_millis(-1_000)), now),
        T0.plus_millis(-1_000)
    );
    assert_eq!(carried_receipt(&submitted, None, now), now);
}

#[test]
fn only_the_receipts_clocks_run_on_travel() {
    let (mut p, submitted, message) = filed();
    let recorded = vec![
        (submitted.clone(), T0),
        (message.clone(), T0.plus_minutes(1)),
        ("1750000000000.00000.nobody".to_owned(), T0),
    ];
    assert_eq!(receipts_to_carry(p.doc_mut(), recorded.clone()), vec![(submitted, T0)]);
    // A document that is no petition carries none.
    assert!(receipts_to_carry(&AutoCommit::new(), recorded).is_empty());
}
