//! The guard against real Automerge payloads (which pass) and hand-made hostile ones (which are
//! refused by the named limit, and which would panic, stall or bloat Automerge).

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use sha2::{Digest, Sha256};

use super::*;

/// A document with a list of maps, a text field and a few changes by two actors.
fn doc(entries: usize) -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(automerge::ActorId::from([1u8; 16].as_slice()));
    let list = doc.put_object(ROOT, "messages", ObjType::List).unwrap();
    doc.commit();
    for i in 0..entries {
        let m = doc.insert_object(&list, i, ObjType::Map).unwrap();
        doc.put(&m, "text", format!("第{i}条：水还是没有来，请尽快派人查看一下"))
            .unwrap();
        doc.put(&m, "n", i as i64).unwrap();
        doc.commit();
    }
    let mut other = doc.fork().with_actor(automerge::ActorId::from([2u8; 16].as_slice()));
    other.put(ROOT, "title", "泉水被截流").unwrap();
    other.commit();
    doc.put(ROOT, "status", "open").unwrap();
    doc.commit();
    doc.merge(&mut other).unwrap();
    doc
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn leb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn sleb(mut n: i64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && b & 0x40 == 0) || (n == -1 && b & 0x40 != 0);
        out.push(if done { b } else { b | 0x80 });
        if done {
            return;
        }
    }
}

/// A chunk of `kind` around `body`, with the checksum Automerge verifies.
fn chunk(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut hashed = vec![kind];
    leb(body.len() as u64, &mut hashed);
    hashed.extend_from_slice(body);
    let hash = Sha256::digest(&hashed);
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83];
    out.extend_from_slice(&hash[..4]);
    out.extend_from_slice(&hashed);
    out
}

/// A change body whose op columns are `columns` (`(spec, data)`), by a fresh actor.
fn change_body(columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![0]; // no dependencies
    b.push(16);
    b.extend_from_slice(&[9u8; 16]); // actor
    b.extend_from_slice(&[1, 1, 0, 0, 0]); // seq 1, start op 1, time 0, no message, no other actors
    leb(columns.len() as u64, &mut b);
    for (spec, data) in columns {
        leb(u64::from(*spec), &mut b);
        leb(data.len() as u64, &mut b);
    }
    for (_, data) in columns {
        b.extend_from_slice(data);
    }
    b
}

/// A sync message with the given `have` filters (raw bytes) and no changes.
fn sync_with_filters(filters: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0x42, 0, 0];
    leb(filters.len() as u64, &mut m);
    for f in filters {
        m.push(0); // no last-sync hashes
        leb(f.len() as u64, &mut m);
        m.extend_from_slice(f);
    }
    m.push(0); // no changes
    m
}

fn filter(entries: u64, bits_per_entry: u64, probes: u64) -> Vec<u8> {
    let mut f = Vec::new();
    leb(entries, &mut f);
    leb(bits_per_entry, &mut f);
    leb(probes, &mut f);
    f.extend(std::iter::repeat_n(
        0xff,
        (entries * bits_per_entry).div_ceil(8) as usize,
    ));
    f
}

fn refused(result: Result<Cost, Refused>) -> Limit {
    match result {
        Ok(cost) => panic!("accepted, at cost {cost:?}"),
        Err(r) => {
            assert!(r.to_string().contains(r.limit.as_str()), "{r}");
            r.limit
        }
    }
}

#[test]
fn real_payloads_pass_and_are_counted() {
    let limits = Limits::default();
    let mut d = doc(40);
    let changes = d.get_changes(&[]);
    let raw: Vec<u8> = changes.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    let cost = chunks(&raw, &limits).unwrap();
    assert_eq!(cost.chunks, changes.len() as u64);
    assert_eq!(cost.changes, changes.len() as u64);
    assert_eq!(cost.ops, changes.iter().map(|c| c.len() as u64).sum::<u64>());
    assert_eq!(cost.inflated_bytes, 0);

    // Compressed change chunks (Automerge compresses changes over 256 bytes).
    let mut big = AutoCommit::new();
    big.put(ROOT, "body", "长".repeat(400)).unwrap();
    big.commit();
    let mut c = big.get_changes(&[])[0].clone();
    let compressed = c.bytes().into_owned();
    assert_eq!(compressed[8], 2, "a compressed change chunk");
    let cost = chunks(&compressed, &limits).unwrap();
    assert_eq!((cost.changes, cost.ops), (1, 1));
    assert!(cost.inflated_bytes > 1000);

    // Saved documents, compressed and not, and a bundle.
    let saved = d.save();
    let cost = chunks(&saved, &limits).unwrap();
    assert_eq!(cost.changes, changes.len() as u64);
    assert!(cost.ops >= 120, "{cost:?}");
    assert!(cost.inflated_bytes > 0, "save() compresses large columns");
    let plain = chunks(&d.save_nocompress(), &limits).unwrap();
    assert_eq!((plain.changes, plain.ops), (cost.changes, cost.ops));
    let bundle = d.bundle(changes.iter().map(|c| c.hash())).unwrap();
    let cost = chunks(bundle.bytes(), &limits).unwrap();
    assert_eq!(cost.changes, changes.len() as u64);
    assert_eq!(cost.ops, plain.ops);
    let empty = chunks(&[], &limits).unwrap();
    assert_eq!(empty, Cost::default());
}

#[test]
fn real_sync_messages_pass() {
    let limits = Limits::default();
    let mut a = doc(30);
    let mut b = AutoCommit::new();
    b.put(ROOT, "x", 1).unwrap();
    b.commit();
    let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
    let mut seen = 0;
    for _ in 0..10 {
        let mut quiet = true;
        if let Some(m) = a.sync().generate_sync_message(&mut sa) {
            quiet = false;
            let bytes = m.encode();
            sync_message(&bytes, &limits).unwrap();
            b.sync()
                .receive_sync_message(&mut sb, sync::Message::decode(&bytes).unwrap())
                .unwrap();
            seen += 1;
        }
        if let Some(m) = b.sync().generate_sync_message(&mut sb) {
            quiet = false;
            let bytes = m.encode();
            sync_message(&bytes, &limits).unwrap();
            a.sync()
                .receive_sync_message(&mut sa, sync::Message::decode(&bytes).unwrap())
                .unwrap();
            seen += 1;
        }
        if quiet {
            break;
        }
    }
    assert!(seen >= 3);
    assert_eq!(a.get_heads(), b.get_heads());
}

#[test]
fn a_filter_with_no_bits_is_refused_where_automerge_panics() {
    let message = sync_with_filters(&[filter(1, 0, 7)]);
    assert_eq!(
        refused(sync_message(&message, &Limits::default())),
        Limit::BloomBitsPerEntry
    );
    // What Automerge does with it: a remainder by zero when it next answers.
    let outcome = std::panic::catch_unwind(|| {
        let mut d = doc(2);
        let mut state = sync::State::new();
        d.sync()
            .receive_sync_message(&mut state, sync::Message::decode(&message).unwrap())
            .unwrap();
        d.sync().generate_sync_message(&mut state)
    });
    assert!(outcome.is_err(), "automerge 0.12 panics on this filter");
}

#[test]
fn filter_parameters_are_bounded() {
    let limits = Limits::default();
    // The 149-byte message: 16 filters of 2^22 probes each.
    let sixteen = sync_with_filters(&vec![filter(1, 8, 1 << 22); 16]);
    assert_eq!(sixteen.len(), 149);
    assert_eq!(refused(sync_message(&sixteen, &limits)), Limit::Filters);
    let one = sync_with_filters(&[filter(1, 8, 1 << 22)]);
    assert_eq!(refused(sync_message(&one, &limits)), Limit::BloomProbes);
    assert_eq!(
        refused(sync_message(&sync_with_filters(&[filter(1, 10, 0)]), &limits)),
        Limit::BloomProbes
    );
    assert_eq!(
        refused(sync_message(&sync_with_filters(&[filter(1, 100, 7)]), &limits)),
        Limit::BloomBitsPerEntry
    );
    assert_eq!(
        refused(sync_message(&sync_with_filters(&vec![filter(1, 10, 7); 9]), &limits)),
        Limit::Filters
    );
    assert_eq!(
        refused(sync_message(&sync_with_filters(&[filter(2_000_000, 1, 1)]), &limits)),
        Limit::BloomEntries
    );
    // A filter whose bits are missing.
    let mut short = filter(100, 10, 7);
    short.truncate(20);
    assert_eq!(
        refused(sync_message(&sync_with_filters(&[short]), &limits)),
        Limit::Malformed
    );
    // Automerge's own parameters pass, and an empty filter.
    sync_message(&sync_with_filters(&[filter(100, 10, 7), Vec::new()]), &limits).unwrap();
    // Too many hashes in one list.
    let mut m = vec![0x42];
    leb(5000, &mut m);
    m.extend(std::iter::repeat_n(0u8, 5000 * 32));
    m.extend_from_slice(&[0, 0, 0]);
    assert_eq!(refused(sync_message(&m, &limits)), Limit::Hashes);
}

#[test]
fn a_compressed_chunk_inflates_only_up_to_the_limit() {
    let limits = Limits {
        max_inflated_bytes: 1 << 20,
        ..Limits::default()
    };
    // Four megabytes of zeros deflate to about four kilobytes.
    let body = deflate(&vec![0u8; 4 << 20]);
    assert!(body.len() < 8 * 1024);
    let bomb = chunk(2, &body);
    assert_eq!(refused(chunks(&bomb, &limits)), Limit::InflatedBytes);
    // The limit is per payload: two chunks that fit alone do not fit together.
    let half = chunk(
        2,
        &deflate(&change_body(&[(0x42, {
            let mut d = Vec::new();
            sleb(1, &mut d);
            leb(1, &mut d);
            d
        })])),
    );
    chunks(&half, &limits).unwrap();
    let mut padded = change_body(&[]);
    padded.extend(std::iter::repeat_n(0u8, 600 * 1024));
    let padded = chunk(2, &deflate(&padded));
    chunks(&padded, &limits).unwrap();
    let mut two = padded.clone();
    two.extend_from_slice(&padded);
    assert_eq!(refused(chunks(&two, &limits)), Limit::InflatedBytes);
    // A sync message carrying the bomb is refused the same way.
    let mut m = vec![0x42, 0, 0, 0, 1];
    leb(bomb.len() as u64, &mut m);
    m.extend_from_slice(&bomb);
    assert_eq!(refused(sync_message(&m, &limits)), Limit::InflatedBytes);
}

#[test]
fn run_lengths_are_counted_not_trusted() {
    let limits = Limits::default();
    // An action column (id 4, integer) that is one run of 2^40 "set" ops,
    // with key, insert, value and pred columns to match: a few bytes of
    // columns claiming a trillion operations.
    let run = |value: &dyn Fn(&mut Vec<u8>)| {
        let mut d = Vec::new();
        sleb(1 << 40, &mut d);
        value(&mut d);
        d
    };
    // Automerge 0.12 loads such a change op by op: at 10 million ops (69
    // bytes) that took 47 s and 3.9 GB here.
    let columns = vec![
        (
            1 << 4 | 5,
            run(&|d| {
                d.push(1);
                d.push(b'a')
            }),
        ), // key string
        (3 << 4 | 4, {
            let mut d = Vec::new();
            leb(1 << 40, &mut d);
            d
        }), // insert: all false
        (4 << 4 | 2, run(&|d| leb(1, d))), // action: set
        (5 << 4 | 6, run(&|d| leb(0, d))), // value metadata: null
        (7 << 4, run(&|d| leb(0, d))),     // pred count: none
    ];
    let body = change_body(&columns);
    assert!(body.len() < 80);
    let c = chunk(1, &body);
    assert_eq!(refused(chunks(&c, &limits)), Limit::ColumnItems);
    // Under the column limit but over the per-change op limit.
    let small = Limits {
        max_column_items: u64::MAX,
        max_payload_items: u64::MAX,
        ..Limits::default()
    };
    assert_eq!(refused(chunks(&c, &small)), Limit::ChangeOps);
    // A null run and a literal run claiming more values than there are bytes.
    let mut nulls = Vec::new();
    sleb(0, &mut nulls);
    leb(1 << 50, &mut nulls);
    let c = chunk(1, &change_body(&[(4 << 4 | 2, nulls)]));
    assert_eq!(refused(chunks(&c, &limits)), Limit::ColumnItems);
    let mut literal = Vec::new();
    sleb(-(1 << 30), &mut literal);
    literal.push(1);
    let c = chunk(1, &change_body(&[(4 << 4 | 2, literal)]));
    assert_eq!(refused(chunks(&c, &limits)), Limit::Malformed);
    // A boolean column of alternating runs.
    let mut bools = Vec::new();
    leb(1 << 45, &mut bools);
    let c = chunk(1, &change_body(&[(3 << 4 | 4, bools)]));
    assert_eq!(refused(chunks(&c, &limits)), Limit::ColumnItems);
}

#[test]
fn a_group_cannot_claim_more_than_its_columns_hold() {
    let limits = Limits::default();
    // One op whose pred group claims 2^40 predecessors; the pred columns hold one.
    let one = |v: u64| {
        let mut d = Vec::new();
        sleb(1, &mut d);
        leb(v, &mut d);
        d
    };
    let columns = vec![
        (1 << 4 | 5, {
            let mut d = Vec::new();
            sleb(1, &mut d);
            d.extend_from_slice(&[1, b'a']);
            d
        }),
        (4 << 4 | 2, one(1)),
        (5 << 4 | 6, one(0)),
        (7 << 4, one(1 << 40)),
        (7 << 4 | 1, one(0)),
        (7 << 4 | 3, {
            let mut d = Vec::new();
            sleb(1, &mut d);
            sleb(1, &mut d);
            d
        }),
    ];
    let c = chunk(1, &change_body(&columns));
    assert_eq!(refused(chunks(&c, &limits)), Limit::GroupOverrun);
    // A value claiming more bytes than the value column holds.
    let columns = vec![
        (1 << 4 | 5, {
            let mut d = Vec::new();
            sleb(1, &mut d);
            d.extend_from_slice(&[1, b'a']);
            d
        }),
        (4 << 4 | 2, one(1)),
        (5 << 4 | 6, one(1000 << 4 | 6)), // a 1000-byte string
        (5 << 4 | 7, b"short".to_vec()),
    ];
    let c = chunk(1, &change_body(&columns));
    assert_eq!(refused(chunks(&c, &limits)), Limit::GroupOverrun);
}

#[test]
fn chunk_structure_is_checked() {
    let limits = Limits::default();
    assert_eq!(refused(chunks(b"not a chunk", &limits)), Limit::Malformed);
    let mut d = doc(3);
    let raw = d.get_changes(&[])[0].raw_bytes().to_vec();
    for cut in [1, 8, 9, raw.len() - 1] {
        assert_eq!(refused(chunks(&raw[..cut], &limits)), Limit::Malformed, "cut at {cut}");
    }
    let mut bad_kind = raw.clone();
    bad_kind[8] = 9;
    assert_eq!(refused(chunks(&bad_kind, &limits)), Limit::Malformed);
    // Too many chunks in one payload.
    let few = Limits {
        max_chunks: 2,
        ..Limits::default()
    };
    let three: Vec<u8> = d
        .get_changes(&[])
        .iter()
        .take(3)
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    assert_eq!(refused(chunks(&three, &few)), Limit::Chunks);
    // Too many actors.
    let mut body = vec![0, 16];
    body.extend_from_slice(&[9u8; 16]);
    body.extend_from_slice(&[1, 1, 0, 0]);
    leb(200_000, &mut body);
    body.extend(std::iter::repeat_n(0u8, 200_000));
    body.push(0);
    assert_eq!(refused(chunks(&chunk(1, &body), &limits)), Limit::Actors);
}

#[test]
fn cbor_depth_and_lengths_are_bounded() {
    let limits = CborLimits::default();
    // A map whose unknown key holds a megabyte of nested indefinite arrays.
    let mut frame = vec![0xa1, 0x61, b'z'];
    frame.extend(std::iter::repeat_n(0x9f, 1 << 20));
    let r = cbor(&frame, &limits).unwrap_err();
    assert_eq!(r.limit, Limit::CborDepth, "{r}");
    // Definite nesting too.
    let mut deep = vec![0x81; 17];
    deep.push(0);
    assert_eq!(cbor(&deep, &limits).unwrap_err().limit, Limit::CborDepth);
    let mut ok = vec![0x81; 15];
    ok.push(0);
    assert_eq!(cbor(&ok, &limits).unwrap(), ok.len());
    // A long array.
    let mut long = vec![0x9a, 0x00, 0x02, 0x00, 0x00]; // 131,072 elements
    long.extend(std::iter::repeat_n(0xa0, 131_072));
    assert_eq!(cbor(&long, &limits).unwrap_err().limit, Limit::CborItems);
    // A length larger than the bytes that follow.
    assert_eq!(
        cbor(&[0x99, 0x10, 0x00, 0x00], &limits).unwrap_err().limit,
        Limit::Malformed
    );
    // Tags, indefinite strings, floats and breaks.
    let fine = [
        0xbf, 0x61, b'a', 0xc1, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0, 0x61, b'b', 0x7f, 0x61, b'x', 0x61, b'y', 0xff, 0xff,
    ];
    assert_eq!(cbor(&fine, &limits).unwrap(), fine.len());
    assert_eq!(cbor(&[0xff], &limits).unwrap_err().limit, Limit::Malformed);
    assert_eq!(cbor(&[0x1c], &limits).unwrap_err().limit, Limit::Malformed);
}
