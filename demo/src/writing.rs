//! Documents written the way people write them, for the benchmarks and the
//! sync tests: petitions recorded by an officer, comments of about 20
//! characters each by their own writer's actor and clock, the growth of a
//! document's compressed save (the floor a sync is measured against), and
//! copies of a stopped server's database directory.

use std::path::Path;

use automerge::{ActorId, AutoCommit};
use sync_core::batch::DocId;
use sync_core::doc::Message;
use sync_core::petition::{Location, PetitionDoc, PetitionHeader};
use sync_core::repo_protocol::DocumentId;
use sync_core::{Author, Category, Channel, HlcClock, Timestamp, UnitId, UserId};

/// Copies a stopped server's database directory (all its files) to `to`.
pub fn copy_db(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// A document id, distinct for each `(tag, n)`.
pub fn doc_id(tag: u8, n: usize) -> DocId {
    let mut id = [0u8; 16];
    id[0] = 0x1c;
    id[1] = tag;
    id[8..].copy_from_slice(&(n as u64).to_be_bytes());
    DocId(id)
}

/// One writer: a user with their own actor and clock.
#[derive(Clone, Debug)]
pub struct Writer {
    pub actor: ActorId,
    pub author: Author,
}

impl Writer {
    pub fn new(user: &str, device: u8) -> Writer {
        let mut actor = [0u8; 16];
        actor[0] = 0xa0;
        actor[1] = device;
        actor[2..2 + user.len().min(14)].copy_from_slice(&user.as_bytes()[..user.len().min(14)]);
        let node = format!("{}{device}", user.replace(|c: char| !c.is_ascii_alphanumeric(), ""));
        Writer {
            actor: ActorId::from(actor.as_slice()),
            author: Author::new(
                UserId::new(user).expect("a valid user"),
                HlcClock::new(node).expect("a node"),
            ),
        }
    }
}

/// A petition the east station's officer records for a villager, as one change.
pub fn petition(w: &mut Writer, id: DocId, n: usize, at: Timestamp) -> anyhow::Result<AutoCommit> {
    petition_in(w, id, n, at, "village-shangping", "station-east")
}

/// A petition from `village`, routed to `station`, recorded by `w`.
pub fn petition_in(
    w: &mut Writer,
    id: DocId,
    n: usize,
    at: Timestamp,
    village: &str,
    station: &str,
) -> anyhow::Result<AutoCommit> {
    let header = PetitionHeader {
        id: DocumentId::from_bytes(id.0).to_url(),
        channel: Channel::ChiefLine,
        category: Category::NonPolice,
        title: format!("第{n}号来电：村道塌方"),
        body: "村道塌方，车辆无法通行，请派人查看。".into(),
        submitter: UserId::new(if village == "village-shangping" {
            "res-zhang"
        } else {
            "res-he"
        })?,
        recorded_by: w.author.user.clone(),
        anonymous: false,
        contact: None,
        location: Location {
            unit: UnitId::new(village)?,
            lat: None,
            lon: None,
        },
        attachments: vec![],
        source: None,
    };
    let doc = PetitionDoc::create(w.actor.clone(), header, UnitId::new(station)?, &mut w.author, at)?;
    Ok(doc.into_doc())
}

/// How comment text is made up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Text {
    /// Words a villager or an officer would write, drawn at random from a
    /// small vocabulary until about 20 characters: compresses like real text.
    #[default]
    Phrases,
    /// 12 to 27 characters drawn uniformly from 2,000 CJK characters: the
    /// worst case, nothing for a compressor to find.
    Random,
}

impl std::str::FromStr for Text {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "phrases" => Ok(Text::Phrases),
            "random" => Ok(Text::Random),
            other => Err(format!("comment text is `phrases` or `random`, not {other:?}")),
        }
    }
}

/// Words of petition conversations, from which [`Text::Phrases`] builds comments.
const WORDS: &[&str] = &[
    "水",
    "还是",
    "没有",
    "来",
    "请",
    "尽快",
    "派人",
    "查看",
    "一下",
    "村里",
    "自来水",
    "管子",
    "又",
    "坏了",
    "已经",
    "三天",
    "两天",
    "今天",
    "昨天",
    "上午",
    "下午",
    "晚上",
    "我们",
    "家里",
    "老人",
    "孩子",
    "上学",
    "路上",
    "村道",
    "塌方",
    "石头",
    "车辆",
    "无法",
    "通行",
    "谢谢",
    "民警",
    "同志",
    "已经",
    "联系",
    "施工队",
    "明天",
    "过来",
    "处理",
    "情况",
    "核实",
    "反映",
    "问题",
    "解决",
    "了",
    "还没",
    "好",
    "的",
    "，",
    "。",
    "？",
    "！",
    "电话",
    "打不通",
    "邻居",
    "说",
    "也是",
    "这样",
    "希望",
    "早点",
    "修好",
    "村委会",
    "协调",
    "水利局",
    "回复",
    "满意",
    "不满意",
];

/// Posts `count` comments of about 20 characters (see [`Text`]), one change
/// each, written by `w` at `at`.
pub fn comment(doc: &mut AutoCommit, w: &mut Writer, count: usize, seed: u64, at: Timestamp) -> anyhow::Result<()> {
    comment_with(doc, w, count, seed, at, Text::default())
}

/// [`comment`] with the kind of text chosen.
pub fn comment_with(
    doc: &mut AutoCommit,
    w: &mut Writer,
    count: usize,
    seed: u64,
    at: Timestamp,
    text: Text,
) -> anyhow::Result<()> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut p = PetitionDoc::from_doc(std::mem::take(doc).with_actor(w.actor.clone()))?;
    for _ in 0..count {
        let body: String = match text {
            Text::Random => {
                let len = 12 + next() % 16;
                (0..len)
                    .map(|_| char::from_u32(0x4E00 + (next() % 2000) as u32).expect("a CJK character"))
                    .collect()
            }
            Text::Phrases => {
                let target = 16 + (next() % 9) as usize;
                let mut s = String::new();
                while s.chars().count() < target {
                    s.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
                }
                s
            }
        };
        p.post(&mut w.author, at, Message::draft(body))?;
    }
    *doc = p.into_doc();
    Ok(())
}

/// The growth of a document's compressed `save()` from `before` to `after`.
pub fn save_growth(before: &AutoCommit, after: &AutoCommit) -> usize {
    after.clone().save().len().saturating_sub(before.clone().save().len())
}
