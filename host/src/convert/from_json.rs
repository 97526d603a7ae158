//! Request JSON to WIT values, with qemu-ga 7.2's argument errors in its
//! order (its QObject input visitor).

use wasmtime::component::Val;

use crate::protocol::QmpError;
use crate::qobject::{Dict, Value};

use super::decode_base64;
use super::ghash;
use super::shape::{Case, Field, Kind, Shape};

fn path(parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{p}.{name}"),
        None => name.to_owned(),
    }
}

fn invalid_type(name: &str, expected: &str) -> QmpError {
    QmpError::generic(format!("Invalid parameter type for '{name}', expected: {expected}"))
}

fn expects(name: &str, ty: &str) -> QmpError {
    QmpError::generic(format!("Parameter '{name}' expects {ty}"))
}

pub(super) fn members_from_json(
    fields: &[Field],
    dict: &Dict,
    parent: Option<&str>,
) -> Result<Vec<(String, Val)>, QmpError> {
    fields
        .iter()
        .map(|f| {
            let name = path(parent, &f.name);
            let val = match (dict.get(&f.name), f.optional) {
                (None, true) => Val::Option(None),
                (None, false) => {
                    return Err(QmpError::generic(format!("Parameter '{name}' is missing")));
                }
                (Some(v), true) => Val::Option(Some(Box::new(from_json(&f.shape, v, &name)?))),
                (Some(v), false) => from_json(&f.shape, v, &name)?,
            };
            Ok((f.name.clone(), val))
        })
        .collect()
}

/// qemu-ga's "unexpected member" check: the dict's keys enter a GLib hash
/// table in QDict order, visited members leave it in visiting order, and the
/// first key left in slot order is reported.
pub(crate) fn check_unexpected(
    dict: &Dict,
    parent: Option<&str>,
    known: impl Fn(&str) -> bool,
    visit_order: &[&str],
) -> Result<(), QmpError> {
    if dict.iter().all(|(k, _)| known(k)) {
        return Ok(());
    }
    let mut left = ghash::KeySet::new();
    for (k, _) in dict.iter_qdict_order() {
        left.insert(k);
    }
    for k in visit_order {
        left.remove(k);
    }
    match left.first() {
        Some(k) => Err(QmpError::generic(format!(
            "Parameter '{}' is unexpected",
            path(parent, k)
        ))),
        None => Ok(()),
    }
}

pub(super) fn field_names(fields: &[Field]) -> Vec<&str> {
    fields.iter().map(|f| f.name.as_str()).collect()
}

fn int64(v: &Value, name: &str) -> Result<i64, QmpError> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(invalid_type(name, "integer")),
    }
}

fn uint64(v: &Value, name: &str) -> Result<u64, QmpError> {
    match v {
        // qemu-ga casts a negative integer to uint64.
        Value::Int(i) => Ok(*i as u64),
        Value::Uint(u) => Ok(*u),
        _ => Err(expects(name, "uint64")),
    }
}

fn sized<T: TryFrom<i64>>(v: &Value, name: &str, ty: &str) -> Result<T, QmpError> {
    T::try_from(int64(v, name)?).map_err(|_| expects(name, ty))
}

fn usized<T: TryFrom<u64>>(v: &Value, name: &str, ty: &str) -> Result<T, QmpError> {
    T::try_from(uint64(v, name)?).map_err(|_| expects(name, ty))
}

fn number(v: &Value, name: &str) -> Result<f64, QmpError> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::Double(d) => Ok(*d),
        _ => Err(invalid_type(name, "number")),
    }
}

fn string<'a>(v: &'a Value, name: &str) -> Result<&'a str, QmpError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(invalid_type(name, "string")),
    }
}

fn enum_case(names: &[String], v: &Value, name: &str) -> Result<String, QmpError> {
    let s = string(v, name)?;
    match names.iter().find(|n| *n == s) {
        Some(n) => Ok(n.clone()),
        None => Err(QmpError::generic(format!(
            "Parameter '{name}' does not accept value '{s}'"
        ))),
    }
}

/// One JSON value to the WIT value of `shape`; `name` is qemu's full name.
pub fn from_json(shape: &Shape, v: &Value, name: &str) -> Result<Val, QmpError> {
    Ok(match shape {
        Shape::Bool => match v {
            Value::Bool(b) => Val::Bool(*b),
            _ => return Err(invalid_type(name, "boolean")),
        },
        Shape::S8 => Val::S8(sized(v, name, "int8")?),
        Shape::S16 => Val::S16(sized(v, name, "int16")?),
        Shape::S32 => Val::S32(sized(v, name, "int32")?),
        Shape::S64 => Val::S64(int64(v, name)?),
        Shape::U8 => Val::U8(usized(v, name, "uint8")?),
        Shape::U16 => Val::U16(usized(v, name, "uint16")?),
        Shape::U32 => Val::U32(usized(v, name, "uint32")?),
        Shape::U64 => Val::U64(uint64(v, name)?),
        Shape::F32 => Val::Float32(number(v, name)? as f32),
        Shape::F64 => Val::Float64(number(v, name)?),
        Shape::Str => Val::String(string(v, name)?.to_owned()),
        Shape::Bytes => {
            let bytes = decode_base64(string(v, name)?).map_err(QmpError::generic)?;
            Val::List(bytes.into_iter().map(Val::U8).collect())
        }
        // Refused when the signature is built.
        Shape::Blob => return Err(QmpError::generic(format!("{name}: a blob cannot be an argument"))),
        Shape::List(elem) => match v {
            Value::List(items) => Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| from_json(elem, item, &format!("{name}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(invalid_type(name, "array")),
        },
        Shape::Record(fields) => match v {
            Value::Dict(d) => {
                let members = members_from_json(fields, d, Some(name))?;
                check_unexpected(
                    d,
                    Some(name),
                    |k| fields.iter().any(|f| f.name == k),
                    &field_names(fields),
                )?;
                Val::Record(members)
            }
            _ => return Err(invalid_type(name, "object")),
        },
        Shape::Option(inner) => match v {
            Value::Null => Val::Option(None),
            v => Val::Option(Some(Box::new(from_json(inner, v, name)?))),
        },
        Shape::Enum(names) => Val::Enum(enum_case(names, v, name)?),
        Shape::Named(type_name, inner) => match (&**inner, from_json(inner, v, name)) {
            // The only type error an alternate raises itself: no branch
            // takes this JSON kind. qemu-ga names the QAPI type.
            (Shape::Alternate(cases), Err(_)) if !cases.iter().any(|c| c.shape.kind() == json_kind(v)) => {
                return Err(invalid_type(name, type_name));
            }
            (_, result) => result?,
        },
        Shape::Alternate(cases) => {
            let kind = json_kind(v);
            match cases.iter().find(|c| c.shape.kind() == kind) {
                Some(case) => Val::Variant(case.name.clone(), Some(Box::new(from_json(&case.shape, v, name)?))),
                None => return Err(invalid_type(name, &alternate_name(cases))),
            }
        }
        Shape::Union(cases) => {
            let Value::Dict(d) = v else {
                return Err(invalid_type(name, "object"));
            };
            let type_name = path(Some(name), "type");
            let Some(tag) = d.get("type") else {
                return Err(QmpError::generic(format!("Parameter '{type_name}' is missing")));
            };
            let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
            let tag = enum_case(&names, tag, &type_name)?;
            let case = cases.iter().find(|c| c.name == tag).expect("tag is a case name");
            let fields = case.fields.as_deref().unwrap_or(&[]);
            let members = members_from_json(fields, d, Some(name))?;
            let mut visited = vec!["type"];
            visited.extend(field_names(fields));
            check_unexpected(
                d,
                Some(name),
                |k| k == "type" || fields.iter().any(|f| f.name == k),
                &visited,
            )?;
            let payload = case.fields.as_ref().map(|_| Box::new(Val::Record(members)));
            Val::Variant(tag, payload)
        }
    })
}

fn json_kind(v: &Value) -> Kind {
    match v {
        Value::Int(_) | Value::Uint(_) | Value::Double(_) => Kind::Number,
        Value::Str(_) => Kind::Str,
        Value::Bool(_) => Kind::Bool,
        Value::Dict(_) => Kind::Object,
        Value::List(_) => Kind::Array,
        Value::Null => Kind::Null,
    }
}

/// qemu-ga names the alternate's QAPI type; component types are structural,
/// so the converter names the JSON kinds it accepts instead.
fn alternate_name(cases: &[Case]) -> String {
    let kinds: Vec<&str> = cases
        .iter()
        .map(|c| match c.shape {
            Shape::F32 | Shape::F64 => "number",
            _ => match c.shape.kind() {
                Kind::Number => "integer",
                Kind::Str => "string",
                Kind::Bool => "boolean",
                Kind::Object => "object",
                Kind::Array => "array",
                Kind::Null => "null",
            },
        })
        .collect();
    kinds.join(" or ")
}
