//! Notices (通知, anti-fraud pushes): a broadcast with an audience and
//! per-household delivered / read / forwarded receipts.

use std::collections::BTreeMap;

use std::borrow::Borrow;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT};
use serde::{Deserialize, Serialize};

use crate::author::Author;
use crate::channel::text_enum;
use crate::doc::am;
use crate::doc::{DocKind, check_text, init_root, limits};
use crate::error::SchemaError;
use crate::hlc::Hlc;
use crate::ids::{HouseholdId, UnitId, UserId};
use crate::time::Timestamp;

text_enum!(
    NoticeKind {
        AntiFraud = "anti_fraud",
        Safety = "safety",
        Legal = "legal",
        General = "general",
    }
);

text_enum!(
    ReceiptKind {
        Delivered = "delivered",
        Read = "read",
        Forwarded = "forwarded",
    }
);

/// Who a notice goes to. Rooms are document ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Audience {
    #[serde(default)]
    pub households: Vec<HouseholdId>,
    #[serde(default)]
    pub rooms: Vec<String>,
    #[serde(default)]
    pub units: Vec<UnitId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeInfo {
    pub id: String,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    /// The unit issuing it.
    pub unit: UnitId,
    pub by: UserId,
    pub at: Hlc,
}

/// What an officer writes to issue a notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNotice {
    pub id: String,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    /// The unit issuing it.
    pub unit: UnitId,
    pub audience: Audience,
}

/// A household's receipts: the earliest time of each kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HouseholdReceipts {
    pub delivered: Option<Timestamp>,
    pub read: Option<Timestamp>,
    pub forwarded: Option<Timestamp>,
}

/// The key of one receipt: each writer owns its own keys, so receipts never conflict.
pub(crate) fn receipt_key(household: &HouseholdId, kind: ReceiptKind, user: &UserId) -> String {
    format!("{household}/{kind}/{user}")
}

/// Splits a receipt key into its parts.
pub(crate) fn parse_receipt_key(key: &str) -> Result<(HouseholdId, ReceiptKind, UserId), SchemaError> {
    let bad = || SchemaError::InvalidValue {
        field: "receipts".into(),
        reason: format!("bad receipt key {key:?}"),
    };
    let mut parts = key.split('/');
    let (Some(h), Some(k), Some(u), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    Ok((HouseholdId::new(h)?, k.parse()?, UserId::new(u)?))
}

#[derive(Debug, Clone)]
pub struct NoticeDoc<D = AutoCommit> {
    doc: D,
}

impl NoticeDoc {
    /// Issues a notice from `author`, stamped now.
    pub fn create(actor: ActorId, notice: NewNotice, author: &mut Author, now: Timestamp) -> Result<Self, SchemaError> {
        let NewNotice {
            id,
            kind,
            title,
            body,
            unit,
            audience,
        } = notice;
        check_text("id", &id, limits::SHORT, true)?;
        check_text("title", &title, limits::TITLE, true)?;
        check_text("body", &body, limits::BODY, true)?;
        let mut doc = AutoCommit::new().with_actor(actor);
        init_root(&mut doc, DocKind::Notice)?;
        let info = doc.put_object(ROOT, "info", ObjType::Map)?;
        am::put_str(&mut doc, &info, "id", &id)?;
        am::put_str(&mut doc, &info, "kind", kind.as_str())?;
        am::put_str(&mut doc, &info, "title", &title)?;
        am::put_str(&mut doc, &info, "body", &body)?;
        am::put_str(&mut doc, &info, "unit", unit.as_str())?;
        am::put_str(&mut doc, &info, "by", author.user.as_str())?;
        am::put_str(&mut doc, &info, "at", &author.stamp(None, now).to_string())?;
        let a = doc.put_object(ROOT, "audience", ObjType::Map)?;
        am::put_str_list(
            &mut doc,
            &a,
            "households",
            audience.households.iter().map(|h| h.as_str()),
        )?;
        am::put_str_list(&mut doc, &a, "rooms", &audience.rooms)?;
        am::put_str_list(&mut doc, &a, "units", audience.units.iter().map(|u| u.as_str()))?;
        doc.put_object(ROOT, "receipts", ObjType::Map)?;
        doc.commit();
        Ok(NoticeDoc { doc })
    }
}

impl<D: Borrow<AutoCommit>> NoticeDoc<D> {
    pub fn info(&self) -> Result<NoticeInfo, SchemaError> {
        let o = am::req_obj(self.d(), &ROOT, "info", ObjType::Map)?;
        Ok(NoticeInfo {
            id: am::req_str(self.d(), &o, "id")?,
            kind: am::parse(self.d(), &o, "kind")?,
            title: am::req_str(self.d(), &o, "title")?,
            body: am::req_str(self.d(), &o, "body")?,
            unit: am::parse(self.d(), &o, "unit")?,
            by: am::parse(self.d(), &o, "by")?,
            at: am::req_hlc(self.d(), &o, "at")?,
        })
    }

    pub fn audience(&self) -> Result<Audience, SchemaError> {
        let a = am::req_obj(self.d(), &ROOT, "audience", ObjType::Map)?;
        Ok(Audience {
            households: am::str_list(self.d(), &a, "households")?
                .into_iter()
                .map(HouseholdId::new)
                .collect::<Result<_, _>>()?,
            rooms: am::str_list(self.d(), &a, "rooms")?,
            units: am::str_list(self.d(), &a, "units")?
                .into_iter()
                .map(UnitId::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Receipts per household, keeping the earliest time of each kind.
    pub fn receipts(&self) -> Result<BTreeMap<HouseholdId, HouseholdReceipts>, SchemaError> {
        let r = am::req_obj(self.d(), &ROOT, "receipts", ObjType::Map)?;
        let mut out: BTreeMap<HouseholdId, HouseholdReceipts> = BTreeMap::new();
        for (key, stamp) in am::str_map(self.d(), &r, "receipts")? {
            let (household, kind, _) = parse_receipt_key(&key)?;
            let at = stamp.parse::<Hlc>()?.timestamp();
            let entry = out.entry(household).or_default();
            let slot = match kind {
                ReceiptKind::Delivered => &mut entry.delivered,
                ReceiptKind::Read => &mut entry.read,
                ReceiptKind::Forwarded => &mut entry.forwarded,
            };
            *slot = Some(slot.map_or(at, |t| t.min(at)));
        }
        Ok(out)
    }
}

impl NoticeDoc {
    /// Records that `household` received, read or forwarded the notice.
    pub fn record_receipt(
        &mut self,
        author: &mut Author,
        now: Timestamp,
        household: &HouseholdId,
        kind: ReceiptKind,
    ) -> Result<(), SchemaError> {
        let r = am::req_obj(self.d(), &ROOT, "receipts", ObjType::Map)?;
        let key = receipt_key(household, kind, &author.user);
        if am::opt_str(self.d(), &r, &key)?.is_some() {
            return Ok(()); // The earliest receipt of a kind is the one that counts.
        }
        let at = author.stamp(None, now);
        am::put_str(&mut self.doc, &r, &key, &at.to_string())?;
        self.doc.commit();
        Ok(())
    }
}

crate::doc::typed_doc!(NoticeDoc, DocKind::Notice);
