//! Typed reads and writes of Automerge values: the only place that pokes at raw maps.
//!
//! Callers outside `doc` never see `ScalarValue`s; they use the typed
//! documents built on these helpers.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef};

use crate::error::SchemaError;
use crate::hlc::Hlc;

pub(crate) fn get_value<'a, D: ReadDoc>(doc: &'a D, obj: &ObjId, key: &str) -> Result<Option<Value<'a>>, SchemaError> {
    Ok(doc.get(obj, key)?.map(|(v, _)| v))
}

pub(crate) fn opt_str<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Option<String>, SchemaError> {
    match get_value(doc, obj, key)? {
        None => Ok(None),
        Some(Value::Scalar(s)) => match s.as_ref() {
            ScalarValue::Str(s) => Ok(Some(s.to_string())),
            ScalarValue::Null => Ok(None),
            _ => Err(wrong(key, "string")),
        },
        Some(_) => Err(wrong(key, "string")),
    }
}

pub(crate) fn req_str<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<String, SchemaError> {
    opt_str(doc, obj, key)?.ok_or_else(|| SchemaError::Missing(key.to_owned()))
}

pub(crate) fn opt_int<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Option<i64>, SchemaError> {
    match get_value(doc, obj, key)? {
        None => Ok(None),
        Some(Value::Scalar(s)) => match s.as_ref() {
            ScalarValue::Int(i) => Ok(Some(*i)),
            ScalarValue::Uint(u) => i64::try_from(*u).map(Some).map_err(|_| wrong(key, "integer")),
            ScalarValue::Null => Ok(None),
            _ => Err(wrong(key, "integer")),
        },
        Some(_) => Err(wrong(key, "integer")),
    }
}

pub(crate) fn opt_f64<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Option<f64>, SchemaError> {
    match get_value(doc, obj, key)? {
        None => Ok(None),
        Some(Value::Scalar(s)) => match s.as_ref() {
            ScalarValue::F64(f) => Ok(Some(*f)),
            ScalarValue::Int(i) => Ok(Some(*i as f64)),
            ScalarValue::Null => Ok(None),
            _ => Err(wrong(key, "number")),
        },
        Some(_) => Err(wrong(key, "number")),
    }
}

pub(crate) fn opt_bool<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Option<bool>, SchemaError> {
    match get_value(doc, obj, key)? {
        None => Ok(None),
        Some(Value::Scalar(s)) => match s.as_ref() {
            ScalarValue::Boolean(b) => Ok(Some(*b)),
            ScalarValue::Null => Ok(None),
            _ => Err(wrong(key, "boolean")),
        },
        Some(_) => Err(wrong(key, "boolean")),
    }
}

pub(crate) fn req_hlc<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Hlc, SchemaError> {
    req_str(doc, obj, key)?.parse()
}

pub(crate) fn parse<T: std::str::FromStr<Err = SchemaError>>(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
) -> Result<T, SchemaError> {
    req_str(doc, obj, key)?.parse()
}

pub(crate) fn parse_opt<T: std::str::FromStr<Err = SchemaError>>(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
) -> Result<Option<T>, SchemaError> {
    opt_str(doc, obj, key)?.map(|s| s.parse()).transpose()
}

/// The object stored under `key`, checked to be of type `ty`.
pub(crate) fn opt_obj<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str, ty: ObjType) -> Result<Option<ObjId>, SchemaError> {
    match doc.get(obj, key)? {
        None => Ok(None),
        Some((Value::Object(t), id)) if t == ty => Ok(Some(id)),
        Some(_) => Err(wrong(key, obj_type_name(ty))),
    }
}

pub(crate) fn req_obj<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str, ty: ObjType) -> Result<ObjId, SchemaError> {
    opt_obj(doc, obj, key, ty)?.ok_or_else(|| SchemaError::Missing(key.to_owned()))
}

/// The map objects of a list, in list order.
pub(crate) fn list_maps<D: ReadDoc>(doc: &D, list: &ObjId, field: &str) -> Result<Vec<ObjId>, SchemaError> {
    let mut out = Vec::new();
    for item in doc.list_range(list, ..) {
        match item.value {
            ValueRef::Object(ObjType::Map) => out.push(item.id()),
            _ => return Err(wrong(field, "list of maps")),
        }
    }
    Ok(out)
}

/// A list of strings stored under `key` (absent means empty).
pub(crate) fn str_list<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Result<Vec<String>, SchemaError> {
    let Some(list) = opt_obj(doc, obj, key, ObjType::List)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in doc.list_range(&list, ..) {
        match item.value {
            ValueRef::Scalar(ScalarValueRef::Str(s)) => out.push(s.to_string()),
            _ => return Err(wrong(key, "list of strings")),
        }
    }
    Ok(out)
}

/// Keys and string values of a map of strings.
pub(crate) fn str_map<D: ReadDoc>(doc: &D, obj: &ObjId, field: &str) -> Result<Vec<(String, String)>, SchemaError> {
    let mut out = Vec::new();
    for item in doc.map_range(obj, ..) {
        match item.value {
            ValueRef::Scalar(ScalarValueRef::Str(v)) => out.push((item.key.to_string(), v.to_string())),
            ValueRef::Scalar(ScalarValueRef::Boolean(true)) => out.push((item.key.to_string(), String::new())),
            _ => return Err(wrong(field, "map of strings")),
        }
    }
    Ok(out)
}

pub(crate) fn put_str<T: Transactable>(tx: &mut T, obj: &ObjId, key: &str, value: &str) -> Result<(), SchemaError> {
    tx.put(obj, key, value)?;
    Ok(())
}

pub(crate) fn put_opt_str<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    value: Option<&str>,
) -> Result<(), SchemaError> {
    if let Some(v) = value {
        tx.put(obj, key, v)?;
    }
    Ok(())
}

pub(crate) fn put_str_list<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    values: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<(), SchemaError> {
    let list = tx.put_object(obj, key, ObjType::List)?;
    for (i, v) in values.into_iter().enumerate() {
        tx.insert(&list, i, v.as_ref())?;
    }
    Ok(())
}

fn obj_type_name(ty: ObjType) -> &'static str {
    match ty {
        ObjType::Map | ObjType::Table => "map",
        ObjType::List => "list",
        ObjType::Text => "text",
    }
}

fn wrong(field: &str, expected: &'static str) -> SchemaError {
    SchemaError::WrongType {
        field: field.to_owned(),
        expected,
    }
}

/// Whether `doc` holds the change `hash`. Reads the change graph only:
/// `get_change_by_hash` rebuilds the whole change from the op set, which for
/// a room created with ten thousand members costs milliseconds.
pub fn has_change(doc: &mut automerge::AutoCommit, hash: &automerge::ChangeHash) -> bool {
    doc.get_change_meta_by_hash(hash).is_some()
}

#[cfg(test)]
mod tests {
    use automerge::AutoCommit;
    use automerge::transaction::Transactable;

    use super::has_change;

    #[test]
    fn a_document_holds_its_applied_changes_only() {
        let mut a = AutoCommit::new();
        a.put(automerge::ROOT, "n", 1).unwrap();
        let first = a.get_heads()[0];
        a.put(automerge::ROOT, "n", 2).unwrap();
        let second = a.get_heads()[0];
        assert!(has_change(&mut a, &first) && has_change(&mut a, &second));

        // A change whose dependency is missing is queued, not held.
        let mut b = AutoCommit::new();
        let later = a.get_change_by_hash(&second).unwrap();
        b.apply_changes([later]).unwrap();
        assert!(!has_change(&mut b, &second));
        assert!(!has_change(&mut b, &first));
        let earlier = a.get_change_by_hash(&first).unwrap();
        b.apply_changes([earlier]).unwrap();
        assert!(has_change(&mut b, &first) && has_change(&mut b, &second));
    }
}
