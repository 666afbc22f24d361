//! Writes the seed corpora of the `fuzz/` targets `guard` and `batch_frame` from real payloads:
//! `cargo run -p sync-core --example fuzz_seeds -- fuzz/corpus`.

use std::path::{Path, PathBuf};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use sync_core::batch::{
    Ack, DocPull, DocPush, DocResult, Encoding, ErrorCode, ErrorFrame, Frame, Pull, Push, RefusedChange,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let guard = root.join("guard");
    let batch = root.join("batch_frame");

    let mut doc = AutoCommit::new().with_actor(automerge::ActorId::from([1u8; 16].as_slice()));
    let list = doc.put_object(ROOT, "messages", ObjType::List).expect("put");
    doc.commit();
    for i in 0..3 {
        let m = doc.insert_object(&list, i, ObjType::Map).expect("insert");
        doc.put(&m, "text", format!("第{i}条")).expect("put");
        doc.commit();
    }
    doc.put(ROOT, "body", "长".repeat(120)).expect("put");
    doc.commit();
    let changes = doc.get_changes(&[]);
    for (i, c) in changes.iter().enumerate() {
        write(&guard, &format!("change-{i}"), c.raw_bytes())?;
    }
    let mut big = changes.last().expect("a change").clone();
    write(&guard, "compressed-change", &big.bytes())?;
    write(&guard, "document", &doc.save())?;
    write(&guard, "document-plain", &doc.save_nocompress())?;
    let bundle = doc.bundle(changes.iter().map(|c| c.hash())).expect("bundle");
    write(&guard, "bundle", bundle.bytes())?;

    // A sync exchange between the document and an empty peer.
    let mut peer = AutoCommit::new();
    let (mut a, mut b) = (sync::State::new(), sync::State::new());
    for round in 0..4 {
        if let Some(m) = doc.sync().generate_sync_message(&mut a) {
            let bytes = m.encode();
            write(&guard, &format!("sync-{round}-a"), &bytes)?;
            peer.sync()
                .receive_sync_message(&mut b, sync::Message::decode(&bytes).expect("decodes"))
                .expect("receives");
        }
        if let Some(m) = peer.sync().generate_sync_message(&mut b) {
            let bytes = m.encode();
            write(&guard, &format!("sync-{round}-b"), &bytes)?;
            doc.sync()
                .receive_sync_message(&mut a, sync::Message::decode(&bytes).expect("decodes"))
                .expect("receives");
        }
    }

    let h = changes[0].hash();
    let mut push = Push::new(7, 0, 42);
    push.encodings = Encoding::ALL.to_vec();
    push.last = true;
    push.docs = vec![DocPush {
        id: sync_core::batch::DocId([3; 16]),
        base: vec![h],
        encoding: Encoding::Changes,
        data: changes[1].raw_bytes().to_vec(),
        receipts: vec![(
            "1764990000000.00000.li".into(),
            sync_core::Timestamp::from_millis(1_764_990_001_000),
        )],
    }];
    write(&batch, "push", &Frame::Push(push).to_cbor())?;
    let ack = Frame::Ack(Ack {
        exchange: 7,
        part: 0,
        docs: vec![DocResult {
            id: sync_core::batch::DocId([3; 16]),
            heads: vec![h],
            accepted: 1,
            refused: vec![RefusedChange {
                change: h,
                rule: "role-required".into(),
                detail: "只有民警可以签收".into(),
            }],
        }],
    });
    write(&batch, "ack", &ack.to_cbor())?;
    let pull = Frame::Pull(Pull {
        early: false,
        exchange: 7,
        cursor: 99,
        docs: vec![DocPull {
            id: sync_core::batch::DocId([4; 16]),
            base: vec![],
            heads: vec![h],
            encoding: Encoding::Document,
            data: doc.save(),
            refused: vec![],
            receipts: vec![],
        }],
        more: true,
        encodings: Encoding::ALL.to_vec(),
        version: 2,
        inbox: None,
        settings: None,
    });
    write(&batch, "pull", &pull.to_cbor())?;
    let err = Frame::Error(ErrorFrame {
        code: ErrorCode::BadFrame,
        message: "bad".into(),
    });
    write(&batch, "err", &err.to_cbor())?;
    Ok(())
}
