//! WIT values back to reply JSON, and a command's error text.

use base64::Engine as _;
use wasmtime::component::{ResourceAny, Val};

use crate::qobject::{Dict, Value};

use super::shape::{Field, Shape, UnionCase};

/// A WIT value back to JSON. Records become dicts in field order with
/// absent options omitted.
pub fn to_json(shape: &Shape, val: &Val) -> Value {
    match (shape, val) {
        (_, Val::Bool(b)) => Value::Bool(*b),
        (_, Val::S8(i)) => Value::Int(i64::from(*i)),
        (_, Val::S16(i)) => Value::Int(i64::from(*i)),
        (_, Val::S32(i)) => Value::Int(i64::from(*i)),
        (_, Val::S64(i)) => Value::Int(*i),
        (_, Val::U8(i)) => Value::Int(i64::from(*i)),
        (_, Val::U16(i)) => Value::Int(i64::from(*i)),
        (_, Val::U32(i)) => Value::Int(i64::from(*i)),
        (_, Val::U64(u)) => Value::Uint(*u),
        (_, Val::Float32(f)) => Value::Double(f64::from(*f)),
        (_, Val::Float64(f)) => Value::Double(*f),
        (_, Val::String(s)) => Value::Str(s.clone()),
        (_, Val::Enum(s)) => Value::Str(s.clone()),
        (Shape::Bytes, Val::List(items)) => {
            let bytes: Vec<u8> = items
                .iter()
                .map(|v| match v {
                    Val::U8(b) => *b,
                    _ => 0,
                })
                .collect();
            Value::Str(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        (Shape::List(elem), Val::List(items)) => Value::List(items.iter().map(|v| to_json(elem, v)).collect()),
        (Shape::Record(fields), Val::Record(members)) => Value::Dict(record_to_json(fields, members)),
        (Shape::Option(inner), Val::Option(Some(v))) => to_json(inner, v),
        (Shape::Option(_), Val::Option(None)) => Value::Null,
        (Shape::Named(_, inner), v) => to_json(inner, v),
        (Shape::Alternate(cases), Val::Variant(case, Some(payload))) => match cases.iter().find(|c| c.name == *case) {
            Some(c) => to_json(&c.shape, payload),
            None => Value::Null,
        },
        (Shape::Union(cases), Val::Variant(case, payload)) => {
            let mut d = Dict::new();
            d.insert("type", Value::Str(case.clone()));
            if let (
                Some(UnionCase {
                    fields: Some(fields), ..
                }),
                Some(p),
            ) = (cases.iter().find(|c| c.name == *case), payload)
                && let Val::Record(members) = &**p
            {
                for (k, v) in record_to_json(fields, members).iter() {
                    d.insert(k, v.clone());
                }
            }
            Value::Dict(d)
        }
        // The value does not have the shape the export type promised:
        // cannot happen for values wasmtime lifted against that type.
        _ => Value::Null,
    }
}

/// Takes a blob out of the call's resource table: its base64 text.
pub type Blobs<'a> = dyn FnMut(ResourceAny) -> Option<String> + 'a;

/// [`to_json`] by value: strings (and records and lists holding them) are
/// moved, not copied; blobs are taken with `blobs`; everything else as
/// [`to_json`].
pub fn into_json(shape: &Shape, val: Val, blobs: &mut Blobs<'_>) -> Value {
    match (shape, val) {
        (Shape::Named(_, inner), v) => into_json(inner, v, blobs),
        (Shape::Str, Val::String(s)) => Value::Str(s),
        // Only the host makes blobs, so one is always there to take.
        (Shape::Blob, Val::Resource(blob)) => blobs(blob).map_or(Value::Null, Value::Str),
        (Shape::Option(inner), Val::Option(Some(v))) => into_json(inner, *v, blobs),
        (Shape::List(elem), Val::List(items)) => {
            Value::List(items.into_iter().map(|v| into_json(elem, v, blobs)).collect())
        }
        (Shape::Record(fields), Val::Record(members)) => {
            let mut d = Dict::new();
            for (field, (name, val)) in fields.iter().zip(members) {
                match (field.optional, val) {
                    (true, Val::Option(None)) => {}
                    (true, Val::Option(Some(v))) => d.insert(name, into_json(&field.shape, *v, blobs)),
                    (_, v) => d.insert(name, into_json(&field.shape, v, blobs)),
                }
            }
            Value::Dict(d)
        }
        (shape, val) => to_json(shape, &val),
    }
}

fn record_to_json(fields: &[Field], members: &[(String, Val)]) -> Dict {
    let mut d = Dict::new();
    for (field, (name, val)) in fields.iter().zip(members) {
        match (field.optional, val) {
            (true, Val::Option(None)) => {}
            (true, Val::Option(Some(v))) => d.insert(name.clone(), to_json(&field.shape, v)),
            (_, v) => d.insert(name.clone(), to_json(&field.shape, v)),
        }
    }
    d
}

/// The `desc` of a command's error value (`qga-error { desc }`, or a bare
/// string).
pub fn error_desc(err: Option<&Val>) -> String {
    match err {
        Some(Val::Record(members)) => members
            .iter()
            .find_map(|(k, v)| match (k.as_str(), v) {
                ("desc", Val::String(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "handler failed".to_owned()),
        Some(Val::String(s)) => s.clone(),
        _ => "handler failed".to_owned(),
    }
}
