//! Measures how compactly Automerge can carry a batch of small changes.
use automerge::ActorId;
use sync_core::doc::Message;
use sync_core::petition::{Location, PetitionDoc, PetitionHeader};
use sync_core::*;

fn main() {
    let r = UserId::new("r1").unwrap();
    let mut author = Author::new(r.clone(), HlcClock::new("r1").unwrap());
    let header = PetitionHeader {
        id: "p".into(),
        channel: Channel::ChiefLine,
        category: Category::Help,
        title: "泉水被截流".into(),
        body: "村里的泉水被引去灌溉，我家已经断水三天。".into(),
        submitter: r.clone(),
        recorded_by: r.clone(),
        anonymous: false,
        contact: None,
        location: Location {
            unit: UnitId::new("v").unwrap(),
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    };
    let now = Timestamp(1_750_000_000_000);
    let mut doc = PetitionDoc::create(ActorId::random(), header, UnitId::new("s").unwrap(), &mut author, now).unwrap();
    let base_save = doc.doc_mut().save();
    let base_heads = doc.doc_mut().get_heads();
    for i in 0..40 {
        let m = Message {
            by: r.clone(),
            at: "0000000000000.00000.x".parse().unwrap(),
            text: format!("第{i}条：水还是没有来，请尽快派人查看一下"),
            mentions: vec![],
            reply_to: None,
            attachments: vec![],
            tag: None,
        };
        doc.post(&mut author, now.plus_minutes(i), m).unwrap();
    }
    let full = doc.doc_mut().save();
    let changes = doc.doc_mut().get_changes(&base_heads);
    let raw: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
    let after = doc.doc_mut().save_after(&base_heads);
    let bundle = doc.doc_mut().bundle(changes.iter().map(|c| c.hash())).unwrap();
    let deflate = |b: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b).unwrap();
        e.finish().unwrap().len()
    };
    let raw_all: Vec<u8> = changes.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    println!(
        "base_save={} full_save={} growth={}",
        base_save.len(),
        full.len(),
        full.len() - base_save.len()
    );
    println!("raw_changes={} raw_deflated={}", raw, deflate(&raw_all));
    println!("save_after={} save_after_deflated={}", after.len(), deflate(&after));
    println!(
        "bundle={} bundle_deflated={}",
        bundle.bytes().len(),
        deflate(bundle.bytes())
    );
    println!("full_deflated={}", deflate(&full));
}
